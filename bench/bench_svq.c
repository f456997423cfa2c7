/* SPDX-License-Identifier: MIT */
/*
 * bench_svq: the cost of isolation, side by side with today's shared-memory
 * vhost-user path, in one process.
 *
 * Two threads on different CPUs, both busy-polling:
 *  - the driver thread (CPU 0) is the guest driver writing the guest ring in
 *    "guest RAM" (served through a svqiso_mem) and, in the isolated modes,
 *    also the VMM side running the shadow virtqueue;
 *  - the backend thread (CPU 1) is a device serving one ring: it pops a
 *    request, copies its data from or to a private "disk" buffer of the same
 *    size, and completes it.
 *
 * Modes:
 *  direct        the backend pops the guest ring itself, translating guest
 *                addresses, and touches guest buffers in place: one copy per
 *                request (today's vhost-user).
 *  arena-<copy>  isolated, with the pre-registered arena pool and copy
 *                strategy <copy>: the driver thread posts to the guest ring
 *                and runs svqiso_svq_process_avail()/process_used() (busy
 *                poll mode); the backend serves the shadow ring. Two copies
 *                per request.
 *  memfd         isolated, with the per-request memfd pool. Each region the
 *                iso adds or removes goes to the backend as a message over a
 *                unix socketpair (the region fd rides along on an add); the
 *                backend handles it between ring polls, maps or unmaps it in
 *                its own table and replies, and the driver waits for the
 *                reply, as a frontend waits for REPLY_ACK.
 * In the isolated modes the backend translates IOVAs through its own
 * mappings of the region fds, never through svqiso's pointers.
 *
 * The guest driver publishes a split ring's avail->idx as it adds each
 * chain, as Linux's virtqueue_add_split() does (packed heads are visible at
 * once anyway). Publishing once per batch, at the kick decision, made the
 * direct backend wait until the guest had written the whole batch (up to
 * the queue depth, each write buffer filled first) before it could start,
 * a stall no Linux guest causes; it slowed direct split only, since in the
 * isolated modes the guest ring is read on the guest's own CPU. The svq
 * publishes its split shadow ring the same way, for the same reason.
 *
 * A request is one data segment: device-readable (a write) or
 * device-writable (a read), alternating unless --dir says otherwise. Data is
 * checked end to end at both ends of every buffer: a write carries a
 * sequence number the backend must see grow, a read carries a stamp the
 * backend numbers in pop order. In the isolated modes the backend also
 * checks that no segment it is given points into guest RAM. Any error makes
 * the program fail.
 *
 * The guest touches its data as an application does: it writes the whole
 * buffer of a write request just before posting it and reads the whole
 * buffer of a read request after completion. That decides where the data's
 * cache lines are when the other side needs them: without it, in direct
 * mode the backend's copy meets guest buffers no other CPU touched, while
 * the isolated modes still move every byte between the CPUs, which
 * flatters direct access. --no-touch gives the old behaviour (only both
 * ends marked and checked); a full run measures 4 KiB QD32 that way too
 * and reports it beside the targets.
 *
 * Every configuration (size, queue depth, layout) runs each mode for a fixed
 * time, modes interleaved (direct, arena-auto, then the others), repeated;
 * figures are medians. Reported per mode:
 * requests/s, GB/s, ns per request, system calls per request (through the
 * raw_syscalls tracepoint), instructions per request (hardware counter, null
 * where the machine has none), the ratio to direct (the median over the
 * repeats of the run's rate over the same repeat's direct rate: on a
 * virtual machine the speed of both moves together over seconds)
 * and, in the isolated modes, the svq overhead: the driver thread's time
 * inside process_avail()/process_used() calls that moved requests, per
 * request, minus the copies' share and minus what the clock reads add to
 * each timed call (the median of empty intervals, clock_pair_ns()).
 *
 * The copies' share is their cost under the cache conditions of the run,
 * calibrated per configuration and copy strategy just before each run (see
 * calibrate()): copy-out writes arena lines the backend's CPU touched last,
 * copy-back reads arena lines the backend's CPU has just written, and a
 * hot-cache copy of one buffer over and over costs neither, so subtracting
 * the copies at hot-cache speed (the method before, still reported as
 * svq_overhead_hot_copy_ns) charges the cross-core transfers of the data to
 * the svq. The calibrated share is measured apart from the run, without the
 * rings' own traffic, so the overhead still holds whatever the run's copies
 * paid beyond that replay.
 *
 * Under a missed 4 KiB QD32 ratio, a ceiling replay (replay_rate()) runs the
 * run's data flow with no ring and no svq, with and without the svq's
 * copies, right after the repeat's direct run: what a zero-cost svq could
 * reach on this machine, against what the rings cost direct.
 *
 * Options (besides --out DIR and --quick):
 *   --time MS        length of one timed run (default 600; --quick: 30)
 *   --repeat N       runs per mode and configuration (default 5; --quick: 1)
 *   --dir mix|read|write
 *   --no-touch       the guest does not touch its data (see above)
 *   --config SIZE,DEPTH,LAYOUT
 *                    time only this configuration (a size and depth of the
 *                    tables), e.g. "--config 4096,32,split"
 *   --verbose        every timed run on stderr, to see the noise
 *   --modes M1,M2,.. time only these modes (direct always runs: the
 *                    ratios need it); the others report null
 *   --only MODE,SIZE,DEPTH,LAYOUT --requests N
 *                    run exactly N requests of one configuration, e.g.
 *                    "--only arena-auto,4096,32,split --requests 100000",
 *                    and nothing else. The backend is then stepped in turn
 *                    from the driver thread instead of spinning in a thread
 *                    of its own, so no polling loop runs and the instruction
 *                    count is deterministic. Run it under
 *                    "valgrind --tool=callgrind" with two values N1 < N2:
 *                    (Ir(N2) - Ir(N1)) / (N2 - N1) is the instructions per
 *                    request, setup and teardown cancelling out. This
 *                    mode writes no result files and ignores --quick and
 *                    --out.
 *
 * Output: svq.jsonl, svq.md, svq-qd32-split.dat (ns per request against
 * size, per mode) and svq-qd32-split-ratio.dat (isolated/direct against
 * size).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/perf_event.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <svqiso/svqiso.h>
#include <svqiso/copy.h>
#include <svqiso/iso.h>
#include <svqiso/pool.h>
#include <svqiso/svq.h>
#include "vring.h"
#include "bench.h"

#define NUM		256
#define MAX_DEPTH	32
#define MAX_SEGS	16
#define GUEST_BASE	0x40000000ull
#define G_DESC		0x0000u
#define G_DRIVER	0x4000u
#define G_DEVICE	0x8000u
#define G_DATA		0x100000u
#define SEQ_BYTES	8

enum kind { K_DIRECT, K_ARENA, K_MEMFD };
enum dir { DIR_MIX, DIR_READ, DIR_WRITE };
static const char *const dir_name[] = { "mix", "read", "write" };

struct mode {
	enum kind kind;
	int copy;		/* enum svqiso_copy_kind */
	bool skip;		/* left out by --modes */
	char name[24];
};

/* ---- the backend ---- */

enum { CTL_ADD = 1, CTL_REM = 2 };

struct ctl_msg {
	uint32_t type;
	uint32_t pad;
	uint64_t iova;
	uint64_t size;
	uint64_t offset;
};

struct backend {
	struct svq_dev dev;
	struct svq_seg seg[MAX_SEGS];
	uint8_t *disk;
	/* Isolated modes: guest RAM, which no segment may point into. */
	const uint8_t *guest_lo, *guest_hi;
	struct svqiso_mem *map;		/* isolated: iova -> our own mappings */
	int sock;			/* our end of the control channel */
	unsigned int ctl_pending;	/* messages sent and not yet handled */
	bool running;			/* a thread of its own serves the ring */
	bool stop;
	uint64_t last_wseq;		/* newest write sequence number seen */
	uint64_t nread;			/* read requests served */
	uint64_t errors;
	pthread_t thread;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* One request: copy between its segments and the disk, check or stamp. */
static uint32_t serve_one(struct backend *be, const struct svq_elem *e)
{
	uint64_t head, tail, off = 0;
	uint32_t total = e->out_bytes + e->in_bytes;
	uint16_t k;

	if (e->nseg == 0 || total < 2 * SEQ_BYTES || (e->out_bytes && e->in_bytes)) {
		be->errors++;
		return 0;
	}
	for (k = 0; k < e->nseg; k++) {
		const uint8_t *p = e->seg[k].hva;

		if (p + e->seg[k].len > be->guest_lo && p < be->guest_hi)
			be->errors++;
	}
	if (e->out_bytes) {
		for (k = 0; k < e->nseg; k++) {
			memcpy(be->disk + off, e->seg[k].hva, e->seg[k].len);
			off += e->seg[k].len;
		}
		memcpy(&head, be->disk, SEQ_BYTES);
		memcpy(&tail, be->disk + total - SEQ_BYTES, SEQ_BYTES);
		if (head != tail || head <= be->last_wseq)
			be->errors++;
		be->last_wseq = head;
		return 0;
	}
	head = ++be->nread;
	memcpy(be->disk, &head, SEQ_BYTES);
	memcpy(be->disk + total - SEQ_BYTES, &head, SEQ_BYTES);
	for (k = 0; k < e->nseg; k++) {
		memcpy(e->seg[k].hva, be->disk + off, e->seg[k].len);
		off += e->seg[k].len;
	}
	return total;
}

/* Serve everything available. Return: requests served, or -errno. */
static int backend_poll(struct backend *be)
{
	struct svq_elem e = { .seg = be->seg, .max_seg = MAX_SEGS };
	int n = 0, ret;

	for (;;) {
		e.nseg = 0;
		ret = svq_dev_pop(&be->dev, &e);
		if (ret < 0)
			return ret;
		if (ret == 0)
			break;
		ret = svq_dev_push(&be->dev, e.id, serve_one(be, &e));
		if (ret < 0)
			return ret;
		n++;
	}
	if (n && svq_dev_flush(&be->dev) < 0)
		return -EIO;
	return n;
}

/* Handle one control message: map or unmap a region, reply. */
static void backend_ctl(struct backend *be)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct ctl_msg m;
	struct iovec iov = { &m, sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int32_t reply = 0;
	int fd = -1;

	if (recvmsg(be->sock, &mh, MSG_CMSG_CLOEXEC) != sizeof(m)) {
		reply = -EPROTO;
		goto out;
	}
	cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	if (m.type == CTL_ADD) {
		struct svqiso_mem_region r = { .gpa = m.iova, .size = m.size, .fd = -1 };
		void *p = fd < 0 ? MAP_FAILED :
			  mmap(NULL, m.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			       fd, (off_t)m.offset);

		if (p == MAP_FAILED) {
			reply = -EINVAL;
		} else {
			r.hva = p;
			reply = svqiso_mem_add_region(be->map, &r);
			if (reply)
				munmap(p, m.size);
		}
	} else if (m.type == CTL_REM) {
		uint64_t len = UINT64_MAX;
		void *p = svqiso_mem_lookup(be->map, m.iova, &len);

		reply = p ? svqiso_mem_remove_region(be->map, m.iova) : -ENOENT;
		if (!reply)
			munmap(p, len);
	} else {
		reply = -EPROTO;
	}
out:
	if (fd >= 0)
		close(fd);
	if (reply)
		be->errors++;
	if (send(be->sock, &reply, sizeof(reply), MSG_NOSIGNAL) != sizeof(reply))
		be->errors++;
}

static void *backend_thread(void *arg)
{
	struct backend *be = arg;
	int ret;

	bench_pin(1);
	while (!__atomic_load_n(&be->stop, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&be->ctl_pending, __ATOMIC_ACQUIRE)) {
			backend_ctl(be);
			__atomic_fetch_sub(&be->ctl_pending, 1, __ATOMIC_RELEASE);
		}
		ret = backend_poll(be);
		if (ret < 0) {
			be->errors++;
			break;
		}
		if (ret == 0)
			cpu_relax();
	}
	return NULL;
}

/* ---- the VMM side of the control channel ---- */

struct run;
static int send_ctl(struct run *r, const struct ctl_msg *m, int fd);

/* ---- one run: guest, VMM, backend for one mode and configuration ---- */

struct slot {
	bool write;
	uint64_t seq;		/* write: the sequence sent; read: the stamp expected */
};

struct run {
	const struct mode *mode;
	uint32_t size;
	unsigned int depth;
	uint8_t layout;
	enum dir dir;
	bool touch;		/* the guest writes/reads whole buffers */

	uint8_t *guest;
	size_t guest_size;
	struct svqiso_mem *gmem;
	struct svq_drv gdrv;
	bool gdrv_ok;
	struct svqiso_iso *iso;
	struct svqiso_pool *pool;
	struct svqiso_svq *svq;
	int sock[2];		/* [0] VMM, [1] backend */
	struct backend be;
	bool be_ok;

	struct slot slot[MAX_DEPTH];
	unsigned int free_slot[MAX_DEPTH], nfree;
	uint16_t id_slot[NUM];
	uint64_t posted, completed, wseq, rseq, limit;
	uint64_t svq_ns;	/* in process_avail/used calls that made progress */
	uint64_t svq_calls;	/* those calls, each timed by one clock pair */
	uint64_t errors;
	uint64_t sink;		/* what the guest read, so the reads happen */
};

static int send_ctl(struct run *r, const struct ctl_msg *m, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { (void *)m, sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int32_t reply;

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	}
	if (sendmsg(r->sock[0], &mh, MSG_NOSIGNAL) != sizeof(*m))
		return -errno;
	if (__atomic_load_n(&r->be.running, __ATOMIC_ACQUIRE))
		__atomic_fetch_add(&r->be.ctl_pending, 1, __ATOMIC_RELEASE);
	else
		backend_ctl(&r->be);	/* no backend thread: handle it in turn */
	if (recv(r->sock[0], &reply, sizeof(reply), 0) != sizeof(reply))
		return -EPROTO;
	return reply;
}

static int region_add(void *ctx, const struct svqiso_region *reg)
{
	struct ctl_msg m = { .type = CTL_ADD, .iova = reg->iova, .size = reg->size,
			     .offset = reg->fd_offset };

	return send_ctl(ctx, &m, reg->fd);
}

static int region_del(void *ctx, const struct svqiso_region *reg)
{
	struct ctl_msg m = { .type = CTL_REM, .iova = reg->iova, .size = reg->size };
	struct run *r = ctx;

	if (send_ctl(r, &m, -1))
		r->errors++;
	return 0;
}

static void *gpa_hva(struct run *r, uint64_t gpa)
{
	return r->guest + (gpa - GUEST_BASE);
}

/* Bytes of the arena pool for one run: room for twice the queue, and slack. */
static uint64_t arena_bytes(uint32_t size, unsigned int depth)
{
	return 2ull * depth * size + (1u << 20);
}

static void run_close(struct run *r)
{
	if (r->be_ok)
		svq_dev_fini(&r->be.dev);
	/* Removals reach the backend's table through the channel, in turn. */
	svqiso_svq_free(r->svq);
	svqiso_pool_free(r->pool);
	svqiso_iso_free(r->iso);
	if (r->be.map) {
		struct svqiso_mem_region reg;

		/* Whatever the iso did not remove (nothing, normally). */
		while (!svqiso_mem_get_region(r->be.map, 0, &reg)) {
			munmap(reg.hva, reg.size);
			svqiso_mem_remove_region(r->be.map, reg.gpa);
			r->errors++;
		}
		svqiso_mem_free(r->be.map);
	}
	if (r->gdrv_ok)
		svq_drv_fini(&r->gdrv);
	svqiso_mem_free(r->gmem);
	free(r->guest);
	free(r->be.disk);
	if (r->sock[0] >= 0)
		close(r->sock[0]);
	if (r->sock[1] >= 0)
		close(r->sock[1]);
}

static int run_open(struct run *r, const struct mode *mode, uint32_t size,
		    unsigned int depth, uint8_t layout, enum dir dir, bool touch)
{
	struct svqiso_mem_region gr = { .gpa = GUEST_BASE, .fd = -1 };
	SVQISO_OPTS(svqiso_iso_opts, io, .region_add = region_add,
		    .region_del = region_del, .name = "bench");
	SVQISO_OPTS(svqiso_arena_opts, ao);
	SVQISO_OPTS(svqiso_svq_opts, so, .num = NUM, .guest_layout = layout,
		    .shadow_layout = layout, .copy = (uint8_t)mode->copy,
		    .guest_ring = { GUEST_BASE + G_DESC, GUEST_BASE + G_DRIVER,
				    GUEST_BASE + G_DEVICE },
		    .guest_mem = svqiso_mem_ops(), .name = "bench");
	/* The guest publishes each chain as it adds it, as Linux does. */
	struct svq_drv_cfg dc = { .layout = layout, .num = NUM,
				  .publish_each = true };
	struct svq_dev_cfg bc = { .layout = layout, .num = NUM,
				  .mem = svqiso_mem_ops(), .name = "backend" };
	struct svqiso_shadow_info info;
	unsigned int i;
	int ret;

	memset(r, 0, sizeof(*r));
	r->sock[0] = r->sock[1] = -1;
	r->be.sock = -1;
	r->mode = mode;
	r->size = size;
	r->depth = depth;
	r->layout = layout;
	r->dir = dir;
	r->touch = touch;
	for (i = 0; i < depth; i++)
		r->free_slot[i] = depth - 1 - i;
	r->nfree = depth;

	r->guest_size = G_DATA + (size_t)depth * size;
	r->guest_size = (r->guest_size + 4095) & ~(size_t)4095;
	r->guest = aligned_alloc(4096, r->guest_size);
	r->be.disk = malloc(size);
	if (!r->guest || !r->be.disk)
		return -ENOMEM;
	memset(r->guest, 0, r->guest_size);
	memset(r->be.disk, 0x3c, size);
	gr.size = r->guest_size;
	gr.hva = r->guest;
	ret = svqiso_mem_new(NULL, &r->gmem);
	if (!ret)
		ret = svqiso_mem_add_region(r->gmem, &gr);
	if (ret)
		return ret;
	dc.desc = gpa_hva(r, GUEST_BASE + G_DESC);
	dc.driver = gpa_hva(r, GUEST_BASE + G_DRIVER);
	dc.device = gpa_hva(r, GUEST_BASE + G_DEVICE);
	ret = svq_drv_init(&r->gdrv, &dc);
	if (ret)
		return ret;
	r->gdrv_ok = true;

	if (mode->kind == K_DIRECT) {
		/* The backend reads the guest ring in guest RAM. */
		bc.desc = GUEST_BASE + G_DESC;
		bc.driver = GUEST_BASE + G_DRIVER;
		bc.device = GUEST_BASE + G_DEVICE;
		bc.mem_ctx = r->gmem;
	} else {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r->sock))
			return -errno;
		r->be.sock = r->sock[1];
		r->be.guest_lo = r->guest;
		r->be.guest_hi = r->guest + r->guest_size;
		ret = svqiso_mem_new(NULL, &r->be.map);
		if (ret)
			return ret;
		io.region_ctx = r;
		ret = svqiso_iso_new(&io, &r->iso);
		if (ret)
			return ret;
		if (mode->kind == K_ARENA) {
			ao.size = arena_bytes(size, depth);
			ret = svqiso_pool_new_arena(r->iso, &ao, &r->pool);
		} else {
			ret = svqiso_pool_new_memfd(r->iso, &r->pool);
		}
		if (ret)
			return ret;
		so.guest_mem_ctx = r->gmem;
		so.iso = r->iso;
		so.pool = r->pool;
		ret = svqiso_svq_new(&so, &r->svq);
		if (!ret)
			ret = svqiso_svq_set_busy_poll(r->svq, true);
		if (!ret)
			ret = svqiso_svq_get_shadow(r->svq, &info);
		if (ret)
			return ret;
		/* The backend reads the shadow ring through its own mappings. */
		bc.layout = info.layout;
		bc.num = info.num;
		bc.flags = info.features;
		bc.desc = info.iova.desc;
		bc.driver = info.iova.driver;
		bc.device = info.iova.device;
		bc.mem_ctx = r->be.map;
	}
	ret = svq_dev_init(&r->be.dev, &bc);
	if (ret)
		return ret;
	r->be_ok = true;
	svq_dev_disable_notify(&r->be.dev);
	svq_drv_disable_cb(&r->gdrv);
	return 0;
}

/* Guest: fill the queue up to depth (and the request limit, if any). */
static void guest_post(struct run *r)
{
	bool any = false;

	while (r->nfree && (!r->limit || r->posted < r->limit)) {
		unsigned int s = r->free_slot[r->nfree - 1];
		uint64_t addr = GUEST_BASE + G_DATA + (uint64_t)s * r->size;
		uint8_t *p = gpa_hva(r, addr);
		struct svq_seg seg = { .addr = addr, .len = r->size };
		struct slot *sl = &r->slot[s];
		uint16_t id;

		sl->write = r->dir == DIR_WRITE ||
			    (r->dir == DIR_MIX && !(r->posted & 1));
		seg.write = !sl->write;
		if (sl->write) {
			sl->seq = ++r->wseq;
			/* As an application does: the whole buffer is written
			 * just before it is posted. --no-touch: the data is
			 * "already there" and only both ends are marked. */
			if (r->touch)
				memset(p, (int)(sl->seq & 0xff), r->size);
			memcpy(p, &sl->seq, SEQ_BYTES);
			memcpy(p + r->size - SEQ_BYTES, &sl->seq, SEQ_BYTES);
		} else {
			sl->seq = ++r->rseq;
		}
		if (svq_drv_add(&r->gdrv, &seg, 1, NULL, &id)) {
			r->errors++;
			return;
		}
		r->id_slot[id] = (uint16_t)s;
		r->nfree--;
		r->posted++;
		any = true;
	}
	if (any)
		svq_drv_kick_prepare(&r->gdrv);
}

/* Read every byte of @p (an application consuming its data). */
static uint64_t read_all(const uint8_t *p, uint32_t len)
{
	uint64_t x = 0, w;
	uint32_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		x ^= w;
	}
	for (; i < len; i++)
		x ^= p[i];
	return x;
}

/* Guest: collect completions and check what reads brought back. */
static void guest_collect(struct run *r)
{
	uint16_t id;
	uint32_t len;
	int ret;

	while ((ret = svq_drv_get_used(&r->gdrv, &id, &len)) == 1) {
		unsigned int s = r->id_slot[id];
		struct slot *sl = &r->slot[s];

		if (!sl->write) {
			const uint8_t *p = gpa_hva(r, GUEST_BASE + G_DATA +
						  (uint64_t)s * r->size);
			uint64_t head, tail;

			memcpy(&head, p, SEQ_BYTES);
			memcpy(&tail, p + r->size - SEQ_BYTES, SEQ_BYTES);
			if (len != r->size || head != sl->seq || tail != sl->seq)
				r->errors++;
			if (r->touch)	/* the application reads what came in */
				r->sink += read_all(p, r->size);
		} else if (len != 0) {
			r->errors++;
		}
		r->free_slot[r->nfree++] = s;
		r->completed++;
	}
	if (ret < 0)
		r->errors++;
}

/* The VMM side: run the svq, timing calls that moved something. */
static void vmm_step(struct run *r)
{
	unsigned int before = svqiso_svq_in_flight(r->svq);
	uint64_t t0 = bench_now_ns(), t1;

	if (svqiso_svq_process_avail(r->svq) < 0)
		r->errors++;
	t1 = bench_now_ns();
	if (svqiso_svq_in_flight(r->svq) != before)
	{
		r->svq_ns += t1 - t0;
		r->svq_calls++;
	}
	before = svqiso_svq_in_flight(r->svq);
	if (svqiso_svq_process_used(r->svq) < 0)
		r->errors++;
	if (svqiso_svq_in_flight(r->svq) != before)
	{
		r->svq_ns += bench_now_ns() - t1;
		r->svq_calls++;
	}
}

/* One turn of the driver thread; @lockstep also serves as the backend. */
static void driver_step(struct run *r, bool lockstep)
{
	guest_post(r);
	if (r->mode->kind != K_DIRECT)
		vmm_step(r);
	if (lockstep) {
		if (backend_poll(&r->be) < 0)
			r->errors++;
		if (r->mode->kind != K_DIRECT)
			vmm_step(r);
	}
	guest_collect(r);
}

static bool failed(const struct run *r)
{
	return r->errors || r->be.errors || (r->svq && svqiso_svq_is_broken(r->svq));
}

/* ---- counters ---- */

static int sys_fd = -1, ins_fd = -1;

static int instructions_open(void)
{
	struct perf_event_attr a = {
		.type = PERF_TYPE_HARDWARE,
		.size = sizeof(a),
		.config = PERF_COUNT_HW_INSTRUCTIONS,
		.inherit = 1,
		.exclude_kernel = 1,
		.exclude_hv = 1,
	};
	long fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);

	return fd < 0 ? -errno : (int)fd;
}

struct result {
	double rps, ns_req, sys_req, ins_req;	/* NAN: not measured */
	double ovh_ns;		/* svq time minus the copies at calibrated cost */
	double ovh_hot_ns;	/* the same minus the copies at hot-cache speed */
	double copy_ns;		/* the copies at calibrated cost, per request */
	double copy_bound;	/* the ratio the copies alone allow: see
				 * report_targets() */
	double rtt_ns;		/* xcpu_rtt_ns() just before the run */
	double ratio;		/* rps over the same repeat's direct rps */
	double replay_iso;	/* the isolated flow's ceiling replay over the
				 * same repeat's direct rps (replay_rate()) */
	double replay_direct;	/* the direct flow's replay, likewise */
};

/* Hot-cache ns to copy @len bytes with @kind: the copies' share of svq time. */
static double hot_copy_ns(int kind, uint32_t len)
{
	static double cache[SVQISO_NR_COPY][4];
	static uint32_t cache_len[SVQISO_NR_COPY][4];
	uint8_t *a, *b;
	double v[5];
	unsigned int i, j, n;

	for (i = 0; i < 4; i++)
		if (cache_len[kind][i] == len)
			return cache[kind][i];
	a = malloc(len);
	b = malloc(len);
	if (!a || !b) {
		free(a);
		free(b);
		return 0;
	}
	memset(a, 1, len);
	memset(b, 2, len);
	n = 1 + (uint32_t)(64u << 20) / len;	/* ~64 MiB per measurement */
	for (j = 0; j < 5; j++) {
		uint64_t t0 = bench_now_ns();

		for (i = 0; i < n; i++)
			svqiso_copy(kind, b, a, len);
		v[j] = (double)(bench_now_ns() - t0) / n;
	}
	free(a);
	free(b);
	for (i = 0; i < 4; i++)
		if (!cache_len[kind][i]) {
			cache_len[kind][i] = len;
			cache[kind][i] = bench_median(v, 5);
			return cache[kind][i];
		}
	return bench_median(v, 5);
}

/*
 * What reading the clock adds to an interval it times: the median of empty
 * intervals. Each timed svq call carries one such share, which is the
 * clock's time, not the svq's.
 */
static double clock_pair_ns(void)
{
	static double v;
	double x[101];
	unsigned int i, j;

	if (v > 0)
		return v;
	for (i = 0; i < 101; i++) {
		uint64_t t0 = bench_now_ns(), t1 = t0;

		for (j = 0; j < 100; j++) {
			t0 = bench_now_ns();
			t1 = bench_now_ns();
		}
		x[i] = (double)(t1 - t0);
	}
	v = bench_median(x, 101);
	if (v <= 0)
		v = 1e-9;	/* a coarse clock: nothing to take off */
	return v;
}

/*
 * Copy calibration: what the svq's two copies cost under the cache
 * conditions they meet in the run, so that subtracting them leaves the svq's
 * own work. A hot-cache figure is wrong both ways: copy-back reads bounce
 * lines the backend just wrote on the other CPU, and copy-out writes bounce
 * lines the backend last read or wrote there, a round of cross-core
 * transfers that a hot loop over one buffer never pays.
 *
 * So the data flow of the run is replayed without any ring: @depth requests
 * per batch (fewer when they would exceed 128 KiB), directions as in the run, each given the next 64-byte aligned
 * piece of an arena-sized buffer first in, first out, as the arena pool
 * hands them out. For each batch this thread (CPU 0, as the svq) copies the
 * writes' guest buffers into the arena (timed: copy-out; with touch the
 * guest wrote them just before), a thread on CPU 1 (as the backend) copies
 * the writes' pieces out to a disk buffer and the reads' pieces in from it
 * with memcpy, and then this thread copies the reads' pieces back to the
 * guest buffers (timed: copy-back; with touch the guest then reads them,
 * untimed). The costs are ns per byte over every batch of @ns.
 */
/* The next @need bytes of an arena of @cap handed out first in, first out,
 * as the arena pool does: from *@head, or from the start when they do not
 * fit before the end. Return: their offset. */
static uint64_t arena_piece(uint64_t *head, uint64_t need, uint64_t cap)
{
	uint64_t off = *head + need > cap ? 0 : *head;

	*head = off + need;
	return off;
}

struct copy_cost {
	double out_ns_b;	/* copy-out, guest to arena: ns per byte */
	double back_ns_b;	/* copy-back, arena to guest: ns per byte */
};

#define CALIB_BATCH_BYTES (128u << 10)

struct calib {
	uint32_t size;
	unsigned int n;			/* requests in this batch */
	uint8_t *arena, *disk;
	uint64_t off[MAX_DEPTH];
	bool write[MAX_DEPTH];
	int go;				/* 1: serve the batch; 0: done; -1: quit */
};

static void *calib_remote(void *arg)
{
	struct calib *c = arg;
	unsigned int j;
	int go;

	bench_pin(1);
	for (;;) {
		while (!(go = __atomic_load_n(&c->go, __ATOMIC_ACQUIRE)))
			cpu_relax();
		if (go < 0)
			return NULL;
		for (j = 0; j < c->n; j++)
			if (c->write[j])
				memcpy(c->disk, c->arena + c->off[j], c->size);
			else
				memcpy(c->arena + c->off[j], c->disk, c->size);
		__atomic_store_n(&c->go, 0, __ATOMIC_RELEASE);
	}
}

static int calibrate(int kind, uint32_t size, unsigned int depth, enum dir dir,
		     bool touch, uint64_t ns, struct copy_cost *cc)
{
	/* Batches of at most CALIB_BATCH_BYTES: the run moves one request at
	 * a time through a pipeline, and a batch of 32 MiB would push the
	 * first pieces out of every cache before they are copied back. */
	struct calib c = { .size = size,
			   .n = size >= CALIB_BATCH_BYTES ? 1 :
				CALIB_BATCH_BYTES / size < depth ?
				CALIB_BATCH_BYTES / size : depth };
	uint64_t cap = (arena_bytes(size, depth) + 4095) & ~4095ull;
	uint64_t need = (size + 63ull) & ~63ull, head = 0, k = 0, batches = 0;
	uint64_t b_out = 0, b_back = 0, start, t0, t;
	double t_out = 0, t_back = 0;
	uint8_t *guest, *gp[MAX_DEPTH];
	unsigned int g = 0, w;
	volatile uint64_t sink = 0;
	pthread_t th;
	unsigned int j;
	int ret;

	c.arena = aligned_alloc(4096, cap);
	c.disk = malloc(size);
	guest = aligned_alloc(4096, (size_t)depth * size);
	if (!c.arena || !c.disk || !guest) {
		ret = -ENOMEM;
		goto out;
	}
	memset(c.arena, 0, cap);
	memset(c.disk, 0x3c, size);
	memset(guest, 0, (size_t)depth * size);
	ret = -pthread_create(&th, NULL, calib_remote, &c);
	if (ret)
		goto out;
	start = bench_now_ns();
	do {
		for (j = 0; j < c.n; j++, k++) {
			gp[j] = guest + (size_t)((g + j) % depth) * size;
			c.write[j] = dir == DIR_WRITE || (dir == DIR_MIX && !(k & 1));
			c.off[j] = arena_piece(&head, need, cap);
			if (c.write[j] && touch)
				memset(gp[j], (int)(k & 0xff), size);
		}
		/* Each timed batch less what the clock adds to it. */
		t0 = bench_now_ns();
		for (j = 0, w = 0; j < c.n; j++)
			if (c.write[j]) {
				svqiso_copy(kind, c.arena + c.off[j], gp[j], size);
				w++;
			}
		t = bench_now_ns() - t0;
		if (w) {
			t_out += (double)t - clock_pair_ns();
			b_out += (uint64_t)w * size;
		}
		__atomic_store_n(&c.go, 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&c.go, __ATOMIC_ACQUIRE))
			cpu_relax();
		t0 = bench_now_ns();
		for (j = 0, w = 0; j < c.n; j++)
			if (!c.write[j]) {
				svqiso_copy(kind, gp[j], c.arena + c.off[j], size);
				w++;
			}
		t = bench_now_ns() - t0;
		if (w) {
			t_back += (double)t - clock_pair_ns();
			b_back += (uint64_t)w * size;
		}
		if (touch)
			for (j = 0; j < c.n; j++)
				if (!c.write[j])
					sink += read_all(gp[j], size);
		g = (g + c.n) % depth;
		batches++;
	} while (bench_now_ns() - start < ns || batches < 4);
	__atomic_store_n(&c.go, -1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	cc->out_ns_b = b_out ? t_out / (double)b_out : 0;
	cc->back_ns_b = b_back ? t_back / (double)b_back : 0;
out:
	free(c.arena);
	free(c.disk);
	free(guest);
	(void)sink;
	return ret;
}

/*
 * Ceiling replay: the run's whole data flow with no ring and no svq, both
 * sides at once, to bound the in-process ratio from above. This thread (CPU
 * 0) is the guest and, with @iso, the svq: it takes buffers from a free
 * list as guest_post() does, writes a write's buffer (with touch; its two
 * sequence stamps always), copies it into the next arena piece (first in,
 * first out, as the arena pool hands them out) and, on completion, copies a
 * read's piece back and reads the buffer (with touch; its stamps always).
 * A thread on CPU 1 is the backend: it copies each request's data between
 * the arena piece (or, without @iso, the guest buffer itself) and its disk
 * buffer with memcpy, stamping reads and reading writes' stamps as
 * serve_one() does. Requests pass in order through two counters on lines of
 * their own, at most @depth in flight, directions as in the run; as on the
 * rings, each request is published as it is made and completions once per
 * pass of the backend.
 * Nothing else runs: no descriptor, no index, no check, no clock read; so
 * no bookkeeping the svq could shed takes the isolated run past this
 * replay's rate, while the direct replay shows how near such a replay comes
 * to the real direct run.
 */
struct replay_req {
	uint32_t buf;		/* guest buffer */
	bool write;
	uint64_t off;		/* arena piece */
};

struct replay {
	uint64_t posted __attribute__((aligned(64)));	/* guest -> backend */
	uint64_t done __attribute__((aligned(64)));	/* backend -> guest */
	int stop __attribute__((aligned(64)));
	uint32_t size;
	unsigned int depth;
	bool iso;
	uint8_t *guest, *arena, *disk;
	uint64_t bad;		/* backend: stamps that did not match */
	struct replay_req req[MAX_DEPTH];	/* request k at k % depth */
};

static uint8_t *replay_data(struct replay *p, const struct replay_req *q)
{
	return p->iso ? p->arena + q->off : p->guest + (size_t)q->buf * p->size;
}

static void *replay_backend(void *arg)
{
	struct replay *p = arg;
	uint64_t served = 0, n, head, tail, stamp = 0;

	bench_pin(1);
	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		n = __atomic_load_n(&p->posted, __ATOMIC_ACQUIRE);
		if (n == served) {
			cpu_relax();
			continue;
		}
		for (; served < n; served++) {
			const struct replay_req *q = &p->req[served % p->depth];

			if (q->write) {
				memcpy(p->disk, replay_data(p, q), p->size);
				memcpy(&head, p->disk, SEQ_BYTES);
				memcpy(&tail, p->disk + p->size - SEQ_BYTES, SEQ_BYTES);
				p->bad += head != tail;
			} else {
				stamp++;
				memcpy(p->disk, &stamp, SEQ_BYTES);
				memcpy(p->disk + p->size - SEQ_BYTES, &stamp, SEQ_BYTES);
				memcpy(replay_data(p, q), p->disk, p->size);
			}
		}
		__atomic_store_n(&p->done, served, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Requests per second of the replay (0 on failure). */
static double replay_rate(int kind, uint32_t size, unsigned int depth,
			  enum dir dir, bool touch, bool iso, uint64_t ns)
{
	static struct replay p;
	uint64_t cap = (arena_bytes(size, depth) + 4095) & ~4095ull;
	uint64_t need = (size + 63ull) & ~63ull, head = 0, k = 0, c = 0, d;
	uint64_t t0, t1 = 0, c0 = 0, warm = ns / 10, it = 0, x, y;
	uint32_t free_buf[MAX_DEPTH];
	unsigned int nfree = depth, j;
	volatile uint64_t sink = 0;
	double rate = 0;
	pthread_t th;

	memset(&p, 0, sizeof(p));
	p.size = size;
	p.depth = depth;
	p.iso = iso;
	p.arena = aligned_alloc(4096, cap);
	p.disk = malloc(size);
	p.guest = aligned_alloc(4096, (size_t)depth * size);
	if (!p.arena || !p.disk || !p.guest || cap < (uint64_t)depth * need ||
	    size < 2 * SEQ_BYTES)
		goto out;
	memset(p.arena, 0, cap);
	memset(p.disk, 0x3c, size);
	memset(p.guest, 0, (size_t)depth * size);
	for (j = 0; j < depth; j++)
		free_buf[j] = depth - 1 - j;
	if (pthread_create(&th, NULL, replay_backend, &p))
		goto out;
	t0 = bench_now_ns();
	for (;;) {
		d = __atomic_load_n(&p.done, __ATOMIC_ACQUIRE);
		for (; c < d; c++) {
			struct replay_req *q = &p.req[c % depth];
			uint8_t *g = p.guest + (size_t)q->buf * size;

			if (!q->write) {
				if (iso)
					svqiso_copy(kind, g, p.arena + q->off, size);
				memcpy(&x, g, SEQ_BYTES);
				memcpy(&y, g + size - SEQ_BYTES, SEQ_BYTES);
				sink += x ^ y;
				if (touch)
					sink += read_all(g, size);
			}
			free_buf[nfree++] = q->buf;
		}
		for (; nfree; k++) {
			struct replay_req *q = &p.req[k % depth];
			uint8_t *g;

			q->buf = free_buf[--nfree];
			q->write = dir == DIR_WRITE || (dir == DIR_MIX && !(k & 1));
			q->off = arena_piece(&head, need, cap);
			if (q->write) {
				g = p.guest + (size_t)q->buf * size;
				if (touch)
					memset(g, (int)(k & 0xff), size);
				memcpy(g, &k, SEQ_BYTES);
				memcpy(g + size - SEQ_BYTES, &k, SEQ_BYTES);
				if (iso)
					svqiso_copy(kind, p.arena + q->off, g, size);
			}
			__atomic_store_n(&p.posted, k + 1, __ATOMIC_RELEASE);
		}
		if (++it & 15)
			continue;
		t1 = bench_now_ns();
		if (warm && t1 - t0 >= warm) {
			warm = 0;
			t0 = t1;
			c0 = c;
		} else if (!warm && t1 - t0 >= ns &&
			   (c - c0 >= depth || t1 - t0 >= ns + 10000000000ull)) {
			/* At least a full ring: on a loaded machine the two
			 * threads may share no time slice in a short run. */
			break;
		}
	}
	__atomic_store_n(&p.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	if (p.bad)
		fprintf(stderr, "svq: ceiling replay: %" PRIu64 " requests "
			"read back wrong data\n", p.bad);
	else if (c - c0 < depth)
		fprintf(stderr, "svq: ceiling replay: %" PRIu64 " requests "
			"completed in 10 s\n", c - c0);
	else
		rate = (double)(c - c0) * 1e9 / (double)(t1 - t0);
out:
	free(p.arena);
	free(p.disk);
	free(p.guest);
	(void)sink;
	return rate;
}

/*
 * Round trip of one cache line between CPU 0 and CPU 1, ns: a thread on CPU 1
 * answers each of this thread's stores with its own. On a virtual machine
 * the host may place the two CPUs on hyperthreads of one core or on
 * separate cores, and move them while the program runs: this tells which
 * way every run went (it changes the figures by a factor of two or more).
 */
struct pingpong {
	uint32_t ball;
	uint32_t rounds;
};

static void *pong(void *arg)
{
	struct pingpong *p = arg;
	uint32_t i;

	bench_pin(1);
	for (i = 1; i <= p->rounds; i++) {
		while (__atomic_load_n(&p->ball, __ATOMIC_ACQUIRE) != 2 * i - 1)
			cpu_relax();
		__atomic_store_n(&p->ball, 2 * i, __ATOMIC_RELEASE);
	}
	return NULL;
}

static double xcpu_rtt_ns(void)
{
	static struct pingpong p __attribute__((aligned(64)));
	uint64_t t0 = 0, t1;
	pthread_t th;
	uint32_t i;

	p.ball = 0;
	p.rounds = 2000;
	if (pthread_create(&th, NULL, pong, &p))
		return NAN;
	/* The first rounds wait for the thread to start and settle. */
	for (i = 1; i <= p.rounds; i++) {
		if (i == 1001)
			t0 = bench_now_ns();
		__atomic_store_n(&p.ball, 2 * i - 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&p.ball, __ATOMIC_ACQUIRE) != 2 * i)
			cpu_relax();
	}
	t1 = bench_now_ns();
	pthread_join(th, NULL);
	return (double)(t1 - t0) / 1000;
}

/* Drive until everything posted is complete (posting stopped). */
static void drain(struct run *r, bool lockstep)
{
	uint64_t deadline = bench_now_ns() + 5000000000ull;

	r->limit = r->posted ? r->posted : 1;
	while (r->completed < r->posted && !failed(r)) {
		driver_step(r, lockstep);
		if (bench_now_ns() > deadline) {
			fprintf(stderr, "svq: %s: requests stuck\n", r->mode->name);
			r->errors++;
			break;
		}
	}
}

/*
 * Timed run of @ns (after a warm-up), backend in its own thread.
 * Return: 0 and *@res, or -errno / -EIO on a data or protocol error.
 */
static int timed_run(const struct mode *mode, uint32_t size, unsigned int depth,
		     uint8_t layout, enum dir dir, bool touch,
		     const struct copy_cost *cc, uint64_t ns, struct result *res)
{
	struct svqiso_svq_stats st0 = { .sz = sizeof(st0) }, st1 = { .sz = sizeof(st1) };
	static struct run r;
	uint64_t t0, t1, c0, svq0, calls0, it = 0;
	int64_t sys0, sys1, ins0, ins1;
	double reqs;
	int ret;

	res->rtt_ns = xcpu_rtt_ns();
	ret = run_open(&r, mode, size, depth, layout, dir, touch);
	if (ret) {
		fprintf(stderr, "svq: %s setup: %s\n", mode->name, strerror(-ret));
		run_close(&r);
		return ret;
	}
	__atomic_store_n(&r.be.running, true, __ATOMIC_RELEASE);
	ret = pthread_create(&r.be.thread, NULL, backend_thread, &r.be);
	if (ret) {
		r.be.running = false;
		run_close(&r);
		return -ret;
	}
	/* Warm up: a tenth of the run, at least 5 ms. */
	t0 = bench_now_ns();
	while (bench_now_ns() - t0 < (ns / 10 > 5000000 ? ns / 10 : 5000000) &&
	       !failed(&r))
		driver_step(&r, false);

	if (r.svq)
		svqiso_svq_get_stats(r.svq, &st0);
	c0 = r.completed;
	svq0 = r.svq_ns;
	calls0 = r.svq_calls;
	sys0 = bench_sys_read(sys_fd);
	ins0 = bench_sys_read(ins_fd);
	t0 = bench_now_ns();
	t1 = t0;
	while (!failed(&r)) {
		driver_step(&r, false);
		/* At least one completion, in case the backend was preempted. */
		if (!(++it & 15) && (t1 = bench_now_ns()) - t0 >= ns &&
		    (r.completed > c0 || t1 - t0 >= ns + 10000000000ull))
			break;
	}
	sys1 = bench_sys_read(sys_fd);
	ins1 = bench_sys_read(ins_fd);
	reqs = (double)(r.completed - c0);
	if (r.svq)
		svqiso_svq_get_stats(r.svq, &st1);

	drain(&r, false);
	__atomic_store_n(&r.be.stop, true, __ATOMIC_RELEASE);
	pthread_join(r.be.thread, NULL);
	__atomic_store_n(&r.be.running, false, __ATOMIC_RELEASE);
	ret = failed(&r) || reqs == 0 ? -EIO : 0;
	if (reqs == 0)
		fprintf(stderr, "svq: %s: no request completed in 10 s\n",
			mode->name);
	if (ret)
		fprintf(stderr, "svq: %s %u B QD%u %s: %" PRIu64 " driver and %"
			PRIu64 " backend errors%s%s\n", mode->name, size, depth,
			layout == SVQISO_LAYOUT_PACKED ? "packed" : "split",
			r.errors, r.be.errors, r.svq && svqiso_svq_is_broken(r.svq) ?
			", svq broken: " : "",
			r.svq && svqiso_svq_is_broken(r.svq) ?
			svqiso_svq_broken_reason(r.svq) : "");
	run_close(&r);
	if (r.errors)
		ret = -EIO;
	if (ret)
		return ret;

	res->rps = reqs * 1e9 / (double)(t1 - t0);
	res->ns_req = (double)(t1 - t0) / reqs;
	res->sys_req = sys0 >= 0 && sys1 >= 0 ? (double)(sys1 - sys0) / reqs : NAN;
	res->ins_req = ins0 >= 0 && ins1 >= 0 ? (double)(ins1 - ins0) / reqs : NAN;
	res->ovh_ns = NAN;
	res->ovh_hot_ns = NAN;
	res->copy_ns = NAN;
	if (mode->kind != K_DIRECT) {
		double out = (double)(st1.bytes_out - st0.bytes_out);
		double back = (double)(st1.bytes_in - st0.bytes_in);
		double hot = hot_copy_ns(mode->copy, size) / size;
		double t = (double)(r.svq_ns - svq0);
		/* What the clock itself adds to each timed call. */
		double clk = (double)(r.svq_calls - calls0) * clock_pair_ns();

		res->copy_ns = (out * cc->out_ns_b + back * cc->back_ns_b) / reqs;
		res->ovh_ns = (t - clk) / reqs - res->copy_ns;
		/* The method before, unchanged, for comparison. */
		res->ovh_hot_ns = (t - (out + back) * hot) / reqs;
	}
	return 0;
}

/* --only: exactly @n requests, backend stepped in turn, no timing loop. */
static int counted_run(const struct mode *mode, uint32_t size, unsigned int depth,
		       uint8_t layout, enum dir dir, bool touch, uint64_t n)
{
	static struct run r;
	uint64_t t0, t1;
	int ret;

	ret = run_open(&r, mode, size, depth, layout, dir, touch);
	if (ret) {
		fprintf(stderr, "svq: %s setup: %s\n", mode->name, strerror(-ret));
		run_close(&r);
		return 1;
	}
	r.limit = n;
	t0 = bench_now_ns();
	while (r.completed < n && !failed(&r))
		driver_step(&r, true);
	t1 = bench_now_ns();
	ret = failed(&r);
	if (ret)
		fprintf(stderr, "svq: %s: %" PRIu64 " driver and %" PRIu64
			" backend errors\n", mode->name, r.errors, r.be.errors);
	else
		printf("%s %u %u %s: %" PRIu64 " requests in %.3f ms\n", mode->name,
		       size, depth, layout == SVQISO_LAYOUT_PACKED ? "packed" : "split",
		       r.completed, (double)(t1 - t0) / 1e6);
	run_close(&r);
	return ret || r.errors ? 1 : 0;
}

/* ---- configurations and reporting ---- */

static const uint32_t sizes[] = { 512, 4096, 65536, 1u << 20 };
static const unsigned int depths[] = { 1, 32 };
#define NR_SZ (sizeof(sizes) / sizeof(sizes[0]))
#define NR_QD (sizeof(depths) / sizeof(depths[0]))
#define MAX_MODES (2 + SVQISO_NR_COPY)
#define MAX_REPEAT 15

static struct mode modes[MAX_MODES];
static unsigned int nmodes;

static void modes_init(void)
{
	static const int kinds[] = { SVQISO_COPY_MEMCPY, SVQISO_COPY_MOVSB,
				     SVQISO_COPY_NT, SVQISO_COPY_AUTO };
	unsigned int i;

	modes[nmodes++] = (struct mode){ .kind = K_DIRECT, .name = "direct" };
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		struct mode *m;

		if (!svqiso_copy_supported(kinds[i]))
			continue;
		m = &modes[nmodes++];
		m->kind = K_ARENA;
		m->copy = kinds[i];
		snprintf(m->name, sizeof(m->name), "arena-%s",
			 svqiso_copy_name(kinds[i]));
	}
	modes[nmodes++] = (struct mode){ .kind = K_MEMFD, .copy = SVQISO_COPY_AUTO,
					 .name = "memfd" };
}

static const struct mode *mode_by_name(const char *name)
{
	unsigned int i;

	for (i = 0; i < nmodes; i++)
		if (!strcmp(modes[i].name, name))
			return &modes[i];
	return NULL;
}

/* --modes: skip every mode but direct and those named in @list. */
static int modes_select(const char *list)
{
	char buf[256], *tok, *save = NULL;
	struct mode *m;
	unsigned int i;

	if (strlen(list) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, list);
	for (i = 1; i < nmodes; i++)
		modes[i].skip = true;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		m = (struct mode *)mode_by_name(tok);
		if (!m) {
			fprintf(stderr, "svq: --modes: no mode %s\n", tok);
			return -EINVAL;
		}
		m->skip = false;
	}
	return 0;
}

static int layout_by_name(const char *s)
{
	if (!strcmp(s, "split"))
		return SVQISO_LAYOUT_SPLIT;
	if (!strcmp(s, "packed"))
		return SVQISO_LAYOUT_PACKED;
	return -1;
}

static const char *layout_name(uint8_t l)
{
	return l == SVQISO_LAYOUT_PACKED ? "packed" : "split";
}

/* Medians per [layout][size][depth][mode]; measured false where not run. */
static struct result med[SVQISO_NR_LAYOUTS][NR_SZ][NR_QD][MAX_MODES];
static bool measured[SVQISO_NR_LAYOUTS][NR_SZ][NR_QD];
/* Whether the guest touches its data in med[] (the default); if it does,
 * 4 KiB QD32 also runs without touching, into nt_med[layout]. */
static bool touch = true;
static bool verbose;	/* --verbose: every run on stderr */
static uint64_t replay_ns;	/* each ceiling replay (replay_rate()) */
static struct result nt_med[SVQISO_NR_LAYOUTS][MAX_MODES];
static bool nt_measured[SVQISO_NR_LAYOUTS];

static double median_of(const struct result *v, unsigned int n, size_t off)
{
	double x[MAX_REPEAT];
	unsigned int i;

	for (i = 0; i < n; i++)
		x[i] = *(const double *)((const char *)&v[i] + off);
	if (isnan(x[0]))
		return NAN;
	return bench_median(x, n);
}

static void fmt_size(char *buf, size_t n, uint32_t len)
{
	if (len >= 1u << 20)
		snprintf(buf, n, "%u MiB", len >> 20);
	else if (len >= 1u << 10)
		snprintf(buf, n, "%u KiB", len >> 10);
	else
		snprintf(buf, n, "%u B", len);
}

static void json_num(char *buf, size_t n, double v, const char *fmt)
{
	if (isnan(v))
		snprintf(buf, n, "null");
	else
		snprintf(buf, n, fmt, v);
}

static const char *pool_name(const struct mode *m)
{
	return m->kind == K_DIRECT ? "none" : m->kind == K_ARENA ? "arena" : "memfd";
}

/* One JSON line per mode of one configuration. */
static void report_json(struct bench *b, const struct result *x, unsigned int l,
			unsigned int s, unsigned int q, unsigned int repeat,
			uint64_t ns, enum dir dir, bool touched)
{
	unsigned int m;

	for (m = 0; m < nmodes; m++) {
		bool iso = modes[m].kind != K_DIRECT;
		char sys[32], ins[32], ovh[32], hot[32], rat[32], rtt[32];
		char cns[32], cb[32], rpi[32], rpd[32];

		json_num(sys, sizeof(sys), x[m].sys_req, "%.4f");
		json_num(ins, sizeof(ins), x[m].ins_req, "%.0f");
		json_num(ovh, sizeof(ovh), iso ? x[m].ovh_ns : NAN, "%.1f");
		json_num(hot, sizeof(hot), iso ? x[m].ovh_hot_ns : NAN, "%.1f");
		json_num(rtt, sizeof(rtt), x[m].rtt_ns, "%.0f");
		json_num(rat, sizeof(rat), iso ? x[m].ratio : NAN, "%.3f");
		json_num(cns, sizeof(cns), iso ? x[m].copy_ns : NAN, "%.1f");
		json_num(cb, sizeof(cb), iso ? x[m].copy_bound : NAN, "%.3f");
		json_num(rpi, sizeof(rpi), iso ? x[m].replay_iso : NAN, "%.3f");
		json_num(rpd, sizeof(rpd), iso ? x[m].replay_direct : NAN, "%.3f");
		bench_json(b, "\"figure\":\"svq\",\"mode\":\"%s\",\"pool\":\"%s\","
			   "\"copy\":\"%s\",\"bytes\":%u,\"depth\":%u,"
			   "\"layout\":\"%s\",\"dir\":\"%s\",\"touch\":%s,"
			   "\"ring\":%u,"
			   "\"repeat\":%u,\"run_ms\":%.0f,\"rps\":%.0f,"
			   "\"gbps\":%.3f,\"ns_per_req\":%.1f,"
			   "\"syscalls_per_req\":%s,\"instructions_per_req\":%s,"
			   "\"ratio_vs_direct\":%s,\"svq_overhead_ns\":%s,"
			   "\"svq_overhead_hot_copy_ns\":%s,"
			   "\"copy_ns\":%s,\"copy_bound\":%s,"
			   "\"replay_iso_ratio\":%s,\"replay_direct_ratio\":%s,"
			   "\"xcpu_round_trip_ns\":%s",
			   modes[m].name, pool_name(&modes[m]),
			   iso ? svqiso_copy_name(modes[m].copy) : "none",
			   sizes[s], depths[q], layout_name((uint8_t)l),
			   dir_name[dir], touched ? "true" : "false", NUM, repeat,
			   (double)ns / 1e6, x[m].rps, x[m].rps * sizes[s] / 1e9,
			   x[m].ns_req, sys, ins, rat, ovh, hot, cns, cb, rpi, rpd,
			   rtt);
	}
}

/* Plot tables: QD32, split ring. */
static void report_dat(struct bench *b)
{
	const unsigned int l = SVQISO_LAYOUT_SPLIT, q = 1;
	FILE *f = bench_dat(b, "qd32-split"), *g = bench_dat(b, "qd32-split-ratio");
	unsigned int s, m;

	if (!f || !g)
		goto out;
	fprintf(f, "# svq, QD32, split ring: ns per request (median)\n# bytes");
	fprintf(g, "# svq, QD32, split ring: isolated/direct requests/s\n# bytes");
	for (m = 0; m < nmodes; m++) {
		fprintf(f, " %s", modes[m].name);
		if (m)
			fprintf(g, " %s", modes[m].name);
	}
	fputc('\n', f);
	fputc('\n', g);
	for (s = 0; s < NR_SZ; s++) {
		const struct result *x = med[l][s][q];

		if (!measured[l][s][q])
			continue;
		fprintf(f, "%u", sizes[s]);
		fprintf(g, "%u", sizes[s]);
		for (m = 0; m < nmodes; m++) {
			fprintf(f, " %.1f", x[m].ns_req);
			if (m)
				fprintf(g, " %.3f", x[m].ratio);
		}
		fputc('\n', f);
		fputc('\n', g);
	}
out:
	if (f)
		fclose(f);
	if (g)
		fclose(g);
}

/* One markdown table: a layout and depth, a row per size. */
static void report_md_table(struct bench *b, unsigned int l, unsigned int q,
			    unsigned int ia, unsigned int im)
{
	unsigned int s, m;

	bench_md(b, "### %s ring, queue depth %u\n\n| size |",
		 layout_name((uint8_t)l), depths[q]);
	for (m = 0; m < nmodes; m++)
		bench_md(b, " %s |", modes[m].name);
	bench_md(b, " syscalls/req (%s, memfd) | svq ns/req excl. copy (%s) |"
		 " same, hot-copy method | CPU round trip ns |\n|---:|",
		 modes[ia].name, modes[ia].name);
	for (m = 0; m < nmodes + 4; m++)
		bench_md(b, "---:|");
	bench_md(b, "\n");
	for (s = 0; s < NR_SZ; s++) {
		const struct result *x = med[l][s][q];
		char sz[32];

		if (!measured[l][s][q])
			continue;
		fmt_size(sz, sizeof(sz), sizes[s]);
		bench_md(b, "| %s | %.1f |", sz, x[0].rps / 1e3);
		for (m = 1; m < nmodes; m++)
			bench_md(b, " %.1f (%.2f) |", x[m].rps / 1e3,
				 x[m].ratio);
		if (isnan(x[ia].sys_req))
			bench_md(b, " n/a |");
		else
			bench_md(b, " %.3f, %.1f |", x[ia].sys_req, x[im].sys_req);
		bench_md(b, " %.0f | %.0f | %.0f |\n", x[ia].ovh_ns, x[ia].ovh_hot_ns,
			 x[0].rtt_ns);
	}
	bench_md(b, "\n");
}

static const char *pass(bool ok)
{
	return ok ? "PASS" : "MISS";
}

/*
 * Under a missed in-process ratio: what the copies alone allow. The svq runs
 * on the guest driver's thread, which in direct mode spends at most direct's
 * time per request on its own work; isolated, it also makes the copies, at
 * the cost the calibration measured on this machine. If the driver's thread
 * is what limits direct (it busy-polls, so its slack cannot be seen), the
 * ratio can be no better than 1 / (1 + copy ns x direct requests per ns),
 * with no svq bookkeeping at all: paired per repeat, the median.
 */
static void copy_bound_line(struct bench *b, const struct result *x)
{
	bench_md(b, "  - the copies alone, at their calibrated %.0f ns per "
		 "request on the driver's CPU, allow about %.3f with the svq on "
		 "the driver's thread and no bookkeeping at all", x->copy_ns,
		 x->copy_bound);
	if (x->copy_bound < 0.8)
		bench_md(b, "; 0.8 would need them at %.0f ns or less, or on a "
			 "core of their own\n",
			 x->copy_ns / (4.0 * (1.0 / x->copy_bound - 1.0)));
	else
		bench_md(b, ": the rest of the gap is the svq's own work\n");
}

/*
 * Under a missed in-process ratio: the ceiling replay (replay_rate()) of the
 * run's flow, paired with the same repeat's direct run. Its isolated figure
 * bounds the ratio with no svq bookkeeping at all; its direct figure shows
 * how near the same kind of replay comes to the real direct run.
 */
static void replay_line(struct bench *b, const struct result *x)
{
	if (isnan(x->replay_iso))
		return;
	bench_md(b, "  - replayed with no ring and no svq (the guest's touches and "
		 "the copies on the driver's CPU, the backend's copies on the "
		 "other, requests passed one by one through two counters), the "
		 "isolated flow reaches %.3f of direct and the direct flow %.3f: "
		 "%s\n", x->replay_iso, x->replay_direct,
		 x->replay_iso < 0.8 ?
		 "the copies' cost alone keeps the ratio below 0.8 here, whatever "
		 "the svq's own work" :
		 "the ratio has room above 0.8 here, and the rest of the gap is "
		 "the svq's own work");
}

static void report_targets(struct bench *b, unsigned int ia, unsigned int im)
{
	const unsigned int s4 = 1, qd32 = 1;	/* 4 KiB, QD32 */
	const struct result *x = med[SVQISO_LAYOUT_SPLIT][s4][qd32];
	const char *an = modes[ia].name;
	double worst = NAN;
	unsigned int l, s, m;

	bench_md(b, "### Targets\n\n");
	for (l = 0; l < SVQISO_NR_LAYOUTS; l++) {
		const struct result *y = med[l][s4][qd32];
		double r = y[ia].ratio;

		if (!measured[l][s4][qd32])
			bench_md(b, "- in process, 4 KiB QD32 %s guest: isolated "
				 "(%s)/direct >= 0.8 (not measured): SKIP\n",
				 layout_name((uint8_t)l), an);
		else
			bench_md(b, "- in process, 4 KiB QD32 %s guest: isolated "
				 "(%s)/direct = %.3f >= 0.8: %s\n",
				 layout_name((uint8_t)l), an, r, pass(r >= 0.8));
		if (measured[l][s4][qd32] && r < 0.8 && !isnan(y[ia].copy_bound))
			copy_bound_line(b, &y[ia]);
		if (measured[l][s4][qd32] && r < 0.8)
			replay_line(b, &y[ia]);
	}
	if (measured[SVQISO_LAYOUT_SPLIT][s4][qd32]) {
		bench_md(b, "- svq overhead excluding the copy, 4 KiB QD32 split "
			 "(%s) = %.0f ns/request < 150: %s\n", an, x[ia].ovh_ns,
			 pass(x[ia].ovh_ns < 150));
		bench_md(b, "- arena/memfd requests/s, 4 KiB QD32 split = %.1fx "
			 ">= 20x: %s\n", x[ia].rps / x[im].rps,
			 pass(x[ia].rps >= 20 * x[im].rps));
	} else {
		bench_md(b, "- svq overhead and arena/memfd: 4 KiB QD32 split "
			 "not measured\n");
	}
	/* The guest not touching its data flatters direct access less and
	 * isolation more or less depending on the direction: shown too. */
	for (l = 0; l < SVQISO_NR_LAYOUTS; l++) {
		const struct result *y = nt_med[l];
		double r = y[ia].ratio;

		if (!nt_measured[l])
			continue;
		bench_md(b, "- 4 KiB QD32 %s, guest not touching its data "
			 "(--no-touch): isolated (%s)/direct = %.3f >= 0.8: %s\n",
			 layout_name((uint8_t)l), an, r, pass(r >= 0.8));
		if (r < 0.8 && !isnan(y[ia].copy_bound))
			copy_bound_line(b, &y[ia]);
		if (r < 0.8)
			replay_line(b, &y[ia]);
		if (l == SVQISO_LAYOUT_SPLIT)
			bench_md(b, "- svq overhead excluding the copy, 4 KiB QD32 "
				 "split, --no-touch (%s) = %.0f ns/request < 150: "
				 "%s\n", an, y[ia].ovh_ns, pass(y[ia].ovh_ns < 150));
	}
	for (l = 0; l < SVQISO_NR_LAYOUTS; l++)
		for (s = 0; s < NR_SZ; s++)
			for (m = 0; m < nmodes; m++) {
				double v = med[l][s][qd32][m].sys_req;

				if (!measured[l][s][qd32] || modes[m].kind != K_ARENA ||
				    isnan(v))
					continue;
				if (isnan(worst) || v > worst)
					worst = v;
			}
	if (isnan(worst))
		bench_md(b, "- syscalls/request at QD32 (arena) < 0.2: not measured\n");
	else
		bench_md(b, "- syscalls/request at QD32 (arena, worst configuration) "
			 "= %.3f < 0.2: %s\n", worst, pass(worst < 0.2));
}

static void report(struct bench *b, unsigned int repeat, uint64_t ns, enum dir dir)
{
	unsigned int ia = (unsigned int)(mode_by_name("arena-auto") - modes);
	unsigned int im = (unsigned int)(mode_by_name("memfd") - modes);
	unsigned int l, s, q;

	for (l = 0; l < SVQISO_NR_LAYOUTS; l++)
		for (s = 0; s < NR_SZ; s++)
			for (q = 0; q < NR_QD; q++)
				if (measured[l][s][q])
					report_json(b, med[l][s][q], l, s, q, repeat,
						    ns, dir, touch);
	for (l = 0; l < SVQISO_NR_LAYOUTS; l++)
		if (nt_measured[l])
			report_json(b, nt_med[l], l, 1, 1, repeat, ns, dir, false);
	report_dat(b);

	bench_md(b, "## Shadow virtqueue against direct access\n\n%s\n\n",
		 b->machine_md);
	bench_md(b, "Guest driver thread and backend thread on two CPUs, both "
		 "busy-polling; ring of %u; one data segment per request, "
		 "direction %s; the backend copies each request's data from or to "
		 "a private buffer. %s Median of %u runs of %.0f ms, modes "
		 "interleaved: each repeat runs direct, then arena-auto, then the "
		 "other modes. Cells: thousands of requests/s (ratio to direct). "
		 "A ratio is the median over the repeats of a run's requests/s "
		 "over the direct run of the same repeat, so both sides of each "
		 "ratio are measured seconds apart at most; it is not the ratio "
		 "of the two medians shown.\n\n",
		 NUM, dir_name[dir], touch ?
		 "The guest touches its data as an application does: it writes "
		 "the whole buffer of a write request before posting it and reads "
		 "the whole buffer of a read request after completion." :
		 "The guest does not touch its data (--no-touch): it marks and "
		 "checks only both ends of each buffer.",
		 repeat, (double)ns / 1e6);
	for (l = 0; l < SVQISO_NR_LAYOUTS; l++)
		for (q = 0; q < NR_QD; q++) {
			bool any = false;

			for (s = 0; s < NR_SZ; s++)
				any |= measured[l][s][q];
			if (any)
				report_md_table(b, l, q, ia, im);
		}
	if (nt_measured[0] || nt_measured[1]) {
		bench_md(b, "### 4 KiB, queue depth 32, guest not touching its "
			 "data (--no-touch)\n\n| layout | direct | %s | ratio | "
			 "svq ns/req excl. copy | same, hot-copy method | "
			 "CPU round trip ns |\n"
			 "|---|---:|---:|---:|---:|---:|---:|\n", modes[ia].name);
		for (l = 0; l < SVQISO_NR_LAYOUTS; l++) {
			const struct result *y = nt_med[l];

			if (nt_measured[l])
				bench_md(b, "| %s | %.1f | %.1f | %.2f | %.0f | %.0f | %.0f |\n",
					 layout_name((uint8_t)l), y[0].rps / 1e3,
					 y[ia].rps / 1e3, y[ia].ratio,
					 y[ia].ovh_ns, y[ia].ovh_hot_ns, y[0].rtt_ns);
		}
		bench_md(b, "\n");
	}
	report_targets(b, ia, im);
	bench_md(b, "\nThe ceiling replay under a missed 4 KiB QD32 ratio runs "
		 "the whole data flow of the run at once on both CPUs with nothing "
		 "else: the guest's buffers taken and given back as the guest "
		 "does, their touches, the svq's two copies through an arena "
		 "handed out first in, first out, and the backend's copies, "
		 "requests passed in order through two counters, each published "
		 "as it is made and completions once per pass, as on the rings. "
		 "It is run right after the repeat's direct run, once with the "
		 "svq's copies (isolated) and once without (the backend on the "
		 "guest's buffers: direct), and both rates are given over that "
		 "direct run's. With no descriptor, index, check or clock read, "
		 "the isolated replay is what an svq with no work of its own "
		 "would reach; its direct replay coming out at or above the real "
		 "direct run shows the replay's hand-over is not what holds it "
		 "back.\n");
	bench_md(b, "\nThe svq overhead is the driver thread's time inside "
		 "process_avail/process_used calls that moved requests, per "
		 "request, minus the cost of the bytes those calls copied (svq "
		 "counters). That cost is calibrated per configuration and copy "
		 "strategy just before each run, under the cache conditions of the "
		 "run: the data flow is replayed without rings (the guest's "
		 "buffers, an arena of the same size handed out first in, first "
		 "out, in batches of at most 128 KiB, a thread on the backend's CPU "
		 "reading and writing each piece between the copies), and copy-out "
		 "(guest to arena, whose lines the other CPU touched last) and "
		 "copy-back (arena to guest, lines the other CPU just wrote) are "
		 "timed separately. What the clock reads add to each timed call "
		 "(the median empty interval) is taken off too. The replay cannot "
		 "catch everything the run's copies meet (the backend working at "
		 "the same time, the rings' own lines), so for large buffers, where "
		 "the copies are nearly all of the svq's time, the remainder is "
		 "small against their noise and can come out negative. The "
		 "hot-copy method, kept for comparison, subtracts the bytes at the "
		 "speed of copying one hot buffer over and over, which is too cheap "
		 "for copy-back and so charges the cross-core transfers to the svq. "
		 "CPU round trip: one cache line's round trip between the two CPUs "
		 "just before the direct runs (median); on this virtual machine the "
		 "host moves the two CPUs between placements that differ by a "
		 "factor of several, and every figure moves with it, so compare "
		 "only rows of like round trips. Instructions per request: %s.\n\n",
		 ins_fd >= 0 ? "hardware counter" :
		 "no hardware counter on this machine; use --only ... --requests N "
		 "under callgrind");
}

/* Run every mode of one configuration; medians into @med (one per mode). */
static int run_config(unsigned int l, unsigned int s, unsigned int q,
		      unsigned int repeat, uint64_t ns, enum dir dir, bool touched,
		      uint64_t calib_ns, struct result *med_out)
{
	static struct result v[MAX_MODES][MAX_REPEAT];
	struct copy_cost cc[MAX_MODES] = { { 0, 0 } };
	unsigned int order[MAX_MODES], r, m, k, n = 0;
	int ret;

	/* Direct first, then the target mode, then the rest: a repeat's
	 * isolated runs are measured against the direct run just before
	 * them, and arena-auto right after it. */
	order[n++] = 0;
	for (m = 1; m < nmodes; m++)
		if (modes[m].kind == K_ARENA && modes[m].copy == SVQISO_COPY_AUTO)
			order[n++] = m;
	for (m = 1; m < nmodes; m++)
		if (!(modes[m].kind == K_ARENA && modes[m].copy == SVQISO_COPY_AUTO))
			order[n++] = m;
	for (r = 0; r < repeat; r++)
		for (k = 0; k < nmodes; k++) {
			m = order[k];
			if (modes[m].skip) {
				v[m][r] = (struct result){
					NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN,
					NAN, NAN, NAN, NAN };
				continue;
			}
			/* Right before each run: how fast data moves between
			 * the CPUs changes over time on a virtual machine. */
			v[m][r].replay_iso = NAN;
			v[m][r].replay_direct = NAN;
			/* Right after direct's run, in the configuration of
			 * the in-process target, for its mode: both flows'
			 * ceiling replays. */
			if (replay_ns && m && modes[m].kind == K_ARENA &&
			    modes[m].copy == SVQISO_COPY_AUTO &&
			    sizes[s] == 4096 && depths[q] == 32 &&
			    v[0][r].rps > 0) {
				double ri = replay_rate(modes[m].copy, sizes[s],
							depths[q], dir, touched,
							true, replay_ns);
				double rd = replay_rate(modes[m].copy, sizes[s],
							depths[q], dir, touched,
							false, replay_ns);

				if (ri <= 0 || rd <= 0) {
					fprintf(stderr, "svq: %u B QD%u: ceiling "
						"replay failed\n", sizes[s],
						depths[q]);
					return -EIO;
				}
				v[m][r].replay_iso = ri / v[0][r].rps;
				v[m][r].replay_direct = rd / v[0][r].rps;
			}
			if (modes[m].kind != K_DIRECT) {
				ret = calibrate(modes[m].copy, sizes[s], depths[q],
						dir, touched, calib_ns, &cc[m]);
				if (ret)
					return ret;
			}
			ret = timed_run(&modes[m], sizes[s], depths[q], (uint8_t)l,
					dir, touched, &cc[m], ns, &v[m][r]);
			if (ret)
				return ret;
			v[m][r].ratio = m && v[0][r].rps > 0 ?
					v[m][r].rps / v[0][r].rps : NAN;
			v[m][r].copy_bound = m && v[0][r].rps > 0 ?
				1.0 / (1.0 + v[m][r].copy_ns * v[0][r].rps / 1e9) :
				NAN;
			if (verbose)
				fprintf(stderr, "svq: %s %u B QD%u %s%s run %u: %.0f "
					"req/s (%.2f of direct), svq %.0f ns/req excl. "
					"copy (hot-copy method %.0f), cross-CPU round "
					"trip %.0f ns\n",
					layout_name((uint8_t)l), sizes[s], depths[q],
					modes[m].name, touched ? "" : " no-touch", r,
					v[m][r].rps, v[m][r].ratio, v[m][r].ovh_ns,
					v[m][r].ovh_hot_ns, v[m][r].rtt_ns);
		}
	for (m = 0; m < nmodes; m++) {
		struct result *x = &med_out[m];

		x->rps = median_of(v[m], repeat, offsetof(struct result, rps));
		x->ns_req = median_of(v[m], repeat, offsetof(struct result, ns_req));
		x->sys_req = median_of(v[m], repeat, offsetof(struct result, sys_req));
		x->ins_req = median_of(v[m], repeat, offsetof(struct result, ins_req));
		x->ovh_ns = modes[m].kind == K_DIRECT ? NAN :
			median_of(v[m], repeat, offsetof(struct result, ovh_ns));
		x->ovh_hot_ns = modes[m].kind == K_DIRECT ? NAN :
			median_of(v[m], repeat, offsetof(struct result, ovh_hot_ns));
		x->copy_ns = modes[m].kind == K_DIRECT ? NAN :
			median_of(v[m], repeat, offsetof(struct result, copy_ns));
		x->copy_bound = modes[m].kind == K_DIRECT ? NAN :
			median_of(v[m], repeat, offsetof(struct result, copy_bound));
		x->rtt_ns = median_of(v[m], repeat, offsetof(struct result, rtt_ns));
		x->replay_iso = median_of(v[m], repeat,
					  offsetof(struct result, replay_iso));
		x->replay_direct = median_of(v[m], repeat,
					     offsetof(struct result, replay_direct));
		x->ratio = m ? median_of(v[m], repeat, offsetof(struct result, ratio)) :
			       NAN;
	}
	fprintf(stderr, "svq: %s %u B QD%u%s done\n", layout_name((uint8_t)l),
		sizes[s], depths[q], touched ? "" : " no-touch");
	return 0;
}

/* One configuration of the main tables; 4 KiB QD32 also without touch. */
static int run_main(unsigned int l, unsigned int s, unsigned int q,
		    unsigned int repeat, uint64_t ns, enum dir dir, uint64_t calib_ns)
{
	int ret;

	ret = run_config(l, s, q, repeat, ns, dir, touch, calib_ns, med[l][s][q]);
	if (ret)
		return ret;
	measured[l][s][q] = true;
	if (touch && s == 1 && q == 1) {
		ret = run_config(l, s, q, repeat, ns, dir, false, calib_ns, nt_med[l]);
		if (ret)
			return ret;
		nt_measured[l] = true;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_svq [--quick] [--out DIR] [--time MS] "
		"[--repeat N] [--dir mix|read|write] [--no-touch] [--verbose]\n"
		"                 [--config SIZE,DEPTH,LAYOUT] [--modes M1,M2,...]\n"
		"       bench_svq --only MODE,SIZE,DEPTH,LAYOUT --requests N "
		"[--dir ...] [--no-touch]\n");
}

int main(int argc, char **argv)
{
	/* --quick: a few configurations that show every mode works. */
	static const unsigned int quick[][3] = {
		{ SVQISO_LAYOUT_SPLIT, 1, 1 },	/* 4 KiB QD32 split */
		{ SVQISO_LAYOUT_PACKED, 1, 0 },	/* 4 KiB QD1 packed */
		{ SVQISO_LAYOUT_PACKED, 2, 1 },	/* 64 KiB QD32 packed */
	};
	const char *only = NULL, *config = NULL, *sel = NULL;
	unsigned long long requests = 0, time_ms = 0, repeat = 0;
	enum dir dir = DIR_MIX;
	uint64_t calib_ns;
	struct bench b;
	unsigned int l, s, q, i;
	int rc = 1, k;

	/* --only writes no result files: keep an earlier full run's. */
	memset(&b, 0, sizeof(b));
	for (k = 1; k < argc; k++)
		if (!strcmp(argv[k], "--only"))
			only = "";
	if (!only && bench_init(&b, "svq", &argc, argv))
		return 1;
	for (k = 1; k < argc; k++) {
		const char *a = argv[k], *v = k + 1 < argc ? argv[k + 1] : NULL;

		if (!strcmp(a, "--quick"))
			continue;	/* only reached with --only */
		if (!strcmp(a, "--no-touch")) {
			touch = false;
			continue;
		}
		if (!strcmp(a, "--verbose")) {
			verbose = true;
			continue;
		}
		if (!v) {
			usage();
			goto out;
		}
		k++;
		if (!strcmp(a, "--out")) {
			continue;	/* only reached with --only */
		} else if (!strcmp(a, "--only")) {
			only = v;
		} else if (!strcmp(a, "--config")) {
			config = v;
		} else if (!strcmp(a, "--modes")) {
			sel = v;
		} else if (!strcmp(a, "--requests")) {
			requests = strtoull(v, NULL, 0);
		} else if (!strcmp(a, "--time")) {
			time_ms = strtoull(v, NULL, 0);
		} else if (!strcmp(a, "--repeat")) {
			repeat = strtoull(v, NULL, 0);
		} else if (!strcmp(a, "--dir")) {
			for (i = 0; i < 3 && strcmp(v, dir_name[i]); i++)
				;
			if (i == 3) {
				usage();
				goto out;
			}
			dir = (enum dir)i;
		} else {
			usage();
			goto out;
		}
	}
	modes_init();
	if (sel && modes_select(sel)) {
		usage();
		goto out;
	}
	bench_pin(0);

	if (only) {
		char mname[32], lname[16];
		unsigned int size, depth;
		const struct mode *m;
		int lay;

		if (sscanf(only, "%31[^,],%u,%u,%15s", mname, &size, &depth,
			   lname) != 4 ||
		    !(m = mode_by_name(mname)) || (lay = layout_by_name(lname)) < 0 ||
		    size < 2 * SEQ_BYTES || size > (64u << 20) || !depth ||
		    depth > MAX_DEPTH || !requests) {
			fprintf(stderr, "svq: bad --only/--requests; modes:");
			for (i = 0; i < nmodes; i++)
				fprintf(stderr, " %s", modes[i].name);
			fprintf(stderr, "\n");
			usage();
			goto out;
		}
		rc = counted_run(m, size, depth, (uint8_t)lay, dir, touch, requests);
		goto out;
	}

	if (!time_ms)
		time_ms = b.quick ? 30 : 600;
	if (!repeat)
		repeat = b.quick ? 1 : 5;
	if (repeat > MAX_REPEAT || time_ms > 600000) {
		usage();
		goto out;
	}
	/* Before any thread exists, so that every thread is counted. */
	sys_fd = bench_sys_open();
	ins_fd = instructions_open();
	if (sys_fd < 0)
		fprintf(stderr, "svq: no syscall counter: %s\n", strerror(-sys_fd));

	/* Calibrating the copies: a fiftieth of a run per copy strategy. */
	calib_ns = time_ms * 1000000 / 50;
	/* The ceiling replays: a third of a run each, two per repeat. */
	replay_ns = time_ms * 1000000 / 3;
	if (config) {
		char lname[16];
		unsigned int size, depth;
		int lay;

		s = q = 0;
		if (sscanf(config, "%u,%u,%15s", &size, &depth, lname) != 3 ||
		    (lay = layout_by_name(lname)) < 0) {
			usage();
			goto out;
		}
		while (s < NR_SZ && sizes[s] != size)
			s++;
		while (q < NR_QD && depths[q] != depth)
			q++;
		if (s == NR_SZ || q == NR_QD) {
			fprintf(stderr, "svq: --config: sizes 512, 4096, 65536, "
				"1048576; depths 1, 32\n");
			goto out;
		}
		if (run_main((unsigned int)lay, s, q, (unsigned int)repeat,
			     time_ms * 1000000, dir, calib_ns))
			goto out;
	} else if (b.quick) {
		for (i = 0; i < sizeof(quick) / sizeof(quick[0]); i++)
			if (run_main(quick[i][0], quick[i][1], quick[i][2],
				     (unsigned int)repeat, time_ms * 1000000, dir,
				     calib_ns))
				goto out;
	} else {
		for (l = 0; l < SVQISO_NR_LAYOUTS; l++)
			for (q = 0; q < NR_QD; q++)
				for (s = 0; s < NR_SZ; s++)
					if (run_main(l, s, q, (unsigned int)repeat,
						     time_ms * 1000000, dir,
						     calib_ns))
						goto out;
	}
	report(&b, (unsigned int)repeat, time_ms * 1000000, dir);
	rc = 0;
out:
	if (sys_fd >= 0)
		close(sys_fd);
	if (ins_fd >= 0)
		close(ins_fd);
	bench_fini(&b);
	return rc;
}
