/* SPDX-License-Identifier: MIT */
/*
 * Client-side SOCKS BIND (bind = auto): an FTP-style data listener is served
 * by a BIND request to the proxy instead of listening on the network.
 *
 * getsockname() on a proxied TCP connection answers the address the proxy
 * connected from (its CONNECT reply's BND; the proxy's own address when that
 * is unspecified): what the destination sees, and what an active-mode FTP
 * client then announces. A TCP socket bound, port 0, to that address is
 * served for the newest proxied connection that reports it: BIND for that
 * connection's destination, port 0, at the first getsockname() or listen().
 * One bound, port 0, to the wildcard gets it at listen(), for the newest
 * proxied connection still open (none: a local listener). Never a loopback
 * address or a given port (local servers). getsockname() then answers the
 * first reply's address, and the socket really listens on loopback (or on
 * the wildcard the program asked for). When the second reply comes, the
 * listener gets one connection from loopback (cbind_wait.c), so poll, select
 * and epoll see a real pending connection; accept() takes it, checks it is
 * the shim's own (anything else is closed: EAGAIN, or the wait goes on) and
 * returns instead the connection to the proxy, dup3()ed onto the accepted
 * number, getpeername() the second reply's address. BIND carries one
 * connection: a second accept() waits as on a listener with nothing pending.
 * A failed second reply makes accept() fail with ECONNABORTED.
 */
#ifndef SOCKSIFY_SHIM_CBIND_H
#define SOCKSIFY_SHIM_CBIND_H

#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>

#include "socks5.h"

/* A proxied connect succeeded on fd with the reply's BND: what getsockname()
 * answers for fd from now on (bind = auto). */
void cbind_note_connected(int fd, const struct socks5_addr *bnd);

/* accept()/accept4() on fd: -2 when fd is not a BIND listener (the caller
 * accepts), else the hook's result. */
int cbind_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags);

/* A served socket that connect() is called on instead of listen(): no longer
 * served (the BIND is dropped; the socket stays bound where the shim bound it). */
void cbind_forget(int fd);

/* Before a poll()/select() of the program's: the listeners among fds (the
 * read set r) whose second reply came are poked now (cheap when none waits). */
void cbind_settle_pollfds(struct pollfd *fds, nfds_t n);
void cbind_settle_fdset(int nfds, const fd_set *r);

/* Once, at start-up: registers with the fd table. */
void cbind_init(void);

#endif
