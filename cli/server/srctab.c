/* SPDX-License-Identifier: MIT */
/*
 * The per-source counts (see srctab.h).
 */
#include "srctab.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

struct source_count {
	uint64_t key;
	uint32_t count; /* 0: a free slot */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct source_count *table;
static size_t mask; /* table size - 1, a power of two */

int srctab_init(unsigned capacity)
{
	size_t want = 2 * (size_t)capacity, size = 16;
	while (size < want)
		size *= 2;
	free(table);
	table = calloc(size, sizeof(*table));
	if (!table)
		return -ENOMEM;
	mask = size - 1;
	return 0;
}

static size_t slot_of(uint64_t key)
{
	key ^= key >> 33; /* murmur3's finalizer */
	key *= 0xff51afd7ed558ccdULL;
	key ^= key >> 33;
	return (size_t)key & mask;
}

/* The slot holding `key`, or the free slot where it would go. */
static size_t find(uint64_t key)
{
	size_t i = slot_of(key);
	while (table[i].count && table[i].key != key)
		i = (i + 1) & mask;
	return i;
}

bool srctab_take(uint64_t key, unsigned limit)
{
	pthread_mutex_lock(&lock);
	size_t i = find(key);
	bool ok = table[i].count < limit;
	if (ok) {
		table[i].key = key;
		table[i].count++;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

/* Empties slot i, moving back the entries after it that probed past it. */
static void remove_slot(size_t i)
{
	for (size_t j = i;;) {
		j = (j + 1) & mask;
		if (!table[j].count)
			break;
		size_t home = slot_of(table[j].key);
		/* Entry j stays when its home lies cyclically in (i, j]. */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		table[i] = table[j];
		i = j;
	}
	table[i].count = 0;
}

void srctab_put(uint64_t key)
{
	pthread_mutex_lock(&lock);
	size_t i = find(key);
	if (table[i].count && --table[i].count == 0)
		remove_slot(i);
	pthread_mutex_unlock(&lock);
}

unsigned srctab_count(uint64_t key)
{
	pthread_mutex_lock(&lock);
	unsigned n = table[find(key)].count;
	pthread_mutex_unlock(&lock);
	return n;
}
