/* SPDX-License-Identifier: MIT */
/*
 * udpbench: UDP round trips per second (64-byte ping-pong) direct and
 * through a SOCKS5 server's UDP ASSOCIATE, in one run.
 *
 *   udpbench -p PROXY_HOST:PORT [-s SECONDS] [-r ROUNDS]
 *   udpbench -e                              (a UDP echo on 127.0.0.1 only)
 *   udpbench -t ECHO_HOST:PORT [-s SECONDS] [-r ROUNDS]
 *   udpbench -p PROXY_HOST:PORT -t ECHO_IP:PORT [-s SECONDS] [-r ROUNDS]
 *   udpbench -E IP:PORT                      (a counting echo, see below)
 *
 * With -p it runs its own UDP echo on 127.0.0.1, and speaks SOCKS5 itself
 * (the datagram header of RFC 1928 section 7 around every payload), so the
 * figure is the server's cost without any socksifier. Rounds alternate
 * direct and proxied; a lost datagram fails the run (loopback loses none).
 *
 * -e prints "port N" and echoes until killed; -t is a plain UDP client of
 * such an echo: run it directly and under socksify (the echo outside) to
 * see what the shim costs. It prints the best rate and "datagrams N", the
 * round trips of all rounds. With -p as well, it speaks SOCKS5 to the proxy
 * and measures proxied rounds only (the caller may not reach the echo).
 *
 * -E is an echo for other namespaces: bound to IP:PORT (not 127.0.0.1), it
 * counts every datagram's source address (tests/bench/peers.h: a TCP
 * connection to 127.0.0.1:PORT reads and resets the counts) and prints
 * "listening" when ready.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

enum { PAYLOAD = 64 };

static struct sockaddr_in proxy, echo_addr;
static bool counting;
static unsigned long datagrams;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
	fprintf(stderr, "udpbench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void *echo_thread(void *arg)
{
	int fd = (int)(long)arg;
	uint8_t buf[2048];
	for (;;) {
		struct sockaddr_storage from;
		socklen_t len = sizeof(from);
		ssize_t n =
		        recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
		if (n < 0)
			continue;
		if (counting)
			peers_count((struct sockaddr *)&from);
		sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
	}
	return NULL;
}

static void read_exact(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n <= 0)
			fail("short read from the proxy");
		got += (size_t)n;
	}
}

/* UDP ASSOCIATE on a new control connection; fills the relay's address. */
static int associate(struct sockaddr_in *relay)
{
	uint8_t buf[SOCKS5_REPLY_MAX], method = SOCKS5_METHOD_NONE;
	struct socks5_addr any = {.atyp = SOCKS5_ATYP_IPV4};
	struct socks5_request rep;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (connect(fd, (struct sockaddr *)&proxy, sizeof(proxy)) < 0)
		fail("connect to the proxy");
	size_t n = socks5_greeting_encode(buf, sizeof(buf), &method, 1);
	if (write(fd, buf, n) != (ssize_t)n)
		fail("greeting");
	read_exact(fd, buf, 2);
	n = socks5_request_encode(buf, sizeof(buf), SOCKS5_CMD_UDP_ASSOCIATE, &any);
	if (write(fd, buf, n) != (ssize_t)n)
		fail("request");
	read_exact(fd, buf,
	           10); /* an IPv4 reply: the only kind a 127.0.0.1 client gets */
	if (socks5_reply_parse(buf, 10, &rep) != 10 || rep.cmd != 0) {
		errno = EPROTO;
		fail("UDP ASSOCIATE refused");
	}
	struct sockaddr_storage ss;
	socks5_addr_to_sockaddr(&rep.addr, &ss);
	memcpy(relay, &ss, sizeof(*relay));
	if (relay->sin_addr.s_addr == 0)
		relay->sin_addr = proxy.sin_addr;
	return fd;
}

static double round_trips(bool via_proxy, double seconds)
{
	uint8_t out[SOCKS5_UDP_HEADER_MAX + PAYLOAD], in[2048];
	struct sockaddr_in to = echo_addr;
	size_t hl = 0;
	int ctl = -1, fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct timeval tv = {.tv_sec = 2};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (via_proxy) {
		struct socks5_addr dst;
		ctl = associate(&to);
		socks5_addr_from_sockaddr(&dst, (struct sockaddr *)&echo_addr,
		                          sizeof(echo_addr));
		hl = socks5_udp_header_encode(out, sizeof(out), 0, &dst);
	}
	memset(out + hl, 'x', PAYLOAD);
	unsigned long count = 0;
	double start = now_s(), end = start + seconds;
	while (now_s() < end) {
		if (sendto(fd, out, hl + PAYLOAD, 0, (struct sockaddr *)&to, sizeof(to)) <
		    0)
			fail("sendto");
		ssize_t n = recv(fd, in, sizeof(in), 0);
		if (n != (ssize_t)(hl + PAYLOAD))
			fail("lost or short datagram");
		count++;
	}
	datagrams += count;
	double rate = (double)count / (now_s() - start);
	close(fd);
	if (ctl >= 0)
		close(ctl);
	return rate;
}

static void parse_hostport(char opt, const char *s, struct sockaddr_in *out)
{
	if (peers_parse_hostport(s, out) < 0) {
		fprintf(stderr, "udpbench: -%c %s: IPV4:PORT expected\n", opt, s);
		exit(2);
	}
}

static double parse_number(char opt, const char *s, double min, double max)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= min && v <= max)) {
		fprintf(stderr, "udpbench: -%c %s: a number from %g to %g expected\n",
		        opt, s, min, max);
		exit(2);
	}
	return v;
}

/* -E: the counting echo, bound to AT. */
static int run_counting_echo(const struct sockaddr_in *at)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (at->sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
		fprintf(stderr,
		        "udpbench: -E: not 127.0.0.1 (the counts are served there)\n");
		return 2;
	}
	if (bind(fd, (const struct sockaddr *)at, sizeof(*at)) < 0)
		fail("echo socket");
	counting = true;
	peers_serve_stats(ntohs(at->sin_port));
	printf("listening\n");
	fflush(stdout);
	echo_thread((void *)(long)fd);
	return 0;
}

/* -t: rounds to an echo elsewhere, through the proxy with -p. */
static int run_against(bool via_proxy, double seconds, int rounds)
{
	double best = 0;
	for (int r = 0; r < rounds; r++) {
		double d = round_trips(via_proxy, seconds);
		best = d > best ? d : best;
	}
	printf("best round trips/s: %.0f\ndatagrams %lu\n", best, datagrams);
	return 0;
}

/* -p alone: our own echo on 127.0.0.1, direct and proxied rounds in turn. */
static int run_both(double seconds, int rounds)
{
	int efd = socket(AF_INET, SOCK_DGRAM, 0);
	socklen_t len = sizeof(echo_addr);
	pthread_t t;
	echo_addr.sin_family = AF_INET;
	echo_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(efd, (struct sockaddr *)&echo_addr, sizeof(echo_addr)) < 0 ||
	    getsockname(efd, (struct sockaddr *)&echo_addr, &len) < 0)
		fail("echo socket");
	pthread_create(&t, NULL, echo_thread, (void *)(long)efd);
	double best_d = 0, best_p = 0;
	for (int r = 0; r < rounds; r++) {
		double d = round_trips(false, seconds), p = round_trips(true, seconds);
		printf("round %d: round trips/s direct %.0f, via proxy %.0f\n", r + 1, d,
		       p);
		fflush(stdout);
		best_d = d > best_d ? d : best_d;
		best_p = p > best_p ? p : best_p;
	}
	printf("best round trips/s: direct %.0f, via proxy %.0f, ratio %.2f\n", best_d,
	       best_p, best_p / best_d);
	return 0;
}

/* -e: a UDP echo on 127.0.0.1, any port. */
static int run_echo(void)
{
	int efd = socket(AF_INET, SOCK_DGRAM, 0);
	socklen_t len = sizeof(echo_addr);
	echo_addr.sin_family = AF_INET;
	echo_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(efd, (struct sockaddr *)&echo_addr, sizeof(echo_addr)) < 0 ||
	    getsockname(efd, (struct sockaddr *)&echo_addr, &len) < 0)
		fail("echo socket");
	printf("port %u\n", ntohs(echo_addr.sin_port));
	fflush(stdout);
	echo_thread((void *)(long)efd);
	return 0;
}

/* size: getopt switch */
int main(int argc, char **argv)
{
	double seconds = 2;
	int rounds = 3, opt;
	bool echo_only = false, external = false;
	struct sockaddr_in counting_at = {0};

	while ((opt = getopt(argc, argv, "p:s:r:et:E:")) != -1) {
		switch (opt) {
		case 'e':
			echo_only = true;
			break;
		case 'E':
			parse_hostport('E', optarg, &counting_at);
			break;
		case 't':
			parse_hostport('t', optarg, &echo_addr);
			external = true;
			break;
		case 'p':
			parse_hostport('p', optarg, &proxy);
			break;
		case 's':
			seconds = parse_number('s', optarg, 0.01, 3600);
			break;
		case 'r':
			rounds = (int)parse_number('r', optarg, 1, 1000);
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	if (counting_at.sin_family == AF_INET)
		return run_counting_echo(&counting_at);
	if (echo_only)
		return run_echo();
	if (external)
		return run_against(proxy.sin_family == AF_INET, seconds, rounds);
	if (proxy.sin_family == AF_INET)
		return run_both(seconds, rounds);
usage:
	fprintf(stderr,
	        "usage: udpbench -p IPV4:PORT [-s SECONDS] [-r ROUNDS]\n"
	        "       udpbench -e\n"
	        "       udpbench -E IPV4:PORT\n"
	        "       udpbench [-p IPV4:PORT] -t IPV4:PORT [-s SECONDS] [-r ROUNDS]\n");
	return 2;
}
