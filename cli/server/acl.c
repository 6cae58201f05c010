/* SPDX-License-Identifier: MIT */
/*
 * Destination policy for socksify-server (see acl.h).
 */
#include "acl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUILTIN_NOTE " (built in when listening beyond loopback; --allow-local allows it)"

/* This host and its link, refused by an exposed server (see acl.h). */
static const struct acl_rule builtin[] = {
        {AF_INET, {127}, 8, 0, 0, false, "127.0.0.0/8" BUILTIN_NOTE},
        {AF_INET, {0}, 8, 0, 0, false, "0.0.0.0/8" BUILTIN_NOTE},
        {AF_INET, {169, 254}, 16, 0, 0, false, "169.254.0.0/16" BUILTIN_NOTE},
        {AF_INET6, {[15] = 1}, 128, 0, 0, false, "::1" BUILTIN_NOTE},
        {AF_INET6, {0xfe, 0x80}, 10, 0, 0, false, "fe80::/10" BUILTIN_NOTE},
        /* AWS's IPv6 instance metadata address (its IPv4 one is in 169.254/16) */
        {AF_INET6,
         {0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, 0x54 /* fd00:ec2::254 */},
         128,
         0,
         0,
         false,
         "fd00:ec2::254" BUILTIN_NOTE},
};

static const char self_text[] =
        "a listener of this server (built in when listening beyond "
        "loopback; --allow-local allows it)";

/* A destination as judged: IPv4 (v4-mapped too) or IPv6, and its port. */
struct dest {
	int family;
	uint8_t addr[16];
	uint16_t port;
};

/* len decimal digits (no sign, no space, leading zeros allowed) of value at
 * most max. */
static bool parse_num(const char *s, size_t len, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
		if (v > max)
			return false;
	}
	*out = v;
	return true;
}

/* Parses a port or a range "LO-HI" (1 to 65535). */
static int parse_ports(const char *s, struct acl_rule *r)
{
	const char *dash = strchr(s, '-');
	size_t len = strlen(s), lolen = dash ? (size_t)(dash - s) : len;
	unsigned long lo, hi;

	if (!parse_num(s, lolen, 65535, &lo))
		return -EINVAL;
	hi = lo;
	if (dash && !parse_num(dash + 1, len - lolen - 1, 65535, &hi))
		return -EINVAL;
	if (lo == 0 || lo > hi)
		return -EINVAL;
	r->port_lo = (uint16_t)lo;
	r->port_hi = (uint16_t)hi;
	return 0;
}

/* "ADDR" or "ADDR/PREFIX", len bytes of s; `prefix`, when not NULL, is a
 * "/PREFIX" of plen bytes given outside brackets. */
static int parse_cidr(const char *s, size_t len, const char *prefix, size_t plen,
                      struct acl_rule *r)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = memchr(s, '/', len);
	size_t hlen = slash ? (size_t)(slash - s) : len;

	if (slash && prefix)
		return -EINVAL; /* "[::1/128]/128" */
	if (slash) {
		prefix = slash;
		plen = len - hlen;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, r->addr) == 1)
		r->family = AF_INET;
	else if (inet_pton(AF_INET6, host, r->addr) == 1)
		r->family = AF_INET6;
	else
		return -EINVAL;
	unsigned long max = r->family == AF_INET ? 32 : 128, p = max;
	if (prefix && !parse_num(prefix + 1, plen - 1, max, &p))
		return -EINVAL;
	r->prefix = (unsigned)p;
	return 0;
}

/* "[ADDR]", "[ADDR]/P", "[ADDR/P]", each with an optional ":PORTS". */
static int parse_bracketed(const char *spec, struct acl_rule *r)
{
	const char *close = strchr(spec, ']');
	if (!close)
		return -EINVAL;
	const char *rest = close + 1, *prefix = NULL;
	size_t plen = 0;
	if (*rest == '/') {
		prefix = rest;
		plen = strcspn(rest, ":");
		rest += plen;
	}
	if (*rest != '\0' && *rest != ':')
		return -EINVAL;
	if (parse_cidr(spec + 1, (size_t)(close - spec - 1), prefix, plen, r) < 0)
		return -EINVAL;
	return *rest == ':' ? parse_ports(rest + 1, r) : 0;
}

static int parse_rule(const char *spec, struct acl_rule *r)
{
	const char *colon = strchr(spec, ':');

	if (spec[0] == '[')
		return parse_bracketed(spec, r);
	if (colon && strchr(colon + 1, ':')) /* a bare IPv6 address: no port */
		return parse_cidr(spec, strlen(spec), NULL, 0, r);
	size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
	if (parse_cidr(spec, len, NULL, 0, r) < 0)
		return -EINVAL;
	return colon ? parse_ports(colon + 1, r) : 0;
}

int acl_add_rule(struct acl *acl, const char *spec, bool allow)
{
	struct acl_rule r = {0};

	if (acl->nrules >= ACL_MAX_RULES)
		return -ENOSPC;
	if (parse_rule(spec, &r) < 0)
		return -EINVAL;
	/* ::ffff:a.b.c.d/P (P >= 96) is the IPv4 rule a.b.c.d/(P - 96). */
	if (r.family == AF_INET6 && r.prefix >= 96 &&
	    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)r.addr)) {
		memmove(r.addr, r.addr + 12, 4);
		memset(r.addr + 4, 0, 12);
		r.family = AF_INET;
		r.prefix -= 96;
	}
	r.allow = allow;
	snprintf(r.text, sizeof(r.text), "%s %s", allow ? "--allow" : "--deny", spec);
	acl->rules[acl->nrules++] = r;
	return 0;
}

int acl_add_self(struct acl *acl, const struct sockaddr *sa)
{
	if (acl->nself >= ACL_MAX_SELF)
		return -ENOSPC;
	memset(&acl->self[acl->nself], 0, sizeof(acl->self[0]));
	memcpy(&acl->self[acl->nself], sa,
	       sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
	                                : sizeof(struct sockaddr_in6));
	acl->nself++;
	return 0;
}

bool acl_active(const struct acl *acl)
{
	return acl->nrules > 0 || (acl->exposed && !acl->allow_local);
}

/* The address as judged; false for a family that is neither IPv4 nor IPv6. */
static bool to_dest(const struct sockaddr *sa, struct dest *d)
{
	static const uint8_t zero[16];

	memset(d, 0, sizeof(*d));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		d->family = AF_INET;
		memcpy(d->addr, &in->sin_addr, 4);
		d->port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		const uint8_t *a = in6->sin6_addr.s6_addr;
		bool mapped = IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
		d->family = mapped ? AF_INET : AF_INET6;
		memcpy(d->addr, mapped ? a + 12 : a, mapped ? 4 : 16);
		d->port = ntohs(in6->sin6_port);
	} else {
		return false;
	}
	/* Linux connects the unspecified address to this host. */
	if (memcmp(d->addr, zero, d->family == AF_INET ? 4 : 16) == 0) {
		if (d->family == AF_INET)
			d->addr[0] = 127, d->addr[3] = 1;
		else
			d->addr[15] = 1;
	}
	return true;
}

static bool prefix_matches(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

static bool rule_matches(const struct acl_rule *r, const struct dest *d)
{
	if (r->family != d->family || !prefix_matches(d->addr, r->addr, r->prefix))
		return false;
	return r->port_lo == 0 || (d->port >= r->port_lo && d->port <= r->port_hi);
}

/* True when the address is one of this host's: it can be bound to. */
static bool is_local(const struct dest *d)
{
	struct sockaddr_storage ss = {.ss_family = (sa_family_t)d->family};
	if (d->family == AF_INET)
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, d->addr, 4);
	else
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, d->addr, 16);
	int fd = socket(d->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true; /* cannot tell: refuse rather than risk a loop */
	socklen_t len = d->family == AF_INET ? sizeof(struct sockaddr_in)
	                                     : sizeof(struct sockaddr_in6);
	bool local = bind(fd, (struct sockaddr *)&ss, len) == 0;
	close(fd);
	return local;
}

/* A listener's own address and port; a wildcard listener's port on any
 * local address of its family. */
static bool is_self(const struct acl *acl, const struct dest *d)
{
	for (size_t i = 0; i < acl->nself; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&acl->self[i];
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		struct dest s;
		if (!to_dest(sa, &s) || s.family != d->family || s.port != d->port)
			continue;
		bool wildcard =
		        sa->sa_family == AF_INET
		                ? ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
		                          htonl(INADDR_ANY)
		                : IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
		if (wildcard ? is_local(d) : memcmp(s.addr, d->addr, 16) == 0)
			return true;
	}
	return false;
}

const char *acl_check(const struct acl *acl, const struct sockaddr *sa,
                      enum acl_proto proto)
{
	struct dest d;

	if (!to_dest(sa, &d))
		return NULL;
	for (size_t i = 0; i < acl->nrules; i++) {
		const struct acl_rule *r = &acl->rules[i];
		if (rule_matches(r, &d))
			return r->allow ? NULL : r->text;
	}
	if (!acl->exposed || acl->allow_local)
		return NULL;
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (rule_matches(&builtin[i], &d))
			return builtin[i].text;
	if (proto == ACL_TCP && is_self(acl, &d))
		return self_text;
	return NULL;
}
