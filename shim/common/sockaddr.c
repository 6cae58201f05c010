/* SPDX-License-Identifier: MIT */
/*
 * IPv4/IPv6 socket address helpers (see sockaddr.h).
 */
#include "sockaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

socklen_t sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
	       : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                   : 0;
}

const uint8_t *sa_ipv4(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	if (sa->sa_family != AF_INET6)
		return NULL;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	return IN6_IS_ADDR_V4MAPPED(a) ? a->s6_addr + 12 : NULL;
}

uint16_t sa_port(const struct sockaddr *sa)
{
	return ntohs(sa->sa_family == AF_INET
	                     ? ((const struct sockaddr_in *)sa)->sin_port
	                     : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

void sa_set_port(struct sockaddr *sa, uint16_t port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

bool sa_same_host(const struct sockaddr *a, const struct sockaddr *b)
{
	const uint8_t *a4 = sa_ipv4(a), *b4 = sa_ipv4(b);
	if (a4 || b4)
		return a4 && b4 && memcmp(a4, b4, 4) == 0;
	return a->sa_family == AF_INET6 && b->sa_family == AF_INET6 &&
	       memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

bool sa_same(const struct sockaddr *a, const struct sockaddr *b)
{
	return sa_port(a) == sa_port(b) && sa_same_host(a, b);
}

bool sa_unspecified(const struct sockaddr *sa)
{
	static const uint8_t zero[16];
	const uint8_t *v4 = sa_ipv4(sa);
	if (v4)
		return memcmp(v4, zero, 4) == 0;
	return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, zero, 16) == 0;
}

bool sa_loopback(const struct sockaddr *sa)
{
	const uint8_t *v4 = sa_ipv4(sa);
	if (v4)
		return v4[0] == 127;
	return sa->sa_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

socklen_t sa_to_family(const struct sockaddr *src, socklen_t len, int family,
                       union sa_any *out)
{
	memset(out, 0, sizeof(*out));
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (src->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)src;
		if (family == AF_INET) {
			out->v4 = *in;
			return sizeof(out->v4);
		}
		out->v6.sin6_family = AF_INET6;
		out->v6.sin6_port = in->sin_port;
		out->v6.sin6_addr.s6_addr[10] = 0xff;
		out->v6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&out->v6.sin6_addr.s6_addr[12], &in->sin_addr, 4);
		return sizeof(out->v6);
	}
	if (src->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)src;
		if (family == AF_INET6) {
			out->v6 = *in6;
			return sizeof(out->v6);
		}
		if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return 0;
		out->v4.sin_family = AF_INET;
		out->v4.sin_port = in6->sin6_port;
		memcpy(&out->v4.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
		return sizeof(out->v4);
	}
	return 0;
}

void sa_format_hostport(const char *host, unsigned port, char *buf, size_t cap)
{
	bool v6 = strchr(host, ':') != NULL;
	snprintf(buf, cap, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

void sa_format(const struct sockaddr *sa, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	const void *addr =
	        sa->sa_family == AF_INET
	                ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
	                : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    !inet_ntop(sa->sa_family, addr, host, sizeof(host))) {
		snprintf(buf, cap, "?");
		return;
	}
	sa_format_hostport(host, sa_port(sa), buf, cap);
}
