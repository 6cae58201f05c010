/* SPDX-License-Identifier: MIT */
/*
 * The life of a UDP association (see udp_assoc.h): creation for a socket,
 * references (the fd table holds one per descriptor, through the functions
 * registered here), the control connection and the UDP ASSOCIATE handshake,
 * and the fork handler.
 */
#include "udp_assoc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "fdtab.h"
#include "log.h"
#include "monotime.h"
#include "policy.h"
#include "shim.h"
#include "tcp.h"
#include "udp.h"

enum {
	/* Control connections are moved at or above this descriptor number. */
	CONTROL_FD_MIN = 800,
};

/* Serialises the creation of an association for a descriptor. */
static pthread_mutex_t adopt_lock = PTHREAD_MUTEX_INITIALIZER;
/* The proxy answered UDP ASSOCIATE with "command not supported": it is not
 * asked again in this process. */
static int proxy_refuses_udp;

/* --- references ------------------------------------------------------------------- */

static void ref(void *p)
{
	struct udp_assoc *a = p;
	__atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
}

void udp_assoc_put(struct udp_assoc *a)
{
	if (!a || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	udp_assoc_drop_control(a);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static void entry_release(int fd, void *p)
{
	(void)fd;
	udp_assoc_put(p);
}

struct udp_assoc *udp_assoc_hold(int fd)
{
	return fdtab_hold(fd, FD_UDP);
}

struct udp_assoc *udp_assoc_adopt(int fd, int family)
{
	struct udp_assoc *a = udp_assoc_hold(fd);
	if (a)
		return a; /* the usual case: every datagram after the first */
	pthread_mutex_lock(&adopt_lock);
	a = udp_assoc_hold(fd);
	if (!a && (a = calloc(1, sizeof(*a)))) {
		pthread_mutex_init(&a->lock, NULL);
		a->refs = 2; /* the table's and the caller's */
		a->family = family;
		a->ctl = -1;
		a->hdr_guess = 10;
		if (!fdtab_set_payload(fd, FD_UDP, a)) {
			pthread_mutex_destroy(&a->lock);
			free(a);
			a = NULL;
		}
	}
	pthread_mutex_unlock(&adopt_lock);
	return a;
}

/* --- the control connection -----------------------------------------------------------
 */

void udp_assoc_drop_control(struct udp_assoc *a)
{
	if (a->ctl < 0)
		return;
	fdtab_unset(a->ctl, FD_UDP_CONTROL, a);
	real_close(a->ctl);
	a->ctl = -1;
	a->relay_len = 0;
}

/* The program closed the control connection fd (close_range, closefrom, or a
 * close the shim did not see): the association forgets it, so its number is
 * never closed by us again; the next datagram associates anew. */
static void control_lost(int fd, void *p)
{
	struct udp_assoc *a = p;
	pthread_mutex_lock(&a->lock);
	if (a->ctl == fd) {
		a->ctl = -1;
		a->relay_len = 0;
	}
	pthread_mutex_unlock(&a->lock);
}

bool udp_control_evacuate(int fd)
{
	const struct fd_entry *c = fdtab_lookup(fd);
	if (!c || c->kind != FD_UDP_CONTROL)
		return false;
	struct udp_assoc *a = c->payload;
	pthread_mutex_lock(&a->lock);
	int moved = real_fcntl(fd, F_DUPFD_CLOEXEC, CONTROL_FD_MIN);
	if (moved < 0)
		moved = real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
	fdtab_unset(fd, FD_UDP_CONTROL, a);
	if (moved >= 0 && fdtab_set_payload(moved, FD_UDP_CONTROL, a)) {
		a->ctl = moved;
	} else {
		/* no room: the association ends; the next datagram makes another */
		if (moved >= 0)
			real_close(moved);
		a->ctl = -1;
		a->relay_len = 0;
	}
	pthread_mutex_unlock(&a->lock);
	return true;
}

/* The control connection is alive while the proxy has said nothing on it. */
static bool control_alive(int ctl)
{
	struct pollfd p = {.fd = ctl, .events = POLLIN | POLLRDHUP};
	return poll(&p, 1, 0) == 0;
}

/* A new control connection for a, moved high and marked in the table. */
static int open_control(struct udp_assoc *a)
{
	int ctl = real_socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl < 0)
		return -errno;
	int high = real_fcntl(ctl, F_DUPFD_CLOEXEC, CONTROL_FD_MIN);
	if (high >= 0) {
		real_close(ctl);
		ctl = high;
	}
	fdtab_set_payload(ctl, FD_UDP_CONTROL, a);
	a->ctl = ctl;
	return 0;
}

/* --- the handshake -------------------------------------------------------------------
 */

/* The request's DST: the address and port the datagrams will come from, as
 * far as they are known (RFC 1928: zeros when not). */
static void request_addr(int fd, const union sa_any *proxy, struct socks5_addr *out)
{
	union sa_any local, plain;
	socklen_t len = sizeof(local);
	bool v4 = sa_ipv4(&proxy->sa) != NULL;

	memset(out, 0, sizeof(*out));
	out->atyp = v4 ? SOCKS5_ATYP_IPV4 : SOCKS5_ATYP_IPV6;
	if (getsockname(fd, &local.sa, &len) < 0)
		return;
	out->port = sa_port(&local.sa);
	if (sa_unspecified(&local.sa))
		return;
	if (sa_to_family(&local.sa, len, v4 ? AF_INET : AF_INET6, &plain))
		socks5_addr_from_sockaddr(out, &plain.sa, sizeof(plain));
}

/* Binds an unbound socket to its family's wildcard address, port 0; its
 * port (host order) into *port. */
static int bind_if_unbound(int fd, int family, uint16_t *port)
{
	union sa_any local;
	socklen_t len = sizeof(local);
	if (getsockname(fd, &local.sa, &len) < 0)
		return -errno;
	if (sa_port(&local.sa) == 0) {
		memset(&local, 0, sizeof(local));
		local.sa.sa_family = (sa_family_t)family;
		if (bind(fd, &local.sa, sa_len(&local.sa)) < 0)
			return -errno;
		len = sizeof(local);
		if (getsockname(fd, &local.sa, &len) < 0)
			return -errno;
	}
	*port = sa_port(&local.sa);
	return 0;
}

static void log_associate_error(int err)
{
	char p[300];
	const struct config_proxy *px = &shim_config.proxy;
	sa_format_hostport(px->host, px->port, p, sizeof(p));
	if (err == EOPNOTSUPP)
		shim_log(SHIM_LOG_ERROR,
		         "proxy %s does not carry UDP (UDP ASSOCIATE: command not "
		         "supported): datagrams through it fail, none is sent directly",
		         p);
	else
		shim_log(SHIM_LOG_ERROR, "UDP ASSOCIATE via %s: %s", p, strerror(err));
}

static void log_associated(const struct socks5_addr *bound, long long t0)
{
	if (!shim_log_enabled(SHIM_LOG_INFO))
		return;
	char p[300], r[SOCKS5_ADDR_STRLEN];
	const struct config_proxy *px = &shim_config.proxy;
	sa_format_hostport(px->host, px->port, p, sizeof(p));
	socks5_addr_format(bound, r, sizeof(r));
	shim_log(SHIM_LOG_INFO, "udp associate via %s: relay %s, %lld us", p, r,
	         monotime_us() - t0);
}

/* The relay the reply names, in the socket's family (0.0.0.0 or :: mean the
 * proxy's own address, at that port). 0 or -EPROTO. */
static int set_relay(struct udp_assoc *a, const struct socks5_addr *bound,
                     const union sa_any *proxy)
{
	struct sockaddr_storage ss;
	socklen_t len = socks5_addr_to_sockaddr(bound, &ss);
	if (!len || !sa_to_family((struct sockaddr *)&ss, len, a->family, &a->relay))
		return -EPROTO; /* a relay given by name, or in no usable family */
	if (sa_unspecified(&a->relay.sa)) {
		uint16_t port = sa_port(&a->relay.sa);
		a->relay = *proxy;
		sa_set_port(&a->relay.sa, port);
	}
	a->relay_len = sa_len(&a->relay.sa);
	return 0;
}

/* UDP ASSOCIATE on a new control connection (a->lock held). 0 or -errno. */
static int associate(int fd, struct udp_assoc *a)
{
	long long t0 = monotime_us();
	union sa_any proxy;
	socklen_t plen;
	int rc = policy_proxy_addr(a->family, &proxy.ss, &plen);
	if (rc < 0) {
		log_associate_error(-rc);
		return rc;
	}
	rc = bind_if_unbound(fd, a->family, &a->local_port);
	if (rc < 0) {
		shim_log(SHIM_LOG_ERROR, "udp: cannot bind the socket: %s",
		         strerror(-rc));
		return rc;
	}
	if ((rc = open_control(a)) < 0)
		return rc;
	struct socks5_addr req, bound;
	request_addr(fd, &proxy, &req);
	rc = tcp_proxy_request(a->ctl, a->family, SOCKS5_CMD_UDP_ASSOCIATE, &req, &bound);
	if (rc == 0)
		rc = set_relay(a, &bound, &proxy);
	if (rc < 0) {
		if (rc == -EOPNOTSUPP)
			__atomic_store_n(&proxy_refuses_udp, 1, __ATOMIC_RELAXED);
		log_associate_error(-rc);
		udp_assoc_drop_control(a);
		return rc;
	}
	if (a->connected && real_connect(fd, &a->relay.sa, a->relay_len) < 0) {
		rc = -errno;
		udp_assoc_drop_control(a);
		return rc;
	}
	log_associated(&bound, t0);
	return 0;
}

static int ensure(int fd, struct udp_assoc *a)
{
	if (a->ctl >= 0) {
		if (control_alive(a->ctl))
			return 0;
		shim_log(SHIM_LOG_INFO,
		         "udp: the proxy closed the association; associating again");
		udp_assoc_drop_control(a);
	}
	if (__atomic_load_n(&proxy_refuses_udp, __ATOMIC_RELAXED))
		return -EOPNOTSUPP;
	return associate(fd, a);
}

/* No re-entrancy guard: everything here calls real_* functions (policy.c
 * raises the guard itself while it resolves the proxy's name with libc). */
int udp_assoc_ensure(int fd, struct udp_assoc *a)
{
	int cancel;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	a->handshaking = true;
	int rc = ensure(fd, a);
	a->handshaking = false;
	pthread_setcancelstate(cancel, NULL);
	return rc;
}

/* --- start-up and fork -----------------------------------------------------------------
 */

/* After fork() the child has one thread: a lock another thread held (say
 * through a handshake) would never be released. Every lock is made anew,
 * and an association caught half-way through its handshake has none. */
static void reset_assoc(int fd, void *p)
{
	struct udp_assoc *a = p;
	(void)fd;
	pthread_mutex_init(&a->lock, NULL);
	if (a->handshaking) {
		a->handshaking = false;
		udp_assoc_drop_control(a);
	}
}

static void atfork_child(void)
{
	pthread_mutex_init(&adopt_lock, NULL);
	fdtab_for_each(FD_UDP, reset_assoc);
}

void udp_init(void)
{
	static const struct fdtab_ops assoc_ops = {.ref = ref, .release = entry_release};
	static const struct fdtab_ops control_ops = {.ref = NULL,
	                                             .release = control_lost};
	fdtab_register(FD_UDP, &assoc_ops);
	fdtab_register(FD_UDP_CONTROL, &control_ops);
	pthread_atfork(NULL, NULL, atfork_child);
}
