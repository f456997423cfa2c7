/* SPDX-License-Identifier: MIT */
/*
 * The guest's virtio-blk driver, one queue: requests as chains of a
 * header, data segments and a status byte (VIRTIO 1.2, 5.2.6) on a gring,
 * which writes the split or packed ring.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>

#include "guest.h"

#define DEFAULT_SEGS	64
#define STATUS_NONE	0xff		/* a status the device never wrote */

/* Per-slot guest memory: header, range segment, status. */
struct slot_mem {
	struct virtio_blk_outhdr hdr;
	struct virtio_blk_discard_write_zeroes dz;
	uint8_t status;
	uint8_t pad[15];
};

struct blkq {
	struct gring *ring;
	uint16_t max_segs;
	blkq_notify_fn notify;
	void *notify_ctx;

	uint64_t slots_gpa;		/* [num] struct slot_mem, by chain id */
	struct slot_mem *slots;
	struct gring_piece *pieces;	/* [max_segs + 2] scratch */
	uint64_t cross_region_segs;

	blkq_done_fn done;		/* during blkq_collect() */
	void *done_ctx;
};

int blkq_new(struct gmem *gm, const struct blkq_opts *o, struct blkq **out)
{
	struct gring_opts ro;
	struct blkq *q;
	int err = -ENOMEM;

	if (!gm || !o || !out)
		return -EINVAL;
	ro = (struct gring_opts){ .layout = o->layout, .num = o->num,
				  .indirect = o->indirect,
				  .event_idx = o->event_idx,
				  .max_pieces = (o->max_segs ? o->max_segs : DEFAULT_SEGS) + 2u,
				  .seed = o->seed };
	if (!gring_opts_ok(&ro))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->max_segs = ro.max_pieces - 2u;
	q->pieces = calloc(q->max_segs + 2u, sizeof(*q->pieces));
	if (!q->pieces)
		goto fail;
	q->slots = gmem_area(gm, sizeof(struct slot_mem) * (uint64_t)o->num, 16,
			     &q->slots_gpa);
	if (!q->slots)
		goto fail;
	err = gring_new(gm, &ro, &q->ring);
	if (err)
		goto fail;
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
	gring_free(q->ring);
	free(q->pieces);
	free(q);
}

struct gring *blkq_ring(const struct blkq *q) { return q->ring; }
struct svqiso_vring_addr blkq_addr(const struct blkq *q) { return gring_addr(q->ring); }
uint16_t blkq_num(const struct blkq *q) { return gring_num(q->ring); }
uint8_t blkq_layout(const struct blkq *q) { return gring_layout(q->ring); }
bool blkq_event_idx(const struct blkq *q) { return gring_event_idx(q->ring); }
bool blkq_indirect(const struct blkq *q) { return gring_indirect(q->ring); }
uint16_t blkq_max_segs(const struct blkq *q) { return q->max_segs; }
struct gmem *blkq_gmem(const struct blkq *q) { return gring_gmem(q->ring); }
int blkq_kick_fd(const struct blkq *q) { return gring_kick_fd(q->ring); }
int blkq_call_fd(const struct blkq *q) { return gring_call_fd(q->ring); }
unsigned int blkq_inflight(const struct blkq *q) { return gring_inflight(q->ring); }
uint32_t blkq_fresh_base(const struct blkq *q) { return gring_fresh_base(q->ring); }

void blkq_get_stats(const struct blkq *q, struct blkq_stats *st)
{
	struct gring_stats rs;

	gring_get_stats(q->ring, &rs);
	*st = (struct blkq_stats){
		.submitted = rs.submitted, .completed = rs.completed,
		.kicks = rs.kicks, .indirect = rs.indirect, .direct = rs.direct,
		.cross_region_segs = q->cross_region_segs,
		.ring_full = rs.ring_full,
	};
}

static void notify_blk(void *ctx)
{
	struct blkq *q = ctx;

	q->notify(q->notify_ctx, q);
}

void blkq_set_notify(struct blkq *q, blkq_notify_fn fn, void *ctx)
{
	q->notify = fn;
	q->notify_ctx = ctx;
	gring_set_notify(q->ring, fn ? notify_blk : NULL, q);
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
	q->pieces[n++] = (struct gring_piece){
		base + offsetof(struct slot_mem, hdr), 16, false };
	if (dz && !r->nseg)
		q->pieces[n++] = (struct gring_piece){
			base + offsetof(struct slot_mem, dz), 16, false };
	for (i = 0; i < r->nseg; i++) {
		if (!r->seg[i].len)
			return -EINVAL;
		q->pieces[n++] = (struct gring_piece){
			r->seg[i].gpa, r->seg[i].len, data_is_write(r->type) };
	}
	q->pieces[n++] = (struct gring_piece){
		base + offsetof(struct slot_mem, status), 1, true };
	return n;
}

/* Header, range segment and status byte of slot @id. */
static void fill_slot(struct blkq *q, const struct blkq_req *r, uint16_t id)
{
	struct slot_mem *m = &q->slots[id];

	m->hdr.type = htole32(r->type);
	m->hdr.ioprio = 0;
	m->hdr.sector = htole64(r->sector);
	m->dz.sector = htole64(r->sector);
	m->dz.num_sectors = htole32(r->nr_sectors);
	m->dz.flags = htole32(r->dz_flags);
	m->status = STATUS_NONE;
}

int blkq_submit(struct blkq *q, const struct blkq_req *r)
{
	int id, n, got;
	unsigned int i;

	if (gring_broken(q->ring))
		return -EPROTO;
	if (!r)
		return -EINVAL;
	/* The chain takes the ring's next id: its slot is free meanwhile. */
	id = gring_next_id(q->ring);
	n = plan(q, r, id < 0 ? 0 : id);
	if (n < 0)
		return n;
	if (id >= 0)
		fill_slot(q, r, id);
	got = gring_add(q->ring, q->pieces, n, r->cookie);
	if (got < 0)
		return got;
	for (i = 0; i < r->nseg; i++)
		if (!gmem_hva(blkq_gmem(q), r->seg[i].gpa, r->seg[i].len))
			q->cross_region_segs++;
	return 0;
}

static void done_blk(void *ctx, uint16_t id, void *cookie, uint32_t len)
{
	struct blkq *q = ctx;
	uint8_t status = __atomic_load_n(&q->slots[id].status, __ATOMIC_RELAXED);

	if (q->done)
		q->done(q->done_ctx, cookie, status, len);
}

int blkq_collect(struct blkq *q, blkq_done_fn done, void *ctx)
{
	q->done = done;
	q->done_ctx = ctx;
	return gring_collect(q->ring, done_blk, q);
}
