/* SPDX-License-Identifier: MIT */
/*
 * The vhost engine: memory isolation for a VMM that owns its vhost-user
 * session (QEMU's vhost-user.c, a proxy, svqiso's own vu.h adapter).
 *
 * The VMM goes on sending every vhost-user message itself; the engine says
 * what to put in them and runs the queues. It sends nothing, owns no socket
 * and starts no thread:
 *
 *   negotiation   svqiso_vhost_guest_features(), _backend_features() and
 *                 _protocol_features() are the policy: what to offer the
 *                 guest, what to ask of the backend, which protocol
 *                 features pass. svqiso_vhost_set_features() records the
 *                 outcome.
 *   memory        svqiso_vhost_set_guest_mem() takes the guest's RAM (never
 *                 sent to the backend); the backend gets only the isolated
 *                 regions, announced through the region_add / region_del
 *                 callbacks and listed by svqiso_vhost_get_region().
 *   queues        svqiso_vhost_queue_start() turns the guest's ring into a
 *                 shadow ring: the VMM sends the backend its NUM, ADDR,
 *                 BASE and the engine's kick and call eventfds, and keeps
 *                 the guest's own fds for itself (guest kick: call
 *                 svqiso_vhost_queue_kick(); backend call fd readable: call
 *                 svqiso_vhost_queue_process()).
 *   stopping      svqiso_vhost_queue_drain(), then SET_VRING_ENABLE 0 and
 *                 GET_VRING_BASE on the shadow ring, then
 *                 svqiso_vhost_queue_stop() with the base the backend gave:
 *                 it returns the guest ring's base for the VMM's own
 *                 GET_VRING_BASE answer. Works for queues whose requests
 *                 stay posted (net RX): what the backend never took goes
 *                 back to the guest ring.
 *   backend lost  svqiso_vhost_queue_backend_lost(): the requests the
 *                 backend held stay, with their bounce copies, and the next
 *                 svqiso_vhost_queue_start() at the base it returned posts
 *                 them again to the new backend.
 *
 * Requests larger than the bounce arena: each goes through a one-off
 * isolated region (svq.h, oneoff_max), one per queue at a time, so
 * svqiso_vhost_queue_kick() and _process() may call region_add (the VMM
 * sends ADD_MEM_REG, or a new SET_MEM_TABLE, from there, while the queue
 * runs) and region_del (REM_MEM_REG) when the request completes. A VMM that
 * cannot do that sets SVQISO_VHOST_F_NO_ONEOFF (such a request then breaks
 * its queue), or refuses the region in region_add (the same, with its
 * errno in the reason). Size pool_size above the largest request a device
 * makes (virtio-blk: seg_max times size_max) and this never happens.
 *
 * A backend that never completes: a queue's bounce memory stays within its
 * arena and one one-off region, and what the guest posts past that stays
 * in the guest's ring. svqiso_vhost_queue_drain() and _stop() wait at most
 * their timeout, return -ETIMEDOUT and log the queue's name and what it
 * holds; the queue stays running and takes nothing new (drain) or stays
 * stopping (stop). Give up with svqiso_vhost_queue_backend_lost() (kept
 * for the next backend) or svqiso_vhost_queue_reset() (dropped).
 *
 * Thread safety: none inside one engine. The VMM serialises every call on
 * one engine (QEMU: everything under the BQL, kicks and calls served from
 * its main loop), except that kick and process of distinct queues may run
 * on distinct threads. Region callbacks run inside the call that needs the
 * region: on the control path (queue start, reserve), and from kick and
 * process for one-off regions; one at a time (under the iso's lock, see
 * iso.h), on the thread of that call.
 */
#ifndef SVQISO_VHOST_H
#define SVQISO_VHOST_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include <svqiso/common.h>
#include <svqiso/mem.h>
#include <svqiso/iso.h>
#include <svqiso/svq.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Engine flags */
#define SVQISO_VHOST_F_PRESERVE		(1u << 0)	/* copy-back policy
							 * "preserve" */
#define SVQISO_VHOST_F_NO_INDIRECT	(1u << 1)	/* shadow rings: no
							 * indirect tables */
#define SVQISO_VHOST_F_NO_EVENT_IDX	(1u << 2)	/* shadow rings: no
							 * event idx */
#define SVQISO_VHOST_F_LAZY_KICKS	(1u << 3)	/* SVQISO_SVQ_F_LAZY_KICKS */
#define SVQISO_VHOST_F_NO_ONEOFF	(1u << 4)	/* SVQISO_SVQ_F_NO_ONEOFF:
							 * no region is made
							 * from kick or
							 * process */

/* Queue indexes: 0 to SVQISO_VHOST_MAX_QUEUES - 1 (QEMU's VIRTIO_QUEUE_MAX). */
#define SVQISO_VHOST_MAX_QUEUES		1024

struct svqiso_vhost_opts {
	size_t sz;			/* = sizeof(struct svqiso_vhost_opts) */
	uint32_t flags;			/* SVQISO_VHOST_F_* */
	uint8_t copy;			/* enum svqiso_copy_kind */
	uint8_t shadow_layout;		/* enum svqiso_layout of every shadow
					 * ring */
	uint16_t max_num;		/* largest ring that gets a place in
					 * the shared ring region; a larger
					 * one has a region of its own.
					 * 0: 1024 */
	uint32_t ring_slots;		/* shadow rings per shared ring region;
					 * 0: 8. A device with more queues
					 * gets another region per that many */
	uint64_t pool_size;		/* bounce arena per queue;
					 * 0: SVQISO_ARENA_DEFAULT_SIZE */
	uint64_t batch_bytes;		/* the svq opts' batch_bytes */
	uint64_t iova_base;		/* where isolated regions start; 0:
					 * SVQISO_ISO_DEFAULT_BASE */
	svqiso_region_fn region_add;	/* an isolated region to give the
					 * backend (ADD_MEM_REG, or a new
					 * SET_MEM_TABLE); NULL: the VMM
					 * reads svqiso_vhost_get_region() */
	svqiso_region_fn region_del;	/* one to take back (REM_MEM_REG) */
	void *region_ctx;
	svqiso_log_fn log;		/* NULL: silent */
	void *log_ctx;
	const char *name;		/* prefix of log lines and memfd
					 * names; NULL: "svqiso" */
	uint64_t oneoff_max;		/* the svq opts' oneoff_max: largest
					 * request served through a one-off
					 * region; 0: any under 4 GiB */
};
#define svqiso_vhost_opts__last_field oneoff_max

struct svqiso_vhost;

/**
 * svqiso_vhost_new() - create an engine for one vhost-user device.
 *
 * Return: 0; -EINVAL (NULL, bad opts: unknown flags, copy, layout; a
 * max_num past 32768), -ENOMEM.
 */
SVQISO_API int svqiso_vhost_new(const struct svqiso_vhost_opts *opts,
				struct svqiso_vhost **out);

/**
 * svqiso_vhost_free() - drop every queue (requests in flight are not
 * completed) and every isolated region (region_del is not called: the
 * session goes with the engine). NULL is a no-op.
 */
SVQISO_API void svqiso_vhost_free(struct svqiso_vhost *vh);

/* ---- negotiation policy: no I/O ---- */

/*
 * Feature bits. Device-specific: 0 to 23 and 50 to 63. Transport (ring
 * layout and negotiation): 24 to 49; svqiso serves the guest's ring
 * itself, so the guest's transport bits and the backend's are decided
 * apart.
 */

/**
 * svqiso_vhost_guest_features() - what to offer the guest when the backend
 * offers @backend_offered (GET_FEATURES): its device bits; INDIRECT_DESC,
 * EVENT_IDX and RING_PACKED always (svqiso serves the guest ring); LOG_ALL
 * always (svqiso logs its own writes to guest RAM, see
 * svqiso_vhost_set_dirty_log(); the backend is never asked to log);
 * VERSION_1, ANY_LAYOUT and ORDER_PLATFORM as the backend offers them.
 * Never: ACCESS_PLATFORM (needs an IOTLB), the vhost-user
 * PROTOCOL_FEATURES bit, the other transport bits (each masked bit is
 * logged once per engine).
 */
SVQISO_API uint64_t svqiso_vhost_guest_features(struct svqiso_vhost *vh,
						uint64_t backend_offered);

/**
 * svqiso_vhost_backend_features() - the SET_FEATURES value for the backend
 * when the guest acked @guest_acked: the device bits the guest took; of the
 * transport bits, those the shadow rings use (INDIRECT_DESC and EVENT_IDX
 * as the backend offers them and the flags allow, RING_PACKED for packed
 * shadow rings) plus VERSION_1, ANY_LAYOUT and ORDER_PLATFORM as acked;
 * PROTOCOL_FEATURES when the backend offers it. Nothing the backend did
 * not offer.
 */
SVQISO_API uint64_t svqiso_vhost_backend_features(const struct svqiso_vhost *vh,
						  uint64_t guest_acked,
						  uint64_t backend_offered);

/**
 * svqiso_vhost_protocol_features() - the SET_PROTOCOL_FEATURES value when
 * the backend offers @offered: MQ, RARP, REPLY_ACK, NET_MTU, BACKEND_REQ,
 * CONFIG, RESET_DEVICE, CONFIGURE_MEM_SLOTS and STATUS pass; the rest
 * (LOG_SHMFD, PAGEFAULT, HOST_NOTIFIER, INFLIGHT_SHMFD, BACKEND_SEND_FD,
 * CROSS_ENDIAN, CRYPTO_SESSION, INBAND_NOTIFICATIONS, unknown bits) is
 * masked, each masked bit logged with its name.
 */
SVQISO_API uint64_t svqiso_vhost_protocol_features(struct svqiso_vhost *vh,
						   uint64_t offered);

/**
 * svqiso_vhost_set_features() - record what was agreed: the guest's
 * features (its rings' layout and options) and what SET_FEATURES gave the
 * backend (the shadow rings' options). The same values again while queues
 * run are accepted (QEMU sends SET_FEATURES more than once), and so is
 * VHOST_F_LOG_ALL (bit 26) set or cleared alone in @guest_acked: it
 * switches dirty logging on or off (see svqiso_vhost_set_dirty_log()).
 *
 * Return: 0; -EINVAL (NULL; @guest_acked and @backend_acked disagree on a
 * device bit, or a packed shadow layout without RING_PACKED in
 * @backend_acked), -EBUSY (other values while a queue runs).
 */
SVQISO_API int svqiso_vhost_set_features(struct svqiso_vhost *vh,
					 uint64_t guest_acked,
					 uint64_t backend_acked);

/**
 * svqiso_vhost_set_dirty_log() - the VMM's dirty log (QEMU: the vhost log
 * of SET_LOG_BASE; a proxy: the shared memory the VMM sent), or NULL for
 * none; copied. Every queue logs into it what svqiso writes to guest RAM
 * (svq.h, svqiso_dirty_log) while VHOST_F_LOG_ALL is in the guest
 * features given to svqiso_vhost_set_features(); without that bit the
 * log is kept but not written, so a VMM may free an old log once it has
 * cleared LOG_ALL or set a new one. Call it like any other engine call:
 * serialised with kick and process.
 *
 * Return: 0; -EINVAL (NULL @vh, a bad @log as svqiso_svq_set_dirty_log()
 * says): the log in place stays.
 */
SVQISO_API int svqiso_vhost_set_dirty_log(struct svqiso_vhost *vh,
					  const struct svqiso_dirty_log *log);

/* ---- memory ---- */

/**
 * svqiso_vhost_set_guest_mem() - replace the guest RAM table with @n
 * regions (gpa, size, hva; fd and fd_offset are not used). Allowed while
 * queues run, as long as no svqiso_vhost_queue_kick() or _process() on this
 * engine runs meanwhile (QEMU: vhost_commit under the BQL). Running queues
 * find their rings at the same guest addresses in the new table; a queue
 * whose ring is no longer in guest RAM breaks, with that reason.
 *
 * Return: 0; -EINVAL (NULL with @n > 0, overlapping or wrapping regions, a
 * zero size), -E2BIG (more than SVQISO_MEM_MAX_REGIONS), -ENOMEM: the old
 * table stays.
 */
SVQISO_API int svqiso_vhost_set_guest_mem(struct svqiso_vhost *vh,
					  const struct svqiso_mem_region *regions,
					  unsigned int n);

/**
 * svqiso_vhost_vmm_to_gpa() - the guest address of the VMM's own virtual
 * address @hva of @len bytes of guest RAM, by the current table (QEMU puts
 * its virtual addresses in SET_VRING_ADDR).
 *
 * Return: 0; -EINVAL (NULL, @len 0), -EFAULT (not all in one region).
 */
SVQISO_API int svqiso_vhost_vmm_to_gpa(const struct svqiso_vhost *vh,
				       uint64_t hva, uint64_t len,
				       uint64_t *gpa);

/**
 * svqiso_vhost_ring_to_gpa() - svqiso_vhost_vmm_to_gpa() for the three
 * areas of a ring of @num entries in @layout, given in the VMM's virtual
 * addresses.
 *
 * Return: 0; -EINVAL, -EFAULT (an area not in guest RAM).
 */
SVQISO_API int svqiso_vhost_ring_to_gpa(const struct svqiso_vhost *vh,
					const struct svqiso_vring_addr *hva,
					uint16_t num, uint8_t layout,
					struct svqiso_vring_addr *gpa);

/**
 * svqiso_vhost_reserve() - make the isolated regions queues 0 to
 * @nqueues - 1 will need (shadow rings, bounce arenas) now, so that a VMM
 * can send them in its first memory table. Queues started later make what
 * they need themselves.
 *
 * Return: 0; -EINVAL, -ENOMEM, the region_add callback's errno.
 */
SVQISO_API int svqiso_vhost_reserve(struct svqiso_vhost *vh,
				    unsigned int nqueues);

/** svqiso_vhost_nr_regions() - isolated regions the backend must hold. */
SVQISO_API unsigned int svqiso_vhost_nr_regions(const struct svqiso_vhost *vh);

/**
 * svqiso_vhost_get_region() - isolated region @i of
 * svqiso_vhost_nr_regions(), for a full SET_MEM_TABLE.
 *
 * Return: 0; -EINVAL (NULL), -ENOENT (@i out of range).
 */
SVQISO_API int svqiso_vhost_get_region(const struct svqiso_vhost *vh,
				       unsigned int i, struct svqiso_region *r);

/* ---- queues ---- */

/* struct svqiso_vhost_vring - the guest's ring, as the guest driver set it up. */
struct svqiso_vhost_vring {
	size_t sz;			/* = sizeof(struct svqiso_vhost_vring) */
	struct svqiso_vring_addr ring;	/* guest physical addresses */
	uint16_t num;
	uint8_t layout;			/* enum svqiso_layout: must agree with
					 * RING_PACKED in the guest's features */
	uint32_t base;			/* SET_VRING_BASE, vhost's format
					 * (see svqiso_svq_guest_base()) */
};
#define svqiso_vhost_vring__last_field base

/* struct svqiso_vhost_shadow - what the VMM sends the backend for a queue. */
struct svqiso_vhost_shadow {
	size_t sz;			/* = sizeof(struct svqiso_vhost_shadow) */
	struct svqiso_shadow_info ring;	/* SET_VRING_NUM (num), _ADDR (uaddr),
					 * _BASE (base) */
	int kick_fd;			/* SET_VRING_KICK: the engine writes it */
	int call_fd;			/* SET_VRING_CALL: the VMM watches it and
					 * calls svqiso_vhost_queue_process() */
	unsigned int reposted;		/* requests the backend lost that went
					 * onto the new shadow ring */
};
#define svqiso_vhost_shadow__last_field reposted

/**
 * svqiso_vhost_queue_start() - start queue @idx over the guest ring @vring.
 * The kick and call eventfds stay the same for the queue's life, so a VMM
 * may send them once per backend session. Requests the guest made
 * available before are taken at the next svqiso_vhost_queue_kick().
 *
 * After svqiso_vhost_queue_backend_lost() with the same ring at the base it
 * returned, the requests the old backend held go onto the fresh shadow ring
 * first (@shadow->reposted); at any other ring or base they are dropped
 * (the guest reset its ring). They are published, and the backend kicked,
 * by the next svqiso_vhost_queue_kick() or _process(): call one once the
 * backend has the ring (QEMU: by setting the guest kick notifier).
 *
 * A queue below what svqiso_vhost_reserve() covered, with a ring of at
 * most max_num entries, makes and drops no region here.
 *
 * Return: 0; -EINVAL (NULL, bad @vring, @idx out of range, no features
 * set, a layout that disagrees with them), -EBUSY (running), -EFAULT (the
 * ring is not in guest RAM), -ENOMEM, the region_add callback's errno.
 */
SVQISO_API int svqiso_vhost_queue_start(struct svqiso_vhost *vh, unsigned int idx,
					const struct svqiso_vhost_vring *vring,
					struct svqiso_vhost_shadow *shadow);

/**
 * svqiso_vhost_queue_set_call() - the guest's interrupt eventfd for queue
 * @idx, at any time (QEMU swaps it on every MSI-X mask and unmask); -1:
 * none, the VMM injects the interrupt itself when kick or process return
 * SVQISO_SIGNAL_GUEST. The engine writes it but does not own it.
 *
 * Return: 0; -EINVAL (NULL, @idx out of range, @fd below -1 or not open).
 */
SVQISO_API int svqiso_vhost_queue_set_call(struct svqiso_vhost *vh,
					   unsigned int idx, int fd);

/**
 * svqiso_vhost_queue_kick() - the guest kicked queue @idx: take what it made
 * available, copy it out and kick the backend.
 *
 * Return: the SVQISO_SIGNAL_* mask of what was signalled (the backend
 * kick; the guest's interrupt, written to the call fd if there is one);
 * -EINVAL (not running), -EIO (the queue is broken:
 * svqiso_vhost_queue_broken() says why).
 */
SVQISO_API int svqiso_vhost_queue_kick(struct svqiso_vhost *vh, unsigned int idx);

/**
 * svqiso_vhost_queue_process() - the backend's call fd for queue @idx is
 * readable (or the VMM polls): clear it, collect what the backend
 * completed, copy it back and complete it to the guest.
 *
 * Return: as svqiso_vhost_queue_kick().
 */
SVQISO_API int svqiso_vhost_queue_process(struct svqiso_vhost *vh,
					  unsigned int idx);

/**
 * svqiso_vhost_queue_poll() - the VMM polls queue @idx instead of waiting
 * on its eventfds (a spin between wake-ups): collect what the backend
 * completed, then take what the guest posted, reading neither eventfd
 * (svqiso_vhost_queue_process() reads the call fd, a system call), and
 * signal what that asks for. A stopping queue only collects.
 *
 * Return: the SVQISO_SIGNAL_* mask of what was signalled, as
 * svqiso_vhost_queue_kick() (with no guest call fd, the VMM injects the
 * interrupt on SVQISO_SIGNAL_GUEST), with SVQISO_SIGNAL_MOVED when requests
 * moved; not 0: keep polling. 0: nothing to do. -EINVAL (not running),
 * -EIO (broken).
 */
SVQISO_API int svqiso_vhost_queue_poll(struct svqiso_vhost *vh, unsigned int idx);

/**
 * svqiso_vhost_queue_set_busy_poll() - @on: ask the guest not to kick
 * queue @idx and the backend not to call it, while the VMM polls it with
 * svqiso_vhost_queue_poll(); off: ask them to again. After turning it off,
 * poll once more before waiting on the eventfds: what either side posted
 * while it was on came without a signal. A stop (drain, stop, backend
 * lost) or reset turns it off.
 *
 * Return: 0; -EINVAL (@on and the queue is not running), -EIO (broken).
 */
SVQISO_API int svqiso_vhost_queue_set_busy_poll(struct svqiso_vhost *vh,
						unsigned int idx, bool on);

/**
 * svqiso_vhost_queue_drain() - first step of a stop: take nothing new from
 * the guest and complete what the backend completes, until it has been
 * quiet for a while and, as far as it publishes, holds nothing. Requests a
 * backend never took (posted net RX buffers) may stay: stop gives them
 * back. Polls the backend's call fd itself, and @hup_fd (the session's
 * socket; -1: none) for the backend hanging up; at most @timeout_ms.
 *
 * Return: 0 (stop now: SET_VRING_ENABLE 0 and GET_VRING_BASE on the shadow
 * ring, then svqiso_vhost_queue_stop()); -ETIMEDOUT (the backend goes on
 * working, or holds requests it never completes: logged with the queue's
 * name and what it holds; the queue still runs, taking nothing new from
 * the guest; stopping it now stops it holding requests, which stop waits
 * for); -ECONNRESET (@hup_fd hung up: svqiso_vhost_queue_backend_lost());
 * -EINVAL (not running), -EIO (broken).
 */
SVQISO_API int svqiso_vhost_queue_drain(struct svqiso_vhost *vh, unsigned int idx,
					int timeout_ms, int hup_fd);

/**
 * svqiso_vhost_queue_stop() - the backend stopped the shadow ring of queue
 * @idx at @shadow_base (GET_VRING_BASE). What it never took goes back to
 * the guest ring; what it holds is waited for (at most @timeout_ms,
 * watching @hup_fd as drain does). @guest_base receives the guest ring's
 * base in vhost's format: what the VMM's own GET_VRING_BASE answers, and
 * the base to start the queue again at.
 *
 * Requests a start posted again for a lost backend, if this one did not
 * take them, are not given back (svqiso_vhost_queue_start() at
 * @guest_base posts them again, as after
 * svqiso_vhost_queue_backend_lost()): their chains may lie before chains
 * completed since.
 *
 * Return: 0 (stopped, nothing in flight but those kept); -ETIMEDOUT (the backend still
 * holds requests, logged with the queue's name and their number: the queue
 * is still stopping; call again to wait more, any @shadow_base, or give up
 * on them with svqiso_vhost_queue_backend_lost(), which keeps them for the
 * next start, or svqiso_vhost_queue_reset(), which drops them; @guest_base
 * is set, and past what the backend holds); -ECONNRESET
 * (@hup_fd hung up: the queue is stopped and keeps what the backend held,
 * as after svqiso_vhost_queue_backend_lost(); @guest_base is set);
 * -EINVAL (NULL, not running), -EIO (broken, or a @shadow_base that cannot
 * be: @guest_base is set and the queue is stopped).
 */
SVQISO_API int svqiso_vhost_queue_stop(struct svqiso_vhost *vh, unsigned int idx,
				       uint32_t shadow_base, int timeout_ms,
				       int hup_fd, uint32_t *guest_base);

/**
 * svqiso_vhost_queue_backend_lost() - the backend of queue @idx is gone
 * (hung up, or no GET_VRING_BASE answer): stop the queue keeping the
 * requests it held, with their bounce copies. @guest_base receives the base
 * to restart at, past every request the engine took, so the guest's ring
 * does not hand them out twice; svqiso_vhost_queue_start() at that base
 * posts them again. A stopped queue: only sets @guest_base.
 *
 * Return: the number of requests kept (>= 0); -EINVAL (NULL, @idx never
 * started).
 */
SVQISO_API int svqiso_vhost_queue_backend_lost(struct svqiso_vhost *vh,
					       unsigned int idx,
					       uint32_t *guest_base);

/**
 * svqiso_vhost_queue_reset() - drop queue @idx's requests, running or kept,
 * without completing them (a device reset: the guest sets its rings up
 * afresh). The queue is stopped. What the requests held (bounce space, a
 * one-off region) goes at the next svqiso_vhost_queue_start() of @idx or
 * at svqiso_vhost_free(): a backend that has not been reset yet may still
 * write there.
 *
 * Return: 0; -EINVAL.
 */
SVQISO_API int svqiso_vhost_queue_reset(struct svqiso_vhost *vh, unsigned int idx);

/** svqiso_vhost_queue_running() - whether queue @idx runs (started, not
 * stopped). */
SVQISO_API bool svqiso_vhost_queue_running(const struct svqiso_vhost *vh,
					   unsigned int idx);

/** svqiso_vhost_queue_in_flight() - requests queue @idx took from the guest
 * and did not complete (kept ones included); 0 for a bad @idx. */
SVQISO_API unsigned int svqiso_vhost_queue_in_flight(const struct svqiso_vhost *vh,
						     unsigned int idx);

/** svqiso_vhost_queue_broken() - why queue @idx is broken, or NULL. */
SVQISO_API const char *svqiso_vhost_queue_broken(const struct svqiso_vhost *vh,
						 unsigned int idx);

/**
 * svqiso_vhost_queue_stats() - the counters of queue @idx's svq.
 *
 * Return: 0; -EINVAL, -ENOENT (never started).
 */
SVQISO_API int svqiso_vhost_queue_stats(const struct svqiso_vhost *vh,
					unsigned int idx,
					struct svqiso_svq_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* SVQISO_VHOST_H */
