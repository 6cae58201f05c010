/* SPDX-License-Identifier: MIT */
/*
 * One log line, formatted the same way by the shim and the server:
 * "PREFIX: message\n", cut to fit, written with one write() so lines from
 * several processes do not interleave; errno is left as it was.
 */
#ifndef SOCKSIFY_LOGLINE_H
#define SOCKSIFY_LOGLINE_H

#include <stdarg.h>
#include <sys/types.h>

/* Writes "prefix" + fmt + "\n" to fd with write_fn (NULL: write()). */
void logline_write(int fd, ssize_t (*write_fn)(int, const void *, size_t),
                   const char *prefix, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));

#endif
