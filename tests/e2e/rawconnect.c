/* SPDX-License-Identifier: MIT */
/*
 * rawconnect: a dynamically linked C program that LD_PRELOAD cannot socksify,
 * for the supervisor's tests (tests/e2e/supervise.bats).
 *
 *   rawconnect IP PORT [PATH]
 *
 * Makes its socket, connects it, sends "GET PATH HTTP/1.0" (default /) and
 * reads the answer with the system call instruction itself, as a Go program
 * does: not through libc's connect() or libc's syscall(), both of which the
 * shim interposes (syscall() for the socket numbers). Prints the status line
 * and exits 0; on a failure prints "STEP: ERRNO-NAME" (e.g. "connect:
 * ENETUNREACH") and exits 1; bad arguments exit 2.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The raw system call: returns the kernel's result (-errno on failure). */
static long raw6(long nr, long a, long b, long c, long d, long e, long f)
{
#if defined(__x86_64__)
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
	                 : "=a"(ret)
	                 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
	                 : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;
	__asm__ volatile("svc 0"
	                 : "+r"(x0)
	                 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
	                 : "memory");
	return x0;
#else
#error "rawconnect needs the system call instruction of this architecture"
#endif
}

static long raw3(long nr, long a, long b, long c)
{
	return raw6(nr, a, b, c, 0, 0, 0);
}

static int failed(const char *step, long ret)
{
	const char *name = strerrorname_np((int)-ret);
	printf("%s: %s\n", step, name ? name : "unknown errno");
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: rawconnect IP PORT [PATH]\n");
		return 2;
	}
	struct sockaddr_storage ss = {0};
	socklen_t len;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	int port = atoi(argv[2]);
	if (inet_pton(AF_INET, argv[1], &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, argv[1], &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)port);
		len = sizeof(*sin6);
	} else {
		fprintf(stderr, "rawconnect: not an IP address: %s\n", argv[1]);
		return 2;
	}

	long fd = raw3(SYS_socket, ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return failed("socket", fd);
	long ret = raw3(SYS_connect, fd, (long)&ss, len);
	if (ret < 0)
		return failed("connect", ret);

	char req[512];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n",
	                 argc > 3 ? argv[3] : "/", argv[1]);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		fprintf(stderr, "rawconnect: the path is too long\n");
		return 2;
	}
	for (int off = 0; off < n; off += (int)ret) {
		ret = raw6(SYS_sendto, fd, (long)(req + off), n - off, MSG_NOSIGNAL, 0,
		           0);
		if (ret < 0)
			return failed("send", ret);
	}

	/* the status line: up to the first CR or LF */
	char buf[4096];
	size_t got = 0;
	while (got < sizeof(buf) - 1) {
		ret = raw3(SYS_read, fd, (long)(buf + got),
		           (long)(sizeof(buf) - 1 - got));
		if (ret < 0)
			return failed("read", ret);
		if (ret == 0)
			break;
		got += (size_t)ret;
		buf[got] = '\0';
		if (strpbrk(buf, "\r\n"))
			break;
	}
	buf[got] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (got == 0) {
		printf("read: EOF before a status line\n");
		return 1;
	}
	printf("%s\n", buf);
	raw3(SYS_close, fd, 0, 0);
	return 0;
}
