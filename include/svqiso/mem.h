/* SPDX-License-Identifier: MIT */
/*
 * Guest memory: the translation interface the rings read through, and a built-in
 * region table implementing it.
 *
 * Thread safety: translation through a svqiso_mem is read-only and may run on
 * several threads at once; adding or removing regions must be serialized by the
 * caller against every other call on the same svqiso_mem.
 */
#ifndef SVQISO_MEM_H
#define SVQISO_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <svqiso/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * struct svqiso_mem_ops - translate an address of some address space (guest
 * physical, or svqiso's isolated IOVA space) into a host virtual address.
 */
struct svqiso_mem_ops {
	size_t sz;	/* = sizeof(struct svqiso_mem_ops) */
	/*
	 * translate - map @addr to a host pointer.
	 * @ctx:  the ctx given beside these ops
	 * @addr: address to translate
	 * @len:  in: bytes wanted (>= 1); out: bytes contiguous in host memory from
	 *        the returned pointer, at most the input value
	 *
	 * Return: the host address of @addr, or NULL if @addr is not mapped.
	 * Context: must not sleep; may be called for every descriptor.
	 */
	void *(*translate)(void *ctx, uint64_t addr, uint64_t *len);
};
#define svqiso_mem_ops__last_field translate

/* struct svqiso_mem_region - one guest RAM region as the VMM maps it. */
struct svqiso_mem_region {
	uint64_t gpa;		/* guest physical base */
	uint64_t size;		/* bytes, >= 1 */
	void *hva;		/* where the VMM maps it */
	int fd;			/* backing fd for later registration, or -1 */
	uint64_t fd_offset;	/* offset of gpa within fd */
};

struct svqiso_mem_opts {
	size_t sz;		/* = sizeof(struct svqiso_mem_opts) */
	uint32_t max_regions;	/* 0: SVQISO_MEM_DEFAULT_REGIONS */
	svqiso_log_fn log;	/* NULL: silent */
	void *log_ctx;
};
#define svqiso_mem_opts__last_field log_ctx

#define SVQISO_MEM_DEFAULT_REGIONS 256
#define SVQISO_MEM_MAX_REGIONS 65536

struct svqiso_mem;

/**
 * svqiso_mem_new() - create an empty guest memory map.
 * @opts: NULL for defaults
 * @out:  receives the new map
 *
 * Return: 0, -EINVAL (NULL @out, bad opts, unknown non-zero opts bytes,
 * max_regions over SVQISO_MEM_MAX_REGIONS), -ENOMEM.
 */
SVQISO_API int svqiso_mem_new(const struct svqiso_mem_opts *opts,
			      struct svqiso_mem **out);

/** svqiso_mem_free() - destroy a map; NULL is a no-op. Region memory is not touched. */
SVQISO_API void svqiso_mem_free(struct svqiso_mem *mem);

/**
 * svqiso_mem_add_region() - add a region.
 *
 * A region may end at the top of the address space: its last byte,
 * gpa + size - 1, may be UINT64_MAX.
 *
 * Return: 0; -EINVAL (NULL mem, region or hva, size 0), -EOVERFLOW (gpa + size
 * - 1 or hva + size - 1 wraps), -EEXIST (overlaps a region already in the
 * map), -ENOSPC (max_regions reached).  On error the map is unchanged.
 */
SVQISO_API int svqiso_mem_add_region(struct svqiso_mem *mem,
				     const struct svqiso_mem_region *region);

/**
 * svqiso_mem_remove_region() - remove the region starting exactly at @gpa.
 *
 * Return: 0; -EINVAL (NULL @mem); -ENOENT if no region starts at @gpa.
 */
SVQISO_API int svqiso_mem_remove_region(struct svqiso_mem *mem, uint64_t gpa);

/**
 * svqiso_mem_set_regions() - replace every region with the @n of @regions,
 * as if each were added in turn to an empty map (more than max_regions are
 * allowed: the map grows). Not safe against a concurrent lookup.
 *
 * Return: 0; -EINVAL (NULL @mem, NULL @regions with @n > 0, a bad region),
 * -EOVERFLOW, -EEXIST (two regions overlap), -E2BIG (over
 * SVQISO_MEM_MAX_REGIONS), -ENOMEM. On error the map is unchanged.
 */
SVQISO_API int svqiso_mem_set_regions(struct svqiso_mem *mem,
				      const struct svqiso_mem_region *regions,
				      unsigned int n);

/** svqiso_mem_nr_regions() - number of regions in the map; 0 for NULL. */
SVQISO_API unsigned int svqiso_mem_nr_regions(const struct svqiso_mem *mem);

/**
 * svqiso_mem_get_region() - copy out the @i-th region, in ascending gpa order.
 *
 * Return: 0; -EINVAL (NULL @mem or @out); -ENOENT if @i is out of range.
 */
SVQISO_API int svqiso_mem_get_region(const struct svqiso_mem *mem, unsigned int i,
				     struct svqiso_mem_region *out);

/**
 * svqiso_mem_lookup() - translate one address (binary search).
 * @len: in: bytes wanted; out: bytes contiguous from the result (clamped at
 *       the region end)
 *
 * Return: the host address, or NULL (*@len untouched) if @gpa is in no region,
 * *@len is 0, or @mem or @len is NULL.
 */
SVQISO_API void *svqiso_mem_lookup(const struct svqiso_mem *mem, uint64_t gpa,
				   uint64_t *len);

/**
 * svqiso_mem_translate() - translate [@gpa, @gpa + @len) into host segments.
 * @iov:     receives one entry per region the range touches
 * @max_iov: capacity of @iov
 *
 * Return: number of entries filled (>= 1); -EINVAL (@len is 0, NULL @mem, NULL
 * @iov with @max_iov > 0), -EOVERFLOW (@gpa + @len - 1 wraps), -EFAULT (some
 * byte is in no region; reported even when @iov is also too small), -ENOBUFS
 * (more than @max_iov segments are needed).  On error @iov content is
 * unspecified.
 */
SVQISO_API int svqiso_mem_translate(const struct svqiso_mem *mem, uint64_t gpa,
				    uint64_t len, struct iovec *iov,
				    unsigned int max_iov);

/**
 * svqiso_mem_ops() - ops that translate through a svqiso_mem; pass the map
 * itself as the ops' ctx.
 *
 * Return: static ops; never NULL.
 */
SVQISO_API const struct svqiso_mem_ops *svqiso_mem_ops(void);

#ifdef __cplusplus
}
#endif

#endif /* SVQISO_MEM_H */
