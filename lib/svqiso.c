/* SPDX-License-Identifier: MIT */
/* Library-wide pieces: version, opts validation, logging. */
#include <stdio.h>

#include "internal.h"

const char *svqiso_version(void)
{
	return SVQISO_VERSION_STRING;
}

bool svq_opts_check(const void *opts, size_t known_size, const char *type,
		    svqiso_log_fn fn, void *ctx)
{
	const unsigned char *p = opts;
	size_t sz, i;

	if (!opts)
		return true;
	sz = *(const size_t *)opts;
	if (sz < sizeof(size_t)) {
		svq_log(fn, ctx, SVQISO_LOG_ERR, "struct %s: sz %zu is smaller "
			"than sz itself", type, sz);
		return false;
	}
	/* A newer caller's fields we do not know must be left at zero. */
	for (i = known_size; i < sz; i++)
		if (p[i]) {
			svq_log(fn, ctx, SVQISO_LOG_ERR, "struct %s: byte %zu of "
				"%zu is set, past the %zu this version knows: a "
				"newer field it cannot honour", type, i, sz,
				known_size);
			return false;
		}
	return true;
}

/* One line to @fn, without a trailing newline. */
static void svq_vlog(svqiso_log_fn fn, void *ctx, int level, const char *fmt,
		     va_list ap)
{
	char msg[256];
	size_t n;

	if (!fn)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	fn(ctx, level, msg);
}

void svq_log(svqiso_log_fn fn, void *ctx, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	svq_vlog(fn, ctx, level, fmt, ap);
	va_end(ap);
}

int svq_einval(svqiso_log_fn fn, void *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	svq_vlog(fn, ctx, SVQISO_LOG_ERR, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int svq_copy_layout_check(const char *call, unsigned int copy,
			  unsigned int layout, svqiso_log_fn fn, void *ctx)
{
	if (copy >= SVQISO_NR_COPY)
		return svq_einval(fn, ctx, "%s: copy %u is no copy strategy",
				  call, copy);
	if (layout >= SVQISO_NR_LAYOUTS)
		return svq_einval(fn, ctx, "%s: shadow_layout %u is no ring "
				  "layout", call, layout);
	return 0;
}


/*
 * svq_opts_check() checks every byte past an opts struct's last field, so no
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
