/* SPDX-License-Identifier: MIT */
/*
 * Building a validated element from a hostile driver's descriptors, shared by
 * the split and packed device-role code. The per-descriptor steps are inline
 * here (the rings' pop loops run them for every descriptor); indirect tables
 * are walked out of line in chain.c.
 */
#ifndef SVQ_CHAIN_H
#define SVQ_CHAIN_H

#include "vring.h"

struct svq_chain {
	struct svq_dev *vq;
	struct svq_elem *e;
	uint64_t total;		/* bytes so far, both directions */
	bool seen_write;
};

static inline void svq_chain_start(struct svq_chain *c, struct svq_dev *vq,
				   struct svq_elem *e)
{
	c->vq = vq;
	c->e = e;
	c->total = 0;
	c->seen_write = false;
	e->nseg = 0;
	e->nout = 0;
	e->out_bytes = 0;
	e->in_bytes = 0;
}

/* New walk generation: a descriptor stamped with it was already read. */
static inline uint32_t svq_chain_next_gen(struct svq_dev *vq);

/*
 * svq_chain_indirect() - copy an indirect table into private memory once, then
 * walk it in the ring's layout.
 *
 * Return: 0, or the errno of the rule broken.
 */
int svq_chain_indirect(struct svq_chain *c, uint64_t addr, uint32_t len);

static inline uint32_t svq_chain_next_gen(struct svq_dev *vq)
{
	if (unlikely(++vq->gen == 0)) {
		/* Stamps from 2^32 walks ago could alias: start over. */
		memset(vq->desc_stamp, 0, sizeof(*vq->desc_stamp) * vq->rc.num);
		memset(vq->ind_stamp, 0,
		       sizeof(*vq->ind_stamp) * vq->max_indirect);
		vq->gen = 1;
	}
	return vq->gen;
}

/* Through the built-in map without an indirect call or a search when the
 * last region hit still holds @a; any other ops through their pointer. */
static inline void *svq_chain_translate(struct svq_dev *vq, uint64_t a, uint64_t *n)
{
	if (vq->map)
		return svq_mem_lookup_hint(vq->map, a, n, &vq->hint);
	return vq->mem->translate(vq->mem_ctx, a, n);
}

/*
 * The rules a buffer descriptor must meet on its own, whatever precedes it
 * in its chain.
 *
 * Return: 0, or the errno of the rule broken (the ring is marked broken).
 */
static inline int svq_chain_check_buf(struct svq_dev *vq, uint64_t addr,
				      uint32_t len)
{
	if (unlikely(len == 0))
		return svq_ring_fail(&vq->rc, SVQ_RULE_ZERO_LEN,
				     "zero-length buffer at 0x%" PRIx64, addr);
	if (unlikely(addr > UINT64_MAX - (len - 1)))
		return svq_ring_fail(&vq->rc, SVQ_RULE_ADDR_OVERFLOW,
				     "buffer 0x%" PRIx64 " + %" PRIu32 " wraps",
				     addr, len);
	return 0;
}

/* svq_chain_map()'s general case: any mem ops, any number of regions. */
int svq_chain_map_slow(struct svq_dev *vq, struct svq_elem *e,
		       unsigned int nseg, uint64_t addr, uint32_t len, bool write);

/*
 * The host address of a checked buffer when the built-in map's cached
 * region holds all of it and @e has room for a segment at @nseg: then the
 * buffer is that one segment. NULL: svq_chain_map_slow() decides.
 */
static inline void *svq_chain_hit(struct svq_dev *vq, const struct svq_elem *e,
				  unsigned int nseg, uint64_t addr, uint32_t len)
{
	if (unlikely(!vq->map || nseg >= e->max_seg))
		return NULL;
	return svq_mem_hint_whole(vq->map, addr, len, &vq->hint);
}

static inline void svq_chain_set_seg(struct svq_seg *s, uint64_t addr,
				     void *hva, uint32_t len, bool write)
{
	s->addr = addr;
	s->hva = hva;
	s->len = len;
	s->write = write;
}

/*
 * svq_chain_map() - translate a checked buffer into segments of @e from
 * index @nseg on, one per memory region it crosses. Inline only for a
 * buffer within the built-in map's last region hit, which is one segment;
 * the rest goes out of line.
 *
 * Return: the element's segment count after it, or the errno of the rule
 * broken (the ring is marked broken).
 */
static inline int svq_chain_map(struct svq_dev *vq, struct svq_elem *e,
				unsigned int nseg, uint64_t addr, uint32_t len,
				bool write)
{
	void *hva = svq_chain_hit(vq, e, nseg, addr, len);

	if (unlikely(!hva))
		return svq_chain_map_slow(vq, e, nseg, addr, len, write);
	svq_chain_set_seg(&e->seg[nseg], addr, hva, len, write);
	return (int)nseg + 1;
}

/* Totals of an element holding one buffer of @len in @nseg segments. */
static inline void svq_chain_one_totals(struct svq_elem *e, uint16_t nseg,
					uint32_t len, bool write)
{
	e->nseg = nseg;
	e->nout = write ? 0 : nseg;
	e->out_bytes = write ? 0 : len;
	e->in_bytes = write ? len : 0;
}

/*
 * svq_chain_one() - fill @e from a chain of one buffer descriptor, the
 * common case: the rules that relate a buffer to earlier ones (direction
 * order, the chain total) cannot be broken by a first buffer, so only its
 * own are checked, and @e is written once instead of field by field.
 *
 * Return: 0, or the errno of the rule broken (the ring is marked broken).
 */
static inline int svq_chain_one(struct svq_dev *vq, struct svq_elem *e,
				uint64_t addr, uint32_t len, bool write)
{
	int n = svq_chain_check_buf(vq, addr, len);

	if (unlikely(n))
		return n;
	n = svq_chain_map(vq, e, 0, addr, len, write);
	if (unlikely(n < 0))
		return n;
	svq_chain_one_totals(e, (uint16_t)n, len, write);
	return 0;
}

/*
 * svq_chain_one_fast() - svq_chain_one() for a buffer that can break no
 * rule: not empty, not wrapping, wholly in the built-in map's cached
 * region, and @e has room. It calls nothing, so a ring's pop can stay a
 * leaf on this path.
 *
 * Return: true (@e filled), or false (nothing done: use svq_chain_one(),
 * which checks in the usual order and logs).
 */
static inline bool svq_chain_one_fast(struct svq_dev *vq, struct svq_elem *e,
				      uint64_t addr, uint32_t len, bool write)
{
	void *hva;

	if (unlikely(len == 0 || addr > UINT64_MAX - (len - 1)))
		return false;
	hva = svq_chain_hit(vq, e, 0, addr, len);
	if (unlikely(!hva))
		return false;
	svq_chain_set_seg(&e->seg[0], addr, hva, len, write);
	svq_chain_one_totals(e, 1, len, write);
	return true;
}

/*
 * svq_chain_buf() - append one buffer descriptor: validate, translate into
 * one or more segments. Inline: the rings call it for every descriptor.
 *
 * Return: 0, or the errno of the rule broken (the ring is marked broken).
 */
static inline int svq_chain_buf(struct svq_chain *c, uint64_t addr, uint32_t len,
				bool write)
{
	struct svq_dev *vq = c->vq;
	struct svq_elem *e = c->e;
	int nseg = svq_chain_check_buf(vq, addr, len);

	if (unlikely(nseg))
		return nseg;
	if (unlikely(!write && c->seen_write))
		return svq_ring_fail(&vq->rc, SVQ_RULE_READ_AFTER_WRITE,
				     "readable buffer 0x%" PRIx64
				     " after a writable one", addr);
	if (unlikely(c->total + len > UINT32_MAX))
		return svq_ring_fail(&vq->rc, SVQ_RULE_TOTAL_LEN,
				     "chain length %" PRIu64 " reaches 2^32",
				     c->total + len);
	nseg = svq_chain_map(vq, e, e->nseg, addr, len, write);
	if (unlikely(nseg < 0))
		return nseg;

	if (write) {
		e->in_bytes += len;
	} else {
		e->out_bytes += len;
		e->nout = (uint16_t)nseg;
	}
	e->nseg = (uint16_t)nseg;
	c->total += len;
	c->seen_write |= write;
	return 0;
}

/*
 * svq_chain_desc() - append one ring descriptor: a buffer, or (as the chain's
 * last) an indirect table. @pos names it in log lines.
 *
 * Return: 0, or the errno of the rule broken.
 */
static inline int svq_chain_desc(struct svq_chain *c, unsigned int pos,
				 uint64_t addr, uint32_t len, uint16_t flags)
{
	if (!(flags & SVQ_DESC_F_INDIRECT))
		return svq_chain_buf(c, addr, len, flags & SVQ_DESC_F_WRITE);
	/* An indirect descriptor ends its chain; NEXT beside it is a lie. */
	if (unlikely(flags & SVQ_DESC_F_NEXT))
		return svq_ring_fail(&c->vq->rc, SVQ_RULE_INDIRECT_NEXT,
				     "descriptor %u has INDIRECT and NEXT", pos);
	return svq_chain_indirect(c, addr, len);
}

#endif /* SVQ_CHAIN_H */
