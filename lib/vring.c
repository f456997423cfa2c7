/* SPDX-License-Identifier: MIT */
/*
 * Ring lifecycle, the broken state, and the layout-independent checks in front
 * of the split/packed code.
 */
#include <stdio.h>
#include <stdlib.h>
#include "layout.h"

static const struct {
	const char *name;
	int err;
} rules[SVQ_NR_RULES] = {
	[SVQ_RULE_NONE]			= { "none", 0 },
	[SVQ_RULE_AVAIL_IDX]		= { "avail-idx", -EPROTO },
	[SVQ_RULE_HEAD_RANGE]		= { "head-range", -EINVAL },
	[SVQ_RULE_NEXT_RANGE]		= { "next-range", -EINVAL },
	[SVQ_RULE_CHAIN_LOOP]		= { "chain-loop", -ELOOP },
	[SVQ_RULE_INDIRECT_LEN]		= { "indirect-len", -EINVAL },
	[SVQ_RULE_INDIRECT_NESTED]	= { "indirect-nested", -EINVAL },
	[SVQ_RULE_INDIRECT_NEXT]	= { "indirect-next", -EINVAL },
	[SVQ_RULE_READ_AFTER_WRITE]	= { "read-after-write", -EINVAL },
	[SVQ_RULE_ZERO_LEN]		= { "zero-len", -EINVAL },
	[SVQ_RULE_ADDR_OVERFLOW]	= { "addr-overflow", -EOVERFLOW },
	[SVQ_RULE_ADDR_UNMAPPED]	= { "addr-unmapped", -EFAULT },
	[SVQ_RULE_TOTAL_LEN]		= { "total-len", -EOVERFLOW },
	[SVQ_RULE_TOO_MANY_SEGS]	= { "too-many-segs", -E2BIG },
	[SVQ_RULE_INFLIGHT]		= { "inflight", -EPROTO },
	[SVQ_RULE_ID_RANGE]		= { "id-range", -EINVAL },
	[SVQ_RULE_WRAP]			= { "wrap", -EPROTO },
	[SVQ_RULE_INDIRECT_FEATURE]	= { "indirect-feature", -EPROTO },
	[SVQ_RULE_USED_IDX]		= { "used-idx", -EPROTO },
	[SVQ_RULE_USED_ID]		= { "used-id", -EPROTO },
};

const char *svq_rule_name(enum svq_rule rule)
{
	if ((unsigned int)rule >= SVQ_NR_RULES || !rules[rule].name)
		return "unknown";
	return rules[rule].name;
}

int svq_rule_errno(enum svq_rule rule)
{
	if ((unsigned int)rule >= SVQ_NR_RULES || rule == SVQ_RULE_NONE)
		return -EINVAL;
	return rules[rule].err;
}

int svq_ring_fail(struct svq_ring_common *rc, enum svq_rule rule,
		  const char *fmt, ...)
{
	char detail[96];
	va_list ap;

	if (rc->broken)		/* log once: the first reason stands */
		return -EIO;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	snprintf(rc->reason, sizeof(rc->reason), "%s: broken (%s): %s",
		 rc->name, svq_rule_name(rule), detail);
	rc->broken = true;
	rc->rule = rule;
	svq_log(rc->log, rc->log_ctx, SVQISO_LOG_ERR, "%s", rc->reason);
	return svq_rule_errno(rule);
}

size_t svq_split_desc_size(uint16_t num)
{
	return sizeof(struct svq_split_desc) * num;
}

size_t svq_split_avail_size(uint16_t num)
{
	return sizeof(struct svq_split_avail) + sizeof(uint16_t) * (num + 1u);
}

size_t svq_split_used_size(uint16_t num)
{
	return sizeof(struct svq_split_used) +
	       sizeof(struct svq_used_elem) * num + sizeof(uint16_t);
}

size_t svq_packed_desc_size(uint16_t num)
{
	return sizeof(struct svq_packed_desc) * num;
}

static int common_init(struct svq_ring_common *rc, uint8_t layout, uint16_t num,
		       uint32_t flags, svqiso_log_fn log, void *log_ctx,
		       const char *name)
{
	memset(rc, 0, sizeof(*rc));
	rc->log = log;
	rc->log_ctx = log_ctx;
	rc->name = name ? name : "ring";
	if (layout != SVQISO_LAYOUT_SPLIT && layout != SVQISO_LAYOUT_PACKED)
		return -EINVAL;
	if (num == 0 || num > SVQ_RING_MAX)
		return -EINVAL;
	if (layout == SVQISO_LAYOUT_SPLIT && (num & (num - 1)))
		return -EINVAL;
	if (flags & ~SVQ_RING_F_ALL)
		return -EINVAL;
	rc->layout = layout;
	rc->num = num;
	rc->flags = flags;
	return 0;
}

/* ---- Device role ---- */

int svq_dev_map_area(struct svq_dev *vq, uint64_t gpa, size_t size,
		     unsigned int align, void **out)
{
	uint64_t len = size;
	void *hva;

	if (gpa % align)
		return -EINVAL;
	hva = vq->mem->translate(vq->mem_ctx, gpa, &len);
	if (!hva || len < size)
		return -EFAULT;
	if ((uintptr_t)hva % align)
		return -EINVAL;
	*out = hva;
	return 0;
}

int svq_dev_init(struct svq_dev *vq, const struct svq_dev_cfg *cfg)
{
	unsigned int ind;
	int err;

	memset(vq, 0, sizeof(*vq));
	if (!cfg || !cfg->mem || !cfg->mem->translate ||
	    cfg->mem->sz < svq_offsetofend(svqiso_mem_ops, translate))
		return -EINVAL;
	err = common_init(&vq->rc, cfg->layout, cfg->num, cfg->flags, cfg->log,
			  cfg->log_ctx, cfg->name);
	if (err)
		return err;
	vq->mem = cfg->mem;
	vq->mem_ctx = cfg->mem_ctx;
	if (cfg->mem->translate == svq_mem_ops_translate && cfg->mem_ctx)
		vq->map = cfg->mem_ctx;
	ind = cfg->max_indirect ? cfg->max_indirect : cfg->num;
	vq->max_indirect = ind;
	vq->notify_enabled = true;
	vq->gpa_desc = cfg->desc;
	vq->gpa_device = cfg->device;

	err = svq_layout_dev_attach(vq, cfg);
	if (err)
		return err;

	vq->id_inflight = calloc(cfg->num, sizeof(*vq->id_inflight));
	vq->id_ndescs = calloc(cfg->num, sizeof(*vq->id_ndescs));
	vq->desc_stamp = calloc(cfg->num, sizeof(*vq->desc_stamp));
	vq->ind_stamp = calloc(ind, sizeof(*vq->ind_stamp));
	vq->ind_buf = calloc(ind, 16);
	if (!vq->id_inflight || !vq->id_ndescs || !vq->desc_stamp ||
	    !vq->ind_stamp || !vq->ind_buf) {
		svq_dev_fini(vq);
		return -ENOMEM;
	}
	return 0;
}

int svq_dev_remap(struct svq_dev *vq, const struct svq_dev_cfg *cfg)
{
	bool split = vq->rc.layout == SVQISO_LAYOUT_SPLIT;
	uint16_t num = vq->rc.num;
	void *desc, *driver, *device;
	int err;

	err = svq_dev_map_area(vq, cfg->desc, split ? svq_split_desc_size(num) :
			       svq_packed_desc_size(num), 16, &desc);
	if (!err)
		err = svq_dev_map_area(vq, cfg->driver, split ?
				       svq_split_avail_size(num) :
				       SVQ_PACKED_EVENT_SIZE, split ? 2 : 4, &driver);
	if (!err)
		err = svq_dev_map_area(vq, cfg->device, split ?
				       svq_split_used_size(num) :
				       SVQ_PACKED_EVENT_SIZE, 4, &device);
	if (err)
		return err;
	if (split) {
		vq->split.desc = desc;
		vq->split.avail = driver;
		vq->split.used = device;
	} else {
		vq->packed.desc = desc;
		vq->packed.driver = driver;
		vq->packed.device = device;
	}
	return 0;
}

void svq_dev_fini(struct svq_dev *vq)
{
	free(vq->id_inflight);
	free(vq->id_ndescs);
	free(vq->desc_stamp);
	free(vq->ind_stamp);
	free(vq->ind_buf);
	vq->id_inflight = NULL;
	vq->id_ndescs = NULL;
	vq->desc_stamp = NULL;
	vq->ind_stamp = NULL;
	vq->ind_buf = NULL;
}

int svq_dev_pop(struct svq_dev *vq, struct svq_elem *e)
{
	int ret;

	e->nseg = 0;
	if (unlikely(vq->rc.broken))
		return -EIO;
	ret = svq_layout_dev_pop(vq, e);
	if (unlikely(ret < 0)) {
		/* Nothing half-built leaks out of a rejected chain. */
		e->nseg = 0;
		e->nout = 0;
		e->out_bytes = 0;
		e->in_bytes = 0;
	}
	return ret;
}

int svq_dev_push(struct svq_dev *vq, uint16_t id, uint32_t len)
{
	if (unlikely(vq->rc.broken))
		return -EIO;
	if (id >= vq->rc.num || !vq->id_inflight[id])
		return -EINVAL;
	/* Bookkeeping first: nothing of it is needed across the call. */
	vq->id_inflight[id] = 0;
	vq->inflight--;
	svq_layout_dev_push(vq, id, len);
	return 0;
}

int svq_dev_flush(struct svq_dev *vq)
{
	if (unlikely(vq->rc.broken))
		return -EIO;
	return svq_layout_dev_flush(vq);
}

bool svq_dev_need_notify(struct svq_dev *vq)
{
	if (unlikely(vq->rc.broken))
		return false;
	return svq_layout_dev_need_notify(vq);
}

bool svq_dev_enable_notify(struct svq_dev *vq)
{
	if (unlikely(vq->rc.broken))
		return false;
	vq->notify_enabled = true;
	return svq_layout_dev_enable_notify(vq);
}

void svq_dev_disable_notify(struct svq_dev *vq)
{
	if (unlikely(vq->rc.broken))
		return;
	vq->notify_enabled = false;
	svq_layout_dev_disable_notify(vq);
}

int svq_dev_unpop(struct svq_dev *vq, uint16_t id)
{
	if (unlikely(vq->rc.broken))
		return -EIO;
	if (id >= vq->rc.num || !vq->id_inflight[id])
		return -EINVAL;
	svq_layout_dev_unpop(vq, id);
	return 0;
}

bool svq_dev_has_avail(struct svq_dev *vq)
{
	if (unlikely(vq->rc.broken))
		return false;
	return svq_layout_dev_has_avail(vq);
}

uint32_t svq_dev_get_base(const struct svq_dev *vq)
{
	return svq_layout_dev_get_base(vq);
}

/* ---- Driver role ---- */

int svq_drv_init(struct svq_drv *vq, const struct svq_drv_cfg *cfg)
{
	int err;

	memset(vq, 0, sizeof(*vq));
	if (!cfg)
		return -EINVAL;
	err = common_init(&vq->rc, cfg->layout, cfg->num, cfg->flags, cfg->log,
			  cfg->log_ctx, cfg->name);
	if (err)
		return err;
	if (!cfg->desc || !cfg->driver || !cfg->device ||
	    (uintptr_t)cfg->desc % 16)
		return -EINVAL;
	if (cfg->layout == SVQISO_LAYOUT_SPLIT &&
	    ((uintptr_t)cfg->driver % 2 || (uintptr_t)cfg->device % 4))
		return -EINVAL;
	if (cfg->layout == SVQISO_LAYOUT_PACKED &&
	    ((uintptr_t)cfg->driver % 4 || (uintptr_t)cfg->device % 4))
		return -EINVAL;

	vq->id_inflight = calloc(cfg->num, sizeof(*vq->id_inflight));
	vq->id_ndescs = calloc(cfg->num, sizeof(*vq->id_ndescs));
	vq->id_seq = calloc(cfg->num, sizeof(*vq->id_seq));
	if (!vq->id_inflight || !vq->id_ndescs || !vq->id_seq) {
		svq_drv_fini(vq);
		return -ENOMEM;
	}
	vq->num_free = cfg->num;
	vq->cb_enabled = true;
	err = svq_layout_drv_attach(vq, cfg);
	if (err)
		svq_drv_fini(vq);
	return err;
}

void svq_drv_fini(struct svq_drv *vq)
{
	free(vq->id_inflight);
	free(vq->id_ndescs);
	free(vq->id_seq);
	vq->id_inflight = NULL;
	vq->id_ndescs = NULL;
	vq->id_seq = NULL;
	/* The next links are the same allocation in both layouts. */
	if (vq->rc.layout == SVQISO_LAYOUT_SPLIT) {
		free(vq->split.next);
		vq->split.next = NULL;
	} else {
		free(vq->packed.next);
		vq->packed.next = NULL;
	}
}

int svq_drv_add(struct svq_drv *vq, const struct svq_seg *seg, unsigned int nseg,
		const struct svq_indirect *ind, uint16_t *id)
{
	bool seen_write = false;
	unsigned int i;

	if (unlikely(vq->rc.broken))
		return -EIO;
	if (!seg || !id || nseg == 0 || nseg > UINT16_MAX)
		return -EINVAL;
	for (i = 0; i < nseg; i++) {
		if (seg[i].len == 0 || (!seg[i].write && seen_write))
			return -EINVAL;
		seen_write |= seg[i].write;
	}
	if (ind) {
		if (!(vq->rc.flags & SVQ_RING_F_INDIRECT) || !ind->hva ||
		    nseg > ind->cap || (uintptr_t)ind->hva % 16 ||
		    nseg * 16u > UINT32_MAX)
			return -EINVAL;
		if (vq->num_free < 1)
			return -ENOSPC;
	} else if (vq->num_free < nseg) {
		return -ENOSPC;
	}
	return svq_layout_drv_add(vq, seg, nseg, ind, id);
}

bool svq_drv_kick_prepare(struct svq_drv *vq)
{
	if (unlikely(vq->rc.broken))
		return false;
	return svq_layout_drv_kick_prepare(vq);
}

int svq_drv_get_used(struct svq_drv *vq, uint16_t *id, uint32_t *len)
{
	if (unlikely(vq->rc.broken))
		return -EIO;
	return svq_layout_drv_get_used(vq, id, len);
}

int svq_drv_device_taken(const struct svq_drv *vq)
{
	uint32_t word, pos, end, span, ahead;
	uint16_t id;
	int err, unseen = 0;

	if (unlikely(vq->rc.broken))
		return -EIO;
	err = svq_layout_drv_device_word(vq, &word);
	if (err)
		return err;
	if (svq_layout_drv_pos(vq, word, &pos, &end, &span))
		return -ENODATA;	/* not a position on this ring */
	ahead = (end + span - pos) % span;
	for (id = 0; id < vq->rc.num; id++)
		if (vq->id_inflight[id] && vq->id_seq[id] + ahead >= vq->seq)
			unseen++;
	return vq->inflight - unseen;
}

int svq_drv_rewind(struct svq_drv *vq, uint32_t base, uint16_t *ids)
{
	uint32_t pos, end, span, total, left, off;
	uint64_t from;
	uint16_t id, k, slots;
	int err;

	if (unlikely(vq->rc.broken))
		return -EIO;
	err = svq_layout_drv_pos(vq, base, &pos, &end, &span);
	if (err)
		return err;
	/* Slots from the base to the next one: each must belong to a chain
	 * in flight that begins at or after the base. */
	total = left = (end + span - pos) % span;
	if (total > vq->rc.num)
		return -EPROTO;
	/* The base, counted as the chains are: the latest place it can
	 * name. Older chains still in flight were taken before it, however
	 * many times the ring went round since. */
	from = vq->seq - total;
	for (k = 0; k < vq->rc.num; k++)
		ids[k] = UINT16_MAX;
	for (id = 0; id < vq->rc.num; id++) {
		if (!vq->id_inflight[id] || vq->id_seq[id] < from)
			continue;
		off = (uint32_t)(vq->id_seq[id] - from);
		/* Offsets are distinct and below num: slot order. */
		ids[off] = id;
		slots = svq_layout_drv_chain_slots(vq, id);
		if (slots > left)
			return -EPROTO;
		left -= slots;
	}
	if (left)	/* slots after the base that no chain in flight holds */
		return -EPROTO;
	/* Oldest first, packed down. */
	for (k = 0, off = 0; off < total; off++)
		if (ids[off] != UINT16_MAX)
			ids[k++] = ids[off];
	for (id = 0; id < k; id++)
		svq_layout_drv_detach(vq, ids[id]);
	/* The device saw nothing from the base on: the ring ends there, so
	 * the same base again takes back nothing more. */
	svq_layout_drv_retract(vq, pos);
	vq->seq = from;
	return k;
}

bool svq_drv_enable_cb(struct svq_drv *vq)
{
	if (unlikely(vq->rc.broken))
		return false;
	vq->cb_enabled = true;
	return svq_layout_drv_enable_cb(vq);
}

void svq_drv_disable_cb(struct svq_drv *vq)
{
	if (unlikely(vq->rc.broken))
		return;
	vq->cb_enabled = false;
	svq_layout_drv_disable_cb(vq);
}
