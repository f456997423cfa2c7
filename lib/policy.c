/* SPDX-License-Identifier: MIT */
/* Feature policy under memory isolation. See policy.h. */
#include "policy.h"

uint64_t svq_feat_guest(uint64_t backend_offered, uint64_t *masked)
{
	uint64_t device = backend_offered & ~SVQ_F_TRANSPORT;
	uint64_t pass = backend_offered & SVQ_F_PASS;

	if (masked)
		*masked = backend_offered & SVQ_F_TRANSPORT & ~SVQ_F_PASS &
			  ~SVQ_F_GUEST_OWN & ~SVQ_F_BIT(SVQ_F_PROTOCOL_FEATURES);
	return device | pass | SVQ_F_GUEST_OWN;
}

uint64_t svq_feat_backend(uint64_t guest_acked, uint64_t backend_offered,
			  uint32_t shadow)
{
	uint64_t f = guest_acked & ~SVQ_F_TRANSPORT;

	f |= guest_acked & SVQ_F_PASS;
	if (!(shadow & SVQ_FEAT_NO_INDIRECT))
		f |= SVQ_F_BIT(SVQ_F_INDIRECT_DESC);
	if (!(shadow & SVQ_FEAT_NO_EVENT_IDX))
		f |= SVQ_F_BIT(SVQ_F_EVENT_IDX);
	if (shadow & SVQ_FEAT_SHADOW_PACKED)
		f |= SVQ_F_BIT(SVQ_F_RING_PACKED);
	f |= SVQ_F_BIT(SVQ_F_PROTOCOL_FEATURES);
	/* Never what was not offered. */
	return f & backend_offered;
}

uint32_t svq_feat_ring_flags(uint64_t features)
{
	uint32_t f = 0;

	if (features & SVQ_F_BIT(SVQ_F_INDIRECT_DESC))
		f |= SVQISO_RING_F_INDIRECT;
	if (features & SVQ_F_BIT(SVQ_F_EVENT_IDX))
		f |= SVQISO_RING_F_EVENT_IDX;
	return f;
}

static const char *const protocol_names[] = {
	"MQ", "LOG_SHMFD", "RARP", "REPLY_ACK", "NET_MTU", "BACKEND_REQ",
	"CROSS_ENDIAN", "CRYPTO_SESSION", "PAGEFAULT", "CONFIG",
	"BACKEND_SEND_FD", "HOST_NOTIFIER", "INFLIGHT_SHMFD", "RESET_DEVICE",
	"INBAND_NOTIFICATIONS", "CONFIGURE_MEM_SLOTS", "STATUS",
};

const char *svq_feat_protocol_name(unsigned int bit)
{
	return bit < SVQ_ARRAY_SIZE(protocol_names) ? protocol_names[bit] : NULL;
}

const char *svq_feat_protocol_why(unsigned int bit)
{
	switch (bit) {
	case 1:		/* LOG_SHMFD */
		return "the backend writes no guest RAM to log";
	case 8:		/* PAGEFAULT */
		return "the backend maps no guest RAM";
	case 10:	/* BACKEND_SEND_FD */
	case 11:	/* HOST_NOTIFIER */
		return "a doorbell mapped into the guest would bypass the shadow queue";
	case 12:	/* INFLIGHT_SHMFD */
		return "it would describe shadow descriptors; svqiso resubmits itself";
	default:
		return "not honoured under memory isolation";
	}
}

uint64_t svq_feat_protocol(uint64_t offered, uint64_t ok, svqiso_log_fn log,
			   void *log_ctx, const char *prefix, const char *why)
{
	uint64_t masked = offered & ~ok;
	unsigned int bit;

	for (bit = 0; bit < 64; bit++) {
		const char *name = svq_feat_protocol_name(bit);

		if (!(masked & (1ull << bit)))
			continue;
		svq_log(log, log_ctx, SVQISO_LOG_INFO,
			"%s: masking protocol feature %s (bit %u): %s", prefix,
			name ? name : "unknown", bit,
			(SVQ_PROTO_ISOLATION_OK & (1ull << bit)) && why ? why :
			svq_feat_protocol_why(bit));
	}
	return offered & ok;
}
