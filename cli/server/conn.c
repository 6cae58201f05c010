/* SPDX-License-Identifier: MIT */
/*
 * Connection lifecycle for socksify-server: accepting clients (and refusing
 * them cleanly over the connection limit), the relay once a CONNECT
 * succeeded, timeouts, draining a failed connection, closing and the
 * per-connection log line. The SOCKS5 handshake itself is in handshake.c.
 */
#include "conn.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "bind.h"
#include "log.h"
#include "resolve.h"
#include "udp.h"

enum {
	DRAIN_TIMEOUT_MS = 2000, /* how long a refused client may take to hang up */
	SWEEP_INTERVAL_MS = 250,
	ACCEPT_BATCH = 64,
	REFUSING_MAX = 64, /* refused clients draining at once; more are just closed */
};

static void on_client(struct loop_watch *w, uint32_t revents);
static void on_target(struct loop_watch *w, uint32_t revents);

static void list_remove(struct conn **head, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void list_push(struct conn **head, struct conn *c)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
}

static void format_sockaddr(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
	struct socks5_addr a;
	if (socks5_addr_from_sockaddr(&a, (const struct sockaddr *)ss, sizeof(*ss)) < 0)
		snprintf(buf, cap, "?");
	else
		socks5_addr_format(&a, buf, cap);
}

/* One line per connection: who, what, the outcome and the bytes each way. */
static void log_conn(const struct conn *c)
{
	char peer[SOCKS5_ADDR_STRLEN], dst[SOCKS5_ADDR_STRLEN],
	        via[SOCKS5_ADDR_STRLEN + 8];
	char outcome[160];
	uint64_t ms = c->srv->loop.now_ms - c->start_ms;

	if (!log_enabled(LOG_CONN))
		return;
	format_sockaddr(&c->peer, peer, sizeof(peer));
	if (c->rep >= 0)
		snprintf(outcome, sizeof(outcome), "reply %d, %s%s%s%s", c->rep,
		         socks5_rep_name((uint8_t)c->rep), c->result ? " (" : "",
		         c->result ? c->result : "", c->result ? ")" : "");
	else
		snprintf(outcome, sizeof(outcome), "%s", c->result);
	if (!c->have_request) {
		log_msg(LOG_CONN, "%s: %s, %" PRIu64 " ms", peer, outcome, ms);
		return;
	}
	socks5_addr_format(&c->req.addr, dst, sizeof(dst));
	via[0] = '\0';
	if (c->dest.ss_family != AF_UNSPEC && c->req.addr.atyp == SOCKS5_ATYP_DOMAIN) {
		strcpy(via, " (");
		format_sockaddr(&c->dest, via + 2, sizeof(via) - 3);
		strcat(via, ")");
	}
	char traffic[160];
	if (c->udp)
		udp_describe(c, traffic, sizeof(traffic));
	else
		snprintf(traffic, sizeof(traffic),
		         "up %" PRIu64 " down %" PRIu64 " bytes",
		         c->relay.dir[RELAY_CLIENT].bytes,
		         c->relay.dir[RELAY_TARGET].bytes);
	log_msg(LOG_CONN, "%s %s %s%s: %s, %s, %" PRIu64 " ms", peer,
	        socks5_cmd_name(c->req.cmd), dst, via, outcome, traffic, ms);
}

void conn_close(struct conn *c, const char *result)
{
	struct server *srv = c->srv;

	if (c->state == CONN_CLOSED)
		return;
	if (result)
		c->result = result;
	log_conn(c);
	loop_watch_close(&srv->loop, &c->client);
	loop_watch_close(&srv->loop, &c->target);
	if (c->job)
		resolve_cancel(c->job);
	c->job = NULL;
	relay_free(&c->relay);
	udp_free(c);
	explicit_bzero(c->hs, sizeof(c->hs));
	if (c->refused)
		srv->nrefusing--;
	else
		srv->nconns--;
	c->state = CONN_CLOSED;
	list_remove(&srv->live, c);
	list_push(&srv->dead, c);
}

void conn_reap(struct server *srv)
{
	while (srv->dead) {
		struct conn *c = srv->dead;
		srv->dead = c->next;
		free(c);
	}
}

int conn_send(struct conn *c, const uint8_t *buf, size_t len)
{
	ssize_t n;
	do
		n = send(c->client.fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	/* A fresh connection's send buffer always has room for a handshake message. */
	if (n != (ssize_t)len) {
		conn_close(c, "client went away during the handshake");
		return -1;
	}
	return 0;
}

void conn_drain(struct conn *c, const char *result)
{
	struct server *srv = c->srv;

	c->result = result;
	loop_watch_close(&srv->loop, &c->target);
	shutdown(c->client.fd, SHUT_WR);
	c->hs_len = 0;
	c->state = CONN_DRAINING;
	c->deadline_ms = srv->loop.now_ms + DRAIN_TIMEOUT_MS;
	if (loop_watch_set(&srv->loop, &c->client, EPOLLIN) < 0)
		conn_close(c, NULL);
}

void conn_fail(struct conn *c, uint8_t rep, const char *result)
{
	uint8_t buf[SOCKS5_REPLY_MAX];
	struct socks5_addr none = {.atyp = SOCKS5_ATYP_IPV4};
	size_t n = socks5_reply_encode(buf, sizeof(buf), rep, &none);

	c->rep = rep;
	if (conn_send(c, buf, n) == 0)
		conn_drain(c, result);
}

/* DRAINING: discard what the client still sends until it hangs up. */
static void drain_read(struct conn *c)
{
	uint8_t sink[4096];
	ssize_t n = recv(c->client.fd, sink, sizeof(sink), 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		conn_close(c, NULL);
}

static void relay_event(struct conn *c, int side, uint32_t revents)
{
	struct server *srv = c->srv;
	int rc = relay_pump(&c->relay, side, revents);

	if (rc <= 0) {
		conn_close(c, rc == 0 ? c->result : strerror(-rc));
		return;
	}
	if (loop_watch_set(&srv->loop, &c->client,
	                   relay_events(&c->relay, RELAY_CLIENT)) < 0 ||
	    loop_watch_set(&srv->loop, &c->target,
	                   relay_events(&c->relay, RELAY_TARGET)) < 0) {
		conn_close(c, "epoll failed");
		return;
	}
	if (srv->cfg.idle_timeout_ms)
		c->deadline_ms = srv->loop.now_ms + srv->cfg.idle_timeout_ms;
}

static void on_client(struct loop_watch *w, uint32_t revents)
{
	struct conn *c = container_of(w, struct conn, client);

	switch (c->state) {
	case CONN_GREETING:
	case CONN_AUTH:
	case CONN_REQUEST:
		handshake_on_client(c);
		break;
	case CONN_RELAYING:
		relay_event(c, RELAY_CLIENT, revents);
		break;
	case CONN_DRAINING:
	case CONN_UDP:
		drain_read(c);
		break;
	case CONN_RESOLVING:
	case CONN_CONNECTING:
	case CONN_BINDING:
	case CONN_CLOSED:
		break;
	}
}

static void on_target(struct loop_watch *w, uint32_t revents)
{
	struct conn *c = container_of(w, struct conn, target);

	switch (c->state) {
	case CONN_CONNECTING:
		handshake_on_target(c, revents);
		break;
	case CONN_BINDING:
		bind_on_accept(c);
		break;
	case CONN_RELAYING:
		relay_event(c, RELAY_TARGET, revents);
		break;
	case CONN_GREETING:
	case CONN_AUTH:
	case CONN_REQUEST:
	case CONN_RESOLVING:
	case CONN_UDP:
	case CONN_DRAINING:
	case CONN_CLOSED:
		break;
	}
}

/* Called by handshake.c once the outgoing socket is connected and the reply sent. */
void conn_start_relay(struct conn *c)
{
	if (relay_init(&c->relay, c->client.fd, c->target.fd, c->hs, c->hs_len) < 0) {
		conn_close(c, "out of memory");
		return;
	}
	c->hs_len = 0;
	c->state = CONN_RELAYING;
	c->result = "succeeded";
	c->deadline_ms = 0;
	/* Send the client's early data, if any, and set both interest sets. */
	relay_event(c, RELAY_TARGET, EPOLLOUT);
}

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void conn_new(struct server *srv, int fd, const struct sockaddr_storage *peer)
{
	bool refuse = srv->nconns >= srv->cfg.max_conns;
	if (refuse && srv->nrefusing >= REFUSING_MAX) {
		close(fd);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->peer = *peer;
	c->start_ms = srv->loop.now_ms;
	c->result = "closed";
	c->rep = -1;
	c->target.fd = -1;
	loop_watch_init(&c->client, fd, on_client);
	loop_watch_init(&c->target, -1, on_target);
	list_push(&srv->live, c);
	set_nodelay(fd);
	if (refuse) {
		static const uint8_t no_method[] = {SOCKS5_VERSION,
		                                    SOCKS5_METHOD_UNACCEPTABLE};
		c->refused = true;
		srv->nrefusing++;
		if (conn_send(c, no_method, sizeof(no_method)) == 0)
			conn_drain(c, "refused: connection limit reached");
		return;
	}
	srv->nconns++;
	c->state = CONN_GREETING;
	c->deadline_ms = srv->loop.now_ms + srv->cfg.handshake_timeout_ms;
	if (loop_watch_set(&srv->loop, &c->client, EPOLLIN) < 0)
		conn_close(c, "epoll failed");
}

static void pause_listeners(struct server *srv, bool pause)
{
	for (size_t i = 0; i < srv->nlisteners; i++)
		loop_watch_set(&srv->loop, &srv->listeners[i].watch, pause ? 0 : EPOLLIN);
	srv->listeners_paused = pause;
}

void conn_accept(struct loop_watch *w, uint32_t revents)
{
	struct listener *li = container_of(w, struct listener, watch);
	struct server *srv = li->srv;
	(void)revents;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(w->fd, (struct sockaddr *)&peer, &len,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_new(srv, fd, &peer);
			continue;
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

int conn_poll_timeout(const struct server *srv)
{
	return srv->live || srv->listeners_paused ? SWEEP_INTERVAL_MS : -1;
}

void conn_sweep(struct server *srv)
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
		switch (c->state) {
		case CONN_GREETING:
		case CONN_AUTH:
		case CONN_REQUEST:
			conn_close(c, "handshake timeout");
			break;
		case CONN_RESOLVING:
		case CONN_CONNECTING:
		case CONN_BINDING:
			handshake_timeout(c);
			break;
		case CONN_RELAYING:
		case CONN_UDP:
			conn_close(c, "idle timeout");
			break;
		case CONN_DRAINING:
		case CONN_CLOSED:
			conn_close(c, NULL);
			break;
		}
	}
}
