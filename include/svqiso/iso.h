/* SPDX-License-Identifier: MIT */
/*
 * Isolated memory: memfd-backed regions owned by svqiso, each placed at a base
 * in a synthetic address space (IOVA) that only svqiso and the backend share.
 * A frontend registers each region with the backend as
 *   guest_phys_addr = iova, memory_size = size, userspace_addr = uaddr,
 *   fd = fd, mmap_offset = fd_offset
 * and never registers guest RAM. IOVAs are handed out upwards from iova_base,
 * 2 MiB aligned, and never reused while the iso lives, so an address a
 * backend kept from a removed region cannot alias a newer one. Each memfd is
 * sealed against shrinking and growing: a backend holding the fd cannot turn
 * svqiso's accesses into SIGBUS.
 *
 * Thread safety: svqiso_iso_region_new(), svqiso_iso_region_free(),
 * svqiso_iso_nr_regions() and svqiso_iso_get_region() take the iso's lock,
 * so they may run on several threads at once: the shadow virtqueues of one
 * device, each on its own thread, make and drop one-off regions for
 * requests larger than their pools (svq.h). The region callbacks run under
 * that lock, one at a time. svqiso_iso_new() and svqiso_iso_free() run
 * alone, and the map svqiso_iso_mem() returns is read only where no region
 * comes or goes meanwhile.
 */
#ifndef SVQISO_ISO_H
#define SVQISO_ISO_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <svqiso/common.h>
#include <svqiso/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

/* struct svqiso_region - one isolated region, as a backend must see it. */
struct svqiso_region {
	uint64_t iova;		/* base in the isolated address space */
	uint64_t size;		/* bytes, a multiple of the page size */
	void *uaddr;		/* svqiso's shared mapping of it */
	int fd;			/* memfd; owned by svqiso, valid until removed */
	uint64_t fd_offset;	/* offset of iova within fd (0 today) */
};

/*
 * svqiso_region_fn - a region appeared (before first use) or is about to go
 * (after last use). For an add, a negative errno refuses the region and fails
 * the allocation that needed it; the return of a remove is ignored. On add
 * the region is mapped and already translates through svqiso_iso_mem(); on
 * remove it still does. May read the iso (svqiso_iso_nr_regions(),
 * svqiso_iso_get_region(), to send a whole memory table) but not make or
 * remove a region. Runs on the thread that makes or drops the region, under
 * the iso's lock: for a one-off region (svq.h) that is the thread running
 * the queue.
 */
typedef int (*svqiso_region_fn)(void *ctx, const struct svqiso_region *region);

struct svqiso_iso_opts {
	size_t sz;			/* = sizeof(struct svqiso_iso_opts) */
	uint64_t iova_base;		/* 0: SVQISO_ISO_DEFAULT_BASE; rounded
					 * up to 2 MiB */
	svqiso_region_fn region_add;	/* NULL: nothing to tell */
	svqiso_region_fn region_del;
	void *region_ctx;
	svqiso_log_fn log;		/* NULL: silent */
	void *log_ctx;
	const char *name;		/* memfd name prefix; NULL: "svqiso" */
};
#define svqiso_iso_opts__last_field name

#define SVQISO_ISO_DEFAULT_BASE 0x100000000ull

struct svqiso_iso;

/**
 * svqiso_iso_new() - create an empty isolated address space.
 *
 * Return: 0; -EINVAL (NULL @out, bad opts, iova_base rounds past the top of
 * the address space), -ENOMEM.
 */
SVQISO_API int svqiso_iso_new(const struct svqiso_iso_opts *opts,
			      struct svqiso_iso **out);

/**
 * svqiso_iso_free() - remove every region (region_del is called for each),
 * unmap and close them. NULL is a no-op.
 */
SVQISO_API void svqiso_iso_free(struct svqiso_iso *iso);

/**
 * svqiso_iso_region_new() - create a zeroed region of at least @size bytes
 * (rounded up to the page size).
 * @out: receives the region
 *
 * Return: 0; -EINVAL (NULL @iso or @out, @size 0 or too large), -ENOSPC (the
 * IOVA space or the table of SVQISO_MEM_MAX_REGIONS live regions is full),
 * -ENOMEM, -errno from memfd_create (-EMFILE: out of fds), ftruncate, fcntl
 * (sealing) or mmap, or the negative errno region_add returned. On error
 * nothing is left behind.
 */
SVQISO_API int svqiso_iso_region_new(struct svqiso_iso *iso, uint64_t size,
				     struct svqiso_region *out);

/**
 * svqiso_iso_region_free() - remove the region based at @iova: region_del is
 * called, then it is unmapped and its fd closed.
 *
 * Return: 0; -EINVAL (NULL @iso); -ENOENT if no region is based at @iova.
 */
SVQISO_API int svqiso_iso_region_free(struct svqiso_iso *iso, uint64_t iova);

/** svqiso_iso_nr_regions() - number of live regions; 0 for NULL. */
SVQISO_API unsigned int svqiso_iso_nr_regions(const struct svqiso_iso *iso);

/**
 * svqiso_iso_get_region() - copy out the @i-th live region, ascending iova.
 *
 * Return: 0; -ENOENT if @i is out of range; -EINVAL on NULL arguments.
 */
SVQISO_API int svqiso_iso_get_region(const struct svqiso_iso *iso, unsigned int i,
				     struct svqiso_region *out);

/**
 * svqiso_iso_mem() - the iso's regions as a memory map (iova -> uaddr); use
 * with svqiso_mem_ops(). Valid until svqiso_iso_free().
 */
SVQISO_API const struct svqiso_mem *svqiso_iso_mem(const struct svqiso_iso *iso);

#ifdef __cplusplus
}
#endif

#endif /* SVQISO_ISO_H */
