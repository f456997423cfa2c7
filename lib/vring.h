/* SPDX-License-Identifier: MIT */
/*
 * Ring formats, both layouts, both roles.
 *
 *  - Device role (struct svq_dev): svqiso reads a ring some driver wrote (the
 *    guest's ring). Everything in it is hostile: every descriptor is read once
 *    into private memory, every walk is bounded, and a violation marks the ring
 *    broken with the rule it broke.
 *  - Driver role (struct svq_drv): svqiso writes a ring some device reads (the
 *    shadow ring). Descriptor bookkeeping (free list, next links, chain lengths)
 *    is private; the device's used entries are validated before use.
 *
 * Once broken, a ring touches no ring memory again: calls returning int
 * return -EIO, predicates return false, and nothing is written, not even
 * completions of chains that were valid, until the ring is set up anew.
 *
 * Thread safety: one svq_dev or svq_drv is single-threaded; the caller
 * serializes all calls on it.
 */
#ifndef SVQ_VRING_H
#define SVQ_VRING_H

#include <endian.h>
#include "internal.h"
#include "mem_priv.h"
#include "dirty.h"

/* ---- Wire formats (VIRTIO 1.2), all little-endian ---- */

#define SVQ_DESC_F_NEXT		1
#define SVQ_DESC_F_WRITE	2
#define SVQ_DESC_F_INDIRECT	4
#define SVQ_DESC_F_AVAIL	(1 << 7)	/* packed only */
#define SVQ_DESC_F_USED		(1 << 15)	/* packed only */

#define SVQ_AVAIL_F_NO_INTERRUPT 1	/* split, driver -> device */
#define SVQ_USED_F_NO_NOTIFY	 1	/* split, device -> driver */

#define SVQ_EVENT_F_ENABLE	0	/* packed event suppression flags */
#define SVQ_EVENT_F_DISABLE	1
#define SVQ_EVENT_F_DESC	2

#define SVQ_RING_MAX		32768	/* both layouts */

struct svq_split_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct svq_split_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];	/* num entries, then used_event */
};

struct svq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct svq_split_used {
	uint16_t flags;
	uint16_t idx;
	struct svq_used_elem ring[];	/* num entries, then avail_event (le16) */
};

struct svq_packed_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

struct svq_packed_event {
	uint16_t off_wrap;	/* bits 0-14 offset, bit 15 wrap counter */
	uint16_t flags;		/* SVQ_EVENT_F_* */
};

/*
 * Ring word accessors: explicit byte order, single-copy atomic so a racing
 * peer never makes us read a field twice or see it torn.
 */
#define SVQ_LD(bits, p, mo) le##bits##toh(__atomic_load_n((p), (mo)))
#define SVQ_ST(bits, p, v, mo) __atomic_store_n((p), htole##bits(v), (mo))
#define svq_ld16(p)		SVQ_LD(16, p, __ATOMIC_RELAXED)
#define svq_ld16_acquire(p)	SVQ_LD(16, p, __ATOMIC_ACQUIRE)
#define svq_ld32(p)		SVQ_LD(32, p, __ATOMIC_RELAXED)
#define svq_ld64(p)		SVQ_LD(64, p, __ATOMIC_RELAXED)
#define svq_st16(p, v)		SVQ_ST(16, p, v, __ATOMIC_RELAXED)
#define svq_st16_release(p, v)	SVQ_ST(16, p, v, __ATOMIC_RELEASE)
#define svq_st32(p, v)		SVQ_ST(32, p, v, __ATOMIC_RELAXED)
#define svq_st64(p, v)		SVQ_ST(64, p, v, __ATOMIC_RELAXED)

/* Bytes and alignment of each ring area, as the spec lays them out. */
size_t svq_split_desc_size(uint16_t num);	/* align 16 */
size_t svq_split_avail_size(uint16_t num);	/* align 2, includes used_event */
size_t svq_split_used_size(uint16_t num);	/* align 4, includes avail_event */
size_t svq_packed_desc_size(uint16_t num);	/* align 16 */
#define SVQ_PACKED_EVENT_SIZE sizeof(struct svq_packed_event)	/* align 4 */

/* Event index arithmetic (split "Used Buffer Notification Suppression"). */
static inline bool svq_need_event(uint16_t event_idx, uint16_t new_idx,
				  uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/* ---- Validation rules: each names one way a ring can be malformed ---- */

enum svq_rule {
	SVQ_RULE_NONE = 0,
	/* hostile driver (device role) */
	SVQ_RULE_AVAIL_IDX,		/* split: avail idx ahead by more than num */
	SVQ_RULE_HEAD_RANGE,		/* split: head index >= num */
	SVQ_RULE_NEXT_RANGE,		/* split: next index >= num */
	SVQ_RULE_CHAIN_LOOP,		/* chain longer than the ring (or table) */
	SVQ_RULE_INDIRECT_LEN,		/* indirect len 0, not 16*n, or over limit */
	SVQ_RULE_INDIRECT_NESTED,	/* INDIRECT inside an indirect table */
	SVQ_RULE_INDIRECT_NEXT,		/* INDIRECT together with NEXT */
	SVQ_RULE_READ_AFTER_WRITE,	/* readable descriptor after a writable one */
	SVQ_RULE_ZERO_LEN,		/* zero-length buffer */
	SVQ_RULE_ADDR_OVERFLOW,		/* addr + len wraps */
	SVQ_RULE_ADDR_UNMAPPED,		/* buffer outside guest memory */
	SVQ_RULE_TOTAL_LEN,		/* chain total >= 2^32 */
	SVQ_RULE_TOO_MANY_SEGS,		/* more segments than the element holds */
	SVQ_RULE_INFLIGHT,		/* more in flight than num, or id reused */
	SVQ_RULE_ID_RANGE,		/* packed: buffer id >= num */
	SVQ_RULE_WRAP,			/* packed: chain member's wrap counter out of step */
	SVQ_RULE_INDIRECT_FEATURE,	/* INDIRECT used without VIRTIO_F_INDIRECT_DESC */
	/* hostile device (driver role) */
	SVQ_RULE_USED_IDX,		/* used idx jumps past what is outstanding */
	SVQ_RULE_USED_ID,		/* used id never issued or already completed */
	/*
	 * No rule for a packed used descriptor whose AVAIL and USED bits
	 * differ: such a slot is simply not used (it may hold our own
	 * available descriptor of the next lap, or a stale chain member).
	 */
	SVQ_NR_RULES
};

/* Short name of @rule, e.g. "avail-idx"; never NULL. */
const char *svq_rule_name(enum svq_rule rule);

/* Errno each rule yields on first violation (later calls yield -EIO). */
int svq_rule_errno(enum svq_rule rule);

/* State every ring carries for the broken state and logging. */
struct svq_ring_common {
	uint8_t layout;		/* enum svqiso_layout */
	uint16_t num;
	uint32_t flags;		/* SVQ_RING_F_* */
	bool broken;
	enum svq_rule rule;	/* why it is broken */
	char reason[128];	/* the logged line */
	svqiso_log_fn log;
	void *log_ctx;
	const char *name;	/* for log lines; never NULL */
};

#define SVQ_RING_F_EVENT_IDX	(1u << 0)	/* VIRTIO_F_EVENT_IDX (split and packed) */
#define SVQ_RING_F_INDIRECT	(1u << 1)	/* VIRTIO_F_INDIRECT_DESC */
#define SVQ_RING_F_ALL		(SVQ_RING_F_EVENT_IDX | SVQ_RING_F_INDIRECT)

/*
 * svq_ring_fail() - mark a ring broken: log once, remember the rule.
 *
 * Return: svq_rule_errno(@rule), for "return svq_ring_fail(...)".
 */
int svq_ring_fail(struct svq_ring_common *rc, enum svq_rule rule,
		  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- Element: one validated chain ---- */

struct svq_seg {
	uint64_t addr;		/* address in the ring's address space */
	void *hva;		/* device role: host address; driver role: unused */
	uint32_t len;
	bool write;		/* device-writable */
};

struct svq_elem {
	uint16_t id;		/* split: head index; packed: buffer id */
	uint16_t ndescs;	/* ring descriptors the chain used (indirect: 1) */
	uint16_t nseg;		/* filled segments: readable first, then writable */
	uint16_t nout;		/* readable segments */
	uint32_t out_bytes;	/* readable bytes */
	uint32_t in_bytes;	/* writable bytes */
	uint16_t max_seg;	/* capacity of seg[]; set by the caller */
	struct svq_seg *seg;	/* set by the caller */
};

/* ---- Device role ---- */

struct svq_dev_cfg {
	uint8_t layout;		/* enum svqiso_layout */
	uint16_t num;		/* split: power of two; packed: any; <= SVQ_RING_MAX */
	uint32_t flags;		/* SVQ_RING_F_* */
	uint64_t desc;		/* guest address of the descriptor area */
	uint64_t driver;	/* split: avail ring; packed: driver event suppression */
	uint64_t device;	/* split: used ring; packed: device event suppression */
	const struct svqiso_mem_ops *mem;
	void *mem_ctx;
	uint16_t max_indirect;	/* entries per indirect table; 0: num */
	bool resume;		/* false: a fresh ring; true: start at @base */
	uint32_t base;		/* vring base, as svq_dev_get_base() reports it */
	svqiso_log_fn log;
	void *log_ctx;
	const char *name;	/* NULL: "ring" */
};

struct svq_dev_split {
	struct svq_split_desc *desc;
	struct svq_split_avail *avail;
	struct svq_split_used *used;
	uint16_t last_avail_idx;	/* next avail entry to pop */
	uint16_t avail_idx_shadow;	/* last avail->idx read */
	uint16_t used_idx;		/* next used entry to write (private) */
	uint16_t published_used_idx;	/* used->idx as last written */
	uint16_t signalled_used;	/* used idx when the driver was last notified */
	bool signalled_used_valid;
};

struct svq_dev_packed {
	struct svq_packed_desc *desc;
	struct svq_packed_event *driver;	/* written by the driver */
	struct svq_packed_event *device;	/* written by us */
	uint16_t last_avail_idx;
	bool avail_wrap_counter;
	uint16_t used_idx;			/* next used slot (private) */
	bool used_wrap_counter;
	/* Batched used entries: the first one's flags are stored last. */
	uint16_t pending;			/* entries written, not yet published */
	uint32_t pending_descs;			/* slots those entries cover */
	uint16_t pending_head;			/* slot of the first pending entry */
	uint16_t pending_head_flags;
	uint16_t published_used_idx;		/* used_idx at last publish */
	bool published_used_wrap;
	/* Slots published since the last decision: a position alone repeats
	 * every two laps, so the window is measured, not remembered. */
	uint32_t used_since_signal;
	bool signalled_used_valid;
	uint16_t inflight_descs;		/* ring slots held by popped chains */
};

struct svq_dev {
	struct svq_ring_common rc;
	const struct svqiso_mem_ops *mem;
	void *mem_ctx;
	/* The built-in map behind @mem, translated inline; else NULL. */
	const struct svqiso_mem *map;
	struct svq_mem_hint hint;	/* with @map: the last region hit */
	uint16_t max_indirect;
	uint16_t inflight;		/* chains popped, not pushed */
	bool notify_enabled;		/* we asked the driver for kicks */
	uint8_t *id_inflight;		/* [num]: 1 while that id is popped */
	uint16_t *id_ndescs;		/* [num]: ring slots of that chain */
	uint32_t gen;			/* walk generation for the stamps below */
	uint32_t *desc_stamp;		/* [num]: gen of the walk that read it */
	uint32_t *ind_stamp;		/* [max_indirect] */
	void *ind_buf;			/* [max_indirect * 16] private table copy */
	/* Dirty logging of what we write to the ring; NULL: off. */
	struct svq_dirty *dirty;
	uint64_t gpa_desc, gpa_device;	/* guest addresses of those areas */
	union {
		struct svq_dev_split split;
		struct svq_dev_packed packed;
	};
};

/*
 * svq_dev_dirty() - @n bytes at @p, inside the ring area that starts at
 * @area (host) and @area_gpa (guest), were written: log them.
 */
static inline void svq_dev_dirty(struct svq_dev *vq, const void *area,
				 uint64_t area_gpa, const void *p, size_t n)
{
	if (unlikely(vq->dirty))
		svq_dirty_mark(vq->dirty, area_gpa + (uint64_t)((const uint8_t *)p -
							       (const uint8_t *)area), n);
}

/*
 * svq_dev_init() - attach to a ring a driver has laid out in guest memory.
 *
 * Return: 0; -EINVAL (layout, num, flags, misaligned or NULL areas),
 * -EFAULT (an area is not contiguous in guest memory), -ENOMEM.
 */
int svq_dev_init(struct svq_dev *vq, const struct svq_dev_cfg *cfg);
void svq_dev_fini(struct svq_dev *vq);
/*
 * svq_dev_remap() - translate the ring areas of @cfg again (the memory map
 * changed); positions and state stay. Return: 0; -EFAULT, -EINVAL (an area
 * no longer mapped, or misaligned): nothing changed.
 */
int svq_dev_remap(struct svq_dev *vq, const struct svq_dev_cfg *cfg);

/*
 * svq_dev_map_area() - translate one ring area, which must be contiguous in
 * host memory and aligned as the spec asks.
 *
 * Return: 0; -EINVAL (misaligned), -EFAULT (not wholly mapped).
 */
int svq_dev_map_area(struct svq_dev *vq, uint64_t gpa, size_t size,
		     unsigned int align, void **out);

/*
 * svq_dev_pop() - take the next available chain.
 * @e: element with seg/max_seg set by the caller; filled on success, and left
 *     with nseg == 0 on any error
 *
 * Return: 1 (popped), 0 (ring empty), -errno from svq_rule_errno() on a
 * violation (the ring is now broken, nothing was consumed), -EIO if already
 * broken.
 */
int svq_dev_pop(struct svq_dev *vq, struct svq_elem *e);

/*
 * svq_dev_push() - write a used entry for chain @id; not visible to the
 * driver until svq_dev_flush().
 *
 * Return: 0; -EINVAL (@id is not in flight), -EIO (broken).
 */
int svq_dev_push(struct svq_dev *vq, uint16_t id, uint32_t len);

/* svq_dev_flush() - publish every pushed entry. Return: entries published, -EIO. */
int svq_dev_flush(struct svq_dev *vq);

/*
 * svq_dev_need_notify() - whether the driver wants a notification for what
 * was published since the last notification; records that one is sent.
 */
bool svq_dev_need_notify(struct svq_dev *vq);

/*
 * svq_dev_enable_notify() - ask the driver to notify on new buffers.
 *
 * Return: true if buffers became available meanwhile (poll again).
 */
bool svq_dev_enable_notify(struct svq_dev *vq);
void svq_dev_disable_notify(struct svq_dev *vq);

/*
 * svq_dev_unpop() - chain @id, popped and not pushed, goes back to the ring:
 * the next pops take it again. Only the chains popped last may go back
 * (the ring position is rewound by the chain's length); the caller gives
 * back a suffix of what it popped.
 *
 * Return: 0; -EINVAL (@id not in flight), -EIO (broken).
 */
int svq_dev_unpop(struct svq_dev *vq, uint16_t id);

/* Whether the driver has made a buffer available (no validation). */
bool svq_dev_has_avail(struct svq_dev *vq);

/*
 * Vring base as vhost-user carries it: split: last_avail_idx; packed, as
 * QEMU does: last_avail_idx | avail_wrap_counter << 15 in the low half,
 * used_idx | used_wrap_counter << 15 in the high half. Attaching with
 * resume takes the same; a packed high half of 0 means "used where avail
 * is".
 */
uint32_t svq_dev_get_base(const struct svq_dev *vq);

/* ---- Driver role ---- */

struct svq_drv_cfg {
	uint8_t layout;
	uint16_t num;
	uint32_t flags;		/* SVQ_RING_F_* the device accepted */
	void *desc;		/* host address of the descriptor area */
	void *driver;		/* split: avail ring; packed: driver event */
	void *device;		/* split: used ring; packed: device event */
	svqiso_log_fn log;
	void *log_ctx;
	const char *name;
	/*
	 * Split: publish avail->idx as each chain is added, as Linux's
	 * virtqueue_add_split() does, instead of at svq_drv_kick_prepare(). A
	 * device polling the ring then starts on a chain while the driver is
	 * still preparing the next ones, instead of waiting for the whole
	 * batch. Packed heads are always visible at once.
	 */
	bool publish_each;
};

/* Indirect table in memory the device can reach. */
struct svq_indirect {
	void *hva;		/* where we write it */
	uint64_t addr;		/* its address as the device sees it */
	uint16_t cap;		/* entries it holds */
};

struct svq_drv_split {
	struct svq_split_desc *desc;
	struct svq_split_avail *avail;
	struct svq_split_used *used;
	uint16_t free_head;
	uint16_t avail_idx;		/* private copy of avail->idx */
	uint16_t kicked_avail_idx;	/* avail idx at the last kick decision */
	uint16_t last_used_idx;
	uint16_t used_idx_shadow;	/* last used->idx read */
	bool publish_each;		/* svq_drv_cfg.publish_each */
	uint16_t *next;			/* [num] private next links */
};

struct svq_drv_packed {
	struct svq_packed_desc *desc;
	struct svq_packed_event *driver;	/* written by us */
	struct svq_packed_event *device;	/* written by the device */
	uint16_t next_avail_idx;
	bool avail_wrap_counter;
	uint32_t num_added;			/* slots made available since
						 * the last kick decision */
	uint16_t last_used_idx;
	bool used_wrap_counter;
	uint16_t free_head;			/* free buffer id list */
	uint16_t *next;				/* [num] free id links */
};

struct svq_drv {
	struct svq_ring_common rc;
	uint16_t num_free;		/* free descriptors */
	uint16_t inflight;		/* chains added, not used */
	bool cb_enabled;		/* we asked the device for used notifications */
	uint8_t *id_inflight;		/* [num] */
	uint16_t *id_ndescs;		/* [num] descriptors the chain holds */
	uint64_t *id_seq;		/* [num] where the chain was made
					 * available, counted from the ring's
					 * start: a chain held while the ring
					 * goes round many times is not taken
					 * for a newer one in the same place */
	uint64_t seq;			/* where the next chain goes, so
					 * counted: avail entries (split),
					 * slots (packed) */
	union {
		struct svq_drv_split split;
		struct svq_drv_packed packed;
	};
};

/*
 * svq_drv_init() - lay out an empty ring at the given host addresses and
 * zero it.
 *
 * Return: 0; -EINVAL (layout, num, flags, NULL or misaligned areas), -ENOMEM.
 */
int svq_drv_init(struct svq_drv *vq, const struct svq_drv_cfg *cfg);
void svq_drv_fini(struct svq_drv *vq);

/*
 * svq_drv_add() - add a chain.
 * @seg:  @nseg segments, readable ones first (hva is ignored)
 * @ind:  NULL for a direct chain; else the chain goes into this table and
 *        takes a single ring descriptor
 * @id:   receives the id svq_drv_get_used() will report
 *
 * Split: made available at the next svq_drv_kick_prepare(), or on return
 * with svq_drv_cfg.publish_each. Packed: visible to the device on return.
 *
 * Return: 0; -EINVAL (nseg 0, a readable segment after a writable one, a
 * zero-length segment, @ind too small, indirect not negotiated), -ENOSPC (not
 * enough free descriptors), -EIO (broken).
 */
int svq_drv_add(struct svq_drv *vq, const struct svq_seg *seg, unsigned int nseg,
		const struct svq_indirect *ind, uint16_t *id);

/*
 * svq_drv_kick_prepare() - publish added chains; report whether the device
 * asked to be notified of them.
 */
bool svq_drv_kick_prepare(struct svq_drv *vq);

/*
 * svq_drv_get_used() - collect one used entry.
 *
 * Return: 1 (*@id, *@len filled, the chain's descriptors are free again),
 * 0 (none), -errno from svq_rule_errno() when the device broke the protocol
 * (the ring is now broken), -EIO if already broken.
 */
int svq_drv_get_used(struct svq_drv *vq, uint16_t *id, uint32_t *len);

/*
 * svq_drv_rewind() - the device stopped at vring base @base (what it said
 * GET_VRING_BASE): chains made available at or after that point were never
 * seen by it. They are taken back: their ids are no longer in flight (a
 * used entry naming one is a violation) and written to @ids, oldest first
 * (room for num), and the ring ends at @base again, so rewinding to the
 * same base once more takes back nothing. The ring must be laid out afresh
 * (svq_drv_init()) before it carries chains again.
 *
 * Return: how many (>= 0); -EPROTO when @base is not where a chain in
 * flight begins, or claims chains the device already completed (the ring
 * is not marked broken: the caller decides), -EIO (broken).
 */
int svq_drv_rewind(struct svq_drv *vq, uint32_t base, uint16_t *ids);

/*
 * svq_drv_device_taken() - chains in flight that the device's own published
 * position (EVENT_IDX: split avail_event; packed device event offset, while
 * it asks for notifications at one) says it has taken. The device may lie:
 * a hint for when to stop it, never for what to give back.
 *
 * Return: the count (>= 0); -ENODATA (no position published, or none on
 * this ring), -EIO.
 */
int svq_drv_device_taken(const struct svq_drv *vq);

/*
 * svq_drv_enable_cb() - ask the device to notify on used buffers.
 *
 * Return: true if used buffers are already pending (poll again).
 */
bool svq_drv_enable_cb(struct svq_drv *vq);
void svq_drv_disable_cb(struct svq_drv *vq);

#endif /* SVQ_VRING_H */
