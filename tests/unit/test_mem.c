/* SPDX-License-Identifier: MIT */
/*
 * Guest memory map (lib/mem.c): region table, lookup, translation into
 * iovecs, hostile ranges and opts handling.
 *
 * Host addresses are mostly made-up integers: the map never dereferences
 * them, and that lets regions sit anywhere, up to the top of the space.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "vring.h"

/* Linked with -Wl,--wrap=calloc: fail the Nth calloc() from now (1 = next). */
static unsigned int calloc_fail_in;

void *__real_calloc(size_t nmemb, size_t size);
void *__wrap_calloc(size_t nmemb, size_t size);

void *__wrap_calloc(size_t nmemb, size_t size)
{
	if (calloc_fail_in && --calloc_fail_in == 0)
		return NULL;
	return __real_calloc(nmemb, size);
}

#define HVA(x) ((void *)(uintptr_t)(x))

static struct svqiso_mem *mem;

static struct svqiso_mem *map_new(uint32_t max_regions)
{
	SVQISO_OPTS(svqiso_mem_opts, o, .max_regions = max_regions);
	struct svqiso_mem *m = NULL;

	ck_assert_int_eq(svqiso_mem_new(&o, &m), 0);
	ck_assert_ptr_nonnull(m);
	return m;
}

static void setup(void)
{
	mem = map_new(0);
}

static void teardown(void)
{
	svqiso_mem_free(mem);
	mem = NULL;
}

static int add(struct svqiso_mem *m, uint64_t gpa, uint64_t size, uintptr_t hva)
{
	struct svqiso_mem_region r = {
		.gpa = gpa, .size = size, .hva = HVA(hva), .fd = -1,
	};

	return svqiso_mem_add_region(m, &r);
}

static void assert_region(unsigned int i, uint64_t gpa, uint64_t size,
			  uintptr_t hva)
{
	struct svqiso_mem_region r;

	ck_assert_int_eq(svqiso_mem_get_region(mem, i, &r), 0);
	ck_assert_uint_eq(r.gpa, gpa);
	ck_assert_uint_eq(r.size, size);
	ck_assert_ptr_eq(r.hva, HVA(hva));
}

/* Deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* ---- add / remove / get ---- */

START_TEST(test_add_out_of_order_sorted)
{
	ck_assert_int_eq(add(mem, 0x30000, 0x1000, 0x3000000), 0);
	ck_assert_int_eq(add(mem, 0x10000, 0x1000, 0x1000000), 0);
	ck_assert_int_eq(add(mem, 0x20000, 0x1000, 0x2000000), 0);
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 3);
	assert_region(0, 0x10000, 0x1000, 0x1000000);
	assert_region(1, 0x20000, 0x1000, 0x2000000);
	assert_region(2, 0x30000, 0x1000, 0x3000000);
}
END_TEST

START_TEST(test_add_all_fields_copied)
{
	struct svqiso_mem_region in = {
		.gpa = 0x4000, .size = 0x2000, .hva = HVA(0x7000000),
		.fd = 42, .fd_offset = 0x123000,
	}, out;

	ck_assert_int_eq(svqiso_mem_add_region(mem, &in), 0);
	ck_assert_int_eq(svqiso_mem_get_region(mem, 0, &out), 0);
	ck_assert_int_eq(memcmp(&in, &out, sizeof(in)), 0);
}
END_TEST

START_TEST(test_add_adjacent_ok)
{
	ck_assert_int_eq(add(mem, 0x2000, 0x1000, 0x20000), 0);
	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x10000), 0);	/* below */
	ck_assert_int_eq(add(mem, 0x3000, 0x1000, 0x30000), 0);	/* above */
	ck_assert_int_eq(add(mem, 0x0, 0x1000, 0x40000), 0);	/* at 0 */
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 4);
}
END_TEST

START_TEST(test_add_overlap_low_edge_eexist)
{
	ck_assert_int_eq(add(mem, 0x10000, 0x10000, 0x100000), 0);
	/* Last byte lands on the existing region's first byte. */
	ck_assert_int_eq(add(mem, 0xf000, 0x1001, 0x200000), -EEXIST);
	ck_assert_int_eq(add(mem, 0x0, 0x10001, 0x200000), -EEXIST);
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 1);
	/* One byte shorter touches without overlapping. */
	ck_assert_int_eq(add(mem, 0xf000, 0x1000, 0x200000), 0);
}
END_TEST

START_TEST(test_add_overlap_high_edge_eexist)
{
	ck_assert_int_eq(add(mem, 0x10000, 0x10000, 0x100000), 0);
	/* First byte lands on the existing region's last byte. */
	ck_assert_int_eq(add(mem, 0x1ffff, 0x1000, 0x200000), -EEXIST);
	ck_assert_int_eq(add(mem, 0x1ffff, 1, 0x200000), -EEXIST);
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 1);
	ck_assert_int_eq(add(mem, 0x20000, 0x1000, 0x200000), 0);
}
END_TEST

START_TEST(test_add_overlap_inside_and_around_eexist)
{
	ck_assert_int_eq(add(mem, 0x10000, 0x10000, 0x100000), 0);
	ck_assert_int_eq(add(mem, 0x30000, 0x10000, 0x300000), 0);
	ck_assert_int_eq(add(mem, 0x10000, 0x10000, 0x200000), -EEXIST); /* same */
	ck_assert_int_eq(add(mem, 0x10000, 1, 0x200000), -EEXIST);	  /* same start */
	ck_assert_int_eq(add(mem, 0x18000, 0x100, 0x200000), -EEXIST);  /* inside */
	ck_assert_int_eq(add(mem, 0x8000, 0x20000, 0x200000), -EEXIST); /* around */
	/* Spans the hole between the two and touches both. */
	ck_assert_int_eq(add(mem, 0x1ffff, 0x10002, 0x200000), -EEXIST);
	ck_assert_int_eq(add(mem, 0x0, 0x100000, 0x200000), -EEXIST);
	/* Exactly fills the hole. */
	ck_assert_int_eq(add(mem, 0x20000, 0x10000, 0x200000), 0);
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 3);
	assert_region(0, 0x10000, 0x10000, 0x100000);
	assert_region(1, 0x20000, 0x10000, 0x200000);
	assert_region(2, 0x30000, 0x10000, 0x300000);
}
END_TEST

START_TEST(test_add_bad_args_einval)
{
	struct svqiso_mem_region r = { .gpa = 0x1000, .size = 0x1000,
				       .hva = HVA(0x10000), .fd = -1 };

	ck_assert_int_eq(svqiso_mem_add_region(mem, NULL), -EINVAL);
	ck_assert_int_eq(svqiso_mem_add_region(NULL, &r), -EINVAL);
	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0), -EINVAL);		/* hva */
	ck_assert_int_eq(add(mem, 0x1000, 0, 0x10000), -EINVAL);	/* size */
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 0);
}
END_TEST

START_TEST(test_add_top_of_space_ok)
{
	struct svqiso_mem *m = map_new(0);

	/* The last byte may be UINT64_MAX. */
	ck_assert_int_eq(add(mem, UINT64_MAX - 0xfff, 0x1000, 0x10000), 0);
	ck_assert_int_eq(add(mem, UINT64_MAX - 0x1fff, 0x1000, 0x20000), 0);
	ck_assert_int_eq(add(mem, UINT64_MAX, 1, 0x30000), -EEXIST);
	ck_assert_int_eq(add(m, UINT64_MAX, 1, 0x30000), 0);
	/* Host side may end at the top too. */
	ck_assert_int_eq(add(m, 0, 0x1000, UINTPTR_MAX - 0xfff), 0);
	svqiso_mem_free(m);
	m = map_new(0);
	ck_assert_int_eq(add(m, 0, UINT64_MAX, 1), sizeof(uintptr_t) == 8 ? 0 : -EOVERFLOW);
	svqiso_mem_free(m);
}
END_TEST

START_TEST(test_add_gpa_wraps_eoverflow)
{
	ck_assert_int_eq(add(mem, UINT64_MAX - 0xfff, 0x1001, 0x10000), -EOVERFLOW);
	ck_assert_int_eq(add(mem, UINT64_MAX, 2, 0x10000), -EOVERFLOW);
	ck_assert_int_eq(add(mem, 2, UINT64_MAX, 1), -EOVERFLOW);
	ck_assert_int_eq(add(mem, UINT64_MAX, UINT64_MAX, 1), -EOVERFLOW);
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 0);
}
END_TEST

START_TEST(test_add_hva_wraps_eoverflow)
{
	ck_assert_int_eq(add(mem, 0x1000, 0x1001, UINTPTR_MAX - 0xfff), -EOVERFLOW);
	ck_assert_int_eq(add(mem, 0x1000, 2, UINTPTR_MAX), -EOVERFLOW);
	ck_assert_int_eq(add(mem, 0x1000, UINT64_MAX - 0x1000, 0x10000), -EOVERFLOW);
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 0);
	ck_assert_int_eq(add(mem, 0x1000, 1, UINTPTR_MAX), 0);
}
END_TEST

START_TEST(test_add_full_enospc)
{
	struct svqiso_mem *m = map_new(4);
	unsigned int i;

	for (i = 0; i < 4; i++)
		ck_assert_int_eq(add(m, i * 0x1000, 0x1000, 0x10000 + i * 0x1000), 0);
	ck_assert_int_eq(add(m, 0x10000, 0x1000, 0x10000), -ENOSPC);
	/* Overlap is reported before fullness. */
	ck_assert_int_eq(add(m, 0x0, 0x1000, 0x10000), -EEXIST);
	ck_assert_uint_eq(svqiso_mem_nr_regions(m), 4);
	ck_assert_int_eq(svqiso_mem_remove_region(m, 0x2000), 0);
	ck_assert_int_eq(add(m, 0x10000, 0x1000, 0x10000), 0);
	svqiso_mem_free(m);
}
END_TEST

START_TEST(test_remove_only_exact_start)
{
	uint64_t len = 1;

	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x10000), 0);
	ck_assert_int_eq(add(mem, 0x2000, 0x1000, 0x20000), 0);
	ck_assert_int_eq(add(mem, 0x3000, 0x1000, 0x30000), 0);
	ck_assert_int_eq(svqiso_mem_remove_region(mem, 0x2001), -ENOENT);
	ck_assert_int_eq(svqiso_mem_remove_region(mem, 0x1fff), -ENOENT);
	ck_assert_int_eq(svqiso_mem_remove_region(mem, 0x0), -ENOENT);
	ck_assert_int_eq(svqiso_mem_remove_region(mem, 0x4000), -ENOENT);
	ck_assert_int_eq(svqiso_mem_remove_region(NULL, 0x2000), -EINVAL);
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 3);

	ck_assert_int_eq(svqiso_mem_remove_region(mem, 0x2000), 0);
	ck_assert_int_eq(svqiso_mem_remove_region(mem, 0x2000), -ENOENT);
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 2);
	assert_region(0, 0x1000, 0x1000, 0x10000);
	assert_region(1, 0x3000, 0x1000, 0x30000);
	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0x2800, &len));
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, 0x3800, &len), HVA(0x30800));

	/* The hole can be filled again. */
	ck_assert_int_eq(add(mem, 0x2000, 0x1000, 0x40000), 0);
	assert_region(1, 0x2000, 0x1000, 0x40000);
}
END_TEST

START_TEST(test_get_region_out_of_range_enoent)
{
	struct svqiso_mem_region r;

	ck_assert_int_eq(svqiso_mem_get_region(mem, 0, &r), -ENOENT);
	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x10000), 0);
	ck_assert_int_eq(svqiso_mem_get_region(mem, 0, &r), 0);
	ck_assert_int_eq(svqiso_mem_get_region(mem, 1, &r), -ENOENT);
	ck_assert_int_eq(svqiso_mem_get_region(mem, UINT32_MAX, &r), -ENOENT);
	ck_assert_int_eq(svqiso_mem_get_region(mem, 0, NULL), -EINVAL);
	ck_assert_int_eq(svqiso_mem_get_region(NULL, 0, &r), -EINVAL);
	ck_assert_uint_eq(svqiso_mem_nr_regions(NULL), 0);
}
END_TEST

/* ---- lookup ---- */

START_TEST(test_lookup_offset_and_clamp)
{
	uint64_t len;

	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x100000), 0);

	len = 0x100;
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, 0x1800, &len), HVA(0x100800));
	ck_assert_uint_eq(len, 0x100);

	len = 0x1000;	/* clamped at the region end */
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, 0x1800, &len), HVA(0x100800));
	ck_assert_uint_eq(len, 0x800);

	len = UINT64_MAX;
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, 0x1000, &len), HVA(0x100000));
	ck_assert_uint_eq(len, 0x1000);

	len = 2;	/* last byte */
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, 0x1fff, &len), HVA(0x100fff));
	ck_assert_uint_eq(len, 1);
}
END_TEST

START_TEST(test_lookup_miss_null)
{
	uint64_t len;

	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x100000), 0);
	ck_assert_int_eq(add(mem, 0x3000, 0x1000, 0x300000), 0);

	len = 0x10;
	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0xfff, &len));	/* below */
	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0x2000, &len));	/* hole */
	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0x2fff, &len));	/* hole */
	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0x4000, &len));	/* above */
	ck_assert_ptr_null(svqiso_mem_lookup(mem, UINT64_MAX, &len));
	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0, &len));
	ck_assert_uint_eq(len, 0x10);	/* untouched on a miss */
}
END_TEST

START_TEST(test_lookup_empty_map_null)
{
	uint64_t len = 1;

	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0, &len));
	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0x1000, &len));
}
END_TEST

START_TEST(test_lookup_zero_len_null)
{
	uint64_t len = 0;

	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x100000), 0);
	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0x1000, &len));
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_null(svqiso_mem_lookup(mem, 0x1000, NULL));
	len = 1;
	ck_assert_ptr_null(svqiso_mem_lookup(NULL, 0x1000, &len));
}
END_TEST

START_TEST(test_lookup_top_of_space)
{
	uint64_t len = UINT64_MAX;

	ck_assert_int_eq(add(mem, UINT64_MAX - 0xfff, 0x1000, 0x100000), 0);
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, UINT64_MAX, &len), HVA(0x100fff));
	ck_assert_uint_eq(len, 1);
	len = UINT64_MAX;
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, UINT64_MAX - 0xfff, &len), HVA(0x100000));
	ck_assert_uint_eq(len, 0x1000);
	len = 1;
	ck_assert_ptr_null(svqiso_mem_lookup(mem, UINT64_MAX - 0x1000, &len));
}
END_TEST

/* The reference: a linear scan over what the test inserted. */
static void *ref_lookup(const struct svqiso_mem_region *rs, unsigned int n,
			uint64_t gpa, uint64_t *len)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint64_t off = gpa - rs[i].gpa;

		if (gpa >= rs[i].gpa && off <= rs[i].size - 1) {
			if (*len > rs[i].size - off)
				*len = rs[i].size - off;
			return HVA((uintptr_t)rs[i].hva + off);
		}
	}
	return NULL;
}

static void check_against_ref(const struct svqiso_mem_region *rs, unsigned int n)
{
	unsigned int i, k;

	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), n);
	for (i = 0; i < n; i++) {
		uint64_t probes[] = {
			rs[i].gpa - 1, rs[i].gpa, rs[i].gpa + rs[i].size / 2,
			rs[i].gpa + rs[i].size - 1, rs[i].gpa + rs[i].size,
			rng() % (rs[i].gpa + rs[i].size + 0x10000),
		};

		for (k = 0; k < SVQ_ARRAY_SIZE(probes); k++) {
			uint64_t want = 1 + rng() % 0x20000;
			uint64_t got_len = want, ref_len = want;
			void *got = svqiso_mem_lookup(mem, probes[k], &got_len);
			void *ref = ref_lookup(rs, n, probes[k], &ref_len);

			ck_assert_msg(got == ref, "gpa 0x%llx: %p, want %p",
				      (unsigned long long)probes[k], got, ref);
			ck_assert_uint_eq(got_len, ref_len);
		}
	}
}

START_TEST(test_lookup_random_order_matches_linear_scan)
{
	enum { N = 1000, SLOT = 0x10000 };
	struct svqiso_mem_region *rs = calloc(N, sizeof(*rs));
	unsigned int *order = calloc(N, sizeof(*order));
	unsigned int i, n;

	ck_assert_ptr_nonnull(rs);
	ck_assert_ptr_nonnull(order);
	svqiso_mem_free(mem);
	mem = map_new(N);

	/* One region per slot; a third fill their slot and touch neighbours. */
	for (i = 0; i < N; i++) {
		uint64_t off = rng() % 3 ? rng() % SLOT : 0;
		uint64_t size = off ? 1 + rng() % (SLOT - off) : SLOT;

		order[i] = i;
		rs[i].gpa = 0x100000000ull + (uint64_t)i * SLOT + off;
		rs[i].size = size;
		rs[i].hva = HVA(0x10000000u + i * SLOT + off);
		rs[i].fd = -1;
	}
	for (i = N - 1; i > 0; i--) {
		unsigned int j = rng() % (i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (i = 0; i < N; i++)
		ck_assert_int_eq(svqiso_mem_add_region(mem, &rs[order[i]]), 0);
	ck_assert_int_eq(add(mem, rs[0].gpa, 1, 0x1000), -EEXIST);
	for (i = 0; i < N; i++)
		assert_region(i, rs[i].gpa, rs[i].size, (uintptr_t)rs[i].hva);
	check_against_ref(rs, N);

	/* Remove a random half, keeping rs[] compact and sorted. */
	for (i = 0, n = 0; i < N; i++) {
		if (rng() & 1)
			ck_assert_int_eq(svqiso_mem_remove_region(mem, rs[i].gpa), 0);
		else
			rs[n++] = rs[i];
	}
	check_against_ref(rs, n);

	free(order);
	free(rs);
}
END_TEST

START_TEST(test_ops_translate_through_map)
{
	const struct svqiso_mem_ops *ops = svqiso_mem_ops();
	uint64_t len = 0x1000;

	ck_assert_ptr_nonnull(ops);
	ck_assert_ptr_eq(ops, svqiso_mem_ops());
	ck_assert_uint_eq(ops->sz, sizeof(struct svqiso_mem_ops));
	ck_assert_ptr_nonnull(ops->translate);

	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x100000), 0);
	ck_assert_ptr_eq(ops->translate(mem, 0x1800, &len), HVA(0x100800));
	ck_assert_uint_eq(len, 0x800);
	len = 1;
	ck_assert_ptr_null(ops->translate(mem, 0x2000, &len));
}
END_TEST

/* ---- hint: the rings' translation cache ---- */

/* A lookup through @h must agree with svqiso_mem_lookup() exactly. */
static void check_hint(struct svq_mem_hint *h, uint64_t gpa, uint64_t want_len)
{
	uint64_t a = want_len, b = want_len;
	void *pa = svqiso_mem_lookup(mem, gpa, &a);
	void *pb = svq_mem_lookup_hint(mem, gpa, &b, h);

	ck_assert_ptr_eq(pb, pa);
	if (pa)
		ck_assert_uint_eq(b, a);
}

START_TEST(test_hint_matches_lookup)
{
	struct svq_mem_hint h = { 0 };
	unsigned int i;

	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x100000), 0);
	ck_assert_int_eq(add(mem, 0x2000, 0x1000, 0x300000), 0);	/* adjacent */
	ck_assert_int_eq(add(mem, 0x8000, 0x4000, 0x500000), 0);
	for (i = 0; i < 20000; i++) {
		uint64_t gpa = rng() % 0xe000, len = 1 + rng() % 0x3000;

		check_hint(&h, gpa, len);
	}
	/* A hit clamps at the region end, and the region's first byte past
	 * the end is another region, not the cached one. */
	check_hint(&h, 0x1800, 0x1000);
	check_hint(&h, 0x1fff, UINT64_MAX);
	check_hint(&h, 0x2000, 1);
	check_hint(&h, 0xfff, 1);
}
END_TEST

START_TEST(test_hint_invalidated_by_remove)
{
	struct svq_mem_hint h = { 0 };
	uint64_t len = 0x100;

	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x100000), 0);
	ck_assert_ptr_eq(svq_mem_lookup_hint(mem, 0x1800, &len, &h), HVA(0x100800));
	ck_assert_int_eq(svqiso_mem_remove_region(mem, 0x1000), 0);
	len = 0x100;
	ck_assert_ptr_null(svq_mem_lookup_hint(mem, 0x1800, &len, &h));
}
END_TEST

START_TEST(test_hint_invalidated_by_add)
{
	struct svq_mem_hint h = { 0 };
	uint64_t len = 0x100;

	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x100000), 0);
	ck_assert_ptr_eq(svq_mem_lookup_hint(mem, 0x1800, &len, &h), HVA(0x100800));

	/* The same guest range, mapped elsewhere now. */
	ck_assert_int_eq(svqiso_mem_remove_region(mem, 0x1000), 0);
	ck_assert_int_eq(add(mem, 0x1000, 0x800, 0x200000), 0);
	len = 0x100;
	ck_assert_ptr_eq(svq_mem_lookup_hint(mem, 0x1100, &len, &h), HVA(0x200100));
	/* Smaller too: the old size must not survive in the cache. */
	len = 0x100;
	ck_assert_ptr_null(svq_mem_lookup_hint(mem, 0x1800, &len, &h));

	/* An add elsewhere, which moves the region's index, changes nothing
	 * the cache returns. */
	len = 0x1000;
	ck_assert_ptr_eq(svq_mem_lookup_hint(mem, 0x1000, &len, &h), HVA(0x200000));
	ck_assert_uint_eq(len, 0x800);
	ck_assert_int_eq(add(mem, 0x0, 0x1000, 0x900000), 0);
	len = 0x1000;
	ck_assert_ptr_eq(svq_mem_lookup_hint(mem, 0x1000, &len, &h), HVA(0x200000));
	ck_assert_uint_eq(len, 0x800);
	len = 0x10;
	ck_assert_ptr_eq(svq_mem_lookup_hint(mem, 0x10, &len, &h), HVA(0x900010));
}
END_TEST

/*
 * Through a ring: a device-role ring over this map translates with a hint.
 * A region taken away or moved between two pops must show in the second.
 */
#define RING_NUM 4
#define RING_GPA 0x10000ull
#define DATA_GPA 0x40000ull

struct hint_ring {
	uint8_t ring[4096] __attribute__((aligned(64)));
	uint8_t data[2][4096] __attribute__((aligned(64)));
	struct svq_dev dev;
	uint16_t avail_idx;
};

static void ring_add(struct hint_ring *t, uint16_t head, uint64_t addr)
{
	struct svq_split_desc *d = (struct svq_split_desc *)(void *)t->ring;
	struct svq_split_avail *av = (struct svq_split_avail *)(void *)(t->ring + 1024);

	d[head].addr = htole64(addr);
	d[head].len = htole32(512);
	d[head].flags = 0;
	d[head].next = 0;
	av->ring[t->avail_idx % RING_NUM] = htole16(head);
	t->avail_idx++;
	__atomic_store_n(&av->idx, htole16(t->avail_idx), __ATOMIC_RELEASE);
}

static int ring_pop(struct hint_ring *t, struct svq_seg *seg)
{
	struct svq_elem e = { .seg = seg, .max_seg = 1 };
	int ret = svq_dev_pop(&t->dev, &e);

	if (ret == 1) {
		ck_assert_int_eq(svq_dev_push(&t->dev, e.id, 0), 0);
		ck_assert_int_eq(svq_dev_flush(&t->dev), 1);
	}
	return ret;
}

START_TEST(test_hint_ring_sees_region_changes)
{
	static struct hint_ring t;
	struct svqiso_mem_region ring = { .gpa = RING_GPA, .size = sizeof(t.ring),
					  .hva = t.ring, .fd = -1 };
	struct svqiso_mem_region data = { .gpa = DATA_GPA, .size = 4096,
					  .hva = t.data[0], .fd = -1 };
	struct svq_dev_cfg cfg = { .layout = SVQISO_LAYOUT_SPLIT, .num = RING_NUM,
				   .desc = RING_GPA, .driver = RING_GPA + 1024,
				   .device = RING_GPA + 2048,
				   .mem = svqiso_mem_ops(), .mem_ctx = mem };
	struct svq_seg seg;

	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(svqiso_mem_add_region(mem, &ring), 0);
	ck_assert_int_eq(svqiso_mem_add_region(mem, &data), 0);
	ck_assert_int_eq(svq_dev_init(&t.dev, &cfg), 0);

	ring_add(&t, 0, DATA_GPA + 0x100);
	ck_assert_int_eq(ring_pop(&t, &seg), 1);
	ck_assert_ptr_eq(seg.hva, t.data[0] + 0x100);

	/* Moved: the next chain lands in the new mapping. */
	ck_assert_int_eq(svqiso_mem_remove_region(mem, DATA_GPA), 0);
	data.hva = t.data[1];
	ck_assert_int_eq(svqiso_mem_add_region(mem, &data), 0);
	ring_add(&t, 1, DATA_GPA + 0x200);
	ck_assert_int_eq(ring_pop(&t, &seg), 1);
	ck_assert_ptr_eq(seg.hva, t.data[1] + 0x200);

	/* Gone: the same address is no guest memory any more. */
	ck_assert_int_eq(svqiso_mem_remove_region(mem, DATA_GPA), 0);
	ring_add(&t, 2, DATA_GPA + 0x200);
	ck_assert_int_eq(ring_pop(&t, &seg), -EFAULT);
	ck_assert_int_eq(t.dev.rc.rule, SVQ_RULE_ADDR_UNMAPPED);
	svq_dev_fini(&t.dev);
}
END_TEST

/* ---- translate ---- */

static void assert_iov(const struct iovec *iov, uintptr_t base, size_t len)
{
	ck_assert_ptr_eq(iov->iov_base, HVA(base));
	ck_assert_uint_eq(iov->iov_len, len);
}

/* Three adjacent guest regions, scattered in host memory. */
static void setup3(void)
{
	setup();
	ck_assert_int_eq(add(mem, 0x1000, 0x1000, 0x500000), 0);
	ck_assert_int_eq(add(mem, 0x2000, 0x1000, 0x300000), 0);
	ck_assert_int_eq(add(mem, 0x3000, 0x1000, 0x900000), 0);
	ck_assert_int_eq(add(mem, 0x8000, 0x1000, 0x100000), 0);
}

START_TEST(test_translate_one_region)
{
	struct iovec iov[4];

	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1100, 0x200, iov, 4), 1);
	assert_iov(&iov[0], 0x500100, 0x200);
	/* Ends exactly at the region end: no second segment. */
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1f00, 0x100, iov, 1), 1);
	assert_iov(&iov[0], 0x500f00, 0x100);
}
END_TEST

START_TEST(test_translate_two_regions)
{
	struct iovec iov[4];

	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1800, 0x1000, iov, 4), 2);
	assert_iov(&iov[0], 0x500800, 0x800);
	assert_iov(&iov[1], 0x300000, 0x800);
	/* One byte on each side of the boundary. */
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1fff, 2, iov, 2), 2);
	assert_iov(&iov[0], 0x500fff, 1);
	assert_iov(&iov[1], 0x300000, 1);
}
END_TEST

START_TEST(test_translate_three_regions)
{
	struct iovec iov[4];

	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1800, 0x2000, iov, 4), 3);
	assert_iov(&iov[0], 0x500800, 0x800);
	assert_iov(&iov[1], 0x300000, 0x1000);
	assert_iov(&iov[2], 0x900000, 0x800);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, 0x3000, iov, 3), 3);
	assert_iov(&iov[0], 0x500000, 0x1000);
	assert_iov(&iov[1], 0x300000, 0x1000);
	assert_iov(&iov[2], 0x900000, 0x1000);
}
END_TEST

START_TEST(test_translate_too_few_iov_enobufs)
{
	struct iovec iov[3];

	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1800, 0x2000, iov, 2), -ENOBUFS);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1800, 0x1000, iov, 1), -ENOBUFS);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1800, 0x10, NULL, 0), -ENOBUFS);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1800, 0x2000, iov, 3), 3);
}
END_TEST

START_TEST(test_translate_hole_efault)
{
	struct iovec iov[8];

	/* Starts in a hole, ends in one, crosses one, lies in one. */
	ck_assert_int_eq(svqiso_mem_translate(mem, 0xfff, 2, iov, 8), -EFAULT);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x3fff, 2, iov, 8), -EFAULT);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x3800, 0x5000, iov, 8), -EFAULT);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x5000, 0x100, iov, 8), -EFAULT);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x9000, 1, iov, 8), -EFAULT);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0, UINT64_MAX, iov, 8), -EFAULT);
	/* A hole wins over a short iov: a bigger one would not help. */
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, 0x3001, iov, 1), -EFAULT);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, 0x3001, NULL, 0), -EFAULT);
}
END_TEST

START_TEST(test_translate_bad_args_einval)
{
	struct iovec iov[2];

	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, 0, iov, 2), -EINVAL);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, 1, NULL, 2), -EINVAL);
	ck_assert_int_eq(svqiso_mem_translate(NULL, 0x1000, 1, iov, 2), -EINVAL);
}
END_TEST

START_TEST(test_translate_wraps_eoverflow)
{
	struct iovec iov[2];

	ck_assert_int_eq(add(mem, UINT64_MAX - 0xf, 0x10, 0x700000), 0);
	ck_assert_int_eq(svqiso_mem_translate(mem, UINT64_MAX, 2, iov, 2), -EOVERFLOW);
	ck_assert_int_eq(svqiso_mem_translate(mem, UINT64_MAX - 0xf, 0x11, iov, 2), -EOVERFLOW);
	ck_assert_int_eq(svqiso_mem_translate(mem, 2, UINT64_MAX, iov, 2), -EOVERFLOW);
	ck_assert_int_eq(svqiso_mem_translate(mem, UINT64_MAX, UINT64_MAX, iov, 2), -EOVERFLOW);
}
END_TEST

START_TEST(test_translate_top_of_space)
{
	struct iovec iov[2];

	ck_assert_int_eq(add(mem, UINT64_MAX - 0x1f, 0x10, 0x700000), 0);
	ck_assert_int_eq(add(mem, UINT64_MAX - 0xf, 0x10, 0x600000), 0);
	ck_assert_int_eq(svqiso_mem_translate(mem, UINT64_MAX - 0xf, 0x10, iov, 2), 1);
	assert_iov(&iov[0], 0x600000, 0x10);
	ck_assert_int_eq(svqiso_mem_translate(mem, UINT64_MAX, 1, iov, 2), 1);
	assert_iov(&iov[0], 0x60000f, 1);
	ck_assert_int_eq(svqiso_mem_translate(mem, UINT64_MAX - 0x1f, 0x20, iov, 2), 2);
	assert_iov(&iov[0], 0x700000, 0x10);
	assert_iov(&iov[1], 0x600000, 0x10);
}
END_TEST

/* ---- hostile ranges ---- */

START_TEST(test_hostile_no_wrap_from_top_to_zero)
{
	struct iovec iov[2];
	uint64_t len = UINT64_MAX;

	/* Regions at both ends of the space: a range must not wrap between them. */
	ck_assert_int_eq(add(mem, 0, 0x1000, 0x100000), 0);
	ck_assert_int_eq(add(mem, UINT64_MAX - 0xfff, 0x1000, 0x200000), 0);
	ck_assert_int_eq(svqiso_mem_translate(mem, UINT64_MAX, 2, iov, 2), -EOVERFLOW);
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, UINT64_MAX, &len), HVA(0x200fff));
	ck_assert_uint_eq(len, 1);
}
END_TEST

START_TEST(test_hostile_whole_space_region)
{
#if UINTPTR_MAX == UINT64_MAX
	struct iovec iov[2];
	uint64_t len = UINT64_MAX;

	/* [1, 2^64): every byte but address 0, mapped from host address 1. */
	ck_assert_int_eq(add(mem, 1, UINT64_MAX, 1), 0);
	ck_assert_int_eq(svqiso_mem_translate(mem, 1, UINT64_MAX, iov, 2), 1);
	assert_iov(&iov[0], 1, UINT64_MAX);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0, 2, iov, 2), -EFAULT);
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, UINT64_MAX, &len), HVA(UINT64_MAX));
	ck_assert_uint_eq(len, 1);
	ck_assert_int_eq(add(mem, 0, 1, 0x1000), 0);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0, UINT64_MAX, iov, 2), 2);
	assert_iov(&iov[0], 0x1000, 1);
	assert_iov(&iov[1], 1, UINT64_MAX - 1);
#endif
}
END_TEST

START_TEST(test_hostile_many_tiny_regions)
{
	enum { N = 4096 };
	struct iovec *iov = calloc(N, sizeof(*iov));
	unsigned int i;

	ck_assert_ptr_nonnull(iov);
	svqiso_mem_free(mem);
	mem = map_new(N);
	/* One byte each, adjacent in guest space, reversed in host space. */
	for (i = 0; i < N; i++)
		ck_assert_int_eq(add(mem, 0x1000 + i, 1, 0x100000 - i), 0);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, N, iov, N), N);
	for (i = 0; i < N; i++)
		assert_iov(&iov[i], 0x100000 - i, 1);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, N, iov, N - 1), -ENOBUFS);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, N + 1, iov, N), -EFAULT);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0xfff, N, iov, N), -EFAULT);
	/* Punch a hole in the middle. */
	ck_assert_int_eq(svqiso_mem_remove_region(mem, 0x1000 + N / 2), 0);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, N, iov, N), -EFAULT);
	ck_assert_int_eq(svqiso_mem_translate(mem, 0x1000, N / 2, iov, N), N / 2);
	free(iov);
}
END_TEST

/* ---- opts ---- */

struct log_rec {
	int calls;
	int level;
	char msg[256];
};

static void log_cb(void *ctx, int level, const char *msg)
{
	struct log_rec *rec = ctx;

	rec->calls++;
	rec->level = level;
	snprintf(rec->msg, sizeof(rec->msg), "%s", msg);
}

static void log_must_not_run(void *ctx, int level, const char *msg)
{
	(void)ctx;
	ck_abort_msg("log callback past opts->sz ran: %d %s", level, msg);
}

START_TEST(test_opts_null_defaults)
{
	struct svqiso_mem *m = NULL;
	unsigned int i;

	ck_assert_int_eq(svqiso_mem_new(NULL, &m), 0);
	for (i = 0; i < SVQISO_MEM_DEFAULT_REGIONS; i++)
		ck_assert_int_eq(add(m, i, 1, 0x1000 + i), 0);
	ck_assert_int_eq(add(m, i, 1, 0x1000 + i), -ENOSPC);
	svqiso_mem_free(m);
}
END_TEST

START_TEST(test_opts_max_regions_limit)
{
	SVQISO_OPTS(svqiso_mem_opts, o, .max_regions = SVQISO_MEM_MAX_REGIONS);
	struct svqiso_mem *m = NULL;
	unsigned int i;

	ck_assert_int_eq(svqiso_mem_new(&o, &m), 0);
	for (i = 0; i < SVQISO_MEM_MAX_REGIONS; i++)
		ck_assert_int_eq(add(m, (uint64_t)i << 12, 0x1000, 0x1000), 0);
	ck_assert_int_eq(add(m, UINT64_MAX, 1, 0x1000), -ENOSPC);
	svqiso_mem_free(m);

	o.max_regions = SVQISO_MEM_MAX_REGIONS + 1;
	m = HVA(0x1);
	ck_assert_int_eq(svqiso_mem_new(&o, &m), -EINVAL);
	ck_assert_ptr_eq(m, HVA(0x1));	/* untouched on error */
	o.max_regions = UINT32_MAX;
	ck_assert_int_eq(svqiso_mem_new(&o, &m), -EINVAL);
}
END_TEST

START_TEST(test_opts_bad_size_einval)
{
	SVQISO_OPTS(svqiso_mem_opts, o);
	struct svqiso_mem *m = NULL;

	ck_assert_uint_eq(o.sz, sizeof(o));
	o.sz = 0;
	ck_assert_int_eq(svqiso_mem_new(&o, &m), -EINVAL);
	o.sz = sizeof(size_t) - 1;
	ck_assert_int_eq(svqiso_mem_new(&o, &m), -EINVAL);
	/* Just sz: all defaults. */
	o.sz = sizeof(size_t);
	ck_assert_int_eq(svqiso_mem_new(&o, &m), 0);
	svqiso_mem_free(m);
	ck_assert_int_eq(svqiso_mem_new(NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_opts_unknown_nonzero_einval)
{
	/* What a newer caller passes: our struct plus a field we do not know. */
	struct newer {
		struct svqiso_mem_opts o;
		uint64_t future;
	} n;
	struct svqiso_mem *m = NULL;

	memset(&n, 0, sizeof(n));
	n.o.sz = sizeof(n);
	n.future = 1;
	ck_assert_int_eq(svqiso_mem_new(&n.o, &m), -EINVAL);
	n.future = 1ull << 63;
	ck_assert_int_eq(svqiso_mem_new(&n.o, &m), -EINVAL);
	ck_assert_ptr_null(m);
	n.future = 0;
	ck_assert_int_eq(svqiso_mem_new(&n.o, &m), 0);
	svqiso_mem_free(m);
}
END_TEST

START_TEST(test_opts_older_caller_fields_ignored)
{
	struct log_rec rec = { 0 };
	SVQISO_OPTS(svqiso_mem_opts, o, .max_regions = 2,
		    .log = log_must_not_run, .log_ctx = &rec);
	struct svqiso_mem *m = NULL;

	/* An older caller knew nothing past max_regions. */
	o.sz = svq_offsetofend(svqiso_mem_opts, max_regions);
	ck_assert_int_eq(svqiso_mem_new(&o, &m), 0);
	ck_assert_int_eq(add(m, 0x1000, 0x1000, 0x10000), 0);
	ck_assert_int_eq(add(m, 0x2000, 0x1000, 0x20000), 0);
	ck_assert_int_eq(add(m, 0x3000, 0x1000, 0x30000), -ENOSPC);	/* logs */
	svqiso_mem_free(m);

	/* And one that knew nothing but sz: default max_regions. */
	o.sz = sizeof(size_t);
	ck_assert_int_eq(svqiso_mem_new(&o, &m), 0);
	ck_assert_int_eq(add(m, 0x1000, 0x1000, 0x10000), 0);
	ck_assert_int_eq(add(m, 0x2000, 0x1000, 0x20000), 0);
	ck_assert_int_eq(add(m, 0x3000, 0x1000, 0x30000), 0);
	svqiso_mem_free(m);
}
END_TEST

START_TEST(test_opts_log_reports_rejects)
{
	struct log_rec rec = { 0 };
	SVQISO_OPTS(svqiso_mem_opts, o, .max_regions = 2,
		    .log = log_cb, .log_ctx = &rec);
	struct svqiso_mem *m = NULL;

	ck_assert_int_eq(svqiso_mem_new(&o, &m), 0);
	ck_assert_int_eq(add(m, 0x1000, 0x1000, 0x10000), 0);
	ck_assert_int_eq(rec.calls, 0);

	ck_assert_int_eq(add(m, 0x1800, 0x1000, 0x20000), -EEXIST);
	ck_assert_int_eq(rec.calls, 1);
	ck_assert_int_eq(rec.level, SVQISO_LOG_WARN);
	ck_assert_str_eq(rec.msg, "mem: region gpa 0x1800 size 0x1000 "
			 "overlaps gpa 0x1000 size 0x1000");

	ck_assert_int_eq(add(m, UINT64_MAX, 2, 0x20000), -EOVERFLOW);
	ck_assert_int_eq(rec.calls, 2);
	ck_assert_ptr_nonnull(strstr(rec.msg, "wraps"));

	ck_assert_int_eq(add(m, 0x2000, 0x1000, 0x20000), 0);
	ck_assert_int_eq(add(m, 0x3000, 0x1000, 0x30000), -ENOSPC);
	ck_assert_int_eq(rec.calls, 3);
	ck_assert_ptr_nonnull(strstr(rec.msg, "all 2 slots"));
	svqiso_mem_free(m);
}
END_TEST

START_TEST(test_new_alloc_failure_enomem)
{
	struct svqiso_mem *m = HVA(0x1);

	/* Map struct, then region array: both failures clean up and report. */
	calloc_fail_in = 1;
	ck_assert_int_eq(svqiso_mem_new(NULL, &m), -ENOMEM);
	ck_assert_uint_eq(calloc_fail_in, 0);
	calloc_fail_in = 2;
	ck_assert_int_eq(svqiso_mem_new(NULL, &m), -ENOMEM);
	ck_assert_uint_eq(calloc_fail_in, 0);
	ck_assert_ptr_eq(m, HVA(0x1));
	ck_assert_int_eq(svqiso_mem_new(NULL, &m), 0);
	svqiso_mem_free(m);
	svqiso_mem_free(NULL);
}
END_TEST

/* The whole table replaced at once; a bad table leaves the old one, and
 * the map grows past max_regions when it has to. */
START_TEST(test_set_regions_replaces_or_changes_nothing)
{
	struct svqiso_mem_region r[3] = {
		{ .gpa = 0x10000, .size = 0x1000, .hva = HVA(0x700000), .fd = -1 },
		{ .gpa = 0x0, .size = 0x1000, .hva = HVA(0x900000), .fd = -1 },
		{ .gpa = 0x20000, .size = 0x2000, .hva = HVA(0xa00000), .fd = -1 },
	};
	struct svqiso_mem *m = map_new(2);
	uint64_t len = 1;

	ck_assert_int_eq(add(m, 0x5000, 0x1000, 0x50000), 0);
	ck_assert_int_eq(svqiso_mem_set_regions(m, r, 3), 0);
	ck_assert_uint_eq(svqiso_mem_nr_regions(m), 3);
	ck_assert_ptr_eq(svqiso_mem_lookup(m, 0x10010, &len), HVA(0x700010));
	len = 1;
	ck_assert_ptr_null(svqiso_mem_lookup(m, 0x5000, &len));
	/* Overlapping: refused, the three stay. */
	r[2].gpa = 0x10800;
	ck_assert_int_eq(svqiso_mem_set_regions(m, r, 3), -EEXIST);
	ck_assert_uint_eq(svqiso_mem_nr_regions(m), 3);
	len = 1;
	ck_assert_ptr_eq(svqiso_mem_lookup(m, 0x20000, &len), HVA(0xa00000));
	r[2].size = 0;
	ck_assert_int_eq(svqiso_mem_set_regions(m, r, 3), -EINVAL);
	ck_assert_int_eq(svqiso_mem_set_regions(m, NULL, 1), -EINVAL);
	ck_assert_int_eq(svqiso_mem_set_regions(m, r, SVQISO_MEM_MAX_REGIONS + 1), -E2BIG);
	calloc_fail_in = 1;
	ck_assert_int_eq(svqiso_mem_set_regions(m, r, 2), -ENOMEM);
	ck_assert_uint_eq(svqiso_mem_nr_regions(m), 3);
	/* Empty. */
	ck_assert_int_eq(svqiso_mem_set_regions(m, NULL, 0), 0);
	ck_assert_uint_eq(svqiso_mem_nr_regions(m), 0);
	svqiso_mem_free(m);
}
END_TEST

START_TEST(test_version_matches_header)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", SVQISO_VERSION_MAJOR,
		 SVQISO_VERSION_MINOR, SVQISO_VERSION_PATCH);
	ck_assert_str_eq(svqiso_version(), want);
	ck_assert_str_eq(svqiso_version(), SVQISO_VERSION_STRING);
}
END_TEST

static Suite *mem_suite(void)
{
	Suite *s = suite_create("mem");
	TCase *tc;

	tc = tcase_create("add");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_add_out_of_order_sorted);
	tcase_add_test(tc, test_set_regions_replaces_or_changes_nothing);
	tcase_add_test(tc, test_add_all_fields_copied);
	tcase_add_test(tc, test_add_adjacent_ok);
	tcase_add_test(tc, test_add_overlap_low_edge_eexist);
	tcase_add_test(tc, test_add_overlap_high_edge_eexist);
	tcase_add_test(tc, test_add_overlap_inside_and_around_eexist);
	tcase_add_test(tc, test_add_bad_args_einval);
	tcase_add_test(tc, test_add_top_of_space_ok);
	tcase_add_test(tc, test_add_gpa_wraps_eoverflow);
	tcase_add_test(tc, test_add_hva_wraps_eoverflow);
	tcase_add_test(tc, test_add_full_enospc);
	tcase_add_test(tc, test_remove_only_exact_start);
	tcase_add_test(tc, test_get_region_out_of_range_enoent);
	suite_add_tcase(s, tc);

	tc = tcase_create("lookup");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_lookup_offset_and_clamp);
	tcase_add_test(tc, test_lookup_miss_null);
	tcase_add_test(tc, test_lookup_empty_map_null);
	tcase_add_test(tc, test_lookup_zero_len_null);
	tcase_add_test(tc, test_lookup_top_of_space);
	tcase_add_test(tc, test_lookup_random_order_matches_linear_scan);
	tcase_add_test(tc, test_ops_translate_through_map);
	suite_add_tcase(s, tc);

	tc = tcase_create("hint");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_hint_matches_lookup);
	tcase_add_test(tc, test_hint_invalidated_by_remove);
	tcase_add_test(tc, test_hint_invalidated_by_add);
	tcase_add_test(tc, test_hint_ring_sees_region_changes);
	suite_add_tcase(s, tc);

	tc = tcase_create("translate");
	tcase_add_checked_fixture(tc, setup3, teardown);
	tcase_add_test(tc, test_translate_one_region);
	tcase_add_test(tc, test_translate_two_regions);
	tcase_add_test(tc, test_translate_three_regions);
	tcase_add_test(tc, test_translate_too_few_iov_enobufs);
	tcase_add_test(tc, test_translate_hole_efault);
	tcase_add_test(tc, test_translate_bad_args_einval);
	tcase_add_test(tc, test_translate_wraps_eoverflow);
	tcase_add_test(tc, test_translate_top_of_space);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_hostile_no_wrap_from_top_to_zero);
	tcase_add_test(tc, test_hostile_whole_space_region);
	tcase_add_test(tc, test_hostile_many_tiny_regions);
	suite_add_tcase(s, tc);

	tc = tcase_create("opts");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_opts_null_defaults);
	tcase_add_test(tc, test_opts_max_regions_limit);
	tcase_add_test(tc, test_opts_bad_size_einval);
	tcase_add_test(tc, test_opts_unknown_nonzero_einval);
	tcase_add_test(tc, test_opts_older_caller_fields_ignored);
	tcase_add_test(tc, test_opts_log_reports_rejects);
	tcase_add_test(tc, test_new_alloc_failure_enomem);
	tcase_add_test(tc, test_version_matches_header);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mem_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
