/* SPDX-License-Identifier: MIT */
/*
 * The guest memory map's layout, private to the library: mem.c owns it, and
 * the rings translate through it inline when their svqiso_mem_ops are the
 * built-in ones, instead of an indirect call and a search per buffer.
 */
#ifndef SVQ_MEM_PRIV_H
#define SVQ_MEM_PRIV_H

#include "internal.h"

struct svqiso_mem {
	struct svqiso_mem_region *regions;	/* [max], ascending gpa, disjoint */
	unsigned int nr;
	unsigned int max;
	uint64_t gen;				/* >= 1; bumped by every add and remove */
	svqiso_log_fn log;
	void *log_ctx;
};

/*
 * A translation cache: a copy of the region the last lookup through it hit,
 * valid while the map's gen is @gen. Each caller (a ring) keeps its own, so
 * translation leaves the map itself read-only and threads share nothing.
 * Zeroed, it holds nothing (gen 0 never matches).
 */
struct svq_mem_hint {
	uint64_t gpa;
	uint64_t size;
	uintptr_t hva;
	uint64_t gen;
};

/* The built-in svqiso_mem_ops translate; rings compare against it. */
void *svq_mem_ops_translate(void *ctx, uint64_t addr, uint64_t *len);

/* svq_mem_lookup_hint()'s miss path: svqiso_mem_lookup(), refilling @h. */
void *svq_mem_lookup_miss(const struct svqiso_mem *mem, uint64_t gpa,
			  uint64_t *len, struct svq_mem_hint *h);

/*
 * svq_mem_lookup_hint() - svqiso_mem_lookup() through the cache @h: same
 * result for every input (@len in: >= 1, out: clamped at the region end).
 */
static inline void *svq_mem_lookup_hint(const struct svqiso_mem *mem,
					uint64_t gpa, uint64_t *len,
					struct svq_mem_hint *h)
{
	uint64_t off = gpa - h->gpa;

	if (likely(h->gen == mem->gen && off < h->size)) {
		if (*len > h->size - off)
			*len = h->size - off;
		return (void *)(h->hva + off);
	}
	return svq_mem_lookup_miss(mem, gpa, len, h);
}

/*
 * svq_mem_hint_whole() - the host address of all of [@gpa, @gpa + @len)
 * when the region cached in @h still holds every byte of it, else NULL:
 * then svq_mem_lookup_hint() decides. @len >= 1. Never NULL on a hit: a
 * region's host range is non-NULL and does not wrap.
 */
static inline void *svq_mem_hint_whole(const struct svqiso_mem *mem,
				       uint64_t gpa, uint64_t len,
				       const struct svq_mem_hint *h)
{
	uint64_t off = gpa - h->gpa;

	if (likely(h->gen == mem->gen && off < h->size && len <= h->size - off))
		return (void *)(h->hva + off);
	return NULL;
}

#endif /* SVQ_MEM_PRIV_H */
