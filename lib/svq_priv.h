/* SPDX-License-Identifier: MIT */
/* The shadow virtqueue's private state, shared by svq.c, avail.c, used.c. */
#ifndef SVQ_SVQ_PRIV_H
#define SVQ_SVQ_PRIV_H

#include <svqiso/svq.h>
#include <svqiso/copy.h>
#include "vring.h"
#include "copy.h"
#include "pool_priv.h"

_Static_assert(SVQISO_RING_F_EVENT_IDX == SVQ_RING_F_EVENT_IDX &&
	       SVQISO_RING_F_INDIRECT == SVQ_RING_F_INDIRECT,
	       "public and internal ring feature bits agree");

/* One guest request: its validated guest segments and its bounce buffer. */
struct svq_req {
	uint16_t guest_id;		/* ring mode: guest head / buffer id */
	uint16_t nseg;			/* guest segments, readable first */
	uint16_t nout;			/* readable ones */
	uint16_t table;			/* shadow indirect table, or NO_TABLE */
	uint32_t out_bytes;
	uint32_t in_bytes;
	uint32_t seq;			/* forwarding order, for a repost */
	bool carried;			/* posted again for a lost backend: its
					 * guest chain is never given back */
	bool logged;			/* element mode: seg[].addr are guest
					 * addresses, for the dirty log */
	void *cookie;			/* element mode */
	struct svq_seg *seg;		/* [max_segs], owned; swapped, never copied */
	struct svqiso_buf buf;		/* valid while forwarded */
};

#define SVQ_NO_TABLE UINT16_MAX

/* No buffer has this IOVA: it would end past the address space. */
#define SVQ_ONEOFF_NONE UINT64_MAX

struct svqiso_svq {
	uint32_t flags;			/* SVQISO_SVQ_F_* */
	uint16_t num;
	uint16_t max_segs;
	bool element_mode;
	bool preserve;
	bool lazy_kicks;		/* SVQISO_SVQ_F_LAZY_KICKS, ring mode */
	bool busy_poll;
	bool paused;			/* take no new guest chain */
	bool broken;
	bool freed;			/* process_used: room came back since
					 * its last resume of what waited */
	bool avail_again;		/* process_used: its resume stopped at
					 * batch_bytes; the next call goes on */
	bool resetting;			/* reset is completing what it drops:
					 * submit only queues */
	bool kick_owed;			/* reset forwarded requests: the next
					 * process call asks for the kick */
	bool rewound;			/* svqiso_svq_rewind(): paused until
					 * the reset lays out a fresh ring */
	uint16_t nkept;			/* carried requests a rewind took off
					 * the shadow ring and kept, for the
					 * next repost */
	uint64_t batch_bytes;		/* 0: no limit per process call */
	char reason[192];
	const char *name;
	svqiso_log_fn log;
	void *log_ctx;
	svq_copy_fn copy;
	struct svq_dirty dirty;		/* the log's state, kept while off */
	bool dirty_on;			/* svqiso_svq_set_dirty_log() set one */

	/* guest side (ring mode) */
	struct svq_dev guest;
	struct svq_dev_cfg guest_cfg;	/* kept for svqiso_svq_reset() */
	bool held;			/* spare holds a popped chain the pool
					 * could not take yet */
	struct svq_req spare;

	/* guest side (element mode): submitted, not yet forwarded, FIFO */
	struct svq_req *pend;		/* [num] */
	uint16_t pend_head, pend_len;
	svqiso_complete_fn complete;
	void *complete_ctx;
	svqiso_giveback_fn giveback;	/* element mode: rewind's */
	void *giveback_ctx;

	/* isolated side */
	struct svqiso_iso *iso;
	struct svqiso_pool *pool;
	bool own_pool;
	bool no_oneoff;			/* SVQISO_SVQ_F_NO_ONEOFF */
	bool oneoff_said;		/* the first one-off was logged */
	uint64_t oneoff_max;		/* largest request a one-off serves */
	uint64_t oneoff_iova;		/* the one-off region a request holds;
					 * SVQ_ONEOFF_NONE: none */
	struct svqiso_region ring_region;
	bool own_ring_region;		/* ring_region is the svq's to free */
	uint32_t next_seq;
	struct svq_drv shadow;
	struct svq_drv_cfg shadow_cfg;
	struct svqiso_shadow_info info;
	struct svq_req *slot;		/* [num], by shadow id */
	struct svq_seg *shadow_seg;	/* [max_segs] scratch */
	uint8_t *tables;		/* [num][max_segs] 16-byte entries */
	uint64_t tables_iova;
	uint16_t *free_tables;		/* stack of free table indexes */
	uint16_t *rewind_ids;		/* [num] scratch for rewind */
	uint16_t nr_free_tables;

	struct svqiso_svq_stats st;
};

/* Mark broken: log @fmt once (unless the ring already logged it). */
int svq_fail(struct svqiso_svq *svq, bool logged, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Requests svqiso_svq_rewind() kept rather than gave back (counted by
 * svqiso_svq_in_flight(), on no ring until a repost or a reset). */
static inline unsigned int svq_kept(const struct svqiso_svq *svq)
{
	return svq->nkept;
}

/* avail.c */
int svq_drain_avail(struct svqiso_svq *svq);
int svq_forward(struct svqiso_svq *svq, struct svq_req *r);
int svq_reforward(struct svqiso_svq *svq, struct svq_req *r);
void svq_oneoff_put(struct svqiso_svq *svq);

/*
 * Give back a bounce buffer: to the pool, or the one-off region it is
 * (removed). One compare on the common path: a one-off region's IOVA is
 * no pool buffer's, the iso never handing out an address twice.
 */
static inline void svq_buf_put(struct svqiso_svq *svq,
			       const struct svqiso_buf *buf)
{
	if (unlikely(buf->iova == svq->oneoff_iova))
		svq_oneoff_put(svq);
	else
		svq_pool_put(svq->pool, buf);
}

/* Give back a completed or dropped request's bounce buffer and table. */
static inline void svq_release(struct svqiso_svq *svq, struct svq_req *r)
{
	if (r->table != SVQ_NO_TABLE) {
		svq->free_tables[svq->nr_free_tables++] = r->table;
		r->table = SVQ_NO_TABLE;
	}
	svq_buf_put(svq, &r->buf);
	r->buf.len = 0;
}

/*
 * Move @from's request into the free slot @to, and give @from the slot's
 * segment array: one copy of the request, not a full swap (a free slot's
 * other fields mean nothing).
 */
static inline void svq_req_move(struct svq_req *to, struct svq_req *from)
{
	struct svq_seg *seg = to->seg;

	*to = *from;
	from->seg = seg;
	from->buf.len = 0;
	from->table = SVQ_NO_TABLE;
}

/* Requests taken from the guest and completed to it so far: a change says
 * a handler moved some, whether or not either peer needs a signal. */
static inline uint64_t svq_moved(const struct svqiso_svq *svq)
{
	return svq->st.requests + svq->st.completions;
}

#endif /* SVQ_SVQ_PRIV_H */
