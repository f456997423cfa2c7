/* SPDX-License-Identifier: MIT */
/*
 * vhost-user message codec: one message and its fds over a unix stream
 * socket. Reads take exactly the bytes a message has, never more, so a
 * receive cannot swallow the start of the next message or its fds.
 */
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vhost_user.h"

void svq_vu_msg_init(struct svq_vu_msg *m, uint32_t request, uint32_t size)
{
	unsigned int i;

	memset(m, 0, sizeof(*m));
	m->hdr.request = request;
	m->hdr.flags = SVQ_VU_VERSION;
	m->hdr.size = size;
	for (i = 0; i < SVQ_VU_MAX_FDS; i++)
		m->fds[i] = -1;
}

unsigned int svq_vu_fds_allowed(const struct svq_vu_hdr *hdr)
{
	if (hdr->flags & SVQ_VU_FLAG_REPLY)
		return hdr->request == SVQ_VU_GET_INFLIGHT_FD ? 1 : 0;

	switch (hdr->request) {
	case SVQ_VU_SET_MEM_TABLE:
		return SVQ_VU_MAX_FDS;
	case SVQ_VU_SET_LOG_BASE:
	case SVQ_VU_SET_LOG_FD:
	case SVQ_VU_SET_VRING_KICK:
	case SVQ_VU_SET_VRING_CALL:
	case SVQ_VU_SET_VRING_ERR:
	case SVQ_VU_SET_BACKEND_REQ_FD:
	case SVQ_VU_SET_INFLIGHT_FD:
	case SVQ_VU_ADD_MEM_REG:
	case SVQ_VU_REM_MEM_REG:
		return 1;
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for @events until @deadline (CLOCK_MONOTONIC ms): 0 or -errno. */
static int wait_for(int sock, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = sock, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - now_ms();
		if (left < 0)
			left = 0;
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (pfd.revents & POLLNVAL)
			return -EBADF;
		/* POLLHUP/POLLERR: the next call reports what happened. */
		return 0;
	}
}

int svq_vu_send(int sock, const struct svq_vu_msg *m)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SVQ_VU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2];
	struct msghdr mh;
	struct cmsghdr *c;
	unsigned int i, first = 0;
	size_t left;
	ssize_t n;
	int rc;

	if (!m || m->nfds > SVQ_VU_MAX_FDS ||
	    m->hdr.size > sizeof(m->payload))
		return -EINVAL;
	for (i = 0; i < m->nfds; i++)
		if (m->fds[i] < 0)
			return -EINVAL;

	iov[0].iov_base = (void *)&m->hdr;
	iov[0].iov_len = SVQ_VU_HDR_SIZE;
	iov[1].iov_base = (void *)&m->payload;
	iov[1].iov_len = m->hdr.size;
	left = SVQ_VU_HDR_SIZE + (size_t)m->hdr.size;

	memset(&mh, 0, sizeof(mh));
	if (m->nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * m->nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * m->nfds);
		memcpy(CMSG_DATA(c), m->fds, sizeof(int) * m->nfds);
	}

	while (left) {
		/* Skip the iovecs already out. */
		while (iov[first].iov_len == 0)
			first++;
		mh.msg_iov = &iov[first];
		mh.msg_iovlen = 2 - first;
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				rc = wait_for(sock, POLLOUT,
					      now_ms() + SVQ_VU_SEND_TIMEOUT_MS);
				if (rc)
					return rc;
				continue;
			}
			if (errno == EPIPE || errno == ECONNRESET)
				return -ECONNRESET;
			return -errno;
		}
		/* The fds went with the first byte; never send them twice. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		left -= (size_t)n;
		for (i = first; i < 2 && n > 0; i++) {
			size_t step = (size_t)n < iov[i].iov_len ?
				(size_t)n : iov[i].iov_len;

			iov[i].iov_base = (char *)iov[i].iov_base + step;
			iov[i].iov_len -= step;
			n -= (ssize_t)step;
		}
	}
	return 0;
}

/* Fds received so far for one message. */
struct rx_fds {
	int fds[SVQ_VU_MAX_FDS];
	unsigned int n;
	bool truncated;
};

static void rx_close(struct rx_fds *rx)
{
	while (rx->n)
		close(rx->fds[--rx->n]);
}

static void rx_take(struct rx_fds *rx, struct msghdr *mh)
{
	struct cmsghdr *c;
	unsigned int i, cnt;
	int fd;

	if (mh->msg_flags & MSG_CTRUNC)
		rx->truncated = true;
	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		cnt = (unsigned int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < cnt; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (rx->n < SVQ_VU_MAX_FDS) {
				rx->fds[rx->n++] = fd;
			} else {
				close(fd);
				rx->truncated = true;
			}
		}
	}
}

/*
 * Read exactly @len bytes by @deadline, collecting any fds into @rx.
 * @start: nothing of the message was read before; EOF then is -ECONNRESET.
 */
static int read_full(int sock, void *buf, size_t len, int64_t deadline,
		     struct rx_fds *rx, bool start)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SVQ_VU_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	size_t got = 0;
	struct iovec iov;
	struct msghdr mh;
	ssize_t n;
	int rc;

	while (got < len) {
		rc = wait_for(sock, POLLIN, deadline);
		if (rc)
			return rc;
		iov.iov_base = (char *)buf + got;
		iov.iov_len = len - got;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			if (errno == ECONNRESET)
				return -ECONNRESET;
			return -errno;
		}
		rx_take(rx, &mh);
		if (rx->truncated)
			return -EPROTO;
		if (n == 0)
			return start && got == 0 ? -ECONNRESET : -EPROTO;
		got += (size_t)n;
	}
	return 0;
}

/* Read and drop @len bytes; fds that come with them are closed. */
static int drain(int sock, size_t len, int64_t deadline, struct rx_fds *rx)
{
	char scratch[512];
	size_t step;
	int rc;

	while (len) {
		step = len < sizeof(scratch) ? len : sizeof(scratch);
		rc = read_full(sock, scratch, step, deadline, rx, false);
		if (rc)
			return rc;
		len -= step;
	}
	return 0;
}

int svq_vu_recv(int sock, struct svq_vu_msg *m, int timeout_ms)
{
	struct rx_fds rx = { .n = 0 };
	int64_t deadline;
	unsigned int allowed;
	int rc;

	if (!m || timeout_ms < 0)
		return -EINVAL;
	svq_vu_msg_init(m, 0, 0);
	deadline = now_ms() + timeout_ms;

	rc = read_full(sock, &m->hdr, SVQ_VU_HDR_SIZE, deadline, &rx, true);
	if (rc)
		goto fail;

	if (m->hdr.size > sizeof(m->payload)) {
		if (m->hdr.size > SVQ_VU_DRAIN_MAX) {
			rc = -EPROTO;
			goto fail;
		}
		rc = drain(sock, m->hdr.size, deadline, &rx);
		if (rc == 0)
			rc = -EMSGSIZE;
		goto fail;
	}

	rc = read_full(sock, &m->payload, m->hdr.size, deadline, &rx, false);
	if (rc)
		goto fail;

	allowed = svq_vu_fds_allowed(&m->hdr);
	while (rx.n > allowed) {
		close(rx.fds[--rx.n]);
		m->nfds_dropped++;
	}
	memcpy(m->fds, rx.fds, rx.n * sizeof(int));
	m->nfds = rx.n;
	return 0;

fail:
	rx_close(&rx);
	return rc;
}

/* Payload bytes the reply to @req has, or 0 if @req has no reply. */
static uint32_t reply_size(const struct svq_vu_msg *req)
{
	switch (req->hdr.request) {
	case SVQ_VU_GET_FEATURES:
	case SVQ_VU_GET_PROTOCOL_FEATURES:
	case SVQ_VU_GET_QUEUE_NUM:
	case SVQ_VU_GET_MAX_MEM_SLOTS:
		return sizeof(uint64_t);
	case SVQ_VU_GET_VRING_BASE:
		return sizeof(struct svq_vu_vring_state);
	case SVQ_VU_GET_CONFIG:
		return SVQ_VU_CONFIG_HDR_SIZE + req->payload.config.size;
	}
	return 0;
}

static bool reply_ok(const struct svq_vu_msg *req,
		     const struct svq_vu_msg *reply, uint32_t size)
{
	if (reply->hdr.request != req->hdr.request ||
	    !(reply->hdr.flags & SVQ_VU_FLAG_REPLY) ||
	    (reply->hdr.flags & SVQ_VU_VERSION_MASK) != SVQ_VU_VERSION ||
	    reply->hdr.size != size)
		return false;
	if (req->hdr.request == SVQ_VU_GET_CONFIG &&
	    (reply->payload.config.offset != req->payload.config.offset ||
	     reply->payload.config.size != req->payload.config.size))
		return false;
	return true;
}

int svq_vu_call(int sock, struct svq_vu_msg *req, struct svq_vu_msg *reply,
		bool reply_ack, int timeout_ms)
{
	struct svq_vu_msg ack;
	uint32_t size;
	int rc;

	if (!req)
		return -EINVAL;
	if (req->hdr.request == SVQ_VU_GET_CONFIG &&
	    (req->hdr.size != SVQ_VU_CONFIG_HDR_SIZE + req->payload.config.size ||
	     req->payload.config.size > SVQ_VU_CONFIG_MAX))
		return -EINVAL;
	size = reply_size(req);
	if (size && !reply)
		return -EINVAL;

	req->hdr.flags = SVQ_VU_VERSION;
	/* A request with a reply of its own is answered once, ack or not. */
	if (!size && reply_ack)
		req->hdr.flags |= SVQ_VU_FLAG_NEED_REPLY;

	rc = svq_vu_send(sock, req);
	if (rc)
		return rc;
	if (!size && !reply_ack)
		return 0;

	if (!size) {
		size = sizeof(uint64_t);
		if (!reply)
			reply = &ack;
	}
	rc = svq_vu_recv(sock, reply, timeout_ms);
	if (rc)
		return rc;
	/* No reply taken here carries fds. svq_vu_recv() closed any that came,
	 * but for one naming GET_INFLIGHT_FD, which a backend may send in
	 * answer to anything: that one is refused below, its fd closed here. */
	while (reply->nfds)
		close(reply->fds[--reply->nfds]);
	if (!reply_ok(req, reply, size))
		return -EPROTO;
	if ((req->hdr.flags & SVQ_VU_FLAG_NEED_REPLY) && reply->payload.u64)
		return -EIO;
	return 0;
}
