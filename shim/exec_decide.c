/* SPDX-License-Identifier: MIT */
/*
 * Whether a program the process execs must run under the supervisor (see
 * exec.h): the executable probe on the file, and on the interpreter of a
 * "#!" script (as deep as the kernel follows them). Nothing here allocates,
 * locks or prints: it may run in a vfork() child.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"
#include "exeprobe.h"
#include "handoff.h"
#include "log.h"
#include "shim.h"

/* The kernel follows at most 4 interpreters (fs/exec.c, BINPRM_MAX_RECURSION)
 * and reads a script's first 256 bytes (BINPRM_BUF_SIZE). */
enum { SHEBANG_DEPTH = 4, SHEBANG_BUF = 256 };

/* This process ran under the supervisor when it started, and so will
 * whatever it execs (the filter is inherited and cannot be removed). */
static bool supervised;

void exec_init(void)
{
	supervised = handoff_supervised(secure_getenv(HANDOFF_ENV_SUPERVISED));
	exec_handoff_init();
}

bool exec_hooks_active(void)
{
	shim_init();
	/* supervised at start-up (its environment may be cleared since), or
	 * since: the launcher's own child, when a preloaded process ran the
	 * launcher, execs with the filter installed and the variable set */
	return shim_depth == 0 && shim_config.supervise != CONFIG_SUPERVISE_NEVER &&
	       !supervised && !handoff_supervised(getenv(HANDOFF_ENV_SUPERVISED));
}

static int at_flags(const struct exec_target *t)
{
	return t->flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH);
}

/* The kernel would start the file at all: a regular file this process may
 * execute (fills *st). An error other than EACCES from the access check
 * counts as yes: a launch too many fails closed, one too few would not. */
static bool runnable(const struct exec_target *t, struct stat *st)
{
	if (fstatat(t->dirfd, t->path, st, at_flags(t)) < 0 || !S_ISREG(st->st_mode))
		return false;
	return faccessat(t->dirfd, t->path, X_OK, AT_EACCESS | at_flags(t)) == 0 ||
	       errno != EACCES;
}

static bool setid_mode(mode_t m)
{
	return (m & S_ISUID) || (m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
}

static int open_target(const struct exec_target *t)
{
	/* non-blocking: a FIFO must not hang the exec (which then fails) */
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	if (t->path[0] == '\0' && (t->flags & AT_EMPTY_PATH)) {
		char proc[EXEC_PROC_FD_LEN];
		exec_proc_fd_path(proc, t->dirfd);
		return open(proc, flags);
	}
	if (t->flags & AT_SYMLINK_NOFOLLOW)
		flags |= O_NOFOLLOW;
	return openat(t->dirfd, t->path, flags);
}

/* The interpreter of a "#!" script into buf (NUL-terminated); false when the
 * file does not start with "#!" or names no interpreter that fits. */
static bool shebang(int fd, char *buf, size_t cap)
{
	char head[SHEBANG_BUF];
	ssize_t n = pread(fd, head, sizeof(head), 0);
	if (n < 3 || head[0] != '#' || head[1] != '!')
		return false;
	ssize_t i = 2;
	while (i < n && (head[i] == ' ' || head[i] == '\t'))
		i++;
	size_t len = 0;
	while (i + (ssize_t)len < n && !strchr(" \t\n", head[i + len]) && head[i + len] &&
	       len + 1 < cap)
		len++;
	if (len == 0 || i + (ssize_t)len >= n)
		return false; /* empty, or cut off by the buffer */
	memcpy(buf, head + i, len);
	buf[len] = '\0';
	return true;
}

static bool verdict(const struct exec_target *t, int depth);

/* The file could not be opened for reading: execute-only, or no descriptor
 * left (EMFILE). The exec may still succeed, and nobody can tell whether the
 * program is static: supervised unless set-user-ID or not runnable at all. */
static bool unreadable_verdict(const struct exec_target *t)
{
	struct stat st;
	return runnable(t, &st) && !setid_mode(st.st_mode);
}

static bool verdict(const struct exec_target *t, int depth)
{
	struct exe_probe e;
	struct stat st;
	char interp[SHEBANG_BUF];

	int fd = open_target(t);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return false; /* the exec fails the same way (a $PATH search) */
	if (fd < 0)
		return unreadable_verdict(t);
	int r = exe_probe_fd(fd, &e);
	bool script = r == 0 && !e.elf && shebang(fd, interp, sizeof(interp));
	real_close(fd);
	/* set-user-ID: the exec as it is (the loader ignores LD_PRELOAD, and the
	 * launcher would refuse it); neither ELF nor "#!": the exec fails with
	 * ENOEXEC (exec*p() then run it with /bin/sh, which comes here) */
	if (e.setid || (r == 0 && !e.elf && !script))
		return false;
	bool always = shim_config.supervise == CONFIG_SUPERVISE_ALWAYS;
	if (r < 0 || always || e.is_static || e.go)
		return runnable(t, &st);
	if (!script || depth >= SHEBANG_DEPTH)
		return false;
	struct exec_target it = {.dirfd = AT_FDCWD, .path = interp, .flags = 0};
	return verdict(&it, depth + 1) && runnable(t, &st);
}

bool exec_must_supervise(const struct exec_target *t)
{
	if (!t->path)
		return false; /* the exec answers EFAULT */
	int saved = errno;
	bool yes = verdict(t, 0);
	errno = saved;
	return yes;
}

void exec_note_setid(const struct exec_target *t)
{
	struct stat st;
	int saved = errno;

	/* the loader runs a program in secure mode, LD_PRELOAD ignored, when
	 * the exec changes the user or group: a set-ID file of another owner */
	if (t->path && fstatat(t->dirfd, t->path, &st, at_flags(t)) == 0 &&
	    S_ISREG(st.st_mode) &&
	    (((st.st_mode & S_ISUID) && st.st_uid != getuid()) ||
	     (setid_mode(st.st_mode & ~(mode_t)S_ISUID) && st.st_gid != getgid())))
		shim_log(SHIM_LOG_ERROR,
		         "%s is set-user-ID or set-group-ID: it runs without socksify "
		         "(the loader ignores LD_PRELOAD for it, and the supervisor "
		         "does not take set-ID programs)",
		         t->path[0] ? t->path : "the program");
	errno = saved;
}
