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

#define HOOK(ret, name, params) ret(*real_##name) params;
#include "hooks.def"
#undef HOOK

struct config shim_config;
bool shim_config_broken;
__thread int shim_depth;

void sv_glue_init(const struct config *cfg)
{
	/* libc's own definitions, also when the launcher itself runs with the
	 * shim preloaded (a preloaded program exec'd it to supervise another):
	 * the supervisor's calls must not go through the shim's hooks. */
	void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
	void *scope = libc ? libc : RTLD_DEFAULT;
#define HOOK(ret, name, params) real_##name = (ret(*) params)dlsym(scope, #name);
#include "hooks.def"
#undef HOOK
	shim_config = *cfg;
	shim_config_broken = false;
	shim_log_init(&shim_config);
}
