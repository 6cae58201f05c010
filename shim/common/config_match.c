/* SPDX-License-Identifier: MIT */
/*
 * Exclusion rules and fake-DNS pools: how a rule or a pool is parsed from its
 * text, and the questions the shim's policy asks of them on every connection
 * (config_excluded_addr, config_excluded_name, config_is_fake_addr).
 *
 * Matching only reads the caller's struct config and the sockaddr, copied out
 * with memcpy so that no alignment is assumed; a NULL or non-IP address never
 * matches. Host names compare ASCII case-insensitively, never through the
 * program's locale.
 */
#include "config_int.h"
#include "sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

/* The first prefix bits of a and net are equal (prefix at most 8 * their length). */
static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	size_t bytes = prefix / 8;
	unsigned bits = prefix % 8;

	if (memcmp(a, net, bytes) != 0)
		return false;
	if (bits == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - bits));
	return ((a[bytes] ^ net[bytes]) & mask) == 0;
}

/* --- exclusion rules --------------------------------------------------------------- */

/* A host-name suffix: "corp.example", ".corp.example" or "*.corp.example". */
static int suffix_parse(struct config_rule *r, const char *s, char *why, size_t whylen)
{
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	else if (s[0] == '.')
		s++;
	size_t n = strlen(s);
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0)
		return config_why(why, whylen, "empty host name");
	if (n > 253)
		return config_why(why, whylen, "host name longer than 253 bytes");
	if (strspn(s, "0123456789.") >= n) /* "*.10.1": an address, not a name */
		return config_why(why, whylen, "not a host name");
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.' && (i == 0 || s[i - 1] == '.' || i == n - 1))
			return config_why(why, whylen, "empty label in host name");
		if (c == ':')
			return config_why(why, whylen, "a port needs a numeric address");
		if (!is_alnum(c) && c != '.' && c != '-' && c != '_')
			return config_why(why, whylen,
			                  "invalid character '%c' in host name", c);
		r->suffix[i] = lower(c);
	}
	r->suffix[n] = '\0';
	r->kind = CONFIG_RULE_SUFFIX;
	return 0;
}

/* "CIDR[:port]", "[V6CIDR]:port", "V6CIDR" or a host-name suffix. */
int config_rule_parse(struct config_rule *r, const char *s, char *why, size_t whylen)
{
	size_t n = strlen(s), colons = 0;
	struct hostspec h;

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < n; i++)
		colons += s[i] == ':';
	bool numeric = strspn(s, "0123456789.:") == n && strpbrk(s, "0123456789:");
	if (s[0] != '[' && colons < 2 && !strchr(s, '/') && !numeric)
		return suffix_parse(r, s, why, whylen);
	if (config_hostspec_parse(&h, s, true, why, whylen) < 0)
		return -1;
	r->kind = CONFIG_RULE_CIDR;
	r->family = h.family;
	memcpy(r->addr, h.addr, sizeof(r->addr));
	r->prefix = h.prefix;
	r->port = h.port;
	return 0;
}

/* --- fake pools -------------------------------------------------------------------- */

struct reserved_net {
	uint8_t net[16];
	unsigned prefix;
	const char *name;
};

static const struct reserved_net reserved_v4[] = {
        {{224}, 4, "multicast 224.0.0.0/4"},
        {{127}, 8, "loopback 127.0.0.0/8"},
        {{0}, 8, "0.0.0.0/8"},
};

static const struct reserved_net reserved_v6[] = {
        {{0xff}, 8, "multicast ff00::/8"},
        {{0}, 8, "::/8 (loopback, unspecified, v4-mapped)"},
};

/* A fake pool: a CIDR with a prefix in [min, max] that overlaps no reserved net. */
int config_pool_parse(struct hostspec *h, int family, const char *s, char *why,
                      size_t whylen)
{
	bool v4 = family == AF_INET;
	unsigned min = v4 ? 4 : 8, max = v4 ? 24 : 112;
	const struct reserved_net *res = v4 ? reserved_v4 : reserved_v6;
	size_t nres = v4 ? sizeof(reserved_v4) / sizeof(reserved_v4[0])
	                 : sizeof(reserved_v6) / sizeof(reserved_v6[0]);

	memset(h, 0, sizeof(*h));
	h->family = family;
	if (config_cidr_parse(h, s, strlen(s), true, why, whylen) < 0)
		return -1;
	if (h->prefix < min || h->prefix > max)
		return config_why(why, whylen, "prefix length must be %u-%u", min, max);
	for (size_t i = 0; i < nres; i++) {
		unsigned common = h->prefix < res[i].prefix ? h->prefix : res[i].prefix;
		if (prefix_match(h->addr, res[i].net, common))
			return config_why(why, whylen, "overlaps %s", res[i].name);
	}
	return 0;
}

/* --- matching ---------------------------------------------------------------------- */

/* An IP socket address, taken apart. */
struct ip {
	int family;
	uint8_t addr[16];
	uint16_t port;
	const uint8_t *v4; /* the IPv4 address, also inside a v4-mapped one; or NULL */
};

static bool ip_from_sockaddr(const struct sockaddr *sa, struct ip *ip)
{
	union sa_any u;
	sa_family_t family;

	if (!sa)
		return false;
	memcpy(&family, (const uint8_t *)sa + offsetof(struct sockaddr, sa_family),
	       sizeof(family));
	u.sa.sa_family = family;
	if (sa_len(&u.sa) == 0)
		return false;
	memcpy(&u, sa, sa_len(&u.sa));
	ip->family = family;
	ip->port = sa_port(&u.sa);
	if (family == AF_INET)
		memcpy(ip->addr, &u.v4.sin_addr, 4);
	else
		memcpy(ip->addr, &u.v6.sin6_addr, 16);
	ip->v4 = sa_ipv4(&u.sa) ? (family == AF_INET ? ip->addr : ip->addr + 12) : NULL;
	return true;
}

static bool rule_covers(const struct config_rule *r, const struct ip *ip)
{
	if (r->kind != CONFIG_RULE_CIDR || (r->port && r->port != ip->port))
		return false;
	if (r->family == AF_INET6)
		return ip->family == AF_INET6 && r->prefix <= 128 &&
		       prefix_match(ip->addr, r->addr, r->prefix);
	return r->family == AF_INET && ip->v4 && r->prefix <= 32 &&
	       prefix_match(ip->v4, r->addr, r->prefix);
}

bool config_excluded_addr(const struct config *cfg, const struct sockaddr *sa)
{
	struct ip ip;

	if (!ip_from_sockaddr(sa, &ip))
		return false;
	for (size_t i = 0; i < cfg->nrules && i < CONFIG_MAX_RULES; i++)
		if (rule_covers(&cfg->rules[i], &ip))
			return true;
	return false;
}

/* name[0..n) is the suffix or ends with "." and the suffix. */
static bool suffix_covers(const struct config_rule *r, const char *name, size_t n)
{
	const char *suffix = r->suffix;
	size_t s = strnlen(suffix, sizeof(r->suffix));

	if (s == 1 && suffix[0] == '*') /* NO_PROXY=* (config_env.c) */
		return true;
	if (s == 0 || n < s || !eq_nocase(name + n - s, suffix, s))
		return false;
	return n == s || name[n - s - 1] == '.';
}

bool config_excluded_name(const struct config *cfg, const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0)
		return false;
	for (size_t i = 0; i < cfg->nrules && i < CONFIG_MAX_RULES; i++) {
		const struct config_rule *r = &cfg->rules[i];
		if (r->kind == CONFIG_RULE_SUFFIX && suffix_covers(r, name, n))
			return true;
	}
	return false;
}

bool config_remote_dns(const struct config *cfg)
{
	return cfg->dns_set ? cfg->dns == CONFIG_DNS_REMOTE : cfg->proxy.remote_dns;
}

bool config_is_fake_addr(const struct config *cfg, const struct sockaddr *sa)
{
	static const uint8_t broadcast[4] = {0xff, 0xff, 0xff, 0xff};
	struct ip ip;

	if (!ip_from_sockaddr(sa, &ip))
		return false;
	if (!ip.v4)
		return cfg->fake_v6_prefix <= 128 &&
		       prefix_match(ip.addr, cfg->fake_v6, cfg->fake_v6_prefix);
	return memcmp(ip.v4, broadcast, 4) != 0 && cfg->fake_v4_prefix <= 32 &&
	       prefix_match(ip.v4, cfg->fake_v4, cfg->fake_v4_prefix);
}
