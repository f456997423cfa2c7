/* SPDX-License-Identifier: MIT */
/* Dirty logging. See dirty.h. */
#include <inttypes.h>
#include "dirty.h"

#define PAGE_SHIFT	12

bool svq_dirty_log_ok(const struct svqiso_dirty_log *log)
{
	return log->sz >= svq_offsetofend(svqiso_dirty_log, ctx) &&
	       SVQ_OPTS_OK(svqiso_dirty_log, log) &&
	       (log->bitmap || log->fn) && !log->bitmap == !log->size;
}

void svq_dirty_mark(struct svq_dirty *d, uint64_t gpa, uint64_t len)
{
	uint64_t first = gpa >> PAGE_SHIFT;
	uint64_t last = (gpa + len - 1) >> PAGE_SHIFT;
	uint64_t p;

	/* A range that wraps the address space is not a guest range. */
	if (gpa + len - 1 < gpa)
		last = UINT64_MAX >> PAGE_SHIFT;
	d->bytes += len;
	if (d->map) {
		for (p = first; p <= last; ) {
			uint64_t byte = p >> 3;
			unsigned int bit = p & 7, end;
			uint8_t mask;

			if (byte >= d->map_size) {
				uint64_t from = p << PAGE_SHIFT;

				d->missed += gpa + len - (from > gpa ? from : gpa);
				if (!d->missed_said) {
					d->missed_said = true;
					svq_log(d->log, d->log_ctx, SVQISO_LOG_ERR,
						"%s: dirty log of %" PRIu64 " bytes covers guest "
						"addresses below %#" PRIx64 "; a write at %#" PRIx64
						" went unlogged: migration would lose it",
						d->name, d->map_size,
						d->map_size << (3 + PAGE_SHIFT), from);
				}
				break;
			}
			/* Every page of this byte the range covers, at once. */
			end = last - p < 8u - bit ? bit + (unsigned int)(last - p) : 7;
			mask = (uint8_t)((0xffu >> (7 - end)) & (0xffu << bit));
			/* Release: the bytes written before the bits, for a
			 * VMM that clears the bits and then reads the page. */
			__atomic_fetch_or(&d->map[byte], mask, __ATOMIC_RELEASE);
			p += end - bit + 1;
			if (!p)
				break;	/* the last page of the address space */
		}
	}
	if (d->fn)
		d->fn(d->ctx, gpa, len);
}
