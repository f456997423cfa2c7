/* SPDX-License-Identifier: MIT */
/*
 * Dirty logging: every guest byte svqiso writes marks its guest pages, in
 * vhost's log format and/or through a callback. See svqiso_dirty_log in
 * svq.h.
 */
#ifndef SVQ_DIRTY_H
#define SVQ_DIRTY_H

#include <stdint.h>
#include <svqiso/svq.h>
#include "internal.h"

struct svq_dirty {
	uint8_t *map;			/* vhost log; NULL: none */
	uint64_t map_size;		/* bytes at @map */
	svqiso_dirty_fn fn;		/* NULL: none */
	void *ctx;
	uint64_t bytes;			/* bytes logged */
	uint64_t missed;		/* bytes on pages past the map */
	bool missed_said;		/* the first miss was logged */
	svqiso_log_fn log;
	void *log_ctx;
	const char *name;
};

/*
 * svq_dirty_mark() - guest bytes [@gpa, @gpa + @len) were written: set
 * their pages' bits (atomically: the VMM reads and clears the log from
 * other threads and processes) and call the callback. @len >= 1.
 */
void svq_dirty_mark(struct svq_dirty *d, uint64_t gpa, uint64_t len);

/* svq_dirty_log_ok() - whether @log is one svqiso_svq_set_dirty_log()
 * takes (see there); @log not NULL. */
bool svq_dirty_log_ok(const struct svqiso_dirty_log *log);

#endif /* SVQ_DIRTY_H */
