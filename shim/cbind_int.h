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
	int proxy;   /* the connection to the proxy; -1 once accept() took it */
	int state;   /* enum cbind_state; CB_PEER and CB_FAILED under lock */
	int err;     /* CB_FAILED */
	bool closed; /* the last descriptor went: the thread pokes nothing */
	struct socks5_addr target;
	union sa_any bnd, peer, lo, poke; /* first reply, second, listener, poker */
	socklen_t bnd_len, peer_len, lo_len, poke_len;
};

/* A new one for a listener of family (one reference, one descriptor). */
struct cbind *cbind_new(int family);
void cbind_put(struct cbind *cb);
/* BIND for cb->target on a new connection to the proxy, to the first reply:
 * 0 (state CB_BOUND) or -errno. */
int cbind_request(struct cbind *cb);
/* After the real listen(): the helper thread that waits for the second
 * reply. 0 or -errno. */
int cbind_start_wait(struct cbind *cb, int fd);

#endif
