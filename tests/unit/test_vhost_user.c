/* SPDX-License-Identifier: MIT */
/*
 * vhost-user codec (lib/vhost_user.c): every message type both ways with real
 * fds, replies and acks, a peer that lies, stalls or vanishes, and fds never
 * leaked. Each test scripts a fake backend in a forked child on a socketpair;
 * the child reports through its exit status (0: its own checks passed).
 *
 * Linked with -Wl,--wrap=sendmsg,--wrap=recvmsg: EINTR, EAGAIN and one byte
 * per call are injected on demand.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vhost_user.h"
#include "fds.h"

/* ---- fault injection ---- */

struct inject {
	int eintr;		/* fail the next N calls with EINTR */
	int eagain;		/* then the next N with EAGAIN */
	bool bytewise;		/* then move one byte per call */
};
static struct inject send_inj, recv_inj;

ssize_t __real_sendmsg(int fd, const struct msghdr *mh, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *mh, int flags);
ssize_t __real_recvmsg(int fd, struct msghdr *mh, int flags);
ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int flags);

static bool inject_fail(struct inject *in)
{
	if (in->eintr > 0) {
		in->eintr--;
		errno = EINTR;
		return true;
	}
	if (in->eagain > 0) {
		in->eagain--;
		errno = EAGAIN;
		return true;
	}
	return false;
}

/* @one: a copy of @mh whose first non-empty iovec is cut to one byte. */
static bool one_byte(const struct msghdr *mh, struct msghdr *one,
		     struct iovec *iov)
{
	size_t i;

	for (i = 0; i < mh->msg_iovlen && mh->msg_iov[i].iov_len == 0; i++)
		;
	if (i == mh->msg_iovlen)
		return false;
	*one = *mh;
	iov->iov_base = mh->msg_iov[i].iov_base;
	iov->iov_len = 1;
	one->msg_iov = iov;
	one->msg_iovlen = 1;
	return true;
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *mh, int flags)
{
	struct msghdr one;
	struct iovec iov;

	if (inject_fail(&send_inj))
		return -1;
	if (send_inj.bytewise && one_byte(mh, &one, &iov))
		return __real_sendmsg(fd, &one, flags);
	return __real_sendmsg(fd, mh, flags);
}

ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int flags)
{
	struct msghdr one;
	struct iovec iov;
	ssize_t n;

	if (inject_fail(&recv_inj))
		return -1;
	if (recv_inj.bytewise && one_byte(mh, &one, &iov)) {
		n = __real_recvmsg(fd, &one, flags);
		mh->msg_controllen = one.msg_controllen;
		mh->msg_flags = one.msg_flags;
		return n;
	}
	return __real_recvmsg(fd, mh, flags);
}

/* ---- the fake backend ---- */

typedef int (*script_fn)(int sock);

static int sock = -1;		/* our end */
static pid_t child;
static unsigned int fds_before;

/* In the child: fail the script with the line, never a Check assert. */
#define PEER_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "peer: %s:%d: %s\n", __FILE__,		\
			__LINE__, #cond);				\
		return 1;						\
	}								\
} while (0)

static void start(script_fn fn)
{
	int sv[2];

	fds_before = mock_count_fds();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		close(sv[0]);
		_exit(fn(sv[1]));
	}
	close(sv[1]);
	sock = sv[0];
}

static void reap(void)
{
	int status;

	ck_assert_int_eq(waitpid(child, &status, 0), child);
	child = 0;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "fake backend failed (status 0x%x)", status);
}

/* Close our end, check the peer's verdict and that no fd leaked. */
static void finish(void)
{
	if (sock >= 0)
		close(sock);
	sock = -1;
	if (child > 0)
		reap();
	ck_assert_uint_eq(mock_count_fds(), fds_before);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const void *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n <= 0)
			return -1;
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

/* Peer: block until the other end closes. */
static int wait_eof(int s)
{
	char c;

	while (read(s, &c, 1) > 0)
		;
	return 0;
}

static void close_fds(struct svq_vu_msg *m)
{
	while (m->nfds)
		close(m->fds[--m->nfds]);
}

/* ---- every message type ---- */

static const uint32_t all_requests[] = {
	SVQ_VU_GET_FEATURES, SVQ_VU_SET_FEATURES, SVQ_VU_SET_OWNER,
	SVQ_VU_RESET_OWNER, SVQ_VU_SET_MEM_TABLE, SVQ_VU_SET_LOG_BASE,
	SVQ_VU_SET_LOG_FD, SVQ_VU_SET_VRING_NUM, SVQ_VU_SET_VRING_ADDR,
	SVQ_VU_SET_VRING_BASE, SVQ_VU_GET_VRING_BASE, SVQ_VU_SET_VRING_KICK,
	SVQ_VU_SET_VRING_CALL, SVQ_VU_SET_VRING_ERR,
	SVQ_VU_GET_PROTOCOL_FEATURES, SVQ_VU_SET_PROTOCOL_FEATURES,
	SVQ_VU_GET_QUEUE_NUM, SVQ_VU_SET_VRING_ENABLE,
	SVQ_VU_SET_BACKEND_REQ_FD, SVQ_VU_GET_CONFIG, SVQ_VU_SET_CONFIG,
	SVQ_VU_GET_INFLIGHT_FD, SVQ_VU_SET_INFLIGHT_FD, SVQ_VU_RESET_DEVICE,
	SVQ_VU_GET_MAX_MEM_SLOTS, SVQ_VU_ADD_MEM_REG, SVQ_VU_REM_MEM_REG,
};

#define MEMFD_SIZE 0x3000
#define MEMFD_MAGIC "svqiso-memfd"

/*
 * A message of the shape @req has, with values derived from @req; its fds
 * (as many as the request carries) are @mfd for memory, @efd otherwise.
 */
static void build(struct svq_vu_msg *m, uint32_t req, int efd, int mfd)
{
	uint64_t v = 0x1122334455660000ull | req;
	unsigned int i;

	svq_vu_msg_init(m, req, 0);
	switch (req) {
	case SVQ_VU_SET_VRING_NUM:
	case SVQ_VU_SET_VRING_BASE:
	case SVQ_VU_GET_VRING_BASE:
	case SVQ_VU_SET_VRING_ENABLE:
		m->hdr.size = sizeof(m->payload.state);
		m->payload.state = (struct svq_vu_vring_state){ req % 4, 1000 + req };
		break;
	case SVQ_VU_SET_VRING_ADDR:
		m->hdr.size = sizeof(m->payload.addr);
		m->payload.addr = (struct svq_vu_vring_addr){
			1, 1, v + 0x100, v + 0x200, v + 0x300, v + 0x400,
		};
		break;
	case SVQ_VU_SET_MEM_TABLE:
		m->hdr.size = sizeof(m->payload.mem);
		m->payload.mem.nregions = SVQ_VU_MEM_REGIONS;
		for (i = 0; i < SVQ_VU_MEM_REGIONS; i++)
			m->payload.mem.regions[i] = (struct svq_vu_mem_region){
				v + i * 0x10000, 0x1000 + i, v + i * 0x100, i,
			};
		m->nfds = SVQ_VU_MAX_FDS;
		for (i = 0; i < m->nfds; i++)
			m->fds[i] = i % 2 ? efd : mfd;
		break;
	case SVQ_VU_ADD_MEM_REG:
	case SVQ_VU_REM_MEM_REG:
		m->hdr.size = sizeof(m->payload.mem_reg);
		m->payload.mem_reg.region = (struct svq_vu_mem_region){
			v, MEMFD_SIZE, v + 0x7000, 0,
		};
		m->nfds = 1;
		m->fds[0] = mfd;
		break;
	case SVQ_VU_GET_CONFIG:
	case SVQ_VU_SET_CONFIG:
		m->hdr.size = SVQ_VU_CONFIG_HDR_SIZE + 24;
		m->payload.config.offset = 8;
		m->payload.config.size = 24;
		for (i = 0; i < 24 && req == SVQ_VU_SET_CONFIG; i++)
			m->payload.config.payload[i] = (uint8_t)(0xa0 + i);
		break;
	case SVQ_VU_SET_OWNER:
	case SVQ_VU_RESET_OWNER:
	case SVQ_VU_RESET_DEVICE:
	case SVQ_VU_GET_FEATURES:
	case SVQ_VU_GET_PROTOCOL_FEATURES:
	case SVQ_VU_GET_QUEUE_NUM:
	case SVQ_VU_GET_MAX_MEM_SLOTS:
		break;
	default:	/* a u64, and an fd if the request carries one */
		m->hdr.size = sizeof(uint64_t);
		m->payload.u64 = v;
		if (svq_vu_fds_allowed(&m->hdr)) {
			m->nfds = 1;
			m->fds[0] = req == SVQ_VU_SET_LOG_BASE ||
				req == SVQ_VU_SET_INFLIGHT_FD ? mfd : efd;
		}
		break;
	}
}

static bool same_msg(const struct svq_vu_msg *a, const struct svq_vu_msg *b)
{
	return memcmp(&a->hdr, &b->hdr, sizeof(a->hdr)) == 0 &&
	       memcmp(&a->payload, &b->payload, a->hdr.size) == 0 &&
	       a->nfds == b->nfds;
}

/* Peer: receive each message, check it, send it straight back, fds too. */
static int peer_echo_all(int s)
{
	struct svq_vu_msg got, want;
	char magic[sizeof(MEMFD_MAGIC)];
	struct stat st;
	unsigned int i, j;

	for (i = 0; i < SVQ_ARRAY_SIZE(all_requests); i++) {
		PEER_CHECK(svq_vu_recv(s, &got, 2000) == 0);
		build(&want, all_requests[i], 100, 101);
		PEER_CHECK(same_msg(&got, &want));
		for (j = 0; j < got.nfds; j++) {
			PEER_CHECK(fstat(got.fds[j], &st) == 0);
			if (want.fds[j] == 101) {	/* the memfd */
				PEER_CHECK(S_ISREG(st.st_mode));
				PEER_CHECK(st.st_size == MEMFD_SIZE);
				PEER_CHECK(pread(got.fds[j], magic, sizeof(magic), 0) ==
					   (ssize_t)sizeof(magic));
				PEER_CHECK(memcmp(magic, MEMFD_MAGIC, sizeof(magic)) == 0);
			} else {
				PEER_CHECK(!S_ISREG(st.st_mode));
			}
		}
		PEER_CHECK(svq_vu_send(s, &got) == 0);
		close_fds(&got);
	}
	return wait_eof(s);
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;

	ck_assert_int_eq(fstat(a, &sa), 0);
	ck_assert_int_eq(fstat(b, &sb), 0);
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

START_TEST(test_roundtrip_every_type_with_fds_identical)
{
	struct svq_vu_msg out, back;
	unsigned int i, j;
	int efd, mfd;

	start(peer_echo_all);
	/* Made after the fork: the peer can only have them from messages. */
	efd = eventfd(0, EFD_CLOEXEC);
	mfd = memfd_create("vu-test", MFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_ge(mfd, 0);
	ck_assert_int_eq(ftruncate(mfd, MEMFD_SIZE), 0);
	ck_assert_int_eq(pwrite(mfd, MEMFD_MAGIC, sizeof(MEMFD_MAGIC), 0),
			 (ssize_t)sizeof(MEMFD_MAGIC));

	for (i = 0; i < SVQ_ARRAY_SIZE(all_requests); i++) {
		build(&out, all_requests[i], efd, mfd);
		ck_assert_int_eq(svq_vu_send(sock, &out), 0);
		ck_assert_int_eq(svq_vu_recv(sock, &back, 2000), 0);
		ck_assert_msg(same_msg(&out, &back), "request %u", all_requests[i]);
		for (j = 0; j < back.nfds; j++) {
			ck_assert_int_ne(back.fds[j], out.fds[j]);
			ck_assert(same_file(back.fds[j], out.fds[j]));
		}
		close_fds(&back);
	}
	close(efd);
	close(mfd);
	finish();
}
END_TEST

START_TEST(test_fds_allowed_per_request)
{
	struct svq_vu_hdr h = { .flags = SVQ_VU_VERSION };

	h.request = SVQ_VU_SET_MEM_TABLE;
	ck_assert_uint_eq(svq_vu_fds_allowed(&h), SVQ_VU_MAX_FDS);
	h.request = SVQ_VU_SET_VRING_CALL;
	ck_assert_uint_eq(svq_vu_fds_allowed(&h), 1);
	h.request = SVQ_VU_ADD_MEM_REG;
	ck_assert_uint_eq(svq_vu_fds_allowed(&h), 1);
	h.request = SVQ_VU_SET_FEATURES;
	ck_assert_uint_eq(svq_vu_fds_allowed(&h), 0);
	h.request = 999;
	ck_assert_uint_eq(svq_vu_fds_allowed(&h), 0);
	h.request = SVQ_VU_SET_VRING_KICK;
	h.flags |= SVQ_VU_FLAG_REPLY;	/* replies carry none... */
	ck_assert_uint_eq(svq_vu_fds_allowed(&h), 0);
	h.request = SVQ_VU_GET_INFLIGHT_FD;	/* ...but this one */
	ck_assert_uint_eq(svq_vu_fds_allowed(&h), 1);
}
END_TEST

START_TEST(test_send_bad_args_einval)
{
	struct svq_vu_msg m;
	int fds[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	ck_assert_int_eq(svq_vu_send(fds[0], NULL), -EINVAL);
	svq_vu_msg_init(&m, SVQ_VU_SET_VRING_CALL, 8);
	m.nfds = SVQ_VU_MAX_FDS + 1;
	ck_assert_int_eq(svq_vu_send(fds[0], &m), -EINVAL);
	m.nfds = 1;	/* fds[0] is -1 after init */
	ck_assert_int_eq(svq_vu_send(fds[0], &m), -EINVAL);
	m.nfds = 0;
	m.hdr.size = sizeof(m.payload) + 1;
	ck_assert_int_eq(svq_vu_send(fds[0], &m), -EINVAL);
	/* Nothing went out. */
	ck_assert_int_eq(recv(fds[1], &m, 1, MSG_DONTWAIT), -1);
	ck_assert_int_eq(errno, EAGAIN);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

START_TEST(test_recv_bad_args_einval)
{
	struct svq_vu_msg m;

	ck_assert_int_eq(svq_vu_recv(0, NULL, 100), -EINVAL);
	ck_assert_int_eq(svq_vu_recv(0, &m, -1), -EINVAL);
}
END_TEST

/* ---- faults on our side: EINTR, EAGAIN, partial transfers ---- */

static int peer_expect_mem_table(int s)
{
	struct svq_vu_msg got, want;

	PEER_CHECK(svq_vu_recv(s, &got, 5000) == 0);
	build(&want, SVQ_VU_SET_MEM_TABLE, 0, 0);
	PEER_CHECK(same_msg(&got, &want));
	close_fds(&got);
	return wait_eof(s);
}

START_TEST(test_send_eintr_eagain_partial_writes_complete)
{
	struct svq_vu_msg m;
	int efd;

	start(peer_expect_mem_table);
	efd = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	build(&m, SVQ_VU_SET_MEM_TABLE, efd, efd);
	send_inj = (struct inject){ .eintr = 2, .eagain = 2, .bytewise = true };
	ck_assert_int_eq(svq_vu_send(sock, &m), 0);
	send_inj = (struct inject){ 0 };
	close(efd);
	finish();
}
END_TEST

static int peer_send_mem_table(int s)
{
	struct svq_vu_msg m;
	int efd = eventfd(0, EFD_CLOEXEC);

	PEER_CHECK(efd >= 0);
	build(&m, SVQ_VU_SET_MEM_TABLE, efd, efd);
	PEER_CHECK(svq_vu_send(s, &m) == 0);
	close(efd);
	return wait_eof(s);
}

START_TEST(test_recv_eintr_partial_reads_complete)
{
	struct svq_vu_msg got, want;

	start(peer_send_mem_table);
	recv_inj = (struct inject){ .eintr = 3, .eagain = 1, .bytewise = true };
	ck_assert_int_eq(svq_vu_recv(sock, &got, 5000), 0);
	recv_inj = (struct inject){ 0 };
	build(&want, SVQ_VU_SET_MEM_TABLE, 0, 0);
	ck_assert(same_msg(&got, &want));
	ck_assert_uint_eq(got.nfds, SVQ_VU_MAX_FDS);
	close_fds(&got);
	finish();
}
END_TEST

/* ---- a hostile or broken peer ---- */

static int peer_close_now(int s)
{
	close(s);
	return 0;
}

START_TEST(test_recv_peer_closed_econnreset)
{
	struct svq_vu_msg m;

	start(peer_close_now);
	ck_assert_int_eq(svq_vu_recv(sock, &m, 2000), -ECONNRESET);
	ck_assert_uint_eq(m.nfds, 0);
	finish();
}
END_TEST

START_TEST(test_send_peer_closed_econnreset)
{
	struct svq_vu_msg m;

	start(peer_close_now);
	reap();		/* the peer is gone before we write */
	svq_vu_msg_init(&m, SVQ_VU_SET_OWNER, 0);
	/* No SIGPIPE: this process is still here to check the result. */
	ck_assert_int_eq(svq_vu_send(sock, &m), -ECONNRESET);
	finish();
}
END_TEST

static int peer_short_header(int s)
{
	struct svq_vu_hdr h = { SVQ_VU_GET_FEATURES, SVQ_VU_VERSION, 8 };

	PEER_CHECK(write_all(s, &h, 6) == 0);
	return 0;
}

START_TEST(test_recv_short_header_then_close_eproto)
{
	struct svq_vu_msg m;

	start(peer_short_header);
	ck_assert_int_eq(svq_vu_recv(sock, &m, 2000), -EPROTO);
	finish();
}
END_TEST

/*
 * Peer: @len raw bytes with @n copies of a fresh eventfd as SCM_RIGHTS, past
 * the codec's checks. Return: 0 or -1.
 */
static int send_raw(int s, const void *buf, size_t len, unsigned int n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = CMSG_SPACE(sizeof(int) * n),
	};
	struct cmsghdr *c;
	int fds[16];
	unsigned int i;
	ssize_t sent;

	if (n > 16)
		return -1;
	for (i = 0; i < n; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC)) < 0)
			return -1;
	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	sent = sendmsg(s, &mh, 0);
	for (i = 0; i < n; i++)
		close(fds[i]);
	return sent == (ssize_t)len ? 0 : -1;
}

/* A header announcing 8 bytes, 3 of them with an fd, then gone. */
static int peer_short_payload(int s)
{
	struct {
		struct svq_vu_hdr h;
		uint8_t p[3];
	} __attribute__((packed)) wire = {
		{ SVQ_VU_SET_VRING_CALL, SVQ_VU_VERSION, 8 }, { 1, 2, 3 },
	};

	PEER_CHECK(send_raw(s, &wire, sizeof(wire), 1) == 0);
	return 0;
}

START_TEST(test_recv_short_payload_then_close_eproto)
{
	struct svq_vu_msg m;

	start(peer_short_payload);
	ck_assert_int_eq(svq_vu_recv(sock, &m, 2000), -EPROTO);
	ck_assert_uint_eq(m.nfds, 0);
	finish();	/* the fd that came with the header was closed */
}
END_TEST

/* Oversized message with an fd, then a good one. */
static int peer_oversized_then_good(int s)
{
	static uint8_t junk[sizeof(union svq_vu_payload) + 100];
	struct svq_vu_hdr h = {
		SVQ_VU_SET_VRING_CALL, SVQ_VU_VERSION, sizeof(junk),
	};
	struct svq_vu_msg m;

	PEER_CHECK(send_raw(s, &h, sizeof(h), 1) == 0);
	memset(junk, 0xee, sizeof(junk));
	PEER_CHECK(write_all(s, junk, sizeof(junk)) == 0);
	svq_vu_msg_init(&m, SVQ_VU_SET_FEATURES, 8);
	m.payload.u64 = 0x5a5a;
	PEER_CHECK(svq_vu_send(s, &m) == 0);
	return wait_eof(s);
}

START_TEST(test_recv_oversized_drained_emsgsize_then_in_step)
{
	struct svq_vu_msg m;

	start(peer_oversized_then_good);
	ck_assert_int_eq(svq_vu_recv(sock, &m, 2000), -EMSGSIZE);
	ck_assert_uint_eq(m.nfds, 0);
	/* Drained: the next message reads cleanly. */
	ck_assert_int_eq(svq_vu_recv(sock, &m, 2000), 0);
	ck_assert_uint_eq(m.hdr.request, SVQ_VU_SET_FEATURES);
	ck_assert_uint_eq(m.payload.u64, 0x5a5a);
	finish();
}
END_TEST

static int peer_huge_size(int s)
{
	struct svq_vu_hdr h = { SVQ_VU_GET_FEATURES, SVQ_VU_VERSION, UINT32_MAX };

	PEER_CHECK(write_all(s, &h, sizeof(h)) == 0);
	return wait_eof(s);
}

START_TEST(test_recv_huge_size_eproto_without_reading)
{
	struct svq_vu_msg m;
	int64_t t0 = now_ms();

	start(peer_huge_size);
	ck_assert_int_eq(svq_vu_recv(sock, &m, 5000), -EPROTO);
	ck_assert_int_lt(now_ms() - t0, 2000);	/* did not wait for 4 GiB */
	finish();
}
END_TEST

/* Twelve fds on one message: more than the receive buffer holds. */
static int peer_too_many_fds(int s)
{
	struct svq_vu_hdr h = { SVQ_VU_SET_MEM_TABLE, SVQ_VU_VERSION, 0 };

	PEER_CHECK(send_raw(s, &h, sizeof(h), 12) == 0);
	return wait_eof(s);
}

START_TEST(test_recv_too_many_fds_eproto_all_closed)
{
	struct svq_vu_msg m;

	start(peer_too_many_fds);
	ck_assert_int_eq(svq_vu_recv(sock, &m, 2000), -EPROTO);
	ck_assert_uint_eq(m.nfds, 0);
	finish();
}
END_TEST

/* SET_VRING_KICK with three fds, SET_FEATURES with two. */
static int peer_extra_fds(int s)
{
	struct svq_vu_msg m;
	int efd = eventfd(0, EFD_CLOEXEC);

	PEER_CHECK(efd >= 0);
	svq_vu_msg_init(&m, SVQ_VU_SET_VRING_KICK, 8);
	m.fds[0] = m.fds[1] = m.fds[2] = efd;
	m.nfds = 3;
	PEER_CHECK(svq_vu_send(s, &m) == 0);
	svq_vu_msg_init(&m, SVQ_VU_SET_FEATURES, 8);
	m.fds[0] = m.fds[1] = efd;
	m.nfds = 2;
	PEER_CHECK(svq_vu_send(s, &m) == 0);
	close(efd);
	return wait_eof(s);
}

START_TEST(test_recv_fds_beyond_allowed_closed)
{
	struct svq_vu_msg m;

	start(peer_extra_fds);
	ck_assert_int_eq(svq_vu_recv(sock, &m, 2000), 0);
	ck_assert_uint_eq(m.hdr.request, SVQ_VU_SET_VRING_KICK);
	ck_assert_uint_eq(m.nfds, 1);
	close_fds(&m);
	ck_assert_int_eq(svq_vu_recv(sock, &m, 2000), 0);
	ck_assert_uint_eq(m.hdr.request, SVQ_VU_SET_FEATURES);
	ck_assert_uint_eq(m.nfds, 0);
	finish();	/* the four dropped fds did not leak */
}
END_TEST

static int peer_silent(int s)
{
	return wait_eof(s);
}

static int peer_half_header(int s)
{
	struct svq_vu_hdr h = { SVQ_VU_GET_FEATURES, SVQ_VU_VERSION, 8 };

	PEER_CHECK(write_all(s, &h, 5) == 0);
	return wait_eof(s);
}

/*
 * svq_vu_recv() times out after 100 ms, with @fn's first @ready bytes
 * already there: waited for first, so a peer slow to run on a loaded
 * machine still stalls where the test means it to.
 */
static void expect_timeout(script_fn fn, int ready)
{
	struct svq_vu_msg m;
	int64_t t0, dt;
	int avail = 0, i;

	start(fn);
	for (i = 0; i < 2000 && avail < ready; i++) {
		ck_assert_int_eq(ioctl(sock, FIONREAD, &avail), 0);
		if (avail < ready)
			usleep(1000);
	}
	ck_assert_int_ge(avail, ready);
	t0 = now_ms();
	ck_assert_int_eq(svq_vu_recv(sock, &m, 100), -ETIMEDOUT);
	dt = now_ms() - t0;
	ck_assert_int_ge(dt, 95);
	ck_assert_int_lt(dt, 1000);
	finish();
}

START_TEST(test_recv_unresponsive_etimedout)
{
	expect_timeout(peer_silent, 0);
}
END_TEST

START_TEST(test_recv_stalled_mid_header_etimedout)
{
	expect_timeout(peer_half_header, 5);
}
END_TEST

/* ---- svq_vu_call ---- */

/* What the scripted backend answers, set before start(). */
static struct {
	bool want_need_reply;	/* the request must carry NEED_REPLY */
	bool answer;		/* false: read the request, say nothing */
	uint32_t request;	/* 0: the request's own code */
	uint32_t flags;
	uint32_t size;		/* UINT32_MAX: as long as the request's */
	uint64_t u64;
	bool with_fd;		/* attach an eventfd to the answer */
	bool close_after;	/* close instead of waiting for EOF */
} ans;

static int peer_answer(int s)
{
	struct svq_vu_msg req, rep;
	int efd = -1;

	PEER_CHECK(svq_vu_recv(s, &req, 2000) == 0);
	PEER_CHECK((req.hdr.flags & SVQ_VU_VERSION_MASK) == SVQ_VU_VERSION);
	PEER_CHECK(!(req.hdr.flags & SVQ_VU_FLAG_REPLY));
	PEER_CHECK(!!(req.hdr.flags & SVQ_VU_FLAG_NEED_REPLY) ==
		   ans.want_need_reply);
	close_fds(&req);
	if (ans.close_after)
		return 0;
	if (!ans.answer)
		return wait_eof(s);

	rep = req;	/* GET_CONFIG: offset and size echoed */
	rep.hdr.request = ans.request ? ans.request : req.hdr.request;
	rep.hdr.flags = ans.flags;
	rep.hdr.size = ans.size == UINT32_MAX ? req.hdr.size : ans.size;
	if (req.hdr.request != SVQ_VU_GET_CONFIG)
		rep.payload.u64 = ans.u64;
	else
		memset(rep.payload.config.payload, 0xc5, SVQ_VU_CONFIG_MAX);
	if (ans.with_fd) {
		efd = eventfd(0, EFD_CLOEXEC);
		PEER_CHECK(efd >= 0);
		rep.fds[0] = efd;
		rep.nfds = 1;
	}
	PEER_CHECK(svq_vu_send(s, &rep) == 0);
	if (efd >= 0)
		close(efd);
	return wait_eof(s);
}

#define REPLY_OK (SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY)

static void set_answer(uint32_t flags, uint32_t size, uint64_t u64)
{
	memset(&ans, 0, sizeof(ans));
	ans.answer = true;
	ans.flags = flags;
	ans.size = size;
	ans.u64 = u64;
}

/* Run one call against the scripted answer; returns its result. */
static int call(uint32_t request, uint32_t size, bool reply_ack,
		struct svq_vu_msg *reply)
{
	struct svq_vu_msg req;
	int rc;

	start(peer_answer);
	svq_vu_msg_init(&req, request, size);
	if (request == SVQ_VU_GET_CONFIG) {
		req.payload.config.offset = 4;
		req.payload.config.size = size - SVQ_VU_CONFIG_HDR_SIZE;
	}
	rc = svq_vu_call(sock, &req, reply, reply_ack, 2000);
	if (reply && rc == 0)
		close_fds(reply);
	return rc;
}

START_TEST(test_call_get_features_value_returned)
{
	struct svq_vu_msg rep;

	set_answer(REPLY_OK, 8, 0x140000000ull);
	/* reply_ack does not add NEED_REPLY to a request with its own reply */
	ck_assert_int_eq(call(SVQ_VU_GET_FEATURES, 0, true, &rep), 0);
	ck_assert_uint_eq(rep.payload.u64, 0x140000000ull);
	ck_assert_uint_eq(rep.hdr.request, SVQ_VU_GET_FEATURES);
	finish();
}
END_TEST

START_TEST(test_call_get_vring_base_state_returned)
{
	struct svq_vu_msg rep;

	set_answer(REPLY_OK, 8, (77ull << 32) | 1);
	ck_assert_int_eq(call(SVQ_VU_GET_VRING_BASE, 8, false, &rep), 0);
	ck_assert_uint_eq(rep.payload.state.index, 1);
	ck_assert_uint_eq(rep.payload.state.num, 77);
	finish();
}
END_TEST

START_TEST(test_call_get_config_payload_returned)
{
	struct svq_vu_msg rep;

	set_answer(REPLY_OK, UINT32_MAX, 0);
	ck_assert_int_eq(call(SVQ_VU_GET_CONFIG, SVQ_VU_CONFIG_HDR_SIZE + 60,
			      false, &rep), 0);
	ck_assert_uint_eq(rep.payload.config.offset, 4);
	ck_assert_uint_eq(rep.payload.config.size, 60);
	ck_assert_uint_eq(rep.payload.config.payload[59], 0xc5);
	finish();
}
END_TEST

START_TEST(test_call_get_config_short_reply_eproto)
{
	struct svq_vu_msg rep;

	set_answer(REPLY_OK, SVQ_VU_CONFIG_HDR_SIZE + 10, 0);
	ck_assert_int_eq(call(SVQ_VU_GET_CONFIG, SVQ_VU_CONFIG_HDR_SIZE + 60,
			      false, &rep), -EPROTO);
	finish();
}
END_TEST

START_TEST(test_call_get_config_bad_request_einval)
{
	struct svq_vu_msg req, rep;

	svq_vu_msg_init(&req, SVQ_VU_GET_CONFIG, SVQ_VU_CONFIG_HDR_SIZE + 8);
	req.payload.config.size = 9;	/* disagrees with hdr.size */
	ck_assert_int_eq(svq_vu_call(-1, &req, &rep, false, 100), -EINVAL);
	ck_assert_int_eq(svq_vu_call(-1, NULL, &rep, false, 100), -EINVAL);
	svq_vu_msg_init(&req, SVQ_VU_GET_FEATURES, 0);
	ck_assert_int_eq(svq_vu_call(-1, &req, NULL, false, 100), -EINVAL);
}
END_TEST

START_TEST(test_call_reply_ack_zero_ok)
{
	set_answer(REPLY_OK, 8, 0);
	ans.want_need_reply = true;
	ck_assert_int_eq(call(SVQ_VU_SET_VRING_NUM, 8, true, NULL), 0);
	finish();
}
END_TEST

START_TEST(test_call_reply_ack_nonzero_eio)
{
	struct svq_vu_msg rep;

	set_answer(REPLY_OK, 8, 1);
	ans.want_need_reply = true;
	ck_assert_int_eq(call(SVQ_VU_ADD_MEM_REG, sizeof(struct svq_vu_mem_reg),
			      true, &rep), -EIO);
	finish();
}
END_TEST

START_TEST(test_call_no_ack_returns_without_reply)
{
	int64_t t0 = now_ms();

	memset(&ans, 0, sizeof(ans));	/* the peer never answers */
	ck_assert_int_eq(call(SVQ_VU_SET_FEATURES, 8, false, NULL), 0);
	ck_assert_int_lt(now_ms() - t0, 1000);
	finish();
}
END_TEST

START_TEST(test_call_wrong_reply_type_eproto)
{
	struct svq_vu_msg rep;

	set_answer(REPLY_OK, 8, 0);
	ans.request = SVQ_VU_GET_PROTOCOL_FEATURES;
	ck_assert_int_eq(call(SVQ_VU_GET_FEATURES, 0, false, &rep), -EPROTO);
	finish();
}
END_TEST

START_TEST(test_call_ack_wrong_type_eproto)
{
	set_answer(REPLY_OK, 8, 0);
	ans.want_need_reply = true;
	ans.request = SVQ_VU_SET_VRING_BASE;
	ck_assert_int_eq(call(SVQ_VU_SET_VRING_NUM, 8, true, NULL), -EPROTO);
	finish();
}
END_TEST

START_TEST(test_call_missing_reply_flag_eproto)
{
	struct svq_vu_msg rep;

	set_answer(SVQ_VU_VERSION, 8, 0);
	ck_assert_int_eq(call(SVQ_VU_GET_QUEUE_NUM, 0, false, &rep), -EPROTO);
	finish();
}
END_TEST

START_TEST(test_call_wrong_version_eproto)
{
	struct svq_vu_msg rep;

	set_answer(0x2 | SVQ_VU_FLAG_REPLY, 8, 0);
	ck_assert_int_eq(call(SVQ_VU_GET_MAX_MEM_SLOTS, 0, false, &rep), -EPROTO);
	finish();
}
END_TEST

START_TEST(test_call_wrong_reply_size_eproto)
{
	struct svq_vu_msg rep;

	set_answer(REPLY_OK, 4, 0);
	ck_assert_int_eq(call(SVQ_VU_GET_PROTOCOL_FEATURES, 0, false, &rep),
			 -EPROTO);
	finish();
}
END_TEST

START_TEST(test_call_ack_wrong_size_eproto)
{
	set_answer(REPLY_OK, 0, 0);
	ans.want_need_reply = true;
	ck_assert_int_eq(call(SVQ_VU_SET_OWNER, 0, true, NULL), -EPROTO);
	finish();
}
END_TEST

START_TEST(test_call_reply_fds_closed)
{
	struct svq_vu_msg rep;

	set_answer(REPLY_OK, 8, 3);
	ans.with_fd = true;
	ck_assert_int_eq(call(SVQ_VU_GET_QUEUE_NUM, 0, false, &rep), 0);
	ck_assert_uint_eq(rep.nfds, 0);
	ck_assert_uint_eq(rep.payload.u64, 3);
	finish();	/* the fd the backend slipped in was closed */
}
END_TEST

/*
 * A reply naming GET_INFLIGHT_FD is the one kind svq_vu_recv() lets keep an
 * fd; a backend may send one in answer to anything. The call refuses it
 * and the fd does not outlive the call (finish() counts them).
 */
START_TEST(test_call_reply_named_inflight_fd_eproto_fd_closed)
{
	struct svq_vu_msg rep;

	set_answer(REPLY_OK, 8, 3);
	ans.request = SVQ_VU_GET_INFLIGHT_FD;
	ans.with_fd = true;
	ck_assert_int_eq(call(SVQ_VU_GET_QUEUE_NUM, 0, false, &rep), -EPROTO);
	ck_assert_uint_eq(rep.nfds, 0);
	finish();
}
END_TEST

START_TEST(test_call_ack_named_inflight_fd_eproto_fd_closed)
{
	set_answer(REPLY_OK, 8, 0);
	ans.request = SVQ_VU_GET_INFLIGHT_FD;
	ans.with_fd = true;
	ans.want_need_reply = true;
	ck_assert_int_eq(call(SVQ_VU_SET_OWNER, 0, true, NULL), -EPROTO);
	finish();
}
END_TEST

START_TEST(test_call_unresponsive_etimedout)
{
	struct svq_vu_msg req, rep;
	int64_t t0, dt;

	memset(&ans, 0, sizeof(ans));
	start(peer_answer);
	svq_vu_msg_init(&req, SVQ_VU_GET_FEATURES, 0);
	t0 = now_ms();
	ck_assert_int_eq(svq_vu_call(sock, &req, &rep, false, 100), -ETIMEDOUT);
	dt = now_ms() - t0;
	ck_assert_int_ge(dt, 95);
	ck_assert_int_lt(dt, 1000);
	finish();
}
END_TEST

START_TEST(test_call_peer_closes_econnreset)
{
	memset(&ans, 0, sizeof(ans));
	ans.want_need_reply = true;
	ans.close_after = true;
	ck_assert_int_eq(call(SVQ_VU_SET_VRING_ENABLE, 8, true, NULL),
			 -ECONNRESET);
	finish();
}
END_TEST

static Suite *vhost_user_suite(void)
{
	Suite *s = suite_create("vhost_user");
	TCase *tc;

	tc = tcase_create("codec");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_roundtrip_every_type_with_fds_identical);
	tcase_add_test(tc, test_fds_allowed_per_request);
	tcase_add_test(tc, test_send_bad_args_einval);
	tcase_add_test(tc, test_recv_bad_args_einval);
	tcase_add_test(tc, test_send_eintr_eagain_partial_writes_complete);
	tcase_add_test(tc, test_recv_eintr_partial_reads_complete);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile-peer");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_recv_peer_closed_econnreset);
	tcase_add_test(tc, test_send_peer_closed_econnreset);
	tcase_add_test(tc, test_recv_short_header_then_close_eproto);
	tcase_add_test(tc, test_recv_short_payload_then_close_eproto);
	tcase_add_test(tc, test_recv_oversized_drained_emsgsize_then_in_step);
	tcase_add_test(tc, test_recv_huge_size_eproto_without_reading);
	tcase_add_test(tc, test_recv_too_many_fds_eproto_all_closed);
	tcase_add_test(tc, test_recv_fds_beyond_allowed_closed);
	tcase_add_test(tc, test_recv_unresponsive_etimedout);
	tcase_add_test(tc, test_recv_stalled_mid_header_etimedout);
	suite_add_tcase(s, tc);

	tc = tcase_create("call");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_call_get_features_value_returned);
	tcase_add_test(tc, test_call_get_vring_base_state_returned);
	tcase_add_test(tc, test_call_get_config_payload_returned);
	tcase_add_test(tc, test_call_get_config_short_reply_eproto);
	tcase_add_test(tc, test_call_get_config_bad_request_einval);
	tcase_add_test(tc, test_call_reply_ack_zero_ok);
	tcase_add_test(tc, test_call_reply_ack_nonzero_eio);
	tcase_add_test(tc, test_call_no_ack_returns_without_reply);
	tcase_add_test(tc, test_call_wrong_reply_type_eproto);
	tcase_add_test(tc, test_call_ack_wrong_type_eproto);
	tcase_add_test(tc, test_call_missing_reply_flag_eproto);
	tcase_add_test(tc, test_call_wrong_version_eproto);
	tcase_add_test(tc, test_call_wrong_reply_size_eproto);
	tcase_add_test(tc, test_call_ack_wrong_size_eproto);
	tcase_add_test(tc, test_call_reply_fds_closed);
	tcase_add_test(tc, test_call_reply_named_inflight_fd_eproto_fd_closed);
	tcase_add_test(tc, test_call_ack_named_inflight_fd_eproto_fd_closed);
	tcase_add_test(tc, test_call_unresponsive_etimedout);
	tcase_add_test(tc, test_call_peer_closes_econnreset);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vhost_user_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
