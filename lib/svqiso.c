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
