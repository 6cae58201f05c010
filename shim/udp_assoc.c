/* SPDX-License-Identifier: MIT */
/*
 * The life of a UDP association (see udp_assoc.h): creation for a socket,
 * references (the fd table holds one per descriptor, through the functions
 * registered here), the control connection and the UDP ASSOCIATE handshake,
 * and the fork handler.
 */
#include "udp_assoc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "fdtab.h"
#include "log.h"
#include "monotime.h"
#include "policy.h"
#include "shim.h"
#include "tcp.h"
#include "tcp_bg.h"
#include "udp.h"

enum {
	/* Control connections are moved at or above this descriptor number. */
	CONTROL_FD_MIN = 800,
	/* a send looks at the control connection at most this often: a datagram
	 * costs one sendmsg, not a poll() too (issue 11) */
	CONTROL_CHECK_MS = 250,
};

/* Serialises the creation of an association for a descriptor. */
static pthread_mutex_t adopt_lock = PTHREAD_MUTEX_INITIALIZER;
/* The proxy answered UDP ASSOCIATE with "command not supported": it is not
 * asked again in this process. */
static int proxy_refuses_udp;

static void end_job(struct udp_assoc *a);
static void fail_association(struct udp_assoc *a, int rc);

/* --- references ------------------------------------------------------------------- */

static void hold(void *p)
{
	struct udp_assoc *a = p;
	__atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
}

/* One more descriptor of the socket (dup). */
static void copy(int fd, void *p)
{
	struct udp_assoc *a = p;
	(void)fd;
	__atomic_add_fetch(&a->fdrefs, 1, __ATOMIC_RELAXED);
	hold(a);
}

void udp_assoc_put(struct udp_assoc *a)
{
	if (!a || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	udp_assoc_drop_control(a);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

static void entry_release(int fd, void *p)
{
	struct udp_assoc *a = p;
	(void)fd;
	if (__atomic_sub_fetch(&a->fdrefs, 1, __ATOMIC_ACQ_REL) == 0) {
		/* the program has closed the socket: nothing more is sent for it */
		pthread_mutex_lock(&a->lock);
		end_job(a);
		pthread_mutex_unlock(&a->lock);
	}
	udp_assoc_put(a);
}

struct udp_assoc *udp_assoc_hold(int fd)
{
	return fdtab_hold(fd, FD_UDP);
}

struct udp_assoc *udp_assoc_adopt(int fd, int family)
{
	struct udp_assoc *a = udp_assoc_hold(fd);
	if (a)
		return a; /* the usual case: every datagram after the first */
	pthread_mutex_lock(&adopt_lock);
	a = udp_assoc_hold(fd);
	if (!a && (a = calloc(1, sizeof(*a)))) {
		pthread_mutex_init(&a->lock, NULL);
		a->refs = 2; /* the table's and the caller's */
		a->fdrefs = 1;
		a->flush_fd = -1;
		a->q_tail = &a->q_head;
		a->family = family;
		a->ctl = -1;
		a->hdr_guess = 10;
		if (!fdtab_set_payload(fd, FD_UDP, a)) {
			pthread_mutex_destroy(&a->lock);
			free(a);
			a = NULL;
		}
	}
	pthread_mutex_unlock(&adopt_lock);
	return a;
}

/* --- the control connection -----------------------------------------------------------
 */

void udp_assoc_drop_control(struct udp_assoc *a)
{
	end_job(a);
	if (a->ctl < 0)
		return;
	fdtab_unset(a->ctl, FD_UDP_CONTROL, a);
	real_close(a->ctl);
	a->ctl = -1;
	a->relay_len = 0;
}

/* The program closed the control connection fd (close_range, closefrom, or a
 * close the shim did not see): the association forgets it, so its number is
 * never closed by us again; the next datagram associates anew. */
static void control_lost(int fd, void *p)
{
	struct udp_assoc *a = p;
	pthread_mutex_lock(&a->lock);
	if (a->ctl == fd) {
		a->ctl = -1;
		a->relay_len = 0;
	}
	pthread_mutex_unlock(&a->lock);
}

bool udp_control_evacuate(int fd)
{
	const struct fd_entry *c = fdtab_lookup(fd);
	if (!c || fdtab_kind(c) != FD_UDP_CONTROL)
		return false;
	struct udp_assoc *a = c->payload;
	pthread_mutex_lock(&a->lock);
	int moved = real_fcntl(fd, F_DUPFD_CLOEXEC, CONTROL_FD_MIN);
	if (moved < 0)
		moved = real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
	fdtab_unset(fd, FD_UDP_CONTROL, a);
	if (moved >= 0 && fdtab_set_payload(moved, FD_UDP_CONTROL, a)) {
		a->ctl = moved;
	} else {
		/* no room: the association ends; the next datagram makes another */
		if (moved >= 0)
			real_close(moved);
		a->ctl = -1;
		a->relay_len = 0;
	}
	pthread_mutex_unlock(&a->lock);
	return true;
}

/* The control connection is alive while the proxy has said nothing on it. */
static bool control_alive(int ctl)
{
	struct pollfd p = {.fd = ctl, .events = POLLIN | POLLRDHUP};
	return poll(&p, 1, 0) == 0;
}

/* A new control connection for a, moved high and marked in the table;
 * non-blocking, as the state machine wants it (a blocking one held the
 * helper thread in recv() while a silent proxy kept quiet). */
static int open_control(struct udp_assoc *a)
{
	int ctl =
	        real_socket(a->ctl_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (ctl < 0)
		return -errno;
	int high = real_fcntl(ctl, F_DUPFD_CLOEXEC, CONTROL_FD_MIN);
	if (high >= 0) {
		real_close(ctl);
		ctl = high;
	}
	fdtab_set_payload(ctl, FD_UDP_CONTROL, a);
	a->ctl = ctl;
	return 0;
}

/* --- the handshake -------------------------------------------------------------------
 */

/* The request's DST: the address and port the datagrams will come from, as
 * far as they are known (RFC 1928: zeros when not). */
static void request_addr(int fd, const union sa_any *proxy, struct socks5_addr *out)
{
	union sa_any local, plain;
	socklen_t len = sizeof(local);
	bool v4 = sa_ipv4(&proxy->sa) != NULL;

	memset(out, 0, sizeof(*out));
	out->atyp = v4 ? SOCKS5_ATYP_IPV4 : SOCKS5_ATYP_IPV6;
	if (getsockname(fd, &local.sa, &len) < 0)
		return;
	if (local.sa.sa_family == AF_INET) { /* an IPv4 socket, whatever the proxy's */
		out->atyp = SOCKS5_ATYP_IPV4;
		v4 = true;
	}
	out->port = sa_port(&local.sa);
	if (sa_unspecified(&local.sa))
		return;
	if (sa_to_family(&local.sa, len, v4 ? AF_INET : AF_INET6, &plain))
		socks5_addr_from_sockaddr(out, &plain.sa, sizeof(plain));
}

/* Binds an unbound socket to its family's wildcard address, port 0; its
 * port (host order) into *port. */
static int bind_if_unbound(int fd, int family, uint16_t *port)
{
	union sa_any local;
	socklen_t len = sizeof(local);
	if (getsockname(fd, &local.sa, &len) < 0)
		return -errno;
	if (sa_port(&local.sa) == 0) {
		memset(&local, 0, sizeof(local));
		local.sa.sa_family = (sa_family_t)family;
		if (bind(fd, &local.sa, sa_len(&local.sa)) < 0)
			return -errno;
		len = sizeof(local);
		if (getsockname(fd, &local.sa, &len) < 0)
			return -errno;
	}
	*port = sa_port(&local.sa);
	return 0;
}

static void log_associate_error(int err)
{
	const char *p = tcp_last_via[0] ? tcp_last_via : shim_config.proxy.host;
	if (err == EOPNOTSUPP)
		shim_log(SHIM_LOG_ERROR,
		         "proxy %s does not carry UDP (UDP ASSOCIATE: command not "
		         "supported): datagrams through it fail, none is sent directly",
		         p);
	else
		shim_log(SHIM_LOG_ERROR, "UDP ASSOCIATE via %s: %s", p, strerror(err));
}

static void log_associated(const struct socks5_addr *bound, long long t0)
{
	if (!shim_log_enabled(SHIM_LOG_INFO))
		return;
	char r[SOCKS5_ADDR_STRLEN];
	socks5_addr_format(bound, r, sizeof(r));
	shim_log(SHIM_LOG_INFO, "udp associate via %s: relay %s, %lld us", tcp_last_via,
	         r, monotime_us() - t0);
}

/* The relay the reply names, in the socket's family (0.0.0.0 or :: mean the
 * proxy's own address, at that port). 0 or -EPROTO: also for port 0, where
 * no datagram can go (every send failed with EINVAL). */
static int set_relay(struct udp_assoc *a, const struct socks5_addr *bound,
                     const union sa_any *proxy)
{
	struct sockaddr_storage ss;
	socklen_t len = socks5_addr_to_sockaddr(bound, &ss);
	if (!len || bound->port == 0 || /* by name, in no usable family, port 0 */
	    !sa_to_family((struct sockaddr *)&ss, len, a->family, &a->relay))
		return -EPROTO;
	if (sa_unspecified(&a->relay.sa)) {
		uint16_t port = sa_port(&a->relay.sa);
		if (!sa_to_family(&proxy->sa, sa_len(&proxy->sa), a->family, &a->relay))
			return -EPROTO; /* "the proxy's address", of the other family */
		sa_set_port(&a->relay.sa, port);
	}
	a->relay_len = sa_len(&a->relay.sa);
	/* Announced to a supervisor, if the program runs under one: an empty
	 * send on the control connection naming the relay (the kernel ignores
	 * the address of a connected TCP socket's send; the supervisor sees it
	 * and lets this socket's datagrams to the relay out, which it would
	 * otherwise refuse as UDP it cannot carry). */
	real_sendto(a->ctl, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL, &a->relay.sa,
	            a->relay_len);
	return 0;
}

/* The proxy's address for the control connection, in the socket's family; an
 * IPv4 socket reaches a proxy known only by IPv6 addresses over IPv6 (the
 * request names the socket's address, or 0.0.0.0 with ATYP 1: an IPv4 relay,
 * as socksify-server and dante answer). */
static int proxy_for(struct udp_assoc *a, union sa_any *proxy, socklen_t *plen)
{
	a->ctl_family = a->family;
	int rc = policy_proxy_addr(a->family, &proxy->ss, plen);
	if (rc == -EAFNOSUPPORT && a->family == AF_INET) {
		a->ctl_family = AF_INET6;
		rc = policy_proxy_addr(AF_INET6, &proxy->ss, plen);
	}
	return rc;
}

/* The proxy's address, the socket bound, a new control connection (a->lock
 * held). 0 or -errno. */
static int prepare(int fd, struct udp_assoc *a, union sa_any *proxy)
{
	socklen_t plen;
	int rc = proxy_for(a, proxy, &plen);
	if (rc < 0) {
		log_associate_error(-rc);
		return rc;
	}
	rc = bind_if_unbound(fd, a->family, &a->local_port);
	if (rc < 0) {
		shim_log(SHIM_LOG_ERROR, "udp: cannot bind the socket: %s",
		         strerror(-rc));
		return rc;
	}
	return open_control(a);
}

/* UDP ASSOCIATE on a new control connection, in the call (a->lock held).
 * 0 or -errno. */
static int associate(int fd, struct udp_assoc *a)
{
	long long t0 = monotime_us();
	union sa_any proxy;
	struct socks5_addr req, bound;
	int rc = prepare(fd, a, &proxy);
	if (rc < 0)
		return rc;
	request_addr(fd, &proxy, &req);
	tcp_last_via[0] = '\0';
	rc = tcp_proxy_request(a->ctl, a->ctl_family, SOCKS5_CMD_UDP_ASSOCIATE, &req,
	                       &bound);
	/* the proxy that granted it (failover may have moved on from the first) */
	socklen_t plen = sizeof(proxy);
	if (rc == 0 && getpeername(a->ctl, &proxy.sa, &plen) < 0)
		rc = -errno;
	if (rc == 0)
		rc = set_relay(a, &bound, &proxy);
	if (rc < 0) {
		fail_association(a, rc);
		return rc;
	}
	if (a->connected && real_connect(fd, &a->relay.sa, a->relay_len) < 0) {
		rc = -errno;
		udp_assoc_drop_control(a);
		return rc;
	}
	log_associated(&bound, t0);
	return 0;
}

/* --- in the background ------------------------------------------------------------ */

static void free_queue(struct udp_assoc *a)
{
	while (a->q_head) {
		struct udp_dgram *d = a->q_head;
		a->q_head = d->next;
		free(d);
	}
	a->q_tail = &a->q_head;
	a->q_n = 0;
	a->q_bytes = 0;
}

ssize_t udp_assoc_queue(struct udp_assoc *a, const uint8_t *hdr, size_t hlen,
                        const struct msghdr *msg)
{
	size_t len = 0;
	for (size_t i = 0; i < msg->msg_iovlen; i++)
		len += msg->msg_iov[i].iov_len;
	if (a->q_n >= UDP_QUEUE_MAX || a->q_bytes + len > UDP_QUEUE_BYTES)
		return -EAGAIN;
	struct udp_dgram *d = malloc(sizeof(*d) + hlen + len);
	if (!d)
		return -ENOBUFS;
	memcpy(d->data, hdr, hlen);
	d->len = hlen;
	for (size_t i = 0; i < msg->msg_iovlen; i++) {
		memcpy(d->data + d->len, msg->msg_iov[i].iov_base,
		       msg->msg_iov[i].iov_len);
		d->len += msg->msg_iov[i].iov_len;
	}
	d->next = NULL;
	*a->q_tail = d;
	a->q_tail = &d->next;
	a->q_n++;
	a->q_bytes += len;
	return (ssize_t)len;
}

/* A failed UDP ASSOCIATE (a->lock held): one line, no control connection,
 * and the datagrams queued meanwhile dropped with one more. */
static void fail_association(struct udp_assoc *a, int rc)
{
	if (rc == -EOPNOTSUPP)
		__atomic_store_n(&proxy_refuses_udp, 1, __ATOMIC_RELAXED);
	log_associate_error(-rc);
	if (a->q_n)
		shim_log(SHIM_LOG_ERROR,
		         "udp: %u datagram%s sent while associating dropped", a->q_n,
		         a->q_n == 1 ? "" : "s");
	free_queue(a);
	udp_assoc_drop_control(a);
}

/* The queue to the relay, in order (a->lock held). */
static void flush_queue(struct udp_assoc *a)
{
	for (struct udp_dgram *d = a->q_head; d; d = d->next)
		real_sendto(a->flush_fd, d->data, d->len, MSG_DONTWAIT, &a->relay.sa,
		            a->relay_len);
	free_queue(a);
}

/* Ends a background association still running (a->lock held); the job's
 * reference to a goes (never the last: the caller holds one). */
static void end_job(struct udp_assoc *a)
{
	if (!a->job)
		return;
	tcp_bg_cancel(a->job);
	a->job = NULL;
	free_queue(a);
	if (a->flush_fd >= 0)
		real_close(a->flush_fd);
	a->flush_fd = -1;
	__atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL);
}

/* The helper thread: UDP ASSOCIATE has answered (rc 0, BND in bound) or
 * failed. The queue goes to the relay, or is dropped with one line. */
static void assoc_done(void *arg, struct bg_conn *job, int rc,
                       const struct socks5_addr *bound)
{
	struct udp_assoc *a = arg;
	pthread_mutex_lock(&a->lock);
	bool mine = a->job == job;
	if (mine) {
		a->job = NULL;
		/* the proxy that granted it: failover may have moved on */
		socklen_t plen = sizeof(a->proxy_addr);
		if (rc == 0 && getpeername(a->ctl, &a->proxy_addr.sa, &plen) < 0)
			rc = -errno;
		if (rc == 0)
			rc = set_relay(a, bound, &a->proxy_addr);
		if (rc == 0 && a->connected &&
		    real_connect(a->flush_fd, &a->relay.sa, a->relay_len) < 0)
			rc = -errno;
		if (rc == 0) {
			log_associated(bound, a->bg_t0);
			flush_queue(a);
		} else {
			fail_association(a, rc);
			a->pending_err = -rc; /* for the next send */
		}
		real_close(a->flush_fd);
		a->flush_fd = -1;
	}
	pthread_mutex_unlock(&a->lock);
	if (mine)
		udp_assoc_put(a);
}

/* UDP ASSOCIATE started in the background on a new control connection
 * (a->lock held): 1 while it runs, or -errno. */
static int associate_bg(int fd, struct udp_assoc *a)
{
	struct socks5_addr req;
	int rc = prepare(fd, a, &a->proxy_addr);
	if (rc < 0)
		return rc;
	a->flush_fd = real_fcntl(fd, F_DUPFD_CLOEXEC, CONTROL_FD_MIN);
	a->bg_t0 = monotime_us();
	request_addr(fd, &a->proxy_addr, &req);
	__atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED); /* the job's */
	if (a->flush_fd >= 0)
		a->job = tcp_bg_run(a->ctl, a->ctl_family, SOCKS5_CMD_UDP_ASSOCIATE, &req,
		                    assoc_done, a);
	if (!a->job) {
		__atomic_sub_fetch(&a->refs, 1, __ATOMIC_RELAXED);
		if (a->flush_fd >= 0)
			real_close(a->flush_fd);
		a->flush_fd = -1;
		udp_assoc_drop_control(a); /* associate() opens its own */
		return 0; /* not in the background: in the call, as a blocking socket */
	}
	return 1;
}

/* Should this send associate in the background? */
static bool defer(int fd, int msg_flags)
{
	if (msg_flags & MSG_DONTWAIT)
		return true;
	int fl = real_fcntl(fd, F_GETFL);
	return fl >= 0 && (fl & O_NONBLOCK);
}

static int ensure(int fd, struct udp_assoc *a, bool may_defer, int msg_flags)
{
	if (a->job)
		return 1;
	if (a->pending_err) {
		int err = a->pending_err;
		a->pending_err = 0;
		return -err;
	}
	if (a->ctl >= 0) {
		long long now = monotime_ms();
		if (now - a->alive_ms < CONTROL_CHECK_MS)
			return 0;
		if (control_alive(a->ctl)) {
			a->alive_ms = now;
			return 0;
		}
		shim_log(SHIM_LOG_INFO,
		         "udp: the proxy closed the association; associating again");
		udp_assoc_drop_control(a);
	}
	if (__atomic_load_n(&proxy_refuses_udp, __ATOMIC_RELAXED))
		return -EOPNOTSUPP;
	if (may_defer && defer(fd, msg_flags)) {
		int rc = associate_bg(fd, a);
		if (rc != 0)
			return rc;
	}
	return associate(fd, a);
}

/* No re-entrancy guard: everything here calls real_* functions (policy.c
 * raises the guard itself while it resolves the proxy's name with libc). */
int udp_assoc_ensure(int fd, struct udp_assoc *a, bool may_defer, int msg_flags)
{
	int cancel;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	a->handshaking = true;
	int rc = ensure(fd, a, may_defer, msg_flags);
	a->handshaking = false;
	pthread_setcancelstate(cancel, NULL);
	return rc;
}

/* --- start-up and fork -----------------------------------------------------------------
 */

/* After fork() the child has one thread: a lock another thread held (say
 * through a handshake) would never be released. Every lock is made anew,
 * and an association caught half-way through its handshake has none. */
static void reset_assoc(int fd, void *p)
{
	struct udp_assoc *a = p;
	(void)fd;
	pthread_mutex_init(&a->lock, NULL);
	if (a->job) {
		/* the parent's helper thread makes it: this copy starts anew */
		a->job = NULL;
		free_queue(a);
		if (a->flush_fd >= 0)
			real_close(a->flush_fd);
		a->flush_fd = -1;
		if (a->ctl >= 0) {
			fdtab_unset(a->ctl, FD_UDP_CONTROL, a);
			real_close(a->ctl);
		}
		a->ctl = -1;
		a->relay_len = 0;
	}
	if (a->handshaking) {
		a->handshaking = false;
		udp_assoc_drop_control(a);
	}
}

static void atfork_child(void)
{
	pthread_mutex_init(&adopt_lock, NULL);
	fdtab_for_each(FD_UDP, reset_assoc);
}

void udp_init(void)
{
	static const struct fdtab_ops assoc_ops = {
	        .hold = hold, .copy = copy, .release = entry_release};
	static const struct fdtab_ops control_ops = {
	        .hold = NULL, .copy = NULL, .release = control_lost};
	fdtab_register(FD_UDP, &assoc_ops);
	fdtab_register(FD_UDP_CONTROL, &control_ops);
	pthread_atfork(NULL, NULL, atfork_child);
}
