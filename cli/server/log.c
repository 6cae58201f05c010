/* SPDX-License-Identifier: MIT */
/*
 * Logging for socksify-server. Messages are formatted into one buffer and
 * written with a single write(2), so lines from a log shared with other
 * processes do not interleave.
 */
#include "log.h"

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
	char line[1024];
	int saved_errno = errno;

	if (!log_enabled(level))
		return;
	int n = snprintf(line, sizeof(line), "socksify-server: ");
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	ssize_t r = write(STDERR_FILENO, line, len);
	(void)r;
	errno = saved_errno;
}
