/* SPDX-License-Identifier: MIT */
/*
 * One virtqueue as a guest driver drives it: split and packed rings written
 * from the VIRTIO 1.2 spec (2.7 split, 2.8 packed), for every device model
 * here (blkq.c, netq.c). Ring words are stored little-endian and
 * single-copy atomic; every barrier names its pair on the device side.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
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

struct gring {
	struct gmem *gm;
	uint8_t layout;
	uint16_t num;
	bool indirect;
	bool event_idx;
	unsigned int max_pieces;
	uint64_t rng;
	int kick_fd;
	int call_fd;
	gring_notify_fn notify;		/* NULL: write kick_fd */
	void *notify_ctx;
	bool broken;
	char why[96];			/* what broke it */
	struct svqiso_vring_addr addr;

	uint64_t tables_gpa;		/* [num][max_pieces] descriptors */
	uint8_t *tables;

	/* Per chain id (split: head index; packed: buffer id). */
	void **cookie;
	uint16_t *ndescs;		/* ring descriptors the chain holds */
	uint32_t *writable;		/* device-writable bytes of the chain */
	uint32_t *bytes;		/* all its bytes */
	bool len_chain;			/* a used length may reach @bytes */
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
	struct gring_stats st;
};

/* xorshift64*: only picks indirect or direct. */
static uint64_t rnd(struct gring *q)
{
	q->rng ^= q->rng >> 12;
	q->rng ^= q->rng << 25;
	q->rng ^= q->rng >> 27;
	return q->rng * 0x2545f4914f6cdd1dull;
}

/* ---- Split ring areas (2.7) ---- */

static uint16_t *s_avail_flags(struct gring *q) { return &q->s.avail[0]; }
static uint16_t *s_avail_idx(struct gring *q) { return &q->s.avail[1]; }
static uint16_t *s_avail_ring(struct gring *q) { return &q->s.avail[2]; }
static uint16_t *s_used_event(struct gring *q) { return &q->s.avail[2 + q->num]; }
static uint16_t *s_used_flags(struct gring *q) { return (uint16_t *)q->s.used; }
static uint16_t *s_used_idx(struct gring *q) { return (uint16_t *)q->s.used + 1; }

static struct used_elem *s_used_ring(struct gring *q)
{
	return (struct used_elem *)(q->s.used + 4);
}

static uint16_t *s_avail_event(struct gring *q)
{
	return (uint16_t *)(q->s.used + 4 + 8 * (size_t)q->num);
}

static int layout_rings(struct gring *q)
{
	uint16_t n = q->num;

	for (unsigned int i = 0; i < n; i++)
		q->next[i] = i + 1;
	if (q->layout == SVQISO_LAYOUT_SPLIT) {
		q->s.desc = gmem_area(q->gm, 16ull * n, 16, &q->addr.desc);
		q->s.avail = gmem_area(q->gm, 6 + 2ull * n, 2, &q->addr.driver);
		q->s.used = gmem_area(q->gm, 6 + 8ull * n, 4, &q->addr.device);
		if (!q->s.desc || !q->s.avail || !q->s.used)
			return -ENOMEM;
		return 0;
	}
	q->p.desc = gmem_area(q->gm, 16ull * n, 16, &q->addr.desc);
	q->p.drv = gmem_area(q->gm, sizeof(struct event), 4, &q->addr.driver);
	q->p.dev = gmem_area(q->gm, sizeof(struct event), 4, &q->addr.device);
	if (!q->p.desc || !q->p.drv || !q->p.dev)
		return -ENOMEM;
	q->p.avail_wrap = true;
	q->p.used_wrap = true;
	/* Interrupts always wanted; with event_idx, at the next used slot. */
	if (q->event_idx) {
		ST16(&q->p.drv->off_wrap, 1u << 15, __ATOMIC_RELAXED);
		ST16(&q->p.drv->flags, EV_DESC, __ATOMIC_RELAXED);
	}
	return 0;
}

bool gring_opts_ok(const struct gring_opts *o)
{
	return o && o->layout <= SVQISO_LAYOUT_PACKED && o->num >= 2 &&
	       o->num <= RING_MAX && o->max_pieces &&
	       (o->layout == SVQISO_LAYOUT_PACKED || !(o->num & (o->num - 1)));
}

int gring_new(struct gmem *gm, const struct gring_opts *o, struct gring **out)
{
	struct gring *q;
	int err = -ENOMEM;

	if (!gm || !out || !gring_opts_ok(o))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->gm = gm;
	q->layout = o->layout;
	q->num = o->num;
	q->indirect = o->indirect;
	q->event_idx = o->event_idx;
	q->max_pieces = o->max_pieces;
	q->len_chain = o->len_chain;
	q->rng = o->seed ? o->seed : 0x6a09e667f3bcc909ull;
	q->kick_fd = q->call_fd = -1;
	q->num_free = q->num;
	q->cookie = calloc(q->num, sizeof(*q->cookie));
	q->ndescs = calloc(q->num, sizeof(*q->ndescs));
	q->writable = calloc(q->num, sizeof(*q->writable));
	q->bytes = calloc(q->num, sizeof(*q->bytes));
	q->inflight = calloc(q->num, 1);
	q->next = calloc(q->num, sizeof(*q->next));
	if (!q->cookie || !q->ndescs || !q->writable || !q->bytes || !q->inflight ||
	    !q->next)
		goto fail;
	if (q->indirect) {
		q->tables = gmem_area(gm, 16ull * q->max_pieces * q->num, 16,
				      &q->tables_gpa);
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
	gring_free(q);
	return err;
}

void gring_free(struct gring *q)
{
	if (!q)
		return;
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	if (q->call_fd >= 0)
		close(q->call_fd);
	free(q->cookie);
	free(q->ndescs);
	free(q->writable);
	free(q->bytes);
	free(q->inflight);
	free(q->next);
	free(q);
}

struct svqiso_vring_addr gring_addr(const struct gring *q) { return q->addr; }
uint16_t gring_num(const struct gring *q) { return q->num; }
uint8_t gring_layout(const struct gring *q) { return q->layout; }
bool gring_event_idx(const struct gring *q) { return q->event_idx; }
bool gring_indirect(const struct gring *q) { return q->indirect; }
struct gmem *gring_gmem(const struct gring *q) { return q->gm; }
int gring_kick_fd(const struct gring *q) { return q->kick_fd; }
int gring_call_fd(const struct gring *q) { return q->call_fd; }
unsigned int gring_inflight(const struct gring *q) { return q->nr_inflight; }
bool gring_broken(const struct gring *q) { return q->broken; }
const char *gring_broken_reason(const struct gring *q) { return q->broken ? q->why : NULL; }

uint32_t gring_fresh_base(const struct gring *q)
{
	return q->layout == SVQISO_LAYOUT_PACKED ? SVQISO_PACKED_FRESH_BASE : 0;
}

uint32_t gring_used_base(const struct gring *q)
{
	uint32_t half;

	if (q->layout == SVQISO_LAYOUT_SPLIT)
		return q->s.last_used;
	half = q->p.last_used | (uint32_t)q->p.used_wrap << 15;
	return half | half << 16;
}

void gring_get_stats(const struct gring *q, struct gring_stats *st)
{
	*st = q->st;
}

void gring_set_notify(struct gring *q, gring_notify_fn fn, void *ctx)
{
	q->notify = fn;
	q->notify_ctx = ctx;
}

int gring_next_id(const struct gring *q)
{
	return q->free_head < q->num && q->num_free ? q->free_head : -ENOSPC;
}

static void kick(struct gring *q)
{
	uint64_t one = 1;

	if (q->notify) {
		q->st.kicks++;
		q->notify(q->notify_ctx);
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

/*
 * Write @n pieces as an indirect table at @hva: split tables are linked with
 * NEXT (2.7.5.3), packed tables are in packed format and sequential
 * (2.8.19), so only the WRITE flag is set there.
 */
static void write_table(struct gring *q, uint8_t *hva,
			const struct gring_piece *pc, unsigned int n)
{
	unsigned int i;

	if (q->layout == SVQISO_LAYOUT_PACKED) {
		struct pdesc *d = (struct pdesc *)hva;

		for (i = 0; i < n; i++) {
			d[i].addr = htole64(pc[i].gpa);
			d[i].len = htole32(pc[i].len);
			d[i].id = 0;
			d[i].flags = htole16(pc[i].write ? F_WRITE : 0);
		}
		return;
	}
	struct desc *d = (struct desc *)hva;

	for (i = 0; i < n; i++) {
		d[i].addr = htole64(pc[i].gpa);
		d[i].len = htole32(pc[i].len);
		d[i].flags = htole16((pc[i].write ? F_WRITE : 0) |
				     (i + 1 < n ? F_NEXT : 0));
		d[i].next = htole16(i + 1 < n ? i + 1 : 0);
	}
}

static bool use_indirect(struct gring *q, unsigned int n)
{
	if (!q->indirect || n < 2)
		return false;
	/* Mostly indirect, sometimes direct, so both paths run. */
	return n + 0u > q->num || (rnd(q) & 3) != 0;
}

static uint64_t table_gpa(const struct gring *q, uint16_t id)
{
	return q->tables_gpa + 16ull * q->max_pieces * id;
}

/* ---- Split (2.7.13 "Supplying Buffers to The Device") ---- */

/* Make chain @id (the free head) of @n pieces available; kick if asked. */
static void add_split(struct gring *q, uint16_t id, const struct gring_piece *pc,
		      unsigned int n, bool ind)
{
	uint16_t old;
	unsigned int i;

	if (ind) {
		uint64_t tgpa = table_gpa(q, id);

		write_table(q, q->tables + (tgpa - q->tables_gpa), pc, n);
		q->s.desc[id].addr = htole64(tgpa);
		q->s.desc[id].len = htole32(16u * n);
		q->s.desc[id].flags = htole16(F_INDIRECT);
		q->s.desc[id].next = 0;
		q->free_head = q->next[id];
	} else {
		uint16_t d = id, last = id;

		for (i = 0; i < n; i++) {
			q->s.desc[d].addr = htole64(pc[i].gpa);
			q->s.desc[d].len = htole32(pc[i].len);
			q->s.desc[d].flags = htole16((pc[i].write ? F_WRITE : 0) |
						     (i + 1 < n ? F_NEXT : 0));
			q->s.desc[d].next = htole16(i + 1 < n ? q->next[d] : 0);
			last = d;
			d = q->next[d];
		}
		q->free_head = q->next[last];
	}

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
}

static void free_split(struct gring *q, uint16_t id)
{
	uint16_t d = id, i;

	/* Private links: the device cannot redirect what we free. */
	for (i = 1; i < q->ndescs[id]; i++)
		d = q->next[d];
	q->next[d] = q->free_head;
	q->free_head = id;
}

static int fail(struct gring *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(struct gring *q, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->why, sizeof(q->why), fmt, ap);
	va_end(ap);
	q->broken = true;
	return -EPROTO;
}

/* Take chain @id back from the device, which reported @len written. */
static int complete(struct gring *q, uint32_t id, uint32_t len,
		    gring_done_fn done, void *ctx)
{
	void *cookie;

	if (id >= q->num || !q->inflight[id]) {
		return fail(q, "used id %u %s", id,
			    id >= q->num ? "out of range" : "not in flight");
	}
	if (len > q->writable[id]) {
		if (!q->len_chain || len > q->bytes[id])
			return fail(q, "used length %u of id %u past its %u%s bytes",
				    len, id, q->len_chain ? q->bytes[id] : q->writable[id],
				    q->len_chain ? "" : " writable");
		q->st.len_past_writable++;
	}
	cookie = q->cookie[id];
	if (q->layout == SVQISO_LAYOUT_PACKED) {
		q->p.last_used += q->ndescs[id];
		if (q->p.last_used >= q->num) {
			q->p.last_used -= q->num;
			q->p.used_wrap = !q->p.used_wrap;
		}
		q->next[id] = q->free_head;
		q->free_head = id;
	} else {
		free_split(q, id);
		q->s.last_used++;
	}
	q->num_free += q->ndescs[id];
	q->inflight[id] = 0;
	q->nr_inflight--;
	q->st.completed++;
	if (done)
		done(ctx, (uint16_t)id, cookie, len);
	return 0;
}

static int collect_split(struct gring *q, gring_done_fn done, void *ctx)
{
	int count = 0;

	for (;;) {
		uint16_t used = LD16(s_used_idx(q), __ATOMIC_ACQUIRE);

		if ((uint16_t)(used - q->s.last_used) > q->nr_inflight)
			return fail(q, "used idx %u moved %u past %u with %u in flight",
				    used, (uint16_t)(used - q->s.last_used),
				    q->s.last_used, q->nr_inflight);
		while (q->s.last_used != used) {
			struct used_elem *u = &s_used_ring(q)[q->s.last_used & (q->num - 1)];

			if (complete(q, LD32(&u->id), LD32(&u->len), done, ctx))
				return -EPROTO;
			count++;
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

static void add_packed(struct gring *q, uint16_t id, const struct gring_piece *pc,
		       unsigned int n, bool ind)
{
	uint16_t head = q->p.next_avail, pos, old, head_flags = 0;
	uint16_t off, event, flags;
	bool wrap = q->p.avail_wrap;
	unsigned int i, nd = ind ? 1 : n;

	q->free_head = q->next[id];
	pos = head;
	if (ind) {
		uint64_t tgpa = table_gpa(q, id);
		struct pdesc *d = &q->p.desc[pos];

		write_table(q, q->tables + (tgpa - q->tables_gpa), pc, n);
		d->addr = htole64(tgpa);
		d->len = htole32(16u * n);
		d->id = htole16(id);
		head_flags = F_INDIRECT | avail_flags(wrap);
		if (++pos == q->num) {
			pos = 0;
			wrap = !wrap;
		}
	} else {
		for (i = 0; i < nd; i++) {
			struct pdesc *d = &q->p.desc[pos];
			uint16_t f = (pc[i].write ? F_WRITE : 0) |
				     (i + 1 < nd ? F_NEXT : 0) | avail_flags(wrap);

			d->addr = htole64(pc[i].gpa);
			d->len = htole32(pc[i].len);
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
	}
	/* Whole chain before the head's flags: pairs with the device's
	 * acquire load of the head descriptor's flags. */
	ST16(&q->p.desc[head].flags, head_flags, __ATOMIC_RELEASE);
	q->p.next_avail = pos;
	q->p.avail_wrap = wrap;

	/* Descriptor store before the event suppression load: pairs with the
	 * device's full barrier after it re-enables notifications. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	flags = LD16(&q->p.dev->flags, __ATOMIC_RELAXED);
	if (flags == EV_DISABLE)
		return;
	/* DESC without event_idx is not a choice the device has: kick. */
	if (flags != EV_DESC || !q->event_idx) {
		kick(q);
		return;
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
}

/* Whether the packed descriptor at last_used has been used in this lap. */
static bool p_used(struct gring *q)
{
	uint16_t f = LD16(&q->p.desc[q->p.last_used].flags, __ATOMIC_ACQUIRE);
	bool a = f & F_AVAIL, u = f & F_USED;

	/* Used when both bits equal our used wrap counter. */
	return a == u && u == q->p.used_wrap;
}

static int collect_packed(struct gring *q, gring_done_fn done, void *ctx)
{
	int count = 0;

	for (;;) {
		while (p_used(q)) {
			struct pdesc *d = &q->p.desc[q->p.last_used];

			if (complete(q, LD16(&d->id, __ATOMIC_RELAXED), LD32(&d->len),
				     done, ctx))
				return -EPROTO;
			count++;
		}
		if (!q->event_idx)
			return count;	/* ENABLE stays set: every used buffer interrupts */
		/* Next interrupt at the next used slot, then look again: the
		 * store before the flags load pairs with the device's full
		 * barrier between publishing and reading the driver event. */
		ST16(&q->p.drv->off_wrap,
		     q->p.last_used | (uint16_t)q->p.used_wrap << 15, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (!p_used(q))
			return count;
	}
}

int gring_add(struct gring *q, const struct gring_piece *pc, unsigned int n,
	      void *cookie)
{
	uint64_t base, end;
	uint32_t writable = 0, bytes = 0;
	unsigned int i;
	uint16_t id;
	bool ind;

	if (q->broken)
		return -EPROTO;
	if (!pc || !n || n > q->max_pieces)
		return -EINVAL;
	base = gmem_base(q->gm);
	end = base + gmem_size(q->gm);
	for (i = 0; i < n; i++) {
		if (!pc[i].len || pc[i].gpa < base || pc[i].gpa >= end ||
		    pc[i].len > end - pc[i].gpa || pc[i].len > UINT32_MAX - bytes)
			return -EINVAL;
		bytes += pc[i].len;
		if (pc[i].write)
			writable += pc[i].len;
	}
	ind = use_indirect(q, n);
	if (!ind && n > q->num)
		return -EINVAL;
	if (gring_next_id(q) < 0 || q->num_free < (ind ? 1 : n)) {
		q->st.ring_full++;
		return -ENOSPC;
	}
	/* Our records first: a notify may run the device at once. */
	id = q->free_head;
	q->ndescs[id] = ind ? 1 : n;
	q->num_free -= q->ndescs[id];
	q->cookie[id] = cookie;
	q->writable[id] = writable;
	q->bytes[id] = bytes;
	q->inflight[id] = 1;
	q->nr_inflight++;
	q->st.submitted++;
	if (ind)
		q->st.indirect++;
	else
		q->st.direct++;
	if (q->layout == SVQISO_LAYOUT_PACKED)
		add_packed(q, id, pc, n, ind);
	else
		add_split(q, id, pc, n, ind);
	return id;
}

int gring_collect(struct gring *q, gring_done_fn done, void *ctx)
{
	if (q->broken)
		return -EPROTO;
	return q->layout == SVQISO_LAYOUT_PACKED ? collect_packed(q, done, ctx) :
						   collect_split(q, done, ctx);
}
