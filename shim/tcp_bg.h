/* SPDX-License-Identifier: MIT */
/*
 * Background handshakes: a connect() on a non-blocking socket that the
 * policy proxies starts the connection to the proxy and returns EINPROGRESS
 * at once; one helper thread of the shim's drives the SOCKS handshake
 * (tcp.h's resumable exchange) on its own duplicate of the socket. Until the
 * reply has been read the program's socket does not look connected:
 *  - its epoll registrations are taken out of the program's epoll sets (the
 *    shim follows epoll_ctl for every socket it saw made; epoll_ctl on them
 *    meanwhile changes what goes back) and put back when the handshake ends,
 *    which makes the kernel report the socket to every waiter as a
 *    completing connect would, in one event (level, edge, one-shot);
 *  - poll/ppoll/select/pselect wait on an eventfd of the handshake instead,
 *    readable once it has ended;
 *  - SO_ERROR gives 0, a second connect() EALREADY, getpeername ENOTCONN,
 *    send/recv EAGAIN (a blocking call waits for the end).
 * Once it has ended, the first call that looks at the descriptor settles its
 * fd table entry: proxied, or failed with the error SO_ERROR reports once.
 *
 * A socket that cannot be followed this way (its registrations were made
 * before the shim knew it, or it is in more than four epoll sets) gets the
 * handshake inside connect(), as a blocking socket does.
 */
#ifndef SOCKSIFY_SHIM_TCP_BG_H
#define SOCKSIFY_SHIM_TCP_BG_H

#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include "policy.h"

/* Handshakes running now (the wait hooks' fast path: nothing to do at 0). */
extern int tcp_bg_running_count;

/* Can fd's handshake run in the background? */
bool tcp_bg_eligible(int fd);
/* Starts it: -1 with errno EINPROGRESS, or the error of a start that failed
 * at once (the entry is then FD_TCP_FAILED, as for a handshake in connect()). */
int tcp_bg_connect(int fd, const struct sockaddr *addr, socklen_t len,
                   const struct policy *pol);
/* Settles fd's entry if its handshake has ended; true while it still runs. */
bool tcp_bg_running(int fd);
/* Before I/O on fd: 0 to go on, or -1 with EAGAIN while the handshake runs
 * on a non-blocking socket (a blocking one waits for its end). */
int tcp_bg_gate(int fd);

/* epoll_ctl() of a socket the shim saw made: the registration is followed,
 * and waits for nothing while the socket's handshake runs. */
int tcp_bg_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
/* A new socket on fd: the registrations followed for the number are gone. */
void tcp_bg_forget(int fd);
/* ppoll() while handshakes run (timeout NULL: none). */
int tcp_bg_poll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                const sigset_t *mask);

/*
 * A SOCKS exchange of the shim's own in the background: cmd for target on
 * the shim's stream socket fd of `family` (non-blocking; the UDP module's
 * control connection). done(arg, job, rc, bound) is called once, from the
 * helper thread, when it ends (rc 0 with the reply's BND, or -errno), unless
 * the job is cancelled first. NULL when it cannot run in the background
 * (the caller runs it in the call).
 */
struct bg_conn;
struct bg_conn *tcp_bg_run(int fd, int family, uint8_t cmd,
                           const struct socks5_addr *target,
                           void (*done)(void *arg, struct bg_conn *job, int rc,
                                        const struct socks5_addr *bound),
                           void *arg);
/* Ends the job: done is not called for it after this (a call already under
 * way may still finish: done must check that the job is still wanted). */
void tcp_bg_cancel(struct bg_conn *job);

/* The log line of a proxied connect (rc: 0 or -errno; t0_us: its start). */
void tcp_log_connect(const struct socks5_addr *target, const char *via, int rc,
                     long long t0_us);

/* Once, at start-up: registers with the fd table, and the fork handler. */
void tcp_bg_init(void);

#endif
