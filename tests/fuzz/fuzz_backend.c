/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a hostile backend behind a shadow virtqueue, an honest guest
 * in front of it.
 *
 * The guest is the mock driver of tests/mock (written without the library's
 * driver code): valid chains, split or packed, direct or indirect, in guest
 * RAM of a few regions (two GPA-adjacent, one at the top of the 64-bit
 * space); in element mode the VMM submits the same buffers as iovecs. The
 * backend is the input: between calls it writes used entries (ids in flight
 * or not, any length, packed flags and wrap bits right or wrong), moves the
 * used index anywhere, writes the event words, scribbles over the whole
 * shadow ring region and the bounce memory, completes in any order and, told
 * to stop, names any vring base. The VMM kicks, calls, resets, rewinds,
 * reposts, pauses and polls.
 *
 * Besides the sanitizers', the target checks:
 *  - guest RAM equals a model kept here: it changes only by the copy-back
 *    of requests completed to the guest, into their writable segments,
 *    with the bytes their bounce buffers held when the call began; in the
 *    guest's ring only the used ring (split), the used fields of packed
 *    descriptors (never an address) and the device event area change;
 *  - what completes to the guest was forwarded and is completed once, with
 *    a used length within its writable bytes;
 *  - each forwarded chain reaches the shadow ring well formed, with the
 *    guest's readable bytes and sizes, and a repost puts the same bounce
 *    buffers back;
 *  - a rewind gives back exactly what a reference of the rule says, or
 *    breaks the queue exactly when the named base is no place to stop;
 *  - a broken queue does nothing (-EIO, memory unchanged) until reset; the
 *    pool is empty whenever nothing is in flight, and after a reset.
 */
#include <endian.h>
#include <errno.h>
#include <unistd.h>
#include <svqiso/svq.h>
#include <svqiso/copy.h>
#include "svq_priv.h"
#include "mock.h"
#include "fuzz_svq.h"

#define MAX_STEPS	192
#define MAX_NUM		64
#define MAX_SEGS	16
#define MAX_PIECES	(2 * MAX_SEGS)
#define R0_GPA		0x10000000ull		/* rings and indirect tables */
#define R0_SIZE		0x8000ull
#define G_DRIVER	0x1000ull
#define G_DEVICE	0x2000ull
#define G_TABLES	0x4000ull		/* one slot of MAX_SEGS entries per id */
#define R1_GPA		0x20000000ull		/* R2 follows R1 in GPA */
#define R3_SIZE		0x2000ull		/* ends at the top of the space */

/* A piece of a guest buffer within one region. */
struct piece {
	uint8_t reg;
	uint32_t off;
	uint32_t len;
	bool write;
};

/* A piece of bounce memory, as the shadow ring names it. */
struct bpiece {
	uint8_t *hva;
	uint32_t len;
};

struct req {
	bool live;
	uint32_t serial;	/* post order; element mode: the cookie */
	uint16_t gid;		/* guest id: split head, packed buffer id */
	uint16_t gslots;	/* guest ring slots */
	uint16_t nseg;		/* guest buffers (mock segments) */
	uint16_t npiece, nout;	/* pieces of them per region, readable first */
	uint32_t out_bytes, in_bytes;
	struct mock_seg mseg[MAX_SEGS];
	struct piece piece[MAX_PIECES];
	bool fwd;		/* on the shadow ring */
	bool carried;		/* put there by a repost */
	bool kept;		/* a rewind kept it, carried: the next
				 * repost posts it again */
	uint32_t fwd_serial;
	uint16_t sid;		/* shadow id */
	uint32_t spos;		/* shadow position: split avail index, packed lap slot */
	uint64_t sseq;		/* the same, counted from the ring's start */
	uint16_t sslots;	/* shadow ring slots */
	uint16_t nb;
	struct bpiece wb[MAX_SEGS];	/* writable bounce pieces */
	uint8_t *snap;		/* their bytes when the current call began */
};

struct ctx {
	struct fz f;
	struct mock *m;
	uint8_t *model[MOCK_MAX_REGIONS];
	bool element, preserve;
	bool abandon;			/* end by freeing the queue in flight */
	uint8_t glayout, slayout;
	uint32_t gfeat, sfeat;
	uint16_t num, max_segs;
	uint64_t pool_cap;

	struct svqiso_mem *map;		/* NULL: the mock's own translate */
	struct svqiso_iso *iso;
	struct svqiso_region area;	/* a ring_area we own; size 0: none */
	struct svqiso_region piece;	/* the part of it the svq gets */
	struct svqiso_pool *pool;
	struct svqiso_svq *svq;
	struct svqiso_shadow_info si;
	uint64_t ring_size;
	bool rewound, paused;

	/* the guest */
	struct req req[2 * MAX_NUM + 4];
	uint32_t serial, fwd_serial;
	int16_t gid2req[MAX_NUM];
	uint8_t sbusy[MAX_NUM];		/* split descriptors posted */
	uint16_t pslots;		/* packed slots posted */
	uint16_t cursor;
	uint64_t seen_requests;

	/* the backend's view of the shadow ring */
	uint64_t s_seq;			/* positions read, counted from the start */
	uint16_t s_avail;		/* split: next avail entry to read */
	uint16_t s_pos;			/* packed: next slot to read */
	bool s_wrap;
	uint16_t b_used;		/* where it writes used entries */
	bool b_wrap;

	bool in_reset;
	bool freeing;			/* svqiso_svq_free(): no callback may run */
	uint32_t last_given;
};

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_trace_init();
	return 0;
}

/* ---- guest RAM and its model ---- */

static uint8_t *ram(struct ctx *x, unsigned int reg)
{
	return x->m->reg[reg].hva;
}

static void model_sync(struct ctx *x, unsigned int reg)
{
	memcpy(x->model[reg], ram(x, reg), x->m->reg[reg].size);
}

static void check_region(struct ctx *x, unsigned int reg, const char *what)
{
	const uint8_t *a = ram(x, reg), *b = x->model[reg];
	uint64_t k, n = x->m->reg[reg].size;

	if (!memcmp(a, b, n))
		return;
	for (k = 0; a[k] == b[k]; k++)
		;
	FZ_CHECK(0, "%s: guest RAM at %#llx is %#x, must be %#x", what,
		 (unsigned long long)(x->m->reg[reg].gpa + k), a[k], b[k]);
}

/*
 * The guest's ring region after a call: split, the used ring is the
 * device's to write; packed, the used fields of descriptors (never an
 * address) and the device event area. Nothing else may change.
 */
static void check_ring_region(struct ctx *x, const char *what)
{
	uint8_t *a = ram(x, 0), *b = x->model[0];
	uint64_t lo = G_DEVICE, hi = G_DEVICE + 4;
	uint16_t i;

	if (!x->element) {
		if (x->glayout == SVQISO_LAYOUT_SPLIT) {
			hi = G_DEVICE + 6 + 8ull * x->num;
		} else {
			for (i = 0; i < x->num; i++)
				FZ_CHECK(!memcmp(a + 16 * i, b + 16 * i, 8),
					 "%s: the address of guest descriptor %u changed",
					 what, i);
			memcpy(b, a, 16ull * x->num);
		}
		memcpy(b + lo, a + lo, hi - lo);
	}
	check_region(x, 0, what);
}

/* The guest writes its own buffers (readable data), RAM and model alike. */
static void guest_fill(struct ctx *x, const struct piece *p)
{
	uint32_t k;

	for (k = 0; k < p->len; k++) {
		uint8_t v = (uint8_t)(fz_u8(&x->f) ^ (k * 5));

		ram(x, p->reg)[p->off + k] = v;
		x->model[p->reg][p->off + k] = v;
	}
}

/* ---- requests ---- */

static struct req *req_new(struct ctx *x)
{
	unsigned int i;

	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++)
		if (!x->req[i].live) {
			memset(&x->req[i], 0, sizeof(x->req[i]));
			x->req[i].live = true;
			x->req[i].serial = ++x->serial;
			return &x->req[i];
		}
	FZ_CHECK(0, "more requests live than the queue can hold");
	return NULL;
}

/* The guest forgets @r: completed, or dropped by a reset. */
static void req_free(struct ctx *x, struct req *r)
{
	uint16_t k;

	if (!x->element) {
		if (x->glayout == SVQISO_LAYOUT_SPLIT)
			for (k = 0; k < r->gslots; k++)
				x->sbusy[(r->gid + k) % x->num] = 0;
		else
			x->pslots -= r->gslots;
		x->gid2req[r->gid] = -1;
	}
	free(r->snap);
	r->snap = NULL;
	r->live = false;
}

static struct req *oldest(struct ctx *x, bool fwd)
{
	struct req *best = NULL;
	unsigned int i;

	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++) {
		struct req *r = &x->req[i];

		if (!r->live || r->fwd != fwd || r->kept)
			continue;
		if (!best || (fwd ? r->fwd_serial < best->fwd_serial :
			      r->serial < best->serial))
			best = r;
	}
	return best;
}

static unsigned int nkept(const struct ctx *x)
{
	unsigned int i, n = 0;

	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++)
		n += x->req[i].live && x->req[i].kept;
	return n;
}

static unsigned int nlive(const struct ctx *x, int fwd)
{
	unsigned int i, n = 0;

	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++)
		if (x->req[i].live && (fwd < 0 || x->req[i].fwd == !!fwd))
			n++;
	return n;
}

static struct req *by_sid(struct ctx *x, uint16_t sid)
{
	unsigned int i;

	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++)
		if (x->req[i].live && x->req[i].fwd && x->req[i].sid == sid)
			return &x->req[i];
	return NULL;
}

/* Before a call: what each forwarded request's bounce buffer holds. */
static void snap_all(struct ctx *x)
{
	unsigned int i, k;

	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++) {
		struct req *r = &x->req[i];
		uint8_t *p;

		if (!r->live || !r->fwd)
			continue;
		if (!r->snap) {
			r->snap = malloc(r->in_bytes ? r->in_bytes : 1);
			FZ_CHECK(r->snap, "malloc");
		}
		for (k = 0, p = r->snap; k < r->nb; k++) {
			memcpy(p, r->wb[k].hva, r->wb[k].len);
			p += r->wb[k].len;
		}
	}
}

/* What the copy-back of @r, completed with @len, does to guest RAM. */
static void model_copy_back(struct ctx *x, const struct req *r, uint32_t len)
{
	uint32_t n = x->preserve ? r->in_bytes : len;
	const uint8_t *src = r->snap;
	unsigned int k;

	FZ_CHECK(src || !n, "copy-back of a request never snapshot");
	for (k = r->nout; k < r->npiece && n; k++) {
		uint32_t c = r->piece[k].len < n ? r->piece[k].len : n;

		memcpy(x->model[r->piece[k].reg] + r->piece[k].off, src, c);
		src += c;
		n -= c;
	}
}

/* ---- the shadow ring, read right after the call that wrote it ---- */

static void *iso_hva(struct ctx *x, uint64_t iova, uint64_t len)
{
	uint64_t n = len;
	void *p = svqiso_mem_lookup(svqiso_iso_mem(x->iso), iova, &n);

	FZ_CHECK(p && n == len, "shadow buffer %#llx + %llu is not isolated memory",
		 (unsigned long long)iova, (unsigned long long)len);
	return p;
}

struct sdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next_or_id;
};

static void read_sdesc(const uint8_t *p, bool split, struct sdesc *d)
{
	uint64_t a;
	uint32_t l;
	uint16_t w12, w14;

	memcpy(&a, p, 8);
	memcpy(&l, p + 8, 4);
	memcpy(&w12, p + 12, 2);
	memcpy(&w14, p + 14, 2);
	d->addr = le64toh(a);
	d->len = le32toh(l);
	d->flags = le16toh(split ? w12 : w14);
	d->next_or_id = le16toh(split ? w14 : w12);
}

/* One shadow buffer of @r: readable bytes must be the guest's. */
static void shadow_buf(struct ctx *x, struct req *r, const struct sdesc *d,
		       uint32_t *out, uint32_t *in, bool check)
{
	uint8_t *p = iso_hva(x, d->addr, d->len);

	FZ_CHECK(d->len, "a zero-length shadow descriptor");
	if (d->flags & SVQ_DESC_F_WRITE) {
		FZ_CHECK(r->nb < MAX_SEGS, "more writable shadow buffers than segments");
		r->wb[r->nb++] = (struct bpiece){ .hva = p, .len = d->len };
		*in += d->len;
		return;
	}
	FZ_CHECK(!*in, "a readable shadow buffer after a writable one");
	if (check) {
		/* Guest readable bytes from offset *out on, from the model. */
		uint32_t at = *out, k = 0, done = 0;

		while (done < d->len) {
			const struct piece *g = &r->piece[k];

			FZ_CHECK(k < r->nout, "shadow readable bytes past the guest's");
			if (at >= g->len) {
				at -= g->len;
				k++;
				continue;
			}
			{
				uint32_t c = g->len - at < d->len - done ? g->len - at :
					     d->len - done;

				FZ_CHECK(!memcmp(p + done, x->model[g->reg] + g->off + at, c),
					 "the backend reads other bytes than the guest made readable");
				done += c;
				at += c;
			}
		}
	}
	*out += d->len;
}

static void shadow_table(struct ctx *x, struct req *r, const struct sdesc *t,
			 uint32_t *out, uint32_t *in, bool check)
{
	bool split = x->slayout == SVQISO_LAYOUT_SPLIT;
	unsigned int n = t->len / 16, i = 0, steps = 0;
	const uint8_t *tab;

	FZ_CHECK((x->sfeat & SVQISO_RING_F_INDIRECT) && t->len && !(t->len % 16) &&
		 n <= x->max_segs, "shadow indirect table of %u bytes", t->len);
	tab = iso_hva(x, t->addr, t->len);
	for (;;) {
		struct sdesc e;

		FZ_CHECK(i < n && steps++ < n, "shadow table walk leaves the table");
		read_sdesc(tab + 16 * i, split, &e);
		FZ_CHECK(!(e.flags & SVQ_DESC_F_INDIRECT), "nested shadow table");
		shadow_buf(x, r, &e, out, in, check);
		if (!split) {
			if (++i == n)
				return;
			continue;
		}
		if (!(e.flags & SVQ_DESC_F_NEXT))
			return;
		i = e.next_or_id;
	}
}

/*
 * The next chain on the shadow ring, for @r: its id, position and slots,
 * its writable bounce pieces; the sizes must be @r's and, if @check, its
 * readable bytes the guest's.
 */
static void shadow_chain(struct ctx *x, struct req *r, bool check)
{
	bool split = x->slayout == SVQISO_LAYOUT_SPLIT;
	const uint8_t *desc = (const uint8_t *)(uintptr_t)x->si.uaddr.desc;
	uint32_t out = 0, in = 0;
	uint16_t i, steps = 0;
	struct sdesc d;

	r->nb = 0;
	if (split) {
		const uint8_t *avail = (const uint8_t *)(uintptr_t)x->si.uaddr.driver;
		uint16_t head;

		memcpy(&head, avail + 4 + 2 * (x->s_avail & (x->num - 1)), 2);
		head = le16toh(head);
		FZ_CHECK(head < x->num, "shadow head %u", head);
		r->sid = head;
		r->spos = x->s_avail++;
		r->sseq = x->s_seq++;
		r->sslots = 1;
		for (i = head;;) {
			FZ_CHECK(steps++ < x->num, "shadow chain loops");
			read_sdesc(desc + 16 * i, true, &d);
			if (d.flags & SVQ_DESC_F_INDIRECT)
				shadow_table(x, r, &d, &out, &in, check);
			else
				shadow_buf(x, r, &d, &out, &in, check);
			if (!(d.flags & SVQ_DESC_F_NEXT))
				break;
			FZ_CHECK(d.next_or_id < x->num, "shadow next %u", d.next_or_id);
			i = d.next_or_id;
		}
	} else {
		uint16_t pos = x->s_pos;
		bool wrap = x->s_wrap;

		r->spos = pos + (wrap ? 0 : x->num);
		for (r->sslots = 0;;) {
			FZ_CHECK(r->sslots < x->num, "shadow chain runs over the ring");
			read_sdesc(desc + 16 * pos, false, &d);
			FZ_CHECK(!!(d.flags & SVQ_DESC_F_AVAIL) == wrap &&
				 !!(d.flags & SVQ_DESC_F_USED) != wrap,
				 "shadow descriptor %u not available in lap %d", pos, wrap);
			r->sslots++;
			r->sid = d.next_or_id;
			if (d.flags & SVQ_DESC_F_INDIRECT)
				shadow_table(x, r, &d, &out, &in, check);
			else
				shadow_buf(x, r, &d, &out, &in, check);
			if (++pos == x->num) {
				pos = 0;
				wrap = !wrap;
			}
			if (!(d.flags & SVQ_DESC_F_NEXT))
				break;
		}
		x->s_pos = pos;
		x->s_wrap = wrap;
		r->sseq = x->s_seq;
		x->s_seq += r->sslots;
		FZ_CHECK(r->sid < x->num, "shadow id %u", r->sid);
	}
	FZ_CHECK(out == r->out_bytes && in == r->in_bytes,
		 "shadow chain of %u+%u bytes for a request of %u+%u",
		 out, in, r->out_bytes, r->in_bytes);
	FZ_CHECK(!by_sid(x, r->sid) || by_sid(x, r->sid) == r,
		 "shadow id %u handed out twice", r->sid);
}

/* The library forwarded requests since we last looked: read their chains. */
static void note_forwarded(struct ctx *x)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint64_t d;

	FZ_CHECK(svqiso_svq_get_stats(x->svq, &st) == 0, "stats");
	d = st.requests - x->seen_requests;
	x->seen_requests = st.requests;
	while (d--) {
		struct req *r = oldest(x, false);

		FZ_CHECK(r, "the library forwarded a request nobody made");
		r->fwd = true;
		r->carried = false;
		r->fwd_serial = ++x->fwd_serial;
		shadow_chain(x, r, true);
		FZ_TRACE("shadow: request %u as id %u at %u (%u slots)\n", r->serial,
			 r->sid, r->spos, r->sslots);
	}
}

static void shadow_fresh(struct ctx *x)
{
	FZ_CHECK(svqiso_svq_get_shadow(x->svq, &x->si) == 0, "shadow info");
	x->s_seq = 0;
	x->s_avail = 0;
	x->s_pos = 0;
	x->s_wrap = true;
	x->b_used = 0;
	x->b_wrap = true;
}

/* ---- the calls ---- */

struct pre {
	bool broken;
	struct svqiso_svq_stats st;
};

static void before(struct ctx *x, struct pre *p)
{
	p->broken = svqiso_svq_is_broken(x->svq);
	p->st.sz = sizeof(p->st);
	svqiso_svq_get_stats(x->svq, &p->st);
	snap_all(x);
	if (!x->element)
		model_sync(x, 0);	/* the guest's own ring writes */
}

static void check_pool(struct ctx *x, const char *what)
{
	unsigned int inflight = svqiso_svq_in_flight(x->svq);

	/* Ring mode: what the guest posted and the library did not take
	 * yet is not in flight. */
	FZ_CHECK(x->element ? inflight == nlive(x, -1) :
		 inflight >= nlive(x, 1) && inflight <= nlive(x, -1),
		 "%s: %u in flight; the guest has %u posted, %u forwarded", what,
		 inflight, nlive(x, -1), nlive(x, 1));
	if (!inflight)
		FZ_CHECK(svqiso_pool_in_use(x->pool) == 0,
			 "%s: nothing in flight, yet %llu pool bytes in use", what,
			 (unsigned long long)svqiso_pool_in_use(x->pool));
}

/* Ring mode: the used entries the guest gets, each checked and modelled. */
static void guest_collect(struct ctx *x, const char *what)
{
	uint16_t id;
	uint32_t len;

	while (mock_get_used(x->m, &id, &len)) {
		struct req *r = id < x->num && x->gid2req[id] >= 0 ?
				&x->req[x->gid2req[id]] : NULL;

		FZ_CHECK(r, "%s: completion of guest id %u, which is not posted", what, id);
		FZ_CHECK(r->fwd, "%s: completion of guest id %u, never forwarded", what, id);
		FZ_CHECK(len <= r->in_bytes, "%s: used len %u past %u writable bytes",
			 what, len, r->in_bytes);
		model_copy_back(x, r, len);
		req_free(x, r);
	}
}

static void after(struct ctx *x, const struct pre *p, int ret, const char *what)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	unsigned int i;

	FZ_CHECK(svqiso_svq_get_stats(x->svq, &st) == 0, "stats");
	FZ_TRACE("%s: %d, +%llu forwarded, +%llu completed, %u in flight%s%s\n", what, ret,
		 (unsigned long long)(st.requests - p->st.requests),
		 (unsigned long long)(st.completions - p->st.completions),
		 svqiso_svq_in_flight(x->svq),
		 svqiso_svq_is_broken(x->svq) ? ", broken: " : "",
		 svqiso_svq_is_broken(x->svq) ? svqiso_svq_broken_reason(x->svq) : "");
	if (p->broken && strcmp(what, "reset")) {
		FZ_CHECK(ret == -EIO, "%s on a broken queue returned %d", what, ret);
		FZ_CHECK(st.completions == p->st.completions &&
			 st.requests == p->st.requests, "%s on a broken queue did something",
			 what);
	}
	check_ring_region(x, what);
	if (!x->element)
		guest_collect(x, what);
	for (i = 1; i < x->m->nr_regions; i++)
		check_region(x, i, what);
	note_forwarded(x);
	check_pool(x, what);
}

static int process_avail(struct ctx *x)
{
	struct pre p;
	int ret;

	before(x, &p);
	ret = svqiso_svq_process_avail(x->svq);
	if (x->element)
		FZ_CHECK(ret == (p.broken ? -EIO : -EINVAL), "element process_avail: %d", ret);
	after(x, &p, ret, "process_avail");
	return ret;
}

static int process_used(struct ctx *x)
{
	struct pre p;
	int ret;

	before(x, &p);
	ret = svqiso_svq_process_used(x->svq);
	after(x, &p, ret, "process_used");
	return ret;
}

static void on_complete(void *ctx, void *cookie, uint32_t len)
{
	struct ctx *x = ctx;
	struct req *r = NULL;
	unsigned int i;

	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++)
		if (x->req[i].live && (uintptr_t)x->req[i].serial == (uintptr_t)cookie)
			r = &x->req[i];
	FZ_CHECK(!x->freeing, "a completion from svqiso_svq_free()");
	FZ_CHECK(r, "completion of cookie %lu, never taken or already completed",
		 (unsigned long)(uintptr_t)cookie);
	FZ_TRACE("complete: cookie %u (shadow id %u), len %u\n", r->serial, r->sid, len);
	if (x->in_reset) {
		FZ_CHECK(!len, "a reset completed cookie %u with len %u", r->serial, len);
	} else {
		FZ_CHECK(r->fwd, "completion of cookie %u, never forwarded", r->serial);
		FZ_CHECK(len <= r->in_bytes, "cookie %u: used len %u past %u writable bytes",
			 r->serial, len, r->in_bytes);
		model_copy_back(x, r, len);
	}
	req_free(x, r);
}

static void on_giveback(void *ctx, void *cookie)
{
	struct ctx *x = ctx;
	unsigned int i;

	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++) {
		struct req *r = &x->req[i];

		if (!r->live || (uintptr_t)r->serial != (uintptr_t)cookie)
			continue;
		FZ_CHECK(!x->last_given || r->serial < x->last_given,
			 "gave back cookie %u after %u: not newest first", r->serial,
			 x->last_given);
		x->last_given = r->serial;
		req_free(x, r);
		return;
	}
	FZ_CHECK(0, "gave back cookie %lu, which nobody holds",
		 (unsigned long)(uintptr_t)cookie);
}

/* ---- the honest guest ---- */

/*
 * One buffer in a data region, perhaps on into the GPA-adjacent next when
 * @spill allows a second piece.
 */
static unsigned int pick_buf(struct ctx *x, struct mock_seg *s, struct piece *p,
			     bool write, bool spill)
{
	unsigned int reg = 1 + fz_below(&x->f, x->m->nr_regions - 1), n = 1;
	const struct mock_region *g = &x->m->reg[reg];
	uint64_t off = fz_u16(&x->f) % g->size, room = g->size - off;
	uint32_t len = 1 + fz_u16(&x->f) % (fz_bool(&x->f) ? 64 : 2048);

	if (len > room)
		len = (uint32_t)room;
	s->gpa = g->gpa + off;
	s->len = len;
	s->write = write;
	p[0] = (struct piece){ .reg = (uint8_t)reg, .off = (uint32_t)off,
			       .len = len, .write = write };
	/* R1 and R2 are adjacent in GPA: one buffer, two regions. */
	if (spill && reg == 1 && len == room && fz_bool(&x->f)) {
		uint32_t more = 1 + fz_u8(&x->f) % 128;

		if (more > x->m->reg[2].size)
			more = (uint32_t)x->m->reg[2].size;
		s->len += more;
		p[1] = (struct piece){ .reg = 2, .off = 0, .len = more, .write = write };
		n = 2;
	}
	if (!write)
		for (unsigned int k = 0; k < n; k++)
			guest_fill(x, &p[k]);
	return n;
}

/* @n buffers, readable first, in no more pieces than the device takes. */
static void make_req(struct ctx *x, struct req *r, unsigned int n)
{
	unsigned int nout = fz_below(&x->f, n + 1), k;

	if (n > x->max_segs)
		n = x->max_segs;
	r->nseg = (uint16_t)n;
	for (k = 0; k < n; k++) {
		bool spill = r->npiece + (n - k) < x->max_segs;
		unsigned int np = pick_buf(x, &r->mseg[k], &r->piece[r->npiece],
					   k >= nout, spill);

		r->npiece += (uint16_t)np;
		if (k < nout) {
			r->nout = r->npiece;
			r->out_bytes += r->mseg[k].len;
		} else {
			r->in_bytes += r->mseg[k].len;
		}
	}
}

static void guest_post(struct ctx *x)
{
	uint8_t how = fz_u8(&x->f);
	bool ind = (x->gfeat & SVQISO_RING_F_INDIRECT) && (how & 1);
	unsigned int n = ind ? 1 + fz_below(&x->f, x->max_segs) : 1 + (how >> 1) % 4;

	if (n > x->max_segs)
		n = x->max_segs;
	uint16_t slots, id = 0, k, i;
	struct req *r;
	int got;

	slots = ind ? 1 : (uint16_t)n;
	if (slots > x->num)
		return;
	if (x->glayout == SVQISO_LAYOUT_SPLIT) {
		/* A head with @slots free descriptors after it. */
		for (i = 0; i < x->num; i++) {
			id = (x->cursor + i) % x->num;
			for (k = 0; k < slots && !x->sbusy[(id + k) % x->num]; k++)
				;
			if (k == slots)
				break;
		}
		if (i == x->num)
			return;
	} else {
		if (x->pslots + slots > x->num)
			return;
		for (i = 0; i < x->num && x->gid2req[(x->cursor + i) % x->num] >= 0; i++)
			;
		if (i == x->num)
			return;
		id = (x->cursor + i) % x->num;
	}
	r = req_new(x);
	make_req(x, r, n);
	r->gid = id;
	r->gslots = slots;
	if (ind) {
		uint64_t top = x->m->alloc_top;

		/* Each id has its own table slot: in flight, never reused. */
		x->m->alloc_top = R0_GPA + G_TABLES + 16ull * MAX_SEGS * (id + 1);
		if (x->glayout == SVQISO_LAYOUT_SPLIT)
			x->m->next_desc = id;
		else
			x->m->next_id = id;
		got = mock_add_indirect_chain(x->m, r->mseg, n, NULL);
		x->m->alloc_top = top;
	} else {
		got = mock_add_chain_id(x->m, r->mseg, n, id);
	}
	FZ_CHECK(got == id, "mock post: %d, want %u", got, id);
	FZ_TRACE("guest: posted id %u, %u buffers%s, %u+%u bytes\n", id, n,
		 ind ? " (indirect)" : "", r->out_bytes, r->in_bytes);
	x->gid2req[id] = (int16_t)(r - x->req);
	if (x->glayout == SVQISO_LAYOUT_SPLIT)
		for (k = 0; k < slots; k++)
			x->sbusy[(id + k) % x->num] = 1;
	else
		x->pslots += slots;
	x->cursor = (uint16_t)((id + slots) % x->num);
}

static void element_submit(struct ctx *x)
{
	unsigned int n = 1 + fz_below(&x->f, 4), j, nout;
	struct iovec v[MAX_PIECES];
	bool was_broken = svqiso_svq_is_broken(x->svq);
	unsigned int nwait = nlive(x, 0);
	struct pre p;
	struct req *r;
	int ret;

	r = req_new(x);
	make_req(x, r, n);
	/* The VMM hands over host addresses, one iovec per region piece. */
	for (j = 0; j < r->npiece; j++) {
		v[j].iov_base = ram(x, r->piece[j].reg) + r->piece[j].off;
		v[j].iov_len = r->piece[j].len;
	}
	nout = r->nout;
	before(x, &p);
	ret = svqiso_svq_submit(x->svq, v, nout, v + nout, r->npiece - nout,
				(void *)(uintptr_t)r->serial);
	if (was_broken)
		FZ_CHECK(ret == -EIO, "submit on a broken queue: %d", ret);
	else if (x->rewound)
		FZ_CHECK(ret == -EBUSY, "submit after a rewind: %d", ret);
	else if (r->npiece > x->max_segs)
		FZ_CHECK(ret == -EINVAL, "submit of %u pieces: %d", r->npiece, ret);
	else if (nwait == x->num)
		FZ_CHECK(ret == -ENOSPC, "submit with %u waiting: %d", nwait, ret);
	else if (!(x->sfeat & SVQISO_RING_F_INDIRECT) && x->num == 1 && r->npiece > 1 &&
		 r->out_bytes && r->in_bytes)
		FZ_CHECK(ret == -EINVAL, "submit that never fits: %d", ret);
	else
		FZ_CHECK(ret >= 0 || ret == -EIO, "submit: %d", ret);
	if (ret < 0)
		req_free(x, r);
	after(x, &p, ret, "submit");
}

/* ---- the hostile backend ---- */

/* An id for a used entry: mostly one in flight. */
static uint16_t pick_sid(struct ctx *x, struct req **rp)
{
	uint8_t how = fz_u8(&x->f);
	unsigned int i, n = nlive(x, 1), k;

	*rp = NULL;
	if (n && (how & 7)) {
		k = fz_below(&x->f, n);
		for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++)
			if (x->req[i].live && x->req[i].fwd && !k--) {
				*rp = &x->req[i];
				return x->req[i].sid;
			}
	}
	return (how & 8) ? fz_u16(&x->f) : fz_u16(&x->f) % (x->num + 1);
}

/* Write the device's bytes into @r's writable bounce pieces. */
static void backend_write(struct ctx *x, struct req *r, uint32_t n)
{
	uint8_t seed = fz_u8(&x->f);
	unsigned int k;
	uint32_t at = 0;

	for (k = 0; k < r->nb && at < n; k++) {
		uint32_t c = r->wb[k].len < n - at ? r->wb[k].len : n - at;

		for (uint32_t j = 0; j < c; j++)
			r->wb[k].hva[j] = (uint8_t)(seed + r->serial * 31u + (at + j) * 3u);
		at += c;
	}
}

static void backend_used(struct ctx *x, bool honest)
{
	struct req *r;
	uint16_t sid = pick_sid(x, &r), step;
	uint8_t how = honest ? 0 : fz_u8(&x->f);
	uint32_t len;

	if (honest && !r)
		return;
	if (r && !(how & 0x30)) {
		len = r->in_bytes ? fz_u32(&x->f) % (r->in_bytes + 1) : 0;
		backend_write(x, r, len);
		if (honest)
			len = r->in_bytes;
	} else {
		len = (how & 0x10) ? fz_u32(&x->f) : fz_u16(&x->f);
	}
	FZ_TRACE("backend: used id %u len %u at %u%s\n", sid, len, x->b_used,
		 honest ? " (honest)" : "");
	if (x->slayout == SVQISO_LAYOUT_SPLIT) {
		uint8_t *used = (uint8_t *)(uintptr_t)x->si.uaddr.device;
		uint8_t *e = used + 4 + 8 * (x->b_used & (x->num - 1));
		uint32_t v = htole32(sid);
		uint16_t idx;

		memcpy(e, &v, 4);
		v = htole32(len);
		memcpy(e + 4, &v, 4);
		x->b_used++;
		if (honest || !(how & 0x40)) {
			idx = honest || !(how & 0x80) ? x->b_used :
			      (uint16_t)(x->b_used + (int8_t)fz_u8(&x->f));
			idx = htole16(idx);
			__atomic_store_n((uint16_t *)(used + 2), idx, __ATOMIC_RELEASE);
		}
		return;
	}
	{
		uint8_t *d = (uint8_t *)(uintptr_t)x->si.uaddr.desc + 16 * x->b_used;
		uint16_t f = x->b_wrap ? SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED : 0;
		uint16_t id16 = htole16(sid);
		uint32_t l32 = htole32(len);

		if (!honest && (how & 0x40))
			f = fz_u16(&x->f);
		memcpy(d + 12, &id16, 2);
		memcpy(d + 8, &l32, 4);
		__atomic_store_n((uint16_t *)(d + 14), htole16(f), __ATOMIC_RELEASE);
		step = r ? r->sslots : 1;
		if (!honest && (how & 0x80))
			step = 1 + fz_below(&x->f, x->num);
		if (step > x->num)
			step = x->num;
		x->b_used += step;
		if (x->b_used >= x->num) {
			x->b_used -= x->num;
			x->b_wrap = !x->b_wrap;
		}
	}
}

/* Where the library will read the next used entry: a backend that lost its
 * way finds it again. */
static void backend_resync(struct ctx *x)
{
	if (x->slayout == SVQISO_LAYOUT_SPLIT) {
		x->b_used = x->svq->shadow.split.last_used_idx;
	} else {
		x->b_used = x->svq->shadow.packed.last_used_idx;
		x->b_wrap = x->svq->shadow.packed.used_wrap_counter;
	}
}

static void backend_event(struct ctx *x)
{
	uint16_t a = fz_u16(&x->f), b = fz_u16(&x->f);
	uint8_t *dev = (uint8_t *)(uintptr_t)x->si.uaddr.device;

	if (x->slayout == SVQISO_LAYOUT_SPLIT) {
		/* used->flags, avail_event */
		memcpy(dev, &a, 2);
		memcpy(dev + 4 + 8 * x->num, &b, 2);
	} else {
		memcpy(dev, &a, 2);
		memcpy(dev + 2, &b, 2);
	}
}

/* Garbage anywhere in the shadow ring region or the bounce memory. */
static void backend_scribble(struct ctx *x)
{
	uint8_t how = fz_u8(&x->f), buf[16];
	unsigned int n = 1 + how % 16;
	uint8_t *base;
	uint64_t size;

	if (how & 0x80) {
		struct svqiso_region rg;
		unsigned int nr = svqiso_iso_nr_regions(x->iso);

		if (!nr || svqiso_iso_get_region(x->iso, fz_below(&x->f, nr), &rg))
			return;
		base = rg.uaddr;
		size = rg.size;
	} else {
		base = (uint8_t *)(uintptr_t)x->si.uaddr.desc;
		size = x->ring_size;
	}
	fz_bytes(&x->f, buf, n);
	if (n > size)
		n = (unsigned int)size;
	memcpy(base + fz_u32(&x->f) % (size - n + 1), buf, n);
}

/* Whether @r begins at or after position @from; *@off: how far after. */
static bool at_or_after(const struct req *r, uint64_t from, uint32_t *off)
{
	if (r->sseq < from)
		return false;
	*off = (uint32_t)(r->sseq - from);
	return true;
}

/*
 * svqiso_svq_rewind() at a base the backend names: where one of the chains
 * on the shadow ring begins, the end, or anything. What it must give back
 * follows the rule: the chains from the base to the end, all still in
 * flight; anything else is no place to stop and breaks the queue.
 */
static void do_rewind(struct ctx *x)
{
	bool split = x->slayout == SVQISO_LAYOUT_SPLIT;
	uint32_t span = split ? 1u << 16 : 2u * x->num;
	uint32_t end = split ? x->s_avail : x->s_pos + (x->s_wrap ? 0 : x->num);
	uint32_t base, pos, total = 0, left, off, i;
	uint64_t from = 0;
	unsigned int n = nlive(x, 1), k = fz_below(&x->f, n + 2), given = 0;
	int64_t carried_off = -1;
	int want = 0, ret;
	struct pre p;

	/* A chain's start (or the end) in vhost's base form, a slot inside a
	 * packed chain, or garbage. */
	pos = end;
	for (i = 0; k < n && i < SVQ_ARRAY_SIZE(x->req); i++)
		if (x->req[i].live && x->req[i].fwd && !k--) {
			pos = x->req[i].spos;
			if (x->req[i].sslots > 1 && fz_u8(&x->f) < 64)
				pos = (pos + 1) % span;
		}
	if (split)
		base = pos;
	else
		base = (pos % x->num) | (pos < x->num ? 0x8000u : 0);
	if (fz_u8(&x->f) < 32)
		base = fz_u32(&x->f);

	/* The rule, from our own positions. */
	if (split ? base > UINT16_MAX : (base & 0x7fff) >= x->num) {
		want = -EIO;
	} else {
		pos = split ? base : (base & 0x7fff) + ((base & 0x8000) ? 0 : x->num);
		total = left = (end + span - pos) % span;
		if (total > x->num)
			want = -EIO;
		/* The latest place the base can name: a chain held while
		 * the ring went round since was taken before it. */
		from = x->s_seq - total;
		for (i = 0; !want && i < SVQ_ARRAY_SIZE(x->req); i++) {
			struct req *r = &x->req[i];

			if (!r->live || !r->fwd || !at_or_after(r, from, &off))
				continue;
			if (r->sslots > left)
				want = -EIO;
			else
				left -= r->sslots;
			given++;
		}
		if (!want && left)
			want = -EIO;
		/* Ring mode: what a repost put on the ring is kept, with
		 * what came before it; only what was popped after the newest
		 * of those goes back. */
		for (i = 0; !want && !x->element && i < SVQ_ARRAY_SIZE(x->req); i++) {
			struct req *r = &x->req[i];

			if (r->live && r->fwd && r->carried && at_or_after(r, from, &off) &&
			    (carried_off < 0 || off > (uint32_t)carried_off))
				carried_off = (int64_t)off;
		}
		for (i = 0; !want && carried_off >= 0 && i < SVQ_ARRAY_SIZE(x->req); i++) {
			struct req *r = &x->req[i];

			if (r->live && r->fwd && at_or_after(r, from, &off) &&
			    off <= (uint32_t)carried_off)
				given--;
		}
		/* And what waits to be forwarded: element mode's queue;
		 * ring mode, the one chain held for room (in flight, neither
		 * on the ring nor kept). */
		if (!want)
			want = (int)(given + (x->element ? nlive(x, 0) :
					      svqiso_svq_in_flight(x->svq) - nlive(x, 1) -
					      nkept(x)));
	}

	FZ_TRACE("rewind at %#x: the rule says %d\n", base, want);
	before(x, &p);
	x->last_given = 0;
	ret = svqiso_svq_rewind(x->svq, base);
	if (ret == -EINVAL) {
		FZ_CHECK(x->element && !x->svq->giveback, "rewind: -EINVAL");
		return;
	}
	if (p.broken)
		want = -EIO;
	FZ_CHECK(ret == want, "rewind at %#x gave %d, the rule says %d", base, ret, want);
	/* Stopped, given back or not: only a reset or repost goes on. */
	if (!p.broken)
		x->rewound = x->paused = true;
	if (ret >= 0) {
		/* The shadow ring ends at the base now. */
		if (split) {
			x->s_avail = (uint16_t)base;
		} else {
			x->s_pos = base & 0x7fff;
			x->s_wrap = !!(base & 0x8000);
		}
		/* Ring mode: what went back is posted again, waiting to be
		 * taken in the same order; element mode's callbacks took it. */
		x->s_seq = from;
		for (i = 0; !x->element && i < SVQ_ARRAY_SIZE(x->req); i++) {
			struct req *r = &x->req[i];

			if (r->live && r->fwd && at_or_after(r, from, &off)) {
				r->fwd = false;
				r->kept = carried_off >= 0 && off <= (uint32_t)carried_off;
				free(r->snap);
				r->snap = NULL;
			}
		}
	}
	after(x, &p, ret, "rewind");
}

static void do_repost(struct ctx *x)
{
	unsigned int want = nlive(x, 1) + nkept(x), i, k;
	struct bpiece old[MAX_SEGS];
	struct req *order[2 * MAX_NUM + 4];
	unsigned int n = 0;
	struct pre p;
	int ret;

	/* Oldest first, as they were forwarded: those on the shadow ring and
	 * those a rewind kept. */
	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++)
		if (x->req[i].live && (x->req[i].fwd || x->req[i].kept))
			order[n++] = &x->req[i];
	for (i = 1; i < n; i++)
		for (k = i; k > 0 && order[k]->fwd_serial < order[k - 1]->fwd_serial; k--) {
			struct req *t = order[k];

			order[k] = order[k - 1];
			order[k - 1] = t;
		}
	before(x, &p);
	ret = svqiso_svq_repost(x->svq);
	if (!p.broken) {
		FZ_CHECK(ret >= 0 && (unsigned int)ret == want,
			 "repost put %d back, %u were on the shadow ring", ret, want);
		x->rewound = false;
		shadow_fresh(x);
		for (i = 0; i < n; i++) {
			order[i]->sid = UINT16_MAX;	/* ids of the old ring */
			order[i]->fwd = order[i]->carried = true;
			order[i]->kept = false;
		}
		for (i = 0; i < n; i++) {
			/* The same bounce buffer, whatever the backend did to it. */
			memcpy(old, order[i]->wb, sizeof(old));
			shadow_chain(x, order[i], false);
			for (k = 0; k < order[i]->nb; k++)
				FZ_CHECK(order[i]->wb[k].hva == old[k].hva,
					 "repost moved a request's bounce buffer");
		}
	}
	after(x, &p, ret, "repost");
}

/* A reset to a fresh ring on both sides: a device reset. */
static void do_reset(struct ctx *x)
{
	uint32_t base = x->glayout == SVQISO_LAYOUT_PACKED ? SVQISO_PACKED_FRESH_BASE : 0;
	struct pre p;
	unsigned int i;
	int ret;

	if (!x->element) {
		mock_ring_init_at(x->m, x->glayout, x->num, R0_GPA, R0_GPA + G_DRIVER,
				  R0_GPA + G_DEVICE);
		for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++)
			if (x->req[i].live)
				req_free(x, &x->req[i]);
		memset(x->sbusy, 0, sizeof(x->sbusy));
		x->pslots = 0;
	}
	before(x, &p);
	x->in_reset = true;
	ret = svqiso_svq_reset(x->svq, base);
	x->in_reset = false;
	FZ_CHECK(ret == 0 && !svqiso_svq_is_broken(x->svq), "reset: %d", ret);
	FZ_CHECK(nlive(x, -1) == 0, "the reset did not complete everything");
	x->rewound = false;
	shadow_fresh(x);
	after(x, &p, ret, "reset");
	FZ_CHECK(svqiso_svq_in_flight(x->svq) == 0 && svqiso_pool_in_use(x->pool) == 0,
		 "after a reset: %u in flight, %llu pool bytes",
		 svqiso_svq_in_flight(x->svq),
		 (unsigned long long)svqiso_pool_in_use(x->pool));
}

static void do_busy(struct ctx *x, bool on)
{
	struct pre p;
	int ret;

	before(x, &p);
	ret = svqiso_svq_set_busy_poll(x->svq, on);
	if (!p.broken)
		FZ_CHECK(ret == 0, "busy poll: %d", ret);
	after(x, &p, ret, "set_busy_poll");
}

static void do_pause(struct ctx *x, bool on)
{
	int ret = svqiso_svq_pause(x->svq, on);

	FZ_CHECK(ret == (!on && x->rewound ? -EBUSY : 0), "pause %d: %d", on, ret);
	if (!ret)
		x->paused = on;
}

/* ---- setup ---- */

static void setup(struct ctx *x)
{
	uint8_t a = fz_u8(&x->f), b = fz_u8(&x->f);
	struct mock_region_cfg rc[4];
	SVQISO_OPTS(svqiso_svq_opts, o);
	long page = sysconf(_SC_PAGESIZE);
	uint64_t s1, s2;
	unsigned int i;
	uint8_t copy;
	int err;

	x->element = a & 1;
	x->glayout = (a >> 1) & 1;
	x->slayout = (a >> 2) & 1;
	x->preserve = (a >> 3) & 1;
	x->gfeat = b & 3;
	x->sfeat = (b >> 2) & 3;
	copy = (b >> 4) & 3;
	x->abandon = (b & 0xc0) == 0xc0;
	if (!svqiso_copy_supported(copy))
		copy = SVQISO_COPY_AUTO;
	if (x->slayout == SVQISO_LAYOUT_SPLIT ||
	    (!x->element && x->glayout == SVQISO_LAYOUT_SPLIT))
		x->num = 1u << fz_below(&x->f, 7);
	else
		x->num = 1 + fz_below(&x->f, MAX_NUM);
	x->max_segs = 1 + fz_below(&x->f, MAX_SEGS);

	s1 = 1 + fz_u16(&x->f) % 0x4000;
	s2 = 1 + fz_u16(&x->f) % 0x4000;
	rc[0] = (struct mock_region_cfg){ R0_GPA, R0_SIZE };
	rc[1] = (struct mock_region_cfg){ R1_GPA, s1 };
	rc[2] = (struct mock_region_cfg){ R1_GPA + s1, s2 };
	rc[3] = (struct mock_region_cfg){ 0 - R3_SIZE, R3_SIZE };
	x->m = mock_new(rc, 4);
	for (i = 0; i < 4; i++) {
		x->model[i] = malloc(x->m->reg[i].size);
		FZ_CHECK(x->model[i], "malloc");
	}
	if (!x->element)
		mock_ring_init_at(x->m, x->glayout, x->num, R0_GPA, R0_GPA + G_DRIVER,
				  R0_GPA + G_DEVICE);
	for (i = 0; i < 4; i++)
		model_sync(x, i);
	if ((a >> 4) & 1) {
		SVQISO_OPTS(svqiso_mem_opts, mo);

		FZ_CHECK(svqiso_mem_new(&mo, &x->map) == 0, "mem_new");
		for (i = 0; i < 4; i++) {
			struct svqiso_mem_region mr = {
				.gpa = x->m->reg[i].gpa, .size = x->m->reg[i].size,
				.hva = x->m->reg[i].hva, .fd = -1,
			};

			FZ_CHECK(svqiso_mem_add_region(x->map, &mr) == 0, "add region");
		}
	}

	x->iso = shared_iso();
	if ((a >> 5) & 1) {
		FZ_CHECK(svqiso_pool_new_memfd(x->iso, &x->pool) == 0, "memfd pool");
		x->pool_cap = UINT64_MAX;
	} else {
		SVQISO_OPTS(svqiso_arena_opts, ao, .size = 4096ull << fz_below(&x->f, 4),
			    .max_bufs = fz_u8(&x->f) % 33);

		FZ_CHECK(svqiso_pool_new_arena(x->iso, &ao, &x->pool) == 0, "arena");
		x->pool_cap = (ao.size + page - 1) / page * page;
	}

	o.flags = (x->element ? SVQISO_SVQ_F_ELEMENT : 0) |
		  (x->preserve ? SVQISO_SVQ_F_PRESERVE : 0) |
		  ((a >> 6) & 1 ? SVQISO_SVQ_F_LAZY_KICKS : 0);
	o.num = x->num;
	o.guest_layout = x->glayout;
	o.shadow_layout = x->slayout;
	o.guest_features = x->gfeat;
	o.shadow_features = x->sfeat;
	o.copy = copy;
	o.max_segs = x->max_segs;
	o.guest_ring.desc = R0_GPA;
	o.guest_ring.driver = R0_GPA + G_DRIVER;
	o.guest_ring.device = R0_GPA + G_DEVICE;
	o.guest_mem = x->map ? svqiso_mem_ops() : &x->m->ops;
	o.guest_mem_ctx = x->map ? (void *)x->map : (void *)x->m;
	o.iso = x->iso;
	o.pool = x->pool;
	o.complete = on_complete;
	o.complete_ctx = x;
	o.giveback = (a >> 7) & 1 ? on_giveback : NULL;
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
	o.log = log_sink;
	o.name = "fz";
	o.batch_bytes = fz_u8(&x->f) < 64 ? 1 + fz_u16(&x->f) : 0;
	err = svqiso_svq_new(&o, &x->svq);
	FZ_CHECK(err == 0, "svq_new: %d", err);
	x->ring_size = svqiso_svq_ring_size(x->slayout, x->num, x->max_segs);
	FZ_TRACE("%s mode, guest %s f%u, shadow %s f%u, num %u, max_segs %u, preserve %d, pool %llu\n",
		 x->element ? "element" : "ring", x->glayout ? "packed" : "split",
		 x->gfeat, x->slayout ? "packed" : "split", x->sfeat, x->num,
		 x->max_segs, x->preserve, (unsigned long long)x->pool_cap);
	for (i = 0; i < MAX_NUM; i++)
		x->gid2req[i] = -1;
	shadow_fresh(x);
}

static void teardown(struct ctx *x)
{
	unsigned int i;

	x->freeing = true;
	svqiso_svq_free(x->svq);
	x->freeing = false;
	/* Whatever was in flight is dropped, its bounce bytes returned. */
	FZ_CHECK(svqiso_pool_in_use(x->pool) == 0, "svq_free left %llu pool bytes in use",
		 (unsigned long long)svqiso_pool_in_use(x->pool));
	if (x->area.size)
		FZ_CHECK(svqiso_iso_region_free(x->iso, x->area.iova) == 0, "ring area");
	svqiso_pool_free(x->pool);
	FZ_CHECK(svqiso_iso_nr_regions(x->iso) == 0,
		 "%u isolated regions outlive their svq and pool",
		 svqiso_iso_nr_regions(x->iso));
	for (i = 0; i < SVQ_ARRAY_SIZE(x->req); i++)
		free(x->req[i].snap);
	for (i = 0; i < 4; i++)
		free(x->model[i]);
	svqiso_mem_free(x->map);
	mock_free(x->m);
}

/*
 * A round as a well-behaved backend would have it: the guest posts, the VMM
 * kicks, the backend completes what is on the shadow ring in the input's
 * order with valid entries, the VMM calls.
 */
static void round_trip(struct ctx *x)
{
	unsigned int n = fz_below(&x->f, 4), i;

	for (i = 0; i < n; i++) {
		if (x->element)
			element_submit(x);
		else
			guest_post(x);
	}
	if (!x->element)
		process_avail(x);
	for (i = nlive(x, 1); i; i--)
		backend_used(x, true);
	process_used(x);
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

		switch (op % 22) {
		case 20: case 21:
			round_trip(x);
			break;
		case 0: case 1: case 2:
			if (x->element)
				element_submit(x);
			else
				guest_post(x);
			break;
		case 3: case 4:
			process_avail(x);
			break;
		case 5: case 6:
			process_used(x);
			break;
		case 7: case 8:
			backend_used(x, false);
			break;
		case 9: case 10:
			backend_used(x, true);
			break;
		case 11:
			backend_event(x);
			break;
		case 12:
			backend_scribble(x);
			break;
		case 13:
			backend_resync(x);
			break;
		case 14:
			do_rewind(x);
			break;
		case 15:
			do_repost(x);
			break;
		case 16:
			do_reset(x);
			break;
		case 17:
			do_pause(x, fz_bool(&x->f));
			break;
		case 18:
			do_busy(x, fz_bool(&x->f));
			break;
		default: {
			int t = svqiso_svq_backend_taken(x->svq);

			FZ_CHECK(t == -EIO || t == -ENODATA ||
				 (t >= 0 && (unsigned int)t <= nlive(x, 1)),
				 "backend_taken %d with %u on the shadow ring", t, nlive(x, 1));
			break;
		}
		}
	}
	/* Whatever the backend did, a reset gives everything back; or the VMM
	 * frees the queue with requests in flight (checked in teardown()). */
	if (!x->abandon)
		do_reset(x);
	teardown(x);
	free(x);
	return 0;
}
