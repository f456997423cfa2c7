/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the vhost-user codec (lib/vhost_user.c), the frontend's
 * handling of the backend's replies (lib/frontend.c) and the adapter that
 * owns a session (lib/vu.c). The first input byte picks one of three
 * scenarios.
 *
 * codec: the input is a byte stream cut into chunks, each written to one
 * end of a socketpair with 0 to 10 real fds (memfds, each its own inode),
 * or sent with svq_vu_send(); then svq_vu_recv() reads the other end to the
 * end. A model of the stream predicts every result: header and payload
 * byte for byte, which fds are kept (in order, by inode, close-on-exec) and
 * how many dropped, -EMSGSIZE for a drained oversized payload, -EPROTO for
 * a message cut short, a payload past the drain limit or more than
 * SVQ_VU_MAX_FDS fds, -ECONNRESET at the end of the stream.
 *
 * frontend: a session (svq_fe_connect_fd(), then any calls) against a fake
 * backend on a socketpair. Its calls are synchronous, request then reply,
 * so the replies each call will read are written from the input before
 * the call, honest or faulty (wrong request, flags, version, size, an
 * oversized or endless payload, fds, a nack, another queue, another config
 * window, garbage, none at all, a hang-up). After the call the requests it
 * sent are read back and paired with the replies in order, and a model
 * says what the call must have returned: the errno of the first bad reply,
 * the session dead after any reply that breaks the protocol (and nothing
 * sent after it, every later call -ENOTCONN), alive after a nack (-EIO);
 * and where every reply was good, the values accepted are the ones the
 * replies carried (features, protocol features as masked, queue count,
 * memory slots, vring base, config bytes). Once garbage puts the stream
 * out of step the model stops predicting and only the errno conventions
 * are checked.
 *
 * adapter: svqiso_vu over a socketpair, isolated or direct, with its
 * external loop (no thread): connect, features, guest RAM (a memfd whose
 * ring contents the input writes), queue start, kicks, completions, polls
 * with busy polling on or off, stop,
 * config, reset, hang-up checks, against replies pre-written the same way
 * for the requests each call is expected to make (a guess: wrong guesses
 * are faults too). Every call returns 0 or a negative errno (a mask for
 * kick and process), and the adapter frees cleanly whatever happened.
 *
 * Both: no fd survives an input (the process's fd count is the same before
 * and after), and LeakSanitizer sees no memory left.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <svqiso/vu.h>

#include "frontend.h"
#include "vhost_user.h"
#include "fuzz.h"
#include "fuzz_vhost_user.h"

#define PAYLOAD_MAX	sizeof(union svq_vu_payload)
#define BIT(n)		(1ull << (n))

/* Protocol features the frontend honours, spelled out apart from its code. */
#define FE_HONOURED	(BIT(SVQ_VU_PROTOCOL_F_MQ) |			\
			 BIT(SVQ_VU_PROTOCOL_F_REPLY_ACK) |		\
			 BIT(SVQ_VU_PROTOCOL_F_NET_MTU) |		\
			 BIT(SVQ_VU_PROTOCOL_F_CONFIG) |		\
			 BIT(SVQ_VU_PROTOCOL_F_RESET_DEVICE) |		\
			 BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

#define VU_NET_SET_MTU	20

/* A cheap fd with an inode of its own. */
static int new_memfd(ino_t *ino)
{
	struct stat st;
	int fd = memfd_create("fuzz-vu", MFD_CLOEXEC);

	FZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	if (ino) {
		FZ_CHECK(!fstat(fd, &st), "fstat");
		*ino = st.st_ino;
	}
	return fd;
}

/* sendmsg() of @len bytes with @nfds fds, without waiting: bytes sent or -errno. */
static ssize_t send_fds(int sock, const void *buf, size_t len, const int *fds,
			unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	ssize_t n;

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
	n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	return n < 0 ? -errno : n;
}

/* How many fds a received message may keep, from the header's comment in
 * vhost_user.h, not from its code. */
static unsigned int fds_allowed(const struct svq_vu_hdr *h)
{
	if (h->flags & SVQ_VU_FLAG_REPLY)
		return h->request == SVQ_VU_GET_INFLIGHT_FD;
	switch (h->request) {
	case SVQ_VU_SET_MEM_TABLE:
		return SVQ_VU_MAX_FDS;
	case SVQ_VU_SET_LOG_BASE:
	case SVQ_VU_SET_LOG_FD:
	case SVQ_VU_SET_VRING_KICK:
	case SVQ_VU_SET_VRING_CALL:
	case SVQ_VU_SET_VRING_ERR:
	case SVQ_VU_SET_BACKEND_REQ_FD:
	case SVQ_VU_SET_INFLIGHT_FD:
	case SVQ_VU_ADD_MEM_REG:
	case SVQ_VU_REM_MEM_REG:
		return 1;
	}
	return 0;
}

/* ================= codec ================= */

#define ST_MAX_BYTES	(96u << 10)
#define ST_MAX_CHUNKS	64
#define ST_MAX_FDS	128
#define CHUNK_MAX_FDS	10

/* The fds one chunk carried: they ride with its first byte. */
struct att {
	size_t off;
	unsigned int n;
	unsigned int first;	/* into stream.ino[] */
};

struct stream {
	int tx, rx;
	uint8_t bytes[ST_MAX_BYTES];
	size_t len;
	struct att att[ST_MAX_CHUNKS];
	unsigned int natt;
	ino_t ino[ST_MAX_FDS];
	unsigned int nino;
	unsigned int chunks;
	bool full;		/* nothing more goes in */
};

static struct stream S;

/* Write @len bytes with @nfds fresh memfds; the model records what went. */
static void st_write(struct stream *st, const void *buf, size_t len,
		     unsigned int nfds)
{
	int fds[CHUNK_MAX_FDS];
	ino_t ino[CHUNK_MAX_FDS];
	unsigned int i;
	ssize_t n;

	if (st->full || !len || st->chunks >= ST_MAX_CHUNKS)
		return;
	if (len > ST_MAX_BYTES - st->len)
		len = ST_MAX_BYTES - st->len;
	if (nfds > CHUNK_MAX_FDS)
		nfds = CHUNK_MAX_FDS;
	if (nfds > ST_MAX_FDS - st->nino)
		nfds = ST_MAX_FDS - st->nino;
	for (i = 0; i < nfds; i++)
		fds[i] = new_memfd(&ino[i]);
	n = send_fds(st->tx, buf, len, fds, nfds);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	if (n <= 0) {
		st->full = true;
		return;
	}
	if (nfds) {
		st->att[st->natt++] = (struct att){ st->len, nfds, st->nino };
		memcpy(&st->ino[st->nino], ino, nfds * sizeof(ino[0]));
		st->nino += nfds;
	}
	memcpy(st->bytes + st->len, buf, (size_t)n);
	st->len += (size_t)n;
	st->chunks++;
	if ((size_t)n < len || st->len == ST_MAX_BYTES)
		st->full = true;
}

/* Through the codec's own sender: its argument checks, then the bytes. */
static void st_send(struct stream *st, struct fz *f)
{
	struct svq_vu_msg m;
	ino_t ino[SVQ_VU_MAX_FDS + 2];
	unsigned int i, nfds;
	bool ok;
	int rc;

	svq_vu_msg_init(&m, fz_u8(f), 0);
	m.hdr.flags = fz_u32(f);
	m.hdr.size = fz_below(f, PAYLOAD_MAX + 8);
	fz_bytes(f, &m.payload, m.hdr.size < PAYLOAD_MAX ? m.hdr.size : PAYLOAD_MAX);
	nfds = fz_below(f, SVQ_VU_MAX_FDS + 2);
	if (st->full || st->chunks >= ST_MAX_CHUNKS || st->nino + nfds > ST_MAX_FDS ||
	    st->len + SVQ_VU_HDR_SIZE + PAYLOAD_MAX > 32768)
		return;	/* svq_vu_send() would wait for room */
	/* Past SVQ_VU_MAX_FDS only the count is there: it is refused first. */
	for (i = 0; i < nfds && i < SVQ_VU_MAX_FDS; i++)
		m.fds[i] = new_memfd(&ino[i]);
	m.nfds = nfds;
	ok = nfds <= SVQ_VU_MAX_FDS && m.hdr.size <= PAYLOAD_MAX;
	rc = svq_vu_send(st->tx, &m);
	FZ_CHECK(rc == (ok ? 0 : -EINVAL), "svq_vu_send: %d, size %u, %u fds",
		 rc, m.hdr.size, nfds);
	for (i = 0; i < nfds && i < SVQ_VU_MAX_FDS; i++)
		close(m.fds[i]);
	if (!ok)
		return;
	if (nfds) {
		st->att[st->natt++] = (struct att){ st->len, nfds, st->nino };
		memcpy(&st->ino[st->nino], ino, nfds * sizeof(ino[0]));
		st->nino += nfds;
	}
	memcpy(st->bytes + st->len, &m.hdr, SVQ_VU_HDR_SIZE);
	memcpy(st->bytes + st->len + SVQ_VU_HDR_SIZE, &m.payload, m.hdr.size);
	st->len += SVQ_VU_HDR_SIZE + m.hdr.size;
	st->chunks++;
}

/* A message-shaped piece: a header the input mostly picks, a payload of the
 * size it claims (or not), cut in up to three chunks with fds on each. */
static void st_message(struct stream *st, struct fz *f)
{
	static uint8_t buf[SVQ_VU_HDR_SIZE + SVQ_VU_DRAIN_MAX + 64];
	struct svq_vu_hdr h;
	size_t len, cut1, cut2;
	int64_t skew = 0;
	uint8_t how = fz_u8(f);

	h.request = how & 0x80 ? fz_u32(f) : fz_u8(f) % 42;
	switch ((how >> 4) & 3) {
	case 0:
		h.flags = SVQ_VU_VERSION;
		break;
	case 1:
		h.flags = SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY;
		break;
	case 2:
		h.flags = SVQ_VU_VERSION | SVQ_VU_FLAG_NEED_REPLY;
		break;
	default:
		h.flags = fz_u32(f);
		break;
	}
	switch (how & 7) {
	case 0: case 1: case 2:
		h.size = fz_below(f, 48);
		break;
	case 3:
		h.size = fz_below(f, PAYLOAD_MAX + 1);
		break;
	case 4:		/* oversized, drained */
		h.size = PAYLOAD_MAX + 1 + fz_below(f, 1024);
		break;
	case 5:		/* around the drain limit */
		h.size = SVQ_VU_DRAIN_MAX - 2 + fz_below(f, 4);
		break;
	default:
		h.size = fz_u32(f);
		break;
	}
	memcpy(buf, &h, sizeof(h));
	len = SVQ_VU_HDR_SIZE + (h.size <= SVQ_VU_DRAIN_MAX ? h.size : 0);
	if (fz_u8(f) < 16)	/* short by a few bytes, or over */
		skew = (int8_t)fz_u8(f);
	len = skew < 0 && (size_t)-skew > len ? 0 : len + skew;
	if (len > sizeof(buf))
		len = sizeof(buf);
	memset(buf + SVQ_VU_HDR_SIZE, 0, len > SVQ_VU_HDR_SIZE ? len - SVQ_VU_HDR_SIZE : 0);
	if (len > SVQ_VU_HDR_SIZE)
		fz_bytes(f, buf + SVQ_VU_HDR_SIZE,
			 len - SVQ_VU_HDR_SIZE < 512 ? len - SVQ_VU_HDR_SIZE : 512);
	cut1 = len ? fz_below(f, (uint32_t)len + 1) : 0;
	cut2 = cut1 + (len > cut1 ? fz_below(f, (uint32_t)(len - cut1) + 1) : 0);
	st_write(st, buf, cut1, fz_below(f, CHUNK_MAX_FDS + 1));
	st_write(st, buf + cut1, cut2 - cut1, fz_below(f, CHUNK_MAX_FDS + 1));
	st_write(st, buf + cut2, len - cut2, fz_below(f, CHUNK_MAX_FDS + 1));
}

/* What svq_vu_recv() must make of the stream from byte @off. */
struct expect {
	int rc;
	struct svq_vu_hdr hdr;
	size_t next;		/* where the next message starts */
	unsigned int first_att, natt;	/* attachments it read */
	unsigned int nfds;
};

static void predict(const struct stream *st, size_t off, struct expect *e)
{
	size_t end;
	unsigned int i;

	memset(e, 0, sizeof(*e));
	if (off >= st->len) {
		e->rc = -ECONNRESET;
		return;
	}
	if (st->len - off < SVQ_VU_HDR_SIZE) {
		e->rc = -EPROTO;
		return;
	}
	memcpy(&e->hdr, st->bytes + off, SVQ_VU_HDR_SIZE);
	end = off + SVQ_VU_HDR_SIZE +
	      (e->hdr.size <= SVQ_VU_DRAIN_MAX ? e->hdr.size : 0);
	e->next = end;
	/* The fds of every chunk whose first byte the reads touch. */
	for (i = 0; i < st->natt && st->att[i].off < off; i++)
		;
	e->first_att = i;
	for (; i < st->natt && st->att[i].off < end; i++) {
		e->natt++;
		e->nfds += st->att[i].n;
	}
	if (e->nfds > SVQ_VU_MAX_FDS || e->hdr.size > SVQ_VU_DRAIN_MAX ||
	    st->len < end)
		e->rc = -EPROTO;
	else if (e->hdr.size > PAYLOAD_MAX)
		e->rc = -EMSGSIZE;
}

static void check_fd(int fd, ino_t want, unsigned int i)
{
	struct stat st;
	int fl = fcntl(fd, F_GETFD);

	FZ_CHECK(fl >= 0 && (fl & FD_CLOEXEC), "fd %u (%d): flags %d", i, fd, fl);
	FZ_CHECK(!fstat(fd, &st) && st.st_ino == want, "fd %u: another file", i);
}

static void run_codec(struct fz *f)
{
	struct stream *st = &S;
	struct svq_vu_msg m;
	struct expect e;
	unsigned int steps, i, k, kept;
	int sv[2], rc, buf = 1 << 20;
	size_t off = 0;

	FZ_CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
	st->tx = sv[0];
	st->rx = sv[1];
	setsockopt(st->tx, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	st->len = 0;
	st->natt = st->nino = st->chunks = 0;
	st->full = false;

	for (steps = 0; !fz_empty(f) && !st->full && steps < ST_MAX_CHUNKS; steps++) {
		uint8_t raw[256];
		size_t n;

		switch (fz_u8(f) % 4) {
		case 0:
		case 1:
			st_message(st, f);
			break;
		case 2:
			st_send(st, f);
			break;
		default:
			n = 1 + fz_u8(f);
			fz_bytes(f, raw, n);
			st_write(st, raw, n, fz_below(f, CHUNK_MAX_FDS + 1));
			break;
		}
	}
	shutdown(st->tx, SHUT_WR);

	for (steps = 0; steps < ST_MAX_BYTES / SVQ_VU_HDR_SIZE + 2; steps++) {
		predict(st, off, &e);
		/* Everything is there, the end included: no wait ever. */
		rc = svq_vu_recv(st->rx, &m, 0);
		FZ_CHECK(rc == e.rc, "message at %zu: %d, model %d (size %u, %u fds)",
			 off, rc, e.rc, e.hdr.size, e.nfds);
		if (rc) {
			FZ_CHECK(m.nfds == 0, "error %d with %u fds kept", rc, m.nfds);
		} else {
			FZ_CHECK(!memcmp(&m.hdr, &e.hdr, sizeof(e.hdr)), "header at %zu", off);
			FZ_CHECK(!memcmp(&m.payload, st->bytes + off + SVQ_VU_HDR_SIZE,
					 m.hdr.size), "payload at %zu", off);
			kept = fds_allowed(&e.hdr) < e.nfds ? fds_allowed(&e.hdr) : e.nfds;
			FZ_CHECK(m.nfds == kept && m.nfds_dropped == e.nfds - kept,
				 "request %u: %u fds kept, %u dropped; model %u of %u",
				 e.hdr.request, m.nfds, m.nfds_dropped, kept, e.nfds);
			for (i = 0, k = 0; i < e.natt && k < kept; i++) {
				const struct att *a = &st->att[e.first_att + i];
				unsigned int j;

				for (j = 0; j < a->n && k < kept; j++, k++)
					check_fd(m.fds[k], st->ino[a->first + j], k);
			}
			for (i = 0; i < m.nfds; i++)
				close(m.fds[i]);
		}
		if (rc && rc != -EMSGSIZE)
			break;
		off = e.next;
	}
	FZ_CHECK(rc == -ECONNRESET || rc == -EPROTO, "stream ended with %d", rc);
	close(st->tx);
	close(st->rx);
}

/* ================= frontend ================= */

#define RQ_MAX		64
#define PRED_MAX	8
#define FE_MAX_REGIONS	16

/* A reply written to the frontend, not yet read by it. */
struct reply {
	struct svq_vu_hdr hdr;
	union svq_vu_payload p;
	unsigned int nfds;
	bool endless;		/* a size past the drain limit, header only */
};

/* A request the frontend is about to send that waits for a reply. */
struct pred {
	uint32_t request;
	uint32_t index;		/* GET_VRING_BASE */
	uint32_t offset, size;	/* GET_CONFIG */
};

struct fe_fuzz {
	struct fz *f;
	struct svq_fe *fe;
	int peer;		/* the fake backend's end */
	int memfd, evfd;
	/* The model. */
	bool connecting;
	bool alive;		/* the session is not dead */
	bool hung_up;		/* the backend shut its side */
	bool lost;		/* garbage went out: no more predictions */
	bool reply_ack;
	uint64_t offered, proto_offered, protocol, acked;
	unsigned int qpc, queue_num, max_queues_opt, mem_slots;
	struct reply rq[RQ_MAX];
	unsigned int rq_head, rq_tail;
	struct svqiso_region reg[FE_MAX_REGIONS];
	unsigned int nreg;
	/* Set by the pairing of one call, read by its check. */
	struct pred pred[PRED_MAX];
	unsigned int npred;
	unsigned int nsent;	/* requests the call sent */
	int first_rc;		/* the first bad reply's errno, or 0 */
	bool killed;		/* by it */
	bool after_fail;	/* a request came after the call failed */
	uint64_t got_u64;	/* the last u64 value accepted */
	struct svq_vu_vring_state got_state;
	uint8_t got_config[SVQ_VU_CONFIG_MAX];
	struct svq_vu_msg first_req;	/* the call's first request */
};

static void pred_add(struct fe_fuzz *ff, uint32_t request)
{
	if (ff->npred < PRED_MAX)
		ff->pred[ff->npred++] = (struct pred){ .request = request };
}

/* A request without a reply of its own: acked with REPLY_ACK. */
static void pred_ack(struct fe_fuzz *ff, uint32_t request)
{
	if (ff->reply_ack)
		pred_add(ff, request);
}

/* Write one reply for @pd as the input has it: honest, or with one fault. */
enum fault {
	FT_WRONG_REQUEST,
	FT_NO_REPLY_FLAG,
	FT_VERSION,
	FT_EXTRA_FLAGS,	/* harmless: other flag bits */
	FT_SIZE,
	FT_OVERSIZED,
	FT_ENDLESS,
	FT_NACK,	/* ack non-zero; another value for a GET */
	FT_INDEX,
	FT_CONFIG,
	FT_GARBAGE,
	FT_OMIT,
	FT_NONE,
};

static void write_reply(struct fe_fuzz *ff, const struct pred *pd)
{
	static uint8_t buf[SVQ_VU_HDR_SIZE + PAYLOAD_MAX + 1024];
	struct fz *f = ff->f;
	struct reply r;
	uint8_t fb = fz_u8(f), nb = fz_u8(f);
	enum fault ft = fb % 20 < FT_NONE ? (enum fault)(fb % 20) : FT_NONE;
	int fds[CHUNK_MAX_FDS];
	unsigned int i;
	size_t len;
	ssize_t n;

	if (ff->hung_up || !ff->alive || ff->rq_tail - ff->rq_head >= RQ_MAX)
		return;
	memset(&r, 0, sizeof(r));
	r.nfds = nb >= 0xf0 ? nb - 0xf0 : 0;
	if (r.nfds > CHUNK_MAX_FDS)
		r.nfds = CHUNK_MAX_FDS;
	r.hdr.request = pd->request;
	r.hdr.flags = SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY;
	switch (pd->request) {
	case SVQ_VU_GET_VRING_BASE:
		r.hdr.size = sizeof(r.p.state);
		r.p.state.index = pd->index;
		r.p.state.num = fz_u32(f);
		break;
	case SVQ_VU_GET_CONFIG:
		r.hdr.size = SVQ_VU_CONFIG_HDR_SIZE + pd->size;
		r.p.config.offset = pd->offset;
		r.p.config.size = pd->size;
		fz_bytes(f, r.p.config.payload, pd->size);
		break;
	case SVQ_VU_GET_QUEUE_NUM:
	case SVQ_VU_GET_MAX_MEM_SLOTS:
		r.hdr.size = 8;
		r.p.u64 = fz_u8(f);
		if (r.p.u64 == 0xff)
			r.p.u64 = fz_u64(f);
		break;
	case SVQ_VU_GET_FEATURES:
	case SVQ_VU_GET_PROTOCOL_FEATURES:
		r.hdr.size = 8;
		r.p.u64 = fz_u64(f);
		break;
	default:	/* an ack */
		r.hdr.size = 8;
		break;
	}
	switch (ft) {
	case FT_WRONG_REQUEST:
		r.hdr.request = fz_u8(f) % 42;
		break;
	case FT_NO_REPLY_FLAG:
		r.hdr.flags &= ~SVQ_VU_FLAG_REPLY;
		break;
	case FT_VERSION:
		r.hdr.flags = (r.hdr.flags & ~SVQ_VU_VERSION_MASK) | (fz_u8(f) & 3);
		break;
	case FT_EXTRA_FLAGS:
		r.hdr.flags |= fz_u32(f) & ~SVQ_VU_VERSION_MASK;
		break;
	case FT_SIZE:
		r.hdr.size = fz_below(f, PAYLOAD_MAX + 1);
		break;
	case FT_OVERSIZED:
		r.hdr.size = PAYLOAD_MAX + 1 + fz_below(f, 1024);
		break;
	case FT_ENDLESS:
		r.hdr.size = SVQ_VU_DRAIN_MAX + 1 + fz_u16(f);
		r.endless = true;
		break;
	case FT_NACK:
		if (fz_own_reply(pd->request))
			r.p.u64 ^= 1ull << (fz_u8(f) % 64);
		else
			r.p.u64 = fz_u64(f) | 1;
		break;
	case FT_INDEX:
		r.p.state.index = fz_u32(f);
		break;
	case FT_CONFIG:
		r.p.config.offset = fz_u32(f);
		r.p.config.size = fz_u16(f);
		break;
	case FT_GARBAGE:
		len = 1 + fz_below(f, 2 * SVQ_VU_HDR_SIZE);
		fz_bytes(f, buf, len);
		if (send_fds(ff->peer, buf, len, NULL, 0) > 0)
			ff->lost = true;
		return;
	case FT_OMIT:
		return;
	case FT_NONE:
		break;
	}
	memcpy(buf, &r.hdr, SVQ_VU_HDR_SIZE);
	len = SVQ_VU_HDR_SIZE;
	if (!r.endless) {
		memset(buf + len, 0, r.hdr.size);
		memcpy(buf + len, &r.p, r.hdr.size < PAYLOAD_MAX ? r.hdr.size : PAYLOAD_MAX);
		len += r.hdr.size;
	}
	for (i = 0; i < r.nfds; i++)
		fds[i] = new_memfd(NULL);
	n = send_fds(ff->peer, buf, len, fds, r.nfds);
	for (i = 0; i < r.nfds; i++)
		close(fds[i]);
	if (n > 0 && (size_t)n < len)
		ff->lost = true;	/* never on an empty socket */
	if ((size_t)n == len)
		ff->rq[ff->rq_tail++ % RQ_MAX] = r;
}

/*
 * Before a call: the replies for what it is about to ask (ff->pred), as
 * many as the input says, then maybe a hang-up.
 */
static void prewrite(struct fe_fuzz *ff)
{
	struct fz *f = ff->f;
	uint8_t c = fz_u8(f);
	unsigned int k, i;
	struct pred any;

	k = c & 0x80 ? ff->npred : c % 8;
	for (i = 0; i < k; i++) {
		if (i < ff->npred) {
			write_reply(ff, &ff->pred[i]);
		} else {
			any = (struct pred){ .request = fz_u8(f) % 42 };
			write_reply(ff, &any);
		}
	}
	if ((c & 0x7f) == 0x7f && !ff->hung_up) {
		shutdown(ff->peer, SHUT_WR);
		ff->hung_up = true;
	}
}

/* The frontend-level checks of svq_fe after a good reply. */
static int reply_value_check(struct fe_fuzz *ff, const struct svq_vu_msg *req,
			     const struct reply *r)
{
	switch (req->hdr.request) {
	case SVQ_VU_GET_QUEUE_NUM:
		if (!r->p.u64 || r->p.u64 > 256 / ff->qpc)
			return -EPROTO;
		break;
	case SVQ_VU_GET_MAX_MEM_SLOTS:
		if (!r->p.u64)
			return -EPROTO;
		break;
	case SVQ_VU_GET_VRING_BASE:
		if (r->p.state.index != req->payload.state.index)
			return -EPROTO;
		break;
	}
	return 0;
}

/* What the frontend must make of reply @r (NULL: none there) to @req:
 * 0, or the errno of its call. */
static int judge(struct fe_fuzz *ff, const struct svq_vu_msg *req,
		 const struct reply *r, bool *kill)
{
	uint32_t size;

	*kill = true;
	if (!r)
		return ff->hung_up ? -ECONNRESET : -ETIMEDOUT;
	if (r->endless || r->nfds > SVQ_VU_MAX_FDS)
		return -EPROTO;
	if (r->hdr.size > PAYLOAD_MAX)
		return -EMSGSIZE;
	switch (req->hdr.request) {
	case SVQ_VU_GET_VRING_BASE:
		size = sizeof(struct svq_vu_vring_state);
		break;
	case SVQ_VU_GET_CONFIG:
		size = SVQ_VU_CONFIG_HDR_SIZE + req->payload.config.size;
		break;
	default:
		size = 8;
		break;
	}
	if (r->hdr.request != req->hdr.request ||
	    !(r->hdr.flags & SVQ_VU_FLAG_REPLY) ||
	    (r->hdr.flags & SVQ_VU_VERSION_MASK) != SVQ_VU_VERSION ||
	    r->hdr.size != size)
		return -EPROTO;
	if (req->hdr.request == SVQ_VU_GET_CONFIG &&
	    (r->p.config.offset != req->payload.config.offset ||
	     r->p.config.size != req->payload.config.size))
		return -EPROTO;
	if (!fz_own_reply(req->hdr.request) && r->p.u64) {
		*kill = false;
		return -EIO;
	}
	return reply_value_check(ff, req, r);
}

/*
 * After a call: read what it sent, pair every request that waits for a
 * reply with the next reply written, and record what the model makes of
 * it in ff (first_rc, killed, the values accepted).
 */
static void pair(struct fe_fuzz *ff)
{
	struct svq_vu_msg m;
	unsigned int i;
	bool kill, waits;
	int rc;

	ff->nsent = 0;
	ff->first_rc = 0;
	ff->killed = false;
	ff->after_fail = false;
	for (;;) {
		rc = svq_vu_recv(ff->peer, &m, 0);
		if (rc == -ETIMEDOUT || rc == -ECONNRESET)
			break;
		FZ_CHECK(rc == 0, "reading the frontend's request: %d", rc);
		FZ_CHECK(m.nfds_dropped == 0, "request %u: %u fds dropped",
			 m.hdr.request, m.nfds_dropped);
		for (i = 0; i < m.nfds; i++)
			close(m.fds[i]);
		if (!ff->nsent)
			ff->first_req = m;
		ff->nsent++;
		if (ff->first_rc)
			ff->after_fail = true;
		if (ff->lost)
			continue;
		waits = fz_own_reply(m.hdr.request) ||
			(m.hdr.flags & SVQ_VU_FLAG_NEED_REPLY);
		FZ_CHECK(!!(m.hdr.flags & SVQ_VU_FLAG_NEED_REPLY) ==
			 (ff->reply_ack && !fz_own_reply(m.hdr.request)),
			 "request %u: NEED_REPLY %#x with reply_ack %d",
			 m.hdr.request, m.hdr.flags, ff->reply_ack);
		if (m.hdr.request == SVQ_VU_SET_PROTOCOL_FEATURES) {
			FZ_CHECK(m.payload.u64 == (ff->proto_offered & FE_HONOURED),
				 "SET_PROTOCOL_FEATURES %#llx of %#llx offered",
				 (unsigned long long)m.payload.u64,
				 (unsigned long long)ff->proto_offered);
			ff->protocol = m.payload.u64;
			ff->reply_ack = ff->protocol & BIT(SVQ_VU_PROTOCOL_F_REPLY_ACK);
		}
		if (!waits)
			continue;
		if (ff->rq_head == ff->rq_tail) {
			rc = judge(ff, &m, NULL, &kill);
		} else {
			const struct reply *r = &ff->rq[ff->rq_head++ % RQ_MAX];

			rc = judge(ff, &m, r, &kill);
			if (!rc) {
				ff->got_u64 = r->p.u64;
				ff->got_state = r->p.state;
				if (m.hdr.request == SVQ_VU_GET_CONFIG)
					memcpy(ff->got_config, r->p.config.payload,
					       m.payload.config.size);
				switch (m.hdr.request) {
				case SVQ_VU_GET_FEATURES:
					if (ff->connecting)
						ff->offered = r->p.u64;
					break;
				case SVQ_VU_GET_PROTOCOL_FEATURES:
					ff->proto_offered = r->p.u64;
					break;
				case SVQ_VU_GET_QUEUE_NUM:
					ff->queue_num = (unsigned int)r->p.u64 * ff->qpc;
					break;
				case SVQ_VU_GET_MAX_MEM_SLOTS:
					ff->mem_slots = r->p.u64 > SVQISO_MEM_MAX_REGIONS ?
						SVQISO_MEM_MAX_REGIONS :
						(unsigned int)r->p.u64;
					break;
				}
			} else if (r->endless) {
				ff->lost = true;	/* out of step, if it lived */
			}
		}
		if (rc && !ff->first_rc) {
			ff->first_rc = rc;
			ff->killed = kill;
		}
	}
	if (rc == -ECONNRESET)
		FZ_CHECK(!ff->fe || svq_fe_fd(ff->fe) < 0,
			 "the socket closed under a live session");
}

/*
 * The call returned @rc having been expected to send requests (@send) or
 * to refuse before sending (@pre_rc): check it against the pairing.
 */
static void check_call(struct fe_fuzz *ff, const char *what, int rc, bool send,
		       int pre_rc)
{
	bool dead;

	FZ_CHECK(rc <= 0, "%s: %d", what, rc);
	if (!send) {
		FZ_CHECK(ff->nsent == 0, "%s: sent %u requests", what, ff->nsent);
		FZ_CHECK(rc == pre_rc, "%s: %d, model %d", what, rc, pre_rc);
		return;
	}
	dead = !ff->fe || svq_fe_fd(ff->fe) < 0;
	if (ff->lost) {
		/* No more model: the errno conventions only. */
		FZ_CHECK(rc == 0 || rc == -EIO || rc == -EPROTO || rc == -EMSGSIZE ||
			 rc == -ETIMEDOUT || rc == -ECONNRESET || rc == -ENOTCONN,
			 "%s: %d", what, rc);
		if (rc && rc != -EIO && rc != -ENOTCONN)
			FZ_CHECK(dead, "%s: %d and the session lives", what, rc);
		ff->alive = !dead;
		if (ff->fe) {	/* what the model can no longer know */
			ff->offered = svq_fe_offered_features(ff->fe);
			ff->protocol = svq_fe_protocol_features(ff->fe);
			ff->reply_ack = ff->protocol & BIT(SVQ_VU_PROTOCOL_F_REPLY_ACK);
			ff->acked = svq_fe_acked_features(ff->fe);
			ff->queue_num = svq_fe_queue_num(ff->fe);
			ff->mem_slots = svq_fe_mem_slots(ff->fe);
		}
		return;
	}
	FZ_CHECK(ff->nsent > 0, "%s: nothing sent", what);
	FZ_CHECK(!ff->after_fail, "%s: a request after the failed one", what);
	FZ_CHECK(rc == ff->first_rc, "%s: %d, model %d", what, rc, ff->first_rc);
	FZ_CHECK(dead == ff->killed, "%s: %d, session %s, model %s", what, rc,
		 dead ? "dead" : "alive", ff->killed ? "dead" : "alive");
	ff->alive = !dead;
}

/* ---- the calls ---- */

static void fe_connect(struct fe_fuzz *ff, int sock)
{
	struct fz *f = ff->f;
	SVQISO_OPTS(svq_fe_opts, o, .timeout_ms = 1);
	uint8_t b = fz_u8(f);
	int rc;

	o.flags = b & 1 ? SVQ_FE_QUEUE_PAIRS : 0;
	o.max_queues = b & 2 ? fz_below(f, 258) : 0;
	ff->qpc = o.flags ? 2 : 1;
	ff->queue_num = ff->qpc;
	ff->mem_slots = SVQ_FE_MAX_TABLE;
	ff->max_queues_opt = (unsigned int)o.max_queues;

	ff->npred = 0;
	pred_add(ff, SVQ_VU_GET_FEATURES);
	pred_add(ff, SVQ_VU_GET_PROTOCOL_FEATURES);
	pred_add(ff, SVQ_VU_GET_QUEUE_NUM);
	pred_add(ff, SVQ_VU_GET_MAX_MEM_SLOTS);
	prewrite(ff);

	rc = svq_fe_connect_fd(sock, &o, &ff->fe);
	ff->connecting = true;
	pair(ff);
	ff->connecting = false;
	if (o.max_queues > 256) {
		check_call(ff, "connect", rc, false, -EINVAL);
		ff->alive = false;
		return;
	}
	check_call(ff, "connect", rc, true, 0);
	if (rc) {
		FZ_CHECK(ff->fe == NULL, "connect failed with a session");
		ff->alive = false;
		return;
	}
	if (ff->lost)
		return;
	FZ_CHECK(svq_fe_offered_features(ff->fe) == ff->offered,
		 "offered %#llx, reply %#llx",
		 (unsigned long long)svq_fe_offered_features(ff->fe),
		 (unsigned long long)ff->offered);
	if (!(ff->offered & BIT(SVQ_VU_F_PROTOCOL_FEATURES)))
		ff->protocol = 0;
	FZ_CHECK(svq_fe_protocol_features(ff->fe) == ff->protocol, "protocol");
	FZ_CHECK(svq_fe_queue_num(ff->fe) == ff->queue_num, "queues %u, model %u",
		 svq_fe_queue_num(ff->fe), ff->queue_num);
	FZ_CHECK(svq_fe_max_queues(ff->fe) ==
		 (ff->max_queues_opt ? ff->max_queues_opt : ff->queue_num),
		 "max queues %u", svq_fe_max_queues(ff->fe));
	FZ_CHECK(svq_fe_mem_slots(ff->fe) == ff->mem_slots, "slots %u, model %u",
		 svq_fe_mem_slots(ff->fe), ff->mem_slots);
}

static unsigned int max_queues(const struct fe_fuzz *ff)
{
	return ff->max_queues_opt ? ff->max_queues_opt : ff->queue_num;
}

static bool has_proto(const struct fe_fuzz *ff, unsigned int bit)
{
	return ff->protocol & BIT(bit);
}

static void op_set_features(struct fe_fuzz *ff)
{
	uint64_t wanted = fz_u64(ff->f), agreed = 0;
	int rc;

	ff->npred = 0;
	pred_ack(ff, SVQ_VU_SET_FEATURES);
	prewrite(ff);
	rc = svq_fe_set_features(ff->fe, wanted, &agreed);
	pair(ff);
	check_call(ff, "set_features", rc, ff->alive, -ENOTCONN);
	if (!rc && !ff->lost) {
		FZ_CHECK(ff->first_req.hdr.request == SVQ_VU_SET_FEATURES &&
			 agreed == ff->first_req.payload.u64 &&
			 svq_fe_acked_features(ff->fe) == agreed, "features agreed");
		FZ_CHECK(!(agreed & ~ff->offered), "features %#llx not offered",
			 (unsigned long long)(agreed & ~ff->offered));
		ff->acked = agreed;
	}
}

static void op_region_add(struct fe_fuzz *ff)
{
	struct svqiso_region r = {
		.iova = (uint64_t)fz_u16(ff->f) << 12,
		.size = 4096,
		.uaddr = (void *)(uintptr_t)(((uint64_t)fz_u16(ff->f) + 1) << 12),
		.fd = ff->memfd,
	};
	bool send = ff->alive && ff->nreg < ff->mem_slots;
	unsigned int want_fds;
	int rc;

	if (ff->nreg == FE_MAX_REGIONS)
		return;
	ff->npred = 0;
	if (send)
		pred_ack(ff, has_proto(ff, SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) ?
			 SVQ_VU_ADD_MEM_REG : SVQ_VU_SET_MEM_TABLE);
	prewrite(ff);
	rc = svq_fe_region_add(ff->fe, &r);
	pair(ff);
	check_call(ff, "region_add", rc, send, ff->alive ? -ENOSPC : -ENOTCONN);
	if (!rc)
		ff->reg[ff->nreg++] = r;
	if (ff->fe)
		FZ_CHECK(svq_fe_nr_regions(ff->fe) == ff->nreg, "%u regions, model %u",
			 svq_fe_nr_regions(ff->fe), ff->nreg);
	if (send && !ff->lost) {
		want_fds = has_proto(ff, SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) ?
			   1 : ff->nreg + (rc ? 1 : 0);
		FZ_CHECK(ff->first_req.nfds == want_fds, "region_add: %u fds, not %u",
			 ff->first_req.nfds, want_fds);
	}
}

static void op_region_del(struct fe_fuzz *ff)
{
	struct svqiso_region r = { .iova = 1ull << 40, .size = 4096, .fd = ff->memfd };
	unsigned int i = fz_u8(ff->f);
	bool found = i < ff->nreg;
	int rc;

	if (found)
		r = ff->reg[i];
	ff->npred = 0;
	if (found && ff->alive)
		pred_ack(ff, has_proto(ff, SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) ?
			 SVQ_VU_REM_MEM_REG : SVQ_VU_SET_MEM_TABLE);
	prewrite(ff);
	rc = svq_fe_region_del(ff->fe, &r);
	pair(ff);
	if (found) {
		/* Forgotten whatever the backend says. */
		memmove(&ff->reg[i], &ff->reg[i + 1], (ff->nreg - i - 1) * sizeof(r));
		ff->nreg--;
	}
	check_call(ff, "region_del", rc, found && ff->alive,
		   found ? -ENOTCONN : -ENOENT);
	FZ_CHECK(svq_fe_nr_regions(ff->fe) == ff->nreg, "%u regions, model %u",
		 svq_fe_nr_regions(ff->fe), ff->nreg);
}

static void op_vring_start(struct fe_fuzz *ff)
{
	struct fz *f = ff->f;
	struct svqiso_shadow_info info = {
		.layout = fz_bool(f) ? SVQISO_LAYOUT_PACKED : SVQISO_LAYOUT_SPLIT,
		.num = fz_u16(f),
		.base = fz_u32(f),
		.uaddr = { 0x10000, 0x20000, 0x30000 },
	};
	unsigned int index = fz_below(f, max_queues(ff) + 2);
	int call = fz_bool(f) ? ff->evfd : -1, rc, pre = 0;

	if (index >= max_queues(ff))
		pre = -EINVAL;
	else if (!ff->alive)
		pre = -ENOTCONN;
	else if (info.layout == SVQISO_LAYOUT_PACKED &&
		 !(ff->acked & BIT(SVQ_FE_F_RING_PACKED)))
		pre = -ENOTSUP;
	ff->npred = 0;
	if (!pre) {
		pred_ack(ff, SVQ_VU_SET_VRING_NUM);
		pred_ack(ff, SVQ_VU_SET_VRING_ADDR);
		pred_ack(ff, SVQ_VU_SET_VRING_BASE);
		pred_ack(ff, SVQ_VU_SET_VRING_KICK);
		pred_ack(ff, SVQ_VU_SET_VRING_CALL);
		if (ff->acked & BIT(SVQ_VU_F_PROTOCOL_FEATURES))
			pred_ack(ff, SVQ_VU_SET_VRING_ENABLE);
	}
	prewrite(ff);
	rc = svq_fe_vring_start(ff->fe, index, &info, ff->evfd, call);
	pair(ff);
	check_call(ff, "vring_start", rc, !pre, pre);
}

static void op_vring_stop(struct fe_fuzz *ff)
{
	unsigned int index = fz_below(ff->f, max_queues(ff) + 2);
	uint32_t base = 0;
	int rc, pre = 0;

	if (index >= max_queues(ff))
		pre = -EINVAL;
	else if (!ff->alive)
		pre = -ENOTCONN;
	ff->npred = 0;
	if (!pre) {
		pred_add(ff, SVQ_VU_GET_VRING_BASE);
		ff->pred[0].index = index;
	}
	prewrite(ff);
	rc = svq_fe_vring_stop(ff->fe, index, &base);
	pair(ff);
	check_call(ff, "vring_stop", rc, !pre, pre);
	if (!rc && !ff->lost)
		FZ_CHECK(base == ff->got_state.num, "vring base %#x, reply %#x",
			 base, ff->got_state.num);
}

static void op_get_config(struct fe_fuzz *ff)
{
	uint8_t buf[SVQ_VU_CONFIG_MAX + 1];
	uint32_t offset = fz_u8(ff->f) == 0xff ? fz_u32(ff->f) : fz_u8(ff->f);
	uint32_t len = fz_below(ff->f, SVQ_VU_CONFIG_MAX + 2);
	int rc, pre = 0;

	if (!len || len > SVQ_VU_CONFIG_MAX)
		pre = -EINVAL;
	else if (!ff->alive)
		pre = -ENOTCONN;
	else if (!has_proto(ff, SVQ_VU_PROTOCOL_F_CONFIG))
		pre = -ENOTSUP;
	ff->npred = 0;
	if (!pre) {
		pred_add(ff, SVQ_VU_GET_CONFIG);
		ff->pred[0].offset = offset;
		ff->pred[0].size = len;
	}
	prewrite(ff);
	memset(buf, 0xa5, sizeof(buf));
	rc = svq_fe_get_config(ff->fe, offset, buf, len);
	pair(ff);
	check_call(ff, "get_config", rc, !pre, pre);
	if (!rc && !ff->lost)
		FZ_CHECK(!memcmp(buf, ff->got_config, len), "config bytes");
	if (len <= SVQ_VU_CONFIG_MAX)
		FZ_CHECK(buf[len] == 0xa5, "config written past %u bytes", len);
}

static void op_set_config(struct fe_fuzz *ff)
{
	uint8_t buf[SVQ_VU_CONFIG_MAX];
	uint32_t offset = fz_u8(ff->f) == 0xff ? fz_u32(ff->f) : fz_u8(ff->f);
	uint32_t len = fz_below(ff->f, SVQ_VU_CONFIG_MAX + 2);
	uint32_t flags = fz_below(ff->f, 3);
	int rc, pre = 0;

	if (!len || len > SVQ_VU_CONFIG_MAX || offset > UINT32_MAX - len || flags > 1)
		pre = -EINVAL;
	else if (!ff->alive)
		pre = -ENOTCONN;
	else if (!has_proto(ff, SVQ_VU_PROTOCOL_F_CONFIG))
		pre = -ENOTSUP;
	ff->npred = 0;
	if (!pre)
		pred_ack(ff, SVQ_VU_SET_CONFIG);
	prewrite(ff);
	memset(buf, 0x5a, sizeof(buf));
	rc = svq_fe_set_config(ff->fe, offset, buf, len, flags);
	pair(ff);
	check_call(ff, "set_config", rc, !pre, pre);
}

static void op_vring_enable(struct fe_fuzz *ff)
{
	unsigned int index = fz_below(ff->f, max_queues(ff) + 2);
	bool on = fz_bool(ff->f);
	int rc, pre = 0;
	bool send;

	if (index >= max_queues(ff))
		pre = -EINVAL;
	else if (!ff->alive)
		pre = -ENOTCONN;
	send = !pre && (ff->acked & BIT(SVQ_VU_F_PROTOCOL_FEATURES));
	ff->npred = 0;
	if (send)
		pred_ack(ff, SVQ_VU_SET_VRING_ENABLE);
	prewrite(ff);
	rc = svq_fe_vring_enable(ff->fe, index, on);
	pair(ff);
	check_call(ff, "vring_enable", rc, send, pre);
}

static void op_reset(struct fe_fuzz *ff)
{
	int rc;

	ff->npred = 0;
	if (ff->alive)
		pred_ack(ff, has_proto(ff, SVQ_VU_PROTOCOL_F_RESET_DEVICE) ?
			 SVQ_VU_RESET_DEVICE : SVQ_VU_RESET_OWNER);
	prewrite(ff);
	rc = svq_fe_reset(ff->fe);
	pair(ff);
	check_call(ff, "reset", rc, ff->alive, -ENOTCONN);
	if (!rc)
		ff->acked = 0;
	FZ_CHECK(svq_fe_acked_features(ff->fe) == ff->acked || ff->lost,
		 "acked features after reset");
}

/* svq_fe_call(): a request passed on as it is, with an ack or a reply. */
static void op_call(struct fe_fuzz *ff)
{
	struct svq_vu_msg m, r;
	bool get = fz_bool(ff->f);
	int rc;

	if (get) {
		svq_vu_msg_init(&m, SVQ_VU_GET_FEATURES, 0);
	} else {
		svq_vu_msg_init(&m, VU_NET_SET_MTU, 8);
		m.payload.u64 = fz_u16(ff->f);
	}
	ff->npred = 0;
	if (ff->alive) {
		if (get)
			pred_add(ff, SVQ_VU_GET_FEATURES);
		else
			pred_ack(ff, VU_NET_SET_MTU);
	}
	prewrite(ff);
	rc = svq_fe_call(ff->fe, &m, &r);
	pair(ff);
	check_call(ff, "call", rc, ff->alive, -ENOTCONN);
	if (!rc && get && !ff->lost)
		FZ_CHECK(r.payload.u64 == ff->got_u64, "GET_FEATURES reply");
	if (!rc && get)
		FZ_CHECK(r.nfds == 0, "a reply kept %u fds", r.nfds);
}

static void run_frontend(struct fz *f)
{
	static struct fe_fuzz ff;
	unsigned int steps;
	int sv[2];

	memset(&ff, 0, sizeof(ff));
	ff.f = f;
	FZ_CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
	ff.peer = sv[1];
	ff.alive = true;
	ff.memfd = new_memfd(NULL);
	ff.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	FZ_CHECK(ff.evfd >= 0, "eventfd");

	fe_connect(&ff, sv[0]);
	for (steps = 0; ff.fe && !fz_empty(f) && steps < 48; steps++) {
		switch (fz_u8(f) % 11) {
		case 0:
			op_set_features(&ff);
			break;
		case 1:
			op_region_add(&ff);
			break;
		case 2:
			op_region_del(&ff);
			break;
		case 3:
			op_vring_start(&ff);
			break;
		case 4:
			op_vring_stop(&ff);
			break;
		case 5:
			op_get_config(&ff);
			break;
		case 6:
			op_set_config(&ff);
			break;
		case 7:
			op_vring_enable(&ff);
			break;
		case 8:
			op_reset(&ff);
			break;
		case 9:
			op_call(&ff);
			break;
		default:	/* replies nobody asked for */
			ff.npred = 0;
			prewrite(&ff);
			break;
		}
	}
	svq_fe_free(ff.fe);
	close(ff.peer);
	close(ff.memfd);
	close(ff.evfd);
}

/* ================= adapter ================= */

#define AD_GPA		0x100000ull
#define AD_RAM		(64u << 10)
#define AD_MAX_Q	8

struct ad_fuzz {
	struct fe_fuzz ff;	/* the fake backend's side, as above */
	struct svqiso_vu *vu;
	bool direct;
	int ramfd, kick, call;
	uint8_t *ram;
	bool ram_added;
	bool started[AD_MAX_Q];
	bool ever[AD_MAX_Q];	/* its isolated regions exist */
};

static struct svqiso_vu_info ad_info(const struct ad_fuzz *a)
{
	struct svqiso_vu_info in = { .sz = sizeof(in) };

	FZ_CHECK(!svqiso_vu_get_info(a->vu, &in), "svqiso_vu_get_info");
	return in;
}

/* The ring messages a queue start sends, acked or not. */
static void ad_pred_ring(struct ad_fuzz *a, const struct svqiso_vu_info *in)
{
	struct fe_fuzz *ff = &a->ff;

	pred_ack(ff, SVQ_VU_SET_VRING_NUM);
	pred_ack(ff, SVQ_VU_SET_VRING_ADDR);
	pred_ack(ff, SVQ_VU_SET_VRING_BASE);
	pred_ack(ff, SVQ_VU_SET_VRING_KICK);
	pred_ack(ff, SVQ_VU_SET_VRING_CALL);
	if (in->acked_features & BIT(SVQ_VU_F_PROTOCOL_FEATURES))
		pred_ack(ff, SVQ_VU_SET_VRING_ENABLE);
}

static uint32_t ad_region_request(const struct svqiso_vu_info *in)
{
	return in->protocol_features & BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) ?
	       SVQ_VU_ADD_MEM_REG : SVQ_VU_SET_MEM_TABLE;
}

/* After a call: drain what the adapter sent; the errno conventions. */
static void ad_after(struct ad_fuzz *a, const char *what, int rc)
{
	pair(&a->ff);
	FZ_CHECK(rc <= 0 && rc > -4096, "%s: %d", what, rc);
}

static void ad_ring_poke(struct ad_fuzz *a)
{
	struct fz *f = a->ff.f;
	unsigned int i, n = 1 + fz_below(f, 8);

	for (i = 0; i < n; i++) {
		uint16_t off = fz_u16(f) % (AD_RAM - 16);
		uint8_t b[16];

		fz_bytes(f, b, sizeof(b));
		memcpy(a->ram + off, b, sizeof(b));
	}
}

static void run_adapter(struct fz *f)
{
	static struct ad_fuzz A;
	struct ad_fuzz *a = &A;
	struct fe_fuzz *ff = &a->ff;
	SVQISO_OPTS(svqiso_vu_opts, o, .timeout_ms = 1, .pool_size = 64 << 10);
	struct svqiso_vu_info in;
	unsigned int steps, i;
	uint8_t b, cfg[SVQ_VU_CONFIG_MAX];
	uint32_t base;
	int sv[2], rc;

	memset(a, 0, sizeof(*a));
	ff->f = f;
	ff->alive = true;
	ff->lost = true;	/* the requests are guessed, not modelled */
	FZ_CHECK(!socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), "socketpair");
	ff->peer = sv[1];
	a->ramfd = new_memfd(NULL);
	FZ_CHECK(!ftruncate(a->ramfd, AD_RAM), "ftruncate");
	a->ram = mmap(NULL, AD_RAM, PROT_READ | PROT_WRITE, MAP_SHARED, a->ramfd, 0);
	FZ_CHECK(a->ram != MAP_FAILED, "mmap");
	a->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	a->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	FZ_CHECK(a->kick >= 0 && a->call >= 0, "eventfd");

	b = fz_u8(f);
	a->direct = b & 1;
	o.fd = sv[0];
	o.mode = a->direct ? SVQISO_VU_DIRECT : SVQISO_VU_ISOLATED;
	o.flags = SVQISO_VU_F_EXTERNAL_LOOP | ((b >> 1) & (SVQISO_VU_F_PRESERVE |
		  SVQISO_VU_F_NO_INDIRECT | SVQISO_VU_F_NO_EVENT_IDX |
		  SVQISO_VU_F_LAZY_KICKS)) | (b & 0x40 ? SVQISO_VU_F_QUEUE_PAIRS : 0);
	ff->npred = 0;
	pred_add(ff, SVQ_VU_GET_FEATURES);
	pred_add(ff, SVQ_VU_GET_PROTOCOL_FEATURES);
	pred_add(ff, SVQ_VU_GET_QUEUE_NUM);
	pred_add(ff, SVQ_VU_GET_MAX_MEM_SLOTS);
	prewrite(ff);
	rc = svqiso_vu_connect(&o, &a->vu);
	ad_after(a, "connect", rc);
	if (rc)
		goto out;

	for (steps = 0; !fz_empty(f) && steps < 40; steps++) {
		in = ad_info(a);
		ff->reply_ack = in.protocol_features & BIT(SVQ_VU_PROTOCOL_F_REPLY_ACK);
		ff->npred = 0;
		b = fz_u8(f);
		switch (b % 12) {
		case 0: {
			uint64_t want = fz_u64(f);

			if (fz_u8(f) < 0xe0)
				want &= svqiso_vu_get_features(a->vu);
			pred_ack(ff, SVQ_VU_SET_FEATURES);
			prewrite(ff);
			rc = svqiso_vu_set_features(a->vu, want);
			ad_after(a, "set_features", rc);
			break;
		}
		case 1: {
			struct svqiso_mem_region r = {
				.gpa = AD_GPA, .size = AD_RAM, .hva = a->ram,
				.fd = a->ramfd,
			};

			if (!a->ram_added) {
				if (a->direct)
					pred_ack(ff, ad_region_request(&in));
				prewrite(ff);
				rc = svqiso_vu_add_region(a->vu, &r);
				a->ram_added = !rc;
				ad_after(a, "add_region", rc);
			} else {
				if (a->direct)
					pred_ack(ff, in.protocol_features &
						 BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) ?
						 SVQ_VU_REM_MEM_REG : SVQ_VU_SET_MEM_TABLE);
				prewrite(ff);
				rc = svqiso_vu_del_region(a->vu, AD_GPA);
				a->ram_added = rc == -EBUSY;
				ad_after(a, "del_region", rc);
			}
			break;
		}
		case 2: {
			unsigned int idx = fz_below(f, AD_MAX_Q);
			struct svqiso_vu_queue q = {
				.sz = sizeof(q),
				.ring = { AD_GPA, AD_GPA + 0x1000, AD_GPA + 0x2000 },
				.num = (uint16_t)(1u << fz_below(f, 9)),
				.layout = in.acked_features & BIT(34) ?
					  SVQISO_LAYOUT_PACKED : SVQISO_LAYOUT_SPLIT,
				.base = fz_u16(f),
				.kick_fd = a->kick,
				.call_fd = fz_bool(f) ? a->call : -1,
			};

			if (!a->direct && !a->ever[idx]) {
				if (idx % 8 == 0)	/* the shared ring region */
					pred_ack(ff, ad_region_request(&in));
				pred_ack(ff, ad_region_request(&in));	/* arena */
			}
			ad_pred_ring(a, &in);
			prewrite(ff);
			rc = svqiso_vu_queue_start(a->vu, idx, &q);
			ad_after(a, "queue_start", rc);
			if (!rc)
				a->started[idx] = a->ever[idx] = true;
			break;
		}
		case 3: {
			unsigned int idx = fz_below(f, AD_MAX_Q);

			if (in.acked_features & BIT(SVQ_VU_F_PROTOCOL_FEATURES))
				pred_ack(ff, SVQ_VU_SET_VRING_ENABLE);
			pred_add(ff, SVQ_VU_GET_VRING_BASE);
			ff->pred[ff->npred - 1].index = idx;
			prewrite(ff);
			rc = svqiso_vu_queue_stop(a->vu, idx, &base);
			ad_after(a, "queue_stop", rc);
			if (!rc || rc == -ECONNRESET || rc == -EIO)
				a->started[idx] = false;
			break;
		}
		case 4:
			if (b & 0x80) {
				/* A VMM that polls: notifications off or on. */
				rc = svqiso_vu_queue_set_busy_poll(a->vu,
					fz_below(f, AD_MAX_Q), b & 0x40);
				FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOTSUP ||
					 rc == -EIO, "queue_set_busy_poll: %d", rc);
				break;
			}
			rc = svqiso_vu_queue_kick(a->vu, fz_below(f, AD_MAX_Q));
			pair(ff);
			FZ_CHECK(rc >= -4095, "queue_kick: %d", rc);
			break;
		case 5:
			if (b & 0x80) {
				rc = svqiso_vu_queue_poll(a->vu, fz_below(f, AD_MAX_Q));
				pair(ff);
				FZ_CHECK(rc >= -4095 && (rc < 0 ||
					 !(rc & ~(SVQISO_SIGNAL_BACKEND |
						  SVQISO_SIGNAL_GUEST |
						  SVQISO_SIGNAL_MOVED))),
					 "queue_poll: %d", rc);
				break;
			}
			rc = svqiso_vu_queue_process(a->vu, fz_below(f, AD_MAX_Q));
			pair(ff);
			FZ_CHECK(rc >= -4095, "queue_process: %d", rc);
			break;
		case 6: {
			uint32_t off = fz_u8(f), len = 1 + fz_below(f, SVQ_VU_CONFIG_MAX);

			pred_add(ff, SVQ_VU_GET_CONFIG);
			ff->pred[0].offset = off;
			ff->pred[0].size = len;
			prewrite(ff);
			rc = svqiso_vu_get_config(a->vu, off, cfg, len);
			ad_after(a, "get_config", rc);
			break;
		}
		case 7: {
			uint32_t off = fz_u8(f), len = 1 + fz_below(f, SVQ_VU_CONFIG_MAX);

			memset(cfg, 0x5a, sizeof(cfg));
			pred_ack(ff, SVQ_VU_SET_CONFIG);
			prewrite(ff);
			rc = svqiso_vu_set_config(a->vu, off, cfg, len);
			ad_after(a, "set_config", rc);
			break;
		}
		case 8:
			for (i = 0; i < AD_MAX_Q; i++) {
				if (!a->started[i])
					continue;
				if (in.acked_features & BIT(SVQ_VU_F_PROTOCOL_FEATURES))
					pred_ack(ff, SVQ_VU_SET_VRING_ENABLE);
				pred_add(ff, SVQ_VU_GET_VRING_BASE);
				ff->pred[ff->npred - 1].index = i;
			}
			pred_ack(ff, in.protocol_features &
				 BIT(SVQ_VU_PROTOCOL_F_RESET_DEVICE) ?
				 SVQ_VU_RESET_DEVICE : SVQ_VU_RESET_OWNER);
			prewrite(ff);
			rc = svqiso_vu_reset(a->vu);
			ad_after(a, "reset", rc);
			memset(a->started, 0, sizeof(a->started));
			break;
		case 9:
			rc = svqiso_vu_session_check(a->vu);
			FZ_CHECK(rc == 0 || rc == 1, "session_check: %d", rc);
			break;
		case 10:
			ad_ring_poke(a);
			break;
		default:	/* replies nobody asked for, or a hang-up */
			prewrite(ff);
			break;
		}
	}
out:
	svqiso_vu_free(a->vu);
	pair(ff);
	close(ff->peer);
	munmap(a->ram, AD_RAM);
	close(a->ramfd);
	close(a->kick);
	close(a->call);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f;
	int fds = fz_count_fds();
	uint8_t pick;

	fz_init(&f, data, size);
	pick = fz_u8(&f);
	if (pick & 1)
		run_frontend(&f);
	else if (pick & 2)
		run_adapter(&f);
	else
		run_codec(&f);
	FZ_CHECK(fz_count_fds() == fds, "%d fds open, %d before",
		 fz_count_fds(), fds);
	return 0;
}
