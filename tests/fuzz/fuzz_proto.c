/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the SOCKS5 wire codec (shim/proto/socks5.c).
 *
 * LLVMFuzzerTestOneInput() copies the input to the very end of an mmap'd span
 * followed by a PROT_NONE page (so an over-read faults) and hands it to every
 * decoder. Each decoder's answer is checked for consistency: a decoded message
 * re-encodes to exactly the bytes it consumed, decodes again from exactly those
 * bytes, and its proper prefixes are partial; a failure code is one the decoder
 * may return and shorter inputs give either SOCKS5_PARTIAL or the same code.
 * Any inconsistency abort()s. Decoded addresses also go through the format and
 * sockaddr helpers.
 *
 * Built with -DFUZZ_REPLAY_MAIN it gets a main() for plain compilers: it
 * replays the files and directories named on the command line, then runs
 * FUZZ_ITERATIONS (default 100000) deterministic random mutations of them
 * (seeded by FUZZ_SEED, default 1) and prints one summary line. With clang,
 * build it without that define as a real libFuzzer target instead:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ishim/proto \
 *       tests/fuzz/fuzz_proto.c shim/proto/socks5.c -o fuzz_proto
 *   ./fuzz_proto tests/fuzz/corpus/proto
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_proto: %s:%d: check failed: %s\n",         \
			        __FILE__, __LINE__, #cond);                              \
			abort();                                                         \
		}                                                                        \
	} while (0)

/* Inputs longer than this are cut: no message is anywhere near as long. */
#define SPAN_LEN (16 * 4096)

/* --- the input at the end of a guard page ---------------------------------------- */

static const uint8_t *place_at_end(const uint8_t *data, size_t size)
{
	static uint8_t *span;
	static size_t guard_len;

	if (!span) {
		guard_len = (size_t)sysconf(_SC_PAGESIZE);
		void *p = mmap(NULL, SPAN_LEN + guard_len, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(p != MAP_FAILED);
		CHECK(mprotect((uint8_t *)p + SPAN_LEN, guard_len, PROT_NONE) == 0);
		span = p;
	}
	uint8_t *dst = span + SPAN_LEN - size;
	if (size)
		memcpy(dst, data, size);
	return dst;
}

/* --- every decoder behind one interface ----------------------------------------------
 */

union msg {
	struct socks5_greeting greeting;
	uint8_t byte;
	struct socks5_userpass userpass;
	struct socks5_request request;
	struct socks5_udp_header udp;
	struct socks5_addr addr;
};

struct codec {
	const char *name;
	size_t max; /* the longest message */
	ssize_t (*decode)(const uint8_t *buf, size_t len, union msg *m);
	size_t (*encode)(uint8_t *buf, size_t cap, const union msg *m);
	int bad_command, bad_atyp; /* may return these codes */
	size_t addr_off;           /* where the address starts, or 0 for none */
};

static ssize_t dec_greeting(const uint8_t *buf, size_t len, union msg *m)
{
	return socks5_greeting_parse(buf, len, &m->greeting);
}

static size_t enc_greeting(uint8_t *buf, size_t cap, const union msg *m)
{
	return socks5_greeting_encode(buf, cap, m->greeting.methods,
	                              m->greeting.nmethods);
}

static ssize_t dec_method_reply(const uint8_t *buf, size_t len, union msg *m)
{
	return socks5_method_reply_parse(buf, len, &m->byte);
}

static size_t enc_method_reply(uint8_t *buf, size_t cap, const union msg *m)
{
	return socks5_method_reply_encode(buf, cap, m->byte);
}

static ssize_t dec_userpass(const uint8_t *buf, size_t len, union msg *m)
{
	return socks5_userpass_parse(buf, len, &m->userpass);
}

static size_t enc_userpass(uint8_t *buf, size_t cap, const union msg *m)
{
	const struct socks5_userpass *up = &m->userpass;
	CHECK(strlen(up->user) == up->ulen && strlen(up->pass) == up->plen);
	return socks5_userpass_encode(buf, cap, up->user, up->ulen, up->pass, up->plen);
}

static ssize_t dec_auth_reply(const uint8_t *buf, size_t len, union msg *m)
{
	return socks5_auth_reply_parse(buf, len, &m->byte);
}

static size_t enc_auth_reply(uint8_t *buf, size_t cap, const union msg *m)
{
	return socks5_auth_reply_encode(buf, cap, m->byte);
}

static ssize_t dec_request(const uint8_t *buf, size_t len, union msg *m)
{
	return socks5_request_parse(buf, len, &m->request);
}

static size_t enc_request(uint8_t *buf, size_t cap, const union msg *m)
{
	return socks5_request_encode(buf, cap, m->request.cmd, &m->request.addr);
}

static ssize_t dec_reply(const uint8_t *buf, size_t len, union msg *m)
{
	return socks5_reply_parse(buf, len, &m->request);
}

static size_t enc_reply(uint8_t *buf, size_t cap, const union msg *m)
{
	return socks5_reply_encode(buf, cap, m->request.cmd, &m->request.addr);
}

static ssize_t dec_udp(const uint8_t *buf, size_t len, union msg *m)
{
	return socks5_udp_header_parse(buf, len, &m->udp);
}

static size_t enc_udp(uint8_t *buf, size_t cap, const union msg *m)
{
	return socks5_udp_header_encode(buf, cap, m->udp.frag, &m->udp.addr);
}

static ssize_t dec_addr(const uint8_t *buf, size_t len, union msg *m)
{
	return socks5_addr_parse(buf, len, &m->addr);
}

static size_t enc_addr(uint8_t *buf, size_t cap, const union msg *m)
{
	return socks5_addr_encode(buf, cap, &m->addr);
}

static const struct codec codecs[] = {
        {"greeting", SOCKS5_GREETING_MAX, dec_greeting, enc_greeting, 0, 0, 0},
        {"method reply", SOCKS5_METHOD_REPLY_LEN, dec_method_reply, enc_method_reply, 0,
         0, 0},
        {"userpass", SOCKS5_USERPASS_MAX, dec_userpass, enc_userpass, 0, 0, 0},
        {"auth reply", SOCKS5_AUTH_REPLY_LEN, dec_auth_reply, enc_auth_reply, 0, 0, 0},
        {"request", SOCKS5_REQUEST_MAX, dec_request, enc_request, 1, 1, 3},
        {"reply", SOCKS5_REPLY_MAX, dec_reply, enc_reply, 0, 1, 3},
        {"udp header", SOCKS5_UDP_HEADER_MAX, dec_udp, enc_udp, 0, 1, 3},
        {"address", SOCKS5_ADDR_MAX, dec_addr, enc_addr, 0, 1, 0},
};

/* --- consistency checks ------------------------------------------------------------- */

static int addr_same(const struct socks5_addr *a, const struct socks5_addr *b)
{
	if (a->atyp != b->atyp || a->port != b->port)
		return 0;
	if (a->atyp == SOCKS5_ATYP_IPV4)
		return memcmp(a->host.ipv4, b->host.ipv4, 4) == 0;
	if (a->atyp == SOCKS5_ATYP_IPV6)
		return memcmp(a->host.ipv6, b->host.ipv6, 16) == 0;
	return a->domain_len == b->domain_len &&
	       memcmp(a->host.domain, b->host.domain, a->domain_len + 1u) == 0;
}

/* A decoded address: wire length, text form and sockaddr round trip. */
static void check_addr(const struct socks5_addr *a, size_t wire_len)
{
	char text[SOCKS5_ADDR_STRLEN];
	struct sockaddr_storage ss;
	struct socks5_addr back;

	CHECK(socks5_addr_wire_len(a) == wire_len);
	socks5_addr_format(a, text, sizeof(text));
	CHECK(strlen(text) < sizeof(text) - 1); /* never truncated */
	socklen_t sl = socks5_addr_to_sockaddr(a, &ss);
	if (a->atyp == SOCKS5_ATYP_DOMAIN) {
		CHECK(sl == 0);
		CHECK(strlen(a->host.domain) == a->domain_len);
		CHECK(socks5_addr_set_domain(&back, a->host.domain, a->domain_len,
		                             a->port) == 0);
	} else {
		CHECK(sl > 0);
		CHECK(socks5_addr_from_sockaddr(&back, (struct sockaddr *)&ss, sl) == 0);
	}
	CHECK(addr_same(a, &back));
}

/* Extra checks on a decoded message that the re-encoding does not cover. */
static void check_decoded(const struct codec *c, const union msg *m, size_t n)
{
	if (c->decode == dec_greeting) {
		CHECK(n == 2u + m->greeting.nmethods);
		for (size_t i = 0; i < m->greeting.nmethods; i++)
			CHECK(socks5_greeting_offers(&m->greeting,
			                             m->greeting.methods[i]));
	} else if (c->decode == dec_request || c->decode == dec_reply) {
		CHECK(socks5_cmd_name(m->request.cmd) && socks5_rep_name(m->request.cmd));
		check_addr(&m->request.addr, n - c->addr_off);
	} else if (c->decode == dec_udp) {
		check_addr(&m->udp.addr, n - c->addr_off);
	} else if (c->decode == dec_addr) {
		check_addr(&m->addr, n);
	} else if (c->decode == dec_method_reply || c->decode == dec_auth_reply) {
		CHECK(n == 2);
		(void)socks5_rep_to_errno(m->byte);
	}
}

/* A message decoded from buf[0..n): re-encode, decode again, prefixes, caps. */
static void check_message(const struct codec *c, const uint8_t *buf, size_t n,
                          const union msg *m)
{
	uint8_t out[SOCKS5_USERPASS_MAX];
	union msg again;

	CHECK(n <= c->max);
	check_decoded(c, m, n);
	memset(out, 0xa5, sizeof(out));
	CHECK(c->encode(out, sizeof(out), m) == n);
	CHECK(memcmp(out, buf, n) == 0);
	CHECK(c->encode(out, n - 1, m) == 0);
	CHECK(c->decode(buf, n, &again) == (ssize_t)n);
	CHECK(c->decode(buf, n - 1, &again) == SOCKS5_PARTIAL);
	CHECK(c->decode(buf, n / 2, &again) == SOCKS5_PARTIAL);
}

/* A failure code: allowed for this decoder, and stable for shorter inputs. */
static void check_failure(const struct codec *c, const uint8_t *buf, size_t len,
                          ssize_t r, const union msg *m)
{
	union msg again;

	if (r == SOCKS5_PARTIAL) {
		CHECK(len < c->max);
	} else if (r == SOCKS5_BAD_COMMAND) {
		CHECK(c->bad_command && len >= 2 && m->request.cmd == buf[1]);
	} else {
		CHECK(r == SOCKS5_BAD || (r == SOCKS5_BAD_ATYP && c->bad_atyp));
		CHECK(len > 0);
	}
	for (size_t k = len / 2; k < len; k += (len - k + 1) / 2) {
		ssize_t s = c->decode(buf, k, &again);
		CHECK(s == SOCKS5_PARTIAL || s == r);
	}
}

/* Runs every decoder; returns how many decoded a whole message. */
static int fuzz_one(const uint8_t *data, size_t size)
{
	union msg m;
	int decoded = 0;

	if (size > SPAN_LEN)
		size = SPAN_LEN;
	const uint8_t *buf = place_at_end(data, size);
	for (size_t i = 0; i < sizeof(codecs) / sizeof(codecs[0]); i++) {
		const struct codec *c = &codecs[i];
		memset(&m, 0xee, sizeof(m));
		ssize_t r = c->decode(buf, size, &m);
		if (r > 0) {
			CHECK((size_t)r <= size);
			check_message(c, buf, (size_t)r, &m);
			decoded++;
		} else {
			check_failure(c, buf, size, r, &m);
		}
	}
	if (size > 0) {
		CHECK(socks5_rep_name(buf[0]) && socks5_cmd_name(buf[0]));
		(void)socks5_rep_to_errno(buf[0]);
	}
	return decoded;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(data, size);
	return 0;
}

#ifdef FUZZ_REPLAY_MAIN
/* --- replay and mutation driver for compilers without libFuzzer ------------------------
 */

#include <dirent.h>
#include <sys/stat.h>

#define MUT_MAX  1024 /* longest mutated input */
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
	uint8_t buf[SPAN_LEN];
	FILE *f = fopen(path, "rb");

	if (!f)
		return -errno;
	size_t len = fread(buf, 1, sizeof(buf), f);
	int err = ferror(f) ? -EIO : 0;
	fclose(f);
	if (err)
		return err;
	fuzz_one(buf, len);
	pool_add(p, buf, len < MUT_MAX ? len : MUT_MAX);
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

static const uint8_t interesting[] = {0x00, 0x01, 0x03, 0x04, 0x05, 0xff};

/* One random edit of buf (len bytes, room for MUT_MAX); returns the new length. */
static size_t mutate_once(uint8_t *buf, size_t len, const struct pool *p)
{
	size_t at = below(len), n;

	switch (below(len ? 7 : 2)) {
	case 0: /* insert a byte */
		if (len == MUT_MAX)
			return len;
		at = below(len + 1);
		memmove(buf + at + 1, buf + at, len - at);
		buf[at] = rnd() & 1 ? interesting[below(sizeof(interesting))]
		                    : (uint8_t)rnd();
		return len + 1;
	case 1: { /* append part of another entry */
		if (!p->n)
			return len;
		const struct input *o = &p->v[below(p->n)];
		n = below(o->len + 1);
		n = n < MUT_MAX - len ? n : MUT_MAX - len;
		memcpy(buf + len, o->data, n);
		return len + n;
	}
	case 2: /* flip a bit */
		buf[at] ^= (uint8_t)(1u << below(8));
		return len;
	case 3: /* set an interesting value */
	case 4:
		buf[at] = interesting[below(sizeof(interesting))];
		return len;
	case 5: /* truncate */
		return below(len);
	default: /* duplicate a chunk in place */
		n = 1 + below(len - at);
		n = n < MUT_MAX - len ? n : MUT_MAX - len;
		memmove(buf + at + n, buf + at, len - at);
		return len + n;
	}
}

static unsigned long env_number(const char *name, unsigned long def)
{
	const char *s = getenv(name);
	char *end;

	if (!s || !*s)
		return def;
	unsigned long v = strtoul(s, &end, 0);
	if (*end) {
		fprintf(stderr, "fuzz_proto: %s=%s is not a number\n", name, s);
		exit(2);
	}
	return v;
}

static void run_mutations(struct pool *p, unsigned long iterations)
{
	uint8_t buf[MUT_MAX];

	for (unsigned long i = 0; i < iterations; i++) {
		size_t len = 0;
		if (p->n) {
			const struct input *in = &p->v[below(p->n)];
			len = in->len;
			memcpy(buf, in->data, len);
		}
		for (size_t k = 1 + below(4); k > 0; k--)
			len = mutate_once(buf, len, p);
		if (fuzz_one(buf, len) == 0)
			continue;
		/* keep inputs that decode: later mutations go deeper from them */
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
			fprintf(stderr, "fuzz_proto: %s: %s\n", argv[i], strerror(-err));
			pool_free(&pool);
			return 2;
		}
	}
	pool.seeds = pool.n;
	run_mutations(&pool, iterations);
	printf("fuzz_proto: %zu inputs, %lu mutations, ok\n", pool.seeds, iterations);
	pool_free(&pool);
	return 0;
}
#endif
