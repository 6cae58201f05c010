/* SPDX-License-Identifier: MIT */
/*
 * The client side of a UDP association (see udp.c): which family and address
 * the front socket has, and which source it accepts, both read from the
 * request's DST (the address and port the client's datagrams will come from).
 *
 *   DST names an address (IPv4 or IPv6, not 0.0.0.0 / ::): the front socket
 *     is of DST's family, whatever the control connection's is; it is bound
 *     on the address the control connection reached when that is of the same
 *     family, else on the address this host would send to DST from (the
 *     route's source), so that BND is always an address the client can use
 *     and replies leave from it. Datagrams are accepted from DST's address
 *     only, and from DST's port (or, when that is 0, from the first port).
 *   DST is 0.0.0.0 / :: or a name: the client does not say where it sends
 *     from, and its datagrams are accepted from the control connection's
 *     address only; so the front socket is of that address's family, bound
 *     on the address the control connection reached (a socket of the other
 *     family could never accept a datagram). The port is DST's, or else the
 *     first one used.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "sockaddr.h"
#include "udp_int.h"

/* sa, with a v4-mapped IPv6 address made plain IPv4. */
static void plain(struct sockaddr_storage *sa)
{
	union sa_any v4;
	if (sa->ss_family == AF_INET6 && sa_ipv4((struct sockaddr *)sa) &&
	    sa_to_family((struct sockaddr *)sa, sizeof(struct sockaddr_in6), AF_INET,
	                 &v4))
		memcpy(sa, &v4, sizeof(v4.v4));
}

/* The request's DST as an address, when it names one (not 0.0.0.0 / ::). */
static bool declared(const struct conn *c, struct sockaddr_storage *dst)
{
	const struct socks5_addr *a = &c->req.addr;
	if (a->atyp == SOCKS5_ATYP_DOMAIN || socks5_addr_to_sockaddr(a, dst) == 0)
		return false;
	plain(dst);
	return !sa_unspecified((struct sockaddr *)dst);
}

void udp_front_pin(struct udp_assoc *u)
{
	const struct conn *c = u->conn;
	struct sockaddr_storage dst;

	if (declared(c, &dst)) {
		u->source = dst;
	} else {
		u->source = c->peer;
		plain(&u->source);
	}
	uint16_t port = c->req.addr.atyp == SOCKS5_ATYP_DOMAIN ? 0 : c->req.addr.port;
	if (port) {
		u->client = u->source;
		sa_set_port((struct sockaddr *)&u->client, port);
		u->client_known = true;
	}
}

/* The address this host sends to dst from (a UDP connect() asks the routing
 * table and sends nothing). */
static int route_source(const struct sockaddr_storage *dst, struct sockaddr_storage *src)
{
	socklen_t len = sizeof(*src);
	int fd = socket(dst->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = connect(fd, (const struct sockaddr *)dst,
	                 sa_len((const struct sockaddr *)dst));
	if (rc == 0)
		rc = getsockname(fd, (struct sockaddr *)src, &len);
	if (rc < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int udp_front_socket(struct udp_assoc *u, struct sockaddr_storage *bound, socklen_t *blen)
{
	const struct conn *c = u->conn;
	struct sockaddr_storage local, dst;
	socklen_t len = sizeof(local);
	int one = 1;

	if (getsockname(c->client.fd, (struct sockaddr *)&local, &len) < 0)
		return -errno;
	plain(&local);
	if (declared(c, &dst) && dst.ss_family != local.ss_family) {
		int rc = route_source(&dst, &local);
		if (rc < 0)
			return rc;
	}
	sa_set_port((struct sockaddr *)&local, 0);
	int fd = socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (local.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	*blen = sizeof(*bound);
	if (bind(fd, (struct sockaddr *)&local, sa_len((struct sockaddr *)&local)) < 0 ||
	    getsockname(fd, (struct sockaddr *)bound, blen) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}
