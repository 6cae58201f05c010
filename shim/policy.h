/* SPDX-License-Identifier: MIT */
/*
 * The one classifier of the shim: for a destination the program asked for,
 * PROXY (with the SOCKS5 target to request: a name for a fake-pool
 * address), PASS with the named reason it may go direct, or DENY with the
 * errno the call fails with. Every pass-through is one explicit case here.
 */
#ifndef SOCKSIFY_SHIM_POLICY_H
#define SOCKSIFY_SHIM_POLICY_H

#include <stdbool.h>
#include <sys/socket.h>

#include "socks5.h"

enum policy_verdict { POLICY_PROXY, POLICY_PASS, POLICY_DENY };

struct policy {
	enum policy_verdict verdict;
	int err;            /* POLICY_DENY */
	const char *reason; /* POLICY_PASS and POLICY_DENY, for the log */
	struct socks5_addr target;
	bool dns_redirect; /* policy_dns_redirect() set target */
};

void policy_classify(const struct sockaddr *dst, socklen_t len, struct policy *out);

/*
 * With `nameserver` set, in remote-DNS mode: when dst (already classified
 * into out, not denied) is port 53 of a nameserver of /etc/resolv.conf,
 * out becomes PROXY to the configured nameserver, dns_redirect set, and
 * true is returned: the program's own DNS query goes through the proxy to
 * the server it names, never to the local one (loopback resolvers
 * included). Without `nameserver`, in remote-DNS mode, such a query to a
 * loopback nameserver (out PASS: a local resolver would send the name out
 * itself) becomes DENY, ECONNREFUSED, and false is returned. Otherwise out
 * is left alone. For UDP and TCP sockets only.
 */
bool policy_dns_redirect(const struct sockaddr *dst, struct policy *out);

/* True when sa is (one of) a proxy's own address(es), any port: every proxy
 * of the list. */
bool policy_is_proxy(const struct sockaddr *sa, socklen_t len);

/* The proxy's address for a socket of `family` (an IPv4 proxy is given as
 * v4-mapped to an AF_INET6 socket). 0, or -errno when the proxy cannot be
 * used from such a socket or its name does not resolve. */
int policy_proxy_addr(int family, struct sockaddr_storage *out, socklen_t *len);

/* The same for proxy idx of the list (policy_proxy_addr: the first); a
 * name that does not resolve is logged here. */
int policy_proxy_addr_of(unsigned idx, int family, struct sockaddr_storage *out,
                         socklen_t *len);

/* Tests only, not thread-safe: forgets the proxy's addresses, so that the
 * next call resolves shim_config.proxy again. */
void policy_forget_proxy_for_tests(void);

#endif
