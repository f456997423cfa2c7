/* SPDX-License-Identifier: MIT */
/*
 * svqiso-proxy's core: the VMM's vhost-user session served, the backend's
 * driven through the engine. See proxy.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>

#include <svqiso/vhost.h>

#include "frontend.h"
#include "spin.h"
#include "vhost_user.h"
#include "proxy.h"

#define MAX_QUEUES	256	/* the wire's 8-bit queue index */
#define MAX_WATCHES	8

/* Requests the proxy knows by number only (not sent by svqiso itself). */
#define VU_SEND_RARP		19
#define VU_NET_SET_MTU		20
#define VU_GET_STATUS		40

#define F_PROTOCOL	(1ull << SVQ_VU_F_PROTOCOL_FEATURES)
#define F_LOG_ALL	(1ull << 26)	/* VHOST_F_LOG_ALL */
#define PF(bit)		(1ull << SVQ_VU_PROTOCOL_F_##bit)
#define VRING_F_LOG	1u		/* SET_VRING_ADDR: log used ring writes */

/*
 * Protocol features the proxy serves itself, whatever the backend does.
 * LOG_SHMFD: the backend writes no guest RAM, so the proxy logs svqiso's
 * own writes into the VMM's log; the backend never gets one.
 */
#define PROTO_OWN	(PF(REPLY_ACK) | PF(CONFIGURE_MEM_SLOTS) | PF(LOG_SHMFD))
/* Those it passes on when the backend agreed to them. */
#define PROTO_PASSED	(PF(MQ) | PF(CONFIG) | PF(NET_MTU) | PF(RESET_DEVICE))

enum ev_kind {
	EV_LISTEN = 1,
	EV_VMM,
	EV_BACKEND,	/* the backend session's socket: hang-ups only */
	EV_KICK,	/* a guest kick eventfd */
	EV_CALL,	/* a shadow ring's call eventfd (the backend's) */
	EV_TIMER,	/* backend reconnect */
	EV_WATCH,
};

#define EV(kind, idx)	((uint64_t)(kind) | ((uint64_t)(idx) << 8))

/* One guest RAM region the VMM gave (SET_MEM_TABLE, ADD_MEM_REG). */
struct vmm_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;		/* in the VMM's address space */
	uint64_t mmap_offset;
	void *map;		/* the proxy's mapping of the fd */
	size_t map_len;
	uint8_t *hva;		/* where gpa is in it */
};

struct pq {
	/* What the VMM set. */
	uint32_t num;
	bool num_set;
	struct svq_vu_vring_addr addr;
	bool addr_set;
	uint32_t base;
	int kick_fd;		/* the proxy's copy of the VMM's, or -1 */
	int call_fd;
	int err_fd;
	bool enabled;		/* SET_VRING_ENABLE, or no protocol features */
	/* What the proxy made of it. */
	bool started;		/* running in the engine (or kept while the
				 * backend is gone): kick seen, no GET_VRING_BASE */
	struct svqiso_vhost_vring vring;	/* as started; base: where to
						 * start again */
	int shadow_call;	/* the engine's, -1 before the first start */
	bool call_watched;
	bool kick_watched;
	bool broken_told;
};

struct watch {
	int fd;
	proxy_watch_fn fn;
	void *ctx;
};

struct proxy {
	/* Options. */
	char *backend;
	char name[64];
	int timeout_ms;
	int reconnect_ms;
	int connect_ms;
	unsigned int max_queues_opt;
	uint8_t shadow_layout;
	uint8_t copy;
	uint32_t vhost_flags;
	uint64_t pool_size;
	bool no_dirty_log;
	svqiso_log_fn log;
	void *log_ctx;

	struct svq_spin spin;
	int ep;
	int timer;
	bool stop;
	struct watch watches[MAX_WATCHES];
	unsigned int nwatches;

	/* The session; vmm < 0: none. */
	int vmm;
	int end_rc;		/* why the session ended (proxy_serve()) */
	bool ended;
	uint64_t vmm_features;	/* SET_FEATURES, bit 30 included */
	bool features_set;
	uint64_t vmm_protocol;	/* SET_PROTOCOL_FEATURES */
	uint64_t guest_offer;	/* GET_FEATURES' answer */
	uint64_t proto_offer;	/* GET_PROTOCOL_FEATURES' answer */
	uint64_t be_offered;	/* the backend's GET_FEATURES, first session */
	uint64_t be_acked;	/* what SET_FEATURES gave the backend */
	uint64_t be_protocol;
	unsigned int be_queue_num;
	unsigned int nq;	/* queue indexes taken */
	struct svqiso_vhost *vh;
	struct svq_fe *fe;	/* NULL while the backend is gone */
	int fe_watch;		/* a duplicate of its socket, in the epoll set */
	bool backend_lost;	/* waiting for it to come back */
	unsigned int reconnect_tries;
	struct vmm_region regions[PROXY_MEM_SLOTS];
	unsigned int nregions;
	void *log_map;		/* the VMM's dirty log (SET_LOG_BASE); NULL */
	size_t log_len;
	struct pq q[MAX_QUEUES];

	/* Counters, for stats. */
	uint64_t sessions;
	uint64_t bad_messages;
	uint64_t reconnects;
	uint64_t reposted;
	uint64_t spins;		/* spins begun after a wake-up */
};

static const char *req_name(uint32_t r)
{
	static const char *const names[] = {
		[1] = "GET_FEATURES", [2] = "SET_FEATURES", [3] = "SET_OWNER",
		[4] = "RESET_OWNER", [5] = "SET_MEM_TABLE", [6] = "SET_LOG_BASE",
		[7] = "SET_LOG_FD", [8] = "SET_VRING_NUM", [9] = "SET_VRING_ADDR",
		[10] = "SET_VRING_BASE", [11] = "GET_VRING_BASE",
		[12] = "SET_VRING_KICK", [13] = "SET_VRING_CALL",
		[14] = "SET_VRING_ERR", [15] = "GET_PROTOCOL_FEATURES",
		[16] = "SET_PROTOCOL_FEATURES", [17] = "GET_QUEUE_NUM",
		[18] = "SET_VRING_ENABLE", [19] = "SEND_RARP",
		[20] = "NET_SET_MTU", [21] = "SET_BACKEND_REQ_FD",
		[22] = "IOTLB_MSG", [23] = "SET_VRING_ENDIAN",
		[24] = "GET_CONFIG", [25] = "SET_CONFIG",
		[26] = "CREATE_CRYPTO_SESSION", [27] = "CLOSE_CRYPTO_SESSION",
		[28] = "POSTCOPY_ADVISE", [29] = "POSTCOPY_LISTEN",
		[30] = "POSTCOPY_END", [31] = "GET_INFLIGHT_FD",
		[32] = "SET_INFLIGHT_FD", [33] = "GPU_SET_SOCKET",
		[34] = "RESET_DEVICE", [35] = "VRING_KICK",
		[36] = "GET_MAX_MEM_SLOTS", [37] = "ADD_MEM_REG",
		[38] = "REM_MEM_REG", [39] = "SET_STATUS", [40] = "GET_STATUS",
	};

	if (r < SVQ_ARRAY_SIZE(names) && names[r])
		return names[r];
	return "unknown request";
}

static void plog(struct proxy *p, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void plog(struct proxy *p, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	if (!p->log)
		return;
	n = snprintf(buf, sizeof(buf), "%s: ", p->name);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	p->log(p->log_ctx, level, buf);
}

/* A bad message from the VMM: say what and why; the session closes. */
static int bad(struct proxy *p, const struct svq_vu_msg *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(struct proxy *p, const struct svq_vu_msg *m, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	p->bad_messages++;
	plog(p, SVQISO_LOG_ERR, "vmm: %s (%u): %s: closing the session",
	     req_name(m->hdr.request), m->hdr.request, why);
	return -EPROTO;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int ep_add(struct proxy *p, int fd, uint64_t data, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	return 0;
}

static void ep_del(struct proxy *p, int fd)
{
	if (fd >= 0)
		epoll_ctl(p->ep, EPOLL_CTL_DEL, fd, NULL);
}

static void engine_log(void *ctx, int level, const char *msg)
{
	struct proxy *p = ctx;

	if (p->log)
		p->log(p->log_ctx, level, msg);
}

static void fe_log(void *ctx, int level, const char *msg)
{
	struct proxy *p = ctx;

	plog(p, level, "backend: %s", msg);
}

/* ---- the backend ---- */

static int region_add(void *ctx, const struct svqiso_region *r)
{
	struct proxy *p = ctx;
	int rc;

	/* Gone, or going now: it gets every region when it comes back. */
	if (!p->fe)
		return 0;
	rc = svq_fe_region_add(p->fe, r);
	return rc && svq_fe_fd(p->fe) < 0 ? 0 : rc;
}

static int region_del(void *ctx, const struct svqiso_region *r)
{
	struct proxy *p = ctx;

	return p->fe ? svq_fe_region_del(p->fe, r) : 0;
}

static bool backend_up(const struct proxy *p)
{
	return p->fe && svq_fe_fd(p->fe) >= 0;
}

static void timer_arm(struct proxy *p, bool on)
{
	struct itimerspec its = { 0 };

	if (on) {
		its.it_value.tv_sec = p->reconnect_ms / 1000;
		its.it_value.tv_nsec = (long)(p->reconnect_ms % 1000) * 1000000;
		its.it_interval = its.it_value;
	}
	timerfd_settime(p->timer, 0, &its, NULL);
}

static void unwatch_queue(struct proxy *p, unsigned int i)
{
	struct pq *q = &p->q[i];

	if (q->kick_watched)
		ep_del(p, q->kick_fd);
	if (q->call_watched)
		ep_del(p, q->shadow_call);
	q->kick_watched = q->call_watched = false;
}

static void watch_queue(struct proxy *p, unsigned int i)
{
	struct pq *q = &p->q[i];

	if (!q->kick_watched && q->kick_fd >= 0 &&
	    !ep_add(p, q->kick_fd, EV(EV_KICK, i), EPOLLIN))
		q->kick_watched = true;
	if (!q->call_watched && q->shadow_call >= 0 &&
	    !ep_add(p, q->shadow_call, EV(EV_CALL, i), EPOLLIN))
		q->call_watched = true;
}

/*
 * The backend is gone (hung up, or stopped answering): every queue keeps
 * what the backend held, with its bounce copies, for the backend that comes
 * back; the guest sees nothing but a pause.
 */
static void backend_gone(struct proxy *p, const char *why)
{
	unsigned int i, kept = 0;
	uint32_t base;
	int n;

	if (!p->fe)
		return;
	for (i = 0; i < p->nq; i++) {
		struct pq *q = &p->q[i];

		if (!q->started)
			continue;
		n = svqiso_vhost_queue_backend_lost(p->vh, i, &base);
		if (n >= 0) {
			q->vring.base = base;
			kept += (unsigned int)n;
		}
	}
	ep_del(p, p->fe_watch);
	close_fd(&p->fe_watch);
	svq_fe_free(p->fe);
	p->fe = NULL;
	p->backend_lost = true;
	p->reconnect_tries = 0;
	plog(p, SVQISO_LOG_WARN,
	     "backend: %s with %u requests in flight: kept, reconnecting every %d ms",
	     why, kept, p->reconnect_ms);
	timer_arm(p, true);
}

/* After a call on the session: a dead one means the backend is gone. */
static void backend_check(struct proxy *p)
{
	if (p->fe && svq_fe_fd(p->fe) < 0)
		backend_gone(p, "the session failed");
}

static int backend_open(struct proxy *p, struct svq_fe **out)
{
	SVQISO_OPTS(svq_fe_opts, fo,
		    .timeout_ms = p->timeout_ms,
		    .log = fe_log, .log_ctx = p,
		    .max_queues = MAX_QUEUES);

	return svq_fe_connect(p->backend, &fo, out);
}

/* Hand queue @i's shadow ring to the backend (after the engine started it). */
static int backend_ring(struct proxy *p, unsigned int i,
			const struct svqiso_vhost_shadow *sh)
{
	struct pq *q = &p->q[i];
	int rc;

	rc = svq_fe_vring_start(p->fe, i, &sh->ring, sh->kick_fd, sh->call_fd);
	if (!rc && !q->enabled)
		rc = svq_fe_vring_enable(p->fe, i, false);
	return rc;
}

/* Publish what a start (or a repost) put on the shadow ring, and take what
 * the guest posted meanwhile. */
static void queue_poke(struct proxy *p, unsigned int i);

/*
 * The backend came back: the same features, every isolated region, every
 * queue at the base it was kept at, the requests the old backend held
 * posted again first.
 */
static int backend_restore(struct proxy *p)
{
	struct svqiso_vhost_shadow sh = { .sz = sizeof(sh) };
	struct svqiso_region r;
	uint64_t agreed, missing, reposted = 0;
	unsigned int i, n;
	int rc;

	rc = backend_open(p, &p->fe);
	if (rc)
		return rc;
	missing = p->be_acked & ~F_PROTOCOL & ~svq_fe_offered_features(p->fe);
	if (missing) {
		plog(p, SVQISO_LOG_ERR,
		     "backend: came back without features %#" PRIx64 " it had",
		     missing);
		rc = -EPROTO;
		goto fail;
	}
	if (p->features_set) {
		rc = svq_fe_set_features(p->fe, p->be_acked, &agreed);
		if (rc)
			goto fail;
		if (agreed != p->be_acked) {
			plog(p, SVQISO_LOG_ERR,
			     "backend: came back agreeing to features %#" PRIx64
			     ", not %#" PRIx64, agreed, p->be_acked);
			rc = -EPROTO;
			goto fail;
		}
	}
	n = svqiso_vhost_nr_regions(p->vh);
	for (i = 0; i < n; i++) {
		rc = svqiso_vhost_get_region(p->vh, i, &r);
		if (!rc)
			rc = svq_fe_region_add(p->fe, &r);
		if (rc)
			goto fail;
	}
	for (i = 0; i < p->nq; i++) {
		struct pq *q = &p->q[i];

		if (!q->started)
			continue;
		rc = svqiso_vhost_queue_start(p->vh, i, &q->vring, &sh);
		if (rc) {
			plog(p, SVQISO_LOG_ERR, "backend: queue %u: restart failed: %s",
			     i, strerror(-rc));
			goto fail;
		}
		rc = backend_ring(p, i, &sh);
		if (rc)
			goto fail;
		reposted += sh.reposted;	/* the engine logs them */
	}
	p->fe_watch = fcntl(svq_fe_fd(p->fe), F_DUPFD_CLOEXEC, 0);
	if (p->fe_watch < 0 ||
	    ep_add(p, p->fe_watch, EV(EV_BACKEND, 0), EPOLLRDHUP)) {
		rc = -errno;
		close_fd(&p->fe_watch);
		goto fail;
	}
	p->backend_lost = false;
	p->reconnects++;
	p->reposted += reposted;
	timer_arm(p, false);
	plog(p, SVQISO_LOG_INFO, "backend: reconnected");
	for (i = 0; i < p->nq; i++)
		if (p->q[i].started)
			queue_poke(p, i);
	return 0;
fail:
	svq_fe_free(p->fe);
	p->fe = NULL;
	/* Queues that did start again are kept again. */
	for (i = 0; i < p->nq; i++) {
		uint32_t base;

		if (p->q[i].started &&
		    svqiso_vhost_queue_backend_lost(p->vh, i, &base) >= 0)
			p->q[i].vring.base = base;
	}
	return rc < 0 ? rc : -EIO;
}

static void end_session(struct proxy *p, int rc);

static void backend_retry(struct proxy *p)
{
	int rc;

	if (!p->backend_lost)
		return;
	rc = backend_restore(p);
	if (rc == -EPROTO)
		end_session(p, rc);
	else if (rc && p->reconnect_tries++ % 50 == 0)
		plog(p, SVQISO_LOG_INFO, "backend: not back yet: %s",
		     strerror(-rc));
}

/*
 * A message that needs the backend while it is gone: wait for it, up to the
 * timeout. Return: 0 (it is up), -ENOTCONN.
 */
static int need_backend(struct proxy *p)
{
	struct timespec ts = { 0, 20 * 1000000 };
	int waited = 0;

	if (backend_up(p))
		return 0;
	while (waited < p->timeout_ms && !p->ended && p->backend_lost) {
		if (!backend_restore(p))
			return 0;
		nanosleep(&ts, NULL);
		waited += 20;
	}
	return -ENOTCONN;
}

/* ---- queues ---- */

static void queue_broken(struct proxy *p, unsigned int i)
{
	struct pq *q = &p->q[i];
	uint64_t one = 1;

	unwatch_queue(p, i);
	if (q->broken_told)
		return;
	q->broken_told = true;
	plog(p, SVQISO_LOG_ERR, "queue %u: broken: %s", i,
	     svqiso_vhost_queue_broken(p->vh, i) ?: "(no reason)");
	/* The VMM's error notifier, if it gave one. */
	if (q->err_fd >= 0 && write(q->err_fd, &one, sizeof(one)) < 0)
		plog(p, SVQISO_LOG_WARN, "queue %u: error notifier: %s", i,
		     strerror(errno));
}

static void queue_poke(struct proxy *p, unsigned int i)
{
	if (!svqiso_vhost_queue_running(p->vh, i))
		return;
	if (svqiso_vhost_queue_process(p->vh, i) == -EIO ||
	    svqiso_vhost_queue_kick(p->vh, i) == -EIO)
		queue_broken(p, i);
}

static void on_kick(struct proxy *p, unsigned int i)
{
	struct pq *q = &p->q[i];
	struct iovec iov;
	uint64_t v;

	/* The kick eventfd's file is the VMM's too, O_NONBLOCK or not as it
	 * likes: a read that must not wait says so itself. */
	iov.iov_base = &v;
	iov.iov_len = sizeof(v);
	if (preadv2(q->kick_fd, &iov, 1, -1, RWF_NOWAIT) < 0) {
		if (errno == EAGAIN)
			return;
		/* A kernel whose eventfds take no RWF_NOWAIT. */
		if (errno == EOPNOTSUPP &&
		    read(q->kick_fd, &v, sizeof(v)) < 0 && errno == EAGAIN)
			return;
	}
	if (!svqiso_vhost_queue_running(p->vh, i))
		return;		/* the backend is gone: taken when it is back */
	if (svqiso_vhost_queue_kick(p->vh, i) == -EIO)
		queue_broken(p, i);
	/* A one-off region's ADD_MEM_REG may have found the backend gone,
	 * its socket closed before the loop heard of it. */
	backend_check(p);
}

static void on_call(struct proxy *p, unsigned int i)
{
	struct pq *q = &p->q[i];
	uint64_t v;
	int rc;

	rc = svqiso_vhost_queue_process(p->vh, i);
	if (rc == -EIO) {
		queue_broken(p, i);
	} else if (rc < 0) {
		/* Not running (its backend is gone): clear it here. */
		if (read(q->shadow_call, &v, sizeof(v)) < 0 && errno != EAGAIN)
			plog(p, SVQISO_LOG_WARN, "queue %u: call fd: %s", i,
			     strerror(errno));
	}
	backend_check(p);	/* as after a kick */
}

/* The VMM's address of a ring area, in guest physical terms. */
static int vmm_gpa(const struct proxy *p, uint64_t uaddr, uint64_t *gpa)
{
	unsigned int i;

	for (i = 0; i < p->nregions; i++) {
		const struct vmm_region *r = &p->regions[i];

		if (uaddr >= r->uaddr && uaddr - r->uaddr < r->size) {
			*gpa = r->gpa + (uaddr - r->uaddr);
			return 0;
		}
	}
	return -EFAULT;
}

static bool guest_packed(const struct proxy *p)
{
	return p->vmm_features & (1ull << 34);	/* VIRTIO_F_RING_PACKED */
}

/* SET_VRING_KICK with everything in place: the queue starts. */
static int queue_start(struct proxy *p, const struct svq_vu_msg *m,
		       unsigned int i)
{
	struct svqiso_vhost_shadow sh = { .sz = sizeof(sh) };
	struct pq *q = &p->q[i];
	struct svqiso_vhost_vring vr = { .sz = sizeof(vr) };
	int rc;

	if (!p->features_set || !q->num_set || !q->addr_set)
		return bad(p, m, "queue %u: started before %s", i,
			   !p->features_set ? "SET_FEATURES" :
			   !q->num_set ? "SET_VRING_NUM" : "SET_VRING_ADDR");
	vr.num = (uint16_t)q->num;
	vr.layout = guest_packed(p) ? SVQISO_LAYOUT_PACKED : SVQISO_LAYOUT_SPLIT;
	vr.base = q->base;
	/* What SET_VRING_NUM and _BASE could not hold to a layout not yet
	 * known: a split ring's size is a power of two, its base the next
	 * avail index (16 bits). */
	if (!guest_packed(p) && (q->num & (q->num - 1)))
		return bad(p, m, "queue %u: ring size %u of a split ring", i, q->num);
	if (!guest_packed(p) && q->base > UINT16_MAX)
		return bad(p, m, "queue %u: base %#x of a split ring", i, q->base);
	if (vmm_gpa(p, q->addr.desc, &vr.ring.desc) ||
	    vmm_gpa(p, q->addr.avail, &vr.ring.driver) ||
	    vmm_gpa(p, q->addr.used, &vr.ring.device))
		return bad(p, m, "queue %u: ring at desc %#" PRIx64 " avail %#"
			   PRIx64 " used %#" PRIx64 " is not in guest RAM", i,
			   q->addr.desc, q->addr.avail, q->addr.used);
	rc = need_backend(p);
	if (rc) {
		plog(p, SVQISO_LOG_ERR, "queue %u: cannot start: the backend is gone", i);
		return rc;
	}
	rc = svqiso_vhost_queue_start(p->vh, i, &vr, &sh);
	if (rc == -EFAULT)
		return bad(p, m, "queue %u: ring of %u entries at guest %#" PRIx64
			   " does not fit in guest RAM", i, q->num, vr.ring.desc);
	if (rc == -EINVAL)
		return bad(p, m, "queue %u: ring of %u entries at guest %#" PRIx64
			   ", base %#x: its areas are misaligned, or the base is"
			   " past the ring", i, q->num, vr.ring.desc, vr.base);
	if (rc) {
		plog(p, SVQISO_LOG_ERR, "queue %u: start failed: %s", i, strerror(-rc));
		return rc;
	}
	q->vring = vr;
	q->started = true;
	q->broken_told = false;
	q->shadow_call = sh.call_fd;
	rc = backend_ring(p, i, &sh);
	if (rc && svq_fe_fd(p->fe) < 0) {
		/* Kept; started again when the backend is back. */
		watch_queue(p, i);
		backend_gone(p, "the session failed");
		return 0;
	}
	if (rc) {
		uint32_t base;

		plog(p, SVQISO_LOG_ERR, "queue %u: the backend refused the ring: %s",
		     i, strerror(-rc));
		svqiso_vhost_queue_backend_lost(p->vh, i, &base);
		q->started = false;
		return rc;
	}
	watch_queue(p, i);
	queue_poke(p, i);
	return 0;
}

/*
 * Stop queue @i for GET_VRING_BASE: complete what the backend finishes,
 * stop its ring, give back what it never took; @base is the guest ring's.
 */
static void queue_stop(struct proxy *p, unsigned int i, uint32_t *base)
{
	struct pq *q = &p->q[i];
	uint32_t sbase = 0;
	int rc;

	if (!q->started) {
		*base = q->base;
		return;
	}
	unwatch_queue(p, i);
	q->started = false;
	if (!svqiso_vhost_queue_running(p->vh, i)) {
		/* Its backend is gone: what it held stays kept, for a start
		 * of this ring at this base. */
		svqiso_vhost_queue_backend_lost(p->vh, i, base);
		goto out;
	}
	rc = svqiso_vhost_queue_drain(p->vh, i, p->timeout_ms, p->fe_watch);
	if (rc == -ECONNRESET)
		goto lost;
	if (rc == -ETIMEDOUT)
		plog(p, SVQISO_LOG_WARN,
		     "queue %u: %u requests still in flight after %d ms: stopping the ring",
		     i, svqiso_vhost_queue_in_flight(p->vh, i), p->timeout_ms);
	rc = svq_fe_vring_enable(p->fe, i, false);
	if (!rc)
		rc = svq_fe_vring_stop(p->fe, i, &sbase);
	if (rc && svq_fe_fd(p->fe) < 0)
		goto lost;
	rc = svqiso_vhost_queue_stop(p->vh, i, sbase, p->timeout_ms,
				     p->fe_watch, base);
	if (rc == -ETIMEDOUT) {
		plog(p, SVQISO_LOG_WARN,
		     "queue %u: the backend still holds %u requests: kept for the next start",
		     i, svqiso_vhost_queue_in_flight(p->vh, i));
		svqiso_vhost_queue_backend_lost(p->vh, i, base);
	} else if (rc == -ECONNRESET) {
		goto lost;
	} else if (rc == -EIO) {
		plog(p, SVQISO_LOG_ERR, "queue %u: stopped broken: %s", i,
		     svqiso_vhost_queue_broken(p->vh, i) ?: "bad base");
	}
	goto out;
lost:
	svqiso_vhost_queue_backend_lost(p->vh, i, base);
	backend_gone(p, "hung up while a queue stopped");
out:
	q->base = *base;
	close_fd(&q->kick_fd);
}

/* Device reset: every queue dropped, features forgotten. */
static void device_reset(struct proxy *p)
{
	unsigned int i;
	uint32_t base;

	for (i = 0; i < p->nq; i++) {
		if (p->q[i].started)
			queue_stop(p, i, &base);
		svqiso_vhost_queue_reset(p->vh, i);
		p->q[i].num_set = p->q[i].addr_set = false;
		p->q[i].base = 0;
		p->q[i].enabled = true;
	}
	p->features_set = false;
	if (backend_up(p) && svq_fe_reset(p->fe))
		backend_check(p);
}

/* ---- guest RAM ---- */

static void region_unmap(struct vmm_region *r)
{
	if (r->map)
		munmap(r->map, r->map_len);
	r->map = NULL;
}

/* Check and map one region the VMM gave with @fd (closed here). */
static int region_map(struct proxy *p, const struct svq_vu_msg *m,
		      const struct svq_vu_mem_region *w, int fd,
		      struct vmm_region *r)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t aligned;
	struct stat st;
	void *map;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	if (!w->memory_size)
		rc = bad(p, m, "region at guest %#" PRIx64 ": size 0",
			 w->guest_phys_addr);
	else if (w->guest_phys_addr + w->memory_size - 1 < w->guest_phys_addr ||
		 w->userspace_addr + w->memory_size - 1 < w->userspace_addr ||
		 w->mmap_offset + w->memory_size - 1 < w->mmap_offset)
		rc = bad(p, m, "region at guest %#" PRIx64 " size %#" PRIx64
			 ": wraps around the address space", w->guest_phys_addr,
			 w->memory_size);
	else if (fstat(fd, &st))
		rc = bad(p, m, "region at guest %#" PRIx64 ": fd: %s",
			 w->guest_phys_addr, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = bad(p, m, "region at guest %#" PRIx64
			 ": fd is not a memfd or a file", w->guest_phys_addr);
	else if (w->mmap_offset > (uint64_t)st.st_size ||
		 w->memory_size > (uint64_t)st.st_size - w->mmap_offset)
		rc = bad(p, m, "region at guest %#" PRIx64 ": offset %#" PRIx64
			 " + size %#" PRIx64 " past the end of its fd (%#" PRIx64 ")",
			 w->guest_phys_addr, w->mmap_offset, w->memory_size,
			 (uint64_t)st.st_size);
	if (rc) {
		close(fd);
		return rc;
	}
	aligned = w->mmap_offset & ~(uint64_t)(page - 1);
	r->map_len = (size_t)(w->memory_size + (w->mmap_offset - aligned));
	map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_NORESERVE, fd, (off_t)aligned);
	rc = errno;
	close(fd);
	if (map == MAP_FAILED)
		return bad(p, m, "region at guest %#" PRIx64 ": mmap: %s",
			   w->guest_phys_addr, strerror(rc));
	r->map = map;
	r->hva = (uint8_t *)map + (w->mmap_offset - aligned);
	r->gpa = w->guest_phys_addr;
	r->size = w->memory_size;
	r->uaddr = w->userspace_addr;
	r->mmap_offset = w->mmap_offset;
	return 0;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a <= b + (blen - 1) && b <= a + (alen - 1);
}

/* @n regions in @t, each checked, against each other: the table to use. */
static int table_check(struct proxy *p, const struct svq_vu_msg *m,
		       const struct vmm_region *t, unsigned int n)
{
	unsigned int i, j;

	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++) {
			if (overlap(t[i].gpa, t[i].size, t[j].gpa, t[j].size))
				return bad(p, m, "regions at guest %#" PRIx64
					   " and %#" PRIx64 " overlap",
					   t[i].gpa, t[j].gpa);
			if (overlap(t[i].uaddr, t[i].size, t[j].uaddr, t[j].size))
				return bad(p, m, "regions at VMM address %#" PRIx64
					   " and %#" PRIx64 " overlap",
					   t[i].uaddr, t[j].uaddr);
		}
	return 0;
}

/* Make @t the guest RAM table: the engine's too (its rings must stay). */
static int table_set(struct proxy *p, const struct svq_vu_msg *m,
		     struct vmm_region *t, unsigned int n)
{
	struct svqiso_mem_region mr[PROXY_MEM_SLOTS];
	unsigned int i;
	int rc;

	rc = table_check(p, m, t, n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++)
		mr[i] = (struct svqiso_mem_region){
			.gpa = t[i].gpa, .size = t[i].size, .hva = t[i].hva,
			.fd = -1,
		};
	rc = svqiso_vhost_set_guest_mem(p->vh, mr, n);
	if (rc)
		return bad(p, m, "guest RAM table refused: %s", strerror(-rc));
	for (i = 0; i < p->nq; i++)
		if (p->q[i].started && svqiso_vhost_queue_broken(p->vh, i))
			queue_broken(p, i);
	return 0;
}

static int set_mem_table(struct proxy *p, struct svq_vu_msg *m)
{
	struct vmm_region t[SVQ_VU_MEM_REGIONS];
	struct vmm_region old[PROXY_MEM_SLOTS];
	unsigned int n = m->payload.mem.nregions, i, nold;
	int rc = 0;

	if (m->hdr.size < 8 || n > SVQ_VU_MEM_REGIONS ||
	    m->hdr.size != 8 + n * sizeof(struct svq_vu_mem_region))
		return bad(p, m, "%u regions in %u bytes", n, m->hdr.size);
	if (m->nfds != n || m->nfds_dropped)
		return bad(p, m, "%u regions with %u fds", n,
			   m->nfds + m->nfds_dropped);
	for (i = 0; i < n; i++) {
		rc = region_map(p, m, &m->payload.mem.regions[i], m->fds[i], &t[i]);
		m->fds[i] = -1;
		if (rc)
			break;
	}
	for (unsigned int j = i + 1; j < n; j++)
		close_fd(&m->fds[j]);
	if (!rc)
		rc = table_set(p, m, t, n);
	if (rc) {
		while (i--)
			region_unmap(&t[i]);
		return rc;
	}
	nold = p->nregions;
	memcpy(old, p->regions, sizeof(old[0]) * nold);
	memcpy(p->regions, t, sizeof(t[0]) * n);
	p->nregions = n;
	for (i = 0; i < nold; i++)
		region_unmap(&old[i]);
	return 0;
}

static int add_mem_reg(struct proxy *p, struct svq_vu_msg *m)
{
	struct vmm_region t[PROXY_MEM_SLOTS];
	int rc;

	if (m->hdr.size != sizeof(struct svq_vu_mem_reg))
		return bad(p, m, "payload of %u bytes, not %zu", m->hdr.size,
			   sizeof(struct svq_vu_mem_reg));
	if (m->nfds != 1 || m->nfds_dropped)
		return bad(p, m, "%u fds, not 1", m->nfds + m->nfds_dropped);
	if (p->nregions == PROXY_MEM_SLOTS)
		return bad(p, m, "more than %u regions", PROXY_MEM_SLOTS);
	memcpy(t, p->regions, sizeof(t[0]) * p->nregions);
	rc = region_map(p, m, &m->payload.mem_reg.region, m->fds[0],
			&t[p->nregions]);
	m->fds[0] = -1;
	m->nfds = 0;
	if (rc)
		return rc;
	rc = table_set(p, m, t, p->nregions + 1);
	if (rc) {
		region_unmap(&t[p->nregions]);
		return rc;
	}
	p->regions[p->nregions] = t[p->nregions];
	p->nregions++;
	return 0;
}

static int rem_mem_reg(struct proxy *p, struct svq_vu_msg *m)
{
	const struct svq_vu_mem_region *w = &m->payload.mem_reg.region;
	struct vmm_region t[PROXY_MEM_SLOTS], gone;
	unsigned int i, k = 0, found = p->nregions;
	int rc;

	if (m->hdr.size != sizeof(struct svq_vu_mem_reg))
		return bad(p, m, "payload of %u bytes, not %zu", m->hdr.size,
			   sizeof(struct svq_vu_mem_reg));
	/* QEMU sends the region's fd along; it is not needed. */
	if (m->nfds > 1 || m->nfds_dropped)
		return bad(p, m, "%u fds", m->nfds + m->nfds_dropped);
	for (i = 0; i < p->nregions; i++) {
		if (found == p->nregions && p->regions[i].gpa == w->guest_phys_addr &&
		    p->regions[i].size == w->memory_size) {
			found = i;
			continue;
		}
		t[k++] = p->regions[i];
	}
	if (found == p->nregions)
		return bad(p, m, "no region at guest %#" PRIx64 " size %#" PRIx64,
			   w->guest_phys_addr, w->memory_size);
	gone = p->regions[found];
	rc = table_set(p, m, t, k);
	if (rc)
		return rc;
	memcpy(p->regions, t, sizeof(t[0]) * k);
	p->nregions = k;
	region_unmap(&gone);
	return 0;
}

/* ---- the VMM's messages ---- */

static int reply(struct proxy *p, const struct svq_vu_msg *req,
		 struct svq_vu_msg *r)
{
	int rc;

	r->hdr.request = req->hdr.request;
	r->hdr.flags = SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY;
	rc = svq_vu_send(p->vmm, r);
	/* Part of it may be out: the session cannot go on. */
	return rc ? bad(p, req, "reply not sent: %s", strerror(-rc)) : 0;
}

static int reply_u64(struct proxy *p, const struct svq_vu_msg *req, uint64_t v)
{
	struct svq_vu_msg r;

	svq_vu_msg_init(&r, 0, sizeof(uint64_t));
	r.payload.u64 = v;
	return reply(p, req, &r);
}

static int expect(struct proxy *p, const struct svq_vu_msg *m, uint32_t size,
		  unsigned int fds)
{
	if (m->hdr.size != size)
		return bad(p, m, "payload of %u bytes, not %u", m->hdr.size, size);
	if (m->nfds + m->nfds_dropped != fds)
		return bad(p, m, "%u fds, not %u", m->nfds + m->nfds_dropped, fds);
	return 0;
}

static int queue_index(struct proxy *p, const struct svq_vu_msg *m,
		       uint32_t idx, unsigned int *out)
{
	if (idx >= p->nq)
		return bad(p, m, "queue %u: the device has %u", idx, p->nq);
	*out = idx;
	return 0;
}

/* A vring message with no fd: @size bytes, its queue index first. */
_Static_assert(offsetof(struct svq_vu_vring_addr, index) == 0 &&
	       offsetof(struct svq_vu_vring_state, index) == 0,
	       "the queue index leads every vring payload");
static int queue_msg(struct proxy *p, const struct svq_vu_msg *m,
		     uint32_t size, unsigned int *out)
{
	int rc = expect(p, m, size, 0);

	return rc ? rc : queue_index(p, m, m->payload.state.index, out);
}

/* Notifiers are eventfds: the proxy writes call fds on its only thread, and
 * a full pipe there would stall every queue. */
static bool is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return !strcmp(target, "anon_inode:[eventfd]");
}

/* SET_VRING_KICK, _CALL, _ERR: the u64 and its fd (or none, bit 8). */
static int vring_fd(struct proxy *p, struct svq_vu_msg *m, unsigned int *i,
		    int *fd)
{
	uint64_t v = m->payload.u64;
	bool nofd;
	int rc;

	if (m->hdr.size != sizeof(uint64_t))
		return bad(p, m, "payload of %u bytes, not 8", m->hdr.size);
	if (v & ~(SVQ_VU_VRING_IDX_MASK | SVQ_VU_VRING_NOFD))
		return bad(p, m, "unknown bits in %#" PRIx64, v);
	nofd = v & SVQ_VU_VRING_NOFD;
	if (m->nfds + m->nfds_dropped != (nofd ? 0u : 1u))
		return bad(p, m, "%u fds with%s the no-fd flag",
			   m->nfds + m->nfds_dropped, nofd ? "" : "out");
	rc = queue_index(p, m, (uint32_t)(v & SVQ_VU_VRING_IDX_MASK), i);
	if (rc)
		return rc;
	if (!nofd && !is_eventfd(m->fds[0]))
		return bad(p, m, "queue %u: the fd is not an eventfd", *i);
	*fd = nofd ? -1 : m->fds[0];
	m->nfds = 0;	/* taken */
	return 0;
}

static int set_features(struct proxy *p, const struct svq_vu_msg *m)
{
	uint64_t f = m->payload.u64, guest, wanted, agreed = 0;
	unsigned int i;
	int rc;

	if (f & ~p->guest_offer)
		return bad(p, m, "features %#" PRIx64 " were not offered",
			   f & ~p->guest_offer);
	guest = f & ~F_PROTOCOL;
	wanted = svqiso_vhost_backend_features(p->vh, guest, p->be_offered);
	if (p->features_set && f == p->vmm_features)
		return 0;	/* QEMU sends the same again */
	if (p->features_set && (f ^ p->vmm_features) == F_LOG_ALL) {
		/* Migration starts or ends: dirty logging is svqiso's alone,
		 * the backend hears nothing of it. */
		rc = svqiso_vhost_set_features(p->vh, guest, p->be_acked);
		if (rc)
			return bad(p, m, "LOG_ALL: %s", strerror(-rc));
		p->vmm_features = f;
		plog(p, SVQISO_LOG_INFO, "vmm: dirty logging %s%s",
		     f & F_LOG_ALL ? "on" : "off",
		     f & F_LOG_ALL && !p->log_map ? " (no log given yet)" : "");
		return 0;
	}
	for (i = 0; i < p->nq; i++)
		if (p->q[i].started)
			return bad(p, m, "features changed while queue %u runs", i);
	rc = need_backend(p);
	if (!rc)
		rc = svq_fe_set_features(p->fe, wanted, &agreed);
	if (!rc)
		rc = svqiso_vhost_set_features(p->vh, guest, agreed);
	if (rc) {
		plog(p, SVQISO_LOG_ERR, "vmm: SET_FEATURES %#" PRIx64 ": %s", f,
		     strerror(-rc));
		return rc;
	}
	p->vmm_features = f;
	p->be_acked = agreed;
	p->features_set = true;
	return 0;
}

/* ---- dirty log ---- */

static void log_unmap(struct proxy *p)
{
	if (p->log_map)
		munmap(p->log_map, p->log_len);
	p->log_map = NULL;
	p->log_len = 0;
}

/*
 * SET_LOG_BASE: the VMM's log, shared memory in vhost's format. svqiso
 * writes into it every guest page it writes while LOG_ALL is set; the old
 * log (a resize) is let go once the new one is in place.
 */
static int set_log_base(struct proxy *p, struct svq_vu_msg *m)
{
	const struct svq_vu_log *l = &m->payload.log;
	SVQISO_OPTS(svqiso_dirty_log, dl);
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;
	void *map;
	int rc, fd;

	if (!(p->vmm_protocol & PF(LOG_SHMFD)))
		return bad(p, m, "LOG_SHMFD was not negotiated");
	rc = expect(p, m, sizeof(*l), 1);
	if (rc)
		return rc;
	fd = m->fds[0];
	m->nfds = 0;	/* taken */
	if (!l->mmap_size || l->mmap_size > PROXY_LOG_MAX ||
	    l->mmap_offset % (uint64_t)page ||
	    l->mmap_offset + l->mmap_size < l->mmap_offset)
		rc = bad(p, m, "log of %" PRIu64 " bytes at offset %" PRIu64,
			 l->mmap_size, l->mmap_offset);
	else if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		rc = bad(p, m, "log: the fd is not a memfd or a file");
	else if (l->mmap_offset + l->mmap_size > (uint64_t)st.st_size)
		rc = bad(p, m, "log: offset %" PRIu64 " + size %" PRIu64
			 " past the end of its fd (%" PRIu64 ")", l->mmap_offset,
			 l->mmap_size, (uint64_t)st.st_size);
	if (rc) {
		close(fd);
		return rc;
	}
	map = mmap(NULL, l->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   (off_t)l->mmap_offset);
	rc = errno;
	close(fd);
	if (map == MAP_FAILED)
		return bad(p, m, "log: mmap: %s", strerror(rc));
	dl.bitmap = map;
	dl.size = l->mmap_size;
	if (p->no_dirty_log)
		plog(p, SVQISO_LOG_WARN, "vmm: dirty log taken, and left unwritten "
		     "(--no-dirty-log): a migrated guest finds stale memory");
	rc = svqiso_vhost_set_dirty_log(p->vh, p->no_dirty_log ? NULL : &dl);
	if (rc) {
		munmap(map, l->mmap_size);
		return bad(p, m, "log: %s", strerror(-rc));
	}
	log_unmap(p);
	p->log_map = map;
	p->log_len = l->mmap_size;
	plog(p, SVQISO_LOG_INFO, "vmm: dirty log of %" PRIu64
	     " bytes: guest RAM below %#" PRIx64, l->mmap_size,
	     l->mmap_size * 8 * SVQISO_DIRTY_PAGE_SIZE);
	/* The VMM waits for this before it counts on the log. */
	return reply_u64(p, m, 0);
}

static int get_vring_base(struct proxy *p, const struct svq_vu_msg *m)
{
	struct svq_vu_msg r;
	unsigned int i = 0;
	uint32_t base;
	int rc;

	rc = queue_msg(p, m, sizeof(struct svq_vu_vring_state), &i);
	if (rc)
		return rc;
	queue_stop(p, i, &base);
	svq_vu_msg_init(&r, 0, sizeof(struct svq_vu_vring_state));
	r.payload.state.index = i;
	r.payload.state.num = base;
	return reply(p, m, &r);
}

static int vring_state(struct proxy *p, const struct svq_vu_msg *m)
{
	const struct svq_vu_vring_state *s = &m->payload.state;
	struct pq *q;
	unsigned int i = 0;
	int rc;

	rc = queue_msg(p, m, sizeof(*s), &i);
	if (rc)
		return rc;
	q = &p->q[i];
	switch (m->hdr.request) {
	case SVQ_VU_SET_VRING_NUM:
		if (q->started)
			return bad(p, m, "queue %u runs", i);
		if (!s->num || s->num > 32768 ||
		    (!guest_packed(p) && (s->num & (s->num - 1))))
			return bad(p, m, "queue %u: ring size %u", i, s->num);
		q->num = s->num;
		q->num_set = true;
		return 0;
	case SVQ_VU_SET_VRING_BASE:
		if (q->started)
			return bad(p, m, "queue %u runs", i);
		q->base = s->num;
		return 0;
	case SVQ_VU_SET_VRING_ENABLE:
		if (s->num > 1)
			return bad(p, m, "queue %u: enable %u", i, s->num);
		q->enabled = s->num;
		if (!q->started || !backend_up(p))
			return 0;	/* sent with the ring */
		rc = svq_fe_vring_enable(p->fe, i, q->enabled);
		backend_check(p);
		if (!rc && q->enabled)
			queue_poke(p, i);
		return p->fe ? rc : 0;
	}
	return -EINVAL;
}

static int set_vring_addr(struct proxy *p, const struct svq_vu_msg *m)
{
	const struct svq_vu_vring_addr *a = &m->payload.addr;
	uint64_t gpa;
	unsigned int i = 0;
	int rc;

	rc = queue_msg(p, m, sizeof(*a), &i);
	if (rc)
		return rc;
	if (a->flags & ~VRING_F_LOG)
		return bad(p, m, "queue %u: flags %#x", i, a->flags);
	if (p->q[i].started) {
		const struct svq_vu_vring_addr *o = &p->q[i].addr;

		/* QEMU sends the ring again to switch used ring logging; the
		 * log is svqiso's, written from the guest ring it serves. */
		if (a->desc == o->desc && a->avail == o->avail && a->used == o->used)
			return 0;
		return bad(p, m, "queue %u runs", i);
	}
	if (p->nregions && (vmm_gpa(p, a->desc, &gpa) || vmm_gpa(p, a->avail, &gpa) ||
			    vmm_gpa(p, a->used, &gpa)))
		return bad(p, m, "queue %u: ring at desc %#" PRIx64 " avail %#"
			   PRIx64 " used %#" PRIx64 " is not in guest RAM", i,
			   a->desc, a->avail, a->used);
	p->q[i].addr = *a;
	p->q[i].addr_set = true;
	return 0;
}

static int set_vring_kick(struct proxy *p, struct svq_vu_msg *m)
{
	unsigned int i = 0;
	struct pq *q;
	int rc, fd = -1;

	rc = vring_fd(p, m, &i, &fd);
	if (rc)
		return rc;
	q = &p->q[i];
	if (fd < 0)
		return bad(p, m, "queue %u: no kick fd: polling is not supported", i);
	if (q->started) {
		/* A new notifier for a running ring. */
		if (q->kick_watched)
			ep_del(p, q->kick_fd);
		q->kick_watched = false;
		close_fd(&q->kick_fd);
		q->kick_fd = fd;
		watch_queue(p, i);
		return 0;
	}
	close_fd(&q->kick_fd);
	q->kick_fd = fd;
	if (ep_add(p, fd, 0, EPOLLIN)) {
		q->kick_fd = -1;
		close(fd);
		return bad(p, m, "queue %u: kick fd cannot be polled", i);
	}
	ep_del(p, fd);
	return queue_start(p, m, i);
}

static int set_vring_call(struct proxy *p, struct svq_vu_msg *m, bool err)
{
	unsigned int i = 0;
	struct pq *q;
	int rc, fd = -1;

	rc = vring_fd(p, m, &i, &fd);
	if (rc)
		return rc;
	q = &p->q[i];
	if (err) {
		close_fd(&q->err_fd);
		q->err_fd = fd;
		return 0;
	}
	rc = svqiso_vhost_queue_set_call(p->vh, i, fd);
	if (rc) {
		if (fd >= 0)
			close(fd);
		return bad(p, m, "queue %u: call fd refused: %s", i, strerror(-rc));
	}
	close_fd(&q->call_fd);
	q->call_fd = fd;
	return 0;
}

static int get_set_config(struct proxy *p, const struct svq_vu_msg *m)
{
	const struct svq_vu_config *c = &m->payload.config;
	struct svq_vu_msg r;
	int rc;

	if (m->hdr.size < SVQ_VU_CONFIG_HDR_SIZE || c->size > SVQ_VU_CONFIG_MAX ||
	    !c->size || m->hdr.size != SVQ_VU_CONFIG_HDR_SIZE + c->size ||
	    c->offset > UINT32_MAX - c->size)
		return bad(p, m, "config of %u bytes at %u in a payload of %u",
			   m->hdr.size >= SVQ_VU_CONFIG_HDR_SIZE ? c->size : 0,
			   m->hdr.size >= SVQ_VU_CONFIG_HDR_SIZE ? c->offset : 0,
			   m->hdr.size);
	if (m->nfds + m->nfds_dropped)
		return bad(p, m, "%u fds, not 0", m->nfds + m->nfds_dropped);
	if (!(p->vmm_protocol & PF(CONFIG)))
		return bad(p, m, "CONFIG was not negotiated");
	rc = need_backend(p);
	if (m->hdr.request == SVQ_VU_SET_CONFIG) {
		if (c->flags & ~SVQ_VU_CONFIG_F_MIGRATION)
			return bad(p, m, "flags %#x", c->flags);
		if (!rc)
			rc = svq_fe_set_config(p->fe, c->offset, c->payload,
					       c->size, c->flags);
		backend_check(p);
		return rc;
	}
	svq_vu_msg_init(&r, 0, m->hdr.size);
	r.payload.config = *c;
	if (!rc)
		rc = svq_fe_get_config(p->fe, c->offset, r.payload.config.payload,
				       c->size);
	backend_check(p);
	if (rc) {
		/* An empty answer is the protocol's way to fail it. */
		plog(p, SVQISO_LOG_ERR, "vmm: GET_CONFIG: %s", strerror(-rc));
		r.hdr.size = SVQ_VU_CONFIG_HDR_SIZE;
		r.payload.config.size = 0;
	}
	return reply(p, m, &r);
}

/* The replies a request has of its own (no REPLY_ACK for those). */
static bool has_reply(uint32_t request)
{
	switch (request) {
	case SVQ_VU_GET_FEATURES:
	case SVQ_VU_GET_PROTOCOL_FEATURES:
	case SVQ_VU_GET_QUEUE_NUM:
	case SVQ_VU_GET_VRING_BASE:
	case SVQ_VU_GET_CONFIG:
	case SVQ_VU_GET_MAX_MEM_SLOTS:
	case SVQ_VU_SET_LOG_BASE:
		return true;
	}
	return false;
}

static int handle(struct proxy *p, struct svq_vu_msg *m)
{
	struct svq_vu_msg fw;
	uint64_t v;
	int rc;

	switch (m->hdr.request) {
	case SVQ_VU_GET_FEATURES:
		rc = expect(p, m, 0, 0);
		return rc ? rc : reply_u64(p, m, p->guest_offer);
	case SVQ_VU_SET_FEATURES:
		rc = expect(p, m, sizeof(uint64_t), 0);
		return rc ? rc : set_features(p, m);
	case SVQ_VU_SET_OWNER:
		return expect(p, m, 0, 0);
	case SVQ_VU_RESET_OWNER:
	case SVQ_VU_RESET_DEVICE:
		rc = expect(p, m, 0, 0);
		if (!rc && m->hdr.request == SVQ_VU_RESET_DEVICE &&
		    !(p->vmm_protocol & PF(RESET_DEVICE)))
			rc = bad(p, m, "RESET_DEVICE was not negotiated");
		if (!rc)
			device_reset(p);
		return rc;
	case SVQ_VU_GET_PROTOCOL_FEATURES:
		rc = expect(p, m, 0, 0);
		return rc ? rc : reply_u64(p, m, p->proto_offer);
	case SVQ_VU_SET_PROTOCOL_FEATURES:
		rc = expect(p, m, sizeof(uint64_t), 0);
		if (rc)
			return rc;
		if (m->payload.u64 & ~p->proto_offer)
			return bad(p, m, "protocol features %#" PRIx64
				   " were not offered", m->payload.u64 & ~p->proto_offer);
		p->vmm_protocol = m->payload.u64;
		return 0;
	case SVQ_VU_GET_QUEUE_NUM:
		rc = expect(p, m, 0, 0);
		if (!rc && !(p->vmm_protocol & PF(MQ)))
			rc = bad(p, m, "MQ was not negotiated");
		return rc ? rc : reply_u64(p, m, p->be_queue_num);
	case SVQ_VU_GET_MAX_MEM_SLOTS:
		rc = expect(p, m, 0, 0);
		return rc ? rc : reply_u64(p, m, PROXY_MEM_SLOTS);
	case SVQ_VU_SET_MEM_TABLE:
		return set_mem_table(p, m);
	case SVQ_VU_ADD_MEM_REG:
		if (!(p->vmm_protocol & PF(CONFIGURE_MEM_SLOTS)))
			return bad(p, m, "CONFIGURE_MEM_SLOTS was not negotiated");
		return add_mem_reg(p, m);
	case SVQ_VU_REM_MEM_REG:
		if (!(p->vmm_protocol & PF(CONFIGURE_MEM_SLOTS)))
			return bad(p, m, "CONFIGURE_MEM_SLOTS was not negotiated");
		return rem_mem_reg(p, m);
	case SVQ_VU_SET_VRING_NUM:
	case SVQ_VU_SET_VRING_BASE:
	case SVQ_VU_SET_VRING_ENABLE:
		return vring_state(p, m);
	case SVQ_VU_SET_VRING_ADDR:
		return set_vring_addr(p, m);
	case SVQ_VU_GET_VRING_BASE:
		return get_vring_base(p, m);
	case SVQ_VU_SET_VRING_KICK:
		return set_vring_kick(p, m);
	case SVQ_VU_SET_VRING_CALL:
		return set_vring_call(p, m, false);
	case SVQ_VU_SET_VRING_ERR:
		return set_vring_call(p, m, true);
	case SVQ_VU_GET_CONFIG:
	case SVQ_VU_SET_CONFIG:
		return get_set_config(p, m);
	case SVQ_VU_SET_LOG_BASE:
		return set_log_base(p, m);
	case VU_NET_SET_MTU:
		rc = expect(p, m, sizeof(uint64_t), 0);
		if (!rc && !(p->vmm_protocol & PF(NET_MTU)))
			rc = bad(p, m, "NET_MTU was not negotiated");
		if (rc)
			return rc;
		v = m->payload.u64;
		rc = need_backend(p);
		if (rc)
			return rc;
		svq_vu_msg_init(&fw, VU_NET_SET_MTU, sizeof(uint64_t));
		fw.payload.u64 = v;
		rc = svq_fe_call(p->fe, &fw, NULL);
		backend_check(p);
		return rc;
	}
	return bad(p, m, "not offered to the VMM, or unknown");
}

/* One message from the VMM. Return: 0, or < 0: end the session. */
static int on_vmm(struct proxy *p)
{
	struct svq_vu_msg m;
	unsigned int i;
	bool ack;
	int rc;

	rc = svq_vu_recv(p->vmm, &m, PROXY_MSG_TIMEOUT_MS);
	if (rc == -ECONNRESET)
		return 1;	/* the VMM left */
	if (rc == -EMSGSIZE ||
	    (rc == -EPROTO && m.hdr.size > SVQ_VU_DRAIN_MAX))
		return bad(p, &m, "payload of %u bytes is too large", m.hdr.size);
	/* Whatever of the header came names the request. */
	if (rc && m.hdr.request)
		return bad(p, &m, "message %s",
			   rc == -EPROTO ? "truncated, or too many fds" :
			   rc == -ETIMEDOUT ? "incomplete" : strerror(-rc));
	if (rc) {
		p->bad_messages++;
		plog(p, SVQISO_LOG_ERR, "vmm: reading a message: %s: closing the session",
		     rc == -EPROTO ? "truncated, or too many fds" :
		     rc == -ETIMEDOUT ? "incomplete" : strerror(-rc));
		return -EPROTO;
	}
	if ((m.hdr.flags & SVQ_VU_VERSION_MASK) != SVQ_VU_VERSION ||
	    (m.hdr.flags & ~(SVQ_VU_VERSION_MASK | SVQ_VU_FLAG_NEED_REPLY))) {
		rc = bad(p, &m, "flags %#x", m.hdr.flags);
	} else {
		uint64_t bad_before = p->bad_messages;

		rc = handle(p, &m);
		/*
		 * Only bad() ends the session for what the VMM sent. -EPROTO from
		 * anywhere else is the backend's session breaking the protocol
		 * under this request (a region or a ring handed over): the
		 * request failed, the backend is gone and reconnected, and the
		 * VMM's session goes on.
		 */
		if (rc == -EPROTO && p->bad_messages == bad_before) {
			backend_check(p);
			rc = -EIO;
		}
	}
	for (i = 0; i < m.nfds; i++)
		if (m.fds[i] >= 0)
			close(m.fds[i]);
	if (rc == -EPROTO || p->ended)
		return -EPROTO;
	ack = (m.hdr.flags & SVQ_VU_FLAG_NEED_REPLY) && !has_reply(m.hdr.request);
	if (ack && reply_u64(p, &m, rc ? 1 : 0))
		return -EPROTO;
	if (rc && !ack)
		plog(p, SVQISO_LOG_WARN, "vmm: %s failed: %s",
		     req_name(m.hdr.request), strerror(-rc));
	return 0;
}

/* ---- sessions ---- */

static void end_session(struct proxy *p, int rc)
{
	unsigned int i;

	if (p->vmm < 0)
		return;
	for (i = 0; i < MAX_QUEUES; i++) {
		struct pq *q = &p->q[i];

		unwatch_queue(p, i);
		close_fd(&q->kick_fd);
		close_fd(&q->call_fd);
		close_fd(&q->err_fd);
	}
	/* The backend first: it stops using the rings before they go. */
	ep_del(p, p->fe_watch);
	close_fd(&p->fe_watch);
	svq_fe_free(p->fe);
	p->fe = NULL;
	svqiso_vhost_free(p->vh);
	p->vh = NULL;
	log_unmap(p);
	for (i = 0; i < p->nregions; i++)
		region_unmap(&p->regions[i]);
	p->nregions = 0;
	timer_arm(p, false);
	ep_del(p, p->vmm);
	close_fd(&p->vmm);
	p->ended = true;
	p->end_rc = rc;
	plog(p, rc ? SVQISO_LOG_WARN : SVQISO_LOG_INFO, "vmm: session ended%s",
	     rc ? " by the proxy" : "");
}

static int begin_session(struct proxy *p, int fd)
{
	struct svq_fe *fe = NULL;
	struct timespec ts = { 0, 50 * 1000000 };
	uint64_t proto;
	unsigned int i;
	int rc, waited = 0;

	/* A VMM that stops reading cannot hold the proxy up for long: a
	 * reply that finds no room in time ends the session. */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	memset(p->q, 0, sizeof(p->q));
	for (i = 0; i < MAX_QUEUES; i++) {
		p->q[i].kick_fd = p->q[i].call_fd = p->q[i].err_fd = -1;
		p->q[i].shadow_call = -1;
	}
	p->vmm = fd;
	p->ended = false;
	p->end_rc = 0;
	p->features_set = false;
	p->vmm_features = p->vmm_protocol = 0;
	p->backend_lost = false;
	p->fe_watch = -1;
	p->sessions++;

	/* The backend's answers shape what the VMM is offered. */
	p->nq = MAX_QUEUES;
	for (;;) {
		rc = backend_open(p, &fe);
		if (!rc || waited >= p->connect_ms ||
		    (rc != -ENOENT && rc != -ECONNREFUSED))
			break;
		nanosleep(&ts, NULL);
		waited += 50;
	}
	if (rc) {
		plog(p, SVQISO_LOG_ERR, "backend: %s: cannot connect: %s",
		     p->backend, strerror(-rc));
		goto fail;
	}
	p->be_offered = svq_fe_offered_features(fe);
	p->be_protocol = svq_fe_protocol_features(fe);
	p->be_queue_num = svq_fe_queue_num(fe);
	p->nq = p->max_queues_opt ? p->max_queues_opt :
		(p->be_protocol & PF(MQ)) ? 2 * p->be_queue_num : 8;
	if (p->nq > MAX_QUEUES)
		p->nq = MAX_QUEUES;
	p->fe = fe;
	{
		SVQISO_OPTS(svqiso_vhost_opts, vo,
			    .flags = p->vhost_flags, .copy = p->copy,
			    .shadow_layout = p->shadow_layout,
			    .pool_size = p->pool_size,
			    .region_add = region_add, .region_del = region_del,
			    .region_ctx = p, .log = engine_log, .log_ctx = p,
			    .name = p->name);

		rc = svqiso_vhost_new(&vo, &p->vh);
		if (rc) {
			plog(p, SVQISO_LOG_ERR, "engine: %s", strerror(-rc));
			goto fail;
		}
	}
	p->guest_offer = svqiso_vhost_guest_features(p->vh, p->be_offered) |
			 F_PROTOCOL;
	proto = svqiso_vhost_protocol_features(p->vh,
					       p->be_offered & F_PROTOCOL ?
					       p->be_protocol : 0);
	p->proto_offer = (proto & p->be_protocol & PROTO_PASSED) | PROTO_OWN;
	p->fe_watch = fcntl(svq_fe_fd(p->fe), F_DUPFD_CLOEXEC, 0);
	if (p->fe_watch < 0 ||
	    ep_add(p, p->fe_watch, EV(EV_BACKEND, 0), EPOLLRDHUP) ||
	    ep_add(p, fd, EV(EV_VMM, 0), EPOLLIN)) {
		rc = -errno;
		goto fail;
	}
	for (i = 0; i < p->nq; i++)
		p->q[i].enabled = true;
	plog(p, SVQISO_LOG_INFO,
	     "vmm: session %" PRIu64 ": backend features %#" PRIx64 " protocol %#"
	     PRIx64 ", %u queues; offering %#" PRIx64 " protocol %#" PRIx64,
	     p->sessions, p->be_offered, p->be_protocol, p->nq, p->guest_offer,
	     p->proto_offer);
	return 0;
fail:
	end_session(p, rc);
	return rc;
}

/* Whether the served VMM has closed its end (no byte is read). */
static bool vmm_hung_up(const struct proxy *p)
{
	struct pollfd pfd = { .fd = p->vmm, .events = POLLRDHUP };
	char c;

	if (poll(&pfd, 1, 0) != 1)
		return false;
	if (pfd.revents & (POLLHUP | POLLERR))
		return true;
	/* Half closed with nothing left to read: gone. */
	return (pfd.revents & POLLRDHUP) &&
	       recv(p->vmm, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static void on_event(struct proxy *p, const struct epoll_event *ev,
		     int listen_fd)
{
	unsigned int kind = ev->data.u64 & 0xff;
	unsigned int idx = (unsigned int)(ev->data.u64 >> 8);
	uint64_t ticks;
	int rc, fd;

	switch (kind) {
	case EV_LISTEN:
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return;
		/* A VMM that hung up and came straight back: its old session
		 * ends first, whatever order the events came in. */
		if (p->vmm >= 0 && vmm_hung_up(p))
			end_session(p, 0);
		if (p->vmm >= 0) {
			plog(p, SVQISO_LOG_WARN,
			     "vmm: a second connection while one is served: closed");
			close(fd);
			return;
		}
		begin_session(p, fd);
		return;
	case EV_VMM:
		rc = on_vmm(p);
		if (rc > 0)
			end_session(p, 0);
		else if (rc < 0 && p->vmm >= 0)
			end_session(p, rc);
		return;
	case EV_BACKEND:
		backend_gone(p, "hung up");
		return;
	case EV_KICK:
		if (p->vmm >= 0 && idx < p->nq && p->q[idx].kick_watched)
			on_kick(p, idx);
		return;
	case EV_CALL:
		if (p->vmm >= 0 && idx < p->nq && p->q[idx].call_watched)
			on_call(p, idx);
		return;
	case EV_TIMER:
		if (read(p->timer, &ticks, sizeof(ticks)) < 0)
			return;
		if (p->vmm >= 0)
			backend_retry(p);
		else
			timer_arm(p, false);
		return;
	case EV_WATCH:
		if (idx < p->nwatches)
			p->watches[idx].fn(p, p->watches[idx].fd,
					   p->watches[idx].ctx);
		return;
	}
}

/* ---- spinning between wake-ups (spin_ns) ---- */

/* A queue a spin polls: running and not broken (what a broken one holds
 * never completes). */
static bool queue_live(const struct proxy *p, unsigned int i)
{
	return p->q[i].started && svqiso_vhost_queue_running(p->vh, i) &&
	       !svqiso_vhost_queue_broken(p->vh, i);
}

static bool any_in_flight(const struct proxy *p)
{
	unsigned int i;

	if (p->vmm < 0 || !p->vh || !backend_up(p))
		return false;
	for (i = 0; i < p->nq; i++)
		if (queue_live(p, i) && svqiso_vhost_queue_in_flight(p->vh, i))
			return true;
	return false;
}

/* Both peers' signals off (@on) or back on for every live queue. */
static void spin_signals(struct proxy *p, bool on)
{
	unsigned int i;

	for (i = 0; i < p->nq; i++)
		if (queue_live(p, i) &&
		    svqiso_vhost_queue_set_busy_poll(p->vh, i, !on) == -EIO)
			queue_broken(p, i);
}

/* One pass over every live queue, both rings. Return: whether any queue
 * moved requests or signalled a peer. */
static bool poll_pass(struct proxy *p)
{
	bool progress = false;
	unsigned int i;
	int rc;

	for (i = 0; i < p->nq; i++) {
		if (!queue_live(p, i))
			continue;
		rc = svqiso_vhost_queue_poll(p->vh, i);
		if (rc == -EIO)
			queue_broken(p, i);
		else if (rc > 0)
			progress = true;
	}
	return progress;
}

/*
 * Whether a fd of the loop other than the rings' is ready: the loop sees it
 * again once the spin ends. A kick or a call from before the signals went
 * off (or from a peer that signals anyway) is taken here, as the loop
 * would, so that it does not end the spin.
 */
static bool spin_interrupted(struct proxy *p)
{
	struct epoll_event evs[8];
	int n, i;

	n = epoll_wait(p->ep, evs, 8, 0);
	for (i = 0; i < n; i++) {
		unsigned int kind = evs[i].data.u64 & 0xff;

		if (kind != EV_KICK && kind != EV_CALL)
			return true;
		on_event(p, &evs[i], -1);
	}
	return false;
}

/*
 * Poll the rings instead of sleeping, with the guest's kicks and the
 * backend's calls off, until the spin window passes without progress,
 * nothing is in flight, or another fd of the loop is ready (looked at every
 * PROXY_SPIN_CHECK_NS). Then the signals are back on and one more pass
 * takes what came while they were off.
 */
static void spin(struct proxy *p)
{
	struct svq_spin_round round;
	uint64_t checked;

	p->spins++;
	spin_signals(p, false);
	svq_spin_round_begin(&p->spin, &round);
	checked = round.now;
	for (;;) {
		bool progress = poll_pass(p);

		if (!svq_spin_round_pass(&p->spin, &round, progress,
					 progress || any_in_flight(p)))
			break;
		if (round.now - checked >= PROXY_SPIN_CHECK_NS) {
			checked = round.now;
			if (spin_interrupted(p))
				break;
		}
	}
	spin_signals(p, true);
	poll_pass(p);
	backend_check(p);	/* as after a kick or a call */
}

static int loop(struct proxy *p, int listen_fd, bool one_session)
{
	struct epoll_event evs[32];
	int n, i;

	while (!p->stop && !(one_session && p->ended)) {
		n = epoll_wait(p->ep, evs, 32, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		svq_spin_woken(&p->spin);
		for (i = 0; i < n; i++) {
			on_event(p, &evs[i], listen_fd);
			if (p->stop)
				break;
		}
		if (!p->stop && p->spin.max_ns &&
		    svq_spin_should(&p->spin, any_in_flight(p)))
			spin(p);
	}
	return 0;
}

int proxy_serve(struct proxy *p, int fd)
{
	int rc;

	if (!p || fd < 0)
		return -EINVAL;
	if (p->vmm >= 0) {
		close(fd);
		return -EBUSY;
	}
	rc = begin_session(p, fd);
	if (rc)
		return rc;
	rc = loop(p, -1, true);
	if (!p->ended) {
		end_session(p, -EINTR);
		return rc ? rc : -EINTR;
	}
	return p->end_rc;
}

int proxy_run(struct proxy *p, int listen_fd)
{
	int rc;

	if (!p || listen_fd < 0)
		return -EINVAL;
	rc = ep_add(p, listen_fd, EV(EV_LISTEN, 0), EPOLLIN);
	if (rc)
		return rc;
	rc = loop(p, listen_fd, false);
	end_session(p, 0);
	ep_del(p, listen_fd);
	return rc;
}

void proxy_stop(struct proxy *p)
{
	if (p)
		p->stop = true;
}

int proxy_watch(struct proxy *p, int fd, proxy_watch_fn fn, void *ctx)
{
	int rc;

	if (!p || fd < 0 || !fn || p->nwatches == MAX_WATCHES)
		return -EINVAL;
	rc = ep_add(p, fd, EV(EV_WATCH, p->nwatches), EPOLLIN);
	if (rc)
		return rc;
	p->watches[p->nwatches++] = (struct watch){ fd, fn, ctx };
	return 0;
}

int proxy_new(const struct proxy_opts *o, struct proxy **out)
{
	struct proxy *p;

	if (!o || !o->backend || !out || o->timeout_ms < 0 ||
	    o->reconnect_ms < 0 || o->connect_ms < 0 ||
	    o->max_queues > MAX_QUEUES)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->backend = strdup(o->backend);
	snprintf(p->name, sizeof(p->name), "%s", o->name ? o->name : "svqiso-proxy");
	p->timeout_ms = o->timeout_ms ? o->timeout_ms : PROXY_TIMEOUT_MS;
	p->reconnect_ms = o->reconnect_ms ? o->reconnect_ms : PROXY_RECONNECT_MS;
	p->connect_ms = o->connect_ms ? o->connect_ms : p->timeout_ms;
	p->max_queues_opt = o->max_queues;
	p->shadow_layout = o->shadow_layout;
	p->copy = o->copy;
	p->vhost_flags = o->vhost_flags;
	p->no_dirty_log = o->no_dirty_log;
	p->pool_size = o->pool_size;
	svq_spin_init(&p->spin, o->spin_ns);
	p->log = o->log;
	p->log_ctx = o->log_ctx;
	p->vmm = p->fe_watch = -1;
	p->ep = epoll_create1(EPOLL_CLOEXEC);
	p->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!p->backend || p->ep < 0 || p->timer < 0 ||
	    ep_add(p, p->timer, EV(EV_TIMER, 0), EPOLLIN)) {
		proxy_free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void proxy_free(struct proxy *p)
{
	if (!p)
		return;
	end_session(p, 0);
	if (p->ep >= 0)
		close(p->ep);
	if (p->timer >= 0)
		close(p->timer);
	free(p->backend);
	free(p);
}

/* ---- stats ---- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void proxy_stats(struct proxy *p, FILE *f)
{
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	struct timespec now;
	const char *why;
	unsigned int i;
	bool first = true;

	clock_gettime(CLOCK_REALTIME, &now);
	fprintf(f, "{\"device\":");
	json_str(f, p->name);
	fprintf(f, ",\"time\":%lld.%03ld,\"vmm\":\"%s\",\"backend\":\"%s\","
		"\"sessions\":%" PRIu64 ",\"bad_messages\":%" PRIu64
		",\"reconnects\":%" PRIu64 ",\"reposted\":%" PRIu64
		",\"spin_us\":%" PRIu64 ",\"spins\":%" PRIu64 ",\"queues\":[",
		(long long)now.tv_sec, now.tv_nsec / 1000000,
		p->vmm >= 0 ? "connected" : "none",
		p->vmm < 0 ? "none" : backend_up(p) ? "up" : "gone",
		p->sessions, p->bad_messages, p->reconnects, p->reposted,
		p->spin.cur_ns / 1000, p->spins);
	for (i = 0; p->vh && i < p->nq; i++) {
		if (svqiso_vhost_queue_stats(p->vh, i, &st))
			continue;
		why = svqiso_vhost_queue_broken(p->vh, i);
		fprintf(f, "%s{\"queue\":%u,\"running\":%s,\"requests\":%" PRIu64
			",\"completions\":%" PRIu64 ",\"bytes_out\":%" PRIu64
			",\"bytes_in\":%" PRIu64 ",\"in_flight\":%u"
			",\"stalls\":%" PRIu64 ",\"clamped\":%" PRIu64
			",\"errors\":%" PRIu64 ",\"given_back\":%" PRIu64
			",\"reposted\":%" PRIu64 ",\"oneoffs\":%" PRIu64
			",\"oneoff_waits\":%" PRIu64 ",\"dirty_bytes\":%" PRIu64
			",\"dirty_missed\":%" PRIu64 ",\"broken\":",
			first ? "" : ",", i,
			svqiso_vhost_queue_running(p->vh, i) ? "true" : "false",
			st.requests, st.completions, st.bytes_out, st.bytes_in,
			svqiso_vhost_queue_in_flight(p->vh, i), st.pool_stalls,
			st.clamped, st.errors, st.given_back, st.reposted,
			st.oneoffs, st.oneoff_waits, st.dirty_bytes, st.dirty_missed);
		if (why)
			json_str(f, why);
		else
			fputs("null", f);
		fputc('}', f);
		first = false;
	}
	fputs("]}\n", f);
	fflush(f);
}
