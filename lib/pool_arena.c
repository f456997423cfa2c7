/* SPDX-License-Identifier: MIT */
/*
 * The steady-state bounce pool: one isolated region, created and announced
 * once, carved first in, first out.
 *
 * Why this shape:
 * - Registration is the expensive part of isolation (a vhost-user round trip
 *   and a backend mmap per region), and backends have few slots (32 for
 *   libvhost-user). One region made up front means steady-state I/O never
 *   registers anything.
 * - Requests complete roughly in the order they were issued, so a circular
 *   arena fits: alloc takes the next bytes at the head, free lets the tail
 *   follow. No free lists, no fragmentation search, O(1) alloc.
 * - Variable sizes: when a request does not fit between the head and the end,
 *   the end is skipped (wasted until the head comes round) and the request is
 *   taken from offset 0. A buffer is therefore always contiguous in both the
 *   host and the IOVA view, which is what a single shadow descriptor needs.
 * - Out-of-order completion: a ring of max_bufs records {offset, len, freed},
 *   in allocation order, sized at construction (no malloc per request). Free
 *   marks its record (buf->priv is the record's index) and moves the tail
 *   past every freed record at the front. A buffer freed early only delays
 *   reclaim until the ones before it come back; amortized O(1) per free.
 * - No deadlock: when the arena is empty the offsets go back to 0, so any
 *   request up to the whole size fits once every buffer is back. A request
 *   that can never fit gets -EMSGSIZE, not an -ENOSPC to wait on forever.
 * - A small footprint: the head starts over at 0 once it passes a reach
 *   (first SVQ_ARENA_REACH, at most the size) if the bytes before the
 *   tail have room, instead of walking the whole arena. The arena then
 *   reuses the buffers it just had back, which the copies and the
 *   backend's mapping still hold in their caches and TLBs, and a backend
 *   faults in only the pages the traffic needs, not the whole size. When
 *   the live bytes leave no room before the tail, the head goes on up and
 *   the reach grows to it (by a quarter at least), up to the size, so
 *   before a wrap the reach never refuses a request. After one, until the
 *   tail comes round, the arena holds what lies between its head and its
 *   tail, as after a wrap at the end: a burst larger than that waits for
 *   completions (-ENOSPC) once, and the reach has grown by the next
 *   round. It does not shrink.
 *
 * Buffers are not cleared between uses: a pool belongs to one device, and
 * whatever an earlier request left in it that device's backend already saw.
 */
#include <stdlib.h>
#include <unistd.h>

#include "iso.h"
#include "pool_priv.h"

struct arena_rec {
	uint64_t off;
	uint64_t len;
	bool freed;
};

struct arena {
	struct svqiso_iso *iso;
	struct svqiso_region region;
	uint64_t cap;			/* region.size */
	uint64_t align;
	/*
	 * Live bytes are [tail, head) when head > tail, else [tail, end of
	 * the last record before the wrap) and [0, head). With no live
	 * buffer, head == tail == 0.
	 */
	uint64_t head;
	uint64_t tail;
	uint64_t reach;			/* head <= reach <= cap, see above */
	struct arena_rec *rec;		/* [nrec], a ring in allocation order */
	uint32_t nrec;
	uint32_t front;			/* oldest live record */
	uint32_t count;			/* live records, freed or not */
};

#if defined(__LP64__)
_Static_assert(sizeof(struct svqiso_arena_opts) == 24, "svqiso_arena_opts is append-only");
#endif

/* The reach of a new arena: room for 32 requests of 32 KiB. */
#define SVQ_ARENA_REACH	(1ull << 20)

int svq_arena_alloc(void *ctx, uint64_t len, struct svqiso_buf *buf)
{
	struct arena *a = ctx;
	uint64_t need, off;
	uint32_t i;

	if (len > a->cap)
		return -EMSGSIZE;
	/* cap is a multiple of the page size, align divides it: no wrap. */
	need = (len + a->align - 1) & ~(a->align - 1);
	if (a->count == a->nrec)
		return -ENOSPC;
	if (!a->count) {
		off = 0;
	} else if (a->head > a->tail) {
		if (need <= a->reach - a->head)
			off = a->head;
		else if (need <= a->tail)
			off = 0;	/* skip [head, cap) until we come round */
		else if (need <= a->cap - a->head)
			off = a->head;	/* past the reach, which follows */
		else
			return -ENOSPC;
	} else {
		if (need > a->tail - a->head)
			return -ENOSPC;
		off = a->head;
	}

	i = a->front + a->count;
	if (i >= a->nrec)
		i -= a->nrec;
	a->rec[i] = (struct arena_rec){ .off = off, .len = need };
	a->count++;
	a->head = off + need;
	if (unlikely(a->head > a->reach)) {
		uint64_t r = a->reach + a->reach / 4;

		a->reach = a->head > r ? a->head : r < a->cap ? r : a->cap;
	}

	buf->hva = (uint8_t *)a->region.uaddr + off;
	buf->iova = a->region.iova + off;
	buf->len = need;
	buf->priv = i;
	return 0;
}

void svq_arena_free(void *ctx, const struct svqiso_buf *buf)
{
	struct arena *a = ctx;
	struct arena_rec *r;
	uint64_t i = buf->priv, age;

	/* Best effort against a buffer that is not live (put twice, or
	 * never ours): ignore it rather than corrupt the ring. */
	if (i >= a->nrec)
		return;
	/* Its place in allocation order; i, front < nrec, so one
	 * subtraction does what a division would. */
	age = i + a->nrec - a->front;
	if (age >= a->nrec)
		age -= a->nrec;
	if (age >= a->count)
		return;
	r = &a->rec[i];
	if (r->freed || (uint8_t *)a->region.uaddr + r->off != buf->hva)
		return;
	r->freed = true;

	while (a->count && a->rec[a->front].freed) {
		if (++a->front == a->nrec)
			a->front = 0;
		a->count--;
	}
	if (!a->count) {
		a->front = 0;
		a->head = 0;
		a->tail = 0;
	} else {
		/* Jumps to 0 when the front record is the one that wrapped:
		 * that is where the skipped end is reclaimed. */
		a->tail = a->rec[a->front].off;
	}
}

static void arena_destroy(void *ctx)
{
	struct arena *a = ctx;

	svqiso_iso_region_free(a->iso, a->region.iova);
	free(a->rec);
	free(a);
}

static const struct svqiso_pool_ops arena_ops = {
	.sz = sizeof(struct svqiso_pool_ops),
	.alloc = svq_arena_alloc,
	.free = svq_arena_free,
	.destroy = arena_destroy,
};

int svqiso_pool_new_arena(struct svqiso_iso *iso,
			  const struct svqiso_arena_opts *opts,
			  struct svqiso_pool **out)
{
	uint64_t size, page, most;
	uint32_t max_bufs, align;
	struct arena *a;
	long ps;
	int err;

	if (!iso || !out || !SVQ_OPTS_OK(svqiso_arena_opts, opts))
		return -EINVAL;
	size = SVQ_OPTS_GET(opts, size, 0);
	max_bufs = SVQ_OPTS_GET(opts, max_bufs, 0);
	align = SVQ_OPTS_GET(opts, align, 0);
	if (!size)
		size = SVQISO_ARENA_DEFAULT_SIZE;
	if (!max_bufs)
		max_bufs = 1024;
	if (!align)
		align = 64;
	ps = sysconf(_SC_PAGESIZE);
	page = ps > 0 ? (uint64_t)ps : 4096;
	/* Larger alignments would need the mapping itself aligned. */
	if (align & (align - 1) || align > page)
		return -EINVAL;
	if (size > SVQ_ISO_MAX_SIZE)
		return -EINVAL;
	/* Each buffer takes at least align bytes: more records than that
	 * could never be used. */
	most = (size / page + 1) * (page / align);
	if (most < max_bufs)
		max_bufs = (uint32_t)most;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->rec = calloc(max_bufs, sizeof(*a->rec));
	if (!a->rec) {
		free(a);
		return -ENOMEM;
	}
	a->iso = iso;
	a->nrec = max_bufs;
	a->align = align;
	err = svqiso_iso_region_new(iso, size, &a->region);
	if (err) {
		free(a->rec);
		free(a);
		return err;
	}
	a->cap = a->region.size;
	a->reach = a->cap < SVQ_ARENA_REACH ? a->cap : SVQ_ARENA_REACH;

	err = svqiso_pool_new(&arena_ops, a, out);
	if (err) {
		arena_destroy(a);
		return err;
	}
	(*out)->arena = true;
	return 0;
}
