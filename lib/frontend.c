/* SPDX-License-Identifier: MIT */
/*
 * vhost-user frontend session: svqiso facing an unmodified backend with
 * isolated memory only. See frontend.h.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "frontend.h"
#include "policy.h"
#include "vhost_user.h"

struct svq_fe {
	int sock;		/* -1 once the session is dead */
	int timeout_ms;
	bool reply_ack;		/* REPLY_ACK agreed: every request is acked */
	svqiso_log_fn log;
	void *log_ctx;
	uint64_t offered;	/* GET_FEATURES */
	uint64_t acked;		/* SET_FEATURES */
	uint64_t protocol;	/* SET_PROTOCOL_FEATURES */
	unsigned int queue_num;
	unsigned int max_queues;	/* indexes taken: queue_num or the opts' */
	unsigned int queues_per_count;	/* GET_QUEUE_NUM's unit: 1, or 2 for pairs */
	unsigned int mem_slots;
	/* What the backend holds, for SET_MEM_TABLE and the slot count. */
	struct svqiso_region *regions;
	unsigned int nregions;
};

/*
 * Protocol features this frontend honours: isolation's policy (policy.h)
 * less what it has no use for (RARP, BACKEND_REQ and STATUS are a full
 * VMM's: it sends no RARP, opens no backend channel, sends no status).
 */
#define FE_PROTOCOL_OK	(SVQ_PROTO_ISOLATION_OK &				\
			 ((1ull << SVQ_VU_PROTOCOL_F_MQ) |			\
			  (1ull << SVQ_VU_PROTOCOL_F_REPLY_ACK) |		\
			  (1ull << SVQ_VU_PROTOCOL_F_NET_MTU) |			\
			  (1ull << SVQ_VU_PROTOCOL_F_CONFIG) |			\
			  (1ull << SVQ_VU_PROTOCOL_F_RESET_DEVICE) |		\
			  (1ull << SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS)))

static bool has_protocol(const struct svq_fe *fe, unsigned int bit)
{
	return fe->protocol & (1ull << bit);
}

/* End the session: every later call returns -ENOTCONN. */
static int fe_kill(struct svq_fe *fe, uint32_t request, int rc)
{
	svq_log(fe->log, fe->log_ctx, SVQISO_LOG_ERR,
		"vhost-user: request %u failed (%s): session closed",
		request, strerror(-rc));
	if (fe->sock >= 0) {
		/* Ended for every holder of the socket (an adapter may keep a
		 * duplicate to watch it), so the backend sees it end too. */
		shutdown(fe->sock, SHUT_RDWR);
		close(fe->sock);
	}
	fe->sock = -1;
	return rc;
}

/* The session dies with any error that may leave the stream out of step. */
static int fe_call(struct svq_fe *fe, struct svq_vu_msg *req,
		   struct svq_vu_msg *reply)
{
	uint32_t request = req->hdr.request;
	int rc;

	if (fe->sock < 0)
		return -ENOTCONN;
	rc = svq_vu_call(fe->sock, req, reply, fe->reply_ack, fe->timeout_ms);
	if (!rc)
		return 0;
	if (rc == -EIO) {
		svq_log(fe->log, fe->log_ctx, SVQISO_LOG_ERR,
			"vhost-user: backend refused request %u", request);
		return rc;
	}
	if (rc != -EINVAL)
		return fe_kill(fe, request, rc);
	return rc;
}

static int fe_get_u64(struct svq_fe *fe, uint32_t request, uint64_t *val)
{
	struct svq_vu_msg m, r;
	int rc;

	svq_vu_msg_init(&m, request, 0);
	rc = fe_call(fe, &m, &r);
	if (!rc)
		*val = r.payload.u64;
	return rc;
}

static int fe_set_u64(struct svq_fe *fe, uint32_t request, uint64_t val)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, request, sizeof(uint64_t));
	m.payload.u64 = val;
	return fe_call(fe, &m, NULL);
}

static int fe_set_state(struct svq_fe *fe, uint32_t request, unsigned int index,
			uint32_t num)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, request, sizeof(struct svq_vu_vring_state));
	m.payload.state.index = index;
	m.payload.state.num = num;
	return fe_call(fe, &m, NULL);
}

/* SET_VRING_KICK/CALL: the u64 is the index, bit 8 "no fd". */
static int fe_set_vring_fd(struct svq_fe *fe, uint32_t request,
			   unsigned int index, int fd)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, request, sizeof(uint64_t));
	m.payload.u64 = index & SVQ_VU_VRING_IDX_MASK;
	if (fd < 0) {
		m.payload.u64 |= SVQ_VU_VRING_NOFD;
	} else {
		m.fds[0] = fd;
		m.nfds = 1;
	}
	return fe_call(fe, &m, NULL);
}

static int fe_negotiate_protocol(struct svq_fe *fe)
{
	uint64_t offered, val;
	int rc;

	rc = fe_get_u64(fe, SVQ_VU_GET_PROTOCOL_FEATURES, &offered);
	if (rc)
		return rc;
	fe->protocol = svq_feat_protocol(offered, FE_PROTOCOL_OK, fe->log,
					 fe->log_ctx, "vhost-user",
					 "not used by this frontend");
	rc = fe_set_u64(fe, SVQ_VU_SET_PROTOCOL_FEATURES, fe->protocol);
	if (rc)
		return rc;
	fe->reply_ack = has_protocol(fe, SVQ_VU_PROTOCOL_F_REPLY_ACK);

	if (has_protocol(fe, SVQ_VU_PROTOCOL_F_MQ)) {
		rc = fe_get_u64(fe, SVQ_VU_GET_QUEUE_NUM, &val);
		if (rc)
			return rc;
		/* The index is 8 bits on the wire. */
		if (!val || val > 0x100 / fe->queues_per_count)
			return fe_kill(fe, SVQ_VU_GET_QUEUE_NUM, -EPROTO);
		fe->queue_num = (unsigned int)val * fe->queues_per_count;
	}
	if (has_protocol(fe, SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS)) {
		rc = fe_get_u64(fe, SVQ_VU_GET_MAX_MEM_SLOTS, &val);
		if (rc)
			return rc;
		if (!val)
			return fe_kill(fe, SVQ_VU_GET_MAX_MEM_SLOTS, -EPROTO);
		/* More slots than a memory map can hold are of no use. */
		if (val > SVQISO_MEM_MAX_REGIONS)
			val = SVQISO_MEM_MAX_REGIONS;
		fe->mem_slots = (unsigned int)val;
	}
	return 0;
}

static bool fe_opts_ok(const struct svq_fe_opts *opts)
{
	return SVQ_OPTS_OK(svq_fe_opts, opts) &&
	       SVQ_OPTS_GET(opts, timeout_ms, 0) >= 0 &&
	       SVQ_OPTS_GET(opts, max_queues, 0) <= 0x100 &&
	       !(SVQ_OPTS_GET(opts, flags, 0) & ~(uint64_t)SVQ_FE_QUEUE_PAIRS);
}

/* Negotiate over @sock, which the new session owns from here on. */
static int fe_open(int sock, const struct svq_fe_opts *opts,
		   struct svq_fe **out)
{
	struct svq_vu_msg m;
	struct svq_fe *fe;
	int rc;

	fe = calloc(1, sizeof(*fe));
	if (!fe) {
		close(sock);
		return -ENOMEM;
	}
	fe->sock = sock;
	fe->log = SVQ_OPTS_GET(opts, log, NULL);
	fe->log_ctx = SVQ_OPTS_GET(opts, log_ctx, NULL);
	fe->timeout_ms = SVQ_OPTS_GET(opts, timeout_ms, 0);
	if (!fe->timeout_ms)
		fe->timeout_ms = SVQ_FE_TIMEOUT_MS;
	fe->queues_per_count = SVQ_OPTS_GET(opts, flags, 0) & SVQ_FE_QUEUE_PAIRS ? 2 : 1;
	fe->queue_num = fe->queues_per_count;	/* one, without MQ */
	fe->mem_slots = SVQ_FE_MAX_TABLE;

	svq_vu_msg_init(&m, SVQ_VU_SET_OWNER, 0);	/* no payload */
	rc = fe_call(fe, &m, NULL);
	if (!rc)
		rc = fe_get_u64(fe, SVQ_VU_GET_FEATURES, &fe->offered);
	if (!rc && (fe->offered & (1ull << SVQ_VU_F_PROTOCOL_FEATURES)))
		rc = fe_negotiate_protocol(fe);
	if (rc)
		goto err;

	fe->max_queues = (unsigned int)SVQ_OPTS_GET(opts, max_queues, 0);
	if (!fe->max_queues)
		fe->max_queues = fe->queue_num;
	fe->regions = calloc(fe->mem_slots, sizeof(*fe->regions));
	if (!fe->regions) {
		rc = -ENOMEM;
		goto err;
	}
	svq_log(fe->log, fe->log_ctx, SVQISO_LOG_DEBUG,
		"vhost-user: connected: features %#" PRIx64 " protocol %#" PRIx64
		" queues %u slots %u", fe->offered, fe->protocol, fe->queue_num,
		fe->mem_slots);
	*out = fe;
	return 0;
err:
	svq_fe_free(fe);
	return rc;
}

int svq_fe_connect(const char *path, const struct svq_fe_opts *opts,
		   struct svq_fe **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sock, rc;

	if (!path || !out || !fe_opts_ok(opts) ||
	    strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, strlen(path) + 1);

	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	if (connect(sock, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		close(sock);
		return rc;
	}
	return fe_open(sock, opts, out);
}

int svq_fe_connect_fd(int sock, const struct svq_fe_opts *opts,
		      struct svq_fe **out)
{
	if (sock < 0)
		return -EINVAL;
	if (!out || !fe_opts_ok(opts)) {
		close(sock);
		return -EINVAL;
	}
	return fe_open(sock, opts, out);
}

void svq_fe_free(struct svq_fe *fe)
{
	if (!fe)
		return;
	if (fe->sock >= 0)
		close(fe->sock);
	free(fe->regions);
	free(fe);
}

uint64_t svq_fe_offered_features(const struct svq_fe *fe)
{
	return fe ? fe->offered : 0;
}

uint64_t svq_fe_acked_features(const struct svq_fe *fe)
{
	return fe ? fe->acked : 0;
}

uint64_t svq_fe_protocol_features(const struct svq_fe *fe)
{
	return fe ? fe->protocol : 0;
}

unsigned int svq_fe_queue_num(const struct svq_fe *fe)
{
	return fe ? fe->queue_num : 0;
}

unsigned int svq_fe_max_queues(const struct svq_fe *fe)
{
	return fe ? fe->max_queues : 0;
}

unsigned int svq_fe_mem_slots(const struct svq_fe *fe)
{
	return fe ? fe->mem_slots : 0;
}

int svq_fe_fd(const struct svq_fe *fe)
{
	return fe ? fe->sock : -1;
}

unsigned int svq_fe_nr_regions(const struct svq_fe *fe)
{
	return fe ? fe->nregions : 0;
}

int svq_fe_set_features(struct svq_fe *fe, uint64_t wanted, uint64_t *agreed)
{
	uint64_t features, dropped;
	unsigned int bit;
	int rc;

	if (!fe)
		return -EINVAL;
	if (fe->sock < 0)
		return -ENOTCONN;
	/*
	 * Never ask for what was not offered; PROTOCOL_FEATURES is ours to set.
	 * LOG_ALL is a transport bit the shadow ring lacks: dropped below.
	 */
	wanted &= ~(1ull << SVQ_VU_F_PROTOCOL_FEATURES);
	features = wanted & fe->offered;
	dropped = features & SVQ_F_TRANSPORT & ~SVQ_F_SHADOW_OK;
	for (bit = 0; bit < 64; bit++) {
		if (dropped & (1ull << bit))
			svq_log(fe->log, fe->log_ctx, SVQISO_LOG_INFO,
				"vhost-user: masking feature bit %u: not "
				"implemented by the shadow ring", bit);
	}
	features &= ~dropped;
	if (fe->offered & (1ull << SVQ_VU_F_PROTOCOL_FEATURES))
		features |= 1ull << SVQ_VU_F_PROTOCOL_FEATURES;
	rc = fe_set_u64(fe, SVQ_VU_SET_FEATURES, features);
	if (rc)
		return rc;
	fe->acked = features;
	if (agreed)
		*agreed = features;
	return 0;
}

static void region_to_wire(const struct svqiso_region *r,
			   struct svq_vu_mem_region *w)
{
	w->guest_phys_addr = r->iova;
	w->memory_size = r->size;
	w->userspace_addr = (uintptr_t)r->uaddr;
	w->mmap_offset = r->fd_offset;
}

/* Without CONFIGURE_MEM_SLOTS the whole table goes every time. */
static int fe_send_mem_table(struct svq_fe *fe)
{
	struct svq_vu_msg m;
	unsigned int i;

	svq_vu_msg_init(&m, SVQ_VU_SET_MEM_TABLE,
			offsetof(struct svq_vu_mem_table, regions) +
			fe->nregions * sizeof(struct svq_vu_mem_region));
	m.payload.mem.nregions = fe->nregions;
	for (i = 0; i < fe->nregions; i++) {
		region_to_wire(&fe->regions[i], &m.payload.mem.regions[i]);
		m.fds[i] = fe->regions[i].fd;
	}
	m.nfds = fe->nregions;
	return fe_call(fe, &m, NULL);
}

/*
 * REM_MEM_REG carries the fd too: the spec lets a backend accept one, and
 * libvhost-user as in QEMU 7.2 refuses the message without it.
 */
static int fe_send_mem_reg(struct svq_fe *fe, uint32_t request,
			   const struct svqiso_region *r)
{
	struct svq_vu_msg m;

	svq_vu_msg_init(&m, request, sizeof(struct svq_vu_mem_reg));
	region_to_wire(r, &m.payload.mem_reg.region);
	m.fds[0] = r->fd;
	m.nfds = 1;
	return fe_call(fe, &m, NULL);
}

int svq_fe_region_add(void *ctx, const struct svqiso_region *region)
{
	struct svq_fe *fe = ctx;
	int rc;

	if (!fe || !region || region->fd < 0)
		return -EINVAL;
	if (fe->sock < 0)
		return -ENOTCONN;
	if (fe->nregions >= fe->mem_slots) {
		svq_log(fe->log, fe->log_ctx, SVQISO_LOG_WARN,
			"vhost-user: all %u memory slots in use", fe->mem_slots);
		return -ENOSPC;
	}
	fe->regions[fe->nregions++] = *region;
	if (has_protocol(fe, SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS))
		rc = fe_send_mem_reg(fe, SVQ_VU_ADD_MEM_REG, region);
	else
		rc = fe_send_mem_table(fe);
	/*
	 * A region made while a queue runs (a one-off region) is used as
	 * soon as this returns, and the backend learns of that through its
	 * kick eventfd, not this socket. Without REPLY_ACK nothing says it
	 * read the message first: a request with a reply does (QEMU does
	 * the same with GET_FEATURES).
	 */
	if (!rc && !fe->reply_ack) {
		uint64_t features;

		rc = fe_get_u64(fe, SVQ_VU_GET_FEATURES, &features);
	}
	if (rc)
		fe->nregions--;
	return rc;
}

int svq_fe_region_del(void *ctx, const struct svqiso_region *region)
{
	struct svq_fe *fe = ctx;
	unsigned int i;

	if (!fe || !region)
		return -EINVAL;
	for (i = 0; i < fe->nregions; i++) {
		if (fe->regions[i].iova == region->iova)
			break;
	}
	if (i == fe->nregions)
		return -ENOENT;
	/* Forget it whatever the backend says: the iso unmaps it next. */
	memmove(&fe->regions[i], &fe->regions[i + 1],
		(fe->nregions - i - 1) * sizeof(*fe->regions));
	fe->nregions--;
	if (fe->sock < 0)
		return -ENOTCONN;
	if (has_protocol(fe, SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS))
		return fe_send_mem_reg(fe, SVQ_VU_REM_MEM_REG, region);
	return fe_send_mem_table(fe);
}

int svq_fe_vring_start(struct svq_fe *fe, unsigned int index,
		       const struct svqiso_shadow_info *info, int kick_fd,
		       int call_fd)
{
	struct svq_vu_msg m;
	int rc;

	if (!fe || !info || index >= fe->max_queues || kick_fd < 0)
		return -EINVAL;
	if (fe->sock < 0)
		return -ENOTCONN;
	if (info->layout == SVQISO_LAYOUT_PACKED &&
	    !(fe->acked & (1ull << SVQ_FE_F_RING_PACKED)))
		return -ENOTSUP;

	rc = fe_set_state(fe, SVQ_VU_SET_VRING_NUM, index, info->num);
	if (rc)
		return rc;

	/* Wire order: desc, used (device area), avail (driver area). */
	svq_vu_msg_init(&m, SVQ_VU_SET_VRING_ADDR, sizeof(struct svq_vu_vring_addr));
	m.payload.addr.index = index;
	m.payload.addr.desc = info->uaddr.desc;
	m.payload.addr.used = info->uaddr.device;
	m.payload.addr.avail = info->uaddr.driver;
	rc = fe_call(fe, &m, NULL);
	if (rc)
		return rc;

	rc = fe_set_state(fe, SVQ_VU_SET_VRING_BASE, index, info->base);
	if (!rc)
		rc = fe_set_vring_fd(fe, SVQ_VU_SET_VRING_KICK, index, kick_fd);
	if (!rc)
		rc = fe_set_vring_fd(fe, SVQ_VU_SET_VRING_CALL, index, call_fd);
	if (!rc && (fe->acked & (1ull << SVQ_VU_F_PROTOCOL_FEATURES)))
		rc = fe_set_state(fe, SVQ_VU_SET_VRING_ENABLE, index, 1);
	return rc;
}

int svq_fe_vring_stop(struct svq_fe *fe, unsigned int index, uint32_t *base)
{
	struct svq_vu_msg m, r;
	int rc;

	if (!fe || !base || index >= fe->max_queues)
		return -EINVAL;
	svq_vu_msg_init(&m, SVQ_VU_GET_VRING_BASE, sizeof(struct svq_vu_vring_state));
	m.payload.state.index = index;
	rc = fe_call(fe, &m, &r);
	if (rc)
		return rc;
	if (r.payload.state.index != index)
		return fe_kill(fe, SVQ_VU_GET_VRING_BASE, -EPROTO);
	*base = r.payload.state.num;
	return 0;
}

int svq_fe_get_config(struct svq_fe *fe, uint32_t offset, void *buf,
		      uint32_t len)
{
	struct svq_vu_msg m, r;
	int rc;

	if (!fe || !buf || !len || len > SVQ_VU_CONFIG_MAX)
		return -EINVAL;
	if (fe->sock < 0)
		return -ENOTCONN;
	if (!has_protocol(fe, SVQ_VU_PROTOCOL_F_CONFIG))
		return -ENOTSUP;
	svq_vu_msg_init(&m, SVQ_VU_GET_CONFIG, SVQ_VU_CONFIG_HDR_SIZE + len);
	m.payload.config.offset = offset;
	m.payload.config.size = len;
	rc = fe_call(fe, &m, &r);
	if (!rc)
		memcpy(buf, r.payload.config.payload, len);
	return rc;
}

int svq_fe_set_config(struct svq_fe *fe, uint32_t offset, const void *buf,
		      uint32_t len, uint32_t flags)
{
	struct svq_vu_msg m;

	if (!fe || !buf || !len || len > SVQ_VU_CONFIG_MAX ||
	    offset > UINT32_MAX - len || (flags & ~SVQ_VU_CONFIG_F_MIGRATION))
		return -EINVAL;
	if (fe->sock < 0)
		return -ENOTCONN;
	if (!has_protocol(fe, SVQ_VU_PROTOCOL_F_CONFIG))
		return -ENOTSUP;
	svq_vu_msg_init(&m, SVQ_VU_SET_CONFIG, SVQ_VU_CONFIG_HDR_SIZE + len);
	m.payload.config.offset = offset;
	m.payload.config.size = len;
	m.payload.config.flags = flags;
	memcpy(m.payload.config.payload, buf, len);
	return fe_call(fe, &m, NULL);
}

int svq_fe_vring_enable(struct svq_fe *fe, unsigned int index, bool on)
{
	if (!fe || index >= fe->max_queues)
		return -EINVAL;
	if (fe->sock < 0)
		return -ENOTCONN;
	/* Without protocol features a ring is enabled once it has a kick fd. */
	if (!(fe->acked & (1ull << SVQ_VU_F_PROTOCOL_FEATURES)))
		return 0;
	return fe_set_state(fe, SVQ_VU_SET_VRING_ENABLE, index, on);
}

int svq_fe_call(struct svq_fe *fe, struct svq_vu_msg *req,
		struct svq_vu_msg *reply)
{
	if (!fe || !req || req->nfds)
		return -EINVAL;
	return fe_call(fe, req, reply);
}

int svq_fe_reset(struct svq_fe *fe)
{
	struct svq_vu_msg m;
	int rc;

	if (!fe)
		return -EINVAL;
	svq_vu_msg_init(&m, has_protocol(fe, SVQ_VU_PROTOCOL_F_RESET_DEVICE) ?
			SVQ_VU_RESET_DEVICE : SVQ_VU_RESET_OWNER, 0);
	rc = fe_call(fe, &m, NULL);
	if (rc)
		return rc;
	/* The device is back to its initial state: features are renegotiated. */
	fe->acked = 0;
	return 0;
}
