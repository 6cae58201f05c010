/* SPDX-License-Identifier: MIT */
/*
 * udp_probe: checks, from inside a socksified program, the datagram
 * semantics that the shim's UDP ASSOCIATE must keep. shim_udp.bats runs it
 * under socksify in the client namespace of scripts/netns against a UDP
 * echo server in the target namespace, which the client cannot reach but
 * through the proxy.
 *
 *   udp_probe mmsg     HOST PORT       sendmmsg/recvmmsg, with and without names
 *   udp_probe peek     HOST PORT       MSG_PEEK, MSG_TRUNC, msg_flags
 *   udp_probe nonblock HOST PORT       O_NONBLOCK, MSG_DONTWAIT, poll readiness
 *   udp_probe connected HOST PORT      write/writev/read/readv/send/recv, getpeername
 *   udp_probe dupfork  HOST PORT       dup, fork, close; no descriptor left behind
 *   udp_probe control  HOST PORT       close/dup2 over the shim's control connection
 *   udp_probe mixed    HOST6 HOST4 PORT one IPv6 socket, IPv6 and IPv4 sources
 *                                       (header lengths 22 and 10 in turn)
 *   udp_probe refused  HOST PORT ERRNO-NAME  sendto fails with that errno
 *   udp_probe forkhandshake HOST PORT  fork() while another thread is in the
 *                                       handshake with a silent proxy: the
 *                                       child's receive on the socket is not
 *                                       stuck on the shim's lock
 *   udp_probe hardening HOST6 HOST4 PORT  the shim stays in the path after a
 *                                       siglongjmp out of a receive and with
 *                                       MSG_FASTOPEN, 24-byte sockaddr_in6,
 *                                       descriptors closed behind its back,
 *                                       close() during another thread's recv;
 *                                       MSG_MORE, UDP_SEGMENT and raw sockets
 *                                       are refused, read() of 0 bytes is 0
 *   udp_probe fortify  HOST PORT       recv/recvfrom/read with lengths known only at
 *                                       run time (built with _FORTIFY_SOURCE, they
 *                                       are __recv_chk, __recvfrom_chk, __read_chk)
 *   udp_probe threads  HOST PORT       4 threads at once: their first datagrams
 *                                       on one shared socket, then sockets of
 *                                       their own with dup and close (for
 *                                       ThreadSanitizer, shim_tsan.bats)
 *
 * HOST is numeric. Every check prints "ok ..." or "FAIL ..."; the exit status
 * is 0 when every check passed, 1 otherwise, 2 for bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

enum { TIMEOUT_MS = 5000 };

static int failures;

static void report(bool good, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(bool good, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(good ? "ok " : "FAIL ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout);
	if (!good)
		failures++;
}

union sa {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	struct sockaddr_storage ss;
};

static socklen_t parse_addr(const char *host, const char *port, union sa *out)
{
	memset(out, 0, sizeof(*out));
	int p = atoi(port);
	if (inet_pton(AF_INET, host, &out->v4.sin_addr) == 1) {
		out->v4.sin_family = AF_INET;
		out->v4.sin_port = htons((uint16_t)p);
		return sizeof(out->v4);
	}
	if (inet_pton(AF_INET6, host, &out->v6.sin6_addr) == 1) {
		out->v6.sin6_family = AF_INET6;
		out->v6.sin6_port = htons((uint16_t)p);
		return sizeof(out->v6);
	}
	fprintf(stderr, "udp_probe: not a numeric address: %s\n", host);
	exit(2);
}

static bool same_addr(const union sa *a, socklen_t alen, const union sa *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return alen >= sizeof(a->v4) && a->v4.sin_port == b->v4.sin_port &&
		       a->v4.sin_addr.s_addr == b->v4.sin_addr.s_addr;
	return alen >= sizeof(a->v6) && a->v6.sin6_port == b->v6.sin6_port &&
	       memcmp(&a->v6.sin6_addr, &b->v6.sin6_addr, 16) == 0;
}

static const char *fmt_addr(const union sa *a)
{
	static char buf[INET6_ADDRSTRLEN + 8];
	char ip[INET6_ADDRSTRLEN] = "?";
	if (a->sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &a->v4.sin_addr, ip, sizeof(ip));
		snprintf(buf, sizeof(buf), "%s:%u", ip, ntohs(a->v4.sin_port));
	} else {
		inet_ntop(AF_INET6, &a->v6.sin6_addr, ip, sizeof(ip));
		snprintf(buf, sizeof(buf), "[%s]:%u", ip, ntohs(a->v6.sin6_port));
	}
	return buf;
}

static int udp_socket(int family)
{
	int fd = socket(family, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("udp_probe: socket");
		exit(1);
	}
	return fd;
}

static bool wait_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, TIMEOUT_MS) == 1 && (p.revents & POLLIN);
}

static void fill(char *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(seed * 31 + i * 7 + (i >> 8));
}

/* One echo round trip: sendto, then recvfrom of the whole reply. */
static bool echo_once(int fd, const union sa *dst, socklen_t len, size_t n, unsigned seed)
{
	char out[2048], in[2048];
	union sa from;
	socklen_t flen = sizeof(from);
	if (n > sizeof(out))
		return false;
	fill(out, n, seed);
	if (sendto(fd, out, n, 0, &dst->sa, len) != (ssize_t)n || !wait_readable(fd))
		return false;
	ssize_t got = recvfrom(fd, in, sizeof(in), 0, &from.sa, &flen);
	return got == (ssize_t)n && memcmp(in, out, n) == 0 &&
	       same_addr(&from, flen, dst);
}

/* Socket descriptors this process holds. */
static int count_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
		    S_ISSOCK(st.st_mode) && atoi(de->d_name) != dirfd(d))
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* A socket descriptor at or above `min`, that the program did not open. */
static int find_socket_from(int min)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int found = -1;
	while (d && (de = readdir(d))) {
		struct stat st;
		int fd = atoi(de->d_name);
		if (de->d_name[0] != '.' && fd >= min && fd != dirfd(d) &&
		    fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISSOCK(st.st_mode))
			found = fd;
	}
	if (d)
		closedir(d);
	return found;
}

/* --- checks ----------------------------------------------------------------------- */

static int cmd_mmsg(const union sa *dst, socklen_t len)
{
	enum { N = 3 };
	char out[N][64], in[N][128];
	struct iovec oiov[N], iiov[N];
	struct mmsghdr om[N], im[N];
	union sa from[N];
	int fd = udp_socket(dst->sa.sa_family);

	for (int round = 0; round < 2; round++) {
		bool named = round == 0;
		if (!named && connect(fd, &dst->sa, len) < 0) {
			report(false, "connect: %s", strerror(errno));
			break;
		}
		memset(om, 0, sizeof(om));
		memset(im, 0, sizeof(im));
		for (int i = 0; i < N; i++) {
			snprintf(out[i], sizeof(out[i]), "mmsg round %d datagram %d",
			         round, i);
			oiov[i] = (struct iovec){out[i], strlen(out[i])};
			om[i].msg_hdr.msg_iov = &oiov[i];
			om[i].msg_hdr.msg_iovlen = 1;
			if (named) {
				om[i].msg_hdr.msg_name = (void *)dst;
				om[i].msg_hdr.msg_namelen = len;
			}
		}
		int sent = sendmmsg(fd, om, N, 0);
		report(sent == N, "sendmmsg %s names sent %d of %d (%s)",
		       named ? "with" : "without", sent, N,
		       sent < 0 ? strerror(errno) : "");
		for (int i = 0; i < N; i++)
			report(om[i].msg_len == strlen(out[i]),
			       "sendmmsg msg_len %d = %u", i, om[i].msg_len);
		int got = 0;
		while (got < N && wait_readable(fd)) {
			for (int i = got; i < N; i++) {
				iiov[i] = (struct iovec){in[i], sizeof(in[i])};
				im[i].msg_hdr =
				        (struct msghdr){.msg_name = &from[i],
				                        .msg_namelen = sizeof(from[i]),
				                        .msg_iov = &iiov[i],
				                        .msg_iovlen = 1};
			}
			int r = recvmmsg(fd, im + got, N - got, MSG_WAITFORONE, NULL);
			if (r <= 0)
				break;
			got += r;
		}
		report(got == N, "recvmmsg got %d of %d", got, N);
		for (int i = 0; i < got; i++) {
			bool match = false;
			for (int j = 0; j < N; j++)
				match |= im[i].msg_len == strlen(out[j]) &&
				         memcmp(in[i], out[j], im[i].msg_len) == 0;
			report(match,
			       "recvmmsg datagram %d is one that was sent (%u bytes)", i,
			       im[i].msg_len);
			report(same_addr(&from[i], im[i].msg_hdr.msg_namelen, dst),
			       "recvmmsg datagram %d from %s", i, fmt_addr(&from[i]));
		}
	}
	close(fd);
	return failures ? 1 : 0;
}

/* An IPv4 destination named with sa_family AF_UNSPEC: the kernel's IPv4 UDP
 * sends to it as to AF_INET, so the shim must too (never around the proxy):
 * sendto, sendmsg and a sendmmsg batch, each echoed back. */
static int cmd_unspec(const union sa *dst, socklen_t len)
{
	char in[64];
	union sa u = *dst;
	int fd = udp_socket(AF_INET);

	u.sa.sa_family = AF_UNSPEC;
	ssize_t n = sendto(fd, "unspec-sendto", 13, 0, &u.sa, len);
	report(n == 13 && wait_readable(fd) && recv(fd, in, sizeof(in), 0) == 13,
	       "sendto to an AF_UNSPEC address: %zd, echoed", n);
	struct iovec iov = {"unspec-sendmsg", 14};
	struct msghdr m = {
	        .msg_name = &u, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1};
	n = sendmsg(fd, &m, 0);
	report(n == 14 && wait_readable(fd) && recv(fd, in, sizeof(in), 0) == 14,
	       "sendmsg to an AF_UNSPEC address: %zd, echoed", n);
	struct mmsghdr v = {.msg_hdr = m};
	iov = (struct iovec){"unspec-mmsg", 11};
	int k = sendmmsg(fd, &v, 1, 0);
	report(k == 1 && wait_readable(fd) && recv(fd, in, sizeof(in), 0) == 11,
	       "sendmmsg to an AF_UNSPEC address: %d, echoed", k);
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_peek(const union sa *dst, socklen_t len)
{
	char out[100], in[200];
	union sa from;
	socklen_t flen;
	int fd = udp_socket(dst->sa.sa_family);
	fill(out, sizeof(out), 7);

	sendto(fd, out, sizeof(out), 0, &dst->sa, len);
	report(wait_readable(fd), "readable after the echo");
	ssize_t n = recv(fd, in, 10, MSG_PEEK);
	report(n == 10 && memcmp(in, out, 10) == 0, "MSG_PEEK of 10 bytes gives 10: %zd",
	       n);
	flen = sizeof(from);
	n = recvfrom(fd, in, sizeof(in), MSG_PEEK, &from.sa, &flen);
	report(n == 100 && memcmp(in, out, 100) == 0 && same_addr(&from, flen, dst),
	       "MSG_PEEK whole: %zd bytes from %s", n, fmt_addr(&from));
	n = recv(fd, in, 10, MSG_PEEK | MSG_TRUNC);
	report(n == 100, "MSG_PEEK|MSG_TRUNC gives the real length: %zd", n);
	memset(in, 0, sizeof(in));
	n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
	report(n == 100 && memcmp(in, out, 100) == 0, "the datagram is still there: %zd",
	       n);
	n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
	report(n < 0 && errno == EAGAIN, "and then gone: %zd (%s)", n,
	       n < 0 ? strerror(errno) : "data");

	sendto(fd, out, sizeof(out), 0, &dst->sa, len);
	wait_readable(fd);
	memset(in, 0, sizeof(in));
	n = recv(fd, in, 10, MSG_TRUNC);
	report(n == 100 && memcmp(in, out, 10) == 0,
	       "MSG_TRUNC into 10 bytes returns %zd", n);
	report(recv(fd, in, sizeof(in), MSG_DONTWAIT) < 0 && errno == EAGAIN,
	       "the truncated datagram was consumed");

	sendto(fd, out, sizeof(out), 0, &dst->sa, len);
	wait_readable(fd);
	struct iovec iov[2] = {{in, 7}, {in + 7, 5}};
	struct msghdr msg = {.msg_name = &from,
	                     .msg_namelen = sizeof(from),
	                     .msg_iov = iov,
	                     .msg_iovlen = 2};
	n = recvmsg(fd, &msg, 0);
	report(n == 12 && (msg.msg_flags & MSG_TRUNC) && memcmp(in, out, 12) == 0,
	       "recvmsg into 7+5 bytes: %zd, MSG_TRUNC %s", n,
	       msg.msg_flags & MSG_TRUNC ? "set" : "not set");
	report(same_addr(&from, msg.msg_namelen, dst), "recvmsg source %s",
	       fmt_addr(&from));

	/* a short address buffer: truncated, and the full length reported */
	sendto(fd, out, 5, 0, &dst->sa, len);
	wait_readable(fd);
	union sa small;
	flen = 4;
	memset(&small, 0xee, sizeof(small));
	n = recvfrom(fd, in, sizeof(in), 0, &small.sa, &flen);
	report(n == 5 && flen == len,
	       "recvfrom with a 4-byte address buffer: %zd, len %u", n, flen);
	report(((unsigned char *)&small)[4] == 0xee,
	       "nothing written past those 4 bytes");
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_nonblock(const union sa *dst, socklen_t len)
{
	char out[32] = "nonblocking", in[64];
	int fd = udp_socket(dst->sa.sa_family);

	report(echo_once(fd, dst, len, 20, 1), "a first round trip associates");
	ssize_t n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
	report(n < 0 && errno == EAGAIN, "MSG_DONTWAIT with nothing queued: EAGAIN");
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	n = recvfrom(fd, in, sizeof(in), 0, NULL, NULL);
	report(n < 0 && errno == EAGAIN, "O_NONBLOCK with nothing queued: EAGAIN");
	n = read(fd, in, sizeof(in));
	report(n < 0 && errno == EAGAIN, "read() O_NONBLOCK: EAGAIN");
	struct pollfd p = {.fd = fd, .events = POLLIN};
	report(poll(&p, 1, 0) == 0, "poll: not readable yet");
	sendto(fd, out, strlen(out), 0, &dst->sa, len);
	report(poll(&p, 1, TIMEOUT_MS) == 1 && (p.revents & POLLIN),
	       "poll: readable once the echo is back");
	n = recv(fd, in, sizeof(in), 0);
	report(n == (ssize_t)strlen(out) && memcmp(in, out, (size_t)n) == 0,
	       "the echo: %zd bytes", n);
	report(poll(&p, 1, 0) == 0, "poll: not readable after it was read");
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_connected(const union sa *dst, socklen_t len)
{
	char in[256];
	union sa peer, from;
	socklen_t plen = sizeof(peer);
	int fd = udp_socket(dst->sa.sa_family);

	report(connect(fd, &dst->sa, len) == 0, "connect");
	report(getpeername(fd, &peer.sa, &plen) == 0 && same_addr(&peer, plen, dst),
	       "getpeername %s", fmt_addr(&peer));
	report(write(fd, "via write", 9) == 9, "write");
	wait_readable(fd);
	ssize_t n = read(fd, in, sizeof(in));
	report(n == 9 && memcmp(in, "via write", 9) == 0, "read: %zd", n);

	struct iovec wv[3] = {{"via ", 4}, {"write", 5}, {"v", 1}};
	report(writev(fd, wv, 3) == 10, "writev of 3 pieces");
	wait_readable(fd);
	char a[3], b[64];
	struct iovec rv[2] = {{a, 3}, {b, sizeof(b)}};
	n = readv(fd, rv, 2);
	report(n == 10 && memcmp(a, "via", 3) == 0 && memcmp(b, " writev", 7) == 0,
	       "readv into 3 + 64: %zd", n);

	report(send(fd, "via send", 8, 0) == 8, "send");
	wait_readable(fd);
	socklen_t flen = sizeof(from);
	n = recvfrom(fd, in, sizeof(in), 0, &from.sa, &flen);
	report(n == 8 && same_addr(&from, flen, dst),
	       "recvfrom on a connected socket: %zd from %s", n, fmt_addr(&from));

	/* sendto with the peer's own address works on a connected socket */
	report(sendto(fd, "sendto peer", 11, 0, &dst->sa, len) == 11, "sendto the peer");
	wait_readable(fd);
	n = recv(fd, in, sizeof(in), 0);
	report(n == 11, "recv: %zd", n);

	/* disconnect: getpeername fails, sendto still goes through the proxy */
	struct sockaddr unspec = {.sa_family = AF_UNSPEC};
	report(connect(fd, &unspec, sizeof(unspec)) == 0, "connect(AF_UNSPEC)");
	plen = sizeof(peer);
	report(getpeername(fd, &peer.sa, &plen) < 0 && errno == ENOTCONN,
	       "getpeername after disconnect: ENOTCONN");
	report(echo_once(fd, dst, len, 33, 3), "sendto/recvfrom after disconnect");
	int d = dup(fd);
	report(echo_once(d, dst, len, 34, 4), "and on a dup of it");
	report(connect(d, &dst->sa, len) == 0 && write(d, "again", 5) == 5 &&
	               wait_readable(fd) && read(fd, in, sizeof(in)) == 5,
	       "connected again through the dup, the echo read through the original");
	close(d);
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_dupfork(const union sa *dst, socklen_t len)
{
	int before = count_sockets();
	int fd = udp_socket(dst->sa.sa_family);
	report(echo_once(fd, dst, len, 64, 1), "round trip on the socket");
	int during = count_sockets();
	report(during == before + 2,
	       "the socket and one control connection: %d -> %d sockets", before, during);

	int d = dup(fd);
	report(echo_once(d, dst, len, 64, 2), "round trip on a dup");
	close(fd);
	report(echo_once(d, dst, len, 64, 3),
	       "the dup works after the original is closed");

	pid_t pid = fork();
	if (pid == 0) {
		bool good = echo_once(d, dst, len, 64, 4);
		close(d);
		_exit(good ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	report(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "a forked child's round trip");
	report(echo_once(d, dst, len, 64, 5),
	       "the parent's round trip after the child closed and exited");

	int d2 = fcntl(d, F_DUPFD_CLOEXEC, 0);
	report(dup2(d, 100) == 100, "dup2 to 100");
	close(d);
	report(echo_once(100, dst, len, 64, 6), "round trip on the dup2 copy");
	close(100);
	report(echo_once(d2, dst, len, 64, 7), "round trip on the F_DUPFD copy");
	close(d2);
	int after = count_sockets();
	report(after == before,
	       "after the last close no socket is left: %d sockets (%d before)", after,
	       before);
	return failures ? 1 : 0;
}

static int cmd_control(const union sa *dst, socklen_t len)
{
	int fd = udp_socket(dst->sa.sa_family);
	report(echo_once(fd, dst, len, 64, 1), "round trip");
	int ctl = find_socket_from(fd + 1);
	report(ctl > fd, "a control connection above the program's descriptors: %d", ctl);
	if (ctl <= fd)
		return 1;
	errno = 0;
	report(close(ctl) < 0 && errno == EBADF, "close() of it: EBADF (%s)",
	       strerror(errno));
	report(echo_once(fd, dst, len, 64, 2), "round trip after that close()");
	int devnull = open("/dev/null", O_RDONLY);
	report(dup2(devnull, ctl) == ctl, "dup2 over its number");
	report(echo_once(fd, dst, len, 64, 3),
	       "round trip after the dup2: the control moved");
	struct stat st;
	report(fstat(ctl, &st) == 0 && S_ISCHR(st.st_mode),
	       "the number is the program's now");
	report(close(ctl) == 0, "and closes normally");
	close(devnull);
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_mixed(const union sa *v6, socklen_t len6, const union sa *v4)
{
	/* IPv4 through an AF_INET6 socket: the v4-mapped form */
	union sa mapped;
	memset(&mapped, 0, sizeof(mapped));
	mapped.v6.sin6_family = AF_INET6;
	mapped.v6.sin6_port = v4->v4.sin_port;
	mapped.v6.sin6_addr.s6_addr[10] = mapped.v6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&mapped.v6.sin6_addr.s6_addr[12], &v4->v4.sin_addr, 4);

	int fd = udp_socket(AF_INET6);
	char out[1000], in[1000];
	const union sa *dsts[] = {v6, &mapped, &mapped, v6, v6, &mapped};
	for (unsigned i = 0; i < sizeof(dsts) / sizeof(dsts[0]); i++) {
		/* a buffer exactly the payload's size: a wrong header guess must
		 * not cost a byte */
		size_t n = 900 + i;
		fill(out, n, i);
		memset(in, 0, sizeof(in));
		sendto(fd, out, n, 0, &dsts[i]->sa, len6);
		wait_readable(fd);
		union sa from;
		socklen_t flen = sizeof(from);
		struct iovec iov = {in, n};
		struct msghdr msg = {.msg_name = &from,
		                     .msg_namelen = flen,
		                     .msg_iov = &iov,
		                     .msg_iovlen = 1};
		ssize_t got = recvmsg(fd, &msg, 0);
		report(got == (ssize_t)n && memcmp(in, out, n) == 0 &&
		               !(msg.msg_flags & MSG_TRUNC) &&
		               same_addr(&from, msg.msg_namelen, dsts[i]),
		       "datagram %u (%zu bytes) from %s: %zd bytes, %s", i, n,
		       fmt_addr(&from), got,
		       got == (ssize_t)n && memcmp(in, out, n) == 0 ? "intact"
		                                                    : "corrupt");
	}
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_refused(const union sa *dst, socklen_t len, const char *want)
{
	int fd = udp_socket(dst->sa.sa_family);
	errno = 0;
	ssize_t n = sendto(fd, "x", 1, 0, &dst->sa, len);
	const char *got = n < 0 ? strerrorname_np(errno) : "success";
	report(n < 0 && got && strcmp(got, want) == 0, "sendto fails with %s (got %s)",
	       want, got ? got : "?");
	errno = 0;
	n = sendto(fd, "x", 1, 0, &dst->sa, len);
	got = n < 0 ? strerrorname_np(errno) : "success";
	report(n < 0 && got && strcmp(got, want) == 0, "a second sendto too (got %s)",
	       got ? got : "?");
	int c = udp_socket(dst->sa.sa_family);
	errno = 0;
	got = connect(c, &dst->sa, len) < 0 ? strerrorname_np(errno) : "success";
	report(got && strcmp(got, want) == 0, "connect fails with %s (got %s)", want,
	       got ? got : "?");
	close(c);
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_fortify(const union sa *dst, socklen_t len)
{
	/* a length the compiler cannot know: the _chk entry points */
	volatile size_t vn = 41;
	size_t n = vn;
	char in[64], out[64];
	union sa from;
	socklen_t flen = sizeof(from);
	int fd = udp_socket(dst->sa.sa_family);
	fill(out, n, 9);

	sendto(fd, out, n, 0, &dst->sa, len);
	wait_readable(fd);
	ssize_t got = recvfrom(fd, in, n, 0, &from.sa, &flen);
	report(got == (ssize_t)n && memcmp(in, out, n) == 0 &&
	               same_addr(&from, flen, dst),
	       "recvfrom (__recvfrom_chk when fortified): %zd bytes from %s", got,
	       fmt_addr(&from));
	sendto(fd, out, n, 0, &dst->sa, len);
	wait_readable(fd);
	got = recv(fd, in, n, 0);
	report(got == (ssize_t)n && memcmp(in, out, n) == 0,
	       "recv (__recv_chk): %zd bytes", got);
	report(connect(fd, &dst->sa, len) == 0, "connect");
	sendto(fd, out, n, 0, &dst->sa, len);
	wait_readable(fd);
	got = read(fd, in, n);
	report(got == (ssize_t)n && memcmp(in, out, n) == 0,
	       "read (__read_chk): %zd bytes", got);
	close(fd);
	return failures ? 1 : 0;
}

static sigjmp_buf jump;

static void on_alarm(int sig)
{
	(void)sig;
	siglongjmp(jump, 1);
}

struct recv_job {
	int fd;
	ssize_t got;
};

static void *recv_thread(void *arg)
{
	struct recv_job *job = arg;
	char buf[256];
	job->got = recv(job->fd, buf, sizeof(buf), 0);
	return NULL;
}

struct send_job {
	int fd;
	const union sa *dst;
	socklen_t len;
	ssize_t rc;
	int err;
};

static void *send_thread(void *arg)
{
	struct send_job *job = arg;
	job->rc = sendto(job->fd, "x", 1, 0, &job->dst->sa, job->len);
	job->err = errno;
	return NULL;
}

static int cmd_forkhandshake(const union sa *dst, socklen_t len)
{
	int fd = udp_socket(dst->sa.sa_family);
	struct send_job job = {.fd = fd, .dst = dst, .len = len};
	pthread_t t;
	pthread_create(&t, NULL, send_thread, &job);
	usleep(300000); /* the thread is in the handshake now */
	pid_t pid = fork();
	if (pid == 0) {
		alarm(5); /* stuck: killed by SIGALRM */
		struct timeval tv = {.tv_sec = 1};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		char buf[16];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		_exit(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	report(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "the child's recv() timed out as asked (%s)",
	       WIFSIGNALED(status) ? "killed: stuck on a lock" : "exited");
	pthread_join(t, NULL);
	report(job.rc < 0, "the parent's sendto failed against the silent proxy (%s)",
	       strerror(job.err));
	close(fd);
	return failures ? 1 : 0;
}

static int cmd_hardening(const union sa *v6, socklen_t len6, const union sa *v4)
{
	char buf[256];
	socklen_t len4 = sizeof(v4->v4);
	(void)len6; /* the point is 24 bytes, not the full length */

	/* a siglongjmp out of a blocking receive: the shim still proxies */
	int fd = udp_socket(AF_INET);
	report(echo_once(fd, v4, len4, 10, 1), "associated");
	signal(SIGALRM, on_alarm);
	if (sigsetjmp(jump, 1) == 0) {
		alarm(1);
		recv(fd, buf, sizeof(buf), 0); /* nothing comes: the alarm jumps out */
		report(false, "the receive returned");
	}
	alarm(0);
	int fresh = udp_socket(AF_INET);
	report(echo_once(fresh, v4, len4, 11, 2),
	       "after a siglongjmp out of recv, a new socket's round trip");
	close(fresh);
	close(fd);

	/* MSG_FASTOPEN on a UDP socket */
	fd = udp_socket(AF_INET);
	ssize_t n = sendto(fd, "tfo", 3, MSG_FASTOPEN, &v4->sa, len4);
	report(n == 3 && wait_readable(fd) && recv(fd, buf, sizeof(buf), 0) == 3,
	       "sendto(MSG_FASTOPEN) on UDP goes through the proxy: %zd", n);
	close(fd);

	/* the 24-byte RFC 2133 sockaddr_in6 */
	fd = udp_socket(AF_INET6);
	n = sendto(fd, "short6", 6, 0, &v6->sa, 24);
	union sa from;
	socklen_t flen = sizeof(from);
	report(n == 6 && wait_readable(fd) &&
	               recvfrom(fd, buf, sizeof(buf), 0, &from.sa, &flen) == 6,
	       "sendto with a 24-byte sockaddr_in6: %zd", n);
	close(fd);

	/* closed behind the shim's back, the number reused */
	fd = udp_socket(AF_INET);
	echo_once(fd, v4, len4, 12, 3);
	syscall(SYS_close, fd);
	int again = udp_socket(AF_INET);
	report(again == fd && echo_once(again, v4, len4, 13, 4),
	       "syscall(SYS_close), the number reused: round trip");
	FILE *f = fdopen(again, "r+");
	if (f)
		fclose(f); /* closes the descriptor inside libc */
	int tcp = socket(AF_INET, SOCK_STREAM, 0);
	report(tcp == again, "a TCP socket on that number after fclose(fdopen())");
	int one = udp_socket(AF_INET);
	report(echo_once(one, v4, len4, 14, 5), "a UDP socket next to it works");
	close(one);
	close(tcp);

	/* close() while another thread waits in recv(): the reply still wakes it */
	fd = udp_socket(AF_INET);
	echo_once(fd, v4, len4, 15, 6);
	struct timeval tv = {.tv_sec = 3};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct recv_job job = {.fd = fd, .got = -2};
	pthread_t t;
	pthread_create(&t, NULL, recv_thread, &job);
	usleep(100000);
	sendto(fd, "late", 4, 0, &v4->sa, len4);
	close(fd);
	pthread_join(t, NULL);
	report(job.got == 4 || job.got == -1,
	       "close() during another thread's recv(): %zd", job.got);

	/* refused: they would break the framing */
	fd = udp_socket(AF_INET);
	errno = 0;
	n = sendto(fd, "more", 4, MSG_MORE, &v4->sa, len4);
	report(n < 0 && errno == EOPNOTSUPP, "MSG_MORE: EOPNOTSUPP (%s)",
	       strerror(errno));
	char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
	struct iovec iov = {"gso", 3};
	struct msghdr msg = {.msg_name = (void *)v4,
	                     .msg_namelen = len4,
	                     .msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = control,
	                     .msg_controllen = sizeof(control)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
	uint16_t seg = 1;
	memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	errno = 0;
	n = sendmsg(fd, &msg, 0);
	report(n < 0 && errno == EOPNOTSUPP, "UDP_SEGMENT: EOPNOTSUPP (%s)",
	       strerror(errno));
	report(echo_once(fd, v4, len4, 16, 7), "the socket still works");
	report(read(fd, buf, 0) == 0, "read() of 0 bytes returns 0 at once");
	close(fd);
	int raw = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (raw >= 0) {
		errno = 0;
		n = sendto(raw, "\x08\0\0\0\0\0\0\0", 8, 0, &v4->sa, len4);
		report(n < 0 && errno == EPROTONOSUPPORT, "a raw socket is refused (%s)",
		       strerror(errno));
		close(raw);
	}
	return failures ? 1 : 0;
}

/* --- threads ------------------------------------------------------------------------ */

enum { NTHREADS = 4, THREAD_ROUNDS = 8 };

struct thread_job {
	const union sa *dst;
	socklen_t len;
	int shared; /* the socket every thread sends its first datagram on */
	int index;
	pthread_barrier_t *start;
	bool sent;  /* its datagram on the shared socket went out */
	int rounds; /* round trips on its own sockets that came back */
};

static void *udp_worker(void *arg)
{
	struct thread_job *job = arg;
	char msg[32];
	int n = snprintf(msg, sizeof(msg), "thread %d", job->index);

	pthread_barrier_wait(job->start);
	job->sent = sendto(job->shared, msg, (size_t)n, 0, &job->dst->sa, job->len) == n;
	for (int r = 0; r < THREAD_ROUNDS; r++) {
		unsigned seed = (unsigned)(job->index * 100 + r);
		int fd = udp_socket(job->dst->sa.sa_family);
		bool good = echo_once(fd, job->dst, job->len, 16 + (size_t)r, seed);
		int d = dup(fd);
		good = good && echo_once(d, job->dst, job->len, 48, seed + 1);
		close(fd);
		good = good && echo_once(d, job->dst, job->len, 64, seed + 2);
		close(d);
		job->rounds += good;
	}
	return NULL;
}

static int cmd_threads(const union sa *dst, socklen_t len)
{
	struct thread_job jobs[NTHREADS];
	pthread_t t[NTHREADS];
	pthread_barrier_t start;
	int before = count_sockets();
	int shared = udp_socket(dst->sa.sa_family);

	pthread_barrier_init(&start, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		jobs[i] = (struct thread_job){.dst = dst,
		                              .len = len,
		                              .shared = shared,
		                              .index = i,
		                              .start = &start};
		pthread_create(&t[i], NULL, udp_worker, &jobs[i]);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);

	int sent = 0, echoed = 0;
	bool seen[NTHREADS] = {false};
	for (int i = 0; i < NTHREADS; i++) {
		sent += jobs[i].sent;
		report(jobs[i].rounds == THREAD_ROUNDS,
		       "thread %d: %d of %d round trips on sockets of its own (with dup, "
		       "close)",
		       i, jobs[i].rounds, THREAD_ROUNDS);
	}
	report(sent == NTHREADS,
	       "%d threads sent their first datagram on one socket at once", sent);
	while (echoed < sent && wait_readable(shared)) {
		char in[64];
		union sa from;
		socklen_t flen = sizeof(from);
		int i;
		ssize_t n = recvfrom(shared, in, sizeof(in) - 1, 0, &from.sa, &flen);
		if (n <= 0)
			break;
		in[n] = '\0';
		if (sscanf(in, "thread %d", &i) == 1 && i >= 0 && i < NTHREADS &&
		    !seen[i] && same_addr(&from, flen, dst)) {
			seen[i] = true;
			echoed++;
		}
	}
	report(echoed == NTHREADS, "the shared socket got %d of %d echoes back", echoed,
	       NTHREADS);
	close(shared);
	int after = count_sockets();
	report(after == before, "no socket left behind: %d sockets (%d before)", after,
	       before);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	union sa dst, dst4;
	if (argc < 4)
		goto usage;
	bool two =
	        argc == 5 && (!strcmp(argv[1], "mixed") || !strcmp(argv[1], "hardening"));
	socklen_t len = parse_addr(argv[2], argv[two ? 4 : 3], &dst);
	const char *cmd = argv[1];
	if (!strcmp(cmd, "mmsg") && argc == 4)
		return cmd_mmsg(&dst, len);
	if (!strcmp(cmd, "peek") && argc == 4)
		return cmd_peek(&dst, len);
	if (!strcmp(cmd, "unspec") && argc == 4)
		return cmd_unspec(&dst, len);
	if (!strcmp(cmd, "nonblock") && argc == 4)
		return cmd_nonblock(&dst, len);
	if (!strcmp(cmd, "connected") && argc == 4)
		return cmd_connected(&dst, len);
	if (!strcmp(cmd, "dupfork") && argc == 4)
		return cmd_dupfork(&dst, len);
	if (!strcmp(cmd, "control") && argc == 4)
		return cmd_control(&dst, len);
	if (!strcmp(cmd, "hardening") && argc == 5) {
		parse_addr(argv[3], argv[4], &dst4);
		return cmd_hardening(&dst, len, &dst4);
	}
	if (!strcmp(cmd, "mixed") && argc == 5) {
		parse_addr(argv[3], argv[4], &dst4);
		return cmd_mixed(&dst, len, &dst4);
	}
	if (!strcmp(cmd, "fortify") && argc == 4)
		return cmd_fortify(&dst, len);
	if (!strcmp(cmd, "forkhandshake") && argc == 4)
		return cmd_forkhandshake(&dst, len);
	if (!strcmp(cmd, "threads") && argc == 4)
		return cmd_threads(&dst, len);
	if (!strcmp(cmd, "refused") && argc == 5)
		return cmd_refused(&dst, len, argv[4]);
usage:
	fprintf(stderr,
	        "usage: udp_probe mmsg|peek|unspec|nonblock|connected|dupfork|control|"
	        "fortify|forkhandshake|threads HOST PORT\n"
	        "       udp_probe mixed HOST6 HOST4 PORT\n"
	        "       udp_probe refused HOST PORT ERRNO-NAME\n");
	return 2;
}
