/* SPDX-License-Identifier: MIT */
/*
 * Replay and mutation driver for the fuzz targets (fuzz_proto.c, fuzz_config.c,
 * fuzz_exeprobe.c) where libFuzzer is not at hand: linked with a target, it is
 * that target's main(), so that any compiler runs it as a test (see
 * meson.build).
 *
 * It runs every file named on the command line, and every regular file of a
 * directory named there (by name order), through LLVMFuzzerTestOneInput(),
 * then FUZZ_ITERATIONS (default 100000) deterministic random mutations of them
 * (xorshift64 seeded by FUZZ_SEED, default 1), as the target's fuzz_mutator
 * describes. Mutations the target takes (fuzz_last_good) join the pool that
 * later ones start from. It prints one summary line,
 *   fuzz_NAME: N inputs, M mutations, [K kept, ]ok
 * and exits 0; 2 when a path cannot be read or an environment variable is not
 * a number. A failed check in the target abort()s.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "guard.h"
#include "replay.h"

#define POOL_MAX 4096 /* corpus entries kept, seeds and finds */

struct input {
	size_t len;
	uint8_t *data;
};

struct pool {
	struct input *v;
	size_t n, cap, seeds;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state; /* xorshift64 */
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static size_t below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static void pool_add(struct pool *p, const uint8_t *data, size_t len)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 64;
		p->v = realloc(p->v, p->cap * sizeof(*p->v));
		CHECK(p->v);
	}
	uint8_t *copy = malloc(len ? len : 1);
	CHECK(copy);
	if (len)
		memcpy(copy, data, len);
	p->v[p->n++] = (struct input){len, copy};
}

static void pool_free(struct pool *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].data);
	free(p->v);
}

/* Reads one file into the pool and runs it; returns -errno. */
static int replay_file(struct pool *p, const char *path)
{
	static uint8_t buf[FUZZ_INPUT_MAX];
	const size_t max = fuzz_mutator.max_len;
	FILE *f = fopen(path, "rb");

	if (!f)
		return -errno;
	size_t len = fread(buf, 1, sizeof(buf), f);
	int err = ferror(f) ? -EIO : 0;
	fclose(f);
	if (err)
		return err;
	LLVMFuzzerTestOneInput(buf, len);
	pool_add(p, buf, len < max ? len : max);
	return 0;
}

/* A file, or every regular file in a directory (sorted by name). */
static int replay_path(struct pool *p, const char *path)
{
	struct dirent **names;
	struct stat st;
	char sub[4096];
	int n, err = 0;

	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return replay_file(p, path);
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
		if (!err && names[i]->d_name[0] != '.' && stat(sub, &st) == 0 &&
		    S_ISREG(st.st_mode))
			err = replay_file(p, sub);
		free(names[i]);
	}
	free(names);
	return err;
}

static uint8_t interesting(void)
{
	return fuzz_mutator.interesting[below(fuzz_mutator.ninteresting)];
}

/* One random edit of buf (len bytes, room for max_len); returns the new length. */
static size_t mutate_once(uint8_t *buf, size_t len, const struct pool *p)
{
	const struct fuzz_mutator *m = &fuzz_mutator;
	size_t at = below(len), n;

	switch (m->edits[below(len ? m->nedits : m->nedits_empty)]) {
	case FUZZ_INSERT_BYTE:
		if (len == m->max_len)
			return len;
		at = below(len + 1);
		memmove(buf + at + 1, buf + at, len - at);
		buf[at] = rnd() & 1 ? interesting() : (uint8_t)rnd();
		return len + 1;
	case FUZZ_APPEND_ENTRY: {
		if (!p->n)
			return len;
		const struct input *o = &p->v[below(p->n)];
		n = below(o->len + 1);
		n = n < m->max_len - len ? n : m->max_len - len;
		memcpy(buf + len, o->data, n);
		return len + n;
	}
	case FUZZ_INSERT_TOKEN: {
		const char *t = m->tokens[below(m->ntokens)];
		n = strlen(t);
		if (len + n > m->max_len)
			return len;
		at = below(len + 1);
		memmove(buf + at + n, buf + at, len - at);
		memcpy(buf + at, t, n);
		return len + n;
	}
	case FUZZ_FLIP_BIT:
		buf[at] ^= (uint8_t)(1u << below(8));
		return len;
	case FUZZ_SET_BYTE:
		buf[at] = interesting();
		return len;
	case FUZZ_DELETE_CHUNK:
		n = 1 + below(len - at);
		memmove(buf + at, buf + at + n, len - at - n);
		return len - n;
	case FUZZ_TRUNCATE:
		return below(len);
	case FUZZ_DUPLICATE_CHUNK:
		n = 1 + below(len - at);
		n = n < m->max_len - len ? n : m->max_len - len;
		memmove(buf + at + n, buf + at, len - at);
		return len + n;
	}
	return len;
}

static unsigned long env_number(const char *name, unsigned long def)
{
	const char *s = getenv(name);
	char *end;

	if (!s || !*s)
		return def;
	unsigned long v = strtoul(s, &end, 0);
	if (*end) {
		fprintf(stderr, "%s: %s=%s is not a number\n", fuzz_target_name, name, s);
		exit(2);
	}
	return v;
}

static void run_mutations(struct pool *p, unsigned long iterations)
{
	uint8_t *buf = calloc(1, fuzz_mutator.max_len);

	CHECK(buf);
	for (unsigned long i = 0; i < iterations; i++) {
		size_t len = 0;
		if (p->n) {
			const struct input *in = &p->v[below(p->n)];
			len = in->len;
			memcpy(buf, in->data, len);
		}
		for (size_t k = 1 + below(4); k > 0; k--)
			len = mutate_once(buf, len, p);
		LLVMFuzzerTestOneInput(buf, len);
		if (fuzz_last_good == 0)
			continue;
		/* keep inputs the target takes: later mutations go deeper from them */
		if (p->n < POOL_MAX) {
			pool_add(p, buf, len);
		} else if (p->n > p->seeds && below(16) == 0) {
			struct input *victim = &p->v[p->seeds + below(p->n - p->seeds)];
			free(victim->data);
			victim->data = malloc(len ? len : 1);
			CHECK(victim->data);
			memcpy(victim->data, buf, len);
			victim->len = len;
		}
	}
	free(buf);
}

int main(int argc, char **argv)
{
	struct pool pool = {0};
	unsigned long iterations = env_number("FUZZ_ITERATIONS", 100000);

	rng_state = env_number("FUZZ_SEED", 1);
	if (rng_state == 0)
		rng_state = 0x9e3779b97f4a7c15u; /* xorshift must not start at 0 */
	for (int i = 1; i < argc; i++) {
		int err = replay_path(&pool, argv[i]);
		if (err < 0) {
			fprintf(stderr, "%s: %s: %s\n", fuzz_target_name, argv[i],
			        strerror(-err));
			pool_free(&pool);
			return 2;
		}
	}
	pool.seeds = pool.n;
	run_mutations(&pool, iterations);
	printf("%s: %zu inputs, %lu mutations, ", fuzz_target_name, pool.seeds,
	       iterations);
	if (fuzz_mutator.report_kept)
		printf("%zu kept, ", pool.n - pool.seeds);
	printf("ok\n");
	pool_free(&pool);
	return 0;
}
