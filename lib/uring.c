/* SPDX-License-Identifier: MIT */
/*
 * The event loop's io_uring backend; the only file that includes
 * <liburing.h>. Every watched eventfd has an 8-byte read in flight; each
 * iteration reaps what completed, runs the handlers, queues the eventfd
 * writes they asked for and the reads that re-arm, and hands all of it to
 * the kernel in the same io_uring_submit_and_wait(). Under load that is one
 * syscall per batch of requests, not one per request. The hang-up watch is
 * one poll, armed once, that completes only when the peer goes.
 *
 * Built without liburing (meson -During=disabled), svq_uring_new() fails
 * with -ENOSYS and SVQISO_LOOP_AUTO picks epoll.
 */
#define _GNU_SOURCE	/* POLLRDHUP */
#include "loop_priv.h"

#ifdef SVQ_HAVE_URING

#include <poll.h>
#include <stdlib.h>
#include <liburing.h>

/* user_data: queue index << 8 | op. */
enum uring_op {
	OP_KICK_READ,		/* guest kick fd */
	OP_CALL_READ,		/* backend call fd */
	OP_KICK_POLL,		/* linked before a read that got -EAGAIN */
	OP_CALL_POLL,
	OP_STOP_READ,
	OP_STOP_POLL,
	OP_WRITE_BACKEND,	/* backend kick fd */
	OP_WRITE_GUEST,		/* guest call fd */
	OP_CANCEL,
	OP_WATCH,		/* the hang-up watch */
};

#define UD(i, op)	(((uint64_t)(i) << 8) | (op))
#define UD_Q(ud)	((uint32_t)((ud) >> 8))
#define UD_OP(ud)	((unsigned int)((ud) & 0xff))

/* SQEs one queue can need in one iteration: 2 writes, 2 poll+read pairs,
 * or 4 cancels. */
#define SQES_PER_QUEUE	4
#define SQES_EXTRA	8	/* the stop read and slack */

struct svq_uring {
	struct io_uring ring;
	unsigned int write_flags;	/* IOSQE_CQE_SKIP_SUCCESS if the kernel has it */
	bool stop_armed, stop_poll;
	uint64_t stop_buf;
	bool watch_armed;
};

/* What one watched fd's read needs: both of a queue's reads share the code. */
struct read_slot {
	int fd;
	uint64_t *buf;
	bool *armed, *poll;
	bool *cancel;		/* a cancel of the read is in flight; NULL: never cancelled */
	unsigned int read_op, poll_op;
};

static const uint64_t one = 1;

static unsigned int pow2_at_least(unsigned int v)
{
	unsigned int p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

/* Room for @n SQEs: flush the SQ to the kernel if it is short. */
static void reserve(struct svq_uring *u, unsigned int n)
{
	if (io_uring_sq_space_left(&u->ring) < n)
		io_uring_submit(&u->ring);
}

/* Only after reserve(): the SQ has room. */
static struct io_uring_sqe *sqe_get(struct svq_uring *u)
{
	return io_uring_get_sqe(&u->ring);
}

static void arm_read(struct svqiso_loop *loop, struct svq_uring *u, uint32_t i,
		     const struct read_slot *s)
{
	struct io_uring_sqe *sqe;

	reserve(u, 2);
	if (*s->poll) {
		/* The kernel returned -EAGAIN rather than waiting (older
		 * kernels do so for O_NONBLOCK files): wait for POLLIN first. */
		sqe = sqe_get(u);
		io_uring_prep_poll_add(sqe, s->fd, POLLIN);
		io_uring_sqe_set_data64(sqe, UD(i, s->poll_op));
		sqe->flags |= IOSQE_IO_LINK;
		*s->poll = false;
	}
	sqe = sqe_get(u);
	/* An eventfd ignores the offset; its reads and writes are 8 bytes. */
	io_uring_prep_read(sqe, s->fd, s->buf, sizeof(*s->buf), 0);
	io_uring_sqe_set_data64(sqe, UD(i, s->read_op));
	*s->armed = true;
	loop->ctr.reads++;
}

static void cancel_read(struct svq_uring *u, uint32_t i, const struct read_slot *s)
{
	struct io_uring_sqe *sqe;

	/* A read linked behind a poll is not started yet: cancel both. */
	reserve(u, 2);
	sqe = sqe_get(u);
	io_uring_prep_cancel64(sqe, UD(i, s->read_op), 0);
	io_uring_sqe_set_data64(sqe, UD(i, OP_CANCEL));
	sqe = sqe_get(u);
	io_uring_prep_cancel64(sqe, UD(i, s->poll_op), 0);
	io_uring_sqe_set_data64(sqe, UD(i, OP_CANCEL));
}

static void kick_slot(struct svq_loop_q *q, struct read_slot *s)
{
	*s = (struct read_slot){
		.fd = q->guest_kick_fd, .buf = &q->kick_buf,
		.armed = &q->kick_armed, .poll = &q->kick_poll,
		.cancel = &q->kick_cancel,
		.read_op = OP_KICK_READ, .poll_op = OP_KICK_POLL,
	};
}

static void call_slot(struct svq_loop_q *q, struct read_slot *s)
{
	*s = (struct read_slot){
		.fd = q->backend_call_fd, .buf = &q->call_buf,
		.armed = &q->call_armed, .poll = &q->call_poll,
		.cancel = &q->call_cancel,
		.read_op = OP_CALL_READ, .poll_op = OP_CALL_POLL,
	};
}

/* Arm or cancel one read so that it is in flight exactly when @want. */
static void sync_slot(struct svqiso_loop *loop, struct svq_uring *u, uint32_t i,
		      const struct read_slot *s, bool want)
{
	if (want) {
		if (!*s->armed)
			arm_read(loop, u, i, s);
	} else if (*s->armed && !*s->cancel) {
		cancel_read(u, i, s);
		*s->cancel = true;
	}
}

/* Make queue @i's reads in flight match what should be watched. */
static void sync_reads(struct svqiso_loop *loop, struct svq_uring *u, uint32_t i)
{
	struct svq_loop_q *q = &loop->q[i];
	struct read_slot s;

	kick_slot(q, &s);
	sync_slot(loop, u, i, &s, svq_loop_q_poll_kick(q));
	call_slot(q, &s);
	sync_slot(loop, u, i, &s, svq_loop_q_poll_call(q));
}

static void arm_stop(struct svqiso_loop *loop, struct svq_uring *u)
{
	struct read_slot s = {
		.fd = loop->stop_fd, .buf = &u->stop_buf,
		.armed = &u->stop_armed, .poll = &u->stop_poll,
		.read_op = OP_STOP_READ, .poll_op = OP_STOP_POLL,
	};

	arm_read(loop, u, 0, &s);
}

static void arm_watch(struct svqiso_loop *loop, struct svq_uring *u)
{
	struct io_uring_sqe *sqe;

	reserve(u, 1);
	sqe = sqe_get(u);
	/* One shot, asleep until the peer goes (POLLHUP and POLLERR come
	 * unasked); never POLLIN: the peer's messages are not the loop's. */
	io_uring_prep_poll_add(sqe, loop->watch_fd, POLLRDHUP);
	io_uring_sqe_set_data64(sqe, UD(0, OP_WATCH));
	u->watch_armed = true;
}

static void queue_write(struct svqiso_loop *loop, struct svq_uring *u,
			uint32_t i, int fd, unsigned int op)
{
	struct io_uring_sqe *sqe;

	reserve(u, 1);
	sqe = sqe_get(u);
	/* @one is static: it outlives the write. */
	io_uring_prep_write(sqe, fd, &one, sizeof(one), 0);
	io_uring_sqe_set_data64(sqe, UD(i, op));
	sqe->flags |= u->write_flags;
	loop->ctr.writes++;
}

/* A read of queue @i completed with @res. */
static void read_done(struct svqiso_loop *loop, uint32_t i, bool kick, int res)
{
	struct svq_loop_q *q = &loop->q[i];

	if (kick) {
		q->kick_armed = false;
		q->kick_cancel = false;
	} else {
		q->call_armed = false;
		q->call_cancel = false;
	}
	if (res == sizeof(uint64_t)) {
		svq_loop_touch(loop, i, kick ? SVQ_LOOP_EV_KICK : SVQ_LOOP_EV_CALL);
		return;
	}
	if (res == -EAGAIN) {
		if (kick)
			q->kick_poll = true;
		else
			q->call_poll = true;
	} else if (res != -EINTR && res != -ECANCELED) {
		svq_loop_fd_failed(loop, q, kick ? "guest kick fd" : "backend call fd",
				   res < 0 ? res : -EIO);
	}
	/* Touched without events: re-armed (or left alone) after service. */
	svq_loop_touch(loop, i, 0);
}

static void complete(struct svqiso_loop *loop, struct svq_uring *u,
		     uint64_t ud, int res)
{
	uint32_t i = UD_Q(ud);

	switch (UD_OP(ud)) {
	case OP_KICK_READ:
	case OP_CALL_READ:
		if (i < loop->nr_queues)
			read_done(loop, i, UD_OP(ud) == OP_KICK_READ, res);
		break;
	case OP_STOP_READ:
		u->stop_armed = false;
		if (res == -EAGAIN)
			u->stop_poll = true;
		break;
	case OP_WATCH:
		u->watch_armed = false;
		svq_loop_watch_event(loop, res);
		break;
	case OP_WRITE_BACKEND:
	case OP_WRITE_GUEST:
		if (res < 0 && res != -EAGAIN && i < loop->nr_queues) {
			struct svq_loop_q *q = &loop->q[i];

			svq_loop_write_failed(loop, q, UD_OP(ud) == OP_WRITE_GUEST ?
					      q->guest_call_fd : q->backend_kick_fd, res);
		}
		break;
	default:
		/* Polls report through the read linked to them; cancels
		 * through the read they cancel. */
		break;
	}
}

static void reap(struct svqiso_loop *loop, struct svq_uring *u)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&u->ring, head, cqe) {
		complete(loop, u, cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
}

/*
 * A spin's signals go out at once, not with the next wait. The completions
 * of earlier ones are taken first: a spin can write many times before the
 * loop waits again, and a full completion queue would refuse the submit.
 */
static void spin_signal(struct svqiso_loop *loop, struct svq_loop_q *q,
			int mask, void *ctx)
{
	struct svq_uring *u = ctx;
	uint32_t i = (uint32_t)(q - loop->q);

	reap(loop, u);

	if (mask & SVQISO_SIGNAL_BACKEND)
		queue_write(loop, u, i, q->backend_kick_fd, OP_WRITE_BACKEND);
	if (mask & SVQISO_SIGNAL_GUEST)
		queue_write(loop, u, i, q->guest_call_fd, OP_WRITE_GUEST);
	if (mask & (SVQISO_SIGNAL_BACKEND | SVQISO_SIGNAL_GUEST))
		io_uring_submit(&u->ring);
}

int svq_uring_run(struct svqiso_loop *loop)
{
	struct svq_uring *u = loop->uring;
	bool spun = false;
	uint32_t i, k;
	int ret;

	for (i = 0; i < loop->nr_queues; i++)
		sync_reads(loop, u, i);
	while (!svq_loop_stopping(loop)) {
		if (!u->stop_armed)
			arm_stop(loop, u);
		if (svq_loop_watching(loop) && !u->watch_armed)
			arm_watch(loop, u);
		if (!spun) {
			/* Writes and re-arms of the last iteration go in
			 * with the wait. */
			ret = io_uring_submit_and_wait(&u->ring, 1);
			loop->ctr.waits++;
			svq_loop_woken(loop);
			if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
			    ret != -EBUSY) {
				svq_log(loop->log, loop->log_ctx, SVQISO_LOG_ERR,
					"loop: io_uring_submit_and_wait: %s",
					strerror(-ret));
				return ret;
			}
			/* Fewer completions than reads armed is normal: take
			 * what is there; -EBUSY (CQ overflow) is cleared by
			 * reaping. */
			reap(loop, u);
		}
		if (loop->hung_up)
			break;		/* nothing more to relay to */
		for (k = 0; k < loop->nr_touched; k++) {
			struct svq_loop_q *q;

			i = loop->touched[k];
			q = &loop->q[i];
			q->touched = false;
			for (;;) {
				ret = svq_loop_service(loop, q);
				if (ret <= 0)
					break;
				if (ret & SVQISO_SIGNAL_BACKEND)
					queue_write(loop, u, i, q->backend_kick_fd,
						    OP_WRITE_BACKEND);
				if (ret & SVQISO_SIGNAL_GUEST)
					queue_write(loop, u, i, q->guest_call_fd,
						    OP_WRITE_GUEST);
				if (!(ret & SVQISO_SIGNAL_AGAIN))
					break;
				/* Stopped at batch_bytes: a signal it asked
				 * for goes out now, so the peer starts on
				 * what is ready while the rest is copied. */
				if (ret & (SVQISO_SIGNAL_BACKEND | SVQISO_SIGNAL_GUEST))
					io_uring_submit(&u->ring);
			}
			sync_reads(loop, u, i);
		}
		loop->nr_touched = 0;
		/* After a wake-up, not after a spin: one that ran out sleeps
		 * (the pass above looked again with notifications on). */
		spun = !spun && svq_loop_should_spin(loop);
		if (spun) {
			io_uring_submit(&u->ring);	/* the kicks it waits on */
			svq_loop_spin(loop, spin_signal, u);
		}
	}
	/* Hand over the writes of the last iteration; don't wait. */
	io_uring_submit(&u->ring);
	return 0;
}

int svq_uring_new(struct svqiso_loop *loop, struct svq_uring **out)
{
	static const int ops[] = {
		IORING_OP_READ, IORING_OP_WRITE, IORING_OP_POLL_ADD,
		IORING_OP_ASYNC_CANCEL,
	};
	struct io_uring_params p;
	struct io_uring_probe *probe;
	struct svq_uring *u;
	unsigned int entries, k;
	int err;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	entries = pow2_at_least(SQES_PER_QUEUE * loop->max_queues + SQES_EXTRA);
	/* Fewer interrupts to run task work on a loop that mostly waits
	 * (5.19); older kernels refuse the flag with -EINVAL. */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_COOP_TASKRUN;
	err = io_uring_queue_init_params(entries, &u->ring, &p);
	if (err == -EINVAL) {
		memset(&p, 0, sizeof(p));
		err = io_uring_queue_init_params(entries, &u->ring, &p);
	}
	if (err) {
		free(u);
		return err;
	}

	/* NULL: no memory for it (errno says so), or no probe in this
	 * kernel (liburing's own syscalls leave errno alone). */
	errno = 0;
	probe = io_uring_get_probe_ring(&u->ring);
	err = probe ? 0 : errno == ENOMEM ? -ENOMEM : -ENOSYS;
	for (k = 0; !err && k < SVQ_ARRAY_SIZE(ops); k++)
		if (!io_uring_opcode_supported(probe, ops[k]))
			err = -ENOSYS;
	if (probe)
		io_uring_free_probe(probe);
	if (err) {
		io_uring_queue_exit(&u->ring);
		free(u);
		return err;
	}
	if (p.features & IORING_FEAT_CQE_SKIP)
		u->write_flags = IOSQE_CQE_SKIP_SUCCESS;
	*out = u;
	return 0;
}

void svq_uring_free(struct svq_uring *u)
{
	if (!u)
		return;
	io_uring_queue_exit(&u->ring);
	free(u);
}

#else /* !SVQ_HAVE_URING */

int svq_uring_new(struct svqiso_loop *loop, struct svq_uring **out)
{
	(void)loop;
	(void)out;
	return -ENOSYS;
}

void svq_uring_free(struct svq_uring *u)
{
	(void)u;
}

int svq_uring_run(struct svqiso_loop *loop)
{
	(void)loop;
	return -ENOSYS;
}

#endif /* SVQ_HAVE_URING */
