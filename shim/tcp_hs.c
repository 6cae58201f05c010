/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 client's exchange as a state machine (see tcp.h): each step does
 * the I/O that the socket allows at that moment, through the real libc
 * functions, and says what to wait for. Each read asks for no more than the
 * rest of the answer under way, so bytes the destination sends right after
 * the reply (an SSH or SMTP banner) stay in the socket for the program.
 */
#include "tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>

#include "log.h"
#include "pipeline.h"
#include "policy.h"
#include "shim.h"

/* Queues out[from, from + len) to go out, then the state next. What comes
 * before it in out is done with (sent, or credentials the proxy did not ask
 * for): wiped. */
static void hs_queue(struct tcp_hs *h, size_t from, size_t len, uint8_t next)
{
	explicit_bzero(h->out, from);
	h->state = TCP_HS_SEND;
	h->sent = (uint16_t)from;
	h->end = (uint16_t)(from + len);
	h->next = next;
}

/* Goes to state next, which reads its answer from the first byte. */
static void hs_expect(struct tcp_hs *h, uint8_t next)
{
	h->state = next;
	h->in_len = 0;
}

static void hs_finish(struct tcp_hs *h, int result)
{
	h->state = TCP_HS_DONE;
	h->result = result;
}

/* The proxy of the hop or alternative under way. */
static const struct config_proxy *hs_proxy(const struct tcp_hs *h)
{
	return &shim_config.proxies[h->plan.idx[h->plan.chain ? h->hop : h->attempt]];
}

/* More hops of a chain after this one. */
static bool hs_more_hops(const struct tcp_hs *h)
{
	return h->plan.chain && h->hop + 1 < h->plan.n;
}

/* The request's address: in a chain before the last hop, the next proxy's
 * (a name as a name: the hop resolves it), else the destination. */
static void hop_target(const struct tcp_hs *h, struct socks5_addr *t)
{
	if (!hs_more_hops(h)) {
		*t = h->target;
		return;
	}
	const struct config_proxy *next = &shim_config.proxies[h->plan.idx[h->hop + 1]];
	memset(t, 0, sizeof(*t));
	t->port = next->port;
	if (inet_pton(AF_INET, next->host, t->host.ipv4) == 1) {
		t->atyp = SOCKS5_ATYP_IPV4;
	} else if (inet_pton(AF_INET6, next->host, t->host.ipv6) == 1) {
		t->atyp = SOCKS5_ATYP_IPV6;
	} else {
		t->atyp = SOCKS5_ATYP_DOMAIN;
		t->domain_len = (uint8_t)strnlen(next->host, SOCKS5_DOMAIN_MAX);
		memcpy(t->host.domain, next->host, t->domain_len);
	}
}

/*
 * Encodes every message of the hop under way into out and queues the first
 * write. We offer no authentication, and username/password when the proxy's
 * URL has credentials (only that one when pipelining). Pipelined, greeting,
 * RFC 1929 message and request go out in one write and the answers are read
 * after; otherwise each message waits for its answer, which every server
 * handles (microsocks, for one, takes each read() for one message).
 */
static int hs_encode(struct tcp_hs *h)
{
	const struct config_proxy *p = hs_proxy(h);
	static const uint8_t both[] = {SOCKS5_METHOD_NONE, SOCKS5_METHOD_USERPASS};
	bool pipeline = h->pipeline;
	/* Unpipelined, credentials the proxy does not need are simply not sent. */
	const uint8_t *methods = p->has_auth ? both + (pipeline ? 1 : 0) : both;
	size_t nmethods = p->has_auth && !pipeline ? 2 : 1;
	size_t cap = sizeof(h->out), n, auth = 0, req;
	struct socks5_addr t;

	hop_target(h, &t);
	n = socks5_greeting_encode(h->out, cap, methods, nmethods);
	if (p->has_auth)
		auth = socks5_userpass_encode(h->out + n, cap - n, p->user,
		                              strlen(p->user), p->pass, strlen(p->pass));
	req = socks5_request_encode(h->out + n + auth, cap - n - auth,
	                            hs_more_hops(h) ? SOCKS5_CMD_CONNECT : h->cmd, &t);
	if (req == 0 || (p->has_auth && auth == 0)) {
		explicit_bzero(h->out, cap);
		hs_finish(h, -EINVAL);
		return -EINVAL;
	}
	h->greet_len = (uint16_t)n;
	h->auth_len = (uint16_t)auth;
	h->req_len = (uint16_t)req;
	h->replied = false;
	hs_queue(h, 0, pipeline ? n + auth + req : n, TCP_HS_METHOD);
	return 0;
}

/* The machine for cmd to target on fd through the plan of proxies.c;
 * pipelined (flags) with a single proxy only. family 0: fd is connected to
 * the first proxy already, and stays with it. */
static int hs_begin(struct tcp_hs *h, int fd, int family, uint8_t cmd,
                    const struct socks5_addr *target, unsigned flags)
{
	memset(h, 0, sizeof(*h));
	h->fd = fd;
	h->family = family;
	h->cmd = cmd;
	h->flags = flags;
	h->target = *target;
	h->quiet = flags & TCP_HS_QUIET;
	proxies_plan(&h->plan, cmd == SOCKS5_CMD_UDP_ASSOCIATE);
	if (family == 0 && !h->plan.chain) {
		h->plan.idx[0] = 0;
		h->plan.n = 1;
	}
	h->pipeline = (flags & TCP_HS_PIPELINED) && h->plan.n == 1 && !h->plan.chain;
	return hs_encode(h);
}

/* pipeline = yes, or auto once the proxy has shown it can (pipeline.c).
 * Only a CONNECT starts the probe: a UDP association pays its handshake once
 * for all its datagrams, and a UDP-only program gets no connection of ours.
 * Never with several proxies (a chain's hops answer one after the other, and
 * the probe's verdict is for one proxy). */
static unsigned default_flags(uint8_t cmd)
{
	if (shim_config.nproxies > 1)
		return 0;
	return pipeline_wanted(cmd == SOCKS5_CMD_CONNECT) ? TCP_HS_PIPELINED : 0;
}

int tcp_hs_start_connected(struct tcp_hs *h, int fd, uint8_t cmd,
                           const struct socks5_addr *target)
{
	return hs_begin(h, fd, 0, cmd, target, default_flags(cmd));
}

int tcp_hs_start(struct tcp_hs *h, int fd, int family, uint8_t cmd,
                 const struct socks5_addr *target)
{
	return tcp_hs_start_flags(h, fd, family, cmd, target, default_flags(cmd));
}

/*
 * TCP Fast Open to the proxy: connect() then returns at once and the first
 * send (the greeting, or all of it pipelined) goes out in the SYN when the
 * kernel holds a cookie of the proxy's, which saves a round trip; without
 * one the SYN asks for a cookie and that send answers EINPROGRESS (hs_send
 * waits for POLLOUT and sends again). A kernel or proxy without TFO makes it
 * an ordinary connect. The option stays on the program's socket (the kernel
 * takes it only before the connect); it does nothing after.
 */
static void fast_open(int fd)
{
	int one = 1;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one));
}

/* Connects the socket to the first hop, or the alternative under way. */
static int hs_connect(struct tcp_hs *h)
{
	struct sockaddr_storage pa;
	socklen_t plen;
	unsigned idx = h->plan.idx[h->plan.chain ? 0 : h->attempt];
	int rc = policy_proxy_addr_of(idx, h->family, &pa, &plen);

	if (rc == -EAFNOSUPPORT && !h->quiet)
		shim_log(SHIM_LOG_ERROR,
		         "the proxy %s has only IPv6 addresses and this socket is IPv4: "
		         "socksify "
		         "does not swap the program's socket, give the proxy an IPv4 "
		         "address",
		         shim_config.proxies[idx].host);
	if (rc < 0)
		return rc;
	fast_open(h->fd);
	if (real_connect(h->fd, (struct sockaddr *)&pa, plen) < 0) {
		/* Still connecting: the greeting is sent at once all the same.
		 * Over loopback or a local link the connection is usually made by
		 * the time connect() returns, and the send saves a poll() and a
		 * getsockopt(); otherwise it fails with EAGAIN (POLLOUT, and
		 * hs_send tries again) or with the connect's own error. */
		if (errno != EINPROGRESS && errno != EINTR)
			return -errno;
	}
	return 0;
}

/*
 * The alternative under way failed with rc: when it is the proxy's fault
 * (no connection, no greeting or credentials accepted, no reply; for UDP
 * ASSOCIATE any refusal too) and another is left, it is marked dead, the
 * socket disconnected (connect to AF_UNSPEC) and connected to the next. 0
 * once one is under way, or the last error.
 */
static int hs_failover(struct tcp_hs *h, int rc)
{
	static const struct sockaddr unspec = {.sa_family = AF_UNSPEC};

	while (rc < 0 && !h->plan.chain && h->family != 0 && rc != -EINVAL &&
	       h->attempt + 1 < h->plan.n &&
	       (!h->replied || h->cmd == SOCKS5_CMD_UDP_ASSOCIATE)) {
		proxies_mark_dead(h->plan.idx[h->attempt], rc);
		(void)real_connect(h->fd, &unspec, sizeof(unspec));
		h->attempt++;
		h->wait = 0;
		rc = hs_encode(h);
		if (rc == 0)
			rc = hs_connect(h);
	}
	if (rc == 0 && h->state == TCP_HS_DONE)
		h->state = TCP_HS_SEND;
	return rc;
}

int tcp_hs_start_flags(struct tcp_hs *h, int fd, int family, uint8_t cmd,
                       const struct socks5_addr *target, unsigned flags)
{
	int rc = hs_begin(h, fd, family, cmd, target, flags);

	if (rc == 0)
		rc = hs_connect(h);
	rc = hs_failover(h, rc);
	if (rc < 0) {
		tcp_hs_end(h);
		hs_finish(h, rc);
	}
	return rc;
}

/* TCP_HS_SEND: 0 once all has gone out (what went is wiped), POLLOUT, or -errno. */
static int hs_send(struct tcp_hs *h)
{
	while (h->sent < h->end) {
		ssize_t n = real_send(h->fd, h->out + h->sent, (size_t)(h->end - h->sent),
		                      MSG_NOSIGNAL);
		if (n > 0) {
			h->sent += (uint16_t)n;
			continue;
		}
		/* EINPROGRESS: a Fast Open SYN went without the data (no cookie) */
		if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINPROGRESS)
			return POLLOUT;
		if (errno != EINTR)
			return -errno;
	}
	explicit_bzero(h->out, h->end);
	hs_expect(h, h->next);
	/* an answer is seldom there the moment its message went out: a poll()
	 * saves a recv() that would say EAGAIN (an edge-triggered wait could
	 * miss an answer that is there, see tcp_hs_edge_triggered) */
	if (!h->edge)
		h->wait = POLLIN;
	return 0;
}

/* Reads the current answer up to want bytes in all: 0 once in[] holds them,
 * POLLIN when the socket has no more for now, or -errno. */
static int hs_fill(struct tcp_hs *h, size_t want)
{
	while (h->in_len < want) {
		ssize_t n = real_recv(h->fd, h->in + h->in_len, want - h->in_len, 0);
		if (n > 0) {
			h->in_len += (uint16_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET; /* the proxy hung up mid-handshake */
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return POLLIN;
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* After the method selection or RFC 1929: the request (out already when
 * pipelined), then its reply. */
static void hs_request(struct tcp_hs *h)
{
	if (h->pipeline)
		hs_expect(h, TCP_HS_REPLY);
	else
		hs_queue(h, (size_t)h->greet_len + h->auth_len, h->req_len, TCP_HS_REPLY);
}

/* The method the proxy chose, and what follows from it. */
static int hs_method(struct tcp_hs *h, uint8_t method)
{
	const struct config_proxy *p = hs_proxy(h);

	if (method == SOCKS5_METHOD_USERPASS && h->auth_len) {
		if (h->pipeline)
			hs_expect(h, TCP_HS_AUTH);
		else
			hs_queue(h, h->greet_len, h->auth_len, TCP_HS_AUTH);
		return 0;
	}
	/* fine, but then the pipelined RFC 1929 message was one too many */
	if (method == SOCKS5_METHOD_NONE && h->pipeline && h->auth_len)
		return -EPROTO;
	if (method == SOCKS5_METHOD_NONE) {
		hs_request(h);
		return 0;
	}
	if (!h->quiet)
		shim_log(SHIM_LOG_ERROR,
		         "proxy %s:%u accepts none of our authentication methods%s",
		         p->host, p->port,
		         p->has_auth ? "" : " (does it want a user:password@?)");
	return -EACCES;
}

/* The RFC 1929 status, and the request after a success. */
static int hs_auth(struct tcp_hs *h, uint8_t status)
{
	const struct config_proxy *p = hs_proxy(h);

	if (status != SOCKS5_AUTH_SUCCESS) {
		if (!h->quiet)
			shim_log(SHIM_LOG_ERROR,
			         "proxy %s:%u rejected the user name or password",
			         p->host, p->port);
		return -EACCES;
	}
	hs_request(h);
	return 0;
}

/* TCP_HS_METHOD and TCP_HS_AUTH: a two-byte answer (VER and the method or
 * status), then what follows from it. */
static int hs_pair(struct tcp_hs *h)
{
	bool method = h->state == TCP_HS_METHOD;
	ssize_t (*parse)(const uint8_t *, size_t, uint8_t *) =
	        method ? socks5_method_reply_parse : socks5_auth_reply_parse;
	uint8_t value;
	int rc = hs_fill(h, 2);

	if (rc != 0)
		return rc;
	if (parse(h->in, 2, &value) != 2)
		return -EPROTO;
	return method ? hs_method(h, value) : hs_auth(h, value);
}

/* The length of the reply whose first 5 bytes are in (VER REP RSV ATYP and the
 * first address byte tell it). */
static size_t reply_len(const uint8_t *in)
{
	return in[3] == SOCKS5_ATYP_IPV4   ? 10
	       : in[3] == SOCKS5_ATYP_IPV6 ? 22
	                                   : 7 + (size_t)in[4];
}

/* TCP_HS_REPLY: the reply to the request, to its last byte; BND into bound. */
static int hs_reply(struct tcp_hs *h)
{
	struct socks5_request rep;
	ssize_t len = SOCKS5_PARTIAL;
	int rc = hs_fill(h, 5);

	/* A beginning the codec already refuses (a wrong version or RSV, an
	 * unknown ATYP at the fourth byte) ends it now, not at connect_timeout
	 * while a hostile proxy waits before the fifth. */
	if (rc == POLLIN && h->in_len > 0 &&
	    socks5_reply_parse(h->in, h->in_len, &rep) < SOCKS5_PARTIAL)
		return -EPROTO;

	while (rc == 0 &&
	       (len = socks5_reply_parse(h->in, h->in_len, &rep)) == SOCKS5_PARTIAL) {
		size_t want = reply_len(h->in);
		if (want <= h->in_len || want > sizeof(h->in))
			return -EPROTO;
		rc = hs_fill(h, want);
	}
	if (rc != 0)
		return rc;
	if (len < 0)
		return -EPROTO;
	h->replied = true;
	if (rep.cmd != SOCKS5_REP_SUCCEEDED)
		return -socks5_rep_to_errno(rep.cmd);
	if (hs_more_hops(h)) { /* the next hop's greeting, through this one */
		h->hop++;
		return hs_encode(h);
	}
	h->bound = rep.addr;
	hs_finish(h, 0);
	return 0;
}

int tcp_hs_step(struct tcp_hs *h)
{
	int rc = 0;

	while (rc == 0 && h->state != TCP_HS_DONE) {
		if (h->wait) {
			rc = h->wait;
			h->wait = 0;
		} else if (h->state == TCP_HS_SEND) {
			rc = hs_send(h);
		} else if (h->state == TCP_HS_METHOD || h->state == TCP_HS_AUTH) {
			rc = hs_pair(h);
		} else {
			rc = hs_reply(h);
		}
		if (rc < 0)
			rc = hs_failover(h, rc);
	}
	if (rc < 0)
		hs_finish(h, rc);
	return h->state == TCP_HS_DONE ? h->result : rc;
}

int tcp_hs_first_wait(struct tcp_hs *h)
{
	int rc = tcp_hs_step(h);
	return rc > 0 ? 0 : rc < 0 ? rc : -EPROTO;
}

int tcp_hs_timeout(struct tcp_hs *h)
{
	if (h->state != TCP_HS_DONE && hs_failover(h, -ETIMEDOUT) == 0)
		return 1;
	tcp_hs_end(h);
	hs_finish(h, -ETIMEDOUT);
	return -ETIMEDOUT;
}

void tcp_hs_via(const struct tcp_hs *h, char *buf, size_t cap)
{
	proxies_format(&h->plan, h->attempt, buf, cap);
}

void tcp_hs_end(struct tcp_hs *h)
{
	explicit_bzero(h->out, sizeof(h->out));
}
