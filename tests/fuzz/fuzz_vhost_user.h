/* SPDX-License-Identifier: MIT */
/*
 * What the vhost-user targets (fuzz_vu.c, fuzz_proxy_vmm.c) share: the
 * models' own view of the protocol, kept apart from the codec they check.
 */
#ifndef SVQISO_FUZZ_VHOST_USER_H
#define SVQISO_FUZZ_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "vhost_user.h"

/* Whether @request has a reply of its own (REPLY_ACK aside). */
static inline bool fz_own_reply(uint32_t request)
{
	switch (request) {
	case SVQ_VU_GET_FEATURES:
	case SVQ_VU_GET_PROTOCOL_FEATURES:
	case SVQ_VU_GET_QUEUE_NUM:
	case SVQ_VU_GET_MAX_MEM_SLOTS:
	case SVQ_VU_GET_VRING_BASE:
	case SVQ_VU_GET_CONFIG:
	case SVQ_VU_SET_LOG_BASE:	/* with LOG_SHMFD, answered */
		return true;
	}
	return false;
}

#endif /* SVQISO_FUZZ_VHOST_USER_H */
