/* SPDX-License-Identifier: MIT */
/* Library-wide pieces: version, opts validation, logging. */
#include <stdio.h>

#include "internal.h"

const char *svqiso_version(void)
{
	return SVQISO_VERSION_STRING;
}

bool svq_opts_ok(const void *opts, size_t known_size)
{
	const unsigned char *p = opts;
	size_t sz, i;

	if (!opts)
		return true;
	sz = *(const size_t *)opts;
	if (sz < sizeof(size_t))
		return false;
	/* A newer caller's fields we do not know must be left at zero. */
	for (i = known_size; i < sz; i++)
		if (p[i])
			return false;
	return true;
}

void svq_log(svqiso_log_fn fn, void *ctx, int level, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	size_t n;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	fn(ctx, level, msg);
}

/*
 * svq_opts_ok() checks every byte past an opts struct's last field, so no
 * public opts struct may end in padding: SVQISO_OPTS() copies a compound
 * literal, whose padding the compiler need not zero.
 */
#define SVQ_NO_TAIL_PAD(TYPE)						\
	_Static_assert(svq_offsetofend(TYPE, TYPE##__last_field) ==	\
		       sizeof(struct TYPE), #TYPE " must not end in padding")

SVQ_NO_TAIL_PAD(svqiso_mem_ops);
SVQ_NO_TAIL_PAD(svqiso_mem_opts);
SVQ_NO_TAIL_PAD(svqiso_iso_opts);
SVQ_NO_TAIL_PAD(svqiso_pool_ops);
SVQ_NO_TAIL_PAD(svqiso_arena_opts);
SVQ_NO_TAIL_PAD(svqiso_svq_opts);
SVQ_NO_TAIL_PAD(svqiso_svq_stats);
SVQ_NO_TAIL_PAD(svqiso_dirty_log);
SVQ_NO_TAIL_PAD(svqiso_loop_opts);
SVQ_NO_TAIL_PAD(svqiso_loop_queue);
SVQ_NO_TAIL_PAD(svqiso_vu_opts);
SVQ_NO_TAIL_PAD(svqiso_vu_queue);
SVQ_NO_TAIL_PAD(svqiso_vu_info);
