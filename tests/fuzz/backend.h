/* SPDX-License-Identifier: MIT */
/*
 * A vhost-user backend for fuzz targets, on a thread of the fuzzing process,
 * listening on a unix socket in a temporary directory (removed at exit).
 * It serves one connection after the other, honestly: the features,
 * protocol features, queue count and memory slots it is configured with;
 * every memory region it is given mapped from its fd; every request made
 * available on a split shadow ring completed (nothing written, length 0)
 * as soon as it is kicked or seen, enabled or not, so that no queue stop
 * waits; GET_VRING_BASE answered with where it stopped. Nothing it does
 * allocates memory (the targets' leak checks run per input).
 *
 * On demand it misbehaves once, on the first connection made after
 * fzb_configure(): a nack, a reply of the wrong size, a hang-up, or a vring
 * base that lies, on the nth message of a request.
 */
#ifndef SVQ_FUZZ_BACKEND_H
#define SVQ_FUZZ_BACKEND_H

#include <stdint.h>

enum fzb_fault {
	FZB_NONE,
	FZB_NACK,	/* acks the request with 1 */
	FZB_BAD_REPLY,	/* answers it with a reply 4 bytes too long */
	FZB_HANGUP,	/* closes the connection on it */
	FZB_LIE_BASE,	/* GET_VRING_BASE: another base */
	FZB_NR
};

struct fzb_cfg {
	uint64_t features;	/* GET_FEATURES */
	uint64_t protocol;	/* GET_PROTOCOL_FEATURES */
	uint64_t queue_num;	/* GET_QUEUE_NUM */
	uint64_t mem_slots;	/* GET_MAX_MEM_SLOTS */
	enum fzb_fault fault;
	uint32_t fault_request;	/* 0: any request */
	unsigned int fault_nth;	/* on the nth message that matches, from 0 */
	uint32_t lie;		/* FZB_LIE_BASE's base */
};

/* fzb_start() - start it (once per process); its socket's path. */
const char *fzb_start(void);

/* fzb_configure() - what the next connections get. Call it idle. */
void fzb_configure(const struct fzb_cfg *cfg);

/* fzb_wait_idle() - return once every connection made so far is served to
 * its end (the peer closed it); aborts after 20 s. */
void fzb_wait_idle(void);

#endif /* SVQ_FUZZ_BACKEND_H */
