/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the configuration module (shim/common/config.c), printed as TAP.
 *
 * Every option is set and checked, every error message is compared as exact
 * text (that text is what users see), proxy URLs are tried at their edges,
 * config_load() is run against temporary files and a fake getenv, and the
 * matching helpers are probed at CIDR boundaries. The sample socksify.conf,
 * whose path meson passes in $SOCKSIFY_CONF_SAMPLE, must parse to exactly the
 * defaults, both as shipped and with every "#option = default" line enabled.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"

#ifndef SOCKSIFY_SHIM_CONFIG_H
#error "config.h is not shim/common/config.h: fix the include path order"
#endif

static char err[CONFIG_ERR_LEN];
static struct config cfg;

/* --- helpers ----------------------------------------------------------------------- */

/* Defaults, then text as "test.conf"; returns what config_parse_text() did. */
static int parse(const char *text)
{
	config_defaults(&cfg);
	err[0] = '\0';
	return config_parse_text(&cfg, text, strlen(text), "test.conf", err, sizeof(err));
}

/* text must fail with exactly the message want. */
static void parse_fails(const char *text, const char *want)
{
	int r = parse(text);
	if (!tap_ok(r == -1 && strcmp(err, want) == 0, "error: %s", want))
		tap_diag("got %d, '%s'", r, err);
}

static void parse_ok(const char *text, const char *what)
{
	int r = parse(text);
	if (!tap_ok(r == 0, "parses: %s", what))
		tap_diag("error: %s", err);
}

static struct config_proxy px;

static int url(const char *u)
{
	memset(&px, 0xee, sizeof(px));
	err[0] = '\0';
	return config_parse_proxy_url(&px, u, "SOCKSIFY_PROXY", err, sizeof(err));
}

static void url_fails(const char *u, const char *problem)
{
	char want[CONFIG_ERR_LEN];
	int r = url(u);

	snprintf(want, sizeof(want), "SOCKSIFY_PROXY: bad proxy URL '%s': %s", u,
	         problem);
	if (!tap_ok(r == -1 && strcmp(err, want) == 0, "URL %s: %s", u, problem))
		tap_diag("got %d, '%s'", r, err);
}

static struct sockaddr_storage ss;

static const struct sockaddr *sa4(const char *ip, uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1)
		abort();
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, &sin, sizeof(sin));
	return (const struct sockaddr *)&ss;
}

static const struct sockaddr *sa6(const char *ip, uint16_t port)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) != 1)
		abort();
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, &sin6, sizeof(sin6));
	return (const struct sockaddr *)&ss;
}

static bool bytes_are(const uint8_t *got, int family, const char *ip)
{
	uint8_t want[16];
	if (inet_pton(family, ip, want) != 1)
		abort();
	return memcmp(got, want, family == AF_INET ? 4 : 16) == 0;
}

/* --- defaults and syntax ----------------------------------------------------------- */

static void test_defaults(void)
{
	struct config a, b;

	config_defaults(&cfg);
	tap_ok(cfg.proxy.remote_dns && strcmp(cfg.proxy.host, "127.0.0.1") == 0 &&
	               cfg.proxy.port == 1080 && !cfg.proxy.has_auth,
	       "defaults: proxy socks5h://127.0.0.1:1080");
	tap_ok(cfg.dns == CONFIG_DNS_REMOTE && !cfg.dns_set,
	       "defaults: dns remote, not set");
	tap_is((long long)cfg.nrules, 0, "defaults: no exclusions");
	tap_ok(!cfg.proxy_loopback, "defaults: loopback goes direct");
	tap_is(cfg.connect_timeout_ms, 10000, "defaults: connect timeout 10 s");
	tap_is(cfg.log_level, CONFIG_LOG_ERROR, "defaults: log level error");
	tap_ok(cfg.log_file[0] == '\0', "defaults: log to stderr");
	tap_is(cfg.pipeline, CONFIG_PIPELINE_AUTO, "defaults: pipeline auto");
	tap_is(cfg.supervise, CONFIG_SUPERVISE_AUTO, "defaults: supervise auto");
	tap_ok(bytes_are(cfg.fake_v4, AF_INET, "240.0.0.0") && cfg.fake_v4_prefix == 4,
	       "defaults: fake pool 240.0.0.0/4");
	tap_ok(bytes_are(cfg.fake_v6, AF_INET6, "100::") && cfg.fake_v6_prefix == 64,
	       "defaults: fake pool 100::/64");
	memset(&a, 0x55, sizeof(a));
	memset(&b, 0xaa, sizeof(b));
	config_defaults(&a);
	config_defaults(&b);
	tap_ok(memcmp(&a, &b, sizeof(a)) == 0, "defaults: whole struct is reproducible");
}

static void test_syntax(void)
{
	parse_ok("", "empty text");
	tap_ok(cfg.proxy.port == 1080, "empty text: defaults");
	parse_ok("\n\n# comment\n   # indented comment\n\t\n",
	         "comments and blank lines");
	parse_ok("log_level=debug", "no spaces, no final newline");
	tap_is(cfg.log_level, CONFIG_LOG_DEBUG, "no spaces: applied");
	parse_ok("  \tlog_level \t =\t info  \t\n", "spaces and tabs around");
	tap_is(cfg.log_level, CONFIG_LOG_INFO, "spaces and tabs: applied");
	parse_ok("log_level = debug\r\nproxy_loopback = yes\r\n", "CRLF lines");
	tap_ok(cfg.log_level == CONFIG_LOG_DEBUG && cfg.proxy_loopback, "CRLF: applied");
	parse_ok("log_file = /tmp/a#b # comment", "'#' inside a value, comment after");
	tap_ok(strcmp(cfg.log_file, "/tmp/a#b") == 0,
	       "value keeps 'a#b', drops ' # comment'");
	parse_ok("log_file = /tmp/x\t# tab comment", "comment after a tab");
	tap_ok(strcmp(cfg.log_file, "/tmp/x") == 0, "comment after a tab: dropped");
	parse_ok("log_file = /tmp/with space ", "space inside a value");
	tap_ok(strcmp(cfg.log_file, "/tmp/with space") == 0,
	       "inner space kept, end trimmed");

	parse_fails("prox = socks5://h:1", "test.conf:1: unknown option 'prox'");
	parse_fails("\n\n# x\nLOG_LEVEL = info",
	            "test.conf:4: unknown option 'LOG_LEVEL'");
	parse_fails("proxy socks5://h:1", "test.conf:1: missing '=' after 'proxy'");
	parse_fails("log_level\n", "test.conf:1: missing '=' after 'log_level'");
	parse_fails("= x", "test.conf:1: missing option name before '='");
	parse_fails("log_level =", "test.conf:1: empty value for 'log_level'");
	parse_fails("log_level =   # only a comment",
	            "test.conf:1: empty value for 'log_level'");
	parse_fails(
	        "log_level = info\nlog_level = loud",
	        "test.conf:2: bad value 'loud' for 'log_level' (error, info or debug)");
}

static void test_line_limits(void)
{
	char text[1100];

	memset(text, ' ', sizeof(text));
	memcpy(text, "log_level = info", 16);
	text[1023] = '\n';
	text[1024] = '\0';
	parse_ok(text, "a line of 1023 bytes");
	text[1023] = ' ';
	text[1024] = '\n';
	text[1025] = '\0';
	parse_fails(text, "test.conf:1: line longer than 1023 bytes");
	text[1023] = '\r';
	text[1024] = '\n';
	parse_ok(text, "1023 bytes and a CR before the newline");
	memset(text, ' ', sizeof(text));
	memcpy(text, "# comment\n#", 11);
	text[10 + 1024] = '\n';
	text[10 + 1025] = '\0';
	parse_fails(text, "test.conf:2: line longer than 1023 bytes");

	static const char nul[] = "log_level = info\nlog_\0level = debug\n";
	config_defaults(&cfg);
	int r = config_parse_text(&cfg, nul, sizeof(nul) - 1, "test.conf", err,
	                          sizeof(err));
	tap_ok(r == -1 && strcmp(err, "test.conf:2: NUL byte in the text") == 0,
	       "error: test.conf:2: NUL byte in the text");
	r = config_parse_text(&cfg, "log_level = debug\nxyz", 17, "t", err, sizeof(err));
	tap_ok(r == 0 && cfg.log_level == CONFIG_LOG_DEBUG, "only len bytes are read");
}

/* --- proxy option and URLs --------------------------------------------------------- */

static void test_proxy_option(void)
{
	parse_ok("proxy = socks5://10.0.0.1:1081", "one proxy");
	tap_ok(strcmp(cfg.proxy.host, "10.0.0.1") == 0 && cfg.proxy.port == 1081 &&
	               !cfg.proxy.remote_dns,
	       "one proxy: replaces the default");
	tap_ok(cfg.dns == CONFIG_DNS_LOCAL && !cfg.dns_set, "socks5:// proxy: dns local");
	parse_ok("proxy = socks5h://a:1", "a socks5h:// proxy");
	tap_is(cfg.dns, CONFIG_DNS_REMOTE, "dns follows the proxy (socks5h)");
	config_parse_text(&cfg, "proxy = socks5://d:4", 20, "second", err, sizeof(err));
	tap_ok(strcmp(cfg.proxy.host, "d") == 0 && cfg.proxy.port == 4,
	       "a proxy line in a new source replaces the proxy");
	tap_is(cfg.dns, CONFIG_DNS_LOCAL, "dns re-derived from the new proxy");
	parse_ok("dns = remote\nproxy = socks5://e:5", "explicit dns with socks5://");
	tap_ok(cfg.dns == CONFIG_DNS_REMOTE && cfg.dns_set, "explicit dns wins");
	config_parse_text(&cfg, "log_level = info", 16, "third", err, sizeof(err));
	tap_ok(strcmp(cfg.proxy.host, "e") == 0,
	       "a source without proxy keeps the proxy");

	/* several proxies: later lines of one source and comma lists append */
	parse_ok("proxy = socks5h://a:1\nproxy = socks5://u:p@b:2", "two proxy lines");
	tap_ok(cfg.nproxies == 2 && strcmp(cfg.proxies[0].host, "a") == 0 &&
	               strcmp(cfg.proxies[1].host, "b") == 0 &&
	               strcmp(cfg.proxies[1].pass, "p") == 0 && !cfg.proxies[0].has_auth,
	       "two proxy lines: both, in order, each with its own credentials");
	tap_is(cfg.dns, CONFIG_DNS_REMOTE, "dns follows the first proxy");
	config_parse_text(&cfg, "proxy = socks5://d:4", 20, "second", err, sizeof(err));
	tap_ok(cfg.nproxies == 1 && strcmp(cfg.proxy.host, "d") == 0,
	       "a new source's proxy line replaces the whole list");
	parse_ok("proxy = socks5://a:1,socks5://b:2 , socks5h://u:p,q@c:3",
	         "a comma-separated list");
	tap_ok(cfg.nproxies == 3 && strcmp(cfg.proxies[1].host, "b") == 0 &&
	               strcmp(cfg.proxies[2].pass, "p,q") == 0 &&
	               cfg.proxies[2].remote_dns,
	       "a list: three, a ',' in a password kept");
	parse_fails("proxy = socks5://a:1\nproxy = bad",
	            "test.conf:2: bad proxy URL 'bad': missing scheme (socks5:// or "
	            "socks5h://)");
	parse_fails("proxy = socks5://a:1, socks5://u:pw@b",
	            "test.conf:1: bad proxy URL 'socks5://u:***@b': missing port");
	parse_fails("proxy = socks5://a:1,,socks5://b:2",
	            "test.conf:1: bad proxy URL 'socks5://a:1,': trailing garbage "
	            "','");
	parse_fails("proxy = a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9",
	            "test.conf:1: bad proxy URL 'a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9': "
	            "missing scheme (socks5:// or socks5h://)");
	parse_fails("proxy = socks5://a:1,socks5://a:2,socks5://a:3,socks5://a:4,"
	            "socks5://a:5,socks5://a:6,socks5://a:7,socks5://a:8,socks5://a:9",
	            "test.conf:1: too many proxies (at most 8)");
	parse_ok("chain = strict\nfailover_retry = 2.5", "chain and failover_retry");
	tap_ok(cfg.chain == CONFIG_CHAIN_STRICT && cfg.failover_retry_ms == 2500,
	       "chain strict, failover_retry 2.5 s");
	parse_ok("chain = Round-Robin", "chain round-robin");
	tap_is(cfg.chain, CONFIG_CHAIN_ROUND_ROBIN, "chain round-robin, any case");
	parse_ok("chain = failover", "chain failover");
	tap_is(cfg.chain, CONFIG_CHAIN_FAILOVER, "chain failover");
	parse_fails("chain = random",
	            "test.conf:1: bad value 'random' for 'chain' (failover, strict or "
	            "round-robin)");
	parse_fails("failover_retry = 0",
	            "test.conf:1: failover_retry '0' out of range (more than 0, at most "
	            "3600 seconds)");
	parse_fails("failover_retry = 1m",
	            "test.conf:1: bad number '1m' for 'failover_retry' (seconds, e.g. 10 "
	            "or 2.5)");
	parse_ok("proxy = socks5://u:p,q@a:1", "a ',' in a password is no list");
	tap_ok(strcmp(cfg.proxy.pass, "p,q") == 0 && strcmp(cfg.proxy.host, "a") == 0,
	       "a ',' in a password: kept");
	parse_fails(
	        "proxy = http://h:8080",
	        "test.conf:1: bad proxy URL 'http://h:8080': unsupported scheme 'http' "
	        "(socks5:// or socks5h://)");
}

static void test_urls(void)
{
	/* one URL where one is expected (a list is for the proxy option) */
	url_fails("socks5://a:1, socks5h://b:2", "a list of URLs where one is expected");
	tap_ok(url("socks5://127.0.0.1:1080") == 0 && !px.remote_dns && !px.has_auth &&
	               strcmp(px.host, "127.0.0.1") == 0 && px.port == 1080 &&
	               px.user[0] == '\0' && px.pass[0] == '\0',
	       "URL socks5://127.0.0.1:1080");
	tap_ok(url("socks5h://proxy.example:9050") == 0 && px.remote_dns &&
	               strcmp(px.host, "proxy.example") == 0 && px.port == 9050,
	       "URL socks5h:// with a name");
	tap_ok(url("SOCKS5H://Proxy-1.example_x:1") == 0 && px.remote_dns &&
	               strcmp(px.host, "Proxy-1.example_x") == 0 && px.port == 1,
	       "URL scheme is case-insensitive, host kept as written");
	tap_ok(url("socks5://[::1]:1080") == 0 && strcmp(px.host, "::1") == 0 &&
	               px.port == 1080,
	       "URL [::1]:1080: host without brackets");
	tap_ok(url("socks5://[2001:db8::1:2]:65535") == 0 &&
	               strcmp(px.host, "2001:db8::1:2") == 0 && px.port == 65535,
	       "URL IPv6 with port 65535");
	tap_ok(url("socks5://u:p@h:1") == 0 && px.has_auth && strcmp(px.user, "u") == 0 &&
	               strcmp(px.pass, "p") == 0,
	       "URL user:pass@");
	tap_ok(url("socks5://user:@h:1") == 0 && px.has_auth &&
	               strcmp(px.user, "user") == 0 && px.pass[0] == '\0',
	       "URL user:@ has an empty password");
	tap_ok(url("socks5://user@h:1") == 0 && px.has_auth &&
	               strcmp(px.user, "user") == 0 && px.pass[0] == '\0',
	       "URL user@ without a password");
	tap_ok(url("socks5://al%69ce:p%40ss%3Aw%25rd%2f@h:1") == 0 &&
	               strcmp(px.user, "alice") == 0 &&
	               strcmp(px.pass, "p@ss:w%rd/") == 0,
	       "URL percent-escapes decoded, either case");
	tap_ok(url("socks5://u:p@ss@h:1") == 0 && strcmp(px.pass, "p@ss") == 0 &&
	               strcmp(px.host, "h") == 0,
	       "URL an unencoded '@' in the password: the last '@' ends it");
	tap_ok(url("socks5://u:a:b@h:1") == 0 && strcmp(px.user, "u") == 0 &&
	               strcmp(px.pass, "a:b") == 0,
	       "URL ':' in the password");
	tap_ok(url("socks5://u%3Ax:p@[fe80::1]:1") == 0 && strcmp(px.user, "u:x") == 0 &&
	               strcmp(px.host, "fe80::1") == 0,
	       "URL encoded ':' in the user name, IPv6 host");
	tap_ok(url("socks5://h:01080") == 0 && px.port == 1080,
	       "URL port with a leading 0");
	tap_ok(url("socks5h://localhost:9050/") == 0 && px.port == 9050,
	       "URL one trailing '/' is allowed");

	char longer[700], user[300];
	memset(user, 'u', 255);
	user[255] = '\0';
	snprintf(longer, sizeof(longer), "socks5://%s:%s@h:1", user, user);
	tap_ok(url(longer) == 0 && strlen(px.user) == 255 && strlen(px.pass) == 255,
	       "URL 255-byte user and password");
	snprintf(longer, sizeof(longer), "socks5://%%75%s:p@h:1", user + 1);
	tap_ok(url(longer) == 0 && strlen(px.user) == 255,
	       "URL 255 bytes after decoding");
	char host[300];
	memset(host, 'a', 255);
	host[255] = '\0';
	snprintf(longer, sizeof(longer), "socks5://%s:1", host);
	tap_ok(url(longer) == 0 && strlen(px.host) == 255, "URL 255-byte host name");
}

static void test_url_errors(void)
{
	char longer[700], part[300];

	url_fails("http://h:8080", "unsupported scheme 'http' (socks5:// or socks5h://)");
	url_fails("socks4://h:1080",
	          "unsupported scheme 'socks4' (socks5:// or socks5h://)");
	url_fails("socks4a://h:1",
	          "unsupported scheme 'socks4a' (socks5:// or socks5h://)");
	url_fails("://h:1", "unsupported scheme '' (socks5:// or socks5h://)");
	url_fails("127.0.0.1:1080", "missing scheme (socks5:// or socks5h://)");
	url_fails("socks5://host", "missing port");
	url_fails("socks5://host:", "missing port");
	url_fails("socks5://host/", "missing port");
	url_fails("socks5://[::1]", "missing port");
	url_fails("socks5://:1080", "missing host");
	url_fails("socks5://u@:1080", "missing host");
	url_fails("socks5://", "missing host");
	url_fails("socks5://host:0", "port 0 out of range (1-65535)");
	url_fails("socks5://host:65536", "port 65536 out of range (1-65535)");
	url_fails("socks5://host:99999999999999999999",
	          "port 99999999999999999999 out of range (1-65535)");
	url_fails("socks5://host:-1", "bad port '-1'");
	url_fails("socks5://host:http", "bad port 'http'");
	url_fails("socks5://host:1080/path", "trailing garbage '/path'");
	url_fails("socks5://host:1080//", "trailing garbage '//'");
	url_fails("socks5://host:10a0", "trailing garbage 'a0'");
	url_fails("socks5://host:1080?x=1", "trailing garbage '?x=1'");
	url_fails("socks5://[::1]x:1", "trailing garbage 'x:1'");
	url_fails("socks5://::1:1080", "IPv6 address must be in brackets");
	url_fails("socks5://[::1:1080", "missing ']' after the IPv6 address");
	url_fails("socks5://[::g]:1", "bad IPv6 address '::g'");
	url_fails("socks5://[1.2.3.4]:1", "bad IPv6 address '1.2.3.4'");
	url_fails("socks5://1.2.3:1", "bad IPv4 address '1.2.3'");
	url_fails("socks5://1.2.3.256:1", "bad IPv4 address '1.2.3.256'");
	url_fails("socks5://ho st:1", "invalid character ' ' in host");
	url_fails("socks5://@h:1", "empty user name");
	tap_ok(url("socks5://:p@h:1") == -1 &&
	               strcmp(err, "SOCKSIFY_PROXY: bad proxy URL 'socks5://:***@h:1': "
	                           "empty user name") == 0,
	       "URL :p@h:1: empty user name");
	url_fails("socks5://u%zz@h:1", "bad percent escape '%zz' in user name");
	url_fails("socks5://u%4@h:1", "bad percent escape '%4' in user name");
	url_fails("socks5://u%@h:1", "bad percent escape '%' in user name");
	url_fails("socks5://u%00@h:1", "bad percent escape '%00' in user name");
	tap_ok(url("socks5://u:s3cr%zzet@h:1") == -1 &&
	               strcmp(err, "SOCKSIFY_PROXY: bad proxy URL 'socks5://u:***@h:1': "
	                           "bad percent escape in password") == 0,
	       "URL bad escape in a password: password not shown");

	memset(part, 'x', 256);
	part[256] = '\0';
	snprintf(longer, sizeof(longer), "socks5://%s@h:1", part);
	tap_ok(url(longer) == -1 && strstr(err, ": user name longer than 255 bytes"),
	       "URL 256-byte user name");
	snprintf(longer, sizeof(longer), "socks5://u:%s@h:1", part);
	tap_ok(url(longer) == -1 &&
	               strcmp(err, "SOCKSIFY_PROXY: bad proxy URL 'socks5://u:***@h:1': "
	                           "password longer than 255 bytes") == 0,
	       "URL 256-byte password");
	snprintf(longer, sizeof(longer), "socks5://%s:1", part);
	tap_ok(url(longer) == -1 && strstr(err, ": host name longer than 255 bytes"),
	       "URL 256-byte host name");
	tap_ok(strstr(err, "xxx...'") != NULL && strlen(err) < 200,
	       "a long value is cut in the message");

	snprintf(longer, sizeof(longer), "socks5://%.120s:hunter2@h", part);
	tap_ok(url(longer) == -1 && !strstr(err, "hunter2") && strstr(err, "xxx...': "),
	       "a long URL is cut before the password, which is never shown");
	tap_ok(url("socks5://alice:hunter2@host") == -1 &&
	               strcmp(err,
	                      "SOCKSIFY_PROXY: bad proxy URL 'socks5://alice:***@host': "
	                      "missing port") == 0,
	       "a password is never shown in a message");
	tap_ok(config_parse_proxy_url(&px, "socks5://h", NULL, err, sizeof(err)) == -1 &&
	               strcmp(err, "bad proxy URL 'socks5://h': missing port") == 0,
	       "URL error without a source");
}

/* --- the other options ------------------------------------------------------------- */

static void test_simple_options(void)
{
	parse_ok("dns = local", "dns = local");
	tap_ok(cfg.dns == CONFIG_DNS_LOCAL && cfg.dns_set, "dns local, set");
	parse_ok("dns = Remote\nproxy = socks5://h:1", "dns = Remote");
	tap_ok(cfg.dns == CONFIG_DNS_REMOTE && cfg.dns_set,
	       "dns remote kept with socks5://");
	parse_fails("dns = proxy",
	            "test.conf:1: bad value 'proxy' for 'dns' (remote or local)");

	static const char *const yes[] = {"yes", "true", "1", "YES", "True"};
	static const char *const no[] = {"no", "false", "0", "No"};
	char text[64];
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		snprintf(text, sizeof(text), "proxy_loopback = %s", yes[i]);
		tap_ok(parse(text) == 0 && cfg.proxy_loopback, "proxy_loopback = %s",
		       yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		snprintf(text, sizeof(text), "proxy_loopback = 1\nproxy_loopback = %s",
		         no[i]);
		tap_ok(parse(text) == 0 && !cfg.proxy_loopback, "proxy_loopback = %s",
		       no[i]);
	}
	parse_fails("proxy_loopback = maybe",
	            "test.conf:1: bad value 'maybe' for "
	            "'proxy_loopback' (yes, no, true, false, 1 or 0)");

	static const struct {
		const char *text;
		unsigned ms;
	} timeouts[] = {
	        {"10", 10000},     {"2.5", 2500},    {"0.001", 1},  {"0.25", 250},
	        {"3600", 3600000}, {"1.0005", 1000}, {"007", 7000},
	};
	for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
		snprintf(text, sizeof(text), "connect_timeout = %s", timeouts[i].text);
		tap_ok(parse(text) == 0 && cfg.connect_timeout_ms == timeouts[i].ms,
		       "connect_timeout = %s is %u ms", timeouts[i].text, timeouts[i].ms);
	}
	static const char *const bad_numbers[] = {"abc", "-1",  "1.", ".5",
	                                          "1e3", "1,5", "+1"};
	for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++) {
		char want[160];
		snprintf(text, sizeof(text), "connect_timeout = %s", bad_numbers[i]);
		snprintf(want, sizeof(want),
		         "test.conf:1: bad number '%s' for 'connect_timeout' (seconds, "
		         "e.g. 10 "
		         "or 2.5)",
		         bad_numbers[i]);
		parse_fails(text, want);
	}
	static const char *const out_of_range[] = {"0", "0.0", "0.0001", "3600.001",
	                                           "99999999999999999999"};
	for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
		char want[160];
		snprintf(text, sizeof(text), "connect_timeout = %s", out_of_range[i]);
		snprintf(
		        want, sizeof(want),
		        "test.conf:1: connect_timeout '%s' out of range (more than 0, at "
		        "most 3600 seconds)",
		        out_of_range[i]);
		parse_fails(text, want);
	}

	static const struct {
		const char *text;
		int level;
	} levels[] = {{"error", 0}, {"info", 1}, {"debug", 2}, {"0", 0},
	              {"1", 1},     {"2", 2},    {"DEBUG", 2}};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		snprintf(text, sizeof(text), "log_level = info\nlog_level = %s",
		         levels[i].text);
		tap_ok(parse(text) == 0 && cfg.log_level == levels[i].level,
		       "log_level = %s is %d", levels[i].text, levels[i].level);
	}
	parse_fails("log_level = 3",
	            "test.conf:1: bad value '3' for 'log_level' (error, info or debug)");

	parse_ok("log_file = /var/log/socksify.log", "log_file");
	tap_ok(strcmp(cfg.log_file, "/var/log/socksify.log") == 0, "log_file stored");
	char longer[400] = "log_file = /";
	memset(longer + 12, 'f', 255);
	longer[12 + 255] = '\0';
	parse_fails(longer, "test.conf:1: value of 'log_file' longer than 255 bytes");
	longer[12 + 254] = '\0';
	parse_ok(longer, "log_file of 255 bytes");

	static const struct {
		const char *text;
		enum config_pipeline want;
	} pipes[] = {{"auto", CONFIG_PIPELINE_AUTO}, {"yes", CONFIG_PIPELINE_ON},
	             {"no", CONFIG_PIPELINE_OFF},    {"true", CONFIG_PIPELINE_ON},
	             {"0", CONFIG_PIPELINE_OFF},     {"AUTO", CONFIG_PIPELINE_AUTO}};
	for (size_t i = 0; i < sizeof(pipes) / sizeof(pipes[0]); i++) {
		snprintf(text, sizeof(text), "pipeline = no\npipeline = %s",
		         pipes[i].text);
		tap_ok(parse(text) == 0 && cfg.pipeline == pipes[i].want, "pipeline = %s",
		       pipes[i].text);
	}
	parse_fails(
	        "pipeline = sometimes",
	        "test.conf:1: bad value 'sometimes' for 'pipeline' (auto, yes or no)");

	static const struct {
		const char *text;
		enum config_supervise want;
	} supervise[] = {{"auto", CONFIG_SUPERVISE_AUTO},
	                 {"always", CONFIG_SUPERVISE_ALWAYS},
	                 {"never", CONFIG_SUPERVISE_NEVER},
	                 {"ALWAYS", CONFIG_SUPERVISE_ALWAYS},
	                 {"Never", CONFIG_SUPERVISE_NEVER}};
	for (size_t i = 0; i < sizeof(supervise) / sizeof(supervise[0]); i++) {
		snprintf(text, sizeof(text), "supervise = always\nsupervise = %s",
		         supervise[i].text);
		tap_ok(parse(text) == 0 && cfg.supervise == supervise[i].want,
		       "supervise = %s (the later line wins)", supervise[i].text);
	}
	parse_fails("supervise = yes", "test.conf:1: bad value 'yes' for 'supervise' "
	                               "(auto, always or never)");
	parse_fails("log_level = info\nsupervise = sometimes # not a word",
	            "test.conf:2: bad value 'sometimes' for 'supervise' (auto, always or "
	            "never)");

	tap_ok(parse("log_level = info") == 0 && cfg.bind == CONFIG_BIND_AUTO,
	       "bind: auto by default");
	tap_ok(parse("bind = NEVER") == 0 && cfg.bind == CONFIG_BIND_NEVER,
	       "bind = NEVER");
	tap_ok(parse("bind = never\nbind = auto") == 0 && cfg.bind == CONFIG_BIND_AUTO,
	       "bind = auto (the later line wins)");
	parse_fails("bind = yes",
	            "test.conf:1: bad value 'yes' for 'bind' (auto or never)");
}

static void test_fake_pools(void)
{
	parse_ok("fake_pool_v4 = 10.64.0.0/10\nfake_pool_v6 = fd00:5::/48", "fake pools");
	tap_ok(bytes_are(cfg.fake_v4, AF_INET, "10.64.0.0") && cfg.fake_v4_prefix == 10,
	       "fake_pool_v4 10.64.0.0/10");
	tap_ok(bytes_are(cfg.fake_v6, AF_INET6, "fd00:5::") && cfg.fake_v6_prefix == 48,
	       "fake_pool_v6 fd00:5::/48");
	parse_ok("fake_pool_v4 = 198.18.1.2/15", "fake pool with host bits");
	tap_ok(bytes_are(cfg.fake_v4, AF_INET, "198.18.0.0") && cfg.fake_v4_prefix == 15,
	       "host bits are cleared");
	parse_ok("fake_pool_v4 = 100.64.0.0/24\nfake_pool_v6 = 100::/112",
	         "longest prefixes");
	parse_ok("fake_pool_v4 = 240.0.0.0/4\nfake_pool_v6 = 2001:db8::/8", "shortest");

	static const struct {
		const char *line, *why;
	} bad[] = {
	        {"fake_pool_v4 = 240.0.0.0/3", "prefix length must be 4-24"},
	        {"fake_pool_v4 = 10.0.0.0/25", "prefix length must be 4-24"},
	        {"fake_pool_v4 = 10.0.0.1", "prefix length must be 4-24"},
	        {"fake_pool_v4 = 224.0.0.0/4", "overlaps multicast 224.0.0.0/4"},
	        {"fake_pool_v4 = 239.1.0.0/16", "overlaps multicast 224.0.0.0/4"},
	        {"fake_pool_v4 = 127.0.0.0/16", "overlaps loopback 127.0.0.0/8"},
	        {"fake_pool_v4 = 112.0.0.0/4", "overlaps loopback 127.0.0.0/8"},
	        {"fake_pool_v4 = 0.1.0.0/16", "overlaps 0.0.0.0/8"},
	        {"fake_pool_v4 = 10.0.0/8", "bad IPv4 address"},
	        {"fake_pool_v4 = 100::/64", "bad IPv4 address"},
	        {"fake_pool_v4 = 10.0.0.0/x", "bad prefix length (0-32)"},
	        {"fake_pool_v4 = 10.0.0.0/", "bad prefix length (0-32)"},
	        {"fake_pool_v4 = 10.0.0.0/8:53", "bad prefix length (0-32)"},
	        {"fake_pool_v6 = ff00::/8", "overlaps multicast ff00::/8"},
	        {"fake_pool_v6 = ff02::/16", "overlaps multicast ff00::/8"},
	        {"fake_pool_v6 = ::/64",
	         "overlaps ::/8 (loopback, unspecified, v4-mapped)"},
	        {"fake_pool_v6 = ::ffff:0:0/96",
	         "overlaps ::/8 (loopback, unspecified, v4-mapped)"},
	        {"fake_pool_v6 = 100::/7", "prefix length must be 8-112"},
	        {"fake_pool_v6 = 100::/113", "prefix length must be 8-112"},
	        {"fake_pool_v6 = 100::/129", "bad prefix length (0-128)"},
	        {"fake_pool_v6 = 240.0.0.0/4", "bad IPv6 address"},
	        {"fake_pool_v6 = [100::]/64", "bad IPv6 address"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[256];
		const char *value = strchr(bad[i].line, '=') + 2;
		snprintf(want, sizeof(want),
		         "test.conf:1: bad value '%s' for '%.12s': %s", value,
		         bad[i].line, bad[i].why);
		parse_fails(bad[i].line, want);
	}
}

/* nameserver = ADDR[:PORT]: where res_query and the program's own DNS queries go
 * through the proxy in remote-DNS mode; port 53 unless given */
static void test_nameserver(void)
{
	config_defaults(&cfg);
	tap_is(cfg.nameserver_family, 0, "no nameserver by default");
	parse_ok("nameserver = 192.0.2.53", "nameserver IPv4");
	tap_ok(cfg.nameserver_family == AF_INET &&
	               bytes_are(cfg.nameserver, AF_INET, "192.0.2.53") &&
	               cfg.nameserver_port == 53,
	       "nameserver 192.0.2.53, port 53");
	parse_ok("nameserver = 192.0.2.53:5353", "nameserver IPv4:port");
	tap_ok(cfg.nameserver_port == 5353, "port 5353");
	parse_ok("nameserver = [2001:db8::53]:54", "nameserver [IPv6]:port");
	tap_ok(cfg.nameserver_family == AF_INET6 &&
	               bytes_are(cfg.nameserver, AF_INET6, "2001:db8::53") &&
	               cfg.nameserver_port == 54,
	       "nameserver [2001:db8::53]:54");
	parse_ok("nameserver = 2001:db8::1", "nameserver bare IPv6");
	tap_ok(cfg.nameserver_family == AF_INET6 && cfg.nameserver_port == 53,
	       "bare IPv6, port 53");
	parse_fails("nameserver = dns.example",
	            "test.conf:1: bad value 'dns.example' for 'nameserver': bad IPv4 "
	            "address");
	parse_fails("log_level = info\nnameserver = 192.0.2.53:0",
	            "test.conf:2: bad value '192.0.2.53:0' for 'nameserver': bad port "
	            "(1-65535)");
	parse_fails("nameserver = 192.0.2.0/24",
	            "test.conf:1: bad value '192.0.2.0/24' for 'nameserver': a prefix "
	            "length is not allowed here");
}

/* --- exclusions -------------------------------------------------------------------- */

static void test_exclude_parse(void)
{
	parse_ok("exclude = 10.0.0.0/8\nexclude = 192.168.1.5:443\n"
	         "exclude = [fd00::/8]:53\nexclude = ::1\nexclude = .Corp.Example\n"
	         "exclude = example.com.\nexclude = *.wild.example\n"
	         "exclude = [2001:db8::1]\nexclude = 172.16.1.2/12",
	         "exclude rules of every form");
	tap_is((long long)cfg.nrules, 9, "nine rules");
	const struct config_rule *r = cfg.rules;
	tap_ok(r[0].kind == CONFIG_RULE_CIDR && r[0].family == AF_INET &&
	               bytes_are(r[0].addr, AF_INET, "10.0.0.0") && r[0].prefix == 8 &&
	               r[0].port == 0,
	       "exclude 10.0.0.0/8");
	tap_ok(r[1].family == AF_INET && bytes_are(r[1].addr, AF_INET, "192.168.1.5") &&
	               r[1].prefix == 32 && r[1].port == 443,
	       "exclude 192.168.1.5:443 is a /32 with a port");
	tap_ok(r[2].family == AF_INET6 && bytes_are(r[2].addr, AF_INET6, "fd00::") &&
	               r[2].prefix == 8 && r[2].port == 53,
	       "exclude [fd00::/8]:53");
	tap_ok(r[3].family == AF_INET6 && bytes_are(r[3].addr, AF_INET6, "::1") &&
	               r[3].prefix == 128 && r[3].port == 0,
	       "exclude ::1");
	tap_ok(r[4].kind == CONFIG_RULE_SUFFIX &&
	               strcmp(r[4].suffix, "corp.example") == 0,
	       "exclude .Corp.Example: lower case, no leading dot");
	tap_ok(r[5].kind == CONFIG_RULE_SUFFIX && strcmp(r[5].suffix, "example.com") == 0,
	       "exclude example.com.: no trailing dot");
	tap_ok(strcmp(r[6].suffix, "wild.example") == 0, "exclude *.wild.example");
	tap_ok(r[7].family == AF_INET6 && r[7].prefix == 128 && r[7].port == 0,
	       "exclude [2001:db8::1] without a port");
	tap_ok(bytes_are(r[8].addr, AF_INET, "172.16.0.0") && r[8].prefix == 12,
	       "exclude 172.16.1.2/12: host bits cleared");
	config_parse_text(&cfg, "exclude = 1.2.3.4", 17, "second", err, sizeof(err));
	tap_ok(cfg.nrules == 1 && bytes_are(cfg.rules[0].addr, AF_INET, "1.2.3.4"),
	       "exclude in a new source replaces the list");
	parse_ok("exclude = 0.0.0.0/0\nexclude = ::/0", "exclude everything");

	static const struct {
		const char *value, *why;
	} bad[] = {
	        {"10.0.0.0/33", "bad prefix length (0-32)"},
	        {"10.0.0.0/-1", "bad prefix length (0-32)"},
	        {"10.0.0/8", "bad IPv4 address"},
	        {"10.0.0.256", "bad IPv4 address"},
	        {"1.2.3.4:0", "bad port (1-65535)"},
	        {"1.2.3.4:65536", "bad port (1-65535)"},
	        {"1.2.3.4:", "bad port (1-65535)"},
	        {"[fd00::/129]:53", "bad prefix length (0-128)"},
	        {"[fd00::/8", "missing ']'"},
	        {"[fd00::/8]53", "unexpected text after ']'"},
	        {"fd00::/8:53", "bad prefix length (0-128)"},
	        {"fd00:::1", "bad IPv6 address"},
	        {"example.com:443", "a port needs a numeric address"},
	        {"exa mple.com", "invalid character ' ' in host name"},
	        {"*", "invalid character '*' in host name"},
	        {"*.10.1", "not a host name"},
	        {"a..b", "empty label in host name"},
	        {"a.b..", "empty label in host name"},
	        {"..a", "empty label in host name"},
	        {".", "empty host name"},
	        {"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb",
	         "bad IPv6 address"},
	};
	char text[128];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[256];
		snprintf(text, sizeof(text), "exclude = %s", bad[i].value);
		snprintf(want, sizeof(want), "test.conf:1: bad exclude rule '%s': %s",
		         bad[i].value, bad[i].why);
		parse_fails(text, want);
	}

	char name[300] = "exclude = ";
	memset(name + 10, 'a', 254);
	parse_fails(name,
	            "test.conf:1: bad exclude rule "
	            "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	            "aaaaaaaaa"
	            "aaaaaaaaaaaaaaaaaaaaaaaa...': host name longer than 253 bytes");
	name[10 + 253] = '\0';
	parse_ok(name, "a 253-byte host-name suffix");

	char many[64 * 24 + 64] = "";
	for (int i = 0; i < CONFIG_MAX_RULES; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
		         "exclude = 10.0.%d.0/24\n", i);
	parse_ok(many, "64 exclude rules");
	strcat(many, "exclude = x.example\n");
	parse_fails(many, "test.conf:65: too many exclude rules (at most 64)");
}

static void test_exclude_match(void)
{
	parse_ok("exclude = 10.0.0.0/8\nexclude = 192.168.1.5:443\n"
	         "exclude = [fd00::/8]:53\nexclude = ::1\nexclude = 172.16.0.0/12\n"
	         "exclude = 100.64.0.0/10:8080",
	         "rules to match against");
	tap_ok(config_excluded_addr(&cfg, sa4("10.0.0.0", 80)),
	       "10.0.0.0 (first) matches");
	tap_ok(config_excluded_addr(&cfg, sa4("10.255.255.255", 1)),
	       "10.255.255.255 (last) matches");
	tap_ok(!config_excluded_addr(&cfg, sa4("9.255.255.255", 80)),
	       "9.255.255.255 not");
	tap_ok(!config_excluded_addr(&cfg, sa4("11.0.0.0", 80)), "11.0.0.0 not");
	tap_ok(config_excluded_addr(&cfg, sa4("172.31.255.255", 1)),
	       "172.31.255.255 in /12");
	tap_ok(!config_excluded_addr(&cfg, sa4("172.32.0.0", 1)),
	       "172.32.0.0 not in /12");
	tap_ok(config_excluded_addr(&cfg, sa4("192.168.1.5", 443)),
	       "192.168.1.5:443 matches");
	tap_ok(!config_excluded_addr(&cfg, sa4("192.168.1.5", 80)), "192.168.1.5:80 not");
	tap_ok(!config_excluded_addr(&cfg, sa4("192.168.1.6", 443)),
	       "192.168.1.6:443 not");
	tap_ok(config_excluded_addr(&cfg, sa4("100.127.255.255", 8080)),
	       "100.127.255.255:8080 in 100.64.0.0/10:8080");
	tap_ok(!config_excluded_addr(&cfg, sa4("100.128.0.0", 8080)), "100.128.0.0 not");
	tap_ok(config_excluded_addr(&cfg, sa6("fd12:3456::1", 53)), "[fd12:3456::1]:53");
	tap_ok(!config_excluded_addr(&cfg, sa6("fd12:3456::1", 54)),
	       "[fd12:3456::1]:54 not");
	tap_ok(!config_excluded_addr(&cfg, sa6("fe00::1", 53)), "[fe00::1]:53 not");
	tap_ok(config_excluded_addr(&cfg, sa6("::1", 22)), "::1 matches");
	tap_ok(!config_excluded_addr(&cfg, sa6("::2", 22)), "::2 not");
	tap_ok(config_excluded_addr(&cfg, sa6("::ffff:10.1.2.3", 80)),
	       "v4-mapped ::ffff:10.1.2.3 matches 10.0.0.0/8");
	tap_ok(config_excluded_addr(&cfg, sa6("::ffff:192.168.1.5", 443)),
	       "v4-mapped with a port rule");
	tap_ok(!config_excluded_addr(&cfg, sa6("::ffff:192.168.1.5", 80)),
	       "v4-mapped, wrong port: not");
	tap_ok(!config_excluded_addr(&cfg, sa6("::ffff:11.0.0.1", 80)),
	       "v4-mapped 11/8 not");
	tap_ok(!config_excluded_addr(&cfg, sa6("::10.1.2.3", 80)),
	       "v4-compatible ::10.1.2.3 does not match IPv4 rules");
	tap_ok(!config_excluded_addr(&cfg, sa6("64:ff9b::10.1.2.3", 80)),
	       "NAT64 64:ff9b::10.1.2.3 does not match IPv4 rules");

	parse_ok("exclude = ::ffff:10.0.0.0/104", "an IPv6 rule on v4-mapped space");
	tap_ok(config_excluded_addr(&cfg, sa6("::ffff:10.9.9.9", 1)),
	       "v4-mapped matches an IPv6 rule too");
	tap_ok(!config_excluded_addr(&cfg, sa4("10.9.9.9", 1)),
	       "plain IPv4 does not match an IPv6 rule");

	struct sockaddr unix_sa = {.sa_family = AF_UNIX};
	tap_ok(!config_excluded_addr(&cfg, &unix_sa), "AF_UNIX never matches");
	tap_ok(!config_excluded_addr(&cfg, NULL), "NULL never matches");
	config_defaults(&cfg);
	tap_ok(!config_excluded_addr(&cfg, sa4("10.0.0.1", 80)),
	       "no rules: nothing excluded");
	parse_ok("exclude = 0.0.0.0/0", "0.0.0.0/0");
	tap_ok(config_excluded_addr(&cfg, sa4("1.2.3.4", 1)) &&
	               config_excluded_addr(&cfg, sa4("255.255.255.255", 65535)) &&
	               !config_excluded_addr(&cfg, sa6("2001:db8::1", 1)),
	       "0.0.0.0/0 matches every IPv4 address and no IPv6 one");
}

static void test_name_match(void)
{
	parse_ok("exclude = example.com\nexclude = .corp.example\nexclude = 10.0.0.0/8\n"
	         "exclude = LOCALHOST",
	         "name rules");
	static const struct {
		const char *name;
		bool want;
	} names[] = {
	        {"example.com", true},
	        {"www.example.com", true},
	        {"a.b.example.com", true},
	        {"EXAMPLE.COM", true},
	        {"Www.Example.Com.", true},
	        {"badexample.com", false},
	        {"example.com.evil", false},
	        {"example.co", false},
	        {"xample.com", false},
	        {"com", false},
	        {"corp.example", true},
	        {"git.corp.example", true},
	        {"notcorp.example", false},
	        {"localhost", true},
	        {"app.localhost", true},
	        {"", false},
	        {".", false},
	        {"10.1.2.3", false},
	        {".example.com", true},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		tap_ok(config_excluded_name(&cfg, names[i].name) == names[i].want,
		       "name '%s' %s", names[i].name, names[i].want ? "excluded" : "not");
	tap_ok(!config_excluded_name(&cfg, NULL), "NULL name: not");
	config_defaults(&cfg);
	tap_ok(!config_excluded_name(&cfg, "example.com"), "no rules: no name excluded");
}

static void test_fake_membership(void)
{
	config_defaults(&cfg);
	tap_ok(config_is_fake_addr(&cfg, sa4("240.0.0.0", 0)), "240.0.0.0 is fake");
	tap_ok(config_is_fake_addr(&cfg, sa4("240.0.0.1", 80)), "240.0.0.1 is fake");
	tap_ok(config_is_fake_addr(&cfg, sa4("255.255.255.254", 80)),
	       "255.255.255.254 fake");
	tap_ok(!config_is_fake_addr(&cfg, sa4("255.255.255.255", 80)),
	       "255.255.255.255 (broadcast) is not");
	tap_ok(!config_is_fake_addr(&cfg, sa4("239.255.255.255", 80)),
	       "239.255.255.255 not");
	tap_ok(config_is_fake_addr(&cfg, sa6("::ffff:240.1.2.3", 80)), "v4-mapped fake");
	tap_ok(!config_is_fake_addr(&cfg, sa6("::ffff:10.1.2.3", 80)), "v4-mapped real");
	tap_ok(config_is_fake_addr(&cfg, sa6("100::", 80)), "100:: is fake");
	tap_ok(config_is_fake_addr(&cfg, sa6("100::ffff:ffff:ffff:ffff", 80)),
	       "100::ffff:ffff:ffff:ffff (last) is fake");
	tap_ok(!config_is_fake_addr(&cfg, sa6("100:0:0:1::", 80)), "100:0:0:1:: is not");
	tap_ok(!config_is_fake_addr(&cfg, sa6("2001:db8::1", 80)), "2001:db8::1 is not");
	tap_ok(!config_is_fake_addr(&cfg, NULL), "NULL is not");
	parse_ok("fake_pool_v4 = 198.18.0.0/15\nfake_pool_v6 = fd00:5::/48",
	         "other pools");
	tap_ok(config_is_fake_addr(&cfg, sa4("198.19.255.255", 1)) &&
	               !config_is_fake_addr(&cfg, sa4("198.20.0.0", 1)) &&
	               !config_is_fake_addr(&cfg, sa4("240.0.0.1", 1)),
	       "198.18.0.0/15 boundaries");
	tap_ok(config_is_fake_addr(&cfg, sa6("fd00:5:0:ffff::1", 1)) &&
	               !config_is_fake_addr(&cfg, sa6("fd00:6::", 1)),
	       "fd00:5::/48 boundaries");
}

/* --- files and config_load() ------------------------------------------------------- */

static char tmpdir[64];

/* Writes text to tmpdir/name and returns the path (static storage per slot). */
static const char *tmpfile_with(int slot, const char *name, const char *text, size_t len)
{
	static char paths[4][128];
	snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", tmpdir, name);
	FILE *f = fopen(paths[slot], "w");
	if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		perror(paths[slot]);
		exit(2);
	}
	return paths[slot];
}

/* A fake environment for config_load(). */
static const char *fake_env[16][2];

static void env_set(const char *name, const char *value)
{
	for (size_t i = 0; i < 16; i++) {
		if (!fake_env[i][0] || strcmp(fake_env[i][0], name) == 0) {
			fake_env[i][0] = name;
			fake_env[i][1] = value;
			return;
		}
	}
	abort();
}

static void env_clear(void)
{
	memset(fake_env, 0, sizeof(fake_env));
}

static char *fake_getenv(const char *name)
{
	for (size_t i = 0; i < 16 && fake_env[i][0]; i++)
		if (strcmp(fake_env[i][0], name) == 0)
			return (char *)fake_env[i][1];
	return NULL;
}

static char *setuid_getenv(const char *name)
{
	(void)name;
	return NULL; /* what secure_getenv answers in a set-user-ID program */
}

static void test_parse_file(void)
{
	const char *path = tmpfile_with(0, "a.conf", "log_level = info\n", 17);
	config_defaults(&cfg);
	tap_ok(config_parse_file(&cfg, path, err, sizeof(err)) == 0 &&
	               cfg.log_level == CONFIG_LOG_INFO,
	       "parse_file applies a file");

	char want[256];
	snprintf(want, sizeof(want), "%s/missing.conf", tmpdir);
	errno = 0;
	int r = config_parse_file(&cfg, want, err, sizeof(err));
	int e = errno;
	strcat(want, ": cannot read: No such file or directory");
	tap_ok(r == -1 && strcmp(err, want) == 0 && e == ENOENT,
	       "missing file: 'PATH: cannot read: No such file or directory', errno "
	       "ENOENT");
	if (strcmp(err, want) != 0)
		tap_diag("got '%s'", err);
	tap_ok(config_parse_file(&cfg, NULL, err, sizeof(err)) == -1 &&
	               strcmp(err, "(null): cannot read: Invalid argument") == 0,
	       "a NULL path: cannot read: Invalid argument");
	r = config_parse_file(&cfg, tmpdir, err, sizeof(err));
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", tmpdir);
	tap_ok(r == -1 && strcmp(err, want) == 0,
	       "a directory: cannot read: Is a directory");

	path = tmpfile_with(0, "b.conf", "# x\n\nlog_level = info\nnope = 1\n", 31);
	snprintf(want, sizeof(want), "%s:4: unknown option 'nope'", path);
	tap_ok(config_parse_file(&cfg, path, err, sizeof(err)) == -1 &&
	               strcmp(err, want) == 0,
	       "file error names PATH:LINE");
	path = tmpfile_with(0, "c.conf", "log_level = info\n\0", 18);
	snprintf(want, sizeof(want), "%s:2: NUL byte in the text", path);
	tap_ok(config_parse_file(&cfg, path, err, sizeof(err)) == -1 &&
	               strcmp(err, want) == 0,
	       "NUL byte in a file");

	/* lines that straddle the 2048-byte read chunks */
	char big[6000];
	size_t len = 0;
	for (int i = 0; len < 4000; i++)
		len += (size_t)snprintf(big + len, sizeof(big) - len,
		                        "exclude = 10.%d.%d.0/24   # rule %d\n", i / 250,
		                        i % 250, i);
	path = tmpfile_with(0, "d.conf", big, len);
	config_defaults(&cfg);
	snprintf(want, sizeof(want), "%s:65: too many exclude rules (at most 64)", path);
	tap_ok(config_parse_file(&cfg, path, err, sizeof(err)) == -1 &&
	               strcmp(err, want) == 0,
	       "a large file: line numbers across read chunks");
	if (strcmp(err, want) != 0)
		tap_diag("got '%s'", err);
	memset(big, '#', sizeof(big));
	memcpy(big + 3000, "\nlog_level = debug\n", 19);
	path = tmpfile_with(0, "e.conf", big, 3019);
	snprintf(want, sizeof(want), "%s:1: line longer than 1023 bytes", path);
	tap_ok(config_parse_file(&cfg, path, err, sizeof(err)) == -1 &&
	               strcmp(err, want) == 0,
	       "a 3000-byte line in a file is too long");
	for (size_t i = 0; i < 1500; i += 15) /* 100 lines of 15 bytes */
		memcpy(big + i, "# padding....\r\n", 15);
	memset(big + 1500, '#', 1023); /* bytes 1500..2522: across the chunks */
	memcpy(big + 1500 + 1023, "\r\nlog_level = debug", 19);
	path = tmpfile_with(0, "f.conf", big, 1500 + 1023 + 19);
	config_defaults(&cfg);
	tap_ok(config_parse_file(&cfg, path, err, sizeof(err)) == 0 &&
	               cfg.log_level == CONFIG_LOG_DEBUG,
	       "a 1023-byte CRLF line across read chunks is fine");
	big[1500 + 1023] = '#';
	path = tmpfile_with(0, "f.conf", big, 1500 + 1023 + 19);
	snprintf(want, sizeof(want), "%s:101: line longer than 1023 bytes", path);
	tap_ok(config_parse_file(&cfg, path, err, sizeof(err)) == -1 &&
	               strcmp(err, want) == 0,
	       "one byte more across read chunks: too long, at line 101");
}

static void test_load(void)
{
	static const char sys_text[] = "proxy = socks5://sys:1\nlog_level = info\n"
	                               "exclude = 10.0.0.0/8\npipeline = no\n"
	                               "supervise = never\n";
	static const char user_text[] = "proxy = socks5h://user:2\nlog_level = debug\n"
	                                "supervise = always\n";
	const char *sys = tmpfile_with(1, "sys.conf", sys_text, strlen(sys_text));
	const char *user = tmpfile_with(2, "user.conf", user_text, strlen(user_text));
	char missing[128], want[256];
	snprintf(missing, sizeof(missing), "%s/missing.conf", tmpdir);

	memset(&cfg, 0xee, sizeof(cfg));
	tap_ok(config_load(&cfg, NULL, NULL, err, sizeof(err)) == 0,
	       "load: defaults only");
	struct config defaults;
	config_defaults(&defaults);
	tap_ok(memcmp(&cfg, &defaults, sizeof(cfg)) == 0, "load: nothing set = defaults");
	tap_ok(config_load(&cfg, missing, NULL, err, sizeof(err)) == 0 &&
	               memcmp(&cfg, &defaults, sizeof(cfg)) == 0,
	       "load: a missing system file is skipped silently");

	tap_ok(config_load(&cfg, sys, NULL, err, sizeof(err)) == 0 &&
	               strcmp(cfg.proxy.host, "sys") == 0 &&
	               cfg.log_level == CONFIG_LOG_INFO && cfg.dns == CONFIG_DNS_LOCAL &&
	               cfg.pipeline == CONFIG_PIPELINE_OFF &&
	               cfg.supervise == CONFIG_SUPERVISE_NEVER,
	       "load: system file applied, dns follows its socks5:// proxy");

	env_clear();
	env_set("SOCKSIFY_CONF", user);
	tap_ok(config_load(&cfg, sys, fake_getenv, err, sizeof(err)) == 0 &&
	               strcmp(cfg.proxy.host, "user") == 0 &&
	               cfg.log_level == CONFIG_LOG_DEBUG &&
	               cfg.dns == CONFIG_DNS_REMOTE &&
	               cfg.pipeline == CONFIG_PIPELINE_OFF && cfg.nrules == 1 &&
	               cfg.supervise == CONFIG_SUPERVISE_ALWAYS,
	       "load: $SOCKSIFY_CONF over the system file, which still sets the rest");

	env_set("SOCKSIFY_PROXY", "socks5://u:p%40@envproxy:3");
	env_set("SOCKSIFY_DNS", "remote");
	env_set("SOCKSIFY_LOG_LEVEL", " error ");
	env_set("SOCKSIFY_LOG_FILE", "/tmp/env.log");
	env_set("SOCKSIFY_PROXY_LOOPBACK", "1");
	env_set("SOCKSIFY_EXCLUDE", "192.168.0.0/16, .lan ,,[::1]:22");
	env_set("SOCKSIFY_SUPERVISE", "auto");
	int r = config_load(&cfg, sys, fake_getenv, err, sizeof(err));
	if (!tap_ok(r == 0, "load: every variable"))
		tap_diag("%s", err);
	tap_ok(strcmp(cfg.proxy.host, "envproxy") == 0 && cfg.proxy.port == 3 &&
	               strcmp(cfg.proxy.pass, "p@") == 0,
	       "load: $SOCKSIFY_PROXY replaces the proxy");
	env_set("SOCKSIFY_PROXY", "socks5://u:p%40@envproxy:3, socks5h://[::1]:4");
	env_set("SOCKSIFY_CHAIN", "round-robin");
	r = config_load(&cfg, sys, fake_getenv, err, sizeof(err));
	tap_ok(r == 0 && cfg.nproxies == 2 && strcmp(cfg.proxies[1].host, "::1") == 0 &&
	               cfg.proxies[1].port == 4 && cfg.chain == CONFIG_CHAIN_ROUND_ROBIN,
	       "load: $SOCKSIFY_PROXY a list of two, $SOCKSIFY_CHAIN round-robin");
	env_set("SOCKSIFY_PROXY", "socks5://u:p%40@envproxy:3");
	env_set("SOCKSIFY_CHAIN", "");
	tap_ok(cfg.dns == CONFIG_DNS_REMOTE && cfg.dns_set,
	       "load: $SOCKSIFY_DNS=remote beats the socks5:// default");
	tap_is(cfg.log_level, CONFIG_LOG_ERROR, "load: $SOCKSIFY_LOG_LEVEL, trimmed");
	tap_ok(strcmp(cfg.log_file, "/tmp/env.log") == 0, "load: $SOCKSIFY_LOG_FILE");
	tap_ok(cfg.proxy_loopback, "load: $SOCKSIFY_PROXY_LOOPBACK=1");
	tap_ok(cfg.nrules == 3 && cfg.rules[0].prefix == 16 &&
	               strcmp(cfg.rules[1].suffix, "lan") == 0 && cfg.rules[2].port == 22,
	       "load: $SOCKSIFY_EXCLUDE replaces the rules, empty items skipped");
	tap_is(cfg.supervise, CONFIG_SUPERVISE_AUTO,
	       "load: $SOCKSIFY_SUPERVISE=auto beats $SOCKSIFY_CONF's always");
	env_set("SOCKSIFY_SUPERVISE", " Never ");
	tap_ok(config_load(&cfg, sys, fake_getenv, err, sizeof(err)) == 0 &&
	               cfg.supervise == CONFIG_SUPERVISE_NEVER,
	       "load: $SOCKSIFY_SUPERVISE= Never , trimmed, any case");
	env_set("SOCKSIFY_BIND", "never");
	tap_ok(config_load(&cfg, sys, fake_getenv, err, sizeof(err)) == 0 &&
	               cfg.bind == CONFIG_BIND_NEVER,
	       "load: $SOCKSIFY_BIND=never");
	env_set("SOCKSIFY_BIND", "sometimes");
	tap_ok(config_load(&cfg, sys, fake_getenv, err, sizeof(err)) < 0 &&
	               strstr(err, "SOCKSIFY_BIND") && strstr(err, "auto or never"),
	       "load: $SOCKSIFY_BIND=sometimes refused, naming the variable (%s)", err);
	env_set("SOCKSIFY_BIND", "");

	env_set("SOCKSIFY_PROXY", "");
	env_set("SOCKSIFY_EXCLUDE", "");
	env_set("SOCKSIFY_LOG_LEVEL", "");
	env_set("SOCKSIFY_SUPERVISE", "");
	tap_ok(config_load(&cfg, sys, fake_getenv, err, sizeof(err)) == 0 &&
	               strcmp(cfg.proxy.host, "user") == 0 && cfg.nrules == 1 &&
	               cfg.log_level == CONFIG_LOG_DEBUG &&
	               cfg.supervise == CONFIG_SUPERVISE_ALWAYS,
	       "load: empty variables count as unset");

	tap_ok(config_load(&cfg, sys, setuid_getenv, err, sizeof(err)) == 0 &&
	               strcmp(cfg.proxy.host, "sys") == 0 && !cfg.proxy_loopback &&
	               cfg.supervise == CONFIG_SUPERVISE_NEVER,
	       "load: a getenv that answers NULL (secure_getenv when setuid) = file "
	       "only");

	static const struct {
		const char *var, *value, *want;
	} bad[] = {
	        {"SOCKSIFY_PROXY", "socks5://host",
	         "SOCKSIFY_PROXY: bad proxy URL 'socks5://host': missing port"},
	        {"SOCKSIFY_PROXY", "socks5://a:1,socks5://b",
	         "SOCKSIFY_PROXY: bad proxy URL 'socks5://b': missing port"},
	        {"SOCKSIFY_CHAIN", "loose",
	         "SOCKSIFY_CHAIN: bad value 'loose' for 'chain' (failover, strict or "
	         "round-robin)"},
	        {"SOCKSIFY_PROXY", "http://u:secret@h:1",
	         "SOCKSIFY_PROXY: bad proxy URL 'http://u:***@h:1': unsupported scheme "
	         "'http' (socks5:// or socks5h://)"},
	        {"SOCKSIFY_DNS", "both",
	         "SOCKSIFY_DNS: bad value 'both' for 'dns' (remote or local)"},
	        {"SOCKSIFY_LOG_LEVEL", "loud",
	         "SOCKSIFY_LOG_LEVEL: bad value 'loud' for 'log_level' (error, info or "
	         "debug)"},
	        {"SOCKSIFY_PROXY_LOOPBACK", "2",
	         "SOCKSIFY_PROXY_LOOPBACK: bad value '2' for 'proxy_loopback' (yes, no, "
	         "true, false, 1 or 0)"},
	        {"SOCKSIFY_EXCLUDE", "10.0.0.0/8,10.0.0.0/33",
	         "SOCKSIFY_EXCLUDE: bad exclude rule '10.0.0.0/33': bad prefix length "
	         "(0-32)"},
	        {"SOCKSIFY_SUPERVISE", "sometimes",
	         "SOCKSIFY_SUPERVISE: bad value 'sometimes' for 'supervise' (auto, "
	         "always "
	         "or never)"},
	        {"SOCKSIFY_SUPERVISE", "auto,never",
	         "SOCKSIFY_SUPERVISE: bad value 'auto,never' for 'supervise' (auto, "
	         "always or never)"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		env_clear();
		env_set(bad[i].var, bad[i].value);
		r = config_load(&cfg, NULL, fake_getenv, err, sizeof(err));
		if (!tap_ok(r == -1 && strcmp(err, bad[i].want) == 0, "load error: %s",
		            bad[i].want))
			tap_diag("got '%s'", err);
	}
	char longpath[300] = "/tmp/";
	memset(longpath + 5, 'x', 250);
	env_clear();
	env_set("SOCKSIFY_LOG_FILE", longpath);
	tap_ok(config_load(&cfg, NULL, fake_getenv, err, sizeof(err)) == 0 &&
	               strcmp(cfg.log_file, longpath) == 0,
	       "load: a 255-byte $SOCKSIFY_LOG_FILE");
	longpath[255] = 'x';
	tap_ok(config_load(&cfg, NULL, fake_getenv, err, sizeof(err)) == -1 &&
	               strcmp(err, "SOCKSIFY_LOG_FILE: value of 'log_file' longer than "
	                           "255 bytes") == 0,
	       "load error: a 256-byte $SOCKSIFY_LOG_FILE");
	char huge[1100];
	memset(huge, 'x', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	env_set("SOCKSIFY_LOG_FILE", huge);
	tap_ok(config_load(&cfg, NULL, fake_getenv, err, sizeof(err)) == -1 &&
	               strcmp(err, "SOCKSIFY_LOG_FILE: value longer than 1023 bytes") ==
	                       0,
	       "load error: a variable longer than a line");

	env_clear();
	env_set("SOCKSIFY_CONF", missing);
	snprintf(want, sizeof(want), "%s: cannot read: No such file or directory",
	         missing);
	tap_ok(config_load(&cfg, sys, fake_getenv, err, sizeof(err)) == -1 &&
	               strcmp(err, want) == 0,
	       "load: a missing $SOCKSIFY_CONF is an error");
	const char *broken = tmpfile_with(3, "broken.conf", "dns = nope\n", 11);
	env_clear();
	snprintf(want, sizeof(want), "%s:1: bad value 'nope' for 'dns' (remote or local)",
	         broken);
	tap_ok(config_load(&cfg, broken, fake_getenv, err, sizeof(err)) == -1 &&
	               strcmp(err, want) == 0,
	       "load: an error in the system file is reported");
	chmod(broken, 0);
	if (geteuid() == 0) {
		tap_ok(1, "load: unreadable system file # skip running as root");
	} else {
		snprintf(want, sizeof(want), "%s: cannot read: Permission denied",
		         broken);
		tap_ok(config_load(&cfg, broken, NULL, err, sizeof(err)) == -1 &&
		               strcmp(err, want) == 0,
		       "load: an unreadable system file is an error, not skipped");
	}
	chmod(broken, 0600);
}

/* --- messages ---------------------------------------------------------------------- */

static void test_messages(void)
{
	char small[16];

	config_defaults(&cfg);
	memset(small, 'Z', sizeof(small));
	tap_ok(config_parse_text(&cfg, "x = 1", 5, "test.conf", small, 8) == -1 &&
	               strcmp(small, "test.co") == 0 && small[8] == 'Z',
	       "a short err buffer is cut and NUL-terminated, never overrun");
	tap_ok(config_parse_text(&cfg, "x = 1", 5, "test.conf", NULL, 0) == -1,
	       "err NULL: still fails");
	memset(small, 'Z', sizeof(small));
	tap_ok(config_parse_text(&cfg, "x = 1", 5, "test.conf", small, 0) == -1 &&
	               small[0] == 'Z',
	       "errlen 0: nothing written");
	tap_ok(config_parse_text(&cfg, "x\x1b[31m = 1", 10, "a\nb", err, sizeof(err)) ==
	                       -1 &&
	               strcmp(err, "a?b:1: unknown option 'x?[31m'") == 0,
	       "control bytes in a message become '?': one line");
	tap_ok(config_parse_text(&cfg, "log_file = /\xc3\xa9", 14, "t", err,
	                         sizeof(err)) == 0,
	       "a UTF-8 value is fine");
	tap_ok(config_parse_text(&cfg, "pipeline = \xc3\xa9", 13, "t", err,
	                         sizeof(err)) == -1 &&
	               strcmp(err,
	                      "t:1: bad value '?\?' for 'pipeline' (auto, yes or no)") ==
	                       0,
	       "non-ASCII bytes in a message become '?'");
}

static void test_option_names(void)
{
	static const char *const want[] = {
	        "proxy",           "dns",          "exclude",   "proxy_loopback",
	        "connect_timeout", "log_level",    "log_file",  "pipeline",
	        "fake_pool_v4",    "fake_pool_v6", "supervise", "chain",
	        "failover_retry",  "nameserver",   "bind",
	};
	size_t n = 0;

	while (config_option_name(n))
		n++;
	tap_is((long long)n, sizeof(want) / sizeof(want[0]), "fifteen options");
	for (size_t i = 0; i < n && i < sizeof(want) / sizeof(want[0]); i++)
		tap_ok(strcmp(config_option_name(i), want[i]) == 0, "option %zu is %s", i,
		       want[i]);
}

/* --- the sample socksify.conf ------------------------------------------------------ */

/* Is line (at s, up to '\n') "#option = ..." for a known option? */
static bool is_default_line(const char *s)
{
	if (*s != '#')
		return false;
	for (size_t i = 0; config_option_name(i); i++) {
		const char *name = config_option_name(i);
		size_t n = strlen(name);
		if (strncmp(s + 1, name, n) == 0 && strncmp(s + 1 + n, " = ", 3) == 0)
			return true;
	}
	return false;
}

/* Is the option documented: "#name = " or "#   name = " at a line start? */
static bool documented(const char *text, const char *name)
{
	char a[64], b[64];

	snprintf(a, sizeof(a), "\n#%s = ", name);
	snprintf(b, sizeof(b), "\n#   %s = ", name);
	return strstr(text, a) || strstr(text, b);
}

static void test_sample(void)
{
	static char text[32768], enabled[32768];
	const char *path = getenv("SOCKSIFY_CONF_SAMPLE");
	struct config defaults;

	if (!path || !*path) {
		tap_ok(1, "sample socksify.conf # skip SOCKSIFY_CONF_SAMPLE is not set");
		return;
	}
	FILE *f = fopen(path, "r");
	size_t len = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
	if (f)
		fclose(f);
	if (!tap_ok(len > 0 && len < sizeof(text) - 1, "sample %s is readable", path))
		return;
	text[len] = '\0';
	config_defaults(&defaults);
	config_defaults(&cfg);
	int r = config_parse_file(&cfg, path, err, sizeof(err));
	if (!tap_ok(r == 0, "sample parses"))
		tap_diag("%s", err);
	tap_ok(memcmp(&cfg, &defaults, sizeof(cfg)) == 0, "sample as shipped = defaults");

	/* enable every "#option = value" line: each must restate the default */
	size_t out = 0, count = 0;
	for (const char *s = text; *s;) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s + 1) : strlen(s);
		bool def = is_default_line(s);
		memcpy(enabled + out, s + def, n - def);
		out += n - def;
		count += def;
		s += n;
	}
	enabled[out] = '\0';
	tap_ok(count >= 8, "sample has %zu '#option = default' lines", count);
	config_defaults(&cfg);
	r = config_parse_text(&cfg, enabled, out, "sample, enabled", err, sizeof(err));
	if (!tap_ok(r == 0, "sample with its default lines enabled parses"))
		tap_diag("%s", err);
	tap_ok(cfg.dns_set, "the enabled sample sets dns explicitly");
	cfg.dns_set = false;
	tap_ok(cfg.origin[config_option_index("proxy")] == CONFIG_FROM_TEXT,
	       "the enabled sample's proxy comes from the text");
	memset(cfg.origin, 0, sizeof(cfg.origin));
	tap_ok(memcmp(&cfg, &defaults, sizeof(cfg)) == 0,
	       "every default the sample shows is the real default");
	for (size_t i = 0; config_option_name(i); i++)
		tap_ok(documented(text, config_option_name(i)), "sample documents '%s'",
		       config_option_name(i));
}

/* --- other tools' variables: ALL_PROXY, NO_PROXY ----------------------------------- */

static int load_env(void)
{
	err[0] = '\0';
	return config_load(&cfg, NULL, fake_getenv, err, sizeof(err));
}

static uint8_t origin_of(const char *option)
{
	return cfg.origin[config_option_index(option)];
}

static void test_all_proxy(void)
{
	env_clear();
	env_set("ALL_PROXY", "socks5h://alice:pw@proxy.test:1081");
	tap_ok(load_env() == 0 && strcmp(cfg.proxy.host, "proxy.test") == 0 &&
	               cfg.proxy.port == 1081 && cfg.proxy.remote_dns &&
	               strcmp(cfg.proxy.pass, "pw") == 0 &&
	               origin_of("proxy") == CONFIG_FROM_ALL_PROXY && cfg.nrules == 0,
	       "ALL_PROXY socks5h:// is the proxy when nothing else names one");
	env_set("all_proxy", "SOCKS5://10.1.2.3:9");
	tap_ok(load_env() == 0 && strcmp(cfg.proxy.host, "10.1.2.3") == 0 &&
	               !cfg.proxy.remote_dns && !config_remote_dns(&cfg),
	       "all_proxy before ALL_PROXY (as curl), scheme in any case, dns local");
	tap_ok(strcmp(config_all_proxy_var(fake_getenv), "all_proxy") == 0,
	       "config_all_proxy_var names all_proxy");
	env_set("all_proxy", "http://10.1.2.3:3128");
	tap_ok(load_env() == 0 && strcmp(cfg.proxy.host, "127.0.0.1") == 0 &&
	               origin_of("proxy") == CONFIG_FROM_DEFAULT,
	       "an http:// all_proxy is left alone (not ALL_PROXY's socks5h either)");
	env_clear();
	env_set("ALL_PROXY", "proxy.test:1080");
	tap_ok(load_env() == 0 && origin_of("proxy") == CONFIG_FROM_DEFAULT,
	       "ALL_PROXY without a scheme (curl: http) is left alone");
	env_set("ALL_PROXY", "socks5://proxy.test");
	tap_ok(load_env() == -1 &&
	               strcmp(err, "ALL_PROXY: bad proxy URL 'socks5://proxy.test': "
	                           "missing port") == 0,
	       "a bad socks5:// ALL_PROXY is an error: %s", err);
	env_set("ALL_PROXY", "socks5://u:secret@proxy.test:1080");
	env_set("SOCKSIFY_PROXY", "socks5://10.9.9.9:1080");
	tap_ok(load_env() == 0 && strcmp(cfg.proxy.host, "10.9.9.9") == 0 &&
	               origin_of("proxy") == CONFIG_FROM_ENV,
	       "SOCKSIFY_PROXY wins over ALL_PROXY");
	env_clear();
	const char *conf = tmpfile_with(1, "p.conf", "proxy = socks5://10.8.8.8:1\n", 27);
	env_set("SOCKSIFY_CONF", conf);
	env_set("ALL_PROXY", "socks5://10.7.7.7:1080");
	env_set("NO_PROXY", "example.test");
	tap_ok(load_env() == 0 && strcmp(cfg.proxy.host, "10.8.8.8") == 0 &&
	               origin_of("proxy") == CONFIG_FROM_CONF && cfg.nrules == 0,
	       "a configuration file's proxy wins; NO_PROXY is then ignored");
	env_clear();
	env_set("NO_PROXY", "example.test");
	tap_ok(load_env() == 0 && cfg.nrules == 0,
	       "NO_PROXY without a SOCKS5 ALL_PROXY adds nothing");
}

static void test_no_proxy(void)
{
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(80)};
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(80)};

	env_clear();
	env_set("ALL_PROXY", "socks5h://10.0.0.1:1080");
	env_set("NO_PROXY", " localhost, .corp.example,*.lab.test 10.2.0.0/16,192.0.2.7,"
	                    "[2001:db8::1] ,,");
	tap_ok(load_env() == 0 && cfg.nrules == 6 &&
	               origin_of("exclude") == CONFIG_FROM_ALL_PROXY,
	       "NO_PROXY: six entries, commas and spaces: %s", err);
	tap_ok(config_excluded_name(&cfg, "LOCALHOST") &&
	               config_excluded_name(&cfg, "a.corp.example") &&
	               config_excluded_name(&cfg, "corp.example") &&
	               config_excluded_name(&cfg, "x.lab.test") &&
	               !config_excluded_name(&cfg, "badcorp.example") &&
	               !config_excluded_name(&cfg, "example.test"),
	       "NO_PROXY names: the name and every name under it, curl's way");
	inet_pton(AF_INET, "10.2.255.1", &a4.sin_addr);
	bool in = config_excluded_addr(&cfg, (struct sockaddr *)&a4);
	inet_pton(AF_INET, "10.3.0.1", &a4.sin_addr);
	bool out = config_excluded_addr(&cfg, (struct sockaddr *)&a4);
	inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
	tap_ok(in && !out && config_excluded_addr(&cfg, (struct sockaddr *)&a6),
	       "NO_PROXY CIDR, address and [v6] address");
	env_set("no_proxy", "*");
	tap_ok(load_env() == 0 && cfg.nrules == 3 &&
	               config_excluded_addr(&cfg, (struct sockaddr *)&a4) &&
	               config_excluded_addr(&cfg, (struct sockaddr *)&a6) &&
	               config_excluded_name(&cfg, "anything.example"),
	       "no_proxy (before NO_PROXY) '*': every address and every name");
	env_set("no_proxy", "good.test,bad!name");
	tap_ok(load_env() == -1 &&
	               strcmp(err, "no_proxy: bad entry 'bad!name': invalid character "
	                           "'!' in host name") == 0,
	       "a bad NO_PROXY entry: %s", err);
	env_set("no_proxy", "10.0.0.0/40");
	tap_ok(load_env() == -1 &&
	               strcmp(err, "no_proxy: bad entry '10.0.0.0/40': bad prefix "
	                           "length (0-32)") == 0,
	       "a bad NO_PROXY CIDR: %s", err);
	env_clear();
	env_set("SOCKSIFY_EXCLUDE", "10.5.0.0/16");
	env_set("ALL_PROXY", "socks5h://10.0.0.1:1080");
	env_set("NO_PROXY", "example.test");
	tap_ok(load_env() == 0 && cfg.nrules == 2 &&
	               origin_of("exclude") == CONFIG_FROM_ENV,
	       "NO_PROXY adds to SOCKSIFY_EXCLUDE's rules");
	config_defaults(&cfg);
	static char many[64 * 4 + 8];
	for (int i = 0; i < 65; i++)
		strcat(many, "a.b,");
	tap_ok(config_no_proxy_apply(&cfg, many, "NO_PROXY", err, sizeof(err)) == -1 &&
	               strcmp(err, "NO_PROXY: too many exclude rules (at most 64)") == 0,
	       "65 NO_PROXY entries: %s", err);
	env_clear();
}

/* --- threads ----------------------------------------------------------------------- */

static const char thread_text[] = "proxy = socks5://u:p@h:1\nexclude = 10.0.0.0/8\n"
                                  "exclude = .example\nlog_level = debug\n";

static void *parse_many(void *arg)
{
	struct config c;
	char e[CONFIG_ERR_LEN];
	long bad = 0;

	(void)arg;
	for (int i = 0; i < 2000; i++) {
		config_defaults(&c);
		if (config_parse_text(&c, thread_text, sizeof(thread_text) - 1, "t", e,
		                      sizeof(e)) != 0 ||
		    c.nrules != 2 || strcmp(c.proxy.pass, "p") != 0)
			bad++;
		config_defaults(&c);
		if (config_parse_text(&c, "exclude = 10.0.0.0/33", 21, "t", e,
		                      sizeof(e)) != -1 ||
		    strcmp(e, "t:1: bad exclude rule '10.0.0.0/33': bad prefix length "
		              "(0-32)"))
			bad++;
	}
	return (void *)(intptr_t)bad;
}

static void test_threads(void)
{
	pthread_t t[4];
	long bad = 0;

	for (int i = 0; i < 4; i++)
		if (pthread_create(&t[i], NULL, parse_many, NULL) != 0)
			abort();
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad += (long)(intptr_t)r;
	}
	tap_is(bad, 0, "4 threads parsing at once get the same results");
}

int main(void)
{
	tap_init();
	snprintf(tmpdir, sizeof(tmpdir), "%s", "/tmp/test_config.XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	test_defaults();
	test_syntax();
	test_line_limits();
	test_proxy_option();
	test_urls();
	test_url_errors();
	test_simple_options();
	test_fake_pools();
	test_nameserver();
	test_exclude_parse();
	test_exclude_match();
	test_name_match();
	test_fake_membership();
	test_parse_file();
	test_load();
	test_all_proxy();
	test_no_proxy();
	test_messages();
	test_option_names();
	test_sample();
	test_threads();

	static const char *const names[] = {"a.conf",   "b.conf",    "c.conf",
	                                    "d.conf",   "e.conf",    "f.conf",
	                                    "sys.conf", "user.conf", "broken.conf"};
	char path[128];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	return tap_done();
}
