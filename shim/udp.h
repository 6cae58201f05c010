/* SPDX-License-Identifier: MIT */
/*
 * UDP through the proxy (RFC 1928 UDP ASSOCIATE, section 7 datagrams): the
 * interface the hooks call, with a destination they have classified once.
 *
 * An IPv4/IPv6 UDP socket becomes associated on its first datagram (or
 * connect) to a destination the policy proxies: the socket is bound if it
 * was not, a TCP control connection to the proxy asks for UDP ASSOCIATE,
 * and from then on every proxied datagram goes to the relay the proxy named,
 * behind the section 7 header, sent with scatter-gather (the payload is not
 * copied). Receiving strips the header again and reports the real source.
 *
 * The association belongs to the socket, not to a descriptor: dup()s share
 * it (the fd table holds a reference per descriptor) and it ends with the
 * last close. Its control connection is a descriptor of the shim's own,
 * close-on-exec, moved above the program's usual range and marked
 * FD_UDP_CONTROL, so the program cannot close it by accident (close()
 * answers EBADF, dup2() over it moves it first). When it dies, the next
 * datagram associates again.
 *
 * Files: udp_assoc.c (the association's life), udp_send.c (sending,
 * connect, getpeername), udp_recv.c (receiving), udp_layout.c (where a
 * received datagram's bytes lie).
 */
#ifndef SOCKSIFY_SHIM_UDP_H
#define SOCKSIFY_SHIM_UDP_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "policy.h"

/* A datagram to msg->msg_name, which the policy proxies (pol: its verdict,
 * POLICY_PROXY), on the UDP socket fd of `family`; the socket is associated
 * on the way when it is not yet. Returns what sendmsg() would. */
ssize_t udp_send_to(int fd, int family, const struct msghdr *msg, int flags,
                    const struct policy *pol);
/* A datagram without address on an associated socket: to the destination
 * it is connected to through the proxy, or, when it is not (any longer),
 * to whatever the kernel makes of it. */
ssize_t udp_send_connected(int fd, const struct msghdr *msg, int flags);
/* recvmsg() on an associated socket (the kernel's own when it is not). */
ssize_t udp_recv(int fd, struct msghdr *msg, int flags);

/* connect() of the UDP socket fd of `family` to addr, classified: a
 * proxied destination associates; one that goes direct (POLICY_PASS) makes
 * an associated socket an ordinary connected one. */
int udp_connect(int fd, int family, const struct sockaddr *addr, socklen_t len,
                const struct policy *pol);
/* connect(AF_UNSPEC) of any socket: an associated one is no longer
 * connected (its association ends when the kernel unbinds its port). */
int udp_disconnect(int fd, const struct sockaddr *addr, socklen_t len);
/* getpeername() of an associated socket. */
int udp_getpeername(int fd, struct sockaddr *addr, socklen_t *len);
/* Is fd associated and connected to a proxied destination (then write()
 * and send() carry datagrams)? */
bool udp_is_connected(int fd);

/* fd, a control connection, is about to be replaced (dup2 over it): move
 * it to another descriptor number first. True when it did (fd is then a
 * copy that nothing uses). */
bool udp_control_evacuate(int fd);

/* Once, at start-up: registers with the fd table, and the fork handler. */
void udp_init(void);

#endif
