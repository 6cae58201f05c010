/* SPDX-License-Identifier: MIT */
/*
 * libsxctor.so: a library whose constructor uses the network, to check the
 * shim's hooks when they are called before the shim's own constructor.
 *
 * ctor_main links this library (DT_NEEDED). glibc runs the initialisers of a
 * program's dependencies before those of the objects preloaded with
 * LD_PRELOAD (both are ordered after their own dependencies, and the
 * preloaded shim comes earlier in the load order, so it is initialised
 * later): this constructor's getaddrinfo() and connect() are the first calls
 * into libsocksify.so, before its constructor ran. shim.bats checks that
 * order with LD_DEBUG=init ("calling init: .../libsxctor.so" comes before
 * ".../libsocksify.so").
 *
 * The constructor does something only when SXCTOR_HOST is set:
 *   SXCTOR_HOST, SXCTOR_PORT (default 80)  where to connect (getaddrinfo)
 *   SXCTOR_PATH, SXCTOR_EXPECT             GET PATH must answer 200 with EXPECT
 * It prints one line per step on stdout ("ctor: ok ..." / "ctor: FAIL ...");
 * sxctor_status() is 0 when every step passed, 1 when one failed, 2 when the
 * constructor did nothing.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int sxctor_status(void);

static int status = 2;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ctor: ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout);
}

static const char *addr_text(const struct sockaddr *sa, char *buf, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, cap, "%s:%u", host, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, cap, "(family %d)", sa->sa_family);
	}
	return buf;
}

/* Sends GET path on fd and reads the response to EOF; 0 when it is a 200
 * whose body has expect. */
static int fetch(int fd, const char *path, const char *expect)
{
	char req[512], resp[8192];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: ctor\r\n\r\n", path);
	if (n <= 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
		say("FAIL write: %s", strerror(errno));
		return 1;
	}
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, resp + len, sizeof(resp) - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			say("FAIL read: %s", strerror(errno));
			return 1;
		}
		if (r == 0 || (len += (size_t)r) == sizeof(resp) - 1)
			break;
	}
	resp[len] = '\0';
	const char *body = strstr(resp, "\r\n\r\n");
	if (strncmp(resp, "HTTP/1.0 200", 12) != 0 || !body || !strstr(body, expect)) {
		resp[strcspn(resp, "\r\n")] = '\0';
		say("FAIL GET %s: '%.80s' (%zu bytes)", path, resp, len);
		return 1;
	}
	say("ok GET %s: 200 with the expected body", path);
	return 0;
}

__attribute__((constructor)) static void sxctor_constructor(void)
{
	const char *host = getenv("SXCTOR_HOST"), *port = getenv("SXCTOR_PORT");
	const char *path = getenv("SXCTOR_PATH"), *expect = getenv("SXCTOR_EXPECT");
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char a[80];

	if (!host)
		return;
	status = 1;
	if (!port)
		port = "80";
	if (!path || !expect) {
		say("FAIL SXCTOR_PATH and SXCTOR_EXPECT must be set");
		return;
	}
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || !res) {
		say("FAIL getaddrinfo %s: %s", host, rc ? gai_strerror(rc) : "no result");
		return;
	}
	say("ok getaddrinfo %s = %s", host, addr_text(res->ai_addr, a, sizeof(a)));
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = {.tv_sec = 10};
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		say("FAIL connect %s: %s", a, strerror(errno));
	} else {
		say("ok connect %s", a);
		status = fetch(fd, path, expect);
	}
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
}

int sxctor_status(void)
{
	return status;
}
