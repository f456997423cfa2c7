/* SPDX-License-Identifier: MIT */
/*
 * The guest's virtio-blk driver, one queue: split and packed rings written
 * from the VIRTIO 1.2 spec (2.7 split, 2.8 packed). Ring words are stored
 * little-endian and single-copy atomic; every barrier names its pair on the
 * device side.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "guest.h"

/* Descriptor flags (2.7.5, 2.8.1). */
#define F_NEXT		1
#define F_WRITE		2
#define F_INDIRECT	4
#define F_AVAIL		(1u << 7)
#define F_USED		(1u << 15)

#define USED_F_NO_NOTIFY	1	/* split used->flags */

#define EV_ENABLE	0		/* packed event suppression flags */
#define EV_DISABLE	1
#define EV_DESC		2

#define RING_MAX	32768
#define DEFAULT_SEGS	64
#define STATUS_NONE	0xff		/* a status the device never wrote */

/* Wire layouts. */
struct desc {			/* split descriptor */
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct pdesc {			/* packed descriptor */
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

struct used_elem {
	uint32_t id;
	uint32_t len;
};

struct event {			/* packed event suppression */
	uint16_t off_wrap;
	uint16_t flags;
};

#define LD16(p, mo)	le16toh(__atomic_load_n((p), (mo)))
#define LD32(p)		le32toh(__atomic_load_n((p), __ATOMIC_RELAXED))
#define ST16(p, v, mo)	__atomic_store_n((p), htole16(v), (mo))

/* Per-slot guest memory: header, range segment, status. */
struct slot_mem {
	struct virtio_blk_outhdr hdr;
	struct virtio_blk_discard_write_zeroes dz;
	uint8_t status;
	uint8_t pad[15];
};

/* One chain as descriptors, before it goes to the ring or a table. */
struct piece {
	uint64_t addr;
	uint32_t len;
	bool write;
};

struct blkq {
	struct gmem *gm;
	uint8_t layout;
	uint16_t num;
	bool indirect;
	bool event_idx;
	uint16_t max_segs;
	uint64_t rng;
	int kick_fd;
	int call_fd;
	blkq_notify_fn notify;		/* NULL: write kick_fd */
	void *notify_ctx;
	bool broken;
	struct svqiso_vring_addr addr;

	uint64_t slots_gpa;		/* [num] struct slot_mem */
	struct slot_mem *slots;
	uint64_t tables_gpa;		/* [num][max_segs + 2] descriptors */
	uint8_t *tables;
	struct piece *pieces;		/* [max_segs + 2] scratch */

	/* Per request id (split: head index; packed: buffer id). */
	void **cookie;
	uint16_t *ndescs;		/* ring descriptors the chain holds */
	uint8_t *inflight;
	unsigned int nr_inflight;
	uint16_t num_free;		/* free ring descriptors */
	uint16_t *next;			/* private links: split descs, packed ids */
	uint16_t free_head;

	union {
		struct {
			struct desc *desc;
			uint16_t *avail;	/* flags, idx, ring[num], used_event */
			uint8_t *used;		/* flags, idx, ring[num], avail_event */
			uint16_t avail_idx;
			uint16_t last_used;
		} s;
		struct {
			struct pdesc *desc;
			struct event *drv;	/* written by us */
			struct event *dev;	/* written by the device */
			uint16_t next_avail;
			bool avail_wrap;
			uint16_t last_used;
			bool used_wrap;
		} p;
	};
	struct blkq_stats st;
};

/* xorshift64*: only picks indirect or direct. */
static uint64_t rnd(struct blkq *q)
{
	q->rng ^= q->rng >> 12;
	q->rng ^= q->rng << 25;
	q->rng ^= q->rng >> 27;
	return q->rng * 0x2545f4914f6cdd1dull;
}

/* ---- Split ring areas (2.7) ---- */

static uint16_t *s_avail_flags(struct blkq *q) { return &q->s.avail[0]; }
static uint16_t *s_avail_idx(struct blkq *q) { return &q->s.avail[1]; }
static uint16_t *s_avail_ring(struct blkq *q) { return &q->s.avail[2]; }
static uint16_t *s_used_event(struct blkq *q) { return &q->s.avail[2 + q->num]; }
static uint16_t *s_used_flags(struct blkq *q) { return (uint16_t *)q->s.used; }
static uint16_t *s_used_idx(struct blkq *q) { return (uint16_t *)q->s.used + 1; }

static struct used_elem *s_used_ring(struct blkq *q)
{
	return (struct used_elem *)(q->s.used + 4);
}

static uint16_t *s_avail_event(struct blkq *q)
{
	return (uint16_t *)(q->s.used + 4 + 8 * (size_t)q->num);
}

/* Allocate a zeroed, host-contiguous area. */
static void *area(struct blkq *q, uint64_t len, uint64_t align, uint64_t *gpa)
{
	void *h;

	*gpa = gmem_alloc_contig(q->gm, len, align);
	if (!*gpa)
		return NULL;
	h = gmem_hva(q->gm, *gpa, len);
	memset(h, 0, len);
	return h;
}

static int layout_rings(struct blkq *q)
{
	uint16_t n = q->num;

	if (q->layout == SVQISO_LAYOUT_SPLIT) {
		q->s.desc = area(q, 16ull * n, 16, &q->addr.desc);
		q->s.avail = area(q, 6 + 2ull * n, 2, &q->addr.driver);
		q->s.used = area(q, 6 + 8ull * n, 4, &q->addr.device);
		if (!q->s.desc || !q->s.avail || !q->s.used)
			return -ENOMEM;
		for (unsigned int i = 0; i < n; i++)
			q->next[i] = i + 1;
		return 0;
	}
	q->p.desc = area(q, 16ull * n, 16, &q->addr.desc);
	q->p.drv = area(q, sizeof(struct event), 4, &q->addr.driver);
	q->p.dev = area(q, sizeof(struct event), 4, &q->addr.device);
	if (!q->p.desc || !q->p.drv || !q->p.dev)
		return -ENOMEM;
	q->p.avail_wrap = true;
	q->p.used_wrap = true;
	for (unsigned int i = 0; i < n; i++)
		q->next[i] = i + 1;
	/* Interrupts always wanted; with event_idx, at the next used slot. */
	if (q->event_idx) {
		ST16(&q->p.drv->off_wrap, 1u << 15, __ATOMIC_RELAXED);
		ST16(&q->p.drv->flags, EV_DESC, __ATOMIC_RELAXED);
	}
	return 0;
}

int blkq_new(struct gmem *gm, const struct blkq_opts *o, struct blkq **out)
{
	struct blkq *q;
	uint64_t tlen;
	int err = -ENOMEM;

	if (!gm || !o || !out || o->layout > SVQISO_LAYOUT_PACKED ||
	    o->num < 2 || o->num > RING_MAX ||
	    (o->layout == SVQISO_LAYOUT_SPLIT && (o->num & (o->num - 1))))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->gm = gm;
	q->layout = o->layout;
	q->num = o->num;
	q->indirect = o->indirect;
	q->event_idx = o->event_idx;
	q->max_segs = o->max_segs ? o->max_segs : DEFAULT_SEGS;
	q->rng = o->seed ? o->seed : 0x6a09e667f3bcc909ull;
	q->kick_fd = q->call_fd = -1;
	q->num_free = q->num;
	q->cookie = calloc(q->num, sizeof(*q->cookie));
	q->ndescs = calloc(q->num, sizeof(*q->ndescs));
	q->inflight = calloc(q->num, 1);
	q->next = calloc(q->num, sizeof(*q->next));
	q->pieces = calloc(q->max_segs + 2u, sizeof(*q->pieces));
	if (!q->cookie || !q->ndescs || !q->inflight || !q->next || !q->pieces)
		goto fail;
	q->slots = area(q, sizeof(struct slot_mem) * (uint64_t)q->num, 16,
			&q->slots_gpa);
	if (!q->slots)
		goto fail;
	if (q->indirect) {
		tlen = 16ull * (q->max_segs + 2u) * q->num;
		q->tables = area(q, tlen, 16, &q->tables_gpa);
		if (!q->tables)
			goto fail;
	}
	err = layout_rings(q);
	if (err)
		goto fail;
	q->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	q->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->kick_fd < 0 || q->call_fd < 0) {
		err = -errno;
		goto fail;
	}
	*out = q;
	return 0;
fail:
	blkq_free(q);
	return err;
}

void blkq_free(struct blkq *q)
{
	if (!q)
		return;
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	if (q->call_fd >= 0)
		close(q->call_fd);
	free(q->cookie);
	free(q->ndescs);
	free(q->inflight);
	free(q->next);
	free(q->pieces);
	free(q);
}

struct svqiso_vring_addr blkq_addr(const struct blkq *q) { return q->addr; }
uint16_t blkq_num(const struct blkq *q) { return q->num; }
uint8_t blkq_layout(const struct blkq *q) { return q->layout; }
bool blkq_event_idx(const struct blkq *q) { return q->event_idx; }
bool blkq_indirect(const struct blkq *q) { return q->indirect; }
uint16_t blkq_max_segs(const struct blkq *q) { return q->max_segs; }
struct gmem *blkq_gmem(const struct blkq *q) { return q->gm; }
int blkq_kick_fd(const struct blkq *q) { return q->kick_fd; }
int blkq_call_fd(const struct blkq *q) { return q->call_fd; }
unsigned int blkq_inflight(const struct blkq *q) { return q->nr_inflight; }

uint32_t blkq_fresh_base(const struct blkq *q)
{
	return q->layout == SVQISO_LAYOUT_PACKED ? SVQISO_PACKED_FRESH_BASE : 0;
}

void blkq_get_stats(const struct blkq *q, struct blkq_stats *st)
{
	*st = q->st;
}

void blkq_set_notify(struct blkq *q, blkq_notify_fn fn, void *ctx)
{
	q->notify = fn;
	q->notify_ctx = ctx;
}

static void kick(struct blkq *q)
{
	uint64_t one = 1;

	if (q->notify) {
		q->st.kicks++;
		q->notify(q->notify_ctx, q);
		return;
	}
	/* A full counter (EAGAIN) still leaves the fd readable: kick seen. */
	if (write(q->kick_fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
		q->st.kicks++;
}

/* Event index rule (2.7.7.2): is @event among the positions (old, new]? */
static bool need_event(uint16_t event, uint16_t new, uint16_t old)
{
	return (uint16_t)(new - event - 1) < (uint16_t)(new - old);
}

/* ---- Building the chain ---- */

static bool data_is_write(uint32_t type)
{
	return type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
}

/*
 * Fill q->pieces for request @r in slot @id's header and status. Returns the
 * number of pieces or -EINVAL. Writes nothing to guest memory.
 */
static int plan(struct blkq *q, const struct blkq_req *r, uint16_t slot)
{
	uint64_t base = q->slots_gpa + slot * (uint64_t)sizeof(struct slot_mem);
	bool dz = r->type == VIRTIO_BLK_T_DISCARD || r->type == VIRTIO_BLK_T_WRITE_ZEROES;
	unsigned int n = 0, i;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
	case VIRTIO_BLK_T_GET_ID:
		if (!r->nseg)
			return -EINVAL;
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (r->nseg)
			return -EINVAL;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		break;
	default:
		return -EINVAL;
	}
	if (r->nseg > q->max_segs || (r->nseg && !r->seg))
		return -EINVAL;
	q->pieces[n++] = (struct piece){ base + offsetof(struct slot_mem, hdr), 16, false };
	if (dz && !r->nseg)
		q->pieces[n++] = (struct piece){
			base + offsetof(struct slot_mem, dz), 16, false };
	for (i = 0; i < r->nseg; i++) {
		const struct blkq_seg *s = &r->seg[i];
		uint64_t end = gmem_base(q->gm) + gmem_size(q->gm);

		if (!s->len || s->gpa < gmem_base(q->gm) || s->gpa >= end ||
		    s->len > end - s->gpa)
			return -EINVAL;
		q->pieces[n++] = (struct piece){ s->gpa, s->len, data_is_write(r->type) };
	}
	q->pieces[n++] = (struct piece){ base + offsetof(struct slot_mem, status), 1, true };
	return n;
}

/* Header, range segment and status byte of slot @id; stats for the data. */
static void fill_slot(struct blkq *q, const struct blkq_req *r, uint16_t id)
{
	struct slot_mem *m = &q->slots[id];
	unsigned int i;

	m->hdr.type = htole32(r->type);
	m->hdr.ioprio = 0;
	m->hdr.sector = htole64(r->sector);
	m->dz.sector = htole64(r->sector);
	m->dz.num_sectors = htole32(r->nr_sectors);
	m->dz.flags = htole32(r->dz_flags);
	m->status = STATUS_NONE;
	for (i = 0; i < r->nseg; i++)
		if (!gmem_hva(q->gm, r->seg[i].gpa, r->seg[i].len))
			q->st.cross_region_segs++;
}

/*
 * Write @n pieces as an indirect table at @hva: split tables are linked with
 * NEXT (2.7.5.3), packed tables are in packed format and sequential
 * (2.8.19), so only the WRITE flag is set there.
 */
static void write_table(struct blkq *q, uint8_t *hva, unsigned int n)
{
	unsigned int i;

	if (q->layout == SVQISO_LAYOUT_PACKED) {
		struct pdesc *d = (struct pdesc *)hva;

		for (i = 0; i < n; i++) {
			d[i].addr = htole64(q->pieces[i].addr);
			d[i].len = htole32(q->pieces[i].len);
			d[i].id = 0;
			d[i].flags = htole16(q->pieces[i].write ? F_WRITE : 0);
		}
		return;
	}
	struct desc *d = (struct desc *)hva;

	for (i = 0; i < n; i++) {
		d[i].addr = htole64(q->pieces[i].addr);
		d[i].len = htole32(q->pieces[i].len);
		d[i].flags = htole16((q->pieces[i].write ? F_WRITE : 0) |
				     (i + 1 < n ? F_NEXT : 0));
		d[i].next = htole16(i + 1 < n ? i + 1 : 0);
	}
}

static bool use_indirect(struct blkq *q, unsigned int n)
{
	if (!q->indirect || n < 2)
		return false;
	/* Mostly indirect, sometimes direct, so both paths run. */
	return n + 0u > q->num || (rnd(q) & 3) != 0;
}

/* ---- Split (2.7.13 "Supplying Buffers to The Device") ---- */

static int submit_split(struct blkq *q, const struct blkq_req *r)
{
	uint16_t head = q->free_head, old, i, id;
	bool ind;
	int n;

	n = plan(q, r, head < q->num ? head : 0);
	if (n < 0)
		return n;
	ind = use_indirect(q, n);
	if (!ind && n > q->num)
		return -EINVAL;
	if (q->num_free < (ind ? 1 : n)) {
		q->st.ring_full++;
		return -ENOSPC;
	}
	id = head;
	fill_slot(q, r, id);
	if (ind) {
		uint64_t tgpa = q->tables_gpa + 16ull * (q->max_segs + 2u) * id;

		write_table(q, q->tables + (tgpa - q->tables_gpa), n);
		q->s.desc[id].addr = htole64(tgpa);
		q->s.desc[id].len = htole32(16u * n);
		q->s.desc[id].flags = htole16(F_INDIRECT);
		q->s.desc[id].next = 0;
		q->free_head = q->next[id];
		q->ndescs[id] = 1;
		q->st.indirect++;
	} else {
		uint16_t d = head, last = head;

		for (i = 0; i < n; i++) {
			struct piece *p = &q->pieces[i];

			q->s.desc[d].addr = htole64(p->addr);
			q->s.desc[d].len = htole32(p->len);
			q->s.desc[d].flags = htole16((p->write ? F_WRITE : 0) |
						     (i + 1 < n ? F_NEXT : 0));
			q->s.desc[d].next = htole16(i + 1 < n ? q->next[d] : 0);
			last = d;
			d = q->next[d];
		}
		q->free_head = q->next[last];
		q->ndescs[id] = n;
		q->st.direct++;
	}
	q->num_free -= q->ndescs[id];
	q->cookie[id] = r->cookie;
	q->inflight[id] = 1;
	q->nr_inflight++;

	ST16(&s_avail_ring(q)[q->s.avail_idx & (q->num - 1)], id, __ATOMIC_RELAXED);
	old = q->s.avail_idx++;
	/* Descriptors and ring entry before idx: pairs with the device's
	 * acquire load of avail->idx. */
	ST16(s_avail_idx(q), q->s.avail_idx, __ATOMIC_RELEASE);
	/* idx store before the avail_event/flags load: pairs with the
	 * device's full barrier after it re-enables notifications. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->event_idx) {
		if (need_event(LD16(s_avail_event(q), __ATOMIC_RELAXED),
			       q->s.avail_idx, old))
			kick(q);
	} else if (!(LD16(s_used_flags(q), __ATOMIC_RELAXED) & USED_F_NO_NOTIFY)) {
		kick(q);
	}
	return 0;
}

static void free_split(struct blkq *q, uint16_t id)
{
	uint16_t d = id, i;

	/* Private links: the device cannot redirect what we free. */
	for (i = 1; i < q->ndescs[id]; i++)
		d = q->next[d];
	q->next[d] = q->free_head;
	q->free_head = id;
}

static int collect_split(struct blkq *q, blkq_done_fn done, void *ctx)
{
	int count = 0;

	for (;;) {
		uint16_t used = LD16(s_used_idx(q), __ATOMIC_ACQUIRE);

		if ((uint16_t)(used - q->s.last_used) > q->nr_inflight) {
			q->broken = true;
			return -EPROTO;
		}
		while (q->s.last_used != used) {
			struct used_elem *u = &s_used_ring(q)[q->s.last_used & (q->num - 1)];
			uint32_t id = LD32(&u->id), len = LD32(&u->len);
			uint8_t status;
			void *cookie;

			if (id >= q->num || !q->inflight[id]) {
				q->broken = true;
				return -EPROTO;
			}
			status = __atomic_load_n(&q->slots[id].status, __ATOMIC_RELAXED);
			cookie = q->cookie[id];
			free_split(q, id);
			q->num_free += q->ndescs[id];
			q->inflight[id] = 0;
			q->nr_inflight--;
			q->s.last_used++;
			q->st.completed++;
			count++;
			if (done)
				done(ctx, cookie, status, len);
		}
		/* Ask for the next interrupt, then look again: the used_event
		 * store before the used->idx load pairs with the device's full
		 * barrier between publishing used->idx and reading used_event. */
		ST16(s_avail_flags(q), 0, __ATOMIC_RELAXED);
		if (q->event_idx)
			ST16(s_used_event(q), q->s.last_used, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (LD16(s_used_idx(q), __ATOMIC_ACQUIRE) == q->s.last_used)
			return count;
	}
}

/* ---- Packed (2.8.21 "Supplying Buffers to The Device") ---- */

static uint16_t avail_flags(bool wrap)
{
	return wrap ? F_AVAIL : F_USED;
}

static int submit_packed(struct blkq *q, const struct blkq_req *r)
{
	uint16_t id = q->free_head, head = q->p.next_avail, pos, old, head_flags = 0;
	uint16_t off, event, flags;
	bool ind, wrap = q->p.avail_wrap;
	unsigned int i, nd;
	int n;

	n = plan(q, r, id < q->num ? id : 0);
	if (n < 0)
		return n;
	ind = use_indirect(q, n);
	if (!ind && n > q->num)
		return -EINVAL;
	nd = ind ? 1 : n;
	if (id >= q->num || q->num_free < nd) {
		q->st.ring_full++;
		return -ENOSPC;
	}
	fill_slot(q, r, id);
	q->free_head = q->next[id];
	pos = head;
	if (ind) {
		uint64_t tgpa = q->tables_gpa + 16ull * (q->max_segs + 2u) * id;
		struct pdesc *d = &q->p.desc[pos];

		write_table(q, q->tables + (tgpa - q->tables_gpa), n);
		d->addr = htole64(tgpa);
		d->len = htole32(16u * n);
		d->id = htole16(id);
		head_flags = F_INDIRECT | avail_flags(wrap);
		if (++pos == q->num) {
			pos = 0;
			wrap = !wrap;
		}
		q->st.indirect++;
	} else {
		for (i = 0; i < nd; i++) {
			struct pdesc *d = &q->p.desc[pos];
			struct piece *p = &q->pieces[i];
			uint16_t f = (p->write ? F_WRITE : 0) |
				     (i + 1 < nd ? F_NEXT : 0) | avail_flags(wrap);

			d->addr = htole64(p->addr);
			d->len = htole32(p->len);
			d->id = htole16(id);
			if (i == 0)
				head_flags = f;
			else
				ST16(&d->flags, f, __ATOMIC_RELAXED);
			if (++pos == q->num) {
				pos = 0;
				wrap = !wrap;
			}
		}
		q->st.direct++;
	}
	/* Whole chain before the head's flags: pairs with the device's
	 * acquire load of the head descriptor's flags. */
	ST16(&q->p.desc[head].flags, head_flags, __ATOMIC_RELEASE);
	q->p.next_avail = pos;
	q->p.avail_wrap = wrap;
	q->num_free -= nd;
	q->ndescs[id] = nd;
	q->cookie[id] = r->cookie;
	q->inflight[id] = 1;
	q->nr_inflight++;

	/* Descriptor store before the event suppression load: pairs with the
	 * device's full barrier after it re-enables notifications. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	flags = LD16(&q->p.dev->flags, __ATOMIC_RELAXED);
	if (flags == EV_DISABLE)
		return 0;
	/* DESC without event_idx is not a choice the device has: kick. */
	if (flags != EV_DESC || !q->event_idx) {
		kick(q);
		return 0;
	}
	/*
	 * 2.8.10: off_wrap names a ring position and the wrap counter it is
	 * meant for. A position of the previous lap counts num slots earlier.
	 */
	event = LD16(&q->p.dev->off_wrap, __ATOMIC_RELAXED);
	off = event & 0x7fff;
	if ((bool)(event >> 15) != q->p.avail_wrap)
		off -= q->num;
	old = q->p.next_avail - nd;
	if (need_event(off, q->p.next_avail, old))
		kick(q);
	return 0;
}

static int collect_packed(struct blkq *q, blkq_done_fn done, void *ctx)
{
	int count = 0;

	for (;;) {
		for (;;) {
			struct pdesc *d = &q->p.desc[q->p.last_used];
			uint16_t f = LD16(&d->flags, __ATOMIC_ACQUIRE), id, nd;
			bool a = f & F_AVAIL, u = f & F_USED;
			uint32_t len;
			uint8_t status;
			void *cookie;

			/* Used when both bits equal our used wrap counter. */
			if (a != u || u != q->p.used_wrap)
				break;
			id = LD16(&d->id, __ATOMIC_RELAXED);
			len = LD32(&d->len);
			if (id >= q->num || !q->inflight[id]) {
				q->broken = true;
				return -EPROTO;
			}
			status = __atomic_load_n(&q->slots[id].status, __ATOMIC_RELAXED);
			cookie = q->cookie[id];
			nd = q->ndescs[id];
			q->p.last_used += nd;
			if (q->p.last_used >= q->num) {
				q->p.last_used -= q->num;
				q->p.used_wrap = !q->p.used_wrap;
			}
			q->num_free += nd;
			q->next[id] = q->free_head;
			q->free_head = id;
			q->inflight[id] = 0;
			q->nr_inflight--;
			q->st.completed++;
			count++;
			if (done)
				done(ctx, cookie, status, len);
		}
		if (!q->event_idx)
			return count;	/* ENABLE stays set: every used buffer interrupts */
		/* Next interrupt at the next used slot, then look again: the
		 * store before the flags load pairs with the device's full
		 * barrier between publishing and reading the driver event. */
		ST16(&q->p.drv->off_wrap,
		     q->p.last_used | (uint16_t)q->p.used_wrap << 15, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		{
			uint16_t f = LD16(&q->p.desc[q->p.last_used].flags, __ATOMIC_ACQUIRE);
			bool a = f & F_AVAIL, u = f & F_USED;

			if (a != u || u != q->p.used_wrap)
				return count;
		}
	}
}

int blkq_submit(struct blkq *q, const struct blkq_req *r)
{
	int err;

	if (q->broken)
		return -EPROTO;
	if (!r)
		return -EINVAL;
	err = q->layout == SVQISO_LAYOUT_PACKED ? submit_packed(q, r) : submit_split(q, r);
	if (!err)
		q->st.submitted++;
	return err;
}

int blkq_collect(struct blkq *q, blkq_done_fn done, void *ctx)
{
	if (q->broken)
		return -EPROTO;
	return q->layout == SVQISO_LAYOUT_PACKED ? collect_packed(q, done, ctx) :
						   collect_split(q, done, ctx);
}
