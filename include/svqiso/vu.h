/* SPDX-License-Identifier: MIT */
/*
 * vhost-user adapter for C frontends that own their vhost-user session
 * (cloud-hypervisor style). The VMM hands over its guest RAM regions, each
 * queue's guest ring and its guest kick and call eventfds; the adapter talks
 * to the unmodified backend and relays every request through a shadow
 * virtqueue on a thread of its own (or on the VMM's threads, with
 * SVQISO_VU_F_EXTERNAL_LOOP). The backend only ever receives isolated
 * memory: the shadow rings and one bounce arena per queue.
 *
 *   svqiso_vu_connect()       socket, SET_OWNER, features, protocol features
 *   svqiso_vu_get_features()  what the VMM may offer its guest
 *   svqiso_vu_set_features()  what the guest driver accepted
 *   svqiso_vu_add_region()    guest RAM (isolated mode: never sent)
 *   svqiso_vu_queue_start()   a guest ring and its eventfds: the queue runs
 *   svqiso_vu_queue_stop()    drain, GET_VRING_BASE: the guest vring base
 *   svqiso_vu_queue_kick()    external loop: the guest notified
 *   svqiso_vu_queue_process() external loop: the backend called
 *   svqiso_vu_queue_poll()    external loop: neither, the VMM polls
 *   svqiso_vu_session_fd()    with no relay thread: poll it for a hang-up
 *   svqiso_vu_session_check() ...and say so when it fires
 *   svqiso_vu_reconnect()     a new session after a hang-up: nothing lost
 *   svqiso_vu_free()
 *
 * Stopping a queue loses nothing, whatever the device: the adapter stops
 * taking guest requests and lets the backend finish what it works on; then
 * it stops the backend's ring and gives back to the guest ring what the
 * backend never took (posted net RX buffers, say), rewinding the guest base
 * over them. Requests the guest posted meanwhile stay in its ring too;
 * svqiso_vu_queue_start() at the returned base picks them all up.
 *
 * Each queue's bounce arena (pool_size) bounds what its requests hold. A
 * request larger than the arena is served all the same, through a one-off
 * isolated region made for it (ADD_MEM_REG, or a new SET_MEM_TABLE without
 * CONFIGURE_MEM_SLOTS, sent while the queue runs, from the thread running
 * the queue) and removed once it completes (REM_MEM_REG): one per queue at
 * a time, the next such request waiting for it. That costs two round trips
 * to the backend and a backend memory slot while it lasts; size pool_size
 * above the device's largest request to avoid it, or set
 * SVQISO_VU_F_NO_ONEOFF to break the queue instead. A backend that never
 * completes what it takes holds at most the arena and one one-off region
 * per queue; what the guest posts past that stays in its ring, and a queue
 * stop gives up after the timeout (-ETIMEDOUT, logged with the queue).
 *
 * A backend that hangs up (exits, crashes, closes its socket) takes the
 * requests it held with it. The adapter notices and stops relaying: the
 * queues that ran take nothing more from the guest (what it posts stays in
 * its ring), svqiso_vu_queue_broken() says how many requests each held, and
 * the opts' hangup callback runs once. In relay mode the relay thread
 * watches the session while a queue runs, and notices within a second;
 * otherwise (the external loop, direct mode, no queue running) the VMM
 * polls svqiso_vu_session_fd() and calls svqiso_vu_session_check().
 * Isolated mode keeps those requests, with their bounce copies: once the
 * backend is back (a supervisor restarted it), svqiso_vu_reconnect() opens
 * a new session and starts the queues again where they were, the requests
 * the old backend held posted first, so the guest sees a pause and loses
 * nothing.
 *
 * SVQISO_VU_DIRECT registers guest RAM and hands the guest rings and
 * eventfds to the backend unchanged, as plain vhost-user does. It gives no
 * isolation; it exists to measure isolation against.
 *
 * SVQISO_VU_F_EXTERNAL_LOOP starts no thread: the VMM runs each isolated
 * queue from its own event loop, or on the thread that sees the guest's
 * notify (a vCPU thread handling the notify exit):
 *
 *   the guest's notify                     -> svqiso_vu_queue_kick()
 *   svqiso_vu_queue_backend_fd() readable  -> svqiso_vu_queue_process()
 *
 * Both return what was asked for as SVQISO_SIGNAL_*; the adapter has written
 * the backend's kick eventfd and the guest's call eventfd itself, unless the
 * queue's call_fd is -1: then the VMM injects the interrupt when
 * SVQISO_SIGNAL_GUEST is set. A queue stop drains by itself as in relay mode.
 *
 * The relay thread is named "svqiso-relay". A VMM that places or confines
 * the threads it runs (CPU affinity, scheduling policy, cgroup, a seccomp
 * filter) reaches it through the relay_start hook in the opts.
 *
 * Thread safety: relay mode: the adapter's relay thread runs the queues;
 * every svqiso_vu_* call must come from one thread at a time (the VMM's
 * control thread). Calls that change queues or memory pause the relay
 * thread and resume it before they return.
 * External loop: svqiso_vu_queue_kick() and svqiso_vu_queue_process() on one
 * queue must be serialized by the VMM (distinct queues may run on distinct
 * threads). No other svqiso_vu_* call may run concurrently with them on any
 * queue, save svqiso_vu_queue_backend_fd(), svqiso_vu_queue_broken(),
 * svqiso_vu_get_queue_stats(), svqiso_vu_get_info() and
 * svqiso_vu_session_fd(), which only read, and svqiso_vu_session_check(),
 * which marks queues without touching their svqs:
 * quiesce the queues (as a VMM does for a memory or device change) around
 * svqiso_vu_queue_start(), svqiso_vu_queue_stop(), svqiso_vu_add_region(),
 * svqiso_vu_del_region(), svqiso_vu_reset() and svqiso_vu_free().
 */
#ifndef SVQISO_VU_H
#define SVQISO_VU_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <svqiso/common.h>
#include <svqiso/mem.h>
#include <svqiso/svq.h>

#ifdef __cplusplus
extern "C" {
#endif

enum svqiso_vu_mode {
	SVQISO_VU_ISOLATED = 0,		/* shadow virtqueues, isolated memory */
	SVQISO_VU_DIRECT = 1,		/* plain vhost-user: guest RAM shared */
};

/* Adapter flags */
#define SVQISO_VU_F_PRESERVE	(1u << 0)	/* copy-back policy "preserve" */
#define SVQISO_VU_F_NO_INDIRECT	(1u << 1)	/* shadow rings: no indirect */
#define SVQISO_VU_F_NO_EVENT_IDX (1u << 2)	/* shadow rings: no event idx */
#define SVQISO_VU_F_LAZY_KICKS	(1u << 3)	/* SVQISO_SVQ_F_LAZY_KICKS */
#define SVQISO_VU_F_EXTERNAL_LOOP (1u << 4)	/* no relay thread: the VMM
						 * calls svqiso_vu_queue_kick()
						 * and _process() */
#define SVQISO_VU_F_QUEUE_PAIRS	(1u << 5)	/* the backend counts queue
						 * pairs in GET_QUEUE_NUM, as a
						 * virtio-net backend does: the
						 * adapter runs 2 queues per
						 * pair (RX 2n, TX 2n + 1) */
#define SVQISO_VU_F_NO_ONEOFF	(1u << 6)	/* a request larger than the
						 * bounce arena breaks its
						 * queue, not served through
						 * a one-off region (see
						 * pool_size) */
#define SVQISO_VU_F_NO_SPIN	(1u << 7)	/* relay thread: sleep at once
						 * after each wake-up (spin_ns
						 * ignored) */

/* The relay thread's spin window, at most, when spin_ns is 0. */
#define SVQISO_VU_SPIN_DEFAULT_NS	50000ull

/**
 * svqiso_vu_relay_fn - the relay thread started.
 * @ctx: the opts' relay_ctx
 *
 * Called on the relay thread itself, first thing (after it is named
 * "svqiso-relay", so it may rename it) and before it relays anything. The
 * thread is a new one every time the relay starts: at the first queue
 * start, and again after every pause, that is each svqiso_vu_queue_start(),
 * svqiso_vu_queue_stop(), svqiso_vu_add_region() and svqiso_vu_reset() that
 * leaves a queue running. So what the hook sets for its calling thread
 * (sched_setaffinity(0, ...), a scheduling policy, a cgroup, a seccomp
 * filter, the name) holds for that thread's whole life and is set again on
 * the next one. With no queue running there is no thread and no call;
 * never called in direct mode or with SVQISO_VU_F_EXTERNAL_LOOP.
 *
 * After the hook the thread makes only these system calls: io_uring_enter
 * with the io_uring loop (its eventfd reads and writes, and the poll that
 * watches the session socket for a hang-up, are io_uring operations, which
 * a seccomp filter does not see); epoll_wait, epoll_ctl, read and write
 * with the epoll loop; write with busy polling; in every mode a read of its
 * stop eventfd when told to stop, then the thread's own exit (madvise,
 * exit). With busy polling, and with spin_ns while it spins, it also reads
 * the monotonic clock (clock_gettime: a vDSO call, a system call only where
 * the clock source has no vDSO path) and looks at the session socket at
 * most every 100 ms (poll, no wait). A request larger than the bounce
 * arena adds what a one-off region costs (unless SVQISO_VU_F_NO_ONEOFF):
 * memfd_create, ftruncate, fcntl, mmap, munmap and close, and sendmsg,
 * recvmsg and poll on the session socket (and the clock) for the messages
 * that add and remove it. When the backend hangs up it runs the opts' hangup callback
 * and exits. The loop is set up before, on the thread that starts the
 * relay; the log callback runs on the relay thread.
 *
 * Context: the relay thread, with every signal blocked (it takes none meant
 * for the VMM's threads), concurrently with the VMM's threads: the
 * svqiso_vu_* call that started the thread may return before the hook runs.
 * It must not call any svqiso_vu_* function, and should return promptly:
 * the queues wait for it.
 */
typedef void (*svqiso_vu_relay_fn)(void *ctx);

/**
 * svqiso_vu_hangup_fn - the backend hung up.
 * @ctx: the opts' hangup_ctx
 *
 * Called once per session, when the adapter first notices that the session
 * with the backend ended: the backend closed its socket or died, or the adapter
 * closed the session after a request failed (logged). By then every queue
 * that was running relays nothing more, and svqiso_vu_queue_broken() says
 * how many requests it held. The VMM then either reconnects
 * (svqiso_vu_reconnect(), isolated mode: nothing is lost) or stops the
 * queues and frees the adapter (what the backend held is lost with it).
 *
 * Context: relay mode with a queue running: the relay thread, with every
 * signal blocked, within a second of the hang-up (at once with the io_uring
 * and epoll loops, within 100 ms busy polling or spinning); the thread exits
 * after it. Otherwise: the thread in svqiso_vu_session_check(), before that
 * returns. It may call svqiso_vu_queue_broken(), svqiso_vu_get_queue_stats(),
 * svqiso_vu_get_info() and svqiso_vu_session_fd(), no other svqiso_vu_*
 * function, and should return promptly: hand the rest to the VMM's own loop.
 */
typedef void (*svqiso_vu_hangup_fn)(void *ctx);

struct svqiso_vu_opts {
	size_t sz;			/* = sizeof(struct svqiso_vu_opts) */
	const char *path;		/* the backend's unix socket; NULL: @fd */
	svqiso_log_fn log;		/* NULL: silent */
	void *log_ctx;
	uint64_t pool_size;		/* bounce arena per queue;
					 * 0: SVQISO_ARENA_DEFAULT_SIZE. A
					 * request larger goes through a
					 * one-off region (below) */
	int fd;				/* with @path NULL: a connected socket,
					 * owned by the adapter from the call on */
	uint32_t flags;			/* SVQISO_VU_F_* */
	int timeout_ms;			/* per backend reply, and for a queue to
					 * drain when stopped; 0: 5000 */
	uint8_t mode;			/* enum svqiso_vu_mode */
	uint8_t loop_mode;		/* enum svqiso_loop_mode */
	uint8_t copy;			/* enum svqiso_copy_kind */
	uint8_t shadow_layout;		/* enum svqiso_layout; packed only if
					 * the backend offers it */
	svqiso_vu_relay_fn relay_start;	/* on the relay thread each time it
					 * starts, before it relays anything;
					 * NULL: none */
	void *relay_ctx;		/* for relay_start */
	uint64_t batch_bytes;		/* isolated mode: bytes one handler
					 * call copies before it signals what
					 * it did and goes on (the svq opts'
					 * batch_bytes); 0: no limit */
	uint64_t spin_ns;		/* isolated mode, relay thread: how long
					 * it polls the rings for more work
					 * before it sleeps, at most (the loop
					 * opts' spin_ns, an adaptive window
					 * that shuts while waiting does not
					 * pay); 0: SVQISO_VU_SPIN_DEFAULT_NS.
					 * SVQISO_VU_F_NO_SPIN: it sleeps at
					 * once. See README */
	svqiso_vu_hangup_fn hangup;	/* the backend hung up; NULL: none
					 * (svqiso_vu_session_check() still
					 * says so) */
	void *hangup_ctx;		/* for hangup */
	uint64_t oneoff_max;		/* isolated mode: the largest request
					 * served through a one-off region
					 * (the svq opts' oneoff_max); 0: any
					 * under 4 GiB */
};
#define svqiso_vu_opts__last_field oneoff_max

struct svqiso_vu;

/**
 * svqiso_vu_connect() - connect to the backend and negotiate everything but
 * the device features (see svqiso_vu_set_features()). Protocol features
 * svqiso cannot honour under isolation are masked, each with a log line.
 * The backend's queue count is GET_QUEUE_NUM's answer (1 without MQ), or
 * twice that with SVQISO_VU_F_QUEUE_PAIRS.
 *
 * Return: 0; -EINVAL (bad opts, no socket), -ENOTSUP (a packed shadow ring
 * the backend does not offer), -ENOMEM, -EPROTO (a reply breaking the
 * protocol, such as over 256 queues or 128 pairs), -ETIMEDOUT,
 * -ECONNRESET, -errno from socket/connect.
 */
SVQISO_API int svqiso_vu_connect(const struct svqiso_vu_opts *opts,
				 struct svqiso_vu **out);

/**
 * svqiso_vu_free() - stop the relay, release every queue and isolated
 * region and close the session. Requests still in flight are dropped: stop
 * the queues first to complete them. NULL is a no-op.
 */
SVQISO_API void svqiso_vu_free(struct svqiso_vu *vu);

/**
 * svqiso_vu_get_features() - the virtio features the VMM may offer its
 * guest. Device-specific bits are the backend's, untouched. Isolated mode:
 * INDIRECT_DESC, EVENT_IDX and RING_PACKED are offered whatever the backend
 * does (svqiso serves the guest ring itself), VERSION_1, ANY_LAYOUT and
 * ORDER_PLATFORM as the backend offers them, no other transport bit. Direct
 * mode: the backend's transport bits less those svqiso masks. Never
 * VHOST_F_LOG_ALL or VHOST_USER_F_PROTOCOL_FEATURES. 0 for NULL.
 */
SVQISO_API uint64_t svqiso_vu_get_features(const struct svqiso_vu *vu);

/**
 * svqiso_vu_set_features() - the features the guest driver accepted, a
 * subset of svqiso_vu_get_features(). The backend gets SET_FEATURES with the
 * device bits as given; in isolated mode the transport bits are those of
 * the shadow rings (INDIRECT_DESC and EVENT_IDX as the backend offers them,
 * unless disabled by flags), which need not match the guest's.
 *
 * Return: 0; -EINVAL (NULL, bits not offered, a queue running), -ENOTCONN,
 * the session's errnos.
 */
SVQISO_API int svqiso_vu_set_features(struct svqiso_vu *vu, uint64_t features);

/**
 * svqiso_vu_add_region() - a guest RAM region. Isolated mode: it only
 * enters the adapter's memory map. Direct mode: it is registered with the
 * backend (it needs an fd). May be called while queues run.
 *
 * Return: 0; -EINVAL (NULL, direct mode without an fd), the errnos of
 * svqiso_mem_add_region(), -ENOSPC (no backend memory slot), the session's.
 */
SVQISO_API int svqiso_vu_add_region(struct svqiso_vu *vu,
				    const struct svqiso_mem_region *region);

/**
 * svqiso_vu_del_region() - remove the guest RAM region based at @gpa.
 *
 * Return: 0; -EINVAL (NULL), -ENOENT, -EBUSY (a queue is running: stop the
 * queues first, since requests in flight may point into the region).
 */
SVQISO_API int svqiso_vu_del_region(struct svqiso_vu *vu, uint64_t gpa);

/* struct svqiso_vu_queue - one guest queue, as the guest driver set it up. */
struct svqiso_vu_queue {
	size_t sz;			/* = sizeof(struct svqiso_vu_queue) */
	struct svqiso_vring_addr ring;	/* guest physical addresses */
	uint16_t num;			/* ring size */
	uint8_t layout;			/* enum svqiso_layout: must agree with
					 * RING_PACKED in the features */
	uint32_t base;			/* vring base, as SET_VRING_BASE
					 * carries it (svqiso_svq_reset()):
					 * 0 for a fresh split ring,
					 * SVQISO_PACKED_FRESH_BASE (or the
					 * low half alone, 1 << 15) for a
					 * fresh packed one, or what
					 * svqiso_vu_queue_stop() returned */
	int kick_fd;			/* guest kick eventfd (svqiso reads it);
					 * external loop (isolated): ignored,
					 * may be -1 */
	int call_fd;			/* guest interrupt eventfd (svqiso
					 * writes it); -1: none (external
					 * loop: the VMM injects it) */
};
#define svqiso_vu_queue__last_field call_fd

/**
 * svqiso_vu_queue_start() - start queue @index: isolated mode creates (or
 * resets) its shadow virtqueue and bounce arena, hands the shadow ring to
 * the backend and relays; direct mode hands the guest ring itself. The
 * fds stay the caller's; keep them open until the queue is stopped.
 *
 * External loop: the queue takes what the guest made available while it
 * was stopped (a kick then got -EINVAL), as a svqiso_vu_queue_kick() would.
 *
 * Every other running queue across whose run the backend stopped a ring
 * (GET_VRING_BASE) then gets SET_VRING_ENABLE 0 and 1: a backend may take
 * any GET_VRING_BASE for the whole device stopping and, once it starts
 * again, use only the queues whose state changed since (DPDK's vhost
 * library does), so that a net RX queue stopped and restarted alone leaves
 * TX running. Their rings and positions do not change.
 *
 * Return: 0; -EINVAL (NULL or bad struct, @index past the backend's queue
 * count, features not set, layout disagreeing with the features, bad
 * fds), -EBUSY (already running), -EFAULT (ring not in guest RAM), the
 * svq's, pool's and session's errnos.
 */
SVQISO_API int svqiso_vu_queue_start(struct svqiso_vu *vu, unsigned int index,
				     const struct svqiso_vu_queue *q);

/**
 * svqiso_vu_queue_stop() - stop queue @index without losing a request, and
 * report the guest ring's vring base for a later svqiso_vu_queue_start().
 * Isolated mode, in three steps:
 *  1. take no new guest request, and complete what the backend finishes,
 *     until completions stop for 100 ms while the backend, as far as its
 *     published ring position tells (EVENT_IDX), holds none of the rest:
 *     those are requests it leaves posted, such as net RX buffers on a quiet
 *     link (some backends, qemu-storage-daemon's among them, cannot finish
 *     a request after step 2); up to the adapter's timeout;
 *  2. SET_VRING_ENABLE 0 and GET_VRING_BASE on the shadow ring: what the
 *     shadow ring made available past that base was never seen by the
 *     backend and goes back to the guest ring (svqiso_svq_rewind());
 *  3. wait, up to the timeout, for what the backend took before the base.
 * So an idle net RX queue stops in about 100 ms, and the returned base
 * names its first posted buffer. Direct mode: SET_VRING_ENABLE 0 and
 * GET_VRING_BASE; the backend's base is the guest's. External loop: the
 * stop polls the backend's call eventfd and processes completions itself,
 * on the calling thread; with call_fd -1, what it completed to the guest is
 * not signalled: inject an interrupt after it.
 *
 * Packed guest rings: the base is in vhost's format, the used position in
 * the high half (see svqiso_svq_guest_base()).
 *
 * Return: 0; -EINVAL (NULL, @index not running), -ETIMEDOUT (requests still
 * in flight after the timeout, logged with the queue and their number, in
 * step 1 (the queue stays running but takes nothing new) or step 3 (the
 * backend's ring is stopped); call again, or give up on a backend that
 * never completes with svqiso_vu_reset() or svqiso_vu_free(), which drop
 * what it holds), -ECONNRESET (the backend hung up, or did not answer within the
 * timeout, with requests in flight, which are lost with it: the queue is
 * stopped, *@base counts them as taken), -EIO (the queue is broken, or the
 * backend's base contradicts what it completed; the base is where it
 * broke), the session's errnos.
 */
SVQISO_API int svqiso_vu_queue_stop(struct svqiso_vu *vu, unsigned int index,
				    uint32_t *base);

/**
 * svqiso_vu_queue_backend_fd() - external loop: the eventfd the backend
 * signals completions on for queue @index. When it is readable, call
 * svqiso_vu_queue_process(); the adapter reads it there, so the VMM only
 * polls it (level-triggered, or edge-triggered with a process per edge).
 * It is made at the queue's first start and stays the same, across stops
 * and starts, until svqiso_vu_free().
 *
 * Return: the fd (>= 0); -EINVAL (NULL, @index past the queue count, an
 * adapter without SVQISO_VU_F_EXTERNAL_LOOP), -ENOTSUP (direct mode: the
 * backend signals the guest's call_fd itself), -ENOENT (never started).
 */
SVQISO_API int svqiso_vu_queue_backend_fd(const struct svqiso_vu *vu,
					  unsigned int index);

/**
 * svqiso_vu_queue_kick() - external loop: the guest notified queue @index.
 * Take every chain it made available (until the ring is empty or the bounce
 * arena is full: those are taken as completions free space) and forward
 * them, kicking the backend when the shadow ring asks for it: after each
 * batch_bytes copied (the adapter's opts), so the backend starts on the
 * first requests of a large batch while the rest are copied.
 *
 * Return: a mask of SVQISO_SIGNAL_* (what was asked for, never
 * SVQISO_SIGNAL_AGAIN; the adapter wrote the eventfds, all but a call_fd of
 * -1); -EINVAL (NULL, @index past the
 * queue count or not running, an adapter without
 * SVQISO_VU_F_EXTERNAL_LOOP), -ENOTSUP (direct mode: the guest kicks the
 * backend itself), -EIO (the queue is broken, until it is stopped and
 * started again, or its backend hung up: see svqiso_vu_queue_broken()).
 *
 * Context: serialized with svqiso_vu_queue_process() on the same queue by
 * the caller; sleeps only for a request larger than the bounce arena (a
 * one-off region: a round trip to the backend), else never (an eventfd
 * write per batch_bytes copied).
 */
SVQISO_API int svqiso_vu_queue_kick(struct svqiso_vu *vu, unsigned int index);

/**
 * svqiso_vu_queue_process() - external loop: the backend signalled queue
 * @index. Reset its call eventfd (non-blocking), collect every completion,
 * copy data back and complete to the guest; then forward chains that waited
 * for bounce space, kicking the backend if needed. The guest's call_fd is
 * written when the guest ring asks for a notification, as soon as each
 * batch_bytes copied back is published; with call_fd -1 the VMM injects the
 * interrupt on SVQISO_SIGNAL_GUEST, after the call. A spurious call (nothing
 * completed) is harmless and returns 0.
 *
 * Return: a mask of SVQISO_SIGNAL_*, as svqiso_vu_queue_kick(); the same
 * errnos.
 *
 * Context: as svqiso_vu_queue_kick(); one eventfd read, and at most two
 * writes per batch_bytes copied; a completed request that had a one-off
 * region sends the message that removes it.
 */
SVQISO_API int svqiso_vu_queue_process(struct svqiso_vu *vu, unsigned int index);

/**
 * svqiso_vu_queue_poll() - external loop: a VMM that polls queue @index
 * instead of waiting for the guest's notify and the backend's call (a vCPU
 * or I/O thread spinning between wake-ups): collect what the backend
 * completed, then take what the guest posted, as svqiso_vu_queue_process()
 * and svqiso_vu_queue_kick() would, reading no eventfd.
 *
 * Return: the mask of svqiso_vu_queue_kick() (SVQISO_SIGNAL_GUEST: inject
 * the interrupt when call_fd is -1), with SVQISO_SIGNAL_MOVED when requests
 * moved either way; 0: nothing to do. The same errnos.
 *
 * Context: as svqiso_vu_queue_kick(), with which and with
 * svqiso_vu_queue_process() it is serialized on the same queue; no system
 * call unless a peer is signalled.
 */
SVQISO_API int svqiso_vu_queue_poll(struct svqiso_vu *vu, unsigned int index);

/**
 * svqiso_vu_queue_set_busy_poll() - external loop: @on: ask the guest not
 * to notify queue @index and the backend not to call it, while the VMM
 * polls it with svqiso_vu_queue_poll(); off: ask them to again, then poll
 * once more before waiting (what came while it was on came without a
 * signal). A queue stop, a reset or a reconnect turns it off.
 *
 * Return: 0; -EINVAL (NULL, @index past the queue count, @on and the queue
 * not running, no SVQISO_VU_F_EXTERNAL_LOOP), -ENOTSUP (direct mode), -EIO
 * (broken, or the backend hung up).
 *
 * Context: as svqiso_vu_queue_poll().
 */
SVQISO_API int svqiso_vu_queue_set_busy_poll(struct svqiso_vu *vu,
					     unsigned int index, bool on);

/**
 * svqiso_vu_queue_broken() - whether queue @index stopped relaying, and
 * why: a protocol violation, or the backend hanging up while the queue ran
 * ("backend hung up with 7 requests in flight": what it held when the
 * adapter noticed, lost with it); NULL if neither (or no such queue). A
 * violation's string lives until the queue is started again, a hang-up's
 * until the adapter is freed.
 */
SVQISO_API const char *svqiso_vu_queue_broken(const struct svqiso_vu *vu,
					      unsigned int index);

/**
 * svqiso_vu_session_fd() - the vhost-user session's socket, for a VMM that
 * watches for the backend hanging up (the external loop, direct mode, or
 * relay mode with no queue running). Poll it for POLLRDHUP (epoll:
 * EPOLLRDHUP; POLLHUP and POLLERR come unasked), never for POLLIN, and
 * never read, write or close it: it is the adapter's, open until
 * svqiso_vu_free(). When it reports, call svqiso_vu_session_check(). A
 * hang-up stays reported: take the fd out of the poll set then. After
 * svqiso_vu_reconnect() the same fd number is the new session's socket:
 * add it to the poll set again.
 *
 * Return: the fd (>= 0); -EINVAL (NULL).
 */
SVQISO_API int svqiso_vu_session_fd(const struct svqiso_vu *vu);

/**
 * svqiso_vu_session_check() - whether the backend hung up. If it did and
 * the adapter had not noticed yet, it acts as the relay thread would: every
 * running queue relays nothing more and is marked with what it held (see
 * svqiso_vu_queue_broken()), and the hangup callback runs, on this thread,
 * before the call returns. It looks at the socket without reading it (one
 * poll(), no wait).
 *
 * Return: 1 (hung up, now or before), 0 (the session is up); -EINVAL (NULL).
 *
 * Context: external loop: concurrently with svqiso_vu_queue_kick() and
 * svqiso_vu_queue_process() on any queue (a queue in one of them is marked
 * with what it held after its previous call), not with other calls. Relay
 * mode: the VMM's control thread; acting on a hang-up pauses the relay.
 */
SVQISO_API int svqiso_vu_session_check(struct svqiso_vu *vu);

/**
 * svqiso_vu_reconnect() - isolated mode: a new session with the backend
 * after the old one ended (the backend hung up, crashed, or was restarted),
 * losing no request. Every queue that was running, broken ones aside,
 * keeps what the old backend held, with its bounce copies; the new session
 * gets the same features and the isolated regions, and each such queue is
 * started again at the guest base past what the adapter took, the requests
 * the old backend held posted first, oldest first. The guest ring is not
 * touched: to the guest, the requests took longer. Queues the VMM stopped
 * after the hang-up (svqiso_vu_queue_stop() gave -ECONNRESET and a base)
 * keep their requests too: svqiso_vu_queue_start() at that base posts them.
 * Requests a backend had finished but not yet completed are done twice,
 * as after any device crash; a block device's are idempotent.
 * A hang-up not noticed yet is noticed first (the hangup callback runs, on
 * this thread). If the backend is not back, call again later.
 * @fd: a connected socket, owned by the adapter from the call on (closed on
 * error too); -1: connect to the opts' path again
 *
 * Return: the number of requests posted again (>= 0); -EINVAL (NULL, @fd
 * below -1, -1 for an adapter connected by fd), -ENOTSUP (direct mode:
 * what the backend held is unknown), -EBUSY (the session is up, or a
 * queue is stopping: its stop has to end first), -EPROTO (the backend came
 * back with fewer queues, or agreeing to other features), -ENOMEM, the
 * errnos of svqiso_vu_connect() and the session's (-ENOENT,
 * -ECONNREFUSED: nothing listens yet). On error the adapter is as before:
 * nothing relays, nothing is lost.
 *
 * Context: the VMM's control thread, as svqiso_vu_queue_start() (external
 * loop: with the queues quiesced).
 */
SVQISO_API int svqiso_vu_reconnect(struct svqiso_vu *vu, int fd);

/**
 * svqiso_vu_get_queue_stats() - queue @index's counters, kept across stop
 * and start on the same guest ring (a new ring, or new features, start them
 * afresh). While the queue runs they are read without stopping it, so they
 * may be a moment old.
 *
 * Return: 0; -EINVAL (NULL, sz too small), -ENOENT (never started),
 * -ENOTSUP (direct mode: nothing is counted).
 */
SVQISO_API int svqiso_vu_get_queue_stats(const struct svqiso_vu *vu,
					 unsigned int index,
					 struct svqiso_svq_stats *st);

/* struct svqiso_vu_info - the session, and what the backend can see. */
struct svqiso_vu_info {
	size_t sz;			/* = sizeof(struct svqiso_vu_info) */
	uint64_t backend_features;	/* GET_FEATURES */
	uint64_t acked_features;	/* SET_FEATURES (0 before) */
	uint64_t protocol_features;	/* agreed */
	uint64_t guest_bytes;		/* guest RAM added */
	uint64_t backend_bytes;		/* memory registered with the backend */
	uint32_t queues;		/* the backend's queue count (with
					 * SVQISO_VU_F_QUEUE_PAIRS twice its
					 * count of pairs) */
	uint32_t mem_slots;		/* the backend's memory slots */
	uint32_t guest_regions;
	uint32_t backend_regions;	/* regions registered with the backend */
	uint32_t running;		/* queues running */
	uint32_t mode;			/* enum svqiso_vu_mode */
	uint64_t spin_ns;		/* the relay thread's spin window at
					 * most; 0: none (it sleeps at once,
					 * or there is no relay thread) */
};
#define svqiso_vu_info__last_field spin_ns

/**
 * svqiso_vu_get_info() - fill @info; fields past @info->sz are left alone.
 *
 * Return: 0; -EINVAL (NULL, sz too small).
 */
SVQISO_API int svqiso_vu_get_info(const struct svqiso_vu *vu,
				  struct svqiso_vu_info *info);

/**
 * svqiso_vu_get_config() / svqiso_vu_set_config() - device config space
 * (GET_CONFIG / SET_CONFIG), @len bytes at @offset.
 *
 * Return: 0; -EINVAL, -ENOTSUP (the backend has no CONFIG), the session's
 * errnos.
 */
SVQISO_API int svqiso_vu_get_config(struct svqiso_vu *vu, uint32_t offset,
				    void *buf, uint32_t len);
SVQISO_API int svqiso_vu_set_config(struct svqiso_vu *vu, uint32_t offset,
				    const void *buf, uint32_t len);

/**
 * svqiso_vu_reset() - device reset: stop every queue (requests that do not
 * complete within the timeout are dropped), reset the backend (RESET_DEVICE,
 * or RESET_OWNER without it) and forget the features. Guest RAM stays.
 *
 * Return: 0; -EINVAL (NULL), the session's errnos.
 */
SVQISO_API int svqiso_vu_reset(struct svqiso_vu *vu);

#ifdef __cplusplus
}
#endif

#endif /* SVQISO_VU_H */
