/* SPDX-License-Identifier: MIT */
/*
 * The shim's log: quiet by default. Errors (a broken configuration, a proxy
 * that cannot be used) go to stderr or the configured log file; log_level
 * info adds one line per proxied connection, debug every decision.
 * Never writes to stdout.
 */
#ifndef SOCKSIFY_SHIM_LOG_H
#define SOCKSIFY_SHIM_LOG_H

#include "config.h"

enum shim_log_level { SHIM_LOG_ERROR = 0, SHIM_LOG_INFO = 1, SHIM_LOG_DEBUG = 2 };

void shim_log_init(const struct config *cfg);
int shim_log_enabled(int level);
void shim_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
