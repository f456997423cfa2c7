/* SPDX-License-Identifier: MIT */
/*
 * A model of guest virtio drivers (block and net), for integration tests
 * and demos.
 *
 *  - gmem:    guest RAM in one memfd, cut into regions that are adjacent in
 *             guest-physical space but not in host space, as a VMM maps it.
 *  - gring:   one virtqueue, split or packed, as a guest driver drives it:
 *             chains in, used entries out, kicks and interrupts through
 *             eventfds. The device models below are built on it.
 *  - blkq:    a virtio-blk request queue on a gring.
 *  - blkwork: a workload over several blkqs that keeps a byte model of the
 *             disk and verifies every read against it.
 *  - netq:    a virtio-net receive or transmit queue on a gring.
 *
 * The ring code here is written from the virtio spec on purpose and shares
 * nothing with the library's own rings, so a mistake in one shows against
 * the other. The device is untrusted: what it returns is validated and a
 * bad used entry is an error (-EPROTO), never a crash.
 *
 * Thread safety: a gmem's allocator, a gring, a blkq, a blkwork and a netq
 * are single-threaded; the caller serializes all calls on one object. Guest
 * memory contents may be read and written by a device on other threads at
 * any time.
 */
#ifndef GUEST_GUEST_H
#define GUEST_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <svqiso/mem.h>
#include <svqiso/svq.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Guest RAM ---- */

#define GMEM_MAX_REGIONS 4

struct gmem;

/**
 * gmem_new() - create guest RAM backed by one memfd.
 * @gpa:      guest-physical base, page aligned
 * @size:     bytes; a multiple of @nregions pages
 * @nregions: 1..GMEM_MAX_REGIONS equal regions, contiguous in guest-physical
 *            space, each mapped MAP_SHARED at its own host address with an
 *            unmapped page between neighbours
 *
 * Return: the new guest RAM, zero-filled, or NULL with errno set (EINVAL,
 * ENOMEM, or whatever memfd_create/mmap failed with).
 */
struct gmem *gmem_new(uint64_t gpa, uint64_t size, unsigned int nregions);

/** gmem_free() - unmap and close; NULL is a no-op. */
void gmem_free(struct gmem *gm);

/** gmem_nr_regions() - number of regions. */
unsigned int gmem_nr_regions(const struct gmem *gm);

/**
 * gmem_region() - describe region @i (ascending gpa) as a VMM would pass it
 * on: fd, fd_offset, gpa, size and hva.
 *
 * Return: 0; -ENOENT if @i is out of range.
 */
int gmem_region(const struct gmem *gm, unsigned int i, struct svqiso_mem_region *out);

/** gmem_fd() - the memfd behind every region. */
int gmem_fd(const struct gmem *gm);

/** gmem_base() / gmem_size() - guest-physical extent of the whole RAM. */
uint64_t gmem_base(const struct gmem *gm);
uint64_t gmem_size(const struct gmem *gm);

/**
 * gmem_hva() - host address of [@gpa, @gpa + @len).
 *
 * Return: the host address, or NULL unless the range (@len >= 1) lies within
 * a single region.
 */
void *gmem_hva(const struct gmem *gm, uint64_t gpa, uint64_t len);

/**
 * gmem_write() / gmem_read() - copy to or from guest RAM, crossing regions.
 *
 * Return: 0; -EFAULT if any byte is outside guest RAM.
 */
int gmem_write(struct gmem *gm, uint64_t gpa, const void *buf, size_t len);
int gmem_read(const struct gmem *gm, uint64_t gpa, void *buf, size_t len);

/**
 * gmem_alloc() - bump-allocate @len bytes aligned to @align (a power of two,
 * 0 meaning 1). The range may cross a region boundary.
 *
 * Return: guest-physical address, or 0 when RAM is exhausted.
 */
uint64_t gmem_alloc(struct gmem *gm, uint64_t len, uint64_t align);

/**
 * gmem_alloc_contig() - like gmem_alloc(), but the range lies within one
 * region (host-contiguous), skipping to the next region if needed. For ring
 * areas, which a device maps as one piece.
 *
 * Return: guest-physical address, or 0 when RAM is exhausted.
 */
uint64_t gmem_alloc_contig(struct gmem *gm, uint64_t len, uint64_t align);

/**
 * gmem_alloc_top() / gmem_set_alloc_top() - where the next allocation starts.
 * Moving it lets a test place a buffer across a region boundary on purpose.
 *
 * Return (set): 0; -EINVAL if @gpa is outside guest RAM.
 */
uint64_t gmem_alloc_top(const struct gmem *gm);
int gmem_set_alloc_top(struct gmem *gm, uint64_t gpa);

/**
 * gmem_area() - gmem_alloc_contig() and zero it.
 *
 * Return: the host address, *@gpa its guest-physical one; NULL (and *@gpa
 * 0) when RAM is exhausted.
 */
void *gmem_area(struct gmem *gm, uint64_t len, uint64_t align, uint64_t *gpa);

/* ---- One virtqueue, driver side ---- */

struct gring;

struct gring_opts {
	uint8_t layout;		/* enum svqiso_layout: 0 split, 1 packed */
	uint16_t num;		/* split: power of two; packed: any; 2..32768 */
	bool indirect;		/* VIRTIO_F_INDIRECT_DESC negotiated */
	bool event_idx;		/* VIRTIO_F_EVENT_IDX negotiated */
	unsigned int max_pieces; /* descriptors in one chain, >= 1 */
	uint64_t seed;		/* chooses indirect or direct per chain; 0: fixed */
	bool len_chain;		/* a used length past the writable bytes is
				 * counted, not refused, up to the chain's
				 * length: for a driver that ignores it, as
				 * virtio-net's TX does */
};

/* One descriptor's buffer, in guest-physical addresses. */
struct gring_piece {
	uint64_t gpa;
	uint32_t len;		/* >= 1 */
	bool write;		/* device-writable; these come after the readable */
};

struct gring_stats {
	uint64_t submitted;
	uint64_t completed;
	uint64_t kicks;
	uint64_t indirect;	/* chains sent through an indirect table */
	uint64_t direct;	/* chains of ring descriptors */
	uint64_t ring_full;	/* -ENOSPC returns */
	uint64_t len_past_writable; /* len_chain: used lengths past them */
};

/* gring_notify_fn - the driver notifies the device, in place of the kick
 * eventfd write (a notify the VMM handles on the vCPU thread that made it). */
typedef void (*gring_notify_fn)(void *ctx);

/*
 * gring_done_fn - chain @id completed; @len: bytes the device says it wrote,
 * never more than the chain's device-writable bytes.
 */
typedef void (*gring_done_fn)(void *ctx, uint16_t id, void *cookie,
			      uint32_t len);

/** gring_opts_ok() - whether gring_new() takes @o. */
bool gring_opts_ok(const struct gring_opts *o);

/**
 * gring_new() - lay out an empty ring (and with @o->indirect, an indirect
 * table of max_pieces descriptors per chain id) in guest RAM, each area
 * within one region and zeroed, and create its eventfds.
 *
 * Return: 0 and *@out; -EINVAL (bad opts), -ENOMEM (host or guest memory),
 * or -errno from eventfd().
 */
int gring_new(struct gmem *gm, const struct gring_opts *o, struct gring **out);

/** gring_free() - close the eventfds and free; guest RAM stays allocated. */
void gring_free(struct gring *q);

/** Ring areas in guest-physical addresses, as SET_VRING_ADDR would carry. */
struct svqiso_vring_addr gring_addr(const struct gring *q);
uint16_t gring_num(const struct gring *q);
uint8_t gring_layout(const struct gring *q);
bool gring_event_idx(const struct gring *q);
bool gring_indirect(const struct gring *q);
struct gmem *gring_gmem(const struct gring *q);
/** gring_kick_fd() - the device reads it; gring_call_fd() - the device writes it. */
int gring_kick_fd(const struct gring *q);
int gring_call_fd(const struct gring *q);
/** gring_fresh_base() - vring base of a new ring, as QEMU sends it: split
 * 0, packed SVQISO_PACKED_FRESH_BASE (both wrap counters 1). */
uint32_t gring_fresh_base(const struct gring *q);
/**
 * gring_used_base() - the vring base (as GET_VRING_BASE carries it) of a
 * device that has used exactly the chains collected so far and holds none
 * of the others: split, the used index; packed, the next used position and
 * its wrap counter, in both halves. Restarted there, a device takes every
 * chain in flight afresh.
 */
uint32_t gring_used_base(const struct gring *q);
/** gring_inflight() - chains added and not yet collected. */
unsigned int gring_inflight(const struct gring *q);
/** gring_broken() - whether the device broke the protocol (see collect). */
bool gring_broken(const struct gring *q);
/** gring_broken_reason() - how; NULL while not broken. */
const char *gring_broken_reason(const struct gring *q);
void gring_get_stats(const struct gring *q, struct gring_stats *st);

/** gring_set_notify() - notify through @fn from now on; NULL: the kick fd. */
void gring_set_notify(struct gring *q, gring_notify_fn fn, void *ctx);

/**
 * gring_next_id() - the id (0..num-1) the next chain gets, so that memory
 * kept per id can be filled before gring_add(): it is not in flight.
 *
 * Return: the id; -ENOSPC if every id is in flight.
 */
int gring_next_id(const struct gring *q);

/**
 * gring_add() - write one chain of @n pieces (direct, or through the
 * indirect table of its id), make it available, and kick the device if it
 * asked for that.
 *
 * Return: the chain's id (gring_next_id() before the call); -ENOSPC (ring
 * full: nothing written), -EINVAL (no pieces, more than max_pieces, or
 * than the ring holds without an indirect table, a zero length, a piece
 * outside guest RAM), -EPROTO (the device broke the protocol earlier).
 */
int gring_add(struct gring *q, const struct gring_piece *pc, unsigned int n,
	      void *cookie);

/**
 * gring_collect() - take every new used entry, free its descriptors and
 * call @done (may be NULL) for it; then ask for the next interrupt.
 *
 * Return: the number of chains completed; -EPROTO when the device returned
 * an id out of range or not in flight, a length past the chain's writable
 * bytes (len_chain: past its length), or moved the used index too far (the
 * ring is then unusable and every later call fails the same way; see
 * gring_broken_reason()).
 */
int gring_collect(struct gring *q, gring_done_fn done, void *ctx);

/* ---- virtio-blk ---- */

#define VIRTIO_BLK_T_IN			0
#define VIRTIO_BLK_T_OUT		1
#define VIRTIO_BLK_T_FLUSH		4
#define VIRTIO_BLK_T_GET_ID		8
#define VIRTIO_BLK_T_DISCARD		11
#define VIRTIO_BLK_T_WRITE_ZEROES	13

#define VIRTIO_BLK_S_OK			0
#define VIRTIO_BLK_S_IOERR		1
#define VIRTIO_BLK_S_UNSUPP		2

#define VIRTIO_BLK_WRITE_ZEROES_F_UNMAP	1u
#define VIRTIO_BLK_ID_BYTES		20
#define BLK_SECTOR_SIZE			512u

/* Request header, the first (device-readable) buffer of every chain. */
struct virtio_blk_outhdr {
	uint32_t type;		/* le32 VIRTIO_BLK_T_* */
	uint32_t ioprio;	/* le32, 0 */
	uint64_t sector;	/* le64, 512-byte units */
};

/* The one data segment of DISCARD and WRITE_ZEROES. */
struct virtio_blk_discard_write_zeroes {
	uint64_t sector;	/* le64 */
	uint32_t num_sectors;	/* le32 */
	uint32_t flags;		/* le32, VIRTIO_BLK_WRITE_ZEROES_F_UNMAP */
};

/* ---- Driver queue ---- */

struct blkq;

struct blkq_opts {
	uint8_t layout;		/* enum svqiso_layout: 0 split, 1 packed */
	uint16_t num;		/* split: power of two; packed: any; 2..32768 */
	bool indirect;		/* VIRTIO_F_INDIRECT_DESC negotiated */
	bool event_idx;		/* VIRTIO_F_EVENT_IDX negotiated */
	uint16_t max_segs;	/* data segments per request; 0: 64 */
	uint64_t seed;		/* chooses indirect or direct per request; 0: fixed */
};

/* One piece of a request's data, in guest-physical addresses. */
struct blkq_seg {
	uint64_t gpa;
	uint32_t len;		/* >= 1 */
};

/*
 * struct blkq_req - one virtio-blk request.
 *
 * Data segments are device-readable for OUT, DISCARD and WRITE_ZEROES, and
 * device-writable for IN and GET_ID; FLUSH takes none. A DISCARD or
 * WRITE_ZEROES with @nseg 0 gets its 16-byte range segment written by the
 * queue from @sector, @nr_sectors and @dz_flags.
 */
struct blkq_req {
	uint32_t type;			/* VIRTIO_BLK_T_* */
	uint64_t sector;
	const struct blkq_seg *seg;
	unsigned int nseg;
	uint32_t nr_sectors;		/* DISCARD/WRITE_ZEROES with @nseg 0 */
	uint32_t dz_flags;		/* likewise */
	void *cookie;			/* handed back on completion */
};

/* Counters, for tests that want to see what the queue did. */
struct blkq_stats {
	uint64_t submitted;
	uint64_t completed;
	uint64_t kicks;
	uint64_t indirect;		/* chains sent through an indirect table */
	uint64_t direct;		/* chains of ring descriptors */
	uint64_t cross_region_segs;	/* data segments spanning a region boundary */
	uint64_t ring_full;		/* -ENOSPC returns */
};

/*
 * blkq_done_fn - a request completed.
 * @status:   the status byte the device wrote (0xff if it wrote none)
 * @used_len: bytes the device says it wrote into the chain
 */
typedef void (*blkq_done_fn)(void *ctx, void *cookie, uint8_t status,
			     uint32_t used_len);

/**
 * blkq_new() - lay out an empty queue in guest RAM and create its eventfds.
 *
 * Rings, per-slot headers, status bytes and indirect tables are allocated
 * from @gm (each within one region) and zeroed.
 *
 * Return: 0 and *@out; -EINVAL (bad opts), -ENOMEM (host or guest memory),
 * or -errno from eventfd().
 */
int blkq_new(struct gmem *gm, const struct blkq_opts *opts, struct blkq **out);

/** blkq_free() - close the eventfds and free; guest RAM stays allocated. */
void blkq_free(struct blkq *q);

/** Ring areas in guest-physical addresses, as SET_VRING_ADDR would carry. */
struct svqiso_vring_addr blkq_addr(const struct blkq *q);
uint16_t blkq_num(const struct blkq *q);
uint8_t blkq_layout(const struct blkq *q);
bool blkq_event_idx(const struct blkq *q);
bool blkq_indirect(const struct blkq *q);
uint16_t blkq_max_segs(const struct blkq *q);
struct gmem *blkq_gmem(const struct blkq *q);
/** blkq_ring() - the gring the queue's chains go on. */
struct gring *blkq_ring(const struct blkq *q);
/** blkq_kick_fd() - the device reads it; blkq_call_fd() - the device writes it. */
int blkq_kick_fd(const struct blkq *q);
int blkq_call_fd(const struct blkq *q);
/** blkq_fresh_base() - vring base of a new ring, as QEMU sends it: split
 * 0, packed SVQISO_PACKED_FRESH_BASE (both wrap counters 1). */
uint32_t blkq_fresh_base(const struct blkq *q);
/*
 * blkq_notify_fn - the driver notifies the device, in place of the kick
 * eventfd write: a notify the VMM handles on the vCPU thread that made it.
 */
typedef void (*blkq_notify_fn)(void *ctx, struct blkq *q);

/** blkq_set_notify() - notify through @fn from now on; NULL: the kick fd. */
void blkq_set_notify(struct blkq *q, blkq_notify_fn fn, void *ctx);

/** blkq_inflight() - requests submitted and not yet collected. */
unsigned int blkq_inflight(const struct blkq *q);
void blkq_get_stats(const struct blkq *q, struct blkq_stats *st);

/**
 * blkq_submit() - write one request's chain, make it available, and kick the
 * device (write 1 to the kick fd) if it asked for that.
 *
 * Return: 0; -ENOSPC (ring full: nothing written), -EINVAL (bad type, too many
 * segments, zero-length segment, a segment outside guest RAM), -EPROTO (the
 * queue saw a device protocol violation earlier).
 */
int blkq_submit(struct blkq *q, const struct blkq_req *r);

/**
 * blkq_collect() - take every new used entry, free its descriptors and call
 * @done for it; then ask for the next interrupt.
 *
 * Return: the number of requests completed; -EPROTO when the device returned
 * an id out of range or not in flight, or moved the used index too far (the
 * queue is then unusable and every later call fails the same way).
 */
int blkq_collect(struct blkq *q, blkq_done_fn done, void *ctx);

/* ---- virtio-net ---- */

/*
 * Header before every frame with VIRTIO_F_VERSION_1 (VIRTIO 1.2, 5.1.6):
 * num_buffers is always there, and only meaningful with
 * VIRTIO_NET_F_MRG_RXBUF, which the model does not negotiate.
 */
struct virtio_net_hdr_v1 {
	uint8_t flags;		/* VIRTIO_NET_HDR_F_* */
	uint8_t gso_type;	/* VIRTIO_NET_HDR_GSO_* */
	uint16_t hdr_len;	/* le16 */
	uint16_t gso_size;	/* le16 */
	uint16_t csum_start;	/* le16 */
	uint16_t csum_offset;	/* le16 */
	uint16_t num_buffers;	/* le16 */
};

#define VIRTIO_NET_HDR_LEN	12u
#define NETQ_FRAME_MAX		1514u	/* Ethernet, no FCS */

/* Virtqueue index of queue pair @pair's receive and transmit queue. */
#define NETQ_RX_INDEX(pair)	(2u * (pair))
#define NETQ_TX_INDEX(pair)	(2u * (pair) + 1u)

enum netq_role {
	NETQ_RX = 0,		/* device-writable buffers, frames come in */
	NETQ_TX = 1,		/* device-readable frames go out */
};

struct netq;

struct netq_opts {
	uint8_t role;		/* enum netq_role */
	uint8_t layout;		/* enum svqiso_layout */
	uint16_t num;		/* as gring_opts */
	bool indirect;
	bool event_idx;
	uint32_t frame_room;	/* bytes of frame one buffer holds, after the
				 * header; 0: NETQ_FRAME_MAX */
	uint64_t seed;		/* chain shapes (1 to 3 pieces), indirect or
				 * direct; 0: fixed */
	uint16_t rx_posted;	/* RX: buffers kept posted, at most; 0: num */
	uint8_t max_pieces;	/* 1..3 pieces per chain (1: header and frame
				 * in one, as Linux's small RX buffers); 0: 3 */
};

/*
 * netq_rx_fn - a frame came in: @hdr and @len bytes of @frame (the device's
 * used length less the header), copied out of guest RAM; valid for the call
 * only.
 */
typedef void (*netq_rx_fn)(void *ctx, const struct virtio_net_hdr_v1 *hdr,
			   const uint8_t *frame, uint32_t len);

/**
 * netq_new() - a queue on a new gring, with one buffer of header and
 * frame_room bytes per chain id in guest RAM (a buffer may cross a region
 * boundary).
 *
 * Return: 0 and *@out; -EINVAL (bad opts), -ENOMEM, gring_new()'s errnos.
 */
int netq_new(struct gmem *gm, const struct netq_opts *opts, struct netq **out);

/** netq_free() - free the queue and its gring; guest RAM stays allocated. */
void netq_free(struct netq *q);

/** netq_ring() - the queue's gring: addresses, size, fds, notify, stats. */
struct gring *netq_ring(const struct netq *q);

/**
 * netq_rx_fill() - RX: post an empty buffer in every free chain id, until
 * rx_posted are posted, as a driver keeps its receive ring full. A buffer
 * stays posted until a frame fills it. Each header is set to 0xff bytes
 * first, so one the device did not write shows.
 *
 * Return: buffers posted; -EINVAL (a TX queue), -EPROTO (see collect).
 */
int netq_rx_fill(struct netq *q);

/**
 * netq_rx_collect() - RX: take every frame the device returned, call @fn
 * for each, then post the buffers again (netq_rx_fill()).
 *
 * Return: frames taken; -EINVAL (a TX queue), -EPROTO (the device returned
 * a bad used entry, as gring_collect(), or a length shorter than the
 * header; the queue is then unusable).
 */
int netq_rx_collect(struct netq *q, netq_rx_fn fn, void *ctx);

/**
 * netq_tx_send() - TX: copy a zero header and @len bytes of @frame into the
 * next chain's buffer and make it available (kicking as the device asks).
 *
 * Return: 0; -ENOSPC (ring full: nothing sent), -EINVAL (an RX queue, @len
 * 0 or past frame_room), -EPROTO (see gring_add()).
 */
int netq_tx_send(struct netq *q, const void *frame, uint32_t len);

/**
 * netq_tx_collect() - TX: take back every buffer the device is done with.
 * A TX buffer has no writable bytes, so its used length should be 0; a
 * driver ignores it (DPDK 22.11's packed ring leaves the driver's length
 * there), so one up to the chain's length is only counted, in the gring's
 * len_past_writable.
 *
 * Return: buffers taken back; -EINVAL (an RX queue), -EPROTO (as
 * gring_collect(): a length past the chain's, a bad id).
 */
int netq_tx_collect(struct netq *q);

/* ---- Workload ---- */

struct blkwork;

typedef void (*blkwork_tick_fn)(void *ctx, uint64_t completed);

struct blkwork_opts {
	struct blkq **queues;		/* all on the same gmem */
	unsigned int nqueues;
	unsigned int depth;		/* requests in flight per queue; 0: 16 */
	uint32_t min_len;		/* bytes, multiple of 512; 0: 512 */
	uint32_t max_len;		/* bytes, multiple of 512; 0: 128 KiB */
	uint64_t capacity;		/* disk bytes, multiple of 512; required */
	/* Relative weights; all zero means 44/44/4/4/4. */
	unsigned int w_read, w_write, w_flush, w_discard, w_write_zeroes;
	unsigned int max_segs;		/* data pieces per request; 0: 8 */
	bool discard_zeroes;		/* discarded ranges read back as zeros */
	uint32_t discard_align;		/* bytes, multiple of 512, <= 1 MiB; 0: 64 KiB */
	uint64_t seed;			/* 0: from the clock */
	unsigned int timeout_ms;	/* no completion this long: -ETIMEDOUT; 0: 10 s */
	blkwork_tick_fn tick;		/* every ~256 completions; may be NULL */
	void *tick_ctx;
	int init_fd;			/* initial disk content; -1: zeros */
	/*
	 * Interrupt delivery run by the caller (a VMM's loop on the guest's
	 * thread): with @wake set, blkwork_run() polls @wait_fds[i] (NULL:
	 * the call fds; the array must outlive the workload) and, when one
	 * is readable, calls @wake for queue i (it must reset the fd)
	 * instead of reading it. A positive return means the guest got an
	 * interrupt: queue i is collected; 0: it is not; a negative one ends
	 * the run with that error.
	 */
	const int *wait_fds;
	int (*wake)(void *ctx, unsigned int queue);
	void *wake_ctx;
	/*
	 * A polling guest on a polling VMM: with @wake set, blkwork_run()
	 * never sleeps; it calls @wake for each queue in turn (a negative
	 * return ends the run) and collects the queue whatever it returned,
	 * as a driver polling its used ring does.
	 */
	bool poll;
};

/** blkwork_opts_init() - defaults, and init_fd -1. */
void blkwork_opts_init(struct blkwork_opts *o);

struct blkwork_result {
	uint64_t reads, writes, flushes, discards, write_zeroes;
	uint64_t bytes_read, bytes_written;
	uint64_t bad_status;		/* requests completed with status != 0 */
	uint64_t mismatches;		/* 512-byte sectors read back wrong */
	bool have_mismatch;		/* the first one: */
	unsigned int mm_queue;		/* queue index */
	uint64_t mm_sector;		/* disk sector holding the first bad byte */
	uint32_t mm_offset;		/* byte offset of it within that sector */
	uint64_t elapsed_ns;
	uint64_t seed;
};

/**
 * blkwork_new() - allocate the disk model and per-slot data buffers (@depth *
 * @max_len bytes of guest RAM per queue, allocated once).
 *
 * Return: 0 and *@out; -EINVAL (bad opts), -ENOMEM, -errno from pread() of
 * init_fd (-EIO on a short file).
 */
int blkwork_new(const struct blkwork_opts *opts, struct blkwork **out);

/**
 * blkwork_run() - issue @nrequests more requests and wait until all complete.
 * May be called again on the same model. @res is filled on every return and
 * counts this call only.
 *
 * Return: 0 (mismatches and bad statuses are reported in @res, not here);
 * -ETIMEDOUT (no completion for timeout_ms), -EPROTO (a queue saw a device
 * protocol violation), -EINVAL (a request fits in no queue even when idle),
 * -errno from poll()/read(). After an error requests may
 * still be in flight; free the workload and its queues.
 */
int blkwork_run(struct blkwork *w, uint64_t nrequests, struct blkwork_result *res);

/**
 * blkwork_check_fd() - compare the model with the disk image in @fd (pread),
 * sectors the model knows only.
 *
 * Return: 0 and *@mismatches (sectors that differ); -errno from pread(), -EIO
 * on a short file.
 */
int blkwork_check_fd(struct blkwork *w, int fd, uint64_t *mismatches);

/**
 * blkwork_model() - the model: @data holds capacity bytes, @known one bit per
 * 512-byte sector (bit s % 8 of byte s / 8), set where @data is certain.
 */
void blkwork_model(const struct blkwork *w, const uint8_t **data,
		   const uint8_t **known);

/** blkwork_seed() - the seed in use (chosen at blkwork_new()). */
uint64_t blkwork_seed(const struct blkwork *w);

void blkwork_free(struct blkwork *w);

#ifdef __cplusplus
}
#endif

#endif /* GUEST_GUEST_H */
