/* SPDX-License-Identifier: MIT */
/*
 * One log line (see logline.h).
 */
#include "logline.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

void logline_write(int fd, ssize_t (*write_fn)(int, const void *, size_t),
                   const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	int saved = errno;
	int n = snprintf(line, sizeof(line), "%s", prefix);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		n = 0;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	ssize_t r = (write_fn ? write_fn : write)(fd, line, len);
	(void)r;
	errno = saved;
}
