/* SPDX-License-Identifier: MIT */
/*
 * Counts per source (a 64-bit key: preauth_source()), shared by every loop
 * under one mutex: an open-addressing table (linear probing, deletion by
 * shifting entries back, so no tombstones), sized for `capacity` keys in
 * use at once and never fuller than half.
 */
#ifndef SOCKSIFY_SERVER_SRCTAB_H
#define SOCKSIFY_SERVER_SRCTAB_H

#include <stdbool.h>
#include <stdint.h>

/* Returns 0 or -ENOMEM. */
int srctab_init(unsigned capacity);
/* Counts one more for `key` unless it has `limit` already. */
bool srctab_take(uint64_t key, unsigned limit);
/* One less for `key` (nothing when it has none). */
void srctab_put(uint64_t key);
/* The count of `key` (for tests). */
unsigned srctab_count(uint64_t key);

#endif
