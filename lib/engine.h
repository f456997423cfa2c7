/* SPDX-License-Identifier: MIT */
/*
 * The vhost engine's internals for the adapters built on it inside the
 * library (vu.c and its relay thread): they reach a queue's svq and
 * eventfds to run it on a loop of their own.
 */
#ifndef SVQ_ENGINE_H
#define SVQ_ENGINE_H

#include <svqiso/vhost.h>
#include "internal.h"

struct svq_vh_fds {
	int kick;		/* the backend's kick eventfd (we write it) */
	int call;		/* the backend's call eventfd (we read it) */
	int guest_call;		/* the guest's interrupt eventfd; -1: none */
};

/* Queue @idx's svq; NULL if it has none. */
struct svqiso_svq *svq_vh_svq(const struct svqiso_vhost *vh, unsigned int idx);

/* Queue @idx's eventfds. Return: 0; -ENOENT (never used). */
int svq_vh_fds(const struct svqiso_vhost *vh, unsigned int idx,
	       struct svq_vh_fds *fds);

/* The guest memory map. */
struct svqiso_mem *svq_vh_mem(const struct svqiso_vhost *vh);

#endif /* SVQ_ENGINE_H */
