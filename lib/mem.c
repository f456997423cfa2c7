/* SPDX-License-Identifier: MIT */
/*
 * Guest memory map: a sorted array of disjoint regions, searched by binary
 * search. The array is sized once in svqiso_mem_new(), so adding a region
 * never allocates and a failed add leaves the map as it was.
 *
 * A region may end at the very top of the address space: [gpa, gpa + size)
 * is valid as long as its last byte, gpa + size - 1, does not wrap. The same
 * holds for ranges passed to svqiso_mem_translate().
 */
#include <inttypes.h>
#include <stdlib.h>

#include "mem_priv.h"

#if defined(__LP64__)
_Static_assert(sizeof(struct svqiso_mem_opts) == 32, "svqiso_mem_opts is append-only");
_Static_assert(sizeof(struct svqiso_mem_ops) == 16, "svqiso_mem_ops is append-only");
_Static_assert(sizeof(struct svqiso_mem_region) == 40, "svqiso_mem_region is ABI");
#endif

/* Whether [base, base + size) wraps; @size >= 1. */
static bool range_wraps(uint64_t base, uint64_t size, uint64_t top)
{
	return size - 1 > top - base;
}

/* Index of the first region whose gpa is above @gpa, in 0..nr. */
static unsigned int upper_bound(const struct svqiso_mem *mem, uint64_t gpa)
{
	unsigned int lo = 0, hi = mem->nr;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (mem->regions[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the region holding @gpa, or -1. */
static int find(const struct svqiso_mem *mem, uint64_t gpa)
{
	unsigned int i = upper_bound(mem, gpa);
	const struct svqiso_mem_region *r;

	if (!i)
		return -1;
	r = &mem->regions[i - 1];
	return gpa - r->gpa < r->size ? (int)i - 1 : -1;
}

static void *region_hva(const struct svqiso_mem_region *r, uint64_t off)
{
	return (void *)((uintptr_t)r->hva + off);
}

int svqiso_mem_new(const struct svqiso_mem_opts *opts, struct svqiso_mem **out)
{
	struct svqiso_mem *mem;
	uint32_t max;

	if (!out || !SVQ_OPTS_OK(svqiso_mem_opts, opts))
		return -EINVAL;
	max = SVQ_OPTS_GET(opts, max_regions, 0);
	if (!max)
		max = SVQISO_MEM_DEFAULT_REGIONS;
	if (max > SVQISO_MEM_MAX_REGIONS)
		return -EINVAL;

	mem = calloc(1, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	mem->regions = calloc(max, sizeof(*mem->regions));
	if (!mem->regions) {
		free(mem);
		return -ENOMEM;
	}
	mem->max = max;
	mem->gen = 1;
	mem->log = SVQ_OPTS_GET(opts, log, NULL);
	mem->log_ctx = SVQ_OPTS_GET(opts, log_ctx, NULL);
	*out = mem;
	return 0;
}

void svqiso_mem_free(struct svqiso_mem *mem)
{
	if (!mem)
		return;
	free(mem->regions);
	free(mem);
}

int svqiso_mem_add_region(struct svqiso_mem *mem,
			  const struct svqiso_mem_region *region)
{
	const struct svqiso_mem_region *r = region, *o;
	unsigned int i;

	if (!mem || !r || !r->hva || !r->size)
		return -EINVAL;
	if (range_wraps(r->gpa, r->size, UINT64_MAX) ||
	    range_wraps((uintptr_t)r->hva, r->size, UINTPTR_MAX)) {
		svq_log(mem->log, mem->log_ctx, SVQISO_LOG_WARN,
			"mem: region gpa 0x%" PRIx64 " size 0x%" PRIx64 " wraps",
			r->gpa, r->size);
		return -EOVERFLOW;
	}

	i = upper_bound(mem, r->gpa);
	/* Disjoint and sorted: only the neighbours can overlap. */
	o = NULL;
	if (i && r->gpa - mem->regions[i - 1].gpa < mem->regions[i - 1].size)
		o = &mem->regions[i - 1];
	else if (i < mem->nr && mem->regions[i].gpa - r->gpa < r->size)
		o = &mem->regions[i];
	if (o) {
		svq_log(mem->log, mem->log_ctx, SVQISO_LOG_WARN,
			"mem: region gpa 0x%" PRIx64 " size 0x%" PRIx64
			" overlaps gpa 0x%" PRIx64 " size 0x%" PRIx64,
			r->gpa, r->size, o->gpa, o->size);
		return -EEXIST;
	}
	if (mem->nr == mem->max) {
		svq_log(mem->log, mem->log_ctx, SVQISO_LOG_WARN,
			"mem: region gpa 0x%" PRIx64 ": all %u slots in use",
			r->gpa, mem->max);
		return -ENOSPC;
	}

	memmove(&mem->regions[i + 1], &mem->regions[i],
		(mem->nr - i) * sizeof(*mem->regions));
	mem->regions[i] = *r;
	mem->nr++;
	mem->gen++;
	return 0;
}

int svqiso_mem_remove_region(struct svqiso_mem *mem, uint64_t gpa)
{
	unsigned int i;

	if (!mem)
		return -EINVAL;
	i = upper_bound(mem, gpa);
	if (!i || mem->regions[i - 1].gpa != gpa)
		return -ENOENT;
	memmove(&mem->regions[i - 1], &mem->regions[i],
		(mem->nr - i) * sizeof(*mem->regions));
	mem->nr--;
	mem->gen++;
	return 0;
}

int svqiso_mem_set_regions(struct svqiso_mem *mem,
			   const struct svqiso_mem_region *regions,
			   unsigned int n)
{
	struct svqiso_mem tmp = { .log = NULL };
	struct svqiso_mem_region *swap;
	unsigned int i;
	int rc;

	if (!mem || (n && !regions))
		return -EINVAL;
	if (n > SVQISO_MEM_MAX_REGIONS)
		return -E2BIG;
	/* Built aside with the same rules as one add at a time; the map
	 * changes only once all of it is good. */
	tmp.max = n > mem->max ? n : mem->max;
	tmp.gen = 1;
	tmp.log = mem->log;
	tmp.log_ctx = mem->log_ctx;
	tmp.regions = calloc(tmp.max, sizeof(*tmp.regions));
	if (!tmp.regions)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		rc = svqiso_mem_add_region(&tmp, &regions[i]);
		if (rc) {
			free(tmp.regions);
			return rc;
		}
	}
	swap = mem->regions;
	mem->regions = tmp.regions;
	mem->nr = tmp.nr;
	mem->max = tmp.max;
	/* Every translation cache made before is stale. */
	mem->gen++;
	free(swap);
	return 0;
}

unsigned int svqiso_mem_nr_regions(const struct svqiso_mem *mem)
{
	return mem ? mem->nr : 0;
}

int svqiso_mem_get_region(const struct svqiso_mem *mem, unsigned int i,
			  struct svqiso_mem_region *out)
{
	if (!mem || !out)
		return -EINVAL;
	if (i >= mem->nr)
		return -ENOENT;
	*out = mem->regions[i];
	return 0;
}

void *svqiso_mem_lookup(const struct svqiso_mem *mem, uint64_t gpa,
			uint64_t *len)
{
	struct svq_mem_hint h;

	if (!mem || !len || !*len)
		return NULL;
	return svq_mem_lookup_miss(mem, gpa, len, &h);
}

void *svq_mem_lookup_miss(const struct svqiso_mem *mem, uint64_t gpa,
			  uint64_t *len, struct svq_mem_hint *h)
{
	const struct svqiso_mem_region *r;
	uint64_t off;
	int i;

	i = find(mem, gpa);
	if (i < 0)
		return NULL;
	r = &mem->regions[i];
	*h = (struct svq_mem_hint){ .gpa = r->gpa, .size = r->size,
				    .hva = (uintptr_t)r->hva, .gen = mem->gen };
	off = gpa - r->gpa;
	if (*len > r->size - off)
		*len = r->size - off;
	return region_hva(r, off);
}

int svqiso_mem_translate(const struct svqiso_mem *mem, uint64_t gpa,
			 uint64_t len, struct iovec *iov, unsigned int max_iov)
{
	const struct svqiso_mem_region *r;
	unsigned int n;
	uint64_t off;
	int i;

	if (!mem || !len || (!iov && max_iov))
		return -EINVAL;
	if (range_wraps(gpa, len, UINT64_MAX))
		return -EOVERFLOW;
	i = find(mem, gpa);
	if (i < 0)
		return -EFAULT;
	r = &mem->regions[i];
	off = gpa - r->gpa;

	/*
	 * Past max_iov keep walking without storing, so that a hole reports
	 * -EFAULT rather than a -ENOBUFS that no bigger iov would cure. The walk
	 * is bounded by the number of regions.
	 */
	for (n = 0;; n++) {
		uint64_t seg = r->size - off;

		if (seg > len)
			seg = len;
		if (n < max_iov) {
			iov[n].iov_base = region_hva(r, off);
			iov[n].iov_len = seg;
		}
		len -= seg;
		if (!len)
			break;
		/* The range goes on past r, so r ends below 2^64. */
		if ((unsigned int)++i == mem->nr ||
		    mem->regions[i].gpa != r->gpa + r->size)
			return -EFAULT;
		r = &mem->regions[i];
		off = 0;
	}
	return n < max_iov ? (int)n + 1 : -ENOBUFS;
}

void *svq_mem_ops_translate(void *ctx, uint64_t addr, uint64_t *len)
{
	return svqiso_mem_lookup(ctx, addr, len);
}

static const struct svqiso_mem_ops mem_ops = {
	.sz = sizeof(struct svqiso_mem_ops),
	.translate = svq_mem_ops_translate,
};

const struct svqiso_mem_ops *svqiso_mem_ops(void)
{
	return &mem_ops;
}
