/* SPDX-License-Identifier: MIT */
/*
 * svqiso-demo: a VMM's view of memory isolation, end to end.
 *
 * It plays the VMM and its guest: guest RAM is a memfd, a virtio-blk driver
 * model posts requests on two queues, and the svqiso vhost-user adapter
 * relays them to an unmodified qemu-storage-daemon. The same workload runs
 * twice, through the isolated path and through plain vhost-user ("direct",
 * where the daemon maps guest RAM), and the demo reports what the daemon
 * could reach in each case, whether every byte came back right, and the
 * throughput of both.
 *
 *   svqiso-demo --socket SOCK --pid PID --image IMG [--requests N]
 *
 * SOCK is the daemon's vhost-user-blk socket, PID its process (to read
 * /proc/PID/maps and /proc/PID/fd), IMG the raw image it exports (read back
 * to check every written sector).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <svqiso/svqiso.h>
#include "guest.h"
#include "inspect.h"

#define GUEST_GPA	0x40000000ull
#define GUEST_SIZE	(160ull << 20)
#define NQ		2
#define NUM		256
#define DEPTH		32

struct run {
	const char *name;
	uint8_t mode;
	struct blkwork_result res;
	uint64_t verified_sectors;
	uint64_t image_mismatches;
	/* the daemon's view, worst case over the run */
	uint64_t backend_bytes;
	uint32_t backend_regions;
	uint64_t memfd_mapped;
	unsigned int guest_maps, guest_fds, inspections;
	uint64_t copied;		/* bytes svqiso copied, both ways */
};

static struct {
	const char *sock;
	const char *image;
	pid_t pid;
	uint64_t requests;
	struct gmem *gm;
	struct stat guest_st;
	struct svqiso_vu *vu;
	struct run *cur;
	bool verbose;
} G = { .requests = 20000 };

static void log_cb(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= SVQISO_LOG_WARN || G.verbose)
		fprintf(stderr, "svqiso: %s\n", msg);
}

static void inspect_now(void)
{
	struct svqiso_vu_info info = { .sz = sizeof(info) };
	struct inspect_report r;
	struct run *run = G.cur;

	if (svqiso_vu_get_info(G.vu, &info) ||
	    inspect_process(G.pid, &G.guest_st, NULL, 0, &r))
		return;
	run->inspections++;
	if (info.backend_bytes > run->backend_bytes)
		run->backend_bytes = info.backend_bytes;
	if (info.backend_regions > run->backend_regions)
		run->backend_regions = info.backend_regions;
	if (r.map_memfd_bytes > run->memfd_mapped)
		run->memfd_mapped = r.map_memfd_bytes;
	if (r.map_guest > run->guest_maps)
		run->guest_maps = r.map_guest;
	if (r.fd_guest > run->guest_fds)
		run->guest_fds = r.fd_guest;
}

static void tick(void *ctx, uint64_t completed)
{
	(void)ctx;
	if (completed % 2048 < 256)
		inspect_now();
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "svqiso-demo: %s: %s\n", what, strerror(-err));
	return err;
}

static int run_one(struct run *run)
{
	SVQISO_OPTS(svqiso_vu_opts, vo, .path = G.sock, .mode = run->mode,
		    .log = log_cb, .timeout_ms = 10000);
	struct blkq_opts qo = { .num = NUM, .indirect = true, .event_idx = true,
				.max_segs = 8, .seed = 1 };
	struct svqiso_svq_stats st = { .sz = sizeof(st) };
	struct blkq *q[NQ] = { NULL };
	struct blkwork *w = NULL;
	struct blkwork_opts wo;
	unsigned int i;
	uint64_t feat;
	uint32_t base;
	int rc, fd = -1;

	G.cur = run;
	rc = svqiso_vu_connect(&vo, &G.vu);
	if (rc)
		return fail("connect", rc);
	feat = svqiso_vu_get_features(G.vu) & ~(1ull << 34);	/* split guest */
	rc = svqiso_vu_set_features(G.vu, feat);
	if (rc) {
		fail("features", rc);
		goto out;
	}
	for (i = 0; i < gmem_nr_regions(G.gm) && !rc; i++) {
		struct svqiso_mem_region r;

		gmem_region(G.gm, i, &r);
		rc = svqiso_vu_add_region(G.vu, &r);
	}
	for (i = 0; i < NQ && !rc; i++) {
		struct svqiso_vu_queue c;

		rc = blkq_new(G.gm, &qo, &q[i]);
		if (rc)
			break;
		c = (struct svqiso_vu_queue){
			.sz = sizeof(c), .ring = blkq_addr(q[i]),
			.num = blkq_num(q[i]), .layout = blkq_layout(q[i]),
			.base = blkq_fresh_base(q[i]),
			.kick_fd = blkq_kick_fd(q[i]), .call_fd = blkq_call_fd(q[i]),
		};
		rc = svqiso_vu_queue_start(G.vu, i, &c);
	}
	if (rc) {
		fail("queue setup", rc);
		goto out;
	}
	fd = open(G.image, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = fail(G.image, -errno);
		goto out;
	}
	blkwork_opts_init(&wo);
	wo.queues = q;
	wo.nqueues = NQ;
	wo.depth = DEPTH;
	wo.min_len = 512;
	wo.max_len = 1u << 20;
	wo.max_segs = 8;
	wo.discard_zeroes = true;
	wo.seed = 0x5eed;
	wo.timeout_ms = 30000;
	wo.tick = tick;
	wo.init_fd = fd;
	{
		struct stat ist;

		if (fstat(fd, &ist)) {
			rc = fail("image", -errno);
			goto out;
		}
		wo.capacity = (uint64_t)ist.st_size & ~511ull;
	}
	rc = blkwork_new(&wo, &w);
	if (rc) {
		fail("workload", rc);
		goto out;
	}
	inspect_now();
	rc = blkwork_run(w, G.requests, &run->res);
	if (rc) {
		fail("I/O", rc);
		goto out;
	}
	inspect_now();
	for (i = 0; i < NQ; i++) {
		rc = svqiso_vu_queue_stop(G.vu, i, &base);
		if (rc) {
			fail("stop", rc);
			goto out;
		}
		if (!svqiso_vu_get_queue_stats(G.vu, i, &st))
			run->copied += st.bytes_out + st.bytes_in;
	}
	rc = blkwork_check_fd(w, fd, &run->image_mismatches);
	if (rc) {
		fail("image check", rc);
		goto out;
	}
	run->verified_sectors = wo.capacity / 512;
out:
	blkwork_free(w);
	svqiso_vu_free(G.vu);
	G.vu = NULL;
	for (i = 0; i < NQ; i++)
		blkq_free(q[i]);
	if (fd >= 0)
		close(fd);
	return rc;
}

static double mib(uint64_t b)
{
	return (double)b / (1 << 20);
}

static double rate(const struct run *r, uint64_t n)
{
	return r->res.elapsed_ns ? (double)n * 1e9 / (double)r->res.elapsed_ns : 0;
}

static uint64_t moved(const struct run *r)
{
	return r->res.bytes_read + r->res.bytes_written;
}

static uint64_t nreq(const struct run *r)
{
	return r->res.reads + r->res.writes + r->res.flushes + r->res.discards +
	       r->res.write_zeroes;
}

static bool report(const struct run *iso, const struct run *dir)
{
	bool iso_clean = !iso->guest_maps && !iso->guest_fds &&
			 iso->memfd_mapped == iso->backend_bytes;
	bool data_ok = !iso->res.mismatches && !iso->res.bad_status &&
		       !iso->image_mismatches && !dir->res.mismatches &&
		       !dir->res.bad_status && !dir->image_mismatches;

	printf("\nlibsvqiso %s: isolated virtio-blk I/O through an unmodified "
	       "qemu-storage-daemon\n\n", svqiso_version());
	printf("guest RAM          %.0f MiB memfd, %u regions\n", mib(GUEST_SIZE),
	       gmem_nr_regions(G.gm));
	printf("requests           %" PRIu64 " per run on %u queues at depth %u: "
	       "%" PRIu64 " reads, %" PRIu64 " writes, %" PRIu64 " flushes, %"
	       PRIu64 " discards, %" PRIu64 " write-zeroes (512 B to 1 MiB)\n",
	       nreq(iso), NQ, DEPTH, iso->res.reads, iso->res.writes,
	       iso->res.flushes, iso->res.discards, iso->res.write_zeroes);
	printf("bytes              isolated %.1f MiB moved, %.1f MiB copied by "
	       "svqiso; direct %.1f MiB moved\n", mib(moved(iso)), mib(iso->copied),
	       mib(moved(dir)));
	printf("data verified      isolated: %" PRIu64 " sectors read back wrong, "
	       "%" PRIu64 " bad status, image file differs from the model in %"
	       PRIu64 " of %" PRIu64 " sectors\n", iso->res.mismatches,
	       iso->res.bad_status, iso->image_mismatches, iso->verified_sectors);
	printf("                   direct:   %" PRIu64 " sectors read back wrong, "
	       "%" PRIu64 " bad status, image file differs from the model in %"
	       PRIu64 " of %" PRIu64 " sectors   [%s]\n", dir->res.mismatches,
	       dir->res.bad_status, dir->image_mismatches, dir->verified_sectors,
	       data_ok ? "OK" : "FAILED");
	printf("backend's view     isolated: maps %.1f MiB of memfd in %u regions "
	       "(shadow rings and bounce arenas), guest RAM mappings %u, guest "
	       "RAM fds %u   [%s]\n", mib(iso->memfd_mapped), iso->backend_regions,
	       iso->guest_maps, iso->guest_fds, iso_clean ? "ISOLATED" : "LEAK");
	printf("                   direct:   maps %.1f MiB of memfd, guest RAM "
	       "mappings %u: all %.0f MiB of guest RAM is exposed\n",
	       mib(dir->memfd_mapped), dir->guest_maps, mib(GUEST_SIZE));
	printf("                   (read from /proc/%d/maps and /fd, %u + %u times "
	       "during the runs)\n", (int)G.pid, iso->inspections, dir->inspections);
	printf("throughput         isolated %.0f MiB/s, %.0f requests/s; direct "
	       "%.0f MiB/s, %.0f requests/s; isolated/direct %.2f\n",
	       rate(iso, moved(iso)) / (1 << 20), rate(iso, nreq(iso)),
	       rate(dir, moved(dir)) / (1 << 20), rate(dir, nreq(dir)),
	       rate(dir, nreq(dir)) > 0 ? rate(iso, nreq(iso)) / rate(dir, nreq(dir)) : 0);
	printf("                   (a mixed workload on a file in memory, one "
	       "run each; scripts/bench measures properly)\n");
	return iso_clean && data_ok && dir->guest_maps > 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "pid", required_argument, NULL, 'p' },
		{ "image", required_argument, NULL, 'i' },
		{ "requests", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct run iso = { .name = "isolated", .mode = SVQISO_VU_ISOLATED };
	struct run dir = { .name = "direct", .mode = SVQISO_VU_DIRECT };
	int c;

	while ((c = getopt_long(argc, argv, "s:p:i:n:v", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			G.sock = optarg;
			break;
		case 'p':
			G.pid = (pid_t)atoi(optarg);
			break;
		case 'i':
			G.image = optarg;
			break;
		case 'n':
			G.requests = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			G.verbose = true;
			break;
		default:
			goto usage;
		}
	}
	if (!G.sock || !G.image || G.pid <= 0 || !G.requests)
		goto usage;

	G.gm = gmem_new(GUEST_GPA, GUEST_SIZE, 2);
	if (!G.gm || fstat(gmem_fd(G.gm), &G.guest_st))
		return fail("guest RAM", -errno), 1;
	printf("isolated run: %" PRIu64 " requests...\n", G.requests);
	fflush(stdout);
	if (run_one(&iso))
		return 1;
	/* Direct mode needs fresh guest RAM: the rings are laid out anew. */
	gmem_free(G.gm);
	G.gm = gmem_new(GUEST_GPA, GUEST_SIZE, 2);
	if (!G.gm || fstat(gmem_fd(G.gm), &G.guest_st))
		return fail("guest RAM", -errno), 1;
	printf("direct run: %" PRIu64 " requests...\n", G.requests);
	fflush(stdout);
	if (run_one(&dir))
		return 1;
	c = report(&iso, &dir) ? 0 : 1;
	gmem_free(G.gm);
	return c;
usage:
	fprintf(stderr, "usage: %s --socket SOCK --pid PID --image IMG "
		"[--requests N] [--verbose]\n", argv[0]);
	return 2;
}
