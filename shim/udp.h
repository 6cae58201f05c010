/* SPDX-License-Identifier: MIT */
/*
 * UDP through the proxy (RFC 1928 UDP ASSOCIATE, section 7 datagrams).
 *
 * An IPv4/IPv6 UDP socket becomes associated on its first datagram (or
 * connect) to a destination the policy proxies: the socket is bound if it
 * was not, a TCP control connection to the proxy asks for UDP ASSOCIATE,
 * and from then on every proxied datagram goes to the relay the proxy named,
 * behind the section 7 header, sent with scatter-gather (the payload is not
 * copied). Receiving strips the header again and reports the real source.
 *
 * The association (struct udp_assoc) belongs to the socket, not to a
 * descriptor: dup()s share it (one reference per descriptor in the fd
 * table) and it ends with the last close. Its control connection is a
 * descriptor of the shim's own, close-on-exec, moved above the program's
 * usual range and marked FD_UDP_CONTROL, so the program cannot close it by
 * accident (close() answers EBADF, dup2() over it moves it first). When it
 * dies, the next datagram associates again.
 */
#ifndef SOCKSIFY_SHIM_UDP_H
#define SOCKSIFY_SHIM_UDP_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "fdtab.h"

/*
 * Sends msg on fd, which is either associated already (e is its FD_UDP
 * entry) or an untracked socket (e NULL) whose destination msg_name the
 * caller has not classified. Returns what sendmsg() would, with errno set;
 * *handled is false when the call is none of this module's business (not
 * an IP datagram socket, or nothing to proxy) and the caller must pass it
 * through unchanged.
 */
ssize_t udp_sendmsg(int fd, struct fd_entry *e, const struct msghdr *msg, int flags,
                    bool *handled);

/* recvmsg() on an associated socket. */
ssize_t udp_recvmsg(int fd, struct fd_entry *e, struct msghdr *msg, int flags);

/* connect() of a datagram socket (e: its entry, or NULL when untracked).
 * *handled as for udp_sendmsg. */
int udp_connect(int fd, struct fd_entry *e, const struct sockaddr *addr, socklen_t len,
                bool *handled);

/* getpeername() of an associated socket. */
int udp_getpeername(struct fd_entry *e, int fd, struct sockaddr *addr, socklen_t *len);

/* Is the datagram socket connected (then write()/send() carry datagrams)? */
bool udp_is_connected(struct fd_entry *e);

/* The fd table (fdtab.c): an FD_UDP entry is emptied (its reference dropped)
 * or copied (a reference more), under the lock that hold() takes. */
void udp_entry_drop(struct fd_entry *e);
void udp_entry_copy(const struct fd_entry *src, struct fd_entry *dst);

/* fd, a control connection, is about to be replaced (dup2 over it): move
 * it to another descriptor number first. True when it did (fd is then a
 * copy that nothing uses). */
bool udp_control_evacuate(int fd);
/* fd, a control connection, is being closed by the program (close_range,
 * closefrom): forget it, so its number is never closed again by us. */
void udp_control_lost(int fd);

/* Once, at start-up: the fork handler. */
void udp_init(void);

#endif
