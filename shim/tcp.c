/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 client for TCP (see tcp.h). All I/O goes to the real libc
 * functions, on the socket made non-blocking for the duration and polled
 * against one deadline for the whole exchange. Replies are read exactly to
 * their end, so bytes the destination sends right after the reply (an SSH or
 * SMTP banner) stay in the socket for the program.
 */
#include "tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>

#include "log.h"
#include "monotime.h"
#include "policy.h"
#include "shim.h"

long long tcp_deadline(void)
{
	return monotime_ms() + shim_config.connect_timeout_ms;
}

/* Waits for `events` until the deadline: 0, or -ETIMEDOUT / -errno. */
static int wait_for(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - monotime_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int send_all(int fd, const uint8_t *buf, size_t len, long long deadline)
{
	while (len > 0) {
		ssize_t n = real_send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		int rc = wait_for(fd, POLLOUT, deadline);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/*
 * Reads exactly len bytes. A reply is never there the moment its request
 * was sent, so a first read polls first (fresh); the rest of a message that
 * has begun to arrive is read at once.
 */
static int recv_exact(int fd, uint8_t *buf, size_t len, bool fresh, long long deadline)
{
	while (len > 0) {
		if (fresh) {
			int rc = wait_for(fd, POLLIN, deadline);
			if (rc < 0)
				return rc;
		}
		ssize_t n = real_recv(fd, buf, len, 0);
		fresh = true;
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET; /* the proxy hung up mid-handshake */
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
	}
	return 0;
}

static int connect_proxy(int fd, int family, long long deadline)
{
	struct sockaddr_storage pa;
	socklen_t plen;
	int rc = policy_proxy_addr(family, &pa, &plen);
	if (rc == -EAFNOSUPPORT)
		shim_log(SHIM_LOG_ERROR,
		         "the proxy %s has only IPv6 addresses and this socket is IPv4: "
		         "socksify "
		         "does not swap the program's socket, give the proxy an IPv4 "
		         "address",
		         shim_config.proxy.host);
	if (rc < 0)
		return rc;
	if (real_connect(fd, (struct sockaddr *)&pa, plen) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EINTR)
		return -errno;
	rc = wait_for(fd, POLLOUT, deadline);
	if (rc < 0)
		return rc;
	int err = 0;
	socklen_t elen = sizeof(err);
	if (real_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return -errno;
	return -err;
}

/* A two-byte answer (method selection, RFC 1929 status): its second byte
 * into *value. 0, or -errno / -EPROTO. */
static int read_pair(int fd, ssize_t (*parse)(const uint8_t *, size_t, uint8_t *),
                     uint8_t *value, long long deadline)
{
	uint8_t buf[2];
	int rc = recv_exact(fd, buf, sizeof(buf), true, deadline);
	if (rc < 0)
		return rc;
	return parse(buf, sizeof(buf), value) == 2 ? 0 : -EPROTO;
}

static int read_method(int fd, const struct config_proxy *p, long long deadline)
{
	uint8_t method;
	int rc = read_pair(fd, socks5_method_reply_parse, &method, deadline);
	if (rc < 0)
		return rc;
	if (method == (p->has_auth ? SOCKS5_METHOD_USERPASS : SOCKS5_METHOD_NONE))
		return 0;
	if (method == SOCKS5_METHOD_NONE)
		return 1; /* fine, but a pipelined RFC 1929 message was one too many */
	shim_log(SHIM_LOG_ERROR,
	         "proxy %s:%u accepts none of our authentication methods%s", p->host,
	         p->port, p->has_auth ? "" : " (does it want a user:password@?)");
	return -EACCES;
}

static int read_auth_reply(int fd, const struct config_proxy *p, long long deadline)
{
	uint8_t status;
	int rc = read_pair(fd, socks5_auth_reply_parse, &status, deadline);
	if (rc < 0)
		return rc;
	if (status != SOCKS5_AUTH_SUCCESS) {
		shim_log(SHIM_LOG_ERROR, "proxy %s:%u rejected the user name or password",
		         p->host, p->port);
		return -EACCES;
	}
	return 0;
}

/* Reads the reply to the request to its last byte; its BND address into bound. */
static int read_reply(int fd, struct socks5_addr *bound, long long deadline)
{
	uint8_t buf[SOCKS5_REPLY_MAX];
	struct socks5_request rep;
	/* VER REP RSV ATYP and the first address byte tell the full length. */
	int rc = recv_exact(fd, buf, 5, true, deadline);
	if (rc < 0)
		return rc;
	size_t have = 5;
	ssize_t len;
	while ((len = socks5_reply_parse(buf, have, &rep)) == SOCKS5_PARTIAL) {
		size_t want = buf[3] == SOCKS5_ATYP_IPV4   ? 10
		              : buf[3] == SOCKS5_ATYP_IPV6 ? 22
		                                           : 7 + (size_t)buf[4];
		if (want <= have || want > sizeof(buf))
			return -EPROTO;
		rc = recv_exact(fd, buf + have, want - have, false, deadline);
		if (rc < 0)
			return rc;
		have = want;
	}
	if (len < 0)
		return -EPROTO;
	if (rep.cmd != SOCKS5_REP_SUCCEEDED)
		return -socks5_rep_to_errno(rep.cmd);
	if (bound)
		*bound = rep.addr;
	return 0;
}

/*
 * The whole handshake (see tcp.h). We offer no authentication, and username/password
 * when the URL has credentials (only that one when pipelining). Pipelined (pipeline =
 * yes), greeting, RFC 1929 message and request go out in one write and the answers are
 * read after; otherwise each message waits for its answer, which every server handles
 * (microsocks, for one, takes each read() for one message).
 */
int tcp_handshake(int fd, uint8_t cmd, const struct socks5_addr *target,
                  struct socks5_addr *bound, long long deadline)
{
	const struct config_proxy *p = &shim_config.proxy;
	bool pipeline = shim_config.pipeline == CONFIG_PIPELINE_ON;
	uint8_t buf[SOCKS5_GREETING_MAX + SOCKS5_USERPASS_MAX + SOCKS5_REQUEST_MAX];
	/* Unpipelined, credentials the proxy does not need are simply not sent. */
	static const uint8_t both[] = {SOCKS5_METHOD_NONE, SOCKS5_METHOD_USERPASS};
	const uint8_t *methods = p->has_auth ? both + (pipeline ? 1 : 0) : both;
	size_t nmethods = p->has_auth && !pipeline ? 2 : 1;
	size_t n = socks5_greeting_encode(buf, sizeof(buf), methods, nmethods), auth = 0,
	       req;
	int rc;

	if (p->has_auth)
		auth = socks5_userpass_encode(buf + n, sizeof(buf) - n, p->user,
		                              strlen(p->user), p->pass, strlen(p->pass));
	req = socks5_request_encode(buf + n + auth, sizeof(buf) - n - auth, cmd, target);
	if (req == 0 || (p->has_auth && auth == 0))
		return -EINVAL;
	if (pipeline) {
		rc = send_all(fd, buf, n + auth + req, deadline);
		if (rc == 0)
			rc = read_method(fd, p, deadline);
		if (rc == 0 && auth)
			rc = read_auth_reply(fd, p, deadline);
		if (rc > 0)
			rc = -EPROTO;
	} else {
		rc = send_all(fd, buf, n, deadline);
		if (rc == 0)
			rc = read_method(fd, p, deadline);
		if (rc == 0 && auth) {
			rc = send_all(fd, buf + n, auth, deadline);
			if (rc == 0)
				rc = read_auth_reply(fd, p, deadline);
		}
		if (rc > 0)
			rc = 0;
		if (rc == 0)
			rc = send_all(fd, buf + n + auth, req, deadline);
	}
	explicit_bzero(buf, sizeof(buf));
	return rc < 0 ? rc : read_reply(fd, bound, deadline);
}

/* The request on fd connected to the proxy for it; *nonblocking says
 * whether the program's socket was non-blocking (one F_GETFL for both). */
static int request(int fd, int family, uint8_t cmd, const struct socks5_addr *target,
                   struct socks5_addr *bound, bool *nonblocking)
{
	long long deadline = tcp_deadline();
	int flags = real_fcntl(fd, F_GETFL);
	int rc;

	*nonblocking = flags >= 0 && (flags & O_NONBLOCK);
	if (flags < 0)
		return -errno;
	if (!(flags & O_NONBLOCK) && real_fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	rc = connect_proxy(fd, family, deadline);
	if (rc == 0)
		rc = tcp_handshake(fd, cmd, target, bound, deadline);
	if (!(flags & O_NONBLOCK))
		real_fcntl(fd, F_SETFL, flags);
	return rc;
}

int tcp_connect_via_proxy(int fd, int family, const struct socks5_addr *target,
                          bool *nonblocking)
{
	bool nb;
	return request(fd, family, SOCKS5_CMD_CONNECT, target, NULL,
	               nonblocking ? nonblocking : &nb);
}

int tcp_proxy_request(int fd, int family, uint8_t cmd, const struct socks5_addr *target,
                      struct socks5_addr *bound)
{
	bool nb;
	return request(fd, family, cmd, target, bound, &nb);
}
