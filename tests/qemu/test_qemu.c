/* SPDX-License-Identifier: MIT */
/*
 * Linux guests on QEMU against unmodified vhost-user backends
 * (qemu-storage-daemon, virtiofsd), with memory isolation off and on.
 *
 *   test_qemu VARIANT
 *
 * runs one variant (meson registers each as a test of suite "qemu"). It
 * starts its own backend and QEMU (TCG, 2 vCPUs, 512 MiB) by pid in a
 * temporary directory, boots the host's Debian kernel with an initramfs
 * that tests/qemu/mkinitramfs builds for the run, drives the guest through
 * its console (tests/qemu/guest/init), checks on the host what the guest
 * wrote, and reads the backend's /proc/<pid>/maps and fd while the guest
 * does I/O:
 *
 *   isolation off  the backend must map guest RAM: the negative control,
 *                  proving the inspection finds it when it is there;
 *   isolation on   it must reach no guest RAM and no memfd but svqiso's
 *                  isolated regions (QEMU's memfds named "svqiso..."),
 *                  and map some of those.
 *
 * The "on" variants skip (TAP "1..0 # SKIP") while the QEMU binary has no
 * memory-isolation property (the adapters/qemu series is not applied);
 * see variants[] for what each one does.
 *
 * The "proxy-" variants run the distribution's QEMU, unchanged, with
 * svqiso-proxy as its vhost-user backend and the real backend behind the
 * proxy: the backend must reach no guest RAM and no memfd but the proxy's
 * isolated regions, and the proxy must map guest RAM (it is the VMM's side
 * of the isolation: the positive control of the inspection). They check
 * the proxy's stats (SIGUSR1: a JSON line on its stdout) and its clean
 * exit on SIGTERM too.
 *
 * Environment:
 *   SVQISO_QEMU           the QEMU binary; scripts/test sets it to
 *                         build-qemu/bin/qemu-system-x86_64 (scripts/qemu).
 *                         Unset: SVQISO_QEMU_DEFAULT, that path in the
 *                         source tree, and a skip if it is not there. Set:
 *                         anything missing fails.
 *   SVQISO_QEMU_FIRMWARE  a -L directory (optional: the wrapper adds one)
 *   SVQISO_KERNEL         vmlinuz-VERSION, its modules in /lib/modules/
 *                         VERSION; default: the newest such in /boot
 *   SVQISO_VIRTIOFSD      default /usr/lib/qemu/virtiofsd
 *   SVQISO_QEMU_TESTS     this directory (mkinitramfs, guest/init)
 *   SVQISO_STOCK_QEMU     the proxy variants' QEMU; default
 *                         /usr/bin/qemu-system-x86_64 (Debian's
 *                         qemu-system-x86), and a skip if it is not there;
 *                         set: anything missing fails
 *   SVQISO_PROXY          the svqiso-proxy binary (meson sets it)
 *   SVQISO_PROXY_BYPASS   1: the proxy variants connect QEMU straight to
 *                         the backend, the proxy idle beside them; they
 *                         must then fail (a check of the checks)
 *   SVQISO_NOLOG_PRELOAD  migrate-on-nolog's LD_PRELOAD for QEMU: a
 *                         library whose svqiso_vhost_set_dirty_log() does
 *                         nothing (meson sets it)
 */
#define _GNU_SOURCE	/* memmem, versionsort */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>

#include "ckplan.h"
#include "inspect.h"
#include "proc.h"
#include "qsd.h"
#include "vm.h"

#define MEM_MB		512		/* guest RAM */
#define IMG_MB		256		/* the disk */
#define BOOT_MS		120000		/* to the guest's first prompt */
#define CMD_MS		180000		/* one guest command */
#define EXIT_MS		60000		/* from poweroff to QEMU's exit */
#define FS_MB		8		/* guest.bin */
#define HOST_FILE_MB	4		/* host.bin */
#define VIRTIOFSD	"/usr/lib/qemu/virtiofsd"
#define STOCK_QEMU	"/usr/bin/qemu-system-x86_64"
#define PROXY_NAME	"dev0"		/* --name: its memfds are "dev0-<iova>" */
#define STATS_MS	10000		/* for a stats line after SIGUSR1 */

enum kind {
	K_BLK,			/* data on two queues, direct and cached */
	K_FS,			/* virtiofs: read a host file, write files */
	K_RESET,		/* system_reset mid-I/O, then a guest reboot */
	K_RECONNECT,		/* qemu-storage-daemon killed mid-I/O, restarted */
	K_RESTART,		/* QEMU killed mid-I/O, started again (proxy only) */
	K_MIGRATE,		/* live migration to a second QEMU */
};

struct variant {
	const char *name;
	enum kind kind;
	bool iso;		/* memory-isolation=on */
	bool ram;		/* memory-backend-ram: no fd, not shared */
	const char *props;	/* more device properties */
	bool proxy;		/* stock QEMU, svqiso-proxy before the backend */
	bool nolog;		/* svqiso writes no dirty log: the negative
				 * control of the migration checks */
};

static const struct variant variants[] = {
	/* vhost-user-blk-pci, num-queues=2: 64 MiB written with O_DIRECT
	 * half from each vCPU (both queues must complete requests), 64 MiB
	 * through the page cache, read back in the guest and checked
	 * against the image file on the host. */
	{ "blk-off", K_BLK, false, false, NULL, false, false },
	{ "blk-on", K_BLK, true, false, NULL, false, false },
	/* Guest RAM qemu-storage-daemon could not map even without
	 * isolation (plain vhost-user fails on it). */
	{ "blk-on-ram", K_BLK, true, true, NULL, false, false },
	/* A packed guest ring over qemu-storage-daemon's split one. */
	{ "blk-on-packed", K_BLK, true, false, "packed=on", false, false },
	{ "blk-on-noindirect", K_BLK, true, false,
	  "indirect_desc=off,event_idx=off", false, false },
	/* vhost-user-fs-pci against virtiofsd: the guest reads a host file
	 * and writes files the host then checks. */
	{ "fs-off", K_FS, false, false, NULL, false, false },
	{ "fs-on", K_FS, true, false, NULL, false, false },
	/* system_reset through QMP in the middle of a write, then a reboot
	 * from the guest: the disk works after each, the data written
	 * before is there, and QEMU holds no more fds and mappings than
	 * after the first boot. */
	{ "reset-off", K_RESET, false, false, NULL, false, false },
	{ "reset-on", K_RESET, true, false, NULL, false, false },
	/* qemu-storage-daemon SIGKILLed in the middle of a write and
	 * started again on the same socket (chardev reconnect=1): the
	 * write completes and its data is on the disk. */
	{ "reconnect-off", K_RECONNECT, false, false, NULL, false, false },
	{ "reconnect-on", K_RECONNECT, true, false, NULL, false, false },
	/* The stock QEMU and svqiso-proxy (see the top of this file). The
	 * blk, fs and packed ones as blk-on, fs-on and blk-on-packed (the
	 * proxy's shadow ring is split, as qemu-storage-daemon's). */
	{ "proxy-blk", K_BLK, false, false, NULL, true, false },
	{ "proxy-fs", K_FS, false, false, NULL, true, false },
	{ "proxy-packed", K_BLK, false, false, "packed=on", true, false },
	/* As reset-on, and the proxy holds no more fds and mappings either. */
	{ "proxy-reboot", K_RESET, false, false, NULL, true, false },
	/* QEMU SIGKILLed in the middle of a write and started again against
	 * the same proxy, which serves the new session: the disk works, the
	 * data written before is there, and the proxy let go of the dead
	 * QEMU's guest RAM. */
	{ "proxy-qemu-restart", K_RESTART, false, false, NULL, true, false },
	/* As reconnect-on, with no reconnect option on QEMU's side: the
	 * proxy reconnects to the restarted daemon by itself and re-posts
	 * what the dead one held (its stats count the reconnect). */
	{ "proxy-backend-kill", K_RECONNECT, false, false, NULL, true, false },
	/* Live migration to a second QEMU on the same machine, both on the
	 * same qemu-storage-daemon image (two exports: shared storage),
	 * while the guest writes, reads back and compares data; a read
	 * through the page cache made during the migration is read again,
	 * from the cache, on the destination. The guest's checks pass there
	 * and the image holds what the guest wrote. migrate-off is plain
	 * vhost-user (qemu-storage-daemon logs its own writes). */
	{ "migrate-off", K_MIGRATE, false, false, NULL, false, false },
	{ "migrate-on", K_MIGRATE, true, false, NULL, false, false },
	/* A packed guest ring: svqiso's used entries go to its descriptor
	 * area. */
	{ "migrate-on-packed", K_MIGRATE, true, false, "packed=on", false, false },
	{ "proxy-migrate", K_MIGRATE, false, false, NULL, true, false },
	/* The same with svqiso's logging off (QEMU: the library's
	 * svqiso_vhost_set_dirty_log() preloaded away; the proxy:
	 * --no-dirty-log): the destination's memory is stale, and the
	 * test must find it so. */
	{ "migrate-on-nolog", K_MIGRATE, true, false, NULL, false, true },
	{ "proxy-migrate-nolog", K_MIGRATE, false, false, NULL, true, true },
};

#define NR_VARIANTS	(sizeof(variants) / sizeof(variants[0]))

/* Set in main(), before the tests fork. */
static const struct variant *var;
static struct {
	char qemu[PATH_MAX];
	const char *firmware;
	char kernel[PATH_MAX];
	char kver[128];
	char initrd[PATH_MAX];
	const char *virtiofsd;
	const char *tests;
	const char *proxy;
	bool bypass;		/* SVQISO_PROXY_BYPASS=1 */
	const char *nolog;	/* SVQISO_NOLOG_PRELOAD: the nolog variants'
				 * LD_PRELOAD for QEMU */
} env;

/* One test's components; the forked test process owns them. */
static struct rig {
	char dir[128];
	struct qsd_cfg qcfg;
	struct qsd qsd;
	pid_t vfsd;
	char share[192], fs_sock[192];
	pid_t proxy;
	char proxy_sock[192], proxy_log[192];
	struct vm vm;
	bool vm_up;
	/* a migration's destination, and its proxy */
	char dst_dir[160];
	struct vm dst;
	bool dst_up;
	pid_t proxy2;
	char proxy2_sock[192], proxy2_log[192];
	char a_chr[320], a_dev[320];
	char *args[8];
	struct timespec t0;
} rig;

static double elapsed(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - rig.t0.tv_sec) +
	       (double)(t.tv_nsec - rig.t0.tv_nsec) / 1e9;
}

/* A line in the test's log (stderr: stdout carries TAP). */
#define note(fmt, ...) \
	fprintf(stderr, "# %s %6.1f s: " fmt "\n", var->name, elapsed(), ##__VA_ARGS__)

static void dump(void);

/* ck_assert_msg() that first shows what the guest, QEMU and the proxy
 * printed. */
#define require(cond, ...) do {						\
	if (!(cond)) {							\
		dump();							\
		ck_abort_msg(__VA_ARGS__);				\
	}								\
} while (0)

/* The last bytes of a proxy's output file. */
static void dump_proxy(const char *path, const char *who)
{
	char buf[6001];
	ssize_t n;
	off_t end;
	int fd;

	if (!path[0])
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf) - 1, end > 6000 ? end - 6000 : 0);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	fprintf(stderr, "--- %s's output (last %zd bytes) ---\n%s---\n", who,
		n > 0 ? n : 0, buf);
}

static void dump(void)
{
	if (rig.vm_up)
		vm_dump(&rig.vm, stderr);
	if (rig.dst_up) {
		fprintf(stderr, "--- the migration's destination ---\n");
		vm_dump(&rig.dst, stderr);
	}
	dump_proxy(rig.proxy_log, "svqiso-proxy");
	dump_proxy(rig.proxy2_log, "the destination's svqiso-proxy");
}

/* sha256 of what @cmd prints, by sha256sum. */
static bool sha_of(const char *cmd, char sha[65])
{
	char line[256];
	FILE *f = popen(cmd, "r");
	bool ok;

	if (!f)
		return false;
	ok = fgets(line, sizeof(line), f) && strlen(line) > 64 && line[64] == ' ';
	pclose(f);
	if (ok)
		snprintf(sha, 65, "%.64s", line);
	return ok;
}

/* sha256 of @mb MiB at @off_mb MiB of @file. */
static bool host_sha(const char *file, unsigned int off_mb, unsigned int mb,
		     char sha[65])
{
	char cmd[PATH_MAX + 128];

	snprintf(cmd, sizeof(cmd),
		 "dd if='%s' bs=1M skip=%u count=%u status=none | sha256sum",
		 file, off_mb, mb);
	return sha_of(cmd, sha);
}

static bool file_sha(const char *file, char sha[65])
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "sha256sum < '%s'", file);
	return sha_of(cmd, sha);
}

/*
 * The memfds process @pid holds: guest RAM (a memfd of the whole RAM size
 * not named @iso_name...) in @guest, svqiso's isolated regions (those so
 * named) in @iso. QEMU's are "svqiso...", svqiso-proxy's PROXY_NAME "-...".
 */
static void held_memfds(pid_t pid, const char *iso_name, struct stat *guest,
			bool *has_guest, struct stat *iso, unsigned int *niso,
			unsigned int max)
{
	char dir[64], path[PATH_MAX], link[PATH_MAX];
	struct dirent *d;
	struct stat st;
	ssize_t n;
	DIR *dp;

	*has_guest = false;
	*niso = 0;
	memset(guest, 0, sizeof(*guest));
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	dp = opendir(dir);
	require(dp, "%s: %s", dir, strerror(errno));
	while ((d = readdir(dp))) {
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0 || stat(path, &st))
			continue;
		link[n] = 0;
		if (strncmp(link, "/memfd:", 7))
			continue;
		if (!strncmp(link, iso_name, strlen(iso_name))) {
			if (*niso < max)
				iso[(*niso)++] = st;
		} else if (st.st_size >= (off_t)MEM_MB << 20) {
			*guest = st;
			*has_guest = true;
		}
	}
	closedir(dp);
}

/* The guest RAM memfd of the running QEMU. */
static struct stat guest_ram(void)
{
	struct stat guest, iso[64];
	unsigned int niso;
	bool has_guest;

	held_memfds(rig.vm.pid, "/memfd:svqiso", &guest, &has_guest, iso, &niso, 64);
	require(has_guest, "QEMU (pid %d) has no guest RAM memfd of %u MiB",
		(int)rig.vm.pid, MEM_MB);
	return guest;
}

/* What svqiso-proxy reaches: guest RAM, mapped (it is the VMM's side). */
static void check_proxy(const struct stat *guest, const struct stat *iso,
			unsigned int niso, const char *when)
{
	struct inspect_report r;
	int rc;

	rc = inspect_process(rig.proxy, guest, iso, niso, &r);
	require(!rc, "inspecting svqiso-proxy (pid %d): %s", (int)rig.proxy,
		strerror(-rc));
	note("svqiso-proxy %s: %u fds (%u memfds), %u mappings, %u of guest RAM",
	     when, r.fds, r.fd_memfd, r.maps, r.map_guest);
	require(r.map_guest > 0,
		"positive control: svqiso-proxy (pid %d) maps no guest RAM %s "
		"(%u fds, %u mappings): is it between QEMU and the backend?",
		(int)rig.proxy, when, r.fds, r.maps);
}

/* What @backend (@who) reaches now, against what the variant allows. */
static void check_isolation(pid_t backend, const char *who, const char *when)
{
	struct stat guest, pguest, iso[64];
	struct inspect_report r;
	unsigned int niso;
	bool has_guest, phas;
	int rc;

	held_memfds(rig.vm.pid, "/memfd:svqiso", &guest, &has_guest, iso, &niso, 64);
	if (var->proxy) {
		require(has_guest, "QEMU (pid %d) has no guest RAM memfd of %u MiB",
			(int)rig.vm.pid, MEM_MB);
		require(niso == 0, "the stock QEMU holds %u svqiso memfds", niso);
		/* The isolated regions are the proxy's. */
		held_memfds(rig.proxy, "/memfd:" PROXY_NAME "-", &pguest, &phas,
			    iso, &niso, 64);
	}
	rc = inspect_process(backend, &guest, iso, niso, &r);
	require(!rc, "inspecting %s (pid %d): %s", who, (int)backend, strerror(-rc));
	note("%s %s: %u fds (%u memfds), %u mappings, %llu KiB of memfds mapped, "
	     "%u of guest RAM; %s: %u svqiso memfds%s", who, when, r.fds,
	     r.fd_memfd, r.maps, (unsigned long long)r.map_memfd_bytes >> 10,
	     r.fd_guest + r.map_guest, var->proxy ? "svqiso-proxy" : "QEMU", niso,
	     has_guest ? ", guest RAM memfd in QEMU" : "");
	if (!var->iso && !var->proxy) {
		require(has_guest, "QEMU (pid %d) has no guest RAM memfd of %u MiB",
			(int)rig.vm.pid, MEM_MB);
		require(niso == 0, "isolation is off, yet QEMU holds %u svqiso memfds",
			niso);
		require(inspect_leaks(&r),
			"negative control: %s (pid %d) shows no guest RAM %s "
			"(%u fds, %u mappings): the inspection cannot see it",
			who, (int)backend, when, r.fds, r.maps);
		return;
	}
	require(!var->ram || !has_guest,
		"memory-backend-ram, yet QEMU holds a guest RAM memfd");
	require(!inspect_leaks(&r), "%s (pid %d) reaches guest RAM %s: %s",
		who, (int)backend, when, r.detail);
	require(!r.fd_memfd_unknown && !r.map_memfd_unknown,
		"%s (pid %d) holds memory that is no svqiso region %s: %s",
		who, (int)backend, when, r.detail);
	require(niso > 0, "%s holds no svqiso memfd",
		var->proxy ? "svqiso-proxy" : "memory-isolation=on, yet QEMU");
	require(r.map_memfd_bytes > 0,
		"%s (pid %d) maps no svqiso region %s: is the device in use?",
		who, (int)backend, when);
	if (var->proxy)
		check_proxy(&guest, iso, niso, when);
}

/* qemu-storage-daemon, throttled to @iops requests a second (0: not). */
static void start_qsd(unsigned int iops)
{
	int rc;

	rig.qcfg = (struct qsd_cfg){ .img_size = (uint64_t)IMG_MB << 20,
				     .num_queues = 2, .throttle_iops = iops };
	rc = qsd_setup(&rig.qsd, &rig.qcfg);
	require(!rc, "qemu-storage-daemon: %s", rig.qsd.err);
}

static void start_virtiofsd(void)
{
	char a_sock[224], a_src[224];
	char *argv[] = { (char *)env.virtiofsd, a_sock, "-o", a_src,
			 "-o", "cache=none", "-o", "sandbox=chroot", NULL };
	struct proc_spawn_opts po = { .argv = argv, .sock = rig.fs_sock,
				      .start_ms = 10000, .stdin_fd = -1,
				      .out_fd = -1 };
	char err[160];
	int rc;

	snprintf(a_sock, sizeof(a_sock), "--socket-path=%s", rig.fs_sock);
	snprintf(a_src, sizeof(a_src), "source=%s", rig.share);
	rc = proc_spawn(&po, &rig.vfsd, err, sizeof(err));
	require(!rc, "virtiofsd: %s", err);
}

/* svqiso-proxy before the backend on @backend, listening on @sock in
 * rig.dir; its log lines (stderr) and stats (stdout) in @log there. */
static void start_proxy_as(const char *backend, const char *tag, pid_t *pid,
			   char *sock, size_t sock_size, char *log,
			   size_t log_size)
{
	char *argv[] = { (char *)env.proxy, "--socket", sock,
			 "--backend", (char *)backend, "--name", PROXY_NAME,
			 var->nolog ? "--no-dirty-log" : NULL, NULL };
	struct proc_spawn_opts po = { .argv = argv, .sock = sock,
				      .start_ms = 10000, .stdin_fd = -1 };
	char err[160];
	int rc;

	snprintf(sock, sock_size, "%s/%s.sock", rig.dir, tag);
	snprintf(log, log_size, "%s/%s.log", rig.dir, tag);
	po.out_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND |
			 O_CLOEXEC, 0600);
	require(po.out_fd >= 0, "%s: %s", log, strerror(errno));
	rc = proc_spawn(&po, pid, err, sizeof(err));
	close(po.out_fd);
	require(!rc, "svqiso-proxy: %s", err);
	note("svqiso-proxy (pid %d) for %s%s", (int)*pid, backend,
	     var->nolog ? ", --no-dirty-log" : "");
}

static void start_proxy(const char *backend)
{
	start_proxy_as(backend, "proxy", &rig.proxy, rig.proxy_sock,
		       sizeof(rig.proxy_sock), rig.proxy_log, sizeof(rig.proxy_log));
}

/* The socket QEMU connects to: the backend's, @sock, or for the proxy
 * variants that of a proxy started before it. */
static const char *vmm_sock(const char *sock)
{
	if (!var->proxy)
		return sock;
	start_proxy(sock);
	/* Bypassed, the first check_isolation() fails: nothing after it
	 * needs to know. */
	if (env.bypass) {
		note("SVQISO_PROXY_BYPASS=1: QEMU connects to the backend, not "
		     "to the proxy");
		return sock;
	}
	return rig.proxy_sock;
}

struct proxy_stats {
	char vmm[16], backend[16];
	unsigned long long sessions, bad_messages, reconnects, reposted;
	unsigned int queues;
	unsigned long long requests, completions, in_flight, errors;
	unsigned long long dirty_bytes;	/* guest bytes svqiso logged */
};

/* The number after "@key": in @json; false if there is none. */
static bool json_num(const char *json, const char *key, unsigned long long *v)
{
	char k[64], *end;
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(json, k);
	if (!p)
		return false;
	p += strlen(k);
	*v = strtoull(p, &end, 10);
	return end != p;
}

/* The string after "@key": in @json, in @v; false if there is none. */
static bool json_str(const char *json, const char *key, char *v, size_t size)
{
	char k[64];
	const char *p;
	size_t n;

	snprintf(k, sizeof(k), "\"%s\":\"", key);
	p = strstr(json, k);
	if (!p)
		return false;
	p += strlen(k);
	n = strcspn(p, "\"");
	snprintf(v, size, "%.*s", (int)n, p);
	return true;
}

/*
 * The proxy's stats now (SIGUSR1: one JSON line on its stdout), summed over
 * its queues, in @st. Fails the test on a bad message or a queue with
 * errors or broken.
 */
static void proxy_stats(struct proxy_stats *st, const char *when)
{
	char line[8192], *q, *next;
	unsigned long long v;
	bool found = false;
	struct stat sb;
	int waited;
	FILE *f;

	memset(st, 0, sizeof(*st));
	require(!stat(rig.proxy_log, &sb), "%s: %s", rig.proxy_log, strerror(errno));
	require(!kill(rig.proxy, SIGUSR1), "SIGUSR1 to svqiso-proxy (pid %d): %s",
		(int)rig.proxy, strerror(errno));
	for (waited = 0; !found && waited < STATS_MS; waited += 50) {
		proc_sleep_ms(50);
		f = fopen(rig.proxy_log, "re");
		if (!f)
			continue;
		if (!fseeko(f, sb.st_size, SEEK_SET))
			while (!found && fgets(line, sizeof(line), f))
				found = !strncmp(line, "{\"device\":", 10) &&
					strchr(line, '\n');
		fclose(f);
	}
	require(found, "svqiso-proxy printed no stats in %d s after SIGUSR1",
		STATS_MS / 1000);
	*strchr(line, '\n') = 0;
	q = strstr(line, "\"queues\":[");
	require(q && json_num(line, "sessions", &st->sessions) &&
		json_num(line, "bad_messages", &st->bad_messages) &&
		json_num(line, "reconnects", &st->reconnects) &&
		json_num(line, "reposted", &st->reposted) &&
		json_str(line, "vmm", st->vmm, sizeof(st->vmm)) &&
		json_str(line, "backend", st->backend, sizeof(st->backend)),
		"svqiso-proxy's stats: %s", line);
	require(!st->bad_messages, "svqiso-proxy's stats %s: %llu bad messages: %s",
		when, st->bad_messages, line);
	/* One queue object at a time: cut the line at the next. */
	for (q = strstr(q, "{\"queue\":"); q; q = next) {
		next = strstr(q + 1, "{\"queue\":");
		if (next)
			next[-1] = 0;
		require(json_num(q, "requests", &v), "stats: %s", q);
		st->requests += v;
		require(json_num(q, "completions", &v), "stats: %s", q);
		st->completions += v;
		require(json_num(q, "in_flight", &v), "stats: %s", q);
		st->in_flight += v;
		require(json_num(q, "errors", &v), "stats: %s", q);
		st->errors += v;
		require(json_num(q, "dirty_bytes", &v), "stats: %s", q);
		st->dirty_bytes += v;
		require(strstr(q, "\"broken\":null"), "svqiso-proxy's stats %s: a "
			"queue is broken: %s", when, q);
		st->queues++;
	}
	require(!st->errors, "svqiso-proxy's stats %s: %llu errors", when, st->errors);
	note("svqiso-proxy's stats %s: vmm %s, backend %s, %llu sessions, %llu "
	     "reconnects, %llu reposted; %u queues: %llu requests, %llu "
	     "completions, %llu in flight", when, st->vmm, st->backend,
	     st->sessions, st->reconnects, st->reposted, st->queues, st->requests,
	     st->completions, st->in_flight);
}

/* SIGTERM: the proxy must exit 0 and remove its socket, having logged
 * no error on the way. */
static void stop_proxy_as(pid_t *proxy, const char *sock, const char *log)
{
	pid_t pid = *proxy;
	char line[1024];
	int status;
	FILE *f;

	status = proc_stop(proxy, 5000);
	require(WIFEXITED(status) && !WEXITSTATUS(status),
		"svqiso-proxy (pid %d) ended with wait status %#x on SIGTERM",
		(int)pid, status);
	require(access(sock, F_OK) && errno == ENOENT,
		"svqiso-proxy left its socket %s behind", sock);
	f = fopen(log, "re");
	require(f, "%s: %s", log, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "svqiso-proxy: error: ", 21)) {
			fclose(f);
			require(false, "svqiso-proxy logged %s", line);
		}
	}
	fclose(f);
	note("svqiso-proxy (pid %d) stopped", (int)pid);
}

static void stop_proxy(void)
{
	stop_proxy_as(&rig.proxy, rig.proxy_sock, rig.proxy_log);
}

/*
 * QEMU in @dir with the variant's device on the backend's socket; with
 * @incoming, a migration's destination waiting on that URI.
 */
static void launch_vm(struct vm *vm, const char *dir, const char *sock,
		      bool reconnect, const char *incoming)
{
	char a_preload[PATH_MAX + 16];
	char *qenv[] = { a_preload, NULL };
	struct vm_cfg cfg = {
		.qemu = env.qemu, .firmware = env.firmware,
		.kernel = env.kernel, .initrd = env.initrd,
		.mem_mb = MEM_MB, .cpus = 2,
		.memdev = var->ram ? "memory-backend-ram"
				   : "memory-backend-memfd,share=on",
		.args = rig.args, .incoming = incoming,
	};
	const char *iso = var->iso ? ",memory-isolation=on" : "";
	int rc;

	if (var->nolog && !var->proxy) {
		snprintf(a_preload, sizeof(a_preload), "LD_PRELOAD=%s", env.nolog);
		cfg.env = qenv;
	}
	/*
	 * Migration: pages the kernel hands out are not zeroed first (the
	 * Debian kernel zeroes them by default), so a page the device fills
	 * is written by svqiso alone, and only svqiso's log says it changed:
	 * otherwise the CPU's zeroing, just before, marks it for the
	 * migration too, and a lost write can go unseen.
	 */
	if (var->kind == K_MIGRATE)
		cfg.append = "init_on_alloc=0";
	snprintf(rig.a_chr, sizeof(rig.a_chr), "socket,id=vu0,path=%s%s", sock,
		 reconnect ? ",reconnect=1" : "");
	if (var->kind == K_FS)
		snprintf(rig.a_dev, sizeof(rig.a_dev),
			 "vhost-user-fs-pci,chardev=vu0,tag=hostfs%s", iso);
	else
		snprintf(rig.a_dev, sizeof(rig.a_dev),
			 "vhost-user-blk-pci,chardev=vu0,num-queues=2%s%s%s", iso,
			 var->props ? "," : "", var->props ? var->props : "");
	rig.args[0] = "-chardev";
	rig.args[1] = rig.a_chr;
	rig.args[2] = "-device";
	rig.args[3] = rig.a_dev;
	rig.args[4] = NULL;
	note("QEMU: -device %s%s%s", rig.a_dev, incoming ? " -incoming " : "",
	     incoming ? incoming : "");
	rc = vm_start(vm, dir, &cfg);
	require(!rc, "QEMU: %s (log in %s)", vm->err, vm->qemu_log);
}

/* QEMU with the variant's device on the backend's socket, booting. */
static void start_vm(const char *sock, bool reconnect)
{
	char line[256];
	int rc;

	launch_vm(&rig.vm, rig.dir, sock, reconnect, NULL);
	rig.vm_up = true;
	rc = vm_expect(&rig.vm, "SVQISO-BOOT", BOOT_MS, line, sizeof(line));
	require(!rc, "boot: %s", rig.vm.err);
	note("booting (QEMU pid %d)", (int)rig.vm.pid);
}

/* Whether the console printed @what that the test has not read yet. */
static bool printed(const char *what)
{
	char line[256];
	size_t pos = rig.vm.pos;
	bool seen;

	/* A line that never comes: only drains what is there. */
	vm_expect(&rig.vm, "SVQISO-NEVER", 200, line, sizeof(line));
	seen = rig.vm.out && memmem(rig.vm.out + pos, rig.vm.len - pos, what,
				    strlen(what));
	rig.vm.pos = pos;
	return seen;
}

/* A guest command; its OK line in @reply. */
static void cmd(char *reply, size_t size, const char *fmt, const char *arg)
{
	int rc;

	rc = vm_cmd(&rig.vm, reply, size, CMD_MS, fmt, arg);
	require(!rc, "guest: %s", rig.vm.err);
}

/* Send @what once the guest waits for a command; wait for its I/O. */
static void cmd_start(const char *what)
{
	char line[256];
	int rc;

	rc = vm_expect(&rig.vm, "SVQISO-READY", CMD_MS, line, sizeof(line));
	if (!rc)
		rc = vm_send(&rig.vm, "%s", what);
	if (!rc)
		rc = vm_expect(&rig.vm, "SVQISO-IO", CMD_MS, line, sizeof(line));
	require(!rc, "guest, %s: %s", what, rig.vm.err);
}

/* The OK line of the command cmd_start() started. */
static void cmd_end(char *reply, size_t size, const char *what)
{
	int rc = vm_expect(&rig.vm, "SVQISO-OK", CMD_MS, reply, size);

	require(!rc, "guest, %s: %s", what, rig.vm.err);
}

/* The disk's features and queues, against what the variant asked. */
static void blk_info(void)
{
	char reply[512], feat[80], queues[16];

	cmd(reply, sizeof(reply), "info %s", "vda");
	require(vm_value(reply, "features", feat, sizeof(feat)) && strlen(feat) >= 35,
		"info: %s", reply);
	require(vm_value(reply, "queues", queues, sizeof(queues)) &&
		!strcmp(queues, "2"), "the guest sees %s queues, not 2", queues);
	note("virtio features (bit 0 first) %s", feat);
	/* VIRTIO_F_RING_PACKED 34, _INDIRECT_DESC 28, _EVENT_IDX 29 */
	if (var->props && strstr(var->props, "packed=on"))
		require(feat[34] == '1', "packed=on, yet the guest ring is split");
	if (var->props && strstr(var->props, "indirect_desc=off"))
		require(feat[28] == '0', "indirect_desc=off, yet negotiated");
	if (var->props && strstr(var->props, "event_idx=off"))
		require(feat[29] == '0', "event_idx=off, yet negotiated");
}

/* The guest's write at @off..+@mb MiB, checked against the image. */
static void check_write(const char *reply, unsigned int off, unsigned int mb,
			char sha[65])
{
	char host[65];

	require(vm_value(reply, "sha256", sha, 65) && strlen(sha) == 64,
		"write: %s", reply);
	require(host_sha(rig.qsd.img, off, mb, host), "sha256 of %s", rig.qsd.img);
	require(!strcmp(sha, host),
		"the image holds sha256 %s at %u MiB (+%u), the guest wrote %s",
		host, off, mb, sha);
}

/* A write, with the backend inspected while it runs. */
static void blk_write(unsigned int off, unsigned int mb, const char *mode,
		      char sha[65], char *reply, size_t size)
{
	char what[96];

	snprintf(what, sizeof(what), "write vda %u %u %s", off, mb, mode);
	cmd_start(what);
	check_isolation(rig.qsd.pid, "qemu-storage-daemon", "during I/O");
	cmd_end(reply, size, what);
	check_write(reply, off, mb, sha);
	note("%s: PASS sha256=%s", what, sha);
}

/* The guest's read of @off..+@mb MiB must give @want. */
static void blk_read(unsigned int off, unsigned int mb, const char *want)
{
	char what[64], reply[256], got[65];

	snprintf(what, sizeof(what), "read vda %u %u", off, mb);
	cmd(reply, sizeof(reply), "%s", what);
	require(vm_value(reply, "sha256", got, sizeof(got)) && !strcmp(got, want),
		"%s: sha256 %s, written was %s", what, got, want);
	note("%s: PASS", what);
}

/*
 * Power the guest off; QEMU must exit cleanly, the backend stay up. The
 * proxy, before: every request the guest made completed, none is in
 * flight; after: it is still there, and exits cleanly on SIGTERM.
 */
static void poweroff(pid_t backend, const char *who)
{
	struct proxy_stats st;
	char line[256];
	int rc, status;

	if (var->proxy) {
		proxy_stats(&st, "before poweroff");
		require(!strcmp(st.vmm, "connected") && !strcmp(st.backend, "up"),
			"before poweroff, svqiso-proxy's VMM is %s, its backend %s",
			st.vmm, st.backend);
		require(st.requests > 0 && st.completions == st.requests &&
			!st.in_flight, "svqiso-proxy with the guest idle: %llu "
			"requests, %llu completions, %llu in flight", st.requests,
			st.completions, st.in_flight);
	}
	rc = vm_expect(&rig.vm, "SVQISO-READY", CMD_MS, line, sizeof(line));
	if (!rc)
		rc = vm_send(&rig.vm, "poweroff");
	if (!rc)
		rc = vm_wait_exit(&rig.vm, EXIT_MS);
	require(!rc, "poweroff: %s", rig.vm.err);
	require(WIFEXITED(rig.vm.exit_status) && !WEXITSTATUS(rig.vm.exit_status),
		"QEMU ended with wait status %#x", rig.vm.exit_status);
	if (backend > 0) {
		require(waitpid(backend, &status, WNOHANG) == 0,
			"%s (pid %d) died (wait status %#x)", who, (int)backend,
			status);
	}
	note("powered off");
	if (var->proxy) {
		require(waitpid(rig.proxy, &status, WNOHANG) == 0,
			"svqiso-proxy (pid %d) died (wait status %#x)",
			(int)rig.proxy, status);
		stop_proxy();
	}
}

/* Check fixtures: in the forked test process. */
static void rig_setup(void)
{
	char err[160];

	memset(&rig, 0, sizeof(rig));
	rig.qsd.pid = -1;
	rig.vfsd = -1;
	rig.proxy = -1;
	rig.proxy2 = -1;
	clock_gettime(CLOCK_MONOTONIC, &rig.t0);
	ck_assert_msg(!proc_mkdtemp(rig.dir, sizeof(rig.dir), "vm", err, sizeof(err)),
		      "%s", err);
}

/* Only after a pass: a failed test's processes die with it (they have
 * PR_SET_PDEATHSIG) and main() removes its files. */
static void rig_teardown(void)
{
	vm_stop(&rig.vm);
	rig.vm_up = false;
	if (rig.dst_dir[0]) {
		vm_stop(&rig.dst);
		rig.dst_up = false;
	}
	proc_stop(&rig.proxy2, 3000);
	proc_stop(&rig.proxy, 3000);
	proc_stop(&rig.vfsd, 3000);
	qsd_teardown(&rig.qsd);
}

START_TEST(test_blk)
{
	char reply[512], sha[65], irqs[64];
	unsigned int q0 = 0, q1 = 0;

	start_qsd(0);
	start_vm(vmm_sock(rig.qsd.sock), false);
	blk_info();
	blk_write(0, 64, "direct", sha, reply, sizeof(reply));
	require(vm_value(reply, "irqs", irqs, sizeof(irqs)) &&
		sscanf(irqs, "%u,%u", &q0, &q1) == 2 && q0 && q1,
		"both queues must complete requests: interrupts per queue \"%s\"",
		irqs);
	note("interrupts per queue: %s", irqs);
	blk_write(64, 64, "cached", sha, reply, sizeof(reply));
	blk_read(64, 64, sha);
	check_isolation(rig.qsd.pid, "qemu-storage-daemon", "after I/O");
	poweroff(rig.qsd.pid, "qemu-storage-daemon");
}
END_TEST

START_TEST(test_fs)
{
	char reply[512], want[65], got[65], path[256], buf[64], exp[64];
	int fd, i;
	FILE *f;

	snprintf(rig.share, sizeof(rig.share), "%s/share", rig.dir);
	snprintf(rig.fs_sock, sizeof(rig.fs_sock), "%s/fs.sock", rig.dir);
	require(!mkdir(rig.share, 0755), "mkdir %s: %s", rig.share, strerror(errno));
	snprintf(path, sizeof(path), "head -c %u /dev/urandom > '%s/host.bin'",
		 HOST_FILE_MB << 20, rig.share);
	require(!system(path), "%s", path);
	snprintf(path, sizeof(path), "%s/host.bin", rig.share);
	require(file_sha(path, want), "sha256 of %s", path);

	start_virtiofsd();
	start_vm(vmm_sock(rig.fs_sock), false);
	snprintf(reply, sizeof(reply), "fs hostfs %s %u", want, FS_MB);
	cmd_start(reply);
	check_isolation(rig.vfsd, "virtiofsd", "during I/O");
	cmd_end(reply, sizeof(reply), "fs");
	require(vm_value(reply, "sha256", got, sizeof(got)), "fs: %s", reply);
	snprintf(path, sizeof(path), "%s/guest.bin", rig.share);
	require(file_sha(path, want), "sha256 of %s", path);
	require(!strcmp(want, got), "guest.bin: the guest wrote sha256 %s, the "
		"host reads %s", got, want);
	for (i = 0; i <= 15; i++) {
		if (i == 15)
			snprintf(path, sizeof(path), "%s/dir/renamed", rig.share);
		else
			snprintf(path, sizeof(path), "%s/dir/small-%d", rig.share, i);
		snprintf(exp, sizeof(exp), "small file %d\n", i);
		f = fopen(path, "re");
		require(f, "%s: %s", path, strerror(errno));
		buf[fread(buf, 1, sizeof(buf) - 1, f)] = 0;
		fclose(f);
		require(!strcmp(buf, exp), "%s holds \"%s\"", path, buf);
	}
	snprintf(path, sizeof(path), "%s/dir/small-15", rig.share);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	require(fd < 0, "%s is still there after the rename", path);
	note("fs: PASS host.bin read, guest.bin sha256=%s, 16 small files", got);
	check_isolation(rig.vfsd, "virtiofsd", "after I/O");
	poweroff(-1, NULL);
}
END_TEST

/*
 * Mappings a process may gain over a reboot that are no leak of ours: a
 * malloc arena for a thread that first allocates later, a thread's stack.
 * What isolation maps, memfds, is held to its count exactly.
 */
#define MAPS_SLACK 8

struct counts {
	int fds, maps, memfds;
};

static struct counts counts_of(pid_t pid)
{
	return (struct counts){ vm_count(pid, "fd"), vm_count(pid, "maps"),
				vm_count(pid, "memfd") };
}

/* @who's fds and memfd mappings may not grow past @c0, nor its mappings
 * past @c0's and MAPS_SLACK. */
static void check_counts(pid_t pid, const char *who, struct counts c0,
			 const char *after)
{
	struct counts c = counts_of(pid);

	note("%s after %s: %d fds, %d mappings, %d of memfds (first boot: %d, %d, %d)",
	     who, after, c.fds, c.maps, c.memfds, c0.fds, c0.maps, c0.memfds);
	require(c.fds > 0 && c.fds <= c0.fds, "%s holds %d fds after %s, %d before",
		who, c.fds, after, c0.fds);
	require(c.memfds >= 0 && c.memfds <= c0.memfds,
		"%s has %d memfd mappings after %s, %d before", who, c.memfds,
		after, c0.memfds);
	require(c.maps > 0 && c.maps <= c0.maps + MAPS_SLACK,
		"%s has %d mappings after %s, %d before", who, c.maps, after,
		c0.maps);
}

START_TEST(test_reset)
{
	char reply[512], sha0[65], sha[65], line[256];
	struct counts c0, p0 = { 0, 0, 0 };
	int rc;

	start_qsd(0);
	start_vm(vmm_sock(rig.qsd.sock), false);
	blk_info();
	blk_write(0, 32, "direct", sha0, reply, sizeof(reply));
	/* QMP's connection is one of QEMU's fds: open before counting. */
	rc = vm_qmp(&rig.vm, "{\"execute\": \"query-status\"}", line, sizeof(line));
	require(!rc && strstr(line, "\"running\""), "QMP: %s", rig.vm.err);
	c0 = counts_of(rig.vm.pid);
	if (var->proxy)
		p0 = counts_of(rig.proxy);

	cmd_start("write vda 32 64 direct");
	proc_sleep_ms(500);
	require(!printed("SVQISO-OK"), "the write ended before the reset");
	rc = vm_qmp(&rig.vm, "{\"execute\": \"system_reset\"}", line, sizeof(line));
	require(!rc, "%s", rig.vm.err);
	note("system_reset in the middle of a write");
	rc = vm_expect(&rig.vm, "SVQISO-BOOT", BOOT_MS, line, sizeof(line));
	require(!rc, "after system_reset: %s", rig.vm.err);
	blk_info();
	blk_write(64, 32, "direct", sha, reply, sizeof(reply));
	blk_read(0, 32, sha0);
	check_counts(rig.vm.pid, "QEMU", c0, "system_reset");
	if (var->proxy)
		check_counts(rig.proxy, "svqiso-proxy", p0,
			     "system_reset");

	rc = vm_expect(&rig.vm, "SVQISO-READY", CMD_MS, line, sizeof(line));
	if (!rc)
		rc = vm_send(&rig.vm, "reboot");
	if (!rc)
		rc = vm_expect(&rig.vm, "SVQISO-BOOT", BOOT_MS, line, sizeof(line));
	require(!rc, "reboot: %s", rig.vm.err);
	note("rebooted by the guest");
	blk_write(96, 32, "cached", sha, reply, sizeof(reply));
	blk_read(0, 32, sha0);
	check_counts(rig.vm.pid, "QEMU", c0, "the guest's reboot");
	if (var->proxy)
		check_counts(rig.proxy, "svqiso-proxy", p0,
			     "the guest's reboot");
	poweroff(rig.qsd.pid, "qemu-storage-daemon");
}
END_TEST

START_TEST(test_reconnect)
{
	char reply[512], sha0[65], sha[65];
	int rc;

	/* Behind the proxy, throttled: the daemon holds requests whenever
	 * the guest writes, so the kill loses some, which the proxy must
	 * post again to the new one (not throttled). */
	start_qsd(var->proxy ? 100 : 0);
	/* The proxy reconnects by itself: QEMU needs no option for it. */
	start_vm(vmm_sock(rig.qsd.sock), !var->proxy);
	blk_info();
	blk_write(0, 32, "direct", sha0, reply, sizeof(reply));

	cmd_start("write vda 32 64 direct");
	proc_sleep_ms(500);
	require(!printed("SVQISO-OK"), "the write ended before the kill");
	qsd_kill(&rig.qsd);
	note("qemu-storage-daemon killed in the middle of a write");
	proc_sleep_ms(1000);
	rig.qcfg.throttle_iops = 0;
	rc = qsd_restart(&rig.qsd, &rig.qcfg);
	require(!rc, "%s", rig.qsd.err);
	note("qemu-storage-daemon restarted (pid %d)", (int)rig.qsd.pid);
	cmd_end(reply, sizeof(reply), "write across the restart");
	check_write(reply, 32, 64, sha);
	note("write vda 32 64 direct, across the restart: PASS sha256=%s", sha);
	check_isolation(rig.qsd.pid, "qemu-storage-daemon", "after the restart");
	blk_write(96, 32, "cached", sha, reply, sizeof(reply));
	blk_read(0, 32, sha0);
	if (var->proxy) {
		struct proxy_stats st;

		proxy_stats(&st, "after the restart");
		require(st.reconnects >= 1 && st.reposted >= 1 &&
			!strcmp(st.backend, "up") && st.sessions == 1,
			"svqiso-proxy after the daemon's restart: %llu reconnects, "
			"%llu requests posted again, backend %s, %llu sessions",
			st.reconnects, st.reposted, st.backend, st.sessions);
	}
	poweroff(rig.qsd.pid, "qemu-storage-daemon");
}
END_TEST

/* Until the proxy's stats say no VMM is connected. */
static void wait_vmm_gone(void)
{
	struct proxy_stats st;
	int waited;

	for (waited = 0; waited < 30000; waited += 500) {
		proxy_stats(&st, "after the kill");
		if (!strcmp(st.vmm, "none"))
			return;
		proc_sleep_ms(500);
	}
	require(false, "svqiso-proxy still serves the killed QEMU after 30 s");
}

START_TEST(test_restart)
{
	char reply[512], sha0[65], sha[65];
	struct proxy_stats st;
	struct inspect_report r;
	struct stat old;
	int rc;

	start_qsd(0);
	start_vm(vmm_sock(rig.qsd.sock), false);
	blk_info();
	blk_write(0, 32, "direct", sha0, reply, sizeof(reply));
	old = guest_ram();

	cmd_start("write vda 32 64 direct");
	proc_sleep_ms(500);
	require(!printed("SVQISO-OK"), "the write ended before the kill");
	proc_kill(&rig.vm.pid);
	vm_stop(&rig.vm);
	rig.vm_up = false;
	note("QEMU killed in the middle of a write");
	wait_vmm_gone();
	rc = inspect_process(rig.proxy, &old, NULL, 0, &r);
	require(!rc, "inspecting svqiso-proxy: %s", strerror(-rc));
	require(!inspect_leaks(&r), "svqiso-proxy still reaches the dead QEMU's "
		"guest RAM: %s", r.detail);

	start_vm(rig.proxy_sock, false);
	blk_info();
	blk_write(96, 32, "cached", sha, reply, sizeof(reply));
	blk_read(0, 32, sha0);
	proxy_stats(&st, "after QEMU's restart");
	require(st.sessions == 2, "svqiso-proxy served %llu sessions, not 2",
		st.sessions);
	poweroff(rig.qsd.pid, "qemu-storage-daemon");
}
END_TEST

/* ---- live migration ---- */

#define MIG_CACHE_MB	64	/* read through the page cache mid-migration */
#define MIG_CHURN_OFF	128	/* the rounds' place on the disk, MiB */
#define MIG_CHURN_MB	4
#define MIG_MS		180000	/* for the migration to end */
#define NOLOG_MS	60000	/* a command on a destination that may hang */

/* One QMP command on @vm; its reply in @reply. */
static void qmp(struct vm *vm, const char *cmd, char *reply, size_t size)
{
	int rc = vm_qmp(vm, cmd, reply, size);

	require(!rc, "QMP: %s", vm->err);
}

/* The migration's status (query-migrate on the source) and its RAM
 * passes so far; the reply in @reply. */
static void mig_status(char *status, size_t size, unsigned long long *syncs,
		       char *reply, size_t rsize)
{
	const char *p;

	qmp(&rig.vm, "{\"execute\": \"query-migrate\"}", reply, rsize);
	/* QMP puts a space after the colon. */
	p = strstr(reply, "\"status\": \"");
	if (p)
		snprintf(status, size, "%.*s", (int)strcspn(p + 11, "\""), p + 11);
	else
		snprintf(status, size, "none");
	*syncs = 0;
	json_num(reply, "dirty-sync-count", syncs);
}

/* A command on the destination: one empty line first, for a READY line
 * there (the source's console had the last one). */
static int dst_cmd(char *reply, size_t size, int ms, const char *fmt, const char *arg)
{
	int rc = vm_send(&rig.dst, "%s", "");

	return rc ? rc : vm_cmd(&rig.dst, reply, size, ms, fmt, arg);
}

/*
 * The destination's view after the switch-over. Return: NULL if every
 * check passed, else what failed (the nolog variants expect one).
 */
static const char *after_migration(const char *cache_sha, unsigned long long rounds0,
				   char *why, size_t size)
{
	char reply[512], v[80], sha[65], last[65], host[65];
	unsigned long long rounds, bad;
	int ms = var->nolog ? NOLOG_MS : CMD_MS;

	if (dst_cmd(reply, sizeof(reply), ms, "churn %s", "stop"))
		return snprintf(why, size, "churn stop: %s", rig.dst.err), why;
	require(vm_value(reply, "rounds", v, sizeof(v)), "churn: %s", reply);
	rounds = strtoull(v, NULL, 10);
	require(vm_value(reply, "bad", v, sizeof(v)), "churn: %s", reply);
	bad = strtoull(v, NULL, 10);
	require(vm_value(reply, "sha256", last, sizeof(last)), "churn: %s", reply);
	note("write, read back, compare: %llu rounds (%llu before the last "
	     "stretch of the migration), %llu bad", rounds, rounds0, bad);
	if (bad)
		return snprintf(why, size, "%llu of %llu rounds read back other data "
				"than written", bad, rounds), why;
	require(rounds > rounds0, "no round ran to its end after the migration "
		"(%llu, %llu before)", rounds, rounds0);
	/* The page cache filled mid-migration, read again from the cache
	 * (no read request reaches the device): each page as the device
	 * wrote it on the source. */
	if (dst_cmd(reply, sizeof(reply), ms, "cache vda 0 %s", "64"))
		return snprintf(why, size, "cache: %s", rig.dst.err), why;
	require(vm_value(reply, "reads", v, sizeof(v)), "cache: %s", reply);
	require(!strcmp(v, "0"), "the page cache read on the destination made %s "
		"read requests: the cache was not kept", v);
	if (!vm_value(reply, "sha256", sha, sizeof(sha)) || strcmp(sha, cache_sha))
		return snprintf(why, size, "the page cache read on the destination "
				"gives sha256 %s, on the source %s: the pages svqiso "
				"wrote did not follow the migration", sha, cache_sha), why;
	note("the page cache read during the migration is intact on the destination");
	require(host_sha(rig.qsd.img, MIG_CHURN_OFF, MIG_CHURN_MB, host),
		"sha256 of %s", rig.qsd.img);
	if (strcmp(host, last))
		return snprintf(why, size, "the image holds sha256 %s where the "
				"guest's last round wrote %s", host, last), why;
	return NULL;
}

START_TEST(test_migrate)
{
	char reply[4096], status[32], cache_sha[65], host[65], v[80], why[512];
	char incoming[224], uri[320], cmdbuf[384];
	unsigned long long syncs = 0, rounds0 = 0;
	struct proxy_stats st;
	const char *failed;
	int waited, rc;

	rig.qcfg = (struct qsd_cfg){ .img_size = (uint64_t)IMG_MB << 20,
				     .num_queues = 2, .second_export = true };
	rc = qsd_setup(&rig.qsd, &rig.qcfg);
	require(!rc, "qemu-storage-daemon: %s", rig.qsd.err);
	start_vm(vmm_sock(rig.qsd.sock), false);
	blk_info();
	/* Data for the page cache read: on the disk, not in the cache. */
	blk_write(0, MIG_CACHE_MB, "direct", cache_sha, reply, sizeof(reply));

	/* The destination: its own proxy on the second export, or that. */
	snprintf(rig.dst_dir, sizeof(rig.dst_dir), "%s/dst", rig.dir);
	require(!mkdir(rig.dst_dir, 0700), "%s: %s", rig.dst_dir, strerror(errno));
	snprintf(incoming, sizeof(incoming), "unix:%s/migrate.sock", rig.dst_dir);
	if (var->proxy)
		start_proxy_as(rig.qsd.sock2, "proxy2", &rig.proxy2, rig.proxy2_sock,
			       sizeof(rig.proxy2_sock), rig.proxy2_log,
			       sizeof(rig.proxy2_log));
	launch_vm(&rig.dst, rig.dst_dir, var->proxy ? rig.proxy2_sock : rig.qsd.sock2,
		  false, incoming);
	rig.dst_up = true;
	for (waited = 0; waited < BOOT_MS; waited += 100) {
		struct stat sb;

		if (!stat(incoming + 5, &sb) && S_ISSOCK(sb.st_mode))
			break;
		proc_sleep_ms(100);
	}
	require(waited < BOOT_MS, "the destination QEMU opened no %s", incoming);
	note("destination QEMU (pid %d) waits on %s", (int)rig.dst.pid, incoming);

	/* The guest writes, reads back and compares all along. */
	cmd(reply, sizeof(reply), "churn vda %s", "128 4");

	/* Downtime of 1 ms at 64 MiB/s: no switch-over while the guest
	 * rewrites its memory. */
	qmp(&rig.vm, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
	    "{\"downtime-limit\": 1, \"max-bandwidth\": 67108864}}",
	    reply, sizeof(reply));
	snprintf(uri, sizeof(uri), "{\"execute\": \"migrate\", \"arguments\": "
		 "{\"uri\": \"%s\"}}", incoming);
	qmp(&rig.vm, uri, reply, sizeof(reply));
	for (waited = 0; syncs < 2 && waited < MIG_MS; waited += 200) {
		proc_sleep_ms(200);
		mig_status(status, sizeof(status), &syncs, reply, sizeof(reply));
		require(!strcmp(status, "active") || !strcmp(status, "setup"),
			"the migration is %s before its first pass ended: %s",
			status, reply);
	}
	require(syncs >= 2, "the migration's first pass took over %d s",
		MIG_MS / 1000);
	/* 4 MiB/s from here: a pass takes seconds, and what the guest dirties
	 * meanwhile, whatever it does, keeps it from converging. */
	qmp(&rig.vm, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
	    "{\"max-bandwidth\": 4194304}}", reply, sizeof(reply));
	note("migration: first pass over, guest RAM sent once");

	/* Into pages the first pass sent: the device writes them now. */
	snprintf(cmdbuf, sizeof(cmdbuf), "cache vda 0 %u drop", MIG_CACHE_MB);
	rc = vm_cmd(&rig.vm, reply, sizeof(reply), CMD_MS, "%s", cmdbuf);
	if (rc) {
		char err[256];

		snprintf(err, sizeof(err), "%s", rig.vm.err);
		mig_status(status, sizeof(status), &syncs, reply, sizeof(reply));
		require(false, "guest, %s: %s; the migration: %.600s", cmdbuf, err,
			reply);
	}
	require(vm_value(reply, "sha256", v, sizeof(v)) && !strcmp(v, cache_sha),
		"the page cache read gives %s, the disk holds %s", v, cache_sha);
	require(vm_value(reply, "reads", v, sizeof(v)) && strtoul(v, NULL, 10) > 0,
		"the page cache read made no read request: %s", reply);
	cmd(reply, sizeof(reply), "churn %s", "count");
	require(vm_value(reply, "rounds", v, sizeof(v)), "churn: %s", reply);
	rounds0 = strtoull(v, NULL, 10);
	mig_status(status, sizeof(status), &syncs, reply, sizeof(reply));
	require(!strcmp(status, "active"), "the migration is %s, not active, "
		"after the page cache read: %s", status, reply);
	note("page cache read during the migration (pass %llu), %llu rounds so far",
	     syncs, rounds0);
	if (var->proxy) {
		proxy_stats(&st, "during the migration");
		if (!var->nolog)
			require(st.dirty_bytes > 0, "svqiso-proxy logged no dirty byte "
				"during the migration");
	}

	/* Let it end. */
	qmp(&rig.vm, "{\"execute\": \"migrate-set-parameters\", \"arguments\": "
	    "{\"downtime-limit\": 30000, \"max-bandwidth\": 268435456}}",
	    reply, sizeof(reply));
	for (waited = 0; waited < MIG_MS; waited += 200) {
		mig_status(status, sizeof(status), &syncs, reply, sizeof(reply));
		if (!strcmp(status, "completed") || !strcmp(status, "failed"))
			break;
		proc_sleep_ms(200);
	}
	if (!strcmp(status, "completed")) {
		unsigned long long normal = 0, zero = 0;

		json_num(reply, "normal", &normal);
		json_num(reply, "duplicate", &zero);
		note("migration completed after %llu passes: %llu pages sent, "
		     "%llu of them zero pages", syncs, normal + zero, zero);
		failed = after_migration(cache_sha, rounds0, why, sizeof(why));
	} else {
		snprintf(why, sizeof(why), "the migration is %s after %d s: %.300s",
			 status, waited / 1000, reply);
		failed = why;
	}
	if (var->nolog) {
		require(failed, "svqiso logged nothing, yet every check passed on "
			"the destination: the checks cannot tell a lost write");
		note("negative control: caught: %s", failed);
		return;
	}
	require(!failed, "%s", failed);
	require(host_sha(rig.qsd.img, 0, MIG_CACHE_MB, host) && !strcmp(host, cache_sha),
		"the image holds %s at 0 (+%u MiB), the guest wrote %s", host,
		MIG_CACHE_MB, cache_sha);

	/* The source is done: it quits; the destination powers off. */
	/* QEMU may be gone before its answer is read: its exit says. */
	vm_qmp(&rig.vm, "{\"execute\": \"quit\"}", reply, sizeof(reply));
	rc = vm_wait_exit(&rig.vm, EXIT_MS);
	require(!rc && WIFEXITED(rig.vm.exit_status) &&
		!WEXITSTATUS(rig.vm.exit_status),
		"the source QEMU: %s, wait status %#x", rc ? rig.vm.err : "exited",
		rig.vm.exit_status);
	vm_stop(&rig.vm);
	rig.vm_up = false;
	rc = vm_send(&rig.dst, "%s", "");
	if (!rc)
		rc = vm_expect(&rig.dst, "SVQISO-READY", CMD_MS, reply, sizeof(reply));
	if (!rc)
		rc = vm_send(&rig.dst, "poweroff");
	if (!rc)
		rc = vm_wait_exit(&rig.dst, EXIT_MS);
	require(!rc && WIFEXITED(rig.dst.exit_status) &&
		!WEXITSTATUS(rig.dst.exit_status),
		"the destination's poweroff: %s, wait status %#x",
		rc ? rig.dst.err : "done", rig.dst.exit_status);
	note("the destination powered off");
	if (var->proxy) {
		stop_proxy();
		stop_proxy_as(&rig.proxy2, rig.proxy2_sock, rig.proxy2_log);
	}
}
END_TEST

/* ------------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* The newest /boot/vmlinuz-VERSION with /lib/modules/VERSION/modules.dep. */
static bool find_kernel(void)
{
	struct dirent **list;
	char dep[PATH_MAX];
	int n, i;
	bool found = false;

	n = scandir("/boot", &list, NULL, versionsort);
	for (i = n - 1; i >= 0; i--) {
		const char *name = list[i]->d_name;

		if (!found && !strncmp(name, "vmlinuz-", 8)) {
			snprintf(dep, sizeof(dep), "/lib/modules/%s/modules.dep",
				 name + 8);
			if (!access(dep, R_OK)) {
				snprintf(env.kernel, sizeof(env.kernel), "/boot/%s", name);
				found = true;
			}
		}
		free(list[i]);
	}
	if (n >= 0)
		free(list);
	return found;
}

/* Whether @device of the QEMU binary has a memory-isolation property;
 * -1 if the binary does not answer as QEMU does. */
static int has_isolation(const char *device)
{
	char cmd[PATH_MAX + 128], line[512];
	bool chardev = false, iso = false;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "'%s' -device %s,help 2>&1", env.qemu, device);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		chardev |= strstr(line, "chardev=") != NULL;
		iso |= strstr(line, "memory-isolation=") != NULL;
	}
	pclose(f);
	return chardev ? iso : -1;
}

/* Build the initramfs for the kernel's modules in @dir. */
static bool make_initrd(const char *dir)
{
	char tool[PATH_MAX], guest[PATH_MAX];
	int status;
	pid_t pid;

	snprintf(tool, sizeof(tool), "%s/mkinitramfs", env.tests);
	snprintf(guest, sizeof(guest), "%s/guest", env.tests);
	snprintf(env.initrd, sizeof(env.initrd), "%s/initrd.cpio", dir);
	pid = fork();
	if (pid == 0) {
		dup2(STDERR_FILENO, STDOUT_FILENO);
		execl(tool, tool, env.initrd, env.kver, guest, (char *)NULL);
		_exit(127);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       !WEXITSTATUS(status);
}

/* Prerequisites; NULL if all are there, else why not. */
static const char *prerequisites(bool *must)
{
	static char why[PATH_MAX + 128];
	const char *q = getenv("SVQISO_QEMU"), *k = getenv("SVQISO_KERNEL");
	const char *dev = var->kind == K_FS ? "vhost-user-fs-pci" : "vhost-user-blk-pci";
	const char *base;
	int iso;

	if (var->proxy) {
		/* The distribution's QEMU, which finds its own firmware. */
		q = getenv("SVQISO_STOCK_QEMU");
		*must = q && *q;
		if (!*must)
			q = STOCK_QEMU;
		if (access(q, X_OK)) {
			snprintf(why, sizeof(why), "no QEMU at %s (qemu-system-x86)", q);
			return why;
		}
		env.proxy = getenv("SVQISO_PROXY");
		if (!env.proxy || access(env.proxy, X_OK)) {
			*must = true;
			snprintf(why, sizeof(why), "no svqiso-proxy at %s (meson sets "
				 "SVQISO_PROXY)", env.proxy ? env.proxy : "SVQISO_PROXY");
			return why;
		}
		env.bypass = getenv("SVQISO_PROXY_BYPASS") &&
			     !strcmp(getenv("SVQISO_PROXY_BYPASS"), "1");
	} else {
		/* Asked for explicitly (scripts/test, CI): what is missing
		 * fails. */
		*must = q && *q;
		if (!*must)
			q = getenv("SVQISO_QEMU_DEFAULT");
		if (!q || access(q, X_OK)) {
			snprintf(why, sizeof(why), "no QEMU at %s (scripts/qemu "
				 "builds it)", q ? q : "SVQISO_QEMU");
			return why;
		}
		env.firmware = getenv("SVQISO_QEMU_FIRMWARE");
		if (env.firmware && !*env.firmware)
			env.firmware = NULL;
		env.nolog = getenv("SVQISO_NOLOG_PRELOAD");
		if (var->nolog && (!env.nolog || access(env.nolog, R_OK))) {
			*must = true;
			snprintf(why, sizeof(why), "no preload library at %s (meson "
				 "sets SVQISO_NOLOG_PRELOAD)",
				 env.nolog ? env.nolog : "SVQISO_NOLOG_PRELOAD");
			return why;
		}
	}
	snprintf(env.qemu, sizeof(env.qemu), "%s", q);
	env.virtiofsd = getenv("SVQISO_VIRTIOFSD") ? getenv("SVQISO_VIRTIOFSD")
						   : VIRTIOFSD;
	env.tests = getenv("SVQISO_QEMU_TESTS");
	if (!env.tests)
		return "SVQISO_QEMU_TESTS is not set (meson sets it)";
	if (k && *k)
		snprintf(env.kernel, sizeof(env.kernel), "%s", k);
	else if (!find_kernel())
		return "no /boot/vmlinuz-* with its modules (linux-image-amd64)";
	base = strrchr(env.kernel, '/');
	base = base ? base + 1 : env.kernel;
	if (access(env.kernel, R_OK) || strncmp(base, "vmlinuz-", 8)) {
		snprintf(why, sizeof(why), "%s: not a readable vmlinuz-VERSION",
			 env.kernel);
		return why;
	}
	snprintf(env.kver, sizeof(env.kver), "%s", base + 8);
	if (var->kind == K_FS) {
		if (access(env.virtiofsd, X_OK))
			return "no virtiofsd (qemu-system-common)";
		if (geteuid() != 0) {
			*must = false;
			return "virtiofsd's sandbox needs root";
		}
	} else if (!qsd_on_path(QSD_BIN)) {
		return QSD_BIN " is not on PATH (qemu-system-common)";
	}
	iso = has_isolation(dev);
	if (iso < 0) {
		snprintf(why, sizeof(why), "%s -device %s,help does not list its "
			 "properties", env.qemu, dev);
		*must = true;
		return why;
	}
	if (var->iso && !iso) {
		snprintf(why, sizeof(why), "%s has no memory-isolation property on "
			 "%s (the adapters/qemu series is not applied)", env.qemu, dev);
		*must = false;
		return why;
	}
	return NULL;
}

static const struct variant *find_variant(const char *name)
{
	size_t i;

	for (i = 0; i < NR_VARIANTS; i++)
		if (!strcmp(variants[i].name, name))
			return &variants[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const TTest *const tests[] = {
		[K_BLK] = test_blk, [K_FS] = test_fs,
		[K_RESET] = test_reset, [K_RECONNECT] = test_reconnect,
		[K_RESTART] = test_restart, [K_MIGRATE] = test_migrate,
	};
	struct ckplan plan = { .suite = "qemu" };
	char dir[64], err[160];
	const char *why;
	Suite *s;
	TCase *tc;
	bool must;
	size_t i;
	int rc;

	/* A QEMU that is gone is an error to report, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	var = argc == 2 ? find_variant(argv[1]) : NULL;
	if (!var) {
		fprintf(stderr, "usage: %s VARIANT\nvariants:", argv[0]);
		for (i = 0; i < NR_VARIANTS; i++)
			fprintf(stderr, " %s", variants[i].name);
		fprintf(stderr, "\n");
		return 2;
	}
	why = prerequisites(&must);
	if (why && must) {
		printf("Bail out! %s\n", why);
		return EXIT_FAILURE;
	}
	if (why) {
		printf("1..0 # SKIP %s\n", why);
		return EXIT_SUCCESS;
	}

	/* Everything of the run below one directory, removed at the end
	 * even after a test that failed or timed out. */
	if (proc_mkdtemp(dir, sizeof(dir), "qemu", err, sizeof(err))) {
		printf("Bail out! %s\n", err);
		return EXIT_FAILURE;
	}
	setenv("TMPDIR", dir, 1);
	if (!make_initrd(dir)) {
		printf("Bail out! %s/mkinitramfs failed for kernel %s\n", env.tests,
		       env.kver);
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		return EXIT_FAILURE;
	}
	fprintf(stderr, "# %s: %s, kernel %s%s%s\n", var->name, env.qemu, env.kernel,
		env.firmware ? ", -L " : "", env.firmware ? env.firmware : "");

	s = suite_create("qemu");
	tc = ckplan_tcase(&plan, s, var->name, NULL, 900);
	tcase_add_checked_fixture(tc, rig_setup, rig_teardown);
	ckplan_add(&plan, tc, tests[var->kind], 0, 1);
	rc = ckplan_run(&plan, s);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
