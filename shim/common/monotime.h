/* SPDX-License-Identifier: MIT */
/*
 * The monotonic clock in the units the code needs, shared by the shim and
 * the server.
 */
#ifndef SOCKSIFY_MONOTIME_H
#define SOCKSIFY_MONOTIME_H

#include <time.h>

static inline long long monotime_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline long long monotime_ms(void)
{
	return monotime_us() / 1000;
}

#endif
