/* SPDX-License-Identifier: MIT */
/*
 * Shared by the libFuzzer targets: reading typed values off the input, and
 * the invariant check every target makes besides the sanitizers'.
 *
 * Reads past the end of the input give zeros, so every input is a complete
 * scenario and a short one is simply an early end.
 */
#ifndef SVQ_FUZZ_H
#define SVQ_FUZZ_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fz {
	const uint8_t *p;
	size_t left;
};

static inline void fz_init(struct fz *f, const uint8_t *data, size_t size)
{
	f->p = data;
	f->left = size;
}

static inline bool fz_empty(const struct fz *f)
{
	return f->left == 0;
}

/* Copy up to @n bytes to @dst, zero-filling what the input lacks. */
static inline void fz_bytes(struct fz *f, void *dst, size_t n)
{
	size_t k = n < f->left ? n : f->left;

	if (k)
		memcpy(dst, f->p, k);
	if (k < n)
		memset((uint8_t *)dst + k, 0, n - k);
	f->p += k;
	f->left -= k;
}

static inline uint8_t fz_u8(struct fz *f)
{
	uint8_t v;

	fz_bytes(f, &v, 1);
	return v;
}

static inline uint16_t fz_u16(struct fz *f)
{
	uint16_t v;

	fz_bytes(f, &v, 2);
	return v;
}

static inline uint32_t fz_u32(struct fz *f)
{
	uint32_t v;

	fz_bytes(f, &v, 4);
	return v;
}

static inline uint64_t fz_u64(struct fz *f)
{
	uint64_t v;

	fz_bytes(f, &v, 8);
	return v;
}

static inline bool fz_bool(struct fz *f)
{
	return fz_u8(f) & 1;
}

/* A value in [0, @n), @n >= 1. */
static inline uint32_t fz_below(struct fz *f, uint32_t n)
{
	return n <= 256 ? fz_u8(f) % n : (n <= 65536 ? fz_u16(f) % n : fz_u32(f) % n);
}

/*
 * FZ_TRACE() - with SVQISO_FUZZ_TRACE set in the environment, a target says
 * what each step does (on stderr), to replay a finding by hand. A target
 * that traces calls fz_trace_init() from LLVMFuzzerInitialize().
 */
static bool fz_tracing;

static inline void fz_trace_init(void)
{
	fz_tracing = getenv("SVQISO_FUZZ_TRACE") != NULL;
}

#define FZ_TRACE(...)							\
	do {								\
		if (fz_tracing)						\
			fprintf(stderr, __VA_ARGS__);			\
	} while (0)

/*
 * FZ_CHECK() - an invariant of the target: when it does not hold, say which
 * and where, and abort so libFuzzer keeps the input as a crash.
 */
#define FZ_CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: invariant failed: %s: ",	\
				__FILE__, __LINE__, #cond);		\
			fprintf(stderr, __VA_ARGS__);			\
			fputc('\n', stderr);				\
			abort();					\
		}							\
	} while (0)

/*
 * fz_count_fds() - the fds this process has open, for the "no fd leaks"
 * invariant: the same count before and after each input.
 */
static inline int fz_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	FZ_CHECK(d != NULL, "opendir /proc/self/fd");
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own */
}

#endif /* SVQ_FUZZ_H */
