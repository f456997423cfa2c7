/* SPDX-License-Identifier: MIT */
/*
 * The guest's virtio-net driver, one queue (VIRTIO 1.2, 5.1.6): a receive
 * queue keeps an empty buffer posted in every free chain id, a transmit
 * queue sends a header and a frame per chain. Chains are cut into 1 to 3
 * pieces at seeded places, so a device sees the header alone, joined to
 * the frame, and the frame in two.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "guest.h"

#define MAX_PIECES	3

struct netq {
	struct gring *ring;
	uint8_t role;
	uint32_t room;			/* frame bytes after the header */
	uint32_t stride;		/* bytes between two ids' buffers */
	uint16_t posted;		/* RX: buffers kept posted, at most */
	uint8_t max_pieces;		/* per chain, 1..MAX_PIECES */
	uint64_t bufs_gpa;		/* [num] buffers, by chain id */
	uint64_t rng;
	uint8_t *scratch;		/* header + room, for a frame read out */
	int err;			/* first device violation, sticky */

	netq_rx_fn rx;			/* during netq_rx_collect() */
	void *rx_ctx;
};

static uint64_t rnd(struct netq *q)
{
	q->rng ^= q->rng >> 12;
	q->rng ^= q->rng << 25;
	q->rng ^= q->rng >> 27;
	return q->rng * 0x2545f4914f6cdd1dull;
}

int netq_new(struct gmem *gm, const struct netq_opts *o, struct netq **out)
{
	struct gring_opts ro;
	struct netq *q;
	int err = -ENOMEM;

	if (!gm || !o || !out || o->role > NETQ_TX || o->frame_room > (1u << 20) ||
	    o->rx_posted > o->num || o->max_pieces > MAX_PIECES)
		return -EINVAL;
	ro = (struct gring_opts){ .layout = o->layout, .num = o->num,
				  .indirect = o->indirect,
				  .event_idx = o->event_idx,
				  .max_pieces = o->max_pieces ? o->max_pieces :
						MAX_PIECES,
				  .seed = o->seed,
				  .len_chain = o->role == NETQ_TX };
	if (!gring_opts_ok(&ro))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->role = o->role;
	q->posted = o->rx_posted ? o->rx_posted : o->num;
	q->max_pieces = o->max_pieces ? o->max_pieces : MAX_PIECES;
	q->room = o->frame_room ? o->frame_room : NETQ_FRAME_MAX;
	q->stride = (VIRTIO_NET_HDR_LEN + q->room + 63) & ~63u;
	q->rng = (o->seed ? o->seed : 0x3c6ef372fe94f82bull) ^ 0x6e6574ull;
	q->scratch = malloc(VIRTIO_NET_HDR_LEN + q->room);
	q->bufs_gpa = gmem_alloc(gm, (uint64_t)q->stride * o->num, 64);
	if (q->scratch && q->bufs_gpa)
		err = gring_new(gm, &ro, &q->ring);
	if (err) {
		netq_free(q);
		return err;
	}
	*out = q;
	return 0;
}

void netq_free(struct netq *q)
{
	if (!q)
		return;
	gring_free(q->ring);
	free(q->scratch);
	free(q);
}

struct gring *netq_ring(const struct netq *q)
{
	return q->ring;
}

/*
 * Cut the @len bytes at @gpa into 1 to max_pieces pieces: whole, the
 * header apart, or the header apart and the rest in two.
 */
static unsigned int cut(struct netq *q, uint64_t gpa, uint32_t len, bool write,
			struct gring_piece *pc)
{
	uint32_t body = len - VIRTIO_NET_HDR_LEN, first;
	unsigned int shape = q->max_pieces > 1 ? rnd(q) % q->max_pieces : 0;

	if (shape == 0 || !body) {
		pc[0] = (struct gring_piece){ gpa, len, write };
		return 1;
	}
	pc[0] = (struct gring_piece){ gpa, VIRTIO_NET_HDR_LEN, write };
	if (shape == 1 || body < 2) {
		pc[1] = (struct gring_piece){ gpa + VIRTIO_NET_HDR_LEN, body, write };
		return 2;
	}
	first = 1 + (uint32_t)(rnd(q) % (body - 1));
	pc[1] = (struct gring_piece){ gpa + VIRTIO_NET_HDR_LEN, first, write };
	pc[2] = (struct gring_piece){ gpa + VIRTIO_NET_HDR_LEN + first,
				      body - first, write };
	return 3;
}

static uint64_t buf_gpa(const struct netq *q, int id)
{
	return q->bufs_gpa + (uint64_t)q->stride * (id < 0 ? 0 : id);
}

int netq_rx_fill(struct netq *q)
{
	struct gmem *gm = gring_gmem(q->ring);
	uint8_t poison[VIRTIO_NET_HDR_LEN];
	struct gring_piece pc[MAX_PIECES];
	int id, posted = 0, got;
	unsigned int n;

	if (q->role != NETQ_RX)
		return -EINVAL;
	if (q->err)
		return q->err;
	memset(poison, 0xff, sizeof(poison));
	while (gring_inflight(q->ring) < q->posted &&
	       (id = gring_next_id(q->ring)) >= 0) {
		uint64_t gpa = buf_gpa(q, id);

		gmem_write(gm, gpa, poison, sizeof(poison));
		n = cut(q, gpa, VIRTIO_NET_HDR_LEN + q->room, true, pc);
		got = gring_add(q->ring, pc, n, NULL);
		if (got == -ENOSPC)
			break;	/* ids left, descriptors not: a direct chain */
		if (got < 0)
			return got;
		posted++;
	}
	return posted;
}

static void rx_done(void *ctx, uint16_t id, void *cookie, uint32_t len)
{
	struct netq *q = ctx;

	(void)cookie;
	if (q->err)
		return;
	/* gring checked len against the buffer; a frame needs its header. */
	if (len < VIRTIO_NET_HDR_LEN ||
	    gmem_read(gring_gmem(q->ring), buf_gpa(q, id), q->scratch, len)) {
		q->err = -EPROTO;
		return;
	}
	if (q->rx)
		q->rx(q->rx_ctx, (const struct virtio_net_hdr_v1 *)q->scratch,
		      q->scratch + VIRTIO_NET_HDR_LEN, len - VIRTIO_NET_HDR_LEN);
}

int netq_rx_collect(struct netq *q, netq_rx_fn fn, void *ctx)
{
	int n, rc;

	if (q->role != NETQ_RX)
		return -EINVAL;
	if (q->err)
		return q->err;
	q->rx = fn;
	q->rx_ctx = ctx;
	n = gring_collect(q->ring, rx_done, q);
	if (n < 0 || q->err)
		return q->err = -EPROTO;
	rc = netq_rx_fill(q);
	return rc < 0 ? rc : n;
}

int netq_tx_send(struct netq *q, const void *frame, uint32_t len)
{
	struct gmem *gm = gring_gmem(q->ring);
	struct virtio_net_hdr_v1 hdr = { 0 };
	struct gring_piece pc[MAX_PIECES];
	int id, got;
	unsigned int n;
	uint64_t gpa;

	if (q->role != NETQ_TX || !frame || !len || len > q->room)
		return -EINVAL;
	if (q->err)
		return q->err;
	/* The chain takes the ring's next id: its buffer is free meanwhile. */
	id = gring_next_id(q->ring);
	gpa = buf_gpa(q, id);
	if (id >= 0 &&
	    (gmem_write(gm, gpa, &hdr, VIRTIO_NET_HDR_LEN) ||
	     gmem_write(gm, gpa + VIRTIO_NET_HDR_LEN, frame, len)))
		return -EINVAL;
	n = cut(q, gpa, VIRTIO_NET_HDR_LEN + len, false, pc);
	got = gring_add(q->ring, pc, n, NULL);
	return got < 0 ? got : 0;
}

int netq_tx_collect(struct netq *q)
{
	int n;

	if (q->role != NETQ_TX)
		return -EINVAL;
	if (q->err)
		return q->err;
	n = gring_collect(q->ring, NULL, NULL);
	return n < 0 ? (q->err = n) : n;
}
