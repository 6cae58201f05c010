/* SPDX-License-Identifier: MIT */
/*
 * The DNS stub's one message (dnsstub.c): a query in, the answer from the
 * fake-address pool out (RFC 1035 section 4). Pure: no system call beyond
 * the pool's, no allocation; bounded by the message's length everywhere.
 */
#ifndef SOCKSIFY_CLI_DNSMSG_H
#define SOCKSIFY_CLI_DNSMSG_H

#include <stddef.h>
#include <stdint.h>

enum { DNSMSG_MAX = 512 }; /* UDP without EDNS: queries and answers fit */

/*
 * Writes the answer to the query q (qlen bytes) into out (cap >= DNSMSG_MAX)
 * and returns its length; 0 when there is nothing to answer (shorter than a
 * header, or a response rather than a query). A one-question query for
 * class IN: A gets the fake IPv4 address of the name, AAAA no data, another
 * type REFUSED; a name the pool refuses (a numeric one) NXDOMAIN, a full
 * pool SERVFAIL; any other query (another opcode, several questions, a
 * compressed or truncated name) FORMERR or NOTIMP with the header alone.
 */
size_t dnsmsg_answer(const uint8_t *q, size_t qlen, uint8_t *out, size_t cap);

#endif
