/* SPDX-License-Identifier: MIT */
/*
 * exec_probe: a dynamically linked program (so the shim is in it) that runs
 * another program each way libc offers, for shim_exec.bats:
 *
 *   exec_probe WAY PROGRAM [ARG...]     (at most 4 ARGs for the execl*() ways)
 *
 * WAY is execve, execv, execvp, execvpe, execl, execle, execlp, fexecve
 * (PROGRAM opened O_RDONLY|O_CLOEXEC), fexecve-opath (O_PATH|O_CLOEXEC),
 * execveat (relative to a descriptor of PROGRAM's directory), execveat-empty
 * (AT_EMPTY_PATH), vfork (vfork() + execv()), posix_spawn or posix_spawnp.
 * PROGRAM gets argv[0] $EXEC_PROBE_ARGV0 (default "exec-probe-child"). The
 * exec ways replace this process; the others wait and exit with the child's
 * status (128 + N for a signal). A failure prints "WAY: ERROR" and exits 125.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *way, int err)
{
	printf("%s: %s\n", way, strerror(err));
	fflush(stdout);
	return 125;
}

static int wait_child(const char *way, pid_t pid)
{
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return fail(way, errno);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

/* execveat() relative to PROGRAM's directory, or AT_EMPTY_PATH on PROGRAM */
static int run_execveat(const char *prog, char **argv, int empty)
{
	char dir[4096], base[4096];
	snprintf(dir, sizeof(dir), "%s", prog);
	snprintf(base, sizeof(base), "%s", prog);
	int fd = empty ? open(prog, O_RDONLY | O_CLOEXEC)
	               : open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail("open", errno);
	execveat(fd, empty ? "" : basename(base), argv, environ,
	         empty ? AT_EMPTY_PATH : 0);
	return fail(empty ? "execveat-empty" : "execveat", errno);
}

static int run_fexecve(const char *prog, char **argv, int flags)
{
	int fd = open(prog, flags | O_CLOEXEC);
	if (fd < 0)
		return fail("open", errno);
	fexecve(fd, argv, environ);
	return fail("fexecve", errno);
}

static int run_spawn(const char *way, const char *prog, char **argv)
{
	pid_t pid;
	int rc = strcmp(way, "posix_spawnp") == 0
	                 ? posix_spawnp(&pid, prog, NULL, NULL, argv, environ)
	                 : posix_spawn(&pid, prog, NULL, NULL, argv, environ);
	if (rc != 0)
		return fail(way, rc);
	return wait_child(way, pid);
}

static int run_vfork(const char *prog, char **argv)
{
	pid_t pid = vfork();
	if (pid == 0) {
		execv(prog, argv);
		_exit(errno == EACCES ? 126 : 127);
	}
	if (pid < 0)
		return fail("vfork", errno);
	return wait_child("vfork", pid);
}

/* execle(): the environment comes right after the NULL */
static void run_execle(const char *prog, char **a)
{
	char **e = environ;
	if (!a[1])
		execle(prog, a[0], (char *)NULL, e);
	else if (!a[2])
		execle(prog, a[0], a[1], (char *)NULL, e);
	else if (!a[3])
		execle(prog, a[0], a[1], a[2], (char *)NULL, e);
	else if (!a[4])
		execle(prog, a[0], a[1], a[2], a[3], (char *)NULL, e);
	else
		execle(prog, a[0], a[1], a[2], a[3], a[4], (char *)NULL, e);
}

/* the execl*() ways: at most 4 arguments after argv[0] (a NULL ends them) */
static int run_execl(const char *way, const char *prog, char **a)
{
	if (strcmp(way, "execl") == 0)
		execl(prog, a[0], a[1], a[2], a[3], a[4], (char *)NULL);
	else if (strcmp(way, "execlp") == 0)
		execlp(prog, a[0], a[1], a[2], a[3], a[4], (char *)NULL);
	else
		run_execle(prog, a);
	return fail(way, errno);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: exec_probe WAY PROGRAM [ARG...]\n");
		return 2;
	}
	const char *way = argv[1], *prog = argv[2], *name = getenv("EXEC_PROBE_ARGV0");
	char *args[64] = {0};
	if (argc > 60)
		return fail(way, E2BIG);
	args[0] = (char *)(name ? name : "exec-probe-child");
	for (int i = 3; i < argc; i++)
		args[i - 2] = argv[i];
	fflush(stdout);
	if (!strcmp(way, "execl") || !strcmp(way, "execle") || !strcmp(way, "execlp"))
		return run_execl(way, prog, args);
	if (strcmp(way, "execve") == 0)
		execve(prog, args, environ);
	else if (strcmp(way, "execv") == 0)
		execv(prog, args);
	else if (strcmp(way, "execvp") == 0)
		execvp(prog, args);
	else if (strcmp(way, "execvpe") == 0)
		execvpe(prog, args, environ);
	else if (strcmp(way, "fexecve") == 0 || strcmp(way, "fexecve-opath") == 0)
		return run_fexecve(prog, args, way[7] ? O_PATH : O_RDONLY);
	else if (strncmp(way, "execveat", 8) == 0)
		return run_execveat(prog, args, way[8] != '\0');
	else if (strcmp(way, "vfork") == 0)
		return run_vfork(prog, args);
	else if (strncmp(way, "posix_spawn", 11) == 0)
		return run_spawn(way, prog, args);
	else
		return fprintf(stderr, "exec_probe: unknown way %s\n", way), 2;
	return fail(way, errno);
}
