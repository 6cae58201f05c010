/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 client for TCP (see tcp.h), blocking: a driver over the state
 * machine of tcp_hs.c, on the socket made non-blocking for the duration and
 * polled for what each step asks, against one deadline for the whole exchange.
 */
#include "tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>

#include "monotime.h"
#include "shim.h"

__thread char tcp_last_via[TCP_VIA_MAX];

long long tcp_deadline(void)
{
	return monotime_ms() + shim_config.connect_timeout_ms;
}

/* Waits for `events` until the deadline: 0, or -ETIMEDOUT / -errno. */
static int wait_for(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - monotime_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Runs the machine that started with rc to its end, waiting as it asks until
 * the deadline; its BND into bound (when not NULL) on success. */
static int drive(struct tcp_hs *h, int rc, struct socks5_addr *bound, long long deadline)
{
	/* a proxy that does not answer in time: the next one (failover), with a
	 * deadline of its own */
	if (rc == 0) {
		while ((rc = tcp_hs_step(h)) > 0) {
			if ((rc = wait_for(h->fd, (short)rc, deadline)) == -ETIMEDOUT &&
			    (rc = tcp_hs_timeout(h)) == 1)
				deadline = tcp_deadline();
			else if (rc < 0)
				break;
		}
	}
	tcp_hs_via(h, tcp_last_via, sizeof(tcp_last_via));
	tcp_hs_end(h);
	if (rc == 0 && bound)
		*bound = h->bound;
	return rc;
}

int tcp_handshake(int fd, uint8_t cmd, const struct socks5_addr *target,
                  struct socks5_addr *bound, long long deadline)
{
	struct tcp_hs h;

	return drive(&h, tcp_hs_start_connected(&h, fd, cmd, target), bound, deadline);
}

/* The request on fd connected to the proxy for it; flags: the socket's file
 * status flags when the caller has them already, else -1. */
static int request(int fd, int family, uint8_t cmd, const struct socks5_addr *target,
                   struct socks5_addr *bound, int flags)
{
	long long deadline = tcp_deadline();
	struct tcp_hs h;
	int rc;

	if (flags < 0 && (flags = real_fcntl(fd, F_GETFL)) < 0)
		return -errno;
	if (!(flags & O_NONBLOCK) && real_fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	rc = drive(&h, tcp_hs_start(&h, fd, family, cmd, target), bound, deadline);
	if (!(flags & O_NONBLOCK))
		real_fcntl(fd, F_SETFL, flags);
	return rc;
}

int tcp_connect_via_proxy(int fd, int family, const struct socks5_addr *target, int flags,
                          struct socks5_addr *bound)
{
	return request(fd, family, SOCKS5_CMD_CONNECT, target, bound, flags);
}

int tcp_proxy_request(int fd, int family, uint8_t cmd, const struct socks5_addr *target,
                      struct socks5_addr *bound)
{
	return request(fd, family, cmd, target, bound, -1);
}
