/* SPDX-License-Identifier: MIT */
/* A qemu-storage-daemon for tests; see qsd.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "qsd.h"

#define START_MS	10000		/* for the socket to appear */
#define STOP_MS		5000		/* SIGTERM, then SIGKILL */
#define CHUNK		(1u << 20)

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

bool qsd_on_path(const char *name)
{
	const char *path = getenv("PATH");
	char buf[4096];

	while (path && *path) {
		size_t n = strcspn(path, ":");

		if (n && snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name) <
		    (int)sizeof(buf) && !access(buf, X_OK))
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

static int make_image(struct qsd *q, const struct qsd_cfg *cfg)
{
	uint8_t *buf;
	uint64_t off;
	int fd, rc = 0;

	fd = open(q->img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)cfg->img_size)) {
		rc = -errno;
		goto out;
	}
	if (!cfg->fill)
		goto out;
	buf = malloc(CHUNK);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (off = 0; off < cfg->img_size && !rc; off += CHUNK) {
		uint64_t n = cfg->img_size - off < CHUNK ? cfg->img_size - off : CHUNK;

		cfg->fill(off, buf, n);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			rc = -EIO;
	}
	free(buf);
out:
	close(fd);
	return rc;
}

static int start(struct qsd *q, const struct qsd_cfg *cfg)
{
	char a_file[192], a_raw[128], a_export[256], a_group[96];
	const char *unmap = cfg->discard ? ",discard=unmap" : "";
	pid_t parent = getpid();
	struct stat st;
	int waited, status;

	if (cfg->null_driver)
		snprintf(a_file, sizeof(a_file),
			 "driver=null-co,node-name=file0,size=%llu%s",
			 (unsigned long long)cfg->img_size,
			 cfg->read_zeroes ? ",read-zeroes=on" : "");
	else
		snprintf(a_file, sizeof(a_file),
			 "driver=file,node-name=file0,filename=%s%s", q->img, unmap);
	snprintf(a_raw, sizeof(a_raw), "driver=raw,node-name=disk0,file=file0%s",
		 unmap);
	snprintf(a_export, sizeof(a_export),
		 "type=vhost-user-blk,id=exp0,addr.type=unix,addr.path=%s,"
		 "node-name=%s,writable=on,num-queues=%u", q->sock,
		 cfg->throttle_iops ? "thr0" : "disk0",
		 cfg->num_queues ? cfg->num_queues : 2);
	snprintf(a_group, sizeof(a_group), "throttle-group,id=tg0,x-iops-total=%u",
		 cfg->throttle_iops);
	q->pid = fork();
	if (q->pid < 0) {
		q->pid = -1;
		return -errno;
	}
	if (q->pid == 0) {
		char a_thr[96];
		char *argv[12] = {
			QSD_BIN, "--blockdev", a_file, "--blockdev", a_raw,
		};
		unsigned int n = 5;

		/* Every node before the export that names one. */
		snprintf(a_thr, sizeof(a_thr),
			 "driver=throttle,node-name=thr0,throttle-group=tg0,file=disk0%s",
			 unmap);
		if (cfg->throttle_iops) {
			argv[n++] = "--object";
			argv[n++] = a_group;
			argv[n++] = "--blockdev";
			argv[n++] = a_thr;
		}
		argv[n++] = "--export";
		argv[n++] = a_export;
		argv[n] = NULL;

		/* Dies with the test process, whatever ends it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(STDERR_FILENO, STDOUT_FILENO);	/* keep TAP clean */
		execvp(QSD_BIN, argv);
		_exit(127);
	}
	for (waited = 0; waited < START_MS; waited += 10) {
		if (!stat(q->sock, &st) && S_ISSOCK(st.st_mode))
			return 0;
		if (waitpid(q->pid, &status, WNOHANG) == q->pid) {
			q->pid = -1;
			snprintf(q->err, sizeof(q->err),
				 QSD_BIN " exited early (status %#x)", status);
			return -ECHILD;
		}
		sleep_ms(10);
	}
	snprintf(q->err, sizeof(q->err), QSD_BIN " socket did not appear in %d ms",
		 START_MS);
	return -ETIMEDOUT;
}

int qsd_setup(struct qsd *q, const struct qsd_cfg *cfg)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;
	int rc;

	memset(q, 0, sizeof(*q));
	q->pid = -1;
	/* Memory-backed when possible: flushes then cost no disk writeback. */
	if (!tmp || !*tmp || strlen(tmp) >= 32)
		tmp = !stat("/dev/shm", &st) && S_ISDIR(st.st_mode) &&
		      !access("/dev/shm", W_OK) ? "/dev/shm" : "/tmp";
	snprintf(q->dir, sizeof(q->dir), "%s/svqiso-qsd-XXXXXX", tmp);
	if (!mkdtemp(q->dir)) {
		rc = -errno;
		snprintf(q->err, sizeof(q->err), "mkdtemp: %s", strerror(errno));
		q->dir[0] = 0;
		return rc;
	}
	snprintf(q->img, sizeof(q->img), "%s/disk.img", q->dir);
	snprintf(q->sock, sizeof(q->sock), "%s/vhost.sock", q->dir);
	if (!cfg->null_driver) {
		rc = make_image(q, cfg);
		if (rc) {
			snprintf(q->err, sizeof(q->err), "image: %s", strerror(-rc));
			return rc;
		}
	}
	rc = start(q, cfg);
	if (rc && !q->err[0])
		snprintf(q->err, sizeof(q->err), "starting " QSD_BIN ": %s",
			 strerror(-rc));
	return rc;
}

void qsd_stop(struct qsd *q)
{
	int status, waited;

	if (q->pid <= 0)
		return;
	kill(q->pid, SIGTERM);
	for (waited = 0; waited < STOP_MS; waited += 10) {
		if (waitpid(q->pid, &status, WNOHANG) == q->pid)
			goto out;
		sleep_ms(10);
	}
	kill(q->pid, SIGKILL);
	waitpid(q->pid, &status, 0);
out:
	q->pid = -1;
}

void qsd_teardown(struct qsd *q)
{
	qsd_stop(q);
	if (!q->dir[0])
		return;
	unlink(q->sock);
	unlink(q->img);
	rmdir(q->dir);
	q->dir[0] = 0;
}
