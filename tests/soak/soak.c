/* SPDX-License-Identifier: MIT */
/*
 * The soak: the vhost-user adapter (<svqiso/vu.h>, isolated mode) against a
 * real qemu-storage-daemon for millions of requests, with everything a VMM
 * does to a device while the guest keeps going, and every byte checked.
 *
 *  - The guest is the virtio-blk driver model of tests/guest: mixed reads,
 *    writes, flushes, discards and write-zeroes of 512 B to --max-len on
 *    --queues queues at --depth each, every read compared with a model of
 *    the disk as it completes.
 *  - The run is cut into phases of --phase requests. Each phase has its own
 *    guest rings: split and packed in turn (--layout), with indirect
 *    descriptors and event idx on and off across phases. Between phases
 *    the VMM stops every queue, the image file is compared with the model
 *    on the host, and the device is reset (svqiso_vu_reset()); the next
 *    phase's model is loaded from the image it was just compared with.
 *  - Every --stop-every requests the VMM stops and restarts queues while
 *    the guest keeps posting (one queue, or every queue at once), at the
 *    base the stop returned.
 *  - Every --kill-every requests the daemon is killed with SIGKILL, as a
 *    crash ends it, started again on the same image and socket, and the
 *    adapter reconnects (svqiso_vu_reconnect()), posting again what the
 *    dead daemon held. The guest sees a pause.
 *  - After each restart and at each phase the daemon's /proc/<pid>/maps
 *    and /fd are read: no guest RAM, ever.
 *
 * Progress goes to stdout every --progress seconds; at the end one summary
 * (and, with --json, one JSON object in a file). Exit status: 0 when every
 * request completed, good, with every byte as the model says, in reads and
 * in the image, and nothing failed; 1 otherwise; 77 without
 * qemu-storage-daemon on PATH; 2 for bad options.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <svqiso/svqiso.h>
#include <svqiso/vu.h>
#include "guest.h"
#include "inspect.h"
#include "qsd.h"

#define MAXQ		16
#define GUEST_GPA	0x40000000ull
#define PATTERN		0x9e3779b97f4a7c15ull
#define F_INDIRECT	28
#define F_EVENT_IDX	29
#define F_PACKED	34
#define RECONNECT_MS	10000	/* for the daemon to come back */
#define STOP_TRIES	20	/* -ETIMEDOUT answers a stop may get */

struct cfg {
	uint64_t requests;
	uint64_t phase;			/* requests per phase; 0: requests / 10 */
	uint64_t stop_every;		/* 0: never */
	uint64_t kill_every;		/* 0: never */
	unsigned int nq, depth, num;
	uint32_t max_len;
	uint64_t img_size;
	unsigned int layouts;		/* bit 0 split, bit 1 packed */
	uint64_t seed;
	unsigned int progress_s;
	unsigned int timeout_ms;	/* the guest: no completion this long */
	uint8_t loop_mode;
	const char *rev;
	const char *json;
	const char *log;
};

struct totals {
	uint64_t requests, reads, writes, flushes, discards, write_zeroes;
	uint64_t bytes_read, bytes_written;
	uint64_t bad_status;
	uint64_t read_mismatches;	/* 512-byte sectors read back wrong */
	uint64_t image_mismatches;	/* sectors of the image file wrong */
	uint64_t lost;			/* posted, never completed */
	uint64_t stop_events, stops, stops_busy, stop_retries;
	uint64_t kills, hangups, reconnects, reconnect_tries, reposted;
	uint64_t max_pause_ns, pause_ns;
	uint64_t resets, phases;
	uint64_t inspections, leaks;
	uint64_t errors;
};

static struct {
	struct cfg c;
	struct totals t;
	struct qsd d;
	struct qsd_cfg dcfg;
	struct gmem *gm;
	uint64_t gm_top;		/* where each phase allocates from */
	struct stat guest_st;
	struct blkq *q[MAXQ];
	struct svqiso_vu *vu;
	struct blkwork *w;
	int img_fd;
	FILE *logf;
	uint64_t done_before;		/* completed in earlier phases */
	uint64_t phase_done;		/* __atomic: this phase, by the tick */
	unsigned int hangups;		/* __atomic: the hangup callback */
	bool guest_done;		/* __atomic */
	char first_error[256];
	uint64_t t0;
	const char *layout_now;
} S = { .img_fd = -1 };

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

/* splitmix64, for the VMM's own choices (not the guest's workload). */
static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* An error: counted, the first one kept for the summary. */
static void fail(const char *fmt, ...)
{
	va_list ap;
	char msg[256];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	S.t.errors++;
	if (!S.first_error[0])
		snprintf(S.first_error, sizeof(S.first_error), "%s", msg);
	fprintf(stderr, "soak: error: %s\n", msg);
}

static void log_cb(void *ctx, int level, const char *msg)
{
	const char *name = level <= SVQISO_LOG_ERR ? "error" :
			   level <= SVQISO_LOG_WARN ? "warning" : "info";

	(void)ctx;
	if (S.logf && level <= SVQISO_LOG_INFO)
		fprintf(S.logf, "%.3f adapter %s: %s\n",
			(now_ns() - S.t0) / 1e9, name, msg);
	else if (!S.logf && level <= SVQISO_LOG_ERR)
		fprintf(stderr, "soak: adapter: %s\n", msg);
}

static void on_hangup(void *ctx)
{
	(void)ctx;
	__atomic_add_fetch(&S.hangups, 1, __ATOMIC_RELEASE);
}

static void fill_pattern(uint64_t off, void *buf, uint64_t len)
{
	uint64_t *w = buf, i;

	for (i = 0; i < len / 8; i++)
		w[i] = ((off + i * 8) / 8) * PATTERN ^ 0x534f414b21ull;
}

/* ---- the guest ---- */

/* Phase @i's guest rings: layout, indirect and event idx. */
struct phase_kind {
	bool packed, indirect, event_idx;
};

static struct phase_kind phase_kind(uint64_t i)
{
	struct phase_kind k;

	if (S.c.layouts == 3)
		k.packed = i & 1;
	else
		k.packed = S.c.layouts == 2;
	/* The other two bits cycle more slowly: every combination within
	 * eight phases. */
	k.indirect = !((i >> 1) & 1);
	k.event_idx = !((i >> 2) & 1);
	return k;
}

static void tick(void *ctx, uint64_t completed)
{
	(void)ctx;
	__atomic_store_n(&S.phase_done, completed, __ATOMIC_RELAXED);
}

struct guest_run {
	uint64_t n;
	struct blkwork_result res;
	int rc;
};

static void *guest_thread(void *arg)
{
	struct guest_run *g = arg;

	g->rc = blkwork_run(S.w, g->n, &g->res);
	__atomic_store_n(&S.guest_done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* ---- the VMM ---- */

static void queue_cfg(unsigned int i, uint32_t base, struct svqiso_vu_queue *c)
{
	*c = (struct svqiso_vu_queue){
		.sz = sizeof(*c), .ring = blkq_addr(S.q[i]), .num = blkq_num(S.q[i]),
		.layout = blkq_layout(S.q[i]), .base = base,
		.kick_fd = blkq_kick_fd(S.q[i]), .call_fd = blkq_call_fd(S.q[i]),
	};
}

/* What the daemon can reach: never guest RAM. */
static void inspect_daemon(const char *when)
{
	struct inspect_report r;
	int rc;

	rc = inspect_process(S.d.pid, &S.guest_st, NULL, 0, &r);
	if (rc) {
		fail("inspecting the daemon %s: %s", when, strerror(-rc));
		return;
	}
	S.t.inspections++;
	if (inspect_leaks(&r)) {
		S.t.leaks++;
		fail("the daemon reaches guest RAM %s: %s", when, r.detail);
	}
}

/* Stop queue @i, waiting out a backend that is still busy. Return: 0 and
 * *@base; -errno (counted). */
static int queue_stop(unsigned int i, uint32_t *base)
{
	int rc = -ETIMEDOUT, k;

	for (k = 0; k < STOP_TRIES && rc == -ETIMEDOUT; k++) {
		rc = svqiso_vu_queue_stop(S.vu, i, base);
		if (rc == -ETIMEDOUT)
			S.t.stop_retries++;
	}
	if (rc)
		fail("queue %u: stop: %s", i, strerror(-rc));
	return rc;
}

static int queue_start(unsigned int i, uint32_t base)
{
	struct svqiso_vu_queue c;
	int rc;

	queue_cfg(i, base, &c);
	rc = svqiso_vu_queue_start(S.vu, i, &c);
	if (rc)
		fail("queue %u: start at %#x: %s", i, base, strerror(-rc));
	return rc;
}

/* Whether the adapter holds requests of queue @i (taken, not completed). */
static bool adapter_busy(unsigned int i)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };

	return !svqiso_vu_get_queue_stats(S.vu, i, &st) &&
	       st.requests != st.completions;
}

/*
 * A stop event: every fourth one stops every queue, then starts them all;
 * the others stop one queue (in turn) and start it again. Now and then the
 * queues stay stopped a moment, while the guest goes on posting.
 */
static void stop_event(void)
{
	uint64_t e = S.t.stop_events++;
	unsigned int first, last, i;
	uint32_t base[MAXQ];

	if (e % 4 == 3) {
		first = 0;
		last = S.c.nq;
	} else {
		first = (e - e / 4) % S.c.nq;	/* single-queue events so far */
		last = first + 1;
	}
	for (i = first; i < last; i++) {
		S.t.stops_busy += adapter_busy(i);
		if (queue_stop(i, &base[i]))
			return;
		S.t.stops++;
	}
	if (rnd() % 4 == 0)
		sleep_ms(1 + rnd() % 5);
	for (i = first; i < last; i++)
		if (queue_start(i, base[i]))
			return;
}

/*
 * A kill event: SIGKILL the daemon, as a crash ends it; the relay thread
 * sees the hang-up. A moment later (the guest goes on posting meanwhile) a
 * supervisor starts it again on the same image and socket, and the VMM
 * reconnects.
 */
static void kill_event(void)
{
	unsigned int seen = __atomic_load_n(&S.hangups, __ATOMIC_ACQUIRE);
	uint64_t t0 = now_ns(), pause;
	int rc = -1, k;

	qsd_kill(&S.d);
	S.t.kills++;
	for (k = 0; k < 2000 && __atomic_load_n(&S.hangups, __ATOMIC_ACQUIRE) == seen; k++)
		sleep_ms(1);
	if (__atomic_load_n(&S.hangups, __ATOMIC_ACQUIRE) == seen)
		fail("kill %" PRIu64 ": the adapter saw no hang-up in 2 s", S.t.kills);
	sleep_ms(rnd() % 100);
	rc = qsd_restart(&S.d, &S.dcfg);
	if (rc) {
		fail("kill %" PRIu64 ": restarting the daemon: %s", S.t.kills, S.d.err);
		return;
	}
	for (k = 0; k < RECONNECT_MS / 10; k++) {
		S.t.reconnect_tries++;
		rc = svqiso_vu_reconnect(S.vu, -1);
		if (rc >= 0)
			break;
		sleep_ms(10);
	}
	if (rc < 0) {
		fail("kill %" PRIu64 ": reconnect: %s", S.t.kills, strerror(-rc));
		return;
	}
	S.t.reconnects++;
	S.t.reposted += (uint64_t)rc;
	pause = now_ns() - t0;
	S.t.pause_ns += pause;
	if (pause > S.t.max_pause_ns)
		S.t.max_pause_ns = pause;
	inspect_daemon("after a restart");
}

static int adapter_open(void)
{
	SVQISO_OPTS(svqiso_vu_opts, o, .path = S.d.sock, .log = log_cb,
		    .timeout_ms = 10000, .loop_mode = S.c.loop_mode,
		    .hangup = on_hangup);
	unsigned int i;
	int rc;

	rc = svqiso_vu_connect(&o, &S.vu);
	if (rc) {
		fail("connect: %s", strerror(-rc));
		return rc;
	}
	for (i = 0; i < gmem_nr_regions(S.gm); i++) {
		struct svqiso_mem_region r;

		rc = gmem_region(S.gm, i, &r);
		if (!rc)
			rc = svqiso_vu_add_region(S.vu, &r);
		if (rc) {
			fail("guest RAM region %u: %s", i, strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* Phase @i: fresh guest rings of its kind, the device set up for them,
 * queues running, and the model loaded from the image. */
static int phase_open(uint64_t i)
{
	struct phase_kind k = phase_kind(i);
	struct blkq_opts qo = { .layout = k.packed, .num = S.c.num,
				.indirect = k.indirect, .event_idx = k.event_idx,
				.max_segs = 8 };
	struct blkwork_opts wo;
	uint64_t feat;
	unsigned int j;
	int rc;

	S.layout_now = k.packed ? "packed" : "split";
	rc = gmem_set_alloc_top(S.gm, S.gm_top);
	for (j = 0; !rc && j < S.c.nq; j++) {
		qo.seed = S.c.seed + i * 64 + j;
		rc = blkq_new(S.gm, &qo, &S.q[j]);
	}
	if (rc) {
		fail("guest queues: %s", strerror(-rc));
		return rc;
	}
	feat = svqiso_vu_get_features(S.vu);
	if (!k.packed)
		feat &= ~(1ull << F_PACKED);
	if (!k.indirect)
		feat &= ~(1ull << F_INDIRECT);
	if (!k.event_idx)
		feat &= ~(1ull << F_EVENT_IDX);
	rc = svqiso_vu_set_features(S.vu, feat);
	if (rc) {
		fail("features %#" PRIx64 ": %s", feat, strerror(-rc));
		return rc;
	}
	for (j = 0; j < S.c.nq; j++) {
		rc = queue_start(j, blkq_fresh_base(S.q[j]));
		if (rc)
			return rc;
	}
	blkwork_opts_init(&wo);
	wo.queues = S.q;
	wo.nqueues = S.c.nq;
	wo.depth = S.c.depth;
	wo.min_len = 512;
	wo.max_len = S.c.max_len;
	wo.capacity = S.c.img_size;
	wo.max_segs = 8;
	wo.discard_zeroes = true;	/* discard=unmap on a file in tmpfs */
	wo.seed = S.c.seed + i;
	wo.timeout_ms = S.c.timeout_ms;
	wo.tick = tick;
	wo.init_fd = S.img_fd;
	rc = blkwork_new(&wo, &S.w);
	if (rc)
		fail("workload: %s", strerror(-rc));
	return rc;
}

/*
 * End of a phase: stop every queue, compare the image with the model, look
 * at the queues' counters; then reset the device (@reset) and free the
 * guest's rings.
 */
static void phase_close(bool reset)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint64_t bad = 0;
	unsigned int j;
	uint32_t base;
	const char *why;
	int rc;

	for (j = 0; j < S.c.nq; j++) {
		why = svqiso_vu_queue_broken(S.vu, j);
		if (why)
			fail("queue %u broken: %s", j, why);
		if (!svqiso_vu_get_queue_stats(S.vu, j, &st) && st.errors)
			fail("queue %u: %" PRIu64 " errors", j, st.errors);
		if (!queue_stop(j, &base))
			S.t.stops++;
	}
	if (S.w) {
		rc = blkwork_check_fd(S.w, S.img_fd, &bad);
		if (rc)
			fail("reading the image: %s", strerror(-rc));
		S.t.image_mismatches += bad;
		if (bad)
			fail("%" PRIu64 " sectors of the image differ from the model", bad);
	}
	blkwork_free(S.w);
	S.w = NULL;
	if (reset) {
		rc = svqiso_vu_reset(S.vu);
		if (rc)
			fail("reset: %s", strerror(-rc));
		S.t.resets++;
	}
	for (j = 0; j < S.c.nq; j++) {
		blkq_free(S.q[j]);
		S.q[j] = NULL;
	}
}

static void add_result(const struct blkwork_result *r)
{
	S.t.reads += r->reads;
	S.t.writes += r->writes;
	S.t.flushes += r->flushes;
	S.t.discards += r->discards;
	S.t.write_zeroes += r->write_zeroes;
	S.t.requests += r->reads + r->writes + r->flushes + r->discards +
			r->write_zeroes;
	S.t.bytes_read += r->bytes_read;
	S.t.bytes_written += r->bytes_written;
	S.t.bad_status += r->bad_status;
	S.t.read_mismatches += r->mismatches;
	if (r->bad_status)
		fail("%" PRIu64 " requests completed with a bad status", r->bad_status);
	if (r->mismatches)
		fail("%" PRIu64 " sectors read back wrong; the first: queue %u, "
		     "sector %" PRIu64 ", byte %u", r->mismatches, r->mm_queue,
		     r->mm_sector, r->mm_offset);
}

static void progress(uint64_t done, uint64_t *last_done, uint64_t *last_t)
{
	uint64_t t = now_ns();
	double el = (t - S.t0) / 1e9, dt = (t - *last_t) / 1e9;

	printf("soak: %" PRIu64 "/%" PRIu64 " requests (%.1f%%), %.0f/s "
	       "(%.0f/s now), phase %" PRIu64 " %s, %" PRIu64 " stops, %"
	       PRIu64 " kills, %" PRIu64 " errors, %.0f s\n",
	       done, S.c.requests, 100.0 * done / S.c.requests,
	       el > 0 ? done / el : 0.0,
	       dt > 0 ? (done - *last_done) / dt : 0.0, S.t.phases,
	       S.layout_now, S.t.stops, S.t.kills, S.t.errors, el);
	fflush(stdout);
	*last_done = done;
	*last_t = t;
}

/* One phase of @n requests, with the VMM's events while it runs. */
static void run_phase(uint64_t i, uint64_t n, uint64_t *next_stop,
		      uint64_t *next_kill, uint64_t *next_progress,
		      uint64_t *last_done, uint64_t *last_t)
{
	struct guest_run g = { .n = n };
	pthread_t th;
	uint64_t done = S.done_before;
	unsigned int j;
	int rc;

	S.t.phases++;
	rc = phase_open(i);
	if (!rc) {
		inspect_daemon("at a phase start");
		__atomic_store_n(&S.phase_done, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&S.guest_done, false, __ATOMIC_RELAXED);
		rc = -pthread_create(&th, NULL, guest_thread, &g);
		if (rc)
			fail("guest thread: %s", strerror(-rc));
	}
	while (!rc && !__atomic_load_n(&S.guest_done, __ATOMIC_ACQUIRE)) {
		sleep_ms(2);
		done = S.done_before + __atomic_load_n(&S.phase_done, __ATOMIC_RELAXED);
		if (S.t.errors) {
			/* The guest times out on what it cannot finish. */
			continue;
		}
		if (S.c.stop_every && done >= *next_stop) {
			stop_event();
			*next_stop += S.c.stop_every;
		}
		if (S.c.kill_every && done >= *next_kill) {
			kill_event();
			*next_kill += S.c.kill_every;
		}
		if (now_ns() >= *next_progress) {
			progress(done, last_done, last_t);
			*next_progress += S.c.progress_s * 1000000000ull;
		}
	}
	if (!rc) {
		pthread_join(th, NULL);
		add_result(&g.res);
		if (g.rc) {
			uint64_t inflight = 0;

			for (j = 0; j < S.c.nq; j++)
				inflight += blkq_inflight(S.q[j]);
			S.t.lost += inflight;
			fail("phase %" PRIu64 ": the guest saw %s with %" PRIu64
			     " requests in flight", i, strerror(-g.rc), inflight);
		}
	}
	S.done_before += g.res.reads + g.res.writes + g.res.flushes +
			 g.res.discards + g.res.write_zeroes;
	/* After a failure, what the queues hold may never come back. */
	if (!rc && !S.t.lost)
		phase_close(i + 1 < (S.c.requests + S.c.phase - 1) / S.c.phase);
}

/* ---- the report ---- */

static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256], *p;

	snprintf(buf, len, "unknown CPU");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) || !(p = strchr(line, ':')))
			continue;
		p += 1 + strspn(p + 1, " \t");
		p[strcspn(p, "\n")] = 0;
		snprintf(buf, len, "%s", p);
		break;
	}
	if (f)
		fclose(f);
}

static void qsd_version(char *buf, size_t len)
{
	FILE *f = popen(QSD_BIN " --version 2>/dev/null", "re");
	char line[128];

	snprintf(buf, len, "unknown");
	if (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		/* "qemu-storage-daemon version 7.2.x (Debian ...)" */
		if (!strncmp(line, QSD_BIN " version ", sizeof(QSD_BIN " version ") - 1))
			snprintf(buf, len, "%.*s", (int)len - 1,
				 line + sizeof(QSD_BIN " version ") - 1);
		else
			snprintf(buf, len, "%.*s", (int)len - 1, line);
	}
	if (f)
		pclose(f);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void report(uint64_t elapsed_ns)
{
	const struct totals *t = &S.t;
	double s = elapsed_ns / 1e9, gib = 1024.0 * 1024 * 1024;
	bool pass = !t->errors && !t->lost && !t->read_mismatches &&
		    !t->image_mismatches && !t->bad_status && !t->leaks &&
		    t->requests == S.c.requests;
	char cpu[128], date[32], qv[96];
	time_t now = time(NULL);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	FILE *f;

	cpu_model(cpu, sizeof(cpu));
	qsd_version(qv, sizeof(qv));
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	printf("soak: %s\n", pass ? "PASS" : "FAIL");
	printf("revision:       %s (libsvqiso %s)\n", S.c.rev, svqiso_version());
	printf("date:           %s\n", date);
	printf("machine:        %s, %ld CPUs\n", cpu, ncpu);
	printf("backend:        qemu-storage-daemon %s, raw image of %" PRIu64
	       " MiB on tmpfs\n", qv, S.c.img_size >> 20);
	printf("setup:          %u queues, depth %u, ring %u, requests of 512 B "
	       "to %u KiB, %s guest rings, %s loop, seed %#" PRIx64 "\n",
	       S.c.nq, S.c.depth, S.c.num, S.c.max_len >> 10,
	       S.c.layouts == 3 ? "split and packed" :
	       S.c.layouts == 2 ? "packed" : "split",
	       S.c.loop_mode == SVQISO_LOOP_EPOLL ? "epoll" :
	       S.c.loop_mode == SVQISO_LOOP_BUSY_POLL ? "busy-poll" : "io_uring",
	       S.c.seed);
	printf("schedule:       a queue stop every %" PRIu64 " requests, a daemon "
	       "kill every %" PRIu64 ", a device reset every %" PRIu64 "\n",
	       S.c.stop_every, S.c.kill_every, S.c.phase);
	printf("requests:       %" PRIu64 " of %" PRIu64 " (%" PRIu64 " reads, %"
	       PRIu64 " writes, %" PRIu64 " flushes, %" PRIu64 " discards, %"
	       PRIu64 " write-zeroes)\n", t->requests, S.c.requests, t->reads,
	       t->writes, t->flushes, t->discards, t->write_zeroes);
	printf("bytes:          %.2f GiB read, %.2f GiB written, every byte "
	       "compared with the model\n", t->bytes_read / gib,
	       t->bytes_written / gib);
	printf("queue stops:    %" PRIu64 " (%" PRIu64 " events, %" PRIu64
	       " with requests in flight, %" PRIu64 " retried)\n", t->stops,
	       t->stop_events, t->stops_busy, t->stop_retries);
	printf("backend kills:  %" PRIu64 ", restarts and reconnects %" PRIu64
	       ", %" PRIu64 " requests posted again; pause %.0f ms on average, "
	       "%.0f ms at most\n", t->kills, t->reconnects, t->reposted,
	       t->reconnects ? t->pause_ns / 1e6 / t->reconnects : 0.0,
	       t->max_pause_ns / 1e6);
	printf("device resets:  %" PRIu64 " (%" PRIu64 " phases, each checked "
	       "against the image file)\n", t->resets, t->phases);
	printf("isolation:      %" PRIu64 " looks at the daemon, guest RAM "
	       "reachable %" PRIu64 " times\n", t->inspections, t->leaks);
	printf("lost requests:  %" PRIu64 "\n", t->lost);
	printf("corrupted:      %" PRIu64 " sectors read back wrong, %" PRIu64
	       " sectors of the image wrong\n", t->read_mismatches,
	       t->image_mismatches);
	printf("errors:         %" PRIu64 " (%" PRIu64 " bad statuses)%s%s\n",
	       t->errors, t->bad_status, S.first_error[0] ? "; first: " : "",
	       S.first_error);
	printf("duration:       %.0f s, %.0f requests/s, %.0f MiB/s\n", s,
	       s > 0 ? t->requests / s : 0.0,
	       s > 0 ? (t->bytes_read + t->bytes_written) / s / (1 << 20) : 0.0);
	fflush(stdout);
	if (!S.c.json)
		return;
	f = fopen(S.c.json, "we");
	if (!f) {
		fprintf(stderr, "soak: %s: %s\n", S.c.json, strerror(errno));
		return;
	}
	fprintf(f, "{\"soak\":\"%s\",\"rev\":", pass ? "pass" : "fail");
	json_str(f, S.c.rev);
	fprintf(f, ",\"version\":\"%s\",\"date\":\"%s\",\"cpu\":", svqiso_version(), date);
	json_str(f, cpu);
	fprintf(f, ",\"cpus\":%ld,\"qsd\":", ncpu);
	json_str(f, qv);
	fprintf(f, ",\"queues\":%u,\"depth\":%u,\"ring\":%u,\"max_len\":%u,"
		"\"image\":%" PRIu64 ",\"layouts\":\"%s\",\"seed\":%" PRIu64 ","
		"\"stop_every\":%" PRIu64 ",\"kill_every\":%" PRIu64
		",\"phase\":%" PRIu64 ",",
		S.c.nq, S.c.depth, S.c.num, S.c.max_len, S.c.img_size,
		S.c.layouts == 3 ? "split,packed" : S.c.layouts == 2 ? "packed" : "split",
		S.c.seed, S.c.stop_every, S.c.kill_every, S.c.phase);
	fprintf(f, "\"requests\":%" PRIu64 ",\"reads\":%" PRIu64 ",\"writes\":%"
		PRIu64 ",\"flushes\":%" PRIu64 ",\"discards\":%" PRIu64
		",\"write_zeroes\":%" PRIu64 ",\"bytes_read\":%" PRIu64
		",\"bytes_written\":%" PRIu64 ",", t->requests, t->reads,
		t->writes, t->flushes, t->discards, t->write_zeroes,
		t->bytes_read, t->bytes_written);
	fprintf(f, "\"stops\":%" PRIu64 ",\"stops_busy\":%" PRIu64
		",\"stop_retries\":%" PRIu64 ",\"kills\":%" PRIu64
		",\"reconnects\":%" PRIu64 ",\"reposted\":%" PRIu64
		",\"max_pause_ms\":%.1f,\"resets\":%" PRIu64 ",\"phases\":%" PRIu64
		",\"inspections\":%" PRIu64 ",\"leaks\":%" PRIu64 ",",
		t->stops, t->stops_busy, t->stop_retries, t->kills, t->reconnects,
		t->reposted, t->max_pause_ns / 1e6, t->resets, t->phases,
		t->inspections, t->leaks);
	fprintf(f, "\"lost\":%" PRIu64 ",\"read_mismatches\":%" PRIu64
		",\"image_mismatches\":%" PRIu64 ",\"bad_status\":%" PRIu64
		",\"errors\":%" PRIu64 ",\"first_error\":", t->lost,
		t->read_mismatches, t->image_mismatches, t->bad_status, t->errors);
	json_str(f, S.first_error);
	fprintf(f, ",\"seconds\":%.1f,\"requests_per_s\":%.0f}\n", s,
		s > 0 ? t->requests / s : 0.0);
	fclose(f);
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: soak [options]\n"
"  --requests N     requests in all (default 10000000)\n"
"  --phase N        requests per phase; a device reset between phases\n"
"                   (default: a tenth of --requests)\n"
"  --stop-every N   a queue stop and restart every N requests (50000; 0: none)\n"
"  --kill-every N   a daemon kill, restart and reconnect every N requests\n"
"                   (500000; 0: none)\n"
"  --queues N       virtqueues (2)     --depth N   requests in flight per queue (32)\n"
"  --ring N         ring entries (256) --max-len B largest request (131072)\n"
"  --image-size B   disk image bytes (134217728)\n"
"  --layout L       guest rings: split, packed or both, in turn (both)\n"
"  --loop L         relay loop: uring, epoll or busy (uring)\n"
"  --seed N         workload seed (default: from the clock)\n"
"  --timeout-ms N   the guest gives up after N ms with no completion (30000)\n"
"  --progress S     a progress line every S seconds (5)\n"
"  --rev R          the revision named in the summary\n"
"  --json FILE      the summary as one JSON object, too\n"
"  --log FILE       the adapter's and the daemon's log lines (default:\n"
"                   adapter errors on stderr)\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno || end == s || *end || *s == '-' ? -1 : 0;
}

static int parse(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "requests", 1, 0, 'n' }, { "phase", 1, 0, 'p' },
		{ "stop-every", 1, 0, 's' }, { "kill-every", 1, 0, 'k' },
		{ "queues", 1, 0, 'q' }, { "depth", 1, 0, 'd' },
		{ "ring", 1, 0, 'r' }, { "max-len", 1, 0, 'm' },
		{ "image-size", 1, 0, 'i' }, { "layout", 1, 0, 'l' },
		{ "loop", 1, 0, 'L' }, { "seed", 1, 0, 'S' },
		{ "timeout-ms", 1, 0, 't' }, { "progress", 1, 0, 'P' },
		{ "rev", 1, 0, 'R' }, { "json", 1, 0, 'j' }, { "log", 1, 0, 'g' },
		{ "help", 0, 0, 'h' }, { 0 }
	};
	struct cfg *c = &S.c;
	uint64_t v;
	int o;

	*c = (struct cfg){ .requests = 10000000, .stop_every = 50000,
			   .kill_every = 500000, .nq = 2, .depth = 32,
			   .num = 256, .max_len = 128 << 10,
			   .img_size = 128ull << 20, .layouts = 3,
			   .progress_s = 5, .timeout_ms = 30000,
			   .loop_mode = SVQISO_LOOP_URING, .rev = "unknown" };
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (o == 'h') {
			usage(stdout);
			exit(0);
		}
		if (o == '?')
			return -1;
		if (o == 'l') {
			if (!strcmp(optarg, "split"))
				c->layouts = 1;
			else if (!strcmp(optarg, "packed"))
				c->layouts = 2;
			else if (!strcmp(optarg, "both"))
				c->layouts = 3;
			else
				return -1;
			continue;
		}
		if (o == 'L') {
			if (!strcmp(optarg, "uring"))
				c->loop_mode = SVQISO_LOOP_URING;
			else if (!strcmp(optarg, "epoll"))
				c->loop_mode = SVQISO_LOOP_EPOLL;
			else if (!strcmp(optarg, "busy"))
				c->loop_mode = SVQISO_LOOP_BUSY_POLL;
			else
				return -1;
			continue;
		}
		if (o == 'R' || o == 'j' || o == 'g') {
			*(o == 'R' ? &c->rev : o == 'j' ? &c->json : &c->log) = optarg;
			continue;
		}
		if (parse_u64(optarg, &v))
			return -1;
		switch (o) {
		case 'n':
			c->requests = v;
			break;
		case 'p':
			c->phase = v;
			break;
		case 's':
			c->stop_every = v;
			break;
		case 'k':
			c->kill_every = v;
			break;
		case 'q':
			if (v < 1 || v > MAXQ)
				return -1;
			c->nq = (unsigned int)v;
			break;
		case 'd':
			if (v < 1 || v > 1024)
				return -1;
			c->depth = (unsigned int)v;
			break;
		case 'r':
			if (v < 2 || v > 32768)
				return -1;
			c->num = (unsigned int)v;
			break;
		case 'm':
			if (v < 512 || v > (4u << 20) || v % 512)
				return -1;
			c->max_len = (uint32_t)v;
			break;
		case 'i':
			if (v < (1u << 20) || v % 512)
				return -1;
			c->img_size = v;
			break;
		case 'S':
			c->seed = v;
			break;
		case 't':
			if (!v || v > 3600000)
				return -1;
			c->timeout_ms = (unsigned int)v;
			break;
		case 'P':
			if (!v || v > 86400)
				return -1;
			c->progress_s = (unsigned int)v;
			break;
		default:
			return -1;
		}
	}
	if (optind != argc || !c->requests || c->max_len > c->img_size)
		return -1;
	if (!c->phase)
		c->phase = c->requests / 10 ? c->requests / 10 : c->requests;
	if (!c->seed)
		c->seed = now_ns() ^ ((uint64_t)getpid() << 32);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t next_stop, next_kill, next_progress, last_done = 0, last_t;
	uint64_t gsize, nphases, i, elapsed;
	int rc;

	if (parse(argc, argv)) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!qsd_on_path(QSD_BIN)) {
		printf("soak: skipped: " QSD_BIN " is not on PATH\n");
		return 77;
	}
	rng_state = S.c.seed ^ 0x5ea4ull;
	if (S.c.log) {
		S.logf = fopen(S.c.log, "we");
		if (!S.logf) {
			fprintf(stderr, "soak: %s: %s\n", S.c.log, strerror(errno));
			return 2;
		}
		setvbuf(S.logf, NULL, _IOLBF, 0);
	}
	S.t0 = now_ns();
	S.dcfg = (struct qsd_cfg){ .img_size = S.c.img_size, .fill = fill_pattern,
				   .num_queues = S.c.nq, .discard = true,
				   .out_fd = S.logf ? fileno(S.logf) : 0 };
	if (qsd_setup(&S.d, &S.dcfg)) {
		fprintf(stderr, "soak: qemu-storage-daemon: %s\n", S.d.err);
		qsd_teardown(&S.d);
		return 1;
	}
	/* Restarts find the image there: no fill. */
	S.dcfg.fill = NULL;
	printf("soak: %" PRIu64 " requests on %u queues, image %s, daemon pid %d\n",
	       S.c.requests, S.c.nq, S.d.img, (int)S.d.pid);
	S.img_fd = open(S.d.img, O_RDONLY | O_CLOEXEC);
	/* Guest RAM: the workload's buffers and the rings, in two regions. */
	gsize = (uint64_t)S.c.nq * S.c.depth * S.c.max_len + (16ull << 20);
	gsize = (gsize + (2 << 20) - 1) & ~((2ull << 20) - 1);
	S.gm = gmem_new(GUEST_GPA, gsize, 2);
	if (S.img_fd < 0 || !S.gm || fstat(gmem_fd(S.gm), &S.guest_st)) {
		fail("setting up: %s", strerror(errno));
		goto out;
	}
	S.gm_top = gmem_alloc_top(S.gm);
	if (adapter_open())
		goto out;

	nphases = (S.c.requests + S.c.phase - 1) / S.c.phase;
	next_stop = S.c.stop_every;
	next_kill = S.c.kill_every;
	next_progress = S.t0 + S.c.progress_s * 1000000000ull;
	last_t = S.t0;
	for (i = 0; i < nphases && !S.t.errors; i++) {
		uint64_t n = S.c.requests - S.done_before;

		run_phase(i, n < S.c.phase ? n : S.c.phase, &next_stop,
			  &next_kill, &next_progress, &last_done, &last_t);
	}
out:
	elapsed = now_ns() - S.t0;
	if (__atomic_load_n(&S.hangups, __ATOMIC_ACQUIRE) != S.t.kills)
		fail("%u hang-ups reported for %" PRIu64 " kills",
		     __atomic_load_n(&S.hangups, __ATOMIC_ACQUIRE), S.t.kills);
	blkwork_free(S.w);
	svqiso_vu_free(S.vu);
	for (i = 0; i < S.c.nq; i++)
		blkq_free(S.q[i]);
	gmem_free(S.gm);
	if (S.img_fd >= 0)
		close(S.img_fd);
	qsd_teardown(&S.d);
	report(elapsed);
	if (S.logf)
		fclose(S.logf);
	rc = S.t.errors || S.t.lost || S.t.read_mismatches ||
	     S.t.image_mismatches || S.t.leaks || S.t.requests != S.c.requests;
	return rc;
}
