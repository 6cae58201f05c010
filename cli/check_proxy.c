/* SPDX-License-Identifier: MIT */
/*
 * The doctor's steps against one proxy (check.h): the proxy reached (each of
 * its addresses until one answers), the method it picks, the credentials,
 * then, for a target, a CONNECT to it (by name when the names go to the
 * proxy) and a UDP ASSOCIATE on a second connection. The client offers what
 * the shim offers (no authentication, and username/password when the URL has
 * credentials), with the credentials config_load() gave, and waits at most
 * connect_timeout for each connection. Blocking I/O with poll(): the
 * launcher is an ordinary program here, no hook is involved.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "monotime.h"
#include "sockaddr.h"
#include "socks5.h"

/* A connection to the proxy and the deadline of its exchange. */
struct conn {
	int fd;
	long long deadline_us;
	const struct config *cfg;
	const struct config_proxy *px;
	char name[300]; /* "host:port" of the proxy */
	char why[160];  /* why the last exchange failed, in words */
};

static int wait_for(struct conn *c, short events)
{
	for (;;) {
		long long left = (c->deadline_us - monotime_us()) / 1000;
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = c->fd, .events = events};
		int n = poll(&p, 1, (int)(left > 60000 ? 60000 : left + 1));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* What went wrong with the exchange, in words. */
static bool io_failed(struct conn *c, int err, const char *what)
{
	if (err == -ETIMEDOUT)
		snprintf(c->why, sizeof(c->why),
		         "no answer to the %s within %.1f s "
		         "(connect_timeout)",
		         what, c->cfg->connect_timeout_ms / 1000.0);
	else if (err == 0)
		snprintf(c->why, sizeof(c->why),
		         "the proxy closed the connection after the %s", what);
	else
		snprintf(c->why, sizeof(c->why), "the %s failed: %s", what,
		         strerror(-err));
	return false;
}

static bool send_all(struct conn *c, const uint8_t *buf, size_t n, const char *what)
{
	for (size_t done = 0; done < n;) {
		ssize_t w = send(c->fd, buf + done, n - done, MSG_NOSIGNAL);
		if (w > 0) {
			done += (size_t)w;
			continue;
		}
		int rc = w < 0 && errno == EAGAIN ? wait_for(c, POLLOUT) : -errno;
		if (rc < 0)
			return io_failed(c, rc, what);
	}
	return true;
}

/* Reads until parse() takes a whole message: its length, or -1 with why. */
static ssize_t recv_msg(struct conn *c, uint8_t *buf, size_t cap, const char *what,
                        ssize_t (*parse)(const uint8_t *, size_t, void *), void *out)
{
	size_t len = 0;
	for (;;) {
		ssize_t m = len ? parse(buf, len, out) : SOCKS5_PARTIAL;
		if (m > 0)
			return m;
		if (m != SOCKS5_PARTIAL || len == cap) {
			snprintf(c->why, sizeof(c->why),
			         "the answer to the %s is not SOCKS5 (%s?)", what,
			         buf[0] == 'H' ? "an HTTP proxy" : "another protocol");
			return -1;
		}
		int rc = wait_for(c, POLLIN);
		ssize_t r = rc < 0 ? rc : recv(c->fd, buf + len, cap - len, 0);
		if (r <= 0)
			return io_failed(c, r < 0 ? (rc < 0 ? rc : -errno) : 0, what), -1;
		len += (size_t)r;
	}
}

static ssize_t parse_method(const uint8_t *b, size_t n, void *out)
{
	return socks5_method_reply_parse(b, n, out);
}

static ssize_t parse_auth(const uint8_t *b, size_t n, void *out)
{
	return socks5_auth_reply_parse(b, n, out);
}

static ssize_t parse_reply(const uint8_t *b, size_t n, void *out)
{
	return socks5_reply_parse(b, n, out);
}

/* A non-blocking connect to one address within the deadline: 0 or -errno. */
static int connect_one(struct conn *c, const struct sockaddr *sa, socklen_t len)
{
	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	int rc = 0, e = 0;
	socklen_t elen = sizeof(e);
	if (connect(c->fd, sa, len) < 0)
		rc = errno == EINPROGRESS ? wait_for(c, POLLOUT) : -errno;
	if (rc == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &elen) == 0 && e)
		rc = -e;
	if (rc < 0) {
		close(c->fd);
		c->fd = -1;
	}
	return rc;
}

/* What a failed connect to the proxy means. */
static const char *connect_words(int err)
{
	switch (err) {
	case -ECONNREFUSED:
		return "connection refused (nothing listens there: is the proxy "
		       "running?)";
	case -ETIMEDOUT:
		return "no answer (connect_timeout): the proxy's host is down or a "
		       "firewall drops the packets";
	case -ENETUNREACH:
	case -EHOSTUNREACH:
		return "no route to the proxy's host";
	default:
		return NULL;
	}
}

/* The proxy's addresses tried in turn (a name resolved here, as the shim
 * does); one line: reached, or why not. */
static bool reach(struct conn *c)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char port[8], took[32];
	long long t0 = monotime_us();
	int rc = -EHOSTUNREACH;

	snprintf(port, sizeof(port), "%u", c->px->port);
	int g = getaddrinfo(c->px->host, port, &hints, &res);
	if (g != 0)
		return check_line(false, "proxy %s: cannot resolve its name: %s", c->name,
		                  gai_strerror(g));
	c->deadline_us = t0 + (long long)c->cfg->connect_timeout_ms * 1000;
	for (struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next)
		if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
			rc = connect_one(c, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(res);
	check_took(monotime_us() - t0, took, sizeof(took));
	if (c->fd >= 0)
		return check_line(true, "proxy %s: reached in %s", c->name, took);
	const char *words = connect_words(rc);
	return check_line(false, "proxy %s: %s%s %s", c->name, words ? words : "",
	                  words ? "" : strerror(-rc), took);
}

/* Greeting and method; the method picked in *method. */
static bool method(struct conn *c, uint8_t *method, bool quiet)
{
	static const uint8_t offer[] = {SOCKS5_METHOD_NONE, SOCKS5_METHOD_USERPASS};
	uint8_t buf[SOCKS5_GREETING_MAX];
	size_t n =
	        socks5_greeting_encode(buf, sizeof(buf), offer, c->px->has_auth ? 2 : 1);

	if (!send_all(c, buf, n, "greeting") ||
	    recv_msg(c, buf, SOCKS5_METHOD_REPLY_LEN, "greeting", parse_method, method) <
	            0)
		return quiet ? false : check_line(false, "method: %s", c->why);
	bool ok = *method == SOCKS5_METHOD_NONE ||
	          (*method == SOCKS5_METHOD_USERPASS && c->px->has_auth);
	if (quiet)
		return ok;
	if (*method == SOCKS5_METHOD_NONE)
		return check_line(true, "method: no authentication");
	if (ok)
		return check_line(true, "method: username/password");
	if (*method == SOCKS5_METHOD_UNACCEPTABLE && !c->px->has_auth)
		return check_line(false, "method: the proxy wants credentials "
		                         "(socks5://USER:PASSWORD@HOST:PORT)");
	if (*method == SOCKS5_METHOD_UNACCEPTABLE)
		return check_line(false, "method: the proxy accepts neither no "
		                         "authentication nor username/password");
	return check_line(false,
	                  "method: the proxy picked method %u, which was not "
	                  "offered",
	                  *method);
}

/* RFC 1929 with the configuration's credentials. */
static bool auth(struct conn *c, bool quiet)
{
	uint8_t buf[SOCKS5_USERPASS_MAX], status = 1;
	char took[32];
	long long t0 = monotime_us();
	size_t n =
	        socks5_userpass_encode(buf, sizeof(buf), c->px->user, strlen(c->px->user),
	                               c->px->pass, strlen(c->px->pass));
	bool sent = n > 0 && send_all(c, buf, n, "credentials");

	explicit_bzero(buf, sizeof(buf));
	if (!sent || recv_msg(c, buf, SOCKS5_AUTH_REPLY_LEN, "credentials", parse_auth,
	                      &status) < 0)
		return quiet ? false : check_line(false, "auth: %s", c->why);
	check_took(monotime_us() - t0, took, sizeof(took));
	if (status == SOCKS5_AUTH_SUCCESS)
		return quiet || check_line(true, "auth: user \"%s\" accepted %s",
		                           c->px->user, took);
	return quiet ? false
	             : check_line(false,
	                          "auth: the proxy refused user \"%s\" (wrong "
	                          "password?) %s",
	                          c->px->user, took);
}

/* A connection to the proxy with the method and the credentials done; the
 * lines only when !quiet (the second connection, for UDP, is quiet). */
static bool open_session(struct conn *c, bool quiet)
{
	uint8_t m;

	if (quiet) {
		c->deadline_us =
		        monotime_us() + (long long)c->cfg->connect_timeout_ms * 1000;
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
		struct addrinfo *res = NULL;
		char port[8];
		snprintf(port, sizeof(port), "%u", c->px->port);
		if (getaddrinfo(c->px->host, port, &hints, &res) != 0)
			return false;
		for (struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next)
			connect_one(c, ai->ai_addr, ai->ai_addrlen);
		freeaddrinfo(res);
		if (c->fd < 0)
			return false;
	} else if (!reach(c)) {
		return false;
	}
	if (!method(c, &m, quiet))
		return false;
	return m != SOCKS5_METHOD_USERPASS || auth(c, quiet);
}

/* A request and its reply: the reply code, or -1 with why. */
static int request(struct conn *c, uint8_t cmd, const struct socks5_addr *a,
                   struct socks5_request *reply)
{
	uint8_t buf[SOCKS5_REPLY_MAX];
	size_t n = socks5_request_encode(buf, sizeof(buf), cmd, a);

	if (n == 0) {
		snprintf(c->why, sizeof(c->why), "the address cannot be sent");
		return -1;
	}
	if (!send_all(c, buf, n, "request") ||
	    recv_msg(c, buf, sizeof(buf), "request", parse_reply, reply) < 0)
		return -1;
	return reply->cmd;
}

/* A failed reply in words, with what it likely means. */
static const char *rep_hint(uint8_t rep, bool by_name)
{
	switch (rep) {
	case SOCKS5_REP_HOST_UNREACHABLE:
		return by_name ? ": the proxy could not resolve the name or reach the "
		                 "host"
		               : "";
	case SOCKS5_REP_NOT_ALLOWED:
		return ": the proxy's rules forbid it";
	case SOCKS5_REP_CONN_REFUSED:
		return ": nothing listens there";
	default:
		return "";
	}
}

/* The target as a SOCKS5 address: by name when the proxy resolves names,
 * else resolved here. */
static int target_addr(const struct config *cfg, const char *host, uint16_t port,
                       struct socks5_addr *a, bool *by_name)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
	struct addrinfo *res = NULL;
	int g = getaddrinfo(host, NULL, &hints, &res);

	*by_name = g != 0 && config_remote_dns(cfg);
	if (*by_name)
		return socks5_addr_set_domain(a, host, strlen(host), port) == 0
		               ? 0
		               : EAI_FAIL;
	if (g != 0) {
		hints.ai_flags = 0;
		g = getaddrinfo(host, NULL, &hints, &res);
		if (g != 0)
			return g;
	}
	int rc = socks5_addr_from_sockaddr(a, res->ai_addr, res->ai_addrlen);
	a->port = port;
	freeaddrinfo(res);
	return rc == 0 ? 0 : EAI_FAMILY;
}

static bool connect_step(struct conn *c, const char *target)
{
	char host[256], took[32], shown[SOCKS5_ADDR_STRLEN];
	uint16_t port;
	struct socks5_addr a;
	struct socks5_request reply;
	bool by_name;
	long long t0 = monotime_us();

	check_parse_target(target, host, sizeof(host), &port);
	int g = target_addr(c->cfg, host, port, &a, &by_name);
	if (g != 0)
		return check_line(false,
		                  "CONNECT %s: cannot resolve it here: %s (dns = "
		                  "local)",
		                  target, gai_strerror(g));
	const char *how =
	        by_name ? "by name" : socks5_addr_format(&a, shown, sizeof(shown));
	int rep = request(c, SOCKS5_CMD_CONNECT, &a, &reply);
	check_took(monotime_us() - t0, took, sizeof(took));
	if (rep < 0)
		return check_line(false, "CONNECT %s (%s): %s", target, how, c->why);
	if (rep != SOCKS5_REP_SUCCEEDED)
		return check_line(false,
		                  "CONNECT %s (%s): refused by the proxy (reply %d: "
		                  "%s%s) %s",
		                  target, how, rep, socks5_rep_name((uint8_t)rep),
		                  rep_hint((uint8_t)rep, by_name), took);
	return check_line(true, "CONNECT %s (%s) %s", target, how, took);
}

/* UDP ASSOCIATE on a connection of its own, for any source. */
static bool udp_step(struct conn *c)
{
	struct socks5_addr any = {.atyp = SOCKS5_ATYP_IPV4};
	struct socks5_request reply;
	char took[32], relay[SOCKS5_ADDR_STRLEN];
	long long t0 = monotime_us();

	if (!open_session(c, true))
		return check_line(false,
		                  "UDP ASSOCIATE: a second connection to the proxy "
		                  "failed%s%s",
		                  c->why[0] ? ": " : "", c->why);
	int rep = request(c, SOCKS5_CMD_UDP_ASSOCIATE, &any, &reply);
	check_took(monotime_us() - t0, took, sizeof(took));
	if (rep < 0)
		return check_line(false, "UDP ASSOCIATE: %s", c->why);
	if (rep != SOCKS5_REP_SUCCEEDED)
		return check_line(false,
		                  "UDP ASSOCIATE: refused by the proxy (reply %d: "
		                  "%s%s) %s",
		                  rep, socks5_rep_name((uint8_t)rep),
		                  rep == SOCKS5_REP_CMD_NOT_SUPPORTED
		                          ? ": it does not relay UDP"
		                          : "",
		                  took);
	return check_line(true, "UDP ASSOCIATE: granted, relay %s %s",
	                  socks5_addr_format(&reply.addr, relay, sizeof(relay)), took);
}

bool check_proxy(const struct config *cfg, const struct config_proxy *px,
                 const char *target)
{
	struct conn c = {.fd = -1, .cfg = cfg, .px = px};
	bool ok;

	sa_format_hostport(px->host, px->port, c.name, sizeof(c.name));
	bool reached = open_session(&c, false);
	/* the UDP ASSOCIATE is asked also when the CONNECT failed */
	ok = reached && (!target || connect_step(&c, target));
	if (c.fd >= 0)
		close(c.fd);
	if (!reached || !target)
		return ok;
	c.fd = -1;
	c.why[0] = '\0';
	ok = udp_step(&c) && ok;
	if (c.fd >= 0)
		close(c.fd);
	return ok;
}

int check_parse_target(const char *s, char *host, size_t cap, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	char *end;

	if (!colon || colon == s || strchr(s, '/'))
		return -1;
	size_t n = (size_t)(colon - s);
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']')
			return -1;
		s++;
		n -= 2;
	} else if (memchr(s, ':', n)) {
		return -1; /* an IPv6 address needs its brackets */
	}
	errno = 0;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (n >= cap || *end || colon[1] < '0' || colon[1] > '9' || p == 0 || p > 65535)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	*port = (uint16_t)p;
	return 0;
}
