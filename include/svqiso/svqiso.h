/* SPDX-License-Identifier: MIT */
/* Umbrella header: include this one. */
#ifndef SVQISO_SVQISO_H
#define SVQISO_SVQISO_H

#include <svqiso/version.h>
#include <svqiso/common.h>
#include <svqiso/mem.h>
#include <svqiso/copy.h>
#include <svqiso/iso.h>
#include <svqiso/pool.h>
#include <svqiso/svq.h>
#include <svqiso/loop.h>
#include <svqiso/vhost.h>
#include <svqiso/vu.h>

#endif /* SVQISO_SVQISO_H */
