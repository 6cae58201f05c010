/* SPDX-License-Identifier: MIT */
/*
 * Other tools' proxy variables, as curl reads them: when nothing of
 * socksify's own (a configuration file, $SOCKSIFY_PROXY, -p) names a proxy,
 * a socks5:// or socks5h:// URL in $all_proxy or $ALL_PROXY is the proxy,
 * and $no_proxy or $NO_PROXY adds exclusions. A URL of another scheme
 * (http://, socks4://, or none, which curl takes as http) is for other tools:
 * it is left alone, and the proxy stays the default. Like the rest of the
 * configuration this runs inside arbitrary programs: no state, no malloc, one
 * line in err on failure. Also here: the table of socksify's own SOCKSIFY_*
 * variables that config_load() applies.
 */
#include "config_int.h"

#include <string.h>

/* socksify's own variables, in the order config_load() applies them. */
const struct config_env_option config_env_options[] = {
        {CONFIG_ENV_PROXY, "proxy"},
        {CONFIG_ENV_CHAIN, "chain"},
        {CONFIG_ENV_DNS, "dns"},
        {CONFIG_ENV_LOG_LEVEL, "log_level"},
        {CONFIG_ENV_LOG_FILE, "log_file"},
        {CONFIG_ENV_PROXY_LOOPBACK, "proxy_loopback"},
        {CONFIG_ENV_EXCLUDE, "exclude"},
        {CONFIG_ENV_SUPERVISE, "supervise"},
        {CONFIG_ENV_NAMESERVER, "nameserver"},
        {CONFIG_ENV_BIND, "bind"},
};

const size_t config_env_noptions =
        sizeof(config_env_options) / sizeof(config_env_options[0]);

/* The first of the two spellings that is set and not empty (curl looks at
 * the lower-case one first). */
static const char *pick(char *(*getenv_fn)(const char *), const char *lower_name,
                        const char *upper_name)
{
	const char *v = getenv_fn(lower_name);
	if (v && *v)
		return lower_name;
	v = getenv_fn(upper_name);
	return v && *v ? upper_name : NULL;
}

int config_option_index(const char *name)
{
	for (size_t i = 0; config_option_name(i); i++)
		if (strcmp(config_option_name(i), name) == 0)
			return (int)i;
	return -1;
}

const char *config_all_proxy_var(char *(*getenv_fn)(const char *))
{
	return pick(getenv_fn, "all_proxy", CONFIG_ENV_ALL_PROXY);
}

const char *config_no_proxy_var(char *(*getenv_fn)(const char *))
{
	return pick(getenv_fn, "no_proxy", CONFIG_ENV_NO_PROXY);
}

/* The URL names a SOCKS5 proxy: socks5:// or socks5h://, any case. */
static bool is_socks5_url(const char *url)
{
	return eq_nocase(url, "socks5://", 9) || eq_nocase(url, "socks5h://", 10);
}

/* One NO_PROXY entry s[0..n) as a rule: "*" is every destination (three
 * rules), "[v6]" loses its brackets, the rest is an exclude rule. */
static int entry_apply(struct config *cfg, const char *s, size_t n, struct where *w)
{
	char buf[CONFIG_LINE_MAX + 1], why[WHY_LEN], show[SHOW_MAX + 4];
	static const char *const all[] = {"0.0.0.0/0", "::/0"};

	if (n >= 2 && s[0] == '[' && s[n - 1] == ']' && !memchr(s, '/', n)) {
		s++;
		n -= 2;
	}
	if (n >= sizeof(buf))
		return config_fail(w, "entry longer than %d bytes", CONFIG_LINE_MAX);
	memcpy(buf, s, n);
	buf[n] = '\0';
	bool star = strcmp(buf, "*") == 0;
	size_t need = star ? 3 : 1;
	if (cfg->nrules + need > CONFIG_MAX_RULES)
		return config_fail(w, "too many exclude rules (at most %d)",
		                   CONFIG_MAX_RULES);
	if (star) {
		for (size_t i = 0; i < 2; i++)
			config_rule_parse(&cfg->rules[cfg->nrules++], all[i], why,
			                  sizeof(why));
		struct config_rule *r = &cfg->rules[cfg->nrules++];
		memset(r, 0, sizeof(*r));
		r->kind = CONFIG_RULE_SUFFIX;
		r->suffix[0] = '*'; /* every name (config_match.c) */
		return 0;
	}
	if (config_rule_parse(&cfg->rules[cfg->nrules], buf, why, sizeof(why)) < 0)
		return config_fail(w, "bad entry '%s': %s", config_show(show, buf, n),
		                   why);
	cfg->nrules++;
	return 0;
}

int config_no_proxy_apply(struct config *cfg, const char *value, const char *source,
                          char *err, size_t errlen)
{
	struct where w = {source, 0, err, errlen};
	static const char seps[] = ", \t";

	for (const char *s = value + strspn(value, seps); *s; s += strspn(s, seps)) {
		size_t n = strcspn(s, seps);
		if (entry_apply(cfg, s, n, &w) < 0)
			return -1;
		s += n;
	}
	return 0;
}

int config_env_proxy(struct config *cfg, char *(*getenv_fn)(const char *), char *err,
                     size_t errlen)
{
	int proxy = config_option_index("proxy");
	int exclude = config_option_index("exclude");
	const char *var = config_all_proxy_var(getenv_fn);

	if (cfg->origin[proxy] != CONFIG_FROM_DEFAULT || !var ||
	    !is_socks5_url(getenv_fn(var)))
		return 0;
	if (config_parse_proxy_url(&cfg->proxy, getenv_fn(var), var, err, errlen) < 0)
		return -1;
	cfg->nproxies = 1; /* one URL (a list is an error) */
	cfg->origin[proxy] = CONFIG_FROM_ALL_PROXY;
	var = config_no_proxy_var(getenv_fn);
	if (!var)
		return 0;
	if (cfg->origin[exclude] == CONFIG_FROM_DEFAULT)
		cfg->origin[exclude] = CONFIG_FROM_ALL_PROXY;
	return config_no_proxy_apply(cfg, getenv_fn(var), var, err, errlen);
}
