/* SPDX-License-Identifier: MIT */
/*
 * The relay thread: one svqiso_loop over a fixed set of queues on a thread
 * of its own. A loop's queue set is fixed while it runs, so an adapter
 * whose queues change stops the relay, changes, and starts a fresh one.
 */
#ifndef SVQ_RELAY_H
#define SVQ_RELAY_H

#include <svqiso/loop.h>
#include "internal.h"

struct svq_relay_cfg {
	uint8_t loop_mode;		/* enum svqiso_loop_mode */
	uint64_t spin_ns;
	svqiso_log_fn log;
	void *log_ctx;
	int hangup_fd;			/* the loop opts' hang-up watch */
	svqiso_loop_hangup_fn hangup;
	void *hangup_ctx;
	void (*thread_start)(void *ctx);	/* on the thread, first */
	void *thread_ctx;
	/* On the starting thread, once all that can fail has worked and
	 * before the new thread runs: it may use the queues' svqs (what they
	 * were handed while no loop watched them). NULL: none. */
	void (*catch_up)(void *ctx);
	void *catch_up_ctx;
};

struct svq_relay;

/*
 * svq_relay_start() - a loop over the @n queues of @q and a thread running
 * it, named "svqiso-relay", which takes no signal. @n 0: nothing is
 * started and *@out is NULL. A failure has run no catch_up and started
 * nothing.
 *
 * Return: 0; the loop's errnos, -errno from pthread_create (logged).
 */
int svq_relay_start(const struct svq_relay_cfg *cfg,
		    const struct svqiso_loop_queue *q, unsigned int n,
		    struct svq_relay **out);

/* svq_relay_stop() - stop the loop, join the thread, free; NULL: no-op. */
void svq_relay_stop(struct svq_relay *r);

#endif /* SVQ_RELAY_H */
