/* SPDX-License-Identifier: MIT */
/*
 * probe: checks, from inside a socksified program, the socket semantics that
 * real programs rely on and that a socksifier can break. shim.bats runs it
 * under socksify in the client namespace of scripts/netns, where the only way
 * to the target is through the proxy.
 *
 *   probe sockopts   HOST PORT PATH EXPECT BINDPORT
 *   probe epoll      HOST PORT PATH EXPECT
 *   probe dup2       HOST PORT PATH EXPECT
 *   probe closerange HOST PORT PATH EXPECT [closefrom]
 *   probe forkdns    NAME PORT PATH EXPECT          (remote DNS)
 *   probe gai        NAME PORT PATH EXPECT          (remote DNS)
 *   probe nameinfo   NAME                           (remote DNS)
 *   probe connect-err HOST PORT ERRNO-NAME [state]
 *   probe slow-proxy  HOST PORT MAX-MS ERRNO-NAME
 *   probe longjmp-connect HOST PORT (a silent proxy, connect_timeout 2: a
 *                      connect timed with alarm() + siglongjmp, then one more
 *                      connect, which must still go to the proxy: ETIMEDOUT,
 *                      not the client's own ENETUNREACH)
 *   probe tfo        HOST PORT PATH EXPECT         (sendto/sendmsg MSG_FASTOPEN)
 *   probe resquery   NAME                          (res_query, res_search)
 *   probe resmx      NAME EXCHANGE NXNAME          (every res_* form, MX)
 *   probe twins      NAME PORT PATH EXPECT         (non-blocking connects to a
 *                      name's IPv4 fake and IPv6 twin at once: race, both)
 *   probe hostent    NAME PORT PATH EXPECT NONFAKE (remote DNS)
 *   probe threads    PORT PATH EXPECT NAME...      4 threads at once, 4 rounds
 *                      each: getaddrinfo (thread i takes the (i mod n)th NAME),
 *                      connect (blocking, then non-blocking), getpeername, GET
 *                      (for ThreadSanitizer, shim_tsan.bats)
 *
 * HOST is resolved with getaddrinfo (numeric or a name); PATH is fetched with
 * an HTTP/1.0 GET, which must answer 200 with EXPECT somewhere in the body.
 * Every check prints one line, "ok ..." or "FAIL ..."; the exit status is 0
 * when every check passed, 1 otherwise, 2 for bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <resolv.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { IO_TIMEOUT_MS = 10000 };

static int failures;

static void ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One whole line each, also from threads (flockfile). */
static void ok(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	flockfile(stdout);
	fputs("ok ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	funlockfile(stdout);
	va_end(ap);
}

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	flockfile(stdout);
	fputs("FAIL ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	funlockfile(stdout);
	va_end(ap);
	__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED); /* threads fail too */
}

static const struct {
	const char *name;
	int value;
} errnames[] = {
        {"ECONNREFUSED", ECONNREFUSED},
        {"EACCES", EACCES},
        {"EPERM", EPERM},
        {"ENETUNREACH", ENETUNREACH},
        {"EHOSTUNREACH", EHOSTUNREACH},
        {"ETIMEDOUT", ETIMEDOUT},
        {"ECONNRESET", ECONNRESET},
        {"ECONNABORTED", ECONNABORTED},
        {"EINPROGRESS", EINPROGRESS},
        {"EISCONN", EISCONN},
        {"ENOTCONN", ENOTCONN},
        {"EAFNOSUPPORT", EAFNOSUPPORT},
        {"EPROTO", EPROTO},
        {"EIO", EIO},
        {"EPIPE", EPIPE},
};

static const char *errname(int e)
{
	static char buf[32];
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].value == e)
			return errnames[i].name;
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

static int errvalue(const char *name)
{
	for (size_t i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (strcmp(errnames[i].name, name) == 0)
			return errnames[i].value;
	return -1;
}

/* "198.18.2.2:80" / "[fd00:5:2::2]:80" */
static const char *fmt_addr(const struct sockaddr *sa, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		snprintf(buf, cap, "%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		snprintf(buf, cap, "[%s]:%u", host, port);
	} else {
		snprintf(buf, cap, "(family %d)", sa->sa_family);
	}
	return buf;
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port &&
		       x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

static socklen_t addr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
	                                : sizeof(struct sockaddr_in6);
}

/* Resolves HOST PORT (first SOCK_STREAM result of the given family); exits 1 on failure.
 */
static void resolve(const char *host, const char *port, int family,
                    struct sockaddr_storage *out)
{
	struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || !res) {
		fail("getaddrinfo %s %s: %s", host, port,
		     rc ? gai_strerror(rc) : "no result");
		exit(1);
	}
	memset(out, 0, sizeof(*out));
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
}

/* Checks getpeername(fd) == want. */
static void check_peer(int fd, const struct sockaddr *want, const char *what)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char a[80], b[80];
	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) {
		fail("%s: getpeername(%d): %s", what, fd, strerror(errno));
		return;
	}
	if (!same_addr((struct sockaddr *)&ss, want))
		fail("%s: getpeername(%d) is %s, expected %s", what, fd,
		     fmt_addr((struct sockaddr *)&ss, a, sizeof(a)),
		     fmt_addr(want, b, sizeof(b)));
	else
		ok("%s: getpeername(%d) = %s", what, fd, fmt_addr(want, a, sizeof(a)));
}

/* Waits (poll) for events on fd; false on timeout. */
static bool wait_fd(int fd, short events)
{
	struct pollfd p = {.fd = fd, .events = events};
	int rc;
	do
		rc = poll(&p, 1, IO_TIMEOUT_MS);
	while (rc < 0 && errno == EINTR);
	return rc > 0;
}

/* The request http_check() sends: GET PATH, HTTP/1.0 (the server closes after). */
static int http_request(char *req, size_t cap, const char *path)
{
	return snprintf(req, cap, "GET %s HTTP/1.0\r\nHost: probe\r\n\r\n", path);
}

static bool http_response(int fd, const char *path, const char *expect, const char *what);

/*
 * Sends GET PATH over fd (blocking or not) and reads the response to EOF;
 * passes when it is a 200 whose body contains expect.
 */
static bool http_check(int fd, const char *path, const char *expect, const char *what)
{
	char req[512];
	int n = http_request(req, sizeof(req), path);
	size_t off = 0;
	while (off < (size_t)n) {
		ssize_t w = write(fd, req + off, (size_t)n - off);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (!wait_fd(fd, POLLOUT)) {
				fail("%s: write timed out", what);
				return false;
			}
			continue;
		}
		if (w <= 0) {
			fail("%s: write: %s", what, strerror(errno));
			return false;
		}
		off += (size_t)w;
	}
	return http_response(fd, path, expect, what);
}

/*
 * Reads the response to GET PATH (already sent) to EOF; passes when it is a
 * 200 whose body contains expect.
 */
static bool http_response(int fd, const char *path, const char *expect, const char *what)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		abort();
	for (;;) {
		if (!wait_fd(fd, POLLIN)) {
			fail("%s: no response within %d ms (%zu bytes so far)", what,
			     IO_TIMEOUT_MS, len);
			free(buf);
			return false;
		}
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			if (!buf)
				abort();
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0) {
			fail("%s: read: %s", what, strerror(errno));
			free(buf);
			return false;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	bool good = len > 12 && strncmp(buf, "HTTP/1.", 7) == 0 &&
	            strncmp(buf + 8, " 200", 4) == 0;
	const char *body = strstr(buf, "\r\n\r\n");
	if (!good || !body) {
		char *eol = strpbrk(buf, "\r\n");
		if (eol)
			*eol = '\0';
		fail("%s: GET %s: bad response (%zu bytes): '%.80s'", what, path, len,
		     buf);
		free(buf);
		return false;
	}
	if (!strstr(body + 4, expect)) {
		fail("%s: GET %s: 200 but the body (%zu bytes) lacks '%s'", what, path,
		     len - (size_t)(body + 4 - buf), expect);
		free(buf);
		return false;
	}
	ok("%s: GET %s: 200, %zu bytes of body, contains the expected text", what, path,
	   len - (size_t)(body + 4 - buf));
	free(buf);
	return true;
}

static int tcp_socket(int family, int flags)
{
	int fd = socket(family, SOCK_STREAM | flags, 0);
	if (fd < 0) {
		fail("socket: %s", strerror(errno));
		exit(1);
	}
	return fd;
}

/* A blocking connect that must succeed; exits on failure. */
static void must_connect(int fd, const struct sockaddr *sa, const char *what)
{
	char a[80];
	if (connect(fd, sa, addr_len(sa)) < 0) {
		fail("%s: connect(%d, %s): %s", what, fd, fmt_addr(sa, a, sizeof(a)),
		     strerror(errno));
		exit(1);
	}
	ok("%s: connect(%d, %s)", what, fd, fmt_addr(sa, a, sizeof(a)));
}

static int getint(int fd, int level, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);
	if (getsockopt(fd, level, opt, &v, &len) < 0)
		return -1000 - errno;
	return v;
}

/* --- sockopts ------------------------------------------------------------------- */

static int cmd_sockopts(char **argv)
{
	const char *host = argv[0], *port = argv[1], *path = argv[2], *expect = argv[3];
	int bindport = atoi(argv[4]);
	struct sockaddr_storage dst;
	resolve(host, port, AF_UNSPEC, &dst);
	int fam = dst.ss_family, fd = tcp_socket(fam, 0), one = 1, idle = 77;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		fail("setting options: %s", strerror(errno));
		return 1;
	}
	struct sockaddr_storage local;
	memset(&local, 0, sizeof(local));
	local.ss_family = (sa_family_t)fam;
	if (fam == AF_INET)
		((struct sockaddr_in *)&local)->sin_port = htons((uint16_t)bindport);
	else
		((struct sockaddr_in6 *)&local)->sin6_port = htons((uint16_t)bindport);
	if (bind(fd, (struct sockaddr *)&local, addr_len((struct sockaddr *)&local)) <
	    0) {
		fail("bind to local port %d: %s", bindport, strerror(errno));
		return 1;
	}
	socklen_t len = sizeof(local);
	getsockname(fd, (struct sockaddr *)&local, &len);
	unsigned bound =
	        ntohs(fam == AF_INET ? ((struct sockaddr_in *)&local)->sin_port
	                             : ((struct sockaddr_in6 *)&local)->sin6_port);
	ok("bound to local port %u", bound);

	must_connect(fd, (struct sockaddr *)&dst, "sockopts");

	len = sizeof(local);
	if (getsockname(fd, (struct sockaddr *)&local, &len) < 0) {
		fail("getsockname: %s", strerror(errno));
	} else {
		unsigned now =
		        ntohs(local.ss_family == AF_INET
		                      ? ((struct sockaddr_in *)&local)->sin_port
		                      : ((struct sockaddr_in6 *)&local)->sin6_port);
		char a[80];
		if (now != bound)
			fail("getsockname after connect: port %u (%s), bound %u", now,
			     fmt_addr((struct sockaddr *)&local, a, sizeof(a)), bound);
		else
			ok("getsockname after connect: the bound port %u (%s)", now,
			   fmt_addr((struct sockaddr *)&local, a, sizeof(a)));
		if (local.ss_family != fam)
			fail("getsockname after connect: family %d, the socket was "
			     "created %d",
			     local.ss_family, fam);
	}
	int v;
	if ((v = getint(fd, SOL_SOCKET, SO_KEEPALIVE)) > 0)
		ok("SO_KEEPALIVE still on");
	else
		fail("SO_KEEPALIVE after connect: %d", v);
	if ((v = getint(fd, IPPROTO_TCP, TCP_NODELAY)) > 0)
		ok("TCP_NODELAY still on");
	else
		fail("TCP_NODELAY after connect: %d", v);
	if ((v = getint(fd, IPPROTO_TCP, TCP_KEEPIDLE)) == 77)
		ok("TCP_KEEPIDLE still 77");
	else
		fail("TCP_KEEPIDLE after connect: %d, set 77", v);
	if ((v = getint(fd, SOL_SOCKET, SO_DOMAIN)) == fam)
		ok("SO_DOMAIN still %d", fam);
	else
		fail("SO_DOMAIN after connect: %d, created %d", v, fam);
	if ((v = fcntl(fd, F_GETFD)) >= 0 && (v & FD_CLOEXEC))
		ok("FD_CLOEXEC still set");
	else
		fail("FD_CLOEXEC after connect: F_GETFD = %d", v);
	if ((v = fcntl(fd, F_GETFL)) >= 0 && !(v & O_NONBLOCK))
		ok("still blocking (no O_NONBLOCK)");
	else
		fail("O_NONBLOCK after connect of a blocking socket: F_GETFL = %#x", v);
	check_peer(fd, (struct sockaddr *)&dst, "sockopts");
	http_check(fd, path, expect, "sockopts");
	close(fd);
	return failures ? 1 : 0;
}

/* --- epoll ---------------------------------------------------------------------- */

static int cmd_epoll(char **argv)
{
	const char *host = argv[0], *port = argv[1], *path = argv[2], *expect = argv[3];
	struct sockaddr_storage dst;
	resolve(host, port, AF_UNSPEC, &dst);
	const struct sockaddr *sa = (struct sockaddr *)&dst;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int fds[2];
	const char *names[2] = {"registered before connect", "registered after connect"};
	bool writable[2] = {false, false};

	fds[0] = tcp_socket(dst.ss_family, SOCK_NONBLOCK);
	fds[1] = tcp_socket(dst.ss_family, SOCK_NONBLOCK);
	struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = 0};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev) < 0) {
		fail("epoll_ctl ADD before connect: %s", strerror(errno));
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		int rc = connect(fds[i], sa, addr_len(sa));
		if (rc == 0)
			ok("%s: non-blocking connect returned 0 at once", names[i]);
		else if (errno == EINPROGRESS)
			ok("%s: non-blocking connect: EINPROGRESS", names[i]);
		else {
			fail("%s: non-blocking connect: %s (expected EINPROGRESS)",
			     names[i], strerror(errno));
			return 1;
		}
	}
	ev.data.u32 = 1;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[1], &ev) < 0) {
		fail("epoll_ctl ADD after connect: %s", strerror(errno));
		return 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!writable[0] || !writable[1]) {
		struct epoll_event evs[4];
		int n = epoll_wait(ep, evs, 4, 1000);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail("epoll_wait: %s", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			unsigned k = evs[i].data.u32;
			if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
				fail("%s: epoll reports events %#x (error/hangup), "
				     "SO_ERROR %s",
				     names[k], evs[i].events,
				     errname(getint(fds[k], SOL_SOCKET, SO_ERROR)));
				return 1;
			}
			if ((evs[i].events & EPOLLOUT) && !writable[k]) {
				writable[k] = true;
				int e = getint(fds[k], SOL_SOCKET, SO_ERROR);
				if (e != 0)
					fail("%s: EPOLLOUT with SO_ERROR %s", names[k],
					     e > 0 ? errname(e) : "unreadable");
				else
					ok("%s: EPOLLOUT, SO_ERROR 0", names[k]);
				/* no more EPOLLOUT for this one */
				struct epoll_event none = {.events = 0, .data.u32 = k};
				epoll_ctl(ep, EPOLL_CTL_MOD, fds[k], &none);
			}
		}
		if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >
		    IO_TIMEOUT_MS) {
			for (int k = 0; k < 2; k++)
				if (!writable[k])
					fail("%s: no EPOLLOUT within %d ms", names[k],
					     IO_TIMEOUT_MS);
			return 1;
		}
	}
	if (failures)
		return 1;
	/* data flows on both, each read driven by epoll */
	for (int k = 0; k < 2; k++) {
		check_peer(fds[k], sa, names[k]);
		char req[512];
		int n = snprintf(req, sizeof(req),
		                 "GET %s HTTP/1.0\r\nHost: probe\r\n\r\n", path);
		if (write(fds[k], req, (size_t)n) != n) {
			fail("%s: write of the request: %s", names[k], strerror(errno));
			continue;
		}
		struct epoll_event in = {.events = EPOLLIN, .data.u32 = (uint32_t)k};
		epoll_ctl(ep, EPOLL_CTL_MOD, fds[k], &in);
		size_t cap = 1 << 20, len = 0;
		char *buf = malloc(cap + 1);
		bool eof = false;
		while (!eof) {
			struct epoll_event evs[2];
			int m = epoll_wait(ep, evs, 2, IO_TIMEOUT_MS);
			if (m <= 0) {
				fail("%s: no EPOLLIN within %d ms (%zu bytes so far)",
				     names[k], IO_TIMEOUT_MS, len);
				break;
			}
			for (;;) {
				if (len == cap) {
					cap *= 2;
					buf = realloc(buf, cap + 1);
				}
				ssize_t r = read(fds[k], buf + len, cap - len);
				if (r > 0) {
					len += (size_t)r;
					continue;
				}
				if (r == 0)
					eof = true;
				else if (errno != EAGAIN) {
					fail("%s: read: %s", names[k], strerror(errno));
					eof = true;
				}
				break;
			}
		}
		buf[len] = '\0';
		const char *body = strstr(buf, "\r\n\r\n");
		if (eof && strncmp(buf, "HTTP/1.", 7) == 0 && len > 12 &&
		    strncmp(buf + 8, " 200", 4) == 0 && body && strstr(body + 4, expect))
			ok("%s: GET %s via epoll: 200, %zu bytes, expected body",
			   names[k], path, len);
		else if (eof)
			fail("%s: GET %s via epoll: bad response (%zu bytes): '%.60s'",
			     names[k], path, len, buf);
		free(buf);
		epoll_ctl(ep, EPOLL_CTL_DEL, fds[k], NULL);
		close(fds[k]);
	}
	close(ep);
	return failures ? 1 : 0;
}

/* --- dup2 ----------------------------------------------------------------------- */

static int cmd_dup2(char **argv)
{
	const char *host = argv[0], *port = argv[1], *path = argv[2], *expect = argv[3];
	struct sockaddr_storage dst;
	resolve(host, port, AF_UNSPEC, &dst);
	const struct sockaddr *sa = (struct sockaddr *)&dst;
	int fd = tcp_socket(dst.ss_family, 0);
	must_connect(fd, sa, "dup2");

	int onto = open("/dev/null", O_RDONLY); /* dup2 replaces an open fd */
	if (onto < 0 || dup2(fd, onto) != onto) {
		fail("dup2(%d, %d): %s", fd, onto, strerror(errno));
		return 1;
	}
	check_peer(onto, sa, "dup2 onto an open fd");
	int d = dup(fd);
	check_peer(d, sa, "dup");
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, 100);
	check_peer(hi, sa, "fcntl(F_DUPFD_CLOEXEC, 100)");
	if (dup3(fd, 200, O_CLOEXEC) != 200)
		fail("dup3(%d, 200): %s", fd, strerror(errno));
	else
		check_peer(200, sa, "dup3 onto 200");
	close(fd);
	check_peer(onto, sa, "dup2'd fd after closing the original");
	http_check(onto, path, expect, "dup2'd fd");
	close(onto);
	close(d);
	close(hi);
	close(200);
	/* a fresh socket that lands on fd 200 is not connected */
	int fresh = tcp_socket(dst.ss_family, 0);
	if (dup2(fresh, 200) == 200) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		if (getpeername(200, (struct sockaddr *)&ss, &len) == 0)
			fail("a new, unconnected socket on fd 200 has a peer (stale "
			     "state)");
		else if (errno == ENOTCONN)
			ok("a new socket dup2'd onto fd 200: getpeername ENOTCONN");
		else
			fail("a new socket on fd 200: getpeername: %s, expected ENOTCONN",
			     strerror(errno));
		close(200);
	}
	close(fresh);
	return failures ? 1 : 0;
}

/* --- close_range ---------------------------------------------------------------- */

static int cmd_closerange(char **argv, bool use_closefrom)
{
	const char *host = argv[0], *port = argv[1], *path = argv[2], *expect = argv[3];
	const char *how = use_closefrom ? "closefrom" : "close_range";
	struct sockaddr_storage dst;
	resolve(host, port, AF_UNSPEC, &dst);
	const struct sockaddr *sa = (struct sockaddr *)&dst;

	int fd = tcp_socket(dst.ss_family, 0);
	must_connect(fd, sa, "first socket");
	check_peer(fd, sa, "first socket");
	http_check(fd, path, expect, "first socket");
	int n = fd;
	if (use_closefrom) {
		closefrom(n);
	} else if (close_range((unsigned)n, ~0U, 0) < 0) {
		fail("close_range(%d, ~0U, 0): %s", n, strerror(errno));
		return 1;
	}
	ok("%s(%d)", how, n);

	int fd2 = tcp_socket(dst.ss_family, 0);
	if (fd2 != n)
		fail("the new socket is fd %d, expected the freed %d", fd2, n);
	else
		ok("the new socket reuses fd %d", fd2);
	if (connect(fd2, sa, addr_len(sa)) < 0) {
		fail("connect on the reused fd %d after %s: %s", fd2, how,
		     strerror(errno));
		return 1;
	}
	ok("connect on the reused fd %d after %s", fd2, how);
	check_peer(fd2, sa, "reused fd");
	http_check(fd2, path, expect, "reused fd");
	close(fd2);
	return failures ? 1 : 0;
}

/* --- forkdns -------------------------------------------------------------------- */

static int cmd_forkdns(char **argv)
{
	const char *name = argv[0], *port = argv[1], *path = argv[2], *expect = argv[3];
	int p[2];
	if (pipe(p) < 0)
		return 1;
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(p[0]);
		struct sockaddr_storage ss;
		resolve(name, port, AF_UNSPEC, &ss);
		char a[80];
		ok("child %d: getaddrinfo %s = %s", (int)getpid(), name,
		   fmt_addr((struct sockaddr *)&ss, a, sizeof(a)));
		ssize_t w = write(p[1], &ss, sizeof(ss));
		_exit(w == (ssize_t)sizeof(ss) ? 0 : 1);
	}
	close(p[1]);
	struct sockaddr_storage ss;
	ssize_t r = read(p[0], &ss, sizeof(ss));
	int status = 0;
	waitpid(pid, &status, 0);
	if (r != (ssize_t)sizeof(ss) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fail("the child's getaddrinfo %s failed", name);
		return 1;
	}
	const struct sockaddr *sa = (struct sockaddr *)&ss;
	int fd = tcp_socket(ss.ss_family, 0);
	must_connect(fd, sa, "parent, with the child's address");
	check_peer(fd, sa, "parent");
	http_check(fd, path, expect, "parent");
	close(fd);
	return failures ? 1 : 0;
}

/* --- gai ------------------------------------------------------------------------ */

static void gai_case(const char *name, const char *port, const char *path,
                     const char *expect, const struct addrinfo *hints, int want_family,
                     const char *what)
{
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(name, hints ? port : NULL, hints, &res);
	if (rc != 0 || !res) {
		fail("%s: getaddrinfo %s: %s", what, name,
		     rc ? gai_strerror(rc) : "no result");
		return;
	}
	const struct addrinfo *use = NULL;
	int count = 0;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char a[80];
		count++;
		printf("# %s: family %d socktype %d %s\n", what, ai->ai_family,
		       ai->ai_socktype, fmt_addr(ai->ai_addr, a, sizeof(a)));
		if (want_family && ai->ai_family != want_family)
			fail("%s: a result of family %d", what, ai->ai_family);
		if (!use && (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
		    (ai->ai_socktype == SOCK_STREAM || ai->ai_socktype == 0))
			use = ai;
	}
	if (!use) {
		fail("%s: no TCP-usable address among %d results", what, count);
		freeaddrinfo(res);
		return;
	}
	ok("%s: %d results", what, count);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, use->ai_addr, use->ai_addrlen);
	uint16_t nport = htons((uint16_t)atoi(port));
	if (ss.ss_family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_port = nport;
	else
		((struct sockaddr_in6 *)&ss)->sin6_port = nport;
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);
	char a[80];
	if (connect(fd, (struct sockaddr *)&ss, addr_len((struct sockaddr *)&ss)) < 0) {
		fail("%s: connect %s: %s", what,
		     fmt_addr((struct sockaddr *)&ss, a, sizeof(a)), strerror(errno));
	} else {
		ok("%s: connect %s", what,
		   fmt_addr((struct sockaddr *)&ss, a, sizeof(a)));
		check_peer(fd, (struct sockaddr *)&ss, what);
		http_check(fd, path, expect, what);
	}
	close(fd);
	freeaddrinfo(res);
}

static int cmd_gai(char **argv)
{
	const char *name = argv[0], *port = argv[1], *path = argv[2], *expect = argv[3];
	gai_case(name, port, path, expect, NULL, 0, "NULL hints");
	struct addrinfo h6 = {.ai_family = AF_INET6, .ai_socktype = SOCK_STREAM};
	gai_case(name, port, path, expect, &h6, AF_INET6, "AF_INET6 hints");
	struct addrinfo h4 = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	gai_case(name, port, path, expect, &h4, AF_INET, "AF_INET hints");
	return failures ? 1 : 0;
}

/* --- nameinfo ------------------------------------------------------------------- */

static int cmd_nameinfo(char **argv)
{
	const char *name = argv[0];
	const int fams[2] = {AF_INET, AF_INET6};
	for (int i = 0; i < 2; i++) {
		struct sockaddr_storage ss;
		struct addrinfo hints = {.ai_family = fams[i],
		                         .ai_socktype = SOCK_STREAM};
		struct addrinfo *res = NULL;
		const char *fam = fams[i] == AF_INET ? "IPv4" : "IPv6";
		int rc = getaddrinfo(name, "80", &hints, &res);
		if (rc != 0 || !res) {
			fail("%s: getaddrinfo %s: %s", fam, name,
			     rc ? gai_strerror(rc) : "none");
			continue;
		}
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, res->ai_addr, res->ai_addrlen);
		socklen_t len = res->ai_addrlen;
		freeaddrinfo(res);
		char host[NI_MAXHOST], num[NI_MAXHOST];
		rc = getnameinfo((struct sockaddr *)&ss, len, num, sizeof(num), NULL, 0,
		                 NI_NUMERICHOST);
		if (rc != 0)
			snprintf(num, sizeof(num), "?");
		rc = getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), NULL, 0,
		                 NI_NAMEREQD);
		if (rc != 0)
			fail("%s: getnameinfo(%s, NI_NAMEREQD): %s", fam, num,
			     gai_strerror(rc));
		else if (strcmp(host, name) != 0)
			fail("%s: getnameinfo(%s) = %s, expected %s", fam, num, host,
			     name);
		else
			ok("%s: getnameinfo(%s) = %s", fam, num, host);
	}
	struct hostent *he = gethostbyname(name);
	if (!he)
		fail("gethostbyname %s: %s", name, hstrerror(h_errno));
	else if (!he->h_addr_list[0])
		fail("gethostbyname %s: no address", name);
	else {
		char num[INET6_ADDRSTRLEN];
		inet_ntop(he->h_addrtype, he->h_addr_list[0], num, sizeof(num));
		struct hostent *back = gethostbyaddr(
		        he->h_addr_list[0], (socklen_t)he->h_length, he->h_addrtype);
		if (!back)
			fail("gethostbyaddr(%s): %s", num, hstrerror(h_errno));
		else if (strcmp(back->h_name, name) != 0)
			fail("gethostbyaddr(%s) = %s, expected %s", num, back->h_name,
			     name);
		else
			ok("gethostbyname %s = %s, gethostbyaddr gives the name back",
			   name, num);
	}
	return failures ? 1 : 0;
}

/* --- connect-err ---------------------------------------------------------------- */

static void expect_notconn(int fd, const char *what)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
		char a[80];
		fail("%s: getpeername after a failed connect gives %s", what,
		     fmt_addr((struct sockaddr *)&ss, a, sizeof(a)));
	} else if (errno != ENOTCONN) {
		fail("%s: getpeername after a failed connect: %s, expected ENOTCONN",
		     what, errname(errno));
	} else {
		ok("%s: getpeername after the failed connect: ENOTCONN", what);
	}
	/* and nothing written now may go anywhere (not to the proxy either) */
	ssize_t n = send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n >= 0)
		fail("%s: send after the failed connect succeeded (%zd byte went "
		     "somewhere)",
		     what, n);
	else
		ok("%s: send after the failed connect: %s", what, errname(errno));
}

static int cmd_connect_err(char **argv, bool check_state)
{
	const char *host = argv[0], *port = argv[1], *want_name = argv[2];
	int want = errvalue(want_name);
	if (want < 0) {
		fprintf(stderr, "probe: unknown errno name %s\n", want_name);
		return 2;
	}
	struct sockaddr_storage dst;
	resolve(host, port, AF_UNSPEC, &dst);
	const struct sockaddr *sa = (struct sockaddr *)&dst;
	char a[80];
	fmt_addr(sa, a, sizeof(a));

	/* blocking */
	int fd = tcp_socket(dst.ss_family, 0);
	if (connect(fd, sa, addr_len(sa)) == 0)
		fail("blocking connect %s succeeded, expected %s", a, want_name);
	else if (errno != want)
		fail("blocking connect %s: %s, expected %s", a, errname(errno),
		     want_name);
	else {
		ok("blocking connect %s: %s", a, want_name);
		if (check_state)
			expect_notconn(fd, "blocking");
	}
	close(fd);

	/* non-blocking: EINPROGRESS, then writable with SO_ERROR */
	fd = tcp_socket(dst.ss_family, SOCK_NONBLOCK);
	int rc = connect(fd, sa, addr_len(sa));
	if (rc == 0) {
		fail("non-blocking connect %s succeeded, expected EINPROGRESS then %s", a,
		     want_name);
	} else if (errno != EINPROGRESS) {
		fail("non-blocking connect %s: %s, expected EINPROGRESS (then SO_ERROR "
		     "%s)",
		     a, errname(errno), want_name);
	} else {
		ok("non-blocking connect %s: EINPROGRESS", a);
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		rc = poll(&p, 1, IO_TIMEOUT_MS);
		if (rc <= 0) {
			fail("non-blocking connect %s: not writable within %d ms", a,
			     IO_TIMEOUT_MS);
		} else {
			int e = getint(fd, SOL_SOCKET, SO_ERROR);
			if (e == want) {
				ok("non-blocking connect %s: writable (revents %#x), "
				   "SO_ERROR %s",
				   a, p.revents, want_name);
				if (check_state)
					expect_notconn(fd, "non-blocking");
			} else {
				fail("non-blocking connect %s: writable (revents %#x), "
				     "SO_ERROR %s, "
				     "expected %s",
				     a, p.revents,
				     e >= 0 ? (e ? errname(e) : "0") : "unreadable",
				     want_name);
			}
		}
	}
	close(fd);
	return failures ? 1 : 0;
}

/* --- longjmp-connect ------------------------------------------------------------ */

static sigjmp_buf connect_jump;

static void connect_alarm(int sig)
{
	(void)sig;
	siglongjmp(connect_jump, 1);
}

static int cmd_longjmp_connect(char **argv)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(argv[0], argv[1], &hints, &ai) != 0) {
		fail("resolve %s", argv[0]);
		return 1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	signal(SIGALRM, connect_alarm);
	if (sigsetjmp(connect_jump, 1) == 0) {
		alarm(1);
		connect(fd, ai->ai_addr, ai->ai_addrlen);
		alarm(0);
		fail("the first connect returned before the alarm");
	} else {
		ok("the alarm jumped out of the first connect");
	}
	close(fd);
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	errno = 0;
	int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
	if (rc < 0 && errno == ETIMEDOUT)
		ok("the next connect still went to the proxy (ETIMEDOUT)");
	else
		fail("the next connect: %s (ETIMEDOUT expected; ENETUNREACH means it "
		     "went "
		     "direct)",
		     rc == 0 ? "connected" : strerror(errno));
	close(fd);
	freeaddrinfo(ai);
	return failures ? 1 : 0;
}

/* --- slow-proxy ---------------------------------------------------------------- */

static long ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (long)((t1.tv_sec - t0->tv_sec) * 1000 +
	              (t1.tv_nsec - t0->tv_nsec) / 1000000);
}

/*
 * Through a proxy that accepts but never answers: a non-blocking connect must
 * still return EINPROGRESS at once (within MAX-MS), then report ERRNO-NAME in
 * SO_ERROR when the shim gives up; a blocking one fails with ERRNO-NAME.
 */
static int cmd_slow_proxy(char **argv)
{
	const char *host = argv[0], *port = argv[1], *want_name = argv[3];
	long max_ms = atol(argv[2]);
	int want = errvalue(want_name);
	if (want < 0) {
		fprintf(stderr, "probe: unknown errno name %s\n", want_name);
		return 2;
	}
	struct sockaddr_storage dst;
	resolve(host, port, AF_UNSPEC, &dst);
	const struct sockaddr *sa = (struct sockaddr *)&dst;
	char a[80];
	fmt_addr(sa, a, sizeof(a));
	struct timespec t0;

	int fd = tcp_socket(dst.ss_family, SOCK_NONBLOCK);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = connect(fd, sa, addr_len(sa));
	int e = errno;
	long took = ms_since(&t0);
	if (rc == 0)
		fail("non-blocking connect %s succeeded through a silent proxy", a);
	else if (e != EINPROGRESS)
		fail("non-blocking connect %s: %s after %ld ms, expected EINPROGRESS", a,
		     errname(e), took);
	else if (took > max_ms)
		fail("non-blocking connect %s blocked for %ld ms before EINPROGRESS (max "
		     "%ld)",
		     a, took, max_ms);
	else
		ok("non-blocking connect %s: EINPROGRESS after %ld ms", a, took);
	if (rc < 0 && e == EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		rc = poll(&p, 1, 3 * IO_TIMEOUT_MS);
		int soe = getint(fd, SOL_SOCKET, SO_ERROR);
		if (rc <= 0)
			fail("non-blocking connect %s: no POLLOUT within %d ms", a,
			     3 * IO_TIMEOUT_MS);
		else if (soe != want)
			fail("non-blocking connect %s: writable after %ld ms with "
			     "SO_ERROR %s, "
			     "expected %s",
			     a, ms_since(&t0),
			     soe > 0    ? errname(soe)
			     : soe == 0 ? "0"
			                : "unreadable",
			     want_name);
		else
			ok("non-blocking connect %s: writable after %ld ms, SO_ERROR %s",
			   a, ms_since(&t0), want_name);
	}
	close(fd);

	fd = tcp_socket(dst.ss_family, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = connect(fd, sa, addr_len(sa));
	e = errno;
	if (rc == 0)
		fail("blocking connect %s succeeded through a silent proxy", a);
	else if (e != want)
		fail("blocking connect %s: %s after %ld ms, expected %s", a, errname(e),
		     ms_since(&t0), want_name);
	else
		ok("blocking connect %s: %s after %ld ms", a, want_name, ms_since(&t0));
	close(fd);
	return failures ? 1 : 0;
}

/* --- tfo ------------------------------------------------------------------------ */

/*
 * TCP Fast Open: the request goes out with sendto(MSG_FASTOPEN, dst) on a
 * fresh, unconnected socket, then (second socket) with sendmsg(msg_name = dst,
 * MSG_FASTOPEN). Either call must connect the socket and send the data; the
 * response is read as usual. PATH gets "-sendto" / "-sendmsg" appended.
 */
static int cmd_tfo(char **argv)
{
	const char *host = argv[0], *port = argv[1], *path = argv[2], *expect = argv[3];
	struct sockaddr_storage dst;
	resolve(host, port, AF_UNSPEC, &dst);
	const struct sockaddr *sa = (struct sockaddr *)&dst;
	char a[80], req[512], p[400];
	fmt_addr(sa, a, sizeof(a));
	for (int k = 0; k < 2; k++) {
		const char *how = k == 0 ? "sendto" : "sendmsg";
		snprintf(p, sizeof(p), "%s-%s", path, how);
		int n = http_request(req, sizeof(req), p);
		int fd = tcp_socket(dst.ss_family, 0);
		ssize_t w;
		if (k == 0) {
			w = sendto(fd, req, (size_t)n, MSG_FASTOPEN, sa, addr_len(sa));
		} else {
			struct iovec iov = {.iov_base = req, .iov_len = (size_t)n};
			struct msghdr msg = {.msg_name = (void *)sa,
			                     .msg_namelen = addr_len(sa),
			                     .msg_iov = &iov,
			                     .msg_iovlen = 1};
			w = sendmsg(fd, &msg, MSG_FASTOPEN);
		}
		if (w != n) {
			fail("%s(fd %d, %d bytes, MSG_FASTOPEN, %s) = %zd: %s", how, fd,
			     n, a, w, w < 0 ? errname(errno) : "short write");
			close(fd);
			continue;
		}
		ok("%s(fd %d, MSG_FASTOPEN, %s): %d bytes sent", how, fd, a, n);
		check_peer(fd, sa, how);
		http_response(fd, p, expect, how);
		close(fd);
	}
	return failures ? 1 : 0;
}

/* --- resquery ------------------------------------------------------------------- */

/*
 * The libresolv query interface: res_query twice and res_search once for
 * NAME IN A. Each must fail (-1): refused by the shim in remote DNS mode, or
 * answered REFUSED by the leak detector when the query does go out.
 */
static int cmd_resquery(char **argv)
{
	const char *name = argv[0];
	unsigned char ans[512];
	for (int i = 0; i < 3; i++) {
		const char *fn = i < 2 ? "res_query" : "res_search";
		h_errno = 0;
		int rc = i < 2 ? res_query(name, C_IN, T_A, ans, sizeof(ans))
		               : res_search(name, C_IN, T_A, ans, sizeof(ans));
		if (rc >= 0)
			fail("%s(%s, C_IN, T_A) answered %d bytes, expected -1", fn, name,
			     rc);
		else
			ok("%s(%s, C_IN, T_A) = -1 (h_errno %d)", fn, name, h_errno);
	}
	return failures ? 1 : 0;
}

/* --- resmx ---------------------------------------------------------------------- */

/* The exchange of the first MX record of answer ans (n bytes) into out, or false. */
static bool first_mx(const unsigned char *ans, int n, char *out, size_t cap)
{
	const unsigned char *p = ans + HFIXEDSZ, *end = ans + n;
	int qd = ans[4] << 8 | ans[5], an = ans[6] << 8 | ans[7];
	for (int i = 0; i < qd; i++) {
		int k = dn_skipname(p, end);
		if (k < 0 || end - p < k + 4)
			return false;
		p += k + 4;
	}
	for (int i = 0; i < an; i++) {
		int k = dn_skipname(p, end);
		if (k < 0 || end - p < k + 10)
			return false;
		p += k;
		int type = p[0] << 8 | p[1], rdlen = p[8] << 8 | p[9];
		p += 10;
		if (end - p < rdlen)
			return false;
		if (type == T_MX && rdlen > 2)
			return dn_expand(ans, end, p + 2, out, (int)cap) > 0;
		p += rdlen;
	}
	return false;
}

/* One res_* call's answer: MX with exchange `want`, or -1 with h_errno `herr`. */
static void check_mx(const char *what, int n, const unsigned char *ans, const char *want,
                     int herr)
{
	char mx[NS_MAXDNAME];
	if (want && n > 0 && first_mx(ans, n, mx, sizeof(mx)) && strcmp(mx, want) == 0)
		ok("%s: MX %s", what, mx);
	else if (!want && n < 0 && h_errno == herr)
		ok("%s: -1, h_errno %s", what, hstrerror(h_errno));
	else
		fail("%s: %d bytes, h_errno %d (%s); expected %s", what, n, h_errno,
		     hstrerror(h_errno), want ? want : hstrerror(herr));
}

/*
 * NAME IN MX through every form of the interface, each answered with an MX
 * record whose exchange is EXCHANGE: res_query, res_search, res_querydomain
 * (first label, rest), res_send of a res_mkquery, res_nquery and
 * res_nsearch on a state of their own; then NXNAME: res_query -1 with
 * HOST_NOT_FOUND.
 */
static int cmd_resmx(char **argv)
{
	const char *name = argv[0], *want = argv[1], *nx = argv[2];
	unsigned char ans[1024], q[512];
	char label[256];
	const char *dot = strchr(name, '.');
	if (!dot || (size_t)(dot - name) >= sizeof(label))
		return 2;
	memcpy(label, name, (size_t)(dot - name));
	label[dot - name] = '\0';
	int n = res_query(name, C_IN, T_MX, ans, sizeof(ans));
	check_mx("res_query", n, ans, want, 0);
	n = res_search(name, C_IN, T_MX, ans, sizeof(ans));
	check_mx("res_search", n, ans, want, 0);
	n = res_querydomain(label, dot + 1, C_IN, T_MX, ans, sizeof(ans));
	check_mx("res_querydomain", n, ans, want, 0);
	int qlen = res_mkquery(QUERY, name, C_IN, T_MX, NULL, 0, NULL, q, sizeof(q));
	n = qlen < 0 ? -1 : res_send(q, qlen, ans, sizeof(ans));
	check_mx("res_send", n, ans, want, 0);
	struct __res_state st;
	memset(&st, 0, sizeof(st));
	if (res_ninit(&st) != 0) {
		fail("res_ninit");
	} else {
		n = res_nquery(&st, name, C_IN, T_MX, ans, sizeof(ans));
		check_mx("res_nquery", n, ans, want, 0);
		n = res_nsearch(&st, name, C_IN, T_MX, ans, sizeof(ans));
		check_mx("res_nsearch", n, ans, want, 0);
		res_nclose(&st);
	}
	h_errno = 0;
	n = res_query(nx, C_IN, T_MX, ans, sizeof(ans));
	check_mx("res_query(NXNAME)", n, ans, NULL, HOST_NOT_FOUND);
	return failures ? 1 : 0;
}

/* --- twins ----------------------------------------------------------------------- */

/* A non-blocking connect to sa started: the socket, or -1 (a FAIL line). */
static int connect_nb(const struct sockaddr *sa, const char *what)
{
	char a[80];
	int fd = tcp_socket(sa->sa_family, SOCK_NONBLOCK);
	if (connect(fd, sa, addr_len(sa)) < 0 && errno != EINPROGRESS) {
		fail("%s: connect(%s): %s", what, fmt_addr(sa, a, sizeof(a)),
		     strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Waits for fd's connect to end; true when it succeeded (SO_ERROR 0). */
static bool connected_nb(int fd, const char *what)
{
	int err = -1;
	socklen_t len = sizeof(err);
	if (!wait_fd(fd, POLLOUT) ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		fail("%s: the connect did not complete (SO_ERROR %s)", what,
		     err > 0 ? strerror(err) : "-");
		return false;
	}
	return true;
}

/*
 * A happy-eyeballs client by hand, NAME's IPv4 fake and its IPv6 twin (one
 * AF_UNSPEC getaddrinfo, no AI_ADDRCONFIG): "race" connects (non-blocking)
 * to both at once, keeps the first to complete, closes the other and GETs
 * PATH-race; "both" connects to both and GETs PATH-4 and PATH-6 over them.
 */
static int cmd_twins(char **argv)
{
	const char *name = argv[0], *port = argv[1], *path = argv[2], *expect = argv[3];
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	struct sockaddr_storage v4, v6;
	char p[512];
	int rc = getaddrinfo(name, port, &hints, &res);
	if (rc != 0 || !res || !res->ai_next || res->ai_family != AF_INET ||
	    res->ai_next->ai_family != AF_INET6) {
		fail("getaddrinfo %s AF_UNSPEC: not the IPv4 fake then its twin (%s)",
		     name, rc ? gai_strerror(rc) : "families");
		return 1;
	}
	memcpy(&v4, res->ai_addr, res->ai_addrlen);
	memcpy(&v6, res->ai_next->ai_addr, res->ai_next->ai_addrlen);
	freeaddrinfo(res);
	int s4 = connect_nb((struct sockaddr *)&v4, "race v4");
	int s6 = connect_nb((struct sockaddr *)&v6, "race v6");
	if (s4 >= 0 && s6 >= 0 && connected_nb(s4, "race v4")) {
		close(s6);
		s6 = -1;
		snprintf(p, sizeof(p), "%s-race", path);
		http_check(s4, p, expect, "race: the IPv4 fake, the twin closed");
	}
	if (s4 >= 0)
		close(s4);
	if (s6 >= 0)
		close(s6);
	s4 = connect_nb((struct sockaddr *)&v4, "both v4");
	s6 = connect_nb((struct sockaddr *)&v6, "both v6");
	if (s4 >= 0 && s6 >= 0 && connected_nb(s4, "both v4") &&
	    connected_nb(s6, "both v6")) {
		snprintf(p, sizeof(p), "%s-4", path);
		http_check(s4, p, expect, "both: the IPv4 fake");
		snprintf(p, sizeof(p), "%s-6", path);
		http_check(s6, p, expect, "both: the IPv6 twin");
	}
	if (s4 >= 0)
		close(s4);
	if (s6 >= 0)
		close(s6);
	return failures ? 1 : 0;
}

/* --- hostent -------------------------------------------------------------------- */

static bool in_fake_pool(int af, const unsigned char *a)
{
	static const unsigned char v6[8] = {0x01, 0, 0, 0, 0, 0, 0, 0};
	return af == AF_INET ? (a[0] & 0xf0) == 240 : memcmp(a, v6, sizeof(v6)) == 0;
}

/* Checks a forward answer for NAME: one fake address of family af, h_name NAME. */
static bool check_hostent(const struct hostent *he, const char *name, int af,
                          unsigned char *out, const char *what)
{
	size_t alen = af == AF_INET ? 4 : 16;
	char num[INET6_ADDRSTRLEN] = "?";
	if (!he) {
		fail("%s: no answer (h_errno %d: %s)", what, h_errno, hstrerror(h_errno));
		return false;
	}
	if (he->h_addrtype != af || he->h_length != (int)alen || !he->h_addr_list ||
	    !he->h_addr_list[0]) {
		fail("%s: family %d, length %d, first address %p; expected family %d, "
		     "length %zu",
		     what, he->h_addrtype, he->h_length,
		     he->h_addr_list ? (void *)he->h_addr_list[0] : NULL, af, alen);
		return false;
	}
	inet_ntop(af, he->h_addr_list[0], num, sizeof(num));
	if (!he->h_name || strcmp(he->h_name, name) != 0) {
		fail("%s: h_name %s, expected %s", what, he->h_name ? he->h_name : "NULL",
		     name);
		return false;
	}
	if (!in_fake_pool(af, (const unsigned char *)he->h_addr_list[0])) {
		fail("%s: %s is not in the fake pool (resolved here?)", what, num);
		return false;
	}
	memcpy(out, he->h_addr_list[0], alen);
	ok("%s = %s (h_name %s)", what, num, he->h_name);
	return true;
}

static void check_same(const unsigned char *a, const unsigned char *b, size_t len,
                       const char *what)
{
	if (memcmp(a, b, len) != 0)
		fail("%s: a different address than gethostbyname gave", what);
	else
		ok("%s: the same address as before", what);
}

/* gethostbyaddr(ADDR) must give NAME back (a fake address), or nothing. */
static void check_reverse(const unsigned char *addr, int af, const char *want,
                          const char *what)
{
	struct hostent *he = gethostbyaddr(addr, af == AF_INET ? 4 : 16,
	                                   af == AF_INET ? AF_INET : AF_INET6);
	if (!want) {
		if (he)
			fail("%s: gave %s, expected no answer", what,
			     he->h_name ? he->h_name : "NULL");
		else
			ok("%s: no answer (h_errno %d)", what, h_errno);
	} else if (!he || !he->h_name) {
		fail("%s: no answer (h_errno %d: %s)", what, h_errno, hstrerror(h_errno));
	} else if (strcmp(he->h_name, want) != 0) {
		fail("%s = %s, expected %s", what, he->h_name, want);
	} else {
		ok("%s = %s", what, he->h_name);
	}
}

/* Connects to ADDR:PORT and fetches PATH over it. */
static void connect_fetch(int af, const unsigned char *addr, const char *port,
                          const char *path, const char *expect, const char *what)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)af;
	uint16_t nport = htons((uint16_t)atoi(port));
	if (af == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_port = nport;
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, addr, 4);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_port = nport;
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, addr, 16);
	}
	const struct sockaddr *sa = (struct sockaddr *)&ss;
	char a[80];
	int fd = tcp_socket(af, 0);
	if (connect(fd, sa, addr_len(sa)) < 0) {
		fail("%s: connect %s: %s", what, fmt_addr(sa, a, sizeof(a)),
		     errname(errno));
	} else {
		ok("%s: connect %s", what, fmt_addr(sa, a, sizeof(a)));
		check_peer(fd, sa, what);
		http_check(fd, path, expect, what);
	}
	close(fd);
}

/*
 * The gethostbyname family for NAME (remote DNS): every form answers the fake
 * address with h_name NAME, gethostbyaddr gives NAME back, and connecting to
 * the addresses fetches PATH-v4 / PATH-v6. NONFAKE, an address that is neither
 * fake nor in /etc/hosts, has no name: getnameinfo(NI_NAMEREQD) EAI_NONAME.
 */
static int cmd_hostent(char **argv)
{
	const char *name = argv[0], *port = argv[1], *path = argv[2], *expect = argv[3];
	const char *nonfake = argv[4];
	unsigned char a4[4], a6[16], x[16];
	char buf[1024], small[8], p[400];
	struct hostent he, *res;
	int herr, rc;

	if (!check_hostent(gethostbyname(name), name, AF_INET, a4, "gethostbyname"))
		return 1;
	if (!check_hostent(gethostbyname2(name, AF_INET6), name, AF_INET6, a6,
	                   "gethostbyname2(AF_INET6)"))
		return 1;
	if (check_hostent(gethostbyname2(name, AF_INET), name, AF_INET, x,
	                  "gethostbyname2(AF_INET)"))
		check_same(x, a4, 4, "gethostbyname2(AF_INET)");

	res = NULL;
	herr = 0;
	rc = gethostbyname_r(name, &he, buf, sizeof(buf), &res, &herr);
	if (rc != 0 || res != &he)
		fail("gethostbyname_r: %d (%s), result %p, h_errno %d", rc, strerror(rc),
		     (void *)res, herr);
	else if (check_hostent(res, name, AF_INET, x, "gethostbyname_r"))
		check_same(x, a4, 4, "gethostbyname_r");
	res = &he;
	rc = gethostbyname_r(name, &he, small, sizeof(small), &res, &herr);
	if (rc == ERANGE && !res)
		ok("gethostbyname_r with an 8-byte buffer: ERANGE, result NULL");
	else
		fail("gethostbyname_r with an 8-byte buffer: %d (%s), result %p; "
		     "expected "
		     "ERANGE and NULL",
		     rc, strerror(rc), (void *)res);
	for (int i = 0; i < 2; i++) {
		int af = i == 0 ? AF_INET6 : AF_INET;
		const char *what = i == 0 ? "gethostbyname2_r(AF_INET6)"
		                          : "gethostbyname2_r(AF_INET)";
		res = NULL;
		rc = gethostbyname2_r(name, af, &he, buf, sizeof(buf), &res, &herr);
		if (rc != 0 || res != &he)
			fail("%s: %d (%s), result %p, h_errno %d", what, rc, strerror(rc),
			     (void *)res, herr);
		else if (check_hostent(res, name, af, x, what))
			check_same(x, af == AF_INET ? a4 : a6, af == AF_INET ? 4 : 16,
			           what);
	}
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	rc = getaddrinfo(name, port, &hints, &ai);
	if (rc != 0 || !ai)
		fail("getaddrinfo(%s, AF_INET): %s", name,
		     rc ? gai_strerror(rc) : "none");
	else
		check_same(
		        (unsigned char *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr,
		        a4, 4, "getaddrinfo(AF_INET)");
	if (ai)
		freeaddrinfo(ai);

	check_reverse(a4, AF_INET, name, "gethostbyaddr(fake IPv4)");
	check_reverse(a6, AF_INET6, name, "gethostbyaddr(fake IPv6)");

	struct sockaddr_in nf = {.sin_family = AF_INET};
	if (inet_pton(AF_INET, nonfake, &nf.sin_addr) != 1) {
		fprintf(stderr, "probe: not an IPv4 address: %s\n", nonfake);
		return 2;
	}
	char host[NI_MAXHOST];
	rc = getnameinfo((struct sockaddr *)&nf, sizeof(nf), host, sizeof(host), NULL, 0,
	                 NI_NAMEREQD);
	if (rc == EAI_NONAME)
		ok("getnameinfo(%s, NI_NAMEREQD): EAI_NONAME", nonfake);
	else
		fail("getnameinfo(%s, NI_NAMEREQD): %s, expected EAI_NONAME", nonfake,
		     rc == 0 ? host : gai_strerror(rc));
	rc = getnameinfo((struct sockaddr *)&nf, sizeof(nf), host, sizeof(host), NULL, 0,
	                 0);
	if (rc == 0 && strcmp(host, nonfake) == 0)
		ok("getnameinfo(%s, 0) = %s (numeric)", nonfake, host);
	else
		fail("getnameinfo(%s, 0): %s, expected the numeric form", nonfake,
		     rc == 0 ? host : gai_strerror(rc));
	check_reverse((unsigned char *)&nf.sin_addr, AF_INET, NULL,
	              "gethostbyaddr(non-fake)");

	snprintf(p, sizeof(p), "%s-v4", path);
	connect_fetch(AF_INET, a4, port, p, expect, "gethostbyname's IPv4 address");
	snprintf(p, sizeof(p), "%s-v6", path);
	connect_fetch(AF_INET6, a6, port, p, expect, "gethostbyname2's IPv6 address");
	return failures ? 1 : 0;
}

/* --- threads -------------------------------------------------------------------- */

enum { NTHREADS = 4, THREAD_ROUNDS = 4 };

struct tcp_job {
	const char *name, *port, *path, *expect;
	int index;
	pthread_barrier_t *start;
	int rounds; /* rounds that passed */
};

/* getaddrinfo, connect (blocking, or non-blocking and polled), getpeername,
 * GET; true when all of it worked (a failure is reported). */
static bool thread_round(const struct tcp_job *job, int round)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char what[64];
	bool nonblock = round % 2 == 1;

	snprintf(what, sizeof(what), "thread %d round %d (%s)", job->index, round,
	         job->name);
	int rc = getaddrinfo(job->name, job->port, &hints, &res);
	if (rc != 0 || !res) {
		fail("%s: getaddrinfo: %s", what, rc ? gai_strerror(rc) : "no result");
		return false;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
	rc = fd < 0 ? -1 : connect(fd, res->ai_addr, res->ai_addrlen);
	if (rc < 0 && fd >= 0 && nonblock && errno == EINPROGRESS) {
		int err = wait_fd(fd, POLLOUT) ? getint(fd, SOL_SOCKET, SO_ERROR)
		                               : ETIMEDOUT;
		rc = err == 0 ? 0 : -1;
		errno = err;
	}
	bool good = rc == 0;
	if (!good) {
		fail("%s: connect: %s", what, strerror(errno));
	} else {
		int failed = __atomic_load_n(&failures, __ATOMIC_RELAXED);
		check_peer(fd, res->ai_addr, what);
		good = http_check(fd, job->path, job->expect, what) &&
		       failed == __atomic_load_n(&failures, __ATOMIC_RELAXED);
	}
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return good;
}

static void *tcp_worker(void *arg)
{
	struct tcp_job *job = arg;

	pthread_barrier_wait(job->start);
	for (int r = 0; r < THREAD_ROUNDS; r++)
		job->rounds += thread_round(job, r);
	return NULL;
}

static int cmd_threads(char **argv, int nnames)
{
	struct tcp_job jobs[NTHREADS];
	pthread_t t[NTHREADS];
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		jobs[i] = (struct tcp_job){.name = argv[3 + i % nnames],
		                           .port = argv[0],
		                           .path = argv[1],
		                           .expect = argv[2],
		                           .index = i,
		                           .start = &start};
		pthread_create(&t[i], NULL, tcp_worker, &jobs[i]);
	}
	int rounds = 0;
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		rounds += jobs[i].rounds;
	}
	pthread_barrier_destroy(&start);
	if (rounds == NTHREADS * THREAD_ROUNDS)
		ok("%d threads: all %d rounds passed", NTHREADS, rounds);
	else
		fail("%d threads: %d of %d rounds passed", NTHREADS, rounds,
		     NTHREADS * THREAD_ROUNDS);
	return failures ? 1 : 0;
}

/* --- main ----------------------------------------------------------------------- */

static const char usage[] = "usage: probe sockopts HOST PORT PATH EXPECT BINDPORT\n"
                            "       probe epoll|dup2 HOST PORT PATH EXPECT\n"
                            "       probe closerange HOST PORT PATH EXPECT [closefrom]\n"
                            "       probe forkdns|gai NAME PORT PATH EXPECT\n"
                            "       probe nameinfo NAME\n"
                            "       probe connect-err HOST PORT ERRNO-NAME [state]\n"
                            "       probe slow-proxy HOST PORT MAX-MS ERRNO-NAME\n"
                            "       probe longjmp-connect HOST PORT\n"
                            "       probe tfo HOST PORT PATH EXPECT\n"
                            "       probe resquery NAME\n"
                            "       probe resmx NAME EXCHANGE NXNAME\n"
                            "       probe twins NAME PORT PATH EXPECT\n"
                            "       probe hostent NAME PORT PATH EXPECT NONFAKE\n"
                            "       probe threads PORT PATH EXPECT NAME...\n";

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		goto bad;
	const char *cmd = argv[1];
	int nargs = argc - 2;
	char **args = argv + 2;
	if (strcmp(cmd, "sockopts") == 0 && nargs == 5)
		return cmd_sockopts(args);
	if (strcmp(cmd, "epoll") == 0 && nargs == 4)
		return cmd_epoll(args);
	if (strcmp(cmd, "dup2") == 0 && nargs == 4)
		return cmd_dup2(args);
	if (strcmp(cmd, "closerange") == 0 && (nargs == 4 || nargs == 5)) {
		bool cf = nargs == 5 && strcmp(args[4], "closefrom") == 0;
		if (nargs == 5 && !cf)
			goto bad;
		return cmd_closerange(args, cf);
	}
	if (strcmp(cmd, "forkdns") == 0 && nargs == 4)
		return cmd_forkdns(args);
	if (strcmp(cmd, "gai") == 0 && nargs == 4)
		return cmd_gai(args);
	if (strcmp(cmd, "nameinfo") == 0 && nargs == 1)
		return cmd_nameinfo(args);
	if (strcmp(cmd, "connect-err") == 0 && (nargs == 3 || nargs == 4)) {
		bool st = nargs == 4 && strcmp(args[3], "state") == 0;
		if (nargs == 4 && !st)
			goto bad;
		return cmd_connect_err(args, st);
	}
	if (strcmp(cmd, "slow-proxy") == 0 && nargs == 4)
		return cmd_slow_proxy(args);
	if (strcmp(cmd, "longjmp-connect") == 0 && nargs == 2)
		return cmd_longjmp_connect(args);
	if (strcmp(cmd, "tfo") == 0 && nargs == 4)
		return cmd_tfo(args);
	if (strcmp(cmd, "resquery") == 0 && nargs == 1)
		return cmd_resquery(args);
	if (strcmp(cmd, "resmx") == 0 && nargs == 3)
		return cmd_resmx(args);
	if (strcmp(cmd, "twins") == 0 && nargs == 4)
		return cmd_twins(args);
	if (strcmp(cmd, "hostent") == 0 && nargs == 5)
		return cmd_hostent(args);
	if (strcmp(cmd, "threads") == 0 && nargs >= 4)
		return cmd_threads(args, nargs - 3);
bad:
	fputs(usage, stderr);
	return 2;
}
