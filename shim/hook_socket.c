/* SPDX-License-Identifier: MIT */
/*
 * Exported socket hooks: connect(), getpeername(), getsockopt(SO_ERROR),
 * sendto()/sendmsg()/sendmmsg() (datagrams and the TCP Fast Open forms).
 * Each is one straight line: the socket's class from the fd table (learned
 * once), the destination classified once (policy.c), then the call passes
 * through, fails, or goes to the TCP client (tcp.c) or the UDP module
 * (udp.h) with the verdict.
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

#include "cbind.h"
#include "fdtab.h"
#include "log.h"
#include "monotime.h"
#include "policy.h"
#include "shim.h"
#include "sockaddr.h"
#include "tcp.h"
#include "tcp_bg.h"
#include "udp.h"

/* An IPv4 or IPv6 destination (the only ones the policy looks at). */
static bool is_inet(const struct sockaddr *addr, socklen_t len)
{
	return addr && len >= sizeof(sa_family_t) &&
	       (addr->sa_family == AF_INET || addr->sa_family == AF_INET6);
}

static int deny(const char *what, const struct policy *pol)
{
	shim_log(SHIM_LOG_ERROR, "%s refused: %s", what, pol->reason);
	errno = pol->err;
	return -1;
}

/* A proxied destination on a raw, ICMP or UDP-Lite socket. */
static int not_udp(const char *what)
{
	shim_log(SHIM_LOG_ERROR,
	         "%s refused: only UDP goes through a SOCKS5 proxy (this socket is raw, "
	         "ICMP or UDP-Lite)",
	         what);
	errno = EPROTONOSUPPORT;
	return -1;
}

/* --- TCP --------------------------------------------------------------------------- */

/* Connects through the proxy and records the outcome; the hook's return value. */
static int proxied_connect(int fd, const struct sockaddr *addr, socklen_t len,
                           const struct policy *pol)
{
	long long t0 = monotime_us();
	int fl = real_fcntl(fd, F_GETFL);
	bool nonblocking = fl >= 0 && (fl & O_NONBLOCK);
	if (nonblocking && tcp_bg_eligible(fd) &&
	    tcp_bg_connect(fd, addr, len, pol) == 0) {
		errno = EINPROGRESS; /* the handshake runs in the background */
		return -1;
	}
	struct socks5_addr bnd;
	int rc = tcp_connect_via_proxy(fd, addr->sa_family, &pol->target, fl, &bnd);
	tcp_log_connect(&pol->target, tcp_last_via, rc, t0);
	if (rc == 0) {
		fdtab_set_proxied(fd, addr, len);
		cbind_note_connected(fd, &bnd);
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
	fdtab_set_failed(fd, -rc, nonblocking);
	errno = nonblocking && fdtab_lookup(fd) ? EINPROGRESS : -rc;
	return -1;
}

/* connect() of a TCP socket to a classified destination. */
static int tcp_connect(int fd, const struct sockaddr *addr, socklen_t len,
                       const struct policy *pol)
{
	switch (pol->verdict) {
	case POLICY_PASS:
		return real_connect(fd, addr, len);
	case POLICY_DENY:
		return deny("connect", pol);
	case POLICY_PROXY:
	default:
		return proxied_connect(fd, addr, len, pol);
	}
}

/* connect() of a datagram socket to a classified destination. */
static int dgram_connect(int fd, enum fd_class cls, int family,
                         const struct sockaddr *addr, socklen_t len,
                         const struct policy *pol)
{
	if (pol->verdict == POLICY_DENY)
		return deny("datagram", pol);
	if (pol->verdict == POLICY_PROXY && cls != FD_CLASS_UDP) {
		shim_log(SHIM_LOG_ERROR,
		         "connect refused: only UDP goes through a SOCKS5 "
		         "proxy (this socket is raw, ICMP or UDP-Lite)");
		errno = EPROTONOSUPPORT;
		return -1;
	}
	return udp_connect(fd, family, addr, len, pol);
}

/* A second connect() on a socket the shim connected, as the kernel answers it. */
static int connect_again(int fd, const struct fd_entry *e)
{
	if (fdtab_kind(e) == FD_TCP_PENDING && tcp_bg_running(fd))
		errno = EALREADY;
	else
		errno = fdtab_kind(e) == FD_UDP_CONTROL ? EBADF : fdtab_connect_again(fd);
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
	const struct fd_entry *e = fdtab_lookup(fd);
	if (fdtab_kind(e) == FD_TCP_BIND)
		cbind_forget(fd);
	if (e && fdtab_kind(e) != FD_NONE && fdtab_kind(e) != FD_UDP)
		return connect_again(fd, e);
	if (addr && len >= sizeof(sa_family_t) && addr->sa_family == AF_UNSPEC)
		return udp_disconnect(fd, addr, len);
	int family;
	enum fd_class cls =
	        is_inet(addr, len) ? fdtab_class(fd, &family) : FD_CLASS_OTHER;
	if (cls == FD_CLASS_OTHER || cls == FD_CLASS_UNKNOWN)
		return real_connect(fd, addr, len);
	struct policy pol;
	policy_classify(addr, len, &pol);
	if (cls == FD_CLASS_TCP || cls == FD_CLASS_UDP)
		policy_dns_redirect(addr, &pol);
	if (cls == FD_CLASS_TCP)
		return tcp_connect(fd, addr, len, &pol);
	return dgram_connect(fd, cls, family, addr, len, &pol);
}

SHIM_EXPORT int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	const struct fd_entry *e = fdtab_lookup(fd);
	if (e && fdtab_kind(e) == FD_TCP_PENDING && tcp_bg_running(fd)) {
		errno = ENOTCONN;
		return -1;
	}
	e = fdtab_lookup(fd);
	int kind = e ? fdtab_kind(e) : FD_NONE;
	if (!real_getpeername) {
		errno = ENOSYS;
		return -1;
	}
	if (kind == FD_UDP)
		return udp_getpeername(fd, addr, len);
	if (kind == FD_TCP_FAILED) {
		errno = ENOTCONN;
		return -1;
	}
	if (kind != FD_TCP_PROXIED)
		return real_getpeername(fd, addr, len);
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
	const struct fd_entry *e;
	if (level == SOL_SOCKET && name == SO_ERROR && (e = fdtab_lookup(fd)) &&
	    fdtab_kind(e) == FD_TCP_PENDING && tcp_bg_running(fd) && val && len &&
	    *len >= sizeof(int)) {
		memset(val, 0, sizeof(int)); /* still in progress */
		*len = sizeof(int);
		return 0;
	}
	if (level != SOL_SOCKET || name != SO_ERROR || !(e = fdtab_lookup(fd)) ||
	    fdtab_kind(e) != FD_TCP_FAILED || !val || !len || *len < sizeof(int))
		return real_getsockopt ? real_getsockopt(fd, level, name, val, len)
		                       : (errno = ENOSYS, -1);
	int err = fdtab_take_error(fd);
	memcpy(val, &err, sizeof(int));
	*len = sizeof(int);
	return 0;
}

/* --- sending ------------------------------------------------------------------------ */

/* TCP Fast Open carries data in the SYN: through the proxy it becomes
 * connect + send. */
static ssize_t fastopen(int fd, const struct msghdr *msg, int flags)
{
	const struct fd_entry *e = fdtab_lookup(fd);
	struct policy pol = {.verdict = POLICY_PASS};
	if (!e || fdtab_kind(e) == FD_NONE)
		policy_classify(msg->msg_name, msg->msg_namelen, &pol);
	if (pol.verdict == POLICY_PASS)
		return real_sendmsg(fd, msg, flags);
	if (tcp_connect(fd, msg->msg_name, msg->msg_namelen, &pol) < 0 &&
	    errno != EINPROGRESS && errno != EISCONN)
		return -1;
	struct msghdr m = *msg;
	m.msg_name = NULL;
	m.msg_namelen = 0;
	return real_sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
}

/* A datagram to a classified destination on a socket of class cls. */
static ssize_t dgram_send_to(int fd, enum fd_class cls, int family,
                             const struct msghdr *msg, int flags,
                             const struct policy *pol)
{
	if (pol->verdict == POLICY_PASS)
		return real_sendmsg(fd, msg, flags);
	if (pol->verdict == POLICY_DENY)
		return deny("datagram", pol);
	if (cls != FD_CLASS_UDP)
		return not_udp("datagram");
	return udp_send_to(fd, family, msg, flags, pol);
}

static bool is_unspec(const struct sockaddr *addr, socklen_t len)
{
	return addr && len >= sizeof(sa_family_t) && addr->sa_family == AF_UNSPEC;
}

/* A datagram's AF_UNSPEC address as the kernel reads it: an IPv4 socket
 * sends to it as to an AF_INET one (so it is classified as one, never sent
 * around the proxy), an IPv6 socket ignores it (the connected peer). Returns
 * msg, or copy with the address in addr. */
static const struct msghdr *unspec_as_kernel(int fd, const struct msghdr *msg,
                                             struct msghdr *copy, union sa_any *addr)
{
	int family = 0;
	if (!is_unspec(msg->msg_name, msg->msg_namelen) ||
	    fdtab_class(fd, &family) == FD_CLASS_OTHER)
		return msg;
	*copy = *msg;
	copy->msg_name = NULL;
	copy->msg_namelen = 0;
	if (family == AF_INET && msg->msg_namelen >= sizeof(struct sockaddr_in)) {
		memcpy(&addr->v4, msg->msg_name, sizeof(addr->v4));
		addr->v4.sin_family = AF_INET;
		copy->msg_name = &addr->v4;
		copy->msg_namelen = sizeof(addr->v4);
	}
	return copy;
}

/* sendmsg() of one message: pol is its destination's verdict when the
 * caller has it already (else NULL). No re-entrancy guard across the send. */
static ssize_t send_one(int fd, const struct msghdr *msg, int flags,
                        const struct policy *pol)
{
	struct msghdr copy;
	union sa_any addr;
	msg = unspec_as_kernel(fd, msg, &copy, &addr);
	const struct fd_entry *e = fdtab_lookup(fd);
	if (!is_inet(msg->msg_name, msg->msg_namelen)) {
		if ((!msg->msg_name || !msg->msg_namelen) && e && fdtab_kind(e) == FD_UDP)
			return udp_send_connected(fd, msg, flags);
		return real_sendmsg(fd, msg, flags);
	}
	int family;
	enum fd_class cls = fdtab_class(fd, &family);
	if (cls == FD_CLASS_TCP && (flags & MSG_FASTOPEN))
		return fastopen(fd, msg, flags);
	if (cls != FD_CLASS_UDP && cls != FD_CLASS_DGRAM_OTHER)
		return real_sendmsg(fd, msg, flags);
	struct policy own;
	if (!pol) {
		policy_classify(msg->msg_name, msg->msg_namelen, &own);
		if (cls == FD_CLASS_UDP)
			policy_dns_redirect(msg->msg_name, &own);
		pol = &own;
	}
	return dgram_send_to(fd, cls, family, msg, flags, pol);
}

SHIM_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags,
                           const struct sockaddr *addr, socklen_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
	struct msghdr msg = {.msg_name = (void *)addr,
	                     .msg_namelen = addr ? len : 0,
	                     .msg_iov = &iov,
	                     .msg_iovlen = 1};

	shim_init();
	if (!real_sendto || !real_sendmsg) {
		errno = ENOSYS;
		return -1;
	}
	/* fdtab_kind() of NULL (untracked) is FD_NONE */
	const struct fd_entry *e = fdtab_lookup(fd);
	if (fdtab_kind(e) == FD_TCP_PENDING && shim_depth == 0 && tcp_bg_gate(fd) < 0)
		return -1;
	if (shim_depth > 0 || (!addr && fdtab_kind(e) != FD_UDP))
		return real_sendto(fd, buf, n, flags, addr, len);
	return send_one(fd, &msg, flags, NULL);
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
	const struct fd_entry *e = fdtab_lookup(fd);
	if (e && fdtab_kind(e) == FD_TCP_PENDING && tcp_bg_gate(fd) < 0)
		return -1;
	return send_one(fd, msg, flags, NULL);
}

/* The first datagram of vec that is the shim's business on an unassociated
 * datagram socket, with its verdict in *pol; n when there is none. */
static unsigned int first_proxied(int fd, const struct mmsghdr *vec, unsigned int n,
                                  struct policy *pol, bool *have_pol)
{
	*have_pol = true;
	int family;
	enum fd_class cls = FD_CLASS_UNKNOWN;
	for (unsigned int i = 0; i < n; i++) {
		const struct msghdr *m = &vec[i].msg_hdr;
		if (is_unspec(m->msg_name, m->msg_namelen)) {
			*have_pol = false; /* send_one reads it as the kernel does */
			return i;
		}
		if (!is_inet(m->msg_name, m->msg_namelen))
			continue;
		if (cls == FD_CLASS_UNKNOWN)
			cls = fdtab_class(fd, &family);
		if (cls != FD_CLASS_UDP && cls != FD_CLASS_DGRAM_OTHER)
			return n;
		policy_classify(m->msg_name, m->msg_namelen, pol);
		if (cls == FD_CLASS_UDP)
			policy_dns_redirect(m->msg_name, pol);
		if (pol->verdict != POLICY_PASS)
			return i;
	}
	return n;
}

/* One datagram at a time once any of them is the shim's business; each
 * destination is classified once. */
SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags)
{
	shim_init();
	if (!real_sendmmsg || !real_sendmsg) {
		errno = ENOSYS;
		return -1;
	}
	if (shim_depth > 0 || !vec)
		return real_sendmmsg(fd, vec, n, flags);
	const struct fd_entry *e = fdtab_lookup(fd);
	struct policy pol;
	/* an untracked socket keeps its batch unless a datagram needs the proxy;
	 * the verdict found on the way is used for that datagram */
	bool assoc = e && fdtab_kind(e) == FD_UDP, have_pol = false;
	unsigned int first = assoc ? 0 : first_proxied(fd, vec, n, &pol, &have_pol);
	if (first == n)
		return real_sendmmsg(fd, vec, n, flags);
	unsigned int done = 0;
	for (; done < n; done++) {
		const struct msghdr *m = &vec[done].msg_hdr;
		ssize_t sent =
		        done < first ? real_sendmsg(fd, m, flags)
		                     : send_one(fd, m, flags,
		                                done == first && have_pol ? &pol : NULL);
		if (sent < 0)
			return done > 0 ? (int)done : -1;
		vec[done].msg_len = (unsigned int)sent;
	}
	return (int)done;
}
