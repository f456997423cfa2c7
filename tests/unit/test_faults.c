/* SPDX-License-Identifier: MIT */
/*
 * Failure paths by fault injection: each allocation and resource-creating
 * system call the library makes fails in turn, at every call site, and each
 * failure must give a clear error and leave nothing half-made.
 *
 * The test links with -Wl,--wrap for every function below (tests/meson.build),
 * so the library's calls (the static internal library) come here first. Only
 * calls made inside a library call a scenario makes count: LIB() arms the
 * injector around each one. The test's own code, Check's (wrapped too where
 * it is linked statically) and the fake backend's thread never count; the relay
 * thread is left out through its start hook, so that counts do not depend
 * on scheduling (tests/unit/test_loop.c and the loop scenario here cover
 * what a loop run does).
 *
 * A scenario drives one lifecycle through the library and recovers from a
 * failure as a caller would. A dry run records its calls: N of them, at S
 * distinct call sites (return addresses). Then for each i in 1..N it runs
 * again with call i failing, as that call fails for real (NULL or -1 with
 * ENOMEM, EMFILE, ...; io_uring setup's -errno; pthread_create's error);
 * at each sendmsg and recvmsg call site the first call also fails once with
 * a transient errno (EAGAIN, EINTR) that the library must ride out. Each
 * run must:
 *  - see the step that met the fault return a negative errno (never -EINVAL:
 *    the caller did nothing wrong), or break the queue with a reason where
 *    the API answers that way, or succeed where the library retries or
 *    falls back (a transient errno, io_uring refused);
 *  - then go on to the end: the step retried without the fault succeeds, or
 *    the object is freed and made again (a vhost-user session a failed
 *    exchange ended);
 *  - leave as many allocations (made and freed inside library calls), fds,
 *    threads and memfd or io_uring mappings as it found.
 * In the sanitizer build ASan and LeakSanitizer watch every run as well.
 *
 * Each scenario prints "# <name>: N calls at S call sites (...)".
 * SVQ_FAULTS_VERBOSE=1 prints every injected fault to stderr.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include <svqiso/svqiso.h>
#include "frontend.h"
#include "relay.h"
#include "vhost_user.h"
#include "vring.h"
#include "fds.h"

/* ---- the injector ---- */

enum fn {
	FN_MALLOC, FN_CALLOC, FN_REALLOC, FN_MEMFD_CREATE, FN_FTRUNCATE,
	FN_FCNTL, FN_FCNTL_SEALS, FN_MMAP, FN_EVENTFD, FN_EPOLL_CREATE1, FN_EPOLL_CTL,
	FN_SOCKET, FN_CONNECT, FN_SENDMSG, FN_RECVMSG, FN_PTHREAD_CREATE,
	FN_URING_INIT, FN_URING_PROBE,
	NR_FN
};

static const struct {
	const char *name;
	int err;		/* how it fails for real */
	int transient;		/* 0, or an errno the library must ride out */
} fns[NR_FN] = {
	[FN_MALLOC] = { "malloc", ENOMEM, 0 },
	[FN_CALLOC] = { "calloc", ENOMEM, 0 },
	[FN_REALLOC] = { "realloc", ENOMEM, 0 },
	[FN_MEMFD_CREATE] = { "memfd_create", EMFILE, 0 },
	[FN_FTRUNCATE] = { "ftruncate", ENOSPC, 0 },
	/* Only the commands that make something (F_DUPFD*) or can be
	 * refused (F_ADD_SEALS) count; F_GETFD and F_GETFL only ask whether
	 * an fd is open. */
	[FN_FCNTL] = { "fcntl F_DUPFD", EMFILE, 0 },
	[FN_FCNTL_SEALS] = { "fcntl F_ADD_SEALS", EPERM, 0 },
	[FN_MMAP] = { "mmap", ENOMEM, 0 },
	[FN_EVENTFD] = { "eventfd", EMFILE, 0 },
	[FN_EPOLL_CREATE1] = { "epoll_create1", EMFILE, 0 },
	/* EPOLL_CTL_ADD and _MOD; a DEL frees. */
	[FN_EPOLL_CTL] = { "epoll_ctl", ENOSPC, 0 },
	[FN_SOCKET] = { "socket", EMFILE, 0 },
	[FN_CONNECT] = { "connect", ECONNREFUSED, 0 },
	[FN_SENDMSG] = { "sendmsg", ENOBUFS, EAGAIN },
	[FN_RECVMSG] = { "recvmsg", ENOMEM, EINTR },
	[FN_PTHREAD_CREATE] = { "pthread_create", EAGAIN, 0 },
	[FN_URING_INIT] = { "io_uring_queue_init_params", ENOMEM, 0 },
	[FN_URING_PROBE] = { "io_uring_get_probe_ring", ENOMEM, 0 },
};

#define MAX_CALLS	2048

static struct {
	bool armed;		/* inside a LIB() */
	unsigned int step;	/* LIB()s so far in this run */
	unsigned int calls;	/* counted so far in this run */
	unsigned int fail_at;	/* the call to fail, from 1; 0: none */
	bool transient;		/* fail it with the transient errno */
	bool fired;
	unsigned int fired_step;
	enum fn fired_fn;
	long live;		/* allocations made inside LIB()s, less frees */
	bool record;		/* dry run: fill fn[] and site[] */
	uint8_t fn[MAX_CALLS];
	const void *site[MAX_CALLS];
} I;

/* Threads of the test (the fake backend) and the relay thread. */
static __thread bool exempt;

/* What the current run injects, for messages. */
static char fault_desc[160] = "dry run";
static bool verbose;

/* The errno to fail this call with, or 0 to make it. */
static int inj(enum fn f, const void *site)
{
	unsigned int n;

	if (exempt || !I.armed)
		return 0;
	n = ++I.calls;
	if (I.record && n <= MAX_CALLS) {
		I.fn[n - 1] = (uint8_t)f;
		I.site[n - 1] = site;
	}
	if (n != I.fail_at)
		return 0;
	I.fired = true;
	I.fired_step = I.step;
	I.fired_fn = f;
	return I.transient ? fns[f].transient : fns[f].err;
}

/* In the wrapper itself: the return address is the library's call site. */
#define INJ(f)	inj(f, __builtin_return_address(0))

/* In a wrapper: fail with errno as the injector says, returning @failed. */
#define FAULT(f, failed)						\
	do {								\
		int err_ = INJ(f);					\
									\
		if (err_) {						\
			errno = err_;					\
			return failed;					\
		}							\
	} while (0)

static void track(const void *p, long d)
{
	if (p && !exempt && I.armed)
		I.live += d;
}

/* Run one library call (a statement) with the injector armed. The barriers
 * keep the compiler from moving the flag past calls it knows (free()). */
#define LIB(stmt) do {							\
	I.step++;							\
	I.armed = true;							\
	__asm__ __volatile__("" ::: "memory");				\
	stmt;								\
	__asm__ __volatile__("" ::: "memory");				\
	I.armed = false;						\
} while (0)

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__real_calloc(size_t nmemb, size_t size);
void *__wrap_calloc(size_t nmemb, size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __real_free(void *p);
void __wrap_free(void *p);
int __real_memfd_create(const char *name, unsigned int flags);
int __wrap_memfd_create(const char *name, unsigned int flags);
int __real_ftruncate(int fd, off_t len);
int __wrap_ftruncate(int fd, off_t len);
int __real_ftruncate64(int fd, off_t len);
int __wrap_ftruncate64(int fd, off_t len);
int __real_fcntl(int fd, int cmd, ...);
int __wrap_fcntl(int fd, int cmd, ...);
int __real_fcntl64(int fd, int cmd, ...);
int __wrap_fcntl64(int fd, int cmd, ...);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_eventfd(unsigned int val, int flags);
int __wrap_eventfd(unsigned int val, int flags);
int __real_epoll_create1(int flags);
int __wrap_epoll_create1(int flags);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __real_socket(int domain, int type, int proto);
int __wrap_socket(int domain, int type, int proto);
int __real_connect(int fd, const struct sockaddr *sa, socklen_t len);
int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len);
ssize_t __real_sendmsg(int fd, const struct msghdr *mh, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *mh, int flags);
ssize_t __real_recvmsg(int fd, struct msghdr *mh, int flags);
ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int flags);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg);

void *__wrap_malloc(size_t size)
{
	void *p;

	FAULT(FN_MALLOC, NULL);
	p = __real_malloc(size);
	track(p, 1);
	return p;
}

void *__wrap_calloc(size_t nmemb, size_t size)
{
	void *p;

	FAULT(FN_CALLOC, NULL);
	p = __real_calloc(nmemb, size);
	track(p, 1);
	return p;
}

void *__wrap_realloc(void *old, size_t size)
{
	void *p;

	FAULT(FN_REALLOC, NULL);
	p = __real_realloc(old, size);
	if (!old)
		track(p, 1);
	return p;
}

void __wrap_free(void *p)
{
	track(p, -1);
	__real_free(p);
}

int __wrap_memfd_create(const char *name, unsigned int flags)
{
	FAULT(FN_MEMFD_CREATE, -1);
	return __real_memfd_create(name, flags);
}

int __wrap_ftruncate(int fd, off_t len)
{
	FAULT(FN_FTRUNCATE, -1);
	return __real_ftruncate(fd, len);
}

int __wrap_ftruncate64(int fd, off_t len)
{
	FAULT(FN_FTRUNCATE, -1);
	return __real_ftruncate64(fd, len);
}

/* Commands without an argument: the rest take an int or a pointer. */
static bool fcntl_no_arg(int cmd)
{
	return cmd == F_GETFD || cmd == F_GETFL || cmd == F_GET_SEALS;
}

/*
 * Both fcntl wrappers: F_ADD_SEALS and the dups may fail as the injector
 * says; everything else goes to @real. A macro, for INJ()'s call site.
 */
#define FCNTL_WRAP(real, fd, cmd)					\
	do {								\
		va_list ap_;						\
		long arg_;						\
									\
		if ((cmd) == F_ADD_SEALS)				\
			FAULT(FN_FCNTL_SEALS, -1);			\
		else if ((cmd) == F_DUPFD || (cmd) == F_DUPFD_CLOEXEC)	\
			FAULT(FN_FCNTL, -1);				\
		if (fcntl_no_arg(cmd))					\
			return real(fd, cmd);				\
		va_start(ap_, cmd);					\
		arg_ = va_arg(ap_, long);				\
		va_end(ap_);						\
		return real(fd, cmd, arg_);				\
	} while (0)

int __wrap_fcntl(int fd, int cmd, ...)
{
	FCNTL_WRAP(__real_fcntl, fd, cmd);
}

int __wrap_fcntl64(int fd, int cmd, ...)
{
	FCNTL_WRAP(__real_fcntl64, fd, cmd);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	FAULT(FN_MMAP, MAP_FAILED);
	return __real_mmap(addr, len, prot, flags, fd, off);
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	FAULT(FN_MMAP, MAP_FAILED);
	return __real_mmap64(addr, len, prot, flags, fd, off);
}

int __wrap_eventfd(unsigned int val, int flags)
{
	FAULT(FN_EVENTFD, -1);
	return __real_eventfd(val, flags);
}

int __wrap_epoll_create1(int flags)
{
	FAULT(FN_EPOLL_CREATE1, -1);
	return __real_epoll_create1(flags);
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (op != EPOLL_CTL_DEL)
		FAULT(FN_EPOLL_CTL, -1);
	return __real_epoll_ctl(epfd, op, fd, ev);
}

int __wrap_socket(int domain, int type, int proto)
{
	FAULT(FN_SOCKET, -1);
	return __real_socket(domain, type, proto);
}

int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	FAULT(FN_CONNECT, -1);
	return __real_connect(fd, sa, len);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *mh, int flags)
{
	FAULT(FN_SENDMSG, -1);
	return __real_sendmsg(fd, mh, flags);
}

ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int flags)
{
	FAULT(FN_RECVMSG, -1);
	return __real_recvmsg(fd, mh, flags);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg)
{
	int err = INJ(FN_PTHREAD_CREATE);

	if (err)
		return err;
	return __real_pthread_create(t, attr, fn, arg);
}

#ifdef SVQ_HAVE_URING	/* the library's build define, passed to tests too */
struct io_uring;
struct io_uring_params;
struct io_uring_probe;
int __real_io_uring_queue_init_params(unsigned int entries, struct io_uring *ring,
				      struct io_uring_params *p);
int __wrap_io_uring_queue_init_params(unsigned int entries, struct io_uring *ring,
				      struct io_uring_params *p);
struct io_uring_probe *__real_io_uring_get_probe_ring(struct io_uring *ring);
struct io_uring_probe *__wrap_io_uring_get_probe_ring(struct io_uring *ring);

int __wrap_io_uring_queue_init_params(unsigned int entries, struct io_uring *ring,
				      struct io_uring_params *p)
{
	int err = INJ(FN_URING_INIT);

	if (err)
		return -err;
	return __real_io_uring_queue_init_params(entries, ring, p);
}

struct io_uring_probe *__wrap_io_uring_get_probe_ring(struct io_uring *ring)
{
	FAULT(FN_URING_PROBE, NULL);	/* malloc's errno, as liburing's */
	return __real_io_uring_get_probe_ring(ring);
}

/* Whether the kernel lets this process set up an io_uring at all. */
static bool uring_expected(void)
{
	struct { uint32_t w[30]; } params = { { 0 } };	/* io_uring_params */
	long fd = syscall(__NR_io_uring_setup, 4, &params);

	if (fd < 0)
		return false;
	close((int)fd);
	return true;
}
#else
static bool uring_expected(void)
{
	return false;
}
#endif

/*
 * A step failed with @rc: only the injected fault may have made it fail, in
 * this very step, and the error says what happened.
 */
static void expect_fault(int rc, const char *what)
{
	ck_assert_msg(rc < 0 && rc > -4096, "%s: %s returned %d", fault_desc,
		      what, rc);
	ck_assert_msg(I.fired && I.fired_step == I.step,
		      "%s: %s failed (%d) without a fault injected in it",
		      fault_desc, what, rc);
	ck_assert_msg(rc != -EINVAL, "%s: %s returned -EINVAL for a failed %s",
		      fault_desc, what, fns[I.fired_fn].name);
}

/* Whether the fault was a vhost-user exchange's: the session ends with it. */
static bool session_fault(void)
{
	return I.fired && !I.transient &&
	       (I.fired_fn == FN_SENDMSG || I.fired_fn == FN_RECVMSG);
}

/* ---- what a run must leave as it found ---- */

struct res {
	unsigned int fds, maps, tasks;
};

static unsigned int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	unsigned int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Mappings of memfds (isolated regions, guest RAM) and io_urings. */
static unsigned int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[1024];
	unsigned int n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "/memfd:") || strstr(line, "io_uring"))
			n++;
	fclose(f);
	return n;
}

static struct res res_now(void)
{
	return (struct res){ .fds = mock_count_fds(), .maps = count_maps(),
			     .tasks = count_dir("/proc/self/task") };
}

static void res_check(const struct res *before, const char *name)
{
	struct res now = res_now();

	ck_assert_msg(now.fds == before->fds, "%s: %s: %u fds open, %u before",
		      name, fault_desc, now.fds, before->fds);
	ck_assert_msg(now.maps == before->maps,
		      "%s: %s: %u memfd/io_uring mappings, %u before", name,
		      fault_desc, now.maps, before->maps);
	ck_assert_msg(now.tasks == before->tasks, "%s: %s: %u threads, %u before",
		      name, fault_desc, now.tasks, before->tasks);
	ck_assert_msg(I.live == 0, "%s: %s: %ld allocations made and not freed",
		      name, fault_desc, I.live);
}

/* ---- the runner ---- */

typedef void (*scenario_fn)(const void *arg);

static void run_clean(scenario_fn fn, const void *arg)
{
	I.step = 0;
	I.calls = 0;
	I.fired = false;
	I.live = 0;
	fn(arg);
	ck_assert(!I.armed);
}

/*
 * Run @fn's lifecycle clean, then once with each of its calls failing (and
 * once more with a transient errno where the function has one). @must: the
 * functions (bits of enum fn) the lifecycle must call, so that coverage
 * lost shows as a failure.
 */
static void run_scenario(const char *name, scenario_fn fn, const void *arg,
			 unsigned int must)
{
	unsigned int n, i, k, t, sites = 0, runs = 0, site_fn[NR_FN] = { 0 };
	bool first[MAX_CALLS];
	struct res before;
	char summary[512];
	size_t len = 0;

	memset(&I, 0, sizeof(I));
	snprintf(fault_desc, sizeof(fault_desc), "%s, dry run", name);
	before = res_now();
	I.record = true;
	run_clean(fn, arg);
	I.record = false;
	n = I.calls;
	ck_assert_msg(n <= MAX_CALLS, "%s: %u calls", name, n);
	res_check(&before, name);

	for (i = 0; i < n; i++) {
		for (k = 0; k < i; k++)
			if (I.fn[k] == I.fn[i] && I.site[k] == I.site[i])
				break;
		first[i] = k == i;
		if (first[i]) {
			sites++;
			site_fn[I.fn[i]]++;
		}
	}
	for (k = 0; k < NR_FN; k++)
		if (must & (1u << k))
			ck_assert_msg(site_fn[k], "%s: no call of %s", name,
				      fns[k].name);

	for (i = 1; i <= n; i++) {
		enum fn f = (enum fn)I.fn[i - 1];
		/* A transient errno takes the same way back at every call
		 * of a site: once per site. */
		unsigned int variants = fns[f].transient && first[i - 1] ? 2 : 1;

		for (t = 0; t < variants; t++) {
			snprintf(fault_desc, sizeof(fault_desc),
				 "%s, call %u of %u (%s at %p) failing with %s",
				 name, i, n, fns[f].name, I.site[i - 1],
				 strerror(t ? fns[f].transient : fns[f].err));
			if (verbose)
				fprintf(stderr, "%s\n", fault_desc);
			I.fail_at = i;
			I.transient = t;
			run_clean(fn, arg);
			ck_assert_msg(I.fired, "%s: the call was not made", fault_desc);
			ck_assert_msg(I.fired_fn == f, "%s: call %u was %s", fault_desc,
				      i, fns[I.fired_fn].name);
			res_check(&before, name);
			runs++;
		}
	}
	I.fail_at = 0;
	I.transient = false;
	snprintf(fault_desc, sizeof(fault_desc), "no fault");

	for (k = 0; k < NR_FN; k++)
		if (site_fn[k] && len < sizeof(summary))
			len += (size_t)snprintf(summary + len, sizeof(summary) - len,
						"%s%s %u", len ? ", " : "",
						fns[k].name, site_fn[k]);
	printf("# %s: %u calls at %u call sites (%s); %u runs with a fault, each clean\n",
	       name, n, sites, len ? summary : "none", runs);
	fflush(stdout);
}

/* ---- shared pieces ---- */

static unsigned int logs_err;

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	(void)msg;
	if (level <= SVQISO_LOG_ERR)
		logs_err++;
}

static unsigned int region_adds, region_dels;

static int region_add_cb(void *ctx, const struct svqiso_region *r)
{
	(void)ctx;
	(void)r;
	region_adds++;
	return 0;
}

static int region_del_cb(void *ctx, const struct svqiso_region *r)
{
	(void)ctx;
	(void)r;
	region_dels++;
	return 0;
}

/* Relay threads: their calls do not count (see the top). */
static void exempt_hook(void *ctx)
{
	(void)ctx;
	exempt = true;
}

static int efd(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	return fd;
}

/* Whether eventfd @fd was written within @ms; reads it. */
static bool efd_signalled(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return false;
	return read(fd, &v, sizeof(v)) == sizeof(v) && v > 0;
}

static uint32_t fresh_base(uint8_t layout)
{
	return layout == SVQISO_LAYOUT_PACKED ? SVQISO_PACKED_FRESH_BASE : 0;
}

/* ---- the guest: a driver over malloc'd RAM ---- */

#define GBASE		0x10000000ull
#define GSIZE		(1u << 20)
#define G_DESC		0x0000u
#define G_DRIVER	0x1000u
#define G_DEVICE	0x2000u
#define G_DATA		0x10000u
#define NUM		8
#define SEG		256
#define RING_F		(SVQISO_RING_F_EVENT_IDX | SVQISO_RING_F_INDIRECT)

static const struct svqiso_vring_addr guest_addr = {
	GBASE + G_DESC, GBASE + G_DRIVER, GBASE + G_DEVICE,
};

struct guest {
	uint8_t *ram;
	struct svqiso_mem *mem;
	struct svq_drv drv;
	uint8_t layout;
	bool up;
	unsigned int posted, done;	/* since the ring was laid out */
};

static void *gpa_hva(struct guest *g, uint64_t gpa)
{
	return g->ram + (gpa - GBASE);
}

/* The guest lays out its ring afresh, as after a device reset. */
static void guest_ring(struct guest *g)
{
	struct svq_drv_cfg dc = {
		.layout = g->layout, .num = NUM, .flags = RING_F,
		.desc = gpa_hva(g, guest_addr.desc),
		.driver = gpa_hva(g, guest_addr.driver),
		.device = gpa_hva(g, guest_addr.device),
	};

	if (g->up)
		svq_drv_fini(&g->drv);
	ck_assert_int_eq(svq_drv_init(&g->drv, &dc), 0);
	g->up = true;
	g->posted = 0;
	g->done = 0;
}

static void guest_open(struct guest *g, uint8_t layout)
{
	SVQISO_OPTS(svqiso_mem_opts, mo);
	struct svqiso_mem_region r = { .gpa = GBASE, .size = GSIZE, .fd = -1 };

	memset(g, 0, sizeof(*g));
	g->ram = aligned_alloc(4096, GSIZE);
	ck_assert_ptr_nonnull(g->ram);
	memset(g->ram, 0, GSIZE);
	r.hva = g->ram;
	ck_assert_int_eq(svqiso_mem_new(&mo, &g->mem), 0);
	ck_assert_int_eq(svqiso_mem_add_region(g->mem, &r), 0);
	g->layout = layout;
	guest_ring(g);
}

static void guest_close(struct guest *g)
{
	if (g->up)
		svq_drv_fini(&g->drv);
	svqiso_mem_free(g->mem);
	free(g->ram);
	memset(g, 0, sizeof(*g));
}

/* One request: SEG bytes for the device to read, SEG for it to write. */
static void guest_post(struct guest *g)
{
	uint64_t a = GBASE + G_DATA + (uint64_t)(g->posted % NUM) * 2 * SEG;
	struct svq_seg s[2] = {
		{ .addr = a, .len = SEG },
		{ .addr = a + SEG, .len = SEG, .write = true },
	};
	uint16_t id;

	memset(gpa_hva(g, a), (int)g->posted, SEG);
	ck_assert_int_eq(svq_drv_add(&g->drv, s, 2, NULL, &id), 0);
	svq_drv_kick_prepare(&g->drv);
	g->posted++;
}

/* Take the completions there are. Return: all completions so far. */
static unsigned int guest_collect(struct guest *g)
{
	uint16_t id;
	uint32_t len;

	while (svq_drv_get_used(&g->drv, &id, &len) == 1) {
		ck_assert_uint_eq(len, SEG);
		g->done++;
	}
	return g->done;
}

/* ---- the backend: a device over the shadow ring, in isolated memory ---- */

struct backend {
	struct svq_dev dev;
	bool up;
	struct svq_seg seg[8];
};

/* A backend (a new one) takes the shadow ring as it is laid out now. */
static void backend_attach(struct backend *b, struct svqiso_svq *svq,
			   struct svqiso_iso *iso)
{
	struct svqiso_shadow_info info;
	struct svq_dev_cfg bc;

	if (b->up)
		svq_dev_fini(&b->dev);
	b->up = false;
	ck_assert_int_eq(svqiso_svq_get_shadow(svq, &info), 0);
	bc = (struct svq_dev_cfg){
		.layout = info.layout, .num = info.num, .flags = info.features,
		.desc = info.iova.desc, .driver = info.iova.driver,
		.device = info.iova.device, .mem = svqiso_mem_ops(),
		.mem_ctx = (void *)svqiso_iso_mem(iso), .max_indirect = 8,
		.name = "backend",
	};
	ck_assert_int_eq(svq_dev_init(&b->dev, &bc), 0);
	b->up = true;
}

static void backend_close(struct backend *b)
{
	if (b->up)
		svq_dev_fini(&b->dev);
	b->up = false;
}

/* Take up to @max requests, completing them unless @hold. Return: taken. */
static unsigned int backend_take(struct backend *b, unsigned int max, bool hold)
{
	struct svq_elem e = { .seg = b->seg, .max_seg = 8 };
	unsigned int n = 0;
	uint16_t k;

	while (n < max && svq_dev_pop(&b->dev, &e) == 1) {
		n++;
		if (hold)
			continue;
		for (k = e.nout; k < e.nseg; k++)
			memset(e.seg[k].hva, 0x5a, e.seg[k].len);
		ck_assert_int_eq(svq_dev_push(&b->dev, e.id, e.in_bytes), 0);
	}
	if (n && !hold)
		svq_dev_flush(&b->dev);
	return n;
}

/* ---- scenario: the guest memory map ---- */

static void mem_scenario(const void *arg)
{
	static uint8_t ram[3][4096];
	SVQISO_OPTS(svqiso_mem_opts, mo, .max_regions = 2, .log = log_cb);
	struct svqiso_mem_region r[3];
	struct svqiso_mem *mem = NULL;
	uint64_t len;
	unsigned int i;
	int rc;

	(void)arg;
	for (i = 0; i < 3; i++)
		r[i] = (struct svqiso_mem_region){ .gpa = GBASE + i * 0x10000ull,
						   .size = 4096, .hva = ram[i],
						   .fd = -1 };
	LIB(rc = svqiso_mem_new(&mo, &mem));
	if (rc) {
		expect_fault(rc, "mem_new");
		ck_assert_ptr_null(mem);
		LIB(rc = svqiso_mem_new(&mo, &mem));
	}
	ck_assert_int_eq(rc, 0);
	LIB(rc = svqiso_mem_add_region(mem, &r[0]));
	ck_assert_int_eq(rc, 0);
	/* More regions than the map was made for: a bigger table. */
	LIB(rc = svqiso_mem_set_regions(mem, r, 3));
	if (rc) {
		expect_fault(rc, "mem_set_regions");
		/* The map is as it was. */
		ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 1);
		len = 16;
		ck_assert_ptr_eq(svqiso_mem_lookup(mem, r[0].gpa, &len), ram[0]);
		len = 16;
		ck_assert_ptr_null(svqiso_mem_lookup(mem, r[2].gpa, &len));
		LIB(rc = svqiso_mem_set_regions(mem, r, 3));
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(svqiso_mem_nr_regions(mem), 3);
	len = 16;
	ck_assert_ptr_eq(svqiso_mem_lookup(mem, r[2].gpa, &len), ram[2]);
	LIB(svqiso_mem_free(mem));
}

START_TEST(test_mem_faults_clean)
{
	run_scenario("mem: new, add, set", mem_scenario, NULL, 1u << FN_CALLOC);
}
END_TEST

/* ---- scenario: isolated memory and the pools ---- */

static void iso_scenario(const void *arg)
{
	SVQISO_OPTS(svqiso_iso_opts, io, .name = "flt", .log = log_cb,
		    .region_add = region_add_cb, .region_del = region_del_cb);
	SVQISO_OPTS(svqiso_arena_opts, ao, .size = 1 << 20);
	struct svqiso_pool *arena = NULL, *mfd = NULL;
	struct svqiso_iso *iso = NULL;
	struct svqiso_region r;
	struct svqiso_buf b;
	int rc;

	(void)arg;
	region_adds = region_dels = 0;
	LIB(rc = svqiso_iso_new(&io, &iso));
	if (rc) {
		expect_fault(rc, "iso_new");
		ck_assert_ptr_null(iso);
		LIB(rc = svqiso_iso_new(&io, &iso));
	}
	ck_assert_int_eq(rc, 0);

	LIB(rc = svqiso_iso_region_new(iso, 64 << 10, &r));
	if (rc) {
		expect_fault(rc, "iso_region_new");
		ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 0);
		ck_assert_uint_eq(region_adds, 0);
		LIB(rc = svqiso_iso_region_new(iso, 64 << 10, &r));
	}
	ck_assert_int_eq(rc, 0);
	memset(r.uaddr, 1, r.size);

	LIB(rc = svqiso_pool_new_arena(iso, &ao, &arena));
	if (rc) {
		expect_fault(rc, "pool_new_arena");
		ck_assert_ptr_null(arena);
		ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 1);
		ck_assert_uint_eq(region_adds - region_dels, 1);
		LIB(rc = svqiso_pool_new_arena(iso, &ao, &arena));
	}
	ck_assert_int_eq(rc, 0);
	LIB(rc = svqiso_pool_alloc(arena, 4096, &b));
	ck_assert_int_eq(rc, 0);
	memset(b.hva, 2, 4096);
	LIB(svqiso_pool_put(arena, &b));

	LIB(rc = svqiso_pool_new_memfd(iso, &mfd));
	if (rc) {
		expect_fault(rc, "pool_new_memfd");
		LIB(rc = svqiso_pool_new_memfd(iso, &mfd));
	}
	ck_assert_int_eq(rc, 0);
	/* A buffer is a region of its own. */
	LIB(rc = svqiso_pool_alloc(mfd, 4096, &b));
	if (rc) {
		expect_fault(rc, "memfd pool alloc");
		ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 2);
		ck_assert_uint_eq(region_adds - region_dels, 2);
		LIB(rc = svqiso_pool_alloc(mfd, 4096, &b));
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 3);
	memset(b.hva, 3, 4096);
	LIB(svqiso_pool_put(mfd, &b));
	ck_assert_uint_eq(svqiso_iso_nr_regions(iso), 2);

	LIB(svqiso_pool_free(mfd));
	LIB(svqiso_pool_free(arena));
	LIB(rc = svqiso_iso_region_free(iso, r.iova));
	ck_assert_int_eq(rc, 0);
	LIB(svqiso_iso_free(iso));
	ck_assert_uint_eq(region_adds, region_dels);
}

START_TEST(test_iso_pool_faults_clean)
{
	run_scenario("iso: new, region, arena and memfd pools", iso_scenario, NULL,
		     (1u << FN_CALLOC) | (1u << FN_MEMFD_CREATE) |
		     (1u << FN_FTRUNCATE) | (1u << FN_FCNTL_SEALS) | (1u << FN_MMAP));
}
END_TEST

/* ---- scenario: the shadow virtqueue ---- */

enum { C_FREE, C_TAKEN, C_DONE, C_BACK };
#define MAX_COOKIES	128

struct svq_case {
	const char *name;
	uint8_t layout;		/* guest and shadow */
	bool element;
	bool memfd_pool;	/* a region per request; else a private arena */
	uint32_t sfeat;
};

static const struct svq_case svq_cases[] = {
	{ "svq: split, ring mode", SVQISO_LAYOUT_SPLIT, false, false, RING_F },
	{ "svq: packed, ring mode", SVQISO_LAYOUT_PACKED, false, false, RING_F },
	{ "svq: split, element mode", SVQISO_LAYOUT_SPLIT, true, false, RING_F },
	{ "svq: packed, element mode", SVQISO_LAYOUT_PACKED, true, false, RING_F },
	{ "svq: split, ring mode, memfd pool", SVQISO_LAYOUT_SPLIT, false, true,
	  SVQISO_RING_F_EVENT_IDX },
	{ "svq: packed, element mode, memfd pool", SVQISO_LAYOUT_PACKED, true,
	  true, RING_F },
};

static struct {
	const struct svq_case *c;
	struct svqiso_iso *iso;
	struct svqiso_pool *pool;
	struct svqiso_svq *svq;
	struct guest g;
	struct backend b;
	/* element mode: each request's fate, by cookie - 1 */
	uint8_t state[MAX_COOKIES];
	unsigned int ncookies;
	int cb_error;			/* line of a callback that went wrong */
	uint8_t ebuf[NUM][2][SEG];
} S;

/* Callbacks run inside library calls: no Check call here (it would count). */
static void complete_cb(void *ctx, void *cookie, uint32_t len)
{
	unsigned int i = (unsigned int)(uintptr_t)cookie - 1;

	(void)ctx;
	(void)len;
	if (i >= S.ncookies || S.state[i] != C_TAKEN) {
		if (!S.cb_error)
			S.cb_error = __LINE__;
		return;
	}
	S.state[i] = C_DONE;
}

static void giveback_cb(void *ctx, void *cookie)
{
	unsigned int i = (unsigned int)(uintptr_t)cookie - 1;

	(void)ctx;
	if (i >= S.ncookies || S.state[i] != C_TAKEN) {
		if (!S.cb_error)
			S.cb_error = __LINE__;
		return;
	}
	S.state[i] = C_BACK;
}

/* The VMM resets the device: the guest lays out its ring afresh, the svq
 * is reset, a backend takes the fresh shadow ring. */
static void sfx_restart(void)
{
	int rc;

	if (!S.c->element)
		guest_ring(&S.g);
	LIB(rc = svqiso_svq_reset(S.svq, fresh_base(S.c->layout)));
	ck_assert_msg(rc == 0, "%s: reset after the fault: %d", fault_desc, rc);
	ck_assert(!svqiso_svq_is_broken(S.svq));
	backend_attach(&S.b, S.svq, S.iso);
}

/* A processing step failed with @rc: the queue broke, with a reason. */
static void sfx_recover(int rc, const char *what)
{
	const char *why;

	expect_fault(rc, what);
	ck_assert_int_eq(rc, -EIO);
	ck_assert(svqiso_svq_is_broken(S.svq));
	why = svqiso_svq_broken_reason(S.svq);
	ck_assert_ptr_nonnull(why);
	ck_assert_uint_gt(strlen(why), 0);
	sfx_restart();
}

/* Element mode: submit one request. Return: false if it broke the queue
 * (then reset: nothing is in flight). */
static bool sfx_submit(void)
{
	unsigned int i = S.ncookies++;
	struct iovec out, in;
	int rc;

	ck_assert_uint_lt(i, MAX_COOKIES);
	out = (struct iovec){ S.ebuf[i % NUM][0], SEG };
	in = (struct iovec){ S.ebuf[i % NUM][1], SEG };
	memset(out.iov_base, (int)i, SEG);
	S.state[i] = C_TAKEN;
	LIB(rc = svqiso_svq_submit(S.svq, &out, 1, &in, 1,
				   (void *)(uintptr_t)(i + 1)));
	if (rc < 0) {
		/* Refused: it was not taken; complete must never run for it. */
		S.state[i] = C_FREE;
		sfx_recover(rc, "submit");
		return false;
	}
	return true;
}

/* Post @k requests (element mode: submit). Return: false if a fault broke
 * the queue on the way (it was reset). */
static bool sfx_post(unsigned int k)
{
	unsigned int i;

	for (i = 0; i < k; i++) {
		if (!S.c->element)
			guest_post(&S.g);
		else if (!sfx_submit())
			return false;
	}
	return true;
}

/* Run the queue until every request posted is complete. Return: false if a
 * fault broke it on the way (it was reset: what was in flight is gone). */
static bool sfx_drive(void)
{
	unsigned int round;
	int rc;

	for (round = 0; round < 32; round++) {
		if (!S.c->element) {
			LIB(rc = svqiso_svq_process_avail(S.svq));
			if (rc < 0) {
				sfx_recover(rc, "process_avail");
				return false;
			}
		}
		backend_take(&S.b, NUM, false);
		LIB(rc = svqiso_svq_process_used(S.svq));
		if (rc < 0) {
			sfx_recover(rc, "process_used");
			return false;
		}
		if (S.c->element ? !svqiso_svq_in_flight(S.svq) :
				   guest_collect(&S.g) == S.g.posted)
			return true;
	}
	ck_abort_msg("%s: requests do not complete", fault_desc);
	return false;
}

/* @k requests through to their completion, again after a fault. */
static void sfx_exchange(unsigned int k)
{
	unsigned int attempts = 0;

	do
		ck_assert_uint_lt(attempts++, 3);
	while (!sfx_post(k) || !sfx_drive());
}

static uint64_t sfx_forwarded(void)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };

	ck_assert_int_eq(svqiso_svq_get_stats(S.svq, &st), 0);
	return st.requests;
}

/* The backend goes, holding two of three requests; a new one takes them. */
static void sfx_rewind_repost(void)
{
	unsigned int attempts = 0;
	uint64_t before;
	uint32_t base;
	int rc, n;

	for (;;) {
		ck_assert_uint_lt(attempts++, 3);
		before = sfx_forwarded();
		if (!sfx_post(3))
			continue;
		if (!S.c->element) {
			LIB(rc = svqiso_svq_process_avail(S.svq));
			if (rc < 0) {
				sfx_recover(rc, "process_avail");
				continue;
			}
		}
		if (sfx_forwarded() - before == 3)
			break;
		/* The pool said "not now" to one: finish, then again. */
		sfx_drive();
	}
	ck_assert_uint_eq(backend_take(&S.b, 2, true), 2);
	base = svq_dev_get_base(&S.b.dev);
	LIB(rc = svqiso_svq_rewind(S.svq, base));
	ck_assert_int_eq(rc, 1);
	LIB(n = svqiso_svq_repost(S.svq));
	if (n < 0) {
		expect_fault(n, "repost");
		/* As documented: -ENOMEM, and nothing changed. */
		ck_assert_int_eq(n, -ENOMEM);
		ck_assert_msg(!svqiso_svq_is_broken(S.svq), "%s: repost broke the queue: %s",
			      fault_desc, svqiso_svq_broken_reason(S.svq));
		ck_assert_uint_eq(svqiso_svq_in_flight(S.svq), 2);
		LIB(n = svqiso_svq_repost(S.svq));
	}
	ck_assert_int_eq(n, 2);
	backend_attach(&S.b, S.svq, S.iso);
	if (!S.c->element) {
		LIB(rc = svqiso_svq_pause(S.svq, false));
		ck_assert_int_eq(rc, 0);
	}
	/* The two reposted, and (ring mode) the one given back again. */
	sfx_drive();
}

/* A reset with requests in flight. */
static void sfx_reset(void)
{
	unsigned int attempts = 0;
	int rc;

	for (;;) {
		ck_assert_uint_lt(attempts++, 3);
		if (!sfx_post(2))
			continue;
		if (!S.c->element) {
			LIB(rc = svqiso_svq_process_avail(S.svq));
			if (rc < 0) {
				sfx_recover(rc, "process_avail");
				continue;
			}
		}
		break;
	}
	/* The guest starts again: its ring afresh, what was in flight gone. */
	if (!S.c->element)
		guest_ring(&S.g);
	LIB(rc = svqiso_svq_reset(S.svq, fresh_base(S.c->layout)));
	if (rc) {
		expect_fault(rc, "reset");
		ck_assert_int_eq(rc, -ENOMEM);
		/* Never running over a ring it could not lay out. */
		ck_assert_msg(svqiso_svq_is_broken(S.svq),
			      "%s: reset failed (%d), the queue is not broken",
			      fault_desc, rc);
		ck_assert_ptr_nonnull(svqiso_svq_broken_reason(S.svq));
		LIB(rc = svqiso_svq_process_used(S.svq));
		ck_assert_int_eq(rc, -EIO);
		if (!S.c->element) {
			LIB(rc = svqiso_svq_process_avail(S.svq));
			ck_assert_int_eq(rc, -EIO);
		}
		LIB(rc = svqiso_svq_reset(S.svq, fresh_base(S.c->layout)));
		ck_assert_int_eq(rc, 0);
	}
	ck_assert(!svqiso_svq_is_broken(S.svq));
	ck_assert_uint_eq(svqiso_svq_in_flight(S.svq), 0);
	backend_attach(&S.b, S.svq, S.iso);
	sfx_exchange(2);
}

static void svq_scenario(const void *arg)
{
	const struct svq_case *c = arg;
	SVQISO_OPTS(svqiso_iso_opts, io, .name = "flt", .log = log_cb);
	unsigned int i, nregions;
	int rc;

	memset(&S, 0, sizeof(S));
	S.c = c;
	ck_assert_int_eq(svqiso_iso_new(&io, &S.iso), 0);
	if (c->memfd_pool)
		ck_assert_int_eq(svqiso_pool_new_memfd(S.iso, &S.pool), 0);
	if (!c->element)
		guest_open(&S.g, c->layout);
	{
		SVQISO_OPTS(svqiso_svq_opts, so,
			    .flags = c->element ? SVQISO_SVQ_F_ELEMENT : 0,
			    .num = NUM, .guest_layout = c->layout,
			    .shadow_layout = c->layout, .guest_features = RING_F,
			    .shadow_features = c->sfeat, .max_segs = 8,
			    .guest_ring = guest_addr, .guest_mem = svqiso_mem_ops(),
			    .guest_mem_ctx = S.g.mem, .iso = S.iso, .pool = S.pool,
			    .complete = complete_cb, .giveback = giveback_cb,
			    .log = log_cb, .name = "flt");

		nregions = svqiso_iso_nr_regions(S.iso);
		LIB(rc = svqiso_svq_new(&so, &S.svq));
		if (rc) {
			expect_fault(rc, "svq_new");
			ck_assert_ptr_null(S.svq);
			ck_assert_uint_eq(svqiso_iso_nr_regions(S.iso), nregions);
			LIB(rc = svqiso_svq_new(&so, &S.svq));
		}
		ck_assert_int_eq(rc, 0);
	}
	backend_attach(&S.b, S.svq, S.iso);

	sfx_exchange(3);
	sfx_rewind_repost();
	sfx_reset();
	if (!c->element) {
		LIB(rc = svqiso_svq_remap(S.svq));
		ck_assert_int_eq(rc, 0);
	}
	LIB(svqiso_svq_free(S.svq));

	ck_assert_msg(!S.cb_error, "%s: callback check at line %d", fault_desc,
		      S.cb_error);
	for (i = 0; i < S.ncookies; i++)
		ck_assert_msg(S.state[i] != C_TAKEN, "%s: request %u never completed",
			      fault_desc, i);
	backend_close(&S.b);
	if (!c->element)
		guest_close(&S.g);
	svqiso_pool_free(S.pool);
	svqiso_iso_free(S.iso);
}

START_TEST(test_svq_faults_clean)
{
	const struct svq_case *c = &svq_cases[_i];
	unsigned int must = (1u << FN_CALLOC) | (1u << FN_MEMFD_CREATE) |
			    (1u << FN_MMAP);

	run_scenario(c->name, svq_scenario, c, must);
}
END_TEST

/* ---- scenario: the event loop and the relay thread ---- */

struct loop_case {
	const char *name;
	uint8_t mode;
	bool relay;		/* through the relay thread (svq_relay_start) */
};

static const struct loop_case loop_cases[] = {
	{ "loop: auto", SVQISO_LOOP_AUTO, false },
	{ "loop: io_uring", SVQISO_LOOP_URING, false },
	{ "loop: epoll", SVQISO_LOOP_EPOLL, false },
	{ "loop: busy poll", SVQISO_LOOP_BUSY_POLL, false },
	{ "relay: io_uring", SVQISO_LOOP_URING, true },
	{ "relay: epoll", SVQISO_LOOP_EPOLL, true },
};

/* Stops this loop when the guest ring is read: one iteration. */
static struct svqiso_loop *stop_loop;

static void *stop_translate(void *ctx, uint64_t addr, uint64_t *len)
{
	if (stop_loop)
		svqiso_loop_stop(stop_loop);
	return svqiso_mem_ops()->translate(ctx, addr, len);
}

static const struct svqiso_mem_ops stop_ops = {
	.sz = sizeof(struct svqiso_mem_ops),
	.translate = stop_translate,
};

static void hangup_cb(void *ctx)
{
	(void)ctx;
}

static unsigned int catch_ups;

static void catch_up_cb(void *ctx)
{
	(void)ctx;
	catch_ups++;
}

static void loop_scenario(const void *arg)
{
	const struct loop_case *c = arg;
	SVQISO_OPTS(svqiso_iso_opts, io, .name = "flt", .log = log_cb);
	struct svqiso_loop *loop = NULL;
	struct svq_relay *relay = NULL;
	struct svqiso_iso *iso;
	struct svqiso_svq *svq;
	struct guest g;
	int rc, hp[2], gk = efd(), gc = efd(), bk = efd(), bc = efd();

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, hp), 0);
	ck_assert_int_eq(svqiso_iso_new(&io, &iso), 0);
	guest_open(&g, SVQISO_LAYOUT_SPLIT);
	{
		SVQISO_OPTS(svqiso_svq_opts, so, .num = NUM,
			    .guest_layout = SVQISO_LAYOUT_SPLIT,
			    .shadow_layout = SVQISO_LAYOUT_SPLIT,
			    .guest_features = RING_F, .shadow_features = RING_F,
			    .max_segs = 8, .guest_ring = guest_addr,
			    .guest_mem = &stop_ops, .guest_mem_ctx = g.mem,
			    .iso = iso, .log = log_cb, .name = "flt");

		ck_assert_int_eq(svqiso_svq_new(&so, &svq), 0);
	}
	{
		SVQISO_OPTS(svqiso_loop_opts, lo, .mode = c->mode, .max_queues = 2,
			    .log = log_cb, .hangup_fd = hp[0], .hangup = hangup_cb);
		SVQISO_OPTS(svqiso_loop_queue, lq, .svq = svq, .guest_kick_fd = gk,
			    .guest_call_fd = gc, .backend_kick_fd = bk,
			    .backend_call_fd = bc);
		struct svq_relay_cfg rcfg = {
			.loop_mode = c->mode, .log = log_cb, .hangup_fd = hp[0],
			.hangup = hangup_cb, .thread_start = exempt_hook,
			.catch_up = catch_up_cb,
		};

		if (c->relay) {
			catch_ups = 0;
			LIB(rc = svq_relay_start(&rcfg, &lq, 1, &relay));
			if (rc) {
				expect_fault(rc, "relay_start");
				ck_assert_ptr_null(relay);
				/* A relay that does not start did nothing. */
				ck_assert_uint_eq(catch_ups, 0);
				LIB(rc = svq_relay_start(&rcfg, &lq, 1, &relay));
			}
			ck_assert_int_eq(rc, 0);
			ck_assert_uint_eq(catch_ups, 1);
			/* The relay thread relays a kick. */
			guest_post(&g);
			ck_assert_int_eq(write(gk, &(uint64_t){ 1 }, 8), 8);
			ck_assert(efd_signalled(bk, 5000));
			LIB(svq_relay_stop(relay));
		} else {
			LIB(rc = svqiso_loop_new(&lo, &loop));
			if (rc) {
				expect_fault(rc, "loop_new");
				ck_assert_ptr_null(loop);
				LIB(rc = svqiso_loop_new(&lo, &loop));
			}
			ck_assert_int_eq(rc, 0);
			if (c->mode != SVQISO_LOOP_AUTO)
				ck_assert_int_eq(svqiso_loop_mode(loop), c->mode);
			LIB(rc = svqiso_loop_add(loop, &lq));
			if (rc) {
				/* Nothing of it stays registered. */
				expect_fault(rc, "loop_add");
				LIB(rc = svqiso_loop_add(loop, &lq));
			}
			ck_assert_int_eq(rc, 0);
			/* One iteration: a kick relayed to the backend. */
			guest_post(&g);
			ck_assert_int_eq(write(gk, &(uint64_t){ 1 }, 8), 8);
			stop_loop = loop;
			LIB(rc = svqiso_loop_run(loop));
			stop_loop = NULL;
			ck_assert_int_eq(rc, 0);
			ck_assert(efd_signalled(bk, 5000));
			LIB(svqiso_loop_free(loop));
		}
	}
	ck_assert(!svqiso_svq_is_broken(svq));
	svqiso_svq_free(svq);
	guest_close(&g);
	svqiso_iso_free(iso);
	close(gk);
	close(gc);
	close(bk);
	close(bc);
	close(hp[0]);
	close(hp[1]);
}

START_TEST(test_loop_faults_clean)
{
	const struct loop_case *c = &loop_cases[_i];
	unsigned int must = 1u << FN_CALLOC;

	if (c->mode == SVQISO_LOOP_URING && !uring_expected()) {
		printf("# %s: skipped, no io_uring here\n", c->name);
		return;
	}
	if (c->mode == SVQISO_LOOP_EPOLL)
		must |= (1u << FN_EPOLL_CREATE1) | (1u << FN_EPOLL_CTL);
	if (c->mode == SVQISO_LOOP_URING)
		must |= 1u << FN_URING_INIT;
	if (c->relay)
		must |= 1u << FN_PTHREAD_CREATE;
	run_scenario(c->name, loop_scenario, c, must | (1u << FN_EVENTFD));
}
END_TEST

/* ---- a fake vhost-user backend, on a thread of its own ---- */

#define PEER_WAIT_MS	5000
#define BIT(n)		(1ull << (n))
#define PEER_FEATURES	(BIT(SVQ_FE_F_VERSION_1) | BIT(SVQ_VU_F_PROTOCOL_FEATURES) | \
			 BIT(SVQ_FE_F_EVENT_IDX) | BIT(SVQ_FE_F_INDIRECT_DESC))
#define PEER_PROTOCOL	(BIT(SVQ_VU_PROTOCOL_F_MQ) |				\
			 BIT(SVQ_VU_PROTOCOL_F_REPLY_ACK) |			\
			 BIT(SVQ_VU_PROTOCOL_F_CONFIG) |			\
			 BIT(SVQ_VU_PROTOCOL_F_RESET_DEVICE))

static struct {
	int sock;		/* the session; -1: none yet */
	int listen_fd;		/* a path session's listening socket, or -1 */
	char dir[80], path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool slots;		/* offers CONFIGURE_MEM_SLOTS */
	bool stop;		/* __atomic: give up waiting for a connection */
	pthread_t thread;
	bool running;
} P = { .sock = -1, .listen_fd = -1 };

/* Read exactly @len bytes; fds that come are closed. Return: 1, 0 (EOF
 * before the first byte), -1. */
static int peer_recv(void *buf, size_t len)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SVQ_VU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct pollfd pfd = { .fd = P.sock, .events = POLLIN };
	size_t got = 0;

	while (got < len) {
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = ctl.buf,
				     .msg_controllen = sizeof(ctl.buf) };
		struct cmsghdr *c;
		ssize_t n;
		int fd;
		size_t i;

		if (poll(&pfd, 1, PEER_WAIT_MS) != 1)
			return -1;
		n = recvmsg(P.sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 && got == 0 ? 0 : -1;
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
		got += (size_t)n;
	}
	return 1;
}

/* Answer a request as a well-behaved backend. Return: false to stop. */
static bool peer_answer(const struct svq_vu_hdr *h, const union svq_vu_payload *in)
{
	struct svq_vu_hdr rh = { .request = h->request,
				 .flags = SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY,
				 .size = sizeof(uint64_t) };
	uint8_t wire[SVQ_VU_HDR_SIZE + sizeof(union svq_vu_payload)];
	union svq_vu_payload out;
	const uint8_t *p;
	size_t left;
	ssize_t n;

	memset(&out, 0, sizeof(out));
	switch (h->request) {
	case SVQ_VU_GET_FEATURES:
		out.u64 = PEER_FEATURES;
		break;
	case SVQ_VU_GET_PROTOCOL_FEATURES:
		out.u64 = PEER_PROTOCOL |
			  (P.slots ? BIT(SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS) : 0);
		break;
	case SVQ_VU_GET_QUEUE_NUM:
		out.u64 = 1;
		break;
	case SVQ_VU_GET_MAX_MEM_SLOTS:
		out.u64 = 32;
		break;
	case SVQ_VU_GET_VRING_BASE:
		/* Nothing was ever taken from a fresh split ring. */
		rh.size = sizeof(struct svq_vu_vring_state);
		out.state.index = in->state.index;
		out.state.num = 0;
		break;
	case SVQ_VU_GET_CONFIG:
		if (in->config.size > SVQ_VU_CONFIG_MAX)
			return false;
		rh.size = SVQ_VU_CONFIG_HDR_SIZE + in->config.size;
		out.config.offset = in->config.offset;
		out.config.size = in->config.size;
		break;
	default:
		if (!(h->flags & SVQ_VU_FLAG_NEED_REPLY))
			return true;
		out.u64 = 0;	/* ack */
		break;
	}
	memcpy(wire, &rh, SVQ_VU_HDR_SIZE);
	memcpy(wire + SVQ_VU_HDR_SIZE, &out, rh.size);
	for (p = wire, left = SVQ_VU_HDR_SIZE + rh.size; left; ) {
		n = send(P.sock, p, left, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		left -= (size_t)n;
	}
	return true;
}

static void *peer_main(void *arg)
{
	struct svq_vu_hdr h;
	union svq_vu_payload in;

	(void)arg;
	exempt = true;
	while (P.listen_fd >= 0 && P.sock < 0) {
		struct pollfd pfd = { .fd = P.listen_fd, .events = POLLIN };

		if (__atomic_load_n(&P.stop, __ATOMIC_ACQUIRE))
			return NULL;
		if (poll(&pfd, 1, 10) == 1)
			P.sock = accept4(P.listen_fd, NULL, NULL, SOCK_CLOEXEC);
	}
	for (;;) {
		if (peer_recv(&h, SVQ_VU_HDR_SIZE) != 1 || h.size > sizeof(in))
			break;
		if (h.size && peer_recv(&in, h.size) != 1)
			break;
		if (!peer_answer(&h, &in))
			break;
	}
	close(P.sock);
	P.sock = -1;
	return NULL;
}

/* Start the fake backend. Return: the frontend's end of a socketpair, or
 * (@path) -1, the backend listening at P.path. */
static int peer_start(bool path, bool slots)
{
	int sv[2] = { -1, -1 };

	P.slots = slots;
	P.stop = false;
	P.sock = -1;
	P.listen_fd = -1;
	if (path) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		P.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(P.listen_fd, 0);
		memcpy(sa.sun_path, P.path, sizeof(sa.sun_path));
		unlink(P.path);
		ck_assert_int_eq(bind(P.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		ck_assert_int_eq(listen(P.listen_fd, 1), 0);
	} else {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		P.sock = sv[1];
	}
	ck_assert_int_eq(pthread_create(&P.thread, NULL, peer_main, NULL), 0);
	P.running = true;
	return sv[0];
}

/* The session is over (or never came): wait for the fake backend. */
static void peer_join(void)
{
	ck_assert(P.running);
	__atomic_store_n(&P.stop, true, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_join(P.thread, NULL), 0);
	P.running = false;
	if (P.listen_fd >= 0) {
		close(P.listen_fd);
		P.listen_fd = -1;
		unlink(P.path);
	}
}

static void peer_dir(void)
{
	const char *tmp = getenv("TMPDIR");

	/* A socket path has room for little more than 100 bytes. */
	if (!tmp || !*tmp || strlen(tmp) >= 48)
		tmp = "/tmp";
	snprintf(P.dir, sizeof(P.dir), "%s/svqiso-faults-XXXXXX", tmp);
	ck_assert_ptr_nonnull(mkdtemp(P.dir));
	ck_assert_int_lt(snprintf(P.path, sizeof(P.path), "%s/sock", P.dir),
			 (int)sizeof(P.path));
}

static void peer_dir_remove(void)
{
	unlink(P.path);
	rmdir(P.dir);
}

/* ---- scenario: the vhost-user frontend session ---- */

struct fe_case {
	const char *name;
	bool path;		/* svq_fe_connect() to a socket path */
	bool slots;		/* the backend has CONFIGURE_MEM_SLOTS */
};

static const struct fe_case fe_cases[] = {
	{ "frontend: socketpair, memory table", false, false },
	{ "frontend: socket path, memory slots", true, true },
};

/* A session step failed: the session is over, and says so. */
static int fe_failed(struct svq_fe *fe, int rc, const char *what)
{
	int again;

	expect_fault(rc, what);
	ck_assert_msg(svq_fe_fd(fe) < 0, "%s: %s failed (%d), the session goes on",
		      fault_desc, what, rc);
	LIB(again = svq_fe_vring_enable(fe, 0, true));
	ck_assert_int_eq(again, -ENOTCONN);
	return rc;
}

#define FE_STEP(what, call) do {					\
	LIB(rc = (call));						\
	if (rc)								\
		return fe_failed(fe, rc, what);				\
} while (0)

static int fe_steps(struct svq_fe *fe, const struct svqiso_region *reg,
		    int kick, int call)
{
	struct svqiso_shadow_info info = {
		.layout = SVQISO_LAYOUT_SPLIT, .num = NUM,
		.uaddr = { 0x10000, 0x11000, 0x12000 },
	};
	uint8_t cfg[16] = { 0 };
	uint64_t agreed;
	uint32_t base;
	int rc;

	FE_STEP("set_features", svq_fe_set_features(fe, ~0ull, &agreed));
	FE_STEP("region_add", svq_fe_region_add(fe, reg));
	FE_STEP("vring_start", svq_fe_vring_start(fe, 0, &info, kick, call));
	FE_STEP("vring_stop", svq_fe_vring_stop(fe, 0, &base));
	FE_STEP("vring_enable", svq_fe_vring_enable(fe, 0, true));
	FE_STEP("get_config", svq_fe_get_config(fe, 0, cfg, sizeof(cfg)));
	FE_STEP("set_config", svq_fe_set_config(fe, 0, cfg, sizeof(cfg), 0));
	FE_STEP("region_del", svq_fe_region_del(fe, reg));
	FE_STEP("reset", svq_fe_reset(fe));
	return 0;
}

static void fe_scenario(const void *arg)
{
	const struct fe_case *c = arg;
	SVQISO_OPTS(svqiso_iso_opts, io, .name = "flt");
	SVQISO_OPTS(svq_fe_opts, fo, .timeout_ms = PEER_WAIT_MS, .log = log_cb);
	struct svqiso_iso *iso;
	struct svqiso_region reg;
	unsigned int attempts = 0;
	int rc, sock, kick = efd(), call = efd();

	ck_assert_int_eq(svqiso_iso_new(&io, &iso), 0);
	ck_assert_int_eq(svqiso_iso_region_new(iso, 4096, &reg), 0);
	for (;;) {
		struct svq_fe *fe = NULL;

		ck_assert_uint_lt(attempts++, 3);
		sock = peer_start(c->path, c->slots);
		if (c->path)
			LIB(rc = svq_fe_connect(P.path, &fo, &fe));
		else	/* the session owns @sock from here, whatever comes */
			LIB(rc = svq_fe_connect_fd(sock, &fo, &fe));
		if (rc) {
			expect_fault(rc, "connect");
			ck_assert_ptr_null(fe);
			peer_join();
			continue;
		}
		ck_assert_uint_eq(svq_fe_queue_num(fe), 1);
		rc = fe_steps(fe, &reg, kick, call);
		LIB(svq_fe_free(fe));
		peer_join();
		if (!rc)
			break;
	}
	svqiso_iso_free(iso);
	close(kick);
	close(call);
}

START_TEST(test_frontend_faults_clean)
{
	const struct fe_case *c = &fe_cases[_i];
	unsigned int must = (1u << FN_CALLOC) | (1u << FN_SENDMSG) |
			    (1u << FN_RECVMSG);

	if (c->path) {
		peer_dir();
		must |= (1u << FN_SOCKET) | (1u << FN_CONNECT);
	}
	run_scenario(c->name, fe_scenario, c, must);
	if (c->path)
		peer_dir_remove();
}
END_TEST

/* ---- scenario: the vhost engine (a VMM that owns its session) ---- */

#define F(b)		(1ull << (b))

struct engine_case {
	const char *name;
	uint8_t layout;		/* guest and shadow */
};

static const struct engine_case engine_cases[] = {
	{ "engine: split", SVQISO_LAYOUT_SPLIT },
	{ "engine: packed", SVQISO_LAYOUT_PACKED },
};

static struct svqiso_vhost_vring vring_at(uint8_t layout, uint32_t base)
{
	return (struct svqiso_vhost_vring){ .sz = sizeof(struct svqiso_vhost_vring),
					    .ring = guest_addr, .num = NUM,
					    .layout = layout, .base = base };
}

/* Start queue 0 at @base; a failed start changes nothing and a second
 * one goes through. Return: what the start reposted. */
static unsigned int engine_start(struct svqiso_vhost *vh, uint8_t layout,
				 uint32_t base, const char *what)
{
	struct svqiso_vhost_vring v = vring_at(layout, base);
	struct svqiso_vhost_shadow sh = { .sz = sizeof(sh) };
	unsigned int held = svqiso_vhost_queue_in_flight(vh, 0);
	int rc;

	LIB(rc = svqiso_vhost_queue_start(vh, 0, &v, &sh));
	if (rc) {
		expect_fault(rc, what);
		ck_assert(!svqiso_vhost_queue_running(vh, 0));
		/* Requests kept for the next backend stay kept. */
		ck_assert_uint_eq(svqiso_vhost_queue_in_flight(vh, 0), held);
		LIB(rc = svqiso_vhost_queue_start(vh, 0, &v, &sh));
	}
	ck_assert_msg(rc == 0, "%s: %s again: %d", fault_desc, what, rc);
	ck_assert(svqiso_vhost_queue_running(vh, 0));
	ck_assert_ptr_null(svqiso_vhost_queue_broken(vh, 0));
	return sh.reposted;
}

static void engine_scenario(const void *arg)
{
	const struct engine_case *c = arg;
	SVQISO_OPTS(svqiso_vhost_opts, o, .shadow_layout = c->layout,
		    .max_num = 64, .pool_size = 1 << 20,
		    .region_add = region_add_cb, .region_del = region_del_cb,
		    .log = log_cb, .name = "flt");
	uint64_t offered = F(SVQ_FE_F_INDIRECT_DESC) | F(SVQ_FE_F_EVENT_IDX) |
			   F(SVQ_FE_F_VERSION_1) | F(SVQ_FE_F_RING_PACKED) |
			   F(SVQ_VU_F_PROTOCOL_FEATURES) | 0xffull;
	struct svqiso_mem_region r = { .gpa = GBASE, .size = GSIZE, .fd = -1 };
	struct svqiso_vhost *vh = NULL;
	struct guest g;
	uint64_t gf, bf;
	uint32_t base;
	int rc;

	region_adds = region_dels = 0;
	guest_open(&g, c->layout);
	r.hva = g.ram;
	LIB(rc = svqiso_vhost_new(&o, &vh));
	if (rc) {
		expect_fault(rc, "vhost_new");
		ck_assert_ptr_null(vh);
		LIB(rc = svqiso_vhost_new(&o, &vh));
	}
	ck_assert_int_eq(rc, 0);
	LIB(rc = svqiso_vhost_set_guest_mem(vh, &r, 1));
	if (rc) {
		expect_fault(rc, "set_guest_mem");
		LIB(rc = svqiso_vhost_set_guest_mem(vh, &r, 1));
	}
	ck_assert_int_eq(rc, 0);
	gf = svqiso_vhost_guest_features(vh, offered);
	if (c->layout == SVQISO_LAYOUT_SPLIT)
		gf &= ~F(SVQ_FE_F_RING_PACKED);
	bf = svqiso_vhost_backend_features(vh, gf, offered);
	LIB(rc = svqiso_vhost_set_features(vh, gf, bf));
	ck_assert_int_eq(rc, 0);
	LIB(rc = svqiso_vhost_queue_set_call(vh, 0, -1));
	if (rc) {
		expect_fault(rc, "queue_set_call");
		LIB(rc = svqiso_vhost_queue_set_call(vh, 0, -1));
	}
	ck_assert_int_eq(rc, 0);

	ck_assert_uint_eq(engine_start(vh, c->layout, fresh_base(c->layout), "start"), 0);
	guest_post(&g);
	guest_post(&g);
	LIB(rc = svqiso_vhost_queue_kick(vh, 0));
	ck_assert_int_ge(rc, 0);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(vh, 0), 2);

	/* The backend is lost holding both; the next one gets them again. */
	LIB(rc = svqiso_vhost_queue_backend_lost(vh, 0, &base));
	ck_assert_int_eq(rc, 2);
	ck_assert_uint_eq(engine_start(vh, c->layout, base, "start, repost"), 2);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(vh, 0), 2);

	/* The guest resets its ring: a new svq. */
	LIB(rc = svqiso_vhost_queue_reset(vh, 0));
	ck_assert_int_eq(rc, 0);
	guest_ring(&g);
	ck_assert_uint_eq(engine_start(vh, c->layout, fresh_base(c->layout),
				       "start, new svq"), 0);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(vh, 0), 0);

	/* Stopped where the backend took nothing, and started there again:
	 * the shadow ring is laid out afresh in place (a reset). */
	LIB(rc = svqiso_vhost_queue_stop(vh, 0, fresh_base(c->layout), 100, -1,
					 &base));
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(engine_start(vh, c->layout, base, "start, reset"), 0);

	LIB(svqiso_vhost_free(vh));
	guest_close(&g);
}

START_TEST(test_engine_faults_clean)
{
	const struct engine_case *c = &engine_cases[_i];

	run_scenario(c->name, engine_scenario, c,
		     (1u << FN_CALLOC) | (1u << FN_REALLOC) | (1u << FN_EVENTFD) |
		     (1u << FN_MEMFD_CREATE));
}
END_TEST

/* ---- scenario: the vhost-user adapter ---- */

struct vu_case {
	const char *name;
	uint8_t mode;		/* enum svqiso_vu_mode */
	uint8_t loop_mode;
	uint32_t flags;		/* SVQISO_VU_F_* */
	unsigned int must;	/* bits of enum fn beyond every case's */
};

static const struct vu_case vu_cases[] = {
	{ "vu: isolated, epoll relay", SVQISO_VU_ISOLATED, SVQISO_LOOP_EPOLL, 0,
	  (1u << FN_PTHREAD_CREATE) | (1u << FN_EPOLL_CREATE1) },
	{ "vu: isolated, io_uring relay", SVQISO_VU_ISOLATED, SVQISO_LOOP_URING, 0,
	  (1u << FN_PTHREAD_CREATE) | (1u << FN_URING_INIT) },
	{ "vu: isolated, external loop", SVQISO_VU_ISOLATED, SVQISO_LOOP_AUTO,
	  SVQISO_VU_F_EXTERNAL_LOOP, 1u << FN_MEMFD_CREATE },
	{ "vu: direct", SVQISO_VU_DIRECT, SVQISO_LOOP_AUTO, 0, 0 },
};

/* A step of the adapter failed: a session fault ends the session (the
 * caller starts afresh); any other leaves the adapter as it was, and the
 * same call goes through without it. */
#define VU_STEP(what, call) do {					\
	LIB(rc = (call));						\
	if (rc) {							\
		expect_fault(rc, what);					\
		if (session_fault())					\
			return rc;					\
		LIB(rc = (call));					\
		ck_assert_msg(rc == 0, "%s: %s again: %d", fault_desc,	\
			      what, rc);				\
	}								\
} while (0)

/*
 * The backend dies with the queue running, and a fresh one takes over:
 * svqiso_vu_reconnect() with a fault fails and leaves the adapter as after
 * the hang-up, so a call again with another backend gets through. Return:
 * 0, or the failure of a step of that recovery.
 */
static bool vu_hung_up;

static void vu_hangup_cb(void *ctx)
{
	(void)ctx;
	__atomic_store_n(&vu_hung_up, true, __ATOMIC_RELEASE);
}

static int vu_backend_dies(struct svqiso_vu *vu, bool ext)
{
	unsigned int k;
	int rc, fd;

	__atomic_store_n(&vu_hung_up, false, __ATOMIC_RELEASE);
	shutdown(P.sock, SHUT_RDWR);
	peer_join();
	/* The relay thread sees it (the same calls each run: its own are
	 * not counted); with the external loop, the check does. */
	if (ext) {
		LIB(rc = svqiso_vu_session_check(vu));
		ck_assert_int_eq(rc, 1);
	}
	for (k = 0; k < 2000 && !__atomic_load_n(&vu_hung_up, __ATOMIC_ACQUIRE); k++)
		usleep(1000);
	ck_assert(vu_hung_up);
	for (k = 0; ; k++) {
		ck_assert_uint_lt(k, 2);
		fd = peer_start(false, true);
		LIB(rc = svqiso_vu_reconnect(vu, fd));
		if (rc >= 0)
			break;
		expect_fault(rc, "reconnect");
		ck_assert_int_ne(rc, -EBUSY);
		peer_join();
	}
	ck_assert_int_eq(svqiso_vu_session_check(vu), 0);
	return 0;
}

static int vu_steps(struct svqiso_vu *vu, const struct svqiso_mem_region *gr,
		    struct svqiso_vu_queue *qc, bool ext, bool iso)
{
	uint64_t features = svqiso_vu_get_features(vu) & ~F(SVQ_FE_F_RING_PACKED);
	struct svqiso_vu_info info = { .sz = sizeof(info) };
	uint32_t base;
	int rc;

	VU_STEP("set_features", svqiso_vu_set_features(vu, features));
	VU_STEP("add_region", svqiso_vu_add_region(vu, gr));
	VU_STEP("queue_start", svqiso_vu_queue_start(vu, 0, qc));
	ck_assert_int_eq(svqiso_vu_get_info(vu, &info), 0);
	ck_assert_uint_eq(info.running, 1);
	if (ext) {
		LIB(rc = svqiso_vu_queue_kick(vu, 0));
		ck_assert_int_ge(rc, 0);
		LIB(rc = svqiso_vu_queue_process(vu, 0));
		ck_assert_int_ge(rc, 0);
	}
	if (iso)
		vu_backend_dies(vu, ext);
	VU_STEP("queue_stop", svqiso_vu_queue_stop(vu, 0, &base));
	qc->base = base;
	VU_STEP("queue_start again", svqiso_vu_queue_start(vu, 0, qc));
	VU_STEP("queue_stop again", svqiso_vu_queue_stop(vu, 0, &base));
	ck_assert_int_eq(svqiso_vu_get_info(vu, &info), 0);
	ck_assert_uint_eq(info.running, 0);
	ck_assert_ptr_null(svqiso_vu_queue_broken(vu, 0));
	return 0;
}

static void vu_scenario(const void *arg)
{
	const struct vu_case *c = arg;
	int gfd = memfd_create("flt-guest", MFD_CLOEXEC), kick = efd(), call = efd();
	struct svqiso_mem_region gr = { .gpa = GBASE, .size = GSIZE, .fd = gfd };
	unsigned int attempts = 0;
	int rc;

	ck_assert_int_ge(gfd, 0);
	ck_assert_int_eq(ftruncate(gfd, GSIZE), 0);
	gr.hva = mmap(NULL, GSIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gfd, 0);
	ck_assert_ptr_ne(gr.hva, MAP_FAILED);
	for (;;) {
		SVQISO_OPTS(svqiso_vu_opts, o, .fd = -1, .log = log_cb,
			    .pool_size = 256 << 10, .timeout_ms = PEER_WAIT_MS,
			    .mode = c->mode, .loop_mode = c->loop_mode,
			    .flags = c->flags, .shadow_layout = SVQISO_LAYOUT_SPLIT,
			    .relay_start = exempt_hook, .hangup = vu_hangup_cb);
		struct svqiso_vu_queue qc = {
			.sz = sizeof(qc), .ring = guest_addr, .num = NUM,
			.layout = SVQISO_LAYOUT_SPLIT, .base = 0,
			.kick_fd = kick, .call_fd = call,
		};
		struct svqiso_vu *vu = NULL;

		ck_assert_uint_lt(attempts++, 3);
		o.fd = peer_start(false, true);
		LIB(rc = svqiso_vu_connect(&o, &vu));
		if (rc) {
			expect_fault(rc, "vu_connect");
			ck_assert_ptr_null(vu);
			peer_join();
			continue;
		}
		rc = vu_steps(vu, &gr, &qc, c->flags & SVQISO_VU_F_EXTERNAL_LOOP,
			      c->mode == SVQISO_VU_ISOLATED);
		LIB(svqiso_vu_free(vu));
		peer_join();
		if (!rc)
			break;
	}
	munmap(gr.hva, GSIZE);
	close(gfd);
	close(kick);
	close(call);
}

START_TEST(test_vu_faults_clean)
{
	const struct vu_case *c = &vu_cases[_i];
	unsigned int must = (1u << FN_CALLOC) | (1u << FN_FCNTL) |
			    (1u << FN_SENDMSG) | (1u << FN_RECVMSG) | c->must;

	if (c->loop_mode == SVQISO_LOOP_URING && !uring_expected()) {
		printf("# %s: skipped, no io_uring here\n", c->name);
		return;
	}
	run_scenario(c->name, vu_scenario, c, must);
}
END_TEST

/* ---- the injector itself ---- */

START_TEST(test_injector_counts_only_armed_calls)
{
	void *p;
	int fd;

	memset(&I, 0, sizeof(I));
	p = calloc(1, 8);		/* the test's own: not counted */
	free(p);
	ck_assert_uint_eq(I.calls, 0);
	I.fail_at = 2;
	LIB(p = calloc(1, 8); fd = eventfd(0, EFD_CLOEXEC));
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(errno, EMFILE);
	ck_assert(I.fired);
	ck_assert_int_eq(I.fired_fn, FN_EVENTFD);
	ck_assert_int_eq(I.live, 1);
	LIB(free(p));
	ck_assert_int_eq(I.live, 0);
	ck_assert_uint_eq(I.calls, 2);
	memset(&I, 0, sizeof(I));
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc;

	tc = tcase_create("injector");
	tcase_add_test(tc, test_injector_counts_only_armed_calls);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_mem_faults_clean);
	tcase_add_test(tc, test_iso_pool_faults_clean);
	suite_add_tcase(s, tc);

	tc = tcase_create("svq");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_svq_faults_clean, 0,
			    (int)(sizeof(svq_cases) / sizeof(svq_cases[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("loop");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_loop_faults_clean, 0,
			    (int)(sizeof(loop_cases) / sizeof(loop_cases[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("vhost-user");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_frontend_faults_clean, 0,
			    (int)(sizeof(fe_cases) / sizeof(fe_cases[0])));
	tcase_add_loop_test(tc, test_engine_faults_clean, 0,
			    (int)(sizeof(engine_cases) / sizeof(engine_cases[0])));
	tcase_add_loop_test(tc, test_vu_faults_clean, 0,
			    (int)(sizeof(vu_cases) / sizeof(vu_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(faults_suite());
	int failed;

	verbose = getenv("SVQ_FAULTS_VERBOSE") && *getenv("SVQ_FAULTS_VERBOSE") == '1';
	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
