/* SPDX-License-Identifier: MIT */
/*
 * socksify-server's event loops (-j N): each has its own listening sockets,
 * bound to the same addresses with SO_REUSEPORT so that the kernel spreads
 * new clients over them, and runs on its own thread (loop 0 on the main
 * thread). Stopping one stops them all.
 */
#ifndef SOCKSIFY_SERVER_LOOPS_H
#define SOCKSIFY_SERVER_LOOPS_H

#include "server.h"

enum { LOOPS_MAX = 64, LOOPS_DEFAULT_MAX = 8 };

/* The default -j: the CPUs this process may run on, at most LOOPS_DEFAULT_MAX. */
unsigned loops_default(void);
/* Prepares n servers from cfg (sharing one count against --max-conns): their
 * epoll sets, name-lookup queues and wake-up eventfds. Returns 0 or -errno. */
int loops_init(struct server *srvs, unsigned n, const struct server_config *cfg);
/* Opens every -l address on every loop and logs "listening on ADDR:PORT"
 * once per address; on failure prints one line and exits with status 1. */
void loops_listen(struct server *srvs, unsigned n);
/* Runs loops 1 .. n-1 on their own threads and loop 0 on this one until
 * loops_stop(); returns 0, or -1 when a loop failed. */
int loops_run(struct server *srvs, unsigned n);
/* Asks every loop to stop (from any of them). */
void loops_stop(void);

#endif
