/* SPDX-License-Identifier: MIT */
/*
 * A qemu-storage-daemon for tests: a raw image in a fresh temporary
 * directory (proc_mkdtemp()), exported as vhost-user-blk on a unix socket
 * there, started and stopped by pid (proc.h).
 *
 * No Check assertions: the launcher runs in unchecked fixtures, and reports
 * why it failed in qsd->err.
 */
#ifndef SVQ_TESTS_QSD_H
#define SVQ_TESTS_QSD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proc.h"

#define QSD_BIN		"qemu-storage-daemon"

struct qsd_cfg {
	uint64_t img_size;		/* bytes */
	/* Image content: fill(off, buf, len) for each chunk; NULL: zeros. */
	void (*fill)(uint64_t off, void *buf, uint64_t len);
	unsigned int num_queues;	/* 0: 2 */
	bool null_driver;		/* null-co: no image, no disk cost */
	bool read_zeroes;		/* null-co: reads fill the buffer with
					 * zeros (as a disk's DMA writes it)
					 * instead of leaving it untouched */
	bool discard;			/* discard=unmap: discards punch holes */
	unsigned int throttle_iops;	/* 0: none; else every request waits
					 * its turn at this rate (a throttle
					 * node over the disk) */
	unsigned int throttle_bps;	/* 0: none; else bytes a second, in the
					 * same throttle node: at 1, past the
					 * first request nothing completes */
	int out_fd;			/* its stdout and stderr; 0: this
					 * process's stderr */
	bool second_export;		/* the same disk exported again on
					 * sock2: two VMMs at once (a
					 * migration's source and destination,
					 * as shared storage) */
};

struct qsd {
	char dir[64];
	char img[96];
	char sock[96];
	char sock2[96];			/* with second_export */
	pid_t pid;			/* -1: not running */
	char err[160];			/* why qsd_setup() failed */
};

/* Whether @name is an executable on PATH. */
static inline bool qsd_on_path(const char *name)
{
	return proc_on_path(name);
}

/*
 * qsd_setup() - make the directory and image, start the daemon, wait for its
 * socket. Return: 0; -errno, with qsd->err saying what failed.
 */
int qsd_setup(struct qsd *q, const struct qsd_cfg *cfg);

/* Stop the daemon (SIGTERM, then SIGKILL); idempotent. */
void qsd_stop(struct qsd *q);

/* SIGKILL it, as a crash would end it; the socket file stays behind. */
void qsd_kill(struct qsd *q);

/*
 * qsd_restart() - start the daemon again on the same image and socket
 * (after qsd_stop() or qsd_kill()), as a supervisor would.
 * Return: 0; -errno, with qsd->err saying what failed.
 */
int qsd_restart(struct qsd *q, const struct qsd_cfg *cfg);

/* Stop it and remove the image, socket and directory; idempotent. */
void qsd_teardown(struct qsd *q);

#endif /* SVQ_TESTS_QSD_H */
