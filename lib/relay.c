/* SPDX-License-Identifier: MIT */
/* The relay thread. See relay.h. */
#define _GNU_SOURCE	/* pthread_setname_np */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "relay.h"

struct svq_relay {
	struct svqiso_loop *loop;
	pthread_t thread;
	svqiso_log_fn log;
	void *log_ctx;
	void (*thread_start)(void *ctx);
	void *thread_ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool go;			/* the starter is done with the svqs */
};

static void *relay_main(void *arg)
{
	struct svq_relay *r = arg;
	int rc;

	/* Before the hook, which may rename it. */
	pthread_setname_np(pthread_self(), "svqiso-relay");
	/* The svqs are the starter's until its catch-up is done; this also
	 * orders what it did before everything the loop does. */
	pthread_mutex_lock(&r->lock);
	while (!r->go)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	if (r->thread_start)
		r->thread_start(r->thread_ctx);
	rc = svqiso_loop_run(r->loop);
	/* -ECONNRESET: the backend hung up, and the hangup hook said so. */
	if (rc && rc != -ECONNRESET)
		svq_log(r->log, r->log_ctx, SVQISO_LOG_ERR,
			"relay: loop failed: %s", strerror(-rc));
	return NULL;
}

int svq_relay_start(const struct svq_relay_cfg *cfg,
		    const struct svqiso_loop_queue *q, unsigned int n,
		    struct svq_relay **out)
{
	SVQISO_OPTS(svqiso_loop_opts, lo, .mode = cfg->loop_mode,
		    .max_queues = n, .log = cfg->log, .log_ctx = cfg->log_ctx,
		    .spin_ns = cfg->spin_ns, .hangup_fd = cfg->hangup_fd,
		    .hangup = cfg->hangup, .hangup_ctx = cfg->hangup_ctx);
	struct svq_relay *r;
	sigset_t all, old;
	unsigned int i;
	int rc;

	*out = NULL;
	if (!n)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->log = cfg->log;
	r->log_ctx = cfg->log_ctx;
	r->thread_start = cfg->thread_start;
	r->thread_ctx = cfg->thread_ctx;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	rc = svqiso_loop_new(&lo, &r->loop);
	for (i = 0; !rc && i < n; i++)
		rc = svqiso_loop_add(r->loop, &q[i]);
	if (!rc) {
		/* The relay thread takes no signal meant for the VMM's. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = -pthread_create(&r->thread, NULL, relay_main, r);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (rc) {
		svq_log(cfg->log, cfg->log_ctx, SVQISO_LOG_ERR,
			"relay: cannot start: %s", strerror(-rc));
		svqiso_loop_free(r->loop);
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->lock);
		free(r);
		return rc;
	}
	/* Nothing can fail from here: what the catch-up does is relayed. */
	if (cfg->catch_up)
		cfg->catch_up(cfg->catch_up_ctx);
	pthread_mutex_lock(&r->lock);
	r->go = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	*out = r;
	return 0;
}

void svq_relay_stop(struct svq_relay *r)
{
	if (!r)
		return;
	svqiso_loop_stop(r->loop);
	pthread_join(r->thread, NULL);
	svqiso_loop_free(r->loop);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
