/* SPDX-License-Identifier: MIT */
/*
 * Exported name-lookup hooks. In remote DNS mode a name is answered with an
 * address from the fake pool (fakedns.c), and connecting to that address
 * sends the name to the proxy; no query leaves the host. Numeric hosts,
 * names in /etc/hosts (localhost among them) and excluded names are
 * resolved by libc as usual; so is everything in local mode.
 *
 * getaddrinfo() builds its answer with the real getaddrinfo() on the
 * numeric fake address, so service names, socket types, flags and
 * freeaddrinfo() behave exactly as libc's own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fakedns.h"
#include "hosts.h"
#include "log.h"
#include "monotime.h"
#include "shim.h"

static bool remote_dns(void)
{
	return config_remote_dns(&shim_config);
}

static bool is_numeric(const char *name)
{
	uint8_t buf[16];
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
	/* An IPv6 scope ("fe80::1%eth0") is numeric too. */
	snprintf(host, sizeof(host), "%s", name);
	host[strcspn(host, "%")] = '\0';
	return inet_pton(AF_INET, name, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1 ||
	       inet_aton(name, (struct in_addr *)buf) != 0;
}

/*
 * Whether this name gets a fake address. 1: fake it; 0: let libc resolve
 * it; -1: refuse (the configuration is broken; resolving would leak).
 */
static int want_fake(const char *name)
{
	if (!name || !*name || !remote_dns() || is_numeric(name))
		return 0;
	if (strcasecmp(name, "localhost") == 0 || hosts_has_name(name) ||
	    config_excluded_name(&shim_config, name))
		return 0;
	return shim_config_broken ? -1 : 1;
}

/*
 * Whether the host has an IPv6 address other than loopback: glibc's rule for
 * AI_ADDRCONFIG (a link-local address counts). getifaddrs() costs about
 * 0.1 ms, so the answer is kept for a second: an address added later is
 * seen within that.
 */
static bool host_has_ipv6(void)
{
	static long long checked_ms; /* 0: never; the answer in the low bit */
	long long now = monotime_ms(),
	          last = __atomic_load_n(&checked_ms, __ATOMIC_RELAXED);
	if (last && now - (last >> 1) < 1000)
		return last & 1;
	struct ifaddrs *ifa, *i;
	bool seen = false;
	if (getifaddrs(&ifa) != 0)
		return false;
	for (i = ifa; i && !seen; i = i->ifa_next)
		seen = i->ifa_addr && i->ifa_addr->sa_family == AF_INET6 &&
		       !IN6_IS_ADDR_LOOPBACK(
		               &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr);
	freeifaddrs(ifa);
	__atomic_store_n(&checked_ms, (now | 1) << 1 | seen, __ATOMIC_RELAXED);
	return seen;
}

/* The answer for one family: libc's getaddrinfo on the numeric fake address. */
static int fake_gai_one(const char *node, const char *service, struct addrinfo h,
                        int family, struct addrinfo **res)
{
	uint8_t addr[16];
	char text[INET6_ADDRSTRLEN];
	int rc = fakedns_addr_for(node, family, addr);

	if (rc < 0) {
		shim_log(SHIM_LOG_ERROR, "getaddrinfo %s: %s", node, strerror(-rc));
		return rc == -ENOSPC ? EAI_MEMORY : EAI_NONAME;
	}
	inet_ntop(family, addr, text, sizeof(text));
	h.ai_family = family;
	h.ai_flags = (h.ai_flags | AI_NUMERICHOST) & ~(AI_ADDRCONFIG | AI_V4MAPPED);
	rc = real_getaddrinfo(text, service, &h, res);
	if (rc == 0 && *res) {
		/* the canonical name is the name, never the numeric fake */
		free((*res)->ai_canonname);
		(*res)->ai_canonname = NULL;
		if (h.ai_flags & AI_CANONNAME)
			(*res)->ai_canonname = strdup(node);
	}
	shim_log(SHIM_LOG_DEBUG, "getaddrinfo %s: fake %s", node, text);
	return rc;
}

/*
 * The fake answer. AF_INET6 gets the IPv6 twin, AF_INET the IPv4 fake, and
 * AF_UNSPEC the IPv4 fake first, then its IPv6 twin, as glibc answers a name
 * with both records; with AI_ADDRCONFIG (and without hints, glibc's default)
 * the twin only when the host has IPv6 (host_has_ipv6). The IPv4 fake is
 * always given: it reaches the proxy however the host is connected. The two
 * lists are joined: glibc's freeaddrinfo frees node by node.
 */
static int fake_gai(const char *node, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res)
{
	struct addrinfo h = hints ? *hints : (struct addrinfo){.ai_family = AF_UNSPEC};
	bool addrconfig = !hints || (hints->ai_flags & AI_ADDRCONFIG);

	if (h.ai_family == AF_INET || h.ai_family == AF_INET6)
		return fake_gai_one(node, service, h, h.ai_family, res);
	if (h.ai_family != AF_UNSPEC)
		return EAI_FAMILY;
	int rc = fake_gai_one(node, service, h, AF_INET, res);
	if (rc != 0 || (addrconfig && !host_has_ipv6()))
		return rc;
	struct addrinfo *v6 = NULL, *last = *res;
	h.ai_flags &= ~AI_CANONNAME;
	if (fake_gai_one(node, service, h, AF_INET6, &v6) != 0)
		return 0; /* the IPv4 answer stands alone */
	while (last->ai_next)
		last = last->ai_next;
	last->ai_next = v6;
	return 0;
}

SHIM_EXPORT int getaddrinfo(const char *node, const char *service,
                            const struct addrinfo *hints, struct addrinfo **res)
{
	if (!shim_enter())
		return real_getaddrinfo ? real_getaddrinfo(node, service, hints, res)
		                        : EAI_SYSTEM;
	int rc, want = want_fake(node);
	if (want == 0 || (hints && (hints->ai_flags & AI_NUMERICHOST)))
		rc = real_getaddrinfo(node, service, hints, res);
	else if (want < 0)
		rc = EAI_FAIL;
	else
		rc = fake_gai(node, service, hints, res);
	shim_leave();
	return rc;
}

/* --- gethostbyname family ------------------------------------------------------ */

/* Lays a one-address hostent out in buf; ERANGE when it does not fit. */
static int fill_hostent(const char *name, int family, const uint8_t *addr,
                        struct hostent *he, char *buf, size_t len)
{
	size_t alen = family == AF_INET ? 4 : 16, nlen = strlen(name) + 1;
	size_t need = 4 * sizeof(char *) + alen + nlen + sizeof(char *);
	if (len < need)
		return ERANGE;
	char **ptrs = (char **)(void *)buf;
	char *a = buf + 4 * sizeof(char *), *n = a + alen;
	memcpy(a, addr, alen);
	memcpy(n, name, nlen);
	ptrs[0] = a; /* h_addr_list */
	ptrs[1] = NULL;
	ptrs[2] = NULL; /* h_aliases */
	he->h_name = n;
	he->h_aliases = &ptrs[2];
	he->h_addrtype = family;
	he->h_length = (int)alen;
	he->h_addr_list = &ptrs[0];
	return 0;
}

/* The _r contract: 0 and *result set, or an errno value with *result NULL. */
static int fake_hostent_r(const char *name, int family, struct hostent *he, char *buf,
                          size_t len, struct hostent **result, int *h_errnop)
{
	uint8_t addr[16];
	*result = NULL;
	int rc = fakedns_addr_for(name, family, addr);
	if (rc < 0) {
		/* Some callers (CPython) read h_errno rather than *h_errnop. */
		h_errno = rc == -ENOSPC ? TRY_AGAIN : HOST_NOT_FOUND;
		if (h_errnop)
			*h_errnop = h_errno;
		return rc == -ENOSPC ? EAGAIN : ENOENT;
	}
	rc = fill_hostent(name, family, addr, he, buf, len);
	if (rc == 0)
		*result = he;
	else if (h_errnop)
		*h_errnop = NETDB_INTERNAL;
	return rc;
}

SHIM_EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *he, char *buf,
                                 size_t len, struct hostent **result, int *h_errnop)
{
	if (!shim_enter())
		return real_gethostbyname2_r
		               ? real_gethostbyname2_r(name, af, he, buf, len, result,
		                                       h_errnop)
		               : ENOSYS;
	int rc, want = want_fake(name);
	if (want == 0 || (af != AF_INET && af != AF_INET6)) {
		rc = real_gethostbyname2_r(name, af, he, buf, len, result, h_errnop);
	} else if (want < 0) {
		*result = NULL;
		h_errno = NO_RECOVERY;
		if (h_errnop)
			*h_errnop = NO_RECOVERY;
		rc = EIO;
	} else {
		rc = fake_hostent_r(name, af, he, buf, len, result, h_errnop);
	}
	shim_leave();
	return rc;
}

SHIM_EXPORT int gethostbyname_r(const char *name, struct hostent *he, char *buf,
                                size_t len, struct hostent **result, int *h_errnop)
{
	return gethostbyname2_r(name, AF_INET, he, buf, len, result, h_errnop);
}

/* The non-reentrant forms use one buffer per thread, like glibc's. */
static __thread struct hostent tls_he;
static __thread char tls_buf[1024];

SHIM_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
	struct hostent *result = NULL;
	int herr = 0;
	if (gethostbyname2_r(name, af, &tls_he, tls_buf, sizeof(tls_buf), &result,
	                     &herr) != 0 ||
	    !result)
		h_errno = herr ? herr : HOST_NOT_FOUND;
	return result;
}

SHIM_EXPORT struct hostent *gethostbyname(const char *name)
{
	return gethostbyname2(name, AF_INET);
}

/* --- reverse lookups ------------------------------------------------------------- */

static int sockaddr_for(const void *addr, socklen_t len, int type,
                        struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (type == AF_INET && len == 4) {
		struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
		v4->sin_family = AF_INET;
		memcpy(&v4->sin_addr, addr, 4);
		return 0;
	}
	if (type == AF_INET6 && len == 16) {
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
		v6->sin6_family = AF_INET6;
		memcpy(&v6->sin6_addr, addr, 16);
		return 0;
	}
	return -1;
}

SHIM_EXPORT int gethostbyaddr_r(const void *addr, socklen_t len, int type,
                                struct hostent *he, char *buf, size_t buflen,
                                struct hostent **result, int *h_errnop)
{
	struct sockaddr_storage ss;
	char name[256];
	if (!shim_enter())
		return real_gethostbyaddr_r
		               ? real_gethostbyaddr_r(addr, len, type, he, buf, buflen,
		                                      result, h_errnop)
		               : ENOSYS;
	int rc;
	if (!addr || sockaddr_for(addr, len, type, &ss) < 0 ||
	    (!fakedns_in_pool((struct sockaddr *)&ss) && !remote_dns())) {
		rc = real_gethostbyaddr_r(addr, len, type, he, buf, buflen, result,
		                          h_errnop);
	} else if (fakedns_name_for((struct sockaddr *)&ss, name, sizeof(name)) < 0 &&
	           hosts_name_for((struct sockaddr *)&ss, name, sizeof(name)) < 0) {
		/* Remote mode: no reverse query around the proxy. */
		*result = NULL;
		h_errno = HOST_NOT_FOUND;
		if (h_errnop)
			*h_errnop = HOST_NOT_FOUND;
		rc = ENOENT;
	} else {
		rc = fill_hostent(name, type, addr, he, buf, buflen);
		*result = rc == 0 ? he : NULL;
	}
	shim_leave();
	return rc;
}

SHIM_EXPORT struct hostent *gethostbyaddr(const void *addr, socklen_t len, int type)
{
	struct hostent *result = NULL;
	int herr = 0;
	if (gethostbyaddr_r(addr, len, type, &tls_he, tls_buf, sizeof(tls_buf), &result,
	                    &herr) != 0 ||
	    !result)
		h_errno = herr ? herr : HOST_NOT_FOUND;
	return result;
}

SHIM_EXPORT int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                            socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
	if (!shim_enter())
		return real_getnameinfo ? real_getnameinfo(sa, salen, host, hostlen, serv,
		                                           servlen, flags)
		                        : EAI_SYSTEM;
	int rc = 0;
	char name[256];
	bool wants_name = sa && host && hostlen > 0 && !(flags & NI_NUMERICHOST);
	if (!wants_name || (!fakedns_in_pool(sa) && !remote_dns())) {
		rc = real_getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
	} else if (fakedns_name_for(sa, name, sizeof(name)) < 0 &&
	           hosts_name_for(sa, name, sizeof(name)) < 0) {
		/* No name we may give without a DNS query around the proxy. */
		rc = (flags & NI_NAMEREQD)
		             ? EAI_NONAME
		             : real_getnameinfo(sa, salen, host, hostlen, serv, servlen,
		                                flags | NI_NUMERICHOST);
	} else if (strlen(name) >= hostlen) {
		rc = EAI_OVERFLOW;
	} else {
		if (serv && servlen > 0)
			rc = real_getnameinfo(sa, salen, NULL, 0, serv, servlen,
			                      flags & ~NI_NAMEREQD);
		if (rc == 0)
			strcpy(host, name);
	}
	shim_leave();
	return rc;
}
