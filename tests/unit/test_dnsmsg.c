/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the supervisor's DNS answers (cli/supervise/dnsmsg.c),
 * printed as TAP: dnsmsg_answer() against the fake-DNS pool (shim/fakedns.c).
 *
 * Every query is copied to the very end of a page followed by a PROT_NONE
 * page, so that a read past its length faults in any build (and ASan sees
 * it too). Each answer is checked byte by byte (header, echoed question, the
 * A record) and, where it has a question, parsed again with libc's own DNS
 * message parser (ns_initparse / ns_parserr), which follows the compression
 * pointer of the answer's name.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dnsmsg.h"
#include "fakedns.h"
#include "tap.h"

enum {
	HDR = 12,
	QUERY_MAX = 1024,
	T_A_ = 1,
	T_PTR_ = 12,
	T_MX_ = 15,
	T_TXT_ = 16,
	T_AAAA_ = 28,
	C_IN_ = 1,
	C_CH_ = 3,
};

/* --- building queries ------------------------------------------------------------- */

struct query {
	uint8_t b[QUERY_MAX];
	size_t len;
};

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

/* A header: id, the flag bytes, QDCOUNT; the other counts 0. */
static void q_header(struct query *q, unsigned id, unsigned flags, unsigned qd)
{
	memset(q->b, 0, HDR);
	put16(q->b, id);
	put16(q->b + 2, flags);
	put16(q->b + 4, qd);
	q->len = HDR;
}

/* Appends a dotted name as labels ("" is the root). */
static void q_name(struct query *q, const char *name)
{
	while (*name) {
		const char *dot = strchrnul(name, '.');
		size_t l = (size_t)(dot - name);
		q->b[q->len++] = (uint8_t)l;
		memcpy(q->b + q->len, name, l);
		q->len += l;
		name = *dot ? dot + 1 : dot;
	}
	q->b[q->len++] = 0;
}

static void q_bytes(struct query *q, const void *p, size_t n)
{
	memcpy(q->b + q->len, p, n);
	q->len += n;
}

static void q_type_class(struct query *q, unsigned type, unsigned class)
{
	put16(q->b + q->len, type);
	put16(q->b + q->len + 2, class);
	q->len += 4;
}

/* A standard query (RD set) for name, type, class. */
static struct query query(unsigned id, const char *name, unsigned type, unsigned class)
{
	struct query q;
	q_header(&q, id, 0x0100, 1);
	q_name(&q, name);
	q_type_class(&q, type, class);
	return q;
}

/* --- answering through a guard page --------------------------------------------- */

static uint8_t *guard_span;
static size_t guard_len;

static void guard_init(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	guard_len = page;
	uint8_t *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
	                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED || mprotect(p + page, page, PROT_NONE) < 0) {
		perror("mmap");
		exit(2);
	}
	guard_span = p;
}

/* dnsmsg_answer() on the first len bytes of q, placed right before the guard. */
static size_t answer_n(const struct query *q, size_t len, uint8_t *out)
{
	uint8_t *at = guard_span + guard_len - len;
	memcpy(at, q->b, len);
	memset(out, 0xAA, DNSMSG_MAX);
	return dnsmsg_answer(at, len, out, DNSMSG_MAX);
}

static size_t answer(const struct query *q, uint8_t *out)
{
	return answer_n(q, q->len, out);
}

/* --- checking answers ----------------------------------------------------------- */

static unsigned rcode(const uint8_t *a)
{
	return a[3] & 0xF;
}

/* The header of an answer to q: id, QR, opcode and RD copied, AA/TC clear, RA
 * set, Z/AD/CD clear, rcode, counts. */
static void check_header(const char *what, const struct query *q, const uint8_t *a,
                         unsigned want_rcode, unsigned qd, unsigned an)
{
	unsigned want2 = 0x80 | (q->b[2] & 0x79);
	int ok = a[0] == q->b[0] && a[1] == q->b[1] && a[2] == want2 &&
	         a[3] == (0x80 | want_rcode) && get16(a + 4) == qd &&
	         get16(a + 6) == an && get16(a + 8) == 0 && get16(a + 10) == 0;
	if (!tap_ok(ok, "%s: header (id, QR, opcode, RD, RA, rcode %u, qd %u, an %u)",
	            what, want_rcode, qd, an))
		tap_diag("got %02x%02x %02x %02x qd %u an %u ns %u ar %u", a[0], a[1],
		         a[2], a[3], get16(a + 4), get16(a + 6), get16(a + 8),
		         get16(a + 10));
}

/* The question of q (header excluded) is echoed after the header. */
static int question_echoed(const struct query *q, const uint8_t *a, size_t qend)
{
	return memcmp(a + HDR, q->b + HDR, qend - HDR) == 0;
}

/* libc's parser takes the answer; its first record is name/A/IN/ttl/addr. */
static int parse_a(const uint8_t *a, size_t len, const char *name, const uint8_t *addr)
{
	ns_msg m;
	ns_rr rr;
	if (ns_initparse(a, (int)len, &m) < 0 || ns_msg_count(m, ns_s_qd) != 1 ||
	    ns_parserr(&m, ns_s_an, 0, &rr) < 0)
		return 0;
	return strcasecmp(ns_rr_name(rr), name) == 0 && ns_rr_type(rr) == ns_t_a &&
	       ns_rr_class(rr) == ns_c_in && ns_rr_ttl(rr) == 60 &&
	       ns_rr_rdlen(rr) == 4 && memcmp(ns_rr_rdata(rr), addr, 4) == 0;
}

/* libc's parser takes the answer, with its one question and no record. */
static int parse_empty(const uint8_t *a, size_t len)
{
	ns_msg m;
	ns_rr rr;
	return ns_initparse(a, (int)len, &m) == 0 && ns_msg_count(m, ns_s_qd) == 1 &&
	       ns_msg_count(m, ns_s_an) == 0 && ns_parserr(&m, ns_s_qd, 0, &rr) == 0;
}

/* An A query for name gets its fake address: returns it in addr. */
static void check_a(const char *name, uint8_t addr[4])
{
	uint8_t a[DNSMSG_MAX], want[4];
	struct query q = query(0x1234, name, T_A_, C_IN_);
	size_t n = answer(&q, a);

	tap_is((long long)n, (long long)q.len + 16, "A %s: question + one A record",
	       name);
	check_header(name, &q, a, 0, 1, 1);
	tap_ok(n >= q.len && question_echoed(&q, a, q.len), "A %s: question echoed",
	       name);
	const uint8_t *rr = a + q.len;
	memcpy(addr, rr + 12, 4);
	tap_ok(get16(rr) == 0xC00C && get16(rr + 2) == 1 && get16(rr + 4) == 1,
	       "A %s: the record points at the question's name, type A, class IN", name);
	tap_ok(get16(rr + 6) == 0 && get16(rr + 8) == 60 && get16(rr + 10) == 4,
	       "A %s: TTL 60, RDLENGTH 4", name);
	tap_ok(fakedns_addr_for(name, AF_INET, want) == 0 && memcmp(want, addr, 4) == 0,
	       "A %s: the pool's address", name);
	tap_ok(parse_a(a, n, name, addr), "A %s: libc's parser reads the answer", name);
}

/* --- the cases ---------------------------------------------------------------------- */

static void test_a(void)
{
	uint8_t first[4], again[4], upper[4], other[4];
	char text[INET_ADDRSTRLEN];

	check_a("example.com", first);
	tap_ok(first[0] >> 4 == 0xF, "A example.com: in 240.0.0.0/4 (%s)",
	       inet_ntop(AF_INET, first, text, sizeof(text)));
	check_a("example.com", again);
	tap_ok(memcmp(first, again, 4) == 0, "the same name again: the same address");
	check_a("ExAmPlE.CoM", upper);
	tap_ok(memcmp(first, upper, 4) == 0, "the name in other case: the same address");
	check_a("www.example.org", other);
	tap_ok(memcmp(first, other, 4) != 0, "another name: another address");
}

/* RD clear, another id, extra flag bits (AA, TC, Z, AD, CD) not echoed */
static void test_flags(void)
{
	uint8_t a[DNSMSG_MAX];
	struct query q = query(0xBEEF, "flags.example", T_A_, C_IN_);

	put16(q.b + 2, 0x0000);
	tap_is((long long)answer(&q, a), (long long)q.len + 16, "RD clear: answered");
	check_header("RD clear", &q, a, 0, 1, 1);
	tap_ok(!(a[2] & 1), "RD clear: RD clear in the answer");
	put16(q.b + 2, 0x0100 | 0x0400 | 0x0200 | 0x0070);
	tap_is((long long)answer(&q, a), (long long)q.len + 16,
	       "AA/TC/Z/AD/CD set: answered");
	tap_ok(a[2] == 0x81 && a[3] == 0x80,
	       "AA/TC/Z/AD/CD set: only QR, RD, RA in the answer");
}

static void test_no_data(void)
{
	static const struct {
		const char *what;
		unsigned type, class, rcode;
	} cases[] = {{"AAAA", T_AAAA_, C_IN_, 0},     {"MX", T_MX_, C_IN_, 5},
	             {"TXT", T_TXT_, C_IN_, 5},       {"PTR", T_PTR_, C_IN_, 5},
	             {"ANY", 255, C_IN_, 5},          {"A in class CH", T_A_, C_CH_, 5},
	             {"A in class ANY", T_A_, 255, 5}};
	uint8_t a[DNSMSG_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct query q =
		        query(0x4242, "nodata.example", cases[i].type, cases[i].class);
		size_t n = answer(&q, a);
		tap_is((long long)n, (long long)q.len, "%s: the question alone",
		       cases[i].what);
		check_header(cases[i].what, &q, a, cases[i].rcode, 1, 0);
		tap_ok(question_echoed(&q, a, q.len), "%s: question echoed",
		       cases[i].what);
		tap_ok(parse_empty(a, n), "%s: libc's parser reads the answer",
		       cases[i].what);
	}
}

static void test_not_a_query(void)
{
	uint8_t a[DNSMSG_MAX];
	struct query q = query(7, "response.example", T_A_, C_IN_);

	put16(q.b + 2, 0x8180);
	tap_is((long long)answer(&q, a), 0, "a response (QR set): no answer");
	for (unsigned op = 1; op < 16; op++) {
		q = query(7, "opcode.example", T_A_, C_IN_);
		q.b[2] = (uint8_t)(op << 3 | 1);
		size_t n = answer(&q, a);
		if (op == 1 || op == 2 || op == 4 || op == 5 || op == 15) {
			tap_is((long long)n, HDR, "opcode %u: the header alone", op);
			check_header("opcode", &q, a, 4, 0, 0);
		} else if (n != HDR || rcode(a) != 4) {
			tap_ok(0, "opcode %u: NOTIMP", op);
		}
	}
}

/* A malformed query: FORMERR with the header alone. */
static void check_formerr(const char *what, const struct query *q)
{
	uint8_t a[DNSMSG_MAX];
	tap_is((long long)answer(q, a), HDR, "%s: the header alone", what);
	check_header(what, q, a, 1, 0, 0);
}

/* A name of `wire` octets on the wire: labels of 63, the last one shorter. */
static void long_name(struct query *q, size_t wire)
{
	size_t left = wire - 1; /* the root's zero */
	while (left > 0) {
		size_t l = left - 1 > 63 ? 63 : left - 1;
		if (left - 1 - l == 1)
			l--; /* no room would be left for a label of one */
		q->b[q->len++] = (uint8_t)l;
		memset(q->b + q->len, 'a', l);
		q->len += l;
		left -= l + 1;
	}
	q->b[q->len++] = 0;
}

static void test_formerr(void)
{
	static const uint8_t pointer[] = {0xC0, 0x0C}, label64[] = {64};
	static const uint8_t nul[] = {3, 'a', 0, 'b', 0};
	struct query q;

	q_header(&q, 1, 0x0100, 0);
	check_formerr("QDCOUNT 0", &q);
	q = query(1, "two.example", T_A_, C_IN_);
	put16(q.b + 4, 2);
	check_formerr("QDCOUNT 2", &q);
	q_header(&q, 1, 0x0100, 1);
	q_bytes(&q, pointer, 2);
	q_type_class(&q, T_A_, C_IN_);
	check_formerr("a compressed name", &q);
	q_header(&q, 1, 0x0100, 1);
	q_bytes(&q, "\x03www", 4);
	q_bytes(&q, pointer, 2);
	q_type_class(&q, T_A_, C_IN_);
	check_formerr("a name ending in a pointer", &q);
	q_header(&q, 1, 0x0100, 1);
	q_bytes(&q, label64, 1);
	memset(q.b + q.len, 'x', 64);
	q.len += 64;
	q.b[q.len++] = 0;
	q_type_class(&q, T_A_, C_IN_);
	check_formerr("a label of 64", &q);
	q_header(&q, 1, 0x0100, 1);
	q_bytes(&q, nul, sizeof(nul));
	q_type_class(&q, T_A_, C_IN_);
	check_formerr("a label with a NUL byte", &q);
	q = query(1, "short.example", T_A_, C_IN_);
	q.len -= 1;
	check_formerr("the question's class cut short", &q);
	q.len -= 3;
	check_formerr("the question without type and class", &q);
}

static void test_name_length(void)
{
	uint8_t a[DNSMSG_MAX];
	struct query q;

	for (size_t wire = 250; wire <= 260; wire++) {
		q_header(&q, 9, 0x0100, 1);
		long_name(&q, wire);
		q_type_class(&q, T_A_, C_IN_);
		size_t n = answer(&q, a);
		if (wire <= 255)
			tap_ok(n == q.len + 16 && rcode(a) == 0 && get16(a + 6) == 1,
			       "a name of %zu octets: answered", wire);
		else
			tap_ok(n == HDR && rcode(a) == 1,
			       "a name of %zu octets (over 255): FORMERR", wire);
		if (n >= 4 && rcode(a) != (wire <= 255 ? 0u : 1u))
			tap_diag("length %zu rcode %u", n, rcode(a));
	}
}

static void test_nxdomain(void)
{
	static const char *const names[] = {"1.2.3.4", "10.1", "127.0.0.1"};
	uint8_t a[DNSMSG_MAX];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct query q = query(3, names[i], T_A_, C_IN_);
		size_t n = answer(&q, a);
		tap_is((long long)n, (long long)q.len, "numeric %s: the question alone",
		       names[i]);
		check_header(names[i], &q, a, 3, 1, 0);
		tap_ok(parse_empty(a, n), "numeric %s: libc's parser reads it", names[i]);
	}
}

/* Every prefix of a valid query (with an EDNS OPT record after it): never a
 * read past the prefix (the guard page), no answer shorter than a header,
 * FORMERR until the question is whole, then the answer. */
static void test_truncated(void)
{
	static const uint8_t opt[] = {0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0};
	uint8_t a[DNSMSG_MAX];
	struct query q = query(0x5151, "trunc.example.net", T_A_, C_IN_);
	size_t qend = q.len;
	int bad = 0;

	put16(q.b + 10, 1); /* ARCOUNT */
	q_bytes(&q, opt, sizeof(opt));
	for (size_t len = 0; len <= q.len; len++) {
		size_t n = answer_n(&q, len, a);
		size_t want = len < HDR ? 0 : len < qend ? HDR : qend + 16;
		unsigned want_rcode = len < qend ? 1 : 0;
		if (n != want || (n > 0 && rcode(a) != want_rcode)) {
			bad++;
			tap_diag("prefix of %zu: answer of %zu, rcode %u", len, n,
			         n ? rcode(a) : 0);
		}
	}
	tap_ok(bad == 0,
	       "every prefix 0..%zu of a query: nothing, FORMERR, or the answer", q.len);
	tap_ok(get16(a + 10) == 0, "the OPT record is not echoed (ARCOUNT 0)");
	uint8_t small[DNSMSG_MAX - 1];
	tap_is((long long)dnsmsg_answer(q.b, q.len, small, sizeof(small)), 0,
	       "an output buffer under DNSMSG_MAX: no answer");
}

/* SERVFAIL: no pool attached, then a full one. */
static void test_servfail(void)
{
	static const uint8_t v4[4] = {10, 9, 8, 0}; /* a /30: two entries */
	struct fakedns_params p = {.v4 = v4, .v4_prefix = 30};
	uint8_t a[DNSMSG_MAX];
	struct query q = query(5, "nopool.example", T_A_, C_IN_);

	fakedns_detach_for_tests();
	tap_is((long long)answer(&q, a), (long long)q.len, "no pool: the question alone");
	check_header("no pool", &q, a, 2, 1, 0);
	tap_is(fakedns_attach(&p), 0, "attach a pool of two entries");
	q = query(5, "one.example", T_A_, C_IN_);
	tap_ok(answer(&q, a) == q.len + 16 && rcode(a) == 0, "first name: answered");
	q = query(5, "two.example", T_A_, C_IN_);
	tap_ok(answer(&q, a) == q.len + 16 && rcode(a) == 0, "second name: answered");
	q = query(5, "three.example", T_A_, C_IN_);
	tap_is((long long)answer(&q, a), (long long)q.len,
	       "full pool: the question alone");
	check_header("full pool", &q, a, 2, 1, 0);
	q = query(5, "ONE.example", T_A_, C_IN_);
	tap_ok(answer(&q, a) == q.len + 16 && rcode(a) == 0 &&
	               memcmp(a + q.len + 12, "\x0a\x09\x08\x01", 4) == 0,
	       "full pool: a known name still gets its address (10.9.8.1)");
}

int main(void)
{
	struct fakedns_params p = {0};

	tap_init();
	guard_init();
	if (fakedns_attach(&p) != 0) {
		printf("1..0 # skip cannot create a fake-DNS pool: %s\n",
		       strerror(errno));
		return 0;
	}
	test_a();
	test_flags();
	test_no_data();
	test_not_a_query();
	test_formerr();
	test_name_length();
	test_nxdomain();
	test_truncated();
	test_servfail();
	return tap_done();
}
