/* SPDX-License-Identifier: MIT */
/*
 * The hand-off to the launcher (the protocol is shim/common/handoff.h): the
 * launcher's argv, and the caller's envp with the shim taken out of
 * LD_PRELOAD, built in one block of memory (the caller's stack up to a
 * bound, else mmap()), then execve() or posix_spawn() of the launcher.
 * Nothing here allocates with malloc, locks or uses stdio: it may run in a
 * vfork() child.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "build_config.h"
#include "exec.h"
#include "handoff.h"
#include "log.h"
#include "shim.h"

enum {
	/* bytes of stack for the vectors and strings; beyond, mmap() */
	HANDOFF_STACK = 4096,
	/* entries of argv or envp counted at most (the kernel's own limit on
	 * their total size is far below) */
	VECTOR_MAX = 1 << 22,
	/* the launcher's arguments before the program's: itself, the option,
	 * ARGV0, --exec-fd N, "--", PATH */
	EXTRA_ARGS = 7,
	/* where the --exec-fd descriptor goes when it can */
	EXEC_FD_MIN = 100,
};

/* SOCKSIFY_LAUNCHER as the process started (a program may clear its
 * environment before an exec), and this library's file as the loader has it. */
static char launcher_env[PATH_MAX];
static const char *shim_file;

struct handoff {
	struct exec_mem mem;
	const char *launcher;
	char **argv, **envp;
	int fd; /* the --exec-fd descriptor, or -1 */
	char fdnum[16], proc[EXEC_PROC_FD_LEN];
};

void exec_handoff_init(void)
{
	const char *l = secure_getenv(HANDOFF_ENV_LAUNCHER);
	Dl_info info;

	if (l && strlen(l) < sizeof(launcher_env))
		strcpy(launcher_env, l);
	if (dladdr((void *)exec_handoff_init, &info) && info.dli_fname)
		shim_file = info.dli_fname;
}

void *exec_mem_get(struct exec_mem *m, void *stack, size_t cap, size_t need)
{
	m->mapped = 0;
	m->p = stack;
	if (need <= cap)
		return stack;
	void *p = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	               -1, 0);
	if (p == MAP_FAILED) {
		errno = E2BIG; /* what exec says of arguments that do not fit */
		return m->p = NULL;
	}
	m->mapped = need;
	return m->p = p;
}

void exec_mem_put(struct exec_mem *m)
{
	if (m->mapped)
		munmap(m->p, m->mapped);
	m->mapped = 0;
}

/* Writes v in decimal; returns the end (the NUL). */
static char *fmt_uint(char *buf, unsigned v)
{
	char tmp[12];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*buf++ = tmp[--n];
	*buf = '\0';
	return buf;
}

void exec_proc_fd_path(char *buf, int fd)
{
	fmt_uint(stpcpy(buf, "/proc/self/fd/"), (unsigned)fd);
}

/* Entries of a NULL-terminated vector (NULL: none); -1 when too many. */
static long count(char *const v[])
{
	long n = 0;
	while (v && v[n])
		if (++n > VECTOR_MAX)
			return -1;
	return n;
}

/* entry is "NAME=..." */
static bool has_name(const char *entry, const char *name)
{
	size_t n = strlen(name);
	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

static const char *env_value(char *const envp[], const char *name)
{
	for (size_t i = 0; envp && envp[i]; i++)
		if (has_name(envp[i], name))
			return envp[i] + strlen(name) + 1;
	return NULL;
}

static const char *launcher_path(char *const envp[])
{
	const char *l = env_value(envp, HANDOFF_ENV_LAUNCHER);
	if (l && *l)
		return l;
	return launcher_env[0] ? launcher_env : SOCKSIFY_LAUNCHER_PATH;
}

/* An LD_PRELOAD entry (len bytes) that is this library: its path as loaded,
 * or any file named libsocksify.so (the launcher must not get the hooks). */
static bool is_shim(const char *tok, size_t len)
{
	static const char base[] = "libsocksify.so";
	size_t b = sizeof(base) - 1;

	if (shim_file && strlen(shim_file) == len && memcmp(tok, shim_file, len) == 0)
		return true;
	return len >= b && memcmp(tok + len - b, base, b) == 0 &&
	       (len == b || tok[len - b - 1] == '/');
}

/* "LD_PRELOAD=" and list without the shim (the loader splits the list at
 * spaces and colons) into out; returns the byte after the NUL. */
static char *preload_without_shim(char *out, const char *list)
{
	char *o = stpcpy(out, "LD_PRELOAD="), *start = o;

	for (const char *p = list; *p;) {
		size_t len = strcspn(p, " :");
		if (len && !is_shim(p, len)) {
			if (o != start)
				*o++ = ':';
			memcpy(o, p, len);
			o += len;
		}
		p += len;
		if (*p)
			p++;
	}
	*o++ = '\0';
	return o;
}

/* The caller's environment with LD_PRELOAD (its first entry; later ones
 * dropped) without the shim, and the value it had as SOCKSIFY_LD_PRELOAD;
 * the strings go to str. */
static void fill_envp(char **v, char *const envp[], const char *preload, char *str)
{
	size_t i = 0;
	bool seen = false;

	for (size_t e = 0; envp && envp[e]; e++) {
		if (has_name(envp[e], HANDOFF_ENV_PRELOAD))
			continue;
		if (!has_name(envp[e], "LD_PRELOAD")) {
			v[i++] = envp[e];
		} else if (!seen) {
			seen = true;
			v[i++] = str;
			str = preload_without_shim(str, preload);
		}
	}
	if (preload) {
		v[i++] = str;
		strcpy(stpcpy(str, HANDOFF_ENV_PRELOAD "="), preload);
	}
	v[i] = NULL;
}

/* The path the launcher runs: the caller's, or /proc/self/fd/N for a file
 * known by a descriptor (fexecve(), execveat() from a directory descriptor);
 * N does not close on the exec of the launcher, which closes it on the
 * program's (--exec-fd). */
static int target_path(struct handoff *h, const struct exec_target *t, const char **path)
{
	int src = t->dirfd, own = -1;

	if (t->path[0] && (t->path[0] == '/' || t->dirfd == AT_FDCWD)) {
		*path = t->path;
		return 0;
	}
	if (t->path[0]) {
		int nofollow = (t->flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0;
		src = own = openat(t->dirfd, t->path, O_PATH | O_CLOEXEC | nofollow);
		if (own < 0)
			return -1;
	}
	h->fd = real_fcntl(src, F_DUPFD, EXEC_FD_MIN);
	if (h->fd < 0 && errno == EINVAL) /* RLIMIT_NOFILE below EXEC_FD_MIN */
		h->fd = real_fcntl(src, F_DUPFD, 0);
	int err = errno;
	if (own >= 0)
		real_close(own);
	if (h->fd < 0) {
		errno = err;
		return -1;
	}
	fmt_uint(h->fdnum, (unsigned)h->fd);
	exec_proc_fd_path(h->proc, h->fd);
	*path = h->proc;
	return 0;
}

/* LAUNCHER --exec-supervised ARGV0 [--exec-fd N] -- PATH ARGS... into v;
 * returns the entries written, the NULL included. */
static size_t fill_argv(char **v, const struct handoff *h, const char *path,
                        char *const argv[], long argc)
{
	size_t i = 0;

	v[i++] = (char *)h->launcher;
	v[i++] = (char *)HANDOFF_OPT_EXEC;
	v[i++] = argc > 0 ? argv[0] : (char *)"";
	if (h->fd >= 0) {
		v[i++] = (char *)HANDOFF_OPT_FD;
		v[i++] = (char *)h->fdnum;
	}
	v[i++] = (char *)"--";
	v[i++] = (char *)path;
	for (long a = 1; a < argc; a++)
		v[i++] = argv[a];
	v[i++] = NULL;
	return i;
}

static void handoff_done(struct handoff *h)
{
	if (h->fd >= 0)
		real_close(h->fd);
	exec_mem_put(&h->mem);
}

/* The launcher's argv and envp for the target, in h; -1 with errno. */
static int handoff_build(struct handoff *h, const struct exec_target *t,
                         char *const argv[], char *const envp[], void *stack, size_t cap)
{
	long argc = count(argv), envc = count(envp);
	const char *path, *preload = env_value(envp, "LD_PRELOAD");
	size_t plen = preload ? strlen(preload) : 0;

	h->fd = -1;
	h->launcher = launcher_path(envp);
	if (argc < 0 || envc < 0) {
		errno = E2BIG;
		return -1;
	}
	/* the strings: LD_PRELOAD=... and SOCKSIFY_LD_PRELOAD=..., each at
	 * most as long as the original value and its name */
	/* argv's entries after PATH: argc - 1 and the NULL (with no argv at
	 * all, the NULL alone) */
	size_t vec = (size_t)(argc > 0 ? argc : 1) + EXTRA_ARGS + (size_t)envc + 2;
	char **v =
	        exec_mem_get(&h->mem, stack, cap, vec * sizeof(char *) + 2 * plen + 64);
	if (!v)
		return -1;
	if (target_path(h, t, &path) < 0) {
		exec_mem_put(&h->mem);
		return -1;
	}
	h->argv = v;
	h->envp = v + fill_argv(v, h, path, argv, argc);
	fill_envp(h->envp, envp, preload, (char *)(v + vec));
	return 0;
}

/* One line for a program that does not run: it must not run unsupervised. */
static void refuse(const struct exec_target *t, const char *launcher, int err)
{
	char proc[EXEC_PROC_FD_LEN];
	const char *name = t->path;
	/* strerrordesc_np: no locale, no lock (this may be a vfork() child) */
	const char *why = strerrordesc_np(err);

	if (!name[0]) {
		exec_proc_fd_path(proc, t->dirfd);
		name = proc;
	}
	if (launcher)
		shim_log(SHIM_LOG_ERROR,
		         "cannot supervise %s: cannot run the launcher %s: %s", name,
		         launcher, why ? why : "error");
	else
		shim_log(SHIM_LOG_ERROR, "cannot supervise %s: %s", name,
		         why ? why : "error");
}

int exec_supervised(const struct exec_target *t, char *const argv[], char *const envp[])
{
	void *stack[HANDOFF_STACK / sizeof(void *)];
	struct handoff h;

	if (handoff_build(&h, t, argv, envp, stack, sizeof(stack)) < 0) {
		if (errno == E2BIG)
			return -1;
		refuse(t, NULL, errno);
	} else {
		if (real_execve)
			real_execve(h.launcher, h.argv, h.envp);
		else
			errno = ENOSYS;
		int err = errno;
		handoff_done(&h);
		if (err == E2BIG) {
			errno = E2BIG;
			return -1;
		}
		refuse(t, h.launcher, err);
	}
	errno = EACCES;
	return -1;
}

int exec_spawn_supervised(pid_t *pid, const char *path,
                          const posix_spawn_file_actions_t *fa,
                          const posix_spawnattr_t *attr, char *const argv[],
                          char *const envp[])
{
	void *stack[HANDOFF_STACK / sizeof(void *)];
	struct exec_target t = {.dirfd = AT_FDCWD, .path = path, .flags = 0};
	struct handoff h;
	int saved = errno, rc;

	if (handoff_build(&h, &t, argv, envp, stack, sizeof(stack)) < 0) {
		rc = errno;
		if (rc != E2BIG) {
			refuse(&t, NULL, rc);
			rc = EACCES;
		}
	} else if (access(h.launcher, X_OK) < 0 || !real_posix_spawn) {
		/* the exec's own error would come back as the spawn's */
		rc = real_posix_spawn ? errno : ENOSYS;
		handoff_done(&h);
		refuse(&t, h.launcher, rc);
		rc = EACCES;
	} else {
		rc = real_posix_spawn(pid, h.launcher, fa, attr, h.argv, h.envp);
		handoff_done(&h);
	}
	errno = saved;
	return rc;
}
