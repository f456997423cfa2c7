/* SPDX-License-Identifier: MIT */
/*
 * Copy strategies. All produce the bytes memcpy() would; they differ in how
 * the stores reach memory.
 *
 * - memcpy: libc's, which already picks vector or rep-movsb code per CPU.
 * - movsb: a bare `rep movsb`. It is architecturally correct on every x86-64,
 *   but only fast where CPUID reports ERMS (Intel since Ivy Bridge, recent AMD
 *   cores); elsewhere its startup cost and byte-wise microcode lose to libc's
 *   vector loops. The kind is therefore usable only with ERMS, so asking for
 *   it never silently measures the slow path. Tests still run it on any
 *   x86-64 through svq_copy_resolve_cpu().
 * - nt: SSE2 non-temporal stores (movntdq) for the 64-byte aligned middle of
 *   copies of SVQ_COPY_NT_MIN bytes or more (memcpy below), regular copies
 *   for the unaligned head and tail so no cache line mixes the two kinds of
 *   store, then sfence. SSE2 is part of x86-64, but the check is kept so the
 *   rule reads the same as for the others.
 *
 * AUTO: below SVQ_COPY_AUTO_LARGE (1 MiB, about the L2 of current x86 cores)
 * memcpy, whose cached stores leave the data where the consumer on the other
 * side of the ring (the backend, or the guest after copy-back) finds it in a
 * shared cache. From 1 MiB on, rep movsb with ERMS, which the CPU's microcode
 * sizes for large moves; else NT stores; else memcpy. NT stores were the first
 * choice for large copies until the benchmarks measured them inside the
 * shadow virtqueue: the consumer reads a bounce buffer at once, from memory
 * rather than cache, and at 1 MiB movsb moved 1.4 times the requests of NT
 * (bench_svq, split ring, depth 1 and 32), and beat memcpy by a quarter on
 * cold copies (bench_copy). On other architectures only memcpy exists.
 */
#include "copy.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <emmintrin.h>
#endif

#define CPUID7_EBX_ERMS (1u << 9)
#define CPU_KNOWN (1u << 31)	/* cpu_features has been filled in */

static unsigned int cpu_features;

unsigned int svq_copy_cpu(void)
{
	unsigned int f = __atomic_load_n(&cpu_features, __ATOMIC_RELAXED);

	if (likely(f))
		return f & ~CPU_KNOWN;
	f = CPU_KNOWN;
#if defined(__x86_64__)
	{
		unsigned int a, b, c, d;

		/* Needed when this runs before libgcc's own constructor, as from
		 * another library's constructor. */
		__builtin_cpu_init();
		if (__builtin_cpu_supports("sse2"))
			f |= SVQ_CPU_NT;
		if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & CPUID7_EBX_ERMS))
			f |= SVQ_CPU_ERMS;
	}
#endif
	/* Racing threads compute and store the same value; nothing else is
	 * published with it, so relaxed is enough. */
	__atomic_store_n(&cpu_features, f, __ATOMIC_RELAXED);
	return f & ~CPU_KNOWN;
}

static void copy_memcpy(void *dst, const void *src, size_t len)
{
	/* memcpy(NULL, NULL, 0) is undefined, and empty segments exist. */
	if (len)
		memcpy(dst, src, len);
}

#if defined(__x86_64__)
static void copy_movsb(void *dst, const void *src, size_t len)
{
	/* The ABI guarantees DF = 0 on entry, so this copies upwards. */
	__asm__ volatile("rep movsb"
			 : "+D"(dst), "+S"(src), "+c"(len)
			 :
			 : "memory");
}

static void copy_nt(void *dst, const void *src, size_t len)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	size_t head;

	if (len < SVQ_COPY_NT_MIN) {
		copy_memcpy(dst, src, len);
		return;
	}
	/* Regular stores up to a cache line boundary: NT stores then fill
	 * whole lines, which write-combine without reading them first. */
	head = -(uintptr_t)d & 63;
	memcpy(d, s, head);
	d += head;
	s += head;
	len -= head;
	for (; len >= 64; len -= 64, d += 64, s += 64) {
		const __m128i *si = (const __m128i *)(const void *)s;
		__m128i *di = (__m128i *)(void *)d;
		__m128i x0 = _mm_loadu_si128(si);
		__m128i x1 = _mm_loadu_si128(si + 1);
		__m128i x2 = _mm_loadu_si128(si + 2);
		__m128i x3 = _mm_loadu_si128(si + 3);

		_mm_stream_si128(di, x0);
		_mm_stream_si128(di + 1, x1);
		_mm_stream_si128(di + 2, x2);
		_mm_stream_si128(di + 3, x3);
	}
	memcpy(d, s, len);
	/*
	 * NT stores are weakly ordered, and on x86 a release store is a plain
	 * mov that does not order them. Fence so every byte is visible before
	 * whatever publishes the buffer next: pairs with the acquire load of
	 * the ring index (shadow avail idx, or the guest's used idx) by which
	 * the other side learns of the buffer.
	 */
	_mm_sfence();
}

/* AUTO with a large-copy strategy: sizes below the cut go to memcpy. */
static void copy_auto_nt(void *dst, const void *src, size_t len)
{
	if (len < SVQ_COPY_AUTO_LARGE)
		copy_memcpy(dst, src, len);
	else
		copy_nt(dst, src, len);
}

static void copy_auto_movsb(void *dst, const void *src, size_t len)
{
	if (len < SVQ_COPY_AUTO_LARGE)
		copy_memcpy(dst, src, len);
	else
		copy_movsb(dst, src, len);
}
#endif /* __x86_64__ */

svq_copy_fn svq_copy_resolve_cpu(int kind, unsigned int cpu)
{
	switch (kind) {
	case SVQISO_COPY_AUTO:
#if defined(__x86_64__)
		if (cpu & SVQ_CPU_ERMS)
			return copy_auto_movsb;
		if (cpu & SVQ_CPU_NT)
			return copy_auto_nt;
#endif
		return copy_memcpy;
	case SVQISO_COPY_MEMCPY:
		return copy_memcpy;
	case SVQISO_COPY_MOVSB:
#if defined(__x86_64__)
		if (cpu & SVQ_CPU_ERMS)
			return copy_movsb;
#endif
		return NULL;
	case SVQISO_COPY_NT:
#if defined(__x86_64__)
		if (cpu & SVQ_CPU_NT)
			return copy_nt;
#endif
		return NULL;
	}
	return NULL;
}

svq_copy_fn svq_copy_resolve(int kind)
{
	return svq_copy_resolve_cpu(kind, svq_copy_cpu());
}

bool svqiso_copy_supported(int kind)
{
	return svq_copy_resolve(kind) != NULL;
}

const char *svqiso_copy_name(int kind)
{
	static const char *const names[SVQISO_NR_COPY] = {
		[SVQISO_COPY_AUTO] = "auto",
		[SVQISO_COPY_MEMCPY] = "memcpy",
		[SVQISO_COPY_MOVSB] = "movsb",
		[SVQISO_COPY_NT] = "nt",
	};

	if (kind < 0 || kind >= SVQISO_NR_COPY)
		return "unknown";
	return names[kind];
}

/*
 * svqiso_copy()'s functions, resolved on first use: a copy of 64 bytes takes
 * about 2 ns, so resolving per call (feature load, switch, two more calls)
 * would cost more than the copy. An unusable kind holds copy_none.
 */
static void copy_none(void *dst, const void *src, size_t len)
{
	(void)dst;
	(void)src;
	(void)len;
}

static svq_copy_fn copy_table[SVQISO_NR_COPY];

static void __attribute__((noinline, cold)) copy_table_fill(void)
{
	int k;

	/* Racing threads store the same values, and each entry is looked at
	 * on its own: relaxed is enough, as for cpu_features. */
	for (k = 0; k < SVQISO_NR_COPY; k++) {
		svq_copy_fn fn = svq_copy_resolve(k);

		__atomic_store_n(&copy_table[k], fn ? fn : copy_none,
				 __ATOMIC_RELAXED);
	}
}

int svqiso_copy(int kind, void *dst, const void *src, size_t len)
{
	svq_copy_fn fn;

	if (unlikely((unsigned int)kind >= SVQISO_NR_COPY))
		return -EINVAL;
	fn = __atomic_load_n(&copy_table[kind], __ATOMIC_RELAXED);
	if (unlikely(!fn)) {
		copy_table_fill();
		fn = copy_table[kind];
	}
	if (unlikely(fn == copy_none))
		return -ENOTSUP;
	fn(dst, src, len);
	return 0;
}
