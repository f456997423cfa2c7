/* SPDX-License-Identifier: MIT */
/*
 * Feature policy under memory isolation, in one place: which feature bits
 * the guest is offered, which the backend is asked for, which vhost-user
 * protocol features pass. Pure functions; the callers log.
 *
 * Bits 0 to 23 and 50 to 63 are device-specific and pass as the backend
 * offers them. Bits 24 to 49 are transport bits (24 to 41 the ring and
 * negotiation, 42 to 49 reserved): svqiso serves the guest's ring itself
 * and drives the backend's shadow ring, so the two sides get their
 * transport bits apart, and a transport bit svqiso does not implement is
 * masked on both.
 */
#ifndef SVQ_POLICY_H
#define SVQ_POLICY_H

#include "internal.h"

/* Transport feature bits (VIRTIO 1.2, 6) and vhost's. */
#define SVQ_F_NOTIFY_ON_EMPTY	24
#define SVQ_F_ANY_LAYOUT	27
#define SVQ_F_INDIRECT_DESC	28
#define SVQ_F_EVENT_IDX		29
#define SVQ_F_VERSION_1		32
#define SVQ_F_ACCESS_PLATFORM	33
#define SVQ_F_RING_PACKED	34
#define SVQ_F_ORDER_PLATFORM	36
#define SVQ_F_LOG_ALL		26	/* vhost: dirty logging */
#define SVQ_F_PROTOCOL_FEATURES	30	/* vhost-user */

#define SVQ_F_BIT(b)		(1ull << (b))
#define SVQ_F_TRANSPORT		(((1ull << 50) - 1) & ~((1ull << 24) - 1))

/* Served by svqiso on the guest's ring, whatever the backend does. */
#define SVQ_F_GUEST_OWN		(SVQ_F_BIT(SVQ_F_INDIRECT_DESC) |	\
				 SVQ_F_BIT(SVQ_F_EVENT_IDX) |		\
				 SVQ_F_BIT(SVQ_F_RING_PACKED))
/* Passed to both sides when the backend offers them. */
#define SVQ_F_PASS		(SVQ_F_BIT(SVQ_F_VERSION_1) |		\
				 SVQ_F_BIT(SVQ_F_ANY_LAYOUT) |		\
				 SVQ_F_BIT(SVQ_F_ORDER_PLATFORM))
/* Transport bits a shadow ring may carry toward the backend. */
#define SVQ_F_SHADOW_OK		(SVQ_F_PASS |				\
				 SVQ_F_BIT(SVQ_F_NOTIFY_ON_EMPTY) |	\
				 SVQ_F_BIT(SVQ_F_INDIRECT_DESC) |	\
				 SVQ_F_BIT(SVQ_F_EVENT_IDX) |		\
				 SVQ_F_BIT(SVQ_F_RING_PACKED) |		\
				 SVQ_F_BIT(SVQ_F_PROTOCOL_FEATURES))

/* What the shadow rings of a device may use (svq_feat_backend()). */
#define SVQ_FEAT_NO_INDIRECT	(1u << 0)
#define SVQ_FEAT_NO_EVENT_IDX	(1u << 1)
#define SVQ_FEAT_SHADOW_PACKED	(1u << 2)

/* The guest's offer, from the backend's. @masked: the backend's transport
 * bits left out (NULL: not wanted). */
uint64_t svq_feat_guest(uint64_t backend_offered, uint64_t *masked);

/* SET_FEATURES for the backend once the guest acked @guest_acked. */
uint64_t svq_feat_backend(uint64_t guest_acked, uint64_t backend_offered,
			  uint32_t shadow);

/* The SVQISO_RING_F_* flags a ring negotiated with @features has. */
uint32_t svq_feat_ring_flags(uint64_t features);

/*
 * vhost-user protocol feature bits honoured under memory isolation: each
 * one either carries no guest address or is served by svqiso. MQ, RARP,
 * REPLY_ACK, NET_MTU, BACKEND_REQ (config-change notices), CONFIG,
 * RESET_DEVICE, CONFIGURE_MEM_SLOTS, STATUS.
 */
#define SVQ_PROTO_ISOLATION_OK	((1ull << 0) | (1ull << 2) | (1ull << 3) | \
				 (1ull << 4) | (1ull << 5) | (1ull << 9) | \
				 (1ull << 13) | (1ull << 15) | (1ull << 16))

/* The name of protocol feature @bit, or NULL. */
const char *svq_feat_protocol_name(unsigned int bit);

/* Why protocol feature @bit is masked under isolation (for the log). */
const char *svq_feat_protocol_why(unsigned int bit);

/*
 * svq_feat_protocol() - @offered less what @ok does not hold; each bit
 * masked is logged at INFO, named, with @prefix and the reason (@why for
 * a bit isolation honours but the caller does not).
 */
uint64_t svq_feat_protocol(uint64_t offered, uint64_t ok, svqiso_log_fn log,
			   void *log_ctx, const char *prefix, const char *why);

#endif /* SVQ_POLICY_H */
