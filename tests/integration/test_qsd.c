/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user frontend (lib/frontend.c) against a real, unmodified
 * qemu-storage-daemon exporting a raw image as vhost-user-blk.
 *
 * The test is the VMM: its "guest" buffers are plain malloc'd memory, handed
 * to a svq in element mode; the daemon only ever gets the iso's regions (the
 * shadow ring and a bounce arena). Each test case starts its own daemon on
 * an image filled with a known pattern from an unchecked fixture, which runs
 * in the runner process: its teardown stops the daemon by pid whatever the
 * tests did, even when a failed assertion ended a test's process early (and
 * the daemon dies with the runner if that is killed). The daemon keeps
 * listening after a client leaves; each test connects afresh.
 *
 * Skips (TAP "1..0 # SKIP") when qemu-storage-daemon is not on PATH.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <svqiso/svqiso.h>
#include <svqiso/iso.h>
#include <svqiso/pool.h>
#include <svqiso/svq.h>
#include "frontend.h"
#include "vhost_user.h"
#include "qsd.h"
#include "inspect.h"

#define IMG_SIZE	(16u << 20)
#define SECTOR		512u
#define NUM		128
#define ARENA_SIZE	(1u << 20)
#define IO_MS		5000		/* per request */
#define PATTERN		0x9e3779b97f4a7c15ull

/* virtio-blk (VIRTIO 1.2, 5.2.6) */
#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_FLUSH	4
#define VIRTIO_BLK_S_OK		0

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static struct {
	struct qsd d;
	/* the session */
	struct svq_fe *fe;
	struct svqiso_iso *iso;
	struct svqiso_pool *pool;
	struct svqiso_svq *svq;
	struct svqiso_shadow_info info;
	uint64_t features;
	int kick, call;
	bool started;
	/* completions */
	unsigned int ncomplete;
	void *cookie;
	uint32_t len;
	/* log */
	unsigned int masked;
	char logbuf[4096];
} F = { .d.pid = -1, .kick = -1, .call = -1 };

static uint64_t pattern_word(uint64_t off)
{
	return (off / 8) * PATTERN ^ 0x53565149534f21ull;
}

static void log_cb(void *ctx, int level, const char *msg)
{
	size_t n = strlen(F.logbuf);

	(void)ctx;
	(void)level;
	fprintf(stderr, "# %s\n", msg);	/* meson's log, not TAP */
	if (strstr(msg, "masking"))
		F.masked++;
	snprintf(F.logbuf + n, sizeof(F.logbuf) - n, "%s\n", msg);
}

static void complete_cb(void *ctx, void *cookie, uint32_t len)
{
	(void)ctx;
	F.ncomplete++;
	F.cookie = cookie;
	F.len = len;
}

static void fill_pattern(uint64_t off, void *buf, uint64_t len)
{
	uint64_t *w = buf, i;

	for (i = 0; i < len / 8; i++)
		w[i] = pattern_word(off + i * 8);
}

/* The unchecked fixture runs in the runner: no ck_assert, errors in F.d.err. */
static void daemon_setup(void)
{
	struct qsd_cfg c = { .img_size = IMG_SIZE, .fill = fill_pattern };

	qsd_setup(&F.d, &c);
}

static void daemon_teardown(void)
{
	qsd_teardown(&F.d);
}

/* Checked fixture, in each test's process: the session only. */
static void setup(void)
{
	ck_assert_msg(!F.d.err[0], "%s", F.d.err);
	ck_assert_int_gt(F.d.pid, 0);
	F.masked = 0;
	F.logbuf[0] = 0;
}

static void teardown(void)
{
	uint32_t base;

	if (F.started)
		svq_fe_vring_stop(F.fe, 0, &base);
	svqiso_svq_free(F.svq);
	svqiso_pool_free(F.pool);
	svqiso_iso_free(F.iso);
	svq_fe_free(F.fe);
	if (F.kick >= 0)
		close(F.kick);
	if (F.call >= 0)
		close(F.call);
	F.fe = NULL;
	F.iso = NULL;
	F.pool = NULL;
	F.svq = NULL;
	F.kick = F.call = -1;
	F.started = false;
}

static void fe_open(void)
{
	SVQISO_OPTS(svq_fe_opts, o, .log = log_cb);

	ck_assert_int_eq(svq_fe_connect(F.d.sock, &o, &F.fe), 0);
	ck_assert_int_eq(svq_fe_set_features(F.fe,
		svq_fe_offered_features(F.fe) & ~(1ull << SVQ_FE_F_RING_PACKED),
		&F.features), 0);
}

/* Connect, negotiate, and start queue 0 on a split shadow ring. */
static void queue_open(void)
{
	SVQISO_OPTS(svqiso_iso_opts, io, .region_add = svq_fe_region_add,
		    .region_del = svq_fe_region_del, .log = log_cb);
	SVQISO_OPTS(svqiso_arena_opts, ao, .size = ARENA_SIZE);
	uint32_t sfeat = 0;

	fe_open();
	io.region_ctx = F.fe;
	ck_assert_int_eq(svqiso_iso_new(&io, &F.iso), 0);
	ck_assert_int_eq(svqiso_pool_new_arena(F.iso, &ao, &F.pool), 0);
	if (F.features & (1ull << SVQ_FE_F_INDIRECT_DESC))
		sfeat |= SVQISO_RING_F_INDIRECT;
	if (F.features & (1ull << SVQ_FE_F_EVENT_IDX))
		sfeat |= SVQISO_RING_F_EVENT_IDX;
	{
		SVQISO_OPTS(svqiso_svq_opts, so,
			    .flags = SVQISO_SVQ_F_ELEMENT, .num = NUM,
			    .shadow_layout = SVQISO_LAYOUT_SPLIT,
			    .shadow_features = sfeat, .iso = F.iso,
			    .pool = F.pool, .complete = complete_cb,
			    .log = log_cb, .name = "blk0");

		ck_assert_int_eq(svqiso_svq_new(&so, &F.svq), 0);
	}
	ck_assert_int_eq(svqiso_svq_get_shadow(F.svq, &F.info), 0);
	ck_assert_uint_eq(F.info.features, sfeat);
	F.kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	F.call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ck_assert_int_ge(F.kick, 0);
	ck_assert_int_ge(F.call, 0);
	ck_assert_int_eq(svq_fe_vring_start(F.fe, 0, &F.info, F.kick, F.call), 0);
	F.started = true;
	ck_assert_uint_eq(svq_fe_nr_regions(F.fe), svqiso_iso_nr_regions(F.iso));
}

static void kick(void)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(F.kick, &one, sizeof(one)), sizeof(one));
}

/* Submit one request and drive the queue until it completes. */
static uint32_t do_req(const struct iovec *out, unsigned int nout,
		       const struct iovec *in, unsigned int nin)
{
	unsigned int before = F.ncomplete;
	struct pollfd p = { .fd = F.call, .events = POLLIN };
	uint64_t v;
	int rc, waited = 0;

	rc = svqiso_svq_submit(F.svq, out, nout, in, nin, (void *)out);
	ck_assert_int_ge(rc, 0);
	if (rc & SVQISO_SIGNAL_BACKEND)
		kick();
	while (F.ncomplete == before) {
		ck_assert_msg(waited < IO_MS, "no completion in %d ms", IO_MS);
		rc = poll(&p, 1, 100);
		waited += 100;
		if (rc <= 0)
			continue;
		ck_assert_int_eq(read(F.call, &v, sizeof(v)), sizeof(v));
		rc = svqiso_svq_process_used(F.svq);
		ck_assert_msg(rc >= 0, "process_used: %d (%s)", rc,
			      svqiso_svq_broken_reason(F.svq));
		if (rc & SVQISO_SIGNAL_BACKEND)
			kick();
	}
	ck_assert_uint_eq(F.ncomplete, before + 1);
	ck_assert_ptr_eq(F.cookie, out);
	return F.len;
}

/* A virtio-blk request from malloc'd "guest" memory. Return: status byte. */
static uint8_t blk_rw(uint32_t type, uint64_t sector, void *data, size_t len)
{
	struct blk_hdr *hdr = malloc(sizeof(*hdr));
	uint8_t *status = malloc(1);
	struct iovec out[2], in[2];
	unsigned int nout = 0, nin = 0;
	uint32_t got;
	uint8_t s;

	ck_assert_ptr_nonnull(hdr);
	ck_assert_ptr_nonnull(status);
	hdr->type = htole32(type);
	hdr->reserved = 0;
	hdr->sector = htole64(sector);
	*status = 0xff;
	out[nout++] = (struct iovec){ hdr, sizeof(*hdr) };
	if (len && type == VIRTIO_BLK_T_OUT)
		out[nout++] = (struct iovec){ data, len };
	if (len && type == VIRTIO_BLK_T_IN)
		in[nin++] = (struct iovec){ data, len };
	in[nin++] = (struct iovec){ status, 1 };
	got = do_req(out, nout, in, nin);
	if (type == VIRTIO_BLK_T_IN)
		ck_assert_uint_ge(got, 1);
	s = *status;
	free(hdr);
	free(status);
	return s;
}

static void check_pattern(const uint8_t *buf, uint64_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i += 8) {
		uint64_t w, want = pattern_word(off + i);

		memcpy(&w, buf + i, 8);
		ck_assert_msg(w == want, "byte %" PRIu64 ": %#" PRIx64 " != %#" PRIx64,
			      off + i, w, want);
	}
}

START_TEST(test_negotiate_masks_unsafe_features)
{
	const uint64_t unsafe =
		(1ull << SVQ_VU_PROTOCOL_F_LOG_SHMFD) |
		(1ull << SVQ_VU_PROTOCOL_F_BACKEND_REQ) |
		(1ull << SVQ_VU_PROTOCOL_F_PAGEFAULT) |
		(1ull << SVQ_VU_PROTOCOL_F_BACKEND_SEND_FD) |
		(1ull << SVQ_VU_PROTOCOL_F_HOST_NOTIFIER) |
		(1ull << SVQ_VU_PROTOCOL_F_INFLIGHT_SHMFD) |
		(1ull << SVQ_VU_PROTOCOL_F_INBAND_NOTIFICATIONS);
	uint64_t prot;

	fe_open();
	prot = svq_fe_protocol_features(F.fe);
	ck_assert(svq_fe_offered_features(F.fe) & (1ull << SVQ_VU_F_PROTOCOL_FEATURES));
	ck_assert_uint_eq(prot & unsafe, 0);
	/* libvhost-user always offers LOG_SHMFD and HOST_NOTIFIER. */
	ck_assert_uint_ge(F.masked, 2);
	ck_assert_ptr_nonnull(strstr(F.logbuf, "HOST_NOTIFIER"));
	ck_assert(prot & (1ull << SVQ_VU_PROTOCOL_F_REPLY_ACK));
	ck_assert(prot & (1ull << SVQ_VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS));
	ck_assert_uint_eq(svq_fe_queue_num(F.fe), 2);
	ck_assert_uint_ge(svq_fe_mem_slots(F.fe), 8);
	ck_assert(F.features & (1ull << SVQ_FE_F_VERSION_1));
	ck_assert_uint_eq(F.features & ((1ull << SVQ_FE_F_LOG_ALL) |
					(1ull << SVQ_FE_F_RING_PACKED)), 0);
	ck_assert_uint_eq(F.features & ~svq_fe_offered_features(F.fe), 0);
	fprintf(stderr, "# features offered %#" PRIx64 " agreed %#" PRIx64
		" protocol %#" PRIx64 " slots %u\n", svq_fe_offered_features(F.fe),
		F.features, prot, svq_fe_mem_slots(F.fe));
}
END_TEST

START_TEST(test_config_capacity_is_image_size)
{
	uint64_t cap = 0;

	fe_open();
	ck_assert_int_eq(svq_fe_get_config(F.fe, 0, &cap, sizeof(cap)), 0);
	ck_assert_uint_eq(le64toh(cap), IMG_SIZE / SECTOR);
	ck_assert_int_eq(svq_fe_get_config(F.fe, 0, &cap, 0), -EINVAL);
	ck_assert_int_eq(svq_fe_get_config(F.fe, 0, &cap, SVQ_VU_CONFIG_MAX + 1),
			 -EINVAL);
}
END_TEST

START_TEST(test_bad_arguments_rejected)
{
	struct svq_fe *fe = NULL;
	uint32_t base;

	ck_assert_int_eq(svq_fe_connect(NULL, NULL, &fe), -EINVAL);
	ck_assert_int_eq(svq_fe_connect(F.d.sock, NULL, NULL), -EINVAL);
	ck_assert_int_lt(svq_fe_connect("/nonexistent/svqiso.sock", NULL, &fe), 0);
	ck_assert_ptr_null(fe);
	fe_open();
	ck_assert_int_eq(svq_fe_vring_start(F.fe, 2, &F.info, 0, -1), -EINVAL);
	ck_assert_int_eq(svq_fe_vring_stop(F.fe, 2, &base), -EINVAL);
	ck_assert_int_eq(svq_fe_set_features(NULL, 0, NULL), -EINVAL);
}
END_TEST

START_TEST(test_read_write_flush_reach_the_image)
{
	const size_t len = 3 * 4096 + 512;	/* several pages, odd tail */
	const uint64_t sector = 1000;
	uint8_t *buf = malloc(len), *disk = malloc(len);
	uint32_t base;
	size_t i;
	int fd;

	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(disk);
	queue_open();

	/* read: the image's pattern */
	memset(buf, 0xaa, len);
	ck_assert_uint_eq(blk_rw(VIRTIO_BLK_T_IN, sector, buf, len), VIRTIO_BLK_S_OK);
	check_pattern(buf, sector * SECTOR, len);
	memset(buf, 0xaa, 4096);
	ck_assert_uint_eq(blk_rw(VIRTIO_BLK_T_IN, IMG_SIZE / SECTOR - 8, buf, 4096),
			  VIRTIO_BLK_S_OK);
	check_pattern(buf, IMG_SIZE - 4096, 4096);

	/* write new data, flush, re-read it through the device ... */
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + 7);
	ck_assert_uint_eq(blk_rw(VIRTIO_BLK_T_OUT, sector, buf, len), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(blk_rw(VIRTIO_BLK_T_FLUSH, 0, NULL, 0), VIRTIO_BLK_S_OK);
	memset(buf, 0, len);
	ck_assert_uint_eq(blk_rw(VIRTIO_BLK_T_IN, sector, buf, len), VIRTIO_BLK_S_OK);
	for (i = 0; i < len; i++)
		ck_assert_uint_eq(buf[i], (uint8_t)(i * 31 + 7));

	/* ... and from the file itself; the neighbours are untouched */
	fd = open(F.d.img, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, disk, len, (off_t)(sector * SECTOR)), (ssize_t)len);
	ck_assert_int_eq(memcmp(disk, buf, len), 0);
	ck_assert_int_eq(pread(fd, disk, SECTOR, (off_t)((sector - 1) * SECTOR)),
			 SECTOR);
	check_pattern(disk, (sector - 1) * SECTOR, SECTOR);
	ck_assert_int_eq(pread(fd, disk, SECTOR, (off_t)(sector * SECTOR + len)),
			 SECTOR);
	check_pattern(disk, sector * SECTOR + len, SECTOR);
	close(fd);

	/* a read past the end fails with a status, not a crash */
	ck_assert_uint_ne(blk_rw(VIRTIO_BLK_T_IN, IMG_SIZE / SECTOR, buf, 4096),
			  VIRTIO_BLK_S_OK);

	/* the backend took all 6 requests from the shadow ring */
	ck_assert_int_eq(svq_fe_vring_stop(F.fe, 0, &base), 0);
	F.started = false;
	ck_assert_uint_eq(base, 6);
	ck_assert_uint_eq(svqiso_pool_in_use(F.pool), 0);
	free(buf);
	free(disk);
}
END_TEST

/*
 * What the daemon can reach, against the iso's live regions: every memfd it
 * maps or holds must be one of them. Return: bytes of its memfd mappings.
 */
static uint64_t daemon_memfd(void)
{
	struct stat allowed[16], none = { 0 };
	struct inspect_report rep;
	struct svqiso_region r;
	unsigned int i, n = svqiso_iso_nr_regions(F.iso);

	ck_assert_uint_le(n, SVQ_ARRAY_SIZE(allowed));
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(svqiso_iso_get_region(F.iso, i, &r), 0);
		ck_assert_int_eq(fstat(r.fd, &allowed[i]), 0);
	}
	/* The "guest" here is malloc'd memory: no file to look for. */
	ck_assert_int_eq(inspect_process(F.d.pid, &none, allowed, n, &rep), 0);
	ck_assert_msg(!rep.map_memfd_unknown && !rep.fd_memfd_unknown,
		      "not an iso region: %s", rep.detail);
	return rep.map_memfd_bytes;
}

static uint64_t iso_bytes(void)
{
	struct svqiso_region r;
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < svqiso_iso_nr_regions(F.iso); i++) {
		ck_assert_int_eq(svqiso_iso_get_region(F.iso, i, &r), 0);
		sum += r.size;
	}
	return sum;
}

/*
 * The daemon's memfd mappings are exactly the iso's regions, before and
 * after a region comes and goes (ADD_MEM_REG, REM_MEM_REG).
 */
START_TEST(test_daemon_maps_only_isolated_memory)
{
	uint8_t *buf = malloc(8192);
	struct svqiso_region extra;
	uint64_t bytes, before;

	ck_assert_ptr_nonnull(buf);
	queue_open();
	ck_assert_uint_eq(blk_rw(VIRTIO_BLK_T_IN, 0, buf, 8192), VIRTIO_BLK_S_OK);
	check_pattern(buf, 0, 8192);

	bytes = daemon_memfd();
	fprintf(stderr, "# daemon memfd mappings: %" PRIu64 " bytes; iso: %u "
		"regions, %" PRIu64 " bytes\n", bytes,
		svqiso_iso_nr_regions(F.iso), iso_bytes());
	ck_assert_uint_eq(bytes, iso_bytes());
	ck_assert_uint_ge(svqiso_iso_nr_regions(F.iso), 2);	/* shadow ring, arena */
	before = bytes;

	ck_assert_int_eq(svqiso_iso_region_new(F.iso, 3 << 20, &extra), 0);
	ck_assert_uint_eq(svq_fe_nr_regions(F.fe), svqiso_iso_nr_regions(F.iso));
	ck_assert_uint_eq(daemon_memfd(), before + extra.size);

	ck_assert_int_eq(svqiso_iso_region_free(F.iso, extra.iova), 0);
	ck_assert_uint_eq(svq_fe_nr_regions(F.fe), svqiso_iso_nr_regions(F.iso));
	ck_assert_uint_eq(daemon_memfd(), before);

	/* the queue still works */
	ck_assert_uint_eq(blk_rw(VIRTIO_BLK_T_IN, 8, buf, 512), VIRTIO_BLK_S_OK);
	check_pattern(buf, 8 * SECTOR, 512);
	free(buf);
}
END_TEST

static Suite *qsd_suite(void)
{
	Suite *s = suite_create("qsd");
	TCase *tc;

	tc = tcase_create("negotiate");
	tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_negotiate_masks_unsafe_features);
	tcase_add_test(tc, test_config_capacity_is_image_size);
	tcase_add_test(tc, test_bad_arguments_rejected);
	suite_add_tcase(s, tc);

	tc = tcase_create("io");
	tcase_add_unchecked_fixture(tc, daemon_setup, daemon_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_read_write_flush_reach_the_image);
	tcase_add_test(tc, test_daemon_maps_only_isolated_memory);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (!qsd_on_path(QSD_BIN)) {
		printf("1..0 # SKIP " QSD_BIN " not installed\n");
		return EXIT_SUCCESS;
	}
	sr = srunner_create(qsd_suite());
	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);	/* nothing but TAP on stdout */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
