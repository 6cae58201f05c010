/* SPDX-License-Identifier: MIT */
/*
 * The doctor's configuration lines (each setting that is not the default,
 * and where it came from) and its program line (how the launcher would run
 * a program, and why); run_mode_decide() is the launcher's own decision.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "handoff.h"
#include "secret.h"

/* --- where a setting came from ----------------------------------------------------- */

/* The launcher option that sets an option through its variable, if given. */
static const char *launcher_opt(const char *name, const struct check_opts *o)
{
	if (strcmp(name, "proxy") == 0 && o->opt_proxy)
		return "-p";
	if (strcmp(name, "log_level") == 0 && o->opt_verbose)
		return "-v";
	if (strcmp(name, "supervise") == 0 && o->opt_supervise)
		return "--supervise/--no-supervise";
	return NULL;
}

/* "SOCKSIFY_LOG_LEVEL" for "log_level". */
static const char *env_name(const char *name, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "SOCKSIFY_%s", name);
	for (size_t i = 0; i < n && i < cap; i++)
		if (buf[i] >= 'a' && buf[i] <= 'z')
			buf[i] = (char)(buf[i] - 'a' + 'A');
	return buf;
}

static const char *origin_name(const struct config *cfg, size_t i,
                               const struct check_opts *o, char *buf, size_t cap)
{
	const char *name = config_option_name(i);
	const char *conf = getenv(CONFIG_ENV_CONF);

	switch (cfg->origin[i]) {
	case CONFIG_FROM_SYSCONF:
		return o->sysconf;
	case CONFIG_FROM_CONF:
		snprintf(buf, cap, "%s%s", conf ? conf : "?",
		         o->opt_config ? ", -c" : "");
		return buf;
	case CONFIG_FROM_ENV:
		return launcher_opt(name, o) ? launcher_opt(name, o)
		                             : env_name(name, buf, cap);
	case CONFIG_FROM_ALL_PROXY:
		return strcmp(name, "proxy") == 0 ? config_all_proxy_var(getenv)
		                                  : config_no_proxy_var(getenv);
	default:
		return "the default";
	}
}

/* --- values ------------------------------------------------------------------------ */

/* The proxy URL with any password shown as ***. */
static void proxy_text(const struct config_proxy *px, char *buf, size_t cap)
{
	char url[SECRET_TEXT_MAX];
	if (secret_proxy_url(px, false, url, sizeof(url)) < 0) {
		snprintf(buf, cap, "?");
		return;
	}
	char *at = strchr(url, '@');
	if (at && secret_has_password(px))
		snprintf(buf, cap, "%.*s:***%s", (int)(at - url), url, at);
	else
		snprintf(buf, cap, "%s", url);
}

static void nameserver_text(const struct config *cfg, char *buf, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";
	bool v6 = cfg->nameserver_family == AF_INET6;
	inet_ntop(cfg->nameserver_family, cfg->nameserver, a, sizeof(a));
	snprintf(buf, cap, "%s%s%s:%u", v6 ? "[" : "", a, v6 ? "]" : "",
	         cfg->nameserver_port);
}

/* Every proxy of the list, ", "-separated. */
static void proxies_text(const struct config *cfg, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < cfg->nproxies && i < CONFIG_MAX_PROXIES && used + 1 < cap;
	     i++) {
		char one[SECRET_TEXT_MAX];
		proxy_text(&cfg->proxies[i], one, sizeof(one));
		used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "",
		                         one);
	}
}

static void rule_text(const struct config_rule *r, char *buf, size_t cap)
{
	char a[INET6_ADDRSTRLEN];
	if (r->kind == CONFIG_RULE_SUFFIX) {
		snprintf(buf, cap, "%s", r->suffix[0] == '*' ? "*" : r->suffix);
		return;
	}
	inet_ntop(r->family, r->addr, a, sizeof(a));
	bool v6 = r->family == AF_INET6;
	snprintf(buf, cap, "%s%s/%u%s", v6 && r->port ? "[" : "", a, r->prefix,
	         v6 && r->port ? "]" : "");
	if (r->port)
		snprintf(buf + strlen(buf), cap - strlen(buf), ":%u", r->port);
}

static void exclude_text(const struct config *cfg, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < cfg->nrules && used + 1 < cap; i++) {
		char one[300];
		rule_text(&cfg->rules[i], one, sizeof(one));
		used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "",
		                         one);
	}
}

/* The value of option i as the file would write it. */
static void value_text(const struct config *cfg, const char *name, char *buf, size_t cap)
{
	static const char *const levels[] = {"error", "info", "debug"};
	static const char *const sup[] = {"auto", "always", "never"};
	static const char *const pipe[] = {"auto", "yes", "no"};

	static const char *const chains[] = {"failover", "strict", "round-robin"};

	if (strcmp(name, "proxy") == 0)
		proxies_text(cfg, buf, cap);
	else if (strcmp(name, "chain") == 0)
		snprintf(buf, cap, "%s", chains[cfg->chain % 3]);
	else if (strcmp(name, "nameserver") == 0)
		nameserver_text(cfg, buf, cap);
	else if (strcmp(name, "failover_retry") == 0)
		snprintf(buf, cap, "%.3g s", cfg->failover_retry_ms / 1000.0);
	else if (strcmp(name, "exclude") == 0)
		exclude_text(cfg, buf, cap);
	else if (strcmp(name, "dns") == 0)
		snprintf(buf, cap, "%s",
		         cfg->dns == CONFIG_DNS_REMOTE ? "remote" : "local");
	else if (strcmp(name, "proxy_loopback") == 0)
		snprintf(buf, cap, "%s", cfg->proxy_loopback ? "yes" : "no");
	else if (strcmp(name, "connect_timeout") == 0)
		snprintf(buf, cap, "%.3g s", cfg->connect_timeout_ms / 1000.0);
	else if (strcmp(name, "log_level") == 0)
		snprintf(buf, cap, "%s", levels[cfg->log_level % 3]);
	else if (strcmp(name, "log_file") == 0)
		snprintf(buf, cap, "%s", cfg->log_file);
	else if (strcmp(name, "supervise") == 0)
		snprintf(buf, cap, "%s", sup[cfg->supervise % 3]);
	else if (strcmp(name, "pipeline") == 0)
		snprintf(buf, cap, "%s", pipe[cfg->pipeline % 3]);
	else
		snprintf(buf, cap, "set");
}

void check_config(const struct config *cfg, const struct check_opts *o)
{
	static char value[CONFIG_MAX_PROXIES * (SECRET_TEXT_MAX + 2)];
	char from[300];

	for (size_t i = 0; config_option_name(i); i++) {
		const char *name = config_option_name(i);
		if (cfg->origin[i] == CONFIG_FROM_DEFAULT && strcmp(name, "proxy") != 0)
			continue;
		value_text(cfg, name, value, sizeof(value));
		check_line(true, "config: %s %s (from %s%s)", name, value,
		           origin_name(cfg, i, o, from, sizeof(from)),
		           i == 0 && cfg->proxy_secret ? "; its password from "
		                                         "SOCKSIFY_SECRET_FD"
		                                       : "");
	}
	const char *var = config_all_proxy_var(getenv);
	if (var && cfg->origin[0] != CONFIG_FROM_ALL_PROXY)
		check_line(true, "config: %s ignored: %s", var,
		           cfg->origin[0] == CONFIG_FROM_DEFAULT
		                   ? "not a socks5:// or socks5h:// URL"
		                   : "the proxy is set by socksify's own configuration");
}

/* --- the program ------------------------------------------------------------------- */

enum run_mode run_mode_decide(const struct exe_probe *e, enum config_supervise s,
                              bool allow_direct, const char **why)
{
	bool unreachable = e->go || e->is_static;

	*why = e->go          ? "a Go program"
	       : e->is_static ? "statically linked"
	       : e->elf       ? "dynamically linked"
	                      : "not an ELF executable (a script runs its interpreter)";
	if (e->setid) {
		*why = "setuid/setgid";
		return (s == CONFIG_SUPERVISE_ALWAYS || unreachable) && !allow_direct
		               ? RUN_MODE_REFUSED
		               : RUN_MODE_UNPROXIED;
	}
	if (s == CONFIG_SUPERVISE_ALWAYS || (unreachable && s == CONFIG_SUPERVISE_AUTO))
		return RUN_MODE_SUPERVISED;
	if (unreachable)
		return allow_direct ? RUN_MODE_UNPROXIED : RUN_MODE_REFUSED;
	return RUN_MODE_PRELOAD;
}

/* Whether this kernel gives a seccomp user-notification listener: tried in
 * a child (no_new_privs, a filter that allows everything). 0 or an errno. */
static int seccomp_notify_errno(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct sock_filter f[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
		struct sock_fprog prog = {.len = 1, .filter = f};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(errno);
		long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		                  SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
		_exit(fd < 0 ? errno : 0);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : EINVAL;
}

static bool supervised_line(const char *name, const char *why, enum config_supervise s,
                            const struct check_opts *o)
{
	int err = seccomp_notify_errno();
	if (err == 0 && s == CONFIG_SUPERVISE_ALWAYS)
		return check_line(true,
		                  "program %s: %s: supervised (supervise = always), "
		                  "with the preload where it reaches",
		                  name, why);
	if (err == 0)
		return check_line(true,
		                  "program %s: %s: LD_PRELOAD cannot reach it, runs "
		                  "supervised (seccomp user notification)",
		                  name, why);
	return check_line(false,
	                  "program %s: %s: cannot be proxied: seccomp user "
	                  "notification is not available (%s; Linux 5.9 or later "
	                  "is needed); %s",
	                  name, why, strerror(err),
	                  o->allow_direct ? "--allow-direct: it would run unproxied"
	                                  : "socksify refuses to run it");
}

bool check_program(const struct config *cfg, const char *path, const char *name,
                   const struct check_opts *o)
{
	struct exe_probe e;
	const char *why;
	int rc = exe_probe_path(path, &e);

	if (rc < 0)
		return check_line(false, "program %s: cannot read it: %s", name,
		                  strerror(-rc));
	/* the launcher runs it as it is: the outer supervisor serves the tree */
	if (handoff_supervised(getenv(HANDOFF_ENV_SUPERVISED)))
		return check_line(true,
		                  "program %s: supervised by the supervisor this "
		                  "launcher already runs under",
		                  name);
	switch (run_mode_decide(&e, cfg->supervise, o->allow_direct, &why)) {
	case RUN_MODE_PRELOAD:
		return check_line(true,
		                  "program %s: %s: runs with the preload (LD_PRELOAD)",
		                  name, why);
	case RUN_MODE_SUPERVISED:
		return supervised_line(name, why, cfg->supervise, o);
	case RUN_MODE_UNPROXIED:
		return check_line(false,
		                  "program %s: %s: cannot be proxied (%s); socksify "
		                  "runs it unproxied, with a warning",
		                  name, why,
		                  e.setid ? "the loader ignores LD_PRELOAD for it"
		                          : "--allow-direct and supervise = never");
	case RUN_MODE_REFUSED:
	default:
		return check_line(false,
		                  "program %s: %s: cannot be proxied (%s); socksify "
		                  "refuses to run it (--allow-direct runs it "
		                  "unproxied)",
		                  name, why,
		                  e.setid ? "the supervisor would drop its privileges"
		                          : "supervise = never");
	}
}
