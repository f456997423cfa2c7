/* SPDX-License-Identifier: MIT */
/*
 * bench_e2e: the cost of isolation end to end. A guest virtio-blk driver
 * (the driver model of tests/guest) drives qemu-storage-daemon's null-co
 * device (read-zeroes=on: a read writes every byte it returns, as a disk's
 * DMA would; a write is dropped unread) through the vhost-user adapter in
 * three modes, interleaved per configuration and repeated; each figure is
 * the median over the repeats:
 *
 *   direct           plain vhost-user (the daemon maps guest RAM), the
 *                    comparison.
 *   isolated         shadow virtqueues and bounce buffers on the
 *                    adapter's relay thread: guest kick eventfd ->
 *                    relay -> daemon -> relay -> guest call eventfd, four
 *                    wake-ups per batch against direct's two.
 *   isolated-inline  SVQISO_VU_F_EXTERNAL_LOOP, no relay thread. The guest
 *                    thread calls svqiso_vu_queue_kick() where it would
 *                    write its kick eventfd: a notify the VMM handles
 *                    synchronously on the vCPU thread that exits on it
 *                    (copy-in and the backend kick on that thread). For
 *                    completions it sleeps in poll() on the backend's call
 *                    fd (svqiso_vu_queue_backend_fd()) and, when woken,
 *                    calls svqiso_vu_queue_process() (call_fd -1) and
 *                    collects only if that asks for a guest interrupt.
 *                    Caveat: only the notify side is realistic. In a KVM
 *                    VM a vCPU waiting for an interrupt is halted in the
 *                    kernel and does not return to userspace on a backend
 *                    eventfd, so a VMM would run process() on one of its
 *                    own threads (an iothread or main loop) and inject the
 *                    interrupt from there: one more wake-up than modelled
 *                    here. Inline is the best case for the adapter, relay
 *                    the worst; a VMM lands in between.
 *
 *   bench_e2e [--out DIR] [--quick] [--loop uring|epoll|busy]
 *             [--copy auto|memcpy|movsb|nt] [--queues 1|2]
 *             [--secs S] [--repeats N] [--only CONFIG,...] [--lazy-kicks]
 *             [--no-touch] [--modes direct,isolated,isolated-inline]
 *             [--no-pin] [--batch-bytes N] [--spin-ns N] [--pool-size N]
 *             [--proxy PATH [--proxy-cpu guest|daemon]]
 *             [--backend null|file] [--cpus LIST] [--verbose]
 *             [--no-spin]
 *
 * --backend file has the daemon serve a 1 GiB raw image on tmpfs instead of
 * null-co (results in e2e-file.*): every read and write then goes through
 * the page cache, so the daemon copies every byte itself, as a real
 * backend's storage stack does, and reads return what writes left there
 * (read, not checked). --cpus LIST confines the run to those CPUs ("0,1",
 * "0-3"): the guest driver runs on the first, the daemon on the second and
 * the relay thread on the third if there is one (else beside the guest);
 * the CPU ceiling counts them all.
 *
 * Each run also times one cache line's round trip between the guest's CPU
 * and the daemon's just before it: a virtual machine's host moves its CPUs
 * between placements whose round trips differ several times (about 60 ns
 * and 300 ns here), and IOPS move with them (direct 4 KiB reads at depth
 * 32: about 0.35M against 1M), which is the spread between repeats and
 * between runs; --verbose prints every run with its round trip.
 *
 * Besides IOPS, latency, system calls and CPU time, each repeat times one
 * cold copy of the payload (libc memcpy between random slots of two
 * buffers larger than the caches) and gives, paired with direct's run in
 * the same repeat, the isolation tax: CPU per request above direct's in
 * units of that copy, whose physical floor for bounce isolation is 1. The
 * Targets list ends each section (PASS, MISS or SKIP).
 *
 * --proxy PATH runs two paths instead of the modes above (results in
 * e2e-proxy.*): *direct* as above, and *proxy*: the same adapter in direct
 * mode (plain vhost-user, sharing guest RAM with its peer) connected to
 * svqiso-proxy (the program at PATH, started here on a socket in a
 * temporary directory and stopped by pid), which isolates the daemon
 * behind it: guest kick -> proxy -> daemon -> proxy -> guest call, with
 * one copy each way between guest RAM and the proxy's bounce arena, all on
 * the proxy's one thread. --copy and --pool-size go to the proxy then. Its
 * CPU time and system calls are counted apart from the daemon's, and after
 * each run its counters (SIGUSR1) must show every request the guest saw
 * complete, relayed and completed, with no error. The proxy runs on the
 * guest's CPU (--proxy-cpu guest, the default, as the relay thread) or
 * beside the daemon (--proxy-cpu daemon).
 *
 * --batch-bytes sets the adapter's batch_bytes (0, the default: off): each
 * handler call hands on what it copied after N bytes, so the peer starts on
 * the first requests of a large batch while the rest are copied.
 * --spin-ns sets the adapter's spin_ns (0, the default:
 * SVQISO_VU_SPIN_DEFAULT_NS): after a wake-up with requests in flight the
 * relay thread polls the rings for up to N ns without progress before it
 * sleeps again (an adaptive window, N at most); --no-spin sets
 * SVQISO_VU_F_NO_SPIN, so that it sleeps at once (results in
 * e2e-nospin.*).
 * --pool-size sets the adapter's pool_size, the bounce arena of each queue
 * (0, the default: SVQISO_ARENA_DEFAULT_SIZE). The arena starts over at its
 * beginning once the bytes in flight leave room there, so what the copies
 * and the daemon walk through follows those bytes, a little above them; an
 * arena of just the bytes a queue holds in flight walks through no more.
 *
 * The guest runs one tight loop on one thread over its queues: submit until
 * the depth is reached, wait for the call eventfd (inline: the backend's)
 * with poll(), collect, resubmit. By default the guest touches its data as
 * a real one would: it fills a write buffer before posting it and reads
 * every byte of a read buffer after completion (checking the zeros that
 * read-zeroes=on returns), so the cache traffic of copying shows;
 * --no-touch leaves the data alone. Beyond that only the status byte and
 * used length are checked. A "-spin" configuration polls the used ring
 * instead of sleeping in poll() (inline: calling svqiso_vu_queue_poll()
 * each time round, with busy polling on: no notify, no backend call, no
 * eventfd read), to show what interrupt delivery costs at depth 1.
 *
 * Placement, as a VMM pinning its vCPU threads and its backends would make
 * it: when the process may run on two CPUs or more, the guest driver thread
 * runs on the first of them and every thread of qemu-storage-daemon on the
 * second, in every mode, so the guest and the daemon never share a CPU; the
 * relay thread runs on the first, beside the guest, placed by the adapter's
 * relay_start hook. With two CPUs the relay has to share one with the guest
 * or with the daemon: beside the guest measured best in every
 * configuration, in both of the host's placements (beside the daemon, 128
 * KiB reads reached half the IOPS or less). In a "-spin" configuration the
 * relay runs beside the daemon: a guest polling its used ring never sleeps,
 * and a relay beside it would run only when the scheduler preempted the
 * guest. --no-pin leaves all of them to the scheduler.
 *
 * Where the time goes: each timed run also yields the CPU time per request
 * of the guest driver thread, of the rest of this process (the relay
 * thread) and of the daemon (all its threads), read from the kernel's
 * CPU-time clocks just before and just after the run (never during it),
 * with the share of the machine idle and the IOPS that the CPUs this
 * process may use would allow at that total, were CPU time the only limit.
 *
 * Exit status: 0, 1 on an error (I/O failure, bad status, counters that
 * disagree), 77 when qemu-storage-daemon is not on PATH.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <svqiso/svqiso.h>
#include "bench.h"
#include "guest.h"
#include "qsd.h"

#define GUEST_GPA	0x40000000ull
#define GUEST_SIZE	(64ull << 20)
#define DISK_SIZE	(1ull << 30)
#define RING_NUM	256
#define MAX_QD		32
#define MAX_QUEUES	2
#define MAX_REPEATS	15
#define F_RING_PACKED	(1ull << 34)
#define STALL_NS	10000000000ull	/* no completion this long: give up */
#define COLD_SIZE	(128ull << 20)	/* each cold-copy buffer: past the caches */
#define COLD_BATCH	64		/* copies timed together */
#define COLD_BATCHES	9

struct cfg {
	const char *name;	/* one word: a plot label */
	const char *rw;		/* "randread", "randwrite", "read", "write" */
	uint32_t bs;
	unsigned int qd;
	bool write;
	bool seq;
	bool spin;		/* poll the used ring instead of sleeping */
	bool quick;		/* also in a --quick run */
};

static const struct cfg cfgs[] = {
	{ "4k-randread-qd1", "randread", 4096, 1, false, false, false, true },
	{ "4k-randwrite-qd1", "randwrite", 4096, 1, true, false, false, false },
	{ "4k-randread-qd1-spin", "randread", 4096, 1, false, false, true, false },
	{ "4k-randread-qd32", "randread", 4096, 32, false, false, false, true },
	{ "4k-randwrite-qd32", "randwrite", 4096, 32, true, false, false, false },
	{ "128k-read-qd32", "read", 131072, 32, false, true, false, true },
	{ "128k-write-qd32", "write", 131072, 32, true, true, false, false },
};
#define NR_CFGS (sizeof(cfgs) / sizeof(cfgs[0]))

static const struct {
	const char *name;
	const char *label;	/* in Targets lines */
	uint8_t mode;
	bool inline_loop;	/* SVQISO_VU_F_EXTERNAL_LOOP, driven inline */
	bool proxy;		/* connected to svqiso-proxy (--proxy) */
} modes[] = {
	{ "direct", "direct", SVQISO_VU_DIRECT, false, false },
	{ "isolated", "isolated (relay thread)", SVQISO_VU_ISOLATED, false,
	  false },
	{ "isolated-inline", "isolated-inline (external loop, notify on the "
	  "guest thread)", SVQISO_VU_ISOLATED, true, false },
	{ "proxy", "through svqiso-proxy", SVQISO_VU_DIRECT, false, true },
};
#define NR_MODES	(sizeof(modes) / sizeof(modes[0]))
#define M_DIRECT	0
#define M_PROXY		3

/* CPU use over one timed run: us per request of each party, and more. */
enum {
	CPU_GUEST,	/* the guest driver thread (inline: the adapter too) */
	CPU_RELAY,	/* every other thread here: the adapter's relay */
	CPU_DAEMON,	/* every thread of qemu-storage-daemon */
	CPU_PROXY,	/* every thread of svqiso-proxy (--proxy) */
	CPU_TOTAL,
	CPU_IDLE,	/* share of all online CPUs idle */
	CPU_OTHER,	/* share of them busy, but not with the three above */
	CPU_CEILING,	/* IOPS the usable CPUs give at CPU_TOTAL per request */
	CPU_UTIL,	/* the IOPS measured over CPU_CEILING */
	NR_CPU
};

/* Medians over the repeats of one configuration in one mode. */
struct figure {
	double iops, gbps, lat_us;
	double iops_min, iops_max;	/* the spread over the repeats */
	double sys_req;			/* all of this process */
	double vmm_req;			/* less the guest driver's own */
	bool have_sys;
	double cpu[NR_CPU];		/* each the median on its own */
	double cpu_min[NR_CPU], cpu_max[NR_CPU];
	bool have_cpu;
	/* Paired: the median over the repeats of this mode's IOPS over
	 * direct's in the same repeat, and the spread of those ratios. */
	double pair, pair_min, pair_max;
	double proxy_sys_req;		/* the proxy's system calls */
	bool have_proxy_sys;
	/* Paired with direct, medians over the repeats: the isolation tax
	 * (CPU per request over direct's, in cold copies of the payload
	 * measured in the same repeat) and the latency added. */
	double tax, tax_min, tax_max;
	bool have_tax;
	double lat_add, lat_add_min, lat_add_max;
	double copy_us;			/* the cold copy itself, median */
	double rtt_ns;			/* CPU round trip before the runs */
};

static struct {
	struct bench b;
	struct qsd qsd;
	struct gmem *gm;
	uint64_t buf_gpa[MAX_QD];	/* one data buffer per slot */
	uint64_t *buf[MAX_QD];		/* the same, in this process */
	bool touch;			/* the guest writes and reads its data */
	bool file;			/* --backend file: a raw image on tmpfs */
	bool verbose;			/* --verbose: every timed run */
	uint8_t *cold[2];		/* cold copies: two buffers of COLD_SIZE */
	bool mode_on[NR_MODES];		/* --modes; all by default */
	int sys_fd;
	uint8_t loop_mode;
	const char *loop_name;
	uint8_t copy;
	unsigned int nq;
	const char *only;		/* --only: one configuration by name */
	bool lazy;			/* --lazy-kicks: SVQISO_VU_F_LAZY_KICKS */
	uint64_t batch_bytes;		/* --batch-bytes: the adapter's */
	uint64_t spin_ns;		/* --spin-ns: the adapter's */
	bool no_spin;			/* --no-spin: SVQISO_VU_F_NO_SPIN */
	uint64_t pool_size;		/* --pool-size: the adapter's, per queue */
	uint64_t run_ns, warm_ns;
	unsigned int repeats;
	bool pin;			/* CPU placement; --no-pin: none */
	int cpu_guest;			/* the guest driver */
	int cpu_daemon;			/* every thread of the daemon */
	int cpu_relay;			/* the relay thread of the next session */
	int cpu_own_relay;		/* a third CPU, the relay's; -1: none */
	int relay_pin_err;		/* the relay_start hook's first error */
	int ncpus;			/* CPUs this process may use */
	bool cpu_ticks;			/* some CPU time from a tick fallback */
	/* --proxy: svqiso-proxy, its socket, its stdout and stderr */
	const char *proxy_bin;
	bool proxy_by_daemon;		/* --proxy-cpu daemon */
	int cpu_proxy;
	char proxy_dir[64];
	char proxy_sock[96];
	char proxy_log[96];
	pid_t proxy_pid;
	int proxy_log_fd;		/* the same file, to read stats from */
	int proxy_sys_fd;		/* its system calls */
} G = { .sys_fd = -1, .loop_name = "auto", .nq = 1, .touch = true,
	.pin = true, .proxy_pid = -1, .proxy_log_fd = -1, .proxy_sys_fd = -1 };

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= SVQISO_LOG_WARN)
		fprintf(stderr, "bench_e2e: svqiso: %s\n", msg);
}

/* ---- One adapter session: connect, guest queues, stop, free ---- */

struct sess {
	unsigned int m;			/* index in modes[] */
	uint8_t mode;
	bool inline_loop;
	struct svqiso_vu *vu;
	struct blkq *q[MAX_QUEUES];
	int backend_fd[MAX_QUEUES];	/* inline: what the guest thread polls */
	int kick_err;			/* inline: first svqiso_vu_queue_kick() error */
	uint64_t top;			/* guest allocator before the rings */
};

/* ---- svqiso-proxy (--proxy): started and stopped by pid ---- */

#define PROXY_WAIT_MS	5000	/* for a stats line, or a session to end */

/* Copy the proxy's log (its warnings and errors) to stderr. */
static void proxy_show_log(void)
{
	char buf[4096];
	ssize_t n;
	off_t off = 0;

	if (G.proxy_log_fd < 0)
		return;
	while ((n = pread(G.proxy_log_fd, buf, sizeof(buf), off)) > 0) {
		fwrite(buf, 1, (size_t)n, stderr);
		off += n;
	}
}

static int proxy_start(void)
{
	char pool[32], err[160] = "";
	char *argv[16] = {
		(char *)G.proxy_bin, "--socket", G.proxy_sock,
		"--backend", G.qsd.sock, "--name", "bench",
		"--copy", (char *)svqiso_copy_name(G.copy), "-q",
	};
	unsigned int n = 10;
	struct proc_spawn_opts po = { .argv = argv, .sock = G.proxy_sock,
				      .start_ms = 10000, .stdin_fd = -1 };
	int rc;

	rc = proc_mkdtemp(G.proxy_dir, sizeof(G.proxy_dir), "proxy", err,
			  sizeof(err));
	if (rc)
		goto fail;
	snprintf(G.proxy_sock, sizeof(G.proxy_sock), "%s/proxy.sock",
		 G.proxy_dir);
	snprintf(G.proxy_log, sizeof(G.proxy_log), "%s/proxy.log", G.proxy_dir);
	/* Appended to by its stdout (stats) and stderr (log lines) alike;
	 * read back with pread(), which leaves the shared offset alone. */
	G.proxy_log_fd = open(G.proxy_log, O_RDWR | O_CREAT | O_EXCL |
			      O_APPEND | O_CLOEXEC, 0600);
	if (G.proxy_log_fd < 0) {
		rc = -errno;
		snprintf(err, sizeof(err), "%s: %s", G.proxy_log, strerror(errno));
		goto fail;
	}
	if (G.pool_size) {
		snprintf(pool, sizeof(pool), "%" PRIu64, G.pool_size);
		argv[n++] = "--pool-size";
		argv[n++] = pool;
	}
	argv[n] = NULL;
	po.out_fd = G.proxy_log_fd;
	rc = proc_spawn(&po, &G.proxy_pid, err, sizeof(err));
	if (rc)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "bench_e2e: svqiso-proxy: %s\n", err);
	proxy_show_log();
	return rc;
}

static void proxy_teardown(bool show_log)
{
	int status = proc_stop(&G.proxy_pid, 5000);

	if (status != -1 && (!WIFEXITED(status) || WEXITSTATUS(status))) {
		fprintf(stderr, "bench_e2e: svqiso-proxy did not exit cleanly "
			"(status %#x)\n", status);
		show_log = true;
	}
	if (show_log)
		proxy_show_log();
	if (G.proxy_log_fd >= 0)
		close(G.proxy_log_fd);
	G.proxy_log_fd = -1;
	if (G.proxy_sys_fd >= 0)
		close(G.proxy_sys_fd);
	G.proxy_sys_fd = -1;
	if (!G.proxy_dir[0])
		return;
	unlink(G.proxy_sock);
	unlink(G.proxy_log);
	rmdir(G.proxy_dir);
	G.proxy_dir[0] = 0;
}

/*
 * The proxy's stats, one JSON object on a line: SIGUSR1 makes it print
 * one to its stdout. The first stats line it writes after the signal goes
 * into @buf (@len bytes); log lines before it are copied to stderr.
 */
static int proxy_stats(char *buf, size_t len)
{
	struct stat st;
	off_t off;
	int waited;

	if (fstat(G.proxy_log_fd, &st))
		return -errno;
	off = st.st_size;
	if (kill(G.proxy_pid, SIGUSR1))
		return -errno;
	for (waited = 0; waited < PROXY_WAIT_MS; ) {
		ssize_t n = pread(G.proxy_log_fd, buf, len - 1, off);
		char *nl;

		if (n < 0)
			return -errno;
		buf[n] = 0;
		nl = strchr(buf, '\n');
		if (!nl) {
			if ((size_t)n == len - 1)
				return -ENOBUFS;
			proc_sleep_ms(1);
			waited++;
			continue;
		}
		*nl = 0;
		if (!strncmp(buf, "{\"device\":", 10))
			return 0;
		fprintf(stderr, "bench_e2e: %s\n", buf);
		off += nl + 1 - buf;
	}
	return -ETIMEDOUT;
}

/* The number after "@key": in @s; -1 if it is not there. */
static int64_t json_num(const char *s, const char *key)
{
	char k[48];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(s, k);
	return p ? strtoll(p + strlen(k), NULL, 10) : -1;
}

/*
 * The proxy's counters for this session's queues, before they stop: every
 * request the guest saw complete relayed and completed, none in flight,
 * no error, the queue not broken.
 */
static int proxy_check(const struct sess *s)
{
	char line[16384];
	unsigned int i;
	int rc;

	rc = proxy_stats(line, sizeof(line));
	if (rc) {
		fprintf(stderr, "bench_e2e: svqiso-proxy stats: %s\n",
			strerror(-rc));
		return rc;
	}
	for (i = 0; i < G.nq; i++) {
		char key[32], q[1024] = "";
		const char *p, *end;
		struct blkq_stats gs;
		int64_t req, done, err, busy;

		blkq_get_stats(s->q[i], &gs);
		snprintf(key, sizeof(key), "{\"queue\":%u,", i);
		p = strstr(line, key);
		if (p) {
			end = strstr(p + 1, "{\"queue\":");
			snprintf(q, sizeof(q), "%.*s",
				 (int)(end ? end - p : (ptrdiff_t)strlen(p)), p);
		}
		req = json_num(q, "requests");
		done = json_num(q, "completions");
		err = json_num(q, "errors");
		busy = json_num(q, "in_flight");
		if (req < 0 || req != done || (uint64_t)done != gs.completed ||
		    err || busy || !strstr(q, "\"broken\":null")) {
			fprintf(stderr, "bench_e2e: svqiso-proxy queue %u: %"
				PRId64 " relayed, %" PRId64 " completed, %"
				PRId64 " errors, %" PRId64 " in flight; the guest "
				"saw %" PRIu64 " (stats: %s)\n", i, req, done, err,
				busy, gs.completed, line);
			rc = -EPROTO;
		}
	}
	return rc;
}

/*
 * After this side hung up: until the proxy ended the session. It serves
 * one at a time, so a connection it sees first is turned away.
 */
static int proxy_wait_idle(void)
{
	char line[16384];
	int waited, rc;

	for (waited = 0; waited < PROXY_WAIT_MS; waited++) {
		rc = proxy_stats(line, sizeof(line));
		if (rc)
			return rc;
		if (strstr(line, "\"vmm\":\"none\""))
			return 0;
		proc_sleep_ms(1);
	}
	fprintf(stderr, "bench_e2e: svqiso-proxy still in a session %d ms after "
		"it ended\n", PROXY_WAIT_MS);
	return -ETIMEDOUT;
}

/* Inline: the guest's notify, handled on its own thread as on a vCPU exit. */
static void inline_notify(void *ctx, struct blkq *q)
{
	struct sess *s = ctx;
	unsigned int i;
	int rc;

	for (i = 0; i < G.nq && s->q[i] != q; i++)
		;
	rc = svqiso_vu_queue_kick(s->vu, i);
	if (rc < 0 && !s->kick_err)
		s->kick_err = rc;
}

/* The adapter's relay thread started: on the CPU measure() chose. */
static void relay_place(void *ctx)
{
	int rc = bench_pin_thread(0, G.cpu_relay);
	int none = 0;

	(void)ctx;
	if (rc)
		__atomic_compare_exchange_n(&G.relay_pin_err, &none, rc, false,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static int sess_open(struct sess *s, unsigned int m)
{
	SVQISO_OPTS(svqiso_vu_opts, vo,
		    .path = modes[m].proxy ? G.proxy_sock : G.qsd.sock,
		    .mode = modes[m].mode,
		    .log = log_cb, .timeout_ms = 10000,
		    .loop_mode = G.loop_mode, .copy = G.copy,
		    .flags = (G.lazy ? SVQISO_VU_F_LAZY_KICKS : 0) |
			     (modes[m].inline_loop ? SVQISO_VU_F_EXTERNAL_LOOP : 0) |
			     (G.no_spin ? SVQISO_VU_F_NO_SPIN : 0),
		    .relay_start = G.pin ? relay_place : NULL,
		    .batch_bytes = G.batch_bytes, .spin_ns = G.spin_ns,
		    .pool_size = G.pool_size);
	struct blkq_opts qo = { .num = RING_NUM, .indirect = true,
				.event_idx = true, .max_segs = 4 };
	unsigned int i;
	int rc;

	memset(s, 0, sizeof(*s));
	s->m = m;
	s->mode = modes[m].mode;
	s->inline_loop = modes[m].inline_loop;
	s->top = gmem_alloc_top(G.gm);
	rc = svqiso_vu_connect(&vo, &s->vu);
	if (rc) {
		fprintf(stderr, "bench_e2e: connect: %s\n", strerror(-rc));
		return rc;
	}
	rc = svqiso_vu_set_features(s->vu, svqiso_vu_get_features(s->vu) &
					   ~F_RING_PACKED);
	for (i = 0; i < gmem_nr_regions(G.gm) && !rc; i++) {
		struct svqiso_mem_region r;

		gmem_region(G.gm, i, &r);
		rc = svqiso_vu_add_region(s->vu, &r);
	}
	for (i = 0; i < G.nq && !rc; i++) {
		struct svqiso_vu_queue c;

		rc = blkq_new(G.gm, &qo, &s->q[i]);
		if (rc)
			break;
		c = (struct svqiso_vu_queue){
			.sz = sizeof(c), .ring = blkq_addr(s->q[i]),
			.num = blkq_num(s->q[i]), .layout = blkq_layout(s->q[i]),
			.base = blkq_fresh_base(s->q[i]),
			.kick_fd = blkq_kick_fd(s->q[i]),
			.call_fd = blkq_call_fd(s->q[i]),
		};
		if (s->inline_loop) {
			c.kick_fd = c.call_fd = -1;
			blkq_set_notify(s->q[i], inline_notify, s);
		}
		rc = svqiso_vu_queue_start(s->vu, i, &c);
		if (!rc && s->inline_loop) {
			s->backend_fd[i] = svqiso_vu_queue_backend_fd(s->vu, i);
			rc = s->backend_fd[i] < 0 ? s->backend_fd[i] : 0;
		}
	}
	if (rc)
		fprintf(stderr, "bench_e2e: session setup: %s\n", strerror(-rc));
	return rc;
}

/*
 * Stop the queues, check that the adapter (isolated mode) or the proxy
 * relayed exactly what the guest saw complete, and free everything; the
 * rings' guest RAM is reused by the next session. Through the proxy, wait
 * until it has ended the session too.
 */
static int sess_close(struct sess *s)
{
	struct svqiso_svq_stats st;
	bool proxy = modes[s->m].proxy;
	unsigned int i;
	uint32_t base;
	int rc = 0, err;

	/* Its counters while the queues still run. */
	if (proxy && s->vu && s->q[G.nq - 1])
		rc = proxy_check(s);
	err = __atomic_load_n(&G.relay_pin_err, __ATOMIC_RELAXED);
	if (err) {
		fprintf(stderr, "bench_e2e: relay thread to CPU %d: %s\n",
			G.cpu_relay, strerror(-err));
		rc = err;
	}
	if (s->kick_err) {
		fprintf(stderr, "bench_e2e: svqiso_vu_queue_kick: %s\n",
			strerror(-s->kick_err));
		rc = s->kick_err;
	}
	for (i = 0; i < G.nq && s->vu && s->q[i]; i++) {
		struct blkq_stats gs;

		err = svqiso_vu_queue_stop(s->vu, i, &base);
		if (err) {
			fprintf(stderr, "bench_e2e: queue %u stop: %s\n", i,
				strerror(-err));
			rc = rc ? rc : err;
			continue;
		}
		if (s->mode != SVQISO_VU_ISOLATED)
			continue;
		memset(&st, 0, sizeof(st));
		st.sz = sizeof(st);
		err = svqiso_vu_get_queue_stats(s->vu, i, &st);
		blkq_get_stats(s->q[i], &gs);
		if (err || st.requests != st.completions + st.given_back || st.errors ||
		    st.completions != gs.completed) {
			fprintf(stderr, "bench_e2e: queue %u counters: %s, %" PRIu64
				" relayed, %" PRIu64 " completed, %" PRIu64
				" errors; the guest saw %" PRIu64 "\n", i,
				strerror(-err), st.requests, st.completions,
				st.errors, gs.completed);
			rc = rc ? rc : -EPROTO;
		}
	}
	svqiso_vu_free(s->vu);
	for (i = 0; i < G.nq; i++)
		blkq_free(s->q[i]);
	gmem_set_alloc_top(G.gm, s->top);
	memset(s, 0, sizeof(*s));
	if (proxy) {
		err = proxy_wait_idle();
		rc = rc ? rc : err;
	}
	return rc;
}

/* ---- The guest's loop ---- */

struct run {
	const struct cfg *c;
	struct sess *s;
	unsigned int free[MAX_QD];	/* slots not in flight */
	unsigned int nfree;
	uint64_t t0[MAX_QD];		/* submit time per slot */
	uint64_t rng, next_sector;
	uint64_t done, bad, lat_ns;
	uint64_t guest_sys;		/* poll() and read() calls made here */
	uint32_t bad_len;		/* used_len of the first bad one */
	uint8_t bad_status;
	uint64_t bad_data;		/* touched reads that were not zeros */
};

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64*: cheap, and good enough to scatter offsets. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void done_cb(void *ctx, void *cookie, uint8_t status, uint32_t used_len)
{
	struct run *r = ctx;
	unsigned int slot = (unsigned int)(uintptr_t)cookie - 1;
	uint32_t want = r->c->write ? 1 : r->c->bs + 1;

	r->lat_ns += bench_now_ns() - r->t0[slot];
	r->done++;
	if (G.touch && !r->c->write && status == VIRTIO_BLK_S_OK) {
		/* The guest consumes what it read: read-zeroes=on fills the
		 * whole buffer with zeros, whatever it held before. An image
		 * holds what the writes left: read, but not checked. */
		const uint64_t *p = G.buf[slot];
		uint64_t acc = 0;
		uint32_t k;

		for (k = 0; k < r->c->bs / 8; k++)
			acc |= p[k];
		if (!G.file)
			r->bad_data += acc != 0;
		else
			__asm__ volatile("" : : "r"(acc));
	}
	if (status != VIRTIO_BLK_S_OK || used_len < want) {
		if (!r->bad) {
			r->bad_status = status;
			r->bad_len = used_len;
		}
		r->bad++;
	}
	r->free[r->nfree++] = slot;
}

static int submit(struct run *r)
{
	const struct cfg *c = r->c;
	unsigned int slot = r->free[--r->nfree];
	uint64_t spr = c->bs / BLK_SECTOR_SIZE, nblocks = DISK_SIZE / c->bs;
	struct blkq_seg seg = { .gpa = G.buf_gpa[slot], .len = c->bs };
	struct blkq_req req = {
		.type = c->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
		.seg = &seg, .nseg = 1,
		.cookie = (void *)(uintptr_t)(slot + 1),
	};
	int rc;

	/* The guest produces what it writes (a byte that changes). */
	if (G.touch && c->write)
		memset(G.buf[slot], (int)(r->done & 0xff) | 1, c->bs);
	if (c->seq) {
		req.sector = r->next_sector;
		r->next_sector = (r->next_sector + spr) % (nblocks * spr);
	} else {
		req.sector = rnd(&r->rng) % nblocks * spr;
	}
	r->t0[slot] = bench_now_ns();
	/* Slot i always goes to queue i % nq: the depth is spread evenly
	 * (at depth 1 only the first queue works). */
	rc = blkq_submit(r->s->q[slot % G.nq], &req);
	if (rc) {
		r->free[r->nfree++] = slot;
		fprintf(stderr, "bench_e2e: submit: %s\n", strerror(-rc));
	}
	return rc;
}

static unsigned int inflight(const struct run *r)
{
	return r->c->qd - r->nfree;
}

/* Wait for completions on any queue and collect them; 0 or -errno. */
static int reap(struct run *r)
{
	struct pollfd pfd[MAX_QUEUES];
	unsigned int i;
	int n, got;

	if (r->c->spin) {
		for (i = 0; i < G.nq; i++) {
			/* Inline: nothing else runs the queue; the VMM polls
			 * both rings, reading no eventfd. */
			if (r->s->inline_loop) {
				got = svqiso_vu_queue_poll(r->s->vu, i);
				if (got < 0)
					return got;
			}
			got = blkq_collect(r->s->q[i], done_cb, r);
			if (got < 0)
				return got;
		}
		return 0;
	}
	for (i = 0; i < G.nq; i++) {
		pfd[i].fd = r->s->inline_loop ? r->s->backend_fd[i] :
			    blkq_call_fd(r->s->q[i]);
		pfd[i].events = POLLIN;
		pfd[i].revents = 0;
	}
	n = poll(pfd, G.nq, 1000);
	r->guest_sys++;
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < G.nq && n > 0; i++) {
		uint64_t cnt;

		if (!(pfd[i].revents & POLLIN))
			continue;
		if (r->s->inline_loop) {
			/* The VMM's part: its eventfd read and copy-back. */
			got = svqiso_vu_queue_process(r->s->vu, i);
			if (got < 0)
				return got;
			/* The guest runs only on an interrupt. */
			if (!(got & SVQISO_SIGNAL_GUEST))
				continue;
			got = blkq_collect(r->s->q[i], done_cb, r);
			if (got < 0)
				return got;
			continue;
		}
		/* Drain the eventfd before collecting, so a later call is seen. */
		r->guest_sys++;
		if (read(pfd[i].fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			return -errno;
		got = blkq_collect(r->s->q[i], done_cb, r);
		if (got < 0)
			return got;
	}
	return 0;
}

/*
 * Keep qd requests in flight until @ns have passed (or @max requests were
 * submitted), then let the last ones complete. *@elapsed is the time from
 * the first submission to the last completion.
 */
static int drive(struct run *r, uint64_t ns, uint64_t max, uint64_t *elapsed)
{
	uint64_t start = bench_now_ns(), end = start + ns, submitted = 0;
	uint64_t last = start, seen = 0, now;
	int rc = 0;

	r->done = r->lat_ns = r->guest_sys = 0;
	for (;;) {
		now = bench_now_ns();
		while (r->nfree && now < end && submitted < max) {
			rc = submit(r);
			if (rc)
				goto out;
			submitted++;
		}
		if (!inflight(r))
			break;
		rc = reap(r);
		if (rc) {
			fprintf(stderr, "bench_e2e: collect: %s\n", strerror(-rc));
			goto out;
		}
		if (r->done != seen) {
			seen = r->done;
			last = bench_now_ns();
		} else if (bench_now_ns() - last > STALL_NS) {
			fprintf(stderr, "bench_e2e: %s: no completion for %llu s\n",
				r->c->name, STALL_NS / 1000000000ull);
			rc = -ETIMEDOUT;
			goto out;
		}
	}
out:
	*elapsed = last - start;
	return rc;
}

static int run_init(struct run *r, const struct cfg *c, struct sess *s,
		    uint64_t seed)
{
	unsigned int i;
	int rc;

	/* Inline, a guest polling its used ring: the VMM polls the queues
	 * too, with the notify and the backend's calls off. */
	for (i = 0; s->inline_loop && i < G.nq; i++) {
		rc = svqiso_vu_queue_set_busy_poll(s->vu, i, c->spin);
		if (rc) {
			fprintf(stderr, "bench_e2e: svqiso_vu_queue_set_busy_poll: %s\n",
				strerror(-rc));
			return rc;
		}
	}
	memset(r, 0, sizeof(*r));
	r->c = c;
	r->s = s;
	r->rng = seed | 1;
	for (i = 0; i < c->qd; i++)
		r->free[r->nfree++] = c->qd - 1 - i;
	return 0;
}

static uint64_t guest_kicks(const struct sess *s)
{
	struct blkq_stats st;
	uint64_t n = 0;
	unsigned int i;

	for (i = 0; i < G.nq; i++) {
		blkq_get_stats(s->q[i], &st);
		n += st.kicks;
	}
	return n;
}

/*
 * Per request, the CPU time each party used between two samples that
 * bracket a timed run of @done requests at @iops, into @cpu (NR_CPU
 * figures); false when there is nothing to divide by. Warns when the
 * parties used more CPU time than the usable CPUs had, which would mean
 * the figures are wrong.
 */
static bool cpu_use(const struct bench_cpu *a, const struct bench_cpu *b,
		    uint64_t done, double iops, const char *cfg, const char *mode,
		    double *cpu)
{
	double guest = (double)(b->thread_ns - a->thread_ns);
	double self = (double)(b->self_ns - a->self_ns);
	double daemon = (double)(b->pid_ns - a->pid_ns);
	double proxy = (double)(b->pid2_ns - a->pid2_ns);
	double wall = (double)(b->wall_ns - a->wall_ns);
	double relay = self > guest ? self - guest : 0;
	double total = guest + relay + daemon + proxy;

	if (!done || !total || b->total <= a->total)
		return false;
	G.cpu_ticks |= a->ticks || b->ticks;
	if (total > 1.05 * G.ncpus * wall)
		fprintf(stderr, "bench_e2e: %s %s: %.1f ms of CPU time in %.1f "
			"ms on %d CPUs, more than they have\n", cfg, mode,
			total / 1e6, wall / 1e6, G.ncpus);
	cpu[CPU_GUEST] = guest / 1e3 / (double)done;
	cpu[CPU_RELAY] = relay / 1e3 / (double)done;
	cpu[CPU_DAEMON] = daemon / 1e3 / (double)done;
	cpu[CPU_PROXY] = proxy / 1e3 / (double)done;
	cpu[CPU_TOTAL] = total / 1e3 / (double)done;
	cpu[CPU_IDLE] = (double)(b->idle - a->idle) / (double)(b->total - a->total);
	/* Other processes, interrupts and kernel threads: the machine is not
	 * ours alone then, and that shows here. The proxy, when it runs, is
	 * one of ours. */
	cpu[CPU_OTHER] = 1 - cpu[CPU_IDLE] - total / (bench_ncpus() * wall);
	if (cpu[CPU_OTHER] < 0)
		cpu[CPU_OTHER] = 0;	/* /proc/stat counts in ticks */
	cpu[CPU_CEILING] = G.ncpus * 1e6 / cpu[CPU_TOTAL];
	cpu[CPU_UTIL] = iops / cpu[CPU_CEILING];
	return true;
}

/* What one timed run yields. */
struct sample {
	double iops, lat_us;
	double rtt_ns;			/* guest's CPU to the daemon's, just
					 * before the run; NAN: not pinned */
	double sys_req, vmm_req;	/* see measure() */
	bool have_sys;
	double cpu[NR_CPU];		/* see cpu_use() */
	bool have_cpu;
	double proxy_sys_req;		/* the proxy's system calls */
	bool have_proxy_sys;
};

/* The CPU a pinned run of @c puts the relay thread on. A guest polling its
 * used ring never sleeps: a relay beside it would run only when the
 * scheduler preempts it. */
static int relay_cpu(const struct cfg *c)
{
	return G.cpu_own_relay >= 0 ? G.cpu_own_relay :
	       c->spin ? G.cpu_daemon : G.cpu_guest;
}

/*
 * One repeat of @c in modes[@m]: a fresh session, a warm-up, the timed
 * run, into @x. Syscalls: sys_req counts the whole process; vmm_req leaves
 * out the guest driver's own (its poll(), read() and kick write() calls,
 * which a real guest would make inside the VM), so it is the adapter's
 * share. Inline, the guest's notify is a call, not a write, and the
 * eventfd read and backend kicks are the adapter's: only the poll() is
 * left out. The proxy's are counted apart. CPU time (see cpu_use()) is
 * sampled right outside the syscall counts, so that neither counts the
 * other's reads.
 */
static int measure(const struct cfg *c, unsigned int m, unsigned int rep,
		   struct sample *x)
{
	struct bench_cpu c0, c1;
	struct sess s;
	struct run r;
	uint64_t elapsed, k0, k1;
	int64_t s0, s1, p0, p1;
	bool hc;
	int rc, err;

	memset(x, 0, sizeof(*x));
	x->rtt_ns = G.pin ? bench_xcpu_rtt_ns(G.cpu_daemon) : NAN;

	G.cpu_relay = relay_cpu(c);
	rc = sess_open(&s, m);
	if (rc)
		goto out;
	rc = run_init(&r, c, &s, 0x9e3779b97f4a7c15ull * (rep + 1));
	if (rc)
		goto out;
	rc = drive(&r, G.warm_ns, UINT64_MAX, &elapsed);
	if (rc)
		goto out;
	k0 = guest_kicks(&s);
	hc = !bench_cpu_sample2(&c0, G.qsd.pid, G.proxy_pid);
	p0 = bench_sys_read(G.proxy_sys_fd);
	s0 = bench_sys_read(G.sys_fd);
	rc = drive(&r, G.run_ns, UINT64_MAX, &elapsed);
	s1 = bench_sys_read(G.sys_fd);
	p1 = bench_sys_read(G.proxy_sys_fd);
	hc = hc && !bench_cpu_sample2(&c1, G.qsd.pid, G.proxy_pid);
	k1 = guest_kicks(&s);
	if (s.inline_loop)
		k1 = k0;
	if (rc)
		goto out;
	if (r.bad) {
		fprintf(stderr, "bench_e2e: %s %s: %" PRIu64 " requests failed "
			"(first: status %u, used length %u)\n", c->name,
			modes[m].name, r.bad,
			r.bad_status, r.bad_len);
		rc = -EIO;
		goto out;
	}
	if (r.bad_data) {
		fprintf(stderr, "bench_e2e: %s %s: %" PRIu64 " reads returned "
			"data other than zeros\n", c->name, modes[m].name,
			r.bad_data);
		rc = -EIO;
		goto out;
	}
	x->iops = elapsed ? (double)r.done * 1e9 / (double)elapsed : 0;
	x->lat_us = r.done ? (double)r.lat_ns / (double)r.done / 1000 : 0;
	x->have_sys = s0 >= 0 && s1 >= s0 && r.done;
	x->sys_req = x->have_sys ? (double)(s1 - s0) / (double)r.done : 0;
	x->vmm_req = x->have_sys ? ((double)(s1 - s0) - (double)r.guest_sys -
				    (double)(k1 - k0)) / (double)r.done : 0;
	x->have_proxy_sys = p0 >= 0 && p1 >= p0 && r.done;
	x->proxy_sys_req = x->have_proxy_sys ?
			   (double)(p1 - p0) / (double)r.done : 0;
	x->have_cpu = hc && cpu_use(&c0, &c1, r.done, x->iops, c->name,
				    modes[m].name, x->cpu);
	if (G.verbose)
		fprintf(stderr, "bench_e2e: %s %s, repeat %u: %.0f IOPS, %.1f us, "
			"CPU %.2f us/req, round trip %.0f ns\n", c->name,
			modes[m].name, rep, x->iops, x->lat_us,
			x->have_cpu ? x->cpu[CPU_TOTAL] : NAN, x->rtt_ns);
out:
	err = sess_close(&s);
	return rc ? rc : err;
}

/*
 * Outside any timed path: a few reads and writes in each mode must complete
 * with status OK and the device's used length, and (in sess_close()) the
 * isolated queues' counters, or the proxy's, must show every request
 * relayed and completed and no error. Every mode of a run without --proxy
 * (whichever --modes runs); the two paths of a run with it.
 */
static int sanity(void)
{
	static const struct cfg chk[] = {
		{ "check-write", "write", 4096, 4, true, true, false, true },
		{ "check-read", "read", 4096, 4, false, true, false, true },
		/* Polling: inline, svqiso_vu_queue_poll() with busy polling. */
		{ "check-read-spin", "read", 4096, 4, false, true, true, true },
	};
	unsigned int m, i;
	int rc = 0, err;

	for (m = 0; m < NR_MODES && !rc; m++) {
		struct sess s;

		if (G.proxy_bin ? !G.mode_on[m] : modes[m].proxy)
			continue;
		rc = sess_open(&s, m);
		for (i = 0; i < sizeof(chk) / sizeof(chk[0]) && !rc; i++) {
			struct run r;
			uint64_t elapsed;

			rc = run_init(&r, &chk[i], &s, 1);
			if (!rc)
				rc = drive(&r, UINT64_MAX / 4, 64, &elapsed);
			if (!rc && (r.bad || r.bad_data || r.done != 64)) {
				fprintf(stderr, "bench_e2e: %s check, %s: %" PRIu64
					" of 64 completed, %" PRIu64 " bad (status "
					"%u, used length %u), %" PRIu64 " reads not "
					"zeros\n", modes[m].name, chk[i].name, r.done,
					r.bad, r.bad_status, r.bad_len, r.bad_data);
				rc = -EIO;
			}
		}
		err = sess_close(&s);
		rc = rc ? rc : err;
	}
	return rc;
}

/* ---- Output ---- */

static double ratio_of(const struct figure *f, unsigned int m)
{
	return f[M_DIRECT].iops > 0 ? f[m].iops / f[M_DIRECT].iops : 0;
}

static const char *cpu_source(void)
{
	return G.cpu_ticks ? "ticks" : "sched_runtime";
}

/* The CPU members of a JSON line, after a comma; nulls if not measured. */
static void json_cpu(char *buf, size_t len, const struct figure *f)
{
	const double *v = f->cpu;

	if (!f->have_cpu) {
		snprintf(buf, len, "\"cpu_source\":null,\"cpus\":%d,"
			 "\"cpu_us_guest\":null,\"cpu_us_relay\":null,"
			 "\"cpu_us_daemon\":null,\"cpu_us_total\":null,"
			 "\"idle\":null,\"busy_other\":null,"
			 "\"cpu_ceiling_iops\":null,"
			 "\"iops_per_ceiling\":null", G.ncpus);
		return;
	}
	snprintf(buf, len, "\"cpu_source\":\"%s\",\"cpus\":%d,"
		 "\"cpu_us_guest\":%.3f,\"cpu_us_relay\":%.3f,"
		 "\"cpu_us_daemon\":%.3f,\"cpu_us_total\":%.3f,\"idle\":%.4f,"
		 "\"busy_other\":%.4f,\"cpu_ceiling_iops\":%.0f,"
		 "\"iops_per_ceiling\":%.4f", cpu_source(), G.ncpus,
		 v[CPU_GUEST], v[CPU_RELAY], v[CPU_DAEMON], v[CPU_TOTAL],
		 v[CPU_IDLE], v[CPU_OTHER], v[CPU_CEILING], v[CPU_UTIL]);
}

/*
 * The members a run with --proxy adds to a mode's JSON line, after a
 * comma: where the proxy ran, its CPU time and system calls per request,
 * and the spread of CPU time per request.
 */
static void json_proxy(char *buf, size_t len, const struct figure *f)
{
	char sys[32] = "null";

	if (f->have_proxy_sys)
		snprintf(sys, sizeof(sys), "%.4f", f->proxy_sys_req);
	if (!f->have_cpu) {
		snprintf(buf, len, ",\"proxy_cpu\":%d,\"cpu_us_proxy\":null,"
			 "\"proxy_syscalls_per_req\":%s", G.pin ? G.cpu_proxy : -1,
			 sys);
		return;
	}
	snprintf(buf, len, ",\"proxy_cpu\":%d,\"cpu_us_proxy\":%.3f,"
		 "\"cpu_us_proxy_min\":%.3f,\"cpu_us_proxy_max\":%.3f,"
		 "\"cpu_us_total_min\":%.3f,\"cpu_us_total_max\":%.3f,"
		 "\"proxy_syscalls_per_req\":%s", G.pin ? G.cpu_proxy : -1,
		 f->cpu[CPU_PROXY], f->cpu_min[CPU_PROXY], f->cpu_max[CPU_PROXY],
		 f->cpu_min[CPU_TOTAL], f->cpu_max[CPU_TOTAL], sys);
}

static void report(const struct cfg *c, const struct figure *f)
{
	unsigned int m;

	for (m = 0; m < NR_MODES; m++) {
		char sys[32] = "null", vmm[32] = "null", cpu[512], px[512] = "";

		if (!G.mode_on[m])
			continue;
		if (f[m].have_sys) {
			snprintf(sys, sizeof(sys), "%.4f", f[m].sys_req);
			snprintf(vmm, sizeof(vmm), "%.4f", f[m].vmm_req);
		}
		json_cpu(cpu, sizeof(cpu), &f[m]);
		if (G.proxy_bin)
			json_proxy(px, sizeof(px), &f[m]);
		bench_json(&G.b, "\"config\":\"%s\",\"mode\":\"%s\",\"rw\":\"%s\","
			   "\"bs\":%u,\"qd\":%u,\"queues\":%u,\"wait\":\"%s\","
			   "\"loop\":\"%s\",\"copy\":\"%s\",\"secs\":%.3f,"
			   "\"repeats\":%u,\"iops\":%.0f,\"iops_min\":%.0f,"
			   "\"iops_max\":%.0f,\"gbps\":%.4f,"
			   "\"lat_us\":%.2f,\"syscalls_per_req\":%s,"
			   "\"vmm_syscalls_per_req\":%s,\"lazy_kicks\":%s,"
			   "\"touch\":%s,\"pin\":%s,\"batch_bytes\":%" PRIu64
			   ",\"spin_ns\":%" PRIu64 ",\"pool_size\":%" PRIu64
			   ",\"rtt_ns\":%.0f,\"backend\":\"%s\",%s%s",
			   c->name, modes[m].name, c->rw, c->bs, c->qd, G.nq,
			   c->spin ? "spin" : "eventfd",
			   modes[m].inline_loop ? "external" : G.loop_name,
			   svqiso_copy_name(G.copy), (double)G.run_ns / 1e9,
			   G.repeats, f[m].iops, f[m].iops_min, f[m].iops_max,
			   f[m].gbps, f[m].lat_us, sys, vmm,
			   G.lazy ? "true" : "false", G.touch ? "true" : "false",
			   G.pin ? "true" : "false", G.batch_bytes, G.spin_ns,
			   G.pool_size, isnan(f[m].rtt_ns) ? -1 : f[m].rtt_ns,
			   G.file ? "file" : "null-co", cpu, px);
	}
	for (m = 1; m < NR_MODES; m++) {
		if (!G.mode_on[m] || !G.mode_on[M_DIRECT])
			continue;
		if (G.proxy_bin) {
			bench_json(&G.b, "\"config\":\"%s\",\"mode\":"
				   "\"%s/direct\",\"ratio\":%.4f,"
				   "\"paired_ratio\":%.4f,"
				   "\"paired_ratio_min\":%.4f,"
				   "\"paired_ratio_max\":%.4f", c->name,
				   modes[m].name, ratio_of(f, m), f[m].pair,
				   f[m].pair_min, f[m].pair_max);
			continue;
		}
		bench_json(&G.b, "\"config\":\"%s\",\"mode\":\"%s/direct\","
			   "\"ratio\":%.4f", c->name, modes[m].name,
			   ratio_of(f, m));
	}
	printf("%-22s", c->name);
	for (m = 0; m < NR_MODES; m++) {
		if (!G.mode_on[m])
			continue;
		printf(" | %s %.0f IOPS %.3f GB/s %.1f us", modes[m].name,
		       f[m].iops, f[m].gbps, f[m].lat_us);
		if (m != M_DIRECT && G.mode_on[M_DIRECT])
			printf(" (%.3f)", G.proxy_bin ? f[m].pair : ratio_of(f, m));
		if (f[m].have_cpu)
			printf(" CPU %.1f us/req", f[m].cpu[CPU_TOTAL]);
		if (!isnan(f[m].rtt_ns))
			printf(" rtt %.0f ns", f[m].rtt_ns);
		if (f[m].have_cpu && G.proxy_bin)
			printf(" (proxy %.2f)", f[m].cpu[CPU_PROXY]);
	}
	printf("\n");
	fflush(stdout);
}

static void fmt_sys(char *buf, size_t len, const struct figure *f)
{
	if (f->have_sys)
		snprintf(buf, len, "%.3f (%.3f)", f->sys_req, f->vmm_req);
	else
		snprintf(buf, len, "n/a");
}

static void target(const char *what, double v, double limit, bool above,
		   bool have)
{
	if (!have) {
		bench_md(&G.b, "- SKIP: %s (not measured)\n", what);
		return;
	}
	bench_md(&G.b, "- %s: %s%s%s%s%s: %.3f (target %s %.2f)\n",
		 (above ? v >= limit : v <= limit) ? "PASS" : "MISS", what,
		 G.lazy ? " (lazy kicks)" : "",
		 G.touch ? "" : " (guest not touching data)",
		 G.no_spin ? " (relay not spinning)" : "",
		 G.pool_size ? " (pool size set)" : "", v,
		 above ? ">=" : "<=", limit);
}

/*
 * Under a missed ratio target (@ratio of @x to @d against @limit), whether
 * the CPUs could have met it: the
 * IOPS that @x's CPU time per request allows on the CPUs of this run, were
 * every one of them kept busy, over @d's measured IOPS. Below @limit, the
 * target needs a cheaper request or more CPUs, not a better schedule.
 */
static void bound(const struct figure *x, const struct figure *d,
		  double ratio, double limit)
{
	double best;

	if (!x->have_cpu || !G.mode_on[M_DIRECT] || d->iops <= 0 ||
	    ratio >= limit)
		return;
	best = x->cpu[CPU_CEILING] / d->iops;
	bench_md(&G.b, "  - at %.2f us of CPU per request, %d CPU%s allow at "
		 "most %.0f IOPS, %.3f of direct: %s\n", x->cpu[CPU_TOTAL],
		 G.ncpus, G.ncpus > 1 ? "s" : "", x->cpu[CPU_CEILING], best,
		 best < limit ? "short of the target even with every CPU "
		 "busy; it needs less CPU per request or more CPUs" :
		 "enough for the target; the CPUs were not kept busy");
}

/* The CPU that carried the most of @v's time per request as the threads
 * were placed (@relay: the mode has a relay thread), into @cpu and @who:
 * its microseconds per request. */
static double busiest_cpu(const struct cfg *c, const double *v, bool relay,
			  int *cpu, const char **who)
{
	int r = relay_cpu(c);
	bool by_guest = relay && r == G.cpu_guest;
	bool by_daemon = relay && r == G.cpu_daemon;
	double guest = v[CPU_GUEST] + (by_guest ? v[CPU_RELAY] : 0);
	double daemon = v[CPU_DAEMON] + (by_daemon ? v[CPU_RELAY] : 0);
	double busiest = guest;

	*cpu = G.cpu_guest;
	*who = by_guest ? "the guest driver and the relay thread" :
	       "the guest driver";
	if (daemon > busiest) {
		busiest = daemon;
		*cpu = G.cpu_daemon;
		*who = by_daemon ? "qemu-storage-daemon and the relay thread" :
		       "qemu-storage-daemon";
	}
	if (relay && !by_guest && !by_daemon && v[CPU_RELAY] > busiest) {
		busiest = v[CPU_RELAY];
		*cpu = r;
		*who = "the relay thread";
	}
	return busiest;
}

/*
 * Under a missed IOPS/ceiling target of a pinned run: the CPU that carried
 * the most time per request as the threads were placed, the IOPS that
 * allows, and the share of it the run reached. Near 1, that CPU was kept
 * busy and the ceiling's other CPUs waited on it: what is left is
 * placement. Well under 1, requests waited on each other. The IOPS that
 * CPU allows are also given as a share of the ceiling: the most this run
 * could reach as placed, against the same for direct (@d), whose busiest
 * CPU bounds it too. @relay: the mode has a relay thread (inline runs the
 * adapter on the guest's, and its other threads do next to nothing).
 */
static void placed(const struct cfg *c, const struct figure *x,
		   const struct figure *d, bool relay, double limit)
{
	const double *v = x->cpu;
	double busiest, reached, share, direct = NAN;
	const char *who;
	int cpu;

	if (!G.pin || !x->have_cpu || v[CPU_UTIL] >= limit || x->iops <= 0)
		return;
	busiest = busiest_cpu(c, v, relay, &cpu, &who);
	if (busiest <= 0)
		return;
	reached = x->iops * busiest / 1e6;
	/* The ceiling is ncpus x 10^6 / total, that CPU's bound 10^6 / busiest. */
	share = v[CPU_TOTAL] / (G.ncpus * busiest);
	if (d->have_cpu) {
		const char *d_who;
		int d_cpu;
		double most = busiest_cpu(c, d->cpu, false, &d_cpu, &d_who);

		if (most > 0)
			direct = d->cpu[CPU_TOTAL] / (G.ncpus * most);
	}
	bench_md(&G.b, "  - as placed, CPU %d (%s) carried %.2f us per "
		 "request, which allows at most %.0f IOPS, %.3f of the ceiling "
		 "(direct's busiest CPU: %.3f of its own)%s; the run reached "
		 "%.3f of that: %s\n", cpu, who, busiest, 1e6 / busiest, share,
		 direct, share < limit ? ", short of the target even with that "
		 "CPU always busy" : "", reached, reached >= limit ? "that CPU "
		 "was kept busy and the others waited on it, so the rest is "
		 "placement: only spreading its work over the other CPUs "
		 "closes it" : "requests waited on each other");
}

/* Where the time goes: CPU per request of each party, and what it allows. */
static void write_md_cpu(const bool *ran, struct figure (*f)[NR_MODES])
{
	unsigned int i, m;

	bench_md(&G.b, "\nCPU per request, in us of CPU time over each timed "
		 "run (the kernel's scheduler run time%s): *guest* is the guest "
		 "driver thread (in *isolated-inline* it also runs the adapter), "
		 "*relay* every other thread of this process (the adapter's relay "
		 "thread), *daemon* every thread of qemu-storage-daemon, and "
		 "*total* their sum; *idle* is the share of all %d online CPUs "
		 "idle (idle and iowait in /proc/stat) during the run and *other* "
		 "the share busy with anything but those three (other processes, "
		 "interrupts, kernel threads: well above 0, the machine was not "
		 "the benchmark's alone); *ceiling* "
		 "is the IOPS the %d CPU%s this run may use would give if CPU "
		 "time were all that limited it (%d x 10^6 / total), and "
		 "IOPS/ceiling the share of those CPUs the three used (near 1: "
		 "CPU-bound). CPU round trip: one cache line's round trip "
		 "between the guest's CPU and the daemon's, timed just before "
		 "each run (median): the host of this virtual machine moves its "
		 "CPUs between placements (hyperthreads of one core, or cores "
		 "that share no cache) whose round trips differ several times, "
		 "and every figure that moves data between the two CPUs moves "
		 "with it: the spread of a configuration's IOPS over its "
		 "repeats comes from there.\n\n", G.cpu_ticks ? "; some of it from tick-based "
		 "accounting, as the CPU-time clocks could not be read" : "",
		 bench_ncpus(), G.ncpus, G.ncpus > 1 ? "s" : "", G.ncpus);
	bench_md(&G.b, "| config | mode | guest | relay | daemon | total | idle "
		 "| other | ceiling IOPS | IOPS/ceiling | CPU round trip ns |\n");
	bench_md(&G.b, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (i = 0; i < NR_CFGS; i++) {
		for (m = 0; ran[i] && m < NR_MODES; m++) {
			const double *v = f[i][m].cpu;

			if (!G.mode_on[m])
				continue;
			if (!f[i][m].have_cpu) {
				bench_md(&G.b, "| %s | %s | n/a | n/a | n/a | n/a "
					 "| n/a | n/a | n/a | n/a | n/a |\n",
					 cfgs[i].name, modes[m].name);
				continue;
			}
			bench_md(&G.b, "| %s | %s | %.2f | %.2f | %.2f | %.2f "
				 "| %.0f%% | %.0f%% | %.0f | %.2f | %.0f |\n",
				 cfgs[i].name, modes[m].name, v[CPU_GUEST],
				 v[CPU_RELAY], v[CPU_DAEMON], v[CPU_TOTAL],
				 v[CPU_IDLE] * 100, v[CPU_OTHER] * 100,
				 v[CPU_CEILING], v[CPU_UTIL], f[i][m].rtt_ns);
		}
	}
}

/*
 * The price of isolation in the unit it cannot go below: CPU per request
 * over direct's, in cold copies of the payload timed in the same repeat.
 */
static void write_md_tax(const bool *ran, struct figure (*f)[NR_MODES])
{
	unsigned int i, m;

	if (!G.mode_on[M_DIRECT])
		return;
	bench_md(&G.b, "\nThe isolation tax: per repeat, a mode's CPU per "
		 "request (total, all three parties) less direct's in the same "
		 "repeat, over the time of one cold copy of the payload (libc "
		 "memcpy between random slots of two %llu MiB buffers, source "
		 "and destination missing the caches) timed on the guest's CPU "
		 "just before that repeat's runs; the median over the repeats, "
		 "least and greatest in brackets. Bounce isolation has to copy "
		 "each payload once, so 1.0 is its physical price: above it, "
		 "the rest is overhead (wake-ups, ring work, copies that miss "
		 "caches a direct path hits). Latency added: the mode's mean "
		 "latency less direct's, paired the same way.\n\n",
		 COLD_SIZE >> 20);
	bench_md(&G.b, "| config | mode | cold copy us | direct CPU us/req "
		 "| CPU us/req | tax (cold copies) | latency added us |\n");
	bench_md(&G.b, "|---|---|--:|--:|--:|--:|--:|\n");
	for (i = 0; i < NR_CFGS; i++) {
		for (m = 1; ran[i] && m < NR_MODES; m++) {
			const struct figure *x = &f[i][m];
			char tax[64] = "n/a";

			if (!G.mode_on[m] || modes[m].proxy)
				continue;
			if (x->have_tax)
				snprintf(tax, sizeof(tax), "%.2f [%.2f, %.2f]",
					 x->tax, x->tax_min, x->tax_max);
			bench_md(&G.b, "| %s | %s | %.2f | %.2f | %.2f | %s | "
				 "%.1f [%.1f, %.1f] |\n", cfgs[i].name,
				 modes[m].name, x->copy_us,
				 f[i][M_DIRECT].cpu[CPU_TOTAL], x->cpu[CPU_TOTAL],
				 tax, x->lat_add, x->lat_add_min, x->lat_add_max);
		}
	}
}

/*
 * What a core per thread would give: a pipeline of threads each on a core
 * of its own runs at the pace of its busiest one, at most, so the bound on
 * IOPS is 10^6 over the largest CPU per request of any one thread (the
 * daemon's threads counted as one). Against direct's bound worked out the
 * same way, it says what ratio a machine with the relay on a core of its
 * own can reach, and --cpus with three CPUs measures it.
 */
static void write_md_cores(const bool *ran, struct figure (*f)[NR_MODES])
{
	unsigned int i, m;

	if (!G.mode_on[M_DIRECT])
		return;
	bench_md(&G.b, "\nWith a core per thread: a pipeline runs at the pace "
		 "of its busiest thread at most, so 10^6 / (the largest CPU us "
		 "per request of the guest thread, the relay thread and the "
		 "daemon, whose threads count as one) bounds its IOPS when each "
		 "has a core of its own: on this %d-CPU run the relay %s. The "
		 "ratio is that bound over direct's, worked out the same way "
		 "(guest and daemon); inline has no relay thread, so more cores "
		 "do not change it. Run with --cpus and a CPU more to check a "
		 "figure: the relay then gets the third CPU.\n\n", G.ncpus,
		 G.cpu_own_relay >= 0 ? "had a CPU of its own already" :
		 "shared the guest's CPU");
	bench_md(&G.b, "| config | mode | guest us | relay us | daemon us | "
		 "busiest us | IOPS bound | direct's bound | ratio of the bounds "
		 "| measured ratio |\n");
	bench_md(&G.b, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (i = 0; i < NR_CFGS; i++) {
		const double *d = f[i][M_DIRECT].cpu;
		double db = d[CPU_GUEST] > d[CPU_DAEMON] ? d[CPU_GUEST] :
			    d[CPU_DAEMON];

		for (m = 1; ran[i] && m < NR_MODES; m++) {
			const double *v = f[i][m].cpu;
			double b = v[CPU_GUEST];

			if (!G.mode_on[m] || modes[m].proxy || !f[i][m].have_cpu ||
			    !f[i][M_DIRECT].have_cpu || db <= 0)
				continue;
			if (v[CPU_RELAY] > b)
				b = v[CPU_RELAY];
			if (v[CPU_DAEMON] > b)
				b = v[CPU_DAEMON];
			bench_md(&G.b, "| %s | %s | %.2f | %.2f | %.2f | %.2f | "
				 "%.0f | %.0f | %.3f | %.3f |\n", cfgs[i].name,
				 modes[m].name, v[CPU_GUEST], v[CPU_RELAY],
				 v[CPU_DAEMON], b, 1e6 / b, 1e6 / db, db / b,
				 f[i][m].pair);
		}
	}
}

static void write_md(const bool *ran, struct figure (*f)[NR_MODES])
{
	char place[768];
	unsigned int i, m;

	if (G.pin && G.cpu_own_relay >= 0)
		snprintf(place, sizeof(place), " The guest driver thread runs "
			 "on CPU %d, every thread of qemu-storage-daemon on CPU "
			 "%d and *isolated*'s relay thread on CPU %d, each on a "
			 "CPU of its own (--cpus or the CPUs this process may "
			 "use: the first three), pinned by the adapter's "
			 "relay_start hook.", G.cpu_guest, G.cpu_daemon,
			 G.cpu_own_relay);
	else if (G.pin)
		snprintf(place, sizeof(place), " The guest driver thread runs "
			 "on CPU %d and every thread of qemu-storage-daemon on "
			 "CPU %d, in every mode, so the guest and the daemon "
			 "never share a CPU, as a VMM pinning its vCPU threads and "
			 "its backends would place them; *isolated*'s relay thread "
			 "runs on CPU %d beside the guest, pinned by the adapter's "
			 "relay_start hook. On a 2-CPU machine the relay has to "
			 "share a CPU with the guest or with the daemon; beside "
			 "the guest measured best in every configuration. In "
			 "\"-spin\" configurations the relay runs on CPU %d beside "
			 "the daemon instead: the guest never sleeps there. With "
			 "--no-pin the scheduler places them all.", G.cpu_guest,
			 G.cpu_daemon, G.cpu_guest, G.cpu_daemon);
	else
		snprintf(place, sizeof(place), " No CPU placement (%s): the "
			 "scheduler places the guest driver thread, the daemon's "
			 "threads and *isolated*'s relay thread.",
			 G.cpu_daemon < 0 ? "this process may run on one CPU "
			 "only" : "--no-pin");

	bench_md(&G.b, "## End to end: qemu-storage-daemon, %s%s%s%s%s\n\n",
		 G.file ? "raw image on tmpfs" : "null-co device",
		 G.lazy ? ", lazy kicks" : "",
		 G.touch ? "" : ", guest not touching its data",
		 G.no_spin ? ", relay not spinning" : "",
		 G.pool_size ? ", bounce arena sized to the queue" : "");
	bench_md(&G.b, "A guest virtio-blk driver model drives an unmodified "
		 "qemu-storage-daemon exporting %s through "
		 "the vhost-user adapter: *direct* is plain "
		 "vhost-user (the daemon maps guest RAM); *isolated* relays "
		 "every request through a shadow virtqueue and bounce buffers "
		 "on the adapter's relay thread; *isolated-inline* is the same "
		 "isolation with no relay thread (SVQISO_VU_F_EXTERNAL_LOOP): "
		 "the guest thread calls svqiso_vu_queue_kick() where it would "
		 "write its kick eventfd (a notify the VMM handles on the vCPU "
		 "thread), sleeps in poll() on the backend's call eventfd and "
		 "calls svqiso_vu_queue_process() before collecting. Inline is "
		 "the adapter's best case and relay its worst: in a KVM VM a "
		 "halted vCPU does not return to userspace on a backend "
		 "eventfd, so a VMM runs process() on a thread of its own (one "
		 "more wake-up than inline). "
		 "One guest thread, %u queue%s of %u entries (indirect "
		 "descriptors, event idx), waiting with poll() (\"-spin\": "
		 "polling the used ring, inline also polling the queue with "
		 "svqiso_vu_queue_poll() and busy polling on, no "
		 "sleep); %s; adapter loop %s, copy %s, batch_bytes %" PRIu64
		 " (0: off), relay spin_ns %" PRIu64 " (0: the default, %llu; "
		 "%s), pool_size %"
		 PRIu64 " bytes per queue (0: the default, %llu MiB). Each "
		 "figure is the median "
		 "of %u run%s of %.2f s, the modes interleaved. Latency is "
		 "the mean from submission to collection. Syscalls per request "
		 "count every thread of this process, the guest driver's and "
		 "the adapter's (the daemon is another process); in brackets "
		 "the adapter's share alone, without the guest's poll(), read() "
		 "and kick writes, which a real guest makes inside the VM.%s%s"
		 "\n\n", G.file ? "a 1 GiB raw image on tmpfs (driver file, "
		 "its defaults: every read and write goes through the page "
		 "cache, so the daemon itself copies every byte it serves, as "
		 "a real backend's storage stack does)" : "a 1 GiB null-co "
		 "device (no disk cost; read-zeroes=on, so a read writes every "
		 "byte it returns as a disk's DMA would, and a write is dropped "
		 "unread)",
		 G.nq, G.nq > 1 ? "s" : "", RING_NUM, G.touch ?
		 "the guest touches its data (fills each write buffer before "
		 "posting it, reads every byte of a read buffer after it "
		 "completes and, from null-co, checks it is zeros)" : "the guest touches no "
		 "data (--no-touch)", G.loop_name,
		 svqiso_copy_name(G.copy), G.batch_bytes, G.spin_ns,
		 SVQISO_VU_SPIN_DEFAULT_NS, G.no_spin ? "SVQISO_VU_F_NO_SPIN: "
		 "the relay sleeps at once" : "an adaptive window, so much at "
		 "most",
		 G.pool_size, SVQISO_ARENA_DEFAULT_SIZE >> 20, G.repeats,
		 G.repeats > 1 ? "s" : "",
		 (double)G.run_ns / 1e9, place, G.lazy ? " Isolated with lazy "
		 "kicks (SVQISO_VU_F_LAZY_KICKS): while the daemon holds "
		 "requests the guest is asked for no kicks, and the adapter "
		 "takes what it posts when the next completion comes." : "");
	bench_md(&G.b, "| config | direct IOPS | isolated IOPS | isolated/direct "
		 "| inline IOPS | inline/direct | direct lat us | isolated lat us "
		 "| inline lat us | direct sys/req | isolated sys/req "
		 "| inline sys/req |\n");
	bench_md(&G.b, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (i = 0; i < NR_CFGS; i++) {
		char sys[NR_MODES][48], iops[NR_MODES][24], ratio[NR_MODES][16];
		char lat[NR_MODES][24];

		if (!ran[i])
			continue;
		/* A mode that did not run (--modes) shows a dash, not 0. */
		for (m = 0; m < NR_MODES; m++) {
			bool on = G.mode_on[m];

			fmt_sys(sys[m], sizeof(sys[m]), &f[i][m]);
			snprintf(iops[m], sizeof(iops[m]), on ? "%.0f" : "-",
				 f[i][m].iops);
			snprintf(lat[m], sizeof(lat[m]), on ? "%.1f" : "-",
				 f[i][m].lat_us);
			snprintf(ratio[m], sizeof(ratio[m]),
				 on && G.mode_on[M_DIRECT] ? "%.3f" : "-",
				 ratio_of(f[i], m));
			if (!on)
				snprintf(sys[m], sizeof(sys[m]), "-");
		}
		bench_md(&G.b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | "
			 "%s | %s | %s |\n", cfgs[i].name, iops[0], iops[1],
			 ratio[1], iops[2], ratio[2], lat[0], lat[1], lat[2],
			 sys[0], sys[1], sys[2]);
	}
	write_md_cpu(ran, f);
	write_md_tax(ran, f);
	write_md_cores(ran, f);
	bench_md(&G.b, "\nTargets (isolated: relay thread; isolated-inline: "
		 "external loop, the adapter's best case; ratios and the tax "
		 "paired per repeat, then the median):\n\n");
	for (i = 0; i < NR_CFGS; i++) {
		const struct cfg *c = &cfgs[i];
		const char *tag = G.file ? "e2e file" : "e2e";
		char what[192];

		if (!ran[i] || c->spin)
			continue;
		for (m = 1; m < NR_MODES; m++) {
			const struct figure *x = &f[i][m];
			bool relay = !modes[m].inline_loop;

			/* The proxy has a section of its own; a mode left
			 * out by --modes is not measured on purpose. */
			if (modes[m].proxy || !G.mode_on[m])
				continue;
			if (c->bs == 131072 && c->qd == 32) {
				snprintf(what, sizeof(what), "%s %s %s isolation "
					 "tax, in cold copies of the payload", tag,
					 c->name, modes[m].label);
				target(what, x->tax, 1.0, false, x->have_tax);
			}
			if (c->qd == 32) {
				snprintf(what, sizeof(what), "%s %s %s IOPS over "
					 "the ceiling of its CPU per request", tag,
					 c->name, modes[m].label);
				target(what, x->cpu[CPU_UTIL], 0.9, true,
				       x->have_cpu);
				placed(c, x, &f[i][M_DIRECT], relay, 0.9);
			}
			if (c->bs == 4096 && c->qd == 32) {
				snprintf(what, sizeof(what), "%s %s %s/direct IOPS",
					 tag, c->name, modes[m].label);
				target(what, x->pair, relay ? 0.85 : 0.95, true,
				       G.mode_on[M_DIRECT]);
				bound(x, &f[i][M_DIRECT], x->pair,
				      relay ? 0.85 : 0.95);
			}
			if (c->qd == 1 && relay) {
				snprintf(what, sizeof(what), "%s %s %s latency "
					 "added, us", tag, c->name, modes[m].label);
				target(what, x->lat_add, 5.0, false,
				       G.mode_on[M_DIRECT]);
			}
			if (c->qd == 32) {
				snprintf(what, sizeof(what), "%s %s %s adapter "
					 "syscalls per request", tag, c->name,
					 modes[m].label);
				target(what, x->vmm_req, 0.2, false, x->have_sys);
			}
		}
	}
	if (G.mode_on[1] && G.mode_on[2] && G.mode_on[M_DIRECT])
		bench_md(&G.b, "- PASS: %s CPU per request of each thread and "
			 "the IOPS each configuration would reach with a core "
			 "per thread are in the table above (bench_e2e --cpus "
			 "checks it on a bigger machine)\n",
			 G.file ? "e2e file" : "e2e");
	bench_md(&G.b, "\n");
}

/* "median [least-greatest]" of a figure's IOPS. */
static void fmt_iops(char *buf, size_t len, const struct figure *f)
{
	snprintf(buf, len, "%.0f [%.0f-%.0f]", f->iops, f->iops_min,
		 f->iops_max);
}

/* The section of a run with --proxy: the two paths, their CPU time. */
static void write_md_proxy(const bool *ran, struct figure (*f)[NR_MODES])
{
	char place[512], pool[64];
	unsigned int i;

	if (G.pin)
		snprintf(place, sizeof(place), " The guest driver thread runs "
			 "on CPU %d and every thread of qemu-storage-daemon on "
			 "CPU %d on both paths; svqiso-proxy runs on CPU %d, "
			 "beside the %s (two CPUs: it has to share one; beside "
			 "the guest is where *isolated*'s relay thread runs in "
			 "the e2e section, --proxy-cpu daemon puts it beside the "
			 "daemon).", G.cpu_guest, G.cpu_daemon, G.cpu_proxy,
			 G.proxy_by_daemon ? "daemon" : "guest");
	else
		snprintf(place, sizeof(place), " No CPU placement (%s): the "
			 "scheduler places the guest driver thread, the daemon "
			 "and the proxy.", G.cpu_daemon < 0 ? "this process may "
			 "run on one CPU only" : "--no-pin");
	if (G.pool_size)
		snprintf(pool, sizeof(pool), "%" PRIu64 " bytes", G.pool_size);
	else
		snprintf(pool, sizeof(pool), "the default %llu MiB",
			 SVQISO_ARENA_DEFAULT_SIZE >> 20);

	bench_md(&G.b, "## End to end through svqiso-proxy: qemu-storage-daemon, "
		 "null-co device%s\n\n", G.touch ? "" :
		 ", guest not touching its data");
	bench_md(&G.b, "%s\n\n", G.b.machine_md);
	bench_md(&G.b, "The guest virtio-blk driver model of the e2e section "
		 "drives an unmodified qemu-storage-daemon exporting a 1 GiB "
		 "null-co device (read-zeroes=on: a read writes every byte it "
		 "returns, a write is dropped unread) along two paths, both "
		 "starting at the same in-process VMM side: the vhost-user "
		 "adapter in direct mode (SVQISO_VU_DIRECT, plain vhost-user "
		 "that shares guest RAM with whatever it connects to). "
		 "*direct* connects it to the daemon's socket: the daemon maps "
		 "guest RAM and serves the guest's ring itself, with no "
		 "isolation. *proxy* connects it to svqiso-proxy's socket "
		 "instead: the proxy, a process of its own, maps guest RAM as "
		 "any backend would and is in turn the vhost-user frontend of "
		 "the daemon, which only ever gets the proxy's isolated memory "
		 "(shadow rings and bounce arena). This is the path an "
		 "unmodified VMM takes to memory isolation.\n\n");
	bench_md(&G.b, "Per request through the proxy: the guest's kick "
		 "eventfd wakes the proxy, which validates the chain, copies "
		 "what the driver wrote (the header; for a write its data) "
		 "from guest RAM into its bounce arena, posts shadow "
		 "descriptors and kicks the daemon; the daemon's call eventfd "
		 "wakes the proxy again, which copies what the device wrote "
		 "(the status byte; for a read its data) back into guest RAM, "
		 "pushes the used entry and signals the guest's call eventfd. "
		 "So the data is copied once each way, and a batch takes four "
		 "wake-ups against direct's two, unless the proxy is spinning: "
		 "after a wake-up with requests in flight it polls both rings, "
		 "with the guest's kicks and the daemon's calls off, until "
		 "--spin-us (50 us by default, adapting below that) pass with "
		 "nothing to do. The proxy runs one thread: "
		 "the VMM's messages, guest kicks, the daemon's calls and "
		 "every copy share one core, so 10^6 / (the proxy's CPU per "
		 "request) is about the most IOPS one proxy can carry for one "
		 "device, however many cores the host has (*proxy core* "
		 "below; a busier proxy batches more and spends a little less "
		 "per request).\n\n");
	bench_md(&G.b, "One guest thread, %u queue%s of %u entries (indirect "
		 "descriptors, event idx), waiting with poll(); %s. The proxy "
		 "copies with %s and has a bounce arena of %s per queue. "
		 "%u paired repeats: each runs both paths back to back, %.2f s "
		 "each after a warm-up, on fresh sessions, the order "
		 "alternating. *proxy/direct* is the median over the repeats "
		 "of the proxy's IOPS over direct's in the same repeat, with "
		 "the least and greatest of those ratios in brackets; IOPS are "
		 "the median [least-greatest] over the repeats, latency the "
		 "median of each run's mean from submission to collection. "
		 "After every run the proxy's counters (SIGUSR1) must show "
		 "each request the guest saw complete relayed and completed, "
		 "none in flight and no error. *proxy syscalls/req* counts "
		 "every system call of the proxy's.%s\n\n",
		 G.nq, G.nq > 1 ? "s" : "", RING_NUM, G.touch ?
		 "the guest touches its data (fills each write buffer before "
		 "posting it, reads every byte of a read buffer after it "
		 "completes and checks it is zeros)" : "the guest touches no "
		 "data (--no-touch)", svqiso_copy_name(G.copy), pool,
		 G.repeats, (double)G.run_ns / 1e9, place);
	bench_md(&G.b, "| config | direct IOPS | proxy IOPS | proxy/direct "
		 "| direct lat us | proxy lat us | proxy syscalls/req |\n");
	bench_md(&G.b, "|---|--:|--:|--:|--:|--:|--:|\n");
	for (i = 0; i < NR_CFGS; i++) {
		const struct figure *d = &f[i][M_DIRECT], *p = &f[i][M_PROXY];
		char di[48], pi[48], sys[24] = "n/a";

		if (!ran[i])
			continue;
		fmt_iops(di, sizeof(di), d);
		fmt_iops(pi, sizeof(pi), p);
		if (p->have_proxy_sys)
			snprintf(sys, sizeof(sys), "%.3f", p->proxy_sys_req);
		bench_md(&G.b, "| %s | %s | %s | %.3f [%.3f-%.3f] | %.1f | %.1f "
			 "| %s |\n", cfgs[i].name, di, pi, p->pair, p->pair_min,
			 p->pair_max, d->lat_us, p->lat_us, sys);
	}
	bench_md(&G.b, "\nCPU per request, in us of CPU time over each timed "
		 "run (the kernel's scheduler run time%s, read just before and "
		 "just after the run): *guest* is the guest driver thread; "
		 "*VMM* every other thread of the benchmark process (the "
		 "adapter in direct mode runs none of its own: about 0); "
		 "*proxy* every thread of svqiso-proxy (idle on the direct "
		 "path: about 0 there); *daemon* every thread of "
		 "qemu-storage-daemon; *total* the sum of the four, median "
		 "[least-greatest] over the repeats. *idle* is the share of "
		 "all %d online CPUs idle during the run and *other* the share "
		 "busy with none of these processes (other processes, "
		 "interrupts, kernel threads: above 0 when the machine was not "
		 "the benchmark's alone). *ceiling* is the IOPS the %d CPU%s "
		 "this run may use would allow at that total were CPU time "
		 "all that limited it (%d x 10^6 / total); *proxy core* the "
		 "IOPS one core doing nothing but the proxy's work would allow "
		 "(10^6 / proxy).\n\n", G.cpu_ticks ? "; some of it from "
		 "tick-based accounting, as the CPU-time clocks could not be "
		 "read" : "", bench_ncpus(), G.ncpus, G.ncpus > 1 ? "s" : "",
		 G.ncpus);
	bench_md(&G.b, "| config | path | guest | VMM | proxy | daemon "
		 "| total | idle | other | ceiling IOPS | proxy core IOPS |\n");
	bench_md(&G.b, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
	for (i = 0; i < NR_CFGS; i++) {
		unsigned int k;

		for (k = 0; ran[i] && k < 2; k++) {
			unsigned int m = k ? M_PROXY : M_DIRECT;
			const double *v = f[i][m].cpu;
			char core[24] = "-";

			if (!f[i][m].have_cpu) {
				bench_md(&G.b, "| %s | %s | n/a | n/a | n/a | n/a "
					 "| n/a | n/a | n/a | n/a | n/a |\n",
					 cfgs[i].name, modes[m].name);
				continue;
			}
			if (m == M_PROXY && v[CPU_PROXY] > 0)
				snprintf(core, sizeof(core), "%.0f",
					 1e6 / v[CPU_PROXY]);
			bench_md(&G.b, "| %s | %s | %.2f | %.2f | %.2f | %.2f "
				 "| %.2f [%.2f-%.2f] | %.0f%% | %.0f%% | %.0f "
				 "| %s |\n", cfgs[i].name, modes[m].name,
				 v[CPU_GUEST], v[CPU_RELAY], v[CPU_PROXY],
				 v[CPU_DAEMON], v[CPU_TOTAL],
				 f[i][m].cpu_min[CPU_TOTAL],
				 f[i][m].cpu_max[CPU_TOTAL], v[CPU_IDLE] * 100,
				 v[CPU_OTHER] * 100, v[CPU_CEILING], core);
		}
	}
	bench_md(&G.b, "\nWhat the proxy costs per request (the proxy path's "
		 "total less direct's; its own share; and direct's total over "
		 "the proxy's, the ratio to expect when the CPUs, not the "
		 "proxy's one thread, are what runs out):\n\n");
	for (i = 0; i < NR_CFGS; i++) {
		const struct figure *d = &f[i][M_DIRECT], *p = &f[i][M_PROXY];

		if (!ran[i] || !d->have_cpu || !p->have_cpu ||
		    p->cpu[CPU_TOTAL] <= 0)
			continue;
		bench_md(&G.b, "- %s: %+.2f us of CPU per request, %.2f us of "
			 "it in the proxy (%.2f us to %.2f us over the repeats); "
			 "at equal CPU time proxy/direct would be %.3f\n",
			 cfgs[i].name, p->cpu[CPU_TOTAL] - d->cpu[CPU_TOTAL],
			 p->cpu[CPU_PROXY], p->cpu_min[CPU_PROXY],
			 p->cpu_max[CPU_PROXY],
			 d->cpu[CPU_TOTAL] / p->cpu[CPU_TOTAL]);
	}
	bench_md(&G.b, "\nTargets (the in-process adapter's, for the proxy):\n\n");
	for (i = 0; i < NR_CFGS; i++) {
		const struct cfg *c = &cfgs[i];
		const struct figure *p = &f[i][M_PROXY];
		double limit = c->seq ? 0.85 : 0.9;
		char what[192];

		if (ran[i] && !c->spin && c->qd == 1) {
			snprintf(what, sizeof(what), "e2e %s %s latency added, "
				 "us (paired)", c->name, modes[M_PROXY].label);
			target(what, p->lat_add, 5.0, false, true);
		}
		if (!ran[i] || c->spin ||
		    !((c->bs == 4096 && c->qd == 32 && !c->write) || c->seq))
			continue;
		snprintf(what, sizeof(what), "e2e %s %s/direct IOPS (paired)",
			 c->name, modes[M_PROXY].label);
		target(what, p->pair, limit, true, true);
		bound(p, &f[i][M_DIRECT], p->pair, limit);
	}
	bench_md(&G.b, "\n");
}

/*
 * The columns of the tables for plots: the three modes of a run without
 * --proxy (one that did not run shows 0), the two paths of one with it.
 */
static bool plotted(unsigned int m)
{
	return G.proxy_bin ? G.mode_on[m] : !modes[m].proxy;
}

/* With --proxy the ratio plotted is the paired one, as in its table. */
static int write_dat(const bool *ran, struct figure (*f)[NR_MODES])
{
	FILE *iops = bench_dat(&G.b, "iops"), *ratio = bench_dat(&G.b, "ratio");
	unsigned int i, m;
	int rc = 0;

	if (!iops || !ratio) {
		rc = -EIO;
		goto out;
	}
	fprintf(iops, "# config");
	fprintf(ratio, "# config");
	for (m = 0; m < NR_MODES; m++) {
		if (!plotted(m))
			continue;
		fprintf(iops, " %s", modes[m].name);
		if (m != M_DIRECT)
			fprintf(ratio, " %s/direct", modes[m].name);
	}
	fprintf(iops, "\n");
	fprintf(ratio, "\n");
	for (i = 0; i < NR_CFGS; i++) {
		if (!ran[i])
			continue;
		fprintf(iops, "%s", cfgs[i].name);
		fprintf(ratio, "%s", cfgs[i].name);
		for (m = 0; m < NR_MODES; m++) {
			if (!plotted(m))
				continue;
			fprintf(iops, " %.0f", f[i][m].iops);
			if (m != M_DIRECT)
				fprintf(ratio, " %.4f", G.proxy_bin ?
					f[i][m].pair : ratio_of(f[i], m));
		}
		fprintf(iops, "\n");
		fprintf(ratio, "\n");
	}
out:
	if (iops)
		fclose(iops);
	if (ratio)
		fclose(ratio);
	return rc;
}

/* ---- main ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of @n values in @v, and their least and greatest. */
static double spread(double *v, unsigned int n, double *min, double *max)
{
	qsort(v, n, sizeof(*v), cmp_double);
	*min = v[0];
	*max = v[n - 1];
	return bench_median(v, n);
}

/*
 * The figure of one mode (@x, one sample per repeat) for @c: medians over
 * the repeats, each on its own, and the spread of IOPS, CPU per request
 * and of the paired ratio to direct (@d, the same repeats).
 */
static void summarize(const struct cfg *c, const struct sample *x,
		      const struct sample *d, const double *cold,
		      struct figure *f)
{
	double v[MAX_REPEATS], w[MAX_REPEATS], u[MAX_REPEATS], t[MAX_REPEATS];
	unsigned int n = G.repeats, r, j;
	bool direct = x == d;
	double lo, hi;

	f->have_sys = f->have_cpu = f->have_proxy_sys = true;
	for (r = 0; r < n; r++) {
		v[r] = x[r].iops;
		w[r] = x[r].lat_us;
		u[r] = d[r].iops > 0 ? x[r].iops / d[r].iops : 0;
		f->have_sys = f->have_sys && x[r].have_sys;
		f->have_cpu = f->have_cpu && x[r].have_cpu;
		f->have_proxy_sys = f->have_proxy_sys && x[r].have_proxy_sys;
	}
	f->iops = spread(v, n, &f->iops_min, &f->iops_max);
	for (r = 0; r < n; r++)
		t[r] = x[r].rtt_ns;
	f->rtt_ns = spread(t, n, &lo, &hi);
	f->gbps = f->iops * c->bs / 1e9;
	f->lat_us = bench_median(w, n);
	f->pair = G.mode_on[M_DIRECT] ? spread(u, n, &f->pair_min,
					       &f->pair_max) : 0;
	if (f->have_sys) {
		for (r = 0; r < n; r++) {
			v[r] = x[r].sys_req;
			w[r] = x[r].vmm_req;
		}
		f->sys_req = bench_median(v, n);
		f->vmm_req = bench_median(w, n);
	}
	if (f->have_proxy_sys) {
		for (r = 0; r < n; r++)
			v[r] = x[r].proxy_sys_req;
		f->proxy_sys_req = bench_median(v, n);
	}
	for (j = 0; f->have_cpu && j < NR_CPU; j++) {
		for (r = 0; r < n; r++)
			v[r] = x[r].cpu[j];
		f->cpu[j] = spread(v, n, &lo, &hi);
		f->cpu_min[j] = lo;
		f->cpu_max[j] = hi;
	}
	for (r = 0; r < n; r++)
		v[r] = cold[r];
	f->copy_us = spread(v, n, &lo, &hi);
	if (direct || !G.mode_on[M_DIRECT])
		return;
	/* Paired: each repeat against direct's run and the cold copy timed
	 * in the same repeat, then the median of those. */
	f->have_tax = f->have_cpu;
	for (r = 0; r < n; r++) {
		f->have_tax = f->have_tax && d[r].have_cpu && cold[r] > 0;
		v[r] = f->have_tax ? (x[r].cpu[CPU_TOTAL] - d[r].cpu[CPU_TOTAL]) /
				     cold[r] : 0;
		w[r] = x[r].lat_us - d[r].lat_us;
	}
	if (f->have_tax)
		f->tax = spread(v, n, &f->tax_min, &f->tax_max);
	f->lat_add = spread(w, n, &f->lat_add_min, &f->lat_add_max);
}

/*
 * One cold copy of @bs bytes, in us: libc's memcpy between random slots of
 * two buffers far larger than the caches, so that source and destination
 * both miss; the median of COLD_BATCHES batches of COLD_BATCH copies, on
 * the guest's CPU. The reference the isolation tax is counted in: the
 * physical price of bounce isolation is one such copy per request.
 */
static double cold_copy_us(uint32_t bs)
{
	uint64_t slots = COLD_SIZE / bs, rng = 0x2545f4914f6cdd1dull ^ bs;
	double t[COLD_BATCHES], lo, hi;
	unsigned int b, k;

	for (b = 0; b < COLD_BATCHES; b++) {
		uint64_t t0 = bench_now_ns();

		for (k = 0; k < COLD_BATCH; k++) {
			uint64_t i = rnd(&rng) % slots, j = rnd(&rng) % slots;

			memcpy(G.cold[1] + j * bs, G.cold[0] + i * bs, bs);
		}
		t[b] = (double)(bench_now_ns() - t0) / 1e3 / COLD_BATCH;
	}
	return spread(t, COLD_BATCHES, &lo, &hi);
}

/* The daemon on its CPU, the guest driver (this thread) on its own, the
 * proxy beside one of them. */
static int place(void)
{
	int rc = bench_pin_process(G.qsd.pid, G.cpu_daemon);

	if (rc) {
		fprintf(stderr, "bench_e2e: qemu-storage-daemon to CPU %d: %s "
			"(--no-pin leaves it to the scheduler)\n", G.cpu_daemon,
			strerror(-rc));
		return rc;
	}
	rc = bench_pin_thread(0, G.cpu_guest);
	if (rc) {
		fprintf(stderr, "bench_e2e: guest driver to CPU %d: %s (--no-pin "
			"leaves it to the scheduler)\n", G.cpu_guest,
			strerror(-rc));
		return rc;
	}
	if (G.proxy_bin) {
		rc = bench_pin_process(G.proxy_pid, G.cpu_proxy);
		if (rc) {
			fprintf(stderr, "bench_e2e: svqiso-proxy to CPU %d: %s "
				"(--no-pin leaves it to the scheduler)\n",
				G.cpu_proxy, strerror(-rc));
			return rc;
		}
		fprintf(stderr, "bench_e2e: guest driver on CPU %d, "
			"qemu-storage-daemon on CPU %d, svqiso-proxy on CPU %d\n",
			G.cpu_guest, G.cpu_daemon, G.cpu_proxy);
		return 0;
	}
	if (G.cpu_own_relay >= 0)
		fprintf(stderr, "bench_e2e: guest driver on CPU %d, "
			"qemu-storage-daemon on CPU %d, relay thread on CPU %d\n",
			G.cpu_guest, G.cpu_daemon, G.cpu_own_relay);
	else
		fprintf(stderr, "bench_e2e: guest driver and relay thread on "
			"CPU %d, qemu-storage-daemon on CPU %d\n", G.cpu_guest,
			G.cpu_daemon);
	return 0;
}

/* Whether --only names @name in its comma-separated list. */
static bool selected(const char *name)
{
	const char *p = G.only;
	size_t n = strlen(name);

	while (p && *p) {
		size_t len = strcspn(p, ",");

		if (len == n && !strncmp(p, name, n))
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

/*
 * --cpus LIST: the CPUs this run may use, as "0,2" or "0-3"; the process is
 * confined to them before it places anything, so the ceiling counts them.
 */
static int set_cpus(const char *v)
{
	cpu_set_t set;
	const char *p = v;

	CPU_ZERO(&set);
	while (*p) {
		char *end;
		long a = strtol(p, &end, 10), b = a;

		if (end == p || a < 0 || a >= CPU_SETSIZE)
			return -EINVAL;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || b < a || b >= CPU_SETSIZE)
				return -EINVAL;
		}
		for (; a <= b; a++)
			CPU_SET(a, &set);
		p = end + (*end == ',');
		if (*end && *end != ',')
			return -EINVAL;
	}
	if (!CPU_COUNT(&set) || sched_setaffinity(0, sizeof(set), &set)) {
		fprintf(stderr, "bench_e2e: --cpus %s: %s\n", v,
			CPU_COUNT(&set) ? strerror(errno) : "no CPU");
		return -EINVAL;
	}
	return 0;
}

static int parse(int argc, char **argv)
{
	static const char *const loops[] = { "auto", "uring", "epoll", "busy" };
	bool modes_set = false;
	double secs = 0;
	int i, k;

	for (k = 0; k < (int)NR_MODES; k++)
		G.mode_on[k] = true;
	for (i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(argv[i], "--lazy-kicks")) {
			G.lazy = true;
			continue;	/* no value */
		}
		if (!strcmp(argv[i], "--no-touch")) {
			G.touch = false;
			continue;
		}
		if (!strcmp(argv[i], "--no-pin")) {
			G.pin = false;
			continue;
		}
		if (!strcmp(argv[i], "--verbose")) {
			G.verbose = true;
			continue;
		}
		if (!strcmp(argv[i], "--no-spin")) {
			G.no_spin = true;
			continue;
		}
		if (!v)
			return -EINVAL;
		if (!strcmp(argv[i], "--loop")) {
			for (k = 0; k < 4 && strcmp(v, loops[k]); k++)
				;
			if (k == 4)
				return -EINVAL;
			G.loop_mode = (uint8_t)k;	/* enum svqiso_loop_mode order */
			G.loop_name = loops[k];
		} else if (!strcmp(argv[i], "--copy")) {
			for (k = 0; k < SVQISO_NR_COPY &&
				    strcmp(v, svqiso_copy_name(k)); k++)
				;
			if (k == SVQISO_NR_COPY)
				return -EINVAL;
			if (!svqiso_copy_supported(k)) {
				fprintf(stderr, "bench_e2e: copy %s is not usable "
					"on this CPU\n", v);
				return -ENOTSUP;
			}
			G.copy = (uint8_t)k;
		} else if (!strcmp(argv[i], "--queues")) {
			G.nq = (unsigned int)atoi(v);
			if (G.nq < 1 || G.nq > MAX_QUEUES)
				return -EINVAL;
		} else if (!strcmp(argv[i], "--secs")) {
			secs = atof(v);
			if (secs <= 0 || secs > 3600)
				return -EINVAL;
		} else if (!strcmp(argv[i], "--only")) {
			G.only = v;
			for (k = 0; k < (int)NR_CFGS && !selected(cfgs[k].name); k++)
				;
			if (k == (int)NR_CFGS)
				return -EINVAL;
		} else if (!strcmp(argv[i], "--modes")) {
			const char *p = v;

			modes_set = true;
			memset(G.mode_on, 0, sizeof(G.mode_on));
			while (*p) {
				size_t len = strcspn(p, ",");

				for (k = 0; k < (int)NR_MODES &&
					    (strlen(modes[k].name) != len ||
					     strncmp(p, modes[k].name, len)); k++)
					;
				if (k == (int)NR_MODES)
					return -EINVAL;
				G.mode_on[k] = true;
				p += len + (p[len] == ',');
			}
		} else if (!strcmp(argv[i], "--backend")) {
			if (strcmp(v, "null") && strcmp(v, "file"))
				return -EINVAL;
			G.file = !strcmp(v, "file");
		} else if (!strcmp(argv[i], "--cpus")) {
			if (set_cpus(v))
				return -EINVAL;
		} else if (!strcmp(argv[i], "--batch-bytes")) {
			G.batch_bytes = strtoull(v, NULL, 0);
		} else if (!strcmp(argv[i], "--spin-ns")) {
			G.spin_ns = strtoull(v, NULL, 0);
		} else if (!strcmp(argv[i], "--pool-size")) {
			G.pool_size = strtoull(v, NULL, 0);
		} else if (!strcmp(argv[i], "--proxy")) {
			G.proxy_bin = v;
		} else if (!strcmp(argv[i], "--proxy-cpu")) {
			if (strcmp(v, "guest") && strcmp(v, "daemon"))
				return -EINVAL;
			G.proxy_by_daemon = !strcmp(v, "daemon");
		} else if (!strcmp(argv[i], "--repeats")) {
			G.repeats = (unsigned int)atoi(v);
			if (G.repeats < 1 || G.repeats > MAX_REPEATS)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
		i++;
	}
	/* The proxy's run compares two paths, both through the adapter in
	 * direct mode, whose relay options do not apply. */
	if (G.proxy_bin) {
		if (modes_set || G.lazy || G.spin_ns || G.batch_bytes)
			return -EINVAL;
		memset(G.mode_on, 0, sizeof(G.mode_on));
		G.mode_on[M_DIRECT] = G.mode_on[M_PROXY] = true;
	} else if (G.mode_on[M_PROXY] && modes_set) {
		return -EINVAL;
	} else {
		G.mode_on[M_PROXY] = false;
	}
	if (!G.repeats)
		G.repeats = G.b.quick ? 1 : 5;
	if (secs <= 0)
		secs = G.b.quick ? 0.1 : 2;
	G.run_ns = (uint64_t)(secs * 1e9);
	G.warm_ns = G.run_ns / 10;
	return 0;
}

/* The image of --backend file: every page present, none of them zeros. */
static void image_fill(uint64_t off, void *buf, uint64_t len)
{
	uint64_t *p = buf, k;

	for (k = 0; k < len / 8; k++)
		p[k] = (off / 8 + k) * 0x9e3779b97f4a7c15ull | 1;
}

int main(int argc, char **argv)
{
	struct qsd_cfg qc = { .img_size = DISK_SIZE, .num_queues = 2,
			      .null_driver = true, .read_zeroes = true };
	static struct figure fig[NR_CFGS][NR_MODES];
	bool ran[NR_CFGS] = { false }, notouch = false, spin = false, pool = false;
	bool proxy = false, file = false, nospin = false;
	unsigned int i, rep, k;
	char name[48];
	int rc;

	for (i = 1; i < (unsigned int)argc; i++) {
		if (!strcmp(argv[i], "--proxy"))
			proxy = true;
		if (!strcmp(argv[i], "--lazy-kicks"))
			G.lazy = true;
		if (!strcmp(argv[i], "--no-touch"))
			notouch = true;
		if (!strcmp(argv[i], "--spin-ns") && i + 1 < (unsigned int)argc)
			spin = strtoull(argv[i + 1], NULL, 0) != 0;
		if (!strcmp(argv[i], "--no-spin"))
			nospin = true;
		if (!strcmp(argv[i], "--pool-size") && i + 1 < (unsigned int)argc)
			pool = strtoull(argv[i + 1], NULL, 0) != 0;
		if (!strcmp(argv[i], "--backend") && i + 1 < (unsigned int)argc)
			file = !strcmp(argv[i + 1], "file");
	}
	/* Their own result files, beside the default run's. */
	snprintf(name, sizeof(name), "e2e%s%s%s%s%s%s%s", file ? "-file" : "",
		 proxy ? "-proxy" : "", G.lazy ? "-lazy" : "",
		 notouch ? "-notouch" : "", spin ? "-spin" : "",
		 nospin ? "-nospin" : "", pool ? "-pool" : "");
	if (bench_init(&G.b, name, &argc, argv))
		return 1;
	if (parse(argc, argv)) {
		fprintf(stderr, "usage: %s [--out DIR] [--quick] "
			"[--loop auto|uring|epoll|busy] "
			"[--copy auto|memcpy|movsb|nt] [--queues 1|2] "
			"[--secs S] [--repeats 1..%d] [--only CONFIG,...] "
			"[--lazy-kicks] [--no-touch] [--modes MODE,...] "
			"[--no-pin] [--batch-bytes N] [--spin-ns N] "
			"[--pool-size N] [--proxy PATH [--proxy-cpu "
			"guest|daemon]] [--backend null|file] [--cpus LIST] "
			"[--verbose] [--no-spin]\n",
			argv[0],
			MAX_REPEATS);
		bench_fini(&G.b);
		return 1;
	}
	if (!qsd_on_path(QSD_BIN)) {
		fprintf(stderr, "bench_e2e: %s not on PATH, skipping\n", QSD_BIN);
		bench_fini(&G.b);
		return 77;
	}
	if (G.file) {
		/* The daemon copies every byte through the page cache, as a
		 * real backend's storage stack does. */
		qc.null_driver = qc.read_zeroes = false;
		qc.fill = image_fill;
	}
	/* The CPUs this process may use, before it pins anything. A third
	 * one, if there is one, is the relay thread's own. */
	G.cpu_guest = bench_allowed_cpu(0);
	G.cpu_daemon = bench_allowed_cpu(1);
	G.cpu_own_relay = bench_allowed_cpu(2);
	G.cpu_relay = G.cpu_guest;
	G.ncpus = bench_allowed_cpus();
	if (G.cpu_daemon < 0)
		G.pin = false;	/* one CPU: nothing to place */
	G.cpu_proxy = G.proxy_by_daemon ? G.cpu_daemon : G.cpu_guest;
	rc = qsd_setup(&G.qsd, &qc);
	if (rc) {
		fprintf(stderr, "bench_e2e: qemu-storage-daemon: %s\n", G.qsd.err);
		goto out;
	}
	if (G.proxy_bin) {
		rc = proxy_start();
		if (rc)
			goto out;
		/* Another process's: this one's counter does not follow it. */
		G.proxy_sys_fd = bench_sys_open_pid(G.proxy_pid);
		if (G.proxy_sys_fd < 0)
			fprintf(stderr, "bench_e2e: no syscall counter for "
				"svqiso-proxy (%s)\n", strerror(-G.proxy_sys_fd));
	}
	if (G.pin) {
		rc = place();
		if (rc)
			goto out;
	}
	/*
	 * After the daemon's fork (the counter follows children too) and
	 * before the adapter's relay thread exists, so that one is counted.
	 */
	G.sys_fd = bench_sys_open();
	if (G.sys_fd < 0)
		fprintf(stderr, "bench_e2e: no syscall counter (%s); syscalls "
			"per request are not reported\n", strerror(-G.sys_fd));
	G.gm = gmem_new(GUEST_GPA, GUEST_SIZE, 2);
	if (!G.gm) {
		rc = -errno;
		fprintf(stderr, "bench_e2e: guest RAM: %s\n", strerror(errno));
		goto out;
	}
	/* Data buffers first, each within one region, so a request is one
	 * guest segment; the rings of each session come after them. */
	for (i = 0; i < MAX_QD; i++) {
		G.buf_gpa[i] = gmem_alloc_contig(G.gm, 128 << 10, 4096);
		G.buf[i] = G.buf_gpa[i] ? gmem_hva(G.gm, G.buf_gpa[i], 128 << 10) :
			   NULL;
		if (!G.buf[i]) {
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = sanity();
	if (rc)
		goto out;
	for (i = 0; i < 2; i++) {
		G.cold[i] = malloc(COLD_SIZE);
		if (!G.cold[i]) {
			rc = -ENOMEM;
			goto out;
		}
		memset(G.cold[i], 0x5a + i, COLD_SIZE);
	}

	for (i = 0; i < NR_CFGS; i++) {
		const struct cfg *c = &cfgs[i];
		static struct sample x[NR_MODES][MAX_REPEATS];
		double cold[MAX_REPEATS];
		unsigned int on[NR_MODES], non = 0;

		if (G.only ? !selected(c->name) : G.b.quick && !c->quick)
			continue;
		for (k = 0; k < NR_MODES; k++)
			if (G.mode_on[k])
				on[non++] = k;
		for (rep = 0; rep < G.repeats; rep++) {
			cold[rep] = cold_copy_us(c->bs);
			/* Rotate the order so drift hits every mode alike. */
			for (k = 0; k < non; k++) {
				unsigned int m = on[(k + rep) % non];

				rc = measure(c, m, rep, &x[m][rep]);
				if (rc)
					goto out;
			}
		}
		for (k = 0; k < NR_MODES; k++) {
			memset(&fig[i][k], 0, sizeof(fig[i][k]));
			if (G.mode_on[k])	/* else nothing was measured */
				summarize(c, x[k], x[M_DIRECT], cold, &fig[i][k]);
		}
		ran[i] = true;
		report(c, fig[i]);
	}
	if (G.proxy_bin)
		write_md_proxy(ran, fig);
	else
		write_md(ran, fig);
	rc = write_dat(ran, fig);
out:
	free(G.cold[0]);
	free(G.cold[1]);
	gmem_free(G.gm);
	proxy_teardown(rc != 0);
	qsd_teardown(&G.qsd);
	if (G.sys_fd >= 0)
		close(G.sys_fd);
	bench_fini(&G.b);
	return rc ? 1 : 0;
}
