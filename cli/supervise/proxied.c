/* SPDX-License-Identifier: MIT */
/*
 * A proxied connect (see sv_int.h), on the receiving thread: the
 * program's socket (our copy of its descriptor) is connected to the proxy
 * and the SOCKS5 exchange run on it by the shim's own client (tcp.c), within
 * connect_timeout; the call is then answered with 0 or the errno the shim
 * would give. The program's thread waits in its connect() meanwhile; its
 * other threads run on. TCP Fast Open's data (sendto/sendmsg with
 * MSG_FASTOPEN) is sent once the exchange is over and its count answered.
 *
 * The calls to direct destinations that can block go the same way (a
 * blocking TCP connect, a send on a full buffer): net.c checked the
 * address, and the call is made with that address, not continued.
 *
 * The job runs on the thread that received the notification (notify.c keeps
 * one receiver idle while the others are busy): no hand-over to another
 * thread, one wake-up less per connect.
 */
#include "sv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "monotime.h"
#include "shim.h"
#include "tcp.h"

enum job_kind { JOB_PROXY, JOB_CONNECT, JOB_SEND };

struct job {
	enum job_kind kind;
	int listener;
	uint64_t id;
	pid_t pid;
	int fd, family;
	struct socks5_addr target;
	uint8_t *payload;
	size_t len;
	int send_flags;
	union sa_any dst; /* JOB_CONNECT, JOB_SEND */
	socklen_t dst_len;
	struct sv_send *send; /* JOB_SEND: malloc'd with its data */
	struct job *next;     /* in the queue */
};

static void log_connect(const struct job *j, int rc, long long t0_us)
{
	char dst[SOCKS5_ADDR_STRLEN], via[300];
	const struct config_proxy *p = &shim_config.proxy;

	if (rc == 0 && !shim_log_enabled(SHIM_LOG_INFO))
		return;
	socks5_addr_format(&j->target, dst, sizeof(dst));
	sa_format_hostport(p->host, p->port, via, sizeof(via));
	shim_log(rc == 0 ? SHIM_LOG_INFO : SHIM_LOG_ERROR,
	         "supervisor: connect %s via %s for pid %d: %s, %lld us", dst, via,
	         (int)j->pid, rc == 0 ? "ok" : strerror(-rc), monotime_us() - t0_us);
}

/* A call to a direct destination, with the checked address: its result. */
static long long direct(int fd, const union sa_any *dst, socklen_t len,
                        const struct sv_send *send, int extra_flags)
{
	if (!send)
		return real_connect(fd, &dst->sa, len);
	struct iovec iov = {.iov_base = send->data, .iov_len = send->len};
	struct msghdr m = {.msg_name = (void *)&dst->sa,
	                   .msg_namelen = len,
	                   .msg_iov = &iov,
	                   .msg_iovlen = 1,
	                   .msg_control = send->ctl_len ? (void *)send->ctl : NULL,
	                   .msg_controllen = send->ctl_len};
	return real_sendmsg(fd, &m, send->flags | extra_flags | MSG_NOSIGNAL);
}

static void answer(const struct job *j, long long rc, int err)
{
	if (rc < 0)
		sv_fail(j->listener, j->id, err);
	else
		sv_return(j->listener, j->id, rc);
}

static void run(struct job *j)
{
	if (j->kind != JOB_PROXY) {
		long long rc = direct(j->fd, &j->dst, j->dst_len, j->send, 0);
		answer(j, rc, errno);
		if (j->send)
			free(j->send->data);
		free(j->send);
		close(j->fd);
		free(j);
		return;
	}
	long long t0 = monotime_us();
	int rc = tcp_connect_via_proxy(j->fd, j->family, &j->target, -1);

	log_connect(j, rc, t0);
	if (rc < 0) {
		sv_fail(j->listener, j->id, -rc);
	} else if (j->payload) {
		ssize_t n = send(j->fd, j->payload, j->len, j->send_flags | MSG_NOSIGNAL);
		if (n < 0)
			sv_fail(j->listener, j->id, errno);
		else
			sv_return(j->listener, j->id, n);
	} else {
		sv_return(j->listener, j->id, 0);
	}
	close(j->fd);
	free(j->payload);
	free(j);
}

/* The job runs here, on the receiving thread (notify.c starts another
 * receiver while this one is busy). */
static int submit(struct job *j)
{
	run(j);
	return 0;
}

void sv_proxy_connect(struct sv_call *call, const struct socks5_addr *target,
                      uint8_t *payload, size_t len, int send_flags)
{
	struct job *j = malloc(sizeof(*j));

	if (!j) {
		free(payload);
		sv_fail(call->listener, call->n.id, ENOMEM);
		return;
	}
	*j = (struct job){.listener = call->listener,
	                  .id = call->n.id,
	                  .pid = (pid_t)call->n.pid,
	                  .fd = call->fd,
	                  .family = call->domain,
	                  .target = *target,
	                  .payload = payload,
	                  .len = len,
	                  .send_flags = send_flags};
	int err = submit(j);
	if (err != 0) {
		free(j->payload);
		free(j);
		sv_fail(call->listener, call->n.id, err);
		return;
	}
	call->fd = -1;
}

/* True when the call cannot block: a non-blocking socket, MSG_DONTWAIT, or a
 * connect that is not TCP's. */
static bool cannot_block(const struct sv_call *call, const struct sv_send *send)
{
	if (send && (send->flags & MSG_DONTWAIT))
		return true;
	if (!send && call->type != SOCK_STREAM)
		return true;
	int fl = real_fcntl(call->fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

int sv_direct(struct sv_call *call, struct sv_send *send)
{
	if (cannot_block(call, send) || (send && call->type != SOCK_STREAM)) {
		/* a datagram is tried at once, without waiting for room; a
		 * blocking TCP Fast Open connect is made whole, blocking */
		long long rc = direct(call->fd, &call->dst, call->dst_len, send,
		                      send ? MSG_DONTWAIT : 0);
		int err = errno;
		bool again = rc < 0 && err == EAGAIN && send && !cannot_block(call, send);
		if (!again) {
			if (send)
				free(send->data);
			if (rc < 0)
				return err;
			sv_return(call->listener, call->n.id, rc);
			return 0;
		}
	}
	struct job *j = calloc(1, sizeof(*j));
	struct sv_send *copy = send ? malloc(sizeof(*copy)) : NULL;
	if (!j || (send && !copy)) {
		free(j);
		free(copy);
		if (send)
			free(send->data);
		return ENOMEM;
	}
	if (send)
		*copy = *send;
	*j = (struct job){.kind = send ? JOB_SEND : JOB_CONNECT,
	                  .listener = call->listener,
	                  .id = call->n.id,
	                  .pid = (pid_t)call->n.pid,
	                  .fd = call->fd,
	                  .dst = call->dst,
	                  .dst_len = call->dst_len,
	                  .send = copy};
	int err = submit(j);
	if (err != 0) {
		if (copy)
			free(copy->data);
		free(copy);
		free(j);
		return err;
	}
	call->fd = -1;
	return 0;
}
