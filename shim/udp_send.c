/* SPDX-License-Identifier: MIT */
/*
 * Datagrams out through the relay, and connect()/getpeername() of an
 * associated socket (see udp.h).
 */
#include <errno.h>
#include <limits.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "log.h"
#include "shim.h"
#include "udp.h"
#include "udp_assoc.h"

enum { IOV_STACK = 16 }; /* iovecs on the stack; more are allocated */

static ssize_t refuse(const char *why, int err)
{
	shim_log(SHIM_LOG_ERROR, "datagram refused: %s", why);
	errno = err;
	return -1;
}

/* Remembers that the program sent to the fake address dst, or to the
 * resolv.conf nameserver dst that policy_dns_redirect() pointed elsewhere:
 * replies from the proxy's target with port `port` are reported from dst
 * (a->lock held). */
static void remember_name(struct udp_assoc *a, const struct sockaddr *dst, socklen_t len,
                          uint16_t port)
{
	union sa_any fake;
	socklen_t flen = sa_to_family(dst, len, a->family, &fake);
	if (!flen)
		return;
	for (unsigned i = 0; i < UDP_NAMES_MAX; i++)
		if (a->names[i].used && sa_same(&a->names[i].fake.sa, &fake.sa))
			return;
	struct udp_name *n = &a->names[a->names_next++ % UDP_NAMES_MAX];
	memset(n, 0, sizeof(*n));
	n->used = true;
	n->fake = fake;
	n->fake_len = flen;
	n->port = port;
}

/* A control message asking for UDP segmentation offload: one header per
 * datagram cannot be had that way. */
static bool wants_gso(const struct msghdr *msg)
{
	if (!msg->msg_control || msg->msg_controllen < sizeof(struct cmsghdr))
		return false;
	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c;
	     c = CMSG_NXTHDR((struct msghdr *)msg, c))
		if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_SEGMENT)
			return true;
	return false;
}

/* The datagram behind the section 7 header hdr, to the relay, in one
 * sendmsg(); the payload's length sent, or -1. */
static ssize_t send_framed(int fd, const struct msghdr *msg, int flags, uint8_t *hdr,
                           size_t hlen, const union sa_any *relay, socklen_t relay_len)
{
	if (msg->msg_iovlen >= IOV_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	struct iovec stack_iov[IOV_STACK], *iov = stack_iov;
	if (msg->msg_iovlen + 1 > IOV_STACK &&
	    !(iov = malloc((msg->msg_iovlen + 1) * sizeof(*iov)))) {
		errno = ENOBUFS;
		return -1;
	}
	iov[0] = (struct iovec){.iov_base = hdr, .iov_len = hlen};
	if (msg->msg_iovlen)
		memcpy(iov + 1, msg->msg_iov, msg->msg_iovlen * sizeof(*iov));
	struct msghdr m = *msg;
	m.msg_name = (void *)relay;
	m.msg_namelen = relay_len;
	m.msg_iov = iov;
	m.msg_iovlen = msg->msg_iovlen + 1;
	ssize_t sent = real_sendmsg(fd, &m, flags);
	int err = errno;
	if (iov != stack_iov)
		free(iov);
	errno = err;
	if (sent < 0)
		return -1;
	return (size_t)sent >= hlen ? sent - (ssize_t)hlen : 0;
}

/* Sends msg to target through a's relay: at once, or, while a
 * non-blocking socket's association is made in the background, queued. */
static ssize_t send_held(int fd, struct udp_assoc *a, const struct msghdr *msg, int flags,
                         const struct policy *pol)
{
	const struct socks5_addr *target = &pol->target;
	uint8_t hdr[SOCKS5_UDP_HEADER_MAX];
	size_t hlen = socks5_udp_header_encode(hdr, sizeof(hdr), 0, target);
	if (hlen == 0) {
		errno = EINVAL;
		return -1;
	}
	if (flags & MSG_MORE)
		return refuse("MSG_MORE would join datagrams behind one SOCKS header",
		              EOPNOTSUPP);
	if (wants_gso(msg))
		return refuse(
		        "UDP_SEGMENT (GSO) would split datagrams after the SOCKS header",
		        EOPNOTSUPP);
	pthread_mutex_lock(&a->lock);
	ssize_t rc = udp_assoc_ensure(fd, a, true, flags);
	bool queued = rc == 1;
	if (rc >= 0 && msg->msg_name &&
	    (target->atyp == SOCKS5_ATYP_DOMAIN || pol->dns_redirect))
		remember_name(a, msg->msg_name, msg->msg_namelen, target->port);
	if (queued)
		rc = udp_assoc_queue(a, hdr, hlen, msg);
	union sa_any relay = a->relay;
	socklen_t relay_len = a->relay_len;
	pthread_mutex_unlock(&a->lock);
	if (rc < 0) {
		errno = (int)-rc;
		return -1;
	}
	if (queued)
		return rc;
	return send_framed(fd, msg, flags, hdr, hlen, &relay, relay_len);
}

ssize_t udp_send_to(int fd, int family, const struct msghdr *msg, int flags,
                    const struct policy *pol)
{
	struct udp_assoc *a = udp_assoc_adopt(fd, family);
	if (!a)
		return refuse("the descriptor is beyond the shim's table", EMFILE);
	ssize_t rc = send_held(fd, a, msg, flags, pol);
	int err = errno;
	udp_assoc_put(a);
	errno = err;
	return rc;
}

ssize_t udp_send_connected(int fd, const struct msghdr *msg, int flags)
{
	struct udp_assoc *a = udp_assoc_hold(fd);
	struct policy pol = {.verdict = POLICY_PROXY};
	bool connected = false;
	if (a) {
		pthread_mutex_lock(&a->lock);
		connected = a->connected;
		pol.target = a->target;
		pthread_mutex_unlock(&a->lock);
	}
	/* not connected through the proxy: the kernel answers (EDESTADDRREQ,
	 * or a direct peer) */
	ssize_t rc = connected ? send_held(fd, a, msg, flags, &pol)
	                       : real_sendmsg(fd, msg, flags);
	int err = errno;
	udp_assoc_put(a);
	errno = err;
	return rc;
}

/* --- connect / getpeername --------------------------------------------------------- */

bool udp_is_connected(int fd)
{
	struct udp_assoc *a = udp_assoc_hold(fd);
	bool connected = a && __atomic_load_n(&a->connected, __ATOMIC_RELAXED);
	udp_assoc_put(a);
	return connected;
}

/* connect() through the proxy (a->lock held): associates, connects the
 * kernel socket to the relay, remembers the destination. */
static int connect_proxied(int fd, struct udp_assoc *a, const struct sockaddr *addr,
                           socklen_t len, const struct policy *pol)
{
	/* a non-blocking socket associates in the background (1): the helper
	 * thread connects it to the relay when the proxy has answered */
	int rc = udp_assoc_ensure(fd, a, true, 0);
	if (rc == 0 && real_connect(fd, &a->relay.sa, a->relay_len) < 0)
		rc = -errno;
	if (rc < 0)
		return rc;
	/* as the kernel reports it: an IPv4 peer of an IPv6 socket is v4-mapped */
	a->peer_len = sa_to_family(addr, len, a->family, &a->peer);
	a->target = pol->target;
	if (pol->target.atyp == SOCKS5_ATYP_DOMAIN || pol->dns_redirect)
		remember_name(a, addr, len, pol->target.port);
	__atomic_store_n(&a->connected, true, __ATOMIC_RELAXED);
	return 0;
}

int udp_connect(int fd, int family, const struct sockaddr *addr, socklen_t len,
                const struct policy *pol)
{
	struct udp_assoc *a = pol->verdict == POLICY_PROXY ? udp_assoc_adopt(fd, family)
	                                                   : udp_assoc_hold(fd);
	if (!a) {
		if (pol->verdict == POLICY_PROXY) {
			errno = EMFILE;
			return -1;
		}
		return real_connect(fd, addr, len);
	}
	int rc;
	pthread_mutex_lock(&a->lock);
	if (pol->verdict == POLICY_PROXY) {
		rc = connect_proxied(fd, a, addr, len, pol);
		if (rc < 0) {
			errno = -rc;
			rc = -1;
		}
	} else {
		/* a direct peer now: the kernel filters and reports for it */
		__atomic_store_n(&a->connected, false, __ATOMIC_RELAXED);
		rc = real_connect(fd, addr, len);
	}
	int err = errno;
	pthread_mutex_unlock(&a->lock);
	udp_assoc_put(a);
	errno = err;
	return rc;
}

int udp_disconnect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct udp_assoc *a = udp_assoc_hold(fd);
	int rc = real_connect(fd, addr, len);
	if (!a || rc < 0) {
		int err = errno;
		udp_assoc_put(a);
		errno = err;
		return rc;
	}
	/* The kernel unbinds a socket whose port it chose when its connection
	 * is dissolved: an association announced with that port is then of no
	 * use, and the next datagram makes another. */
	union sa_any local;
	socklen_t llen = sizeof(local);
	pthread_mutex_lock(&a->lock);
	__atomic_store_n(&a->connected, false, __ATOMIC_RELAXED);
	if (getsockname(fd, &local.sa, &llen) < 0 || sa_port(&local.sa) != a->local_port)
		udp_assoc_drop_control(a);
	pthread_mutex_unlock(&a->lock);
	udp_assoc_put(a);
	return 0;
}

int udp_getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct udp_assoc *a = udp_assoc_hold(fd);
	int rc = 0;
	if (!a || !__atomic_load_n(&a->connected, __ATOMIC_RELAXED)) {
		rc = real_getpeername(fd, addr, len);
	} else if (!addr || !len) {
		errno = EFAULT;
		rc = -1;
	} else {
		pthread_mutex_lock(&a->lock);
		memcpy(addr, &a->peer, *len < a->peer_len ? *len : a->peer_len);
		*len = a->peer_len;
		pthread_mutex_unlock(&a->lock);
	}
	int err = errno;
	udp_assoc_put(a);
	errno = err;
	return rc;
}
