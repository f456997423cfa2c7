/* SPDX-License-Identifier: MIT */
/* Split ring: the only code touching vring_desc / avail / used. */
#ifndef SVQ_SPLIT_H
#define SVQ_SPLIT_H

#include "vring.h"

int svq_dev_attach_split(struct svq_dev *vq, const struct svq_dev_cfg *cfg);
int svq_dev_pop_split(struct svq_dev *vq, struct svq_elem *e);
void svq_dev_push_split(struct svq_dev *vq, uint16_t id, uint32_t len);
int svq_dev_flush_split(struct svq_dev *vq);
bool svq_dev_need_notify_split(struct svq_dev *vq);
bool svq_dev_enable_notify_split(struct svq_dev *vq);
void svq_dev_disable_notify_split(struct svq_dev *vq);
bool svq_dev_has_avail_split(struct svq_dev *vq);
uint32_t svq_dev_get_base_split(const struct svq_dev *vq);
void svq_dev_unpop_split(struct svq_dev *vq, uint16_t id);
void svq_drv_detach_split(struct svq_drv *vq, uint16_t id);
int svq_drv_device_word_split(const struct svq_drv *vq, uint32_t *word);
uint16_t svq_drv_chain_slots_split(const struct svq_drv *vq, uint16_t id);
int svq_drv_pos_split(const struct svq_drv *vq, uint32_t base, uint32_t *pos,
		      uint32_t *end, uint32_t *span);
void svq_drv_retract_split(struct svq_drv *vq, uint32_t pos);

int svq_drv_attach_split(struct svq_drv *vq, const struct svq_drv_cfg *cfg);
int svq_drv_add_split(struct svq_drv *vq, const struct svq_seg *seg,
		      unsigned int nseg, const struct svq_indirect *ind,
		      uint16_t *id);
bool svq_drv_kick_prepare_split(struct svq_drv *vq);
int svq_drv_get_used_split(struct svq_drv *vq, uint16_t *id, uint32_t *len);
bool svq_drv_enable_cb_split(struct svq_drv *vq);
void svq_drv_disable_cb_split(struct svq_drv *vq);

#endif /* SVQ_SPLIT_H */
