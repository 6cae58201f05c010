/* SPDX-License-Identifier: MIT */
/*
 * Stand-ins for what init.c gives the shim, so that unit tests can link the
 * shim's static core (policy.c, tcp.c, log.c: shimcore_dep) without the rest
 * of the library: shim_config, shim_config_broken, shim_depth and every
 * real_* pointer, aimed at the functions the test itself would call (libc's,
 * or a sanitizer's interceptor).
 */
#ifndef SOCKSIFY_TESTS_SHIM_SUPPORT_H
#define SOCKSIFY_TESTS_SHIM_SUPPORT_H

#include "shim.h"

/* Points the real_* pointers at the next definitions and gives shim_config
 * the defaults; shim_config_broken is false. Call it first. */
void shim_support_init(void);

#endif
