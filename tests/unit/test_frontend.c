/* SPDX-License-Identifier: MIT */
/*
 * vhost-user frontend session (lib/frontend.c) against a scripted fake
 * backend: a thread on the other end of a socketpair that speaks the wire
 * format with plain recvmsg/write, answers like a well-behaved backend, and
 * misbehaves once on demand. It records every message it receives, with the
 * identity (st_dev, st_ino) of every fd that came along; the test checks the
 * record after joining it. Every wait is bounded: replies by REPLY_MS (by
 * TIMEOUT_MS where the fake backend stays silent), the fake backend's reads
 * by PEER_WAIT_MS, the join by JOIN_S.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <svqiso/iso.h>

#include "frontend.h"
#include "vhost_user.h"
#include "fds.h"

#define TIMEOUT_MS	200	/* the frontend's wait for a silent backend */
#define REPLY_MS	5000	/* its wait for one that answers (a loaded CI
				 * machine may take a while to schedule it) */
#define PEER_WAIT_MS	5000	/* the fake backend's wait for a request */
#define JOIN_S		5

#define BIT(n)		(1ull << (n))

/* Protocol features svqiso honours, spelled out independently of frontend.c. */
#define HONOURED_PROTOCOL (BIT(SVQ_VU_PROTOCOL_F_MQ) |			\
			   BIT(SVQ_VU_PROTOCOL_F_REPLY_ACK) |		\
			   BIT(SVQ_VU_PROTOCOL_F_NET_MTU) |		\
			   BIT(SVQ_VU_PROTOCOL_F_CONFIG) |		\
			   BIT(SVQ_VU_PROTOCOL_F_RESET_DEVICE) |	\
			   BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

/* ---- log capture ---- */

#define MAX_LOGS 128

static struct {
	unsigned int n;
	int level[MAX_LOGS];
	char msg[MAX_LOGS][200];
} L;

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (L.n < MAX_LOGS) {
		L.level[L.n] = level;
		snprintf(L.msg[L.n], sizeof(L.msg[0]), "%s", msg);
	}
	L.n++;
}

static unsigned int count_logs(const char *needle)
{
	unsigned int i, n = 0;

	for (i = 0; i < L.n && i < MAX_LOGS; i++)
		if (strstr(L.msg[i], needle))
			n++;
	return n;
}

/* ---- the fake backend ---- */

enum fault {
	F_NONE,
	F_WRONG_REQUEST,	/* reply names another request */
	F_NO_REPLY_FLAG,
	F_BAD_VERSION,
	F_BAD_SIZE,		/* 4 bytes short, all of them sent */
	F_SHORT_HDR,		/* half a header, then close */
	F_SHORT_PAYLOAD,	/* header and half the payload, then close */
	F_OVERSIZED,		/* 1 KiB payload, sent in full */
	F_HUGE,			/* header claims more than the codec drains */
	F_CLOSE,		/* close without a word */
	F_SILENT,		/* never answer */
	F_NACK,			/* ack of 1 */
	NR_FAULTS
};

static const char *const fault_names[] = {
	"none", "wrong-request", "no-reply-flag", "bad-version", "bad-size",
	"short-header", "short-payload", "oversized", "huge", "close",
	"silent", "nack",
};

#define PEER_MAX_FDS	16
#define MAX_RECS	160

struct rec {
	struct svq_vu_hdr hdr;
	union svq_vu_payload p;
	unsigned int nfds;
	dev_t dev[PEER_MAX_FDS];
	ino_t ino[PEER_MAX_FDS];
};

static struct {
	int sock;
	/* what it offers */
	uint64_t features;
	uint64_t protocol;
	uint64_t queue_num;
	uint64_t mem_slots;
	uint32_t vring_base;
	uint32_t base_index_delta;	/* GET_VRING_BASE answers index + this */
	uint32_t config_size_delta;	/* GET_CONFIG answers size + this */
	uint32_t config_offset_delta;
	uint8_t config[SVQ_VU_CONFIG_MAX];
	/* the one misbehaviour */
	uint32_t fault_req;
	enum fault fault;
	/* what came */
	struct rec recs[MAX_RECS];
	unsigned int nrecs;
	int error;			/* line of the first failed peer check */
	pthread_t thread;
	bool running;
} P;

static unsigned int fds_before;

#define PEER_CHECK(cond) do {						\
	if (!(cond) && !P.error)					\
		P.error = __LINE__;					\
} while (0)

static void peer_defaults(void)
{
	unsigned int i;

	memset(&P, 0, sizeof(P));
	memset(&L, 0, sizeof(L));
	P.sock = -1;
	P.features = BIT(SVQ_FE_F_VERSION_1) | BIT(SVQ_VU_F_PROTOCOL_FEATURES) |
		     BIT(SVQ_FE_F_EVENT_IDX) | BIT(SVQ_FE_F_INDIRECT_DESC) | 0x7;
	P.protocol = BIT(SVQ_VU_PROTOCOL_F_MQ) |
		     BIT(SVQ_VU_PROTOCOL_F_REPLY_ACK) |
		     BIT(SVQ_VU_PROTOCOL_F_CONFIG) |
		     BIT(SVQ_VU_PROTOCOL_F_RESET_DEVICE);
	P.queue_num = 2;
	P.mem_slots = 32;
	P.vring_base = 0x1234;
	for (i = 0; i < sizeof(P.config); i++)
		P.config[i] = (uint8_t)(i * 7 + 1);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Read exactly @len bytes; fds that come along are identified and closed.
 * Return: 1 done, 0 EOF before the first byte (@start), -1 anything else.
 */
static int peer_read(void *buf, size_t len, struct rec *r, bool start)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * PEER_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct pollfd pfd = { .fd = P.sock, .events = POLLIN };
	struct cmsghdr *c;
	struct msghdr mh;
	struct iovec iov;
	struct stat st;
	size_t got = 0, i, cnt;
	ssize_t n;
	int fd;

	while (got < len) {
		if (poll(&pfd, 1, PEER_WAIT_MS) != 1)
			return -1;
		iov.iov_base = (char *)buf + got;
		iov.iov_len = len - got;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(P.sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < cnt; i++) {
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
				       sizeof(fd));
				if (r->nfds < PEER_MAX_FDS &&
				    fstat(fd, &st) == 0) {
					r->dev[r->nfds] = st.st_dev;
					r->ino[r->nfds] = st.st_ino;
				}
				r->nfds++;
				close(fd);
			}
		}
		PEER_CHECK(!(mh.msg_flags & MSG_CTRUNC));
		if (n == 0)
			return start && got == 0 ? 0 : -1;
		got += (size_t)n;
	}
	return 1;
}

static int peer_write(const void *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(P.sock, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

static bool has_own_reply(uint32_t request)
{
	switch (request) {
	case SVQ_VU_GET_FEATURES:
	case SVQ_VU_GET_PROTOCOL_FEATURES:
	case SVQ_VU_GET_QUEUE_NUM:
	case SVQ_VU_GET_MAX_MEM_SLOTS:
	case SVQ_VU_GET_VRING_BASE:
	case SVQ_VU_GET_CONFIG:
		return true;
	}
	return false;
}

/* Answer @r, or misbehave. Return: false when the peer should stop. */
static bool peer_answer(const struct rec *r)
{
	struct {
		struct svq_vu_hdr hdr;
		uint8_t payload[2048];
	} out;
	/* Built aligned, then copied to the wire position (offset 12). */
	union svq_vu_payload pl, *p = &pl;
	enum fault fault = F_NONE;
	uint32_t size = sizeof(uint64_t), off, len;

	if (!has_own_reply(r->hdr.request) &&
	    !(r->hdr.flags & SVQ_VU_FLAG_NEED_REPLY))
		return true;
	if (P.fault_req && r->hdr.request == P.fault_req) {
		fault = P.fault;
		P.fault_req = 0;	/* once */
	}

	_Static_assert(sizeof(pl) <= sizeof(out.payload), "payload fits");
	memset(&out, 0, sizeof(out));
	memset(&pl, 0, sizeof(pl));
	out.hdr.request = r->hdr.request;
	out.hdr.flags = SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY;
	switch (r->hdr.request) {
	case SVQ_VU_GET_FEATURES:
		p->u64 = P.features;
		break;
	case SVQ_VU_GET_PROTOCOL_FEATURES:
		p->u64 = P.protocol;
		break;
	case SVQ_VU_GET_QUEUE_NUM:
		p->u64 = P.queue_num;
		break;
	case SVQ_VU_GET_MAX_MEM_SLOTS:
		p->u64 = P.mem_slots;
		break;
	case SVQ_VU_GET_VRING_BASE:
		size = sizeof(struct svq_vu_vring_state);
		p->state.index = r->p.state.index + P.base_index_delta;
		p->state.num = P.vring_base;
		break;
	case SVQ_VU_GET_CONFIG:
		off = r->p.config.offset;
		len = r->p.config.size + P.config_size_delta;
		PEER_CHECK(off <= SVQ_VU_CONFIG_MAX &&
			   len <= SVQ_VU_CONFIG_MAX - off);
		if (off > SVQ_VU_CONFIG_MAX || len > SVQ_VU_CONFIG_MAX - off)
			return false;
		size = SVQ_VU_CONFIG_HDR_SIZE + len;
		p->config.offset = off + P.config_offset_delta;
		p->config.size = len;
		memcpy(p->config.payload, P.config + off, len);
		break;
	default:
		p->u64 = fault == F_NACK ? 1 : 0;
		break;
	}
	out.hdr.size = size;
	memcpy(out.payload, &pl, sizeof(pl));

	switch (fault) {
	case F_NONE:
	case F_NACK:
		break;
	case F_WRONG_REQUEST:
		out.hdr.request = r->hdr.request == SVQ_VU_GET_FEATURES ?
			SVQ_VU_GET_PROTOCOL_FEATURES : SVQ_VU_GET_FEATURES;
		break;
	case F_NO_REPLY_FLAG:
		out.hdr.flags = SVQ_VU_VERSION;
		break;
	case F_BAD_VERSION:
		out.hdr.flags = 0x2 | SVQ_VU_FLAG_REPLY;
		break;
	case F_BAD_SIZE:
		out.hdr.size = size - 4;
		break;
	case F_SHORT_HDR:
		peer_write(&out, SVQ_VU_HDR_SIZE / 2);
		return false;
	case F_SHORT_PAYLOAD:
		peer_write(&out, SVQ_VU_HDR_SIZE + size / 2);
		return false;
	case F_OVERSIZED:
		out.hdr.size = 1024;
		break;
	case F_HUGE:
		out.hdr.size = SVQ_VU_DRAIN_MAX + 1;
		peer_write(&out, SVQ_VU_HDR_SIZE + 64);
		return false;
	case F_CLOSE:
		return false;
	case F_SILENT:
		return true;
	case NR_FAULTS:
		break;
	}
	PEER_CHECK(peer_write(&out, SVQ_VU_HDR_SIZE + out.hdr.size) == 0);
	return true;
}

static void *peer_main(void *arg)
{
	struct rec *r;
	int rc;

	(void)arg;
	for (;;) {
		PEER_CHECK(P.nrecs < MAX_RECS);
		if (P.nrecs >= MAX_RECS)
			break;
		r = &P.recs[P.nrecs];
		memset(r, 0, sizeof(*r));
		rc = peer_read(&r->hdr, SVQ_VU_HDR_SIZE, r, true);
		if (rc == 0)
			break;		/* the frontend hung up */
		PEER_CHECK(rc == 1);
		if (rc != 1)
			break;
		PEER_CHECK(r->hdr.size <= sizeof(r->p));
		if (r->hdr.size > sizeof(r->p))
			break;
		if (r->hdr.size) {
			rc = peer_read(&r->p, r->hdr.size, r, false);
			PEER_CHECK(rc == 1);
			if (rc != 1)
				break;
		}
		P.nrecs++;
		if (!peer_answer(r))
			break;
	}
	close(P.sock);
	P.sock = -1;
	return NULL;
}

/* Start the fake backend; return the frontend's end of the socketpair. */
static int peer_start(void)
{
	int sv[2];

	fds_before = mock_count_fds();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	P.sock = sv[1];
	ck_assert_int_eq(pthread_create(&P.thread, NULL, peer_main, NULL), 0);
	P.running = true;
	return sv[0];
}

/* Wait (bounded) for the fake backend to finish, then check it and the fds. */
static void peer_join(void)
{
	struct timespec ts;

	ck_assert(P.running);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += JOIN_S;
	ck_assert_msg(pthread_timedjoin_np(P.thread, NULL, &ts) == 0,
		      "fake backend did not finish");
	P.running = false;
	ck_assert_msg(P.error == 0, "fake backend check failed at line %d",
		      P.error);
	ck_assert_uint_eq(mock_count_fds(), fds_before);
}

/* The reply wait of the next fe_connect(): short only where none comes. */
static int fe_timeout = REPLY_MS;
/* The opts' flags of the next fe_connect(). */
static uint64_t fe_flags;

static struct svq_fe *fe_connect(int expect)
{
	SVQISO_OPTS(svq_fe_opts, o, .timeout_ms = fe_timeout, .log = log_cb,
		    .flags = fe_flags);
	struct svq_fe *fe = NULL;

	fe_timeout = REPLY_MS;	/* one connect only */
	fe_flags = 0;
	ck_assert_int_eq(svq_fe_connect_fd(peer_start(), &o, &fe), expect);
	if (expect)
		ck_assert_ptr_null(fe);
	else
		ck_assert_ptr_nonnull(fe);
	return fe;
}

/* First record of @request at or after @from, or -1. */
static int find_rec(uint32_t request, unsigned int from)
{
	unsigned int i;

	for (i = from; i < P.nrecs; i++)
		if (P.recs[i].hdr.request == request)
			return (int)i;
	return -1;
}

static unsigned int count_recs(uint32_t request)
{
	unsigned int i, n = 0;

	for (i = 0; i < P.nrecs; i++)
		if (P.recs[i].hdr.request == request)
			n++;
	return n;
}

static void fd_id(int fd, dev_t *dev, ino_t *ino)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	*dev = st.st_dev;
	*ino = st.st_ino;
}

static void check_state(const struct rec *r, uint32_t request, uint32_t index,
			uint32_t num)
{
	ck_assert_uint_eq(r->hdr.request, request);
	ck_assert_uint_eq(r->hdr.size, sizeof(struct svq_vu_vring_state));
	ck_assert_uint_eq(r->p.state.index, index);
	ck_assert_uint_eq(r->p.state.num, num);
	ck_assert_uint_eq(r->nfds, 0);
}

static const struct svqiso_shadow_info split_info = {
	.layout = SVQISO_LAYOUT_SPLIT,
	.num = 256,
	.uaddr = { .desc = 0x10000, .driver = 0x20000, .device = 0x30000 },
	.base = 7,
};

/* Every call on a dead session: -ENOTCONN, and nothing reaches the wire. */
static void check_dead(struct svq_fe *fe)
{
	struct svqiso_region reg = { .iova = 0x1000000, .size = 4096, .fd = 0 };
	uint8_t buf[8] = { 0 };
	uint32_t base;

	ck_assert_int_eq(svq_fe_set_features(fe, ~0ull, NULL), -ENOTCONN);
	ck_assert_int_eq(svq_fe_vring_start(fe, 0, &split_info, 0, -1), -ENOTCONN);
	ck_assert_int_eq(svq_fe_vring_stop(fe, 0, &base), -ENOTCONN);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 0, true), -ENOTCONN);
	ck_assert_int_eq(svq_fe_get_config(fe, 0, buf, sizeof(buf)), -ENOTCONN);
	ck_assert_int_eq(svq_fe_set_config(fe, 0, buf, sizeof(buf), 0), -ENOTCONN);
	ck_assert_int_eq(svq_fe_reset(fe), -ENOTCONN);
	ck_assert_int_eq(svq_fe_region_add(fe, &reg), -ENOTCONN);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), 0);
}

/* ---- malformed replies, for every request that has one, and an ack ---- */

/* The requests whose replies are mangled; the last stands for any ack. */
static const uint32_t fault_reqs[] = {
	SVQ_VU_GET_FEATURES, SVQ_VU_GET_PROTOCOL_FEATURES, SVQ_VU_GET_QUEUE_NUM,
	SVQ_VU_GET_MAX_MEM_SLOTS, SVQ_VU_GET_VRING_BASE, SVQ_VU_GET_CONFIG,
	SVQ_VU_SET_FEATURES,	/* acked under REPLY_ACK */
};
#define NR_FAULT_REQS	SVQ_ARRAY_SIZE(fault_reqs)
/* Faults F_WRONG_REQUEST..F_SILENT for each request, then the nack. */
#define NR_REPLY_FAULTS	(F_SILENT - F_WRONG_REQUEST + 1)
#define NR_FAULT_CASES	(NR_FAULT_REQS * NR_REPLY_FAULTS + 1)

static int fault_errno(enum fault f)
{
	switch (f) {
	case F_OVERSIZED:
		return -EMSGSIZE;	/* read and dropped, but a broken reply */
	case F_CLOSE:
		return -ECONNRESET;
	case F_SILENT:
		return -ETIMEDOUT;
	case F_NACK:
		return -EIO;
	default:
		return -EPROTO;
	}
}

START_TEST(test_malformed_reply_exact_errno_session_dead)
{
	uint32_t req;
	enum fault fault;
	struct svq_fe *fe = NULL;
	uint8_t buf[8];
	uint32_t base = 0;
	int64_t t0, elapsed;
	int wait_ms;
	bool at_connect;
	int rc = 0, expect;

	if ((unsigned int)_i == NR_FAULT_CASES - 1) {
		req = SVQ_VU_SET_FEATURES;
		fault = F_NACK;
	} else {
		req = fault_reqs[_i / NR_REPLY_FAULTS];
		fault = (enum fault)(F_WRONG_REQUEST + _i % NR_REPLY_FAULTS);
	}
	expect = fault_errno(fault);
	at_connect = req != SVQ_VU_GET_VRING_BASE && req != SVQ_VU_GET_CONFIG &&
		     req != SVQ_VU_SET_FEATURES;

	peer_defaults();
	P.protocol |= BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	P.fault_req = req;
	P.fault = fault;

	/* Short where no reply comes; a silent fault after connect needs
	 * the replies before it, so it gets a little longer. */
	wait_ms = fault != F_SILENT ? REPLY_MS : at_connect ? TIMEOUT_MS :
		  5 * TIMEOUT_MS;
	fe_timeout = wait_ms;
	t0 = now_ms();
	if (at_connect) {
		fe = fe_connect(expect);
		rc = expect;
	} else {
		fe = fe_connect(0);
		t0 = now_ms();
		if (req == SVQ_VU_GET_VRING_BASE)
			rc = svq_fe_vring_stop(fe, 1, &base);
		else if (req == SVQ_VU_GET_CONFIG)
			rc = svq_fe_get_config(fe, 8, buf, sizeof(buf));
		else
			rc = svq_fe_set_features(fe, ~0ull, NULL);
	}
	elapsed = now_ms() - t0;
	ck_assert_msg(rc == expect, "request %u fault %s: %d, expected %d",
		      req, fault_names[fault], rc, expect);
	/* Bounded: the reply wait, not the backend, decides. */
	if (fault == F_SILENT) {
		ck_assert_int_ge(elapsed, wait_ms - 10);
		ck_assert_int_lt(elapsed, wait_ms + 1000);
	}

	if (fault == F_NACK) {
		ck_assert_uint_eq(count_logs("refused"), 1);
		/* Nothing was agreed, and the session goes on. */
		ck_assert_uint_eq(svq_fe_acked_features(fe), 0);
		ck_assert_int_eq(svq_fe_vring_stop(fe, 1, &base), 0);
		ck_assert_uint_eq(base, P.vring_base);
		ck_assert_int_eq(svq_fe_set_features(fe, ~0ull, NULL), 0);
		ck_assert_uint_ne(svq_fe_acked_features(fe), 0);
		ck_assert_int_eq(svq_fe_get_config(fe, 8, buf, sizeof(buf)), 0);
		ck_assert_mem_eq(buf, P.config + 8, sizeof(buf));
	} else {
		ck_assert_uint_eq(count_logs("session closed"), 1);
		ck_assert_int_eq(L.level[L.n - 1], SVQISO_LOG_ERR);
		if (fe)
			check_dead(fe);
	}
	svq_fe_free(fe);
	peer_join();
	if (fault != F_NACK) {
		/* The failed request was the last thing the backend got. */
		ck_assert_uint_ge(P.nrecs, 1);
		ck_assert_uint_eq(P.recs[P.nrecs - 1].hdr.request, req);
	} else {
		ck_assert_uint_eq(count_recs(SVQ_VU_SET_FEATURES), 2);
	}
}
END_TEST

/* A nack leaves the session usable for region changes too. */
START_TEST(test_region_add_nack_eio_not_held)
{
	struct svqiso_region reg;
	struct svq_fe *fe;
	int efd;

	peer_defaults();
	P.protocol &= ~BIT(SVQ_VU_PROTOCOL_F_MQ);
	P.fault_req = SVQ_VU_SET_MEM_TABLE;
	P.fault = F_NACK;
	fe = fe_connect(0);	/* fds are counted from here */
	efd = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	reg = (struct svqiso_region){ .iova = 0x200000, .size = 4096,
				      .uaddr = (void *)0x7000, .fd = efd };
	ck_assert_int_eq(svq_fe_region_add(fe, &reg), -EIO);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), 0);
	ck_assert_int_eq(svq_fe_region_add(fe, &reg), 0);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), 1);
	svq_fe_free(fe);
	close(efd);
	peer_join();
	ck_assert_uint_eq(count_recs(SVQ_VU_SET_MEM_TABLE), 2);
}
END_TEST

/* ---- values out of range ---- */

static void connect_expect_eproto(uint32_t request)
{
	fe_connect(-EPROTO);
	ck_assert_uint_eq(count_logs("session closed"), 1);
	peer_join();
	ck_assert_uint_eq(P.recs[P.nrecs - 1].hdr.request, request);
}

START_TEST(test_queue_num_zero_eproto)
{
	peer_defaults();
	P.queue_num = 0;
	connect_expect_eproto(SVQ_VU_GET_QUEUE_NUM);
}
END_TEST

START_TEST(test_queue_num_257_eproto)
{
	peer_defaults();
	P.queue_num = 257;
	connect_expect_eproto(SVQ_VU_GET_QUEUE_NUM);
}
END_TEST

START_TEST(test_queue_num_256_accepted)
{
	struct svq_fe *fe;

	peer_defaults();
	P.queue_num = 256;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_queue_num(fe), 256);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 256, true), -EINVAL);
	svq_fe_free(fe);
	peer_join();
}
END_TEST

/* A net backend's GET_QUEUE_NUM counts pairs: one pair is queues 0 and 1. */
START_TEST(test_queue_pairs_two_queues_each)
{
	struct svq_fe *fe;
	int r;

	peer_defaults();
	P.queue_num = 1;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_queue_num(fe), 1);
	ck_assert_int_eq(svq_fe_set_features(fe, 0, NULL), 0);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 1, true), -EINVAL);
	svq_fe_free(fe);
	peer_join();

	peer_defaults();
	P.queue_num = 1;
	fe_flags = SVQ_FE_QUEUE_PAIRS;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_queue_num(fe), 2);
	ck_assert_int_eq(svq_fe_set_features(fe, 0, NULL), 0);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 1, true), 0);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 2, true), -EINVAL);
	svq_fe_free(fe);
	peer_join();
	r = find_rec(SVQ_VU_SET_FEATURES, 0);
	check_state(&P.recs[r + 1], SVQ_VU_SET_VRING_ENABLE, 1, 1);
}
END_TEST

START_TEST(test_queue_pairs_128_accepted_129_eproto)
{
	struct svq_fe *fe;

	peer_defaults();
	P.queue_num = 128;
	fe_flags = SVQ_FE_QUEUE_PAIRS;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_queue_num(fe), 256);
	svq_fe_free(fe);
	peer_join();

	peer_defaults();
	P.queue_num = 129;
	fe_flags = SVQ_FE_QUEUE_PAIRS;
	connect_expect_eproto(SVQ_VU_GET_QUEUE_NUM);
}
END_TEST

/* Without MQ there is one queue, or one pair. */
START_TEST(test_queue_pairs_without_mq_one_pair)
{
	struct svq_fe *fe;

	peer_defaults();
	P.protocol &= ~BIT(SVQ_VU_PROTOCOL_F_MQ);
	fe_flags = SVQ_FE_QUEUE_PAIRS;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_queue_num(fe), 2);
	svq_fe_free(fe);
	peer_join();
	ck_assert_int_eq(find_rec(SVQ_VU_GET_QUEUE_NUM, 0), -1);
}
END_TEST

START_TEST(test_mem_slots_zero_eproto)
{
	peer_defaults();
	P.protocol |= BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	P.mem_slots = 0;
	connect_expect_eproto(SVQ_VU_GET_MAX_MEM_SLOTS);
}
END_TEST

START_TEST(test_mem_slots_past_map_limit_clamped)
{
	struct svq_fe *fe;

	peer_defaults();
	P.protocol |= BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	P.mem_slots = 1ull << 40;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_mem_slots(fe), SVQISO_MEM_MAX_REGIONS);
	svq_fe_free(fe);
	peer_join();
}
END_TEST

START_TEST(test_vring_base_other_index_eproto)
{
	struct svq_fe *fe;
	uint32_t base = 99;

	peer_defaults();
	P.base_index_delta = 1;
	fe = fe_connect(0);
	ck_assert_int_eq(svq_fe_vring_stop(fe, 0, &base), -EPROTO);
	ck_assert_uint_eq(base, 99);
	ck_assert_uint_eq(count_logs("session closed"), 1);
	check_dead(fe);
	svq_fe_free(fe);
	peer_join();
}
END_TEST

static void config_mismatch(uint32_t size_delta, uint32_t offset_delta)
{
	struct svq_fe *fe;
	uint8_t buf[16];

	peer_defaults();
	P.config_size_delta = size_delta;
	P.config_offset_delta = offset_delta;
	fe = fe_connect(0);
	memset(buf, 0xee, sizeof(buf));
	ck_assert_int_eq(svq_fe_get_config(fe, 4, buf, 8), -EPROTO);
	ck_assert_uint_eq(buf[0], 0xee);
	ck_assert_uint_eq(count_logs("session closed"), 1);
	check_dead(fe);
	svq_fe_free(fe);
	peer_join();
}

START_TEST(test_config_other_size_eproto)
{
	config_mismatch(4, 0);
}
END_TEST

START_TEST(test_config_other_offset_eproto)
{
	config_mismatch(0, 4);
}
END_TEST

/* ---- negotiation and feature policy ---- */

START_TEST(test_connect_sequence_and_flags)
{
	static const uint32_t seq[] = {
		SVQ_VU_SET_OWNER, SVQ_VU_GET_FEATURES,
		SVQ_VU_GET_PROTOCOL_FEATURES, SVQ_VU_SET_PROTOCOL_FEATURES,
		SVQ_VU_GET_QUEUE_NUM, SVQ_VU_GET_MAX_MEM_SLOTS,
	};
	struct svq_fe *fe;
	unsigned int i;

	peer_defaults();
	P.protocol |= BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	P.mem_slots = 5;
	P.queue_num = 3;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_offered_features(fe), P.features);
	ck_assert_uint_eq(svq_fe_protocol_features(fe), P.protocol);
	ck_assert_uint_eq(svq_fe_queue_num(fe), 3);
	ck_assert_uint_eq(svq_fe_mem_slots(fe), 5);
	ck_assert_uint_eq(svq_fe_acked_features(fe), 0);
	svq_fe_free(fe);
	peer_join();

	ck_assert_uint_eq(P.nrecs, SVQ_ARRAY_SIZE(seq));
	for (i = 0; i < P.nrecs; i++) {
		ck_assert_uint_eq(P.recs[i].hdr.request, seq[i]);
		ck_assert_uint_eq(P.recs[i].nfds, 0);
		/* REPLY_ACK is in force only after SET_PROTOCOL_FEATURES. */
		ck_assert_uint_eq(P.recs[i].hdr.flags, SVQ_VU_VERSION);
	}
	ck_assert_uint_eq(P.recs[0].hdr.size, 0);
	ck_assert_uint_eq(P.recs[3].hdr.size, 8);
	ck_assert_uint_eq(P.recs[3].p.u64, P.protocol);
}
END_TEST

START_TEST(test_connect_without_protocol_features)
{
	struct svq_fe *fe;

	peer_defaults();
	P.features &= ~BIT(SVQ_VU_F_PROTOCOL_FEATURES);
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_protocol_features(fe), 0);
	ck_assert_uint_eq(svq_fe_queue_num(fe), 1);
	ck_assert_uint_eq(svq_fe_mem_slots(fe), SVQ_FE_MAX_TABLE);
	svq_fe_free(fe);
	peer_join();
	ck_assert_uint_eq(P.nrecs, 2);
	ck_assert_uint_eq(P.recs[0].hdr.request, SVQ_VU_SET_OWNER);
	ck_assert_uint_eq(P.recs[1].hdr.request, SVQ_VU_GET_FEATURES);
}
END_TEST

START_TEST(test_protocol_every_bit_offered_honoured_set_sent)
{
	static const char *const masked_names[] = {
		"LOG_SHMFD", "RARP", "BACKEND_REQ", "CROSS_ENDIAN",
		"CRYPTO_SESSION", "PAGEFAULT", "BACKEND_SEND_FD",
		"HOST_NOTIFIER", "INFLIGHT_SHMFD", "INBAND_NOTIFICATIONS",
		"STATUS",
	};
	char needle[64];
	struct svq_fe *fe;
	unsigned int bit, i;
	int r;

	peer_defaults();
	P.protocol = ~0ull;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_protocol_features(fe), HONOURED_PROTOCOL);
	/* One line per masked bit, none for a kept one. */
	ck_assert_uint_eq(count_logs("masking protocol feature"),
			  64 - __builtin_popcountll(HONOURED_PROTOCOL));
	for (bit = 0; bit < 64; bit++) {
		snprintf(needle, sizeof(needle), "(bit %u)", bit);
		ck_assert_uint_eq(count_logs(needle),
				  HONOURED_PROTOCOL & BIT(bit) ? 0 : 1);
	}
	for (i = 0; i < SVQ_ARRAY_SIZE(masked_names); i++) {
		snprintf(needle, sizeof(needle), "feature %s (", masked_names[i]);
		ck_assert_uint_eq(count_logs(needle), 1);
	}
	svq_fe_free(fe);
	peer_join();
	r = find_rec(SVQ_VU_SET_PROTOCOL_FEATURES, 0);
	ck_assert_int_ge(r, 0);
	ck_assert_uint_eq(P.recs[r].p.u64, HONOURED_PROTOCOL);
}
END_TEST

START_TEST(test_set_features_policy)
{
	/* Kept: device bits, the transport bits the shadow ring implements. */
	const uint64_t device = ((1ull << 24) - 1) | ~((1ull << 50) - 1);
	const uint64_t transport_ok = BIT(24) | BIT(27) | BIT(28) | BIT(29) |
				      BIT(32) | BIT(34) | BIT(36);
	const uint64_t expect = device | transport_ok |
				BIT(SVQ_VU_F_PROTOCOL_FEATURES);
	char needle[64];
	uint64_t agreed = 0;
	struct svq_fe *fe;
	unsigned int bit;
	int r;

	peer_defaults();
	P.features = ~0ull;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_acked_features(fe), 0);
	ck_assert_int_eq(svq_fe_set_features(fe, ~0ull, &agreed), 0);
	ck_assert_uint_eq(agreed, expect);
	ck_assert_uint_eq(svq_fe_acked_features(fe), expect);
	/* LOG_ALL, ACCESS_PLATFORM, IN_ORDER, NOTIFICATION_DATA among them. */
	for (bit = 0; bit < 64; bit++) {
		snprintf(needle, sizeof(needle), "masking feature bit %u:", bit);
		ck_assert_msg(count_logs(needle) ==
			      ((expect | BIT(SVQ_VU_F_PROTOCOL_FEATURES)) & BIT(bit) ?
			       0u : 1u), "bit %u", bit);
	}
	ck_assert(!(agreed & BIT(SVQ_FE_F_LOG_ALL)));
	ck_assert(!(agreed & BIT(SVQ_FE_F_ACCESS_PLATFORM)));
	ck_assert(!(agreed & BIT(35)));		/* IN_ORDER */
	ck_assert(!(agreed & BIT(38)));		/* NOTIFICATION_DATA */
	svq_fe_free(fe);
	peer_join();
	r = find_rec(SVQ_VU_SET_FEATURES, 0);
	ck_assert_int_ge(r, 0);
	ck_assert_uint_eq(P.recs[r].hdr.size, 8);
	ck_assert_uint_eq(P.recs[r].p.u64, expect);
	ck_assert_uint_eq(P.recs[r].hdr.flags,
			  SVQ_VU_VERSION | SVQ_VU_FLAG_NEED_REPLY);
}
END_TEST

START_TEST(test_set_features_only_offered_kept)
{
	uint64_t agreed = 0;
	struct svq_fe *fe;

	peer_defaults();
	P.features = BIT(SVQ_FE_F_VERSION_1) | BIT(SVQ_FE_F_EVENT_IDX) |
		     BIT(5) | BIT(60);	/* no RING_PACKED, no PROTOCOL_FEATURES */
	fe = fe_connect(0);
	ck_assert_int_eq(svq_fe_set_features(fe, BIT(SVQ_FE_F_VERSION_1) |
			 BIT(SVQ_FE_F_RING_PACKED) | BIT(5) | BIT(6) | BIT(60) |
			 BIT(SVQ_VU_F_PROTOCOL_FEATURES), &agreed), 0);
	ck_assert_uint_eq(agreed, BIT(SVQ_FE_F_VERSION_1) | BIT(5) | BIT(60));
	/* Not offered is not "masked": no log line. */
	ck_assert_uint_eq(count_logs("masking feature"), 0);
	svq_fe_free(fe);
	peer_join();
	ck_assert_uint_eq(P.recs[find_rec(SVQ_VU_SET_FEATURES, 0)].p.u64, agreed);
}
END_TEST

START_TEST(test_set_features_packed_kept_when_offered)
{
	uint64_t agreed = 0;
	struct svq_fe *fe;

	peer_defaults();
	P.features |= BIT(SVQ_FE_F_RING_PACKED);
	fe = fe_connect(0);
	ck_assert_int_eq(svq_fe_set_features(fe, BIT(SVQ_FE_F_RING_PACKED) |
					     BIT(1), &agreed), 0);
	ck_assert_uint_eq(agreed, BIT(SVQ_FE_F_RING_PACKED) | BIT(1) |
			  BIT(SVQ_VU_F_PROTOCOL_FEATURES));
	svq_fe_free(fe);
	peer_join();
}
END_TEST

/* ---- memory regions ---- */

struct region_id {
	struct svqiso_region r;
	dev_t dev;
	ino_t ino;
};

static void check_wire_region(const struct svq_vu_mem_region *w,
			      const struct region_id *id)
{
	ck_assert_uint_eq(w->guest_phys_addr, id->r.iova);
	ck_assert_uint_eq(w->userspace_addr, (uintptr_t)id->r.uaddr);
	ck_assert_uint_eq(w->memory_size, id->r.size);
	ck_assert_uint_eq(w->mmap_offset, id->r.fd_offset);
}

static void check_table(const struct rec *rec, const struct region_id *ids,
			const unsigned int *which, unsigned int n)
{
	unsigned int i;

	ck_assert_uint_eq(rec->hdr.request, SVQ_VU_SET_MEM_TABLE);
	ck_assert_uint_eq(rec->hdr.size, 8 + n * sizeof(struct svq_vu_mem_region));
	ck_assert_uint_eq(rec->p.mem.nregions, n);
	ck_assert_uint_eq(rec->nfds, n);
	for (i = 0; i < n; i++) {
		check_wire_region(&rec->p.mem.regions[i], &ids[which[i]]);
		ck_assert(rec->dev[i] == ids[which[i]].dev);
		ck_assert(rec->ino[i] == ids[which[i]].ino);
	}
}

static struct svqiso_iso *iso_on(struct svq_fe *fe)
{
	SVQISO_OPTS(svqiso_iso_opts, o, .region_add = svq_fe_region_add,
		    .region_del = svq_fe_region_del, .region_ctx = fe);
	struct svqiso_iso *iso = NULL;

	ck_assert_int_eq(svqiso_iso_new(&o, &iso), 0);
	return iso;
}

static void region_new(struct svqiso_iso *iso, uint64_t size,
		       struct region_id *id)
{
	ck_assert_int_eq(svqiso_iso_region_new(iso, size, &id->r), 0);
	fd_id(id->r.fd, &id->dev, &id->ino);
}

START_TEST(test_mem_table_full_table_each_time)
{
	struct region_id ids[SVQ_FE_MAX_TABLE];
	struct svqiso_region extra;
	unsigned int which[SVQ_FE_MAX_TABLE];
	unsigned int i, j, n, fds, first, tables;
	struct svqiso_iso *iso;
	struct svq_fe *fe;
	int r;

	peer_defaults();
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_mem_slots(fe), SVQ_FE_MAX_TABLE);
	iso = iso_on(fe);
	for (i = 0; i < SVQ_FE_MAX_TABLE; i++)
		region_new(iso, 4096 * (i + 1), &ids[i]);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), SVQ_FE_MAX_TABLE);

	/* A 9th: refused before anything is sent, nothing left behind. */
	fds = mock_count_fds();
	ck_assert_int_eq(svqiso_iso_region_new(iso, 4096, &extra), -ENOSPC);
	ck_assert_uint_eq(mock_count_fds(), fds);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), SVQ_FE_MAX_TABLE);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), SVQ_FE_MAX_TABLE);
	ck_assert_uint_eq(count_logs("memory slots in use"), 1);

	ck_assert_int_eq(svqiso_iso_region_free(iso, ids[3].r.iova), 0);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), SVQ_FE_MAX_TABLE - 1);
	svqiso_iso_free(iso);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), 0);
	svq_fe_free(fe);
	peer_join();

	/* Only tables carry fds. */
	for (i = 0; i < P.nrecs; i++)
		if (P.recs[i].hdr.request != SVQ_VU_SET_MEM_TABLE)
			ck_assert_uint_eq(P.recs[i].nfds, 0);
	ck_assert_uint_eq(count_recs(SVQ_VU_ADD_MEM_REG), 0);
	/* 8 growing tables, one without region 3, then 7 as the iso empties. */
	tables = count_recs(SVQ_VU_SET_MEM_TABLE);
	ck_assert_uint_eq(tables, 8 + 1 + 7);
	first = (unsigned int)find_rec(SVQ_VU_SET_MEM_TABLE, 0);
	for (n = 1; n <= SVQ_FE_MAX_TABLE; n++) {
		for (i = 0; i < n; i++)
			which[i] = i;
		check_table(&P.recs[first + n - 1], ids, which, n);
	}
	for (i = 0, j = 0; i < SVQ_FE_MAX_TABLE; i++)
		if (i != 3)
			which[j++] = i;
	check_table(&P.recs[first + 8], ids, which, 7);
	/* Each later table: one region fewer, the rest as they were. */
	for (n = 6, r = (int)first + 9; r < (int)P.nrecs; r++, n--) {
		const struct rec *rec = &P.recs[r];

		ck_assert_uint_eq(rec->hdr.request, SVQ_VU_SET_MEM_TABLE);
		ck_assert_uint_eq(rec->p.mem.nregions, n);
		ck_assert_uint_eq(rec->nfds, n);
		for (i = 0; i < n; i++) {
			for (j = 0; j < SVQ_FE_MAX_TABLE; j++)
				if (ids[j].r.iova ==
				    rec->p.mem.regions[i].guest_phys_addr)
					break;
			ck_assert_uint_lt(j, SVQ_FE_MAX_TABLE);
			ck_assert_uint_ne(j, 3);
			check_wire_region(&rec->p.mem.regions[i], &ids[j]);
			ck_assert(rec->ino[i] == ids[j].ino);
		}
	}
	ck_assert_uint_eq(n + 1, 0);	/* the last table was empty */
}
END_TEST

static void check_mem_reg(const struct rec *rec, uint32_t request,
			  const struct region_id *id)
{
	ck_assert_uint_eq(rec->hdr.request, request);
	ck_assert_uint_eq(rec->hdr.size, sizeof(struct svq_vu_mem_reg));
	ck_assert_uint_eq(rec->p.mem_reg.padding, 0);
	check_wire_region(&rec->p.mem_reg.region, id);
	ck_assert_uint_eq(rec->nfds, 1);
	ck_assert(rec->dev[0] == id->dev);
	ck_assert(rec->ino[0] == id->ino);
}

START_TEST(test_mem_slots_add_rem_reg)
{
	struct region_id ids[3];
	struct svqiso_region extra;
	struct svqiso_iso *iso;
	struct svq_fe *fe;
	unsigned int fds;
	int r;

	peer_defaults();
	P.protocol |= BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	P.mem_slots = 2;
	fe = fe_connect(0);
	ck_assert_uint_eq(svq_fe_mem_slots(fe), 2);
	iso = iso_on(fe);
	region_new(iso, 4096, &ids[0]);
	region_new(iso, 8192, &ids[1]);
	fds = mock_count_fds();
	ck_assert_int_eq(svqiso_iso_region_new(iso, 4096, &extra), -ENOSPC);
	ck_assert_uint_eq(mock_count_fds(), fds);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 2);
	ck_assert_int_eq(svqiso_iso_region_free(iso, ids[0].r.iova), 0);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), 1);
	region_new(iso, 4096, &ids[2]);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), 2);
	svqiso_iso_free(iso);
	ck_assert_uint_eq(svq_fe_nr_regions(fe), 0);
	svq_fe_free(fe);
	peer_join();

	ck_assert_uint_eq(count_recs(SVQ_VU_SET_MEM_TABLE), 0);
	ck_assert_uint_eq(count_recs(SVQ_VU_ADD_MEM_REG), 3);
	ck_assert_uint_eq(count_recs(SVQ_VU_REM_MEM_REG), 3);
	r = find_rec(SVQ_VU_ADD_MEM_REG, 0);
	check_mem_reg(&P.recs[r], SVQ_VU_ADD_MEM_REG, &ids[0]);
	ck_assert_uint_eq(P.recs[r].hdr.flags,
			  SVQ_VU_VERSION | SVQ_VU_FLAG_NEED_REPLY);
	check_mem_reg(&P.recs[r + 1], SVQ_VU_ADD_MEM_REG, &ids[1]);
	check_mem_reg(&P.recs[r + 2], SVQ_VU_REM_MEM_REG, &ids[0]);
	check_mem_reg(&P.recs[r + 3], SVQ_VU_ADD_MEM_REG, &ids[2]);
	/* The iso empties: ids[1] and ids[2] go, in either order. */
	ck_assert_uint_eq(P.nrecs, (unsigned int)r + 6);
	if (P.recs[r + 4].p.mem_reg.region.guest_phys_addr == ids[1].r.iova) {
		check_mem_reg(&P.recs[r + 4], SVQ_VU_REM_MEM_REG, &ids[1]);
		check_mem_reg(&P.recs[r + 5], SVQ_VU_REM_MEM_REG, &ids[2]);
	} else {
		check_mem_reg(&P.recs[r + 4], SVQ_VU_REM_MEM_REG, &ids[2]);
		check_mem_reg(&P.recs[r + 5], SVQ_VU_REM_MEM_REG, &ids[1]);
	}
}
END_TEST

/*
 * Without REPLY_ACK an add still returns only once the backend has read it
 * (a GET_FEATURES round trip follows it), since a region made while a queue
 * runs is used at once and the backend hears of that use on another fd. A
 * removal needs no such wait. Both ADD_MEM_REG and SET_MEM_TABLE.
 */
START_TEST(test_region_add_without_reply_ack_synced)
{
	struct region_id ids[2];
	struct svqiso_iso *iso;
	struct svq_fe *fe;
	int r;

	peer_defaults();
	P.protocol &= ~BIT(SVQ_VU_PROTOCOL_F_REPLY_ACK);
	if (_i)
		P.protocol |= BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
	fe = fe_connect(0);
	iso = iso_on(fe);
	region_new(iso, 4096, &ids[0]);
	region_new(iso, 8192, &ids[1]);
	ck_assert_int_eq(svqiso_iso_region_free(iso, ids[0].r.iova), 0);
	svqiso_iso_free(iso);
	svq_fe_free(fe);
	peer_join();

	r = find_rec(_i ? SVQ_VU_ADD_MEM_REG : SVQ_VU_SET_MEM_TABLE, 0);
	ck_assert_int_ge(r, 0);
	ck_assert_uint_eq(P.recs[r].hdr.flags, SVQ_VU_VERSION);
	ck_assert_uint_eq(P.recs[r + 1].hdr.request, SVQ_VU_GET_FEATURES);
	ck_assert_uint_eq(P.recs[r + 2].hdr.request,
			  _i ? SVQ_VU_ADD_MEM_REG : SVQ_VU_SET_MEM_TABLE);
	ck_assert_uint_eq(P.recs[r + 3].hdr.request, SVQ_VU_GET_FEATURES);
	/* Removals: not followed by one. */
	ck_assert_uint_eq(P.recs[r + 4].hdr.request,
			  _i ? SVQ_VU_REM_MEM_REG : SVQ_VU_SET_MEM_TABLE);
	ck_assert_uint_eq(P.recs[r + 5].hdr.request,
			  _i ? SVQ_VU_REM_MEM_REG : SVQ_VU_SET_MEM_TABLE);
	ck_assert_uint_eq(P.nrecs, (unsigned int)r + 6);
}
END_TEST

/* ---- vrings, config, reset ---- */

START_TEST(test_vring_start_stop_sequence)
{
	dev_t kdev, cdev;
	ino_t kino, cino;
	struct svq_fe *fe;
	uint32_t base = 0;
	int kick, call, r;

	peer_defaults();
	P.protocol &= ~BIT(SVQ_VU_PROTOCOL_F_REPLY_ACK);
	fe = fe_connect(0);	/* fds are counted from here */
	kick = eventfd(0, EFD_CLOEXEC);
	call = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(kick, 0);
	ck_assert_int_ge(call, 0);
	fd_id(kick, &kdev, &kino);
	fd_id(call, &cdev, &cino);
	ck_assert_int_eq(svq_fe_set_features(fe, ~0ull, NULL), 0);
	ck_assert_int_eq(svq_fe_vring_start(fe, 1, &split_info, kick, call), 0);
	ck_assert_int_eq(svq_fe_vring_start(fe, 0, &split_info, kick, -1), 0);
	ck_assert_int_eq(svq_fe_vring_stop(fe, 1, &base), 0);
	ck_assert_uint_eq(base, P.vring_base);
	svq_fe_free(fe);
	close(kick);
	close(call);
	peer_join();

	r = find_rec(SVQ_VU_SET_FEATURES, 0) + 1;
	ck_assert_uint_eq(P.nrecs, (unsigned int)r + 13);
	check_state(&P.recs[r], SVQ_VU_SET_VRING_NUM, 1, 256);
	ck_assert_uint_eq(P.recs[r + 1].hdr.request, SVQ_VU_SET_VRING_ADDR);
	ck_assert_uint_eq(P.recs[r + 1].hdr.size, sizeof(struct svq_vu_vring_addr));
	ck_assert_uint_eq(P.recs[r + 1].p.addr.index, 1);
	ck_assert_uint_eq(P.recs[r + 1].p.addr.flags, 0);
	ck_assert_uint_eq(P.recs[r + 1].p.addr.desc, 0x10000);
	ck_assert_uint_eq(P.recs[r + 1].p.addr.used, 0x30000);	/* device area */
	ck_assert_uint_eq(P.recs[r + 1].p.addr.avail, 0x20000);	/* driver area */
	ck_assert_uint_eq(P.recs[r + 1].p.addr.log, 0);
	check_state(&P.recs[r + 2], SVQ_VU_SET_VRING_BASE, 1, 7);
	ck_assert_uint_eq(P.recs[r + 3].hdr.request, SVQ_VU_SET_VRING_KICK);
	ck_assert_uint_eq(P.recs[r + 3].hdr.size, 8);
	ck_assert_uint_eq(P.recs[r + 3].p.u64, 1);
	ck_assert_uint_eq(P.recs[r + 3].nfds, 1);
	ck_assert(P.recs[r + 3].dev[0] == kdev && P.recs[r + 3].ino[0] == kino);
	ck_assert_uint_eq(P.recs[r + 4].hdr.request, SVQ_VU_SET_VRING_CALL);
	ck_assert_uint_eq(P.recs[r + 4].p.u64, 1);
	ck_assert_uint_eq(P.recs[r + 4].nfds, 1);
	ck_assert(P.recs[r + 4].dev[0] == cdev && P.recs[r + 4].ino[0] == cino);
	check_state(&P.recs[r + 5], SVQ_VU_SET_VRING_ENABLE, 1, 1);
	/* Queue 0, no call fd: the no-fd bit, nothing attached. */
	check_state(&P.recs[r + 6], SVQ_VU_SET_VRING_NUM, 0, 256);
	ck_assert_uint_eq(P.recs[r + 7].p.addr.index, 0);
	check_state(&P.recs[r + 8], SVQ_VU_SET_VRING_BASE, 0, 7);
	ck_assert_uint_eq(P.recs[r + 9].p.u64, 0);
	ck_assert_uint_eq(P.recs[r + 9].nfds, 1);
	ck_assert_uint_eq(P.recs[r + 10].hdr.request, SVQ_VU_SET_VRING_CALL);
	ck_assert_uint_eq(P.recs[r + 10].p.u64, SVQ_VU_VRING_NOFD);
	ck_assert_uint_eq(P.recs[r + 10].nfds, 0);
	check_state(&P.recs[r + 11], SVQ_VU_SET_VRING_ENABLE, 0, 1);
	ck_assert_uint_eq(P.recs[r + 12].hdr.request, SVQ_VU_GET_VRING_BASE);
	ck_assert_uint_eq(P.recs[r + 12].hdr.size, 8);
	ck_assert_uint_eq(P.recs[r + 12].p.state.index, 1);
	/* No REPLY_ACK: nothing asks for one. */
	ck_assert_uint_eq(P.recs[r].hdr.flags, SVQ_VU_VERSION);
}
END_TEST

START_TEST(test_vring_start_without_protocol_no_enable)
{
	struct svq_fe *fe;
	int kick;

	peer_defaults();
	P.features &= ~BIT(SVQ_VU_F_PROTOCOL_FEATURES);
	fe = fe_connect(0);	/* fds are counted from here */
	kick = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(kick, 0);
	ck_assert_int_eq(svq_fe_set_features(fe, ~0ull, NULL), 0);
	ck_assert_int_eq(svq_fe_vring_start(fe, 0, &split_info, kick, -1), 0);
	ck_assert_int_eq(svq_fe_vring_start(fe, 1, &split_info, kick, -1), -EINVAL);
	svq_fe_free(fe);
	close(kick);
	peer_join();
	ck_assert_uint_eq(P.recs[P.nrecs - 1].hdr.request, SVQ_VU_SET_VRING_CALL);
	ck_assert_uint_eq(count_recs(SVQ_VU_SET_VRING_ENABLE), 0);
}
END_TEST

START_TEST(test_vring_start_packed_not_agreed_enotsup)
{
	struct svqiso_shadow_info info = split_info;
	struct svq_fe *fe;
	unsigned int n;

	peer_defaults();
	info.layout = SVQISO_LAYOUT_PACKED;
	fe = fe_connect(0);
	ck_assert_int_eq(svq_fe_set_features(fe, ~0ull, NULL), 0);
	ck_assert_int_eq(svq_fe_vring_start(fe, 0, &info, 0, -1), -ENOTSUP);
	ck_assert_int_eq(svq_fe_vring_start(fe, 0, &split_info, -1, -1), -EINVAL);
	svq_fe_free(fe);
	peer_join();
	n = P.nrecs;
	ck_assert_uint_eq(P.recs[n - 1].hdr.request, SVQ_VU_SET_FEATURES);
}
END_TEST

START_TEST(test_vring_enable_sends_state)
{
	struct svq_fe *fe;
	int r;

	peer_defaults();
	fe = fe_connect(0);
	/* Before SET_FEATURES PROTOCOL_FEATURES is not acked: nothing sent. */
	ck_assert_int_eq(svq_fe_vring_enable(fe, 0, true), 0);
	ck_assert_int_eq(svq_fe_set_features(fe, 0, NULL), 0);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 1, false), 0);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 0, true), 0);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 2, true), -EINVAL);
	ck_assert_int_eq(svq_fe_vring_enable(NULL, 0, true), -EINVAL);
	svq_fe_free(fe);
	peer_join();
	ck_assert_uint_eq(count_recs(SVQ_VU_SET_VRING_ENABLE), 2);
	r = find_rec(SVQ_VU_SET_FEATURES, 0);
	check_state(&P.recs[r + 1], SVQ_VU_SET_VRING_ENABLE, 1, 0);
	check_state(&P.recs[r + 2], SVQ_VU_SET_VRING_ENABLE, 0, 1);
	ck_assert_uint_eq(P.recs[r + 1].hdr.flags,
			  SVQ_VU_VERSION | SVQ_VU_FLAG_NEED_REPLY);
}
END_TEST

START_TEST(test_vring_enable_without_protocol_nothing_sent)
{
	struct svq_fe *fe;

	peer_defaults();
	P.features &= ~BIT(SVQ_VU_F_PROTOCOL_FEATURES);
	fe = fe_connect(0);
	ck_assert_int_eq(svq_fe_set_features(fe, ~0ull, NULL), 0);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 0, true), 0);
	ck_assert_int_eq(svq_fe_vring_enable(fe, 0, false), 0);
	svq_fe_free(fe);
	peer_join();
	ck_assert_uint_eq(count_recs(SVQ_VU_SET_VRING_ENABLE), 0);
	ck_assert_uint_eq(P.recs[P.nrecs - 1].hdr.request, SVQ_VU_SET_FEATURES);
}
END_TEST

START_TEST(test_get_config_payload)
{
	struct svq_fe *fe;
	uint8_t buf[20];
	int r;

	peer_defaults();
	fe = fe_connect(0);
	ck_assert_int_eq(svq_fe_get_config(fe, 12, buf, sizeof(buf)), 0);
	ck_assert_mem_eq(buf, P.config + 12, sizeof(buf));
	svq_fe_free(fe);
	peer_join();
	r = find_rec(SVQ_VU_GET_CONFIG, 0);
	ck_assert_int_ge(r, 0);
	ck_assert_uint_eq(P.recs[r].hdr.size, SVQ_VU_CONFIG_HDR_SIZE + sizeof(buf));
	ck_assert_uint_eq(P.recs[r].p.config.offset, 12);
	ck_assert_uint_eq(P.recs[r].p.config.size, sizeof(buf));
	ck_assert_uint_eq(P.recs[r].p.config.flags, 0);
}
END_TEST

START_TEST(test_set_config_payload)
{
	uint8_t buf[SVQ_VU_CONFIG_MAX + 1];
	struct svq_fe *fe;
	unsigned int i;
	int r;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(0xa0 ^ i);
	peer_defaults();
	fe = fe_connect(0);
	ck_assert_int_eq(svq_fe_set_config(fe, 4, buf, 8, 1), 0);
	ck_assert_int_eq(svq_fe_set_config(fe, 0, buf, SVQ_VU_CONFIG_MAX, 0), 0);
	ck_assert_int_eq(svq_fe_set_config(fe, 0, buf, 0, 0), -EINVAL);
	ck_assert_int_eq(svq_fe_set_config(fe, 0, buf, SVQ_VU_CONFIG_MAX + 1, 0),
			 -EINVAL);
	ck_assert_int_eq(svq_fe_set_config(fe, 0, NULL, 4, 0), -EINVAL);
	ck_assert_int_eq(svq_fe_set_config(fe, 0, buf, 4, 2), -EINVAL);
	ck_assert_int_eq(svq_fe_set_config(fe, UINT32_MAX - 2, buf, 4, 0), -EINVAL);
	ck_assert_int_eq(svq_fe_set_config(NULL, 0, buf, 4, 0), -EINVAL);
	svq_fe_free(fe);
	peer_join();
	ck_assert_uint_eq(count_recs(SVQ_VU_SET_CONFIG), 2);
	r = find_rec(SVQ_VU_SET_CONFIG, 0);
	ck_assert_uint_eq(P.recs[r].hdr.size, SVQ_VU_CONFIG_HDR_SIZE + 8);
	ck_assert_uint_eq(P.recs[r].hdr.flags,
			  SVQ_VU_VERSION | SVQ_VU_FLAG_NEED_REPLY);
	ck_assert_uint_eq(P.recs[r].p.config.offset, 4);
	ck_assert_uint_eq(P.recs[r].p.config.size, 8);
	ck_assert_uint_eq(P.recs[r].p.config.flags, 1);
	ck_assert_mem_eq(P.recs[r].p.config.payload, buf, 8);
	ck_assert_uint_eq(P.recs[r + 1].hdr.size,
			  SVQ_VU_CONFIG_HDR_SIZE + SVQ_VU_CONFIG_MAX);
	ck_assert_uint_eq(P.recs[r + 1].p.config.flags, 0);
	ck_assert_mem_eq(P.recs[r + 1].p.config.payload, buf, SVQ_VU_CONFIG_MAX);
}
END_TEST

START_TEST(test_config_without_protocol_enotsup)
{
	struct svq_fe *fe;
	uint8_t buf[4] = { 1, 2, 3, 4 };

	peer_defaults();
	P.protocol &= ~BIT(SVQ_VU_PROTOCOL_F_CONFIG);
	fe = fe_connect(0);
	ck_assert_int_eq(svq_fe_set_config(fe, 0, buf, sizeof(buf), 0), -ENOTSUP);
	ck_assert_int_eq(svq_fe_get_config(fe, 0, buf, sizeof(buf)), -ENOTSUP);
	svq_fe_free(fe);
	peer_join();
	ck_assert_uint_eq(count_recs(SVQ_VU_SET_CONFIG), 0);
	ck_assert_uint_eq(count_recs(SVQ_VU_GET_CONFIG), 0);
}
END_TEST

static void reset_sends(uint32_t request)
{
	struct svq_fe *fe;

	fe = fe_connect(0);
	ck_assert_int_eq(svq_fe_set_features(fe, ~0ull, NULL), 0);
	ck_assert_uint_ne(svq_fe_acked_features(fe), 0);
	ck_assert_int_eq(svq_fe_reset(fe), 0);
	ck_assert_uint_eq(svq_fe_acked_features(fe), 0);
	ck_assert_int_eq(svq_fe_reset(NULL), -EINVAL);
	svq_fe_free(fe);
	peer_join();
	ck_assert_uint_eq(P.recs[P.nrecs - 1].hdr.request, request);
	ck_assert_uint_eq(P.recs[P.nrecs - 1].hdr.size, 0);
	ck_assert_uint_eq(count_recs(SVQ_VU_RESET_DEVICE) +
			  count_recs(SVQ_VU_RESET_OWNER), 1);
}

START_TEST(test_reset_device_when_agreed)
{
	peer_defaults();
	reset_sends(SVQ_VU_RESET_DEVICE);
	ck_assert_uint_eq(P.recs[P.nrecs - 1].hdr.flags,
			  SVQ_VU_VERSION | SVQ_VU_FLAG_NEED_REPLY);
}
END_TEST

START_TEST(test_reset_owner_without_reset_device)
{
	peer_defaults();
	P.protocol &= ~BIT(SVQ_VU_PROTOCOL_F_RESET_DEVICE);
	reset_sends(SVQ_VU_RESET_OWNER);
}
END_TEST

START_TEST(test_reset_owner_without_protocol_features)
{
	peer_defaults();
	P.features &= ~BIT(SVQ_VU_F_PROTOCOL_FEATURES);
	reset_sends(SVQ_VU_RESET_OWNER);
	ck_assert_uint_eq(P.recs[P.nrecs - 1].hdr.flags, SVQ_VU_VERSION);
}
END_TEST

/* ---- svq_fe_connect_fd() arguments ---- */

START_TEST(test_connect_fd_negative_einval)
{
	struct svq_fe *fe = NULL;
	unsigned int fds = mock_count_fds();

	ck_assert_int_eq(svq_fe_connect_fd(-1, NULL, &fe), -EINVAL);
	ck_assert_ptr_null(fe);
	ck_assert_uint_eq(mock_count_fds(), fds);
}
END_TEST

START_TEST(test_connect_fd_bad_args_close_sock)
{
	struct svq_fe_opts bad = { .sz = sizeof(bad), .timeout_ms = -1 };
	struct svq_fe_opts flag = { .sz = sizeof(flag), .flags = 1u << 1 };
	struct svq_fe *fe = NULL;
	unsigned int fds = mock_count_fds();
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(svq_fe_connect_fd(sv[0], NULL, NULL), -EINVAL);
	ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
	ck_assert_int_eq(svq_fe_connect_fd(sv[1], &bad, &fe), -EINVAL);
	ck_assert_int_eq(fcntl(sv[1], F_GETFD), -1);
	ck_assert_ptr_null(fe);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	ck_assert_int_eq(svq_fe_connect_fd(sv[0], &flag, &fe), -EINVAL);
	ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
	ck_assert_ptr_null(fe);
	ck_assert_uint_eq(mock_count_fds(), fds);
}
END_TEST

START_TEST(test_connect_fd_peer_gone_econnreset)
{
	struct svq_fe *fe = NULL;
	unsigned int fds = mock_count_fds();
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	ck_assert_int_eq(svq_fe_connect_fd(sv[0], NULL, &fe), -ECONNRESET);
	ck_assert_ptr_null(fe);
	ck_assert_uint_eq(mock_count_fds(), fds);
}
END_TEST

static Suite *frontend_suite(void)
{
	Suite *s = suite_create("frontend");
	TCase *tc;

	tc = tcase_create("malformed-reply");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_malformed_reply_exact_errno_session_dead,
			    0, NR_FAULT_CASES);
	tcase_add_test(tc, test_region_add_nack_eio_not_held);
	suite_add_tcase(s, tc);

	tc = tcase_create("out-of-range");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_queue_num_zero_eproto);
	tcase_add_test(tc, test_queue_num_257_eproto);
	tcase_add_test(tc, test_queue_num_256_accepted);
	tcase_add_test(tc, test_queue_pairs_two_queues_each);
	tcase_add_test(tc, test_queue_pairs_128_accepted_129_eproto);
	tcase_add_test(tc, test_queue_pairs_without_mq_one_pair);
	tcase_add_test(tc, test_mem_slots_zero_eproto);
	tcase_add_test(tc, test_mem_slots_past_map_limit_clamped);
	tcase_add_test(tc, test_vring_base_other_index_eproto);
	tcase_add_test(tc, test_config_other_size_eproto);
	tcase_add_test(tc, test_config_other_offset_eproto);
	suite_add_tcase(s, tc);

	tc = tcase_create("features");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_connect_sequence_and_flags);
	tcase_add_test(tc, test_connect_without_protocol_features);
	tcase_add_test(tc, test_protocol_every_bit_offered_honoured_set_sent);
	tcase_add_test(tc, test_set_features_policy);
	tcase_add_test(tc, test_set_features_only_offered_kept);
	tcase_add_test(tc, test_set_features_packed_kept_when_offered);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_mem_table_full_table_each_time);
	tcase_add_test(tc, test_mem_slots_add_rem_reg);
	tcase_add_loop_test(tc, test_region_add_without_reply_ack_synced, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("vring");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_vring_start_stop_sequence);
	tcase_add_test(tc, test_vring_start_without_protocol_no_enable);
	tcase_add_test(tc, test_vring_start_packed_not_agreed_enotsup);
	tcase_add_test(tc, test_vring_enable_sends_state);
	tcase_add_test(tc, test_vring_enable_without_protocol_nothing_sent);
	suite_add_tcase(s, tc);

	tc = tcase_create("config-reset");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_get_config_payload);
	tcase_add_test(tc, test_set_config_payload);
	tcase_add_test(tc, test_config_without_protocol_enotsup);
	tcase_add_test(tc, test_reset_device_when_agreed);
	tcase_add_test(tc, test_reset_owner_without_reset_device);
	tcase_add_test(tc, test_reset_owner_without_protocol_features);
	suite_add_tcase(s, tc);

	tc = tcase_create("connect-fd");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_connect_fd_negative_einval);
	tcase_add_test(tc, test_connect_fd_bad_args_close_sock);
	tcase_add_test(tc, test_connect_fd_peer_gone_econnreset);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frontend_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
