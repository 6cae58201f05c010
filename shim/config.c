/* SPDX-License-Identifier: MIT */
/*
 * socksify's configuration: defaults, the socksify.conf parser, proxy URLs,
 * exclusion rules, the SOCKSIFY_* environment and the matching helpers.
 *
 * This runs inside arbitrary programs (the shim) as well as in the launcher,
 * so it holds no state of its own: every parse works on the caller's struct,
 * with fixed-size buffers on the stack and no malloc. Text is split into lines
 * by one small splitter that both the in-memory and the file parser feed, so
 * a file is never read whole. Character classes and case folding are ASCII by
 * hand, never <ctype.h> or strtod(), whose answers depend on the program's
 * locale. Errors are returned as one line in the caller's buffer (see
 * config.h); a password is never copied into one.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Bytes of a user-supplied value echoed in a message before "...". */
#define SHOW_MAX 100
/* Room for the text describing what is wrong with a value. */
#define WHY_LEN 160

/* Where a message comes from, and where it goes. */
struct where {
	const char *source; /* a path, "SOCKSIFY_PROXY", or NULL */
	unsigned line;      /* 0 when the source has no lines */
	char *err;
	size_t errlen;
};

/* One source being applied: its first proxy or exclude line replaces. */
struct parse {
	struct config *cfg;
	struct where w;
	bool proxy_seen, exclude_seen;
};

/* --- ASCII helpers (locale-independent) -------------------------------------------- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool eq_nocase(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

static int hex_value(char c)
{
	if (is_digit(c))
		return c - '0';
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Removes spaces at both ends of s, in place, and returns the new start. */
static char *trim(char *s)
{
	size_t n;

	while (is_space(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_space(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* --- messages ---------------------------------------------------------------------- */

/* Appends s[0..n) to dst (SHOW_MAX + 4 bytes), cutting with "..." when too long. */
static void show_add(char *dst, size_t *len, const char *s, size_t n)
{
	if (*len > SHOW_MAX)
		return; /* already cut */
	if (n > SHOW_MAX - *len) {
		memcpy(dst + *len, s, SHOW_MAX - *len);
		memcpy(dst + SHOW_MAX, "...", 4);
		*len = SHOW_MAX + 1;
		return;
	}
	memcpy(dst + *len, s, n);
	*len += n;
	dst[*len] = '\0';
}

/* A value as shown in a message: at most SHOW_MAX bytes of it. */
static const char *show(char *dst, const char *s, size_t n)
{
	size_t len = 0;

	dst[0] = '\0';
	show_add(dst, &len, s, n);
	return dst;
}

/* A proxy URL as shown in a message: any password becomes "***". */
static const char *show_url(char *dst, const char *url)
{
	const char *sep = strstr(url, "://");
	const char *auth = sep ? sep + 3 : url;
	const char *at = strrchr(auth, '@');
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	size_t len = 0;

	if (!colon)
		return show(dst, url, strlen(url));
	dst[0] = '\0';
	show_add(dst, &len, url, (size_t)(colon + 1 - url));
	show_add(dst, &len, "***", 3);
	show_add(dst, &len, at, strlen(at));
	return dst;
}

/*
 * Writes "SOURCE:LINE: message" into the caller's buffer and returns -1. Bytes
 * outside printable ASCII become '?', so the message stays one line.
 */
__attribute__((format(printf, 2, 3))) static int fail(const struct where *w,
                                                      const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (!w->err || w->errlen == 0)
		return -1;
	w->err[0] = '\0';
	if (w->source && w->line)
		n = snprintf(w->err, w->errlen, "%s:%u: ", w->source, w->line);
	else if (w->source)
		n = snprintf(w->err, w->errlen, "%s: ", w->source);
	size_t off = n < 0 ? 0 : (size_t)n;
	if (off < w->errlen) {
		va_start(ap, fmt);
		vsnprintf(w->err + off, w->errlen - off, fmt, ap);
		va_end(ap);
	}
	for (char *p = w->err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return -1;
}

/* Fills why and returns -1: for the value parsers below. */
__attribute__((format(printf, 3, 4))) static int why_set(char *why, size_t whylen,
                                                         const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

/* --- numbers and addresses --------------------------------------------------------- */

/* A decimal of at most `max` from s[0..n) (digits only), or -1. */
static long number_parse(const char *s, size_t n, long max)
{
	long v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return -1;
	}
	return v;
}

/* Parses an IPv4 or IPv6 address from s[0..n) into out; 0 or -1. */
static int ip_parse(const char *s, size_t n, int family, uint8_t *out)
{
	char buf[INET6_ADDRSTRLEN];

	if (n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(family, buf, out) == 1 ? 0 : -1;
}

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

/* Clears the bits of addr (len bytes) after the first prefix bits. */
static void mask_host_bits(uint8_t *addr, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++) {
		if (prefix >= 8 * (i + 1))
			continue;
		unsigned keep = prefix > 8 * i ? prefix - 8 * (unsigned)i : 0;
		addr[i] &= (uint8_t)(0xff << (8 - keep));
	}
}

/* A numeric address with an optional prefix and port, as in rules and nameserver. */
struct hostspec {
	int family;
	uint8_t addr[16];
	unsigned prefix; /* 32 or 128 when none was given */
	uint16_t port;   /* 0 when none was given */
};

/* "ADDR[/PREFIX]" from s[0..n), the prefix only when allow_prefix. */
static int cidr_parse(struct hostspec *h, const char *s, size_t n, bool allow_prefix,
                      char *why, size_t whylen)
{
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	unsigned max = h->family == AF_INET ? 32 : 128;

	if (ip_parse(s, alen, h->family, h->addr) < 0)
		return why_set(why, whylen, "bad %s address",
		               h->family == AF_INET ? "IPv4" : "IPv6");
	h->prefix = max;
	if (!slash)
		return 0;
	if (!allow_prefix)
		return why_set(why, whylen, "a prefix length is not allowed here");
	long p = number_parse(slash + 1, n - alen - 1, max);
	if (p < 0)
		return why_set(why, whylen, "bad prefix length (0-%u)", max);
	h->prefix = (unsigned)p;
	mask_host_bits(h->addr, max / 8, h->prefix);
	return 0;
}

static int port_set(struct hostspec *h, const char *s, char *why, size_t whylen)
{
	long port = number_parse(s, strlen(s), 65535);

	if (port <= 0)
		return why_set(why, whylen, "bad port (1-65535)");
	h->port = (uint16_t)port;
	return 0;
}

/*
 * "[V6[/P]][:PORT]", "V6[/P]" (no port: the colons are taken) or
 * "V4[/P][:PORT]".
 */
static int hostspec_parse(struct hostspec *h, const char *s, bool allow_prefix, char *why,
                          size_t whylen)
{
	size_t n = strlen(s), colons = 0;

	memset(h, 0, sizeof(*h));
	for (size_t i = 0; i < n; i++)
		colons += s[i] == ':';
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);
		h->family = AF_INET6;
		if (!close)
			return why_set(why, whylen, "missing ']'");
		if (cidr_parse(h, s + 1, (size_t)(close - s - 1), allow_prefix, why,
		               whylen) < 0)
			return -1;
		if (close[1] == ':')
			return port_set(h, close + 2, why, whylen);
		if (close[1] != '\0')
			return why_set(why, whylen, "unexpected text after ']'");
		return 0;
	}
	if (colons >= 2) {
		h->family = AF_INET6;
		return cidr_parse(h, s, n, allow_prefix, why, whylen);
	}
	const char *colon = memchr(s, ':', n);
	h->family = AF_INET;
	if (cidr_parse(h, s, colon ? (size_t)(colon - s) : n, allow_prefix, why, whylen) <
	    0)
		return -1;
	return colon ? port_set(h, colon + 1, why, whylen) : 0;
}

/* --- proxy URLs -------------------------------------------------------------------- */

/* Percent-decodes s[0..n) into dst (256 bytes); what is "user name" or "password". */
static int decode(char *dst, const char *s, size_t n, const char *what, char *why,
                  size_t whylen)
{
	size_t len = 0;
	bool secret = strcmp(what, "password") == 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int h1 = i + 1 < n ? hex_value(s[i + 1]) : -1;
			int h2 = i + 2 < n ? hex_value(s[i + 2]) : -1;
			if (h1 < 0 || h2 < 0 || (h1 == 0 && h2 == 0)) {
				size_t esc = n - i < 3 ? n - i : 3;
				if (secret) /* even two bytes of a password stay out */
					return why_set(why, whylen,
					               "bad percent escape in password");
				return why_set(why, whylen,
				               "bad percent escape '%.*s' in %s",
				               (int)esc, s + i, what);
			}
			c = (char)(h1 << 4 | h2);
			i += 2;
		}
		if (len == 255)
			return why_set(why, whylen, "%s longer than 255 bytes", what);
		dst[len++] = c;
	}
	dst[len] = '\0';
	return 0;
}

/* "user[:pass]" from s[0..n). */
static int userinfo_parse(struct config_proxy *out, const char *s, size_t n, char *why,
                          size_t whylen)
{
	const char *colon = memchr(s, ':', n);
	size_t ulen = colon ? (size_t)(colon - s) : n;

	out->has_auth = true;
	if (ulen == 0)
		return why_set(why, whylen, "empty user name");
	if (decode(out->user, s, ulen, "user name", why, whylen) < 0)
		return -1;
	if (!colon)
		return 0;
	return decode(out->pass, colon + 1, n - ulen - 1, "password", why, whylen);
}

/* A host name or IPv4 address from s[0..n), not bracketed. */
static int host_check(const char *s, size_t n, char *why, size_t whylen)
{
	bool numeric = true;
	char buf[SHOW_MAX + 4];
	uint8_t v4[4];

	if (n == 0)
		return why_set(why, whylen, "missing host");
	if (n > 255)
		return why_set(why, whylen, "host name longer than 255 bytes");
	for (size_t i = 0; i < n; i++) {
		if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return why_set(why, whylen, "invalid character '%c' in host",
			               s[i]);
		numeric = numeric && (is_digit(s[i]) || s[i] == '.');
	}
	if (numeric && ip_parse(s, n, AF_INET, v4) < 0)
		return why_set(why, whylen, "bad IPv4 address '%s'", show(buf, s, n));
	return 0;
}

/* "host:port", "[v6]:port", then nothing or a single "/". */
static int hostport_parse(struct config_proxy *out, const char *s, char *why,
                          size_t whylen)
{
	char buf[SHOW_MAX + 4];
	const char *host = s, *host_end, *p;
	uint8_t v6[16];

	if (*s == '[') {
		host = s + 1;
		host_end = strchr(host, ']');
		if (!host_end)
			return why_set(why, whylen, "missing ']' after the IPv6 address");
		if (ip_parse(host, (size_t)(host_end - host), AF_INET6, v6) < 0)
			return why_set(why, whylen, "bad IPv6 address '%s'",
			               show(buf, host, (size_t)(host_end - host)));
		p = host_end + 1;
	} else {
		host_end = host + strcspn(host, ":/?#");
		if (*host_end == ':' && strchr(host_end + 1, ':') &&
		    strspn(host, "0123456789abcdefABCDEF") == (size_t)(host_end - host))
			return why_set(why, whylen, "IPv6 address must be in brackets");
		if (host_check(host, (size_t)(host_end - host), why, whylen) < 0)
			return -1;
		p = host_end;
	}
	memcpy(out->host, host, (size_t)(host_end - host));
	out->host[host_end - host] = '\0';
	if (*p == '\0' || *p == '/' || *p == '?' || *p == '#')
		return why_set(why, whylen, "missing port");
	if (*p != ':')
		return why_set(why, whylen, "trailing garbage '%s'",
		               show(buf, p, strlen(p)));
	size_t digits = strspn(++p, "0123456789");
	if (digits == 0)
		return why_set(why, whylen, *p ? "bad port '%s'" : "missing port",
		               show(buf, p, strlen(p)));
	long port = number_parse(p, digits, 65535);
	if (port <= 0)
		return why_set(why, whylen, "port %s out of range (1-65535)",
		               show(buf, p, digits));
	out->port = (uint16_t)port;
	p += digits;
	if (*p != '\0' && strcmp(p, "/") != 0)
		return why_set(why, whylen, "trailing garbage '%s'",
		               show(buf, p, strlen(p)));
	return 0;
}

/* socks5[h]://[user[:pass]@]host:port[/] */
static int url_parse(struct config_proxy *out, const char *url, char *why, size_t whylen)
{
	const char *sep = strstr(url, "://");
	char buf[SHOW_MAX + 4];

	memset(out, 0, sizeof(*out));
	if (!sep)
		return why_set(why, whylen, "missing scheme (socks5:// or socks5h://)");
	size_t slen = (size_t)(sep - url);
	if (slen == 6 && eq_nocase(url, "socks5", 6))
		out->remote_dns = false;
	else if (slen == 7 && eq_nocase(url, "socks5h", 7))
		out->remote_dns = true;
	else
		return why_set(why, whylen,
		               "unsupported scheme '%s' (socks5:// or socks5h://)",
		               show(buf, url, slen));
	const char *auth = sep + 3;
	const char *at = strrchr(auth, '@');
	if (at && userinfo_parse(out, auth, (size_t)(at - auth), why, whylen) < 0)
		return -1;
	return hostport_parse(out, at ? at + 1 : auth, why, whylen);
}

int config_parse_proxy_url(struct config_proxy *out, const char *url, const char *source,
                           char *err, size_t errlen)
{
	struct where w = {source, 0, err, errlen};
	char why[WHY_LEN], buf[SHOW_MAX + 4];

	if (url_parse(out, url, why, sizeof(why)) < 0)
		return fail(&w, "bad proxy URL '%s': %s", show_url(buf, url), why);
	return 0;
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
		return why_set(why, whylen, "empty host name");
	if (n > 253)
		return why_set(why, whylen, "host name longer than 253 bytes");
	if (strspn(s, "0123456789.") >= n) /* "*.10.1": an address, not a name */
		return why_set(why, whylen, "not a host name");
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.' && (i == 0 || s[i - 1] == '.' || i == n - 1))
			return why_set(why, whylen, "empty label in host name");
		if (c == ':')
			return why_set(why, whylen, "a port needs a numeric address");
		if (!is_alnum(c) && c != '.' && c != '-' && c != '_')
			return why_set(why, whylen, "invalid character '%c' in host name",
			               c);
		r->suffix[i] = lower(c);
	}
	r->suffix[n] = '\0';
	r->kind = CONFIG_RULE_SUFFIX;
	return 0;
}

/* "CIDR[:port]", "[V6CIDR]:port", "V6CIDR" or a host-name suffix. */
static int rule_parse(struct config_rule *r, const char *s, char *why, size_t whylen)
{
	size_t n = strlen(s), colons = 0;
	struct hostspec h;

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < n; i++)
		colons += s[i] == ':';
	bool numeric = strspn(s, "0123456789.:") == n && strpbrk(s, "0123456789:");
	if (s[0] != '[' && colons < 2 && !strchr(s, '/') && !numeric)
		return suffix_parse(r, s, why, whylen);
	if (hostspec_parse(&h, s, true, why, whylen) < 0)
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
static int pool_parse(struct hostspec *h, int family, const char *s, char *why,
                      size_t whylen)
{
	bool v4 = family == AF_INET;
	unsigned min = v4 ? 4 : 8, max = v4 ? 24 : 112;
	const struct reserved_net *res = v4 ? reserved_v4 : reserved_v6;
	size_t nres = v4 ? sizeof(reserved_v4) / sizeof(reserved_v4[0])
	                 : sizeof(reserved_v6) / sizeof(reserved_v6[0]);

	memset(h, 0, sizeof(*h));
	h->family = family;
	if (cidr_parse(h, s, strlen(s), true, why, whylen) < 0)
		return -1;
	if (h->prefix < min || h->prefix > max)
		return why_set(why, whylen, "prefix length must be %u-%u", min, max);
	for (size_t i = 0; i < nres; i++) {
		unsigned common = h->prefix < res[i].prefix ? h->prefix : res[i].prefix;
		if (prefix_match(h->addr, res[i].net, common))
			return why_set(why, whylen, "overlaps %s", res[i].name);
	}
	return 0;
}

/* --- options ----------------------------------------------------------------------- */

/* The index of v in words (ASCII case-insensitive), or -1. */
static int word_index(const char *v, const char *const *words, size_t nwords)
{
	size_t n = strlen(v);

	for (size_t i = 0; i < nwords; i++)
		if (strlen(words[i]) == n && eq_nocase(v, words[i], n))
			return (int)i;
	return -1;
}

/* "bad value 'V' for 'KEY' (EXPECTED)" or, with why, "...: WHY". */
static int bad_value(struct parse *p, const char *key, const char *value,
                     const char *expected, const char *why)
{
	char buf[SHOW_MAX + 4];

	show(buf, value, strlen(value));
	if (why)
		return fail(&p->w, "bad value '%s' for '%s': %s", buf, key, why);
	return fail(&p->w, "bad value '%s' for '%s' (%s)", buf, key, expected);
}

static int set_proxy(struct parse *p, const char *key, const char *value)
{
	struct config *cfg = p->cfg;
	char why[WHY_LEN], buf[SHOW_MAX + 4];

	(void)key;
	if (!p->proxy_seen) {
		/* a new source replaces the list; cleared, so structs compare */
		memset(cfg->proxies, 0, sizeof(cfg->proxies));
		cfg->nproxies = 0;
		p->proxy_seen = true;
	}
	if (cfg->nproxies == CONFIG_MAX_PROXIES)
		return fail(&p->w, "too many proxies (at most %d)", CONFIG_MAX_PROXIES);
	if (url_parse(&cfg->proxies[cfg->nproxies], value, why, sizeof(why)) < 0)
		return fail(&p->w, "bad proxy URL '%s': %s", show_url(buf, value), why);
	cfg->nproxies++;
	return 0;
}

static int set_exclude(struct parse *p, const char *key, const char *value)
{
	struct config *cfg = p->cfg;
	char why[WHY_LEN], buf[SHOW_MAX + 4];

	(void)key;
	if (!p->exclude_seen) {
		memset(cfg->rules, 0, sizeof(cfg->rules)); /* as for proxies */
		cfg->nrules = 0;
		p->exclude_seen = true;
	}
	if (cfg->nrules == CONFIG_MAX_RULES)
		return fail(&p->w, "too many exclude rules (at most %d)",
		            CONFIG_MAX_RULES);
	if (rule_parse(&cfg->rules[cfg->nrules], value, why, sizeof(why)) < 0)
		return fail(&p->w, "bad exclude rule '%s': %s",
		            show(buf, value, strlen(value)), why);
	cfg->nrules++;
	return 0;
}

static int set_dns(struct parse *p, const char *key, const char *value)
{
	static const char *const words[] = {"remote", "local"};
	int i = word_index(value, words, 2);

	if (i < 0)
		return bad_value(p, key, value, "remote or local", NULL);
	p->cfg->dns = i == 0 ? CONFIG_DNS_REMOTE : CONFIG_DNS_LOCAL;
	p->cfg->dns_set = true;
	return 0;
}

static const char *const bool_words[] = {"no", "yes", "false", "true", "0", "1"};
#define BOOL_EXPECTED "yes, no, true, false, 1 or 0"

static int set_proxy_loopback(struct parse *p, const char *key, const char *value)
{
	int i = word_index(value, bool_words, 6);

	if (i < 0)
		return bad_value(p, key, value, BOOL_EXPECTED, NULL);
	p->cfg->proxy_loopback = i % 2 == 1;
	return 0;
}

/* "10", "2.5": seconds to milliseconds (saturating), or -1 when not a number. */
static long seconds_parse(const char *s)
{
	long sec = 0, ms = 0, scale = 100;

	if (!is_digit(*s))
		return -1;
	for (; is_digit(*s); s++)
		if (sec < 100000) /* saturates: far out of range, no overflow */
			sec = sec * 10 + (*s - '0');
	if (*s == '.') {
		if (!is_digit(*++s))
			return -1;
		for (; is_digit(*s); s++, scale /= 10)
			ms += (*s - '0') * scale;
	}
	return *s ? -1 : sec * 1000 + ms;
}

static int set_connect_timeout(struct parse *p, const char *key, const char *value)
{
	char buf[SHOW_MAX + 4];
	long ms = seconds_parse(value);

	show(buf, value, strlen(value));
	if (ms < 0)
		return fail(&p->w, "bad number '%s' for '%s' (seconds, e.g. 10 or 2.5)",
		            buf, key);
	if (ms == 0 || ms > 3600 * 1000)
		return fail(&p->w,
		            "%s '%s' out of range (more than 0, at most 3600 seconds)",
		            key, buf);
	p->cfg->connect_timeout_ms = (unsigned)ms;
	return 0;
}

static int set_log_level(struct parse *p, const char *key, const char *value)
{
	static const char *const words[] = {"error", "info", "debug", "0", "1", "2"};
	int i = word_index(value, words, 6);

	if (i < 0)
		return bad_value(p, key, value, "error, info or debug", NULL);
	p->cfg->log_level = i % 3;
	return 0;
}

static int set_log_file(struct parse *p, const char *key, const char *value)
{
	size_t n = strlen(value);

	if (n >= sizeof(p->cfg->log_file))
		return fail(&p->w, "value of '%s' longer than %zu bytes", key,
		            sizeof(p->cfg->log_file) - 1);
	memset(p->cfg->log_file, 0, sizeof(p->cfg->log_file));
	memcpy(p->cfg->log_file, value, n);
	return 0;
}

static int set_pipeline(struct parse *p, const char *key, const char *value)
{
	int i = word_index(value, bool_words, 6);

	if (strlen(value) == 4 && eq_nocase(value, "auto", 4))
		p->cfg->pipeline = CONFIG_PIPELINE_AUTO;
	else if (i < 0)
		return bad_value(p, key, value, "auto, yes or no", NULL);
	else
		p->cfg->pipeline = i % 2 == 1 ? CONFIG_PIPELINE_ON : CONFIG_PIPELINE_OFF;
	return 0;
}

static int set_fake_pool_v4(struct parse *p, const char *key, const char *value)
{
	struct hostspec h;
	char why[WHY_LEN];

	if (pool_parse(&h, AF_INET, value, why, sizeof(why)) < 0)
		return bad_value(p, key, value, NULL, why);
	memcpy(p->cfg->fake_v4, h.addr, sizeof(p->cfg->fake_v4));
	p->cfg->fake_v4_prefix = h.prefix;
	return 0;
}

static int set_fake_pool_v6(struct parse *p, const char *key, const char *value)
{
	struct hostspec h;
	char why[WHY_LEN];

	if (pool_parse(&h, AF_INET6, value, why, sizeof(why)) < 0)
		return bad_value(p, key, value, NULL, why);
	memcpy(p->cfg->fake_v6, h.addr, sizeof(p->cfg->fake_v6));
	p->cfg->fake_v6_prefix = h.prefix;
	return 0;
}

static int set_nameserver(struct parse *p, const char *key, const char *value)
{
	struct hostspec h;
	char why[WHY_LEN];
	size_t n = strlen(value);

	if (n >= sizeof(p->cfg->nameserver))
		return bad_value(p, key, value, NULL, "too long");
	if (hostspec_parse(&h, value, false, why, sizeof(why)) < 0)
		return bad_value(p, key, value, NULL, why);
	memset(p->cfg->nameserver, 0, sizeof(p->cfg->nameserver));
	memcpy(p->cfg->nameserver, value, n);
	return 0;
}

/* Every option of the file syntax, in the order socksify.conf documents them. */
static const struct option {
	const char *name;
	int (*set)(struct parse *p, const char *key, const char *value);
} options[] = {
        {"proxy", set_proxy},
        {"dns", set_dns},
        {"exclude", set_exclude},
        {"proxy_loopback", set_proxy_loopback},
        {"connect_timeout", set_connect_timeout},
        {"log_level", set_log_level},
        {"log_file", set_log_file},
        {"pipeline", set_pipeline},
        {"fake_pool_v4", set_fake_pool_v4},
        {"fake_pool_v6", set_fake_pool_v6},
        {"nameserver", set_nameserver},
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

const char *config_option_name(size_t i)
{
	return i < NOPTIONS ? options[i].name : NULL;
}

static int option_set(struct parse *p, const char *key, const char *value)
{
	char buf[SHOW_MAX + 4];

	for (size_t i = 0; i < NOPTIONS; i++)
		if (strcmp(options[i].name, key) == 0)
			return options[i].set(p, key, value);
	return fail(&p->w, "unknown option '%s'", show(buf, key, strlen(key)));
}

/* Without an explicit dns setting, DNS follows the first proxy's scheme. */
static void dns_derive(struct config *cfg)
{
	if (!cfg->dns_set && cfg->nproxies > 0)
		cfg->dns =
		        cfg->proxies[0].remote_dns ? CONFIG_DNS_REMOTE : CONFIG_DNS_LOCAL;
}

/* --- configuration text ------------------------------------------------------------ */

/* "key = value  # comment", a comment line or a blank line, NUL-terminated. */
static int line_parse(struct parse *p, char *s)
{
	char buf[SHOW_MAX + 4];

	s = trim(s);
	if (*s == '\0' || *s == '#')
		return 0;
	char *key = s;
	s += strcspn(s, "= \t\r\v\f");
	char *key_end = s;
	while (is_space(*s))
		s++;
	if (*s != '=')
		return fail(&p->w, "missing '=' after '%s'",
		            show(buf, key, (size_t)(key_end - key)));
	if (key_end == key)
		return fail(&p->w, "missing option name before '='");
	*key_end = '\0';
	char *value = trim(s + 1);
	/* a comment starts the value or follows whitespace: "a#b" is a value */
	for (size_t i = 0; value[i]; i++) {
		if (value[i] == '#' && (i == 0 || is_space(value[i - 1]))) {
			value[i] = '\0';
			break;
		}
	}
	value = trim(value);
	if (*value == '\0')
		return fail(&p->w, "empty value for '%s'", show(buf, key, strlen(key)));
	return option_set(p, key, value);
}

/* The line being collected: CONFIG_LINE_MAX bytes and a '\r' fit. */
struct line {
	char buf[CONFIG_LINE_MAX + 2];
	size_t len;
	bool too_long;
};

static int line_end(struct parse *p, struct line *l)
{
	int r;

	if (l->len > 0 && l->buf[l->len - 1] == '\r')
		l->len--;
	if (l->too_long || l->len > CONFIG_LINE_MAX) {
		r = fail(&p->w, "line longer than %d bytes", CONFIG_LINE_MAX);
	} else {
		l->buf[l->len] = '\0';
		r = line_parse(p, l->buf);
	}
	l->len = 0;
	l->too_long = false;
	p->w.line++;
	return r;
}

/* Splits s[0..n) into lines; a partial last line waits for more or for the end. */
static int line_feed(struct parse *p, struct line *l, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n') {
			if (line_end(p, l) < 0)
				return -1;
		} else if (s[i] == '\0') {
			return fail(&p->w, "NUL byte in the text");
		} else if (l->len < sizeof(l->buf) - 1) {
			l->buf[l->len++] = s[i];
		} else {
			l->too_long = true;
		}
	}
	return 0;
}

static int text_end(struct parse *p, struct line *l)
{
	if ((l->len > 0 || l->too_long) && line_end(p, l) < 0)
		return -1;
	dns_derive(p->cfg);
	return 0;
}

int config_parse_text(struct config *cfg, const char *text, size_t len,
                      const char *source, char *err, size_t errlen)
{
	struct parse p = {cfg, {source, 1, err, errlen}, false, false};
	struct line l;

	l.len = 0;
	l.too_long = false;
	if (len > 0 && line_feed(&p, &l, text, len) < 0)
		return -1;
	return text_end(&p, &l);
}

/* "PATH: cannot read: REASON", with errno left at the cause. */
static int cannot_read(struct where *w, int e)
{
	char buf[128];

	w->line = 0;
	fail(w, "cannot read: %s", strerror_r(e, buf, sizeof(buf)));
	errno = e;
	return -1;
}

static int file_apply(struct config *cfg, const char *path, bool missing_ok, char *err,
                      size_t errlen)
{
	struct parse p = {cfg, {path ? path : "(null)", 1, err, errlen}, false, false};
	struct line l;
	char chunk[2048];
	size_t n;
	int r = 0;

	if (!path)
		return cannot_read(&p.w, EINVAL);
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT && missing_ok)
			return 0;
		return cannot_read(&p.w, errno);
	}
	l.len = 0;
	l.too_long = false;
	while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		r = line_feed(&p, &l, chunk, n);
	if (r == 0 && ferror(f))
		r = cannot_read(&p.w, errno ? errno : EIO);
	if (r == 0)
		r = text_end(&p, &l);
	int saved = errno;
	fclose(f);
	errno = saved;
	return r;
}

int config_parse_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	return file_apply(cfg, path, false, err, errlen);
}

/* --- all sources ------------------------------------------------------------------- */

void config_defaults(struct config *cfg)
{
	struct config_proxy *px = &cfg->proxies[0];

	memset(cfg, 0, sizeof(*cfg));
	px->remote_dns = true;
	memcpy(px->host, "127.0.0.1", sizeof("127.0.0.1"));
	px->port = 1080;
	cfg->nproxies = 1;
	cfg->dns = CONFIG_DNS_REMOTE;
	cfg->connect_timeout_ms = 10000;
	cfg->log_level = CONFIG_LOG_ERROR;
	cfg->pipeline = CONFIG_PIPELINE_AUTO;
	cfg->fake_v4[0] = 240;
	cfg->fake_v4_prefix = 4;
	cfg->fake_v6[0] = 0x01;
	cfg->fake_v6_prefix = 64;
}

/* The variables config_load() reads after $SOCKSIFY_CONF, and their options. */
static const struct {
	const char *var, *key;
} env_options[] = {
        {CONFIG_ENV_PROXY, "proxy"},
        {CONFIG_ENV_DNS, "dns"},
        {CONFIG_ENV_LOG_LEVEL, "log_level"},
        {CONFIG_ENV_LOG_FILE, "log_file"},
        {CONFIG_ENV_PROXY_LOOPBACK, "proxy_loopback"},
        {CONFIG_ENV_EXCLUDE, "exclude"},
};

/* One variable as one source; $SOCKSIFY_EXCLUDE is a comma-separated list. */
static int env_apply(struct config *cfg, const char *var, const char *key,
                     const char *value, char *err, size_t errlen)
{
	struct parse p = {cfg, {var, 0, err, errlen}, false, false};
	char buf[CONFIG_LINE_MAX + 1];
	bool list = strcmp(key, "exclude") == 0;

	for (;;) {
		size_t n = list ? strcspn(value, ",") : strlen(value);
		if (n >= sizeof(buf))
			return fail(&p.w, "value longer than %d bytes", CONFIG_LINE_MAX);
		memcpy(buf, value, n);
		buf[n] = '\0';
		char *v = trim(buf);
		if (*v && option_set(&p, key, v) < 0)
			return -1;
		if (value[n] == '\0')
			return 0;
		value += n + 1;
	}
}

int config_load(struct config *cfg, const char *sysconf_path,
                char *(*getenv_fn)(const char *), char *err, size_t errlen)
{
	config_defaults(cfg);
	if (sysconf_path && file_apply(cfg, sysconf_path, true, err, errlen) < 0)
		return -1;
	if (!getenv_fn)
		return 0;
	const char *conf = getenv_fn(CONFIG_ENV_CONF);
	if (conf && *conf && file_apply(cfg, conf, false, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(env_options) / sizeof(env_options[0]); i++) {
		const char *v = getenv_fn(env_options[i].var);
		if (v && *v &&
		    env_apply(cfg, env_options[i].var, env_options[i].key, v, err,
		              errlen) < 0)
			return -1;
	}
	dns_derive(cfg);
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
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	sa_family_t family;

	if (!sa)
		return false;
	memcpy(&family, (const uint8_t *)sa + offsetof(struct sockaddr, sa_family),
	       sizeof(family));
	if (family == AF_INET) {
		struct sockaddr_in sin;
		memcpy(&sin, sa, sizeof(sin));
		ip->family = AF_INET;
		memcpy(ip->addr, &sin.sin_addr, 4);
		ip->port = ntohs(sin.sin_port);
		ip->v4 = ip->addr;
		return true;
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 sin6;
		memcpy(&sin6, sa, sizeof(sin6));
		ip->family = AF_INET6;
		memcpy(ip->addr, &sin6.sin6_addr, 16);
		ip->port = ntohs(sin6.sin6_port);
		ip->v4 = memcmp(ip->addr, mapped, 12) == 0 ? ip->addr + 12 : NULL;
		return true;
	}
	return false;
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

socklen_t config_nameserver_addr(const struct config *cfg, struct sockaddr_storage *ss)
{
	struct hostspec h;
	char why[WHY_LEN];

	memset(ss, 0, sizeof(*ss));
	if (!cfg->nameserver[0] || !memchr(cfg->nameserver, 0, sizeof(cfg->nameserver)) ||
	    hostspec_parse(&h, cfg->nameserver, false, why, sizeof(why)) < 0)
		return 0;
	uint16_t port = h.port ? h.port : 53;
	if (h.family == AF_INET) {
		struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
		memcpy(&sin.sin_addr, h.addr, 4);
		memcpy(ss, &sin, sizeof(sin));
		return sizeof(sin);
	}
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	memcpy(&sin6.sin6_addr, h.addr, 16);
	memcpy(ss, &sin6, sizeof(sin6));
	return sizeof(sin6);
}
