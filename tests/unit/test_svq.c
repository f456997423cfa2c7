/* SPDX-License-Identifier: MIT */
/*
 * Shadow virtqueue (lib/svq.c, avail.c, used.c) in one process.
 *
 * The guest is the library's driver role writing a ring into a malloc'd
 * "guest RAM" served through a svqiso_mem at a non-zero base; the backend is
 * the library's device role reading the shadow ring through the iso's memory
 * map, so it only ever sees isolated memory. Hostile-backend cases write the
 * shadow used ring by hand. The multi-process harness in tests/harness/ does
 * the same across a process boundary.
 *
 * Randomized tests print "# seed=..."; SVQ_TEST_SEED=<seed> replays them.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>

#include <svqiso/svqiso.h>
#include <svqiso/iso.h>
#include <svqiso/pool.h>
#include <svqiso/copy.h>
#include <svqiso/svq.h>
#include "vring.h"

#define GUEST_BASE	0x10000000ull
#define GUEST_SIZE	(8u << 20)
#define G_DESC		0x0000u
#define G_DRIVER	0x4000u
#define G_DEVICE	0x8000u
#define G_TABLES	0x10000u	/* guest indirect tables, 64 entries each */
#define G_DATA		0x100000u
#define NUM		64
#define MAX_SEGS	16
#define DEFAULT_SEED	0x5eedf00dull

static uint64_t seed = DEFAULT_SEED;

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64*: cheap and replayable */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

struct fx {
	uint8_t *guest;			/* guest RAM */
	struct svqiso_mem *gmem;
	struct svq_drv gdrv;		/* the guest's driver */
	struct svqiso_iso *iso;
	struct svqiso_pool *pool;
	struct svqiso_svq *svq;
	struct svqiso_shadow_info info;
	struct svq_dev backend;		/* the device, on isolated memory */
	struct svq_seg bseg[MAX_SEGS * 2];
	int logs;
	char last_log[256];
	bool last_kick;			/* the device wanted a kick for the
					 * last guest_post() */
	/* what the iso told the backend (one-off regions among them) */
	unsigned int region_adds, region_dels;
	uint64_t last_add_size;
	/* element mode */
	unsigned int ncomplete;
	void *cookies[1024];
	uint32_t lens[1024];
};

static struct fx F;

/* The next fx_open()'s batch_bytes (0: no limit) and ring size (0: NUM). */
static uint64_t fx_batch;
static uint16_t fx_num;
/* The next fx_open()'s element-mode callbacks (NULL: complete_cb, none). */
static svqiso_complete_fn fx_complete;
static svqiso_giveback_fn fx_giveback;
/* The next fx_open()'s oneoff_max (0: the default). */
static uint64_t fx_oneoff_max;

/* Set to make the iso refuse new regions, as a frontend whose backend has
 * no memory slot left would (-ENOSPC), or with another errno. */
static bool refuse_regions;
static int refuse_errno = -ENOSPC;

static int region_add_cb(void *ctx, const struct svqiso_region *r)
{
	(void)ctx;
	if (refuse_regions)
		return refuse_errno;
	F.region_adds++;
	F.last_add_size = r->size;
	return 0;
}

static int region_del_cb(void *ctx, const struct svqiso_region *r)
{
	(void)ctx;
	(void)r;
	F.region_dels++;
	return 0;
}

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)level;
	(void)ctx;
	F.logs++;
	snprintf(F.last_log, sizeof(F.last_log), "%s", msg);
}

static void complete_cb(void *ctx, void *cookie, uint32_t len)
{
	(void)ctx;
	ck_assert_uint_lt(F.ncomplete, 1024);
	F.cookies[F.ncomplete] = cookie;
	F.lens[F.ncomplete] = len;
	F.ncomplete++;
}

static void *gpa_hva(uint64_t gpa)
{
	return F.guest + (gpa - GUEST_BASE);
}

/* Set up guest, iso, pool (arena of @pool_size, or memfd if 0) and svq. */
static void fx_open(uint8_t glayout, uint8_t slayout, uint32_t gfeat,
		    uint32_t sfeat, uint32_t flags, uint64_t pool_size, int copy)
{
	SVQISO_OPTS(svqiso_mem_opts, mo, .log = log_cb);
	SVQISO_OPTS(svqiso_iso_opts, io, .log = log_cb, .region_add = region_add_cb,
		    .region_del = region_del_cb);
	SVQISO_OPTS(svqiso_arena_opts, ao, .size = pool_size);
	struct svqiso_mem_region r = { .gpa = GUEST_BASE, .size = GUEST_SIZE, .fd = -1 };
	SVQISO_OPTS(svqiso_svq_opts, so,
		    .flags = flags, .num = fx_num ? fx_num : NUM,
		    .guest_layout = glayout,
		    .shadow_layout = slayout, .guest_features = gfeat,
		    .shadow_features = sfeat, .copy = (uint8_t)copy,
		    .max_segs = MAX_SEGS * 2,
		    .guest_ring = { GUEST_BASE + G_DESC, GUEST_BASE + G_DRIVER,
				    GUEST_BASE + G_DEVICE },
		    .guest_mem = svqiso_mem_ops(),
		    .complete = fx_complete ? fx_complete : complete_cb,
		    .log = log_cb, .name = "q0", .batch_bytes = fx_batch,
		    .giveback = fx_giveback, .oneoff_max = fx_oneoff_max);
	struct svq_drv_cfg dc = {
		.layout = glayout, .num = fx_num ? fx_num : NUM, .flags = gfeat,
	};
	struct svq_dev_cfg bc;

	memset(&F, 0, sizeof(F));
	refuse_regions = false;
	refuse_errno = -ENOSPC;
	F.guest = aligned_alloc(4096, GUEST_SIZE);
	ck_assert_ptr_nonnull(F.guest);
	memset(F.guest, 0, GUEST_SIZE);
	r.hva = F.guest;
	ck_assert_int_eq(svqiso_mem_new(&mo, &F.gmem), 0);
	ck_assert_int_eq(svqiso_mem_add_region(F.gmem, &r), 0);
	dc.desc = gpa_hva(GUEST_BASE + G_DESC);
	dc.driver = gpa_hva(GUEST_BASE + G_DRIVER);
	dc.device = gpa_hva(GUEST_BASE + G_DEVICE);
	if (!(flags & SVQISO_SVQ_F_ELEMENT))
		ck_assert_int_eq(svq_drv_init(&F.gdrv, &dc), 0);

	ck_assert_int_eq(svqiso_iso_new(&io, &F.iso), 0);
	if (pool_size)
		ck_assert_int_eq(svqiso_pool_new_arena(F.iso, &ao, &F.pool), 0);
	else
		ck_assert_int_eq(svqiso_pool_new_memfd(F.iso, &F.pool), 0);
	so.pool = F.pool;
	so.guest_mem_ctx = F.gmem;
	so.iso = F.iso;
	ck_assert_int_eq(svqiso_svq_new(&so, &F.svq), 0);
	ck_assert_int_eq(svqiso_svq_get_shadow(F.svq, &F.info), 0);

	bc = (struct svq_dev_cfg){
		.layout = F.info.layout, .num = F.info.num, .flags = F.info.features,
		.desc = F.info.iova.desc, .driver = F.info.iova.driver,
		.device = F.info.iova.device,
		.mem = svqiso_mem_ops(), .mem_ctx = (void *)svqiso_iso_mem(F.iso),
		.max_indirect = MAX_SEGS * 2, .name = "backend",
	};
	ck_assert_int_eq(svq_dev_init(&F.backend, &bc), 0);
}

static void fx_close(void)
{
	svq_dev_fini(&F.backend);
	svqiso_svq_free(F.svq);
	svqiso_pool_free(F.pool);
	svqiso_iso_free(F.iso);
	svq_drv_fini(&F.gdrv);
	svqiso_mem_free(F.gmem);
	free(F.guest);
	fx_batch = 0;
	fx_num = 0;
	fx_complete = NULL;
	fx_giveback = NULL;
	fx_oneoff_max = 0;
}

/* The backend: pop one chain, check what it reads, fill what it may write. */
static int backend_serve(uint32_t report_len_delta, uint32_t *len_out,
			 uint8_t fill)
{
	struct svq_elem e = { .seg = F.bseg, .max_seg = MAX_SEGS * 2 };
	uint32_t written = 0;
	uint16_t k;
	int ret = svq_dev_pop(&F.backend, &e);

	if (ret != 1)
		return ret;
	for (k = e.nout; k < e.nseg; k++) {
		memset(e.seg[k].hva, fill, e.seg[k].len);
		written += e.seg[k].len;
	}
	written += report_len_delta;
	ck_assert_int_eq(svq_dev_push(&F.backend, e.id, written), 0);
	svq_dev_flush(&F.backend);
	if (len_out)
		*len_out = written;
	return 1;
}

/* Guest: post one chain of @n segments at @off; readable ones carry @pat;
 * with @ind, through the indirect table at guest offset @table. */
static uint16_t guest_post_table(unsigned int n, unsigned int nw, uint32_t seglen,
				 uint64_t off, uint8_t pat, bool ind, uint64_t table)
{
	struct svq_seg s[MAX_SEGS];
	struct svq_indirect t;
	uint16_t id;
	unsigned int k;

	ck_assert_uint_le(n, MAX_SEGS);
	for (k = 0; k < n; k++) {
		s[k].addr = GUEST_BASE + G_DATA + off + (uint64_t)k * seglen;
		s[k].len = seglen;
		s[k].write = k >= n - nw;
		memset(gpa_hva(s[k].addr), s[k].write ? 0xee : pat, seglen);
	}
	t = (struct svq_indirect){ .hva = gpa_hva(GUEST_BASE + table),
				   .addr = GUEST_BASE + table, .cap = 64 };
	ck_assert_int_eq(svq_drv_add(&F.gdrv, s, n, ind ? &t : NULL, &id), 0);
	F.last_kick = svq_drv_kick_prepare(&F.gdrv);
	return id;
}

static uint16_t guest_post(unsigned int n, unsigned int nw, uint32_t seglen,
			   uint64_t off, uint8_t pat, bool ind)
{
	return guest_post_table(n, nw, seglen, off, pat, ind, G_TABLES);
}

/* ---- ring mode, all four layout pairs ---- */

START_TEST(test_ring_mode_roundtrip_matches)
{
	uint8_t gl = _i & 1, sl = (_i >> 1) & 1;
	uint64_t s = seed + _i;
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	unsigned int iter;

	fx_open(gl, sl, SVQISO_RING_F_EVENT_IDX | SVQISO_RING_F_INDIRECT,
		SVQISO_RING_F_EVENT_IDX | SVQISO_RING_F_INDIRECT, 0, 4 << 20,
		SVQISO_COPY_AUTO);
	for (iter = 0; iter < 3000; iter++) {
		unsigned int n = 1 + rnd(&s) % 8, nw = rnd(&s) % (n + 1);
		uint32_t seglen = 1 + rnd(&s) % 4096, len, glen;
		uint8_t pat = (uint8_t)rnd(&s), fill = (uint8_t)(rnd(&s) | 1);
		uint16_t id = guest_post(n, nw, seglen, 0, pat, rnd(&s) & 1), gid;
		unsigned int k;
		int m;

		m = svqiso_svq_process_avail(F.svq);
		ck_assert_int_ge(m, 0);
		/* The backend sees the readable bytes, in isolated memory. */
		{
			struct svq_elem e = { .seg = F.bseg, .max_seg = MAX_SEGS * 2 };

			ck_assert_int_eq(svq_dev_pop(&F.backend, &e), 1);
			ck_assert_uint_eq(e.nseg, n);
			ck_assert_uint_eq(e.out_bytes, (n - nw) * seglen);
			for (k = 0; k < e.nseg; k++) {
				const uint8_t *p = e.seg[k].hva;

				ck_assert(p < F.guest || p >= F.guest + GUEST_SIZE);
				if (!e.seg[k].write)
					ck_assert(p[0] == pat && p[seglen - 1] == pat);
				else
					memset(e.seg[k].hva, fill, e.seg[k].len);
			}
			len = nw * seglen;
			ck_assert_int_eq(svq_dev_push(&F.backend, e.id, len), 0);
			svq_dev_flush(&F.backend);
		}
		m = svqiso_svq_process_used(F.svq);
		ck_assert_int_ge(m, 0);
		ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
		ck_assert_uint_eq(gid, id);
		ck_assert_uint_eq(glen, len);
		for (k = n - nw; k < n; k++) {
			const uint8_t *p = gpa_hva(GUEST_BASE + G_DATA + (uint64_t)k * seglen);

			ck_assert(p[0] == fill && p[seglen - 1] == fill);
		}
	}
	ck_assert(!svqiso_svq_is_broken(F.svq));
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.requests, 3000);
	ck_assert_uint_eq(st.completions, 3000);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	fx_close();
}
END_TEST

/* ---- copy-back policy ---- */

/* A device that under-reports: default copies len bytes, preserve copies all. */
static void under_report(uint32_t flags, uint8_t want_tail)
{
	struct svq_elem e = { .seg = F.bseg, .max_seg = MAX_SEGS * 2 };
	uint16_t gid;
	uint32_t glen;
	uint8_t *w;

	fx_open(SVQISO_LAYOUT_SPLIT, SVQISO_LAYOUT_SPLIT, 0, 0, flags, 1 << 20,
		SVQISO_COPY_MEMCPY);
	guest_post(2, 1, 100, 0, 0x11, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_int_eq(svq_dev_pop(&F.backend, &e), 1);
	/* "preserve" shows the device the guest's current bytes. */
	ck_assert_uint_eq(((uint8_t *)e.seg[1].hva)[99],
			  flags & SVQISO_SVQ_F_PRESERVE ? 0xee : 0x00);
	memset(e.seg[1].hva, 0x77, 100);
	ck_assert_int_eq(svq_dev_push(&F.backend, e.id, 40), 0);
	svq_dev_flush(&F.backend);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
	ck_assert_uint_eq(glen, 40);
	w = gpa_hva(GUEST_BASE + G_DATA + 100);
	ck_assert_uint_eq(w[39], 0x77);
	ck_assert_uint_eq(w[40], want_tail);
	ck_assert_uint_eq(w[99], want_tail);
	fx_close();
}

START_TEST(test_under_report_default_copies_len_only)
{
	under_report(0, 0xee);
}
END_TEST

START_TEST(test_under_report_preserve_copies_all)
{
	under_report(SVQISO_SVQ_F_PRESERVE, 0x77);
}
END_TEST

/* ---- hostile backend ---- */

START_TEST(test_len_past_writable_clamped)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint16_t gid;
	uint32_t glen, blen;
	uint8_t *after;

	fx_open(_i, _i, 0, 0, 0, 1 << 20, SVQISO_COPY_MEMCPY);
	guest_post(2, 1, 100, 0, 0x11, false);
	after = gpa_hva(GUEST_BASE + G_DATA + 200);
	memset(after, 0x5a, 4096);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_int_eq(backend_serve(1000000, &blen, 0x77), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
	ck_assert_uint_eq(glen, 100);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.clamped, 1);
	for (int k = 0; k < 4096; k++)
		ck_assert_uint_eq(after[k], 0x5a);
	fx_close();
}
END_TEST

/* Write a used entry {id, len} into the shadow ring as a rogue backend. */
static void rogue_used(uint32_t id, uint32_t len, uint16_t idx_step)
{
	if (F.info.layout == SVQISO_LAYOUT_SPLIT) {
		struct svq_split_used *u = (void *)(uintptr_t)F.info.uaddr.device;
		uint16_t idx = le16toh(u->idx);

		u->ring[idx % NUM].id = htole32(id);
		u->ring[idx % NUM].len = htole32(len);
		__atomic_store_n(&u->idx, htole16(idx + idx_step), __ATOMIC_RELEASE);
	} else {
		struct svq_packed_desc *d = (void *)(uintptr_t)F.info.uaddr.desc;
		uint16_t pos = F.backend.packed.used_idx;
		uint16_t fl = F.backend.packed.used_wrap_counter ?
			      SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED : 0;

		d[pos].id = htole16((uint16_t)id);
		d[pos].len = htole32(len);
		__atomic_store_n(&d[pos].flags, htole16(fl), __ATOMIC_RELEASE);
	}
}

static void expect_broken(const char *rule)
{
	ck_assert_int_eq(svqiso_svq_process_used(F.svq), -EIO);
	ck_assert(svqiso_svq_is_broken(F.svq));
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), rule));
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EIO);
	ck_assert_int_eq(svqiso_svq_process_used(F.svq), -EIO);
}

static uint8_t *snap;

static void hostile_setup(uint8_t layout)
{
	fx_open(layout, layout, 0, 0, 0, 1 << 20, SVQISO_COPY_MEMCPY);
	guest_post(2, 1, 100, 0, 0x11, false);
	guest_post(2, 1, 100, 200, 0x22, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	snap = malloc(GUEST_SIZE);
	memcpy(snap, F.guest, GUEST_SIZE);
}

static void hostile_check(void)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };

	/* Guest RAM untouched: no copy-back, no used entry pushed. */
	ck_assert(memcmp(snap, F.guest, GUEST_SIZE) == 0);
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.errors, 1);
	/* The guest ring resumes past the two chains of two descriptors the
	 * svq took: split counts chains, packed descriptors plus wrap bit. */
	ck_assert_int_eq(svqiso_svq_reset(F.svq, F.info.layout == SVQISO_LAYOUT_PACKED ?
					  (1u << 15) | 4 : 2), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	free(snap);
	fx_close();
}

START_TEST(test_used_id_never_issued_breaks)
{
	hostile_setup(_i);
	rogue_used(NUM - 1, 10, 1);
	expect_broken("used-id");
	hostile_check();
}
END_TEST

START_TEST(test_used_id_out_of_range_breaks)
{
	hostile_setup(_i);
	/* split ids are 32 bits on the wire, packed ones 16 */
	rogue_used(F.info.layout == SVQISO_LAYOUT_SPLIT ? 0x10000 : 0xffff, 10, 1);
	expect_broken("used-id");
	hostile_check();
}
END_TEST

START_TEST(test_used_duplicate_breaks)
{
	struct svq_elem e = { .seg = F.bseg, .max_seg = MAX_SEGS * 2 };
	uint16_t gid;
	uint32_t glen;

	hostile_setup(_i);
	ck_assert_int_eq(svq_dev_pop(&F.backend, &e), 1);
	ck_assert_int_eq(svq_dev_push(&F.backend, e.id, 0), 0);
	svq_dev_flush(&F.backend);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
	memcpy(snap, F.guest, GUEST_SIZE);
	/* The same id once more. */
	rogue_used(e.id, 0, 1);
	expect_broken("used-id");
	hostile_check();
}
END_TEST

START_TEST(test_used_idx_jump_breaks)
{
	hostile_setup(SVQISO_LAYOUT_SPLIT);
	rogue_used(0, 10, 5);	/* 5 entries with 2 outstanding */
	expect_broken("used-idx");
	hostile_check();
}
END_TEST

/* A bad entry after good ones: the good completions still reach the guest. */
START_TEST(test_used_good_before_bad_still_published)
{
	struct svq_elem e = { .seg = F.bseg, .max_seg = MAX_SEGS * 2 };
	uint16_t gid, first;
	uint32_t glen;

	hostile_setup(_i);
	ck_assert_int_eq(svq_dev_pop(&F.backend, &e), 1);
	first = e.id;
	memset(e.seg[1].hva, 0x99, e.seg[1].len);
	ck_assert_int_eq(svq_dev_push(&F.backend, e.id, 100), 0);
	svq_dev_flush(&F.backend);
	rogue_used(NUM - 1, 10, 1);
	ck_assert_int_eq(svqiso_svq_process_used(F.svq), -EIO);
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), "used-id"));
	/* The first request was copied back and is on the guest's used ring. */
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
	ck_assert_uint_eq(glen, 100);
	ck_assert_uint_eq(*(uint8_t *)gpa_hva(GUEST_BASE + G_DATA + 100), 0x99);
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 0);
	ck_assert_uint_eq(gid, first);
	/* The second request's writable bytes were never touched. */
	ck_assert_uint_eq(*(uint8_t *)gpa_hva(GUEST_BASE + G_DATA + 300), 0xee);
	ck_assert_int_eq(svqiso_svq_reset(F.svq, F.info.layout == SVQISO_LAYOUT_PACKED ?
					  (1u << 15) | 4 : 2), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	free(snap);
	fx_close();
}
END_TEST

/* ---- guest violations ---- */

START_TEST(test_guest_violation_breaks_with_reason)
{
	struct svq_seg s = { .addr = GUEST_BASE + GUEST_SIZE + 4096, .len = 16 };
	uint16_t id;

	fx_open(_i, _i, 0, 0, 0, 1 << 20, SVQISO_COPY_MEMCPY);
	ck_assert_int_eq(svq_drv_add(&F.gdrv, &s, 1, NULL, &id), 0);
	svq_drv_kick_prepare(&F.gdrv);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EIO);
	ck_assert(svqiso_svq_is_broken(F.svq));
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), "addr-unmapped"));
	ck_assert_int_eq(F.logs, 1);
	ck_assert_int_eq(svq_dev_pop(&F.backend, &(struct svq_elem){ .seg = F.bseg, .max_seg = 4 }), 0);
	fx_close();
}
END_TEST

/* ---- backpressure ---- */

START_TEST(test_pool_full_stalls_then_resumes_in_order)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint16_t ids[NUM], gid;
	uint32_t glen;
	unsigned int posted = 0, done = 0, k;

	/* 64 KiB arena, 16 KiB requests: four fit at once. */
	fx_open(_i & 1, _i >> 1, 0, 0, 0, 64 << 10, SVQISO_COPY_MEMCPY);
	for (k = 0; k < 32; k++)
		ids[posted++] = guest_post(1, 1, 16 << 10, (uint64_t)k * (16 << 10),
					   0, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	while (done < posted) {
		unsigned int served = 0;

		while (backend_serve(0, NULL, (uint8_t)done) == 1)
			served++;
		ck_assert_uint_gt(served, 0);
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		while (svq_drv_get_used(&F.gdrv, &gid, &glen) == 1) {
			ck_assert_uint_eq(gid, ids[done]);	/* FIFO device */
			ck_assert_uint_eq(glen, 16 << 10);
			done++;
		}
	}
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_gt(st.pool_stalls, 0);
	ck_assert_uint_le(st.pool_high_water, 64 << 10);
	ck_assert_uint_eq(st.requests, 32);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	fx_close();
}
END_TEST

/* Re-attach the test's backend to a freshly laid out shadow ring. */
static void backend_reattach(void)
{
	struct svq_dev_cfg bc = {
		.layout = F.info.layout, .num = F.info.num, .flags = F.info.features,
		.desc = F.info.iova.desc, .driver = F.info.iova.driver,
		.device = F.info.iova.device,
		.mem = svqiso_mem_ops(), .mem_ctx = (void *)svqiso_iso_mem(F.iso),
		.max_indirect = MAX_SEGS * 2, .name = "backend",
	};

	svq_dev_fini(&F.backend);
	ck_assert_int_eq(svq_dev_init(&F.backend, &bc), 0);
}

/*
 * A stop without loss: pause, drain what was taken (a chain waiting for
 * bounce space included), note the guest base, reset there, resume: every
 * chain the guest posted completes exactly once.
 */
START_TEST(test_pause_drain_reset_resume_loses_nothing)
{
	bool seen[NUM] = { false };
	uint16_t gid;
	uint32_t glen, base;
	unsigned int posted = 0, done = 0, k;

	/* 64 KiB arena, 16 KiB requests: four fit, the fifth is held. */
	fx_open(_i & 1, _i >> 1, 0, 0, 0, 64 << 10, SVQISO_COPY_MEMCPY);
	ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &base), 0);
	ck_assert_uint_eq(base, (_i & 1) ? SVQISO_PACKED_FRESH_BASE : 0);
	for (k = 0; k < 8; k++, posted++)
		guest_post(1, 1, 16 << 10, (uint64_t)k * (16 << 10), 0, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 5);

	ck_assert_int_eq(svqiso_svq_pause(F.svq, true), 0);
	for (k = 8; k < 12; k++, posted++)
		guest_post(1, 1, 16 << 10, (uint64_t)k * (16 << 10), 0, false);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), 0);	/* takes none */
	while (svqiso_svq_in_flight(F.svq)) {
		unsigned int served = 0;

		while (backend_serve(0, NULL, 0x5a) == 1)
			served++;
		ck_assert_uint_gt(served, 0);
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		ck_assert_uint_le(svqiso_svq_in_flight(F.svq), 1);
	}
	while (svq_drv_get_used(&F.gdrv, &gid, &glen) == 1) {
		ck_assert(!seen[gid]);
		seen[gid] = true;
		done++;
	}
	ck_assert_uint_eq(done, 5);	/* the held chain went, no other */
	ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &base), 0);
	/* Packed: used where avail is, in the high half. */
	ck_assert_uint_eq(base, (_i & 1) ? (5u | 1u << 15) * 0x10001u : 5u);

	/* Restart where it stopped, with a fresh shadow ring. */
	ck_assert_int_eq(svqiso_svq_reset(F.svq, base), 0);
	ck_assert_int_eq(svqiso_svq_pause(F.svq, false), 0);
	ck_assert_int_eq(svqiso_svq_get_shadow(F.svq, &F.info), 0);
	backend_reattach();
	while (done < posted) {
		ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
		while (backend_serve(0, NULL, 0x5a) == 1)
			;
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		while (svq_drv_get_used(&F.gdrv, &gid, &glen) == 1) {
			ck_assert(!seen[gid]);
			seen[gid] = true;
			ck_assert_uint_eq(glen, 16 << 10);
			done++;
		}
	}
	ck_assert_uint_eq(done, 12);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	ck_assert_int_eq(svqiso_svq_pause(NULL, true), -EINVAL);
	ck_assert_int_eq(svqiso_svq_guest_base(F.svq, NULL), -EINVAL);
	fx_close();
}
END_TEST

/*
 * Lazy kicks: while the backend holds requests the guest is asked for no
 * kick, and what it posts meanwhile is taken by process_used(); once nothing
 * is in flight kicks are asked for again, and no chain is stranded. Without
 * the flag the guest is asked to kick at once.
 */
START_TEST(test_lazy_kicks_take_chains_on_completion)
{
	bool lazy = _i & 1;
	uint8_t layout = (uint8_t)(_i >> 1);
	struct svq_elem e = { .seg = F.bseg, .max_seg = MAX_SEGS * 2 };
	uint16_t gid;
	uint32_t glen;
	unsigned int done = 0;

	fx_open(layout, layout, SVQISO_RING_F_EVENT_IDX, SVQISO_RING_F_EVENT_IDX,
		lazy ? SVQISO_SVQ_F_LAZY_KICKS : 0, 1 << 20, SVQISO_COPY_MEMCPY);
	guest_post(1, 1, 512, 0, 0, false);
	guest_post(1, 1, 512, 512, 0, false);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), SVQISO_SIGNAL_BACKEND);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 2);

	/* A third chain while two are at the backend. */
	guest_post(1, 1, 512, 1024, 0, false);
	ck_assert(F.last_kick == !lazy);
	if (!lazy)
		ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);

	/* One completion: with lazy kicks it also forwards the third. */
	ck_assert_int_eq(backend_serve(0, NULL, 0x11), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 2);
	while (backend_serve(0, NULL, 0x11) == 1)
		;
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	while (svq_drv_get_used(&F.gdrv, &gid, &glen) == 1)
		done++;
	ck_assert_uint_eq(done, 3);
	ck_assert_int_eq(svq_dev_pop(&F.backend, &e), 0);

	/* Nothing in flight: the guest is asked to kick again. */
	guest_post(1, 1, 512, 1536, 0, false);
	ck_assert(F.last_kick);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), SVQISO_SIGNAL_BACKEND);
	ck_assert_int_eq(backend_serve(0, NULL, 0x11), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	fx_close();
}
END_TEST

/* ---- batch_bytes ---- */

static unsigned int guest_used_count(void)
{
	unsigned int n = 0;
	uint16_t gid;
	uint32_t glen;

	while (svq_drv_get_used(&F.gdrv, &gid, &glen) == 1)
		n++;
	return n;
}

/*
 * 16 KiB requests, batch_bytes 32 KiB: each call stops after two requests'
 * bytes, publishes them, signals as a whole batch would, and leaves the
 * peer's notifications off until the call that finds nothing left.
 */
START_TEST(test_batch_bytes_splits_both_sides)
{
	const uint32_t ev = SVQISO_RING_F_EVENT_IDX | SVQISO_RING_F_INDIRECT;
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	unsigned int k, calls, served = 0, again = 0, notified = 0;
	int m;

	fx_batch = 32 << 10;
	fx_open(_i & 1, _i >> 1, ev, ev, 0, 1 << 20, SVQISO_COPY_MEMCPY);

	/* Avail side: 8 writes (device-readable data). */
	for (k = 0; k < 8; k++)
		guest_post(1, 0, 16 << 10, (uint64_t)k * (16 << 10), (uint8_t)(k + 1), false);
	m = svqiso_svq_process_avail(F.svq);
	ck_assert_int_eq(m, SVQISO_SIGNAL_BACKEND | SVQISO_SIGNAL_AGAIN);
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.requests, 2);
	/* What the backend was kicked for is there already. */
	while (backend_serve(0, NULL, 0) == 1)
		served++;
	ck_assert_uint_eq(served, 2);
	/* The svq comes back by itself: the guest is asked for no kick. */
	guest_post(1, 0, 16 << 10, 8u * (16 << 10), 9, false);
	ck_assert(!F.last_kick);
	for (calls = 1; (m = svqiso_svq_process_avail(F.svq)) & SVQISO_SIGNAL_AGAIN; calls++)
		ck_assert_int_ge(m, 0);
	ck_assert_int_ge(m, 0);
	ck_assert_uint_eq(calls, 4);	/* 2, 2, 2, then the last one and the empty look */
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.requests, 9);
	while (backend_serve(0, NULL, 0) == 1)
		served++;
	ck_assert_uint_eq(served, 9);
	/* All taken: kicks are asked for again. */
	guest_post(1, 0, 16 << 10, 0, 10, false);
	ck_assert(F.last_kick);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_int_eq(backend_serve(0, NULL, 0), 1);
	/* Writes copy nothing back: one call completes all ten. */
	m = svqiso_svq_process_used(F.svq);
	ck_assert_int_eq(m & SVQISO_SIGNAL_AGAIN, 0);
	ck_assert_uint_eq(guest_used_count(), 10);

	/* Used side: 8 reads, all completed by the backend at once. */
	for (k = 0; k < 8; k++)
		guest_post(1, 1, 16 << 10, (uint64_t)k * (16 << 10), 0, false);
	m = svqiso_svq_process_avail(F.svq);
	ck_assert_int_eq(m & SVQISO_SIGNAL_AGAIN, 0);	/* nothing copied out */
	for (k = 0; k < 8; k++)
		ck_assert_int_eq(backend_serve(0, NULL, (uint8_t)(0x40 + k)), 1);
	m = svqiso_svq_process_used(F.svq);
	ck_assert_int_eq(m, SVQISO_SIGNAL_GUEST | SVQISO_SIGNAL_AGAIN);
	ck_assert_uint_eq(guest_used_count(), 2);	/* published at once */
	for (k = 0; k < 2; k++) {
		const uint8_t *p = gpa_hva(GUEST_BASE + G_DATA + (uint64_t)k * (16 << 10));

		ck_assert(p[0] == 0x40 + k && p[(16 << 10) - 1] == 0x40 + k);
	}
	do {
		m = svqiso_svq_process_used(F.svq);
		ck_assert_int_ge(m, 0);
		/* The guest took the first two and asked for the next: a
		 * split guest (event idx) once more, and only once. */
		notified += !!(m & SVQISO_SIGNAL_GUEST);
		again += !!(m & SVQISO_SIGNAL_AGAIN);
	} while (m & SVQISO_SIGNAL_AGAIN);
	if ((_i & 1) == SVQISO_LAYOUT_SPLIT)
		ck_assert_uint_eq(notified, 1);
	else
		ck_assert_uint_ge(notified, 1);
	ck_assert_uint_eq(again, 3);
	ck_assert_uint_eq(guest_used_count(), 6);
	for (k = 0; k < 8; k++) {
		const uint8_t *p = gpa_hva(GUEST_BASE + G_DATA + (uint64_t)k * (16 << 10));

		ck_assert(p[0] == 0x40 + k && p[(16 << 10) - 1] == 0x40 + k);
	}
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	/* 4 on the avail side, 4 on the used side. */
	ck_assert_uint_eq(st.splits, 8);
	ck_assert_uint_eq(st.completions, 18);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	fx_close();
}
END_TEST

/*
 * A full pool with batch_bytes: the chains that waited for room are taken
 * by process_used() a batch at a time, and a call that finds no completion
 * still goes on with them.
 */
START_TEST(test_batch_bytes_resumes_held_chains)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint16_t ids[32], gid;
	uint32_t glen;
	unsigned int posted = 0, done = 0, k;
	int m;

	/* 64 KiB arena, 16 KiB writes: four fit; two per call. */
	fx_batch = 32 << 10;
	fx_open(_i & 1, _i >> 1, 0, 0, 0, 64 << 10, SVQISO_COPY_MEMCPY);
	for (k = 0; k < 32; k++)
		ids[posted++] = guest_post(1, 0, 16 << 10, (uint64_t)k * (16 << 10),
					   (uint8_t)k, false);
	do {
		m = svqiso_svq_process_avail(F.svq);
		ck_assert_int_ge(m, 0);
	} while (m & SVQISO_SIGNAL_AGAIN);
	while (done < posted) {
		unsigned int served = 0;

		while (backend_serve(0, NULL, 0) == 1)
			served++;
		ck_assert_uint_gt(served, 0);
		do {
			m = svqiso_svq_process_used(F.svq);
			ck_assert_int_ge(m, 0);
		} while (m & SVQISO_SIGNAL_AGAIN);
		while (svq_drv_get_used(&F.gdrv, &gid, &glen) == 1) {
			ck_assert_uint_eq(gid, ids[done]);
			done++;
		}
	}
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_gt(st.pool_stalls, 0);
	ck_assert_uint_gt(st.splits, 0);
	ck_assert_uint_eq(st.requests, 32);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	fx_close();
}
END_TEST

/* The pool cannot get memory registered: the queue breaks, nothing is lost
 * silently and the guest is untouched. */
START_TEST(test_pool_failure_breaks)
{
	uint8_t *before = malloc(GUEST_SIZE);

	fx_open(_i, _i, 0, 0, 0, 0, SVQISO_COPY_MEMCPY);
	guest_post(2, 1, 100, 0, 0x11, false);
	memcpy(before, F.guest, GUEST_SIZE);
	refuse_regions = true;
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EIO);
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), "bounce"));
	/* Buffers untouched and nothing completed (the ring's notification
	 * flags may change: that is the device's to write). */
	ck_assert(memcmp(before + G_DATA, F.guest + G_DATA, GUEST_SIZE - G_DATA) == 0);
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &(uint16_t){ 0 }, &(uint32_t){ 0 }), 0);
	ck_assert_int_eq(svq_dev_pop(&F.backend, &(struct svq_elem){ .seg = F.bseg, .max_seg = 4 }), 0);
	free(before);
	fx_close();
}
END_TEST

/* ---- stopping a queue whose requests stay posted: rewind ---- */

/* A device that takes chains and completes them later, as a net device
 * fills RX buffers only when frames arrive. */
struct held_elem {
	struct svq_elem e;
	struct svq_seg seg[MAX_SEGS * 2];
};

static bool backend_take(struct held_elem *h)
{
	h->e = (struct svq_elem){ .seg = h->seg, .max_seg = MAX_SEGS * 2 };
	return svq_dev_pop(&F.backend, &h->e) == 1;
}

static void backend_finish(struct held_elem *h, uint8_t fill)
{
	uint32_t written = 0;
	uint16_t k;

	for (k = h->e.nout; k < h->e.nseg; k++) {
		memset(h->e.seg[k].hva, fill, h->e.seg[k].len);
		written += h->e.seg[k].len;
	}
	ck_assert_int_eq(svq_dev_push(&F.backend, h->e.id, written), 0);
	svq_dev_flush(&F.backend);
}

#define RW_BUFS		32		/* guest buffers of RW_BUF bytes */
#define RW_BUF		(16u << 10)

/* Per guest buffer: its chain's guest id while posted, and its shape. */
struct rw_guest {
	bool busy[RW_BUFS];
	int buf_of_id[NUM];
	uint8_t nseg[RW_BUFS], nw[RW_BUFS];
	uint32_t seglen[RW_BUFS];
	unsigned int posted, completed;
};

static void rw_post(struct rw_guest *g, uint64_t *s, bool ind)
{
	unsigned int b, n, nw;
	uint32_t seglen;
	uint16_t id;

	for (b = 0; g->busy[b]; b++)
		;
	n = 1 + (unsigned int)(rnd(s) % 3);
	nw = (unsigned int)(rnd(s) % (n + 1));
	seglen = 512u << (rnd(s) % 3);
	id = guest_post_table(n, nw, seglen, (uint64_t)b * RW_BUF,
			      (uint8_t)(0x10 + b), ind, G_TABLES + (uint64_t)b * 64 * 16);
	g->busy[b] = true;
	g->buf_of_id[id] = (int)b;
	g->nseg[b] = (uint8_t)n;
	g->nw[b] = (uint8_t)nw;
	g->seglen[b] = seglen;
	g->posted++;
}

/* Collect the guest's used entries: each chain once, with what it asked. */
static void rw_collect(struct rw_guest *g, uint8_t fill)
{
	uint16_t gid;
	uint32_t glen;

	while (svq_drv_get_used(&F.gdrv, &gid, &glen) == 1) {
		int b = g->buf_of_id[gid];
		uint8_t *w;

		ck_assert_int_ge(b, 0);
		ck_assert_msg(g->busy[b], "chain %u completed twice", gid);
		ck_assert_uint_eq(glen, (uint32_t)g->nw[b] * g->seglen[b]);
		if (g->nw[b]) {
			w = gpa_hva(GUEST_BASE + G_DATA + (uint64_t)b * RW_BUF +
				    (uint64_t)(g->nseg[b] - g->nw[b]) * g->seglen[b]);
			ck_assert_uint_eq(w[0], fill);
			ck_assert_uint_eq(w[glen - 1], fill);
		}
		g->busy[b] = false;
		g->buf_of_id[gid] = -1;
		g->completed++;
	}
}

/*
 * A device holding some of the requests it took, completing some, never
 * seeing the rest; the queue stops at the device's vring base: what it
 * never took goes back to the guest ring, with the chain waiting for
 * bounce space; what it holds completes; a restart at the guest base
 * delivers every chain exactly once. All four layout pairs, with and
 * without indirect tables on both rings, many random rounds.
 */
START_TEST(test_rewind_gives_back_what_backend_never_took)
{
	uint8_t gl = _i & 1, sl = (_i >> 1) & 1;
	uint32_t feat = _i & 4 ? SVQISO_RING_F_INDIRECT : 0;
	struct held_elem *held = calloc(NUM, sizeof(*held));
	struct rw_guest g;
	uint64_t s = seed + (uint64_t)_i;
	unsigned int round, k, nheld, posted_now, took;
	uint32_t base, gbase;
	int ret;

	ck_assert_ptr_nonnull(held);
	memset(&g, 0, sizeof(g));
	memset(g.buf_of_id, -1, sizeof(g.buf_of_id));
	/* 48 KiB of bounce space: some rounds hold a chain for room. */
	fx_open(gl, sl, feat, feat, 0, 48 << 10, SVQISO_COPY_MEMCPY);
	for (round = 0; round < 200; round++) {
		struct svqiso_svq_stats st = { .sz = sizeof(st) };
		unsigned int inflight, want_back;

		posted_now = 1 + (unsigned int)(rnd(&s) % 8);
		for (k = 0; k < posted_now && g.posted - g.completed < RW_BUFS; k++)
			rw_post(&g, &s, feat && rnd(&s) % 2);
		ret = svqiso_svq_process_avail(F.svq);
		ck_assert_int_ge(ret, 0);
		inflight = svqiso_svq_in_flight(F.svq);
		/* The device takes some, completes a few of those at once. */
		took = (unsigned int)(rnd(&s) % (inflight + 1));
		for (nheld = 0, k = 0; k < took; k++)
			if (backend_take(&held[nheld]))
				nheld++;
		while (nheld && rnd(&s) % 3 == 0)
			backend_finish(&held[--nheld], 0x5a);
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		rw_collect(&g, 0x5a);

		/* Stop: GET_VRING_BASE, then give back what it never took. */
		ck_assert_int_eq(svqiso_svq_pause(F.svq, true), 0);
		base = svq_dev_get_base(&F.backend);
		inflight = svqiso_svq_in_flight(F.svq);
		want_back = inflight - nheld;
		ret = svqiso_svq_rewind(F.svq, base);
		ck_assert_msg(ret == (int)want_back, "round %u: gave back %d, want %u (%u in flight, %u held)",
			      round, ret, want_back, inflight, nheld);
		ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), nheld);
		ck_assert_int_eq(svqiso_svq_pause(F.svq, false), -EBUSY);
		ck_assert_int_eq(svqiso_svq_process_avail(F.svq), 0);	/* takes none */
		/* Only what the device holds is waited for. */
		while (nheld)
			backend_finish(&held[--nheld], 0x5a);
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		rw_collect(&g, 0x5a);
		ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
		ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
		ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);

		/* Restart at the guest base with a fresh shadow ring: the
		 * chains given back are popped again. */
		ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &gbase), 0);
		if (gl == SVQISO_LAYOUT_PACKED)
			ck_assert_uint_eq(gbase >> 16, gbase & 0xffff);
		ck_assert_int_eq(svqiso_svq_reset(F.svq, gbase), 0);
		ck_assert_int_eq(svqiso_svq_pause(F.svq, false), 0);
		ck_assert_int_eq(svqiso_svq_get_shadow(F.svq, &F.info), 0);
		backend_reattach();
	}
	/* Drain everything still posted. */
	while (g.completed < g.posted) {
		ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
		while (backend_serve(0, NULL, 0x5a) == 1)
			;
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		k = g.completed;
		rw_collect(&g, 0x5a);
		ck_assert_uint_gt(g.completed + svqiso_svq_in_flight(F.svq), k);
	}
	ck_assert_uint_ge(g.posted, 500);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	fx_close();
	free(held);
}
END_TEST

/*
 * A base that does not fit what the device did: past the end, inside a
 * packed chain, or before a chain the device already completed. The queue
 * breaks with the reason, and nothing is given back or written to the guest.
 */
START_TEST(test_rewind_bad_base_breaks)
{
	uint8_t sl = (uint8_t)(_i & 1);
	struct held_elem h;
	uint32_t base, bad[3];
	unsigned int nbad = 0, k;
	uint8_t *snap = malloc(GUEST_SIZE);

	ck_assert_ptr_nonnull(snap);
	for (k = 0; k < 3; k++) {
		fx_open(SVQISO_LAYOUT_SPLIT, sl, 0, 0, 0, 1 << 20, SVQISO_COPY_MEMCPY);
		guest_post(2, 1, 512, 0, 0x11, false);
		guest_post(2, 1, 512, 4096, 0x22, false);
		guest_post(2, 1, 512, 8192, 0x33, false);
		ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
		/* The device completes the first, holds the second. */
		ck_assert(backend_take(&h));
		backend_finish(&h, 0x5a);
		ck_assert(backend_take(&h));
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		base = svq_dev_get_base(&F.backend);
		nbad = 0;
		/* One past the end of what was made available. */
		bad[nbad++] = sl ? (base & 0xffff) + 3 : base + 2;
		/* Back over the chain the device completed. */
		bad[nbad++] = sl ? 0x8000 : 0;
		if (sl)	/* the third chain's second slot */
			bad[nbad++] = (base & 0xffff) + 1;
		else	/* a split base has no high half */
			bad[nbad++] = base | 1u << 16;
		memcpy(snap, F.guest, GUEST_SIZE);
		ck_assert_int_eq(svqiso_svq_rewind(F.svq, bad[k]), -EIO);
		ck_assert(svqiso_svq_is_broken(F.svq));
		ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), "stopped at base"));
		ck_assert(memcmp(snap, F.guest, GUEST_SIZE) == 0);
		ck_assert_uint_eq(svqiso_pool_in_use(F.pool) > 0, 1);
		ck_assert_int_eq(svqiso_svq_rewind(F.svq, base), -EIO);
		fx_close();
	}
	/* The good base on the same state gives back exactly the third. */
	fx_open(SVQISO_LAYOUT_SPLIT, sl, 0, 0, 0, 1 << 20, SVQISO_COPY_MEMCPY);
	guest_post(2, 1, 512, 0, 0x11, false);
	guest_post(2, 1, 512, 4096, 0x22, false);
	guest_post(2, 1, 512, 8192, 0x33, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert(backend_take(&h));
	backend_finish(&h, 0x5a);
	ck_assert(backend_take(&h));
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_int_eq(svqiso_svq_rewind(F.svq, svq_dev_get_base(&F.backend)), 1);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 1);
	/* A device completing the chain it never took breaks the queue. */
	{
		struct svq_elem e = { .seg = h.seg, .max_seg = MAX_SEGS * 2 };

		ck_assert_int_eq(svq_dev_pop(&F.backend, &e), 1);
		ck_assert_int_eq(svq_dev_push(&F.backend, e.id, 512), 0);
		svq_dev_flush(&F.backend);
	}
	ck_assert_int_eq(svqiso_svq_process_used(F.svq), -EIO);
	ck_assert_int_eq(svqiso_svq_rewind(NULL, 0), -EINVAL);
	fx_close();
	fx_open(0, sl, 0, 0, SVQISO_SVQ_F_ELEMENT, 1 << 20, SVQISO_COPY_MEMCPY);
	ck_assert_int_eq(svqiso_svq_rewind(F.svq, 0), -EINVAL);
	fx_close();
	free(snap);
}
END_TEST

/*
 * What the backend's published position says it took: split avail_event,
 * packed device event offset while it asks for notifications at one; no
 * EVENT_IDX, no answer; a position that lies stays within what is in
 * flight.
 */
START_TEST(test_backend_taken_follows_published_position)
{
	uint8_t sl = (uint8_t)(_i & 1);
	bool ev = _i & 2;
	struct held_elem h[4];
	unsigned int k;

	fx_open(SVQISO_LAYOUT_SPLIT, sl, 0, ev ? SVQISO_RING_F_EVENT_IDX : 0, 0,
		1 << 20, SVQISO_COPY_MEMCPY);
	ck_assert_int_eq(svqiso_svq_backend_taken(NULL), -EINVAL);
	for (k = 0; k < 4; k++)
		guest_post(1, 1, 512, (uint64_t)k * 4096, 0, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 4);
	if (!ev) {
		ck_assert_int_eq(svqiso_svq_backend_taken(F.svq), -ENODATA);
		fx_close();
		return;
	}
	/* A packed device says where it is only while it asks for
	 * notifications at a position. */
	svq_dev_enable_notify(&F.backend);
	ck_assert_int_eq(svqiso_svq_backend_taken(F.svq), 0);
	for (k = 0; k < 3; k++) {
		ck_assert(backend_take(&h[k]));
		svq_dev_enable_notify(&F.backend);
		ck_assert_int_eq(svqiso_svq_backend_taken(F.svq), (int)k + 1);
	}
	backend_finish(&h[0], 0);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_int_eq(svqiso_svq_backend_taken(F.svq), 2);
	/* A lying position: the answer stays a count of what is in flight;
	 * one that is no place on a packed ring is no answer. */
	if (sl == SVQISO_LAYOUT_SPLIT) {
		*(uint16_t *)((uint8_t *)(uintptr_t)F.info.uaddr.device + 4 + 8 * NUM) =
			htole16(40000);
	} else {
		*(uint16_t *)(uintptr_t)F.info.uaddr.device = htole16(0x7fff);
		ck_assert_int_eq(svqiso_svq_backend_taken(F.svq), -ENODATA);
		*(uint16_t *)(uintptr_t)F.info.uaddr.device = htole16(40);
	}
	k = (unsigned int)svqiso_svq_backend_taken(F.svq);
	ck_assert_uint_le(k, svqiso_svq_in_flight(F.svq));
	ck_assert(!svqiso_svq_is_broken(F.svq));
	/* Broken: -EIO. */
	guest_post(1, 1, 512, 0, 0, false);
	memset(gpa_hva(GUEST_BASE + G_DESC), 0xff, 16 * NUM);
	F.gdrv.split.avail->idx = htole16(le16toh(F.gdrv.split.avail->idx) + 1);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EIO);
	ck_assert_int_eq(svqiso_svq_backend_taken(F.svq), -EIO);
	fx_close();
}
END_TEST

/* Element mode: what rewind hands back, in the order it does. */
static void *given[NUM * 2];
static unsigned int ngiven;

static void giveback_cb(void *ctx, void *cookie)
{
	(void)ctx;
	ck_assert_uint_lt(ngiven, NUM * 2);
	given[ngiven++] = cookie;
}

/*
 * Element mode: requests the device never took, and those still waiting
 * for room, go back to the VMM newest first (so each undoes its last pop);
 * what the device holds completes; submits wait for the reset; a bad base
 * breaks the queue and gives nothing back. Without a giveback callback,
 * rewind is refused.
 */
START_TEST(test_rewind_element_mode_gives_back_newest_first)
{
	struct held_elem h[2];
	uint8_t out[8][4096];
	unsigned int k;
	uint32_t base;

	fx_open(0, _i, 0, 0, SVQISO_SVQ_F_ELEMENT, 16 << 10, SVQISO_COPY_MEMCPY);
	ck_assert_int_eq(svqiso_svq_rewind(F.svq, 0), -EINVAL);	/* no callback */
	fx_close();
	fx_giveback = giveback_cb;
	fx_open(0, _i, 0, 0, SVQISO_SVQ_F_ELEMENT, 16 << 10, SVQISO_COPY_MEMCPY);
	ngiven = 0;

	/* 8 requests of 4 KiB in a 16 KiB arena: 4 forwarded, 4 wait. */
	for (k = 0; k < 8; k++) {
		struct iovec o = { out[k], sizeof(out[k]) };

		ck_assert_int_ge(svqiso_svq_submit(F.svq, &o, 1, NULL, 0,
						   (void *)(uintptr_t)(k + 1)), 0);
	}
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 8);
	/* The device completes the first, holds the second and third. */
	ck_assert(backend_take(&h[0]));
	backend_finish(&h[0], 0);
	ck_assert(backend_take(&h[0]));
	ck_assert(backend_take(&h[1]));
	/* Its completion lets the fifth through: 4 on the shadow ring. */
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(F.ncomplete, 1);
	base = svq_dev_get_base(&F.backend);

	ck_assert_int_eq(svqiso_svq_rewind(F.svq, base), 5);
	/* Newest first: 8, 7, 6 waited for room; 5 and 4 were never taken. */
	ck_assert_uint_eq(ngiven, 5);
	for (k = 0; k < 5; k++)
		ck_assert_ptr_eq(given[k], (void *)(uintptr_t)(8 - k));
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 2);
	{
		struct iovec o = { out[0], sizeof(out[0]) };

		ck_assert_int_eq(svqiso_svq_submit(F.svq, &o, 1, NULL, 0, NULL), -EBUSY);
	}
	backend_finish(&h[1], 0);
	backend_finish(&h[0], 0);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(F.ncomplete, 3);
	ck_assert_ptr_eq(F.cookies[1], (void *)3);
	ck_assert_ptr_eq(F.cookies[2], (void *)2);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	/* The reset completes nothing given back, and submits go on. */
	ck_assert_int_eq(svqiso_svq_reset(F.svq, 0), 0);
	ck_assert_uint_eq(F.ncomplete, 3);
	backend_reattach();
	{
		struct iovec o = { out[0], sizeof(out[0]) };

		ck_assert_int_ge(svqiso_svq_submit(F.svq, &o, 1, NULL, 0, (void *)9), 0);
	}
	ck_assert_int_eq(backend_serve(0, NULL, 0), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_ptr_eq(F.cookies[3], (void *)9);

	/* A base behind a completed request: broken, nothing given back. */
	for (k = 0; k < 2; k++) {
		struct iovec o = { out[k], sizeof(out[k]) };

		ck_assert_int_ge(svqiso_svq_submit(F.svq, &o, 1, NULL, 0, NULL), 0);
	}
	ck_assert_int_eq(backend_serve(0, NULL, 0), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ngiven = 0;
	ck_assert_int_eq(svqiso_svq_rewind(F.svq, _i ? 0x8000 : 0), -EIO);
	ck_assert_uint_eq(ngiven, 0);
	fx_close();
}
END_TEST

/* ---- requests larger than the pool: one-off regions ---- */

/* Byte @j of a request's readable (or writable) stream, for seed @s: it
 * changes with the position, so a misplaced copy shows. */
static uint8_t pat_at(uint64_t j, uint8_t s)
{
	return (uint8_t)(j * 131 + (j >> 9) * 7 + s);
}

/*
 * Guest: post a chain of @n segments of @seglen at @off, the last @nw
 * writable; the readable stream carries pat_at(., @s).
 */
static uint16_t guest_post_pat(unsigned int n, unsigned int nw, uint32_t seglen,
			       uint64_t off, uint8_t s, bool ind)
{
	uint16_t id = guest_post(n, nw, seglen, off, 0, ind);
	uint64_t j = 0, b;
	unsigned int k;

	/* After the add is fine: the svq reads at process_avail(). */
	for (k = 0; k < n - nw; k++) {
		uint8_t *p = gpa_hva(GUEST_BASE + G_DATA + off + (uint64_t)k * seglen);

		for (b = 0; b < seglen; b++)
			p[b] = pat_at(j++, s);
	}
	return id;
}

/* Whether @len bytes at @p are the stream pat_at(@from.., @s). */
static bool is_pat(const uint8_t *p, uint64_t len, uint64_t from, uint8_t s)
{
	uint64_t b;

	for (b = 0; b < len; b++)
		if (p[b] != pat_at(from + b, s))
			return false;
	return true;
}

/*
 * Backend: take one chain; its readable stream must be pat_at(., @s_out),
 * its writable one gets pat_at(., @s_in), all of it reported written.
 * Return: the chain's total bytes; 0 if there was none.
 */
static uint64_t backend_serve_pat(uint8_t s_out, uint8_t s_in)
{
	struct svq_elem e = { .seg = F.bseg, .max_seg = MAX_SEGS * 2 };
	uint64_t jo = 0, ji = 0, b;
	uint16_t k;

	if (svq_dev_pop(&F.backend, &e) != 1)
		return 0;
	for (k = 0; k < e.nseg; k++) {
		uint8_t *p = e.seg[k].hva;

		ck_assert(p < F.guest || p >= F.guest + GUEST_SIZE);
		if (!e.seg[k].write) {
			ck_assert_msg(is_pat(p, e.seg[k].len, jo, s_out),
				      "readable segment %u: wrong bytes", k);
			jo += e.seg[k].len;
		} else {
			for (b = 0; b < e.seg[k].len; b++)
				p[b] = pat_at(ji++, s_in);
		}
	}
	ck_assert_int_eq(svq_dev_push(&F.backend, e.id, (uint32_t)ji), 0);
	svq_dev_flush(&F.backend);
	return jo + ji;
}

/* Guest: collect chain @id; its writable stream must be pat_at(., @s_in). */
static void guest_collect_pat(uint16_t id, unsigned int n, unsigned int nw,
			      uint32_t seglen, uint64_t off, uint8_t s_in)
{
	uint16_t gid;
	uint32_t glen;
	unsigned int k;

	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
	ck_assert_uint_eq(gid, id);
	ck_assert_uint_eq(glen, nw * seglen);
	for (k = n - nw; k < n; k++)
		ck_assert_msg(is_pat(gpa_hva(GUEST_BASE + G_DATA + off + (uint64_t)k * seglen),
				     seglen, (uint64_t)(k - (n - nw)) * seglen, s_in),
			      "writable segment %u: wrong bytes", k);
}

#define SMALL_POOL	(64u << 10)

/* One request's shape: @n segments of @seglen, the last @nw writable. */
struct shape {
	unsigned int n, nw;
	uint32_t seglen;
};

/* Larger than the pool, each several times: write, read, both, and
 * scattered over several segments. */
static const struct shape big_shapes[] = {
	{ 1, 0, 256u << 10 },
	{ 1, 1, 256u << 10 },
	{ 2, 1, 192u << 10 },
	{ 4, 2, 96u << 10 },
	{ 9, 3, 40u << 10 },
};

/*
 * A request several times larger than the bounce pool is served, not a
 * reason to break the queue: its bytes go both ways through an isolated
 * region of its own, announced before the backend sees the request and
 * removed once it completes. Requests that fit still use the pool. All
 * four layout pairs, with and without shadow indirect tables.
 */
START_TEST(test_oneoff_serves_request_larger_than_pool)
{
	uint8_t gl = _i & 1, sl = (_i >> 1) & 1;
	uint32_t sfeat = _i & 4 ? SVQISO_RING_F_INDIRECT : 0;
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	unsigned int k, nr, adds, dels;
	uint16_t id, id2;

	fx_open(gl, sl, SVQISO_RING_F_INDIRECT, sfeat, 0, SMALL_POOL,
		SVQISO_COPY_AUTO);
	nr = svqiso_iso_nr_regions(F.iso);
	adds = F.region_adds;
	dels = F.region_dels;
	for (k = 0; k < SVQ_ARRAY_SIZE(big_shapes); k++) {
		const struct shape *b = &big_shapes[k];
		uint64_t total = (uint64_t)b->n * b->seglen;

		id = guest_post_pat(b->n, b->nw, b->seglen, 0, (uint8_t)k, k & 1);
		ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
		ck_assert_msg(!svqiso_svq_is_broken(F.svq), "%s",
			      svqiso_svq_broken_reason(F.svq));
		/* Its own region, told to the backend before it sees it. */
		ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
		ck_assert_uint_eq(F.region_adds, adds + k + 1);
		ck_assert_uint_ge(F.last_add_size, total);
		ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
		ck_assert_uint_eq(backend_serve_pat((uint8_t)k, (uint8_t)(0x40 + k)), total);
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		/* Gone with the request. */
		ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
		ck_assert_uint_eq(F.region_dels, dels + k + 1);
		guest_collect_pat(id, b->n, b->nw, b->seglen, 0, (uint8_t)(0x40 + k));
	}

	/* With a request that fits: that one takes the pool. */
	id = guest_post_pat(4, 2, 96u << 10, 0, 0x21, false);
	id2 = guest_post_pat(2, 1, 4096, 1u << 20, 0x22, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 2);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 8192);
	ck_assert_uint_eq(backend_serve_pat(0x21, 0x31), 4 * (96u << 10));
	ck_assert_uint_eq(backend_serve_pat(0x22, 0x32), 8192);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	guest_collect_pat(id, 4, 2, 96u << 10, 0, 0x31);
	guest_collect_pat(id2, 2, 1, 4096, 1u << 20, 0x32);

	ck_assert(!svqiso_svq_is_broken(F.svq));
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
	ck_assert_uint_eq(F.region_adds - adds, F.region_dels - dels);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.oneoffs, SVQ_ARRAY_SIZE(big_shapes) + 1);
	ck_assert_uint_eq(st.requests, SVQ_ARRAY_SIZE(big_shapes) + 2);
	ck_assert_uint_eq(st.completions, SVQ_ARRAY_SIZE(big_shapes) + 2);
	ck_assert_uint_le(st.pool_high_water, SMALL_POOL);
	ck_assert_ptr_nonnull(strstr(F.last_log, "isolated region of its own"));
	fx_close();
	/* Every one-off region went, as the iso ends (ring and pool too). */
	ck_assert_uint_eq(F.region_adds, F.region_dels);
}
END_TEST

/* Element mode: the same, with the VMM's iovecs and completions. */
START_TEST(test_oneoff_element_mode)
{
	const uint64_t olen = 200u << 10, ilen = 300u << 10;
	uint8_t *out = malloc(olen), *in = malloc(ilen);
	struct iovec o[2] = { { out, olen / 2 }, { out + olen / 2, olen / 2 } };
	struct iovec i = { in, ilen };
	unsigned int k, nr;

	ck_assert(out && in);
	fx_open(0, _i, 0, 0, SVQISO_SVQ_F_ELEMENT, SMALL_POOL, SVQISO_COPY_AUTO);
	nr = svqiso_iso_nr_regions(F.iso);
	for (k = 0; k < 3; k++) {
		uint64_t b;

		for (b = 0; b < olen; b++)
			out[b] = pat_at(b, (uint8_t)k);
		memset(in, 0xee, ilen);
		ck_assert_int_ge(svqiso_svq_submit(F.svq, o, 2, &i, 1,
						   (void *)(uintptr_t)(k + 1)), 0);
		ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
		ck_assert_uint_eq(backend_serve_pat((uint8_t)k, (uint8_t)(0x50 + k)),
				  olen + ilen);
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
		ck_assert_uint_eq(F.ncomplete, k + 1);
		ck_assert_ptr_eq(F.cookies[k], (void *)(uintptr_t)(k + 1));
		ck_assert_uint_eq(F.lens[k], ilen);
		ck_assert(is_pat(in, ilen, 0, (uint8_t)(0x50 + k)));
	}
	ck_assert_uint_eq(F.region_adds, F.region_dels + nr);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	fx_close();
	free(out);
	free(in);
}
END_TEST

/*
 * One one-off region per queue at a time: a second large request waits for
 * the first one's completion (in order, and holding no memory), the next
 * chains wait behind it in the guest's ring; then all complete in order.
 */
START_TEST(test_oneoff_one_at_a_time_others_wait)
{
	uint8_t gl = _i & 1, sl = (_i >> 1) & 1;
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	const uint32_t big = 96u << 10;
	uint16_t id[4];
	uint32_t base;
	unsigned int nr;

	fx_open(gl, sl, 0, 0, 0, SMALL_POOL, SVQISO_COPY_MEMCPY);
	nr = svqiso_iso_nr_regions(F.iso);
	id[0] = guest_post_pat(2, 1, big, 0, 1, false);
	id[1] = guest_post_pat(2, 1, 4096, 1u << 20, 2, false);
	id[2] = guest_post_pat(2, 1, big, 2u << 20, 3, false);
	id[3] = guest_post_pat(2, 1, 4096, 3u << 20, 4, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	/* The first two forwarded, the second large one held, the last in
	 * the guest's ring. */
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 3);
	ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &base), 0);
	/* Three chains taken: split counts chains, packed their slots. */
	ck_assert_uint_eq(base & 0x7fff, gl ? 6 : 3);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.requests, 2);
	ck_assert_uint_ge(st.oneoff_waits, 1);
	/* Kicks and spurious calls change nothing. */
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 3);

	ck_assert_uint_eq(backend_serve_pat(1, 0x11), 2 * big);
	ck_assert_uint_eq(backend_serve_pat(2, 0x12), 8192);
	ck_assert_uint_eq(backend_serve_pat(0, 0), 0);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	/* The first went with its region; the second large one has one. */
	ck_assert_uint_eq(F.region_dels, 1);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 2);
	guest_collect_pat(id[0], 2, 1, big, 0, 0x11);
	guest_collect_pat(id[1], 2, 1, 4096, 1u << 20, 0x12);

	ck_assert_uint_eq(backend_serve_pat(3, 0x13), 2 * big);
	ck_assert_uint_eq(backend_serve_pat(4, 0x14), 8192);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	guest_collect_pat(id[2], 2, 1, big, 2u << 20, 0x13);
	guest_collect_pat(id[3], 2, 1, 4096, 3u << 20, 0x14);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
	ck_assert_uint_eq(F.region_dels, 2);
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.oneoffs, 2);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	fx_close();
}
END_TEST

/* A large request forwarded on a fresh fixture: its id; one region more. */
static uint16_t post_big_forwarded(unsigned int nr)
{
	uint16_t id = guest_post_pat(2, 1, 96u << 10, 0, 7, false);

	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_msg(!svqiso_svq_is_broken(F.svq), "%s", svqiso_svq_broken_reason(F.svq));
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
	return id;
}

/*
 * The one-off region goes whenever its request does: completed, dropped by
 * a reset, given back by a rewind, or with the svq; a repost keeps it with
 * its request for the new backend, which finds the bytes there.
 */
START_TEST(test_oneoff_freed_with_its_request)
{
	uint8_t gl = _i & 1, sl = (_i >> 1) & 1;
	struct held_elem h;
	uint32_t base;
	unsigned int nr;
	uint16_t id;

	/* Reset: dropped, with the region. */
	fx_open(gl, sl, 0, 0, 0, SMALL_POOL, SVQISO_COPY_MEMCPY);
	nr = svqiso_iso_nr_regions(F.iso);
	post_big_forwarded(nr);
	ck_assert(backend_take(&h));
	ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &base), 0);
	ck_assert_int_eq(svqiso_svq_reset(F.svq, base), 0);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
	ck_assert_uint_eq(F.region_dels, 1);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	fx_close();

	/* Rewind: given back to the guest ring, region gone; taken again
	 * after the restart, with a new one. */
	fx_open(gl, sl, 0, 0, 0, SMALL_POOL, SVQISO_COPY_MEMCPY);
	id = post_big_forwarded(nr);
	ck_assert_int_eq(svqiso_svq_rewind(F.svq, svq_dev_get_base(&F.backend)), 1);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
	ck_assert_uint_eq(F.region_dels, 1);
	ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &base), 0);
	ck_assert_int_eq(svqiso_svq_reset(F.svq, base), 0);
	ck_assert_int_eq(svqiso_svq_pause(F.svq, false), 0);
	ck_assert_int_eq(svqiso_svq_get_shadow(F.svq, &F.info), 0);
	backend_reattach();
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
	ck_assert_uint_eq(backend_serve_pat(7, 0x77), 2 * (96u << 10));
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	guest_collect_pat(id, 2, 1, 96u << 10, 0, 0x77);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
	ck_assert_uint_eq(F.region_dels, 2);
	fx_close();

	/* Repost: kept, and the new backend reads the bytes copied in
	 * before, though the guest changed its buffer since. */
	fx_open(gl, sl, 0, 0, 0, SMALL_POOL, SVQISO_COPY_MEMCPY);
	id = post_big_forwarded(nr);
	ck_assert(backend_take(&h));
	memset(gpa_hva(GUEST_BASE + G_DATA), 0xcc, 96u << 10);
	ck_assert_int_eq(svqiso_svq_repost(F.svq), 1);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
	ck_assert_uint_eq(F.region_dels, 0);
	ck_assert_int_eq(svqiso_svq_get_shadow(F.svq, &F.info), 0);
	backend_reattach();
	/* A split shadow ring publishes what was posted again only at the
	 * next process call, once the backend has the queue running: until
	 * then it could take it with no call fd to answer on. */
	if (sl == SVQISO_LAYOUT_SPLIT)
		ck_assert(!svq_dev_has_avail(&F.backend));
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert(svq_dev_has_avail(&F.backend));
	ck_assert_uint_eq(backend_serve_pat(7, 0x78), 2 * (96u << 10));
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	guest_collect_pat(id, 2, 1, 96u << 10, 0, 0x78);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
	ck_assert_uint_eq(F.region_dels, 1);
	fx_close();

	/* Free: in flight, dropped with the svq, region removed. */
	fx_open(gl, sl, 0, 0, 0, SMALL_POOL, SVQISO_COPY_MEMCPY);
	post_big_forwarded(nr);
	svqiso_svq_free(F.svq);
	F.svq = NULL;
	ck_assert_uint_eq(F.region_dels, 2);	/* the one-off, the ring */
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), 1);	/* the pool */
	fx_close();
}
END_TEST

/*
 * Bounded: with one-off regions off, or past oneoff_max, a request larger
 * than the pool breaks the queue with the reason, touching nothing; up to
 * oneoff_max it is served.
 */
START_TEST(test_oneoff_off_or_past_max_breaks)
{
	fx_open(_i, _i, 0, 0, SVQISO_SVQ_F_NO_ONEOFF, SMALL_POOL, SVQISO_COPY_MEMCPY);
	guest_post(1, 1, 128 << 10, 0, 0, false);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EIO);
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), "bounce"));
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), "one-off regions are off"));
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), 2);
	fx_close();

	fx_oneoff_max = 100 << 10;
	fx_open(_i, _i, 0, 0, 0, SMALL_POOL, SVQISO_COPY_MEMCPY);
	guest_post_pat(1, 0, 100 << 10, 0, 9, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_uint_eq(backend_serve_pat(9, 0), 100 << 10);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	guest_post(1, 1, (100 << 10) + 1, 0, 0, false);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EIO);
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), "oneoff_max"));
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), 2);
	fx_close();
}
END_TEST

/*
 * No region to be had: with other requests in flight the large one waits
 * (their completions may free a slot); with nothing in flight, or for a
 * refusal no completion cures, the queue breaks saying why.
 */
START_TEST(test_oneoff_region_refused)
{
	uint16_t id, small;

	fx_open(_i, _i, 0, 0, 0, SMALL_POOL, SVQISO_COPY_MEMCPY);
	refuse_regions = true;
	guest_post(1, 1, 128 << 10, 0, 0, false);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EIO);
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq),
				     "no isolated region"));
	fx_close();

	fx_open(_i, _i, 0, 0, 0, SMALL_POOL, SVQISO_COPY_MEMCPY);
	small = guest_post_pat(2, 1, 4096, 1u << 20, 1, false);
	id = guest_post_pat(2, 1, 96u << 10, 0, 2, false);
	refuse_regions = true;
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 2);	/* one held */
	refuse_regions = false;
	ck_assert_uint_eq(backend_serve_pat(1, 0x21), 8192);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(backend_serve_pat(2, 0x22), 2 * (96u << 10));
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	guest_collect_pat(small, 2, 1, 4096, 1u << 20, 0x21);
	guest_collect_pat(id, 2, 1, 96u << 10, 0, 0x22);

	/* A refusal no completion cures breaks it even then. */
	small = guest_post_pat(2, 1, 4096, 1u << 20, 1, false);
	guest_post_pat(2, 1, 96u << 10, 0, 2, false);
	refuse_regions = true;
	refuse_errno = -ENOTCONN;
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EIO);
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq),
				     "no isolated region"));
	fx_close();
}
END_TEST

/* The per-request memfd pool holds large requests itself: no one-off. */
START_TEST(test_memfd_pool_serves_large_requests)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint16_t id;

	fx_open(_i, _i, 0, 0, 0, 0, SVQISO_COPY_MEMCPY);
	id = guest_post_pat(4, 2, 256u << 10, 0, 3, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_uint_eq(backend_serve_pat(3, 0x33), 1u << 20);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	guest_collect_pat(id, 4, 2, 256u << 10, 0, 0x33);
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.oneoffs, 0);
	ck_assert_uint_eq(F.region_adds, F.region_dels + 1);	/* the ring */
	fx_close();
}
END_TEST

/*
 * A backend that takes everything and completes nothing: bounce memory
 * stays within the pool plus one one-off region, the guest's requests past
 * that stay in its ring (at most one chain is taken ahead of room, and it
 * holds no memory), kicks and spurious calls change nothing, and a reset
 * gives every byte and region back.
 */
START_TEST(test_backend_that_never_completes_stays_bounded)
{
	uint8_t gl = _i & 1, sl = (_i >> 1) & 1;
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	struct held_elem h[8];
	unsigned int k, taken = 0, nr, round;
	uint32_t base;

	fx_open(gl, sl, 0, 0, 0, SMALL_POOL, SVQISO_COPY_MEMCPY);
	nr = svqiso_iso_nr_regions(F.iso);
	guest_post(2, 1, 96u << 10, 0, 0x10, false);
	for (k = 0; k < 40; k++)
		guest_post(1, 1, 16u << 10, (1u << 20) + (uint64_t)k * (16u << 10),
			   0, false);
	guest_post(2, 1, 96u << 10, 4u << 20, 0x10, false);
	for (round = 0; round < 5; round++) {
		ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
		while (taken < 8 && backend_take(&h[taken]))
			taken++;
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	}
	/* The large one (its one-off region) and four of 16 KiB (the
	 * pool); a fifth taken ahead of room. */
	ck_assert_uint_eq(taken, 5);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 6);
	ck_assert_uint_le(svqiso_pool_in_use(F.pool), SMALL_POOL);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
	ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &base), 0);
	/* Six chains taken (split counts chains, packed their slots): 36
	 * still posted. */
	ck_assert_uint_eq(base & 0x7fff, gl ? 2 + 5 : 6);
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.requests, 5);
	ck_assert_uint_eq(st.completions, 0);
	ck_assert_uint_le(st.pool_high_water, SMALL_POOL);
	ck_assert(!svqiso_svq_is_broken(F.svq));

	ck_assert_int_eq(svqiso_svq_reset(F.svq, base), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
	ck_assert_uint_eq(F.region_adds, F.region_dels + nr);
	fx_close();
}
END_TEST

/*
 * The device holds one chain while the ring goes round again and again
 * past it (packed: three times its two-lap span; split: the 16-bit avail
 * index all the way round), so that the chain it never took lands on the
 * same ring position, modulo the span, as the held one. The held chain was
 * taken long before any base the device can name: a stop at the device's
 * base gives back only the chain it never took, and a base one place
 * earlier, where it completed a chain, breaks the queue; the count of
 * what the device took, from its published position, is the held one.
 * _i: bit 0 the shadow layout, bit 1 the lying base.
 */
START_TEST(test_rewind_after_laps_with_a_chain_held)
{
	uint8_t sl = (uint8_t)(_i & 1);
	bool lie = _i & 2;
	struct held_elem held, h;
	unsigned int laps, k;
	uint32_t base, idx;

	fx_num = 4;
	/* A region per request: the held one stalls no arena. */
	fx_open(SVQISO_LAYOUT_SPLIT, sl, 0, SVQISO_RING_F_EVENT_IDX, 0, 0,
		SVQISO_COPY_MEMCPY);
	/* The last chain lands where the held one did, three spans on. */
	laps = sl ? 3 * 2 * 4 - 1 : (1u << 16) - 1;
	guest_post(1, 1, 512, 0, 0x11, false);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), 1);
	ck_assert(backend_take(&held));
	for (k = 0; k < laps; k++) {
		guest_post(1, 1, 512, 4096, 0x22, false);
		ck_assert_msg(svqiso_svq_process_avail(F.svq) == 1, "chain %u", k);
		ck_assert(backend_take(&h));
		backend_finish(&h, 0x5a);
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		ck_assert_uint_eq(guest_used_count(), 1);
	}
	guest_post(1, 1, 512, 8192, 0x33, false);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), 1);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 2);
	/* The device's published position: it holds the old one only. */
	svq_dev_enable_notify(&F.backend);
	ck_assert_int_eq(svqiso_svq_backend_taken(F.svq), 1);
	ck_assert_int_eq(svqiso_svq_pause(F.svq, true), 0);
	base = svq_dev_get_base(&F.backend);
	if (lie) {
		/* One place back: the last chain it completed. */
		if (sl) {
			idx = base & 0x7fff;
			base = idx ? (base & 0x8000) | (idx - 1) :
				     (~base & 0x8000) | (4 - 1);
		} else {
			base = (base - 1) & 0xffff;
		}
		ck_assert_int_eq(svqiso_svq_rewind(F.svq, base), -EIO);
		ck_assert(svqiso_svq_is_broken(F.svq));
		ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), "stopped at base"));
		ck_assert_uint_eq(guest_used_count(), 0);
		fx_close();
		return;
	}
	ck_assert_int_eq(svqiso_svq_rewind(F.svq, base), 1);
	ck_assert_msg(!svqiso_svq_is_broken(F.svq), "broken: %s",
		      svqiso_svq_broken_reason(F.svq));
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 1);
	/* The held chain completes into the guest. */
	backend_finish(&held, 0x5a);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(guest_used_count(), 1);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	fx_close();
}
END_TEST

/*
 * A VMM may stop a queue twice (GET_VRING_BASE, rewind, and again before
 * it starts): the second rewind at the same base gives back nothing more
 * and the queue stays whole, so what the device holds still completes.
 * Ring and element mode, both shadow layouts.
 */
START_TEST(test_rewind_twice_gives_back_nothing_more)
{
	uint8_t sl = (uint8_t)(_i & 1);
	bool element = _i & 2;
	struct held_elem h;
	uint8_t out[3][512];
	uint32_t base, gbase0 = 0, gbase1 = 0;
	unsigned int k;

	if (element)
		fx_giveback = giveback_cb;
	fx_open(SVQISO_LAYOUT_SPLIT, sl, 0, 0, element ? SVQISO_SVQ_F_ELEMENT : 0,
		1 << 20, SVQISO_COPY_MEMCPY);
	ngiven = 0;
	for (k = 0; k < 3; k++) {
		struct iovec o = { out[k], sizeof(out[k]) };

		if (element)
			ck_assert_int_ge(svqiso_svq_submit(F.svq, &o, 1, NULL, 0,
							   (void *)(uintptr_t)(k + 1)), 0);
		else
			guest_post(2, 1, 512, 4096 * k, (uint8_t)(0x11 * (k + 1)), false);
	}
	if (!element)
		ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	/* The device takes the first only, then is stopped twice. */
	ck_assert(backend_take(&h));
	base = svq_dev_get_base(&F.backend);
	ck_assert_int_eq(svqiso_svq_rewind(F.svq, base), 2);
	if (!element)
		ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &gbase0), 0);
	ck_assert_int_eq(svqiso_svq_rewind(F.svq, base), 0);
	ck_assert_msg(!svqiso_svq_is_broken(F.svq), "broken: %s",
		      svqiso_svq_broken_reason(F.svq));
	if (!element) {
		ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &gbase1), 0);
		ck_assert_uint_eq(gbase0, gbase1);
	} else {
		ck_assert_uint_eq(ngiven, 2);
	}
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 1);
	ck_assert_int_eq(svqiso_svq_backend_taken(F.svq), -ENODATA);
	/* What the device held completes. */
	backend_finish(&h, 0x5a);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	if (element) {
		ck_assert_uint_eq(F.ncomplete, 1);
		ck_assert_ptr_eq(F.cookies[0], (void *)1);
	} else {
		uint16_t id;
		uint32_t len;

		ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &id, &len), 1);
		ck_assert_uint_eq(len, 512);
		ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &id, &len), 0);
	}
	fx_close();
}
END_TEST

/* ---- per-request memfd pool ---- */

START_TEST(test_memfd_pool_roundtrip)
{
	uint16_t gid;
	uint32_t glen;
	unsigned int k;

	fx_open(_i, _i, 0, 0, 0, 0, SVQISO_COPY_MEMCPY);
	for (k = 0; k < 20; k++) {
		unsigned int nr = svqiso_iso_nr_regions(F.iso);

		guest_post(3, 1, 3000, 0, (uint8_t)k, false);
		ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
		ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr + 1);
		ck_assert_int_eq(backend_serve(0, NULL, 0x42), 1);
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		ck_assert_uint_eq(svqiso_iso_nr_regions(F.iso), nr);
		ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
		ck_assert_uint_eq(glen, 3000);
		ck_assert_uint_eq(*(uint8_t *)gpa_hva(GUEST_BASE + G_DATA + 6000), 0x42);
	}
	fx_close();
}
END_TEST

/* ---- copy strategies ---- */

START_TEST(test_each_copy_strategy_roundtrip)
{
	uint16_t gid;
	uint32_t glen;
	uint8_t *w;

	if (!svqiso_copy_supported(_i))
		return;
	fx_open(0, 1, 0, 0, 0, 4 << 20, _i);
	guest_post(2, 1, 1 << 20, 0, 0x31, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_int_eq(backend_serve(0, NULL, 0x64), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
	w = gpa_hva(GUEST_BASE + G_DATA + (1 << 20));
	for (unsigned int k = 0; k < (1u << 20); k++)
		if (w[k] != 0x64)
			ck_abort_msg("byte %u is %#x", k, w[k]);
	fx_close();
}
END_TEST

/*
 * Counters through both forward paths (one segment, and a chain with or
 * without a shadow table): requests and bytes per request, the pool's high
 * water as the most held at once, not what is held now.
 */
static void check_counters(uint64_t requests, uint64_t bytes_out,
			   uint64_t high_water)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };

	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.requests, requests);
	ck_assert_uint_eq(st.bytes_out, bytes_out);
	ck_assert_uint_eq(st.pool_high_water, high_water);
}

static void serve_all(void)
{
	while (backend_serve(0, NULL, 0x5a) == 1)
		;
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
}

START_TEST(test_counters_one_segment_and_chains)
{
	uint32_t sfeat = _i & 1 ? SVQISO_RING_F_INDIRECT : 0;

	fx_open(_i >> 1, _i >> 1, 0, sfeat, 0, 1 << 20, SVQISO_COPY_MEMCPY);
	guest_post(1, 0, 4096, 0, 0x11, false);
	guest_post(1, 1, 4096, 4096, 0, false);
	guest_post(1, 0, 1000, 8192, 0x22, false);	/* rounded up to 1024 */
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	check_counters(3, 4096 + 1000, 4096 * 2 + 1024);
	serve_all();
	check_counters(3, 4096 + 1000, 4096 * 2 + 1024);

	/* Fewer at once later: the high water stays. */
	guest_post(1, 0, 64, 0, 0x33, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	check_counters(4, 4096 + 1064, 4096 * 2 + 1024);
	serve_all();

	/* Chains of two and three segments, more at once than before. */
	guest_post(2, 1, 4096, 0, 0x44, false);
	guest_post(3, 1, 4096, 3 * 4096, 0x55, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	check_counters(6, 4096 + 1064 + 3 * 4096, 5 * 4096);
	serve_all();
	check_counters(6, 4096 + 1064 + 3 * 4096, 5 * 4096);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	fx_close();
}
END_TEST

/* Element mode: each submit forwards at once, so each is a batch. */
START_TEST(test_counters_element_mode)
{
	uint8_t out[2][3000], in[5000];
	struct iovec o[2] = { { out[0], sizeof(out[0]) }, { out[1], sizeof(out[1]) } };
	struct iovec i = { in, sizeof(in) };

	fx_open(0, 0, 0, 0, SVQISO_SVQ_F_ELEMENT, 1 << 20, SVQISO_COPY_MEMCPY);
	ck_assert_int_ge(svqiso_svq_submit(F.svq, o, 1, NULL, 0, NULL), 0);
	ck_assert_int_ge(svqiso_svq_submit(F.svq, NULL, 0, &i, 1, NULL), 0);
	check_counters(2, 3000, 3008 + 5056);
	serve_all();
	ck_assert_int_ge(svqiso_svq_submit(F.svq, o, 2, &i, 1, NULL), 0);
	check_counters(3, 9000, 11008);
	serve_all();
	ck_assert_uint_eq(F.ncomplete, 3);
	fx_close();
}
END_TEST

/* ---- element mode ---- */

START_TEST(test_element_mode_completes_with_cookie)
{
	uint8_t out[300], in[500];
	struct iovec o = { out, sizeof(out) }, i = { in, sizeof(in) };
	unsigned int k;

	fx_open(0, _i, 0, SVQISO_RING_F_INDIRECT, SVQISO_SVQ_F_ELEMENT, 1 << 20,
		SVQISO_COPY_AUTO);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EINVAL);
	for (k = 0; k < 100; k++) {
		memset(out, (int)k, sizeof(out));
		memset(in, 0, sizeof(in));
		ck_assert_int_ge(svqiso_svq_submit(F.svq, &o, 1, &i, 1,
						   (void *)(uintptr_t)(k + 1)), 0);
		ck_assert_int_eq(backend_serve(0, NULL, (uint8_t)(k + 7)), 1);
		ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
		ck_assert_uint_eq(F.ncomplete, k + 1);
		ck_assert_ptr_eq(F.cookies[k], (void *)(uintptr_t)(k + 1));
		ck_assert_uint_eq(F.lens[k], sizeof(in));
		ck_assert_uint_eq(in[0], (uint8_t)(k + 7));
		ck_assert_uint_eq(in[sizeof(in) - 1], (uint8_t)(k + 7));
	}
	fx_close();
}
END_TEST

START_TEST(test_element_mode_bad_submit_rejected)
{
	uint8_t b[16];
	struct iovec z = { b, 0 }, ok = { b, sizeof(b) };
	unsigned int k;

	fx_open(0, 0, 0, 0, SVQISO_SVQ_F_ELEMENT, 1 << 20, SVQISO_COPY_AUTO);
	ck_assert_int_eq(svqiso_svq_submit(F.svq, NULL, 0, NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(svqiso_svq_submit(F.svq, &z, 1, NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(svqiso_svq_submit(F.svq, &ok, MAX_SEGS * 2 + 1, NULL, 0, NULL),
			 -EINVAL);
	/* num requests held (backend silent, shadow ring full): -ENOSPC. */
	for (k = 0; k < 2 * NUM; k++)
		ck_assert_int_ge(svqiso_svq_submit(F.svq, &ok, 1, NULL, 0, NULL), 0);
	ck_assert_int_eq(svqiso_svq_submit(F.svq, &ok, 1, NULL, 0, NULL), -ENOSPC);
	/* reset completes every held request with 0 */
	ck_assert_int_eq(svqiso_svq_reset(F.svq, 0), 0);
	ck_assert_uint_eq(F.ncomplete, 2 * NUM);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	fx_close();
}
END_TEST

/* Counts whose sum wraps in 32 bits are refused, and nothing is taken. */
START_TEST(test_element_mode_absurd_counts_rejected)
{
	uint8_t b[16];
	struct iovec ok[2] = { { b, sizeof(b) }, { b, sizeof(b) } };

	fx_open(0, 0, 0, 0, SVQISO_SVQ_F_ELEMENT, 1 << 20, SVQISO_COPY_AUTO);
	/* 2 + UINT_MAX wraps to 1; 0x10000 fits no uint16_t count. */
	ck_assert_int_eq(svqiso_svq_submit(F.svq, ok, 2, ok, UINT32_MAX, NULL), -EINVAL);
	ck_assert_int_eq(svqiso_svq_submit(F.svq, ok, UINT32_MAX, ok, 2, NULL), -EINVAL);
	ck_assert_int_eq(svqiso_svq_submit(F.svq, ok, 0x10000, NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(svqiso_svq_submit(F.svq, NULL, 0, ok, 0x10000, NULL), -EINVAL);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	ck_assert_int_eq(svqiso_svq_reset(F.svq, 0), 0);
	ck_assert_uint_eq(F.ncomplete, 0);
	fx_close();
}
END_TEST

/*
 * A one-entry ring without shadow indirect tables can never hold a request
 * that reads and writes (two shadow descriptors): ring mode breaks the queue
 * with the reason instead of holding the chain for ever; element mode
 * refuses the submit. A one-direction request still goes through.
 */
START_TEST(test_request_that_never_fits_refused)
{
	uint8_t out[64], in[64];
	struct iovec o = { out, sizeof(out) }, i = { in, sizeof(in) };
	uint16_t gid;
	uint32_t glen;

	/* Ring mode: the guest chain rides one indirect descriptor. */
	fx_num = 1;
	fx_open(_i, _i, SVQISO_RING_F_INDIRECT, 0, 0, 1 << 20, SVQISO_COPY_MEMCPY);
	guest_post(1, 1, 512, 0, 0x11, false);
	ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	ck_assert_int_eq(backend_serve(0, NULL, 0x22), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &glen), 1);
	ck_assert_uint_eq(glen, 512);
	guest_post(2, 1, 512, 4096, 0x11, true);
	ck_assert_int_eq(svqiso_svq_process_avail(F.svq), -EIO);
	ck_assert(svqiso_svq_is_broken(F.svq));
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq),
				     "needs 2 shadow descriptors"));
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	fx_close();

	/* Element mode: refused before it is taken. */
	fx_num = 1;
	fx_open(0, _i, 0, 0, SVQISO_SVQ_F_ELEMENT, 1 << 20, SVQISO_COPY_MEMCPY);
	ck_assert_int_eq(svqiso_svq_submit(F.svq, &o, 1, &i, 1, NULL), -EINVAL);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	ck_assert_int_ge(svqiso_svq_submit(F.svq, &o, 1, NULL, 0, (void *)1), 0);
	ck_assert_int_eq(backend_serve(0, NULL, 0), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(F.ncomplete, 1);
	fx_close();
}
END_TEST

/*
 * Element mode: a request larger than the whole pool breaks the queue when
 * its submit tries to forward it. The submit fails with -EIO and the
 * request was not taken: its completion never runs, not even from the
 * reset; an earlier request, taken, completes from the reset as usual.
 */
START_TEST(test_submit_larger_than_pool_not_taken)
{
	static uint8_t small[4096], big[64 << 10];
	struct iovec o = { small, sizeof(small) }, b = { big, sizeof(big) };

	fx_open(0, _i, 0, 0, SVQISO_SVQ_F_ELEMENT | SVQISO_SVQ_F_NO_ONEOFF, 16 << 10,
		SVQISO_COPY_MEMCPY);
	ck_assert_int_ge(svqiso_svq_submit(F.svq, &o, 1, NULL, 0, (void *)1), 0);
	ck_assert_int_eq(svqiso_svq_submit(F.svq, &b, 1, NULL, 0, (void *)2), -EIO);
	ck_assert(svqiso_svq_is_broken(F.svq));
	ck_assert_ptr_nonnull(strstr(svqiso_svq_broken_reason(F.svq), "bounce"));
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 1);
	ck_assert_int_eq(svqiso_svq_reset(F.svq, 0), 0);
	ck_assert_uint_eq(F.ncomplete, 1);
	ck_assert_ptr_eq(F.cookies[0], (void *)1);
	ck_assert_uint_eq(F.lens[0], 0);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	fx_close();
}
END_TEST

/* Element mode: three requests that read and write 256 bytes each. */
static void submit_three(uint8_t out[3][256], uint8_t in[3][256])
{
	unsigned int k;

	for (k = 0; k < 3; k++) {
		struct iovec o = { out[k], 256 }, i = { in[k], 256 };

		ck_assert_int_ge(svqiso_svq_submit(F.svq, &o, 1, &i, 1,
						   (void *)(uintptr_t)(k + 1)), 0);
	}
}

/* Submits from reset_resubmit_cb(): how many more to make. */
static unsigned int resubmit_left;
static uint8_t resubmit_buf[2][256];

static void reset_resubmit_cb(void *ctx, void *cookie, uint32_t len)
{
	struct iovec o = { resubmit_buf[0], sizeof(resubmit_buf[0]) };
	struct iovec i = { resubmit_buf[1], sizeof(resubmit_buf[1]) };

	complete_cb(ctx, cookie, len);
	if (resubmit_left) {
		resubmit_left--;
		ck_assert_int_ge(svqiso_svq_submit(F.svq, &o, 1, &i, 1,
						   (void *)(uintptr_t)(0x100 + resubmit_left)), 0);
	}
}

/*
 * A completion callback that submits while svqiso_svq_reset() completes
 * what it drops: the new requests are neither forwarded into a slot the
 * reset has passed nor lost to the fresh ring. Each completes once, every
 * bounce buffer and shadow indirect table comes back, and a second reset
 * does not hand a table back twice.
 */
START_TEST(test_submit_from_reset_callback_kept)
{
	uint8_t out[3][256], in[3][256];
	bool seen[0x110] = { false };
	unsigned int k, round;
	int ret;

	fx_complete = reset_resubmit_cb;
	fx_open(0, _i, 0, SVQISO_RING_F_INDIRECT, SVQISO_SVQ_F_ELEMENT, 1 << 20,
		SVQISO_COPY_MEMCPY);

	/* Three requests on shadow tables; the backend completes the first,
	 * so its slot is the next free one: the one a reset walks first.
	 * Two resets in a row: a request stranded by the first one in a
	 * slot it had passed would hand its table back twice in the second
	 * (a write past the free-table stack). */
	submit_three(out, in);
	ck_assert_int_eq(backend_serve(0, NULL, 0x33), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(F.ncomplete, 1);
	resubmit_left = 2;
	ck_assert_int_eq(svqiso_svq_reset(F.svq, 0), 0);
	ck_assert_int_eq(svqiso_svq_reset(F.svq, 0), 0);
	ck_assert_uint_eq(resubmit_left, 0);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	/* 1 by the backend, 2 dropped by the first reset, their 2 resubmits
	 * dropped by the second; each once. */
	ck_assert_uint_eq(F.ncomplete, 5);
	for (k = 0; k < F.ncomplete; k++) {
		uintptr_t c = (uintptr_t)F.cookies[k];

		ck_assert_uint_lt(c, 0x110);
		ck_assert_msg(!seen[c], "cookie %#lx completed twice", (unsigned long)c);
		seen[c] = true;
	}

	/* Requests submitted during a reset reach the fresh ring, and the
	 * next process call asks for their kick. */
	backend_reattach();
	submit_three(out, in);
	resubmit_left = 2;
	ck_assert_int_eq(svqiso_svq_reset(F.svq, 0), 0);
	ck_assert_uint_eq(F.ncomplete, 8);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 2);
	ret = svqiso_svq_process_used(F.svq);
	ck_assert_int_ge(ret, 0);
	ck_assert(ret & SVQISO_SIGNAL_BACKEND);
	ck_assert_int_eq(svqiso_svq_process_used(F.svq), 0);	/* paid once */
	backend_reattach();
	for (round = 0; round < 2; round++)
		ck_assert_int_eq(backend_serve(0, NULL, 0x44), 1);
	ck_assert_int_eq(backend_serve(0, NULL, 0x44), 0);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert_uint_eq(F.ncomplete, 10);
	ck_assert_uint_eq(F.lens[8], 256);
	ck_assert_uint_eq(F.lens[9], 256);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	fx_close();
}
END_TEST

/* ---- opts ---- */

/* Refused with -EINVAL, and the log callback said @why. */
#define REFUSED(call, why) do {						\
	int logs_ = F.logs;						\
	F.last_log[0] = 0;						\
	ck_assert_int_eq((call), -EINVAL);				\
	ck_assert_int_eq(F.logs, logs_ + 1);				\
	ck_assert_msg(strstr(F.last_log, (why)), "logged \"%s\", not \"%s\"", \
		      F.last_log, (why));				\
} while (0)

START_TEST(test_bad_opts_rejected)
{
	struct {
		struct svqiso_svq_opts o;
		uint32_t extra;
	} big;
	struct svqiso_iso *iso;
	struct svqiso_svq *svq = NULL;
	SVQISO_OPTS(svqiso_svq_opts, o, .num = 8, .flags = SVQISO_SVQ_F_ELEMENT,
		    .complete = complete_cb, .log = log_cb);

	memset(&F, 0, sizeof(F));
	ck_assert_int_eq(svqiso_iso_new(NULL, &iso), 0);
	REFUSED(svqiso_svq_new(&o, &svq), "no iso");
	o.iso = iso;
	o.num = 6;	/* split shadow needs a power of two */
	REFUSED(svqiso_svq_new(&o, &svq), "num 6: a split ring's size is a power of two");
	o.num = 0;
	REFUSED(svqiso_svq_new(&o, &svq), "num 0 is not in 1..");
	o.num = 8;
	o.flags |= 1u << 30;
	REFUSED(svqiso_svq_new(&o, &svq), "unknown flags 0x40000000");
	o.flags = SVQISO_SVQ_F_ELEMENT;
	o.shadow_features = 1u << 20;
	REFUSED(svqiso_svq_new(&o, &svq), "unknown ring features 0x100000");
	o.shadow_features = 0;
	o.shadow_layout = 9;
	REFUSED(svqiso_svq_new(&o, &svq), "shadow_layout 9 is no ring layout");
	o.shadow_layout = SVQISO_LAYOUT_SPLIT;
	o.copy = 200;
	REFUSED(svqiso_svq_new(&o, &svq), "copy 200 is no copy strategy");
	o.copy = 0;
	o.complete = NULL;
	REFUSED(svqiso_svq_new(&o, &svq), "element mode without a complete callback");
	o.complete = complete_cb;
	o.flags = 0;	/* ring mode without guest memory */
	REFUSED(svqiso_svq_new(&o, &svq), "ring mode without guest_mem");
	o.guest_mem = svqiso_mem_ops();
	o.guest_layout = 7;
	REFUSED(svqiso_svq_new(&o, &svq), "guest_layout 7 is no ring layout");
	o.guest_layout = SVQISO_LAYOUT_PACKED;
	o.num = 40000;
	REFUSED(svqiso_svq_new(&o, &svq), "num 40000 is not in 1..32768");
	o.num = 8;
	o.guest_mem = NULL;
	/* A newer caller's field we do not know must be zero. */
	memset(&big, 0, sizeof(big));
	big.o = o;
	big.o.sz = sizeof(big);
	big.o.flags = SVQISO_SVQ_F_ELEMENT;
	big.extra = 1;
	REFUSED(svqiso_svq_new(&big.o, &svq), "struct svqiso_svq_opts: byte");
	ck_assert_ptr_null(svq);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);	/* nothing made */
	o.flags = SVQISO_SVQ_F_ELEMENT;
	o.shadow_layout = SVQISO_LAYOUT_PACKED;
	o.num = 6;	/* packed may be any size */
	ck_assert_int_eq(svqiso_svq_new(&o, &svq), 0);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 2);	/* ring + pool */
	svqiso_svq_free(svq);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	svqiso_iso_free(iso);
}
END_TEST


/* ---- dirty logging ---- */

#define A_GPA	(GUEST_BASE + G_DATA + 0x3000 - 100)
#define A_LEN	300u
#define B_GPA	(GUEST_BASE + G_DATA + 0x9800)
#define B_LEN	4096u
#define R_GPA	(GUEST_BASE + G_DATA + 0x100)

/* Guest pages: the log covers GUEST_BASE's pages and a few more. */
#define PG(gpa)		((gpa) >> 12)
#define LOG_BYTES	(PG(GUEST_BASE + GUEST_SIZE) / 8 + 8)

static uint8_t dlog[LOG_BYTES + 64];	/* guard bytes past LOG_BYTES */
static uint8_t *before;			/* guest RAM before svqiso's writes */
static uint64_t cb_bytes;
static unsigned int cb_calls;
static bool cb_bitmap;			/* the log in place has the bitmap */
static bool cb_on;			/* and the callback */
/* The ranges the callback had since the request's start, with the bytes
 * each held when it was reported. */
static struct { uint64_t gpa, len; uint8_t bytes[B_LEN]; } cb_range[64];
static unsigned int cb_nrange;

static void dirty_cb(void *ctx, uint64_t gpa, uint64_t len)
{
	(void)ctx;
	/* Every range is guest memory, and its bits are set already. */
	ck_assert_uint_ge(gpa, GUEST_BASE);
	ck_assert_uint_le(gpa + len, GUEST_BASE + GUEST_SIZE);
	if (cb_bitmap)
		ck_assert(dlog[PG(gpa) / 8] & (1u << (PG(gpa) % 8)));
	cb_bytes += len;
	cb_calls++;
	ck_assert_uint_lt(cb_nrange, 64);
	ck_assert_uint_le(len, B_LEN);
	cb_range[cb_nrange].gpa = gpa;
	cb_range[cb_nrange].len = len;
	memcpy(cb_range[cb_nrange++].bytes, gpa_hva(gpa), len);
}

/*
 * Whether a range the callback had covers guest byte @gpa and was
 * reported once the byte held @now: logged after it was written.
 */
static bool byte_reported(uint64_t gpa, uint8_t now)
{
	unsigned int k;

	for (k = 0; k < cb_nrange; k++)
		if (gpa >= cb_range[k].gpa && gpa - cb_range[k].gpa < cb_range[k].len &&
		    cb_range[k].bytes[gpa - cb_range[k].gpa] == now)
			return true;
	return false;
}

static bool page_marked(uint64_t page)
{
	return dlog[page / 8] & (1u << (page % 8));
}

static void dirty_open(uint8_t gl, bool element, uint32_t flags)
{
	SVQISO_OPTS(svqiso_dirty_log, dl, .bitmap = dlog, .size = LOG_BYTES,
		    .fn = dirty_cb);

	fx_open(gl, SVQISO_LAYOUT_SPLIT, SVQISO_RING_F_EVENT_IDX,
		SVQISO_RING_F_EVENT_IDX, flags | (element ? SVQISO_SVQ_F_ELEMENT : 0),
		1 << 20, SVQISO_COPY_AUTO);
	memset(dlog, 0, sizeof(dlog));
	cb_bytes = 0;
	cb_calls = 0;
	cb_bitmap = true;
	cb_on = true;
	ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, &dl), 0);
	before = malloc(GUEST_SIZE);
	ck_assert_ptr_nonnull(before);
}

static void dirty_close(void)
{
	free(before);
	before = NULL;
	fx_close();
}

/*
 * One request: readable 512 bytes at data+0x100; writable segment A of 300
 * bytes across the page boundary at data+0x3000, B of 4096 bytes from the
 * middle of the page at data+0x9000. The backend says it wrote A and
 * @b_bytes of B. Posted through the guest ring or submitted (element
 * mode, with guest addresses unless @no_gpa).
 */

static void dirty_request(bool element, bool no_gpa, uint32_t b_bytes)
{
	uint64_t s = seed;

	if (element) {
		struct iovec o = { gpa_hva(R_GPA), 512 };
		struct iovec in[2] = { { gpa_hva(A_GPA), A_LEN },
				       { gpa_hva(B_GPA), B_LEN } };
		uint64_t gpa[2] = { A_GPA, B_GPA };

		ck_assert_int_ge(no_gpa ? svqiso_svq_submit(F.svq, &o, 1, in, 2, NULL) :
				 svqiso_svq_submit_gpa(F.svq, &o, 1, in, gpa, 2, NULL), 0);
	} else {
		struct svq_seg sg[3] = {
			{ .addr = R_GPA, .len = 512 },
			{ .addr = A_GPA, .len = A_LEN, .write = true },
			{ .addr = B_GPA, .len = B_LEN, .write = true },
		};
		uint16_t id;

		ck_assert_int_eq(svq_drv_add(&F.gdrv, sg, 3, NULL, &id), 0);
		svq_drv_kick_prepare(&F.gdrv);
		ck_assert_int_ge(svqiso_svq_process_avail(F.svq), 0);
	}
	(void)rnd(&s);
	/* From here on only svqiso writes guest memory. */
	memcpy(before, F.guest, GUEST_SIZE);
	cb_nrange = 0;
	ck_assert_int_eq(backend_serve((uint32_t)(b_bytes - B_LEN), NULL, 0x5a), 1);
	ck_assert_int_ge(svqiso_svq_process_used(F.svq), 0);
	ck_assert(!svqiso_svq_is_broken(F.svq));
}

/*
 * The log against the truth: every page whose bytes changed is marked
 * (nothing written goes unlogged), and every marked page is one svqiso had
 * a reason to write: the data it copied back (@data_pages) or, in ring
 * mode, the guest ring's device-written areas.
 */
static void dirty_check(uint8_t gl, bool element, const uint64_t *data_pages,
			unsigned int ndata)
{
	uint64_t p, first = PG(GUEST_BASE), last = PG(GUEST_BASE + GUEST_SIZE - 1);
	unsigned int k, marked = 0;

	for (p = first; p <= last; p++) {
		const uint8_t *a = F.guest + ((p - first) << 12);
		const uint8_t *b = before + ((p - first) << 12);
		bool want = false;

		for (k = 0; k < ndata; k++)
			want |= data_pages[k] == p;
		if (!element) {
			/* split: the used ring; packed: used descriptors in
			 * the descriptor area, and our event suppression */
			want |= p == PG(GUEST_BASE + G_DEVICE);
			if (gl == SVQISO_LAYOUT_PACKED)
				want |= p == PG(GUEST_BASE + G_DESC);
		}
		if (memcmp(a, b, 4096)) {
			unsigned int j;

			ck_assert_msg(page_marked(p), "page %#" PRIx64 " written, not logged", p);
			/* Each byte changed is in a range the callback had. */
			for (j = 0; j < 4096; j++)
				ck_assert_msg(a[j] == b[j] || !cb_on ||
					      byte_reported((p << 12) + j, a[j]),
					      "byte %#" PRIx64 " written, not logged after",
					      (p << 12) + j);
		}
		if (page_marked(p)) {
			ck_assert_msg(want, "page %#" PRIx64 " logged, not written", p);
			marked++;
		}
	}
	/* The data pages named are all there, each one. */
	for (k = 0; k < ndata; k++)
		ck_assert_msg(page_marked(data_pages[k]), "data page %#" PRIx64 " not logged",
			      data_pages[k]);
	/* Ring mode: the used side's page too, always (the used entry). */
	if (!element)
		ck_assert(page_marked(PG(GUEST_BASE + (gl == SVQISO_LAYOUT_PACKED ?
							 G_DESC : G_DEVICE))));
	/* Nothing outside guest memory, nothing past the log. */
	for (p = 0; p < first; p++)
		ck_assert(!page_marked(p));
	for (k = 0; k < 64; k++)
		ck_assert_uint_eq(dlog[LOG_BYTES + k], 0);
	ck_assert_uint_ge(marked, ndata);
}

/* _i: bit 0 packed guest ring, bit 1 element mode. */
START_TEST(test_dirty_log_marks_exactly_what_is_written)
{
	uint8_t gl = _i & 1;
	bool element = _i & 2;
	/* A's two pages, B's first: the backend wrote 50 bytes of B. */
	uint64_t pages[] = { PG(A_GPA), PG(A_GPA + A_LEN - 1), PG(B_GPA) };
	struct svqiso_svq_stats st = { .sz = sizeof(st) };

	dirty_open(gl, element, 0);
	dirty_request(element, false, 50);
	ck_assert_uint_ne(pages[0], pages[1]);
	ck_assert_uint_ne(PG(B_GPA), PG(B_GPA + B_LEN - 1));
	dirty_check(gl, element, pages, 3);
	/* B's second page was not written: not logged. */
	ck_assert(!page_marked(PG(B_GPA + B_LEN - 1)));
	/* The callback saw every byte the stats count, data and ring. */
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.dirty_bytes, cb_bytes);
	ck_assert_uint_ge(st.dirty_bytes, A_LEN + 50);
	if (element)
		ck_assert_uint_eq(st.dirty_bytes, A_LEN + 50);
	ck_assert_uint_eq(st.dirty_missed, 0);
	dirty_close();
}
END_TEST

/* Preserve copies all the writable bytes back: all their pages are logged. */
START_TEST(test_dirty_log_preserve_logs_every_writable_page)
{
	uint8_t gl = _i & 1;
	bool element = _i & 2;
	uint64_t pages[] = { PG(A_GPA), PG(A_GPA + A_LEN - 1), PG(B_GPA),
			     PG(B_GPA + B_LEN - 1) };

	dirty_open(gl, element, SVQISO_SVQ_F_PRESERVE);
	dirty_request(element, false, 50);
	dirty_check(gl, element, pages, 4);
	dirty_close();
}
END_TEST

/* Off, on again, replaced; a reset keeps it; ring writes follow it too. */
START_TEST(test_dirty_log_switched_at_run_time)
{
	uint8_t gl = _i & 1;
	bool element = _i & 2;
	SVQISO_OPTS(svqiso_dirty_log, cbonly, .fn = dirty_cb);
	uint64_t pages[] = { PG(A_GPA), PG(A_GPA + A_LEN - 1), PG(B_GPA) };
	uint32_t base;
	unsigned int k;

	dirty_open(gl, element, 0);
	ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, NULL), 0);
	dirty_request(element, false, 50);
	for (k = 0; k < sizeof(dlog); k++)
		ck_assert_uint_eq(dlog[k], 0);
	ck_assert_uint_eq(cb_calls, 0);
	if (!element) {
		uint16_t id;
		uint32_t len;

		/* The guest takes its completion (writes used_event). */
		ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &id, &len), 1);
	}

	/* A callback alone. */
	cb_bitmap = false;
	ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, &cbonly), 0);
	dirty_request(element, false, 50);
	ck_assert_uint_ge(cb_calls, 2);
	ck_assert_uint_ge(cb_bytes, A_LEN + 50);
	for (k = 0; k < sizeof(dlog); k++)
		ck_assert_uint_eq(dlog[k], 0);
	if (!element) {
		uint16_t id;
		uint32_t len;

		ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &id, &len), 1);
		/* Across a reset at the same place: still logging. */
		ck_assert_int_eq(svqiso_svq_guest_base(F.svq, &base), 0);
		ck_assert_int_eq(svqiso_svq_reset(F.svq, base), 0);
		ck_assert_int_eq(svqiso_svq_get_shadow(F.svq, &F.info), 0);
		backend_reattach();
	}

	/* The bitmap again: marks what this request wrote, as if new. */
	{
		SVQISO_OPTS(svqiso_dirty_log, dl, .bitmap = dlog, .size = LOG_BYTES);

		ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, &dl), 0);
		cb_on = false;
	}
	cb_calls = 0;
	dirty_request(element, false, 50);
	ck_assert_uint_eq(cb_calls, 0);
	dirty_check(gl, element, pages, 3);
	dirty_close();
}
END_TEST

/* A log too small: the writes past it are counted and said, the bitmap's
 * bytes past its size untouched, the queue goes on. */
START_TEST(test_dirty_log_too_small_counted_and_said)
{
	uint8_t gl = _i & 1;
	bool element = _i & 2;
	/* Covers the guest's pages below data+0x8000: A, not B. */
	uint64_t size = (PG(GUEST_BASE + G_DATA + 0x8000)) / 8;
	SVQISO_OPTS(svqiso_dirty_log, dl, .bitmap = dlog, .size = size);
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	unsigned int k;

	dirty_open(gl, element, 0);
	ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, &dl), 0);
	F.logs = 0;
	dirty_request(element, false, 50);
	ck_assert_int_eq(svqiso_svq_get_stats(F.svq, &st), 0);
	ck_assert_uint_eq(st.dirty_missed, 50);
	ck_assert_int_eq(F.logs, 1);
	ck_assert_ptr_nonnull(strstr(F.last_log, "went unlogged"));
	ck_assert(page_marked(PG(A_GPA)));
	for (k = size; k < sizeof(dlog); k++)
		ck_assert_uint_eq(dlog[k], 0);
	/* Said once. */
	dirty_request(element, false, 50);
	ck_assert_int_eq(F.logs, 1);
	ck_assert(!svqiso_svq_is_broken(F.svq));
	dirty_close();
}
END_TEST

/* Element mode: a request submitted without guest addresses is the VMM's
 * to log; one with them is ours. */
START_TEST(test_dirty_log_element_mode_without_gpa_logs_nothing)
{
	uint64_t pages[] = { PG(A_GPA), PG(A_GPA + A_LEN - 1), PG(B_GPA) };
	struct iovec in = { gpa_hva(A_GPA), A_LEN };
	uint64_t gpa = A_GPA;
	unsigned int k;

	dirty_open(0, true, 0);
	dirty_request(true, true, 50);
	for (k = 0; k < sizeof(dlog); k++)
		ck_assert_uint_eq(dlog[k], 0);
	ck_assert_uint_eq(cb_calls, 0);
	dirty_request(true, false, 50);
	dirty_check(0, true, pages, 3);
	/* Bad arguments: nothing taken. */
	ck_assert_int_eq(svqiso_svq_submit_gpa(F.svq, NULL, 0, &in, NULL, 1, NULL), -EINVAL);
	gpa = UINT64_MAX - 10;
	ck_assert_int_eq(svqiso_svq_submit_gpa(F.svq, NULL, 0, &in, &gpa, 1, NULL), -EINVAL);
	ck_assert_uint_eq(svqiso_svq_in_flight(F.svq), 0);
	dirty_close();
}
END_TEST

START_TEST(test_dirty_log_bad_args_rejected)
{
	SVQISO_OPTS(svqiso_dirty_log, none);
	SVQISO_OPTS(svqiso_dirty_log, nosize, .bitmap = dlog);
	SVQISO_OPTS(svqiso_dirty_log, sizeonly, .size = 8, .fn = dirty_cb);
	SVQISO_OPTS(svqiso_dirty_log, good, .bitmap = dlog, .size = LOG_BYTES);
	struct svqiso_dirty_log small = { .sz = 8, .bitmap = dlog, .size = 8 };
	struct { struct svqiso_dirty_log l; uint64_t more; } big = {
		{ .sz = sizeof(big), .bitmap = dlog, .size = 8 }, 1 };
	unsigned int k;

	dirty_open(0, false, 0);
	ck_assert_int_eq(svqiso_svq_set_dirty_log(NULL, &good), -EINVAL);
	ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, &none), -EINVAL);
	ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, &nosize), -EINVAL);
	ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, &sizeonly), -EINVAL);
	ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, &small), -EINVAL);
	ck_assert_int_eq(svqiso_svq_set_dirty_log(F.svq, &big.l), -EINVAL);
	/* The log in place (dirty_open's) stays: still marking. */
	dirty_request(false, false, 50);
	ck_assert(page_marked(PG(A_GPA)));
	ck_assert_uint_gt(cb_calls, 0);
	for (k = 0; k < 64; k++)
		ck_assert_uint_eq(dlog[LOG_BYTES + k], 0);
	dirty_close();
}
END_TEST

static Suite *svq_suite(void)
{
	Suite *s = suite_create("svq");
	TCase *tc;

	tc = tcase_create("ring-mode");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_ring_mode_roundtrip_matches, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("copy-back");
	tcase_add_test(tc, test_under_report_default_copies_len_only);
	tcase_add_test(tc, test_under_report_preserve_copies_all);
	tcase_add_loop_test(tc, test_len_past_writable_clamped, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile-backend");
	tcase_add_loop_test(tc, test_used_id_never_issued_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_used_id_out_of_range_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_used_duplicate_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_used_idx_jump_breaks);
	tcase_add_loop_test(tc, test_used_good_before_bad_still_published, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile-guest");
	tcase_add_loop_test(tc, test_guest_violation_breaks_with_reason, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("pool");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_pool_full_stalls_then_resumes_in_order, 0, 4);
	tcase_add_loop_test(tc, test_pause_drain_reset_resume_loses_nothing, 0, 4);
	tcase_add_loop_test(tc, test_lazy_kicks_take_chains_on_completion, 0, 4);
	tcase_add_loop_test(tc, test_pool_failure_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_memfd_pool_roundtrip, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("oneoff");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_oneoff_serves_request_larger_than_pool, 0, 8);
	tcase_add_loop_test(tc, test_oneoff_element_mode, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_oneoff_one_at_a_time_others_wait, 0, 4);
	tcase_add_loop_test(tc, test_oneoff_freed_with_its_request, 0, 4);
	tcase_add_loop_test(tc, test_oneoff_off_or_past_max_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_oneoff_region_refused, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_memfd_pool_serves_large_requests, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_backend_that_never_completes_stays_bounded, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("rewind");
	/* 65535 laps of a split ring, a memfd region each, under the
	 * sanitizers on a loaded machine: seconds, not the default 4. */
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_rewind_gives_back_what_backend_never_took, 0, 8);
	tcase_add_loop_test(tc, test_rewind_bad_base_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_backend_taken_follows_published_position, 0, 4);
	tcase_add_loop_test(tc, test_rewind_element_mode_gives_back_newest_first, 0,
			    SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_rewind_twice_gives_back_nothing_more, 0, 4);
	tcase_add_loop_test(tc, test_rewind_after_laps_with_a_chain_held, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("batch-bytes");
	tcase_add_loop_test(tc, test_batch_bytes_splits_both_sides, 0, 4);
	tcase_add_loop_test(tc, test_batch_bytes_resumes_held_chains, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("copy");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_each_copy_strategy_roundtrip, 0, SVQISO_NR_COPY);
	suite_add_tcase(s, tc);

	tc = tcase_create("counters");
	tcase_add_loop_test(tc, test_counters_one_segment_and_chains, 0, 4);
	tcase_add_test(tc, test_counters_element_mode);
	suite_add_tcase(s, tc);

	tc = tcase_create("element-mode");
	tcase_add_loop_test(tc, test_element_mode_completes_with_cookie, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_element_mode_bad_submit_rejected);
	tcase_add_test(tc, test_element_mode_absurd_counts_rejected);
	tcase_add_loop_test(tc, test_request_that_never_fits_refused, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_submit_larger_than_pool_not_taken, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_submit_from_reset_callback_kept, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_bad_opts_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("dirty-log");
	tcase_add_loop_test(tc, test_dirty_log_marks_exactly_what_is_written, 0, 4);
	tcase_add_loop_test(tc, test_dirty_log_preserve_logs_every_writable_page, 0, 4);
	tcase_add_loop_test(tc, test_dirty_log_switched_at_run_time, 0, 4);
	tcase_add_loop_test(tc, test_dirty_log_too_small_counted_and_said, 0, 4);
	tcase_add_test(tc, test_dirty_log_element_mode_without_gpa_logs_nothing);
	tcase_add_test(tc, test_dirty_log_bad_args_rejected);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *env = getenv("SVQ_TEST_SEED");
	SRunner *sr;
	int failed;

	if (env && *env)
		seed = strtoull(env, NULL, 0);
	printf("# seed=%#" PRIx64 "\n", seed);
	sr = srunner_create(svq_suite());
	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
