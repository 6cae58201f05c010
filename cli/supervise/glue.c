/* SPDX-License-Identifier: MIT */
/*
 * What the shim's core (policy.c, tcp.c, tcp_hs.c, log.c) takes from the
 * shim's init.c, given by the supervisor instead: the configuration and
 * every real_* pointer, aimed at libc's functions.
 */
#include "sv_glue.h"

#include <dlfcn.h>

#include "log.h"
#include "shim.h"

#define HOOK(ret, name, params) ret(*shim_next_##name) params;
#include "hooks.def"
#undef HOOK

struct config shim_config;
bool shim_config_broken;
__thread int shim_depth;

#ifdef SOCKSIFY_STATIC_LAUNCHER
/*
 * A static launcher: no preload can interpose on it, so the real_* pointers
 * are libc's functions as linked in. The name-lookup hooks are weak
 * references: the core never looks a name up through real_* (policy.c calls
 * getaddrinfo itself), and a strong reference would link the resolver and
 * NSS code for nothing (their real_* stay absent here). A lookup hook added
 * to hooks.def and not listed here fails the static link, not a run.
 */
#pragma weak getnameinfo
#pragma weak gethostbyname
#pragma weak gethostbyname2
#pragma weak gethostbyname_r
#pragma weak gethostbyname2_r
#pragma weak gethostbyaddr
#pragma weak gethostbyaddr_r
#pragma weak res_query
#pragma weak res_search
#pragma weak res_querydomain
#pragma weak res_send
#pragma weak res_nquery
#pragma weak res_nsearch
#pragma weak res_nquerydomain
#pragma weak res_nsend
#pragma weak __res_query
#pragma weak __res_search
#pragma weak __res_querydomain
#pragma weak __res_send
#pragma weak __res_nquery
#pragma weak __res_nsearch
#pragma weak __res_nquerydomain
#pragma weak __res_nsend
/* Every pointer is aimed at start (aim_real): one still NULL is a weak
 * lookup function the link left out. */
void *shim_resolve(void **slot, const char *name, void *self)
{
	(void)name, (void)self;
	__atomic_store_n(slot, SHIM_ABSENT, __ATOMIC_RELEASE);
	return NULL;
}

static void aim_real(void)
{
	/* a weak one absent from the link is NULL: absent on first use */
#define HOOK(ret, name, params) shim_next_##name = (ret(*) params) & name;
#include "hooks.def"
#undef HOOK
}
#else
static void *libc_scope = RTLD_DEFAULT;

void *shim_resolve(void **slot, const char *name, void *self)
{
	void *p = dlsym(libc_scope, name);
	(void)self;
	__atomic_store_n(slot, p ? p : SHIM_ABSENT, __ATOMIC_RELEASE);
	return p;
}

static void aim_real(void)
{
	/* libc's own definitions, also when the launcher itself runs with the
	 * shim preloaded (a preloaded program exec'd it to supervise another):
	 * the supervisor's calls must not go through the shim's hooks. */
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	if (libc)
		libc_scope = libc;
#define HOOK(ret, name, params) shim_resolve((void **)&shim_next_##name, #name, NULL);
#include "hooks.def"
#undef HOOK
}
#endif

void sv_glue_init(const struct config *cfg)
{
	aim_real();
	shim_config = *cfg;
	shim_config_broken = false;
	shim_log_init(&shim_config);
}
