/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for socksify-server's destination policy (cli/server/acl.c):
 * the --allow/--deny rule parser and acl_check().
 *
 * The input's text up to its first NUL byte is lines, each handed to
 * acl_add_rule() as a string that ends right before a PROT_NONE page (a line
 * that starts with '+' is an --allow rule of the rest, any other a --deny
 * rule). After the NUL, one byte of flags (bit 0: exposed, bit 1:
 * --allow-local), then destinations of 19 bytes each (a family byte, even
 * for IPv4 and odd for IPv6, 16 address bytes, a big-endian port), each put
 * to acl_check(), and so is every rule's own address at its lowest port.
 *
 * Both are checked against a reference written here another way. A rule is
 * taken exactly when its text is, scanned by hand, ADDR, ADDR/P, ADDR:PORTS
 * or ADDR/P:PORTS for an IPv4 ADDR, ADDR or ADDR/P for a bare IPv6 one, and
 * [ADDR], [ADDR]/P, [ADDR/P], each with an optional :PORTS; P is decimal
 * digits no larger than the address's bits, PORTS a port or LO-HI, 1 to
 * 65535, LO <= HI; until ACL_MAX_RULES. Addresses are compared as 128 bits,
 * IPv4 ones as ::ffff:a.b.c.d (an IPv4 rule's prefix + 96), bit by bit; an
 * IPv6 rule shorter than /96 never matches an IPv4 or v4-mapped destination
 * (which is IPv4 throughout); 0.0.0.0 is judged as 127.0.0.1 and :: as ::1.
 * The first rule that matches decides; then, when exposed and not
 * --allow-local, the built-in list; else allowed. A denial must name the
 * rule: the deciding rule's own text, or the built-in range. Any difference
 * abort()s.
 *
 * Linked with replay_main.c it gets a main() for any compiler (see
 * tests/fuzz/meson.build); a clang build also makes it a libFuzzer binary.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "acl.h"
#include "guard.h"
#include "replay.h"

const char fuzz_target_name[] = "fuzz_acl";

enum { DEST_LEN = 19 };

/* --- the reference ------------------------------------------------------------------ */

struct ref_rule {
	uint8_t a[16];   /* as 128 bits: IPv4 as ::ffff:a.b.c.d */
	unsigned bits;   /* prefix over those 128 bits */
	bool v4;         /* written as IPv4 */
	unsigned lo, hi; /* 0, 0: any port */
	bool allow;
};

static const uint8_t mapped_prefix[12] = {[10] = 0xff, [11] = 0xff};

/* Decimal digits s[0..n), at most max; -1 when not. */
static long ref_number(const char *s, size_t n, long max)
{
	long v = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return -1;
	}
	return v;
}

static size_t find(const char *s, size_t n, char c)
{
	size_t i = 0;
	while (i < n && s[i] != c)
		i++;
	return i;
}

static size_t count(const char *s, size_t n, char c)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += s[i] == c;
	return k;
}

static bool ref_ports(const char *s, size_t n, struct ref_rule *r)
{
	size_t d = find(s, n, '-');
	long lo = ref_number(s, d, 65535), hi = lo;
	if (d < n)
		hi = ref_number(s + d + 1, n - d - 1, 65535);
	if (lo < 1 || hi < lo)
		return false;
	r->lo = (unsigned)lo;
	r->hi = (unsigned)hi;
	return true;
}

/* The address s[0..n), with a prefix of p[0..pn) when has_p. */
static bool ref_addr(const char *s, size_t n, const char *p, size_t pn, bool has_p,
                     struct ref_rule *r)
{
	char host[64];
	uint8_t v4[4];
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, v4) == 1) {
		r->v4 = true;
		memcpy(r->a, mapped_prefix, 12);
		memcpy(r->a + 12, v4, 4);
	} else if (inet_pton(AF_INET6, host, r->a) != 1) {
		return false;
	}
	long max = r->v4 ? 32 : 128, bits = max;
	if (has_p && (bits = ref_number(p, pn, max)) < 0)
		return false;
	r->bits = (unsigned)bits + (r->v4 ? 96 : 0);
	return true;
}

/* [ADDR], [ADDR/P] or [ADDR]/P, then an optional :PORTS. */
static bool ref_bracketed(const char *s, size_t n, struct ref_rule *r)
{
	size_t close = find(s, n, ']');
	if (close == n)
		return false;
	const char *in = s + 1, *rest = s + close + 1;
	size_t inlen = close - 1, slash = find(in, inlen, '/');
	size_t rn = n - close - 1, colon = find(rest, rn, ':');
	bool outer = rn > 0 && rest[0] == '/';
	if (rn > 0 && rest[0] != '/' && rest[0] != ':')
		return false;
	if (outer && slash < inlen)
		return false;
	bool ok =
	        outer ? ref_addr(in, inlen, rest + 1, colon - 1, true, r)
	              : ref_addr(in, slash, in + slash + 1,
	                         slash < inlen ? inlen - slash - 1 : 0, slash < inlen, r);
	if (!ok)
		return false;
	return colon == rn || ref_ports(rest + colon + 1, rn - colon - 1, r);
}

static bool ref_parse(const char *s, size_t n, struct ref_rule *r)
{
	memset(r, 0, sizeof(*r));
	if (n > 0 && s[0] == '[')
		return ref_bracketed(s, n, r);
	/* one colon: IPv4 and a port; more: a bare IPv6 address, no port */
	size_t end = count(s, n, ':') == 1 ? find(s, n, ':') : n;
	size_t slash = find(s, end, '/');
	if (!ref_addr(s, slash, s + slash + 1, slash < end ? end - slash - 1 : 0,
	              slash < end, r))
		return false;
	return end == n || ref_ports(s + end + 1, n - end - 1, r);
}

static bool ref_bit(const uint8_t *a, unsigned i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1;
}

/* The destination as 128 bits, 0.0.0.0 and :: as 127.0.0.1 and ::1. */
static void ref_dest(int family, const uint8_t *addr, uint8_t out[16], bool *v4)
{
	static const uint8_t any[16];
	if (family == AF_INET) {
		memcpy(out, mapped_prefix, 12);
		memcpy(out + 12, addr, 4);
	} else {
		memcpy(out, addr, 16);
	}
	*v4 = memcmp(out, mapped_prefix, 12) == 0;
	if (*v4 && memcmp(out + 12, any, 4) == 0) {
		out[12] = 127;
		out[15] = 1;
	} else if (memcmp(out, any, 16) == 0) {
		out[15] = 1;
	}
}

static bool ref_match(const struct ref_rule *r, const uint8_t *d, bool v4, unsigned port)
{
	if (v4 && !r->v4 && r->bits < 96)
		return false;
	for (unsigned i = 0; i < r->bits; i++)
		if (ref_bit(d, i) != ref_bit(r->a, i))
			return false;
	return r->lo == 0 || (port >= r->lo && port <= r->hi);
}

static const char *const builtin[] = {"127.0.0.0/8", "0.0.0.0/8", "169.254.0.0/16",
                                      "::1",         "fe80::/10", "fd00:ec2::254"};

/* -1: allowed; else the deciding user rule's index, or -2 - the built-in's. */
static int ref_verdict(const struct ref_rule *rules, size_t n, bool exposed,
                       bool allow_local, int family, const uint8_t *addr, unsigned port)
{
	uint8_t d[16];
	bool v4;
	ref_dest(family, addr, d, &v4);
	for (size_t i = 0; i < n; i++)
		if (ref_match(&rules[i], d, v4, port))
			return rules[i].allow ? -1 : (int)i;
	if (!exposed || allow_local)
		return -1;
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
		struct ref_rule b;
		CHECK(ref_parse(builtin[i], strlen(builtin[i]), &b));
		if (ref_match(&b, d, v4, port))
			return -2 - (int)i;
	}
	return -1;
}

/* --- the target -----------------------------------------------------------------------
 */

static void check_one(const struct acl *acl, const struct ref_rule *ref, size_t nref,
                      int family, const uint8_t *addr, unsigned port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons((uint16_t)port)};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
	                            .sin6_port = htons((uint16_t)port)};
	const char *got;

	if (family == AF_INET) {
		memcpy(&sin.sin_addr, addr, 4);
		got = acl_check(acl, (const struct sockaddr *)&sin, ACL_OTHER);
	} else {
		memcpy(&sin6.sin6_addr, addr, 16);
		got = acl_check(acl, (const struct sockaddr *)&sin6, ACL_OTHER);
	}
	int want = ref_verdict(ref, nref, acl->exposed, acl->allow_local, family, addr,
	                       port);
	if (want == -1) {
		CHECK(got == NULL);
	} else if (want >= 0) {
		CHECK(got == acl->rules[want].text);
	} else {
		const char *b = builtin[-2 - want];
		CHECK(got && strncmp(got, b, strlen(b)) == 0 && got[strlen(b)] == ' ');
	}
}

/* One line: acl_add_rule() on it, behind a guard page, against the reference. */
static void add_line(struct acl *acl, struct ref_rule *ref, size_t *nref,
                     const uint8_t *s, size_t len)
{
	static struct guarded g;
	struct ref_rule want;
	bool allow = len > 0 && s[0] == '+';
	char *text = (char *)guarded_end(&g, 2 * FUZZ_INPUT_MAX, len + 1);
	size_t before = acl->nrules;

	memcpy(text, s, len);
	text[len] = '\0';
	text += allow;
	bool ok = ref_parse(text, len - allow, &want);
	int rc = acl_add_rule(acl, text, allow);
	if (before >= ACL_MAX_RULES) {
		CHECK(rc == -ENOSPC && acl->nrules == before);
		return;
	}
	CHECK(rc == (ok ? 0 : -EINVAL));
	CHECK(acl->nrules == before + (ok ? 1 : 0));
	if (!ok)
		return;
	want.allow = allow;
	ref[(*nref)++] = want;
}

int fuzz_last_good;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct acl acl;
	static struct ref_rule ref[ACL_MAX_RULES];
	size_t nref = 0, text = 0, good = 0;

	if (size > FUZZ_INPUT_MAX)
		size = FUZZ_INPUT_MAX;
	memset(&acl, 0, sizeof(acl));
	while (text < size && data[text] != 0)
		text++;
	for (size_t i = 0; i < text;) {
		size_t end = i;
		while (end < text && data[end] != '\n')
			end++;
		add_line(&acl, ref, &nref, data + i, end - i);
		i = end + 1;
	}
	good = acl.nrules;
	if (text + 1 < size) {
		acl.exposed = data[text + 1] & 1;
		acl.allow_local = data[text + 1] & 2;
	}
	/* every rule's own address, at its lowest port */
	for (size_t i = 0; i < nref; i++) {
		bool v4 = ref[i].v4;
		check_one(&acl, ref, nref, v4 ? AF_INET : AF_INET6,
		          ref[i].a + (v4 ? 12 : 0), ref[i].lo);
	}
	for (size_t i = text + 2; i + DEST_LEN <= size; i += DEST_LEN) {
		const uint8_t *d = data + i;
		check_one(&acl, ref, nref, d[0] % 2 ? AF_INET6 : AF_INET, d + 1,
		          (unsigned)d[17] << 8 | d[18]);
		good++;
	}
	fuzz_last_good = (int)good;
	return 0;
}

/* --- how replay_main.c mutates inputs ---------------------------------------------- */

static const uint8_t interesting[] = {0x00, 0x01, 0x0a, 0x20, 0x2b, 0x2d, 0x2e, 0x2f,
                                      0x30, 0x39, 0x3a, 0x7f, 0x80, 0xfe, 0xff};

static const char *const tokens[] = {
        "/",    "/0",         "/8",      "/32",       "/33",     "/128",
        "/129", "::",         "::ffff:", "127.0.0.1", "0.0.0.0", "10.0.0.0/8\n",
        "::1",  "fd00::/8\n", "-",       "+",         " ",       "\n",
        "[",    "]",          ":",       ":80",       ":1-1024", ":65535",
        "\n+",  "[::1]:",     "/96",     "/104",
};

/* Each as likely; the first three also apply to an empty input. */
static const enum fuzz_edit edits[] = {
        FUZZ_INSERT_BYTE,  FUZZ_APPEND_ENTRY, FUZZ_INSERT_TOKEN,
        FUZZ_FLIP_BIT,     FUZZ_SET_BYTE,     FUZZ_INSERT_TOKEN,
        FUZZ_DELETE_CHUNK, FUZZ_TRUNCATE,     FUZZ_DUPLICATE_CHUNK,
};

const struct fuzz_mutator fuzz_mutator = {
        .max_len = 4096,
        .edits = edits,
        .nedits = sizeof(edits) / sizeof(edits[0]),
        .nedits_empty = 3,
        .interesting = interesting,
        .ninteresting = sizeof(interesting),
        .tokens = tokens,
        .ntokens = sizeof(tokens) / sizeof(tokens[0]),
        .report_kept = true,
};
