/* SPDX-License-Identifier: MIT */
/* Shared by the benchmark programs; see bench.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <svqiso/svqiso.h>
#include "bench.h"

#ifndef BENCH_BUILDTYPE
#define BENCH_BUILDTYPE "unknown"
#endif

static void cpu_model(char *buf, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *v;

		if (strncmp(line, "model name", 10) || !(v = strchr(line, ':')))
			continue;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, "\n")] = 0;
		snprintf(buf, len, "%s", v);
		break;
	}
	fclose(f);
}

/* JSON string content: quotes, backslashes and controls dropped. */
static void json_clean(char *s)
{
	char *d = s;

	for (; *s; s++)
		if (*s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
			*d++ = *s;
	*d = 0;
}

static int mkdir_p(const char *path)
{
	char buf[512];
	size_t i;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (i = 1; buf[i]; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = 0;
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		buf[i] = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* @mode "we" truncates; "ae" only shows the file can be written. */
static FILE *open_mode(struct bench *b, const char *suffix, const char *mode)
{
	char path[768];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s%s", b->out_dir, b->name, suffix);
	f = fopen(path, mode);
	if (!f)
		fprintf(stderr, "%s: %s: %s\n", b->name, path, strerror(errno));
	return f;
}

static FILE *open_out(struct bench *b, const char *suffix)
{
	return open_mode(b, suffix, "we");
}

/*
 * The result file @*f, truncated on the first write to it: a run that ends
 * in its own option parsing (a usage error, --help) leaves the results of
 * an earlier run as they were.
 */
static FILE *out_file(struct bench *b, FILE **f, const char *suffix)
{
	if (!*f) {
		*f = open_out(b, suffix);
		if (!*f)
			exit(1);	/* writable at bench_init(): a race */
	}
	return *f;
}

int bench_init(struct bench *b, const char *name, int *argc, char **argv)
{
	const char *rev = getenv("BENCH_REV");
	char cpu[160], compiler[96], revbuf[64];
	int i, j, rc;

	memset(b, 0, sizeof(*b));
	b->name = name;
	b->out_dir = "bench/results";
	for (i = 1, j = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			b->quick = true;
		} else if (!strcmp(argv[i], "--out") && i + 1 < *argc) {
			b->out_dir = argv[++i];
		} else {
			argv[j++] = argv[i];
		}
	}
	*argc = j;
	argv[j] = NULL;

	rc = mkdir_p(b->out_dir);
	if (rc) {
		fprintf(stderr, "%s: %s: %s\n", name, b->out_dir, strerror(-rc));
		return rc;
	}
	/* Only shown writable here, not truncated: see out_file(). */
	b->jsonl = open_mode(b, ".jsonl", "ae");
	b->md = open_mode(b, ".md", "ae");
	rc = b->jsonl && b->md ? 0 : -EIO;
	bench_fini(b);
	if (rc)
		return rc;
	cpu_model(cpu, sizeof(cpu));
	snprintf(compiler, sizeof(compiler), "gcc %s", __VERSION__);
	snprintf(revbuf, sizeof(revbuf), "%s", rev && *rev ? rev : "unknown");
	json_clean(cpu);
	json_clean(compiler);
	json_clean(revbuf);
	snprintf(b->machine, sizeof(b->machine),
		 "\"machine\":{\"cpu\":\"%s\",\"cores\":%d,\"compiler\":\"%s\","
		 "\"build\":\"%s\",\"rev\":\"%s\",\"libsvqiso\":\"%s\"},"
		 "\"quick\":%s", cpu, bench_ncpus(), compiler, BENCH_BUILDTYPE,
		 revbuf, svqiso_version(), b->quick ? "true" : "false");
	snprintf(b->machine_md, sizeof(b->machine_md),
		 "%s, %d cores; %s, %s build; revision %s%s", cpu, bench_ncpus(),
		 compiler, BENCH_BUILDTYPE, revbuf, b->quick ? "; QUICK RUN" : "");
	return 0;
}

void bench_fini(struct bench *b)
{
	if (b->jsonl)
		fclose(b->jsonl);
	if (b->md)
		fclose(b->md);
	b->jsonl = b->md = NULL;
}

FILE *bench_dat(struct bench *b, const char *what)
{
	char suffix[128];

	snprintf(suffix, sizeof(suffix), "-%s.dat", what);
	return open_out(b, suffix);
}

/* Append printf-style @fmt to the result file @*f (see out_file()). */
static void out_vprintf(struct bench *b, FILE **f, const char *suffix,
			const char *fmt, va_list ap)
{
	FILE *o = out_file(b, f, suffix);

	vfprintf(o, fmt, ap);
	fflush(o);
}

static __attribute__((format(printf, 4, 5)))
void out_printf(struct bench *b, FILE **f, const char *suffix,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	out_vprintf(b, f, suffix, fmt, ap);
	va_end(ap);
}

void bench_json(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	out_printf(b, &b->jsonl, ".jsonl", "{\"bench\":\"%s\",%s,", b->name,
		   b->machine);
	va_start(ap, fmt);
	out_vprintf(b, &b->jsonl, ".jsonl", fmt, ap);
	va_end(ap);
	out_printf(b, &b->jsonl, ".jsonl", "}\n");
}

void bench_md(struct bench *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	out_vprintf(b, &b->md, ".md", fmt, ap);
	va_end(ap);
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(double *v, unsigned int n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int bench_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

int bench_pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu % bench_ncpus(), &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

int bench_allowed_cpu(unsigned int n)
{
	cpu_set_t set;
	int cpu;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set) && !n--)
			return cpu;
	return -ENOENT;
}

int bench_allowed_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return bench_ncpus();
	return CPU_COUNT(&set) > 0 ? CPU_COUNT(&set) : 1;
}

static uint64_t ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

static uint64_t tv_ns(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000000ull + (uint64_t)tv->tv_usec * 1000;
}

/* The first line of /proc/stat: all online CPUs together. */
static int machine_ticks(uint64_t *idle, uint64_t *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "re");
	int n;

	if (!f)
		return -errno;
	/* user nice system idle iowait irq softirq steal; guest time is
	 * already in user and nice, so the fields after steal are left out. */
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 4)
		return -EIO;
	*idle = v[3] + v[4];
	*total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	return 0;
}

/* Fallback: utime plus stime of every thread of @pid, live or exited. */
static int pid_ticks_ns(int pid, uint64_t *ns)
{
	unsigned long long ut, st;
	char path[64], buf[1024], *p;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields 14 and 15; the command name before them may hold spaces. */
	p = strrchr(buf, ')');
	if (!p || hz <= 0 ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return -EIO;
	*ns = (uint64_t)(ut + st) * (1000000000ull / (uint64_t)hz);
	return 0;
}

/* This process's or thread's CPU time: its clock, else getrusage(@who). */
static int own_ns(clockid_t clk, int who, uint64_t *ns, bool *ticks)
{
	struct timespec ts;
	struct rusage ru;

	if (!clock_gettime(clk, &ts)) {
		*ns = ts_ns(&ts);
		return 0;
	}
	if (getrusage(who, &ru))
		return -errno;
	*ns = tv_ns(&ru.ru_utime) + tv_ns(&ru.ru_stime);
	*ticks = true;
	return 0;
}

/* Every thread of process @pid: its CPU-time clock, else its ticks. */
static int pid_ns(int pid, uint64_t *ns, bool *ticks)
{
	struct timespec ts;
	clockid_t clk;

	if (!clock_getcpuclockid(pid, &clk) && !clock_gettime(clk, &ts)) {
		*ns = ts_ns(&ts);
		return 0;
	}
	*ticks = true;
	return pid_ticks_ns(pid, ns);
}

int bench_cpu_sample(struct bench_cpu *s, int pid)
{
	return bench_cpu_sample2(s, pid, 0);
}

int bench_cpu_sample2(struct bench_cpu *s, int pid, int pid2)
{
	int rc;

	memset(s, 0, sizeof(*s));
	rc = machine_ticks(&s->idle, &s->total);
	if (rc)
		return rc;
	rc = pid_ns(pid, &s->pid_ns, &s->ticks);
	if (!rc && pid2 > 0)
		rc = pid_ns(pid2, &s->pid2_ns, &s->ticks);
	if (rc)
		return rc;
	rc = own_ns(CLOCK_PROCESS_CPUTIME_ID, RUSAGE_SELF, &s->self_ns, &s->ticks);
	if (!rc)
		rc = own_ns(CLOCK_THREAD_CPUTIME_ID, RUSAGE_THREAD, &s->thread_ns,
			    &s->ticks);
	s->wall_ns = bench_now_ns();
	return rc;
}

int bench_pin_thread(int tid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(tid, sizeof(set), &set) ? -errno : 0;
}

int bench_pin_process(int pid, int cpu)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int rc = 0, err;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while (!rc && (d = readdir(dir))) {
		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		err = bench_pin_thread(atoi(d->d_name), cpu);
		if (err != -ESRCH)	/* else it exited meanwhile */
			rc = err;
	}
	closedir(dir);
	return rc;
}

static int tracepoint_id(const char *event)
{
	static const char *const roots[] = { "/sys/kernel/tracing/events",
					     "/sys/kernel/debug/tracing/events" };
	char path[256], buf[32];
	unsigned int i;

	for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s/id", roots[i], event);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			fclose(f);
			return atoi(buf);
		}
		fclose(f);
	}
	return -ENOENT;
}

int bench_sys_open(void)
{
	return bench_sys_open_pid(0);
}

int bench_sys_open_pid(int pid)
{
	struct perf_event_attr a = {
		.type = PERF_TYPE_TRACEPOINT,
		.size = sizeof(a),
		.inherit = 1,
		.exclude_kernel = 0,
	};
	int id = tracepoint_id("raw_syscalls/sys_enter");
	long fd;

	if (id < 0)
		return id;
	a.config = (uint64_t)id;
	fd = syscall(SYS_perf_event_open, &a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
	return fd < 0 ? -errno : (int)fd;
}

int64_t bench_sys_read(int fd)
{
	uint64_t v;

	if (fd < 0 || read(fd, &v, sizeof(v)) != sizeof(v))
		return -1;
	return (int64_t)v;
}

/* ---- Round trip of a cache line between two CPUs ---- */

struct pingpong {
	uint32_t ball;
	uint32_t rounds;
	int cpu;
};

static inline void pp_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void *pong(void *arg)
{
	struct pingpong *p = arg;
	uint32_t i;

	bench_pin_thread(0, p->cpu);
	for (i = 1; i <= p->rounds; i++) {
		while (__atomic_load_n(&p->ball, __ATOMIC_ACQUIRE) != 2 * i - 1)
			pp_relax();
		__atomic_store_n(&p->ball, 2 * i, __ATOMIC_RELEASE);
	}
	return NULL;
}

double bench_xcpu_rtt_ns(int other)
{
	static struct pingpong p __attribute__((aligned(64)));
	enum { WARM = 1000, BATCH = 500, BATCHES = 5 };
	double t[BATCHES];
	uint64_t t0 = 0;
	pthread_t th;
	uint32_t i;

	p.ball = 0;
	p.rounds = WARM + BATCH * BATCHES;
	p.cpu = other;
	if (pthread_create(&th, NULL, pong, &p))
		return NAN;
	/* The first rounds wait for the thread to start and settle. */
	for (i = 1; i <= p.rounds; i++) {
		if (i > WARM && (i - WARM - 1) % BATCH == 0) {
			uint64_t now = bench_now_ns();

			if (i > WARM + 1)
				t[(i - WARM - 1) / BATCH - 1] =
					(double)(now - t0) / BATCH;
			t0 = now;
		}
		__atomic_store_n(&p.ball, 2 * i - 1, __ATOMIC_RELEASE);
		while (__atomic_load_n(&p.ball, __ATOMIC_ACQUIRE) != 2 * i)
			pp_relax();
	}
	t[BATCHES - 1] = (double)(bench_now_ns() - t0) / BATCH;
	pthread_join(th, NULL);
	return bench_median(t, BATCHES);
}
