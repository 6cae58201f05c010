/* SPDX-License-Identifier: MIT */
/*
 * socksify's configuration: the defaults, the key = value parser of
 * socksify.conf with one setter per option, and config_load(), which applies
 * the system file, $SOCKSIFY_CONF and the SOCKSIFY_* environment in turn. The
 * values themselves are parsed in config_url.c (numbers, addresses, proxy
 * URLs) and config_match.c (exclusion rules, fake pools).
 *
 * This runs inside arbitrary programs (the shim) as well as in the launcher,
 * so it holds no state of its own: every parse works on the caller's struct,
 * with fixed-size buffers on the stack and no malloc. Text is split into lines
 * by one small splitter that both the in-memory and the file parser feed, so
 * a file is never read whole. Errors are returned as one line in the caller's
 * buffer (see config.h); a password is never copied into one.
 */
#include "config_int.h"
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* One source being applied: its proxy line or first exclude line replaces. */
struct parse {
	struct config *cfg;
	struct where w;
	bool proxy_seen, exclude_seen;
	bool password;  /* the source's proxy has a password */
	uint8_t origin; /* enum config_origin of the source */
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
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

/* --- options ----------------------------------------------------------------------- */

#define word_index config_word_index /* config_url.c (config.c's size) */

/* "bad value 'V' for 'KEY' (EXPECTED)" or, with why, "...: WHY". */
static int bad_value(struct parse *p, const char *key, const char *value,
                     const char *expected, const char *why)
{
	char buf[SHOW_MAX + 4];

	config_show(buf, value, strlen(value));
	if (why)
		return config_fail(&p->w, "bad value '%s' for '%s': %s", buf, key, why);
	return config_fail(&p->w, "bad value '%s' for '%s' (%s)", buf, key, expected);
}

/* One URL of a proxy line, appended to the list. */
static int add_proxy(struct parse *p, const char *url, size_t n)
{
	struct config *cfg = p->cfg;
	char why[WHY_LEN], buf[SHOW_MAX + 4], one[CONFIG_LINE_MAX + 1];

	if (n >= sizeof(one))
		return config_fail(&p->w, "proxy URL longer than %d bytes",
		                   CONFIG_LINE_MAX);
	memcpy(one, url, n);
	one[n] = '\0';
	char *u = trim(one);
	if (cfg->nproxies == CONFIG_MAX_PROXIES)
		return config_fail(&p->w, "too many proxies (at most %d)",
		                   CONFIG_MAX_PROXIES);
	if (config_url_parse(&cfg->proxies[cfg->nproxies], u, why, sizeof(why)) < 0) {
		config_fail(&p->w, "bad proxy URL '%s': %s", config_show_url(buf, u),
		            why);
		explicit_bzero(one, sizeof(one));
		return -1;
	}
	explicit_bzero(one, sizeof(one));
	p->password = p->password || secret_has_password(&cfg->proxies[cfg->nproxies]);
	cfg->nproxies++;
	return 0;
}

/* A source's first proxy line replaces the list, later ones append; a value
 * may be a comma-separated list of URLs. */
static int set_proxy(struct parse *p, const char *key, const char *value)
{
	struct config *cfg = p->cfg;

	(void)key;
	if (!p->proxy_seen) {
		memset(cfg->proxies, 0, sizeof(cfg->proxies));
		cfg->nproxies = 0;
		p->proxy_seen = true;
	}
	for (;;) {
		size_t n = config_first_url_len(value);
		if (add_proxy(p, value, n) < 0)
			return -1;
		if (value[n] == '\0')
			return 0;
		value += n + 1;
	}
}

static int set_chain(struct parse *p, const char *key, const char *value)
{
	static const char *const words[] = {"failover", "strict", "round-robin"};
	static const enum config_chain modes[] = {
	        CONFIG_CHAIN_FAILOVER, CONFIG_CHAIN_STRICT, CONFIG_CHAIN_ROUND_ROBIN};
	int i = word_index(value, words, 3);

	if (i < 0)
		return bad_value(p, key, value, "failover, strict or round-robin", NULL);
	p->cfg->chain = modes[i];
	return 0;
}

static int set_exclude(struct parse *p, const char *key, const char *value)
{
	struct config *cfg = p->cfg;
	char why[WHY_LEN], buf[SHOW_MAX + 4];

	(void)key;
	if (!p->exclude_seen) {
		/* a new source replaces the list; cleared, so structs compare */
		memset(cfg->rules, 0, sizeof(cfg->rules));
		cfg->nrules = 0;
		p->exclude_seen = true;
	}
	if (cfg->nrules == CONFIG_MAX_RULES)
		return config_fail(&p->w, "too many exclude rules (at most %d)",
		                   CONFIG_MAX_RULES);
	if (config_rule_parse(&cfg->rules[cfg->nrules], value, why, sizeof(why)) < 0)
		return config_fail(&p->w, "bad exclude rule '%s': %s",
		                   config_show(buf, value, strlen(value)), why);
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

/* Seconds ("10", "2.5") in (0, 3600] into *out, in milliseconds. */
static int set_seconds(struct parse *p, const char *key, const char *value, unsigned *out)
{
	char buf[SHOW_MAX + 4];
	long ms = config_seconds_parse(value);

	config_show(buf, value, strlen(value));
	if (ms < 0)
		return config_fail(&p->w,
		                   "bad number '%s' for '%s' (seconds, e.g. 10 or 2.5)",
		                   buf, key);
	if (ms == 0 || ms > 3600 * 1000)
		return config_fail(
		        &p->w, "%s '%s' out of range (more than 0, at most 3600 seconds)",
		        key, buf);
	*out = (unsigned)ms;
	return 0;
}

static int set_connect_timeout(struct parse *p, const char *key, const char *value)
{
	return set_seconds(p, key, value, &p->cfg->connect_timeout_ms);
}

static int set_failover_retry(struct parse *p, const char *key, const char *value)
{
	return set_seconds(p, key, value, &p->cfg->failover_retry_ms);
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
		return config_fail(&p->w, "value of '%s' longer than %zu bytes", key,
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

static int set_supervise(struct parse *p, const char *key, const char *value)
{
	static const char *const words[] = {"auto", "always", "never"};
	static const enum config_supervise modes[] = {
	        CONFIG_SUPERVISE_AUTO, CONFIG_SUPERVISE_ALWAYS, CONFIG_SUPERVISE_NEVER};
	int i = word_index(value, words, 3);

	if (i < 0)
		return bad_value(p, key, value, "auto, always or never", NULL);
	p->cfg->supervise = modes[i];
	return 0;
}

static int set_bind(struct parse *p, const char *key, const char *value)
{
	static const char *const words[] = {"auto", "never"};
	int i = word_index(value, words, 2);
	if (i >= 0)
		p->cfg->bind = i == 0 ? CONFIG_BIND_AUTO : CONFIG_BIND_NEVER;
	return i < 0 ? bad_value(p, key, value, "auto or never", NULL) : 0;
}

static int set_fake_pool(struct parse *p, const char *key, const char *value, int family)
{
	struct hostspec h;
	char why[WHY_LEN];
	bool v4 = family == AF_INET;

	if (config_pool_parse(&h, family, value, why, sizeof(why)) < 0)
		return bad_value(p, key, value, NULL, why);
	memcpy(v4 ? p->cfg->fake_v4 : p->cfg->fake_v6, h.addr,
	       v4 ? sizeof(p->cfg->fake_v4) : sizeof(p->cfg->fake_v6));
	*(v4 ? &p->cfg->fake_v4_prefix : &p->cfg->fake_v6_prefix) = h.prefix;
	return 0;
}

static int set_fake_pool_v4(struct parse *p, const char *key, const char *value)
{
	return set_fake_pool(p, key, value, AF_INET);
}

static int set_fake_pool_v6(struct parse *p, const char *key, const char *value)
{
	return set_fake_pool(p, key, value, AF_INET6);
}

/* "V4[:PORT]", "[V6]:PORT" or "V6": port 53 unless given. */
static int set_nameserver(struct parse *p, const char *key, const char *value)
{
	struct hostspec h;
	char why[WHY_LEN];

	if (config_hostspec_parse(&h, value, false, why, sizeof(why)) < 0)
		return bad_value(p, key, value, NULL, why);
	memset(p->cfg->nameserver, 0, sizeof(p->cfg->nameserver));
	memcpy(p->cfg->nameserver, h.addr, h.family == AF_INET ? 4 : 16);
	p->cfg->nameserver_family = h.family;
	p->cfg->nameserver_port = h.port ? h.port : 53;
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
        {"supervise", set_supervise},
        {"chain", set_chain},
        {"failover_retry", set_failover_retry},
        {"nameserver", set_nameserver},
        {"bind", set_bind},
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

_Static_assert(NOPTIONS <= CONFIG_MAX_OPTIONS, "struct config.origin too small");

const char *config_option_name(size_t i)
{
	return i < NOPTIONS ? options[i].name : NULL;
}

static int option_set(struct parse *p, const char *key, const char *value)
{
	char buf[SHOW_MAX + 4];
	int i = config_option_index(key);

	if (i >= 0) {
		p->cfg->origin[i] = p->origin;
		return options[i].set(p, key, value);
	}
	return config_fail(&p->w, "unknown option '%s'",
	                   config_show(buf, key, strlen(key)));
}

/* Without an explicit dns setting, DNS follows the proxy's scheme. */
static void dns_derive(struct config *cfg)
{
	if (!cfg->dns_set)
		cfg->dns = cfg->proxy.remote_dns ? CONFIG_DNS_REMOTE : CONFIG_DNS_LOCAL;
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
		return config_fail(&p->w, "missing '=' after '%s'",
		                   config_show(buf, key, (size_t)(key_end - key)));
	if (key_end == key)
		return config_fail(&p->w, "missing option name before '='");
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
		return config_fail(&p->w, "empty value for '%s'",
		                   config_show(buf, key, strlen(key)));
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
		r = config_fail(&p->w, "line longer than %d bytes", CONFIG_LINE_MAX);
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
			return config_fail(&p->w, "NUL byte in the text");
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
	struct parse p = {cfg,   {source, 1, err, errlen}, false, false,
	                  false, CONFIG_FROM_TEXT};
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
	config_fail(w, "cannot read: %s", strerror_r(e, buf, sizeof(buf)));
	errno = e;
	return -1;
}

/* read() of up to n bytes, again after EINTR. */
static ssize_t read_some(int fd, char *buf, size_t n)
{
	ssize_t r;

	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/* open() and read(), not stdio: no FILE to allocate, so the shim's
 * constructor does not start malloc for a configuration it only reads. */
static int file_apply(struct config *cfg, const char *path, uint8_t origin, char *err,
                      size_t errlen)
{
	bool missing_ok = origin == CONFIG_FROM_SYSCONF;
	struct parse p = {cfg,   {path ? path : "(null)", 1, err, errlen},
	                  false, false,
	                  false, origin};
	struct line l;
	char chunk[2048];
	ssize_t n;
	int r = 0;

	if (!path)
		return cannot_read(&p.w, EINVAL);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && missing_ok)
			return 0;
		return cannot_read(&p.w, errno);
	}
	l.len = 0;
	l.too_long = false;
	while (r == 0 && (n = read_some(fd, chunk, sizeof(chunk))) > 0)
		r = line_feed(&p, &l, chunk, (size_t)n);
	if (r == 0 && n < 0)
		r = cannot_read(&p.w, errno);
	if (r == 0)
		r = text_end(&p, &l);
	if (r == 0 && p.password)
		secret_note_readable(cfg, fd, path);
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

int config_parse_file(struct config *cfg, const char *path, char *err, size_t errlen)
{
	return file_apply(cfg, path, CONFIG_FROM_TEXT, err, errlen);
}

/* --- all sources ------------------------------------------------------------------- */

void config_defaults(struct config *cfg)
{
	struct config_proxy *px = &cfg->proxy;

	memset(cfg, 0, sizeof(*cfg));
	px->remote_dns = true;
	memcpy(px->host, "127.0.0.1", sizeof("127.0.0.1"));
	px->port = 1080;
	cfg->nproxies = 1;
	cfg->chain = CONFIG_CHAIN_FAILOVER;
	cfg->failover_retry_ms = 30000;
	cfg->dns = CONFIG_DNS_REMOTE;
	cfg->connect_timeout_ms = 10000;
	cfg->log_level = CONFIG_LOG_ERROR;
	cfg->pipeline = CONFIG_PIPELINE_AUTO;
	cfg->supervise = CONFIG_SUPERVISE_AUTO;
	cfg->fake_v4[0] = 240;
	cfg->fake_v4_prefix = 4;
	cfg->fake_v6[0] = 0x01;
	cfg->fake_v6_prefix = 64;
}

/* One variable as one source; $SOCKSIFY_EXCLUDE is a comma-separated list. */
static int env_apply(struct config *cfg, const char *var, const char *key,
                     const char *value, char *err, size_t errlen)
{
	struct parse p = {cfg,   {var, 0, err, errlen}, false, false,
	                  false, CONFIG_FROM_ENV};
	char buf[CONFIG_LINE_MAX + 1];
	bool list = strcmp(key, "exclude") == 0;

	for (;;) {
		size_t n = list ? strcspn(value, ",") : strlen(value);
		if (n >= sizeof(buf))
			return config_fail(&p.w, "value longer than %d bytes",
			                   CONFIG_LINE_MAX);
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
	if (sysconf_path &&
	    file_apply(cfg, sysconf_path, CONFIG_FROM_SYSCONF, err, errlen) < 0)
		return -1;
	if (!getenv_fn)
		return 0;
	const char *conf = getenv_fn(CONFIG_ENV_CONF);
	if (conf && *conf && file_apply(cfg, conf, CONFIG_FROM_CONF, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < config_env_noptions; i++) {
		const struct config_env_option *e = &config_env_options[i];
		const char *v = getenv_fn(e->var);
		if (v && *v && env_apply(cfg, e->var, e->key, v, err, errlen) < 0)
			return -1;
	}
	if (config_env_proxy(cfg, getenv_fn, err, errlen) < 0)
		return -1;
	const char *secret = getenv_fn(SECRET_ENV_FD);
	if (secret && *secret && secret_apply(cfg, secret, err, errlen) < 0)
		return -1;
	dns_derive(cfg);
	return 0;
}
