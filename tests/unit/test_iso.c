/* SPDX-License-Identifier: MIT */
/*
 * Isolated memory (lib/iso.c): memfd regions, IOVA assignment, translation,
 * the region_add/region_del protocol and cleanup, down to the fd count.
 */
#define _GNU_SOURCE
#include <check.h>

#include "fds.h"
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iso.h"

#define MiB (1ull << 20)

static uint64_t page;

/* ---- what the callbacks saw ---- */

struct ev {
	char op;			/* 'a'dd or 'd'el */
	struct svqiso_region r;
	bool fd_open;
	bool translates;		/* through svqiso_iso_mem(), at call time */
	unsigned int nr_regions;	/* svqiso_iso_nr_regions() at call time */
	void *ctx;
};

static struct cb_rec {
	struct ev ev[1024];
	unsigned int n;
	int add_ret;			/* what region_add returns */
	struct svqiso_iso *iso;
} rec;

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

static bool mapped(const void *p)
{
	/* msync() fails with ENOMEM on an address that is not mapped. */
	return msync((void *)((uintptr_t)p & ~(page - 1)), page, MS_ASYNC) == 0;
}

static void record(char op, void *ctx, const struct svqiso_region *r)
{
	struct ev *e;
	uint64_t len = r->size;
	const volatile uint8_t *p = r->uaddr;

	ck_assert_uint_lt(rec.n, SVQ_ARRAY_SIZE(rec.ev));
	e = &rec.ev[rec.n++];
	e->op = op;
	e->r = *r;
	e->ctx = ctx;
	e->fd_open = fd_open(r->fd);
	e->translates = rec.iso &&
		svqiso_mem_lookup(svqiso_iso_mem(rec.iso), r->iova, &len) == r->uaddr &&
		len == r->size;
	e->nr_regions = svqiso_iso_nr_regions(rec.iso);
	/* Both ends readable: faults here if the mapping is not there yet. */
	(void)p[0];
	(void)p[r->size - 1];
}

static int cb_add(void *ctx, const struct svqiso_region *r)
{
	record('a', ctx, r);
	return rec.add_ret;
}

static int cb_del(void *ctx, const struct svqiso_region *r)
{
	record('d', ctx, r);
	/* Still ours to write until the callback returns. */
	((volatile uint8_t *)r->uaddr)[r->size - 1] = 0xdd;
	return -EIO;	/* ignored */
}

struct log_rec {
	unsigned int calls;
	char msg[256];
};

static void log_cb(void *ctx, int level, const char *msg)
{
	struct log_rec *l = ctx;

	(void)level;
	l->calls++;
	snprintf(l->msg, sizeof(l->msg), "%s", msg);
}

static struct svqiso_iso *iso;
static struct log_rec logs;

static struct svqiso_iso *iso_new_base(uint64_t base)
{
	SVQISO_OPTS(svqiso_iso_opts, o, .iova_base = base,
		    .region_add = cb_add, .region_del = cb_del,
		    .region_ctx = &rec, .log = log_cb, .log_ctx = &logs);
	struct svqiso_iso *i = NULL;

	ck_assert_int_eq(svqiso_iso_new(&o, &i), 0);
	ck_assert_ptr_nonnull(i);
	rec.iso = i;
	return i;
}

static void setup(void)
{
	page = (uint64_t)sysconf(_SC_PAGESIZE);
	memset(&rec, 0, sizeof(rec));
	memset(&logs, 0, sizeof(logs));
	iso = iso_new_base(0);
}

static void teardown(void)
{
	svqiso_iso_free(iso);
	iso = NULL;
}

static struct svqiso_region new_region(uint64_t size)
{
	struct svqiso_region r;

	ck_assert_int_eq(svqiso_iso_region_new(iso, size, &r), 0);
	return r;
}

static bool all_zero(const void *p, uint64_t len)
{
	const uint8_t *b = p;
	uint64_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static bool same_region(const struct svqiso_region *a, const struct svqiso_region *b)
{
	return a->iova == b->iova && a->size == b->size && a->uaddr == b->uaddr &&
	       a->fd == b->fd && a->fd_offset == b->fd_offset;
}

/* ---- regions ---- */

START_TEST(test_region_new_zeroed_page_rounded)
{
	static const uint64_t sizes[] = { 1, 4095, 4096, 4097, 2 * MiB + 1, 3 * MiB + 5 };
	unsigned int k;

	for (k = 0; k < SVQ_ARRAY_SIZE(sizes); k++) {
		struct svqiso_region r = new_region(sizes[k]);

		ck_assert_uint_ge(r.size, sizes[k]);
		ck_assert_uint_lt(r.size - sizes[k], page);
		ck_assert_uint_eq(r.size % page, 0);
		ck_assert_uint_eq((uintptr_t)r.uaddr % page, 0);
		ck_assert_uint_eq(r.fd_offset, 0);
		ck_assert(all_zero(r.uaddr, r.size));
	}
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), SVQ_ARRAY_SIZE(sizes));
}
END_TEST

START_TEST(test_region_fd_backs_mapping)
{
	struct svqiso_region r = new_region(3 * page);
	uint8_t *p = r.uaddr, buf[64];
	struct stat st;
	uint8_t *other;
	uint64_t i;

	for (i = 0; i < r.size; i++)
		p[i] = (uint8_t)(i * 13 + 7);
	/* What the backend reads through the fd... */
	ck_assert_int_eq(pread(r.fd, buf, sizeof(buf), (off_t)(r.size - sizeof(buf))),
			 (ssize_t)sizeof(buf));
	ck_assert_int_eq(memcmp(buf, p + r.size - sizeof(buf), sizeof(buf)), 0);
	/* ...and through a mapping of its own... */
	other = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd,
		     (off_t)r.fd_offset);
	ck_assert_ptr_ne(other, MAP_FAILED);
	ck_assert_int_eq(memcmp(other, p, r.size), 0);
	/* ...and what it writes, we see. */
	other[page + 5] = 0xa5;
	ck_assert_uint_eq(p[page + 5], 0xa5);
	memset(buf, 0x3c, sizeof(buf));
	ck_assert_int_eq(pwrite(r.fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	ck_assert_uint_eq(p[0], 0x3c);
	ck_assert_uint_eq(p[63], 0x3c);
	munmap(other, r.size);

	ck_assert_int_eq(fstat(r.fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, r.size);
}
END_TEST

START_TEST(test_region_fd_sealed_and_cloexec)
{
	struct svqiso_region r = new_region(page);
	int seals;

	seals = fcntl(r.fd, F_GET_SEALS);
	ck_assert_int_ge(seals, 0);
	ck_assert(seals & F_SEAL_SHRINK);
	ck_assert(seals & F_SEAL_GROW);
	ck_assert(seals & F_SEAL_SEAL);
	/* A backend holding the fd cannot pull the pages from under us. */
	ck_assert_int_eq(ftruncate(r.fd, 0), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(ftruncate(r.fd, (off_t)(2 * r.size)), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert_int_eq(fcntl(r.fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
	ck_assert_int_eq(errno, EPERM);
	ck_assert(fcntl(r.fd, F_GETFD) & FD_CLOEXEC);
	((volatile uint8_t *)r.uaddr)[r.size - 1] = 1;
}
END_TEST

START_TEST(test_region_name_prefix)
{
	SVQISO_OPTS(svqiso_iso_opts, o, .name = "blk0");
	struct svqiso_iso *named = NULL;
	struct svqiso_region r;
	char path[64], link[512], want[64], longname[300];

	r = new_region(page);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", r.fd);
	ck_assert_int_gt(readlink(path, link, sizeof(link) - 1), 0);
	snprintf(want, sizeof(want), "/memfd:svqiso-%" PRIx64, r.iova);
	ck_assert_int_eq(strncmp(link, want, strlen(want)), 0);

	ck_assert_int_eq(svqiso_iso_new(&o, &named), 0);
	ck_assert_int_eq(svqiso_iso_region_new(named, page, &r), 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", r.fd);
	memset(link, 0, sizeof(link));
	ck_assert_int_gt(readlink(path, link, sizeof(link) - 1), 0);
	snprintf(want, sizeof(want), "/memfd:blk0-%" PRIx64, r.iova);
	ck_assert_int_eq(strncmp(link, want, strlen(want)), 0);
	svqiso_iso_free(named);

	/* Past what memfd_create() takes: cut, not refused. */
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	o.name = longname;
	ck_assert_int_eq(svqiso_iso_new(&o, &named), 0);
	ck_assert_int_eq(svqiso_iso_region_new(named, page, &r), 0);
	svqiso_iso_free(named);
}
END_TEST

START_TEST(test_region_iova_distinct_aligned_ascending)
{
	static const uint64_t sizes[] = {
		1, 4096, 2 * MiB, 2 * MiB + 1, 5 * MiB, 4096, 7 * MiB + 3, 1,
	};
	struct svqiso_region r[SVQ_ARRAY_SIZE(sizes)], got;
	unsigned int k;

	for (k = 0; k < SVQ_ARRAY_SIZE(sizes); k++) {
		r[k] = new_region(sizes[k]);
		ck_assert_uint_eq(r[k].iova % (2 * MiB), 0);
		if (!k) {
			ck_assert_uint_eq(r[k].iova, SVQISO_ISO_DEFAULT_BASE);
			continue;
		}
		/* Ascending and disjoint, in both address spaces. */
		ck_assert_uint_ge(r[k].iova, r[k - 1].iova + r[k - 1].size);
		ck_assert_int_ne(r[k].fd, r[k - 1].fd);
	}
	for (k = 0; k < SVQ_ARRAY_SIZE(sizes); k++) {
		unsigned int j;

		for (j = 0; j < k; j++) {
			uintptr_t a = (uintptr_t)r[k].uaddr, b = (uintptr_t)r[j].uaddr;

			ck_assert(a + r[k].size <= b || b + r[j].size <= a);
		}
		ck_assert_int_eq(svqiso_iso_get_region(iso, k, &got), 0);
		ck_assert(same_region(&got, &r[k]));
	}
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), SVQ_ARRAY_SIZE(sizes));
}
END_TEST

START_TEST(test_region_iova_never_reused)
{
	struct svqiso_region a = new_region(page), b = new_region(page), c, d;

	ck_assert_int_eq(svqiso_iso_region_free(iso, a.iova), 0);
	c = new_region(page);
	ck_assert_uint_gt(c.iova, b.iova);
	ck_assert_int_eq(svqiso_iso_region_free(iso, b.iova), 0);
	ck_assert_int_eq(svqiso_iso_region_free(iso, c.iova), 0);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	/* Even with nothing live, the space goes on upwards. */
	d = new_region(page);
	ck_assert_uint_gt(d.iova, c.iova);
}
END_TEST

START_TEST(test_region_translate_iova_to_uaddr)
{
	const struct svqiso_mem_ops *ops = svqiso_mem_ops();
	struct svqiso_region a = new_region(page), b = new_region(3 * page);
	void *mctx = (void *)svqiso_iso_mem(iso);
	uint64_t len;

	ck_assert_ptr_nonnull(mctx);
	len = 1;
	ck_assert_ptr_eq(ops->translate(mctx, a.iova, &len), a.uaddr);
	len = UINT64_MAX;
	ck_assert_ptr_eq(ops->translate(mctx, b.iova + page + 3, &len),
			 (uint8_t *)b.uaddr + page + 3);
	ck_assert_uint_eq(len, 2 * page - 3);	/* clamped at the region end */
	len = 8;
	ck_assert_ptr_eq(ops->translate(mctx, b.iova + b.size - 1, &len),
			 (uint8_t *)b.uaddr + b.size - 1);
	ck_assert_uint_eq(len, 1);
	/* The rest of each 2 MiB slot, and below the base, are holes. */
	len = 1;
	ck_assert_ptr_null(ops->translate(mctx, a.iova + a.size, &len));
	ck_assert_ptr_null(ops->translate(mctx, b.iova + b.size, &len));
	ck_assert_ptr_null(ops->translate(mctx, a.iova - 1, &len));
	ck_assert_ptr_null(ops->translate(mctx, 0, &len));
	/* A removed region stops translating at once. */
	ck_assert_int_eq(svqiso_iso_region_free(iso, a.iova), 0);
	ck_assert_ptr_null(ops->translate(mctx, a.iova, &len));
	len = 1;
	ck_assert_ptr_eq(ops->translate(mctx, b.iova, &len), b.uaddr);
}
END_TEST

START_TEST(test_region_no_fd_leak_over_cycles)
{
	unsigned int before = mock_count_fds(), k;
	struct svqiso_region r[4];

	for (k = 0; k < 200; k++) {
		r[k % 4] = new_region(page * (k % 3 + 1));
		if (k % 4 == 3)
			for (unsigned int j = 0; j < 4; j++)
				ck_assert_int_eq(svqiso_iso_region_free(iso, r[j].iova), 0);
	}
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	ck_assert_uint_eq(mock_count_fds(), before);
}
END_TEST

/* ---- callbacks ---- */

START_TEST(test_callbacks_args_and_order)
{
	struct svqiso_region a = new_region(page), b = new_region(2 * page),
			     c = new_region(page);
	unsigned int k;

	ck_assert_uint_eq(rec.n, 3);
	ck_assert_int_eq(svqiso_iso_region_free(iso, b.iova), 0);
	ck_assert_uint_eq(rec.n, 4);
	/* Gone once region_free returns: fd closed, mapping removed. */
	ck_assert(!fd_open(b.fd));
	ck_assert(!mapped(b.uaddr));
	svqiso_iso_free(iso);
	iso = NULL;
	ck_assert(!fd_open(a.fd) && !fd_open(c.fd));
	ck_assert(!mapped(a.uaddr) && !mapped(c.uaddr));

	/* Adds in creation order; the iso frees newest first. */
	ck_assert_uint_eq(rec.n, 6);
	ck_assert(rec.ev[0].op == 'a' && same_region(&rec.ev[0].r, &a));
	ck_assert(rec.ev[1].op == 'a' && same_region(&rec.ev[1].r, &b));
	ck_assert(rec.ev[2].op == 'a' && same_region(&rec.ev[2].r, &c));
	ck_assert(rec.ev[3].op == 'd' && same_region(&rec.ev[3].r, &b));
	ck_assert(rec.ev[4].op == 'd' && same_region(&rec.ev[4].r, &c));
	ck_assert(rec.ev[5].op == 'd' && same_region(&rec.ev[5].r, &a));
	for (k = 0; k < rec.n; k++) {
		/* Mapped (record() read both ends), fd open and translating:
		 * on add before first use, on del before the unmap. */
		ck_assert_ptr_eq(rec.ev[k].ctx, &rec);
		ck_assert(rec.ev[k].fd_open);
		ck_assert(rec.ev[k].translates);
	}
	ck_assert_uint_eq(rec.ev[0].nr_regions, 1);
	ck_assert_uint_eq(rec.ev[2].nr_regions, 3);
	ck_assert_uint_eq(rec.ev[3].nr_regions, 3);
	ck_assert_uint_eq(rec.ev[5].nr_regions, 1);
}
END_TEST

START_TEST(test_callbacks_add_refused_undone)
{
	unsigned int before = mock_count_fds();
	struct svqiso_region r, good, poison;

	memset(&poison, 0xee, sizeof(poison));
	r = poison;
	rec.add_ret = -EDQUOT;
	ck_assert_int_eq(svqiso_iso_region_new(iso, 5 * page, &r), -EDQUOT);
	ck_assert_int_eq(memcmp(&r, &poison, sizeof(r)), 0);
	ck_assert_uint_eq(rec.n, 1);
	ck_assert_uint_eq(rec.ev[0].nr_regions, 1);	/* visible while asked */
	/* Nothing left: not in the table, not mapped, no fd, and no del. */
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	ck_assert(!mapped(rec.ev[0].r.uaddr));
	ck_assert(!fd_open(rec.ev[0].r.fd));
	ck_assert_uint_eq(mock_count_fds(), before);
	ck_assert_uint_eq(logs.calls, 1);
	ck_assert_ptr_nonnull(strstr(logs.msg, "region_add"));

	/* The refused IOVA may have reached the backend: not handed out again. */
	rec.add_ret = 0;
	good = new_region(page);
	ck_assert_uint_gt(good.iova, rec.ev[0].r.iova);
	ck_assert_uint_eq(rec.n, 2);
	ck_assert_int_eq(svqiso_iso_region_free(iso, good.iova), 0);
	ck_assert_uint_eq(rec.n, 3);
	ck_assert_uint_eq(mock_count_fds(), before);
}
END_TEST

START_TEST(test_callbacks_positive_return_accepts)
{
	struct svqiso_region r;

	rec.add_ret = 1;
	ck_assert_int_eq(svqiso_iso_region_new(iso, page, &r), 0);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 1);
}
END_TEST

START_TEST(test_callbacks_none_ok)
{
	struct svqiso_iso *quiet = NULL;
	struct svqiso_region r;
	unsigned int before = mock_count_fds();

	ck_assert_int_eq(svqiso_iso_new(NULL, &quiet), 0);
	ck_assert_int_eq(svqiso_iso_region_new(quiet, page, &r), 0);
	ck_assert_int_eq(svqiso_iso_region_new(quiet, page, &r), 0);
	ck_assert_int_eq(svqiso_iso_region_free(quiet, r.iova), 0);
	svqiso_iso_free(quiet);
	ck_assert_uint_eq(mock_count_fds(), before);
	ck_assert_uint_eq(rec.n, 0);
}
END_TEST

START_TEST(test_callbacks_free_removes_all)
{
	unsigned int before = mock_count_fds(), k;

	for (k = 0; k < 10; k++)
		new_region(page);
	ck_assert_uint_eq(mock_count_fds(), before + 10);
	svqiso_iso_free(iso);
	iso = NULL;
	ck_assert_uint_eq(rec.n, 20);
	for (k = 10; k < 20; k++)
		ck_assert_int_eq(rec.ev[k].op, 'd');
	ck_assert_uint_eq(mock_count_fds(), before);
}
END_TEST

/* ---- errors ---- */

START_TEST(test_region_free_unknown_enoent)
{
	struct svqiso_region r = new_region(2 * page);

	ck_assert_int_eq(svqiso_iso_region_free(iso, 0), -ENOENT);
	ck_assert_int_eq(svqiso_iso_region_free(iso, r.iova + page), -ENOENT);
	ck_assert_int_eq(svqiso_iso_region_free(iso, r.iova + 2 * MiB), -ENOENT);
	ck_assert_int_eq(svqiso_iso_region_free(iso, r.iova - 1), -ENOENT);
	ck_assert_int_eq(svqiso_iso_region_free(NULL, r.iova), -EINVAL);
	ck_assert_uint_eq(rec.n, 1);	/* no del for any of those */
	ck_assert_int_eq(svqiso_iso_region_free(iso, r.iova), 0);
	ck_assert_int_eq(svqiso_iso_region_free(iso, r.iova), -ENOENT);
	ck_assert_uint_eq(rec.n, 2);
}
END_TEST

START_TEST(test_region_new_bad_args_einval)
{
	struct svqiso_region r;

	ck_assert_int_eq(svqiso_iso_region_new(iso, 0, &r), -EINVAL);
	ck_assert_int_eq(svqiso_iso_region_new(iso, UINT64_MAX, &r), -EINVAL);
	ck_assert_int_eq(svqiso_iso_region_new(iso, SVQ_ISO_MAX_SIZE + 1, &r), -EINVAL);
	ck_assert_int_eq(svqiso_iso_region_new(iso, (uint64_t)INT64_MAX + 1, &r), -EINVAL);
	ck_assert_int_eq(svqiso_iso_region_new(NULL, page, &r), -EINVAL);
	ck_assert_int_eq(svqiso_iso_region_new(iso, page, NULL), -EINVAL);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	ck_assert_uint_eq(rec.n, 0);
}
END_TEST

START_TEST(test_get_region_bad_index_enoent)
{
	struct svqiso_region r = new_region(page), got;

	ck_assert_int_eq(svqiso_iso_get_region(iso, 0, &got), 0);
	ck_assert(same_region(&got, &r));
	ck_assert_int_eq(svqiso_iso_get_region(iso, 1, &got), -ENOENT);
	ck_assert_int_eq(svqiso_iso_get_region(iso, UINT32_MAX, &got), -ENOENT);
	ck_assert_int_eq(svqiso_iso_get_region(NULL, 0, &got), -EINVAL);
	ck_assert_int_eq(svqiso_iso_get_region(iso, 0, NULL), -EINVAL);
	ck_assert_uint_eq(svqiso_iso_nr_regions(NULL), 0);
	ck_assert_ptr_null(svqiso_iso_mem(NULL));
	svqiso_iso_free(NULL);
}
END_TEST

START_TEST(test_region_out_of_fds_emfile)
{
	unsigned int before = mock_count_fds(), ndup = 0, k;
	struct rlimit old, low;
	struct svqiso_region r;
	int dups[4096], fd;

	/* Forked (CK_FORK): the lowered limit dies with this test. Take every
	 * free fd number below a limit just above the highest one in use. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)mock_max_fd() + 1;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while ((fd = dup(0)) >= 0) {
		ck_assert_uint_lt(ndup, SVQ_ARRAY_SIZE(dups));
		dups[ndup++] = fd;
	}
	ck_assert_int_eq(errno, EMFILE);

	ck_assert_int_eq(svqiso_iso_region_new(iso, page, &r), -EMFILE);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
	ck_assert_uint_eq(rec.n, 0);
	ck_assert_uint_eq(logs.calls, 1);
	ck_assert_ptr_nonnull(strstr(logs.msg, "memfd_create"));

	for (k = 0; k < ndup; k++)
		close(dups[k]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_uint_eq(mock_count_fds(), before);
	new_region(page);
}
END_TEST

START_TEST(test_iova_space_exhausted_enospc)
{
	struct svqiso_iso *top;
	struct svqiso_region r;

	svqiso_iso_free(iso);
	/* Room for two 2 MiB slots below the top (the last one stays unused). */
	top = iso = iso_new_base(UINT64_MAX - 6 * MiB + 1);
	ck_assert_int_eq(svqiso_iso_region_new(top, page, &r), 0);
	ck_assert_uint_eq(r.iova, UINT64_MAX - 6 * MiB + 1);
	ck_assert_int_eq(svqiso_iso_region_new(top, page, &r), 0);
	ck_assert_int_eq(svqiso_iso_region_new(top, page, &r), -ENOSPC);
	ck_assert_uint_eq(logs.calls, 1);
	ck_assert_ptr_nonnull(strstr(logs.msg, "exhausted"));
	/* Freeing does not give IOVA back. */
	ck_assert_int_eq(svqiso_iso_region_free(top, r.iova), 0);
	ck_assert_int_eq(svqiso_iso_region_new(top, page, &r), -ENOSPC);
	/* A region that would need more than what is left. */
	svqiso_iso_free(top);
	top = iso = iso_new_base(UINT64_MAX - 4 * MiB + 1);
	ck_assert_int_eq(svqiso_iso_region_new(top, 2 * MiB + 1, &r), -ENOSPC);
	ck_assert_int_eq(svqiso_iso_region_new(top, 2 * MiB, &r), 0);
}
END_TEST

/* ---- opts ---- */

START_TEST(test_opts_iova_base)
{
	struct svqiso_iso *i = NULL;
	struct svqiso_region r;
	SVQISO_OPTS(svqiso_iso_opts, o, .iova_base = 0x1000);

	/* Rounded up to the next 2 MiB boundary. */
	ck_assert_int_eq(svqiso_iso_new(&o, &i), 0);
	ck_assert_int_eq(svqiso_iso_region_new(i, page, &r), 0);
	ck_assert_uint_eq(r.iova, 2 * MiB);
	svqiso_iso_free(i);

	o.iova_base = 0x40000000;
	ck_assert_int_eq(svqiso_iso_new(&o, &i), 0);
	ck_assert_int_eq(svqiso_iso_region_new(i, page, &r), 0);
	ck_assert_uint_eq(r.iova, 0x40000000);
	svqiso_iso_free(i);

	/* Rounding would wrap. */
	i = NULL;
	o.iova_base = UINT64_MAX;
	ck_assert_int_eq(svqiso_iso_new(&o, &i), -EINVAL);
	o.iova_base = UINT64_MAX - 2 * MiB + 2;
	ck_assert_int_eq(svqiso_iso_new(&o, &i), -EINVAL);
	ck_assert_ptr_null(i);
}
END_TEST

START_TEST(test_opts_null_defaults)
{
	struct svqiso_iso *i = NULL;
	struct svqiso_region r;

	ck_assert_int_eq(svqiso_iso_new(NULL, &i), 0);
	ck_assert_int_eq(svqiso_iso_region_new(i, page, &r), 0);
	ck_assert_uint_eq(r.iova, SVQISO_ISO_DEFAULT_BASE);
	svqiso_iso_free(i);
	ck_assert_int_eq(svqiso_iso_new(NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_opts_bad_size_einval)
{
	SVQISO_OPTS(svqiso_iso_opts, o);
	struct svqiso_iso *i = NULL;

	o.sz = 0;
	ck_assert_int_eq(svqiso_iso_new(&o, &i), -EINVAL);
	o.sz = sizeof(size_t) - 1;
	ck_assert_int_eq(svqiso_iso_new(&o, &i), -EINVAL);
	ck_assert_ptr_null(i);
}
END_TEST

START_TEST(test_opts_unknown_nonzero_einval)
{
	struct newer {
		struct svqiso_iso_opts o;
		uint64_t future;
	} n;
	struct svqiso_iso *i = NULL;

	memset(&n, 0, sizeof(n));
	n.o.sz = sizeof(n);
	n.future = 1;
	ck_assert_int_eq(svqiso_iso_new(&n.o, &i), -EINVAL);
	ck_assert_ptr_null(i);
	n.future = 0;
	ck_assert_int_eq(svqiso_iso_new(&n.o, &i), 0);
	svqiso_iso_free(i);
}
END_TEST

static int cb_must_not_run(void *ctx, const struct svqiso_region *r)
{
	(void)ctx;
	(void)r;
	ck_abort_msg("callback past the caller's sz was called");
	return -EIO;
}

START_TEST(test_opts_older_caller_fields_ignored)
{
	SVQISO_OPTS(svqiso_iso_opts, o, .iova_base = 0x40000000,
		    .region_add = cb_must_not_run, .region_del = cb_must_not_run,
		    .name = "not-seen");
	struct svqiso_iso *i = NULL;
	struct svqiso_region r;
	char path[64], link[256] = { 0 };

	/* An older caller knew nothing past iova_base. */
	o.sz = svq_offsetofend(svqiso_iso_opts, iova_base);
	ck_assert_int_eq(svqiso_iso_new(&o, &i), 0);
	ck_assert_int_eq(svqiso_iso_region_new(i, page, &r), 0);
	ck_assert_uint_eq(r.iova, 0x40000000);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", r.fd);
	ck_assert_int_gt(readlink(path, link, sizeof(link) - 1), 0);
	ck_assert_ptr_nonnull(strstr(link, "svqiso-"));
	ck_assert_int_eq(svqiso_iso_region_free(i, r.iova), 0);
	svqiso_iso_free(i);
}
END_TEST


/* ---- threads ---- */

#define T_THREADS	4
#define T_ROUNDS	150

/* What the concurrent callbacks saw: counted under the iso's lock. */
static struct {
	unsigned int adds, dels, live, most;
	unsigned int nested_bad;	/* a read inside a callback disagreed */
	struct svqiso_iso *iso;
} T;

static int t_add(void *ctx, const struct svqiso_region *r)
{
	struct svqiso_region got;
	unsigned int n = svqiso_iso_nr_regions(T.iso), i;
	bool found = false;

	(void)ctx;
	/* A callback may read the regions: the new one is among them. */
	for (i = 0; i < n; i++)
		if (!svqiso_iso_get_region(T.iso, i, &got) && got.iova == r->iova)
			found = true;
	if (!found || n != T.live + 1)
		T.nested_bad++;
	T.adds++;
	T.live++;
	if (T.live > T.most)
		T.most = T.live;
	return 0;
}

static int t_del(void *ctx, const struct svqiso_region *r)
{
	(void)ctx;
	(void)r;
	if (svqiso_iso_nr_regions(T.iso) != T.live)
		T.nested_bad++;
	T.dels++;
	T.live--;
	return 0;
}

static void *t_churn(void *arg)
{
	struct svqiso_iso *i = arg;
	struct svqiso_region r[3];
	unsigned int k, j;

	for (k = 0; k < T_ROUNDS; k++) {
		for (j = 0; j < 3; j++)
			if (svqiso_iso_region_new(i, (j + 1) * page, &r[j]))
				return (void *)1;
		for (j = 0; j < 3; j++) {
			/* Ours, whole, and no other thread's. */
			memset(r[j].uaddr, (int)(k + j), r[j].size);
			if (((uint8_t *)r[j].uaddr)[r[j].size - 1] != (uint8_t)(k + j))
				return (void *)1;
		}
		for (j = 0; j < 3; j++)
			if (svqiso_iso_region_free(i, r[j].iova))
				return (void *)1;
	}
	return NULL;
}

/*
 * The shadow virtqueues of one device make and drop one-off regions from
 * their own threads: region_new and region_free from several threads at
 * once keep the table whole (every free finds its region), IOVAs distinct,
 * and the callbacks one at a time, each able to read the table.
 */
START_TEST(test_regions_from_several_threads)
{
	SVQISO_OPTS(svqiso_iso_opts, o, .region_add = t_add, .region_del = t_del);
	struct svqiso_iso *i;
	pthread_t t[T_THREADS];
	unsigned int k;
	void *ret;

	page = (uint64_t)sysconf(_SC_PAGESIZE);
	memset(&T, 0, sizeof(T));
	ck_assert_int_eq(svqiso_iso_new(&o, &i), 0);
	T.iso = i;
	for (k = 0; k < T_THREADS; k++)
		ck_assert_int_eq(pthread_create(&t[k], NULL, t_churn, i), 0);
	for (k = 0; k < T_THREADS; k++) {
		ck_assert_int_eq(pthread_join(t[k], &ret), 0);
		ck_assert_ptr_null(ret);
	}
	ck_assert_uint_eq(svqiso_iso_nr_regions(i), 0);
	ck_assert_uint_eq(T.adds, T_THREADS * T_ROUNDS * 3);
	ck_assert_uint_eq(T.dels, T.adds);
	ck_assert_uint_eq(T.nested_bad, 0);
	ck_assert_uint_le(T.most, T_THREADS * 3);
	svqiso_iso_free(i);
}
END_TEST

static Suite *iso_suite(void)
{
	Suite *s = suite_create("iso");
	TCase *tc;

	tc = tcase_create("region");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_region_new_zeroed_page_rounded);
	tcase_add_test(tc, test_region_fd_backs_mapping);
	tcase_add_test(tc, test_region_fd_sealed_and_cloexec);
	tcase_add_test(tc, test_region_name_prefix);
	tcase_add_test(tc, test_region_iova_distinct_aligned_ascending);
	tcase_add_test(tc, test_region_iova_never_reused);
	tcase_add_test(tc, test_region_translate_iova_to_uaddr);
	tcase_add_test(tc, test_region_no_fd_leak_over_cycles);
	suite_add_tcase(s, tc);

	tc = tcase_create("callbacks");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_callbacks_args_and_order);
	tcase_add_test(tc, test_callbacks_add_refused_undone);
	tcase_add_test(tc, test_callbacks_positive_return_accepts);
	tcase_add_test(tc, test_callbacks_none_ok);
	tcase_add_test(tc, test_callbacks_free_removes_all);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_regions_from_several_threads);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_region_free_unknown_enoent);
	tcase_add_test(tc, test_region_new_bad_args_einval);
	tcase_add_test(tc, test_get_region_bad_index_enoent);
	tcase_add_test(tc, test_region_out_of_fds_emfile);
	tcase_add_test(tc, test_iova_space_exhausted_enospc);
	suite_add_tcase(s, tc);

	tc = tcase_create("opts");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_opts_iova_base);
	tcase_add_test(tc, test_opts_null_defaults);
	tcase_add_test(tc, test_opts_bad_size_einval);
	tcase_add_test(tc, test_opts_unknown_nonzero_einval);
	tcase_add_test(tc, test_opts_older_caller_fields_ignored);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(iso_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
