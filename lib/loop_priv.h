/* SPDX-License-Identifier: MIT */
/*
 * The event loop's private state, shared by loop.c (object, queue table,
 * epoll and busy-poll backends) and uring.c (the io_uring backend, the only
 * file that includes <liburing.h>).
 */
#ifndef SVQ_LOOP_PRIV_H
#define SVQ_LOOP_PRIV_H

#include <svqiso/loop.h>
#include "internal.h"
#include "spin.h"

/* What a wake-up saw on one queue. */
#define SVQ_LOOP_EV_KICK	(1u << 0)	/* guest kick: process_avail */
#define SVQ_LOOP_EV_CALL	(1u << 1)	/* backend call: process_used */

struct svq_loop_q {
	struct svqiso_svq *svq;
	int guest_kick_fd;	/* read; -1: none */
	int guest_call_fd;	/* written; -1: none */
	int backend_kick_fd;	/* written */
	int backend_call_fd;	/* read */
	uint8_t events;		/* SVQ_LOOP_EV_* gathered this wake-up */
	uint8_t owed;		/* SVQISO_SIGNAL_* to write at the pass's end */
	bool touched;		/* on loop->touched[] */
	bool dead;		/* broken svq or failed fd: not polled */
	bool fd_failed;		/* dead for good: an fd cannot be read */
	bool no_avail;		/* element mode: guest kicks are not ours */
	bool write_err_logged;
	/* epoll backend */
	bool ep_kick, ep_call;	/* registered with loop->epfd */
	/* io_uring backend: a read is in flight into the buffer beside it */
	bool kick_armed, call_armed;
	bool kick_poll, call_poll;	/* the last read got -EAGAIN: poll first */
	bool kick_cancel, call_cancel;	/* a cancel of the read is in flight */
	uint64_t kick_buf, call_buf;
};

/* Whether each read fd should be watched now. */
static inline bool svq_loop_q_poll_kick(const struct svq_loop_q *q)
{
	return !q->dead && !q->no_avail && q->guest_kick_fd >= 0;
}

static inline bool svq_loop_q_poll_call(const struct svq_loop_q *q)
{
	return !q->dead;
}

/* Internal counters; tests read them to count syscalls per request. */
struct svq_loop_counters {
	uint64_t waits;		/* epoll_wait / io_uring_enter(wait) calls */
	uint64_t reads;		/* eventfd reads (syscalls or SQEs) */
	uint64_t writes;	/* eventfd writes (syscalls or SQEs) */
	uint64_t spins;		/* busy-poll and spin iterations */
	uint64_t spin_rounds;	/* spins begun after a wake-up (spin_ns) */
	uint64_t spin_yields;	/* CPU given away while spinning idle */
};

struct svq_uring;

struct svqiso_loop {
	uint8_t mode;			/* resolved: never AUTO */
	uint32_t max_queues;
	uint32_t nr_queues;
	struct svq_loop_q *q;		/* [max_queues] */
	uint32_t *touched;		/* [max_queues]: queues with events */
	uint32_t nr_touched;
	int stop_fd;			/* eventfd svqiso_loop_stop() writes */
	bool stop;			/* __atomic: a stop is pending */
	bool running;			/* __atomic: inside svqiso_loop_run() */
	int epfd;			/* epoll backend, else -1 */
	void *ep_events;		/* struct epoll_event [2 * max_queues + 1] */
	struct svq_uring *uring;	/* io_uring backend, else NULL */
	svqiso_log_fn log;
	void *log_ctx;
	struct svq_spin spin;		/* max_ns 0: sleep at once after a
					 * wake-up */
	struct svq_loop_counters ctr;
	/* Hang-up watch (loop.h): only the run() thread touches these. */
	int watch_fd;			/* -1: none */
	svqiso_loop_hangup_fn hangup;
	void *hangup_ctx;
	bool watch_failed;		/* could not be watched: logged, off */
	bool hung_up;			/* seen: relay nothing more */
	bool hangup_called;
	bool ep_watch;			/* epoll backend: registered */
	uint64_t watch_polled;		/* now_ns() of the last poll() of it */
};

/* Whether the hang-up watch is on: set, not fired, not failed. */
static inline bool svq_loop_watching(const struct svqiso_loop *loop)
{
	return loop->watch_fd >= 0 && !loop->hung_up && !loop->watch_failed;
}

/*
 * svq_loop_watch_event() - what a wait on the watch reported: @res > 0 a
 * poll mask (a hang-up bit marks the loop hung up), 0 nothing (re-arm),
 * -errno a failure (logged; the watch is off).
 */
void svq_loop_watch_event(struct svqiso_loop *loop, int res);

/*
 * svq_loop_watch_poll() - spinning and busy polling, where no wait sees the
 * watch: poll() it if the last look was SVQ_LOOP_WATCH_POLL_NS before @now.
 */
#define SVQ_LOOP_WATCH_POLL_NS	100000000ull
void svq_loop_watch_poll(struct svqiso_loop *loop, uint64_t now);

static inline bool svq_loop_stopping(const struct svqiso_loop *loop)
{
	/* Pairs with the release store in svqiso_loop_stop(). */
	return __atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE);
}

/*
 * Note @ev on queue @i for this wake-up. Touched queues are serviced in the
 * order they were added to the loop, not the order their eventfds fired: a
 * device's receive queue comes before its transmit queue (virtio-net RX 2n,
 * TX 2n + 1), so receive buffers the driver posted before it transmitted
 * reach the backend ahead of the frames that need them. In firing order, a
 * transmit call from the backend put new frames ahead of the refills, and a
 * net backend dropped them for want of a buffer.
 */
static inline void svq_loop_touch(struct svqiso_loop *loop, uint32_t i,
				  uint8_t ev)
{
	struct svq_loop_q *q = &loop->q[i];
	uint32_t k;

	q->events |= ev;
	if (q->touched)
		return;
	q->touched = true;
	/* Usually in order already: one comparison. */
	for (k = loop->nr_touched; k && loop->touched[k - 1] > i; k--)
		loop->touched[k] = loop->touched[k - 1];
	loop->touched[k] = i;
	loop->nr_touched++;
}

/* Write the eventfds @mask asks for on @q, now. */
typedef void (*svq_loop_signal_fn)(struct svqiso_loop *loop,
				   struct svq_loop_q *q, int mask, void *ctx);

/*
 * svq_loop_should_spin() - whether the loop should poll instead of sleeping
 * now: svq_spin_should(), with some queue's requests in flight.
 */
bool svq_loop_should_spin(struct svqiso_loop *loop);

/* svq_loop_woken() - a wait returned: svq_spin_woken(). */
void svq_loop_woken(struct svqiso_loop *loop);

/*
 * svq_loop_spin() - poll every live queue's rings, notifications off, until
 * spin_ns pass without progress, nothing is in flight (see spin_ns in
 * loop.h) or the watch sees a hang-up; @signal writes what each pass asks
 * for at once. On return the
 * notifications are back on and every queue is touched: the caller services
 * them once more (which closes the race with a peer that saw them off), and
 * then sleeps. Writes the caller has queued must be out before the call.
 */
void svq_loop_spin(struct svqiso_loop *loop, svq_loop_signal_fn signal,
		   void *ctx);

/*
 * svq_loop_service() - run the handlers @q's events ask for and clear them.
 * A handler that returned SVQISO_SIGNAL_AGAIN leaves its event set: write
 * what the mask asks for now, then service @q again.
 *
 * Return: the SVQISO_SIGNAL_* mask to write, restricted to the fds @q has,
 * with SVQISO_SIGNAL_AGAIN if work is left; -EIO if the queue died now
 * (logged once; the caller stops polling it).
 */
int svq_loop_service(struct svqiso_loop *loop, struct svq_loop_q *q);

/* svq_loop_fd_failed() - an fd of @q failed: log, and mark it dead for good. */
void svq_loop_fd_failed(struct svqiso_loop *loop, struct svq_loop_q *q,
			const char *what, int err);

/* Log a failed eventfd write once per queue. */
void svq_loop_write_failed(struct svqiso_loop *loop, struct svq_loop_q *q,
			   int fd, int err);

/* ---- uring.c ---- */

/*
 * svq_uring_new() - set up the io_uring backend for @loop.
 *
 * Return: 0; -ENOSYS (built without io_uring, or the kernel lacks it or an
 * opcode the loop needs), -EPERM (forbidden), -ENOMEM, other -errno.
 */
int svq_uring_new(struct svqiso_loop *loop, struct svq_uring **out);
void svq_uring_free(struct svq_uring *u);

/* svq_uring_run() - relay until a stop. Return: 0, or -errno of the ring. */
int svq_uring_run(struct svqiso_loop *loop);

#endif /* SVQ_LOOP_PRIV_H */
