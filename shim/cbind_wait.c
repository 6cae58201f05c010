/* SPDX-License-Identifier: MIT */
/*
 * The client-side BIND's wait for its peer (cbind.h): the second reply is
 * read, and the listener poked (one connection from loopback), by whoever
 * sees it first: the helper thread that waits on the proxy connection, or a
 * poll()/select() of the program's that names the listener, or accept().
 * A program that polls its control connection and its listener together
 * (curl) so never finds the control connection ready and the listener not
 * when the second reply came first: the thread's wake-up is not a race.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cbind.h"
#include "cbind_int.h"
#include "fdtab.h"
#include "shim.h"

int cbind_waiting;

/* The reply's length from its first 5 bytes. */
static size_t reply_len(const uint8_t *in)
{
	return in[3] == SOCKS5_ATYP_IPV4   ? 10
	       : in[3] == SOCKS5_ATYP_IPV6 ? 22
	                                   : 7 + (size_t)in[4];
}

/* The second reply, when all of it is in: 0 with the peer (what follows it,
 * the peer's data, stays), 1 while it is not, or -errno (the connection
 * ended: -ECONNRESET). */
static int take_reply(int s, struct socks5_addr *peer)
{
	uint8_t in[SOCKS5_REPLY_MAX];
	struct socks5_request rep;
	ssize_t n = real_recv(s, in, sizeof(in), MSG_PEEK | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 1
		                                                                 : -errno;
	if (n == 0)
		return -ECONNRESET;
	if (n < 5)
		return 1;
	size_t want = reply_len(in);
	if (want > sizeof(in) || socks5_reply_parse(in, (size_t)n, &rep) == SOCKS5_BAD)
		return -EPROTO;
	if ((size_t)n < want)
		return 1;
	if (real_recv(s, in, want, MSG_DONTWAIT) != (ssize_t)want ||
	    socks5_reply_parse(in, want, &rep) != (ssize_t)want)
		return -EPROTO;
	if (rep.cmd != SOCKS5_REP_SUCCEEDED)
		return -socks5_rep_to_errno(rep.cmd);
	*peer = rep.addr;
	return 0;
}

/* One connection from loopback to the listener (cb->lock held), its address
 * in cb->poke before it is made: accept() knows it by that. */
static void poke(struct cbind *cb)
{
	union sa_any from;
	socklen_t len = sizeof(from);
	int c = real_socket(cb->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c < 0)
		return;
	memset(&from, 0, sizeof(from));
	from.sa.sa_family = (sa_family_t)cb->family;
	if (cb->family == AF_INET)
		from.v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		from.v6.sin6_addr = in6addr_loopback;
	if (real_bind(c, &from.sa, sa_len(&from.sa)) == 0 &&
	    real_getsockname(c, &from.sa, &len) == 0) {
		cb->poke = from;
		cb->poke_len = len;
		/* loopback: made at once while the backlog has room */
		real_connect(c, &cb->lo.sa, cb->lo_len);
	}
	real_close(c);
}

void cbind_settle(struct cbind *cb)
{
	struct socks5_addr peer;
	pthread_mutex_lock(&cb->lock);
	int rc = cb->state == CB_LISTENING ? take_reply(cb->proxy, &peer) : 1;
	if (rc == 0 &&
	    !(cb->peer_len = cbind_reply_addr(&peer, -1, cb->family, &cb->peer)))
		rc = -EAFNOSUPPORT;
	if (rc <= 0) {
		cb->err = -rc;
		cb->state = rc == 0 ? CB_PEER : CB_FAILED;
		__atomic_sub_fetch(&cbind_waiting, 1, __ATOMIC_RELAXED);
		if (!cb->closed) {
			cbind_log(cb, "peer", rc ? NULL : &cb->peer, rc);
			poke(cb);
		}
	}
	pthread_mutex_unlock(&cb->lock);
}

/* The proxy connection while the listener waits for its second reply, else -1. */
static int waiting_on(struct cbind *cb)
{
	pthread_mutex_lock(&cb->lock);
	int s = cb->state == CB_LISTENING ? cb->proxy : -1;
	pthread_mutex_unlock(&cb->lock);
	return s;
}

static void *wait_peer(void *arg)
{
	struct cbind *cb = arg;
	for (int s, round = 0; (s = waiting_on(cb)) >= 0; round++) {
		if (round > 0)
			usleep(1000); /* a reply in pieces: the rest is on its way */
		struct pollfd p = {.fd = s, .events = POLLIN | POLLRDHUP};
		if (real_poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		cbind_settle(cb);
	}
	cbind_put(cb);
	return NULL;
}

int cbind_start_wait(struct cbind *cb, int fd)
{
	socklen_t len = sizeof(cb->lo);
	if (real_getsockname(fd, &cb->lo.sa, &len) < 0)
		return -errno;
	cb->lo_len = len;
	if (sa_unspecified(&cb->lo.sa)) {
		/* the wildcard: the poke goes to loopback */
		if (cb->family == AF_INET)
			cb->lo.v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else
			cb->lo.v6.sin6_addr = in6addr_loopback;
	}
	sigset_t all, old;
	pthread_t t;
	pthread_attr_t attr;
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	cb->state = CB_LISTENING;
	__atomic_add_fetch(&cbind_waiting, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&cb->refs, 1, __ATOMIC_RELAXED); /* the thread's */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&t, &attr, wait_peer, cb);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		cb->state = CB_BOUND;
		__atomic_sub_fetch(&cbind_waiting, 1, __ATOMIC_RELAXED);
		cbind_put(cb);
		return -rc;
	}
	return 0;
}

/* The listener fd's second reply, if it is one that waits. */
static void settle_fd(int fd)
{
	struct cbind *cb = fdtab_hold(fd, FD_TCP_BIND);
	if (cb) {
		cbind_settle(cb);
		cbind_put(cb);
	}
}

void cbind_settle_pollfds(struct pollfd *fds, nfds_t n)
{
	if (__atomic_load_n(&cbind_waiting, __ATOMIC_RELAXED) == 0 || shim_depth > 0 ||
	    !fds)
		return;
	for (nfds_t i = 0; i < n; i++)
		if (fdtab_kind(fdtab_lookup(fds[i].fd)) == FD_TCP_BIND)
			settle_fd(fds[i].fd);
}

void cbind_settle_fdset(int nfds, const fd_set *r)
{
	if (__atomic_load_n(&cbind_waiting, __ATOMIC_RELAXED) == 0 || shim_depth > 0 ||
	    !r || nfds > FD_SETSIZE)
		return;
	for (int fd = 0; fd < nfds; fd++)
		if (FD_ISSET(fd, r) && fdtab_kind(fdtab_lookup(fd)) == FD_TCP_BIND)
			settle_fd(fd);
}
