/* SPDX-License-Identifier: MIT */
/*
 * vhost-user adapter for C frontends: guest memory map, one shadow
 * virtqueue and bounce arena per queue, a relay thread running the event
 * loop, and the frontend session. See include/svqiso/vu.h.
 *
 * The relay thread runs one svqiso_loop over every running queue. A loop's
 * queue set is fixed while it runs, so every change (a queue started or
 * stopped, guest RAM added) pauses the thread: stop the loop, join, change,
 * then build a fresh loop and start a fresh thread. A wake-up the old loop
 * took from an eventfd but did not act on would be lost across that, so
 * each resume first runs both handlers of every running queue once. Each
 * new thread names itself and runs the VMM's relay_start hook before its
 * loop, so what the VMM sets for the thread holds across restarts.
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
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <svqiso/vu.h>
#include "frontend.h"
#include "vhost_user.h"

#if defined(__LP64__)
_Static_assert(sizeof(struct svqiso_vu_opts) == 104, "svqiso_vu_opts is append-only");
#endif

/* Transport bits (VIRTIO 1.2, 6) and the guest-side policy. */
#define VU_TRANSPORT_MASK	(((1ull << 41) - 1) & ~((1ull << 24) - 1))
#define VU_BIT(b)		(1ull << (b))
/* Served by svqiso on the guest ring whatever the backend does. */
#define VU_GUEST_OWN		(VU_BIT(SVQ_FE_F_INDIRECT_DESC) |	\
				 VU_BIT(SVQ_FE_F_EVENT_IDX) |		\
				 VU_BIT(SVQ_FE_F_RING_PACKED))
/* Passed to the guest when the backend offers them. */
#define VU_GUEST_PASS		(VU_BIT(SVQ_FE_F_VERSION_1) |		\
				 VU_BIT(SVQ_FE_F_ANY_LAYOUT) |		\
				 VU_BIT(SVQ_FE_F_ORDER_PLATFORM))
/* Never offered to a guest, in any mode. */
#define VU_NEVER		(VU_BIT(SVQ_FE_F_LOG_ALL) |		\
				 VU_BIT(SVQ_VU_F_PROTOCOL_FEATURES))

enum vu_qstate {
	VU_Q_IDLE = 0,		/* never started, or stopped */
	VU_Q_RUNNING,
	VU_Q_STOPPING,		/* the backend stopped its ring; what it
				 * holds has not all completed yet */
};

struct vu_queue {
	enum vu_qstate state;
	struct svqiso_vu_queue cfg;	/* as last started */
	struct svqiso_svq *svq;		/* isolated mode */
	struct svqiso_pool *pool;
	int backend_kick;		/* eventfds shared with the backend */
	int backend_call;
	uint32_t gfeat, sfeat;		/* ring features q->svq was made with */
	bool stale;			/* q->svq's guest ring is gone: replace it */
	char name[16];			/* for the svq's log lines */
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
	uint8_t mode;
	uint8_t loop_mode;
	uint8_t copy;
	uint8_t shadow_layout;
	uint32_t flags;
	uint64_t pool_size;
	int timeout_ms;
	svqiso_log_fn log;
	void *log_ctx;
	svqiso_vu_relay_fn relay_start;	/* on each new relay thread */
	void *relay_ctx;
	uint64_t batch_bytes;		/* for each svq */
	uint64_t spin_ns;		/* for the relay loop */

	uint64_t guest_offer;		/* svqiso_vu_get_features() */
	uint64_t guest_features;	/* what the guest accepted */
	bool features_set;

	struct svqiso_mem *mem;		/* guest RAM */
	uint64_t guest_bytes;
	struct svqiso_iso *iso;		/* isolated mode */
	bool closing;			/* free: regions are not unregistered */

	unsigned int nq;
	struct vu_queue *q;

	uint64_t ring_stops;		/* GET_VRING_BASE sent, any queue */

	struct svqiso_loop *loop;	/* non-NULL while the relay runs */
	pthread_t thread;

	int session_fd;			/* the session socket, duplicated:
					 * watched, never read or written */
	svqiso_vu_hangup_fn hangup;
	void *hangup_ctx;
	bool hup;			/* __atomic: note_hangup() ran */
};

static bool external_loop(const struct svqiso_vu *vu)
{
	return vu->flags & SVQISO_VU_F_EXTERNAL_LOOP;
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
static int external_seen(struct vu_queue *q, int rc)
{
	__atomic_store_n(&q->seen_in_flight, svqiso_svq_in_flight(q->svq),
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
		if (vu->mode == SVQISO_VU_DIRECT) {
			snprintf(q->hup_reason, sizeof(q->hup_reason),
				 "backend hung up (direct mode: requests in "
				 "flight unknown)");
		} else {
			/* A stopping queue's svq is touched only by the stop,
			 * which runs alone. */
			n = external_loop(vu) && q->state == VU_Q_RUNNING ?
			    __atomic_load_n(&q->seen_in_flight, __ATOMIC_RELAXED) :
			    svqiso_svq_in_flight(q->svq);
			held += n;
			snprintf(q->hup_reason, sizeof(q->hup_reason),
				 "backend hung up with %u requests in flight", n);
		}
		/* Pairs with the acquire load in queue_hung_up(). */
		__atomic_store_n(&q->hup, true, __ATOMIC_RELEASE);
	}
	if (vu->mode == SVQISO_VU_DIRECT)
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: the backend hung up with %u queues running "
			"(direct mode: what they held is unknown)", running);
	else
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: the backend hung up; %u requests in flight on %u "
			"running queues are lost with it", held, running);
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

static void *relay_main(void *arg)
{
	struct svqiso_vu *vu = arg;
	int rc;

	/* Before the hook, which may rename it. */
	pthread_setname_np(pthread_self(), "svqiso-relay");
	if (vu->relay_start)
		vu->relay_start(vu->relay_ctx);
	rc = svqiso_loop_run(vu->loop);
	/* -ECONNRESET: the backend hung up, and relay_hangup() said so. */
	if (rc && rc != -ECONNRESET)
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: relay loop failed: %s", strerror(-rc));
	return NULL;
}

static void relay_pause(struct svqiso_vu *vu)
{
	if (!vu->loop)
		return;
	svqiso_loop_stop(vu->loop);
	pthread_join(vu->thread, NULL);
	svqiso_loop_free(vu->loop);
	vu->loop = NULL;
}

static void signal_fd(int fd)
{
	static const uint64_t one = 1;
	ssize_t n;

	if (fd < 0)
		return;
	/* Fails only when the counter is full: a wake-up is pending anyway. */
	n = write(fd, &one, sizeof(one));
	(void)n;
}

static void drain_fd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) == sizeof(v))
		;
}

/* Write the eventfds a handler's @mask asks for. Return: @mask; -EIO for a
 * broken queue (the svq logged why). */
static int queue_signal(struct vu_queue *q, int mask)
{
	if (mask < 0)
		return -EIO;
	if (mask & SVQISO_SIGNAL_BACKEND)
		signal_fd(q->backend_kick);
	if (mask & SVQISO_SIGNAL_GUEST)
		signal_fd(q->cfg.call_fd);
	return mask;
}

/*
 * Run a handler until it has nothing left, signalling what each call asks
 * for as it comes (a call that stops at batch_bytes returns
 * SVQISO_SIGNAL_AGAIN). Return: what was asked for, without AGAIN; -EIO for
 * a broken queue.
 */
static int queue_run(struct vu_queue *q, int (*handler)(struct svqiso_svq *))
{
	int mask, all = 0;

	do {
		mask = queue_signal(q, handler(q->svq));
		if (mask < 0)
			return mask;
		all |= mask & ~SVQISO_SIGNAL_AGAIN;
	} while (mask & SVQISO_SIGNAL_AGAIN);
	return all;
}

/* Run both handlers to the end, signalling as they ask. Return: -EIO if
 * broken. */
static int queue_poke(struct vu_queue *q, bool take)
{
	if (queue_run(q, svqiso_svq_process_used) < 0)
		return -EIO;
	if (take && queue_run(q, svqiso_svq_process_avail) < 0)
		return -EIO;
	return 0;
}

/*
 * Build a loop over the running queues and start the thread; with none
 * running there is nothing to relay. Failing here leaves the queues running
 * but unrelayed: logged, and returned for the caller to report.
 */
static int relay_resume(struct svqiso_vu *vu)
{
	SVQISO_OPTS(svqiso_loop_opts, lo, .mode = vu->loop_mode,
		    .max_queues = vu->nq, .log = vu->log, .log_ctx = vu->log_ctx,
		    .spin_ns = vu->spin_ns, .hangup_fd = vu->session_fd,
		    .hangup = relay_hangup, .hangup_ctx = vu);
	sigset_t all, old;
	unsigned int i, n = 0;
	int rc;

	if (vu->mode == SVQISO_VU_DIRECT || external_loop(vu))
		return 0;
	for (i = 0; i < vu->nq; i++) {
		struct vu_queue *q = &vu->q[i];

		/* A queue whose backend hung up takes nothing more: what the
		 * guest posts stays in its ring. */
		if (q->state != VU_Q_RUNNING || queue_hung_up(q) ||
		    svqiso_svq_is_broken(q->svq))
			continue;
		if (queue_poke(q, true))
			continue;	/* logged by the svq */
		n++;
	}
	if (!n)
		return 0;

	rc = svqiso_loop_new(&lo, &vu->loop);
	if (rc)
		goto err;
	for (i = 0; i < vu->nq; i++) {
		struct vu_queue *q = &vu->q[i];
		SVQISO_OPTS(svqiso_loop_queue, lq, .svq = q->svq,
			    .guest_kick_fd = q->cfg.kick_fd,
			    .guest_call_fd = q->cfg.call_fd,
			    .backend_kick_fd = q->backend_kick,
			    .backend_call_fd = q->backend_call);

		if (q->state != VU_Q_RUNNING || queue_hung_up(q) ||
		    svqiso_svq_is_broken(q->svq))
			continue;
		rc = svqiso_loop_add(vu->loop, &lq);
		if (rc)
			goto err_loop;
	}
	/* The relay thread takes no signal meant for the VMM's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&vu->thread, NULL, relay_main, vu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		goto err_loop;
	return 0;
err_loop:
	svqiso_loop_free(vu->loop);
	vu->loop = NULL;
err:
	svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
		"vu: cannot start the relay: %s", strerror(-rc));
	return rc;
}

/* ---- session and memory ---- */

static int vu_region_add(void *ctx, const struct svqiso_region *r)
{
	struct svqiso_vu *vu = ctx;

	return svq_fe_region_add(vu->fe, r);
}

static int vu_region_del(void *ctx, const struct svqiso_region *r)
{
	struct svqiso_vu *vu = ctx;

	if (vu->closing)	/* the session closes with them */
		return 0;
	return svq_fe_region_del(vu->fe, r);
}

static uint64_t guest_offer(const struct svqiso_vu *vu, uint64_t offered)
{
	uint64_t device = offered & ~VU_TRANSPORT_MASK & ~VU_NEVER;

	if (vu->mode == SVQISO_VU_DIRECT) {
		/* What the backend offers, less what svqiso never passes. */
		return (offered & ~VU_NEVER &
			~VU_BIT(SVQ_FE_F_ACCESS_PLATFORM));
	}
	return device | VU_GUEST_OWN | (offered & VU_GUEST_PASS);
}

int svqiso_vu_connect(const struct svqiso_vu_opts *opts, struct svqiso_vu **out)
{
	SVQISO_OPTS(svq_fe_opts, fo);
	SVQISO_OPTS(svqiso_mem_opts, mo);
	struct svqiso_vu *vu;
	const char *path;
	int rc, fd;

	if (!out || !opts || !SVQ_OPTS_OK(svqiso_vu_opts, opts))
		return -EINVAL;
	path = SVQ_OPTS_GET(opts, path, NULL);
	fd = SVQ_OPTS_GET(opts, fd, -1);
	if (!path && fd < 0)
		return -EINVAL;
	if (SVQ_OPTS_GET(opts, mode, 0) > SVQISO_VU_DIRECT ||
	    SVQ_OPTS_GET(opts, loop_mode, 0) > SVQISO_LOOP_BUSY_POLL ||
	    SVQ_OPTS_GET(opts, copy, 0) >= SVQISO_NR_COPY ||
	    SVQ_OPTS_GET(opts, shadow_layout, 0) >= SVQISO_NR_LAYOUTS ||
	    SVQ_OPTS_GET(opts, timeout_ms, 0) < 0 ||
	    (SVQ_OPTS_GET(opts, flags, 0) & ~(SVQISO_VU_F_PRESERVE |
					       SVQISO_VU_F_NO_INDIRECT |
					       SVQISO_VU_F_NO_EVENT_IDX |
					       SVQISO_VU_F_LAZY_KICKS |
					       SVQISO_VU_F_EXTERNAL_LOOP |
					       SVQISO_VU_F_QUEUE_PAIRS))) {
		if (!path)
			close(fd);
		return -EINVAL;
	}

	vu = calloc(1, sizeof(*vu));
	if (!vu) {
		if (!path)
			close(fd);
		return -ENOMEM;
	}
	vu->mode = SVQ_OPTS_GET(opts, mode, 0);
	vu->loop_mode = SVQ_OPTS_GET(opts, loop_mode, 0);
	vu->copy = SVQ_OPTS_GET(opts, copy, 0);
	vu->shadow_layout = SVQ_OPTS_GET(opts, shadow_layout, 0);
	vu->flags = SVQ_OPTS_GET(opts, flags, 0);
	vu->pool_size = SVQ_OPTS_GET(opts, pool_size, 0);
	vu->timeout_ms = SVQ_OPTS_GET(opts, timeout_ms, 0);
	if (!vu->timeout_ms)
		vu->timeout_ms = SVQ_FE_TIMEOUT_MS;
	vu->log = SVQ_OPTS_GET(opts, log, NULL);
	vu->log_ctx = SVQ_OPTS_GET(opts, log_ctx, NULL);
	vu->relay_start = SVQ_OPTS_GET(opts, relay_start, NULL);
	vu->relay_ctx = SVQ_OPTS_GET(opts, relay_ctx, NULL);
	vu->batch_bytes = SVQ_OPTS_GET(opts, batch_bytes, 0);
	vu->spin_ns = SVQ_OPTS_GET(opts, spin_ns, 0);
	vu->hangup = SVQ_OPTS_GET(opts, hangup, NULL);
	vu->hangup_ctx = SVQ_OPTS_GET(opts, hangup_ctx, NULL);
	vu->session_fd = -1;

	fo.timeout_ms = vu->timeout_ms;
	if (vu->flags & SVQISO_VU_F_QUEUE_PAIRS)
		fo.flags = SVQ_FE_QUEUE_PAIRS;
	fo.log = vu->log;
	fo.log_ctx = vu->log_ctx;
	if (path)
		rc = svq_fe_connect(path, &fo, &vu->fe);
	else
		rc = svq_fe_connect_fd(fd, &fo, &vu->fe);
	if (rc)
		goto err;
	/* Ours for the adapter's life, whatever becomes of the session. */
	vu->session_fd = fcntl(svq_fe_fd(vu->fe), F_DUPFD_CLOEXEC, 0);
	if (vu->session_fd < 0) {
		rc = -errno;
		goto err;
	}
	if (vu->mode == SVQISO_VU_ISOLATED &&
	    vu->shadow_layout == SVQISO_LAYOUT_PACKED &&
	    !(svq_fe_offered_features(vu->fe) & VU_BIT(SVQ_FE_F_RING_PACKED))) {
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: packed shadow rings asked for; the backend has none");
		rc = -ENOTSUP;
		goto err;
	}
	vu->guest_offer = guest_offer(vu, svq_fe_offered_features(vu->fe));

	mo.log = vu->log;
	mo.log_ctx = vu->log_ctx;
	rc = svqiso_mem_new(&mo, &vu->mem);
	if (rc)
		goto err;
	if (vu->mode == SVQISO_VU_ISOLATED) {
		SVQISO_OPTS(svqiso_iso_opts, io, .region_add = vu_region_add,
			    .region_del = vu_region_del, .region_ctx = vu,
			    .log = vu->log, .log_ctx = vu->log_ctx,
			    .name = "svqiso-vu");

		rc = svqiso_iso_new(&io, &vu->iso);
		if (rc)
			goto err;
	}
	vu->nq = svq_fe_queue_num(vu->fe);
	vu->q = calloc(vu->nq, sizeof(*vu->q));
	if (!vu->q) {
		rc = -ENOMEM;
		goto err;
	}
	for (unsigned int i = 0; i < vu->nq; i++)
		vu->q[i].backend_kick = vu->q[i].backend_call = -1;
	*out = vu;
	return 0;
err:
	svqiso_vu_free(vu);
	return rc;
}

static void queue_release(struct vu_queue *q)
{
	svqiso_svq_free(q->svq);
	q->svq = NULL;
	svqiso_pool_free(q->pool);
	q->pool = NULL;
	if (q->backend_kick >= 0)
		close(q->backend_kick);
	if (q->backend_call >= 0)
		close(q->backend_call);
	q->backend_kick = q->backend_call = -1;
}

void svqiso_vu_free(struct svqiso_vu *vu)
{
	unsigned int i;

	if (!vu)
		return;
	relay_pause(vu);
	vu->closing = true;
	for (i = 0; i < vu->nq; i++)
		queue_release(&vu->q[i]);
	free(vu->q);
	svqiso_iso_free(vu->iso);
	svqiso_mem_free(vu->mem);
	svq_fe_free(vu->fe);
	if (vu->session_fd >= 0)
		close(vu->session_fd);
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
	uint64_t offered, wanted;
	int rc;

	if (!vu || (features & ~vu->guest_offer) || nr_running(vu))
		return -EINVAL;
	offered = svq_fe_offered_features(vu->fe);
	if (vu->mode == SVQISO_VU_DIRECT) {
		wanted = features;
	} else {
		/* Device bits as the guest took them; the shadow ring's own
		 * transport bits. */
		wanted = features & ~VU_TRANSPORT_MASK;
		wanted |= features & offered & VU_GUEST_PASS;
		if (!(vu->flags & SVQISO_VU_F_NO_INDIRECT))
			wanted |= offered & VU_BIT(SVQ_FE_F_INDIRECT_DESC);
		if (!(vu->flags & SVQISO_VU_F_NO_EVENT_IDX))
			wanted |= offered & VU_BIT(SVQ_FE_F_EVENT_IDX);
		if (vu->shadow_layout == SVQISO_LAYOUT_PACKED)
			wanted |= VU_BIT(SVQ_FE_F_RING_PACKED);
	}
	rc = svq_fe_set_features(vu->fe, wanted, NULL);
	if (rc)
		return rc;
	vu->guest_features = features;
	vu->features_set = true;
	return 0;
}

static bool ring_in_region(const struct vu_queue *q, uint64_t gpa, uint64_t size)
{
	const struct svqiso_vring_addr *a = &q->cfg.ring;
	const uint64_t addrs[] = { a->desc, a->driver, a->device };
	unsigned int k;

	for (k = 0; k < SVQ_ARRAY_SIZE(addrs); k++)
		if (addrs[k] >= gpa && addrs[k] - gpa < size)
			return true;
	return false;
}

int svqiso_vu_add_region(struct svqiso_vu *vu,
			 const struct svqiso_mem_region *region)
{
	struct svqiso_region r;
	int rc;

	if (!vu || !region)
		return -EINVAL;
	if (vu->mode == SVQISO_VU_DIRECT && region->fd < 0)
		return -EINVAL;
	relay_pause(vu);
	rc = svqiso_mem_add_region(vu->mem, region);
	if (!rc && vu->mode == SVQISO_VU_DIRECT) {
		r = (struct svqiso_region){ .iova = region->gpa,
					    .size = region->size,
					    .uaddr = region->hva,
					    .fd = region->fd,
					    .fd_offset = region->fd_offset };
		rc = svq_fe_region_add(vu->fe, &r);
		if (rc)
			svqiso_mem_remove_region(vu->mem, region->gpa);
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
	unsigned int i, n;
	int rc;

	if (!vu)
		return -EINVAL;
	if (nr_running(vu))
		return -EBUSY;
	n = svqiso_mem_nr_regions(vu->mem);
	for (i = 0; i < n; i++) {
		svqiso_mem_get_region(vu->mem, i, &mr);
		if (mr.gpa == gpa)
			break;
	}
	if (i == n)
		return -ENOENT;
	rc = svqiso_mem_remove_region(vu->mem, gpa);
	if (rc)
		return rc;
	vu->guest_bytes -= mr.size;
	/* A stopped queue's ring may sit in it: its svq must not be reused
	 * (but stays until replaced, see queue_prepare_svq()). */
	for (i = 0; i < vu->nq; i++) {
		struct vu_queue *q = &vu->q[i];

		if (q->svq && ring_in_region(q, mr.gpa, mr.size))
			q->stale = true;
	}
	if (vu->mode == SVQISO_VU_DIRECT) {
		r = (struct svqiso_region){ .iova = mr.gpa, .size = mr.size,
					    .uaddr = mr.hva, .fd = mr.fd,
					    .fd_offset = mr.fd_offset };
		return svq_fe_region_del(vu->fe, &r);
	}
	return 0;
}

/* ---- queues ---- */

static uint32_t fresh_base(uint8_t layout)
{
	return layout == SVQISO_LAYOUT_PACKED ? 1u << 15 : 0;
}

static bool same_ring(const struct svqiso_vu_queue *a,
		      const struct svqiso_vu_queue *b)
{
	return a->num == b->num && a->layout == b->layout &&
	       a->ring.desc == b->ring.desc && a->ring.driver == b->ring.driver &&
	       a->ring.device == b->ring.device;
}

static uint32_t guest_ring_features(const struct svqiso_vu *vu)
{
	uint32_t f = 0;

	if (vu->guest_features & VU_BIT(SVQ_FE_F_INDIRECT_DESC))
		f |= SVQISO_RING_F_INDIRECT;
	if (vu->guest_features & VU_BIT(SVQ_FE_F_EVENT_IDX))
		f |= SVQISO_RING_F_EVENT_IDX;
	return f;
}

static uint32_t shadow_ring_features(const struct svqiso_vu *vu)
{
	uint64_t acked = svq_fe_acked_features(vu->fe);
	uint32_t f = 0;

	if (acked & VU_BIT(SVQ_FE_F_INDIRECT_DESC))
		f |= SVQISO_RING_F_INDIRECT;
	if (acked & VU_BIT(SVQ_FE_F_EVENT_IDX))
		f |= SVQISO_RING_F_EVENT_IDX;
	return f;
}

/*
 * Isolated mode: make q->svq ready for @cfg, at the guest base it gives.
 *
 * The backend may still hold the address of the previous shadow ring, and
 * QEMU 7.2's libvhost-user maps every queue it knows again whenever a region
 * is added: a ring whose region is gone makes it give up on the session. So a
 * new svq is made before the old one (and its ring region) goes, and *@old
 * receives the svq to free once the backend has the new ring's address.
 */
static int queue_prepare_svq(struct svqiso_vu *vu, unsigned int index,
			     struct vu_queue *q, const struct svqiso_vu_queue *cfg,
			     struct svqiso_svq **old)
{
	uint32_t gfeat = guest_ring_features(vu), sfeat = shadow_ring_features(vu);
	struct svqiso_svq *svq;
	int rc;

	*old = NULL;
	if (!q->pool) {
		SVQISO_OPTS(svqiso_arena_opts, ao, .size = vu->pool_size);

		rc = svqiso_pool_new_arena(vu->iso, &ao, &q->pool);
		if (rc)
			return rc;
	}
	if (q->svq && !q->stale && same_ring(&q->cfg, cfg) && q->gfeat == gfeat &&
	    q->sfeat == sfeat) {
		/* A fresh shadow ring in place; the guest ring at its base. */
		rc = svqiso_svq_reset(q->svq, cfg->base);
		if (!rc)
			rc = svqiso_svq_pause(q->svq, false);
		return rc;
	}

	/* The svq keeps the name pointer: it lives in the queue. */
	snprintf(q->name, sizeof(q->name), "vu-q%u", index);
	{
		SVQISO_OPTS(svqiso_svq_opts, so,
			    .flags = (vu->flags & SVQISO_VU_F_PRESERVE ?
				      SVQISO_SVQ_F_PRESERVE : 0) |
				     (vu->flags & SVQISO_VU_F_LAZY_KICKS ?
				      SVQISO_SVQ_F_LAZY_KICKS : 0),
			    .num = cfg->num, .guest_layout = cfg->layout,
			    .shadow_layout = vu->shadow_layout,
			    .guest_features = gfeat, .shadow_features = sfeat,
			    .copy = vu->copy, .guest_ring = cfg->ring,
			    .guest_mem = svqiso_mem_ops(), .guest_mem_ctx = vu->mem,
			    .iso = vu->iso, .pool = q->pool,
			    .log = vu->log, .log_ctx = vu->log_ctx,
			    .name = q->name, .batch_bytes = vu->batch_bytes);

		rc = svqiso_svq_new(&so, &svq);
	}
	if (rc)
		return rc;
	if (cfg->base != fresh_base(cfg->layout)) {
		rc = svqiso_svq_reset(svq, cfg->base);
		if (rc) {
			svqiso_svq_free(svq);
			return rc;
		}
	}
	*old = q->svq;
	q->svq = svq;
	q->stale = false;
	q->gfeat = gfeat;
	q->sfeat = sfeat;
	return 0;
}

static int ring_hva(struct svqiso_vu *vu, uint64_t gpa, uint64_t len,
		    uint64_t *hva)
{
	uint64_t got = len;
	void *p = svqiso_mem_lookup(vu->mem, gpa, &got);

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

static int new_eventfd(int *fd)
{
	if (*fd >= 0)
		return 0;
	*fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return *fd < 0 ? -errno : 0;
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

int svqiso_vu_queue_start(struct svqiso_vu *vu, unsigned int index,
			  const struct svqiso_vu_queue *cfg)
{
	struct svqiso_shadow_info info;
	struct svqiso_svq *old = NULL;
	struct vu_queue *q;
	bool packed_acked, ext;
	int rc, ret;

	if (!vu || !cfg || !SVQ_OPTS_OK(svqiso_vu_queue, cfg) ||
	    cfg->sz < svq_offsetofend(svqiso_vu_queue, call_fd) ||
	    index >= vu->nq || !vu->features_set || cfg->kick_fd < -1 ||
	    cfg->call_fd < -1 || cfg->layout >= SVQISO_NR_LAYOUTS)
		return -EINVAL;
	/* The external loop reads no guest kick fd; nothing else runs
	 * without one. A bad call fd is refused as the relay's loop does. */
	ext = external_loop(vu) && vu->mode == SVQISO_VU_ISOLATED;
	if ((cfg->kick_fd < 0 && !ext) ||
	    (ext && cfg->call_fd >= 0 && fcntl(cfg->call_fd, F_GETFD) < 0))
		return -EINVAL;
	packed_acked = vu->guest_features & VU_BIT(SVQ_FE_F_RING_PACKED);
	if (packed_acked != (cfg->layout == SVQISO_LAYOUT_PACKED))
		return -EINVAL;
	q = &vu->q[index];
	if (q->state != VU_Q_IDLE)
		return -EBUSY;

	relay_pause(vu);
	if (vu->mode == SVQISO_VU_DIRECT) {
		rc = direct_info(vu, cfg, &info);
		if (!rc)
			rc = svq_fe_vring_start(vu->fe, index, &info,
						cfg->kick_fd, cfg->call_fd);
		if (!rc) {
			q->cfg = *cfg;
			q->state = VU_Q_RUNNING;
			reenable_others(vu, index);
		}
		goto out;
	}

	rc = new_eventfd(&q->backend_kick);
	if (!rc)
		rc = new_eventfd(&q->backend_call);
	if (!rc)
		rc = queue_prepare_svq(vu, index, q, cfg, &old);
	if (rc)
		goto out;
	q->cfg = *cfg;
	drain_fd(q->backend_call);
	rc = svqiso_svq_get_shadow(q->svq, &info);
	if (!rc)
		rc = svq_fe_vring_start(vu->fe, index, &info, q->backend_kick,
					q->backend_call);
	svqiso_svq_free(old);	/* the backend has the new ring, or is gone */
	if (rc)
		goto out;
	q->state = VU_Q_RUNNING;
	reenable_others(vu, index);
	/* What the guest posted while the queue was stopped: no kick for it
	 * got through. A broken guest ring shows in the next kick's -EIO. */
	if (ext)
		external_seen(q, queue_poke(q, true));
out:
	ret = relay_resume(vu);
	if (!rc && ret) {
		/* Nothing relays it: better refuse than stall silently. */
		q->state = VU_Q_IDLE;
		rc = ret;
	}
	if (rc)
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: queue %u: start failed: %s", index, strerror(-rc));
	return rc;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * How long a stop waits with no completion before it takes the requests
 * left to be ones the backend leaves posted (net RX buffers) rather than
 * ones it is working on.
 */
#define VU_QUIET_MS	100

/*
 * Complete what the svq has in flight. After svqiso_svq_rewind() that is
 * what the backend took, all of it. Before GET_VRING_BASE (@settle), until
 * completions stop for VU_QUIET_MS with the backend holding nothing as far
 * as it tells (svqiso_svq_backend_taken()): some backends cannot complete a
 * request after GET_VRING_BASE (qemu-storage-daemon's libvhost-user gives
 * up on the session when it writes the call fd it closed there), while
 * requests a backend never took, such as posted net RX buffers, may never
 * complete. A backend past GET_VRING_BASE may no longer signal, so the used
 * ring is polled in short slices too. Return: 0, -ETIMEDOUT, -ECONNRESET,
 * -EIO.
 */
static int queue_drain(struct svqiso_vu *vu, struct vu_queue *q, bool settle)
{
	int64_t deadline = now_ms() + vu->timeout_ms;
	int64_t quiet_until = now_ms() + VU_QUIET_MS;
	unsigned int last = UINT_MAX, n;
	struct pollfd pfd[2] = {
		{ .fd = q->backend_call, .events = POLLIN },
		{ .fd = svq_fe_fd(vu->fe), .events = POLLRDHUP },
	};

	for (;;) {
		int64_t left;

		drain_fd(q->backend_call);
		if (queue_poke(q, false))
			return -EIO;
		n = svqiso_svq_in_flight(q->svq);
		if (!n)
			return 0;
		if (settle) {
			int taken;

			if (n < last) {
				last = n;
				quiet_until = now_ms() + VU_QUIET_MS;
			} else if (now_ms() >= quiet_until) {
				/* Quiet, and holding nothing as far as it says. */
				taken = svqiso_svq_backend_taken(q->svq);
				if (taken == 0 || taken == -ENODATA)
					return 0;
			}
		}
		/* A backend that hung up completes nothing more. */
		if (pfd[1].fd < 0 ||
		    (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR)))
			return -ECONNRESET;
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		poll(pfd, 2, left < 10 ? (int)left : 10);
	}
}

/*
 * Isolated mode, a running queue: take nothing new, collect what is done,
 * stop the backend's ring (GET_VRING_BASE) and give back to the guest ring
 * what the backend never took. Return: 0; -EAGAIN (the backend went on
 * holding requests: its ring is not stopped); -ECONNRESET, -EIO, the
 * session's errnos (-ETIMEDOUT included: the session is then dead): the
 * queue is then stopped, not stopping.
 */
static int queue_halt(struct svqiso_vu *vu, unsigned int index,
		      struct vu_queue *q)
{
	uint32_t shadow_base;
	int rc, ret, given;

	svqiso_svq_pause(q->svq, true);
	rc = queue_drain(vu, q, true);
	if (rc == -ETIMEDOUT)
		return -EAGAIN;
	if (rc == -ECONNRESET)
		return rc;
	if (svq_fe_fd(vu->fe) < 0 || session_gone(vu))
		return -ECONNRESET;
	/* A broken queue stops the backend too; its base stays where it
	 * broke. */
	ret = svq_fe_vring_enable(vu->fe, index, false);
	if (!ret)
		ret = ring_stop(vu, index, &shadow_base);
	/* No answer in time, or a broken reply: the session is dead, and
	 * what the backend had is gone with it. */
	if (ret && svq_fe_fd(vu->fe) < 0)
		return -ECONNRESET;
	if (rc)
		return rc;
	if (ret)
		return ret;
	given = svqiso_svq_rewind(q->svq, shadow_base);
	if (given < 0)
		return given;	/* a base that lies: logged by the svq */
	svq_log(vu->log, vu->log_ctx, SVQISO_LOG_DEBUG,
		"vu: queue %u: backend stopped at %#x; %d requests given back, %u held",
		index, shadow_base, given, svqiso_svq_in_flight(q->svq));
	return 0;
}

int svqiso_vu_queue_stop(struct svqiso_vu *vu, unsigned int index,
			 uint32_t *base)
{
	struct vu_queue *q;
	int rc;

	if (!vu || !base || index >= vu->nq || vu->q[index].state == VU_Q_IDLE)
		return -EINVAL;
	q = &vu->q[index];
	relay_pause(vu);
	if (vu->mode == SVQISO_VU_DIRECT) {
		rc = svq_fe_vring_enable(vu->fe, index, false);
		if (!rc)
			rc = ring_stop(vu, index, base);
		q->state = VU_Q_IDLE;
		goto out;
	}

	if (q->state == VU_Q_RUNNING) {
		rc = queue_halt(vu, index, q);
		if (rc == -EAGAIN) {
			/* The backend's ring is not stopped: running, taking
			 * nothing new; call again. */
			svq_log(vu->log, vu->log_ctx, SVQISO_LOG_WARN,
				"vu: queue %u: %u requests still in flight after %d ms",
				index, svqiso_svq_in_flight(q->svq), vu->timeout_ms);
			rc = -ETIMEDOUT;
			goto out;
		}
		if (rc) {
			if (rc == -ECONNRESET)
				svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
					"vu: queue %u: the backend hung up or stopped answering with %u requests in flight",
					index, svqiso_svq_in_flight(q->svq));
			q->state = VU_Q_IDLE;
			svqiso_svq_guest_base(q->svq, base);
			goto out;
		}
		q->state = VU_Q_STOPPING;
	}
	/* Only for what the backend holds. */
	rc = queue_drain(vu, q, false);
	if (rc == -ETIMEDOUT) {
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_WARN,
			"vu: queue %u: the backend still holds %u requests after %d ms",
			index, svqiso_svq_in_flight(q->svq), vu->timeout_ms);
		goto out;	/* stopping; call again */
	}
	if (rc == -ECONNRESET)
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_ERR,
			"vu: queue %u: the backend hung up holding %u requests",
			index, svqiso_svq_in_flight(q->svq));
	q->state = VU_Q_IDLE;
	svqiso_svq_guest_base(q->svq, base);
	if (!rc)
		svq_log(vu->log, vu->log_ctx, SVQISO_LOG_DEBUG,
			"vu: queue %u stopped: guest base %#x", index, *base);
out:
	relay_resume(vu);
	return rc;
}

/* ---- external loop ---- */

int svqiso_vu_queue_backend_fd(const struct svqiso_vu *vu, unsigned int index)
{
	if (!vu || index >= vu->nq || !external_loop(vu))
		return -EINVAL;
	if (vu->mode == SVQISO_VU_DIRECT)
		return -ENOTSUP;
	return vu->q[index].backend_call >= 0 ? vu->q[index].backend_call : -ENOENT;
}

/* The running isolated queue @index of an external-loop adapter. */
static int external_queue(struct svqiso_vu *vu, unsigned int index,
			  struct vu_queue **q)
{
	if (!vu || index >= vu->nq || !external_loop(vu))
		return -EINVAL;
	if (vu->mode == SVQISO_VU_DIRECT)
		return -ENOTSUP;
	if (vu->q[index].state != VU_Q_RUNNING)
		return -EINVAL;
	if (queue_hung_up(&vu->q[index]))
		return -EIO;
	*q = &vu->q[index];
	return 0;
}

int svqiso_vu_queue_kick(struct svqiso_vu *vu, unsigned int index)
{
	struct vu_queue *q;
	int rc = external_queue(vu, index, &q);

	if (rc)
		return rc;
	return external_seen(q, queue_run(q, svqiso_svq_process_avail));
}

int svqiso_vu_queue_process(struct svqiso_vu *vu, unsigned int index)
{
	struct vu_queue *q;
	uint64_t v;
	ssize_t n;
	int rc = external_queue(vu, index, &q);

	if (rc)
		return rc;
	/* Before collecting, so a call made meanwhile stays pending. One read
	 * resets a (non-semaphore) eventfd; EAGAIN: a spurious wake-up. */
	n = read(q->backend_call, &v, sizeof(v));
	(void)n;
	return external_seen(q, queue_run(q, svqiso_svq_process_used));
}

const char *svqiso_vu_queue_broken(const struct svqiso_vu *vu,
				   unsigned int index)
{
	const struct vu_queue *q;
	const char *why = NULL;

	if (!vu || index >= vu->nq)
		return NULL;
	q = &vu->q[index];
	/* A queue broken before the hang-up keeps its first reason. */
	if (q->svq)
		why = svqiso_svq_broken_reason(q->svq);
	if (!why && queue_hung_up(q))
		why = q->hup_reason;
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

int svqiso_vu_get_queue_stats(const struct svqiso_vu *vu, unsigned int index,
			      struct svqiso_svq_stats *st)
{
	if (!vu || !st || index >= vu->nq)
		return -EINVAL;
	if (vu->mode == SVQISO_VU_DIRECT)
		return -ENOTSUP;
	if (!vu->q[index].svq)
		return -ENOENT;
	return svqiso_svq_get_stats(vu->q[index].svq, st);
}

int svqiso_vu_get_info(const struct svqiso_vu *vu, struct svqiso_vu_info *info)
{
	struct svqiso_vu_info v = { .sz = sizeof(v) };
	struct svqiso_region r;
	struct svqiso_mem_region mr;
	unsigned int i, n;
	size_t sz;

	if (!vu || !info || info->sz < sizeof(size_t))
		return -EINVAL;
	v.backend_features = svq_fe_offered_features(vu->fe);
	v.acked_features = svq_fe_acked_features(vu->fe);
	v.protocol_features = svq_fe_protocol_features(vu->fe);
	v.guest_bytes = vu->guest_bytes;
	v.queues = vu->nq;
	v.mem_slots = svq_fe_mem_slots(vu->fe);
	v.guest_regions = svqiso_mem_nr_regions(vu->mem);
	v.backend_regions = svq_fe_nr_regions(vu->fe);
	v.running = nr_running(vu);
	v.mode = vu->mode;
	if (vu->mode == SVQISO_VU_DIRECT) {
		n = svqiso_mem_nr_regions(vu->mem);
		for (i = 0; i < n; i++)
			if (!svqiso_mem_get_region(vu->mem, i, &mr))
				v.backend_bytes += mr.size;
	} else {
		n = svqiso_iso_nr_regions(vu->iso);
		for (i = 0; i < n; i++)
			if (!svqiso_iso_get_region(vu->iso, i, &r))
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
	if (!vu)
		return -EINVAL;
	return svq_fe_get_config(vu->fe, offset, buf, len);
}

int svqiso_vu_set_config(struct svqiso_vu *vu, uint32_t offset,
			 const void *buf, uint32_t len)
{
	if (!vu)
		return -EINVAL;
	return svq_fe_set_config(vu->fe, offset, buf, len, 0);
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
	for (i = 0; i < vu->nq; i++) {
		/* The guest sets its rings up afresh after a reset; the old
		 * svq stays until replaced (see queue_prepare_svq()). */
		vu->q[i].stale = true;
	}
	vu->features_set = false;
	vu->guest_features = 0;
	return svq_fe_reset(vu->fe);
}
