/* SPDX-License-Identifier: MIT */
/*
 * UDP ASSOCIATE for socksify-server (RFC 1928 sections 4 and 7). An
 * association has a front socket, of the family the request names (see
 * udp_front.c), and one outgoing socket per family (bound to -b when
 * given). Datagrams from the client — only from one source: the address and
 * port it named, else its control connection's address and the first port
 * it used (udp_front.c) — lose their header and go to their destination;
 * replies come back with a header naming their real source. Datagrams to a
 * name wait for its lookup (udp_names.c). Malformed datagrams, fragments and
 * denied destinations are dropped and counted. The association ends with
 * its TCP control connection, or after --idle-timeout without datagrams.
 */
#include "udp.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "sockaddr.h"
#include "udp_int.h"

enum {
	UDP_MAX = 65535, /* the largest datagram */
	UDP_MMSG = 16,   /* datagrams per recvmmsg/sendmmsg */
	UDP_BATCH = 64,  /* datagrams handled per wake-up and socket */
};

/* Datagrams waiting for one sendmmsg() on one socket. */
struct udp_queue {
	int fd;
	unsigned n;
	size_t niov;         /* per datagram; the last one is the payload */
	struct udp_assoc *u; /* whose datagrams they are */
	bool up;             /* towards destinations, else to the client */
	struct mmsghdr msg[UDP_MMSG];
	struct iovec iov[UDP_MMSG][2];
	struct sockaddr_storage to[UDP_MMSG];
};

/*
 * One burst: up to UDP_MMSG datagrams read with one recvmmsg() into buf, and
 * what goes out again queued per socket for sendmmsg(). Per thread (each
 * event loop has its own), allocated on first use: the buffers are virtual
 * memory until a datagram touches them.
 */
struct udp_batch {
	struct mmsghdr msg[UDP_MMSG];
	struct iovec iov[UDP_MMSG];
	struct sockaddr_storage src[UDP_MMSG];
	uint8_t hdr[UDP_MMSG][SOCKS5_UDP_HEADER_MAX];
	struct udp_queue q4, q6, back; /* to IPv4 and IPv6 destinations; to the client */
	uint8_t buf[UDP_MMSG][SOCKS5_UDP_HEADER_MAX + UDP_MAX];
};

static __thread struct udp_batch *batch;
static pthread_key_t batch_key; /* its destructor frees a thread's batch */
static pthread_once_t batch_once = PTHREAD_ONCE_INIT;

static void batch_free(void *b)
{
	free(b);
	batch = NULL;
}

static void batch_key_create(void)
{
	pthread_key_create(&batch_key, batch_free);
}

static void on_out4(struct loop_watch *w, uint32_t revents);
static void on_out6(struct loop_watch *w, uint32_t revents);

/* The outgoing socket for a family, made on first use. */
static int out_socket(struct udp_assoc *u, int family)
{
	const struct server_config *cfg = &u->conn->srv->cfg;
	struct loop_watch *w = family == AF_INET ? &u->out4 : &u->out6;
	struct sockaddr_storage any = {.ss_family = (sa_family_t)family};
	int one = 1, err;

	if (w->fd >= 0)
		return w->fd;
	const struct sockaddr_storage *src = server_source(cfg, family, &err);
	if (err < 0)
		return err; /* -b names only the other family */
	if (!src)
		src = &any;
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)src, sa_len((const struct sockaddr *)src)) <
	    0) {
		err = errno;
		close(fd);
		return -err;
	}
	loop_watch_init(w, fd, family == AF_INET ? on_out4 : on_out6);
	int rc = loop_watch_set(&u->conn->srv->loop, w, EPOLLIN);
	if (rc < 0) {
		loop_watch_close(&u->conn->srv->loop, w);
		return rc;
	}
	return fd;
}

/* Sends the queued datagrams with sendmmsg(); counts each one sent or
 * dropped (a datagram the kernel refuses is dropped, as with sendto()). */
static void flush(struct udp_queue *q)
{
	struct udp_assoc *u = q->u;
	unsigned i = 0;

	while (i < q->n) {
		int r = sendmmsg(q->fd, q->msg + i, q->n - i, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		for (int k = 0; k < r; k++, i++) {
			size_t len = q->iov[i][q->niov - 1].iov_len;
			if (q->up) {
				u->up++;
				u->up_bytes += len;
			} else {
				u->down++;
				u->down_bytes += len;
			}
		}
		if (i < q->n) { /* q->msg[i] failed */
			u->dropped++;
			i++;
		}
	}
	q->n = 0;
}

/* Queues a datagram (iov[0..niov)) to `to` on fd; a full queue, or one for
 * another socket, is flushed first. */
static void enqueue(struct udp_queue *q, struct udp_assoc *u, int fd,
                    const struct sockaddr_storage *to, const struct iovec *iov,
                    size_t niov)
{
	if (q->n && (q->fd != fd || q->u != u || q->n == UDP_MMSG))
		flush(q);
	q->fd = fd;
	q->u = u;
	q->niov = niov;
	q->to[q->n] = *to;
	memcpy(q->iov[q->n], iov, niov * sizeof(*iov));
	q->msg[q->n] = (struct mmsghdr){
	        .msg_hdr = {.msg_name = &q->to[q->n],
	                    .msg_namelen = sa_len((const struct sockaddr *)to),
	                    .msg_iov = q->iov[q->n],
	                    .msg_iovlen = niov}};
	q->n++;
}

/* Logs a denied destination once while it is among the last few denied,
 * and at most UDP_DENIED_LINES times per association. */
static void log_denied(struct udp_assoc *u, const struct sockaddr_storage *dst,
                       const char *name, const char *rule)
{
	for (int i = 0; i < UDP_DENIED_SEEN; i++)
		if (sa_same(&u->denied_seen[i].sa, (const struct sockaddr *)dst))
			return;
	union sa_any *slot = &u->denied_seen[u->denied_next++ % UDP_DENIED_SEEN];
	memset(slot, 0, sizeof(*slot));
	memcpy(slot, dst, sa_len((const struct sockaddr *)dst));
	if (u->denied_lines >= UDP_DENIED_LINES)
		return;
	const char *action = ++u->denied_lines < UDP_DENIED_LINES
	                             ? "datagrams dropped"
	                             : "datagrams dropped (the last such line of "
	                               "this association: more are only counted)";
	conn_log_denied(u->conn, "UDP", name, (const struct sockaddr *)dst, action, rule);
}

bool udp_permitted(struct udp_assoc *u, const struct sockaddr_storage *dst,
                   const char *name)
{
	const char *rule = acl_check(&u->conn->srv->cfg.acl, (const struct sockaddr *)dst,
	                             ACL_OTHER);
	if (!rule)
		return true;
	u->denied++;
	log_denied(u, dst, name, rule);
	return false;
}

bool udp_send_out(struct udp_assoc *u, struct sockaddr_storage *dst, const uint8_t *data,
                  size_t len, bool queue)
{
	int fd = out_socket(u, dst->ss_family);
	if (fd < 0)
		return false;
	if (queue) { /* counted when flushed */
		struct iovec iov = {(void *)data, len};
		enqueue(dst->ss_family == AF_INET ? &batch->q4 : &batch->q6, u, fd, dst,
		        &iov, 1);
		return true;
	}
	if (sendto(fd, data, len, 0, (struct sockaddr *)dst,
	           sa_len((const struct sockaddr *)dst)) < 0)
		return false;
	u->up++;
	u->up_bytes += len;
	return true;
}

/* The thread's batch, allocated on first use; NULL when out of memory. */
static struct udp_batch *get_batch(void)
{
	if (!batch && (batch = calloc(1, sizeof(*batch)))) {
		pthread_once(&batch_once, batch_key_create);
		pthread_setspecific(batch_key, batch);
		batch->q4.up = batch->q6.up = true;
		for (int i = 0; i < UDP_MMSG; i++)
			batch->iov[i] =
			        (struct iovec){batch->buf[i], sizeof(batch->buf[i])};
	}
	return batch;
}

/* Reads up to UDP_MMSG datagrams (at most `max` bytes each) from fd into the
 * batch with one recvmmsg(); returns how many (0: none, or an error). */
static int read_burst(int fd, size_t max)
{
	for (int i = 0; i < UDP_MMSG; i++) {
		batch->iov[i].iov_len = max;
		batch->msg[i] =
		        (struct mmsghdr){.msg_hdr = {.msg_name = &batch->src[i],
		                                     .msg_namelen = sizeof(batch->src[i]),
		                                     .msg_iov = &batch->iov[i],
		                                     .msg_iovlen = 1}};
	}
	int n;
	do
		n = recvmmsg(fd, batch->msg, UDP_MMSG, MSG_DONTWAIT, NULL);
	while (n < 0 && errno == EINTR);
	return n > 0 ? n : 0;
}

/* One datagram from the client: check its source and header, pass it on. */
static void from_client(struct udp_assoc *u, const uint8_t *dgram, size_t n,
                        const struct sockaddr_storage *src)
{
	struct socks5_udp_header h;

	if (!udp_front_accepts(u, src)) {
		u->dropped++;
		return;
	}
	ssize_t hl = socks5_udp_header_parse(dgram, n, &h);
	if (hl < 0 || h.frag != 0) {
		u->dropped++;
		return;
	}
	const uint8_t *payload = dgram + hl;
	size_t plen = n - (size_t)hl;
	struct sockaddr_storage dst;
	bool sent = h.addr.atyp == SOCKS5_ATYP_DOMAIN
	                    ? udp_send_to_name(u, &h.addr, payload, plen)
	                    : socks5_addr_to_sockaddr(&h.addr, &dst) > 0 &&
	                              udp_permitted(u, &dst, NULL) &&
	                              udp_send_out(u, &dst, payload, plen, true);
	u->dropped += !sent;
	u->conn->deadline_ms =
	        u->conn->srv->cfg.idle_timeout_ms
	                ? u->conn->srv->loop.now_ms + u->conn->srv->cfg.idle_timeout_ms
	                : 0;
}

/* The front socket: bursts from the client, passed on a burst at a time. */
static void on_front(struct loop_watch *w, uint32_t revents)
{
	struct udp_assoc *u = container_of(w, struct udp_assoc, front);
	(void)revents;
	if (!get_batch())
		return;
	for (int total = 0, n = UDP_MMSG; n == UDP_MMSG && total < UDP_BATCH;
	     total += n) {
		n = read_burst(w->fd, sizeof(batch->buf[0]));
		for (int i = 0; i < n; i++)
			from_client(u, batch->buf[i], batch->msg[i].msg_len,
			            &batch->src[i]);
		if (batch->q4.n)
			flush(&batch->q4);
		if (batch->q6.n)
			flush(&batch->q6);
	}
}

/* A reply from a destination: queued to the client behind a header naming its
 * source. */
static void to_client(struct udp_assoc *u, int i)
{
	const struct sockaddr_storage *src = &batch->src[i];
	struct socks5_addr a;
	const uint8_t *v4 = sa_ipv4((const struct sockaddr *)src);

	if (v4) {
		a = (struct socks5_addr){.atyp = SOCKS5_ATYP_IPV4,
		                         .port = sa_port((const struct sockaddr *)src)};
		memcpy(a.host.ipv4, v4, 4);
	} else if (socks5_addr_from_sockaddr(&a, (const struct sockaddr *)src,
	                                     batch->msg[i].msg_hdr.msg_namelen) < 0) {
		u->dropped++;
		return;
	}
	size_t hl = socks5_udp_header_encode(batch->hdr[i], sizeof(batch->hdr[i]), 0, &a);
	if (!u->client_known || hl == 0) {
		u->dropped++;
		return;
	}
	struct iovec iov[2] = {{batch->hdr[i], hl},
	                       {batch->buf[i], batch->msg[i].msg_len}};
	enqueue(&batch->back, u, u->front.fd, &u->client, iov, 2);
}

/* Replies from destinations, a burst at a time. */
static void from_out(struct udp_assoc *u, int fd)
{
	if (!get_batch())
		return;
	for (int total = 0, n = UDP_MMSG; n == UDP_MMSG && total < UDP_BATCH;
	     total += n) {
		n = read_burst(fd, UDP_MAX);
		for (int i = 0; i < n; i++)
			to_client(u, i);
		if (batch->back.n)
			flush(&batch->back);
	}
}

static void on_out4(struct loop_watch *w, uint32_t revents)
{
	(void)revents;
	from_out(container_of(w, struct udp_assoc, out4), w->fd);
}

static void on_out6(struct loop_watch *w, uint32_t revents)
{
	(void)revents;
	from_out(container_of(w, struct udp_assoc, out6), w->fd);
}

/* The front socket (udp_front.c), watched; its address in *bound. */
static int open_front(struct udp_assoc *u, struct sockaddr_storage *bound, socklen_t *len)
{
	int fd = udp_front_socket(u, bound, len);
	if (fd < 0)
		return fd;
	loop_watch_init(&u->front, fd, on_front);
	return loop_watch_set(&u->conn->srv->loop, &u->front, EPOLLIN);
}

/* The association ends with its control connection (the on_close). Its memory
 * stays until the connection is freed after this batch of events (conn_free):
 * an event of the batch not handled yet may name its watches, closed now. */
static void udp_release(struct conn *c)
{
	struct udp_assoc *u = c->udp;
	if (!u)
		return;
	loop_watch_close(&c->srv->loop, &u->front);
	loop_watch_close(&c->srv->loop, &u->out4);
	loop_watch_close(&c->srv->loop, &u->out6);
	udp_names_release(u);
}

/* "up N datagrams (B bytes), down ..., dropped D" for the log line. */
static void udp_describe(const struct conn *c, char *buf, size_t cap)
{
	const struct udp_assoc *u = c->udp;
	snprintf(buf, cap,
	         "up %" PRIu64 " datagrams (%" PRIu64 " bytes), down %" PRIu64
	         " datagrams (%" PRIu64 " bytes), dropped %" PRIu64 " (%" PRIu64
	         " denied)",
	         u->up, u->up_bytes, u->down, u->down_bytes, u->dropped, u->denied);
}

/* The control connection only has to be watched for its end. */
static const struct phase associated = {.on_client = conn_discard,
                                        .on_timeout = conn_idle_timeout};

void udp_start(struct conn *c)
{
	struct server *srv = c->srv;
	struct sockaddr_storage bound;
	socklen_t len = sizeof(bound);
	struct socks5_addr bnd;
	uint8_t reply[SOCKS5_REPLY_MAX];

	struct udp_assoc *u = calloc(1, sizeof(*u));
	if (!u) {
		conn_fail(c, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	u->conn = c;
	c->udp = u;
	c->on_close = udp_release;
	c->describe = udp_describe;
	loop_watch_init(&u->front, -1, on_front);
	loop_watch_init(&u->out4, -1, on_out4);
	loop_watch_init(&u->out6, -1, on_out6);
	udp_front_pin(u);
	int rc = open_front(u, &bound, &len);
	if (rc == 0)
		rc = socks5_addr_from_sockaddr(&bnd, (struct sockaddr *)&bound, len);
	if (rc < 0) {
		conn_fail(c,
		          rc == -EAFNOSUPPORT ? SOCKS5_REP_ATYP_NOT_SUPPORTED
		                              : SOCKS5_REP_GENERAL_FAILURE,
		          rc == -EAFNOSUPPORT
		                  ? "no address of the request's family for the relay"
		                  : strerror(-rc));
		return;
	}
	size_t n = socks5_reply_encode(reply, sizeof(reply), SOCKS5_REP_SUCCEEDED, &bnd);
	if (conn_send(c, reply, n) < 0)
		return;
	conn_enter(c, &associated);
	c->result = "closed";
	conn_end_setup(c);
	c->deadline_ms = srv->cfg.idle_timeout_ms
	                         ? srv->loop.now_ms + srv->cfg.idle_timeout_ms
	                         : 0;
	if (loop_watch_set(&srv->loop, &c->client, EPOLLIN) < 0)
		conn_close(c, "epoll failed");
}
