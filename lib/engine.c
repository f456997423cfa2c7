/* SPDX-License-Identifier: MIT */
/*
 * The vhost engine: memory isolation for a VMM that owns its vhost-user
 * session. See include/svqiso/vhost.h.
 *
 * One svq, bounce arena and pair of backend eventfds per queue; every
 * queue's shadow ring in a shared ring region (one per ring_slots queues),
 * so a device costs the backend a few memory slots whatever its queue
 * count. A queue's place in its ring region is fixed by its index, so a
 * queue started again lays its fresh shadow ring where the old one was:
 * the backend never holds the address of a ring in a region that went.
 */
#define _GNU_SOURCE	/* POLLRDHUP */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <svqiso/vhost.h>
#include <svqiso/pool.h>
#include "engine.h"
#include "policy.h"
#include "vring.h"
#include "svq_priv.h"

#if defined(__LP64__)
_Static_assert(sizeof(struct svqiso_vhost_opts) == 104, "svqiso_vhost_opts is append-only");
#endif

#define VH_DEFAULT_MAX_NUM	1024
#define VH_DEFAULT_RING_SLOTS	8
#define VH_PAGE			4096ull

/*
 * How long a drain waits with no completion before it takes the requests
 * left to be ones the backend leaves posted (net RX buffers) rather than
 * ones it is working on.
 */
#define VH_QUIET_MS		100

enum vh_state {
	VH_IDLE = 0,		/* never started, stopped, or reset */
	VH_RUNNING,
	VH_STOPPING,		/* the backend stopped the shadow ring; what
				 * it holds has not all completed yet */
	VH_KEPT,		/* stopped with requests the backend lost:
				 * the next start at kept_base reposts them */
};

struct vh_queue {
	enum vh_state state;
	struct svqiso_vhost_vring cfg;	/* as last started */
	struct svqiso_svq *svq;
	struct svqiso_pool *pool;
	int kick_fd;			/* shared with the backend; ours */
	int call_fd;
	int guest_call;			/* the VMM's; -1: none */
	uint32_t gfeat, sfeat;		/* ring features svq was made with */
	uint32_t kept_base;
	bool shared_area;		/* svq's ring is in a ring region */
	bool stale;			/* reset: svq goes at the next start */
	bool busy;			/* svqiso_vhost_queue_set_busy_poll() */
	char name[48];			/* the svq keeps the pointer */
};

struct svqiso_vhost {
	uint32_t flags;
	uint8_t copy;
	uint8_t shadow_layout;
	uint16_t max_num;
	uint32_t ring_slots;
	uint64_t slot_size;		/* one queue's piece of a ring region */
	uint64_t pool_size;
	uint64_t batch_bytes;
	uint64_t oneoff_max;
	svqiso_region_fn region_add;
	svqiso_region_fn region_del;
	void *region_ctx;
	svqiso_log_fn log;
	void *log_ctx;
	char name[32];

	struct svqiso_mem *mem;		/* guest RAM */
	struct svqiso_iso *iso;
	bool closing;			/* free: regions go with the session */

	uint64_t guest_acked;
	uint64_t backend_acked;
	bool features_set;
	uint64_t masked_logged;		/* guest bits whose masking was logged */

	struct svqiso_dirty_log dirty;	/* the VMM's log; sz 0: none */

	struct vh_queue **q;		/* [nq], each made on first use */
	unsigned int nq;
	struct svqiso_region *rings;	/* [nrings]; size 0: not made yet */
	unsigned int nrings;
};

/* ---- helpers ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

static int new_eventfd(int *fd)
{
	if (*fd >= 0)
		return 0;
	*fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

static uint64_t round_page(uint64_t v)
{
	return (v + VH_PAGE - 1) & ~(VH_PAGE - 1);
}

/* ---- regions ---- */

static int vh_region_add(void *ctx, const struct svqiso_region *r)
{
	struct svqiso_vhost *vh = ctx;

	return vh->region_add ? vh->region_add(vh->region_ctx, r) : 0;
}

static int vh_region_del(void *ctx, const struct svqiso_region *r)
{
	struct svqiso_vhost *vh = ctx;

	if (vh->closing || !vh->region_del)
		return 0;
	return vh->region_del(vh->region_ctx, r);
}

/* The piece of a ring region that queue @idx's shadow ring goes in. */
static int ring_area(struct svqiso_vhost *vh, unsigned int idx,
		     struct svqiso_region *area)
{
	unsigned int chunk = idx / vh->ring_slots;
	uint64_t off = (uint64_t)(idx % vh->ring_slots) * vh->slot_size;
	int rc;

	if (chunk >= vh->nrings) {
		struct svqiso_region *r = realloc(vh->rings,
						  (chunk + 1) * sizeof(*r));

		if (!r)
			return -ENOMEM;
		memset(&r[vh->nrings], 0, (chunk + 1 - vh->nrings) * sizeof(*r));
		vh->rings = r;
		vh->nrings = chunk + 1;
	}
	if (!vh->rings[chunk].size) {
		rc = svqiso_iso_region_new(vh->iso, vh->slot_size * vh->ring_slots,
					   &vh->rings[chunk]);
		if (rc) {
			vh->rings[chunk].size = 0;
			return rc;
		}
	}
	*area = vh->rings[chunk];
	area->iova += off;
	area->uaddr = (uint8_t *)area->uaddr + off;
	area->size = vh->slot_size;
	return 0;
}

/* ---- engine ---- */

int svqiso_vhost_new(const struct svqiso_vhost_opts *opts,
		     struct svqiso_vhost **out)
{
	const uint32_t all_flags = SVQISO_VHOST_F_PRESERVE |
				   SVQISO_VHOST_F_NO_INDIRECT |
				   SVQISO_VHOST_F_NO_EVENT_IDX |
				   SVQISO_VHOST_F_LAZY_KICKS |
				   SVQISO_VHOST_F_NO_ONEOFF;
	svqiso_log_fn log = SVQ_OPTS_GET(opts, log, NULL);
	void *log_ctx = SVQ_OPTS_GET(opts, log_ctx, NULL);
	SVQISO_OPTS(svqiso_mem_opts, mo);
	struct svqiso_vhost *vh;
	const char *name;
	int rc;

	if (!out || !SVQ_OPTS_CHECK(svqiso_vhost_opts, opts, log, log_ctx))
		return -EINVAL;
	if (SVQ_OPTS_GET(opts, flags, 0) & ~all_flags)
		return svq_einval(log, log_ctx, "svqiso_vhost_new: unknown "
				  "flags %#x", SVQ_OPTS_GET(opts, flags, 0) &
				  ~all_flags);
	rc = svq_copy_layout_check("svqiso_vhost_new",
				   SVQ_OPTS_GET(opts, copy, 0),
				   SVQ_OPTS_GET(opts, shadow_layout, 0),
				   log, log_ctx);
	if (rc)
		return rc;
	if (SVQ_OPTS_GET(opts, max_num, 0) > SVQ_RING_MAX)
		return svq_einval(log, log_ctx, "svqiso_vhost_new: max_num %u "
				  "is over %u", SVQ_OPTS_GET(opts, max_num, 0),
				  SVQ_RING_MAX);
	if (SVQ_OPTS_GET(opts, ring_slots, 0) > SVQISO_VHOST_MAX_QUEUES)
		return svq_einval(log, log_ctx, "svqiso_vhost_new: ring_slots "
				  "%u is over %u", SVQ_OPTS_GET(opts, ring_slots, 0),
				  SVQISO_VHOST_MAX_QUEUES);

	vh = calloc(1, sizeof(*vh));
	if (!vh)
		return -ENOMEM;
	vh->flags = SVQ_OPTS_GET(opts, flags, 0);
	vh->copy = SVQ_OPTS_GET(opts, copy, 0);
	vh->shadow_layout = SVQ_OPTS_GET(opts, shadow_layout, 0);
	vh->max_num = SVQ_OPTS_GET(opts, max_num, 0);
	if (!vh->max_num)
		vh->max_num = VH_DEFAULT_MAX_NUM;
	/* A split shadow ring's size is a power of two. */
	if (vh->shadow_layout == SVQISO_LAYOUT_SPLIT)
		while (vh->max_num & (vh->max_num - 1))
			vh->max_num &= (uint16_t)(vh->max_num - 1);
	vh->ring_slots = SVQ_OPTS_GET(opts, ring_slots, 0);
	if (!vh->ring_slots)
		vh->ring_slots = VH_DEFAULT_RING_SLOTS;
	vh->slot_size = round_page(svqiso_svq_ring_size(vh->shadow_layout,
							vh->max_num, 0));
	vh->pool_size = SVQ_OPTS_GET(opts, pool_size, 0);
	vh->batch_bytes = SVQ_OPTS_GET(opts, batch_bytes, 0);
	vh->oneoff_max = SVQ_OPTS_GET(opts, oneoff_max, 0);
	vh->region_add = SVQ_OPTS_GET(opts, region_add, NULL);
	vh->region_del = SVQ_OPTS_GET(opts, region_del, NULL);
	vh->region_ctx = SVQ_OPTS_GET(opts, region_ctx, NULL);
	vh->log = log;
	vh->log_ctx = log_ctx;
	name = SVQ_OPTS_GET(opts, name, NULL);
	snprintf(vh->name, sizeof(vh->name), "%s", name ? name : "svqiso");

	mo.log = vh->log;
	mo.log_ctx = vh->log_ctx;
	rc = svqiso_mem_new(&mo, &vh->mem);
	if (!rc) {
		SVQISO_OPTS(svqiso_iso_opts, io,
			    .iova_base = SVQ_OPTS_GET(opts, iova_base, 0),
			    .region_add = vh_region_add,
			    .region_del = vh_region_del, .region_ctx = vh,
			    .log = vh->log, .log_ctx = vh->log_ctx,
			    .name = vh->name);

		rc = svqiso_iso_new(&io, &vh->iso);
	}
	if (rc) {
		svqiso_vhost_free(vh);
		return rc;
	}
	*out = vh;
	return 0;
}

static void queue_free(struct vh_queue *q)
{
	if (!q)
		return;
	svqiso_svq_free(q->svq);
	svqiso_pool_free(q->pool);
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	if (q->call_fd >= 0)
		close(q->call_fd);
	free(q);
}

void svqiso_vhost_free(struct svqiso_vhost *vh)
{
	unsigned int i;

	if (!vh)
		return;
	vh->closing = true;
	for (i = 0; i < vh->nq; i++)
		queue_free(vh->q[i]);
	free(vh->q);
	free(vh->rings);
	svqiso_iso_free(vh->iso);
	svqiso_mem_free(vh->mem);
	free(vh);
}

/* Queue @idx, made on first use when @make; NULL if absent or out of range. */
static struct vh_queue *get_queue(struct svqiso_vhost *vh, unsigned int idx,
				  bool make)
{
	struct vh_queue *q;

	if (idx >= SVQISO_VHOST_MAX_QUEUES)
		return NULL;
	if (idx < vh->nq && vh->q[idx])
		return vh->q[idx];
	if (!make)
		return NULL;
	if (idx >= vh->nq) {
		struct vh_queue **a = realloc(vh->q, (idx + 1) * sizeof(*a));

		if (!a)
			return NULL;
		memset(&a[vh->nq], 0, (idx + 1 - vh->nq) * sizeof(*a));
		vh->q = a;
		vh->nq = idx + 1;
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->kick_fd = q->call_fd = q->guest_call = -1;
	snprintf(q->name, sizeof(q->name), "%s-q%u", vh->name, idx);
	vh->q[idx] = q;
	return q;
}

static const struct vh_queue *find_queue(const struct svqiso_vhost *vh,
					 unsigned int idx)
{
	return vh && idx < vh->nq ? vh->q[idx] : NULL;
}

/* ---- dirty logging ---- */

/* Whether svqiso logs now: a log is set and the guest side acked LOG_ALL. */
static bool dirty_on(const struct svqiso_vhost *vh)
{
	return vh->dirty.sz && (vh->guest_acked & SVQ_F_BIT(SVQ_F_LOG_ALL));
}

static void dirty_apply(struct svqiso_vhost *vh, struct vh_queue *q)
{
	if (q && q->svq)
		svqiso_svq_set_dirty_log(q->svq, dirty_on(vh) ? &vh->dirty : NULL);
}

static void dirty_apply_all(struct svqiso_vhost *vh)
{
	unsigned int i;

	for (i = 0; i < vh->nq; i++)
		dirty_apply(vh, vh->q[i]);
}

int svqiso_vhost_set_dirty_log(struct svqiso_vhost *vh,
			       const struct svqiso_dirty_log *log)
{
	if (!vh)
		return -EINVAL;
	if (log) {
		if (!svq_dirty_log_ok(log))
			return -EINVAL;
		vh->dirty = *log;
		vh->dirty.sz = sizeof(vh->dirty);
	} else {
		memset(&vh->dirty, 0, sizeof(vh->dirty));
	}
	dirty_apply_all(vh);
	return 0;
}

/* ---- negotiation ---- */

uint64_t svqiso_vhost_guest_features(struct svqiso_vhost *vh,
				     uint64_t backend_offered)
{
	uint64_t masked, offer = svq_feat_guest(backend_offered, &masked);
	unsigned int bit;

	/* svqiso logs its own writes: the backend writes no guest RAM. */
	offer |= SVQ_F_BIT(SVQ_F_LOG_ALL);
	masked &= ~SVQ_F_BIT(SVQ_F_LOG_ALL);
	if (!vh)
		return offer;
	masked &= ~vh->masked_logged;
	for (bit = 0; bit < 64; bit++)
		if (masked & (1ull << bit))
			svq_log(vh->log, vh->log_ctx, SVQISO_LOG_INFO,
				"%s: not offering feature bit %u to the guest: "
				"a transport feature svqiso does not implement",
				vh->name, bit);
	vh->masked_logged |= masked;
	return offer;
}

static uint32_t shadow_policy(const struct svqiso_vhost *vh)
{
	uint32_t s = 0;

	if (vh->flags & SVQISO_VHOST_F_NO_INDIRECT)
		s |= SVQ_FEAT_NO_INDIRECT;
	if (vh->flags & SVQISO_VHOST_F_NO_EVENT_IDX)
		s |= SVQ_FEAT_NO_EVENT_IDX;
	if (vh->shadow_layout == SVQISO_LAYOUT_PACKED)
		s |= SVQ_FEAT_SHADOW_PACKED;
	return s;
}

uint64_t svqiso_vhost_backend_features(const struct svqiso_vhost *vh,
				       uint64_t guest_acked,
				       uint64_t backend_offered)
{
	if (!vh)
		return 0;
	return svq_feat_backend(guest_acked, backend_offered, shadow_policy(vh));
}

uint64_t svqiso_vhost_protocol_features(struct svqiso_vhost *vh,
					uint64_t offered)
{
	if (!vh)
		return offered & SVQ_PROTO_ISOLATION_OK;
	return svq_feat_protocol(offered, SVQ_PROTO_ISOLATION_OK, vh->log,
				 vh->log_ctx, vh->name, NULL);
}

static bool any_running(const struct svqiso_vhost *vh)
{
	unsigned int i;

	for (i = 0; i < vh->nq; i++)
		if (vh->q[i] && (vh->q[i]->state == VH_RUNNING ||
				 vh->q[i]->state == VH_STOPPING))
			return true;
	return false;
}

int svqiso_vhost_set_features(struct svqiso_vhost *vh, uint64_t guest_acked,
			      uint64_t backend_acked)
{
	if (!vh)
		return -EINVAL;
	if ((guest_acked ^ backend_acked) & ~SVQ_F_TRANSPORT)
		return -EINVAL;
	if (vh->shadow_layout == SVQISO_LAYOUT_PACKED &&
	    !(backend_acked & SVQ_F_BIT(SVQ_F_RING_PACKED)))
		return -EINVAL;
	if (vh->features_set &&
	    !((guest_acked ^ vh->guest_acked) & ~SVQ_F_BIT(SVQ_F_LOG_ALL)) &&
	    backend_acked == vh->backend_acked) {
		/* Dirty logging switched on or off: allowed at any time. */
		vh->guest_acked = guest_acked;
		dirty_apply_all(vh);
		return 0;
	}
	if (any_running(vh))
		return -EBUSY;
	vh->guest_acked = guest_acked;
	vh->backend_acked = backend_acked;
	vh->features_set = true;
	dirty_apply_all(vh);
	return 0;
}

/* ---- memory ---- */

int svqiso_vhost_set_guest_mem(struct svqiso_vhost *vh,
			       const struct svqiso_mem_region *regions,
			       unsigned int n)
{
	unsigned int i;
	int rc;

	if (!vh)
		return -EINVAL;
	rc = svqiso_mem_set_regions(vh->mem, regions, n);
	if (rc)
		return rc;
	for (i = 0; i < vh->nq; i++) {
		struct vh_queue *q = vh->q[i];

		/* A stopped queue finds its ring when it starts again. */
		if (q && (q->state == VH_RUNNING || q->state == VH_STOPPING) &&
		    !svqiso_svq_is_broken(q->svq))
			svqiso_svq_remap(q->svq);	/* logs a ring gone */
	}
	return 0;
}

int svqiso_vhost_vmm_to_gpa(const struct svqiso_vhost *vh, uint64_t hva,
			    uint64_t len, uint64_t *gpa)
{
	struct svqiso_mem_region r;
	unsigned int i, n;

	if (!vh || !gpa || !len)
		return -EINVAL;
	n = svqiso_mem_nr_regions(vh->mem);
	for (i = 0; i < n; i++) {
		uint64_t base;

		svqiso_mem_get_region(vh->mem, i, &r);
		base = (uintptr_t)r.hva;
		if (hva - base < r.size) {
			if (len > r.size - (hva - base))
				return -EFAULT;
			*gpa = r.gpa + (hva - base);
			return 0;
		}
	}
	return -EFAULT;
}

int svqiso_vhost_ring_to_gpa(const struct svqiso_vhost *vh,
			     const struct svqiso_vring_addr *hva, uint16_t num,
			     uint8_t layout, struct svqiso_vring_addr *gpa)
{
	bool packed = layout == SVQISO_LAYOUT_PACKED;
	struct svqiso_vring_addr g;
	int rc;

	if (!vh || !hva || !gpa || !num || layout >= SVQISO_NR_LAYOUTS)
		return -EINVAL;
	rc = svqiso_vhost_vmm_to_gpa(vh, hva->desc, 16ull * num, &g.desc);
	if (!rc)
		rc = svqiso_vhost_vmm_to_gpa(vh, hva->driver,
					     packed ? 4 : 6 + 2ull * num, &g.driver);
	if (!rc)
		rc = svqiso_vhost_vmm_to_gpa(vh, hva->device,
					     packed ? 4 : 6 + 8ull * num, &g.device);
	if (!rc)
		*gpa = g;
	return rc;
}

/* The bounce arena of queue @q, made on first use. */
static int queue_pool(struct svqiso_vhost *vh, struct vh_queue *q)
{
	SVQISO_OPTS(svqiso_arena_opts, ao, .size = vh->pool_size);

	if (q->pool)
		return 0;
	return svqiso_pool_new_arena(vh->iso, &ao, &q->pool);
}

int svqiso_vhost_reserve(struct svqiso_vhost *vh, unsigned int nqueues)
{
	struct svqiso_region area;
	unsigned int i;
	int rc;

	if (!vh || nqueues > SVQISO_VHOST_MAX_QUEUES)
		return -EINVAL;
	for (i = 0; i < nqueues; i++) {
		struct vh_queue *q = get_queue(vh, i, true);

		if (!q)
			return -ENOMEM;
		rc = ring_area(vh, i, &area);
		if (!rc)
			rc = queue_pool(vh, q);
		if (rc)
			return rc;
	}
	return 0;
}

unsigned int svqiso_vhost_nr_regions(const struct svqiso_vhost *vh)
{
	return vh ? svqiso_iso_nr_regions(vh->iso) : 0;
}

int svqiso_vhost_get_region(const struct svqiso_vhost *vh, unsigned int i,
			    struct svqiso_region *r)
{
	if (!vh || !r)
		return -EINVAL;
	return svqiso_iso_get_region(vh->iso, i, r);
}

/* ---- queues ---- */

static bool same_ring(const struct svqiso_vhost_vring *a,
		      const struct svqiso_vhost_vring *b)
{
	return a->num == b->num && a->layout == b->layout &&
	       a->ring.desc == b->ring.desc && a->ring.driver == b->ring.driver &&
	       a->ring.device == b->ring.device;
}

static uint32_t fresh_base(uint8_t layout)
{
	return layout == SVQISO_LAYOUT_PACKED ? SVQISO_PACKED_FRESH_BASE : 0;
}

/* A new svq for @q over @vring, replacing the one it had. */
static int queue_new_svq(struct svqiso_vhost *vh, unsigned int idx,
			 struct vh_queue *q,
			 const struct svqiso_vhost_vring *vring,
			 uint32_t gfeat, uint32_t sfeat)
{
	struct svqiso_region area;
	bool shared = vring->num <= vh->max_num;
	struct svqiso_svq *svq;
	int rc;

	if (shared) {
		rc = ring_area(vh, idx, &area);
		if (rc)
			return rc;
		/* Its place is the old ring's: that one goes first. */
		if (q->shared_area) {
			svqiso_svq_free(q->svq);
			q->svq = NULL;
		}
	}
	{
		SVQISO_OPTS(svqiso_svq_opts, so,
			    .flags = (vh->flags & SVQISO_VHOST_F_PRESERVE ?
				      SVQISO_SVQ_F_PRESERVE : 0) |
				     (vh->flags & SVQISO_VHOST_F_LAZY_KICKS ?
				      SVQISO_SVQ_F_LAZY_KICKS : 0) |
				     (vh->flags & SVQISO_VHOST_F_NO_ONEOFF ?
				      SVQISO_SVQ_F_NO_ONEOFF : 0),
			    .num = vring->num, .guest_layout = vring->layout,
			    .shadow_layout = vh->shadow_layout,
			    .guest_features = gfeat, .shadow_features = sfeat,
			    .copy = vh->copy, .guest_ring = vring->ring,
			    .guest_mem = svqiso_mem_ops(), .guest_mem_ctx = vh->mem,
			    .iso = vh->iso, .pool = q->pool,
			    .log = vh->log, .log_ctx = vh->log_ctx,
			    .name = q->name, .batch_bytes = vh->batch_bytes,
			    .ring_area = shared ? &area : NULL,
			    .oneoff_max = vh->oneoff_max);

		rc = svqiso_svq_new(&so, &svq);
	}
	if (!rc && vring->base != fresh_base(vring->layout)) {
		rc = svqiso_svq_reset(svq, vring->base);
		if (rc)
			svqiso_svq_free(svq);
	}
	if (rc)
		return rc;
	/*
	 * A ring of its own: the old one went only now, after the new one
	 * was made, so a backend that maps every ring it knows whenever a
	 * region comes (libvhost-user does) never meets one whose region
	 * is gone.
	 */
	svqiso_svq_free(q->svq);
	q->svq = svq;
	dirty_apply(vh, q);
	q->stale = false;
	q->shared_area = shared;
	q->gfeat = gfeat;
	q->sfeat = sfeat;
	return 0;
}

int svqiso_vhost_queue_start(struct svqiso_vhost *vh, unsigned int idx,
			     const struct svqiso_vhost_vring *vring,
			     struct svqiso_vhost_shadow *shadow)
{
	struct svqiso_vhost_shadow out = { .sz = sizeof(out) };
	uint32_t gfeat, sfeat;
	struct vh_queue *q;
	bool packed, same;
	int rc, reposted = 0;
	size_t sz;

	if (!vh || !vring || !shadow || !SVQ_OPTS_OK(svqiso_vhost_vring, vring) ||
	    vring->sz < svq_offsetofend(svqiso_vhost_vring, base) ||
	    shadow->sz < svq_offsetofend(svqiso_vhost_shadow, call_fd) ||
	    idx >= SVQISO_VHOST_MAX_QUEUES || !vh->features_set ||
	    vring->layout >= SVQISO_NR_LAYOUTS || !vring->num)
		return -EINVAL;
	packed = vh->guest_acked & SVQ_F_BIT(SVQ_F_RING_PACKED);
	if (packed != (vring->layout == SVQISO_LAYOUT_PACKED))
		return -EINVAL;
	q = get_queue(vh, idx, true);
	if (!q)
		return -ENOMEM;
	if (q->state == VH_RUNNING || q->state == VH_STOPPING)
		return -EBUSY;

	gfeat = svq_feat_ring_flags(vh->guest_acked);
	sfeat = svq_feat_ring_flags(vh->backend_acked);
	rc = new_eventfd(&q->kick_fd);
	if (!rc)
		rc = new_eventfd(&q->call_fd);
	if (!rc)
		rc = queue_pool(vh, q);
	if (rc)
		goto err;

	same = q->svq && !q->stale && same_ring(&q->cfg, vring) &&
	       q->gfeat == gfeat && q->sfeat == sfeat;
	if (same && q->state == VH_KEPT && vring->base == q->kept_base &&
	    !svqiso_svq_remap(q->svq)) {
		/* The new backend takes what the old one lost. */
		reposted = svqiso_svq_repost(q->svq);
		rc = reposted < 0 ? reposted : 0;
	} else if (same) {
		if (q->state == VH_KEPT && svqiso_svq_in_flight(q->svq))
			svq_log(vh->log, vh->log_ctx, SVQISO_LOG_WARN,
				"%s: started at base %#x, not %#x: the guest reset its ring; %u requests the backend lost are dropped",
				q->name, vring->base, q->kept_base,
				svqiso_svq_in_flight(q->svq));
		/* A fresh shadow ring in place; the guest ring at its base. */
		rc = svqiso_svq_reset(q->svq, vring->base);
	} else {
		rc = queue_new_svq(vh, idx, q, vring, gfeat, sfeat);
	}
	if (!rc)
		rc = svqiso_svq_pause(q->svq, false);
	if (rc)
		goto err;

	q->cfg = *vring;
	q->cfg.sz = sizeof(q->cfg);
	q->state = VH_RUNNING;
	drain_fd(q->call_fd);
	svqiso_svq_get_shadow(q->svq, &out.ring);
	out.kick_fd = q->kick_fd;
	out.call_fd = q->call_fd;
	out.reposted = (unsigned int)reposted;
	sz = shadow->sz < sizeof(out) ? shadow->sz : sizeof(out);
	memcpy((uint8_t *)shadow + sizeof(size_t), (uint8_t *)&out + sizeof(size_t),
	       sz - sizeof(size_t));
	if (reposted)
		svq_log(vh->log, vh->log_ctx, SVQISO_LOG_INFO,
			"%s: %d requests the last backend held posted again",
			q->name, reposted);
	return 0;
err:
	/* Kept requests stay kept: a start that fails changes nothing. */
	if (q->state != VH_KEPT)
		q->state = VH_IDLE;
	svq_log(vh->log, vh->log_ctx, SVQISO_LOG_ERR, "%s: start failed: %s",
		q->name, strerror(-rc));
	return rc;
}

int svqiso_vhost_queue_set_call(struct svqiso_vhost *vh, unsigned int idx,
				int fd)
{
	struct vh_queue *q;

	if (!vh || fd < -1 || (fd >= 0 && fcntl(fd, F_GETFD) < 0))
		return -EINVAL;
	q = get_queue(vh, idx, true);
	if (!q)
		return idx >= SVQISO_VHOST_MAX_QUEUES ? -EINVAL : -ENOMEM;
	q->guest_call = fd;
	return 0;
}

/* Notifications from both peers back on, if the VMM had them off. */
static void queue_busy_off(struct vh_queue *q)
{
	if (q->busy && q->svq)
		svqiso_svq_set_busy_poll(q->svq, false);
	q->busy = false;
}

/* Write the eventfds a handler's @mask asks for. */
static int queue_signal(struct vh_queue *q, int mask)
{
	if (mask < 0)
		return -EIO;
	if (mask & SVQISO_SIGNAL_BACKEND)
		signal_fd(q->kick_fd);
	if (mask & SVQISO_SIGNAL_GUEST)
		signal_fd(q->guest_call);
	return mask;
}

/*
 * Run a handler until it has nothing left, signalling what each call asks
 * for as it comes (a call that stops at batch_bytes returns
 * SVQISO_SIGNAL_AGAIN). Return: what was asked for, without AGAIN; -EIO.
 */
static int queue_run(struct vh_queue *q, int (*handler)(struct svqiso_svq *))
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

int svqiso_vhost_queue_kick(struct svqiso_vhost *vh, unsigned int idx)
{
	struct vh_queue *q = (struct vh_queue *)find_queue(vh, idx);

	if (!q || q->state != VH_RUNNING)
		return -EINVAL;
	return queue_run(q, svqiso_svq_process_avail);
}

int svqiso_vhost_queue_process(struct svqiso_vhost *vh, unsigned int idx)
{
	struct vh_queue *q = (struct vh_queue *)find_queue(vh, idx);
	uint64_t v;
	ssize_t n;

	if (!q || (q->state != VH_RUNNING && q->state != VH_STOPPING))
		return -EINVAL;
	/* Before collecting, so a call made meanwhile stays pending. One read
	 * resets a (non-semaphore) eventfd; EAGAIN: a spurious wake-up. */
	n = read(q->call_fd, &v, sizeof(v));
	(void)n;
	return queue_run(q, svqiso_svq_process_used);
}

int svqiso_vhost_queue_poll(struct svqiso_vhost *vh, unsigned int idx)
{
	struct vh_queue *q = (struct vh_queue *)find_queue(vh, idx);
	int used, avail = 0;
	uint64_t moved;

	if (!q || (q->state != VH_RUNNING && q->state != VH_STOPPING))
		return -EINVAL;
	moved = svq_moved(q->svq);
	used = queue_run(q, svqiso_svq_process_used);
	if (used < 0)
		return used;
	if (q->state == VH_RUNNING)
		avail = queue_run(q, svqiso_svq_process_avail);
	if (avail < 0)
		return avail;
	/* A guest that wants no interrupt and a backend that wants no kick
	 * (both polling) move requests that ask for no signal. */
	return used | avail |
	       (svq_moved(q->svq) != moved ? SVQISO_SIGNAL_MOVED : 0);
}

int svqiso_vhost_queue_set_busy_poll(struct svqiso_vhost *vh,
				     unsigned int idx, bool on)
{
	struct vh_queue *q = (struct vh_queue *)find_queue(vh, idx);
	int rc;

	if (!q || (on && q->state != VH_RUNNING))
		return -EINVAL;
	if (!on) {
		queue_busy_off(q);
		return 0;
	}
	rc = svqiso_svq_set_busy_poll(q->svq, true);
	if (rc)
		return rc;
	q->busy = true;
	return 0;
}

/*
 * Complete what the svq has in flight, for at most @timeout_ms. With
 * @settle (before GET_VRING_BASE), only until completions stop for
 * VH_QUIET_MS with the backend holding nothing as far as it tells
 * (svqiso_svq_backend_taken()): some backends cannot complete a request
 * after GET_VRING_BASE (qemu-storage-daemon's libvhost-user gives up on the
 * session when it writes the call fd it closed there), while requests a
 * backend never took, such as posted net RX buffers, may never complete. A
 * backend past GET_VRING_BASE may no longer signal, so the used ring is
 * polled in short slices too. Return: 0, -ETIMEDOUT, -ECONNRESET, -EIO.
 */
static int queue_wait(struct vh_queue *q, bool settle, int timeout_ms,
		      int hup_fd)
{
	int64_t deadline = now_ms() + timeout_ms;
	int64_t quiet_until = now_ms() + VH_QUIET_MS;
	unsigned int last = UINT_MAX, n;
	struct pollfd pfd[2] = {
		{ .fd = q->call_fd, .events = POLLIN },
		{ .fd = hup_fd, .events = POLLRDHUP },
	};

	for (;;) {
		int64_t left;

		drain_fd(q->call_fd);
		if (queue_run(q, svqiso_svq_process_used) < 0)
			return -EIO;
		/* What a rewind kept is on no ring: nothing to wait for. */
		n = svqiso_svq_in_flight(q->svq) - svq_kept(q->svq);
		if (!n)
			return 0;
		if (settle) {
			int taken;

			if (n < last) {
				last = n;
				quiet_until = now_ms() + VH_QUIET_MS;
			} else if (now_ms() >= quiet_until) {
				/* Quiet, and holding nothing as far as it says. */
				taken = svqiso_svq_backend_taken(q->svq);
				if (taken == 0 || taken == -ENODATA)
					return 0;
			}
		}
		/* A backend that hung up completes nothing more. */
		if (hup_fd >= 0 &&
		    (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
			return -ECONNRESET;
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		poll(pfd, 2, left < 10 ? (int)left : 10);
	}
}

int svqiso_vhost_queue_drain(struct svqiso_vhost *vh, unsigned int idx,
			     int timeout_ms, int hup_fd)
{
	struct vh_queue *q = (struct vh_queue *)find_queue(vh, idx);
	int rc;

	if (!q || q->state != VH_RUNNING || timeout_ms < 0)
		return -EINVAL;
	queue_busy_off(q);	/* the wait below wants the backend's calls */
	svqiso_svq_pause(q->svq, true);
	rc = queue_wait(q, true, timeout_ms, hup_fd);
	if (rc == -ETIMEDOUT)
		svq_log(vh->log, vh->log_ctx, SVQISO_LOG_WARN,
			"%s: %u requests still in flight after %d ms: the backend "
			"has not completed them; the queue takes nothing new",
			q->name, svqiso_svq_in_flight(q->svq), timeout_ms);
	return rc;
}

/* Stop @q keeping what it holds for the next backend. */
static void queue_keep(struct vh_queue *q)
{
	queue_busy_off(q);
	svqiso_svq_pause(q->svq, true);
	svqiso_svq_guest_base(q->svq, &q->kept_base);
	q->state = VH_KEPT;
}

int svqiso_vhost_queue_stop(struct svqiso_vhost *vh, unsigned int idx,
			    uint32_t shadow_base, int timeout_ms, int hup_fd,
			    uint32_t *guest_base)
{
	struct vh_queue *q = (struct vh_queue *)find_queue(vh, idx);
	int rc, given;

	if (!q || !guest_base || timeout_ms < 0 ||
	    (q->state != VH_RUNNING && q->state != VH_STOPPING))
		return -EINVAL;
	if (q->state == VH_RUNNING) {
		queue_busy_off(q);
		svqiso_svq_pause(q->svq, true);
		given = svqiso_svq_rewind(q->svq, shadow_base);
		if (given < 0) {
			/* Broken, or a base that lies (logged by the svq):
			 * what was in flight goes with the queue. */
			q->state = VH_IDLE;
			svqiso_svq_guest_base(q->svq, guest_base);
			return -EIO;
		}
		svq_log(vh->log, vh->log_ctx, SVQISO_LOG_DEBUG,
			"%s: backend stopped at %#x; %d requests given back, %u held",
			q->name, shadow_base, given, svqiso_svq_in_flight(q->svq));
		q->state = VH_STOPPING;
	}
	/* Only for what the backend holds. */
	rc = queue_wait(q, false, timeout_ms, hup_fd);
	svqiso_svq_guest_base(q->svq, guest_base);
	switch (rc) {
	case 0:
		if (svq_kept(q->svq)) {
			/* Posted again for a lost backend, not taken by this
			 * one: never given back (see svqiso_svq_rewind()),
			 * posted again by a start at this base. */
			queue_keep(q);
			*guest_base = q->kept_base;
			svq_log(vh->log, vh->log_ctx, SVQISO_LOG_INFO,
				"%s: stopped: %u requests a lost backend held are kept for the next start at guest base %#x",
				q->name, svq_kept(q->svq), *guest_base);
			break;
		}
		q->state = VH_IDLE;
		svq_log(vh->log, vh->log_ctx, SVQISO_LOG_DEBUG,
			"%s: stopped: guest base %#x", q->name, *guest_base);
		break;
	case -ETIMEDOUT:
		svq_log(vh->log, vh->log_ctx, SVQISO_LOG_WARN,
			"%s: the backend still holds %u requests after %d ms",
			q->name, svqiso_svq_in_flight(q->svq), timeout_ms);
		break;	/* stopping: call again, or give up on the backend */
	case -ECONNRESET:
		svq_log(vh->log, vh->log_ctx, SVQISO_LOG_ERR,
			"%s: the backend hung up holding %u requests; they are kept for the next one",
			q->name, svqiso_svq_in_flight(q->svq));
		queue_keep(q);
		*guest_base = q->kept_base;
		break;
	default:
		q->state = VH_IDLE;
		break;
	}
	return rc;
}

int svqiso_vhost_queue_backend_lost(struct svqiso_vhost *vh, unsigned int idx,
				    uint32_t *guest_base)
{
	struct vh_queue *q = (struct vh_queue *)find_queue(vh, idx);
	unsigned int n;

	if (!q || !q->svq || !guest_base)
		return -EINVAL;
	if (q->state == VH_IDLE) {
		svqiso_svq_guest_base(q->svq, guest_base);
		return 0;
	}
	if (q->state != VH_KEPT)
		queue_keep(q);
	n = svqiso_svq_in_flight(q->svq);
	*guest_base = q->kept_base;
	if (n)
		svq_log(vh->log, vh->log_ctx, SVQISO_LOG_WARN,
			"%s: backend lost holding %u requests: kept for the next backend (guest base %#x)",
			q->name, n, q->kept_base);
	return (int)n;
}

int svqiso_vhost_queue_reset(struct svqiso_vhost *vh, unsigned int idx)
{
	struct vh_queue *q = (struct vh_queue *)find_queue(vh, idx);

	if (!vh || idx >= SVQISO_VHOST_MAX_QUEUES)
		return -EINVAL;
	if (!q)
		return 0;
	/*
	 * The guest sets its ring up afresh: a new svq at the next start. The
	 * old one, and what it held, stays until then: a ring in a region of
	 * its own goes only once the backend has the new ring's address.
	 */
	queue_busy_off(q);
	if (q->svq)
		svqiso_svq_pause(q->svq, true);
	q->stale = true;
	q->state = VH_IDLE;
	return 0;
}

bool svqiso_vhost_queue_running(const struct svqiso_vhost *vh, unsigned int idx)
{
	const struct vh_queue *q = find_queue(vh, idx);

	return q && (q->state == VH_RUNNING || q->state == VH_STOPPING);
}

unsigned int svqiso_vhost_queue_in_flight(const struct svqiso_vhost *vh,
					  unsigned int idx)
{
	const struct vh_queue *q = find_queue(vh, idx);

	return q && q->state != VH_IDLE ? svqiso_svq_in_flight(q->svq) : 0;
}

const char *svqiso_vhost_queue_broken(const struct svqiso_vhost *vh,
				      unsigned int idx)
{
	const struct vh_queue *q = find_queue(vh, idx);

	return q && q->svq ? svqiso_svq_broken_reason(q->svq) : NULL;
}

int svqiso_vhost_queue_stats(const struct svqiso_vhost *vh, unsigned int idx,
			     struct svqiso_svq_stats *st)
{
	const struct vh_queue *q = find_queue(vh, idx);

	if (!vh || !st || idx >= SVQISO_VHOST_MAX_QUEUES)
		return -EINVAL;
	if (!q || !q->svq)
		return -ENOENT;
	return svqiso_svq_get_stats(q->svq, st);
}

/* ---- for the adapters in this library (engine.h) ---- */

struct svqiso_svq *svq_vh_svq(const struct svqiso_vhost *vh, unsigned int idx)
{
	const struct vh_queue *q = find_queue(vh, idx);

	return q ? q->svq : NULL;
}

int svq_vh_fds(const struct svqiso_vhost *vh, unsigned int idx,
	       struct svq_vh_fds *fds)
{
	const struct vh_queue *q = find_queue(vh, idx);

	if (!q)
		return -ENOENT;
	fds->kick = q->kick_fd;
	fds->call = q->call_fd;
	fds->guest_call = q->guest_call;
	return 0;
}

struct svqiso_mem *svq_vh_mem(const struct svqiso_vhost *vh)
{
	return vh->mem;
}
