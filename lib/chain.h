/* SPDX-License-Identifier: MIT */
/*
 * Building a validated element from a hostile driver's descriptors, shared by
 * the split and packed device-role code.
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
 * svq_chain_buf() - append one buffer descriptor: validate, translate into
 * one or more segments.
 *
 * Return: 0, or the errno of the rule broken (the ring is marked broken).
 */
int svq_chain_buf(struct svq_chain *c, uint64_t addr, uint32_t len, bool write);

/*
 * svq_chain_indirect() - copy an indirect table into private memory once, then
 * walk it in the ring's layout.
 *
 * Return: 0, or the errno of the rule broken.
 */
int svq_chain_indirect(struct svq_chain *c, uint64_t addr, uint32_t len);

/*
 * svq_chain_desc() - append one ring descriptor: a buffer, or (as the chain's
 * last) an indirect table. @pos names it in log lines.
 *
 * Return: 0, or the errno of the rule broken.
 */
int svq_chain_desc(struct svq_chain *c, unsigned int pos, uint64_t addr,
		   uint32_t len, uint16_t flags);

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

#endif /* SVQ_CHAIN_H */
