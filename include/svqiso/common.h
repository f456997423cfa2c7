/* SPDX-License-Identifier: MIT */
/*
 * Common definitions shared by every libsvqiso header: export marker, the opts
 * struct convention, the log callback and the ring layout enum.
 */
#ifndef SVQISO_COMMON_H
#define SVQISO_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef SVQISO_API
#define SVQISO_API __attribute__((visibility("default")))
#endif

/*
 * SVQISO_OPTS - declare and zero an opts struct, then set its size.
 *
 * The object is zeroed before the designated fields are stored, so a library
 * that knows fewer fields than the caller sees zeros past its last known
 * field. No public opts struct ends in padding (the library checks this at
 * build time), since a compiler may copy padding bytes from the literal.
 * A field the library does not know must be zero: a newer caller's nonzero
 * field is refused, not ignored. svqiso_svq_new(), svqiso_vhost_new(),
 * svqiso_vu_connect() and svqiso_loop_new() say why they refuse their opts
 * (-EINVAL) through the log callback in them, when sz covers it;
 * svqiso_vu_queue_start() says it through the adapter's.
 *
 *	SVQISO_OPTS(svqiso_mem_opts, o, .max_regions = 64);
 */
#define SVQISO_OPTS(TYPE, NAME, ...)					\
	struct TYPE NAME = __extension__ ({				\
		struct TYPE ___##NAME;					\
		__builtin_memset(&___##NAME, 0, sizeof(struct TYPE));	\
		___##NAME = (struct TYPE){ .sz = sizeof(struct TYPE),	\
					   __VA_ARGS__ };		\
		___##NAME;						\
	})

/* Log levels passed to svqiso_log_fn, syslog-ordered. */
enum svqiso_log_level {
	SVQISO_LOG_ERR = 3,
	SVQISO_LOG_WARN = 4,
	SVQISO_LOG_INFO = 6,
	SVQISO_LOG_DEBUG = 7,
};

/*
 * svqiso_log_fn - log callback set through an object's opts.
 * @ctx:   the log_ctx given beside the callback
 * @level: enum svqiso_log_level
 * @msg:   one line, without a trailing newline
 *
 * Context: called from whichever thread made the call that logs; must not call
 * back into the object that logs.
 */
typedef void (*svqiso_log_fn)(void *ctx, int level, const char *msg);

/* Virtqueue memory layouts (VIRTIO 1.2, 2.7 and 2.8). */
enum svqiso_layout {
	SVQISO_LAYOUT_SPLIT = 0,
	SVQISO_LAYOUT_PACKED = 1,
};
#define SVQISO_NR_LAYOUTS 2

/**
 * svqiso_version() - the library's version string, "MAJOR.MINOR.PATCH".
 *
 * Return: a static string; never NULL.
 */
SVQISO_API const char *svqiso_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SVQISO_COMMON_H */
