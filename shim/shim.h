/* SPDX-License-Identifier: MIT */
/*
 * Internal interface of libsocksify.so: the real_* pointers to the next
 * definition of every interposed symbol, one-time initialisation, the
 * per-thread re-entrancy guard and the immutable configuration.
 *
 * Every exported hook makes sure the library is initialised (shim_init())
 * and passes straight through while the shim itself is on the thread's
 * stack (shim_depth > 0). Only the name-lookup hooks hold the guard for
 * their whole run (shim_enter()/shim_leave()): they call into libc, which
 * may call the hooks again. The socket hooks never hold it across a call
 * that can block (the handshake, a receive): a signal handler that runs
 * meanwhile, or a siglongjmp out of the call, must find the shim working.
 * Code that calls into libc from them raises it for that call only.
 */
#ifndef SOCKSIFY_SHIM_H
#define SOCKSIFY_SHIM_H

#include <netdb.h>
#include <poll.h>
#include <resolv.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config.h"

/* Each hook's prototype, and the pointer to the next definition: NULL until
 * first used, SHIM_ABSENT when there is none. */
#define HOOK(ret, name, params)                                                          \
	ret name params;                                                                 \
	extern ret(*shim_next_##name) params;
#include "hooks.def"
#undef HOOK

#define SHIM_ABSENT ((void *)1)

/* Resolves *slot, the next definition of the hook name (self: the shim's
 * own, never taken), and stores it there: the definition or NULL. Thread-safe
 * (the threads that race store the same value), and as safe in a signal
 * handler as lazy binding of the PLT is. */
void *shim_resolve(void **slot, const char *name, void *self);

static inline void *shim_next(void **slot, const char *name, void *self)
{
	void *p = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
	if (__builtin_expect(p == NULL, 0))
		return shim_resolve(slot, name, self);
	return p == SHIM_ABSENT ? NULL : p;
}

/* real_NAME (shim_real.h, generated from hooks.def): the next definition of
 * NAME, resolved on first use: a process that never calls a hook never pays
 * for its dlsym (73 of them took ~20 us at every start). */
#define SHIM_REAL(name)                                                                  \
	((__typeof__(shim_next_##name))shim_next((void **)&shim_next_##name, #name,      \
	                                         (void *)name))
#include "shim_real.h"

#define SHIM_EXPORT __attribute__((visibility("default")))

/* The configuration, loaded once; never changes afterwards. */
extern struct config shim_config;
/* The configuration could not be loaded: every connection that would have
 * been proxied fails instead (fail closed). */
extern bool shim_config_broken;
/* The memfd with the proxy's credentials (secret.h), which the close hooks
 * keep open for the programs this one executes; -1 when none. */
extern int shim_secret_fd;

/* Initialises once (thread-safe, callable from any hook at any time). */
void shim_init(void);

/* Re-entrancy guard: true while the shim runs on this thread. */
extern __thread int shim_depth;

/* Returns true when the hook should do its own work (and then must call
 * shim_leave()); false when it must pass straight through. */
static inline bool shim_enter(void)
{
	shim_init();
	if (shim_depth > 0 || !real_connect)
		return false;
	shim_depth++;
	return true;
}

static inline void shim_leave(void)
{
	shim_depth--;
}

#endif
