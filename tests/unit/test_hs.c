/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the SOCKS5 client's state machine (tcp_hs_* in shim/tcp_hs.c),
 * printed as TAP; no root. The test calls tcp_hs_step by hand and plays the
 * proxy itself, in the same thread, on the other end of a non-blocking
 * socketpair: it checks what the client sent, then answers a byte at a time
 * with a step after each byte. A step that blocked would wait for a byte that
 * only this thread can send, so it would never return (the alarm ends the
 * run); each case also checks that no step took more than STEP_MAX_US.
 *
 * Each step on a part of an answer must ask for POLLIN, the client must send
 * each message in its turn and nothing more, the credentials must be gone
 * from the machine once sent (and after tcp_hs_end), a step after the end
 * must say the same again, and the bytes after a success reply must stay in
 * the socket. Cases: success, failure replies (each to its errno), pipelined
 * and not, with and without RFC 1929; no acceptable method, credentials
 * refused, a malformed answer, a hang-up; the socket's buffer full (POLLOUT);
 * edge-triggered driving (an answer there already is read, not waited for).
 * Last, tcp_hs_start on TCP loopback: a port where nothing listens gives
 * ECONNREFUSED through step, and a listener a whole exchange.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "monotime.h"
#include "policy.h"
#include "proxies.h"
#include "shim_support.h"
#include "socks5_script.h"
#include "tap.h"
#include "tcp.h"

/* A step is a few system calls: microseconds, a few milliseconds under valgrind
 * when it formats the first log line. One that waited would wait for good. */
enum { STEP_MAX_US = 10000 };

/* The bytes of a string literal (without its NUL), and their count. */
#define BYTES(lit) (lit), sizeof(lit) - 1

/* One turn: what the client must have sent (maybe nothing), and the answer. */
struct turn {
	const char *want;
	size_t want_len;
	const char *answer;
	size_t answer_len;
};

struct hs_case {
	const char *what;
	bool auth, pipeline;
	struct turn turns[5];
	bool hang_up;  /* after the last answer */
	int rc;        /* what the last step returns */
	uint16_t port; /* the BND port of a success */
	bool chain;    /* chain = strict through a second proxy, hop2.test:1081 */
};

/* A machine under test, its socket and the proxy's end. */
struct run {
	struct tcp_hs h;
	int client, proxy;
	long long slowest_us;
	char why[200]; /* empty while all went as the case expects */
};

static int step(struct run *r)
{
	long long t0 = monotime_us();
	int rc = tcp_hs_step(&r->h);
	long long us = monotime_us() - t0;

	if (us > r->slowest_us)
		r->slowest_us = us;
	return rc;
}

static void nonblocking_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0 ||
	    fcntl(sv[1], F_SETFL, O_NONBLOCK) < 0)
		abort();
}

/* The password is in the machine's buffers. */
static bool has_secret(const struct run *r)
{
	return memmem(r->h.out, sizeof(r->h.out), "secret", 6) ||
	       memmem(r->h.in, sizeof(r->h.in), "secret", 6);
}

/* The client has sent want, no more and no less, by now. */
static void check_sent(struct run *r, const struct turn *t, size_t i)
{
	uint8_t got[1100];
	ssize_t n = recv(r->proxy, got, sizeof(got), 0);

	if (n < 0 && errno == EAGAIN)
		n = 0;
	if (!r->why[0] && (n != (ssize_t)t->want_len || memcmp(got, t->want, (size_t)n)))
		snprintf(r->why, sizeof(r->why),
		         "turn %zu: the client sent %zd bytes, want %zu", i, n,
		         t->want_len);
}

static void wait_readable(int fd)
{
	poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 1000);
}

/* The answer a byte at a time, a step after each, the last byte with tail:
 * every step before the last must ask for POLLIN. The last step's result. */
static int dribble(struct run *r, const struct turn *t, size_t i, const char *tail)
{
	int rc = POLLIN;

	for (size_t k = 0; k < t->answer_len; k++) {
		char buf[64];
		size_t len = 1;
		buf[0] = t->answer[k];
		if (k + 1 == t->answer_len && tail) {
			memcpy(buf + 1, tail, strlen(tail));
			len += strlen(tail);
		}
		if (send(r->proxy, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
			abort();
		wait_readable(r->client); /* on TCP, it may take a moment */
		rc = step(r);
		if (k + 1 < t->answer_len && rc != POLLIN && !r->why[0])
			snprintf(r->why, sizeof(r->why),
			         "turn %zu: after %zu of %zu bytes, step returns %d, "
			         "want POLLIN",
			         i, k + 1, t->answer_len, rc);
	}
	return rc;
}

/*
 * Plays c's proxy against r's machine, whose next step sends its first
 * message: each turn checks what the client sent and answers; the last answer
 * comes with a banner after it (unless the proxy then hangs up). The result
 * of the last step.
 */
static int play(struct run *r, const struct hs_case *c)
{
	static const struct turn nothing = {"", 0, NULL, 0};
	int rc = step(r);
	size_t n = 0;

	while (n < sizeof(c->turns) / sizeof(c->turns[0]) && c->turns[n].answer)
		n++;
	for (size_t i = 0; i < n && rc == POLLIN; i++) {
		if (c->turns[i].want_len > 0)
			wait_readable(r->proxy);
		check_sent(r, &c->turns[i], i);
		if ((i > 0 || r->h.pipeline) && has_secret(r) && !r->why[0])
			snprintf(r->why, sizeof(r->why),
			         "turn %zu: the credentials are still there", i);
		rc = dribble(r, &c->turns[i], i,
		             i + 1 == n && !c->hang_up ? BANNER : NULL);
		if (i + 1 < n && rc != POLLIN && !r->why[0])
			snprintf(r->why, sizeof(r->why),
			         "turn %zu: after the whole answer step returns %d, want "
			         "POLLIN",
			         i, rc);
	}
	if (c->hang_up) {
		shutdown(r->proxy, SHUT_WR);
		wait_readable(r->client);
		rc = step(r);
	}
	check_sent(r, &nothing, n);
	return rc;
}

/* The checks of a played case; closes both ends. */
static void judge(struct run *r, const struct hs_case *c, int rc)
{
	char rest[64];
	ssize_t n;

	tap_is(rc, c->rc, "%s: %s", c->what, c->rc ? strerror(-c->rc) : "success");
	tap_ok(!r->why[0],
	       "%s: every step as the script expects (POLLIN on a part of an answer, "
	       "each "
	       "message in its turn, the credentials gone once sent)%s%s",
	       c->what, r->why[0] ? ": " : "", r->why);
	tap_is(tcp_hs_step(&r->h), c->rc, "%s: a step after the end says the same",
	       c->what);
	tap_ok(r->slowest_us < STEP_MAX_US,
	       "%s: no step blocks (the slowest took %lld us)", c->what, r->slowest_us);
	if (c->rc == 0) {
		tap_ok(r->h.bound.port == c->port, "%s: BND port %u", c->what, c->port);
		n = recv(r->client, rest, sizeof(rest), 0);
		tap_ok(n == sizeof(BANNER) - 1 && memcmp(rest, BANNER, (size_t)n) == 0,
		       "%s: the bytes after the reply stay in the socket", c->what);
	}
	tcp_hs_end(&r->h);
	tap_ok(!has_secret(r), "%s: tcp_hs_end leaves no credentials", c->what);
	close(r->client);
	close(r->proxy);
}

static void configure(const struct hs_case *c)
{
	script_set_auth(c->auth);
	shim_config.pipeline = c->pipeline ? CONFIG_PIPELINE_ON : CONFIG_PIPELINE_OFF;
	shim_config.nproxies = c->chain ? 2 : 1;
	shim_config.chain = c->chain ? CONFIG_CHAIN_STRICT : CONFIG_CHAIN_FAILOVER;
	memset(&shim_config.proxies[1], 0, sizeof(shim_config.proxies[1]));
	strcpy(shim_config.proxies[1].host, "hop2.test");
	shim_config.proxies[1].port = 1081;
}

static void run_case(const struct hs_case *c)
{
	struct run r = {.slowest_us = 0};
	struct socks5_addr target;
	int sv[2];

	configure(c);
	nonblocking_pair(sv);
	r.client = sv[0];
	r.proxy = sv[1];
	socks5_addr_set_domain(&target, "example.com", 11, 443);
	tap_is(tcp_hs_start_connected(&r.h, r.client, SOCKS5_CMD_CONNECT, &target), 0,
	       "%s: starts", c->what);
	judge(&r, c, play(&r, c));
}

#define TURN(want, answer)                                                               \
	{                                                                                \
		BYTES(want), BYTES(answer)                                               \
	}

/* hop 1's CONNECT to hop 2, by name */
#define HOP2_REQUEST  "\x05\x01\x00\x03\x09hop2.test\x04\x39"
#define REPLY_REFUSED "\x05\x05\x00\x01\0\0\0\0\0\0"

static const struct hs_case cases[] = {
        {"no authentication",
         false,
         false,
         {TURN(GREET_NONE, METHOD_NONE), TURN(REQUEST, REPLY_V4)},
         false,
         0,
         12345,
         false},
        {"RFC 1929",
         true,
         false,
         {TURN(GREET_BOTH, METHOD_USER), TURN(AUTH, AUTH_OK),
          TURN(REQUEST, REPLY_DOMAIN)},
         false,
         0,
         1081,
         false},
        {"RFC 1929 offered, not asked for",
         true,
         false,
         {TURN(GREET_BOTH, METHOD_NONE), TURN(REQUEST, REPLY_V6)},
         false,
         0,
         1234,
         false},
        {"pipelined",
         false,
         true,
         {TURN(GREET_NONE REQUEST, METHOD_NONE), TURN("", REPLY_V6)},
         false,
         0,
         1234,
         false},
        {"pipelined with RFC 1929",
         true,
         true,
         {TURN(GREET_USERPASS AUTH REQUEST, METHOD_USER), TURN("", AUTH_OK),
          TURN("", REPLY_V4)},
         false,
         0,
         12345,
         false},
        /* failure replies, each mapped as socks5_rep_to_errno says */
        {"reply 0x05 (connection refused)",
         false,
         false,
         {TURN(GREET_NONE, METHOD_NONE), TURN(REQUEST, "\x05\x05\x00\x01\0\0\0\0\0\0")},
         false,
         -ECONNREFUSED,
         0,
         false},
        {"RFC 1929, reply 0x04 (host unreachable)",
         true,
         false,
         {TURN(GREET_BOTH, METHOD_USER), TURN(AUTH, AUTH_OK),
          TURN(REQUEST, "\x05\x04\x00\x01\0\0\0\0\0\0")},
         false,
         -EHOSTUNREACH,
         0,
         false},
        {"pipelined, reply 0x02 (not allowed)",
         false,
         true,
         {TURN(GREET_NONE REQUEST, METHOD_NONE),
          TURN("", "\x05\x02\x00\x01\0\0\0\0\0\0")},
         false,
         -EACCES,
         0,
         false},
        {"pipelined with RFC 1929, reply 0x03 (network unreachable)",
         true,
         true,
         {TURN(GREET_USERPASS AUTH REQUEST, METHOD_USER), TURN("", AUTH_OK),
          TURN("", "\x05\x03\x00\x03\x01x\0\0")},
         false,
         -ENETUNREACH,
         0,
         false},
        /* refusals, malformed answers, hang-ups */
        {"no acceptable method",
         false,
         false,
         {TURN(GREET_NONE, METHOD_REFUSED)},
         false,
         -EACCES,
         0,
         false},
        {"RFC 1929 refused",
         true,
         false,
         {TURN(GREET_BOTH, METHOD_USER), TURN(AUTH, AUTH_BAD)},
         false,
         -EACCES,
         0,
         false},
        {"pipelined, RFC 1929 refused",
         true,
         true,
         {TURN(GREET_USERPASS AUTH REQUEST, METHOD_USER), TURN("", AUTH_BAD)},
         false,
         -EACCES,
         0,
         false},
        {"pipelined, RFC 1929 not asked for",
         true,
         true,
         {TURN(GREET_USERPASS AUTH REQUEST, METHOD_NONE)},
         false,
         -EPROTO,
         0,
         false},
        /* a reply is refused at its first wrong byte, whatever is to come */
        {"reply of version 4",
         false,
         false,
         {TURN(GREET_NONE, METHOD_NONE), TURN(REQUEST, "\x04")},
         false,
         -EPROTO,
         0,
         false},
        {"reply of ATYP 7 (refused at the fourth byte)",
         false,
         false,
         {TURN(GREET_NONE, METHOD_NONE), TURN(REQUEST, "\x05\x00\x00\x07")},
         false,
         -EPROTO,
         0,
         false},
        {"hang-up mid reply",
         false,
         false,
         {TURN(GREET_NONE, METHOD_NONE), TURN(REQUEST, "\x05\x00\x00\x01\xc0")},
         true,
         -ECONNRESET,
         0,
         false},
        /* the method reply and the first byte of the RFC 1929 status */
        {"pipelined, hang-up mid RFC 1929 status",
         true,
         true,
         {TURN(GREET_USERPASS AUTH REQUEST, METHOD_USER "\x01")},
         true,
         -ECONNRESET,
         0,
         false},
        /* strict chains: the next hop's greeting over the same stream */
        {"chain, hop 1 with RFC 1929, hop 2 without",
         true,
         false,
         {TURN(GREET_BOTH, METHOD_USER), TURN(AUTH, AUTH_OK),
          TURN(HOP2_REQUEST, REPLY_V4), TURN(GREET_NONE, METHOD_NONE),
          TURN(REQUEST, REPLY_DOMAIN)},
         false,
         0,
         1081,
         true},
        {"chain, pipeline = yes: never pipelined",
         false,
         true,
         {TURN(GREET_NONE, METHOD_NONE), TURN(HOP2_REQUEST, REPLY_V4),
          TURN(GREET_NONE, METHOD_NONE), TURN(REQUEST, REPLY_V6)},
         false,
         0,
         1234,
         true},
        {"chain, hop 1 cannot reach hop 2 (reply 0x05)",
         false,
         false,
         {TURN(GREET_NONE, METHOD_NONE), TURN(HOP2_REQUEST, REPLY_REFUSED)},
         false,
         -ECONNREFUSED,
         0,
         true},
        {"chain, hop 2 accepts none of our methods",
         false,
         false,
         {TURN(GREET_NONE, METHOD_NONE), TURN(HOP2_REQUEST, REPLY_V4),
          TURN(GREET_NONE, METHOD_REFUSED)},
         false,
         -EACCES,
         0,
         true},
        {"chain, the destination refused at the last hop (reply 0x05)",
         false,
         false,
         {TURN(GREET_NONE, METHOD_NONE), TURN(HOP2_REQUEST, REPLY_V4),
          TURN(GREET_NONE, METHOD_NONE), TURN(REQUEST, REPLY_REFUSED)},
         false,
         -ECONNREFUSED,
         0,
         true},
};

/* The plain exchange, without credentials. */
static const struct hs_case *const plain = &cases[0];

/* The credentials are in the machine until they go out: what the checks
 * that they are gone later look for is there to begin with. */
static void test_secret_there(void)
{
	struct run r = {.slowest_us = 0};
	struct socks5_addr target = {.atyp = SOCKS5_ATYP_IPV4, .port = 80};

	script_set_auth(true);
	tap_is(tcp_hs_start_connected(&r.h, -1, SOCKS5_CMD_CONNECT, &target), 0,
	       "credentials: the machine starts");
	tap_ok(has_secret(&r), "credentials: in the machine before they are sent");
	tcp_hs_end(&r.h);
	tap_ok(!has_secret(&r), "credentials: gone after tcp_hs_end");
	script_set_auth(false);
}

/* A proxy that reads nothing yet: the greeting waits, POLLOUT. */
static void test_full_buffer(void)
{
	struct run r = {.slowest_us = 0};
	struct socks5_addr target;
	char junk[4096] = {0};
	int sv[2];

	configure(plain);
	nonblocking_pair(sv);
	r.client = sv[0];
	r.proxy = sv[1];
	while (send(r.client, junk, sizeof(junk), MSG_NOSIGNAL) > 0)
		;
	socks5_addr_set_domain(&target, "example.com", 11, 443);
	tcp_hs_start_connected(&r.h, r.client, SOCKS5_CMD_CONNECT, &target);
	tap_is(step(&r), POLLOUT, "socket buffer full: step asks for POLLOUT");
	tap_is(step(&r), POLLOUT, "socket buffer full: and again while it stays full");
	while (recv(r.proxy, junk, sizeof(junk), 0) > 0)
		;
	judge(&r, plain, play(&r, plain));
}

/*
 * Driven by edge-triggered waits (the helper thread's epoll set): an answer
 * that is there already, or a hang-up that came with the last one, is read
 * at once after the message goes out, never waited for (its edge was seen
 * with the earlier bytes and would not come again: the exchange sat until
 * connect_timeout). Level-triggered, the machine asks for POLLIN there.
 */
static void test_edge(void)
{
	static const struct {
		const char *what;
		const char *answer;
		size_t len;
		bool hang_up;
		int edge_rc, level_rc;
	} edge_cases[] = {
	        {"method and reply in one write", BYTES(METHOD_NONE REPLY_V4), false, 0,
	         POLLIN},
	        {"hang-up after the method reply", BYTES(METHOD_NONE), true, -ECONNRESET,
	         POLLIN},
	};
	struct socks5_addr target;

	socks5_addr_set_domain(&target, "example.com", 11, 443);
	configure(plain);
	for (size_t i = 0; i < sizeof(edge_cases) / sizeof(edge_cases[0]); i++) {
		for (int edge = 1; edge >= 0; edge--) {
			struct run r = {.slowest_us = 0};
			int sv[2];
			nonblocking_pair(sv);
			r.client = sv[0];
			r.proxy = sv[1];
			tcp_hs_start_connected(&r.h, r.client, SOCKS5_CMD_CONNECT,
			                       &target);
			if (edge)
				tcp_hs_edge_triggered(&r.h);
			tap_is(step(&r), POLLIN, "%s (%s): the greeting out, POLLIN",
			       edge_cases[i].what, edge ? "edge" : "level");
			if (send(r.proxy, edge_cases[i].answer, edge_cases[i].len, 0) <
			            0 ||
			    (edge_cases[i].hang_up && shutdown(r.proxy, SHUT_WR) < 0))
				abort();
			int want = edge ? edge_cases[i].edge_rc : edge_cases[i].level_rc;
			tap_is(step(&r), want, "%s (%s): the next step gives %d",
			       edge_cases[i].what, edge ? "edge" : "level", want);
			tcp_hs_end(&r.h);
			close(r.client);
			close(r.proxy);
		}
	}
}

/* tcp_hs_start connects the socket: the proxy's address is 127.0.0.1:port. */
static int start_tcp(struct tcp_hs *h, uint16_t port)
{
	struct socks5_addr target;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	strcpy(shim_config.proxy.host, "127.0.0.1");
	shim_config.proxy.port = port;
	policy_forget_proxy_for_tests();
	socks5_addr_set_domain(&target, "example.com", 11, 443);
	tap_is(tcp_hs_start(h, fd, AF_INET, SOCKS5_CMD_CONNECT, &target), 0,
	       "TCP, port %u: the start goes on (the connect is under way)", port);
	/* The greeting goes out at once when the connection is already made
	 * (POLLIN: waiting for the answer), else the step waits for POLLOUT; a
	 * refusal that came already is the step's answer. */
	int first = tcp_hs_step(h);
	tap_ok(first == POLLOUT || first == POLLIN || first == -ECONNREFUSED,
	       "TCP, port %u: the first step sends the greeting or waits for POLLOUT "
	       "(%d)",
	       port, first);
	tap_ok(poll(&(struct pollfd){.fd = fd, .events = POLLOUT}, 1, 2000) == 1,
	       "TCP, port %u: the socket becomes writable (or reports its error)", port);
	return fd;
}

static void test_tcp(void)
{
	struct run r = {.slowest_us = 0};
	uint16_t port;
	int lfd = script_listen_loopback(&port);

	close(lfd); /* nobody listens there any more */
	configure(plain);
	r.client = start_tcp(&r.h, port);
	tap_is(tcp_hs_step(&r.h), -ECONNREFUSED,
	       "TCP, nothing listens: the step after it reports ECONNREFUSED");
	tap_is(tcp_hs_step(&r.h), -ECONNREFUSED,
	       "TCP, nothing listens: and so does the next");
	tcp_hs_end(&r.h);
	close(r.client);

	lfd = script_listen_loopback(&port);
	r.client = start_tcp(&r.h, port);
	r.proxy = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	close(lfd);
	judge(&r, plain, play(&r, plain));
}

/* Failover over TCP loopback: proxy 1 (index 0) is down or silent, proxy 2
 * (index 1) serves; the first is marked dead and a new plan skips it. */
static void failover_case(bool silent)
{
	struct run r = {.slowest_us = 0};
	struct socks5_addr target;
	struct proxy_plan plan;
	uint16_t dead_port, port;
	int dead = script_listen_loopback(&dead_port);
	int lfd = script_listen_loopback(&port);
	const char *what = silent ? "failover, proxy 1 silent" : "failover, proxy 1 down";

	if (!silent)
		close(dead); /* refused */
	configure(plain);
	proxies_reset_for_tests();
	shim_config.nproxies = 2;
	strcpy(shim_config.proxies[0].host, "127.0.0.1");
	shim_config.proxies[0].port = dead_port;
	strcpy(shim_config.proxies[1].host, "127.0.0.1");
	shim_config.proxies[1].port = port;
	policy_forget_proxy_for_tests();
	r.client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	socks5_addr_set_domain(&target, "example.com", 11, 443);
	tap_is(tcp_hs_start(&r.h, r.client, AF_INET, SOCKS5_CMD_CONNECT, &target), 0,
	       "%s: starts", what);
	poll(&(struct pollfd){.fd = r.client, .events = POLLOUT}, 1, 1000);
	int rc = tcp_hs_step(&r.h);
	if (silent) { /* the driver's deadline passes: the next proxy */
		tap_is(rc, POLLIN, "%s: waits for the method", what);
		tap_is(tcp_hs_timeout(&r.h), 1, "%s: the timeout moves on", what);
	}
	poll(&(struct pollfd){.fd = lfd, .events = POLLIN}, 1, 1000);
	r.proxy = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
	tap_ok(r.proxy >= 0, "%s: proxy 2 is connected to", what);
	judge(&r, plain, play(&r, plain));
	tap_ok(proxies_dead(0) && !proxies_dead(1), "%s: proxy 1 marked dead", what);
	proxies_plan(&plan, false);
	tap_ok(plan.n == 1 && plan.idx[0] == 1, "%s: the next plan skips it", what);
	proxies_reset_for_tests();
	if (silent)
		close(dead);
	close(lfd);
	shim_config.nproxies = 1;
}

/* All dead but one that refuses too: the last error; round-robin starts one
 * further each time; UDP never chains. */
static void test_plans(void)
{
	struct proxy_plan a, b;

	proxies_reset_for_tests();
	shim_config.nproxies = 3;
	shim_config.chain = CONFIG_CHAIN_ROUND_ROBIN;
	proxies_plan(&a, false);
	proxies_plan(&b, false);
	tap_ok(a.n == 3 && b.n == 3 && a.idx[0] == 0 && b.idx[0] == 1 && b.idx[2] == 0,
	       "round-robin: 0,1,2 then 1,2,0");
	proxies_mark_dead(2, -ECONNREFUSED);
	proxies_plan(&a, false);
	tap_ok(a.n == 2 && a.idx[0] == 0 && a.idx[1] == 1,
	       "round-robin: 2 dead, the third plan is 0,1");
	proxies_mark_dead(0, -ECONNREFUSED);
	proxies_mark_dead(1, -ECONNREFUSED);
	proxies_plan(&a, false);
	tap_ok(a.n == 3, "all dead: all of them are tried");
	shim_config.chain = CONFIG_CHAIN_STRICT;
	proxies_plan(&a, false);
	proxies_plan(&b, true);
	tap_ok(a.chain && a.n == 3 && !b.chain, "strict: a chain for TCP, not for UDP");
	proxies_reset_for_tests();
	shim_config.chain = CONFIG_CHAIN_FAILOVER;
	shim_config.nproxies = 1;
}

int main(void)
{
	tap_init();
	shim_support_init();
	alarm(20); /* a step that blocked would wait for this thread forever */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	test_secret_there();
	test_full_buffer();
	test_edge();
	test_tcp();
	failover_case(false);
	failover_case(true);
	test_plans();
	return tap_done();
}
