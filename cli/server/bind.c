/* SPDX-License-Identifier: MIT */
/*
 * BIND for socksify-server (RFC 1928 section 4): listen on the address the
 * client's connection came in on, send the first reply with that address
 * and port, accept one connection — only from the address the request
 * names, when it names one — send the second reply with the peer's address
 * and relay. A peer that does not come within --connect-timeout gets the
 * client a failure reply.
 */
#include "bind.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

static int send_reply(struct conn *c, const struct sockaddr_storage *ss, socklen_t len)
{
	struct socks5_addr a;
	uint8_t reply[SOCKS5_REPLY_MAX];

	if (socks5_addr_from_sockaddr(&a, (const struct sockaddr *)ss, len) < 0)
		return -1;
	size_t n = socks5_reply_encode(reply, sizeof(reply), SOCKS5_REP_SUCCEEDED, &a);
	return conn_send(c, reply, n);
}

static void on_accept(struct loop_watch *w, uint32_t revents);

/* --connect-timeout passed without the peer. */
static void bind_expired(struct conn *c)
{
	conn_fail(c, socks5_rep_from_errno(ETIMEDOUT), "timed out");
}

/* The client is not read until the peer is connected. */
static const struct phase binding = {.on_target = on_accept, .on_timeout = bind_expired};

void bind_start(struct conn *c)
{
	struct server *srv = c->srv;
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	int one = 1, fd = -1, err = 0;

	if (getsockname(c->client.fd, (struct sockaddr *)&local, &len) < 0)
		err = errno;
	((struct sockaddr_in *)&local)->sin_port = 0; /* same offset in sockaddr_in6 */
	if (!err && (fd = socket(local.ss_family,
	                         SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		err = errno;
	if (!err) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&local, len) < 0 || listen(fd, 1) < 0 ||
		    getsockname(fd, (struct sockaddr *)&local, &len) < 0)
			err = errno;
	}
	if (err) {
		if (fd >= 0)
			close(fd);
		conn_fail(c, socks5_rep_from_errno(err), strerror(err));
		return;
	}
	conn_enter(c, &binding);
	loop_watch_init(&c->target, fd, c->target.cb);
	if (loop_watch_set(&srv->loop, &c->target, EPOLLIN) < 0) {
		conn_fail(c, SOCKS5_REP_GENERAL_FAILURE, "epoll failed");
		return;
	}
	if (send_reply(c, &local, len) < 0)
		return;
	c->deadline_ms = srv->loop.now_ms + srv->cfg.connect_timeout_ms;
}

/* The peer the request names: any when its address is all zeros. */
static bool expected_peer(const struct conn *c, const struct sockaddr_storage *peer)
{
	const struct socks5_addr *want = &c->req.addr;
	static const uint8_t zero[16];
	struct socks5_addr got;

	if (want->atyp == SOCKS5_ATYP_DOMAIN)
		return true; /* a name cannot be checked without a lookup: accept */
	size_t alen = want->atyp == SOCKS5_ATYP_IPV4 ? 4 : 16;
	if (memcmp(want->host.ipv6, zero, alen) == 0)
		return true;
	if (socks5_addr_from_sockaddr(&got, (const struct sockaddr *)peer,
	                              sizeof(*peer)) < 0)
		return false;
	if (got.atyp == SOCKS5_ATYP_IPV6 && want->atyp == SOCKS5_ATYP_IPV4 &&
	    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)got.host.ipv6))
		return memcmp(got.host.ipv6 + 12, want->host.ipv4, 4) == 0;
	return got.atyp == want->atyp &&
	       memcmp(got.host.ipv6, want->host.ipv6, alen) == 0;
}

/* The target watch's callback in BIND: the listener is readable. */
static void on_accept(struct loop_watch *w, uint32_t revents)
{
	struct conn *c = conn_of_target(w);
	struct server *srv = c->srv;
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);

	(void)revents;
	int fd = accept4(c->target.fd, (struct sockaddr *)&peer, &len,
	                 SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (!expected_peer(c, &peer)) {
		log_msg(LOG_DEBUG, "BIND: a connection from an unexpected peer, refused");
		close(fd);
		return;
	}
	/* The listener has served its purpose; the accepted socket is the target now. */
	loop_watch_close(&srv->loop, &c->target);
	loop_watch_init(&c->target, fd, c->target.cb);
	c->dest = peer;
	if (send_reply(c, &peer, len) == 0)
		conn_start_relay(c);
}
