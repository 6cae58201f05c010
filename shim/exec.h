/* SPDX-License-Identifier: MIT */
/*
 * The exec hooks' core (hook_exec.c has the hooks): whether a program the
 * process execs must run under the supervisor (exec_decide.c), and the
 * hand-off to the launcher that runs it so (exec_handoff.c; the protocol is
 * shim/common/handoff.h).
 *
 * Everything here may run in a vfork() child (vfork + exec, Python's
 * subprocess): no malloc, no stdio, no locks; memory is the stack within a
 * fixed bound, or mmap() beyond it.
 */
#ifndef SOCKSIFY_SHIM_EXEC_H
#define SOCKSIFY_SHIM_EXEC_H

#include <spawn.h>
#include <stdbool.h>
#include <sys/types.h>

/* What a process execs: openat(dirfd, path) with execveat()'s flags
 * (AT_EMPTY_PATH with "" for fexecve(fd)). */
struct exec_target {
	int dirfd;
	const char *path;
	int flags;
};

/* Called once by shim_init(): learns whether this process is supervised
 * already (exec_decide.c) and where the launcher is (exec_handoff_init()). */
void exec_init(void);
void exec_handoff_init(void);

/* false when the hooks leave every exec alone: supervise = never, the
 * process is supervised already (so is what it execs), or the shim itself is
 * running. Costs a getenv() (and a prctl() where the variable is set). */
bool exec_hooks_active(void);

/*
 * Whether the target must run supervised: a static or Go executable (or a
 * script whose interpreter is one), or any program under supervise =
 * always; never a set-user-ID or set-group-ID one. A file that exists and
 * may be executable but cannot be read is supervised (it might be static).
 * One open(), a few pread()s and a close(); errno is kept.
 */
bool exec_must_supervise(const struct exec_target *t);

/* One log line when t is a set-ID program that the exec would run in the
 * loader's secure mode (its owner or group not this process's): the
 * preload does not reach it and the supervisor refuses it. errno kept. */
void exec_note_setid(const struct exec_target *t);

/*
 * Execs the launcher to run the target supervised, with argv and envp (see
 * handoff.h). Returns only on failure: -1 with errno E2BIG (the arguments do
 * not fit), else EACCES after one log line.
 */
int exec_supervised(const struct exec_target *t, char *const argv[], char *const envp[]);

/* The same for posix_spawn(): spawns the launcher instead of path. Returns
 * posix_spawn()'s result (EACCES after one log line when there is no
 * launcher to run). */
int exec_spawn_supervised(pid_t *pid, const char *path,
                          const posix_spawn_file_actions_t *fa,
                          const posix_spawnattr_t *attr, char *const argv[],
                          char *const envp[]);

/* "/proc/self/fd/N" into buf (EXEC_PROC_FD_LEN bytes). */
enum { EXEC_PROC_FD_LEN = 32 };
void exec_proc_fd_path(char *buf, int fd);

/* Memory for a vector of n pointers: the caller's stack buffer (cap bytes)
 * when it is large enough, else mmap(); NULL (errno E2BIG) when neither. */
struct exec_mem {
	void *p;
	size_t mapped; /* bytes to munmap(), 0 for the stack */
};
void *exec_mem_get(struct exec_mem *m, void *stack, size_t cap, size_t need);
void exec_mem_put(struct exec_mem *m);

#endif
