/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the SOCKS5 wire codec (shim/common/socks5.c), printed as TAP.
 *
 * Every decoder input is copied to the very end of an mmap'd page that is
 * followed by a PROT_NONE page, and every encoder writes into a buffer that
 * ends at that same guard page, so a single byte read or written past the end
 * crashes the test instead of passing silently (picohttpparser's style).
 * Each valid message is checked at every truncation (SOCKS5_PARTIAL), at its
 * exact length and with trailing bytes; each invalid one is checked to fail
 * with the documented code as soon as its offending byte arrives.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/un.h>
#include <unistd.h>

#include "socks5.h"
#include "tap.h"

/* --- guard-page buffers ---------------------------------------------------------- */

static uint8_t *guard_page; /* an accessible page; the next one is PROT_NONE */
static size_t page_size;

static void guard_init(void)
{
	page_size = (size_t)sysconf(_SC_PAGESIZE);
	void *p = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect((uint8_t *)p + page_size, page_size, PROT_NONE)) {
		perror("guard page");
		exit(2);
	}
	guard_page = p;
}

/* Copies n bytes so that the last one sits right before the guard page. */
static const uint8_t *at_end(const void *src, size_t n)
{
	if (n > page_size)
		abort();
	uint8_t *dst = guard_page + page_size - n;
	memmove(dst, src, n);
	return dst;
}

/* An output buffer of cap bytes ending at the guard page, filled with 0xa5. */
static uint8_t *out_end(size_t cap)
{
	if (cap > page_size)
		abort();
	uint8_t *dst = guard_page + page_size - cap;
	memset(dst, 0xa5, cap);
	return dst;
}

/* --- decoders behind one interface ---------------------------------------------------
 */

enum kind {
	K_GREETING,
	K_METHOD_REPLY,
	K_USERPASS,
	K_AUTH_REPLY,
	K_REQUEST,
	K_REPLY,
	K_UDP,
	K_ADDR,
};

union decoded {
	struct socks5_greeting greeting;
	uint8_t byte;
	struct socks5_userpass userpass;
	struct socks5_request request;
	struct socks5_udp_header udp;
	struct socks5_addr addr;
};

static const char *const kind_names[] = {
        [K_GREETING] = "greeting", [K_METHOD_REPLY] = "method reply",
        [K_USERPASS] = "userpass", [K_AUTH_REPLY] = "auth reply",
        [K_REQUEST] = "request",   [K_REPLY] = "reply",
        [K_UDP] = "udp header",    [K_ADDR] = "address",
};

static ssize_t decode(enum kind k, const uint8_t *buf, size_t len, union decoded *out)
{
	memset(out, 0xee, sizeof(*out));
	switch (k) {
	case K_GREETING:
		return socks5_greeting_parse(buf, len, &out->greeting);
	case K_METHOD_REPLY:
		return socks5_method_reply_parse(buf, len, &out->byte);
	case K_USERPASS:
		return socks5_userpass_parse(buf, len, &out->userpass);
	case K_AUTH_REPLY:
		return socks5_auth_reply_parse(buf, len, &out->byte);
	case K_REQUEST:
		return socks5_request_parse(buf, len, &out->request);
	case K_REPLY:
		return socks5_reply_parse(buf, len, &out->request);
	case K_UDP:
		return socks5_udp_header_parse(buf, len, &out->udp);
	case K_ADDR:
		return socks5_addr_parse(buf, len, &out->addr);
	}
	abort();
}

/* Every proper prefix of msg must decode to SOCKS5_PARTIAL. */
static void check_prefixes(enum kind k, const uint8_t *msg, size_t len, const char *name)
{
	union decoded d;
	size_t bad = 0;
	ssize_t got = SOCKS5_PARTIAL;

	for (size_t n = 0; n < len; n++) {
		got = decode(k, at_end(msg, n), n, &d);
		if (got != SOCKS5_PARTIAL) {
			bad = n + 1;
			break;
		}
	}
	if (!tap_ok(bad == 0, "%s %s: all %zu truncations are partial", kind_names[k],
	            name, len))
		tap_diag("length %zu gave %zd", bad - 1, got);
}

/*
 * A valid message: prefixes are partial, the whole decodes to len, and so it
 * does with trailing bytes. The decoded result of the exact input is left in d.
 */
static void check_valid(enum kind k, const void *msg, size_t len, const char *name,
                        union decoded *d)
{
	static const uint8_t trailer[] = {0x05, 0x01, 0x00, 0xff, 0x00, 0x03};
	uint8_t copy[SOCKS5_USERPASS_MAX], more[2 * SOCKS5_USERPASS_MAX];

	if (len > sizeof(copy))
		abort();
	memcpy(copy, msg, len); /* msg may sit in the guard page that at_end() reuses */
	check_prefixes(k, copy, len, name);
	memcpy(more, copy, len);
	memcpy(more + len, trailer, sizeof(trailer));
	tap_is(decode(k, at_end(more, len + sizeof(trailer)), len + sizeof(trailer), d),
	       (long long)len, "%s %s: trailing bytes are left alone", kind_names[k],
	       name);
	memcpy(more + len, copy, len);
	tap_is(decode(k, at_end(more, 2 * len), 2 * len, d), (long long)len,
	       "%s %s: two in a row decode as one", kind_names[k], name);
	tap_is(decode(k, at_end(copy, len), len, d), (long long)len,
	       "%s %s: decodes to its %zu bytes", kind_names[k], name, len);
}

/*
 * An invalid message whose last byte is the offending one: every prefix is
 * partial, the whole fails with `want`, and still does with more bytes.
 */
static void check_bad(enum kind k, const void *msg, size_t len, ssize_t want,
                      const char *name, union decoded *d)
{
	uint8_t more[64];

	if (len + 8 > sizeof(more))
		abort();
	check_prefixes(k, msg, len, name);
	memcpy(more, msg, len);
	memset(more + len, 0x41, 8);
	tap_is(decode(k, at_end(more, len + 8), len + 8, d), want,
	       "%s %s: fails with more bytes too", kind_names[k], name);
	tap_is(decode(k, at_end(msg, len), len, d), want, "%s %s: fails with %zd",
	       kind_names[k], name, want);
}

#define VALID(k, name, d, ...)                                                           \
	do {                                                                             \
		static const uint8_t m_[] = {__VA_ARGS__};                               \
		check_valid(k, m_, sizeof(m_), name, d);                                 \
	} while (0)

#define BAD(k, want, name, d, ...)                                                       \
	do {                                                                             \
		static const uint8_t m_[] = {__VA_ARGS__};                               \
		check_bad(k, m_, sizeof(m_), want, name, d);                             \
	} while (0)

/* --- encoders ------------------------------------------------------------------ */

/* An encoder under test, bound to its arguments. */
typedef size_t (*encode_fn)(uint8_t *buf, size_t cap, const void *arg);

/*
 * Every cap below the needed size returns 0 and writes nothing; the exact cap
 * (the buffer ends at the guard page) gives exactly `want`.
 */
static void check_encoder(encode_fn fn, const void *arg, const uint8_t *want,
                          size_t want_len, const char *name)
{
	size_t bad = 0;

	for (size_t cap = 0; cap < want_len && !bad; cap++) {
		uint8_t *out = out_end(cap);
		if (fn(out, cap, arg) != 0)
			bad = cap + 1;
		for (size_t i = 0; i < cap && !bad; i++)
			if (out[i] != 0xa5)
				bad = cap + 1;
	}
	if (!tap_ok(bad == 0, "encode %s: caps 0..%zu fail and write nothing", name,
	            want_len - 1))
		tap_diag("cap %zu", bad - 1);
	uint8_t *out = out_end(want_len);
	size_t n = fn(out, want_len, arg);
	tap_ok(n == want_len && memcmp(out, want, want_len) == 0,
	       "encode %s: %zu bytes as expected", name, want_len);
}

struct enc_args {
	uint8_t byte;
	const uint8_t *methods;
	size_t nmethods;
	const char *user, *pass;
	size_t ulen, plen;
	const struct socks5_addr *addr;
};

static size_t enc_greeting(uint8_t *buf, size_t cap, const void *arg)
{
	const struct enc_args *a = arg;
	return socks5_greeting_encode(buf, cap, a->methods, a->nmethods);
}

static size_t enc_method_reply(uint8_t *buf, size_t cap, const void *arg)
{
	return socks5_method_reply_encode(buf, cap, ((const struct enc_args *)arg)->byte);
}

static size_t enc_auth_reply(uint8_t *buf, size_t cap, const void *arg)
{
	return socks5_auth_reply_encode(buf, cap, ((const struct enc_args *)arg)->byte);
}

static size_t enc_userpass(uint8_t *buf, size_t cap, const void *arg)
{
	const struct enc_args *a = arg;
	return socks5_userpass_encode(buf, cap, a->user, a->ulen, a->pass, a->plen);
}

static size_t enc_request(uint8_t *buf, size_t cap, const void *arg)
{
	const struct enc_args *a = arg;
	return socks5_request_encode(buf, cap, a->byte, a->addr);
}

static size_t enc_reply(uint8_t *buf, size_t cap, const void *arg)
{
	const struct enc_args *a = arg;
	return socks5_reply_encode(buf, cap, a->byte, a->addr);
}

static size_t enc_udp(uint8_t *buf, size_t cap, const void *arg)
{
	const struct enc_args *a = arg;
	return socks5_udp_header_encode(buf, cap, a->byte, a->addr);
}

static size_t enc_addr(uint8_t *buf, size_t cap, const void *arg)
{
	return socks5_addr_encode(buf, cap, ((const struct enc_args *)arg)->addr);
}

/* --- addresses used throughout ------------------------------------------------------ */

static struct socks5_addr addr_v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                                  uint16_t port)
{
	struct socks5_addr addr = {.atyp = SOCKS5_ATYP_IPV4, .port = port};
	addr.host.ipv4[0] = a;
	addr.host.ipv4[1] = b;
	addr.host.ipv4[2] = c;
	addr.host.ipv4[3] = d;
	return addr;
}

static struct socks5_addr addr_v6(const char *text, uint16_t port)
{
	struct socks5_addr addr = {.atyp = SOCKS5_ATYP_IPV6, .port = port};
	if (inet_pton(AF_INET6, text, addr.host.ipv6) != 1)
		abort();
	return addr;
}

static struct socks5_addr addr_name(const char *name, uint16_t port)
{
	struct socks5_addr addr;
	if (socks5_addr_set_domain(&addr, name, strlen(name), port) != 0)
		abort();
	return addr;
}

static int addr_equal(const struct socks5_addr *a, const struct socks5_addr *b)
{
	if (a->atyp != b->atyp || a->port != b->port)
		return 0;
	switch (a->atyp) {
	case SOCKS5_ATYP_IPV4:
		return memcmp(a->host.ipv4, b->host.ipv4, 4) == 0;
	case SOCKS5_ATYP_IPV6:
		return memcmp(a->host.ipv6, b->host.ipv6, 16) == 0;
	case SOCKS5_ATYP_DOMAIN:
		return a->domain_len == b->domain_len &&
		       memcmp(a->host.domain, b->host.domain, a->domain_len + 1u) == 0;
	default:
		return 0;
	}
}

#define V4_1234_80 0x01, 1, 2, 3, 4, 0x00, 0x50
#define V6_DB8_1_443                                                                     \
	0x04, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x01, 0xbb
#define NAME_EXAMPLE_8080                                                                \
	0x03, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0x1f, 0x90

/* --- greeting, method reply, auth reply ------------------------------------------------
 */

static void test_greeting(void)
{
	union decoded d;
	uint8_t all[2 + 255], methods[255];

	VALID(K_GREETING, "one method", &d, 0x05, 0x01, 0x00);
	tap_ok(d.greeting.nmethods == 1 && d.greeting.methods[0] == 0,
	       "greeting one method: fields");
	tap_ok(socks5_greeting_offers(&d.greeting, SOCKS5_METHOD_NONE) &&
	               !socks5_greeting_offers(&d.greeting, SOCKS5_METHOD_USERPASS),
	       "greeting offers NONE only");
	VALID(K_GREETING, "two methods", &d, 0x05, 0x02, 0x00, 0x02);
	tap_ok(socks5_greeting_offers(&d.greeting, SOCKS5_METHOD_USERPASS) &&
	               !socks5_greeting_offers(&d.greeting, SOCKS5_METHOD_GSSAPI),
	       "greeting offers USERPASS, not GSSAPI");
	for (size_t i = 0; i < 255; i++)
		methods[i] = (uint8_t)(i + 1);
	all[0] = 0x05;
	all[1] = 255;
	memcpy(all + 2, methods, 255);
	check_valid(K_GREETING, all, sizeof(all), "255 methods", &d);
	tap_ok(d.greeting.nmethods == 255 &&
	               memcmp(d.greeting.methods, methods, 255) == 0,
	       "greeting 255 methods: fields");
	tap_ok(socks5_greeting_offers(&d.greeting, 0xff) &&
	               !socks5_greeting_offers(&d.greeting, 0x00),
	       "greeting offers the last method only if listed");
	BAD(K_GREETING, SOCKS5_BAD, "version 4", &d, 0x04);
	BAD(K_GREETING, SOCKS5_BAD, "NMETHODS 0", &d, 0x05, 0x00);

	struct enc_args a = {.methods = methods, .nmethods = 255};
	check_encoder(enc_greeting, &a, all, sizeof(all), "greeting 255 methods");
	a.methods = (const uint8_t[]){0x00, 0x02};
	a.nmethods = 2;
	check_encoder(enc_greeting, &a, (const uint8_t[]){0x05, 0x02, 0x00, 0x02}, 4,
	              "greeting 2 methods");
	uint8_t buf[512];
	tap_is((long long)socks5_greeting_encode(buf, sizeof(buf), methods, 0), 0,
	       "encode greeting: 0 methods is refused");
	tap_is((long long)socks5_greeting_encode(buf, sizeof(buf), buf, 256), 0,
	       "encode greeting: 256 methods is refused");
}

static void test_two_byte_messages(void)
{
	union decoded d;

	VALID(K_METHOD_REPLY, "NONE", &d, 0x05, 0x00);
	tap_is(d.byte, 0x00, "method reply NONE: method");
	VALID(K_METHOD_REPLY, "UNACCEPTABLE", &d, 0x05, 0xff);
	tap_is(d.byte, 0xff, "method reply UNACCEPTABLE: method");
	BAD(K_METHOD_REPLY, SOCKS5_BAD, "version 1", &d, 0x01);
	VALID(K_AUTH_REPLY, "success", &d, 0x01, 0x00);
	tap_is(d.byte, SOCKS5_AUTH_SUCCESS, "auth reply success: status");
	VALID(K_AUTH_REPLY, "failure", &d, 0x01, 0x01);
	tap_is(d.byte, SOCKS5_AUTH_FAILURE, "auth reply failure: status");
	BAD(K_AUTH_REPLY, SOCKS5_BAD, "version 5", &d, 0x05);

	struct enc_args a = {.byte = SOCKS5_METHOD_USERPASS};
	check_encoder(enc_method_reply, &a, (const uint8_t[]){0x05, 0x02}, 2,
	              "method reply");
	a.byte = SOCKS5_AUTH_FAILURE;
	check_encoder(enc_auth_reply, &a, (const uint8_t[]){0x01, 0x01}, 2, "auth reply");
}

/* --- RFC 1929 request --------------------------------------------------------------- */

static void test_userpass_max(void)
{
	union decoded d;
	char user[255], pass[255];
	uint8_t msg[SOCKS5_USERPASS_MAX];

	memset(user, 'u', sizeof(user));
	memset(pass, 'p', sizeof(pass));
	msg[0] = 0x01;
	msg[1] = 255;
	memcpy(msg + 2, user, 255);
	msg[257] = 255;
	memcpy(msg + 258, pass, 255);
	check_valid(K_USERPASS, msg, sizeof(msg), "255/255", &d);
	tap_ok(d.userpass.ulen == 255 && d.userpass.plen == 255 &&
	               strlen(d.userpass.user) == 255 && strlen(d.userpass.pass) == 255,
	       "userpass 255/255: fields NUL-terminated");
	struct enc_args a = {.user = user, .ulen = 255, .pass = pass, .plen = 255};
	check_encoder(enc_userpass, &a, msg, sizeof(msg), "userpass 255/255");
	tap_is((long long)socks5_userpass_encode(msg, sizeof(msg), user, 256, pass, 0), 0,
	       "encode userpass: ulen 256 is refused");
	tap_is((long long)socks5_userpass_encode(msg, sizeof(msg), user, 0, pass, 256), 0,
	       "encode userpass: plen 256 is refused");
	tap_is((long long)socks5_userpass_encode(msg, sizeof(msg), "a\0b", 3, "", 0), 0,
	       "encode userpass: NUL in user is refused");
	tap_is((long long)socks5_userpass_encode(msg, sizeof(msg), "a", 1, "b\0", 2), 0,
	       "encode userpass: NUL in password is refused");
}

static void test_userpass(void)
{
	union decoded d;

	VALID(K_USERPASS, "user/pass", &d, 0x01, 4, 'u', 's', 'e', 'r', 4, 'p', 'a', 's',
	      's');
	tap_ok(d.userpass.ulen == 4 && strcmp(d.userpass.user, "user") == 0 &&
	               d.userpass.plen == 4 && strcmp(d.userpass.pass, "pass") == 0,
	       "userpass user/pass: fields");
	VALID(K_USERPASS, "empty password", &d, 0x01, 3, 'b', 'o', 'b', 0);
	tap_ok(d.userpass.plen == 0 && d.userpass.pass[0] == '\0' &&
	               strcmp(d.userpass.user, "bob") == 0,
	       "userpass empty password: fields");
	VALID(K_USERPASS, "both empty", &d, 0x01, 0, 0);
	tap_ok(d.userpass.ulen == 0 && d.userpass.user[0] == '\0' && d.userpass.plen == 0,
	       "userpass both empty: fields");
	BAD(K_USERPASS, SOCKS5_BAD, "version 5", &d, 0x05);
	BAD(K_USERPASS, SOCKS5_BAD, "NUL in user", &d, 0x01, 3, 'a', 0);
	BAD(K_USERPASS, SOCKS5_BAD, "NUL in password", &d, 0x01, 1, 'a', 2, 'b', 0);

	struct enc_args a = {.user = "bob", .ulen = 3, .pass = NULL, .plen = 0};
	check_encoder(enc_userpass, &a, (const uint8_t[]){0x01, 3, 'b', 'o', 'b', 0}, 6,
	              "userpass empty password");
	test_userpass_max();
}

/* --- requests, replies, UDP headers, addresses -------------------------------------- */

static void test_request_valid(void)
{
	union decoded d;
	struct socks5_addr want;

	VALID(K_REQUEST, "CONNECT ipv4", &d, 0x05, 0x01, 0x00, V4_1234_80);
	want = addr_v4(1, 2, 3, 4, 80);
	tap_ok(d.request.cmd == SOCKS5_CMD_CONNECT && addr_equal(&d.request.addr, &want),
	       "request CONNECT ipv4: fields");
	VALID(K_REQUEST, "CONNECT ipv6", &d, 0x05, 0x01, 0x00, V6_DB8_1_443);
	want = addr_v6("2001:db8::1", 443);
	tap_ok(d.request.cmd == SOCKS5_CMD_CONNECT && addr_equal(&d.request.addr, &want),
	       "request CONNECT ipv6: fields");
	VALID(K_REQUEST, "CONNECT domain", &d, 0x05, 0x01, 0x00, NAME_EXAMPLE_8080);
	want = addr_name("example.com", 8080);
	tap_ok(d.request.cmd == SOCKS5_CMD_CONNECT && addr_equal(&d.request.addr, &want),
	       "request CONNECT domain: fields, NUL-terminated");
	VALID(K_REQUEST, "BIND", &d, 0x05, 0x02, 0x00, V4_1234_80);
	tap_is(d.request.cmd, SOCKS5_CMD_BIND, "request BIND: cmd");
	VALID(K_REQUEST, "UDP ASSOCIATE", &d, 0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0);
	want = addr_v4(0, 0, 0, 0, 0);
	tap_ok(d.request.cmd == SOCKS5_CMD_UDP_ASSOCIATE &&
	               addr_equal(&d.request.addr, &want),
	       "request UDP ASSOCIATE: fields");
	VALID(K_REQUEST, "port 65535", &d, 0x05, 0x01, 0x00, 0x03, 1, 'x', 0xff, 0xff);
	tap_is(d.request.addr.port, 65535, "request port 65535: big-endian port");
	VALID(K_REQUEST, "high bytes in name", &d, 0x05, 0x01, 0x00, 0x03, 2, 0x80, 0xff,
	      0x01, 0x00);
	tap_ok(d.request.addr.domain_len == 2 && d.request.addr.port == 256,
	       "request high bytes in name: kept as they are");
}

static void test_request_bad(void)
{
	union decoded d;

	BAD(K_REQUEST, SOCKS5_BAD, "version 4", &d, 0x04);
	BAD(K_REQUEST, SOCKS5_BAD_COMMAND, "CMD 0", &d, 0x05, 0x00);
	tap_is(d.request.cmd, 0x00, "request CMD 0: out->cmd is set");
	BAD(K_REQUEST, SOCKS5_BAD_COMMAND, "CMD 4", &d, 0x05, 0x04);
	tap_is(d.request.cmd, 0x04, "request CMD 4: out->cmd is set");
	BAD(K_REQUEST, SOCKS5_BAD_COMMAND, "CMD 0xff", &d, 0x05, 0xff);
	tap_is(d.request.cmd, 0xff, "request CMD 0xff: out->cmd is set");
	BAD(K_REQUEST, SOCKS5_BAD, "RSV 1", &d, 0x05, 0x01, 0x01);
	BAD(K_REQUEST, SOCKS5_BAD_ATYP, "ATYP 0", &d, 0x05, 0x01, 0x00, 0x00);
	BAD(K_REQUEST, SOCKS5_BAD_ATYP, "ATYP 2", &d, 0x05, 0x02, 0x00, 0x02);
	tap_is(d.request.cmd, SOCKS5_CMD_BIND, "request ATYP 2: out->cmd is set");
	BAD(K_REQUEST, SOCKS5_BAD_ATYP, "ATYP 5", &d, 0x05, 0x01, 0x00, 0x05);
	BAD(K_REQUEST, SOCKS5_BAD_ATYP, "ATYP 0xff", &d, 0x05, 0x01, 0x00, 0xff);
	BAD(K_REQUEST, SOCKS5_BAD, "zero-length domain", &d, 0x05, 0x01, 0x00, 0x03,
	    0x00);
	BAD(K_REQUEST, SOCKS5_BAD, "NUL inside domain", &d, 0x05, 0x01, 0x00, 0x03, 0x05,
	    'a', 'b', 0x00);
	BAD(K_REQUEST, SOCKS5_BAD, "NUL first in domain", &d, 0x05, 0x01, 0x00, 0x03,
	    0x01, 0x00);
}

static void test_reply(void)
{
	union decoded d;
	struct socks5_addr want;

	VALID(K_REPLY, "succeeded ipv4", &d, 0x05, 0x00, 0x00, V4_1234_80);
	want = addr_v4(1, 2, 3, 4, 80);
	tap_ok(d.request.cmd == SOCKS5_REP_SUCCEEDED &&
	               addr_equal(&d.request.addr, &want),
	       "reply succeeded ipv4: fields");
	VALID(K_REPLY, "refused ipv6", &d, 0x05, 0x05, 0x00, V6_DB8_1_443);
	tap_is(d.request.cmd, SOCKS5_REP_CONN_REFUSED, "reply refused ipv6: REP");
	VALID(K_REPLY, "domain", &d, 0x05, 0x00, 0x00, NAME_EXAMPLE_8080);
	want = addr_name("example.com", 8080);
	tap_ok(addr_equal(&d.request.addr, &want), "reply domain: fields");
	VALID(K_REPLY, "REP 0xff", &d, 0x05, 0xff, 0x00, V4_1234_80);
	tap_is(d.request.cmd, 0xff, "reply REP 0xff: accepted and reported");
	BAD(K_REPLY, SOCKS5_BAD, "version 4", &d, 0x04);
	BAD(K_REPLY, SOCKS5_BAD, "RSV 0x80", &d, 0x05, 0x00, 0x80);
	BAD(K_REPLY, SOCKS5_BAD_ATYP, "ATYP 5", &d, 0x05, 0x00, 0x00, 0x05);
	BAD(K_REPLY, SOCKS5_BAD, "zero-length domain", &d, 0x05, 0x00, 0x00, 0x03, 0x00);
}

static void test_udp(void)
{
	union decoded d;
	struct socks5_addr want;

	VALID(K_UDP, "ipv4", &d, 0x00, 0x00, 0x00, V4_1234_80);
	want = addr_v4(1, 2, 3, 4, 80);
	tap_ok(d.udp.frag == 0 && addr_equal(&d.udp.addr, &want),
	       "udp header ipv4: fields");
	VALID(K_UDP, "ipv6 FRAG 0x81", &d, 0x00, 0x00, 0x81, V6_DB8_1_443);
	tap_is(d.udp.frag, 0x81, "udp header FRAG 0x81: reported");
	VALID(K_UDP, "domain", &d, 0x00, 0x00, 0x00, NAME_EXAMPLE_8080);
	want = addr_name("example.com", 8080);
	tap_ok(addr_equal(&d.udp.addr, &want), "udp header domain: fields");
	BAD(K_UDP, SOCKS5_BAD, "first RSV 5", &d, 0x05);
	BAD(K_UDP, SOCKS5_BAD, "second RSV 1", &d, 0x00, 0x01);
	BAD(K_UDP, SOCKS5_BAD_ATYP, "ATYP 2", &d, 0x00, 0x00, 0x00, 0x02);
	BAD(K_UDP, SOCKS5_BAD, "NUL inside domain", &d, 0x00, 0x00, 0x00, 0x03, 0x02, 'a',
	    0x00);
	/* the payload after the header is the caller's */
	static const uint8_t dgram[] = {0, 0, 0, V4_1234_80, 'd', 'a', 't', 'a'};
	tap_is(socks5_udp_header_parse(at_end(dgram, sizeof(dgram)), sizeof(dgram),
	                               &d.udp),
	       10, "udp header: payload follows the returned length");
}

static void test_addr(void)
{
	union decoded d;

	VALID(K_ADDR, "ipv4", &d, V4_1234_80);
	VALID(K_ADDR, "ipv6", &d, V6_DB8_1_443);
	VALID(K_ADDR, "domain", &d, NAME_EXAMPLE_8080);
	tap_ok(d.addr.domain_len == 11 && strcmp(d.addr.host.domain, "example.com") == 0,
	       "address domain: NUL-terminated");
	BAD(K_ADDR, SOCKS5_BAD_ATYP, "ATYP 0", &d, 0x00);
	BAD(K_ADDR, SOCKS5_BAD, "zero-length domain", &d, 0x03, 0x00);
	BAD(K_ADDR, SOCKS5_BAD, "NUL inside domain", &d, 0x03, 0x03, 'a', 'b', 0x00);
}

/* Encoders of requests, replies, UDP headers and addresses; invalid addresses. */
static void test_addr_encoders(void)
{
	struct socks5_addr v4 = addr_v4(1, 2, 3, 4, 80), v6 = addr_v6("2001:db8::1", 443),
	                   name = addr_name("example.com", 8080);
	struct enc_args a = {.byte = SOCKS5_CMD_CONNECT, .addr = &v4};

	check_encoder(enc_request, &a, (const uint8_t[]){0x05, 0x01, 0x00, V4_1234_80},
	              10, "request ipv4");
	a.addr = &v6;
	check_encoder(enc_request, &a, (const uint8_t[]){0x05, 0x01, 0x00, V6_DB8_1_443},
	              22, "request ipv6");
	a.addr = &name;
	check_encoder(enc_request, &a,
	              (const uint8_t[]){0x05, 0x01, 0x00, NAME_EXAMPLE_8080}, 18,
	              "request domain");
	a.byte = SOCKS5_REP_HOST_UNREACHABLE;
	check_encoder(enc_reply, &a,
	              (const uint8_t[]){0x05, 0x04, 0x00, NAME_EXAMPLE_8080}, 18,
	              "reply domain");
	a.byte = 0x7f;
	a.addr = &v6;
	check_encoder(enc_udp, &a, (const uint8_t[]){0x00, 0x00, 0x7f, V6_DB8_1_443}, 22,
	              "udp header ipv6");
	a.addr = &v4;
	check_encoder(enc_addr, &a, (const uint8_t[]){V4_1234_80}, 7, "address ipv4");

	uint8_t buf[SOCKS5_REQUEST_MAX];
	tap_is((long long)socks5_request_encode(buf, sizeof(buf), 0, &v4), 0,
	       "encode request: CMD 0 is refused");
	tap_is((long long)socks5_request_encode(buf, sizeof(buf), 4, &v4), 0,
	       "encode request: CMD 4 is refused");
	static const uint8_t bad_atyps[] = {0x00, 0x02, 0x05, 0xff};
	for (size_t i = 0; i < sizeof(bad_atyps); i++) {
		struct socks5_addr bad = v4;
		bad.atyp = bad_atyps[i];
		tap_ok(socks5_addr_wire_len(&bad) == 0 &&
		               socks5_addr_encode(buf, sizeof(buf), &bad) == 0 &&
		               socks5_request_encode(buf, sizeof(buf), 1, &bad) == 0 &&
		               socks5_reply_encode(buf, sizeof(buf), 0, &bad) == 0 &&
		               socks5_udp_header_encode(buf, sizeof(buf), 0, &bad) == 0,
		       "encode: ATYP %u is refused everywhere", bad_atyps[i]);
	}
	struct socks5_addr bad = name;
	bad.domain_len = 0;
	tap_ok(socks5_addr_wire_len(&bad) == 0 &&
	               socks5_addr_encode(buf, 300, &bad) == 0 &&
	               socks5_reply_encode(buf, sizeof(buf), 0, &bad) == 0,
	       "encode: domain_len 0 is refused");
	bad = name;
	bad.host.domain[3] = '\0';
	tap_ok(socks5_addr_wire_len(&bad) == 0 &&
	               socks5_request_encode(buf, sizeof(buf), 1, &bad) == 0,
	       "encode: NUL inside domain is refused");
	tap_is((long long)socks5_addr_wire_len(&v4), 7, "wire length ipv4");
	tap_is((long long)socks5_addr_wire_len(&v6), 19, "wire length ipv6");
	tap_is((long long)socks5_addr_wire_len(&name), 15, "wire length domain");
}

/* A 255-byte name: set, encode, decode; 256 and other invalid names refused. */
static void test_domain_limits(void)
{
	char name[SOCKS5_DOMAIN_MAX + 2];
	struct socks5_addr a;
	union decoded d;
	uint8_t *out;

	memset(name, 'n', sizeof(name));
	name[sizeof(name) - 1] = '\0';
	tap_is(socks5_addr_set_domain(&a, name, 255, 443), 0, "set_domain: 255 bytes");
	tap_ok(a.atyp == SOCKS5_ATYP_DOMAIN && a.domain_len == 255 && a.port == 443 &&
	               strlen(a.host.domain) == 255,
	       "set_domain: 255 bytes stored NUL-terminated");
	out = out_end(SOCKS5_REQUEST_MAX);
	tap_is((long long)socks5_request_encode(out, SOCKS5_REQUEST_MAX, 1, &a),
	       SOCKS5_REQUEST_MAX,
	       "request with a 255-byte name fills SOCKS5_REQUEST_MAX");
	check_valid(K_REQUEST, out, SOCKS5_REQUEST_MAX, "255-byte name", &d);
	tap_ok(addr_equal(&d.request.addr, &a), "request 255-byte name: fields");
	out = out_end(SOCKS5_UDP_HEADER_MAX);
	tap_is((long long)socks5_udp_header_encode(out, SOCKS5_UDP_HEADER_MAX, 0, &a),
	       SOCKS5_UDP_HEADER_MAX, "udp header with a 255-byte name");
	check_valid(K_UDP, out, SOCKS5_UDP_HEADER_MAX, "255-byte name", &d);

	memset(&a, 0x5a, sizeof(a));
	tap_is(socks5_addr_set_domain(&a, name, 256, 1), -EINVAL,
	       "set_domain: 256 bytes is -EINVAL");
	tap_is(socks5_addr_set_domain(&a, name, 0, 1), -EINVAL,
	       "set_domain: empty is -EINVAL");
	tap_is(socks5_addr_set_domain(&a, "ab\0cd", 5, 1), -EINVAL,
	       "set_domain: NUL inside is -EINVAL");
	tap_is(socks5_addr_set_domain(&a, NULL, 3, 1), -EINVAL,
	       "set_domain: NULL is -EINVAL");
	tap_is(socks5_addr_set_domain(&a, "x", 1, 0), 0, "set_domain: 1 byte");
}

/* --- sockaddr conversions ----------------------------------------------------------- */

static void test_sockaddr_v4(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(1080)};
	struct sockaddr_storage ss;
	struct socks5_addr a, want = addr_v4(192, 0, 2, 1, 1080);

	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	tap_is(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sin, sizeof(sin)), 0,
	       "from sockaddr_in");
	tap_ok(addr_equal(&a, &want), "from sockaddr_in: 192.0.2.1:1080");
	memset(&ss, 0x77, sizeof(ss));
	tap_is(socks5_addr_to_sockaddr(&a, &ss), sizeof(struct sockaddr_in),
	       "to sockaddr_in: length");
	const struct sockaddr_in *back = (const struct sockaddr_in *)&ss;
	tap_ok(back->sin_family == AF_INET && back->sin_port == htons(1080) &&
	               back->sin_addr.s_addr == sin.sin_addr.s_addr,
	       "to sockaddr_in: family, port, address");
	/* a sockaddr_storage-sized length, as callers pass, is fine */
	memcpy(&ss, &sin, sizeof(sin));
	tap_is(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&ss, sizeof(ss)), 0,
	       "from sockaddr_in with a sockaddr_storage length");
	tap_is(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sin, sizeof(sin) - 1),
	       -EINVAL, "from sockaddr_in: short length is -EINVAL");
	tap_is(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sin, 0), -EINVAL,
	       "from sockaddr: zero length is -EINVAL");
	tap_is(socks5_addr_from_sockaddr(&a, NULL, sizeof(sin)), -EINVAL,
	       "from sockaddr: NULL is -EINVAL");
}

static void test_sockaddr_v6(void)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
	struct sockaddr_storage ss;
	struct socks5_addr a, want = addr_v6("2001:db8::1", 443);
	char text[SOCKS5_ADDR_STRLEN];

	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	tap_is(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof(sin6)), 0,
	       "from sockaddr_in6");
	tap_ok(addr_equal(&a, &want), "from sockaddr_in6: [2001:db8::1]:443");
	tap_is(socks5_addr_to_sockaddr(&a, &ss), sizeof(struct sockaddr_in6),
	       "to sockaddr_in6: length");
	const struct sockaddr_in6 *back = (const struct sockaddr_in6 *)&ss;
	tap_ok(back->sin6_family == AF_INET6 && back->sin6_port == htons(443) &&
	               memcmp(&back->sin6_addr, &sin6.sin6_addr, 16) == 0,
	       "to sockaddr_in6: family, port, address");
	tap_is(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof(sin6) - 1),
	       -EINVAL, "from sockaddr_in6: short length is -EINVAL");

	inet_pton(AF_INET6, "::ffff:192.0.2.1", &sin6.sin6_addr);
	sin6.sin6_port = htons(80);
	tap_is(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof(sin6)), 0,
	       "from v4-mapped sockaddr_in6");
	want = addr_v6("::ffff:192.0.2.1", 80);
	tap_ok(addr_equal(&a, &want), "v4-mapped address stays IPv6");
	tap_ok(strcmp(socks5_addr_format(&a, text, sizeof(text)),
	              "[::ffff:192.0.2.1]:80") == 0,
	       "v4-mapped address formats as IPv6");
	tap_is(socks5_addr_to_sockaddr(&a, &ss), sizeof(struct sockaddr_in6),
	       "v4-mapped back to a sockaddr_in6");
}

static void test_sockaddr_other(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct sockaddr_storage ss;
	struct socks5_addr a = addr_name("example.com", 80);

	memset(&ss, 0x77, sizeof(ss));
	tap_is(socks5_addr_to_sockaddr(&a, &ss), 0, "to sockaddr: a domain gives 0");
	tap_is(ss.ss_family, AF_UNSPEC, "to sockaddr: a domain leaves AF_UNSPEC");
	a.atyp = 0x09;
	tap_is(socks5_addr_to_sockaddr(&a, &ss), 0, "to sockaddr: unknown ATYP gives 0");
	tap_is(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&sun, sizeof(sun)),
	       -EAFNOSUPPORT, "from sockaddr: AF_UNIX is -EAFNOSUPPORT");
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNSPEC;
	tap_is(socks5_addr_from_sockaddr(&a, (struct sockaddr *)&ss, sizeof(ss)),
	       -EAFNOSUPPORT, "from sockaddr: AF_UNSPEC is -EAFNOSUPPORT");
}

/* --- formatting and names -------------------------------------------------------------
 */

static void check_format(const struct socks5_addr *a, const char *want)
{
	char buf[SOCKS5_ADDR_STRLEN];
	memset(buf, 'Z', sizeof(buf));
	const char *got = socks5_addr_format(a, buf, sizeof(buf));
	if (!tap_ok(got == buf && strcmp(buf, want) == 0, "format \"%s\"", want))
		tap_diag("got \"%s\"", buf);
}

static void test_format(void)
{
	struct socks5_addr a;
	char name[SOCKS5_DOMAIN_MAX + 1], want[SOCKS5_ADDR_STRLEN], *out;

	a = addr_v4(1, 2, 3, 4, 80);
	check_format(&a, "1.2.3.4:80");
	a = addr_v6("2001:db8::1", 80);
	check_format(&a, "[2001:db8::1]:80");
	a = addr_name("name", 80);
	check_format(&a, "name:80");
	a = addr_name("a\nb\x1b[c\x7f\xff", 1);
	check_format(&a, "a?b?[c??:1");
	a = addr_v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	check_format(&a, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
	memset(name, 'q', 255);
	name[255] = '\0';
	a = addr_name(name, 65535);
	snprintf(want, sizeof(want), "%s:65535", name);
	check_format(&a, want);
	a.atyp = 0x02;
	check_format(&a, "?:65535");

	a = addr_v4(10, 0, 0, 1, 8080);
	out = (char *)out_end(5);
	socks5_addr_format(&a, out, 5);
	tap_ok(strcmp(out, "10.0") == 0, "format truncates and NUL-terminates");
	out = (char *)out_end(1);
	socks5_addr_format(&a, out, 1);
	tap_ok(out[0] == '\0', "format with cap 1 gives an empty string");
	out = (char *)out_end(1);
	socks5_addr_format(&a, out, 0);
	tap_ok((uint8_t)out[0] == 0xa5, "format with cap 0 writes nothing");
}

static void test_names(void)
{
	static const char *const reps[] = {
	        "succeeded",
	        "general SOCKS server failure",
	        "connection not allowed by ruleset",
	        "network unreachable",
	        "host unreachable",
	        "connection refused",
	        "TTL expired",
	        "command not supported",
	        "address type not supported",
	};
	for (unsigned i = 0; i < sizeof(reps) / sizeof(reps[0]); i++)
		tap_ok(strcmp(socks5_rep_name((uint8_t)i), reps[i]) == 0,
		       "rep name %u: %s", i, reps[i]);
	tap_ok(strcmp(socks5_rep_name(9), "unassigned reply code") == 0 &&
	               strcmp(socks5_rep_name(0xff), "unassigned reply code") == 0,
	       "rep names 9 and 0xff: unassigned reply code");
	tap_ok(strcmp(socks5_cmd_name(1), "CONNECT") == 0 &&
	               strcmp(socks5_cmd_name(2), "BIND") == 0 &&
	               strcmp(socks5_cmd_name(3), "UDP ASSOCIATE") == 0,
	       "cmd names");
	tap_ok(strcmp(socks5_cmd_name(0), "unknown") == 0 &&
	               strcmp(socks5_cmd_name(4), "unknown") == 0 &&
	               strcmp(socks5_cmd_name(0xff), "unknown") == 0,
	       "cmd names of unknown commands");
}

static void test_errno(void)
{
	static const struct {
		int err;
		uint8_t rep;
	} from[] = {
	        {0, 0},         {ECONNREFUSED, 5}, {ENETUNREACH, 3},
	        {ENETDOWN, 3},  {EHOSTUNREACH, 4}, {EHOSTDOWN, 4},
	        {ETIMEDOUT, 4}, {ENOENT, 4},       {EACCES, 2},
	        {EPERM, 2},     {EAFNOSUPPORT, 8}, {EIO, 1},
	        {ENOMEM, 1},    {EMFILE, 1},       {12345, 1},
	};
	static const int to[] = {
	        0,           ECONNABORTED, EACCES,
	        ENETUNREACH, EHOSTUNREACH, ECONNREFUSED,
	        ETIMEDOUT,   EOPNOTSUPP,   EAFNOSUPPORT,
	};

	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++)
		tap_is(socks5_rep_from_errno(from[i].err), from[i].rep,
		       "rep from errno %d (%s)", from[i].err, strerror(from[i].err));
	for (unsigned i = 0; i < sizeof(to) / sizeof(to[0]); i++)
		tap_is(socks5_rep_to_errno((uint8_t)i), to[i], "errno from rep %u (%s)",
		       i, socks5_rep_name((uint8_t)i));
	tap_ok(socks5_rep_to_errno(9) == EPROTO && socks5_rep_to_errno(0xff) == EPROTO,
	       "errno from unassigned reps 9 and 0xff: EPROTO");
}

int main(void)
{
	tap_init();
	guard_init();
	test_greeting();
	test_two_byte_messages();
	test_userpass();
	test_request_valid();
	test_request_bad();
	test_reply();
	test_udp();
	test_addr();
	test_addr_encoders();
	test_domain_limits();
	test_sockaddr_v4();
	test_sockaddr_v6();
	test_sockaddr_other();
	test_format();
	test_names();
	test_errno();
	return tap_done();
}
