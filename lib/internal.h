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
 * svq_opts_check() - validate an opts struct of any type.
 * @opts:       the struct, or NULL (defaults)
 * @known_size: offsetofend of the last field this library knows
 * @type:       the struct's name, for the log
 * @fn, @ctx:   where to say what is wrong (NULL: silent)
 *
 * Return: true if @opts is NULL, or its sz is at least sizeof(size_t) and every
 * byte the caller passed beyond @known_size is zero; false after logging which
 * rule the struct breaks.
 */
bool svq_opts_check(const void *opts, size_t known_size, const char *type,
		    svqiso_log_fn fn, void *ctx);

#define svq_offsetofend(TYPE, FIELD) \
	(offsetof(struct TYPE, FIELD) + sizeof(((struct TYPE *)0)->FIELD))

#define SVQ_OPTS_CHECK(TYPE, opts, fn, ctx)				\
	svq_opts_check((opts), svq_offsetofend(TYPE, TYPE##__last_field),	\
		       #TYPE, (fn), (ctx))
#define SVQ_OPTS_OK(TYPE, opts) SVQ_OPTS_CHECK(TYPE, opts, NULL, NULL)

/*
 * svq_einval() - say why a call's arguments are refused.
 * @fn, @ctx: the log callback (NULL: silent)
 * @fmt:      the reason, naming the call and the argument
 *
 * Return: -EINVAL, for "return svq_einval(...)".
 */
int svq_einval(svqiso_log_fn fn, void *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * svq_copy_layout_check() - the copy and shadow layout a constructor was given.
 * @call:   the constructor's name, for the log
 * @copy:   enum svqiso_copy_kind
 * @layout: enum svqiso_layout
 * @fn, @ctx: where to say what is wrong (NULL: silent)
 *
 * Return: 0, or -EINVAL after saying which of them is out of range.
 */
int svq_copy_layout_check(const char *call, unsigned int copy,
			  unsigned int layout, svqiso_log_fn fn, void *ctx);

/* Read a field if the caller's struct covers it, else @dflt. */
#define SVQ_OPTS_GET(opts, field, dflt)						\
	(((opts) && (opts)->sz >= offsetof(__typeof__(*(opts)), field) +	\
		sizeof((opts)->field)) ? (opts)->field : (dflt))

/* printf-style wrapper over a svqiso_log_fn; a NULL @fn is silent. */
void svq_log(svqiso_log_fn fn, void *ctx, int level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* SVQ_INTERNAL_H */
