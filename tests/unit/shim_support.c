/* SPDX-License-Identifier: MIT */
/* Stand-ins for init.c's globals (see shim_support.h). */
#include "shim_support.h"

#include <dlfcn.h>

#define HOOK(ret, name, params) ret(*shim_next_##name) params;
#include "hooks.def"
#undef HOOK

struct config shim_config;
bool shim_config_broken;
int shim_secret_fd = -1;
__thread int shim_depth;

void *shim_resolve(void **slot, const char *name, void *self)
{
	void *p = dlsym(RTLD_DEFAULT, name);
	(void)self;
	__atomic_store_n(slot, p ? p : SHIM_ABSENT, __ATOMIC_RELEASE);
	return p;
}

void shim_support_init(void)
{
	/* The test defines none of these, so the default scope finds libc's. */
#define HOOK(ret, name, params) shim_resolve((void **)&shim_next_##name, #name, NULL);
#include "hooks.def"
#undef HOOK
	config_defaults(&shim_config);
	/* no probe thread against the scripted proxies (test_pipeline sets auto) */
	shim_config.pipeline = CONFIG_PIPELINE_OFF;
	shim_config_broken = false;
}
