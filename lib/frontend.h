/* SPDX-License-Identifier: MIT */
/*
 * vhost-user frontend session, internal: svqiso as the frontend of an
 * unmodified vhost-user backend, offering it isolated memory only.
 *
 *   svq_fe_connect()       socket, SET_OWNER, GET_FEATURES, protocol features
 *                          (masked to what svqiso can honour), queue count,
 *                          memory slots
 *   svq_fe_set_features()  SET_FEATURES with the device features wanted
 *   svq_fe_region_add/del  svqiso_region_fn callbacks for an iso: every
 *                          isolated region is registered (ADD/REM_MEM_REG, or
 *                          SET_MEM_TABLE without CONFIGURE_MEM_SLOTS); guest
 *                          RAM never is
 *   svq_fe_vring_start()   NUM, ADDR, BASE, KICK, CALL, ENABLE for one queue
 *   svq_fe_vring_stop()    GET_VRING_BASE
 *   svq_fe_get_config()    device config space; svq_fe_set_config() writes it
 *   svq_fe_vring_enable()  SET_VRING_ENABLE alone
 *   svq_fe_reset()         RESET_DEVICE, or RESET_OWNER without it
 *
 * Every wait for the backend is bounded (SVQ_FE_TIMEOUT_MS). After an error
 * that leaves the socket out of step the session is dead: every call returns
 * -ENOTCONN until svq_fe_free().
 *
 * Thread safety: none; one thread at a time per session, and the region
 * callbacks run on the thread that drives the iso.
 */
#ifndef SVQ_FRONTEND_H
#define SVQ_FRONTEND_H

#include "internal.h"
#include "policy.h"
#include "vhost_user.h"

#define SVQ_FE_TIMEOUT_MS	5000

/* Transport feature bits the frontend looks at: policy.h's, by old names. */
#define SVQ_FE_F_NOTIFY_ON_EMPTY	SVQ_F_NOTIFY_ON_EMPTY
#define SVQ_FE_F_ANY_LAYOUT		SVQ_F_ANY_LAYOUT
#define SVQ_FE_F_INDIRECT_DESC		SVQ_F_INDIRECT_DESC
#define SVQ_FE_F_EVENT_IDX		SVQ_F_EVENT_IDX
#define SVQ_FE_F_VERSION_1		SVQ_F_VERSION_1
#define SVQ_FE_F_ACCESS_PLATFORM	SVQ_F_ACCESS_PLATFORM
#define SVQ_FE_F_RING_PACKED		SVQ_F_RING_PACKED
#define SVQ_FE_F_ORDER_PLATFORM		SVQ_F_ORDER_PLATFORM
#define SVQ_FE_F_LOG_ALL		SVQ_F_LOG_ALL

/* The most regions one SET_MEM_TABLE carries (and so without mem slots). */
#define SVQ_FE_MAX_TABLE	8

/* svq_fe_opts flags */
#define SVQ_FE_QUEUE_PAIRS	(1u << 0)	/* GET_QUEUE_NUM counts queue
						 * pairs (virtio-net): 2 queues
						 * each */

struct svq_fe_opts {
	size_t sz;			/* = sizeof(struct svq_fe_opts) */
	int timeout_ms;			/* per reply; 0: SVQ_FE_TIMEOUT_MS */
	svqiso_log_fn log;		/* NULL: silent */
	void *log_ctx;
	uint64_t flags;			/* SVQ_FE_* */
	uint64_t max_queues;		/* queue indexes the session takes: 0,
					 * the backend's queue count; else this
					 * many (at most 256), whatever the
					 * count (a proxy passes it on, and the
					 * VMM knows its device's queues) */
};
#define svq_fe_opts__last_field max_queues
/* No padding at the end: SVQISO_OPTS() cannot promise to zero it. */
_Static_assert(sizeof(struct svq_fe_opts) ==
	       offsetof(struct svq_fe_opts, max_queues) + sizeof(uint64_t), "no tail padding");

struct svq_fe;

/*
 * svq_fe_connect() - connect to the backend listening on unix socket @path
 * and negotiate everything but the device features: SET_OWNER, GET_FEATURES,
 * and when the backend offers VHOST_USER_F_PROTOCOL_FEATURES:
 * GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES with what svqiso honours (each
 * masked bit logged), GET_QUEUE_NUM (MQ) and GET_MAX_MEM_SLOTS
 * (CONFIGURE_MEM_SLOTS). REPLY_ACK, when offered, is used from then on.
 * With SVQ_FE_QUEUE_PAIRS the backend's count (1 without MQ) is of queue
 * pairs, and the session has twice as many queues.
 *
 * Return: 0; -EINVAL (NULL @path or @out, bad opts, unknown flags, path too
 * long), -ENOMEM, -EPROTO (a reply breaking the protocol, zero or over 256
 * queues, or over 128 pairs, zero slots; more slots than
 * SVQISO_MEM_MAX_REGIONS are clamped), -errno from
 * socket/connect and the codec (-ETIMEDOUT, -ECONNRESET, -EIO for a nack).
 */
int svq_fe_connect(const char *path, const struct svq_fe_opts *opts,
		   struct svq_fe **out);

/*
 * svq_fe_connect_fd() - like svq_fe_connect() over @sock, a stream socket
 * already connected to the backend. The session owns @sock from the call on:
 * it is closed on error too.
 *
 * Return: as svq_fe_connect(); -EINVAL also for a negative @sock (then
 * nothing is closed).
 */
int svq_fe_connect_fd(int sock, const struct svq_fe_opts *opts,
		      struct svq_fe **out);

/* svq_fe_free() - close the session; NULL is a no-op. Regions are not removed. */
void svq_fe_free(struct svq_fe *fe);

/* What the backend offered, and what was agreed. */
uint64_t svq_fe_offered_features(const struct svq_fe *fe);
uint64_t svq_fe_protocol_features(const struct svq_fe *fe);	/* agreed */
/* Features SET_FEATURES sent; 0 before it and after svq_fe_reset(). */
uint64_t svq_fe_acked_features(const struct svq_fe *fe);
/* Queues: 1 without MQ (2 with SVQ_FE_QUEUE_PAIRS). */
unsigned int svq_fe_queue_num(const struct svq_fe *fe);
/* Queue indexes the session takes: svq_fe_queue_num(), or the opts'
 * max_queues. */
unsigned int svq_fe_max_queues(const struct svq_fe *fe);
unsigned int svq_fe_mem_slots(const struct svq_fe *fe);		/* without slots: 8 */

/*
 * svq_fe_set_features() - SET_FEATURES with @wanted restricted to what the
 * backend offered. Device bits (0 to 23, 50 to 63) pass through untouched;
 * of bits 24 to 49 (transport and reserved) only those svqiso's shadow ring
 * implements are kept, each one dropped is logged, VHOST_F_LOG_ALL included
 * (it is never requested);
 * VHOST_USER_F_PROTOCOL_FEATURES is added when it was negotiated.
 * @agreed: NULL, or receives the features sent
 *
 * Return: 0; -EINVAL (NULL @fe), -ENOTCONN, the codec's errnos.
 */
int svq_fe_set_features(struct svq_fe *fe, uint64_t wanted, uint64_t *agreed);

/*
 * svq_fe_region_add() / svq_fe_region_del() - svqiso_region_fn callbacks,
 * @ctx the session: give an iso's region to the backend, or take it back.
 * Must only run after svq_fe_connect() (create the iso after it). An add
 * returns once the backend has read it: acked with REPLY_ACK, else
 * followed by a GET_FEATURES round trip, since a region made while a queue
 * runs is used at once.
 *
 * Return (add): 0; -ENOSPC (every memory slot is used), -ENOTCONN, the
 * codec's errnos.
 */
int svq_fe_region_add(void *ctx, const struct svqiso_region *region);
int svq_fe_region_del(void *ctx, const struct svqiso_region *region);

/* Number of regions the backend currently holds from this session. */
unsigned int svq_fe_nr_regions(const struct svq_fe *fe);

/*
 * svq_fe_fd() - the session's socket, to poll for the backend hanging up
 * (never to read or write); -1 once the session is dead. A session that
 * dies shuts the socket down first, so a duplicate of it reports the end
 * (POLLHUP) as a hang-up does.
 */
int svq_fe_fd(const struct svq_fe *fe);

/*
 * svq_fe_vring_start() - hand queue @index to the backend: SET_VRING_NUM,
 * SET_VRING_ADDR (@info's uaddr areas), SET_VRING_BASE (@info->base),
 * SET_VRING_KICK (@kick_fd), SET_VRING_CALL (@call_fd; negative: "no fd",
 * the backend does not notify), then SET_VRING_ENABLE 1 when protocol
 * features were negotiated.
 *
 * Return: 0; -EINVAL (NULL, @index past the queue count, a negative
 * @kick_fd), -ENOTSUP (a packed @info the backend did not agree to),
 * -ENOTCONN, the codec's errnos.
 */
int svq_fe_vring_start(struct svq_fe *fe, unsigned int index,
		       const struct svqiso_shadow_info *info, int kick_fd,
		       int call_fd);

/*
 * svq_fe_vring_stop() - GET_VRING_BASE: the backend stops queue @index.
 * @base: receives the next avail index it would have processed
 *
 * Return: 0; -EINVAL, -ENOTCONN, -EPROTO (the reply names another queue),
 * the codec's errnos.
 */
int svq_fe_vring_stop(struct svq_fe *fe, unsigned int index, uint32_t *base);

/*
 * svq_fe_get_config() - read @len bytes of device config space at @offset.
 *
 * Return: 0; -EINVAL (NULL, @len 0 or over SVQ_VU_CONFIG_MAX), -ENOTSUP
 * (CONFIG not negotiated), -ENOTCONN, the codec's errnos.
 */
int svq_fe_get_config(struct svq_fe *fe, uint32_t offset, void *buf,
		      uint32_t len);

/*
 * svq_fe_set_config() - SET_CONFIG: write @len bytes of device config space
 * at @offset. @flags is the vhost-user config flags word:
 * 0, or SVQ_VU_CONFIG_F_MIGRATION (1).
 *
 * Return: 0; -EINVAL (NULL, @len 0 or over SVQ_VU_CONFIG_MAX, @offset + @len
 * past 4 GiB, unknown @flags), -ENOTCONN, -ENOTSUP (CONFIG not negotiated),
 * the codec's errnos (-EIO: the backend refused it, with REPLY_ACK).
 */
int svq_fe_set_config(struct svq_fe *fe, uint32_t offset, const void *buf,
		      uint32_t len, uint32_t flags);

/*
 * svq_fe_vring_enable() - SET_VRING_ENABLE @on for queue @index, when
 * VHOST_USER_F_PROTOCOL_FEATURES was acked; otherwise nothing is sent (the
 * ring is enabled by its kick fd) and 0 returned.
 *
 * Return: 0; -EINVAL (NULL, @index past the queue count), -ENOTCONN, the
 * codec's errnos.
 */
int svq_fe_vring_enable(struct svq_fe *fe, unsigned int index, bool on);

/*
 * svq_fe_call() - send @req, a request with no fds, and wait for its reply
 * by the session's rules (svq_vu_call(): the REPLY_ACK ack, or the reply a
 * GET_* request has, in @reply). For what a proxy passes on as it is
 * (NET_SET_MTU).
 *
 * Return: 0; -EINVAL (NULL), -ENOTCONN, the codec's errnos (-EIO: refused).
 */
int svq_fe_call(struct svq_fe *fe, struct svq_vu_msg *req,
		struct svq_vu_msg *reply);

/*
 * svq_fe_reset() - reset the device: RESET_DEVICE when that protocol feature
 * was agreed, else RESET_OWNER. Acked features are cleared (call
 * svq_fe_set_features() again); memory regions stay registered.
 *
 * Return: 0; -EINVAL (NULL), -ENOTCONN, the codec's errnos.
 */
int svq_fe_reset(struct svq_fe *fe);

#endif /* SVQ_FRONTEND_H */
