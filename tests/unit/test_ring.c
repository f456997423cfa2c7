/* SPDX-License-Identifier: MIT */
/*
 * Ring formats end to end (lib/vring.c, chain.c, split.c, packed.c).
 *
 * The library's driver role writes a ring into an arena; its device role
 * reads the same bytes back through svqiso_mem_ops at a non-zero base
 * address. The test keeps its own model of every chain, index, wrap counter
 * and notification decision, computed from the spec and from what is in ring
 * memory, and holds both roles to it.
 *
 * Randomized tests print "# seed=..."; SVQ_TEST_SEED=<seed> replays them.
 * Self-contained: no mock guest, so a shared mistake cannot hide here.
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>

#include "vring.h"
#include "rng.h"

/* ---- Memory: one arena at a non-zero base ---- */

#define ARENA_BASE	0x40000000ull
#define ARENA_SIZE	0x400000u
#define DESC_OFF	0x000000u	/* descriptors: 16 * 32768 */
#define DRIVER_OFF	0x080000u	/* split avail (6 + 2 * 32768), packed driver event */
#define DEVICE_OFF	0x0a0000u	/* split used (6 + 8 * 32768), packed device event */
#define RING_END	0x100000u
#define TABLE_OFF	0x100000u	/* NR_TABLES indirect tables */
#define TABLE_ENTRIES	64
#define TABLE_BYTES	(TABLE_ENTRIES * 16u)
#define NR_TABLES	1024
#define DATA_OFF	0x200000u	/* buffers */
#define DATA_SIZE	0x200000u

#define MAX_SEGS	TABLE_ENTRIES	/* indirect chains */
#define MAX_DIRECT	16		/* direct chains */

#define DEFAULT_SEED	0x5eedc0de2024ull

#define SPLIT	SVQISO_LAYOUT_SPLIT
#define PACKED	SVQISO_LAYOUT_PACKED
#define F_EVENT	SVQ_RING_F_EVENT_IDX
#define F_IND	SVQ_RING_F_INDIRECT

struct arena {
	uint8_t *mem;
	uint64_t base;
	uint64_t size;
};

static struct arena arena;
static uint64_t test_seed = DEFAULT_SEED;

static void *arena_translate(void *ctx, uint64_t addr, uint64_t *len)
{
	const struct arena *a = ctx;
	uint64_t off;

	if (addr < a->base || addr - a->base >= a->size)
		return NULL;
	off = addr - a->base;
	if (*len > a->size - off)
		*len = a->size - off;
	return a->mem + off;
}

static const struct svqiso_mem_ops arena_ops = {
	.sz = sizeof(struct svqiso_mem_ops),
	.translate = arena_translate,
};

static void arena_setup(void)
{
	arena.mem = aligned_alloc(4096, ARENA_SIZE);
	ck_assert_ptr_nonnull(arena.mem);
	/* Not zero, so the driver role's zeroing shows. */
	memset(arena.mem, 0xa5, ARENA_SIZE);
	arena.base = ARENA_BASE;
	arena.size = ARENA_SIZE;
}

static void arena_teardown(void)
{
	free(arena.mem);
	arena.mem = NULL;
}

static void *host(uint64_t off)
{
	return arena.mem + off;
}

static uint64_t gaddr(uint64_t off)
{
	return ARENA_BASE + off;
}

static struct svq_split_desc *sdesc(void) { return host(DESC_OFF); }
static struct svq_split_avail *savail(void) { return host(DRIVER_OFF); }
static struct svq_split_used *sused(void) { return host(DEVICE_OFF); }
static struct svq_packed_desc *pdesc(void) { return host(DESC_OFF); }
static struct svq_packed_event *drv_event(void) { return host(DRIVER_OFF); }
static struct svq_packed_event *dev_event(void) { return host(DEVICE_OFF); }

/* Split event fields: used_event after avail->ring[], avail_event after used->ring[]. */
static uint16_t *used_event(uint16_t num) { return &savail()->ring[num]; }
static uint16_t *avail_event(uint16_t num) { return (uint16_t *)&sused()->ring[num]; }

static struct svq_indirect table(unsigned int slot, uint16_t cap)
{
	uint64_t off = TABLE_OFF + (uint64_t)slot * TABLE_BYTES;

	return (struct svq_indirect){ .hva = host(off), .addr = gaddr(off), .cap = cap };
}

/* ---- Random numbers: splitmix64, one stream per test ---- */

static void rng_init(struct rng *r, uint64_t tag)
{
	rng_seed(r, test_seed, tag);
}

/* ---- Positions, wrap counters and the notification rules ---- */

/*
 * The model counts positions as 64-bit totals that never wrap: split in
 * chains (avail) or entries (used), packed in descriptors. A packed position
 * p is slot p % num of lap p / num; lap 0 has wrap counter 1.
 */
static bool lap_wrap(uint64_t pos, uint16_t num)
{
	return !((pos / num) & 1);
}

static uint16_t off_wrap_of(uint64_t pos, uint16_t num)
{
	return (uint16_t)(pos % num) | (uint16_t)(lap_wrap(pos, num) << 15);
}

/* Flags a driver gives an available descriptor at @pos (AVAIL = w, USED = !w). */
static uint16_t avail_bits(uint64_t pos, uint16_t num)
{
	return lap_wrap(pos, num) ? SVQ_DESC_F_AVAIL : SVQ_DESC_F_USED;
}

/* Flags a device gives a used descriptor at @pos (AVAIL = USED = w). */
static uint16_t used_bits(uint64_t pos, uint16_t num)
{
	return lap_wrap(pos, num) ? (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED) : 0;
}

/* Whether the event position @e is among [@old, @new): the spec's rule. */
static bool in_window(uint64_t old, uint64_t new, int64_t e)
{
	return (int64_t)old <= e && e < (int64_t)new;
}

/* A split event index names the last position <= @new with those 16 bits. */
static int64_t split_event_pos(uint64_t new, uint16_t event)
{
	return (int64_t)new - (uint16_t)((uint16_t)new - event);
}

/*
 * A packed off_wrap names a slot in the lap of @new if its wrap bit is that
 * lap's, else in the lap before (VIRTIO 1.2, 2.8.10 and Linux virtio_ring).
 */
static int64_t packed_event_pos(uint64_t new, uint16_t num, uint16_t off_wrap)
{
	uint64_t lap = new / num;
	int64_t e = (int64_t)(lap * num) + (off_wrap & 0x7fff);

	if ((bool)(off_wrap >> 15) != lap_wrap(new, num))
		e -= num;
	return e;
}

/* Split: does the peer want to hear about [@old, @new)? */
static bool split_wants(uint32_t rflags, uint16_t event, uint16_t flags,
			uint16_t no_bit, uint64_t old, uint64_t new)
{
	if (rflags & F_EVENT)
		return in_window(old, new, split_event_pos(new, event));
	return !(flags & no_bit);
}

/* Packed: the same, from an event suppression structure. */
static bool packed_wants(uint32_t rflags, uint16_t num,
			 const struct svq_packed_event *ev, uint64_t old, uint64_t new)
{
	uint16_t flags = le16toh(ev->flags);

	if (flags == SVQ_EVENT_F_DESC && (rflags & F_EVENT))
		return in_window(old, new,
				 packed_event_pos(new, num, le16toh(ev->off_wrap)));
	return flags != SVQ_EVENT_F_DISABLE;
}

/* ---- Rings: both roles on one arena ---- */

struct logcap {
	unsigned int lines;
	char last[200];
};

static void logcap_fn(void *ctx, int level, const char *msg)
{
	struct logcap *l = ctx;

	(void)level;
	l->lines++;
	snprintf(l->last, sizeof(l->last), "%s", msg);
}

struct ring {
	uint8_t layout;
	uint16_t num;
	uint32_t flags;
	uint32_t data_next;	/* next buffer offset for add_chain() */
	struct svq_drv drv;
	struct svq_dev dev;
	struct logcap drv_log;
	struct logcap dev_log;
};

static void ring_cfg(struct ring *r, struct svq_drv_cfg *dc, struct svq_dev_cfg *vc)
{
	memset(dc, 0, sizeof(*dc));
	dc->layout = r->layout;
	dc->num = r->num;
	dc->flags = r->flags;
	dc->desc = host(DESC_OFF);
	dc->driver = host(DRIVER_OFF);
	dc->device = host(DEVICE_OFF);
	dc->log = logcap_fn;
	dc->log_ctx = &r->drv_log;
	dc->name = "shadow";

	memset(vc, 0, sizeof(*vc));
	vc->layout = r->layout;
	vc->num = r->num;
	vc->flags = r->flags;
	vc->desc = gaddr(DESC_OFF);
	vc->driver = gaddr(DRIVER_OFF);
	vc->device = gaddr(DEVICE_OFF);
	vc->mem = &arena_ops;
	vc->mem_ctx = &arena;
	vc->max_indirect = TABLE_ENTRIES;
	vc->log = logcap_fn;
	vc->log_ctx = &r->dev_log;
	vc->name = "guest";
}

static void ring_init(struct ring *r, uint8_t layout, uint16_t num, uint32_t flags)
{
	struct svq_drv_cfg dc;
	struct svq_dev_cfg vc;

	memset(r, 0, sizeof(*r));
	r->layout = layout;
	r->num = num;
	r->flags = flags;
	ring_cfg(r, &dc, &vc);
	/* Driver first: it lays the ring out and zeroes it. */
	ck_assert_int_eq(svq_drv_init(&r->drv, &dc), 0);
	ck_assert_int_eq(svq_dev_init(&r->dev, &vc), 0);
}

static void ring_fini(struct ring *r)
{
	svq_dev_fini(&r->dev);
	svq_drv_fini(&r->drv);
}

static const char *layout_name(uint8_t layout)
{
	return layout == PACKED ? "packed" : "split";
}

/*
 * NULL if @e is the chain @seg[@nseg] taking @ndescs ring descriptors, with
 * host addresses where the arena maps them; else what differs.
 */
static const char *elem_diff(const struct svq_elem *e, const struct svq_seg *seg,
			     unsigned int nseg, unsigned int ndescs)
{
	static char buf[200];
	uint32_t out = 0, in = 0;
	unsigned int i, nout = 0;

	for (i = 0; i < nseg; i++) {
		if (seg[i].write) {
			in += seg[i].len;
		} else {
			out += seg[i].len;
			nout++;
		}
	}
#define DIFF(cond, ...) do {							\
		if (!(cond)) {							\
			snprintf(buf, sizeof(buf), __VA_ARGS__);		\
			return buf;						\
		}								\
	} while (0)
	DIFF(e->nseg == nseg, "nseg %u, want %u", e->nseg, nseg);
	DIFF(e->nout == nout, "nout %u, want %u", e->nout, nout);
	DIFF(e->ndescs == ndescs, "ndescs %u, want %u", e->ndescs, ndescs);
	DIFF(e->out_bytes == out, "out_bytes %u, want %u", e->out_bytes, out);
	DIFF(e->in_bytes == in, "in_bytes %u, want %u", e->in_bytes, in);
	for (i = 0; i < nseg; i++) {
		const struct svq_seg *s = &e->seg[i];

		DIFF(s->addr == seg[i].addr, "seg %u addr %#" PRIx64 ", want %#" PRIx64,
		     i, s->addr, seg[i].addr);
		DIFF(s->len == seg[i].len, "seg %u len %u, want %u", i, s->len, seg[i].len);
		DIFF(s->write == seg[i].write, "seg %u write %d, want %d",
		     i, s->write, seg[i].write);
		DIFF(s->hva == host(seg[i].addr - ARENA_BASE), "seg %u hva %p, want %p",
		     i, s->hva, host(seg[i].addr - ARENA_BASE));
	}
#undef DIFF
	return NULL;
}

/* Add a chain of @nseg buffers of 100 + i bytes, @nout readable; return its id. */
static uint16_t add_chain(struct ring *r, struct svq_seg *seg, unsigned int nseg,
			  unsigned int nout, const struct svq_indirect *ind)
{
	unsigned int i;
	uint16_t id = 0xffff;
	int rc;

	for (i = 0; i < nseg; i++) {
		seg[i] = (struct svq_seg){
			.addr = gaddr(DATA_OFF + r->data_next),
			.len = 100 + i,
			.write = i >= nout,
		};
		r->data_next = (r->data_next + 0x200) % (DATA_SIZE - 0x200);
	}
	rc = svq_drv_add(&r->drv, seg, nseg, ind, &id);
	ck_assert_msg(rc == 0, "add of %u segments: %d", nseg, rc);
	ck_assert_uint_lt(id, r->num);
	return id;
}

/* One device-writable buffer of 100 bytes. */
static uint16_t add_one(struct ring *r)
{
	struct svq_seg seg[1];

	return add_chain(r, seg, 1, 0, NULL);
}

static void pop_expect(struct ring *r, uint16_t id, const struct svq_seg *seg,
		       unsigned int nseg, unsigned int ndescs)
{
	struct svq_seg es[MAX_SEGS];
	struct svq_elem e = { .max_seg = MAX_SEGS, .seg = es };
	const char *diff;
	int rc;

	rc = svq_dev_pop(&r->dev, &e);
	ck_assert_msg(rc == 1, "pop: %d (%s)", rc, r->dev_log.last);
	ck_assert_uint_eq(e.id, id);
	diff = elem_diff(&e, seg, nseg, ndescs);
	ck_assert_msg(diff == NULL, "chain %u: %s", id, diff);
}

static void pop_any(struct ring *r, uint16_t id)
{
	struct svq_seg es[MAX_SEGS];
	struct svq_elem e = { .max_seg = MAX_SEGS, .seg = es };

	ck_assert_int_eq(svq_dev_pop(&r->dev, &e), 1);
	ck_assert_uint_eq(e.id, id);
}

static void pop_none(struct ring *r)
{
	struct svq_seg es[MAX_SEGS];
	struct svq_elem e = { .max_seg = MAX_SEGS, .seg = es };

	ck_assert_int_eq(svq_dev_pop(&r->dev, &e), 0);
}

static void push_flush(struct ring *r, uint16_t id, uint32_t len)
{
	ck_assert_int_eq(svq_dev_push(&r->dev, id, len), 0);
	ck_assert_int_eq(svq_dev_flush(&r->dev), 1);
}

static void used_expect(struct ring *r, uint16_t id, uint32_t len)
{
	uint16_t got_id = 0xffff;
	uint32_t got_len = 0;
	int rc;

	rc = svq_drv_get_used(&r->drv, &got_id, &got_len);
	ck_assert_msg(rc == 1, "get_used: %d (%s)", rc, r->drv_log.last);
	ck_assert_uint_eq(got_id, id);
	ck_assert_uint_eq(got_len, len);
}

static void used_none(struct ring *r)
{
	uint16_t id;
	uint32_t len;

	ck_assert_int_eq(svq_drv_get_used(&r->drv, &id, &len), 0);
}

/* Check's ck_assert_*() logs every pass; in hot loops only fail through it. */
#define CHECK(cond, ...) do {							\
		if (unlikely(!(cond)))						\
			ck_abort_msg(__VA_ARGS__);				\
	} while (0)

/*
 * Push @n one-buffer chains through both roles, in batches of num: add, kick,
 * pop, push, flush, notify, collect. Every decision is taken (and ignored).
 */
static void drive(struct ring *r, uint64_t n)
{
	struct svq_seg seg = { .addr = gaddr(DATA_OFF), .len = 64 };
	struct svq_seg es[1];
	struct svq_elem e = { .max_seg = 1, .seg = es };
	uint16_t ids[1024], id;
	uint32_t len;
	unsigned int k, i;

	ck_assert_uint_le(r->num, SVQ_ARRAY_SIZE(ids));
	while (n) {
		k = n < r->num ? (unsigned int)n : r->num;
		for (i = 0; i < k; i++)
			CHECK(!svq_drv_add(&r->drv, &seg, 1, NULL, &ids[i]), "drive: add");
		(void)svq_drv_kick_prepare(&r->drv);
		for (i = 0; i < k; i++) {
			CHECK(svq_dev_pop(&r->dev, &e) == 1 && e.id == ids[i], "drive: pop");
			CHECK(!svq_dev_push(&r->dev, e.id, 0), "drive: push");
		}
		CHECK(svq_dev_flush(&r->dev) == (int)k, "drive: flush");
		(void)svq_dev_need_notify(&r->dev);
		for (i = 0; i < k; i++) {
			CHECK(svq_drv_get_used(&r->drv, &id, &len) == 1 && id == ids[i],
			      "drive: get_used");
		}
		n -= k;
	}
}

/* ---- The random round trip engine ---- */

enum { CH_FREE, CH_ADDED, CH_AVAIL, CH_POPPED, CH_PUSHED, CH_USED };

struct chain {
	uint8_t state;
	bool indirect;
	uint16_t nseg;
	uint16_t ndescs;
	int table;
	uint64_t pos;		/* driver position of its first descriptor */
	uint32_t in_bytes;
	struct svq_seg seg[MAX_SEGS];
};

struct used_ent {
	uint16_t id;
	uint32_t len;
	uint64_t pos;		/* device position of the used entry */
};

struct rt_stats {
	uint64_t chains, segs, indirect, enospc;
	uint64_t kicks[2], notifies[2];		/* [decision] */
	uint64_t wrap_kicks[2], wrap_notifies[2];	/* window crosses a wrap */
};

struct rt {
	struct ring r;
	struct rng *rng;
	unsigned int episode;
	bool poke;		/* play the peer: rewrite event fields before decisions */
	uint64_t target;

	struct chain *ch;	/* [num], by id */
	uint16_t *availq;	/* ids in the order the device must pop them */
	uint32_t aq_head, aq_len, aq_unpub;
	uint16_t *held;		/* popped, not pushed */
	uint32_t nheld;
	struct used_ent *usedq;	/* pushed, not collected; the last uq_unflushed unflushed */
	uint32_t uq_head, uq_len, uq_unflushed;
	int tables[NR_TABLES];
	int ntables;

	uint32_t expect_free;
	uint64_t chains_added, chains_done;
	uint64_t add_pos;	/* driver: split chains, packed descriptors */
	uint64_t kick_pos;	/* add_pos at the last kick decision */
	uint64_t avail_pos;	/* device: popped */
	uint64_t push_pos, flush_pos;
	uint64_t signalled_pos;	/* flush_pos at the last notify decision */
	bool signalled_valid;
	uint64_t used_pos;	/* driver: collected */
	bool dev_drained;	/* the device's last pop found nothing */
	bool dev_armed, drv_armed;	/* notifications enabled while idle */
	uint64_t drv_armed_pos, dev_armed_pos;

	struct svq_seg eseg[MAX_SEGS];
	struct rt_stats st;
};

#define RT_CHECK(t, cond, ...) do {						\
		if (unlikely(!(cond)))						\
			rt_fail((t), __LINE__, #cond, __VA_ARGS__);		\
	} while (0)

static void rt_fail(const struct rt *t, int line, const char *cond,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5), noreturn));

static void rt_fail(const struct rt *t, int line, const char *cond, const char *fmt, ...)
{
	char msg[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ck_abort_msg("line %d: %s: %s [seed=%#" PRIx64 " episode=%u %s num=%u flags=%#x"
		     " chain=%" PRIu64 " drv=\"%s\" dev=\"%s\"]", line, cond, msg,
		     test_seed, t->episode, layout_name(t->r.layout), t->r.num, t->r.flags,
		     t->chains_added, t->r.drv_log.last, t->r.dev_log.last);
	abort();	/* not reached: ck_abort_msg() does not return */
}

static bool rt_packed(const struct rt *t)
{
	return t->r.layout == PACKED;
}

/* Position units a chain takes: split counts chains, packed descriptors. */
static unsigned int rt_units(const struct rt *t, const struct chain *c)
{
	return rt_packed(t) ? c->ndescs : 1;
}

/* What the device may see: split publishes at kick, packed at add. */
static uint64_t rt_pub_pos(const struct rt *t)
{
	return rt_packed(t) ? t->add_pos : t->kick_pos;
}

static uint32_t pick_len(struct rng *r)
{
	switch (rng_below(r, 4)) {
	case 0:
		return rng_range(r, 1, 64);
	case 1:
		return 65536 - rng_below(r, 8);
	case 2:
		return rng_range(r, 1, 4096);
	default:
		return rng_range(r, 1, 65536);
	}
}

/* Buffers: readable only, writable only, or mixed with readable first. */
static void pick_segs(struct rng *r, struct svq_seg *seg, unsigned int nseg)
{
	unsigned int i, nout;

	switch (rng_below(r, 3)) {
	case 0:
		nout = nseg;
		break;
	case 1:
		nout = 0;
		break;
	default:
		nout = nseg < 2 ? rng_below(r, 2) : rng_range(r, 1, nseg - 1);
	}
	for (i = 0; i < nseg; i++) {
		seg[i].len = pick_len(r);
		seg[i].addr = gaddr(DATA_OFF) + rng_below(r, DATA_SIZE - seg[i].len + 1);
		seg[i].hva = NULL;
		seg[i].write = i >= nout;
	}
}

static void rt_check_split_chain(struct rt *t, uint16_t id, const struct chain *c,
				 uint64_t table_addr)
{
	struct svq_split_desc *d = sdesc();
	unsigned int j, limit = t->r.num;
	uint16_t cur = id, f, want;

	if (c->indirect) {
		f = le16toh(d[id].flags);
		RT_CHECK(t, f == SVQ_DESC_F_INDIRECT, "head %u flags %#x", id, f);
		RT_CHECK(t, le64toh(d[id].addr) == table_addr, "head %u addr", id);
		RT_CHECK(t, le32toh(d[id].len) == c->nseg * 16u, "head %u len %u",
			 id, le32toh(d[id].len));
		d = host(table_addr - ARENA_BASE);
		limit = c->nseg;
		cur = 0;
	}
	for (j = 0; j < c->nseg; j++) {
		RT_CHECK(t, cur < limit, "chain %u: link %u -> %u", id, j, cur);
		f = le16toh(d[cur].flags);
		want = (j + 1 < c->nseg ? SVQ_DESC_F_NEXT : 0) |
		       (c->seg[j].write ? SVQ_DESC_F_WRITE : 0);
		RT_CHECK(t, f == want, "chain %u desc %u flags %#x, want %#x", id, j, f, want);
		RT_CHECK(t, le64toh(d[cur].addr) == c->seg[j].addr, "chain %u desc %u addr", id, j);
		RT_CHECK(t, le32toh(d[cur].len) == c->seg[j].len, "chain %u desc %u len", id, j);
		cur = le16toh(d[cur].next);
	}
}

static void rt_check_packed_chain(struct rt *t, uint16_t id, const struct chain *c,
				  uint64_t table_addr)
{
	struct svq_packed_desc *d = pdesc(), *tb;
	uint16_t num = t->r.num, f, want;
	unsigned int j;

	for (j = 0; j < c->ndescs; j++) {
		uint64_t p = c->pos + j;
		struct svq_packed_desc *s = &d[p % num];

		f = le16toh(s->flags);
		want = avail_bits(p, num);
		if (c->indirect) {
			want |= SVQ_DESC_F_INDIRECT;
			RT_CHECK(t, le64toh(s->addr) == table_addr, "chain %u table addr", id);
			RT_CHECK(t, le32toh(s->len) == c->nseg * 16u, "chain %u table len", id);
		} else {
			want |= (j + 1 < c->ndescs ? SVQ_DESC_F_NEXT : 0) |
				(c->seg[j].write ? SVQ_DESC_F_WRITE : 0);
			RT_CHECK(t, le64toh(s->addr) == c->seg[j].addr, "chain %u desc %u addr", id, j);
			RT_CHECK(t, le32toh(s->len) == c->seg[j].len, "chain %u desc %u len", id, j);
		}
		RT_CHECK(t, f == want, "chain %u slot %u (pos %" PRIu64 ") flags %#x, want %#x",
			 id, (unsigned int)(p % num), p, f, want);
	}
	/* The device takes the buffer id from the last descriptor. */
	RT_CHECK(t, le16toh(d[(c->pos + c->ndescs - 1) % num].id) == id, "chain %u id", id);
	if (!c->indirect)
		return;
	tb = host(table_addr - ARENA_BASE);
	for (j = 0; j < c->nseg; j++) {
		f = le16toh(tb[j].flags) & ~SVQ_DESC_F_NEXT;
		RT_CHECK(t, f == (c->seg[j].write ? SVQ_DESC_F_WRITE : 0),
			 "chain %u table entry %u flags %#x", id, j, f);
		RT_CHECK(t, le64toh(tb[j].addr) == c->seg[j].addr, "chain %u entry %u addr", id, j);
		RT_CHECK(t, le32toh(tb[j].len) == c->seg[j].len, "chain %u entry %u len", id, j);
	}
}

/* Add one random chain; false if the ring has no room for what was drawn. */
static bool rt_add(struct rt *t)
{
	struct ring *r = &t->r;
	struct svq_seg seg[MAX_SEGS];
	struct svq_indirect ind;
	bool indirect = (r->flags & F_IND) && rng_chance(t->rng, 1, 2);
	unsigned int nseg, need, i;
	unsigned int maxd = r->num < MAX_DIRECT ? r->num : MAX_DIRECT;
	struct chain *c;
	uint16_t id = 0xffff;
	int rc, tb = -1;

	nseg = indirect ? rng_range(t->rng, 1, MAX_SEGS) : rng_range(t->rng, 1, maxd);
	need = indirect ? 1 : nseg;
	if (need > t->expect_free && !indirect && t->expect_free && rng_chance(t->rng, 1, 2)) {
		nseg = rng_range(t->rng, 1, t->expect_free < maxd ? t->expect_free : maxd);
		need = nseg;
	}
	pick_segs(t->rng, seg, nseg);
	if (need > t->expect_free) {
		/* A full ring refuses and stays as it was. */
		if (!rng_chance(t->rng, 1, 4) || (indirect && !t->ntables))
			return false;
		if (indirect)
			ind = table(t->tables[t->ntables - 1], TABLE_ENTRIES);
		rc = svq_drv_add(&r->drv, seg, nseg, indirect ? &ind : NULL, &id);
		RT_CHECK(t, rc == -ENOSPC, "add of %u (indirect %d) with %u free: %d",
			 nseg, indirect, t->expect_free, rc);
		RT_CHECK(t, r->drv.num_free == t->expect_free, "num_free %u after -ENOSPC",
			 r->drv.num_free);
		t->st.enospc++;
		return false;
	}
	if (indirect) {
		tb = t->tables[--t->ntables];
		ind = table(tb, rng_range(t->rng, nseg, TABLE_ENTRIES));
	}
	rc = svq_drv_add(&r->drv, seg, nseg, indirect ? &ind : NULL, &id);
	RT_CHECK(t, rc == 0, "add of %u (indirect %d) with %u free: %d",
		 nseg, indirect, t->expect_free, rc);
	RT_CHECK(t, id < r->num, "id %u", id);
	c = &t->ch[id];
	RT_CHECK(t, c->state == CH_FREE, "id %u handed out while in flight (state %u)",
		 id, c->state);
	c->indirect = indirect;
	c->nseg = nseg;
	c->ndescs = need;
	c->table = tb;
	c->pos = t->add_pos;
	c->in_bytes = 0;
	for (i = 0; i < nseg; i++) {
		c->seg[i] = seg[i];
		if (seg[i].write)
			c->in_bytes += seg[i].len;
	}
	t->expect_free -= need;
	RT_CHECK(t, r->drv.num_free == t->expect_free, "num_free %u, want %u",
		 r->drv.num_free, t->expect_free);
	if (rt_packed(t))
		rt_check_packed_chain(t, id, c, indirect ? ind.addr : 0);
	else
		rt_check_split_chain(t, id, c, indirect ? ind.addr : 0);

	t->availq[(t->aq_head + t->aq_len++) % r->num] = id;
	if (rt_packed(t)) {
		c->state = CH_AVAIL;
	} else {
		c->state = CH_ADDED;
		t->aq_unpub++;
	}
	t->add_pos += rt_units(t, c);
	t->chains_added++;
	t->st.chains++;
	t->st.segs += nseg;
	t->st.indirect += indirect;
	return true;
}

/* A position near the window [@old, @new): at its ends, inside, behind or anywhere. */
static uint64_t rt_poke_pos(struct rt *t, uint64_t old, uint64_t new)
{
	uint64_t n = new - old, back;

	switch (rng_below(t->rng, 7)) {
	case 0:
		back = 0;			/* at new */
		break;
	case 1:
		back = 1;			/* new - 1 */
		break;
	case 2:
		back = n;			/* at old */
		break;
	case 3:
		back = n + 1;			/* just behind old */
		break;
	case 4:
		back = rng_range(t->rng, 0, (uint32_t)n + 2);
		break;
	case 5:
		back = rng_range(t->rng, (uint32_t)n + 2, 40000);	/* far behind */
		break;
	default:
		back = rng_below(t->rng, 65536);
	}
	return back > new ? 0 : new - back;
}

static uint16_t rt_poke_flags(struct rt *t)
{
	switch (rng_below(t->rng, (t->r.flags & F_EVENT) ? 4 : 2)) {
	case 0:
		return SVQ_EVENT_F_ENABLE;
	case 1:
		return SVQ_EVENT_F_DISABLE;
	default:
		return SVQ_EVENT_F_DESC;
	}
}

/* Play the device: rewrite what the driver reads before a kick decision. */
static void rt_poke_device_event(struct rt *t, uint64_t old, uint64_t new)
{
	uint64_t p = rt_poke_pos(t, old, new);
	uint16_t num = t->r.num;

	if (rt_packed(t)) {
		uint16_t ow = off_wrap_of(p, num);

		if (rng_chance(t->rng, 1, 6))
			ow ^= 0x8000;
		dev_event()->off_wrap = htole16(ow);
		dev_event()->flags = htole16(rt_poke_flags(t));
	} else {
		*avail_event(num) = htole16((uint16_t)p);
		sused()->flags = htole16(rng_chance(t->rng, 1, 2) ? SVQ_USED_F_NO_NOTIFY : 0);
	}
}

/* Play the driver: rewrite what the device reads before a notify decision. */
static void rt_poke_driver_event(struct rt *t, uint64_t old, uint64_t new)
{
	uint64_t p = rt_poke_pos(t, old, new);
	uint16_t num = t->r.num;

	if (rt_packed(t)) {
		uint16_t ow = off_wrap_of(p, num);

		if (rng_chance(t->rng, 1, 6))
			ow ^= 0x8000;
		drv_event()->off_wrap = htole16(ow);
		drv_event()->flags = htole16(rt_poke_flags(t));
	} else {
		*used_event(num) = htole16((uint16_t)p);
		savail()->flags = htole16(rng_chance(t->rng, 1, 2) ? SVQ_AVAIL_F_NO_INTERRUPT : 0);
	}
}

static bool rt_crosses_wrap(const struct rt *t, uint64_t old, uint64_t new)
{
	uint64_t lap = rt_packed(t) ? t->r.num : 65536;

	return old / lap != new / lap;
}

static void rt_kick(struct rt *t)
{
	struct ring *r = &t->r;
	uint64_t old = t->kick_pos, new = t->add_pos;
	bool want, got, wrap;
	uint32_t k;

	if (t->poke && rng_chance(t->rng, 3, 4))
		rt_poke_device_event(t, old, new);
	if (rt_packed(t))
		want = packed_wants(r->flags, r->num, dev_event(), old, new);
	else
		want = split_wants(r->flags, le16toh(*avail_event(r->num)),
				   le16toh(sused()->flags), SVQ_USED_F_NO_NOTIFY, old, new);
	got = svq_drv_kick_prepare(&r->drv);
	RT_CHECK(t, got == want,
		 "kick_prepare %d for [%" PRIu64 ", %" PRIu64 ") (u16 %u..%u), event %#x flags %#x",
		 got, old, new, (uint16_t)old, (uint16_t)new,
		 rt_packed(t) ? le16toh(dev_event()->off_wrap) : le16toh(*avail_event(r->num)),
		 rt_packed(t) ? le16toh(dev_event()->flags) : le16toh(sused()->flags));
	/* No lost wakeup: the device went idle with notifications on. */
	if (!t->poke && t->dev_armed && new > t->dev_armed_pos) {
		RT_CHECK(t, got, "no kick after the device enabled notifications at %" PRIu64,
			 t->dev_armed_pos);
		t->dev_armed = false;
	}
	wrap = rt_crosses_wrap(t, old, new);
	t->st.kicks[got]++;
	t->st.wrap_kicks[got] += wrap;

	if (!rt_packed(t)) {
		uint16_t idx = le16toh(__atomic_load_n(&savail()->idx, __ATOMIC_ACQUIRE));

		RT_CHECK(t, idx == (uint16_t)new, "avail idx %u, want %u", idx, (uint16_t)new);
		for (k = t->aq_len - t->aq_unpub; k < t->aq_len; k++) {
			uint16_t id = t->availq[(t->aq_head + k) % r->num];
			uint64_t p = old + k - (t->aq_len - t->aq_unpub);
			uint16_t got_id = le16toh(savail()->ring[p % r->num]);

			RT_CHECK(t, got_id == id, "avail ring[%u] %u, want %u",
				 (unsigned int)(p % r->num), got_id, id);
			t->ch[id].state = CH_AVAIL;
		}
		t->aq_unpub = 0;
	}
	t->kick_pos = new;
}

static void rt_pop(struct rt *t, unsigned int n)
{
	struct ring *r = &t->r;
	struct svq_elem e = { .max_seg = MAX_SEGS, .seg = t->eseg };
	unsigned int i;
	const char *diff;
	struct chain *c;
	uint16_t id;
	int rc;

	for (i = 0; i < n; i++) {
		uint32_t avail = t->aq_len - t->aq_unpub;

		if (rng_chance(t->rng, 1, 8))
			RT_CHECK(t, svq_dev_has_avail(&r->dev) == (avail > 0), "has_avail, %u avail", avail);
		rc = svq_dev_pop(&r->dev, &e);
		if (!avail) {
			RT_CHECK(t, rc == 0, "pop %d with nothing published", rc);
			t->dev_drained = true;
			return;
		}
		id = t->availq[t->aq_head];
		c = &t->ch[id];
		RT_CHECK(t, rc == 1, "pop %d, want chain %u", rc, id);
		RT_CHECK(t, e.id == id, "popped id %u, want %u", e.id, id);
		diff = elem_diff(&e, c->seg, c->nseg, c->ndescs);
		RT_CHECK(t, diff == NULL, "chain %u (indirect %d): %s", id, c->indirect, diff);
		t->aq_head = (t->aq_head + 1) % r->num;
		t->aq_len--;
		c->state = CH_POPPED;
		t->held[t->nheld++] = id;
		t->avail_pos += rt_units(t, c);
		t->dev_drained = false;
		/* Busy again: it may move its event past what it took. */
		t->dev_armed = false;
	}
}

static void rt_notify(struct rt *t)
{
	struct ring *r = &t->r;
	uint64_t old = t->signalled_pos, new = t->flush_pos;
	bool want, got, wrap;

	if (t->poke && rng_chance(t->rng, 3, 4))
		rt_poke_driver_event(t, old, new);
	if (rt_packed(t))
		want = packed_wants(r->flags, r->num, drv_event(), old, new);
	else
		want = split_wants(r->flags, le16toh(*used_event(r->num)),
				   le16toh(savail()->flags), SVQ_AVAIL_F_NO_INTERRUPT, old, new);
	got = svq_dev_need_notify(&r->dev);
	/*
	 * Before its first decision a device may notify regardless (vhost does):
	 * a spurious notification, never a lost one.
	 */
	RT_CHECK(t, got == want || (got && !t->signalled_valid && (r->flags & F_EVENT)),
		 "need_notify %d for [%" PRIu64 ", %" PRIu64 ") (u16 %u..%u), event %#x flags %#x",
		 got, old, new, (uint16_t)old, (uint16_t)new,
		 rt_packed(t) ? le16toh(drv_event()->off_wrap) : le16toh(*used_event(r->num)),
		 rt_packed(t) ? le16toh(drv_event()->flags) : le16toh(savail()->flags));
	if (!t->poke && t->drv_armed && new > t->drv_armed_pos) {
		RT_CHECK(t, got, "no notification after the driver enabled them at %" PRIu64,
			 t->drv_armed_pos);
		t->drv_armed = false;
	}
	wrap = rt_crosses_wrap(t, old, new);
	t->st.notifies[got]++;
	t->st.wrap_notifies[got] += wrap;
	t->signalled_pos = new;
	t->signalled_valid = true;
}

static void rt_flush(struct rt *t)
{
	struct ring *r = &t->r;
	uint32_t n = t->uq_unflushed, k;
	int rc;

	if (!rt_packed(t)) {
		uint16_t idx = le16toh(sused()->idx);

		RT_CHECK(t, idx == (uint16_t)t->flush_pos, "used idx %u before flush, want %u",
			 idx, (uint16_t)t->flush_pos);
	} else if (n) {
		/* Unflushed entries stay invisible: the first one's flags go last. */
		uint64_t p = t->usedq[(t->uq_head + t->uq_len - n) % r->num].pos;
		uint16_t f = le16toh(pdesc()[p % r->num].flags);

		RT_CHECK(t, (f & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED)) != used_bits(p, r->num),
			 "slot %u looks used before flush (flags %#x)", (unsigned int)(p % r->num), f);
	}
	rc = svq_dev_flush(&r->dev);
	RT_CHECK(t, rc == (int)n, "flush %d, want %u", rc, n);
	for (k = t->uq_len - n; k < t->uq_len; k++) {
		struct used_ent *u = &t->usedq[(t->uq_head + k) % r->num];

		if (rt_packed(t)) {
			struct svq_packed_desc *d = &pdesc()[u->pos % r->num];
			uint16_t f = le16toh(d->flags);

			RT_CHECK(t, (f & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED)) == used_bits(u->pos, r->num),
				 "used slot %u (pos %" PRIu64 ") flags %#x", (unsigned int)(u->pos % r->num),
				 u->pos, f);
			RT_CHECK(t, le16toh(d->id) == u->id, "used slot id %u, want %u",
				 le16toh(d->id), u->id);
			RT_CHECK(t, le32toh(d->len) == u->len, "used slot len %u, want %u",
				 le32toh(d->len), u->len);
		} else {
			struct svq_used_elem *ue = &sused()->ring[u->pos % r->num];

			RT_CHECK(t, le32toh(ue->id) == u->id && le32toh(ue->len) == u->len,
				 "used ring[%u] {%u, %u}, want {%u, %u}", (unsigned int)(u->pos % r->num),
				 le32toh(ue->id), le32toh(ue->len), u->id, u->len);
		}
		t->ch[u->id].state = CH_USED;
	}
	t->uq_unflushed = 0;
	t->flush_pos = t->push_pos;
	if (!rt_packed(t)) {
		uint16_t idx = le16toh(sused()->idx);

		RT_CHECK(t, idx == (uint16_t)t->flush_pos, "used idx %u, want %u",
			 idx, (uint16_t)t->flush_pos);
	}
	/* Sometimes let a decision cover several flushes, more than a lap. */
	if (n && (t->flush_pos - t->signalled_pos >= 4u * r->num || rng_chance(t->rng, 3, 4)))
		rt_notify(t);
}

static void rt_collect(struct rt *t, unsigned int max)
{
	struct ring *r = &t->r;
	unsigned int i;
	struct chain *c;
	uint16_t id;
	uint32_t len;
	int rc;

	for (i = 0; i < max; i++) {
		uint32_t pending = t->uq_len - t->uq_unflushed;
		struct used_ent *u = &t->usedq[t->uq_head];

		id = 0xffff;
		len = 0;
		rc = svq_drv_get_used(&r->drv, &id, &len);
		if (!pending) {
			RT_CHECK(t, rc == 0, "get_used %d (id %u) with nothing flushed", rc, id);
			return;
		}
		RT_CHECK(t, rc == 1, "get_used %d, want {%u, %u}", rc, u->id, u->len);
		RT_CHECK(t, id == u->id && len == u->len, "get_used {%u, %u}, want {%u, %u}",
			 id, len, u->id, u->len);
		c = &t->ch[id];
		RT_CHECK(t, c->state == CH_USED, "chain %u state %u", id, c->state);
		if (c->table >= 0)
			t->tables[t->ntables++] = c->table;
		c->state = CH_FREE;
		t->expect_free += c->ndescs;
		RT_CHECK(t, r->drv.num_free == t->expect_free, "num_free %u, want %u",
			 r->drv.num_free, t->expect_free);
		t->used_pos += rt_units(t, c);
		t->uq_head = (t->uq_head + 1) % r->num;
		t->uq_len--;
		t->chains_done++;
	}
}

static void rt_push(struct rt *t, unsigned int n)
{
	struct ring *r = &t->r;
	unsigned int i, k;
	struct chain *c;
	uint32_t len;
	uint16_t id;
	int rc;

	for (i = 0; i < n && t->nheld; i++) {
		/* Complete out of order. */
		k = rng_below(t->rng, t->nheld);
		id = t->held[k];
		t->held[k] = t->held[--t->nheld];
		c = &t->ch[id];
		switch (rng_below(t->rng, 3)) {
		case 0:
			len = c->in_bytes;
			break;
		case 1:
			len = 0;
			break;
		default:
			len = rng_range(t->rng, 0, c->in_bytes);
		}
		rc = svq_dev_push(&r->dev, id, len);
		RT_CHECK(t, rc == 0, "push %u: %d", id, rc);
		t->usedq[(t->uq_head + t->uq_len++) % r->num] =
			(struct used_ent){ .id = id, .len = len, .pos = t->push_pos };
		t->uq_unflushed++;
		t->push_pos += rt_units(t, c);
		c->state = CH_PUSHED;
	}
	/* The driver sees nothing of a batch before it is flushed. */
	if (rng_chance(t->rng, 1, 4))
		rt_collect(t, UINT_MAX);
	rt_flush(t);
}

static void rt_toggle_dev(struct rt *t)
{
	struct ring *r = &t->r;
	bool got, want;
	uint16_t f;

	if (rng_chance(t->rng, 1, 2)) {
		/* Only from idle, where "became available meanwhile" is exact. */
		if (!t->dev_drained)
			return;
		got = svq_dev_enable_notify(&r->dev);
		want = rt_pub_pos(t) > t->avail_pos;
		RT_CHECK(t, got == want, "enable_notify %d with %" PRIu64 " new", got,
			 rt_pub_pos(t) - t->avail_pos);
		if (!got) {
			t->dev_armed = true;
			t->dev_armed_pos = t->avail_pos;
		}
		if (t->poke)
			return;
		if (rt_packed(t)) {
			f = le16toh(dev_event()->flags);
			RT_CHECK(t, f == SVQ_EVENT_F_ENABLE ||
				 (f == SVQ_EVENT_F_DESC && (r->flags & F_EVENT) &&
				  (got || le16toh(dev_event()->off_wrap) == off_wrap_of(t->avail_pos, r->num))),
				 "device event %#x/%#x after enable_notify at %" PRIu64, f,
				 le16toh(dev_event()->off_wrap), t->avail_pos);
		} else if (r->flags & F_EVENT) {
			RT_CHECK(t, got || le16toh(*avail_event(r->num)) == (uint16_t)t->avail_pos,
				 "avail_event %u, want %u", le16toh(*avail_event(r->num)),
				 (uint16_t)t->avail_pos);
		} else {
			RT_CHECK(t, !(le16toh(sused()->flags) & SVQ_USED_F_NO_NOTIFY),
				 "used flags %#x after enable_notify", le16toh(sused()->flags));
		}
	} else {
		svq_dev_disable_notify(&r->dev);
		t->dev_armed = false;
		if (t->poke)
			return;
		if (rt_packed(t))
			RT_CHECK(t, le16toh(dev_event()->flags) == SVQ_EVENT_F_DISABLE,
				 "device event flags %#x after disable", le16toh(dev_event()->flags));
		else if (!(r->flags & F_EVENT))
			RT_CHECK(t, le16toh(sused()->flags) & SVQ_USED_F_NO_NOTIFY,
				 "used flags %#x after disable", le16toh(sused()->flags));
	}
}

static void rt_toggle_drv(struct rt *t)
{
	struct ring *r = &t->r;
	bool got, want;
	uint16_t f;

	if (rng_chance(t->rng, 1, 2)) {
		got = svq_drv_enable_cb(&r->drv);
		want = t->flush_pos > t->used_pos;
		RT_CHECK(t, got == want, "enable_cb %d with %" PRIu64 " pending", got,
			 t->flush_pos - t->used_pos);
		if (!got) {
			t->drv_armed = true;
			t->drv_armed_pos = t->used_pos;
		}
		if (t->poke)
			return;
		if (rt_packed(t)) {
			f = le16toh(drv_event()->flags);
			RT_CHECK(t, f == SVQ_EVENT_F_ENABLE ||
				 (f == SVQ_EVENT_F_DESC && (r->flags & F_EVENT) &&
				  (got || le16toh(drv_event()->off_wrap) == off_wrap_of(t->used_pos, r->num))),
				 "driver event %#x/%#x after enable_cb at %" PRIu64, f,
				 le16toh(drv_event()->off_wrap), t->used_pos);
		} else if (r->flags & F_EVENT) {
			RT_CHECK(t, got || le16toh(*used_event(r->num)) == (uint16_t)t->used_pos,
				 "used_event %u, want %u", le16toh(*used_event(r->num)),
				 (uint16_t)t->used_pos);
		} else {
			RT_CHECK(t, !(le16toh(savail()->flags) & SVQ_AVAIL_F_NO_INTERRUPT),
				 "avail flags %#x after enable_cb", le16toh(savail()->flags));
		}
	} else {
		svq_drv_disable_cb(&r->drv);
		t->drv_armed = false;
		if (t->poke)
			return;
		if (rt_packed(t))
			RT_CHECK(t, le16toh(drv_event()->flags) == SVQ_EVENT_F_DISABLE,
				 "driver event flags %#x after disable", le16toh(drv_event()->flags));
		else if (!(r->flags & F_EVENT))
			RT_CHECK(t, le16toh(savail()->flags) & SVQ_AVAIL_F_NO_INTERRUPT,
				 "avail flags %#x after disable", le16toh(savail()->flags));
	}
}

static unsigned int rt_batch(struct rt *t)
{
	return rng_chance(t->rng, 1, 4) ? rng_range(t->rng, 1, t->r.num) :
					 rng_range(t->rng, 1, 4);
}

static void rt_step(struct rt *t)
{
	bool done_adding;
	unsigned int n, i;

	if (t->chains_added < t->target) {
		n = rt_batch(t);
		for (i = 0; i < n && t->chains_added < t->target; i++)
			if (!rt_add(t))
				break;
	}
	done_adding = t->chains_added == t->target;
	if (t->add_pos != t->kick_pos && (done_adding || rng_chance(t->rng, 3, 4)))
		rt_kick(t);
	rt_pop(t, rng_chance(t->rng, 1, 2) ? UINT_MAX : rng_range(t->rng, 0, t->r.num));
	if (rng_chance(t->rng, 1, 8))
		rt_toggle_dev(t);
	n = done_adding ? UINT_MAX : rng_range(t->rng, 0, 3);
	for (i = 0; i < n && t->nheld; i++)
		rt_push(t, done_adding && rng_chance(t->rng, 1, 2) ? UINT_MAX : rt_batch(t));
	rt_collect(t, rng_chance(t->rng, 1, 2) ? UINT_MAX : rng_range(t->rng, 0, t->r.num));
	if (rng_chance(t->rng, 1, 8))
		rt_toggle_drv(t);
}

/* Run @chains random chains through a fresh ring; everything completes. */
static void rt_episode(struct rt *t, uint8_t layout, uint16_t num, uint32_t flags,
		       uint64_t chains)
{
	struct ring *r = &t->r;
	uint64_t steps = 0;
	uint32_t base, want_base;
	int i;

	ring_init(r, layout, num, flags);
	t->ch = calloc(num, sizeof(*t->ch));
	t->availq = calloc(num, sizeof(*t->availq));
	t->held = calloc(num, sizeof(*t->held));
	t->usedq = calloc(num, sizeof(*t->usedq));
	ck_assert(t->ch && t->availq && t->held && t->usedq);
	t->aq_head = t->aq_len = t->aq_unpub = 0;
	t->nheld = 0;
	t->uq_head = t->uq_len = t->uq_unflushed = 0;
	for (i = 0; i < NR_TABLES; i++)
		t->tables[i] = i;
	t->ntables = NR_TABLES;
	t->expect_free = num;
	t->target = chains;
	t->chains_added = t->chains_done = 0;
	t->add_pos = t->kick_pos = t->avail_pos = 0;
	t->push_pos = t->flush_pos = t->signalled_pos = t->used_pos = 0;
	t->signalled_valid = false;
	t->dev_drained = false;
	t->dev_armed = t->drv_armed = false;

	while (t->chains_done < t->target) {
		rt_step(t);
		RT_CHECK(t, ++steps < 16 * chains + 1000, "no progress: %" PRIu64 " done",
			 t->chains_done);
	}

	rt_pop(t, 1);
	rt_collect(t, 1);
	RT_CHECK(t, r->drv.num_free == num, "num_free %u at the end", r->drv.num_free);
	RT_CHECK(t, r->drv.inflight == 0, "driver inflight %u at the end", r->drv.inflight);
	RT_CHECK(t, r->dev.inflight == 0, "device inflight %u at the end", r->dev.inflight);
	RT_CHECK(t, !r->drv.rc.broken && !r->dev.rc.broken, "broken");
	base = svq_dev_get_base(&r->dev);
	/* Nothing in flight: packed used half equals the avail half. */
	want_base = rt_packed(t) ? off_wrap_of(t->avail_pos, num) * 0x10001u :
		    (uint16_t)t->avail_pos;
	RT_CHECK(t, base == want_base, "vring base %#x, want %#x", base, want_base);

	free(t->ch);
	free(t->availq);
	free(t->held);
	free(t->usedq);
	ring_fini(r);
	t->episode++;
}

static struct rt *rt_new(struct rng *rng, bool poke)
{
	struct rt *t = calloc(1, sizeof(*t));

	ck_assert_ptr_nonnull(t);
	t->rng = rng;
	t->poke = poke;
	return t;
}

static void rt_report(const struct rt *t, const char *what)
{
	const struct rt_stats *s = &t->st;

	/* A TAP diagnostic line: what the run covered. */
	printf("# %s %s: %" PRIu64 " chains, %" PRIu64 " buffers, %" PRIu64 " indirect, "
	       "%" PRIu64 " -ENOSPC, %u rings, kicks %" PRIu64 "/%" PRIu64
	       " notifies %" PRIu64 "/%" PRIu64 " (yes/no)\n",
	       what, layout_name(t->r.layout), s->chains, s->segs, s->indirect, s->enospc,
	       t->episode, s->kicks[1], s->kicks[0], s->notifies[1], s->notifies[0]);
	fflush(stdout);
}

/* ---- roundtrip ---- */

#define RANDOM_CHAINS 100000

static const uint16_t packed_sizes[] = { 1, 2, 3, 5, 7, 100, 257, 1000, 1023 };

START_TEST(test_roundtrip_random_chains_match)
{
	uint8_t layout = _i;
	struct rng rng;
	struct rt *t;
	uint64_t total = 0, chains;
	uint16_t num;
	uint32_t flags;

	rng_init(&rng, 0x100 + layout);
	t = rt_new(&rng, false);
	while (total < RANDOM_CHAINS) {
		if (layout == SPLIT)
			num = 1u << rng_below(&rng, 11);
		else if (rng_chance(&rng, 1, 3))
			num = packed_sizes[rng_below(&rng, SVQ_ARRAY_SIZE(packed_sizes))];
		else
			num = rng_range(&rng, 1, 1024);
		flags = rng_below(&rng, 4);	/* EVENT_IDX and INDIRECT, each on or off */
		chains = rng_range(&rng, num, 2 * num + 512);
		rt_episode(t, layout, num, flags, chains);
		total += chains;
	}
	rt_report(t, "roundtrip");
	ck_assert_uint_ge(t->st.chains, RANDOM_CHAINS);
	ck_assert_uint_gt(t->st.indirect, 0);
	ck_assert_uint_gt(t->st.enospc, 0);
	ck_assert_uint_gt(t->st.kicks[0], 0);
	ck_assert_uint_gt(t->st.kicks[1], 0);
	ck_assert_uint_gt(t->st.notifies[0], 0);
	ck_assert_uint_gt(t->st.notifies[1], 0);
	free(t);
}
END_TEST

START_TEST(test_split_unkicked_chains_invisible)
{
	struct ring r;
	struct svq_seg seg[3];
	uint16_t a, b;

	ring_init(&r, SPLIT, 8, 0);
	a = add_chain(&r, seg, 3, 1, NULL);
	ck_assert(!svq_dev_has_avail(&r.dev));
	pop_none(&r);
	ck_assert_uint_eq(le16toh(savail()->idx), 0);
	(void)svq_drv_kick_prepare(&r.drv);
	ck_assert_uint_eq(le16toh(savail()->idx), 1);
	ck_assert(svq_dev_has_avail(&r.dev));
	pop_expect(&r, a, seg, 3, 3);
	b = add_one(&r);
	pop_none(&r);
	(void)svq_drv_kick_prepare(&r.drv);
	pop_any(&r, b);
	ring_fini(&r);
}
END_TEST

/*
 * publish_each (the shadow ring's): a split chain is visible to the device
 * as soon as it is added, and the kick decision after it still asks for
 * the kick and publishes nothing twice.
 */
START_TEST(test_split_publish_each_visible_on_add)
{
	struct svq_drv_cfg dc;
	struct svq_dev_cfg vc;
	struct svq_seg seg[3];
	struct ring r;
	uint16_t a, b, c;

	memset(&r, 0, sizeof(r));
	r.layout = SPLIT;
	r.num = 8;
	ring_cfg(&r, &dc, &vc);
	dc.publish_each = true;
	ck_assert_int_eq(svq_drv_init(&r.drv, &dc), 0);
	ck_assert_int_eq(svq_dev_init(&r.dev, &vc), 0);

	a = add_chain(&r, seg, 3, 1, NULL);
	ck_assert_uint_eq(le16toh(savail()->idx), 1);
	ck_assert(svq_dev_has_avail(&r.dev));
	pop_expect(&r, a, seg, 3, 3);
	b = add_one(&r);
	c = add_one(&r);
	ck_assert_uint_eq(le16toh(savail()->idx), 3);
	pop_any(&r, b);
	pop_any(&r, c);
	pop_none(&r);
	/* Three added since the last decision: the device wants a kick. */
	ck_assert(svq_drv_kick_prepare(&r.drv));
	ck_assert_uint_eq(le16toh(savail()->idx), 3);
	/* Nothing added since: no kick. */
	ck_assert(!svq_drv_kick_prepare(&r.drv));
	ring_fini(&r);
}
END_TEST

START_TEST(test_packed_added_chains_visible_at_once)
{
	struct ring r;
	struct svq_seg seg[3];
	uint16_t a;

	ring_init(&r, PACKED, 8, 0);
	a = add_chain(&r, seg, 3, 1, NULL);
	ck_assert(svq_dev_has_avail(&r.dev));
	pop_expect(&r, a, seg, 3, 3);
	pop_none(&r);
	ring_fini(&r);
}
END_TEST

START_TEST(test_indirect_chain_of_max_entries_roundtrips)
{
	struct ring r;
	struct svq_seg seg[MAX_SEGS];
	struct svq_indirect ind = table(0, MAX_SEGS);
	uint16_t id;

	ring_init(&r, _i, 1, F_IND);
	id = add_chain(&r, seg, MAX_SEGS, 20, &ind);
	ck_assert_uint_eq(r.drv.num_free, 0);
	(void)svq_drv_kick_prepare(&r.drv);
	pop_expect(&r, id, seg, MAX_SEGS, 1);
	push_flush(&r, id, 7);
	used_expect(&r, id, 7);
	ck_assert_uint_eq(r.drv.num_free, 1);
	ring_fini(&r);
}
END_TEST

/* ---- event-idx ---- */

static const struct {
	uint16_t event, new, old;
	bool want;
} need_event_cases[] = {
	/* Window [old, new) = {65534, 65535, 0}, across the 16-bit wrap. */
	{ 65534, 1, 65534, true },	/* at old */
	{ 65535, 1, 65534, true },	/* last index before the wrap */
	{ 0, 1, 65534, true },		/* at new - 1, past the wrap */
	{ 1, 1, 65534, false },		/* at new */
	{ 2, 1, 65534, false },		/* ahead of new */
	{ 65533, 1, 65534, false },	/* just behind old */
	{ 30000, 1, 65534, false },	/* far behind */
	/* New lands exactly on the wrap. */
	{ 65535, 0, 65535, true },
	{ 0, 0, 65535, false },
	{ 65534, 0, 65535, false },
	/* No wrap. */
	{ 5, 10, 5, true },
	{ 9, 10, 5, true },
	{ 10, 10, 5, false },
	{ 4, 10, 5, false },
	/* Nothing new: never. */
	{ 7, 7, 7, false },
	{ 6, 7, 7, false },
	/* The widest window a ring allows: 32768 entries. */
	{ 0, 32768, 0, true },
	{ 32767, 32768, 0, true },
	{ 65535, 32768, 0, false },
	{ 32768, 32768, 0, false },
};

START_TEST(test_need_event_table_matches_spec)
{
	unsigned int i;

	for (i = 0; i < SVQ_ARRAY_SIZE(need_event_cases); i++) {
		uint16_t ev = need_event_cases[i].event;
		uint16_t new = need_event_cases[i].new, old = need_event_cases[i].old;
		/* The same question in positions that never wrap. */
		uint64_t o = old, n = o + (uint16_t)(new - old);

		ck_assert_msg(in_window(o, n, split_event_pos(n, ev)) == need_event_cases[i].want,
			      "case %u: the test's own rule disagrees", i);
		ck_assert_msg(svq_need_event(ev, new, old) == need_event_cases[i].want,
			      "case %u: svq_need_event(%u, %u, %u) = %d", i, ev, new, old,
			      svq_need_event(ev, new, old));
	}
}
END_TEST

/* Event values around the split wrap and what the rule says for old 65534, new 1. */
static const struct {
	uint16_t event;
	bool want;
} split_wrap_cases[] = {
	{ 65533, false },
	{ 65534, true },
	{ 65535, true },
	{ 0, true },
	{ 1, false },
	{ 2, false },
	{ 64534, false },
	{ 32768, false },
};

START_TEST(test_split_event_idx_at_u16_wrap_matches_rule)
{
	unsigned int c = _i, i;
	uint16_t ev = split_wrap_cases[c].event, ids[3];
	bool want = split_wrap_cases[c].want;
	struct ring r;

	ck_assert(in_window(65534, 65537, split_event_pos(65537, ev)) == want);

	ring_init(&r, SPLIT, 8, F_EVENT);
	drive(&r, 65534);
	ck_assert_uint_eq(le16toh(savail()->idx), 65534);
	ck_assert_uint_eq(le16toh(sused()->idx), 65534);

	/* Driver: publishes 65534, 65535, 0; asks the device's avail_event. */
	for (i = 0; i < 3; i++)
		ids[i] = add_one(&r);
	*avail_event(8) = htole16(ev);
	ck_assert_msg(svq_drv_kick_prepare(&r.drv) == want,
		      "kick over avail idx 65534..1 with avail_event %u: want %d", ev, want);
	ck_assert_uint_eq(le16toh(savail()->idx), 1);

	/* Device: publishes used 65534, 65535, 0; asks the driver's used_event. */
	for (i = 0; i < 3; i++) {
		pop_any(&r, ids[i]);
		ck_assert_int_eq(svq_dev_push(&r.dev, ids[i], i), 0);
	}
	ck_assert_int_eq(svq_dev_flush(&r.dev), 3);
	ck_assert_uint_eq(le16toh(sused()->idx), 1);
	*used_event(8) = htole16(ev);
	ck_assert_msg(svq_dev_need_notify(&r.dev) == want,
		      "notify over used idx 65534..1 with used_event %u: want %d", ev, want);

	for (i = 0; i < 3; i++)
		used_expect(&r, ids[i], i);
	ck_assert_uint_eq(r.drv.num_free, 8);
	ring_fini(&r);
}
END_TEST

/*
 * Packed, num 4: the window [3, 5) is slot 3 of lap 0 (wrap 1) and slot 0
 * of lap 1 (wrap 0).
 */
static const struct {
	uint16_t off;
	bool wrap;
	uint16_t flags;
	bool want;
} packed_event_cases[] = {
	{ 3, 1, SVQ_EVENT_F_DESC, true },	/* at old */
	{ 0, 0, SVQ_EVENT_F_DESC, true },	/* new - 1, after the flip */
	{ 1, 0, SVQ_EVENT_F_DESC, false },	/* at new */
	{ 2, 1, SVQ_EVENT_F_DESC, false },	/* behind old */
	{ 0, 1, SVQ_EVENT_F_DESC, false },	/* slot 0 with the old wrap: a lap back */
	{ 3, 0, SVQ_EVENT_F_DESC, false },	/* slot 3 with the new wrap: ahead */
	{ 1, 1, SVQ_EVENT_F_DESC, false },
	{ 2, 0, SVQ_EVENT_F_ENABLE, true },	/* off_wrap ignored */
	{ 0, 0, SVQ_EVENT_F_DISABLE, false },
	{ 3, 1, SVQ_EVENT_F_DISABLE, false },
};

START_TEST(test_packed_event_off_wrap_decides)
{
	unsigned int c = _i, i;
	uint16_t ow = packed_event_cases[c].off | (uint16_t)(packed_event_cases[c].wrap << 15);
	uint16_t flags = packed_event_cases[c].flags, ids[2];
	bool want = packed_event_cases[c].want;
	struct svq_packed_event ev = { .off_wrap = htole16(ow), .flags = htole16(flags) };
	struct ring r;

	ck_assert(packed_wants(F_EVENT, 4, &ev, 3, 5) == want);

	ring_init(&r, PACKED, 4, F_EVENT);
	drive(&r, 3);
	ids[0] = add_one(&r);		/* slot 3, lap 0 */
	ids[1] = add_one(&r);		/* slot 0, lap 1 */
	ck_assert_uint_eq(le16toh(pdesc()[3].flags), SVQ_DESC_F_AVAIL | SVQ_DESC_F_WRITE);
	ck_assert_uint_eq(le16toh(pdesc()[0].flags), SVQ_DESC_F_USED | SVQ_DESC_F_WRITE);
	*dev_event() = ev;
	ck_assert_msg(svq_drv_kick_prepare(&r.drv) == want,
		      "kick over [3, 5) with off_wrap %#x flags %u: want %d", ow, flags, want);

	for (i = 0; i < 2; i++) {
		pop_any(&r, ids[i]);
		ck_assert_int_eq(svq_dev_push(&r.dev, ids[i], 0), 0);
	}
	ck_assert_int_eq(svq_dev_flush(&r.dev), 2);
	ck_assert_uint_eq(le16toh(pdesc()[3].flags) & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED),
			  SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	ck_assert_uint_eq(le16toh(pdesc()[0].flags) & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED), 0);
	*drv_event() = ev;
	ck_assert_msg(svq_dev_need_notify(&r.dev) == want,
		      "notify over [3, 5) with off_wrap %#x flags %u: want %d", ow, flags, want);
	for (i = 0; i < 2; i++)
		used_expect(&r, ids[i], 0);
	ring_fini(&r);
}
END_TEST

/*
 * Packed, num 7: the driver adds 10 descriptors without a kick decision while
 * the device polls them; the device goes idle at 10 and asks for a kick at
 * 10 (DESC, slot 3 of lap 1). The driver adds 5 more and decides over
 * [0, 15), which holds 10: it must kick, though 15 is slot 1 of lap 2 with
 * the same wrap counter as 0.
 */
START_TEST(test_packed_kick_after_more_than_a_lap_matches_rule)
{
	uint16_t ids[7];
	struct ring r;
	unsigned int i, lap;

	ring_init(&r, PACKED, 7, F_EVENT);
	for (lap = 0; lap < 2; lap++) {
		unsigned int n = lap ? 3 : 7;

		for (i = 0; i < n; i++)
			ids[i] = add_one(&r);
		for (i = 0; i < n; i++) {
			pop_any(&r, ids[i]);
			ck_assert_int_eq(svq_dev_push(&r.dev, ids[i], 0), 0);
		}
		ck_assert_int_eq(svq_dev_flush(&r.dev), (int)n);
		for (i = 0; i < n; i++)
			used_expect(&r, ids[i], 0);
	}
	pop_none(&r);
	ck_assert(!svq_dev_enable_notify(&r.dev));
	ck_assert_uint_eq(le16toh(dev_event()->flags), SVQ_EVENT_F_DESC);
	ck_assert_uint_eq(le16toh(dev_event()->off_wrap), off_wrap_of(10, 7));
	for (i = 0; i < 5; i++)
		ids[i] = add_one(&r);
	ck_assert(packed_wants(F_EVENT, 7, dev_event(), 0, 15));
	ck_assert_msg(svq_drv_kick_prepare(&r.drv),
		      "lost kick: device waits at 10, driver decided over [0, 15)");
	ring_fini(&r);
}
END_TEST

/* The same for used notifications: the device publishes 15 entries over
 * three flushes with one decision before and one after. */
START_TEST(test_packed_notify_after_more_than_a_lap_matches_rule)
{
	uint16_t ids[7];
	struct ring r;
	unsigned int i, round;

	ring_init(&r, PACKED, 7, F_EVENT);
	(void)svq_dev_need_notify(&r.dev);	/* decided at 0 */
	for (round = 0; round < 3; round++) {
		unsigned int n = round == 0 ? 7 : round == 1 ? 3 : 5;

		if (round == 2) {
			used_none(&r);
			ck_assert(!svq_drv_enable_cb(&r.drv));
			ck_assert_uint_eq(le16toh(drv_event()->flags), SVQ_EVENT_F_DESC);
			ck_assert_uint_eq(le16toh(drv_event()->off_wrap), off_wrap_of(10, 7));
		}
		for (i = 0; i < n; i++)
			ids[i] = add_one(&r);
		(void)svq_drv_kick_prepare(&r.drv);
		for (i = 0; i < n; i++) {
			pop_any(&r, ids[i]);
			ck_assert_int_eq(svq_dev_push(&r.dev, ids[i], 0), 0);
		}
		ck_assert_int_eq(svq_dev_flush(&r.dev), (int)n);
		if (round < 2)
			for (i = 0; i < n; i++)
				used_expect(&r, ids[i], 0);
	}
	ck_assert(packed_wants(F_EVENT, 7, drv_event(), 0, 15));
	ck_assert_msg(svq_dev_need_notify(&r.dev),
		      "lost notification: driver waits at 10, device decided over [0, 15)");
	ring_fini(&r);
}
END_TEST

START_TEST(test_event_idx_random_events_match_rule)
{
	uint8_t layout = _i;
	struct rng rng;
	struct rt *t;

	rng_init(&rng, 0x200 + layout);
	t = rt_new(&rng, true);
	/* Split: past 65535 -> 0; packed: thousands of laps of an odd size. */
	rt_episode(t, layout, layout == SPLIT ? 8 : 7, F_EVENT | F_IND, 70000);
	rt_report(t, "event-idx");
	ck_assert_uint_gt(t->st.wrap_kicks[0] + t->st.wrap_kicks[1], 0);
	ck_assert_uint_gt(t->st.wrap_notifies[0] + t->st.wrap_notifies[1], 0);
	if (layout == PACKED) {
		ck_assert_uint_gt(t->st.wrap_kicks[0], 0);
		ck_assert_uint_gt(t->st.wrap_kicks[1], 0);
		ck_assert_uint_gt(t->st.wrap_notifies[0], 0);
		ck_assert_uint_gt(t->st.wrap_notifies[1], 0);
	}
	free(t);
}
END_TEST

/* ---- notify: without EVENT_IDX the flags decide ---- */

static bool dev_notify_off(const struct ring *r)
{
	if (r->layout == PACKED)
		return le16toh(dev_event()->flags) == SVQ_EVENT_F_DISABLE;
	return le16toh(sused()->flags) & SVQ_USED_F_NO_NOTIFY;
}

static bool drv_cb_off(const struct ring *r)
{
	if (r->layout == PACKED)
		return le16toh(drv_event()->flags) == SVQ_EVENT_F_DISABLE;
	return le16toh(savail()->flags) & SVQ_AVAIL_F_NO_INTERRUPT;
}

START_TEST(test_notify_flags_decide)
{
	struct ring r;
	uint16_t a, b, c;

	ring_init(&r, _i, 8, 0);

	/* Kicks: on by default, off after disable_notify, on after enable. */
	a = add_one(&r);
	ck_assert(svq_drv_kick_prepare(&r.drv));
	svq_dev_disable_notify(&r.dev);
	ck_assert(dev_notify_off(&r));
	b = add_one(&r);
	ck_assert(!svq_drv_kick_prepare(&r.drv));
	pop_any(&r, a);
	pop_any(&r, b);
	pop_none(&r);
	ck_assert(!svq_dev_enable_notify(&r.dev));
	ck_assert(!dev_notify_off(&r));
	c = add_one(&r);
	ck_assert(svq_drv_kick_prepare(&r.drv));
	svq_dev_disable_notify(&r.dev);
	ck_assert(svq_dev_enable_notify(&r.dev));	/* c arrived meanwhile */
	pop_any(&r, c);

	/* Used notifications: the same with the driver's flags. */
	push_flush(&r, a, 1);
	ck_assert(svq_dev_need_notify(&r.dev));
	svq_drv_disable_cb(&r.drv);
	ck_assert(drv_cb_off(&r));
	push_flush(&r, b, 2);
	ck_assert(!svq_dev_need_notify(&r.dev));
	used_expect(&r, a, 1);
	used_expect(&r, b, 2);
	ck_assert(!svq_drv_enable_cb(&r.drv));
	ck_assert(!drv_cb_off(&r));
	push_flush(&r, c, 3);
	ck_assert(svq_dev_need_notify(&r.dev));
	svq_drv_disable_cb(&r.drv);
	ck_assert(svq_drv_enable_cb(&r.drv));		/* c is pending */
	used_expect(&r, c, 3);
	used_none(&r);
	ck_assert_uint_eq(r.drv.num_free, 8);
	ring_fini(&r);
}
END_TEST

/* With EVENT_IDX the event fields decide, whatever the flags say. */
START_TEST(test_event_idx_ignores_flags)
{
	struct ring r;
	uint16_t a;

	ring_init(&r, _i, 8, F_EVENT);
	if (r.layout == SPLIT) {
		sused()->flags = htole16(SVQ_USED_F_NO_NOTIFY);
		*avail_event(8) = htole16(0);
	} else {
		dev_event()->flags = htole16(SVQ_EVENT_F_DESC);
		dev_event()->off_wrap = htole16(off_wrap_of(0, 8));
	}
	a = add_one(&r);
	ck_assert(svq_drv_kick_prepare(&r.drv));	/* event 0 is in [0, 1) */
	pop_any(&r, a);
	ck_assert_int_eq(svq_dev_push(&r.dev, a, 0), 0);
	ck_assert_int_eq(svq_dev_flush(&r.dev), 1);
	(void)svq_dev_need_notify(&r.dev);		/* the first one may be forced */
	used_expect(&r, a, 0);
	if (r.layout == SPLIT) {
		savail()->flags = htole16(SVQ_AVAIL_F_NO_INTERRUPT);
		*used_event(8) = htole16(1);
	} else {
		drv_event()->flags = htole16(SVQ_EVENT_F_DESC);
		drv_event()->off_wrap = htole16(off_wrap_of(1, 8));
	}
	a = add_one(&r);
	(void)svq_drv_kick_prepare(&r.drv);
	pop_any(&r, a);
	ck_assert_int_eq(svq_dev_push(&r.dev, a, 0), 0);
	ck_assert_int_eq(svq_dev_flush(&r.dev), 1);
	ck_assert(svq_dev_need_notify(&r.dev));		/* event 1 is in [1, 2) */
	used_expect(&r, a, 0);
	ring_fini(&r);
}
END_TEST

/* ---- wrap ---- */

static const uint16_t odd_sizes[] = { 3, 5, 7, 100 };

/* Complete @n one-buffer chains so the next one starts at position @n. */
static void advance(struct ring *r, unsigned int n)
{
	if (n)
		drive(r, n);
	ck_assert_uint_eq(r->drv.num_free, r->num);
}

START_TEST(test_packed_chain_ending_at_ring_end_flips_wrap)
{
	uint16_t num = odd_sizes[_i], ids[100], last, f;
	struct svq_seg seg[100][2];
	struct ring r;
	unsigned int i, n = num - 2;

	ring_init(&r, PACKED, num, 0);
	/* n one-buffer chains, then one of two buffers ending at slot num - 1. */
	for (i = 0; i < n; i++)
		ids[i] = add_chain(&r, seg[i], 1, 0, NULL);
	last = add_chain(&r, seg[n], 2, 1, NULL);
	ck_assert_uint_eq(r.drv.num_free, 0);
	for (i = 0; i < n; i++)
		ck_assert_uint_eq(le16toh(pdesc()[i].flags), SVQ_DESC_F_AVAIL | SVQ_DESC_F_WRITE);
	ck_assert_uint_eq(le16toh(pdesc()[num - 2].flags), SVQ_DESC_F_AVAIL | SVQ_DESC_F_NEXT);
	ck_assert_uint_eq(le16toh(pdesc()[num - 1].flags), SVQ_DESC_F_AVAIL | SVQ_DESC_F_WRITE);
	ck_assert_uint_eq(le16toh(pdesc()[num - 1].id), last);

	for (i = 0; i < n; i++)
		pop_expect(&r, ids[i], seg[i], 1, 1);
	pop_expect(&r, last, seg[n], 2, 2);
	pop_none(&r);

	/* Used in order: the last used descriptor sits at num - 2, still lap 0. */
	for (i = 0; i < n; i++)
		ck_assert_int_eq(svq_dev_push(&r.dev, ids[i], i), 0);
	ck_assert_int_eq(svq_dev_push(&r.dev, last, 99), 0);
	ck_assert_int_eq(svq_dev_flush(&r.dev), (int)n + 1);
	for (i = 0; i < n; i++) {
		f = le16toh(pdesc()[i].flags) & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
		ck_assert_uint_eq(f, SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	}
	f = le16toh(pdesc()[num - 2].flags) & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	ck_assert_uint_eq(f, SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	ck_assert_uint_eq(le16toh(pdesc()[num - 2].id), last);
	ck_assert_uint_eq(svq_dev_get_base(&r.dev) & 0xffff, 0);	/* slot 0, wrap 0 */
	for (i = 0; i < n; i++)
		used_expect(&r, ids[i], i);
	used_expect(&r, last, 99);
	used_none(&r);
	ck_assert_uint_eq(r.drv.num_free, num);

	/* Lap 1 starts at slot 0 with both wrap counters flipped. */
	ids[0] = add_chain(&r, seg[0], 1, 1, NULL);
	ck_assert_uint_eq(le16toh(pdesc()[0].flags), SVQ_DESC_F_USED);
	pop_expect(&r, ids[0], seg[0], 1, 1);
	push_flush(&r, ids[0], 0);
	f = le16toh(pdesc()[0].flags) & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	ck_assert_uint_eq(f, 0);
	used_expect(&r, ids[0], 0);
	ck_assert_uint_eq(svq_dev_get_base(&r.dev) & 0xffff, 1);
	ring_fini(&r);
}
END_TEST

START_TEST(test_packed_chain_straddling_ring_end_wraps)
{
	uint16_t num = odd_sizes[_i], id, f;
	struct svq_seg seg[3], seg1[1];
	struct ring r;

	ring_init(&r, PACKED, num, 0);
	advance(&r, num - 2);
	id = add_chain(&r, seg, 3, 2, NULL);	/* slots num - 2, num - 1, 0 */
	ck_assert_uint_eq(le16toh(pdesc()[num - 2].flags), SVQ_DESC_F_AVAIL | SVQ_DESC_F_NEXT);
	ck_assert_uint_eq(le16toh(pdesc()[num - 1].flags), SVQ_DESC_F_AVAIL | SVQ_DESC_F_NEXT);
	ck_assert_uint_eq(le16toh(pdesc()[0].flags), SVQ_DESC_F_USED | SVQ_DESC_F_WRITE);
	ck_assert_uint_eq(le64toh(pdesc()[0].addr), seg[2].addr);
	ck_assert_uint_eq(le16toh(pdesc()[0].id), id);
	pop_expect(&r, id, seg, 3, 3);
	pop_none(&r);
	ck_assert_uint_eq(svq_dev_get_base(&r.dev) & 0xffff, 1);	/* slot 1, wrap 0 */

	/* Its used descriptor goes where the device stands: num - 2, lap 0. */
	push_flush(&r, id, 5);
	f = le16toh(pdesc()[num - 2].flags) & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	ck_assert_uint_eq(f, SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	ck_assert_uint_eq(le16toh(pdesc()[num - 2].id), id);
	ck_assert_uint_eq(le32toh(pdesc()[num - 2].len), 5);
	used_expect(&r, id, 5);
	ck_assert_uint_eq(r.drv.num_free, num);

	/* Next chain: slot 1 of lap 1, and so is its used descriptor. */
	id = add_chain(&r, seg1, 1, 0, NULL);
	ck_assert_uint_eq(le16toh(pdesc()[1 % num].flags), SVQ_DESC_F_USED | SVQ_DESC_F_WRITE);
	pop_expect(&r, id, seg1, 1, 1);
	push_flush(&r, id, 6);
	f = le16toh(pdesc()[1].flags) & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	ck_assert_uint_eq(f, 0);
	used_expect(&r, id, 6);
	used_none(&r);
	ring_fini(&r);
}
END_TEST

START_TEST(test_packed_many_laps_keep_wrap)
{
	uint16_t num = odd_sizes[_i];
	struct rng rng;
	struct rt *t;

	rng_init(&rng, 0x300 + _i);
	t = rt_new(&rng, false);
	/* Direct chains of every length, straddling the end often; then indirect. */
	rt_episode(t, PACKED, num, F_EVENT, 3000);
	rt_episode(t, PACKED, num, F_IND, 3000);
	free(t);
}
END_TEST

START_TEST(test_split_idx_wraps_past_65535_keeps_working)
{
	struct rng rng;
	struct rt *t;

	rng_init(&rng, 0x400);
	t = rt_new(&rng, false);
	rt_episode(t, SPLIT, 4, F_IND, 70000);
	ck_assert_uint_gt(t->st.wrap_kicks[0] + t->st.wrap_kicks[1], 0);
	ck_assert_uint_gt(t->st.wrap_notifies[0] + t->st.wrap_notifies[1], 0);
	free(t);
}
END_TEST

/* ---- backend: the driver role facing a hostile device ---- */

/* The device's next used entry, written by hand as a hostile device would. */
static void hostile_used(struct ring *r, uint64_t pos, uint32_t id, uint32_t len,
			 uint16_t flags)
{
	if (r->layout == PACKED) {
		struct svq_packed_desc *d = &pdesc()[pos % r->num];

		d->id = htole16((uint16_t)id);
		d->len = htole32(len);
		__atomic_store_n(&d->flags, htole16(flags), __ATOMIC_RELEASE);
	} else {
		sused()->ring[pos % r->num].id = htole32(id);
		sused()->ring[pos % r->num].len = htole32(len);
		__atomic_store_n(&sused()->idx, htole16((uint16_t)(pos + 1)), __ATOMIC_RELEASE);
	}
}

static void expect_drv_broken(struct ring *r, int rc, enum svq_rule rule)
{
	uint16_t num_free = r->drv.num_free, inflight = r->drv.inflight, id;
	struct svq_seg s = { .addr = gaddr(DATA_OFF), .len = 1 };
	uint32_t len;

	ck_assert_int_lt(rc, 0);
	ck_assert_msg(rc == svq_rule_errno(rule), "returned %d, want %d (%s)",
		      rc, svq_rule_errno(rule), svq_rule_name(rule));
	ck_assert(r->drv.rc.broken);
	ck_assert_msg(r->drv.rc.rule == rule, "rule %s, want %s",
		      svq_rule_name(r->drv.rc.rule), svq_rule_name(rule));
	ck_assert_uint_eq(r->drv_log.lines, 1);
	ck_assert_int_eq(svq_drv_get_used(&r->drv, &id, &len), -EIO);
	ck_assert_int_eq(svq_drv_add(&r->drv, &s, 1, NULL, &id), -EIO);
	ck_assert_uint_eq(r->drv_log.lines, 1);	/* logged once */
	ck_assert_uint_eq(r->drv.num_free, num_free);
	ck_assert_uint_eq(r->drv.inflight, inflight);
}

/* Three one-buffer chains in flight, ids in @ids; returns num_free. */
static uint16_t three_in_flight(struct ring *r, uint8_t layout, uint16_t ids[3])
{
	unsigned int i;

	ring_init(r, layout, 8, 0);
	for (i = 0; i < 3; i++)
		ids[i] = add_one(r);
	(void)svq_drv_kick_prepare(&r->drv);
	r->drv_log.lines = 0;
	return r->drv.num_free;
}

static uint16_t used_flags0(const struct ring *r)
{
	return used_bits(0, r->num);
}

START_TEST(test_used_id_out_of_range_breaks)
{
	unsigned int i, n = _i == SPLIT ? 3 : 2;	/* packed ids are 16 bits */
	uint16_t ids[3], num_free, id;
	uint32_t len, bad;
	struct ring r;

	for (i = 0; i < n; i++) {
		num_free = three_in_flight(&r, _i, ids);
		/* The last one is in flight if cut to 16 bits. */
		bad = i == 0 ? 8 : i == 1 ? 0xffff : 0x10000u | ids[0];
		hostile_used(&r, 0, bad, 0, used_flags0(&r));
		expect_drv_broken(&r, svq_drv_get_used(&r.drv, &id, &len), SVQ_RULE_USED_ID);
		ck_assert_uint_eq(r.drv.num_free, num_free);
		ring_fini(&r);
	}
}
END_TEST

START_TEST(test_used_id_not_in_flight_breaks)
{
	uint16_t ids[3], num_free, id, bad;
	uint32_t len;
	struct ring r;

	num_free = three_in_flight(&r, _i, ids);
	for (bad = 0; bad == ids[0] || bad == ids[1] || bad == ids[2]; bad++)
		;
	hostile_used(&r, 0, bad, 0, used_flags0(&r));
	expect_drv_broken(&r, svq_drv_get_used(&r.drv, &id, &len), SVQ_RULE_USED_ID);
	ck_assert_uint_eq(r.drv.num_free, num_free);
	ring_fini(&r);
}
END_TEST

START_TEST(test_used_id_twice_breaks)
{
	uint16_t ids[3], num_free, id;
	uint32_t len;
	struct ring r;

	num_free = three_in_flight(&r, _i, ids);
	hostile_used(&r, 0, ids[1], 0, used_flags0(&r));
	used_expect(&r, ids[1], 0);
	ck_assert_uint_eq(r.drv.num_free, num_free + 1);
	hostile_used(&r, 1, ids[1], 0, used_bits(1, r.num));
	expect_drv_broken(&r, svq_drv_get_used(&r.drv, &id, &len), SVQ_RULE_USED_ID);
	ck_assert_uint_eq(r.drv.num_free, num_free + 1);
	ring_fini(&r);
}
END_TEST

/* A used entry when nothing is outstanding: fresh, and after some traffic. */
START_TEST(test_used_with_nothing_outstanding_breaks)
{
	unsigned int before;
	uint16_t id;
	uint32_t len;
	struct ring r;

	for (before = 0; before <= 11; before += 11) {
		ring_init(&r, _i, 8, 0);
		drive(&r, before);
		r.drv_log.lines = 0;
		hostile_used(&r, before, 0, 0, used_bits(before, 8));
		expect_drv_broken(&r, svq_drv_get_used(&r.drv, &id, &len), SVQ_RULE_USED_IDX);
		ck_assert_uint_eq(r.drv.num_free, 8);
		ring_fini(&r);
	}
}
END_TEST

START_TEST(test_split_used_idx_jump_breaks)
{
	/* used idx as the device publishes it, with 3 in flight */
	static const uint16_t jumps[] = { 4, 9, 0xffff, 0x8000 };
	uint16_t ids[3], num_free, id;
	unsigned int j;
	uint32_t len;
	struct ring r;

	for (j = 0; j < SVQ_ARRAY_SIZE(jumps); j++) {
		num_free = three_in_flight(&r, SPLIT, ids);
		hostile_used(&r, 0, ids[0], 0, 0);
		hostile_used(&r, 1, ids[1], 0, 0);
		hostile_used(&r, 2, ids[2], 0, 0);
		__atomic_store_n(&sused()->idx, htole16(jumps[j]), __ATOMIC_RELEASE);
		expect_drv_broken(&r, svq_drv_get_used(&r.drv, &id, &len), SVQ_RULE_USED_IDX);
		ck_assert_uint_eq(r.drv.num_free, num_free);
		ring_fini(&r);
	}
}
END_TEST

/*
 * Packed: a slot whose USED bit matches the used wrap counter but whose AVAIL
 * bit does not is not a used descriptor (vring.h: no rule for it). The
 * driver ignores it, frees nothing, and takes the proper entry afterwards.
 */
static void mismatch_not_used(struct ring *r, uint64_t pos, uint16_t id, uint16_t bad_flags)
{
	uint16_t num_free = r->drv.num_free, inflight = r->drv.inflight;

	hostile_used(r, pos, id, 0, bad_flags);
	used_none(r);
	ck_assert(!svq_drv_enable_cb(&r->drv));
	ck_assert(!r->drv.rc.broken);
	ck_assert_uint_eq(r->drv.num_free, num_free);
	ck_assert_uint_eq(r->drv.inflight, inflight);
	hostile_used(r, pos, id, 9, used_bits(pos, r->num));
	used_expect(r, id, 9);
	ck_assert_uint_eq(r->drv.num_free, num_free + 1);
}

START_TEST(test_packed_used_flags_mismatch_not_used)
{
	uint16_t ids[3];
	struct ring r;

	/* Lap 0 (used wrap 1): USED set, AVAIL clear. */
	three_in_flight(&r, PACKED, ids);
	mismatch_not_used(&r, 0, ids[0], SVQ_DESC_F_USED);
	ring_fini(&r);

	/* Lap 1 (used wrap 0): USED clear, AVAIL set. */
	ring_init(&r, PACKED, 3, 0);
	advance(&r, 3);
	ids[0] = add_one(&r);
	mismatch_not_used(&r, 3, ids[0], SVQ_DESC_F_AVAIL);
	ring_fini(&r);
}
END_TEST

/*
 * A device completing out of order leaves interior descriptors of a chain
 * untouched; a lap later, with nothing outstanding, the driver's next used
 * slot can hold one (AVAIL 1, USED 0 while the used wrap is 0). That is not
 * a used descriptor, and not a violation.
 */
START_TEST(test_packed_stale_slot_not_mistaken_for_used)
{
	struct svq_seg sa[1], sb[2], sc[1];
	uint16_t a, b, c, f;
	struct ring r;

	ring_init(&r, PACKED, 3, 0);
	a = add_chain(&r, sa, 1, 1, NULL);	/* slot 0 */
	b = add_chain(&r, sb, 2, 1, NULL);	/* slots 1, 2 */
	pop_expect(&r, a, sa, 1, 1);
	pop_expect(&r, b, sb, 2, 2);
	ck_assert_int_eq(svq_dev_push(&r.dev, b, 0), 0);	/* used at slot 0 */
	ck_assert_int_eq(svq_dev_push(&r.dev, a, 0), 0);	/* used at slot 2 */
	ck_assert_int_eq(svq_dev_flush(&r.dev), 2);
	used_expect(&r, b, 0);
	used_expect(&r, a, 0);
	c = add_chain(&r, sc, 1, 1, NULL);	/* slot 0, lap 1 */
	pop_expect(&r, c, sc, 1, 1);
	push_flush(&r, c, 0);
	used_expect(&r, c, 0);
	/* Slot 1 still holds b's interior descriptor from lap 0. */
	f = le16toh(pdesc()[1].flags);
	ck_assert_uint_eq(f & (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED), SVQ_DESC_F_AVAIL);
	used_none(&r);
	ck_assert(!r.drv.rc.broken);
	ck_assert(!svq_drv_enable_cb(&r.drv));
	a = add_chain(&r, sa, 1, 1, NULL);	/* slot 1, lap 1 */
	pop_expect(&r, a, sa, 1, 1);
	push_flush(&r, a, 0);
	used_expect(&r, a, 0);
	ck_assert_uint_eq(r.drv.num_free, 3);
	ring_fini(&r);
}
END_TEST

/* ---- add: chains the driver role refuses ---- */

struct snapshot {
	uint8_t *bytes;
	uint16_t num_free;
};

static void snap_take(struct snapshot *s, const struct ring *r)
{
	if (!s->bytes)
		s->bytes = malloc(RING_END);
	ck_assert_ptr_nonnull(s->bytes);
	memcpy(s->bytes, host(0), RING_END);
	s->num_free = r->drv.num_free;
}

static void snap_same(const struct snapshot *s, const struct ring *r, const char *what)
{
	ck_assert_msg(!memcmp(s->bytes, host(0), RING_END), "%s: ring memory changed", what);
	ck_assert_msg(r->drv.num_free == s->num_free, "%s: num_free %u, want %u",
		      what, r->drv.num_free, s->num_free);
	ck_assert_msg(!r->drv.rc.broken, "%s: ring broken", what);
}

static void add_expect(struct ring *r, const struct svq_seg *seg, unsigned int nseg,
		       const struct svq_indirect *ind, int err, const char *what)
{
	struct snapshot s = { 0 };
	uint16_t id;
	int rc;

	snap_take(&s, r);
	rc = svq_drv_add(&r->drv, seg, nseg, ind, &id);
	ck_assert_msg(rc == err, "%s: %d, want %d", what, rc, err);
	snap_same(&s, r, what);
	free(s.bytes);
}

START_TEST(test_add_bad_chain_einval)
{
	struct svq_seg seg[4], ok[2];
	struct svq_indirect small = table(0, 2), none = table(1, 0);
	struct ring r;
	uint16_t id;

	ring_init(&r, _i, 8, F_IND);
	for (unsigned int i = 0; i < 4; i++)
		seg[i] = (struct svq_seg){ .addr = gaddr(DATA_OFF) + 0x100 * i, .len = 16 };

	add_expect(&r, seg, 0, NULL, -EINVAL, "no segments");
	add_expect(&r, seg, 0, &small, -EINVAL, "no segments, indirect");
	seg[0].write = true;
	add_expect(&r, seg, 2, NULL, -EINVAL, "readable after writable");
	add_expect(&r, seg, 2, &small, -EINVAL, "readable after writable, indirect");
	seg[0].write = false;
	seg[1].write = true;
	seg[2].write = false;
	add_expect(&r, seg, 3, NULL, -EINVAL, "readable after writable, third");
	seg[2].write = true;
	seg[0].len = 0;
	add_expect(&r, seg, 1, NULL, -EINVAL, "zero-length readable");
	seg[0].len = 16;
	seg[1].len = 0;
	add_expect(&r, seg, 2, NULL, -EINVAL, "zero-length writable");
	add_expect(&r, seg, 2, &small, -EINVAL, "zero-length, indirect");
	seg[1].len = 16;
	add_expect(&r, seg, 3, &small, -EINVAL, "indirect table too small");
	add_expect(&r, seg, 1, &none, -EINVAL, "indirect table of 0 entries");

	/* Nothing leaked: the ring still carries a good chain end to end. */
	id = add_chain(&r, ok, 2, 1, NULL);
	(void)svq_drv_kick_prepare(&r.drv);
	pop_expect(&r, id, ok, 2, 2);
	pop_none(&r);
	push_flush(&r, id, 16);
	used_expect(&r, id, 16);
	ck_assert_uint_eq(r.drv.num_free, 8);
	ring_fini(&r);
}
END_TEST

START_TEST(test_add_indirect_not_negotiated_einval)
{
	struct svq_seg seg[2];
	struct svq_indirect ind = table(0, 4);
	struct ring r;

	ring_init(&r, _i, 8, F_EVENT);
	seg[0] = (struct svq_seg){ .addr = gaddr(DATA_OFF), .len = 16 };
	seg[1] = (struct svq_seg){ .addr = gaddr(DATA_OFF + 0x100), .len = 16, .write = true };
	add_expect(&r, seg, 2, &ind, -EINVAL, "indirect without INDIRECT_DESC");
	add_expect(&r, seg, 1, &ind, -EINVAL, "one-entry indirect without INDIRECT_DESC");
	ring_fini(&r);
}
END_TEST

START_TEST(test_add_without_room_enospc)
{
	struct svq_seg a[3], b[1], seg[2];
	struct svq_indirect ind = table(0, 4);
	struct ring r;
	uint16_t ia, ib;

	ring_init(&r, _i, 4, F_IND);
	seg[0] = (struct svq_seg){ .addr = gaddr(DATA_OFF), .len = 16 };
	seg[1] = (struct svq_seg){ .addr = gaddr(DATA_OFF + 0x100), .len = 16, .write = true };

	ia = add_chain(&r, a, 3, 1, NULL);
	ck_assert_uint_eq(r.drv.num_free, 1);
	add_expect(&r, seg, 2, NULL, -ENOSPC, "two descriptors, one free");
	ib = add_chain(&r, b, 1, 0, NULL);
	ck_assert_uint_eq(r.drv.num_free, 0);
	add_expect(&r, seg, 1, NULL, -ENOSPC, "one descriptor, none free");
	add_expect(&r, seg, 2, &ind, -ENOSPC, "indirect, none free");

	(void)svq_drv_kick_prepare(&r.drv);
	pop_expect(&r, ia, a, 3, 3);
	pop_expect(&r, ib, b, 1, 1);
	pop_none(&r);
	push_flush(&r, ib, 100);
	push_flush(&r, ia, 1);
	used_expect(&r, ib, 100);
	used_expect(&r, ia, 1);
	ck_assert_uint_eq(r.drv.num_free, 4);
	ring_fini(&r);
}
END_TEST

/* ---- init: configurations both roles refuse ---- */

static void drv_init_expect(const struct svq_drv_cfg *cfg, int err, const char *what)
{
	struct svq_drv drv;
	int rc = svq_drv_init(&drv, cfg);

	if (!rc)
		svq_drv_fini(&drv);
	ck_assert_msg(rc == err, "driver, %s: %d, want %d", what, rc, err);
}

static void dev_init_expect(const struct svq_dev_cfg *cfg, int err, const char *what)
{
	struct svq_dev dev;
	int rc = svq_dev_init(&dev, cfg);

	if (!rc)
		svq_dev_fini(&dev);
	ck_assert_msg(rc == err, "device, %s: %d, want %d", what, rc, err);
}

/* Apply @stmt to a copy of both default configs and expect @derr / @verr. */
#define BOTH(what, derr, verr, stmt) do {					\
		struct svq_drv_cfg d = dc;					\
		struct svq_dev_cfg v = vc;					\
		stmt;								\
		drv_init_expect(&d, derr, what);				\
		dev_init_expect(&v, verr, what);				\
	} while (0)

START_TEST(test_init_bad_config_rejected)
{
	struct svq_drv_cfg dc;
	struct svq_dev_cfg vc;
	struct ring r = { .layout = _i, .num = 8 };
	bool split = _i == SPLIT;

	ring_cfg(&r, &dc, &vc);
	BOTH("good", 0, 0, );
	BOTH("num 1", 0, 0, d.num = v.num = 1);
	BOTH("num 32768", 0, 0, d.num = v.num = SVQ_RING_MAX);
	BOTH("num 0", -EINVAL, -EINVAL, d.num = v.num = 0);
	BOTH("num 32769", -EINVAL, -EINVAL, d.num = v.num = SVQ_RING_MAX + 1);
	BOTH("num 65535", -EINVAL, -EINVAL, d.num = v.num = 65535);
	BOTH("num 3", split ? -EINVAL : 0, split ? -EINVAL : 0, d.num = v.num = 3);
	BOTH("num 100", split ? -EINVAL : 0, split ? -EINVAL : 0, d.num = v.num = 100);
	BOTH("num 32767", split ? -EINVAL : 0, split ? -EINVAL : 0,
	     d.num = v.num = SVQ_RING_MAX - 1);
	BOTH("layout 2", -EINVAL, -EINVAL, d.layout = v.layout = 2);
	BOTH("layout 255", -EINVAL, -EINVAL, d.layout = v.layout = 255);
	BOTH("flags bit 2", -EINVAL, -EINVAL, d.flags = v.flags = 1u << 2);
	BOTH("flags bit 31", -EINVAL, -EINVAL, d.flags = v.flags = F_EVENT | 1u << 31);
	BOTH("all known flags", 0, 0, d.flags = v.flags = SVQ_RING_F_ALL);

	/* Descriptor area: align 16 in both layouts. */
	BOTH("desc + 8", -EINVAL, -EINVAL,
	     (d.desc = host(DESC_OFF + 8), v.desc = gaddr(DESC_OFF + 8)));
	BOTH("desc + 2", -EINVAL, -EINVAL,
	     (d.desc = host(DESC_OFF + 2), v.desc = gaddr(DESC_OFF + 2)));
	/* Split avail align 2, used align 4; packed event structures align 4. */
	BOTH("driver area + 1", -EINVAL, -EINVAL,
	     (d.driver = host(DRIVER_OFF + 1), v.driver = gaddr(DRIVER_OFF + 1)));
	BOTH("driver area + 2", split ? 0 : -EINVAL, split ? 0 : -EINVAL,
	     (d.driver = host(DRIVER_OFF + 2), v.driver = gaddr(DRIVER_OFF + 2)));
	BOTH("device area + 2", -EINVAL, -EINVAL,
	     (d.device = host(DEVICE_OFF + 2), v.device = gaddr(DEVICE_OFF + 2)));
	BOTH("device area + 4", 0, 0,
	     (d.device = host(DEVICE_OFF + 4), v.device = gaddr(DEVICE_OFF + 4)));

	/* Driver role: host areas must be there. */
	drv_init_expect(&(struct svq_drv_cfg){ .layout = _i, .num = 8, .driver = dc.driver,
					       .device = dc.device }, -EINVAL, "NULL desc");
	{
		struct svq_drv_cfg d = dc;

		d.driver = NULL;
		drv_init_expect(&d, -EINVAL, "NULL driver area");
		d = dc;
		d.device = NULL;
		drv_init_expect(&d, -EINVAL, "NULL device area");
	}

	/* Device role: areas must be mapped and contiguous in guest memory. */
	{
		struct svq_dev_cfg v = vc;

		v.mem = NULL;
		dev_init_expect(&v, -EINVAL, "no mem ops");
		v = vc;
		v.desc = ARENA_BASE - 0x10000;
		dev_init_expect(&v, -EFAULT, "desc unmapped");
		v = vc;
		v.driver = ARENA_BASE + ARENA_SIZE + 0x1000;
		dev_init_expect(&v, -EFAULT, "driver area unmapped");
		v = vc;
		v.device = 0x1000;
		dev_init_expect(&v, -EFAULT, "device area unmapped");
		v = vc;
		v.desc = ARENA_BASE + ARENA_SIZE - 64;	/* 8 * 16 bytes, half outside */
		dev_init_expect(&v, -EFAULT, "desc runs past the end of memory");
		v = vc;
		v.device = ARENA_BASE + ARENA_SIZE - 4;	/* split used: 70 bytes */
		dev_init_expect(&v, split ? -EFAULT : 0, "device area at the end of memory");
		v = vc;
		v.desc = 0xffffffffffffff80ull;		/* aligned; addr + 128 wraps */
		dev_init_expect(&v, -EFAULT, "desc wraps the address space");
	}
}
END_TEST

/*
 * A device role handed a ring mid-life (vhost-user SET_VRING_BASE) picks up
 * where the last one stopped: split just before the 16-bit wrap, packed in
 * a lap with wrap counter 0.
 */
START_TEST(test_dev_resume_at_base_continues)
{
	struct svq_seg seg[3][2];
	struct svq_drv_cfg dc;
	struct svq_dev_cfg vc;
	uint16_t num = _i == SPLIT ? 8 : 7, ids[3];
	uint64_t before = _i == SPLIT ? 65533 : 3 * 7 + 2;
	uint32_t base, want;
	struct ring r;
	int i;

	ring_init(&r, _i, num, F_EVENT);
	drive(&r, before);
	base = svq_dev_get_base(&r.dev);
	/* Packed: vhost's format, used position in the high half. */
	want = _i == SPLIT ? 65533 :
	       off_wrap_of(before, num) | (uint32_t)off_wrap_of(before, num) << 16;
	ck_assert_uint_eq(base, want);
	svq_dev_fini(&r.dev);

	ring_cfg(&r, &dc, &vc);
	vc.resume = true;
	vc.base = base;
	ck_assert_int_eq(svq_dev_init(&r.dev, &vc), 0);
	ck_assert_uint_eq(svq_dev_get_base(&r.dev), base);
	for (i = 0; i < 3; i++)
		ids[i] = add_chain(&r, seg[i], 2, 1, NULL);
	(void)svq_drv_kick_prepare(&r.drv);
	for (i = 0; i < 3; i++)
		pop_expect(&r, ids[i], seg[i], 2, 2);
	pop_none(&r);
	for (i = 2; i >= 0; i--)
		ck_assert_int_eq(svq_dev_push(&r.dev, ids[i], i), 0);
	ck_assert_int_eq(svq_dev_flush(&r.dev), 3);
	if (_i == SPLIT)
		ck_assert_uint_eq(le16toh(sused()->idx), (uint16_t)(65533 + 3));
	for (i = 2; i >= 0; i--)
		used_expect(&r, ids[i], i);
	used_none(&r);
	ck_assert_uint_eq(r.drv.num_free, num);
	ck_assert_uint_eq(svq_dev_get_base(&r.dev),
			  _i == SPLIT ? (uint16_t)(65533 + 3) :
			  off_wrap_of(before + 6, num) |
			  (uint32_t)off_wrap_of(before + 6, num) << 16);
	ring_fini(&r);
}
END_TEST

START_TEST(test_dev_resume_bad_base_einval)
{
	struct svq_drv_cfg dc;
	struct svq_dev_cfg vc;
	struct ring r;

	ring_init(&r, PACKED, 7, 0);
	ring_cfg(&r, &dc, &vc);
	vc.resume = true;
	vc.base = 7;			/* offset == num */
	dev_init_expect(&vc, -EINVAL, "packed base offset 7 of 7");
	vc.base = 0x7fff;
	dev_init_expect(&vc, -EINVAL, "packed base offset 0x7fff");
	vc.base = 0x8000 | 7u << 16;	/* used offset == num */
	dev_init_expect(&vc, -EINVAL, "packed used offset 7 of 7");
	vc.base = 3 | 0x8000 | (4u | 0x8000) << 16;
	dev_init_expect(&vc, -EINVAL, "packed used ahead of avail");
	vc.base = 3 | (2u | 0x8000) << 16;	/* used a lap and more behind */
	dev_init_expect(&vc, -EINVAL, "packed used 8 slots behind of 7");
	vc.base = 6 | 0x8000;
	dev_init_expect(&vc, 0, "packed base 6, wrap 1");
	vc.base = 0x80008000;
	dev_init_expect(&vc, 0, "packed base of a fresh ring, vhost's format");
	vc.base = 3 | (5u | 0x8000) << 16;	/* 5 slots held over a wrap */
	dev_init_expect(&vc, 0, "packed used 5 behind across the wrap");
	ring_fini(&r);
}
END_TEST

/*
 * A packed ring attached at a vhost base whose used half is behind its avail
 * half: the slots between stay held (their chains went with the last
 * owner), completions are written from the used position on, and the base
 * read back keeps both halves.
 */
START_TEST(test_dev_resume_packed_used_behind)
{
	struct svq_seg seg[2][2];
	struct svq_drv_cfg dc;
	struct svq_dev_cfg vc;
	uint16_t num = 7, ids[2];
	struct ring r;
	int i;

	ring_init(&r, PACKED, num, 0);
	ring_cfg(&r, &dc, &vc);
	svq_dev_fini(&r.dev);
	vc.resume = true;
	vc.base = 0x80008000;
	ck_assert_int_eq(svq_dev_init(&r.dev, &vc), 0);
	ck_assert_uint_eq(svq_dev_get_base(&r.dev), 0x80008000);
	/* Two chains of 2 slots; the device pops both, then its owner
	 * hands the ring on with both still held. */
	for (i = 0; i < 2; i++)
		ids[i] = add_chain(&r, seg[i], 2, 1, NULL);
	for (i = 0; i < 2; i++)
		pop_expect(&r, ids[i], seg[i], 2, 2);
	ck_assert_uint_eq(svq_dev_get_base(&r.dev), (4u | 0x8000) | 0x8000u << 16);
	svq_dev_fini(&r.dev);
	vc.base = (4u | 0x8000) | 0x8000u << 16;
	ck_assert_int_eq(svq_dev_init(&r.dev, &vc), 0);
	ck_assert_uint_eq(svq_dev_get_base(&r.dev), vc.base);
	/* Four slots stay held: a chain of 4 more would exceed the ring. */
	ck_assert_uint_eq(r.dev.packed.inflight_descs, 4);
	ring_fini(&r);
}
END_TEST

START_TEST(test_drv_init_zeroes_ring)
{
	struct ring r;
	size_t i, dsz, asz, usz;
	const uint8_t *p;

	ring_init(&r, _i, 256, SVQ_RING_F_ALL);
	if (_i == SPLIT) {
		dsz = svq_split_desc_size(256);
		asz = svq_split_avail_size(256);
		usz = svq_split_used_size(256);
	} else {
		dsz = svq_packed_desc_size(256);
		asz = usz = SVQ_PACKED_EVENT_SIZE;
	}
	for (i = 0, p = host(DESC_OFF); i < dsz; i++)
		ck_assert_msg(!p[i], "descriptor byte %zu is %#x", i, p[i]);
	for (i = 0, p = host(DRIVER_OFF); i < asz; i++)
		ck_assert_msg(!p[i], "driver area byte %zu is %#x", i, p[i]);
	for (i = 0, p = host(DEVICE_OFF); i < usz; i++)
		ck_assert_msg(!p[i], "device area byte %zu is %#x", i, p[i]);
	/* And not a byte more. */
	ck_assert_uint_eq(*(uint8_t *)host(DESC_OFF + dsz), 0xa5);
	ck_assert_uint_eq(*(uint8_t *)host(DRIVER_OFF + asz), 0xa5);
	ck_assert_uint_eq(*(uint8_t *)host(DEVICE_OFF + usz), 0xa5);
	ring_fini(&r);
}
END_TEST

START_TEST(test_area_sizes_match_spec)
{
	static const uint16_t nums[] = { 1, 3, 256, SVQ_RING_MAX };
	unsigned int i;

	for (i = 0; i < SVQ_ARRAY_SIZE(nums); i++) {
		size_t n = nums[i];

		ck_assert_uint_eq(svq_split_desc_size(n), 16 * n);
		ck_assert_uint_eq(svq_split_avail_size(n), 6 + 2 * n);
		ck_assert_uint_eq(svq_split_used_size(n), 6 + 8 * n);
		ck_assert_uint_eq(svq_packed_desc_size(n), 16 * n);
	}
	ck_assert_uint_eq(SVQ_PACKED_EVENT_SIZE, 4);
	ck_assert_uint_eq(sizeof(struct svq_split_desc), 16);
	ck_assert_uint_eq(sizeof(struct svq_packed_desc), 16);
	ck_assert_uint_eq(sizeof(struct svq_used_elem), 8);
}
END_TEST

START_TEST(test_rules_named_with_errno)
{
	unsigned int i, j;

	for (i = 0; i < SVQ_NR_RULES; i++) {
		ck_assert_ptr_nonnull(svq_rule_name(i));
		ck_assert_uint_gt(strlen(svq_rule_name(i)), 0);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(svq_rule_name(i), svq_rule_name(j));
		if (i != SVQ_RULE_NONE)
			ck_assert_int_lt(svq_rule_errno(i), 0);
	}
	ck_assert_ptr_nonnull(svq_rule_name(SVQ_NR_RULES));
	ck_assert_ptr_nonnull(svq_rule_name(1000));
}
END_TEST

/* ---- suite ---- */

static TCase *tcase(Suite *s, const char *name, int timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, arena_setup, arena_teardown);
	tcase_set_timeout(tc, timeout);
	suite_add_tcase(s, tc);
	return tc;
}

static Suite *ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *tc;

	tc = tcase(s, "roundtrip", 120);
	tcase_add_loop_test(tc, test_roundtrip_random_chains_match, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_split_unkicked_chains_invisible);
	tcase_add_test(tc, test_split_publish_each_visible_on_add);
	tcase_add_test(tc, test_packed_added_chains_visible_at_once);
	tcase_add_loop_test(tc, test_indirect_chain_of_max_entries_roundtrips, 0,
			    SVQISO_NR_LAYOUTS);

	tc = tcase(s, "event-idx", 120);
	tcase_add_test(tc, test_need_event_table_matches_spec);
	tcase_add_loop_test(tc, test_split_event_idx_at_u16_wrap_matches_rule, 0,
			    SVQ_ARRAY_SIZE(split_wrap_cases));
	tcase_add_loop_test(tc, test_packed_event_off_wrap_decides, 0,
			    SVQ_ARRAY_SIZE(packed_event_cases));
	tcase_add_test(tc, test_packed_kick_after_more_than_a_lap_matches_rule);
	tcase_add_test(tc, test_packed_notify_after_more_than_a_lap_matches_rule);
	tcase_add_loop_test(tc, test_event_idx_random_events_match_rule, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_event_idx_ignores_flags, 0, SVQISO_NR_LAYOUTS);

	tc = tcase(s, "notify", 10);
	tcase_add_loop_test(tc, test_notify_flags_decide, 0, SVQISO_NR_LAYOUTS);

	tc = tcase(s, "wrap", 120);
	tcase_add_loop_test(tc, test_packed_chain_ending_at_ring_end_flips_wrap, 0,
			    SVQ_ARRAY_SIZE(odd_sizes));
	tcase_add_loop_test(tc, test_packed_chain_straddling_ring_end_wraps, 0,
			    SVQ_ARRAY_SIZE(odd_sizes));
	tcase_add_loop_test(tc, test_packed_many_laps_keep_wrap, 0, SVQ_ARRAY_SIZE(odd_sizes));
	tcase_add_test(tc, test_split_idx_wraps_past_65535_keeps_working);

	tc = tcase(s, "backend", 10);
	tcase_add_loop_test(tc, test_used_id_out_of_range_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_used_id_not_in_flight_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_used_id_twice_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_used_with_nothing_outstanding_breaks, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_split_used_idx_jump_breaks);
	tcase_add_test(tc, test_packed_used_flags_mismatch_not_used);
	tcase_add_test(tc, test_packed_stale_slot_not_mistaken_for_used);

	tc = tcase(s, "add", 10);
	tcase_add_loop_test(tc, test_add_bad_chain_einval, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_add_indirect_not_negotiated_einval, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_add_without_room_enospc, 0, SVQISO_NR_LAYOUTS);

	tc = tcase(s, "init", 10);
	tcase_add_loop_test(tc, test_init_bad_config_rejected, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_drv_init_zeroes_ring, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_dev_resume_at_base_continues, 0, SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_dev_resume_bad_base_einval);
	tcase_add_test(tc, test_dev_resume_packed_used_behind);
	tcase_add_test(tc, test_area_sizes_match_spec);
	tcase_add_test(tc, test_rules_named_with_errno);
	return s;
}

int main(void)
{
	const char *env = getenv("SVQ_TEST_SEED");
	SRunner *sr;
	int failed;

	if (env && *env)
		test_seed = strtoull(env, NULL, 0);
	printf("# seed=%#" PRIx64 "\n", test_seed);
	fflush(stdout);

	sr = srunner_create(ring_suite());
	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
