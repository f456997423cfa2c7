/* SPDX-License-Identifier: MIT */
/*
 * Bounce pool front: any allocator behind svqiso_pool_ops, plus the byte
 * count every pool reports. The built-in allocators are pool_arena.c and
 * pool_memfd.c; each builds its pool through svqiso_pool_new().
 */
#include <stdlib.h>

#include "pool_priv.h"

#if defined(__LP64__)
_Static_assert(sizeof(struct svqiso_pool_ops) == 32, "svqiso_pool_ops is append-only");
_Static_assert(sizeof(struct svqiso_buf) == 32, "svqiso_buf is ABI");
#endif

int svqiso_pool_new(const struct svqiso_pool_ops *ops, void *ctx,
		    struct svqiso_pool **out)
{
	struct svqiso_pool *pool;

	if (!ops || !out || !SVQ_OPTS_OK(svqiso_pool_ops, ops))
		return -EINVAL;
	if (!SVQ_OPTS_GET(ops, alloc, NULL) || !SVQ_OPTS_GET(ops, free, NULL))
		return -EINVAL;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->ops = (struct svqiso_pool_ops){
		.sz = sizeof(pool->ops),
		.alloc = ops->alloc,
		.free = ops->free,
		.destroy = SVQ_OPTS_GET(ops, destroy, NULL),
	};
	pool->ctx = ctx;
	*out = pool;
	return 0;
}

void svqiso_pool_free(struct svqiso_pool *pool)
{
	if (!pool)
		return;
	if (pool->ops.destroy)
		pool->ops.destroy(pool->ctx);
	free(pool);
}

int svqiso_pool_alloc(struct svqiso_pool *pool, uint64_t len,
		      struct svqiso_buf *buf)
{
	if (!pool || !buf)
		return -EINVAL;
	return svq_pool_alloc(pool, len, buf);
}

void svqiso_pool_put(struct svqiso_pool *pool, const struct svqiso_buf *buf)
{
	if (!pool || !buf)
		return;
	svq_pool_put(pool, buf);
}

uint64_t svqiso_pool_in_use(const struct svqiso_pool *pool)
{
	return pool ? pool->in_use : 0;
}
