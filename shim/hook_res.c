/* SPDX-License-Identifier: MIT */
/*
 * The libresolv query interface (res_query, res_search, res_querydomain,
 * res_send, their res_n* forms and glibc's __res_* aliases). libc's own
 * resolver would send the program's DNS packets to the nameservers of
 * resolv.conf with calls the shim does not see, around the proxy. In
 * remote-DNS mode they are therefore answered here:
 *
 *   - with `nameserver = ADDR[:PORT]` set, the query (built with res_mkquery,
 *     which sends nothing) goes over TCP (RFC 1035 4.2.2: a two-byte length
 *     before each message) to that server, on a socket connected with the
 *     shim's own connect(): through the proxy, as a CONNECT to ADDR:PORT,
 *     unless an exclusion sends ADDR direct. One query, one connection, the
 *     whole exchange within connect_timeout. The answer is judged as glibc's
 *     res_query does (the id, then the rcode and the answer count, mapped to
 *     h_errno);
 *   - without it, they fail with one log line (once per process).
 *
 * In local-DNS mode, and inside the shim, libc's functions run as they are.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "shim.h"

enum { QUERY_MAX = 512, NAME_MAX_LEN = 1025 };

static bool remote_dns(void)
{
	return config_remote_dns(&shim_config);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for ev on fd until deadline: 0, or -1 with errno (ETIMEDOUT). */
static int wait_fd(int fd, short ev, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p = {.fd = fd, .events = ev};
		int n = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

/* All of len bytes out, or in, before deadline: 0 or -1 with errno. */
static int io_all(int fd, void *buf, size_t len, bool out, long long deadline)
{
	size_t done = 0;
	while (done < len) {
		if (wait_fd(fd, out ? POLLOUT : POLLIN, deadline) < 0)
			return -1;
		ssize_t n = out ? send(fd, (char *)buf + done, len - done, MSG_NOSIGNAL)
		                : recv(fd, (char *)buf + done, len - done, 0);
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return -1;
		if (n > 0)
			done += (size_t)n;
	}
	return 0;
}

/* A TCP socket connected to the nameserver through the shim's connect(). */
static int nameserver_connect(void)
{
	const struct config *c = &shim_config;
	struct sockaddr_storage ss = {0};
	socklen_t len;

	if (c->nameserver_family == AF_INET) {
		struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
		v4->sin_family = AF_INET;
		v4->sin_port = htons(c->nameserver_port);
		memcpy(&v4->sin_addr, c->nameserver, 4);
		len = sizeof(*v4);
	} else {
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(c->nameserver_port);
		memcpy(&v6->sin6_addr, c->nameserver, 16);
		len = sizeof(*v6);
	}
	int fd = socket(c->nameserver_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/*
 * Sends msg to the nameserver over TCP and reads the answer into ans: its
 * length (at most anslen: a longer answer is cut there and gets the TC
 * bit, as glibc's resolver does), or -1 with errno.
 */
static int tcp_exchange(const unsigned char *msg, int mlen, unsigned char *ans,
                        int anslen)
{
	long long deadline = now_ms() + shim_config.connect_timeout_ms;
	unsigned char hdr[2] = {(unsigned char)(mlen >> 8), (unsigned char)mlen};
	unsigned char rest[512];
	int fd = nameserver_connect(), rc = -1;

	if (fd < 0)
		return -1;
	if (io_all(fd, hdr, 2, true, deadline) < 0 ||
	    io_all(fd, (void *)msg, (size_t)mlen, true, deadline) < 0 ||
	    io_all(fd, hdr, 2, false, deadline) < 0)
		goto out;
	size_t n = (size_t)hdr[0] << 8 | hdr[1],
	       keep = n < (size_t)anslen ? n : (size_t)anslen;
	if (n < HFIXEDSZ || keep < HFIXEDSZ) {
		errno = EMSGSIZE;
		goto out;
	}
	if (io_all(fd, ans, keep, false, deadline) < 0)
		goto out;
	for (size_t left = n - keep; left > 0;) {
		size_t k = left < sizeof(rest) ? left : sizeof(rest);
		if (io_all(fd, rest, k, false, deadline) < 0)
			goto out;
		left -= k;
	}
	if (keep < n)
		((HEADER *)ans)->tc = 1;
	rc = (int)keep;
out:;
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* The nameserver is unset: one log line per process, then -1. */
static int refuse_res(const char *fn, const char *name)
{
	static int warned;
	if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		shim_log(SHIM_LOG_ERROR,
		         "%s(%s) refused: raw DNS queries would bypass the proxy in "
		         "remote DNS mode (set nameserver = ADDR to send them "
		         "through it, or use dns = local, or getaddrinfo)",
		         fn, name ? name : "");
	h_errno = NO_RECOVERY;
	errno = ECONNREFUSED;
	return -1;
}

/* res_send: the message as it is, to the nameserver. */
static int proxied_send(const char *fn, const unsigned char *msg, int mlen,
                        unsigned char *ans, int anslen)
{
	if (shim_config.nameserver_family == 0)
		return refuse_res(fn, "");
	if (!msg || mlen < HFIXEDSZ || mlen > 65535 || !ans || anslen < HFIXEDSZ) {
		errno = EINVAL;
		return -1;
	}
	int n = tcp_exchange(msg, mlen, ans, anslen);
	if (n < 0) {
		shim_log(SHIM_LOG_ERROR, "%s: nameserver: %s", fn, strerror(errno));
		h_errno = TRY_AGAIN;
	}
	return n;
}

/* As glibc's res_query judges an answer: its length, or -1 and h_errno. */
static int judge_answer(const unsigned char *q, const unsigned char *ans, int n)
{
	const HEADER *hq = (const HEADER *)q, *ha = (const HEADER *)ans;

	if (!ha->qr || ha->id != hq->id) {
		h_errno = NO_RECOVERY;
		return -1;
	}
	if (ha->rcode != NOERROR || ntohs(ha->ancount) == 0) {
		switch (ha->rcode) {
		case NXDOMAIN:
			h_errno = HOST_NOT_FOUND;
			break;
		case SERVFAIL:
			h_errno = TRY_AGAIN;
			break;
		case NOERROR:
			h_errno = NO_DATA;
			break;
		default:
			h_errno = NO_RECOVERY;
			break;
		}
		return -1;
	}
	return n;
}

/* res_query: name, class, type asked of the nameserver. */
static int proxied_query(const char *fn, const char *name, int class, int type,
                         unsigned char *ans, int anslen)
{
	unsigned char q[QUERY_MAX];

	if (shim_config.nameserver_family == 0)
		return refuse_res(fn, name);
	if (!name) {
		h_errno = NO_RECOVERY;
		errno = EINVAL;
		return -1;
	}
	int qlen = res_mkquery(QUERY, name, class, type, NULL, 0, NULL, q, sizeof(q));
	if (qlen < 0) {
		h_errno = NO_RECOVERY;
		return -1;
	}
	int n = proxied_send(fn, q, qlen, ans, anslen);
	return n < 0 ? -1 : judge_answer(q, ans, n);
}

/* res_querydomain: "name.domain" (just name when domain is NULL). */
static int proxied_querydomain(const char *fn, const char *name, const char *domain,
                               int class, int type, unsigned char *ans, int anslen)
{
	char full[NAME_MAX_LEN];

	if (!name || snprintf(full, sizeof(full), "%s%s%s", name, domain ? "." : "",
	                      domain ? domain : "") >= (int)sizeof(full)) {
		h_errno = NO_RECOVERY;
		errno = EMSGSIZE;
		return -1;
	}
	return proxied_query(fn, full, class, type, ans, anslen);
}

/*
 * res_search: glibc's order. A name with ndots dots or more is tried as it
 * is first; then with each search domain of statp (resolv.conf's), unless
 * it ends in a dot; then as it is if not tried yet. A HOST_NOT_FOUND or
 * NO_DATA answer moves on; any other failure ends the search.
 */
static int proxied_search(const char *fn, res_state statp, const char *name, int class,
                          int type, unsigned char *ans, int anslen)
{
	if (shim_config.nameserver_family == 0)
		return refuse_res(fn, name);
	if (!name || !statp) {
		h_errno = NO_RECOVERY;
		errno = EINVAL;
		return -1;
	}
	if (!(statp->options & RES_INIT))
		res_ninit(statp);
	size_t dots = 0, len = strlen(name);
	for (const char *p = name; *p; p++)
		dots += *p == '.';
	bool trailing = len > 0 && name[len - 1] == '.', tried = false;
	int n = -1;
	if (trailing || dots >= statp->ndots) {
		n = proxied_query(fn, name, class, type, ans, anslen);
		if (n >= 0 || trailing ||
		    (h_errno != HOST_NOT_FOUND && h_errno != NO_DATA))
			return n;
		tried = true;
	}
	for (int i = 0; i < MAXDNSRCH && statp->dnsrch[i]; i++) {
		n = proxied_querydomain(fn, name, statp->dnsrch[i], class, type, ans,
		                        anslen);
		if (n >= 0 || (h_errno != HOST_NOT_FOUND && h_errno != NO_DATA))
			return n;
	}
	return tried ? n : proxied_query(fn, name, class, type, ans, anslen);
}

/* The hook runs the proxied form in remote mode outside the shim, libc's otherwise. */
#define RES_HOOK(fn, params, args, proxied)                                              \
	SHIM_EXPORT int fn params                                                        \
	{                                                                                \
		shim_init();                                                             \
		if (shim_depth == 0 && remote_dns())                                     \
			return proxied;                                                  \
		return real_##fn ? real_##fn args : (errno = ENOSYS, -1);                \
	}

#define QUERY_PARAMS  (const char *d, int c, int t, unsigned char *a, int l)
#define NQUERY_PARAMS (res_state s, const char *d, int c, int t, unsigned char *a, int l)
#define DOMAIN_PARAMS                                                                    \
	(const char *n, const char *d, int c, int t, unsigned char *a, int l)
#define NDOMAIN_PARAMS                                                                   \
	(res_state s, const char *n, const char *d, int c, int t, unsigned char *a, int l)
#define SEND_PARAMS (const unsigned char *m, int ml, unsigned char *a, int l)
#define NSEND_PARAMS                                                                     \
	(res_state s, const unsigned char *m, int ml, unsigned char *a, int l)

#define RES_ALL(prefix)                                                                  \
	RES_HOOK(prefix##res_query, QUERY_PARAMS, (d, c, t, a, l),                       \
	         proxied_query(#prefix "res_query", d, c, t, a, l))                      \
	RES_HOOK(prefix##res_search, QUERY_PARAMS, (d, c, t, a, l),                      \
	         proxied_search(#prefix "res_search", &_res, d, c, t, a, l))             \
	RES_HOOK(prefix##res_querydomain, DOMAIN_PARAMS, (n, d, c, t, a, l),             \
	         proxied_querydomain(#prefix "res_querydomain", n, d, c, t, a, l))       \
	RES_HOOK(prefix##res_send, SEND_PARAMS, (m, ml, a, l),                           \
	         proxied_send(#prefix "res_send", m, ml, a, l))                          \
	RES_HOOK(prefix##res_nquery, NQUERY_PARAMS, (s, d, c, t, a, l),                  \
	         ((void)s, proxied_query(#prefix "res_nquery", d, c, t, a, l)))          \
	RES_HOOK(prefix##res_nsearch, NQUERY_PARAMS, (s, d, c, t, a, l),                 \
	         proxied_search(#prefix "res_nsearch", s, d, c, t, a, l))                \
	RES_HOOK(prefix##res_nquerydomain, NDOMAIN_PARAMS, (s, n, d, c, t, a, l),        \
	         ((void)s,                                                               \
	          proxied_querydomain(#prefix "res_nquerydomain", n, d, c, t, a, l)))    \
	RES_HOOK(prefix##res_nsend, NSEND_PARAMS, (s, m, ml, a, l),                      \
	         ((void)s, proxied_send(#prefix "res_nsend", m, ml, a, l)))

RES_ALL()
RES_ALL(__)
