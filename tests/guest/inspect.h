/* SPDX-License-Identifier: MIT */
/*
 * The isolation inspector: what another process can reach, read from
 * /proc/<pid>/fd and /proc/<pid>/maps. Used by the isolation harness, the
 * qemu-storage-daemon tests and the demo.
 */
#ifndef SVQ_INSPECT_H
#define SVQ_INSPECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct inspect_report {
	unsigned int fds;		/* open fds of the process */
	unsigned int fd_guest;		/* fds that are guest RAM */
	unsigned int fd_memfd;		/* fds that are memfds (any) */
	unsigned int fd_memfd_unknown;	/* memfds that are no isolated region */
	unsigned int maps;		/* mapping lines */
	unsigned int map_guest;		/* mappings of guest RAM */
	unsigned int map_memfd_unknown;	/* memfd mappings of no isolated region */
	uint64_t map_memfd_bytes;	/* bytes of memfd mappings */
	char detail[512];		/* the first few findings */
};

/*
 * inspect_process() - list what process @pid can reach: every fd (through
 * /proc/pid/fd, stat() of each) and every mapping (/proc/pid/maps, device and
 * inode fields), compared with guest RAM (@guest) and the isolated regions
 * (@allowed, @nallowed stat results of their fds).
 * Return: 0; -errno if /proc could not be read.
 */
int inspect_process(pid_t pid, const struct stat *guest, const struct stat *allowed,
		    unsigned int nallowed, struct inspect_report *r);

/* Whether @r shows guest RAM anywhere in the process. */
static inline bool inspect_leaks(const struct inspect_report *r)
{
	return r->fd_guest || r->map_guest;
}

#endif /* SVQ_INSPECT_H */
