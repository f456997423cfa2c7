/* SPDX-License-Identifier: MIT */
/* Helpers shared by every file of the library; never installed. */
#ifndef SVQ_INTERNAL_H
#define SVQ_INTERNAL_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>
#include <svqiso/svqiso.h>

#define likely(x)	__builtin_expect(!!(x), 1)
#define unlikely(x)	__builtin_expect(!!(x), 0)

#define SVQ_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * svq_opts_ok() - validate an opts struct of any type.
 * @opts:       the struct, or NULL (defaults)
 * @known_size: offsetofend of the last field this library knows
 *
 * Return: true if @opts is NULL, or its sz is at least sizeof(size_t) and every
 * byte the caller passed beyond @known_size is zero.
 */
bool svq_opts_ok(const void *opts, size_t known_size);

#define svq_offsetofend(TYPE, FIELD) \
	(offsetof(struct TYPE, FIELD) + sizeof(((struct TYPE *)0)->FIELD))

#define SVQ_OPTS_OK(TYPE, opts) \
	svq_opts_ok((opts), svq_offsetofend(TYPE, TYPE##__last_field))

/* Read a field if the caller's struct covers it, else @dflt. */
#define SVQ_OPTS_GET(opts, field, dflt)						\
	(((opts) && (opts)->sz >= offsetof(__typeof__(*(opts)), field) +	\
		sizeof((opts)->field)) ? (opts)->field : (dflt))

/* printf-style wrapper over a svqiso_log_fn; a NULL @fn is silent. */
void svq_log(svqiso_log_fn fn, void *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* SVQ_INTERNAL_H */
