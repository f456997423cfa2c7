/* SPDX-License-Identifier: MIT */
/*
 * Avail side: guest chain -> bounce buffer -> driver-to-device bytes copied
 * in -> shadow descriptors. Ring mode pops the guest ring; element mode takes
 * requests the VMM already popped.
 */
#include "svq_priv.h"
#include "layout.h"

/* Failures to make a region that a completion may cure: out of region
 * slots (the iso's, or the backend's), fds or memory. */
static bool oneoff_transient(int err)
{
	return err == -ENOSPC || err == -EMFILE || err == -ENFILE ||
	       err == -ENOMEM;
}

/*
 * A request of @total bytes that the pool can never hold: the svq's one-off
 * region, made for it. Return: 0 and *@buf; -ENOSPC (not now: the region is
 * taken, or none can be made while others are in flight); -EIO (broken).
 */
static int oneoff_get(struct svqiso_svq *svq, uint64_t total,
		      struct svqiso_buf *buf)
{
	struct svqiso_region r;
	int err;

	/* Held by a request in flight: its completion gives it back. */
	if (svq->oneoff_iova != SVQ_ONEOFF_NONE && svq->shadow.inflight) {
		svq->st.oneoff_waits++;
		return -ENOSPC;
	}
	if (svq->oneoff_iova != SVQ_ONEOFF_NONE)	/* cannot be: say so */
		return svq_fail(svq, false, "%s: broken: one-off region held by no request",
				svq->name);
	err = svqiso_iso_region_new(svq->iso, total, &r);
	if (err) {
		if (oneoff_transient(err) && svq->shadow.inflight) {
			svq->st.oneoff_waits++;
			return -ENOSPC;
		}
		return svq_fail(svq, false,
				"%s: broken: no isolated region for a request of %" PRIu64
				" bytes, more than the bounce pool holds: %s",
				svq->name, total, strerror(-err));
	}
	if (!svq->oneoff_said) {
		svq->oneoff_said = true;
		svq_log(svq->log, svq->log_ctx, SVQISO_LOG_INFO,
			"%s: a request of %" PRIu64 " bytes, more than the bounce pool holds, "
			"goes through an isolated region of its own (so does every such "
			"request, one at a time)", svq->name, total);
	}
	svq->oneoff_iova = r.iova;
	*buf = (struct svqiso_buf){ .hva = r.uaddr, .iova = r.iova,
				    .len = r.size };
	svq->st.oneoffs++;
	return 0;
}

void svq_oneoff_put(struct svqiso_svq *svq)
{
	svqiso_iso_region_free(svq->iso, svq->oneoff_iova);
	svq->oneoff_iova = SVQ_ONEOFF_NONE;
}

/*
 * The bounce pool refused @total bytes with @err. "Never" (-EMSGSIZE) takes
 * the one-off region. "Not now" only means something while a completion can
 * still come back to free room; with nothing in flight it would wait
 * forever, so then the queue breaks. Out of line: the common request fits.
 *
 * Return: 0 (*@buf is the one-off region); -ENOSPC (retry after a
 * completion); -EIO (the queue broke).
 */
static int __attribute__((noinline, cold))
no_buf(struct svqiso_svq *svq, uint64_t total, int err, struct svqiso_buf *buf)
{
	if (err == -EMSGSIZE && !svq->no_oneoff && total <= svq->oneoff_max)
		return oneoff_get(svq, total, buf);
	if (err == -ENOSPC && svq->shadow.inflight) {
		svq->st.pool_stalls++;
		return -ENOSPC;
	}
	if (err == -EMSGSIZE)
		return svq_fail(svq, false,
				"%s: broken: a request of %" PRIu64 " bytes is more than the "
				"bounce pool holds%s", svq->name, total,
				svq->no_oneoff ? ", and one-off regions are off" :
				" and more than oneoff_max");
	return svq_fail(svq, false,
			"%s: broken: no bounce buffer of %" PRIu64 " bytes: %d",
			svq->name, total, err);
}

/*
 * Shadow descriptors a request of @nseg segments takes on a ring without
 * indirect tables. A chain longer than the ring can only be a few
 * descriptors: the bounce buffer is contiguous, so one per direction
 * carries it.
 */
static inline uint16_t direct_descs(const struct svqiso_svq *svq, uint16_t nseg,
				    uint32_t out_bytes, uint32_t in_bytes)
{
	if (nseg <= svq->num)
		return nseg;
	return (out_bytes != 0) + (in_bytes != 0);
}

/* Whether a request could never be on the shadow ring, even an empty one. */
static inline bool never_fits(const struct svqiso_svq *svq, uint16_t nseg,
			      uint32_t out_bytes, uint32_t in_bytes)
{
	return !(svq->shadow.rc.flags & SVQ_RING_F_INDIRECT) &&
	       direct_descs(svq, nseg, out_bytes, in_bytes) > svq->num;
}

/*
 * svq_forward()'s part for a request of several segments: room, bounce
 * buffer, bytes in, and the shadow segments in svq->shadow_seg, with a
 * table in @table (*@ind set to it) when the shadow ring takes indirect
 * ones. Out of line: the common request has one segment.
 *
 * Return: shadow segments (> 0); -ENOSPC; -EIO.
 */
static int __attribute__((noinline))
prepare_chain(struct svqiso_svq *svq, const struct svq_req *r, uint64_t total,
	      struct svqiso_buf *buf, struct svq_indirect *table,
	      const struct svq_indirect **ind)
{
	bool use_ind = svq->shadow.rc.flags & SVQ_RING_F_INDIRECT;
	bool coalesce = !use_ind && r->nseg > svq->num;
	uint16_t k, nshadow = r->nseg;
	uint64_t off = 0;
	int err;

	if (!use_ind)
		nshadow = direct_descs(svq, r->nseg, r->out_bytes, r->in_bytes);
	/* "No room now" would hold it forever: refuse it. */
	if (unlikely(!use_ind && nshadow > svq->num))
		return svq_fail(svq, false,
				"%s: broken: a request of %u segments needs %u shadow descriptors; the ring holds %u",
				svq->name, r->nseg, nshadow, svq->num);
	if (use_ind ? !svq->nr_free_tables || !svq->shadow.num_free :
		      svq->shadow.num_free < nshadow)
		return -ENOSPC;
	err = svq_pool_alloc(svq->pool, total, buf);
	if (unlikely(err)) {
		err = no_buf(svq, total, err, buf);
		if (err)
			return err;
	}

	for (k = 0; k < r->nseg; k++) {
		const struct svq_seg *g = &r->seg[k];

		/* Only what the driver gave the device; "preserve" also shows
		 * the device the writable area's current content. */
		if (!g->write || svq->preserve)
			svq->copy((uint8_t *)buf->hva + off, g->hva, g->len);
		off += g->len;
	}
	if (coalesce) {
		k = 0;
		if (r->out_bytes)
			svq->shadow_seg[k++] = (struct svq_seg){
				.addr = buf->iova, .len = r->out_bytes };
		if (r->in_bytes)
			svq->shadow_seg[k++] = (struct svq_seg){
				.addr = buf->iova + r->out_bytes,
				.len = r->in_bytes, .write = true };
	} else {
		for (k = 0, off = 0; k < r->nseg; k++) {
			svq->shadow_seg[k] = (struct svq_seg){
				.addr = buf->iova + off, .len = r->seg[k].len,
				.write = r->seg[k].write };
			off += r->seg[k].len;
		}
	}

	if (use_ind) {
		uint16_t t = svq->free_tables[svq->nr_free_tables - 1];

		table->hva = svq->tables + (size_t)t * svq->max_segs * 16;
		table->addr = svq->tables_iova + (uint64_t)t * svq->max_segs * 16;
		table->cap = svq->max_segs;
		*ind = table;
	}
	return nshadow;
}

/*
 * svq_forward() - give request @r a bounce buffer, copy its readable bytes
 * in and add it to the shadow ring. On success @r's state moves into the
 * shadow slot (and @r receives that slot's spare segment array).
 *
 * Return: 0; -ENOSPC (no room now: bounce pool or shadow ring; retry after
 * a completion); -EIO (the queue broke).
 */
int svq_forward(struct svqiso_svq *svq, struct svq_req *r)
{
	const struct svq_indirect *ind = NULL;
	const struct svq_seg *shadow;
	struct svq_indirect table;
	struct svqiso_buf buf;
	struct svq_seg one;
	uint64_t total = (uint64_t)r->out_bytes + r->in_bytes;
	struct svq_req *to;
	uint16_t id;
	int err, nshadow;

	if (likely(r->nseg == 1)) {
		/* One segment: one shadow descriptor, never a table. */
		const struct svq_seg *g = &r->seg[0];

		if (unlikely(!svq->shadow.num_free))
			return -ENOSPC;
		err = svq_pool_alloc(svq->pool, total, &buf);
		if (unlikely(err)) {
			err = no_buf(svq, total, err, &buf);
			if (err)
				return err;
		}
		if (!g->write || svq->preserve)
			svq->copy(buf.hva, g->hva, g->len);
		one = (struct svq_seg){ .addr = buf.iova, .len = g->len,
					.write = g->write };
		shadow = &one;
		nshadow = 1;
	} else {
		nshadow = prepare_chain(svq, r, total, &buf, &table, &ind);
		if (nshadow < 0)
			return nshadow;
		shadow = svq->shadow_seg;
	}

	/*
	 * Straight to the layout: what svq_drv_add() would check holds by
	 * construction. Room was checked above; segments are non-empty
	 * (chain and submit rules) with the readable ones first; a table
	 * holds max_segs entries at a 16-byte aligned place. Only a broken
	 * shadow ring is left to refuse.
	 */
	err = unlikely(svq->shadow.rc.broken) ? -EIO :
	      svq_layout_drv_add(&svq->shadow, shadow, (unsigned int)nshadow,
				 ind, &id);
	if (unlikely(err)) {
		/* Room was checked above: this is our bug, not the peer's. */
		svq_buf_put(svq, &buf);
		return svq_fail(svq, false, "%s: broken: shadow add failed: %d",
				svq->name, err);
	}
	to = &svq->slot[id];
	svq_req_move(to, r);
	to->buf = buf;
	to->table = ind ? svq->free_tables[--svq->nr_free_tables] : SVQ_NO_TABLE;
	to->seq = svq->next_seq++;
	to->carried = false;

	svq->st.requests++;
	svq->st.bytes_out += svq->preserve ? total : to->out_bytes;
	return 0;
}

/*
 * svq_reforward() - put request @r, whose bounce buffer already holds its
 * bytes, on the shadow ring again (svqiso_svq_repost()): the shadow
 * segments as svq_forward() lays them out, nothing copied. @r holds no
 * table. On success @r's state moves into the shadow slot.
 *
 * Return: 0; -ENOSPC (no room: cannot be on a fresh ring that held it
 * before); -EIO.
 */
int svq_reforward(struct svqiso_svq *svq, struct svq_req *r)
{
	bool use_ind = (svq->shadow.rc.flags & SVQ_RING_F_INDIRECT) && r->nseg > 1;
	const struct svq_indirect *ind = NULL;
	struct svq_indirect table;
	struct svq_req *to;
	uint16_t k, nshadow = 0, id;
	uint64_t off = 0;
	int err;

	if (r->nseg > 1 && !use_ind && r->nseg > svq->num) {
		if (r->out_bytes)
			svq->shadow_seg[nshadow++] = (struct svq_seg){
				.addr = r->buf.iova, .len = r->out_bytes };
		if (r->in_bytes)
			svq->shadow_seg[nshadow++] = (struct svq_seg){
				.addr = r->buf.iova + r->out_bytes,
				.len = r->in_bytes, .write = true };
	} else {
		for (k = 0; k < r->nseg; k++) {
			svq->shadow_seg[k] = (struct svq_seg){
				.addr = r->buf.iova + off, .len = r->seg[k].len,
				.write = r->seg[k].write };
			off += r->seg[k].len;
		}
		nshadow = r->nseg;
	}
	if (use_ind) {
		uint16_t t;

		if (!svq->nr_free_tables || !svq->shadow.num_free)
			return -ENOSPC;
		t = svq->free_tables[svq->nr_free_tables - 1];
		table.hva = svq->tables + (size_t)t * svq->max_segs * 16;
		table.addr = svq->tables_iova + (uint64_t)t * svq->max_segs * 16;
		table.cap = svq->max_segs;
		ind = &table;
	} else if (svq->shadow.num_free < nshadow) {
		return -ENOSPC;
	}
	err = svq_drv_add(&svq->shadow, svq->shadow_seg, nshadow, ind, &id);
	if (err)
		return svq_fail(svq, false, "%s: broken: shadow re-add failed: %d",
				svq->name, err);
	to = &svq->slot[id];
	svq_req_move(to, r);	/* buffer and order go with it */
	to->table = ind ? svq->free_tables[--svq->nr_free_tables] : SVQ_NO_TABLE;
	return 0;
}

/* Kick decision for everything added since the last one. */
static int kick(struct svqiso_svq *svq, unsigned int added)
{
	if (!added)
		return 0;
	if (svq_drv_kick_prepare(&svq->shadow)) {
		svq->st.kicks_sent++;
		return SVQISO_SIGNAL_BACKEND;
	}
	svq->st.kicks_suppressed++;
	return 0;
}

/* Element mode: forward submitted requests in order while there is room. */
static int drain_pending(struct svqiso_svq *svq)
{
	unsigned int added = 0;
	int err;

	while (svq->pend_len) {
		err = svq_forward(svq, &svq->pend[svq->pend_head]);
		if (err == -ENOSPC)
			break;
		if (err)
			return err;
		svq->pend_head = (svq->pend_head + 1) % svq->num;
		svq->pend_len--;
		added++;
	}
	return kick(svq, added);
}

/*
 * Ring mode: pop the guest ring until it is empty or there is no room, or
 * (batch_bytes) until this call has copied enough: then kick for what is
 * there and leave guest notifications off for the call that takes the rest.
 */
static int drain_ring(struct svqiso_svq *svq)
{
	struct svq_elem e;
	unsigned int added = 0;
	uint64_t copied = 0;
	int ret;

	if (!svq->busy_poll)
		svq_dev_disable_notify(&svq->guest);
	/* A pop fills the rest, or has nothing to say. */
	e.max_seg = svq->max_segs;
	for (;;) {
		if (!svq->held) {
			if (svq->paused)
				break;
			e.seg = svq->spare.seg;
			/* Straight to the layout: svq_dev_pop() would only
			 * add clearing @e on an error, and an error ends the
			 * queue here before @e is looked at. */
			ret = unlikely(svq->guest.rc.broken) ? -EIO :
			      svq_layout_dev_pop(&svq->guest, &e);
			if (ret < 0)	/* the ring logged the reason */
				return svq_fail(svq, true, "%s", svq->guest.rc.reason);
			if (ret == 0) {
				/* Empty: ask for kicks, then look once more so
				 * a chain added meanwhile is not stranded. With
				 * lazy kicks and requests at the backend, its
				 * next completion brings us back instead. */
				if (svq->lazy_kicks && svq->shadow.inflight)
					break;
				if (svq->busy_poll || !svq_dev_enable_notify(&svq->guest))
					break;
				svq_dev_disable_notify(&svq->guest);
				continue;
			}
			svq->spare.guest_id = e.id;
			svq->spare.nseg = e.nseg;
			svq->spare.nout = e.nout;
			svq->spare.out_bytes = e.out_bytes;
			svq->spare.in_bytes = e.in_bytes;
			svq->held = true;
		}
		copied += svq->preserve ? (uint64_t)svq->spare.out_bytes + svq->spare.in_bytes :
					  svq->spare.out_bytes;
		ret = svq_forward(svq, &svq->spare);
		if (ret == -ENOSPC)
			break;	/* stay quiet until a completion frees room */
		if (ret)
			return ret;
		svq->held = false;
		added++;
		if (svq->batch_bytes && copied >= svq->batch_bytes) {
			svq->st.splits++;
			return kick(svq, added) | SVQISO_SIGNAL_AGAIN;
		}
	}
	return kick(svq, added);
}

int svq_drain_avail(struct svqiso_svq *svq)
{
	uint64_t before = svq->st.requests;
	int ret = svq->element_mode ? drain_pending(svq) : drain_ring(svq);

	if (unlikely(svq->kick_owed) && ret >= 0) {
		/* What a reset or a repost put on the ring is published here
		 * (nothing else may have been added since), and the backend
		 * is kicked whatever it asked: it may be new. */
		svq->kick_owed = false;
		svq_drv_kick_prepare(&svq->shadow);
		ret |= SVQISO_SIGNAL_BACKEND;
	}

	/* Once per batch that forwarded, not per request: within a batch
	 * buffers are only taken (a failed add gives its own back), so the
	 * count after its last request is its highest. */
	if (svq->st.requests != before &&
	    svq->pool->in_use > svq->st.pool_high_water)
		svq->st.pool_high_water = svq->pool->in_use;
	return ret;
}

int svqiso_svq_process_avail(struct svqiso_svq *svq)
{
	if (svq->broken)
		return -EIO;
	if (svq->element_mode)
		return -EINVAL;
	return svq_drain_avail(svq);
}

static int submit(struct svqiso_svq *svq, const struct iovec *out,
		  unsigned int nout, const struct iovec *in, unsigned int nin,
		  const uint64_t *in_gpa, void *cookie)
{
	struct svq_req *r;
	uint64_t total = 0, out_bytes = 0, in_bytes;
	unsigned int k;
	int ret;

	/* A reset's completion callback submits for the queue as it will
	 * be: the reset clears the broken state. */
	if (svq->broken && !svq->resetting)
		return -EIO;
	if (svq->rewound && !svq->resetting && svq->element_mode)
		return -EBUSY;
	/* Each count on its own first: their sum may wrap. */
	if (!svq->element_mode || nout > svq->max_segs || nin > svq->max_segs ||
	    nout + nin == 0 || nout + nin > svq->max_segs ||
	    (nout && !out) || (nin && !in))
		return -EINVAL;
	if (svq->pend_len == svq->num)
		return -ENOSPC;
	for (k = 0; k < nout + nin; k++) {
		const struct iovec *v = k < nout ? &out[k] : &in[k - nout];

		if (!v->iov_len || v->iov_len > UINT32_MAX || !v->iov_base)
			return -EINVAL;
		/* A buffer that wraps the guest address space is none. */
		if (in_gpa && k >= nout &&
		    in_gpa[k - nout] + v->iov_len - 1 < in_gpa[k - nout])
			return -EINVAL;
		total += v->iov_len;
		if (k < nout)
			out_bytes += v->iov_len;
	}
	in_bytes = total - out_bytes;
	if (total > UINT32_MAX)
		return -EINVAL;
	/* Taken, it could only be held forever. */
	if (never_fits(svq, (uint16_t)(nout + nin), out_bytes, in_bytes))
		return -EINVAL;

	r = &svq->pend[(svq->pend_head + svq->pend_len) % svq->num];
	r->cookie = cookie;
	r->logged = in_gpa != NULL;
	r->nseg = nout + nin;
	r->nout = nout;
	r->out_bytes = 0;
	r->in_bytes = 0;
	for (k = 0; k < nout + nin; k++) {
		const struct iovec *v = k < nout ? &out[k] : &in[k - nout];

		r->seg[k] = (struct svq_seg){ .hva = v->iov_base,
					      .len = (uint32_t)v->iov_len,
					      .write = k >= nout };
		if (in_gpa && k >= nout)
			r->seg[k].addr = in_gpa[k - nout];
		if (k < nout)
			r->out_bytes += v->iov_len;
		else
			r->in_bytes += v->iov_len;
	}
	svq->pend_len++;
	if (unlikely(svq->resetting))
		return 0;	/* forwarded when the reset is done */
	ret = svq_drain_avail(svq);
	/* The queue broke forwarding: this request, the last one held, was
	 * not forwarded and is not taken (a reset would complete it). */
	if (unlikely(ret < 0))
		svq->pend_len--;
	return ret;
}

int svqiso_svq_submit(struct svqiso_svq *svq, const struct iovec *out,
		      unsigned int nout, const struct iovec *in, unsigned int nin,
		      void *cookie)
{
	return submit(svq, out, nout, in, nin, NULL, cookie);
}

int svqiso_svq_submit_gpa(struct svqiso_svq *svq, const struct iovec *out,
			  unsigned int nout, const struct iovec *in,
			  const uint64_t *in_gpa, unsigned int nin, void *cookie)
{
	if (nin && !in_gpa)
		return -EINVAL;
	return submit(svq, out, nout, in, nin, in_gpa, cookie);
}
