/* SPDX-License-Identifier: MIT */
/*
 * The doctor's entry point and its lines (check.h): the configuration, then
 * either the program's mode (--check PROGRAM) or each proxy's steps
 * (--check [HOST:PORT]).
 */
#include <stdarg.h>
#include <stdio.h>

#include "check.h"

enum { EXIT_FAILED = 1 };

bool check_line(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%-8s", ok ? "ok" : "failed");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return ok;
}

const char *check_took(long long us, char *buf, size_t cap)
{
	if (us < 1000)
		snprintf(buf, cap, "%.2f ms", (double)us / 1000.0);
	else if (us < 10000)
		snprintf(buf, cap, "%.1f ms", (double)us / 1000.0);
	else if (us < 10000000)
		snprintf(buf, cap, "%lld ms", us / 1000);
	else
		snprintf(buf, cap, "%.1f s", (double)us / 1e6);
	return buf;
}

/*
 * The proxies to check, in the order the configuration lists them (the one
 * place that knows where the list is). Each is contacted directly from
 * here, whatever the chain mode: in a strict chain a hop that only the
 * previous one can reach fails here.
 */
static size_t proxy_count(const struct config *cfg)
{
	return cfg->nproxies >= 1 && cfg->nproxies <= CONFIG_MAX_PROXIES ? cfg->nproxies
	                                                                 : 1;
}

static const struct config_proxy *proxy_at(const struct config *cfg, size_t i)
{
	return &cfg->proxies[i];
}

int check_main(const struct config *cfg, const char *target, const char *prog_path,
               const char *prog_name, const struct check_opts *o)
{
	bool ok = true;

	check_config(cfg, o);
	if (prog_name && !prog_path)
		return check_line(false, "program %s: command not found", prog_name),
		       EXIT_FAILED;
	if (prog_name)
		return check_program(cfg, prog_path, prog_name, o) ? 0 : EXIT_FAILED;
	for (size_t i = 0; i < proxy_count(cfg); i++)
		ok = check_proxy(cfg, proxy_at(cfg, i), target) && ok;
	return ok ? 0 : EXIT_FAILED;
}
