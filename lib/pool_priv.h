/* SPDX-License-Identifier: MIT */
/*
 * The bounce pool's layout, private to the library: pool.c owns it, and the
 * shadow virtqueue allocates and frees through it inline, reaching the
 * built-in arena with a direct call instead of the ops' indirect one.
 */
#ifndef SVQ_POOL_PRIV_H
#define SVQ_POOL_PRIV_H

#include "internal.h"
#include <svqiso/pool.h>

struct svqiso_pool {
	struct svqiso_pool_ops ops;	/* our own copy, known fields only */
	void *ctx;
	uint64_t in_use;		/* bytes handed out, not yet put back */
	bool arena;			/* ops are the arena's: call it directly */
};

/* The arena's alloc and free (pool_arena.c), as its ops hold them. */
int svq_arena_alloc(void *ctx, uint64_t len, struct svqiso_buf *buf);
void svq_arena_free(void *ctx, const struct svqiso_buf *buf);

/* svqiso_pool_alloc() for a non-NULL @pool and @buf. */
static inline int svq_pool_alloc(struct svqiso_pool *pool, uint64_t len,
				 struct svqiso_buf *buf)
{
	int err;

	/* A chain of empty segments still needs somewhere to point. */
	if (!len)
		len = 1;
	if (likely(pool->arena))
		err = svq_arena_alloc(pool->ctx, len, buf);
	else
		err = pool->ops.alloc(pool->ctx, len, buf);
	if (err)
		return err;
	pool->in_use += buf->len;
	return 0;
}

/* svqiso_pool_put() for a non-NULL @pool and @buf. */
static inline void svq_pool_put(struct svqiso_pool *pool,
				const struct svqiso_buf *buf)
{
	/* Saturate: a buffer put twice must not wrap the count. */
	pool->in_use -= buf->len < pool->in_use ? buf->len : pool->in_use;
	if (likely(pool->arena))
		svq_arena_free(pool->ctx, buf);
	else
		pool->ops.free(pool->ctx, buf);
}

#endif /* SVQ_POOL_PRIV_H */
