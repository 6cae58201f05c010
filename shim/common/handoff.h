/* SPDX-License-Identifier: MIT */
/*
 * The hand-off between the shim's exec hooks and the launcher: how a
 * preloaded process that execs a program LD_PRELOAD cannot reach (static,
 * Go) has it run under the supervisor instead.
 *
 * The hook execs, in place of the program (so the process keeps its pid):
 *
 *   LAUNCHER --exec-supervised ARGV0 [--exec-fd N] -- PATH ARGS...
 *
 * with the caller's environment, except that LD_PRELOAD has the shim taken
 * out (the launcher must not run with the shim's hooks) and
 * SOCKSIFY_LD_PRELOAD holds LD_PRELOAD as it was. The launcher supervises
 * PATH (used as it is, no $PATH search) with ARGV0 as its argv[0] and ARGS
 * after it, restores LD_PRELOAD from SOCKSIFY_LD_PRELOAD (and unsets that),
 * prints nothing unless something fails, and exits with the program's
 * status. --exec-fd N says that PATH is /proc/self/fd/N, a descriptor the
 * hook made for this exec (execveat(), fexecve()): the program does not
 * inherit it.
 *
 * The launcher exports its own path as SOCKSIFY_LAUNCHER; the hook falls
 * back to the install path (SOCKSIFY_LAUNCHER_PATH in build_config.h).
 */
#ifndef SOCKSIFY_HANDOFF_H
#define SOCKSIFY_HANDOFF_H

#define HANDOFF_ENV_LAUNCHER   "SOCKSIFY_LAUNCHER"
#define HANDOFF_ENV_PRELOAD    "SOCKSIFY_LD_PRELOAD"
#define HANDOFF_ENV_SUPERVISED "SOCKSIFY_SUPERVISED"
#define HANDOFF_OPT_EXEC       "--exec-supervised"
#define HANDOFF_OPT_FD         "--exec-fd"

#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>

/*
 * True when this process runs under a supervisor: var (the value of
 * SOCKSIFY_SUPERVISED) is "1" and a seccomp filter is installed. The
 * variable alone could be inherited past a launcher's tree (or set by hand);
 * the filter alone could be anyone's (a container's). Its children are
 * supervised too (the filter is inherited and cannot be removed), and a
 * second supervisor cannot start (one listener per chain of filters).
 */
static inline bool handoff_supervised(const char *var)
{
	return var && strcmp(var, "1") == 0 &&
	       prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2 /* SECCOMP_MODE_FILTER */;
}

#endif
