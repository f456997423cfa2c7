/* SPDX-License-Identifier: MIT */
/*
 * Multi-process isolation harness (suite "isolation").
 *
 * Three parties, as in production:
 *  - the guest: this process. Guest RAM is a memfd (close-on-exec) mapped
 *    twice: once linearly for the guest's own use, and once region by region,
 *    with guard pages between regions, for the VMM's memory map (svqiso_mem).
 *    The guest ring is written into guest RAM by the library's driver role
 *    (svq_drv_*), at guest physical addresses.
 *  - libsvqiso: an iso whose region callbacks forward every region to the
 *    backend and wait for its ack, a bounce pool, a svq in ring mode, and
 *    either a svqiso_loop on a thread or this thread calling
 *    process_avail/process_used itself ("manual").
 *  - the backend: backend.c, fork+exec'd with nothing but its socket; it gets
 *    only isolated regions, the shadow ring and two eventfds, and runs the
 *    echo-hash device (echo.h).
 *
 * What is checked:
 *  - isolation: no fd and no mapping of the backend is guest RAM (by device
 *    and inode), every memfd it holds or maps is an isolated region, and its
 *    memfd mappings add up to exactly the isolated regions' sizes. Negative
 *    controls prove the inspector can fail.
 *  - every byte both ways: the pattern the backend writes depends on a hash
 *    of everything it read, so a wrong byte in either direction shows.
 *    Writable bytes past the used length keep their canary; everything else
 *    of guest RAM is compared with an image the guest keeps of what it wrote:
 *    only writable segments of requests in flight may differ.
 *  - hostile backend (backend --mode): the svq breaks with the rule named in
 *    its reason, or for a length past the writable bytes clamps and counts it.
 *    A packed used descriptor whose AVAIL and USED bits differ is not used:
 *    the request stays pending and the svq stays healthy. In every case guest
 *    RAM outside in-flight writable segments is unchanged, nothing crashes,
 *    and after svqiso_svq_reset() the pool holds no bytes and the queue works.
 *  - backpressure: a tiny arena stalls (stats.pool_stalls) and loses nothing.
 *
 * Environment: SVQ_BACKEND (the backend program; set by meson), SVQ_TEST_SEED
 * (replay a seed), SVQ_SOAK=1 (a long soak run, not in CI), SVQ_TEST_SCALE
 * (multiply request counts, e.g. 0.05 under valgrind), SVQ_TEST_TIMEOUT
 * (seconds without progress before a stall fails; default 60),
 * SVQ_TEST_NO_URING=1 (epoll instead of io_uring: valgrind 3.19 holds its
 * big lock across a blocking io_uring_enter and deadlocks the guest thread).
 *
 * Under valgrind: SVQ_TEST_SCALE=0.02 SVQ_TEST_NO_URING=1 SVQ_TEST_TIMEOUT=600
 * CK_FORK=no valgrind --trace-children=yes --leak-check=full test_isolation
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rng.h"
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <check.h>

#include <svqiso/svq.h>
#include <svqiso/iso.h>
#include <svqiso/pool.h>
#include <svqiso/loop.h>
#include <svqiso/copy.h>
#include "vring.h"
#include "echo.h"
#include "proto.h"
#include "harness.h"

#define DEFAULT_SEED	0x150c0de5eed2024ull

/*
 * Every ck_assert() records its location with a write() to Check's pipe:
 * too slow per request. Hot paths check with this, which costs nothing
 * until it fails.
 */
#define require(cond, ...)						\
	do {								\
		if (!(cond))						\
			ck_abort_msg(__VA_ARGS__);			\
	} while (0)

/* Guest physical layout: rings, then one slot area per ring entry, then a
 * few large areas for requests up to 1 MiB. */
#define GPA_BASE	0x100000ull
#define RING_AREA	0x40000ull
#define DESC_OFF	0x00000ull
#define DRIVER_OFF	0x10000ull
#define DEVICE_OFF	0x20000ull
#define SLOT_SIZE	0x14000ull		/* requests up to 64 KiB + 16 B */
#define LARGE_SIZE	0x110000ull		/* up to 1 MiB */
#define NR_LARGE	4
#define TABLE_BYTES	(MAX_REQ_SEGS * 16u)	/* guest indirect table */
#define MAX_REQ_SEGS	64
#define SMALL_MAX	(48u << 10)
#define LARGE_MAX	(1u << 20)
#define GAP_BYTE	0xee

#define SPLIT	SVQISO_LAYOUT_SPLIT
#define PACKED	SVQISO_LAYOUT_PACKED
#define F_EVENT	SVQISO_RING_F_EVENT_IDX
#define F_IND	SVQISO_RING_F_INDIRECT

static uint64_t test_seed = DEFAULT_SEED;
static double test_scale = 1.0;
static int stall_timeout_ms = 60000;
static bool soak;
static bool no_uring;

/* ---- Random numbers: splitmix64, one stream per test ---- */

static void rng_init(struct rng *r, uint64_t tag)
{
	rng_seed(r, test_seed, tag);
}

static void rng_fill(struct rng *r, uint8_t *p, size_t len)
{
	uint64_t w;

	for (; len >= 8; p += 8, len -= 8) {
		w = rng_next(r);
		memcpy(p, &w, 8);
	}
	if (len) {
		w = rng_next(r);
		memcpy(p, &w, len);
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t scaled(uint64_t n)
{
	double v = (double)n * test_scale * (soak ? 25.0 : 1.0);

	return v < 1 ? 1 : (uint64_t)v;
}

/* ---- Guest RAM ---- */

/* Region sizes, cycled: boundaries fall at varied offsets inside request
 * areas, so chains cross them. The first holds the rings. */
static const uint64_t region_sizes[] = {
	0x41000, 0x10f000, 0x83000, 0x1f000, 0x151000, 0xc7000, 0x2000,
	0x99000, 0x1b3000, 0x7000, 0x120000,
};

#define MAX_GREGIONS 64

struct gram {
	int fd;
	uint64_t size;
	uint8_t *lin;		/* the guest's view, linear in GPA */
	uint8_t *snap;		/* what guest RAM should hold */
	uint8_t *dirty;		/* [pages]: snap written there */
	uint8_t *resv;		/* the VMM's view: regions with guard gaps */
	size_t resv_size;
	struct svqiso_mem *mem;
	unsigned int nreg;
	uint64_t start[MAX_GREGIONS];	/* region bases, ascending */
	struct stat st;
};

static void gram_init(struct gram *g, uint64_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t off = 0, sz;
	unsigned int i = 0;
	int err;

	ck_assert_int_eq(size % page, 0);
	memset(g, 0, sizeof(*g));
	g->size = size;
	g->fd = memfd_create("guest-ram", MFD_CLOEXEC);
	ck_assert_int_ge(g->fd, 0);
	ck_assert_int_eq(ftruncate(g->fd, (off_t)size), 0);
	ck_assert_int_eq(fstat(g->fd, &g->st), 0);
	g->lin = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
	ck_assert_ptr_ne(g->lin, MAP_FAILED);
	/* Not calloc(): once glibc raises its mmap threshold, calloc() of this
	 * size comes from the heap and is memset, page by page, every test. */
	g->snap = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(g->snap, MAP_FAILED);
	g->dirty = calloc(size / 4096, 1);
	ck_assert_ptr_nonnull(g->dirty);

	g->resv_size = size + (MAX_GREGIONS + 1) * (size_t)page;
	g->resv = mmap(NULL, g->resv_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(g->resv, MAP_FAILED);
	ck_assert_int_eq(svqiso_mem_new(NULL, &g->mem), 0);
	while (off < size) {
		struct svqiso_mem_region r;
		uint8_t *hva = g->resv + off + (size_t)(i + 1) * page;

		ck_assert_uint_lt(i, MAX_GREGIONS);
		sz = region_sizes[i % SVQ_ARRAY_SIZE(region_sizes)];
		if (sz > size - off)
			sz = size - off;
		ck_assert_ptr_eq(mmap(hva, sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
				      g->fd, (off_t)off), hva);
		r = (struct svqiso_mem_region){
			.gpa = GPA_BASE + off, .size = sz, .hva = hva,
			.fd = g->fd, .fd_offset = off,
		};
		err = svqiso_mem_add_region(g->mem, &r);
		ck_assert_int_eq(err, 0);
		g->start[i] = r.gpa;
		off += sz;
		i++;
	}
	g->nreg = i;
}

static void gram_fini(struct gram *g)
{
	svqiso_mem_free(g->mem);
	munmap(g->resv, g->resv_size);
	munmap(g->lin, g->size);
	munmap(g->snap, g->size);
	free(g->dirty);
	close(g->fd);
}

static uint8_t *gp(struct gram *g, uint64_t gpa)
{
	return g->lin + (gpa - GPA_BASE);
}

/* How many regions [gpa, gpa + len) touches: the segments svqiso makes of it. */
static unsigned int gram_pieces(const struct gram *g, uint64_t gpa, uint64_t len)
{
	unsigned int i, n = 1;

	for (i = 1; i < g->nreg; i++)
		if (g->start[i] > gpa && g->start[i] < gpa + len)
			n++;
	return n;
}

/* The guest wrote [gpa, gpa + len) itself: that is what it should hold. */
static void snap_sync(struct gram *g, uint64_t gpa, uint64_t len)
{
	uint64_t p;

	if (!len)
		return;
	memcpy(g->snap + (gpa - GPA_BASE), gp(g, gpa), len);
	for (p = (gpa - GPA_BASE) / 4096; p <= (gpa - GPA_BASE + len - 1) / 4096; p++)
		g->dirty[p] = 1;
}

/* GPA of the first byte in [gpa, gpa + len) that differs from the image. */
static int64_t snap_diff(struct gram *g, uint64_t gpa, uint64_t len)
{
	const uint8_t *a = gp(g, gpa), *b = g->snap + (gpa - GPA_BASE);
	uint64_t i;

	if (!memcmp(a, b, len))
		return -1;
	for (i = 0; i < len; i++)
		if (a[i] != b[i])
			break;
	return (int64_t)(gpa + i);
}

static bool all_zero(const uint8_t *p, uint64_t n, uint64_t *at)
{
	static const uint8_t zero[4096];
	uint64_t i, k;

	for (i = 0; i < n; i += k) {
		k = n - i < sizeof(zero) ? n - i : sizeof(zero);
		if (memcmp(p + i, zero, k))
			break;
	}
	for (; i < n; i++) {
		if (p[i]) {
			*at = i;
			return false;
		}
	}
	return true;
}

/*
 * snap_diff() over a large range, without touching pages the guest never
 * used: reading a memfd hole would allocate it. Holes read as zeros.
 */
static int64_t ram_diff(struct gram *g, uint64_t gpa, uint64_t len)
{
	off_t off = (off_t)(gpa - GPA_BASE), end = off + (off_t)len, data, hole;
	uint64_t at, page;
	int64_t d;

	while (off < end) {
		data = lseek(g->fd, off, SEEK_DATA);
		if (data < 0 || data > end)
			data = end;
		/* A hole reads as zeros: so must the image, where it was written. */
		for (page = (uint64_t)off / 4096; page * 4096 < (uint64_t)data; page++) {
			uint64_t lo = page * 4096 > (uint64_t)off ? page * 4096 : (uint64_t)off;
			uint64_t hi = (page + 1) * 4096 < (uint64_t)data ? (page + 1) * 4096 :
								       (uint64_t)data;

			if (g->dirty[page] && !all_zero(g->snap + lo, hi - lo, &at))
				return (int64_t)(GPA_BASE + lo + at);
		}
		if (data >= end)
			break;
		hole = lseek(g->fd, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		d = snap_diff(g, GPA_BASE + (uint64_t)data, (uint64_t)(hole - data));
		if (d >= 0)
			return d;
		off = hole;
	}
	return -1;
}

/* ---- One workload configuration ---- */

enum drive { DRIVE_MANUAL, DRIVE_LOOP };
enum profile {
	PROFILE_MIXED,		/* 1 B .. 1 MiB, 1 .. 64 segments, small ones dominate */
	PROFILE_SMALL,		/* up to 4 KiB */
	PROFILE_FIXED64K,	/* 16 B out, 64 KiB in: backpressure */
	PROFILE_HOSTILE,	/* small, header always there, writes all */
	PROFILE_TINY,		/* 1 .. 64 B, 1 .. 3 segments: many, fast */
};

struct cfg {
	uint8_t glayout, slayout;
	uint32_t gfeat, sfeat;
	uint16_t num;
	int copy;			/* enum svqiso_copy_kind */
	enum drive drive;
	int loop_mode;			/* enum svqiso_loop_mode */
	bool memfd_pool;
	uint64_t arena_size;		/* 0: default */
	bool preserve;
	enum profile profile;
	uint16_t depth;			/* most requests outstanding; 0: num */
};

struct seg {
	uint64_t gpa;
	uint32_t len;
};

struct req {
	uint64_t tag;
	int area;			/* slot index, or -1 - large index */
	bool indirect;
	uint16_t nseg, nout;
	uint32_t out_bytes, in_bytes;
	uint32_t expect_len;
	uint64_t key;			/* pattern key */
	uint8_t canary;			/* writable bytes before completion */
	uint64_t span_lo, span_hi;	/* area bytes the request uses */
	struct seg seg[MAX_REQ_SEGS];	/* chain order: readable first */
	struct seg wsorted[MAX_REQ_SEGS];	/* writable ones by address */
	uint16_t nw;
};

struct env {
	struct cfg c;
	struct rng rng;
	uint64_t seed_tag;
	struct gram g;
	struct peer peer;
	struct svqiso_iso *iso;
	struct svqiso_pool *pool;
	struct svqiso_svq *svq;
	struct svqiso_loop *loop;
	pthread_t thread;
	bool running;
	int loop_ret;
	int gkick, gcall, bkick, bcall;

	/* the guest driver */
	struct svq_drv gvq;
	struct req *reqs;		/* [num] */
	uint16_t *free_reqs, nfree_reqs;
	int free_large[NR_LARGE];
	unsigned int nfree_large;
	struct req **by_id;		/* [num] */
	uint64_t next_tag;
	uint8_t *done;			/* [tags] bitmap, grown */
	uint64_t done_cap;
	uint64_t submitted, completed, outstanding;
	uint64_t sum_out, sum_in;	/* bytes expected both ways */
	uint64_t kicks, kicks_suppressed;
	bool guest_signalled;
	bool light_verify;		/* scribble: only structure is checked */
	/* make_request() overrides for targeted tests (0 / -1: random) */
	uint16_t force_nseg;
	int force_ind;
	uint32_t force_total;
	uint64_t force_base;		/* span start; segments back to back */
	bool broken;			/* process_* returned -EIO */
	uint64_t last_progress;
	uint64_t t0;			/* env_init() time */
};

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "svqiso[%d]: %s\n", level, msg);
}

static const char *layout_name(uint8_t l)
{
	return l == PACKED ? "packed" : "split";
}

static void cfg_describe(const struct cfg *c, char *buf, size_t n)
{
	snprintf(buf, n, "guest=%s%s%s shadow=%s%s%s num=%u copy=%s drive=%s%s pool=%s%s",
		 layout_name(c->glayout), c->gfeat & F_IND ? "+ind" : "",
		 c->gfeat & F_EVENT ? "+evt" : "",
		 layout_name(c->slayout), c->sfeat & F_IND ? "+ind" : "",
		 c->sfeat & F_EVENT ? "+evt" : "", c->num, svqiso_copy_name(c->copy),
		 c->drive == DRIVE_LOOP ? "loop" : "manual",
		 c->drive != DRIVE_LOOP ? "" :
		 c->loop_mode == SVQISO_LOOP_EPOLL ? "/epoll" :
		 c->loop_mode == SVQISO_LOOP_BUSY_POLL ? "/busy" : "/auto",
		 c->memfd_pool ? "memfd" : "arena", c->preserve ? " preserve" : "");
}

static uint64_t ram_size(uint16_t num)
{
	return RING_AREA + num * SLOT_SIZE + NR_LARGE * LARGE_SIZE;
}

static uint64_t slot_gpa(const struct env *e, int area)
{
	if (area >= 0)
		return GPA_BASE + RING_AREA + (uint64_t)area * SLOT_SIZE;
	return GPA_BASE + RING_AREA + (uint64_t)e->c.num * SLOT_SIZE +
	       (uint64_t)(-1 - area) * LARGE_SIZE;
}

static int efd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static void efd_signal(int fd)
{
	uint64_t one = 1;

	require(write(fd, &one, sizeof(one)) == sizeof(one), "eventfd write: %s", strerror(errno));
}

static bool efd_drain(int fd)
{
	uint64_t v;

	return read(fd, &v, sizeof(v)) == sizeof(v);
}

static void guest_ring_init(struct env *e)
{
	struct svq_drv_cfg dc = {
		.layout = e->c.glayout,
		.num = e->c.num,
		.flags = e->c.gfeat,
		.desc = gp(&e->g, GPA_BASE + DESC_OFF),
		.driver = gp(&e->g, GPA_BASE + DRIVER_OFF),
		.device = gp(&e->g, GPA_BASE + DEVICE_OFF),
		.name = "guest",
	};

	memset(&e->gvq, 0, sizeof(e->gvq));
	ck_assert_int_eq(svq_drv_init(&e->gvq, &dc), 0);
}

static void send_ring(struct env *e)
{
	struct svqiso_shadow_info si;
	struct hb_msg m = { .type = HB_RING };
	int fds[2] = { e->bkick, e->bcall };
	int err;

	ck_assert_int_eq(svqiso_svq_get_shadow(e->svq, &si), 0);
	ck_assert_uint_eq(si.layout, e->c.slayout);
	ck_assert_uint_eq(si.num, e->c.num);
	m.ring = (struct hb_ring){
		.layout = si.layout, .num = si.num, .features = si.features,
		.desc = si.iova.desc, .driver = si.iova.driver, .device = si.iova.device,
		.udesc = si.uaddr.desc, .udriver = si.uaddr.driver,
		.udevice = si.uaddr.device,
	};
	err = peer_call(&e->peer, &m, fds, 2, NULL);
	ck_assert_msg(!err, "backend refused the shadow ring: %s", strerror(-err));
}

static void env_init(struct env *e, const struct cfg *c, const struct peer_opts *po,
		     uint64_t seed_tag)
{
	struct peer_opts def = { .mode = HB_MODE_NONE, .leak_fd = -1, .max_indirect = 1024 };
	char desc[256];
	int err, i;

	memset(e, 0, sizeof(*e));
	e->c = *c;
	e->force_ind = -1;
	e->seed_tag = seed_tag;
	rng_init(&e->rng, seed_tag);
	if (!svqiso_copy_supported(e->c.copy))
		e->c.copy = SVQISO_COPY_AUTO;
	cfg_describe(&e->c, desc, sizeof(desc));
	fprintf(stderr, "# %s seed=%#" PRIx64 " tag=%" PRIu64 "\n", desc, test_seed, seed_tag);

	gram_init(&e->g, ram_size(e->c.num));
	/* The guest memfd must not survive exec: the backend would inherit it. */
	ck_assert_int_ne(fcntl(e->g.fd, F_GETFD) & FD_CLOEXEC, 0);
	e->gkick = efd();
	e->gcall = efd();
	e->bkick = efd();
	e->bcall = efd();

	if (!po)
		po = &def;
	def = *po;
	if (!def.seed)
		def.seed = test_seed ^ (seed_tag * 0x9e3779b97f4a7c15ull);
	err = peer_spawn(&e->peer, &def);
	ck_assert_msg(!err, "cannot start the backend: %s", strerror(-err));

	{
		SVQISO_OPTS(svqiso_iso_opts, io,
			    .region_add = peer_region_add_cb,
			    .region_del = peer_region_del_cb,
			    .region_ctx = &e->peer,
			    .log = log_cb,
			    .name = "svqiso-iso");

		err = svqiso_iso_new(&io, &e->iso);
		ck_assert_int_eq(err, 0);
	}
	if (e->c.memfd_pool) {
		err = svqiso_pool_new_memfd(e->iso, &e->pool);
	} else {
		SVQISO_OPTS(svqiso_arena_opts, ao, .size = e->c.arena_size);

		err = svqiso_pool_new_arena(e->iso, &ao, &e->pool);
	}
	ck_assert_msg(!err, "pool: %s", strerror(-err));

	guest_ring_init(e);
	{
		SVQISO_OPTS(svqiso_svq_opts, so,
			    .flags = e->c.preserve ? SVQISO_SVQ_F_PRESERVE : 0,
			    .num = e->c.num,
			    .guest_layout = e->c.glayout,
			    .shadow_layout = e->c.slayout,
			    .guest_features = e->c.gfeat,
			    .shadow_features = e->c.sfeat,
			    .copy = (uint8_t)e->c.copy,
			    .guest_ring = {
				    .desc = GPA_BASE + DESC_OFF,
				    .driver = GPA_BASE + DRIVER_OFF,
				    .device = GPA_BASE + DEVICE_OFF,
			    },
			    .guest_mem = svqiso_mem_ops(),
			    .guest_mem_ctx = e->g.mem,
			    .iso = e->iso,
			    .pool = e->pool,
			    .log = log_cb,
			    .name = "isolation");

		err = svqiso_svq_new(&so, &e->svq);
		ck_assert_msg(!err, "svqiso_svq_new: %s", strerror(-err));
	}
	send_ring(e);

	e->reqs = calloc(e->c.num, sizeof(*e->reqs));
	e->free_reqs = calloc(e->c.num, sizeof(*e->free_reqs));
	e->by_id = calloc(e->c.num, sizeof(*e->by_id));
	ck_assert(e->reqs && e->free_reqs && e->by_id);
	for (i = e->c.num; i-- > 0; )
		e->free_reqs[e->nfree_reqs++] = (uint16_t)i;
	for (i = 0; i < NR_LARGE; i++)
		e->free_large[e->nfree_large++] = -1 - i;
	/* Everything the guest holds now is what it should hold: zeros (a
	 * fresh memfd, and a calloc'd image), and the ring it laid out. */
	snap_sync(&e->g, GPA_BASE, RING_AREA);
	e->last_progress = e->t0 = now_ms();
}

/* ---- The relay: a loop thread, or this thread ---- */

static void *loop_main(void *arg)
{
	struct env *e = arg;

	e->loop_ret = svqiso_loop_run(e->loop);
	return NULL;
}

static void loop_start(struct env *e)
{
	SVQISO_OPTS(svqiso_loop_opts, lo, .mode = (uint8_t)e->c.loop_mode, .log = log_cb);
	SVQISO_OPTS(svqiso_loop_queue, q,
		    .svq = e->svq,
		    .guest_kick_fd = e->gkick,
		    .guest_call_fd = e->gcall,
		    .backend_kick_fd = e->bkick,
		    .backend_call_fd = e->bcall);
	int err;

	if (e->c.drive != DRIVE_LOOP || e->running)
		return;
	if (no_uring && lo.mode != SVQISO_LOOP_BUSY_POLL)
		lo.mode = SVQISO_LOOP_EPOLL;
	if (!e->loop) {
		err = svqiso_loop_new(&lo, &e->loop);
		ck_assert_msg(!err, "svqiso_loop_new: %s", strerror(-err));
		err = svqiso_loop_add(e->loop, &q);
		ck_assert_int_eq(err, 0);
	}
	ck_assert_int_eq(pthread_create(&e->thread, NULL, loop_main, e), 0);
	e->running = true;
}

static void loop_stop(struct env *e)
{
	if (!e->running)
		return;
	svqiso_loop_stop(e->loop);
	pthread_join(e->thread, NULL);
	e->running = false;
	ck_assert_msg(e->loop_ret == 0, "svqiso_loop_run: %s", strerror(-e->loop_ret));
}

static void manual_mask(struct env *e, int mask, const char *what)
{
	if (mask < 0) {
		require(mask == -EIO, "%s: %s", what, strerror(-mask));
		e->broken = true;
		return;
	}
	if (mask & SVQISO_SIGNAL_BACKEND)
		efd_signal(e->bkick);
	if (mask & SVQISO_SIGNAL_GUEST)
		e->guest_signalled = true;
}

static void manual_used(struct env *e)
{
	manual_mask(e, svqiso_svq_process_used(e->svq), "process_used");
}

static void guest_kick(struct env *e)
{
	if (!svq_drv_kick_prepare(&e->gvq)) {
		e->kicks_suppressed++;
		return;
	}
	e->kicks++;
	if (e->c.drive == DRIVE_LOOP)
		efd_signal(e->gkick);
	else
		manual_mask(e, svqiso_svq_process_avail(e->svq), "process_avail");
}

/* ---- Requests ---- */

static void mark_done(struct env *e, uint64_t tag)
{
	if (tag >= e->done_cap * 8) {
		uint64_t cap = e->done_cap ? e->done_cap * 2 : 4096;

		while (tag >= cap * 8)
			cap *= 2;
		e->done = realloc(e->done, cap);
		require(e->done, "out of memory");
		memset(e->done + e->done_cap, 0, cap - e->done_cap);
		e->done_cap = cap;
	}
	require(!(e->done[tag / 8] & (1u << (tag % 8))),
		      "request tag %" PRIu64 " completed twice", tag);
	e->done[tag / 8] |= 1u << (tag % 8);
}

static uint32_t pick_total(struct env *e, bool *large)
{
	struct rng *r = &e->rng;
	uint32_t p;

	*large = false;
	switch (e->c.profile) {
	case PROFILE_SMALL:
	case PROFILE_HOSTILE:
		return rng_range(r, 1, 4096);
	case PROFILE_FIXED64K:
		return 16 + (64u << 10);
	case PROFILE_TINY:
		return rng_range(r, 1, 64);
	case PROFILE_MIXED:
		break;
	}
	p = rng_below(r, 1000);
	if (p < 4 && e->nfree_large) {		/* 0.4%: up to 1 MiB */
		*large = true;
		return rng_chance(r, 1, 8) ? LARGE_MAX : rng_range(r, SMALL_MAX, LARGE_MAX);
	}
	if (p < 60)				/* 5.6%: 4 KiB .. 48 KiB */
		return rng_range(r, 4096, SMALL_MAX);
	if (p < 300)				/* 24%: 256 B .. 4 KiB */
		return rng_range(r, 256, 4096);
	return rng_range(r, 1, 256);		/* 70%: 1 .. 256 B */
}

static uint16_t pick_nseg(struct env *e, uint32_t total, bool indirect)
{
	struct rng *r = &e->rng;
	uint32_t p = rng_below(r, 100), n;
	uint32_t cap = indirect ? MAX_REQ_SEGS : e->c.num;

	if (cap > MAX_REQ_SEGS)
		cap = MAX_REQ_SEGS;
	if (e->c.profile == PROFILE_TINY)
		n = rng_range(r, 1, 3);
	else if (p < 50)
		n = rng_range(r, 1, 4);
	else if (p < 85)
		n = rng_range(r, 5, 16);
	else
		n = rng_range(r, 17, 64);
	if (n > cap)
		n = cap;
	if (n > total)
		n = total;
	return (uint16_t)n;
}

/* Split @total into @n lengths >= 1. */
static void split_lengths(struct rng *r, struct seg *s, unsigned int n, uint32_t total)
{
	uint32_t w[MAX_REQ_SEGS], sum = 0, left = total - n, given = 0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		w[i] = rng_chance(r, 1, 6) ? 1 : rng_range(r, 1, 1000);
		sum += w[i];
	}
	for (i = 0; i < n; i++) {
		uint32_t extra = (uint32_t)((uint64_t)left * w[i] / sum);

		s[i].len = 1 + extra;
		given += extra;
	}
	s[n - 1].len += left - given;
}

static int cmp_seg(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* Build a request in guest memory; NULL if no request object is free. */
static struct req *make_request(struct env *e)
{
	struct rng *r = &e->rng;
	struct gram *g = &e->g;
	struct req *q;
	struct echo_hash hs;
	struct echo_hdr hdr;
	uint8_t hb[ECHO_HDR_SIZE];
	unsigned int perm[MAX_REQ_SEGS], i, j, t;
	uint32_t total, off;
	uint64_t cur, base, cap;
	bool large = false;

	if (!e->nfree_reqs)
		return NULL;
	q = &e->reqs[e->free_reqs[--e->nfree_reqs]];
	memset(q, 0, offsetof(struct req, seg));
	q->tag = e->next_tag++;
	q->nw = 0;

	total = e->force_total ? e->force_total : pick_total(e, &large);
	q->indirect = e->force_ind >= 0 ? e->force_ind :
		      (e->c.gfeat & F_IND) && rng_chance(r, 1, 2);
	q->nseg = e->force_nseg ? e->force_nseg : pick_nseg(e, total, q->indirect);
	if (large) {
		q->area = e->free_large[--e->nfree_large];
		cap = LARGE_SIZE;
	} else {
		q->area = (int)(q - e->reqs);
		cap = SLOT_SIZE;
	}
	base = e->force_base ? e->force_base : slot_gpa(e, q->area);

	/* Direction: readable first. */
	switch (e->c.profile) {
	case PROFILE_FIXED64K:
		q->nseg = 2;
		q->nout = 1;
		q->seg[0].len = 16;
		q->seg[1].len = 64u << 10;
		break;
	case PROFILE_HOSTILE:
		/* A whole header in the first segment, then anything. */
		q->nseg = (uint16_t)rng_range(r, 2, 8);
		q->nout = (uint16_t)rng_range(r, 1, q->nseg - 1u);
		q->seg[0].len = ECHO_HDR_SIZE + rng_below(r, 64);
		if (total < q->nseg)
			total = q->nseg;
		split_lengths(r, q->seg + 1, q->nseg - 1u, total);
		break;
	default:
		split_lengths(r, q->seg, q->nseg, total);
		t = rng_below(r, 10);
		if (t == 0)
			q->nout = 0;
		else if (t == 1)
			q->nout = q->nseg;
		else
			q->nout = (uint16_t)rng_range(r, q->nseg > 1 ? 1 : 0, q->nseg);
		break;
	}
	for (i = 0; i < q->nseg; i++) {
		if (i < q->nout)
			q->out_bytes += q->seg[i].len;
		else
			q->in_bytes += q->seg[i].len;
	}

	/* Placement: a random order, random gaps, from after the table. */
	for (i = 0; i < q->nseg; i++)
		perm[i] = i;
	for (i = q->nseg; i > 1 && !e->force_base; i--) {
		j = rng_below(r, i);
		t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
	cur = base + TABLE_BYTES;
	for (i = 0; i < q->nseg; i++) {
		if (!e->force_base && rng_chance(r, 1, 2))
			cur += rng_range(r, 1, 64);
		q->seg[perm[i]].gpa = cur;
		cur += q->seg[perm[i]].len;
	}
	if (!e->force_base)
		require(cur - base <= cap, "request does not fit its area");
	q->span_lo = base;
	q->span_hi = cur;
	memset(gp(g, base), GAP_BYTE, cur - base);

	/* Readable bytes: random, then the header over the first 16. */
	hdr.tag = q->tag;
	hdr.seed = (uint32_t)rng_next(r);
	t = rng_below(r, 10);
	if (e->c.profile == PROFILE_HOSTILE || e->c.profile == PROFILE_FIXED64K || t < 6)
		hdr.bytes_to_write = q->in_bytes;
	else if (t == 6)
		hdr.bytes_to_write = 0;
	else if (t < 9)
		hdr.bytes_to_write = q->in_bytes ? rng_below(r, q->in_bytes) : 0;
	else
		hdr.bytes_to_write = q->in_bytes + rng_range(r, 1, 1u << 20);
	echo_put_hdr(hb, &hdr);
	echo_hash_init(&hs);
	for (i = 0, off = 0; i < q->nout; i++) {
		uint8_t *p = gp(g, q->seg[i].gpa);
		uint32_t len = q->seg[i].len;

		rng_fill(r, p, len);
		for (j = 0; off + j < ECHO_HDR_SIZE && j < len; j++)
			p[j] = hb[off + j];
		off += len;
		echo_hash_update(&hs, p, len);
	}
	hdr = echo_parse_hdr(hb, q->out_bytes < ECHO_HDR_SIZE ? q->out_bytes : ECHO_HDR_SIZE);
	if (q->out_bytes < ECHO_HDR_SIZE) {
		/* The device parses a zero-padded header from fewer bytes. */
		uint8_t raw[ECHO_HDR_SIZE];

		for (i = 0, off = 0; i < q->nout; i++) {
			memcpy(raw + off, gp(g, q->seg[i].gpa), q->seg[i].len);
			off += q->seg[i].len;
		}
		hdr = echo_parse_hdr(raw, q->out_bytes);
	}
	q->key = echo_key(&hdr, echo_hash_final(&hs));
	q->expect_len = echo_write_len(&hdr, q->out_bytes, q->in_bytes);

	/* Writable bytes: a canary. */
	q->canary = (uint8_t)rng_next(r);
	for (i = q->nout; i < q->nseg; i++) {
		memset(gp(g, q->seg[i].gpa), q->canary, q->seg[i].len);
		q->wsorted[q->nw++] = q->seg[i];
	}
	qsort(q->wsorted, q->nw, sizeof(q->wsorted[0]), cmp_seg);
	/* What the guest wrote, submitted or not. */
	snap_sync(g, q->span_lo, q->span_hi - q->span_lo);
	return q;
}

static void release_request(struct env *e, struct req *q)
{
	if (q->area < 0)
		e->free_large[e->nfree_large++] = q->area;
	e->free_reqs[e->nfree_reqs++] = (uint16_t)(q - e->reqs);
}

/* Return: 0, or -ENOSPC (the ring is full; try again later). */
static int submit(struct env *e, struct req *q)
{
	struct svq_seg s[MAX_REQ_SEGS];
	struct svq_indirect ind;
	uint16_t id;
	unsigned int i;
	int err;

	for (i = 0; i < q->nseg; i++)
		s[i] = (struct svq_seg){
			.addr = q->seg[i].gpa, .len = q->seg[i].len, .write = i >= q->nout,
		};
	ind = (struct svq_indirect){
		.hva = gp(&e->g, q->span_lo), .addr = q->span_lo, .cap = MAX_REQ_SEGS,
	};
	err = svq_drv_add(&e->gvq, s, q->nseg, q->indirect ? &ind : NULL, &id);
	if (err == -ENOSPC)
		return err;
	require(!err, "guest svq_drv_add: %s", strerror(-err));
	require(!e->by_id[id], "guest id %u added twice", id);
	e->by_id[id] = q;
	/* So is the indirect table. */
	snap_sync(&e->g, q->span_lo, TABLE_BYTES);
	e->submitted++;
	e->outstanding++;
	e->sum_out += q->out_bytes;
	e->sum_in += q->expect_len;
	return 0;
}

/* Submit up to @n requests, as many as fit. Return: how many. */
static unsigned int submit_some(struct env *e, unsigned int n)
{
	unsigned int added;

	for (added = 0; added < n; added++) {
		struct req *q = make_request(e);

		if (!q)
			break;
		if (submit(e, q) == -ENOSPC) {
			release_request(e, q);
			e->next_tag--;
			break;
		}
	}
	return added;
}

static void fail_request(struct env *e, const struct req *q, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail_request(struct env *e, const struct req *q, const char *fmt, ...)
{
	char what[256], desc[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	cfg_describe(&e->c, desc, sizeof(desc));
	ck_abort_msg("%s [tag=%" PRIu64 " nseg=%u nout=%u out=%u in=%u expect_len=%u "
		     "indirect=%d area=%d; %s; seed=%#" PRIx64 " tag=%" PRIu64 "]",
		     what, q->tag, q->nseg, q->nout, q->out_bytes, q->in_bytes,
		     q->expect_len, q->indirect, q->area, desc, test_seed, e->seed_tag);
}

static uint32_t first_not(const uint8_t *p, uint8_t c, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (p[i] != c)
			return i;
	return n;
}

static void verify(struct env *e, struct req *q, uint32_t len)
{
	struct gram *g = &e->g;
	uint32_t off = 0, i, n, k;
	uint64_t at;
	int64_t d;

	if (e->light_verify) {
		if (len > q->in_bytes)
			fail_request(e, q, "used len %u past the writable bytes", len);
	} else {
		if (len != q->expect_len)
			fail_request(e, q, "used len %u, expected %u", len, q->expect_len);
		for (i = q->nout; i < q->nseg; i++) {
			const uint8_t *p = gp(g, q->seg[i].gpa);
			ptrdiff_t bad;

			n = q->seg[i].len;
			k = off < len ? (len - off < n ? len - off : n) : 0;
			bad = echo_check(q->key, off, p, k);
			if (bad >= 0)
				fail_request(e, q, "device-written byte %u (segment %u, gpa %#" PRIx64
					     ") differs from the pattern", off + (uint32_t)bad, i,
					     q->seg[i].gpa + (uint64_t)bad);
			if (first_not(p + k, q->canary, n - k) != n - k)
				fail_request(e, q, "byte %u past the used length changed "
					     "(segment %u, gpa %#" PRIx64 ")",
					     off + k + first_not(p + k, q->canary, n - k), i,
					     q->seg[i].gpa + k + first_not(p + k, q->canary, n - k));
			off += n;
		}
	}
	/* Everything of the request but its writable segments is as written. */
	at = q->span_lo;
	for (i = 0; i <= q->nw; i++) {
		uint64_t end = i < q->nw ? q->wsorted[i].gpa : q->span_hi;

		d = snap_diff(g, at, end - at);
		if (d >= 0)
			fail_request(e, q, "guest byte at gpa %#" PRIx64 " changed outside "
				     "the writable segments", (uint64_t)d);
		if (i < q->nw)
			at = q->wsorted[i].gpa + q->wsorted[i].len;
	}
	/* Its writable segments now hold what the device gave back. */
	for (i = 0; i < q->nw; i++)
		snap_sync(g, q->wsorted[i].gpa, q->wsorted[i].len);
}

/* Collect the guest's used entries. Return: how many. */
static unsigned int reap(struct env *e)
{
	unsigned int n = 0;
	uint32_t len;
	uint16_t id;
	struct req *q;
	int r;

	while ((r = svq_drv_get_used(&e->gvq, &id, &len)) == 1) {
		q = e->by_id[id];
		require(q, "guest used id %u is not in flight", id);
		e->by_id[id] = NULL;
		verify(e, q, len);
		mark_done(e, q->tag);
		release_request(e, q);
		e->outstanding--;
		e->completed++;
		n++;
	}
	require(r == 0, "the guest ring's used side is broken: %s", e->gvq.rc.reason);
	if (n)
		e->last_progress = now_ms();
	return n;
}

static void dump_state(struct env *e, const char *why)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	struct hb_stats bs;
	char desc[256];

	loop_stop(e);
	cfg_describe(&e->c, desc, sizeof(desc));
	svqiso_svq_get_stats(e->svq, &st);
	memset(&bs, 0, sizeof(bs));
	peer_stats(&e->peer, &bs);
	ck_abort_msg("%s: %s seed=%#" PRIx64 " tag=%" PRIu64 ": guest submitted %" PRIu64
		     " completed %" PRIu64 " outstanding %" PRIu64 " kicks %" PRIu64
		     "/%" PRIu64 " suppressed; svq requests %" PRIu64 " completions %" PRIu64
		     " stalls %" PRIu64 " kicks %" PRIu64 " calls %" PRIu64 " broken=%s; "
		     "backend chains %" PRIu64 " kicks %" PRIu64 " calls %" PRIu64
		     " error %d %s",
		     why, desc, test_seed, e->seed_tag, e->submitted, e->completed,
		     e->outstanding, e->kicks, e->kicks_suppressed, st.requests,
		     st.completions, st.pool_stalls, st.kicks_sent, st.calls_sent,
		     svqiso_svq_is_broken(e->svq) ? svqiso_svq_broken_reason(e->svq) : "no",
		     bs.chains, bs.kicks, bs.calls, bs.error, bs.reason);
}

/*
 * Wait for a guest notification (or, manual, relay until the svq asks for
 * one). Return: false if @quiet_ms passed without one (only if @quiet_ms > 0;
 * otherwise a stall fails the test).
 */
static bool wait_guest_call(struct env *e, int quiet_ms)
{
	int timeout = quiet_ms > 0 ? quiet_ms : stall_timeout_ms;
	uint64_t start = now_ms();
	struct pollfd p;
	int ret;

	if (e->c.drive == DRIVE_LOOP) {
		bool busy = e->c.loop_mode == SVQISO_LOOP_BUSY_POLL;

		p = (struct pollfd){ .fd = e->gcall, .events = POLLIN };
		for (;;) {
			ret = poll(&p, 1, busy ? 1 : timeout);
			if (ret > 0) {
				efd_drain(e->gcall);
				return true;
			}
			if (busy && now_ms() - start < (uint64_t)timeout)
				return true;	/* the guest polls its ring too */
			if (quiet_ms > 0)
				return false;
			dump_state(e, "stall: no guest notification");
		}
	}
	while (!e->guest_signalled && !e->broken) {
		p = (struct pollfd){ .fd = e->bcall, .events = POLLIN };
		ret = poll(&p, 1, timeout);
		if (ret <= 0) {
			if (quiet_ms > 0)
				return false;
			dump_state(e, "stall: no backend call");
		}
		efd_drain(e->bcall);
		manual_used(e);
	}
	e->guest_signalled = false;
	return true;
}

/* Wait for at least one completion. Return: false on a quiet timeout. */
static bool guest_wait(struct env *e, int quiet_ms)
{
	for (;;) {
		if (reap(e))
			return true;
		if (e->broken)
			return false;
		if (svq_drv_enable_cb(&e->gvq)) {
			svq_drv_disable_cb(&e->gvq);
			continue;
		}
		if (!wait_guest_call(e, quiet_ms)) {
			svq_drv_disable_cb(&e->gvq);
			return reap(e) > 0;
		}
		svq_drv_disable_cb(&e->gvq);
		if (quiet_ms <= 0 && now_ms() - e->last_progress > (uint64_t)stall_timeout_ms &&
		    !reap(e))
			dump_state(e, "stall: notified but nothing used");
	}
}

/* Submit and complete @count requests. */
static void run_requests(struct env *e, uint64_t count)
{
	uint64_t target = e->submitted + count;
	uint16_t depth = e->c.depth ? e->c.depth : e->c.num;
	struct req *pend = NULL;

	svq_drv_disable_cb(&e->gvq);
	loop_start(e);
	while (e->completed < target) {
		unsigned int burst = rng_range(&e->rng, 1, e->c.num), added = 0;
		bool blocked = false;

		while (e->submitted < target && e->outstanding < depth && added < burst) {
			if (!pend)
				pend = make_request(e);
			if (!pend || submit(e, pend) == -ENOSPC) {
				blocked = true;
				break;
			}
			pend = NULL;
			added++;
		}
		if (added)
			guest_kick(e);
		if (reap(e))
			continue;
		if (blocked || e->outstanding >= depth || e->submitted == target ||
		    rng_chance(&e->rng, 1, 4))
			guest_wait(e, 0);
		require(!e->broken, "svq broke: %s", svqiso_svq_broken_reason(e->svq));
	}
	ck_assert_ptr_null(pend);
	loop_stop(e);
}

/* ---- Isolation ---- */

static void inspect_backend(struct env *e, struct inspect_report *rep)
{
	unsigned int n = svqiso_iso_nr_regions(e->iso), i;
	struct stat *allowed = calloc(n ? n : 1, sizeof(*allowed));
	struct svqiso_region r;
	uint64_t total = 0;
	struct hb_stats bs;
	int err;

	ck_assert_ptr_nonnull(allowed);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(svqiso_iso_get_region(e->iso, i, &r), 0);
		ck_assert_int_eq(fstat(r.fd, &allowed[i]), 0);
		total += r.size;
	}
	/* A round trip first: the backend has handled everything sent so far. */
	ck_assert_int_eq(peer_stats(&e->peer, &bs), 0);
	err = inspect_process(e->peer.pid, &e->g.st, allowed, n, rep);
	ck_assert_msg(!err, "cannot inspect the backend: %s", strerror(-err));
	free(allowed);
	ck_assert_msg(!inspect_leaks(rep), "guest RAM reached the backend: %s", rep->detail);
	ck_assert_msg(!rep->fd_memfd_unknown && !rep->map_memfd_unknown,
		      "the backend holds memory that is no isolated region: %s", rep->detail);
	ck_assert_msg(rep->map_memfd_bytes == total,
		      "backend maps %" PRIu64 " memfd bytes, isolated regions total %" PRIu64,
		      rep->map_memfd_bytes, total);
	ck_assert_uint_eq(rep->fd_memfd, n);
	ck_assert_uint_eq(bs.regions, n);
	ck_assert_uint_eq(bs.region_bytes, total);
}

/* ---- Finishing a workload ---- */

static void check_totals(struct env *e, uint64_t requests)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	struct hb_stats bs;
	int64_t d;

	ck_assert_uint_eq(e->completed, requests);
	ck_assert_uint_eq(e->outstanding, 0);
	ck_assert_int_eq(svqiso_svq_get_stats(e->svq, &st), 0);
	ck_assert_uint_eq(st.requests, requests);
	ck_assert_uint_eq(st.completions, requests);
	ck_assert_uint_eq(st.errors, 0);
	ck_assert_uint_eq(st.clamped, 0);
	if (!e->c.preserve) {
		ck_assert_uint_eq(st.bytes_out, e->sum_out);
		ck_assert_uint_eq(st.bytes_in, e->sum_in);
	}
	ck_assert_int_eq(peer_stats(&e->peer, &bs), 0);
	ck_assert_msg(!bs.error, "the backend found the shadow ring malformed: %s", bs.reason);
	ck_assert_uint_eq(bs.chains, requests);
	ck_assert_uint_eq(bs.bytes_read, e->sum_out);
	ck_assert_uint_eq(bs.bytes_written, e->sum_in);
	ck_assert_uint_eq(svqiso_pool_in_use(e->pool), 0);
	/* Guest RAM outside the ring is exactly what the guest wrote and got. */
	d = ram_diff(&e->g, GPA_BASE + RING_AREA, e->g.size - RING_AREA);
	ck_assert_msg(d < 0, "guest byte at gpa %#" PRIx64 " changed behind the guest's back",
		      (uint64_t)d);
}

static void env_fini(struct env *e, bool check_backend_exit)
{
	struct svqiso_svq_stats st;
	struct hb_stats bs;
	int status;

	loop_stop(e);
	st.sz = sizeof(st);
	svqiso_svq_get_stats(e->svq, &st);
	fprintf(stderr, "# %" PRIu64 " requests completed in %" PRIu64 " ms; guest kicks %"
		PRIu64 "/%" PRIu64 " suppressed; svq kicks %" PRIu64 "/%" PRIu64
		" suppressed, calls %" PRIu64 "/%" PRIu64 " suppressed, stalls %" PRIu64
		", high water %" PRIu64 ", clamped %" PRIu64 "\n",
		e->completed, now_ms() - e->t0, e->kicks, e->kicks_suppressed,
		st.kicks_sent, st.kicks_suppressed, st.calls_sent, st.calls_suppressed,
		st.pool_stalls, st.pool_high_water, st.clamped);
	svqiso_loop_free(e->loop);
	svqiso_svq_free(e->svq);
	svqiso_pool_free(e->pool);
	svqiso_iso_free(e->iso);
	if (check_backend_exit) {
		/* Every region went away at the backend too. */
		ck_assert_int_eq(peer_stats(&e->peer, &bs), 0);
		ck_assert_uint_eq(bs.regions, 0);
		ck_assert_uint_eq(bs.region_adds, bs.region_dels);
	}
	status = peer_stop(&e->peer);
	if (check_backend_exit)
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "backend exit status %#x", status);
	svq_drv_fini(&e->gvq);
	close(e->gkick);
	close(e->gcall);
	close(e->bkick);
	close(e->bcall);
	free(e->reqs);
	free(e->free_reqs);
	free(e->by_id);
	free(e->done);
	gram_fini(&e->g);
}

static void skip_without_backend(void)
{
	const char *b = getenv("SVQ_BACKEND");

	if (!b || !*b || access(b, X_OK))
		ck_abort_msg("SVQ_BACKEND does not name the backend program");
}

/* ---- Tests: isolation ---- */

static const struct cfg base_cfg = {
	.glayout = SPLIT, .slayout = SPLIT,
	.gfeat = F_IND | F_EVENT, .sfeat = F_IND | F_EVENT,
	.num = 64, .copy = SVQISO_COPY_AUTO, .drive = DRIVE_MANUAL,
	.profile = PROFILE_MIXED,
};

START_TEST(test_guest_memfd_is_cloexec)
{
	struct gram g;

	gram_init(&g, ram_size(8));
	ck_assert_int_ne(fcntl(g.fd, F_GETFD) & FD_CLOEXEC, 0);
	gram_fini(&g);
}
END_TEST

/* Before, during and after I/O the backend reaches isolated memory only. */
START_TEST(test_backend_sees_only_isolated_memory)
{
	struct cfg c = base_cfg;
	struct inspect_report rep;
	struct env e;
	unsigned int n;

	skip_without_backend();
	c.glayout = c.slayout = _i & 1;
	c.memfd_pool = _i == 2;
	env_init(&e, &c, NULL, 100 + _i);
	inspect_backend(&e, &rep);
	ck_assert_uint_ge(rep.fds, 3);

	/* In flight: chains forwarded (their regions announced), not kicked. */
	n = submit_some(&e, 16);
	ck_assert_uint_ge(n, 1);
	svq_drv_kick_prepare(&e.gvq);
	ck_assert_int_ge(svqiso_svq_process_avail(e.svq), 0);
	inspect_backend(&e, &rep);
	if (c.memfd_pool)	/* the shadow ring's, and one per request */
		ck_assert_uint_ge(svqiso_iso_nr_regions(e.iso), 1 + n);
	efd_signal(e.bkick);
	while (e.completed < n)
		guest_wait(&e, 0);
	run_requests(&e, 500);
	inspect_backend(&e, &rep);
	check_totals(&e, 500 + n);
	env_fini(&e, true);
}
END_TEST

/* Negative control: a backend given guest RAM is caught, by fd and by map. */
START_TEST(test_inspector_catches_guest_ram_region)
{
	struct svqiso_region leak;
	struct inspect_report rep;
	struct env e;

	skip_without_backend();
	env_init(&e, &base_cfg, NULL, 200);
	leak = (struct svqiso_region){
		.iova = 0x7f0000000000ull, .size = RING_AREA, .uaddr = e.g.lin,
		.fd = e.g.fd, .fd_offset = 0,
	};
	ck_assert_int_eq(peer_region_add(&e.peer, &leak), 0);
	ck_assert_int_eq(inspect_process(e.peer.pid, &e.g.st, NULL, 0, &rep), 0);
	ck_assert_msg(rep.fd_guest == 1 && rep.map_guest == 1,
		      "inspector missed guest RAM: fds %u maps %u (%s)",
		      rep.fd_guest, rep.map_guest, rep.detail);
	ck_assert(inspect_leaks(&rep));
	ck_assert_uint_ge(rep.map_memfd_unknown, 1);
	ck_assert_int_eq(peer_region_del(&e.peer, leak.iova), 0);
	inspect_backend(&e, &rep);
	env_fini(&e, true);
}
END_TEST

/* Negative control: a guest RAM fd inherited across exec is caught. */
START_TEST(test_inspector_catches_inherited_fd)
{
	struct peer_opts po = { .mode = HB_MODE_NONE, .max_indirect = 1024 };
	struct inspect_report rep;
	struct gram g;
	struct peer p;

	skip_without_backend();
	gram_init(&g, ram_size(8));
	po.leak_fd = g.fd;
	ck_assert_int_eq(peer_spawn(&p, &po), 0);
	/* A round trip: the backend is past exec. */
	{
		struct hb_stats bs;

		ck_assert_int_eq(peer_stats(&p, &bs), 0);
	}
	ck_assert_int_eq(inspect_process(p.pid, &g.st, NULL, 0, &rep), 0);
	ck_assert_msg(rep.fd_guest == 1 && rep.map_guest == 0, "fds %u maps %u (%s)",
		      rep.fd_guest, rep.map_guest, rep.detail);
	ck_assert_uint_eq(rep.fd_memfd_unknown, 1);
	peer_stop(&p);
	gram_fini(&g);
}
END_TEST

/* ---- Tests: randomized workloads ---- */

#define NR_COMBOS 64	/* guest layout x shadow layout x guest features x shadow features */

static struct cfg combo_cfg(unsigned int i)
{
	static const uint16_t split_nums[] = { 64, 128, 256, 32 };
	static const uint16_t packed_nums[] = { 61, 128, 250, 33 };
	static const int copies[] = {
		SVQISO_COPY_AUTO, SVQISO_COPY_MEMCPY, SVQISO_COPY_MOVSB, SVQISO_COPY_NT,
	};
	struct cfg c = base_cfg;
	unsigned int h = (i * 7 + (i >> 3)) & 3;

	c.glayout = i & 1;
	c.slayout = (i >> 1) & 1;
	c.gfeat = (i >> 2) & 3;
	c.sfeat = (i >> 4) & 3;
	c.num = c.glayout == PACKED && c.slayout == PACKED ? packed_nums[h] : split_nums[h];
	c.copy = copies[(i + (i >> 2)) & 3];
	switch (i % 6) {
	case 0:
	case 3:
		c.drive = DRIVE_MANUAL;
		break;
	case 1:
	case 4:
		c.drive = DRIVE_LOOP;
		c.loop_mode = SVQISO_LOOP_AUTO;
		break;
	case 2:
		c.drive = DRIVE_LOOP;
		c.loop_mode = SVQISO_LOOP_EPOLL;
		break;
	case 5:
		c.drive = DRIVE_LOOP;
		c.loop_mode = i % 12 == 11 ? SVQISO_LOOP_BUSY_POLL : SVQISO_LOOP_AUTO;
		break;
	}
	switch (i % 5) {
	case 0:
		c.depth = 1;	/* one request at a time: every notification path */
		break;
	case 1:
		c.depth = c.num / 4;
		break;
	default:
		c.depth = 0;
		break;
	}
	c.preserve = i % 7 == 3;
	return c;
}

#define COMBO_REQUESTS 3600

START_TEST(test_random_workload_matches)
{
	struct cfg c = combo_cfg(_i);
	uint64_t n = scaled(c.depth == 1 ? COMBO_REQUESTS / 4 : COMBO_REQUESTS);
	struct inspect_report rep;
	struct env e;

	skip_without_backend();
	env_init(&e, &c, NULL, 1000 + _i);
	run_requests(&e, n);
	check_totals(&e, n);
	inspect_backend(&e, &rep);
	env_fini(&e, true);
}
END_TEST

/* The per-request memfd pool: every buffer is a region of its own. */
START_TEST(test_memfd_pool_regions_reach_backend)
{
	struct cfg c = base_cfg;
	uint64_t n = scaled(1500);
	struct hb_stats bs;
	struct env e;

	skip_without_backend();
	c.memfd_pool = true;
	c.glayout = _i & 1;
	c.slayout = (_i >> 1) & 1;
	c.drive = _i & 1 ? DRIVE_LOOP : DRIVE_MANUAL;
	c.profile = PROFILE_SMALL;
	env_init(&e, &c, NULL, 300 + _i);
	run_requests(&e, n);
	check_totals(&e, n);
	ck_assert_int_eq(peer_stats(&e.peer, &bs), 0);
	/* At least one region per request came and went. */
	ck_assert_uint_ge(bs.region_adds, n);
	ck_assert_uint_eq(bs.region_adds - bs.region_dels, svqiso_iso_nr_regions(e.iso));
	ck_assert_uint_eq(bs.region_adds, e.peer.adds);
	env_fini(&e, true);
}
END_TEST

/*
 * A chain the guest side accepts must not break the queue because the shadow
 * ring lacks INDIRECT_DESC. _i = 0: a 40-entry indirect table on a 32-entry
 * ring; _i = 1: a direct chain of all 32 descriptors, one of which crosses a
 * guest region boundary (33 segments). The bounce buffer is contiguous, so
 * two shadow descriptors (readable part, writable part) would always do.
 */
START_TEST(test_long_guest_chain_over_direct_shadow_completes)
{
	struct cfg c = base_cfg;
	struct env e;

	skip_without_backend();
	c.num = 32;
	c.gfeat = F_IND | F_EVENT;
	c.sfeat = F_EVENT;
	env_init(&e, &c, NULL, 600 + _i);
	if (_i == 0) {
		e.force_nseg = 40;
		e.force_ind = 1;
		e.force_total = 40 * 100;
	} else {
		e.force_nseg = 32;
		e.force_ind = 0;
		e.force_total = 32 * 64;
		e.force_base = e.g.start[1] - TABLE_BYTES - 1000;
		ck_assert_uint_ge(e.force_base, GPA_BASE + RING_AREA);
	}
	ck_assert_uint_eq(submit_some(&e, 1), 1);
	if (_i == 1) {
		struct req *q = &e.reqs[0];
		unsigned int k, pieces = 0;

		for (k = 0; k < q->nseg; k++)
			pieces += gram_pieces(&e.g, q->seg[k].gpa, q->seg[k].len);
		ck_assert_uint_eq(pieces, 33);
	}
	guest_kick(&e);
	if (!e.broken)
		guest_wait(&e, 0);
	ck_assert_msg(!e.broken, "a chain the guest side accepted broke the queue: %s",
		      svqiso_svq_broken_reason(e.svq));
	check_totals(&e, 1);
	env_fini(&e, true);
}
END_TEST

/*
 * Split ring indexes are 16 bits: more than 65536 requests wrap the guest's
 * and the shadow's avail and used indexes, and event idx compares across the
 * wrap. _i = 0: this thread relays; _i = 1: the loop does.
 */
START_TEST(test_split_indexes_wrap_loses_nothing)
{
	struct cfg c = base_cfg;
	uint64_t n = scaled(70000) > 66000 ? scaled(70000) : 66000;
	struct env e;

	skip_without_backend();
	c.num = 256;
	c.gfeat = _i ? F_EVENT | F_IND : F_EVENT;
	c.sfeat = F_EVENT;
	c.profile = PROFILE_TINY;
	c.drive = _i ? DRIVE_LOOP : DRIVE_MANUAL;
	c.copy = SVQISO_COPY_MEMCPY;
	env_init(&e, &c, NULL, 700 + _i);
	run_requests(&e, n);
	check_totals(&e, n);
	env_fini(&e, true);
}
END_TEST

/* ---- Tests: backpressure ---- */

START_TEST(test_tiny_arena_stalls_loses_nothing)
{
	struct cfg c = base_cfg;
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint64_t n = scaled(2000);
	struct env e;

	skip_without_backend();
	c.arena_size = 256 << 10;
	c.num = 64;
	c.depth = 64;
	c.profile = PROFILE_FIXED64K;
	c.glayout = _i & 1;
	c.slayout = (_i >> 1) & 1;
	c.drive = _i >= 2 ? DRIVE_LOOP : DRIVE_MANUAL;
	env_init(&e, &c, NULL, 400 + _i);
	run_requests(&e, n);
	check_totals(&e, n);
	ck_assert_int_eq(svqiso_svq_get_stats(e.svq, &st), 0);
	ck_assert_uint_gt(st.pool_stalls, 0);
	ck_assert_uint_le(st.pool_high_water, 256 << 10);
	env_fini(&e, true);
}
END_TEST

/* ---- Tests: hostile backend ---- */

enum expect {
	X_BROKEN,	/* broken, reason names @rule */
	X_CLAMPED,	/* all complete, every length clamped and counted */
	X_PENDING,	/* @done complete, the rest stay pending, not broken */
	X_ANY,		/* anything but a crash or a stray write */
};

struct hostile_case {
	int mode;
	uint8_t glayout, slayout;
	uint64_t after;
	enum expect expect;
	const char *rule;
	uint64_t min_done, max_done;	/* completions the guest may see */
	enum drive drive;		/* the loop on a thread, or this thread */
};

#define NREQ_HOSTILE 8

/*
 * What each misbehaviour must lead to. The backend takes all NREQ_HOSTILE
 * requests in one batch, completes @after of them honestly, then:
 *  - bad-id (id >= num), unissued-id (id < num, never in flight), dup-id (the
 *    id it just completed, again): broken, "used-id".
 *  - too-many (one entry more than outstanding), idx-jump (split used->idx
 *    1000 ahead): broken, "used-idx". Packed reports a used descriptor with
 *    nothing outstanding as "used-idx" too.
 *  - len-overflow (every length past the writable bytes by 1, 4096 or up to
 *    2^32 - 1): nothing breaks; the guest sees exactly its writable bytes as
 *    the length, each completion counts in stats.clamped.
 *  - flags-avail / flags-used (packed shadow: a used-looking entry with AVAIL
 *    != USED at the next used position): not used. The svq stays healthy, the
 *    @after requests before it complete, that one and all after it stay
 *    pending; svqiso_svq_reset() then reclaims their bounce buffers.
 *  - scribble (random bytes over the used area, the shadow ring's region and
 *    the bounce pool, after every batch): anything but a crash or a write to
 *    guest RAM outside in-flight writable segments.
 * Completions before a violation may or may not reach the guest: the svq
 * stops at the first bad entry and does not publish the good ones before it
 * (min_done..max_done).
 */
static const struct hostile_case hostile_cases[] = {
	{ HB_MODE_BAD_ID, SPLIT, SPLIT, 0, X_BROKEN, "used-id", 0, 0, DRIVE_MANUAL },
	{ HB_MODE_BAD_ID, PACKED, PACKED, 3, X_BROKEN, "used-id", 0, 3, DRIVE_MANUAL },
	{ HB_MODE_UNISSUED_ID, PACKED, SPLIT, 2, X_BROKEN, "used-id", 0, 2, DRIVE_MANUAL },
	{ HB_MODE_UNISSUED_ID, SPLIT, PACKED, 0, X_BROKEN, "used-id", 0, 0, DRIVE_MANUAL },
	{ HB_MODE_DUP_ID, SPLIT, SPLIT, 0, X_BROKEN, "used-id", 0, 1, DRIVE_MANUAL },
	{ HB_MODE_DUP_ID, PACKED, PACKED, 2, X_BROKEN, "used-id", 0, 3, DRIVE_MANUAL },
	{ HB_MODE_TOO_MANY, SPLIT, SPLIT, 0, X_BROKEN, "used-idx", 0, 0, DRIVE_MANUAL },
	{ HB_MODE_TOO_MANY, SPLIT, PACKED, 0, X_BROKEN, "used-idx", 0, NREQ_HOSTILE, DRIVE_MANUAL },
	{ HB_MODE_IDX_JUMP, PACKED, SPLIT, 0, X_BROKEN, "used-idx", 0, 0, DRIVE_MANUAL },
	{ HB_MODE_IDX_JUMP, SPLIT, SPLIT, 4, X_BROKEN, "used-idx", 0, 4, DRIVE_MANUAL },
	{ HB_MODE_LEN_OVERFLOW, SPLIT, PACKED, 0, X_CLAMPED, NULL, NREQ_HOSTILE, NREQ_HOSTILE,
	  DRIVE_MANUAL },
	{ HB_MODE_LEN_OVERFLOW, PACKED, SPLIT, 0, X_CLAMPED, NULL, NREQ_HOSTILE, NREQ_HOSTILE,
	  DRIVE_MANUAL },
	{ HB_MODE_FLAGS_AVAIL, SPLIT, PACKED, 2, X_PENDING, NULL, 2, 2, DRIVE_MANUAL },
	{ HB_MODE_FLAGS_AVAIL, PACKED, PACKED, 0, X_PENDING, NULL, 0, 0, DRIVE_MANUAL },
	{ HB_MODE_FLAGS_USED, PACKED, PACKED, 3, X_PENDING, NULL, 3, 3, DRIVE_MANUAL },
	{ HB_MODE_FLAGS_USED, SPLIT, PACKED, 0, X_PENDING, NULL, 0, 0, DRIVE_MANUAL },
	{ HB_MODE_SCRIBBLE, SPLIT, SPLIT, 0, X_ANY, NULL, 0, UINT64_MAX, DRIVE_MANUAL },
	{ HB_MODE_SCRIBBLE, SPLIT, PACKED, 0, X_ANY, NULL, 0, UINT64_MAX, DRIVE_MANUAL },
	{ HB_MODE_SCRIBBLE, PACKED, SPLIT, 0, X_ANY, NULL, 0, UINT64_MAX, DRIVE_MANUAL },
	{ HB_MODE_SCRIBBLE, PACKED, PACKED, 0, X_ANY, NULL, 0, UINT64_MAX, DRIVE_MANUAL },
	/* The same through the event loop: it must leave a broken queue alone. */
	{ HB_MODE_BAD_ID, SPLIT, SPLIT, 1, X_BROKEN, "used-id", 0, 1, DRIVE_LOOP },
	{ HB_MODE_DUP_ID, PACKED, PACKED, 0, X_BROKEN, "used-id", 0, 1, DRIVE_LOOP },
	{ HB_MODE_TOO_MANY, PACKED, SPLIT, 0, X_BROKEN, "used-idx", 0, 0, DRIVE_LOOP },
	{ HB_MODE_LEN_OVERFLOW, PACKED, PACKED, 0, X_CLAMPED, NULL, NREQ_HOSTILE, NREQ_HOSTILE,
	  DRIVE_LOOP },
	{ HB_MODE_FLAGS_USED, PACKED, PACKED, 5, X_PENDING, NULL, 5, 5, DRIVE_LOOP },
	{ HB_MODE_SCRIBBLE, SPLIT, PACKED, 0, X_ANY, NULL, 0, UINT64_MAX, DRIVE_LOOP },
};

/* Diagnostics: what the guest knows about @gpa. */
static void describe_gpa(struct env *e, uint64_t gpa, char *buf, size_t n)
{
	size_t used = 0;
	uint16_t i, k;

	used += snprintf(buf, n, "now %#x, expected %#x;", *gp(&e->g, gpa),
			 e->g.snap[gpa - GPA_BASE]);
	for (i = 0; i < e->c.num && used < n; i++) {
		const struct req *q = &e->reqs[i];
		bool inflight = false;

		if (gpa < q->span_lo || gpa >= q->span_hi)
			continue;
		for (k = 0; k < e->c.num; k++)
			inflight |= e->by_id[k] == q;
		used += snprintf(buf + used, n - used, " request tag %" PRIu64 " (%s, %s) span "
				 "%#" PRIx64 "-%#" PRIx64 " nseg %u nout %u:",
				 q->tag, inflight ? "in flight" : "done",
				 q->indirect ? "indirect" : "direct", q->span_lo, q->span_hi,
				 q->nseg, q->nout);
		for (k = 0; k < q->nseg && used < n; k++)
			used += snprintf(buf + used, n - used, " %c%#" PRIx64 "+%u",
					 k < q->nout ? 'r' : 'w', q->seg[k].gpa, q->seg[k].len);
	}
}

/* Guest RAM outside the ring and outside in-flight writable segments is as written. */
static void check_guest_ram(struct env *e, const char *what)
{
	uint16_t i;
	int64_t d;

	for (i = 0; i < e->c.num; i++) {
		const struct req *q = e->by_id[i];
		unsigned int k;

		if (!q)
			continue;
		for (k = 0; k < q->nw; k++)
			snap_sync(&e->g, q->wsorted[k].gpa, q->wsorted[k].len);
	}
	d = ram_diff(&e->g, GPA_BASE + RING_AREA, e->g.size - RING_AREA);
	if (d >= 0) {
		char where[512];

		describe_gpa(e, (uint64_t)d, where, sizeof(where));
		ck_abort_msg("%s: guest byte at gpa %#" PRIx64 " changed: %s", what,
			     (uint64_t)d, where);
	}
}

/* Wait until the backend has done its hostile act (or a scribble). */
static void wait_misbehaved(struct env *e)
{
	struct timespec ts = { .tv_nsec = 2 * 1000 * 1000 };
	uint64_t start = now_ms();
	struct hb_stats bs;

	for (;;) {
		ck_assert_int_eq(peer_stats(&e->peer, &bs), 0);
		if (bs.misbehaved)
			return;
		if (now_ms() - start > (uint64_t)stall_timeout_ms)
			dump_state(e, "the backend never misbehaved");
		nanosleep(&ts, NULL);
	}
}

/* After reset: a fresh guest ring, a fresh backend device, honest I/O works. */
static void reset_and_recover(struct env *e)
{
	uint16_t i;
	int err;

	/* The guest resets its ring too; its requests in flight are gone. */
	for (i = 0; i < e->c.num; i++) {
		if (e->by_id[i]) {
			release_request(e, e->by_id[i]);
			e->by_id[i] = NULL;
		}
	}
	e->submitted -= e->outstanding;
	e->outstanding = 0;
	svq_drv_fini(&e->gvq);
	guest_ring_init(e);
	err = svqiso_svq_reset(e->svq, e->c.glayout == PACKED ? 1u << 15 : 0);
	ck_assert_msg(!err, "svqiso_svq_reset: %s", strerror(-err));
	ck_assert(!svqiso_svq_is_broken(e->svq));
	ck_assert_ptr_null(svqiso_svq_broken_reason(e->svq));
	ck_assert_uint_eq(svqiso_pool_in_use(e->pool), 0);
	send_ring(e);
	e->broken = false;
	e->light_verify = false;
	e->guest_signalled = false;
	efd_drain(e->bcall);
	run_requests(e, 64);
}

START_TEST(test_hostile_backend_contained)
{
	const struct hostile_case *hc = &hostile_cases[_i];
	struct peer_opts po = {
		.mode = hc->mode, .after = hc->after, .leak_fd = -1, .max_indirect = 1024,
	};
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	struct cfg c = base_cfg;
	const char *reason;
	struct hb_stats bs;
	uint64_t rounds, r;
	struct env e;

	skip_without_backend();
	c.glayout = hc->glayout;
	c.slayout = hc->slayout;
	c.profile = PROFILE_HOSTILE;
	c.drive = hc->drive;
	env_init(&e, &c, &po, 500 + _i);
	fprintf(stderr, "# hostile mode %s after %" PRIu64 "\n", hb_mode_name(hc->mode), hc->after);
	e.light_verify = hc->expect == X_ANY;

	rounds = hc->expect == X_ANY ? 16 : 1;
	for (r = 0; r < rounds && !e.broken; r++) {
		uint64_t start = e.completed;
		unsigned int added = submit_some(&e, NREQ_HOSTILE);

		if (!added)
			break;
		ck_assert_msg(added == NREQ_HOSTILE || hc->expect == X_ANY,
			      "only %u requests fit", added);
		loop_start(&e);
		guest_kick(&e);
		ck_assert_msg(e.kicks > 0 || hc->expect == X_ANY, "the guest was not asked to kick");
		if (!e.broken && c.drive == DRIVE_MANUAL) {
			/* Everything is with the backend before it acts. */
			ck_assert_int_eq(svqiso_svq_get_stats(e.svq, &st), 0);
			if (hc->expect != X_ANY)
				ck_assert_uint_eq(st.requests, NREQ_HOSTILE);
		}
		if (hc->expect == X_BROKEN || hc->expect == X_PENDING) {
			/*
			 * No timing: once the backend says it misbehaved, the
			 * entries are published (it is single-threaded). Stop
			 * the loop, then look as a call would make the svq look.
			 */
			wait_misbehaved(&e);
			loop_stop(&e);
			if (!e.broken) {
				efd_drain(e.bcall);
				manual_used(&e);
			}
			reap(&e);
		} else {
			while (e.completed - start < added && !e.broken)
				if (!guest_wait(&e, hc->expect == X_CLAMPED ? 0 : 500))
					break;
			loop_stop(&e);
		}
		e.broken |= svqiso_svq_is_broken(e.svq);
		check_guest_ram(&e, "hostile");
	}
	loop_stop(&e);

	ck_assert_int_eq(svqiso_svq_get_stats(e.svq, &st), 0);
	reason = svqiso_svq_broken_reason(e.svq);
	ck_assert_uint_ge(e.completed, hc->min_done);
	ck_assert_uint_le(e.completed, hc->max_done);
	switch (hc->expect) {
	case X_BROKEN:
		ck_assert_msg(svqiso_svq_is_broken(e.svq), "%s: svq not broken",
			      hb_mode_name(hc->mode));
		ck_assert_ptr_nonnull(reason);
		ck_assert_msg(strstr(reason, hc->rule), "%s: reason \"%s\" does not name %s",
			      hb_mode_name(hc->mode), reason, hc->rule);
		ck_assert_uint_ge(st.errors, 1);
		ck_assert_int_eq(svqiso_svq_process_used(e.svq), -EIO);
		ck_assert_int_eq(svqiso_svq_process_avail(e.svq), -EIO);
		break;
	case X_CLAMPED:
		ck_assert_msg(!svqiso_svq_is_broken(e.svq), "broken: %s", reason);
		ck_assert_uint_eq(st.clamped, NREQ_HOSTILE);
		ck_assert_uint_eq(st.completions, NREQ_HOSTILE);
		ck_assert_int_eq(peer_stats(&e.peer, &bs), 0);
		ck_assert_uint_eq(bs.overflowed, NREQ_HOSTILE);
		break;
	case X_PENDING:
		ck_assert_msg(!svqiso_svq_is_broken(e.svq), "broken: %s", reason);
		ck_assert_uint_eq(e.outstanding, NREQ_HOSTILE - hc->min_done);
		ck_assert_uint_eq(st.completions, hc->min_done);
		ck_assert_uint_eq(st.clamped, 0);
		/* Still nothing after another look. */
		ck_assert_int_ge(svqiso_svq_process_used(e.svq), 0);
		ck_assert_uint_eq(reap(&e), 0);
		break;
	case X_ANY:
		wait_misbehaved(&e);
		fprintf(stderr, "# scribble: %" PRIu64 " completed, %s\n", e.completed,
			reason ? reason : "not broken");
		break;
	}
	ck_assert_int_eq(peer_stats(&e.peer, &bs), 0);
	if (hc->expect != X_ANY && hc->expect != X_CLAMPED)
		ck_assert_uint_ge(bs.misbehaved, 1);
	check_guest_ram(&e, "end");
	reset_and_recover(&e);
	env_fini(&e, true);
}
END_TEST

/* ---- Soak (SVQ_SOAK=1) ---- */

START_TEST(test_soak_random_combos)
{
	struct rng r;
	struct env e;
	struct cfg c;
	unsigned int k;

	skip_without_backend();
	rng_init(&r, 9000 + _i);
	for (k = 0; k < 16; k++) {
		c = combo_cfg(rng_below(&r, NR_COMBOS));
		c.memfd_pool = rng_chance(&r, 1, 8);
		env_init(&e, &c, NULL, 9000 + _i * 100 + k);
		run_requests(&e, scaled(COMBO_REQUESTS));
		check_totals(&e, e.completed);
		env_fini(&e, true);
	}
}
END_TEST

/* ---- suite ---- */

static TCase *tcase(Suite *s, const char *name, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *isolation_suite(void)
{
	Suite *s = suite_create("isolation");
	TCase *tc;

	tc = tcase(s, "isolation", 120);
	tcase_add_test(tc, test_guest_memfd_is_cloexec);
	tcase_add_loop_test(tc, test_backend_sees_only_isolated_memory, 0, 3);
	tcase_add_test(tc, test_inspector_catches_guest_ram_region);
	tcase_add_test(tc, test_inspector_catches_inherited_fd);

	tc = tcase(s, "workload", 600);
	tcase_add_loop_test(tc, test_random_workload_matches, 0, NR_COMBOS);

	tc = tcase(s, "memfd-pool", 300);
	tcase_add_loop_test(tc, test_memfd_pool_regions_reach_backend, 0, 4);

	tc = tcase(s, "long-chain", 60);
	tcase_add_loop_test(tc, test_long_guest_chain_over_direct_shadow_completes, 0, 2);

	tc = tcase(s, "index-wrap", 300);
	tcase_add_loop_test(tc, test_split_indexes_wrap_loses_nothing, 0, 2);

	tc = tcase(s, "backpressure", 300);
	tcase_add_loop_test(tc, test_tiny_arena_stalls_loses_nothing, 0, 4);

	tc = tcase(s, "hostile-backend", 120);
	tcase_add_loop_test(tc, test_hostile_backend_contained, 0, SVQ_ARRAY_SIZE(hostile_cases));

	if (soak) {
		tc = tcase(s, "soak", 24 * 3600);
		tcase_add_loop_test(tc, test_soak_random_combos, 0, 8);
	}
	return s;
}

int main(void)
{
	const char *env;
	SRunner *sr;
	int failed;

	env = getenv("SVQ_TEST_SEED");
	if (env && *env)
		test_seed = strtoull(env, NULL, 0);
	env = getenv("SVQ_SOAK");
	soak = env && *env && strcmp(env, "0");
	env = getenv("SVQ_TEST_SCALE");
	if (env && *env)
		test_scale = strtod(env, NULL);
	env = getenv("SVQ_TEST_NO_URING");
	no_uring = env && *env && strcmp(env, "0");
	env = getenv("SVQ_TEST_TIMEOUT");
	if (env && *env)
		stall_timeout_ms = atoi(env) * 1000;
	env = getenv("SVQ_BACKEND");
	if (!env || !*env) {
		printf("1..0 # SKIP SVQ_BACKEND is not set\n");
		return 0;
	}
	printf("# seed=%#" PRIx64 "\n", test_seed);
	fflush(stdout);

	sr = srunner_create(isolation_suite());
	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
