/* SPDX-License-Identifier: MIT */
/*
 * Bounce pools: where request data lives while the backend works on it.
 * Every buffer is isolated memory (see iso.h); a pool never hands out guest
 * memory. Pools are per device: never share one between two devices. A pool
 * built on an iso must be freed before the iso.
 *
 * Thread safety: a svqiso_pool is single-threaded; the caller serializes all
 * calls on it (a svqiso_svq calls it from its own thread).
 */
#ifndef SVQISO_POOL_H
#define SVQISO_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <svqiso/common.h>
#include <svqiso/iso.h>

#ifdef __cplusplus
extern "C" {
#endif

/* struct svqiso_buf - one bounce buffer, contiguous in both address spaces. */
struct svqiso_buf {
	void *hva;		/* svqiso's mapping */
	uint64_t iova;		/* the same bytes as the backend addresses them */
	uint64_t len;
	uint64_t priv;		/* the allocator's, opaque */
};

/* struct svqiso_pool_ops - a pluggable allocator. */
struct svqiso_pool_ops {
	size_t sz;	/* = sizeof(struct svqiso_pool_ops) */
	/*
	 * alloc - fill *@buf with at least @len bytes (@len >= 1).
	 * Return: 0; -ENOSPC (not now: retry after a free), -EMSGSIZE (never:
	 * larger than the pool), -ENOMEM or another -errno (failure).
	 * Context: never sleeps.
	 */
	int (*alloc)(void *ctx, uint64_t len, struct svqiso_buf *buf);
	/* free - give back a buffer alloc() returned, exactly once. */
	void (*free)(void *ctx, const struct svqiso_buf *buf);
	/* destroy - release the allocator; NULL if nothing to do. */
	void (*destroy)(void *ctx);
};
#define svqiso_pool_ops__last_field destroy

struct svqiso_pool;

/**
 * svqiso_pool_new() - wrap a custom allocator.
 *
 * Return: 0; -EINVAL (NULL or incomplete ops, unknown non-zero ops bytes),
 * -ENOMEM.
 */
SVQISO_API int svqiso_pool_new(const struct svqiso_pool_ops *ops, void *ctx,
			       struct svqiso_pool **out);

struct svqiso_arena_opts {
	size_t sz;		/* = sizeof(struct svqiso_arena_opts) */
	uint64_t size;		/* bytes, rounded up to the page size;
				 * 0: SVQISO_ARENA_DEFAULT_SIZE */
	uint32_t max_bufs;	/* buffers live at once; 0: 1024 */
	uint32_t align;		/* buffer alignment, power of two, at most
				 * the page size; 0: 64 */
};
#define svqiso_arena_opts__last_field align

#define SVQISO_ARENA_DEFAULT_SIZE (32ull << 20)

/**
 * svqiso_pool_new_arena() - the steady-state pool: one region created (and
 * announced through the iso's region_add) up front, handed out first in,
 * first out, so steady-state I/O needs no registration at all. It starts
 * over at its beginning as soon as the bytes in flight leave room there, so
 * the memory it walks through follows those bytes rather than its size;
 * the size is what it may hold at once. A buffer's len
 * is the request rounded up to align. A request that gets -ENOSPC and is no
 * larger than the (rounded) size is sure to succeed once every buffer is
 * back; space freed out of order is reclaimed when the older buffers return.
 *
 * Return: 0; -EINVAL (bad opts), -ENOMEM, or svqiso_iso_region_new()'s errno.
 */
SVQISO_API int svqiso_pool_new_arena(struct svqiso_iso *iso,
				     const struct svqiso_arena_opts *opts,
				     struct svqiso_pool **out);

/**
 * svqiso_pool_new_memfd() - the correctness-first baseline: each buffer is a
 * region of its own, created (region_add) on alloc and removed (region_del)
 * on free. A buffer's len is the request rounded up to the page size. Its
 * alloc returns -ENOSPC when out of fds or region slots (retry after a free),
 * -EMSGSIZE when too large for any region, else svqiso_iso_region_new()'s
 * errno, including region_add's refusal.
 *
 * Return: 0; -EINVAL, -ENOMEM.
 */
SVQISO_API int svqiso_pool_new_memfd(struct svqiso_iso *iso,
				     struct svqiso_pool **out);

/** svqiso_pool_free() - destroy a pool; its buffers must all be back. NULL is a no-op. */
SVQISO_API void svqiso_pool_free(struct svqiso_pool *pool);

/**
 * svqiso_pool_alloc() - see svqiso_pool_ops.alloc; a @len of 0 is taken as 1.
 *
 * Return: as alloc, and -EINVAL for a NULL @pool or @buf.
 */
SVQISO_API int svqiso_pool_alloc(struct svqiso_pool *pool, uint64_t len,
				 struct svqiso_buf *buf);

/** svqiso_pool_put() - see svqiso_pool_ops.free; NULL @pool or @buf: no-op. */
SVQISO_API void svqiso_pool_put(struct svqiso_pool *pool,
				const struct svqiso_buf *buf);

/** svqiso_pool_in_use() - bytes handed out and not yet put back. */
SVQISO_API uint64_t svqiso_pool_in_use(const struct svqiso_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* SVQISO_POOL_H */
