/* SPDX-License-Identifier: MIT */
/* The backend process seen from the test: spawn, requests, reaping. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "harness.h"

#define PEER_FD		3	/* where the backend finds its socket */
#define STOP_TIMEOUT_MS	30000	/* generous: the backend may run under valgrind */

int peer_spawn(struct peer *p, const struct peer_opts *o)
{
	const char *exe = getenv("SVQ_BACKEND");
	char a_sock[32], a_mode[48], a_after[48], a_seed[48], a_ind[48];
	char *argv[7];
	pid_t parent = getpid();
	int sv[2];

	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->sock = -1;
	if (!exe || !*exe)
		return -ENOENT;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	snprintf(a_sock, sizeof(a_sock), "--sock=%d", PEER_FD);
	snprintf(a_mode, sizeof(a_mode), "--mode=%s", hb_mode_name(o->mode));
	snprintf(a_after, sizeof(a_after), "--after=%" PRIu64, o->after);
	snprintf(a_seed, sizeof(a_seed), "--seed=%#" PRIx64, o->seed);
	snprintf(a_ind, sizeof(a_ind), "--max-indirect=%u", o->max_indirect);
	argv[0] = (char *)exe;
	argv[1] = a_sock;
	argv[2] = a_mode;
	argv[3] = a_after;
	argv[4] = a_seed;
	argv[5] = a_ind;
	argv[6] = NULL;

	p->pid = fork();
	if (p->pid < 0) {
		int err = -errno;

		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (p->pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (o->leak_fd >= 0)	/* negative control: F_DUPFD drops CLOEXEC */
			fcntl(o->leak_fd, F_DUPFD, 10);
		/* dup2() clears close-on-exec on the copy; everything else the
		 * test holds is close-on-exec and vanishes at exec. */
		if (dup2(sv[1], PEER_FD) < 0)
			_exit(127);
		if (sv[1] == PEER_FD)
			fcntl(PEER_FD, F_SETFD, 0);
		dup2(STDERR_FILENO, STDOUT_FILENO);	/* keep TAP clean */
		execv(exe, argv);
		_exit(127);
	}
	close(sv[1]);
	p->sock = sv[0];
	p->mode = o->mode;
	pthread_mutex_init(&p->lock, NULL);
	return 0;
}

int peer_stop(struct peer *p)
{
	struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };
	int status = -1, waited;
	pid_t r;

	if (p->pid <= 0)
		return -1;
	if (p->sock >= 0) {
		close(p->sock);
		p->sock = -1;
	}
	for (waited = 0; waited < STOP_TIMEOUT_MS; waited += 5) {
		r = waitpid(p->pid, &status, WNOHANG);
		if (r == p->pid)
			goto out;
		nanosleep(&ts, NULL);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
out:
	p->pid = -1;
	pthread_mutex_destroy(&p->lock);
	return status;
}

int peer_call(struct peer *p, struct hb_msg *m, const int *fds, unsigned int nfds,
	      struct hb_msg *ack)
{
	struct hb_msg a;
	int err;

	pthread_mutex_lock(&p->lock);
	m->seq = ++p->seq;
	err = hb_send(p->sock, m, fds, nfds);
	if (!err)
		err = hb_recv(p->sock, &a, NULL, 0, NULL);
	if (!err && (a.type != HB_ACK || a.seq != m->seq))
		err = -EBADMSG;
	if (!err)
		err = a.result;
	if (err && !p->last_error)
		p->last_error = err;
	pthread_mutex_unlock(&p->lock);
	if (ack && !err)
		*ack = a;
	return err;
}

int peer_region_add(struct peer *p, const struct svqiso_region *r)
{
	struct hb_msg m = {
		.type = HB_REGION_ADD,
		.region = {
			.iova = r->iova, .size = r->size, .offset = r->fd_offset,
			.uaddr = (uintptr_t)r->uaddr,
		},
	};
	int err = peer_call(p, &m, &r->fd, 1, NULL);

	if (!err)
		__atomic_add_fetch(&p->adds, 1, __ATOMIC_RELAXED);
	return err;
}

int peer_region_del(struct peer *p, uint64_t iova)
{
	struct hb_msg m = { .type = HB_REGION_DEL, .region = { .iova = iova } };
	int err = peer_call(p, &m, NULL, 0, NULL);

	if (!err)
		__atomic_add_fetch(&p->dels, 1, __ATOMIC_RELAXED);
	return err;
}

int peer_stats(struct peer *p, struct hb_stats *st)
{
	struct hb_msg m = { .type = HB_STATS }, ack;
	int err = peer_call(p, &m, NULL, 0, &ack);

	if (!err)
		*st = ack.stats;
	return err;
}

int peer_region_add_cb(void *ctx, const struct svqiso_region *r)
{
	return peer_region_add(ctx, r);
}

int peer_region_del_cb(void *ctx, const struct svqiso_region *r)
{
	return peer_region_del(ctx, r->iova);
}
