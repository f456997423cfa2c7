/* SPDX-License-Identifier: MIT */
/*
 * An unmodified-style backend for the isolation harness: a separate program
 * that only ever receives what a vhost-user backend behind svqiso receives —
 * isolated regions (fd, iova, size, offset, uaddr), the shadow ring's
 * description, and the kick and call eventfds (proto.h) — and runs the
 * "echo-hash" device (echo.h) on the shadow ring with the library's device
 * role, translating every address through its own mappings.
 *
 *	backend --sock=FD [--mode=NAME] [--after=N] [--seed=S] [--max-indirect=N]
 *
 * --mode picks a misbehaviour (proto.h, HB_MODES) done once, after N chains
 * were completed honestly; then the device stops processing the ring ("stuck")
 * but keeps answering the socket. len-overflow and scribble instead go on
 * running and misbehave on every chain (every batch) from then on. Honest
 * completions come in batches of random size, pushed in a random order and
 * published in one or two parts; hostile modes other than those two take
 * everything available as one batch and complete it in order.
 *
 * Exit status: 0 when the socket closes; 1 on bad arguments or a protocol
 * error. Diagnostics go to stderr; stdout is left to the test's TAP stream.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "vring.h"
#include "echo.h"
#include "proto.h"

#define MAX_REGIONS	4096
#define MAX_SEGS	4096
#define IDX_JUMP	1000

struct region {
	uint64_t iova;
	uint64_t size;
	uint64_t uaddr;
	uint8_t *hva;
	int fd;
};

struct done {
	uint16_t id;
	uint32_t len;		/* reported */
};

struct backend {
	int sock;
	int kick, call;
	struct region reg[MAX_REGIONS];
	unsigned int nreg;
	unsigned int last;		/* translate cache */

	bool ring_ok;
	struct hb_ring ring;
	struct svq_dev vq;
	struct svq_elem e;
	struct svq_seg *seg;
	struct done *batch;		/* [num] */
	uint8_t *seen;			/* [num]: id was ever popped */
	uint16_t max_indirect;

	int mode;
	bool armed;
	bool stuck;
	uint64_t after;
	uint64_t rng;
	uint64_t done_chains;		/* completed, honestly or not */

	struct hb_stats st;
};

static const char *prog = "backend";

static void warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnx(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s[%d]: ", prog, (int)getpid());
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t rnd(struct backend *b)
{
	return echo_mix(b->rng += 0x9e3779b97f4a7c15ull);
}

static uint32_t rnd_below(struct backend *b, uint32_t n)
{
	return (uint32_t)(((rnd(b) >> 32) * n) >> 32);
}

/* ---- Regions: the backend's own address space ---- */

static struct region *find_iova(struct backend *b, uint64_t addr)
{
	unsigned int i;

	if (b->last < b->nreg && addr - b->reg[b->last].iova < b->reg[b->last].size)
		return &b->reg[b->last];
	for (i = 0; i < b->nreg; i++) {
		if (addr - b->reg[i].iova < b->reg[i].size) {
			b->last = i;
			return &b->reg[i];
		}
	}
	return NULL;
}

static void *translate(void *ctx, uint64_t addr, uint64_t *len)
{
	struct region *r = find_iova(ctx, addr);
	uint64_t off;

	if (!r)
		return NULL;
	off = addr - r->iova;
	if (*len > r->size - off)
		*len = r->size - off;
	return r->hva + off;
}

static const struct svqiso_mem_ops mem_ops = {
	.sz = sizeof(struct svqiso_mem_ops),
	.translate = translate,
};

/* Frontend address -> iova, as a vhost-user backend maps SET_VRING_ADDR. */
static int uaddr_to_iova(struct backend *b, uint64_t uaddr, uint64_t *iova)
{
	unsigned int i;

	for (i = 0; i < b->nreg; i++) {
		if (uaddr - b->reg[i].uaddr < b->reg[i].size) {
			*iova = b->reg[i].iova + (uaddr - b->reg[i].uaddr);
			return 0;
		}
	}
	return -EFAULT;
}

static int region_add(struct backend *b, const struct hb_region *r, int fd)
{
	unsigned int i;
	void *p;

	if (fd < 0 || !r->size || r->iova + r->size < r->iova)
		return -EINVAL;
	if (b->nreg == MAX_REGIONS)
		return -ENOSPC;
	for (i = 0; i < b->nreg; i++)
		if (r->iova < b->reg[i].iova + b->reg[i].size &&
		    b->reg[i].iova < r->iova + r->size)
			return -EEXIST;
	p = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, r->offset);
	if (p == MAP_FAILED)
		return -errno;
	b->reg[b->nreg++] = (struct region){
		.iova = r->iova, .size = r->size, .uaddr = r->uaddr,
		.hva = p, .fd = fd,
	};
	b->st.region_adds++;
	b->st.regions++;
	b->st.region_bytes += r->size;
	return 0;
}

static int region_del(struct backend *b, uint64_t iova)
{
	unsigned int i;

	for (i = 0; i < b->nreg; i++) {
		if (b->reg[i].iova != iova)
			continue;
		munmap(b->reg[i].hva, b->reg[i].size);
		close(b->reg[i].fd);
		b->st.region_dels++;
		b->st.regions--;
		b->st.region_bytes -= b->reg[i].size;
		b->reg[i] = b->reg[--b->nreg];
		return 0;
	}
	return -ENOENT;
}

/* ---- The device ---- */

static void ring_fini(struct backend *b)
{
	if (!b->ring_ok)
		return;
	svq_dev_fini(&b->vq);
	free(b->batch);
	free(b->seen);
	b->batch = NULL;
	b->seen = NULL;
	close(b->kick);
	close(b->call);
	b->kick = b->call = -1;
	b->ring_ok = false;
}

static int ring_init(struct backend *b, const struct hb_ring *r, const int *fds)
{
	struct svq_dev_cfg cfg;
	uint64_t a[3];
	int err;

	if (b->ring_ok) {
		/* A second ring message is a device reset: honest from now on. */
		ring_fini(b);
		b->armed = false;
		b->stuck = false;
	}
	b->kick = fds[0];
	b->call = fds[1];
	if (uaddr_to_iova(b, r->udesc, &a[0]) || uaddr_to_iova(b, r->udriver, &a[1]) ||
	    uaddr_to_iova(b, r->udevice, &a[2])) {
		warnx("ring: a uaddr is in no region");
		err = -EFAULT;
		goto fail;
	}
	if (a[0] != r->desc || a[1] != r->driver || a[2] != r->device) {
		warnx("ring: uaddr and iova disagree: desc %#" PRIx64 "/%#" PRIx64
		      " driver %#" PRIx64 "/%#" PRIx64 " device %#" PRIx64 "/%#" PRIx64,
		      a[0], r->desc, a[1], r->driver, a[2], r->device);
		err = -EFAULT;
		goto fail;
	}
	cfg = (struct svq_dev_cfg){
		.layout = r->layout,
		.num = r->num,
		.flags = r->features,
		.desc = r->desc,
		.driver = r->driver,
		.device = r->device,
		.mem = &mem_ops,
		.mem_ctx = b,
		.max_indirect = b->max_indirect,
		.name = "backend",
	};
	memset(&b->vq, 0, sizeof(b->vq));
	err = svq_dev_init(&b->vq, &cfg);
	if (err) {
		warnx("ring: svq_dev_init: %s", strerror(-err));
		goto fail;
	}
	b->batch = calloc(r->num, sizeof(*b->batch));
	b->seen = calloc(r->num, 1);
	if (!b->batch || !b->seen) {
		svq_dev_fini(&b->vq);
		free(b->batch);
		free(b->seen);
		err = -ENOMEM;
		goto fail;
	}
	b->ring = *r;
	b->ring_ok = true;
	return 0;

fail:
	close(b->kick);
	close(b->call);
	b->kick = b->call = -1;
	return err;
}

static void signal_call(struct backend *b)
{
	uint64_t one = 1;

	if (write(b->call, &one, sizeof(one)) == sizeof(one))
		b->st.calls++;
}

static void flush_notify(struct backend *b, bool force)
{
	svq_dev_flush(&b->vq);
	if (svq_dev_need_notify(&b->vq) || force)
		signal_call(b);
	else
		b->st.calls_suppressed++;
}

/* Run echo-hash on the popped chain in b->e; return the length to report. */
static uint32_t echo(struct backend *b, bool fill_all)
{
	const struct svq_elem *e = &b->e;
	uint8_t raw[ECHO_HDR_SIZE];
	struct echo_hash hs;
	struct echo_hdr hdr;
	uint32_t got = 0, wl, off = 0, n;
	uint64_t key;
	unsigned int i;

	echo_hash_init(&hs);
	for (i = 0; i < e->nout; i++) {
		const struct svq_seg *s = &e->seg[i];

		if (got < ECHO_HDR_SIZE) {
			n = s->len < ECHO_HDR_SIZE - got ? s->len : ECHO_HDR_SIZE - got;
			memcpy(raw + got, s->hva, n);
			got += n;
		}
		echo_hash_update(&hs, s->hva, s->len);
	}
	hdr = echo_parse_hdr(raw, got);
	key = echo_key(&hdr, echo_hash_final(&hs));
	wl = fill_all ? e->in_bytes : echo_write_len(&hdr, e->out_bytes, e->in_bytes);
	for (i = e->nout; i < e->nseg && off < wl; i++) {
		const struct svq_seg *s = &e->seg[i];

		n = s->len < wl - off ? s->len : wl - off;
		echo_fill(key, off, s->hva, n);
		off += n;
	}
	b->st.bytes_read += e->out_bytes;
	b->st.bytes_written += wl;
	return wl;
}

static void packed_advance(struct svq_dev_packed *p, uint16_t n, uint16_t num)
{
	p->used_idx += n;
	if (p->used_idx >= num) {
		p->used_idx -= num;
		p->used_wrap_counter = !p->used_wrap_counter;
	}
}

/*
 * Write a used entry the device role would refuse to write, into the batch
 * being built: the next svq_dev_flush() publishes it after the entries pushed
 * before it.
 */
static void raw_used(struct backend *b, uint32_t id, uint32_t len)
{
	struct svq_dev *vq = &b->vq;

	if (vq->rc.layout == SVQISO_LAYOUT_SPLIT) {
		struct svq_dev_split *s = &vq->split;
		struct svq_used_elem *u = &s->used->ring[s->used_idx & (vq->rc.num - 1)];

		svq_st32(&u->id, id);
		svq_st32(&u->len, len);
		s->used_idx++;
	} else {
		struct svq_dev_packed *p = &vq->packed;
		struct svq_packed_desc *d = &p->desc[p->used_idx];
		uint16_t flags = p->used_wrap_counter ? SVQ_DESC_F_AVAIL | SVQ_DESC_F_USED : 0;

		svq_st16(&d->id, (uint16_t)id);
		svq_st32(&d->len, len);
		if (!p->pending) {
			p->pending_head = p->used_idx;
			p->pending_head_flags = flags;
		} else {
			svq_st16_release(&d->flags, flags);
		}
		p->pending++;
		p->pending_descs++;
		packed_advance(p, 1, vq->rc.num);
	}
	b->st.misbehaved++;
}

/* Packed: a used-looking entry whose AVAIL and USED bits differ; not advanced. */
static void raw_mismatch(struct backend *b, uint16_t id, uint32_t len, bool avail_set)
{
	struct svq_dev_packed *p = &b->vq.packed;
	struct svq_packed_desc *d = &p->desc[p->used_idx];
	bool w = p->used_wrap_counter;
	uint16_t flags;

	if (avail_set)	/* AVAIL = w, USED = !w */
		flags = (w ? SVQ_DESC_F_AVAIL : 0) | (w ? 0 : SVQ_DESC_F_USED);
	else		/* AVAIL = !w, USED = w */
		flags = (w ? 0 : SVQ_DESC_F_AVAIL) | (w ? SVQ_DESC_F_USED : 0);
	svq_st16(&d->id, id);
	svq_st32(&d->len, len);
	svq_st16_release(&d->flags, flags | SVQ_DESC_F_WRITE);
	b->st.misbehaved++;
}

/* An id < num that is not in flight, preferably one never popped. */
static uint32_t unissued_id(struct backend *b)
{
	uint16_t i, num = b->ring.num;

	for (i = num; i-- > 0; )
		if (!b->vq.id_inflight[i] && !b->seen[i])
			return i;
	for (i = num; i-- > 0; )
		if (!b->vq.id_inflight[i])
			return i;
	return num - 1;
}

/* Random bytes over isolated memory: the used area, the rest of the shadow
 * ring's region (descriptors, indirect tables), or anywhere. */
static void scribble(struct backend *b)
{
	unsigned int k, i;

	for (k = 0; k < 4 && b->nreg; k++) {
		uint64_t size, len, off;
		uint8_t *p;

		switch (rnd_below(b, 3)) {
		case 0:
			if (b->ring.layout == SVQISO_LAYOUT_SPLIT) {
				p = (uint8_t *)b->vq.split.used;
				size = svq_split_used_size(b->ring.num);
			} else {
				p = (uint8_t *)b->vq.packed.desc;
				size = svq_packed_desc_size(b->ring.num);
			}
			break;
		case 1:
			if (find_iova(b, b->ring.desc)) {
				struct region *r = find_iova(b, b->ring.desc);

				p = r->hva;
				size = r->size;
				break;
			}
			/* fall through */
		default: {
			struct region *r = &b->reg[rnd_below(b, b->nreg)];

			p = r->hva;
			size = r->size;
			break;
		}
		}
		len = 1 + rnd_below(b, 64);
		if (len > size)
			len = size;
		off = rnd_below(b, (uint32_t)(size - len + 1));
		for (i = 0; i < len; i++)
			p[off + i] = (uint8_t)rnd(b);
	}
	b->st.misbehaved++;
}

static bool hostile_now(struct backend *b)
{
	return b->armed && b->done_chains >= b->after;
}

/* Misbehave with the popped chains b->batch[j..n); the device is stuck after. */
static void misbehave(struct backend *b, unsigned int j, unsigned int n)
{
	struct svq_dev *vq = &b->vq;
	unsigned int k;

	switch (b->mode) {
	case HB_MODE_BAD_ID:
		raw_used(b, b->ring.num + 7, 0);
		break;
	case HB_MODE_UNISSUED_ID:
		raw_used(b, unissued_id(b), 0);
		break;
	case HB_MODE_DUP_ID:
		svq_dev_push(vq, b->batch[j].id, b->batch[j].len);
		b->done_chains++;
		raw_used(b, b->batch[j].id, b->batch[j].len);
		break;
	case HB_MODE_TOO_MANY:
		for (k = j; k < n; k++) {
			svq_dev_push(vq, b->batch[k].id, b->batch[k].len);
			b->done_chains++;
		}
		raw_used(b, b->batch[n - 1].id, 0);
		break;
	case HB_MODE_IDX_JUMP:
		if (vq->rc.layout == SVQISO_LAYOUT_SPLIT) {
			svq_dev_flush(vq);
			svq_st16_release(&vq->split.used->idx,
					 (uint16_t)(vq->split.used_idx + IDX_JUMP));
			b->st.misbehaved++;
		}
		break;
	case HB_MODE_FLAGS_AVAIL:
	case HB_MODE_FLAGS_USED:
		if (vq->rc.layout == SVQISO_LAYOUT_PACKED) {
			svq_dev_flush(vq);
			raw_mismatch(b, b->batch[j].id, b->batch[j].len,
				     b->mode == HB_MODE_FLAGS_AVAIL);
		}
		break;
	}
	flush_notify(b, true);
	b->armed = false;
	b->stuck = true;
}

/* Pop a batch, echo it, complete it. Return: chains popped, or 0. */
static unsigned int run_batch(struct backend *b)
{
	struct svq_dev *vq = &b->vq;
	unsigned int n = 0, max, j, k;
	bool hostile = b->armed && b->mode != HB_MODE_LEN_OVERFLOW &&
		       b->mode != HB_MODE_SCRIBBLE;
	bool overflow;
	int ret;

	/* Hostile modes take everything at once, so what the driver has
	 * outstanding is exactly what the device holds. */
	max = hostile ? b->ring.num : 1 + rnd_below(b, 64);
	while (n < max) {
		ret = svq_dev_pop(vq, &b->e);
		if (ret < 0) {
			if (!b->st.error) {
				b->st.error = ret;
				snprintf(b->st.reason, sizeof(b->st.reason), "%s",
					 vq->rc.reason);
				if (b->mode != HB_MODE_SCRIBBLE)
					warnx("shadow ring: %s", vq->rc.reason);
			}
			b->stuck = true;
			break;
		}
		if (ret == 0)
			break;
		b->seen[b->e.id] = 1;
		overflow = b->mode == HB_MODE_LEN_OVERFLOW &&
			   b->done_chains + n >= b->after && b->armed;
		b->batch[n].id = b->e.id;
		b->batch[n].len = echo(b, overflow);
		if (overflow) {
			static const uint32_t extra[] = { 1, 4096, UINT32_MAX };
			uint32_t x = extra[b->st.overflowed % 3];
			uint32_t in = b->batch[n].len;

			b->batch[n].len = x > UINT32_MAX - in ? UINT32_MAX : in + x;
			b->st.overflowed++;
		}
		n++;
	}
	if (!n)
		return 0;

	if (hostile) {
		for (j = 0; j < n && !hostile_now(b); j++) {
			svq_dev_push(vq, b->batch[j].id, b->batch[j].len);
			b->done_chains++;
			b->st.chains++;
		}
		if (hostile_now(b) && j < n)
			misbehave(b, j, n);
		else
			flush_notify(b, false);
		return n;
	}

	/* Out of order: a random permutation, published in one or two parts. */
	for (j = n; j > 1; j--) {
		struct done t;

		k = rnd_below(b, j);
		t = b->batch[j - 1];
		b->batch[j - 1] = b->batch[k];
		b->batch[k] = t;
	}
	k = n > 1 && rnd_below(b, 4) == 0 ? 1 + rnd_below(b, n - 1) : n;
	for (j = 0; j < n; j++) {
		if (j == k)
			flush_notify(b, false);
		svq_dev_push(vq, b->batch[j].id, b->batch[j].len);
		b->done_chains++;
		b->st.chains++;
	}
	if (b->mode == HB_MODE_SCRIBBLE && hostile_now(b)) {
		scribble(b);
		flush_notify(b, true);	/* make the svq look at once */
	} else {
		flush_notify(b, false);
	}
	return n;
}

static void process(struct backend *b)
{
	if (!b->ring_ok)
		return;
	for (;;) {
		svq_dev_disable_notify(&b->vq);
		while (!b->stuck && run_batch(b))
			;
		if (b->stuck || !svq_dev_enable_notify(&b->vq))
			return;
	}
}

/* ---- The socket ---- */

static int handle(struct backend *b)
{
	struct hb_msg m, ack;
	int fds[HB_MAX_FDS];
	unsigned int nfds = 0, i;
	int err;

	err = hb_recv(b->sock, &m, fds, HB_MAX_FDS, &nfds);
	if (err == -EPIPE)
		return 1;
	if (err) {
		warnx("recv: %s", strerror(-err));
		return -1;
	}
	memset(&ack, 0, sizeof(ack));
	ack.type = HB_ACK;
	ack.seq = m.seq;
	switch (m.type) {
	case HB_REGION_ADD:
		ack.result = nfds == 1 ? region_add(b, &m.region, fds[0]) : -EBADF;
		if (!ack.result)
			nfds = 0;	/* the region keeps the fd */
		break;
	case HB_REGION_DEL:
		ack.result = region_del(b, m.region.iova);
		break;
	case HB_RING:
		ack.result = nfds == 2 ? ring_init(b, &m.ring, fds) : -EBADF;
		nfds = 0;	/* ring_init took them, or closed them */
		break;
	case HB_STATS:
		if (b->ring_ok && b->vq.rc.broken && !b->st.error) {
			b->st.error = -EIO;
			snprintf(b->st.reason, sizeof(b->st.reason), "%s", b->vq.rc.reason);
		}
		ack.stats = b->st;
		break;
	default:
		ack.result = -EOPNOTSUPP;
		break;
	}
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	err = hb_send(b->sock, &ack, NULL, 0);
	if (err) {
		warnx("send: %s", strerror(-err));
		return -1;
	}
	return 0;
}

static int run(struct backend *b)
{
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = b->sock, .events = POLLIN },
			{ .fd = b->ring_ok ? b->kick : -1, .events = POLLIN },
		};
		int ret;

		ret = poll(p, 2, -1);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			warnx("poll: %s", strerror(errno));
			return -1;
		}
		/* The socket first: a region announced before a kick is mapped
		 * before that kick is served. */
		if (p[0].revents) {
			ret = handle(b);
			if (ret)
				return ret > 0 ? 0 : -1;
			continue;
		}
		if (p[1].revents) {
			uint64_t v;

			if (read(b->kick, &v, sizeof(v)) == sizeof(v))
				b->st.kicks++;
			if (!b->stuck)
				process(b);
		}
	}
}

static bool opt(const char *arg, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(arg, name, n) || arg[n] != '=')
		return false;
	*val = arg + n + 1;
	return true;
}

int main(int argc, char **argv)
{
	static struct backend b;
	const char *v;
	int i, ret;

	prog = argv[0];
	b.sock = b.kick = b.call = -1;
	b.rng = 1;
	for (i = 1; i < argc; i++) {
		if (opt(argv[i], "--sock", &v)) {
			b.sock = atoi(v);
		} else if (opt(argv[i], "--mode", &v)) {
			b.mode = hb_mode_parse(v);
			if (b.mode < 0) {
				warnx("unknown mode %s", v);
				return 1;
			}
		} else if (opt(argv[i], "--after", &v)) {
			b.after = strtoull(v, NULL, 0);
		} else if (opt(argv[i], "--seed", &v)) {
			b.rng = strtoull(v, NULL, 0);
		} else if (opt(argv[i], "--max-indirect", &v)) {
			b.max_indirect = (uint16_t)strtoul(v, NULL, 0);
		} else {
			warnx("usage: %s --sock=FD [--mode=NAME] [--after=N] [--seed=S] "
			      "[--max-indirect=N]", prog);
			return 1;
		}
	}
	if (b.sock < 0) {
		warnx("--sock is required");
		return 1;
	}
	b.armed = b.mode != HB_MODE_NONE;
	b.seg = calloc(MAX_SEGS, sizeof(*b.seg));
	if (!b.seg)
		return 1;
	b.e.seg = b.seg;
	b.e.max_seg = MAX_SEGS;

	ret = run(&b);

	ring_fini(&b);
	while (b.nreg)
		region_del(&b, b.reg[0].iova);
	free(b.seg);
	close(b.sock);
	return ret ? 1 : 0;
}
