/* SPDX-License-Identifier: MIT */
/*
 * The correctness-first baseline pool: every buffer is an isolated region of
 * its own, announced on alloc (region_add: the frontend sends ADD_MEM_REG)
 * and withdrawn on free (region_del: REM_MEM_REG). Nothing is ever reused,
 * so it is the yardstick the arena is measured against, and it needs
 * CONFIGURE_MEM_SLOTS on the backend.
 */
#include "iso.h"
#include <svqiso/pool.h>

static int memfd_alloc(void *ctx, uint64_t len, struct svqiso_buf *buf)
{
	struct svqiso_region r;
	int err;

	if (len > SVQ_ISO_MAX_SIZE)
		return -EMSGSIZE;
	err = svqiso_iso_region_new(ctx, len, &r);
	/* Out of fds or region slots is load, not failure: buffers in
	 * flight hold them, and a free gives one back. */
	if (err == -EMFILE || err == -ENFILE)
		return -ENOSPC;
	if (err)
		return err;
	buf->hva = r.uaddr;
	buf->iova = r.iova;
	buf->len = r.size;
	buf->priv = r.iova;
	return 0;
}

static void memfd_free(void *ctx, const struct svqiso_buf *buf)
{
	svqiso_iso_region_free(ctx, buf->priv);
}

static const struct svqiso_pool_ops memfd_ops = {
	.sz = sizeof(struct svqiso_pool_ops),
	.alloc = memfd_alloc,
	.free = memfd_free,
};

int svqiso_pool_new_memfd(struct svqiso_iso *iso, struct svqiso_pool **out)
{
	if (!iso)
		return -EINVAL;
	return svqiso_pool_new(&memfd_ops, iso, out);
}
