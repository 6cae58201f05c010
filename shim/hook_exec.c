/* SPDX-License-Identifier: MIT */
/*
 * Exported exec hooks: execve, execveat, fexecve, execv, execvp, execvpe,
 * execl, execlp, execle, posix_spawn and posix_spawnp. A program that
 * LD_PRELOAD cannot reach (static, Go) which a preloaded process execs runs
 * under the supervisor instead: the process execs the launcher, which keeps
 * its pid, runs the program as its child and exits with its status (see
 * exec.h, shim/common/handoff.h). Everything else goes to libc as it came.
 *
 * glibc's exec*() functions call execve() inside libc, where no preload can
 * reach, so each has a hook of its own; the $PATH search of execvp(),
 * execvpe(), execlp() and posix_spawnp() is done here, as glibc does it.
 * These hooks may run in a vfork() child: no malloc, no stdio, no locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <paths.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "exec.h"
#include "shim.h"

/* glibc's search path when $PATH is unset (confstr(_CS_PATH)) */
#define DEFAULT_PATH "/bin:/usr/bin"

enum {
	/* pointers of a built argv kept on the stack; beyond, mmap() */
	ARGV_STACK = 64,
	/* where execl() stops counting its arguments: E2BIG (glibc) */
	ARGS_MAX = INT_MAX,
};

static int execve_real(const char *path, char *const argv[], char *const envp[])
{
	if (!real_execve) {
		errno = ENOSYS;
		return -1;
	}
	return real_execve(path, argv, envp);
}

/* execve() as the hooks do it: supervised when it must be. *handed is set
 * when the launcher was tried (then the exec failed with EACCES or E2BIG
 * and a search must go no further). */
static int exec_path(const char *path, char *const argv[], char *const envp[],
                     bool *handed)
{
	struct exec_target t = {.dirfd = AT_FDCWD, .path = path, .flags = 0};

	*handed = exec_hooks_active() && exec_must_supervise(&t);
	if (*handed)
		return exec_supervised(&t, argv, envp);
	exec_note_setid(&t);
	return execve_real(path, argv, envp);
}

static int exec_file(const char *path, char *const argv[], char *const envp[])
{
	bool handed;
	return exec_path(path, argv, envp, &handed);
}

SHIM_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	return exec_file(path, argv, envp);
}

SHIM_EXPORT int execv(const char *path, char *const argv[])
{
	return exec_file(path, argv, environ);
}

SHIM_EXPORT int execveat(int dirfd, const char *path, char *const argv[],
                         char *const envp[], int flags)
{
	struct exec_target t = {.dirfd = dirfd, .path = path, .flags = flags};

	if (exec_hooks_active() && exec_must_supervise(&t))
		return exec_supervised(&t, argv, envp);
	exec_note_setid(&t);
	if (real_execveat)
		return real_execveat(dirfd, path, argv, envp, flags);
	return (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags);
}

SHIM_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	struct exec_target t = {.dirfd = fd, .path = "", .flags = AT_EMPTY_PATH};

	if (exec_hooks_active() && exec_must_supervise(&t))
		return exec_supervised(&t, argv, envp);
	exec_note_setid(&t);
	if (!real_fexecve) {
		errno = ENOSYS;
		return -1;
	}
	return real_fexecve(fd, argv, envp);
}

/*
 * glibc's fallback for a file the kernel would not run (ENOEXEC): /bin/sh
 * with the file and argv[1...]. Returns only on failure; *handed as for
 * exec_path().
 */
static void exec_script(const char *file, char *const argv[], char *const envp[],
                        bool *handed)
{
	char *stack[ARGV_STACK];
	struct exec_mem m;
	size_t argc = 0;

	while (argv && argv[argc])
		argc++;
	char **v = exec_mem_get(&m, stack, sizeof(stack), (argc + 3) * sizeof(char *));
	if (!v)
		return;
	v[0] = (char *)_PATH_BSHELL;
	v[1] = (char *)file;
	for (size_t i = 1; i <= argc; i++)
		v[i + 1] = argv[i];
	if (argc == 0)
		v[2] = NULL;
	exec_path(v[0], v, envp, handed);
	int err = errno;
	exec_mem_put(&m);
	errno = err;
}

/* One $PATH candidate: false to stop the search (errno is the answer). */
static bool try_candidate(const char *cand, char *const argv[], char *const envp[],
                          bool *eacces)
{
	bool handed;

	exec_path(cand, argv, envp, &handed);
	if (!handed && errno == ENOEXEC)
		exec_script(cand, argv, envp, &handed);
	if (handed)
		return false;
	switch (errno) {
	case EACCES:
		*eacces = true;
		return true;
	case ENOENT:
	case ESTALE:
	case ENOTDIR:
	case ENODEV:
	case ETIMEDOUT:
		return true;
	default:
		return false;
	}
}

/* execvpe() as glibc does it, each candidate through exec_path(). */
static int search_exec(const char *file, char *const argv[], char *const envp[])
{
	char buf[PATH_MAX + NAME_MAX + 2];
	bool eacces = false, handed;

	if (*file == '\0') {
		errno = ENOENT;
		return -1;
	}
	if (strchr(file, '/')) {
		exec_path(file, argv, envp, &handed);
		if (!handed && errno == ENOEXEC)
			exec_script(file, argv, envp, &handed);
		return -1;
	}
	size_t flen = strnlen(file, NAME_MAX + 1) + 1;
	if (flen - 1 > NAME_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	const char *path = getenv("PATH");
	for (const char *p = path ? path : DEFAULT_PATH;; p++) {
		const char *end = strchrnul(p, ':');
		size_t n = (size_t)(end - p);
		if (n < PATH_MAX) { /* glibc skips an entry longer than that */
			memcpy(buf, p, n);
			buf[n] = '/';
			memcpy(buf + n + (n > 0), file, flen);
			if (!try_candidate(buf, argv, envp, &eacces))
				return -1;
		}
		if (*end == '\0')
			break;
		p = end;
	}
	if (eacces)
		errno = EACCES;
	return -1;
}

/* execvpe(): the search here when a candidate may need the launcher. */
static int exec_search(const char *file, char *const argv[], char *const envp[])
{
	if (exec_hooks_active())
		return search_exec(file, argv, envp);
	if (!real_execvpe) {
		errno = ENOSYS;
		return -1;
	}
	return real_execvpe(file, argv, envp);
}

SHIM_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return exec_search(file, argv, envp);
}

SHIM_EXPORT int execvp(const char *file, char *const argv[])
{
	return exec_search(file, argv, environ);
}

/* The arguments after execl()'s arg up to the NULL, plus one (glibc's
 * count); -1 (errno E2BIG) for INT_MAX of them. */
static long count_args(va_list ap)
{
	long n = 1;
	while (va_arg(ap, char *))
		if (++n == ARGS_MAX) {
			errno = E2BIG;
			return -1;
		}
	return n;
}

/* execl()'s arguments as a vector, as glibc reads them (arg, then argc
 * more, the NULL last); for execle() also the environment after the NULL. */
static char **collect(struct exec_mem *m, char **stack, size_t cap, const char *arg,
                      long argc, va_list ap, char ***envp)
{
	char **v = exec_mem_get(m, stack, cap, ((size_t)argc + 1) * sizeof(char *));
	if (!v)
		return NULL;
	v[0] = (char *)arg;
	for (long i = 1; i <= argc; i++)
		v[i] = va_arg(ap, char *);
	if (envp)
		*envp = va_arg(ap, char **);
	return v;
}

enum exec_l { EXEC_L, EXEC_LE, EXEC_LP };

/* execl(), execle() or execlp(): ap holds the arguments after arg. */
static int exec_l(enum exec_l how, const char *path, const char *arg, va_list ap)
{
	char *stack[ARGV_STACK], **envp = environ;
	struct exec_mem m;
	va_list counting;

	va_copy(counting, ap);
	long argc = count_args(counting);
	va_end(counting);
	if (argc < 0)
		return -1;
	char **argv = collect(&m, stack, sizeof(stack), arg, argc, ap,
	                      how == EXEC_LE ? &envp : NULL);
	if (!argv)
		return -1;
	int rc = how == EXEC_LP ? exec_search(path, argv, envp)
	                        : exec_file(path, argv, envp);
	int err = errno;
	exec_mem_put(&m);
	errno = err;
	return rc;
}

SHIM_EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	int rc = exec_l(EXEC_L, path, arg, ap);
	va_end(ap);
	return rc;
}

SHIM_EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	int rc = exec_l(EXEC_LE, path, arg, ap);
	va_end(ap);
	return rc;
}

SHIM_EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	va_start(ap, arg);
	int rc = exec_l(EXEC_LP, file, arg, ap);
	va_end(ap);
	return rc;
}

SHIM_EXPORT int posix_spawn(pid_t *pid, const char *path,
                            const posix_spawn_file_actions_t *fa,
                            const posix_spawnattr_t *attr, char *const argv[],
                            char *const envp[])
{
	struct exec_target t = {.dirfd = AT_FDCWD, .path = path, .flags = 0};

	if (exec_hooks_active() && exec_must_supervise(&t))
		return exec_spawn_supervised(pid, path, fa, attr, argv, envp);
	exec_note_setid(&t);
	if (!real_posix_spawn)
		return ENOSYS;
	return real_posix_spawn(pid, path, fa, attr, argv, envp);
}

/* A regular file this process may execute: where the $PATH search of
 * posix_spawnp()'s child stops (it goes on past EACCES and ENOENT). */
static bool spawn_candidate(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) == 0;
}

/* The file posix_spawnp() runs, into buf: file itself when it has a '/',
 * else the first candidate in $PATH (searched as glibc does, in this
 * process's $PATH). false when there is none: the real one then fails. */
static bool spawn_search(const char *file, char *buf)
{
	if (*file == '\0')
		return false;
	if (strchr(file, '/')) {
		strcpy(buf, file); /* shorter than PATH_MAX (the caller checks) */
		return true;
	}
	size_t flen = strnlen(file, NAME_MAX + 1) + 1;
	if (flen - 1 > NAME_MAX)
		return false;
	const char *path = getenv("PATH");
	for (const char *p = path ? path : DEFAULT_PATH;; p++) {
		const char *end = strchrnul(p, ':');
		size_t n = (size_t)(end - p);
		if (n < PATH_MAX) {
			memcpy(buf, p, n);
			buf[n] = '/';
			memcpy(buf + n + (n > 0), file, flen);
			if (spawn_candidate(buf))
				return true;
		}
		if (*end == '\0')
			return false;
		p = end;
	}
}

SHIM_EXPORT int posix_spawnp(pid_t *pid, const char *file,
                             const posix_spawn_file_actions_t *fa,
                             const posix_spawnattr_t *attr, char *const argv[],
                             char *const envp[])
{
	char buf[PATH_MAX + NAME_MAX + 2];
	struct exec_target t = {.dirfd = AT_FDCWD, .path = buf, .flags = 0};
	int saved = errno;

	bool found = false;
	if (exec_hooks_active() && strnlen(file, PATH_MAX) < PATH_MAX &&
	    (found = spawn_search(file, buf)) && exec_must_supervise(&t)) {
		errno = saved;
		return exec_spawn_supervised(pid, buf, fa, attr, argv, envp);
	}
	if (found)
		exec_note_setid(&t);
	errno = saved;
	if (!real_posix_spawnp)
		return ENOSYS;
	return real_posix_spawnp(pid, file, fa, attr, argv, envp);
}
