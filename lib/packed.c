/* SPDX-License-Identifier: MIT */
/*
 * Packed virtqueue (VIRTIO 1.2, 2.8), device role and driver role. Ring sizes
 * need not be powers of two: positions wrap at num and flip a wrap counter.
 */
#include <stdlib.h>
#include "chain.h"
#include "packed.h"

/* A descriptor is available in lap @wrap when AVAIL == wrap and USED != wrap. */
static inline bool desc_avail(uint16_t flags, bool wrap)
{
	return !!(flags & SVQ_DESC_F_AVAIL) == wrap &&
	       !!(flags & SVQ_DESC_F_USED) != wrap;
}

/*
 * Used in lap @wrap when AVAIL == USED == wrap. Anything else is not used:
 * our own available descriptor of this lap or the next, or a stale member of
 * an older chain, which the device never overwrites.
 */
static inline bool desc_used(uint16_t flags, bool wrap)
{
	return !!(flags & SVQ_DESC_F_AVAIL) == wrap &&
	       !!(flags & SVQ_DESC_F_USED) == wrap;
}

static inline void advance(uint16_t *idx, bool *wrap, uint16_t n, uint16_t num)
{
	unsigned int i = *idx + (unsigned int)n;

	if (i >= num) {
		i -= num;
		*wrap = !*wrap;
	}
	*idx = (uint16_t)i;
}

/* Step back @n slots: the reverse of advance(). */
static inline void retreat(uint16_t *idx, bool *wrap, uint16_t n, uint16_t num)
{
	if (*idx < n) {
		*idx = (uint16_t)(*idx + num - n);
		*wrap = !*wrap;
	} else {
		*idx = (uint16_t)(*idx - n);
	}
}

/* A slot's place in the two laps a wrap counter tells apart: 0..2 * num - 1. */
static inline uint16_t lap_pos(uint16_t idx, bool wrap, uint16_t num)
{
	return (uint16_t)(idx + (wrap ? 0 : num));
}

/*
 * Slots from (@from, @from_wrap) forward to (@to, @to_wrap): 0 to 2 * @num - 1
 * (a count past @num means @to is behind @from).
 */
static inline uint32_t slots_between(uint16_t from, bool from_wrap, uint16_t to,
				     bool to_wrap, uint16_t num)
{
	uint32_t a = lap_pos(from, from_wrap, num), b = lap_pos(to, to_wrap, num);

	return (b + 2u * num - a) % (2u * num);
}

/*
 * Whether the event at @off_wrap lies among the @moved slots walked since the
 * last decision, ending at (@new_idx, @new_wrap). The peer sets its event at
 * most a lap behind us, so an event of the other lap is moved back by num;
 * the window itself is counted, since positions repeat every two laps.
 */
static bool packed_need_event(uint16_t off_wrap, uint16_t new_idx, bool new_wrap,
			      uint32_t moved, uint16_t num)
{
	uint16_t off = off_wrap & 0x7fff;
	bool wrap = off_wrap >> 15;

	if (moved > UINT16_MAX)
		return true;	/* past what 16-bit event arithmetic can tell */
	if (wrap != new_wrap)
		off -= num;
	return svq_need_event(off, new_idx, (uint16_t)(new_idx - moved));
}

/* ---- Device role ---- */

/* Log @n bytes we wrote at @p in the descriptor area. */
static inline void desc_dirty(struct svq_dev *vq, const void *p, size_t n)
{
	svq_dev_dirty(vq, vq->packed.desc, vq->gpa_desc, p, n);
}

/* Log our event suppression structure: written whole or in part. */
static inline void event_dirty(struct svq_dev *vq)
{
	svq_dev_dirty(vq, vq->packed.device, vq->gpa_device, vq->packed.device,
		      SVQ_PACKED_EVENT_SIZE);
}

int svq_dev_attach_packed(struct svq_dev *vq, const struct svq_dev_cfg *cfg)
{
	struct svq_dev_packed *p = &vq->packed;
	void *desc, *driver, *device;
	int err;

	err = svq_dev_map_area(vq, cfg->desc, svq_packed_desc_size(cfg->num), 16, &desc);
	if (!err)
		err = svq_dev_map_area(vq, cfg->driver, SVQ_PACKED_EVENT_SIZE, 4, &driver);
	if (!err)
		err = svq_dev_map_area(vq, cfg->device, SVQ_PACKED_EVENT_SIZE, 4, &device);
	if (err)
		return err;
	p->desc = desc;
	p->driver = driver;
	p->device = device;
	p->avail_wrap_counter = true;
	p->used_wrap_counter = true;
	if (cfg->resume) {
		uint16_t avail = cfg->base & 0xffff, used = cfg->base >> 16;
		uint32_t behind;

		if ((avail & 0x7fff) >= cfg->num ||
		    (used & 0x7fff) >= cfg->num)
			return -EINVAL;
		p->last_avail_idx = avail & 0x7fff;
		p->avail_wrap_counter = avail >> 15;
		/* vhost's format carries the used position in the high half;
		 * without one, nothing was in flight: used is where avail is. */
		if (!used)
			used = avail;
		p->used_idx = used & 0x7fff;
		p->used_wrap_counter = used >> 15;
		/* Slots the driver made available before and we never used:
		 * their chains are gone, but the driver still holds them. */
		behind = slots_between(p->used_idx, p->used_wrap_counter,
				       p->last_avail_idx, p->avail_wrap_counter,
				       cfg->num);
		if (behind > cfg->num)
			return -EINVAL;
		p->inflight_descs = (uint16_t)behind;
	}
	p->published_used_idx = p->used_idx;
	p->published_used_wrap = p->used_wrap_counter;
	return 0;
}

int svq_dev_pop_packed(struct svq_dev *vq, struct svq_elem *e)
{
	struct svq_dev_packed *p = &vq->packed;
	uint16_t num = vq->rc.num;
	uint16_t pos = p->last_avail_idx, ndescs = 0, id = 0;
	bool wrap = p->avail_wrap_counter;
	struct svq_chain c;
	uint16_t flags;
	int err;

	/* Flags before the rest of the descriptor: pairs with the driver's
	 * release store of the head's flags (2.8.21 "Making buffers
	 * available"). */
	flags = svq_ld16_acquire(&p->desc[pos].flags);
	if (!desc_avail(flags, wrap))
		return 0;
	if (unlikely(vq->inflight >= num))
		return svq_ring_fail(&vq->rc, SVQ_RULE_INFLIGHT,
				     "more than %u buffers in flight", num);

	svq_chain_start(&c, vq, e);
	for (;;) {
		struct svq_packed_desc *d = &p->desc[pos];
		uint64_t addr;
		uint32_t len;

		if (unlikely(ndescs == num))
			return svq_ring_fail(&vq->rc, SVQ_RULE_CHAIN_LOOP,
					     "chain at %u runs over all %u descriptors",
					     p->last_avail_idx, num);
		if (ndescs) {
			/* Members were written before the head's flags; the
			 * head's acquire already ordered them. */
			flags = svq_ld16_acquire(&d->flags);
			if (unlikely(!desc_avail(flags, wrap)))
				return svq_ring_fail(&vq->rc, SVQ_RULE_WRAP,
						     "descriptor %u of chain at %u not available in lap %d (flags 0x%04x)",
						     pos, p->last_avail_idx, wrap, flags);
		}
		ndescs++;
		addr = svq_ld64(&d->addr);
		len = svq_ld32(&d->len);
		id = svq_ld16(&d->id);	/* the last member's id names the buffer */

		err = svq_chain_desc(&c, pos, addr, len, flags);
		if (err)
			return err;
		if (!(flags & SVQ_DESC_F_NEXT))
			break;
		advance(&pos, &wrap, 1, num);
	}

	if (unlikely(id >= num))
		return svq_ring_fail(&vq->rc, SVQ_RULE_ID_RANGE,
				     "buffer id %u out of range %u", id, num);
	if (unlikely(vq->id_inflight[id]))
		return svq_ring_fail(&vq->rc, SVQ_RULE_INFLIGHT,
				     "buffer id %u made available while in flight", id);
	if (unlikely(p->inflight_descs + ndescs > num))
		return svq_ring_fail(&vq->rc, SVQ_RULE_INFLIGHT,
				     "%u descriptors in flight exceed %u",
				     p->inflight_descs + ndescs, num);

	e->id = id;
	e->ndescs = ndescs;
	vq->id_inflight[id] = 1;
	vq->id_ndescs[id] = ndescs;
	vq->inflight++;
	p->inflight_descs += ndescs;
	advance(&p->last_avail_idx, &p->avail_wrap_counter, ndescs, num);
	if ((vq->rc.flags & SVQ_RING_F_EVENT_IDX) && vq->notify_enabled) {
		svq_st16(&p->device->off_wrap,
			 p->last_avail_idx | (uint16_t)p->avail_wrap_counter << 15);
		event_dirty(vq);
	}
	return 1;
}

void svq_dev_push_packed(struct svq_dev *vq, uint16_t id, uint32_t len)
{
	struct svq_dev_packed *p = &vq->packed;
	struct svq_packed_desc *d = &p->desc[p->used_idx];
	uint16_t n = vq->id_ndescs[id];
	uint16_t flags = p->used_wrap_counter ?
			 SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED : 0;

	if (len)
		flags |= SVQ_DESC_F_WRITE;
	svq_st16(&d->id, id);
	svq_st32(&d->len, len);
	if (!p->pending) {
		/* The batch's first flags go last, in svq_dev_flush(). */
		p->pending_head = p->used_idx;
		p->pending_head_flags = flags;
	} else {
		/* id/len before flags: pairs with the driver's acquire load
		 * of this descriptor's flags. */
		svq_st16_release(&d->flags, flags);
	}
	desc_dirty(vq, d, sizeof(*d));
	p->pending++;
	p->pending_descs += n;
	p->inflight_descs -= n;
	advance(&p->used_idx, &p->used_wrap_counter, n, vq->rc.num);
}

int svq_dev_flush_packed(struct svq_dev *vq)
{
	struct svq_dev_packed *p = &vq->packed;
	int n = p->pending;

	if (!n)
		return 0;
	/* Every entry of the batch before its first flags: pairs with the
	 * driver's acquire load of the flags at its used position. */
	svq_st16_release(&p->desc[p->pending_head].flags, p->pending_head_flags);
	desc_dirty(vq, &p->desc[p->pending_head].flags, 2);
	if (p->used_since_signal <= UINT16_MAX)	/* saturate */
		p->used_since_signal += p->pending_descs;
	p->pending = 0;
	p->pending_descs = 0;
	p->published_used_idx = p->used_idx;
	p->published_used_wrap = p->used_wrap_counter;
	return n;
}

bool svq_dev_need_notify_packed(struct svq_dev *vq)
{
	struct svq_dev_packed *p = &vq->packed;
	uint32_t moved = p->used_since_signal;
	bool valid = p->signalled_used_valid;
	uint16_t flags;

	/* Used flags store before the event suppression load: pairs with the
	 * driver's full barrier between writing its event suppression and
	 * re-checking the used position. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	p->used_since_signal = 0;
	p->signalled_used_valid = true;
	flags = svq_ld16(&p->driver->flags);
	if (flags == SVQ_EVENT_F_DISABLE)
		return false;
	if (flags != SVQ_EVENT_F_DESC || !(vq->rc.flags & SVQ_RING_F_EVENT_IDX))
		return true;	/* ENABLE, or a value we cannot honour */
	if (!valid)
		return true;
	if (!moved)
		return false;
	return packed_need_event(svq_ld16(&p->driver->off_wrap),
				 p->published_used_idx, p->published_used_wrap,
				 moved, vq->rc.num);
}

bool svq_dev_has_avail_packed(struct svq_dev *vq)
{
	struct svq_dev_packed *p = &vq->packed;

	return desc_avail(svq_ld16_acquire(&p->desc[p->last_avail_idx].flags),
			  p->avail_wrap_counter);
}

bool svq_dev_enable_notify_packed(struct svq_dev *vq)
{
	struct svq_dev_packed *p = &vq->packed;

	if (vq->rc.flags & SVQ_RING_F_EVENT_IDX) {
		svq_st16(&p->device->off_wrap,
			 p->last_avail_idx | (uint16_t)p->avail_wrap_counter << 15);
		svq_st16(&p->device->flags, SVQ_EVENT_F_DESC);
	} else {
		svq_st16(&p->device->flags, SVQ_EVENT_F_ENABLE);
	}
	event_dirty(vq);
	/* Enable before re-checking the ring: pairs with the driver's full
	 * barrier between making a buffer available and reading our event
	 * suppression. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return svq_dev_has_avail_packed(vq);
}

void svq_dev_disable_notify_packed(struct svq_dev *vq)
{
	svq_st16(&vq->packed.device->flags, SVQ_EVENT_F_DISABLE);
	event_dirty(vq);
}

void svq_dev_unpop_packed(struct svq_dev *vq, uint16_t id)
{
	struct svq_dev_packed *p = &vq->packed;
	uint16_t n = vq->id_ndescs[id];

	vq->id_inflight[id] = 0;
	vq->inflight--;
	p->inflight_descs -= n;
	retreat(&p->last_avail_idx, &p->avail_wrap_counter, n, vq->rc.num);
}

uint32_t svq_dev_get_base_packed(const struct svq_dev *vq)
{
	const struct svq_dev_packed *p = &vq->packed;

	return (p->last_avail_idx | (uint32_t)p->avail_wrap_counter << 15) |
	       (p->used_idx | (uint32_t)p->used_wrap_counter << 15) << 16;
}

/* ---- Driver role ---- */

int svq_drv_attach_packed(struct svq_drv *vq, const struct svq_drv_cfg *cfg)
{
	struct svq_drv_packed *p = &vq->packed;
	uint16_t num = cfg->num, i;

	p->next = calloc(num, sizeof(*p->next));
	if (!p->next)
		return -ENOMEM;
	for (i = 0; i < num; i++)
		p->next[i] = i + 1;
	p->desc = cfg->desc;
	p->driver = cfg->driver;
	p->device = cfg->device;
	memset(p->desc, 0, svq_packed_desc_size(num));
	memset(p->driver, 0, SVQ_PACKED_EVENT_SIZE);
	memset(p->device, 0, SVQ_PACKED_EVENT_SIZE);
	p->avail_wrap_counter = true;
	p->used_wrap_counter = true;
	return 0;
}

static void write_desc(struct svq_packed_desc *d, uint64_t addr, uint32_t len,
		       uint16_t id)
{
	svq_st64(&d->addr, addr);
	svq_st32(&d->len, len);
	svq_st16(&d->id, id);
}

int svq_drv_add_packed(struct svq_drv *vq, const struct svq_seg *seg,
		       unsigned int nseg, const struct svq_indirect *ind,
		       uint16_t *id)
{
	struct svq_drv_packed *p = &vq->packed;
	uint16_t num = vq->rc.num;
	uint16_t bid = p->free_head, head = p->next_avail_idx, pos = head;
	bool wrap = p->avail_wrap_counter;
	uint16_t avail_bits = wrap ? SVQ_DESC_F_AVAIL : SVQ_DESC_F_USED;
	uint16_t head_flags = 0, ndescs;
	unsigned int k;

	if (ind) {
		struct svq_packed_desc *t = ind->hva;

		for (k = 0; k < nseg; k++) {
			write_desc(&t[k], seg[k].addr, seg[k].len, 0);
			svq_st16(&t[k].flags, seg[k].write ? SVQ_DESC_F_WRITE : 0);
		}
		write_desc(&p->desc[pos], ind->addr, nseg * 16, bid);
		head_flags = SVQ_DESC_F_INDIRECT | avail_bits;
		advance(&pos, &wrap, 1, num);
		ndescs = 1;
	} else {
		for (k = 0; k < nseg; k++) {
			uint16_t flags = avail_bits |
				(seg[k].write ? SVQ_DESC_F_WRITE : 0) |
				(k + 1 < nseg ? SVQ_DESC_F_NEXT : 0);

			write_desc(&p->desc[pos], seg[k].addr, seg[k].len, bid);
			if (k == 0)
				head_flags = flags;
			else
				svq_st16(&p->desc[pos].flags, flags);
			advance(&pos, &wrap, 1, num);
			/* A chain that crosses the end continues in the next lap. */
			avail_bits = wrap ? SVQ_DESC_F_AVAIL : SVQ_DESC_F_USED;
		}
		ndescs = nseg;
	}
	/* The whole chain before the head's flags: pairs with the device's
	 * acquire load of them (2.8.21 "Making buffers available"). */
	svq_st16_release(&p->desc[head].flags, head_flags);

	vq->id_seq[bid] = vq->seq;
	vq->seq += ndescs;
	p->next_avail_idx = pos;
	p->avail_wrap_counter = wrap;
	if (p->num_added <= UINT16_MAX)	/* saturate: beyond it, always kick */
		p->num_added += ndescs;
	p->free_head = p->next[bid];
	vq->num_free -= ndescs;
	vq->id_ndescs[bid] = ndescs;
	vq->id_inflight[bid] = 1;
	vq->inflight++;
	*id = bid;
	return 0;
}

bool svq_drv_kick_prepare_packed(struct svq_drv *vq)
{
	struct svq_drv_packed *p = &vq->packed;
	uint32_t added = p->num_added;
	uint16_t flags;

	if (!added)
		return false;
	/* Head flags store before the event suppression load: pairs with the
	 * device's full barrier in its notification enable. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	p->num_added = 0;
	flags = svq_ld16(&p->device->flags);
	if (flags == SVQ_EVENT_F_DISABLE)
		return false;
	if (flags != SVQ_EVENT_F_DESC || !(vq->rc.flags & SVQ_RING_F_EVENT_IDX))
		return true;
	return packed_need_event(svq_ld16(&p->device->off_wrap),
				 p->next_avail_idx, p->avail_wrap_counter, added,
				 vq->rc.num);
}

/* Buffer id @id and its slots are free again. */
static inline void free_id(struct svq_drv *vq, uint16_t id)
{
	struct svq_drv_packed *p = &vq->packed;

	p->next[id] = p->free_head;
	p->free_head = id;
	vq->num_free += vq->id_ndescs[id];
	vq->id_inflight[id] = 0;
	vq->inflight--;
}

void svq_drv_detach_packed(struct svq_drv *vq, uint16_t id)
{
	free_id(vq, id);
}

int svq_drv_device_word_packed(const struct svq_drv *vq, uint32_t *word)
{
	const struct svq_drv_packed *p = &vq->packed;

	/* Only a device asking for notifications at a position says where
	 * it is; its offset and wrap counter read as a base's low half. */
	if (!(vq->rc.flags & SVQ_RING_F_EVENT_IDX) ||
	    svq_ld16(&p->device->flags) != SVQ_EVENT_F_DESC)
		return -ENODATA;
	*word = svq_ld16(&p->device->off_wrap);
	return 0;
}

uint16_t svq_drv_chain_slots_packed(const struct svq_drv *vq, uint16_t id)
{
	return vq->id_ndescs[id];
}

int svq_drv_pos_packed(const struct svq_drv *vq, uint32_t base, uint32_t *pos,
		       uint32_t *end, uint32_t *span)
{
	const struct svq_drv_packed *p = &vq->packed;
	uint16_t num = vq->rc.num, avail = base & 0xffff;

	/* The high half is the device's used position: not needed here. */
	if ((avail & 0x7fff) >= num)
		return -EPROTO;
	*pos = lap_pos(avail & 0x7fff, avail >> 15, num);
	*end = lap_pos(p->next_avail_idx, p->avail_wrap_counter, num);
	*span = 2u * num;
	return 0;
}

void svq_drv_retract_packed(struct svq_drv *vq, uint32_t pos)
{
	struct svq_drv_packed *p = &vq->packed;

	/* @pos is a lap position (lap_pos()): below num on a lap of wrap 1. */
	p->avail_wrap_counter = pos < vq->rc.num;
	p->next_avail_idx = (uint16_t)(pos < vq->rc.num ? pos : pos - vq->rc.num);
	p->num_added = 0;
}

int svq_drv_get_used_packed(struct svq_drv *vq, uint16_t *id, uint32_t *len)
{
	struct svq_drv_packed *p = &vq->packed;
	struct svq_packed_desc *d = &p->desc[p->last_used_idx];
	bool wrap = p->used_wrap_counter;
	uint16_t flags, uid, n;
	uint32_t ulen;

	/* Flags before id/len: pairs with the device's release store of the
	 * used descriptor's flags. */
	flags = svq_ld16_acquire(&d->flags);
	if (!desc_used(flags, wrap))
		return 0;
	if (unlikely(!vq->inflight))
		return svq_ring_fail(&vq->rc, SVQ_RULE_USED_IDX,
				     "used descriptor %u with nothing outstanding",
				     p->last_used_idx);
	uid = svq_ld16(&d->id);
	ulen = svq_ld32(&d->len);
	if (unlikely(uid >= vq->rc.num || !vq->id_inflight[uid]))
		return svq_ring_fail(&vq->rc, SVQ_RULE_USED_ID,
				     "used id %u was not in flight", uid);

	n = vq->id_ndescs[uid];
	advance(&p->last_used_idx, &p->used_wrap_counter, n, vq->rc.num);
	free_id(vq, uid);
	if ((vq->rc.flags & SVQ_RING_F_EVENT_IDX) && vq->cb_enabled)
		svq_st16(&p->driver->off_wrap,
			 p->last_used_idx | (uint16_t)p->used_wrap_counter << 15);
	*id = uid;
	*len = ulen;
	return 1;
}

bool svq_drv_enable_cb_packed(struct svq_drv *vq)
{
	struct svq_drv_packed *p = &vq->packed;
	uint16_t flags;

	if (vq->rc.flags & SVQ_RING_F_EVENT_IDX) {
		svq_st16(&p->driver->off_wrap,
			 p->last_used_idx | (uint16_t)p->used_wrap_counter << 15);
		svq_st16(&p->driver->flags, SVQ_EVENT_F_DESC);
	} else {
		svq_st16(&p->driver->flags, SVQ_EVENT_F_ENABLE);
	}
	/* Enable before re-checking the used position: pairs with the
	 * device's full barrier between writing a used descriptor and reading
	 * our event suppression. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	flags = svq_ld16_acquire(&p->desc[p->last_used_idx].flags);
	return desc_used(flags, p->used_wrap_counter);
}

void svq_drv_disable_cb_packed(struct svq_drv *vq)
{
	svq_st16(&vq->packed.driver->flags, SVQ_EVENT_F_DISABLE);
}
