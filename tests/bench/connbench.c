/* SPDX-License-Identifier: MIT */
/*
 * connbench: measures a SOCKS5 server against direct connections in one run.
 *
 *   connbench -p PROXY_HOST:PORT [-s SECONDS] [-r ROUNDS] [-T THREADS]
 *             [-u USER:PASS] [-n]
 *   connbench [-s SECONDS] [-r ROUNDS] [-T THREADS] [-n] [-N]
 *             (plain connections only: run it under socksify to measure
 *             the shim)
 *   connbench -t TARGET_IP:PORT [-p PROXY_HOST:PORT] [-s SECONDS] [-r ROUNDS]
 *             [-T THREADS] [-N]
 *   connbench -e IP:PORT                    (a target only)
 * -N connects non-blocking and waits with poll() (an event loop's way: under
 * socksify, the handshake in the background). -T runs THREADS clients at
 * once, each sequential; the figure is their sum.
 *
 * -e is a target for other namespaces: it listens on IP:PORT (not
 * 127.0.0.1), answers every connection's first byte with one byte and
 * closes, and counts the source addresses it served (tests/bench/peers.h: a
 * TCP connection to 127.0.0.1:PORT reads and resets the counts). It prints
 * "listening" when ready. -t measures against such a target (connections/s
 * only, no bulk), through the proxy with -p (no direct rounds: the caller
 * may not reach the target), and prints "round R: conn/s X conns N" per
 * round.
 *
 * Without -t it starts its own target on 127.0.0.1 (a thread that answers every
 * connection's first byte with one byte, then closes; and a sink for bulk
 * data) and measures, alternating direct and proxied rounds:
 *   - connections per second: connect, SOCKS5 handshake (proxied only),
 *     write 1 byte, read 1 byte, read EOF, close;
 *   - bulk throughput of one stream (256 MiB written, counted at the target).
 * It prints one line per figure and the proxied/direct ratio.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"
#include "socks5.h"

static struct sockaddr_in proxy, echo_addr, sink_addr;
static const char *auth_user, *auth_pass;
static bool nonblocking;
static int threads = 1;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
	fprintf(stderr, "connbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int listen_any(struct sockaddr_in *out)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	socklen_t len = sizeof(*out);
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)out, sizeof(*out)) < 0 || listen(fd, 512) < 0 ||
	    getsockname(fd, (struct sockaddr *)out, &len) < 0)
		fail("target listen");
	return fd;
}

/* The target's side of one connection: 1 byte back, then close (first, so
 * that TIME_WAIT stays at the target). */
static void echo_once(int fd)
{
	char b;
	if (read(fd, &b, 1) == 1 && write(fd, &b, 1) != 1)
		perror("connbench: echo");
	close(fd);
}

static void *echo_thread(void *arg)
{
	int lfd = (int)(long)arg;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd >= 0)
			echo_once(fd);
	}
	return NULL;
}

/* -e: the same, counting every connection's source address. */
static void *counting_echo_thread(void *arg)
{
	int lfd = (int)(long)arg;
	struct timeval tv = {.tv_sec = 5};
	for (;;) {
		struct sockaddr_storage from;
		socklen_t len = sizeof(from);
		int fd = accept(lfd, (struct sockaddr *)&from, &len);
		if (fd < 0)
			continue;
		peers_count((struct sockaddr *)&from);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		echo_once(fd);
	}
	return NULL;
}

static int run_target(const struct sockaddr_in *at)
{
	enum { ACCEPTERS = 8 };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	pthread_t t;
	if (at->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
		fprintf(stderr,
		        "connbench: -e: not 127.0.0.1 (the counts are served there)\n");
		exit(2);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)at, sizeof(*at)) < 0 ||
	    listen(fd, 4096) < 0)
		fail("target listen");
	peers_serve_stats(ntohs(at->sin_port));
	for (int i = 1; i < ACCEPTERS; i++)
		pthread_create(&t, NULL, counting_echo_thread, (void *)(long)fd);
	printf("listening\n");
	fflush(stdout);
	counting_echo_thread((void *)(long)fd);
	return 0;
}

static unsigned long long sink_bytes;

static void *sink_thread(void *arg)
{
	int lfd = (int)(long)arg;
	static char buf[1 << 16];
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		ssize_t n;
		unsigned long long total = 0;
		if (fd < 0)
			continue;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			total += (unsigned long long)n;
		__atomic_store_n(&sink_bytes, total, __ATOMIC_SEQ_CST);
		close(fd);
	}
	return NULL;
}

static void read_exact(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n <= 0)
			fail("short read from proxy");
		got += (size_t)n;
	}
}

/* Greeting, optional RFC 1929, CONNECT; each answer read in full. */
static void socks5_connect(int fd, const struct sockaddr_in *dst)
{
	uint8_t buf[SOCKS5_USERPASS_MAX], method = auth_user ? SOCKS5_METHOD_USERPASS : 0;
	struct socks5_addr a;
	struct socks5_request rep;
	size_t n = socks5_greeting_encode(buf, sizeof(buf), &method, 1);

	if (write(fd, buf, n) != (ssize_t)n)
		fail("greeting");
	read_exact(fd, buf, 2);
	if (buf[1] != method)
		fail("method refused");
	if (auth_user) {
		n = socks5_userpass_encode(buf, sizeof(buf), auth_user, strlen(auth_user),
		                           auth_pass, strlen(auth_pass));
		if (write(fd, buf, n) != (ssize_t)n)
			fail("auth");
		read_exact(fd, buf, 2);
		if (buf[1] != 0)
			fail("auth refused");
	}
	socks5_addr_from_sockaddr(&a, (const struct sockaddr *)dst, sizeof(*dst));
	n = socks5_request_encode(buf, sizeof(buf), SOCKS5_CMD_CONNECT, &a);
	if (write(fd, buf, n) != (ssize_t)n)
		fail("request");
	size_t have = 0;
	ssize_t r;
	do {
		read_exact(fd, buf + have, 1);
		have++;
		r = socks5_reply_parse(buf, have, &rep);
	} while (r == SOCKS5_PARTIAL);
	if (r < 0 || rep.cmd != SOCKS5_REP_SUCCEEDED) {
		errno = EPROTO;
		fail("CONNECT refused");
	}
}

static int open_conn(const struct sockaddr_in *dst, bool via_proxy)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	const struct sockaddr_in *to = via_proxy ? &proxy : dst;
	if (nonblocking && !via_proxy) {
		fcntl(fd, F_SETFL, O_NONBLOCK);
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int err = 0;
		socklen_t len = sizeof(err);
		if ((connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0 &&
		     errno != EINPROGRESS) ||
		    poll(&p, 1, 10000) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
			fail("non-blocking connect");
		fcntl(fd, F_SETFL, 0);
		return fd;
	}
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0)
		fail("connect");
	if (via_proxy)
		socks5_connect(fd, dst);
	return fd;
}

struct worker {
	bool via_proxy;
	double end;
	unsigned long count;
	pthread_t thread;
};

/* Connections one after the other until the deadline: connect (and the
 * handshake), 1 byte each way, the target's EOF, close. */
static void *conn_worker(void *arg)
{
	struct worker *w = arg;
	while (now_s() < w->end) {
		int fd = open_conn(&echo_addr, w->via_proxy);
		char b = 'x';
		if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1 || read(fd, &b, 1) != 0)
			fail("echo");
		close(fd);
		w->count++;
	}
	return NULL;
}

/* Connections per second of `threads` workers together; the total made in
 * *made when it is not NULL. */
static double conn_rate(bool via_proxy, double seconds, unsigned long *made)
{
	struct worker w[64];
	unsigned long count = 0;
	double start = now_s();
	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){.via_proxy = via_proxy, .end = start + seconds};
		if (threads > 1 && pthread_create(&w[i].thread, NULL, conn_worker, &w[i]))
			fail("pthread_create");
	}
	if (threads == 1)
		conn_worker(&w[0]);
	for (int i = 0; i < threads; i++) {
		if (threads > 1)
			pthread_join(w[i].thread, NULL);
		count += w[i].count;
	}
	if (made)
		*made = count;
	return (double)count / (now_s() - start);
}

static double bulk_gbit(bool via_proxy)
{
	static char buf[1 << 16];
	const unsigned long long total = 256ull << 20;
	__atomic_store_n(&sink_bytes, 0, __ATOMIC_SEQ_CST);
	double start = now_s();
	int fd = open_conn(&sink_addr, via_proxy);
	for (unsigned long long sent = 0; sent < total;) {
		ssize_t n = write(fd, buf, sizeof(buf));
		if (n <= 0)
			fail("bulk write");
		sent += (unsigned long long)n;
	}
	shutdown(fd, SHUT_WR);
	char b;
	while (read(fd, &b, 1) > 0)
		;
	close(fd);
	while (__atomic_load_n(&sink_bytes, __ATOMIC_SEQ_CST) != total)
		usleep(100);
	return (double)total * 8 / (now_s() - start) / 1e9;
}

static void parse_hostport(char opt, const char *s, struct sockaddr_in *out)
{
	if (peers_parse_hostport(s, out) < 0) {
		fprintf(stderr, "connbench: -%c %s: IPV4:PORT expected\n", opt, s);
		exit(2);
	}
}

static double parse_number(char opt, const char *s, double min, double max)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= min && v <= max)) {
		fprintf(stderr, "connbench: -%c %s: a number from %g to %g expected\n",
		        opt, s, min, max);
		exit(2);
	}
	return v;
}

/* -t: against an external target, through the proxy when -p was given. */
static int run_against(double seconds, int rounds)
{
	bool via_proxy = proxy.sin_family == AF_INET;
	double best = 0;
	for (int r = 0; r < rounds; r++) {
		unsigned long made;
		double rate = conn_rate(via_proxy, seconds, &made);
		printf("round %d: conn/s %.0f conns %lu\n", r + 1, rate, made);
		fflush(stdout);
		best = rate > best ? rate : best;
	}
	printf("best conn/s: %.0f\n", best);
	return 0;
}

/* No -p: plain connections to our own target (run under socksify). */
static int run_plain(double seconds, int rounds, bool bulk)
{
	double best = 0, gb = 0;
	for (int r = 0; r < rounds; r++) {
		double d = conn_rate(false, seconds, NULL);
		double bd = bulk ? bulk_gbit(false) : 0;
		printf("round %d: conn/s %.0f, bulk Gbit/s %.2f\n", r + 1, d, bd);
		best = d > best ? d : best;
		gb = bd > gb ? bd : gb;
		fflush(stdout);
	}
	printf("best conn/s: %.0f\nbest bulk Gbit/s: %.2f\n", best, gb);
	return 0;
}

/* -p: direct and proxied rounds in turn, to our own target. */
static int run_proxied(double seconds, int rounds, bool bulk)
{
	double best_direct = 0, best_proxy = 0, gb_direct = 0, gb_proxy = 0;
	for (int r = 0; r < rounds; r++) {
		double d = conn_rate(false, seconds, NULL),
		       p = conn_rate(true, seconds, NULL);
		printf("round %d: conn/s direct %.0f, via proxy %.0f\n", r + 1, d, p);
		best_direct = d > best_direct ? d : best_direct;
		best_proxy = p > best_proxy ? p : best_proxy;
		if (bulk) {
			double bd = bulk_gbit(false), bp = bulk_gbit(true);
			printf("round %d: bulk Gbit/s direct %.2f, via proxy %.2f\n",
			       r + 1, bd, bp);
			gb_direct = bd > gb_direct ? bd : gb_direct;
			gb_proxy = bp > gb_proxy ? bp : gb_proxy;
		}
		fflush(stdout);
	}
	printf("best conn/s: direct %.0f, via proxy %.0f, ratio %.2f\n", best_direct,
	       best_proxy, best_proxy / best_direct);
	if (bulk)
		printf("best bulk Gbit/s: direct %.2f, via proxy %.2f, ratio %.2f\n",
		       gb_direct, gb_proxy, gb_proxy / gb_direct);
	return 0;
}

static __attribute__((noreturn)) void usage(void)
{
	fprintf(stderr,
	        "usage: connbench [-p HOST:PORT] [-t IP:PORT] [-s SEC] [-r ROUNDS] "
	        "[-T THREADS] [-u U:P] [-n] [-N]\n"
	        "       connbench -e IP:PORT\n");
	exit(2);
}

/* size: getopt switch */
int main(int argc, char **argv)
{
	double seconds = 2;
	int rounds = 3, opt;
	bool bulk = true, external = false;
	struct sockaddr_in target_at = {0};
	pthread_t t;

	while ((opt = getopt(argc, argv, "p:s:r:u:nNT:t:e:")) != -1) {
		switch (opt) {
		case 'p':
			parse_hostport('p', optarg, &proxy);
			break;
		case 't':
			parse_hostport('t', optarg, &echo_addr);
			external = true;
			break;
		case 'e':
			parse_hostport('e', optarg, &target_at);
			break;
		case 's':
			seconds = parse_number('s', optarg, 0.01, 3600);
			break;
		case 'r':
			rounds = (int)parse_number('r', optarg, 1, 1000);
			break;
		case 'T':
			threads = (int)parse_number('T', optarg, 1, 64);
			break;
		case 'u': {
			char *colon = strchr(optarg, ':');
			if (!colon) {
				fprintf(stderr, "connbench: -u USER:PASS expected\n");
				return 2;
			}
			*colon = '\0';
			auth_user = optarg;
			auth_pass = colon + 1;
			break;
		}
		case 'n':
			bulk = false;
			break;
		case 'N':
			nonblocking = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (target_at.sin_family == AF_INET)
		return run_target(&target_at);
	if (external)
		return run_against(seconds, rounds);
	pthread_create(&t, NULL, echo_thread, (void *)(long)listen_any(&echo_addr));
	pthread_create(&t, NULL, sink_thread, (void *)(long)listen_any(&sink_addr));
	if (proxy.sin_family != AF_INET)
		return run_plain(seconds, rounds, bulk);
	return run_proxied(seconds, rounds, bulk);
}
