/* SPDX-License-Identifier: MIT */
/*
 * svqiso-proxy: memory isolation for a vhost-user device, with no change
 * to the VMM or the backend. The VMM connects to the proxy's socket as to
 * any vhost-user backend; the proxy connects to the real backend and gives
 * it only svqiso's isolated memory. See --help and the README.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include <svqiso/vhost.h>

#include "proxy.h"

static int log_level = SVQISO_LOG_INFO;

static void log_stderr(void *ctx, int level, const char *msg)
{
	static const char *const names[] = {
		[SVQISO_LOG_ERR] = "error", [SVQISO_LOG_WARN] = "warning",
		[SVQISO_LOG_INFO] = "info", [SVQISO_LOG_DEBUG] = "debug",
	};

	(void)ctx;
	if (level > log_level)
		return;
	fprintf(stderr, "svqiso-proxy: %s: %s\n",
		level >= 0 && level <= SVQISO_LOG_DEBUG && names[level] ?
		names[level] : "log", msg);
}

static void usage(FILE *f)
{
	fprintf(f,
"Usage: svqiso-proxy --socket PATH --backend PATH [OPTION]...\n"
"       svqiso-proxy --fd N --backend PATH [OPTION]...\n"
"\n"
"Memory isolation for one vhost-user device: the VMM connects to PATH as to\n"
"any vhost-user backend and shares guest RAM with the proxy; the backend\n"
"only ever gets shadow rings and bounce buffers, never guest RAM.\n"
"\n"
"  -s, --socket PATH      listen on this unix socket (created; removed on exit)\n"
"      --fd N             listen on fd N, a listening unix socket handed over\n"
"                         by a service manager (LISTEN_FDS also works)\n"
"  -b, --backend PATH     the real backend's vhost-user socket\n"
"  -n, --name NAME        device name in log lines and stats (default: the\n"
"                         socket's file name)\n"
"      --shadow LAYOUT    shadow rings: split (default) or packed\n"
"      --copy KIND        auto (default), memcpy, movsb or nt\n"
"      --pool-size SIZE   bounce arena per queue (K, M, G suffixes)\n"
"      --preserve         copy-back policy preserve: whole writable area\n"
"      --no-indirect      no indirect descriptors on shadow rings\n"
"      --no-event-idx     no event idx on shadow rings\n"
"      --queues N         queue indexes the VMM may use (default: twice the\n"
"                         backend's queue count, or 8 without MQ)\n"
"      --timeout MS       backend replies and queue stops (default 5000)\n"
"      --reconnect MS     retry interval while the backend is gone (200)\n"
"      --stats SECONDS    print stats every SECONDS (also on SIGUSR1)\n"
"      --spin-us US       after a wake-up with requests in flight, poll the\n"
"                         rings with the guest's kicks and the backend's\n"
"                         calls off until US microseconds pass with nothing\n"
"                         to do; the window adapts below it (default 50;\n"
"                         0: sleep at once)\n"
"      --no-dirty-log     for testing migration checks only: take the VMM's\n"
"                         dirty log and write nothing into it, so a migrated\n"
"                         guest finds the memory svqiso wrote stale\n"
"  -v, --verbose          debug log lines\n"
"  -q, --quiet            errors and warnings only\n"
"  -h, --help             this text\n"
"      --version          the version\n"
"\n"
"Log lines go to stderr, stats to stdout: one JSON object per line.\n"
"SIGTERM and SIGINT stop the proxy; SIGUSR1 prints stats.\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 0);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static char *sock_path;

/* Listen on @path: a stale socket from a proxy that died is replaced, a
 * live one is not. */
static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sockaddr_un tmp = { .sun_family = AF_UNIX };
	struct stat st;
	bool own_tmp;
	int fd, probe;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "svqiso-proxy: %s: path too long\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "svqiso-proxy: %s exists and is not a socket\n", path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && !connect(probe, (struct sockaddr *)&sa, sizeof(sa))) {
			fprintf(stderr, "svqiso-proxy: %s is in use\n", path);
			close(probe);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	/* Bound and listening under a name of its own first, then renamed:
	 * whoever waits for @path to appear can connect as soon as it does. */
	if (snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%ld", path,
		     (long)getpid()) >= (int)sizeof(tmp.sun_path))
		tmp = sa;
	own_tmp = strcmp(tmp.sun_path, path) != 0;
	if (own_tmp)
		unlink(tmp.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) ||
	    listen(fd, 4) ||
	    (own_tmp && rename(tmp.sun_path, path))) {
		fprintf(stderr, "svqiso-proxy: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		if (own_tmp)
			unlink(tmp.sun_path);
		return -1;
	}
	sock_path = strdup(path);
	return fd;
}

/* A listening socket from a service manager: --fd N, or LISTEN_FDS. */
static int inherited_fd(int fd)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	int acc = 0, type;
	socklen_t len = sizeof(acc);

	if (fd < 0 && pid && n && atol(pid) == (long)getpid() && atoi(n) >= 1)
		fd = 3;
	if (fd < 0)
		return -1;
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) || type != SOCK_STREAM) {
		fprintf(stderr, "svqiso-proxy: fd %d is not a stream socket\n", fd);
		return -2;
	}
	len = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) || !acc) {
		fprintf(stderr, "svqiso-proxy: fd %d is not listening\n", fd);
		return -2;
	}
	return fd;
}

static void on_signal(struct proxy *p, int fd, void *ctx)
{
	struct signalfd_siginfo si;

	(void)ctx;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGUSR1) {
		proxy_stats(p, stdout);
		return;
	}
	{
		char msg[64];

		snprintf(msg, sizeof(msg), "%s: stopping", strsignal((int)si.ssi_signo));
		log_stderr(NULL, SVQISO_LOG_INFO, msg);
	}
	proxy_stop(p);
}

static void on_stats(struct proxy *p, int fd, void *ctx)
{
	uint64_t ticks;

	(void)ctx;
	if (read(fd, &ticks, sizeof(ticks)) > 0)
		proxy_stats(p, stdout);
}

enum {
	OPT_FD = 256, OPT_SHADOW, OPT_COPY, OPT_POOL, OPT_PRESERVE,
	OPT_NO_INDIRECT, OPT_NO_EVENT_IDX, OPT_QUEUES, OPT_TIMEOUT,
	OPT_RECONNECT, OPT_STATS, OPT_VERSION, OPT_NO_DIRTY_LOG, OPT_SPIN,
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "fd", required_argument, NULL, OPT_FD },
		{ "backend", required_argument, NULL, 'b' },
		{ "name", required_argument, NULL, 'n' },
		{ "shadow", required_argument, NULL, OPT_SHADOW },
		{ "copy", required_argument, NULL, OPT_COPY },
		{ "pool-size", required_argument, NULL, OPT_POOL },
		{ "preserve", no_argument, NULL, OPT_PRESERVE },
		{ "no-indirect", no_argument, NULL, OPT_NO_INDIRECT },
		{ "no-event-idx", no_argument, NULL, OPT_NO_EVENT_IDX },
		{ "queues", required_argument, NULL, OPT_QUEUES },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "reconnect", required_argument, NULL, OPT_RECONNECT },
		{ "stats", required_argument, NULL, OPT_STATS },
		{ "spin-us", required_argument, NULL, OPT_SPIN },
		{ "no-dirty-log", no_argument, NULL, OPT_NO_DIRTY_LOG },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	struct proxy_opts o = { .log = log_stderr,
				.spin_ns = SVQISO_VU_SPIN_DEFAULT_NS };
	const char *socket_arg = NULL;
	char name[64];
	double stats_s = 0;
	int c, v, lfd = -1, fd_arg = -1, sfd, tfd = -1, rc;
	struct proxy *p;
	sigset_t mask;

	while ((c = getopt_long(argc, argv, "s:b:n:vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 's': socket_arg = optarg; break;
		case 'b': o.backend = optarg; break;
		case 'n': o.name = optarg; break;
		case 'v': log_level = SVQISO_LOG_DEBUG; break;
		case 'q': log_level = SVQISO_LOG_WARN; break;
		case 'h': usage(stdout); return 0;
		case OPT_VERSION: printf("svqiso-proxy %s\n", svqiso_version()); return 0;
		case OPT_FD:
			if (parse_int(optarg, 0, INT_MAX, &fd_arg))
				goto badarg;
			break;
		case OPT_SHADOW:
			if (!strcmp(optarg, "split"))
				o.shadow_layout = SVQISO_LAYOUT_SPLIT;
			else if (!strcmp(optarg, "packed"))
				o.shadow_layout = SVQISO_LAYOUT_PACKED;
			else
				goto badarg;
			break;
		case OPT_COPY:
			if (!strcmp(optarg, "auto"))
				o.copy = SVQISO_COPY_AUTO;
			else if (!strcmp(optarg, "memcpy"))
				o.copy = SVQISO_COPY_MEMCPY;
			else if (!strcmp(optarg, "movsb"))
				o.copy = SVQISO_COPY_MOVSB;
			else if (!strcmp(optarg, "nt"))
				o.copy = SVQISO_COPY_NT;
			else
				goto badarg;
			break;
		case OPT_POOL:
			if (parse_size(optarg, &o.pool_size))
				goto badarg;
			break;
		case OPT_PRESERVE: o.vhost_flags |= SVQISO_VHOST_F_PRESERVE; break;
		case OPT_NO_DIRTY_LOG: o.no_dirty_log = true; break;
		case OPT_NO_INDIRECT: o.vhost_flags |= SVQISO_VHOST_F_NO_INDIRECT; break;
		case OPT_NO_EVENT_IDX: o.vhost_flags |= SVQISO_VHOST_F_NO_EVENT_IDX; break;
		case OPT_QUEUES:
			if (parse_int(optarg, 1, 256, &v))
				goto badarg;
			o.max_queues = (unsigned int)v;
			break;
		case OPT_TIMEOUT:
			if (parse_int(optarg, 1, 3600 * 1000, &o.timeout_ms))
				goto badarg;
			break;
		case OPT_RECONNECT:
			if (parse_int(optarg, 1, 3600 * 1000, &o.reconnect_ms))
				goto badarg;
			break;
		case OPT_SPIN:
			if (parse_int(optarg, 0, 1000 * 1000, &v))
				goto badarg;
			o.spin_ns = (uint64_t)v * 1000;
			break;
		case OPT_STATS:
			stats_s = strtod(optarg, NULL);
			if (stats_s <= 0)
				goto badarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !o.backend || (!socket_arg && fd_arg < 0 &&
					    !getenv("LISTEN_FDS")) ||
	    (socket_arg && fd_arg >= 0)) {
		fprintf(stderr, "svqiso-proxy: give --backend, and --socket or --fd\n");
		usage(stderr);
		return 2;
	}
	if (!o.name) {
		const char *base = socket_arg ? strrchr(socket_arg, '/') : NULL;

		snprintf(name, sizeof(name), "%s",
			 base ? base + 1 : socket_arg ? socket_arg : "svqiso-proxy");
		o.name = name;
	}

	/* Signals arrive through the loop; none interrupts a session. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		perror("svqiso-proxy: signalfd");
		return 1;
	}

	lfd = socket_arg ? listen_on(socket_arg) : inherited_fd(fd_arg);
	if (lfd < 0) {
		if (lfd == -1 && !socket_arg)
			fprintf(stderr, "svqiso-proxy: no listening fd\n");
		return 1;
	}
	rc = proxy_new(&o, &p);
	if (rc) {
		fprintf(stderr, "svqiso-proxy: %s\n", strerror(-rc));
		goto out;
	}
	if (proxy_watch(p, sfd, on_signal, NULL))
		goto out_free;
	if (stats_s > 0) {
		struct itimerspec its;

		its.it_value.tv_sec = (time_t)stats_s;
		its.it_value.tv_nsec = (long)((stats_s - (double)(time_t)stats_s) * 1e9);
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1000000;
		its.it_interval = its.it_value;
		tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (tfd < 0 || timerfd_settime(tfd, 0, &its, NULL) ||
		    proxy_watch(p, tfd, on_stats, NULL)) {
			perror("svqiso-proxy: stats timer");
			goto out_free;
		}
	}
	{
		char msg[PATH_MAX * 2 + 128];

		snprintf(msg, sizeof(msg), "%s: serving %s for backend %s", o.name,
			 socket_arg ? socket_arg : "an inherited socket", o.backend);
		log_stderr(NULL, SVQISO_LOG_INFO, msg);
	}
	rc = proxy_run(p, lfd);
	if (rc)
		fprintf(stderr, "svqiso-proxy: %s\n", strerror(-rc));
out_free:
	proxy_free(p);
out:
	if (tfd >= 0)
		close(tfd);
	close(sfd);
	close(lfd);
	if (sock_path) {
		unlink(sock_path);
		free(sock_path);
	}
	return rc ? 1 : 0;
badarg:
	fprintf(stderr, "svqiso-proxy: bad value for %s: %s\n",
		argv[optind - 1], optarg);
	return 2;
}
