/* SPDX-License-Identifier: MIT */
/*
 * A tiny TAP (Test Anything Protocol) producer for the unit tests: each check
 * prints "ok N - description" or "not ok N - description", diagnostics go out
 * as "# ..." lines and tap_done() prints the plan "1..N" at the end, so no
 * test count is kept by hand. Meant to be included by one test program only.
 */
#ifndef SOCKSIFY_TESTS_TAP_H
#define SOCKSIFY_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>

static unsigned tap_count;
static unsigned tap_failures;

/* Line-buffers stdout so that a crash still shows the checks before it. */
static inline void tap_init(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

__attribute__((format(printf, 1, 0))) static inline void tap_vdiag(const char *fmt,
                                                                   va_list ap)
{
	fputs("# ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
}

__attribute__((format(printf, 1, 2))) static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vdiag(fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 0))) static inline int tap_vok(int cond, const char *fmt,
                                                                va_list ap)
{
	tap_count++;
	if (!cond)
		tap_failures++;
	printf("%sok %u - ", cond ? "" : "not ", tap_count);
	vprintf(fmt, ap);
	putchar('\n');
	return cond;
}

/* One check: passes when cond is non-zero. Returns cond. */
__attribute__((format(printf, 2, 3))) static inline int tap_ok(int cond, const char *fmt,
                                                               ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vok(cond, fmt, ap);
	va_end(ap);
	return cond;
}

/* One check that two integers are equal; shows both when they are not. */
__attribute__((format(printf, 3, 4))) static inline int
tap_is(long long got, long long want, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vok(got == want, fmt, ap);
	va_end(ap);
	if (got != want)
		tap_diag("got %lld, want %lld", got, want);
	return got == want;
}

/* Prints the plan and returns the exit status: 0 when every check passed. */
static inline int tap_done(void)
{
	printf("1..%u\n", tap_count);
	if (tap_failures)
		tap_diag("%u of %u checks failed", tap_failures, tap_count);
	fflush(stdout);
	return tap_failures ? 1 : 0;
}

#endif
