/* SPDX-License-Identifier: MIT */
/*
 * A verifying virtio-blk workload over blkqs on the calling thread.
 *
 * The model holds every byte of the disk and a "known" bit per sector.
 * Requests in flight never overlap (flush aside), so the order in which the
 * device completes them cannot change the outcome: the model is updated when
 * a request completes OK, and a read is checked against it on completion.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

#define SECTOR		BLK_SECTOR_SIZE
#define DZ_MAX		(1u << 20)	/* discard/write-zeroes range limit */
#define TICK_EVERY	256
#define PLACE_TRIES	8
#define POISON		0xa5

enum wtype { W_READ, W_WRITE, W_FLUSH, W_DISCARD, W_WZ, W_NR };

struct wslot {
	bool busy;
	uint8_t type;			/* enum wtype */
	unsigned int queue;
	uint64_t off, len;		/* byte range; len 0 for flush */
	uint64_t data_gpa;		/* max_len bytes of guest RAM */
	uint8_t *buf;			/* max_len bytes: write data, read copy */
	struct blkq_seg *seg;		/* [max_segs] */
};

struct wqueue {
	struct blkq *q;
	struct wslot *slots;		/* [depth] */
	unsigned int busy;
};

struct blkwork {
	struct blkwork_opts o;
	unsigned int weight[W_NR], wsum;
	struct wqueue *qs;
	uint8_t *model;
	uint8_t *known;
	uint64_t rng;
	struct blkwork_result *res;	/* of the run in progress */
	uint64_t completed;		/* this run */
	unsigned int inflight;
};

/* splitmix64 */
static uint64_t rnd(struct blkwork *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n), n >= 1. */
static uint64_t below(struct blkwork *w, uint64_t n)
{
	return rnd(w) % n;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static bool known(const struct blkwork *w, uint64_t s)
{
	return w->known[s / 8] & (1u << (s % 8));
}

static void set_known(struct blkwork *w, uint64_t off, uint64_t len, bool on)
{
	for (uint64_t s = off / SECTOR; s < (off + len) / SECTOR; s++) {
		if (on)
			w->known[s / 8] |= 1u << (s % 8);
		else
			w->known[s / 8] &= ~(1u << (s % 8));
	}
}

void blkwork_opts_init(struct blkwork_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->depth = 16;
	o->min_len = SECTOR;
	o->max_len = 128 << 10;
	o->max_segs = 8;
	o->discard_zeroes = true;
	o->discard_align = 64 << 10;
	o->timeout_ms = 10000;
	o->init_fd = -1;
}

static int load(struct blkwork *w, int fd)
{
	uint64_t done = 0;

	while (done < w->o.capacity) {
		ssize_t n = pread(fd, w->model + done, w->o.capacity - done, done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += n;
	}
	return 0;
}

static int setup_queue(struct blkwork *w, struct wqueue *wq, struct blkq *q)
{
	struct blkwork_opts *o = &w->o;
	struct gmem *gm = blkq_gmem(q);
	uint64_t gpa;

	wq->q = q;
	wq->slots = calloc(o->depth, sizeof(*wq->slots));
	if (!wq->slots)
		return -ENOMEM;
	/* One guest area per queue: it may well straddle a region boundary. */
	gpa = gmem_alloc(gm, (uint64_t)o->depth * o->max_len, 4096);
	if (!gpa)
		return -ENOMEM;
	for (unsigned int i = 0; i < o->depth; i++) {
		struct wslot *s = &wq->slots[i];

		s->queue = wq - w->qs;
		s->data_gpa = gpa + (uint64_t)i * o->max_len;
		s->buf = malloc(o->max_len);
		s->seg = calloc(o->max_segs, sizeof(*s->seg));
		if (!s->buf || !s->seg)
			return -ENOMEM;
	}
	return 0;
}

int blkwork_new(const struct blkwork_opts *opts, struct blkwork **out)
{
	static const unsigned int dflt[W_NR] = { 44, 44, 4, 4, 4 };
	struct blkwork_opts *o;
	struct blkwork *w;
	unsigned int i;
	int err;

	if (!opts || !out || !opts->queues || !opts->nqueues)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->o = *opts;
	o = &w->o;
	if (!o->depth)
		o->depth = 16;
	if (!o->min_len)
		o->min_len = SECTOR;
	if (!o->max_len)
		o->max_len = 128 << 10;
	if (!o->max_segs)
		o->max_segs = 8;
	if (!o->discard_align)
		o->discard_align = 64 << 10;
	if (!o->timeout_ms)
		o->timeout_ms = 10000;
	if (!o->seed)
		o->seed = now_ns() ^ ((uint64_t)getpid() << 32);
	w->weight[W_READ] = o->w_read;
	w->weight[W_WRITE] = o->w_write;
	w->weight[W_FLUSH] = o->w_flush;
	w->weight[W_DISCARD] = o->w_discard;
	w->weight[W_WZ] = o->w_write_zeroes;
	for (i = 0; i < W_NR; i++)
		w->wsum += w->weight[i];
	if (!w->wsum) {
		memcpy(w->weight, dflt, sizeof(dflt));
		for (i = 0; i < W_NR; i++)
			w->wsum += w->weight[i];
	}
	w->rng = o->seed;
	err = -EINVAL;
	if (o->min_len % SECTOR || o->max_len % SECTOR || o->min_len > o->max_len ||
	    !o->capacity || o->capacity % SECTOR || o->max_len > o->capacity ||
	    o->discard_align % SECTOR || o->discard_align > DZ_MAX)
		goto fail;
	for (i = 0; i < o->nqueues; i++)
		if (!o->queues[i] || blkq_gmem(o->queues[i]) != blkq_gmem(o->queues[0]) ||
		    blkq_max_segs(o->queues[i]) < o->max_segs)
			goto fail;
	err = -ENOMEM;
	w->o.queues = calloc(o->nqueues, sizeof(*o->queues));
	w->qs = calloc(o->nqueues, sizeof(*w->qs));
	w->model = calloc(1, o->capacity);
	w->known = malloc((o->capacity / SECTOR + 7) / 8);
	if (!w->o.queues || !w->qs || !w->model || !w->known)
		goto fail;
	memcpy(w->o.queues, opts->queues, o->nqueues * sizeof(*o->queues));
	memset(w->known, 0xff, (o->capacity / SECTOR + 7) / 8);
	for (i = 0; i < o->nqueues; i++) {
		err = setup_queue(w, &w->qs[i], o->queues[i]);
		if (err)
			goto fail;
	}
	if (o->init_fd >= 0) {
		err = load(w, o->init_fd);
		if (err)
			goto fail;
	}
	*out = w;
	return 0;
fail:
	blkwork_free(w);
	return err;
}

void blkwork_free(struct blkwork *w)
{
	if (!w)
		return;
	for (unsigned int i = 0; w->qs && i < w->o.nqueues; i++) {
		struct wqueue *wq = &w->qs[i];

		for (unsigned int j = 0; wq->slots && j < w->o.depth; j++) {
			free(wq->slots[j].buf);
			free(wq->slots[j].seg);
		}
		free(wq->slots);
	}
	free(w->qs);
	free(w->o.queues);
	free(w->model);
	free(w->known);
	free(w);
}

uint64_t blkwork_seed(const struct blkwork *w)
{
	return w->o.seed;
}

void blkwork_model(const struct blkwork *w, const uint8_t **data,
		   const uint8_t **known_bits)
{
	*data = w->model;
	*known_bits = w->known;
}

/* ---- Making requests ---- */

static enum wtype pick_type(struct blkwork *w)
{
	unsigned int r = below(w, w->wsum), t;

	for (t = 0; t < W_NR - 1; t++) {
		if (r < w->weight[t])
			break;
		r -= w->weight[t];
	}
	return t;
}

static unsigned int log2u(uint64_t v)
{
	return 63 - __builtin_clzll(v);
}

/* Log-uniform sector count in [min, max]: a random octave, then uniform in it. */
static uint64_t pick_sectors(struct blkwork *w)
{
	uint64_t lo = w->o.min_len / SECTOR, hi = w->o.max_len / SECTOR, n;
	unsigned int b = log2u(lo) + below(w, log2u(hi) - log2u(lo) + 1);

	n = (1ull << b) + below(w, 1ull << b);
	return n < lo ? lo : n > hi ? hi : n;
}

static bool overlaps(const struct blkwork *w, uint64_t off, uint64_t len)
{
	for (unsigned int i = 0; i < w->o.nqueues; i++) {
		const struct wqueue *wq = &w->qs[i];

		for (unsigned int j = 0; j < w->o.depth; j++) {
			const struct wslot *s = &wq->slots[j];

			if (s->busy && s->len && off < s->off + s->len && s->off < off + len)
				return true;
		}
	}
	return false;
}

/* A byte range for @type, clear of everything in flight; false if none found. */
static bool place(struct blkwork *w, enum wtype type, uint64_t *off, uint64_t *len)
{
	uint64_t cap = w->o.capacity, align = w->o.discard_align;

	for (int t = 0; t < PLACE_TRIES; t++) {
		if (type == W_DISCARD || type == W_WZ) {
			uint64_t units = cap / align, max = DZ_MAX / align, n;

			if (max > units)
				max = units;
			n = 1 + below(w, max);
			*off = below(w, units - n + 1) * align;
			*len = n * align;
		} else {
			uint64_t n = pick_sectors(w);

			*off = below(w, cap / SECTOR - n + 1) * SECTOR;
			*len = n * SECTOR;
		}
		if (!overlaps(w, *off, *len))
			return true;
	}
	return false;
}

/* Cut [0, len) into 1..max_segs pieces of the slot's buffer. */
static unsigned int cut(struct blkwork *w, struct wslot *s)
{
	unsigned int k = 1 + below(w, w->o.max_segs), i;
	uint64_t left = s->len, at = 0;

	if (k > s->len)
		k = s->len;
	for (i = 0; i < k; i++) {
		uint64_t n = i + 1 == k ? left : 1 + below(w, left - (k - i - 1));

		s->seg[i].gpa = s->data_gpa + at;
		s->seg[i].len = n;
		at += n;
		left -= n;
	}
	return k;
}

static void fill_random(struct blkwork *w, uint8_t *p, uint64_t len)
{
	uint64_t i, v;

	for (i = 0; i + 8 <= len; i += 8) {
		v = rnd(w);
		memcpy(p + i, &v, 8);
	}
	v = rnd(w);
	memcpy(p + i, &v, len - i);
}

/*
 * Issue one request on slot @s of queue @wq.
 * Return: 1 issued, 0 nothing to issue now (no room, or no clear range),
 * -errno.
 */
static int issue(struct blkwork *w, struct wqueue *wq, struct wslot *s)
{
	static const uint32_t vt[W_NR] = {
		VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
		VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES,
	};
	enum wtype type = pick_type(w);
	struct blkq_req r = { .cookie = s };
	int err;

	if ((type == W_DISCARD || type == W_WZ) && w->o.capacity < w->o.discard_align)
		type = W_WRITE;
	s->off = s->len = 0;
	if (type != W_FLUSH && !place(w, type, &s->off, &s->len))
		return 0;
	s->type = type;
	r.type = vt[type];
	r.sector = s->off / SECTOR;
	switch (type) {
	case W_READ:
		memset(s->buf, POISON, s->len);
		if (gmem_write(blkq_gmem(wq->q), s->data_gpa, s->buf, s->len))
			return -EFAULT;
		r.seg = s->seg;
		r.nseg = cut(w, s);
		break;
	case W_WRITE:
		fill_random(w, s->buf, s->len);
		if (gmem_write(blkq_gmem(wq->q), s->data_gpa, s->buf, s->len))
			return -EFAULT;
		r.seg = s->seg;
		r.nseg = cut(w, s);
		break;
	case W_FLUSH:
		break;
	case W_DISCARD:
	case W_WZ:
		r.nr_sectors = s->len / SECTOR;
		r.dz_flags = type == W_WZ && (rnd(w) & 1) ?
			     VIRTIO_BLK_WRITE_ZEROES_F_UNMAP : 0;
		break;
	default:
		return -EINVAL;
	}
	err = blkq_submit(wq->q, &r);
	if (err == -ENOSPC)
		return 0;
	if (err)
		return err;
	s->busy = true;
	wq->busy++;
	w->inflight++;
	return 1;
}

/* ---- Completions ---- */

static void check_read(struct blkwork *w, struct wslot *s)
{
	struct blkwork_result *res = w->res;

	if (gmem_read(blkq_gmem(w->qs[s->queue].q), s->data_gpa, s->buf, s->len)) {
		res->mismatches += s->len / SECTOR;
		return;
	}
	for (uint64_t o = 0; o < s->len; o += SECTOR) {
		uint64_t sec = (s->off + o) / SECTOR;
		const uint8_t *want = w->model + s->off + o, *got = s->buf + o;

		if (!known(w, sec) || !memcmp(want, got, SECTOR))
			continue;
		if (!res->have_mismatch) {
			uint32_t b = 0;

			while (want[b] == got[b])
				b++;
			res->have_mismatch = true;
			res->mm_queue = s->queue;
			res->mm_sector = sec;
			res->mm_offset = b;
		}
		res->mismatches++;
	}
}

static void done(void *ctx, void *cookie, uint8_t status, uint32_t used_len)
{
	struct blkwork *w = ctx;
	struct wslot *s = cookie;
	struct blkwork_result *res = w->res;

	(void)used_len;
	if (status != VIRTIO_BLK_S_OK) {
		res->bad_status++;
		/* A failed write may have landed partly. */
		if (s->type != W_READ && s->type != W_FLUSH)
			set_known(w, s->off, s->len, false);
	} else {
		switch (s->type) {
		case W_READ:
			check_read(w, s);
			res->reads++;
			res->bytes_read += s->len;
			break;
		case W_WRITE:
			memcpy(w->model + s->off, s->buf, s->len);
			set_known(w, s->off, s->len, true);
			res->writes++;
			res->bytes_written += s->len;
			break;
		case W_FLUSH:
			res->flushes++;
			break;
		case W_DISCARD:
			if (w->o.discard_zeroes)
				memset(w->model + s->off, 0, s->len);
			set_known(w, s->off, s->len, w->o.discard_zeroes);
			res->discards++;
			break;
		case W_WZ:
			memset(w->model + s->off, 0, s->len);
			set_known(w, s->off, s->len, true);
			res->write_zeroes++;
			break;
		}
	}
	s->busy = false;
	w->qs[s->queue].busy--;
	w->inflight--;
	w->completed++;
	if (w->o.tick && w->completed % TICK_EVERY == 0)
		w->o.tick(w->o.tick_ctx, w->completed);
}

/* Fill every queue up to depth while requests remain. */
static int refill(struct blkwork *w, uint64_t *left)
{
	for (unsigned int i = 0; i < w->o.nqueues && *left; i++) {
		struct wqueue *wq = &w->qs[i];

		for (unsigned int j = 0; j < w->o.depth && *left; j++) {
			int rc;

			if (wq->slots[j].busy)
				continue;
			rc = issue(w, wq, &wq->slots[j]);
			if (rc < 0)
				return rc;
			if (!rc)
				break;
			(*left)--;
		}
	}
	return 0;
}

/*
 * Queue @i's turn: the VMM's wake (@polled: whatever it says) or a read of
 * the interrupt eventfd @fd, drained before collecting so that a later
 * interrupt is seen; then the collect, which moves *@progress when it took
 * something. Return: 0 or -errno.
 */
static int queue_turn(struct blkwork *w, unsigned int i, int fd, bool polled,
		      uint64_t *progress)
{
	uint64_t cnt;
	int got;

	if (w->o.wake) {
		got = w->o.wake(w->o.wake_ctx, i);
		if (got < 0)
			return got;
		if (!got && !polled)
			return 0;	/* no interrupt */
	} else if (read(fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN) {
		return -errno;
	}
	got = blkq_collect(w->qs[i].q, done, w);
	if (got < 0)
		return got;
	if (got)
		*progress = now_ns();
	return 0;
}

int blkwork_run(struct blkwork *w, uint64_t nrequests, struct blkwork_result *res)
{
	unsigned int nq = w->o.nqueues, i;
	uint64_t start = now_ns(), progress = start, left = nrequests;
	struct pollfd *pfd;
	int err = 0;

	memset(res, 0, sizeof(*res));
	res->seed = w->o.seed;
	w->res = res;
	w->completed = 0;
	pfd = calloc(nq, sizeof(*pfd));
	if (!pfd)
		return -ENOMEM;
	for (i = 0; i < nq; i++) {
		pfd[i].fd = w->o.wait_fds ? w->o.wait_fds[i] : blkq_call_fd(w->qs[i].q);
		pfd[i].events = POLLIN;
	}
	while (left || w->inflight) {
		uint64_t now, deadline;
		int n;

		err = refill(w, &left);
		if (err)
			break;
		if (!w->inflight) {
			/* Nothing in flight blocks a request: it cannot fit at all. */
			if (left)
				err = -EINVAL;
			break;
		}
		now = now_ns();
		deadline = progress + w->o.timeout_ms * 1000000ull;
		if (now >= deadline) {
			err = -ETIMEDOUT;
			break;
		}
		if (w->o.poll && w->o.wake) {
			for (i = 0; i < nq && !err; i++)
				err = queue_turn(w, i, -1, true, &progress);
			if (err)
				break;
			continue;
		}
		n = poll(pfd, nq, (int)((deadline - now + 999999) / 1000000));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		for (i = 0; i < nq && n > 0 && !err; i++)
			if (pfd[i].revents & POLLIN)
				err = queue_turn(w, i, pfd[i].fd, false, &progress);
		if (err)
			break;
	}
	free(pfd);
	res->elapsed_ns = now_ns() - start;
	w->res = NULL;
	return err;
}

int blkwork_check_fd(struct blkwork *w, int fd, uint64_t *mismatches)
{
	size_t chunk = 1 << 20;
	uint8_t *buf = malloc(chunk);
	uint64_t off = 0, bad = 0;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	while (off < w->o.capacity) {
		size_t want = w->o.capacity - off < chunk ? w->o.capacity - off : chunk;
		ssize_t n = pread(fd, buf, want, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if ((size_t)n != want) {
			err = -EIO;
			break;
		}
		for (size_t o = 0; o < want; o += SECTOR)
			if (known(w, (off + o) / SECTOR) &&
			    memcmp(buf + o, w->model + off + o, SECTOR))
				bad++;
		off += want;
	}
	free(buf);
	if (!err)
		*mismatches = bad;
	return err;
}
