/* SPDX-License-Identifier: MIT */
/*
 * The calls the supervisor carries out for the program (see sv_int.h), on
 * the thread that received the notification (notify.c keeps another
 * receiver waiting while this one is busy, so blocking here holds up only
 * this call).
 *
 * A proxied connect: the program's socket (our copy of its descriptor) is
 * connected to the proxy and the SOCKS5 exchange run on it by the shim's own
 * client (tcp.c), within connect_timeout; the call is then answered with 0
 * or the errno the shim would give. The program's thread waits in its
 * connect() meanwhile; its other threads run on. TCP Fast Open's data
 * (sendto/sendmsg with MSG_FASTOPEN) is sent once the exchange is over and
 * its count answered.
 *
 * A call to a direct destination: net.c checked the address, and the call
 * is made with that address and copies of the data, not continued.
 */
#include "sv_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "monotime.h"
#include "shim.h"
#include "tcp.h"

static void log_connect(const struct sv_call *call, const struct socks5_addr *target,
                        int rc, long long t0_us)
{
	char dst[SOCKS5_ADDR_STRLEN];

	if (rc == 0 && !shim_log_enabled(SHIM_LOG_INFO))
		return;
	socks5_addr_format(target, dst, sizeof(dst));
	shim_log(rc == 0 ? SHIM_LOG_INFO : SHIM_LOG_ERROR,
	         "supervisor: connect %s via %s for pid %d: %s, %lld us", dst,
	         tcp_last_via, (int)call->n.pid, rc == 0 ? "ok" : strerror(-rc),
	         monotime_us() - t0_us);
}

void sv_proxy_connect(struct sv_call *call, const struct socks5_addr *target,
                      uint8_t *payload, size_t len, int send_flags)
{
	long long t0 = monotime_us();
	int rc = tcp_connect_via_proxy(call->fd, call->domain, target, -1, NULL);

	log_connect(call, target, rc, t0);
	if (rc < 0) {
		sv_fail(call->listener, call->n.id, -rc);
	} else if (payload) {
		ssize_t n = send(call->fd, payload, len, send_flags | MSG_NOSIGNAL);
		if (n < 0)
			sv_fail(call->listener, call->n.id, errno);
		else
			sv_return(call->listener, call->n.id, n);
	} else {
		sv_return(call->listener, call->n.id, 0);
	}
	free(payload);
}

int sv_direct(struct sv_call *call, struct sv_send *send)
{
	long long rc;

	if (!send) {
		rc = real_connect(call->fd, &call->dst.sa, call->dst_len);
	} else {
		struct iovec iov = {.iov_base = send->data, .iov_len = send->len};
		struct msghdr m = {.msg_name = &call->dst.sa,
		                   .msg_namelen = call->dst_len,
		                   .msg_iov = &iov,
		                   .msg_iovlen = 1,
		                   .msg_control = send->ctl_len ? send->ctl : NULL,
		                   .msg_controllen = send->ctl_len};
		rc = real_sendmsg(call->fd, &m, send->flags | MSG_NOSIGNAL);
	}
	int err = errno;
	if (send)
		free(send->data);
	if (rc < 0)
		return err;
	sv_return(call->listener, call->n.id, rc);
	return 0;
}
