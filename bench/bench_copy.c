/* SPDX-License-Identifier: MIT */
/*
 * bench_copy: every usable copy strategy against plain libc memcpy.
 *
 * Sizes from 64 B to 4 MiB, in two regimes:
 *  - hot: the same small source and destination every time, so both stay
 *    in cache and the figure is the copy loop itself;
 *  - cold: each copy goes to a pseudo-random slot of a working set well past
 *    the last-level cache (two buffers of 128 MiB), so every copy misses.
 *
 * One measurement is a batch of copies lasting at least 20 ms (2 ms with
 * --quick); each strategy's figure is the median of 7 batches (1 with
 * --quick). The memcpy baseline is measured in the same repeat, right before
 * the strategies, so each ratio compares figures taken under the same
 * conditions.
 *
 * Output: copy.jsonl (one line per strategy, size and regime: gbps,
 * memcpy_gbps, ratio), copy.md, and copy-hot.dat / copy-cold.dat (size
 * against GB/s per strategy, for a plot).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <svqiso/svqiso.h>
#include <svqiso/copy.h>
#include "bench.h"

#define NR_SIZES	9		/* 64 B .. 4 MiB, powers of 4 */
#define MAX_REPEAT	7
#define NR_COLS		(SVQISO_NR_COPY + 1)	/* strategies, then libc */
#define COL_LIBC	SVQISO_NR_COPY

enum regime { HOT, COLD, NR_REGIMES };
static const char *const regime_name[NR_REGIMES] = { "hot", "cold" };

/* Keeps the compiler from inlining or eliding the baseline. */
static void *(*volatile libc_memcpy)(void *, const void *, size_t) = memcpy;

struct ctx {
	uint8_t *src, *dst;	/* hot: size bytes; cold: ws bytes each */
	size_t ws;
	uint64_t min_ns;
	unsigned int repeat;
	unsigned int errors;
};

static size_t slot_size(size_t len)
{
	return len < 4096 ? 4096 : len;
}

/* Run @n copies of @len with strategy @col; return the elapsed ns. */
static uint64_t run_batch(struct ctx *c, int col, enum regime rg, size_t len,
			  uint64_t n)
{
	size_t slot = slot_size(len), nslots = c->ws / slot, idx = 0, off = 0;
	uint64_t t0, i;

	t0 = bench_now_ns();
	for (i = 0; i < n; i++) {
		if (rg == COLD) {
			/* Full-period LCG over a power-of-two slot count. */
			idx = (idx * 5 + 12345) & (nslots - 1);
			off = idx * slot;
		}
		if (col == COL_LIBC)
			libc_memcpy(c->dst + off, c->src + off, len);
		else if (svqiso_copy(col, c->dst + off, c->src + off, len))
			c->errors++;
	}
	return bench_now_ns() - t0;
}

/* Copies per batch so that one batch lasts at least min_ns. */
static uint64_t calibrate(struct ctx *c, enum regime rg, size_t len)
{
	uint64_t n = 16, t;

	for (;;) {
		t = run_batch(c, COL_LIBC, rg, len, n);
		if (t >= c->min_ns)
			return n;
		if (t < c->min_ns / 16)
			n *= 8;
		else
			n = n * c->min_ns / (t ? t : 1) * 11 / 10 + 1;
	}
}

static double gbps(size_t len, uint64_t n, uint64_t ns)
{
	return ns ? (double)len * (double)n / (double)ns : 0;
}

/* Every strategy must give memcpy's bytes, at odd lengths and offsets too. */
static int check_strategies(void)
{
	static const size_t lens[] = { 1, 7, 63, 64, 65, 1000, 4097, 70001 };
	size_t max = 70001 + 64;
	uint8_t *a = malloc(max), *b = malloc(max), *r = malloc(max);
	unsigned int i, errors = 0;
	int k;

	if (!a || !b || !r) {
		free(a);
		free(b);
		free(r);
		return -ENOMEM;
	}
	for (i = 0; i < max; i++)
		a[i] = (uint8_t)(i * 131 + 7);
	for (k = 0; k < SVQISO_NR_COPY; k++) {
		if (!svqiso_copy_supported(k))
			continue;
		for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			memset(b, 0, max);
			memset(r, 0, max);
			memcpy(r + 3, a + 5, lens[i]);
			if (svqiso_copy(k, b + 3, a + 5, lens[i]) ||
			    memcmp(b, r, max)) {
				fprintf(stderr, "copy: %s differs from memcpy "
					"at %zu bytes\n", svqiso_copy_name(k), lens[i]);
				errors++;
			}
		}
	}
	free(a);
	free(b);
	free(r);
	return errors ? -EIO : 0;
}

static bool usable(int col)
{
	return col == COL_LIBC || svqiso_copy_supported(col);
}

static double ratio(double x, double base)
{
	return base > 0 ? x / base : 0;
}

static void fmt_size(char *buf, size_t n, size_t len)
{
	if (len >= 1 << 20)
		snprintf(buf, n, "%zu MiB", len >> 20);
	else if (len >= 1 << 10)
		snprintf(buf, n, "%zu KiB", len >> 10);
	else
		snprintf(buf, n, "%zu B", len);
}

int main(int argc, char **argv)
{
	/* [regime][size][col] medians */
	static double res[NR_REGIMES][NR_SIZES][NR_COLS];
	double v[NR_COLS][MAX_REPEAT];
	struct bench b;
	struct ctx c = { 0 };
	size_t sizes[NR_SIZES], buf_len;
	unsigned int s, r, nsizes = NR_SIZES;
	int rg, k, rc = 1;

	if (bench_init(&b, "copy", &argc, argv))
		return 1;
	if (argc > 1) {
		fprintf(stderr, "usage: bench_copy [--quick] [--out DIR]\n");
		goto out;
	}
	bench_pin(0);
	if (check_strategies())
		goto out;
	for (s = 0; s < NR_SIZES; s++)
		sizes[s] = (size_t)64 << (2 * s);
	c.ws = b.quick ? (16u << 20) : (128u << 20);
	c.min_ns = b.quick ? 2000000 : 20000000;
	c.repeat = b.quick ? 1 : MAX_REPEAT;
	if (b.quick)
		nsizes = 6;	/* up to 64 KiB */
	buf_len = c.ws;
	c.src = mmap(NULL, buf_len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	c.dst = mmap(NULL, buf_len, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c.src == MAP_FAILED || c.dst == MAP_FAILED) {
		fprintf(stderr, "copy: mmap: %s\n", strerror(errno));
		goto unmap;
	}
	/* Fault everything in before any timing. */
	memset(c.src, 0x5a, buf_len);
	memset(c.dst, 0xa5, buf_len);

	for (rg = 0; rg < NR_REGIMES; rg++) {
		for (s = 0; s < nsizes; s++) {
			size_t len = sizes[s];
			uint64_t n = calibrate(&c, rg, len);

			for (r = 0; r < c.repeat; r++)
				for (k = COL_LIBC; k >= 0; k--)
					if (usable(k))
						v[k][r] = gbps(len, n,
							run_batch(&c, k, rg, len, n));
			for (k = 0; k < NR_COLS; k++)
				res[rg][s][k] = usable(k) ?
					bench_median(v[k], c.repeat) : 0;
		}
	}
	if (c.errors) {
		fprintf(stderr, "copy: %u copies failed\n", c.errors);
		goto unmap;
	}

	/* JSON lines */
	for (rg = 0; rg < NR_REGIMES; rg++)
		for (s = 0; s < nsizes; s++)
			for (k = 0; k < SVQISO_NR_COPY; k++) {
				double g = res[rg][s][k], m = res[rg][s][COL_LIBC];

				if (!svqiso_copy_supported(k))
					continue;
				bench_json(&b, "\"figure\":\"copy\","
					   "\"strategy\":\"%s\",\"bytes\":%zu,"
					   "\"regime\":\"%s\",\"repeat\":%u,"
					   "\"gbps\":%.3f,\"memcpy_gbps\":%.3f,"
					   "\"ratio\":%.3f",
					   svqiso_copy_name(k), sizes[s], regime_name[rg],
					   c.repeat, g, m, ratio(g, m));
			}

	/* Tables for plots: size, libc memcpy, then each strategy. */
	for (rg = 0; rg < NR_REGIMES; rg++) {
		FILE *f = bench_dat(&b, regime_name[rg]);

		if (!f)
			goto unmap;
		fprintf(f, "# copy, %s regime: GB/s (median of %u)\n# bytes libc",
			regime_name[rg], c.repeat);
		for (k = 0; k < SVQISO_NR_COPY; k++)
			if (svqiso_copy_supported(k))
				fprintf(f, " %s", svqiso_copy_name(k));
		fputc('\n', f);
		for (s = 0; s < nsizes; s++) {
			fprintf(f, "%zu %.3f", sizes[s], res[rg][s][COL_LIBC]);
			for (k = 0; k < SVQISO_NR_COPY; k++)
				if (svqiso_copy_supported(k))
					fprintf(f, " %.3f", res[rg][s][k]);
			fputc('\n', f);
		}
		fclose(f);
	}

	/* Markdown */
	bench_md(&b, "## Copy strategies\n\n%s\n\n", b.machine_md);
	bench_md(&b, "GB/s, median of %u batches of at least %" PRIu64
		 " ms each; \"libc\" is a plain memcpy call measured in the same "
		 "repeat. Hot: one source and destination reused. Cold: random "
		 "slots of two %zu MiB buffers, so every copy misses the caches.\n\n",
		 c.repeat, c.min_ns / 1000000, c.ws >> 20);
	for (rg = 0; rg < NR_REGIMES; rg++) {
		bench_md(&b, "### %s\n\n| size | libc |", regime_name[rg]);
		for (k = 0; k < SVQISO_NR_COPY; k++)
			if (svqiso_copy_supported(k))
				bench_md(&b, " %s |", svqiso_copy_name(k));
		bench_md(&b, "\n|---:|---:|");
		for (k = 0; k < SVQISO_NR_COPY; k++)
			if (svqiso_copy_supported(k))
				bench_md(&b, "---:|");
		bench_md(&b, "\n");
		for (s = 0; s < nsizes; s++) {
			char sz[32];

			fmt_size(sz, sizeof(sz), sizes[s]);
			bench_md(&b, "| %s | %.2f |", sz, res[rg][s][COL_LIBC]);
			for (k = 0; k < SVQISO_NR_COPY; k++)
				if (svqiso_copy_supported(k))
					bench_md(&b, " %.2f (%.2fx) |", res[rg][s][k],
						 ratio(res[rg][s][k],
						       res[rg][s][COL_LIBC]));
			bench_md(&b, "\n");
		}
		bench_md(&b, "\n");
	}
	bench_md(&b, "### Target: best strategy at >= 64 KiB reaches >= 90%% of "
		 "memcpy or beats it\n\n");
	for (rg = 0; rg < NR_REGIMES; rg++)
		for (s = 0; s < nsizes; s++) {
			double best = 0, m = res[rg][s][COL_LIBC];
			int bk = SVQISO_COPY_MEMCPY;
			char sz[32];

			if (sizes[s] < 65536)
				continue;
			for (k = 0; k < SVQISO_NR_COPY; k++)
				if (svqiso_copy_supported(k) && res[rg][s][k] > best) {
					best = res[rg][s][k];
					bk = k;
				}
			fmt_size(sz, sizeof(sz), sizes[s]);
			bench_md(&b, "- %s %s: best %s %.2f GB/s = %.0f%% of "
				 "memcpy: %s\n", regime_name[rg], sz,
				 svqiso_copy_name(bk), best, 100 * ratio(best, m),
				 best >= 0.9 * m ? "PASS" : "MISS");
		}
	bench_md(&b, "\nBelow 4 KiB a copy takes tens of nanoseconds: there the "
		 "per-request overhead of the shadow virtqueue, not the copy, is "
		 "the figure that matters (see the svq benchmark).\n\n");
	rc = 0;
unmap:
	if (c.src && c.src != MAP_FAILED)
		munmap(c.src, buf_len);
	if (c.dst && c.dst != MAP_FAILED)
		munmap(c.dst, buf_len);
out:
	bench_fini(&b);
	return rc;
}
