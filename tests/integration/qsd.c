/* SPDX-License-Identifier: MIT */
/* A qemu-storage-daemon for tests; see qsd.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qsd.h"

#define START_MS	10000		/* for the socket to appear */
#define STOP_MS		5000		/* SIGTERM, then SIGKILL */
#define CHUNK		(1u << 20)

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
	char a_file[192], a_raw[128], a_export[256], a_export2[256];
	char a_group[96], a_thr[96];
	const char *unmap = cfg->discard ? ",discard=unmap" : "";
	char *argv[14] = {
		QSD_BIN, "--blockdev", a_file, "--blockdev", a_raw,
	};
	unsigned int n = 5;
	struct proc_spawn_opts po = { .argv = argv, .sock = q->sock,
				      .start_ms = START_MS, .stdin_fd = -1,
				      .out_fd = cfg->out_fd > 0 ? cfg->out_fd : -1 };
	bool throttled = cfg->throttle_iops || cfg->throttle_bps;
	int k;

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
		 throttled ? "thr0" : "disk0",
		 cfg->num_queues ? cfg->num_queues : 2);
	k = snprintf(a_group, sizeof(a_group), "throttle-group,id=tg0");
	if (cfg->throttle_iops)
		k += snprintf(a_group + k, sizeof(a_group) - (size_t)k,
			      ",x-iops-total=%u", cfg->throttle_iops);
	if (cfg->throttle_bps)
		snprintf(a_group + k, sizeof(a_group) - (size_t)k,
			 ",x-bps-total=%u", cfg->throttle_bps);
	snprintf(a_thr, sizeof(a_thr),
		 "driver=throttle,node-name=thr0,throttle-group=tg0,file=disk0%s",
		 unmap);
	/* Every node before the export that names one. */
	if (throttled) {
		argv[n++] = "--object";
		argv[n++] = a_group;
		argv[n++] = "--blockdev";
		argv[n++] = a_thr;
	}
	/* The second first: the first's socket says both are there. */
	if (cfg->second_export) {
		snprintf(a_export2, sizeof(a_export2),
			 "type=vhost-user-blk,id=exp1,addr.type=unix,addr.path=%s,"
			 "node-name=%s,writable=on,num-queues=%u", q->sock2,
			 throttled ? "thr0" : "disk0",
			 cfg->num_queues ? cfg->num_queues : 2);
		argv[n++] = "--export";
		argv[n++] = a_export2;
	}
	argv[n++] = "--export";
	argv[n++] = a_export;
	argv[n] = NULL;
	return proc_spawn(&po, &q->pid, q->err, sizeof(q->err));
}

int qsd_setup(struct qsd *q, const struct qsd_cfg *cfg)
{
	int rc;

	memset(q, 0, sizeof(*q));
	q->pid = -1;
	rc = proc_mkdtemp(q->dir, sizeof(q->dir), "qsd", q->err, sizeof(q->err));
	if (rc)
		return rc;
	snprintf(q->img, sizeof(q->img), "%s/disk.img", q->dir);
	snprintf(q->sock, sizeof(q->sock), "%s/vhost.sock", q->dir);
	snprintf(q->sock2, sizeof(q->sock2), "%s/vhost2.sock", q->dir);
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
	proc_stop(&q->pid, STOP_MS);
}

void qsd_kill(struct qsd *q)
{
	proc_kill(&q->pid);
}

int qsd_restart(struct qsd *q, const struct qsd_cfg *cfg)
{
	int rc;

	qsd_stop(q);
	/* A killed daemon leaves its socket: wait for the new one's. */
	unlink(q->sock);
	unlink(q->sock2);
	q->err[0] = 0;
	rc = start(q, cfg);
	if (rc && !q->err[0])
		snprintf(q->err, sizeof(q->err), "restarting " QSD_BIN ": %s",
			 strerror(-rc));
	return rc;
}

void qsd_teardown(struct qsd *q)
{
	qsd_stop(q);
	if (!q->dir[0])
		return;
	unlink(q->sock);
	unlink(q->sock2);
	unlink(q->img);
	rmdir(q->dir);
	q->dir[0] = 0;
}
