/* SPDX-License-Identifier: MIT */
/*
 * Private to shim/common/config*.c shim/common/sockaddr.c: what the three parts of
 * socksify's configuration share. config.c holds the defaults, the key = value parser and
 * config_load() with its sources; config_url.c the value parsers (numbers, addresses,
 * proxy URLs) and the message helpers every part reports through; config_match.c the
 * exclusion rules and fake pools, parsed and matched. Nothing outside those
 * files includes this header: the public interface is config.h.
 *
 * The value parsers write what is wrong into a `why` buffer (WHY_LEN bytes) and
 * return -1; the option parser turns that into one message with config_fail().
 * Character classes and case folding are ASCII by hand, never <ctype.h> or
 * strtod(), whose answers depend on the program's locale.
 */
#ifndef SOCKSIFY_SHIM_CONFIG_INT_H
#define SOCKSIFY_SHIM_CONFIG_INT_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* A numeric address with an optional prefix and port, as in exclusion rules. */
struct hostspec {
	int family;
	uint8_t addr[16];
	unsigned prefix; /* 32 or 128 when none was given */
	uint16_t port;   /* 0 when none was given */
};

/* --- ASCII helpers (locale-independent) -------------------------------------------- */

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static inline bool eq_nocase(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

/* --- messages (config_url.c) ------------------------------------------------------- */

/* A value as shown in a message: at most SHOW_MAX bytes of it (dst: SHOW_MAX + 4). */
const char *config_show(char *dst, const char *s, size_t n);

/* A proxy URL as shown in a message: any password becomes "***". */
const char *config_show_url(char *dst, const char *url);

/*
 * Writes "SOURCE:LINE: message" into the caller's buffer and returns -1. Bytes
 * outside printable ASCII become '?', so the message stays one line.
 */
__attribute__((format(printf, 2, 3))) int config_fail(const struct where *w,
                                                      const char *fmt, ...);

/* Fills why and returns -1: for the value parsers. */
__attribute__((format(printf, 3, 4))) int config_why(char *why, size_t whylen,
                                                     const char *fmt, ...);

/* --- values (config_url.c) --------------------------------------------------------- */

/* "10", "2.5": seconds to milliseconds (saturating), or -1 when not a number. */
long config_seconds_parse(const char *s);

/* The index of v in words (ASCII case-insensitive), or -1. */
int config_word_index(const char *v, const char *const *words, size_t nwords);

/* "ADDR[/PREFIX]" from s[0..n) in h->family, the prefix only when allow_prefix. */
int config_cidr_parse(struct hostspec *h, const char *s, size_t n, bool allow_prefix,
                      char *why, size_t whylen);

/*
 * "[V6[/P]][:PORT]", "V6[/P]" (no port: the colons are taken) or
 * "V4[/P][:PORT]".
 */
int config_hostspec_parse(struct hostspec *h, const char *s, bool allow_prefix, char *why,
                          size_t whylen);

/* The length of the first URL of a comma-separated list (a comma followed by
 * "scheme://" separates; one in a password does not), or strlen(s). */
size_t config_first_url_len(const char *s);

/* socks5[h]://[user[:pass]@]host:port[/] into *out (which is overwritten). */
int config_url_parse(struct config_proxy *out, const char *url, char *why, size_t whylen);

/* --- other tools' variables (config_env.c) ----------------------------------------- */

/* The SOCKSIFY_* variables config_load() reads after $SOCKSIFY_CONF, in
 * order, and the option each one sets. */
struct config_env_option {
	const char *var, *key;
};
extern const struct config_env_option config_env_options[];
extern const size_t config_env_noptions;

/* ALL_PROXY and NO_PROXY when no source named a proxy (see config_load()). */
int config_env_proxy(struct config *cfg, char *(*getenv_fn)(const char *), char *err,
                     size_t errlen);

/* --- rules and pools (config_match.c) ---------------------------------------------- */

/* "CIDR[:port]", "[V6CIDR]:port", "V6CIDR" or a host-name suffix. */
int config_rule_parse(struct config_rule *r, const char *s, char *why, size_t whylen);

/* A fake pool: a CIDR with a prefix in [min, max] that overlaps no reserved net. */
int config_pool_parse(struct hostspec *h, int family, const char *s, char *why,
                      size_t whylen);

#endif
