/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 handshake of socksify-server, one phase per state (see
 * struct phase in conn.h): GREETING and method selection, AUTH (RFC 1929
 * username/password), REQUEST, RESOLVING (off the loop, see resolve.c) and
 * CONNECTING, which tries every resolved address in order before it fails.
 * A BIND or UDP ASSOCIATE request goes on in bind.c or udp.c.
 *
 * TCP does not keep message boundaries: bytes accumulate in c->hs, each
 * handler consumes one whole message and leaves the rest, so a handshake
 * split into single bytes and a greeting + request + data in one segment
 * both work. What follows the request is early data for the destination.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "handshake.h"

#include "bind.h"
#include "log.h"
#include "preauth.h"
#include "resolve.h"
#include "sockaddr.h"
#include "udp.h"

/* Handler results. */
enum step { STEP_MORE = 0, STEP_NEXT = 1, STEP_STOP = -1 };

/*
 * GREETING, AUTH and REQUEST read the client into c->hs the same way and
 * differ in the message they parse: a phase and its handler. A handler that
 * returns STEP_NEXT has entered the next of these phases, whose handler runs
 * on the bytes already buffered.
 */
struct hs_phase {
	struct phase phase; /* first: c->phase points here */
	enum step (*step)(struct conn *c);
};

static const struct hs_phase greeting, auth, request;

static void consume(struct conn *c, size_t n)
{
	memmove(c->hs, c->hs + n, c->hs_len - n);
	c->hs_len -= n;
	/* Credentials must not linger in the buffer. */
	explicit_bzero(c->hs + c->hs_len, n);
}

static uint8_t choose_method(const struct server *srv, const struct socks5_greeting *g)
{
	uint8_t want = srv->cfg.nusers ? SOCKS5_METHOD_USERPASS : SOCKS5_METHOD_NONE;
	return socks5_greeting_offers(g, want) ? want : SOCKS5_METHOD_UNACCEPTABLE;
}

/*
 * A client that pipelined its handshake reads the replies whenever they
 * come: when the next message (RFC 1929 or the request) is already here in
 * full, the reply to this one is held back and goes out in one send with
 * the next reply (conn_send). A partial next message does not hold it, so
 * a client that stalls still gets the replies so far.
 */
static bool next_is_here(const struct conn *c, bool auth_next)
{
	struct socks5_request req;
	struct socks5_userpass up;
	ssize_t n = auth_next ? socks5_userpass_parse(c->hs, c->hs_len, &up)
	                      : socks5_request_parse(c->hs, c->hs_len, &req);
	if (auth_next)
		explicit_bzero(&up, sizeof(up));
	return n != SOCKS5_PARTIAL;
}

static int reply(struct conn *c, const uint8_t *buf, size_t len, bool auth_next)
{
	if (c->hs_len == 0 || c->nheld + len > sizeof(c->held) ||
	    !next_is_here(c, auth_next))
		return conn_send(c, buf, len);
	memcpy(c->held + c->nheld, buf, len);
	c->nheld += (uint8_t)len;
	return 0;
}

static enum step on_greeting(struct conn *c)
{
	struct socks5_greeting g;
	ssize_t n = socks5_greeting_parse(c->hs, c->hs_len, &g);

	if (n == SOCKS5_PARTIAL)
		return STEP_MORE;
	if (n < 0) {
		conn_close(c, "malformed greeting");
		return STEP_STOP;
	}
	consume(c, (size_t)n);
	uint8_t method = choose_method(c->srv, &g);
	uint8_t buf[SOCKS5_METHOD_REPLY_LEN];
	socks5_method_reply_encode(buf, sizeof(buf), method);
	if (method == SOCKS5_METHOD_UNACCEPTABLE
	            ? conn_send(c, buf, sizeof(buf)) < 0
	            : reply(c, buf, sizeof(buf), method == SOCKS5_METHOD_USERPASS) < 0)
		return STEP_STOP;
	if (method == SOCKS5_METHOD_UNACCEPTABLE) {
		conn_drain(c, "no acceptable authentication method");
		return STEP_STOP;
	}
	conn_enter(c, method == SOCKS5_METHOD_USERPASS ? &auth.phase : &request.phase);
	return STEP_NEXT;
}

/* Compares in time that depends on the configured secret's length only. */
static bool same_secret(const char *given, size_t glen, const char *want, size_t wlen)
{
	unsigned diff = (unsigned)(glen ^ wlen);
	for (size_t i = 0; i < wlen; i++)
		diff |= (unsigned)(uint8_t)want[i] ^
		        (unsigned)(uint8_t)(i < glen ? given[i] : 0);
	return diff == 0;
}

static bool credentials_ok(const struct server *srv, const struct socks5_userpass *up)
{
	int ok = 0;
	/*
	 * & and |, not && and ||, on purpose: every user's name and password are
	 * compared whether or not an earlier one matched, so the time taken does
	 * not tell which part matched, or which user (constant time). The casts
	 * say so to clang's -Wbitwise-instead-of-logical.
	 */
	for (size_t i = 0; i < srv->cfg.nusers; i++) {
		const struct server_user *u = &srv->cfg.users[i];
		ok |= (int)same_secret(up->user, up->ulen, u->user, u->ulen) &
		      (int)same_secret(up->pass, up->plen, u->pass, u->plen);
	}
	return ok != 0;
}

static enum step on_auth(struct conn *c)
{
	struct socks5_userpass up;
	ssize_t n = socks5_userpass_parse(c->hs, c->hs_len, &up);

	if (n == SOCKS5_PARTIAL)
		return STEP_MORE;
	bool ok = n > 0 && credentials_ok(c->srv, &up);
	explicit_bzero(&up, sizeof(up));
	if (n > 0)
		consume(c, (size_t)n);
	uint8_t buf[SOCKS5_AUTH_REPLY_LEN];
	socks5_auth_reply_encode(buf, sizeof(buf),
	                         ok ? SOCKS5_AUTH_SUCCESS : SOCKS5_AUTH_FAILURE);
	if ((ok ? reply(c, buf, sizeof(buf), false) : conn_send(c, buf, sizeof(buf))) < 0)
		return STEP_STOP;
	if (!ok) {
		conn_drain(c,
		           n > 0 ? "authentication failed" : "malformed authentication");
		return STEP_STOP;
	}
	preauth_leave(c); /* authenticated: no longer sheddable */
	conn_enter(c, &request.phase);
	return STEP_NEXT;
}

static const struct phase resolving, connecting;
static void on_resolved(void *owner, struct resolve_job *job);
static void connect_next(struct conn *c);

/*
 * The client watch's callback while RESOLVING and CONNECTING: early data
 * waits in c->hs until the destination is connected. The client stays
 * watched (no epoll_ctl between the handshake and the relay) until the
 * buffer is full or its EOF comes, which the relay reads again.
 */
static void absorb_early(struct loop_watch *w, uint32_t revents)
{
	struct conn *c = conn_of_client(w);
	ssize_t n = 0;

	(void)revents;
	if (c->hs_len < CONN_HS_BUF) {
		do
			n = recv(w->fd, c->hs + c->hs_len, CONN_HS_BUF - c->hs_len, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			conn_close(c, strerror(errno));
			return;
		}
		c->hs_len += (size_t)n;
	}
	if ((n == 0 || c->hs_len == CONN_HS_BUF) &&
	    loop_watch_set(&c->srv->loop, &c->client, 0) < 0)
		conn_close(c, "epoll failed");
}

/* CONNECT: resolve the name, if it is one, then connect. */
static void start_connect(struct conn *c)
{
	struct server *srv = c->srv;

	c->deadline_ms = srv->loop.now_ms + srv->cfg.connect_timeout_ms;
	if (c->req.addr.atyp == SOCKS5_ATYP_DOMAIN) {
		conn_enter(c, &resolving);
		c->on_close = conn_lookup_cancel;
		c->job = resolve_start(c->req.addr.host.domain, c->req.addr.port, c,
		                       on_resolved);
		if (!c->job)
			conn_fail(c, SOCKS5_REP_GENERAL_FAILURE,
			          "too many name lookups waiting");
		return;
	}
	socks5_addr_to_sockaddr(&c->req.addr, &c->addrs[0]);
	c->naddrs = 1;
	conn_enter(c, &connecting);
	connect_next(c);
}

static void start_bind(struct conn *c)
{
	/* Early data waits in c->hs until the peer is connected. */
	if (loop_watch_set(&c->srv->loop, &c->client, 0) < 0)
		conn_close(c, "epoll failed");
	else
		bind_start(c);
}

static enum step on_request(struct conn *c)
{
	ssize_t n = socks5_request_parse(c->hs, c->hs_len, &c->req);

	switch (n) {
	case SOCKS5_PARTIAL:
		return STEP_MORE;
	case SOCKS5_BAD_COMMAND:
		conn_fail(c, SOCKS5_REP_CMD_NOT_SUPPORTED, NULL);
		return STEP_STOP;
	case SOCKS5_BAD_ATYP:
		conn_fail(c, SOCKS5_REP_ATYP_NOT_SUPPORTED, NULL);
		return STEP_STOP;
	case SOCKS5_BAD:
		conn_fail(c, SOCKS5_REP_GENERAL_FAILURE, "malformed request");
		return STEP_STOP;
	default:
		break;
	}
	consume(c, (size_t)n);
	c->have_request = true;
	preauth_leave(c); /* without -u, the request ends the handshake's budget */
	if (c->req.cmd == SOCKS5_CMD_CONNECT)
		start_connect(c);
	else if (c->req.cmd == SOCKS5_CMD_BIND)
		start_bind(c);
	else if (c->req.cmd == SOCKS5_CMD_UDP_ASSOCIATE)
		udp_start(c);
	else
		conn_fail(c, SOCKS5_REP_CMD_NOT_SUPPORTED, NULL);
	return STEP_STOP;
}

/* The client watch's callback in GREETING, AUTH and REQUEST. */
static void read_handshake(struct loop_watch *w, uint32_t revents)
{
	struct conn *c = conn_of_client(w);
	ssize_t n;

	(void)revents;
	do
		n = recv(c->client.fd, c->hs + c->hs_len, CONN_HS_BUF - c->hs_len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		conn_close(c, n == 0 ? "client closed during the handshake"
		                     : strerror(errno));
		return;
	}
	c->hs_len += (size_t)n;
	enum step s;
	do
		s = ((const struct hs_phase *)c->phase)->step(c);
	while (s == STEP_NEXT);
	/* Every message fits the buffer, so a full buffer here is garbage. */
	if (s == STEP_MORE && c->hs_len == CONN_HS_BUF)
		conn_close(c, "oversized handshake");
}

static void handshake_expired(struct conn *c)
{
	conn_close(c, "handshake timeout");
}

static const struct hs_phase greeting = {
        {.on_client = read_handshake, .on_timeout = handshake_expired}, on_greeting};
static const struct hs_phase auth = {
        {.on_client = read_handshake, .on_timeout = handshake_expired}, on_auth};
static const struct hs_phase request = {
        {.on_client = read_handshake, .on_timeout = handshake_expired}, on_request};

/* Phases that read the client (the others set its interest themselves). */
static bool reads_client(const struct phase *p)
{
	return p == &greeting.phase || p == &auth.phase || p == &request.phase ||
	       p == &resolving || p == &connecting;
}

void handshake_start(struct conn *c)
{
	struct server *srv = c->srv;

	conn_enter(c, &greeting.phase);
	c->deadline_ms = srv->loop.now_ms + srv->cfg.handshake_timeout_ms;
	/* With TCP_DEFER_ACCEPT the greeting (or the whole pipelined handshake)
	 * is usually here already: read it before any epoll registration. */
	read_handshake(&c->client, EPOLLIN);
	if (c->closed)
		return;
	/* Nothing yet: the kernel held the silent client for the defer period,
	 * which counts towards its handshake timeout. */
	if (c->phase == &greeting.phase && c->hs_len == 0)
		c->deadline_ms -= srv->defer_ms < srv->cfg.handshake_timeout_ms
		                          ? srv->defer_ms
		                          : srv->cfg.handshake_timeout_ms;
	if (reads_client(c->phase) && loop_watch_set(&srv->loop, &c->client, EPOLLIN) < 0)
		conn_close(c, "epoll failed");
}

static void on_resolved(void *owner, struct resolve_job *job)
{
	struct conn *c = owner;

	if (!conn_lookup_done(c, job))
		return;
	conn_enter(c, &connecting);
	connect_next(c);
}

/* Binds to -b for the destination's family; -ENETUNREACH if only the other family has
 * one. */
static int bind_source(const struct server_config *cfg, int fd, int family)
{
	int err;
	const struct sockaddr_storage *src = server_source(cfg, family, &err);
	if (!src)
		return err;
	return bind(fd, (const struct sockaddr *)src,
	            sa_len((const struct sockaddr *)src)) < 0
	               ? -errno
	               : 0;
}

/* Starts a non-blocking connect to one address: 0 (in progress or done) or -errno. */
static int connect_one(struct conn *c, const struct sockaddr_storage *ss)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int rc = bind_source(&c->srv->cfg, fd, ss->ss_family);
	socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                         : sizeof(struct sockaddr_in6);
	if (rc == 0 && connect(fd, (const struct sockaddr *)ss, len) < 0 &&
	    errno != EINPROGRESS)
		rc = -errno;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	loop_watch_init(&c->target, fd, c->target.cb);
	c->dest = *ss;
	rc = loop_watch_set(&c->srv->loop, &c->target, EPOLLOUT);
	if (rc < 0)
		loop_watch_close(&c->srv->loop, &c->target);
	return rc;
}

/* -vv: one line per address that failed, before the next one is tried. */
static void log_attempt(const struct conn *c, const struct sockaddr_storage *ss)
{
	char dst[SOCKS5_ADDR_STRLEN];
	struct socks5_addr a;

	if (!log_enabled(LOG_DEBUG) ||
	    socks5_addr_from_sockaddr(&a, (const struct sockaddr *)ss, sizeof(*ss)) < 0)
		return;
	log_msg(LOG_DEBUG, "connect to %s: %s", socks5_addr_format(&a, dst, sizeof(dst)),
	        strerror(c->last_err));
}

/* The policy's verdict on an address of the destination: denied ones are
 * logged (one line each) and skipped. */
static bool permitted(struct conn *c, const struct sockaddr_storage *ss)
{
	const char *rule =
	        acl_check(&c->srv->cfg.acl, (const struct sockaddr *)ss, ACL_TCP);
	if (!rule)
		return true;
	char named[SOCKS5_ADDR_STRLEN];
	bool name = c->req.addr.atyp == SOCKS5_ATYP_DOMAIN;
	if (name)
		socks5_addr_format(&c->req.addr, named, sizeof(named));
	conn_log_denied(c, "CONNECT", name ? named : NULL, (const struct sockaddr *)ss,
	                name && c->next_addr < c->naddrs ? "address skipped" : "refused",
	                rule);
	c->denied = rule;
	return false;
}

static void connect_next(struct conn *c)
{
	while (c->next_addr < c->naddrs) {
		const struct sockaddr_storage *ss = &c->addrs[c->next_addr++];
		if (!permitted(c, ss))
			continue;
		int rc = connect_one(c, ss);
		if (rc == 0)
			return; /* completion is reported as EPOLLOUT */
		c->last_err = -rc;
		log_attempt(c, ss);
	}
	if (c->last_err == 0 && c->denied)
		conn_fail(c, SOCKS5_REP_NOT_ALLOWED, c->denied);
	else if (c->last_err == 0)
		conn_fail(c, SOCKS5_REP_HOST_UNREACHABLE, "no address to connect to");
	else
		conn_fail(c, socks5_rep_from_errno(c->last_err), strerror(c->last_err));
}

static void send_success(struct conn *c)
{
	struct sockaddr_storage bound;
	socklen_t len = sizeof(bound);
	struct socks5_addr bnd;
	uint8_t reply[SOCKS5_REPLY_MAX];

	if (getsockname(c->target.fd, (struct sockaddr *)&bound, &len) < 0 ||
	    socks5_addr_from_sockaddr(&bnd, (struct sockaddr *)&bound, len) < 0) {
		conn_fail(c, SOCKS5_REP_GENERAL_FAILURE, strerror(errno));
		return;
	}
	size_t n = socks5_reply_encode(reply, sizeof(reply), SOCKS5_REP_SUCCEEDED, &bnd);
	if (conn_send(c, reply, n) == 0)
		conn_start_relay(c);
}

/* The target watch's callback in CONNECTING: the connect finished. */
static void on_connected(struct loop_watch *w, uint32_t revents)
{
	struct conn *c = conn_of_target(w);
	int err = 0;
	socklen_t len = sizeof(err);

	/* EPOLLOUT alone is a connect that succeeded: only a failure is asked for. */
	if ((revents & (EPOLLERR | EPOLLHUP)) &&
	    getsockopt(c->target.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	/*
	 * A reset (rather than a refusal) means the connection was made and
	 * the destination already closed it, perhaps after sending data: report
	 * success and let the relay pass the data on, then the end.
	 */
	if (err == ECONNRESET || err == EPIPE)
		err = 0;
	/* The rules apply to the host reached: 0.0.0.0 and :: reach this one. */
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);
	if (err == 0 && acl_active(&c->srv->cfg.acl) &&
	    getpeername(c->target.fd, (struct sockaddr *)&peer, &plen) == 0 &&
	    !permitted(c, &peer)) {
		loop_watch_close(&c->srv->loop, &c->target);
		memset(&c->dest, 0, sizeof(c->dest));
		connect_next(c);
		return;
	}
	if (err == 0) {
		send_success(c);
		return;
	}
	c->last_err = err;
	log_attempt(c, &c->dest);
	loop_watch_close(&c->srv->loop, &c->target);
	memset(&c->dest, 0, sizeof(c->dest));
	connect_next(c);
}

/* --connect-timeout passed while resolving or connecting. */
static void connect_expired(struct conn *c)
{
	conn_lookup_cancel(c);
	conn_fail(c, socks5_rep_from_errno(ETIMEDOUT), "timed out");
}

/* The client's early data is kept until the destination is connected. */
static const struct phase resolving = {.on_client = absorb_early,
                                       .on_timeout = connect_expired};
static const struct phase connecting = {.on_client = absorb_early,
                                        .on_target = on_connected,
                                        .on_timeout = connect_expired};
