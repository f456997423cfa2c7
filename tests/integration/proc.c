/* SPDX-License-Identifier: MIT */
/* A backend program for tests, by pid; see proc.h. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "proc.h"

void proc_sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

bool proc_on_path(const char *name)
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

int proc_mkdtemp(char *dir, size_t size, const char *tag, char *err, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;
	int rc;

	if (!tmp || !*tmp || strlen(tmp) >= 32)
		tmp = !stat("/dev/shm", &st) && S_ISDIR(st.st_mode) &&
		      !access("/dev/shm", W_OK) ? "/dev/shm" : "/tmp";
	snprintf(dir, size, "%s/svqiso-%s-XXXXXX", tmp, tag);
	if (!mkdtemp(dir)) {
		rc = -errno;
		snprintf(err, len, "mkdtemp: %s", strerror(errno));
		dir[0] = 0;
		return rc;
	}
	return 0;
}

int proc_spawn(const struct proc_spawn_opts *o, pid_t *pid, char *err, size_t len)
{
	const char *name = o->argv[0];
	pid_t parent = getpid(), child;
	struct stat st;
	int waited, status;

	child = fork();
	if (child < 0) {
		snprintf(err, len, "fork: %s", strerror(errno));
		return -errno;
	}
	if (child == 0) {
		/* Dies with the test process, whatever ends it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (o->stdin_fd >= 0)
			dup2(o->stdin_fd, STDIN_FILENO);
		dup2(o->out_fd >= 0 ? o->out_fd : STDERR_FILENO, STDOUT_FILENO);
		if (o->out_fd >= 0)
			dup2(o->out_fd, STDERR_FILENO);
		for (char *const *e = o->env; e && *e; e++)
			putenv(*e);
		execvp(name, o->argv);
		_exit(127);
	}
	for (waited = 0; waited < o->start_ms; waited += 10) {
		if (!stat(o->sock, &st) && S_ISSOCK(st.st_mode)) {
			*pid = child;
			return 0;
		}
		if (waitpid(child, &status, WNOHANG) == child) {
			snprintf(err, len, "%s exited early (status %#x)", name, status);
			return -ECHILD;
		}
		proc_sleep_ms(10);
	}
	proc_stop(&child, 1000);
	snprintf(err, len, "%s: socket did not appear in %d ms", name, o->start_ms);
	return -ETIMEDOUT;
}

int proc_stop(pid_t *pid, int stop_ms)
{
	int status = -1, waited;

	if (*pid <= 0)
		return -1;
	kill(*pid, SIGTERM);
	for (waited = 0; waited < stop_ms; waited += 10) {
		if (waitpid(*pid, &status, WNOHANG) == *pid)
			goto out;
		proc_sleep_ms(10);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
out:
	*pid = -1;
	return status;
}

int proc_kill(pid_t *pid)
{
	int status = -1;

	if (*pid <= 0)
		return -1;
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
	*pid = -1;
	return status;
}
