/* SPDX-License-Identifier: MIT */
/*
 * UDP ASSOCIATE in the shim (see udp.h).
 *
 * Sending puts the section 7 header in front of the program's iovecs and
 * sends to the relay in one sendmsg(). Receiving reads into
 *   [header guess][the program's iovecs][spill]
 * in one recvmsg(): the guess is the length of the last header seen (10 for
 * an IPv4 source, 22 for IPv6), so the payload normally lands exactly in the
 * program's buffers without a copy; when the header turns out longer or
 * shorter, the bytes are moved (the spill buffer holds what the shift pulls
 * in from past the program's buffers, so nothing is lost). MSG_TRUNC is
 * always asked of the kernel, which then returns the datagram's real length.
 *
 * Locking: refs_lock guards reference counts and the creation of an
 * association for a descriptor; each association's own lock guards its
 * state, and is held through a (re-)association handshake, so a second
 * thread sending on the same socket waits for it instead of associating
 * twice. Nothing is held across a program's blocking receive.
 */
#include "udp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>

#include "fakedns.h"
#include "log.h"
#include "policy.h"
#include "shim.h"
#include "socks5.h"
#include "tcp.h"

enum {
	/* Control connections are moved at or above this descriptor number. */
	CONTROL_FD_MIN = 800,
	/* Names sent to (fake-pool destinations) remembered per socket, to
	 * report replies as coming from the fake address the program used. */
	NAMES_MAX = 8,
	/* iovecs on the stack; more are allocated. */
	IOV_STACK = 16,
};

union sa {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	struct sockaddr_storage ss;
};

struct name_entry {
	bool used, learned;
	uint16_t port; /* host order */
	union sa fake; /* the fake address the program sent to */
	socklen_t fake_len;
	struct socks5_addr real; /* where its replies turned out to come from */
};

struct udp_assoc {
	pthread_mutex_t lock;
	int refs;       /* fd table entries + operations in progress; refs_lock */
	int family;     /* the socket's: AF_INET or AF_INET6 */
	int ctl;        /* control connection, -1 when there is none */
	union sa relay; /* the relay, in the socket's family; when ctl >= 0 */
	socklen_t relay_len;
	uint16_t local_port; /* the socket's, announced in the request */
	int hdr_guess;       /* length of the last header received */
	bool connected;      /* connect()ed to a proxied destination */
	bool handshaking;    /* associate() runs, a->lock held (for fork) */
	union sa peer;       /* that destination, in the socket's family */
	socklen_t peer_len;
	struct socks5_addr target; /* and as the proxy is asked for it */
	unsigned names_next;
	struct name_entry names[NAMES_MAX];
};

static pthread_mutex_t refs_lock = PTHREAD_MUTEX_INITIALIZER;
/* The proxy answered UDP ASSOCIATE with "command not supported": it is not
 * asked again in this process. */
static int proxy_refuses_udp;

/* --- addresses ------------------------------------------------------------------ */

static uint16_t sa_port(const union sa *a)
{
	return a->sa.sa_family == AF_INET ? a->v4.sin_port : a->v6.sin6_port;
}

/* Copies src into out in `family` (IPv4 <-> v4-mapped IPv6); the length, or 0
 * when it cannot be expressed in that family. */
static socklen_t sa_to_family(const struct sockaddr *src, socklen_t len, int family,
                              union sa *out)
{
	memset(out, 0, sizeof(*out));
	if (src->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)src;
		if (family == AF_INET) {
			out->v4 = *in;
			return sizeof(out->v4);
		}
		out->v6.sin6_family = AF_INET6;
		out->v6.sin6_port = in->sin_port;
		out->v6.sin6_addr.s6_addr[10] = 0xff;
		out->v6.sin6_addr.s6_addr[11] = 0xff;
		memcpy(&out->v6.sin6_addr.s6_addr[12], &in->sin_addr, 4);
		return sizeof(out->v6);
	}
	if (src->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)src;
		if (family == AF_INET6) {
			out->v6 = *in6;
			return sizeof(out->v6);
		}
		if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			return 0;
		out->v4.sin_family = AF_INET;
		out->v4.sin_port = in6->sin6_port;
		memcpy(&out->v4.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
		return sizeof(out->v4);
	}
	return 0;
}

/* Same address and port (both in the same family). */
static bool sa_same(const union sa *a, const union sa *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->v4.sin_port == b->v4.sin_port &&
		       a->v4.sin_addr.s_addr == b->v4.sin_addr.s_addr;
	return a->v6.sin6_port == b->v6.sin6_port &&
	       memcmp(&a->v6.sin6_addr, &b->v6.sin6_addr, 16) == 0;
}

static bool sa_unspecified(const union sa *a)
{
	static const uint8_t zero[16];
	if (a->sa.sa_family == AF_INET)
		return a->v4.sin_addr.s_addr == 0;
	return memcmp(&a->v6.sin6_addr, zero, 16) == 0;
}

/* A SOCKS address as a sockaddr of `family`; 0 for a name or no fit. */
static socklen_t socks_to_sa(const struct socks5_addr *s, int family, union sa *out)
{
	struct sockaddr_storage ss;
	socklen_t len = socks5_addr_to_sockaddr(s, &ss);
	return len ? sa_to_family((struct sockaddr *)&ss, len, family, out) : 0;
}

static void copy_name(const union sa *from, socklen_t from_len, struct msghdr *msg)
{
	if (!msg->msg_name)
		return;
	memcpy(msg->msg_name, from,
	       msg->msg_namelen < from_len ? msg->msg_namelen : from_len);
	msg->msg_namelen = from_len;
}

/* --- the socket ------------------------------------------------------------------- */

static int sockopt_int(int fd, int level, int name)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return real_getsockopt(fd, level, name, &v, &len) < 0 ? -1 : v;
}

/* The family of an IP datagram or raw socket (0 for anything else); *udp
 * says whether it is UDP, which UDP ASSOCIATE can carry (raw sockets, ICMP
 * "ping" sockets and UDP-Lite cannot be). */
static int dgram_family(int fd, bool *udp)
{
	*udp = false;
	int type = sockopt_int(fd, SOL_SOCKET, SO_TYPE);
	if (type != SOCK_DGRAM && type != SOCK_RAW)
		return 0;
	int family = sockopt_int(fd, SOL_SOCKET, SO_DOMAIN);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	*udp = type == SOCK_DGRAM &&
	       sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_UDP;
	return family;
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *proxy_str(char *buf, size_t cap)
{
	const struct config_proxy *p = &shim_config.proxy;
	bool v6 = strchr(p->host, ':') != NULL;
	snprintf(buf, cap, "%s%s%s:%u", v6 ? "[" : "", p->host, v6 ? "]" : "", p->port);
	return buf;
}

/* --- associations ------------------------------------------------------------------ */

/* Closes the control connection (a->lock held, or the last reference). */
static void drop_control(struct udp_assoc *a)
{
	if (a->ctl < 0)
		return;
	struct fd_entry *c = fdtab_get(a->ctl);
	if (c && c->kind == FD_UDP_CONTROL && c->udp == a)
		memset(c, 0, sizeof(*c));
	real_close(a->ctl);
	a->ctl = -1;
	a->relay_len = 0;
}

/* The control connection is alive while the proxy has said nothing on it. */
static bool control_alive(int ctl)
{
	struct pollfd p = {.fd = ctl, .events = POLLIN | POLLRDHUP};
	return poll(&p, 1, 0) == 0;
}

/* The request's DST: the address and port the datagrams will come from, as
 * far as they are known (RFC 1928: zeros when not). */
static void request_addr(int fd, const union sa *proxy, struct socks5_addr *out)
{
	union sa local, plain;
	socklen_t len = sizeof(local);
	bool v4 = proxy->sa.sa_family == AF_INET ||
	          IN6_IS_ADDR_V4MAPPED(&proxy->v6.sin6_addr);

	memset(out, 0, sizeof(*out));
	out->atyp = v4 ? SOCKS5_ATYP_IPV4 : SOCKS5_ATYP_IPV6;
	if (getsockname(fd, &local.sa, &len) < 0)
		return;
	out->port = ntohs(sa_port(&local));
	if (sa_unspecified(&local))
		return;
	if (sa_to_family(&local.sa, len, v4 ? AF_INET : AF_INET6, &plain))
		socks5_addr_from_sockaddr(out, &plain.sa, sizeof(plain));
}

/* Binds an unbound socket to its family's wildcard address, port 0; its
 * port (network order) into *port. */
static int bind_if_unbound(int fd, int family, uint16_t *port)
{
	union sa local;
	socklen_t len = sizeof(local);
	if (getsockname(fd, &local.sa, &len) < 0)
		return -errno;
	if (sa_port(&local) == 0) {
		memset(&local, 0, sizeof(local));
		local.sa.sa_family = (sa_family_t)family;
		len = family == AF_INET ? sizeof(local.v4) : sizeof(local.v6);
		if (bind(fd, &local.sa, len) < 0)
			return -errno;
		len = sizeof(local);
		if (getsockname(fd, &local.sa, &len) < 0)
			return -errno;
	}
	*port = sa_port(&local);
	return 0;
}

static void log_associate_error(int err)
{
	char p[300];
	if (err == EOPNOTSUPP)
		shim_log(SHIM_LOG_ERROR,
		         "proxy %s does not carry UDP (UDP ASSOCIATE: command not "
		         "supported): datagrams through it fail, none is sent directly",
		         proxy_str(p, sizeof(p)));
	else
		shim_log(SHIM_LOG_ERROR, "UDP ASSOCIATE via %s: %s",
		         proxy_str(p, sizeof(p)), strerror(err));
}

/*
 * Makes sure fd has a live association (a->lock held): checks the control
 * connection, and associates (again) when there is none. 0 or -errno.
 */
static int associate(int fd, struct udp_assoc *a)
{
	if (a->ctl >= 0) {
		if (control_alive(a->ctl))
			return 0;
		shim_log(SHIM_LOG_INFO,
		         "udp: the proxy closed the association; associating again");
		drop_control(a);
	}
	if (__atomic_load_n(&proxy_refuses_udp, __ATOMIC_RELAXED))
		return -EOPNOTSUPP;

	long long t0 = now_us();
	union sa proxy;
	socklen_t plen;
	int rc = policy_proxy_addr(a->family, &proxy.ss, &plen);
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
	int ctl = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl < 0)
		return -errno;
	int high = real_fcntl(ctl, F_DUPFD_CLOEXEC, CONTROL_FD_MIN);
	if (high >= 0) {
		real_close(ctl);
		ctl = high;
	}
	struct fd_entry *c = fdtab_claim(ctl);
	if (c) {
		memset(c, 0, sizeof(*c));
		c->udp = a;
		__atomic_store_n(&c->kind, FD_UDP_CONTROL, __ATOMIC_RELEASE);
	}
	a->ctl = ctl;

	struct socks5_addr req, bound;
	request_addr(fd, &proxy, &req);
	rc = tcp_proxy_request(ctl, a->family, SOCKS5_CMD_UDP_ASSOCIATE, &req, &bound);
	if (rc == 0 && !socks_to_sa(&bound, a->family, &a->relay))
		rc = -EPROTO; /* a relay given by name, or in no usable family */
	if (rc == 0 && sa_unspecified(&a->relay)) {
		/* 0.0.0.0 or :: : the proxy's own address, at that port */
		uint16_t port = sa_port(&a->relay);
		a->relay = proxy;
		if (a->relay.sa.sa_family == AF_INET)
			a->relay.v4.sin_port = port;
		else
			a->relay.v6.sin6_port = port;
	}
	if (rc < 0) {
		if (rc == -EOPNOTSUPP)
			__atomic_store_n(&proxy_refuses_udp, 1, __ATOMIC_RELAXED);
		log_associate_error(-rc);
		drop_control(a);
		return rc;
	}
	a->relay_len = a->family == AF_INET ? sizeof(a->relay.v4) : sizeof(a->relay.v6);
	if (a->connected && real_connect(fd, &a->relay.sa, a->relay_len) < 0) {
		rc = -errno;
		drop_control(a);
		return rc;
	}
	if (shim_log_enabled(SHIM_LOG_INFO)) {
		char p[300], r[SOCKS5_ADDR_STRLEN];
		socks5_addr_format(&bound, r, sizeof(r));
		shim_log(SHIM_LOG_INFO, "udp associate via %s: relay %s, %lld us",
		         proxy_str(p, sizeof(p)), r, now_us() - t0);
	}
	return 0;
}

/* The FD_UDP entry of fd, created for a fresh socket (NULL: fd untracked). */
static struct fd_entry *adopt(int fd, int family)
{
	struct fd_entry *e = fdtab_claim(fd);
	if (!e)
		return NULL;
	pthread_mutex_lock(&refs_lock);
	if (e->kind != FD_UDP) {
		struct udp_assoc *a = calloc(1, sizeof(*a));
		if (!a) {
			pthread_mutex_unlock(&refs_lock);
			return NULL;
		}
		pthread_mutex_init(&a->lock, NULL);
		a->refs = 1;
		a->family = family;
		a->ctl = -1;
		a->hdr_guess = 10;
		memset(e, 0, sizeof(*e));
		e->udp = a;
		__atomic_store_n(&e->kind, FD_UDP, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&refs_lock);
	return e;
}

static void release(struct udp_assoc *a)
{
	drop_control(a);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* A reference for the caller to the association of e, or NULL when e is not
 * (or no longer) an associated socket's entry: an operation in progress keeps
 * the association alive through another thread's close(). */
static struct udp_assoc *hold(struct fd_entry *e)
{
	struct udp_assoc *a = NULL;
	pthread_mutex_lock(&refs_lock);
	if (e && e->kind == FD_UDP) {
		a = e->udp;
		a->refs++;
	}
	pthread_mutex_unlock(&refs_lock);
	return a;
}

static void put(struct udp_assoc *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&refs_lock);
	int left = --a->refs;
	pthread_mutex_unlock(&refs_lock);
	if (left == 0)
		release(a);
}

void udp_entry_drop(struct fd_entry *e)
{
	pthread_mutex_lock(&refs_lock);
	struct udp_assoc *a = e->kind == FD_UDP ? e->udp : NULL;
	__atomic_store_n(&e->kind, FD_NONE, __ATOMIC_RELEASE);
	memset(e, 0, sizeof(*e));
	int left = a ? --a->refs : 1;
	pthread_mutex_unlock(&refs_lock);
	if (left == 0)
		release(a);
}

void udp_entry_copy(const struct fd_entry *src, struct fd_entry *dst)
{
	pthread_mutex_lock(&refs_lock);
	if (src->kind == FD_UDP) {
		src->udp->refs++;
		*dst = *src;
	}
	pthread_mutex_unlock(&refs_lock);
}

bool udp_control_evacuate(int fd)
{
	struct fd_entry *c = fdtab_lookup(fd);
	if (!c || c->kind != FD_UDP_CONTROL)
		return false;
	struct udp_assoc *a = c->udp;
	pthread_mutex_lock(&a->lock);
	int moved = real_fcntl(fd, F_DUPFD_CLOEXEC, CONTROL_FD_MIN);
	if (moved < 0)
		moved = real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
	struct fd_entry *m = moved >= 0 ? fdtab_claim(moved) : NULL;
	memset(c, 0, sizeof(*c));
	if (m) {
		memset(m, 0, sizeof(*m));
		m->udp = a;
		__atomic_store_n(&m->kind, FD_UDP_CONTROL, __ATOMIC_RELEASE);
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

void udp_control_lost(int fd)
{
	struct fd_entry *c = fdtab_lookup(fd);
	if (!c || c->kind != FD_UDP_CONTROL)
		return;
	struct udp_assoc *a = c->udp;
	pthread_mutex_lock(&a->lock);
	memset(c, 0, sizeof(*c));
	if (a->ctl == fd) {
		a->ctl = -1;
		a->relay_len = 0;
	}
	pthread_mutex_unlock(&a->lock);
}

/* --- sending -------------------------------------------------------------------------
 */

/* Remembers that the program sent to the fake address dst (a->lock held). */
static void remember_name(struct udp_assoc *a, const struct sockaddr *dst, socklen_t len)
{
	union sa fake;
	socklen_t flen = sa_to_family(dst, len, a->family, &fake);
	if (!flen)
		return;
	for (unsigned i = 0; i < NAMES_MAX; i++)
		if (a->names[i].used && sa_same(&a->names[i].fake, &fake))
			return;
	struct name_entry *n = &a->names[a->names_next++ % NAMES_MAX];
	memset(n, 0, sizeof(*n));
	n->used = true;
	n->fake = fake;
	n->fake_len = flen;
	n->port = ntohs(sa_port(&fake));
}

static bool socks_same(const struct socks5_addr *x, const struct socks5_addr *y)
{
	if (x->atyp != y->atyp || x->port != y->port)
		return false;
	switch (x->atyp) {
	case SOCKS5_ATYP_IPV4:
		return memcmp(x->host.ipv4, y->host.ipv4, 4) == 0;
	case SOCKS5_ATYP_IPV6:
		return memcmp(x->host.ipv6, y->host.ipv6, 16) == 0;
	default:
		return x->domain_len == y->domain_len &&
		       strncasecmp(x->host.domain, y->host.domain, x->domain_len) == 0;
	}
}

/*
 * Where a datagram that the relay brings from src is reported to come from
 * (a->lock held); 0 when it is to be dropped. A connected socket hears its
 * peer only. A reply to a name the program sent to (through a fake address)
 * comes from whatever the proxy resolved the name to, in either family: it
 * is reported from the fake address, matched by port (the first new source
 * with that port is taken as the name's, and remembered).
 */
static socklen_t relay_source(struct udp_assoc *a, const struct socks5_addr *src,
                              union sa *out)
{
	if (a->connected) {
		if (a->target.atyp != SOCKS5_ATYP_DOMAIN && !socks_same(&a->target, src))
			return 0;
		*out = a->peer;
		return a->peer_len;
	}
	struct name_entry *fresh = NULL;
	for (unsigned i = 0; i < NAMES_MAX; i++) {
		struct name_entry *n = &a->names[i];
		if (!n->used || n->port != src->port)
			continue;
		if (n->learned && socks_same(&n->real, src)) {
			*out = n->fake;
			return n->fake_len;
		}
		if (!n->learned)
			fresh = n;
	}
	if (fresh) {
		fresh->learned = true;
		fresh->real = *src;
		*out = fresh->fake;
		return fresh->fake_len;
	}
	if (src->atyp != SOCKS5_ATYP_DOMAIN)
		return socks_to_sa(src, a->family, out);
	/* a source given by name: its fake address, when it has one */
	memset(out, 0, sizeof(*out));
	out->sa.sa_family = (sa_family_t)a->family;
	if (a->family == AF_INET) {
		out->v4.sin_port = htons(src->port);
		return fakedns_addr_for(src->host.domain, AF_INET, &out->v4.sin_addr) < 0
		               ? 0
		               : sizeof(out->v4);
	}
	out->v6.sin6_port = htons(src->port);
	return fakedns_addr_for(src->host.domain, AF_INET6, &out->v6.sin6_addr) < 0
	               ? 0
	               : sizeof(out->v6);
}

static void log_denied(const struct policy *pol)
{
	shim_log(SHIM_LOG_ERROR, "datagram refused: %s", pol->reason);
}

/* A control message asking for UDP segmentation offload: one header per
 * datagram cannot be had that way. */
static bool wants_gso(const struct msghdr *msg)
{
	if (!msg->msg_control || msg->msg_controllen < sizeof(struct cmsghdr))
		return false;
	for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c;
	     c = CMSG_NXTHDR((struct msghdr *)msg, c))
		if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_SEGMENT)
			return true;
	return false;
}

/* associate() without cancellation (it holds a->lock). No re-entrancy guard:
 * it calls real_* functions only (policy.c raises the guard itself while it
 * resolves the proxy's name with libc). */
static int associate_guarded(int fd, struct udp_assoc *a)
{
	int cancel;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
	a->handshaking = true;
	int rc = associate(fd, a);
	a->handshaking = false;
	pthread_setcancelstate(cancel, NULL);
	return rc;
}

static ssize_t refuse(const char *why, int err)
{
	shim_log(SHIM_LOG_ERROR, "datagram refused: %s", why);
	errno = err;
	return -1;
}

static ssize_t send_held(int fd, struct udp_assoc **ap, const struct msghdr *msg,
                         int flags, bool *handled)
{
	const struct sockaddr *dst = msg->msg_name;
	struct udp_assoc *a = *ap;
	struct socks5_addr target;
	struct policy pol;

	*handled = false;
	if (!dst || msg->msg_namelen == 0) {
		if (!a || !__atomic_load_n(&a->connected, __ATOMIC_RELAXED))
			return 0; /* the kernel answers (EDESTADDRREQ, or a direct peer)
			           */
		pthread_mutex_lock(&a->lock);
		target = a->target;
		pthread_mutex_unlock(&a->lock);
		pol.verdict = POLICY_PROXY;
	} else {
		if (msg->msg_namelen < sizeof(sa_family_t) ||
		    (dst->sa_family != AF_INET && dst->sa_family != AF_INET6))
			return 0;
		policy_classify(dst, msg->msg_namelen, &pol);
		if (pol.verdict == POLICY_PASS)
			return 0;
		if (!a) {
			bool udp;
			int family = dgram_family(fd, &udp);
			if (family == 0)
				return 0; /* a stream socket: TCP's business */
			*handled = true;
			if (pol.verdict == POLICY_PROXY && !udp)
				return refuse(
				        "only UDP goes through a SOCKS5 proxy (this "
				        "socket is raw, ICMP or UDP-Lite)",
				        EPROTONOSUPPORT);
			struct fd_entry *e =
			        pol.verdict == POLICY_PROXY ? adopt(fd, family) : NULL;
			if (pol.verdict == POLICY_PROXY && !(a = *ap = hold(e)))
				return refuse("the descriptor is beyond the shim's table",
				              EMFILE);
		}
		target = pol.target;
	}
	*handled = true;
	if (pol.verdict == POLICY_DENY) {
		log_denied(&pol);
		errno = pol.err;
		return -1;
	}
	if (flags & MSG_MORE)
		return refuse("MSG_MORE would join datagrams behind one SOCKS header",
		              EOPNOTSUPP);
	if (wants_gso(msg))
		return refuse("UDP_SEGMENT (GSO) would split datagrams after the SOCKS "
		              "header",
		              EOPNOTSUPP);

	pthread_mutex_lock(&a->lock);
	int rc = associate_guarded(fd, a);
	if (rc == 0 && dst && target.atyp == SOCKS5_ATYP_DOMAIN)
		remember_name(a, dst, msg->msg_namelen);
	union sa relay = a->relay;
	socklen_t relay_len = a->relay_len;
	pthread_mutex_unlock(&a->lock);
	if (rc < 0) {
		errno = -rc;
		return -1;
	}

	uint8_t hdr[SOCKS5_UDP_HEADER_MAX];
	size_t hlen = socks5_udp_header_encode(hdr, sizeof(hdr), 0, &target);
	if (hlen == 0) {
		errno = EINVAL;
		return -1;
	}
	if (msg->msg_iovlen >= IOV_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	struct iovec stack_iov[IOV_STACK], *iov = stack_iov;
	if (msg->msg_iovlen + 1 > IOV_STACK &&
	    !(iov = malloc((msg->msg_iovlen + 1) * sizeof(*iov)))) {
		errno = ENOBUFS;
		return -1;
	}
	iov[0].iov_base = hdr;
	iov[0].iov_len = hlen;
	if (msg->msg_iovlen)
		memcpy(iov + 1, msg->msg_iov, msg->msg_iovlen * sizeof(*iov));
	struct msghdr m = *msg;
	m.msg_name = &relay;
	m.msg_namelen = relay_len;
	m.msg_iov = iov;
	m.msg_iovlen = msg->msg_iovlen + 1;
	ssize_t sent = real_sendmsg(fd, &m, flags);
	int err = errno;
	if (iov != stack_iov)
		free(iov);
	errno = err;
	if (sent < 0)
		return -1;
	return (size_t)sent >= hlen ? sent - (ssize_t)hlen : 0;
}

ssize_t udp_sendmsg(int fd, struct fd_entry *e, const struct msghdr *msg, int flags,
                    bool *handled)
{
	struct udp_assoc *a = hold(e);
	ssize_t rc = send_held(fd, &a, msg, flags, handled);
	int err = errno;
	put(a);
	errno = err;
	return rc;
}

/* --- connect / getpeername --------------------------------------------------------- */

bool udp_is_connected(struct fd_entry *e)
{
	struct udp_assoc *a = hold(e);
	bool connected = a && __atomic_load_n(&a->connected, __ATOMIC_RELAXED);
	put(a);
	return connected;
}

static int connect_held(int fd, struct udp_assoc **ap, const struct sockaddr *addr,
                        socklen_t len, bool *handled)
{
	struct udp_assoc *a = *ap;
	struct policy pol;

	*handled = false;
	if (!addr || len < sizeof(sa_family_t))
		return 0;
	if (addr->sa_family == AF_UNSPEC) {
		if (!a)
			return 0;
		*handled = true;
		if (real_connect(fd, addr, len) < 0)
			return -1;
		/* The kernel unbinds a socket whose port it chose when its
		 * connection is dissolved: an association announced with that
		 * port is then of no use, and the next datagram makes another. */
		union sa local;
		socklen_t llen = sizeof(local);
		pthread_mutex_lock(&a->lock);
		__atomic_store_n(&a->connected, false, __ATOMIC_RELAXED);
		if (getsockname(fd, &local.sa, &llen) < 0 ||
		    sa_port(&local) != a->local_port)
			drop_control(a);
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
	if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
		return 0;
	policy_classify(addr, len, &pol);
	if (!a) {
		bool udp;
		int family = dgram_family(fd, &udp);
		if (family == 0 || pol.verdict == POLICY_PASS)
			return 0;
		*handled = true;
		if (pol.verdict == POLICY_DENY) {
			log_denied(&pol);
			errno = pol.err;
			return -1;
		}
		if (!udp) {
			shim_log(SHIM_LOG_ERROR,
			         "connect refused: only UDP goes through a SOCKS5 proxy "
			         "(this socket is raw, ICMP or UDP-Lite)");
			errno = EPROTONOSUPPORT;
			return -1;
		}
		if (!(a = *ap = hold(adopt(fd, family)))) {
			errno = EMFILE;
			return -1;
		}
	}
	*handled = true;
	if (pol.verdict == POLICY_DENY) {
		log_denied(&pol);
		errno = pol.err;
		return -1;
	}
	pthread_mutex_lock(&a->lock);
	if (pol.verdict == POLICY_PASS) {
		/* a direct peer now: the kernel filters and reports for it */
		__atomic_store_n(&a->connected, false, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&a->lock);
		return real_connect(fd, addr, len);
	}
	int rc = associate_guarded(fd, a);
	if (rc == 0 && real_connect(fd, &a->relay.sa, a->relay_len) < 0)
		rc = -errno;
	if (rc == 0) {
		/* as the kernel reports it: an IPv4 peer of an IPv6 socket is
		 * v4-mapped */
		a->peer_len = sa_to_family(addr, len, a->family, &a->peer);
		a->target = pol.target;
		if (pol.target.atyp == SOCKS5_ATYP_DOMAIN)
			remember_name(a, addr, len);
		__atomic_store_n(&a->connected, true, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&a->lock);
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	return 0;
}

int udp_connect(int fd, struct fd_entry *e, const struct sockaddr *addr, socklen_t len,
                bool *handled)
{
	struct udp_assoc *a = hold(e);
	int rc = connect_held(fd, &a, addr, len, handled);
	int err = errno;
	put(a);
	errno = err;
	return rc;
}

int udp_getpeername(struct fd_entry *e, int fd, struct sockaddr *addr, socklen_t *len)
{
	struct udp_assoc *a = hold(e);
	if (!a || !__atomic_load_n(&a->connected, __ATOMIC_RELAXED)) {
		put(a);
		return real_getpeername(fd, addr, len);
	}
	if (!addr || !len) {
		put(a);
		errno = EFAULT;
		return -1;
	}
	pthread_mutex_lock(&a->lock);
	memcpy(addr, &a->peer, *len < a->peer_len ? *len : a->peer_len);
	*len = a->peer_len;
	pthread_mutex_unlock(&a->lock);
	put(a);
	return 0;
}

/* --- receiving -----------------------------------------------------------------------
 */

/* The datagram as received: [hdr (g bytes)][the program's iovecs][spill]. */
struct layout {
	const uint8_t *hdr;
	size_t g;
	const struct iovec *iov;
	size_t iovlen;
	const uint8_t *spill;
	size_t spill_len;
	size_t have; /* bytes of the datagram in there */
};

/* Copies len bytes of the datagram from offset `from` into out. */
static void layout_read(const struct layout *l, size_t from, uint8_t *out, size_t len)
{
	size_t pos = 0; /* offset of the current piece */
	size_t end = from + len;
	if (end > l->have)
		end = l->have;
#define PIECE(base, n)                                                                   \
	do {                                                                             \
		size_t n_ = (n);                                                         \
		if (from < pos + n_ && from < end) {                                     \
			size_t s_ = from - pos, c_ = pos + n_ - from;                    \
			if (c_ > end - from)                                             \
				c_ = end - from;                                         \
			memcpy(out, (const uint8_t *)(base) + s_, c_);                   \
			out += c_;                                                       \
			from += c_;                                                      \
		}                                                                        \
		pos += n_;                                                               \
	} while (0)
	PIECE(l->hdr, l->g);
	for (size_t i = 0; i < l->iovlen; i++)
		PIECE(l->iov[i].iov_base, l->iov[i].iov_len);
	PIECE(l->spill, l->spill_len);
#undef PIECE
}

/* Puts the datagram's bytes from offset off into the program's iovecs
 * (when off differs from the guess). -ENOMEM when out of memory. */
static int layout_shift(const struct layout *l, size_t off, size_t ulen)
{
	size_t n = l->have > off ? l->have - off : 0;
	if (n > ulen)
		n = ulen;
	if (n == 0)
		return 0;
	uint8_t *tmp = malloc(n);
	if (!tmp)
		return -ENOMEM;
	layout_read(l, off, tmp, n);
	size_t done = 0;
	for (size_t i = 0; i < l->iovlen && done < n; i++) {
		size_t c = l->iov[i].iov_len < n - done ? l->iov[i].iov_len : n - done;
		memcpy(l->iov[i].iov_base, tmp + done, c);
		done += c;
	}
	free(tmp);
	return 0;
}

/* Discards the datagram that a MSG_PEEK left in the queue. */
static void discard_peeked(int fd)
{
	char c;
	real_recv(fd, &c, 0, MSG_DONTWAIT);
}

static ssize_t recv_held(int fd, struct udp_assoc *a, struct msghdr *msg, int flags)
{
	uint8_t hdr[SOCKS5_UDP_HEADER_MAX], spill[SOCKS5_UDP_HEADER_MAX];
	struct iovec stack_iov[IOV_STACK], *iov = stack_iov;
	size_t ulen = 0;
	ssize_t ret = -1;

	if (flags & MSG_ERRQUEUE)
		return real_recvmsg(fd, msg, flags);
	if (msg->msg_iovlen > IOV_MAX - 2) {
		errno = EMSGSIZE;
		return -1;
	}
	for (size_t i = 0; i < msg->msg_iovlen; i++)
		ulen += msg->msg_iov[i].iov_len;
	if (msg->msg_iovlen + 2 > IOV_STACK &&
	    !(iov = malloc((msg->msg_iovlen + 2) * sizeof(*iov)))) {
		errno = ENOBUFS;
		return -1;
	}
	if (msg->msg_iovlen)
		memcpy(iov + 1, msg->msg_iov, msg->msg_iovlen * sizeof(*iov));
	iov[msg->msg_iovlen + 1] =
	        (struct iovec){.iov_base = spill, .iov_len = sizeof(spill)};

	for (;;) {
		pthread_mutex_lock(&a->lock);
		size_t g = (size_t)a->hdr_guess;
		pthread_mutex_unlock(&a->lock);
		iov[0] = (struct iovec){.iov_base = hdr, .iov_len = g};
		union sa src;
		struct msghdr m = {
		        .msg_name = &src,
		        .msg_namelen = sizeof(src),
		        .msg_iov = iov,
		        .msg_iovlen = msg->msg_iovlen + 2,
		        .msg_control = msg->msg_control,
		        .msg_controllen = msg->msg_controllen,
		};
		ssize_t total = real_recvmsg(fd, &m, flags | MSG_TRUNC);
		if (total < 0)
			break;
		struct layout l = {hdr,           g, msg->msg_iov, msg->msg_iovlen, spill,
		                   sizeof(spill), 0};
		l.have = (size_t)total < g + ulen + sizeof(spill)
		                 ? (size_t)total
		                 : g + ulen + sizeof(spill);
		union sa from;
		socklen_t from_len = 0;
		size_t off = 0;
		bool keep = false;

		pthread_mutex_lock(&a->lock);
		if (a->relay_len && m.msg_namelen == a->relay_len &&
		    sa_same(&src, &a->relay)) {
			uint8_t head[SOCKS5_UDP_HEADER_MAX];
			struct socks5_udp_header uh;
			size_t hn = l.have < sizeof(head) ? l.have : sizeof(head);
			layout_read(&l, 0, head, hn);
			ssize_t h = socks5_udp_header_parse(head, hn, &uh);
			if (h > 0 && uh.frag == 0) {
				off = (size_t)h;
				a->hdr_guess = (int)h;
				from_len = relay_source(a, &uh.addr, &from);
				keep = from_len > 0;
			}
		} else {
			/* not from the relay: only a destination that goes direct, and
			 * not the proxy (a relay of an earlier association, or anyone
			 * writing to the proxy host's ports) */
			struct policy pol;
			policy_classify(&src.sa, m.msg_namelen, &pol);
			keep = pol.verdict == POLICY_PASS &&
			       !policy_is_proxy(&src.sa, m.msg_namelen);
			from = src;
			from_len = m.msg_namelen;
		}
		pthread_mutex_unlock(&a->lock);

		if (!keep) {
			if (flags & MSG_PEEK)
				discard_peeked(fd);
			continue;
		}
		if (off != g) {
			int rc = layout_shift(&l, off, ulen);
			if (rc < 0) {
				errno = -rc;
				break;
			}
		}
		size_t payload = (size_t)total - off;
		msg->msg_flags =
		        (m.msg_flags & ~MSG_TRUNC) | (payload > ulen ? MSG_TRUNC : 0);
		msg->msg_controllen = m.msg_controllen;
		copy_name(&from, from_len, msg);
		ret = (ssize_t)((flags & MSG_TRUNC) || payload < ulen ? payload : ulen);
		break;
	}
	if (iov != stack_iov) {
		int err = errno;
		free(iov);
		errno = err;
	}
	return ret;
}

ssize_t udp_recvmsg(int fd, struct fd_entry *e, struct msghdr *msg, int flags)
{
	struct udp_assoc *a = hold(e);
	if (!a)
		return real_recvmsg(fd, msg, flags);
	ssize_t rc = recv_held(fd, a, msg, flags);
	int err = errno;
	put(a);
	errno = err;
	return rc;
}

/* After fork() the child has one thread: a lock another thread held (say
 * through a handshake) would never be released. Every lock is made anew,
 * and an association caught half-way through its handshake has none. */
static void reset_assoc(struct udp_assoc *a)
{
	pthread_mutex_init(&a->lock, NULL);
	if (a->handshaking) {
		a->handshaking = false;
		drop_control(a);
	}
}

static void atfork_child(void)
{
	pthread_mutex_init(&refs_lock, NULL);
	fdtab_for_each_udp(reset_assoc);
}

void udp_init(void)
{
	pthread_atfork(NULL, NULL, atfork_child);
}
