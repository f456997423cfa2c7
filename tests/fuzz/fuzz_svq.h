/* SPDX-License-Identifier: MIT */
/*
 * What the shadow virtqueue targets (fuzz_guest.c, fuzz_backend.c) share.
 */
#ifndef SVQISO_FUZZ_SVQ_H
#define SVQISO_FUZZ_SVQ_H

#include <svqiso/iso.h>
#include "fuzz.h"

static void log_sink(void *ctx, int level, const char *msg)
{
	(void)ctx;
	(void)level;
	(void)msg;
}

/*
 * One isolated address space for the whole run: a svqiso_iso's region map
 * is sized for SVQISO_MEM_MAX_REGIONS up front, which costs nothing under
 * glibc but a 2.6 MiB memset per input under AddressSanitizer. Each input
 * must leave it with no region (checked here, at the next input, and at
 * teardown), which is stricter than LeakSanitizer: it sees regions, not
 * just memory.
 */
static struct svqiso_iso *shared_iso(void)
{
	static struct svqiso_iso *iso;

	if (!iso) {
		SVQISO_OPTS(svqiso_iso_opts, io, .log = log_sink, .name = "fz");

		FZ_CHECK(svqiso_iso_new(&io, &iso) == 0, "iso_new");
	}
	FZ_CHECK(svqiso_iso_nr_regions(iso) == 0,
		 "isolated regions left from an earlier input");
	return iso;
}

#endif
