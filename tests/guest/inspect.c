/* SPDX-License-Identifier: MIT */
/*
 * The isolation inspector: what another process can reach, from /proc.
 *
 * Files are compared by (st_dev, st_ino), not by name: a memfd's name is the
 * creator's choice, its inode is not. /proc/pid/maps prints the device as
 * hex major:minor and the inode in decimal, the same numbers stat() reports.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/sysmacros.h>

#include "inspect.h"

static void note(struct inspect_report *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void note(struct inspect_report *r, const char *fmt, ...)
{
	size_t used = strlen(r->detail);
	va_list ap;

	if (used + 2 >= sizeof(r->detail))
		return;
	if (used)
		r->detail[used++] = ';', r->detail[used++] = ' ', r->detail[used] = 0;
	va_start(ap, fmt);
	vsnprintf(r->detail + used, sizeof(r->detail) - used, fmt, ap);
	va_end(ap);
}

static bool same_file(dev_t dev, ino_t ino, const struct stat *s)
{
	return s->st_dev == dev && s->st_ino == ino;
}

static bool allowed_file(dev_t dev, ino_t ino, const struct stat *allowed,
			 unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (same_file(dev, ino, &allowed[i]))
			return true;
	return false;
}

static int inspect_fds(pid_t pid, const struct stat *guest, const struct stat *allowed,
		       unsigned int nallowed, struct inspect_report *r)
{
	char dir[64], path[PATH_MAX], link[PATH_MAX];
	struct dirent *d;
	struct stat st;
	ssize_t n;
	DIR *dp;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	dp = opendir(dir);
	if (!dp)
		return -errno;
	while ((d = readdir(dp))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		if (stat(path, &st))
			continue;	/* closed meanwhile */
		r->fds++;
		n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = 0;
		if (same_file(st.st_dev, st.st_ino, guest)) {
			r->fd_guest++;
			note(r, "fd %s is guest RAM (%s)", d->d_name, link);
		}
		if (!strncmp(link, "/memfd:", 7)) {
			r->fd_memfd++;
			if (!allowed_file(st.st_dev, st.st_ino, allowed, nallowed)) {
				r->fd_memfd_unknown++;
				note(r, "fd %s is a memfd of no isolated region (%s)",
				     d->d_name, link);
			}
		}
	}
	closedir(dp);
	return 0;
}

static int inspect_maps(pid_t pid, const struct stat *guest, const struct stat *allowed,
			unsigned int nallowed, struct inspect_report *r)
{
	char path[64], line[PATH_MAX + 256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, off, ino;
		unsigned int maj, min;
		char perms[8], name[PATH_MAX];
		dev_t dev;
		int k;

		name[0] = 0;
		k = sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %4095[^\n]",
			   &start, &end, perms, &off, &maj, &min, &ino, name);
		if (k < 7)
			continue;
		r->maps++;
		dev = makedev(maj, min);
		if (ino && same_file(dev, (ino_t)ino, guest)) {
			r->map_guest++;
			note(r, "mapping %llx-%llx is guest RAM (%s)", start, end, name);
		}
		if (!strncmp(name, "/memfd:", 7)) {
			r->map_memfd_bytes += end - start;
			if (!allowed_file(dev, (ino_t)ino, allowed, nallowed)) {
				r->map_memfd_unknown++;
				note(r, "mapping %llx-%llx is a memfd of no isolated region (%s)",
				     start, end, name);
			}
		}
	}
	fclose(f);
	return 0;
}

int inspect_process(pid_t pid, const struct stat *guest, const struct stat *allowed,
		    unsigned int nallowed, struct inspect_report *r)
{
	int err;

	memset(r, 0, sizeof(*r));
	err = inspect_fds(pid, guest, allowed, nallowed, r);
	if (!err)
		err = inspect_maps(pid, guest, allowed, nallowed, r);
	return err;
}
