/* SPDX-License-Identifier: MIT */
/*
 * BIND for socksify-server (RFC 1928 section 4). The request's address is
 * the peer expected to connect: its family is the listener's (a v4-mapped
 * IPv6 address is IPv4; a name is resolved first, off the loop, and the
 * first address decides, the peer may be any of them). The listener is on
 * the outgoing side, where that peer can reach it: the -b address of its
 * family, else the local address the route to the peer uses. A request for
 * any peer (0.0.0.0 or ::) gets the -b address of the control connection's
 * family (else of the other one), else a dual-stack wildcard listener.
 * The first reply names the address and port listened on (for a wildcard,
 * the address the client reached), one connection is accepted — only from
 * the expected peer — the second reply names it and the relay starts. A
 * peer that does not come within --connect-timeout gets the client a
 * failure reply.
 */
#include "bind.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "resolve.h"
#include "sockaddr.h"

/* Where to listen: `at` (port 0); a wildcard listener reports `shown`. */
struct bind_plan {
	union sa_any at, shown;
	bool wildcard;
};

/* An IPv4 address for a v4-mapped one, else a copy. */
static void unmap(const struct sockaddr *sa, union sa_any *out)
{
	if (!sa_ipv4(sa) || !sa_to_family(sa, sa_len(sa), AF_INET, out))
		memcpy(out, sa, sa_len(sa));
}

static int send_reply(struct conn *c, const struct sockaddr *sa)
{
	struct socks5_addr a;
	uint8_t reply[SOCKS5_REPLY_MAX];
	union sa_any u;

	unmap(sa, &u);
	if (socks5_addr_from_sockaddr(&a, &u.sa, sa_len(&u.sa)) < 0)
		return -1;
	size_t n = socks5_reply_encode(reply, sizeof(reply), SOCKS5_REP_SUCCEEDED, &a);
	return conn_send(c, reply, n);
}

/* The local address the kernel would send from to reach `peer`: a connected
 * UDP socket sends nothing. 0 or -errno (no route). */
static int route_source(const union sa_any *peer, union sa_any *out)
{
	union sa_any to = *peer;
	socklen_t len = sizeof(*out);
	int rc = 0;

	if (sa_port(&to.sa) == 0)
		sa_set_port(&to.sa, 9); /* any port: the route does not depend on it */
	int fd = socket(to.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, &to.sa, sa_len(&to.sa)) < 0 ||
	    getsockname(fd, &out->sa, &len) < 0)
		rc = -errno;
	close(fd);
	sa_set_port(&out->sa, 0);
	return rc;
}

/* Any peer: -b of the control connection's family, else of the other, else
 * [::] taking both families (0.0.0.0 without IPv6), shown as the address
 * the client reached. */
static int plan_any(const struct conn *c, struct bind_plan *p)
{
	const struct server_config *cfg = &c->srv->cfg;
	union sa_any local;
	socklen_t len = sizeof(local);

	if (getsockname(c->client.fd, &local.sa, &len) < 0)
		return -errno;
	unmap(&local.sa, &p->shown);
	sa_set_port(&p->shown.sa, 0);
	bool v4 = p->shown.sa.sa_family == AF_INET;
	const struct sockaddr_storage *b = v4 ? (cfg->have_bind4 ? &cfg->bind4 : NULL)
	                                      : (cfg->have_bind6 ? &cfg->bind6 : NULL);
	if (!b)
		b = cfg->have_bind4 ? &cfg->bind4 : cfg->have_bind6 ? &cfg->bind6 : NULL;
	memset(&p->at, 0, sizeof(p->at));
	if (b) {
		memcpy(&p->at, b, sa_len((const struct sockaddr *)b));
		return 0;
	}
	p->wildcard = true;
	p->at.v6.sin6_family = AF_INET6; /* in6addr_any */
	return 0;
}

/* The peer c->addrs[0]: -b of its family, else the route's source. */
static int plan_peer(const struct conn *c, struct bind_plan *p)
{
	union sa_any peer;
	int err;

	unmap((const struct sockaddr *)&c->addrs[0], &peer);
	const struct sockaddr_storage *b =
	        server_source(&c->srv->cfg, peer.sa.sa_family, &err);
	if (err)
		return err;
	if (!b)
		return route_source(&peer, &p->at);
	memcpy(&p->at, b, sa_len((const struct sockaddr *)b));
	return 0;
}

/* A listening socket as planned: the fd or -errno. */
static int listen_on(struct bind_plan *p)
{
	int one = 1, zero = 0, err = 0;
	int fd =
	        socket(p->at.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && p->wildcard && errno == EAFNOSUPPORT) {
		memset(&p->at, 0, sizeof(p->at)); /* no IPv6 here: 0.0.0.0 */
		p->at.v4.sin_family = AF_INET;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (p->at.sa.sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, p->wildcard ? &zero : &one,
		           sizeof(one));
	socklen_t len = sizeof(p->at);
	if (bind(fd, &p->at.sa, sa_len(&p->at.sa)) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, &p->at.sa, &len) < 0)
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	if (p->wildcard)
		sa_set_port(&p->shown.sa, sa_port(&p->at.sa));
	return fd;
}

static void on_accept(struct loop_watch *w, uint32_t revents);

/* --connect-timeout passed without the peer (or its name's addresses). */
static void bind_expired(struct conn *c)
{
	conn_lookup_cancel(c);
	conn_fail(c, socks5_rep_from_errno(ETIMEDOUT), "timed out");
}

/* The client is not read until the peer is connected. */
static const struct phase binding = {.on_target = on_accept, .on_timeout = bind_expired};

/* The destination policy on the expected peers, by address (a peer's port is
 * not known before it connects): a denied one is logged and dropped from
 * c->addrs. False, with reply 2 sent, when every one was denied. */
static bool peers_permitted(struct conn *c)
{
	char named[SOCKS5_ADDR_STRLEN];
	bool name = c->req.addr.atyp == SOCKS5_ATYP_DOMAIN;
	const char *rule = NULL;
	size_t kept = 0;

	if (name)
		socks5_addr_format(&c->req.addr, named, sizeof(named));
	for (size_t i = 0; i < c->naddrs; i++) {
		struct sockaddr_storage host = c->addrs[i];
		sa_set_port((struct sockaddr *)&host, 0);
		const char *r = acl_check(&c->srv->cfg.acl,
		                          (const struct sockaddr *)&host, ACL_OTHER);
		if (!r) {
			c->addrs[kept++] = c->addrs[i];
			continue;
		}
		rule = r;
		conn_log_denied(c, "BIND", name ? named : NULL,
		                (const struct sockaddr *)&c->addrs[i],
		                name ? "address skipped" : "refused", r);
	}
	if (c->naddrs > 0 && kept == 0) {
		conn_fail(c, SOCKS5_REP_NOT_ALLOWED, rule);
		return false;
	}
	c->naddrs = kept;
	return true;
}

/* Listens where the expected peer (c->addrs, none: any) can connect, sends
 * the first reply and waits for the peer. */
static void bind_listen(struct conn *c)
{
	struct server *srv = c->srv;
	struct bind_plan p = {0};

	if (!peers_permitted(c))
		return;
	int rc = c->naddrs ? plan_peer(c, &p) : plan_any(c, &p);
	int fd = rc < 0 ? rc : listen_on(&p);
	if (fd < 0) {
		conn_fail(c, socks5_rep_from_errno(-fd), strerror(-fd));
		return;
	}
	conn_enter(c, &binding);
	loop_watch_init(&c->target, fd, c->target.cb);
	if (loop_watch_set(&srv->loop, &c->target, EPOLLIN) < 0) {
		conn_fail(c, SOCKS5_REP_GENERAL_FAILURE, "epoll failed");
		return;
	}
	if (send_reply(c, p.wildcard ? &p.shown.sa : &p.at.sa) < 0)
		return;
	c->deadline_ms = srv->loop.now_ms + srv->cfg.connect_timeout_ms;
}

static void on_resolved(void *owner, struct resolve_job *job)
{
	struct conn *c = owner;

	if (conn_lookup_done(c, job))
		bind_listen(c);
}

static const struct phase bind_resolving = {.on_timeout = bind_expired};

void bind_start(struct conn *c)
{
	struct server *srv = c->srv;

	c->naddrs = 0;
	if (c->req.addr.atyp == SOCKS5_ATYP_DOMAIN) {
		conn_enter(c, &bind_resolving);
		c->deadline_ms = srv->loop.now_ms + srv->cfg.connect_timeout_ms;
		c->on_close = conn_lookup_cancel;
		c->job = resolve_start(c->req.addr.host.domain, c->req.addr.port, c,
		                       on_resolved);
		if (!c->job)
			conn_fail(c, SOCKS5_REP_GENERAL_FAILURE,
			          "too many name lookups waiting");
		return;
	}
	socks5_addr_to_sockaddr(&c->req.addr, &c->addrs[0]);
	if (!sa_unspecified((const struct sockaddr *)&c->addrs[0]))
		c->naddrs = 1;
	bind_listen(c);
}

/* One of the expected peers (c->addrs), or any when there are none. */
static bool expected_peer(const struct conn *c, const struct sockaddr_storage *peer)
{
	if (c->naddrs == 0)
		return true;
	for (size_t i = 0; i < c->naddrs; i++)
		if (sa_same_host((const struct sockaddr *)&c->addrs[i],
		                 (const struct sockaddr *)peer))
			return true;
	return false;
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
	/* Any peer: each one that comes is judged, by its address alone. */
	struct sockaddr_storage host = peer;
	sa_set_port((struct sockaddr *)&host, 0);
	const char *rule =
	        acl_check(&srv->cfg.acl, (const struct sockaddr *)&host, ACL_OTHER);
	if (rule) {
		union sa_any
		        shown; /* a v4-mapped peer of a dual-stack listener as IPv4 */
		unmap((const struct sockaddr *)&peer, &shown);
		conn_log_denied(c, "BIND", NULL, &shown.sa, "peer closed", rule);
		close(fd);
		return;
	}
	/* The listener has served its purpose; the accepted socket is the target now. */
	loop_watch_close(&srv->loop, &c->target);
	loop_watch_init(&c->target, fd, c->target.cb);
	unmap((const struct sockaddr *)&peer, (union sa_any *)&c->dest);
	if (send_reply(c, (const struct sockaddr *)&peer) == 0)
		conn_start_relay(c);
}
