/* SPDX-License-Identifier: MIT */
/*
 * Exported hooks of the client-side BIND (cbind.h): bind() and listen() make
 * a served listener, getsockname() answers the proxy's addresses.
 */
#include <errno.h>
#include <string.h>

#include "cbind.h"
#include "cbind_int.h"
#include "fdtab.h"
#include "log.h"
#include "policy.h"
#include "shim.h"
#include "tcp_bg.h"

static bool is_inet(const struct sockaddr *addr, socklen_t len)
{
	return addr && len >= sizeof(struct sockaddr_in) &&
	       (addr->sa_family == AF_INET ||
	        (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)));
}

/* A proxied connection whose address, as getsockname() answers it, is the
 * host ctx. */
static bool local_is(int fd, const struct fd_entry *e, const void *ctx)
{
	(void)fd;
	return e->local_len && sa_same_host(&e->local.sa, ctx);
}

static bool any(int fd, const struct fd_entry *e, const void *ctx)
{
	(void)fd, (void)e, (void)ctx;
	return true;
}

/* cb's target: the destination of the proxied connection conn, port 0 (the
 * peer may connect from any port). */
static void target_of(struct cbind *cb, int conn)
{
	const struct fd_entry *e = fdtab_lookup(conn);
	struct policy pol;
	policy_classify(&e->peer.sa, e->peer_len, &pol);
	cb->target = pol.target;
	cb->target.port = 0;
}

/* The socket on loopback of its family, port 0: nothing from the network
 * reaches the listener; only the shim's poke comes. */
static int bind_loopback(int fd, int family)
{
	union sa_any lo;
	memset(&lo, 0, sizeof(lo));
	lo.sa.sa_family = (sa_family_t)family;
	if (family == AF_INET)
		lo.v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		lo.v6.sin6_addr = in6addr_loopback;
	return real_bind(fd, &lo.sa, sa_len(&lo.sa));
}

/* A program that announces the address it bound to (curl -P -) announces
 * the wrong one when the proxy listens on another (it should listen where it
 * connects from: the address the destination sees). */
static void bound_elsewhere(const struct cbind *cb)
{
	char a[SA_STRLEN], b[SA_STRLEN];
	if (!cb->eager || sa_same_host(&cb->bnd.sa, &cb->asked.sa))
		return;
	sa_format(&cb->asked.sa, a, sizeof(a));
	sa_format(&cb->bnd.sa, b, sizeof(b));
	shim_log(SHIM_LOG_INFO,
	         "BIND: the program bound to %s, the proxy listens on %s (a program "
	         "that announces the former will not get its peer)",
	         a, b);
}

/* The BIND of a socket that waits for it (CB_WANT): 0 once bound (the first
 * reply), 1 when nothing is proxied any more (the socket is a plain one
 * now), or -errno. */
static int ensure_bound(int fd, struct cbind *cb)
{
	if (cb->state == CB_FAILED && !cb->bnd_len)
		return -cb->err; /* refused once: not asked again */
	if (cb->state != CB_WANT)
		return 0;
	if (!cb->eager) {
		int conn = fdtab_newest(FD_TCP_PROXIED, any, NULL);
		if (conn < 0) {
			fdtab_unset(fd, FD_TCP_BIND, cb);
			cbind_put(cb); /* the table's reference */
			return 1;
		}
		target_of(cb, conn);
	}
	int rc = cbind_request(cb);
	if (rc == 0)
		bound_elsewhere(cb);
	if (rc < 0 && cb->eager) {
		cb->state = CB_FAILED;
		cb->err = -rc;
	}
	return rc;
}

/* bind() to addr, the address getsockname() gives for the proxied
 * connection conn: served. The socket is bound there when the kernel takes it
 * (a proxy on this host), else on loopback; BIND at the first getsockname()
 * or listen() (a program that binds its source address and connects sends
 * none). */
static int bind_served(int fd, int family, int conn, const struct sockaddr *addr,
                       socklen_t len)
{
	struct cbind *cb = cbind_new(family);
	if (!cb)
		return real_bind(fd, addr, len);
	target_of(cb, conn);
	cb->eager = true;
	memcpy(&cb->asked, addr, len < sizeof(cb->asked) ? len : sizeof(cb->asked));
	int rc = real_bind(fd, addr, len);
	if (rc < 0 && errno == EADDRNOTAVAIL)
		rc = bind_loopback(fd, family);
	if (rc < 0 || !fdtab_set_payload(fd, FD_TCP_BIND, cb)) {
		int err = errno;
		cbind_put(cb);
		errno = err;
	}
	return rc;
}

/* bind() to the wildcard, port 0, while connections are proxied: BIND at
 * listen(), for the newest proxied connection then. */
static int bind_wildcard(int fd, int family, const struct sockaddr *addr, socklen_t len)
{
	int rc = real_bind(fd, addr, len);
	if (rc < 0 || fdtab_newest(FD_TCP_PROXIED, any, NULL) < 0)
		return rc;
	struct cbind *cb = cbind_new(family);
	if (cb && !fdtab_set_payload(fd, FD_TCP_BIND, cb))
		cbind_put(cb);
	return 0;
}

SHIM_EXPORT int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	shim_init();
	if (!real_bind) {
		errno = ENOSYS;
		return -1;
	}
	int family;
	if (shim_depth > 0 || !is_inet(addr, len) || fd >= FDTAB_SIZE ||
	    fdtab_class(fd, &family) != FD_CLASS_TCP)
		return real_bind(fd, addr, len);
	fdtab_set_bound(fd);
	if (shim_config.bind == CONFIG_BIND_NEVER || sa_port(addr) != 0 ||
	    sa_loopback(addr))
		return real_bind(fd, addr, len);
	if (sa_unspecified(addr))
		return bind_wildcard(fd, family, addr, len);
	int conn = fdtab_newest(FD_TCP_PROXIED, local_is, addr);
	if (conn < 0)
		return real_bind(fd, addr, len);
	return bind_served(fd, family, conn, addr, len);
}

/* listen() of a served socket: BIND now if it waits for it, then the real
 * listen and the wait for the peer. */
static int served_listen(int fd, struct cbind *cb, int backlog)
{
	int rc = ensure_bound(fd, cb);
	if (rc == 1)
		return real_listen(fd, backlog);
	if (rc == 0 && real_listen(fd, backlog) < 0)
		rc = -errno;
	if (rc == 0 && cb->state == CB_BOUND)
		rc = cbind_start_wait(cb, fd);
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	return 0;
}

SHIM_EXPORT int listen(int fd, int backlog)
{
	shim_init();
	if (!real_listen) {
		errno = ENOSYS;
		return -1;
	}
	struct cbind *cb = shim_depth == 0 ? fdtab_hold(fd, FD_TCP_BIND) : NULL;
	if (!cb)
		return real_listen(fd, backlog);
	int rc = served_listen(fd, cb, backlog);
	int err = errno;
	cbind_put(cb);
	errno = err;
	return rc;
}

static int answer(const union sa_any *a, socklen_t alen, struct sockaddr *addr,
                  socklen_t *len)
{
	if (!addr || !len) {
		errno = EFAULT;
		return -1;
	}
	memcpy(addr, a, *len < alen ? *len : alen);
	*len = alen;
	return 0;
}

SHIM_EXPORT int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
	shim_init();
	if (!real_getsockname) {
		errno = ENOSYS;
		return -1;
	}
	const struct fd_entry *e = shim_depth == 0 ? fdtab_lookup(fd) : NULL;
	if (fdtab_kind(e) == FD_TCP_PENDING)
		tcp_bg_running(fd); /* a handshake that has ended settles the entry */
	int kind = fdtab_kind(e);
	if (kind == FD_TCP_PROXIED && e->local_len) {
		union sa_any a;
		memcpy(&a, &e->local, sizeof(e->local));
		return answer(&a, e->local_len, addr, len);
	}
	struct cbind *cb = kind == FD_TCP_BIND ? fdtab_hold(fd, FD_TCP_BIND) : NULL;
	if (!cb)
		return real_getsockname(fd, addr, len);
	int rc = cb->eager ? ensure_bound(fd, cb) : 0;
	if (rc < 0) {
		errno = -rc; /* the BIND failed: so does the call that needs it */
		rc = -1;
	} else {
		rc = cb->bnd_len ? answer(&cb->bnd, cb->bnd_len, addr, len)
		                 : real_getsockname(fd, addr, len);
	}
	int err = errno;
	cbind_put(cb);
	errno = err;
	return rc;
}
