/* SPDX-License-Identifier: MIT */
/*
 * Event loop: relays guest kick -> svqiso_svq_process_avail() -> backend kick,
 * and backend call -> svqiso_svq_process_used() -> guest call, over eventfds.
 * io_uring where the kernel allows it, epoll where io_uring is refused (as
 * containers often do), or busy polling.
 *
 * Each wake-up drains the eventfds that fired, runs process_used (backend
 * call) and process_avail (guest kick) for each queue concerned, in the
 * order the queues were added whatever order their eventfds fired in (add
 * a device's receive queue before its transmit queue, as virtio numbers
 * them: receive buffers found with new frames to send are forwarded
 * first), and writes each eventfd the returned masks ask for once. With io_uring the writes and
 * the re-armed reads go to the kernel in the same io_uring_enter() as the
 * next wait: one syscall per wake-up, however many requests it carries.
 * A handler that stops at the svq's batch_bytes (SVQISO_SIGNAL_AGAIN) has
 * its signals written at once (io_uring: submitted without waiting) and runs
 * again in the same wake-up, so the peers start on a large batch's first
 * requests while the loop copies the rest.
 *
 * Spinning (spin_ns, io_uring and epoll modes): after each wake-up in which
 * a queue still has requests in flight, the loop keeps both rings of every
 * queue polled, with the guest's kicks and the backend's calls suppressed
 * (as in busy polling), until spin_ns pass with nothing to do or nothing is
 * left in flight; then it turns notifications back on, looks once more and
 * sleeps. Completions that come within spin_ns of each other are then taken
 * without a single eventfd write by the backend or wake-up of the loop,
 * which is worth it where waking a thread costs more than the spin (virtual
 * machines, where a wake-up across CPUs is an IPI). The price is the loop
 * thread's CPU time while it waits, bounded by spin_ns after the last
 * progress; a backend that stops answering costs at most spin_ns once.
 * The window adapts, as QEMU's adaptive polling does: spin_ns is its
 * ceiling; an event that came after the loop had been idle (spinning, then
 * asleep) for longer than spin_ns halves it, and shuts it below 4 us; one
 * that came sooner doubles it again (from shut, to 4 us), so a queue whose
 * requests stay posted with nothing happening (net receive buffers) soon
 * costs no spinning at all. As sleeping makes the peers answer later than
 * spinning does, a shut window spins the whole spin_ns once in every 32
 * waits with requests in flight, and opens to twice the wait that spin saw
 * if it saw progress: a window never stays shut where a full spin would
 * catch the events. A spin that has found nothing to do for 4 us
 * gives its CPU away once (sched_yield()), and again after 8, 16, ... us
 * more, so a loop thread alone on its CPU makes a few system calls in a
 * long wait. A yield that let another thread run (it came back 2 us or more
 * later) says the CPU is shared, as a relay beside a vCPU on a small host
 * shares it: the spin then yields at the first pass with nothing to do
 * after progress, and at once again after a yield that let another thread
 * run, so that the guest runs as soon as it can instead of waiting out the
 * loop's pause; 64 yields in a row that come straight back make the CPU
 * the loop's own again. A spin of 0 (the default) sleeps at once.
 *
 * Hang-up watch (hangup_fd, hangup): the loop also watches one fd for its
 * peer hanging up (POLLRDHUP, POLLHUP or POLLERR; it is never read or
 * written), typically the backend's vhost-user session socket: when that
 * peer is gone no queue can progress. Then the loop relays nothing more:
 * svqiso_loop_run() calls hangup once, on its own thread, with every queue
 * as its last handler left it (no handler runs after the hang-up is seen),
 * and returns -ECONNRESET, as every later run() does at once. The watch
 * costs nothing per request: io_uring keeps one poll armed and epoll one
 * registration, both asleep until the peer goes; busy polling and spinning
 * (spin_ns) poll() it at most every 100 ms. So a hang-up is seen within
 * about 100 ms in every mode.
 *
 * Element mode: the loop only reads the backend call fd (guest_kick_fd is
 * -1), and svqiso_svq_submit() must be serialized with the loop thread. Call
 * it from the svq's complete callback (which runs on the loop thread) or
 * while run() is not running, and write backend_kick_fd yourself when it
 * returns SVQISO_SIGNAL_BACKEND.
 *
 * Thread safety: svqiso_loop_run() runs on one thread; svqiso_loop_stop() may
 * be called from any thread; everything else must not race with run().
 */
#ifndef SVQISO_LOOP_H
#define SVQISO_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <svqiso/common.h>
#include <svqiso/svq.h>

#ifdef __cplusplus
extern "C" {
#endif

enum svqiso_loop_mode {
	SVQISO_LOOP_AUTO = 0,		/* io_uring, else epoll */
	SVQISO_LOOP_URING = 1,
	SVQISO_LOOP_EPOLL = 2,
	SVQISO_LOOP_BUSY_POLL = 3,	/* no notifications; spins */
};

/**
 * svqiso_loop_hangup_fn - the peer of the loop's hangup_fd hung up.
 * @ctx: the opts' hangup_ctx
 *
 * Called at most once per loop, by svqiso_loop_run() just before it returns
 * -ECONNRESET. The svqs are idle and may be read (svqiso_svq_in_flight(),
 * svqiso_svq_get_stats()).
 *
 * Context: the thread in svqiso_loop_run(); it may call svqiso_loop_stop()
 * but no other svqiso_loop_* function.
 */
typedef void (*svqiso_loop_hangup_fn)(void *ctx);

struct svqiso_loop_opts {
	size_t sz;		/* = sizeof(struct svqiso_loop_opts) */
	uint8_t mode;		/* enum svqiso_loop_mode */
	uint32_t max_queues;	/* 0: 64; at most 4096 */
	svqiso_log_fn log;
	void *log_ctx;
	uint64_t spin_ns;	/* io_uring and epoll modes: after a wake-up,
				 * poll the rings of queues with requests in
				 * flight for up to this long without progress
				 * before sleeping; 0: never (see below) */
	int hangup_fd;		/* with @hangup: a socket or pipe to watch
				 * for its peer hanging up; the caller's, open
				 * until svqiso_loop_free() */
	svqiso_loop_hangup_fn hangup;	/* NULL: no watch (hangup_fd is
					 * not read) */
	void *hangup_ctx;
};
#define svqiso_loop_opts__last_field hangup_ctx

/* struct svqiso_loop_queue - one svq and its four eventfds. */
struct svqiso_loop_queue {
	size_t sz;		/* = sizeof(struct svqiso_loop_queue) */
	struct svqiso_svq *svq;
	int guest_kick_fd;	/* read: the guest kicked (-1 in element mode) */
	int guest_call_fd;	/* written: notify the guest (-1: none) */
	int backend_kick_fd;	/* written: kick the backend */
	int backend_call_fd;	/* read: the backend completed */
};
#define svqiso_loop_queue__last_field backend_call_fd

struct svqiso_loop;

/**
 * svqiso_loop_new() - create a loop.
 *
 * Return: 0; -EINVAL (bad opts; a hangup_fd not open, or neither a socket
 * nor a pipe), -ENOMEM, -ENOSYS/-EPERM (io_uring asked for
 * explicitly and refused by the kernel, or the library built without it),
 * other -errno from the kernel. SVQISO_LOOP_AUTO falls back to epoll on any
 * io_uring failure and logs why at SVQISO_LOG_INFO.
 */
SVQISO_API int svqiso_loop_new(const struct svqiso_loop_opts *opts,
			       struct svqiso_loop **out);

/** svqiso_loop_free() - NULL is a no-op; the svqs and fds are not closed. */
SVQISO_API void svqiso_loop_free(struct svqiso_loop *loop);

/** svqiso_loop_mode() - the mode in use (never AUTO); -EINVAL for NULL. */
SVQISO_API int svqiso_loop_mode(const struct svqiso_loop *loop);

/**
 * svqiso_loop_add() - relay one queue. Not while svqiso_loop_run() runs.
 * Written fds may be shared between queues; read fds may not (a read drains
 * the eventfd).
 *
 * Return: 0; -EINVAL (NULL or bad struct, no svq, a backend fd < 0, a guest
 * fd < -1, an fd not open, not pollable (epoll) or already read by a queue),
 * -EEXIST (svq already added), -ENOSPC (max_queues), -EBUSY (run() is
 * running).
 */
SVQISO_API int svqiso_loop_add(struct svqiso_loop *loop,
			       const struct svqiso_loop_queue *q);

/**
 * svqiso_loop_run() - relay until svqiso_loop_stop().
 *
 * Return: 0 after a stop; -ECONNRESET (the hangup_fd's peer hung up: the
 * hangup callback ran), -EINVAL (NULL), -EBUSY (already running); -errno
 * on a failure of the loop itself. A queue that breaks (a process function
 * returns -EIO) is logged once and no longer polled; the others go on. A
 * broken queue whose svq was reset in the meantime is relayed again by the
 * next run().
 * Busy-poll mode puts every queue in busy-poll (svqiso_svq_set_busy_poll())
 * for the duration of the run.
 */
SVQISO_API int svqiso_loop_run(struct svqiso_loop *loop);

/**
 * svqiso_loop_stop() - make svqiso_loop_run() return soon. Any thread; safe
 * in a signal handler. A stop while no run() is running makes the next
 * run() return at once.
 */
SVQISO_API void svqiso_loop_stop(struct svqiso_loop *loop);

#ifdef __cplusplus
}
#endif

#endif /* SVQISO_LOOP_H */
