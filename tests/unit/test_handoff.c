/* SPDX-License-Identifier: MIT */
/*
 * The exec hooks' hand-off to the launcher (shim/exec_handoff.c): the argv
 * and envp given to the launcher's execve(), seen by a stand-in for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "shim_support.h"
#include "tap.h"

enum { SEEN_MAX = 64, SEEN_LEN = 256 };
static char seen_argv[SEEN_MAX][SEEN_LEN], seen_envp[SEEN_MAX][SEEN_LEN];
static size_t seen_argc, seen_envc;

/* The launcher's execve(): what it was given, copied; fails ENOENT. */
static int fake_execve(const char *path, char *const argv[], char *const envp[])
{
	(void)path;
	for (seen_argc = 0; argv[seen_argc] && seen_argc < SEEN_MAX; seen_argc++)
		snprintf(seen_argv[seen_argc], SEEN_LEN, "%s", argv[seen_argc]);
	for (seen_envc = 0; envp[seen_envc] && seen_envc < SEEN_MAX; seen_envc++)
		snprintf(seen_envp[seen_envc], SEEN_LEN, "%s", envp[seen_envc]);
	errno = ENOENT;
	return -1;
}

static bool env_has(const char *entry)
{
	for (size_t i = 0; i < seen_envc; i++)
		if (strcmp(seen_envp[i], entry) == 0)
			return true;
	return false;
}

/* fexecve(fd) with an empty argv: --exec-fd N adds two entries and there
 * is no argument to count the NULL with; envp must come out whole. */
static void test_fexecve_no_argv(void)
{
	char *const argv[] = {NULL};
	char *const envp[] = {"LD_PRELOAD=/x/libsocksify.so:/y/other.so", "A=1", NULL};
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	struct exec_target t = {.dirfd = fd, .path = "", .flags = AT_EMPTY_PATH};

	seen_envc = 0;
	int rc = exec_supervised(&t, argv, envp);
	tap_ok(rc < 0 && errno == EACCES, "the launcher's exec failed: EACCES");
	tap_ok(seen_argc == 7 && strcmp(seen_argv[3], "--exec-fd") == 0,
	       "LAUNCHER --exec-supervised \"\" --exec-fd N -- PATH (%zu entries)",
	       seen_argc);
	tap_ok(seen_envc == 3, "three variables (%zu)", seen_envc);
	tap_ok(env_has("LD_PRELOAD=/y/other.so"), "LD_PRELOAD without the shim");
	tap_ok(env_has("A=1"), "the caller's variable");
	tap_ok(env_has("SOCKSIFY_LD_PRELOAD=/x/libsocksify.so:/y/other.so"),
	       "SOCKSIFY_LD_PRELOAD as LD_PRELOAD was");
	for (size_t i = 0; i < seen_envc; i++)
		if (!seen_envp[i][0])
			tap_diag("entry %zu is empty", i);
	close(fd);
}

int main(void)
{
	tap_init();
	shim_support_init();
	shim_next_execve = fake_execve;
	test_fexecve_no_argv();
	return tap_done();
}
