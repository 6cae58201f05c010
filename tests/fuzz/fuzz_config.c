/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the configuration parser (shim/common/config.c).
 *
 * LLVMFuzzerTestOneInput() places the input at the very end of an mmap'd span
 * followed by a PROT_NONE page (so reading one byte too far faults) and parses
 * it as a configuration text; a NUL-terminated copy is parsed as a proxy URL
 * and asked to the matching helpers. Every answer is checked:
 *   - a failure leaves one non-empty line of printable ASCII in the error
 *     buffer, starting with the source name; with a short buffer (which also
 *     ends at a guard page) it is cut and NUL-terminated, never overrun;
 *   - a success leaves a consistent struct (lengths, prefixes, ranges, host
 *     bits, the derived dns mode), and writing that struct back out as a
 *     configuration text (or the proxy as a URL) parses to the same struct.
 * Any inconsistency abort()s.
 *
 * Linked with replay_main.c it gets a main() for any compiler, which replays
 * corpus files and directories and runs deterministic random mutations of
 * them (see there; tests/fuzz/meson.build builds it so). With clang, build it
 * without replay_main.c as a real libFuzzer target instead:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ishim/common \
 *       tests/fuzz/fuzz_config.c shim/common/config*.c shim/common/sockaddr.c -o
 * fuzz_config
 *   ./fuzz_config tests/fuzz/corpus/config
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "guard.h"
#include "replay.h"

const char fuzz_target_name[] = "fuzz_config";

/* Inputs longer than this are cut. */
#define SPAN_LEN FUZZ_INPUT_MAX
#define SOURCE   "fuzz.conf"

/* --- buffers that end at a guard page ---------------------------------------------- */

static struct guarded input_span, err_span;

/* --- invariants -------------------------------------------------------------------- */

static bool terminated(const char *s, size_t cap)
{
	return memchr(s, 0, cap) != NULL;
}

/* One line of printable ASCII that starts with the source. */
static void check_message(const char *err, size_t errlen, const char *source)
{
	size_t n = strnlen(err, errlen);

	CHECK(n > 0 && n < errlen);
	for (size_t i = 0; i < n; i++)
		CHECK(err[i] >= 0x20 && err[i] < 0x7f);
	size_t s = strlen(source);
	CHECK(strncmp(err, source, n < s ? n : s) == 0);
}

static void check_proxy(const struct config_proxy *p)
{
	CHECK(terminated(p->host, sizeof(p->host)) && p->host[0] != '\0');
	CHECK(p->port != 0);
	CHECK(terminated(p->user, sizeof(p->user)) &&
	      terminated(p->pass, sizeof(p->pass)));
	if (p->has_auth)
		CHECK(p->user[0] != '\0');
	else
		CHECK(p->user[0] == '\0' && p->pass[0] == '\0');
}

static void check_rule(const struct config_rule *r)
{
	if (r->kind == CONFIG_RULE_SUFFIX) {
		size_t n = strnlen(r->suffix, sizeof(r->suffix));
		CHECK(n > 0 && n < sizeof(r->suffix));
		CHECK(r->suffix[0] != '.' && r->suffix[n - 1] != '.');
		for (size_t i = 0; i < n; i++)
			CHECK(!(r->suffix[i] >= 'A' && r->suffix[i] <= 'Z'));
		return;
	}
	CHECK(r->kind == CONFIG_RULE_CIDR);
	CHECK(r->family == AF_INET || r->family == AF_INET6);
	unsigned bits = r->family == AF_INET ? 32 : 128;
	CHECK(r->prefix <= bits);
	for (unsigned b = r->prefix; b < bits; b++) /* host bits are clear */
		CHECK((r->addr[b / 8] & (0x80 >> (b % 8))) == 0);
}

static void check_config(const struct config *c)
{
	check_proxy(&c->proxy);
	CHECK(c->nrules <= CONFIG_MAX_RULES);
	for (size_t i = 0; i < c->nrules; i++)
		check_rule(&c->rules[i]);
	if (!c->dns_set)
		CHECK(c->dns ==
		      (c->proxy.remote_dns ? CONFIG_DNS_REMOTE : CONFIG_DNS_LOCAL));
	CHECK(c->connect_timeout_ms > 0 && c->connect_timeout_ms <= 3600000);
	CHECK(c->log_level >= CONFIG_LOG_ERROR && c->log_level <= CONFIG_LOG_DEBUG);
	CHECK(terminated(c->log_file, sizeof(c->log_file)));
	CHECK(c->pipeline == CONFIG_PIPELINE_AUTO || c->pipeline == CONFIG_PIPELINE_ON ||
	      c->pipeline == CONFIG_PIPELINE_OFF);
	CHECK(c->supervise == CONFIG_SUPERVISE_AUTO ||
	      c->supervise == CONFIG_SUPERVISE_ALWAYS ||
	      c->supervise == CONFIG_SUPERVISE_NEVER);
	CHECK(c->bind == CONFIG_BIND_AUTO || c->bind == CONFIG_BIND_NEVER);
	CHECK(c->fake_v4_prefix >= 4 && c->fake_v4_prefix <= 24);
	CHECK(c->fake_v6_prefix >= 8 && c->fake_v6_prefix <= 112);
	CHECK(c->fake_v4[0] != 0 && c->fake_v4[0] != 127 &&
	      (c->fake_v4[0] < 224 || c->fake_v4[0] >= 240));
	CHECK(c->fake_v6[0] != 0 && c->fake_v6[0] != 0xff);
}

/* --- writing a struct back out ----------------------------------------------------- */

static void append(char *buf, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);

	CHECK(*len + n < cap);
	memcpy(buf + *len, s, n + 1);
	*len += n;
}

/*
 * Percent-encodes s for a URL: with `all`, everything but unreserved
 * characters; otherwise only what the parsers need (%, ':' in the user name,
 * a newline, '#' after a blank), so that the URL of any proxy read from a
 * configuration line is no longer than that line was.
 */
static void append_encoded(char *buf, size_t cap, size_t *len, const char *s, bool all,
                           bool user)
{
	char esc[4];

	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		char prev = i ? s[i - 1] : 'x';
		bool blank = prev == ' ' || prev == '\t' || prev == '\r' ||
		             prev == '\v' || prev == '\f';
		bool plain;
		if (all)
			plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			        (c >= '0' && c <= '9') || c == '-' || c == '.' ||
			        c == '_';
		else
			plain = c != '%' && c != '\n' && !(c == ':' && user) &&
			        !(c == '#' && blank);
		snprintf(esc, sizeof(esc), plain ? "%c" : "%%%02X", c);
		append(buf, cap, len, esc);
	}
}

/* Does s start with ",SCHEME://" (optional blanks after the ','), which the
 * URL parser takes for a list of URLs? */
static bool list_comma(const char *s)
{
	size_t n = 0;

	if (*s++ != ',')
		return false;
	while (*s == ' ' || *s == '\t')
		s++;
	while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
	       (s[n] >= '0' && s[n] <= '9') || s[n] == '+' || s[n] == '-' || s[n] == '.')
		n++;
	return n > 0 && strncmp(s + n, "://", 3) == 0;
}

/*
 * A ',' in the user name or password that the parser would take for the start
 * of a second URL is written as %2C. (The input had one of those characters
 * percent-encoded, or it would have been refused as a list: the URL is still no
 * longer than its line was.)
 */
static void encode_list_commas(char *buf, size_t cap)
{
	char copy[2048];
	size_t len = 0;

	CHECK(strlen(buf) < sizeof(copy));
	memcpy(copy, buf, strlen(buf) + 1);
	buf[0] = '\0';
	for (const char *s = copy; *s; s++) {
		char c[2] = {*s, '\0'};
		append(buf, cap, &len, list_comma(s) ? "%2C" : c);
	}
}

static void format_url(char *buf, size_t cap, const struct config_proxy *p, bool all)
{
	size_t len = 0;
	char port[8];

	buf[0] = '\0';
	append(buf, cap, &len, p->remote_dns ? "socks5h://" : "socks5://");
	if (p->has_auth) {
		append_encoded(buf, cap, &len, p->user, all, true);
		append(buf, cap, &len, ":");
		append_encoded(buf, cap, &len, p->pass, all, false);
		append(buf, cap, &len, "@");
	}
	bool v6 = strchr(p->host, ':') != NULL;
	append(buf, cap, &len, v6 ? "[" : "");
	append(buf, cap, &len, p->host);
	snprintf(port, sizeof(port), "%s:%u", v6 ? "]" : "", (unsigned)p->port);
	append(buf, cap, &len, port);
	encode_list_commas(buf, cap);
}

static void format_rule(char *buf, size_t cap, const struct config_rule *r)
{
	char addr[INET6_ADDRSTRLEN];

	if (r->kind == CONFIG_RULE_SUFFIX) {
		snprintf(buf, cap, "%s", r->suffix);
		return;
	}
	CHECK(inet_ntop(r->family, r->addr, addr, sizeof(addr)));
	if (r->family == AF_INET6)
		snprintf(buf, cap, "[%s/%u]:%u", addr, r->prefix, (unsigned)r->port);
	else
		snprintf(buf, cap, "%s/%u:%u", addr, r->prefix, (unsigned)r->port);
	if (r->port == 0)
		*strrchr(buf, ':') = '\0';
}

/* The whole struct as a configuration text. */
static size_t format_config(char *buf, size_t cap, const struct config *c)
{
	static const char *const dns[] = {"remote", "local"};
	static const char *const pipeline[] = {"auto", "yes", "no"};
	static const char *const level[] = {"error", "info", "debug"};
	static const char *const supervise[] = {"auto", "always", "never"};
	static const char *const chain[] = {"failover", "strict", "round-robin"};
	static const char *const bind[] = {"auto", "never"};
	char line[2048], v4[INET_ADDRSTRLEN], v6[INET6_ADDRSTRLEN];
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->nproxies; i++) {
		append(buf, cap, &len, "proxy = ");
		format_url(line, sizeof(line), &c->proxies[i], false);
		append(buf, cap, &len, line);
		append(buf, cap, &len, "\n");
	}
	for (size_t i = 0; i < c->nrules; i++) {
		append(buf, cap, &len, "exclude = ");
		format_rule(line, sizeof(line), &c->rules[i]);
		append(buf, cap, &len, line);
		append(buf, cap, &len, "\n");
	}
	CHECK(inet_ntop(AF_INET, c->fake_v4, v4, sizeof(v4)));
	CHECK(inet_ntop(AF_INET6, c->fake_v6, v6, sizeof(v6)));
	snprintf(line, sizeof(line),
	         "%s%s%sproxy_loopback = %d\nconnect_timeout = %u.%03u\nlog_level = %s\n"
	         "pipeline = %s\nfake_pool_v4 = %s/%u\nfake_pool_v6 = %s/%u\n"
	         "supervise = %s\nbind = %s\n",
	         c->dns_set ? "dns = " : "", c->dns_set ? dns[c->dns] : "",
	         c->dns_set ? "\n" : "", c->proxy_loopback, c->connect_timeout_ms / 1000,
	         c->connect_timeout_ms % 1000, level[c->log_level], pipeline[c->pipeline],
	         v4, c->fake_v4_prefix, v6, c->fake_v6_prefix, supervise[c->supervise],
	         bind[c->bind]);
	append(buf, cap, &len, line);
	snprintf(line, sizeof(line), "chain = %s\nfailover_retry = %u.%03u\n",
	         chain[c->chain], c->failover_retry_ms / 1000,
	         c->failover_retry_ms % 1000);
	append(buf, cap, &len, line);
	if (c->nameserver_family) {
		char ns[INET6_ADDRSTRLEN];
		CHECK(inet_ntop(c->nameserver_family, c->nameserver, ns, sizeof(ns)));
		snprintf(line, sizeof(line), "nameserver = %s%s%s:%u\n",
		         c->nameserver_family == AF_INET6 ? "[" : "", ns,
		         c->nameserver_family == AF_INET6 ? "]" : "",
		         (unsigned)c->nameserver_port);
		append(buf, cap, &len, line);
	}
	if (c->log_file[0]) {
		append(buf, cap, &len, "log_file = ");
		append(buf, cap, &len, c->log_file);
		append(buf, cap, &len, "\n");
	}
	return len;
}

/* --- one input --------------------------------------------------------------------- */

static struct config cfg, again;
static char text_copy[SPAN_LEN + 1];
static char formatted[64 * 1024];

/* Parses text as a configuration; returns 1 on success. */
static int fuzz_text(const char *text, size_t size)
{
	char err[CONFIG_ERR_LEN];

	config_defaults(&cfg);
	memset(err, 0x5a, sizeof(err));
	if (config_parse_text(&cfg, text, size, SOURCE, err, sizeof(err)) < 0) {
		check_message(err, sizeof(err), SOURCE);
		/* the same failure into a short buffer that ends at a guard page */
		size_t cap = 1 + size % 48;
		char *small = (char *)guarded_end(&err_span, 4096, cap);
		config_defaults(&again);
		CHECK(config_parse_text(&again, text, size, SOURCE, small, cap) == -1);
		CHECK(strnlen(small, cap) < cap && strncmp(small, err, cap - 1) == 0);
		return 0;
	}
	check_config(&cfg);
	size_t len = format_config(formatted, sizeof(formatted), &cfg);
	config_defaults(&again);
	if (config_parse_text(&again, formatted, len, "formatted", err, sizeof(err)) <
	    0) {
		fprintf(stderr, "fuzz_config: %s\n%s", err, formatted);
		CHECK(!"the written-out config parses");
	}
	/* the written-out text sets every option, the input perhaps not all:
	 * where a setting came from is not part of the round trip */
	for (size_t i = 0; i < CONFIG_MAX_OPTIONS; i++) {
		CHECK(cfg.origin[i] == CONFIG_FROM_DEFAULT ||
		      cfg.origin[i] == CONFIG_FROM_TEXT);
		CHECK(cfg.origin[i] == CONFIG_FROM_DEFAULT ||
		      again.origin[i] == CONFIG_FROM_TEXT);
	}
	memset(cfg.origin, 0, sizeof(cfg.origin));
	memset(again.origin, 0, sizeof(again.origin));
	CHECK(memcmp(&cfg, &again, sizeof(cfg)) == 0);
	return 1;
}

/* Parses a NUL-terminated string as a proxy URL; returns 1 on success. */
static int fuzz_url(const char *s)
{
	struct config_proxy p, q;
	char err[CONFIG_ERR_LEN], url[2048];

	if (config_parse_proxy_url(&p, s, "SOCKSIFY_PROXY", err, sizeof(err)) < 0) {
		check_message(err, sizeof(err), "SOCKSIFY_PROXY");
		CHECK(strstr(err, ": bad proxy URL '") != NULL);
		return 0;
	}
	check_proxy(&p);
	for (int all = 0; all < 2; all++) {
		format_url(url, sizeof(url), &p, all);
		CHECK(config_parse_proxy_url(&q, url, NULL, err, sizeof(err)) == 0);
		CHECK(memcmp(&p, &q, sizeof(p)) == 0);
	}
	return 1;
}

/* The matching helpers on addresses and a name made of the input. */
static void fuzz_match(const struct config *c, const uint8_t *data, size_t size,
                       const char *name)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	uint8_t bytes[18] = {0};
	bool v6_rules = false;

	memcpy(bytes, data, size < sizeof(bytes) ? size : sizeof(bytes));
	memcpy(&sin6.sin6_addr, bytes, 16);
	memcpy(&sin6.sin6_port, bytes + 16, 2);
	(void)config_excluded_addr(c, (struct sockaddr *)&sin6);
	(void)config_is_fake_addr(c, (struct sockaddr *)&sin6);
	(void)config_excluded_name(c, name);

	/* an IPv4 address and its v4-mapped form get the same answers */
	memcpy(&sin.sin_addr, bytes, 4);
	memcpy(&sin.sin_port, bytes + 4, 2);
	memset(&sin6.sin6_addr, 0, 10);
	sin6.sin6_addr.s6_addr[10] = sin6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&sin6.sin6_addr.s6_addr[12], bytes, 4);
	sin6.sin6_port = sin.sin_port;
	for (size_t i = 0; i < c->nrules && i < CONFIG_MAX_RULES; i++)
		v6_rules |= c->rules[i].kind == CONFIG_RULE_CIDR &&
		            c->rules[i].family == AF_INET6;
	bool ex4 = config_excluded_addr(c, (struct sockaddr *)&sin);
	bool ex6 = config_excluded_addr(c, (struct sockaddr *)&sin6);
	CHECK(ex4 == ex6 || (v6_rules && ex6));
	CHECK(config_is_fake_addr(c, (struct sockaddr *)&sin) ==
	      config_is_fake_addr(c, (struct sockaddr *)&sin6));
}

static int fuzz_one(const uint8_t *data, size_t size)
{
	int good;

	if (size > SPAN_LEN)
		size = SPAN_LEN;
	const char *text = (const char *)guarded_copy(&input_span, SPAN_LEN, data, size);
	good = fuzz_text(text, size);
	memcpy(text_copy, data, size);
	text_copy[size] = '\0';
	good += fuzz_url(text_copy);
	fuzz_match(&cfg, data, size, text_copy); /* even a half-parsed one */
	return good;
}

int fuzz_last_good;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_last_good = fuzz_one(data, size);
	return 0;
}

/* --- how replay_main.c mutates inputs ---------------------------------------------- */

static const uint8_t interesting[] = {'\n', '#', '=', ':', '/', '@',  '%',  '[', ']',
                                      ' ',  ',', '.', '0', '9', '\0', '\r', 'f', '*'};

/* Pieces of the syntax that random bytes rarely spell. */
static const char *const tokens[] = {
        "proxy = ",
        "exclude = ",
        "dns = ",
        "socks5://",
        "socks5h://",
        "%40",
        "%zz",
        "::",
        "::ffff:",
        "/8",
        "/33",
        ":65535",
        ":0",
        "1.2.3.4",
        ".example.com",
        "fake_pool_v4 = ",
        "fake_pool_v6 = ",
        "connect_timeout = ",
        "log_level = ",
        "pipeline = ",
        "proxy_loopback = ",
        "log_file = ",
        "supervise = ",
        "bind = ",
        "always",
        "never",
        " # ",
};

/* Each as likely; the first three also apply to an empty input. */
static const enum fuzz_edit edits[] = {
        FUZZ_INSERT_BYTE, FUZZ_APPEND_ENTRY, FUZZ_INSERT_TOKEN, FUZZ_FLIP_BIT,
        FUZZ_SET_BYTE,    FUZZ_DELETE_CHUNK, FUZZ_TRUNCATE,     FUZZ_DUPLICATE_CHUNK,
};

const struct fuzz_mutator fuzz_mutator = {
        .max_len = 4096,
        .edits = edits,
        .nedits = sizeof(edits) / sizeof(edits[0]),
        .nedits_empty = 3,
        .interesting = interesting,
        .ninteresting = sizeof(interesting),
        .tokens = tokens,
        .ntokens = sizeof(tokens) / sizeof(tokens[0]),
        .report_kept = true,
};
