/* SPDX-License-Identifier: MIT */
/* DPDK's testpmd for tests; see testpmd.h. */
#define _GNU_SOURCE	/* pipe2 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testpmd.h"

#define START_MS	20000		/* for the socket to appear */
#define STOP_MS		5000		/* SIGTERM, then SIGKILL */

int testpmd_setup(struct testpmd *t, int cpu)
{
	char lcores[32], vdev[160], runtime[128];
	char *env[] = { runtime, NULL };
	char *argv[] = {
		TESTPMD_BIN, "--lcores", lcores, "--no-huge", "-m", "512",
		"--no-pci", "--no-shconf", "--no-telemetry",
		"--file-prefix", t->prefix, "--vdev", vdev, "--",
		"--auto-start", "--forward-mode=5tswap",
		"--total-num-mbufs=16384", "--no-mlockall",
		"--disable-link-check", NULL,
	};
	struct proc_spawn_opts po = { .argv = argv, .start_ms = START_MS,
				      .env = env };
	int in[2], out, rc;

	memset(t, 0, sizeof(*t));
	t->pid = -1;
	t->stdin_fd = -1;
	t->cpu = cpu;
	rc = proc_mkdtemp(t->dir, sizeof(t->dir), "testpmd", t->err, sizeof(t->err));
	if (rc)
		return rc;
	snprintf(t->sock, sizeof(t->sock), "%s/vhost.sock", t->dir);
	snprintf(t->log, sizeof(t->log), "%s/testpmd.log", t->dir);
	/* Its runtime files (DPDK's RUNTIME_DIRECTORY) go to the directory. */
	snprintf(runtime, sizeof(runtime), "RUNTIME_DIRECTORY=%s", t->dir);
	/* Main lcore 0 and forwarding lcore 1, both on @cpu. */
	snprintf(lcores, sizeof(lcores), "0@%d,1@%d", cpu, cpu);
	snprintf(t->prefix, sizeof(t->prefix), "svqiso%d", (int)getpid());
	snprintf(vdev, sizeof(vdev), "net_vhost0,iface=%s,queues=1", t->sock);
	out = open(t->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0 || pipe2(in, O_CLOEXEC)) {
		rc = -errno;
		snprintf(t->err, sizeof(t->err), "log or pipe: %s", strerror(errno));
		if (out >= 0)
			close(out);
		return rc;
	}
	po.sock = t->sock;
	po.stdin_fd = in[0];
	po.out_fd = out;
	rc = proc_spawn(&po, &t->pid, t->err, sizeof(t->err));
	close(in[0]);
	close(out);
	if (rc) {
		close(in[1]);
		return rc;
	}
	t->stdin_fd = in[1];
	return 0;
}

int testpmd_stop(struct testpmd *t)
{
	int status = proc_stop(&t->pid, STOP_MS);

	if (t->stdin_fd >= 0)
		close(t->stdin_fd);
	t->stdin_fd = -1;
	return status;
}

/* Count the connections testpmd took and those it saw closed. */
static int count_sessions(const struct testpmd *t, unsigned int *opened,
			  unsigned int *closed)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f;

	*opened = *closed = 0;
	if (!(f = fopen(t->log, "re")))
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		*opened += strstr(line, "new vhost user connection") != NULL;
		*closed += strstr(line, "vhost peer closed") != NULL;
	}
	free(line);
	fclose(f);
	return 0;
}

int testpmd_wait_unconnected(const struct testpmd *t, int timeout_ms)
{
	unsigned int opened, closed;
	int waited = 0, rc;

	for (;;) {
		rc = count_sessions(t, &opened, &closed);
		if (rc)
			return rc;
		if (closed >= opened)
			return 0;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		usleep(10000);
		waited += 10;
	}
}

void testpmd_print_log(const struct testpmd *t, FILE *out, unsigned int lines)
{
	char (*ring)[160];
	unsigned int n = 0, i;
	FILE *f;

	if (!t->log[0] || !lines || !(f = fopen(t->log, "re")))
		return;
	/* Lines are cut at 159 bytes: fgets() goes on with the rest. */
	ring = calloc(lines, sizeof(*ring));
	while (ring && fgets(ring[n % lines], sizeof(*ring), f)) {
		ring[n % lines][strcspn(ring[n % lines], "\n")] = 0;
		n++;
	}
	for (i = n > lines ? n - lines : 0; ring && i < n; i++)
		fprintf(out, "# testpmd: %s\n", ring[i % lines]);
	free(ring);
	fclose(f);
}

/* Remove what DPDK left in its runtime directory, "dpdk/<prefix>/". */
static void remove_runtime(const struct testpmd *t)
{
	char dir[160], path[448];
	struct dirent *d;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/dpdk/%s", t->dir, t->prefix);
	dp = opendir(dir);
	while (dp && (d = readdir(dp))) {
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
			unlink(path);
		}
	}
	if (dp)
		closedir(dp);
	rmdir(dir);
	snprintf(dir, sizeof(dir), "%s/dpdk", t->dir);
	rmdir(dir);
}

void testpmd_teardown(struct testpmd *t)
{
	testpmd_stop(t);
	if (!t->dir[0])
		return;
	remove_runtime(t);
	unlink(t->sock);
	unlink(t->log);
	rmdir(t->dir);
	t->dir[0] = 0;
}
