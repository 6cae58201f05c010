/* SPDX-License-Identifier: MIT */
/*
 * socksify-server's state per event loop (configuration, listeners, the
 * lists of connections) and the work that belongs to no connection's phase:
 * accepting clients (the listeners' watch callback) and, after each batch
 * of events, the timeout sweep and freeing the connections closed in it.
 */
#ifndef SOCKSIFY_SERVER_SERVER_H
#define SOCKSIFY_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "acl.h"
#include "loop.h"
#include "users.h"

enum { SERVER_MAX_LISTEN = 16 };

struct server_config {
	struct sockaddr_storage listen[SERVER_MAX_LISTEN];
	size_t nlisten;
	struct sockaddr_storage bind4, bind6; /* -b, per family */
	bool have_bind4, have_bind6;
	const struct server_user *users; /* -u, --users: shared by the loops */
	size_t nusers;
	bool allow_open;
	unsigned handshake_timeout_ms;
	unsigned connect_timeout_ms;
	unsigned idle_timeout_ms; /* 0: none */
	unsigned max_conns;
	unsigned max_unauth;            /* not authenticated yet, all loops (preauth.h) */
	unsigned max_unauth_per_source; /* ... from one IPv4 address or IPv6 /64 */
	struct acl acl;
};

struct listener {
	struct loop_watch watch;
	struct server *srv;
};

struct conn;

/* One event loop (-j N runs N, one thread each): its own copy of the
 * configuration, epoll set, listeners and connections. Loops share nothing
 * they write but the log, the pool of name-lookup threads (resolve.c) and
 * the count of connections served, an atomic counter against --max-conns
 * (one atomic add per accepted client, no lock). */
struct server {
	struct server_config cfg;
	struct loop loop;
	unsigned id;            /* 0 .. loops - 1 */
	struct loop_watch wake; /* an eventfd: written to stop this loop (loops.c) */
	unsigned long served;   /* clients accepted */
	unsigned defer_ms;      /* TCP_DEFER_ACCEPT on the listeners, 0: none */
	struct listener listeners[SERVER_MAX_LISTEN];
	size_t nlisteners;
	bool listeners_paused; /* after EMFILE, until the next sweep */
	struct conn *live;     /* every connection not yet closed */
	struct conn *dead;     /* closed in this batch, freed after it */
	unsigned nconns;       /* live connections being served by this loop */
	atomic_uint *serving;  /* ... by all loops, against cfg.max_conns */
	unsigned nrefusing;    /* live connections being refused */
	/* Connections not authenticated yet, oldest first (preauth.c): at most
	 * unauth_share, this loop's part of cfg.max_unauth. */
	struct conn *unauth_head, *unauth_tail;
	unsigned nunauth, unauth_share;
	uint64_t next_sweep_ms;
};

/* Accepts every pending client on a listener (the listener's watch callback). */
void server_accept(struct loop_watch *w, uint32_t revents);
/* Runs the on_timeout of connections past their deadline and resumes paused
 * listeners; call after every batch of events. */
void server_sweep(struct server *srv);
/* Frees the connections closed during the last batch of events. */
void server_reap(struct server *srv);
/* How long the loop may sleep: -1 when nothing has a deadline. */
int server_poll_timeout(const struct server *srv);

/* The -b source address for an outgoing socket of `family`: the one given,
 * NULL when -b gave none at all (any source), or -ENETUNREACH in *err when
 * -b names only the other family. */
const struct sockaddr_storage *server_source(const struct server_config *cfg, int family,
                                             int *err);

#endif
