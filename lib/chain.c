/* SPDX-License-Identifier: MIT */
/*
 * Bounded chain walk over a hostile driver's descriptors: indirect tables
 * read once into private memory and walked. The per-buffer rules and the
 * translation into segments are inline in chain.h, since the rings run them
 * for every descriptor.
 */
#include <endian.h>
#include "chain.h"

int svq_chain_map_slow(struct svq_dev *vq, struct svq_elem *e,
		       unsigned int nseg, uint64_t addr, uint32_t len, bool write)
{
	uint64_t left = len, a = addr;

	while (left) {
		uint64_t n = left;
		void *hva = svq_chain_translate(vq, a, &n);
		struct svq_seg *s;

		if (unlikely(!hva || n == 0))
			return svq_ring_fail(&vq->rc, SVQ_RULE_ADDR_UNMAPPED,
					     "buffer 0x%" PRIx64 " + %" PRIu32
					     ": 0x%" PRIx64 " is not guest memory",
					     addr, len, a);
		if (n > left)	/* a sloppy translate must not grow the buffer */
			n = left;
		if (unlikely(nseg >= e->max_seg))
			return svq_ring_fail(&vq->rc, SVQ_RULE_TOO_MANY_SEGS,
					     "chain needs more than %u segments",
					     e->max_seg);
		s = &e->seg[nseg++];
		s->addr = a;
		s->hva = hva;
		s->len = (uint32_t)n;
		s->write = write;
		a += n;
		left -= n;
	}
	return (int)nseg;
}

/* Copy [addr, addr + len) of guest memory into @dst, following regions. */
static int copy_table(struct svq_chain *c, uint64_t addr, uint32_t len, void *dst)
{
	struct svq_dev *vq = c->vq;
	uint64_t left = len, a = addr;
	uint8_t *d = dst;

	while (left) {
		uint64_t n = left;
		const void *hva = svq_chain_translate(vq, a, &n);

		if (unlikely(!hva || n == 0))
			return svq_ring_fail(&vq->rc, SVQ_RULE_ADDR_UNMAPPED,
					     "indirect table 0x%" PRIx64 " + %" PRIu32
					     ": 0x%" PRIx64 " is not guest memory",
					     addr, len, a);
		if (n > left)
			n = left;
		/* The one read of the table; everything after uses the copy. */
		memcpy(d, hva, n);
		d += n;
		a += n;
		left -= n;
	}
	return 0;
}

static int table_entry(struct svq_chain *c, unsigned int i, uint64_t addr,
		       uint32_t len, uint16_t flags)
{
	if (unlikely(flags & SVQ_DESC_F_INDIRECT))
		return svq_ring_fail(&c->vq->rc, SVQ_RULE_INDIRECT_NESTED,
				     "indirect entry %u is itself indirect", i);
	return svq_chain_buf(c, addr, len, flags & SVQ_DESC_F_WRITE);
}

static int walk_split_table(struct svq_chain *c, unsigned int n)
{
	struct svq_dev *vq = c->vq;
	const struct svq_split_desc *t = vq->ind_buf;
	unsigned int i = 0;
	int err;

	for (;;) {
		uint16_t flags = le16toh(t[i].flags);

		if (unlikely(vq->ind_stamp[i] == vq->gen))
			return svq_ring_fail(&vq->rc, SVQ_RULE_CHAIN_LOOP,
					     "indirect entry %u reached twice", i);
		vq->ind_stamp[i] = vq->gen;
		err = table_entry(c, i, le64toh(t[i].addr), le32toh(t[i].len),
				  flags);
		if (err)
			return err;
		if (!(flags & SVQ_DESC_F_NEXT))
			return 0;
		i = le16toh(t[i].next);
		if (unlikely(i >= n))
			return svq_ring_fail(&vq->rc, SVQ_RULE_NEXT_RANGE,
					     "indirect next %u out of range %u", i, n);
	}
}

/* Packed tables are walked in order; NEXT is not used inside them. */
static int walk_packed_table(struct svq_chain *c, unsigned int n)
{
	const struct svq_packed_desc *t = c->vq->ind_buf;
	unsigned int i;
	int err;

	for (i = 0; i < n; i++) {
		err = table_entry(c, i, le64toh(t[i].addr), le32toh(t[i].len),
				  le16toh(t[i].flags));
		if (err)
			return err;
	}
	return 0;
}

int svq_chain_indirect(struct svq_chain *c, uint64_t addr, uint32_t len)
{
	struct svq_dev *vq = c->vq;
	unsigned int n;
	int err;

	if (unlikely(!(vq->rc.flags & SVQ_RING_F_INDIRECT)))
		return svq_ring_fail(&vq->rc, SVQ_RULE_INDIRECT_FEATURE,
				     "indirect descriptor without INDIRECT_DESC");
	if (unlikely(len == 0 || len % 16 || len / 16 > vq->max_indirect))
		return svq_ring_fail(&vq->rc, SVQ_RULE_INDIRECT_LEN,
				     "indirect table length %" PRIu32
				     " (want 16 * [1, %u])", len, vq->max_indirect);
	if (unlikely(addr > UINT64_MAX - (len - 1)))
		return svq_ring_fail(&vq->rc, SVQ_RULE_ADDR_OVERFLOW,
				     "indirect table 0x%" PRIx64 " + %" PRIu32
				     " wraps", addr, len);
	err = copy_table(c, addr, len, vq->ind_buf);
	if (err)
		return err;
	n = len / 16;
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return walk_split_table(c, n);
	case SVQISO_LAYOUT_PACKED:
		return walk_packed_table(c, n);
	}
	return -EINVAL;
}
