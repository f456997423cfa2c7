/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the guest memory map. The input is a sequence of operations
 * (add, remove, replace all, lookup, translate) with their region sets and
 * ranges; every result is checked against a plain model of the map kept
 * here: which calls succeed and with which errno, and every translation,
 * segment by segment. Host addresses are never dereferenced, so regions may
 * claim any hva, near the top of the address space included.
 */
#include <errno.h>
#include <sys/uio.h>
#include <svqiso/mem.h>
#include "fuzz.h"

#define MAX_MODEL 64
#define MAX_IOV 8

struct model {
	struct svqiso_mem_region r[MAX_MODEL];	/* ascending gpa */
	unsigned int n;
	unsigned int max;
};

static uint64_t last_byte(uint64_t base, uint64_t size)
{
	return base + (size - 1);
}

/* What svqiso_mem_add_region() must return for @r, with room for @max. */
static int model_check(const struct model *m, const struct svqiso_mem_region *r,
		       unsigned int max)
{
	unsigned int i;

	if (!r->size || !r->hva)
		return -EINVAL;
	if (r->gpa + (r->size - 1) < r->gpa ||
	    (uintptr_t)r->hva + (r->size - 1) < (uintptr_t)r->hva)
		return -EOVERFLOW;
	for (i = 0; i < m->n; i++)
		if (r->gpa <= last_byte(m->r[i].gpa, m->r[i].size) &&
		    m->r[i].gpa <= last_byte(r->gpa, r->size))
			return -EEXIST;
	if (m->n >= max)
		return -ENOSPC;
	return 0;
}

static void model_insert(struct model *m, const struct svqiso_mem_region *r)
{
	unsigned int i = m->n;

	while (i > 0 && m->r[i - 1].gpa > r->gpa) {
		m->r[i] = m->r[i - 1];
		i--;
	}
	m->r[i] = *r;
	m->n++;
}

static const struct svqiso_mem_region *model_find(const struct model *m,
						  uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < m->n; i++)
		if (gpa >= m->r[i].gpa &&
		    gpa <= last_byte(m->r[i].gpa, m->r[i].size))
			return &m->r[i];
	return NULL;
}

/* Addresses that land near region edges, holes and the top of the space. */
static uint64_t pick_addr(struct fz *f, const struct model *m)
{
	uint8_t how = fz_u8(f);
	const struct svqiso_mem_region *r;

	if (m->n == 0 || (how & 3) == 0)
		return fz_u64(f);
	r = &m->r[fz_below(f, m->n)];
	switch ((how >> 2) & 3) {
	case 0:
		return r->gpa + (int8_t)fz_u8(f);
	case 1:
		return last_byte(r->gpa, r->size) + (int8_t)fz_u8(f);
	case 2:
		return r->gpa + fz_u64(f) % r->size;
	default:
		return UINT64_MAX - fz_u8(f);
	}
}

static void pick_region(struct fz *f, const struct model *m,
			struct svqiso_mem_region *r)
{
	uint8_t how = fz_u8(f);

	r->gpa = pick_addr(f, m);
	switch (how & 3) {
	case 0:
		r->size = fz_u8(f);
		break;
	case 1:
		r->size = (uint64_t)fz_u16(f) << 12;
		break;
	case 2:
		r->size = UINT64_MAX - r->gpa + 1 - fz_u8(f);
		break;
	default:
		r->size = fz_u64(f);
		break;
	}
	if (how & 4)
		r->hva = (void *)(uintptr_t)(UINT64_MAX - fz_u32(f));
	else
		r->hva = (void *)(uintptr_t)(fz_u64(f) & ~0xfffull);
	r->fd = -1;
	r->fd_offset = 0;
}

static void check_map(const struct svqiso_mem *mem, const struct model *m)
{
	struct svqiso_mem_region got;
	unsigned int i;

	FZ_CHECK(svqiso_mem_nr_regions(mem) == m->n, "%u regions, model %u",
		 svqiso_mem_nr_regions(mem), m->n);
	for (i = 0; i < m->n; i++) {
		FZ_CHECK(svqiso_mem_get_region(mem, i, &got) == 0, "region %u", i);
		FZ_CHECK(got.gpa == m->r[i].gpa && got.size == m->r[i].size &&
			 got.hva == m->r[i].hva, "region %u differs", i);
	}
	FZ_CHECK(svqiso_mem_get_region(mem, m->n, &got) == -ENOENT,
		 "region past the end");
}

static void check_lookup(const struct svqiso_mem *mem, const struct model *m,
			 uint64_t gpa, uint64_t want)
{
	const struct svqiso_mem_region *r = model_find(m, gpa);
	uint64_t len = want, room;
	void *hva = svqiso_mem_lookup(mem, gpa, &len);

	if (!r || !want) {
		FZ_CHECK(hva == NULL && len == want, "lookup %#llx found %p",
			 (unsigned long long)gpa, hva);
		return;
	}
	room = last_byte(r->gpa, r->size) - gpa + 1;	/* 0: all 2^64 */
	FZ_CHECK(hva == (uint8_t *)r->hva + (gpa - r->gpa),
		 "lookup %#llx: %p", (unsigned long long)gpa, hva);
	FZ_CHECK(len == (room && room < want ? room : want),
		 "lookup %#llx: len %llu", (unsigned long long)gpa,
		 (unsigned long long)len);
}

static void check_translate(const struct svqiso_mem *mem, const struct model *m,
			    uint64_t gpa, uint64_t len, unsigned int max_iov)
{
	struct iovec iov[MAX_IOV], want[MAX_IOV];
	unsigned int n = 0;
	int expect, ret;
	uint64_t at = gpa, left = len;

	if (!len) {
		expect = -EINVAL;
	} else if (gpa + (len - 1) < gpa) {
		expect = -EOVERFLOW;
	} else {
		expect = 0;
		while (left) {
			const struct svqiso_mem_region *r = model_find(m, at);
			uint64_t room, take;

			if (!r) {
				expect = -EFAULT;
				break;
			}
			room = last_byte(r->gpa, r->size) - at + 1;
			take = room && room < left ? room : left;
			if (n < MAX_IOV) {
				want[n].iov_base = (uint8_t *)r->hva + (at - r->gpa);
				want[n].iov_len = take;
			}
			n++;
			left -= take;
			at += take;
		}
		if (!expect && n > max_iov)
			expect = -ENOBUFS;
	}
	ret = svqiso_mem_translate(mem, gpa, len, iov, max_iov);
	FZ_CHECK(ret == (expect ? expect : (int)n),
		 "translate %#llx+%llu max %u: %d, model %d/%u",
		 (unsigned long long)gpa, (unsigned long long)len, max_iov,
		 ret, expect, n);
	for (unsigned int i = 0; ret > 0 && i < (unsigned int)ret; i++)
		FZ_CHECK(iov[i].iov_base == want[i].iov_base &&
			 iov[i].iov_len == want[i].iov_len,
			 "translate %#llx+%llu: segment %u",
			 (unsigned long long)gpa, (unsigned long long)len, i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct svqiso_mem_opts opts = { .sz = sizeof(opts) };
	struct svqiso_mem *mem;
	struct model m = { .n = 0 };
	struct fz f;
	unsigned int steps = 0;

	fz_init(&f, data, size);
	opts.max_regions = 1 + fz_below(&f, 16);
	m.max = opts.max_regions;
	FZ_CHECK(svqiso_mem_new(&opts, &mem) == 0, "mem_new");

	while (!fz_empty(&f) && steps++ < 256) {
		struct svqiso_mem_region r, set[MAX_MODEL];
		struct model next;
		unsigned int n, i;
		int expect, ret;

		switch (fz_u8(&f) % 6) {
		case 0:	/* add */
			pick_region(&f, &m, &r);
			expect = model_check(&m, &r, m.max);
			ret = svqiso_mem_add_region(mem, &r);
			FZ_CHECK(ret == expect, "add: %d, model %d", ret, expect);
			if (!ret)
				model_insert(&m, &r);
			break;
		case 1:	/* remove */
			r.gpa = pick_addr(&f, &m);
			expect = -ENOENT;
			for (i = 0; i < m.n; i++)
				if (m.r[i].gpa == r.gpa)
					expect = 0;
			ret = svqiso_mem_remove_region(mem, r.gpa);
			FZ_CHECK(ret == expect, "remove: %d, model %d", ret, expect);
			if (!ret) {
				for (i = 0; m.r[i].gpa != r.gpa; i++)
					;
				memmove(&m.r[i], &m.r[i + 1],
					(m.n - i - 1) * sizeof(m.r[0]));
				m.n--;
			}
			break;
		case 2:	/* replace all */
			n = fz_below(&f, 9);
			next.n = 0;
			next.max = MAX_MODEL;
			expect = 0;
			for (i = 0; i < n; i++) {
				pick_region(&f, &m, &set[i]);
				if (!expect) {
					expect = model_check(&next, &set[i], MAX_MODEL);
					if (!expect)
						model_insert(&next, &set[i]);
				}
			}
			ret = svqiso_mem_set_regions(mem, set, n);
			FZ_CHECK(ret == expect || (expect && ret < 0 &&
						   (ret == -EINVAL || ret == -EOVERFLOW ||
						    ret == -EEXIST)),
				 "set %u: %d, model %d", n, ret, expect);
			FZ_CHECK(!ret == !expect, "set %u: %d, model %d", n, ret, expect);
			if (!ret) {
				next.max = m.max > next.n ? m.max : next.n;
				m = next;
			}
			break;
		case 3:	/* lookup */
			r.gpa = pick_addr(&f, &m);
			check_lookup(mem, &m, r.gpa, fz_bool(&f) ? fz_u64(&f) :
				     fz_u16(&f));
			break;
		case 4:	/* translate */
			r.gpa = pick_addr(&f, &m);
			r.size = fz_bool(&f) ? fz_u64(&f) : fz_u32(&f);
			check_translate(mem, &m, r.gpa, r.size,
					fz_below(&f, MAX_IOV + 1));
			break;
		default:
			check_map(mem, &m);
			break;
		}
	}
	check_map(mem, &m);
	svqiso_mem_free(mem);
	return 0;
}
