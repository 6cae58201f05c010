/* SPDX-License-Identifier: MIT */
/* Stand-ins for init.c's globals (see shim_support.h). */
#include "shim_support.h"

#include <dlfcn.h>

#define HOOK(ret, name, params) ret(*real_##name) params;
#include "hooks.def"
#undef HOOK

struct config shim_config;
bool shim_config_broken;
__thread int shim_depth;

void shim_support_init(void)
{
	/* The test defines none of these, so the default scope finds libc's. */
#define HOOK(ret, name, params) real_##name = (ret(*) params)dlsym(RTLD_DEFAULT, #name);
#include "hooks.def"
#undef HOOK
	config_defaults(&shim_config);
	/* no probe thread against the scripted proxies (test_pipeline sets auto) */
	shim_config.pipeline = CONFIG_PIPELINE_OFF;
	shim_config_broken = false;
}
