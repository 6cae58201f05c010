/* SPDX-License-Identifier: MIT */
/*
 * bind_probe: the client-side BIND of the shim (shim/cbind.h) from the
 * program's side, under socksify:
 *
 *   bind_probe served DEST PORT FILE    a connection to DEST:PORT, then a
 *        listener bound to its getsockname() address: getsockname() answers a
 *        proxy address, accept() EAGAIN and no readiness before the peer;
 *        the address goes into FILE ("IP PORT\n") for the peer (the test
 *        runs it at DEST's side); then poll/epoll/select readiness,
 *        accept4() flags, getpeername() DEST, data both ways, a second
 *        accept() EAGAIN; a listener closed before its peer gives its
 *        descriptors back; a wildcard listener is served too
 *   bind_probe refused DEST PORT ERRNO  the proxy refuses BIND: getsockname()
 *        and listen() of the listener fail with ERRNO (bind() succeeds)
 *   bind_probe aborted DEST PORT ERRNO  the second reply fails: the listener
 *        becomes readable, accept() fails with ERRNO, a second one EAGAIN
 *   bind_probe never DEST PORT CLIENT   bind = never: getsockname() of the
 *        connection is CLIENT, the listener is a local one on CLIENT
 *
 * Every check prints "ok ..." or "FAIL ..."; exit 0 when all passed, 1
 * otherwise, 2 for bad usage.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int failures;

__attribute__((format(printf, 2, 3))) static void check(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	if (!ok)
		failures++;
}

static const char *show(const struct sockaddr_in *a, char *buf, size_t cap)
{
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
	snprintf(buf, cap, "%s:%u", ip, ntohs(a->sin_port));
	return buf;
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static int connect_to(const char *host, int port, struct sockaddr_in *local)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	socklen_t len = sizeof(*local);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, host, &a.sin_addr);
	if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		printf("FAIL connect %s:%d: %s\n", host, port, strerror(errno));
		exit(1);
	}
	getsockname(s, (struct sockaddr *)local, &len);
	return s;
}

/* A TCP socket bound to a's host, port 0; errno kept when bind() fails. */
static int bound_to(const struct sockaddr_in *a, int *rc)
{
	struct sockaddr_in b = *a;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	b.sin_port = 0;
	*rc = bind(s, (struct sockaddr *)&b, sizeof(b));
	return s;
}

/* Before the peer: nothing pending, whatever the waiter. */
static void not_ready(int l, int ep)
{
	struct pollfd p = {.fd = l, .events = POLLIN};
	struct epoll_event ev;
	fcntl(l, F_SETFL, fcntl(l, F_GETFL) | O_NONBLOCK);
	errno = 0;
	int a = accept(l, NULL, NULL);
	check(a < 0 && errno == EAGAIN, "accept() before the peer: EAGAIN (%s)",
	      strerror(errno));
	check(poll(&p, 1, 100) == 0, "poll() before the peer: nothing");
	check(epoll_wait(ep, &ev, 1, 0) == 0, "epoll_wait() before the peer: nothing");
	int v = 0;
	socklen_t vl = sizeof(v);
	getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl);
	check(v == 1, "SO_ACCEPTCONN: a listening socket");
}

/* The peer came: every waiter sees it. */
static void ready(int l, int ep)
{
	struct pollfd p = {.fd = l, .events = POLLIN};
	struct epoll_event ev;
	fd_set r;
	struct timeval tv = {0, 0};
	check(poll(&p, 1, 10000) == 1 && (p.revents & POLLIN),
	      "poll(): POLLIN once the peer came");
	check(epoll_wait(ep, &ev, 1, 0) == 1 && (ev.events & EPOLLIN),
	      "epoll_wait(): EPOLLIN");
	FD_ZERO(&r);
	FD_SET(l, &r);
	check(select(l + 1, &r, NULL, NULL, &tv) == 1 && FD_ISSET(l, &r),
	      "select(): readable");
}

/* The accepted connection: flags, addresses, data both ways. */
static void accepted(int l, const char *dest)
{
	struct sockaddr_in peer, p2;
	socklen_t len = sizeof(peer), l2 = sizeof(p2);
	char b1[64], b2[64], buf[64];
	int a = accept4(l, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	check(a >= 0, "accept4(): a connection (%s)", a < 0 ? strerror(errno) : "");
	if (a < 0)
		return;
	inet_ntop(AF_INET, &peer.sin_addr, b1, sizeof(b1));
	check(strcmp(b1, dest) == 0, "accept4(): the peer is %s (%s)", dest,
	      show(&peer, b2, sizeof(b2)));
	getpeername(a, (struct sockaddr *)&p2, &l2);
	check(memcmp(&p2, &peer, sizeof(peer)) == 0, "getpeername() of it: the same");
	check(fcntl(a, F_GETFL) & O_NONBLOCK, "SOCK_NONBLOCK kept");
	check(fcntl(a, F_GETFD) & FD_CLOEXEC, "SOCK_CLOEXEC kept");
	struct pollfd p = {.fd = a, .events = POLLIN};
	poll(&p, 1, 10000);
	ssize_t n = read(a, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	check(n > 0 && strncmp(buf, "hello from the peer", 19) == 0,
	      "the peer's bytes arrive (\"%.19s\")", buf);
	check(write(a, "hello from the probe\n", 21) == 21, "bytes to the peer");
	errno = 0;
	int b = accept(l, NULL, NULL);
	check(b < 0 && errno == EAGAIN, "a second accept(): EAGAIN (BIND carries one)");
	struct pollfd q = {.fd = l, .events = POLLIN};
	check(poll(&q, 1, 0) == 0, "poll() after it: nothing pending");
	shutdown(a, SHUT_WR);
	while (poll(&p, 1, 5000) == 1 && read(a, buf, sizeof(buf)) > 0)
		;
	close(a);
}

static int served(const char *dest, int port, const char *file)
{
	struct sockaddr_in local, bnd;
	socklen_t len = sizeof(bnd);
	char b1[64], b2[64];
	int c = connect_to(dest, port, &local), rc;
	check(local.sin_addr.s_addr != htonl(0x7f000001),
	      "getsockname() of the connection: %s", show(&local, b1, sizeof(b1)));
	int l = bound_to(&local, &rc);
	check(rc == 0, "bind() to that address, port 0 (%s)", rc ? strerror(errno) : "");
	getsockname(l, (struct sockaddr *)&bnd, &len);
	check(bnd.sin_port != 0 && ntohl(bnd.sin_addr.s_addr) >> 24 != 127,
	      "getsockname() of the listener: the proxy's %s",
	      show(&bnd, b2, sizeof(b2)));
	check(listen(l, 1) == 0, "listen()");
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	not_ready(l, ep);
	char ip[INET_ADDRSTRLEN];
	FILE *f = fopen(file, "w");
	fprintf(f, "%s %u\n", inet_ntop(AF_INET, &bnd.sin_addr, ip, sizeof(ip)),
	        ntohs(bnd.sin_port));
	fclose(f);
	ready(l, ep);
	accepted(l, dest);
	close(ep);
	close(l);
	return c;
}

static void close_early(const struct sockaddr_in *local)
{
	int before = count_fds(), rc;
	int l = bound_to(local, &rc);
	check(rc == 0 && listen(l, 1) == 0, "a second listener");
	close(l);
	int after = -1;
	for (int i = 0; i < 100 && (after = count_fds()) != before; i++)
		usleep(20000);
	check(after == before, "closed before its peer: descriptors back (%d, %d)",
	      before, after);
}

static void wildcard(void)
{
	struct sockaddr_in any = {.sin_family = AF_INET}, a;
	socklen_t len = sizeof(a);
	char b[64];
	int l = socket(AF_INET, SOCK_STREAM, 0);
	check(bind(l, (struct sockaddr *)&any, sizeof(any)) == 0 && listen(l, 1) == 0,
	      "a wildcard listener");
	getsockname(l, (struct sockaddr *)&a, &len);
	check(a.sin_addr.s_addr != 0 && a.sin_port != 0,
	      "getsockname() of it: the proxy's %s", show(&a, b, sizeof(b)));
	close(l);
}

static void aborted(const char *dest, int port, int want)
{
	struct sockaddr_in local, bnd;
	socklen_t len = sizeof(bnd);
	char b[64];
	int c = connect_to(dest, port, &local), rc;
	int l = bound_to(&local, &rc);
	getsockname(l, (struct sockaddr *)&bnd, &len);
	check(rc == 0 && listen(l, 1) == 0,
	      "getsockname() of the listener: the proxy's %s", show(&bnd, b, sizeof(b)));
	struct pollfd p = {.fd = l, .events = POLLIN};
	check(poll(&p, 1, 10000) == 1, "poll(): the failure wakes the listener");
	errno = 0;
	rc = accept(l, NULL, NULL);
	check(rc < 0 && errno == want, "accept(): -1 errno %d (%s)", errno,
	      strerror(errno));
	fcntl(l, F_SETFL, O_NONBLOCK);
	errno = 0;
	rc = accept(l, NULL, NULL);
	check(rc < 0 && errno == EAGAIN, "a second accept(): EAGAIN");
	close(l);
	close(c);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr,
		        "usage: bind_probe served|refused|aborted|never DEST PORT ARG\n");
		return 2;
	}
	const char *mode = argv[1], *dest = argv[2];
	int port = atoi(argv[3]);
	struct sockaddr_in local;
	char b[64];
	if (strcmp(mode, "served") == 0) {
		int c = served(dest, port, argv[4]);
		socklen_t len = sizeof(local);
		getsockname(c, (struct sockaddr *)&local, &len);
		close_early(&local);
		wildcard();
		close(c);
	} else if (strcmp(mode, "refused") == 0) {
		int c = connect_to(dest, port, &local), rc, want = atoi(argv[4]);
		int l = bound_to(&local, &rc);
		struct sockaddr_in a;
		socklen_t len = sizeof(a);
		check(rc == 0, "bind(): 0 (the BIND waits for getsockname or listen)");
		errno = 0;
		rc = getsockname(l, (struct sockaddr *)&a, &len);
		check(rc < 0 && errno == want, "getsockname(): -1 errno %d (%s)", errno,
		      strerror(errno));
		errno = 0;
		rc = listen(l, 1);
		check(rc < 0 && errno == want,
		      "listen(): -1 errno %d (%s), not asked again", errno,
		      strerror(errno));
		close(l);
		close(c);
	} else if (strcmp(mode, "aborted") == 0) {
		aborted(dest, port, atoi(argv[4]));
	} else if (strcmp(mode, "never") == 0) {
		int c = connect_to(dest, port, &local), rc;
		inet_ntop(AF_INET, &local.sin_addr, b, sizeof(b));
		check(strcmp(b, argv[4]) == 0, "getsockname() of the connection: %s", b);
		int l = bound_to(&local, &rc);
		struct sockaddr_in a;
		socklen_t len = sizeof(a);
		check(rc == 0 && listen(l, 1) == 0, "a listener on %s", b);
		getsockname(l, (struct sockaddr *)&a, &len);
		check(a.sin_addr.s_addr == local.sin_addr.s_addr, "a local one: %s",
		      show(&a, b, sizeof(b)));
		close(l);
		close(c);
	} else {
		fprintf(stderr, "bind_probe: unknown mode %s\n", mode);
		return 2;
	}
	return failures ? 1 : 0;
}
