/* SPDX-License-Identifier: MIT */
/*
 * socksify-server's per-source counts (cli/server/srctab.c) against a plain
 * array: random takes and puts on keys that collide in a small table, so
 * that deletion has entries to shift back, wrapping around its end.
 */
#include <stdint.h>
#include <stdlib.h>

#include "srctab.h"
#include "tap.h"

enum { MAX_KEYS = 40, LIMIT = 3, ROUNDS = 200000 };

/* nkeys random keys in a table for `capacity`: random takes and puts,
 * checked against want[] every 100 operations. */
static void run(unsigned capacity, int nkeys)
{
	uint64_t keys[MAX_KEYS];
	unsigned want[MAX_KEYS] = {0};
	int bad = 0, refused = 0;

	tap_ok(srctab_init(capacity) == 0, "srctab_init(%u)", capacity);
	for (int i = 0; i < nkeys; i++)
		keys[i] =
		        (i % 2 ? 0xff00000000000000ULL : 0) | (uint64_t)random() << 8 | i;
	for (int r = 0; r < ROUNDS; r++) {
		int k = (int)(random() % nkeys);
		if (random() % 2) {
			bool ok = srctab_take(keys[k], LIMIT);
			bad += ok != (want[k] < LIMIT);
			refused += !ok;
			want[k] += ok;
		} else {
			srctab_put(keys[k]);
			want[k] -= want[k] > 0;
		}
		if (r % 100 == 0)
			for (int i = 0; i < nkeys; i++)
				bad += srctab_count(keys[i]) != want[i];
	}
	tap_ok(bad == 0,
	       "%d keys, room for %u: %d mismatches with the reference over %d "
	       "random operations",
	       nkeys, capacity, bad, ROUNDS);
	tap_ok(refused > 0, "the limit refused %d takes", refused);
	for (int i = 0; i < nkeys; i++)
		while (want[i]--)
			srctab_put(keys[i]);
	bad = 0;
	for (int i = 0; i < nkeys; i++)
		bad += srctab_count(keys[i]) != 0;
	tap_ok(bad == 0, "every count back to 0 (%d not)", bad);
}

int main(void)
{
	tap_init();
	srandom(12345);
	/* 8 keys in 16 slots: runs wrap around the table's end all the time */
	run(8, 8);
	/* 40 in 128: longer runs */
	run(64, 40);
	tap_ok(srctab_take(7, 1) && !srctab_take(7, 1),
	       "limit 1: one take, then refused");
	srctab_put(7);
	srctab_put(7); /* one too many: nothing */
	tap_ok(srctab_count(7) == 0 && srctab_take(7, 1),
	       "a put with none left changes nothing");
	return tap_done();
}
