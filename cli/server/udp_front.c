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
 *   DST is 0.0.0.0 / :: of the control connection's family, or a name: the
 *     client does not say where it sends from, and its datagrams are
 *     accepted from the control connection's address only; so the front
 *     socket is of that address's family, bound on the address the control
 *     connection reached (a socket of the other family could never accept a
 *     datagram). The port is DST's, or else the first one used. A name keeps
 *     this rule: it says nothing of the client's family.
 *   DST is 0.0.0.0 (ATYP 1) over an IPv6 control connection, or :: (ATYP 4)
 *     over IPv4: the client's UDP socket is of the other family (an unbound
 *     IPv4 socket behind an IPv6 proxy, as the shim sends). The front socket
 *     is of ATYP's family, bound on: the other loopback (127.0.0.1 / ::1)
 *     when the control connection is on loopback; else an address of that
 *     family on the interface of the address the control connection
 *     reached (link-local IPv6 skipped: BND cannot carry a scope); else a -l
 *     listener's address of that family. With none, reply 8 (address type
 *     not supported) and the connection's one log line says why.
 *     The client's address of that family is unknown, so the FIRST datagram
 *     that reaches the relay (from DST's port when that is not 0) pins the
 *     source, address and port, and only it is accepted afterwards. The
 *     trade-off, as with any "first source" rule: a third party that learns
 *     the relay's port and sends before the client takes the association
 *     (the client's datagrams are then dropped, it sees no replies).
 */
#include <errno.h>
#include <ifaddrs.h>
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

/* The family of a request's 0.0.0.0 / :: when it is not the control
 * connection's (the client's UDP socket is of the other family), else 0. */
static int other_family(const struct conn *c, struct sockaddr_storage *dst)
{
	const struct socks5_addr *a = &c->req.addr;
	struct sockaddr_storage peer = c->peer;
	if (a->atyp == SOCKS5_ATYP_DOMAIN || socks5_addr_to_sockaddr(a, dst) == 0)
		return 0;
	plain(dst);
	plain(&peer);
	if (!sa_unspecified((struct sockaddr *)dst) || dst->ss_family == peer.ss_family)
		return 0;
	return dst->ss_family;
}

void udp_front_pin(struct udp_assoc *u)
{
	const struct conn *c = u->conn;
	struct sockaddr_storage dst;

	if (other_family(c, &dst)) { /* the first datagram's source, see above */
		u->source = dst;
		u->source_open = true;
		return;
	}
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

/* The loopback address of family. */
static void loopback(int family, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	out->ss_family = (sa_family_t)family;
	if (family == AF_INET)
		((struct sockaddr_in *)out)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)out)->sin6_addr = in6addr_loopback;
}

/* An address usable as BND: of family, not link-local IPv6. */
static bool usable(const struct sockaddr *sa, int family)
{
	return sa && sa->sa_family == family &&
	       !(family == AF_INET6 &&
	         IN6_IS_ADDR_LINKLOCAL(&((const struct sockaddr_in6 *)sa)->sin6_addr));
}

/* An address of family on the interface that holds local. */
static int same_interface(const struct sockaddr_storage *local, int family,
                          struct sockaddr_storage *out)
{
	struct ifaddrs *all, *i;
	const char *name = NULL;
	int rc = -EAFNOSUPPORT;

	if (getifaddrs(&all) < 0)
		return -errno;
	for (i = all; i && !name; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == local->ss_family &&
		    sa_same_host(i->ifa_addr, (const struct sockaddr *)local))
			name = i->ifa_name;
	for (i = all; name && i && rc < 0; i = i->ifa_next)
		if (usable(i->ifa_addr, family) && strcmp(i->ifa_name, name) == 0) {
			memcpy(out, i->ifa_addr, sa_len(i->ifa_addr));
			rc = 0;
		}
	freeifaddrs(all);
	return rc;
}

/* Where a front socket of family (not the control connection's) is bound,
 * local being the address the control connection reached; see above. */
static int relay_address(const struct conn *c, int family, struct sockaddr_storage *local)
{
	const struct server_config *cfg = &c->srv->cfg;
	if (sa_loopback((const struct sockaddr *)local)) {
		loopback(family, local);
		return 0;
	}
	if (same_interface(local, family, local) == 0)
		return 0;
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct sockaddr *l = (const struct sockaddr *)&cfg->listen[i];
		if (usable(l, family) && !sa_unspecified(l)) {
			memcpy(local, l, sa_len(l));
			return 0;
		}
	}
	return -EAFNOSUPPORT;
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
	int rc = 0, family = other_family(c, &dst);
	if (family)
		rc = relay_address(c, family, &local);
	else if (declared(c, &dst) && dst.ss_family != local.ss_family)
		rc = route_source(&dst, &local);
	if (rc < 0)
		return rc;
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

bool udp_front_accepts(struct udp_assoc *u, const struct sockaddr_storage *src)
{
	const struct sockaddr *s = (const struct sockaddr *)src;
	if (u->source_open) {
		uint16_t want = sa_port((const struct sockaddr *)&u->source);
		if (s->sa_family != u->source.ss_family || (want && sa_port(s) != want))
			return false;
		u->source = *src;
		u->source_open = false;
	} else if (!sa_same_host(s, (const struct sockaddr *)&u->source) ||
	           (u->client_known &&
	            sa_port(s) != sa_port((const struct sockaddr *)&u->client))) {
		return false;
	}
	if (!u->client_known) {
		u->client = *src;
		u->client_known = true;
	}
	return true;
}
