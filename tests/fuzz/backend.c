/* SPDX-License-Identifier: MIT */
/*
 * The fuzz targets' vhost-user backend: see backend.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "vhost_user.h"
#include "backend.h"
#include "fuzz.h"

#define BIT(n)		(1ull << (n))

#define BE_MAX_REGIONS	64
#define BE_MAX_QUEUES	256

struct be_region {
	uint64_t gpa, size, uaddr;
	void *map;
	size_t len;
	uint8_t *hva;
};

struct be_queue {
	uint16_t num;
	uint64_t desc, avail, used;	/* the frontend's addresses */
	uint16_t last_avail, used_idx;
	int kick, call;
	bool started;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	char dir[64];
	char path[108];
	int listen;
	unsigned long accepted, finished;
	struct fzb_cfg cfg;
	unsigned long fault_conn;	/* the connection cfg's fault is for */
	/* The connection being served; the thread's alone. */
	struct fzb_cfg c;
	bool faulty;
	unsigned int matched;
	uint64_t acked;
	struct be_region reg[BE_MAX_REGIONS];
	unsigned int nreg;
	struct be_queue q[BE_MAX_QUEUES];
} BE = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.listen = -1,
};

static void be_unmap(struct be_region *r)
{
	if (r->map)
		munmap(r->map, r->len);
	r->map = NULL;
}

static bool be_map(struct be_region *r, const struct svq_vu_mem_region *w, int fd)
{
	uint64_t aligned = w->mmap_offset & ~4095ull;

	memset(r, 0, sizeof(*r));
	if (!w->memory_size || w->memory_size > (1ull << 32) ||
	    w->mmap_offset > (1ull << 40))
		return false;
	r->len = (size_t)(w->memory_size + (w->mmap_offset - aligned));
	r->map = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		      (off_t)aligned);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		return false;
	}
	r->hva = (uint8_t *)r->map + (w->mmap_offset - aligned);
	r->gpa = w->guest_phys_addr;
	r->size = w->memory_size;
	r->uaddr = w->userspace_addr;
	return true;
}

/* The frontend's address @ua of @len bytes, in the backend's mappings. */
static void *be_xlate(uint64_t ua, uint64_t len, uint64_t align)
{
	unsigned int i;

	if (ua % align)
		return NULL;
	for (i = 0; i < BE.nreg; i++) {
		const struct be_region *r = &BE.reg[i];

		if (ua >= r->uaddr && ua - r->uaddr <= r->size &&
		    len <= r->size - (ua - r->uaddr))
			return r->hva + (ua - r->uaddr);
	}
	return NULL;
}

static void be_stop(struct be_queue *q)
{
	if (q->kick >= 0)
		close(q->kick);
	if (q->call >= 0)
		close(q->call);
	q->kick = q->call = -1;
	q->started = false;
}

/* Complete every request made available, with nothing written (len 0). */
static void be_process(struct be_queue *q)
{
	uint16_t num = q->num, aidx, head;
	uint8_t *avail, *used;
	uint32_t elem[2];
	unsigned int n = 0;
	uint64_t one = 1;

	if (!q->started || !num || (num & (num - 1)))
		return;
	avail = be_xlate(q->avail, 6 + 2ull * num, 2);
	used = be_xlate(q->used, 6 + 8ull * num, 4);
	if (!avail || !used)
		return;
	/* Pairs with the driver's release store of avail->idx. */
	aidx = __atomic_load_n((uint16_t *)(avail + 2), __ATOMIC_ACQUIRE);
	while (q->last_avail != aidx && n < num) {
		memcpy(&head, avail + 4 + 2 * (q->last_avail % num), 2);
		elem[0] = head;
		elem[1] = 0;
		memcpy(used + 4 + 8 * (q->used_idx % num), elem, 8);
		q->last_avail++;
		q->used_idx++;
		n++;
	}
	if (BE.acked & BIT(29))	/* EVENT_IDX: kick me past what I took */
		__atomic_store_n((uint16_t *)(used + 4 + 8 * num), q->last_avail,
				 __ATOMIC_RELEASE);
	if (!n)
		return;
	/* Elements before index: pairs with the driver's acquire of used->idx. */
	__atomic_store_n((uint16_t *)(used + 2), q->used_idx, __ATOMIC_RELEASE);
	if (q->call >= 0 && write(q->call, &one, sizeof(one)) < 0)
		return;
}

static void be_reset(void)
{
	unsigned int i;

	for (i = 0; i < BE_MAX_QUEUES; i++) {
		be_stop(&BE.q[i]);
		BE.q[i].num = 0;
		BE.q[i].last_avail = BE.q[i].used_idx = 0;
	}
}

/* The fault, if this message is the one. */
static enum fzb_fault be_fault_for(const struct svq_vu_msg *m)
{
	if (!BE.faulty || BE.c.fault == FZB_NONE)
		return FZB_NONE;
	if (BE.c.fault_request && m->hdr.request != BE.c.fault_request)
		return FZB_NONE;
	if (BE.matched++ != BE.c.fault_nth)
		return FZB_NONE;
	return BE.c.fault;
}

static int be_reply(int conn, const struct svq_vu_msg *req, struct svq_vu_msg *r,
		    enum fzb_fault ft)
{
	r->hdr.request = req->hdr.request;
	r->hdr.flags = SVQ_VU_VERSION | SVQ_VU_FLAG_REPLY;
	if (ft == FZB_BAD_REPLY)
		r->hdr.size += 4;
	return svq_vu_send(conn, r);
}

static int be_reply_u64(int conn, const struct svq_vu_msg *req, uint64_t v,
			enum fzb_fault ft)
{
	struct svq_vu_msg r;

	svq_vu_msg_init(&r, 0, sizeof(uint64_t));
	r.payload.u64 = v;
	return be_reply(conn, req, &r, ft);
}

/* One request; < 0: the connection ends. */
static int be_handle(int conn, struct svq_vu_msg *m)
{
	enum fzb_fault ft = be_fault_for(m);
	struct svq_vu_msg r;
	struct be_queue *q;
	unsigned int i, n;
	uint32_t idx = m->payload.state.index;
	int rc = 0;

	if (ft == FZB_HANGUP)
		return -ECONNRESET;
	q = &BE.q[idx % BE_MAX_QUEUES];
	switch (m->hdr.request) {
	case SVQ_VU_GET_FEATURES:
		return be_reply_u64(conn, m, BE.c.features, ft);
	case SVQ_VU_GET_PROTOCOL_FEATURES:
		return be_reply_u64(conn, m, BE.c.protocol, ft);
	case SVQ_VU_GET_QUEUE_NUM:
		return be_reply_u64(conn, m, BE.c.queue_num, ft);
	case SVQ_VU_GET_MAX_MEM_SLOTS:
		return be_reply_u64(conn, m, BE.c.mem_slots, ft);
	case SVQ_VU_SET_FEATURES:
		BE.acked = m->payload.u64;
		break;
	case SVQ_VU_RESET_OWNER:
	case SVQ_VU_RESET_DEVICE:
		be_reset();
		break;
	case SVQ_VU_SET_MEM_TABLE:
		for (i = 0; i < BE.nreg; i++)
			be_unmap(&BE.reg[i]);
		BE.nreg = 0;
		n = m->payload.mem.nregions;
		for (i = 0; i < n && i < m->nfds && i < SVQ_VU_MEM_REGIONS; i++)
			if (be_map(&BE.reg[BE.nreg], &m->payload.mem.regions[i],
				   m->fds[i]))
				BE.nreg++;
		break;
	case SVQ_VU_ADD_MEM_REG:
		if (m->nfds == 1 && BE.nreg < BE_MAX_REGIONS &&
		    be_map(&BE.reg[BE.nreg], &m->payload.mem_reg.region, m->fds[0]))
			BE.nreg++;
		break;
	case SVQ_VU_REM_MEM_REG:
		for (i = 0; i < BE.nreg; i++) {
			if (BE.reg[i].gpa != m->payload.mem_reg.region.guest_phys_addr)
				continue;
			be_unmap(&BE.reg[i]);
			BE.reg[i] = BE.reg[--BE.nreg];
			break;
		}
		break;
	case SVQ_VU_SET_VRING_NUM:
		q->num = (uint16_t)m->payload.state.num;
		break;
	case SVQ_VU_SET_VRING_ADDR:
		q->desc = m->payload.addr.desc;
		q->avail = m->payload.addr.avail;
		q->used = m->payload.addr.used;
		break;
	case SVQ_VU_SET_VRING_BASE:
		q->last_avail = (uint16_t)m->payload.state.num;
		break;
	case SVQ_VU_GET_VRING_BASE:
		be_process(q);	/* what it was kicked for is done first */
		be_stop(q);
		svq_vu_msg_init(&r, 0, sizeof(r.payload.state));
		r.payload.state.index = idx;
		r.payload.state.num = ft == FZB_LIE_BASE ? BE.c.lie : q->last_avail;
		return be_reply(conn, m, &r, ft == FZB_BAD_REPLY ? ft : FZB_NONE);
	case SVQ_VU_SET_VRING_KICK:
	case SVQ_VU_SET_VRING_CALL:
	case SVQ_VU_SET_VRING_ERR:
		q = &BE.q[m->payload.u64 & SVQ_VU_VRING_IDX_MASK];
		if (m->hdr.request == SVQ_VU_SET_VRING_KICK) {
			uint16_t *used;

			if (q->kick >= 0)
				close(q->kick);
			q->kick = m->nfds ? m->fds[0] : -1;
			q->started = true;
			/* Where the ring's used index is: a restart goes on from it. */
			used = be_xlate(q->used, 4, 4);
			q->used_idx = used ? __atomic_load_n(used + 1, __ATOMIC_ACQUIRE) :
					     q->last_avail;
		} else if (m->hdr.request == SVQ_VU_SET_VRING_CALL) {
			if (q->call >= 0)
				close(q->call);
			q->call = m->nfds ? m->fds[0] : -1;
		} else if (m->nfds) {
			close(m->fds[0]);
		}
		m->nfds = 0;	/* kept or closed */
		break;
	case SVQ_VU_GET_CONFIG:
		r = *m;
		r.nfds = 0;
		if (r.payload.config.size <= SVQ_VU_CONFIG_MAX)
			memset(r.payload.config.payload, 0x3c, r.payload.config.size);
		return be_reply(conn, m, &r, ft);
	default:	/* SET_OWNER, SET_PROTOCOL_FEATURES, SET_VRING_ENABLE,
			 * SET_CONFIG, NET_SET_MTU: nothing to keep */
		break;
	}
	if (m->hdr.flags & SVQ_VU_FLAG_NEED_REPLY)
		rc = be_reply_u64(conn, m, ft == FZB_NACK, ft);
	return rc;
}

static void be_serve(int conn)
{
	struct pollfd pfd[1 + BE_MAX_QUEUES];
	struct svq_vu_msg m;
	unsigned int i, n, active;
	uint64_t v;
	int rc;

	BE.acked = 0;
	BE.matched = 0;
	for (i = 0; i < BE_MAX_QUEUES; i++) {
		memset(&BE.q[i], 0, sizeof(BE.q[i]));
		BE.q[i].kick = BE.q[i].call = -1;
	}
	for (;;) {
		pfd[0] = (struct pollfd){ .fd = conn, .events = POLLIN };
		for (i = 0, n = 1, active = 0; i < BE_MAX_QUEUES; i++) {
			if (!BE.q[i].started)
				continue;
			active++;
			if (BE.q[i].kick >= 0)
				pfd[n++] = (struct pollfd){ .fd = BE.q[i].kick,
							    .events = POLLIN };
		}
		/* A ring kicked while its event index said not to is polled. */
		poll(pfd, n, active ? 2 : 1000);
		for (i = 1; i < n; i++)
			if (pfd[i].revents & POLLIN &&
			    read(pfd[i].fd, &v, sizeof(v)) < 0)
				continue;
		for (i = 0; i < BE_MAX_QUEUES; i++)
			be_process(&BE.q[i]);
		if (!pfd[0].revents)
			continue;
		rc = svq_vu_recv(conn, &m, 1000);
		if (rc)
			break;
		rc = be_handle(conn, &m);
		for (i = 0; i < m.nfds; i++)
			if (m.fds[i] >= 0)
				close(m.fds[i]);
		if (rc)
			break;
	}
	be_reset();
	for (i = 0; i < BE.nreg; i++)
		be_unmap(&BE.reg[i]);
	BE.nreg = 0;
}

static void *be_thread(void *arg)
{
	struct pollfd pfd = { .fd = BE.listen, .events = POLLIN };
	int conn;

	(void)arg;
	for (;;) {
		if (poll(&pfd, 1, -1) < 0)
			continue;
		pthread_mutex_lock(&BE.lock);
		conn = accept4(BE.listen, NULL, NULL, SOCK_CLOEXEC);
		if (conn >= 0) {
			BE.accepted++;
			BE.c = BE.cfg;
			BE.faulty = BE.accepted == BE.fault_conn;
		}
		pthread_mutex_unlock(&BE.lock);
		if (conn < 0)
			continue;
		be_serve(conn);
		close(conn);
		pthread_mutex_lock(&BE.lock);
		BE.finished++;
		pthread_cond_broadcast(&BE.cond);
		pthread_mutex_unlock(&BE.lock);
	}
	return NULL;
}

static void be_cleanup(void)
{
	unlink(BE.path);
	rmdir(BE.dir);
}

const char *fzb_start(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *tmp = getenv("TMPDIR");

	if (BE.listen >= 0)
		return BE.path;
	snprintf(BE.dir, sizeof(BE.dir), "%s/svqiso-fuzz-XXXXXX",
		 tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	FZ_CHECK(mkdtemp(BE.dir), "mkdtemp: %s", strerror(errno));
	snprintf(BE.path, sizeof(BE.path), "%s/backend.sock", BE.dir);
	memcpy(sa.sun_path, BE.path, strlen(BE.path) + 1);
	BE.listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	FZ_CHECK(BE.listen >= 0, "socket");
	FZ_CHECK(!bind(BE.listen, (struct sockaddr *)&sa, sizeof(sa)), "bind");
	FZ_CHECK(!listen(BE.listen, 16), "listen");
	atexit(be_cleanup);
	FZ_CHECK(!pthread_create(&BE.thread, NULL, be_thread, NULL), "pthread_create");
	return BE.path;
}

void fzb_configure(const struct fzb_cfg *cfg)
{
	pthread_mutex_lock(&BE.lock);
	BE.cfg = *cfg;
	BE.fault_conn = BE.accepted + 1;
	pthread_mutex_unlock(&BE.lock);
}

/* Wait until the backend has finished every connection the proxy made. */
void fzb_wait_idle(void)
{
	struct pollfd pfd = { .fd = BE.listen, .events = POLLIN };
	struct timespec ts;
	int i;

	pthread_mutex_lock(&BE.lock);
	for (i = 0; i < 20000; i++) {
		if (BE.accepted == BE.finished && poll(&pfd, 1, 0) == 0)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&BE.cond, &BE.lock, &ts);
	}
	pthread_mutex_unlock(&BE.lock);
	FZ_CHECK(i < 20000, "the backend is still busy after 20 s");
}

