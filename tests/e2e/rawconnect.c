/* SPDX-License-Identifier: MIT */
/*
 * rawconnect: a dynamically linked C program that LD_PRELOAD cannot socksify,
 * for the supervisor's tests (tests/e2e/supervise.bats). Every network call is
 * made with the system call instruction itself, as a Go program does: never
 * through libc's connect() or libc's syscall(), both of which the shim
 * interposes (syscall() for the socket numbers).
 *
 *   rawconnect IP PORT [PATH]
 *       socket + connect, then "GET PATH HTTP/1.0" (default /); prints the
 *       status line
 *   rawconnect -m MODE IP PORT [ARGS...]
 *       tfo-sendto IP PORT [PATH]   the GET with sendto(MSG_FASTOPEN) on a
 *                                   fresh TCP socket (connects and sends)
 *       tfo-sendmsg IP PORT [PATH]  the same with sendmsg(MSG_FASTOPEN)
 *       i386 IP PORT [PATH]         socket and connect through int $0x80 (the
 *                                   i386 ABI of a 64-bit process; x86-64 only)
 *       udp-sendto IP PORT          one datagram with sendto
 *       udp-sendmsg IP PORT         one datagram with sendmsg
 *       udp-sendmmsg IP PORT        one datagram with sendmmsg
 *       udp-connect IP PORT         connect a UDP socket, then write
 *                                   (the UDP modes print "sent N")
 *       race IP PORT TRAP-PORT N [PATH]
 *           N connects on fresh sockets while another thread flips the port
 *           in the sockaddr between PORT and TRAP-PORT as fast as it can (a
 *           check-then-use race: a supervisor that lets the kernel re-read
 *           the address after deciding on it can be fooled). A connection
 *           whose peer is IP:TRAP-PORT was made directly: it sends the GET
 *           there (the trap logs it). Prints "direct K of N", exits 0 when
 *           K == 0.
 *
 * Exits 0 on success; on a failure prints "STEP: ERRNO-NAME" (e.g. "connect:
 * ENETUNREACH") and exits 1; bad arguments exit 2.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif

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

static void usage(void)
{
	fprintf(stderr,
	        "usage: rawconnect [-m MODE] IP PORT [ARGS...] (see rawconnect.c)\n");
	exit(2);
}

/* Fills ss from IP and PORT; returns its length. */
static socklen_t parse_addr(const char *ip, const char *port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)atoi(port));
		return sizeof(*sin);
	}
	if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)atoi(port));
		return sizeof(*sin6);
	}
	fprintf(stderr, "rawconnect: not an IP address: %s\n", ip);
	exit(2);
}

static int request(char *req, size_t cap, const char *path, const char *host)
{
	int n = snprintf(req, cap, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n",
	                 path ? path : "/", host);
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "rawconnect: the path is too long\n");
		exit(2);
	}
	return n;
}

static long send_all(long fd, const char *buf, int n)
{
	long ret = 0;
	for (int off = 0; off < n; off += (int)ret) {
		ret = raw6(SYS_sendto, fd, (long)(buf + off), n - off, MSG_NOSIGNAL, 0,
		           0);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Reads up to the end of the status line and prints it. */
static int print_status(long fd)
{
	char buf[4096];
	size_t got = 0;
	while (got < sizeof(buf) - 1) {
		long ret = raw3(SYS_read, fd, (long)(buf + got),
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
	raw3(SYS_close, fd, 0, 0);
	if (got == 0) {
		printf("read: EOF before a status line\n");
		return 1;
	}
	printf("%s\n", buf);
	return 0;
}

/* connect, or the GET with MSG_FASTOPEN through sendto / sendmsg */
static int tcp_get(const char *mode, char **argv, int argc)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	char req[512];
	int n = request(req, sizeof(req), argc > 2 ? argv[2] : NULL, argv[0]);

	long fd = raw3(SYS_socket, ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return failed("socket", fd);
	long ret;
	if (strcmp(mode, "connect") == 0) {
		if ((ret = raw3(SYS_connect, fd, (long)&ss, len)) < 0)
			return failed("connect", ret);
		if ((ret = send_all(fd, req, n)) < 0)
			return failed("send", ret);
	} else if (strcmp(mode, "tfo-sendto") == 0) {
		ret = raw6(SYS_sendto, fd, (long)req, n, MSG_FASTOPEN | MSG_NOSIGNAL,
		           (long)&ss, len);
		if (ret < 0)
			return failed("sendto", ret);
		if (ret < n && (ret = send_all(fd, req + ret, n - (int)ret)) < 0)
			return failed("send", ret);
	} else {
		struct iovec iov = {.iov_base = req, .iov_len = (size_t)n};
		struct msghdr mh = {.msg_name = &ss,
		                    .msg_namelen = len,
		                    .msg_iov = &iov,
		                    .msg_iovlen = 1};
		ret = raw3(SYS_sendmsg, fd, (long)&mh, MSG_FASTOPEN | MSG_NOSIGNAL);
		if (ret < 0)
			return failed("sendmsg", ret);
		if (ret < n && (ret = send_all(fd, req + ret, n - (int)ret)) < 0)
			return failed("send", ret);
	}
	return print_status(fd);
}

/* socket and connect with int $0x80: the i386 system calls of a 64-bit
 * process (their pointers are 32 bits: the address is put below 4 GiB). */
static int i386_get(char **argv, int argc)
{
#if defined(__x86_64__)
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	char req[512];
	int n = request(req, sizeof(req), argc > 2 ? argv[2] : NULL, argv[0]);
	void *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED)
		return failed("mmap", -errno);
	memcpy(low, &ss, len);
	long fd, ret;
	/* i386: socket 359, connect 362 */
	__asm__ volatile("int $0x80"
	                 : "=a"(fd)
	                 : "a"(359L), "b"((long)ss.ss_family), "c"((long)SOCK_STREAM),
	                   "d"(0L)
	                 : "memory", "r8", "r9", "r10", "r11");
	if (fd < 0)
		return failed("socket", fd);
	__asm__ volatile("int $0x80"
	                 : "=a"(ret)
	                 : "a"(362L), "b"(fd), "c"((long)(uintptr_t)low), "d"((long)len)
	                 : "memory", "r8", "r9", "r10", "r11");
	if (ret < 0)
		return failed("connect", ret);
	if ((ret = send_all(fd, req, n)) < 0)
		return failed("send", ret);
	return print_status(fd);
#else
	(void)argv;
	(void)argc;
	printf("i386: not x86-64\n");
	return 1;
#endif
}

/* one datagram, four ways */
static int udp_send(const char *mode, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	static char msg[] = "rawconnect datagram\n";
	long fd = raw3(SYS_socket, ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return failed("socket", fd);
	struct iovec iov = {.iov_base = msg, .iov_len = sizeof(msg) - 1};
	struct mmsghdr mm = {.msg_hdr = {.msg_name = &ss,
	                                 .msg_namelen = len,
	                                 .msg_iov = &iov,
	                                 .msg_iovlen = 1}};
	long ret;
	const char *step = mode + 4;
	if (strcmp(mode, "udp-sendto") == 0) {
		ret = raw6(SYS_sendto, fd, (long)msg, (long)iov.iov_len, 0, (long)&ss,
		           len);
	} else if (strcmp(mode, "udp-sendmsg") == 0) {
		ret = raw3(SYS_sendmsg, fd, (long)&mm.msg_hdr, 0);
	} else if (strcmp(mode, "udp-sendmmsg") == 0) {
		ret = raw6(SYS_sendmmsg, fd, (long)&mm, 1, 0, 0, 0);
		if (ret == 1)
			ret = mm.msg_len;
	} else {
		step = "connect";
		ret = raw3(SYS_connect, fd, (long)&ss, len);
		if (ret == 0) {
			step = "write";
			ret = raw3(SYS_write, fd, (long)msg, (long)iov.iov_len);
		}
	}
	if (ret < 0)
		return failed(step, ret);
	printf("sent %ld\n", ret);
	return 0;
}

static _Atomic(unsigned short) *race_port;
static atomic_int race_done;
static unsigned short race_ports[2];

static void *flipper(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !atomic_load_explicit(&race_done, memory_order_relaxed); i++)
		atomic_store_explicit(race_port, race_ports[i & 1], memory_order_relaxed);
	return NULL;
}

/* N connects while another thread flips the port between argv[1] and argv[2] */
static int race(char **argv, int argc)
{
	struct sockaddr_storage ss;
	socklen_t len = parse_addr(argv[0], argv[1], &ss);
	race_ports[0] = htons((unsigned short)atoi(argv[1]));
	race_ports[1] = htons((unsigned short)atoi(argv[2]));
	int n = atoi(argv[3]), direct = 0;
	char req[512];
	int rlen = request(req, sizeof(req), argc > 4 ? argv[4] : NULL, argv[0]);
	race_port = ss.ss_family == AF_INET
	                    ? (void *)&((struct sockaddr_in *)&ss)->sin_port
	                    : (void *)&((struct sockaddr_in6 *)&ss)->sin6_port;
	pthread_t t;
	if (pthread_create(&t, NULL, flipper, NULL) != 0)
		return failed("pthread_create", -EAGAIN);
	for (int i = 0; i < n; i++) {
		long fd = raw3(SYS_socket, ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return failed("socket", fd);
		if (raw3(SYS_connect, fd, (long)&ss, len) == 0) {
			struct sockaddr_storage peer;
			socklen_t plen = sizeof(peer);
			raw3(SYS_getpeername, fd, (long)&peer, (long)&plen);
			unsigned short port = ((struct sockaddr_in *)&peer)->sin_port;
			if (peer.ss_family == AF_INET6)
				port = ((struct sockaddr_in6 *)&peer)->sin6_port;
			if (port == race_ports[1]) {
				direct++;
				/* the whole answer read: the trap logs no broken pipe */
				char buf[4096];
				if (send_all(fd, req, rlen) == 0)
					while (raw3(SYS_read, fd, (long)buf,
					            sizeof(buf)) > 0)
						;
			}
		}
		raw3(SYS_close, fd, 0, 0);
	}
	atomic_store(&race_done, 1);
	pthread_join(t, NULL);
	printf("direct %d of %d\n", direct, n);
	return direct == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *mode = "connect";
	if (argc > 2 && strcmp(argv[1], "-m") == 0) {
		mode = argv[2];
		argv += 2;
		argc -= 2;
	}
	argv++;
	argc--;
	if (argc < 2)
		usage();
	if (strcmp(mode, "connect") == 0 || strncmp(mode, "tfo-send", 8) == 0)
		return argc > 3 ? (usage(), 2) : tcp_get(mode, argv, argc);
	if (strcmp(mode, "i386") == 0)
		return argc > 3 ? (usage(), 2) : i386_get(argv, argc);
	if (strncmp(mode, "udp-", 4) == 0)
		return argc != 2 ? (usage(), 2) : udp_send(mode, argv);
	if (strcmp(mode, "race") == 0)
		return argc < 4 || argc > 5 ? (usage(), 2) : race(argv, argc);
	usage();
}
