/* SPDX-License-Identifier: MIT */
/*
 * Event loop: the object, its queue table, mode selection, the epoll backend
 * and busy polling. The io_uring backend is in uring.c.
 *
 * One wake-up: drain each signalled eventfd, run the handlers each queue
 * needs (used before avail: completions free the bounce space and shadow
 * descriptors new chains need), OR their masks, then write each needed
 * eventfd once per queue. Everything is sized at new(): nothing is allocated
 * while relaying.
 */
#define _GNU_SOURCE	/* POLLRDHUP */
#include <stdlib.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "loop_priv.h"
#include "svq_priv.h"

#if defined(__LP64__)
_Static_assert(sizeof(struct svqiso_loop_opts) == 64, "svqiso_loop_opts is append-only");
_Static_assert(sizeof(struct svqiso_loop_queue) == 32, "svqiso_loop_queue is append-only");
#endif

#define DEFAULT_MAX_QUEUES	64
#define MAX_QUEUES		4096	/* keeps the io_uring SQ within limits */

/* epoll data: queue index << 1 | 1 for the backend call fd; or EP_STOP,
 * EP_WATCH. */
#define EP_STOP			UINT64_MAX
#define EP_WATCH		(UINT64_MAX - 1)
#define EP_DATA(i, call)	(((uint64_t)(i) << 1) | (call))

static const uint64_t one = 1;

static const char *mode_name(int mode)
{
	switch (mode) {
	case SVQISO_LOOP_URING:
		return "io_uring";
	case SVQISO_LOOP_EPOLL:
		return "epoll";
	case SVQISO_LOOP_BUSY_POLL:
		return "busy-poll";
	}
	return "auto";
}

static uint32_t qidx(const struct svqiso_loop *loop, const struct svq_loop_q *q)
{
	return (uint32_t)(q - loop->q);
}

/* ---- Shared by every backend ---- */

static int queue_broken(struct svqiso_loop *loop, struct svq_loop_q *q,
			const char *what, int err)
{
	const char *reason = svqiso_svq_broken_reason(q->svq);

	q->dead = true;
	svq_log(loop->log, loop->log_ctx, SVQISO_LOG_ERR,
		"loop: queue %u no longer relayed: %s failed (%d): %s",
		qidx(loop, q), what, err, reason ? reason : "not broken");
	return -EIO;
}

void svq_loop_fd_failed(struct svqiso_loop *loop, struct svq_loop_q *q,
			const char *what, int err)
{
	if (q->dead && q->fd_failed)
		return;
	q->dead = true;
	q->fd_failed = true;
	svq_log(loop->log, loop->log_ctx, SVQISO_LOG_ERR,
		"loop: queue %u no longer relayed: reading its %s failed: %s",
		qidx(loop, q), what, strerror(-err));
}

void svq_loop_write_failed(struct svqiso_loop *loop, struct svq_loop_q *q,
			   int fd, int err)
{
	if (q->write_err_logged)
		return;
	q->write_err_logged = true;
	svq_log(loop->log, loop->log_ctx, SVQISO_LOG_WARN,
		"loop: queue %u: writing eventfd %d failed: %s (logged once)",
		qidx(loop, q), fd, strerror(-err));
}

int svq_loop_service(struct svqiso_loop *loop, struct svq_loop_q *q)
{
	uint8_t ev = q->events, again = 0;
	int mask = 0, ret;

	q->events = 0;
	if (q->dead)
		return 0;
	if (ev & SVQ_LOOP_EV_CALL) {
		ret = svqiso_svq_process_used(q->svq);
		if (ret < 0)
			return queue_broken(loop, q, "process_used", ret);
		if (ret & SVQISO_SIGNAL_AGAIN)
			again |= SVQ_LOOP_EV_CALL;
		mask |= ret;
	}
	if ((ev & SVQ_LOOP_EV_KICK) && !q->no_avail) {
		ret = svqiso_svq_process_avail(q->svq);
		if (ret == -EINVAL) {
			/* Element mode: requests come through submit(). */
			q->no_avail = true;
			if (q->guest_kick_fd >= 0)
				svq_log(loop->log, loop->log_ctx, SVQISO_LOG_WARN,
					"loop: queue %u is in element mode; its guest kick fd is ignored",
					qidx(loop, q));
		} else if (ret < 0) {
			return queue_broken(loop, q, "process_avail", ret);
		} else {
			if (ret & SVQISO_SIGNAL_AGAIN)
				again |= SVQ_LOOP_EV_KICK;
			mask |= ret;
		}
	}
	/* What a handler left for later: the next service runs it again. */
	q->events = again;
	if (q->guest_call_fd < 0)
		mask &= ~SVQISO_SIGNAL_GUEST;
	return mask;
}

/* One 8-byte eventfd read by syscall. Return: 1 (read), 0 (nothing), -errno. */
static int read_fd(struct svqiso_loop *loop, int fd)
{
	uint64_t v;
	ssize_t n;

	do {
		n = read(fd, &v, sizeof(v));
	} while (n < 0 && errno == EINTR);
	loop->ctr.reads++;
	if (n == sizeof(v))
		return 1;
	if (n < 0 && errno == EAGAIN)
		return 0;
	return n < 0 ? -errno : -EIO;
}

static void write_fd(struct svqiso_loop *loop, struct svq_loop_q *q, int fd)
{
	ssize_t n;

	do {
		n = write(fd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
	loop->ctr.writes++;
	/* EAGAIN: the counter is at its maximum, so the peer is woken anyway. */
	if (n != sizeof(one) && !(n < 0 && errno == EAGAIN))
		svq_loop_write_failed(loop, q, fd, n < 0 ? -errno : -EIO);
}

static void signal_fds(struct svqiso_loop *loop, struct svq_loop_q *q, int mask)
{
	if (mask & SVQISO_SIGNAL_BACKEND)
		write_fd(loop, q, q->backend_kick_fd);
	if (mask & SVQISO_SIGNAL_GUEST)
		write_fd(loop, q, q->guest_call_fd);
}

static void drain_stop(struct svqiso_loop *loop)
{
	while (read_fd(loop, loop->stop_fd) > 0)
		;
}

/* ---- The hang-up watch ---- */

void svq_loop_watch_event(struct svqiso_loop *loop, int res)
{
	if (res == -ECANCELED || res == -EINTR || res == 0)
		return;		/* nothing happened: it is watched again */
	if (res < 0) {
		loop->watch_failed = true;
		svq_log(loop->log, loop->log_ctx, SVQISO_LOG_ERR,
			"loop: cannot watch fd %d for a hang-up: %s",
			loop->watch_fd, strerror(-res));
		return;
	}
	if (res & (POLLRDHUP | POLLHUP | POLLERR)) {
		loop->hung_up = true;
		svq_log(loop->log, loop->log_ctx, SVQISO_LOG_DEBUG,
			"loop: fd %d hung up (%#x): relaying stops",
			loop->watch_fd, (unsigned int)res);
	}
}

void svq_loop_watch_poll(struct svqiso_loop *loop, uint64_t now)
{
	struct pollfd p;

	if (!svq_loop_watching(loop) ||
	    now - loop->watch_polled < SVQ_LOOP_WATCH_POLL_NS)
		return;
	loop->watch_polled = now;
	p = (struct pollfd){ .fd = loop->watch_fd, .events = POLLRDHUP };
	if (poll(&p, 1, 0) < 0)
		svq_loop_watch_event(loop, errno == EAGAIN ? -EINTR : -errno);
	else
		svq_loop_watch_event(loop, p.revents & POLLNVAL ? -EBADF :
				     (int)p.revents);
}

/* A socket or a pipe: what poll() reports a hang-up on. */
static bool watchable(int fd)
{
	struct stat st;

	return fd >= 0 && !fstat(fd, &st) &&
	       (S_ISSOCK(st.st_mode) || S_ISFIFO(st.st_mode));
}

/* Write what @q's handlers of this pass asked for, and forget it. */
static void signal_owed(struct svqiso_loop *loop, struct svq_loop_q *q,
			svq_loop_signal_fn signal, void *ctx)
{
	if (q->owed)
		signal(loop, q, q->owed, ctx);
	q->owed = 0;
}

/* signal_fds() for a spin or busy polling. */
static void fd_signal(struct svqiso_loop *loop, struct svq_loop_q *q, int mask,
		      void *ctx)
{
	(void)ctx;
	signal_fds(loop, q, mask);
}

/* ---- Spinning between wake-ups (spin_ns) ---- */

static bool any_in_flight(const struct svqiso_loop *loop)
{
	uint32_t i;

	for (i = 0; i < loop->nr_queues; i++)
		if (!loop->q[i].dead && svqiso_svq_in_flight(loop->q[i].svq))
			return true;
	return false;
}

bool svq_loop_should_spin(struct svqiso_loop *loop)
{
	return svq_spin_should(&loop->spin, loop->spin.max_ns &&
				any_in_flight(loop));
}

void svq_loop_woken(struct svqiso_loop *loop)
{
	svq_spin_woken(&loop->spin);
}

/* Notifications off (busy) or back on for every live queue. */
static void spin_notify(struct svqiso_loop *loop, bool busy)
{
	uint32_t i;
	int ret;

	for (i = 0; i < loop->nr_queues; i++) {
		struct svq_loop_q *q = &loop->q[i];

		if (q->dead)
			continue;
		ret = svqiso_svq_set_busy_poll(q->svq, busy);
		if (ret < 0)
			queue_broken(loop, q, "set_busy_poll", ret);
	}
}

/*
 * One polling pass over every live queue, both rings, as busy polling and
 * spinning make it. Return: whether any handler did something: a signal
 * owed, or requests moved with none (both peers polling, or element mode,
 * whose callbacks kick for themselves).
 */
static bool poll_pass(struct svqiso_loop *loop, svq_loop_signal_fn signal,
		      void *ctx)
{
	bool progress = false;
	uint64_t moved;
	uint32_t i;
	int ret;

	loop->ctr.spins++;
	for (i = 0; i < loop->nr_queues; i++) {
		struct svq_loop_q *q = &loop->q[i];

		if (q->dead)
			continue;
		q->events = SVQ_LOOP_EV_CALL | SVQ_LOOP_EV_KICK;
		moved = svq_moved(q->svq);
		ret = svq_loop_service(loop, q);
		if (ret > 0) {
			q->owed |= (uint8_t)ret;
			progress = true;
		} else if (!q->dead && svq_moved(q->svq) != moved) {
			progress = true;
		}
	}
	/* Every queue's work first, then the signals: see epoll_run(). */
	for (i = 0; progress && i < loop->nr_queues; i++)
		signal_owed(loop, &loop->q[i], signal, ctx);
	return progress;
}

void svq_loop_spin(struct svqiso_loop *loop, svq_loop_signal_fn signal,
		   void *ctx)
{
	struct svq_spin_round round;
	uint32_t i;

	loop->ctr.spin_rounds++;
	spin_notify(loop, true);
	svq_spin_round_begin(&loop->spin, &round);
	while (!svq_loop_stopping(loop) && !loop->hung_up) {
		bool progress = poll_pass(loop, signal, ctx);

		if (!svq_spin_round_pass(&loop->spin, &round, progress,
					 progress || any_in_flight(loop)))
			break;
		if (round.yielded)
			loop->ctr.spin_yields++;
		svq_loop_watch_poll(loop, round.now);
	}
	spin_notify(loop, false);
	/* Also the queues that broke while spinning: the service pass after
	 * this lets the backend drop their fds. */
	for (i = 0; i < loop->nr_queues; i++)
		svq_loop_touch(loop, i, SVQ_LOOP_EV_CALL | SVQ_LOOP_EV_KICK);
}

/* ---- epoll backend ---- */

static int ep_ctl_events(struct svqiso_loop *loop, int op, int fd,
			 uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	return epoll_ctl(loop->epfd, op, fd, &ev) ? -errno : 0;
}

static int ep_ctl(struct svqiso_loop *loop, int op, int fd, uint64_t data)
{
	return ep_ctl_events(loop, op, fd, EPOLLIN, data);
}

/* Register or drop one fd so that *@registered becomes @want. */
static int ep_sync_fd(struct svqiso_loop *loop, int fd, bool want,
		      bool *registered, uint64_t data)
{
	int err;

	if (want == *registered)
		return 0;
	if (*registered) {
		ep_ctl(loop, EPOLL_CTL_DEL, fd, 0);
	} else {
		err = ep_ctl(loop, EPOLL_CTL_ADD, fd, data);
		if (err)
			return err;
	}
	*registered = want;
	return 0;
}

/* Make @q's registrations match what should be polled. */
static int ep_sync(struct svqiso_loop *loop, struct svq_loop_q *q)
{
	uint32_t i = qidx(loop, q);
	int err;

	err = ep_sync_fd(loop, q->guest_kick_fd, svq_loop_q_poll_kick(q),
			 &q->ep_kick, EP_DATA(i, 0));
	if (err)
		return err;
	return ep_sync_fd(loop, q->backend_call_fd, svq_loop_q_poll_call(q),
			  &q->ep_call, EP_DATA(i, 1));
}

static int epoll_run(struct svqiso_loop *loop)
{
	struct epoll_event *ev = loop->ep_events;
	int maxev = (int)(2 * loop->max_queues + 2);
	bool spun = false;
	uint32_t i, k;
	int n, j, ret;

	for (i = 0; i < loop->nr_queues; i++) {
		ret = ep_sync(loop, &loop->q[i]);
		if (ret) {
			svq_loop_fd_failed(loop, &loop->q[i], "eventfds (epoll)", ret);
			ep_sync(loop, &loop->q[i]);	/* drop what was added */
		}
	}
	while (!svq_loop_stopping(loop)) {
		if (spun)
			goto service;	/* the pass after a spin, then sleep */
		n = epoll_wait(loop->epfd, ev, maxev, -1);
		loop->ctr.waits++;
		svq_loop_woken(loop);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			svq_log(loop->log, loop->log_ctx, SVQISO_LOG_ERR,
				"loop: epoll_wait: %s", strerror(-ret));
			return ret;
		}
		for (j = 0; j < n; j++) {
			uint64_t d = ev[j].data.u64;
			struct svq_loop_q *q;
			bool call = d & 1;

			if (d == EP_STOP) {
				/* A stop that raced with the previous run's end
				 * must not keep the fd readable. */
				drain_stop(loop);
				continue;
			}
			if (d == EP_WATCH) {
				svq_loop_watch_event(loop, (int)ev[j].events);
				/* Level-triggered: a hang-up stays ready. */
				if (!svq_loop_watching(loop) && loop->ep_watch) {
					ep_ctl(loop, EPOLL_CTL_DEL, loop->watch_fd, 0);
					loop->ep_watch = false;
				}
				continue;
			}
			i = (uint32_t)(d >> 1);
			q = &loop->q[i];
			ret = read_fd(loop, call ? q->backend_call_fd : q->guest_kick_fd);
			if (ret < 0)
				svq_loop_fd_failed(loop, q, call ? "backend call fd" :
						   "guest kick fd", ret);
			svq_loop_touch(loop, i, call ? SVQ_LOOP_EV_CALL : SVQ_LOOP_EV_KICK);
		}
service:
		if (loop->hung_up)
			break;
		for (k = 0; k < loop->nr_touched; k++) {
			struct svq_loop_q *q = &loop->q[loop->touched[k]];

			q->touched = false;
			/* A handler that stopped at batch_bytes: signal what
			 * it did at once, then let it go on. Otherwise the
			 * signals wait for the end of the pass, as io_uring's
			 * go with its next wait: a guest woken between two
			 * queues could post work that overtakes what it
			 * posted before on a queue not serviced yet. */
			do {
				ret = svq_loop_service(loop, q);
				if (ret > 0 && (ret & SVQISO_SIGNAL_AGAIN)) {
					signal_fds(loop, q, ret | q->owed);
					q->owed = 0;
				} else if (ret > 0) {
					q->owed |= (uint8_t)ret;
				}
			} while (ret > 0 && (ret & SVQISO_SIGNAL_AGAIN));
			ep_sync(loop, q);	/* only removals can happen here */
		}
		for (k = 0; k < loop->nr_touched; k++)
			signal_owed(loop, &loop->q[loop->touched[k]], fd_signal, NULL);
		loop->nr_touched = 0;
		/* After a wake-up, not after a spin: one that ran out sleeps. */
		spun = !spun && svq_loop_should_spin(loop);
		if (spun)
			svq_loop_spin(loop, fd_signal, NULL);
	}
	return 0;
}

/* ---- busy polling ---- */

/* Passes between two looks at the clock for the watch: a few microseconds
 * idle, and bounded work each under load. */
#define BUSY_WATCH_PASSES	64

static int busy_run(struct svqiso_loop *loop)
{
	unsigned int n = 0;

	spin_notify(loop, true);
	while (!svq_loop_stopping(loop) && !loop->hung_up) {
		if (!poll_pass(loop, fd_signal, NULL))
			svq_cpu_relax();
		if (svq_loop_watching(loop) && ++n % BUSY_WATCH_PASSES == 0)
			svq_loop_watch_poll(loop, svq_spin_now());
	}
	spin_notify(loop, false);
	return 0;
}

/* ---- The object ---- */

int svqiso_loop_new(const struct svqiso_loop_opts *opts, struct svqiso_loop **out)
{
	struct svqiso_loop *loop;
	svqiso_loop_hangup_fn hangup;
	uint8_t mode;
	uint32_t maxq;
	svqiso_log_fn log = SVQ_OPTS_GET(opts, log, NULL);
	void *log_ctx = SVQ_OPTS_GET(opts, log_ctx, NULL);
	int err, watch_fd = -1;

	if (!out || !SVQ_OPTS_CHECK(svqiso_loop_opts, opts, log, log_ctx))
		return -EINVAL;
	mode = SVQ_OPTS_GET(opts, mode, SVQISO_LOOP_AUTO);
	maxq = SVQ_OPTS_GET(opts, max_queues, 0);
	if (mode > SVQISO_LOOP_BUSY_POLL)
		return svq_einval(log, log_ctx, "svqiso_loop_new: mode %u is no "
				  "loop mode", mode);
	if (maxq > MAX_QUEUES)
		return svq_einval(log, log_ctx, "svqiso_loop_new: max_queues %u "
				  "is over %u", maxq, MAX_QUEUES);
	hangup = SVQ_OPTS_GET(opts, hangup, NULL);
	if (hangup) {
		watch_fd = SVQ_OPTS_GET(opts, hangup_fd, -1);
		if (!watchable(watch_fd))
			return svq_einval(log, log_ctx, "svqiso_loop_new: "
					  "hangup_fd %d cannot be watched",
					  watch_fd);
	}
	if (!maxq)
		maxq = DEFAULT_MAX_QUEUES;

	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->stop_fd = -1;
	loop->epfd = -1;
	loop->watch_fd = watch_fd;
	loop->hangup = hangup;
	loop->hangup_ctx = SVQ_OPTS_GET(opts, hangup_ctx, NULL);
	loop->max_queues = maxq;
	loop->log = log;
	loop->log_ctx = log_ctx;
	svq_spin_init(&loop->spin, SVQ_OPTS_GET(opts, spin_ns, 0));
	err = -ENOMEM;
	loop->q = calloc(maxq, sizeof(*loop->q));
	loop->touched = calloc(maxq, sizeof(*loop->touched));
	if (!loop->q || !loop->touched)
		goto fail;
	loop->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->stop_fd < 0) {
		err = -errno;
		goto fail;
	}

	if (mode == SVQISO_LOOP_AUTO || mode == SVQISO_LOOP_URING) {
		err = svq_uring_new(loop, &loop->uring);
		if (!err) {
			mode = SVQISO_LOOP_URING;
		} else if (mode == SVQISO_LOOP_URING) {
			goto fail;
		} else {
			svq_log(loop->log, loop->log_ctx, SVQISO_LOG_INFO,
				"loop: io_uring unavailable (%s); using epoll",
				strerror(-err));
			mode = SVQISO_LOOP_EPOLL;
		}
	}
	if (mode == SVQISO_LOOP_EPOLL) {
		loop->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (loop->epfd < 0) {
			err = -errno;
			goto fail;
		}
		loop->ep_events = calloc(2 * (size_t)maxq + 2, sizeof(struct epoll_event));
		if (!loop->ep_events) {
			err = -ENOMEM;
			goto fail;
		}
		err = ep_ctl(loop, EPOLL_CTL_ADD, loop->stop_fd, EP_STOP);
		if (err)
			goto fail;
		if (watch_fd >= 0) {
			/* Not EPOLLIN: the peer's messages are not ours. */
			err = ep_ctl_events(loop, EPOLL_CTL_ADD, watch_fd,
					    EPOLLRDHUP, EP_WATCH);
			if (err)
				goto fail;
			loop->ep_watch = true;
		}
	}
	loop->mode = mode;
	svq_log(loop->log, loop->log_ctx, SVQISO_LOG_DEBUG, "loop: %s, up to %u queues",
		mode_name(mode), maxq);
	*out = loop;
	return 0;

fail:
	svqiso_loop_free(loop);
	return err;
}

void svqiso_loop_free(struct svqiso_loop *loop)
{
	if (!loop)
		return;
	svq_uring_free(loop->uring);
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->stop_fd >= 0)
		close(loop->stop_fd);
	free(loop->ep_events);
	free(loop->touched);
	free(loop->q);
	free(loop);
}

int svqiso_loop_mode(const struct svqiso_loop *loop)
{
	return loop ? loop->mode : -EINVAL;
}

static bool fd_ok(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

int svqiso_loop_add(struct svqiso_loop *loop, const struct svqiso_loop_queue *qa)
{
	struct svqiso_svq *svq;
	struct svq_loop_q *q;
	int gk, gc, bk, bc, err;
	uint32_t i;

	if (!loop || !qa || !SVQ_OPTS_OK(svqiso_loop_queue, qa))
		return -EINVAL;
	svq = SVQ_OPTS_GET(qa, svq, NULL);
	gk = SVQ_OPTS_GET(qa, guest_kick_fd, -1);
	gc = SVQ_OPTS_GET(qa, guest_call_fd, -1);
	bk = SVQ_OPTS_GET(qa, backend_kick_fd, -1);
	bc = SVQ_OPTS_GET(qa, backend_call_fd, -1);
	if (!svq || gk < -1 || gc < -1 || bk < 0 || bc < 0 || gk == bc)
		return -EINVAL;
	if ((gk >= 0 && !fd_ok(gk)) || (gc >= 0 && !fd_ok(gc)) ||
	    !fd_ok(bk) || !fd_ok(bc))
		return -EINVAL;
	if (__atomic_load_n(&loop->running, __ATOMIC_ACQUIRE))
		return -EBUSY;
	for (i = 0; i < loop->nr_queues; i++) {
		const struct svq_loop_q *o = &loop->q[i];

		if (o->svq == svq)
			return -EEXIST;
		/* Each fd the loop reads has one reader: a read drains it. */
		if ((gk >= 0 && (gk == o->guest_kick_fd || gk == o->backend_call_fd)) ||
		    bc == o->guest_kick_fd || bc == o->backend_call_fd)
			return -EINVAL;
	}
	if (loop->nr_queues == loop->max_queues)
		return -ENOSPC;

	q = &loop->q[loop->nr_queues];
	*q = (struct svq_loop_q){
		.svq = svq,
		.guest_kick_fd = gk,
		.guest_call_fd = gc,
		.backend_kick_fd = bk,
		.backend_call_fd = bc,
	};
	if (loop->mode == SVQISO_LOOP_EPOLL) {
		/* Register now so a bad fd is refused here, not in run(). */
		err = ep_sync(loop, q);
		if (err) {
			q->dead = true;
			ep_sync(loop, q);
			return err == -EBADF || err == -EPERM ? -EINVAL : err;
		}
	}
	loop->nr_queues++;
	return 0;
}

/* Queues whose svq was reset since they broke are relayed again. */
static void revive(struct svqiso_loop *loop)
{
	uint32_t i;

	for (i = 0; i < loop->nr_queues; i++) {
		struct svq_loop_q *q = &loop->q[i];

		if (!q->dead || q->fd_failed || svqiso_svq_is_broken(q->svq))
			continue;
		q->dead = false;
		svq_log(loop->log, loop->log_ctx, SVQISO_LOG_INFO,
			"loop: queue %u was reset; relaying it again", i);
	}
}

/* Relay in the loop's mode until a stop or a hang-up. */
static int relay(struct svqiso_loop *loop)
{
	revive(loop);
	switch (loop->mode) {
	case SVQISO_LOOP_URING:
		return svq_uring_run(loop);
	case SVQISO_LOOP_EPOLL:
		return epoll_run(loop);
	}
	return busy_run(loop);
}

int svqiso_loop_run(struct svqiso_loop *loop)
{
	int ret;

	if (!loop)
		return -EINVAL;
	if (__atomic_exchange_n(&loop->running, true, __ATOMIC_ACQ_REL))
		return -EBUSY;
	/* A loop whose peer hung up has nothing left to relay to. */
	ret = loop->hung_up ? 0 : relay(loop);
	if (loop->hung_up) {
		ret = -ECONNRESET;
		if (!loop->hangup_called) {
			loop->hangup_called = true;
			loop->hangup(loop->hangup_ctx);
		}
	} else if (!ret) {
		/* The stop is consumed; one that comes later is for the next run. */
		__atomic_store_n(&loop->stop, false, __ATOMIC_RELAXED);
		drain_stop(loop);
	}
	__atomic_store_n(&loop->running, false, __ATOMIC_RELEASE);
	return ret;
}

void svqiso_loop_stop(struct svqiso_loop *loop)
{
	ssize_t n;

	if (!loop)
		return;
	/* Pairs with the acquire load in svq_loop_stopping(). */
	__atomic_store_n(&loop->stop, true, __ATOMIC_RELEASE);
	/* Wake a sleeping run(); a failure leaves the counter already set. */
	do {
		n = write(loop->stop_fd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
}
