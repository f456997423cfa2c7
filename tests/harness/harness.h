/* SPDX-License-Identifier: MIT */
/*
 * Test side of the isolation harness: the backend process (spawn, protocol
 * client) and the isolation inspector (what the backend can reach).
 */
#ifndef SVQ_HARNESS_HARNESS_H
#define SVQ_HARNESS_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <svqiso/iso.h>
#include "proto.h"

/* ---- The backend process ---- */

struct peer {
	pid_t pid;
	int sock;		/* our end; close-on-exec */
	uint64_t seq;
	pthread_mutex_t lock;	/* region callbacks run on the loop thread */
	int mode;		/* enum hb_mode it was started with */
	uint64_t adds, dels;	/* region messages acked with 0 */
	int last_error;		/* first failed request's -errno */
};

struct peer_opts {
	int mode;		/* enum hb_mode */
	uint64_t after;		/* chains completed honestly before misbehaving */
	uint64_t seed;
	uint16_t max_indirect;	/* 0: the ring size */
	int leak_fd;		/* -1, or an fd left open across exec on purpose */
};

/*
 * peer_spawn() - fork and exec the backend (path in $SVQ_BACKEND) with only
 * its end of a socketpair (and @o->leak_fd, for the negative control).
 * Return: 0; -ENOENT if SVQ_BACKEND is not set; -errno.
 */
int peer_spawn(struct peer *p, const struct peer_opts *o);

/*
 * peer_stop() - close the socket and reap the backend (SIGKILL after 10 s).
 * Return: its wait status, or -1 if it was not running.
 */
int peer_stop(struct peer *p);

/* Send @m (type set), wait for the ack. Return: the ack's result or -errno. */
int peer_call(struct peer *p, struct hb_msg *m, const int *fds, unsigned int nfds,
	      struct hb_msg *ack);

int peer_region_add(struct peer *p, const struct svqiso_region *r);
int peer_region_del(struct peer *p, uint64_t iova);
int peer_stats(struct peer *p, struct hb_stats *st);

/* svqiso_region_fn callbacks with a struct peer as ctx. */
int peer_region_add_cb(void *ctx, const struct svqiso_region *r);
int peer_region_del_cb(void *ctx, const struct svqiso_region *r);

#include "inspect.h"

#endif /* SVQ_HARNESS_HARNESS_H */
