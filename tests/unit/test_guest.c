/* SPDX-License-Identifier: MIT */
/*
 * The guest virtio-blk driver model (tests/guest/) against an in-process
 * RAM-disk device built on the library's device-role rings.
 *
 * The device thread serves every queue through svq_dev over a svqiso_mem made
 * from the guest RAM's regions; its disk is a memfd so the workload's model
 * can be compared with it through a file descriptor. Negative controls show
 * the checks can fail: a flipped byte, a bogus used id, a silent device.
 *
 * Randomized tests print "# seed=..."; SVQ_TEST_SEED=<seed> replays them.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <check.h>

#include "vring.h"
#include "rng.h"
#include "guest.h"

#define GUEST_BASE	0x100000000ull
#define REGION_SIZE	(8ull << 20)
#define NR_REGIONS	4
#define DISK_SIZE	(8ull << 20)
#define MAX_LEN		(128u << 10)
#define NR_QUEUES	2
#define DEPTH		16
#define BATCH		8
#define MAX_SEG		160	/* per element: data pieces split at regions */
#define DEFAULT_SEED	0x9e5717b10cull

static uint64_t test_seed = DEFAULT_SEED;

/* ---- RAM-disk device ---- */

enum dev_mode {
	DEV_OK,
	DEV_FLIP,		/* flip one byte of one read */
};

struct dev {
	struct gmem *gm;
	struct svqiso_mem *mem;
	unsigned int nq;
	struct blkq **qs;
	struct svq_dev vq[NR_QUEUES];
	bool broken[NR_QUEUES];
	int disk_fd;
	uint8_t *disk;
	uint64_t cap;
	int stop_fd;
	pthread_t thread;
	struct rng rng;
	enum dev_mode mode;
	bool discard_garbage;	/* discarded ranges read back as 0xdb */
	uint64_t flip_at;	/* DEV_FLIP: the read to corrupt */
	bool flipped;
	uint64_t flip_sector;
	uint32_t flip_offset;
	/* counters, read after the thread is joined */
	uint64_t served, reads, errors, kicks, calls;
	uint64_t split_segs;	/* segments ending where the next starts, at a region end */
	struct svq_seg seg[BATCH][MAX_SEG];
};

/* Copy between a flat buffer and the chain's segments [first, first + n). */
static bool stream(struct svq_elem *e, unsigned int first, unsigned int n,
		   uint64_t off, void *buf, uint64_t len, bool to_chain)
{
	uint8_t *b = buf;

	for (unsigned int i = first; i < first + n && len; i++) {
		struct svq_seg *s = &e->seg[i];
		uint64_t k;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		k = s->len - off < len ? s->len - off : len;
		if (to_chain)
			memcpy((uint8_t *)s->hva + off, b, k);
		else
			memcpy(b, (uint8_t *)s->hva + off, k);
		b += k;
		len -= k;
		off = 0;
	}
	return len == 0;
}

static bool in_disk(struct dev *d, uint64_t sector, uint64_t len)
{
	return sector < d->cap / 512 && len <= d->cap - sector * 512;
}

/* Serve one chain; return the used length. */
static uint32_t serve(struct dev *d, struct svq_elem *e)
{
	unsigned int nin = e->nseg - e->nout;
	struct virtio_blk_outhdr h;
	uint8_t status = VIRTIO_BLK_S_OK;
	uint64_t sector, len;
	uint32_t used = 1;

	if (e->out_bytes < 16 || e->in_bytes < 1 ||
	    !stream(e, 0, e->nout, 0, &h, 16, false)) {
		d->errors++;
		return 0;
	}
	sector = le64toh(h.sector);
	switch (le32toh(h.type)) {
	case VIRTIO_BLK_T_IN:
		len = e->in_bytes - 1;
		if (len % 512 || !in_disk(d, sector, len)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		stream(e, e->nout, nin, 0, d->disk + sector * 512, len, true);
		d->reads++;
		if (d->mode == DEV_FLIP && !d->flipped && d->reads >= d->flip_at) {
			uint64_t at = len / 2;
			uint8_t c;

			stream(e, e->nout, nin, at, &c, 1, false);
			c ^= 0x40;
			stream(e, e->nout, nin, at, &c, 1, true);
			d->flipped = true;
			d->flip_sector = sector + at / 512;
			d->flip_offset = at % 512;
		}
		used += len;
		break;
	case VIRTIO_BLK_T_OUT:
		len = e->out_bytes - 16;
		if (len % 512 || !in_disk(d, sector, len)) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		stream(e, 0, e->nout, 16, d->disk + sector * 512, len, false);
		break;
	case VIRTIO_BLK_T_FLUSH:
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool discard = le32toh(h.type) == VIRTIO_BLK_T_DISCARD;
		struct virtio_blk_discard_write_zeroes r;

		if ((e->out_bytes - 16) % 16 || e->out_bytes == 16) {
			status = VIRTIO_BLK_S_IOERR;
			break;
		}
		for (uint64_t o = 16; o < e->out_bytes; o += 16) {
			stream(e, 0, e->nout, o, &r, 16, false);
			sector = le64toh(r.sector);
			len = (uint64_t)le32toh(r.num_sectors) * 512;
			if (!in_disk(d, sector, len)) {
				status = VIRTIO_BLK_S_IOERR;
				break;
			}
			memset(d->disk + sector * 512,
			       discard && d->discard_garbage ? 0xdb : 0, len);
		}
		break;
	}
	case VIRTIO_BLK_T_GET_ID: {
		static const char id[VIRTIO_BLK_ID_BYTES] = "ramdisk";
		uint64_t n = e->in_bytes - 1 < sizeof(id) ? e->in_bytes - 1 : sizeof(id);

		stream(e, e->nout, nin, 0, (void *)id, n, true);
		used += n;
		break;
	}
	default:
		status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	stream(e, e->nout, nin, e->in_bytes - 1, &status, 1, true);
	d->served++;
	return used;
}

/* Segments the device got split at a region boundary. */
static void count_boundary(struct dev *d, const struct svq_elem *e)
{
	for (unsigned int i = 0; i + 1 < e->nseg; i++) {
		uint64_t end = e->seg[i].addr + e->seg[i].len;

		if (end == e->seg[i + 1].addr && (end - GUEST_BASE) % REGION_SIZE == 0)
			d->split_segs++;
	}
}

static void serve_queue(struct dev *d, unsigned int qi)
{
	struct svq_dev *vq = &d->vq[qi];

	if (d->broken[qi])
		return;
	do {
		svq_dev_disable_notify(vq);
		for (;;) {
			struct svq_elem e[BATCH];
			uint32_t used[BATCH];
			unsigned int n = 0, order[BATCH];
			int rc = 0;

			while (n < BATCH) {
				e[n] = (struct svq_elem){ .max_seg = MAX_SEG, .seg = d->seg[n] };
				rc = svq_dev_pop(vq, &e[n]);
				if (rc != 1)
					break;
				count_boundary(d, &e[n]);
				used[n] = serve(d, &e[n]);
				order[n] = n;
				n++;
			}
			if (rc < 0) {
				d->broken[qi] = true;
				d->errors++;
				return;
			}
			if (!n)
				break;
			/* Complete out of order: ids, not positions, match them up. */
			for (unsigned int i = n - 1; i > 0; i--) {
				unsigned int j = rng_below(&d->rng, i + 1), t = order[i];

				order[i] = order[j];
				order[j] = t;
			}
			for (unsigned int i = 0; i < n; i++)
				if (svq_dev_push(vq, e[order[i]].id, used[order[i]]))
					d->errors++;
			svq_dev_flush(vq);
			if (svq_dev_need_notify(vq)) {
				uint64_t one = 1;

				if (write(blkq_call_fd(d->qs[qi]), &one, 8) == 8)
					d->calls++;
			}
		}
	} while (svq_dev_enable_notify(vq));
}

static void *dev_main(void *arg)
{
	struct dev *d = arg;
	struct pollfd pfd[NR_QUEUES + 1];
	unsigned int i;

	for (i = 0; i < d->nq; i++)
		pfd[i] = (struct pollfd){ .fd = blkq_kick_fd(d->qs[i]), .events = POLLIN };
	pfd[d->nq] = (struct pollfd){ .fd = d->stop_fd, .events = POLLIN };
	for (;;) {
		if (poll(pfd, d->nq + 1, -1) < 0)
			continue;
		if (pfd[d->nq].revents)
			break;
		for (i = 0; i < d->nq; i++) {
			uint64_t cnt;

			if (!(pfd[i].revents & POLLIN))
				continue;
			if (read(pfd[i].fd, &cnt, 8) == 8)
				d->kicks++;
			serve_queue(d, i);
		}
	}
	return NULL;
}

static void dev_init(struct dev *d, struct gmem *gm, struct blkq **qs, unsigned int nq)
{
	memset(d, 0, sizeof(*d));
	d->gm = gm;
	d->qs = qs;
	d->nq = nq;
	d->cap = DISK_SIZE;
	rng_seed(&d->rng, test_seed, 0xde7);
	ck_assert_int_eq(svqiso_mem_new(NULL, &d->mem), 0);
	for (unsigned int i = 0; i < gmem_nr_regions(gm); i++) {
		struct svqiso_mem_region r;

		ck_assert_int_eq(gmem_region(gm, i, &r), 0);
		ck_assert_int_eq(svqiso_mem_add_region(d->mem, &r), 0);
	}
	for (unsigned int i = 0; i < nq; i++) {
		struct svqiso_vring_addr a = blkq_addr(qs[i]);
		struct svq_dev_cfg c = {
			.layout = blkq_layout(qs[i]),
			.num = blkq_num(qs[i]),
			.flags = (blkq_event_idx(qs[i]) ? SVQ_RING_F_EVENT_IDX : 0) |
				 (blkq_indirect(qs[i]) ? SVQ_RING_F_INDIRECT : 0),
			.desc = a.desc,
			.driver = a.driver,
			.device = a.device,
			.mem = svqiso_mem_ops(),
			.mem_ctx = d->mem,
			.base = blkq_fresh_base(qs[i]),
			.name = "blk",
		};

		ck_assert_int_eq(svq_dev_init(&d->vq[i], &c), 0);
		ck_assert_uint_eq(svq_dev_get_base(&d->vq[i]), blkq_fresh_base(qs[i]));
	}
	d->disk_fd = memfd_create("disk", MFD_CLOEXEC);
	ck_assert_int_ge(d->disk_fd, 0);
	ck_assert_int_eq(ftruncate(d->disk_fd, d->cap), 0);
	d->disk = mmap(NULL, d->cap, PROT_READ | PROT_WRITE, MAP_SHARED, d->disk_fd, 0);
	ck_assert_ptr_ne(d->disk, MAP_FAILED);
	d->stop_fd = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(d->stop_fd, 0);
}

static void dev_start(struct dev *d)
{
	ck_assert_int_eq(pthread_create(&d->thread, NULL, dev_main, d), 0);
}

static void dev_stop(struct dev *d)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(d->stop_fd, &one, 8), 8);
	ck_assert_int_eq(pthread_join(d->thread, NULL), 0);
}

static void dev_fini(struct dev *d)
{
	for (unsigned int i = 0; i < d->nq; i++)
		svq_dev_fini(&d->vq[i]);
	svqiso_mem_free(d->mem);
	munmap(d->disk, d->cap);
	close(d->disk_fd);
	close(d->stop_fd);
}

/* ---- Guest side ---- */

struct guest {
	struct gmem *gm;
	struct blkq *q[NR_QUEUES];
	unsigned int nq;
};

static void guest_init(struct guest *g, unsigned int nq, const struct blkq_opts *o)
{
	memset(g, 0, sizeof(*g));
	g->gm = gmem_new(GUEST_BASE, REGION_SIZE * NR_REGIONS, NR_REGIONS);
	ck_assert_ptr_nonnull(g->gm);
	g->nq = nq;
	for (unsigned int i = 0; i < nq; i++) {
		struct blkq_opts qo = *o;

		qo.seed = test_seed + i + 1;
		ck_assert_int_eq(blkq_new(g->gm, &qo, &g->q[i]), 0);
	}
}

static void guest_fini(struct guest *g)
{
	for (unsigned int i = 0; i < g->nq; i++)
		blkq_free(g->q[i]);
	gmem_free(g->gm);
}

/* Put the data area so that slot 2's buffer starts 4 KiB before region 1 ends. */
static void place_across_boundary(struct guest *g)
{
	uint64_t boundary = GUEST_BASE + 2 * REGION_SIZE;
	uint64_t at = boundary - 2ull * MAX_LEN - 4096;

	ck_assert_uint_lt(gmem_alloc_top(g->gm), at);
	ck_assert_int_eq(gmem_set_alloc_top(g->gm, at), 0);
}

static void workload_opts(struct blkwork_opts *o, struct guest *g)
{
	blkwork_opts_init(o);
	o->queues = g->q;
	o->nqueues = g->nq;
	o->depth = DEPTH;
	o->max_len = MAX_LEN;
	o->capacity = DISK_SIZE;
	o->max_segs = 8;
	o->seed = test_seed;
	o->timeout_ms = 5000;
}

static void tick(void *ctx, uint64_t completed)
{
	uint64_t *ticks = ctx;

	(void)completed;
	(*ticks)++;
}

static void print_seed(void)
{
	printf("# seed=%#" PRIx64 "\n", test_seed);
}

/* ---- gmem ---- */

START_TEST(test_gmem_regions_adjacent_gpa_apart_in_host)
{
	struct gmem *gm = gmem_new(GUEST_BASE, 4 * 65536, 4);
	struct svqiso_mem_region r[4];
	uint8_t buf[64], back[64];
	uint64_t b;

	ck_assert_ptr_nonnull(gm);
	ck_assert_uint_eq(gmem_nr_regions(gm), 4);
	for (unsigned int i = 0; i < 4; i++) {
		ck_assert_int_eq(gmem_region(gm, i, &r[i]), 0);
		ck_assert_uint_eq(r[i].gpa, GUEST_BASE + i * 65536ull);
		ck_assert_uint_eq(r[i].size, 65536);
		ck_assert_uint_eq(r[i].fd_offset, i * 65536ull);
		ck_assert_int_eq(r[i].fd, gmem_fd(gm));
		if (i)
			ck_assert_ptr_ne((uint8_t *)r[i - 1].hva + r[i - 1].size, r[i].hva);
	}
	ck_assert_int_eq(gmem_region(gm, 4, &r[0]), -ENOENT);
	b = GUEST_BASE + 65536;
	ck_assert_ptr_null(gmem_hva(gm, b - 8, 16));
	ck_assert_ptr_nonnull(gmem_hva(gm, b - 8, 8));
	ck_assert_ptr_null(gmem_hva(gm, GUEST_BASE - 1, 1));
	for (unsigned int i = 0; i < sizeof(buf); i++)
		buf[i] = i * 7 + 1;
	ck_assert_int_eq(gmem_write(gm, b - 32, buf, sizeof(buf)), 0);
	ck_assert_int_eq(gmem_read(gm, b - 32, back, sizeof(back)), 0);
	ck_assert_mem_eq(buf, back, sizeof(buf));
	/* Both halves reached the memfd at the right offsets. */
	ck_assert_int_eq(pread(gmem_fd(gm), back, sizeof(back), 65536 - 32), sizeof(back));
	ck_assert_mem_eq(buf, back, sizeof(buf));
	ck_assert_int_eq(gmem_write(gm, GUEST_BASE + 4 * 65536 - 8, buf, 16), -EFAULT);
	/* Contiguous allocation skips a boundary; plain allocation crosses it. */
	ck_assert_int_eq(gmem_set_alloc_top(gm, b - 100), 0);
	ck_assert_uint_eq(gmem_alloc_contig(gm, 200, 16), b);
	ck_assert_int_eq(gmem_set_alloc_top(gm, b - 100), 0);
	ck_assert_uint_eq(gmem_alloc(gm, 200, 4), b - 100);
	ck_assert_uint_eq(gmem_alloc(gm, 4 * 65536, 1), 0);
	gmem_free(gm);
	ck_assert_ptr_null(gmem_new(GUEST_BASE, 65536, 5));
	ck_assert_ptr_null(gmem_new(GUEST_BASE, 4096 * 3, 2));
}
END_TEST

/* ---- Workload against the RAM disk ---- */

/* _i: bit 0 packed, bit 1 indirect, bit 2 event idx. */
START_TEST(test_workload_matrix_no_mismatch)
{
	struct blkq_opts qo = {
		.layout = _i & 1 ? SVQISO_LAYOUT_PACKED : SVQISO_LAYOUT_SPLIT,
		.num = _i & 1 ? 48 : 64,
		.indirect = _i & 2,
		.event_idx = _i & 4,
	};
	struct blkq_stats st, sum = { 0 };
	struct blkwork_opts wo;
	struct blkwork_result res;
	struct blkwork *w;
	struct guest g;
	struct dev d;
	uint64_t bad = 1, ticks = 0;
	struct rng r;

	print_seed();
	guest_init(&g, NR_QUEUES, &qo);
	place_across_boundary(&g);
	dev_init(&d, g.gm, g.q, g.nq);
	workload_opts(&wo, &g);
	wo.tick = tick;
	wo.tick_ctx = &ticks;
	if (_i < 4) {
		/* Random initial content, read into the model from the disk file. */
		rng_seed(&r, test_seed, 0x1417);
		for (uint64_t o = 0; o < DISK_SIZE; o += 8) {
			uint64_t v = rng_next(&r);

			memcpy(d.disk + o, &v, 8);
		}
		wo.init_fd = d.disk_fd;
	}
	ck_assert_int_eq(blkwork_new(&wo, &w), 0);
	ck_assert_uint_eq(blkwork_seed(w), test_seed);
	dev_start(&d);
	for (int run = 0; run < 2; run++) {
		ck_assert_int_eq(blkwork_run(w, 2000, &res), 0);
		ck_assert_uint_eq(res.seed, test_seed);
		ck_assert_uint_eq(res.bad_status, 0);
		ck_assert_msg(res.mismatches == 0,
			      "%" PRIu64 " mismatches, first queue %u sector %" PRIu64
			      " offset %u", res.mismatches, res.mm_queue, res.mm_sector,
			      res.mm_offset);
		ck_assert_uint_eq(res.reads + res.writes + res.flushes + res.discards +
				  res.write_zeroes, 2000);
		ck_assert(res.reads && res.writes && res.flushes && res.discards &&
			  res.write_zeroes);
		ck_assert_uint_gt(res.bytes_read, 0);
		ck_assert_uint_gt(res.elapsed_ns, 0);
	}
	dev_stop(&d);
	ck_assert_uint_eq(d.errors, 0);
	ck_assert_uint_eq(d.served, 4000);
	ck_assert_int_eq(blkwork_check_fd(w, d.disk_fd, &bad), 0);
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_ge(ticks, 2 * (2000 / 256));
	for (unsigned int i = 0; i < g.nq; i++) {
		blkq_get_stats(g.q[i], &st);
		ck_assert_uint_eq(st.submitted, st.completed);
		ck_assert_uint_eq(blkq_inflight(g.q[i]), 0);
		sum.indirect += st.indirect;
		sum.direct += st.direct;
		sum.cross_region_segs += st.cross_region_segs;
		sum.kicks += st.kicks;
		sum.ring_full += st.ring_full;
	}
	ck_assert_uint_gt(sum.direct, 0);
	if (qo.indirect)
		ck_assert_uint_gt(sum.indirect, 0);
	else
		ck_assert_uint_eq(sum.indirect, 0);
	/* Data segments spanning the region boundary reached the device split. */
	ck_assert_uint_gt(sum.cross_region_segs, 0);
	ck_assert_uint_gt(d.split_segs, 0);
	ck_assert_uint_gt(sum.kicks, 0);
	ck_assert_uint_gt(d.calls, 0);
	printf("# kicks %" PRIu64 " calls %" PRIu64 " ring-full %" PRIu64
	       " cross-region %" PRIu64 "\n", sum.kicks, d.calls, sum.ring_full,
	       sum.cross_region_segs);
	blkwork_free(w);
	dev_fini(&d);
	guest_fini(&g);
}
END_TEST

START_TEST(test_workload_discard_unknown_skipped)
{
	struct blkq_opts qo = { .layout = _i, .num = 64, .indirect = true, .event_idx = true };
	struct blkwork_opts wo;
	struct blkwork_result res;
	struct blkwork *w;
	const uint8_t *data, *known;
	struct guest g;
	struct dev d;
	uint64_t bad = 1, unknown = 0;

	print_seed();
	guest_init(&g, 1, &qo);
	dev_init(&d, g.gm, g.q, g.nq);
	d.discard_garbage = true;
	workload_opts(&wo, &g);
	wo.discard_zeroes = false;
	wo.w_read = 40;
	wo.w_write = 20;
	wo.w_discard = 30;
	ck_assert_int_eq(blkwork_new(&wo, &w), 0);
	dev_start(&d);
	ck_assert_int_eq(blkwork_run(w, 1500, &res), 0);
	dev_stop(&d);
	ck_assert_uint_eq(res.bad_status, 0);
	ck_assert_uint_eq(res.mismatches, 0);
	ck_assert_uint_gt(res.discards, 0);
	ck_assert_uint_eq(res.flushes + res.write_zeroes, 0);
	blkwork_model(w, &data, &known);
	for (uint64_t s = 0; s < DISK_SIZE / 512; s++)
		if (!(known[s / 8] & (1u << (s % 8)))) {
			unknown++;
			/* The device's garbage is not what the model holds. */
			ck_assert_uint_eq(d.disk[s * 512], 0xdb);
		}
	ck_assert_uint_gt(unknown, 0);
	(void)data;
	ck_assert_int_eq(blkwork_check_fd(w, d.disk_fd, &bad), 0);
	ck_assert_uint_eq(bad, 0);
	blkwork_free(w);
	dev_fini(&d);
	guest_fini(&g);
}
END_TEST

/* ---- Negative controls ---- */

START_TEST(test_flipped_byte_reported)
{
	struct blkq_opts qo = { .layout = _i, .num = 64, .indirect = true };
	struct blkwork_opts wo;
	struct blkwork_result res;
	struct blkwork *w;
	struct guest g;
	struct dev d;

	print_seed();
	guest_init(&g, 1, &qo);
	dev_init(&d, g.gm, g.q, g.nq);
	d.mode = DEV_FLIP;
	d.flip_at = 50;
	workload_opts(&wo, &g);
	ck_assert_int_eq(blkwork_new(&wo, &w), 0);
	dev_start(&d);
	ck_assert_int_eq(blkwork_run(w, 1000, &res), 0);
	dev_stop(&d);
	ck_assert(d.flipped);
	ck_assert_uint_eq(res.bad_status, 0);
	ck_assert_uint_eq(res.mismatches, 1);
	ck_assert(res.have_mismatch);
	ck_assert_uint_eq(res.mm_queue, 0);
	ck_assert_uint_eq(res.mm_sector, d.flip_sector);
	ck_assert_uint_eq(res.mm_offset, d.flip_offset);
	blkwork_free(w);
	dev_fini(&d);
	guest_fini(&g);
}
END_TEST

/* Write a used entry by hand: id @id, length @len at the first used
 * position of @r. */
static void bogus_used_len(struct gring *r, uint16_t id, uint32_t len)
{
	struct gmem *gm = gring_gmem(r);
	struct svqiso_vring_addr a = gring_addr(r);
	uint16_t num = gring_num(r);

	if (gring_layout(r) == SVQISO_LAYOUT_SPLIT) {
		struct svq_split_used *u = gmem_hva(gm, a.device, 4 + 8u * num);

		svq_st32(&u->ring[0].id, id);
		svq_st32(&u->ring[0].len, len);
		svq_st16_release(&u->idx, 1);
	} else {
		struct svq_packed_desc *d = gmem_hva(gm, a.desc, 16u * num);

		svq_st16(&d[0].id, id);
		svq_st32(&d[0].len, len);
		svq_st16_release(&d[0].flags, SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED);
	}
}

static void bogus_used(struct blkq *q, uint16_t id)
{
	bogus_used_len(blkq_ring(q), id, 1);
}

static int ndone;

static void count_done(void *ctx, void *cookie, uint8_t status, uint32_t len)
{
	(void)ctx;
	(void)cookie;
	(void)status;
	(void)len;
	ndone++;
}

/* _i: layout * 2 + (0: id out of range, 1: id in range but not in flight) */
START_TEST(test_bogus_used_id_eproto)
{
	struct blkq_opts qo = { .layout = _i / 2, .num = 16 };
	struct blkq_req flush = { .type = VIRTIO_BLK_T_FLUSH };
	struct gmem *gm = gmem_new(GUEST_BASE, 1 << 20, 1);
	struct blkq *q;

	ck_assert_ptr_nonnull(gm);
	ck_assert_int_eq(blkq_new(gm, &qo, &q), 0);
	ck_assert_int_eq(blkq_submit(q, &flush), 0);	/* id 0 in flight */
	ck_assert_int_eq(blkq_collect(q, count_done, NULL), 0);
	bogus_used(q, _i & 1 ? 5 : 0x7fff);
	ndone = 0;
	ck_assert_int_eq(blkq_collect(q, count_done, NULL), -EPROTO);
	ck_assert_int_eq(ndone, 0);
	/* The queue stays failed. */
	ck_assert_int_eq(blkq_collect(q, count_done, NULL), -EPROTO);
	ck_assert_int_eq(blkq_submit(q, &flush), -EPROTO);
	blkq_free(q);
	gmem_free(gm);
}
END_TEST

START_TEST(test_used_idx_jump_eproto)
{
	struct blkq_opts qo = { .layout = SVQISO_LAYOUT_SPLIT, .num = 16 };
	struct blkq_req flush = { .type = VIRTIO_BLK_T_FLUSH };
	struct gmem *gm = gmem_new(GUEST_BASE, 1 << 20, 1);
	struct svq_split_used *u;
	struct blkq *q;

	ck_assert_ptr_nonnull(gm);
	ck_assert_int_eq(blkq_new(gm, &qo, &q), 0);
	ck_assert_int_eq(blkq_submit(q, &flush), 0);
	u = gmem_hva(gm, blkq_addr(q).device, 4 + 8 * 16);
	svq_st32(&u->ring[0].id, 0);
	svq_st32(&u->ring[1].id, 0);
	svq_st16_release(&u->idx, 2);	/* two used, one in flight */
	ck_assert_int_eq(blkq_collect(q, NULL, NULL), -EPROTO);
	blkq_free(q);
	gmem_free(gm);
}
END_TEST

START_TEST(test_silent_device_etimedout)
{
	struct blkq_opts qo = { .layout = _i, .num = 32 };
	struct blkwork_opts wo;
	struct blkwork_result res;
	struct blkwork *w;
	struct guest g;

	guest_init(&g, 1, &qo);
	workload_opts(&wo, &g);
	wo.timeout_ms = 150;
	ck_assert_int_eq(blkwork_new(&wo, &w), 0);
	ck_assert_int_eq(blkwork_run(w, 10, &res), -ETIMEDOUT);
	ck_assert_uint_ge(res.elapsed_ns, 150000000ull);
	ck_assert_uint_lt(res.elapsed_ns, 2000000000ull);
	ck_assert_uint_eq(res.reads + res.writes + res.flushes + res.discards +
			  res.write_zeroes, 0);
	blkwork_free(w);
	guest_fini(&g);
}
END_TEST

/* ---- Ring full ---- */

static uint64_t eventfd_peek(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, 8) != 8)
		return 0;
	return v;
}

/* _i: layout * 2 + indirect */
START_TEST(test_ring_full_enospc_writes_nothing)
{
	struct blkq_opts qo = { .layout = _i / 2, .num = 8, .indirect = _i & 1 };
	struct gmem *gm = gmem_new(GUEST_BASE, 1 << 20, 1);
	struct blkq_seg seg[4];
	struct blkq_req r = { .type = VIRTIO_BLK_T_OUT, .seg = seg, .nseg = 4 };
	struct blkq_stats st;
	uint8_t *before, *ram;
	struct blkq *q;
	uint64_t data;
	int ok = 0;

	ck_assert_ptr_nonnull(gm);
	ck_assert_int_eq(blkq_new(gm, &qo, &q), 0);
	data = gmem_alloc(gm, 4 * 512, 512);
	for (int i = 0; i < 4; i++)
		seg[i] = (struct blkq_seg){ data + i * 512, 512 };
	while (blkq_submit(q, &r) == 0)
		ok++;
	/* Direct chains take 6 of 8 descriptors; indirect ones one each,
	 * whichever way each was sent, so at least one fits. */
	ck_assert_int_ge(ok, 1);
	ck_assert_int_le(ok, 8);
	(void)eventfd_peek(blkq_kick_fd(q));
	ram = gmem_hva(gm, GUEST_BASE, 1 << 20);
	before = malloc(1 << 20);
	memcpy(before, ram, 1 << 20);
	blkq_get_stats(q, &st);
	ck_assert_int_eq(blkq_submit(q, &r), -ENOSPC);
	ck_assert_mem_eq(before, ram, 1 << 20);
	ck_assert_uint_eq(eventfd_peek(blkq_kick_fd(q)), 0);
	ck_assert_uint_eq(blkq_inflight(q), ok);
	blkq_get_stats(q, &st);
	ck_assert_uint_eq(st.submitted, ok);
	ck_assert_uint_ge(st.ring_full, 2);
	free(before);
	blkq_free(q);
	gmem_free(gm);
}
END_TEST

START_TEST(test_submit_bad_request_einval)
{
	struct blkq_opts qo = { .layout = _i, .num = 8, .max_segs = 2 };
	struct gmem *gm = gmem_new(GUEST_BASE, 1 << 20, 1);
	struct blkq_seg seg[3] = { { GUEST_BASE + 65536, 512 }, { GUEST_BASE + 66048, 512 },
				   { GUEST_BASE + 66560, 512 } };
	struct blkq_seg out = { GUEST_BASE + (1 << 20) - 256, 512 };
	struct blkq_seg zero = { GUEST_BASE + 65536, 0 };
	struct blkq *q;

	ck_assert_ptr_nonnull(gm);
	ck_assert_int_eq(blkq_new(gm, &qo, &q), 0);
	ck_assert_int_eq(blkq_submit(q, &(struct blkq_req){ .type = 99 }), -EINVAL);
	ck_assert_int_eq(blkq_submit(q, &(struct blkq_req){ .type = VIRTIO_BLK_T_IN }), -EINVAL);
	ck_assert_int_eq(blkq_submit(q, &(struct blkq_req){ .type = VIRTIO_BLK_T_IN,
							    .seg = seg, .nseg = 3 }), -EINVAL);
	ck_assert_int_eq(blkq_submit(q, &(struct blkq_req){ .type = VIRTIO_BLK_T_IN,
							    .seg = &out, .nseg = 1 }), -EINVAL);
	ck_assert_int_eq(blkq_submit(q, &(struct blkq_req){ .type = VIRTIO_BLK_T_IN,
							    .seg = &zero, .nseg = 1 }), -EINVAL);
	ck_assert_int_eq(blkq_submit(q, &(struct blkq_req){ .type = VIRTIO_BLK_T_FLUSH,
							    .seg = seg, .nseg = 1 }), -EINVAL);
	ck_assert_uint_eq(blkq_inflight(q), 0);
	ck_assert_int_eq(blkq_new(gm, &(struct blkq_opts){ .num = 12 }, &q), -EINVAL);
	blkq_free(q);
	gmem_free(gm);
}
END_TEST

/* ---- virtio-net queues ---- */

#define NET_NUM		64

struct net {
	struct gmem *gm;
	struct svqiso_mem *mem;
	struct netq *q[2];		/* RX, TX */
	struct svq_dev vq[2];		/* the device's view of them */
	struct rng rng;
	uint8_t frame[NETQ_FRAME_MAX];
	/* what came back */
	uint64_t rx_frames, rx_bad;
	uint32_t expect_len;
	uint8_t expect[NETQ_FRAME_MAX];
};

static void net_init(struct net *n, unsigned int variant)
{
	struct netq_opts o = { .layout = variant & 1, .num = NET_NUM,
			       .indirect = variant & 2, .event_idx = variant & 4,
			       .seed = test_seed };

	memset(n, 0, sizeof(*n));
	rng_seed(&n->rng, test_seed, 0x6e6574);
	n->gm = gmem_new(GUEST_BASE, REGION_SIZE * 2, 2);
	ck_assert_ptr_nonnull(n->gm);
	/* Buffers across the region boundary too. */
	ck_assert_int_eq(gmem_set_alloc_top(n->gm, GUEST_BASE + REGION_SIZE -
					    NET_NUM * 1536 / 2), 0);
	for (unsigned int i = 0; i < 2; i++) {
		o.role = i == 0 ? NETQ_RX : NETQ_TX;
		ck_assert_int_eq(netq_new(n->gm, &o, &n->q[i]), 0);
	}
	ck_assert_int_eq(svqiso_mem_new(NULL, &n->mem), 0);
	for (unsigned int i = 0; i < gmem_nr_regions(n->gm); i++) {
		struct svqiso_mem_region r;

		ck_assert_int_eq(gmem_region(n->gm, i, &r), 0);
		ck_assert_int_eq(svqiso_mem_add_region(n->mem, &r), 0);
	}
	for (unsigned int i = 0; i < 2; i++) {
		struct gring *r = netq_ring(n->q[i]);
		struct svqiso_vring_addr a = gring_addr(r);
		struct svq_dev_cfg c = {
			.layout = gring_layout(r), .num = gring_num(r),
			.flags = (gring_event_idx(r) ? SVQ_RING_F_EVENT_IDX : 0) |
				 (gring_indirect(r) ? SVQ_RING_F_INDIRECT : 0),
			.desc = a.desc, .driver = a.driver, .device = a.device,
			.mem = svqiso_mem_ops(), .mem_ctx = n->mem,
			.base = gring_fresh_base(r), .name = "net",
		};

		ck_assert_int_eq(svq_dev_init(&n->vq[i], &c), 0);
	}
}

static void net_fini(struct net *n)
{
	for (unsigned int i = 0; i < 2; i++) {
		svq_dev_fini(&n->vq[i]);
		netq_free(n->q[i]);
	}
	svqiso_mem_free(n->mem);
	gmem_free(n->gm);
}

/*
 * The device: every frame waiting on TX goes back on RX, behind a header
 * of zeros, as a port looped back does. Return: frames moved.
 */
static unsigned int net_loop_back(struct net *n)
{
	static struct svq_seg ts[8], rs[8];
	uint8_t buf[VIRTIO_NET_HDR_LEN + NETQ_FRAME_MAX];
	unsigned int moved = 0;

	for (;;) {
		struct svq_elem t = { .max_seg = 8, .seg = ts };
		struct svq_elem r = { .max_seg = 8, .seg = rs };
		uint32_t len;

		if (svq_dev_pop(&n->vq[1], &t) != 1)
			break;
		ck_assert_uint_eq(t.nout, t.nseg);	/* readable only */
		ck_assert_uint_le(t.out_bytes, sizeof(buf));
		ck_assert(stream(&t, 0, t.nseg, 0, buf, t.out_bytes, false));
		ck_assert_int_eq(svq_dev_pop(&n->vq[0], &r), 1);
		ck_assert_uint_eq(r.nout, 0);		/* writable only */
		len = t.out_bytes;
		ck_assert_uint_le(len, r.in_bytes);
		memset(buf, 0, VIRTIO_NET_HDR_LEN);
		ck_assert(stream(&r, 0, r.nseg, 0, buf, len, true));
		ck_assert_int_eq(svq_dev_push(&n->vq[1], t.id, 0), 0);
		ck_assert_int_eq(svq_dev_push(&n->vq[0], r.id, len), 0);
		moved++;
	}
	svq_dev_flush(&n->vq[0]);
	svq_dev_flush(&n->vq[1]);
	return moved;
}

static void net_rx(void *ctx, const struct virtio_net_hdr_v1 *hdr,
		   const uint8_t *frame, uint32_t len)
{
	struct net *n = ctx;

	n->rx_frames++;
	if (hdr->flags || hdr->gso_type || len != n->expect_len ||
	    memcmp(frame, n->expect, len))
		n->rx_bad++;
}

/* _i: layout | indirect << 1 | event_idx << 2 */
START_TEST(test_net_loop_back_frames_intact)
{
	struct net n;
	struct gring_stats st;

	print_seed();
	net_init(&n, _i);
	ck_assert_int_eq(netq_rx_fill(n.q[0]), gring_inflight(netq_ring(n.q[0])));
	ck_assert_int_gt(gring_inflight(netq_ring(n.q[0])), 0);
	for (unsigned int k = 0; k < 2000; k++) {
		n.expect_len = rng_range(&n.rng, 1, NETQ_FRAME_MAX);
		for (uint32_t b = 0; b < n.expect_len; b++)
			n.expect[b] = (uint8_t)rng_next(&n.rng);
		ck_assert_int_eq(netq_tx_send(n.q[1], n.expect, n.expect_len), 0);
		ck_assert_uint_eq(net_loop_back(&n), 1);
		ck_assert_int_eq(netq_tx_collect(n.q[1]), 1);
		ck_assert_int_eq(netq_rx_collect(n.q[0], net_rx, &n), 1);
	}
	ck_assert_uint_eq(n.rx_frames, 2000);
	ck_assert_uint_eq(n.rx_bad, 0);
	/* Every RX buffer is posted again; every chain shape went out. */
	ck_assert_int_eq(netq_rx_fill(n.q[0]), 0);
	gring_get_stats(netq_ring(n.q[1]), &st);
	ck_assert_uint_eq(st.completed, 2000);
	if (_i & 2)
		ck_assert_uint_gt(st.indirect, 0);
	ck_assert_uint_gt(st.direct, 0);
	net_fini(&n);
}
END_TEST

/* A TX used length up to the frame's is counted, not refused. */
START_TEST(test_net_tx_used_len_counted)
{
	struct gring_stats st;
	struct net n;
	uint8_t f[60] = { 1 };

	net_init(&n, _i);
	ck_assert_int_eq(netq_tx_send(n.q[1], f, sizeof(f)), 0);	/* id 0 */
	bogus_used_len(netq_ring(n.q[1]), 0, VIRTIO_NET_HDR_LEN + sizeof(f));
	ck_assert_int_eq(netq_tx_collect(n.q[1]), 1);
	gring_get_stats(netq_ring(n.q[1]), &st);
	ck_assert_uint_eq(st.len_past_writable, 1);
	net_fini(&n);
}
END_TEST

START_TEST(test_net_full_tx_ring_enospc)
{
	struct net n;
	uint8_t f[60] = { 1 };
	int sent = 0;

	net_init(&n, _i);
	while (netq_tx_send(n.q[1], f, sizeof(f)) == 0)
		sent++;
	ck_assert_int_ge(sent, NET_NUM / 3);
	ck_assert_int_le(sent, NET_NUM);
	ck_assert_int_eq(netq_tx_send(n.q[1], f, sizeof(f)), -ENOSPC);
	ck_assert_int_eq(netq_tx_send(n.q[1], f, 0), -EINVAL);
	ck_assert_int_eq(netq_tx_send(n.q[1], f, NETQ_FRAME_MAX + 1), -EINVAL);
	ck_assert_int_eq(netq_tx_send(n.q[0], f, sizeof(f)), -EINVAL);
	ck_assert_int_eq(netq_rx_fill(n.q[1]), -EINVAL);
	ck_assert_int_eq(netq_tx_collect(n.q[0]), -EINVAL);
	net_fini(&n);
}
END_TEST

/*
 * A hostile device: _i / 2 picks the lie (RX: a length past the buffer,
 * shorter than the header, an id not posted; TX: a length past the
 * frame), _i & 1 the layout. Each fails the queue with -EPROTO, calls
 * nothing, and keeps it failed.
 */
START_TEST(test_net_bad_used_entry_eproto)
{
	unsigned int lie = _i / 2;
	bool tx = lie == 3;
	struct net n;
	uint8_t f[60] = { 1 };
	struct netq *q;

	net_init(&n, _i & 1);
	q = n.q[tx];
	if (tx)
		ck_assert_int_eq(netq_tx_send(q, f, sizeof(f)), 0);	/* id 0 */
	else
		ck_assert_int_gt(netq_rx_fill(q), 0);
	switch (lie) {
	case 0:
		bogus_used_len(netq_ring(q), 0, VIRTIO_NET_HDR_LEN + NETQ_FRAME_MAX + 1);
		break;
	case 1:
		bogus_used_len(netq_ring(q), 0, VIRTIO_NET_HDR_LEN - 1);
		break;
	case 2:
		bogus_used_len(netq_ring(q), NET_NUM, 64);
		break;
	case 3:
		bogus_used_len(netq_ring(q), 0, VIRTIO_NET_HDR_LEN + sizeof(f) + 1);
		break;
	}
	if (tx) {
		ck_assert_int_eq(netq_tx_collect(q), -EPROTO);
		ck_assert_int_eq(netq_tx_collect(q), -EPROTO);
		ck_assert_int_eq(netq_tx_send(q, f, sizeof(f)), -EPROTO);
	} else {
		ck_assert_int_eq(netq_rx_collect(q, net_rx, &n), -EPROTO);
		ck_assert_int_eq(netq_rx_collect(q, net_rx, &n), -EPROTO);
		ck_assert_int_eq(netq_rx_fill(q), -EPROTO);
		ck_assert_uint_eq(n.rx_frames, 0);
	}
	net_fini(&n);
}
END_TEST

static Suite *guest_suite(void)
{
	Suite *s = suite_create("guest");
	TCase *tc;

	tc = tcase_create("gmem");
	tcase_add_test(tc, test_gmem_regions_adjacent_gpa_apart_in_host);
	suite_add_tcase(s, tc);

	tc = tcase_create("workload");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_workload_matrix_no_mismatch, 0, 8);
	tcase_add_loop_test(tc, test_workload_discard_unknown_skipped, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("negative-control");
	tcase_add_loop_test(tc, test_flipped_byte_reported, 0, SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_bogus_used_id_eproto, 0, 2 * SVQISO_NR_LAYOUTS);
	tcase_add_test(tc, test_used_idx_jump_eproto);
	tcase_add_loop_test(tc, test_silent_device_etimedout, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("submit");
	tcase_add_loop_test(tc, test_ring_full_enospc_writes_nothing, 0, 2 * SVQISO_NR_LAYOUTS);
	tcase_add_loop_test(tc, test_submit_bad_request_einval, 0, SVQISO_NR_LAYOUTS);
	suite_add_tcase(s, tc);

	tc = tcase_create("net");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_net_loop_back_frames_intact, 0, 8);
	tcase_add_loop_test(tc, test_net_full_tx_ring_enospc, 0, 2);
	tcase_add_loop_test(tc, test_net_tx_used_len_counted, 0, 2);
	tcase_add_loop_test(tc, test_net_bad_used_entry_eproto, 0, 8);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *env = getenv("SVQ_TEST_SEED");
	SRunner *sr;
	int failed;

	if (env && *env)
		test_seed = strtoull(env, NULL, 0);
	sr = srunner_create(guest_suite());
	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
