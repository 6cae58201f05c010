/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the SOCKS5 wire codec (shim/common/socks5.c).
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
 * Linked with replay_main.c it gets a main() for any compiler, which replays
 * corpus files and directories and runs deterministic random mutations of
 * them (see there; tests/fuzz/meson.build builds it so). With clang, build it
 * without replay_main.c as a real libFuzzer target instead:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ishim/common \
 *       tests/fuzz/fuzz_proto.c shim/common/socks5.c -o fuzz_proto
 *   ./fuzz_proto tests/fuzz/corpus/proto
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "replay.h"
#include "socks5.h"

const char fuzz_target_name[] = "fuzz_proto";

/* Inputs longer than this are cut: no message is anywhere near as long. */
#define SPAN_LEN FUZZ_INPUT_MAX

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

static struct guarded input_span; /* the input ends at a guard page */

/* Runs every decoder; returns how many decoded a whole message. */
static int fuzz_one(const uint8_t *data, size_t size)
{
	union msg m;
	int decoded = 0;

	if (size > SPAN_LEN)
		size = SPAN_LEN;
	const uint8_t *buf = guarded_copy(&input_span, SPAN_LEN, data, size);
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

int fuzz_last_good;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_last_good = fuzz_one(data, size);
	return 0;
}

/* --- how replay_main.c mutates inputs --------------------------------------------- */

static const uint8_t interesting[] = {0x00, 0x01, 0x03, 0x04, 0x05, 0xff};

/* Each as likely; the first two also apply to an empty input. */
static const enum fuzz_edit edits[] = {
        FUZZ_INSERT_BYTE, FUZZ_APPEND_ENTRY, FUZZ_FLIP_BIT,        FUZZ_SET_BYTE,
        FUZZ_SET_BYTE,    FUZZ_TRUNCATE,     FUZZ_DUPLICATE_CHUNK,
};

const struct fuzz_mutator fuzz_mutator = {
        .max_len = 1024,
        .edits = edits,
        .nedits = sizeof(edits) / sizeof(edits[0]),
        .nedits_empty = 2,
        .interesting = interesting,
        .ninteresting = sizeof(interesting),
};
