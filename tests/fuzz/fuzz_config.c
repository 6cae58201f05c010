/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the configuration parser (shim/config.c).
 *
 * LLVMFuzzerTestOneInput() places the input at the very end of an mmap'd span
 * followed by a PROT_NONE page (so reading one byte too far faults) and parses
 * it as a configuration text; a NUL-terminated copy is parsed as a proxy URL
 * and asked to the matching helpers. Every answer is checked:
 *   - a failure leaves one non-empty line of printable ASCII in the error
 *     buffer, starting with the source name; with a short buffer (which also
 *     ends at a guard page) it is cut and NUL-terminated, never overrun;
 *   - a success leaves a consistent struct (lengths, prefixes, ranges, host
 *     bits, the derived dns mode), and writing that struct back out as a
 *     configuration text (or the proxy as a URL) parses to the same struct.
 * Any inconsistency abort()s.
 *
 * Built with -DFUZZ_REPLAY_MAIN it gets a main() for plain compilers: it
 * replays the files and directories named on the command line, then runs
 * FUZZ_ITERATIONS (default 100000) deterministic random mutations of them
 * (seeded by FUZZ_SEED, default 1) and prints one summary line. With clang,
 * build it without that define as a real libFuzzer target instead:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ishim \
 *       tests/fuzz/fuzz_config.c shim/config.c -o fuzz_config
 *   ./fuzz_config tests/fuzz/corpus/config
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_config: %s:%d: check failed: %s\n",        \
			        __FILE__, __LINE__, #cond);                              \
			abort();                                                         \
		}                                                                        \
	} while (0)

/* Inputs longer than this are cut. */
#define SPAN_LEN (16 * 4096)
#define SOURCE   "fuzz.conf"

/* --- buffers that end at a guard page ---------------------------------------------- */

struct guarded {
	uint8_t *span;
	size_t len;
};

static uint8_t *guarded_end(struct guarded *g, size_t len, size_t size)
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

static struct guarded input_span, err_span;

/* --- invariants -------------------------------------------------------------------- */

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, 0, cap) != NULL;
}

/* One line of printable ASCII that starts with the source. */
static void check_message(const char *err, size_t errlen, const char *source)
{
	size_t n = strnlen(err, errlen);

	CHECK(n > 0 && n < errlen);
	for (size_t i = 0; i < n; i++)
		CHECK(err[i] >= 0x20 && err[i] < 0x7f);
	size_t s = strlen(source);
	CHECK(strncmp(err, source, n < s ? n : s) == 0);
}

static void check_proxy(const struct config_proxy *p)
{
	CHECK(terminated(p->host, sizeof(p->host)) && p->host[0] != '\0');
	CHECK(p->port != 0);
	CHECK(terminated(p->user, sizeof(p->user)) &&
	      terminated(p->pass, sizeof(p->pass)));
	if (p->has_auth)
		CHECK(p->user[0] != '\0');
	else
		CHECK(p->user[0] == '\0' && p->pass[0] == '\0');
}

static void check_rule(const struct config_rule *r)
{
	if (r->kind == CONFIG_RULE_SUFFIX) {
		size_t n = strnlen(r->suffix, sizeof(r->suffix));
		CHECK(n > 0 && n < sizeof(r->suffix));
		CHECK(r->suffix[0] != '.' && r->suffix[n - 1] != '.');
		for (size_t i = 0; i < n; i++)
			CHECK(!(r->suffix[i] >= 'A' && r->suffix[i] <= 'Z'));
		return;
	}
	CHECK(r->kind == CONFIG_RULE_CIDR);
	CHECK(r->family == AF_INET || r->family == AF_INET6);
	unsigned bits = r->family == AF_INET ? 32 : 128;
	CHECK(r->prefix <= bits);
	for (unsigned b = r->prefix; b < bits; b++) /* host bits are clear */
		CHECK((r->addr[b / 8] & (0x80 >> (b % 8))) == 0);
}

static void check_config(const struct config *c)
{
	struct sockaddr_storage ss;

	CHECK(c->nproxies >= 1 && c->nproxies <= CONFIG_MAX_PROXIES);
	for (size_t i = 0; i < c->nproxies; i++)
		check_proxy(&c->proxies[i]);
	CHECK(c->nrules <= CONFIG_MAX_RULES);
	for (size_t i = 0; i < c->nrules; i++)
		check_rule(&c->rules[i]);
	if (!c->dns_set)
		CHECK(c->dns ==
		      (c->proxies[0].remote_dns ? CONFIG_DNS_REMOTE : CONFIG_DNS_LOCAL));
	CHECK(c->connect_timeout_ms > 0 && c->connect_timeout_ms <= 3600000);
	CHECK(c->log_level >= CONFIG_LOG_ERROR && c->log_level <= CONFIG_LOG_DEBUG);
	CHECK(terminated(c->log_file, sizeof(c->log_file)));
	CHECK(c->pipeline == CONFIG_PIPELINE_AUTO || c->pipeline == CONFIG_PIPELINE_ON ||
	      c->pipeline == CONFIG_PIPELINE_OFF);
	CHECK(c->fake_v4_prefix >= 4 && c->fake_v4_prefix <= 24);
	CHECK(c->fake_v6_prefix >= 8 && c->fake_v6_prefix <= 112);
	CHECK(c->fake_v4[0] != 0 && c->fake_v4[0] != 127 &&
	      (c->fake_v4[0] < 224 || c->fake_v4[0] >= 240));
	CHECK(c->fake_v6[0] != 0 && c->fake_v6[0] != 0xff);
	CHECK(terminated(c->nameserver, sizeof(c->nameserver)));
	CHECK((config_nameserver_addr(c, &ss) > 0) == (c->nameserver[0] != '\0'));
}

/* --- writing a struct back out ----------------------------------------------------- */

static void append(char *buf, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);

	CHECK(*len + n < cap);
	memcpy(buf + *len, s, n + 1);
	*len += n;
}

/*
 * Percent-encodes s for a URL: with `all`, everything but unreserved
 * characters; otherwise only what the parsers need (%, ':' in the user name,
 * a newline, '#' after a blank), so that the URL of any proxy read from a
 * configuration line is no longer than that line was.
 */
static void append_encoded(char *buf, size_t cap, size_t *len, const char *s, bool all,
                           bool user)
{
	char esc[4];

	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		char prev = i ? s[i - 1] : 'x';
		bool blank = prev == ' ' || prev == '\t' || prev == '\r' ||
		             prev == '\v' || prev == '\f';
		bool plain;
		if (all)
			plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			        (c >= '0' && c <= '9') || c == '-' || c == '.' ||
			        c == '_';
		else
			plain = c != '%' && c != '\n' && !(c == ':' && user) &&
			        !(c == '#' && blank);
		snprintf(esc, sizeof(esc), plain ? "%c" : "%%%02X", c);
		append(buf, cap, len, esc);
	}
}

static void format_url(char *buf, size_t cap, const struct config_proxy *p, bool all)
{
	size_t len = 0;
	char port[8];

	buf[0] = '\0';
	append(buf, cap, &len, p->remote_dns ? "socks5h://" : "socks5://");
	if (p->has_auth) {
		append_encoded(buf, cap, &len, p->user, all, true);
		append(buf, cap, &len, ":");
		append_encoded(buf, cap, &len, p->pass, all, false);
		append(buf, cap, &len, "@");
	}
	bool v6 = strchr(p->host, ':') != NULL;
	append(buf, cap, &len, v6 ? "[" : "");
	append(buf, cap, &len, p->host);
	snprintf(port, sizeof(port), "%s:%u", v6 ? "]" : "", (unsigned)p->port);
	append(buf, cap, &len, port);
}

static void format_rule(char *buf, size_t cap, const struct config_rule *r)
{
	char addr[INET6_ADDRSTRLEN];

	if (r->kind == CONFIG_RULE_SUFFIX) {
		snprintf(buf, cap, "%s", r->suffix);
		return;
	}
	CHECK(inet_ntop(r->family, r->addr, addr, sizeof(addr)));
	if (r->family == AF_INET6)
		snprintf(buf, cap, "[%s/%u]:%u", addr, r->prefix, (unsigned)r->port);
	else
		snprintf(buf, cap, "%s/%u:%u", addr, r->prefix, (unsigned)r->port);
	if (r->port == 0)
		*strrchr(buf, ':') = '\0';
}

/* The whole struct as a configuration text. */
static size_t format_config(char *buf, size_t cap, const struct config *c)
{
	static const char *const dns[] = {"remote", "local"};
	static const char *const pipeline[] = {"auto", "yes", "no"};
	static const char *const level[] = {"error", "info", "debug"};
	char line[2048], v4[INET_ADDRSTRLEN], v6[INET6_ADDRSTRLEN];
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->nproxies; i++) {
		append(buf, cap, &len, "proxy = ");
		format_url(line, sizeof(line), &c->proxies[i], false);
		append(buf, cap, &len, line);
		append(buf, cap, &len, "\n");
	}
	for (size_t i = 0; i < c->nrules; i++) {
		append(buf, cap, &len, "exclude = ");
		format_rule(line, sizeof(line), &c->rules[i]);
		append(buf, cap, &len, line);
		append(buf, cap, &len, "\n");
	}
	CHECK(inet_ntop(AF_INET, c->fake_v4, v4, sizeof(v4)));
	CHECK(inet_ntop(AF_INET6, c->fake_v6, v6, sizeof(v6)));
	snprintf(line, sizeof(line),
	         "%s%s%sproxy_loopback = %d\nconnect_timeout = %u.%03u\nlog_level = %s\n"
	         "pipeline = %s\nfake_pool_v4 = %s/%u\nfake_pool_v6 = %s/%u\n",
	         c->dns_set ? "dns = " : "", c->dns_set ? dns[c->dns] : "",
	         c->dns_set ? "\n" : "", c->proxy_loopback, c->connect_timeout_ms / 1000,
	         c->connect_timeout_ms % 1000, level[c->log_level], pipeline[c->pipeline],
	         v4, c->fake_v4_prefix, v6, c->fake_v6_prefix);
	append(buf, cap, &len, line);
	if (c->log_file[0]) {
		append(buf, cap, &len, "log_file = ");
		append(buf, cap, &len, c->log_file);
		append(buf, cap, &len, "\n");
	}
	if (c->nameserver[0]) {
		append(buf, cap, &len, "nameserver = ");
		append(buf, cap, &len, c->nameserver);
		append(buf, cap, &len, "\n");
	}
	return len;
}

/* --- one input --------------------------------------------------------------------- */

static struct config cfg, again;
static char text_copy[SPAN_LEN + 1];
static char formatted[64 * 1024];

/* Parses text as a configuration; returns 1 on success. */
static int fuzz_text(const char *text, size_t size)
{
	char err[CONFIG_ERR_LEN];

	config_defaults(&cfg);
	memset(err, 0x5a, sizeof(err));
	if (config_parse_text(&cfg, text, size, SOURCE, err, sizeof(err)) < 0) {
		check_message(err, sizeof(err), SOURCE);
		/* the same failure into a short buffer that ends at a guard page */
		size_t cap = 1 + size % 48;
		char *small = (char *)guarded_end(&err_span, 4096, cap);
		config_defaults(&again);
		CHECK(config_parse_text(&again, text, size, SOURCE, small, cap) == -1);
		CHECK(strnlen(small, cap) < cap && strncmp(small, err, cap - 1) == 0);
		return 0;
	}
	check_config(&cfg);
	size_t len = format_config(formatted, sizeof(formatted), &cfg);
	config_defaults(&again);
	if (config_parse_text(&again, formatted, len, "formatted", err, sizeof(err)) <
	    0) {
		fprintf(stderr, "fuzz_config: %s\n%s", err, formatted);
		CHECK(!"the written-out config parses");
	}
	CHECK(memcmp(&cfg, &again, sizeof(cfg)) == 0);
	return 1;
}

/* Parses a NUL-terminated string as a proxy URL; returns 1 on success. */
static int fuzz_url(const char *s)
{
	struct config_proxy p, q;
	char err[CONFIG_ERR_LEN], url[2048];

	if (config_parse_proxy_url(&p, s, "SOCKSIFY_PROXY", err, sizeof(err)) < 0) {
		check_message(err, sizeof(err), "SOCKSIFY_PROXY");
		CHECK(strstr(err, ": bad proxy URL '") != NULL);
		return 0;
	}
	check_proxy(&p);
	for (int all = 0; all < 2; all++) {
		format_url(url, sizeof(url), &p, all);
		CHECK(config_parse_proxy_url(&q, url, NULL, err, sizeof(err)) == 0);
		CHECK(memcmp(&p, &q, sizeof(p)) == 0);
	}
	return 1;
}

/* The matching helpers on addresses and a name made of the input. */
static void fuzz_match(const struct config *c, const uint8_t *data, size_t size,
                       const char *name)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	uint8_t bytes[18] = {0};
	bool v6_rules = false;

	memcpy(bytes, data, size < sizeof(bytes) ? size : sizeof(bytes));
	memcpy(&sin6.sin6_addr, bytes, 16);
	memcpy(&sin6.sin6_port, bytes + 16, 2);
	(void)config_excluded_addr(c, (struct sockaddr *)&sin6);
	(void)config_is_fake_addr(c, (struct sockaddr *)&sin6);
	(void)config_excluded_name(c, name);

	/* an IPv4 address and its v4-mapped form get the same answers */
	memcpy(&sin.sin_addr, bytes, 4);
	memcpy(&sin.sin_port, bytes + 4, 2);
	memset(&sin6.sin6_addr, 0, 10);
	sin6.sin6_addr.s6_addr[10] = sin6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&sin6.sin6_addr.s6_addr[12], bytes, 4);
	sin6.sin6_port = sin.sin_port;
	for (size_t i = 0; i < c->nrules && i < CONFIG_MAX_RULES; i++)
		v6_rules |= c->rules[i].kind == CONFIG_RULE_CIDR &&
		            c->rules[i].family == AF_INET6;
	bool ex4 = config_excluded_addr(c, (struct sockaddr *)&sin);
	bool ex6 = config_excluded_addr(c, (struct sockaddr *)&sin6);
	CHECK(ex4 == ex6 || (v6_rules && ex6));
	CHECK(config_is_fake_addr(c, (struct sockaddr *)&sin) ==
	      config_is_fake_addr(c, (struct sockaddr *)&sin6));
}

static int fuzz_one(const uint8_t *data, size_t size)
{
	int good;

	if (size > SPAN_LEN)
		size = SPAN_LEN;
	const char *text = (const char *)guarded_end(&input_span, SPAN_LEN, size);
	if (size)
		memcpy((char *)text, data, size);
	good = fuzz_text(text, size);
	memcpy(text_copy, data, size);
	text_copy[size] = '\0';
	good += fuzz_url(text_copy);
	fuzz_match(&cfg, data, size, text_copy); /* even a half-parsed one */
	return good;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_one(data, size);
	return 0;
}

#ifdef FUZZ_REPLAY_MAIN
/* --- replay and mutation driver for compilers without libFuzzer -------------------- */

#include <dirent.h>
#include <sys/stat.h>

#define MUT_MAX  4096 /* longest mutated input */
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
	static uint8_t buf[SPAN_LEN];
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

static const uint8_t interesting[] = {'\n', '#', '=', ':', '/', '@',  '%',  '[', ']',
                                      ' ',  ',', '.', '0', '9', '\0', '\r', 'f', '*'};

/* Pieces of the syntax that random bytes rarely spell. */
static const char *const tokens[] = {
        "proxy = ",
        "exclude = ",
        "dns = ",
        "socks5://",
        "socks5h://",
        "%40",
        "%zz",
        "::",
        "::ffff:",
        "/8",
        "/33",
        ":65535",
        ":0",
        "1.2.3.4",
        ".example.com",
        "fake_pool_v4 = ",
        "fake_pool_v6 = ",
        "nameserver = ",
        "connect_timeout = ",
        "log_level = ",
        "pipeline = ",
        "proxy_loopback = ",
        "log_file = ",
        " # ",
};

/* One random edit of buf (len bytes, room for MUT_MAX); returns the new length. */
static size_t mutate_once(uint8_t *buf, size_t len, const struct pool *p)
{
	size_t at = below(len), n;

	switch (below(len ? 8 : 3)) {
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
	case 2: { /* insert a token */
		const char *t = tokens[below(sizeof(tokens) / sizeof(tokens[0]))];
		n = strlen(t);
		if (len + n > MUT_MAX)
			return len;
		at = below(len + 1);
		memmove(buf + at + n, buf + at, len - at);
		memcpy(buf + at, t, n);
		return len + n;
	}
	case 3: /* flip a bit */
		buf[at] ^= (uint8_t)(1u << below(8));
		return len;
	case 4: /* set an interesting value */
		buf[at] = interesting[below(sizeof(interesting))];
		return len;
	case 5: /* delete a chunk */
		n = 1 + below(len - at);
		memmove(buf + at, buf + at + n, len - at - n);
		return len - n;
	case 6: /* truncate */
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
		fprintf(stderr, "fuzz_config: %s=%s is not a number\n", name, s);
		exit(2);
	}
	return v;
}

static void run_mutations(struct pool *p, unsigned long iterations)
{
	static uint8_t buf[MUT_MAX];

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
		/* keep inputs that parse: later mutations go deeper from them */
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
			fprintf(stderr, "fuzz_config: %s: %s\n", argv[i], strerror(-err));
			pool_free(&pool);
			return 2;
		}
	}
	pool.seeds = pool.n;
	run_mutations(&pool, iterations);
	printf("fuzz_config: %zu inputs, %lu mutations, %zu kept, ok\n", pool.seeds,
	       iterations, pool.n - pool.seeds);
	pool_free(&pool);
	return 0;
}
#endif
