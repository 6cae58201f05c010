/* SPDX-License-Identifier: MIT */
/*
 * The supervisor: runs a program that LD_PRELOAD cannot reach (a Go program,
 * a static binary, a raw system call) with its network calls served by the
 * launcher through the kernel's seccomp user notification.
 *
 * The launcher forks; the child sets no_new_privs, installs a filter that
 * stops connect, sendto (with an address), sendmsg and sendmmsg at the
 * supervisor and refuses io_uring_setup (ENOSYS), then execs the program.
 * The parent serves the notifications until the last process of the program
 * tree is gone, and exits with the program's status. See docs/design.md.
 */
#ifndef SOCKSIFY_CLI_SUPERVISE_H
#define SOCKSIFY_CLI_SUPERVISE_H

#include <stdbool.h>

#include "config.h"
#include "handoff.h"

/* The environment variable the supervised program tree finds set to 1 (the
 * shim's exec hooks then leave the tree's execs alone). */
#define SUPERVISE_ENV_ACTIVE HANDOFF_ENV_SUPERVISED

struct supervise_opts {
	const char *path;  /* the program, as execv() takes it */
	char *const *argv; /* its arguments, argv[0] first */
	bool allow_direct; /* run it unsupervised where the kernel cannot */
};

/*
 * Runs the program under the supervisor with the configuration cfg. Returns
 * the exit status for the launcher: the program's (128 + N for a signal the
 * launcher could not re-raise on itself), 126 when the program cannot be
 * supervised or run, 127 when it is not found. Writes one line to stderr
 * for every failure to set up. Never returns in the child.
 */
int supervise_run(const struct supervise_opts *o, const struct config *cfg);

#endif
