/* SPDX-License-Identifier: MIT */
/*
 * vhost-user adapter for C frontends that let svqiso own the session: the
 * frontend session (frontend.c) driving the vhost engine (engine.c, see
 * include/svqiso/vhost.h), whose queues run on a relay thread (relay.c) or
 * on the VMM's own thread. See include/svqiso/vu.h.
 *
 * Isolated mode is glue: the engine decides what the session sends and
 * runs the queues; this file sends it. Direct mode (plain vhost-user, the
 * benchmarks' baseline) hands the backend the guest's own rings and RAM.
 *
 * The relay's loop has a fixed queue set, so every change (a queue started
 * or stopped, guest RAM added) pauses the thread: stop the loop, join,
 * change, then build a fresh loop and start a fresh thread. A wake-up the
 * old loop took from an eventfd but did not act on would be lost across
 * that, so each resume runs both handlers of every queue it relays once,
 * before the new thread runs but only once nothing can fail any more: a
 * resume that fails has touched no guest ring, so the queue start it fails
 * is undone cleanly. Each new thread names itself and runs the VMM's
 * relay_start hook before its loop, so what the VMM sets for the thread
 * holds across restarts.
 *
 * With SVQISO_VU_F_EXTERNAL_LOOP there is no thread: relay_pause() and
 * relay_resume() do nothing, and the VMM's thread runs the same handlers
 * through svqiso_vu_queue_kick() and svqiso_vu_queue_process().
 *
 * A backend that hangs up is noticed on a duplicate of the session socket
 * that lives as long as the adapter (session_fd): the relay's loop watches
 * it, or the VMM polls it and calls svqiso_vu_session_check(). Either way
 * note_hangup() runs once, where no handler runs concurrently on a queue
 * whose svq it reads: it records each running queue's requests in flight
 * in the adapter (the svqs are left alone, since their owner may be
 * another thread), and the queues relay nothing more.
 */
#define _GNU_SOURCE	/* POLLRDHUP */
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>

#include <svqiso/vu.h>
#include <svqiso/vhost.h>
#include "engine.h"
#include "policy.h"
#include "frontend.h"
#include "relay.h"
#include "vhost_user.h"

#if defined(__LP64__)
_Static_assert(sizeof(struct svqiso_vu_opts) == 112, "svqiso_vu_opts is append-only");
#endif

/* Never offered to a guest, in any mode. */
#define VU_NEVER		(SVQ_F_BIT(SVQ_F_LOG_ALL) |		\
				 SVQ_F_BIT(SVQ_F_PROTOCOL_FEATURES))

enum vu_qstate {
	VU_Q_IDLE = 0,		/* never started, or stopped */
	VU_Q_RUNNING,
	VU_Q_STOPPING,		/* the backend stopped its ring; what it
				 * holds has not all completed yet */
};

struct vu_queue {
	enum vu_qstate state;
	struct svqiso_vu_queue cfg;	/* as last started */
	uint64_t stops_seen;		/* vu->ring_stops when last enabled */
	/* The backend hung up while the queue ran: @hup (__atomic, release)
	 * publishes @hup_reason, written once before it. */
	bool hup;
	char hup_reason[64];
	unsigned int seen_in_flight;	/* __atomic; external loop: after
					 * the last kick or process */
};

struct svqiso_vu {
	struct svq_fe *fe;
	/*
	 * The session's messages and region list, for what may use them while
	 * the relay runs (or, with the external loop, while the VMM's threads
	 * run queues): one-off regions added and removed from the thread that
	 * runs a queue, config space, svqiso_vu_get_info(). Everything else
	 * that talks to the backend pauses the relay first, or runs with the
	 * queues quiesced. Taken under the iso's lock (a region callback),
	 * never around a call into the engine.
	 */
	pthread_mutex_t fe_lock;
	struct svqiso_vhost *vh;	/* the engine; direct mode: only its
					 * guest memory map */
	uint8_t mode;
	uint8_t loop_mode;
	uint32_t flags;
	int timeout_ms;
	svqiso_log_fn log;
	void *log_ctx;
	svqiso_vu_relay_fn relay_start;	/* on each new relay thread */
	void *relay_ctx;
	uint64_t spin_ns;		/* for the relay loop */

	uint64_t guest_offer;		/* svqiso_vu_get_features() */
	uint64_t guest_features;	/* what the guest accepted */
	bool features_set;

	uint64_t guest_bytes;

	unsigned int nq;
	struct vu_queue *q;

	uint64_t ring_stops;		/* GET_VRING_BASE sent, any queue */

	struct svq_relay *relay;	/* non-NULL while the relay runs */

	int session_fd;			/* the session socket, duplicated:
					 * watched, never read or written; the
					 * same number across reconnects */
	char *path;			/* the opts' path, for a reconnect;
					 * NULL: connected by fd */
	svqiso_vu_hangup_fn hangup;
	void *hangup_ctx;
	bool hup;			/* __atomic: note_hangup() ran */
};

static bool external_loop(const struct svqiso_vu *vu)
{
	return vu->flags & SVQISO_VU_F_EXTERNAL_LOOP;
}

static bool isolated(const struct svqiso_vu *vu)
{
	return vu->mode == SVQISO_VU_ISOLATED;
}

/* ---- backend hang-up ---- */

static bool hung_up(const struct svqiso_vu *vu)
{
	return __atomic_load_n(&vu->hup, __ATOMIC_ACQUIRE);
}

static bool queue_hung_up(const struct vu_queue *q)
{
	return __atomic_load_n(&q->hup, __ATOMIC_ACQUIRE);
}

/* After a handler on the VMM's thread: what the queue holds, for a hang-up
 * noticed on another thread. No system call. Return: @rc. */
static int external_seen(struct svqiso_vu *vu, unsigned int index, int rc)
{
	__atomic_store_n(&vu->q[index].seen_in_flight,
			 svqiso_vhost_queue_in_flight(vu->vh, index),
			 __ATOMIC_RELAXED);
	return rc;
}

/* Whether the session socket reports the backend gone; never blocks. */
static bool session_gone(const struct svqiso_vu *vu)
{
	struct pollfd p = { .fd = vu->session_fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/*
 * The backend hung up: mark every running queue with what it held, then
 * tell the VMM. Once per adapter. Called where no handler runs on a svq it
 * reads: the relay thread at the end of its loop, a paused relay, or (the
 * external loop, whose svqs may be busy on other threads) without reading
 * them at all.
 */
static void note_hangup(struct svqiso_vu *vu)
{
	unsigned int i, n, running = 0, held = 0;

	for (i = 0; i < vu->nq; i++) {
		struct vu_queue *q = &vu->q[i];

		if (q->state == VU_Q_IDLE)
			continue;
		running++;
		if (!isolated(vu)) {
			snprintf(q->hup_reason, sizeof(q->hup_reason),
				 "backend hung up (direct mode: requests in "
				 "flight unknown)");
		} else {
			/* A stopping queue's svq is touched only by the stop,
			 * which runs alone. */
			n = external_loop(vu) && q->state == VU_Q_RUNNING ?
			    __atomic_load_n(&q->seen_in_flight, __ATOMIC_RELAXED) :
			    svqiso_vhost_queue_in_flight(vu->vh, i);
			held += n;
			snprintf(q->hup_reason, sizeof(q->hup_reason),
				 "backend hung up with %u requests in flight", n);
		}
		/* Pairs with the acquire load in queue_hung_up(). */
		__atomic_store_n(&q->hup, true, __ATOMIC_RELEASE);
	}
	if (!isolated(vu))
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: the backend hung up with %u queues running "
			"(direct mode: what they held is unknown)", running);
	else
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: the backend hung up; %u requests in flight on %u "
			"running queues are kept for a reconnect, or lost with "
			"it", held, running);
	__atomic_store_n(&vu->hup, true, __ATOMIC_RELEASE);
	if (vu->hangup)
		vu->hangup(vu->hangup_ctx);
}

/* The relay's loop saw the hang-up; it has stopped relaying. */
static void relay_hangup(void *ctx)
{
	note_hangup(ctx);
}

/* ---- relay thread ---- */

static void relay_pause(struct svqiso_vu *vu)
{
	svq_relay_stop(vu->relay);
	vu->relay = NULL;
}

/* Whether queue @i is one the relay (or the VMM's loop) serves. */
static bool relayed(const struct svqiso_vu *vu, unsigned int i)
{
	const struct svqiso_svq *svq = svq_vh_svq(vu->vh, i);

	/* A queue whose backend hung up takes nothing more: what the guest
	 * posts stays in its ring. */
	return vu->q[i].state == VU_Q_RUNNING && !queue_hung_up(&vu->q[i]) &&
	       svq && !svqiso_svq_is_broken(svq);
}

/* Run both handlers of queue @i once. Return: -EIO if broken. */
static int queue_poke(struct svqiso_vu *vu, unsigned int i)
{
	if (svqiso_vhost_queue_process(vu->vh, i) < 0 ||
	    svqiso_vhost_queue_kick(vu->vh, i) < 0)
		return -EIO;
	return 0;
}

/* The relay's catch-up: what the queues it relays were handed while no
 * loop watched them. A queue that breaks here was logged by its svq; the
 * loop drops it. */
static void relay_catch_up(void *ctx)
{
	struct svqiso_vu *vu = ctx;
	unsigned int i;

	for (i = 0; i < vu->nq; i++)
		if (relayed(vu, i))
			queue_poke(vu, i);
}

/*
 * Build a loop over the running queues and start the thread; with none
 * running there is nothing to relay. Failing here leaves the queues running
 * but unrelayed, nothing done for them since the pause: logged, and
 * returned for the caller to report.
 */
static int relay_resume(struct svqiso_vu *vu)
{
	struct svq_relay_cfg rc = {
		.loop_mode = vu->loop_mode, .spin_ns = vu->spin_ns,
		.log = vu->log, .log_ctx = vu->log_ctx,
		.hangup_fd = vu->session_fd, .hangup = relay_hangup,
		.hangup_ctx = vu, .thread_start = vu->relay_start,
		.thread_ctx = vu->relay_ctx, .catch_up = relay_catch_up,
		.catch_up_ctx = vu,
	};
	struct svqiso_loop_queue *lq;
	unsigned int i, n = 0;
	int ret;

	if (!isolated(vu) || external_loop(vu))
		return 0;
	lq = calloc(vu->nq, sizeof(*lq));
	if (!lq)
		return -ENOMEM;
	for (i = 0; i < vu->nq; i++) {
		struct svq_vh_fds fds;

		if (!relayed(vu, i))
			continue;
		svq_vh_fds(vu->vh, i, &fds);
		lq[n] = (struct svqiso_loop_queue){
			.sz = sizeof(lq[n]), .svq = svq_vh_svq(vu->vh, i),
			.guest_kick_fd = vu->q[i].cfg.kick_fd,
			.guest_call_fd = fds.guest_call,
			.backend_kick_fd = fds.kick,
			.backend_call_fd = fds.call,
		};
		n++;
	}
	ret = svq_relay_start(&rc, lq, n, &vu->relay);
	free(lq);
	return ret;
}

/* ---- session and memory ---- */

static int vu_region_add(void *ctx, const struct svqiso_region *r)
{
	struct svqiso_vu *vu = ctx;
	int rc;

	pthread_mutex_lock(&vu->fe_lock);
	rc = svq_fe_region_add(vu->fe, r);
	/* The session is gone (the backend died, or stopped answering): the
	 * region is made all the same, and a reconnect sends the next
	 * backend every region (session_restore()). A one-off region the
	 * relay makes before it sees the hang-up then breaks no queue: its
	 * request is kept and posted again like the others. */
	if (rc && svq_fe_fd(vu->fe) < 0)
		rc = 0;
	pthread_mutex_unlock(&vu->fe_lock);
	return rc;
}

static int vu_region_del(void *ctx, const struct svqiso_region *r)
{
	struct svqiso_vu *vu = ctx;
	int rc;

	pthread_mutex_lock(&vu->fe_lock);
	rc = svq_fe_region_del(vu->fe, r);
	pthread_mutex_unlock(&vu->fe_lock);
	return rc;
}

/* A session with the backend: at the saved path, or over @fd (>= 0, owned
 * from the call on). */
static int session_open(const struct svqiso_vu *vu, int fd, struct svq_fe **fe)
{
	SVQISO_OPTS(svq_fe_opts, fo, .timeout_ms = vu->timeout_ms,
		    .log = vu->log, .log_ctx = vu->log_ctx);

	if (vu->flags & SVQISO_VU_F_QUEUE_PAIRS)
		fo.flags = SVQ_FE_QUEUE_PAIRS;
	if (fd >= 0)
		return svq_fe_connect_fd(fd, &fo, fe);
	return svq_fe_connect(vu->path, &fo, fe);
}

/* Which of @opts' values svqiso_vu_connect() cannot take, said through
 * @log. Return: 0 or -EINVAL. */
static int vu_opts_refused(const struct svqiso_vu_opts *opts, uint32_t flags,
			   svqiso_log_fn log, void *log_ctx)
{
	const uint32_t all_flags = SVQISO_VU_F_PRESERVE | SVQISO_VU_F_NO_INDIRECT |
				   SVQISO_VU_F_NO_EVENT_IDX |
				   SVQISO_VU_F_LAZY_KICKS |
				   SVQISO_VU_F_EXTERNAL_LOOP |
				   SVQISO_VU_F_QUEUE_PAIRS |
				   SVQISO_VU_F_NO_ONEOFF | SVQISO_VU_F_NO_SPIN;

	if (SVQ_OPTS_GET(opts, mode, 0) > SVQISO_VU_DIRECT)
		return svq_einval(log, log_ctx, "svqiso_vu_connect: mode %u is "
				  "no mode", SVQ_OPTS_GET(opts, mode, 0));
	if (SVQ_OPTS_GET(opts, loop_mode, 0) > SVQISO_LOOP_BUSY_POLL)
		return svq_einval(log, log_ctx, "svqiso_vu_connect: loop_mode "
				  "%u is no loop mode",
				  SVQ_OPTS_GET(opts, loop_mode, 0));
	if (svq_copy_layout_check("svqiso_vu_connect",
				  SVQ_OPTS_GET(opts, copy, 0),
				  SVQ_OPTS_GET(opts, shadow_layout, 0),
				  log, log_ctx))
		return -EINVAL;
	if (SVQ_OPTS_GET(opts, timeout_ms, 0) < 0)
		return svq_einval(log, log_ctx, "svqiso_vu_connect: timeout_ms "
				  "%d is negative",
				  SVQ_OPTS_GET(opts, timeout_ms, 0));
	if (flags & ~all_flags)
		return svq_einval(log, log_ctx, "svqiso_vu_connect: unknown "
				  "flags %#x", flags & ~all_flags);
	return 0;
}

int svqiso_vu_connect(const struct svqiso_vu_opts *opts, struct svqiso_vu **out)
{
	struct svqiso_vu *vu;
	const char *path;
	uint32_t flags;
	uint64_t offered;
	svqiso_log_fn log = SVQ_OPTS_GET(opts, log, NULL);
	void *log_ctx = SVQ_OPTS_GET(opts, log_ctx, NULL);
	int rc, fd;

	if (!out || !opts || !SVQ_OPTS_CHECK(svqiso_vu_opts, opts, log, log_ctx))
		return -EINVAL;
	path = SVQ_OPTS_GET(opts, path, NULL);
	fd = path ? -1 : SVQ_OPTS_GET(opts, fd, -1);
	if (!path && fd < 0)
		return svq_einval(log, log_ctx, "svqiso_vu_connect: neither a "
				  "socket path nor a connected fd");
	flags = SVQ_OPTS_GET(opts, flags, 0);
	rc = vu_opts_refused(opts, flags, log, log_ctx);
	if (rc) {
		if (!path)
			close(fd);
		return rc;
	}

	vu = calloc(1, sizeof(*vu));
	if (!vu) {
		if (!path)
			close(fd);
		return -ENOMEM;
	}
	pthread_mutex_init(&vu->fe_lock, NULL);
	vu->mode = SVQ_OPTS_GET(opts, mode, 0);
	vu->loop_mode = SVQ_OPTS_GET(opts, loop_mode, 0);
	vu->flags = flags;
	vu->timeout_ms = SVQ_OPTS_GET(opts, timeout_ms, 0);
	if (!vu->timeout_ms)
		vu->timeout_ms = SVQ_FE_TIMEOUT_MS;
	vu->log = log;
	vu->log_ctx = log_ctx;
	vu->relay_start = SVQ_OPTS_GET(opts, relay_start, NULL);
	vu->relay_ctx = SVQ_OPTS_GET(opts, relay_ctx, NULL);
	/* Spinning is what keeps a relay beside a vCPU from paying a
	 * wake-up per batch; its window adapts, so it costs nothing where it
	 * does not pay. */
	vu->spin_ns = flags & SVQISO_VU_F_NO_SPIN ? 0 :
		      SVQ_OPTS_GET(opts, spin_ns, 0) ?: SVQISO_VU_SPIN_DEFAULT_NS;
	vu->hangup = SVQ_OPTS_GET(opts, hangup, NULL);
	vu->hangup_ctx = SVQ_OPTS_GET(opts, hangup_ctx, NULL);
	vu->session_fd = -1;

	if (path) {
		vu->path = strdup(path);
		if (!vu->path) {
			rc = -ENOMEM;
			goto err;
		}
	}
	rc = session_open(vu, fd, &vu->fe);
	if (rc)
		goto err;
	/* Ours for the adapter's life, whatever becomes of the session. */
	vu->session_fd = fcntl(svq_fe_fd(vu->fe), F_DUPFD_CLOEXEC, 0);
	if (vu->session_fd < 0) {
		rc = -errno;
		goto err;
	}
	offered = svq_fe_offered_features(vu->fe);
	if (isolated(vu) &&
	    SVQ_OPTS_GET(opts, shadow_layout, 0) == SVQISO_LAYOUT_PACKED &&
	    !(offered & SVQ_F_BIT(SVQ_F_RING_PACKED))) {
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: packed shadow rings asked for; the backend has none");
		rc = -ENOTSUP;
		goto err;
	}
	{
		SVQISO_OPTS(svqiso_vhost_opts, vo,
			    .flags = (flags & SVQISO_VU_F_PRESERVE ?
				      SVQISO_VHOST_F_PRESERVE : 0) |
				     (flags & SVQISO_VU_F_NO_INDIRECT ?
				      SVQISO_VHOST_F_NO_INDIRECT : 0) |
				     (flags & SVQISO_VU_F_NO_EVENT_IDX ?
				      SVQISO_VHOST_F_NO_EVENT_IDX : 0) |
				     (flags & SVQISO_VU_F_LAZY_KICKS ?
				      SVQISO_VHOST_F_LAZY_KICKS : 0) |
				     (flags & SVQISO_VU_F_NO_ONEOFF ?
				      SVQISO_VHOST_F_NO_ONEOFF : 0),
			    .copy = SVQ_OPTS_GET(opts, copy, 0),
			    .shadow_layout = SVQ_OPTS_GET(opts, shadow_layout, 0),
			    .pool_size = SVQ_OPTS_GET(opts, pool_size, 0),
			    .batch_bytes = SVQ_OPTS_GET(opts, batch_bytes, 0),
			    .oneoff_max = SVQ_OPTS_GET(opts, oneoff_max, 0),
			    .region_add = vu_region_add,
			    .region_del = vu_region_del, .region_ctx = vu,
			    .log = vu->log, .log_ctx = vu->log_ctx,
			    .name = "svqiso-vu");

		rc = svqiso_vhost_new(&vo, &vu->vh);
		if (rc)
			goto err;
	}
	if (isolated(vu))	/* no dirty log API here: no LOG_ALL */
		vu->guest_offer = svqiso_vhost_guest_features(vu->vh, offered) &
				  ~VU_NEVER;
	else	/* What the backend offers, less what svqiso never passes. */
		vu->guest_offer = offered & ~VU_NEVER &
				  ~SVQ_F_BIT(SVQ_F_ACCESS_PLATFORM);

	vu->nq = svq_fe_queue_num(vu->fe);
	vu->q = calloc(vu->nq, sizeof(*vu->q));
	if (!vu->q) {
		rc = -ENOMEM;
		goto err;
	}
	*out = vu;
	return 0;
err:
	svqiso_vu_free(vu);
	return rc;
}

void svqiso_vu_free(struct svqiso_vu *vu)
{
	if (!vu)
		return;
	relay_pause(vu);
	/* Regions are not taken back: the session closes with them. */
	svqiso_vhost_free(vu->vh);
	free(vu->q);
	svq_fe_free(vu->fe);
	if (vu->session_fd >= 0)
		close(vu->session_fd);
	free(vu->path);
	pthread_mutex_destroy(&vu->fe_lock);
	free(vu);
}

uint64_t svqiso_vu_get_features(const struct svqiso_vu *vu)
{
	return vu ? vu->guest_offer : 0;
}

/* Queues running, or stopping with requests in flight. */
static unsigned int nr_running(const struct svqiso_vu *vu)
{
	unsigned int i, n = 0;

	for (i = 0; i < vu->nq; i++)
		n += vu->q[i].state != VU_Q_IDLE;
	return n;
}

int svqiso_vu_set_features(struct svqiso_vu *vu, uint64_t features)
{
	uint64_t wanted, agreed;
	int rc;

	if (!vu || (features & ~vu->guest_offer) || nr_running(vu))
		return -EINVAL;
	/* Isolated: the guest's device bits; the shadow ring's own
	 * transport bits. */
	wanted = isolated(vu) ?
		 svqiso_vhost_backend_features(vu->vh, features,
					       svq_fe_offered_features(vu->fe)) :
		 features;
	rc = svq_fe_set_features(vu->fe, wanted, &agreed);
	if (!rc && isolated(vu))
		rc = svqiso_vhost_set_features(vu->vh, features, agreed);
	if (rc)
		return rc;
	vu->guest_features = features;
	vu->features_set = true;
	return 0;
}

/* The guest memory map with @add (non-NULL) or without the region at
 * @del_gpa, to the engine. */
static int guest_mem_update(struct svqiso_vu *vu,
			    const struct svqiso_mem_region *add, uint64_t del_gpa)
{
	struct svqiso_mem *mem = svq_vh_mem(vu->vh);
	unsigned int i, k = 0, n = svqiso_mem_nr_regions(mem);
	struct svqiso_mem_region *r = calloc(n + 1, sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		svqiso_mem_get_region(mem, i, &r[k]);
		if (add || r[k].gpa != del_gpa)
			k++;
	}
	if (add)
		r[k++] = *add;
	rc = svqiso_vhost_set_guest_mem(vu->vh, r, k);
	free(r);
	return rc;
}

static int find_region(const struct svqiso_vu *vu, uint64_t gpa,
		       struct svqiso_mem_region *mr)
{
	struct svqiso_mem *mem = svq_vh_mem(vu->vh);
	unsigned int i, n = svqiso_mem_nr_regions(mem);

	for (i = 0; i < n; i++) {
		svqiso_mem_get_region(mem, i, mr);
		if (mr->gpa == gpa)
			return 0;
	}
	return -ENOENT;
}

int svqiso_vu_add_region(struct svqiso_vu *vu,
			 const struct svqiso_mem_region *region)
{
	struct svqiso_region r;
	int rc;

	if (!vu || !region)
		return -EINVAL;
	if (!isolated(vu) && region->fd < 0)
		return -EINVAL;
	relay_pause(vu);
	rc = guest_mem_update(vu, region, 0);
	if (!rc && !isolated(vu)) {
		r = (struct svqiso_region){ .iova = region->gpa,
					    .size = region->size,
					    .uaddr = region->hva,
					    .fd = region->fd,
					    .fd_offset = region->fd_offset };
		rc = svq_fe_region_add(vu->fe, &r);
		if (rc)
			guest_mem_update(vu, NULL, region->gpa);
	}
	if (!rc)
		vu->guest_bytes += region->size;
	relay_resume(vu);
	return rc;
}

int svqiso_vu_del_region(struct svqiso_vu *vu, uint64_t gpa)
{
	struct svqiso_mem_region mr;
	struct svqiso_region r;
	int rc;

	if (!vu)
		return -EINVAL;
	if (nr_running(vu))
		return -EBUSY;
	if (find_region(vu, gpa, &mr))
		return -ENOENT;
	rc = guest_mem_update(vu, NULL, gpa);
	if (rc)
		return rc;
	vu->guest_bytes -= mr.size;
	if (!isolated(vu)) {
		r = (struct svqiso_region){ .iova = mr.gpa, .size = mr.size,
					    .uaddr = mr.hva, .fd = mr.fd,
					    .fd_offset = mr.fd_offset };
		return svq_fe_region_del(vu->fe, &r);
	}
	return 0;
}

/* ---- queues ---- */

static int ring_hva(struct svqiso_vu *vu, uint64_t gpa, uint64_t len,
		    uint64_t *hva)
{
	uint64_t got = len;
	void *p = svqiso_mem_lookup(svq_vh_mem(vu->vh), gpa, &got);

	if (!p || got < len)
		return -EFAULT;
	*hva = (uintptr_t)p;
	return 0;
}

/* Direct mode: the guest ring itself, in the VMM's addresses. */
static int direct_info(struct svqiso_vu *vu, const struct svqiso_vu_queue *cfg,
		       struct svqiso_shadow_info *info)
{
	uint64_t n = cfg->num;
	bool packed = cfg->layout == SVQISO_LAYOUT_PACKED;
	int rc;

	*info = (struct svqiso_shadow_info){ .layout = cfg->layout,
					     .num = cfg->num,
					     .iova = cfg->ring,
					     .base = cfg->base };
	rc = ring_hva(vu, cfg->ring.desc, 16 * n, &info->uaddr.desc);
	if (!rc)
		rc = ring_hva(vu, cfg->ring.driver, packed ? 4 : 6 + 2 * n,
			      &info->uaddr.driver);
	if (!rc)
		rc = ring_hva(vu, cfg->ring.device, packed ? 4 : 6 + 8 * n,
			      &info->uaddr.device);
	return rc;
}

/* GET_VRING_BASE for queue @index: the backend stops its ring. */
static int ring_stop(struct svqiso_vu *vu, unsigned int index, uint32_t *base)
{
	vu->ring_stops++;
	return svq_fe_vring_stop(vu->fe, index, base);
}

/*
 * After queue @index started: every other running queue across whose run
 * the backend stopped a ring is disabled and enabled again. A backend may
 * take a GET_VRING_BASE on one queue for the whole device stopping and,
 * once it starts again, use only the queues whose state changed since
 * (DPDK's vhost library does: a net RX queue stopped and started alone
 * would leave TX unread for ever). The queue's ring and position stay.
 */
static void reenable_others(struct svqiso_vu *vu, unsigned int index)
{
	unsigned int j;
	int rc;

	vu->q[index].stops_seen = vu->ring_stops;
	for (j = 0; j < vu->nq; j++) {
		struct vu_queue *q = &vu->q[j];

		if (j == index || q->state != VU_Q_RUNNING ||
		    q->stops_seen == vu->ring_stops)
			continue;
		q->stops_seen = vu->ring_stops;
		/* A failure is the session's: the next call reports it. */
		rc = svq_fe_vring_enable(vu->fe, j, false);
		if (!rc)
			rc = svq_fe_vring_enable(vu->fe, j, true);
		if (rc)
			svq_log(vu->log, vu->log_ctx, SVQISO_LOG_WARN,
				"vu: queue %u: enabling it again failed: %s",
				j, strerror(-rc));
	}
}

/* Isolated mode: the engine starts the queue, the session hands the
 * shadow ring to the backend. */
static int isolated_start(struct svqiso_vu *vu, unsigned int index,
			  const struct svqiso_vu_queue *cfg, unsigned int *reposted)
{
	struct svqiso_vhost_vring vr = {
		.sz = sizeof(vr), .ring = cfg->ring, .num = cfg->num,
		.layout = cfg->layout, .base = cfg->base,
	};
	struct svqiso_vhost_shadow sh = { .sz = sizeof(sh) };
	uint32_t base;
	int rc;

	rc = svqiso_vhost_queue_set_call(vu->vh, index, cfg->call_fd);
	if (!rc)
		rc = svqiso_vhost_queue_start(vu->vh, index, &vr, &sh);
	if (rc)
		return rc;
	rc = svq_fe_vring_start(vu->fe, index, &sh.ring, sh.kick_fd, sh.call_fd);
	if (rc)	/* what it took is kept for a start that gets through */
		svqiso_vhost_queue_backend_lost(vu->vh, index, &base);
	else if (reposted)
		*reposted = sh.reposted;
	return rc;
}

int svqiso_vu_queue_start(struct svqiso_vu *vu, unsigned int index,
			  const struct svqiso_vu_queue *cfg)
{
	struct svqiso_shadow_info info;
	struct vu_queue *q;
	bool packed_acked, ext;
	int rc, ret;

	if (!vu || !cfg)
		return -EINVAL;
	if (!SVQ_OPTS_CHECK(svqiso_vu_queue, cfg, vu->log, vu->log_ctx))
		return -EINVAL;
	if (cfg->sz < svq_offsetofend(svqiso_vu_queue, call_fd))
		return svq_einval(vu->log, vu->log_ctx, "svqiso_vu_queue_start: "
				  "sz %zu does not reach call_fd", cfg->sz);
	if (index >= vu->nq)
		return svq_einval(vu->log, vu->log_ctx, "svqiso_vu_queue_start: "
				  "queue %u: the adapter has %u", index, vu->nq);
	if (!vu->features_set)
		return svq_einval(vu->log, vu->log_ctx, "svqiso_vu_queue_start: "
				  "queue %u before the features were set",
				  index);
	if (cfg->kick_fd < -1 || cfg->call_fd < -1 ||
	    cfg->layout >= SVQISO_NR_LAYOUTS)
		return svq_einval(vu->log, vu->log_ctx, "svqiso_vu_queue_start: "
				  "queue %u: kick_fd %d, call_fd %d, layout %u",
				  index, cfg->kick_fd, cfg->call_fd, cfg->layout);
	/* The external loop reads no guest kick fd; nothing else runs
	 * without one. A bad call fd is refused as the relay's loop does. */
	ext = external_loop(vu) && isolated(vu);
	if (cfg->kick_fd < 0 && !ext)
		return svq_einval(vu->log, vu->log_ctx, "svqiso_vu_queue_start: "
				  "queue %u has no kick_fd", index);
	if (ext && cfg->call_fd >= 0 && fcntl(cfg->call_fd, F_GETFD) < 0)
		return svq_einval(vu->log, vu->log_ctx, "svqiso_vu_queue_start: "
				  "queue %u: call_fd %d is not open", index,
				  cfg->call_fd);
	packed_acked = vu->guest_features & SVQ_F_BIT(SVQ_F_RING_PACKED);
	if (packed_acked != (cfg->layout == SVQISO_LAYOUT_PACKED))
		return svq_einval(vu->log, vu->log_ctx, "svqiso_vu_queue_start: "
				  "queue %u is %s, the guest %s packed rings",
				  index, cfg->layout == SVQISO_LAYOUT_PACKED ?
				  "packed" : "split", packed_acked ? "took" :
				  "did not take");
	q = &vu->q[index];
	if (q->state != VU_Q_IDLE)
		return -EBUSY;

	relay_pause(vu);
	if (!isolated(vu)) {
		rc = direct_info(vu, cfg, &info);
		if (!rc)
			rc = svq_fe_vring_start(vu->fe, index, &info,
						cfg->kick_fd, cfg->call_fd);
	} else {
		rc = isolated_start(vu, index, cfg, NULL);
	}
	if (!rc) {
		q->cfg = *cfg;
		q->state = VU_Q_RUNNING;
		reenable_others(vu, index);
		/* What the guest posted while the queue was stopped: no kick
		 * for it got through. A broken guest ring shows in the next
		 * kick's -EIO. */
		if (ext)
			external_seen(vu, index, queue_poke(vu, index));
	}
	ret = relay_resume(vu);
	if (!rc && ret) {
		uint32_t base;

		/* Nothing relays it: better refuse than stall silently. The
		 * relay never ran, so nothing was taken from the guest: the
		 * backend stops the ring, and the engine keeps what the queue
		 * holds (requests posted again by this start included) at the
		 * base the start was given, so the same start can be made
		 * again and posts them. The others are relayed again if that
		 * can be done. Only an isolated queue has a relay. */
		if (!svq_fe_vring_enable(vu->fe, index, false))
			ring_stop(vu, index, &base);
		svqiso_vhost_queue_backend_lost(vu->vh, index, &base);
		q->state = VU_Q_IDLE;
		relay_resume(vu);
		rc = ret;
	}
	if (rc)
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: queue %u: start failed: %s", index, strerror(-rc));
	return rc;
}

/*
 * Isolated mode, a running queue: take nothing new, collect what is done
 * (the engine's drain), stop the backend's ring (GET_VRING_BASE) and hand
 * its base to the engine, which gives back to the guest ring what the
 * backend never took and waits for what it holds. Return: 0, the queue
 * stopped; -ETIMEDOUT from the drain: the backend's ring is not stopped
 * (running, taking nothing new; call again) or, with the queue left
 * stopping, from the wait for what it holds; -ECONNRESET, -EIO, the
 * session's errnos: the queue is stopped.
 */
static int isolated_stop(struct svqiso_vu *vu, unsigned int index,
			 uint32_t *base)
{
	struct vu_queue *q = &vu->q[index];
	uint32_t shadow_base = 0;
	int rc, ret;

	if (q->state == VU_Q_RUNNING) {
		rc = svqiso_vhost_queue_drain(vu->vh, index, vu->timeout_ms,
					      vu->session_fd);
		if (rc == -ETIMEDOUT)	/* logged by the engine, with the queue */
			return rc;	/* running, taking nothing new */
		if (rc != -ECONNRESET &&
		    (svq_fe_fd(vu->fe) < 0 || session_gone(vu)))
			rc = -ECONNRESET;
		if (rc != -ECONNRESET) {
			/* A broken queue stops the backend too. */
			ret = svq_fe_vring_enable(vu->fe, index, false);
			if (!ret)
				ret = ring_stop(vu, index, &shadow_base);
			/* No answer in time, or a broken reply: the session
			 * is dead, and what the backend had is gone with it. */
			if (ret && svq_fe_fd(vu->fe) < 0)
				rc = -ECONNRESET;
			else if (ret && !rc)
				rc = ret;
		}
		if (rc == -ECONNRESET)
			svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
				"vu: queue %u: the backend hung up or stopped answering with %u requests in flight",
				index, svqiso_vhost_queue_in_flight(vu->vh, index));
		if (rc && rc != -EIO) {
			q->state = VU_Q_IDLE;
			svqiso_vhost_queue_backend_lost(vu->vh, index, base);
			return rc;
		}
		q->state = VU_Q_STOPPING;
	}
	rc = svqiso_vhost_queue_stop(vu->vh, index, shadow_base, vu->timeout_ms,
				     vu->session_fd, base);
	if (rc != -ETIMEDOUT)
		q->state = VU_Q_IDLE;
	return rc;
}

/* Stop running queue @index, the relay paused: svqiso_vu_queue_stop(). */
static int stop_paused(struct svqiso_vu *vu, unsigned int index,
		       uint32_t *base)
{
	int rc;

	if (isolated(vu))
		return isolated_stop(vu, index, base);
	rc = svq_fe_vring_enable(vu->fe, index, false);
	if (!rc)
		rc = ring_stop(vu, index, base);
	vu->q[index].state = VU_Q_IDLE;
	return rc;
}

int svqiso_vu_queue_stop(struct svqiso_vu *vu, unsigned int index,
			 uint32_t *base)
{
	int rc;

	if (!vu || !base || index >= vu->nq || vu->q[index].state == VU_Q_IDLE)
		return -EINVAL;
	relay_pause(vu);
	rc = stop_paused(vu, index, base);
	relay_resume(vu);
	return rc;
}

/* ---- external loop ---- */

/* Queue @index of an isolated external-loop adapter, in any state. */
static int external_adapter(const struct svqiso_vu *vu, unsigned int index)
{
	if (!vu || index >= vu->nq || !external_loop(vu))
		return -EINVAL;
	if (!isolated(vu))
		return -ENOTSUP;
	return 0;
}

int svqiso_vu_queue_backend_fd(const struct svqiso_vu *vu, unsigned int index)
{
	struct svq_vh_fds fds;
	int rc = external_adapter(vu, index);

	if (rc)
		return rc;
	if (svq_vh_fds(vu->vh, index, &fds) || fds.call < 0)
		return -ENOENT;
	return fds.call;
}

/* Queue @index of an isolated external-loop adapter, running. */
static int external_queue(struct svqiso_vu *vu, unsigned int index)
{
	int rc = external_adapter(vu, index);

	if (rc)
		return rc;
	if (vu->q[index].state != VU_Q_RUNNING)
		return -EINVAL;
	if (queue_hung_up(&vu->q[index]))
		return -EIO;
	return 0;
}

int svqiso_vu_queue_kick(struct svqiso_vu *vu, unsigned int index)
{
	int rc = external_queue(vu, index);

	if (rc)
		return rc;
	return external_seen(vu, index, svqiso_vhost_queue_kick(vu->vh, index));
}

int svqiso_vu_queue_process(struct svqiso_vu *vu, unsigned int index)
{
	int rc = external_queue(vu, index);

	if (rc)
		return rc;
	return external_seen(vu, index,
			     svqiso_vhost_queue_process(vu->vh, index));
}

int svqiso_vu_queue_poll(struct svqiso_vu *vu, unsigned int index)
{
	int rc = external_queue(vu, index);

	if (rc)
		return rc;
	return external_seen(vu, index, svqiso_vhost_queue_poll(vu->vh, index));
}

int svqiso_vu_queue_set_busy_poll(struct svqiso_vu *vu, unsigned int index,
				  bool on)
{
	int rc = external_adapter(vu, index);

	if (rc)
		return rc;
	/* Off on a queue that no longer runs: a stop turned it off. */
	if (!on && vu->q[index].state != VU_Q_RUNNING)
		return 0;
	rc = external_queue(vu, index);
	if (rc)
		return rc;
	return svqiso_vhost_queue_set_busy_poll(vu->vh, index, on);
}

const char *svqiso_vu_queue_broken(const struct svqiso_vu *vu,
				   unsigned int index)
{
	const char *why;

	if (!vu || index >= vu->nq)
		return NULL;
	/* A queue broken before the hang-up keeps its first reason. */
	why = svqiso_vhost_queue_broken(vu->vh, index);
	if (!why && queue_hung_up(&vu->q[index]))
		why = vu->q[index].hup_reason;
	return why;
}

int svqiso_vu_session_fd(const struct svqiso_vu *vu)
{
	return vu ? vu->session_fd : -EINVAL;
}

int svqiso_vu_session_check(struct svqiso_vu *vu)
{
	if (!vu)
		return -EINVAL;
	if (hung_up(vu))
		return 1;
	if (!session_gone(vu))
		return 0;
	/* The relay's svqs are read with the relay paused; it may have seen
	 * the hang-up itself meanwhile. */
	relay_pause(vu);
	if (!hung_up(vu))
		note_hangup(vu);
	relay_resume(vu);
	return 1;
}

/* ---- reconnect ---- */

/* A reconnect failed: the queues in @restart that started on the new
 * session keep their requests again. */
static void keep_again(struct svqiso_vu *vu, const bool *restart)
{
	unsigned int i;
	uint32_t base;

	for (i = 0; i < vu->nq; i++)
		if (restart[i] && svqiso_vhost_queue_running(vu->vh, i) &&
		    svqiso_vhost_queue_backend_lost(vu->vh, i, &base) >= 0)
			vu->q[i].cfg.base = base;
}

/*
 * A new session in place of the dead one: the same features, every
 * isolated region, then each queue in @restart at the base the engine kept
 * it at, the requests the last backend held posted first. Return: the
 * requests posted again; -errno, with the queues kept as they were.
 */
static int session_restore(struct svqiso_vu *vu, struct svq_fe *fe,
			   const bool *restart)
{
	struct svq_fe *old = vu->fe;
	uint64_t acked = svq_fe_acked_features(old), agreed = 0;
	unsigned int i, n, reposted = 0, k;
	struct svqiso_region r;
	int rc = 0;

	if (svq_fe_queue_num(fe) < vu->nq) {
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: the backend came back with %u queues, not %u",
			svq_fe_queue_num(fe), vu->nq);
		return -EPROTO;
	}
	vu->fe = fe;	/* for the region callbacks */
	if (vu->features_set) {
		rc = svq_fe_set_features(fe, svqiso_vhost_backend_features(vu->vh,
					 vu->guest_features,
					 svq_fe_offered_features(fe)), &agreed);
		if (!rc && agreed != acked) {
			svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
				"vu: the backend came back agreeing to features %#" PRIx64
				", not %#" PRIx64, agreed, acked);
			rc = -EPROTO;
		}
	}
	n = svqiso_vhost_nr_regions(vu->vh);
	for (i = 0; !rc && i < n; i++) {
		rc = svqiso_vhost_get_region(vu->vh, i, &r);
		if (!rc)
			rc = svq_fe_region_add(fe, &r);
	}
	for (i = 0; !rc && i < vu->nq; i++) {
		if (!restart[i])
			continue;
		k = 0;
		rc = isolated_start(vu, i, &vu->q[i].cfg, &k);
		reposted += k;
	}
	if (rc) {
		/* Queues that started are kept again, at the same base. */
		keep_again(vu, restart);
		vu->fe = old;
		return rc;
	}
	return (int)(reposted > INT_MAX ? INT_MAX : reposted);
}

int svqiso_vu_reconnect(struct svqiso_vu *vu, int fd)
{
	struct svq_fe *fe = NULL, *old;
	unsigned int i, nrestart = 0;
	bool *restart = NULL;
	uint32_t base;
	int rc, ret;

	if (!vu || fd < -1 || (fd < 0 && !vu->path)) {
		rc = -EINVAL;
		goto close_fd;
	}
	if (!isolated(vu)) {
		rc = -ENOTSUP;
		goto close_fd;
	}
	relay_pause(vu);
	if (!hung_up(vu)) {
		if (svq_fe_fd(vu->fe) >= 0 && !session_gone(vu)) {
			rc = -EBUSY;
			goto out;
		}
		note_hangup(vu);
	}
	for (i = 0; i < vu->nq; i++)
		if (vu->q[i].state == VU_Q_STOPPING) {
			rc = -EBUSY;	/* its stop has to end first */
			goto out;
		}
	restart = calloc(vu->nq, sizeof(*restart));
	if (!restart) {
		rc = -ENOMEM;
		goto out;
	}
	/* Each running queue keeps what the dead backend held, and starts
	 * again at the base past it. */
	for (i = 0; i < vu->nq; i++) {
		struct vu_queue *q = &vu->q[i];

		/* A broken queue stays so: its stop reports it. */
		if (q->state != VU_Q_RUNNING || svqiso_vhost_queue_broken(vu->vh, i))
			continue;
		/* Kept already by a reconnect that failed: at cfg.base. */
		if (svqiso_vhost_queue_running(vu->vh, i) &&
		    svqiso_vhost_queue_backend_lost(vu->vh, i, &base) >= 0)
			q->cfg.base = base;
		restart[i] = true;
		nrestart++;
	}
	old = vu->fe;
	rc = session_open(vu, fd, &fe);
	fd = -1;	/* the session's now, or closed */
	if (!rc)
		rc = session_restore(vu, fe, restart);
	/* Watched from now on: the same fd number, the new socket. */
	if (rc >= 0 && dup3(svq_fe_fd(fe), vu->session_fd, O_CLOEXEC) < 0) {
		rc = -errno;
		keep_again(vu, restart);
		vu->fe = old;
	}
	if (rc < 0) {
		svq_fe_free(fe);
		goto out;
	}
	svq_fe_free(old);
	for (i = 0; i < vu->nq; i++) {
		vu->q[i].stops_seen = vu->ring_stops;
		/* Pairs with the acquire load in queue_hung_up(). */
		__atomic_store_n(&vu->q[i].hup, false, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&vu->hup, false, __ATOMIC_RELEASE);
	svq_log(vu->log, vu->log_ctx, SVQISO_LOG_INFO,
		"vu: reconnected: %u queues running again, %d requests the last backend held posted again",
		nrestart, rc);
	/* Publish what went onto the shadow rings and take what the guest
	 * posted meanwhile; the relay does so as it resumes. */
	if (external_loop(vu))
		for (i = 0; i < vu->nq; i++)
			if (restart[i])
				external_seen(vu, i, queue_poke(vu, i));
out:
	if (fd >= 0)
		close(fd);
	free(restart);
	ret = relay_resume(vu);
	if (rc >= 0 && ret) {
		/* The queues run on the new session, but nothing relays them:
		 * end that session too, so that the adapter is as after the
		 * hang-up (the queues keep what they hold) and a call again
		 * can make it whole. */
		shutdown(svq_fe_fd(vu->fe), SHUT_RDWR);
		note_hangup(vu);
		rc = ret;
	}
	if (rc < 0)
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: reconnect failed: %s", strerror(-rc));
	return rc;
close_fd:
	if (fd >= 0)
		close(fd);
	return rc;
}

int svqiso_vu_get_queue_stats(const struct svqiso_vu *vu, unsigned int index,
			      struct svqiso_svq_stats *st)
{
	if (!vu || !st || index >= vu->nq)
		return -EINVAL;
	if (!isolated(vu))
		return -ENOTSUP;
	return svqiso_vhost_queue_stats(vu->vh, index, st);
}

/* The session's lock for a reader: @vu is const to its callers. */
static pthread_mutex_t *fe_lock_of(const struct svqiso_vu *vu)
{
	return (pthread_mutex_t *)&vu->fe_lock;
}

int svqiso_vu_get_info(const struct svqiso_vu *vu, struct svqiso_vu_info *info)
{
	struct svqiso_vu_info v = { .sz = sizeof(v) };
	struct svqiso_mem *mem;
	struct svqiso_region r;
	struct svqiso_mem_region mr;
	unsigned int i, n;
	size_t sz;

	if (!vu || !info || info->sz < sizeof(size_t))
		return -EINVAL;
	mem = svq_vh_mem(vu->vh);
	pthread_mutex_lock(fe_lock_of(vu));
	v.backend_features = svq_fe_offered_features(vu->fe);
	v.acked_features = svq_fe_acked_features(vu->fe);
	v.protocol_features = svq_fe_protocol_features(vu->fe);
	v.mem_slots = svq_fe_mem_slots(vu->fe);
	v.backend_regions = svq_fe_nr_regions(vu->fe);
	pthread_mutex_unlock(fe_lock_of(vu));
	v.guest_bytes = vu->guest_bytes;
	v.queues = vu->nq;
	v.guest_regions = svqiso_mem_nr_regions(mem);
	v.running = nr_running(vu);
	v.mode = vu->mode;
	v.spin_ns = isolated(vu) && !(vu->flags & SVQISO_VU_F_EXTERNAL_LOOP) ?
		    vu->spin_ns : 0;
	if (!isolated(vu)) {
		n = svqiso_mem_nr_regions(mem);
		for (i = 0; i < n; i++)
			if (!svqiso_mem_get_region(mem, i, &mr))
				v.backend_bytes += mr.size;
	} else {
		n = svqiso_vhost_nr_regions(vu->vh);
		for (i = 0; i < n; i++)
			if (!svqiso_vhost_get_region(vu->vh, i, &r))
				v.backend_bytes += r.size;
	}
	sz = info->sz < sizeof(v) ? info->sz : sizeof(v);
	memcpy((uint8_t *)info + sizeof(size_t), (uint8_t *)&v + sizeof(size_t),
	       sz - sizeof(size_t));
	return 0;
}

int svqiso_vu_get_config(struct svqiso_vu *vu, uint32_t offset, void *buf,
			 uint32_t len)
{
	int rc;

	if (!vu)
		return -EINVAL;
	pthread_mutex_lock(&vu->fe_lock);
	rc = svq_fe_get_config(vu->fe, offset, buf, len);
	pthread_mutex_unlock(&vu->fe_lock);
	return rc;
}

int svqiso_vu_set_config(struct svqiso_vu *vu, uint32_t offset,
			 const void *buf, uint32_t len)
{
	int rc;

	if (!vu)
		return -EINVAL;
	pthread_mutex_lock(&vu->fe_lock);
	rc = svq_fe_set_config(vu->fe, offset, buf, len, 0);
	pthread_mutex_unlock(&vu->fe_lock);
	return rc;
}

int svqiso_vu_reset(struct svqiso_vu *vu)
{
	unsigned int i;
	uint32_t base;

	if (!vu)
		return -EINVAL;
	for (i = 0; i < vu->nq; i++) {
		struct vu_queue *q = &vu->q[i];

		if (q->state == VU_Q_IDLE)
			continue;
		/* Reset drops what the backend holds past the timeout. */
		if (svqiso_vu_queue_stop(vu, i, &base) != -ETIMEDOUT)
			continue;
		relay_pause(vu);
		if (q->state == VU_Q_RUNNING) {
			/* Its ring was not stopped yet. */
			svq_fe_vring_enable(vu->fe, i, false);
			ring_stop(vu, i, &base);
		}
		q->state = VU_Q_IDLE;
		relay_resume(vu);
	}
	relay_pause(vu);
	/* The guest sets its rings up afresh after a reset. */
	if (isolated(vu))
		for (i = 0; i < vu->nq; i++)
			svqiso_vhost_queue_reset(vu->vh, i);
	vu->features_set = false;
	vu->guest_features = 0;
	return svq_fe_reset(vu->fe);
}
