/* SPDX-License-Identifier: MIT */
/*
 * The client-side BIND (cbind.h): the request and its first reply, the
 * helper thread that waits for the second and pokes the listener, accept().
 */
#include "cbind.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbind_int.h"
#include "fdtab.h"
#include "log.h"
#include "shim.h"
#include "tcp.h"

struct cbind *cbind_new(int family)
{
	struct cbind *cb = calloc(1, sizeof(*cb));
	if (!cb)
		return NULL;
	cb->refs = 1;
	cb->fds = 1;
	cb->family = family;
	cb->owner = (int)getpid();
	cb->proxy = -1;
	pthread_mutex_init(&cb->lock, NULL);
	return cb;
}

void cbind_put(struct cbind *cb)
{
	if (!cb || __atomic_sub_fetch(&cb->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (cb->proxy >= 0)
		real_close(cb->proxy);
	pthread_mutex_destroy(&cb->lock);
	free(cb);
}

static void cb_hold(void *p)
{
	__atomic_add_fetch(&((struct cbind *)p)->refs, 1, __ATOMIC_RELAXED);
}

static void cb_copy(int fd, void *p)
{
	(void)fd;
	struct cbind *cb = p;
	__atomic_add_fetch(&cb->fds, 1, __ATOMIC_RELAXED);
	cb_hold(cb);
}

/* A descriptor goes; with the last one the wait for a peer ends (the thread
 * wakes up to a shut-down connection). */
static void cb_release(int fd, void *p)
{
	(void)fd;
	struct cbind *cb = p;
	if (__atomic_sub_fetch(&cb->fds, 1, __ATOMIC_ACQ_REL) == 0) {
		pthread_mutex_lock(&cb->lock);
		cb->closed = true;
		if (cb->proxy >= 0 && cb->owner == (int)getpid())
			shutdown(cb->proxy, SHUT_RDWR);
		pthread_mutex_unlock(&cb->lock);
	}
	cbind_put(cb);
}

void cbind_init(void)
{
	static const struct fdtab_ops ops = {
	        .hold = cb_hold, .copy = cb_copy, .release = cb_release};
	fdtab_register(FD_TCP_BIND, &ops);
}

/* A reply's address as one of family (sock: a connection to the proxy, whose
 * address stands for an unspecified one). Its length, or 0. */
socklen_t cbind_reply_addr(const struct socks5_addr *a, int sock, int family,
                           union sa_any *out)
{
	union sa_any sa, proxy;
	socklen_t len = socks5_addr_to_sockaddr(a, &sa.ss), plen = sizeof(proxy);
	if (len == 0)
		return 0;
	if (sa_unspecified(&sa.sa) && sock >= 0 &&
	    real_getpeername(sock, &proxy.sa, &plen) == 0) {
		sa_set_port(&proxy.sa, a->port);
		sa = proxy;
		len = plen;
	}
	return sa_to_family(&sa.sa, len, family, out);
}

void cbind_note_connected(int fd, const struct socks5_addr *bnd)
{
	union sa_any a;
	int family;
	const struct fd_entry *e = fdtab_lookup(fd);
	/* a socket the program bound keeps the address it asked for */
	if (shim_config.bind == CONFIG_BIND_NEVER || (e && e->bound) ||
	    fdtab_class(fd, &family) != FD_CLASS_TCP)
		return;
	socklen_t len = cbind_reply_addr(bnd, fd, family, &a);
	if (len)
		fdtab_set_local(fd, &a.sa, len);
}

void cbind_log(const struct cbind *cb, const char *what, const union sa_any *a, int rc)
{
	char t[SOCKS5_ADDR_STRLEN], s[SA_STRLEN] = "-";
	socks5_addr_format(&cb->target, t, sizeof(t));
	if (a)
		sa_format(&a->sa, s, sizeof(s));
	shim_log(rc ? SHIM_LOG_ERROR : SHIM_LOG_INFO, "BIND %s: %s %s%s", t, what,
	         rc ? "failed: " : "", rc ? strerror(-rc) : s);
}

int cbind_request(struct cbind *cb)
{
	struct socks5_addr bound;
	int s = real_socket(cb->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	int rc = tcp_proxy_request(s, cb->family, SOCKS5_CMD_BIND, &cb->target, &bound);
	if (rc == 0 && !(cb->bnd_len = cbind_reply_addr(&bound, s, cb->family, &cb->bnd)))
		rc = -EAFNOSUPPORT;
	cbind_log(cb, "bound", rc ? NULL : &cb->bnd, rc);
	if (rc < 0) {
		real_close(s);
		return rc;
	}
	cb->proxy = s;
	cb->state = CB_BOUND;
	return 0;
}

/* The accepted connection a (the poke) becomes the connection to the proxy s
 * (flags: accept4's); the peer into addr/len. */
static int hand_over(struct cbind *cb, int a, int s, int flags, struct sockaddr *addr,
                     socklen_t *len)
{
	if (real_dup3(s, a, flags & SOCK_CLOEXEC ? O_CLOEXEC : 0) < 0) {
		int err = errno;
		real_close(a);
		real_close(s);
		errno = err;
		return -1;
	}
	real_close(s);
	int fl = real_fcntl(a, F_GETFL);
	if (fl >= 0)
		real_fcntl(a, F_SETFL,
		           flags & SOCK_NONBLOCK ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
	fdtab_new_socket(a, cb->family, SOCK_STREAM, 0);
	fdtab_set_proxied(a, &cb->peer.sa, cb->peer_len);
	fdtab_set_local(a, &cb->bnd.sa, cb->bnd_len);
	if (addr && len) {
		memcpy(addr, &cb->peer, *len < cb->peer_len ? *len : cb->peer_len);
		*len = cb->peer_len;
	}
	return a;
}

/* One accepted connection a from `from`: the shim's poke (1, with *s the
 * proxy connection or -1 after a failed second reply), or a stranger (0). */
static int take(struct cbind *cb, const union sa_any *from, int *s)
{
	pthread_mutex_lock(&cb->lock);
	bool ours = cb->poke_len && sa_same(&from->sa, &cb->poke.sa);
	*s = -1;
	if (ours) {
		cb->poke_len = 0;
		if (cb->state == CB_PEER) {
			*s = cb->proxy;
			cb->proxy = -1;
		}
	}
	pthread_mutex_unlock(&cb->lock);
	return ours;
}

static int accept_one(struct cbind *cb, int fd, struct sockaddr *addr, socklen_t *len,
                      int flags)
{
	cbind_settle(cb); /* a second reply that came: the poke, before we look */
	for (;;) {
		union sa_any from;
		socklen_t flen = sizeof(from);
		int a = real_accept4(fd, &from.sa, &flen, flags);
		int s;
		if (a < 0)
			return -1;
		if (take(cb, &from, &s)) {
			if (s >= 0)
				return hand_over(cb, a, s, flags, addr, len);
			real_close(a);
			errno = ECONNABORTED;
			return -1;
		}
		/* not the shim's: not a connection that came through the proxy */
		real_close(a);
		int fl = real_fcntl(fd, F_GETFL);
		if (fl < 0 || (fl & O_NONBLOCK)) {
			errno = EAGAIN;
			return -1;
		}
	}
}

void cbind_forget(int fd)
{
	struct cbind *cb = fdtab_hold(fd, FD_TCP_BIND);
	if (!cb)
		return;
	fdtab_unset(fd, FD_TCP_BIND, cb);
	cb_release(fd, cb); /* the table's reference */
	cbind_put(cb);
}

int cbind_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	struct cbind *cb = fdtab_hold(fd, FD_TCP_BIND);
	if (!cb)
		return -2;
	int rc = accept_one(cb, fd, addr, len, flags);
	int err = errno;
	cbind_put(cb);
	errno = err;
	return rc;
}
