/* SPDX-License-Identifier: MIT */
/*
 * The shim's classifier (see policy.h), and the proxy's own address,
 * resolved once (a name is looked up with the real resolver: the shim's
 * own getaddrinfo hook passes through while the shim runs).
 */
#include "policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fakedns.h"
#include "log.h"
#include "shim.h"
#include "sockaddr.h"

enum { PROXY_MAX_ADDRS = 4 };

struct proxy_addrs {
	pthread_once_t once;
	int err; /* 0, or why the proxy has no address */
	size_t n;
	struct sockaddr_storage addrs[PROXY_MAX_ADDRS];
};

static struct proxy_addrs proxy = {.once = PTHREAD_ONCE_INIT};

static void resolve_proxy(void)
{
	const struct config_proxy *p = &shim_config.proxy;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char port[8];

	snprintf(port, sizeof(port), "%u", p->port);
	/* libc's own lookup: the shim's getaddrinfo hook must pass through */
	shim_depth++;
	int rc = getaddrinfo(p->host, port, &hints, &res);
	shim_depth--;
	if (rc != 0) {
		proxy.err = EHOSTUNREACH;
		shim_log(SHIM_LOG_ERROR, "proxy %s:%u: %s", p->host, p->port,
		         gai_strerror(rc));
		return;
	}
	for (struct addrinfo *ai = res; ai && proxy.n < PROXY_MAX_ADDRS; ai = ai->ai_next)
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			memcpy(&proxy.addrs[proxy.n++], ai->ai_addr, ai->ai_addrlen);
	shim_depth++;
	freeaddrinfo(res);
	shim_depth--;
	if (proxy.n == 0)
		proxy.err = EHOSTUNREACH;
}

int policy_proxy_addr(int family, struct sockaddr_storage *out, socklen_t *len)
{
	pthread_once(&proxy.once, resolve_proxy);
	if (proxy.err)
		return -proxy.err;
	/* the proxy's own family first, else an IPv4 proxy v4-mapped */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < proxy.n; i++) {
			const struct sockaddr *sa =
			        (const struct sockaddr *)&proxy.addrs[i];
			if (pass == 0 && sa->sa_family != family)
				continue;
			union sa_any conv;
			socklen_t n = sa_to_family(sa, sa_len(sa), family, &conv);
			if (n) {
				memcpy(out, &conv, n);
				*len = n;
				return 0;
			}
		}
	return -EAFNOSUPPORT;
}

static bool is_proxy(const struct sockaddr *dst)
{
	pthread_once(&proxy.once, resolve_proxy);
	for (size_t i = 0; i < proxy.n; i++)
		if (sa_same(dst, (const struct sockaddr *)&proxy.addrs[i]))
			return true;
	return false;
}

bool policy_is_proxy(const struct sockaddr *sa, socklen_t len)
{
	if (len < sizeof(struct sockaddr_in) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    (sa->sa_family == AF_INET6 && len < sizeof(struct sockaddr_in6)))
		return false;
	pthread_once(&proxy.once, resolve_proxy);
	for (size_t i = 0; i < proxy.n; i++)
		if (sa_same_host(sa, (const struct sockaddr *)&proxy.addrs[i]))
			return true;
	return false;
}

void policy_forget_proxy_for_tests(void)
{
	proxy = (struct proxy_addrs){.once = PTHREAD_ONCE_INIT};
}

/* Loopback, or the unspecified address (which Linux connects to locally). */
static bool is_local(const struct sockaddr *dst)
{
	return sa_loopback(dst) || sa_unspecified(dst);
}

static void set_pass(struct policy *out, const char *reason)
{
	out->verdict = POLICY_PASS;
	out->reason = reason;
}

static void set_deny(struct policy *out, int err, const char *reason)
{
	out->verdict = POLICY_DENY;
	out->err = err;
	out->reason = reason;
}

/* The length of RFC 2133's sockaddr_in6 (no sin6_scope_id), which Linux
 * still accepts. */
enum { SIN6_LEN_RFC2133 = 24 };

/* An address of the fake-DNS pool: its name, or refused when it has none. */
static void classify_fake(const struct sockaddr *dst, struct policy *out)
{
	int n = fakedns_name_for(dst, out->target.host.domain,
	                         sizeof(out->target.host.domain));
	if (n < 0) {
		set_deny(out, EHOSTUNREACH, "unknown fake address");
		return;
	}
	out->target.atyp = SOCKS5_ATYP_DOMAIN;
	out->target.domain_len = (uint8_t)n;
	out->target.port = sa_port(dst);
	out->verdict = shim_config_broken ? POLICY_DENY : POLICY_PROXY;
	out->err = ECONNREFUSED;
	out->reason = "configuration error";
}

void policy_classify(const struct sockaddr *dst, socklen_t len, struct policy *out)
{
	memset(out, 0, sizeof(*out));
	if (dst->sa_family == AF_INET6 && len >= SIN6_LEN_RFC2133 &&
	    len < sizeof(struct sockaddr_in6)) {
		/* the RFC 2133 sockaddr_in6, without sin6_scope_id: the kernel
		 * takes it, so it is classified as the full one */
		struct sockaddr_in6 full;
		memset(&full, 0, sizeof(full));
		memcpy(&full, dst, len);
		policy_classify((const struct sockaddr *)&full, sizeof(full), out);
		return;
	}
	if (len < sizeof(struct sockaddr_in) ||
	    (dst->sa_family == AF_INET6 && len < sizeof(struct sockaddr_in6))) {
		set_pass(out, "short address");
		return;
	}
	if (fakedns_in_pool(dst)) {
		classify_fake(dst, out);
		return;
	}
	if (is_proxy(dst)) {
		set_pass(out, "the proxy itself");
		return;
	}
	if (is_local(dst) && !shim_config.proxy_loopback) {
		set_pass(out, "loopback");
		return;
	}
	if (config_excluded_addr(&shim_config, dst)) {
		set_pass(out, "excluded");
		return;
	}
	if (shim_config_broken) {
		set_deny(out, ECONNREFUSED, "configuration error");
		return;
	}
	const uint8_t *v4 = sa_ipv4(dst);
	if (v4) {
		out->target.atyp = SOCKS5_ATYP_IPV4;
		memcpy(out->target.host.ipv4, v4, 4);
		out->target.port = sa_port(dst);
	} else {
		socks5_addr_from_sockaddr(&out->target, dst, len);
	}
	out->verdict = POLICY_PROXY;
}
