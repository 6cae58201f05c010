/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the shim's classifier (shim/policy.c), printed as TAP; no
 * root and no network: the proxy is given by numeric address, so nothing is
 * looked up, and the fake-DNS pool is this process's own.
 *
 * Every verdict and every reason of policy_classify: the proxy itself (its
 * address and port only: another port of the proxy's host is a destination
 * like any other), loopback and the unspecified address in both families and
 * v4-mapped, with and without proxy_loopback, exclusion rules, short
 * addresses and the 24-byte RFC 2133 sockaddr_in6 (in buffers of exactly
 * their length, so a sanitizer sees any read past them), fake-pool addresses
 * (a known one becomes its name, an unknown one is refused), a broken
 * configuration (fail closed) and plain remote addresses with their SOCKS5
 * targets. Then policy_is_proxy (any port) and policy_proxy_addr (an IPv4
 * proxy as v4-mapped for an AF_INET6 socket, none for AF_INET from an IPv6
 * proxy).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "fakedns.h"
#include "policy.h"
#include "shim_support.h"
#include "tap.h"

union sa_any {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	struct sockaddr_un un;
};

/* A sockaddr for a numeric IPv4 or IPv6 address and a port; aborts on a typo. */
static union sa_any sa_of(const char *text, uint16_t port)
{
	union sa_any u;

	memset(&u, 0, sizeof(u));
	if (inet_pton(AF_INET, text, &u.v4.sin_addr) == 1) {
		u.v4.sin_family = AF_INET;
		u.v4.sin_port = htons(port);
	} else if (inet_pton(AF_INET6, text, &u.v6.sin6_addr) == 1) {
		u.v6.sin6_family = AF_INET6;
		u.v6.sin6_port = htons(port);
	} else {
		abort();
	}
	return u;
}

static socklen_t sa_len(const union sa_any *u)
{
	return u->sa.sa_family == AF_INET ? sizeof(u->v4) : sizeof(u->v6);
}

static struct policy classify(const char *text, uint16_t port)
{
	union sa_any u = sa_of(text, port);
	struct policy pol;

	policy_classify(&u.sa, sa_len(&u), &pol);
	return pol;
}

/* Makes url the proxy, resolved afresh on the next use. */
static void set_proxy(const char *url)
{
	char err[CONFIG_ERR_LEN];

	if (config_parse_proxy_url(&shim_config.proxy, url, NULL, err, sizeof(err)) < 0) {
		tap_diag("%s", err);
		abort();
	}
	policy_forget_proxy_for_tests();
}

static bool passes(const struct policy *pol, const char *reason)
{
	return pol->verdict == POLICY_PASS && pol->reason &&
	       strcmp(pol->reason, reason) == 0;
}

static void is_pass(const char *text, uint16_t port, const char *reason)
{
	struct policy pol = classify(text, port);

	if (tap_is(pol.verdict, POLICY_PASS, "%s port %u: PASS", text, port))
		tap_ok(passes(&pol, reason), "%s port %u: reason '%s' (got '%s')", text,
		       port, reason, pol.reason ? pol.reason : "(null)");
}

static void is_deny(const char *text, uint16_t port, int err, const char *reason)
{
	struct policy pol = classify(text, port);

	if (tap_is(pol.verdict, POLICY_DENY, "%s port %u: DENY", text, port)) {
		tap_is(pol.err, err, "%s port %u: errno %s", text, port, strerror(err));
		tap_ok(pol.reason && strcmp(pol.reason, reason) == 0,
		       "%s port %u: reason '%s' (got '%s')", text, port, reason,
		       pol.reason ? pol.reason : "(null)");
	}
}

/* A PROXY verdict with an IPv4 or IPv6 target: want_text, at the same port. */
static void check_target_ip(const struct policy *pol, const char *what,
                            const char *want_text, uint16_t port)
{
	union sa_any want = sa_of(want_text, port);
	int v4 = want.sa.sa_family == AF_INET;
	const void *bytes =
	        v4 ? (const void *)&want.v4.sin_addr : (const void *)&want.v6.sin6_addr;

	if (!tap_is(pol->verdict, POLICY_PROXY, "%s: PROXY", what))
		return;
	tap_is(pol->target.atyp, v4 ? SOCKS5_ATYP_IPV4 : SOCKS5_ATYP_IPV6,
	       "%s: target ATYP %s", what, v4 ? "IPv4" : "IPv6");
	tap_ok(memcmp(pol->target.host.ipv6, bytes, v4 ? 4 : 16) == 0,
	       "%s: target address %s", what, want_text);
	tap_is(pol->target.port, port, "%s: target port %u", what, port);
}

static void is_proxied_as(const char *text, uint16_t port, const char *want_text)
{
	struct policy pol = classify(text, port);
	char what[80];

	snprintf(what, sizeof(what), "%s port %u", text, port);
	check_target_ip(&pol, what, want_text, port);
}

static void is_proxied(const char *text, uint16_t port)
{
	is_proxied_as(text, port, text);
}

/* --- the proxy itself ------------------------------------------------------------- */

static void test_proxy_itself(void)
{
	set_proxy("socks5://192.0.2.1:1080");
	is_pass("192.0.2.1", 1080, "the proxy itself");
	is_pass("::ffff:192.0.2.1", 1080, "the proxy itself");
	/* only its port: another service on the proxy's host is proxied */
	is_proxied("192.0.2.1", 1081);
	is_proxied_as("::ffff:192.0.2.1", 80, "192.0.2.1");

	set_proxy("socks5://[2001:db8::1]:1080");
	is_pass("2001:db8::1", 1080, "the proxy itself");
	is_proxied("2001:db8::1", 1081);
	is_proxied("2001:db8::2", 1080);

	/* a loopback proxy is the proxy itself also when loopback is proxied */
	set_proxy("socks5://127.0.0.1:1080");
	shim_config.proxy_loopback = true;
	is_pass("127.0.0.1", 1080, "the proxy itself");
	is_proxied("127.0.0.1", 1081);
	shim_config.proxy_loopback = false;
	is_pass("127.0.0.1", 1080, "the proxy itself");
	set_proxy("socks5://192.0.2.1:1080");
}

/* --- loopback ---------------------------------------------------------------------- */

static const char *const local[] = {
        "127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1", "0.0.0.0",
        "::",        "::ffff:0.0.0.0",
};

static void test_loopback(void)
{
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		is_pass(local[i], 80, "loopback");
	/* the neighbours are not */
	is_proxied("128.0.0.1", 80);
	is_proxied("126.255.255.255", 80);
	is_proxied("::2", 80);
	is_proxied("0.0.0.1", 80);

	shim_config.proxy_loopback = true;
	is_proxied("127.0.0.1", 80);
	is_proxied("127.255.255.254", 22);
	is_proxied("::1", 80);
	is_proxied_as("::ffff:127.0.0.1", 80, "127.0.0.1");
	is_proxied("0.0.0.0", 80);
	is_proxied("::", 80);
	shim_config.proxy_loopback = false;
}

/* --- exclusions -------------------------------------------------------------------- */

static void set_exclusions(const char *text)
{
	char err[CONFIG_ERR_LEN];

	shim_config.nrules = 0;
	if (config_parse_text(&shim_config, text, strlen(text), "test", err,
	                      sizeof(err)) < 0) {
		tap_diag("%s", err);
		abort();
	}
}

static void test_exclusions(void)
{
	set_exclusions("exclude = 10.0.0.0/8\n"
	               "exclude = 192.168.1.5:443\n"
	               "exclude = [fd00::/8]:53\n"
	               "exclude = 2001:db8:1::/48\n"
	               "exclude = .corp.example\n");
	is_pass("10.1.2.3", 80, "excluded");
	is_pass("::ffff:10.1.2.3", 80, "excluded");
	is_proxied("11.0.0.1", 80);
	is_pass("192.168.1.5", 443, "excluded");
	is_proxied("192.168.1.5", 80);
	is_pass("fd00::1", 53, "excluded");
	is_proxied("fd00::1", 54);
	is_pass("2001:db8:1:ffff::5", 8080, "excluded");
	is_proxied("2001:db8:2::5", 8080);
	/* a rule never reaches past the proxy itself or loopback */
	set_exclusions("exclude = 0.0.0.0/0\n");
	is_pass("192.0.2.1", 1080, "the proxy itself");
	is_pass("127.0.0.1", 80, "loopback");
	is_pass("203.0.113.9", 80, "excluded");
	shim_config.nrules = 0;
}

/* --- short addresses, RFC 2133 ---------------------------------------------------------
 */

/*
 * Classifies the first len bytes of u, copied into a buffer of exactly len
 * bytes, so that AddressSanitizer and valgrind see any read past them.
 */
static struct policy classify_short(const union sa_any *u, socklen_t len)
{
	struct sockaddr *sa = malloc(len);
	struct policy pol;

	if (!sa)
		abort();
	memcpy(sa, u, len);
	policy_classify(sa, len, &pol);
	free(sa);
	return pol;
}

static void test_short(void)
{
	union sa_any v4 = sa_of("198.51.100.7", 80);
	union sa_any v6 = sa_of("2001:db8::7", 443);
	union sa_any lo6 = sa_of("::1", 443);
	struct policy pol;

	for (socklen_t len = 2; len < sizeof(struct sockaddr_in); len++) {
		pol = classify_short(&v4, len);
		tap_ok(passes(&pol, "short address"),
		       "AF_INET in %u bytes: PASS, short address", len);
	}
	for (socklen_t len = sizeof(struct sockaddr_in); len < 24; len++) {
		pol = classify_short(&v6, len);
		tap_ok(passes(&pol, "short address"),
		       "AF_INET6 in %u bytes: PASS, short address", len);
	}
	/* RFC 2133's sockaddr_in6 has no sin6_scope_id: the kernel takes it */
	for (socklen_t len = 24; len < sizeof(struct sockaddr_in6); len++) {
		char what[64];
		snprintf(what, sizeof(what), "AF_INET6 in %u bytes", len);
		pol = classify_short(&v6, len);
		check_target_ip(&pol, what, "2001:db8::7", 443);
		pol = classify_short(&lo6, len);
		tap_ok(passes(&pol, "loopback"), "::1 in %u bytes: PASS, loopback", len);
	}
	/* longer than the family's struct: the address is read, the rest ignored */
	struct sockaddr_storage ss;
	memset(&ss, 0xee, sizeof(ss));
	memcpy(&ss, &v4.v4, sizeof(v4.v4));
	policy_classify((struct sockaddr *)&ss, sizeof(ss), &pol);
	check_target_ip(&pol, "AF_INET in a sockaddr_storage", "198.51.100.7", 80);
}

/* --- fake-pool addresses ---------------------------------------------------------------
 */

/* A PROXY verdict for fake address text at port 443, by name. */
static void is_proxied_by_name(const char *text, const char *name)
{
	struct policy pol = classify(text, 443);

	if (!tap_is(pol.verdict, POLICY_PROXY, "fake %s: PROXY", text))
		return;
	tap_is(pol.target.atyp, SOCKS5_ATYP_DOMAIN, "fake %s: target ATYP DOMAIN", text);
	tap_ok(strcmp(pol.target.host.domain, name) == 0,
	       "fake %s: target name %s (got %s)", text, name, pol.target.host.domain);
	tap_is(pol.target.domain_len, (long long)strlen(name), "fake %s: name length",
	       text);
	tap_is(pol.target.port, 443, "fake %s: target port 443", text);
}

static void test_fake(void)
{
	struct fakedns_params p = {0};
	uint8_t a4[4], a6[16];
	char t4[INET_ADDRSTRLEN], t6[INET6_ADDRSTRLEN], mapped[INET6_ADDRSTRLEN + 8];

	/* no pool attached: the pool's range is an address like any other */
	is_proxied("240.0.0.1", 443);
	is_proxied("100::1", 443);

	if (!tap_is(fakedns_attach(&p), 0, "the fake-DNS pool attaches"))
		return;
	tap_is(fakedns_addr_for("Example.COM", AF_INET, a4), 0, "a fake IPv4 address");
	tap_is(fakedns_addr_for("example.com", AF_INET6, a6), 0, "a fake IPv6 address");
	inet_ntop(AF_INET, a4, t4, sizeof(t4));
	inet_ntop(AF_INET6, a6, t6, sizeof(t6));
	snprintf(mapped, sizeof(mapped), "::ffff:%s", t4);

	is_proxied_by_name(t4, "Example.COM");
	is_proxied_by_name(t6, "Example.COM");
	is_proxied_by_name(mapped, "Example.COM");
	is_deny("240.0.0.99", 443, EHOSTUNREACH, "unknown fake address");
	is_deny("100::99", 443, EHOSTUNREACH, "unknown fake address");
	is_deny("::ffff:240.0.0.99", 443, EHOSTUNREACH, "unknown fake address");
	/* the pool comes before the exclusions: a fake address has no route */
	set_exclusions("exclude = 240.0.0.0/4\n");
	is_proxied_by_name(t4, "Example.COM");
	shim_config.nrules = 0;
	/* and fails closed with the configuration broken */
	shim_config_broken = true;
	is_deny(t4, 443, ECONNREFUSED, "configuration error");
	is_deny("240.0.0.99", 443, EHOSTUNREACH, "unknown fake address");
	shim_config_broken = false;
	fakedns_detach_for_tests();
}

/* --- a broken configuration -------------------------------------------------------- */

static void test_broken(void)
{
	shim_config_broken = true;
	is_deny("198.51.100.7", 80, ECONNREFUSED, "configuration error");
	is_deny("2001:db8::7", 80, ECONNREFUSED, "configuration error");
	is_deny("::ffff:198.51.100.7", 80, ECONNREFUSED, "configuration error");
	/* what goes direct still does */
	is_pass("192.0.2.1", 1080, "the proxy itself");
	is_pass("127.0.0.1", 80, "loopback");
	set_exclusions("exclude = 198.51.100.0/24\n");
	is_pass("198.51.100.7", 80, "excluded");
	shim_config.nrules = 0;
	shim_config_broken = false;
}

/* --- remote addresses ------------------------------------------------------------------
 */

static void test_remote(void)
{
	union sa_any u = sa_of("2001:db8::7", 443);
	struct policy pol;

	is_proxied("198.51.100.7", 8080);
	is_proxied("2001:db8::7", 443);
	is_proxied_as("::ffff:198.51.100.7", 22, "198.51.100.7");
	is_proxied("203.0.113.255", 1);
	is_proxied("255.255.255.255", 65535);
	/* flow label and scope are not part of the target */
	u.v6.sin6_flowinfo = htonl(0x12345);
	u.v6.sin6_scope_id = 7;
	policy_classify(&u.sa, sizeof(u.v6), &pol);
	check_target_ip(&pol, "2001:db8::7 with a flow label and a scope", "2001:db8::7",
	                443);
	tap_ok(pol.reason == NULL && pol.err == 0, "PROXY: no reason, no errno");
	tap_is(shim_depth, 0, "the re-entrancy guard is down after classifying");
}

/* --- policy_is_proxy, policy_proxy_addr ----------------------------------------------
 */

static void is_proxy_host(const char *text, uint16_t port, bool want)
{
	union sa_any u = sa_of(text, port);

	tap_is(policy_is_proxy(&u.sa, sa_len(&u)), want,
	       "policy_is_proxy(%s port %u): %s", text, port, want ? "yes" : "no");
}

static void test_is_proxy(void)
{
	union sa_any u = sa_of("192.0.2.1", 1080);

	set_proxy("socks5://192.0.2.1:1080");
	is_proxy_host("192.0.2.1", 1080, true);
	is_proxy_host("192.0.2.1", 5353, true); /* any port: its UDP relay */
	is_proxy_host("::ffff:192.0.2.1", 9, true);
	is_proxy_host("192.0.2.2", 1080, false);
	is_proxy_host("2001:db8::1", 1080, false);
	tap_ok(!policy_is_proxy(&u.sa, sizeof(u.v4) - 1), "policy_is_proxy: short: no");
	u.v6 = sa_of("::ffff:192.0.2.1", 1080).v6;
	tap_ok(!policy_is_proxy(&u.sa, 24), "policy_is_proxy: 24-byte AF_INET6: no");
	memset(&u, 0, sizeof(u));
	u.un.sun_family = AF_UNIX;
	tap_ok(!policy_is_proxy(&u.sa, sizeof(u.un)), "policy_is_proxy: AF_UNIX: no");

	set_proxy("socks5://[2001:db8::1]:1080");
	is_proxy_host("2001:db8::1", 53, true);
	is_proxy_host("2001:db8::2", 1080, false);
	is_proxy_host("192.0.2.1", 1080, false);
	set_proxy("socks5://192.0.2.1:1080");
}

static void test_proxy_addr(void)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
	union sa_any want = sa_of("::ffff:192.0.2.1", 1080);
	socklen_t len = 0;

	set_proxy("socks5://192.0.2.1:1080");
	tap_is(policy_proxy_addr(AF_INET, &ss, &len), 0, "IPv4 proxy, AF_INET: found");
	tap_is(len, sizeof(struct sockaddr_in), "IPv4 proxy, AF_INET: a sockaddr_in");
	tap_ok(in->sin_family == AF_INET && ntohs(in->sin_port) == 1080 &&
	               ntohl(in->sin_addr.s_addr) == 0xc0000201,
	       "IPv4 proxy, AF_INET: 192.0.2.1 port 1080");
	tap_is(policy_proxy_addr(AF_INET6, &ss, &len), 0, "IPv4 proxy, AF_INET6: found");
	tap_is(len, sizeof(struct sockaddr_in6), "IPv4 proxy, AF_INET6: a sockaddr_in6");
	tap_ok(memcmp(in6, &want.v6, sizeof(want.v6)) == 0,
	       "IPv4 proxy, AF_INET6: ::ffff:192.0.2.1 port 1080, nothing else set");
	tap_is(policy_proxy_addr(AF_UNIX, &ss, &len), -EAFNOSUPPORT,
	       "IPv4 proxy, AF_UNIX: EAFNOSUPPORT");

	set_proxy("socks5://[2001:db8::1]:1081");
	want = sa_of("2001:db8::1", 1081);
	tap_is(policy_proxy_addr(AF_INET6, &ss, &len), 0, "IPv6 proxy, AF_INET6: found");
	tap_is(len, sizeof(struct sockaddr_in6), "IPv6 proxy, AF_INET6: a sockaddr_in6");
	tap_ok(in6->sin6_family == AF_INET6 && in6->sin6_port == want.v6.sin6_port &&
	               memcmp(&in6->sin6_addr, &want.v6.sin6_addr, 16) == 0,
	       "IPv6 proxy, AF_INET6: [2001:db8::1] port 1081");
	tap_is(policy_proxy_addr(AF_INET, &ss, &len), -EAFNOSUPPORT,
	       "IPv6 proxy, AF_INET: EAFNOSUPPORT (the program's socket is not swapped)");
	set_proxy("socks5://192.0.2.1:1080");
}

/* Several proxies: each is a direct destination; a strict chain's later hop
 * given by name is never looked up here. */
static void test_several(void)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	char err[CONFIG_ERR_LEN];

	set_proxy("socks5://192.0.2.1:1080");
	if (config_parse_proxy_url(&shim_config.proxies[1], "socks5://198.51.100.7:1081",
	                           NULL, err, sizeof(err)) < 0 ||
	    config_parse_proxy_url(&shim_config.proxies[2],
	                           "socks5://nonexistent.invalid:1082", NULL, err,
	                           sizeof(err)) < 0)
		abort();
	shim_config.nproxies = 3;
	shim_config.chain = CONFIG_CHAIN_STRICT;
	is_pass("198.51.100.7", 1081, "the proxy itself");
	is_proxy_host("198.51.100.7", 9, true);
	is_proxy_host("192.0.2.1", 9, true);
	tap_is(policy_proxy_addr_of(1, AF_INET, &ss, &len), 0, "proxy 2: its address");
	tap_ok(ntohs(((struct sockaddr_in *)&ss)->sin_port) == 1081,
	       "proxy 2: port 1081");
	tap_is(policy_proxy_addr_of(3, AF_INET, &ss, &len), -EINVAL,
	       "proxy 4 of 3: EINVAL");
	shim_config.nproxies = 1;
	shim_config.chain = CONFIG_CHAIN_FAILOVER;
	is_proxy_host("198.51.100.7", 9, false);
	set_proxy("socks5://192.0.2.1:1080");
}

int main(void)
{
	tap_init();
	shim_support_init();
	test_proxy_itself();
	test_loopback();
	test_exclusions();
	test_short();
	test_fake();
	test_broken();
	test_remote();
	test_is_proxy();
	test_proxy_addr();
	test_several();
	return tap_done();
}
