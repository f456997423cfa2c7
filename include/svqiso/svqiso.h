/* SPDX-License-Identifier: MIT */
/* Umbrella header: include this one. */
#ifndef SVQISO_SVQISO_H
#define SVQISO_SVQISO_H

#include <svqiso/version.h>
#include <svqiso/common.h>
#include <svqiso/mem.h>

#endif /* SVQISO_SVQISO_H */
