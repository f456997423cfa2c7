/* SPDX-License-Identifier: MIT */
/*
 * The harness's private frontend <-> backend protocol: what a vhost-user
 * frontend would say with ADD_MEM_REG / REM_MEM_REG / SET_VRING_*, cut down
 * to what the isolation tests need.
 *
 * One SOCK_SEQPACKET socket; every message is one struct hb_msg, fds travel
 * with it as SCM_RIGHTS. The frontend sends a request and waits for the
 * backend's HB_ACK with the same seq before it goes on, so a region the
 * frontend announced is mapped by the backend before any descriptor can
 * point into it, and unmapped before the frontend frees it.
 *
 *  HB_REGION_ADD  fd: the region's memfd; region: iova, size, offset, uaddr
 *  HB_REGION_DEL  region.iova: unmap and close it
 *  HB_RING        fds: kick, call eventfds; ring: the shadow ring as
 *                 svqiso_shadow_info describes it. The backend translates
 *                 the uaddr triple through the regions' uaddr (as vhost-user
 *                 backends do for SET_VRING_ADDR) and checks it lands on the
 *                 same bytes as the iova triple. Sending it again resets the
 *                 device (a new ring, misbehaviour disarmed).
 *  HB_STATS       ack carries struct hb_stats
 *
 * Every ack's result is 0 or -errno. The backend never writes to stdout.
 */
#ifndef SVQ_HARNESS_PROTO_H
#define SVQ_HARNESS_PROTO_H

#include <stdint.h>

enum hb_type {
	HB_REGION_ADD = 1,
	HB_REGION_DEL = 2,
	HB_RING = 3,
	HB_STATS = 4,
	HB_ACK = 0x80,
};

struct hb_region {
	uint64_t iova;
	uint64_t size;
	uint64_t offset;	/* mmap offset within the fd */
	uint64_t uaddr;		/* the frontend's mapping of it */
};

struct hb_ring {
	uint8_t layout;		/* enum svqiso_layout */
	uint8_t pad;
	uint16_t num;
	uint32_t features;	/* SVQISO_RING_F_* */
	uint64_t desc, driver, device;		/* IOVAs */
	uint64_t udesc, udriver, udevice;	/* frontend addresses */
};

struct hb_stats {
	uint64_t chains;		/* completed normally */
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t kicks;			/* kick eventfd reads */
	uint64_t calls;			/* call eventfd writes */
	uint64_t calls_suppressed;	/* the driver declined a call */
	uint64_t regions;		/* mapped now */
	uint64_t region_bytes;		/* mapped now */
	uint64_t region_adds;
	uint64_t region_dels;
	uint64_t misbehaved;		/* hostile acts done */
	uint64_t overflowed;		/* len-overflow: lengths inflated */
	int32_t error;			/* first -errno of the device role */
	uint32_t pad;
	char reason[160];		/* its reason, if any */
};

struct hb_msg {
	uint32_t type;		/* enum hb_type */
	int32_t result;		/* HB_ACK: 0 or -errno */
	uint64_t seq;
	union {
		struct hb_region region;
		struct hb_ring ring;
		struct hb_stats stats;
	};
};

#define HB_MAX_FDS 2

/* Send @m with @nfds fds. Return: 0 or -errno. */
int hb_send(int sock, const struct hb_msg *m, const int *fds, unsigned int nfds);

/*
 * Receive one message; received fds are close-on-exec. Fds beyond @max_fds
 * are closed.
 * Return: 0; -EPIPE on end of stream, -EBADMSG on a short message, -errno.
 */
int hb_recv(int sock, struct hb_msg *m, int *fds, unsigned int max_fds,
	    unsigned int *nfds);

/* Backend misbehaviour modes (backend --mode=NAME). */
#define HB_MODES(X)							\
	X(NONE, "none")			/* an honest echo-hash device */\
	X(BAD_ID, "bad-id")		/* used id >= num */		\
	X(UNISSUED_ID, "unissued-id")	/* used id < num, not in flight */ \
	X(DUP_ID, "dup-id")		/* a completed id again */	\
	X(TOO_MANY, "too-many")		/* one more used than outstanding */ \
	X(IDX_JUMP, "idx-jump")		/* split: used->idx leaps */	\
	X(LEN_OVERFLOW, "len-overflow")	/* used len past the writable bytes */ \
	X(FLAGS_AVAIL, "flags-avail")	/* packed: used desc AVAIL=w USED=!w */ \
	X(FLAGS_USED, "flags-used")	/* packed: used desc AVAIL=!w USED=w */ \
	X(SCRIBBLE, "scribble")		/* random bytes over isolated memory */

#define HB_MODE_ENUM(e, s) HB_MODE_##e,
enum hb_mode { HB_MODES(HB_MODE_ENUM) HB_NR_MODES };
#undef HB_MODE_ENUM

const char *hb_mode_name(int mode);
/* Return: the mode, or -1. */
int hb_mode_parse(const char *name);

#endif /* SVQ_HARNESS_PROTO_H */
