/* SPDX-License-Identifier: MIT */
/*
 * Bounce pools (lib/pool.c, pool_arena.c, pool_memfd.c): the arena against a
 * model of live buffers over long random runs, its FIFO reclaim and wrap
 * rules, the per-request memfd pool's registration traffic and fds, and the
 * wrapper around custom allocators.
 *
 * The random test prints "# seed=..."; SVQ_TEST_SEED=<seed> replays it.
 */
#define _GNU_SOURCE
#include <check.h>

#include "fds.h"
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "iso.h"
#include <svqiso/pool.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)

static uint64_t page;

/* ---- the iso under every pool, and what it announced ---- */

static struct reg_rec {
	unsigned int adds, dels;
	struct svqiso_region last_add, last_del;
	int add_ret;
} reg;

static int cb_add(void *ctx, const struct svqiso_region *r)
{
	ck_assert_ptr_eq(ctx, &reg);
	if (reg.add_ret)
		return reg.add_ret;
	reg.adds++;
	reg.last_add = *r;
	return 0;
}

static int cb_del(void *ctx, const struct svqiso_region *r)
{
	ck_assert_ptr_eq(ctx, &reg);
	reg.dels++;
	reg.last_del = *r;
	return 0;
}

static struct svqiso_iso *iso;
static struct svqiso_pool *pool;

static void setup(void)
{
	SVQISO_OPTS(svqiso_iso_opts, o, .region_add = cb_add,
		    .region_del = cb_del, .region_ctx = &reg);

	page = (uint64_t)sysconf(_SC_PAGESIZE);
	memset(&reg, 0, sizeof(reg));
	ck_assert_int_eq(svqiso_iso_new(&o, &iso), 0);
	pool = NULL;
}

static void teardown(void)
{
	svqiso_pool_free(pool);
	svqiso_iso_free(iso);
	pool = NULL;
	iso = NULL;
}

static struct svqiso_pool *arena_new(uint64_t size, uint32_t max_bufs, uint32_t align)
{
	SVQISO_OPTS(svqiso_arena_opts, o, .size = size, .max_bufs = max_bufs,
		    .align = align);
	struct svqiso_pool *p = NULL;

	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, &p), 0);
	ck_assert_ptr_nonnull(p);
	return p;
}

static struct svqiso_buf get(uint64_t len)
{
	struct svqiso_buf b;

	ck_assert_int_eq(svqiso_pool_alloc(pool, len, &b), 0);
	return b;
}

/*
 * Offset of @b in the arena's region, checked against both views. Runs per
 * operation in the random test: fails through ck_abort_msg() only.
 */
static uint64_t off_of(const struct svqiso_buf *b)
{
	const struct svqiso_region *r = &reg.last_add;
	uint64_t off = b->iova - r->iova;

	if (b->iova < r->iova || off > r->size || b->len > r->size - off)
		ck_abort_msg("buffer iova %#" PRIx64 " len %" PRIu64
			     " outside region %#" PRIx64 " size %" PRIu64,
			     b->iova, b->len, r->iova, r->size);
	if (b->hva != (uint8_t *)r->uaddr + off)
		ck_abort_msg("buffer hva %p is not region uaddr %p + %#" PRIx64,
			     b->hva, r->uaddr, off);
	return off;
}

static int try_get(uint64_t len)
{
	struct svqiso_buf b;
	int err = svqiso_pool_alloc(pool, len, &b);

	if (!err)
		svqiso_pool_put(pool, &b);
	return err;
}

/* ---- arena: shapes ---- */

START_TEST(test_arena_region_added_once)
{
	struct svqiso_buf b[8];
	unsigned int k;

	pool = arena_new(MiB, 0, 0);
	ck_assert_uint_eq(reg.adds, 1);
	ck_assert_uint_eq(reg.last_add.size, MiB);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 1);
	for (k = 0; k < 1000; k++) {
		b[k % 8] = get(k * 37 % 9000 + 1);
		if (k % 8 == 7)
			for (unsigned int j = 0; j < 8; j++)
				svqiso_pool_put(pool, &b[(j * 3) % 8]);
	}
	/* Steady state never registers or unregisters anything. */
	ck_assert_uint_eq(reg.adds, 1);
	ck_assert_uint_eq(reg.dels, 0);
	svqiso_pool_free(pool);
	pool = NULL;
	ck_assert_uint_eq(reg.dels, 1);
	ck_assert_uint_eq(reg.last_del.iova, reg.last_add.iova);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
}
END_TEST

START_TEST(test_arena_in_order_is_contiguous)
{
	struct svqiso_buf b[16];
	unsigned int k;

	pool = arena_new(64 * KiB, 0, 0);
	for (k = 0; k < 16; k++) {
		b[k] = get(4 * KiB);
		ck_assert_uint_eq(off_of(&b[k]), k * 4 * KiB);
		ck_assert_uint_eq(b[k].len, 4 * KiB);
	}
	ck_assert_int_eq(try_get(1), -ENOSPC);
	for (k = 0; k < 16; k++)
		svqiso_pool_put(pool, &b[k]);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
	/* Empty: back to the start. */
	b[0] = get(1);
	ck_assert_uint_eq(off_of(&b[0]), 0);
}
END_TEST

START_TEST(test_arena_reverse_order_reclaims_at_last)
{
	struct svqiso_buf b[16];
	int k;

	pool = arena_new(64 * KiB, 0, 0);
	for (k = 0; k < 16; k++)
		b[k] = get(4 * KiB);
	/* FIFO: nothing comes back while the oldest buffer is out... */
	for (k = 15; k > 0; k--) {
		svqiso_pool_put(pool, &b[k]);
		ck_assert_int_eq(try_get(1), -ENOSPC);
	}
	/* ...and everything does when it returns. */
	svqiso_pool_put(pool, &b[0]);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
	b[0] = get(64 * KiB);
	ck_assert_uint_eq(off_of(&b[0]), 0);
}
END_TEST

START_TEST(test_arena_wrap_skips_tail_end)
{
	struct svqiso_buf a, b, c, d, e;

	pool = arena_new(64 * KiB, 0, 0);
	a = get(40 * KiB);
	b = get(16 * KiB);
	ck_assert_uint_eq(off_of(&b), 40 * KiB);
	svqiso_pool_put(pool, &a);
	/* 8 KiB left at the end: too small, so it starts over at 0. */
	c = get(16 * KiB);
	ck_assert_uint_eq(off_of(&c), 0);
	/* Free now: [16K, 40K) only; the skipped end is not usable yet. */
	ck_assert_int_eq(try_get(24 * KiB + 1), -ENOSPC);
	d = get(24 * KiB);
	ck_assert_uint_eq(off_of(&d), 16 * KiB);
	ck_assert_int_eq(try_get(1), -ENOSPC);
	/* b was the front: the tail jumps to c at 0, and the end is back. */
	svqiso_pool_put(pool, &b);
	e = get(24 * KiB);
	ck_assert_uint_eq(off_of(&e), 40 * KiB);
	ck_assert_int_eq(try_get(1), -ENOSPC);
	svqiso_pool_put(pool, &c);
	svqiso_pool_put(pool, &d);
	svqiso_pool_put(pool, &e);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
}
END_TEST

/*
 * Depth 32 of 128 KiB in a 32 MiB arena, completions in order: the arena
 * comes back to its start once the bytes it holds allow, instead of walking
 * its whole size, so what the copies and the backend touch stays near the
 * 4 MiB in flight. Every request is served at once all the same.
 */
START_TEST(test_arena_reach_follows_bytes_in_flight)
{
	struct svqiso_buf b[32];
	uint64_t top = 0, wraps = 0, off;
	unsigned int k, n;

	pool = arena_new(32 * MiB, 0, 0);
	for (k = 0; k < 32; k++)
		b[k] = get(128 * KiB);
	for (n = 0; n < 4096; n++) {
		k = n % 32;
		svqiso_pool_put(pool, &b[k]);
		b[k] = get(128 * KiB);
		off = off_of(&b[k]);
		if (!off)
			wraps++;
		if (off + b[k].len > top)
			top = off + b[k].len;
	}
	ck_assert_uint_ge(top, 4 * MiB);
	ck_assert_uint_le(top, 6 * MiB);
	ck_assert_uint_ge(wraps, 4096 / 48);
	for (k = 0; k < 32; k++)
		svqiso_pool_put(pool, &b[k]);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
}
END_TEST

/* The reach never refuses what the size holds: it grows to it. */
START_TEST(test_arena_reach_grows_to_size)
{
	static struct svqiso_buf b[64];
	unsigned int k;

	pool = arena_new(8 * MiB, 0, 0);
	for (k = 0; k < 64; k++) {
		b[k] = get(128 * KiB);
		ck_assert_uint_eq(off_of(&b[k]), k * 128 * KiB);
	}
	ck_assert_int_eq(try_get(1), -ENOSPC);
	svqiso_pool_put(pool, &b[0]);
	b[0] = get(128 * KiB);
	ck_assert_uint_eq(off_of(&b[0]), 0);
	for (k = 0; k < 64; k++)
		svqiso_pool_put(pool, &b[k]);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
	/* Empty: the whole size in one buffer. */
	ck_assert_int_eq(try_get(8 * MiB), 0);
}
END_TEST

/*
 * Past the reach (1 MiB in a new arena of 8 MiB) the head starts over at 0
 * when the bytes before the tail have room, and goes on up when they do
 * not. Until the tail comes round, the wrapped arena holds what lies
 * between its head and its tail, no more.
 */
START_TEST(test_arena_reach_wraps_early)
{
	struct svqiso_buf a, b, c, d, e, f;

	pool = arena_new(8 * MiB, 0, 0);
	a = get(512 * KiB);
	b = get(256 * KiB);
	c = get(256 * KiB);
	ck_assert_uint_eq(off_of(&c), 768 * KiB);
	/* Full to the reach and nothing before the tail: up it goes. */
	d = get(64 * KiB);
	ck_assert_uint_eq(off_of(&d), MiB);
	svqiso_pool_put(pool, &a);
	/* [0, 512K) is free again: it is taken rather than [1M+64K, 8M). */
	e = get(256 * KiB);
	ck_assert_uint_eq(off_of(&e), 0);
	ck_assert_int_eq(try_get(256 * KiB + 1), -ENOSPC);
	f = get(256 * KiB);
	ck_assert_uint_eq(off_of(&f), 256 * KiB);
	/* The tail comes round to e at 0: the end is usable again. */
	svqiso_pool_put(pool, &b);
	svqiso_pool_put(pool, &c);
	svqiso_pool_put(pool, &d);
	ck_assert_int_eq(try_get(7 * MiB), 0);
	svqiso_pool_put(pool, &e);
	svqiso_pool_put(pool, &f);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
}
END_TEST

START_TEST(test_arena_full_enospc_then_ok_after_free)
{
	struct svqiso_buf b[4];
	unsigned int k;

	pool = arena_new(16 * KiB, 0, 0);
	for (k = 0; k < 4; k++)
		b[k] = get(4 * KiB);
	ck_assert_int_eq(try_get(1), -ENOSPC);
	ck_assert_int_eq(try_get(4 * KiB), -ENOSPC);
	svqiso_pool_put(pool, &b[0]);
	b[0] = get(4 * KiB);
	ck_assert_uint_eq(off_of(&b[0]), 0);
	ck_assert_int_eq(try_get(1), -ENOSPC);
	for (k = 1; k < 4; k++)
		svqiso_pool_put(pool, &b[k]);
	ck_assert_int_eq(try_get(12 * KiB), 0);
	svqiso_pool_put(pool, &b[0]);
}
END_TEST

START_TEST(test_arena_whole_size_when_empty)
{
	struct svqiso_buf b, s;

	pool = arena_new(64 * KiB, 0, 0);
	b = get(64 * KiB);
	ck_assert_uint_eq(off_of(&b), 0);
	ck_assert_uint_eq(b.len, 64 * KiB);
	svqiso_pool_put(pool, &b);
	/* Not while anything is out, wherever the offsets stand. */
	s = get(1);
	ck_assert_int_eq(try_get(64 * KiB), -ENOSPC);
	svqiso_pool_put(pool, &s);
	ck_assert_int_eq(try_get(64 * KiB), 0);
	s = get(60 * KiB);
	b = get(4 * KiB);
	svqiso_pool_put(pool, &s);
	svqiso_pool_put(pool, &b);
	ck_assert_int_eq(try_get(64 * KiB), 0);
}
END_TEST

START_TEST(test_arena_too_large_emsgsize)
{
	struct svqiso_buf b;

	pool = arena_new(64 * KiB, 0, 0);
	ck_assert_int_eq(svqiso_pool_alloc(pool, 64 * KiB + 1, &b), -EMSGSIZE);
	ck_assert_int_eq(svqiso_pool_alloc(pool, UINT64_MAX, &b), -EMSGSIZE);
	b = get(1);
	/* Still "never", not "not now", with a buffer out. */
	ck_assert_int_eq(try_get(64 * KiB + 1), -EMSGSIZE);
	ck_assert_int_eq(try_get(64 * KiB), -ENOSPC);
	svqiso_pool_put(pool, &b);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
}
END_TEST

START_TEST(test_arena_max_bufs_enospc)
{
	struct svqiso_buf b[4];
	unsigned int k;

	pool = arena_new(MiB, 4, 0);
	for (k = 0; k < 4; k++)
		b[k] = get(64);
	/* Space left, but no record. */
	ck_assert_int_eq(try_get(64), -ENOSPC);
	/* A record comes back only when the front of the ring does. */
	svqiso_pool_put(pool, &b[2]);
	ck_assert_int_eq(try_get(64), -ENOSPC);
	svqiso_pool_put(pool, &b[0]);
	b[0] = get(64);
	ck_assert_int_eq(try_get(64), -ENOSPC);
	svqiso_pool_put(pool, &b[1]);
	/* b[1] and the already-freed b[2] both go. */
	b[1] = get(64);
	b[2] = get(64);
	ck_assert_int_eq(try_get(64), -ENOSPC);
	for (k = 0; k < 4; k++)
		svqiso_pool_put(pool, &b[k]);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
}
END_TEST

START_TEST(test_arena_alignment)
{
	static const uint32_t aligns[] = { 1, 8, 64, 256, 4096 };
	unsigned int k, j;

	for (k = 0; k < SVQ_ARRAY_SIZE(aligns); k++) {
		struct svqiso_buf b[64];
		uint32_t al = aligns[k];

		pool = arena_new(MiB, 0, al);
		for (j = 0; j < 64; j++) {
			uint64_t len = j * 97 % 5000 + 1;

			b[j] = get(len);
			off_of(&b[j]);
			ck_assert_uint_ge(b[j].len, len);
			ck_assert_uint_lt(b[j].len - len, al);
			ck_assert_uint_eq(b[j].len % al, 0);
			ck_assert_uint_eq(b[j].iova % al, 0);
			ck_assert_uint_eq((uintptr_t)b[j].hva % al, 0);
		}
		for (j = 0; j < 64; j++)
			svqiso_pool_put(pool, &b[j]);
		svqiso_pool_free(pool);
		pool = NULL;
	}
	/* Default: 64. */
	pool = arena_new(MiB, 0, 0);
	ck_assert_uint_eq(get(1).len, 64);
}
END_TEST

START_TEST(test_arena_in_use_accounting)
{
	struct svqiso_buf a, b, c, x;

	pool = arena_new(16 * KiB, 0, 0);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
	a = get(1);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 64);
	b = get(65);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 64 + 128);
	/* A request of 0 bytes still gets a (minimal) buffer. */
	c = get(0);
	ck_assert_uint_eq(c.len, 64);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 256);
	ck_assert_int_eq(svqiso_pool_alloc(pool, 16 * KiB, &x), -ENOSPC);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 256);
	svqiso_pool_put(pool, &b);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 128);
	svqiso_pool_put(pool, &a);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 64);
}
END_TEST

START_TEST(test_arena_stale_put_ignored)
{
	struct svqiso_buf a, b, c;

	pool = arena_new(16 * KiB, 0, 0);
	a = get(4 * KiB);
	b = get(4 * KiB);
	svqiso_pool_put(pool, &a);
	/* Put twice (a caller bug): must not hand b's bytes out again. */
	svqiso_pool_put(pool, &a);
	c = get(8 * KiB);
	ck_assert(off_of(&c) >= off_of(&b) + b.len || off_of(&c) + c.len <= off_of(&b));
	ck_assert_int_eq(try_get(8 * KiB), -ENOSPC);
	svqiso_pool_put(pool, &b);
	svqiso_pool_put(pool, &c);
	ck_assert_int_eq(try_get(16 * KiB), 0);
}
END_TEST

/* ---- arena: long random runs against a model ---- */

#define MODEL_CHUNKS	(1u << 14)	/* the most cap / align of the configurations */
#define MODEL_BUFS	128	/* the most records */
#define MODEL_OPS	100000

/* _i of the random test: space-bound, record-bound, page-aligned. */
static const struct model_cfg {
	uint64_t cap;
	uint32_t bufs;
	uint32_t align;
} model_cfgs[] = {
	{ MiB, 128, 64 },
	{ MiB, 12, 64 },
	{ 256 * KiB, 64, 4096 },
	{ 8 * MiB, 128, 4096 },		/* past the first reach */
};

static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t seed(void)
{
	const char *env = getenv("SVQ_TEST_SEED");
	uint64_t s = env ? strtoull(env, NULL, 0) : 0x5eedb0a7c0de2024ull;

	printf("# seed=%#" PRIx64 "\n", s);
	fflush(stdout);
	return s ? s : 1;
}

struct live {
	struct svqiso_buf b;
	uint64_t tag;
};

/* Request sizes: mostly small, some large, a few near the whole arena. */
static uint64_t model_len(uint64_t cap)
{
	uint64_t r = rng() % 100;

	if (r < 70)
		return rng() % 4096 + 1;
	if (r < 97)
		return rng() % (cap / 16) + 1;
	return rng() % cap + 1;
}

static void stamp(struct live *l)
{
	uint8_t *p = l->b.hva;

	memcpy(p, &l->tag, 8 < l->b.len ? 8 : l->b.len);
	if (l->b.len >= 16)
		memcpy(p + l->b.len - 8, &l->tag, 8);
}

static void check_stamp(const struct live *l)
{
	uint8_t *p = l->b.hva;

	if (memcmp(p, &l->tag, 8 < l->b.len ? 8 : l->b.len) ||
	    (l->b.len >= 16 && memcmp(p + l->b.len - 8, &l->tag, 8)))
		ck_abort_msg("buffer tag %" PRIu64 " overwritten", l->tag);
}

START_TEST(test_arena_random_model_no_overlap)
{
	/* Owner of each chunk of align bytes: 0 free, else 1 + live index. */
	static uint32_t owner[MODEL_CHUNKS];
	const struct model_cfg *cfg = &model_cfgs[_i];
	const uint64_t chunk = cfg->align;
	struct live live[MODEL_BUFS];
	unsigned int nlive = 0, k;
	uint64_t op, bytes = 0, nospc = 0, wraps = 0, fulls = 0, prev_off = 0, tag = 0;

	ck_assert_uint_le(cfg->cap / chunk, MODEL_CHUNKS);
	rng_state = seed();
	memset(owner, 0, sizeof(owner));
	pool = arena_new(cfg->cap, cfg->bufs, cfg->align);

	for (op = 0; op < MODEL_OPS; op++) {
		if (nlive && (rng() % 100 < 45 || nlive == cfg->bufs)) {
			unsigned int i = (unsigned int)(rng() % nlive);
			struct live *l = &live[i];
			uint64_t c, off = off_of(&l->b);

			check_stamp(l);
			for (c = off / chunk; c < (off + l->b.len) / chunk; c++)
				owner[c] = 0;
			bytes -= l->b.len;
			svqiso_pool_put(pool, &l->b);
			/* Keep live[] dense; renumber the moved one's chunks. */
			if (i != --nlive) {
				*l = live[nlive];
				off = off_of(&l->b);
				for (c = off / chunk; c < (off + l->b.len) / chunk; c++)
					owner[c] = i + 1;
			}
		} else {
			uint64_t len = model_len(cfg->cap), off, c;
			struct live *l = &live[nlive];
			int err = svqiso_pool_alloc(pool, len, &l->b);

			if (err) {
				if (err != -ENOSPC)
					ck_abort_msg("op %" PRIu64 ": alloc %" PRIu64 ": %d",
						     op, len, err);
				/* Never stuck: an empty arena takes anything. */
				if (!nlive)
					ck_abort_msg("op %" PRIu64 ": empty arena refused %" PRIu64,
						     op, len);
				nospc++;
				continue;
			}
			off = off_of(&l->b);
			if (l->b.len < len || l->b.len % cfg->align || off % cfg->align ||
			    l->b.iova % cfg->align)
				ck_abort_msg("op %" PRIu64 ": bad buffer off %" PRIu64 " len %" PRIu64,
					     op, off, l->b.len);
			for (c = off / chunk; c < (off + l->b.len) / chunk; c++) {
				if (owner[c])
					ck_abort_msg("op %" PRIu64 ": [%" PRIu64 ", +%" PRIu64
						     ") overlaps a live buffer", op, off, l->b.len);
				owner[c] = nlive + 1;
			}
			if (nlive && off < prev_off)
				wraps++;
			prev_off = off;
			l->tag = ++tag;
			stamp(l);
			bytes += l->b.len;
			nlive++;
		}
		if (svqiso_pool_in_use(pool) != bytes)
			ck_abort_msg("op %" PRIu64 ": in_use %" PRIu64 ", model %" PRIu64,
				     op, svqiso_pool_in_use(pool), bytes);
		if (nlive == cfg->bufs)
			fulls++;
	}
	printf("# arena %" PRIu64 " KiB, %u bufs, align %u: %" PRIu64 " ops, %" PRIu64
	       " -ENOSPC, %" PRIu64 " wraps, %" PRIu64 " at max_bufs\n", cfg->cap >> 10,
	       cfg->bufs, cfg->align, op, nospc, wraps, fulls);
	fflush(stdout);
	/* The run must have exercised what it is about. */
	ck_assert_uint_gt(nospc, 50);
	ck_assert_uint_gt(wraps, 50);

	/* Drain in random order; then the whole arena is one buffer again. */
	while (nlive) {
		k = (unsigned int)(rng() % nlive);
		check_stamp(&live[k]);
		svqiso_pool_put(pool, &live[k].b);
		live[k] = live[--nlive];
	}
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
	ck_assert_int_eq(try_get(cfg->cap), 0);
	ck_assert_uint_eq(reg.adds, 1);
}
END_TEST

/* ---- arena: construction ---- */

START_TEST(test_arena_opts_defaults)
{
	ck_assert_int_eq(svqiso_pool_new_arena(iso, NULL, &pool), 0);
	ck_assert_uint_eq(reg.adds, 1);
	ck_assert_uint_eq(reg.last_add.size, SVQISO_ARENA_DEFAULT_SIZE);
	ck_assert_uint_eq(get(1).len, 64);
	ck_assert_int_eq(try_get(SVQISO_ARENA_DEFAULT_SIZE + 1), -EMSGSIZE);
}
END_TEST

START_TEST(test_arena_opts_size_page_rounded)
{
	struct svqiso_buf b;

	pool = arena_new(page + 1, 0, 0);
	ck_assert_uint_eq(reg.last_add.size, 2 * page);
	b = get(2 * page);
	ck_assert_uint_eq(off_of(&b), 0);
	ck_assert_int_eq(try_get(1), -ENOSPC);
}
END_TEST

START_TEST(test_arena_opts_bad_einval)
{
	SVQISO_OPTS(svqiso_arena_opts, o, .size = MiB);
	struct newer {
		struct svqiso_arena_opts o;
		uint64_t future;
	} n;
	struct svqiso_pool *p = NULL;

	o.align = 3;
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, &p), -EINVAL);
	o.align = 96;
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, &p), -EINVAL);
	o.align = (uint32_t)page * 2;	/* past the page: mapping not that aligned */
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, &p), -EINVAL);
	o.align = 0;
	o.size = UINT64_MAX;
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, &p), -EINVAL);
	o.size = MiB;
	o.sz = sizeof(size_t) - 1;
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, &p), -EINVAL);
	o.sz = sizeof(o);
	ck_assert_int_eq(svqiso_pool_new_arena(NULL, &o, &p), -EINVAL);
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, NULL), -EINVAL);

	memset(&n, 0, sizeof(n));
	n.o.sz = sizeof(n);
	n.future = 1;
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &n.o, &p), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_uint_eq(reg.adds, 0);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	n.future = 0;
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &n.o, &p), 0);
	svqiso_pool_free(p);
}
END_TEST

START_TEST(test_arena_opts_older_caller)
{
	SVQISO_OPTS(svqiso_arena_opts, o, .size = 64 * KiB, .max_bufs = 1,
		    .align = 3);
	struct svqiso_buf b[2];

	/* Knew only size: max_bufs and a bad align are not read. */
	o.sz = svq_offsetofend(svqiso_arena_opts, size);
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, &pool), 0);
	b[0] = get(1);
	b[1] = get(1);
	ck_assert_uint_eq(b[1].len, 64);
	ck_assert_int_eq(try_get(64 * KiB), -ENOSPC);
}
END_TEST

START_TEST(test_arena_refused_region_errno_no_leak)
{
	SVQISO_OPTS(svqiso_arena_opts, o, .size = MiB);
	unsigned int before = mock_count_fds();
	struct svqiso_pool *p = NULL;

	reg.add_ret = -EDQUOT;
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, &p), -EDQUOT);
	ck_assert_ptr_null(p);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	ck_assert_uint_eq(mock_count_fds(), before);
	reg.add_ret = 0;
	ck_assert_int_eq(svqiso_pool_new_arena(iso, &o, &p), 0);
	svqiso_pool_free(p);
	ck_assert_uint_eq(mock_count_fds(), before);
}
END_TEST

/* ---- memfd pool ---- */

START_TEST(test_memfd_alloc_adds_put_removes)
{
	unsigned int before = mock_count_fds();
	struct svqiso_buf a, b;

	ck_assert_int_eq(svqiso_pool_new_memfd(iso, &pool), 0);
	ck_assert_uint_eq(reg.adds, 0);
	a = get(100);
	ck_assert_uint_eq(reg.adds, 1);
	ck_assert_uint_eq(a.iova, reg.last_add.iova);
	ck_assert_ptr_eq(a.hva, reg.last_add.uaddr);
	ck_assert_uint_eq(a.len, page);
	ck_assert_uint_eq(reg.last_add.size, page);
	b = get(page + 1);
	ck_assert_uint_eq(reg.adds, 2);
	ck_assert_uint_eq(b.len, 2 * page);
	ck_assert_uint_eq(b.iova, reg.last_add.iova);
	ck_assert_uint_ne(a.iova, b.iova);
	ck_assert_uint_eq(mock_count_fds(), before + 2);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 3 * page);

	memset(a.hva, 0xaa, a.len);
	memset(b.hva, 0xbb, b.len);
	ck_assert_uint_eq(((uint8_t *)a.hva)[a.len - 1], 0xaa);

	svqiso_pool_put(pool, &a);
	ck_assert_uint_eq(reg.dels, 1);
	ck_assert_uint_eq(reg.last_del.iova, a.iova);
	ck_assert_uint_eq(mock_count_fds(), before + 1);
	svqiso_pool_put(pool, &b);
	ck_assert_uint_eq(reg.dels, 2);
	ck_assert_uint_eq(reg.last_del.iova, b.iova);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
	ck_assert_uint_eq(mock_count_fds(), before);
}
END_TEST

START_TEST(test_memfd_each_buffer_new_fd_zeroed)
{
	unsigned int before = mock_count_fds(), k;
	struct svqiso_buf b;
	int last_fd = -1;

	ck_assert_int_eq(svqiso_pool_new_memfd(iso, &pool), 0);
	for (k = 0; k < 100; k++) {
		b = get(k * 1000 + 1);
		ck_assert_uint_eq(reg.adds, k + 1);
		ck_assert_uint_ge(b.len, k * 1000 + 1);
		for (uint64_t i = 0; i < b.len; i += 512)
			ck_assert_uint_eq(((uint8_t *)b.hva)[i], 0);
		/* Dirty it: the next one must come back zeroed anyway. */
		memset(b.hva, 0xff, b.len);
		if (k)
			ck_assert_uint_gt(reg.last_add.iova, reg.last_del.iova);
		last_fd = reg.last_add.fd;
		svqiso_pool_put(pool, &b);
		ck_assert_uint_eq(reg.dels, k + 1);
		ck_assert_int_eq(reg.last_del.fd, last_fd);
	}
	ck_assert_uint_eq(mock_count_fds(), before);
}
END_TEST

START_TEST(test_memfd_refused_errno_passes)
{
	unsigned int before = mock_count_fds();
	struct svqiso_buf b;

	ck_assert_int_eq(svqiso_pool_new_memfd(iso, &pool), 0);
	/* A frontend out of backend slots: retry later. */
	reg.add_ret = -ENOSPC;
	ck_assert_int_eq(svqiso_pool_alloc(pool, 100, &b), -ENOSPC);
	reg.add_ret = -EDQUOT;
	ck_assert_int_eq(svqiso_pool_alloc(pool, 100, &b), -EDQUOT);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	ck_assert_uint_eq(mock_count_fds(), before);
	reg.add_ret = 0;
	b = get(100);
	svqiso_pool_put(pool, &b);
}
END_TEST

START_TEST(test_memfd_too_large_emsgsize)
{
	struct svqiso_buf b;

	ck_assert_int_eq(svqiso_pool_new_memfd(iso, &pool), 0);
	ck_assert_int_eq(svqiso_pool_alloc(pool, UINT64_MAX, &b), -EMSGSIZE);
	ck_assert_int_eq(svqiso_pool_alloc(pool, SVQ_ISO_MAX_SIZE + 1, &b), -EMSGSIZE);
	ck_assert_uint_eq(reg.adds, 0);
}
END_TEST

START_TEST(test_memfd_out_of_fds_enospc)
{
	unsigned int before = mock_count_fds(), ndup = 0, k;
	struct rlimit old, low;
	struct svqiso_buf b;
	int dups[4096], fd;

	ck_assert_int_eq(svqiso_pool_new_memfd(iso, &pool), 0);
	b = get(1);
	/* Forked (CK_FORK): the lowered limit dies with this test. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)mock_max_fd() + 1;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while ((fd = dup(0)) >= 0) {
		ck_assert_uint_lt(ndup, SVQ_ARRAY_SIZE(dups));
		dups[ndup++] = fd;
	}
	/* Buffers in flight hold the fds: wait for one, do not fail. */
	ck_assert_int_eq(try_get(1), -ENOSPC);
	svqiso_pool_put(pool, &b);
	ck_assert_int_eq(try_get(1), 0);

	for (k = 0; k < ndup; k++)
		close(dups[k]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_uint_eq(mock_count_fds(), before);
}
END_TEST

START_TEST(test_memfd_pool_free_null_iso_einval)
{
	struct svqiso_pool *p = NULL;

	ck_assert_int_eq(svqiso_pool_new_memfd(NULL, &p), -EINVAL);
	ck_assert_int_eq(svqiso_pool_new_memfd(iso, NULL), -EINVAL);
	ck_assert_ptr_null(p);
}
END_TEST

/* ---- custom allocators through svqiso_pool_new() ---- */

struct fake {
	unsigned int allocs, frees, destroys;
	int ret;
	uint8_t mem[4096];
	uint64_t last_len;
	struct svqiso_buf last_free;
};

static int fake_alloc(void *ctx, uint64_t len, struct svqiso_buf *buf)
{
	struct fake *f = ctx;

	f->allocs++;
	f->last_len = len;
	if (f->ret)
		return f->ret;
	buf->hva = f->mem;
	buf->iova = 0x1000;
	buf->len = len;
	buf->priv = 42;
	return 0;
}

static void fake_free(void *ctx, const struct svqiso_buf *buf)
{
	struct fake *f = ctx;

	f->frees++;
	f->last_free = *buf;
}

static void fake_destroy(void *ctx)
{
	((struct fake *)ctx)->destroys++;
}

static void destroy_must_not_run(void *ctx)
{
	(void)ctx;
	ck_abort_msg("destroy past the caller's sz was called");
}

START_TEST(test_custom_ops_called_with_ctx)
{
	struct svqiso_pool_ops ops = {
		.sz = sizeof(ops), .alloc = fake_alloc, .free = fake_free,
		.destroy = fake_destroy,
	};
	struct fake f = { 0 };
	struct svqiso_buf b;

	ck_assert_int_eq(svqiso_pool_new(&ops, &f, &pool), 0);
	/* The pool keeps its own copy of the ops. */
	memset(&ops, 0, sizeof(ops));
	b = get(100);
	ck_assert_uint_eq(f.allocs, 1);
	ck_assert_uint_eq(f.last_len, 100);
	ck_assert_ptr_eq(b.hva, f.mem);
	ck_assert_uint_eq(b.priv, 42);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 100);
	get(0);
	ck_assert_uint_eq(f.last_len, 1);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 101);
	svqiso_pool_put(pool, &b);
	ck_assert_uint_eq(f.frees, 1);
	ck_assert_uint_eq(f.last_free.priv, 42);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 1);

	f.ret = -EMSGSIZE;
	ck_assert_int_eq(svqiso_pool_alloc(pool, 5, &b), -EMSGSIZE);
	f.ret = -ENOMEM;
	ck_assert_int_eq(svqiso_pool_alloc(pool, 5, &b), -ENOMEM);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 1);

	svqiso_pool_free(pool);
	pool = NULL;
	ck_assert_uint_eq(f.destroys, 1);
}
END_TEST

START_TEST(test_custom_bad_ops_einval)
{
	struct svqiso_pool_ops ops = {
		.sz = sizeof(ops), .alloc = fake_alloc, .free = fake_free,
	};
	struct newer {
		struct svqiso_pool_ops o;
		uint64_t future;
	} n;
	struct svqiso_pool *p = NULL;
	struct fake f = { 0 };

	ck_assert_int_eq(svqiso_pool_new(NULL, &f, &p), -EINVAL);
	ck_assert_int_eq(svqiso_pool_new(&ops, &f, NULL), -EINVAL);
	ops.alloc = NULL;
	ck_assert_int_eq(svqiso_pool_new(&ops, &f, &p), -EINVAL);
	ops.alloc = fake_alloc;
	ops.free = NULL;
	ck_assert_int_eq(svqiso_pool_new(&ops, &f, &p), -EINVAL);
	ops.free = fake_free;
	/* A struct too short to hold free is incomplete. */
	ops.sz = svq_offsetofend(svqiso_pool_ops, alloc);
	ck_assert_int_eq(svqiso_pool_new(&ops, &f, &p), -EINVAL);
	ops.sz = 0;
	ck_assert_int_eq(svqiso_pool_new(&ops, &f, &p), -EINVAL);
	memset(&n, 0, sizeof(n));
	n.o = (struct svqiso_pool_ops){ .alloc = fake_alloc, .free = fake_free };
	n.o.sz = sizeof(n);
	n.future = 1;
	ck_assert_int_eq(svqiso_pool_new(&n.o, &f, &p), -EINVAL);
	ck_assert_ptr_null(p);
	n.future = 0;
	ck_assert_int_eq(svqiso_pool_new(&n.o, &f, &p), 0);
	svqiso_pool_free(p);
	ck_assert_uint_eq(f.allocs, 0);
}
END_TEST

START_TEST(test_custom_older_caller_no_destroy)
{
	struct svqiso_pool_ops ops = {
		.sz = svq_offsetofend(svqiso_pool_ops, free),
		.alloc = fake_alloc, .free = fake_free,
		.destroy = destroy_must_not_run,
	};
	struct fake f = { 0 };

	ck_assert_int_eq(svqiso_pool_new(&ops, &f, &pool), 0);
	get(1);
	svqiso_pool_free(pool);
	pool = NULL;
	ck_assert_uint_eq(f.allocs, 1);
}
END_TEST

START_TEST(test_pool_null_args)
{
	struct svqiso_buf b = { 0 };

	pool = arena_new(64 * KiB, 0, 0);
	ck_assert_int_eq(svqiso_pool_alloc(NULL, 1, &b), -EINVAL);
	ck_assert_int_eq(svqiso_pool_alloc(pool, 1, NULL), -EINVAL);
	svqiso_pool_put(NULL, &b);
	svqiso_pool_put(pool, NULL);
	ck_assert_uint_eq(svqiso_pool_in_use(NULL), 0);
	ck_assert_uint_eq(svqiso_pool_in_use(pool), 0);
	svqiso_pool_free(NULL);
}
END_TEST

static Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc;

	tc = tcase_create("arena");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_arena_region_added_once);
	tcase_add_test(tc, test_arena_in_order_is_contiguous);
	tcase_add_test(tc, test_arena_reverse_order_reclaims_at_last);
	tcase_add_test(tc, test_arena_wrap_skips_tail_end);
	tcase_add_test(tc, test_arena_reach_follows_bytes_in_flight);
	tcase_add_test(tc, test_arena_reach_grows_to_size);
	tcase_add_test(tc, test_arena_reach_wraps_early);
	tcase_add_test(tc, test_arena_full_enospc_then_ok_after_free);
	tcase_add_test(tc, test_arena_whole_size_when_empty);
	tcase_add_test(tc, test_arena_too_large_emsgsize);
	tcase_add_test(tc, test_arena_max_bufs_enospc);
	tcase_add_test(tc, test_arena_alignment);
	tcase_add_test(tc, test_arena_in_use_accounting);
	tcase_add_test(tc, test_arena_stale_put_ignored);
	suite_add_tcase(s, tc);

	tc = tcase_create("arena-random");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_arena_random_model_no_overlap, 0,
			    SVQ_ARRAY_SIZE(model_cfgs));
	suite_add_tcase(s, tc);

	tc = tcase_create("arena-opts");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_arena_opts_defaults);
	tcase_add_test(tc, test_arena_opts_size_page_rounded);
	tcase_add_test(tc, test_arena_opts_bad_einval);
	tcase_add_test(tc, test_arena_opts_older_caller);
	tcase_add_test(tc, test_arena_refused_region_errno_no_leak);
	suite_add_tcase(s, tc);

	tc = tcase_create("memfd");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_memfd_alloc_adds_put_removes);
	tcase_add_test(tc, test_memfd_each_buffer_new_fd_zeroed);
	tcase_add_test(tc, test_memfd_refused_errno_passes);
	tcase_add_test(tc, test_memfd_too_large_emsgsize);
	tcase_add_test(tc, test_memfd_out_of_fds_enospc);
	tcase_add_test(tc, test_memfd_pool_free_null_iso_einval);
	suite_add_tcase(s, tc);

	tc = tcase_create("custom");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_custom_ops_called_with_ctx);
	tcase_add_test(tc, test_custom_bad_ops_einval);
	tcase_add_test(tc, test_custom_older_caller_no_destroy);
	tcase_add_test(tc, test_pool_null_args);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pool_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
