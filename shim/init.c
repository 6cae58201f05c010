/* SPDX-License-Identifier: MIT */
/*
 * One-time initialisation of libsocksify.so: load the configuration. The
 * next definition of each interposed symbol is resolved with
 * dlsym(RTLD_NEXT) on its first use (shim_resolve, SHIM_REAL in shim.h).
 * Runs from the constructor, or from the first hook that is called before
 * it (another library's constructor may call connect() or close() first);
 * pthread_once makes both safe. It starts no thread and installs no
 * signal handler.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "cbind.h"
#include "exec.h"
#include "fakedns.h"
#include "fdtab.h"
#include "log.h"
#include "secret.h"
#include "shim.h"
#include "tcp_bg.h"
#include "udp.h"

#define HOOK(ret, name, params) ret(*shim_next_##name) params;
#include "hooks.def"
#undef HOOK

struct config shim_config;
bool shim_config_broken;
int shim_secret_fd = -1;
__thread int shim_depth;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

void *shim_resolve(void **slot, const char *name, void *self)
{
	void *p = dlsym(RTLD_NEXT, name);
	/* A circular reference (our own symbol again) would recurse forever. */
	if (p == self)
		p = NULL;
	__atomic_store_n(slot, p ? p : SHIM_ABSENT, __ATOMIC_RELEASE);
	return p;
}

/* Remote DNS, or several proxies (whose dead marks and round-robin counter
 * live there too): map the fake-DNS pool (inherited over exec when possible)
 * and pass its descriptor on to the programs this one executes. */
static void attach_fakedns(void)
{
	if (!config_remote_dns(&shim_config) && shim_config.nproxies < 2)
		return;
	int rc = fakedns_attach_config(&shim_config, secure_getenv(FAKEDNS_ENV_FD));
	if (rc < 0)
		shim_log(SHIM_LOG_ERROR,
		         "cannot set up the fake-DNS pool: %s; names will not resolve",
		         strerror(-rc));
}

/* The proxies' credentials (secret.h): when SOCKSIFY_PROXY has a password
 * (the user exported it, or a program set it for its children), moved into a
 * memfd now, so that children inherit no password in their environment (they
 * take the memfd instead, as under the launcher); else the memfd inherited,
 * which config_load() checked, kept for the programs this one executes. */
static void setup_secret(void)
{
	const char *fd_text = secure_getenv(SECRET_ENV_FD);
	const char *url = secure_getenv(CONFIG_ENV_PROXY);

	if (url && *url && secret_list_has_password(url)) {
		int fd = secret_export(&shim_config);
		if (fd >= 0) {
			shim_secret_fd = fd;
			return;
		}
		shim_log(SHIM_LOG_ERROR,
		         "cannot move the proxy password out of the environment: %s",
		         strerror(-fd));
	}
	if (fd_text && *fd_text)
		shim_secret_fd = secret_fd_number(fd_text);
}

/* Once per program tree: the first process that finds the file says so and
 * marks the environment for its descendants. */
static void warn_readable(void)
{
	if (!shim_config.insecure_file[0] || getenv(SECRET_ENV_WARNED))
		return;
	shim_log(SHIM_LOG_ERROR,
	         "warning: %s holds the proxy password and other users may read it "
	         "(chmod go-rwx it)",
	         shim_config.insecure_file);
	setenv(SECRET_ENV_WARNED, "1", 1);
}

static void init_once_fn(void)
{
	char err[CONFIG_ERR_LEN];

	shim_depth++;
	if (config_load(&shim_config, SOCKSIFY_SYSCONF_PATH, secure_getenv, err,
	                sizeof(err)) < 0) {
		shim_config_broken = true;
		config_defaults(&shim_config);
		shim_log_init(&shim_config);
		shim_log(SHIM_LOG_ERROR,
		         "%s; every connection that would be proxied fails", err);
	} else {
		shim_log_init(&shim_config);
		warn_readable();
		setup_secret();
		attach_fakedns();
	}
	exec_init();
	pthread_atfork(NULL, NULL, fdtab_atfork_child);
	udp_init();
	tcp_bg_init();
	cbind_init();
	/* the one resolved here: syscall()'s hook tells by it whether the
	 * initialisation has run (hook_dgram.c) */
	shim_resolve((void **)&shim_next_syscall, "syscall", (void *)syscall);
	shim_depth--;
}

void shim_init(void)
{
	/* A hook reached from inside the initialisation must not wait for it. */
	if (shim_depth == 0)
		pthread_once(&init_once, init_once_fn);
}

__attribute__((constructor)) static void shim_constructor(void)
{
	shim_init();
}
