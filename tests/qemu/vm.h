/* SPDX-License-Identifier: MIT */
/*
 * A QEMU guest for tests: qemu-system-x86_64 under TCG, started by pid
 * (proc.h) in a test's directory, with its serial console on a unix socket
 * the test talks to line by line, and QMP on another.
 *
 * The guest is tests/qemu/guest/init: it prints SVQISO-BOOT when it starts,
 * SVQISO-READY when it waits for a command, SVQISO-IO when a command starts
 * its I/O, and ends each command with SVQISO-OK or SVQISO-FAIL (see there).
 *
 * No Check assertions: callers assert, and vm_dump() says what the guest
 * and QEMU printed.
 */
#ifndef SVQ_TESTS_VM_H
#define SVQ_TESTS_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct vm_cfg {
	const char *qemu;		/* binary (or a wrapper that execs it) */
	const char *firmware;		/* -L directory; NULL: none */
	const char *kernel, *initrd;
	const char *append;		/* more kernel command line; NULL */
	unsigned int mem_mb;
	unsigned int cpus;
	const char *memdev;		/* -object for the guest RAM, without
					 * id and size (NULL: plain -m) */
	char *const *args;		/* device arguments, NULL-terminated */
	const char *incoming;		/* -incoming URI: a migration's
					 * destination; NULL */
	char *const *env;		/* "NAME=VALUE" for QEMU's environment,
					 * NULL-terminated; NULL */
};

struct vm {
	char dir[96];
	char con_path[128], qmp_path[128], log_path[128], qemu_log[128];
	pid_t pid;			/* -1: not running */
	int con;			/* console socket; -1 */
	int qmp;			/* QMP socket, once vm_qmp() connected; -1 */
	int exit_status;		/* wait status once reaped; -1 */
	char *out;			/* everything the console printed */
	size_t len, cap;
	size_t pos;			/* lines before it are consumed */
	char err[256];			/* why a call failed */
};

/*
 * vm_start() - start QEMU with its sockets and logs in @dir and connect to
 * the console (QEMU waits for that before it runs the guest).
 * Return: 0; -errno, with vm->err saying what failed (QEMU is stopped).
 */
int vm_start(struct vm *vm, const char *dir, const struct vm_cfg *cfg);

/*
 * vm_expect() - wait up to @timeout_ms for the next console line with
 * @prefix (an "SVQISO-..." word; kernel messages may stand before it),
 * consuming the lines before it; the line from @prefix on in @line. A line with SVQISO-FAIL or "Kernel panic" ends the wait first.
 * Return: 0; -EIO (a FAIL or panic line, in @line and vm->err), -ETIMEDOUT,
 * -EPIPE (QEMU closed the console: it exited).
 */
int vm_expect(struct vm *vm, const char *prefix, int timeout_ms, char *line,
	      size_t size);

/* vm_send() - one line to the guest's console. Return: 0; -errno. */
int vm_send(struct vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * vm_cmd() - wait for SVQISO-READY, send a command, wait up to @timeout_ms
 * for its SVQISO-OK line, which lands in @reply.
 * Return: 0; as vm_expect().
 */
int vm_cmd(struct vm *vm, char *reply, size_t size, int timeout_ms,
	   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * vm_qmp() - one QMP command (a JSON object), connecting first if needed;
 * its reply line in @reply. Return: 0; -EREMOTEIO (an error reply), -errno.
 */
int vm_qmp(struct vm *vm, const char *cmd, char *reply, size_t size);

/* vm_wait_exit() - reap QEMU, waiting up to @timeout_ms. Return: 0; -ETIMEDOUT. */
int vm_wait_exit(struct vm *vm, int timeout_ms);

/* vm_stop() - stop QEMU (SIGTERM, then SIGKILL), close sockets, free. */
void vm_stop(struct vm *vm);

/* vm_dump() - the console's last lines and QEMU's log, to @f. */
void vm_dump(struct vm *vm, FILE *f);

/* vm_value() - the value of "@key=" in @line, up to a space, in @val. */
bool vm_value(const char *line, const char *key, char *val, size_t size);

/* vm_count() - entries of /proc/@pid/fd (@what "fd"), lines of
 * /proc/@pid/maps ("maps"), or those of its lines that map a memfd
 * ("memfd"). Return: the count; -errno. */
int vm_count(pid_t pid, const char *what);

#endif /* SVQ_TESTS_VM_H */
