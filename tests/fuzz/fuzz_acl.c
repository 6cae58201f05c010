/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for socksify-server's destination rules (cli/server/acl.c): the
 * --deny CIDR parser and the matcher.
 *
 * The input's text up to its first NUL byte is lines, each handed to
 * acl_add_deny() as a string that ends right before a PROT_NONE page; the
 * bytes after the NUL are destinations, 17 bytes each (a family byte, even for
 * IPv4 and odd for IPv6, then the address), each put to acl_denies(). Both are
 * checked against a reference written here another way: a rule is taken
 * exactly when its text is ADDR or ADDR/DIGITS (an IPv4 or IPv6 address, a
 * decimal prefix length no longer than the address), until ACL_MAX_RULES; a
 * destination is denied exactly when some rule's first PREFIX bits are its
 * own, compared bit by bit (IPv4 rules also see v4-mapped IPv6 destinations;
 * 0.0.0.0/8 is 127.0.0.1 and :: is ::1, where Linux connects them); every rule
 * denies its own address. Any difference abort()s.
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

enum { DEST_LEN = 17 };

/* --- the reference ------------------------------------------------------------------ */

/* ADDR or ADDR/DIGITS, the prefix no longer than the address: its rule. */
static bool ref_parse(const char *s, size_t len, struct acl_rule *r)
{
	char host[INET6_ADDRSTRLEN];
	size_t h = 0;

	while (h < len && s[h] != '/')
		h++;
	if (h == 0 || h >= sizeof(host))
		return false;
	memcpy(host, s, h);
	host[h] = '\0';
	memset(r, 0, sizeof(*r));
	if (inet_pton(AF_INET, host, r->addr) == 1)
		r->family = AF_INET;
	else if (inet_pton(AF_INET6, host, r->addr) == 1)
		r->family = AF_INET6;
	else
		return false;
	unsigned max = r->family == AF_INET ? 32 : 128, p = 0;
	r->prefix = max;
	if (h == len)
		return true;
	if (h + 1 == len)
		return false;
	for (size_t i = h + 1; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		p = p * 10 + (unsigned)(s[i] - '0');
		if (p > max)
			return false;
	}
	r->prefix = p;
	return true;
}

static bool bit(const uint8_t *a, unsigned i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1;
}

static bool ref_match(const struct acl_rule *r, const uint8_t *a)
{
	for (unsigned i = 0; i < r->prefix; i++)
		if (bit(a, i) != bit(r->addr, i))
			return false;
	return true;
}

static bool ref_denies(const struct acl_rule *rules, size_t n, int family,
                       const uint8_t *addr)
{
	static const uint8_t lo4[4] = {127, 0, 0, 1}, lo6[16] = {[15] = 1};
	static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff}, any6[16] = {0};
	const uint8_t *v4 = NULL, *v6 = NULL;

	if (family == AF_INET) {
		v4 = addr;
	} else {
		v6 = memcmp(addr, any6, 16) == 0 ? lo6 : addr;
		if (memcmp(addr, mapped, 12) == 0)
			v4 = addr + 12;
	}
	if (v4 && v4[0] == 0)
		v4 = lo4;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *a = rules[i].family == AF_INET ? v4 : v6;
		if (a && ref_match(&rules[i], a))
			return true;
	}
	return false;
}

/* --- the target -----------------------------------------------------------------------
 */

static bool denies(const struct acl *acl, int family, const uint8_t *addr)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};

	if (family == AF_INET) {
		memcpy(&sin.sin_addr, addr, 4);
		return acl_denies(acl, (const struct sockaddr *)&sin);
	}
	memcpy(&sin6.sin6_addr, addr, 16);
	return acl_denies(acl, (const struct sockaddr *)&sin6);
}

/* One line: acl_add_deny() on it, behind a guard page, against the reference. */
static void add_line(struct acl *acl, struct acl_rule *ref, size_t *nref,
                     const uint8_t *s, size_t len)
{
	static struct guarded g;
	struct acl_rule want;
	char *text = (char *)guarded_end(&g, 2 * FUZZ_INPUT_MAX, len + 1);
	size_t before = acl->ndeny;

	memcpy(text, s, len);
	text[len] = '\0';
	bool ok = ref_parse(text, len, &want);
	int rc = acl_add_deny(acl, text);
	if (before >= ACL_MAX_RULES) {
		CHECK(rc == -ENOSPC && acl->ndeny == before);
		return;
	}
	CHECK(rc == (ok ? 0 : -EINVAL));
	CHECK(acl->ndeny == before + (ok ? 1 : 0));
	if (!ok)
		return;
	const struct acl_rule *got = &acl->deny[before];
	CHECK(got->family == want.family && got->prefix == want.prefix);
	CHECK(memcmp(got->addr, want.addr, 16) == 0);
	ref[(*nref)++] = want;
	/* a rule denies its own address, where no rewrite of it intervenes */
	static const uint8_t any6[16] = {0};
	if (want.family == AF_INET ? want.addr[0] != 0 : memcmp(want.addr, any6, 16) != 0)
		CHECK(denies(acl, want.family, want.addr));
}

int fuzz_last_good;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct acl acl;
	static struct acl_rule ref[ACL_MAX_RULES];
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
	good = acl.ndeny;
	for (size_t i = text + 1; i + DEST_LEN <= size; i += DEST_LEN) {
		int family = data[i] % 2 ? AF_INET6 : AF_INET;
		bool d = denies(&acl, family, data + i + 1);
		CHECK(d == ref_denies(ref, nref, family, data + i + 1));
		good += d;
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
