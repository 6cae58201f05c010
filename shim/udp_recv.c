/* SPDX-License-Identifier: MIT */
/*
 * Datagrams in from the relay (see udp.h): one recvmsg() into
 *   [header guess][the program's iovecs][spill]
 * (udp_layout.h), the header checked and stripped, the source reported as
 * the program expects it. MSG_TRUNC is always asked of the kernel, which
 * then returns the datagram's real length.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "fakedns.h"
#include "policy.h"
#include "shim.h"
#include "udp.h"
#include "udp_assoc.h"
#include "udp_layout.h"

enum { IOV_STACK = 16 }; /* iovecs on the stack; more are allocated */

static bool socks_same(const struct socks5_addr *x, const struct socks5_addr *y)
{
	if (x->atyp != y->atyp || x->port != y->port)
		return false;
	switch (x->atyp) {
	case SOCKS5_ATYP_IPV4:
		return memcmp(x->host.ipv4, y->host.ipv4, 4) == 0;
	case SOCKS5_ATYP_IPV6:
		return memcmp(x->host.ipv6, y->host.ipv6, 16) == 0;
	default:
		return x->domain_len == y->domain_len &&
		       strncasecmp(x->host.domain, y->host.domain, x->domain_len) == 0;
	}
}

/* A SOCKS address as an address of `family` (a name: its fake address, when
 * it has one); 0 when it has none there. */
static socklen_t socks_to_sa(const struct socks5_addr *s, int family, union sa_any *out)
{
	if (s->atyp != SOCKS5_ATYP_DOMAIN) {
		struct sockaddr_storage ss;
		socklen_t len = socks5_addr_to_sockaddr(s, &ss);
		return len ? sa_to_family((struct sockaddr *)&ss, len, family, out) : 0;
	}
	memset(out, 0, sizeof(*out));
	out->sa.sa_family = (sa_family_t)family;
	sa_set_port(&out->sa, s->port);
	void *addr = family == AF_INET ? (void *)&out->v4.sin_addr
	                               : (void *)&out->v6.sin6_addr;
	return fakedns_addr_for(s->host.domain, family, addr) < 0 ? 0 : sa_len(&out->sa);
}

/* The fake address of the name the program sent to whose reply this is
 * (a->lock held): matched by port, the first new source with that port is
 * taken as the name's, and remembered. 0 when there is none. */
static socklen_t name_source(struct udp_assoc *a, const struct socks5_addr *src,
                             union sa_any *out)
{
	struct udp_name *fresh = NULL;
	for (unsigned i = 0; i < UDP_NAMES_MAX; i++) {
		struct udp_name *n = &a->names[i];
		if (!n->used || n->port != src->port)
			continue;
		if (n->learned && socks_same(&n->real, src)) {
			*out = n->fake;
			return n->fake_len;
		}
		if (!n->learned)
			fresh = n;
	}
	if (!fresh)
		return 0;
	fresh->learned = true;
	fresh->real = *src;
	*out = fresh->fake;
	return fresh->fake_len;
}

/*
 * Where a datagram that the relay brings from src is reported to come from
 * (a->lock held); 0 when it is to be dropped. A connected socket hears its
 * peer only. A reply to a name the program sent to (through a fake address)
 * comes from whatever the proxy resolved the name to, in either family: it
 * is reported from the fake address.
 */
static socklen_t relay_source(struct udp_assoc *a, const struct socks5_addr *src,
                              union sa_any *out)
{
	if (a->connected) {
		if (a->target.atyp != SOCKS5_ATYP_DOMAIN && !socks_same(&a->target, src))
			return 0;
		*out = a->peer;
		return a->peer_len;
	}
	socklen_t len = name_source(a, src, out);
	return len ? len : socks_to_sa(src, a->family, out);
}

/* One datagram as received, and what to make of it. */
struct rx {
	struct udp_layout l;
	union sa_any src; /* the kernel's source */
	socklen_t src_len;
	union sa_any from; /* the source to report */
	socklen_t from_len;
	size_t off; /* the payload's offset */
};

/* Decides on a datagram (a->lock held): true to hand it over, with rx->off
 * and rx->from set. From the relay: a well-formed unfragmented header. From
 * elsewhere: only a source that goes direct, and not the proxy (a relay of
 * an earlier association, or anyone writing from the proxy host's ports). */
static bool accept_datagram(struct udp_assoc *a, struct rx *rx)
{
	if (a->relay_len && rx->src_len == a->relay_len &&
	    sa_same(&rx->src.sa, &a->relay.sa)) {
		uint8_t head[SOCKS5_UDP_HEADER_MAX];
		struct socks5_udp_header uh;
		size_t hn = rx->l.have < sizeof(head) ? rx->l.have : sizeof(head);
		udp_layout_read(&rx->l, 0, head, hn);
		ssize_t h = socks5_udp_header_parse(head, hn, &uh);
		if (h <= 0 || uh.frag != 0)
			return false;
		rx->off = (size_t)h;
		a->hdr_guess = (int)h;
		rx->from_len = relay_source(a, &uh.addr, &rx->from);
		return rx->from_len > 0;
	}
	struct policy pol;
	policy_classify(&rx->src.sa, rx->src_len, &pol);
	rx->off = 0;
	rx->from = rx->src;
	rx->from_len = rx->src_len;
	return pol.verdict == POLICY_PASS && !policy_is_proxy(&rx->src.sa, rx->src_len);
}

/* Hands the kept datagram over: the payload in place, the program's
 * msg_name, msg_flags and control length set. Its return value. */
static ssize_t deliver(struct rx *rx, size_t total, size_t ulen, const struct msghdr *m,
                       struct msghdr *msg, int flags)
{
	if (rx->off != rx->l.g) {
		int rc = udp_layout_shift(&rx->l, rx->off, ulen);
		if (rc < 0) {
			errno = -rc;
			return -1;
		}
	}
	size_t payload = total - rx->off;
	msg->msg_flags = (m->msg_flags & ~MSG_TRUNC) | (payload > ulen ? MSG_TRUNC : 0);
	msg->msg_controllen = m->msg_controllen;
	if (msg->msg_name) {
		memcpy(msg->msg_name, &rx->from,
		       msg->msg_namelen < rx->from_len ? msg->msg_namelen : rx->from_len);
		msg->msg_namelen = rx->from_len;
	}
	return (ssize_t)((flags & MSG_TRUNC) || payload < ulen ? payload : ulen);
}

/* Discards the datagram that a MSG_PEEK left in the queue. */
static void discard_peeked(int fd)
{
	char c;
	real_recv(fd, &c, 0, MSG_DONTWAIT);
}

/* Receives until a datagram is kept (or an error); iov is
 * [hdr][the program's iovecs][spill], iov[0] set here. */
static ssize_t recv_loop(int fd, struct udp_assoc *a, struct msghdr *msg, int flags,
                         struct iovec *iov, size_t ulen)
{
	uint8_t hdr[SOCKS5_UDP_HEADER_MAX];
	const struct iovec *spill = &iov[msg->msg_iovlen + 1];
	for (;;) {
		pthread_mutex_lock(&a->lock);
		size_t g = (size_t)a->hdr_guess;
		pthread_mutex_unlock(&a->lock);
		iov[0] = (struct iovec){.iov_base = hdr, .iov_len = g};
		struct rx rx = {.l = {hdr, g, msg->msg_iov, msg->msg_iovlen,
		                      spill->iov_base, spill->iov_len, 0}};
		struct msghdr m = {.msg_name = &rx.src,
		                   .msg_namelen = sizeof(rx.src),
		                   .msg_iov = iov,
		                   .msg_iovlen = msg->msg_iovlen + 2,
		                   .msg_control = msg->msg_control,
		                   .msg_controllen = msg->msg_controllen};
		ssize_t total = real_recvmsg(fd, &m, flags | MSG_TRUNC);
		if (total < 0)
			return -1;
		size_t room = g + ulen + spill->iov_len;
		rx.l.have = (size_t)total < room ? (size_t)total : room;
		rx.src_len = m.msg_namelen;
		pthread_mutex_lock(&a->lock);
		bool keep = accept_datagram(a, &rx);
		pthread_mutex_unlock(&a->lock);
		if (keep)
			return deliver(&rx, (size_t)total, ulen, &m, msg, flags);
		if (flags & MSG_PEEK)
			discard_peeked(fd);
	}
}

static ssize_t recv_held(int fd, struct udp_assoc *a, struct msghdr *msg, int flags)
{
	uint8_t spill[SOCKS5_UDP_HEADER_MAX];
	struct iovec stack_iov[IOV_STACK], *iov = stack_iov;
	size_t ulen = 0;

	if (msg->msg_iovlen > IOV_MAX - 2) {
		errno = EMSGSIZE;
		return -1;
	}
	for (size_t i = 0; i < msg->msg_iovlen; i++)
		ulen += msg->msg_iov[i].iov_len;
	if (msg->msg_iovlen + 2 > IOV_STACK &&
	    !(iov = malloc((msg->msg_iovlen + 2) * sizeof(*iov)))) {
		errno = ENOBUFS;
		return -1;
	}
	if (msg->msg_iovlen)
		memcpy(iov + 1, msg->msg_iov, msg->msg_iovlen * sizeof(*iov));
	iov[msg->msg_iovlen + 1] =
	        (struct iovec){.iov_base = spill, .iov_len = sizeof(spill)};
	ssize_t ret = recv_loop(fd, a, msg, flags, iov, ulen);
	if (iov != stack_iov) {
		int err = errno;
		free(iov);
		errno = err;
	}
	return ret;
}

ssize_t udp_recv(int fd, struct msghdr *msg, int flags)
{
	struct udp_assoc *a = (flags & MSG_ERRQUEUE) ? NULL : udp_assoc_hold(fd);
	if (!a)
		return real_recvmsg(fd, msg, flags);
	ssize_t rc = recv_held(fd, a, msg, flags);
	int err = errno;
	udp_assoc_put(a);
	errno = err;
	return rc;
}
