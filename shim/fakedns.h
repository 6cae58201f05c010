/* SPDX-License-Identifier: MIT */
/*
 * The fake-DNS pool of the shim. In remote-DNS mode a name the program
 * resolves gets a fake address from a reserved pool (by default IPv4
 * 240.0.0.0/4 and IPv6 100::/64); a later connect() to that address sends
 * the name to the proxy, and a reverse lookup gives the name back. Entry i
 * of the pool is IPv4 base + i + 1 and IPv6 base + i + 1, so a name has the
 * same entry in both families; the network address and the IPv4 broadcast
 * address are never handed out.
 *
 * The pool lives in a sealed memfd mapped MAP_SHARED, so that every process
 * of a program tree sees the same mapping: fork()ed children share the
 * mapping itself, and exec()ed images find the descriptor (kept open across
 * exec, at a high number) through SOCKSIFY_FAKEDNS_FD, which the shim sets
 * from fakedns_fd(). A program that closes every descriptor before exec
 * gives its new image a fresh pool, no longer shared with its ancestors:
 * an address they handed out means nothing there (connect() to it fails
 * with -ENOENT from fakedns_name_for, it is never sent anywhere).
 *
 * Entries are append-only and never recycled: a recycled address could
 * send a connection the program opens to an old name to a new one. A full
 * pool answers -ENOSPC. Lookups take no lock, do no system call and never
 * allocate; only the first lookup of a name takes a robust, process-shared
 * mutex inside the mapping. Every function is thread-safe except
 * fakedns_detach_for_tests().
 */
#ifndef SOCKSIFY_SHIM_FAKEDNS_H
#define SOCKSIFY_SHIM_FAKEDNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The environment variable that carries the pool's descriptor over exec. */
#define FAKEDNS_ENV_FD "SOCKSIFY_FAKEDNS_FD"

enum {
	FAKEDNS_NAME_MAX = 255,       /* longest name, without its NUL */
	FAKEDNS_CAPACITY_MAX = 65536, /* entries in a pool, whatever its size */
	FAKEDNS_FD_MIN = 900,         /* the exported descriptor, out of the way */
};

/*
 * The pool ranges and the inherited descriptor. v4/v6 point at 4 and 16
 * bytes in network order; NULL selects the default range (240.0.0.0/4,
 * 100::/64) and its prefix. A prefix must leave room for two entries
 * (v4_prefix 1..30, v6_prefix 1..126) and the base must have no host bits.
 * inherited_fd is the value of SOCKSIFY_FAKEDNS_FD, or NULL.
 */
struct fakedns_params {
	const uint8_t *v4;
	unsigned v4_prefix;
	const uint8_t *v6;
	unsigned v6_prefix;
	const char *inherited_fd;
};

/*
 * Maps the pool: the inherited one when inherited_fd names an open, sealed
 * memfd holding a pool of this layout and these ranges; otherwise a new one
 * (an inherited descriptor that fails the checks is left alone: it is the
 * program's). Returns 0, or -EINVAL for bad ranges, or the -errno of the
 * failed system call. Idempotent: once attached, later calls return 0 and
 * change nothing, also in a fork()ed child, which keeps its parent's mapping.
 * Call it from the shim's constructor, before main(): fakedns_in_pool() and
 * fakedns_name_for() know no pool before it, and an environment set then is
 * seen by shells that copy the environment at startup.
 */
int fakedns_attach(const struct fakedns_params *p);

/*
 * fakedns_attach() with the ranges of the configuration c (config.h) and the
 * inherited descriptor inherited_fd (NULL: none), then SOCKSIFY_FAKEDNS_FD
 * set to the pool's descriptor, so that the programs this process executes
 * share the pool (the shim's constructor and the supervisor both start the
 * pool so). Returns as fakedns_attach().
 */
struct config;
int fakedns_attach_config(const struct config *c, const char *inherited_fd);

/* The descriptor to export in SOCKSIFY_FAKEDNS_FD, or -1 (not attached, or
 * memfd_create was refused and the pool is shared across fork() only). It is
 * not close-on-exec. */
int fakedns_fd(void);

/* A 64-bit word in the attached pool that every process sharing the pool
 * sees (shim/pipeline.c keeps what the proxy showed it can do there), or
 * NULL when no pool is attached. Zero in a new pool. */
_Atomic uint64_t *fakedns_shared_word(void);

/* FAKEDNS_PROXY_WORDS words in the attached pool that every process sharing
 * it sees (shim/proxies.c: when each proxy is dead until, the round-robin
 * counter), or NULL when no pool is attached. Zero in a new pool. */
enum { FAKEDNS_PROXY_WORDS = 16 };
_Atomic uint64_t *fakedns_proxy_words(void);

/*
 * Writes the fake address of `name` for `family` (AF_INET: 4 bytes,
 * AF_INET6: 16 bytes, network order) to addr_out, allocating an entry on the
 * first lookup of the name. Names compare ASCII-case-insensitively; the
 * spelling of the first lookup is the one kept. Returns 0, or -EINVAL (NULL
 * or empty name, longer than FAKEDNS_NAME_MAX, or a numeric address as
 * getaddrinfo would read it: "10.1", "::1", "fe80::1%eth0"), -EAFNOSUPPORT
 * (another family), -ENOSPC (the pool is full), -ENXIO (not attached), -EIO
 * (the shared pool is corrupt or its lock unrecoverable).
 */
int fakedns_addr_for(const char *name, int family, void *addr_out);

/*
 * If sa (AF_INET, AF_INET6, or a v4-mapped AF_INET6 address of the IPv4
 * pool) is an allocated fake address, copies its name NUL-terminated into
 * name and returns the name's length (> 0; cap FAKEDNS_NAME_MAX + 1 is
 * always enough). Otherwise -ENOENT (inside a pool but not allocated: a
 * stale or forged address), -ERANGE (cap too small), -EINVAL (NULL, or
 * outside both pools, which is every address when no pool is attached) or
 * -EAFNOSUPPORT (another family).
 */
int fakedns_name_for(const struct sockaddr *sa, char *name, size_t cap);

/* True when sa is inside either pool range, allocated or not (a v4-mapped
 * AF_INET6 address of the IPv4 pool counts). False when not attached. */
bool fakedns_in_pool(const struct sockaddr *sa);

/* Unmaps the pool, closes its descriptor and forgets it. Tests only: not
 * thread-safe, and addresses already handed out become unknown. */
void fakedns_detach_for_tests(void);

/* Tests only: called with the pool's lock held, after a new entry is
 * published and before it is indexed by name (so a test can die there). */
extern void (*fakedns_locked_hook_for_tests)(void);

#endif
