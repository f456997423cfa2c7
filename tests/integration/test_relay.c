/* SPDX-License-Identifier: MIT */
/*
 * The event loop relaying real traffic: svqiso_loop + svqiso_svq + eventfds,
 * with a backend thread playing the device on the shadow ring (the library's
 * device role, reading isolated memory through the iso's memory map) and, in
 * ring mode, a guest thread playing the driver on a guest ring in malloc'd
 * "guest RAM". Every request carries a sequence number; the backend fills the
 * writable bytes with a pattern derived from it, and the guest side checks
 * every byte and the length it gets back.
 *
 * Each relay test prints its notification counts per request to stderr
 * (meson's log): loop waits (one syscall each: epoll_wait or io_uring_enter),
 * eventfd reads and writes (syscalls with epoll, SQEs with io_uring).
 */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <svqiso/loop.h>
#include <svqiso/svq.h>
#include <svqiso/iso.h>
#include "vring.h"
#include "loop_priv.h"
#include "svq_priv.h"

#define NUM		128		/* both rings */
#define DEPTH		32		/* requests in flight per queue */
#define N_REQ		10000
#define HDR_LEN		16		/* readable: seq, magic */
#define IN_A		300		/* writable, two segments */
#define IN_B		212
#define IN_LEN		(IN_A + IN_B)
#define REQ_SIZE	1024		/* guest bytes per request slot */
#define MAX_SEGS	8
#define MAGIC		0x53565149534f4c50ull
#define TIMEOUT_S	120.0

#define GUEST_BASE	0x40000000ull
#define GUEST_SIZE	(1u << 20)
#define G_DESC		0x0000u
#define G_DRIVER	0x1000u
#define G_DEVICE	0x2000u
#define G_DATA		0x10000u

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int efd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static void fd_signal(int fd)
{
	uint64_t v = 1;

	if (write(fd, &v, sizeof(v)) != sizeof(v))
		abort();
}

/* Wait up to @ms for @fd, then drain it. */
static void fd_wait(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, ms) > 0 && read(fd, &v, sizeof(v)) < 0)
		(void)0;	/* EAGAIN: someone else drained it */
}

static uint8_t pattern(uint64_t seq, unsigned int k)
{
	return (uint8_t)(seq * 131 + k * 7 + 1);
}

/* Whether @in (IN_LEN bytes across two segments) holds @seq's pattern. */
static bool pattern_ok(uint64_t seq, const uint8_t *a, const uint8_t *b)
{
	unsigned int k;

	for (k = 0; k < IN_A; k++)
		if (a[k] != pattern(seq, k))
			return false;
	for (k = 0; k < IN_B; k++)
		if (b[k] != pattern(seq, IN_A + k))
			return false;
	return true;
}

/* ---- The backend: device role on the shadow ring, in its own thread ---- */

struct backend {
	pthread_t th;
	struct svq_dev dev;
	struct svq_seg seg[MAX_SEGS];
	int kick_fd, call_fd;
	bool stop;		/* __atomic */
	uint64_t served;
	uint64_t bad_after;	/* > 0: then publish a used id never issued */
	bool went_bad;
	int err;		/* first device-role error */
	uint64_t calls;		/* call fd writes */
	bool hold;		/* __atomic: take nothing while set */
};

static int serve(struct backend *b, const struct svq_elem *e)
{
	uint64_t hdr[2], seq;
	unsigned int k, off = 0;
	uint16_t i;

	if (e->nout != 1 || e->seg[0].len != HDR_LEN || e->in_bytes != IN_LEN)
		return -EPROTO;
	memcpy(hdr, e->seg[0].hva, sizeof(hdr));
	if (hdr[1] != MAGIC)
		return -EPROTO;
	seq = hdr[0];
	for (i = e->nout; i < e->nseg; i++) {
		uint8_t *p = e->seg[i].hva;

		for (k = 0; k < e->seg[i].len; k++)
			p[k] = pattern(seq, off + k);
		off += e->seg[i].len;
	}
	return svq_dev_push(&b->dev, e->id, e->in_bytes);
}

/* Split shadow only: publish a used entry whose id was never made available. */
static void go_bad(struct backend *b)
{
	struct svq_split_used *u = b->dev.split.used;
	uint16_t idx = b->dev.split.used_idx;

	svq_st32(&u->ring[idx % b->dev.rc.num].id, b->dev.rc.num + 7);
	svq_st32(&u->ring[idx % b->dev.rc.num].len, 0);
	svq_st16_release(&u->idx, (uint16_t)(idx + 1));
	b->went_bad = true;
	fd_signal(b->call_fd);
}

static void *backend_main(void *arg)
{
	struct backend *b = arg;

	while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
		struct svq_elem e;
		unsigned int n = 0;
		int ret;

		if (b->went_bad) {
			fd_wait(b->kick_fd, 20);
			continue;
		}
		if (__atomic_load_n(&b->hold, __ATOMIC_ACQUIRE)) {
			usleep(1000);
			continue;
		}
		for (;;) {
			e = (struct svq_elem){ .seg = b->seg, .max_seg = MAX_SEGS };
			ret = svq_dev_pop(&b->dev, &e);
			if (ret != 1)
				break;
			ret = serve(b, &e);
			if (ret)
				break;
			b->served++;
			n++;
			if (b->bad_after && b->served == b->bad_after)
				break;
		}
		if (ret < 0) {
			if (!b->err)
				b->err = ret;
			break;
		}
		if (n) {
			svq_dev_flush(&b->dev);
			if (b->bad_after && b->served == b->bad_after) {
				go_bad(b);
				continue;
			}
			if (svq_dev_need_notify(&b->dev)) {
				b->calls++;
				fd_signal(b->call_fd);
			}
			continue;
		}
		/* Idle: ask for kicks, look once more, then sleep. */
		if (svq_dev_enable_notify(&b->dev)) {
			svq_dev_disable_notify(&b->dev);
			continue;
		}
		fd_wait(b->kick_fd, 20);
		svq_dev_disable_notify(&b->dev);
	}
	return NULL;
}

/* ---- One queue: svq, fds, backend, and the guest side of it ---- */

struct rig {
	struct svqiso_svq *svq;
	struct svqiso_shadow_info info;
	int gk, gc, bk, bc;
	struct backend be;
	bool element;
	bool quiet;			/* ignore completions (reset) */
	uint64_t n_total;
	struct svq_dev_cfg be_cfg;	/* the backend's view of the shadow ring */
	uint8_t *guest;			/* guest RAM, GUEST_SIZE */
	/* driver side, run by the loop thread (element mode) or the guest
	 * thread (ring mode): only the counters below are shared */
	uint64_t submitted;
	uint64_t completed;		/* __atomic */
	uint64_t bad;			/* __atomic: wrong data or length */
	uint64_t vmm_kicks;		/* element mode: kicks the VMM wrote */
	uint64_t guest_kicks, guest_waits;
	/* element mode: cookie = slot index + 1 */
	uint64_t slot_seq[DEPTH];
	/* ring mode */
	struct svqiso_mem *gmem;
	struct svq_drv gdrv;
	pthread_t guest_th;
	bool guest_stop;		/* __atomic */
	int guest_err;
};

struct world {
	struct svqiso_iso *iso;
	struct svqiso_loop *loop;
	struct rig rig[2];
	unsigned int nrig;
	int loop_errs;			/* ERR lines from the loop */
	int loop_warns;			/* WARN lines */
	char loop_last[256];
	pthread_t loop_th;
	int run_ret;
	double run_returned;
};

static struct world W;

static void loop_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= SVQISO_LOG_ERR) {
		__atomic_add_fetch(&W.loop_errs, 1, __ATOMIC_RELAXED);
		snprintf(W.loop_last, sizeof(W.loop_last), "%s", msg);
	} else if (level == SVQISO_LOG_WARN) {
		__atomic_add_fetch(&W.loop_warns, 1, __ATOMIC_RELAXED);
	}
}

static uint8_t *slot_hva(struct rig *r, unsigned int slot)
{
	return r->guest + G_DATA + (size_t)slot * REQ_SIZE;
}

/* Layout of slot @s: header at 0, in A at 64, in B at 512. */
#define OFF_HDR	0
#define OFF_A	64
#define OFF_B	512

static void fill_slot(struct rig *r, unsigned int s, uint64_t seq)
{
	uint64_t hdr[2] = { seq, MAGIC };
	uint8_t *p = slot_hva(r, s);

	memcpy(p + OFF_HDR, hdr, sizeof(hdr));
	memset(p + OFF_A, 0xee, IN_A);
	memset(p + OFF_B, 0xee, IN_B);
}

static void check_slot(struct rig *r, unsigned int s, uint64_t seq, uint32_t len)
{
	uint8_t *p = slot_hva(r, s);

	if (len != IN_LEN || !pattern_ok(seq, p + OFF_A, p + OFF_B))
		__atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&r->completed, 1, __ATOMIC_RELEASE);
}

/* Element mode: the VMM hands one request over (loop thread once running). */
static void elem_submit(struct rig *r, unsigned int s)
{
	uint8_t *p = slot_hva(r, s);
	struct iovec out = { p + OFF_HDR, HDR_LEN };
	struct iovec in[2] = { { p + OFF_A, IN_A }, { p + OFF_B, IN_B } };
	int ret;

	r->slot_seq[s] = r->submitted++;
	fill_slot(r, s, r->slot_seq[s]);
	ret = svqiso_svq_submit(r->svq, &out, 1, in, 2, (void *)(uintptr_t)(s + 1));
	if (ret < 0) {
		__atomic_add_fetch(&r->bad, 1, __ATOMIC_RELAXED);
		return;
	}
	if (ret & SVQISO_SIGNAL_BACKEND) {
		r->vmm_kicks++;
		fd_signal(r->bk);
	}
}

/* Runs in svqiso_svq_process_used(), on the loop thread: check, resubmit. */
static void elem_complete(void *ctx, void *cookie, uint32_t len)
{
	struct rig *r = ctx;
	unsigned int s = (unsigned int)(uintptr_t)cookie - 1;

	if (r->quiet)
		return;	/* svqiso_svq_reset() giving back what it held */
	check_slot(r, s, r->slot_seq[s], len);
	if (r->submitted < r->n_total)
		elem_submit(r, s);
}

/* Ring mode: the guest driver, in its own thread. */
static void *guest_main(void *arg)
{
	struct rig *r = arg;
	uint16_t by_id[NUM], free_slots[DEPTH];
	uint64_t seq_of[DEPTH];
	unsigned int nfree = DEPTH, s;
	uint64_t done = 0;

	for (s = 0; s < DEPTH; s++)
		free_slots[s] = (uint16_t)s;
	while (done < r->n_total && !__atomic_load_n(&r->guest_stop, __ATOMIC_ACQUIRE)) {
		unsigned int added = 0, got = 0;
		uint16_t id;
		uint32_t len;
		int ret;

		while (nfree && r->submitted < r->n_total) {
			uint64_t base = GUEST_BASE + G_DATA;
			struct svq_seg seg[3];

			s = free_slots[--nfree];
			seq_of[s] = r->submitted++;
			fill_slot(r, s, seq_of[s]);
			base += (uint64_t)s * REQ_SIZE;
			seg[0] = (struct svq_seg){ .addr = base + OFF_HDR, .len = HDR_LEN };
			seg[1] = (struct svq_seg){ .addr = base + OFF_A, .len = IN_A, .write = true };
			seg[2] = (struct svq_seg){ .addr = base + OFF_B, .len = IN_B, .write = true };
			ret = svq_drv_add(&r->gdrv, seg, 3, NULL, &id);
			if (ret) {
				r->guest_err = ret;
				return NULL;
			}
			by_id[id] = (uint16_t)s;
			added++;
		}
		if (added && svq_drv_kick_prepare(&r->gdrv)) {
			r->guest_kicks++;
			fd_signal(r->gk);
		}
		while ((ret = svq_drv_get_used(&r->gdrv, &id, &len)) == 1) {
			s = by_id[id];
			check_slot(r, s, seq_of[s], len);
			free_slots[nfree++] = (uint16_t)s;
			done++;
			got++;
		}
		if (ret < 0) {
			r->guest_err = ret;
			return NULL;
		}
		if (got)
			continue;
		if (svq_drv_enable_cb(&r->gdrv)) {
			svq_drv_disable_cb(&r->gdrv);
			continue;
		}
		r->guest_waits++;
		fd_wait(r->gc, 20);
		svq_drv_disable_cb(&r->gdrv);
	}
	return NULL;
}

/* The batch_bytes of the next rig_open()'s svq (0: no limit). */
static uint64_t rig_batch;

static void rig_open(struct rig *r, bool element, uint8_t glayout, uint8_t slayout,
		     uint64_t bad_after)
{
	SVQISO_OPTS(svqiso_svq_opts, so,
		    .flags = element ? SVQISO_SVQ_F_ELEMENT : 0,
		    .num = NUM, .guest_layout = glayout, .shadow_layout = slayout,
		    .guest_features = SVQISO_RING_F_EVENT_IDX | SVQISO_RING_F_INDIRECT,
		    .shadow_features = SVQISO_RING_F_EVENT_IDX | SVQISO_RING_F_INDIRECT,
		    .max_segs = MAX_SEGS, .iso = W.iso,
		    .complete = elem_complete, .complete_ctx = r, .name = "relay",
		    .batch_bytes = rig_batch);
	uint8_t *g;

	memset(r, 0, sizeof(*r));
	r->element = element;
	r->n_total = N_REQ;
	r->gk = element ? -1 : efd();
	r->gc = element ? -1 : efd();
	r->bk = efd();
	r->bc = efd();
	g = aligned_alloc(4096, GUEST_SIZE);
	ck_assert_ptr_nonnull(g);
	memset(g, 0, GUEST_SIZE);
	r->guest = g;
	if (!element) {
		SVQISO_OPTS(svqiso_mem_opts, mo);
		struct svqiso_mem_region reg = { .gpa = GUEST_BASE, .size = GUEST_SIZE,
						 .hva = g, .fd = -1 };
		struct svq_drv_cfg dc = {
			.layout = glayout, .num = NUM,
			.flags = SVQ_RING_F_EVENT_IDX | SVQ_RING_F_INDIRECT,
			.desc = g + G_DESC, .driver = g + G_DRIVER, .device = g + G_DEVICE,
			.name = "guest",
		};

		ck_assert_int_eq(svqiso_mem_new(&mo, &r->gmem), 0);
		ck_assert_int_eq(svqiso_mem_add_region(r->gmem, &reg), 0);
		ck_assert_int_eq(svq_drv_init(&r->gdrv, &dc), 0);
		so.guest_ring = (struct svqiso_vring_addr){
			GUEST_BASE + G_DESC, GUEST_BASE + G_DRIVER, GUEST_BASE + G_DEVICE };
		so.guest_mem = svqiso_mem_ops();
		so.guest_mem_ctx = r->gmem;
	}
	ck_assert_int_eq(svqiso_svq_new(&so, &r->svq), 0);
	ck_assert_int_eq(svqiso_svq_get_shadow(r->svq, &r->info), 0);

	r->be_cfg = (struct svq_dev_cfg){
		.layout = r->info.layout, .num = r->info.num, .flags = r->info.features,
		.desc = r->info.iova.desc, .driver = r->info.iova.driver,
		.device = r->info.iova.device,
		.mem = svqiso_mem_ops(), .mem_ctx = (void *)svqiso_iso_mem(W.iso),
		.max_indirect = MAX_SEGS, .name = "backend",
	};
	ck_assert_int_eq(svq_dev_init(&r->be.dev, &r->be_cfg), 0);
	r->be.kick_fd = r->bk;
	r->be.call_fd = r->bc;
	r->be.bad_after = bad_after;
}

static void rig_add(struct rig *r)
{
	SVQISO_OPTS(svqiso_loop_queue, q, .svq = r->svq, .guest_kick_fd = r->gk,
		    .guest_call_fd = r->gc, .backend_kick_fd = r->bk,
		    .backend_call_fd = r->bc);
	unsigned int s;

	ck_assert_int_eq(svqiso_loop_add(W.loop, &q), 0);
	ck_assert_int_eq(pthread_create(&r->be.th, NULL, backend_main, &r->be), 0);
	if (r->element) {
		/* Before the loop runs, the VMM may call the svq itself. */
		for (s = 0; s < DEPTH; s++)
			elem_submit(r, s);
	} else {
		ck_assert_int_eq(pthread_create(&r->guest_th, NULL, guest_main, r), 0);
	}
}

static void backend_join(struct rig *r)
{
	__atomic_store_n(&r->be.stop, true, __ATOMIC_RELEASE);
	fd_signal(r->bk);
	ck_assert_int_eq(pthread_join(r->be.th, NULL), 0);
}

static void rig_close(struct rig *r)
{
	backend_join(r);
	if (!r->element) {
		__atomic_store_n(&r->guest_stop, true, __ATOMIC_RELEASE);
		ck_assert_int_eq(pthread_join(r->guest_th, NULL), 0);
	}
	svq_dev_fini(&r->be.dev);
	svqiso_svq_free(r->svq);
	if (!r->element) {
		svq_drv_fini(&r->gdrv);
		svqiso_mem_free(r->gmem);
		close(r->gk);
		close(r->gc);
	}
	close(r->bk);
	close(r->bc);
	free(r->guest);
}

static void *loop_main(void *arg)
{
	(void)arg;
	W.run_ret = svqiso_loop_run(W.loop);
	W.run_returned = now();
	return NULL;
}

static bool uring_usable(void)
{
	SVQISO_OPTS(svqiso_loop_opts, o, .mode = SVQISO_LOOP_URING);
	struct svqiso_loop *l = NULL;

	if (svqiso_loop_new(&o, &l))
		return false;
	svqiso_loop_free(l);
	return true;
}

/* The spin_ns of the next world_open()'s loop (0: sleep at once). */
static uint64_t world_spin;

static void world_open(uint8_t mode)
{
	SVQISO_OPTS(svqiso_loop_opts, lo, .mode = mode, .log = loop_log,
		    .spin_ns = world_spin);

	memset(&W, 0, sizeof(W));
	ck_assert_int_eq(svqiso_iso_new(NULL, &W.iso), 0);
	if (mode == SVQISO_LOOP_URING && !uring_usable())
		lo.mode = SVQISO_LOOP_EPOLL;
	ck_assert_int_eq(svqiso_loop_new(&lo, &W.loop), 0);
	if (mode == SVQISO_LOOP_AUTO)
		ck_assert_int_eq(svqiso_loop_mode(W.loop), uring_usable() ?
				 SVQISO_LOOP_URING : SVQISO_LOOP_EPOLL);
}

static void world_start(void)
{
	W.run_ret = 1;
	ck_assert_int_eq(pthread_create(&W.loop_th, NULL, loop_main, NULL), 0);
}

/* Wait until rig @r completed everything (or the timeout). */
static void wait_done(struct rig *r)
{
	double t0 = now();

	while (__atomic_load_n(&r->completed, __ATOMIC_ACQUIRE) < r->n_total &&
	       now() - t0 < TIMEOUT_S)
		usleep(1000);
}

/* Stop the loop and check run() returned promptly, with 0. */
static void world_stop(void)
{
	double t0 = now();

	svqiso_loop_stop(W.loop);
	ck_assert_int_eq(pthread_join(W.loop_th, NULL), 0);
	ck_assert_int_eq(W.run_ret, 0);
	ck_assert_msg(W.run_returned - t0 < 1.0, "run() took %.3f s to stop",
		      W.run_returned - t0);
}

static void world_close(void)
{
	unsigned int i;

	for (i = 0; i < W.nrig; i++)
		rig_close(&W.rig[i]);
	svqiso_loop_free(W.loop);
	svqiso_iso_free(W.iso);
}

static const char *const mode_names[] = { "auto", "io_uring", "epoll", "busy-poll" };

static void report(const char *what, const struct rig *r, double secs)
{
	const struct svq_loop_counters *c = &W.loop->ctr;
	double n = (double)r->completed;

	fprintf(stderr, "# %s %s: %" PRIu64 " requests in %.3f s; per request: "
		"loop waits %.3f, eventfd reads %.3f, writes %.3f, spins %.1f; "
		"backend calls %.3f, guest kicks %.3f, vmm kicks %.3f\n",
		what, mode_names[svqiso_loop_mode(W.loop)], r->completed, secs,
		c->waits / n, c->reads / n, c->writes / n, c->spins / n,
		r->be.calls / n, r->guest_kicks / n, r->vmm_kicks / n);
}

static void check_rig_done(const struct rig *r)
{
	ck_assert_int_eq(r->be.err, 0);
	ck_assert_int_eq(r->guest_err, 0);
	ck_assert_uint_eq(r->completed, r->n_total);
	ck_assert_uint_eq(r->bad, 0);
	ck_assert(!svqiso_svq_is_broken(r->svq));
}

/* _i: mode = _i % 4 (auto, uring, epoll, busy-poll); shadow layout = _i / 4. */
START_TEST(test_relay_element_all_complete)
{
	uint8_t mode = _i % 4, sl = (uint8_t)(_i / 4);
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	double t0;

	world_open(mode);
	W.nrig = 1;
	rig_open(&W.rig[0], true, 0, sl, 0);
	rig_add(&W.rig[0]);
	t0 = now();
	world_start();
	wait_done(&W.rig[0]);
	world_stop();
	report(sl ? "element/packed" : "element/split", &W.rig[0], now() - t0);
	check_rig_done(&W.rig[0]);
	ck_assert_int_eq(W.loop_errs, 0);
	ck_assert_int_eq(svqiso_svq_get_stats(W.rig[0].svq, &st), 0);
	ck_assert_uint_eq(st.completions, N_REQ);
	ck_assert_uint_eq(st.bytes_in, (uint64_t)N_REQ * IN_LEN);
	world_close();
}
END_TEST

/*
 * _i: mode = _i % 4; guest layout = _i / 4 % 2, shadow layout the other
 * one; from 8 on, batch_bytes 1: every request a handler moves data for
 * ends its call with SVQISO_SIGNAL_AGAIN, and every loop mode must signal
 * and come back at once (the peers' notifications stay off meanwhile, so a
 * loop that waited would strand the rest). From 16 on, a 1 s spin instead:
 * the loop signals the guest many times between two waits.
 */
START_TEST(test_relay_ring_all_complete)
{
	uint8_t mode = _i % 4, gl = (uint8_t)(_i / 4 % 2);
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	bool batch = _i >= 8 && _i < 16, spin = _i >= 16;
	char what[80];
	double t0;

	world_spin = spin ? 1000000000ull : 0;
	world_open(mode);
	world_spin = 0;
	W.nrig = 1;
	rig_batch = batch;
	rig_open(&W.rig[0], false, gl, gl ^ 1, 0);
	rig_batch = 0;
	rig_add(&W.rig[0]);
	t0 = now();
	world_start();
	wait_done(&W.rig[0]);
	world_stop();
	snprintf(what, sizeof(what), "%s%s%s", gl ? "ring/packed-over-split" :
		 "ring/split-over-packed", batch ? ", batch_bytes 1" : "",
		 spin ? ", spin_ns 1 s" : "");
	report(what, &W.rig[0], now() - t0);
	check_rig_done(&W.rig[0]);
	ck_assert_int_eq(W.loop_errs, 0);
	ck_assert_int_eq(svqiso_svq_get_stats(W.rig[0].svq, &st), 0);
	ck_assert_uint_eq(st.completions, N_REQ);
	/* Both sides: each request copies in a header and back its data. */
	if (batch)
		ck_assert_uint_ge(st.splits, 2 * N_REQ);
	else
		ck_assert_uint_eq(st.splits, 0);
	world_close();
}
END_TEST

/*
 * Queue 1's backend breaks the protocol; queue 0 goes on to the end. From 4
 * on, with a 1 s spin: the queue breaks while the loop polls it.
 */
START_TEST(test_broken_queue_others_go_on)
{
	uint8_t mode = _i % 4;
	struct rig *a = &W.rig[0], *b;
	unsigned int s;
	uint64_t v;
	double t0;

	world_spin = _i >= 4 ? 1000000000ull : 0;
	world_open(mode);
	world_spin = 0;
	W.nrig = 2;
	b = &W.rig[1];
	rig_open(a, true, 0, SVQISO_LAYOUT_PACKED, 0);
	rig_open(b, true, 0, SVQISO_LAYOUT_SPLIT, 100);
	rig_add(a);
	rig_add(b);
	world_start();
	wait_done(a);
	t0 = now();
	while (!__atomic_load_n(&W.loop_errs, __ATOMIC_ACQUIRE) && now() - t0 < TIMEOUT_S)
		usleep(1000);
	/* Queue 1 is no longer polled: a call stays unread. */
	if (svqiso_loop_mode(W.loop) != SVQISO_LOOP_BUSY_POLL) {
		fd_signal(b->bc);
		usleep(20000);
	}
	world_stop();
	check_rig_done(a);
	ck_assert(b->be.went_bad);
	ck_assert(svqiso_svq_is_broken(b->svq));
	ck_assert_uint_lt(b->completed, N_REQ);
	ck_assert_uint_eq(b->bad, 0);
	/* Logged once, naming the queue. */
	ck_assert_int_eq(W.loop_errs, 1);
	ck_assert_msg(strstr(W.loop_last, "queue 1") != NULL, "%s", W.loop_last);
	if (svqiso_loop_mode(W.loop) != SVQISO_LOOP_BUSY_POLL)
		ck_assert_int_eq(read(b->bc, &v, sizeof(v)), (int)sizeof(v));

	/* Reset while stopped: held requests complete empty (ignored), the
	 * backend starts over on the fresh shadow ring, and the next run
	 * relays the queue again, without a new error. */
	backend_join(b);
	b->quiet = true;
	ck_assert_int_eq(svqiso_svq_reset(b->svq, 0), 0);
	b->quiet = false;
	svq_dev_fini(&b->be.dev);
	b->be = (struct backend){ .kick_fd = b->bk, .call_fd = b->bc };
	ck_assert_int_eq(svq_dev_init(&b->be.dev, &b->be_cfg), 0);
	ck_assert_int_eq(pthread_create(&b->be.th, NULL, backend_main, &b->be), 0);
	b->submitted = 0;
	b->completed = 0;
	b->n_total = 1000;
	for (s = 0; s < DEPTH; s++)
		elem_submit(b, s);
	world_start();
	wait_done(b);
	world_stop();
	check_rig_done(b);
	ck_assert_int_eq(W.loop_errs, 1);
	world_close();
}
END_TEST

/* Element mode with a guest kick fd: warned about once, never read again. */
START_TEST(test_element_guest_kick_fd_ignored)
{
	uint8_t mode = _i % 4;
	struct rig *r = &W.rig[0];
	uint64_t v;
	int gk;

	world_open(mode);
	W.nrig = 1;
	rig_open(r, true, 0, SVQISO_LAYOUT_SPLIT, 0);
	r->n_total = 2000;
	r->gk = gk = efd();
	rig_add(r);
	fd_signal(gk);
	world_start();
	wait_done(r);
	fd_signal(gk);
	usleep(20000);
	world_stop();
	check_rig_done(r);
	ck_assert_int_eq(W.loop_errs, 0);
	ck_assert_int_eq(W.loop_warns, 1);
	/* The second kick (busy-poll: both) is still there. */
	ck_assert_int_eq(read(gk, &v, sizeof(v)), (int)sizeof(v));
	ck_assert_uint_ge(v, 1);
	world_close();
	close(gk);
}
END_TEST

/*
 * A busy queue: stop() in the middle of the traffic still returns promptly.
 * From 4 on, with a 10 s spin: a stop must end the spin too.
 */
START_TEST(test_stop_under_load_prompt)
{
	uint8_t mode = _i % 4;
	struct rig *r = &W.rig[0];

	world_spin = _i >= 4 ? 10000000000ull : 0;
	world_open(mode);
	world_spin = 0;
	W.nrig = 1;
	rig_open(r, true, 0, SVQISO_LAYOUT_SPLIT, 0);
	r->n_total = UINT64_MAX;	/* never done */
	rig_add(r);
	world_start();
	while (__atomic_load_n(&r->completed, __ATOMIC_ACQUIRE) < 1000)
		usleep(1000);
	world_stop();
	ck_assert_uint_eq(r->bad, 0);
	ck_assert_int_eq(r->be.err, 0);
	world_close();
}
END_TEST


/*
 * One element-mode queue whose backend holds what it gets, relayed by a
 * loop with @spin ns of spin, running: @n requests in all, DEPTH of them
 * in flight. A spin starts after a wake-up, so a call with nothing behind
 * it wakes the loop; return once the spin has begun.
 */
static struct rig *spin_world_held(uint8_t mode, uint8_t shadow_layout,
				   uint64_t spin, uint64_t n)
{
	struct rig *r = &W.rig[0];
	double t0;

	world_spin = spin;
	world_open(mode);
	world_spin = 0;
	W.nrig = 1;
	rig_open(r, true, 0, shadow_layout, 0);
	r->n_total = n;
	r->be.hold = true;
	rig_add(r);
	world_start();
	fd_signal(r->bc);
	t0 = now();
	while (!__atomic_load_n(&W.loop->ctr.spin_rounds, __ATOMIC_RELAXED) &&
	       now() - t0 < 10)
		usleep(1000);
	ck_assert_uint_eq(__atomic_load_n(&W.loop->ctr.spin_rounds,
					  __ATOMIC_RELAXED), 1);
	return r;
}

/* Let @r's backend go on; wait (bounded) until everything completed. */
static void release_and_wait(struct rig *r)
{
	double t0 = now();

	__atomic_store_n(&r->be.hold, false, __ATOMIC_RELEASE);
	while (__atomic_load_n(&r->completed, __ATOMIC_ACQUIRE) < r->n_total &&
	       now() - t0 < 20)
		usleep(1000);
}

/*
 * Spinning: the loop takes completions from the ring with the backend's
 * calls off. The backend holds its first requests until the loop spins
 * (after a wake-up by a call with nothing behind it), then serves them and
 * every request the VMM submits from the complete callback: all of them
 * complete within that one spin, with no call from the backend (packed
 * shadow: its calls are disabled outright; split with EVENT_IDX: at most
 * the one that crosses the used_event the loop left before spinning) and
 * without the loop sleeping. _i: io_uring or epoll; split or packed.
 */
START_TEST(test_spin_completes_without_calls)
{
	uint8_t mode = _i % 2 ? SVQISO_LOOP_EPOLL : SVQISO_LOOP_URING;
	uint8_t sl = _i / 2 ? SVQISO_LAYOUT_PACKED : SVQISO_LAYOUT_SPLIT;
	/* 10 s: longer than the test */
	struct rig *r = spin_world_held(mode, sl, 10000000000ull, 5000);
	uint64_t waits;
	double t0 = now();

	ck_assert(r->svq->busy_poll);
	waits = __atomic_load_n(&W.loop->ctr.waits, __ATOMIC_RELAXED);
	ck_assert_uint_eq(r->be.calls, 0);
	release_and_wait(r);
	world_stop();
	report(sl ? "element/packed, spin_ns 10 s" : "element/split, spin_ns 10 s",
	       r, now() - t0);
	check_rig_done(r);
	ck_assert_int_eq(W.loop_errs, 0);
	ck_assert_uint_eq(W.loop->ctr.spin_rounds, 1);
	ck_assert_uint_gt(W.loop->ctr.spins, 1);
	ck_assert_uint_le(r->be.calls, sl == SVQISO_LAYOUT_PACKED ? 0 : 1);
	/* The wait after the spin's end, and one per call, nothing else. */
	ck_assert_uint_le(W.loop->ctr.waits, waits + 1 + r->be.calls);
	world_close();
}
END_TEST

/*
 * A backend that stops taking requests: the spin gives up after spin_ns,
 * with the queue's notifications back on, and the loop sleeps (it does not
 * spin again until woken). When the backend goes on, its call wakes the
 * loop and everything completes. _i: io_uring, epoll.
 */
START_TEST(test_spin_stalled_backend_sleeps)
{
	uint8_t mode = _i ? SVQISO_LOOP_EPOLL : SVQISO_LOOP_URING;
	/* 20 ms */
	struct rig *r = spin_world_held(mode, SVQISO_LAYOUT_SPLIT, 20000000ull,
					2000);
	uint64_t spins, yields, handoffs;

	usleep(200000);
	spins = __atomic_load_n(&W.loop->ctr.spins, __ATOMIC_RELAXED);
	ck_assert_uint_eq(__atomic_load_n(&W.loop->ctr.spin_rounds,
					  __ATOMIC_RELAXED), 1);
	ck_assert_uint_gt(spins, 0);
	/* 20 ms with nothing to do: the CPU given away after
	 * SVQ_SPIN_YIELD_NS, then after twice as long each time (4 us x
	 * (2^k - 1) <= 20 ms: 12 at most). A yield that let another thread
	 * run (the test's, or another process's on a loaded machine) starts
	 * that over. */
	yields = __atomic_load_n(&W.loop->ctr.spin_yields, __ATOMIC_RELAXED);
	handoffs = __atomic_load_n(&W.loop->spin.handoffs, __ATOMIC_RELAXED);
	fprintf(stderr, "# %" PRIu64 " passes, %" PRIu64 " yields, %" PRIu64
		" let another thread run\n", spins, yields, handoffs);
	ck_assert_uint_ge(yields, 4);
	ck_assert_uint_le(yields - handoffs, 13 * (handoffs + 1));
	ck_assert(!r->svq->busy_poll);
	usleep(200000);
	ck_assert_uint_eq(__atomic_load_n(&W.loop->ctr.spins, __ATOMIC_RELAXED),
			  spins);
	ck_assert_uint_eq(r->completed, 0);
	release_and_wait(r);
	world_stop();
	check_rig_done(r);
	ck_assert_int_eq(W.loop_errs, 0);
	world_close();
}
END_TEST

/*
 * Both peers polling: the backend keeps its kicks off while it has work and
 * the VMM's completion callback resubmits (element mode: no guest to
 * signal), so no pass of the spin owes anyone a signal while requests flow.
 * Requests moving still count as progress: one spin lasts the whole second
 * of traffic instead of ending every spin_ns (100 ms) and waiting for a
 * call. One more round is allowed for a thread of the test descheduled that
 * long on a loaded machine. _i: io_uring, epoll.
 */
START_TEST(test_spin_polling_peers_one_round)
{
	uint8_t mode = _i ? SVQISO_LOOP_EPOLL : SVQISO_LOOP_URING;
	struct rig *r = spin_world_held(mode, SVQISO_LAYOUT_SPLIT, 100000000ull,
					UINT64_MAX);
	uint64_t rounds, done;
	double t0;

	__atomic_store_n(&r->be.hold, false, __ATOMIC_RELEASE);
	t0 = now();
	while (now() - t0 < 1.0)
		usleep(10000);
	rounds = __atomic_load_n(&W.loop->ctr.spin_rounds, __ATOMIC_RELAXED);
	done = __atomic_load_n(&r->completed, __ATOMIC_ACQUIRE);
	world_stop();
	report("element/split, polling backend, spin_ns 100 ms", r, now() - t0);
	fprintf(stderr, "# %" PRIu64 " spin rounds, %" PRIu64 " backend calls\n",
		rounds, r->be.calls);
	ck_assert_uint_gt(done, 1000);
	ck_assert_uint_le(rounds, 2);
	ck_assert_uint_eq(r->bad, 0);
	ck_assert_int_eq(r->be.err, 0);
	ck_assert_int_eq(W.loop_errs, 0);
	world_close();
}
END_TEST

static Suite *relay_suite(void)
{
	Suite *s = suite_create("relay");
	TCase *tc;

	tc = tcase_create("element");
	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_relay_element_all_complete, 0, 8);
	suite_add_tcase(s, tc);

	tc = tcase_create("ring");
	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_relay_ring_all_complete, 0, 20);
	suite_add_tcase(s, tc);

	tc = tcase_create("broken");
	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_broken_queue_others_go_on, 0, 8);
	suite_add_tcase(s, tc);

	tc = tcase_create("element-kick-fd");
	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_element_guest_kick_fd_ignored, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("spin");
	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_spin_completes_without_calls, 0, 4);
	tcase_add_loop_test(tc, test_spin_stalled_backend_sleeps, 0, 2);
	tcase_add_loop_test(tc, test_spin_polling_peers_one_round, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("stop");
	tcase_set_timeout(tc, 240);
	tcase_add_loop_test(tc, test_stop_under_load_prompt, 0, 8);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(relay_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
