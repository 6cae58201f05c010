/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the shim's SOCKS5 client (shim/tcp.c), printed as TAP; no
 * root. tcp_handshake runs on one end of a socketpair while a thread plays
 * the proxy on the other from a script: bytes it expects from the client to
 * the letter, replies it sends (at once, or a byte at a time), a hang-up.
 * When the script is done, the peer reads on to the client's end of file and
 * counts what the script did not expect: a message too many fails the case.
 * After the handshake the test reads what is left in its socket, which is
 * what the client must not have taken (the banner of an SSH or SMTP server).
 *
 * Cases: no authentication; RFC 1929 accepted, refused, and offered but not
 * wanted; no acceptable method (0xFF); every reply code to its errno; BND
 * addresses of each type; a reply dribbled a byte at a time; a proxy that
 * hangs up or falls silent mid-exchange (ETIMEDOUT once connect_timeout has
 * passed); wrong version bytes; the banner; pipelining. Last, tcp_proxy_request
 * itself against a loopback listener: it connects, and gives a blocking
 * socket back blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"
#include "shim_support.h"
#include "socks5_script.h"
#include "tap.h"
#include "tcp.h"

/* --- the scripted proxy --------------------------------------------------------------
 */

enum step_kind {
	STEP_END,     /* the script is over */
	STEP_EXPECT,  /* the client must send these bytes next */
	STEP_SEND,    /* one write */
	STEP_DRIBBLE, /* a write a byte, 2 ms apart */
	STEP_HANG_UP, /* shutdown(SHUT_WR): the client reads end of file */
};

struct step {
	enum step_kind kind;
	const uint8_t *bytes;
	size_t len;
};

/* A step with the bytes of a string literal (without its NUL). */
#define STEP(kind, lit)                                                                  \
	{                                                                                \
		kind, (const uint8_t *)(lit), sizeof(lit) - 1                            \
	}
#define EXPECT(lit)  STEP(STEP_EXPECT, lit)
#define SEND(lit)    STEP(STEP_SEND, lit)
#define DRIBBLE(lit) STEP(STEP_DRIBBLE, lit)
#define HANG_UP                                                                          \
	{                                                                                \
		STEP_HANG_UP, NULL, 0                                                    \
	}

enum { MAX_STEPS = 8 };

struct script {
	struct step steps[MAX_STEPS];
};

struct peer {
	int fd;        /* the proxy's end */
	int listen_fd; /* >= 0: accept fd from it first */
	const struct script *script;
	char why[256]; /* empty when the client did as the script expects */
	size_t extra;  /* bytes the client sent past the script */
};

/* Reads exactly len bytes (blocking): 0, or -1 at end of file or on error. */
static int read_exact(int fd, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, buf, len, 0);
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void peer_expect(struct peer *p, const struct step *s, size_t i)
{
	uint8_t got[1024];

	if (s->len > sizeof(got) || read_exact(p->fd, got, s->len) < 0) {
		snprintf(p->why, sizeof(p->why),
		         "step %zu: end of file instead of %zu bytes", i, s->len);
		return;
	}
	for (size_t k = 0; k < s->len; k++)
		if (got[k] != s->bytes[k]) {
			snprintf(p->why, sizeof(p->why),
			         "step %zu: byte %zu is 0x%02x, want 0x%02x", i, k,
			         got[k], s->bytes[k]);
			return;
		}
}

static void peer_send(struct peer *p, const struct step *s, size_t i)
{
	size_t chunk = s->kind == STEP_DRIBBLE ? 1 : s->len;

	for (size_t off = 0; off < s->len; off += chunk) {
		if (off > 0)
			nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
		if (send(p->fd, s->bytes + off, chunk, MSG_NOSIGNAL) != (ssize_t)chunk) {
			snprintf(p->why, sizeof(p->why), "step %zu: send: %s", i,
			         strerror(errno));
			return;
		}
	}
}

static void *peer_run(void *arg)
{
	struct peer *p = arg;
	uint8_t buf[512];
	ssize_t n;

	if (p->listen_fd >= 0)
		p->fd = accept(p->listen_fd, NULL, NULL);
	if (p->fd < 0) {
		snprintf(p->why, sizeof(p->why), "accept: %s", strerror(errno));
		return NULL;
	}
	for (size_t i = 0; i < MAX_STEPS && !p->why[0]; i++) {
		const struct step *s = &p->script->steps[i];
		if (s->kind == STEP_END)
			break;
		if (s->kind == STEP_EXPECT)
			peer_expect(p, s, i);
		else if (s->kind == STEP_HANG_UP)
			shutdown(p->fd, SHUT_WR);
		else
			peer_send(p, s, i);
	}
	/* the rest, to the client's end of file */
	while ((n = recv(p->fd, buf, sizeof(buf), 0)) > 0)
		p->extra += (size_t)n;
	close(p->fd);
	return NULL;
}

/* --- one exchange ----------------------------------------------------------------- */

struct outcome {
	int rc;                   /* tcp_handshake's */
	long long ms;             /* how long it took */
	struct socks5_addr bound; /* atyp 0 when no BND came */
	char rest[256];           /* what was left in the client's socket */
	size_t rest_len;
	struct peer peer;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what is left in fd (blocking) up to end of file. */
static size_t drain(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	while (len < cap && (n = recv(fd, buf + len, cap - len, 0)) > 0)
		len += (size_t)n;
	return len;
}

/* Runs tcp_handshake(cmd, target) against script, on a non-blocking socket. */
static struct outcome exchange_cmd(const struct script *script, uint8_t cmd,
                                   const struct socks5_addr *target)
{
	struct outcome o;
	pthread_t thread;
	int sv[2];

	memset(&o, 0, sizeof(o));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
	    fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
		abort();
	o.peer.fd = sv[1];
	o.peer.listen_fd = -1;
	o.peer.script = script;
	if (pthread_create(&thread, NULL, peer_run, &o.peer) != 0)
		abort();
	long long t0 = now_ms();
	o.rc = tcp_handshake(sv[0], cmd, target, &o.bound, tcp_deadline());
	o.ms = now_ms() - t0;
	tap_ok(fcntl(sv[0], F_GETFL) == (O_RDWR | O_NONBLOCK),
	       "the socket's flags are left alone");
	shutdown(sv[0], SHUT_WR);
	o.rest_len = drain(sv[0], o.rest, sizeof(o.rest));
	pthread_join(thread, NULL);
	close(sv[0]);
	return o;
}

/* The usual target, CONNECT example.com:443, as in REQUEST below. */
static struct outcome exchange(const struct script *script)
{
	struct socks5_addr target;

	socks5_addr_set_domain(&target, "example.com", 11, 443);
	return exchange_cmd(script, SOCKS5_CMD_CONNECT, &target);
}

/* The client did as the script expects, and no more. */
static void followed(const struct outcome *o, const char *what)
{
	tap_ok(!o->peer.why[0], "%s: the client follows the script%s%s", what,
	       o->peer.why[0] ? ": " : "", o->peer.why);
	tap_is((long long)o->peer.extra, 0, "%s: and sends nothing more", what);
}

/* The exchange ends with rc, the client having done what the script expects. */
static struct outcome ends(const struct script *script, int rc, const char *what)
{
	struct outcome o = exchange(script);

	tap_is(o.rc, rc, "%s: %s", what, rc ? strerror(-rc) : "success");
	followed(&o, what);
	return o;
}

static bool bound_v4(const struct outcome *o)
{
	return o->bound.atyp == SOCKS5_ATYP_IPV4 &&
	       memcmp(o->bound.host.ipv4, "\xc0\x00\x02\x09", 4) == 0 &&
	       o->bound.port == 12345;
}

/* --- cases ---------------------------------------------------------------------------
 */

static void test_no_auth(void)
{
	struct script s = {
	        {EXPECT(GREET_NONE), SEND(METHOD_NONE), EXPECT(REQUEST), SEND(REPLY_V4)}};
	struct outcome o = ends(&s, 0, "no authentication");

	tap_ok(bound_v4(&o), "no authentication: BND 192.0.2.9:12345");
	tap_is((long long)o.rest_len, 0, "no authentication: nothing left in the socket");
}

static void test_auth(void)
{
	struct script ok = {{EXPECT(GREET_BOTH), SEND(METHOD_USER), EXPECT(AUTH),
	                     SEND(AUTH_OK), EXPECT(REQUEST), SEND(REPLY_V4)}};
	struct script bad = {
	        {EXPECT(GREET_BOTH), SEND(METHOD_USER), EXPECT(AUTH), SEND(AUTH_BAD)}};
	/* credentials the proxy does not ask for are not sent */
	struct script unasked = {
	        {EXPECT(GREET_BOTH), SEND(METHOD_NONE), EXPECT(REQUEST), SEND(REPLY_V4)}};
	struct script refused = {{EXPECT(GREET_BOTH), SEND(METHOD_REFUSED)}};
	struct script bad_version = {
	        {EXPECT(GREET_BOTH), SEND(METHOD_USER), EXPECT(AUTH), SEND("\x05\x00")}};

	script_set_auth(true);
	struct outcome o = ends(&ok, 0, "RFC 1929 accepted");
	tap_ok(bound_v4(&o), "RFC 1929 accepted: BND 192.0.2.9:12345");
	ends(&bad, -EACCES, "RFC 1929 refused");
	ends(&unasked, 0, "RFC 1929 offered, not asked for");
	ends(&refused, -EACCES, "RFC 1929 offered, no method acceptable");
	ends(&bad_version, -EPROTO, "RFC 1929 reply of version 5");
	script_set_auth(false);
}

static void test_methods(void)
{
	struct script refused = {{EXPECT(GREET_NONE), SEND(METHOD_REFUSED)}};
	/* the proxy wants credentials the URL does not have */
	struct script wants_auth = {{EXPECT(GREET_NONE), SEND(METHOD_USER)}};
	struct script gssapi = {{EXPECT(GREET_NONE), SEND("\x05\x01")}};
	struct script bad_version = {{EXPECT(GREET_NONE), SEND("\x04\x00")}};

	ends(&refused, -EACCES, "no acceptable method (0xFF)");
	ends(&wants_auth, -EACCES, "proxy wants RFC 1929, none configured");
	ends(&gssapi, -EACCES, "proxy picks GSSAPI, never offered");
	ends(&bad_version, -EPROTO, "method reply of version 4");
}

static void test_reply_codes(void)
{
	static const struct {
		uint8_t rep;
		int err;
	} codes[] = {
	        {0x01, ECONNABORTED}, {0x02, EACCES},       {0x03, ENETUNREACH},
	        {0x04, EHOSTUNREACH}, {0x05, ECONNREFUSED}, {0x06, ETIMEDOUT},
	        {0x07, EOPNOTSUPP},   {0x08, EAFNOSUPPORT}, {0x09, EPROTO},
	        {0xff, EPROTO},
	};
	uint8_t reply[10] = {5, 0, 0, 1, 0, 0, 0, 0, 0, 0};
	struct script s = {{EXPECT(GREET_NONE),
	                    SEND(METHOD_NONE),
	                    EXPECT(REQUEST),
	                    {STEP_SEND, reply, sizeof(reply)}}};

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		char what[64];
		reply[1] = codes[i].rep;
		snprintf(what, sizeof(what), "reply 0x%02x", codes[i].rep);
		struct outcome o = ends(&s, -codes[i].err, what);
		tap_is(o.rc, -socks5_rep_to_errno(codes[i].rep),
		       "reply 0x%02x: as socks5_rep_to_errno says", codes[i].rep);
		tap_is(o.bound.atyp, 0, "reply 0x%02x: no BND given back", codes[i].rep);
	}
}

static void test_bound(void)
{
	struct script v6 = {
	        {EXPECT(GREET_NONE), SEND(METHOD_NONE), EXPECT(REQUEST), SEND(REPLY_V6)}};
	struct script domain = {{EXPECT(GREET_NONE), SEND(METHOD_NONE), EXPECT(REQUEST),
	                         SEND(REPLY_DOMAIN)}};
	struct script empty_name = {{EXPECT(GREET_NONE), SEND(METHOD_NONE),
	                             EXPECT(REQUEST),
	                             SEND("\x05\x00\x00\x03\x00\x00\x50")}};
	struct script bad_atyp = {{EXPECT(GREET_NONE), SEND(METHOD_NONE), EXPECT(REQUEST),
	                           SEND("\x05\x00\x00\x02\x00\x00\x00\x00\x00\x00")}};
	struct script bad_version = {{EXPECT(GREET_NONE), SEND(METHOD_NONE),
	                              EXPECT(REQUEST),
	                              SEND("\x04\x00\x00\x01\0\0\0\0\0\0")}};
	struct script bad_rsv = {{EXPECT(GREET_NONE), SEND(METHOD_NONE), EXPECT(REQUEST),
	                          SEND("\x05\x00\x01\x01\0\0\0\0\0\0")}};
	static const uint8_t want6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 9};

	struct outcome o = ends(&v6, 0, "BND IPv6");
	tap_ok(o.bound.atyp == SOCKS5_ATYP_IPV6 &&
	               memcmp(o.bound.host.ipv6, want6, 16) == 0 && o.bound.port == 1234,
	       "BND IPv6: [2001:db8::9]:1234");
	o = ends(&domain, 0, "BND name");
	tap_ok(o.bound.atyp == SOCKS5_ATYP_DOMAIN && o.bound.domain_len == 13 &&
	               strcmp(o.bound.host.domain, "relay.example") == 0 &&
	               o.bound.port == 1081,
	       "BND name: relay.example:1081");
	ends(&empty_name, -EPROTO, "BND name of length 0");
	ends(&bad_atyp, -EPROTO, "BND of ATYP 2");
	ends(&bad_version, -EPROTO, "reply of version 4");
	ends(&bad_rsv, -EPROTO, "reply with RSV 1");
}

/* Other targets and commands: the request carries them as given. */
static void test_requests(void)
{
	struct script v4 = {{EXPECT(GREET_NONE), SEND(METHOD_NONE),
	                     EXPECT("\x05\x01\x00\x01\xc6\x33\x64\x07\x00\x50"),
	                     SEND(REPLY_V4)}};
	struct script v6 = {{EXPECT(GREET_NONE), SEND(METHOD_NONE),
	                     EXPECT("\x05\x01\x00\x04\x20\x01\x0d\xb8"
	                            "\0\0\0\0\0\0\0\0\0\0\0\x07\x01\xbb"),
	                     SEND(REPLY_V6)}};
	struct script udp = {{EXPECT(GREET_NONE), SEND(METHOD_NONE),
	                      EXPECT("\x05\x03\x00\x01\0\0\0\0\0\0"),
	                      SEND("\x05\x00\x00\x01\x7f\x00\x00\x01\x9c\x40")}};
	struct socks5_addr target = {
	        .atyp = SOCKS5_ATYP_IPV4, .port = 80, .host.ipv4 = {198, 51, 100, 7}};
	struct outcome o = exchange_cmd(&v4, SOCKS5_CMD_CONNECT, &target);

	tap_is(o.rc, 0, "CONNECT 198.51.100.7:80: success");
	followed(&o, "CONNECT 198.51.100.7:80");
	target = (struct socks5_addr){.atyp = SOCKS5_ATYP_IPV6,
	                              .port = 443,
	                              .host.ipv6 = {0x20, 0x01, 0x0d, 0xb8, [15] = 7}};
	o = exchange_cmd(&v6, SOCKS5_CMD_CONNECT, &target);
	tap_is(o.rc, 0, "CONNECT [2001:db8::7]:443: success");
	followed(&o, "CONNECT [2001:db8::7]:443");
	target = (struct socks5_addr){.atyp = SOCKS5_ATYP_IPV4};
	o = exchange_cmd(&udp, SOCKS5_CMD_UDP_ASSOCIATE, &target);
	tap_is(o.rc, 0, "UDP ASSOCIATE 0.0.0.0:0: success");
	followed(&o, "UDP ASSOCIATE 0.0.0.0:0");
	tap_ok(o.bound.atyp == SOCKS5_ATYP_IPV4 &&
	               memcmp(o.bound.host.ipv4, "\x7f\x00\x00\x01", 4) == 0 &&
	               o.bound.port == 40000,
	       "UDP ASSOCIATE: the relay, 127.0.0.1:40000");
}

static void test_dribble(void)
{
	struct script s = {{EXPECT(GREET_NONE), DRIBBLE(METHOD_NONE), EXPECT(REQUEST),
	                    DRIBBLE(REPLY_V6 BANNER)}};
	struct script name = {{EXPECT(GREET_NONE), SEND(METHOD_NONE), EXPECT(REQUEST),
	                       DRIBBLE(REPLY_DOMAIN)}};
	struct outcome o = ends(&s, 0, "replies a byte at a time");

	tap_ok(o.bound.atyp == SOCKS5_ATYP_IPV6 && o.bound.port == 1234,
	       "replies a byte at a time: BND [2001:db8::9]:1234");
	tap_ok(o.rest_len == sizeof(BANNER) - 1 &&
	               memcmp(o.rest, BANNER, o.rest_len) == 0,
	       "replies a byte at a time: the banner stays in the socket");
	o = ends(&name, 0, "BND name a byte at a time");
	tap_ok(strcmp(o.bound.host.domain, "relay.example") == 0,
	       "BND name a byte at a time: relay.example");
}

static void test_hang_up(void)
{
	struct script at_once = {{EXPECT(GREET_NONE), HANG_UP}};
	struct script mid_method = {{EXPECT(GREET_NONE), SEND("\x05"), HANG_UP}};
	struct script mid_reply = {{EXPECT(GREET_NONE), SEND(METHOD_NONE),
	                            EXPECT(REQUEST), SEND("\x05\x00\x00\x01\xc0"),
	                            HANG_UP}};
	struct script mid_name = {{EXPECT(GREET_NONE), SEND(METHOD_NONE), EXPECT(REQUEST),
	                           SEND("\x05\x00\x00\x03\x0d"
	                                "relay"),
	                           HANG_UP}};
	struct script mid_auth = {{EXPECT(GREET_BOTH), SEND(METHOD_USER), EXPECT(AUTH),
	                           SEND("\x01"), HANG_UP}};

	ends(&at_once, -ECONNRESET, "hang-up after the greeting");
	ends(&mid_method, -ECONNRESET, "hang-up mid method reply");
	ends(&mid_reply, -ECONNRESET, "hang-up mid reply");
	ends(&mid_name, -ECONNRESET, "hang-up mid BND name");
	script_set_auth(true);
	ends(&mid_auth, -ECONNRESET, "hang-up mid RFC 1929 reply");
	script_set_auth(false);
}

static void test_silent(void)
{
	struct script at_once = {{EXPECT(GREET_NONE)}};
	struct script mid_reply = {{EXPECT(GREET_NONE), SEND(METHOD_NONE),
	                            EXPECT(REQUEST), SEND("\x05\x00\x00\x01\xc0")}};
	/* four bytes with an unknown ATYP, then nothing: refused at once */
	struct script bad_atyp_waits = {{EXPECT(GREET_NONE), SEND(METHOD_NONE),
	                                 EXPECT(REQUEST), SEND("\x05\x00\x00\x07")}};
	unsigned saved = shim_config.connect_timeout_ms;

	shim_config.connect_timeout_ms = 300;
	struct outcome o = ends(&at_once, -ETIMEDOUT, "silent proxy");
	tap_ok(o.ms >= 299 && o.ms < 300 + 2000,
	       "silent proxy: gives up after 300 ms (%lld)", o.ms);
	o = ends(&mid_reply, -ETIMEDOUT, "silent mid reply");
	tap_ok(o.ms >= 299 && o.ms < 300 + 2000,
	       "silent mid reply: gives up after 300 ms (%lld)", o.ms);
	o = ends(&bad_atyp_waits, -EPROTO, "ATYP 7 in four bytes, then silence");
	tap_ok(o.ms < 200, "ATYP 7 in four bytes: refused at the fourth byte (%lld ms)",
	       o.ms);
	shim_config.connect_timeout_ms = saved;
}

/* What the destination sends right after the reply is the program's. */
static void test_banner(void)
{
	struct script s = {{EXPECT(GREET_NONE), SEND(METHOD_NONE), EXPECT(REQUEST),
	                    SEND(REPLY_DOMAIN BANNER)}};
	struct outcome o = ends(&s, 0, "reply and banner in one write");

	tap_ok(o.rest_len == sizeof(BANNER) - 1 &&
	               memcmp(o.rest, BANNER, o.rest_len) == 0,
	       "reply and banner in one write: the banner stays in the socket");
}

/*
 * Pipelined, every message goes out before any answer is read: the scripts
 * expect it all before they answer (one that waits for the method reply
 * would time out), and only the method that goes with the credentials is
 * offered.
 */
static void test_pipeline(void)
{
	struct script plain = {{EXPECT(GREET_NONE REQUEST), SEND(METHOD_NONE REPLY_V4)}};
	struct script auth = {{EXPECT(GREET_USERPASS AUTH REQUEST),
	                       SEND(METHOD_USER AUTH_OK REPLY_V4 BANNER)}};
	struct script auth_bad = {
	        {EXPECT(GREET_USERPASS AUTH REQUEST), SEND(METHOD_USER AUTH_BAD)}};
	/* the credentials went out anyway: the proxy reads them as a request */
	struct script unasked = {
	        {EXPECT(GREET_USERPASS AUTH REQUEST), SEND(METHOD_NONE)}};

	shim_config.pipeline = CONFIG_PIPELINE_ON;
	struct outcome o = ends(&plain, 0, "pipelined");
	tap_ok(bound_v4(&o), "pipelined: BND 192.0.2.9:12345");
	script_set_auth(true);
	o = ends(&auth, 0, "pipelined with RFC 1929");
	tap_ok(bound_v4(&o), "pipelined with RFC 1929: BND 192.0.2.9:12345");
	tap_ok(o.rest_len == sizeof(BANNER) - 1 &&
	               memcmp(o.rest, BANNER, o.rest_len) == 0,
	       "pipelined with RFC 1929: the banner stays in the socket");
	ends(&auth_bad, -EACCES, "pipelined, RFC 1929 refused");
	ends(&unasked, -EPROTO, "pipelined, RFC 1929 not asked for");
	script_set_auth(false);
	shim_config.pipeline = CONFIG_PIPELINE_OFF;
}

/* --- tcp_proxy_request: connecting ------------------------------------------------- */

static void test_proxy_request(void)
{
	struct script s = {{EXPECT(GREET_NONE), SEND(METHOD_NONE), EXPECT(REQUEST),
	                    SEND(REPLY_V4 BANNER)}};
	struct peer peer = {.fd = -1, .script = &s};
	struct socks5_addr target, bound;
	pthread_t thread;
	char rest[64];

	peer.listen_fd = script_listen_loopback(&shim_config.proxy.port);
	strcpy(shim_config.proxy.host, "127.0.0.1");
	policy_forget_proxy_for_tests();
	socks5_addr_set_domain(&target, "example.com", 11, 443);
	if (pthread_create(&thread, NULL, peer_run, &peer) != 0)
		abort();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	tap_is(tcp_proxy_request(fd, AF_INET, SOCKS5_CMD_CONNECT, &target, &bound), 0,
	       "tcp_proxy_request: connects to the proxy and succeeds");
	shutdown(peer.listen_fd, SHUT_RDWR); /* no peer waits forever on a failure */
	tap_ok(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "tcp_proxy_request: still blocking");
	tap_ok(bound.atyp == SOCKS5_ATYP_IPV4 && bound.port == 12345,
	       "tcp_proxy_request: BND 192.0.2.9:12345");
	shutdown(fd, SHUT_WR);
	size_t n = drain(fd, rest, sizeof(rest));
	tap_ok(n == sizeof(BANNER) - 1 && memcmp(rest, BANNER, n) == 0,
	       "tcp_proxy_request: the banner stays in the socket");
	pthread_join(thread, NULL);
	tap_ok(!peer.why[0], "tcp_proxy_request: the client follows the script%s%s",
	       peer.why[0] ? ": " : "", peer.why);
	close(fd);

	/* nobody listens there any more */
	close(peer.listen_fd);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	tap_is(tcp_connect_via_proxy(fd, AF_INET, &target, -1, NULL), -ECONNREFUSED,
	       "tcp_connect_via_proxy: the proxy refuses: ECONNREFUSED");
	tap_ok(!(fcntl(fd, F_GETFL) & O_NONBLOCK),
	       "tcp_connect_via_proxy: still blocking after a failure");
	close(fd);
}

int main(void)
{
	tap_init();
	shim_support_init();
	shim_config.connect_timeout_ms = 5000;
	test_no_auth();
	test_auth();
	test_methods();
	test_reply_codes();
	test_bound();
	test_requests();
	test_dribble();
	test_hang_up();
	test_silent();
	test_banner();
	test_pipeline();
	test_proxy_request();
	return tap_done();
}
