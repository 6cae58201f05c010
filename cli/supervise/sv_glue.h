/* SPDX-License-Identifier: MIT */
/* The supervisor's stand-ins for the shim's init.c (glue.c). */
#ifndef SOCKSIFY_CLI_SV_GLUE_H
#define SOCKSIFY_CLI_SV_GLUE_H

#include "config.h"

/* The configuration for the shim's core and its real_* pointers: call once,
 * before any other thread runs. */
void sv_glue_init(const struct config *cfg);

#endif
