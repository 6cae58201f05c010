/* SPDX-License-Identifier: MIT */
/*
 * The doctor, socksify --check [HOST:PORT | PROGRAM [ARGS...]]: one line per
 * step, "ok" or "failed", the reason in words and the time it took; exit
 * status 0 only when every step asked for works, 1 otherwise.
 *
 *   check.c        the steps and the entry point
 *   check_proxy.c  one proxy: reached, method, credentials, CONNECT, UDP ASSOCIATE
 *   check_prog.c   the mode a program would run in (preload, supervised,
 *                  cannot be proxied) and why; where each setting came from
 */
#ifndef SOCKSIFY_CLI_CHECK_H
#define SOCKSIFY_CLI_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "exeprobe.h"

/* What the launcher's own options set (they reach config_load() as
 * SOCKSIFY_* variables): "(from -p)" rather than "(from SOCKSIFY_PROXY)". */
struct check_opts {
	bool opt_proxy, opt_config, opt_verbose, opt_supervise, allow_direct;
	const char *sysconf; /* the system configuration file's path */
};

/* One result line: "ok      WHAT" or "failed  WHAT"; returns ok. */
__attribute__((format(printf, 2, 3))) bool check_line(bool ok, const char *fmt, ...);

/* "0.3 ms", "12 ms", "2.0 s" for a duration in microseconds. */
const char *check_took(long long us, char *buf, size_t cap);

/* The doctor: the configuration's lines, then the program's mode (prog_name,
 * at prog_path as the launcher finds it, NULL when not found), or else each proxy's steps
 * with the target (HOST:PORT, or NULL). Returns the exit status. */
int check_main(const struct config *cfg, const char *target, const char *prog_path,
               const char *prog_name, const struct check_opts *o);

/* One proxy's steps; target is "host:port" or NULL. true when all worked. */
bool check_proxy(const struct config *cfg, const struct config_proxy *px,
                 const char *target);

/* A target "HOST:PORT" / "[V6]:PORT": 0 and its parts, or -1. */
int check_parse_target(const char *s, char *host, size_t cap, uint16_t *port);

/* The configuration lines (check_prog.c). */
void check_config(const struct config *cfg, const struct check_opts *o);

/* The program line (check_prog.c): true when it can be proxied. */
bool check_program(const struct config *cfg, const char *path, const char *name,
                   const struct check_opts *o);

/*
 * How the launcher runs a program (shared by the launcher and the doctor, so
 * that both say the same): with the preload, supervised, unproxied
 * (--allow-direct, or a set-user-ID program the loader keeps the preload
 * from), or refused. why is what the program is ("statically linked", ...).
 */
enum run_mode {
	RUN_MODE_PRELOAD,
	RUN_MODE_SUPERVISED,
	RUN_MODE_UNPROXIED,
	RUN_MODE_REFUSED
};
enum run_mode run_mode_decide(const struct exe_probe *e, enum config_supervise s,
                              bool allow_direct, const char **why);

#endif
