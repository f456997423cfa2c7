/* SPDX-License-Identifier: MIT */
/*
 * Copy strategies (lib/copy.c): every strategy writes exactly the bytes
 * memcpy() would, at every size and alignment, and nothing outside the
 * destination.
 *
 * The public entry (svqiso_copy) is run for each kind this CPU supports; the
 * internal resolver runs every strategy and every AUTO choice as if on CPUs
 * with fewer features, so the fallbacks are tested on any x86-64.
 *
 * Each copy lands on a destination pre-filled with the complement of the
 * expected bytes, between guard areas, so a skipped byte, a misplaced one or
 * a stray store all show.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "copy.h"

#define GUARD		128		/* multiple of 64: offsets stay exact */
#define GUARD_BYTE	0x5a
#define MAX_LEN		((4u << 20) + 4096)
#define BUF_SIZE	(GUARD + 64 + MAX_LEN + GUARD)

static uint8_t *src_buf, *dst_buf, *not_src;	/* not_src[i] == ~src_buf[i] */

/* Deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static void setup(void)
{
	size_t i;

	src_buf = aligned_alloc(64, BUF_SIZE);
	dst_buf = aligned_alloc(64, BUF_SIZE);
	not_src = aligned_alloc(64, BUF_SIZE);
	ck_assert_ptr_nonnull(src_buf);
	ck_assert_ptr_nonnull(dst_buf);
	ck_assert_ptr_nonnull(not_src);
	for (i = 0; i < BUF_SIZE; i += 8) {
		uint64_t x = rng();

		memcpy(src_buf + i, &x, 8);
		x = ~x;
		memcpy(not_src + i, &x, 8);
	}
}

static void teardown(void)
{
	free(src_buf);
	free(dst_buf);
	free(not_src);
}

/* A way to copy: the public call with @kind, or an internal function. */
struct copier {
	int kind;
	svq_copy_fn fn;
};

static const char *copier_name(const struct copier *c)
{
	return c->fn ? "internal" : svqiso_copy_name(c->kind);
}

/*
 * Copy @len bytes from src_buf + GUARD + @soff to dst_buf + GUARD + @doff
 * and check the result; only fails through ck_abort_msg(), so the loop costs
 * nothing per passing copy.
 */
static void check_copy(const struct copier *c, size_t len, unsigned int soff,
		       unsigned int doff)
{
	const uint8_t *s = src_buf + GUARD + soff;
	uint8_t *d = dst_buf + GUARD + doff;
	size_t i;
	int ret = 0;

	memset(d - GUARD, GUARD_BYTE, GUARD);
	memset(d + len, GUARD_BYTE, GUARD);
	memcpy(d, not_src + GUARD + soff, len);

	if (c->fn)
		c->fn(d, s, len);
	else
		ret = svqiso_copy(c->kind, d, s, len);

	if (ret)
		ck_abort_msg("%s: len %zu: returned %d", copier_name(c), len, ret);
	if (memcmp(d, s, len)) {
		for (i = 0; d[i] == s[i]; i++)
			;
		ck_abort_msg("%s: len %zu soff %u doff %u: first wrong byte at %zu",
			     copier_name(c), len, soff, doff, i);
	}
	for (i = 0; i < GUARD; i++)
		if (d[-(ptrdiff_t)GUARD + (ptrdiff_t)i] != GUARD_BYTE ||
		    d[len + i] != GUARD_BYTE)
			ck_abort_msg("%s: len %zu soff %u doff %u: guard byte %zu written",
				     copier_name(c), len, soff, doff, i);
}

/* Sizes at and around every threshold and vector width. */
static const size_t edge_sizes[] = {
	1, 15, 16, 17, 63, 64, 65, 127, 128, 129,
	SVQ_COPY_NT_MIN - 1, SVQ_COPY_NT_MIN, SVQ_COPY_NT_MIN + 1,
	SVQ_COPY_NT_MIN + 63, 3 * SVQ_COPY_NT_MIN + 17,
};

static void check_every_small_size(const struct copier *c)
{
	size_t len;

	for (len = 0; len <= SVQ_COPY_NT_MIN + 256; len++) {
		check_copy(c, len, 0, 0);
		check_copy(c, len, len % 64, (len * 7 + 3) % 64);
	}
}

static void check_every_misalignment(const struct copier *c)
{
	unsigned int so, dof, k;

	for (k = 0; k < SVQ_ARRAY_SIZE(edge_sizes); k++)
		for (so = 0; so < 64; so++)
			for (dof = 0; dof < 64; dof++)
				check_copy(c, edge_sizes[k], so, dof);
}

static void check_large_sizes(const struct copier *c)
{
	static const unsigned int offs[][2] = { {0, 0}, {1, 63}, {63, 1}, {17, 40}, {32, 0} };
	static const size_t odd[] = {
		4099, 12289, 65537, 100003, 262147, 999983, 1000003,
		SVQ_COPY_AUTO_LARGE - 1, SVQ_COPY_AUTO_LARGE, SVQ_COPY_AUTO_LARGE + 1,
		SVQ_COPY_AUTO_LARGE + 4097, 3000017, (4u << 20) - 3, 4u << 20,
		(4u << 20) + 1, (4u << 20) + 4093,
	};
	size_t len;
	unsigned int k, o;

	for (len = 8192; len <= (4u << 20); len *= 2)
		for (o = 0; o < SVQ_ARRAY_SIZE(offs); o++) {
			check_copy(c, len - 1, offs[o][0], offs[o][1]);
			check_copy(c, len, offs[o][0], offs[o][1]);
			check_copy(c, len + 1, offs[o][0], offs[o][1]);
		}
	for (k = 0; k < SVQ_ARRAY_SIZE(odd); k++)
		for (o = 0; o < SVQ_ARRAY_SIZE(offs); o++)
			check_copy(c, odd[k], offs[o][0], offs[o][1]);
}

/*
 * For a kind this CPU lacks: -ENOTSUP and not a byte written. Return true
 * if the kind is supported and the caller should go on.
 */
static bool supported_or_enotsup(int kind)
{
	uint8_t d[64], s[64];

	if (svqiso_copy_supported(kind))
		return true;
	memset(d, GUARD_BYTE, sizeof(d));
	memset(s, 0, sizeof(s));
	ck_assert_int_eq(svqiso_copy(kind, d, s, sizeof(s)), -ENOTSUP);
	for (size_t i = 0; i < sizeof(d); i++)
		ck_assert_uint_eq(d[i], GUARD_BYTE);
	ck_assert_ptr_null(svq_copy_resolve(kind));
	return false;
}

/* ---- public entry, per kind (loop tests: _i is the kind) ---- */

START_TEST(test_kind_every_small_size_matches_memcpy)
{
	struct copier c = { .kind = _i };

	if (supported_or_enotsup(_i))
		check_every_small_size(&c);
}
END_TEST

START_TEST(test_kind_every_misalignment_matches_memcpy)
{
	struct copier c = { .kind = _i };

	if (supported_or_enotsup(_i))
		check_every_misalignment(&c);
}
END_TEST

START_TEST(test_kind_large_sizes_match_memcpy)
{
	struct copier c = { .kind = _i };

	if (supported_or_enotsup(_i))
		check_large_sizes(&c);
}
END_TEST

START_TEST(test_kind_zero_len_null_ok)
{
	if (supported_or_enotsup(_i))
		ck_assert_int_eq(svqiso_copy(_i, NULL, NULL, 0), 0);
}
END_TEST

START_TEST(test_kind_source_untouched)
{
	struct copier c = { .kind = _i };
	uint8_t *copy;

	if (!supported_or_enotsup(_i))
		return;
	copy = malloc(BUF_SIZE);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, src_buf, BUF_SIZE);
	check_copy(&c, SVQ_COPY_AUTO_LARGE + 4097, 5, 9);
	check_copy(&c, 3 * SVQ_COPY_NT_MIN + 17, 63, 0);
	ck_assert_int_eq(memcmp(copy, src_buf, BUF_SIZE), 0);
	free(copy);
}
END_TEST

/* ---- every strategy, as on CPUs with fewer features ---- */

/* _i: a set of SVQ_CPU_* features. */
START_TEST(test_strategy_every_resolved_fn_matches_memcpy)
{
	unsigned int cpu = (unsigned int)_i;
	int kind;

	for (kind = 0; kind < SVQISO_NR_COPY; kind++) {
		struct copier c = { .fn = svq_copy_resolve_cpu(kind, cpu) };

		if (!c.fn)
			continue;
		check_every_small_size(&c);
		check_large_sizes(&c);
	}
}
END_TEST

START_TEST(test_strategy_needs_its_feature_null)
{
	unsigned int all = SVQ_CPU_ERMS | SVQ_CPU_NT;

	ck_assert_ptr_nonnull(svq_copy_resolve_cpu(SVQISO_COPY_MEMCPY, 0));
	ck_assert_ptr_nonnull(svq_copy_resolve_cpu(SVQISO_COPY_AUTO, 0));
	ck_assert_ptr_null(svq_copy_resolve_cpu(SVQISO_COPY_MOVSB, 0));
	ck_assert_ptr_null(svq_copy_resolve_cpu(SVQISO_COPY_MOVSB, SVQ_CPU_NT));
	ck_assert_ptr_null(svq_copy_resolve_cpu(SVQISO_COPY_NT, 0));
	ck_assert_ptr_null(svq_copy_resolve_cpu(SVQISO_COPY_NT, SVQ_CPU_ERMS));
#if defined(__x86_64__)
	ck_assert_ptr_nonnull(svq_copy_resolve_cpu(SVQISO_COPY_MOVSB, SVQ_CPU_ERMS));
	ck_assert_ptr_nonnull(svq_copy_resolve_cpu(SVQISO_COPY_NT, SVQ_CPU_NT));
#else
	ck_assert_ptr_null(svq_copy_resolve_cpu(SVQISO_COPY_MOVSB, all));
	ck_assert_ptr_null(svq_copy_resolve_cpu(SVQISO_COPY_NT, all));
#endif
	ck_assert_ptr_null(svq_copy_resolve_cpu(-1, all));
	ck_assert_ptr_null(svq_copy_resolve_cpu(SVQISO_NR_COPY, all));
}
END_TEST

START_TEST(test_strategy_auto_picks_by_features)
{
	svq_copy_fn mc = svq_copy_resolve_cpu(SVQISO_COPY_MEMCPY, 0);
	svq_copy_fn nt = svq_copy_resolve_cpu(SVQISO_COPY_AUTO, SVQ_CPU_NT);
	svq_copy_fn both = svq_copy_resolve_cpu(SVQISO_COPY_AUTO,
						SVQ_CPU_NT | SVQ_CPU_ERMS);
	svq_copy_fn erms = svq_copy_resolve_cpu(SVQISO_COPY_AUTO, SVQ_CPU_ERMS);

	/* Nothing to gain from: plain memcpy, not a size check on top. */
	ck_assert_ptr_eq(svq_copy_resolve_cpu(SVQISO_COPY_AUTO, 0), mc);
#if defined(__x86_64__)
	/* movsb first, then NT; both mean a size split above memcpy. */
	ck_assert_ptr_eq(erms, both);
	ck_assert_ptr_ne(nt, mc);
	ck_assert_ptr_ne(erms, mc);
	ck_assert_ptr_ne(erms, nt);
#else
	ck_assert_ptr_eq(nt, mc);
	ck_assert_ptr_eq(both, mc);
	ck_assert_ptr_eq(erms, mc);
#endif
}
END_TEST

START_TEST(test_strategy_resolve_is_stable)
{
	int kind;

	for (kind = 0; kind < SVQISO_NR_COPY; kind++) {
		ck_assert_ptr_eq(svq_copy_resolve(kind), svq_copy_resolve(kind));
		ck_assert_ptr_eq(svq_copy_resolve(kind),
				 svq_copy_resolve_cpu(kind, svq_copy_cpu()));
	}
	ck_assert_uint_eq(svq_copy_cpu(), svq_copy_cpu());
}
END_TEST

/* ---- kinds, names, errors ---- */

START_TEST(test_supported_follows_cpu)
{
	unsigned int cpu = svq_copy_cpu();

	ck_assert(svqiso_copy_supported(SVQISO_COPY_AUTO));
	ck_assert(svqiso_copy_supported(SVQISO_COPY_MEMCPY));
	ck_assert(svqiso_copy_supported(SVQISO_COPY_MOVSB) == !!(cpu & SVQ_CPU_ERMS));
	ck_assert(svqiso_copy_supported(SVQISO_COPY_NT) == !!(cpu & SVQ_CPU_NT));
#if defined(__x86_64__)
	/* SSE2 is part of x86-64. */
	ck_assert(svqiso_copy_supported(SVQISO_COPY_NT));
#else
	ck_assert_uint_eq(cpu, 0);
#endif
	ck_assert(!svqiso_copy_supported(-1));
	ck_assert(!svqiso_copy_supported(SVQISO_NR_COPY));
	printf("# cpu: erms %d nt %d\n", !!(cpu & SVQ_CPU_ERMS), !!(cpu & SVQ_CPU_NT));
	fflush(stdout);
}
END_TEST

/*
 * svqiso_copy() resolves its functions on first use: threads that all make
 * their first copy at once each get every kind right, and an unsupported
 * kind stays -ENOTSUP with nothing written.
 */
#define RACERS	4
#define RACE_LEN	1000

static pthread_barrier_t race_barrier;

static void *race_copies(void *arg)
{
	uintptr_t t = (uintptr_t)arg;
	uint8_t s[RACE_LEN], d[RACE_LEN];
	uintptr_t bad = 0;
	int kind, ret;
	size_t i;

	for (i = 0; i < RACE_LEN; i++)
		s[i] = (uint8_t)(i * 7 + t);
	pthread_barrier_wait(&race_barrier);
	for (kind = SVQISO_NR_COPY - 1; kind >= 0; kind--) {
		memset(d, GUARD_BYTE, sizeof(d));
		ret = svqiso_copy(kind, d, s, sizeof(s));
		if (ret == -ENOTSUP && !svq_copy_resolve(kind)) {
			for (i = 0; i < RACE_LEN; i++)
				bad += d[i] != GUARD_BYTE;
			continue;
		}
		if (ret || memcmp(d, s, sizeof(s)))
			bad++;
	}
	return (void *)bad;
}

START_TEST(test_first_use_racing_threads)
{
	pthread_t th[RACERS];
	uintptr_t t;
	void *bad;

	ck_assert_int_eq(pthread_barrier_init(&race_barrier, NULL, RACERS), 0);
	for (t = 0; t < RACERS; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, race_copies, (void *)t), 0);
	for (t = 0; t < RACERS; t++) {
		ck_assert_int_eq(pthread_join(th[t], &bad), 0);
		ck_assert_msg(bad == NULL, "thread %u: %lu wrong copies", (unsigned int)t,
			      (unsigned long)(uintptr_t)bad);
	}
	pthread_barrier_destroy(&race_barrier);
}
END_TEST

START_TEST(test_unknown_kind_einval)
{
	static const int bad[] = { -1, SVQISO_NR_COPY, 100, INT32_MIN, INT32_MAX };
	uint8_t d[16], s[16] = { 1 };
	unsigned int k, i;

	for (k = 0; k < SVQ_ARRAY_SIZE(bad); k++) {
		memset(d, GUARD_BYTE, sizeof(d));
		ck_assert_int_eq(svqiso_copy(bad[k], d, s, sizeof(s)), -EINVAL);
		for (i = 0; i < sizeof(d); i++)
			ck_assert_uint_eq(d[i], GUARD_BYTE);
		ck_assert_ptr_null(svq_copy_resolve(bad[k]));
		ck_assert(!svqiso_copy_supported(bad[k]));
	}
}
END_TEST

START_TEST(test_names_each_kind)
{
	ck_assert_str_eq(svqiso_copy_name(SVQISO_COPY_AUTO), "auto");
	ck_assert_str_eq(svqiso_copy_name(SVQISO_COPY_MEMCPY), "memcpy");
	ck_assert_str_eq(svqiso_copy_name(SVQISO_COPY_MOVSB), "movsb");
	ck_assert_str_eq(svqiso_copy_name(SVQISO_COPY_NT), "nt");
	ck_assert_str_eq(svqiso_copy_name(-1), "unknown");
	ck_assert_str_eq(svqiso_copy_name(SVQISO_NR_COPY), "unknown");
	ck_assert_str_eq(svqiso_copy_name(INT32_MIN), "unknown");
	ck_assert_str_eq(svqiso_copy_name(INT32_MAX), "unknown");
}
END_TEST

static Suite *copy_suite(void)
{
	Suite *s = suite_create("copy");
	TCase *tc;

	tc = tcase_create("kinds");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_kind_every_small_size_matches_memcpy, 0, SVQISO_NR_COPY);
	tcase_add_loop_test(tc, test_kind_every_misalignment_matches_memcpy, 0, SVQISO_NR_COPY);
	tcase_add_loop_test(tc, test_kind_large_sizes_match_memcpy, 0, SVQISO_NR_COPY);
	tcase_add_loop_test(tc, test_kind_zero_len_null_ok, 0, SVQISO_NR_COPY);
	tcase_add_loop_test(tc, test_kind_source_untouched, 0, SVQISO_NR_COPY);
	suite_add_tcase(s, tc);

	tc = tcase_create("strategies");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_strategy_every_resolved_fn_matches_memcpy, 0,
			    (SVQ_CPU_ERMS | SVQ_CPU_NT) + 1);
	tcase_add_test(tc, test_strategy_needs_its_feature_null);
	tcase_add_test(tc, test_strategy_auto_picks_by_features);
	tcase_add_test(tc, test_strategy_resolve_is_stable);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_add_test(tc, test_supported_follows_cpu);
	tcase_add_test(tc, test_unknown_kind_einval);
	tcase_add_test(tc, test_first_use_racing_threads);
	tcase_add_test(tc, test_names_each_kind);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(copy_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
