/* SPDX-License-Identifier: MIT */
/*
 * Exported socket hooks: connect(), getpeername(), getsockopt(SO_ERROR) and
 * the TCP Fast Open forms of sendto()/sendmsg(). Each is thin: classify the
 * destination (policy.c), then pass through, fail, or let tcp.c connect the
 * program's socket through the proxy.
 *
 * Non-blocking sockets keep their semantics: the handshake runs inside
 * connect() (bounded by connect_timeout), and the call then answers
 * EINPROGRESS like any connect that did not finish at once; the socket is
 * writable by then, and SO_ERROR reports 0 — or, after a failure, the
 * mapped error, with the socket shut down so that poll() wakes up.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>

#include "fdtab.h"
#include "log.h"
#include "policy.h"
#include "shim.h"
#include "tcp.h"
#include "udp.h"

/* The socket's type and family, or false when it is not an IP stream socket. */
static bool is_ip_stream(int fd)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof(int);
	if (real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    type != SOCK_STREAM)
		return false;
	len = sizeof(int);
	if (real_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return false;
	return domain == AF_INET || domain == AF_INET6;
}

static long long elapsed_us(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000000LL + (t1.tv_nsec - t0->tv_nsec) / 1000;
}

static void log_result(const struct policy *pol, int rc, const struct timespec *t0)
{
	char dst[SOCKS5_ADDR_STRLEN];
	const struct config_proxy *p = &shim_config.proxy;

	if (!shim_log_enabled(SHIM_LOG_INFO))
		return;
	socks5_addr_format(&pol->target, dst, sizeof(dst));
	bool v6 = strchr(p->host, ':') != NULL;
	shim_log(rc == 0 ? SHIM_LOG_INFO : SHIM_LOG_ERROR,
	         "connect %s via %s%s%s:%u: %s, %lld us", dst, v6 ? "[" : "", p->host,
	         v6 ? "]" : "", p->port, rc == 0 ? "ok" : strerror(-rc), elapsed_us(t0));
}

/* Connects through the proxy and records the outcome; the hook's return value. */
static int proxied_connect(int fd, const struct sockaddr *addr, socklen_t len,
                           const struct policy *pol)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int nonblocking = real_fcntl(fd, F_GETFL) & O_NONBLOCK;
	int rc = tcp_connect_via_proxy(fd, addr->sa_family, &pol->target);
	log_result(pol, rc, &t0);
	struct fd_entry *e = fdtab_claim(fd);
	if (rc == 0) {
		if (e) {
			e->kind = FD_TCP_PROXIED;
			e->peer_len = len < sizeof(e->peer) ? len : sizeof(e->peer);
			memcpy(&e->peer, addr, e->peer_len);
		}
		if (!nonblocking)
			return 0;
		errno = EINPROGRESS;
		return -1;
	}
	/*
	 * The socket may be connected to the proxy: shut it down and answer for
	 * it, so it looks like the failed connect it is (getpeername ENOTCONN,
	 * send EPIPE). A non-blocking caller learns the error from SO_ERROR.
	 */
	shutdown(fd, SHUT_RDWR);
	if (e) {
		e->kind = FD_TCP_FAILED;
		e->failed = -rc;
		e->error = nonblocking ? -rc : 0;
	}
	if (nonblocking && e) {
		errno = EINPROGRESS;
		return -1;
	}
	errno = -rc;
	return -1;
}

SHIM_EXPORT int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	/* No re-entrancy guard is held across the handshake: everything it
	 * calls is a real_* function, and a signal handler that connects
	 * meanwhile (or a siglongjmp out of a connect timed with alarm()) must
	 * find the shim working, not switched off for the thread. */
	shim_init();
	if (shim_depth > 0 || !real_connect)
		return real_connect ? real_connect(fd, addr, len) : (errno = ENOSYS, -1);
	int rc;
	bool handled = false;
	struct fd_entry *e = fdtab_lookup(fd);
	if (e && e->kind == FD_UDP) {
		rc = udp_connect(fd, e, addr, len, &handled);
		if (!handled)
			rc = real_connect(fd, addr, len);
	} else if (e) {
		/* A second connect() on a socket we handled, as the kernel answers it. */
		int err = e->kind == FD_TCP_PROXIED ? EISCONN
		          : e->error                ? e->error
		                                    : e->failed;
		e->error = 0;
		errno = err;
		rc = -1;
	} else if (!addr || len < sizeof(sa_family_t) ||
	           (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
		rc = real_connect(fd, addr, len);
	} else if ((rc = udp_connect(fd, NULL, addr, len, &handled)), handled) {
		/* a datagram socket: udp.c connected it (or refused) */
	} else if (!is_ip_stream(fd)) {
		rc = real_connect(fd, addr, len);
	} else {
		struct policy pol;
		policy_classify(addr, len, &pol);
		switch (pol.verdict) {
		case POLICY_PASS:
			rc = real_connect(fd, addr, len);
			break;
		case POLICY_DENY:
			shim_log(SHIM_LOG_ERROR, "connect refused: %s", pol.reason);
			errno = pol.err;
			rc = -1;
			break;
		case POLICY_PROXY:
		default:
			rc = proxied_connect(fd, addr, len, &pol);
			break;
		}
	}
	return rc;
}

SHIM_EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct fd_entry *e = fdtab_lookup(fd);
	if (!e || !real_getpeername || e->kind == FD_UDP_CONTROL)
		return real_getpeername ? real_getpeername(fd, addr, len)
		                        : (errno = ENOSYS, -1);
	if (e->kind == FD_UDP)
		return udp_getpeername(e, fd, addr, len);
	if (e->kind != FD_TCP_PROXIED) {
		errno = ENOTCONN;
		return -1;
	}
	if (!addr || !len) {
		errno = EFAULT;
		return -1;
	}
	memcpy(addr, &e->peer, *len < e->peer_len ? *len : e->peer_len);
	*len = e->peer_len;
	return 0;
}

SHIM_EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct fd_entry *e;
	if (level != SOL_SOCKET || name != SO_ERROR || !(e = fdtab_lookup(fd)) ||
	    e->kind != FD_TCP_FAILED || !val || !len || *len < sizeof(int))
		return real_getsockopt ? real_getsockopt(fd, level, name, val, len)
		                       : (errno = ENOSYS, -1);
	memcpy(val, &e->error, sizeof(int));
	*len = sizeof(int);
	e->error = 0;
	return 0;
}

static ssize_t send_common(int fd, const struct msghdr *msg, int flags);

/* TCP Fast Open carries data in the SYN: here it becomes connect + send. */
static ssize_t fastopen(int fd, const struct msghdr *msg, int flags)
{
	const struct sockaddr *dst = msg->msg_name;
	struct policy pol = {.verdict = POLICY_PASS};

	shim_init();
	if (!is_ip_stream(fd))
		return send_common(fd, msg, flags); /* a datagram: udp.c decides */
	if ((dst->sa_family == AF_INET || dst->sa_family == AF_INET6) &&
	    !fdtab_lookup(fd))
		policy_classify(dst, msg->msg_namelen, &pol);
	if (pol.verdict == POLICY_PASS)
		return real_sendmsg(fd, msg, flags);
	if (connect(fd, msg->msg_name, msg->msg_namelen) < 0 && errno != EINPROGRESS &&
	    errno != EISCONN)
		return -1;
	struct msghdr m = *msg;
	m.msg_name = NULL;
	m.msg_namelen = 0;
	return real_sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
}

/*
 * Datagrams: an associated socket's, and one with a destination the
 * policy proxies, go through udp.c; everything else passes.
 */
static ssize_t send_common(int fd, const struct msghdr *msg, int flags)
{
	struct fd_entry *e = fdtab_lookup(fd);
	bool udp = e ? e->kind == FD_UDP : msg->msg_name != NULL;
	if (!udp || shim_depth > 0)
		return real_sendmsg(fd, msg, flags);
	/* no re-entrancy guard across the send (see hook_dgram.c) */
	shim_init();
	bool handled;
	ssize_t rc =
	        udp_sendmsg(fd, e && e->kind == FD_UDP ? e : NULL, msg, flags, &handled);
	if (!handled)
		rc = real_sendmsg(fd, msg, flags);
	return rc;
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                           const struct sockaddr *addr, socklen_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	struct msghdr msg = {.msg_name = (void *)addr,
	                     .msg_namelen = addr ? len : 0,
	                     .msg_iov = &iov,
	                     .msg_iovlen = 1};
	struct fd_entry *e;

	shim_init();
	if (!real_sendto || !real_sendmsg) {
		errno = ENOSYS;
		return -1;
	}
	if (shim_depth > 0 || (!addr && (!(e = fdtab_lookup(fd)) || e->kind != FD_UDP)))
		return real_sendto(fd, buf, n, flags, addr, len);
	if ((flags & MSG_FASTOPEN) && addr)
		return fastopen(fd, &msg, flags);
	return send_common(fd, &msg, flags);
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	shim_init();
	if (!real_sendmsg) {
		errno = ENOSYS;
		return -1;
	}
	if (shim_depth > 0 || !msg)
		return real_sendmsg(fd, msg, flags);
	if ((flags & MSG_FASTOPEN) && msg->msg_name)
		return fastopen(fd, msg, flags);
	return send_common(fd, msg, flags);
}

/* One datagram at a time once any of them is the shim's business. */
SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags)
{
	shim_init();
	if (!real_sendmmsg || !real_sendmsg) {
		errno = ENOSYS;
		return -1;
	}
	struct fd_entry *e = fdtab_lookup(fd);
	bool mine = e && e->kind == FD_UDP;
	/* an untracked socket keeps its batch unless a datagram needs the proxy */
	for (unsigned int i = 0; !mine && shim_depth == 0 && vec && i < n; i++) {
		const struct msghdr *m = &vec[i].msg_hdr;
		struct policy pol;
		if (!m->msg_name || m->msg_namelen < sizeof(sa_family_t) ||
		    (((const struct sockaddr *)m->msg_name)->sa_family != AF_INET &&
		     ((const struct sockaddr *)m->msg_name)->sa_family != AF_INET6))
			continue;
		policy_classify(m->msg_name, m->msg_namelen, &pol);
		mine = pol.verdict != POLICY_PASS;
	}
	if (!mine || shim_depth > 0 || !vec)
		return real_sendmmsg(fd, vec, n, flags);
	unsigned int done = 0;
	for (; done < n; done++) {
		ssize_t sent = send_common(fd, &vec[done].msg_hdr, flags);
		if (sent < 0)
			return done > 0 ? (int)done : -1;
		vec[done].msg_len = (unsigned int)sent;
	}
	return (int)done;
}
