/* SPDX-License-Identifier: MIT */
/*
 * Internals of the client-side BIND (cbind.h): one struct cbind per served
 * listener, the fd table's payload of kind FD_TCP_BIND.
 */
#ifndef SOCKSIFY_SHIM_CBIND_INT_H
#define SOCKSIFY_SHIM_CBIND_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "sockaddr.h"
#include "socks5.h"

enum cbind_state {
	CB_WANT,      /* bound to the wildcard: BIND at listen() */
	CB_BOUND,     /* the first reply came (bnd) */
	CB_LISTENING, /* listen() done: the helper thread waits for the second */
	CB_PEER,      /* the second reply came (peer); the poke is on its way */
	CB_FAILED,    /* the second reply failed (err) */
};

struct cbind {
	int refs; /* the table's descriptors, a caller's hold, the thread */
	int fds;  /* the program's descriptors naming it */
	pthread_mutex_t lock;
	int family;  /* the listener's */
	int owner;   /* the process that made it: a forked child's close() of its
	                copy leaves the shared connection alone */
	int proxy;   /* the connection to the proxy; -1 once accept() took it */
	int state;   /* enum cbind_state; CB_PEER and CB_FAILED under lock */
	int err;     /* CB_FAILED */
	bool closed; /* the last descriptor went: the thread pokes nothing */
	bool eager;  /* bound to a proxied connection's address: BIND at the
	                first getsockname() or listen(), for `target` */
	struct socks5_addr target;
	/* the first reply, the second, the listener, the poker, what bind() asked */
	union sa_any bnd, peer, lo, poke, asked;
	socklen_t bnd_len, peer_len, lo_len, poke_len;
};

/* A new one for a listener of family (one reference, one descriptor). */
struct cbind *cbind_new(int family);
void cbind_put(struct cbind *cb);
/* BIND for cb->target on a new connection to the proxy, to the first reply:
 * 0 (state CB_BOUND) or -errno. */
int cbind_request(struct cbind *cb);
/* A reply's address as one of family (sock: a connection to the proxy, whose
 * address stands for an unspecified one). Its length, or 0. */
socklen_t cbind_reply_addr(const struct socks5_addr *a, int sock, int family,
                           union sa_any *out);
/* The log line of a step (rc: 0 or -errno; a: the address it gave). */
void cbind_log(const struct cbind *cb, const char *what, const union sa_any *a, int rc);
/* Listeners that wait for their second reply (the wait hooks' fast path). */
extern int cbind_waiting;
/* The second reply of cb if all of it has come (or the connection ended):
 * read, and the listener poked, now. */
void cbind_settle(struct cbind *cb);

/* After the real listen(): the helper thread that waits for the second
 * reply. 0 or -errno. */
int cbind_start_wait(struct cbind *cb, int fd);

#endif
