/* SPDX-License-Identifier: MIT */
/*
 * vhost-user message codec, internal: the wire format, and sending and
 * receiving one message with its fds over a unix stream socket.
 *
 * A message is a 12-byte header, then hdr.size bytes of payload; fds travel
 * beside it as SCM_RIGHTS, at most SVQ_VU_MAX_FDS. Numbers are in host byte
 * order, as the protocol specifies. The peer is untrusted: every length it
 * sends is checked, every wait is bounded, and no fd it sends outlives a
 * failed receive.
 *
 * Thread safety: none of its own; one thread at a time per socket.
 */
#ifndef SVQ_VHOST_USER_H
#define SVQ_VHOST_USER_H

#include "internal.h"

/* Requests (frontend to backend); only the ones svqiso knows. */
enum svq_vu_request {
	SVQ_VU_GET_FEATURES = 1,
	SVQ_VU_SET_FEATURES = 2,
	SVQ_VU_SET_OWNER = 3,
	SVQ_VU_RESET_OWNER = 4,
	SVQ_VU_SET_MEM_TABLE = 5,
	SVQ_VU_SET_LOG_BASE = 6,
	SVQ_VU_SET_LOG_FD = 7,
	SVQ_VU_SET_VRING_NUM = 8,
	SVQ_VU_SET_VRING_ADDR = 9,
	SVQ_VU_SET_VRING_BASE = 10,
	SVQ_VU_GET_VRING_BASE = 11,
	SVQ_VU_SET_VRING_KICK = 12,
	SVQ_VU_SET_VRING_CALL = 13,
	SVQ_VU_SET_VRING_ERR = 14,
	SVQ_VU_GET_PROTOCOL_FEATURES = 15,
	SVQ_VU_SET_PROTOCOL_FEATURES = 16,
	SVQ_VU_GET_QUEUE_NUM = 17,
	SVQ_VU_SET_VRING_ENABLE = 18,
	SVQ_VU_SET_BACKEND_REQ_FD = 21,
	SVQ_VU_GET_CONFIG = 24,
	SVQ_VU_SET_CONFIG = 25,
	SVQ_VU_GET_INFLIGHT_FD = 31,
	SVQ_VU_SET_INFLIGHT_FD = 32,
	SVQ_VU_RESET_DEVICE = 34,
	SVQ_VU_GET_MAX_MEM_SLOTS = 36,
	SVQ_VU_ADD_MEM_REG = 37,
	SVQ_VU_REM_MEM_REG = 38,
};

/* Virtio feature bit a backend offers when it speaks protocol features. */
#define SVQ_VU_F_PROTOCOL_FEATURES	30

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
enum svq_vu_protocol_feature {
	SVQ_VU_PROTOCOL_F_MQ = 0,
	SVQ_VU_PROTOCOL_F_LOG_SHMFD = 1,
	SVQ_VU_PROTOCOL_F_RARP = 2,
	SVQ_VU_PROTOCOL_F_REPLY_ACK = 3,
	SVQ_VU_PROTOCOL_F_NET_MTU = 4,
	SVQ_VU_PROTOCOL_F_BACKEND_REQ = 5,
	SVQ_VU_PROTOCOL_F_CROSS_ENDIAN = 6,
	SVQ_VU_PROTOCOL_F_CRYPTO_SESSION = 7,
	SVQ_VU_PROTOCOL_F_PAGEFAULT = 8,
	SVQ_VU_PROTOCOL_F_CONFIG = 9,
	SVQ_VU_PROTOCOL_F_BACKEND_SEND_FD = 10,
	SVQ_VU_PROTOCOL_F_HOST_NOTIFIER = 11,
	SVQ_VU_PROTOCOL_F_INFLIGHT_SHMFD = 12,
	SVQ_VU_PROTOCOL_F_RESET_DEVICE = 13,
	SVQ_VU_PROTOCOL_F_INBAND_NOTIFICATIONS = 14,
	SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15,
	SVQ_VU_PROTOCOL_F_STATUS = 16,
};

/* Header flags: bits 0-1 are the protocol version. */
#define SVQ_VU_VERSION		0x1u
#define SVQ_VU_VERSION_MASK	0x3u
#define SVQ_VU_FLAG_REPLY	(1u << 2)
#define SVQ_VU_FLAG_NEED_REPLY	(1u << 3)

#define SVQ_VU_MAX_FDS		8	/* per message */
#define SVQ_VU_MEM_REGIONS	8	/* in SET_MEM_TABLE */
#define SVQ_VU_CONFIG_MAX	256	/* config space bytes in GET/SET_CONFIG */

/* SET_VRING_KICK/CALL/ERR u64: queue index, and "no fd: poll instead". */
#define SVQ_VU_VRING_IDX_MASK	0xffull
#define SVQ_VU_VRING_NOFD	(1ull << 8)

struct svq_vu_hdr {
	uint32_t request;	/* enum svq_vu_request */
	uint32_t flags;		/* version | SVQ_VU_FLAG_* */
	uint32_t size;		/* payload bytes that follow */
};
#define SVQ_VU_HDR_SIZE 12

/* SET/GET_VRING_BASE, SET_VRING_NUM, SET_VRING_ENABLE */
struct svq_vu_vring_state {
	uint32_t index;
	uint32_t num;
};

/* SET_VRING_ADDR: host addresses in the frontend's address space. */
struct svq_vu_vring_addr {
	uint32_t index;
	uint32_t flags;		/* bit 0: log used ring writes */
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

struct svq_vu_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};

/* SET_MEM_TABLE: one fd per region, in order. */
struct svq_vu_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct svq_vu_mem_region regions[SVQ_VU_MEM_REGIONS];
};

/* ADD_MEM_REG / REM_MEM_REG: one fd. */
struct svq_vu_mem_reg {
	uint64_t padding;
	struct svq_vu_mem_region region;
};

/* SET_LOG_BASE with LOG_SHMFD: the log's shared memory, one fd. */
struct svq_vu_log {
	uint64_t mmap_size;
	uint64_t mmap_offset;
};

/* GET_CONFIG / SET_CONFIG: size bytes of config space from offset. */
struct svq_vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t payload[SVQ_VU_CONFIG_MAX];
};
#define SVQ_VU_CONFIG_HDR_SIZE 12
#define SVQ_VU_CONFIG_F_MIGRATION	(1u << 0)	/* SET_CONFIG flags */

union svq_vu_payload {
	uint64_t u64;
	struct svq_vu_vring_state state;
	struct svq_vu_vring_addr addr;
	struct svq_vu_mem_table mem;
	struct svq_vu_mem_reg mem_reg;
	struct svq_vu_config config;
	struct svq_vu_log log;
	uint8_t raw[1];
};

/*
 * struct svq_vu_msg - one message as held in memory. Only hdr.size bytes of
 * payload are on the wire. Received fds are the receiver's to close.
 */
struct svq_vu_msg {
	struct svq_vu_hdr hdr;
	union svq_vu_payload payload;
	int fds[SVQ_VU_MAX_FDS];
	unsigned int nfds;
	unsigned int nfds_dropped;	/* received past svq_vu_fds_allowed()
					 * and closed by svq_vu_recv() */
};

_Static_assert(sizeof(struct svq_vu_hdr) == SVQ_VU_HDR_SIZE, "wire layout");
_Static_assert(sizeof(struct svq_vu_vring_addr) == 40, "wire layout");
_Static_assert(sizeof(struct svq_vu_mem_table) == 8 + 8 * 32, "wire layout");
_Static_assert(sizeof(struct svq_vu_mem_reg) == 40, "wire layout");
_Static_assert(offsetof(struct svq_vu_config, payload) == SVQ_VU_CONFIG_HDR_SIZE,
	       "wire layout");

/* Oversized payloads up to this many bytes are read and dropped (-EMSGSIZE). */
#define SVQ_VU_DRAIN_MAX	65536

/* How long svq_vu_send() waits for room on a non-blocking socket. */
#define SVQ_VU_SEND_TIMEOUT_MS	1000

/*
 * svq_vu_msg_init() - zero @m, then set request, version and payload size.
 * nfds is 0 and every fds[] slot is -1.
 */
void svq_vu_msg_init(struct svq_vu_msg *m, uint32_t request, uint32_t size);

/*
 * svq_vu_fds_allowed() - how many fds a message with this header may carry:
 * SET_MEM_TABLE up to SVQ_VU_MAX_FDS; one for SET_LOG_BASE, SET_LOG_FD,
 * SET_VRING_KICK/CALL/ERR, SET_BACKEND_REQ_FD, SET_INFLIGHT_FD,
 * ADD/REM_MEM_REG and the reply to GET_INFLIGHT_FD; none otherwise.
 */
unsigned int svq_vu_fds_allowed(const struct svq_vu_hdr *hdr);

/*
 * svq_vu_send() - write header, hdr.size bytes of payload and the fds as
 * given (flags are not touched). Retries on EINTR, resumes partial writes,
 * and on a non-blocking socket waits up to SVQ_VU_SEND_TIMEOUT_MS for room.
 *
 * Return: 0; -EINVAL (NULL @m, nfds over SVQ_VU_MAX_FDS, a negative fd,
 * hdr.size over the payload union), -ECONNRESET (peer gone), -ETIMEDOUT,
 * other -errno from sendmsg(). On error part of the message may be out: the
 * connection is no longer usable.
 * Context: sleeps; never raises SIGPIPE.
 */
int svq_vu_send(int sock, const struct svq_vu_msg *m);

/*
 * svq_vu_recv() - read one message into @m, waiting at most @timeout_ms in
 * all. Fds beyond what svq_vu_fds_allowed() grants are closed and counted
 * in m->nfds_dropped; the ones kept are in m->fds and are the caller's. On error no fd is kept (nfds is 0).
 *
 * Return: 0; -EINVAL (NULL @m, negative @timeout_ms), -ETIMEDOUT,
 * -ECONNRESET (peer closed before the first byte, or reset), -EPROTO (peer
 * closed mid-message, fds cut short by the kernel (MSG_CTRUNC), or a payload
 * over SVQ_VU_DRAIN_MAX), -EMSGSIZE (a payload larger than the union: read
 * and dropped, the connection stays in step), other -errno from recvmsg().
 * After any error but -EMSGSIZE the connection is out of step: close it.
 * Context: sleeps up to @timeout_ms.
 */
int svq_vu_recv(int sock, struct svq_vu_msg *m, int timeout_ms);

/*
 * svq_vu_call() - send @req (its flags are set here: version 1, and
 * NEED_REPLY when @reply_ack and the request has no reply of its own) and
 * wait for what comes back. For GET_FEATURES, GET_PROTOCOL_FEATURES,
 * GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, GET_VRING_BASE and GET_CONFIG the reply
 * lands in @reply; it must name the same request, carry the REPLY flag and
 * version 1, and be the size that request returns (for GET_CONFIG, the same
 * offset and size as asked). For other requests, with @reply_ack, the u64
 * ack is awaited the same way (@reply may then be NULL); without it nothing
 * is awaited. No fd that comes with a reply is kept (@reply's nfds is 0).
 *
 * Return: 0; -EINVAL (NULL @req, or NULL @reply where a reply is due),
 * -EPROTO (a reply that breaks the rules above), -EIO (non-zero ack), and
 * svq_vu_send()'s and svq_vu_recv()'s errnos.
 * Context: sleeps up to @timeout_ms waiting for the reply.
 */
int svq_vu_call(int sock, struct svq_vu_msg *req, struct svq_vu_msg *reply,
		bool reply_ack, int timeout_ms);

#endif /* SVQ_VHOST_USER_H */
