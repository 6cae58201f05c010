/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the fuzz targets (fuzz_proto.c, fuzz_config.c,
 * fuzz_exeprobe.c) and their replay driver (replay_main.c): CHECK(), which
 * abort()s with the target's name, file and line, and buffers that end right
 * before a PROT_NONE page, so that reading one byte past an input faults.
 */
#ifndef FUZZ_GUARD_H
#define FUZZ_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Each target defines it: "fuzz_proto", "fuzz_config"; it starts every message. */
extern const char fuzz_target_name[];

/* Inputs longer than this are cut (the replay driver reads no more of a file). */
#define FUZZ_INPUT_MAX (16 * 4096)

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "%s: %s:%d: check failed: %s\n",                 \
			        fuzz_target_name, __FILE__, __LINE__, #cond);            \
			abort();                                                         \
		}                                                                        \
	} while (0)

/* A span of len bytes followed by a guard page, mapped on first use. */
struct guarded {
	uint8_t *span;
	size_t len;
};

/* The last size bytes of g's span (of len bytes, which the first call sets). */
static inline uint8_t *guarded_end(struct guarded *g, size_t len, size_t size)
{
	if (!g->span) {
		size_t page = (size_t)sysconf(_SC_PAGESIZE);
		void *p = mmap(NULL, len + page, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(p != MAP_FAILED);
		CHECK(mprotect((uint8_t *)p + len, page, PROT_NONE) == 0);
		g->span = p;
		g->len = len;
	}
	CHECK(size <= g->len);
	return g->span + g->len - size;
}

/* Copies data to the very end of g's span; returns where it now starts. */
static inline uint8_t *guarded_copy(struct guarded *g, size_t len, const uint8_t *data,
                                    size_t size)
{
	uint8_t *dst = guarded_end(g, len, size);

	if (size)
		memcpy(dst, data, size);
	return dst;
}

#endif
