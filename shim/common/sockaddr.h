/* SPDX-License-Identifier: MIT */
/*
 * IPv4/IPv6 socket address helpers shared by the shim, the launcher and the
 * server. An IPv4 address and its v4-mapped IPv6 form (::ffff:a.b.c.d) are
 * the same host everywhere here, as they are to a dual-stack socket.
 */
#ifndef SOCKSIFY_SOCKADDR_H
#define SOCKSIFY_SOCKADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Any address an IP socket takes. */
union sa_any {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	struct sockaddr_storage ss;
};

/* The length of an AF_INET/AF_INET6 address (0 for another family). */
socklen_t sa_len(const struct sockaddr *sa);
/* The four bytes of an IPv4 or v4-mapped IPv6 address, else NULL. */
const uint8_t *sa_ipv4(const struct sockaddr *sa);
/* The port, host order. */
uint16_t sa_port(const struct sockaddr *sa);
/* Sets the port (host order). */
void sa_set_port(struct sockaddr *sa, uint16_t port);
/* Same host (v4-mapped equals IPv4), and same host and port. */
bool sa_same_host(const struct sockaddr *a, const struct sockaddr *b);
bool sa_same(const struct sockaddr *a, const struct sockaddr *b);
/* 0.0.0.0 or :: (or ::ffff:0.0.0.0). */
bool sa_unspecified(const struct sockaddr *sa);
/* 127/8, ::1 or ::ffff:127/104. */
bool sa_loopback(const struct sockaddr *sa);
/* src (len bytes) as an address of `family` into out: IPv4 <-> v4-mapped
 * IPv6; the new length, or 0 when it cannot be expressed in that family. */
socklen_t sa_to_family(const struct sockaddr *src, socklen_t len, int family,
                       union sa_any *out);
/* "a.b.c.d:port", "[v6]:port", or "?" for another family; host and port
 * given apart: "[host]:port" when host holds a ':', else "host:port". */
void sa_format(const struct sockaddr *sa, char *buf, size_t cap);
void sa_format_hostport(const char *host, unsigned port, char *buf, size_t cap);

enum { SA_STRLEN = 64 }; /* enough for sa_format */

#endif
