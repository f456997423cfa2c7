/* SPDX-License-Identifier: MIT */
/*
 * svqiso-proxy's core: one vhost-user device, a VMM on one side and the
 * unmodified backend on the other, with the engine (<svqiso/vhost.h>)
 * between them. The VMM shares guest RAM with the proxy as it would with
 * any backend; the backend only ever gets the engine's isolated regions.
 *
 * Everything runs on the calling thread, in one epoll loop: the VMM's
 * messages, guest kicks, backend calls, the backend's hang-up and the
 * reconnect timer, and what the caller adds with proxy_watch() (main.c: its
 * signalfd and stats timer).
 *
 * Every message from the VMM is checked before anything acts on it (sizes,
 * fd counts, indexes, region tables, ring addresses): a bad one gets a log
 * line naming the request and what is wrong with it, and the session is
 * closed; the proxy goes on serving the next connection.
 */
#ifndef SVQISO_PROXY_H
#define SVQISO_PROXY_H

#include <stdint.h>
#include <stdio.h>
#include <svqiso/svqiso.h>

/* GET_MAX_MEM_SLOTS: the guest RAM regions a VMM may add. */
#define PROXY_MEM_SLOTS		32
/* Largest dirty log taken: 1 GiB covers 32 TiB of guest RAM. */
#define PROXY_LOG_MAX		(1ull << 30)
#define PROXY_TIMEOUT_MS	5000
#define PROXY_RECONNECT_MS	200
/* A spin looks this often whether anything else wants the loop (the VMM's
 * messages, the backend's hang-up, the timer, a watch), and ends if so. */
#define PROXY_SPIN_CHECK_NS	200000ull
/* How long a malformed message may take to arrive in full. */
#define PROXY_MSG_TIMEOUT_MS	1000

struct proxy_opts {
	const char *backend;		/* the backend's unix socket */
	const char *name;		/* device name in log lines; NULL:
					 * "svqiso-proxy" */
	int timeout_ms;			/* per backend reply, queue drain and
					 * stop; 0: PROXY_TIMEOUT_MS */
	int reconnect_ms;		/* backend reconnect attempts while it
					 * is gone; 0: PROXY_RECONNECT_MS */
	int connect_ms;			/* a new VMM session waits this long
					 * for the backend; 0: timeout_ms */
	unsigned int max_queues;	/* queue indexes the VMM may use; 0:
					 * twice the backend's GET_QUEUE_NUM
					 * (a net backend counts pairs), or 8
					 * without MQ */
	uint8_t shadow_layout;		/* enum svqiso_layout */
	uint8_t copy;			/* enum svqiso_copy_kind */
	uint32_t vhost_flags;		/* SVQISO_VHOST_F_* */
	uint64_t pool_size;		/* bounce arena per queue; 0: default */
	bool no_dirty_log;		/* testing only: take the VMM's dirty
					 * log, write nothing into it */
	uint64_t spin_ns;		/* after a wake-up with requests in
					 * flight, poll the rings (both peers'
					 * signals off) until this long passes
					 * without progress; the window adapts
					 * below it (see <svqiso/loop.h>);
					 * 0: sleep at once */
	svqiso_log_fn log;		/* NULL: silent */
	void *log_ctx;
};

struct proxy;

typedef void (*proxy_watch_fn)(struct proxy *p, int fd, void *ctx);

int proxy_new(const struct proxy_opts *opts, struct proxy **out);
void proxy_free(struct proxy *p);

/*
 * proxy_serve() - serve one VMM session over @fd, a connected stream socket
 * (the proxy owns it from the call on), until it ends.
 *
 * Return: 0 (the VMM hung up), -EPROTO (a bad message: logged, session
 * closed), -EINTR (proxy_stop()), -ECONNREFUSED and the like (the backend
 * could not be reached), -ENOMEM.
 */
int proxy_serve(struct proxy *p, int fd);

/*
 * proxy_run() - accept VMM sessions on @listen_fd, one at a time (another
 * connection while one is served is closed with a log line), until
 * proxy_stop(). Return: 0; -errno from epoll.
 */
int proxy_run(struct proxy *p, int listen_fd);

/* proxy_stop() - make proxy_run() and proxy_serve() return (from a
 * watch callback). */
void proxy_stop(struct proxy *p);

/* proxy_watch() - call @fn when @fd is readable (level-triggered). */
int proxy_watch(struct proxy *p, int fd, proxy_watch_fn fn, void *ctx);

/* proxy_stats() - one JSON object on one line: the device, the session,
 * and each queue's counters. */
void proxy_stats(struct proxy *p, FILE *f);

#endif /* SVQISO_PROXY_H */
