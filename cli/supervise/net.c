/* SPDX-License-Identifier: MIT */
/*
 * One stopped network call (see sv_int.h): the destination is read from the
 * program's memory, the socket taken with pidfd_getfd, and the call decided
 * with the shim's own classifier (policy.c):
 *   - a call that names no destination continues in the kernel unchanged;
 *     one to a direct destination (loopback, the proxy, an exclusion) is
 *     carried out here (see below);
 *   - a proxied TCP connect is carried out here (proxied.c): the program's
 *     socket ends up connected to the proxy, the handshake done;
 *   - in remote-DNS mode, a UDP query to port 53 of a nameserver of
 *     /etc/resolv.conf goes to the DNS stub (dnsstub.c) instead, and a TCP
 *     connect there is refused; in local-DNS mode the query goes to the
 *     nameserver, as configured;
 *   - the preload's datagrams to a UDP relay it announced go out;
 *   - any other datagram that would leave the machine is refused (EPERM),
 *     with one log line: UDP ASSOCIATE is the preload's (docs/design.md);
 *   - whatever cannot be read or decided fails (fail closed).
 * The notification is checked to be still valid after the reads, so that a
 * task that died meanwhile (and a PID reused) is never answered for. A
 * connect or a datagram to a direct destination is carried out here too,
 * on the program's socket with the address that was checked and copies of
 * the data: a continued call would have the kernel read the program's
 * memory a second time, after another thread could change it.
 */
#include "sv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "policy.h"
#include "shim.h"

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

enum { PAYLOAD_MAX = 65536, MMSG_MAX = 1024, IOV_MAX_KERNEL = 1024 /* UIO_MAXIOV */ };

int sv_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {.iov_base = buf, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};

	if (len == 0)
		return 0;
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	return n == (ssize_t)len ? 0 : -EFAULT;
}

/* The task's descriptor fd, ours now: >= 0, or -errno. The thread's own
 * table first (Linux 6.9 takes a thread's pidfd), else its process's. */
static int take_fd(pid_t tid, int fd)
{
	long pidfd = syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
	if (pidfd < 0 && errno == EINVAL)
		pidfd = syscall(SYS_pidfd_open, tid, 0);
	if (pidfd < 0)
		return -errno;
	long own = syscall(SYS_pidfd_getfd, (int)pidfd, fd, 0);
	int err = errno;
	close((int)pidfd);
	return own < 0 ? -err : (int)own;
}

/* Fills the socket's domain, type and protocol; false when fd is no socket. */
static bool socket_kind(struct sv_call *c)
{
	socklen_t l = sizeof(int);
	if (getsockopt(c->fd, SOL_SOCKET, SO_DOMAIN, &c->domain, &l) < 0)
		return false;
	l = sizeof(int);
	getsockopt(c->fd, SOL_SOCKET, SO_TYPE, &c->type, &l);
	l = sizeof(int);
	getsockopt(c->fd, SOL_SOCKET, SO_PROTOCOL, &c->protocol, &l);
	return true;
}

static void log_refused(const struct sv_call *c, const char *what, int err)
{
	char dst[SA_STRLEN];
	sa_format(&c->dst.sa, dst, sizeof(dst));
	shim_log(SHIM_LOG_ERROR, "supervisor: %s to %s by pid %d refused: %s", what, dst,
	         (int)c->n.pid, strerror(err));
}

/* Reads the destination (addr, len) and takes the socket. 0 when the call
 * is ready to decide; 1 when it must simply continue (no IP socket, no
 * address); -errno when it must fail. */
static int prepare(struct sv_call *c, uint64_t addr, uint64_t len)
{
	c->fd = -1;
	if (addr == 0 || len < sizeof(sa_family_t))
		return 1; /* the kernel answers as it does */
	c->dst_len = len > sizeof(c->dst) ? sizeof(c->dst) : (socklen_t)len;
	memset(&c->dst, 0, sizeof(c->dst));
	if (sv_read_mem(c->n.pid, addr, &c->dst, c->dst_len) < 0)
		return -EFAULT;
	c->fd = take_fd(c->n.pid, (int)c->n.data.args[0]);
	if (c->fd == -EBADF)
		return -EBADF;
	if (c->fd < 0)
		return c->fd;
	if (!socket_kind(c) || (c->domain != AF_INET && c->domain != AF_INET6))
		return 1;
	/* AF_UNSPEC: connect() disconnects (on_connect does it with this
	 * address: continued, the kernel would read it again); a send on an
	 * IPv4 datagram or raw socket (udp_sendmsg, raw_sendmsg) goes to the
	 * address as if it were AF_INET, and so it is decided */
	if (c->dst.sa.sa_family == AF_UNSPEC && c->n.data.nr != SYS_connect)
		c->dst.sa.sa_family = (sa_family_t)c->domain;
	if (c->dst.sa.sa_family != AF_INET && c->dst.sa.sa_family != AF_INET6 &&
	    c->dst.sa.sa_family != AF_UNSPEC)
		return -EAFNOSUPPORT;
	return sv_id_valid(c->listener, c->n.id) ? 0 : -ENOENT;
}

static bool is_tcp(const struct sv_call *c)
{
	return c->type == SOCK_STREAM &&
	       (c->protocol == 0 || c->protocol == IPPROTO_TCP || c->protocol == 262);
}

static bool is_udp(const struct sv_call *c)
{
	return c->type == SOCK_DGRAM && (c->protocol == 0 || c->protocol == IPPROTO_UDP);
}

/* A query for a nameserver of /etc/resolv.conf: in remote-DNS mode it goes
 * to the stub (true, its address in stub); in local-DNS mode it goes to the
 * nameserver as configured (true, *len 0). False for anything else. */
static bool dns_query(const struct sv_call *c, union sa_any *stub, socklen_t *len)
{
	bool remote = config_remote_dns(&shim_config);
	if (!is_udp(c) || !sv_dns_is_nameserver(&c->dst.sa))
		return false;
	*len = remote ? sv_dns_stub_addr(c->domain, stub) : 0;
	return !remote || *len > 0;
}

/* The UDP relays the preload announced (see announce()): its datagrams to
 * them go out, as it sends them. The receivers share it, under relay_lock. */
enum { RELAYS_MAX = 256 };
static pthread_mutex_t relay_lock = PTHREAD_MUTEX_INITIALIZER;
static union sa_any relays[RELAYS_MAX];
static size_t n_relays, next_relay;

static bool known_relay(const union sa_any *a)
{
	bool found = false;
	pthread_mutex_lock(&relay_lock);
	for (size_t i = 0; i < n_relays && !found; i++)
		found = sa_same(&a->sa, &relays[i].sa);
	pthread_mutex_unlock(&relay_lock);
	return found;
}

static bool to_relay(const struct sv_call *c)
{
	return is_udp(c) && known_relay(&c->dst);
}

/* An empty send naming an address on a TCP socket connected to the proxy:
 * the preload's announcement of the relay of a UDP association it made
 * (udp_assoc.c). The relay must be on the proxy's host. */
static void announce(const struct sv_call *c, size_t len)
{
	union sa_any peer;
	socklen_t plen = sizeof(peer);

	if (len != 0 || !is_tcp(c) || !policy_is_proxy(&c->dst.sa, c->dst_len) ||
	    getpeername(c->fd, &peer.sa, &plen) < 0 || !policy_is_proxy(&peer.sa, plen))
		return;
	if (known_relay(&c->dst))
		return;
	pthread_mutex_lock(&relay_lock);
	relays[next_relay] = c->dst;
	next_relay = (next_relay + 1) % RELAYS_MAX;
	if (n_relays < RELAYS_MAX)
		n_relays++;
	pthread_mutex_unlock(&relay_lock);
}

/* In remote-DNS mode, a TCP connect to a nameserver's port 53 (a resolver's
 * fallback for a truncated answer, or `options use-vc`): refused, since the
 * stub answers over UDP only and the name must not reach a nameserver. */
static bool dns_over_tcp(const struct sv_call *c)
{
	bool remote = config_remote_dns(&shim_config);
	return remote && is_tcp(c) && sv_dns_is_nameserver(&c->dst.sa);
}

/* Answers with the result of a call of ours: 0 (answered) or the errno. */
static int answer(const struct sv_call *c, long long rc)
{
	if (rc < 0)
		return errno ? errno : EIO;
	sv_return(c->listener, c->n.id, rc);
	return 0;
}

/* connect(): see the top of the file. Returns the errno to fail with, 0
 * when answered, -1 to continue. A direct destination is connected here,
 * with the address that was checked: continuing would let the kernel read
 * the program's memory again, which another thread may have changed. */
static int on_connect(struct sv_call *c)
{
	struct policy pol;
	union sa_any stub;
	socklen_t stub_len;

	if (c->dst.sa.sa_family == AF_UNSPEC) /* a disconnect: never blocks */
		return answer(c, real_connect(c->fd, &c->dst.sa, c->dst_len));
	/* first: a loopback nameserver (a caching resolver) would send it on */
	if (dns_over_tcp(c)) {
		log_refused(c, "DNS over TCP (remote DNS: names go to the proxy)",
		            ECONNREFUSED);
		return ECONNREFUSED;
	}
	if (dns_query(c, &stub, &stub_len)) {
		if (stub_len == 0)
			return sv_direct(c, NULL);
		return answer(c, real_connect(c->fd, &stub.sa, stub_len));
	}
	policy_classify(&c->dst.sa, c->dst_len, &pol);
	if (pol.verdict == POLICY_PASS || to_relay(c))
		return sv_direct(c, NULL);
	if (pol.verdict == POLICY_DENY)
		return pol.err;
	if (is_tcp(c)) {
		sv_proxy_connect(c, &pol.target, NULL, 0, 0);
		return 0;
	}
	log_refused(c, is_udp(c) ? "UDP connect" : "datagram connect", EPERM);
	return EPERM;
}

/* Copies what the program's buffers (iov[0..n), addresses in its memory)
 * hold, up to PAYLOAD_MAX bytes, into a new buffer: its length in *len, or
 * NULL. */
static uint8_t *gather(pid_t pid, const struct iovec *iov, size_t n, size_t *len)
{
	uint8_t *buf = malloc(PAYLOAD_MAX);
	size_t have = 0;

	for (size_t i = 0; buf && i < n && have < PAYLOAD_MAX; i++) {
		size_t take = iov[i].iov_len;
		if (take > PAYLOAD_MAX - have)
			take = PAYLOAD_MAX - have;
		if (sv_read_mem(pid, (uintptr_t)iov[i].iov_base, buf + have, take) < 0) {
			free(buf);
			return NULL;
		}
		have += take;
	}
	*len = have;
	return buf;
}

/* A send that names a destination (see the top of the file): its data in
 * the program's buffers (iov, n), its control message (cmsg, cmsg_len) in
 * the program's memory. Direct and DNS datagrams are sent here, with the
 * checked address and copies of the data. Returns as on_connect. */
static int on_send(struct sv_call *c, const struct iovec *iov, size_t n, uint64_t cmsg,
                   size_t cmsg_len, int flags)
{
	struct sv_send out = {.flags = flags, .ctl_len = cmsg_len};
	struct policy pol;
	union sa_any stub;
	socklen_t stub_len = 0;

	if (c->type == SOCK_STREAM && !(flags & MSG_FASTOPEN)) {
		size_t total = 0;
		for (size_t i = 0; i < n; i++)
			total += iov[i].iov_len;
		announce(c, total);
		return -1; /* the kernel ignores the address of a stream send */
	}
	/* a DNS query, or the preload's datagram to its relay: sent here */
	bool ours = dns_query(c, &stub, &stub_len) || to_relay(c);
	policy_classify(&c->dst.sa, c->dst_len, &pol);
	if (!ours && pol.verdict == POLICY_DENY)
		return pol.err;
	if (!ours && pol.verdict == POLICY_PROXY && !is_tcp(c)) {
		log_refused(c, is_udp(c) ? "UDP datagram" : "datagram", EPERM);
		return EPERM;
	}
	if (cmsg_len > SV_CONTROL_MAX)
		return ENOBUFS;
	if (cmsg_len && sv_read_mem(c->n.pid, cmsg, out.ctl, cmsg_len) < 0)
		return EFAULT;
	out.data = gather(c->n.pid, iov, n, &out.len);
	if (!out.data)
		return EFAULT;
	if (pol.verdict == POLICY_PROXY && !ours) {
		sv_proxy_connect(c, &pol.target, out.data, out.len,
		                 flags & ~MSG_FASTOPEN);
		return 0;
	}
	if (stub_len > 0) {
		c->dst = stub;
		c->dst_len = stub_len;
	}
	return sv_direct(c, &out);
}

/* sendto(fd, buf, len, flags, addr, addrlen) */
static int on_sendto(struct sv_call *c)
{
	const __u64 *a = c->n.data.args;
	struct iovec one = {.iov_base = (void *)(uintptr_t)a[1], .iov_len = (size_t)a[2]};
	int rc = prepare(c, a[4], a[5]);
	if (rc != 0)
		return rc > 0 ? -1 : -rc;
	return on_send(c, &one, 1, 0, 0, (int)a[3]);
}

/* sendmsg(fd, msg, flags): continues at once when msg names no address. */
static int on_sendmsg(struct sv_call *c)
{
	const __u64 *a = c->n.data.args;
	struct msghdr m;

	c->fd = -1;
	if (sv_read_mem(c->n.pid, a[1], &m, sizeof(m)) < 0)
		return EFAULT;
	if (!m.msg_name || m.msg_namelen == 0)
		return -1;
	int rc = prepare(c, (uintptr_t)m.msg_name, m.msg_namelen);
	if (rc != 0)
		return rc > 0 ? -1 : -rc;
	if (m.msg_iovlen > IOV_MAX_KERNEL)
		return EMSGSIZE; /* as the kernel says */
	struct iovec *iov = calloc(m.msg_iovlen ? m.msg_iovlen : 1, sizeof(*iov));
	if (!iov)
		return ENOMEM;
	if (m.msg_iovlen && sv_read_mem(c->n.pid, (uintptr_t)m.msg_iov, iov,
	                                m.msg_iovlen * sizeof(iov[0])) < 0)
		rc = EFAULT;
	else
		rc = on_send(c, iov, m.msg_iovlen, (uintptr_t)m.msg_control,
		             m.msg_control ? m.msg_controllen : 0, (int)a[2]);
	free(iov);
	return rc;
}

/* sendmmsg(fd, vec, n, flags): continues when no message names an address
 * or every named one may go direct; anything else is refused (the preload
 * carries such batches; the resolvers send theirs on connected sockets).
 * A stream socket's addresses count only with MSG_FASTOPEN, with which the
 * kernel connects the socket to the first one. */
static int on_sendmmsg(struct sv_call *c)
{
	const __u64 *a = c->n.data.args;
	size_t n = a[2] > MMSG_MAX ? MMSG_MAX : (size_t)a[2];
	struct mmsghdr *v = calloc(n ? n : 1, sizeof(*v));
	int rc = -1;

	c->fd = -1;
	if (!v || (n && sv_read_mem(c->n.pid, a[1], v, n * sizeof(*v)) < 0)) {
		free(v);
		return v ? EFAULT : ENOMEM;
	}
	for (size_t i = 0; i < n && rc == -1; i++) {
		struct msghdr *m = &v[i].msg_hdr;
		if (!m->msg_name || m->msg_namelen == 0)
			continue;
		if (c->fd >= 0)
			close(c->fd);
		int p = prepare(c, (uintptr_t)m->msg_name, m->msg_namelen);
		if (p != 0) {
			rc = p > 0 ? -1 : -p;
			break;
		}
		bool stream = c->type == SOCK_STREAM;
		if (stream && !(a[3] & MSG_FASTOPEN))
			break;
		struct policy pol;
		policy_classify(&c->dst.sa, c->dst_len, &pol);
		if (pol.verdict == POLICY_DENY)
			rc = pol.err;
		else if (pol.verdict == POLICY_PROXY) {
			log_refused(c,
			            stream ? "TCP Fast Open batch" : "batch of datagrams",
			            EPERM);
			rc = EPERM;
		}
	}
	free(v);
	return rc;
}

void sv_handle(int listener, const struct seccomp_notif *n)
{
	struct sv_call c = {.listener = listener, .n = *n, .fd = -1};
	int rc;

	switch (n->data.nr) {
	case SYS_connect: {
		rc = prepare(&c, n->data.args[1], n->data.args[2]);
		rc = rc != 0 ? (rc > 0 ? -1 : -rc) : on_connect(&c);
		break;
	}
	case SYS_sendto:
		rc = on_sendto(&c);
		break;
	case SYS_sendmsg:
		rc = on_sendmsg(&c);
		break;
	case SYS_sendmmsg:
		rc = on_sendmmsg(&c);
		break;
	default:
		rc = ENOSYS; /* not a call the filter stops */
	}
	if (rc < 0)
		sv_continue(listener, n->id);
	else if (rc > 0)
		sv_fail(listener, n->id, rc);
	if (c.fd >= 0)
		close(c.fd);
}
