/* SPDX-License-Identifier: MIT */
/*
 * A vhost-user backend program for tests, started with fork+exec and
 * stopped by pid: it gets SIGKILL if the process that started it dies, so a
 * crashed test leaves none behind, and only a pid this module started is
 * ever signalled.
 *
 * No Check assertions: the launchers run in unchecked fixtures, and report
 * why they failed in a message buffer.
 */
#ifndef SVQ_TESTS_PROC_H
#define SVQ_TESTS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Whether @name is an executable on PATH. */
bool proc_on_path(const char *name);

/*
 * proc_mkdtemp() - a fresh directory "svqiso-@tag-XXXXXX" in $TMPDIR, else
 * /dev/shm when writable (memory-backed: files there cost no disk
 * writeback), else /tmp; its path in @dir (@size bytes, 64 are enough).
 * Return: 0; -errno, with @err (@len bytes) saying what failed and @dir "".
 */
int proc_mkdtemp(char *dir, size_t size, const char *tag, char *err, size_t len);

struct proc_spawn_opts {
	char *const *argv;		/* argv[0] is looked up on PATH */
	const char *sock;		/* wait until this is a socket */
	int start_ms;			/* for the socket to appear */
	int stdin_fd;			/* the child's stdin; -1: this one's */
	int out_fd;			/* its stdout and stderr; -1: stderr
					 * (stdout stays off the TAP stream) */
	char *const *env;		/* "NAME=VALUE" strings added to its
					 * environment; NULL-terminated, or
					 * NULL */
};

/*
 * proc_spawn() - start the program and wait (bounded) for its socket.
 * Return: 0 and *@pid; -ECHILD (it exited first: stopped and reaped),
 * -ETIMEDOUT (no socket: it is stopped), -errno from fork(); @err (of @len
 * bytes) says what failed.
 */
int proc_spawn(const struct proc_spawn_opts *o, pid_t *pid, char *err, size_t len);

/*
 * proc_stop() - SIGTERM, then SIGKILL after @stop_ms; reaped. Does nothing
 * for *@pid <= 0 (never kill(-1) or a process group), and sets it to -1.
 * Return: its wait status; -1 if there was none to stop.
 */
int proc_stop(pid_t *pid, int stop_ms);

/*
 * proc_kill() - SIGKILL, as a crash would end it, and reap. Does nothing
 * for *@pid <= 0, and sets it to -1. Return: its wait status; -1 if none.
 */
int proc_kill(pid_t *pid);

/* proc_sleep_ms() - nanosleep for @ms milliseconds. */
void proc_sleep_ms(long ms);

#endif /* SVQ_TESTS_PROC_H */
