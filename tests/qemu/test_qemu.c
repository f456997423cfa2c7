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
 */
#define _GNU_SOURCE	/* memmem, versionsort */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
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

enum kind {
	K_BLK,			/* data on two queues, direct and cached */
	K_FS,			/* virtiofs: read a host file, write files */
	K_RESET,		/* system_reset mid-I/O, then a guest reboot */
	K_RECONNECT,		/* qemu-storage-daemon killed mid-I/O, restarted */
};

struct variant {
	const char *name;
	enum kind kind;
	bool iso;		/* memory-isolation=on */
	bool ram;		/* memory-backend-ram: no fd, not shared */
	const char *props;	/* more device properties */
};

static const struct variant variants[] = {
	/* vhost-user-blk-pci, num-queues=2: 64 MiB written with O_DIRECT
	 * half from each vCPU (both queues must complete requests), 64 MiB
	 * through the page cache, read back in the guest and checked
	 * against the image file on the host. */
	{ "blk-off", K_BLK, false, false, NULL },
	{ "blk-on", K_BLK, true, false, NULL },
	/* Guest RAM qemu-storage-daemon could not map even without
	 * isolation (plain vhost-user fails on it). */
	{ "blk-on-ram", K_BLK, true, true, NULL },
	/* A packed guest ring over qemu-storage-daemon's split one. */
	{ "blk-on-packed", K_BLK, true, false, "packed=on" },
	{ "blk-on-noindirect", K_BLK, true, false,
	  "indirect_desc=off,event_idx=off" },
	/* vhost-user-fs-pci against virtiofsd: the guest reads a host file
	 * and writes files the host then checks. */
	{ "fs-off", K_FS, false, false, NULL },
	{ "fs-on", K_FS, true, false, NULL },
	/* system_reset through QMP in the middle of a write, then a reboot
	 * from the guest: the disk works after each, the data written
	 * before is there, and QEMU holds no more fds and mappings than
	 * after the first boot. */
	{ "reset-off", K_RESET, false, false, NULL },
	{ "reset-on", K_RESET, true, false, NULL },
	/* qemu-storage-daemon SIGKILLed in the middle of a write and
	 * started again on the same socket (chardev reconnect=1): the
	 * write completes and its data is on the disk. */
	{ "reconnect-off", K_RECONNECT, false, false, NULL },
	{ "reconnect-on", K_RECONNECT, true, false, NULL },
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
} env;

/* One test's components; the forked test process owns them. */
static struct rig {
	char dir[128];
	struct qsd_cfg qcfg;
	struct qsd qsd;
	pid_t vfsd;
	char share[192], fs_sock[192];
	struct vm vm;
	bool vm_up;
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

/* ck_assert_msg() that first shows what the guest and QEMU printed. */
#define require(cond, ...) do {						\
	if (!(cond)) {							\
		if (rig.vm_up)						\
			vm_dump(&rig.vm, stderr);			\
		ck_abort_msg(__VA_ARGS__);				\
	}								\
} while (0)

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
 * QEMU's memfds: guest RAM (a memfd of the whole RAM size that is not
 * svqiso's) in @guest, svqiso's isolated regions in @iso.
 */
static void qemu_memfds(pid_t qemu, struct stat *guest, bool *has_guest,
			struct stat *iso, unsigned int *niso, unsigned int max)
{
	char dir[64], path[PATH_MAX], link[PATH_MAX];
	struct dirent *d;
	struct stat st;
	ssize_t n;
	DIR *dp;

	*has_guest = false;
	*niso = 0;
	memset(guest, 0, sizeof(*guest));
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)qemu);
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
		if (!strncmp(link, "/memfd:svqiso", 13)) {
			if (*niso < max)
				iso[(*niso)++] = st;
		} else if (st.st_size >= (off_t)MEM_MB << 20) {
			*guest = st;
			*has_guest = true;
		}
	}
	closedir(dp);
}

/* What @backend (@who) reaches now, against what the variant allows. */
static void check_isolation(pid_t backend, const char *who, const char *when)
{
	struct stat guest, iso[64];
	struct inspect_report r;
	unsigned int niso;
	bool has_guest;
	int rc;

	qemu_memfds(rig.vm.pid, &guest, &has_guest, iso, &niso, 64);
	rc = inspect_process(backend, &guest, iso, niso, &r);
	require(!rc, "inspecting %s (pid %d): %s", who, (int)backend, strerror(-rc));
	note("%s %s: %u fds (%u memfds), %u mappings, %llu KiB of memfds mapped, "
	     "%u of guest RAM; QEMU: %u svqiso memfds%s", who, when, r.fds,
	     r.fd_memfd, r.maps, (unsigned long long)r.map_memfd_bytes >> 10,
	     r.fd_guest + r.map_guest, niso,
	     has_guest ? ", guest RAM memfd" : "");
	if (!var->iso) {
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
	require(niso > 0, "memory-isolation=on, yet QEMU holds no svqiso memfd");
	require(r.map_memfd_bytes > 0,
		"%s (pid %d) maps no svqiso region %s: is the device in use?",
		who, (int)backend, when);
}

static void start_qsd(void)
{
	int rc;

	rig.qcfg = (struct qsd_cfg){ .img_size = (uint64_t)IMG_MB << 20,
				     .num_queues = 2 };
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

/* QEMU with the variant's device on the backend's socket. */
static void start_vm(const char *sock, bool reconnect)
{
	struct vm_cfg cfg = {
		.qemu = env.qemu, .firmware = env.firmware,
		.kernel = env.kernel, .initrd = env.initrd,
		.mem_mb = MEM_MB, .cpus = 2,
		.memdev = var->ram ? "memory-backend-ram"
				   : "memory-backend-memfd,share=on",
		.args = rig.args,
	};
	const char *iso = var->iso ? ",memory-isolation=on" : "";
	char line[256];
	int rc;

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
	note("QEMU: -device %s", rig.a_dev);
	rc = vm_start(&rig.vm, rig.dir, &cfg);
	require(!rc, "QEMU: %s (log in %s)", rig.vm.err, rig.vm.qemu_log);
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

/* Power the guest off; QEMU must exit cleanly, the backend stay up. */
static void poweroff(pid_t backend, const char *who)
{
	char line[256];
	int rc, status;

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
}

/* Check fixtures: in the forked test process. */
static void rig_setup(void)
{
	char err[160];

	memset(&rig, 0, sizeof(rig));
	rig.qsd.pid = -1;
	rig.vfsd = -1;
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
	proc_stop(&rig.vfsd, 3000);
	qsd_teardown(&rig.qsd);
}

START_TEST(test_blk)
{
	char reply[512], sha[65], irqs[64];
	unsigned int q0 = 0, q1 = 0;

	start_qsd();
	start_vm(rig.qsd.sock, false);
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
	start_vm(rig.fs_sock, false);
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

/* QEMU's fds and mappings may not grow past @fds0 and @maps0. */
static void check_counts(int fds0, int maps0, const char *after)
{
	int fds = vm_count(rig.vm.pid, "fd"), maps = vm_count(rig.vm.pid, "maps");

	note("QEMU after %s: %d fds, %d mappings (first boot: %d, %d)", after,
	     fds, maps, fds0, maps0);
	require(fds > 0 && fds <= fds0, "QEMU holds %d fds after %s, %d before",
		fds, after, fds0);
	require(maps > 0 && maps <= maps0,
		"QEMU has %d mappings after %s, %d before", maps, after, maps0);
}

START_TEST(test_reset)
{
	char reply[512], sha0[65], sha[65], line[256];
	int fds0, maps0, rc;

	start_qsd();
	start_vm(rig.qsd.sock, false);
	blk_info();
	blk_write(0, 32, "direct", sha0, reply, sizeof(reply));
	/* QMP's connection is one of QEMU's fds: open before counting. */
	rc = vm_qmp(&rig.vm, "{\"execute\": \"query-status\"}", line, sizeof(line));
	require(!rc && strstr(line, "\"running\""), "QMP: %s", rig.vm.err);
	fds0 = vm_count(rig.vm.pid, "fd");
	maps0 = vm_count(rig.vm.pid, "maps");

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
	check_counts(fds0, maps0, "system_reset");

	rc = vm_expect(&rig.vm, "SVQISO-READY", CMD_MS, line, sizeof(line));
	if (!rc)
		rc = vm_send(&rig.vm, "reboot");
	if (!rc)
		rc = vm_expect(&rig.vm, "SVQISO-BOOT", BOOT_MS, line, sizeof(line));
	require(!rc, "reboot: %s", rig.vm.err);
	note("rebooted by the guest");
	blk_write(96, 32, "cached", sha, reply, sizeof(reply));
	blk_read(0, 32, sha0);
	check_counts(fds0, maps0, "the guest's reboot");
	poweroff(rig.qsd.pid, "qemu-storage-daemon");
}
END_TEST

START_TEST(test_reconnect)
{
	char reply[512], sha0[65], sha[65];
	int rc;

	start_qsd();
	start_vm(rig.qsd.sock, true);
	blk_info();
	blk_write(0, 32, "direct", sha0, reply, sizeof(reply));

	cmd_start("write vda 32 64 direct");
	proc_sleep_ms(500);
	require(!printed("SVQISO-OK"), "the write ended before the kill");
	qsd_kill(&rig.qsd);
	note("qemu-storage-daemon killed in the middle of a write");
	proc_sleep_ms(1000);
	rc = qsd_restart(&rig.qsd, &rig.qcfg);
	require(!rc, "%s", rig.qsd.err);
	note("qemu-storage-daemon restarted (pid %d)", (int)rig.qsd.pid);
	cmd_end(reply, sizeof(reply), "write across the restart");
	check_write(reply, 32, 64, sha);
	note("write vda 32 64 direct, across the restart: PASS sha256=%s", sha);
	check_isolation(rig.qsd.pid, "qemu-storage-daemon", "after the restart");
	blk_write(96, 32, "cached", sha, reply, sizeof(reply));
	blk_read(0, 32, sha0);
	poweroff(rig.qsd.pid, "qemu-storage-daemon");
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

	/* Asked for explicitly (scripts/test, CI): what is missing fails. */
	*must = q && *q;
	if (!*must)
		q = getenv("SVQISO_QEMU_DEFAULT");
	if (!q || access(q, X_OK)) {
		snprintf(why, sizeof(why), "no QEMU at %s (scripts/qemu builds it)",
			 q ? q : "SVQISO_QEMU");
		return why;
	}
	snprintf(env.qemu, sizeof(env.qemu), "%s", q);
	env.firmware = getenv("SVQISO_QEMU_FIRMWARE");
	if (env.firmware && !*env.firmware)
		env.firmware = NULL;
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
	};
	struct ckplan plan = { .suite = "qemu" };
	char dir[64], err[160];
	const char *why;
	Suite *s;
	TCase *tc;
	bool must;
	size_t i;
	int rc;

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
