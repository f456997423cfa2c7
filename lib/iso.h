/* SPDX-License-Identifier: MIT */
/* Isolated memory, internal side: limits shared with the pools. */
#ifndef SVQ_ISO_H
#define SVQ_ISO_H

#include "internal.h"
#include <svqiso/iso.h>

/* Every region's IOVA base is a multiple of this. */
#define SVQ_ISO_IOVA_ALIGN	(2ull << 20)

/* Largest region: sizes go through off_t (ftruncate) and size_t (mmap). */
#define SVQ_ISO_MAX_SIZE							\
	((SIZE_MAX < (uint64_t)INT64_MAX ? (uint64_t)SIZE_MAX :		\
	  (uint64_t)INT64_MAX) & ~(SVQ_ISO_IOVA_ALIGN - 1))

#endif /* SVQ_ISO_H */
