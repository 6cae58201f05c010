/* SPDX-License-Identifier: MIT */
/*
 * The value parsers of socksify's configuration, and the messages every part
 * of it reports through: locale-independent numbers, numeric addresses with
 * an optional prefix and port (exclusion rules, fake pools), and proxy URLs
 * with percent-decoded credentials.
 *
 * A value parser works on the caller's bytes and fixed-size buffers on the
 * stack, never malloc: it returns 0, or -1 with what is wrong in `why`, which
 * the option parser (config.c) turns into one message with config_fail(). A
 * password is never copied into a message. See config_int.h for what the
 * other config*.c files use from here.
 */
#include "config_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
const char *config_show(char *dst, const char *s, size_t n)
{
	size_t len = 0;

	dst[0] = '\0';
	show_add(dst, &len, s, n);
	return dst;
}

/* A proxy URL as shown in a message: any password becomes "***". */
const char *config_show_url(char *dst, const char *url)
{
	const char *sep = strstr(url, "://");
	const char *auth = sep ? sep + 3 : url;
	const char *at = strrchr(auth, '@');
	const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	size_t len = 0;

	if (!colon)
		return config_show(dst, url, strlen(url));
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
int config_fail(const struct where *w, const char *fmt, ...)
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

/* Fills why and returns -1: for the value parsers. */
int config_why(char *why, size_t whylen, const char *fmt, ...)
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

/* "ADDR[/PREFIX]" from s[0..n), the prefix only when allow_prefix. */
int config_cidr_parse(struct hostspec *h, const char *s, size_t n, bool allow_prefix,
                      char *why, size_t whylen)
{
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	unsigned max = h->family == AF_INET ? 32 : 128;

	if (ip_parse(s, alen, h->family, h->addr) < 0)
		return config_why(why, whylen, "bad %s address",
		                  h->family == AF_INET ? "IPv4" : "IPv6");
	h->prefix = max;
	if (!slash)
		return 0;
	if (!allow_prefix)
		return config_why(why, whylen, "a prefix length is not allowed here");
	long p = number_parse(slash + 1, n - alen - 1, max);
	if (p < 0)
		return config_why(why, whylen, "bad prefix length (0-%u)", max);
	h->prefix = (unsigned)p;
	mask_host_bits(h->addr, max / 8, h->prefix);
	return 0;
}

/* A port 1-65535 from s (digits only) into h->port. */
static int port_set(struct hostspec *h, const char *s, char *why, size_t whylen)
{
	long port = number_parse(s, strlen(s), 65535);

	if (port <= 0)
		return config_why(why, whylen, "bad port (1-65535)");
	h->port = (uint16_t)port;
	return 0;
}

/*
 * "[V6[/P]][:PORT]", "V6[/P]" (no port: the colons are taken) or
 * "V4[/P][:PORT]".
 */
int config_hostspec_parse(struct hostspec *h, const char *s, bool allow_prefix, char *why,
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
			return config_why(why, whylen, "missing ']'");
		if (config_cidr_parse(h, s + 1, (size_t)(close - s - 1), allow_prefix,
		                      why, whylen) < 0)
			return -1;
		if (close[1] == ':')
			return port_set(h, close + 2, why, whylen);
		if (close[1] != '\0')
			return config_why(why, whylen, "unexpected text after ']'");
		return 0;
	}
	if (colons >= 2) {
		h->family = AF_INET6;
		return config_cidr_parse(h, s, n, allow_prefix, why, whylen);
	}
	const char *colon = memchr(s, ':', n);
	h->family = AF_INET;
	if (config_cidr_parse(h, s, colon ? (size_t)(colon - s) : n, allow_prefix, why,
	                      whylen) < 0)
		return -1;
	return colon ? port_set(h, colon + 1, why, whylen) : 0;
}

/* "10", "2.5": seconds to milliseconds (saturating), or -1 when not a number. */
long config_seconds_parse(const char *s)
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

/* --- proxy URLs -------------------------------------------------------------------- */

/* The value of a hexadecimal digit, or -1. */
static int hex_value(char c)
{
	if (is_digit(c))
		return c - '0';
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

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
					return config_why(
					        why, whylen,
					        "bad percent escape in password");
				return config_why(why, whylen,
				                  "bad percent escape '%.*s' in %s",
				                  (int)esc, s + i, what);
			}
			c = (char)(h1 << 4 | h2);
			i += 2;
		}
		if (len == 255)
			return config_why(why, whylen, "%s longer than 255 bytes", what);
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
		return config_why(why, whylen, "empty user name");
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
		return config_why(why, whylen, "missing host");
	if (n > 255)
		return config_why(why, whylen, "host name longer than 255 bytes");
	for (size_t i = 0; i < n; i++) {
		if (!is_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return config_why(why, whylen, "invalid character '%c' in host",
			                  s[i]);
		numeric = numeric && (is_digit(s[i]) || s[i] == '.');
	}
	if (numeric && ip_parse(s, n, AF_INET, v4) < 0)
		return config_why(why, whylen, "bad IPv4 address '%s'",
		                  config_show(buf, s, n));
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
			return config_why(why, whylen,
			                  "missing ']' after the IPv6 address");
		if (ip_parse(host, (size_t)(host_end - host), AF_INET6, v6) < 0)
			return config_why(
			        why, whylen, "bad IPv6 address '%s'",
			        config_show(buf, host, (size_t)(host_end - host)));
		p = host_end + 1;
	} else {
		host_end = host + strcspn(host, ":/?#");
		if (*host_end == ':' && strchr(host_end + 1, ':') &&
		    strspn(host, "0123456789abcdefABCDEF") == (size_t)(host_end - host))
			return config_why(why, whylen,
			                  "IPv6 address must be in brackets");
		if (host_check(host, (size_t)(host_end - host), why, whylen) < 0)
			return -1;
		p = host_end;
	}
	memcpy(out->host, host, (size_t)(host_end - host));
	out->host[host_end - host] = '\0';
	if (*p == '\0' || *p == '/' || *p == '?' || *p == '#')
		return config_why(why, whylen, "missing port");
	if (*p != ':')
		return config_why(why, whylen, "trailing garbage '%s'",
		                  config_show(buf, p, strlen(p)));
	size_t digits = strspn(++p, "0123456789");
	if (digits == 0)
		return config_why(why, whylen, *p ? "bad port '%s'" : "missing port",
		                  config_show(buf, p, strlen(p)));
	long port = number_parse(p, digits, 65535);
	if (port <= 0)
		return config_why(why, whylen, "port %s out of range (1-65535)",
		                  config_show(buf, p, digits));
	out->port = (uint16_t)port;
	p += digits;
	if (*p != '\0' && strcmp(p, "/") != 0)
		return config_why(why, whylen, "trailing garbage '%s'",
		                  config_show(buf, p, strlen(p)));
	return 0;
}

/* The length of the first URL of a list "URL, URL": up to a comma followed by
 * a scheme and "://" (a password may hold commas), or all of s. */
size_t config_first_url_len(const char *s)
{
	for (const char *c = strchr(s, ','); c; c = strchr(c + 1, ',')) {
		const char *next = c + 1;
		size_t n = 0;

		while (*next == ' ' || *next == '\t')
			next++;
		while (is_alnum(next[n]) || next[n] == '+' || next[n] == '-' ||
		       next[n] == '.')
			n++;
		if (n > 0 && strncmp(next + n, "://", 3) == 0)
			return (size_t)(c - s);
	}
	return strlen(s);
}

/* socks5[h]://[user[:pass]@]host:port[/] */
int config_url_parse(struct config_proxy *out, const char *url, char *why, size_t whylen)
{
	const char *sep = strstr(url, "://");
	char buf[SHOW_MAX + 4];

	memset(out, 0, sizeof(*out));
	if (config_first_url_len(url) < strlen(url))
		return config_why(why, whylen, "a list of URLs where one is expected");
	if (!sep)
		return config_why(why, whylen,
		                  "missing scheme (socks5:// or socks5h://)");
	size_t slen = (size_t)(sep - url);
	if (slen == 6 && eq_nocase(url, "socks5", 6))
		out->remote_dns = false;
	else if (slen == 7 && eq_nocase(url, "socks5h", 7))
		out->remote_dns = true;
	else
		return config_why(why, whylen,
		                  "unsupported scheme '%s' (socks5:// or socks5h://)",
		                  config_show(buf, url, slen));
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

	if (config_url_parse(out, url, why, sizeof(why)) < 0)
		return config_fail(&w, "bad proxy URL '%s': %s",
		                   config_show_url(buf, url), why);
	return 0;
}

/* The index of v in words (ASCII case-insensitive), or -1. */
int config_word_index(const char *v, const char *const *words, size_t nwords)
{
	size_t n = strlen(v);

	for (size_t i = 0; i < nwords; i++)
		if (strlen(words[i]) == n && eq_nocase(v, words[i], n))
			return (int)i;
	return -1;
}
