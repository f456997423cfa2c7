/* SPDX-License-Identifier: MIT */
/*
 * Used side: shadow used entry -> validated -> device-to-driver bytes copied
 * back into the request's writable guest segments, and nowhere else -> guest
 * used entry or completion -> notify decision.
 */
#include "svq_priv.h"
#include "layout.h"

/*
 * Copy @len bytes of the bounce buffer's writable part back to the guest's
 * writable segments, in order. Return: bytes copied.
 */
static uint32_t copy_back(struct svqiso_svq *svq, const struct svq_req *r,
			  uint32_t len)
{
	const uint8_t *src = (const uint8_t *)r->buf.hva + r->out_bytes;
	uint32_t left = len;
	uint16_t k;

	for (k = r->nout; k < r->nseg && left; k++) {
		uint32_t n = r->seg[k].len < left ? r->seg[k].len : left;

		svq->copy(r->seg[k].hva, src, n);
		if (unlikely(svq->dirty_on) && (!svq->element_mode || r->logged))
			svq_dirty_mark(&svq->dirty, r->seg[k].addr, n);
		src += n;
		left -= n;
	}
	return len - left;
}

/* Publish what was completed to the guest ring; notify if it asks. */
static int publish(struct svqiso_svq *svq)
{
	svq_dev_flush(&svq->guest);
	if (svq_dev_need_notify(&svq->guest)) {
		svq->st.calls_sent++;
		return SVQISO_SIGNAL_GUEST;
	}
	svq->st.calls_suppressed++;
	return 0;
}

int svqiso_svq_process_used(struct svqiso_svq *svq)
{
	unsigned int done = 0;
	uint64_t copied = 0;
	int mask = 0, ret;

	if (svq->broken)
		return -EIO;
	if (!svq->busy_poll)
		svq_drv_disable_cb(&svq->shadow);
	for (;;) {
		struct svq_req *r;
		uint32_t len, written, back;
		uint16_t id;

		/* svq_drv_get_used() without the call: the same check. */
		ret = unlikely(svq->shadow.rc.broken) ? -EIO :
		      svq_layout_drv_get_used(&svq->shadow, &id, &len);
		if (ret < 0) {
			/* Completions already copied back still reach the
			 * guest ring; the shadow ring logged the reason. */
			if (done && !svq->element_mode)
				svq_dev_flush(&svq->guest);
			return svq_fail(svq, true, "%s", svq->shadow.rc.reason);
		}
		if (ret == 0) {
			if (svq->busy_poll || !svq_drv_enable_cb(&svq->shadow))
				break;
			svq_drv_disable_cb(&svq->shadow);
			continue;
		}
		/* The driver role checked that @id is in flight. */
		r = &svq->slot[id];
		written = len;
		if (written > r->in_bytes) {
			/* The device claims more than it could write: believe
			 * only what fits the writable area. */
			svq->st.clamped++;
			written = r->in_bytes;
		}
		back = copy_back(svq, r, svq->preserve ? r->in_bytes : written);
		svq->st.bytes_in += back;
		copied += back;
		svq_release(svq, r);
		svq->freed = true;
		svq->st.completions++;
		if (svq->element_mode) {
			svq->complete(svq->complete_ctx, r->cookie, written);
		} else {
			ret = svq_dev_push(&svq->guest, r->guest_id, written);
			if (ret)
				return svq_fail(svq, false, "%s: broken: guest push of %u failed: %d",
						svq->name, r->guest_id, ret);
		}
		done++;
		if (svq->broken)	/* a completion callback may not, but be safe */
			return -EIO;
		if (svq->batch_bytes && copied >= svq->batch_bytes) {
			/* Backend calls stay off: the caller comes back at
			 * once for the rest, and for what waits for room. */
			svq->st.splits++;
			return publish(svq) | SVQISO_SIGNAL_AGAIN;
		}
	}

	if (done && !svq->element_mode)
		mask |= publish(svq);
	/* Room came back: resume what waited for it. With lazy kicks the
	 * guest did not kick for what it posted meanwhile: take it now, and
	 * ask for kicks again once nothing is in flight. */
	if ((svq->freed && (svq->held || svq->pend_len)) || svq->avail_again ||
	    svq->lazy_kicks || svq->kick_owed) {
		ret = svq_drain_avail(svq);
		if (ret < 0)
			return ret;
		mask |= ret;
		/* Stopped at batch_bytes: the next call takes the rest. */
		svq->avail_again = ret & SVQISO_SIGNAL_AGAIN;
	}
	svq->freed = false;
	return mask;
}
