/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the supervisor's DNS answers (cli/supervise/dnsmsg.c).
 *
 * LLVMFuzzerTestOneInput() copies the input to the very end of an mmap'd span
 * followed by a PROT_NONE page (so an over-read faults) and answers it from
 * a fake-DNS pool (shim/fakedns.c, attached on the first call). The answer
 * is checked against the query: none for a short message or a response; else
 * at least a header and at most DNSMSG_MAX bytes, the id, opcode and RD
 * copied, QR and RA set; a question only with QDCOUNT 1 and echoed
 * byte for byte; an A record only with NOERROR, 16 bytes that point at the
 * question's name, TTL 60, and an address of the pool whose name is the
 * question's (case aside). The same query answered again gives the same
 * bytes. Any inconsistency abort()s.
 *
 * Linked with replay_main.c it gets a main() for any compiler, which replays
 * corpus files and directories and runs deterministic random mutations of
 * them (see there; tests/fuzz/meson.build builds it so). With clang, build it
 * without replay_main.c as a real libFuzzer target instead:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ishim \
 *       -Icli/supervise tests/fuzz/fuzz_dnsmsg.c cli/supervise/dnsmsg.c \
 *       shim/fakedns.c shim/fakedns_pool.c -o fuzz_dnsmsg
 *   ./fuzz_dnsmsg tests/fuzz/corpus/dnsmsg
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "dnsmsg.h"
#include "fakedns.h"
#include "guard.h"
#include "replay.h"

const char fuzz_target_name[] = "fuzz_dnsmsg";

#define SPAN_LEN FUZZ_INPUT_MAX

enum { HDR = 12 };

static unsigned get16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* The question's name as text and the offset past its type and class, or 0
 * (as the answer must have read it: uncompressed labels, whole). */
static size_t question_end(const uint8_t *q, size_t qlen, char *name)
{
	size_t at = HDR, out = 0;
	while (at < qlen && q[at] != 0 && q[at] <= 63 && at + 1 + q[at] <= qlen) {
		if (out + 1 + q[at] > FAKEDNS_NAME_MAX)
			return 0;
		if (out)
			name[out++] = '.';
		memcpy(name + out, q + at + 1, q[at]);
		out += q[at];
		at += 1u + q[at];
	}
	name[out] = '\0';
	return at < qlen && q[at] == 0 && at + 5 <= qlen ? at + 5 : 0;
}

/* An A record at rr: its name, class, TTL and address. */
static void check_a(const uint8_t *rr, const char *name)
{
	static const uint8_t fixed[] = {0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char back[FAKEDNS_NAME_MAX + 1];

	CHECK(memcmp(rr, fixed, sizeof(fixed)) == 0);
	memcpy(&sin.sin_addr, rr + 12, 4);
	int n = fakedns_name_for((struct sockaddr *)&sin, back, sizeof(back));
	CHECK(n > 0 && strcasecmp(back, name) == 0);
}

/* The answer a (n bytes) to q (qlen bytes): returns the parts it had. */
static int check_answer(const uint8_t *q, size_t qlen, const uint8_t *a, size_t n)
{
	char name[FAKEDNS_NAME_MAX + 2];

	if (qlen < HDR || (q[2] & 0x80)) {
		CHECK(n == 0);
		return 0;
	}
	CHECK(n >= HDR && n <= DNSMSG_MAX);
	CHECK(a[0] == q[0] && a[1] == q[1] && a[2] == (0x80 | (q[2] & 0x79)));
	CHECK((a[3] & 0xF0) == 0x80 && get16(a + 8) == 0 && get16(a + 10) == 0);
	unsigned rcode = a[3] & 0xF, qd = get16(a + 4), an = get16(a + 6);
	if (n == HDR) {
		CHECK(qd == 0 && an == 0 && (rcode == 1 || rcode == 4));
		CHECK(rcode == 4 || (q[2] & 0x78) == 0);
		return 0;
	}
	size_t end = question_end(q, qlen, name);
	CHECK((q[2] & 0x78) == 0 && get16(q + 4) == 1 && end > HDR && qd == 1);
	CHECK(memcmp(a + HDR, q + HDR, end - HDR) == 0);
	if (n == end) {
		CHECK(an == 0 && rcode != 1 && rcode != 4);
		/* no data: AAAA IN alone */
		CHECK(rcode != 0 ||
		      (get16(q + end - 4) == 28 && get16(q + end - 2) == 1));
		return 1;
	}
	CHECK(n == end + 16 && an == 1 && rcode == 0);
	CHECK(get16(q + end - 4) == 1 && get16(q + end - 2) == 1); /* A, IN */
	check_a(a + end, name);
	return 2;
}

int fuzz_last_good;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guarded in;
	static bool attached;
	uint8_t a[DNSMSG_MAX], again[DNSMSG_MAX];
	struct fakedns_params p = {0};

	if (!attached) {
		CHECK(fakedns_attach(&p) == 0);
		attached = true;
	}
	if (size > SPAN_LEN)
		size = SPAN_LEN;
	const uint8_t *q = guarded_copy(&in, SPAN_LEN, data, size);
	size_t n = dnsmsg_answer(q, size, a, sizeof(a));
	fuzz_last_good = check_answer(q, size, a, n);
	CHECK(dnsmsg_answer(q, size, again, sizeof(again)) == n);
	CHECK(memcmp(a, again, n) == 0);
	return 0;
}

/* --- how replay_main.c mutates inputs --------------------------------------------- */

static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x03, 0x05, 0x0c,
                                      0x1c, 0x3f, 0x40, 0x80, 0xc0, 0xff};

static const char *const tokens[] = {
        "\x00\x01\x00\x01", /* A IN */
        "\x00\x1c\x00\x01", /* AAAA IN */
        "\xc0\x0c",         /* a pointer to the question */
        "\x07"
        "example",
        "\x01"
        "1",
};

/* Each as likely; the first three also apply to an empty input. */
static const enum fuzz_edit edits[] = {
        FUZZ_INSERT_BYTE,  FUZZ_APPEND_ENTRY, FUZZ_INSERT_TOKEN,
        FUZZ_FLIP_BIT,     FUZZ_SET_BYTE,     FUZZ_SET_BYTE,
        FUZZ_DELETE_CHUNK, FUZZ_TRUNCATE,     FUZZ_DUPLICATE_CHUNK,
};

const struct fuzz_mutator fuzz_mutator = {
        .max_len = 600,
        .edits = edits,
        .nedits = sizeof(edits) / sizeof(edits[0]),
        .nedits_empty = 3,
        .interesting = interesting,
        .ninteresting = sizeof(interesting),
        .tokens = tokens,
        .ntokens = sizeof(tokens) / sizeof(tokens[0]),
        .report_kept = true,
};
