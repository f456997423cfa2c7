/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a hostile guest in front of a shadow virtqueue, an honest
 * backend behind it.
 *
 * The input lays out guest RAM (small regions at arbitrary guest-physical
 * addresses, with holes, GPA-adjacent ones and one that may end at the top
 * of the 64-bit space; one may come and go), a guest ring (split or packed,
 * any valid size, INDIRECT and EVENT_IDX chosen for the guest and the shadow
 * ring independently) or element mode, then runs a sequence of steps: the
 * guest writes chains, descriptors, indexes, flags, tables and event fields,
 * garbage included; the VMM kicks, calls, resets, rewinds, reposts, pauses,
 * polls and remaps; the backend pops the shadow ring from isolated memory,
 * writes a known pattern into the writable bytes and completes, in any order.
 *
 * Besides the sanitizers', the target checks:
 *  - every chain the library takes is one the reference walk below takes
 *    too (same rules, same segments), and a guest violation that breaks
 *    the queue is one the reference sees;
 *  - the backend gets each request's readable bytes as they were when it
 *    was forwarded, at the chain's sizes; the shadow ring is always valid;
 *  - guest RAM equals a model kept here: besides the guest's own writes it
 *    changes only by the copy-back of requests completed to the guest,
 *    into their writable segments, with the bytes the backend left; ring
 *    words change only where the device may write (used ring, used
 *    descriptors, event suppression), with values the spec allows;
 *  - every range the dirty log reports lies in one region of guest RAM;
 *  - used lengths are what the backend reported, never past the writable
 *    bytes, and nothing completes twice or completes unsubmitted;
 *  - a broken queue does nothing (-EIO, memory unchanged) until reset;
 *  - nothing is lost: completing everything honestly brings the queue to
 *    nothing in flight with no lost kick or interrupt, and the pool is
 *    empty then and after a reset.
 *
 * The ring areas the library writes (split used ring; packed descriptors
 * and device event area) sit in a region that translates only while the
 * ring is being attached, so no guest buffer aliases them; what the guest
 * alone writes (split descriptors and avail ring, packed driver event) is
 * ordinary RAM that buffers and tables may point into.
 */
#include <endian.h>
#include <errno.h>
#include <unistd.h>
#include <svqiso/svq.h>
#include <svqiso/copy.h>
#include "svq_priv.h"
#include "fuzz_svq.h"

#define MAX_REGIONS	8
#define MAX_STEPS	192
#define REG_RING	0	/* the guest's driver-written ring areas, and data */
#define REG_HIDDEN	1	/* the ring areas the library writes */

struct region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *ram;		/* what the library sees */
	uint8_t *model;		/* what it must be */
	bool hidden;		/* translates only while a ring is attached */
	bool hotplug;		/* may be taken out of the map and back */
	bool present;
};

/* A piece of a request in guest RAM. */
struct seg {
	uint8_t reg;
	uint32_t off;
	uint32_t len;
	bool write;
};

enum rstate {
	R_FREE,
	R_POPPED,	/* taken by the library; the backend has not seen it */
	R_HELD,		/* popped by the backend */
	R_PUSHED,	/* completed by the backend, not yet published */
	R_FLUSHED,	/* published on the shadow used ring */
};

struct req {
	enum rstate st;
	uint32_t serial;	/* order taken; element mode: the cookie */
	uint16_t gid;		/* guest id (ring mode) */
	uint16_t ndescs;	/* guest ring slots (packed) */
	uint32_t pos;		/* guest ring position it was taken at */
	uint32_t out_bytes, in_bytes;
	uint16_t nseg, nout;
	struct seg *seg;
	bool fwd;		/* on the shadow ring */
	bool carried;		/* put there by a repost */
	bool kept;		/* a rewind kept it, carried: the next
				 * repost posts it again */
	uint32_t fwd_serial;
	uint8_t *img;		/* readable bytes (and writable, preserve) as forwarded */
	bool dirty;		/* the backend wrote its writable part */
	uint16_t sid;		/* shadow id while the backend holds it */
	uint16_t snseg;
	struct svq_seg *sseg;	/* its shadow segments, as the backend popped them */
	uint32_t push_serial;
	uint32_t len;		/* used len the backend reported */
	uint32_t wlen;		/* bytes the copy-back takes */
	uint8_t *wimg;		/* and their content */
};

/* The reference walk's result. */
struct walk {
	bool ok;
	uint16_t id, ndescs, nseg, nout;
	uint64_t out_bytes, in_bytes;
	bool seen_write;
	struct seg *seg;	/* [max_segs] scratch */
};

struct ctx {
	struct fz f;
	uint8_t seed;

	/* guest RAM */
	struct region r[MAX_REGIONS];
	unsigned int nr;
	int hotplug;		/* region index, or -1 */
	bool window;		/* hidden regions translate */
	bool builtin;		/* the library translates through a svqiso_mem */
	uint64_t chunk;		/* our translate: pieces end at multiples of it */
	uint64_t exempt[3];	/* ring area bases: never cut */
	uint64_t dirty_bytes;	/* what the dirty log reported */
	struct svqiso_mem *map;
	struct svqiso_mem_ops ops;

	/* configuration */
	bool element, preserve, under_report;
	uint8_t glayout, slayout;
	uint32_t gfeat, sfeat;
	uint16_t num, max_segs;	/* max_segs as the library uses it */
	uint64_t pool_cap;

	/* guest ring (ring mode) */
	uint64_t desc, driver, device;	/* area gpas */

	/* the guest driver's own state, which the input may lead astray */
	uint16_t d_avail_idx, d_pos, d_next_id;
	bool d_wrap;
	uint8_t *gbusy;		/* [num] ids the guest posted and has not seen used */

	/* the library's guest ring, as the reference follows it */
	uint16_t m_pos, m_used;
	bool m_wrap, m_used_wrap;
	uint32_t m_inflight_descs;	/* packed, slots held behind included */
	uint16_t m_inflight;
	int16_t *gid2req;		/* [num] */
	uint8_t *tbl;			/* reference table copy */
	uint8_t *visited;		/* [num] */
	uint8_t *tvisited;		/* [max_segs] */

	/* isolated side */
	struct svqiso_iso *iso;
	struct svqiso_region area;	/* a ring_area we own; size 0: none */
	struct svqiso_region piece;	/* the part of it the svq gets */
	struct svqiso_pool *pool;
	bool own_pool;
	struct svqiso_svq *svq;
	bool paused, rewound, busy;

	/* requests */
	struct req *req;
	unsigned int nreq;
	uint32_t serial, fwd_serial, push_serial;
	uint64_t seen_requests;		/* stats.requests accounted for */
	struct walk w;

	/* the backend */
	struct svq_dev be;
	bool be_up;
	bool be_stopped;		/* GET_VRING_BASE stopped it (rewind):
					 * it completes what it holds, no more */
	struct svq_seg *be_seg;		/* [max_segs] */

	/* element mode callbacks */
	bool in_reset, in_call;
	bool freeing;			/* svqiso_svq_free(): no callback may run */
	uint16_t armed[2];		/* the guest's event words, as armed */
	struct req refused;		/* a submit that failed in this call: */
	bool has_refused;		/* not taken, and it may be why */
	int resubmit;			/* submits a callback may still make */
	uint32_t last_given;		/* rewind: serial of the last given back */
};

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_trace_init();
	return 0;
}

/* ---- input helpers ---- */

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* ---- guest RAM ---- */

/* The region holding @a as the library sees guest memory, or -1. */
static int find(const struct ctx *x, uint64_t a)
{
	unsigned int i;

	for (i = 0; i < x->nr; i++) {
		const struct region *r = &x->r[i];

		if (!r->present || (r->hidden && !x->window))
			continue;
		if (a >= r->gpa && a - r->gpa < r->size)
			return (int)i;
	}
	return -1;
}

/*
 * Guest memory as the library gets it (and the reference walk uses it):
 * clamped at the region end and, for our own ops, at multiples of chunk
 * (a VMM translating page by page), except at a ring area's base.
 */
static int lookup(const struct ctx *x, uint64_t a, uint64_t *len)
{
	int i = find(x, a);
	uint64_t room;

	if (i < 0 || !*len)
		return -1;
	room = x->r[i].size - (a - x->r[i].gpa);
	if (*len > room)
		*len = room;
	if (x->chunk && a != x->exempt[0] && a != x->exempt[1] &&
	    a != x->exempt[2]) {
		room = x->chunk - (a & (x->chunk - 1));
		if (*len > room)
			*len = room;
	}
	return i;
}

static void *translate(void *ctx, uint64_t a, uint64_t *len)
{
	struct ctx *x = ctx;
	int i = lookup(x, a, len);

	return i < 0 ? NULL : x->r[i].ram + (a - x->r[i].gpa);
}

/* The guest writes its own RAM (every region it has), RAM and model alike. */
static void gw(struct ctx *x, uint64_t a, const void *src, uint64_t n)
{
	const uint8_t *s = src;
	unsigned int i;

	for (; n; a++, s++, n--) {
		for (i = 0; i < x->nr; i++) {
			struct region *r = &x->r[i];

			if (r->present && a >= r->gpa && a - r->gpa < r->size) {
				r->ram[a - r->gpa] = *s;
				r->model[a - r->gpa] = *s;
				break;
			}
		}
	}
}

static void gw16(struct ctx *x, uint64_t a, uint16_t v)
{
	v = htole16(v);
	gw(x, a, &v, 2);
}

static void gw32(struct ctx *x, uint64_t a, uint32_t v)
{
	v = htole32(v);
	gw(x, a, &v, 4);
}

static void gw64(struct ctx *x, uint64_t a, uint64_t v)
{
	v = htole64(v);
	gw(x, a, &v, 8);
}

/* Host pointers of ring words (their region is always present). */
static uint8_t *ram_at(struct ctx *x, uint64_t a)
{
	unsigned int i;

	for (i = 0; i < x->nr; i++)
		if (a >= x->r[i].gpa && a - x->r[i].gpa < x->r[i].size)
			return x->r[i].ram + (a - x->r[i].gpa);
	FZ_CHECK(0, "ring word %#llx outside guest RAM", (unsigned long long)a);
	return NULL;
}

static uint8_t *model_at(struct ctx *x, uint64_t a)
{
	unsigned int i;

	for (i = 0; i < x->nr; i++)
		if (a >= x->r[i].gpa && a - x->r[i].gpa < x->r[i].size)
			return x->r[i].model + (a - x->r[i].gpa);
	FZ_CHECK(0, "ring word %#llx outside guest RAM", (unsigned long long)a);
	return NULL;
}

/* Accept @n bytes the library wrote at @a, once checked. */
static void accept(struct ctx *x, uint64_t a, unsigned int n)
{
	memcpy(model_at(x, a), ram_at(x, a), n);
}

static void check_ram(struct ctx *x, const char *when)
{
	unsigned int i;
	uint64_t k;

	for (i = 0; i < x->nr; i++) {
		const struct region *r = &x->r[i];

		if (!memcmp(r->ram, r->model, r->size))
			continue;
		for (k = 0; r->ram[k] == r->model[k]; k++)
			;
		FZ_CHECK(0, "%s: guest RAM at %#llx (region %u%s) is %#x, must be %#x",
			 when, (unsigned long long)(r->gpa + k), i,
			 r->hidden ? ", ring" : "", r->ram[k], r->model[k]);
	}
}

/* Open or close the window in which the ring areas translate. */
static void window(struct ctx *x, bool open)
{
	const struct region *h = &x->r[REG_HIDDEN];

	if (x->element || x->window == open)
		return;
	x->window = open;
	if (x->builtin) {
		struct svqiso_mem_region mr = {
			.gpa = h->gpa, .size = h->size, .hva = h->ram, .fd = -1,
		};

		FZ_CHECK((open ? svqiso_mem_add_region(x->map, &mr) :
			  svqiso_mem_remove_region(x->map, h->gpa)) == 0,
			 "ring region in or out of the map");
	}
}

static void hotplug(struct ctx *x)
{
	struct region *h;

	if (x->hotplug < 0)
		return;
	h = &x->r[x->hotplug];
	h->present = !h->present;
	if (x->builtin) {
		struct svqiso_mem_region mr = {
			.gpa = h->gpa, .size = h->size, .hva = h->ram, .fd = -1,
		};

		FZ_CHECK((h->present ? svqiso_mem_add_region(x->map, &mr) :
			  svqiso_mem_remove_region(x->map, h->gpa)) == 0,
			 "hotplug region in or out of the map");
	}
}

/* Any address, but mostly near the regions' edges. */
static uint64_t pick_addr(struct ctx *x)
{
	uint8_t how = fz_u8(&x->f);
	const struct region *r = &x->r[fz_below(&x->f, x->nr)];

	switch (how & 7) {
	case 0:
		return fz_u64(&x->f);
	case 1:
		return UINT64_MAX - fz_u8(&x->f);
	case 2:
		return r->gpa + r->size - 1 - (fz_u8(&x->f) & 31);
	case 3:
		return r->gpa - 1 - (fz_u8(&x->f) & 3);
	default:
		return r->gpa + fz_u16(&x->f) % r->size;
	}
}

static uint32_t pick_len(struct ctx *x)
{
	uint8_t how = fz_u8(&x->f);

	switch (how & 7) {
	case 0:
		return fz_u32(&x->f);
	case 1:
		return 0;
	case 2:
	case 3:
		return 1 + fz_u16(&x->f) % 4096;
	default:
		return 1 + fz_u8(&x->f) % 64;
	}
}

/* ---- requests ---- */

static struct req *req_new(struct ctx *x)
{
	unsigned int i;

	for (i = 0; i < x->nreq; i++)
		if (x->req[i].st == R_FREE) {
			memset(&x->req[i], 0, sizeof(x->req[i]));
			x->req[i].serial = ++x->serial;
			return &x->req[i];
		}
	FZ_CHECK(0, "more requests live than the queue can hold");
	return NULL;
}

static void req_free(struct ctx *x, struct req *r)
{
	if (!x->element && x->gid2req[r->gid] == r - x->req) {
		x->gid2req[r->gid] = -1;
		x->m_inflight--;
		x->m_inflight_descs -= r->ndescs;
	}
	free(r->seg);
	free(r->img);
	free(r->sseg);
	free(r->wimg);
	memset(r, 0, sizeof(*r));
	r->st = R_FREE;
}

static unsigned int count(const struct ctx *x, bool (*pred)(const struct req *))
{
	unsigned int i, n = 0;

	for (i = 0; i < x->nreq; i++)
		if (x->req[i].st != R_FREE && pred(&x->req[i]))
			n++;
	return n;
}

static bool any(const struct req *r)
{
	(void)r;
	return true;
}

static bool unseen(const struct req *r)
{
	return r->st == R_POPPED && !r->kept;
}

/* Ring mode, what a rewind keeps rather than gives back: put on the shadow
 * ring by a repost, never taken by the backend since. */
static bool unseen_carried(const struct req *r)
{
	return unseen(r) && r->fwd && r->carried;
}

static bool unseen_fresh(const struct req *r)
{
	return unseen(r) && !(r->fwd && r->carried);
}

static bool on_shadow(const struct req *r)
{
	return r->fwd;
}

static bool waiting(const struct req *r)
{
	return r->st == R_POPPED && !r->fwd;
}

/* The live request with the least @key among those @pred takes. */
static struct req *least(struct ctx *x, bool (*pred)(const struct req *),
			 uint32_t (*key)(const struct req *))
{
	struct req *best = NULL;
	unsigned int i;

	for (i = 0; i < x->nreq; i++) {
		struct req *r = &x->req[i];

		if (r->st != R_FREE && pred(r) && (!best || key(r) < key(best)))
			best = r;
	}
	return best;
}

static bool fwd_unseen(const struct req *r)
{
	return r->st == R_POPPED && r->fwd && !r->kept;
}

static bool flushed(const struct req *r)
{
	return r->st == R_FLUSHED;
}

static uint32_t by_serial(const struct req *r)
{
	return r->serial;
}

static uint32_t by_fwd(const struct req *r)
{
	return r->fwd_serial;
}

static uint32_t by_push(const struct req *r)
{
	return r->push_serial;
}

static struct req *by_cookie(struct ctx *x, void *cookie)
{
	unsigned int i;

	for (i = 0; i < x->nreq; i++)
		if (x->req[i].st != R_FREE &&
		    (uintptr_t)x->req[i].serial == (uintptr_t)cookie)
			return &x->req[i];
	return NULL;
}

/* Gather @r's segments from @k0 on into @dst from the model, @n bytes. */
static void gather(struct ctx *x, const struct req *r, unsigned int k0,
		   uint8_t *dst, uint64_t n)
{
	unsigned int k;

	for (k = k0; k < r->nseg && n; k++) {
		uint32_t m = r->seg[k].len < n ? r->seg[k].len : (uint32_t)n;

		memcpy(dst, x->r[r->seg[k].reg].model + r->seg[k].off, m);
		dst += m;
		n -= m;
	}
}

/* What the library's copy-back of @r must do to guest RAM. */
static void model_copy_back(struct ctx *x, const struct req *r)
{
	const uint8_t *src = r->wimg;
	uint32_t n = r->wlen;
	unsigned int k;

	for (k = r->nout; k < r->nseg && n; k++) {
		uint32_t m = r->seg[k].len < n ? r->seg[k].len : n;

		memcpy(x->r[r->seg[k].reg].model + r->seg[k].off, src, m);
		src += m;
		n -= m;
	}
}

/*
 * The library forwarded requests (its counter says how many since we last
 * looked): the oldest waiting ones, in order. Their bytes are what the
 * model holds now.
 */
static void note_forwarded(struct ctx *x)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint64_t d;

	FZ_CHECK(svqiso_svq_get_stats(x->svq, &st) == 0, "stats");
	d = st.requests - x->seen_requests;
	x->seen_requests = st.requests;
	while (d--) {
		struct req *r = least(x, waiting, by_serial);
		uint64_t n;

		FZ_CHECK(r, "the library forwarded a request nobody made");
		r->fwd = true;
		r->carried = false;
		r->fwd_serial = ++x->fwd_serial;
		n = r->out_bytes + (x->preserve ? r->in_bytes : 0);
		r->img = malloc(n ? n : 1);
		FZ_CHECK(r->img, "malloc");
		gather(x, r, 0, r->img, n);
	}
}

/* ---- the reference walk ---- */

static bool ref_buf(struct ctx *x, struct walk *w, uint64_t addr, uint32_t len,
		    bool write)
{
	uint64_t a = addr, left = len;

	if (!len || addr > UINT64_MAX - (len - 1))
		return false;
	if (!write && w->seen_write)
		return false;
	if (w->out_bytes + w->in_bytes + len > UINT32_MAX)
		return false;
	while (left) {
		uint64_t n = left;
		int i = lookup(x, a, &n);

		if (i < 0 || w->nseg >= x->max_segs)
			return false;
		w->seg[w->nseg++] = (struct seg){
			.reg = (uint8_t)i, .off = (uint32_t)(a - x->r[i].gpa),
			.len = (uint32_t)n, .write = write,
		};
		a += n;
		left -= n;
	}
	if (write) {
		w->in_bytes += len;
	} else {
		w->out_bytes += len;
		w->nout = w->nseg;
	}
	w->seen_write |= write;
	return true;
}

static bool ref_table(struct ctx *x, struct walk *w, uint64_t addr, uint32_t len)
{
	bool split = x->glayout == SVQISO_LAYOUT_SPLIT;
	uint64_t a = addr, left = len;
	uint8_t *d = x->tbl;
	unsigned int n, i;

	if (!(x->gfeat & SVQISO_RING_F_INDIRECT))
		return false;
	if (!len || len % 16 || len / 16 > x->max_segs ||
	    addr > UINT64_MAX - (len - 1))
		return false;
	while (left) {
		uint64_t k = left;
		int r = lookup(x, a, &k);

		if (r < 0)
			return false;
		memcpy(d, x->r[r].ram + (a - x->r[r].gpa), k);
		d += k;
		a += k;
		left -= k;
	}
	n = len / 16;
	if (!split) {
		for (i = 0; i < n; i++) {
			const uint8_t *e = x->tbl + 16 * i;

			if (rd16(e + 14) & SVQ_DESC_F_INDIRECT ||
			    !ref_buf(x, w, rd64(e), rd32(e + 8),
				     rd16(e + 14) & SVQ_DESC_F_WRITE))
				return false;
		}
		return true;
	}
	memset(x->tvisited, 0, n);
	for (i = 0;;) {
		const uint8_t *e = x->tbl + 16 * i;
		uint16_t flags = rd16(e + 12);

		if (x->tvisited[i])
			return false;
		x->tvisited[i] = 1;
		if (flags & SVQ_DESC_F_INDIRECT ||
		    !ref_buf(x, w, rd64(e), rd32(e + 8), flags & SVQ_DESC_F_WRITE))
			return false;
		if (!(flags & SVQ_DESC_F_NEXT))
			return true;
		i = rd16(e + 14);
		if (i >= n)
			return false;
	}
}

static bool ref_desc(struct ctx *x, struct walk *w, uint64_t addr, uint32_t len,
		     uint16_t flags)
{
	if (!(flags & SVQ_DESC_F_INDIRECT))
		return ref_buf(x, w, addr, len, flags & SVQ_DESC_F_WRITE);
	if (flags & SVQ_DESC_F_NEXT)
		return false;
	return ref_table(x, w, addr, len);
}

static void walk_start(struct walk *w)
{
	w->ok = false;
	w->nseg = w->nout = 0;
	w->out_bytes = w->in_bytes = 0;
	w->seen_write = false;
	w->ndescs = 0;
}

/* Split: the chain the avail entry at @pos names. */
static void ref_split(struct ctx *x, uint16_t pos, struct walk *w)
{
	uint16_t num = x->num, head, i;

	walk_start(w);
	if (x->m_inflight >= num)
		return;
	head = rd16(ram_at(x, x->driver + 4 + 2 * (pos & (num - 1))));
	if (head >= num || x->gid2req[head] >= 0)
		return;
	memset(x->visited, 0, num);
	x->visited[head] = 1;
	for (i = head;;) {
		const uint8_t *d = ram_at(x, x->desc + 16 * (uint64_t)i);
		uint16_t flags = rd16(d + 12), next = rd16(d + 14);

		w->ndescs++;
		if (!ref_desc(x, w, rd64(d), rd32(d + 8), flags))
			return;
		if (!(flags & SVQ_DESC_F_NEXT))
			break;
		if (next >= num || x->visited[next])
			return;
		x->visited[next] = 1;
		i = next;
	}
	w->id = head;
	w->ok = true;
}

static bool avail_in(uint16_t flags, bool wrap)
{
	return !!(flags & SVQ_DESC_F_AVAIL) == wrap &&
	       !!(flags & SVQ_DESC_F_USED) != wrap;
}

static void step(uint16_t *pos, bool *wrap, uint16_t n, uint16_t num)
{
	unsigned int i = *pos + (unsigned int)n;

	if (i >= num) {
		i -= num;
		*wrap = !*wrap;
	}
	*pos = (uint16_t)i;
}

/* Packed: the chain at slot @pos of lap @wrap. Return: false if none is there. */
static bool ref_packed(struct ctx *x, uint16_t pos, bool wrap, struct walk *w)
{
	uint16_t num = x->num, id = 0;
	const uint8_t *d = ram_at(x, x->desc + 16 * (uint64_t)pos);

	walk_start(w);
	if (!avail_in(rd16(d + 14), wrap))
		return false;
	if (x->m_inflight >= num)
		return true;
	for (;;) {
		uint16_t flags;

		d = ram_at(x, x->desc + 16 * (uint64_t)pos);
		flags = rd16(d + 14);
		if (w->ndescs == num || !avail_in(flags, wrap))
			return true;
		w->ndescs++;
		id = rd16(d + 12);
		if (!ref_desc(x, w, rd64(d), rd32(d + 8), flags))
			return true;
		if (!(flags & SVQ_DESC_F_NEXT))
			break;
		step(&pos, &wrap, 1, num);
	}
	if (id >= num || x->gid2req[id] >= 0 ||
	    x->m_inflight_descs + w->ndescs > num)
		return true;
	w->id = id;
	w->ok = true;
	return true;
}

/* ---- the library calls ---- */

struct pre {
	bool broken, paused;
	uint32_t base;
	struct svqiso_svq_stats st;
	bool sig_armed;		/* the guest asked for an interrupt on anything */
};

static uint32_t guest_base(struct ctx *x)
{
	uint32_t b = 0;

	if (!x->element)
		FZ_CHECK(svqiso_svq_guest_base(x->svq, &b) == 0, "guest base");
	return b;
}

static void before(struct ctx *x, struct pre *p)
{
	p->broken = svqiso_svq_is_broken(x->svq);
	p->paused = x->paused;
	p->base = guest_base(x);
	p->st.sz = sizeof(p->st);
	svqiso_svq_get_stats(x->svq, &p->st);
	p->sig_armed = false;
	x->has_refused = false;
}

/* The guest asks to be interrupted for the next used buffer. */
static void guest_arm(struct ctx *x)
{
	if (x->glayout == SVQISO_LAYOUT_SPLIT) {
		gw16(x, x->driver, 0);
		gw16(x, x->driver + 4 + 2 * (uint64_t)x->num, x->m_used);
	} else if (x->gfeat & SVQISO_RING_F_EVENT_IDX) {
		gw16(x, x->driver, x->m_used | (uint16_t)x->m_used_wrap << 15);
		gw16(x, x->driver + 2, SVQ_EVENT_F_DESC);
	} else {
		gw16(x, x->driver + 2, SVQ_EVENT_F_ENABLE);
	}
	memcpy(x->armed, model_at(x, x->driver), 4);
	if (x->glayout == SVQISO_LAYOUT_SPLIT)
		memcpy(&x->armed[1], model_at(x, x->driver + 4 + 2 * (uint64_t)x->num), 2);
}

/* Whether the guest's event words still say what guest_arm() wrote. */
static bool still_armed(struct ctx *x)
{
	uint16_t w[2];

	memcpy(w, model_at(x, x->driver), 4);
	if (x->glayout == SVQISO_LAYOUT_SPLIT)
		memcpy(&w[1], model_at(x, x->driver + 4 + 2 * (uint64_t)x->num), 2);
	return !memcmp(w, x->armed, 4);
}

/*
 * Split used ring: the @k entries the call completed (the guest may have
 * scribbled over the index; the library goes on from its own), the index,
 * the flags and avail_event.
 */
static void consume_split(struct ctx *x, const struct pre *p, uint32_t base,
			  unsigned int k)
{
	uint16_t num = x->num;
	uint64_t u = x->device, ev = u + 4 + 8 * (uint64_t)num;
	unsigned int j;

	for (j = 0; j < k; j++) {
		uint64_t e = u + 4 + 8 * (uint64_t)((x->m_used + j) & (num - 1));
		uint32_t id = rd32(ram_at(x, e)), len = rd32(ram_at(x, e + 4));
		struct req *r = least(x, flushed, by_push);

		FZ_CHECK(r, "used entry %u (id %u) for nothing the backend completed",
			 j, id);
		FZ_CHECK(id == r->gid && len == r->len,
			 "used entry %u is id %u len %u, must be id %u len %u",
			 j, id, len, r->gid, r->len);
		FZ_CHECK(len <= r->in_bytes, "used len %u past %u writable bytes",
			 len, r->in_bytes);
		accept(x, e, 8);
		model_copy_back(x, r);
		x->gbusy[r->gid] = 0;
		req_free(x, r);
	}
	if (k) {
		x->m_used += (uint16_t)k;
		FZ_CHECK(rd16(ram_at(x, u + 2)) == x->m_used,
			 "used idx %u after %u completions, must be %u",
			 rd16(ram_at(x, u + 2)), k, x->m_used);
		accept(x, u + 2, 2);
	}
	if (memcmp(ram_at(x, u), model_at(x, u), 2)) {
		uint16_t f = rd16(ram_at(x, u));

		FZ_CHECK(!(x->gfeat & SVQISO_RING_F_EVENT_IDX) && f <= 1,
			 "used flags %#x (event idx %d)", f,
			 !!(x->gfeat & SVQISO_RING_F_EVENT_IDX));
		accept(x, u, 2);
	}
	if (memcmp(ram_at(x, ev), model_at(x, ev), 2)) {
		uint16_t e = rd16(ram_at(x, ev));

		FZ_CHECK(x->gfeat & SVQISO_RING_F_EVENT_IDX,
			 "avail_event written without EVENT_IDX");
		FZ_CHECK((uint16_t)(e - p->base) <= (uint16_t)(base - p->base),
			 "avail_event %u outside the positions %u..%u the call took",
			 e, p->base, base);
		accept(x, ev, 2);
	}
}

/* Packed: the used descriptors and device event area the call wrote. */
static void consume_packed(struct ctx *x, unsigned int k)
{
	uint64_t ev = x->device;
	unsigned int j;

	for (j = 0; j < k; j++) {
		uint64_t d = x->desc + 16 * (uint64_t)x->m_used;
		const uint8_t *g = ram_at(x, d);
		uint16_t used = x->m_used_wrap ? SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED : 0;
		uint16_t flags = rd16(g + 14), id = rd16(g + 12);
		uint32_t len = rd32(g + 8);
		struct req *r = least(x, flushed, by_push);

		FZ_CHECK(r, "used descriptor %u for nothing the backend completed", j);
		FZ_CHECK(!memcmp(g, model_at(x, d), 8),
			 "used descriptor at slot %u: address overwritten", x->m_used);
		FZ_CHECK(id == r->gid && len == r->len,
			 "used descriptor at slot %u is id %u len %u, must be id %u len %u",
			 x->m_used, id, len, r->gid, r->len);
		FZ_CHECK((flags & ~SVQ_DESC_F_WRITE) == used &&
			 (!len || (flags & SVQ_DESC_F_WRITE)),
			 "used descriptor at slot %u has flags %#x", x->m_used, flags);
		accept(x, d + 8, 8);
		model_copy_back(x, r);
		step(&x->m_used, &x->m_used_wrap, r->ndescs, x->num);
		x->gbusy[r->gid] = 0;
		req_free(x, r);
	}
	if (memcmp(ram_at(x, ev + 2), model_at(x, ev + 2), 2)) {
		uint16_t f = rd16(ram_at(x, ev + 2));

		FZ_CHECK(f == SVQ_EVENT_F_DISABLE ||
			 f == (x->gfeat & SVQISO_RING_F_EVENT_IDX ?
			       SVQ_EVENT_F_DESC : SVQ_EVENT_F_ENABLE),
			 "device event flags %#x", f);
		accept(x, ev + 2, 2);
	}
	if (memcmp(ram_at(x, ev), model_at(x, ev), 2)) {
		uint16_t ow = rd16(ram_at(x, ev));

		FZ_CHECK((x->gfeat & SVQISO_RING_F_EVENT_IDX) && (ow & 0x7fff) < x->num,
			 "device event offset %#x", ow);
		accept(x, ev, 2);
	}
}

/* The chains the library took, up to the base it reports now. */
static void new_pops(struct ctx *x, uint32_t base)
{
	unsigned int n = 0;

	for (;;) {
		struct walk *w = &x->w;
		struct req *r;
		uint32_t pos;

		if (x->glayout == SVQISO_LAYOUT_SPLIT) {
			if (x->m_pos == (uint16_t)base)
				break;
			pos = x->m_pos;
			ref_split(x, x->m_pos, w);
		} else {
			if (x->m_pos == (base & 0x7fff) && x->m_wrap == !!(base & 0x8000))
				break;
			pos = x->m_pos | (uint32_t)x->m_wrap << 15;
			FZ_CHECK(ref_packed(x, x->m_pos, x->m_wrap, w),
				 "the library took a chain at slot %u where none is available",
				 x->m_pos);
		}
		FZ_CHECK(w->ok, "the library took the chain at %#x, which breaks the rules",
			 pos);
		FZ_CHECK(++n <= x->num, "the library took more than a ring of chains");
		r = req_new(x);
		r->st = R_POPPED;
		r->gid = w->id;
		r->ndescs = w->ndescs;
		r->pos = pos;
		r->out_bytes = (uint32_t)w->out_bytes;
		r->in_bytes = (uint32_t)w->in_bytes;
		r->nseg = w->nseg;
		r->nout = w->nout;
		r->seg = malloc(sizeof(*r->seg) * (w->nseg ? w->nseg : 1));
		FZ_CHECK(r->seg, "malloc");
		memcpy(r->seg, w->seg, sizeof(*r->seg) * w->nseg);
		x->gid2req[w->id] = (int16_t)(r - x->req);
		x->m_inflight++;
		x->m_inflight_descs += w->ndescs;
		if (x->glayout == SVQISO_LAYOUT_SPLIT)
			x->m_pos++;
		else
			step(&x->m_pos, &x->m_wrap, w->ndescs, x->num);
	}
}

/* A request that could never be forwarded, as the library may say. */
static bool never_fits(const struct ctx *x, const struct req *r)
{
	uint64_t total = (uint64_t)r->out_bytes + r->in_bytes;

	if ((total ? total : 1) > x->pool_cap)
		return true;
	return !(x->sfeat & SVQISO_RING_F_INDIRECT) && x->num == 1 &&
	       r->nseg > 1 && r->out_bytes && r->in_bytes;
}

/* The queue broke in a process call: the reason must hold. */
static void check_break(struct ctx *x)
{
	struct svqiso_svq *svq = x->svq;
	const char *why = svqiso_svq_broken_reason(svq);

	FZ_CHECK(!svq->shadow.rc.broken, "the honest backend broke the shadow ring: %s",
		 svq->shadow.rc.reason);
	if (!x->element && svq->guest.rc.broken) {
		bool bad;

		if (x->glayout == SVQISO_LAYOUT_SPLIT) {
			uint16_t idx = rd16(ram_at(x, x->driver + 2));

			ref_split(x, x->m_pos, &x->w);
			bad = (uint16_t)(idx - x->m_pos) > x->num || !x->w.ok;
		} else {
			bad = ref_packed(x, x->m_pos, x->m_wrap, &x->w) && !x->w.ok;
		}
		FZ_CHECK(bad, "the library rejected a chain the reference takes: %s", why);
		return;
	}
	{
		struct req *held = least(x, waiting, by_serial);

		/* The request waiting first, or one a submit just failed with
		 * (it was not taken). */
		FZ_CHECK((held && never_fits(x, held)) ||
			 (x->has_refused && never_fits(x, &x->refused)),
			 "the queue broke for no reason the guest gave: %s", why);
	}
}

static void check_pool(struct ctx *x, const char *when)
{
	if (svqiso_svq_in_flight(x->svq))
		return;
	FZ_CHECK(svqiso_pool_in_use(x->pool) == 0,
		 "%s: nothing in flight, yet %llu pool bytes in use", when,
		 (unsigned long long)svqiso_pool_in_use(x->pool));
}

enum call {
	C_PROCESS,	/* process_avail, process_used, submit */
	C_OTHER,	/* set_busy_poll, rewind, repost, remap */
	C_RESET,
};

/* The library's guest ring position must be the reference's. */
static void check_base(struct ctx *x, uint32_t base, const char *what)
{
	uint32_t want;

	if (x->glayout == SVQISO_LAYOUT_SPLIT)
		want = x->m_pos;
	else
		want = (x->m_pos | (uint32_t)x->m_wrap << 15) |
		       (x->m_used | (uint32_t)x->m_used_wrap << 15) << 16;
	FZ_CHECK(base == want, "%s: the library's guest base is %#x, the reference's %#x",
		 what, base, want);
}

/*
 * After a call: account for what it did to guest RAM and the rings, and
 * check each of it.
 */
static void after(struct ctx *x, const struct pre *p, enum call kind, int ret,
		  const char *what)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint32_t base = guest_base(x);
	unsigned int k;

	FZ_CHECK(svqiso_svq_get_stats(x->svq, &st) == 0, "stats");
	FZ_TRACE("%s: %d, base %#x -> %#x, +%llu forwarded, +%llu completed%s%s\n",
		 what, ret, p->base, base,
		 (unsigned long long)(st.requests - p->st.requests),
		 (unsigned long long)(st.completions - p->st.completions),
		 svqiso_svq_is_broken(x->svq) ? ", broken: " : "",
		 svqiso_svq_is_broken(x->svq) ? svqiso_svq_broken_reason(x->svq) : "");
	if (p->broken && kind != C_RESET) {
		FZ_CHECK(ret == -EIO, "%s on a broken queue returned %d", what, ret);
		FZ_CHECK(svqiso_svq_is_broken(x->svq), "%s unbroke the queue", what);
		FZ_CHECK(st.completions == p->st.completions &&
			 st.requests == p->st.requests && base == p->base,
			 "%s on a broken queue did something", what);
		check_ram(x, what);
		return;
	}
	k = (unsigned int)(st.completions - p->st.completions);
	if (!x->element) {
		if (x->glayout == SVQISO_LAYOUT_SPLIT)
			consume_split(x, p, base, k);
		else
			consume_packed(x, k);
		/* A copy-back may have written the guest's own event words
		 * (a writable buffer over its avail ring): then it asked for
		 * something else. */
		if (p->sig_armed && k && ret >= 0 && still_armed(x))
			FZ_CHECK(ret & SVQISO_SIGNAL_GUEST,
				 "%s: %u completions, the guest asked for an interrupt, none came",
				 what, k);
	}
	check_ram(x, what);
	if (!x->element) {
		if (kind == C_PROCESS) {
			if (p->paused)
				FZ_CHECK((base & 0xffff) == (p->base & 0xffff),
					 "%s: took chains while paused", what);
			new_pops(x, base);
		} else if (kind == C_OTHER) {
			FZ_CHECK(base == p->base, "%s moved the guest ring", what);
		}
		if (!svqiso_svq_is_broken(x->svq) || kind != C_RESET)
			check_base(x, base, what);
	}
	note_forwarded(x);
	if (kind == C_PROCESS && svqiso_svq_is_broken(x->svq))
		check_break(x);
	FZ_CHECK(svqiso_svq_in_flight(x->svq) == count(x, any),
		 "%s: %u in flight, the guest counts %u", what,
		 svqiso_svq_in_flight(x->svq), count(x, any));
	check_pool(x, what);
}

/* ---- the backend ---- */

static void be_attach(struct ctx *x)
{
	struct svqiso_shadow_info si;
	struct svq_dev_cfg c;

	FZ_CHECK(svqiso_svq_get_shadow(x->svq, &si) == 0, "shadow info");
	memset(&c, 0, sizeof(c));
	c.layout = si.layout;
	c.num = si.num;
	c.flags = si.features;
	c.desc = si.iova.desc;
	c.driver = si.iova.driver;
	c.device = si.iova.device;
	c.mem = svqiso_mem_ops();
	c.mem_ctx = (void *)svqiso_iso_mem(x->iso);
	c.max_indirect = x->max_segs;
	c.name = "backend";
	if (x->be_up)
		svq_dev_fini(&x->be);
	FZ_CHECK(svq_dev_init(&x->be, &c) == 0, "backend cannot attach the shadow ring");
	x->be_up = true;
	x->be_stopped = false;
}

/* Compare @n bytes of shadow segments from @k0 on with @want. */
static bool shadow_equal(const struct svq_elem *e, unsigned int k0, unsigned int k1,
			 const uint8_t *want)
{
	unsigned int k;

	for (k = k0; k < k1; k++) {
		if (memcmp(e->seg[k].hva, want, e->seg[k].len))
			return false;
		want += e->seg[k].len;
	}
	return true;
}

/* Pop one shadow chain. Return: false when there is none. */
static bool be_pop(struct ctx *x)
{
	struct svq_elem e = { .seg = x->be_seg, .max_seg = x->max_segs };
	struct req *r;
	int ret;

	if (x->be_stopped)
		return false;
	ret = svq_dev_pop(&x->be, &e);

	FZ_CHECK(ret >= 0, "the shadow ring the library wrote is invalid: %s",
		 x->be.rc.reason);
	if (!ret)
		return false;
	r = least(x, fwd_unseen, by_fwd);
	FZ_CHECK(r, "the shadow ring holds a chain the library never forwarded");
	FZ_CHECK(e.out_bytes == r->out_bytes && e.in_bytes == r->in_bytes,
		 "shadow chain of %u+%u bytes for a request of %u+%u",
		 e.out_bytes, e.in_bytes, r->out_bytes, r->in_bytes);
	FZ_CHECK(shadow_equal(&e, 0, e.nout, r->img),
		 "the backend reads other bytes than the guest made readable");
	if (x->preserve && !r->dirty)
		FZ_CHECK(shadow_equal(&e, e.nout, e.nseg, r->img + r->out_bytes),
			 "preserve: the backend sees other writable bytes than the guest's");
	FZ_TRACE("backend: popped shadow %u (request %u, %u+%u bytes)\n", e.id,
		 r->serial, e.out_bytes, e.in_bytes);
	r->st = R_HELD;
	r->sid = e.id;
	r->snseg = e.nseg;
	free(r->sseg);
	r->sseg = malloc(sizeof(*r->sseg) * e.nseg);
	FZ_CHECK(r->sseg, "malloc");
	memcpy(r->sseg, e.seg, sizeof(*r->sseg) * e.nseg);
	return true;
}

static void be_pop_all(struct ctx *x)
{
	if (x->be_stopped)
		return;
	for (;;) {
		while (be_pop(x))
			;
		if (!svq_dev_enable_notify(&x->be))
			break;
	}
}

static bool held(const struct req *r)
{
	return r->st == R_HELD;
}

/* Complete @r: write the pattern into @wrote bytes, report @len. */
static void be_done(struct ctx *x, struct req *r, uint32_t wrote, uint32_t len)
{
	uint32_t k, at = 0, n;
	unsigned int s;
	uint8_t *p;

	for (s = 0; s < r->snseg; s++) {
		if (!r->sseg[s].write)
			continue;
		for (k = 0; k < r->sseg[s].len && at < wrote; k++, at++)
			((uint8_t *)r->sseg[s].hva)[k] =
				(uint8_t)(r->serial * 29u + at * 7u + x->seed);
	}
	r->dirty |= wrote > 0;
	r->len = len;
	r->wlen = x->preserve ? r->in_bytes : len;
	r->wimg = malloc(r->wlen ? r->wlen : 1);
	FZ_CHECK(r->wimg, "malloc");
	for (s = 0, p = r->wimg, n = r->wlen; s < r->snseg && n; s++) {
		uint32_t m;

		if (!r->sseg[s].write)
			continue;
		m = r->sseg[s].len < n ? r->sseg[s].len : n;
		memcpy(p, r->sseg[s].hva, m);
		p += m;
		n -= m;
	}
	FZ_TRACE("backend: completed shadow %u (request %u), wrote %u, len %u\n",
		 r->sid, r->serial, wrote, len);
	FZ_CHECK(svq_dev_push(&x->be, r->sid, len) == 0, "backend push");
	r->st = R_PUSHED;
	r->push_serial = ++x->push_serial;
}

/* Complete the @i-th held request (in taking order), honestly. */
static bool be_complete(struct ctx *x, unsigned int i)
{
	unsigned int n = count(x, held), j;
	uint32_t wrote, len;
	struct req *r = NULL;

	if (!n)
		return false;
	i %= n;
	for (j = 0; j < x->nreq; j++)
		if (x->req[j].st == R_HELD && !i--) {
			r = &x->req[j];
			break;
		}
	wrote = r->in_bytes ? fz_u32(&x->f) % (r->in_bytes + 1) : 0;
	len = wrote;
	if (x->under_report && wrote && fz_bool(&x->f))
		len = fz_u32(&x->f) % wrote;	/* a device that under-reports */
	be_done(x, r, wrote, len);
	return true;
}

static bool pushed(const struct req *r)
{
	return r->st == R_PUSHED;
}

/* Publish what was completed. Return: whether the backend would call. */
static bool be_flush(struct ctx *x)
{
	unsigned int i;

	if (!count(x, pushed))
		return false;
	FZ_CHECK(svq_dev_flush(&x->be) >= 0, "backend flush");
	for (i = 0; i < x->nreq; i++)
		if (x->req[i].st == R_PUSHED)
			x->req[i].st = R_FLUSHED;
	return svq_dev_need_notify(&x->be);
}

/* ---- element mode callbacks ---- */

static void element_submit(struct ctx *x);

/* The dirty log (ring mode, always on): each range is guest RAM. */
static void on_dirty(void *ctx, uint64_t gpa, uint64_t len)
{
	struct ctx *x = ctx;
	unsigned int i;

	FZ_CHECK(len && gpa + (len - 1) >= gpa, "dirty range %#llx + %llu",
		 (unsigned long long)gpa, (unsigned long long)len);
	x->dirty_bytes += len;
	for (i = 0; i < x->nr; i++)
		if (gpa >= x->r[i].gpa && gpa - x->r[i].gpa <= x->r[i].size - 1 &&
		    len - 1 <= x->r[i].size - 1 - (gpa - x->r[i].gpa))
			return;
	FZ_CHECK(0, "dirty range %#llx + %llu in no region of guest RAM",
		 (unsigned long long)gpa, (unsigned long long)len);
}

static void on_complete(void *ctx, void *cookie, uint32_t len)
{
	struct ctx *x = ctx;
	struct req *r = by_cookie(x, cookie);

	FZ_CHECK(!x->freeing, "a completion from svqiso_svq_free()");
	FZ_CHECK(r, "completion of cookie %lu, never taken or already completed",
		 (unsigned long)(uintptr_t)cookie);
	if (x->in_reset) {
		FZ_CHECK(len == 0, "a reset completed cookie %u with len %u",
			 r->serial, len);
		req_free(x, r);
	} else {
		struct req *next = least(x, flushed, by_push);

		FZ_CHECK(x->in_call, "a completion outside process_used");
		FZ_CHECK(r == next, "cookie %u completed before the backend's order (%u)",
			 r->serial, next ? next->serial : 0);
		FZ_CHECK(len == r->len && len <= r->in_bytes,
			 "cookie %u completed with len %u, the backend said %u (%u writable)",
			 r->serial, len, r->len, r->in_bytes);
		model_copy_back(x, r);
		req_free(x, r);
	}
	if (x->resubmit > 0 && fz_bool(&x->f)) {
		x->resubmit--;
		element_submit(x);
	}
}

static void on_giveback(void *ctx, void *cookie)
{
	struct ctx *x = ctx;
	struct req *r = by_cookie(x, cookie);

	FZ_CHECK(r && r->st == R_POPPED,
		 "gave back cookie %lu, which the backend holds or nobody submitted",
		 (unsigned long)(uintptr_t)cookie);
	FZ_CHECK(!x->last_given || r->serial < x->last_given,
		 "gave back cookie %u after %u: not newest first", r->serial,
		 x->last_given);
	x->last_given = r->serial;
	req_free(x, r);
}

/* ---- steps ---- */

static int process_avail(struct ctx *x, bool arm)
{
	struct pre p;
	int ret;

	before(x, &p);
	p.sig_armed = arm;
	ret = svqiso_svq_process_avail(x->svq);
	if (x->element) {
		FZ_CHECK(ret == (p.broken ? -EIO : -EINVAL),
			 "process_avail in element mode: %d", ret);
		return ret;
	}
	after(x, &p, C_PROCESS, ret, "process_avail");
	return ret;
}

static int process_used(struct ctx *x, bool arm)
{
	struct pre p;
	int ret;

	before(x, &p);
	p.sig_armed = arm;
	x->in_call = true;
	ret = svqiso_svq_process_used(x->svq);
	x->in_call = false;
	after(x, &p, C_PROCESS, ret, "process_used");
	return ret;
}

static void submit_iov(struct ctx *x, struct iovec *v, struct seg *s)
{
	const struct region *r;
	unsigned int i;

	i = fz_below(&x->f, x->nr);
	if (!x->r[i].present || x->r[i].hidden)
		i = 0;		/* the VMM only hands over memory the guest has */
	r = &x->r[i];
	s->reg = (uint8_t)i;
	s->off = fz_u16(&x->f) % r->size;
	s->len = fz_u8(&x->f) & 0x80 ? fz_u16(&x->f) : 1 + fz_u8(&x->f) % 64;
	if (s->len > r->size - s->off)
		s->len = (uint32_t)(r->size - s->off);
	if (!(fz_u8(&x->f) & 31))
		s->len = 0;
	v->iov_base = r->ram + s->off;
	v->iov_len = s->len;
}

static void element_submit(struct ctx *x)
{
	unsigned int nout = fz_u8(&x->f) % 4, nin = fz_u8(&x->f) % 4, n, k;
	struct iovec v[2 * 132];
	struct seg s[2 * 132];
	uint64_t out = 0, in = 0;
	bool inval = false, nospc, broken = svqiso_svq_is_broken(x->svq);
	struct pre p;
	struct req *r;
	int ret;

	if (fz_u8(&x->f) == 0xff) {
		nout = fz_u8(&x->f) % (x->max_segs + 3);
		nin = fz_u8(&x->f) % (x->max_segs + 3);
	}
	n = nout + nin;
	for (k = 0; k < n; k++) {
		submit_iov(x, &v[k], &s[k]);
		s[k].write = k >= nout;
		inval |= !s[k].len;
		if (k < nout)
			out += s[k].len;
		else
			in += s[k].len;
	}
	inval |= nout > x->max_segs || nin > x->max_segs || !n || n > x->max_segs;
	inval |= !(x->sfeat & SVQISO_RING_F_INDIRECT) &&
		 (n <= x->num ? n : (out != 0) + (in != 0)) > x->num;
	nospc = count(x, waiting) == x->num;
	if (!x->in_reset && !x->in_call)
		before(x, &p);
	ret = svqiso_svq_submit(x->svq, v, nout, v + nout, nin,
				(void *)(uintptr_t)(x->serial + 1));
	if (broken && !x->in_reset)
		FZ_CHECK(ret == -EIO, "submit on a broken queue: %d", ret);
	else if (x->rewound && !x->in_reset)
		FZ_CHECK(ret == -EBUSY, "submit after a rewind: %d", ret);
	else if (inval && nospc)
		FZ_CHECK(ret == -EINVAL || ret == -ENOSPC, "submit: %d", ret);
	else if (inval)
		FZ_CHECK(ret == -EINVAL, "submit of a bad request: %d", ret);
	else if (nospc)
		FZ_CHECK(ret == -ENOSPC, "submit with %u held: %d", x->num, ret);
	else if (x->in_reset)
		FZ_CHECK(ret == 0, "submit from a reset's callback: %d", ret);
	else
		FZ_CHECK(ret >= 0 || ret == -EIO, "submit: %d", ret);
	if (ret >= 0) {
		r = req_new(x);
		FZ_CHECK((uintptr_t)r->serial == (uintptr_t)(x->serial), "cookie");
		r->st = R_POPPED;
		r->nseg = (uint16_t)n;
		r->nout = (uint16_t)nout;
		r->out_bytes = (uint32_t)out;
		r->in_bytes = (uint32_t)in;
		r->seg = malloc(sizeof(*r->seg) * n);
		FZ_CHECK(r->seg, "malloc");
		memcpy(r->seg, s, sizeof(*r->seg) * n);
	} else {
		x->serial++;	/* the cookie is spent either way */
		x->refused = (struct req){
			.out_bytes = (uint32_t)out, .in_bytes = (uint32_t)in,
			.nseg = (uint16_t)n,
		};
		x->has_refused = true;
	}
	if (x->in_reset)
		return;		/* forwarded as the reset ends */
	if (x->in_call) {
		/* From a completion: the bytes it forwards are the model's
		 * now, not the call's end. */
		note_forwarded(x);
		return;
	}
	after(x, &p, C_PROCESS, ret, "submit");
}

/* Whether the library must take @base as a packed vring base. */
static bool packed_base_ok(const struct ctx *x, uint32_t base)
{
	uint16_t a = base & 0xffff, u = base >> 16;
	uint32_t pa, pu;

	if (!u)
		u = a;
	pa = (a & 0x7fff) + ((a & 0x8000) ? 0 : x->num);
	pu = (u & 0x7fff) + ((u & 0x8000) ? 0 : x->num);
	return (a & 0x7fff) < x->num && (u & 0x7fff) < x->num &&
	       (pa + 2u * x->num - pu) % (2u * x->num) <= x->num;
}

/*
 * svqiso_svq_reset() at @base, with the ring areas mapped or not, letting
 * element-mode completions submit up to @resubmit new requests.
 */
static int reset_to(struct ctx *x, uint32_t base, bool open, int resubmit)
{
	bool ok = x->element || x->glayout == SVQISO_LAYOUT_SPLIT ||
		  packed_base_ok(x, base);
	uint32_t last = x->serial;
	struct pre p;
	unsigned int i;
	int ret;

	FZ_TRACE("reset at %#x, ring %smapped\n", base, open ? "" : "un");
	before(x, &p);
	window(x, open);
	x->in_reset = true;
	x->resubmit = resubmit;
	ret = svqiso_svq_reset(x->svq, base);
	x->in_reset = false;
	x->resubmit = 0;
	window(x, false);
	if (x->element)
		FZ_CHECK(ret == 0, "element reset: %d", ret);
	else if (!open)
		FZ_CHECK(ret == -EFAULT, "reset with the ring unmapped: %d", ret);
	else
		FZ_CHECK(ret == (ok ? 0 : -EINVAL), "reset at base %#x: %d", base, ret);
	if (!ret && svqiso_svq_is_broken(x->svq)) {
		/* Only a request submitted from the reset's own callbacks may
		 * break the fresh queue: one that can never be forwarded (it
		 * was taken, and stays for the next reset). */
		bool why = false;

		for (i = 0; i < x->nreq; i++)
			why |= x->req[i].st == R_POPPED && x->req[i].serial > last &&
			       never_fits(x, &x->req[i]);
		FZ_CHECK(x->element && why, "reset returned 0 and left the queue broken: %s",
			 svqiso_svq_broken_reason(x->svq));
	}
	FZ_CHECK(ret == 0 || svqiso_svq_is_broken(x->svq),
		 "reset failed with %d and left the queue working", ret);
	x->rewound = false;
	/* Everything taken before is gone: ring mode drops it silently,
	 * element mode's callbacks completed it (what they submitted stays). */
	for (i = 0; i < x->nreq; i++) {
		if (x->req[i].st == R_FREE)
			continue;
		FZ_CHECK(!x->element || x->req[i].serial > last,
			 "reset did not complete cookie %u", x->req[i].serial);
		if (!x->element)
			req_free(x, &x->req[i]);
	}
	if (!x->element) {
		memset(x->gbusy, 0, x->num);
		x->m_inflight = 0;
		x->m_inflight_descs = 0;
		if (x->glayout == SVQISO_LAYOUT_SPLIT) {
			x->m_pos = (uint16_t)base;
			x->m_used = rd16(ram_at(x, x->device + 2));
		} else if (ok) {
			uint16_t a = base & 0xffff, u = base >> 16;

			if (!u)
				u = a;
			x->m_pos = a & 0x7fff;
			x->m_wrap = a >> 15;
			x->m_used = u & 0x7fff;
			x->m_used_wrap = u >> 15;
			/* Slots between used and avail stay held. */
			x->m_inflight_descs =
				((x->m_pos + (x->m_wrap ? 0 : x->num)) + 2u * x->num -
				 (x->m_used + (x->m_used_wrap ? 0 : x->num))) % (2u * x->num);
		}
	}
	be_attach(x);
	after(x, &p, C_RESET, ret, "reset");
	if (!ret && !svqiso_svq_is_broken(x->svq) && !count(x, any))
		FZ_CHECK(svqiso_pool_in_use(x->pool) == 0,
			 "pool bytes in use after a reset");
	return ret;
}

static void do_reset(struct ctx *x)
{
	uint8_t how = fz_u8(&x->f);
	uint32_t base = guest_base(x);

	if ((how & 0x70) == 0x70)
		base = fz_u32(&x->f);
	reset_to(x, base, (how & 15) != 0, fz_u8(&x->f) % 3);
}

static void do_rewind(struct ctx *x)
{
	uint32_t base = svq_dev_get_base(&x->be);
	unsigned int kept = x->element ? 0 : count(x, unseen_carried);
	unsigned int want = count(x, unseen) - kept, i;
	struct req *oldest = least(x, x->element ? unseen : unseen_fresh, by_serial);
	uint32_t oldest_pos = oldest ? oldest->pos : 0;
	struct pre p;
	int ret;

	before(x, &p);
	x->last_given = 0;
	ret = svqiso_svq_rewind(x->svq, base);
	if (ret == -EINVAL) {
		FZ_CHECK(x->element && !x->svq->giveback, "rewind: -EINVAL");
		return;
	}
	x->be_stopped = true;
	if (p.broken) {
		after(x, &p, C_OTHER, ret, "rewind");
		return;
	}
	x->paused = x->rewound = true;
	FZ_CHECK(ret >= 0 && (unsigned int)ret == want,
		 "rewind gave back %d, the backend never saw %u", ret, want);
	if (!x->element) {
		/* Ring mode gives back silently: the guest ring moves back to
		 * where the oldest of them was taken. */
		for (i = 0; i < x->nreq; i++) {
			if (x->req[i].st != R_POPPED || x->req[i].kept)
				continue;
			if (unseen_carried(&x->req[i]))
				x->req[i].kept = true;
			else
				req_free(x, &x->req[i]);
		}
		if (want) {
			x->m_pos = oldest_pos & 0x7fff;
			x->m_wrap = !!(oldest_pos & 0x8000);
			if (x->glayout == SVQISO_LAYOUT_SPLIT)
				x->m_pos = (uint16_t)oldest_pos;
		}
		check_base(x, guest_base(x), "rewind");
		p.base = guest_base(x);
	}
	FZ_CHECK(count(x, unseen) == 0, "rewind kept requests the backend never saw");
	after(x, &p, C_OTHER, ret, "rewind");
}

static void do_repost(struct ctx *x)
{
	unsigned int want = count(x, on_shadow), i;
	struct pre p;
	int ret;

	before(x, &p);
	ret = svqiso_svq_repost(x->svq);
	if (p.broken) {
		after(x, &p, C_OTHER, ret, "repost");
		return;
	}
	FZ_CHECK(ret >= 0 && (unsigned int)ret == want,
		 "repost put %d back, %u were on the shadow ring", ret, want);
	/* A new backend: everything the old one held or completed is
	 * unseen again; the library keeps the forwarding order. */
	for (i = 0; i < x->nreq; i++) {
		struct req *r = &x->req[i];

		if (r->st == R_FREE || !r->fwd)
			continue;
		r->st = R_POPPED;
		r->carried = true;
		r->kept = false;
		free(r->wimg);
		r->wimg = NULL;
	}
	x->rewound = false;
	be_attach(x);
	after(x, &p, C_OTHER, ret, "repost");
}

static void do_busy(struct ctx *x, bool on)
{
	struct pre p;
	int ret;

	before(x, &p);
	ret = svqiso_svq_set_busy_poll(x->svq, on);
	if (!p.broken) {
		FZ_CHECK(ret == 0, "busy poll: %d", ret);
		x->busy = on;
	}
	after(x, &p, C_OTHER, ret, "set_busy_poll");
}

static void do_pause(struct ctx *x, bool on)
{
	int ret = svqiso_svq_pause(x->svq, on);

	if (!on && x->rewound) {
		FZ_CHECK(ret == -EBUSY, "unpause after a rewind: %d", ret);
		return;
	}
	FZ_CHECK(ret == 0, "pause: %d", ret);
	x->paused = on;
}

/*
 * A request the library holds has a guest buffer it still needs outside
 * guest memory as it is now: forwarded, its writable segments (its
 * readable bytes are in the bounce buffer); popped and not yet forwarded,
 * any segment.
 */
static bool buffers_lost(const struct ctx *x)
{
	unsigned int i, k;

	for (i = 0; x->req && i < x->nreq; i++) {
		const struct req *r = &x->req[i];

		if (r->st == R_FREE)
			continue;
		for (k = r->fwd ? r->nout : 0; k < r->nseg; k++) {
			const struct region *g = &x->r[r->seg[k].reg];

			if (!g->present || (g->hidden && !x->window))
				return true;
		}
	}
	return false;
}

static void do_remap(struct ctx *x)
{
	bool open = fz_u8(&x->f) & 7;
	struct pre p;
	int ret;

	bool lost;

	hotplug(x);
	before(x, &p);
	window(x, open);
	lost = buffers_lost(x);
	ret = svqiso_svq_remap(x->svq);
	window(x, false);
	if (x->element) {
		FZ_CHECK(ret == -EINVAL, "remap in element mode: %d", ret);
		return;
	}
	if (!p.broken)
		FZ_CHECK(ret == (open && !lost ? 0 : -EIO),
			 "remap (ring mapped %d, a buffer in flight gone %d): %d",
			 open, lost, ret);
	after(x, &p, C_OTHER, ret, "remap");
}

/* The guest's desc/slot/id picks: free ones when it behaves. */
static uint16_t free_id(struct ctx *x, bool sane)
{
	uint16_t i, id = sane ? x->d_next_id : fz_u16(&x->f) % x->num;

	for (i = 0; sane && i < x->num && x->gbusy[id]; i++)
		id = (id + 1) % x->num;
	x->d_next_id = (id + 1) % x->num;
	return id;
}

struct gseg {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
};

/* A buffer wholly inside guest RAM the guest has: what a sane driver posts. */
static void pick_buf(struct ctx *x, struct gseg *g)
{
	unsigned int i = fz_below(&x->f, x->nr);
	const struct region *r;
	uint64_t off;

	if (x->r[i].hidden || !x->r[i].present)
		i = REG_RING;
	r = &x->r[i];
	off = fz_u16(&x->f) % r->size;
	g->addr = r->gpa + off;
	g->len = 1 + fz_u16(&x->f) % (fz_bool(&x->f) ? 64 : 4096);
	if (g->len > r->size - off)
		g->len = (uint32_t)(r->size - off);
	/* Sometimes on into the next region, GPA-adjacent or not. */
	if (fz_u8(&x->f) < 16)
		g->len += fz_u8(&x->f);
}

/* A chain's buffers, mostly readable first. */
static unsigned int make_segs(struct ctx *x, struct gseg *g, unsigned int max)
{
	uint8_t how = fz_u8(&x->f);
	unsigned int n = 1 + (how & 3), nout, i;

	if (how & 4)
		n += fz_u8(&x->f) % (x->max_segs + 2);
	if (n > max)
		n = max;
	nout = fz_below(&x->f, n + 1);
	for (i = 0; i < n; i++) {
		if (how & 0x10) {
			g[i].addr = pick_addr(x);
			g[i].len = pick_len(x);
		} else {
			pick_buf(x, &g[i]);
		}
		g[i].flags = (how & 8) ? (fz_u8(&x->f) & 7) :
			     (i >= nout ? SVQ_DESC_F_WRITE : 0);
	}
	return n;
}

/*
 * Write @n entries as an indirect table at @t; return its length. A split
 * table links entry to entry, or with @loopy anywhere (loops, out of range).
 */
static uint32_t write_table(struct ctx *x, uint64_t t, const struct gseg *g,
			    unsigned int n, bool loopy)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint64_t e = t + 16 * (uint64_t)i;

		gw64(x, e, g[i].addr);
		gw32(x, e + 8, g[i].len);
		if (x->glayout == SVQISO_LAYOUT_SPLIT) {
			uint16_t f = g[i].flags & ~(SVQ_DESC_F_NEXT | SVQ_DESC_F_INDIRECT);

			if (i + 1 < n || (loopy && fz_bool(&x->f)))
				f |= SVQ_DESC_F_NEXT;
			gw16(x, e + 12, f | (g[i].flags & SVQ_DESC_F_INDIRECT));
			gw16(x, e + 14, loopy ? fz_u8(&x->f) % (n + 1) : (uint16_t)(i + 1));
		} else {
			gw16(x, e + 12, 0);
			gw16(x, e + 14, g[i].flags & ~SVQ_DESC_F_NEXT);
		}
	}
	return 16 * n;
}

static void guest_chain(struct ctx *x)
{
	uint8_t how = fz_u8(&x->f);
	bool sane = !(how & 1), ind = how & 2, publish = !(how & 4);
	/* The last descriptor says NEXT too: a loop, or a chain that runs on. */
	bool dangling = !sane && (how & 64);
	unsigned int max = x->glayout == SVQISO_LAYOUT_SPLIT && !ind ? x->num : 160;
	struct gseg g[160];
	unsigned int n = make_segs(x, g, max), i;
	uint16_t num = x->num;

	if (ind) {
		struct gseg tb;
		uint32_t tlen;
		uint64_t t;

		pick_buf(x, &tb);
		t = (how & 32) ? pick_addr(x) : tb.addr;
		tlen = write_table(x, t, g, n, dangling);

		if (how & 8)
			tlen = pick_len(x);
		g[0] = (struct gseg){ .addr = t, .len = tlen,
				      .flags = SVQ_DESC_F_INDIRECT |
					       ((how & 16) ? SVQ_DESC_F_NEXT : 0) };
		n = 1;
	}
	if (x->glayout == SVQISO_LAYOUT_SPLIT) {
		uint16_t idx[160], head = free_id(x, sane);

		idx[0] = head;
		for (i = 1; i < n; i++) {
			/* Few distinct indexes: chains that meet themselves. */
			uint16_t c = sane ? (uint16_t)((head + i) % num) :
				     fz_u8(&x->f) % num;

			idx[i] = c;
		}
		for (i = 0; i < n; i++) {
			uint64_t d = x->desc + 16 * (uint64_t)idx[i];
			uint16_t f = g[i].flags & ~SVQ_DESC_F_NEXT;

			if (ind)
				f = g[i].flags;
			else if (i + 1 < n || dangling)
				f |= SVQ_DESC_F_NEXT;
			gw64(x, d, g[i].addr);
			gw32(x, d + 8, g[i].len);
			gw16(x, d + 12, f);
			/* Dangling: back to one of the chain's own, or anywhere. */
			gw16(x, d + 14, i + 1 < n ? idx[i + 1] :
			     dangling && fz_bool(&x->f) ? idx[fz_below(&x->f, n)] :
			     fz_u16(&x->f) % (num + 1));
		}
		FZ_TRACE("guest: chain head %u, %u descriptors%s, avail %u%s\n", head, n,
			 ind ? " (indirect)" : "", x->d_avail_idx,
			 publish ? " published" : "");
		gw16(x, x->driver + 4 + 2 * (uint64_t)(x->d_avail_idx & (num - 1)), head);
		x->d_avail_idx++;
		x->gbusy[head] = 1;
		if (publish)
			gw16(x, x->driver + 2, x->d_avail_idx);
		return;
	}
	/* Packed: members first, the head's flags last. */
	{
		uint16_t id = free_id(x, sane), head = x->d_pos, hflags = 0;

		if (n > num)
			n = num;
		for (i = 0; i < n; i++) {
			uint64_t d = x->desc + 16 * (uint64_t)x->d_pos;
			uint16_t f = g[i].flags & ~(SVQ_DESC_F_NEXT | SVQ_DESC_F_AVAIL |
						    SVQ_DESC_F_USED);

			if (ind)
				f = g[i].flags;
			else if (i + 1 < n || dangling)
				f |= SVQ_DESC_F_NEXT;
			f |= x->d_wrap ? SVQ_DESC_F_AVAIL : SVQ_DESC_F_USED;
			if (!sane && !(fz_u8(&x->f) & 15))
				f ^= SVQ_DESC_F_AVAIL;
			gw64(x, d, g[i].addr);
			gw32(x, d + 8, g[i].len);
			gw16(x, d + 12, sane ? id : fz_u16(&x->f) % (num + 2));
			if (i)
				gw16(x, d + 14, f);
			else
				hflags = f;
			step(&x->d_pos, &x->d_wrap, 1, num);
		}
		FZ_TRACE("guest: chain id %u at slot %u, %u descriptors%s\n", id, head, n,
			 ind ? " (indirect)" : "");
		gw16(x, x->desc + 16 * (uint64_t)head + 14, hflags);
		x->gbusy[id] = 1;
	}
}

/* Garbage in any ring word or anywhere in RAM. */
static void guest_poke(struct ctx *x)
{
	uint8_t how = fz_u8(&x->f), buf[32];
	unsigned int n = 1 + (how >> 3) % 16;
	uint64_t a;

	switch (how & 7) {
	case 0:
		a = pick_addr(x);
		break;
	case 1:		/* a descriptor */
		a = x->desc + 16 * (uint64_t)fz_below(&x->f, x->num) + fz_u8(&x->f) % 16;
		break;
	case 2:		/* the driver area: avail idx, ring, used_event */
		if (x->glayout == SVQISO_LAYOUT_SPLIT) {
			a = x->driver + 2;
			n = 2;
			fz_bytes(&x->f, buf, 2);
			if (buf[0] & 1) {
				uint16_t v = x->d_avail_idx + (int8_t)buf[1];

				gw16(x, a, v);
				return;
			}
			gw(x, a, buf, n);
			return;
		}
		a = x->driver + fz_u8(&x->f) % 4;
		break;
	case 3:		/* the device area the library writes: the guest may too */
		a = x->device + fz_u8(&x->f) % 8;
		break;
	case 4:		/* packed: flip a slot's wrap bits */
		if (x->glayout == SVQISO_LAYOUT_PACKED) {
			uint64_t d = x->desc + 16 * (uint64_t)fz_below(&x->f, x->num) + 14;
			uint16_t f = rd16(ram_at(x, d)) ^
				     (SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);

			gw16(x, d, f);
			return;
		}
		a = x->driver + 4 + 2 * (uint64_t)fz_below(&x->f, x->num);
		break;
	case 5:		/* split: publish; packed: driver event */
		if (x->glayout == SVQISO_LAYOUT_SPLIT) {
			gw16(x, x->driver + 2, x->d_avail_idx);
			return;
		}
		a = x->driver;
		break;
	default:
		a = pick_addr(x);
		break;
	}
	fz_bytes(&x->f, buf, n);
	gw(x, a, buf, n);
}

/*
 * Where to reset to: the library's own base, unless a reset that failed
 * left the bad base it was given there (the queue is broken then, and
 * nothing promises more): a fresh ring then.
 */
static uint32_t restart_base(struct ctx *x)
{
	uint32_t base = guest_base(x);

	if (!x->element && x->glayout == SVQISO_LAYOUT_PACKED &&
	    !packed_base_ok(x, base))
		return SVQISO_PACKED_FRESH_BASE;
	return base;
}

/*
 * The end of every input: repair, then complete everything as an honest
 * backend driven by notifications alone would, and check nothing was lost.
 */
static void finish(struct ctx *x)
{
	bool kicked = true, called = true;
	unsigned int rounds;
	int ret;

	if (svqiso_svq_is_broken(x->svq)) {
		ret = reset_to(x, restart_base(x), true, 0);
		FZ_CHECK(ret == 0, "reset at the library's own base: %d", ret);
	}
	if (x->rewound)
		do_repost(x);
	if (x->busy)
		do_busy(x, false);
	if (!x->element)
		do_pause(x, true);

	for (rounds = 0; rounds < 4u * x->num + 16; rounds++) {
		if (svqiso_svq_is_broken(x->svq))
			break;
		if (kicked) {
			kicked = false;
			be_pop_all(x);
		}
		while (be_complete(x, 0))
			;
		if (be_flush(x))
			called = true;
		if (called) {
			called = false;
			do {
				if (!x->element)
					guest_arm(x);
				ret = process_used(x, !x->element);
				if (ret > 0 && (ret & SVQISO_SIGNAL_BACKEND))
					kicked = true;
			} while (ret > 0 && (ret & SVQISO_SIGNAL_AGAIN));
		}
		if (!kicked && !called)
			break;
	}
	if (!svqiso_svq_is_broken(x->svq)) {
		FZ_CHECK(svqiso_svq_in_flight(x->svq) == 0,
			 "stalled with %u in flight: a kick or a call was lost",
			 svqiso_svq_in_flight(x->svq));
		FZ_CHECK(svqiso_pool_in_use(x->pool) == 0, "pool bytes left in use");
	}
}

/* ---- setup ---- */

static void add_region(struct ctx *x, uint64_t gpa, uint64_t size, bool hidden)
{
	struct region *r = &x->r[x->nr++];
	uint64_t k;

	r->gpa = gpa;
	r->size = size;
	r->hidden = hidden;
	r->present = true;
	r->ram = malloc(size);
	r->model = malloc(size);
	FZ_CHECK(r->ram && r->model, "malloc");
	for (k = 0; k < size; k++)
		r->ram[k] = hidden ? 0 : (uint8_t)((gpa + k) * 13 + 1);
	memcpy(r->model, r->ram, size);
}

static void setup_memory(struct ctx *x)
{
	uint64_t at, sz;
	unsigned int i, nd;
	uint8_t b;

	at = 0x10000ull * (1 + fz_u8(&x->f) % 64);
	if (x->element) {
		add_region(x, at, 1 + fz_u16(&x->f) % 4096, false);
	} else {
		uint64_t vis, hid;

		if (x->glayout == SVQISO_LAYOUT_SPLIT) {
			vis = 16ull * x->num + 6 + 2ull * x->num;
			hid = 6 + 8ull * x->num;
		} else {
			vis = 4;
			hid = 16ull * x->num + 4;
		}
		add_region(x, at, vis + fz_u16(&x->f) % 2048, false);
		add_region(x, at + 0x1000000, hid, true);
		x->desc = x->glayout == SVQISO_LAYOUT_SPLIT ? at : at + 0x1000000;
		x->driver = x->glayout == SVQISO_LAYOUT_SPLIT ? at + 16ull * x->num : at;
		x->device = x->glayout == SVQISO_LAYOUT_SPLIT ? at + 0x1000000 :
			    at + 0x1000000 + 16ull * x->num;
		x->exempt[0] = x->desc;
		x->exempt[1] = x->driver;
		x->exempt[2] = x->device;
	}
	nd = fz_u8(&x->f) % 5;
	at = 0x40000000ull + ((uint64_t)fz_u16(&x->f) << 4);
	for (i = 0; i < nd; i++) {
		b = fz_u8(&x->f);
		sz = 1 + fz_u16(&x->f) % 4096;
		if ((b & 3) == 3 && i + 1 == nd) {
			/* At the top of the address space, or just below it. */
			add_region(x, 0 - sz - (b >> 6), sz, false);
			break;
		}
		if ((b & 3) == 1 && i)
			at += fz_u16(&x->f) + 1;	/* a hole */
		add_region(x, at, sz, false);
		at += sz;
	}
	x->hotplug = -1;
	if (x->nr > (x->element ? 1u : 2u) && (b = fz_u8(&x->f)) & 1) {
		x->hotplug = (int)(x->nr - 1 - (b >> 1) % (x->nr - (x->element ? 1 : 2)));
		x->r[x->hotplug].hotplug = true;
		x->r[x->hotplug].present = !(b & 0x80);
	}
}

static int setup(struct ctx *x)
{
	uint8_t a = fz_u8(&x->f), b = fz_u8(&x->f), c = fz_u8(&x->f);
	SVQISO_OPTS(svqiso_arena_opts, ao);
	SVQISO_OPTS(svqiso_svq_opts, o);
	unsigned int i;
	uint8_t copy;
	long page = sysconf(_SC_PAGESIZE);

	x->element = a & 1;
	x->glayout = (a >> 1) & 1;
	x->slayout = (a >> 2) & 1;
	x->preserve = (a >> 3) & 1;
	x->builtin = (a >> 4) & 1;
	x->under_report = (a >> 7) & 1;
	x->gfeat = b & 3;
	x->sfeat = (b >> 2) & 3;
	copy = (b >> 4) & 3;
	if (!svqiso_copy_supported(copy))
		copy = SVQISO_COPY_AUTO;
	x->chunk = x->builtin || !(b & 0x40) ? 0 : 1ull << (4 + (c & 7));
	x->seed = fz_u8(&x->f);
	if ((x->slayout == SVQISO_LAYOUT_SPLIT ||
	     (!x->element && x->glayout == SVQISO_LAYOUT_SPLIT)))
		x->num = 1u << fz_below(&x->f, 9);
	else
		x->num = 1 + (fz_u8(&x->f) & 0x80 ? fz_u8(&x->f) : fz_u8(&x->f) % 16);
	i = fz_u8(&x->f);
	x->max_segs = i == 0xff ? 128 : 1 + i % 40;	/* 128: the default */

	setup_memory(x);
	if (x->builtin) {
		SVQISO_OPTS(svqiso_mem_opts, mo, .max_regions = MAX_REGIONS);

		FZ_CHECK(svqiso_mem_new(&mo, &x->map) == 0, "mem_new");
		for (i = 0; i < x->nr; i++) {
			struct svqiso_mem_region mr = {
				.gpa = x->r[i].gpa, .size = x->r[i].size,
				.hva = x->r[i].ram, .fd = -1,
			};

			if (x->r[i].present && !x->r[i].hidden)
				FZ_CHECK(svqiso_mem_add_region(x->map, &mr) == 0,
					 "add region %u", i);
		}
	}
	x->ops.sz = sizeof(x->ops);
	x->ops.translate = translate;

	x->iso = shared_iso();
	if ((c >> 3) == 31) {
		x->pool = NULL;
		x->pool_cap = SVQISO_ARENA_DEFAULT_SIZE;
	} else {
		static const uint32_t aligns[] = { 0, 1, 16, 64, 4096 };

		ao.size = 4096ull << fz_below(&x->f, 5);
		ao.max_bufs = fz_u8(&x->f) % 65;
		ao.align = aligns[fz_below(&x->f, 5)];
		if (ao.align > (uint32_t)page)
			ao.align = 0;
		FZ_CHECK(svqiso_pool_new_arena(x->iso, &ao, &x->pool) == 0,
			 "pool_new_arena");
		x->pool_cap = (ao.size + page - 1) / page * page;
	}

	o.flags = (x->element ? SVQISO_SVQ_F_ELEMENT : 0) |
		  (x->preserve ? SVQISO_SVQ_F_PRESERVE : 0) |
		  ((a >> 5) & 1 ? SVQISO_SVQ_F_LAZY_KICKS : 0);
	o.num = x->num;
	o.guest_layout = x->glayout;
	o.shadow_layout = x->slayout;
	o.guest_features = x->gfeat;
	o.shadow_features = x->sfeat;
	o.copy = copy;
	o.max_segs = x->max_segs == 128 ? 0 : x->max_segs;
	o.guest_ring.desc = x->desc;
	o.guest_ring.driver = x->driver;
	o.guest_ring.device = x->device;
	o.guest_mem = x->builtin ? svqiso_mem_ops() : &x->ops;
	o.guest_mem_ctx = x->builtin ? (void *)x->map : (void *)x;
	o.iso = x->iso;
	o.pool = x->pool;
	o.complete = on_complete;
	o.complete_ctx = x;
	o.log = log_sink;
	o.name = "fz";
	o.batch_bytes = (a >> 6) & 1 ? 1 + fz_u16(&x->f) : 0;
	o.giveback = fz_bool(&x->f) ? on_giveback : NULL;
	o.giveback_ctx = x;
	if (fz_u8(&x->f) < 48) {
		/* The shadow ring in a region of ours, perhaps a page in. */
		uint64_t need = svqiso_svq_ring_size(x->slayout, x->num, x->max_segs);
		uint64_t skip = fz_bool(&x->f) ? (uint64_t)page : 0;

		FZ_CHECK(need && svqiso_iso_region_new(x->iso, need + skip, &x->area) == 0,
			 "ring area");
		x->piece = x->area;
		x->piece.iova += skip;
		x->piece.uaddr = (uint8_t *)x->piece.uaddr + skip;
		x->piece.size -= skip;
		o.ring_area = &x->piece;
	}
	window(x, true);
	i = svqiso_svq_new(&o, &x->svq);
	window(x, false);
	FZ_CHECK(i == 0, "svq_new: %d", (int)i);
	x->own_pool = x->pool != NULL;
	if (!x->pool)
		x->pool = x->svq->pool;	/* its private arena, for the pool checks */
	{
		SVQISO_OPTS(svqiso_dirty_log, dl, .fn = on_dirty, .ctx = x);

		FZ_CHECK(svqiso_svq_set_dirty_log(x->svq, &dl) == 0, "dirty log");
	}

	x->nreq = 2u * x->num + 4;
	x->req = calloc(x->nreq, sizeof(*x->req));
	x->gbusy = calloc(x->num, 1);
	x->gid2req = malloc(sizeof(*x->gid2req) * x->num);
	x->visited = calloc(x->num, 1);
	x->tvisited = calloc(x->max_segs, 1);
	x->tbl = malloc(16u * x->max_segs);
	x->w.seg = malloc(sizeof(*x->w.seg) * x->max_segs);
	x->be_seg = malloc(sizeof(*x->be_seg) * x->max_segs);
	FZ_CHECK(x->req && x->gbusy && x->gid2req && x->visited && x->tvisited && x->tbl &&
		 x->w.seg && x->be_seg, "malloc");
	for (i = 0; i < x->num; i++)
		x->gid2req[i] = -1;
	x->d_wrap = x->m_wrap = x->m_used_wrap = true;
	x->m_used = 0;
	FZ_TRACE("%s mode, guest %s f%u, shadow %s f%u, num %u, max_segs %u, preserve %d, %s memory, chunk %llu, pool %llu\n",
		 x->element ? "element" : "ring",
		 x->glayout ? "packed" : "split", x->gfeat,
		 x->slayout ? "packed" : "split", x->sfeat, x->num, x->max_segs,
		 x->preserve, x->builtin ? "svqiso_mem" : "ops",
		 (unsigned long long)x->chunk, (unsigned long long)x->pool_cap);
	be_attach(x);
	if (fz_u8(&x->f) == 0x5a)
		do_busy(x, true);
	return 0;
}

static void teardown(struct ctx *x)
{
	unsigned int i;

	for (i = 0; x->req && i < x->nreq; i++)
		if (x->req[i].st != R_FREE)
			req_free(x, &x->req[i]);
	x->freeing = true;
	svqiso_svq_free(x->svq);
	x->freeing = false;
	/* Whatever was in flight is dropped, its bounce bytes returned. */
	if (x->own_pool)
		FZ_CHECK(svqiso_pool_in_use(x->pool) == 0,
			 "svq_free left %llu pool bytes in use",
			 (unsigned long long)svqiso_pool_in_use(x->pool));
	if (x->area.size)
		FZ_CHECK(svqiso_iso_region_free(x->iso, x->area.iova) == 0, "ring area");
	if (x->own_pool)
		svqiso_pool_free(x->pool);
	FZ_CHECK(svqiso_iso_nr_regions(x->iso) == 0,
		 "%u isolated regions outlive their svq and pool",
		 svqiso_iso_nr_regions(x->iso));
	if (x->be_up)
		svq_dev_fini(&x->be);
	free(x->req);
	free(x->gbusy);
	free(x->gid2req);
	free(x->visited);
	free(x->tvisited);
	free(x->tbl);
	free(x->w.seg);
	free(x->be_seg);
	for (i = 0; i < x->nr; i++) {
		free(x->r[i].ram);
		free(x->r[i].model);
	}
	svqiso_mem_free(x->map);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx *x = calloc(1, sizeof(*x));
	unsigned int steps = 0;

	FZ_CHECK(x, "calloc");
	fz_init(&x->f, data, size);
	setup(x);

	while (!fz_empty(&x->f) && steps++ < MAX_STEPS) {
		uint8_t op = fz_u8(&x->f);

		if (x->element && op % 24 < 6) {
			element_submit(x);
			continue;
		}
		switch (op % 24) {
		case 0: case 1: case 2: case 3:
			guest_chain(x);
			break;
		case 4: case 5:
			guest_poke(x);
			break;
		case 6: case 7:
			process_avail(x, false);
			break;
		case 8: case 9:
			process_used(x, false);
			break;
		case 10:
			be_pop(x);
			break;
		case 11:
			be_complete(x, fz_u8(&x->f));
			break;
		case 12:
			be_flush(x);
			break;
		case 13: {	/* serve: everything there, in any order */
			unsigned int n;

			while (be_pop(x))
				;
			for (n = count(x, held); n; n--)
				be_complete(x, fz_u8(&x->f));
			be_flush(x);
			break;
		}
		case 14:
			if (fz_bool(&x->f))
				svq_dev_enable_notify(&x->be);
			else
				svq_dev_disable_notify(&x->be);
			break;
		case 15: {
			int t = svqiso_svq_backend_taken(x->svq);

			FZ_CHECK(t == -EIO || t == -ENODATA ||
				 (t >= 0 && (unsigned int)t <= count(x, on_shadow)),
				 "backend_taken %d with %u on the shadow ring", t,
				 count(x, on_shadow));
			break;
		}
		case 16:
			do_reset(x);
			break;
		case 17:
			do_rewind(x);
			break;
		case 18:
			do_repost(x);
			break;
		case 19:
			do_pause(x, fz_bool(&x->f));
			break;
		case 20:
			do_busy(x, fz_bool(&x->f));
			break;
		case 21:
			do_remap(x);
			break;
		default:
			if (!x->element)
				guest_chain(x);
			process_avail(x, false);
			break;
		}
	}
	/* Mostly: complete everything, then reset; rarely (one pattern seed
	 * of 256) the VMM frees the queue with requests in flight, checked
	 * in teardown(). */
	if (x->seed != 0xa5) {
		finish(x);
		/* A reset at the library's own base returns everything. */
		FZ_CHECK(reset_to(x, restart_base(x), true, 0) == 0, "final reset");
		FZ_CHECK(svqiso_svq_in_flight(x->svq) == 0 &&
			 svqiso_pool_in_use(x->pool) == 0,
			 "after the final reset: %u in flight, %llu pool bytes",
			 svqiso_svq_in_flight(x->svq),
			 (unsigned long long)svqiso_pool_in_use(x->pool));
	}
	teardown(x);
	free(x);
	return 0;
}
