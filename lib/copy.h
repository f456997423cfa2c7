/* SPDX-License-Identifier: MIT */
/* Copy strategies, internal side: resolve once, call through a pointer. */
#ifndef SVQ_COPY_H
#define SVQ_COPY_H

#include "internal.h"
#include <svqiso/copy.h>

typedef void (*svq_copy_fn)(void *dst, const void *src, size_t len);

/* CPU features the strategies depend on. */
#define SVQ_CPU_ERMS	(1u << 0)	/* fast rep movsb (CPUID.7.0:EBX[9]) */
#define SVQ_CPU_NT	(1u << 1)	/* SSE2 non-temporal stores */

/* SVQISO_COPY_NT: below this, plain memcpy (head/tail and sfence dominate). */
#define SVQ_COPY_NT_MIN		4096
/* SVQISO_COPY_AUTO: from this size on, the large-copy strategy. */
#define SVQ_COPY_AUTO_LARGE	(1u << 20)

/* svq_copy_cpu() - SVQ_CPU_* of this CPU, detected on first use. */
unsigned int svq_copy_cpu(void);

/*
 * svq_copy_resolve_cpu() - the function for @kind on a CPU with features
 * @cpu (SVQ_CPU_*); lets tests reach every strategy and every AUTO choice.
 *
 * Return: the function; NULL if @kind is unknown or needs a missing feature.
 */
svq_copy_fn svq_copy_resolve_cpu(int kind, unsigned int cpu);

/*
 * svq_copy_resolve() - the function for @kind (AUTO picks the best usable).
 *
 * Return: the function; NULL if @kind is unknown or not usable here.
 */
svq_copy_fn svq_copy_resolve(int kind);

#endif /* SVQ_COPY_H */
