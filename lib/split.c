/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue (VIRTIO 1.2, 2.7), device role and driver role.
 */
#include <stdlib.h>
#include "chain.h"
#include "split.h"

/* avail->ring[num] is used_event; used->ring[num] is avail_event. */
static inline uint16_t *used_event(struct svq_split_avail *avail, uint16_t num)
{
	return &avail->ring[num];
}

static inline uint16_t *avail_event(struct svq_split_used *used, uint16_t num)
{
	return (uint16_t *)&used->ring[num];
}

/* ---- Device role ---- */

/* Log @n bytes we wrote at @p in the used area. */
static inline void used_dirty(struct svq_dev *vq, const void *p, size_t n)
{
	svq_dev_dirty(vq, vq->split.used, vq->gpa_device, p, n);
}

int svq_dev_attach_split(struct svq_dev *vq, const struct svq_dev_cfg *cfg)
{
	struct svq_dev_split *s = &vq->split;
	uint16_t num = cfg->num;
	void *desc, *avail, *used;
	int err;

	err = svq_dev_map_area(vq, cfg->desc, svq_split_desc_size(num), 16, &desc);
	if (!err)
		err = svq_dev_map_area(vq, cfg->driver, svq_split_avail_size(num), 2, &avail);
	if (!err)
		err = svq_dev_map_area(vq, cfg->device, svq_split_used_size(num), 4, &used);
	if (err)
		return err;
	s->desc = desc;
	s->avail = avail;
	s->used = used;
	if (cfg->resume) {
		/* A ring handed over mid-life: avail where the last owner
		 * stopped, used where the ring says it is. */
		s->last_avail_idx = (uint16_t)cfg->base;
		s->used_idx = svq_ld16(&s->used->idx);
	}
	s->avail_idx_shadow = s->last_avail_idx;
	s->published_used_idx = s->used_idx;
	return 0;
}

/*
 * Walk a chain whose head (@head, already read into @addr, @len, @flags,
 * @next) links on or is indirect.
 *
 * Return: descriptors the chain used, or the errno of the rule broken.
 */
static int walk_chain(struct svq_dev *vq, struct svq_elem *e, uint16_t head,
		      uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct svq_dev_split *s = &vq->split;
	uint16_t num = vq->rc.num;
	struct svq_chain c;
	uint16_t i = head, ndescs = 1;
	uint32_t gen;
	int err;

	svq_chain_start(&c, vq, e);
	/* A fresh generation: no stamp can hold it yet, so the head needs
	 * no check, only its stamp. */
	gen = svq_chain_next_gen(vq);
	vq->desc_stamp[head] = gen;
	for (;;) {
		struct svq_split_desc *d;

		err = svq_chain_desc(&c, i, addr, len, flags);
		if (err)
			return err;
		if (!(flags & SVQ_DESC_F_NEXT))
			return ndescs;
		if (unlikely(next >= num))
			return svq_ring_fail(&vq->rc, SVQ_RULE_NEXT_RANGE,
					     "descriptor %u: next %u out of range %u",
					     i, next, num);
		i = next;
		d = &s->desc[i];
		if (unlikely(vq->desc_stamp[i] == gen))
			return svq_ring_fail(&vq->rc, SVQ_RULE_CHAIN_LOOP,
					     "descriptor %u reached twice from head %u",
					     i, head);
		vq->desc_stamp[i] = gen;
		ndescs++;
		/* Each field read once into locals; the walk uses only those. */
		addr = svq_ld64(&d->addr);
		len = svq_ld32(&d->len);
		flags = svq_ld16(&d->flags);
		next = svq_ld16(&d->next);
	}
}

/* Consume the chain at @head, which filled @e from @ndescs descriptors. */
static inline int pop_done(struct svq_dev *vq, struct svq_elem *e,
			   uint16_t head, uint16_t ndescs)
{
	struct svq_dev_split *s = &vq->split;

	e->id = head;
	e->ndescs = ndescs;
	vq->id_inflight[head] = 1;
	vq->id_ndescs[head] = ndescs;
	vq->inflight++;
	s->last_avail_idx++;
	if ((vq->rc.flags & SVQ_RING_F_EVENT_IDX) && vq->notify_enabled) {
		svq_st16(avail_event(s->used, vq->rc.num), s->last_avail_idx);
		used_dirty(vq, avail_event(s->used, vq->rc.num), 2);
	}
	return 1;
}

/*
 * Every chain but one direct descriptor that breaks no rule and sits in the
 * map's cached region: out of line, so the common pop stays a leaf.
 */
static int __attribute__((noinline))
pop_chain(struct svq_dev *vq, struct svq_elem *e, uint16_t head, uint64_t addr,
	  uint32_t len, uint16_t flags, uint16_t next)
{
	int ret;

	if (!(flags & (SVQ_DESC_F_NEXT | SVQ_DESC_F_INDIRECT))) {
		/* One direct descriptor cannot loop: no generation stamps. */
		ret = svq_chain_one(vq, e, addr, len, flags & SVQ_DESC_F_WRITE);
		if (ret)
			return ret;
		ret = 1;
	} else {
		ret = walk_chain(vq, e, head, addr, len, flags, next);
		if (ret < 0)
			return ret;
	}
	return pop_done(vq, e, head, (uint16_t)ret);
}

int svq_dev_pop_split(struct svq_dev *vq, struct svq_elem *e)
{
	struct svq_dev_split *s = &vq->split;
	uint16_t num = vq->rc.num;
	struct svq_split_desc *d;
	uint16_t head, flags, next;
	uint64_t addr;
	uint32_t len;

	if (s->avail_idx_shadow == s->last_avail_idx) {
		/* Index before ring entries and descriptors: pairs with the
		 * driver's release store of avail->idx (2.7.13 "Updating idx"). */
		uint16_t idx = svq_ld16_acquire(&s->avail->idx);

		if (unlikely((uint16_t)(idx - s->last_avail_idx) > num))
			return svq_ring_fail(&vq->rc, SVQ_RULE_AVAIL_IDX,
					     "avail idx %u is %u ahead of %u (num %u)",
					     idx, (uint16_t)(idx - s->last_avail_idx),
					     s->last_avail_idx, num);
		if (idx == s->last_avail_idx)
			return 0;
		s->avail_idx_shadow = idx;
	}

	if (unlikely(vq->inflight >= num))
		return svq_ring_fail(&vq->rc, SVQ_RULE_INFLIGHT,
				     "more than %u buffers in flight", num);
	head = svq_ld16(&s->avail->ring[s->last_avail_idx & (num - 1)]);
	if (unlikely(head >= num))
		return svq_ring_fail(&vq->rc, SVQ_RULE_HEAD_RANGE,
				     "head %u out of range %u", head, num);
	if (unlikely(vq->id_inflight[head]))
		return svq_ring_fail(&vq->rc, SVQ_RULE_INFLIGHT,
				     "head %u made available while in flight", head);

	/* Each field read once into locals; the walk uses only those. */
	d = &s->desc[head];
	addr = svq_ld64(&d->addr);
	len = svq_ld32(&d->len);
	flags = svq_ld16(&d->flags);
	next = svq_ld16(&d->next);
	if (likely(!(flags & (SVQ_DESC_F_NEXT | SVQ_DESC_F_INDIRECT))) &&
	    likely(svq_chain_one_fast(vq, e, addr, len, flags & SVQ_DESC_F_WRITE)))
		return pop_done(vq, e, head, 1);
	return pop_chain(vq, e, head, addr, len, flags, next);
}

void svq_dev_push_split(struct svq_dev *vq, uint16_t id, uint32_t len)
{
	struct svq_dev_split *s = &vq->split;
	struct svq_used_elem *u = &s->used->ring[s->used_idx & (vq->rc.num - 1)];

	svq_st32(&u->id, id);
	svq_st32(&u->len, len);
	used_dirty(vq, u, sizeof(*u));
	s->used_idx++;
}

int svq_dev_flush_split(struct svq_dev *vq)
{
	struct svq_dev_split *s = &vq->split;
	uint16_t n = s->used_idx - s->published_used_idx;

	if (!n)
		return 0;
	/* Used entries before idx: pairs with the driver's acquire load of
	 * used->idx (2.7.14 "Receiving Used Buffers"). */
	svq_st16_release(&s->used->idx, s->used_idx);
	used_dirty(vq, &s->used->idx, 2);
	s->published_used_idx = s->used_idx;
	return n;
}

bool svq_dev_need_notify_split(struct svq_dev *vq)
{
	struct svq_dev_split *s = &vq->split;
	uint16_t old = s->signalled_used, new = s->published_used_idx;
	bool valid = s->signalled_used_valid;

	/* used->idx store before the used_event/flags load: pairs with the
	 * driver's full barrier between writing used_event and re-reading
	 * used->idx. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!(vq->rc.flags & SVQ_RING_F_EVENT_IDX))
		return !(svq_ld16(&s->avail->flags) & SVQ_AVAIL_F_NO_INTERRUPT);
	s->signalled_used = new;
	s->signalled_used_valid = true;
	return !valid ||
	       svq_need_event(svq_ld16(used_event(s->avail, vq->rc.num)), new, old);
}

bool svq_dev_has_avail_split(struct svq_dev *vq)
{
	struct svq_dev_split *s = &vq->split;

	if (s->avail_idx_shadow != s->last_avail_idx)
		return true;
	return svq_ld16_acquire(&s->avail->idx) != s->last_avail_idx;
}

bool svq_dev_enable_notify_split(struct svq_dev *vq)
{
	struct svq_dev_split *s = &vq->split;

	if (vq->rc.flags & SVQ_RING_F_EVENT_IDX) {
		svq_st16(avail_event(s->used, vq->rc.num), s->last_avail_idx);
		used_dirty(vq, avail_event(s->used, vq->rc.num), 2);
	} else {
		svq_st16(&s->used->flags, 0);
		used_dirty(vq, &s->used->flags, 2);
	}
	/* Enable before re-checking avail->idx: pairs with the driver's full
	 * barrier between its avail->idx store and its avail_event/flags load,
	 * so one of us sees the other and no kick is lost. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return svq_dev_has_avail_split(vq);
}

void svq_dev_disable_notify_split(struct svq_dev *vq)
{
	/* With EVENT_IDX a stale avail_event already keeps kicks rare. */
	if (!(vq->rc.flags & SVQ_RING_F_EVENT_IDX)) {
		svq_st16(&vq->split.used->flags, SVQ_USED_F_NO_NOTIFY);
		used_dirty(vq, &vq->split.used->flags, 2);
	}
}

uint32_t svq_dev_get_base_split(const struct svq_dev *vq)
{
	return vq->split.last_avail_idx;
}

void svq_dev_unpop_split(struct svq_dev *vq, uint16_t id)
{
	vq->id_inflight[id] = 0;
	vq->inflight--;
	vq->split.last_avail_idx--;
}

/* ---- Driver role ---- */

int svq_drv_attach_split(struct svq_drv *vq, const struct svq_drv_cfg *cfg)
{
	struct svq_drv_split *s = &vq->split;
	uint16_t num = cfg->num, i;

	s->next = calloc(num, sizeof(*s->next));
	if (!s->next)
		return -ENOMEM;
	for (i = 0; i < num; i++)
		s->next[i] = i + 1;	/* next[num - 1] == num: end of list */
	s->desc = cfg->desc;
	s->avail = cfg->driver;
	s->used = cfg->device;
	s->publish_each = cfg->publish_each;
	memset(s->desc, 0, svq_split_desc_size(num));
	memset(s->avail, 0, svq_split_avail_size(num));
	memset(s->used, 0, svq_split_used_size(num));
	return 0;
}

static void write_desc(struct svq_split_desc *d, uint64_t addr, uint32_t len,
		       uint16_t flags, uint16_t next)
{
	svq_st64(&d->addr, addr);
	svq_st32(&d->len, len);
	svq_st16(&d->flags, flags);
	svq_st16(&d->next, next);
}

/*
 * Make the chain at @head available: it took @ndescs descriptors and the
 * free list goes on at @free_head.
 */
static inline int add_done(struct svq_drv *vq, uint16_t head, uint16_t ndescs,
			   uint16_t free_head, uint16_t *id)
{
	struct svq_drv_split *s = &vq->split;

	s->free_head = free_head;
	vq->num_free -= ndescs;
	vq->id_ndescs[head] = ndescs;
	vq->id_inflight[head] = 1;
	vq->inflight++;
	svq_st16(&s->avail->ring[s->avail_idx & (vq->rc.num - 1)], head);
	vq->id_seq[head] = vq->seq++;
	s->avail_idx++;
	if (s->publish_each)
		/* Descriptors and ring entry before idx: pairs with the
		 * device's acquire load of avail->idx (2.7.13 "Updating
		 * idx"). */
		svq_st16_release(&s->avail->idx, s->avail_idx);
	*id = head;
	return 0;
}

/* Chains of several descriptors, or in a table: out of line, so adding
 * one direct descriptor needs no registers saved. */
static int __attribute__((noinline))
add_chain(struct svq_drv *vq, const struct svq_seg *seg, unsigned int nseg,
	  const struct svq_indirect *ind, uint16_t *id)
{
	struct svq_drv_split *s = &vq->split;
	uint16_t head = s->free_head, i = head;
	unsigned int k;

	if (ind) {
		struct svq_split_desc *t = ind->hva;

		for (k = 0; k < nseg; k++)
			write_desc(&t[k], seg[k].addr, seg[k].len,
				   (seg[k].write ? SVQ_DESC_F_WRITE : 0) |
				   (k + 1 < nseg ? SVQ_DESC_F_NEXT : 0),
				   k + 1 < nseg ? k + 1 : 0);
		write_desc(&s->desc[head], ind->addr, nseg * 16,
			   SVQ_DESC_F_INDIRECT, 0);
		return add_done(vq, head, 1, s->next[head], id);
	}
	for (k = 0; k < nseg; k++) {
		uint16_t next = s->next[i];

		write_desc(&s->desc[i], seg[k].addr, seg[k].len,
			   (seg[k].write ? SVQ_DESC_F_WRITE : 0) |
			   (k + 1 < nseg ? SVQ_DESC_F_NEXT : 0),
			   k + 1 < nseg ? next : 0);
		i = next;
	}
	return add_done(vq, head, (uint16_t)nseg, i, id);
}

int svq_drv_add_split(struct svq_drv *vq, const struct svq_seg *seg,
		      unsigned int nseg, const struct svq_indirect *ind,
		      uint16_t *id)
{
	struct svq_drv_split *s = &vq->split;
	uint16_t head = s->free_head;

	if (unlikely(nseg != 1 || ind))
		return add_chain(vq, seg, nseg, ind, id);
	/* One direct descriptor, the common chain: no links. */
	write_desc(&s->desc[head], seg->addr, seg->len,
		   seg->write ? SVQ_DESC_F_WRITE : 0, 0);
	return add_done(vq, head, 1, s->next[head], id);
}

bool svq_drv_kick_prepare_split(struct svq_drv *vq)
{
	struct svq_drv_split *s = &vq->split;
	uint16_t old = s->kicked_avail_idx, new = s->avail_idx;

	if (old == new)
		return false;
	/* Descriptors and ring entries before idx: pairs with the device's
	 * acquire load of avail->idx (2.7.13 "Updating idx"). With
	 * publish_each it is the same store again, unless chains were added
	 * with publishing held back (svqiso_svq_repost()). */
	svq_st16_release(&s->avail->idx, new);
	s->kicked_avail_idx = new;
	/* idx store before the avail_event/flags load: pairs with the
	 * device's full barrier in its notification enable. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (vq->rc.flags & SVQ_RING_F_EVENT_IDX)
		return svq_need_event(svq_ld16(avail_event(s->used, vq->rc.num)),
				      new, old);
	return !(svq_ld16(&s->used->flags) & SVQ_USED_F_NO_NOTIFY);
}

/* Return chain @id's descriptors to the free list (private links only). */
static inline void free_chain(struct svq_drv *vq, uint16_t id)
{
	struct svq_drv_split *s = &vq->split;
	uint16_t n = vq->id_ndescs[id], last;

	for (last = id; --n; )
		last = s->next[last];
	s->next[last] = s->free_head;
	s->free_head = id;
	vq->num_free += vq->id_ndescs[id];
	vq->id_inflight[id] = 0;
	vq->inflight--;
}

int svq_drv_get_used_split(struct svq_drv *vq, uint16_t *id, uint32_t *len)
{
	struct svq_drv_split *s = &vq->split;
	uint16_t num = vq->rc.num;
	struct svq_used_elem *u;
	uint32_t uid, ulen;

	if (s->used_idx_shadow == s->last_used_idx) {
		/* Index before entries: pairs with the device's release store
		 * of used->idx. */
		uint16_t idx = svq_ld16_acquire(&s->used->idx);

		if (unlikely((uint16_t)(idx - s->last_used_idx) > vq->inflight))
			return svq_ring_fail(&vq->rc, SVQ_RULE_USED_IDX,
					     "used idx %u is %u ahead of %u with %u outstanding",
					     idx, (uint16_t)(idx - s->last_used_idx),
					     s->last_used_idx, vq->inflight);
		if (idx == s->last_used_idx)
			return 0;
		s->used_idx_shadow = idx;
	}
	u = &s->used->ring[s->last_used_idx & (num - 1)];
	uid = svq_ld32(&u->id);
	ulen = svq_ld32(&u->len);
	if (unlikely(uid >= num || !vq->id_inflight[uid]))
		return svq_ring_fail(&vq->rc, SVQ_RULE_USED_ID,
				     "used id %" PRIu32 " was not in flight", uid);

	free_chain(vq, (uint16_t)uid);
	s->last_used_idx++;
	if ((vq->rc.flags & SVQ_RING_F_EVENT_IDX) && vq->cb_enabled)
		svq_st16(used_event(s->avail, num), s->last_used_idx);
	*id = uid;
	*len = ulen;
	return 1;
}

void svq_drv_detach_split(struct svq_drv *vq, uint16_t id)
{
	free_chain(vq, id);
}

int svq_drv_device_word_split(const struct svq_drv *vq, uint32_t *word)
{
	/* With EVENT_IDX the device publishes the next avail entry it reads. */
	if (!(vq->rc.flags & SVQ_RING_F_EVENT_IDX))
		return -ENODATA;
	*word = svq_ld16(avail_event(vq->split.used, vq->rc.num));
	return 0;
}

uint16_t svq_drv_chain_slots_split(const struct svq_drv *vq, uint16_t id)
{
	(void)vq;
	(void)id;
	return 1;	/* one avail ring entry, however long the chain */
}

int svq_drv_pos_split(const struct svq_drv *vq, uint32_t base, uint32_t *pos,
		      uint32_t *end, uint32_t *span)
{
	if (base > UINT16_MAX)
		return -EPROTO;
	*pos = base;
	*end = vq->split.avail_idx;
	*span = 1u << 16;
	return 0;
}

void svq_drv_retract_split(struct svq_drv *vq, uint32_t pos)
{
	/* Nothing past @pos is published again: the ring is laid out afresh
	 * before it carries another chain. */
	vq->split.avail_idx = (uint16_t)pos;
	vq->split.kicked_avail_idx = vq->split.avail_idx;
}

bool svq_drv_enable_cb_split(struct svq_drv *vq)
{
	struct svq_drv_split *s = &vq->split;

	if (vq->rc.flags & SVQ_RING_F_EVENT_IDX)
		svq_st16(used_event(s->avail, vq->rc.num), s->last_used_idx);
	else
		svq_st16(&s->avail->flags, 0);
	/* Enable before re-checking used->idx: pairs with the device's full
	 * barrier between its used->idx store and its used_event load. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return svq_ld16_acquire(&s->used->idx) != s->last_used_idx;
}

void svq_drv_disable_cb_split(struct svq_drv *vq)
{
	/* With EVENT_IDX the flags must stay 0 (2.7.10). */
	if (!(vq->rc.flags & SVQ_RING_F_EVENT_IDX))
		svq_st16(&vq->split.avail->flags, SVQ_AVAIL_F_NO_INTERRUPT);
}
