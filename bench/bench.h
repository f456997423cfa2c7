/* SPDX-License-Identifier: MIT */
/*
 * Shared by the benchmark programs: clocks, medians, the machine line, JSON
 * lines and markdown output, a syscall counter and CPU pinning.
 *
 * Every benchmark program takes --out DIR (default bench/results) and
 * --quick (a brief run that only shows the program works, for CI). It
 * writes DIR/<name>.jsonl, one JSON object per figure, each naming the
 * machine, compiler, build type and git revision; DIR/<name>.md, its
 * section of the summary; and any DIR/<name>-*.dat tables for plots.
 */
#ifndef SVQ_BENCH_H
#define SVQ_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct bench {
	const char *name;	/* e.g. "copy" */
	const char *out_dir;
	bool quick;
	FILE *jsonl;
	FILE *md;
	char machine[512];	/* JSON members naming the machine, no braces */
	char machine_md[512];	/* the same for a markdown line */
};

/*
 * bench_init() - parse the common options (--out DIR, --quick; others are
 * left in argv for the program, which gets the new argc), create DIR and
 * check the output files can be written. Each is truncated on its first
 * write, so a run that ends in its own option parsing leaves them alone.
 * Return: 0, or -errno after printing why.
 */
int bench_init(struct bench *b, const char *name, int *argc, char **argv);
void bench_fini(struct bench *b);

/* Open DIR/<name>-<what>.dat for writing; NULL after printing why. */
FILE *bench_dat(struct bench *b, const char *what);

/*
 * bench_json() - one figure: a JSON object with the machine members and
 * @fmt's members (printf-style, without braces), as a line of <name>.jsonl.
 */
void bench_json(struct bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* bench_md() - printf to <name>.md. */
void bench_md(struct bench *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

uint64_t bench_now_ns(void);

/* Median of @n values (sorts @v in place). */
double bench_median(double *v, unsigned int n);

/* Pin the calling thread to CPU @cpu modulo the CPUs online. */
int bench_pin(int cpu);
int bench_ncpus(void);

/* The @n-th CPU (from 0) the calling thread may run on; -ENOENT past them. */
int bench_allowed_cpu(unsigned int n);

/* How many CPUs the calling thread may run on (at least 1). */
int bench_allowed_cpus(void);

/*
 * bench_xcpu_rtt_ns() - the round trip of one cache line between the CPU
 * the caller is pinned to and CPU @other, in ns (the median of a few
 * batches): a thread on @other answers each store with its own. A virtual
 * machine's host may place two CPUs on hyperthreads of one core or on
 * cores that share no cache, and move them while a program runs; every
 * figure that moves data between them moves with this. NAN on an error.
 */
double bench_xcpu_rtt_ns(int other);

/*
 * CPU time at one instant; two samples bracket an interval, and their
 * differences are what each party used in it. Times are the kernel's
 * scheduler run time in ns, through the CPU-time clocks: a process clock
 * covers every thread, including threads that exited since the process
 * began, so threads that come and go within the interval are counted
 * exactly (summing /proc/PID/task/x/schedstat would lose the ones that
 * exit, and /proc/PID/schedstat is the main thread's alone). A clock that
 * cannot be read falls back to getrusage() or /proc/PID/stat (utime plus
 * stime), which have tick resolution: @ticks says so.
 */
struct bench_cpu {
	uint64_t wall_ns;	/* CLOCK_MONOTONIC */
	uint64_t thread_ns;	/* the calling thread */
	uint64_t self_ns;	/* every thread of this process */
	uint64_t pid_ns;	/* every thread of the process asked for */
	uint64_t pid2_ns;	/* the same for a second one (0 if none) */
	uint64_t idle, total;	/* /proc/stat over all online CPUs: idle plus
				 * iowait, and all time (USER_HZ ticks) */
	bool ticks;		/* a time above came from a fallback */
};

/*
 * bench_cpu_sample() - read the CPU time of the machine, of process @pid,
 * of this process and of the calling thread, in that order, so that the
 * slow reads of files fall outside this thread's interval at both ends.
 * Return: 0, or -errno if some figure could not be read at all.
 */
int bench_cpu_sample(struct bench_cpu *s, int pid);

/*
 * bench_cpu_sample2() - the same, with a second process @pid2 (read right
 * after @pid; none if @pid2 <= 0) into pid2_ns.
 */
int bench_cpu_sample2(struct bench_cpu *s, int pid, int pid2);

/* Pin thread @tid (0: the caller) to CPU @cpu alone: 0 or -errno. */
int bench_pin_thread(int tid, int cpu);

/*
 * Pin every thread of process @pid to CPU @cpu alone: 0 or -errno. Threads
 * it makes later inherit the CPU from the thread that makes them.
 */
int bench_pin_process(int pid, int cpu);

/*
 * Syscall counter: every system call entered by this process's threads
 * (including ones created later), through the raw_syscalls:sys_enter
 * tracepoint. Unavailable without tracefs access or perf permissions:
 * bench_sys_open() then returns a negative errno and reads give -1.
 */
int bench_sys_open(void);
int64_t bench_sys_read(int fd);

/*
 * bench_sys_open_pid() - the same counter for the threads of another
 * process @pid (and the ones it creates later); 0 is this process.
 */
int bench_sys_open_pid(int pid);

#endif /* SVQ_BENCH_H */
