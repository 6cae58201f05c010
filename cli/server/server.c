/* SPDX-License-Identifier: MIT */
/*
 * What socksify-server's main loop does around the phases: accepting
 * clients (and refusing them cleanly over the connection limit), the sweep
 * that runs the on_timeout of every connection past its deadline, and
 * freeing the connections closed during a batch of events.
 */
#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "conn.h"
#include "handshake.h"
#include "log.h"
#include "preauth.h"
#include "sockaddr.h"

enum {
	SWEEP_INTERVAL_MS = 250,
	ACCEPT_TRIES = 64, /* accept4 calls that fail with EINTR or ECONNABORTED */
	REFUSING_MAX = 64, /* refused clients draining at once; more are just closed */
};

/* Over --max-conns: "no acceptable method", then the drain. */
static void refuse(struct conn *c)
{
	static const uint8_t no_method[] = {SOCKS5_VERSION, SOCKS5_METHOD_UNACCEPTABLE};
	if (conn_send(c, no_method, sizeof(no_method)) == 0)
		conn_drain(c, "refused: connection limit reached");
}

/* A source over --max-unauth-per-source: its new connection is reset at
 * once (its older ones may be on other loops; this one costs nothing). */
static void drop_source(struct server *srv, int fd, const struct sockaddr_storage *peer)
{
	char name[SOCKS5_ADDR_STRLEN];
	preauth_reset(fd);
	close(fd);
	if (!log_enabled(LOG_CONN))
		return;
	sa_format((const struct sockaddr *)peer, name, sizeof(name));
	log_msg(LOG_CONN, "%s: reset: %u connections from this source in their handshake",
	        name, srv->cfg.max_unauth_per_source);
}

/*
 * Counted before it is served: two loops cannot both take the last place.
 * A new client in its handshake is never refused for older ones that are
 * still in theirs: over --max-conns the loop's oldest of those makes room
 * (and only when it has none is the client refused), and over this loop's
 * part of --max-unauth the oldest goes too.
 */
static void accept_one(struct server *srv, int fd, const struct sockaddr_storage *peer)
{
	uint64_t source = preauth_source(peer);

	srv->served++;
	if (!preauth_source_take(source, srv->cfg.max_unauth_per_source)) {
		drop_source(srv, fd, peer);
		return;
	}
	bool over = atomic_fetch_add_explicit(srv->serving, 1, memory_order_relaxed) >=
	            srv->cfg.max_conns;
	/* The shed connection's close gives its place back: this one keeps its. */
	if (over && preauth_shed_oldest(srv, "shed: connection limit reached"))
		over = false;
	if (over) {
		atomic_fetch_sub_explicit(srv->serving, 1, memory_order_relaxed);
		preauth_source_put(source);
	} else if (srv->nunauth >= srv->unauth_share) {
		preauth_shed_oldest(srv, "shed: pre-authentication budget full");
	}
	if (over && srv->nrefusing >= REFUSING_MAX) {
		close(fd);
		return;
	}
	struct conn *c = conn_new(srv, fd, peer, over);
	if (!c) {
		if (!over) {
			atomic_fetch_sub_explicit(srv->serving, 1, memory_order_relaxed);
			preauth_source_put(source);
		}
		return;
	}
	/* TCP_NODELAY comes from the listener. */
	if (over) {
		refuse(c);
		return;
	}
	preauth_enter(c, source);
	handshake_start(c);
}

static void pause_listeners(struct server *srv, bool pause)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		loop_watch_set(&srv->loop, &srv->listeners[i].watch, pause ? 0 : EPOLLIN);
	srv->listeners_paused = pause;
}

void server_accept(struct loop_watch *w, uint32_t revents)
{
	struct listener *li = container_of(w, struct listener, watch);
	struct server *srv = li->srv;
	(void)revents;

	for (int i = 0; i < ACCEPT_TRIES; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(w->fd, (struct sockaddr *)&peer, &len,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			/* One client per wake-up: the listener is level-triggered, so
			 * more waiting ones wake the loop again at once, with the other
			 * events, and a lone client costs no accept4 that finds none. */
			accept_one(srv, fd, &peer);
			return;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			/* Out of descriptors: stop accepting until the next sweep. */
			log_msg(LOG_ERROR, "accept: %s; pausing for %d ms",
			        strerror(errno), SWEEP_INTERVAL_MS);
			pause_listeners(srv, true);
		}
		return;
	}
}

int server_poll_timeout(const struct server *srv)
{
	return srv->live || srv->listeners_paused ? SWEEP_INTERVAL_MS : -1;
}

void server_sweep(struct server *srv)
{
	uint64_t now = srv->loop.now_ms;

	if (now < srv->next_sweep_ms)
		return;
	srv->next_sweep_ms = now + SWEEP_INTERVAL_MS;
	if (srv->listeners_paused)
		pause_listeners(srv, false);
	for (struct conn *c = srv->live, *next; c; c = next) {
		next = c->next;
		if (c->deadline_ms == 0 || now < c->deadline_ms)
			continue;
		c->phase->on_timeout(c);
	}
}

void server_reap(struct server *srv)
{
	while (srv->dead) {
		struct conn *c = srv->dead;
		srv->dead = c->next;
		conn_free(c);
	}
}

const struct sockaddr_storage *server_source(const struct server_config *cfg, int family,
                                             int *err)
{
	*err = 0;
	if (family == AF_INET && cfg->have_bind4)
		return &cfg->bind4;
	if (family == AF_INET6 && cfg->have_bind6)
		return &cfg->bind6;
	if (cfg->have_bind4 || cfg->have_bind6)
		*err = -ENETUNREACH;
	return NULL;
}
