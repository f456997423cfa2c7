/* SPDX-License-Identifier: MIT */
/*
 * Event loop (lib/loop.c, lib/uring.c) without traffic: opts, mode selection
 * and the fallback when io_uring is refused, queue registration, stop, and
 * the hang-up watch.
 * tests/integration/test_relay.c relays requests through real svqs.
 *
 * Refusal is simulated with a seccomp filter that fails io_uring_setup(),
 * installed in a child process so no other test is affected.
 */
#define _GNU_SOURCE	/* POLLRDHUP */
#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <svqiso/loop.h>
#include "loop_priv.h"

/* Linked with -Wl,--wrap=calloc: fail the Nth calloc() from now (1 = next). */
static unsigned int calloc_fail_in;

void *__real_calloc(size_t nmemb, size_t size);
void *__wrap_calloc(size_t nmemb, size_t size);

void *__wrap_calloc(size_t nmemb, size_t size)
{
	if (calloc_fail_in && --calloc_fail_in == 0)
		return NULL;
	return __real_calloc(nmemb, size);
}

/* Stand-ins: registration never dereferences the svq. */
static char fake_svq[8];
#define FAKE_SVQ(i) ((struct svqiso_svq *)&fake_svq[i])

static int logs_info, logs_err;
static char last_log[256];

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level == SVQISO_LOG_INFO)
		logs_info++;
	if (level <= SVQISO_LOG_ERR)
		logs_err++;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static int efd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	return fd;
}

#ifdef SVQ_HAVE_URING	/* the library's build define, passed to tests too */
/* Whether the kernel lets this process set up an io_uring at all. */
static bool kernel_has_uring(void)
{
	struct { uint32_t w[30]; } params = { { 0 } };	/* io_uring_params */
	long fd = syscall(__NR_io_uring_setup, 4, &params);

	if (fd < 0)
		return false;
	close((int)fd);
	return true;
}
#endif

/* Whether explicit io_uring must work: built with it and not refused. */
static bool uring_expected(void)
{
#ifdef SVQ_HAVE_URING
	return kernel_has_uring();
#else
	return false;
#endif
}

static struct svqiso_loop *loop_new_mode(uint8_t mode, uint32_t max_queues)
{
	SVQISO_OPTS(svqiso_loop_opts, o, .mode = mode, .max_queues = max_queues,
		    .log = log_cb);
	struct svqiso_loop *loop = NULL;

	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	ck_assert_ptr_nonnull(loop);
	return loop;
}

/* Modes a test loops over: _i = 0..2. */
static const uint8_t modes[] = {
	SVQISO_LOOP_URING, SVQISO_LOOP_EPOLL, SVQISO_LOOP_BUSY_POLL,
};

static struct svqiso_loop *loop_for_test(int i, uint32_t max_queues)
{
	if (modes[i] == SVQISO_LOOP_URING && !uring_expected())
		return loop_new_mode(SVQISO_LOOP_EPOLL, max_queues);
	return loop_new_mode(modes[i], max_queues);
}

/* ---- opts and modes ---- */

START_TEST(test_new_null_opts_auto)
{
	struct svqiso_loop *loop = NULL;

	ck_assert_int_eq(svqiso_loop_new(NULL, &loop), 0);
	/* AUTO never stays AUTO: io_uring where it is allowed, else epoll. */
	ck_assert_int_eq(svqiso_loop_mode(loop), uring_expected() ? SVQISO_LOOP_URING :
			 SVQISO_LOOP_EPOLL);
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_new_each_mode_kept)
{
	SVQISO_OPTS(svqiso_loop_opts, o, .mode = modes[_i]);
	struct svqiso_loop *loop = NULL;

	if (modes[_i] == SVQISO_LOOP_URING && !uring_expected()) {
		/* Built without io_uring: -ENOSYS; else the kernel's errno. */
		ck_assert_int_lt(svqiso_loop_new(&o, &loop), 0);
		ck_assert_ptr_null(loop);
		return;
	}
	loop = loop_new_mode(modes[_i], 0);
	ck_assert_int_eq(svqiso_loop_mode(loop), modes[_i]);
	ck_assert_uint_eq(loop->max_queues, 64);
	svqiso_loop_free(loop);
}
END_TEST

static void hangup_cb(void *ctx)
{
	(void)ctx;
}

/* Refused with -EINVAL, and the log callback said @why: one error line. */
#define REFUSED(call, why) do {						\
	int errs_ = logs_err;						\
	last_log[0] = 0;						\
	ck_assert_int_eq((call), -EINVAL);				\
	ck_assert_int_eq(logs_err, errs_ + 1);				\
	ck_assert_msg(strstr(last_log, (why)), "logged \"%s\", not \"%s\"", \
		      last_log, (why));					\
} while (0)

START_TEST(test_new_bad_opts_einval)
{
	struct {
		struct svqiso_loop_opts o;
		uint64_t extra;
	} big;
	struct svqiso_loop *loop = NULL;
	SVQISO_OPTS(svqiso_loop_opts, o, .mode = 4, .log = log_cb);

	REFUSED(svqiso_loop_new(&o, &loop), "mode 4 is no loop mode");
	o.mode = 0xff;
	REFUSED(svqiso_loop_new(&o, &loop), "mode 255");
	o.mode = SVQISO_LOOP_EPOLL;
	o.max_queues = 4097;
	REFUSED(svqiso_loop_new(&o, &loop), "max_queues 4097 is over 4096");
	o.max_queues = 0;
	o.hangup = hangup_cb;
	o.hangup_fd = -1;
	REFUSED(svqiso_loop_new(&o, &loop), "hangup_fd -1 cannot be watched");
	o.hangup = NULL;
	o.hangup_fd = 0;
	o.sz = 4;	/* too short to hold the log callback: silent */
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), -EINVAL);
	o.sz = sizeof(o);
	ck_assert_int_eq(svqiso_loop_new(&o, NULL), -EINVAL);
	/* A newer caller's field we do not know must be zero. */
	memset(&big, 0, sizeof(big));
	big.o.sz = sizeof(big);
	big.o.mode = SVQISO_LOOP_EPOLL;
	big.o.log = log_cb;
	big.extra = 1;
	REFUSED(svqiso_loop_new(&big.o, &loop), "struct svqiso_loop_opts: byte");
	ck_assert_ptr_nonnull(strstr(last_log, "a newer field"));
	ck_assert_ptr_null(loop);
	big.extra = 0;
	ck_assert_int_eq(svqiso_loop_new(&big.o, &loop), 0);
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_new_short_opts_defaults)
{
	/* A caller that knows only sz and mode. */
	struct svqiso_loop_opts o = { .sz = offsetof(struct svqiso_loop_opts, max_queues),
				      .mode = SVQISO_LOOP_EPOLL,
				      .max_queues = 3 };	/* not covered by sz */
	struct svqiso_loop *loop = NULL;

	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	ck_assert_int_eq(svqiso_loop_mode(loop), SVQISO_LOOP_EPOLL);
	ck_assert_uint_eq(loop->max_queues, 64);
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_new_spin_ns_kept_or_zero)
{
	/* Opts from before spin_ns: a value past sz is not read. */
	struct svqiso_loop_opts o = { .sz = offsetof(struct svqiso_loop_opts, spin_ns),
				      .mode = SVQISO_LOOP_EPOLL,
				      .spin_ns = 5000 };
	struct svqiso_loop *loop = NULL;

	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	ck_assert_uint_eq(loop->spin.max_ns, 0);
	svqiso_loop_free(loop);
	o.sz = sizeof(o);
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	ck_assert_uint_eq(loop->spin.max_ns, 5000);
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_new_calloc_fails_enomem)
{
	SVQISO_OPTS(svqiso_loop_opts, o, .mode = modes[_i]);
	struct svqiso_loop *loop = NULL;
	unsigned int n;
	int ret = -ENOMEM;

	if (modes[_i] == SVQISO_LOOP_URING && !uring_expected())
		return;
	/* Fail each allocation in turn until new() needs no more. */
	for (n = 1; n < 16; n++) {
		calloc_fail_in = n;
		ret = svqiso_loop_new(&o, &loop);
		calloc_fail_in = 0;
		if (!ret)
			break;
		ck_assert_int_eq(ret, -ENOMEM);
		ck_assert_ptr_null(loop);
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_uint_gt(n, 3);	/* the loop, its queue table, touched[] */
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_mode_null_einval)
{
	ck_assert_int_eq(svqiso_loop_mode(NULL), -EINVAL);
	ck_assert_int_eq(svqiso_loop_run(NULL), -EINVAL);
	svqiso_loop_free(NULL);
	svqiso_loop_stop(NULL);
}
END_TEST

/* ---- io_uring refused ---- */

/* Fail io_uring_setup() with @err in this process from now on. */
static int refuse_uring(int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = SVQ_ARRAY_SIZE(f), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		return -errno;
	return 0;
}

/* In a child with io_uring refused by @err: explicit URING fails with it,
 * AUTO falls back to epoll, logs it at INFO, and works. Exit 0 or a step. */
static int refused_child(int err)
{
	SVQISO_OPTS(svqiso_loop_opts, o, .mode = SVQISO_LOOP_URING, .log = log_cb);
	struct svqiso_loop *loop = NULL;

	if (refuse_uring(err))
		return 10;
	if (svqiso_loop_new(&o, &loop) != -err || loop)
		return 1;
	o.mode = SVQISO_LOOP_AUTO;
	logs_info = 0;
	if (svqiso_loop_new(&o, &loop) || !loop)
		return 2;
	if (svqiso_loop_mode(loop) != SVQISO_LOOP_EPOLL)
		return 3;
	if (logs_info != 1 || !strstr(last_log, "epoll"))
		return 4;
	svqiso_loop_stop(loop);
	if (svqiso_loop_run(loop))
		return 5;
	svqiso_loop_free(loop);
	return 0;
}

START_TEST(test_uring_refused_falls_back)
{
	static const int errs[] = { ENOSYS, EPERM };
	int status;
	pid_t pid;

	if (!uring_expected())
		return;	/* the fallback is what every loop here does */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(refused_child(errs[_i]));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_msg(WEXITSTATUS(status) == 0, "errno %d: step %d failed",
		      errs[_i], WEXITSTATUS(status));
}
END_TEST

/* ---- svqiso_loop_add ---- */

static struct svqiso_loop_queue queue(int i, int gk, int gc, int bk, int bc)
{
	SVQISO_OPTS(svqiso_loop_queue, q, .svq = FAKE_SVQ(i), .guest_kick_fd = gk,
		    .guest_call_fd = gc, .backend_kick_fd = bk,
		    .backend_call_fd = bc);
	return q;
}

START_TEST(test_add_bad_args_einval)
{
	struct svqiso_loop *loop = loop_for_test(_i, 0);
	int gk = efd(), gc = efd(), bk = efd(), bc = efd(), closed = efd();
	struct svqiso_loop_queue q;
	struct {
		struct svqiso_loop_queue q;
		uint64_t extra;
	} big;

	close(closed);
	ck_assert_int_eq(svqiso_loop_add(NULL, &(struct svqiso_loop_queue){ 0 }), -EINVAL);
	ck_assert_int_eq(svqiso_loop_add(loop, NULL), -EINVAL);
	q = queue(0, gk, gc, bk, bc);
	q.svq = NULL;
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(0, gk, gc, -1, bc);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(0, gk, gc, bk, -1);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(0, -2, gc, bk, bc);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(0, gk, -5, bk, bc);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(0, gk, gc, closed, bc);			/* not open */
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(0, closed, gc, bk, bc);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(0, bc, gc, bk, bc);				/* one fd, two readers */
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(0, gk, gc, bk, bc);
	q.sz = 4;
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	memset(&big, 0, sizeof(big));
	big.q = queue(0, gk, gc, bk, bc);
	big.q.sz = sizeof(big);
	big.extra = 7;
	ck_assert_int_eq(svqiso_loop_add(loop, &big.q), -EINVAL);
	ck_assert_uint_eq(loop->nr_queues, 0);
	big.extra = 0;
	ck_assert_int_eq(svqiso_loop_add(loop, &big.q), 0);
	ck_assert_uint_eq(loop->nr_queues, 1);

	svqiso_loop_free(loop);
	close(gk);
	close(gc);
	close(bk);
	close(bc);
}
END_TEST

START_TEST(test_add_element_and_shared_call_ok)
{
	struct svqiso_loop *loop = loop_for_test(_i, 0);
	int irq = efd(), bk = efd(), bc0 = efd(), bc1 = efd(), bc2 = efd(), gk = efd();
	struct svqiso_loop_queue q;

	/* Element mode: no guest kick fd; no guest call fd either. */
	q = queue(0, -1, -1, bk, bc0);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), 0);
	/* Written fds may be shared (one irqfd, one backend kick fd). */
	q = queue(1, gk, irq, bk, bc1);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), 0);
	q = queue(2, -1, irq, bk, bc2);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), 0);
	/* Read fds may not: the reader drains them. */
	q = queue(3, bc1, irq, bk, efd());
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(3, -1, irq, bk, gk);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	ck_assert_uint_eq(loop->nr_queues, 3);
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_add_duplicate_eexist_full_enospc)
{
	struct svqiso_loop *loop = loop_for_test(_i, 2);
	struct svqiso_loop_queue q;

	q = queue(0, efd(), efd(), efd(), efd());
	ck_assert_int_eq(svqiso_loop_add(loop, &q), 0);
	q = queue(0, efd(), efd(), efd(), efd());
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EEXIST);
	q = queue(1, efd(), efd(), efd(), efd());
	ck_assert_int_eq(svqiso_loop_add(loop, &q), 0);
	q = queue(2, efd(), efd(), efd(), efd());
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -ENOSPC);
	/* Already there beats full. */
	q = queue(1, efd(), efd(), efd(), efd());
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EEXIST);
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_add_epoll_unpollable_fd_einval)
{
	struct svqiso_loop *loop = loop_new_mode(SVQISO_LOOP_EPOLL, 0);
	FILE *f = tmpfile();
	struct svqiso_loop_queue q;

	ck_assert_ptr_nonnull(f);
	/* A regular file cannot be watched by epoll (EPERM). */
	q = queue(0, -1, -1, efd(), fileno(f));
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	ck_assert_uint_eq(loop->nr_queues, 0);
	q = queue(0, fileno(f), -1, efd(), efd());
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EINVAL);
	q = queue(0, -1, -1, efd(), efd());
	ck_assert_int_eq(svqiso_loop_add(loop, &q), 0);
	fclose(f);
	svqiso_loop_free(loop);
}
END_TEST

/* ---- run / stop ---- */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct runner {
	struct svqiso_loop *loop;
	pthread_t th;
	pid_t tid;
	int ret;
	double returned;
	bool done;			/* __atomic: run() returned */
};

static void *run_thread(void *arg)
{
	struct runner *r = arg;

	r->tid = (pid_t)syscall(SYS_gettid);
	r->ret = svqiso_loop_run(r->loop);
	r->returned = now();
	__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void start(struct runner *r, struct svqiso_loop *loop)
{
	r->loop = loop;
	r->ret = 1;
	r->done = false;
	ck_assert_int_eq(pthread_create(&r->th, NULL, run_thread, r), 0);
	/* Wait until run() is in. */
	while (!__atomic_load_n(&loop->running, __ATOMIC_ACQUIRE))
		usleep(100);
}

START_TEST(test_stop_before_run_returns_at_once)
{
	struct svqiso_loop *loop = loop_for_test(_i, 0);

	svqiso_loop_stop(loop);
	svqiso_loop_stop(loop);	/* twice is once */
	ck_assert_int_eq(svqiso_loop_run(loop), 0);
	/* The stop was consumed: the next run waits for a new one. */
	ck_assert(!__atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE));
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_stop_other_thread_returns_promptly)
{
	struct svqiso_loop *loop = loop_for_test(_i, 0);
	struct runner r;
	double t0;
	int round;

	for (round = 0; round < 3; round++) {
		start(&r, loop);
		usleep(20000);	/* let it sleep in the kernel */
		t0 = now();
		svqiso_loop_stop(loop);
		ck_assert_int_eq(pthread_join(r.th, NULL), 0);
		ck_assert_int_eq(r.ret, 0);
		ck_assert_msg(r.returned - t0 < 0.5, "run() took %.3f s to stop",
			      r.returned - t0);
	}
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_run_twice_ebusy_add_ebusy)
{
	struct svqiso_loop *loop = loop_for_test(_i, 0);
	struct svqiso_loop_queue q = queue(0, efd(), efd(), efd(), efd());
	struct runner r;

	start(&r, loop);
	ck_assert_int_eq(svqiso_loop_run(loop), -EBUSY);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), -EBUSY);
	svqiso_loop_stop(loop);
	ck_assert_int_eq(pthread_join(r.th, NULL), 0);
	ck_assert_int_eq(r.ret, 0);
	ck_assert_int_eq(svqiso_loop_add(loop, &q), 0);
	svqiso_loop_free(loop);
}
END_TEST

START_TEST(test_idle_loop_sleeps)
{
	struct svqiso_loop *loop = loop_for_test(_i, 0);
	struct runner r;

	if (svqiso_loop_mode(loop) == SVQISO_LOOP_BUSY_POLL) {
		svqiso_loop_free(loop);
		return;	/* spinning is the point there */
	}
	start(&r, loop);
	usleep(50000);
	/* Nothing to do: one wait, at most a spurious second one. */
	ck_assert_uint_le(__atomic_load_n(&loop->ctr.waits, __ATOMIC_RELAXED), 2);
	svqiso_loop_stop(loop);
	ck_assert_int_eq(pthread_join(r.th, NULL), 0);
	svqiso_loop_free(loop);
}
END_TEST

/* ---- the hang-up watch ---- */

static struct {
	unsigned int calls;
	pid_t tid;
	double at;
	struct svqiso_loop *loop;
	bool running;			/* run() was still running in the call */
} W;

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void on_hangup(void *ctx)
{
	ck_assert_ptr_eq(ctx, &W);
	W.tid = gettid_();
	W.at = now();
	W.running = __atomic_load_n(&W.loop->running, __ATOMIC_ACQUIRE);
	/* Allowed, and harmless: the loop is done anyway. */
	svqiso_loop_stop(W.loop);
	__atomic_add_fetch(&W.calls, 1, __ATOMIC_RELEASE);
}

static struct svqiso_loop *watch_loop(uint8_t mode, int fd, uint64_t spin_ns)
{
	SVQISO_OPTS(svqiso_loop_opts, o, .mode = mode, .log = log_cb,
		    .spin_ns = spin_ns, .hangup = on_hangup, .hangup_ctx = &W,
		    .hangup_fd = fd);
	struct svqiso_loop *loop = NULL;

	if (mode == SVQISO_LOOP_URING && !uring_expected())
		o.mode = SVQISO_LOOP_EPOLL;
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	memset(&W, 0, sizeof(W));
	W.loop = loop;
	return loop;
}

START_TEST(test_watch_bad_fd_einval)
{
	SVQISO_OPTS(svqiso_loop_opts, o, .mode = modes[_i], .hangup = on_hangup,
		    .hangup_ctx = &W);
	struct svqiso_loop *loop = NULL;
	int sv[2], p[2], closed = efd(), ev = efd();
	FILE *f = tmpfile();

	if (modes[_i] == SVQISO_LOOP_URING && !uring_expected())
		o.mode = SVQISO_LOOP_EPOLL;
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	close(closed);	/* last: no fd made after takes its number */
	o.hangup_fd = -1;
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), -EINVAL);
	o.hangup_fd = closed;
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), -EINVAL);
	o.hangup_fd = fileno(f);	/* a regular file never hangs up */
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), -EINVAL);
	o.hangup_fd = ev;		/* nor does an eventfd */
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), -EINVAL);
	ck_assert_ptr_null(loop);
	/* Opts from before the watch: a field past sz is not read. */
	o.sz = offsetof(struct svqiso_loop_opts, hangup_fd);
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	ck_assert_int_eq(loop->watch_fd, -1);
	svqiso_loop_free(loop);
	o.sz = sizeof(o);
	/* No callback, no watch: the fd is not looked at. */
	o.hangup = NULL;
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	ck_assert_int_eq(loop->watch_fd, -1);
	svqiso_loop_free(loop);
	o.hangup = on_hangup;
	o.hangup_fd = sv[0];
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	ck_assert_int_eq(loop->watch_fd, sv[0]);
	svqiso_loop_free(loop);
	o.hangup_fd = p[0];
	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	svqiso_loop_free(loop);
	fclose(f);
	close(ev);
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}
END_TEST

/*
 * How the peer goes: _i / 3 is the mode, _i % 3 the way: a socket's peer
 * closed, a socket's peer shut down for writing (POLLRDHUP alone), a pipe's
 * writer closed (POLLHUP). The loop sees it within a bound, calls the hook
 * once on its own thread and returns -ECONNRESET, and so does every later
 * run, at once and without another call.
 */
START_TEST(test_watch_hangup_ends_run)
{
	static const char *const how[] = { "close", "shutdown", "pipe" };
	uint8_t mode = modes[_i / 3];
	int fds[2], watched, peer;
	struct svqiso_loop *loop;
	struct runner r;
	double t0;

	if (_i % 3 == 2)
		ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	else
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
					    0, fds), 0);
	watched = fds[0];
	peer = fds[1];
	loop = watch_loop(mode, watched, 0);
	start(&r, loop);
	usleep(20000);	/* asleep in the kernel, or busy polling */
	ck_assert_uint_eq(__atomic_load_n(&W.calls, __ATOMIC_ACQUIRE), 0);
	t0 = now();
	if (_i % 3 == 1)
		ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
	else
		close(peer);
	while (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE) && now() - t0 < 2)
		usleep(1000);
	if (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE))
		svqiso_loop_stop(loop);	/* not seen: end it, and fail */
	ck_assert_int_eq(pthread_join(r.th, NULL), 0);
	ck_assert_int_eq(r.ret, -ECONNRESET);
	fprintf(stderr, "# %s, %s: run() returned %.1f ms after the hang-up\n",
		svqiso_loop_mode(loop) == SVQISO_LOOP_URING ? "io_uring" :
		svqiso_loop_mode(loop) == SVQISO_LOOP_EPOLL ? "epoll" : "busy-poll",
		how[_i % 3], (r.returned - t0) * 1e3);
	/* Busy polling looks every 100 ms; the others are woken. */
	ck_assert_msg(r.returned - t0 < 0.5, "run() took %.3f s", r.returned - t0);
	ck_assert_uint_eq(__atomic_load_n(&W.calls, __ATOMIC_ACQUIRE), 1);
	ck_assert_int_eq(W.tid, r.tid);
	ck_assert(W.running);
	ck_assert(W.at <= r.returned);
	/* Done for good: at once, and no second call. */
	ck_assert_int_eq(svqiso_loop_run(loop), -ECONNRESET);
	ck_assert_uint_eq(W.calls, 1);
	svqiso_loop_free(loop);
	close(watched);
	if (_i % 3 == 1)
		close(peer);
}
END_TEST

/*
 * The watch is not a reader: the peer's messages neither wake the loop nor
 * get consumed, a stop ends the run as before, and a hang-up between two
 * runs ends the next one.
 */
START_TEST(test_watch_ignores_messages)
{
	struct svqiso_loop *loop;
	struct runner r;
	char c = 0;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	loop = watch_loop(modes[_i], sv[0], 0);
	start(&r, loop);
	usleep(20000);
	ck_assert_int_eq(write(sv[1], "m", 1), 1);
	usleep(50000);
	if (svqiso_loop_mode(loop) != SVQISO_LOOP_BUSY_POLL)
		ck_assert_uint_le(__atomic_load_n(&loop->ctr.waits,
						  __ATOMIC_RELAXED), 2);
	svqiso_loop_stop(loop);
	ck_assert_int_eq(pthread_join(r.th, NULL), 0);
	ck_assert_int_eq(r.ret, 0);
	ck_assert_uint_eq(W.calls, 0);
	ck_assert_int_eq(recv(sv[0], &c, 1, MSG_DONTWAIT), 1);	/* still there */
	ck_assert_int_eq(c, 'm');

	close(sv[1]);
	ck_assert_int_eq(svqiso_loop_run(loop), -ECONNRESET);
	ck_assert_uint_eq(W.calls, 1);
	svqiso_loop_free(loop);
	close(sv[0]);
}
END_TEST

/* Where no wait sees it (spinning, busy polling): a poll() at most every
 * SVQ_LOOP_WATCH_POLL_NS. */
START_TEST(test_watch_poll_rate_limited)
{
	struct svqiso_loop *loop;
	uint64_t t = 5 * SVQ_LOOP_WATCH_POLL_NS;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	loop = watch_loop(SVQISO_LOOP_BUSY_POLL, sv[0], 0);
	svq_loop_watch_poll(loop, t);
	ck_assert(!loop->hung_up);
	ck_assert(svq_loop_watching(loop));
	close(sv[1]);
	svq_loop_watch_poll(loop, t + SVQ_LOOP_WATCH_POLL_NS - 1);
	ck_assert(!loop->hung_up);	/* too soon to look again */
	svq_loop_watch_poll(loop, t + SVQ_LOOP_WATCH_POLL_NS);
	ck_assert(loop->hung_up);
	ck_assert(!svq_loop_watching(loop));
	ck_assert_uint_eq(W.calls, 0);	/* run() makes the call */
	ck_assert_int_eq(svqiso_loop_run(loop), -ECONNRESET);
	ck_assert_uint_eq(W.calls, 1);
	svqiso_loop_free(loop);
	close(sv[0]);
}
END_TEST

/*
 * A wake-up's queues are serviced in the order they were added, whatever
 * order their eventfds fired in: a net device's receive refills reach the
 * backend before the frames its transmit queue sends that need them.
 */
START_TEST(test_touch_keeps_queue_order)
{
	static const uint32_t fired[] = { 5, 1, 3, 0, 1, 7, 4, 0, 6, 2, 5 };
	static const uint32_t want[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	struct svqiso_loop *loop = loop_new_mode(SVQISO_LOOP_EPOLL, 8);
	unsigned int k;

	ck_assert_ptr_nonnull(loop);
	for (k = 0; k < SVQ_ARRAY_SIZE(fired); k++)
		svq_loop_touch(loop, fired[k], k % 2 ? SVQ_LOOP_EV_CALL :
						       SVQ_LOOP_EV_KICK);
	ck_assert_uint_eq(loop->nr_touched, SVQ_ARRAY_SIZE(want));
	for (k = 0; k < SVQ_ARRAY_SIZE(want); k++) {
		ck_assert_uint_eq(loop->touched[k], want[k]);
		ck_assert(loop->q[want[k]].touched);
	}
	/* Events accumulate on a queue touched twice. */
	ck_assert_uint_eq(loop->q[1].events, SVQ_LOOP_EV_CALL | SVQ_LOOP_EV_KICK);
	ck_assert_uint_eq(loop->q[0].events, SVQ_LOOP_EV_CALL);
	ck_assert_uint_eq(loop->q[5].events, SVQ_LOOP_EV_KICK);
	svqiso_loop_free(loop);
}
END_TEST

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * The spin window adapts to how long the loop waited with requests in
 * flight: an event no window up to spin_ns would have caught halves it
 * (shut below the minimum), one that came within spin_ns widens it (from
 * shut, to the minimum), never past spin_ns. A window of a second keeps
 * the test's own delays out of the way.
 */
START_TEST(test_spin_window_adapts)
{
	SVQISO_OPTS(svqiso_loop_opts, o, .mode = SVQISO_LOOP_EPOLL,
		    .max_queues = 1, .spin_ns = 1000000000ull);
	struct svqiso_loop *loop = NULL;
	uint64_t w;
	unsigned int n;

	ck_assert_int_eq(svqiso_loop_new(&o, &loop), 0);
	ck_assert_uint_eq(loop->spin.cur_ns, 1000000000ull);
	/* Not idle with requests in flight: nothing to learn. */
	svq_loop_woken(loop);
	ck_assert_uint_eq(loop->spin.cur_ns, 1000000000ull);
	/* Nothing in flight: no spin, and nothing noted. */
	loop->spin.idle_at = 1;
	ck_assert(!svq_loop_should_spin(loop));
	ck_assert_uint_eq(loop->spin.idle_at, 0);

	/* Events 3 s after the loop went idle: halve until shut. */
	for (n = 0, w = 1000000000ull; w >= SVQ_SPIN_MIN_NS; n++) {
		loop->spin.idle_at = mono_ns() - 3000000000ull;
		svq_loop_woken(loop);
		w /= 2;
		ck_assert_uint_eq(loop->spin.cur_ns, w >= SVQ_SPIN_MIN_NS ? w : 0);
		ck_assert_uint_eq(loop->spin.idle_at, 0);
	}
	ck_assert_uint_eq(loop->spin.shrinks, n);
	/* Shut, an event late again: stays shut, nothing counted. */
	loop->spin.idle_at = mono_ns() - 3000000000ull;
	svq_loop_woken(loop);
	ck_assert_uint_eq(loop->spin.cur_ns, 0);
	ck_assert_uint_eq(loop->spin.shrinks, n);

	/* Events right after it went idle: open at the minimum, then double
	 * up to spin_ns and no further. */
	for (n = 0, w = SVQ_SPIN_MIN_NS; ; n++) {
		loop->spin.idle_at = mono_ns();
		svq_loop_woken(loop);
		ck_assert_uint_eq(loop->spin.cur_ns, w);
		if (w == 1000000000ull)
			break;
		w = 2 * w < 1000000000ull ? 2 * w : 1000000000ull;
	}
	ck_assert_uint_eq(loop->spin.grows, n + 1);
	svqiso_loop_free(loop);
}
END_TEST

/* Shut @s's window and make the waits before a probe come due: each
 * returns false and notes when it began. */
static void waits_before_probe(struct svq_spin *s)
{
	unsigned int i;

	for (i = 1; i < SVQ_SPIN_PROBE_EVERY; i++) {
		ck_assert_msg(!svq_spin_should(s, true), "wait %u spun", i);
		ck_assert(!s->probe);
		ck_assert_uint_ne(s->idle_at, 0);
		s->idle_at = 0;
	}
}

/* The window a probe that saw progress after @wait ns opens: twice the
 * wait, in doublings of SVQ_SPIN_MIN_NS, at most @max. */
static uint64_t covering(uint64_t wait, uint64_t max)
{
	uint64_t w = SVQ_SPIN_MIN_NS;

	while (w < 2 * wait && w < max)
		w *= 2;
	return w < max ? w : max;
}

/*
 * A shut window spins the whole ceiling once every SVQ_SPIN_PROBE_EVERY
 * waits with requests in flight: progress in that probe opens the window
 * to twice the wait the probe saw (in doublings of the minimum, at most
 * the ceiling); a probe that sees none runs the ceiling out and leaves the
 * window shut, measuring the wait from the probe's start. Nothing in
 * flight starts no probe; an open window, full or narrowed, needs none.
 */
START_TEST(test_spin_probe_reopens_window)
{
	const uint64_t max = 5000000ull;	/* 5 ms */
	const struct timespec ms = { .tv_nsec = 1000000 };
	struct svq_spin_round r;
	struct svq_spin s;
	uint64_t start, want;

	svq_spin_init(&s, max);
	/* Open, full or narrowed: every wait spins the window. */
	for (unsigned int i = 0; i < 4 * SVQ_SPIN_PROBE_EVERY; i++) {
		if (i == 2 * SVQ_SPIN_PROBE_EVERY)
			s.cur_ns = SVQ_SPIN_MIN_NS;
		ck_assert(svq_spin_should(&s, true));
		ck_assert(!s.probe);
		svq_spin_round_begin(&s, &r);
		ck_assert_uint_eq(r.window, s.cur_ns);
		ck_assert(!r.probe);
	}
	ck_assert_uint_eq(s.probes, 0);

	/* Shut: a probe is due at the SVQ_SPIN_PROBE_EVERY-th wait, and
	 * waits with nothing in flight do not count. */
	s.cur_ns = 0;
	ck_assert(!svq_spin_should(&s, false));
	waits_before_probe(&s);
	ck_assert(!svq_spin_should(&s, false));
	ck_assert(!s.probe);
	ck_assert(svq_spin_should(&s, true));
	ck_assert(s.probe);
	ck_assert_uint_eq(s.probes, 1);
	ck_assert_uint_eq(s.waits, 0);

	/* A probe that sees nothing: the ceiling runs out, the window stays
	 * shut, and the wait counts from the probe's start. */
	svq_spin_round_begin(&s, &r);
	ck_assert(!s.probe);
	ck_assert(r.probe);
	ck_assert_uint_eq(r.window, max);
	start = r.idle_since;
	while (svq_spin_round_pass(&s, &r, false, true))
		;
	ck_assert_uint_ge(r.now - start, max);
	ck_assert_uint_eq(s.idle_at, start);
	ck_assert_uint_eq(s.cur_ns, 0);
	ck_assert_uint_eq(s.reopened, 0);
	/* The event after it came 3 s late: still shut. */
	s.idle_at = mono_ns() - 3000000000ull;
	svq_spin_woken(&s);
	ck_assert_uint_eq(s.cur_ns, 0);

	/* The next probe sees progress after about 1 ms: the window opens
	 * to cover twice that. */
	waits_before_probe(&s);
	ck_assert(svq_spin_should(&s, true));
	ck_assert_uint_eq(s.probes, 2);
	svq_spin_round_begin(&s, &r);
	ck_assert_uint_eq(r.window, max);
	start = r.idle_since;
	ck_assert(svq_spin_round_pass(&s, &r, false, true));
	ck_assert_uint_eq(s.cur_ns, 0);
	nanosleep(&ms, NULL);
	ck_assert(svq_spin_round_pass(&s, &r, true, true));
	want = covering(r.now - start, max);
	ck_assert_uint_ge(want, 2 * 1000000ull);
	ck_assert_uint_eq(s.cur_ns, want);
	ck_assert_uint_eq(s.reopened, 1);
	ck_assert(!r.probe);
	/* Progress again in the same spin changes nothing. */
	ck_assert(svq_spin_round_pass(&s, &r, true, true));
	ck_assert_uint_eq(s.cur_ns, want);
	ck_assert_uint_eq(s.reopened, 1);

	/* Progress at once: the narrowest window that covers it. */
	s.cur_ns = 0;
	waits_before_probe(&s);
	ck_assert(svq_spin_should(&s, true));
	svq_spin_round_begin(&s, &r);
	start = r.idle_since;
	ck_assert(svq_spin_round_pass(&s, &r, true, true));
	want = covering(r.now - start, max);
	ck_assert_uint_lt(want, max);
	ck_assert_uint_eq(s.cur_ns, want);
	ck_assert_uint_eq(s.reopened, 2);
	ck_assert_uint_eq(s.probes, 3);
	/* Open again: the waits spin it, no probe. */
	ck_assert(svq_spin_should(&s, true));
	ck_assert(!s.probe);
}
END_TEST

/* A thread that keeps one CPU busy until told to stop. */
struct sharer {
	pthread_t thread;
	cpu_set_t cpu;
	bool stop;		/* __atomic */
};

static void *sharer_run(void *arg)
{
	struct sharer *sh = arg;

	ck_assert_int_eq(pthread_setaffinity_np(pthread_self(),
						sizeof(sh->cpu), &sh->cpu), 0);
	while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED))
		svq_cpu_relax();
	return NULL;
}

/* One idle pass of @r; whether it yielded, and whether that yield let
 * another thread run. */
static bool idle_pass(struct svq_spin *s, struct svq_spin_round *r,
		      bool *handoff)
{
	uint64_t handoffs = s->handoffs, gap = r->yield.gap;

	ck_assert(svq_spin_round_pass(s, r, false, true));
	*handoff = s->handoffs != handoffs;
	ck_assert_uint_le(s->handoffs, handoffs + 1);
	if (*handoff) {
		/* The next pass with nothing to do yields. */
		ck_assert(r->yielded);
		ck_assert_uint_eq(r->yield.gap, 0);
		ck_assert_uint_eq(s->shared, SVQ_SPIN_SHARED_YIELDS);
	} else if (r->yielded) {
		ck_assert_uint_eq(r->yield.gap, gap ? 2 * gap :
				  SVQ_SPIN_YIELD_NS);
	}
	return r->yielded;
}

/*
 * A spin whose CPU is shared: once one of its yields lets another thread
 * run, the next pass with nothing to do yields at once, and so does the
 * first after progress; the CPU counts as shared for SVQ_SPIN_SHARED_YIELDS
 * yields that come straight back, one less after each, and while it does
 * not, a yield that comes straight back puts the next one SVQ_SPIN_YIELD_NS
 * off, then twice as far each time. The test thread and a busy thread share one CPU,
 * then the busy thread stops. Other processes may share that CPU too, so
 * every check follows what each yield was.
 */
START_TEST(test_spin_yields_to_cpu_sharer)
{
	struct sharer sh = { .stop = false };
	struct svq_spin_round r;
	struct svq_spin s;
	unsigned int quick = 0;
	bool handoff, alone = false;
	uint64_t handoffs;
	uint32_t from;
	uint64_t end;
	cpu_set_t all;
	int cpu;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	for (cpu = 0; !CPU_ISSET(cpu, &all); cpu++)
		;
	CPU_ZERO(&sh.cpu);
	CPU_SET(cpu, &sh.cpu);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(sh.cpu), &sh.cpu), 0);
	svq_spin_init(&s, 10000000000ull);
	ck_assert_uint_eq(s.shared, 0);
	ck_assert_int_eq(pthread_create(&sh.thread, NULL, sharer_run, &sh), 0);

	/* Spin idle until a yield lets the busy thread run. */
	svq_spin_round_begin(&s, &r);
	end = mono_ns() + 2000000000ull;
	while (!s.handoffs && mono_ns() < end)
		idle_pass(&s, &r, &handoff);
	ck_assert_uint_eq(s.handoffs, 1);
	ck_assert_uint_eq(s.shared, SVQ_SPIN_SHARED_YIELDS);
	/* The next pass with nothing to do yields at once, and again after
	 * progress (whether the busy thread runs then is the scheduler's
	 * choice). */
	ck_assert(idle_pass(&s, &r, &handoff));
	ck_assert(svq_spin_round_pass(&s, &r, true, true));
	ck_assert(!r.yielded);
	ck_assert_uint_eq(r.yield.gap, 0);
	ck_assert(idle_pass(&s, &r, &handoff));

	__atomic_store_n(&sh.stop, true, __ATOMIC_RELAXED);
	ck_assert_int_eq(pthread_join(sh.thread, NULL), 0);

	/* Alone: yields that come straight back count the CPU shared for
	 * fewer yields each, then put the next one further off. Another
	 * process taking the CPU starts that over, so go on until a yield
	 * after progress waited (or 2 s). */
	from = s.shared;
	handoffs = s.handoffs;
	end = mono_ns() + 2000000000ull;
	while (!alone && mono_ns() < end) {
		uint32_t shared = s.shared;
		unsigned int passes = 1;
		uint64_t at;

		ck_assert(svq_spin_round_pass(&s, &r, true, true));
		at = r.now;
		while (!idle_pass(&s, &r, &handoff))
			passes++;
		if (handoff) {
			ck_assert_uint_eq(s.shared, SVQ_SPIN_SHARED_YIELDS);
			from = s.shared;
			quick = 0;
			continue;
		}
		quick++;
		if (shared) {
			/* The first pass with nothing to do yielded. */
			ck_assert_uint_eq(passes, 1);
			ck_assert_uint_eq(s.shared, shared - 1);
			continue;
		}
		/* Not shared: the first yield after progress waited. */
		ck_assert_uint_eq(s.shared, 0);
		ck_assert_uint_ge(mono_ns() - at, SVQ_SPIN_YIELD_NS);
		alone = true;
	}
	if (!alone) {
		/* Another process kept the CPU busy for the whole 2 s. */
		fprintf(stderr, "# the CPU stayed shared: %" PRIu64
			" hand-offs\n", s.handoffs - handoffs);
		ck_assert_uint_gt(s.handoffs, handoffs);
		return;
	}
	/* One yield per count left, then the one that waited. */
	ck_assert_uint_eq(quick, from + 1);
	ck_assert_uint_eq(s.shared, 0);
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc;

	tc = tcase_create("opts");
	tcase_add_test(tc, test_new_null_opts_auto);
	tcase_add_loop_test(tc, test_new_each_mode_kept, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_test(tc, test_new_bad_opts_einval);
	tcase_add_test(tc, test_new_short_opts_defaults);
	tcase_add_test(tc, test_new_spin_ns_kept_or_zero);
	tcase_add_loop_test(tc, test_new_calloc_fails_enomem, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_test(tc, test_mode_null_einval);
	tcase_add_test(tc, test_touch_keeps_queue_order);
	tcase_add_test(tc, test_spin_window_adapts);
	tcase_add_test(tc, test_spin_probe_reopens_window);
	suite_add_tcase(s, tc);

	tc = tcase_create("spin-yield");
	tcase_add_test(tc, test_spin_yields_to_cpu_sharer);
	suite_add_tcase(s, tc);

	tc = tcase_create("uring-refused");
	tcase_add_loop_test(tc, test_uring_refused_falls_back, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("add");
	tcase_add_loop_test(tc, test_add_bad_args_einval, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_loop_test(tc, test_add_element_and_shared_call_ok, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_loop_test(tc, test_add_duplicate_eexist_full_enospc, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_test(tc, test_add_epoll_unpollable_fd_einval);
	suite_add_tcase(s, tc);

	tc = tcase_create("stop");
	tcase_add_loop_test(tc, test_stop_before_run_returns_at_once, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_loop_test(tc, test_stop_other_thread_returns_promptly, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_loop_test(tc, test_run_twice_ebusy_add_ebusy, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_loop_test(tc, test_idle_loop_sleeps, 0, SVQ_ARRAY_SIZE(modes));
	suite_add_tcase(s, tc);

	tc = tcase_create("hangup-watch");
	tcase_add_loop_test(tc, test_watch_bad_fd_einval, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_loop_test(tc, test_watch_hangup_ends_run, 0, 3 * SVQ_ARRAY_SIZE(modes));
	tcase_add_loop_test(tc, test_watch_ignores_messages, 0, SVQ_ARRAY_SIZE(modes));
	tcase_add_test(tc, test_watch_poll_rate_limited);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loop_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
