/* SPDX-License-Identifier: MIT */
/*
 * Several proxies (issue 13): which ones a connection tries and in what
 * order, and which are dead. With chain = strict a TCP connection goes
 * through every proxy in turn (a chain); with failover it takes the first
 * that answers, skipping one that failed less than failover_retry ago; with
 * round-robin the same, starting one further along the list each time. A
 * UDP association is never chained: it takes the first proxy that answers
 * and grants UDP ASSOCIATE, whatever the mode.
 *
 * When a proxy died, and the round-robin counter, live in the fake-DNS pool's
 * shared memory (fakedns_proxy_words), so every process of one launcher run
 * sees them; without a pool, in this process only.
 */
#ifndef SOCKSIFY_SHIM_PROXIES_H
#define SOCKSIFY_SHIM_PROXIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The proxies one connection tries: a chain of n hops, or n alternatives. */
struct proxy_plan {
	uint8_t idx[CONFIG_MAX_PROXIES]; /* indexes into shim_config.proxies */
	uint8_t n;
	bool chain;
};

/* The plan for a new connection (udp: a UDP association). The live proxies
 * in order; when every one is dead, all of them (a dead proxy is tried
 * again rather than none). */
void proxies_plan(struct proxy_plan *pl, bool udp);

/* Proxy i failed to answer (err: -errno, for the log): skipped by every
 * process of the run for failover_retry. */
void proxies_mark_dead(unsigned i, int err);

/* Proxy i is marked dead now. */
bool proxies_dead(unsigned i);

/* The proxy's "host:port" ([v6]:port) into buf; for a chain, every hop
 * joined with " -> ". */
void proxies_format(const struct proxy_plan *pl, int one, char *buf, size_t cap);

/* Tests: forget every dead mark and the counter (of this process's words). */
void proxies_reset_for_tests(void);

#endif
