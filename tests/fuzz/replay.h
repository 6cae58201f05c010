/* SPDX-License-Identifier: MIT */
/*
 * What a fuzz target gives the replay and mutation driver (replay_main.c),
 * which is its main() where libFuzzer is not at hand. A libFuzzer build leaves
 * replay_main.c out, and these definitions go unused.
 */
#ifndef FUZZ_REPLAY_H
#define FUZZ_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Set by each LLVMFuzzerTestOneInput() call: how many parts of the input the
 * target took (decoded, parsed). The driver keeps a mutation that got any as a
 * starting point for further mutations.
 */
extern int fuzz_last_good;

/* One random edit of an input. */
enum fuzz_edit {
	FUZZ_INSERT_BYTE,     /* an interesting or a random byte */
	FUZZ_APPEND_ENTRY,    /* part of another corpus entry */
	FUZZ_INSERT_TOKEN,    /* one of the tokens */
	FUZZ_FLIP_BIT,        /* of one byte */
	FUZZ_SET_BYTE,        /* to an interesting value */
	FUZZ_DELETE_CHUNK,    /* from a random place to at most the end */
	FUZZ_TRUNCATE,        /* to a random shorter length */
	FUZZ_DUPLICATE_CHUNK, /* in place */
};

/* How the driver mutates a target's inputs. */
struct fuzz_mutator {
	size_t max_len;              /* longest mutated input */
	const enum fuzz_edit *edits; /* each entry as likely (an edit may stand twice) */
	size_t nedits;
	size_t nedits_empty; /* the first this many edits also apply to an empty input */
	const uint8_t *interesting;
	size_t ninteresting;
	const char *const *tokens;
	size_t ntokens;
	bool report_kept; /* the summary line also counts the mutations kept */
};

/* Each target defines it. */
extern const struct fuzz_mutator fuzz_mutator;

#endif
