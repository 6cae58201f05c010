/* SPDX-License-Identifier: MIT */
/*
 * socksify-server's connections: the per-connection SOCKS5 state machine,
 * one phase at a time (struct phase)
 *
 *   GREETING → AUTH → REQUEST → RESOLVING → CONNECTING → RELAYING
 *                         ├→ BINDING (bind.c) → RELAYING
 *                         └→ UDP (udp.c)
 *
 * plus DRAINING, where a connection that was answered with a failure (or
 * refused for the connection limit) waits for the client's EOF so that the
 * reply is not destroyed by a reset.
 */
#ifndef SOCKSIFY_SERVER_CONN_H
#define SOCKSIFY_SERVER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"
#include "relay.h"
#include "server.h"
#include "socks5.h"

struct conn;

/*
 * A phase of a connection: what the events on its two watches and its
 * deadline mean. Each phase is a static const struct phase in the file that
 * implements it (handshake.c, bind.c, udp.c; the relay and DRAINING in
 * conn.c), installed with conn_enter(), which points the client and target
 * watches' callbacks at the phase's own: the loop calls the phase directly.
 */
struct phase {
	loop_cb on_client;                  /* NULL: events on c->client are ignored */
	loop_cb on_target;                  /* NULL: events on c->target are ignored */
	void (*on_timeout)(struct conn *c); /* c->deadline_ms passed; required */
};

enum { CONN_HS_BUF = 1024, CONN_MAX_ADDRS = 16 };

struct resolve_job;
struct udp_assoc;

/* What only the handshake needs, allocated apart from the connection and
 * freed when it ends (relay, UDP association, DRAINING or close), so that a
 * held connection does not carry it. */
struct conn_setup {
	uint8_t hs[CONN_HS_BUF];
	struct sockaddr_storage addrs[CONN_MAX_ADDRS];
};

struct conn {
	struct server *srv;
	struct conn *prev, *next; /* in srv->live, or srv->dead once closed */
	const struct phase *phase;
	/* Releases what a phase acquired besides the watches (a lookup, the relay's
	 * buffers, a UDP association); conn_close() calls it. It is not part of the
	 * phase: a phase that fails into DRAINING may still hold what it acquired. */
	void (*on_close)(struct conn *c);
	/* The traffic part of the log line; NULL: the relay's byte counts. */
	void (*describe)(const struct conn *c, char *buf, size_t cap);
	bool closed;                /* conn_close() ran; freed after this batch */
	bool refused;               /* over the connection limit */
	bool have_request;          /* req holds the client's request */
	bool unauth;                /* in srv's pre-authentication list (preauth.h) */
	struct conn *uprev, *unext; /* ... there */
	uint64_t source;            /* ... counted against this source */
	struct loop_watch client, target;
	uint64_t start_ms, deadline_ms; /* deadline 0: none */
	struct sockaddr_storage peer;
	struct conn_setup *setup; /* NULL once the handshake is over */
	/* Handshake bytes not consumed yet (CONN_HS_BUF of room); after the
	 * request, early data. setup->hs, NULL with it. */
	uint8_t *hs;
	size_t hs_len;
	/* Replies held back to go out with the next one: the method and RFC 1929
	 * replies to a client that pipelined its handshake (handshake.c). */
	uint8_t held[4];
	uint8_t nheld;
	struct socks5_request req;
	struct resolve_job *job;
	struct sockaddr_storage *addrs; /* setup->addrs: where to connect */
	size_t naddrs, next_addr;
	int last_err;                 /* of the last failed connect, or 0 */
	const char *denied;           /* the rule that denied an address, or NULL */
	struct sockaddr_storage dest; /* the address connected to */
	const char *result;           /* for the log line */
	int rep;                      /* the failure reply sent, or -1 */
	struct relay relay;
	struct udp_assoc *udp; /* UDP ASSOCIATE */
};

/* conn.c: what the phases share; it calls none of them. */
static inline struct conn *conn_of_client(struct loop_watch *w)
{
	return container_of(w, struct conn, client);
}

static inline struct conn *conn_of_target(struct loop_watch *w)
{
	return container_of(w, struct conn, target);
}

/* A new connection on fd, counted as served or refused and in no phase yet:
 * the caller enters its first. NULL (fd closed) when out of memory. */
struct conn *conn_new(struct server *srv, int fd, const struct sockaddr_storage *peer,
                      bool refused);
/* Frees c->setup (wiping the handshake bytes): the handshake is over. */
void conn_end_setup(struct conn *c);
/* Makes p the connection's phase: its callbacks get the watches' events. */
void conn_enter(struct conn *c, const struct phase *p);
void conn_close(struct conn *c, const char *result);
/* Frees a closed connection, and what its watches live in (the UDP
 * association): the loop frees them after the batch of events in which it
 * closed (server_reap), since a later event of the batch may name a watch. */
void conn_free(struct conn *c);
/* A CONNECT or BIND succeeded and its last reply was sent: relay (with the
 * early data). */
void conn_start_relay(struct conn *c);
/* Answers a failed request with `rep` and drains the client (see DRAINING). */
void conn_fail(struct conn *c, uint8_t rep, const char *result);

/* Name lookups (resolve.h) for CONNECT and BIND. conn_lookup_cancel: the
 * lookup in c->job, if any, is dropped (a phase's timeout or on_close).
 * conn_lookup_done: the finished job's addresses into c->addrs (true), or c
 * failed with the reply its error maps to (false); the job is freed either
 * way. */
void conn_lookup_cancel(struct conn *c);
bool conn_lookup_done(struct conn *c, struct resolve_job *job);
/* Starts draining: shut our write side, read until EOF or a short timeout. */
void conn_drain(struct conn *c, const char *result);
/* Sends a short handshake message, after the replies held back; closes the
 * connection and returns -1 on failure. */
int conn_send(struct conn *c, const uint8_t *buf, size_t len);
/* One line at the default level for a destination the policy denied:
 * "CLIENT CMD NAMED (ADDR:PORT): ACTION, denied by RULE"; named is the
 * request's destination when dst was resolved from a name, else NULL. */
void conn_log_denied(const struct conn *c, const char *cmd, const char *named,
                     const struct sockaddr *dst, const char *action, const char *rule);
/* A client watch callback: discards what the client sends, closes at its EOF. */
void conn_discard(struct loop_watch *w, uint32_t revents);
/* An on_timeout: closes the connection as idle. */
void conn_idle_timeout(struct conn *c);

#endif
