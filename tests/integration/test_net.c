/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user adapter (include/svqiso/vu.h) with a net device end to
 * end: a guest virtio-net driver model (tests/guest/netq.c, one RX and one
 * TX queue) with its rings and buffers in a guest memfd, the adapter
 * relaying to an unmodified DPDK testpmd that the test starts and stops by
 * pid. testpmd offers packed rings, counts queue pairs in GET_QUEUE_NUM
 * and takes memory through SET_MEM_TABLE; it echoes every frame back on
 * the RX queue with its addresses swapped (forward mode 5tswap).
 *
 *  - api: testpmd's last TX queue starts only with SVQISO_VU_F_QUEUE_PAIRS;
 *    the features offered to the guest; testpmd's lcores on one CPU; the
 *    frame checker finds a changed byte, a wrong length, an unknown or
 *    repeated frame.
 *  - isolated: packed and split shadow rings under split and packed guest
 *    rings, indirect descriptors and event idx on and off: 100 000 frames
 *    of 60 to 1514 bytes each (Ethernet with no, one or two VLAN tags,
 *    raw, IPv4 or IPv6, UDP, TCP or other), every echoed frame checked
 *    byte for byte against the frame sent with 5tswap's rewrite applied;
 *    lost, duplicated and corrupted frames must all be zero. While it
 *    runs, /proc/<testpmd>/maps and /fd are read: no guest RAM, and memfd
 *    mappings of its own memory plus exactly the isolated regions.
 *  - direct: the same traffic in plain vhost-user mode, where testpmd maps
 *    guest RAM (the inspector can fail; the checker holds without svqiso).
 *  - rx-stop-idle: stopping an RX queue whose buffers stay posted with no
 *    traffic returns within 1 s at the base of what the device used, and a
 *    restart there (with the TX queue's) loses and repeats nothing; split
 *    and packed guest and shadow rings.
 *  - rx-restart-alone: the same, the RX queue restarted alone while TX
 *    runs on (testpmd then needs the adapter to enable TX again).
 *  - proxy: the guest's VMM unchanged (the adapter in direct mode, plain
 *    vhost-user) talking to svqiso-proxy, which isolates testpmd: frames
 *    echoed intact with split and packed guest and shadow rings, testpmd
 *    never reaching guest RAM while the proxy maps it, and an RX queue
 *    with its buffers posted stopped and started again through the proxy
 *    losing nothing. SVQISO_PROXY names the binary (meson sets it).
 *
 * TX runs ahead of RX only as far as RX buffers have reached testpmd
 * (counted from the RX queue's stats), since testpmd drops a frame that
 * finds no RX buffer: a frame lost is the adapter's, not the guest's.
 * testpmd's lcores spin on the last CPU this test may use; the guest's
 * thread and the adapter's relay thread are kept off it.
 *
 * SVQ_TEST_SEED replays the frames; SVQ_TEST_SCALE scales frame counts.
 * Skips (TAP "1..0 # SKIP", exit status SVQ_TEST_SKIP_STATUS or 0) when
 * dpdk-testpmd is not on PATH.
 */
#define _GNU_SOURCE	/* sched_setaffinity, CPU_* */
#include <check.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <svqiso/svqiso.h>
#include <svqiso/vu.h>
#include "ckplan.h"
#include "proc.h"
#include "guest.h"
#include "inspect.h"
#include "testpmd.h"

#define GUEST_GPA	0x40000000ull
#define GUEST_SIZE	(16ull << 20)
#define NUM		256
#define FRAMES		100000
#define FRAME_MIN	60
#define FRAME_MAX	NETQ_FRAME_MAX
#define RUN_MS		90000		/* a whole run */
#define STALL_MS	5000		/* no frame back this long: the rest is lost */
#define INSPECT_EVERY	16384		/* frames between two looks at testpmd */
#define SEQ_KEY		0x5eb1e55ed0c0ffeeull

/* Feature bits (VIRTIO 1.2, 5.1.3 and 6) */
#define F_NET_MRG_RXBUF		15
#define F_NET_CTRL_VQ		17
#define F_INDIRECT		28
#define F_EVENT_IDX		29
#define F_VERSION_1		32
#define F_PACKED		34
#define F_IN_ORDER		35
#define TRANSPORT_MASK		(((1ull << 41) - 1) & ~((1ull << 24) - 1))

static struct testpmd T = { .pid = -1, .stdin_fd = -1 };
static uint64_t seed;
static double scale = 1.0;
static int pmd_cpu;			/* testpmd spins here */
static uint64_t pmd_own_memfd;		/* bytes of its own memfd mappings */
static cpu_set_t guest_cpus;		/* the test's threads run here */
static bool pin_guest;

static struct {
	struct gmem *gm;
	struct netq *rx, *tx;
	struct svqiso_vu *vu;
	struct stat guest_st;
	bool direct;			/* testpmd maps guest RAM */
	bool proxied;			/* svqiso-proxy in between */
	pid_t proxy_pid;
	char proxy_sock[128];
	char logbuf[4096];
	/* the traffic */
	uint64_t sent;			/* frames 0..sent-1 went out */
	uint64_t rx_returned;		/* RX buffers a stop gave back */
	uint64_t received;		/* frames that came back, all of them */
	uint64_t unique;		/* distinct frames among them */
	uint64_t dup, corrupt, bad_hdr, nb_not_one;
	uint64_t first_bad_seq;		/* the first corrupt frame: */
	uint32_t first_bad_off;		/* its first wrong byte (or length) */
	uint8_t *seen;			/* [FRAMES + ...] one byte per frame */
	uint64_t nseen;
	unsigned int inspections;
	uint8_t expect[FRAME_MAX];
} F;

static void log_cb(void *ctx, int level, const char *msg)
{
	size_t n = strlen(F.logbuf);

	(void)ctx;
	if (level <= SVQISO_LOG_INFO)
		fprintf(stderr, "# %s\n", msg);
	snprintf(F.logbuf + n, sizeof(F.logbuf) - n, "%s\n", msg);
}

static uint64_t scaled(uint64_t n)
{
	uint64_t v = (uint64_t)(n * scale);

	return v ? v : 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ll + ts.tv_nsec / 1000000;
}

/* ---- frames: what goes out, and what 5tswap makes of it ---- */

struct prng {
	uint64_t s;
};

/* splitmix64 */
static uint64_t prng_next(struct prng *p)
{
	uint64_t z = (p->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

#define ETH_VLAN	0x8100
#define ETH_QINQ	0x88a8
#define ETH_IPV4	0x0800
#define ETH_IPV6	0x86dd
#define ETH_LOCAL	0x88b5		/* IEEE local experimental */
#define IP_TCP		6
#define IP_UDP		17

/*
 * Frame @seq into @f: its length from FRAME_MIN to FRAME_MAX, random bytes
 * under an Ethernet header with 0 to 2 VLAN tags, then raw, IPv4 (header
 * of 20 to 32 bytes) or IPv6, carrying UDP, TCP or something else; the
 * last 8 bytes are the sequence number. Headers that would reach the
 * sequence number make it a raw frame. Return: the length.
 */
static uint32_t frame_make(uint64_t seq, uint8_t *f)
{
	struct prng p = { seed ^ (seq * 0xd1342543de82ef95ull) };
	uint64_t r = prng_next(&p), v;
	uint32_t len = FRAME_MIN + (uint32_t)(r % (FRAME_MAX - FRAME_MIN + 1));
	unsigned int vlans = (r >> 16) % 8 < 2 ? 1 + (r >> 16) % 8 : 0;
	unsigned int l3 = (r >> 24) % 4, l4 = (r >> 32) % 3, off = 12, ip;
	static const uint8_t protos[3] = { IP_UDP, IP_TCP, 47 /* GRE */ };
	uint32_t i, need;

	for (i = 0; i < len; i += 8) {
		v = prng_next(&p);
		memcpy(f + i, &v, len - i < 8 ? len - i : 8);
	}
	if (vlans == 2) {
		put16(f + off, ETH_QINQ);
		off += 4;
	}
	if (vlans) {
		put16(f + off, ETH_VLAN);
		off += 4;
	}
	ip = off + 2;
	need = ip + (l3 == 2 ? 40 : 20 + 4 * ((r >> 40) % 4)) +
	       (l4 == 1 ? 20 : 8);
	if (l3 == 0 || need > len - 8) {
		put16(f + off, ETH_LOCAL);
	} else if (l3 == 2) {
		put16(f + off, ETH_IPV6);
		f[ip] = 0x60;
		f[ip + 6] = protos[l4];		/* next header */
	} else {
		put16(f + off, ETH_IPV4);
		f[ip] = 0x40 | (uint8_t)(5 + (r >> 40) % 4);	/* IHL */
		f[ip + 9] = protos[l4];
	}
	v = htole64(seq ^ SEQ_KEY);
	memcpy(f + len - 8, &v, 8);
	return len;
}

static void swap_bytes(uint8_t *a, uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t t = a[i];

		a[i] = b[i];
		b[i] = t;
	}
}

/*
 * What DPDK 22.11's 5tswap does to a frame (app/test-pmd/5tswap.c): swap
 * the MAC addresses; skip VLAN and QinQ tags; for IPv4 swap the addresses
 * and step over IHL * 4 bytes, for IPv6 swap them and step over the fixed
 * 40-byte header; then for UDP or TCP swap the ports. Nothing else.
 */
static void swap_5tuple(uint8_t *f)
{
	unsigned int off = 14, next;
	uint16_t proto = get16(f + 12);

	swap_bytes(f, f + 6, 6);
	while (proto == ETH_VLAN || proto == ETH_QINQ) {
		proto = get16(f + off + 2);
		off += 4;
	}
	if (proto == ETH_IPV4) {
		swap_bytes(f + off + 12, f + off + 16, 4);
		next = f[off + 9];
		off += 4 * (f[off] & 0xf);
	} else if (proto == ETH_IPV6) {
		swap_bytes(f + off + 8, f + off + 24, 16);
		next = f[off + 6];
		off += 40;
	} else {
		return;
	}
	if (next == IP_UDP || next == IP_TCP)
		swap_bytes(f + off, f + off + 2, 2);
}

static void note_corrupt(uint64_t seq, uint32_t off)
{
	if (!F.corrupt++) {
		F.first_bad_seq = seq;
		F.first_bad_off = off;
	}
}

/* A frame came back: which one, whether it is what 5tswap makes of it. */
static void check_frame(const uint8_t *frame, uint32_t len)
{
	uint64_t seq, v;
	uint32_t elen, i;

	F.received++;
	if (len < 8) {
		note_corrupt(UINT64_MAX, len);
		return;
	}
	memcpy(&v, frame + len - 8, 8);
	seq = le64toh(v) ^ SEQ_KEY;
	if (seq >= F.sent || seq >= F.nseen) {
		note_corrupt(seq, len);
		return;
	}
	if (F.seen[seq]) {
		F.dup++;
		return;
	}
	F.seen[seq] = 1;
	F.unique++;
	elen = frame_make(seq, F.expect);
	swap_5tuple(F.expect);
	if (elen != len) {
		note_corrupt(seq, len);
		return;
	}
	if (memcmp(frame, F.expect, len)) {
		for (i = 0; frame[i] == F.expect[i]; i++)
			;
		note_corrupt(seq, i);
	}
}

static void rx_frame(void *ctx, const struct virtio_net_hdr_v1 *hdr,
		     const uint8_t *frame, uint32_t len)
{
	(void)ctx;
	/* No offload was negotiated: the device writes a header of zeros
	 * (num_buffers aside, meaningful only with MRG_RXBUF). */
	if (hdr->flags || hdr->gso_type || hdr->hdr_len || hdr->gso_size ||
	    hdr->csum_start || hdr->csum_offset)
		F.bad_hdr++;
	if (le16toh(hdr->num_buffers) != 1)
		F.nb_not_one++;
	check_frame(frame, len);
}

static void counters_reset(uint64_t frames)
{
	F.sent = F.received = F.unique = 0;
	F.dup = F.corrupt = F.bad_hdr = F.nb_not_one = 0;
	free(F.seen);
	F.nseen = frames;
	F.seen = calloc(frames, 1);
	ck_assert_ptr_nonnull(F.seen);
}

/* ---- fixture: testpmd, once per tcase ---- */

/* testpmd on the last CPU we may use, our threads on the others. */
static void choose_cpus(void)
{
	cpu_set_t all;
	int c;

	CPU_ZERO(&guest_cpus);
	pmd_cpu = 0;
	pin_guest = false;
	if (sched_getaffinity(0, sizeof(all), &all))
		return;
	for (c = CPU_SETSIZE - 1; c >= 0 && !CPU_ISSET(c, &all); c--)
		;
	if (c < 0)
		return;
	pmd_cpu = c;
	guest_cpus = all;
	CPU_CLR(c, &guest_cpus);
	pin_guest = CPU_COUNT(&guest_cpus) > 0;
}

static void pmd_setup(void)
{
	struct stat none = { 0 };
	struct inspect_report r;

	choose_cpus();
	if (testpmd_setup(&T, pmd_cpu)) {
		printf("# %s: %s\n", TESTPMD_BIN, T.err);
		testpmd_print_log(&T, stdout, 20);
		return;
	}
	/* Its memory without hugepages is a memfd of its own. */
	if (!inspect_process(T.pid, &none, NULL, 0, &r))
		pmd_own_memfd = r.map_memfd_bytes;
}

static void pmd_teardown(void)
{
	testpmd_teardown(&T);
}

static void pin_here(void)
{
	if (pin_guest)
		sched_setaffinity(0, sizeof(guest_cpus), &guest_cpus);
}

static void relay_pin(void *ctx)
{
	(void)ctx;
	pin_here();
}

/* ---- the guest, the adapter, the queues ---- */

struct variant {
	uint8_t mode;			/* enum svqiso_vu_mode */
	bool proxy;			/* direct mode to svqiso-proxy, which
					 * isolates testpmd */
	uint8_t shadow;			/* shadow ring layout */
	uint8_t guest;			/* guest ring layout */
	bool ring_features;		/* indirect and event idx, both rings */
	bool pairs;			/* SVQISO_VU_F_QUEUE_PAIRS */
	int timeout_ms;			/* the adapter's; 0: 5000 */
};

static void guest_new(const struct variant *v)
{
	struct netq_opts o = { .layout = v->guest, .num = NUM,
			       .indirect = v->ring_features,
			       .event_idx = v->ring_features, .seed = seed };

	F.logbuf[0] = 0;
	F.inspections = 0;
	F.rx_returned = 0;
	F.direct = v->mode == SVQISO_VU_DIRECT && !v->proxy;
	F.proxied = v->proxy;
	F.gm = gmem_new(GUEST_GPA, GUEST_SIZE, 2);
	ck_assert_ptr_nonnull(F.gm);
	ck_assert_int_eq(fstat(gmem_fd(F.gm), &F.guest_st), 0);
	/* RX buffers across the region boundary too. */
	ck_assert_int_eq(gmem_set_alloc_top(F.gm, GUEST_GPA + GUEST_SIZE / 2 -
					    NUM * 1536 / 2), 0);
	o.role = NETQ_RX;
	ck_assert_int_eq(netq_new(F.gm, &o, &F.rx), 0);
	o.role = NETQ_TX;
	o.seed = seed + 1;
	ck_assert_int_eq(netq_new(F.gm, &o, &F.tx), 0);
}

/* svqiso-proxy in front of testpmd, with shadow rings of @shadow layout. */
static void proxy_start(uint8_t shadow)
{
	const char *bin = getenv("SVQISO_PROXY");
	char *argv[] = {
		(char *)bin, "--socket", F.proxy_sock, "--backend", T.sock,
		"--name", "net0", "--shadow",
		shadow == SVQISO_LAYOUT_PACKED ? "packed" : "split", "--quiet", NULL,
	};
	struct proc_spawn_opts o = { .argv = argv, .sock = F.proxy_sock,
				     .start_ms = 5000, .stdin_fd = -1,
				     .out_fd = -1 };
	char err[160];

	ck_assert_msg(bin && *bin, "SVQISO_PROXY is not set");
	snprintf(F.proxy_sock, sizeof(F.proxy_sock), "%s/proxy.sock", T.dir);
	ck_assert_msg(!proc_spawn(&o, &F.proxy_pid, err, sizeof(err)),
		      "svqiso-proxy: %s", err);
}

/* Connect; Return: svqiso_vu_connect()'s. */
static int adapter_connect(const struct variant *v)
{
	SVQISO_OPTS(svqiso_vu_opts, o, .path = T.sock, .mode = v->mode,
		    .shadow_layout = v->shadow, .log = log_cb,
		    .timeout_ms = v->timeout_ms ? v->timeout_ms : 5000,
		    .relay_start = relay_pin);

	ck_assert_msg(T.pid > 0, "no testpmd: %s", T.err);
	/* The last session is gone on testpmd's side too. */
	ck_assert_int_eq(testpmd_wait_unconnected(&T, 5000), 0);
	if (v->pairs)
		o.flags |= SVQISO_VU_F_QUEUE_PAIRS;
	if (v->proxy) {
		proxy_start(v->shadow);
		o.path = F.proxy_sock;
		o.mode = SVQISO_VU_DIRECT;
	}
	if (!v->ring_features)
		o.flags |= SVQISO_VU_F_NO_INDIRECT | SVQISO_VU_F_NO_EVENT_IDX;
	return svqiso_vu_connect(&o, &F.vu);
}

/* Accept only what the model implements, out of what the adapter offers. */
static uint64_t features_for(const struct variant *v)
{
	uint64_t offer = svqiso_vu_get_features(F.vu), feat;

	ck_assert_msg(offer & (1ull << F_VERSION_1),
		      "no VERSION_1 offered: %#" PRIx64, offer);
	/* Of the device's bits, none: not MRG_RXBUF or CTRL_VQ (testpmd
	 * offers both), which the model does not implement. */
	feat = 1ull << F_VERSION_1;
	if (v->ring_features)
		feat |= offer & (1ull << F_INDIRECT | 1ull << F_EVENT_IDX);
	if (v->guest == SVQISO_LAYOUT_PACKED) {
		ck_assert(offer & (1ull << F_PACKED));
		feat |= 1ull << F_PACKED;
	}
	return feat;
}

static void queue_cfg(unsigned int i, uint32_t base, struct svqiso_vu_queue *c)
{
	struct gring *r = netq_ring(i == NETQ_RX_INDEX(0) ? F.rx : F.tx);

	*c = (struct svqiso_vu_queue){
		.sz = sizeof(*c), .ring = gring_addr(r), .num = gring_num(r),
		.layout = gring_layout(r), .base = base,
		.kick_fd = gring_kick_fd(r), .call_fd = gring_call_fd(r),
	};
}

static void queue_start(unsigned int i, uint32_t base)
{
	struct svqiso_vu_queue c;

	queue_cfg(i, base, &c);
	ck_assert_int_eq(svqiso_vu_queue_start(F.vu, i, &c), 0);
}

static void fx_open(const struct variant *v)
{
	unsigned int i;

	pin_here();
	guest_new(v);
	ck_assert_int_eq(adapter_connect(v), 0);
	ck_assert_int_eq(svqiso_vu_set_features(F.vu, features_for(v)), 0);
	for (i = 0; i < gmem_nr_regions(F.gm); i++) {
		struct svqiso_mem_region r;

		ck_assert_int_eq(gmem_region(F.gm, i, &r), 0);
		ck_assert_int_eq(svqiso_vu_add_region(F.vu, &r), 0);
	}
	queue_start(NETQ_RX_INDEX(0), gring_fresh_base(netq_ring(F.rx)));
	queue_start(NETQ_TX_INDEX(0), gring_fresh_base(netq_ring(F.tx)));
	/* A driver fills its receive ring once the device runs. */
	ck_assert_int_gt(netq_rx_fill(F.rx), 0);
}

static void fx_close(void)
{
	int st;

	svqiso_vu_free(F.vu);
	F.vu = NULL;
	if (F.proxy_pid > 0) {
		/* SIGTERM: a clean exit, its socket gone. */
		st = proc_stop(&F.proxy_pid, 5000);
		ck_assert_msg(WIFEXITED(st) && !WEXITSTATUS(st),
			      "svqiso-proxy ended with status %#x", st);
		ck_assert_int_ne(access(F.proxy_sock, F_OK), 0);
	}
	netq_free(F.rx);
	netq_free(F.tx);
	F.rx = F.tx = NULL;
	gmem_free(F.gm);
	F.gm = NULL;
	free(F.seen);
	F.seen = NULL;
}

/* What testpmd can reach right now. */
static void inspect_pmd(void)
{
	struct svqiso_vu_info info = { .sz = sizeof(info) };
	struct inspect_report r;

	ck_assert_int_eq(svqiso_vu_get_info(F.vu, &info), 0);
	ck_assert_int_eq(inspect_process(T.pid, &F.guest_st, NULL, 0, &r), 0);
	F.inspections++;
	if (F.proxied) {
		/* The VMM gave the proxy guest RAM, the proxy gave testpmd
		 * none: what testpmd maps of memfds beyond its own memory is
		 * the proxy's isolated regions. */
		ck_assert_msg(!inspect_leaks(&r), "guest RAM reachable: %s", r.detail);
		ck_assert_uint_gt(r.map_memfd_bytes, pmd_own_memfd);
		ck_assert_int_eq(inspect_process(F.proxy_pid, &F.guest_st, NULL, 0, &r), 0);
		ck_assert_msg(r.map_guest > 0, "the proxy maps no guest RAM");
		return;
	}
	if (F.direct) {
		/* Plain vhost-user: testpmd maps all of guest RAM (a region
		 * from the start of its memfd, so more than its bytes). */
		ck_assert_msg(r.map_guest > 0, "direct mode, yet no guest mapping");
		ck_assert_uint_eq(info.backend_bytes, GUEST_SIZE);
		return;
	}
	ck_assert_msg(!inspect_leaks(&r), "guest RAM reachable: %s", r.detail);
	/* Every memfd byte it maps is its own memory or an isolated region,
	 * and all of those. */
	ck_assert_uint_gt(info.backend_bytes, 0);
	ck_assert_uint_eq(r.map_memfd_bytes, pmd_own_memfd + info.backend_bytes);
}

/*
 * RX buffers that have reached testpmd, ever: a frame sent beyond them
 * could find none and be dropped there. Isolated mode: what the adapter
 * forwarded on the RX queue (a moment old at worst, so never too many),
 * less what a stop gave back to be forwarded again; direct mode: what the
 * guest posted, which testpmd reads itself.
 */
static uint64_t rx_reached(void)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	struct gring_stats gs;

	if (F.direct) {
		gring_get_stats(netq_ring(F.rx), &gs);
		return gs.submitted;
	}
	if (F.proxied) {
		/* The proxy's counters are its own: stay a quarter of the
		 * ring behind what came back, so refills the proxy has yet
		 * to forward are never needed. */
		return F.received + NUM / 4;
	}
	ck_assert_int_eq(svqiso_vu_get_queue_stats(F.vu, NETQ_RX_INDEX(0), &st), 0);
	return st.requests - F.rx_returned;
}

static void drain_fd(int fd)
{
	uint64_t cnt;

	while (read(fd, &cnt, sizeof(cnt)) == sizeof(cnt))
		;
}

/*
 * Send frames up to @upto (F.sent onwards) and take back what comes, until
 * every frame sent is back or STALL_MS pass without one. Return: the
 * elapsed time in ms.
 */
static int64_t traffic(uint64_t upto)
{
	struct pollfd pfd[2] = {
		{ .fd = gring_call_fd(netq_ring(F.rx)), .events = POLLIN },
		{ .fd = gring_call_fd(netq_ring(F.tx)), .events = POLLIN },
	};
	int64_t t0 = now_ms(), last = t0, now;
	uint64_t next_inspect = F.received + INSPECT_EVERY;
	uint8_t frame[FRAME_MAX];
	int rc;

	while (F.unique < upto) {
		uint64_t reached = rx_reached(), before = F.received;
		bool starved = false;

		while (F.sent < upto) {
			uint32_t len;

			if (F.sent >= reached) {
				starved = true;
				break;
			}
			len = frame_make(F.sent, frame);
			rc = netq_tx_send(F.tx, frame, len);
			if (rc == -ENOSPC)
				break;
			ck_assert_int_eq(rc, 0);
			F.sent++;
		}
		/* Wait for an interrupt; while RX buffers are on their way
		 * to testpmd, no interrupt says when: look again soon. */
		rc = poll(pfd, 2, starved ? 1 : 100);
		ck_assert_int_ge(rc, 0);
		drain_fd(pfd[0].fd);
		drain_fd(pfd[1].fd);
		rc = netq_tx_collect(F.tx);
		ck_assert_msg(rc >= 0, "TX queue: %d: %s", rc,
			      gring_broken_reason(netq_ring(F.tx)));
		rc = netq_rx_collect(F.rx, rx_frame, NULL);
		ck_assert_msg(rc >= 0, "RX queue: %d: %s", rc,
			      gring_broken_reason(netq_ring(F.rx)) ?: "header short");
		now = now_ms();
		if (F.received != before)
			last = now;
		if (F.received >= next_inspect) {
			inspect_pmd();
			next_inspect = F.received + INSPECT_EVERY;
		}
		if (now - last > STALL_MS || now - t0 > RUN_MS) {
			fprintf(stderr, "# no frame back for %" PRId64 " ms; %" PRIu64
				" of %" PRIu64 " back\n", now - last, F.unique, upto);
			testpmd_print_log(&T, stderr, 30);
			break;
		}
	}
	return now_ms() - t0;
}

static void report(const char *what, uint64_t frames, int64_t ms)
{
	struct svqiso_svq_stats st[2] = { { .sz = sizeof(st[0]) }, { .sz = sizeof(st[1]) } };
	uint64_t lost = F.sent - F.unique;
	struct gring_stats tx;

	gring_get_stats(netq_ring(F.tx), &tx);
	fprintf(stderr, "# %s: %" PRIu64 " frames sent, %" PRIu64 " back (%" PRIu64
		" distinct) in %" PRId64 " ms: lost %" PRIu64 ", duplicated %"
		PRIu64 ", corrupted %" PRIu64 "; headers not zero %" PRIu64
		", num_buffers not 1 %" PRIu64 ", TX used lengths not 0 %" PRIu64
		"; %u inspections (seed %#" PRIx64 ")\n", what, F.sent, F.received,
		F.unique, ms, lost, F.dup, F.corrupt, F.bad_hdr, F.nb_not_one,
		tx.len_past_writable, F.inspections, seed);
	if (!F.direct && !F.proxied) {
		for (unsigned int i = 0; i < 2; i++) {
			ck_assert_int_eq(svqiso_vu_get_queue_stats(F.vu, i, &st[i]), 0);
			ck_assert_msg(!svqiso_vu_queue_broken(F.vu, i), "queue %u: %s",
				      i, svqiso_vu_queue_broken(F.vu, i));
		}
		fprintf(stderr, "# rx: %" PRIu64 " buffers forwarded, %" PRIu64
			" completed, %" PRIu64 " lengths clamped; tx: %" PRIu64
			" forwarded, %" PRIu64 " completed, %" PRIu64 " lengths "
			"clamped; pool stalls %" PRIu64 "/%" PRIu64 "\n",
			st[0].requests, st[0].completions, st[0].clamped,
			st[1].requests, st[1].completions, st[1].clamped,
			st[0].pool_stalls, st[1].pool_stalls);
		ck_assert_uint_eq(st[0].clamped, 0);
		/* Whatever testpmd says, the guest sees what was written. */
		ck_assert_uint_eq(tx.len_past_writable, 0);
	}
	ck_assert_uint_eq(F.sent, frames);
	ck_assert_msg(!F.corrupt, "%" PRIu64 " frames corrupted; first: frame %"
		      PRIu64 " at byte %u", F.corrupt, F.first_bad_seq,
		      F.first_bad_off);
	ck_assert_uint_eq(F.dup, 0);
	ck_assert_uint_eq(lost, 0);
	ck_assert_uint_eq(F.bad_hdr, 0);
}

static void run_frames(const char *what, uint64_t n)
{
	int64_t ms;

	counters_reset(n);
	ms = traffic(n);
	report(what, n, ms);
}

/* ---- api ---- */

/*
 * testpmd's GET_QUEUE_NUM counts queue pairs (DPDK 22.11's vhost library
 * answers its most, 128, whatever the PMD's queues=): the device has twice
 * as many queues. Only with SVQISO_VU_F_QUEUE_PAIRS does the adapter count
 * them all, so only then does the last TX queue start. _i: the flag.
 */
START_TEST(test_last_tx_queue_needs_queue_pairs)
{
	struct variant v = { .shadow = SVQISO_LAYOUT_PACKED, .pairs = _i };
	struct svqiso_vu_info info = { .sz = sizeof(info) };
	unsigned int pairs, last;
	struct svqiso_vu_queue c;
	uint32_t base;

	pin_here();
	guest_new(&v);
	/* The backend's count, as it says it. */
	v.pairs = false;
	ck_assert_int_eq(adapter_connect(&v), 0);
	ck_assert_int_eq(svqiso_vu_get_info(F.vu, &info), 0);
	pairs = info.queues;
	svqiso_vu_free(F.vu);
	ck_assert_uint_ge(pairs, 1);
	ck_assert_uint_le(pairs, 128);
	last = NETQ_TX_INDEX(pairs - 1);

	v.pairs = _i;
	ck_assert_int_eq(adapter_connect(&v), 0);
	ck_assert_int_eq(svqiso_vu_get_info(F.vu, &info), 0);
	ck_assert_uint_eq(info.queues, (_i ? 2 * pairs : pairs));
	ck_assert_int_eq(svqiso_vu_set_features(F.vu, features_for(&v)), 0);
	for (unsigned int i = 0; i < gmem_nr_regions(F.gm); i++) {
		struct svqiso_mem_region r;

		ck_assert_int_eq(gmem_region(F.gm, i, &r), 0);
		ck_assert_int_eq(svqiso_vu_add_region(F.vu, &r), 0);
	}
	queue_cfg(NETQ_TX_INDEX(0), gring_fresh_base(netq_ring(F.tx)), &c);
	ck_assert_int_eq(svqiso_vu_queue_start(F.vu, last, &c), (_i ? 0 : -EINVAL));
	ck_assert_int_eq(svqiso_vu_queue_start(F.vu, last + 1, &c), -EINVAL);
	if (_i) {
		/* Nothing in flight: it stops at once where it started. */
		ck_assert_int_eq(svqiso_vu_queue_stop(F.vu, last, &base), 0);
		ck_assert_uint_eq(base, c.base);
	}
	fx_close();
}
END_TEST

START_TEST(test_features_offered_to_guest)
{
	struct variant v = { .shadow = SVQISO_LAYOUT_PACKED, .pairs = true };
	struct svqiso_vu_info info = { .sz = sizeof(info) };
	uint64_t offer;

	ck_assert_int_eq(adapter_connect(&v), 0);
	offer = svqiso_vu_get_features(F.vu);
	ck_assert_int_eq(svqiso_vu_get_info(F.vu, &info), 0);
	fprintf(stderr, "# testpmd offers %#" PRIx64 ", the guest gets %#" PRIx64
		", protocol %#" PRIx64 ", %u memory slots\n",
		info.backend_features, offer, info.protocol_features,
		info.mem_slots);
	/* testpmd is a packed, in-order backend with mergeable RX buffers
	 * and a control queue. */
	ck_assert(info.backend_features & (1ull << F_PACKED));
	ck_assert(info.backend_features & (1ull << F_VERSION_1));
	ck_assert(info.backend_features & (1ull << F_NET_MRG_RXBUF));
	ck_assert(info.backend_features & (1ull << F_NET_CTRL_VQ));
	/* What svqiso serves on the guest ring itself, and no other
	 * transport bit (IN_ORDER is the shadow ring's business). */
	ck_assert_uint_eq(offer & TRANSPORT_MASK & ~(1ull << F_VERSION_1 |
						     1ull << 27 /* ANY_LAYOUT */ |
						     1ull << 36 /* ORDER_PLATFORM */),
			  1ull << F_INDIRECT | 1ull << F_EVENT_IDX | 1ull << F_PACKED);
	ck_assert(!(offer & (1ull << F_IN_ORDER)));
	/* Device bits are testpmd's, untouched. */
	ck_assert_uint_eq(offer & ~TRANSPORT_MASK,
			  info.backend_features & ~TRANSPORT_MASK);
	svqiso_vu_free(F.vu);
	F.vu = NULL;
}
END_TEST

/*
 * testpmd's lcores (the main thread and its forwarding worker, which spins)
 * are bound to its one CPU; its other threads may not use that CPU when we
 * have another.
 */
START_TEST(test_testpmd_spins_on_one_cpu)
{
	char path[64], comm[32];
	unsigned int lcores = 0;
	struct dirent *d;
	cpu_set_t set;
	DIR *dp;

	ck_assert_msg(T.pid > 0, "no testpmd: %s", T.err);
	snprintf(path, sizeof(path), "/proc/%d/task", (int)T.pid);
	dp = opendir(path);
	ck_assert_ptr_nonnull(dp);
	while ((d = readdir(dp))) {
		pid_t tid = (pid_t)atoi(d->d_name);
		bool lcore;
		FILE *f;

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)T.pid,
			 (int)tid);
		f = fopen(path, "re");
		if (!f)
			continue;	/* gone meanwhile */
		comm[0] = 0;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		if (sched_getaffinity(tid, sizeof(set), &set))
			continue;
		lcore = tid == T.pid || !strncmp(comm, "rte-worker", 10);
		lcores += lcore;
		if (lcore)
			ck_assert_msg(CPU_COUNT(&set) == 1 && CPU_ISSET(pmd_cpu, &set),
				      "lcore thread %s on %d CPUs", comm,
				      CPU_COUNT(&set));
		else if (pin_guest)
			ck_assert_msg(!CPU_ISSET(pmd_cpu, &set),
				      "thread %s may run on the lcores' CPU", comm);
	}
	closedir(dp);
	ck_assert_uint_eq(lcores, 2);
}
END_TEST

/* The checker can fail: a changed byte, a length, a stranger, a repeat. */
START_TEST(test_frame_checker_finds_faults)
{
	uint8_t f[FRAME_MAX];
	uint32_t len, n_ip = 0;

	counters_reset(64);
	F.sent = 64;
	for (uint64_t s = 0; s < 64; s++) {
		len = frame_make(s, f);
		ck_assert_uint_ge(len, FRAME_MIN);
		ck_assert_uint_le(len, FRAME_MAX);
		n_ip += get16(f + 12) != ETH_LOCAL;
		swap_5tuple(f);
		if (s == 10)
			f[len / 2] ^= 1;
		check_frame(f, s == 11 ? len - 1 : len);
	}
	ck_assert_uint_gt(n_ip, 0);
	len = frame_make(5, f);
	swap_5tuple(f);
	check_frame(f, len);				/* again */
	len = frame_make(64, f);			/* never sent */
	swap_5tuple(f);
	check_frame(f, len);
	len = frame_make(7, f);				/* no swap */
	check_frame(f, len);				/* a repeat first */
	ck_assert_uint_eq(F.dup, 2);
	ck_assert_uint_eq(F.corrupt, 3);
	ck_assert_uint_eq(F.first_bad_seq, 10);
	ck_assert_uint_eq(F.unique, 63);	/* 11 has no sequence number left */
	/* The swap is an involution that changes the MACs at least. */
	len = frame_make(3, f);
	memcpy(F.expect, f, len);
	swap_5tuple(f);
	ck_assert(memcmp(f, F.expect, len));
	swap_5tuple(f);
	ck_assert_mem_eq(f, F.expect, len);
	free(F.seen);
	F.seen = NULL;
}
END_TEST

/* ---- traffic ---- */

static void variant_of(int i, struct variant *v)
{
	/* _i: shadow layout | guest layout << 1 | ring features << 2 */
	*v = (struct variant){ .mode = SVQISO_VU_ISOLATED, .pairs = true,
			       .shadow = i & 1 ? SVQISO_LAYOUT_PACKED : SVQISO_LAYOUT_SPLIT,
			       .guest = i & 2 ? SVQISO_LAYOUT_PACKED : SVQISO_LAYOUT_SPLIT,
			       .ring_features = i & 4 };
}

START_TEST(test_isolated_frames_echoed_intact)
{
	struct variant v;
	char what[64];

	variant_of(_i, &v);
	snprintf(what, sizeof(what), "%s shadow, %s guest%s",
		 v.shadow ? "packed" : "split", v.guest ? "packed" : "split",
		 v.ring_features ? ", indirect + event idx" : "");
	fx_open(&v);
	inspect_pmd();
	run_frames(what, scaled(FRAMES));
	inspect_pmd();
	ck_assert_uint_ge(F.inspections, 2 + scaled(FRAMES) / INSPECT_EVERY);
	fx_close();
}
END_TEST

START_TEST(test_direct_frames_echoed_guest_ram_shared)
{
	struct variant v = { .mode = SVQISO_VU_DIRECT, .pairs = true,
			     .guest = _i, .ring_features = true };

	fx_open(&v);
	run_frames(_i ? "direct, packed" : "direct, split", scaled(FRAMES / 5));
	inspect_pmd();
	fx_close();
}
END_TEST

/* ---- stopping an RX queue that holds buffers ---- */

/*
 * Stop the RX queue, idle with its buffers posted: within 1 s, at the
 * base of what the device used. Then restart it there (with @tx_too, the
 * TX queue is stopped first and restarted after it) and send as many
 * frames again: none lost or repeated.
 */
static void rx_stop_restart(unsigned int guest_layout, unsigned int shadow_layout,
			    bool tx_too, bool proxy)
{
	struct variant v = { .shadow = (uint8_t)shadow_layout, .guest = guest_layout,
			     .pairs = true, .ring_features = true,
			     .timeout_ms = 3000, .proxy = proxy };
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint64_t n = scaled(2000);
	uint32_t base = 0, want, tx_base = 0;
	int64_t t0, ms;
	int rc;

	fx_open(&v);
	counters_reset(2 * n);
	traffic(n);
	ck_assert_uint_eq(F.unique, n);
	/* Idle: everything sent came back; the RX buffers stay posted. */
	ck_assert_uint_gt(gring_inflight(netq_ring(F.rx)), 0);
	want = gring_used_base(netq_ring(F.rx));
	t0 = now_ms();
	rc = svqiso_vu_queue_stop(F.vu, NETQ_RX_INDEX(0), &base);
	ms = now_ms() - t0;
	fprintf(stderr, "# RX stop: %d in %" PRId64 " ms, base %#x (want %#x)\n",
		rc, ms, base, want);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_le(ms, 1000);
	ck_assert_uint_eq(base, want);
	/* The buffers it held go to testpmd again from the restart (the
	 * proxy keeps its counters to itself). */
	if (!proxy) {
		ck_assert_int_eq(svqiso_vu_get_queue_stats(F.vu, NETQ_RX_INDEX(0),
							   &st), 0);
		ck_assert_uint_eq(st.completions, n);
		F.rx_returned += st.requests - st.completions;
	}
	if (tx_too)
		ck_assert_int_eq(svqiso_vu_queue_stop(F.vu, NETQ_TX_INDEX(0),
						      &tx_base), 0);
	queue_start(NETQ_RX_INDEX(0), base);
	if (tx_too)
		queue_start(NETQ_TX_INDEX(0), tx_base);
	traffic(2 * n);
	report(tx_too ? "after an RX stop, both restarted" :
			"after an RX stop, RX restarted alone", 2 * n, 0);
	fx_close();
}

/*
 * An RX queue's buffers stay posted with no traffic: the backend will
 * never complete them. Its stop must not wait for them; the base it
 * returns is that of what the device used, so a restart there gives the
 * device the same buffers again, and frames keep flowing. The TX queue is
 * stopped and started with it, as QEMU stops and starts a device's queues
 * together. _i: bit 0 the guest ring layout, bit 1 the shadow ring's.
 */
START_TEST(test_rx_stop_idle_returns_base_no_loss)
{
	rx_stop_restart(_i & 1, _i >> 1, true, false);
}
END_TEST

/*
 * The same with the RX queue restarted alone, the TX queue running on:
 * the adapter's contract (a queue starts again at the base its stop
 * returned), which testpmd keeps only if the adapter enables its other
 * running queues again after a queue's restart.
 */
START_TEST(test_rx_restart_alone_no_loss)
{
	rx_stop_restart(_i & 1, _i >> 1, false, false);
}
END_TEST

/* ---- through svqiso-proxy ---- */

/* _i: shadow layout | guest layout << 1 */
START_TEST(test_proxy_frames_echoed_intact)
{
	struct variant v = { .mode = SVQISO_VU_DIRECT, .proxy = true,
			     .pairs = true, .ring_features = true,
			     .shadow = _i & 1 ? SVQISO_LAYOUT_PACKED : SVQISO_LAYOUT_SPLIT,
			     .guest = _i & 2 ? SVQISO_LAYOUT_PACKED : SVQISO_LAYOUT_SPLIT };
	char what[64];

	snprintf(what, sizeof(what), "proxy: %s shadow, %s guest",
		 v.shadow ? "packed" : "split", v.guest ? "packed" : "split");
	fx_open(&v);
	inspect_pmd();
	run_frames(what, scaled(FRAMES / 5));
	inspect_pmd();
	fx_close();
}
END_TEST

/* An idle RX queue stopped through the proxy: its posted buffers go back
 * to the guest ring, the restart loses and repeats nothing.
 * _i: the guest ring layout. */
START_TEST(test_proxy_rx_stop_idle_no_loss)
{
	rx_stop_restart(_i, SVQISO_LAYOUT_SPLIT, true, true);
}
END_TEST

static struct ckplan plan = { .suite = "net" };

/* A tcase with a testpmd of its own, started before its first test. */
static TCase *net_tcase(Suite *s, const char *name, const char *tag,
			double timeout)
{
	TCase *tc = ckplan_tcase(&plan, s, name, tag, timeout);

	tcase_add_unchecked_fixture(tc, pmd_setup, pmd_teardown);
	return tc;
}

#define net_add_loop_test(tc, tf, s, e)	ckplan_add(&plan, tc, tf, s, e)
#define net_add_test(tc, tf)		ckplan_add(&plan, tc, tf, 0, 1)

static Suite *net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc;

	tc = net_tcase(s, "api", NULL, 120);
	net_add_loop_test(tc, test_last_tx_queue_needs_queue_pairs, 0, 2);
	net_add_test(tc, test_features_offered_to_guest);
	net_add_test(tc, test_testpmd_spins_on_one_cpu);
	net_add_test(tc, test_frame_checker_finds_faults);

	tc = net_tcase(s, "isolated", NULL, 300);
	net_add_loop_test(tc, test_isolated_frames_echoed_intact, 0, 8);

	tc = net_tcase(s, "direct", NULL, 120);
	net_add_loop_test(tc, test_direct_frames_echoed_guest_ram_shared, 0, 2);

	tc = net_tcase(s, "rx-stop-idle", NULL, 120);
	net_add_loop_test(tc, test_rx_stop_idle_returns_base_no_loss, 0, 4);
	tc = net_tcase(s, "rx-restart-alone", NULL, 120);
	net_add_loop_test(tc, test_rx_restart_alone_no_loss, 0, 4);
	tc = net_tcase(s, "proxy", NULL, 300);
	net_add_loop_test(tc, test_proxy_frames_echoed_intact, 0, 4);
	net_add_loop_test(tc, test_proxy_rx_stop_idle_no_loss, 0, 2);
	return s;
}

int main(void)
{
	const char *env = getenv("SVQ_TEST_SEED");

	if (!proc_on_path(TESTPMD_BIN)) {
		printf("1..0 # SKIP " TESTPMD_BIN " not installed\n");
		/* Run for its exit status alone, a skip is what it says. */
		env = getenv("SVQ_TEST_SKIP_STATUS");
		return env && *env ? atoi(env) : EXIT_SUCCESS;
	}
	seed = env && *env ? strtoull(env, NULL, 0) : 0x6e6574eedull;
	env = getenv("SVQ_TEST_SCALE");
	if (env && *env)
		scale = strtod(env, NULL);
	printf("# seed=%#" PRIx64 "\n", seed);
	return ckplan_run(&plan, net_suite());
}
