/* SPDX-License-Identifier: MIT */
/*
 * Shadow virtqueue lifecycle: opts validation, the shadow ring in isolated
 * memory, the broken state, reset and counters.
 */
#include <stdio.h>
#include <stdlib.h>
#include "svq_priv.h"
#include "chain.h"

#if defined(__LP64__)
_Static_assert(sizeof(struct svqiso_svq_opts) == 168, "svqiso_svq_opts is append-only");
_Static_assert(sizeof(struct svqiso_svq_stats) == 160, "svqiso_svq_stats is append-only");
_Static_assert(sizeof(struct svqiso_dirty_log) == 40, "svqiso_dirty_log is append-only");
#endif

#define DEFAULT_MAX_SEGS 128
#define AREA_ALIGN 64

int svq_fail(struct svqiso_svq *svq, bool logged, const char *fmt, ...)
{
	va_list ap;

	if (svq->broken)
		return -EIO;
	va_start(ap, fmt);
	vsnprintf(svq->reason, sizeof(svq->reason), fmt, ap);
	va_end(ap);
	svq->broken = true;
	svq->st.errors++;
	if (!logged)
		svq_log(svq->log, svq->log_ctx, SVQISO_LOG_ERR, "%s", svq->reason);
	return -EIO;
}

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Offsets of the shadow ring areas and indirect tables in ring_region. */
struct ring_layout {
	size_t desc, driver, device, tables, size;
};

static void shadow_layout(uint8_t layout, uint16_t num, uint16_t max_segs,
			  struct ring_layout *l)
{
	size_t desc_sz, drv_sz, dev_sz;

	if (layout == SVQISO_LAYOUT_SPLIT) {
		desc_sz = svq_split_desc_size(num);
		drv_sz = svq_split_avail_size(num);
		dev_sz = svq_split_used_size(num);
	} else {
		desc_sz = svq_packed_desc_size(num);
		drv_sz = SVQ_PACKED_EVENT_SIZE;
		dev_sz = SVQ_PACKED_EVENT_SIZE;
	}
	l->desc = 0;
	l->driver = align_up(l->desc + desc_sz, AREA_ALIGN);
	l->device = align_up(l->driver + drv_sz, AREA_ALIGN);
	l->tables = align_up(l->device + dev_sz, AREA_ALIGN);
	l->size = l->tables + (size_t)num * max_segs * 16;
}

uint64_t svqiso_svq_ring_size(uint8_t layout, uint16_t num, uint16_t max_segs)
{
	struct ring_layout l;

	if ((layout != SVQISO_LAYOUT_SPLIT && layout != SVQISO_LAYOUT_PACKED) ||
	    !num || num > SVQ_RING_MAX ||
	    (layout == SVQISO_LAYOUT_SPLIT && (num & (num - 1))))
		return 0;
	shadow_layout(layout, num, max_segs ? max_segs : DEFAULT_MAX_SEGS, &l);
	return l.size;
}

/* No slot keeps a table or a buffer of the ring laid out before. */
static void shadow_slots_init(struct svqiso_svq *svq)
{
	uint16_t i;

	for (i = 0; i < svq->num; i++) {
		svq->slot[i].table = SVQ_NO_TABLE;
		svq->slot[i].buf.len = 0;
		svq->free_tables[i] = i;
	}
	svq->nr_free_tables = svq->num;
}

static int shadow_init(struct svqiso_svq *svq)
{
	shadow_slots_init(svq);
	return svq_drv_init(&svq->shadow, &svq->shadow_cfg);
}

static bool layout_ok(uint8_t layout)
{
	return layout == SVQISO_LAYOUT_SPLIT || layout == SVQISO_LAYOUT_PACKED;
}

static int alloc_reqs(struct svq_req *r, unsigned int n, uint16_t max_segs)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		r[i].seg = calloc(max_segs, sizeof(*r[i].seg));
		if (!r[i].seg)
			return -ENOMEM;
		r[i].table = SVQ_NO_TABLE;
	}
	return 0;
}

static void free_reqs(struct svq_req *r, unsigned int n)
{
	unsigned int i;

	if (!r)
		return;
	for (i = 0; i < n; i++)
		free(r[i].seg);
	free(r);
}

int svqiso_svq_new(const struct svqiso_svq_opts *opts, struct svqiso_svq **out)
{
	const uint32_t all_flags = SVQISO_SVQ_F_ELEMENT | SVQISO_SVQ_F_PRESERVE |
				   SVQISO_SVQ_F_LAZY_KICKS | SVQISO_SVQ_F_NO_ONEOFF;
	const uint32_t all_features = SVQISO_RING_F_EVENT_IDX | SVQISO_RING_F_INDIRECT;
	svqiso_log_fn log = SVQ_OPTS_GET(opts, log, NULL);
	void *log_ctx = SVQ_OPTS_GET(opts, log_ctx, NULL);
	struct svqiso_svq *svq;
	struct ring_layout l;
	int err;

	if (!opts || !out)
		return -EINVAL;
	if (!SVQ_OPTS_CHECK(svqiso_svq_opts, opts, log, log_ctx))
		return -EINVAL;
	if (opts->flags & ~all_flags)
		return svq_einval(log, log_ctx, "svqiso_svq_new: unknown flags "
				  "%#x", opts->flags & ~all_flags);
	if ((opts->guest_features | opts->shadow_features) & ~all_features)
		return svq_einval(log, log_ctx, "svqiso_svq_new: unknown ring "
				  "features %#x",
				  (opts->guest_features | opts->shadow_features) &
				  ~all_features);
	if (!opts->iso)
		return svq_einval(log, log_ctx, "svqiso_svq_new: no iso for "
				  "the shadow ring and the bounce buffers");
	if (!layout_ok(opts->shadow_layout))
		return svq_einval(log, log_ctx, "svqiso_svq_new: shadow_layout "
				  "%u is no ring layout", opts->shadow_layout);
	if (opts->num == 0 || opts->num > SVQ_RING_MAX)
		return svq_einval(log, log_ctx, "svqiso_svq_new: num %u is not "
				  "in 1..%u", opts->num, SVQ_RING_MAX);
	if (opts->flags & SVQISO_SVQ_F_ELEMENT) {
		if (!opts->complete)
			return svq_einval(log, log_ctx, "svqiso_svq_new: element "
					  "mode without a complete callback");
	} else if (!opts->guest_mem) {
		return svq_einval(log, log_ctx, "svqiso_svq_new: ring mode "
				  "without guest_mem");
	} else if (!layout_ok(opts->guest_layout)) {
		return svq_einval(log, log_ctx, "svqiso_svq_new: guest_layout "
				  "%u is no ring layout", opts->guest_layout);
	}
	if ((opts->shadow_layout == SVQISO_LAYOUT_SPLIT ||
	     (!(opts->flags & SVQISO_SVQ_F_ELEMENT) &&
	      opts->guest_layout == SVQISO_LAYOUT_SPLIT)) &&
	    (opts->num & (opts->num - 1)))
		return svq_einval(log, log_ctx, "svqiso_svq_new: num %u: a "
				  "split ring's size is a power of two",
				  opts->num);

	svq = calloc(1, sizeof(*svq));
	if (!svq)
		return -ENOMEM;
	svq->flags = opts->flags;
	svq->num = opts->num;
	svq->max_segs = opts->max_segs ? opts->max_segs : DEFAULT_MAX_SEGS;
	svq->element_mode = opts->flags & SVQISO_SVQ_F_ELEMENT;
	svq->preserve = opts->flags & SVQISO_SVQ_F_PRESERVE;
	svq->lazy_kicks = (opts->flags & SVQISO_SVQ_F_LAZY_KICKS) &&
			  !(opts->flags & SVQISO_SVQ_F_ELEMENT);
	svq->name = SVQ_OPTS_GET(opts, name, NULL) ? opts->name : "svq";
	if (!svq->element_mode)
		svq->batch_bytes = SVQ_OPTS_GET(opts, batch_bytes, 0);
	svq->log = log;
	svq->log_ctx = log_ctx;
	svq->complete = opts->complete;
	svq->complete_ctx = opts->complete_ctx;
	svq->giveback = SVQ_OPTS_GET(opts, giveback, NULL);
	svq->giveback_ctx = SVQ_OPTS_GET(opts, giveback_ctx, NULL);
	svq->iso = opts->iso;
	svq->oneoff_iova = SVQ_ONEOFF_NONE;
	svq->no_oneoff = opts->flags & SVQISO_SVQ_F_NO_ONEOFF;
	/* The chain rules already hold a request under 4 GiB. */
	svq->oneoff_max = SVQ_OPTS_GET(opts, oneoff_max, 0);
	if (!svq->oneoff_max || svq->oneoff_max > UINT32_MAX)
		svq->oneoff_max = UINT32_MAX;
	svq->st.sz = sizeof(svq->st);
	svq->ring_region.iova = UINT64_MAX;
	svq->copy = svq_copy_resolve(opts->copy);
	if (!svq->copy) {
		err = svq_einval(log, log_ctx, "svqiso_svq_new: copy %u is no "
				 "copy strategy here", opts->copy);
		goto fail;
	}

	err = -ENOMEM;
	svq->slot = calloc(svq->num, sizeof(*svq->slot));
	svq->shadow_seg = calloc(svq->max_segs, sizeof(*svq->shadow_seg));
	svq->free_tables = calloc(svq->num, sizeof(*svq->free_tables));
	svq->rewind_ids = calloc(svq->num, sizeof(*svq->rewind_ids));
	if (!svq->slot || !svq->shadow_seg || !svq->free_tables ||
	    !svq->rewind_ids ||
	    alloc_reqs(svq->slot, svq->num, svq->max_segs) ||
	    alloc_reqs(&svq->spare, 1, svq->max_segs))
		goto fail;
	if (svq->element_mode) {
		svq->pend = calloc(svq->num, sizeof(*svq->pend));
		if (!svq->pend || alloc_reqs(svq->pend, svq->num, svq->max_segs))
			goto fail;
	}

	/* The shadow ring and its indirect tables: one isolated region, or
	 * the caller's piece of one. */
	shadow_layout(opts->shadow_layout, svq->num, svq->max_segs, &l);
	if (SVQ_OPTS_GET(opts, ring_area, NULL)) {
		const struct svqiso_region *a = opts->ring_area;

		if (a->size < l.size || !a->uaddr || (a->iova & 4095) ||
		    ((uintptr_t)a->uaddr & 4095)) {
			err = -EINVAL;
			goto fail;
		}
		svq->ring_region = *a;
	} else {
		err = svqiso_iso_region_new(svq->iso, l.size, &svq->ring_region);
		if (err) {
			svq->ring_region.iova = UINT64_MAX;
			goto fail;
		}
		svq->own_ring_region = true;
	}
	svq->shadow_cfg = (struct svq_drv_cfg){
		.layout = opts->shadow_layout,
		.num = svq->num,
		.flags = opts->shadow_features,
		.desc = (uint8_t *)svq->ring_region.uaddr + l.desc,
		.driver = (uint8_t *)svq->ring_region.uaddr + l.driver,
		.device = (uint8_t *)svq->ring_region.uaddr + l.device,
		.log = svq->log,
		.log_ctx = svq->log_ctx,
		.name = svq->name,
		/* A polling backend starts on each request as it is
		 * forwarded, not after the whole batch and its copies. */
		.publish_each = true,
	};
	svq->tables = (uint8_t *)svq->ring_region.uaddr + l.tables;
	svq->tables_iova = svq->ring_region.iova + l.tables;
	svq->info = (struct svqiso_shadow_info){
		.layout = opts->shadow_layout,
		.num = svq->num,
		.features = opts->shadow_features,
		/* The driver side starts both wrap counters at 1. */
		.base = opts->shadow_layout == SVQISO_LAYOUT_PACKED ?
			SVQISO_PACKED_FRESH_BASE : 0,
		.iova = {
			.desc = svq->ring_region.iova + l.desc,
			.driver = svq->ring_region.iova + l.driver,
			.device = svq->ring_region.iova + l.device,
		},
		.uaddr = {
			.desc = (uintptr_t)svq->shadow_cfg.desc,
			.driver = (uintptr_t)svq->shadow_cfg.driver,
			.device = (uintptr_t)svq->shadow_cfg.device,
		},
	};
	err = shadow_init(svq);
	if (err)
		goto fail;

	if (!svq->element_mode) {
		svq->guest_cfg = (struct svq_dev_cfg){
			.layout = opts->guest_layout,
			.num = svq->num,
			.flags = opts->guest_features,
			.desc = opts->guest_ring.desc,
			.driver = opts->guest_ring.driver,
			.device = opts->guest_ring.device,
			.mem = opts->guest_mem,
			.mem_ctx = opts->guest_mem_ctx,
			.max_indirect = svq->max_segs,
			.log = svq->log,
			.log_ctx = svq->log_ctx,
			.name = svq->name,
		};
		err = svq_dev_init(&svq->guest, &svq->guest_cfg);
		if (err)
			goto fail;
	}

	if (opts->pool) {
		svq->pool = opts->pool;
	} else {
		err = svqiso_pool_new_arena(svq->iso, NULL, &svq->pool);
		if (err)
			goto fail;
		svq->own_pool = true;
	}
	svq->dirty.log = svq->log;
	svq->dirty.log_ctx = svq->log_ctx;
	svq->dirty.name = svq->name;
	*out = svq;
	return 0;

fail:
	svqiso_svq_free(svq);
	return err;
}

/*
 * Return every bounce buffer and table; complete element-mode requests.
 * A completion callback may submit: with svq->resetting set that only
 * queues the request (nothing reaches a slot this walk has passed or the
 * ring about to be laid out afresh), and only what was held before the
 * first callback is completed here.
 */
static void drop_all(struct svqiso_svq *svq)
{
	uint16_t i, old_pend = svq->pend_len;

	for (i = 0; i < svq->num; i++) {
		struct svq_req *r = &svq->slot[i];

		if (!r->buf.len)
			continue;
		svq_release(svq, r);
		if (svq->element_mode)
			svq->complete(svq->complete_ctx, r->cookie, 0);
	}
	while (old_pend--) {
		struct svq_req *r = &svq->pend[svq->pend_head];

		svq->pend_head = (svq->pend_head + 1) % svq->num;
		svq->pend_len--;
		svq->complete(svq->complete_ctx, r->cookie, 0);
	}
	svq->held = false;
	svq->nkept = 0;
	svq->freed = false;
	svq->avail_again = false;
	svq->kick_owed = false;
}

void svqiso_svq_free(struct svqiso_svq *svq)
{
	uint16_t i;

	if (!svq)
		return;
	/* In-flight buffers go back to the pool silently, as documented;
	 * a one-off region is removed. */
	if (svq->slot && svq->pool)
		for (i = 0; i < svq->num; i++)
			if (svq->slot[i].buf.len)
				svq_buf_put(svq, &svq->slot[i].buf);
	if (svq->own_pool)
		svqiso_pool_free(svq->pool);
	if (!svq->element_mode)
		svq_dev_fini(&svq->guest);
	svq_drv_fini(&svq->shadow);
	if (svq->own_ring_region)
		svqiso_iso_region_free(svq->iso, svq->ring_region.iova);
	free_reqs(svq->slot, svq->num);
	free_reqs(svq->pend, svq->num);
	free(svq->spare.seg);
	free(svq->shadow_seg);
	free(svq->free_tables);
	free(svq->rewind_ids);
	free(svq);
}

int svqiso_svq_get_shadow(const struct svqiso_svq *svq,
			  struct svqiso_shadow_info *info)
{
	if (!svq || !info)
		return -EINVAL;
	*info = svq->info;
	return 0;
}

int svqiso_svq_set_busy_poll(struct svqiso_svq *svq, bool on)
{
	if (svq->broken)
		return -EIO;
	svq->busy_poll = on;
	if (on) {
		if (!svq->element_mode)
			svq_dev_disable_notify(&svq->guest);
		svq_drv_disable_cb(&svq->shadow);
	} else {
		if (!svq->element_mode)
			svq_dev_enable_notify(&svq->guest);
		svq_drv_enable_cb(&svq->shadow);
	}
	return 0;
}

int svqiso_svq_pause(struct svqiso_svq *svq, bool paused)
{
	if (!svq)
		return -EINVAL;
	if (!paused && svq->rewound)
		return -EBUSY;
	svq->paused = paused;
	return 0;
}

int svqiso_svq_backend_taken(const struct svqiso_svq *svq)
{
	if (!svq)
		return -EINVAL;
	if (svq->broken)
		return -EIO;
	return svq_drv_device_taken(&svq->shadow);
}

/*
 * Element mode: hand the VMM back, newest first, what was submitted and not
 * forwarded, then the @n requests svq->rewind_ids names (oldest first).
 */
static int give_back_elements(struct svqiso_svq *svq, int n)
{
	int k, given = 0;

	while (svq->pend_len) {
		svq->pend_len--;
		svq->giveback(svq->giveback_ctx,
			      svq->pend[(svq->pend_head + svq->pend_len) % svq->num].cookie);
		given++;
	}
	for (k = n; k-- > 0; ) {
		struct svq_req *r = &svq->slot[svq->rewind_ids[k]];

		svq_release(svq, r);
		svq->giveback(svq->giveback_ctx, r->cookie);
		given++;
	}
	svq->st.given_back += (uint64_t)given;
	return given;
}

int svqiso_svq_rewind(struct svqiso_svq *svq, uint32_t shadow_base)
{
	int n, k, given = 0;

	if (!svq || (svq->element_mode && !svq->giveback))
		return -EINVAL;
	if (svq->broken)
		return -EIO;
	svq->paused = true;
	svq->rewound = true;
	n = svq_drv_rewind(&svq->shadow, shadow_base, svq->rewind_ids);
	if (n < 0)
		return svq_fail(svq, false,
				"%s: broken: the backend stopped at base %#x, not where requests it has not completed begin",
				svq->name, shadow_base);
	if (svq->element_mode)
		return give_back_elements(svq, n);
	/* Newest first: the chain held for room was popped last, and the
	 * shadow ring took the others in the order they were popped. */
	if (svq->held) {
		if (svq_dev_unpop(&svq->guest, svq->spare.guest_id))
			return svq_fail(svq, false, "%s: broken: cannot give back guest chain %u",
					svq->name, svq->spare.guest_id);
		svq->held = false;
		given++;
	}
	for (k = n; k-- > 0; ) {
		struct svq_req *r = &svq->slot[svq->rewind_ids[k]];

		/*
		 * Posted again for a lost backend: its chain may lie before
		 * chains that completed meanwhile, and moving the guest ring
		 * back over those would take them again. It stays, with every
		 * older one (posted again first), for the next repost; the
		 * newer ones were popped after it, one after another.
		 */
		if (r->carried) {
			svq->nkept = (uint16_t)(svq->nkept + k + 1);
			break;
		}
		if (svq_dev_unpop(&svq->guest, r->guest_id))
			return svq_fail(svq, false, "%s: broken: cannot give back guest chain %u",
					svq->name, r->guest_id);
		svq_release(svq, r);
		given++;
	}
	svq->freed = false;
	svq->avail_again = false;
	svq->st.given_back += (uint64_t)given;
	return given;
}

unsigned int svqiso_svq_in_flight(const struct svqiso_svq *svq)
{
	if (!svq)
		return 0;
	return (unsigned int)svq->shadow.inflight + svq->held + svq->pend_len +
	       svq->nkept;
}

int svqiso_svq_guest_base(const struct svqiso_svq *svq, uint32_t *base)
{
	if (!svq || !base || svq->element_mode)
		return -EINVAL;
	*base = svq_dev_get_base(&svq->guest);
	return 0;
}

bool svqiso_svq_is_broken(const struct svqiso_svq *svq)
{
	return svq->broken;
}

const char *svqiso_svq_broken_reason(const struct svqiso_svq *svq)
{
	return svq->broken ? svq->reason : NULL;
}

int svqiso_svq_reset(struct svqiso_svq *svq, uint32_t guest_base)
{
	int err, ret;

	svq->resetting = true;
	drop_all(svq);
	svq_drv_fini(&svq->shadow);
	err = shadow_init(svq);
	svq->resetting = false;
	if (err) {
		/* No shadow ring: nothing may run until a reset lays one out.
		 * This reason, not one from before the reset. */
		svq->broken = false;
		svq_fail(svq, false, "%s: broken: the shadow ring cannot be laid out again: %d",
			 svq->name, err);
		return err;
	}
	svq->rewound = false;
	svq->broken = false;
	svq->reason[0] = '\0';
	if (svq->pend_len) {
		/* Submitted by a completion callback above: onto the fresh
		 * ring, and the kick they need rides on the next call. */
		ret = svq_drain_avail(svq);
		svq->kick_owed = ret > 0 && (ret & SVQISO_SIGNAL_BACKEND);
	}
	if (!svq->element_mode) {
		svq_dev_fini(&svq->guest);
		svq->guest_cfg.resume = true;
		svq->guest_cfg.base = guest_base;
		err = svq_dev_init(&svq->guest, &svq->guest_cfg);
		if (err) {
			svq_fail(svq, false, "%s: guest ring cannot be attached at base %u: %d",
				 svq->name, guest_base, err);
			return err;
		}
		if (svq->dirty_on)
			svq->guest.dirty = &svq->dirty;
	}
	if (svq->busy_poll)
		svqiso_svq_set_busy_poll(svq, true);
	return 0;
}

/*
 * Find @r's guest segments from @from on in the guest memory as it is now:
 * a request held across a table change keeps its guest addresses, not the
 * host addresses of mappings the VMM may have dropped. A segment must stay
 * whole in one region (it was, in the old table).
 */
static int remap_req(struct svqiso_svq *svq, struct svq_req *r, uint16_t from)
{
	uint16_t k;

	for (k = from; k < r->nseg; k++) {
		struct svq_seg *s = &r->seg[k];
		uint64_t n = s->len;
		void *hva = svq_chain_translate(&svq->guest, s->addr, &n);

		if (!hva || n < s->len)
			return svq_fail(svq, false,
					"%s: broken: request %u: buffer 0x%" PRIx64 " + %" PRIu32
					" is no longer in one region of guest memory",
					svq->name, r->guest_id, s->addr, s->len);
		s->hva = hva;
	}
	return 0;
}

int svqiso_svq_remap(struct svqiso_svq *svq)
{
	uint16_t i;
	int err;

	if (!svq || svq->element_mode)
		return -EINVAL;
	if (svq->broken)
		return -EIO;
	err = svq_dev_remap(&svq->guest, &svq->guest_cfg);
	if (err)
		return svq_fail(svq, false,
				"%s: broken: the guest ring is no longer in guest memory (%d)",
				svq->name, err);
	/* Forwarded: their readable bytes are in the bounce buffer already;
	 * only what the device writes still goes to the guest. */
	for (i = 0; i < svq->num; i++)
		if (svq->slot[i].buf.len) {
			err = remap_req(svq, &svq->slot[i], svq->slot[i].nout);
			if (err)
				return err;
		}
	/* Popped, not yet forwarded: every segment is still to be read or
	 * written. */
	if (svq->held)
		return remap_req(svq, &svq->spare, 0);
	return 0;
}

/* Forwarding order of two requests; @a before @b across a wrap of seq. */
static bool seq_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

int svqiso_svq_repost(struct svqiso_svq *svq)
{
	struct svq_drv_cfg fresh_cfg;
	struct svq_drv fresh;
	struct svq_req *keep;
	uint16_t *order, i, n = 0, k;
	int err;

	if (!svq)
		return -EINVAL;
	if (svq->broken)
		return -EIO;
	order = svq->rewind_ids;	/* scratch, [num] */
	for (i = 0; i < svq->num; i++) {
		if (!svq->slot[i].buf.len)
			continue;
		/* Insertion by forwarding order: n is at most num. */
		for (k = n; k > 0 && seq_before(svq->slot[i].seq,
						 svq->slot[order[k - 1]].seq); k--)
			order[k] = order[k - 1];
		order[k] = i;
		n++;
	}
	keep = calloc(n ? n : 1, sizeof(*keep));
	if (!keep || alloc_reqs(keep, n, svq->max_segs)) {
		free_reqs(keep, n);
		return -ENOMEM;
	}
	/* The fresh ring's own state before anything changes (it touches the
	 * shared ring only once it has it all): a failure leaves the queue
	 * as it was. Nothing it is given is published before the next
	 * process call (kick_owed): the backend may be starting the ring
	 * still, its call fd not set yet. */
	fresh_cfg = svq->shadow_cfg;
	fresh_cfg.publish_each = false;
	err = svq_drv_init(&fresh, &fresh_cfg);
	if (err) {
		free_reqs(keep, n);
		return err;
	}
	/* Out of the old slots (their tables go back: the fresh ring hands
	 * out its own), then onto the fresh ring in order. */
	for (k = 0; k < n; k++) {
		struct svq_req *r = &svq->slot[order[k]];

		r->table = SVQ_NO_TABLE;
		svq_req_move(&keep[k], r);
		keep[k].table = SVQ_NO_TABLE;
	}
	svq_drv_fini(&svq->shadow);
	svq->shadow = fresh;
	shadow_slots_init(svq);
	svq->nkept = 0;
	for (k = 0; !err && k < n; k++) {
		keep[k].carried = true;
		err = svq_reforward(svq, &keep[k]);
	}
	if (err) {
		/* The kept requests cannot be put back: nothing they had
		 * is lost silently, the queue says why. */
		for (i = 0; i < n; i++)
			if (keep[i].buf.len)
				svq_buf_put(svq, &keep[i].buf);
		free_reqs(keep, n);
		return svq_fail(svq, false, "%s: broken: cannot post %u requests again: %d",
				svq->name, n, err);
	}
	free_reqs(keep, n);
	/* From the next process call on, each chain as it is added. */
	if (svq->shadow.rc.layout == SVQISO_LAYOUT_SPLIT)
		svq->shadow.split.publish_each = svq->shadow_cfg.publish_each;
	svq->rewound = false;
	svq->freed = false;
	svq->avail_again = false;
	svq->kick_owed = n > 0;
	svq->st.reposted += n;
	if (svq->busy_poll)
		svqiso_svq_set_busy_poll(svq, true);
	return n;
}

int svqiso_svq_set_dirty_log(struct svqiso_svq *svq,
			     const struct svqiso_dirty_log *log)
{
	if (!svq)
		return -EINVAL;
	if (!log) {
		svq->dirty_on = false;
		svq->guest.dirty = NULL;
		return 0;
	}
	if (!svq_dirty_log_ok(log))
		return -EINVAL;
	svq->dirty.map = log->bitmap;
	svq->dirty.map_size = log->size;
	svq->dirty.fn = log->fn;
	svq->dirty.ctx = log->ctx;
	svq->dirty.missed_said = false;
	svq->dirty_on = true;
	if (!svq->element_mode)
		svq->guest.dirty = &svq->dirty;
	return 0;
}

int svqiso_svq_get_stats(const struct svqiso_svq *svq, struct svqiso_svq_stats *st)
{
	struct svqiso_svq_stats s;
	size_t sz;

	if (!svq || !st || st->sz < sizeof(size_t))
		return -EINVAL;
	s = svq->st;
	s.dirty_bytes = svq->dirty.bytes;
	s.dirty_missed = svq->dirty.missed;
	sz = st->sz < sizeof(*st) ? st->sz : sizeof(*st);
	memcpy((uint8_t *)st + sizeof(size_t), (const uint8_t *)&s + sizeof(size_t),
	       sz - sizeof(size_t));
	return 0;
}
