/* SPDX-License-Identifier: MIT */
/*
 * bench_net: whether RX buffers reach a net backend as fast as the guest
 * posts them. A guest virtio-net driver (the driver model of tests/guest,
 * one RX and one TX queue of 256 entries) talks to DPDK's testpmd, an
 * unmodified vhost-user net backend in forward mode 5tswap, which echoes
 * every TX frame back on RX and drops a frame that finds no RX buffer.
 * The guest keeps 248 RX buffers of 1 KiB (header and frame) posted,
 * refilling each as its frame is taken, and sends frames of 60 to 1012
 * bytes (header and frame in one descriptor each, as Linux's small
 * receive buffers) with at most --window of them on their way (sent, and
 * neither back nor overtaken by a later one; 192 by default, three
 * quarters of the ring). With a window below the buffers posted, a backend
 * that sees every refill at once never lacks a buffer: whatever is dropped
 * waited for a refill on its way to the backend. Three modes, interleaved
 * and repeated:
 *
 *   direct           plain vhost-user: testpmd reads the guest rings.
 *   isolated         shadow virtqueues on the adapter's relay thread: the
 *                    guest's TX kicks and RX refill kicks wake the relay,
 *                    which forwards them to the shadow rings.
 *   isolated-inline  SVQISO_VU_F_EXTERNAL_LOOP: the guest thread calls
 *                    svqiso_vu_queue_kick() where it would write a kick
 *                    eventfd (refills reach the shadow ring before the
 *                    guest goes on), and svqiso_vu_queue_process() when
 *                    it finds a backend call eventfd readable.
 *
 *   bench_net [--out DIR] [--quick] [--frames N] [--repeats N]
 *             [--window N] [--modes direct,isolated,isolated-inline]
 *             [--loop auto|uring|epoll|busy] [--no-pin]
 *
 * --frames is per run (50000; --quick: 5000), --repeats the runs per mode
 * (3; --quick: 1), --loop the relay thread's event loop (the adapter's
 * loop_mode).
 *
 * Frames come back in the order they went (one queue pair, testpmd keeps
 * it), so a frame back also says that every earlier one not back was
 * dropped. Dropped is sent less received once the run has drained (no
 * frame back for 200 ms); the rate is dropped over sent.
 *
 * Placement, as test_net does it: testpmd's lcores (its forwarding one
 * spins) on the last CPU this process may use, the guest thread and the
 * relay thread (through the relay_start hook) on the others; on a 2-CPU
 * machine those two share one CPU. --no-pin leaves the guest and the
 * relay to the scheduler (testpmd's lcores stay bound).
 *
 * Exit status: 0; 1 on an error (a setup failure, a frame that is not
 * what was sent, the adapter's counters disagreeing); 77 when dpdk-testpmd
 * is not on PATH.
 */
#define _GNU_SOURCE	/* sched_setaffinity, CPU_* */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <svqiso/svqiso.h>
#include <svqiso/vu.h>
#include "bench.h"
#include "guest.h"
#include "proc.h"
#include "testpmd.h"

#define GUEST_GPA	0x40000000ull
#define GUEST_SIZE	(16ull << 20)
#define RING_NUM	256
#define RX_POSTED	248
#define BUF_BYTES	1024u			/* header and frame */
#define FRAME_ROOM	(BUF_BYTES - VIRTIO_NET_HDR_LEN)
#define FRAME_MIN	60u
#define MAX_REPEATS	15
#define QUIET_NS	200000000ull		/* drained: no frame this long */
#define STUCK_NS	20000000ull		/* a full window, nothing back */
#define STALL_NS	5000000000ull		/* nothing at all: give up */
#define SEQ_KEY		0x5eb1e55ed0c0ffeeull
#define ETH_LOCAL	0x88b5			/* IEEE local experimental */

#define F_INDIRECT	(1ull << 28)
#define F_EVENT_IDX	(1ull << 29)
#define F_VERSION_1	(1ull << 32)

static const struct {
	const char *name;
	uint8_t mode;
	bool inline_loop;	/* SVQISO_VU_F_EXTERNAL_LOOP, driven inline */
} modes[] = {
	{ "direct", SVQISO_VU_DIRECT, false },
	{ "isolated", SVQISO_VU_ISOLATED, false },
	{ "isolated-inline", SVQISO_VU_ISOLATED, true },
};
#define NR_MODES	(sizeof(modes) / sizeof(modes[0]))
#define M_DIRECT	0
#define M_RELAY		1

/* One run of one mode. */
struct result {
	uint64_t sent, received, dropped;
	uint64_t reordered;		/* frames older than one seen before */
	uint64_t ns;			/* first frame sent to the last back */
	uint64_t rx_forwarded;		/* isolated: RX buffers forwarded */
	uint64_t tx_kicks, rx_kicks;	/* the guest's, per queue */
};

static struct {
	struct bench b;
	struct testpmd pmd;
	struct gmem *gm;
	uint64_t frames;
	unsigned int repeats;
	unsigned int window;
	bool mode_on[NR_MODES];
	bool pin;
	uint8_t loop_mode;		/* --loop: the relay's */
	const char *loop_name;
	cpu_set_t guest_cpus;		/* the guest and the relay run here */
	int pmd_cpu;			/* testpmd's lcores */
	int relay_pin_err;		/* the relay_start hook's first error */
} G = { .pin = true, .loop_name = "auto",
	.pmd = { .pid = -1, .stdin_fd = -1 } };

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= SVQISO_LOG_WARN)
		fprintf(stderr, "bench_net: %s\n", msg);
}

/* ---- frames ---- */

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t frame_len(uint64_t seq)
{
	return FRAME_MIN + (uint32_t)(mix(seq * 0x9e3779b97f4a7c15ull) %
				      (FRAME_ROOM - FRAME_MIN + 1));
}

/*
 * Frame @seq into @f: two MAC addresses, the local experimental type (so
 * 5tswap swaps the addresses and nothing else), a constant body and the
 * sequence number in the last 8 bytes. Return: its length.
 */
static uint32_t frame_make(uint64_t seq, uint8_t *f)
{
	static const uint8_t macs[12] = { 0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2 };
	uint32_t len = frame_len(seq);
	uint64_t v = htole64(seq ^ SEQ_KEY);

	memcpy(f, macs, sizeof(macs));
	f[12] = ETH_LOCAL >> 8;
	f[13] = ETH_LOCAL & 0xff;
	memcpy(f + len - 8, &v, 8);
	return len;
}

/* ---- placement ---- */

/* testpmd on the last CPU we may use, our threads on the others. */
static void choose_cpus(void)
{
	cpu_set_t all;
	int c;

	CPU_ZERO(&G.guest_cpus);
	G.pmd_cpu = 0;
	if (sched_getaffinity(0, sizeof(all), &all)) {
		G.pin = false;
		return;
	}
	for (c = CPU_SETSIZE - 1; c >= 0 && !CPU_ISSET(c, &all); c--)
		;
	if (c < 0) {
		G.pin = false;
		return;
	}
	G.pmd_cpu = c;
	G.guest_cpus = all;
	CPU_CLR(c, &G.guest_cpus);
	if (!CPU_COUNT(&G.guest_cpus))
		G.pin = false;	/* one CPU: nothing to place */
}

static int pin_guest(void)
{
	if (!G.pin)
		return 0;
	return sched_setaffinity(0, sizeof(G.guest_cpus), &G.guest_cpus) ?
	       -errno : 0;
}

/* The adapter's relay thread started: beside the guest. */
static void relay_place(void *ctx)
{
	int rc = pin_guest();
	int none = 0;

	(void)ctx;
	if (rc)
		__atomic_compare_exchange_n(&G.relay_pin_err, &none, rc, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* ---- a session: the adapter, the guest's queues ---- */

struct sess;

struct sq {
	struct sess *s;
	unsigned int index;		/* virtqueue index */
};

struct sess {
	unsigned int m;
	struct svqiso_vu *vu;
	struct netq *rx, *tx;
	struct sq q[2];			/* RX, TX: inline notify contexts */
	int backend_fd[2];		/* inline: the backend's call fds */
	uint64_t top;			/* guest RAM allocations before it */
	int kick_err;			/* inline: first queue_kick error */
};

/* Inline: the guest's notify, handled on its own thread. */
static void inline_notify(void *ctx)
{
	struct sq *q = ctx;
	int rc = svqiso_vu_queue_kick(q->s->vu, q->index);

	if (rc < 0 && !q->s->kick_err)
		q->s->kick_err = rc;
}

static struct gring *ring_of(const struct sess *s, unsigned int i)
{
	return netq_ring(i == NETQ_RX_INDEX(0) ? s->rx : s->tx);
}

static int queue_start(struct sess *s, unsigned int i)
{
	struct gring *r = ring_of(s, i);
	struct svqiso_vu_queue c = {
		.sz = sizeof(c), .ring = gring_addr(r), .num = gring_num(r),
		.layout = gring_layout(r), .base = gring_fresh_base(r),
		.kick_fd = gring_kick_fd(r), .call_fd = gring_call_fd(r),
	};
	int rc;

	if (modes[s->m].inline_loop) {
		c.kick_fd = c.call_fd = -1;
		s->q[i] = (struct sq){ .s = s, .index = i };
		gring_set_notify(r, inline_notify, &s->q[i]);
	}
	rc = svqiso_vu_queue_start(s->vu, i, &c);
	if (!rc && modes[s->m].inline_loop) {
		s->backend_fd[i] = svqiso_vu_queue_backend_fd(s->vu, i);
		rc = s->backend_fd[i] < 0 ? s->backend_fd[i] : 0;
	}
	return rc;
}

static int sess_open(struct sess *s, unsigned int m, uint64_t seed)
{
	SVQISO_OPTS(svqiso_vu_opts, vo, .path = G.pmd.sock,
		    .mode = modes[m].mode, .log = log_cb, .timeout_ms = 5000,
		    .flags = SVQISO_VU_F_QUEUE_PAIRS |
			     (modes[m].inline_loop ? SVQISO_VU_F_EXTERNAL_LOOP : 0),
		    .relay_start = G.pin ? relay_place : NULL,
		    .loop_mode = G.loop_mode);
	struct netq_opts no = { .layout = SVQISO_LAYOUT_SPLIT, .num = RING_NUM,
				.indirect = true, .event_idx = true,
				.frame_room = FRAME_ROOM, .seed = seed,
				.max_pieces = 1 };
	uint64_t offer;
	unsigned int i;
	int rc;

	memset(s, 0, sizeof(*s));
	s->m = m;
	s->top = gmem_alloc_top(G.gm);
	no.role = NETQ_RX;
	no.rx_posted = RX_POSTED;
	rc = netq_new(G.gm, &no, &s->rx);
	if (!rc) {
		no.role = NETQ_TX;
		no.rx_posted = 0;
		no.seed = seed + 1;
		rc = netq_new(G.gm, &no, &s->tx);
	}
	if (rc) {
		fprintf(stderr, "bench_net: guest queues: %s\n", strerror(-rc));
		return rc;
	}
	/* The last session is gone on testpmd's side too. */
	rc = testpmd_wait_unconnected(&G.pmd, 5000);
	if (rc) {
		fprintf(stderr, "bench_net: testpmd still holds a session: %s\n",
			strerror(-rc));
		return rc;
	}
	rc = svqiso_vu_connect(&vo, &s->vu);
	if (rc) {
		fprintf(stderr, "bench_net: connect: %s\n", strerror(-rc));
		return rc;
	}
	/* None of testpmd's device bits (MRG_RXBUF, CTRL_VQ): the model
	 * implements neither. */
	offer = svqiso_vu_get_features(s->vu);
	rc = svqiso_vu_set_features(s->vu, F_VERSION_1 |
				    (offer & (F_INDIRECT | F_EVENT_IDX)));
	for (i = 0; i < gmem_nr_regions(G.gm) && !rc; i++) {
		struct svqiso_mem_region r;

		gmem_region(G.gm, i, &r);
		rc = svqiso_vu_add_region(s->vu, &r);
	}
	if (!rc)
		rc = queue_start(s, NETQ_RX_INDEX(0));
	if (!rc)
		rc = queue_start(s, NETQ_TX_INDEX(0));
	/* A driver fills its receive ring once the device runs. */
	if (!rc) {
		rc = netq_rx_fill(s->rx);
		rc = rc == RX_POSTED ? 0 : rc < 0 ? rc : -EPROTO;
	}
	if (rc)
		fprintf(stderr, "bench_net: %s session setup: %s\n", modes[m].name,
			strerror(-rc));
	return rc;
}

/*
 * Stop the queues (the RX one with its buffers posted) and free the
 * session; isolated mode: the adapter relayed what the guest saw.
 */
static int sess_close(struct sess *s, struct result *res)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	int rc = 0, err;
	unsigned int i;
	uint32_t base;

	err = __atomic_load_n(&G.relay_pin_err, __ATOMIC_RELAXED);
	if (err) {
		fprintf(stderr, "bench_net: relay thread placement: %s\n",
			strerror(-err));
		rc = err;
	}
	if (s->kick_err) {
		fprintf(stderr, "bench_net: svqiso_vu_queue_kick: %s\n",
			strerror(-s->kick_err));
		rc = rc ? rc : s->kick_err;
	}
	for (i = 0; i < 2 && s->vu; i++) {
		err = svqiso_vu_queue_stop(s->vu, i, &base);
		if (err) {
			fprintf(stderr, "bench_net: queue %u stop: %s\n", i,
				strerror(-err));
			rc = rc ? rc : err;
			continue;
		}
		if (modes[s->m].mode != SVQISO_VU_ISOLATED)
			continue;
		err = svqiso_vu_get_queue_stats(s->vu, i, &st);
		if (!err && i == NETQ_RX_INDEX(0))
			res->rx_forwarded = st.requests;
		if (err || st.errors ||
		    st.requests != st.completions + st.given_back) {
			fprintf(stderr, "bench_net: queue %u counters: %s, %" PRIu64
				" forwarded, %" PRIu64 " completed, %" PRIu64
				" given back, %" PRIu64 " errors\n", i,
				strerror(-err), st.requests, st.completions,
				st.given_back, st.errors);
			rc = rc ? rc : -EPROTO;
		}
	}
	svqiso_vu_free(s->vu);
	netq_free(s->rx);
	netq_free(s->tx);
	gmem_set_alloc_top(G.gm, s->top);
	memset(s, 0, sizeof(*s));
	return rc;
}

/* ---- the guest's loop ---- */

struct run {
	struct sess *s;
	struct result *res;
	uint64_t next;			/* frames 0..next-1 sent or overtaken */
	uint64_t bad;			/* frames not as sent */
	uint64_t bad_seq;
	uint8_t frame[FRAME_ROOM];
};

static void rx_frame(void *ctx, const struct virtio_net_hdr_v1 *hdr,
		     const uint8_t *frame, uint32_t len)
{
	struct run *r = ctx;
	uint64_t seq, v;

	(void)hdr;
	if (len < FRAME_MIN) {
		r->bad++;
		return;
	}
	memcpy(&v, frame + len - 8, 8);
	seq = le64toh(v) ^ SEQ_KEY;
	/* 5tswap swapped the addresses, and left the rest. */
	if (seq >= r->res->sent || len != frame_len(seq) ||
	    frame[5] != 2 || frame[11] != 1) {
		if (!r->bad++)
			r->bad_seq = seq;
		return;
	}
	r->res->received++;
	if (seq < r->next)
		r->res->reordered++;
	else
		r->next = seq + 1;
}

static int collect(struct run *r)
{
	int rc = netq_tx_collect(r->s->tx);

	if (rc < 0) {
		fprintf(stderr, "bench_net: TX queue: %s\n",
			gring_broken_reason(netq_ring(r->s->tx)) ?: strerror(-rc));
		return rc;
	}
	rc = netq_rx_collect(r->s->rx, rx_frame, r);
	if (rc < 0) {
		fprintf(stderr, "bench_net: RX queue: %s\n",
			gring_broken_reason(netq_ring(r->s->rx)) ?: strerror(-rc));
		return rc;
	}
	return 0;
}

/* Wait up to @ms for an interrupt (inline: a backend call) and collect. */
static int wait_collect(struct run *r, int ms)
{
	struct sess *s = r->s;
	bool inl = modes[s->m].inline_loop;
	struct pollfd pfd[2];
	unsigned int i;
	uint64_t cnt;
	int n, rc;

	for (i = 0; i < 2; i++) {
		pfd[i].fd = inl ? s->backend_fd[i] : gring_call_fd(ring_of(s, i));
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
	}
	n = poll(pfd, 2, ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < 2 && n > 0; i++) {
		if (!(pfd[i].revents & POLLIN))
			continue;
		if (inl) {
			/* The VMM's part: copy-back, then the interrupt. */
			rc = svqiso_vu_queue_process(s->vu, i);
			if (rc < 0) {
				fprintf(stderr, "bench_net: queue %u process: %s\n",
					i, strerror(-rc));
				return rc;
			}
		} else if (read(pfd[i].fd, &cnt, sizeof(cnt)) < 0 &&
			   errno != EAGAIN) {
			return -errno;
		}
	}
	/* Spurious or not, collecting is cheap: the used rings say. */
	return collect(r);
}

/*
 * Send G.frames frames, at most G.window on their way at once, and take
 * back what comes until the run drains. A window that stays full with
 * nothing back for STUCK_NS was dropped whole: it is written off.
 */
static int traffic(struct run *r)
{
	struct result *res = r->res;
	uint64_t start = bench_now_ns(), last = start, now, seen = 0;
	int rc;

	for (;;) {
		while (res->sent < G.frames && res->sent - r->next < G.window) {
			uint32_t len = frame_make(res->sent, r->frame);

			rc = netq_tx_send(r->s->tx, r->frame, len);
			if (rc == -ENOSPC)
				break;
			if (rc) {
				fprintf(stderr, "bench_net: send: %s\n", strerror(-rc));
				return rc;
			}
			res->sent++;
		}
		rc = wait_collect(r, 1);
		if (rc)
			return rc;
		if (r->bad) {
			fprintf(stderr, "bench_net: %" PRIu64 " frames not as sent "
				"(the first: %" PRIu64 ")\n", r->bad, r->bad_seq);
			return -EPROTO;
		}
		now = bench_now_ns();
		if (res->received != seen) {
			seen = res->received;
			last = now;
			continue;
		}
		if (res->sent == G.frames &&
		    (res->received == res->sent || now - last > QUIET_NS))
			break;
		if (res->sent - r->next >= G.window && now - last > STUCK_NS)
			r->next = res->sent;
		if (now - last > STALL_NS) {
			fprintf(stderr, "bench_net: %s: no frame back for %llu s\n",
				modes[r->s->m].name, STALL_NS / 1000000000ull);
			return -ETIMEDOUT;
		}
	}
	res->ns = last - start;
	res->dropped = res->sent - res->received;
	return 0;
}

static int measure(unsigned int m, unsigned int rep, struct result *res)
{
	struct gring_stats gs;
	struct sess s;
	struct run r;
	int rc, err;

	memset(res, 0, sizeof(*res));
	rc = sess_open(&s, m, 0x6e6574ull + rep);
	if (!rc) {
		memset(&r, 0, sizeof(r));
		r.s = &s;
		r.res = res;
		rc = traffic(&r);
		gring_get_stats(netq_ring(s.tx), &gs);
		res->tx_kicks = gs.kicks;
		gring_get_stats(netq_ring(s.rx), &gs);
		res->rx_kicks = gs.kicks;
	}
	err = sess_close(&s, res);
	rc = rc ? rc : err;
	if (rc)
		return rc;
	fprintf(stderr, "bench_net: %-15s run %u: %" PRIu64 " sent, %" PRIu64
		" back, %" PRIu64 " dropped in %.3f s\n", modes[m].name, rep,
		res->sent, res->received, res->dropped, res->ns / 1e9);
	return 0;
}

/* ---- output ---- */

static double rate(uint64_t dropped, uint64_t sent)
{
	return sent ? (double)dropped / (double)sent : 0;
}

static void report_run(unsigned int m, unsigned int rep, const struct result *x)
{
	bench_json(&G.b, "\"mode\":\"%s\",\"run\":%u,\"ring\":%u,\"rx_posted\":%u,"
		   "\"buf_bytes\":%u,\"window\":%u,\"frames\":%" PRIu64 ","
		   "\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ","
		   "\"dropped\":%" PRIu64 ",\"drop_rate\":%.6f,"
		   "\"reordered\":%" PRIu64 ",\"secs\":%.4f,\"fps\":%.0f,"
		   "\"rx_forwarded\":%" PRIu64 ",\"guest_tx_kicks\":%" PRIu64 ","
		   "\"guest_rx_kicks\":%" PRIu64 ",\"loop\":\"%s\",\"pin\":%s",
		   modes[m].name, rep, RING_NUM, RX_POSTED, BUF_BYTES, G.window,
		   G.frames, x->sent, x->received, x->dropped,
		   rate(x->dropped, x->sent), x->reordered, x->ns / 1e9,
		   x->ns ? x->received / (x->ns / 1e9) : 0, x->rx_forwarded,
		   x->tx_kicks, x->rx_kicks, G.loop_name, G.pin ? "true" : "false");
}

static void write_md(struct result (*x)[MAX_REPEATS])
{
	uint64_t drops[NR_MODES] = { 0 };
	unsigned int m, k;

	bench_md(&G.b, "## Net RX refills: DPDK testpmd, 5tswap\n\n"
		 "A guest virtio-net driver model drives an unmodified DPDK "
		 "testpmd (forward mode 5tswap: every TX frame comes back on RX; "
		 "a frame that finds no RX buffer is dropped) through the "
		 "vhost-user adapter. The guest keeps %u of its %u RX buffers of "
		 "%u bytes posted, refilling each as its frame is taken, and "
		 "sends %" PRIu64 " frames of %u to %u bytes per run with at "
		 "most %u on their way at once, so a backend that sees every "
		 "refill at once never lacks a buffer. *direct* is plain "
		 "vhost-user; *isolated* relays both queues on the adapter's "
		 "relay thread; *isolated-inline* runs them on the guest thread "
		 "(SVQISO_VU_F_EXTERNAL_LOOP: svqiso_vu_queue_kick() in place of "
		 "each kick eventfd write, svqiso_vu_queue_process() when a "
		 "backend call eventfd is readable). Dropped is sent less "
		 "received once a run drains. Relay loop %s. testpmd's lcores run "
		 "on CPU %d; %s. %u runs per mode, the modes interleaved.\n\n"
		 "Machine: %s.\n\n",
		 RX_POSTED, RING_NUM, BUF_BYTES, G.frames, FRAME_MIN, FRAME_ROOM,
		 G.window, G.loop_name, G.pmd_cpu,
		 G.pin ? "the guest thread and the relay thread on the other "
			 "CPUs (on a 2-CPU machine they share one)" :
			 "the guest and the relay where the scheduler puts them",
		 G.repeats, G.b.machine_md);
	bench_md(&G.b, "| mode | runs | sent | received | dropped | drop rate | "
		 "dropped per run | frames/s (median) |\n"
		 "|---|--:|--:|--:|--:|--:|---|--:|\n");
	for (m = 0; m < NR_MODES; m++) {
		uint64_t sent = 0, recv = 0;
		double fps[MAX_REPEATS];
		char per[256];
		size_t n = 0;

		if (!G.mode_on[m])
			continue;
		per[0] = 0;
		for (k = 0; k < G.repeats; k++) {
			sent += x[m][k].sent;
			recv += x[m][k].received;
			drops[m] += x[m][k].dropped;
			fps[k] = x[m][k].ns ? x[m][k].received / (x[m][k].ns / 1e9) : 0;
			if (n < sizeof(per))
				n += snprintf(per + n, sizeof(per) - n, "%s%" PRIu64,
					      k ? ", " : "", x[m][k].dropped);
		}
		bench_md(&G.b, "| %s | %u | %" PRIu64 " | %" PRIu64 " | %" PRIu64
			 " | %.5f | %s | %.0f |\n", modes[m].name, G.repeats, sent,
			 recv, drops[m], rate(drops[m], sent), per,
			 bench_median(fps, G.repeats));
	}
	bench_md(&G.b, "\nTargets:\n\n");
	if (G.mode_on[M_DIRECT] && G.mode_on[M_RELAY])
		bench_md(&G.b, "- %s: net relay mode drops no more frames than "
			 "direct mode in the same run: isolated %" PRIu64
			 ", direct %" PRIu64 "\n",
			 drops[M_RELAY] <= drops[M_DIRECT] ? "PASS" : "MISS",
			 drops[M_RELAY], drops[M_DIRECT]);
	else
		bench_md(&G.b, "- SKIP: net relay mode drops no more frames "
			 "than direct mode in the same run (not measured)\n");
	bench_md(&G.b, "\n");
}

/* ---- options ---- */

static int parse_modes(const char *p)
{
	unsigned int m;

	memset(G.mode_on, 0, sizeof(G.mode_on));
	while (*p) {
		size_t len = strcspn(p, ",");

		for (m = 0; m < NR_MODES; m++)
			if (strlen(modes[m].name) == len &&
			    !strncmp(p, modes[m].name, len))
				break;
		if (m == NR_MODES)
			return -EINVAL;
		G.mode_on[m] = true;
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int parse(int argc, char **argv)
{
	static const char *const loops[] = { "auto", "uring", "epoll", "busy" };
	unsigned long long v;
	unsigned int m, k;
	char *end;
	int i;

	G.frames = G.b.quick ? 5000 : 50000;
	G.repeats = G.b.quick ? 1 : 3;
	G.window = 3 * RING_NUM / 4;
	for (m = 0; m < NR_MODES; m++)
		G.mode_on[m] = true;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--no-pin")) {
			G.pin = false;
			continue;
		}
		if (i + 1 >= argc)
			return -EINVAL;
		if (!strcmp(a, "--modes")) {
			if (parse_modes(argv[++i]))
				return -EINVAL;
			continue;
		}
		if (!strcmp(a, "--loop")) {
			for (k = 0; k < 4 && strcmp(argv[i + 1], loops[k]); k++)
				;
			if (k == 4)
				return -EINVAL;
			G.loop_mode = (uint8_t)k;	/* enum svqiso_loop_mode order */
			G.loop_name = loops[k];
			i++;
			continue;
		}
		errno = 0;
		v = strtoull(argv[++i], &end, 0);
		if (errno || *end || end == argv[i] || !v)
			return -EINVAL;
		if (!strcmp(a, "--frames"))
			G.frames = v;
		else if (!strcmp(a, "--repeats") && v <= MAX_REPEATS)
			G.repeats = (unsigned int)v;
		else if (!strcmp(a, "--window") && v < RX_POSTED)
			G.window = (unsigned int)v;
		else
			return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct result x[NR_MODES][MAX_REPEATS];
	unsigned int on[NR_MODES], non = 0, rep, k;
	int rc;

	if (bench_init(&G.b, "net", &argc, argv))
		return 1;
	if (parse(argc, argv)) {
		fprintf(stderr, "usage: %s [--out DIR] [--quick] [--frames N] "
			"[--repeats 1..%d] [--window 1..%d] [--modes MODE,...] "
			"[--loop auto|uring|epoll|busy] [--no-pin]\n", argv[0],
			MAX_REPEATS, RX_POSTED - 1);
		bench_fini(&G.b);
		return 1;
	}
	if (!proc_on_path(TESTPMD_BIN)) {
		fprintf(stderr, "bench_net: %s not on PATH, skipping\n", TESTPMD_BIN);
		bench_fini(&G.b);
		return 77;
	}
	choose_cpus();
	rc = testpmd_setup(&G.pmd, G.pmd_cpu);
	if (rc) {
		fprintf(stderr, "bench_net: testpmd: %s\n", G.pmd.err);
		testpmd_print_log(&G.pmd, stderr, 20);
		goto out;
	}
	rc = pin_guest();
	if (rc) {
		fprintf(stderr, "bench_net: guest thread placement: %s (--no-pin "
			"leaves it to the scheduler)\n", strerror(-rc));
		goto out;
	}
	G.gm = gmem_new(GUEST_GPA, GUEST_SIZE, 2);
	if (!G.gm) {
		rc = -errno;
		fprintf(stderr, "bench_net: guest RAM: %s\n", strerror(errno));
		goto out;
	}
	for (k = 0; k < NR_MODES; k++)
		if (G.mode_on[k])
			on[non++] = k;
	for (rep = 0; rep < G.repeats; rep++) {
		/* Rotate the order so drift hits every mode alike. */
		for (k = 0; k < non; k++) {
			unsigned int m = on[(k + rep) % non];

			rc = measure(m, rep, &x[m][rep]);
			if (rc)
				goto out;
			report_run(m, rep, &x[m][rep]);
		}
	}
	write_md(x);
out:
	if (rc)
		testpmd_print_log(&G.pmd, stderr, 20);
	gmem_free(G.gm);
	testpmd_teardown(&G.pmd);
	bench_fini(&G.b);
	return rc ? 1 : 0;
}
