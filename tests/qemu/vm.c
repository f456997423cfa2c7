/* SPDX-License-Identifier: MIT */
/* A QEMU guest for tests; see vm.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "proc.h"
#include "vm.h"

#define START_MS	20000		/* for QEMU's console socket */
#define STOP_MS		3000		/* SIGTERM, then SIGKILL */
#define QMP_MS		10000		/* for a QMP reply */
#define MAX_ARGS	64

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * QEMU's sockets appear at bind() and take connections from listen() on:
 * one seen a moment ago may refuse for a little while yet.
 */
static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + 2000;
	int fd, err;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (!connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			return fd;
		err = -errno;
		close(fd);
		if (err != -ECONNREFUSED || now_ms() >= deadline)
			return err;
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int vm_start(struct vm *vm, const char *dir, const struct vm_cfg *cfg)
{
	char a_smp[16], a_mem[16], a_memdev[160], a_append[512], a_qmp[160];
	char a_con[320];
	char *argv[MAX_ARGS];
	struct proc_spawn_opts po = { .argv = argv, .start_ms = START_MS,
				      .stdin_fd = -1 };
	unsigned int n = 0;
	int fd, rc;

	memset(vm, 0, sizeof(*vm));
	vm->pid = -1;
	vm->con = -1;
	vm->qmp = -1;
	vm->exit_status = -1;
	snprintf(vm->dir, sizeof(vm->dir), "%s", dir);
	snprintf(vm->con_path, sizeof(vm->con_path), "%s/console.sock", dir);
	snprintf(vm->qmp_path, sizeof(vm->qmp_path), "%s/qmp.sock", dir);
	snprintf(vm->log_path, sizeof(vm->log_path), "%s/console.log", dir);
	snprintf(vm->qemu_log, sizeof(vm->qemu_log), "%s/qemu.log", dir);

	snprintf(a_smp, sizeof(a_smp), "%u", cfg->cpus ? cfg->cpus : 2);
	snprintf(a_mem, sizeof(a_mem), "%uM", cfg->mem_mb);
	snprintf(a_append, sizeof(a_append), "console=ttyS0 quiet panic=-1 %s",
		 cfg->append ? cfg->append : "");
	snprintf(a_qmp, sizeof(a_qmp), "unix:%s,server=on,wait=off", vm->qmp_path);
	/* wait=on: the guest runs once the test listens to it. */
	snprintf(a_con, sizeof(a_con),
		 "socket,id=con0,path=%s,server=on,wait=on,logfile=%s",
		 vm->con_path, vm->log_path);

	argv[n++] = (char *)cfg->qemu;
	if (cfg->firmware) {
		argv[n++] = "-L";
		argv[n++] = (char *)cfg->firmware;
	}
	argv[n++] = "-accel";
	argv[n++] = "tcg";
	argv[n++] = "-smp";
	argv[n++] = a_smp;
	argv[n++] = "-m";
	argv[n++] = a_mem;
	argv[n++] = "-nodefaults";
	argv[n++] = "-no-user-config";
	argv[n++] = "-display";
	argv[n++] = "none";
	if (cfg->memdev) {
		snprintf(a_memdev, sizeof(a_memdev), "%s,id=mem,size=%uM",
			 cfg->memdev, cfg->mem_mb);
		argv[n++] = "-object";
		argv[n++] = a_memdev;
		argv[n++] = "-numa";
		argv[n++] = "node,memdev=mem";
	}
	argv[n++] = "-kernel";
	argv[n++] = (char *)cfg->kernel;
	argv[n++] = "-initrd";
	argv[n++] = (char *)cfg->initrd;
	argv[n++] = "-append";
	argv[n++] = a_append;
	/* QMP first: its socket listens before the console's waits. */
	argv[n++] = "-qmp";
	argv[n++] = a_qmp;
	argv[n++] = "-chardev";
	argv[n++] = a_con;
	argv[n++] = "-serial";
	argv[n++] = "chardev:con0";
	if (cfg->incoming) {
		argv[n++] = "-incoming";
		argv[n++] = (char *)cfg->incoming;
	}
	for (char *const *a = cfg->args; a && *a; a++) {
		if (n + 1 >= MAX_ARGS) {
			snprintf(vm->err, sizeof(vm->err), "too many arguments");
			return -E2BIG;
		}
		argv[n++] = *a;
	}
	argv[n] = NULL;

	/* A QEMU killed in @dir before left its sockets: waiting for the
	 * console's would find the dead one's. */
	unlink(vm->con_path);
	unlink(vm->qmp_path);
	fd = open(vm->qemu_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		snprintf(vm->err, sizeof(vm->err), "%s: %s", vm->qemu_log, strerror(errno));
		return rc;
	}
	po.sock = vm->con_path;
	po.out_fd = fd;
	po.env = cfg->env;
	rc = proc_spawn(&po, &vm->pid, vm->err, sizeof(vm->err));
	close(fd);
	if (rc)
		return rc;
	vm->con = connect_unix(vm->con_path);
	if (vm->con < 0) {
		rc = vm->con;
		snprintf(vm->err, sizeof(vm->err), "console: %s", strerror(-rc));
		vm_stop(vm);
		return rc;
	}
	return 0;
}

/* Read what the console has, waiting up to @ms. Return: 0; -ETIMEDOUT; -EPIPE. */
static int read_more(struct vm *vm, int ms)
{
	struct pollfd p = { .fd = vm->con, .events = POLLIN };
	ssize_t n;
	int rc;

	if (vm->con < 0)
		return -EPIPE;
	rc = poll(&p, 1, ms < 0 ? 0 : ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	if (rc == 0)
		return -ETIMEDOUT;
	if (vm->cap - vm->len < 4096) {
		size_t cap = vm->cap ? vm->cap * 2 : 1 << 16;
		char *out = realloc(vm->out, cap + 1);

		if (!out)
			return -ENOMEM;
		vm->out = out;
		vm->cap = cap;
	}
	n = read(vm->con, vm->out + vm->len, vm->cap - vm->len);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (n == 0) {
		close(vm->con);
		vm->con = -1;
		return -EPIPE;
	}
	vm->len += (size_t)n;
	vm->out[vm->len] = 0;
	return 0;
}

/* The next whole line at vm->pos, without \r\n, in @line; consumed. */
static bool next_line(struct vm *vm, char *line, size_t size)
{
	char *start, *end;
	size_t n;

	if (!vm->out || vm->pos >= vm->len)
		return false;
	start = vm->out + vm->pos;
	end = memchr(start, '\n', vm->len - vm->pos);
	if (!end)
		return false;
	vm->pos = (size_t)(end - vm->out) + 1;
	while (end > start && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	n = (size_t)(end - start);
	if (n >= size)
		n = size - 1;
	memcpy(line, start, n);
	line[n] = 0;
	return true;
}

int vm_expect(struct vm *vm, const char *prefix, int timeout_ms, char *line,
	      size_t size)
{
	int64_t deadline = now_ms() + timeout_ms;
	char buf[1024];
	int rc;

	for (;;) {
		while (next_line(vm, buf, sizeof(buf))) {
			/* Kernel messages may precede it on the line. */
			const char *p = strstr(buf, "SVQISO-");

			if (p && !strncmp(p, prefix, strlen(prefix))) {
				snprintf(line, size, "%s", p);
				return 0;
			}
			if (strstr(buf, "SVQISO-FAIL") || strstr(buf, "Kernel panic")) {
				snprintf(line, size, "%s", buf);
				snprintf(vm->err, sizeof(vm->err), "waiting for %.32s: %.200s",
					 prefix, buf);
				return -EIO;
			}
		}
		rc = read_more(vm, (int)(deadline - now_ms()));
		if (rc == -ETIMEDOUT || (!rc && now_ms() > deadline)) {
			snprintf(vm->err, sizeof(vm->err), "no %s in %d s", prefix,
				 timeout_ms / 1000);
			return -ETIMEDOUT;
		}
		if (rc == -EPIPE) {
			snprintf(vm->err, sizeof(vm->err),
				 "waiting for %s: QEMU closed the console", prefix);
			return -EPIPE;
		}
		if (rc) {
			snprintf(vm->err, sizeof(vm->err), "console: %s", strerror(-rc));
			return rc;
		}
	}
}

int vm_send(struct vm *vm, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(buf) - 1)
		return -EINVAL;
	buf[n++] = '\n';
	if (vm->con < 0)
		return -EPIPE;
	rc = write_all(vm->con, buf, (size_t)n);
	if (rc)
		snprintf(vm->err, sizeof(vm->err), "console: %s", strerror(-rc));
	return rc;
}

int vm_cmd(struct vm *vm, char *reply, size_t size, int timeout_ms,
	   const char *fmt, ...)
{
	char cmd[512], line[256];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = vm_expect(vm, "SVQISO-READY", timeout_ms, line, sizeof(line));
	if (!rc)
		rc = vm_send(vm, "%s", cmd);
	if (!rc)
		rc = vm_expect(vm, "SVQISO-OK", timeout_ms, reply, size);
	return rc;
}

/* One line from QMP into @buf (no newline). Return: 0; -errno. */
static int qmp_line(struct vm *vm, char *buf, size_t size)
{
	int64_t deadline = now_ms() + QMP_MS;
	size_t n = 0;

	for (;;) {
		struct pollfd p = { .fd = vm->qmp, .events = POLLIN };
		char c;
		ssize_t r;
		int rc = poll(&p, 1, (int)(deadline - now_ms()));

		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc < 0 ? -errno : -ETIMEDOUT;
		r = read(vm->qmp, &c, 1);
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		if (c == '\n') {
			buf[n] = 0;
			return 0;
		}
		if (n + 1 < size && c != '\r')
			buf[n++] = c;
	}
}

/* Send @cmd and read to its reply. Return: 0; -EREMOTEIO; -errno. */
static int qmp_exchange(struct vm *vm, const char *cmd, char *reply, size_t size)
{
	int rc;

	rc = write_all(vm->qmp, cmd, strlen(cmd));
	if (!rc)
		rc = write_all(vm->qmp, "\n", 1);
	while (!rc) {
		rc = qmp_line(vm, reply, size);
		if (rc)
			break;
		if (strstr(reply, "\"return\""))
			return 0;
		if (strstr(reply, "\"error\""))
			return -EREMOTEIO;
		/* Events ({"event": ...}) come between. */
	}
	return rc;
}

int vm_qmp(struct vm *vm, const char *cmd, char *reply, size_t size)
{
	char buf[1024];
	int rc;

	if (vm->qmp < 0) {
		vm->qmp = connect_unix(vm->qmp_path);
		if (vm->qmp < 0) {
			rc = vm->qmp;
			vm->qmp = -1;
			snprintf(vm->err, sizeof(vm->err), "QMP: %s", strerror(-rc));
			return rc;
		}
		rc = qmp_line(vm, buf, sizeof(buf));	/* the greeting */
		if (!rc)
			rc = qmp_exchange(vm, "{\"execute\": \"qmp_capabilities\"}",
					  buf, sizeof(buf));
		if (rc) {
			snprintf(vm->err, sizeof(vm->err), "QMP handshake: %.200s",
				 rc == -EREMOTEIO ? buf : strerror(-rc));
			close(vm->qmp);
			vm->qmp = -1;
			return rc;
		}
	}
	rc = qmp_exchange(vm, cmd, reply, size);
	if (rc)
		snprintf(vm->err, sizeof(vm->err), "QMP %s: %s", cmd,
			 rc == -EREMOTEIO ? reply : strerror(-rc));
	return rc;
}

int vm_wait_exit(struct vm *vm, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int status;

	while (vm->pid > 0) {
		if (waitpid(vm->pid, &status, WNOHANG) == vm->pid) {
			vm->exit_status = status;
			vm->pid = -1;
			return 0;
		}
		if (now_ms() > deadline) {
			snprintf(vm->err, sizeof(vm->err), "QEMU did not exit in %d s",
				 timeout_ms / 1000);
			return -ETIMEDOUT;
		}
		/* Keep the console drained: QEMU blocks on a full socket. */
		if (read_more(vm, 20) == -EPIPE)
			proc_sleep_ms(20);
	}
	return 0;
}

void vm_stop(struct vm *vm)
{
	if (vm->pid > 0)
		vm->exit_status = proc_stop(&vm->pid, STOP_MS);
	if (vm->con >= 0)
		close(vm->con);
	if (vm->qmp >= 0)
		close(vm->qmp);
	vm->con = vm->qmp = -1;
	free(vm->out);
	vm->out = NULL;
	vm->len = vm->cap = vm->pos = 0;
}

void vm_dump(struct vm *vm, FILE *f)
{
	char buf[4096];
	size_t from = vm->len > 6000 ? vm->len - 6000 : 0;
	ssize_t n;
	int fd;

	fprintf(f, "--- guest console (last %zu bytes) ---\n%s\n",
		vm->len - from, vm->out ? vm->out + from : "");
	fd = open(vm->qemu_log, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	fprintf(f, "--- QEMU's output ---\n");
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	fprintf(f, "%s\n---\n", buf);
}

bool vm_value(const char *line, const char *key, char *val, size_t size)
{
	size_t k = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key))) {
		if ((p == line || p[-1] == ' ') && p[k] == '=') {
			size_t n = strcspn(p + k + 1, " ");

			if (n >= size)
				n = size - 1;
			memcpy(val, p + k + 1, n);
			val[n] = 0;
			return true;
		}
		p += k;
	}
	val[0] = 0;
	return false;
}

int vm_count(pid_t pid, const char *what)
{
	char path[64], line[512];
	bool memfd = !strcmp(what, "memfd");
	struct dirent *d;
	int n = 0;
	FILE *f;
	DIR *dp;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid,
		 memfd ? "maps" : what);
	if (!strcmp(what, "fd")) {
		dp = opendir(path);
		if (!dp)
			return -errno;
		while ((d = readdir(dp)))
			n += d->d_name[0] != '.';
		closedir(dp);
		return n;
	}
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		n += strchr(line, '\n') != NULL &&
		     (!memfd || strstr(line, "/memfd:"));
	fclose(f);
	return n;
}
