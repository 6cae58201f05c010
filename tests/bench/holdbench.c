/* SPDX-License-Identifier: MIT */
/*
 * holdbench: how many relayed connections a SOCKS5 server holds, how fast it
 * opens them, and what each costs it in memory.
 *
 *   holdbench -e [HOST:]PORT
 *       an echo target (epoll, as many connections as the descriptor limit
 *       allows; the limit is raised first). Prints "listening PORT" once
 *       ready (PORT 0: the one chosen), then echoes until killed.
 *   holdbench -p PROXY_HOST:PORT -t TARGET_HOST:PORT -n N [-P PID]
 *       opens N connections through the SOCKS5 proxy (no authentication,
 *       CONNECT to the target's IP), one after the other, does a 1-byte echo
 *       on each and holds them all; then prints
 *         held N open/s R rss_before_kib A rss_after_kib B per_conn_kib C
 *       (R: N over the time the N opens and echoes took; A and B: VmRSS of
 *       process PID before the first open and with all N held; C = (B-A)/N;
 *       without -P the rss fields are left out) and closes them.
 *
 * Every step has a timeout (TIMEOUT_S); any failure is one line on stderr
 * and exit status 1 (2 for a bad command line).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "socks5.h"

enum { TIMEOUT_S = 10, MAX_N = 1000000 };

static void die(int status, const char *fmt, ...)
        __attribute__((format(printf, 2, 3), noreturn));

static void die(int status, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "holdbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "1.2.3.4:80", "[::1]:80" or, with `port_only_ok`, "80" (127.0.0.1). */
static socklen_t parse_addr(const char *what, const char *s, bool port_only_ok,
                            struct sockaddr_storage *ss)
{
	char host[64] = "127.0.0.1";
	const char *colon = strrchr(s, ':');
	const char *port = colon ? colon + 1 : s;
	char *end;

	if (colon) {
		size_t len = (size_t)(colon - s);
		if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
			s++;
			len -= 2;
		}
		if (len == 0 || len >= sizeof(host))
			die(2, "%s: bad address '%s'", what, s);
		memcpy(host, s, len);
		host[len] = '\0';
	} else if (!port_only_ok) {
		die(2, "%s: '%s' is not HOST:PORT", what, s);
	}
	errno = 0;
	long p = strtol(port, &end, 10);
	if (errno || *port == '\0' || *end != '\0' || p < 0 || p > 65535)
		die(2, "%s: bad port '%s'", what, port);
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)p);
		return sizeof(*v4);
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)p);
		return sizeof(*v6);
	}
	die(2, "%s: '%s' is not an IP address", what, host);
}

/* Raises the descriptor limit to at least `want` if it can (root may raise the
 * hard limit too), else as far as the hard limit goes. */
static void raise_nofile(rlim_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	struct rlimit up = {want, want > rl.rlim_max ? want : rl.rlim_max};
	if (setrlimit(RLIMIT_NOFILE, &up) == 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* The echo target. */

static void echo_accept(int ep, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			die(1, "accept: %s", strerror(errno));
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			die(1, "epoll_ctl: %s", strerror(errno));
	}
}

/* Echoes what arrived (small messages: a full send buffer drops the rest). */
static void echo_data(int fd)
{
	char buf[4096];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL) >= 0)
		return;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close(fd); /* EOF or an error; close() removes it from the epoll set */
}

static void run_echo(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr("-e", spec, true, &ss);
	int one = 1;

	raise_nofile(1 << 20);
	int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (lfd < 0 || ep < 0)
		die(1, "socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &len) < 0)
		die(1, "listen on %s: %s", spec, strerror(errno));
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die(1, "epoll_ctl: %s", strerror(errno));
	printf("listening %u\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
	fflush(stdout);
	for (;;) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0 && errno != EINTR)
			die(1, "epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd == lfd)
				echo_accept(ep, lfd);
			else
				echo_data(evs[i].data.fd);
		}
	}
}

/* The client side. */

static struct sockaddr_storage proxy, target;
static socklen_t proxy_len;

/* Reads exactly len bytes (the socket has a receive timeout). */
static void read_full(int fd, uint8_t *buf, size_t len, long i, const char *what)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die(1, "connection %ld: %s: %s", i + 1, what,
			    n == 0            ? "closed by the proxy"
			    : errno == EAGAIN ? "timed out"
			                      : strerror(errno));
		got += (size_t)n;
	}
}

static void write_full(int fd, const uint8_t *buf, size_t len, long i, const char *what)
{
	if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
		die(1, "connection %ld: %s: %s", i + 1, what,
		    errno == EAGAIN ? "timed out" : strerror(errno));
}

/* Greeting, CONNECT, then a 1-byte echo. */
static void socks_connect(int fd, long i)
{
	uint8_t buf[SOCKS5_REPLY_MAX], method = 0;
	struct socks5_addr dst;
	struct socks5_request rep;
	size_t n = socks5_greeting_encode(buf, sizeof(buf), &method, 1);

	write_full(fd, buf, n, i, "greeting");
	read_full(fd, buf, 2, i, "method reply");
	if (buf[0] != 5 || buf[1] != 0)
		die(1,
		    "connection %ld: the proxy did not accept 'no authentication' "
		    "(method reply %u %u; over its connection limit?)",
		    i + 1, buf[0], buf[1]);
	socks5_addr_from_sockaddr(&dst, (struct sockaddr *)&target, sizeof(target));
	n = socks5_request_encode(buf, sizeof(buf), SOCKS5_CMD_CONNECT, &dst);
	write_full(fd, buf, n, i, "request");
	/* The header and the address's first byte, then exactly the rest. */
	read_full(fd, buf, 5, i, "reply");
	size_t len = 6 + (buf[3] == SOCKS5_ATYP_DOMAIN ? buf[4] + 1u
	                  : buf[3] == SOCKS5_ATYP_IPV6 ? 16u
	                                               : 4u);
	read_full(fd, buf + 5, len - 5, i, "reply");
	ssize_t r = socks5_reply_parse(buf, len, &rep);
	if (r < 0)
		die(1, "connection %ld: malformed reply", i + 1);
	if (rep.cmd != SOCKS5_REP_SUCCEEDED)
		die(1, "connection %ld: CONNECT refused: reply %u, %s", i + 1, rep.cmd,
		    socks5_rep_name(rep.cmd));
	buf[0] = (uint8_t)('a' + i % 26);
	write_full(fd, buf, 1, i, "echo");
	read_full(fd, buf + 1, 1, i, "echo");
	if (buf[1] != buf[0])
		die(1, "connection %ld: echo returned a different byte", i + 1);
}

static int open_one(long i)
{
	struct timeval tv = {.tv_sec = TIMEOUT_S};
	int one = 1;
	int fd = socket(proxy.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die(1, "connection %ld: socket: %s", i + 1, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* connect() too */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&proxy, proxy_len) < 0)
		die(1, "connection %ld: connect to the proxy: %s", i + 1,
		    errno == EINPROGRESS ? "timed out" : strerror(errno));
	socks_connect(fd, i);
	return fd;
}

/* VmRSS of pid in KiB; exits when it cannot be read. */
static long rss_kib(long pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		die(1, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	if (kib < 0)
		die(1, "%s: no VmRSS line", path);
	return kib;
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v < min || v > max)
		die(2, "%s: '%s' is not a number in %ld..%ld", opt, s, min, max);
	return v;
}

static void run_hold(long n, long pid)
{
	int *fds = calloc((size_t)n, sizeof(*fds));
	if (!fds)
		die(1, "out of memory");
	raise_nofile((rlim_t)n + 64);
	long before = pid ? rss_kib(pid) : 0;
	double start = now_s();
	for (long i = 0; i < n; i++)
		fds[i] = open_one(i);
	double took = now_s() - start;
	printf("held %ld open/s %.0f", n, took > 0 ? (double)n / took : 0.0);
	if (pid) {
		long after = rss_kib(pid);
		printf(" rss_before_kib %ld rss_after_kib %ld per_conn_kib %.1f", before,
		       after, (double)(after - before) / (double)n);
	}
	printf("\n");
	fflush(stdout);
	for (long i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
}

int main(int argc, char **argv)
{
	const char *echo = NULL, *p = NULL, *t = NULL;
	long n = 0, pid = 0;
	int opt;

	while ((opt = getopt(argc, argv, "e:p:t:n:P:")) != -1) {
		switch (opt) {
		case 'e':
			echo = optarg;
			break;
		case 'p':
			p = optarg;
			break;
		case 't':
			t = optarg;
			break;
		case 'n':
			n = parse_long("-n", optarg, 1, MAX_N);
			break;
		case 'P':
			pid = parse_long("-P", optarg, 1, 1L << 30);
			break;
		default:
			die(2,
			    "usage: holdbench -e [HOST:]PORT | -p HOST:PORT -t HOST:PORT "
			    "-n N [-P PID]");
		}
	}
	if (optind != argc)
		die(2, "unexpected argument '%s'", argv[optind]);
	if (echo) {
		if (p || t || n || pid)
			die(2, "-e takes no other option");
		run_echo(echo);
	}
	if (!p || !t || !n)
		die(2, "-p, -t and -n are required (or -e PORT)");
	proxy_len = parse_addr("-p", p, false, &proxy);
	parse_addr("-t", t, false, &target);
	run_hold(n, pid);
	return 0;
}
