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
	bool done; /* resolved (read with acquire) */
	int err;   /* 0, or why the proxy has no address */
	int gai;   /* getaddrinfo's error, for the log */
	size_t n;
	struct sockaddr_storage addrs[PROXY_MAX_ADDRS];
};

/* Each proxy's addresses, resolved on first use, under the lock. */
static struct proxy_addrs proxy[CONFIG_MAX_PROXIES];
static pthread_mutex_t proxy_lock = PTHREAD_MUTEX_INITIALIZER;

static void resolve_proxy(const struct config_proxy *p, struct proxy_addrs *a)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char port[8];

	snprintf(port, sizeof(port), "%u", p->port);
	/* libc's own lookup: the shim's getaddrinfo hook must pass through */
	shim_depth++;
	int rc = getaddrinfo(p->host, port, &hints, &res);
	shim_depth--;
	if (rc != 0) {
		a->err = EHOSTUNREACH;
		a->gai = rc;
		return;
	}
	for (struct addrinfo *ai = res; ai && a->n < PROXY_MAX_ADDRS; ai = ai->ai_next)
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			memcpy(&a->addrs[a->n++], ai->ai_addr, ai->ai_addrlen);
	shim_depth++;
	freeaddrinfo(res);
	shim_depth--;
	if (a->n == 0)
		a->err = EHOSTUNREACH;
}

static unsigned nproxies(void)
{
	unsigned n = shim_config.nproxies;
	return n == 0 ? 1 : n > CONFIG_MAX_PROXIES ? CONFIG_MAX_PROXIES : n;
}

/* Proxy i's addresses, resolved once. */
static const struct proxy_addrs *addrs_of(unsigned i)
{
	struct proxy_addrs *a = &proxy[i];

	if (__atomic_load_n(&a->done, __ATOMIC_ACQUIRE))
		return a;
	pthread_mutex_lock(&proxy_lock);
	if (!a->done) {
		resolve_proxy(&shim_config.proxies[i], a);
		__atomic_store_n(&a->done, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&proxy_lock);
	return a;
}

int policy_proxy_addr_of(unsigned idx, int family, struct sockaddr_storage *out,
                         socklen_t *len)
{
	if (idx >= nproxies())
		return -EINVAL;
	const struct proxy_addrs *a = addrs_of(idx);
	if (a->err) {
		const struct config_proxy *p = &shim_config.proxies[idx];
		shim_log(SHIM_LOG_ERROR, "proxy %s:%u: %s", p->host, p->port,
		         a->gai ? gai_strerror(a->gai) : "no IPv4 or IPv6 address");
		return -a->err;
	}
	/* the proxy's own family first, else an IPv4 proxy v4-mapped */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < a->n; i++) {
			const struct sockaddr *sa = (const struct sockaddr *)&a->addrs[i];
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

int policy_proxy_addr(int family, struct sockaddr_storage *out, socklen_t *len)
{
	return policy_proxy_addr_of(0, family, out, len);
}

/* host is a numeric IPv4 or IPv6 address. */
static bool is_numeric(const char *host)
{
	uint8_t buf[16];
	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* dst is a proxy's address (same_port: and its port). Every proxy of the
 * list counts: each is a direct destination, never proxied. */
static bool any_proxy(const struct sockaddr *dst, bool same_port)
{
	for (unsigned k = 0; k < nproxies(); k++) {
		if (k > 0 && shim_config.chain == CONFIG_CHAIN_STRICT &&
		    !is_numeric(shim_config.proxies[k].host))
			continue; /* a later hop's name: never looked up here */
		const struct proxy_addrs *a = addrs_of(k);
		for (size_t i = 0; i < a->n; i++) {
			const struct sockaddr *p = (const struct sockaddr *)&a->addrs[i];
			if (same_port ? sa_same(dst, p) : sa_same_host(dst, p))
				return true;
		}
	}
	return false;
}

static bool is_proxy(const struct sockaddr *dst)
{
	return any_proxy(dst, true);
}

bool policy_is_proxy(const struct sockaddr *sa, socklen_t len)
{
	if (len < sizeof(struct sockaddr_in) ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    (sa->sa_family == AF_INET6 && len < sizeof(struct sockaddr_in6)))
		return false;
	return any_proxy(sa, false);
}

void policy_forget_proxy_for_tests(void)
{
	memset(proxy, 0, sizeof(proxy));
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
