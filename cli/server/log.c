/* SPDX-License-Identifier: MIT */
/*
 * Logging for socksify-server. Messages are formatted into one buffer and
 * written with a single write(2), so lines from a log shared with other
 * processes do not interleave.
 */
#include "log.h"
#include "logline.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static int log_level = LOG_INFO;

void log_set_level(int level)
{
	log_level = level;
}

int log_enabled(int level)
{
	return level <= log_level;
}

void log_msg(int level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	logline_write(STDERR_FILENO, NULL, "socksify-server: ", fmt, ap);
	va_end(ap);
}
