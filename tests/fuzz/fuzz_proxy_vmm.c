/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: svqiso-proxy's VMM side (adapters/proxy/proxy.c), a hostile
 * VMM whose whole message stream comes from the input: headers, flags,
 * sizes, payloads, fds of several kinds (memfds of guest RAM, eventfds,
 * /dev/null), region tables, ring addresses, vring sizes and bases,
 * features, config windows, garbage; and guest RAM contents (split rings
 * with their descriptors) written into the memfds before they are sent.
 *
 * The stream is written into a socketpair before proxy_serve() runs, then
 * the VMM's side is shut, so the session ends at the stream's end or at the
 * message the proxy refuses. Behind the proxy runs backend.c's vhost-user
 * backend, on a thread of this process: honest (features, protocol
 * features and queue count from the input), it completes every request on
 * the shadow rings, so that no queue stop waits. For some inputs it
 * misbehaves on the first connection of the hostile session (a nack, a
 * reply of the wrong size, a hang-up, a vring base that lies), which covers
 * the proxy's handling of the backend's replies and its reconnects.
 *
 * Each message is classified as the proxy's checks (proxy.c, handle())
 * must see it: certainly refused, certainly accepted, or either (its fate
 * depends on state this target does not model). Invariants:
 *  - proxy_serve() returns 0 (the VMM hung up) or -EPROTO, and logs exactly
 *    one "closing the session" line in the second case, none in the first;
 *  - the replies are, in order, exactly those of a prefix of the messages
 *    that have one (no reply to a refused message or after it), each well
 *    formed, with the values the proxy offers (features, protocol
 *    features, slots, the backend's queue count, the vring asked for);
 *  - a certainly refused message ends the session there, its log line
 *    naming it; a stream of certainly accepted messages is served in full;
 *  - the same proxy then serves an honest session (GET_FEATURES and
 *    GET_PROTOCOL_FEATURES round trips) and returns 0;
 *  - no fd and no memory outlives the input (the fake backend is idle when
 *    the fds are counted).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <svqiso/vhost.h>

#include "vhost_user.h"
#include "proxy.h"
#include "backend.h"
#include "fuzz.h"
#include "fuzz_vhost_user.h"

#define PAYLOAD_MAX	sizeof(union svq_vu_payload)
#define BIT(n)		(1ull << (n))
#define F_PROTOCOL	BIT(SVQ_VU_F_PROTOCOL_FEATURES)
#define PF(name)	BIT(SVQ_VU_PROTOCOL_F_##name)

#define VU_NET_SET_MTU	20
#define PROXY_SLOTS	32	/* GET_MAX_MEM_SLOTS, proxy.h */

/* What the proxy's frontend agrees to (frontend.c), and what the proxy
 * serves itself or passes on (proxy.c), spelled out apart from them. */
#define FE_HONOURED	(PF(MQ) | PF(REPLY_ACK) | PF(NET_MTU) | PF(CONFIG) |	\
			 PF(RESET_DEVICE) | PF(CONFIGURE_MEM_SLOTS))
#define PROTO_OWN	(PF(REPLY_ACK) | PF(CONFIGURE_MEM_SLOTS) | PF(LOG_SHMFD))
#define PROTO_PASSED	(PF(MQ) | PF(CONFIG) | PF(NET_MTU) | PF(RESET_DEVICE))

#define TIMEOUT_MS	2000	/* the proxy's wait for the backend; never hit */

/* ================= the hostile VMM ================= */

#define NSLOT		4
#define SLOT_SIZE	(64u << 10)
#define SLOT_GPA(k)	((uint64_t)((k) + 1) << 20)
#define SLOT_UADDR(k)	(0x7f0000000000ull + ((uint64_t)((k) + 1) << 24))
#define RING_DESC	0x0000u
#define RING_AVAIL	0x1000u
#define RING_USED	0x2000u
#define RING_BUFS	0x4000u

#define MAX_MSGS	64
#define MAX_MSG_FDS	10
#define MAX_BYTES	(48u << 10)

enum fd_kind { FK_EVENT, FK_SLOT, FK_NULL, FK_SMALL, FK_NR };

enum verdict { V_FINE, V_MAYBE, V_BAD };

/* One message of the stream, as the model sees it. */
struct vmsg {
	struct svq_vu_hdr hdr;
	union svq_vu_payload p;		/* hdr.size bytes of it, if it fits */
	unsigned int nfds;
	enum fd_kind kind[MAX_MSG_FDS];
	enum verdict v;
	bool reply;			/* one is due, if it is served */
};

struct vmm {
	struct fz *f;
	int sock;
	int slot[NSLOT];		/* memfds of guest RAM, made on use */
	size_t len;			/* bytes written */
	struct vmsg msg[MAX_MSGS];
	unsigned int nmsg;
	bool full;			/* nothing more goes in */
	bool garbage;			/* bytes no message frames end it */
	bool cut;			/* the last message went out in part */
	/* What the proxy offers, computed apart from it. */
	uint64_t guest_offer, proto_offer, be_queue_num;
	unsigned int nq;
	uint64_t protocol;		/* SET_PROTOCOL_FEATURES, as modelled */
};

static int slot_fd(struct vmm *v, unsigned int k)
{
	if (v->slot[k] < 0) {
		v->slot[k] = memfd_create("fuzz-guest", MFD_CLOEXEC);
		FZ_CHECK(v->slot[k] >= 0, "memfd_create");
		FZ_CHECK(!ftruncate(v->slot[k], SLOT_SIZE), "ftruncate");
	}
	return v->slot[k];
}

static int make_fd(struct vmm *v, enum fd_kind k, unsigned int slot, bool kicked)
{
	int fd = -1;

	switch (k) {
	case FK_EVENT:
		fd = eventfd(kicked, EFD_CLOEXEC | EFD_NONBLOCK);
		break;
	case FK_SLOT:
		fd = fcntl(slot_fd(v, slot % NSLOT), F_DUPFD_CLOEXEC, 0);
		break;
	case FK_NULL:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	default:	/* a file smaller than any region */
		fd = memfd_create("fuzz-small", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, 4096))
			FZ_CHECK(0, "ftruncate");
		break;
	}
	FZ_CHECK(fd >= 0, "fd of kind %d: %s", k, strerror(errno));
	return fd;
}

/* sendmsg() without waiting; the fds ride with the first byte. */
static bool send_chunk(struct vmm *v, const void *buf, size_t len, const int *fds,
		       unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_MSG_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	ssize_t n;

	if (!len)
		return true;
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	n = sendmsg(v->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0)
		v->len += (size_t)n;
	return n == (ssize_t)len;
}

/* ---- the model of the proxy's checks ---- */

static enum verdict sized(const struct vmsg *m, uint32_t size, unsigned int fds)
{
	return m->hdr.size == size && m->nfds == fds ? V_FINE : V_BAD;
}

static enum verdict indexed(const struct vmm *v, const struct vmsg *m)
{
	if (sized(m, 8, 0) == V_BAD || m->p.state.index >= v->nq)
		return V_BAD;
	return V_FINE;
}

static enum verdict vring_fd_verdict(const struct vmm *v, const struct vmsg *m)
{
	uint64_t val = m->p.u64;
	bool nofd = val & SVQ_VU_VRING_NOFD;

	if (m->hdr.size != 8 || (val & ~(SVQ_VU_VRING_IDX_MASK | SVQ_VU_VRING_NOFD)) ||
	    m->nfds != (nofd ? 0u : 1u) ||
	    (val & SVQ_VU_VRING_IDX_MASK) >= v->nq ||
	    (!nofd && m->kind[0] != FK_EVENT))
		return V_BAD;
	if (m->hdr.request == SVQ_VU_SET_VRING_KICK)
		return nofd ? V_BAD : V_MAYBE;	/* the queue starts, or not */
	return V_FINE;
}

static enum verdict config_verdict(const struct vmm *v, const struct vmsg *m)
{
	const struct svq_vu_config *c = &m->p.config;

	if (m->hdr.size < SVQ_VU_CONFIG_HDR_SIZE || !c->size ||
	    c->size > SVQ_VU_CONFIG_MAX ||
	    m->hdr.size != SVQ_VU_CONFIG_HDR_SIZE + c->size ||
	    c->offset > UINT32_MAX - c->size || m->nfds ||
	    !(v->protocol & PF(CONFIG)) ||
	    (m->hdr.request == SVQ_VU_SET_CONFIG &&
	     (c->flags & ~SVQ_VU_CONFIG_F_MIGRATION)))
		return V_BAD;
	return V_FINE;
}

/* How the proxy must take @m, given the messages before it were served. */
static enum verdict classify(struct vmm *v, const struct vmsg *m)
{
	const struct svq_vu_hdr *h = &m->hdr;
	enum verdict r;

	if (m->nfds > SVQ_VU_MAX_FDS || h->size > PAYLOAD_MAX ||
	    (h->flags & SVQ_VU_VERSION_MASK) != SVQ_VU_VERSION ||
	    (h->flags & ~(SVQ_VU_VERSION_MASK | SVQ_VU_FLAG_NEED_REPLY)))
		return V_BAD;
	switch (h->request) {
	case SVQ_VU_GET_FEATURES:
	case SVQ_VU_SET_OWNER:
	case SVQ_VU_GET_PROTOCOL_FEATURES:
	case SVQ_VU_GET_MAX_MEM_SLOTS:
	case SVQ_VU_RESET_OWNER:
		return sized(m, 0, 0);
	case SVQ_VU_RESET_DEVICE:
		r = sized(m, 0, 0);
		return r == V_FINE && !(v->protocol & PF(RESET_DEVICE)) ? V_BAD : r;
	case SVQ_VU_GET_QUEUE_NUM:
		r = sized(m, 0, 0);
		return r == V_FINE && !(v->protocol & PF(MQ)) ? V_BAD : r;
	case SVQ_VU_SET_FEATURES:
		if (sized(m, 8, 0) == V_BAD || (m->p.u64 & ~v->guest_offer))
			return V_BAD;
		return V_MAYBE;	/* refused while a queue runs */
	case SVQ_VU_SET_PROTOCOL_FEATURES:
		if (sized(m, 8, 0) == V_BAD || (m->p.u64 & ~v->proto_offer))
			return V_BAD;
		v->protocol = m->p.u64;
		return V_FINE;
	case SVQ_VU_SET_MEM_TABLE:
		if (h->size < 8 || m->p.mem.nregions > SVQ_VU_MEM_REGIONS ||
		    h->size != 8 + m->p.mem.nregions * sizeof(struct svq_vu_mem_region) ||
		    m->nfds != m->p.mem.nregions)
			return V_BAD;
		return V_MAYBE;
	case SVQ_VU_ADD_MEM_REG:
	case SVQ_VU_REM_MEM_REG:
		if (!(v->protocol & PF(CONFIGURE_MEM_SLOTS)) ||
		    h->size != sizeof(struct svq_vu_mem_reg) ||
		    (h->request == SVQ_VU_ADD_MEM_REG ? m->nfds != 1 : m->nfds > 1))
			return V_BAD;
		return V_MAYBE;
	case SVQ_VU_SET_VRING_NUM:
		if (indexed(v, m) == V_BAD || !m->p.state.num || m->p.state.num > 32768)
			return V_BAD;
		return V_MAYBE;
	case SVQ_VU_SET_VRING_BASE:
		return indexed(v, m) == V_BAD ? V_BAD : V_MAYBE;
	case SVQ_VU_SET_VRING_ENABLE:
		if (indexed(v, m) == V_BAD || m->p.state.num > 1)
			return V_BAD;
		return V_FINE;
	case SVQ_VU_GET_VRING_BASE:
		return indexed(v, m);
	case SVQ_VU_SET_VRING_ADDR:
		if (sized(m, sizeof(struct svq_vu_vring_addr), 0) == V_BAD ||
		    m->p.addr.index >= v->nq || (m->p.addr.flags & ~1u))
			return V_BAD;
		return V_MAYBE;
	case SVQ_VU_SET_LOG_BASE:
		/* Fine or not by the fd's size and the offset */
		if (!(v->protocol & PF(LOG_SHMFD)) ||
		    sized(m, sizeof(struct svq_vu_log), 1) == V_BAD)
			return V_BAD;
		return V_MAYBE;
	case SVQ_VU_SET_VRING_KICK:
	case SVQ_VU_SET_VRING_CALL:
	case SVQ_VU_SET_VRING_ERR:
		return vring_fd_verdict(v, m);
	case SVQ_VU_GET_CONFIG:
	case SVQ_VU_SET_CONFIG:
		return config_verdict(v, m);
	case VU_NET_SET_MTU:
		r = sized(m, 8, 0);
		return r == V_FINE && !(v->protocol & PF(NET_MTU)) ? V_BAD : r;
	}
	return V_BAD;	/* not offered, or unknown */
}

/* ---- building the stream ---- */

static void region_wire(struct fz *f, unsigned int k, struct svq_vu_mem_region *w)
{
	uint8_t how = fz_u8(f);

	w->guest_phys_addr = SLOT_GPA(k);
	w->memory_size = SLOT_SIZE;
	w->userspace_addr = SLOT_UADDR(k);
	w->mmap_offset = 0;
	if (how < 0xc0)
		return;
	switch (how & 7) {
	case 0:
		w->guest_phys_addr = fz_u64(f);
		break;
	case 1:
		w->memory_size = fz_u64(f);
		break;
	case 2:
		w->userspace_addr = fz_u64(f);
		break;
	case 3:
		w->mmap_offset = fz_u32(f);
		break;
	case 4:		/* overlap the next slot */
		w->memory_size = 2 * SLOT_SIZE;
		break;
	case 5:
		w->guest_phys_addr = SLOT_GPA(0) + fz_u16(f);
		break;
	case 6:
		w->memory_size = fz_u16(f);
		break;
	default:
		w->mmap_offset = fz_u16(f) & ~4095u;
		w->memory_size -= w->mmap_offset;
		break;
	}
}

/* A guest split ring in slot @k: descriptors, then the avail ring. */
static void poke_ring(struct vmm *v)
{
	struct fz *f = v->f;
	unsigned int k = fz_below(f, NSLOT), i, n, num;
	uint8_t desc[16 * 16], avail[4 + 2 * 16];
	int fd = slot_fd(v, k);

	num = 1u << fz_below(f, 5);	/* 1 to 16: the ring's size */
	n = fz_below(f, 16) + 1;
	for (i = 0; i < n; i++) {
		uint8_t *d = desc + 16 * i, fl = fz_u8(f);
		uint64_t addr = fl & 0x80 ? fz_u64(f) :
				SLOT_GPA(k) + RING_BUFS + ((uint64_t)fz_u16(f) & 0xbff0);
		uint32_t len = fl & 0x40 ? fz_u32(f) : fz_u16(f) & 0x1fff;
		uint16_t flags = fl & 7, next = fz_u8(f) % num;

		memcpy(d, &addr, 8);
		memcpy(d + 8, &len, 4);
		memcpy(d + 12, &flags, 2);
		memcpy(d + 14, &next, 2);
	}
	memset(avail, 0, sizeof(avail));
	avail[2] = fz_u8(f);	/* idx */
	for (i = 0; i < num; i++)
		avail[4 + 2 * i] = fz_u8(f) % num;
	FZ_CHECK(pwrite(fd, desc, 16 * n, RING_DESC) == (ssize_t)(16 * n), "pwrite");
	FZ_CHECK(pwrite(fd, avail, 4 + 2 * num, RING_AVAIL) == (ssize_t)(4 + 2 * num),
		 "pwrite");
}

/* Raw bytes anywhere in guest RAM (an indirect table, a ring's flags). */
static void poke_bytes(struct vmm *v)
{
	struct fz *f = v->f;
	unsigned int k = fz_below(f, NSLOT);
	uint16_t off = fz_u16(f) % (SLOT_SIZE - 64);
	uint8_t buf[64];
	size_t n = 1 + fz_below(f, sizeof(buf));

	fz_bytes(f, buf, n);
	FZ_CHECK(pwrite(slot_fd(v, k), buf, n, off) == (ssize_t)n, "pwrite");
}

static uint32_t pick_index(struct vmm *v)
{
	uint8_t b = fz_u8(v->f);

	return b < 0xf0 ? b % (v->nq < 4 ? v->nq : 4) : (b == 0xff ? fz_u32(v->f) : b);
}

/* The payload and fds of request @req, honest unless the input says. */
static void build(struct vmm *v, struct vmsg *m, unsigned int *slots)
{
	struct fz *f = v->f;
	unsigned int i, n;
	uint8_t b;

	switch (m->hdr.request) {
	case SVQ_VU_SET_FEATURES:
		m->hdr.size = 8;
		m->p.u64 = fz_u64(f);
		if (fz_u8(f) < 0xe0)
			m->p.u64 &= v->guest_offer;
		break;
	case SVQ_VU_SET_PROTOCOL_FEATURES:
		m->hdr.size = 8;
		m->p.u64 = fz_u64(f);
		if (fz_u8(f) < 0xe0)
			m->p.u64 &= v->proto_offer;
		break;
	case SVQ_VU_SET_MEM_TABLE:
		n = fz_below(f, SVQ_VU_MEM_REGIONS + 2);
		m->p.mem.nregions = n;
		m->hdr.size = 8 + n * sizeof(struct svq_vu_mem_region);
		if (n > SVQ_VU_MEM_REGIONS)
			m->hdr.size = PAYLOAD_MAX;
		for (i = 0; i < n && i < SVQ_VU_MEM_REGIONS; i++) {
			slots[i] = fz_below(f, NSLOT);
			region_wire(f, slots[i], &m->p.mem.regions[i]);
			m->kind[i] = FK_SLOT;
		}
		m->nfds = i;
		break;
	case SVQ_VU_ADD_MEM_REG:
	case SVQ_VU_REM_MEM_REG:
		m->hdr.size = sizeof(struct svq_vu_mem_reg);
		slots[0] = fz_below(f, NSLOT);
		region_wire(f, slots[0], &m->p.mem_reg.region);
		m->kind[0] = FK_SLOT;
		m->nfds = m->hdr.request == SVQ_VU_ADD_MEM_REG || fz_bool(f);
		break;
	case SVQ_VU_SET_VRING_NUM:
	case SVQ_VU_SET_VRING_BASE:
	case SVQ_VU_SET_VRING_ENABLE:
	case SVQ_VU_GET_VRING_BASE:
		m->hdr.size = 8;
		m->p.state.index = pick_index(v);
		b = fz_u8(f);
		if (m->hdr.request == SVQ_VU_SET_VRING_NUM)
			m->p.state.num = b < 0xf0 ? 1u << (b % 16) : fz_u32(f);
		else if (m->hdr.request == SVQ_VU_SET_VRING_ENABLE)
			m->p.state.num = b < 0xf0 ? b & 1 : fz_u32(f);
		else
			m->p.state.num = b < 0xf0 ? b : fz_u32(f);
		break;
	case SVQ_VU_SET_VRING_ADDR:
		m->hdr.size = sizeof(struct svq_vu_vring_addr);
		m->p.addr.index = pick_index(v);
		b = fz_u8(f);
		i = b % NSLOT;
		m->p.addr.desc = SLOT_UADDR(i) + RING_DESC;
		m->p.addr.avail = SLOT_UADDR(i) + RING_AVAIL;
		m->p.addr.used = SLOT_UADDR(i) + RING_USED;
		if (b >= 0xe0) {
			switch (b & 3) {
			case 0:
				m->p.addr.flags = fz_u32(f);
				break;
			case 1:
				m->p.addr.desc = fz_u64(f);
				break;
			case 2:
				m->p.addr.avail += (int16_t)fz_u16(f);
				break;
			default:
				m->p.addr.used = SLOT_UADDR(i) + fz_u32(f);
				break;
			}
		}
		break;
	case SVQ_VU_SET_VRING_KICK:
	case SVQ_VU_SET_VRING_CALL:
	case SVQ_VU_SET_VRING_ERR:
		m->hdr.size = 8;
		m->p.u64 = pick_index(v) & 0xff;
		b = fz_u8(f);
		if (b >= 0xf8)
			m->p.u64 = fz_u64(f);
		else if (b >= 0xe0)
			m->p.u64 |= SVQ_VU_VRING_NOFD;
		m->nfds = !(m->p.u64 & SVQ_VU_VRING_NOFD);
		m->kind[0] = b >= 0xd8 && b < 0xe0 ? (enum fd_kind)(b % FK_NR) : FK_EVENT;
		break;
	case SVQ_VU_GET_CONFIG:
	case SVQ_VU_SET_CONFIG:
		b = fz_u8(f);
		m->p.config.offset = b < 0xf0 ? fz_u8(f) : fz_u32(f);
		m->p.config.size = b < 0xf0 ? 1 + fz_u8(f) : fz_u16(f);
		m->p.config.flags = b == 0xff ? fz_u32(f) : (b & 1);
		m->hdr.size = SVQ_VU_CONFIG_HDR_SIZE +
			      (m->p.config.size <= SVQ_VU_CONFIG_MAX ? m->p.config.size : 0);
		fz_bytes(f, m->p.config.payload, m->hdr.size - SVQ_VU_CONFIG_HDR_SIZE < 16 ?
			 m->hdr.size - SVQ_VU_CONFIG_HDR_SIZE : 16);
		break;
	case VU_NET_SET_MTU:
		m->hdr.size = 8;
		m->p.u64 = fz_u16(f);
		break;
	case SVQ_VU_SET_LOG_BASE:
		/* A 4 KiB memfd: covers 128 MiB of guest addresses. */
		m->hdr.size = sizeof(struct svq_vu_log);
		b = fz_u8(f);
		m->p.log.mmap_size = b < 0xe0 ? 4096 : fz_u64(f);
		m->p.log.mmap_offset = b < 0xf0 ? 0 : fz_u64(f);
		m->nfds = 1;
		m->kind[0] = b < 0xd0 ? FK_SMALL : (enum fd_kind)(b % FK_NR);
		break;
	case SVQ_VU_GET_FEATURES:
	case SVQ_VU_SET_OWNER:
	case SVQ_VU_RESET_OWNER:
	case SVQ_VU_GET_PROTOCOL_FEATURES:
	case SVQ_VU_GET_QUEUE_NUM:
	case SVQ_VU_GET_MAX_MEM_SLOTS:
	case SVQ_VU_RESET_DEVICE:
		break;
	default:	/* anything at all */
		m->hdr.size = fz_below(f, 48);
		fz_bytes(f, &m->p, m->hdr.size);
		m->nfds = fz_below(f, 3);
		for (i = 0; i < m->nfds; i++)
			m->kind[i] = (enum fd_kind)(fz_u8(f) % FK_NR);
		break;
	}
}

static const uint32_t requests[] = {
	SVQ_VU_GET_FEATURES, SVQ_VU_SET_FEATURES, SVQ_VU_SET_OWNER,
	SVQ_VU_RESET_OWNER, SVQ_VU_SET_MEM_TABLE, SVQ_VU_GET_PROTOCOL_FEATURES,
	SVQ_VU_SET_PROTOCOL_FEATURES, SVQ_VU_GET_QUEUE_NUM,
	SVQ_VU_GET_MAX_MEM_SLOTS, SVQ_VU_ADD_MEM_REG, SVQ_VU_REM_MEM_REG,
	SVQ_VU_SET_VRING_NUM, SVQ_VU_SET_VRING_ADDR, SVQ_VU_SET_VRING_BASE,
	SVQ_VU_GET_VRING_BASE, SVQ_VU_SET_VRING_KICK, SVQ_VU_SET_VRING_CALL,
	SVQ_VU_SET_VRING_ERR, SVQ_VU_SET_VRING_ENABLE, SVQ_VU_GET_CONFIG,
	SVQ_VU_SET_CONFIG, SVQ_VU_RESET_DEVICE, VU_NET_SET_MTU,
	SVQ_VU_SET_LOG_BASE,
};

/* One message: built, maybe damaged, written (maybe in two pieces). */
static void vmm_message(struct vmm *v, uint8_t pick)
{
	static uint8_t buf[SVQ_VU_HDR_SIZE + PAYLOAD_MAX + 1024];
	struct fz *f = v->f;
	struct vmsg *m = &v->msg[v->nmsg];
	unsigned int slots[MAX_MSG_FDS] = { 0 }, i, extra;
	int fds[MAX_MSG_FDS];
	uint8_t dmg, fl = fz_u8(f);
	size_t len, cut;
	bool ok;

	memset(m, 0, sizeof(*m));
	m->hdr.request = pick < SVQ_ARRAY_SIZE(requests) ? requests[pick] : fz_u8(f);
	m->hdr.flags = SVQ_VU_VERSION | (fl & 1 ? SVQ_VU_FLAG_NEED_REPLY : 0);
	build(v, m, slots);

	/* Damage: most messages have none. */
	dmg = fz_u8(f);
	switch (dmg < 0xd0 ? 0 : dmg & 7) {
	case 1:
		m->hdr.flags = fz_u32(f);
		break;
	case 2:
		m->hdr.size = fz_below(f, PAYLOAD_MAX + 1);
		break;
	case 3:		/* drained and refused */
		m->hdr.size = PAYLOAD_MAX + 1 + fz_below(f, 512);
		break;
	case 4:		/* fds it should not have */
		extra = 1 + fz_below(f, MAX_MSG_FDS);
		for (i = 0; i < extra && m->nfds < MAX_MSG_FDS; i++)
			m->kind[m->nfds++] = (enum fd_kind)(fz_u8(f) % FK_NR);
		break;
	case 5:
		if (m->nfds)
			m->nfds--;
		break;
	case 6:
		if (m->nfds)
			m->kind[0] = (enum fd_kind)(fz_u8(f) % FK_NR);
		break;
	default:
		break;
	}

	memcpy(buf, &m->hdr, SVQ_VU_HDR_SIZE);
	len = SVQ_VU_HDR_SIZE + m->hdr.size;
	memset(buf + SVQ_VU_HDR_SIZE, 0, m->hdr.size);
	memcpy(buf + SVQ_VU_HDR_SIZE, &m->p,
	       m->hdr.size < PAYLOAD_MAX ? m->hdr.size : PAYLOAD_MAX);
	if (v->len + len > MAX_BYTES) {
		v->full = true;
		return;
	}
	/* An eventfd may come signalled: a guest kick the proxy sees once it
	 * watches the fd. */
	for (i = 0; i < m->nfds; i++)
		fds[i] = make_fd(v, m->kind[i], slots[i], fl & 2);
	/* In two pieces: the fds ride with the second. */
	cut = fl & 4 ? fz_below(f, (uint32_t)len) : 0;
	ok = send_chunk(v, buf, cut, NULL, 0) &&
	     send_chunk(v, buf + cut, len - cut, fds, m->nfds);
	for (i = 0; i < m->nfds; i++)
		close(fds[i]);
	if (!ok) {
		/* Out of room: the stream ends mid-message. */
		v->full = v->cut = true;
		return;
	}
	m->v = classify(v, m);
	m->reply = m->v != V_BAD &&
		   (fz_own_reply(m->hdr.request) || (m->hdr.flags & SVQ_VU_FLAG_NEED_REPLY));
	v->nmsg++;
}

static void build_stream(struct vmm *v)
{
	struct fz *f = v->f;
	uint8_t raw[32], op;
	size_t n;

	while (!fz_empty(f) && !v->full && v->nmsg < MAX_MSGS) {
		op = fz_u8(f);
		if (op < 0xe8) {
			vmm_message(v, op % (SVQ_ARRAY_SIZE(requests) + 1));
		} else if (op < 0xf4) {
			poke_ring(v);
		} else if (op < 0xfc) {
			poke_bytes(v);
		} else {	/* garbage: the stream is out of step from here */
			n = 1 + fz_below(f, sizeof(raw));
			fz_bytes(f, raw, n);
			send_chunk(v, raw, n, NULL, 0);
			v->garbage = v->full = true;
		}
	}
}

/* ---- the proxy's log ---- */

static struct {
	char text[1 << 16];
	size_t len;
	unsigned int closing;
	char first[512];
	bool began;		/* the session got past connecting the backend */
} L;

static void log_cb(void *ctx, int level, const char *msg)
{
	static const char tail[] = ": closing the session";
	size_t n = strlen(msg);

	(void)ctx;
	(void)level;
	if (strstr(msg, ": vmm: session ") && strstr(msg, ": backend features "))
		L.began = true;
	if (n >= sizeof(tail) - 1 && !strcmp(msg + n - (sizeof(tail) - 1), tail)) {
		if (!L.closing++)
			snprintf(L.first, sizeof(L.first), "%s", msg);
	}
	if (getenv("FUZZ_PROXY_LOG"))
		fprintf(stderr, "proxy: %s\n", msg);
}

/* ---- checking what came back ---- */

static void check_reply(const struct vmm *v, const struct vmsg *m,
			const struct svq_vu_msg *r)
{
	uint64_t val = r->payload.u64;

	FZ_CHECK(r->hdr.request == m->hdr.request, "reply to %u names %u",
		 m->hdr.request, r->hdr.request);
	FZ_CHECK(r->hdr.flags == (SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY),
		 "reply to %u: flags %#x", m->hdr.request, r->hdr.flags);
	FZ_CHECK(r->nfds + r->nfds_dropped == 0, "reply to %u with fds",
		 m->hdr.request);
	if (m->hdr.request == SVQ_VU_GET_CONFIG) {
		FZ_CHECK(r->hdr.size == m->hdr.size ||
			 (r->hdr.size == SVQ_VU_CONFIG_HDR_SIZE && !r->payload.config.size),
			 "GET_CONFIG reply of %u bytes", r->hdr.size);
		FZ_CHECK(r->payload.config.offset == m->p.config.offset,
			 "GET_CONFIG reply at another offset");
		return;
	}
	FZ_CHECK(r->hdr.size == 8, "reply to %u of %u bytes", m->hdr.request,
		 r->hdr.size);
	switch (m->hdr.request) {
	case SVQ_VU_GET_FEATURES:
		FZ_CHECK(val == v->guest_offer, "GET_FEATURES %#llx, model %#llx",
			 (unsigned long long)val, (unsigned long long)v->guest_offer);
		break;
	case SVQ_VU_GET_PROTOCOL_FEATURES:
		FZ_CHECK(val == v->proto_offer, "GET_PROTOCOL_FEATURES %#llx, model %#llx",
			 (unsigned long long)val, (unsigned long long)v->proto_offer);
		break;
	case SVQ_VU_GET_MAX_MEM_SLOTS:
		FZ_CHECK(val == PROXY_SLOTS, "GET_MAX_MEM_SLOTS %llu",
			 (unsigned long long)val);
		break;
	case SVQ_VU_GET_QUEUE_NUM:
		FZ_CHECK(val == v->be_queue_num, "GET_QUEUE_NUM %llu, model %llu",
			 (unsigned long long)val, (unsigned long long)v->be_queue_num);
		break;
	case SVQ_VU_GET_VRING_BASE:
		FZ_CHECK(r->payload.state.index == m->p.state.index,
			 "GET_VRING_BASE of queue %u answers %u", m->p.state.index,
			 r->payload.state.index);
		break;
	default:	/* an ack */
		FZ_CHECK(val <= 1, "ack %llu to %u", (unsigned long long)val,
			 m->hdr.request);
		break;
	}
}

/*
 * The session is over: read every reply and hold them and proxy_serve()'s
 * result against the classification of the stream.
 */
static void check_session(const struct vmm *v, int rc, bool be_faulty)
{
	struct svq_vu_msg r;
	unsigned int i = 0, nreply = 0, due_before_bad = 0, bad = UINT32_MAX;
	bool all_fine, fine_before_bad = true;
	int rrc;

	for (i = 0; i < v->nmsg; i++) {
		if (v->msg[i].v == V_BAD) {
			bad = i;
			break;
		}
		if (v->msg[i].v != V_FINE)
			fine_before_bad = false;
		due_before_bad += v->msg[i].reply;
	}
	all_fine = fine_before_bad && bad == UINT32_MAX && !v->garbage && !v->cut;

	/* The replies: those of a prefix of the messages that have one. */
	i = 0;
	for (;;) {
		rrc = svq_vu_recv(v->sock, &r, 0);
		if (rrc == -ECONNRESET)
			break;
		FZ_CHECK(rrc == 0, "reading a reply: %d", rrc);
		while (i < v->nmsg && !v->msg[i].reply)
			i++;
		if (i == v->nmsg) {
			/* Garbage may frame a message of its own: its reply is
			 * not modelled. */
			FZ_CHECK(v->garbage, "reply %u (to %u): no message has one left",
				 nreply, r.hdr.request);
			FZ_CHECK(r.hdr.flags == (SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY),
				 "reply %u: flags %#x", nreply, r.hdr.flags);
			nreply++;
			continue;
		}
		if (bad != UINT32_MAX)
			FZ_CHECK(i < bad, "reply %u (to %u) after the refused message %u",
				 nreply, r.hdr.request, bad);
		check_reply(v, &v->msg[i], &r);
		i++;
		nreply++;
	}

	/*
	 * A backend that breaks the protocol while it connects fails the
	 * session at once; once it is served, the VMM's session ends for what
	 * the VMM sent only, and says so, whatever the backend does.
	 */
	FZ_CHECK(L.began || be_faulty, "the session did not begin: %d", rc);
	if (!L.began) {
		FZ_CHECK(rc < 0 && !L.closing, "proxy_serve %d, not begun", rc);
		return;
	}
	FZ_CHECK(rc == 0 || rc == -EPROTO, "proxy_serve: %d", rc);
	FZ_CHECK(L.closing == (rc ? 1u : 0u),
		 "proxy_serve %d with %u closing lines", rc, L.closing);
	if (bad != UINT32_MAX) {
		FZ_CHECK(rc == -EPROTO, "message %u (request %u) refused, proxy_serve %d",
			 bad, v->msg[bad].hdr.request, rc);
		FZ_CHECK(nreply <= due_before_bad, "%u replies, %u due before %u",
			 nreply, due_before_bad, bad);
		if (fine_before_bad) {
			char want[32];

			FZ_CHECK(nreply == due_before_bad, "%u replies of %u",
				 nreply, due_before_bad);
			snprintf(want, sizeof(want), " (%u): ", v->msg[bad].hdr.request);
			FZ_CHECK(!v->msg[bad].hdr.request || strstr(L.first, want),
				 "message %u refused as: %s", bad, L.first);
		}
	}
	if (all_fine) {
		unsigned int due = 0;

		for (i = 0; i < v->nmsg; i++)
			due += v->msg[i].reply;
		FZ_CHECK(rc == 0, "every message fine, proxy_serve %d: %s", rc, L.first);
		FZ_CHECK(nreply == due, "%u replies of %u", nreply, due);
	}
}

/* ---- the honest session after it ---- */

static void honest_session(struct proxy *p, const struct vmm *hostile)
{
	static const uint32_t asks[] = {
		SVQ_VU_GET_FEATURES, SVQ_VU_GET_PROTOCOL_FEATURES,
		SVQ_VU_GET_MAX_MEM_SLOTS,
	};
	struct vmm v = *hostile;
	struct svq_vu_msg m, r;
	unsigned int i;
	int sv[2], rc;

	FZ_CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
	for (i = 0; i < SVQ_ARRAY_SIZE(asks); i++) {
		svq_vu_msg_init(&m, asks[i], 0);
		FZ_CHECK(!svq_vu_send(sv[1], &m), "send");
	}
	shutdown(sv[1], SHUT_WR);
	L.closing = 0;
	rc = proxy_serve(p, sv[0]);
	FZ_CHECK(rc == 0, "the honest session after it: %d: %s", rc, L.first);
	v.sock = sv[1];
	for (i = 0; i < SVQ_ARRAY_SIZE(asks); i++) {
		struct vmsg want = { .hdr = { asks[i], SVQ_VU_VERSION, 0 } };

		FZ_CHECK(!svq_vu_recv(sv[1], &r, 0), "honest reply %u", i);
		check_reply(&v, &want, &r);
	}
	FZ_CHECK(svq_vu_recv(sv[1], &r, 0) == -ECONNRESET, "more replies");
	close(sv[1]);
}

/* ================= one input ================= */

/* What the proxy will offer the VMM for this backend, by the engine's
 * public policy calls and the proxy's rules. */
static void offers(struct vmm *v, const struct fzb_cfg *c, uint32_t vhost_flags,
		   unsigned int max_queues)
{
	/* One engine per flag set, kept: an engine is costly to make. */
	static struct svqiso_vhost *policy[16];
	SVQISO_OPTS(svqiso_vhost_opts, o, .flags = vhost_flags);
	struct svqiso_vhost *vh;
	uint64_t be_protocol = c->features & F_PROTOCOL ? c->protocol & FE_HONOURED : 0;

	if (!policy[vhost_flags & 15])
		FZ_CHECK(!svqiso_vhost_new(&o, &policy[vhost_flags & 15]),
			 "svqiso_vhost_new");
	vh = policy[vhost_flags & 15];
	v->guest_offer = svqiso_vhost_guest_features(vh, c->features) | F_PROTOCOL;
	v->proto_offer = (svqiso_vhost_protocol_features(vh, be_protocol) &
			  be_protocol & PROTO_PASSED) | PROTO_OWN;
	v->be_queue_num = be_protocol & PF(MQ) ? c->queue_num : 1;
	v->nq = max_queues ? max_queues : be_protocol & PF(MQ) ?
		2 * (unsigned int)v->be_queue_num : 8;
	if (v->nq > 256)
		v->nq = 256;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *backend;
	static struct vmm v;
	struct proxy_opts po = {
		.name = "fz", .timeout_ms = TIMEOUT_MS, .reconnect_ms = 5,
		.shadow_layout = SVQISO_LAYOUT_SPLIT, .pool_size = 256 << 10,
		.log = log_cb,
	};
	struct fzb_cfg c = { 0 };
	struct proxy *p;
	struct fz f;
	int sv[2], rc, fds, buf = 1 << 20;
	uint8_t b;
	unsigned int i;

	if (!backend) {
		signal(SIGPIPE, SIG_IGN);
		backend = fzb_start();
	}
	fds = fz_count_fds();
	fz_init(&f, data, size);

	/* The backend: honest in what it offers, maybe not later. */
	b = fz_u8(&f);
	c.features = BIT(32) | (b & 1 ? F_PROTOCOL : 0) | (b & 2 ? BIT(28) : 0) |
		     (b & 4 ? BIT(29) : 0) | (b & 8 ? BIT(27) : 0) |
		     (b & 0x10 ? fz_u64(&f) & ~(BIT(30)) : 0x3f);
	c.protocol = b & 0x20 ? fz_u64(&f) : FE_HONOURED;
	c.queue_num = 1 + fz_below(&f, 4);
	c.mem_slots = 8 + fz_below(&f, 64);
	b = fz_u8(&f);
	if (b >= 0xc0) {
		c.fault = (enum fzb_fault)(1 + b % (FZB_NR - 1));
		c.fault_request = fz_u8(&f) % 40;
		c.fault_nth = fz_below(&f, 4);
		c.lie = fz_u32(&f);
	}
	b = fz_u8(&f);
	po.max_queues = b & 0x80 ? b & 7 : 0;
	po.spin_ns = b & 0x40 ? 20000 : 0;	/* spinning between wake-ups */
	po.vhost_flags = fz_u8(&f) & 0xf;
	po.backend = backend;
	fzb_configure(&c);	/* a fault is for the hostile session's first
				 * connection */

	memset(&v, 0, sizeof(v));
	v.f = &f;
	for (i = 0; i < NSLOT; i++)
		v.slot[i] = -1;
	offers(&v, &c, po.vhost_flags, po.max_queues);
	memset(&L, 0, sizeof(L));

	FZ_CHECK(!proxy_new(&po, &p), "proxy_new");
	FZ_CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	v.sock = sv[1];
	build_stream(&v);
	shutdown(sv[1], SHUT_WR);

	rc = proxy_serve(p, sv[0]);
	check_session(&v, rc, c.fault != FZB_NONE);
	close(sv[1]);
	fzb_wait_idle();

	/* Faults were for the hostile session's first connection only. */
	honest_session(p, &v);
	fzb_wait_idle();
	proxy_free(p);
	for (i = 0; i < NSLOT; i++)
		if (v.slot[i] >= 0)
			close(v.slot[i]);
	FZ_CHECK(fz_count_fds() == fds, "%d fds open, %d before", fz_count_fds(), fds);
	return 0;
}
