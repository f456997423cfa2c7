/* SPDX-License-Identifier: MIT */
/*
 * Copy strategies: every one produces the same bytes as memcpy(); they differ
 * only in speed. Which are usable is decided once, at run time, from the CPU.
 *
 * Thread safety: all functions may be called from any thread.
 */
#ifndef SVQISO_COPY_H
#define SVQISO_COPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <svqiso/common.h>

#ifdef __cplusplus
extern "C" {
#endif

enum svqiso_copy_kind {
	SVQISO_COPY_AUTO = 0,	/* the best usable one for the size */
	SVQISO_COPY_MEMCPY = 1,	/* libc memcpy */
	SVQISO_COPY_MOVSB = 2,	/* x86 rep movsb (ERMS) */
	SVQISO_COPY_NT = 3,	/* x86 non-temporal stores (SSE2) for large copies */
};
#define SVQISO_NR_COPY 4

/**
 * svqiso_copy_supported() - whether @kind is usable on this CPU: memcpy and
 * auto always; movsb only with ERMS (without it rep movsb is correct but
 * slow); nt with SSE2 (every x86-64). Only memcpy and auto off x86-64.
 */
SVQISO_API bool svqiso_copy_supported(int kind);

/** svqiso_copy_name() - "auto", "memcpy", "movsb", "nt"; "unknown" otherwise. */
SVQISO_API const char *svqiso_copy_name(int kind);

/**
 * svqiso_copy() - copy @len bytes from @src to @dst (must not overlap) with
 * strategy @kind. Any thread may call it; the strategies are resolved for
 * this CPU on the first call, so later calls add only a call to the copy.
 *
 * Return: 0; -EINVAL (unknown @kind), -ENOTSUP (not usable on this CPU).
 */
SVQISO_API int svqiso_copy(int kind, void *dst, const void *src, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* SVQISO_COPY_H */
