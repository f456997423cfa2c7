/* SPDX-License-Identifier: MIT */
/*
 * The vhost engine (lib/engine.c, lib/policy.c): what a VMM that owns its
 * vhost-user session drives, in one process.
 *
 * The test is the VMM: it feeds the engine the guest RAM table and the
 * guest's rings, plays the guest with the library's driver role over
 * malloc'd "guest RAM", and plays the backend with the device role over the
 * isolated regions the engine lists (svqiso_vhost_get_region()), as a real
 * backend would map them from the memory table it is sent. It never sends
 * a message: the engine has no session.
 */
#define _GNU_SOURCE	/* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <check.h>

#include <svqiso/svqiso.h>
#include "vring.h"

#define GUEST_BASE	0x40000000ull
#define GUEST_SIZE	(4u << 20)
#define RING_OFF	0x0ull		/* the guest ring: desc, then driver, device */
#define DATA_OFF	0x100000ull
#define NUM		64
#define SEG		512

/* Feature bits (VIRTIO 1.2, 6; vhost). */
#define F(b)		(1ull << (b))
#define F_INDIRECT	28
#define F_EVENT_IDX	29
#define F_VERSION_1	32
#define F_ACCESS_PLATFORM 33
#define F_PACKED	34
#define F_LOG_ALL	26
#define F_PROTOCOL	30

struct fx {
	int gfd;			/* guest RAM: a memfd */
	uint8_t *guest;			/* the guest's view of it */
	uint8_t *vmm;			/* the VMM's, in the engine's table */
	struct svqiso_vhost *vh;
	struct svq_drv gdrv;		/* the guest driver */
	struct svqiso_vring_addr gring;	/* its ring, in guest addresses */
	uint8_t glayout;
	struct svqiso_vhost_shadow sh;
	struct svqiso_mem *bmem;	/* the backend's map of what it got */
	struct svq_dev backend;
	bool backend_up;
	int guest_call;
	uint64_t gf, bf;		/* features as fx_open() agreed them */
	char logbuf[8192];
	unsigned int region_adds, region_dels;
};

static struct fx F;

static void log_cb(void *ctx, int level, const char *msg)
{
	size_t n = strlen(F.logbuf);

	(void)ctx;
	(void)level;
	snprintf(F.logbuf + n, sizeof(F.logbuf) - n, "%s\n", msg);
}

/* The next engine's pool_size (0: 1 MiB). */
static uint64_t fx_pool_size;

/* A region the engine made: a backend maps it as it comes (ADD_MEM_REG). */
static int region_add_cb(void *ctx, const struct svqiso_region *r)
{
	(void)ctx;
	F.region_adds++;
	if (F.bmem) {
		struct svqiso_mem_region mr = { .gpa = r->iova, .size = r->size,
						.hva = r->uaddr, .fd = r->fd };

		ck_assert_int_eq(svqiso_mem_add_region(F.bmem, &mr), 0);
	}
	return 0;
}

/* One it takes back (REM_MEM_REG). */
static int region_del_cb(void *ctx, const struct svqiso_region *r)
{
	(void)ctx;
	F.region_dels++;
	if (F.bmem)
		svqiso_mem_remove_region(F.bmem, r->iova);
	return 0;
}

static void *gpa_hva(uint64_t gpa)
{
	return F.guest + (gpa - GUEST_BASE);
}

static void engine_new(uint8_t shadow_layout, uint32_t flags)
{
	SVQISO_OPTS(svqiso_vhost_opts, o, .flags = flags,
		    .shadow_layout = shadow_layout,
		    .pool_size = fx_pool_size ? fx_pool_size : 1 << 20,
		    .region_add = region_add_cb, .region_del = region_del_cb,
		    .log = log_cb, .name = "t");

	ck_assert_int_eq(svqiso_vhost_new(&o, &F.vh), 0);
}

static uint8_t *map_guest(void)
{
	void *p = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		       F.gfd, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

/* Guest RAM, the engine with it, features agreed for @glayout. */
static void fx_open(uint8_t glayout, uint8_t slayout)
{
	struct svqiso_mem_region r;
	uint64_t offered = F(F_INDIRECT) | F(F_EVENT_IDX) | F(F_VERSION_1) |
			   F(F_PACKED) | F(F_PROTOCOL) | 0xffull;
	uint64_t gf, bf;

	memset(&F, 0, sizeof(F));
	F.guest_call = -1;
	F.gfd = memfd_create("guest", MFD_CLOEXEC);
	ck_assert_int_ge(F.gfd, 0);
	ck_assert_int_eq(ftruncate(F.gfd, GUEST_SIZE), 0);
	F.guest = map_guest();
	F.vmm = map_guest();
	engine_new(slayout, 0);
	r = (struct svqiso_mem_region){ .gpa = GUEST_BASE, .size = GUEST_SIZE,
					.hva = F.vmm, .fd = -1 };
	ck_assert_int_eq(svqiso_vhost_set_guest_mem(F.vh, &r, 1), 0);
	/* LOG_ALL is offered; a VMM acks it only while it migrates. */
	gf = svqiso_vhost_guest_features(F.vh, offered) & ~F(F_LOG_ALL);
	if (glayout == SVQISO_LAYOUT_SPLIT)
		gf &= ~F(F_PACKED);
	bf = svqiso_vhost_backend_features(F.vh, gf, offered);
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, gf, bf), 0);
	F.glayout = glayout;
	F.gf = gf;
	F.bf = bf;
}

/* The guest lays out its ring afresh. */
static void guest_ring(void)
{
	struct svq_drv_cfg dc = { .layout = F.glayout, .num = NUM,
				  .flags = SVQ_RING_F_EVENT_IDX | SVQ_RING_F_INDIRECT };
	uint64_t base = GUEST_BASE + RING_OFF;

	F.gring.desc = base;
	F.gring.driver = base + 16 * NUM;
	F.gring.device = base + 0x2000;
	dc.desc = gpa_hva(F.gring.desc);
	dc.driver = gpa_hva(F.gring.driver);
	dc.device = gpa_hva(F.gring.device);
	ck_assert_int_eq(svq_drv_init(&F.gdrv, &dc), 0);
}

static struct svqiso_vhost_vring vring_at(uint32_t base)
{
	return (struct svqiso_vhost_vring){ .sz = sizeof(struct svqiso_vhost_vring),
					    .ring = F.gring, .num = NUM,
					    .layout = F.glayout, .base = base };
}

static uint32_t fresh(void)
{
	return F.glayout == SVQISO_LAYOUT_PACKED ? SVQISO_PACKED_FRESH_BASE : 0;
}

/* The backend maps every isolated region it was given and attaches to the
 * shadow ring at the base the engine says. */
static void backend_attach(void)
{
	SVQISO_OPTS(svqiso_mem_opts, mo);
	unsigned int i, n = svqiso_vhost_nr_regions(F.vh);
	struct svq_dev_cfg bc;

	if (F.backend_up)
		svq_dev_fini(&F.backend);
	svqiso_mem_free(F.bmem);
	ck_assert_int_eq(svqiso_mem_new(&mo, &F.bmem), 0);
	for (i = 0; i < n; i++) {
		struct svqiso_region r;
		struct svqiso_mem_region mr;

		ck_assert_int_eq(svqiso_vhost_get_region(F.vh, i, &r), 0);
		mr = (struct svqiso_mem_region){ .gpa = r.iova, .size = r.size,
						 .hva = r.uaddr, .fd = r.fd };
		ck_assert_int_eq(svqiso_mem_add_region(F.bmem, &mr), 0);
	}
	bc = (struct svq_dev_cfg){
		.layout = F.sh.ring.layout, .num = F.sh.ring.num,
		.flags = F.sh.ring.features, .desc = F.sh.ring.iova.desc,
		.driver = F.sh.ring.iova.driver, .device = F.sh.ring.iova.device,
		.mem = svqiso_mem_ops(), .mem_ctx = F.bmem, .max_indirect = 128,
		.name = "backend", .resume = true, .base = F.sh.ring.base,
	};
	ck_assert_int_eq(svq_dev_init(&F.backend, &bc), 0);
	F.backend_up = true;
}

static void start(uint32_t base)
{
	struct svqiso_vhost_vring v = vring_at(base);

	F.sh = (struct svqiso_vhost_shadow){ .sz = sizeof(F.sh) };
	ck_assert_int_eq(svqiso_vhost_queue_start(F.vh, 0, &v, &F.sh), 0);
	ck_assert_int_ge(F.sh.kick_fd, 0);
	ck_assert_int_ge(F.sh.call_fd, 0);
	backend_attach();
}

static void fx_close(void)
{
	if (F.backend_up)
		svq_dev_fini(&F.backend);
	svqiso_mem_free(F.bmem);
	F.bmem = NULL;
	svqiso_vhost_free(F.vh);
	svq_drv_fini(&F.gdrv);
	if (F.guest_call >= 0)
		close(F.guest_call);
	munmap(F.guest, GUEST_SIZE);
	munmap(F.vmm, GUEST_SIZE);
	close(F.gfd);
	fx_pool_size = 0;
}

/* Guest: post request @k: one readable segment of @pat bytes, one
 * writable one; each request has its own buffers. */
static uint16_t guest_post(unsigned int k, uint8_t pat)
{
	uint64_t a = GUEST_BASE + DATA_OFF + (uint64_t)k * 2 * SEG;
	struct svq_seg s[2] = {
		{ .addr = a, .len = SEG },
		{ .addr = a + SEG, .len = SEG, .write = true },
	};
	uint16_t id;

	memset(gpa_hva(a), pat, SEG);
	memset(gpa_hva(a + SEG), 0xee, SEG);
	ck_assert_int_eq(svq_drv_add(&F.gdrv, s, 2, NULL, &id), 0);
	svq_drv_kick_prepare(&F.gdrv);
	return id;
}

/* Backend: take one request; check its readable bytes are @pat. */
static bool backend_take(struct svq_elem *e, struct svq_seg *segs, uint8_t pat)
{
	unsigned int k;

	e->seg = segs;
	e->max_seg = 8;
	if (svq_dev_pop(&F.backend, e) != 1)
		return false;
	ck_assert_uint_eq(e->nseg, 2);
	for (k = 0; k < e->nseg; k++) {
		const uint8_t *p = e->seg[k].hva;

		/* Isolated memory, never guest RAM. */
		ck_assert(p < F.guest || p >= F.guest + GUEST_SIZE);
		ck_assert(p < F.vmm || p >= F.vmm + GUEST_SIZE);
		if (!e->seg[k].write)
			ck_assert(p[0] == pat && p[SEG - 1] == pat);
	}
	return true;
}

static void backend_complete(const struct svq_elem *e, uint8_t fill)
{
	memset(e->seg[1].hva, fill, SEG);
	ck_assert_int_eq(svq_dev_push(&F.backend, e->id, SEG), 0);
	svq_dev_flush(&F.backend);
}

/* Guest: collect one completion; check it is @id with @fill written. */
static void guest_collect(uint16_t id, unsigned int k, uint8_t fill)
{
	const uint8_t *w = gpa_hva(GUEST_BASE + DATA_OFF + (uint64_t)k * 2 * SEG + SEG);
	uint16_t gid;
	uint32_t len;

	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &len), 1);
	ck_assert_uint_eq(gid, id);
	ck_assert_uint_eq(len, SEG);
	ck_assert(w[0] == fill && w[SEG - 1] == fill);
}

static uint64_t read_fd(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/* ---- feature policy ---- */

START_TEST(test_guest_offer_masks_transport_bits_it_does_not_serve)
{
	uint64_t offered = 0xffffffffffffffffull, got;
	unsigned int bit;

	engine_new(SVQISO_LAYOUT_SPLIT, 0);
	got = svqiso_vhost_guest_features(F.vh, offered);
	for (bit = 0; bit < 64; bit++) {
		bool device = bit < 24 || bit >= 50;
		bool served = bit == F_INDIRECT || bit == F_EVENT_IDX ||
			      bit == F_PACKED || bit == F_VERSION_1 ||
			      bit == F_LOG_ALL /* svqiso logs */ ||
			      bit == 27 /* ANY_LAYOUT */ || bit == 36 /* ORDER_PLATFORM */;

		ck_assert_msg(!!(got & F(bit)) == (device || served),
			      "bit %u offered %d", bit, !!(got & F(bit)));
	}
	/* Bits 41 to 49 are transport bits too: never half-passed. */
	ck_assert_uint_eq(got & 0x3fe0000000000ull, 0);
	ck_assert_uint_eq(got & (F(F_PROTOCOL) | F(F_ACCESS_PLATFORM)), 0);
	/* Served on the guest ring even when the backend lacks them; dirty
	 * logging is svqiso's own, whatever the backend offers. */
	got = svqiso_vhost_guest_features(F.vh, 0x5);
	ck_assert_uint_eq(got, 0x5 | F(F_INDIRECT) | F(F_EVENT_IDX) | F(F_PACKED) |
			       F(F_LOG_ALL));
	ck_assert_ptr_null(strstr(F.logbuf, "feature bit 26 "));
	/* Each masked bit logged, once. */
	ck_assert_ptr_nonnull(strstr(F.logbuf, "not offering feature bit 33 "));
	ck_assert_ptr_nonnull(strstr(F.logbuf, "not offering feature bit 49 "));
	ck_assert_ptr_null(strstr(F.logbuf, "not offering feature bit 50 "));
	svqiso_vhost_guest_features(F.vh, offered);
	ck_assert_ptr_null(strstr(strstr(F.logbuf, "feature bit 33 ") + 1,
				  "feature bit 33 "));
	svqiso_vhost_free(F.vh);
}
END_TEST

START_TEST(test_backend_features_follow_the_shadow_ring)
{
	uint64_t offered = F(F_INDIRECT) | F(F_EVENT_IDX) | F(F_VERSION_1) |
			   F(F_PACKED) | F(F_PROTOCOL) | F(F_LOG_ALL) |
			   F(F_ACCESS_PLATFORM) | 0xff | F(55);
	uint64_t guest = F(F_VERSION_1) | F(F_PACKED) | 0x0f | F(55), b;

	/* The guest's LOG_ALL never reaches the backend. */
	engine_new(SVQISO_LAYOUT_SPLIT, 0);
	b = svqiso_vhost_backend_features(F.vh, guest | F(F_LOG_ALL), offered);
	ck_assert_uint_eq(b & F(F_LOG_ALL), 0);
	svqiso_vhost_free(F.vh);

	engine_new(SVQISO_LAYOUT_SPLIT, 0);
	b = svqiso_vhost_backend_features(F.vh, guest, offered);
	/* Device bits as the guest took them, the shadow's own transport. */
	ck_assert_uint_eq(b, 0x0f | F(55) | F(F_VERSION_1) | F(F_INDIRECT) |
			     F(F_EVENT_IDX) | F(F_PROTOCOL));
	/* Nothing the backend did not offer. */
	b = svqiso_vhost_backend_features(F.vh, guest, 0x03 | F(F_VERSION_1));
	ck_assert_uint_eq(b, 0x03 | F(F_VERSION_1));
	/* Same value twice is fine while nothing runs, and so is another. */
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, guest, guest & ~F(F_PACKED)), 0);
	/* The two sides disagree on a device bit: refused. */
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, guest, F(F_VERSION_1)), -EINVAL);
	svqiso_vhost_free(F.vh);

	engine_new(SVQISO_LAYOUT_PACKED, SVQISO_VHOST_F_NO_INDIRECT |
		   SVQISO_VHOST_F_NO_EVENT_IDX);
	b = svqiso_vhost_backend_features(F.vh, F(F_VERSION_1), offered);
	ck_assert_uint_eq(b, F(F_VERSION_1) | F(F_PACKED) | F(F_PROTOCOL));
	/* A packed shadow needs RING_PACKED acked. */
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, F(F_VERSION_1), F(F_VERSION_1)),
			 -EINVAL);
	svqiso_vhost_free(F.vh);
}
END_TEST

START_TEST(test_protocol_features_kept_and_masked_by_name)
{
	uint64_t all = (1ull << 17) - 1, got;
	static const char *const masked[] = {
		"LOG_SHMFD", "CROSS_ENDIAN", "CRYPTO_SESSION", "PAGEFAULT",
		"BACKEND_SEND_FD", "HOST_NOTIFIER", "INFLIGHT_SHMFD",
		"INBAND_NOTIFICATIONS",
	};
	unsigned int i;

	engine_new(SVQISO_LAYOUT_SPLIT, 0);
	got = svqiso_vhost_protocol_features(F.vh, all | (1ull << 40));
	/* MQ RARP REPLY_ACK NET_MTU BACKEND_REQ CONFIG RESET_DEVICE
	 * CONFIGURE_MEM_SLOTS STATUS */
	ck_assert_uint_eq(got, (1ull << 0) | (1ull << 2) | (1ull << 3) | (1ull << 4) |
			       (1ull << 5) | (1ull << 9) | (1ull << 13) |
			       (1ull << 15) | (1ull << 16));
	for (i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
		char needle[64];

		snprintf(needle, sizeof(needle), "masking protocol feature %s ", masked[i]);
		ck_assert_msg(strstr(F.logbuf, needle), "%s not logged", masked[i]);
	}
	ck_assert_ptr_nonnull(strstr(F.logbuf, "unknown (bit 40)"));
	ck_assert_ptr_null(strstr(F.logbuf, "feature MQ "));
	svqiso_vhost_free(F.vh);
}
END_TEST

/* ---- memory ---- */

START_TEST(test_vmm_addresses_translate_to_guest_addresses)
{
	struct svqiso_mem_region r[2] = {
		{ .gpa = 0, .size = 0x10000, .hva = (void *)0x7f0000000000, .fd = -1 },
		{ .gpa = 0x100000000ull, .size = 0x10000, .hva = (void *)0x7f0000010000,
		  .fd = -1 },
	};
	struct svqiso_vring_addr h, g;
	uint64_t gpa;

	engine_new(SVQISO_LAYOUT_SPLIT, 0);
	ck_assert_int_eq(svqiso_vhost_set_guest_mem(F.vh, r, 2), 0);
	ck_assert_int_eq(svqiso_vhost_vmm_to_gpa(F.vh, 0x7f0000010010, 16, &gpa), 0);
	ck_assert_uint_eq(gpa, 0x100000010ull);
	/* Contiguous in the VMM, not in the guest: no single range. */
	ck_assert_int_eq(svqiso_vhost_vmm_to_gpa(F.vh, 0x7f000000fff0, 32, &gpa), -EFAULT);
	ck_assert_int_eq(svqiso_vhost_vmm_to_gpa(F.vh, 0x1000, 1, &gpa), -EFAULT);
	ck_assert_int_eq(svqiso_vhost_vmm_to_gpa(F.vh, 0x7f0000000000, 0, &gpa), -EINVAL);
	h = (struct svqiso_vring_addr){ 0x7f0000000000, 0x7f0000001000, 0x7f0000010000 };
	ck_assert_int_eq(svqiso_vhost_ring_to_gpa(F.vh, &h, 256, SVQISO_LAYOUT_SPLIT, &g), 0);
	ck_assert_uint_eq(g.desc, 0);
	ck_assert_uint_eq(g.driver, 0x1000);
	ck_assert_uint_eq(g.device, 0x100000000ull);
	/* A used ring running off the end of guest RAM. */
	h.device = 0x7f000001f000;
	ck_assert_int_eq(svqiso_vhost_ring_to_gpa(F.vh, &h, 1024, SVQISO_LAYOUT_SPLIT, &g),
			 -EFAULT);
	/* A bad table leaves the old one. */
	r[1].gpa = 0x8000;
	ck_assert_int_eq(svqiso_vhost_set_guest_mem(F.vh, r, 2), -EEXIST);
	ck_assert_int_eq(svqiso_vhost_vmm_to_gpa(F.vh, 0x7f0000010010, 16, &gpa), 0);
	ck_assert_uint_eq(gpa, 0x100000010ull);
	svqiso_vhost_free(F.vh);
}
END_TEST

/*
 * The guest RAM table replaced while the queue runs (QEMU's vhost_commit):
 * its ring is now at another VMM address, and traffic goes on; a table
 * without the ring breaks the queue with that reason.
 */
START_TEST(test_guest_mem_replaced_while_running)
{
	uint8_t gl = _i & 1, sl = _i >> 1;
	struct svqiso_mem_region r;
	struct svq_elem e;
	struct svq_seg segs[8];
	uint8_t *moved;
	unsigned int k;
	uint16_t id;

	fx_open(gl, sl);
	guest_ring();
	start(fresh());
	id = guest_post(0, 0x11);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&e, segs, 0x11));
	backend_complete(&e, 0x21);
	ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
	guest_collect(id, 0, 0x21);

	/* Guest RAM now lives elsewhere in the VMM: same bytes, same GPAs,
	 * and the old mapping is gone. */
	moved = map_guest();
	r = (struct svqiso_mem_region){ .gpa = GUEST_BASE, .size = GUEST_SIZE,
					.hva = moved, .fd = -1 };
	ck_assert_int_eq(svqiso_vhost_set_guest_mem(F.vh, &r, 1), 0);
	munmap(F.vmm, GUEST_SIZE);
	F.vmm = moved;
	for (k = 1; k < 40; k++) {
		id = guest_post(k, (uint8_t)k);
		ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
		ck_assert(backend_take(&e, segs, (uint8_t)k));
		backend_complete(&e, (uint8_t)(k + 1));
		ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
		guest_collect(id, k, (uint8_t)(k + 1));
	}
	ck_assert_ptr_null(svqiso_vhost_queue_broken(F.vh, 0));

	/* A table without the ring: the queue breaks and says why. */
	r.gpa = GUEST_BASE + GUEST_SIZE;
	ck_assert_int_eq(svqiso_vhost_set_guest_mem(F.vh, &r, 1), 0);
	ck_assert_ptr_nonnull(svqiso_vhost_queue_broken(F.vh, 0));
	ck_assert_ptr_nonnull(strstr(svqiso_vhost_queue_broken(F.vh, 0),
				     "no longer in guest memory"));
	ck_assert_int_eq(svqiso_vhost_queue_kick(F.vh, 0), -EIO);
	fx_close();
}
END_TEST

/*
 * The table replaced while the backend holds requests: their completions
 * land in guest RAM at its new VMM address (the old mapping is gone, so a
 * write through it would fault). A table that keeps the ring but drops a
 * held request's buffer breaks the queue with that reason, and nothing is
 * written to the guest.
 */
START_TEST(test_guest_mem_replaced_with_requests_in_flight)
{
	uint8_t gl = _i & 1, sl = _i >> 1;
	struct svqiso_mem_region r[2];
	struct svq_elem e[4];
	struct svq_seg segs[4][8];
	uint16_t id[4];
	const uint8_t *w;
	uint8_t *moved;
	unsigned int k;

	fx_open(gl, sl);
	guest_ring();
	start(fresh());
	for (k = 0; k < 4; k++)
		id[k] = guest_post(k, (uint8_t)(0x30 + k));
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	for (k = 0; k < 4; k++)
		ck_assert(backend_take(&e[k], segs[k], (uint8_t)(0x30 + k)));

	/* Two regions now, at a new VMM address; the old mapping is gone. */
	moved = map_guest();
	r[0] = (struct svqiso_mem_region){ .gpa = GUEST_BASE, .size = DATA_OFF,
					   .hva = moved, .fd = -1 };
	r[1] = (struct svqiso_mem_region){ .gpa = GUEST_BASE + DATA_OFF,
					   .size = GUEST_SIZE - DATA_OFF,
					   .hva = moved + DATA_OFF, .fd = -1 };
	ck_assert_int_eq(svqiso_vhost_set_guest_mem(F.vh, r, 2), 0);
	munmap(F.vmm, GUEST_SIZE);
	F.vmm = moved;
	for (k = 0; k < 2; k++) {
		backend_complete(&e[k], (uint8_t)(0x40 + k));
		ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
		guest_collect(id[k], k, (uint8_t)(0x40 + k));
	}
	ck_assert_ptr_null(svqiso_vhost_queue_broken(F.vh, 0));

	/* The ring stays, the buffers of the two still held go. */
	ck_assert_int_eq(svqiso_vhost_set_guest_mem(F.vh, r, 1), 0);
	ck_assert_ptr_nonnull(svqiso_vhost_queue_broken(F.vh, 0));
	ck_assert_ptr_nonnull(strstr(svqiso_vhost_queue_broken(F.vh, 0),
				     "no longer in one region of guest memory"));
	for (k = 2; k < 4; k++)
		backend_complete(&e[k], 0x55);
	ck_assert_int_eq(svqiso_vhost_queue_process(F.vh, 0), -EIO);
	for (k = 2; k < 4; k++) {
		w = gpa_hva(GUEST_BASE + DATA_OFF + (uint64_t)k * 2 * SEG + SEG);
		ck_assert(w[0] == 0xee && w[SEG - 1] == 0xee);
	}
	fx_close();
}
END_TEST

/* ---- queues ---- */

/*
 * The guest's call fd swapped while the queue runs (QEMU does it on every
 * MSI-X mask and unmask): completions signal the fd set at the time, and
 * none is lost; -1 leaves the interrupt to the VMM, which the return says.
 */
START_TEST(test_call_fd_swapped_at_run_time)
{
	uint8_t gl = _i & 1, sl = _i >> 1;
	int a = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int b = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct svq_seg segs[8];
	struct svq_elem e;
	unsigned int k;
	uint16_t id;
	int m;

	fx_open(gl, sl);
	guest_ring();
	ck_assert_int_eq(svqiso_vhost_queue_set_call(F.vh, 0, a), 0);
	start(fresh());
	for (k = 0; k < 6; k++) {
		int want = k % 3 == 0 ? a : k % 3 == 1 ? b : -1;

		ck_assert_int_eq(svqiso_vhost_queue_set_call(F.vh, 0, want), 0);
		id = guest_post(k, (uint8_t)k);
		m = svqiso_vhost_queue_kick(F.vh, 0);
		ck_assert_int_ge(m, 0);
		/* The backend's kick fd is written when the kick is asked. */
		if (m & SVQISO_SIGNAL_BACKEND)
			ck_assert_uint_ge(read_fd(F.sh.kick_fd), 1);
		ck_assert(backend_take(&e, segs, (uint8_t)k));
		backend_complete(&e, 0x40);
		ck_assert_uint_eq(write(F.sh.call_fd, &(uint64_t){ 1 }, 8), 8);
		m = svqiso_vhost_queue_process(F.vh, 0);
		ck_assert_int_ge(m, 0);
		ck_assert(m & SVQISO_SIGNAL_GUEST);
		/* process() cleared the backend's call. */
		ck_assert_uint_eq(read_fd(F.sh.call_fd), 0);
		ck_assert_uint_eq(read_fd(a), want == a);
		ck_assert_uint_eq(read_fd(b), want == b);
		guest_collect(id, k, 0x40);
	}
	ck_assert_int_eq(svqiso_vhost_queue_set_call(F.vh, 0, -2), -EINVAL);
	ck_assert_int_eq(svqiso_vhost_queue_set_call(F.vh, 0, 1000), -EINVAL);
	fx_close();
	close(a);
	close(b);
}
END_TEST

/*
 * Stopping a queue whose requests stay posted, the way a VMM that owns the
 * session does it: drain (returns once the backend is quiet and holds
 * nothing it took), GET_VRING_BASE on the shadow ring (here: the backend's
 * own position), stop with that base. What the backend never took goes
 * back to the guest ring; what it took and completed is complete; the
 * guest base names the first request given back, and a restart there
 * hands the given-back requests out again, in order.
 */
START_TEST(test_drain_stop_gives_back_what_the_backend_never_took)
{
	uint8_t gl = _i & 1, sl = _i >> 1;
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	struct svq_seg segs[8];
	struct svq_elem e;
	uint16_t ids[8];
	uint32_t gbase, sbase;
	unsigned int k;

	fx_open(gl, sl);
	guest_ring();
	start(fresh());
	for (k = 0; k < 8; k++)
		ids[k] = guest_post(k, (uint8_t)(0x10 + k));
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	/* The backend serves three; five stay posted. */
	for (k = 0; k < 3; k++) {
		ck_assert(backend_take(&e, segs, (uint8_t)(0x10 + k)));
		backend_complete(&e, 0x50);
	}
	ck_assert_int_eq(svqiso_vhost_queue_drain(F.vh, 0, 2000, -1), 0);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 5);
	for (k = 0; k < 3; k++)
		guest_collect(ids[k], k, 0x50);
	/* Paused: a new guest request is not taken. */
	guest_post(8, 0x18);
	ck_assert_int_eq(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 5);
	sbase = svq_dev_get_base(&F.backend);
	ck_assert_int_eq(svqiso_vhost_queue_stop(F.vh, 0, sbase, 1000, -1, &gbase), 0);
	ck_assert(!svqiso_vhost_queue_running(F.vh, 0));
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 0);
	ck_assert_int_eq(svqiso_vhost_queue_stats(F.vh, 0, &st), 0);
	ck_assert_uint_eq(st.given_back, 5);
	ck_assert_uint_eq(st.completions, 3);
	if (gl == SVQISO_LAYOUT_SPLIT)
		ck_assert_uint_eq(gbase, 3);
	else	/* slot 6 (two per request), wrap counters 1, both halves */
		ck_assert_uint_eq(gbase, 0x80068006u);

	/* Started again there: the five, then the one posted meanwhile. */
	start(gbase);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	for (k = 3; k < 9; k++) {
		ck_assert(backend_take(&e, segs, (uint8_t)(0x10 + k)));
		backend_complete(&e, (uint8_t)(0x60 + k));
	}
	ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
	for (k = 3; k < 8; k++)
		guest_collect(ids[k], k, (uint8_t)(0x60 + k));
	fx_close();
}
END_TEST

/* A backend that reports a base it cannot have: the queue breaks, stops,
 * and still says where the guest ring is. */
START_TEST(test_stop_with_a_lying_base_breaks)
{
	uint8_t gl = _i & 1;
	struct svq_seg segs[8];
	struct svq_elem e;
	uint32_t gbase = 0xdead;

	fx_open(gl, gl);
	guest_ring();
	start(fresh());
	guest_post(0, 1);
	guest_post(1, 2);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&e, segs, 1));
	backend_complete(&e, 3);
	ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
	/* Before the request it completed. */
	ck_assert_int_eq(svqiso_vhost_queue_stop(F.vh, 0, fresh(), 500, -1, &gbase), -EIO);
	ck_assert_uint_ne(gbase, 0xdead);
	ck_assert(!svqiso_vhost_queue_running(F.vh, 0));
	ck_assert_ptr_nonnull(svqiso_vhost_queue_broken(F.vh, 0));
	/* A device reset and a fresh ring: it works again. */
	ck_assert_int_eq(svqiso_vhost_queue_reset(F.vh, 0), 0);
	svq_drv_fini(&F.gdrv);
	guest_ring();
	start(fresh());
	ck_assert_ptr_null(svqiso_vhost_queue_broken(F.vh, 0));
	guest_post(0, 7);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&e, segs, 7));
	fx_close();
}
END_TEST

/*
 * The backend dies holding requests (one completed unseen, two taken, two
 * never taken): the engine keeps them all with their bounce copies, and
 * the next backend gets them on a fresh shadow ring, oldest first, with
 * the guest's bytes, though the guest's buffers changed meanwhile. Each
 * completes to the guest exactly once; the guest never hands them out
 * twice.
 */
START_TEST(test_backend_lost_requests_reposted_to_the_next)
{
	uint8_t gl = _i & 1, sl = (_i >> 1) & 1;
	unsigned int total = _i & 4 ? 5 : 6;
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	struct svq_seg segs[8];
	struct svq_elem e;
	uint16_t ids[6];
	uint32_t gbase;
	unsigned int k;
	int n;

	fx_open(gl, sl);
	guest_ring();
	start(fresh());
	for (k = 0; k < 5; k++)
		ids[k] = guest_post(k, (uint8_t)(0x30 + k));
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&e, segs, 0x30));
	ck_assert(backend_take(&e, segs, 0x31));
	ck_assert(backend_take(&e, segs, 0x32));
	/* The guest scribbles over what it handed over: the copies count. */
	for (k = 0; k < 5; k++)
		memset(gpa_hva(GUEST_BASE + DATA_OFF + (uint64_t)k * 2 * SEG), 0xcc, SEG);

	n = svqiso_vhost_queue_backend_lost(F.vh, 0, &gbase);
	ck_assert_int_eq(n, 5);
	ck_assert(!svqiso_vhost_queue_running(F.vh, 0));
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 5);
	ck_assert_ptr_nonnull(strstr(F.logbuf, "kept for the next backend"));
	/* Twice is harmless. */
	ck_assert_int_eq(svqiso_vhost_queue_backend_lost(F.vh, 0, &gbase), 5);
	if (gl == SVQISO_LAYOUT_SPLIT)
		ck_assert_uint_eq(gbase, 5);
	/* With _i & 4: the guest posts nothing more, so only the repost
	 * makes the kept requests visible. Else one more guest request
	 * while no backend is there. */
	if (!(_i & 4))
		ids[5] = guest_post(5, 0x35);

	start(gbase);	/* the new backend attaches to the fresh shadow ring */
	ck_assert_uint_eq(F.sh.reposted, 5);
	ck_assert_ptr_nonnull(strstr(F.logbuf, "posted again"));
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	for (k = 0; k < total; k++) {
		ck_assert_msg(backend_take(&e, segs, (uint8_t)(0x30 + k)),
			      "request %u not reposted in order", k);
		backend_complete(&e, (uint8_t)(0x70 + k));
	}
	ck_assert(!backend_take(&e, segs, 0));
	ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
	for (k = 0; k < total; k++)
		guest_collect(ids[k], k, (uint8_t)(0x70 + k));
	{
		uint16_t gid;
		uint32_t len;

		ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &len), 0);
	}
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 0);
	ck_assert_int_eq(svqiso_vhost_queue_stats(F.vh, 0, &st), 0);
	ck_assert_uint_eq(st.reposted, 5);
	ck_assert_uint_eq(st.completions, total);
	ck_assert_uint_eq(st.errors, 0);
	fx_close();
}
END_TEST

/*
 * The backend completes the second of two requests, then dies holding the
 * first; the next backend gets the first again, the guest posts a third,
 * and the queue is stopped before the new backend takes anything. The
 * third goes back to the guest ring; the first, posted again, does not
 * (the guest ring moved back over it would pop the second, completed,
 * again): it is kept, and the start at the base the stop returns posts it
 * once more. Each request completes to the guest once. Found by the
 * hostile-backend fuzz target.
 */
START_TEST(test_stop_after_repost_keeps_what_was_posted_again)
{
	uint8_t gl = _i & 1, sl = _i >> 1;
	struct svq_seg segs[2][8];
	struct svq_elem e[2];
	uint32_t base, gbase;
	uint16_t ids[3], gid;
	uint32_t len;
	unsigned int k;

	fx_open(gl, sl);
	guest_ring();
	start(fresh());
	for (k = 0; k < 2; k++)
		ids[k] = guest_post(k, (uint8_t)(0x40 + k));
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&e[0], segs[0], 0x40));
	ck_assert(backend_take(&e[1], segs[1], 0x41));
	backend_complete(&e[1], 0x51);
	ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
	guest_collect(ids[1], 1, 0x51);
	ck_assert_int_eq(svqiso_vhost_queue_backend_lost(F.vh, 0, &base), 1);

	start(base);
	ck_assert_uint_eq(F.sh.reposted, 1);
	ids[2] = guest_post(2, 0x42);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	/* Stopped at once: the new backend took nothing. */
	ck_assert_int_eq(svqiso_vhost_queue_stop(F.vh, 0, svq_dev_get_base(&F.backend),
						 1000, -1, &gbase), 0);
	ck_assert_uint_eq(gbase, base);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 1);
	ck_assert_ptr_nonnull(strstr(F.logbuf, "kept for the next start"));

	start(gbase);
	ck_assert_uint_eq(F.sh.reposted, 1);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&e[0], segs[0], 0x40));
	ck_assert(backend_take(&e[1], segs[1], 0x42));
	ck_assert(!backend_take(&e[1], segs[1], 0));
	backend_complete(&e[0], 0x50);
	backend_complete(&e[1], 0x52);
	ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
	guest_collect(ids[0], 0, 0x50);
	guest_collect(ids[2], 2, 0x52);
	ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &len), 0);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 0);
	fx_close();
}
END_TEST

/* Lost requests meet a start at another base (the guest reset its ring):
 * dropped, said so, and the queue starts clean. */
START_TEST(test_backend_lost_then_guest_reset_drops)
{
	uint8_t gl = _i & 1;
	struct svq_seg segs[8];
	struct svq_elem e;
	uint32_t gbase;

	fx_open(gl, gl);
	guest_ring();
	start(fresh());
	guest_post(0, 1);
	guest_post(1, 2);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert_int_eq(svqiso_vhost_queue_backend_lost(F.vh, 0, &gbase), 2);
	memset(F.guest, 0, 0x4000);
	svq_drv_fini(&F.gdrv);
	guest_ring();
	start(fresh());
	ck_assert_uint_eq(F.sh.reposted, 0);
	ck_assert_ptr_nonnull(strstr(F.logbuf, "are dropped"));
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 0);
	guest_post(0, 9);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&e, segs, 9));
	ck_assert(!backend_take(&e, segs, 0));
	fx_close();
}
END_TEST

/* A backend that hangs up during a drain or a stop: seen on the session
 * fd at once, and the requests are kept. */
START_TEST(test_hangup_seen_in_drain_and_stop)
{
	struct svq_seg segs[8];
	struct svq_elem e;
	uint32_t gbase;
	int sv[2];
	time_t t0;

	fx_open(SVQISO_LAYOUT_SPLIT, SVQISO_LAYOUT_SPLIT);
	guest_ring();
	start(0);
	guest_post(0, 1);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&e, segs, 1));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	t0 = time(NULL);
	ck_assert_int_eq(svqiso_vhost_queue_drain(F.vh, 0, 5000, sv[0]), -ECONNRESET);
	ck_assert_int_le(time(NULL) - t0, 1);
	ck_assert_int_eq(svqiso_vhost_queue_stop(F.vh, 0, svq_dev_get_base(&F.backend),
						 5000, sv[0], &gbase), -ECONNRESET);
	ck_assert_uint_eq(gbase, 1);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 1);
	ck_assert_int_le(time(NULL) - t0, 1);
	close(sv[0]);
	start(gbase);
	ck_assert_uint_eq(F.sh.reposted, 1);
	fx_close();
}
END_TEST

/* A backend working slowly: the drain gives up with -ETIMEDOUT and the
 * stop after GET_VRING_BASE waits, again bounded, for what it holds. */
START_TEST(test_stop_waits_bounded_for_what_the_backend_holds)
{
	struct svq_seg segs[8];
	struct svq_elem e, held;
	struct svq_seg hsegs[8];
	uint32_t gbase, sbase;
	uint16_t ids[2];

	fx_open(SVQISO_LAYOUT_SPLIT, SVQISO_LAYOUT_SPLIT);
	guest_ring();
	start(0);
	ids[0] = guest_post(0, 1);
	ids[1] = guest_post(1, 2);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&held, hsegs, 1));
	ck_assert(backend_take(&e, segs, 2));
	/* Taken and never completed: the backend says it took both. */
	ck_assert_int_eq(svqiso_vhost_queue_drain(F.vh, 0, 300, -1), -ETIMEDOUT);
	sbase = svq_dev_get_base(&F.backend);
	ck_assert_int_eq(svqiso_vhost_queue_stop(F.vh, 0, sbase, 200, -1, &gbase),
			 -ETIMEDOUT);
	ck_assert(svqiso_vhost_queue_running(F.vh, 0));	/* stopping */
	ck_assert_ptr_nonnull(strstr(F.logbuf, "still holds 2 requests"));
	backend_complete(&held, 5);
	backend_complete(&e, 6);
	ck_assert_int_eq(svqiso_vhost_queue_stop(F.vh, 0, sbase, 200, -1, &gbase), 0);
	ck_assert_uint_eq(gbase, 2);
	guest_collect(ids[0], 0, 5);
	guest_collect(ids[1], 1, 6);
	fx_close();
}
END_TEST

/*
 * The backend's memory slots: every queue's shadow ring shares one region
 * per ring_slots queues; only the arenas cost a region each. A ring larger
 * than max_num gets a region of its own.
 */
START_TEST(test_shadow_rings_share_regions)
{
	SVQISO_OPTS(svqiso_vhost_opts, o, .pool_size = 1 << 20, .ring_slots = 8,
		    .log = log_cb);
	struct svqiso_mem_region r;
	unsigned int i, before;

	memset(&F, 0, sizeof(F));
	F.guest = aligned_alloc(4096, GUEST_SIZE);
	ck_assert_ptr_nonnull(F.guest);
	memset(F.guest, 0, GUEST_SIZE);
	ck_assert_int_eq(svqiso_vhost_new(&o, &F.vh), 0);
	r = (struct svqiso_mem_region){ .gpa = GUEST_BASE, .size = GUEST_SIZE,
					.hva = F.guest, .fd = -1 };
	ck_assert_int_eq(svqiso_vhost_set_guest_mem(F.vh, &r, 1), 0);
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, F(F_VERSION_1), F(F_VERSION_1)), 0);
	ck_assert_uint_eq(svqiso_vhost_nr_regions(F.vh), 0);
	for (i = 0; i < 16; i++) {
		struct svqiso_vhost_vring v = {
			.sz = sizeof(v), .num = 256, .layout = SVQISO_LAYOUT_SPLIT,
			.ring = { GUEST_BASE + i * 0x8000ull,
				  GUEST_BASE + i * 0x8000ull + 0x1000,
				  GUEST_BASE + i * 0x8000ull + 0x2000 },
		};
		struct svqiso_vhost_shadow sh = { .sz = sizeof(sh) };

		ck_assert_int_eq(svqiso_vhost_queue_start(F.vh, i, &v, &sh), 0);
	}
	/* 16 arenas, 2 ring regions. */
	ck_assert_uint_eq(svqiso_vhost_nr_regions(F.vh), 18);
	/* Started again, in place: no region comes or goes. */
	before = svqiso_vhost_nr_regions(F.vh);
	{
		struct svqiso_vhost_vring v = {
			.sz = sizeof(v), .num = 128, .layout = SVQISO_LAYOUT_SPLIT,
			.ring = { GUEST_BASE + 0x100000, GUEST_BASE + 0x101000,
				  GUEST_BASE + 0x102000 },
		};
		struct svqiso_vhost_shadow sh = { .sz = sizeof(sh) };
		uint32_t b;

		ck_assert_int_eq(svqiso_vhost_queue_drain(F.vh, 3, 100, -1), 0);
		ck_assert_int_eq(svqiso_vhost_queue_stop(F.vh, 3, 0, 100, -1, &b), 0);
		ck_assert_int_eq(svqiso_vhost_queue_start(F.vh, 3, &v, &sh), 0);
		ck_assert_uint_eq(svqiso_vhost_nr_regions(F.vh), before);
		/* A ring past max_num: a region of its own. */
		v.num = 2048;
		ck_assert_int_eq(svqiso_vhost_queue_start(F.vh, 20, &v, &sh), 0);
		ck_assert_uint_eq(svqiso_vhost_nr_regions(F.vh), before + 2);
	}
	svqiso_vhost_free(F.vh);
	free(F.guest);
}
END_TEST

/* reserve() makes the regions a VMM sends in its first table. */
START_TEST(test_reserve_makes_regions_up_front)
{
	SVQISO_OPTS(svqiso_vhost_opts, o, .pool_size = 1 << 20, .ring_slots = 4,
		    .region_add = region_add_cb);
	struct svqiso_region r;

	memset(&F, 0, sizeof(F));
	ck_assert_int_eq(svqiso_vhost_new(&o, &F.vh), 0);
	ck_assert_int_eq(svqiso_vhost_reserve(F.vh, 6), 0);
	ck_assert_uint_eq(svqiso_vhost_nr_regions(F.vh), 6 + 2);
	ck_assert_uint_eq(F.region_adds, 8);
	ck_assert_int_eq(svqiso_vhost_get_region(F.vh, 7, &r), 0);
	ck_assert_int_ge(r.fd, 0);
	ck_assert_int_eq(svqiso_vhost_get_region(F.vh, 8, &r), -ENOENT);
	ck_assert_int_eq(svqiso_vhost_reserve(F.vh, 6), 0);
	ck_assert_uint_eq(F.region_adds, 8);
	ck_assert_int_eq(svqiso_vhost_reserve(F.vh, SVQISO_VHOST_MAX_QUEUES + 1), -EINVAL);
	svqiso_vhost_free(F.vh);
}
END_TEST

/* Bad calls are refused and change nothing. */
START_TEST(test_bad_calls_refused)
{
	SVQISO_OPTS(svqiso_vhost_opts, o, .log = log_cb);
	struct svqiso_vhost_vring v;
	struct svqiso_vhost_shadow sh = { .sz = sizeof(sh) };
	struct svqiso_vhost *vh;
	uint32_t b;

	/* Each refusal says why through the log callback. */
	F.logbuf[0] = 0;
	o.flags = 1u << 20;
	ck_assert_int_eq(svqiso_vhost_new(&o, &vh), -EINVAL);
	ck_assert_str_eq(F.logbuf, "svqiso_vhost_new: unknown flags 0x100000\n");
	F.logbuf[0] = 0;
	o.flags = 0;
	o.shadow_layout = 7;
	ck_assert_int_eq(svqiso_vhost_new(&o, &vh), -EINVAL);
	ck_assert_str_eq(F.logbuf, "svqiso_vhost_new: shadow_layout 7 is no ring layout\n");
	F.logbuf[0] = 0;
	o.shadow_layout = 0;
	o.copy = SVQISO_NR_COPY;
	ck_assert_int_eq(svqiso_vhost_new(&o, &vh), -EINVAL);
	ck_assert_ptr_nonnull(strstr(F.logbuf, "is no copy strategy"));
	F.logbuf[0] = 0;
	o.copy = 0;
	o.max_num = 40000;
	ck_assert_int_eq(svqiso_vhost_new(&o, &vh), -EINVAL);
	ck_assert_str_eq(F.logbuf, "svqiso_vhost_new: max_num 40000 is over 32768\n");
	F.logbuf[0] = 0;
	o.max_num = 0;
	o.ring_slots = SVQISO_VHOST_MAX_QUEUES + 1;
	ck_assert_int_eq(svqiso_vhost_new(&o, &vh), -EINVAL);
	ck_assert_ptr_nonnull(strstr(F.logbuf, "ring_slots"));
	F.logbuf[0] = 0;
	o.ring_slots = 0;
	o.sz = 2;
	ck_assert_int_eq(svqiso_vhost_new(&o, &vh), -EINVAL);
	ck_assert_str_eq(F.logbuf, "");	/* too short to hold the callback */
	o.sz = sizeof(o);
	ck_assert_int_eq(svqiso_vhost_new(&o, NULL), -EINVAL);

	fx_open(SVQISO_LAYOUT_SPLIT, SVQISO_LAYOUT_SPLIT);
	guest_ring();
	v = vring_at(0);
	ck_assert_int_eq(svqiso_vhost_queue_start(F.vh, SVQISO_VHOST_MAX_QUEUES, &v, &sh),
			 -EINVAL);
	v.layout = SVQISO_LAYOUT_PACKED;	/* not what was agreed */
	ck_assert_int_eq(svqiso_vhost_queue_start(F.vh, 0, &v, &sh), -EINVAL);
	v = vring_at(0);
	v.num = 0;
	ck_assert_int_eq(svqiso_vhost_queue_start(F.vh, 0, &v, &sh), -EINVAL);
	v = vring_at(0);
	v.ring.device = GUEST_BASE + GUEST_SIZE - 8;	/* off the end */
	ck_assert_int_eq(svqiso_vhost_queue_start(F.vh, 0, &v, &sh), -EFAULT);
	ck_assert(!svqiso_vhost_queue_running(F.vh, 0));
	ck_assert_int_eq(svqiso_vhost_queue_kick(F.vh, 0), -EINVAL);
	ck_assert_int_eq(svqiso_vhost_queue_process(F.vh, 0), -EINVAL);
	ck_assert_int_eq(svqiso_vhost_queue_drain(F.vh, 0, 10, -1), -EINVAL);
	ck_assert_int_eq(svqiso_vhost_queue_stop(F.vh, 0, 0, 10, -1, &b), -EINVAL);
	ck_assert_int_eq(svqiso_vhost_queue_kick(F.vh, 5), -EINVAL);
	start(0);
	v = vring_at(0);
	ck_assert_int_eq(svqiso_vhost_queue_start(F.vh, 0, &v, &sh), -EBUSY);
	/* Running: features may be sent again, not changed. */
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, F(F_VERSION_1), F(F_VERSION_1)),
			 -EBUSY);
	fx_close();
}
END_TEST

/* QEMU sends SET_FEATURES again with the same value while queues run. */
START_TEST(test_same_features_again_while_running)
{
	uint64_t offered = F(F_INDIRECT) | F(F_EVENT_IDX) | F(F_VERSION_1) |
			   F(F_PACKED) | F(F_PROTOCOL) | 0xffull;
	uint64_t gf, bf;

	fx_open(SVQISO_LAYOUT_SPLIT, SVQISO_LAYOUT_SPLIT);
	guest_ring();
	start(0);
	gf = svqiso_vhost_guest_features(F.vh, offered) & ~F(F_PACKED);
	bf = svqiso_vhost_backend_features(F.vh, gf, offered);
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, gf, bf), 0);
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, gf & ~1ull, bf & ~1ull), -EBUSY);
	ck_assert(svqiso_vhost_queue_running(F.vh, 0));
	fx_close();
}
END_TEST


/* ---- dirty logging ---- */

#define PAGE(gpa)	((gpa) >> 12)
#define LOG_SIZE	(PAGE(GUEST_BASE + GUEST_SIZE) / 8)

static bool marked(const uint8_t *log, uint64_t gpa)
{
	return log[PAGE(gpa) / 8] & (1u << (PAGE(gpa) % 8));
}

static unsigned int nr_marked(const uint8_t *log)
{
	unsigned int k, n = 0;

	for (k = 0; k < LOG_SIZE; k++)
		n += (unsigned int)__builtin_popcount(log[k]);
	return n;
}

/* Request @k through the engine: posted, kicked, served, completed. */
static void one_request(unsigned int k)
{
	struct svq_seg segs[8];
	struct svq_elem e;
	uint16_t id = guest_post(k, (uint8_t)k);

	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert(backend_take(&e, segs, (uint8_t)k));
	backend_complete(&e, (uint8_t)(k + 1));
	ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
	guest_collect(id, k, (uint8_t)(k + 1));
}

/* Writable buffer of request @k (one page of its own at k = 4, 12, ...). */
static uint64_t wbuf(unsigned int k)
{
	return GUEST_BASE + DATA_OFF + (uint64_t)k * 2 * SEG + SEG;
}

/* Logging follows LOG_ALL in the guest features, switched while the queue
 * runs; the log may be replaced; the backend never hears of it. */
START_TEST(test_dirty_log_follows_log_all)
{
	uint8_t *log1 = calloc(1, LOG_SIZE), *log2 = calloc(1, LOG_SIZE);
	SVQISO_OPTS(svqiso_dirty_log, l1, .bitmap = log1, .size = LOG_SIZE);
	SVQISO_OPTS(svqiso_dirty_log, l2, .bitmap = log2, .size = LOG_SIZE);
	SVQISO_OPTS(svqiso_dirty_log, bad, .size = LOG_SIZE);
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	uint64_t used_area;

	ck_assert(log1 && log2);
	fx_open(_i & 1, (_i >> 1) & 1);
	guest_ring();
	start(fresh());
	/* split: the used ring; packed: used descriptors in the desc area */
	used_area = F.glayout == SVQISO_LAYOUT_PACKED ? F.gring.desc : F.gring.device;
	ck_assert_int_eq(svqiso_vhost_set_dirty_log(F.vh, &l1), 0);

	/* A log, no LOG_ALL: nothing is logged. */
	one_request(0);
	ck_assert_uint_eq(nr_marked(log1), 0);

	/* LOG_ALL on while running (QEMU does so as migration starts). */
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, F.gf | F(F_LOG_ALL), F.bf), 0);
	one_request(4);
	ck_assert(marked(log1, wbuf(4)));
	ck_assert(marked(log1, used_area));
	/* The readable buffer was only read. */
	ck_assert(!marked(log1, wbuf(4) - SEG - 4096));
	ck_assert(!marked(log1, wbuf(0)));

	/* A new log (a resize): the next writes go there only. */
	memset(log1, 0, LOG_SIZE);
	ck_assert_int_eq(svqiso_vhost_set_dirty_log(F.vh, &bad), -EINVAL);
	ck_assert_int_eq(svqiso_vhost_set_dirty_log(F.vh, &l2), 0);
	one_request(12);
	ck_assert(marked(log2, wbuf(12)));
	ck_assert(marked(log2, used_area));
	ck_assert_uint_eq(nr_marked(log1), 0);

	/* LOG_ALL off: the log is kept, not written. */
	memset(log2, 0, LOG_SIZE);
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, F.gf, F.bf), 0);
	one_request(20);
	ck_assert_uint_eq(nr_marked(log2), 0);

	/* A queue started anew while logging logs at once. */
	ck_assert_int_eq(svqiso_vhost_set_features(F.vh, F.gf | F(F_LOG_ALL), F.bf), 0);
	ck_assert_int_eq(svqiso_vhost_queue_stats(F.vh, 0, &st), 0);
	ck_assert_uint_ge(st.dirty_bytes, 2 * SEG);
	ck_assert_uint_eq(st.dirty_missed, 0);
	/* A device reset: the guest lays out its ring again, the queue
	 * gets a new shadow virtqueue. */
	ck_assert_int_eq(svqiso_vhost_queue_reset(F.vh, 0), 0);
	svq_drv_fini(&F.gdrv);
	guest_ring();
	start(fresh());
	one_request(28);
	ck_assert(marked(log2, wbuf(28)));
	/* Off altogether. */
	memset(log2, 0, LOG_SIZE);
	ck_assert_int_eq(svqiso_vhost_set_dirty_log(F.vh, NULL), 0);
	one_request(36);
	ck_assert_uint_eq(nr_marked(log2), 0);
	ck_assert_int_eq(svqiso_vhost_set_dirty_log(NULL, &l1), -EINVAL);
	fx_close();
	free(log1);
	free(log2);
}
END_TEST

/* ---- requests larger than the arena; a backend that never completes ---- */

#define SMALL_POOL	(64u << 10)

static uint8_t pat_at(uint64_t j, uint8_t s)
{
	return (uint8_t)(j * 131 + (j >> 9) * 7 + s);
}

/* Guest: post a request at guest offset @off: @rlen readable bytes of
 * pat_at(., @s), then @wlen writable ones (none if 0). */
static uint16_t guest_post_len(uint64_t off, uint32_t rlen, uint32_t wlen,
			       uint8_t s)
{
	uint64_t a = GUEST_BASE + DATA_OFF + off, j;
	struct svq_seg seg[2] = {
		{ .addr = a, .len = rlen },
		{ .addr = a + rlen, .len = wlen, .write = true },
	};
	uint8_t *p = gpa_hva(a);
	uint16_t id;

	for (j = 0; j < rlen; j++)
		p[j] = pat_at(j, s);
	if (wlen)
		memset(gpa_hva(a + rlen), 0xee, wlen);
	ck_assert_int_eq(svq_drv_add(&F.gdrv, seg, wlen ? 2 : 1, NULL, &id), 0);
	svq_drv_kick_prepare(&F.gdrv);
	return id;
}

/* Backend: take any request; its readable bytes are pat_at(., @s). */
static bool backend_take_pat(struct svq_elem *e, struct svq_seg *segs, uint8_t s)
{
	uint64_t j;

	e->seg = segs;
	e->max_seg = 8;
	if (svq_dev_pop(&F.backend, e) != 1)
		return false;
	for (j = 0; j < e->seg[0].len; j++)
		if (((const uint8_t *)e->seg[0].hva)[j] != pat_at(j, s))
			ck_abort_msg("readable byte %" PRIu64 " wrong", j);
	return true;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * A request several times the arena goes through a one-off region made
 * from svqiso_vhost_queue_kick() (region_add, which the VMM turns into
 * ADD_MEM_REG while the queue runs) and removed from
 * svqiso_vhost_queue_process() once it completes, its bytes right both
 * ways. Then a backend that takes everything and completes nothing: bounce
 * memory stays within the arena and one one-off region, the rest stays in
 * the guest's ring, drain and stop each give up within their timeout with
 * -ETIMEDOUT and a log line naming the queue, the queue stays coherent
 * (running and taking nothing new; then stopping, its guest base past only
 * what the backend holds), and a queue reset then a start give every
 * region back. All four layout pairs.
 */
START_TEST(test_oneoff_from_kick_and_a_backend_that_never_completes)
{
	uint8_t gl = _i & 1, sl = _i >> 1;
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	const uint32_t big = 160u << 10, small = 16u << 10;
	struct svq_seg segs[8][8];
	struct svq_elem e[8];
	unsigned int k, base_regions, taken = 0;
	uint32_t gbase, sbase;
	int64_t t0, ms;
	uint16_t id;
	uint64_t j;
	int rc;

	fx_pool_size = SMALL_POOL;
	fx_open(gl, sl);
	guest_ring();
	start(fresh());
	base_regions = svqiso_vhost_nr_regions(F.vh);

	/* Served, both ways. */
	id = guest_post_len(0, big, big, 0x11);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert_uint_eq(F.region_adds, base_regions + 1);
	ck_assert_uint_eq(svqiso_vhost_nr_regions(F.vh), base_regions + 1);
	ck_assert(backend_take_pat(&e[0], segs[0], 0x11));
	for (j = 0; j < big; j++)
		((uint8_t *)e[0].seg[1].hva)[j] = pat_at(j, 0x22);
	ck_assert_int_eq(svq_dev_push(&F.backend, e[0].id, big), 0);
	svq_dev_flush(&F.backend);
	ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
	ck_assert_uint_eq(F.region_dels, 1);
	ck_assert_uint_eq(svqiso_vhost_nr_regions(F.vh), base_regions);
	{
		const uint8_t *w = gpa_hva(GUEST_BASE + DATA_OFF + big);
		uint16_t gid;
		uint32_t len;

		ck_assert_int_eq(svq_drv_get_used(&F.gdrv, &gid, &len), 1);
		ck_assert_uint_eq(gid, id);
		ck_assert_uint_eq(len, big);
		for (j = 0; j < big; j++)
			if (w[j] != pat_at(j, 0x22))
				ck_abort_msg("byte %" PRIu64 " copied back wrong", j);
	}

	/* Never completed: a large one, 40 that fit, another large one. */
	guest_post_len(0, big, 0, 0x30);
	for (k = 0; k < 40; k++)
		guest_post_len(big + (uint64_t)k * small, small, 0, (uint8_t)k);
	guest_post_len(big + 40ull * small, big, 0, 0x31);
	for (k = 0; k < 4; k++) {
		ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
		while (taken < 8 && backend_take_pat(&e[taken], segs[taken],
						     taken ? (uint8_t)(taken - 1) : 0x30))
			taken++;
		ck_assert_int_ge(svqiso_vhost_queue_process(F.vh, 0), 0);
	}
	/* The large one and four that fit the arena; a fifth taken ahead
	 * of room, holding nothing. */
	ck_assert_uint_eq(taken, 5);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 6);
	ck_assert_uint_eq(svqiso_vhost_nr_regions(F.vh), base_regions + 1);
	ck_assert_int_eq(svqiso_vhost_queue_stats(F.vh, 0, &st), 0);
	ck_assert_uint_le(st.pool_high_water, SMALL_POOL);
	ck_assert_uint_eq(st.oneoffs, 2);

	t0 = mono_ms();
	rc = svqiso_vhost_queue_drain(F.vh, 0, 300, -1);
	ms = mono_ms() - t0;
	if (sl == SVQISO_LAYOUT_SPLIT) {
		/* Its avail_event says it took them. */
		ck_assert_int_eq(rc, -ETIMEDOUT);
		ck_assert_int_ge(ms, 290);
		ck_assert_ptr_nonnull(strstr(F.logbuf,
			"t-q0: 6 requests still in flight after 300 ms"));
	} else {
		/* This packed device publishes no position: after 100 ms
		 * quiet they may be posted buffers, for the stop to tell. */
		ck_assert_int_eq(rc, 0);
	}
	ck_assert_int_le(ms, 1000);
	ck_assert(svqiso_vhost_queue_running(F.vh, 0));
	ck_assert_ptr_null(svqiso_vhost_queue_broken(F.vh, 0));
	/* Taking nothing new. */
	guest_post_len(big + 41ull * small + big, small, 0, 0x40);
	ck_assert_int_ge(svqiso_vhost_queue_kick(F.vh, 0), 0);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 6);

	/* The backend stops its ring where it is (GET_VRING_BASE). */
	sbase = svq_dev_get_base(&F.backend);
	t0 = mono_ms();
	ck_assert_int_eq(svqiso_vhost_queue_stop(F.vh, 0, sbase, 200, -1, &gbase),
			 -ETIMEDOUT);
	ms = mono_ms() - t0;
	ck_assert_int_ge(ms, 190);
	ck_assert_int_le(ms, 1000);
	ck_assert_ptr_nonnull(strstr(F.logbuf, "t-q0: the backend still holds 5 requests"));
	ck_assert(svqiso_vhost_queue_running(F.vh, 0));		/* stopping */
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 5);
	/* Past the five it holds, and no further: the chain taken ahead
	 * of room went back, the other 37 never left the guest's ring
	 * (split counts chains; packed slots: two for the first request,
	 * one for each since). */
	ck_assert_int_eq(svqiso_vhost_queue_stats(F.vh, 0, &st), 0);
	ck_assert_uint_eq(st.given_back, 1);
	ck_assert_uint_eq(gbase & 0x7fff, (gl ? 2 : 1) + 5);
	ck_assert_uint_eq(st.completions, 1);

	/* Giving up on them: the next start drops them, with their region. */
	ck_assert_int_eq(svqiso_vhost_queue_reset(F.vh, 0), 0);
	ck_assert(!svqiso_vhost_queue_running(F.vh, 0));
	ck_assert_uint_eq(F.region_dels, 1);
	svq_drv_fini(&F.gdrv);
	memset(F.guest, 0, DATA_OFF);
	guest_ring();
	start(fresh());
	ck_assert_uint_eq(F.region_dels, 2);
	ck_assert_uint_eq(svqiso_vhost_nr_regions(F.vh), base_regions);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 0);
	fx_close();
}
END_TEST

/* SVQISO_VHOST_F_NO_ONEOFF: no region from kick; the request breaks its
 * queue, saying why. */
START_TEST(test_no_oneoff_flag_breaks_instead)
{
	fx_pool_size = SMALL_POOL;
	fx_open(SVQISO_LAYOUT_SPLIT, SVQISO_LAYOUT_SPLIT);
	svqiso_vhost_free(F.vh);
	engine_new(SVQISO_LAYOUT_SPLIT, SVQISO_VHOST_F_NO_ONEOFF);
	{
		uint64_t offered = F(F_INDIRECT) | F(F_EVENT_IDX) | F(F_VERSION_1) |
				   F(F_PROTOCOL);
		struct svqiso_mem_region r = { .gpa = GUEST_BASE, .size = GUEST_SIZE,
					       .hva = F.vmm, .fd = -1 };
		uint64_t gf = svqiso_vhost_guest_features(F.vh, offered) & ~F(F_PACKED);

		ck_assert_int_eq(svqiso_vhost_set_guest_mem(F.vh, &r, 1), 0);
		ck_assert_int_eq(svqiso_vhost_set_features(F.vh, gf,
			svqiso_vhost_backend_features(F.vh, gf, offered)), 0);
	}
	guest_ring();
	start(0);
	F.region_adds = 0;
	guest_post_len(0, 128u << 10, 0, 1);
	ck_assert_int_eq(svqiso_vhost_queue_kick(F.vh, 0), -EIO);
	ck_assert_uint_eq(F.region_adds, 0);
	ck_assert_ptr_nonnull(strstr(svqiso_vhost_queue_broken(F.vh, 0),
				     "one-off regions are off"));
	fx_close();
}
END_TEST

/*
 * A VMM that polls between wake-ups: with busy polling on, poll() moves
 * requests both ways without a kick from the guest, a call from the
 * backend, or a read of either eventfd, and once the stale event indexes
 * have been passed neither side is asked to signal; off, both are asked
 * again.
 */
static bool guest_post_kick(unsigned int k, uint8_t pat, uint16_t *id)
{
	uint64_t a = GUEST_BASE + DATA_OFF + (uint64_t)k * 2 * SEG;
	struct svq_seg s[2] = {
		{ .addr = a, .len = SEG },
		{ .addr = a + SEG, .len = SEG, .write = true },
	};

	memset(gpa_hva(a), pat, SEG);
	memset(gpa_hva(a + SEG), 0xee, SEG);
	ck_assert_int_eq(svq_drv_add(&F.gdrv, s, 2, NULL, id), 0);
	return svq_drv_kick_prepare(&F.gdrv);
}

/* One request through poll(): whether the guest and the backend were
 * asked to signal. */
static void polled_request(unsigned int k, bool *kick, bool *call)
{
	struct svq_seg segs[8];
	struct svq_elem e;
	uint16_t id;
	int rc;

	*kick = guest_post_kick(k, (uint8_t)k, &id);
	/* Taken: progress, whether or not the backend wants a kick. */
	rc = svqiso_vhost_queue_poll(F.vh, 0);
	ck_assert_int_eq(rc & ~SVQISO_SIGNAL_BACKEND, SVQISO_SIGNAL_MOVED);
	ck_assert_int_eq(svqiso_vhost_queue_poll(F.vh, 0), 0);	/* nothing */
	ck_assert(backend_take(&e, segs, (uint8_t)k));
	memset(e.seg[1].hva, 0x50 + k, SEG);
	ck_assert_int_eq(svq_dev_push(&F.backend, e.id, SEG), 0);
	svq_dev_flush(&F.backend);
	*call = svq_dev_need_notify(&F.backend);
	/* The guest still wants its interrupt: written to its call fd, or
	 * for the VMM to inject when it has none. */
	ck_assert_int_eq(svqiso_vhost_queue_poll(F.vh, 0),
			 SVQISO_SIGNAL_MOVED | SVQISO_SIGNAL_GUEST);
	if (F.guest_call >= 0)
		ck_assert_uint_eq(read_fd(F.guest_call), 1);
	guest_collect(id, k, (uint8_t)(0x50 + k));
}

START_TEST(test_busy_poll_moves_requests_without_signals)
{
	uint8_t gl = _i & 1, sl = _i >> 1;
	bool kick, call;
	unsigned int k;
	int fd;

	fx_open(gl, sl);
	guest_ring();
	F.guest_call = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(F.guest_call, 0);
	ck_assert_int_eq(svqiso_vhost_queue_set_call(F.vh, 0, F.guest_call), 0);
	/* Not running: nothing to turn on. */
	ck_assert_int_eq(svqiso_vhost_queue_set_busy_poll(F.vh, 0, true), -EINVAL);
	ck_assert_int_eq(svqiso_vhost_queue_poll(F.vh, 0), -EINVAL);
	start(fresh());
	ck_assert_int_eq(svqiso_vhost_queue_set_busy_poll(F.vh, 0, true), 0);
	/* A backend that polls too: taking a request asks for no kick. */
	svq_dev_disable_notify(&F.backend);
	/* A call the backend made before stays unread by poll(). */
	ck_assert_uint_eq(write(F.sh.call_fd, &(uint64_t){ 1 }, 8), 8);
	for (k = 0; k < 6; k++) {
		polled_request(k, &kick, &call);
		/* The first may still meet the event indexes of before. */
		if (k > 0) {
			ck_assert_msg(!kick, "request %u: the guest kicks", k);
			ck_assert_msg(!call, "request %u: the backend calls", k);
		}
	}
	ck_assert_uint_eq(read_fd(F.sh.call_fd), 1);
	ck_assert_int_eq(svqiso_vhost_queue_set_busy_poll(F.vh, 0, false), 0);
	ck_assert_int_eq(svqiso_vhost_queue_poll(F.vh, 0), 0);
	polled_request(6, &kick, &call);
	ck_assert(kick);
	ck_assert(call);
	ck_assert_uint_eq(svqiso_vhost_queue_in_flight(F.vh, 0), 0);
	/* On again: no signals once more; a drain with it on stops. */
	ck_assert_int_eq(svqiso_vhost_queue_set_busy_poll(F.vh, 0, true), 0);
	polled_request(7, &kick, &call);
	polled_request(8, &kick, &call);
	ck_assert(!kick && !call);
	/* No call fd: the guest's interrupt is the VMM's to inject, and the
	 * mask says so; the old fd is not written. */
	ck_assert_int_eq(svqiso_vhost_queue_set_call(F.vh, 0, -1), 0);
	fd = F.guest_call;
	F.guest_call = -1;
	polled_request(9, &kick, &call);
	F.guest_call = fd;
	ck_assert_int_lt(read(F.guest_call, &(uint64_t){ 0 }, 8), 0);
	ck_assert_int_eq(svqiso_vhost_queue_drain(F.vh, 0, 1000, -1), 0);
	ck_assert_int_eq(svqiso_vhost_queue_set_busy_poll(F.vh, 0, false), 0);
	fx_close();
}
END_TEST

static Suite *vhost_suite(void)
{
	Suite *s = suite_create("vhost");
	TCase *tc;

	tc = tcase_create("policy");
	tcase_add_test(tc, test_guest_offer_masks_transport_bits_it_does_not_serve);
	tcase_add_test(tc, test_backend_features_follow_the_shadow_ring);
	tcase_add_test(tc, test_protocol_features_kept_and_masked_by_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_add_test(tc, test_vmm_addresses_translate_to_guest_addresses);
	tcase_add_loop_test(tc, test_guest_mem_replaced_while_running, 0, 4);
	tcase_add_loop_test(tc, test_guest_mem_replaced_with_requests_in_flight, 0, 4);
	tcase_add_test(tc, test_shadow_rings_share_regions);
	tcase_add_test(tc, test_reserve_makes_regions_up_front);
	suite_add_tcase(s, tc);

	tc = tcase_create("queues");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_call_fd_swapped_at_run_time, 0, 4);
	tcase_add_loop_test(tc, test_drain_stop_gives_back_what_the_backend_never_took, 0, 4);
	tcase_add_loop_test(tc, test_stop_with_a_lying_base_breaks, 0, 2);
	tcase_add_test(tc, test_stop_waits_bounded_for_what_the_backend_holds);
	tcase_add_test(tc, test_bad_calls_refused);
	tcase_add_test(tc, test_same_features_again_while_running);
	tcase_add_loop_test(tc, test_dirty_log_follows_log_all, 0, 4);
	tcase_add_loop_test(tc, test_busy_poll_moves_requests_without_signals, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("oneoff");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_oneoff_from_kick_and_a_backend_that_never_completes, 0, 4);
	tcase_add_test(tc, test_no_oneoff_flag_breaks_instead);
	suite_add_tcase(s, tc);

	tc = tcase_create("backend-lost");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_backend_lost_requests_reposted_to_the_next, 0, 8);
	tcase_add_loop_test(tc, test_backend_lost_then_guest_reset_drops, 0, 2);
	tcase_add_loop_test(tc, test_stop_after_repost_keeps_what_was_posted_again, 0, 4);
	tcase_add_test(tc, test_hangup_seen_in_drain_and_stop);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vhost_suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
