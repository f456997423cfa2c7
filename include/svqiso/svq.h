/* SPDX-License-Identifier: MIT */
/*
 * Shadow virtqueue: the guest's requests reach the backend only as copies in
 * isolated memory.
 *
 *  avail side: guest chain (ring mode: popped from the guest ring; element
 *    mode: handed over by the VMM) -> validated -> bounce buffer from the pool
 *    -> driver-to-device bytes copied in -> shadow descriptors -> kick decision
 *  used side: shadow used entry -> validated -> device-to-driver bytes copied
 *    back into the request's writable guest segments only -> guest used entry
 *    (ring mode) or completion callback (element mode) -> notify decision
 *
 * The process functions return what must be signalled as a mask of
 * SVQISO_SIGNAL_*; the caller (svqiso_loop, or a VMM's own loop) writes the
 * eventfds. On any protocol violation, by the guest or the backend, the queue
 * is marked broken: the reason is logged once, and every call returns -EIO
 * until svqiso_svq_reset().
 *
 * Thread safety: a svqiso_svq is single-threaded; the caller serializes all
 * calls on one svq. Distinct svqs need no locking, but each needs a pool of
 * its own (or one the caller serializes).
 */
#ifndef SVQISO_SVQ_H
#define SVQISO_SVQ_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <svqiso/common.h>
#include <svqiso/mem.h>
#include <svqiso/iso.h>
#include <svqiso/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ring features, for the guest ring and the shadow ring independently. */
#define SVQISO_RING_F_EVENT_IDX	(1u << 0)	/* VIRTIO_F_EVENT_IDX */
#define SVQISO_RING_F_INDIRECT	(1u << 1)	/* VIRTIO_F_INDIRECT_DESC */

/* svq flags */
#define SVQISO_SVQ_F_ELEMENT	(1u << 0)	/* element mode: no guest ring */
#define SVQISO_SVQ_F_PRESERVE	(1u << 1)	/* copy-back policy "preserve" */
/*
 * Ring mode: while the backend holds requests, ask the guest for no kicks;
 * process_used() takes what the guest posted meanwhile. Fewer wake-ups under
 * load, but a chain posted while others are in flight waits for the next
 * completion: up to one backend service time of extra latency, and a
 * backend that finishes its batch early idles meanwhile. Whether it pays
 * depends on the workload; bench_e2e --lazy-kicks measures it.
 */
#define SVQISO_SVQ_F_LAZY_KICKS	(1u << 2)
/*
 * No one-off regions: a request larger than the pool can ever hold breaks
 * the queue, as for a frontend that cannot give the backend a region while
 * the queue runs (see oneoff_max in the opts).
 */
#define SVQISO_SVQ_F_NO_ONEOFF	(1u << 3)

/* What the caller must signal, returned by the process functions. */
#define SVQISO_SIGNAL_BACKEND	(1 << 0)	/* kick the backend */
#define SVQISO_SIGNAL_GUEST	(1 << 1)	/* notify (interrupt) the guest */
/*
 * Only with batch_bytes set: the call stopped with work left. Signal what
 * the rest of the mask says now, then call the same function again at once:
 * no notification comes for what is left.
 */
#define SVQISO_SIGNAL_AGAIN	(1 << 2)
/*
 * Only from the poll calls (svqiso_vhost_queue_poll(), svqiso_vu_queue_poll()):
 * requests moved, either way, whether or not a peer had to be signalled for
 * them (both polling). A spin that sees it has work going on.
 */
#define SVQISO_SIGNAL_MOVED	(1 << 3)

/* struct svqiso_vring_addr - where a ring's three areas are. */
struct svqiso_vring_addr {
	uint64_t desc;		/* descriptor area */
	uint64_t driver;	/* split: avail ring; packed: driver event suppression */
	uint64_t device;	/* split: used ring; packed: device event suppression */
};

/*
 * svqiso_complete_fn - element mode: the request submitted with @cookie is
 * done; @len bytes were written into its writable iovecs.
 * Context: called from svqiso_svq_process_used() or svqiso_svq_reset();
 * may call svqiso_svq_submit() but not free the svq. A request submitted
 * while svqiso_svq_reset() completes what it drops is kept: it goes onto
 * the fresh shadow ring as the reset ends (the reset completes only what
 * it held before its first callback).
 */
typedef void (*svqiso_complete_fn)(void *ctx, void *cookie, uint32_t len);

/*
 * svqiso_giveback_fn - element mode: the request submitted with @cookie
 * was never seen by the backend and goes back to the VMM, which puts it
 * back in the guest's ring (QEMU: virtqueue_unpop()); @complete will not
 * run for it. Called from svqiso_svq_rewind() only, newest request first,
 * so that each call undoes the last pop. May not call any svqiso_svq_*
 * function on this svq.
 */
typedef void (*svqiso_giveback_fn)(void *ctx, void *cookie);

struct svqiso_svq_opts {
	size_t sz;			/* = sizeof(struct svqiso_svq_opts) */
	uint32_t flags;			/* SVQISO_SVQ_F_* */
	uint16_t num;			/* ring size, both rings */
	uint8_t guest_layout;		/* enum svqiso_layout (ring mode) */
	uint8_t shadow_layout;		/* enum svqiso_layout */
	uint32_t guest_features;	/* SVQISO_RING_F_* the guest negotiated */
	uint32_t shadow_features;	/* SVQISO_RING_F_* the backend accepted */
	uint8_t copy;			/* enum svqiso_copy_kind */
	uint16_t max_segs;		/* segments per request; 0: 128 */
	/* ring mode: the guest's ring, in guest addresses */
	struct svqiso_vring_addr guest_ring;
	const struct svqiso_mem_ops *guest_mem;	/* guest address -> host */
	void *guest_mem_ctx;
	/* isolated side */
	struct svqiso_iso *iso;		/* where the shadow ring lives; required */
	struct svqiso_pool *pool;	/* bounce buffers; NULL: a private arena */
	/* element mode */
	svqiso_complete_fn complete;
	void *complete_ctx;
	svqiso_log_fn log;		/* NULL: silent */
	void *log_ctx;
	const char *name;		/* for log lines; NULL: "svq" */
	/*
	 * Ring mode: 0, each process call does all there is. Otherwise a
	 * process_avail() or process_used() call that has copied at least
	 * this many bytes publishes what it did and returns with
	 * SVQISO_SIGNAL_AGAIN while more may wait, so the peer starts on the
	 * first requests of a large batch while the rest are copied. Ignored
	 * in element mode.
	 */
	uint64_t batch_bytes;
	/* element mode: where svqiso_svq_rewind() gives requests back;
	 * NULL: rewind is refused (-EINVAL) */
	svqiso_giveback_fn giveback;
	void *giveback_ctx;
	/*
	 * Where the shadow ring and its indirect tables go: a piece of a
	 * region of @iso that the caller owns and keeps while the svq lives,
	 * at least svqiso_svq_ring_size() bytes, its iova and uaddr 4 KiB
	 * aligned (fd and fd_offset are not used). Several svqs may share
	 * one region this way, each in a piece of its own. NULL: a region
	 * of the svq's own.
	 */
	const struct svqiso_region *ring_area;
	/*
	 * A request larger than the pool can ever hold (its alloc says
	 * -EMSGSIZE) is served through a one-off region: a region of @iso of
	 * its own, announced through region_add before the backend sees the
	 * request and removed (region_del) once the request completes or is
	 * dropped (svqiso_svq_reset(), svqiso_svq_rewind(), svqiso_svq_free());
	 * a repost keeps it with its request. At most one at a time per svq:
	 * the next such request waits for it (backpressure, as for a full
	 * pool). This is the largest request served that way; a larger one
	 * breaks the queue. 0: any the chain rules admit (segments up to
	 * max_segs, under 4 GiB in all). Ignored with SVQISO_SVQ_F_NO_ONEOFF.
	 */
	uint64_t oneoff_max;
};
#define svqiso_svq_opts__last_field oneoff_max

/**
 * svqiso_svq_ring_size() - bytes a shadow ring of @num entries in @layout
 * with its indirect tables of @max_segs entries (0: the default, 128)
 * takes in isolated memory: what an opts ring_area must hold.
 *
 * Return: the size; 0 for a bad layout or @num.
 */
SVQISO_API uint64_t svqiso_svq_ring_size(uint8_t layout, uint16_t num,
					 uint16_t max_segs);

struct svqiso_svq;

/**
 * svqiso_svq_new() - create a shadow virtqueue and its shadow ring (in a
 * region of @opts->iso, announced through region_add).
 *
 * Return: 0; -EINVAL (bad opts: layout, num, unknown flags or features, no
 * iso, ring mode without guest_mem, element mode without complete),
 * -EFAULT (guest ring areas not in guest memory), -ENOMEM, or the iso's errno.
 */
SVQISO_API int svqiso_svq_new(const struct svqiso_svq_opts *opts,
			      struct svqiso_svq **out);

/**
 * svqiso_svq_free() - destroy; requests still in flight are dropped without
 * completion (call svqiso_svq_reset() first to complete them), their bounce
 * buffers go back to the pool and a one-off region is removed. NULL is a
 * no-op.
 */
SVQISO_API void svqiso_svq_free(struct svqiso_svq *svq);

/* struct svqiso_shadow_info - what a frontend tells the backend. */
struct svqiso_shadow_info {
	uint8_t layout;			/* enum svqiso_layout */
	uint16_t num;
	uint32_t features;		/* SVQISO_RING_F_* in use */
	struct svqiso_vring_addr iova;	/* ring areas as IOVAs */
	struct svqiso_vring_addr uaddr;	/* ring areas in svqiso's mapping:
					 * the addresses SET_VRING_ADDR carries */
	/*
	 * The SET_VRING_BASE value, in vhost's format. Split: the next avail
	 * index the device reads (0 for a new ring). Packed: bits 0-14 the
	 * next avail slot and bit 15 its wrap counter, bits 16-30 the next
	 * used slot and bit 31 its wrap counter, as QEMU sends it; a new
	 * ring starts at slot 0 with both wrap counters 1: 0x80008000
	 * (SVQISO_PACKED_FRESH_BASE). A backend that reads only the low half
	 * reads the same avail position.
	 */
	uint32_t base;
};

/* The vring base of a packed ring no buffer went through yet. */
#define SVQISO_PACKED_FRESH_BASE	0x80008000u

/** svqiso_svq_get_shadow() - Return: 0; -EINVAL on NULL arguments. */
SVQISO_API int svqiso_svq_get_shadow(const struct svqiso_svq *svq,
				     struct svqiso_shadow_info *info);

/**
 * svqiso_svq_process_avail() - ring mode: take every chain the guest made
 * available (until the ring is empty or there is no room) and hand it to
 * the backend. Call it on a guest kick.
 *
 * No room (the pool full, the shadow ring full, the svq's one-off region
 * taken) is backpressure: at most one chain is taken ahead of room, holding
 * no bounce memory, and the rest stay in the guest's ring until completions
 * free room; bounce memory never exceeds the pool plus one one-off region.
 * A chain larger than the pool can ever hold goes through a one-off region
 * (see oneoff_max in the opts). A chain that could never be forwarded (more
 * shadow descriptors than the ring holds, without shadow indirect tables;
 * more bytes than the pool holds, with SVQISO_SVQ_F_NO_ONEOFF or past
 * oneoff_max; no one-off region to be had while nothing else is in flight
 * to wait for) breaks the queue with that reason rather than waiting for
 * room that cannot come.
 *
 * Context: a one-off region is made here (region_add on this thread), and
 * dropped in svqiso_svq_process_used() (region_del).
 *
 * With batch_bytes set, a call that has copied that many bytes in stops
 * early with SVQISO_SIGNAL_AGAIN (see there).
 *
 * Return: a mask of SVQISO_SIGNAL_*; -EIO (broken), -EINVAL (element mode).
 */
SVQISO_API int svqiso_svq_process_avail(struct svqiso_svq *svq);

/**
 * svqiso_svq_process_used() - collect every used entry the backend made,
 * copy data back, complete to the guest; then resume guest chains that were
 * waiting for bounce space (or for the one-off region: see oneoff_max in the
 * opts). Call it on a backend call. When the backend
 * breaks the protocol partway, the valid completions before the bad entry
 * are still published to the guest ring (not notified) before -EIO. With
 * batch_bytes set, a call that has copied that many bytes back publishes
 * what it completed and stops early with SVQISO_SIGNAL_AGAIN.
 *
 * Return: a mask of SVQISO_SIGNAL_*; -EIO (broken).
 */
SVQISO_API int svqiso_svq_process_used(struct svqiso_svq *svq);

/**
 * svqiso_svq_submit() - element mode: hand over one request already popped
 * by the VMM. @out are driver-to-device buffers, @in device-to-driver ones,
 * all in host addresses of guest memory. The svq keeps the request (copying
 * the iovec arrays) until it can be forwarded; @complete runs exactly once
 * for it later. Requests wait in order for room, as in ring mode, and one
 * larger than the pool goes through a one-off region (see oneoff_max in
 * the opts).
 *
 * Return: a mask of SVQISO_SIGNAL_* (0 or SVQISO_SIGNAL_BACKEND); -EINVAL
 * (ring mode, no buffers, a zero-length buffer, @nout or @nin or their sum
 * past max_segs, total of 2^32 or more, or a request the shadow ring could
 * never hold: more shadow descriptors than num without shadow indirect
 * tables), -ENOSPC (num requests already held), -EBUSY (after
 * svqiso_svq_rewind(), until svqiso_svq_reset()) and -EIO (broken, or it
 * broke forwarding what it held, this request included): the request was
 * not taken and @complete will not run for it. Called from a
 * completion callback during svqiso_svq_reset(), it returns 0 and the
 * request is forwarded when the reset ends; the next process call asks for
 * the backend kick it needs.
 */
SVQISO_API int svqiso_svq_submit(struct svqiso_svq *svq,
				 const struct iovec *out, unsigned int nout,
				 const struct iovec *in, unsigned int nin,
				 void *cookie);

/**
 * svqiso_svq_submit_gpa() - svqiso_svq_submit(), and @in_gpa[i] is the
 * guest address of @in[i] (contiguous in guest memory as in the VMM's
 * mapping), so that a dirty log (svqiso_svq_set_dirty_log()) covers the
 * bytes copied back into it. Requests submitted with svqiso_svq_submit()
 * are not logged: the VMM logs what it completes (QEMU's virtqueue_push()
 * does), and in element mode it writes the guest's used ring itself.
 *
 * Return: as svqiso_svq_submit(); -EINVAL also for a NULL @in_gpa with
 * @nin > 0, or a buffer that wraps the guest address space.
 */
SVQISO_API int svqiso_svq_submit_gpa(struct svqiso_svq *svq,
				     const struct iovec *out, unsigned int nout,
				     const struct iovec *in, const uint64_t *in_gpa,
				     unsigned int nin, void *cookie);

/*
 * Dirty logging, for live migration. Under isolation the backend writes no
 * guest RAM: every guest byte the device side changes is svqiso's own
 * write (data copied back into a request's writable buffers and, in ring
 * mode, the guest ring's device side: used entries and index, event
 * suppression). With a log set, each such write marks the guest pages it
 * touched, after the bytes are written, so a VMM that clears a page's bit
 * and then reads the page sees the bytes, or finds the bit set again.
 */
#define SVQISO_DIRTY_PAGE_SIZE	4096u

/* svqiso_dirty_fn - [@gpa, @gpa + @len) of guest memory was written. */
typedef void (*svqiso_dirty_fn)(void *ctx, uint64_t gpa, uint64_t len);

struct svqiso_dirty_log {
	size_t sz;		/* = sizeof(struct svqiso_dirty_log) */
	/*
	 * vhost's log: guest page p (gpa / SVQISO_DIRTY_PAGE_SIZE) is bit
	 * p % 8 of byte p / 8, set with an atomic OR (a u64 array read on a
	 * little-endian host is the same log). NULL: no bitmap.
	 */
	void *bitmap;
	uint64_t size;		/* bytes at @bitmap; 0 without one. A write
				 * past the pages it covers is counted
				 * (dirty_missed) and logged once */
	svqiso_dirty_fn fn;	/* each range written, after its bits are
				 * set; NULL: none */
	void *ctx;		/* for @fn */
};
#define svqiso_dirty_log__last_field ctx

/**
 * svqiso_svq_set_dirty_log() - log svqiso's writes to guest memory from now
 * on into @log (copied; the bitmap must stay mapped until the log is
 * replaced or switched off), or with @log NULL, stop logging. May be called
 * at any time between other calls on @svq, and again to replace the log
 * (a bigger bitmap as guest memory grows). A reset keeps it.
 *
 * Return: 0; -EINVAL (NULL @svq, a @log with neither bitmap nor callback,
 * a bitmap of size 0 or a size without one, bad @log->sz or unknown
 * non-zero bytes): the log in place stays.
 */
SVQISO_API int svqiso_svq_set_dirty_log(struct svqiso_svq *svq,
					const struct svqiso_dirty_log *log);

/**
 * svqiso_svq_set_busy_poll() - keep notifications from both peers disabled
 * (the caller polls) or, with @on false, ask for them again.
 *
 * Return: 0; -EIO (broken).
 */
SVQISO_API int svqiso_svq_set_busy_poll(struct svqiso_svq *svq, bool on);

/**
 * svqiso_svq_pause() - with @paused, take no new chain from the guest ring:
 * process_avail() takes none, and process_used() forwards only a chain
 * already taken that was waiting for bounce space. Completions go on. A VMM
 * stopping a queue pauses it, then runs process_used() until
 * svqiso_svq_in_flight() is 0, so nothing the guest handed over is lost.
 * Reset keeps the setting. Where requests may stay posted for ever (a net
 * RX queue on a quiet link), waiting is no way to stop: see
 * svqiso_svq_rewind().
 *
 * Return: 0; -EINVAL (NULL @svq), -EBUSY (unpausing after
 * svqiso_svq_rewind(): only svqiso_svq_reset() goes on from there).
 */
SVQISO_API int svqiso_svq_pause(struct svqiso_svq *svq, bool paused);

/**
 * svqiso_svq_in_flight() - requests taken from the guest (popped, or
 * submitted in element mode) and not yet completed; 0 for NULL.
 */
SVQISO_API unsigned int svqiso_svq_in_flight(const struct svqiso_svq *svq);

/**
 * svqiso_svq_guest_base() - ring mode: the guest ring's vring base as
 * GET_VRING_BASE reports it, the value to hand to svqiso_svq_reset() to go
 * on where it stopped. Split: the next avail index. Packed, in vhost's
 * format: the next avail slot | its wrap counter << 15 in the low half, the
 * next used slot | its wrap counter << 15 in the high half (the two halves
 * are equal when nothing is in flight). Chains taken and not completed are counted as taken:
 * the base is only a clean restart point when svqiso_svq_in_flight() is 0.
 *
 * Return: 0; -EINVAL (NULL arguments, element mode).
 */
SVQISO_API int svqiso_svq_guest_base(const struct svqiso_svq *svq,
				     uint32_t *base);

/**
 * svqiso_svq_rewind() - ring mode: the backend stopped the shadow ring at
 * @shadow_base, what GET_VRING_BASE returned for it (split: the next avail
 * index it would read; packed: its next avail slot | wrap counter << 15 in
 * the low half, the high half is not used). The requests the shadow ring
 * made available from there on were never seen by the backend: each goes
 * back to the guest ring, with the chain waiting for bounce space, and its
 * bounce buffer back to the pool (a one-off region is removed). The guest
 * ring's position is rewound over them (split: by one per chain; packed: by
 * the chain's slots, wrap counter included), so svqiso_svq_guest_base()
 * then names the first of them and a restart there pops them again, in the
 * same order. What the backend did take stays in flight until
 * process_used() completes it; once svqiso_svq_in_flight() is 0 the guest
 * base is a clean restart point.
 *
 * Ring mode, a request svqiso_svq_repost() posted again for a lost backend
 * is never given back: its chain may lie before chains that completed
 * since, which a guest ring moved back would pop again. If the backend
 * did not take it, it stays in flight (counted by svqiso_svq_in_flight(),
 * on no ring), with every request posted again before it, and the next
 * svqiso_svq_repost() posts it again; a reset drops it. The requests
 * popped after those are given back as above.
 *
 * Element mode: the requests the backend never saw, and those submitted
 * and not yet forwarded, go to the opts' giveback callback, newest first,
 * so the VMM puts them back in the guest's ring by undoing its pops.
 *
 * This is how a queue whose requests may stay posted for ever (net RX
 * buffers wait for packets) stops at once: pause, GET_VRING_BASE, rewind,
 * and wait, bounded, only for what the backend holds. The queue stays
 * paused (element mode: svqiso_svq_submit() returns -EBUSY); only
 * svqiso_svq_reset() lays out a fresh shadow ring to go on. A used entry
 * for a request given back is a protocol violation.
 *
 * Return: the number of requests given back (>= 0); -EINVAL (NULL, element
 * mode without a giveback callback), -EIO (broken; or @shadow_base is not
 * where the requests the backend has not completed begin, or says the
 * backend did not take a request it already completed: the queue breaks
 * with that reason, and nothing is given back).
 */
SVQISO_API int svqiso_svq_rewind(struct svqiso_svq *svq, uint32_t shadow_base);

/**
 * svqiso_svq_backend_taken() - of the requests on the shadow ring, how many
 * the backend says it has taken, by the ring position it publishes (with
 * EVENT_IDX: a split ring's avail_event; a packed ring's device event
 * offset, while it asks for notifications at one). The backend may lie:
 * this only tells when stopping it is likely to find it holding nothing,
 * which some backends need (libvhost-user's cannot complete a request
 * after GET_VRING_BASE); what is given back is what svqiso_svq_rewind()
 * decides from GET_VRING_BASE.
 *
 * Return: the count (>= 0); -EINVAL (NULL), -ENODATA (the backend publishes
 * no position, or one that is no place on the ring), -EIO (broken).
 */
SVQISO_API int svqiso_svq_backend_taken(const struct svqiso_svq *svq);

/** svqiso_svq_is_broken() - whether a violation stopped the queue. */
SVQISO_API bool svqiso_svq_is_broken(const struct svqiso_svq *svq);

/** svqiso_svq_broken_reason() - the logged reason, or NULL if not broken. */
SVQISO_API const char *svqiso_svq_broken_reason(const struct svqiso_svq *svq);

/**
 * svqiso_svq_reset() - drop everything in flight, return every bounce buffer
 * (removing a one-off region), lay out an empty shadow ring and clear the
 * broken state. Element mode: each request held completes with length 0.
 * Ring mode: the guest ring is attached afresh at @guest_base (its vring
 * base), as after SET_VRING_BASE. Split: the next avail index, 0 for a
 * fresh ring. Packed: vhost's format (see svqiso_svq_guest_base()),
 * SVQISO_PACKED_FRESH_BASE for a fresh ring; a high half of 0 (the low half
 * alone, 1 << 15 for a fresh ring) means the used position is the avail
 * one. A used position behind the avail one
 * leaves the slots between held: their chains went with the ring's last
 * owner.
 *
 * Return: 0; -EFAULT (the guest ring is no longer mapped), -EINVAL (a
 * packed base past the ring, or a used position ahead of the avail one or
 * more than a ring behind it), -ENOMEM (no memory for the fresh shadow ring
 * or the guest ring's state): the queue is then broken with that reason
 * until a reset goes through.
 */
SVQISO_API int svqiso_svq_reset(struct svqiso_svq *svq, uint32_t guest_base);

/**
 * svqiso_svq_remap() - ring mode: the guest memory map changed (regions
 * replaced, see svqiso_mem_set_regions()); find the guest ring's areas
 * again, at the same guest addresses, and the guest buffers of the
 * requests in flight (the ones still to be written, and a chain waiting
 * for bounce room). Positions and requests in flight stay. Call it with no
 * handler running on the svq.
 *
 * Return: 0; -EINVAL (NULL, element mode), -EIO (broken; or the ring, or a
 * buffer in flight, is no longer in guest memory, a buffer no longer in
 * one region: the queue breaks with that reason and nothing is written to
 * the guest until a reset).
 */
SVQISO_API int svqiso_svq_remap(struct svqiso_svq *svq);

/**
 * svqiso_svq_repost() - the backend that held the shadow ring is gone (a
 * new one takes its place): lay out a fresh shadow ring and put every
 * request in flight on it again, oldest first, with its bounce buffer as
 * it is (the bytes copied in stay; nothing is read from the guest again).
 * The guest ring keeps its position. Undoes svqiso_svq_rewind()'s pause;
 * svqiso_svq_pause() is left as it was. The next process call asks for
 * the backend kick the requests need.
 *
 * Return: the number of requests reposted (>= 0); -EINVAL (NULL), -EIO
 * (broken), -ENOMEM (nothing changed).
 */
SVQISO_API int svqiso_svq_repost(struct svqiso_svq *svq);

/* struct svqiso_svq_stats - counters since creation (reset keeps them). */
struct svqiso_svq_stats {
	size_t sz;			/* = sizeof(struct svqiso_svq_stats) */
	uint64_t requests;		/* forwarded to the backend */
	uint64_t completions;		/* completed to the guest */
	uint64_t bytes_out;		/* copied guest -> bounce */
	uint64_t bytes_in;		/* copied bounce -> guest */
	uint64_t pool_high_water;	/* most bounce bytes held at once */
	uint64_t pool_stalls;		/* times the pool was full */
	uint64_t kicks_sent;		/* backend kicks asked for */
	uint64_t kicks_suppressed;	/* backend kicks the backend declined */
	uint64_t calls_sent;		/* guest notifications asked for */
	uint64_t calls_suppressed;	/* guest notifications the guest declined */
	uint64_t clamped;		/* used lengths past the writable bytes */
	uint64_t errors;		/* violations that broke the queue */
	uint64_t splits;		/* calls that returned SVQISO_SIGNAL_AGAIN */
	uint64_t given_back;		/* requests svqiso_svq_rewind() gave
					 * back to the guest ring */
	uint64_t reposted;		/* requests svqiso_svq_repost() put on
					 * a fresh shadow ring again */
	uint64_t oneoffs;		/* requests larger than the pool served
					 * through a one-off region (their
					 * bytes are not in pool_high_water) */
	uint64_t oneoff_waits;		/* times such a request waited for the
					 * one-off region */
	uint64_t dirty_bytes;		/* guest bytes written while a dirty
					 * log was set, all logged */
	uint64_t dirty_missed;		/* of those, bytes on pages past the
					 * log's bitmap: not in it */
};
#define svqiso_svq_stats__last_field dirty_missed

/**
 * svqiso_svq_get_stats() - copy the counters; fields past @st->sz are left
 * alone.
 *
 * Return: 0; -EINVAL (NULL, or sz smaller than sizeof(size_t)).
 */
SVQISO_API int svqiso_svq_get_stats(const struct svqiso_svq *svq,
				    struct svqiso_svq_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* SVQISO_SVQ_H */
