/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 client for TCP: connects the program's own socket to the proxy
 * and runs the handshake (greeting, RFC 1929 username/password when the
 * proxy URL has credentials, CONNECT) on it, within the configured timeout.
 * The program's socket keeps its options, flags, prior bind() and epoll
 * registrations: nothing is swapped in over its descriptor.
 */
#ifndef SOCKSIFY_SHIM_TCP_H
#define SOCKSIFY_SHIM_TCP_H

#include <stdbool.h>

#include "socks5.h"

/* 0 once the proxy reports success, or -errno (a failure reply is mapped
 * with socks5_rep_to_errno; an unreachable or silent proxy gives the
 * connect error or ETIMEDOUT). The caller restores nothing: the socket's
 * file status flags are as they were. *nonblocking (may be NULL) says whether
 * the socket was non-blocking. */
int tcp_connect_via_proxy(int fd, int family, const struct socks5_addr *target,
                          bool *nonblocking);

/* The same for any command on a stream socket `fd` of `family` (the UDP
 * control connection sends UDP ASSOCIATE); the reply's BND address goes
 * into bound when it is not NULL. */
int tcp_proxy_request(int fd, int family, uint8_t cmd, const struct socks5_addr *target,
                      struct socks5_addr *bound);

/* The deadline of an exchange that starts now: connect_timeout_ms ahead, in
 * milliseconds of the monotonic clock. */
long long tcp_deadline(void);

/*
 * The SOCKS5 exchange alone, which tcp_proxy_request runs once it has
 * connected fd to the proxy and made it non-blocking: greeting, RFC 1929
 * when the proxy URL has credentials, request cmd for target and its reply
 * (BND into bound when not NULL), pipelined when the configuration says so,
 * all before deadline (from tcp_deadline). fd must be connected and
 * non-blocking; its flags are left alone. Returns as tcp_proxy_request; no
 * byte past the reply is read.
 */
int tcp_handshake(int fd, uint8_t cmd, const struct socks5_addr *target,
                  struct socks5_addr *bound, long long deadline);

#endif
