/* SPDX-License-Identifier: MIT */
/*
 * svqiso-proxy against a hostile VMM: a scripted VMM feeds the proxy core
 * malformed vhost-user messages over a socketpair, the core serving it with
 * proxy_serve() on a thread and a real qemu-storage-daemon behind it.
 *
 * One row per malformed message (rows[] below): the honest messages that
 * lead up to it, how it is built, the request and the words the log line
 * must carry. For each row the session is closed (proxy_serve() returns
 * -EPROTO and the VMM's socket sees EOF, nothing sent before it), exactly
 * one log line says "NAME: vmm: REQUEST (N): <what>: closing the session",
 * no fd is left open (/proc/self/fd counted before and after), and the same
 * proxy then serves an honest session: negotiation, guest RAM, a ring, a
 * read served end to end and checked against the disk image, GET_CONFIG,
 * GET_VRING_BASE. A sanitized build checks that nothing reads or leaks
 * what it should not (each row runs in a process of its own).
 *
 * "backend" puts a relay between the proxy and the daemon that breaks the
 * protocol once (a reply of the wrong size to the backend request a queue
 * start makes): the VMM's request fails, its session does not, and the
 * queue starts once the VMM asks again (the proxy reconnects).
 *
 * "spin" breaks a guest ring while the proxy spins over a stopped daemon:
 * the spin finds the bad chain without a kick and breaks the queue alone,
 * the session going on.
 *
 * "process" runs the svqiso-proxy program (SVQISO_PROXY): one malformed
 * message to its socket, its error line on stderr, then an honest session
 * served by the same process, which exits cleanly on SIGTERM.
 *
 * Skips (TAP "1..0 # SKIP") when qemu-storage-daemon is not on PATH.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <check.h>

#include "vhost_user.h"
#include "proxy.h"
#include "guest.h"
#include "qsd.h"
#include "ckplan.h"

#define NAME		"hostile"
#define IMG_SIZE	(1u << 20)
#define GUEST_GPA	(1u << 20)
#define GUEST_SIZE	(1u << 20)	/* two regions of 512 KiB */
#define NUM		64
#define NQ		2		/* proxy_opts.max_queues */
#define WAIT_MS		10000		/* replies, EOF, completions */
#define PATTERN		0x9e3779b97f4a7c15ull

/* Somewhere no guest RAM of the test is: regions the VMM makes up. */
#define FAKE_GPA	(16ull << 20)
#define FAKE_UADDR	0x100000000000ull
#define FAKE_SIZE	(64u << 10)

#define F_VERSION_1	(1ull << 32)
#define F_ACCESS_PLATFORM (1ull << 33)
#define F_RING_PACKED	(1ull << 34)
#define F_PROTOCOL	(1ull << SVQ_VU_F_PROTOCOL_FEATURES)
#define F_LOG_ALL	(1ull << 26)
#define PF(bit)		(1ull << SVQ_VU_PROTOCOL_F_##bit)

/* Requests the codec has no name for. */
#define VU_SEND_RARP		19
#define VU_NET_SET_MTU		20
#define VU_IOTLB_MSG		22
#define VU_SET_VRING_ENDIAN	23
#define VU_CREATE_CRYPTO	26
#define VU_POSTCOPY_ADVISE	28
#define VU_POSTCOPY_LISTEN	29
#define VU_POSTCOPY_END		30
#define VU_GPU_SET_SOCKET	33
#define VU_VRING_KICK		35
#define VU_SET_STATUS		39
#define VU_GET_STATUS		40

static struct qsd D;		/* per tcase */
static struct proxy *P;		/* per test */

/* ---- the proxy's log ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logbuf[1 << 16];
static size_t loglen;

static void log_capture(void *ctx, int level, const char *msg)
{
	size_t n = strlen(msg);

	(void)ctx;
	(void)level;
	pthread_mutex_lock(&log_lock);
	if (loglen + n + 2 < sizeof(logbuf)) {
		memcpy(logbuf + loglen, msg, n);
		loglen += n;
		logbuf[loglen++] = '\n';
		logbuf[loglen] = 0;
	}
	pthread_mutex_unlock(&log_lock);
	if (getenv("SVQ_TEST_VERBOSE"))
		fprintf(stderr, "# %s\n", msg);
}

static void log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	loglen = 0;
	logbuf[0] = 0;
	pthread_mutex_unlock(&log_lock);
}

/* Lines of @text that end with "closing the session": their count; the
 * first of them in @line. */
static unsigned int closing_lines(const char *text, char *line, size_t len)
{
	static const char tail[] = ": closing the session";
	const char *s = text, *e;
	unsigned int n = 0;

	line[0] = 0;
	for (; *s; s = *e ? e + 1 : e) {
		e = strchrnul(s, '\n');
		if ((size_t)(e - s) < sizeof(tail) - 1 ||
		    memcmp(e - (sizeof(tail) - 1), tail, sizeof(tail) - 1))
			continue;
		if (!n++)
			snprintf(line, len, "%.*s", (int)(e - s), s);
	}
	return n;
}

/* ---- fds ---- */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own */
}

enum fd_kind {
	FD_NONE,
	FD_EVENT,	/* an eventfd */
	FD_MEMFD,	/* FAKE_SIZE bytes */
	FD_PIPE,	/* a pipe's read end */
	FD_NULL,	/* /dev/null */
	FD_SOCK,	/* a socket */
	FD_RDONLY,	/* a memfd opened read-only */
};

static int memfd(uint64_t size)
{
	int fd = memfd_create("hostile", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static int make_fd(enum fd_kind k)
{
	char path[64];
	int fd = -1, two[2], m;

	switch (k) {
	case FD_NONE:
		break;
	case FD_EVENT:
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		break;
	case FD_MEMFD:
		fd = memfd(FAKE_SIZE);
		break;
	case FD_PIPE:
		ck_assert_int_eq(pipe2(two, O_CLOEXEC), 0);
		close(two[1]);
		fd = two[0];
		break;
	case FD_NULL:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	case FD_SOCK:
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
					    0, two), 0);
		close(two[1]);
		fd = two[0];
		break;
	case FD_RDONLY:
		m = memfd(FAKE_SIZE);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", m);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		close(m);
		break;
	}
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* ---- the proxy's side: proxy_serve() on a thread ---- */

struct served {
	pthread_t t;
	int fd;
	int rc;
};

static void *serve_thread(void *arg)
{
	struct served *s = arg;

	s->rc = proxy_serve(P, s->fd);
	return NULL;
}

/* A new session; return the VMM's end. */
static int serve_start(struct served *s)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->fd = sv[0];
	s->rc = 1;
	ck_assert_int_eq(pthread_create(&s->t, NULL, serve_thread, s), 0);
	return sv[1];
}

static int serve_join(struct served *s)
{
	ck_assert_int_eq(pthread_join(s->t, NULL), 0);
	return s->rc;
}

/* ---- the VMM ---- */

struct vmm {
	int sock;
	uint64_t features;	/* GET_FEATURES */
	uint64_t proto;		/* GET_PROTOCOL_FEATURES */
	bool acks;		/* REPLY_ACK agreed: set requests are acked */
	struct gmem *gm;
	struct blkq *q;
	uint64_t buf_gpa;	/* a 4 KiB read buffer */
};

static uint64_t uaddr(const struct vmm *v, uint64_t gpa)
{
	void *hva = gmem_hva(v->gm, gpa, 1);

	ck_assert_ptr_nonnull(hva);
	return (uint64_t)(uintptr_t)hva;
}

static void vmm_open(struct vmm *v, int sock)
{
	struct blkq_opts qo = { .layout = SVQISO_LAYOUT_SPLIT, .num = NUM,
				.max_segs = 4 };

	memset(v, 0, sizeof(*v));
	v->sock = sock;
	v->gm = gmem_new(GUEST_GPA, GUEST_SIZE, 2);
	ck_assert_ptr_nonnull(v->gm);
	ck_assert_int_eq(blkq_new(v->gm, &qo, &v->q), 0);
	v->buf_gpa = gmem_alloc_contig(v->gm, 4096, 4096);
	ck_assert_uint_ne(v->buf_gpa, 0);
}

static void vmm_close(struct vmm *v)
{
	if (v->sock >= 0)
		close(v->sock);
	v->sock = -1;
	blkq_free(v->q);
	gmem_free(v->gm);
	v->q = NULL;
	v->gm = NULL;
}

/* Send @m with @n fds of @kind (made and closed here). */
static void send_fds(struct vmm *v, struct svq_vu_msg *m, enum fd_kind kind,
		     unsigned int n)
{
	unsigned int i;
	int rc;

	for (i = 0; i < n; i++)
		m->fds[i] = make_fd(kind);
	m->nfds = n;
	rc = svq_vu_send(v->sock, m);
	for (i = 0; i < n; i++)
		close(m->fds[i]);
	ck_assert_msg(rc == 0, "send: %s", strerror(-rc));
}

static bool own_reply(uint32_t request)
{
	return request == SVQ_VU_GET_FEATURES ||
	       request == SVQ_VU_GET_PROTOCOL_FEATURES ||
	       request == SVQ_VU_GET_QUEUE_NUM ||
	       request == SVQ_VU_GET_MAX_MEM_SLOTS ||
	       request == SVQ_VU_GET_VRING_BASE ||
	       request == SVQ_VU_GET_CONFIG ||
	       request == SVQ_VU_SET_LOG_BASE;
}

static void recv_reply(struct vmm *v, uint32_t request, uint32_t size,
		       struct svq_vu_msg *r)
{
	int rc = svq_vu_recv(v->sock, r, WAIT_MS);

	ck_assert_msg(rc == 0, "reply to %u: %s", request, strerror(-rc));
	ck_assert_uint_eq(r->hdr.request, request);
	ck_assert_uint_eq(r->hdr.flags, SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY);
	ck_assert_uint_eq(r->hdr.size, size);
	ck_assert_uint_eq(r->nfds + r->nfds_dropped, 0);
}

/* An honest request with @nfds fds (the caller's, not closed): acked when
 * REPLY_ACK is agreed, and the ack must be 0. */
static void honest(struct vmm *v, struct svq_vu_msg *m, const int *fds,
		   unsigned int nfds)
{
	struct svq_vu_msg r;
	bool ack = v->acks && !own_reply(m->hdr.request);
	int rc;

	if (ack)
		m->hdr.flags |= SVQ_VU_FLAG_NEED_REPLY;
	if (nfds)
		memcpy(m->fds, fds, nfds * sizeof(int));
	m->nfds = nfds;
	rc = svq_vu_send(v->sock, m);
	ck_assert_msg(rc == 0, "send %u: %s", m->hdr.request, strerror(-rc));
	if (!ack)
		return;
	recv_reply(v, m->hdr.request, sizeof(uint64_t), &r);
	ck_assert_msg(r.payload.u64 == 0, "request %u: ack %" PRIu64,
		      m->hdr.request, r.payload.u64);
}

static void honest_u64(struct vmm *v, uint32_t request, uint64_t val)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, request, sizeof(uint64_t));
	m.payload.u64 = val;
	honest(v, &m, NULL, 0);
}

static void honest_state(struct vmm *v, uint32_t request, uint32_t idx,
			 uint32_t num)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, request, sizeof(struct svq_vu_vring_state));
	m.payload.state.index = idx;
	m.payload.state.num = num;
	honest(v, &m, NULL, 0);
}

static uint64_t get_u64(struct vmm *v, uint32_t request)
{
	struct svq_vu_msg m, r;

	svq_vu_msg_init(&m, request, 0);
	send_fds(v, &m, FD_NONE, 0);
	recv_reply(v, request, sizeof(uint64_t), &r);
	return r.payload.u64;
}

static struct svq_vu_mem_region gm_region(const struct vmm *v, unsigned int i)
{
	struct svqiso_mem_region r;

	ck_assert_int_eq(gmem_region(v->gm, i, &r), 0);
	return (struct svq_vu_mem_region){
		.guest_phys_addr = r.gpa, .memory_size = r.size,
		.userspace_addr = (uint64_t)(uintptr_t)r.hva,
		.mmap_offset = r.fd_offset,
	};
}

static void add_region(struct vmm *v, const struct svq_vu_mem_region *w, int fd)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, SVQ_VU_ADD_MEM_REG, sizeof(struct svq_vu_mem_reg));
	m.payload.mem_reg.region = *w;
	honest(v, &m, &fd, 1);
}

/* Guest RAM: one ADD_MEM_REG per region, or one SET_MEM_TABLE. */
static void give_memory(struct vmm *v, bool table)
{
	unsigned int i, n = gmem_nr_regions(v->gm);
	struct svq_vu_msg m;
	int fds[SVQ_VU_MEM_REGIONS];

	if (!table) {
		for (i = 0; i < n; i++) {
			struct svq_vu_mem_region w = gm_region(v, i);

			add_region(v, &w, gmem_fd(v->gm));
		}
		return;
	}
	svq_vu_msg_init(&m, SVQ_VU_SET_MEM_TABLE,
			8 + n * sizeof(struct svq_vu_mem_region));
	m.payload.mem.nregions = n;
	for (i = 0; i < n; i++) {
		m.payload.mem.regions[i] = gm_region(v, i);
		fds[i] = gmem_fd(v->gm);
	}
	honest(v, &m, fds, n);
}

/* The ring's SET_VRING_ADDR, in the VMM's addresses. */
static struct svq_vu_vring_addr ring_addr(const struct vmm *v, uint32_t idx)
{
	struct svqiso_vring_addr a = blkq_addr(v->q);

	return (struct svq_vu_vring_addr){
		.index = idx, .desc = uaddr(v, a.desc),
		.avail = uaddr(v, a.driver), .used = uaddr(v, a.device),
	};
}

static void set_addr(struct vmm *v, const struct svq_vu_vring_addr *a)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, SVQ_VU_SET_VRING_ADDR, sizeof(*a));
	m.payload.addr = *a;
	honest(v, &m, NULL, 0);
}

static void set_fd(struct vmm *v, uint32_t request, uint32_t idx, int fd)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, request, sizeof(uint64_t));
	m.payload.u64 = idx;
	honest(v, &m, &fd, 1);
}

enum stage {
	ST_NONE,	/* nothing sent yet */
	ST_PROTO,	/* GET_FEATURES, protocol features agreed, SET_OWNER */
	ST_FEAT,	/* SET_FEATURES */
	ST_MEM,		/* guest RAM given with ADD_MEM_REG */
	ST_RING,	/* queue 0: NUM, BASE, ADDR, CALL */
	ST_RUN,		/* queue 0: KICK: it runs */
};

/* The features the VMM acks: split rings, nothing else of transport. */
static uint64_t vmm_features(const struct vmm *v)
{
	(void)v;
	return F_VERSION_1 | F_PROTOCOL;
}

static void stage_to(struct vmm *v, enum stage st, bool table)
{
	struct svq_vu_vring_addr a;
	struct svq_vu_msg m;

	if (st >= ST_PROTO) {
		v->features = get_u64(v, SVQ_VU_GET_FEATURES);
		ck_assert_uint_ne(v->features & F_PROTOCOL, 0);
		ck_assert_uint_ne(v->features & F_VERSION_1, 0);
		v->proto = get_u64(v, SVQ_VU_GET_PROTOCOL_FEATURES);
		ck_assert_uint_eq(v->proto & (PF(REPLY_ACK) | PF(CONFIGURE_MEM_SLOTS)),
				  PF(REPLY_ACK) | PF(CONFIGURE_MEM_SLOTS));
		honest_u64(v, SVQ_VU_SET_PROTOCOL_FEATURES, v->proto);
		v->acks = true;
		ck_assert_uint_eq(get_u64(v, SVQ_VU_GET_MAX_MEM_SLOTS),
				  PROXY_MEM_SLOTS);
		if (v->proto & PF(MQ))
			ck_assert_uint_ge(get_u64(v, SVQ_VU_GET_QUEUE_NUM), 1);
		svq_vu_msg_init(&m, SVQ_VU_SET_OWNER, 0);
		honest(v, &m, NULL, 0);
	}
	if (st >= ST_FEAT)
		honest_u64(v, SVQ_VU_SET_FEATURES, vmm_features(v));
	if (st >= ST_MEM)
		give_memory(v, table);
	if (st >= ST_RING) {
		a = ring_addr(v, 0);
		honest_state(v, SVQ_VU_SET_VRING_NUM, 0, NUM);
		honest_state(v, SVQ_VU_SET_VRING_BASE, 0, blkq_fresh_base(v->q));
		set_addr(v, &a);
		set_fd(v, SVQ_VU_SET_VRING_CALL, 0, blkq_call_fd(v->q));
	}
	if (st >= ST_RUN)
		set_fd(v, SVQ_VU_SET_VRING_KICK, 0, blkq_kick_fd(v->q));
}

/* ---- the honest session ---- */

static void fill_pattern(uint64_t off, void *buf, uint64_t len)
{
	uint64_t *w = buf, i;

	for (i = 0; i < len / 8; i++)
		w[i] = (off + i * 8) ^ PATTERN;
}

static void blk_done(void *ctx, void *cookie, uint8_t status, uint32_t used_len)
{
	int *st = ctx;

	(void)cookie;
	(void)used_len;
	*st = status;
}

/* Read 4 KiB at sector 8 through the ring; check it against the image. */
static void read_through(struct vmm *v)
{
	struct blkq_seg seg = { .gpa = v->buf_gpa, .len = 4096 };
	struct blkq_req req = { .type = VIRTIO_BLK_T_IN, .sector = 8,
				.seg = &seg, .nseg = 1 };
	uint8_t got[4096], want[4096];
	struct pollfd pfd = { .fd = blkq_call_fd(v->q), .events = POLLIN };
	int status = -1, n = 0, waited;
	uint64_t ticks;

	ck_assert_int_eq(blkq_submit(v->q, &req), 0);
	for (waited = 0; n == 0 && waited < WAIT_MS; waited += 100) {
		if (poll(&pfd, 1, 100) == 1 &&
		    read(pfd.fd, &ticks, sizeof(ticks)) < 0)
			ck_assert_int_eq(errno, EAGAIN);
		n = blkq_collect(v->q, blk_done, &status);
		ck_assert_int_ge(n, 0);
	}
	ck_assert_msg(n == 1, "the read did not complete in %d ms", WAIT_MS);
	ck_assert_int_eq(status, VIRTIO_BLK_S_OK);
	ck_assert_int_eq(gmem_read(v->gm, v->buf_gpa, got, sizeof(got)), 0);
	fill_pattern(8 * 512, want, sizeof(want));
	ck_assert_msg(!memcmp(got, want, sizeof(got)), "read data differ");
}

/* Everything a VMM does with a working device, over @sock (closed here). */
static void honest_session(int sock, bool table)
{
	struct svq_vu_msg m, r;
	struct vmm v;

	vmm_open(&v, sock);
	stage_to(&v, ST_RUN, table);
	read_through(&v);
	if (v.proto & PF(CONFIG)) {
		uint64_t capacity;

		svq_vu_msg_init(&m, SVQ_VU_GET_CONFIG, SVQ_VU_CONFIG_HDR_SIZE + 8);
		m.payload.config.size = 8;
		send_fds(&v, &m, FD_NONE, 0);
		recv_reply(&v, SVQ_VU_GET_CONFIG, SVQ_VU_CONFIG_HDR_SIZE + 8, &r);
		memcpy(&capacity, r.payload.config.payload, sizeof(capacity));
		ck_assert_uint_eq(capacity, IMG_SIZE / 512);
	}
	svq_vu_msg_init(&m, SVQ_VU_GET_VRING_BASE, sizeof(struct svq_vu_vring_state));
	send_fds(&v, &m, FD_NONE, 0);
	recv_reply(&v, SVQ_VU_GET_VRING_BASE, sizeof(struct svq_vu_vring_state), &r);
	ck_assert_uint_eq(r.payload.state.index, 0);
	ck_assert_uint_eq(r.payload.state.num, 1);
	vmm_close(&v);
}

/* ---- malformed messages ---- */

struct row;
typedef void (*build_fn)(struct vmm *v, const struct row *r);

struct row {
	const char *name;
	enum stage stage;
	build_fn send;
	uint32_t req;		/* the malformed message's request */
	const char *rname;	/* its name in the log */
	uint32_t flags;		/* 0: version 1 */
	uint32_t size;		/* payload bytes on the wire */
	uint64_t a, b, c;	/* the builder's */
	unsigned int mode;	/* the builder's */
	enum fd_kind fd;
	unsigned int nfds;
	bool replies;		/* replies may come before the EOF */
	const char *why;	/* what the log line says is wrong */
};

static struct svq_vu_msg row_msg(const struct row *r)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, r->req, r->size);
	if (r->flags)
		m.hdr.flags = r->flags;
	return m;
}

/* A u64 payload: @a. */
static void b_u64(struct vmm *v, const struct row *r)
{
	struct svq_vu_msg m = row_msg(r);

	m.payload.u64 = r->a;
	send_fds(v, &m, r->fd, r->nfds);
}

/* The VMM's own features, with @a added. */
static void b_features(struct vmm *v, const struct row *r)
{
	struct svq_vu_msg m = row_msg(r);

	m.payload.u64 = vmm_features(v) | r->a;
	send_fds(v, &m, r->fd, r->nfds);
}

/* A vring state: index @a, num @b; with @mode, after the guest features
 * turned packed. */
static void b_state(struct vmm *v, const struct row *r)
{
	struct svq_vu_msg m = row_msg(r);

	if (r->mode)
		honest_u64(v, SVQ_VU_SET_FEATURES, vmm_features(v) | F_RING_PACKED);

	m.payload.state.index = (uint32_t)r->a;
	m.payload.state.num = (uint32_t)r->b;
	send_fds(v, &m, r->fd, r->nfds);
}

enum addr_mode {
	ADDR_RING,		/* the ring's own */
	ADDR_DESC_OUT,		/* the descriptor table outside guest RAM */
	ADDR_AVAIL_OUT,
	ADDR_USED_OUT,
	ADDR_GAP,		/* in the hole between the two regions */
};

static struct svq_vu_vring_addr mode_addr(struct vmm *v, unsigned int mode,
					  uint32_t idx)
{
	struct svq_vu_vring_addr a = ring_addr(v, idx);
	struct svq_vu_mem_region r0 = gm_region(v, 0);

	switch (mode) {
	case ADDR_DESC_OUT:
		a.desc = 0x10000;
		break;
	case ADDR_AVAIL_OUT:
		a.avail = FAKE_UADDR;
		break;
	case ADDR_USED_OUT:
		a.used = UINT64_MAX - 7;
		break;
	case ADDR_GAP:
		a.desc = r0.userspace_addr + r0.memory_size;
		break;
	}
	return a;
}

/* SET_VRING_ADDR: queue @a, flags @b, areas by @mode. */
static void b_addr(struct vmm *v, const struct row *r)
{
	struct svq_vu_msg m = row_msg(r);

	m.payload.addr = mode_addr(v, r->mode, (uint32_t)r->a);
	m.payload.addr.flags = (uint32_t)r->b;
	send_fds(v, &m, r->fd, r->nfds);
}

/* SET_LOG_BASE: size @a at offset @b; with ST_NONE, protocol features
 * agreed first without LOG_SHMFD. */
static void b_log(struct vmm *v, const struct row *r)
{
	struct svq_vu_msg m = row_msg(r);

	if (!v->proto) {
		uint64_t proto = get_u64(v, SVQ_VU_GET_PROTOCOL_FEATURES);

		ck_assert_uint_ne(proto & PF(LOG_SHMFD), 0);
		honest_u64(v, SVQ_VU_SET_PROTOCOL_FEATURES, proto & ~PF(LOG_SHMFD));
	}
	m.payload.log.mmap_size = r->a;
	m.payload.log.mmap_offset = r->b;
	send_fds(v, &m, r->fd, r->nfds);
}

/* GET/SET_CONFIG: offset @a, size @b, flags @c. */
static void b_config(struct vmm *v, const struct row *r)
{
	struct svq_vu_msg m = row_msg(r);

	m.payload.config.offset = (uint32_t)r->a;
	m.payload.config.size = (uint32_t)r->b;
	m.payload.config.flags = (uint32_t)r->c;
	send_fds(v, &m, r->fd, r->nfds);
}

enum kick_mode {
	KICK_NUM = 1,		/* SET_VRING_NUM first */
	KICK_ADDR = 2,		/* SET_VRING_ADDR (areas: @a) first */
	KICK_TAIL = 4,		/* the descriptor table in the last 16 bytes
				 * of guest RAM */
	KICK_MISALIGN = 8,	/* a descriptor table at an odd address */
};

/* Queue 0 set up as far as @mode says, with base @b, then its kick. */
static void b_kick(struct vmm *v, const struct row *r)
{
	struct svq_vu_vring_addr a = mode_addr(v, (unsigned int)r->a, 0);
	struct svq_vu_mem_region last = gm_region(v, 1);
	struct svq_vu_msg m = row_msg(r);

	if (r->mode & KICK_TAIL)
		a.desc = last.userspace_addr + last.memory_size - 16;
	if (r->mode & KICK_MISALIGN)
		a.desc += 1;
	if (r->mode & KICK_NUM)
		honest_state(v, SVQ_VU_SET_VRING_NUM, 0, NUM);
	honest_state(v, SVQ_VU_SET_VRING_BASE, 0, (uint32_t)r->b);
	if (r->mode & KICK_ADDR)
		set_addr(v, &a);
	m.payload.u64 = 0;
	send_fds(v, &m, FD_EVENT, 1);
}

/*
 * Guest features turned packed (no queue runs yet), queue 0 set up with
 * num @b and base @c, and its kick; with @a, the features turned split
 * again before the kick.
 */
static void b_packed(struct vmm *v, const struct row *r)
{
	struct svq_vu_vring_addr a = ring_addr(v, 0);
	struct svq_vu_msg m = row_msg(r);

	honest_u64(v, SVQ_VU_SET_FEATURES, vmm_features(v) | F_RING_PACKED);
	honest_state(v, SVQ_VU_SET_VRING_NUM, 0, (uint32_t)r->b);
	honest_state(v, SVQ_VU_SET_VRING_BASE, 0, (uint32_t)r->c);
	set_addr(v, &a);
	if (r->a)
		honest_u64(v, SVQ_VU_SET_FEATURES, vmm_features(v));
	m.payload.u64 = 0;
	send_fds(v, &m, FD_EVENT, 1);
}

enum region_mode {
	REG_GOOD,		/* a FAKE_SIZE memfd at FAKE_GPA */
	REG_ZERO,		/* size 0 */
	REG_WRAP_GPA,		/* guest range wraps */
	REG_WRAP_VMM,		/* VMM range wraps */
	REG_WRAP_OFFSET,	/* offset + size wraps */
	REG_PAST_END,		/* offset + size past the memfd's end */
	REG_END_2_64,		/* offset + size is exactly 2^64 */
	REG_GPA_OVERLAP,	/* guest range overlaps guest RAM region 0 */
	REG_VMM_OVERLAP,	/* VMM range overlaps region 0's */
	REG_GPA_TAIL,		/* guest range starts in guest RAM's last page */
};

static struct svq_vu_mem_region mode_region(struct vmm *v, unsigned int mode)
{
	struct svq_vu_mem_region w = {
		.guest_phys_addr = FAKE_GPA, .memory_size = FAKE_SIZE,
		.userspace_addr = FAKE_UADDR, .mmap_offset = 0,
	};
	struct svq_vu_mem_region r0 = gm_region(v, 0), r1 = gm_region(v, 1);

	switch (mode) {
	case REG_ZERO:
		w.memory_size = 0;
		break;
	case REG_WRAP_GPA:
		w.guest_phys_addr = UINT64_MAX - 4095;
		w.memory_size = 8192;
		break;
	case REG_WRAP_VMM:
		w.userspace_addr = UINT64_MAX - 4095;
		w.memory_size = 8192;
		break;
	case REG_WRAP_OFFSET:
		w.mmap_offset = UINT64_MAX - 4095;
		w.memory_size = 8192;
		break;
	case REG_PAST_END:
		w.mmap_offset = FAKE_SIZE / 2;
		break;
	case REG_END_2_64:
		w.mmap_offset = UINT64_MAX - 4095;
		w.memory_size = 4096;
		break;
	case REG_GPA_OVERLAP:
		w.guest_phys_addr = r0.guest_phys_addr + 4096;
		break;
	case REG_VMM_OVERLAP:
		w.userspace_addr = r0.userspace_addr + r0.memory_size - 4096;
		break;
	case REG_GPA_TAIL:
		w.guest_phys_addr = r1.guest_phys_addr + r1.memory_size - 4096;
		break;
	}
	return w;
}

/* ADD_MEM_REG of a region by @mode, with @nfds fds of @fd. */
static void b_add(struct vmm *v, const struct row *r)
{
	struct svq_vu_msg m = row_msg(r);

	m.payload.mem_reg.region = mode_region(v, r->mode);
	send_fds(v, &m, r->fd, r->nfds);
}

/*
 * SET_MEM_TABLE of @a regions and @nfds fds: guest RAM's region 0 and its
 * memfd first when @b is set, then regions by @mode with fds of @fd (apart
 * from one another). A @size of 0: the table's own.
 */
static void b_table(struct vmm *v, const struct row *r)
{
	struct svq_vu_msg m = row_msg(r);
	unsigned int i, n = (unsigned int)r->a;
	int rc;

	m.payload.mem.nregions = n;
	for (i = 0; i < n && i < SVQ_VU_MEM_REGIONS; i++) {
		m.payload.mem.regions[i] = i == 0 && r->b ? gm_region(v, 0) :
					   mode_region(v, r->mode);
		if (!r->b && i > 0) {
			m.payload.mem.regions[i].guest_phys_addr += i * (1ull << 30);
			m.payload.mem.regions[i].userspace_addr += i * (1ull << 30);
		}
	}
	if (!r->size)
		m.hdr.size = 8 + n * (uint32_t)sizeof(struct svq_vu_mem_region);
	for (i = 0; i < r->nfds; i++)
		m.fds[i] = i == 0 && r->b ? fcntl(gmem_fd(v->gm), F_DUPFD_CLOEXEC, 0) :
			   make_fd(r->fd);
	m.nfds = r->nfds;
	rc = svq_vu_send(v->sock, &m);
	for (i = 0; i < r->nfds; i++)
		close(m.fds[i]);
	ck_assert_msg(rc == 0, "send: %s", strerror(-rc));
}

/* REM_MEM_REG of a region by @mode; @a: guest RAM region 0 with its size
 * changed by @b. */
static void b_rem(struct vmm *v, const struct row *r)
{
	struct svq_vu_msg m = row_msg(r);

	m.payload.mem_reg.region = r->a ? gm_region(v, 0) : mode_region(v, r->mode);
	m.payload.mem_reg.region.memory_size += r->b;
	send_fds(v, &m, r->fd, r->nfds);
}

/* PROXY_MEM_SLOTS regions in all (guest RAM's two among them), then one more. */
static void b_slots(struct vmm *v, const struct row *r)
{
	struct svq_vu_mem_region w = mode_region(v, REG_GOOD);
	unsigned int i;
	int fd = memfd(FAKE_SIZE);

	for (i = gmem_nr_regions(v->gm); i < PROXY_MEM_SLOTS; i++) {
		add_region(v, &w, fd);
		w.guest_phys_addr += FAKE_SIZE;
		w.userspace_addr += FAKE_SIZE;
	}
	close(fd);
	b_add(v, r);
}

/*
 * The same request without payload (@a: with NEED_REPLY), over and over,
 * never reading what comes back, until the proxy closes the session. A
 * 12-byte send on a unix stream socket goes whole or not at all, so the
 * stream stays in step whenever the VMM has to wait.
 */
static void b_flood(struct vmm *v, const struct row *r)
{
	struct svq_vu_hdr h = { r->req, SVQ_VU_VERSION, 0 };
	struct pollfd pfd = { .fd = v->sock, .events = POLLOUT };
	unsigned long sent = 0;
	int waited = 0;
	ssize_t n;

	if (r->a)
		h.flags |= SVQ_VU_FLAG_NEED_REPLY;
	while (waited < 3 * WAIT_MS) {
		n = send(v->sock, &h, sizeof(h), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)sizeof(h)) {
			sent++;
			continue;
		}
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return;
		ck_assert_msg(n < 0 && errno == EAGAIN, "send: %zd: %s", n,
			      strerror(errno));
		poll(&pfd, 1, 100);
		waited += 100;
	}
	ck_abort_msg("%lu requests sent, and the session is still open", sent);
}

/* ---- raw bytes, for what the codec will not send ---- */

static void raw_send(int sock, const void *buf, size_t len, enum fd_kind kind,
		     unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 16)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	int fds[16];
	unsigned int i;
	ssize_t n;

	ck_assert_uint_le(nfds, 16);
	for (i = 0; i < nfds; i++)
		fds[i] = make_fd(kind);
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
	n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	ck_assert_msg(n == (ssize_t)len, "sendmsg: %zd: %s", n, strerror(errno));
}

enum raw_mode {
	RAW_EOF = 1,		/* shut the VMM's writing side after */
};

/*
 * The header (request, flags, size @size) and @a bytes of message in all
 * (header included, payload zeros), with @nfds fds of @fd on the first
 * byte; then EOF if @mode says so, else silence.
 */
static void b_raw(struct vmm *v, const struct row *r)
{
	struct svq_vu_hdr h = { r->req, r->flags ? r->flags : SVQ_VU_VERSION,
				r->size };
	size_t len = (size_t)r->a;
	uint8_t *buf = calloc(1, len > sizeof(h) ? len : sizeof(h));

	ck_assert_ptr_nonnull(buf);
	memcpy(buf, &h, sizeof(h));
	raw_send(v->sock, buf, len, r->fd, r->nfds);
	free(buf);
	if (r->mode & RAW_EOF)
		ck_assert_int_eq(shutdown(v->sock, SHUT_WR), 0);
}

/* ---- the table ---- */

#define RQ(r)		.req = SVQ_VU_##r, .rname = #r
#define RQN(n, s)	.req = (n), .rname = (s)
#define NOT_OFFERED	"not offered to the VMM, or unknown"

static const struct row rows[] = {
	/* Framing: cut short, oversized, too many fds. */
	{ "header cut, then silence", ST_NONE, b_raw, RQ(GET_FEATURES),
	  .a = 6, .why = "incomplete" },
	{ "header cut, then EOF", ST_PROTO, b_raw, RQ(SET_FEATURES),
	  .size = 8, .a = 7, .mode = RAW_EOF, .why = "truncated" },
	{ "payload short, then silence", ST_PROTO, b_raw, RQ(SET_FEATURES),
	  .size = 8, .a = 12 + 4, .why = "incomplete" },
	{ "payload short, then EOF", ST_PROTO, b_raw, RQ(SET_PROTOCOL_FEATURES),
	  .size = 8, .a = 12 + 7, .mode = RAW_EOF, .why = "truncated" },
	{ "EOF in a table that came with fds", ST_PROTO, b_raw,
	  RQ(SET_MEM_TABLE), .size = 8 + 2 * 32, .a = 12 + 20, .mode = RAW_EOF,
	  .fd = FD_MEMFD, .nfds = 2, .why = "truncated" },
	{ "EOF in a kick after its fd", ST_MEM, b_raw, RQ(SET_VRING_KICK),
	  .size = 8, .a = 12, .mode = RAW_EOF, .fd = FD_EVENT, .nfds = 1,
	  .why = "truncated" },
	{ "payload past the largest message", ST_NONE, b_raw, RQ(GET_FEATURES),
	  .size = 300, .a = 12 + 300, .why = "payload of 300 bytes is too large" },
	{ "payload past the largest, with an fd", ST_MEM, b_raw,
	  RQ(SET_VRING_KICK), .size = 4096, .a = 12 + 4096, .fd = FD_EVENT,
	  .nfds = 1, .why = "payload of 4096 bytes is too large" },
	{ "payload size of a megabyte", ST_PROTO, b_raw, RQ(SET_MEM_TABLE),
	  .size = 1u << 20, .a = 12, .fd = FD_MEMFD, .nfds = 1,
	  .why = "payload of 1048576 bytes is too large" },
	{ "payload size 2^32-1", ST_NONE, b_raw, RQ(SET_FEATURES),
	  .size = UINT32_MAX, .a = 12, .why = "payload of 4294967295 bytes is too large" },
	{ "more fds than any message takes", ST_PROTO, b_raw, RQ(SET_MEM_TABLE),
	  .size = 8, .a = 12 + 8, .fd = FD_MEMFD, .nfds = 12,
	  .why = "too many fds" },

	{ "requests whose replies are never read", ST_NONE, b_flood,
	  RQ(GET_FEATURES), .replies = true,
	  .why = "reply not sent: Connection timed out" },
	{ "requests whose acks are never read", ST_PROTO, b_flood,
	  RQ(SET_OWNER), .a = 1, .replies = true,
	  .why = "reply not sent: Connection timed out" },

	/* Header flags. */
	{ "REPLY flag on a request", ST_NONE, b_u64, RQ(GET_FEATURES),
	  .flags = SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY, .why = "flags 0x5" },
	{ "REPLY flag on a table with fds", ST_PROTO, b_table, RQ(SET_MEM_TABLE),
	  .flags = SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY, .a = 1,
	  .mode = REG_GOOD, .fd = FD_MEMFD, .nfds = 1, .why = "flags 0x5" },
	{ "version 0", ST_NONE, b_u64, RQ(GET_FEATURES),
	  .flags = SVQ_VU_FLAG_NEED_REPLY, .why = "flags 0x8" },
	{ "version 0, a high flag bit", ST_NONE, b_u64, RQ(GET_FEATURES),
	  .flags = 0x10000, .why = "flags 0x10000" },
	{ "version 2", ST_PROTO, b_u64, RQ(SET_FEATURES), .size = 8,
	  .flags = 2, .a = F_VERSION_1, .why = "flags 0x2" },
	{ "version 3", ST_NONE, b_u64, RQ(GET_PROTOCOL_FEATURES), .flags = 3,
	  .why = "flags 0x3" },
	{ "unknown flag bit", ST_PROTO, b_u64, RQ(SET_OWNER), .flags = 0x11,
	  .why = "flags 0x11" },
	{ "top flag bit", ST_NONE, b_u64, RQ(GET_FEATURES),
	  .flags = 0x80000009u, .why = "flags 0x80000009" },

	/* Payload sizes that disagree with the request. */
	{ "GET_FEATURES with a payload", ST_NONE, b_u64, RQ(GET_FEATURES),
	  .size = 8, .why = "payload of 8 bytes, not 0" },
	{ "SET_FEATURES of 4 bytes", ST_PROTO, b_u64, RQ(SET_FEATURES),
	  .size = 4, .a = F_VERSION_1, .why = "payload of 4 bytes, not 8" },
	{ "SET_FEATURES of 16 bytes", ST_PROTO, b_u64, RQ(SET_FEATURES),
	  .size = 16, .a = F_VERSION_1, .why = "payload of 16 bytes, not 8" },
	{ "SET_OWNER with a payload", ST_NONE, b_u64, RQ(SET_OWNER),
	  .size = 8, .why = "payload of 8 bytes, not 0" },
	{ "RESET_OWNER with a payload", ST_PROTO, b_u64, RQ(RESET_OWNER),
	  .size = 4, .why = "payload of 4 bytes, not 0" },
	{ "RESET_DEVICE with a payload", ST_PROTO, b_u64, RQ(RESET_DEVICE),
	  .size = 8, .why = "payload of 8 bytes, not 0" },
	{ "GET_PROTOCOL_FEATURES with a payload", ST_NONE, b_u64,
	  RQ(GET_PROTOCOL_FEATURES), .size = 8, .why = "payload of 8 bytes, not 0" },
	{ "SET_PROTOCOL_FEATURES of 0 bytes", ST_NONE, b_u64,
	  RQ(SET_PROTOCOL_FEATURES), .size = 0, .why = "payload of 0 bytes, not 8" },
	{ "GET_QUEUE_NUM with a payload", ST_PROTO, b_u64, RQ(GET_QUEUE_NUM),
	  .size = 8, .why = "payload of 8 bytes, not 0" },
	{ "GET_MAX_MEM_SLOTS with a payload", ST_PROTO, b_u64,
	  RQ(GET_MAX_MEM_SLOTS), .size = 1, .why = "payload of 1 bytes, not 0" },
	{ "SET_MEM_TABLE shorter than its count", ST_PROTO, b_table,
	  RQ(SET_MEM_TABLE), .size = 4, .why = "0 regions in 4 bytes" },
	{ "SET_MEM_TABLE: 2 regions in the bytes of 1", ST_PROTO, b_table,
	  RQ(SET_MEM_TABLE), .size = 8 + 32, .a = 2, .fd = FD_MEMFD, .nfds = 2,
	  .why = "2 regions in 40 bytes" },
	{ "SET_MEM_TABLE: 1 region in the bytes of 2", ST_PROTO, b_table,
	  RQ(SET_MEM_TABLE), .size = 8 + 64, .a = 1, .fd = FD_MEMFD, .nfds = 1,
	  .why = "1 regions in 72 bytes" },
	{ "SET_MEM_TABLE: 9 regions", ST_PROTO, b_table, RQ(SET_MEM_TABLE),
	  .size = 8 + 8 * 32, .a = 9, .fd = FD_MEMFD, .nfds = 8,
	  .why = "9 regions in 264 bytes" },
	{ "SET_MEM_TABLE: 2^32-1 regions", ST_PROTO, b_table, RQ(SET_MEM_TABLE),
	  .size = 8 + 32, .a = UINT32_MAX, .fd = FD_MEMFD, .nfds = 1,
	  .why = "4294967295 regions in 40 bytes" },
	{ "ADD_MEM_REG of 32 bytes", ST_PROTO, b_add, RQ(ADD_MEM_REG),
	  .size = 32, .fd = FD_MEMFD, .nfds = 1, .why = "payload of 32 bytes, not 40" },
	{ "REM_MEM_REG of 48 bytes", ST_MEM, b_rem, RQ(REM_MEM_REG),
	  .size = 48, .a = 1, .why = "payload of 48 bytes, not 40" },
	{ "SET_VRING_NUM of 4 bytes", ST_FEAT, b_state, RQ(SET_VRING_NUM),
	  .size = 4, .b = NUM, .why = "payload of 4 bytes, not 8" },
	{ "SET_VRING_BASE of 12 bytes", ST_FEAT, b_state, RQ(SET_VRING_BASE),
	  .size = 12, .why = "payload of 12 bytes, not 8" },
	{ "SET_VRING_ENABLE of 4 bytes", ST_FEAT, b_state, RQ(SET_VRING_ENABLE),
	  .size = 4, .b = 1, .why = "payload of 4 bytes, not 8" },
	{ "SET_VRING_ADDR of 32 bytes", ST_MEM, b_addr, RQ(SET_VRING_ADDR),
	  .size = 32, .why = "payload of 32 bytes, not 40" },
	{ "GET_VRING_BASE of 4 bytes", ST_RUN, b_state, RQ(GET_VRING_BASE),
	  .size = 4, .why = "payload of 4 bytes, not 8" },
	{ "SET_VRING_KICK of 4 bytes", ST_RING, b_u64, RQ(SET_VRING_KICK),
	  .size = 4, .fd = FD_EVENT, .nfds = 1, .why = "payload of 4 bytes, not 8" },
	{ "SET_VRING_CALL of 12 bytes", ST_FEAT, b_u64, RQ(SET_VRING_CALL),
	  .size = 12, .fd = FD_EVENT, .nfds = 1, .why = "payload of 12 bytes, not 8" },
	{ "SET_VRING_ERR of 0 bytes", ST_FEAT, b_u64, RQ(SET_VRING_ERR),
	  .size = 0, .fd = FD_EVENT, .nfds = 1, .why = "payload of 0 bytes, not 8" },
	{ "NET_SET_MTU of 4 bytes", ST_PROTO, b_u64,
	  RQN(VU_NET_SET_MTU, "NET_SET_MTU"), .size = 4, .a = 1500,
	  .why = "payload of 4 bytes, not 8" },

	/* GET_CONFIG / SET_CONFIG. */
	{ "GET_CONFIG shorter than its header", ST_PROTO, b_config,
	  RQ(GET_CONFIG), .size = 8, .b = 8,
	  .why = "config of 0 bytes at 0 in a payload of 8" },
	{ "GET_CONFIG: size says 16, payload has 8", ST_PROTO, b_config,
	  RQ(GET_CONFIG), .size = 12 + 8, .b = 16,
	  .why = "config of 16 bytes at 0 in a payload of 20" },
	{ "GET_CONFIG: size says 4, payload has 8", ST_PROTO, b_config,
	  RQ(GET_CONFIG), .size = 12 + 8, .b = 4,
	  .why = "config of 4 bytes at 0 in a payload of 20" },
	{ "GET_CONFIG of 300 bytes", ST_PROTO, b_config, RQ(GET_CONFIG),
	  .size = 12 + 256, .b = 300,
	  .why = "config of 300 bytes at 0 in a payload of 268" },
	{ "SET_CONFIG of 257 bytes", ST_PROTO, b_config, RQ(SET_CONFIG),
	  .size = 12 + 256, .b = 257,
	  .why = "config of 257 bytes at 0 in a payload of 268" },
	{ "SET_CONFIG of 0 bytes", ST_PROTO, b_config, RQ(SET_CONFIG),
	  .size = 12, .b = 0, .why = "config of 0 bytes at 0 in a payload of 12" },
	{ "GET_CONFIG: offset + size wraps", ST_PROTO, b_config, RQ(GET_CONFIG),
	  .size = 12 + 256, .a = UINT32_MAX - 255 + 1, .b = 256,
	  .why = "config of 256 bytes at 4294967041" },
	{ "SET_CONFIG with unknown flags", ST_PROTO, b_config, RQ(SET_CONFIG),
	  .size = 12 + 4, .b = 4, .c = 2, .why = "flags 0x2" },
	{ "GET_CONFIG with an fd", ST_PROTO, b_config, RQ(GET_CONFIG),
	  .size = 12 + 4, .b = 4, .fd = FD_MEMFD, .nfds = 1,
	  .why = "1 fds, not 0" },
	{ "GET_CONFIG before CONFIG is agreed", ST_NONE, b_config, RQ(GET_CONFIG),
	  .size = 12 + 4, .b = 4, .why = "CONFIG was not negotiated" },

	/* Fd counts. */
	{ "GET_FEATURES with an fd", ST_NONE, b_u64, RQ(GET_FEATURES),
	  .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "SET_FEATURES with 8 fds", ST_PROTO, b_features, RQ(SET_FEATURES),
	  .size = 8, .fd = FD_EVENT, .nfds = 8, .why = "8 fds, not 0" },
	{ "SET_OWNER with an fd", ST_NONE, b_u64, RQ(SET_OWNER),
	  .fd = FD_MEMFD, .nfds = 1, .why = "1 fds, not 0" },
	{ "SET_PROTOCOL_FEATURES with an fd", ST_NONE, b_u64,
	  RQ(SET_PROTOCOL_FEATURES), .size = 8, .a = PF(REPLY_ACK),
	  .fd = FD_PIPE, .nfds = 1, .why = "1 fds, not 0" },
	{ "GET_MAX_MEM_SLOTS with an fd", ST_PROTO, b_u64, RQ(GET_MAX_MEM_SLOTS),
	  .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "GET_PROTOCOL_FEATURES with an fd", ST_NONE, b_u64,
	  RQ(GET_PROTOCOL_FEATURES), .fd = FD_SOCK, .nfds = 1,
	  .why = "1 fds, not 0" },
	{ "GET_QUEUE_NUM with an fd", ST_PROTO, b_u64, RQ(GET_QUEUE_NUM),
	  .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "RESET_OWNER with an fd", ST_RUN, b_u64, RQ(RESET_OWNER),
	  .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "RESET_DEVICE with an fd", ST_PROTO, b_u64, RQ(RESET_DEVICE),
	  .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "SET_CONFIG with an fd", ST_PROTO, b_config, RQ(SET_CONFIG),
	  .size = 12 + 4, .b = 4, .fd = FD_EVENT, .nfds = 1,
	  .why = "1 fds, not 0" },
	{ "NET_SET_MTU with an fd", ST_PROTO, b_u64,
	  RQN(VU_NET_SET_MTU, "NET_SET_MTU"), .size = 8, .a = 1500,
	  .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "SET_VRING_NUM with an fd", ST_FEAT, b_state, RQ(SET_VRING_NUM),
	  .size = 8, .b = NUM, .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "SET_VRING_ADDR with an fd", ST_MEM, b_addr, RQ(SET_VRING_ADDR),
	  .size = 40, .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "SET_VRING_BASE with 2 fds", ST_FEAT, b_state, RQ(SET_VRING_BASE),
	  .size = 8, .fd = FD_EVENT, .nfds = 2, .why = "2 fds, not 0" },
	{ "SET_VRING_ENABLE with an fd", ST_RUN, b_state, RQ(SET_VRING_ENABLE),
	  .size = 8, .b = 1, .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "GET_VRING_BASE with an fd", ST_RUN, b_state, RQ(GET_VRING_BASE),
	  .size = 8, .fd = FD_EVENT, .nfds = 1, .why = "1 fds, not 0" },
	{ "SET_VRING_KICK without an fd", ST_RING, b_u64, RQ(SET_VRING_KICK),
	  .size = 8, .why = "0 fds without the no-fd flag" },
	{ "SET_VRING_KICK with 2 fds", ST_RING, b_u64, RQ(SET_VRING_KICK),
	  .size = 8, .fd = FD_EVENT, .nfds = 2, .why = "2 fds without the no-fd flag" },
	{ "SET_VRING_CALL with the no-fd flag and an fd", ST_RING, b_u64,
	  RQ(SET_VRING_CALL), .size = 8, .a = SVQ_VU_VRING_NOFD, .fd = FD_EVENT,
	  .nfds = 1, .why = "1 fds with the no-fd flag" },
	{ "SET_VRING_ERR with the no-fd flag and an fd", ST_FEAT, b_u64,
	  RQ(SET_VRING_ERR), .size = 8, .a = SVQ_VU_VRING_NOFD, .fd = FD_EVENT,
	  .nfds = 1, .why = "1 fds with the no-fd flag" },
	{ "SET_VRING_KICK with the no-fd flag", ST_RING, b_u64, RQ(SET_VRING_KICK),
	  .size = 8, .a = SVQ_VU_VRING_NOFD, .why = "no kick fd: polling is not supported" },
	{ "SET_VRING_CALL with unknown bits", ST_RING, b_u64, RQ(SET_VRING_CALL),
	  .size = 8, .a = 1ull << 9, .fd = FD_EVENT, .nfds = 1,
	  .why = "unknown bits in 0x200" },
	{ "SET_VRING_KICK with a pipe", ST_RING, b_u64, RQ(SET_VRING_KICK),
	  .size = 8, .fd = FD_PIPE, .nfds = 1, .why = "the fd is not an eventfd" },
	{ "SET_VRING_CALL with a memfd", ST_RING, b_u64, RQ(SET_VRING_CALL),
	  .size = 8, .fd = FD_MEMFD, .nfds = 1, .why = "the fd is not an eventfd" },
	{ "SET_VRING_ERR with /dev/null", ST_RING, b_u64, RQ(SET_VRING_ERR),
	  .size = 8, .fd = FD_NULL, .nfds = 1, .why = "the fd is not an eventfd" },
	{ "SET_MEM_TABLE: 2 regions, 1 fd", ST_PROTO, b_table, RQ(SET_MEM_TABLE),
	  .a = 2, .fd = FD_MEMFD, .nfds = 1, .why = "2 regions with 1 fds" },
	{ "SET_MEM_TABLE: 1 region, 2 fds", ST_PROTO, b_table, RQ(SET_MEM_TABLE),
	  .a = 1, .fd = FD_MEMFD, .nfds = 2, .why = "1 regions with 2 fds" },
	{ "SET_MEM_TABLE: no region, 1 fd", ST_PROTO, b_table, RQ(SET_MEM_TABLE),
	  .a = 0, .fd = FD_MEMFD, .nfds = 1, .why = "0 regions with 1 fds" },
	{ "SET_MEM_TABLE: 1 region, no fd", ST_PROTO, b_table, RQ(SET_MEM_TABLE),
	  .a = 1, .why = "1 regions with 0 fds" },
	{ "ADD_MEM_REG without an fd", ST_PROTO, b_add, RQ(ADD_MEM_REG),
	  .size = 40, .why = "0 fds, not 1" },
	{ "ADD_MEM_REG with 2 fds", ST_PROTO, b_add, RQ(ADD_MEM_REG),
	  .size = 40, .fd = FD_MEMFD, .nfds = 2, .why = "2 fds, not 1" },
	{ "REM_MEM_REG with 2 fds", ST_MEM, b_rem, RQ(REM_MEM_REG),
	  .size = 40, .a = 1, .fd = FD_MEMFD, .nfds = 2, .why = "2 fds" },

	/* Region tables. */
	{ "ADD_MEM_REG of size 0", ST_PROTO, b_add, RQ(ADD_MEM_REG), .size = 40,
	  .mode = REG_ZERO, .fd = FD_MEMFD, .nfds = 1, .why = "size 0" },
	{ "SET_MEM_TABLE with a region of size 0", ST_PROTO, b_table,
	  RQ(SET_MEM_TABLE), .a = 2, .b = 1, .mode = REG_ZERO, .fd = FD_MEMFD,
	  .nfds = 2, .why = "size 0" },
	{ "SET_MEM_TABLE: guest ranges overlap", ST_PROTO, b_table,
	  RQ(SET_MEM_TABLE), .a = 2, .b = 1, .mode = REG_GPA_OVERLAP,
	  .fd = FD_MEMFD, .nfds = 2, .why = "overlap" },
	{ "SET_MEM_TABLE: VMM ranges overlap", ST_PROTO, b_table,
	  RQ(SET_MEM_TABLE), .a = 2, .b = 1, .mode = REG_VMM_OVERLAP,
	  .fd = FD_MEMFD, .nfds = 2, .why = "regions at VMM address" },
	{ "ADD_MEM_REG: guest range overlaps guest RAM", ST_MEM, b_add,
	  RQ(ADD_MEM_REG), .size = 40, .mode = REG_GPA_OVERLAP, .fd = FD_MEMFD,
	  .nfds = 1, .why = "overlap" },
	{ "ADD_MEM_REG: guest range starts in guest RAM's last page", ST_MEM,
	  b_add, RQ(ADD_MEM_REG), .size = 40, .mode = REG_GPA_TAIL, .fd = FD_MEMFD,
	  .nfds = 1, .why = "overlap" },
	{ "ADD_MEM_REG: VMM range overlaps guest RAM's", ST_MEM, b_add,
	  RQ(ADD_MEM_REG), .size = 40, .mode = REG_VMM_OVERLAP, .fd = FD_MEMFD,
	  .nfds = 1, .why = "regions at VMM address" },
	{ "ADD_MEM_REG: guest range wraps", ST_PROTO, b_add, RQ(ADD_MEM_REG),
	  .size = 40, .mode = REG_WRAP_GPA, .fd = FD_MEMFD, .nfds = 1,
	  .why = "wraps around the address space" },
	{ "ADD_MEM_REG: VMM range wraps", ST_PROTO, b_add, RQ(ADD_MEM_REG),
	  .size = 40, .mode = REG_WRAP_VMM, .fd = FD_MEMFD, .nfds = 1,
	  .why = "wraps around the address space" },
	{ "SET_MEM_TABLE: offset + size wraps", ST_PROTO, b_table,
	  RQ(SET_MEM_TABLE), .a = 1, .mode = REG_WRAP_OFFSET, .fd = FD_MEMFD,
	  .nfds = 1, .why = "wraps around the address space" },
	{ "ADD_MEM_REG: past the end of the memfd", ST_PROTO, b_add,
	  RQ(ADD_MEM_REG), .size = 40, .mode = REG_PAST_END, .fd = FD_MEMFD,
	  .nfds = 1, .why = "past the end of its fd" },
	{ "SET_MEM_TABLE: past the end of the memfd", ST_PROTO, b_table,
	  RQ(SET_MEM_TABLE), .a = 2, .b = 1, .mode = REG_PAST_END, .fd = FD_MEMFD,
	  .nfds = 2, .why = "past the end of its fd" },
	{ "ADD_MEM_REG: offset + size is 2^64", ST_PROTO, b_add, RQ(ADD_MEM_REG),
	  .size = 40, .mode = REG_END_2_64, .fd = FD_MEMFD, .nfds = 1,
	  .why = "past the end of its fd" },
	{ "ADD_MEM_REG of a pipe", ST_PROTO, b_add, RQ(ADD_MEM_REG), .size = 40,
	  .fd = FD_PIPE, .nfds = 1, .why = "fd is not a memfd or a file" },
	{ "ADD_MEM_REG of /dev/null", ST_PROTO, b_add, RQ(ADD_MEM_REG),
	  .size = 40, .fd = FD_NULL, .nfds = 1, .why = "fd is not a memfd or a file" },
	{ "SET_MEM_TABLE with an eventfd", ST_PROTO, b_table, RQ(SET_MEM_TABLE),
	  .a = 1, .fd = FD_EVENT, .nfds = 1, .why = "fd is not a memfd or a file" },
	{ "SET_MEM_TABLE with a socket", ST_PROTO, b_table, RQ(SET_MEM_TABLE),
	  .a = 1, .fd = FD_SOCK, .nfds = 1, .why = "fd is not a memfd or a file" },
	{ "ADD_MEM_REG of a read-only memfd", ST_PROTO, b_add, RQ(ADD_MEM_REG),
	  .size = 40, .fd = FD_RDONLY, .nfds = 1, .why = "mmap" },
	{ "ADD_MEM_REG past the slots", ST_MEM, b_slots, RQ(ADD_MEM_REG),
	  .size = 40, .mode = REG_GOOD, .fd = FD_MEMFD, .nfds = 1,
	  .why = "more than 32 regions" },
	{ "ADD_MEM_REG before CONFIGURE_MEM_SLOTS", ST_NONE, b_add,
	  RQ(ADD_MEM_REG), .size = 40, .fd = FD_MEMFD, .nfds = 1,
	  .why = "CONFIGURE_MEM_SLOTS was not negotiated" },
	{ "REM_MEM_REG of an unknown region", ST_MEM, b_rem, RQ(REM_MEM_REG),
	  .size = 40, .mode = REG_GOOD,
	  .why = "no region at guest 0x1000000 size 0x10000" },
	{ "REM_MEM_REG of a region at a size it has not", ST_MEM, b_rem,
	  RQ(REM_MEM_REG), .size = 40, .a = 1, .b = 4096, .fd = FD_MEMFD,
	  .nfds = 1, .why = "no region at guest 0x100000 size 0x81000" },
	{ "REM_MEM_REG before CONFIGURE_MEM_SLOTS", ST_NONE, b_rem,
	  RQ(REM_MEM_REG), .size = 40, .why = "CONFIGURE_MEM_SLOTS was not negotiated" },

	/* Rings and queues. */
	{ "SET_VRING_ADDR: descriptors outside guest RAM", ST_MEM, b_addr,
	  RQ(SET_VRING_ADDR), .size = 40, .mode = ADDR_DESC_OUT,
	  .why = "is not in guest RAM" },
	{ "SET_VRING_ADDR: avail ring outside guest RAM", ST_MEM, b_addr,
	  RQ(SET_VRING_ADDR), .size = 40, .mode = ADDR_AVAIL_OUT,
	  .why = "is not in guest RAM" },
	{ "SET_VRING_ADDR: used ring at the top of the address space", ST_MEM,
	  b_addr, RQ(SET_VRING_ADDR), .size = 40, .mode = ADDR_USED_OUT,
	  .why = "is not in guest RAM" },
	{ "SET_VRING_ADDR: descriptors in the hole between regions", ST_MEM,
	  b_addr, RQ(SET_VRING_ADDR), .size = 40, .mode = ADDR_GAP,
	  .why = "is not in guest RAM" },
	{ "SET_VRING_ADDR with an unknown flag", ST_MEM, b_addr, RQ(SET_VRING_ADDR),
	  .size = 40, .b = 2, .why = "flags 0x2" },
	{ "a ring that runs past the end of guest RAM", ST_MEM, b_kick,
	  RQ(SET_VRING_KICK), .size = 8, .mode = KICK_NUM | KICK_ADDR | KICK_TAIL,
	  .why = "does not fit in guest RAM" },
	{ "a misaligned descriptor table", ST_MEM, b_kick, RQ(SET_VRING_KICK),
	  .size = 8, .mode = KICK_NUM | KICK_ADDR | KICK_MISALIGN,
	  .why = "misaligned" },
	{ "a ring set before guest RAM, none given", ST_FEAT, b_kick,
	  RQ(SET_VRING_KICK), .size = 8, .mode = KICK_NUM | KICK_ADDR,
	  .why = "is not in guest RAM" },
	{ "a split ring's base past 16 bits", ST_MEM, b_kick, RQ(SET_VRING_KICK),
	  .size = 8, .mode = KICK_NUM | KICK_ADDR, .b = 0x10000,
	  .why = "queue 0: base 0x10000 of a split ring" },
	{ "a packed ring's base past the ring", ST_MEM, b_packed,
	  RQ(SET_VRING_KICK), .size = 8, .b = NUM, .c = 100 | 1u << 15,
	  .why = "the base is past the ring" },
	{ "a packed ring's used position ahead of avail", ST_MEM, b_packed,
	  RQ(SET_VRING_KICK), .size = 8, .b = NUM,
	  .c = 1u << 15 | (10u | 1u << 15) << 16,
	  .why = "the base is past the ring" },
	{ "a packed ring's size, features turned split", ST_MEM, b_packed,
	  RQ(SET_VRING_KICK), .size = 8, .a = 1, .b = 48, .c = 0,
	  .why = "ring size 48 of a split ring" },
	{ "SET_VRING_NUM 40000 on a packed ring", ST_FEAT, b_state,
	  RQ(SET_VRING_NUM), .size = 8, .b = 40000, .mode = 1,
	  .why = "ring size 40000" },
	{ "SET_VRING_NUM 0 asking for an ack", ST_FEAT, b_state, RQ(SET_VRING_NUM),
	  .flags = SVQ_VU_VERSION | SVQ_VU_FLAG_NEED_REPLY, .size = 8, .b = 0,
	  .why = "ring size 0" },
	{ "SET_VRING_NUM 0", ST_FEAT, b_state, RQ(SET_VRING_NUM), .size = 8,
	  .b = 0, .why = "ring size 0" },
	{ "SET_VRING_NUM 65536", ST_FEAT, b_state, RQ(SET_VRING_NUM), .size = 8,
	  .b = 65536, .why = "ring size 65536" },
	{ "SET_VRING_NUM 2^32-1", ST_FEAT, b_state, RQ(SET_VRING_NUM), .size = 8,
	  .b = UINT32_MAX, .why = "ring size 4294967295" },
	{ "SET_VRING_NUM 100 on a split ring", ST_FEAT, b_state, RQ(SET_VRING_NUM),
	  .size = 8, .b = 100, .why = "ring size 100" },
	{ "SET_VRING_NUM: queue past the device's", ST_FEAT, b_state,
	  RQ(SET_VRING_NUM), .size = 8, .a = NQ, .b = NUM,
	  .why = "queue 2: the device has 2" },
	{ "SET_VRING_BASE: queue 2^32-1", ST_FEAT, b_state, RQ(SET_VRING_BASE),
	  .size = 8, .a = UINT32_MAX, .why = "queue 4294967295: the device has 2" },
	{ "SET_VRING_ADDR: queue 1000", ST_MEM, b_addr, RQ(SET_VRING_ADDR),
	  .size = 40, .a = 1000, .why = "queue 1000: the device has 2" },
	{ "SET_VRING_ENABLE: queue 256", ST_FEAT, b_state, RQ(SET_VRING_ENABLE),
	  .size = 8, .a = 256, .b = 1, .why = "queue 256: the device has 2" },
	{ "GET_VRING_BASE: queue 2", ST_RUN, b_state, RQ(GET_VRING_BASE),
	  .size = 8, .a = NQ, .why = "queue 2: the device has 2" },
	{ "SET_VRING_KICK: queue 255", ST_RING, b_u64, RQ(SET_VRING_KICK),
	  .size = 8, .a = 255, .fd = FD_EVENT, .nfds = 1,
	  .why = "queue 255: the device has 2" },
	{ "SET_VRING_CALL: queue 2", ST_FEAT, b_u64, RQ(SET_VRING_CALL),
	  .size = 8, .a = NQ, .fd = FD_EVENT, .nfds = 1,
	  .why = "queue 2: the device has 2" },
	{ "SET_VRING_ERR: queue 2 with no fd", ST_FEAT, b_u64, RQ(SET_VRING_ERR),
	  .size = 8, .a = NQ | SVQ_VU_VRING_NOFD, .why = "queue 2: the device has 2" },
	{ "SET_VRING_ENABLE 2", ST_RUN, b_state, RQ(SET_VRING_ENABLE), .size = 8,
	  .b = 2, .why = "queue 0: enable 2" },
	{ "SET_VRING_NUM on a running queue", ST_RUN, b_state, RQ(SET_VRING_NUM),
	  .size = 8, .b = NUM, .why = "queue 0 runs" },
	{ "SET_VRING_ADDR moving a running queue", ST_RUN, b_addr,
	  RQ(SET_VRING_ADDR), .size = 40, .mode = ADDR_DESC_OUT,
	  .why = "queue 0 runs" },
	{ "SET_VRING_ADDR with a flag past LOG", ST_RUN, b_addr,
	  RQ(SET_VRING_ADDR), .size = 40, .b = 3, .why = "queue 0: flags 0x3" },
	{ "SET_VRING_BASE on a running queue", ST_RUN, b_state, RQ(SET_VRING_BASE),
	  .size = 8, .why = "queue 0 runs" },
	{ "SET_FEATURES changed on a running queue", ST_RUN, b_u64,
	  RQ(SET_FEATURES), .size = 8, .a = F_PROTOCOL,
	  .why = "features changed while queue 0 runs" },
	{ "a kick before SET_FEATURES", ST_PROTO, b_kick, RQ(SET_VRING_KICK),
	  .size = 8, .mode = KICK_NUM | KICK_ADDR,
	  .why = "started before SET_FEATURES" },
	{ "a kick before SET_VRING_NUM", ST_MEM, b_kick, RQ(SET_VRING_KICK),
	  .size = 8, .mode = KICK_ADDR, .why = "started before SET_VRING_NUM" },
	{ "a kick before SET_VRING_ADDR", ST_MEM, b_kick, RQ(SET_VRING_KICK),
	  .size = 8, .mode = KICK_NUM, .why = "started before SET_VRING_ADDR" },

	/* Features. */
	{ "SET_FEATURES with ACCESS_PLATFORM", ST_PROTO, b_features,
	  RQ(SET_FEATURES), .size = 8, .a = F_ACCESS_PLATFORM,
	  .why = "features 0x200000000 were not offered" },
	{ "SET_FEATURES with LOG_ALL and another bit on a running queue", ST_RUN,
	  b_features, RQ(SET_FEATURES), .size = 8, .a = F_LOG_ALL | F_RING_PACKED,
	  .why = "features changed while queue 0 runs" },
	{ "SET_FEATURES with bit 63", ST_PROTO, b_features, RQ(SET_FEATURES),
	  .size = 8, .a = 1ull << 63,
	  .why = "features 0x8000000000000000 were not offered" },
	{ "SET_PROTOCOL_FEATURES with INFLIGHT_SHMFD", ST_NONE, b_u64,
	  RQ(SET_PROTOCOL_FEATURES), .size = 8, .a = PF(INFLIGHT_SHMFD),
	  .why = "protocol features 0x1000 were not offered" },
	{ "SET_PROTOCOL_FEATURES with BACKEND_REQ", ST_NONE, b_u64,
	  RQ(SET_PROTOCOL_FEATURES), .size = 8, .a = PF(BACKEND_REQ),
	  .why = "protocol features 0x20 were not offered" },
	{ "GET_QUEUE_NUM before MQ is agreed", ST_NONE, b_u64, RQ(GET_QUEUE_NUM),
	  .why = "MQ was not negotiated" },
	{ "RESET_DEVICE, not agreed", ST_PROTO, b_u64, RQ(RESET_DEVICE),
	  .why = "RESET_DEVICE was not negotiated" },
	{ "NET_SET_MTU, not agreed", ST_PROTO, b_u64,
	  RQN(VU_NET_SET_MTU, "NET_SET_MTU"), .size = 8, .a = 1500,
	  .why = "NET_MTU was not negotiated" },

	/* The dirty log. */
	{ "SET_LOG_BASE without LOG_SHMFD agreed", ST_NONE, b_log,
	  RQ(SET_LOG_BASE), .size = 16, .a = FAKE_SIZE, .fd = FD_MEMFD,
	  .nfds = 1, .why = "LOG_SHMFD was not negotiated" },
	{ "SET_LOG_BASE without an fd", ST_MEM, b_log, RQ(SET_LOG_BASE),
	  .size = 16, .a = FAKE_SIZE, .why = "0 fds, not 1" },
	{ "SET_LOG_BASE of 8 bytes", ST_MEM, b_log, RQ(SET_LOG_BASE), .size = 8,
	  .a = FAKE_SIZE, .fd = FD_MEMFD, .nfds = 1,
	  .why = "payload of 8 bytes, not 16" },
	{ "SET_LOG_BASE of size 0", ST_MEM, b_log, RQ(SET_LOG_BASE), .size = 16,
	  .fd = FD_MEMFD, .nfds = 1, .why = "log of 0 bytes at offset 0" },
	{ "SET_LOG_BASE past its fd", ST_RUN, b_log, RQ(SET_LOG_BASE),
	  .size = 16, .a = FAKE_SIZE, .b = 4096, .fd = FD_MEMFD, .nfds = 1,
	  .why = "offset 4096 + size 65536 past the end of its fd (65536)" },
	{ "SET_LOG_BASE at an unaligned offset", ST_MEM, b_log, RQ(SET_LOG_BASE),
	  .size = 16, .a = 4096, .b = 100, .fd = FD_MEMFD, .nfds = 1,
	  .why = "log of 4096 bytes at offset 100" },
	{ "SET_LOG_BASE wrapping", ST_MEM, b_log, RQ(SET_LOG_BASE), .size = 16,
	  .a = 4096, .b = UINT64_MAX & ~4095ull, .fd = FD_MEMFD, .nfds = 1,
	  .why = "log of 4096 bytes at offset 18446744073709547520" },
	{ "SET_LOG_BASE of 2 GiB", ST_MEM, b_log, RQ(SET_LOG_BASE), .size = 16,
	  .a = 2ull << 30, .fd = FD_MEMFD, .nfds = 1,
	  .why = "log of 2147483648 bytes at offset 0" },
	{ "SET_LOG_BASE with an eventfd", ST_MEM, b_log, RQ(SET_LOG_BASE),
	  .size = 16, .a = 4096, .fd = FD_EVENT, .nfds = 1,
	  .why = "log: the fd is not a memfd or a file" },
	{ "SET_LOG_BASE with a read-only fd", ST_RUN, b_log, RQ(SET_LOG_BASE),
	  .size = 16, .a = 4096, .fd = FD_RDONLY, .nfds = 1,
	  .why = "log: mmap: Permission denied" },

	/* Requests not offered. */
	{ "SET_LOG_FD", ST_PROTO, b_u64, RQ(SET_LOG_FD), .fd = FD_EVENT,
	  .nfds = 1, .why = NOT_OFFERED },
	{ "SET_BACKEND_REQ_FD", ST_PROTO, b_u64, RQ(SET_BACKEND_REQ_FD),
	  .fd = FD_SOCK, .nfds = 1, .why = NOT_OFFERED },
	{ "GET_INFLIGHT_FD", ST_RING, b_u64, RQ(GET_INFLIGHT_FD), .size = 24,
	  .why = NOT_OFFERED },
	{ "SET_INFLIGHT_FD", ST_RING, b_u64, RQ(SET_INFLIGHT_FD), .size = 24,
	  .a = FAKE_SIZE, .fd = FD_MEMFD, .nfds = 1, .why = NOT_OFFERED },
	{ "SET_STATUS", ST_FEAT, b_u64, RQN(VU_SET_STATUS, "SET_STATUS"),
	  .size = 8, .a = 0xf, .why = NOT_OFFERED },
	{ "GET_STATUS", ST_FEAT, b_u64, RQN(VU_GET_STATUS, "GET_STATUS"),
	  .why = NOT_OFFERED },
	{ "POSTCOPY_ADVISE", ST_MEM, b_u64,
	  RQN(VU_POSTCOPY_ADVISE, "POSTCOPY_ADVISE"), .why = NOT_OFFERED },
	{ "POSTCOPY_LISTEN", ST_MEM, b_u64,
	  RQN(VU_POSTCOPY_LISTEN, "POSTCOPY_LISTEN"), .why = NOT_OFFERED },
	{ "POSTCOPY_END", ST_MEM, b_u64, RQN(VU_POSTCOPY_END, "POSTCOPY_END"),
	  .why = NOT_OFFERED },
	{ "SEND_RARP", ST_RUN, b_u64, RQN(VU_SEND_RARP, "SEND_RARP"), .size = 8,
	  .why = NOT_OFFERED },
	{ "IOTLB_MSG", ST_RUN, b_u64, RQN(VU_IOTLB_MSG, "IOTLB_MSG"), .size = 64,
	  .why = NOT_OFFERED },
	{ "SET_VRING_ENDIAN", ST_FEAT, b_state,
	  RQN(VU_SET_VRING_ENDIAN, "SET_VRING_ENDIAN"), .size = 8, .b = 1,
	  .why = NOT_OFFERED },
	{ "CREATE_CRYPTO_SESSION", ST_PROTO, b_u64,
	  RQN(VU_CREATE_CRYPTO, "CREATE_CRYPTO_SESSION"), .size = 200,
	  .why = NOT_OFFERED },
	{ "GPU_SET_SOCKET", ST_PROTO, b_u64, RQN(VU_GPU_SET_SOCKET, "GPU_SET_SOCKET"),
	  .why = NOT_OFFERED },
	{ "VRING_KICK", ST_RUN, b_state, RQN(VU_VRING_KICK, "VRING_KICK"),
	  .size = 8, .why = NOT_OFFERED },
	{ "request 0", ST_NONE, b_u64, RQN(0, "unknown request"), .why = NOT_OFFERED },
	{ "request 41", ST_PROTO, b_u64, RQN(41, "unknown request"), .size = 8,
	  .why = NOT_OFFERED },
	{ "request 2^32-1", ST_RUN, b_u64, RQN(UINT32_MAX, "unknown request"),
	  .why = NOT_OFFERED },
};

#define NROWS ((int)(sizeof(rows) / sizeof(rows[0])))

/* ---- fixtures ---- */

static void daemon_setup(void)
{
	struct qsd_cfg c = { .img_size = IMG_SIZE, .fill = fill_pattern };

	if (qsd_setup(&D, &c))
		printf("# qemu-storage-daemon: %s\n", D.err);
}

static void daemon_teardown(void)
{
	qsd_teardown(&D);
}

static void proxy_setup(void)
{
	struct proxy_opts o = {
		.backend = D.sock, .name = NAME, .max_queues = NQ,
		.log = log_capture,
	};

	ck_assert_msg(D.pid > 0, "no qemu-storage-daemon: %s", D.err);
	log_clear();
	ck_assert_int_eq(proxy_new(&o, &P), 0);
}

static void proxy_teardown(void)
{
	proxy_free(P);
	P = NULL;
}

/* An honest session on the proxy core: served in full, ended by the VMM. */
static void serve_honest(bool table)
{
	struct served s;
	int before = count_fds(), rc;

	log_clear();
	honest_session(serve_start(&s), table);
	rc = serve_join(&s);
	ck_assert_msg(rc == 0, "the honest session ended with %s:\n%s",
		      strerror(-rc), logbuf);
	ck_assert_int_eq(count_fds(), before);
}

START_TEST(honest_sessions)
{
	/* Both ways of giving guest RAM, and the proxy serves one after the
	 * other. */
	serve_honest(false);
	serve_honest(true);
	serve_honest(false);
}
END_TEST

/* Guest pages marked in a vhost log covering the guest's RAM. */
static unsigned int log_marked(const uint8_t *log, size_t len)
{
	unsigned int n = 0;
	size_t k;

	for (k = 0; k < len; k++)
		n += (unsigned int)__builtin_popcount(log[k]);
	return n;
}

static bool page_logged(const uint8_t *log, uint64_t gpa)
{
	return log[gpa / 4096 / 8] & (1u << (gpa / 4096 % 8));
}

START_TEST(malformed)
{
	const struct row *r = &rows[_i];
	char want[128], line[512];
	struct served s;
	struct vmm v;
	int before, rc, n;
	unsigned int lines;
	uint8_t junk[4096];

	if (getenv("SVQ_TEST_VERBOSE"))
		fprintf(stderr, "# %d: %s\n", _i, r->name);
	before = count_fds();
	vmm_open(&v, serve_start(&s));
	stage_to(&v, r->stage, false);
	log_clear();
	r->send(&v, r);

	/* The session is closed, and nothing came back before that. */
	do {
		struct pollfd pfd = { .fd = v.sock, .events = POLLIN };

		ck_assert_msg(poll(&pfd, 1, WAIT_MS) == 1,
			      "%s: the session stayed open:\n%s", r->name, logbuf);
		n = (int)recv(v.sock, junk, r->replies ? sizeof(junk) : 1,
			      MSG_DONTWAIT);
	} while (r->replies && n > 0);
	ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET),
		      "%s: the proxy answered instead of closing:\n%s", r->name,
		      logbuf);
	rc = serve_join(&s);
	ck_assert_msg(rc == -EPROTO, "%s: proxy_serve() returned %d:\n%s",
		      r->name, rc, logbuf);
	vmm_close(&v);
	n = count_fds();
	ck_assert_msg(n == before, "%s: %d fds open after the session, %d before",
		      r->name, n, before);

	/* One line, naming the request and what is wrong. */
	pthread_mutex_lock(&log_lock);
	lines = closing_lines(logbuf, line, sizeof(line));
	pthread_mutex_unlock(&log_lock);
	ck_assert_msg(lines == 1, "%s: %u lines close the session:\n%s", r->name,
		      lines, logbuf);
	snprintf(want, sizeof(want), NAME ": vmm: %s (%u): ", r->rname, r->req);
	ck_assert_msg(!strncmp(line, want, strlen(want)),
		      "%s: the line does not start with \"%s\": %s", r->name,
		      want, line);
	ck_assert_msg(strstr(line + strlen(want), r->why),
		      "%s: the line does not say \"%s\": %s", r->name, r->why,
		      line);

	/* The next VMM is served. */
	serve_honest(false);
}
END_TEST

/* ---- a backend that breaks the protocol once ---- */

/*
 * A relay from the proxy to the daemon, message by message with their fds,
 * one connection after the other. The first reply naming @corrupt goes to
 * the proxy 4 bytes longer than it is: a reply of the wrong size.
 */
struct relay {
	char dir[64];
	char sock[96];
	int listen;
	int stop;		/* eventfd: the thread returns */
	uint32_t corrupt;
	bool corrupted;		/* read after the join */
	unsigned int log_msgs;	/* to the backend: anything of dirty
				 * logging (SET_LOG_BASE or _FD, LOG_ALL
				 * in SET_FEATURES, a ring's log flag) */
	unsigned int conns;
	pthread_t t;
};

/* Forward one message from @from to @to; false: the connection ends. */
static bool relay_one(struct relay *r, int from, int to, bool replies)
{
	struct svq_vu_msg m;
	unsigned int i;
	bool ok;

	if (svq_vu_recv(from, &m, WAIT_MS))
		return false;
	if (!replies &&
	    (m.hdr.request == SVQ_VU_SET_LOG_BASE ||
	     m.hdr.request == SVQ_VU_SET_LOG_FD ||
	     (m.hdr.request == SVQ_VU_SET_FEATURES && (m.payload.u64 & F_LOG_ALL)) ||
	     (m.hdr.request == SVQ_VU_SET_VRING_ADDR && m.payload.addr.flags)))
		r->log_msgs++;
	if (replies && !r->corrupted && m.hdr.request == r->corrupt &&
	    (m.hdr.flags & SVQ_VU_FLAG_REPLY) && m.hdr.size + 4 <= sizeof(m.payload)) {
		m.hdr.size += 4;
		r->corrupted = true;
	}
	ok = svq_vu_send(to, &m) == 0;
	for (i = 0; i < m.nfds; i++)
		close(m.fds[i]);
	return ok;
}

static void *relay_main(void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct relay *r = arg;
	struct pollfd pfd[3];
	int a, b;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", D.sock);
	for (;;) {
		pfd[0] = (struct pollfd){ .fd = r->listen, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = r->stop, .events = POLLIN };
		if (poll(pfd, 2, -1) < 0 || pfd[1].revents)
			return NULL;
		a = accept4(r->listen, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0)
			continue;
		b = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (b < 0 || connect(b, (struct sockaddr *)&sa, sizeof(sa))) {
			close(a);
			if (b >= 0)
				close(b);
			continue;
		}
		r->conns++;
		for (;;) {
			pfd[0] = (struct pollfd){ .fd = a, .events = POLLIN };
			pfd[1] = (struct pollfd){ .fd = b, .events = POLLIN };
			pfd[2] = (struct pollfd){ .fd = r->stop, .events = POLLIN };
			if (poll(pfd, 3, -1) < 0 || pfd[2].revents)
				break;
			if (pfd[0].revents && !relay_one(r, a, b, false))
				break;
			if (pfd[1].revents && !relay_one(r, b, a, true))
				break;
		}
		close(a);
		close(b);
		if (pfd[2].revents)
			return NULL;
	}
}

static void relay_start(struct relay *r, uint32_t corrupt)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[160];

	memset(r, 0, sizeof(*r));
	r->corrupt = corrupt;
	ck_assert_msg(proc_mkdtemp(r->dir, sizeof(r->dir), "relay", err,
				   sizeof(err)) == 0, "%s", err);
	snprintf(r->sock, sizeof(r->sock), "%s/relay.sock", r->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r->sock);
	r->listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(r->listen, 0);
	ck_assert_int_eq(bind(r->listen, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(r->listen, 4), 0);
	r->stop = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(r->stop, 0);
	ck_assert_int_eq(pthread_create(&r->t, NULL, relay_main, r), 0);
}

static void relay_stop(struct relay *r)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(r->stop, &one, sizeof(one)), sizeof(one));
	ck_assert_int_eq(pthread_join(r->t, NULL), 0);
	close(r->stop);
	close(r->listen);
	unlink(r->sock);
	rmdir(r->dir);
}

/*
 * Migration through the proxy, as QEMU does it: LOG_SHMFD and LOG_ALL are
 * offered; the VMM hands over a shared log (SET_LOG_BASE, answered), turns
 * LOG_ALL on and sends each ring again with its log flag while the queue
 * runs. From then on the proxy marks every guest page svqiso writes (the
 * read's data, its status byte, the used ring) and nothing before or
 * after. The backend, behind a relay that looks at every message it gets,
 * hears nothing of it.
 */
START_TEST(dirty_log)
{
	struct proxy_opts o = {
		.name = NAME, .max_queues = NQ, .log = log_capture,
	};
	struct relay rl;
	const size_t len = 4096;	/* covers 128 MiB of guest RAM */
	struct svqiso_vring_addr ga;
	struct svq_vu_vring_addr a;
	struct svq_vu_msg m, r;
	struct served s;
	struct vmm v;
	int before = count_fds(), fd, rc;
	uint8_t *log;

	ck_assert_msg(D.pid > 0, "no qemu-storage-daemon: %s", D.err);
	relay_start(&rl, 0);
	o.backend = rl.sock;
	log_clear();
	ck_assert_int_eq(proxy_new(&o, &P), 0);
	fd = memfd(len);
	log = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(log, MAP_FAILED);
	vmm_open(&v, serve_start(&s));
	stage_to(&v, ST_RUN, false);
	ck_assert_uint_ne(v.features & F_LOG_ALL, 0);
	ck_assert_uint_ne(v.proto & PF(LOG_SHMFD), 0);

	svq_vu_msg_init(&m, SVQ_VU_SET_LOG_BASE, sizeof(m.payload.log));
	m.payload.log.mmap_size = len;
	honest(&v, &m, &fd, 1);
	recv_reply(&v, SVQ_VU_SET_LOG_BASE, sizeof(uint64_t), &r);

	/* A log, LOG_ALL not set: nothing logged. */
	read_through(&v);
	ck_assert_uint_eq(log_marked(log, len), 0);

	/* Migration starts. */
	honest_u64(&v, SVQ_VU_SET_FEATURES, vmm_features(&v) | F_LOG_ALL);
	a = ring_addr(&v, 0);
	a.flags = 1;
	set_addr(&v, &a);
	read_through(&v);
	ga = blkq_addr(v.q);
	ck_assert(page_logged(log, v.buf_gpa));
	ck_assert(page_logged(log, ga.device));
	/* The data page, the status byte's, the used ring's: no more, and
	 * nothing outside guest RAM. */
	ck_assert_uint_le(log_marked(log, len), 3);
	ck_assert_uint_eq(log_marked(log, GUEST_GPA / 4096 / 8), 0);
	ck_assert_uint_eq(log_marked(log + (GUEST_GPA + GUEST_SIZE) / 4096 / 8,
				     len - (GUEST_GPA + GUEST_SIZE) / 4096 / 8), 0);

	/* It ends: nothing more is logged. */
	memset(log, 0, len);
	honest_u64(&v, SVQ_VU_SET_FEATURES, vmm_features(&v));
	a.flags = 0;
	set_addr(&v, &a);
	read_through(&v);
	ck_assert_uint_eq(log_marked(log, len), 0);

	ck_assert_ptr_nonnull(strstr(logbuf, "vmm: dirty log of 4096 bytes"));
	ck_assert_ptr_nonnull(strstr(logbuf, "vmm: dirty logging on"));
	ck_assert_ptr_nonnull(strstr(logbuf, "vmm: dirty logging off"));
	vmm_close(&v);
	rc = serve_join(&s);
	ck_assert_msg(rc == 0, "the session ended with %s:\n%s", strerror(-rc), logbuf);
	munmap(log, len);
	close(fd);
	proxy_free(P);
	P = NULL;
	relay_stop(&rl);
	ck_assert_uint_eq(rl.log_msgs, 0);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

/* The VMM hangs up: the session ends with 0, no line blames the VMM, and
 * the proxy is freed. */
static void end_unblamed(struct vmm *v, struct served *s)
{
	char line[512];
	int rc;

	vmm_close(v);
	rc = serve_join(s);
	ck_assert_msg(rc == 0, "proxy_serve() returned %d:\n%s", rc, logbuf);
	pthread_mutex_lock(&log_lock);
	ck_assert_msg(closing_lines(logbuf, line, sizeof(line)) == 0,
		      "the VMM was blamed: %s", line);
	pthread_mutex_unlock(&log_lock);
	proxy_free(P);
	P = NULL;
}

/*
 * The backend answers the ADD_MEM_REG of a queue start with a reply of the
 * wrong size, which ends its session: to the VMM that is a backend gone
 * like any other. Its SET_VRING_KICK succeeds (an ack of 0), its session
 * goes on, no line blames it, and the queue starts over the next backend
 * session, a read served end to end.
 */
START_TEST(backend_bad_reply_is_the_backend_gone)
{
	struct proxy_opts o = {
		.name = NAME, .max_queues = NQ, .log = log_capture,
	};
	struct svq_vu_msg m, r;
	struct relay rl;
	struct served s;
	struct vmm v;
	int before, rc, fd;

	ck_assert_msg(D.pid > 0, "no qemu-storage-daemon: %s", D.err);
	before = count_fds();
	relay_start(&rl, SVQ_VU_ADD_MEM_REG);
	o.backend = rl.sock;
	log_clear();
	ck_assert_int_eq(proxy_new(&o, &P), 0);

	vmm_open(&v, serve_start(&s));
	stage_to(&v, ST_RING, false);
	ck_assert(v.acks);
	svq_vu_msg_init(&m, SVQ_VU_SET_VRING_KICK, sizeof(uint64_t));
	m.hdr.flags |= SVQ_VU_FLAG_NEED_REPLY;
	fd = blkq_kick_fd(v.q);
	m.fds[0] = fd;
	m.nfds = 1;
	ck_assert_int_eq(svq_vu_send(v.sock, &m), 0);
	rc = svq_vu_recv(v.sock, &r, WAIT_MS);
	ck_assert_msg(rc == 0, "no ack to SET_VRING_KICK (%s): the session ended:\n%s",
		      strerror(-rc), logbuf);
	ck_assert_uint_eq(r.hdr.request, SVQ_VU_SET_VRING_KICK);
	ck_assert_uint_eq(r.payload.u64, 0);
	ck_assert_msg(rl.corrupted, "the relay never saw an ADD_MEM_REG reply");

	/* Still served, and the queue runs once the backend is back. */
	ck_assert_uint_eq(get_u64(&v, SVQ_VU_GET_MAX_MEM_SLOTS), PROXY_MEM_SLOTS);
	read_through(&v);
	end_unblamed(&v, &s);
	relay_stop(&rl);
	ck_assert_uint_ge(rl.conns, 2);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

/* ---- a guest ring that breaks while the proxy spins ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Whether the captured log holds @what, waiting up to @ms for it. */
static bool log_wait(const char *what, int ms)
{
	bool found = false;
	int waited;

	for (waited = 0; !found && waited <= ms; waited += 2) {
		pthread_mutex_lock(&log_lock);
		found = strstr(logbuf, what) != NULL;
		pthread_mutex_unlock(&log_lock);
		if (!found)
			usleep(2000);
	}
	return found;
}

/*
 * The proxy spins (1 s window) with a read held by a stopped daemon, the
 * guest's kicks off. The guest then makes available, without a kick, a
 * chain whose buffer lies outside guest RAM: the spin's poll of the guest
 * ring finds it at once and breaks the queue, logged with its reason, well
 * before the window would end; the VMM is not blamed and its session goes
 * on (GET_FEATURES, GET_VRING_BASE of the broken queue answered); the
 * daemon, let go, completes the held read into a broken queue, which the
 * proxy ignores; everything is freed.
 */
START_TEST(spin_guest_breaks_queue)
{
	struct proxy_opts o = {
		.name = NAME, .max_queues = NQ, .log = log_capture,
		.spin_ns = 1000000000ull,
	};
	struct blkq_seg seg = { .gpa = 0, .len = 4096 };
	struct blkq_req req = { .type = VIRTIO_BLK_T_IN, .sector = 8,
				.seg = &seg, .nseg = 1 };
	struct svqiso_vring_addr ga;
	struct svq_vu_msg m, r;
	struct served s;
	struct vmm v;
	uint16_t *avail_idx, *ring, idx;
	uint8_t *desc;
	double t0, took;
	int before, id;

	ck_assert_msg(D.pid > 0, "no qemu-storage-daemon: %s", D.err);
	before = count_fds();
	log_clear();
	o.backend = D.sock;
	ck_assert_int_eq(proxy_new(&o, &P), 0);
	vmm_open(&v, serve_start(&s));
	stage_to(&v, ST_RUN, false);
	read_through(&v);

	/* A read the stopped daemon holds: the proxy, woken by its kick,
	 * spins with it in flight. */
	ck_assert_int_eq(kill(D.pid, SIGSTOP), 0);
	seg.gpa = v.buf_gpa;
	ck_assert_int_eq(blkq_submit(v.q, &req), 0);
	usleep(50000);

	/* The bad chain, by hand: one descriptor far outside guest RAM. */
	ga = blkq_addr(v.q);
	id = gring_next_id(blkq_ring(v.q));
	ck_assert_int_ge(id, 0);
	desc = gmem_hva(v.gm, ga.desc + (uint64_t)id * 16, 16);
	avail_idx = gmem_hva(v.gm, ga.driver + 2, 2);
	ck_assert_ptr_nonnull(desc);
	ck_assert_ptr_nonnull(avail_idx);
	memset(desc, 0, 16);
	*(uint64_t *)desc = htole64(0xdead00000000ull);	/* addr */
	*(uint32_t *)(desc + 8) = htole32(512);		/* len */
	idx = le16toh(*avail_idx);
	ring = gmem_hva(v.gm, ga.driver + 4 + 2u * (idx % NUM), 2);
	ck_assert_ptr_nonnull(ring);
	*ring = htole16((uint16_t)id);
	t0 = now_s();
	__atomic_store_n(avail_idx, htole16((uint16_t)(idx + 1)), __ATOMIC_RELEASE);
	ck_assert_msg(log_wait("queue 0: broken", 900),
		      "no queue broken within the spin's window:\n%s", logbuf);
	took = now_s() - t0;
	fprintf(stderr, "# the spin broke the queue %.1f ms after the bad chain\n",
		took * 1e3);
	ck_assert_double_lt(took, 0.5);
	ck_assert_int_eq(kill(D.pid, SIGCONT), 0);

	/* The VMM's session goes on. */
	ck_assert_uint_eq(get_u64(&v, SVQ_VU_GET_FEATURES), v.features);
	svq_vu_msg_init(&m, SVQ_VU_GET_VRING_BASE, sizeof(struct svq_vu_vring_state));
	send_fds(&v, &m, FD_NONE, 0);
	recv_reply(&v, SVQ_VU_GET_VRING_BASE, sizeof(struct svq_vu_vring_state), &r);
	end_unblamed(&v, &s);
	ck_assert_int_eq(count_fds(), before);
}
END_TEST

/* ---- the program ---- */

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Wait (bounded) for @text to show in @path; return what the file holds. */
static bool file_has(const char *path, const char *text, char *buf, size_t len)
{
	int waited, fd;
	ssize_t n;

	for (waited = 0; waited < WAIT_MS; waited += 50) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(fd, 0);
		n = read(fd, buf, len - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		if (strstr(buf, text))
			return true;
		proc_sleep_ms(50);
	}
	return false;
}

START_TEST(process)
{
	const char *bin = getenv("SVQISO_PROXY");
	char dir[64], sock[96], logf[96], err[160], out[1 << 14];
	char *argv[] = { (char *)bin, "--socket", sock, "--backend", D.sock,
			 "-n", "proc", NULL };
	struct proc_spawn_opts po = { .argv = argv, .sock = sock,
				      .start_ms = WAIT_MS, .stdin_fd = -1 };
	struct svq_vu_msg m;
	struct vmm v;
	pid_t pid = -1;
	int fd, status, n;
	uint8_t junk;

	ck_assert_msg(bin && *bin, "SVQISO_PROXY is not set");
	ck_assert_msg(D.pid > 0, "no qemu-storage-daemon: %s", D.err);
	ck_assert_int_eq(proc_mkdtemp(dir, sizeof(dir), "proxy", err, sizeof(err)), 0);
	snprintf(sock, sizeof(sock), "%s/proxy.sock", dir);
	snprintf(logf, sizeof(logf), "%s/proxy.log", dir);
	fd = open(logf, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	po.out_fd = fd;
	ck_assert_msg(proc_spawn(&po, &pid, err, sizeof(err)) == 0, "%s", err);
	close(fd);

	/* A kick fd that is a pipe. */
	vmm_open(&v, connect_to(sock));
	stage_to(&v, ST_RING, false);
	svq_vu_msg_init(&m, SVQ_VU_SET_VRING_KICK, sizeof(uint64_t));
	send_fds(&v, &m, FD_PIPE, 1);
	struct pollfd pfd = { .fd = v.sock, .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, WAIT_MS), 1);
	n = (int)recv(v.sock, &junk, 1, MSG_DONTWAIT);
	ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "not closed");
	vmm_close(&v);
	ck_assert_msg(file_has(logf, "svqiso-proxy: error: proc: vmm: SET_VRING_KICK (12): "
			       "queue 0: the fd is not an eventfd: closing the session\n",
			       out, sizeof(out)), "no error line:\n%s", out);

	/* The same process serves the next VMM, with SET_MEM_TABLE. */
	honest_session(connect_to(sock), true);
	ck_assert_msg(file_has(logf, "vmm: session 2:", out, sizeof(out)),
		      "no second session:\n%s", out);

	status = proc_stop(&pid, WAIT_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "svqiso-proxy ended with status %#x:\n%s", status, out);
	file_has(logf, "", out, sizeof(out));
	ck_assert_msg(!strstr(out, "ERROR: AddressSanitizer") &&
		      !strstr(out, "runtime error"), "%s", out);
	unlink(logf);
	unlink(sock);
	rmdir(dir);
}
END_TEST

int main(void)
{
	struct ckplan plan = { .suite = "proxy_vmm" };
	Suite *s;
	TCase *tc;

	if (!qsd_on_path(QSD_BIN)) {
		printf("1..0 # SKIP " QSD_BIN " not installed\n");
		return EXIT_SUCCESS;
	}
	s = suite_create(plan.suite);

	tc = ckplan_tcase(&plan, s, "honest", NULL, 120);
	tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
	tcase_add_checked_fixture(tc, proxy_setup, proxy_teardown);
	ckplan_add(&plan, tc, honest_sessions, 0, 1);

	tc = ckplan_tcase(&plan, s, "malformed", NULL, 120);
	tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
	tcase_add_checked_fixture(tc, proxy_setup, proxy_teardown);
	ckplan_add(&plan, tc, malformed, 0, NROWS);

	tc = ckplan_tcase(&plan, s, "backend", NULL, 120);
	tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
	ckplan_add(&plan, tc, backend_bad_reply_is_the_backend_gone, 0, 1);
	ckplan_add(&plan, tc, dirty_log, 0, 1);

	tc = ckplan_tcase(&plan, s, "spin", NULL, 120);
	tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
	ckplan_add(&plan, tc, spin_guest_breaks_queue, 0, 1);

	tc = ckplan_tcase(&plan, s, "process", NULL, 120);
	tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
	ckplan_add(&plan, tc, process, 0, 1);

	return ckplan_run(&plan, s);
}
