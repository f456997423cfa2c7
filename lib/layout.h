/* SPDX-License-Identifier: MIT */
/*
 * Split/packed dispatch: one switch per operation, so calls stay direct and
 * inlinable (no function pointers, no retpolines). The layout was validated
 * at init, so the fall-through return never runs.
 */
#ifndef SVQ_LAYOUT_H
#define SVQ_LAYOUT_H

#include "split.h"
#include "packed.h"

static inline int svq_layout_dev_attach(struct svq_dev *vq, const struct svq_dev_cfg *cfg)
{
	switch (cfg->layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_dev_attach_split(vq, cfg);
	case SVQISO_LAYOUT_PACKED:
		return svq_dev_attach_packed(vq, cfg);
	}
	return -EINVAL;
}

static inline int svq_layout_dev_pop(struct svq_dev *vq, struct svq_elem *e)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_dev_pop_split(vq, e);
	case SVQISO_LAYOUT_PACKED:
		return svq_dev_pop_packed(vq, e);
	}
	return -EINVAL;
}

static inline void svq_layout_dev_push(struct svq_dev *vq, uint16_t id, uint32_t len)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		svq_dev_push_split(vq, id, len);
		return;
	case SVQISO_LAYOUT_PACKED:
		svq_dev_push_packed(vq, id, len);
		return;
	}
}

static inline int svq_layout_dev_flush(struct svq_dev *vq)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_dev_flush_split(vq);
	case SVQISO_LAYOUT_PACKED:
		return svq_dev_flush_packed(vq);
	}
	return 0;
}

static inline bool svq_layout_dev_need_notify(struct svq_dev *vq)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_dev_need_notify_split(vq);
	case SVQISO_LAYOUT_PACKED:
		return svq_dev_need_notify_packed(vq);
	}
	return true;
}

static inline bool svq_layout_dev_enable_notify(struct svq_dev *vq)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_dev_enable_notify_split(vq);
	case SVQISO_LAYOUT_PACKED:
		return svq_dev_enable_notify_packed(vq);
	}
	return false;
}

static inline void svq_layout_dev_disable_notify(struct svq_dev *vq)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		svq_dev_disable_notify_split(vq);
		return;
	case SVQISO_LAYOUT_PACKED:
		svq_dev_disable_notify_packed(vq);
		return;
	}
}

static inline bool svq_layout_dev_has_avail(struct svq_dev *vq)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_dev_has_avail_split(vq);
	case SVQISO_LAYOUT_PACKED:
		return svq_dev_has_avail_packed(vq);
	}
	return false;
}

static inline uint32_t svq_layout_dev_get_base(const struct svq_dev *vq)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_dev_get_base_split(vq);
	case SVQISO_LAYOUT_PACKED:
		return svq_dev_get_base_packed(vq);
	}
	return 0;
}

static inline int svq_layout_drv_attach(struct svq_drv *vq, const struct svq_drv_cfg *cfg)
{
	switch (cfg->layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_drv_attach_split(vq, cfg);
	case SVQISO_LAYOUT_PACKED:
		return svq_drv_attach_packed(vq, cfg);
	}
	return -EINVAL;
}

static inline int svq_layout_drv_add(struct svq_drv *vq, const struct svq_seg *seg,
				  unsigned int nseg, const struct svq_indirect *ind,
				  uint16_t *id)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_drv_add_split(vq, seg, nseg, ind, id);
	case SVQISO_LAYOUT_PACKED:
		return svq_drv_add_packed(vq, seg, nseg, ind, id);
	}
	return -EINVAL;
}

static inline bool svq_layout_drv_kick_prepare(struct svq_drv *vq)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_drv_kick_prepare_split(vq);
	case SVQISO_LAYOUT_PACKED:
		return svq_drv_kick_prepare_packed(vq);
	}
	return false;
}

static inline int svq_layout_drv_get_used(struct svq_drv *vq, uint16_t *id, uint32_t *len)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_drv_get_used_split(vq, id, len);
	case SVQISO_LAYOUT_PACKED:
		return svq_drv_get_used_packed(vq, id, len);
	}
	return -EINVAL;
}

static inline bool svq_layout_drv_enable_cb(struct svq_drv *vq)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_drv_enable_cb_split(vq);
	case SVQISO_LAYOUT_PACKED:
		return svq_drv_enable_cb_packed(vq);
	}
	return false;
}

static inline void svq_layout_drv_disable_cb(struct svq_drv *vq)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		svq_drv_disable_cb_split(vq);
		return;
	case SVQISO_LAYOUT_PACKED:
		svq_drv_disable_cb_packed(vq);
		return;
	}
}

static inline void svq_layout_dev_unpop(struct svq_dev *vq, uint16_t id)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		svq_dev_unpop_split(vq, id);
		return;
	case SVQISO_LAYOUT_PACKED:
		svq_dev_unpop_packed(vq, id);
		return;
	}
}

static inline void svq_layout_drv_detach(struct svq_drv *vq, uint16_t id)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		svq_drv_detach_split(vq, id);
		return;
	case SVQISO_LAYOUT_PACKED:
		svq_drv_detach_packed(vq, id);
		return;
	}
}

/*
 * Where the device says it reads next, in a vring base's form (for
 * svq_layout_drv_pos()); -ENODATA when it publishes no position.
 */
static inline int svq_layout_drv_device_word(const struct svq_drv *vq, uint32_t *word)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_drv_device_word_split(vq, word);
	case SVQISO_LAYOUT_PACKED:
		return svq_drv_device_word_packed(vq, word);
	}
	return -ENODATA;
}

/* Ring positions chain @id takes: split one avail entry, packed its slots. */
static inline uint16_t svq_layout_drv_chain_slots(const struct svq_drv *vq, uint16_t id)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_drv_chain_slots_split(vq, id);
	case SVQISO_LAYOUT_PACKED:
		return svq_drv_chain_slots_packed(vq, id);
	}
	return 1;
}

/*
 * Positions on the ring as one count modulo *@span: *@pos where vring base
 * @base points, *@end where the next chain goes. Return: 0, -EPROTO.
 */
static inline int svq_layout_drv_pos(const struct svq_drv *vq, uint32_t base,
				     uint32_t *pos, uint32_t *end, uint32_t *span)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		return svq_drv_pos_split(vq, base, pos, end, span);
	case SVQISO_LAYOUT_PACKED:
		return svq_drv_pos_packed(vq, base, pos, end, span);
	}
	return -EINVAL;
}

/*
 * The ring ends at position @pos again (svq_layout_drv_pos()'s form): the
 * chains made available from there on were taken back.
 */
static inline void svq_layout_drv_retract(struct svq_drv *vq, uint32_t pos)
{
	switch (vq->rc.layout) {
	case SVQISO_LAYOUT_SPLIT:
		svq_drv_retract_split(vq, pos);
		return;
	case SVQISO_LAYOUT_PACKED:
		svq_drv_retract_packed(vq, pos);
		return;
	}
}

#endif /* SVQ_LAYOUT_H */
