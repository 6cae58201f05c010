/* SPDX-License-Identifier: MIT */
/*
 * preflood: pre-authentication floods against socksify-server, and the
 * clients that must still get through (tests/e2e/server_preauth.bats).
 *
 *   preflood flood -p PROXY -s SRC -n N [-m idle|half] [-r]
 *       opens N connections from address SRC, which send nothing (idle) or
 *       one byte, half a greeting (half); prints
 *         open N failed F ms T
 *       once every connect has finished, then holds them. With -r, each one
 *       the server closes is opened again at once. On SIGTERM prints
 *         held H closed C reopened R
 *       (H still open, C closed by the server) and exits 0.
 *   preflood probe -p PROXY -t TARGET [-s SRC] [-k K] [-u USER:PASS] [-w MS]
 *       K fresh clients (default 1) one after the other: greeting, wait for
 *       the method, (RFC 1929 with -u,) MS of silence (-w), CONNECT to
 *       TARGET, wait for the reply, 4 bytes echoed;
 *       prints "probe I ms X" for each (from before connect() to the echo)
 *       and "max_ms X".
 *   preflood echo -l ADDR:PORT
 *       a target that echoes what it can and drops the rest; prints
 *       "listening PORT" and runs until killed.
 *   preflood bulk -p PROXY -t TARGET -n N
 *       N relayed connections through PROXY to TARGET (an echo), each
 *       writing as fast as it can; prints "relaying N" once all are up and
 *       "closed N" when every one was closed (the proxy went away), then
 *       exits 0.
 *
 * Addresses are numeric IPv4 (HOST:PORT). Any failure: one line on stderr,
 * exit status 1 (2 for a bad command line).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { STEP_MS = 5000, CHUNK = 16384 };

static void die(int status, const char *fmt, ...)
        __attribute__((format(printf, 2, 3), noreturn));

static void die(int status, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "preflood: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static struct sockaddr_in parse_addr(const char *s, bool need_port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char host[64];
	const char *colon = strrchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	if (n >= sizeof(host) || (need_port && !colon))
		die(2, "bad address %s (HOST:PORT, numeric IPv4)", s);
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		die(2, "bad address %s (HOST:PORT, numeric IPv4)", s);
	if (colon)
		sin.sin_port = htons((uint16_t)atoi(colon + 1));
	return sin;
}

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* A non-blocking connect from src (port chosen at connect) to dst; -1 on failure. */
static int start_connect(const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (src) {
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) < 0) {
			close(fd);
			return -1;
		}
	}
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Waits up to STEP_MS for `events` on fd. */
static void wait_fd(int fd, short events, const char *what)
{
	struct pollfd p = {.fd = fd, .events = events};
	int n = poll(&p, 1, STEP_MS);
	if (n <= 0)
		die(1, "%s: %s", what, n == 0 ? "timed out" : strerror(errno));
}

static void send_all(int fd, const void *buf, size_t len, const char *what)
{
	wait_fd(fd, POLLOUT, what);
	if (send(fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
		die(1, "%s: send: %s", what, strerror(errno));
}

static void recv_exact(int fd, uint8_t *buf, size_t len, const char *what)
{
	for (size_t got = 0; got < len;) {
		wait_fd(fd, POLLIN, what);
		ssize_t n = recv(fd, buf + got, len - got, 0);
		if (n <= 0)
			die(1, "%s: %s", what,
			    n == 0 ? "closed by the proxy" : strerror(errno));
		got += (size_t)n;
	}
}

struct opts {
	struct sockaddr_in proxy, target, src, listen;
	bool have_src, reopen, half;
	int n, k, wait_ms;
	const char *user; /* USER:PASS, or NULL: no authentication */
};

/* RFC 1929 with o->user (USER:PASS). */
static void socks_auth(int fd, const struct opts *o)
{
	uint8_t msg[3 + 2 * 255], buf[2];
	const char *colon = strchr(o->user, ':');
	size_t ulen = colon ? (size_t)(colon - o->user) : 0,
	       plen = colon ? strlen(colon + 1) : 0;
	if (!colon || ulen > 255 || plen > 255)
		die(2, "-u USER:PASS");
	msg[0] = 1;
	msg[1] = (uint8_t)ulen;
	memcpy(msg + 2, o->user, ulen);
	msg[2 + ulen] = (uint8_t)plen;
	memcpy(msg + 3 + ulen, colon + 1, plen);
	send_all(fd, msg, 3 + ulen + plen, "authentication");
	recv_exact(fd, buf, 2, "authentication reply");
	if (buf[1] != 0)
		die(1, "authentication refused");
}

/* The SOCKS5 handshake for CONNECT to an IPv4 target, one message at a
 * time, with -w MS of silence before the request. */
static void socks_connect(int fd, const struct opts *o)
{
	uint8_t greeting[] = {5, 1, o->user ? 2 : 0};
	uint8_t req[10] = {5, 1, 0, 1}, buf[10];
	memcpy(req + 4, &o->target.sin_addr, 4);
	memcpy(req + 8, &o->target.sin_port, 2);
	send_all(fd, greeting, sizeof(greeting), "greeting");
	recv_exact(fd, buf, 2, "method reply");
	if (buf[0] != 5 || buf[1] != greeting[2])
		die(1, "method reply %02x %02x, not 05 %02x", buf[0], buf[1],
		    greeting[2]);
	if (o->user)
		socks_auth(fd, o);
	if (o->wait_ms > 0)
		usleep((useconds_t)o->wait_ms * 1000);
	send_all(fd, req, sizeof(req), "request");
	recv_exact(fd, buf, 10, "reply");
	if (buf[1] != 0)
		die(1, "reply %u to CONNECT", buf[1]);
}

static int cmd_probe(const struct opts *o)
{
	double max = 0;
	for (int i = 0; i < o->k; i++) {
		uint8_t echo[4];
		double t0 = now_ms();
		int fd = start_connect(o->have_src ? &o->src : NULL, &o->proxy);
		if (fd < 0)
			die(1, "connect: %s", strerror(errno));
		socks_connect(fd, o);
		send_all(fd, "ping", 4, "data");
		recv_exact(fd, echo, 4, "echo");
		if (memcmp(echo, "ping", 4) != 0)
			die(1, "echo differs");
		double ms = now_ms() - t0;
		close(fd);
		printf("probe %d ms %.1f\n", i, ms);
		max = ms > max ? ms : max;
	}
	printf("max_ms %.1f\n", max);
	return 0;
}

/* flood: one slot per connection; the epoll data is its index. */
struct flood {
	const struct opts *o;
	int ep;
	int *fds;
	bool *sent; /* half: the byte went out */
	long closed, reopened;
};

static bool flood_open(struct flood *f, int i)
{
	f->fds[i] = start_connect(&f->o->src, &f->o->proxy);
	f->sent[i] = false;
	if (f->fds[i] < 0)
		return false;
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
	                         .data.u32 = (uint32_t)i};
	epoll_ctl(f->ep, EPOLL_CTL_ADD, f->fds[i], &ev);
	return true;
}

/* One event on connection i: 1 when its connect just finished (even if the
 * server reset it already), -1 when it failed, 0 otherwise. */
static int flood_event(struct flood *f, int i, uint32_t events)
{
	int fd = f->fds[i];
	uint8_t sink[64];
	if (fd < 0)
		return 0;
	if (!(events & (EPOLLERR | EPOLLHUP | EPOLLIN | EPOLLRDHUP))) {
		/* connected: send half a greeting, then watch for the close only */
		struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
		                         .data.u32 = (uint32_t)i};
		if (f->o->half && !f->sent[i])
			send(fd, "\x05", 1, MSG_NOSIGNAL);
		f->sent[i] = true;
		epoll_ctl(f->ep, EPOLL_CTL_MOD, fd, &ev);
		return 1;
	}
	if ((events & EPOLLIN) && !(events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) &&
	    recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		return 0;
	/* A reset after the connect finished is a connection made, then closed. */
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	int r = f->sent[i] ? 0 : err == ECONNRESET || err == EPIPE ? 1 : -1;
	close(fd);
	f->fds[i] = -1;
	f->closed++;
	if (f->o->reopen && flood_open(f, i))
		f->reopened++;
	return r;
}

static int cmd_flood(const struct opts *o)
{
	struct flood f = {.o = o, .ep = epoll_create1(EPOLL_CLOEXEC)};
	struct epoll_event evs[256];
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	struct epoll_event sev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
	epoll_ctl(f.ep, EPOLL_CTL_ADD, sfd, &sev);
	f.fds = calloc((size_t)o->n, sizeof(int));
	f.sent = calloc((size_t)o->n, sizeof(bool));
	if (!f.fds || !f.sent)
		die(1, "out of memory");
	double t0 = now_ms();
	int pending = 0, failed = 0;
	for (int i = 0; i < o->n; i++)
		flood_open(&f, i) ? pending++ : failed++;
	bool reported = false;
	for (;;) {
		if (!reported && (pending <= 0 || now_ms() - t0 > 4 * STEP_MS)) {
			printf("open %d failed %d ms %.0f\n",
			       o->n - failed - (pending > 0 ? pending : 0),
			       failed + (pending > 0 ? pending : 0), now_ms() - t0);
			fflush(stdout);
			reported = true;
		}
		int n = epoll_wait(f.ep, evs, 256, reported ? -1 : 100);
		for (int e = 0; e < n; e++) {
			if (evs[e].data.u32 == UINT32_MAX) {
				long held = 0;
				for (int i = 0; i < o->n; i++)
					held += f.fds[i] >= 0;
				printf("held %ld closed %ld reopened %ld\n", held,
				       f.closed, f.reopened);
				fflush(stdout);
				free(f.fds);
				free(f.sent);
				return 0;
			}
			int r = flood_event(&f, (int)evs[e].data.u32, evs[e].events);
			if (!reported && r != 0) {
				pending--;
				failed += r < 0;
			}
		}
	}
}

static int cmd_echo(const struct opts *o)
{
	struct sockaddr_in a = o->listen;
	socklen_t len = sizeof(a);
	int one = 1, ep = epoll_create1(EPOLL_CLOEXEC);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &len) < 0)
		die(1, "echo: %s", strerror(errno));
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("listening %u\n", ntohs(a.sin_port));
	fflush(stdout);
	static char buf[CHUNK];
	for (;;) {
		struct epoll_event evs[128];
		int n = epoll_wait(ep, evs, 128, -1);
		for (int e = 0; e < n; e++) {
			int fd = evs[e].data.fd;
			if (fd == lfd) {
				int c = accept4(lfd, NULL, NULL,
				                SOCK_NONBLOCK | SOCK_CLOEXEC);
				struct epoll_event cev = {.events = EPOLLIN,
				                          .data.fd = c};
				if (c >= 0)
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
				continue;
			}
			ssize_t r = recv(fd, buf, sizeof(buf), 0);
			if (r > 0)
				send(fd, buf, (size_t)r, MSG_NOSIGNAL | MSG_DONTWAIT);
			else if (r == 0 || errno != EAGAIN)
				close(fd);
		}
	}
}

static int cmd_bulk(const struct opts *o)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), open = o->n;
	static char buf[CHUNK];
	for (int i = 0; i < o->n; i++) {
		int fd = start_connect(NULL, &o->proxy);
		if (fd < 0)
			die(1, "connect: %s", strerror(errno));
		socks_connect(fd, o);
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP,
		                         .data.fd = fd};
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
	printf("relaying %d\n", o->n);
	fflush(stdout);
	while (open > 0) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, 30000);
		if (n <= 0)
			die(1, "bulk: %d connections still open after 30 s of silence",
			    open);
		for (int e = 0; e < n; e++) {
			int fd = evs[e].data.fd;
			ssize_t r = 1;
			if (evs[e].events & EPOLLIN)
				r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r > 0 && (evs[e].events & EPOLLOUT) &&
			    send(fd, buf, sizeof(buf), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
			    errno != EAGAIN)
				r = -1;
			if (r == 0 || (r < 0 && errno != EAGAIN) ||
			    (evs[e].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))) {
				close(fd);
				open--;
			}
		}
	}
	printf("closed %d\n", o->n);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {.n = 1, .k = 1};
	int opt;
	if (argc < 2)
		die(2, "usage: preflood flood|probe|echo|bulk OPTIONS (see the source)");
	const char *cmd = argv[1];
	optind = 2;
	while ((opt = getopt(argc, argv, "p:t:s:n:k:m:l:ru:w:")) != -1) {
		switch (opt) {
		case 'p':
			o.proxy = parse_addr(optarg, true);
			break;
		case 't':
			o.target = parse_addr(optarg, true);
			break;
		case 'l':
			o.listen = parse_addr(optarg, true);
			break;
		case 's':
			o.src = parse_addr(optarg, false);
			o.have_src = true;
			break;
		case 'n':
			o.n = atoi(optarg);
			break;
		case 'k':
			o.k = atoi(optarg);
			break;
		case 'm':
			o.half = strcmp(optarg, "half") == 0;
			break;
		case 'u':
			o.user = optarg;
			break;
		case 'w':
			o.wait_ms = atoi(optarg);
			break;
		case 'r':
			o.reopen = true;
			break;
		default:
			die(2, "bad option");
		}
	}
	if (o.n < 1 || o.k < 1)
		die(2, "-n and -k must be at least 1");
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(cmd, "probe") == 0)
		return cmd_probe(&o);
	if (strcmp(cmd, "flood") == 0 && o.have_src)
		return cmd_flood(&o);
	if (strcmp(cmd, "echo") == 0)
		return cmd_echo(&o);
	if (strcmp(cmd, "bulk") == 0)
		return cmd_bulk(&o);
	die(2, "unknown command %s (flood needs -s SRC)", cmd);
}
