/* SPDX-License-Identifier: MIT */
/*
 * DPDK's testpmd for tests: a vhost-user net backend (its vhost PMD, one
 * queue pair, listening on a unix socket in a fresh temporary directory)
 * that echoes every frame back with addresses swapped (forward mode
 * 5tswap). Started and stopped by pid (proc.h).
 *
 * It busy-polls: both of its lcores are bound to the one CPU given, the
 * main one sleeping in a read of its stdin (a pipe held here: its end also
 * ends testpmd), the forwarding one spinning. Its control threads (vhost
 * messages) run on the other CPUs it may use. Hugepages are not needed
 * (--no-huge), nor PCI; its runtime files go to the temporary directory.
 */
#ifndef SVQ_TESTS_TESTPMD_H
#define SVQ_TESTS_TESTPMD_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "proc.h"

#define TESTPMD_BIN	"dpdk-testpmd"

struct testpmd {
	char dir[64];
	char sock[96];
	char log[96];			/* its stdout and stderr */
	char prefix[32];		/* DPDK's --file-prefix */
	pid_t pid;			/* -1: not running */
	int stdin_fd;			/* write end of its stdin; -1: none */
	int cpu;			/* the CPU it spins on */
	char err[160];			/* why testpmd_setup() failed */
};

/*
 * testpmd_setup() - make the directory, start testpmd with its lcores on
 * @cpu, wait for its socket. Return: 0; -errno, with t->err saying what
 * failed (t->log may say more).
 */
int testpmd_setup(struct testpmd *t, int cpu);

/* Stop it (SIGTERM, then SIGKILL); idempotent. Return: its wait status, -1
 * if it was not running. */
int testpmd_stop(struct testpmd *t);

/* Stop it and remove its directory; idempotent. */
void testpmd_teardown(struct testpmd *t);

/*
 * testpmd_wait_unconnected() - wait up to @timeout_ms until testpmd has
 * seen every vhost-user connection it took closed (its log says so). Its
 * vhost PMD serves one connection per port: a close it sees only after the
 * next connection came up takes that one's link down with it, and frames
 * stop. Return: 0; -ETIMEDOUT; -errno reading the log.
 */
int testpmd_wait_unconnected(const struct testpmd *t, int timeout_ms);

/* Copy the last @lines lines of its log to @out, each behind "# ". */
void testpmd_print_log(const struct testpmd *t, FILE *out, unsigned int lines);

#endif /* SVQ_TESTS_TESTPMD_H */
