/* SPDX-License-Identifier: MIT */
/* The DNS stub's answers (see dnsmsg.h). */
#include "dnsmsg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "fakedns.h"

enum {
	HDR = 12,
	RCODE_OK = 0,
	RCODE_FORMERR = 1,
	RCODE_SERVFAIL = 2,
	RCODE_NXDOMAIN = 3,
	RCODE_NOTIMP = 4,
	RCODE_REFUSED = 5,
	TYPE_A = 1,
	TYPE_AAAA = 28,
	CLASS_IN = 1,
	TTL = 60,
	NAME_WIRE_MAX = 255,
};

static unsigned be16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The question's name at q[HDR..) as text into name; the offset just past
 * it, or 0 when it is malformed (compressed, over 255 octets on the wire as
 * RFC 1035 section 2.3.4 limits it, truncated). */
static size_t read_name(const uint8_t *q, size_t qlen, char *name, size_t cap)
{
	size_t at = HDR, out = 0;

	for (;;) {
		if (at >= qlen)
			return 0;
		unsigned l = q[at++];
		if (l == 0)
			break;
		/* at - HDR + l octets with this label, one more for the root */
		if (l > 63 || at + l > qlen || at - HDR + l + 1 > NAME_WIRE_MAX ||
		    out + l + 1 >= cap)
			return 0;
		if (out)
			name[out++] = '.';
		memcpy(name + out, q + at, l);
		if (memchr(name + out, '\0', l))
			return 0;
		out += l;
		at += l;
	}
	name[out] = '\0';
	return at;
}

/* The header of the answer: the query's id, opcode and RD; RA set. */
static void header(uint8_t *out, const uint8_t *q, unsigned rcode, unsigned qd,
                   unsigned an)
{
	memset(out, 0, HDR);
	out[0] = q[0];
	out[1] = q[1];
	out[2] = (uint8_t)(0x80 | (q[2] & 0x79)); /* QR, opcode, RD */
	out[3] = (uint8_t)(0x80 | rcode);         /* RA */
	put16(out + 4, qd);
	put16(out + 6, an);
}

/* The A record of name: its length at out (16), or -rcode. */
static int a_record(const char *name, uint8_t *out)
{
	uint8_t addr[4];
	int rc = fakedns_addr_for(name, AF_INET, addr);
	if (rc < 0)
		return rc == -EINVAL ? -RCODE_NXDOMAIN : -RCODE_SERVFAIL;
	put16(out, 0xC000 | HDR); /* the question's name */
	put16(out + 2, TYPE_A);
	put16(out + 4, CLASS_IN);
	put16(out + 6, 0);
	put16(out + 8, TTL);
	put16(out + 10, 4);
	memcpy(out + 12, addr, 4);
	return 16;
}

size_t dnsmsg_answer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap)
{
	char name[FAKEDNS_NAME_MAX + 2];

	if (qlen < HDR || cap < DNSMSG_MAX || (q[2] & 0x80))
		return 0;
	if ((q[2] >> 3 & 0xF) != 0) {
		header(out, q, RCODE_NOTIMP, 0, 0);
		return HDR;
	}
	size_t end = be16(q + 4) == 1 ? read_name(q, qlen, name, sizeof(name)) : 0;
	if (end == 0 || end + 4 > qlen || end + 4 + 16 > cap) {
		header(out, q, RCODE_FORMERR, 0, 0);
		return HDR;
	}
	unsigned type = be16(q + end), class = be16(q + end + 2);
	size_t len = end + 4;
	memcpy(out + HDR, q + HDR, len - HDR);
	if (class != CLASS_IN || (type != TYPE_A && type != TYPE_AAAA)) {
		header(out, q, RCODE_REFUSED, 1, 0);
		return len;
	}
	if (type == TYPE_AAAA) {
		header(out, q, RCODE_OK, 1, 0);
		return len;
	}
	int rr = a_record(name, out + len);
	header(out, q, rr < 0 ? (unsigned)-rr : RCODE_OK, 1, rr < 0 ? 0 : 1);
	return rr < 0 ? len : len + (size_t)rr;
}
