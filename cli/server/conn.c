/* SPDX-License-Identifier: MIT */
/*
 * What the phases of a socksify-server connection share: creating it,
 * entering a phase, sending a handshake message, failing with a reply,
 * DRAINING, the relay once a CONNECT or BIND succeeded, closing and the
 * per-connection log line. The other phases are in handshake.c, bind.c and
 * udp.c; they call this file, and it calls none of them.
 */
#include "conn.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "preauth.h"
#include "resolve.h"
#include "sockaddr.h"

enum { DRAIN_TIMEOUT_MS = 2000 }; /* how long a refused client may take to hang up */

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

static void ignore(struct loop_watch *w, uint32_t revents)
{
	(void)w;
	(void)revents;
}

struct conn *conn_new(struct server *srv, int fd, const struct sockaddr_storage *peer,
                      bool refused)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct conn_setup *setup = malloc(sizeof(*setup));
	if (!c || !setup) {
		free(c);
		free(setup);
		close(fd);
		return NULL;
	}
	c->setup = setup;
	c->hs = setup->hs;
	c->addrs = setup->addrs;
	c->srv = srv;
	c->peer = *peer;
	c->start_ms = srv->loop.now_ms;
	c->result = "closed";
	c->rep = -1;
	c->refused = refused;
	loop_watch_init(&c->client, fd, ignore);
	loop_watch_init(&c->target, -1, ignore);
	list_push(&srv->live, c);
	if (refused)
		srv->nrefusing++;
	else
		srv->nconns++;
	return c;
}

void conn_end_setup(struct conn *c)
{
	if (!c->setup)
		return;
	explicit_bzero(c->setup->hs, sizeof(c->setup->hs));
	free(c->setup);
	c->setup = NULL;
	c->hs = NULL;
	c->hs_len = 0;
	c->addrs = NULL;
	c->naddrs = c->next_addr = 0;
}

void conn_enter(struct conn *c, const struct phase *p)
{
	c->phase = p;
	c->client.cb = p->on_client ? p->on_client : ignore;
	c->target.cb = p->on_target ? p->on_target : ignore;
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
	sa_format((const struct sockaddr *)&c->peer, peer, sizeof(peer));
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
		sa_format((const struct sockaddr *)&c->dest, via + 2, sizeof(via) - 3);
		strcat(via, ")");
	}
	char traffic[160];
	if (c->describe)
		c->describe(c, traffic, sizeof(traffic));
	else
		snprintf(traffic, sizeof(traffic),
		         "up %" PRIu64 " down %" PRIu64 " bytes",
		         c->relay.dir[RELAY_CLIENT].bytes,
		         c->relay.dir[RELAY_TARGET].bytes);
	log_msg(LOG_CONN, "%s %s %s%s: %s, %s, %" PRIu64 " ms", peer,
	        socks5_cmd_name(c->req.cmd), dst, via, outcome, traffic, ms);
}

void conn_log_denied(const struct conn *c, const char *cmd, const char *named,
                     const struct sockaddr *dst, const char *action, const char *rule)
{
	char peer[SOCKS5_ADDR_STRLEN], addr[SOCKS5_ADDR_STRLEN];

	if (!log_enabled(LOG_INFO))
		return;
	sa_format((const struct sockaddr *)&c->peer, peer, sizeof(peer));
	sa_format(dst, addr, sizeof(addr));
	if (named)
		log_msg(LOG_INFO, "%s %s %s (%s): %s, denied by %s", peer, cmd, named,
		        addr, action, rule);
	else
		log_msg(LOG_INFO, "%s %s %s: %s, denied by %s", peer, cmd, addr, action,
		        rule);
}

void conn_close(struct conn *c, const char *result)
{
	struct server *srv = c->srv;

	if (c->closed)
		return;
	if (result)
		c->result = result;
	log_conn(c);
	loop_watch_close(&srv->loop, &c->client);
	loop_watch_close(&srv->loop, &c->target);
	if (c->on_close)
		c->on_close(c);
	conn_end_setup(c);
	preauth_leave(c);
	if (c->refused) {
		srv->nrefusing--;
	} else {
		srv->nconns--;
		atomic_fetch_sub_explicit(srv->serving, 1, memory_order_relaxed);
	}
	c->closed = true;
	list_remove(&srv->live, c);
	list_push(&srv->dead, c);
}

void conn_free(struct conn *c)
{
	free(c->udp);
	free(c);
}

int conn_send(struct conn *c, const uint8_t *buf, size_t len)
{
	struct iovec iov[2] = {{c->held, c->nheld}, {(void *)buf, len}};
	struct msghdr mh = {.msg_iov = c->nheld ? iov : iov + 1,
	                    .msg_iovlen = c->nheld ? 2 : 1};
	size_t want = c->nheld + len;
	ssize_t n;
	do
		n = sendmsg(c->client.fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	c->nheld = 0;
	/* A fresh connection's send buffer always has room for a handshake message. */
	if (n != (ssize_t)want) {
		conn_close(c, "client went away during the handshake");
		return -1;
	}
	return 0;
}

static void close_now(struct conn *c)
{
	conn_close(c, NULL);
}

static const struct phase draining = {
        .on_client = conn_discard,
        .on_timeout = close_now,
};

void conn_drain(struct conn *c, const char *result)
{
	struct server *srv = c->srv;

	c->result = result;
	loop_watch_close(&srv->loop, &c->target);
	shutdown(c->client.fd, SHUT_WR);
	conn_end_setup(c);
	conn_enter(c, &draining);
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

/* DRAINING, and a UDP association's control connection: discard what the
 * client still sends until it hangs up. */
void conn_discard(struct loop_watch *w, uint32_t revents)
{
	struct conn *c = conn_of_client(w);
	uint8_t sink[4096];
	ssize_t n = recv(w->fd, sink, sizeof(sink), 0);
	(void)revents;
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		conn_close(c, NULL);
}

void conn_idle_timeout(struct conn *c)
{
	conn_close(c, "idle timeout");
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

static void relay_on_client(struct loop_watch *w, uint32_t revents)
{
	relay_event(conn_of_client(w), RELAY_CLIENT, revents);
}

static void relay_on_target(struct loop_watch *w, uint32_t revents)
{
	relay_event(conn_of_target(w), RELAY_TARGET, revents);
}

static void relay_release(struct conn *c)
{
	relay_free(&c->relay);
}

static const struct phase relaying = {
        .on_client = relay_on_client,
        .on_target = relay_on_target,
        .on_timeout = conn_idle_timeout,
};

/* Called once the outgoing socket is connected (or BIND's peer accepted) and
 * the reply sent. */
void conn_start_relay(struct conn *c)
{
	if (relay_init(&c->relay, c->client.fd, c->target.fd, c->hs, c->hs_len) < 0) {
		conn_close(c, "out of memory");
		return;
	}
	c->on_close = relay_release;
	conn_end_setup(c);
	conn_enter(c, &relaying);
	c->result = "succeeded";
	c->deadline_ms = 0;
	/* Send the client's early data, if any, and set both interest sets. */
	relay_event(c, RELAY_TARGET, EPOLLOUT);
}

void conn_lookup_cancel(struct conn *c)
{
	if (c->job)
		resolve_cancel(c->job);
	c->job = NULL;
}

bool conn_lookup_done(struct conn *c, struct resolve_job *job)
{
	c->job = NULL;
	if (job->err) {
		conn_fail(c, socks5_rep_from_errno(job->err),
		          job->err == ENOENT ? "no such name" : NULL);
		resolve_free(job);
		return false;
	}
	c->naddrs = job->naddrs < CONN_MAX_ADDRS ? job->naddrs : CONN_MAX_ADDRS;
	memcpy(c->addrs, job->addrs, c->naddrs * sizeof(c->addrs[0]));
	resolve_free(job);
	return true;
}
