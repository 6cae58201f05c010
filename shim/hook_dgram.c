/* SPDX-License-Identifier: MIT */
/*
 * Exported I/O hooks for associated UDP sockets (udp.c): send, write and
 * writev on a connected one carry a datagram; recv, recvfrom, recvmsg,
 * recvmmsg, read and readv (and the _FORTIFY_SOURCE names __recv_chk,
 * __recvfrom_chk, __read_chk) strip the SOCKS header. On a TCP socket whose
 * handshake runs in the background (tcp_bg.h) they all answer EAGAIN until
 * it has ended (a blocking socket waits).
 *
 * syscall() itself is interposed for the socket calls a program may make
 * through it instead of through their libc functions: libuv (dig, node)
 * sends and receives its batches with syscall(SYS_sendmmsg/SYS_recvmmsg).
 *
 * Every other descriptor pays one table load and goes straight to libc:
 * these are the hottest functions a program calls. Before the shim has
 * initialised (another library's constructor), read and write go to the
 * kernel directly.
 */
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fdtab.h"
#include "shim.h"
#include "tcp_bg.h"
#include "udp.h"

/* Calls the next definition of fn (resolved first if the shim has not
 * initialised yet), or gives `otherwise` when there is none. */
#define NEXT(fn, args, otherwise)                                                        \
	((real_##fn || (shim_init(), real_##fn)) ? real_##fn args : (otherwise))

/* What the shim did with fd (FD_NONE for nearly every descriptor): the
 * fast path, one table load per call. */
static inline int io_kind(int fd)
{
	const struct fd_entry *e = fdtab_lookup(fd);
	return __builtin_expect(e == NULL, 1) ? FD_NONE : fdtab_kind(e);
}

/* A socket whose handshake runs in the background (tcp_bg.h): true when
 * the call must fail (EAGAIN); a blocking socket waits for the end first. */
static inline bool held_back(int fd, int kind)
{
	return kind == FD_TCP_PENDING && tcp_bg_gate(fd) < 0;
}

/* An associated UDP socket (and not the shim's own call)? */
static inline bool assoc_of(int kind)
{
	return kind == FD_UDP && shim_depth == 0;
}

/* An associated socket connected through the proxy: send() and write()
 * carry datagrams. */
static inline bool connected_assoc(int fd, int kind)
{
	return assoc_of(kind) && udp_is_connected(fd);
}

/* A datagram on a connected associated socket (the caller checked). The
 * re-entrancy guard is never raised across a call that can block: a signal
 * handler that runs meanwhile (or a siglongjmp out of it) must find the shim
 * working. */
static ssize_t dgram_send(int fd, const struct iovec *iov, size_t iovlen, int flags)
{
	struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = iovlen};
	return udp_send_connected(fd, &msg, flags);
}

/* A descriptor the table still takes for an associated socket but that is
 * something else now (closed behind the shim's back, say with
 * syscall(SYS_close) or fclose(fdopen())): forget it and redo the call. */
static bool stale(int fd, ssize_t rc)
{
	if (rc >= 0 || errno != ENOTSOCK)
		return false;
	fdtab_clear(fd);
	return true;
}

static ssize_t recv_buf(int fd, void *buf, size_t n, int flags, struct sockaddr *addr,
                        socklen_t *len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = n};
	struct msghdr msg = {.msg_name = addr,
	                     .msg_namelen = addr && len ? *len : 0,
	                     .msg_iov = &iov,
	                     .msg_iovlen = 1};
	if (!addr || !len)
		msg.msg_name = NULL;
	ssize_t rc = udp_recv(fd, &msg, flags);
	if (rc >= 0 && msg.msg_name)
		*len = msg.msg_namelen;
	return rc;
}

SHIM_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (connected_assoc(fd, kind)) {
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
		return dgram_send(fd, &iov, 1, flags);
	}
	return NEXT(send, (fd, buf, n, flags), (errno = ENOSYS, -1));
}

SHIM_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (connected_assoc(fd, kind)) {
		struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
		ssize_t rc = dgram_send(fd, &iov, 1, 0);
		if (!stale(fd, rc))
			return rc;
	}
	return NEXT(write, (fd, buf, n), syscall(SYS_write, fd, buf, n));
}

SHIM_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (iovcnt >= 0 && connected_assoc(fd, kind)) {
		ssize_t rc = dgram_send(fd, iov, (size_t)iovcnt, 0);
		if (!stale(fd, rc))
			return rc;
	}
	return NEXT(writev, (fd, iov, iovcnt), syscall(SYS_writev, fd, iov, iovcnt));
}

SHIM_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (assoc_of(kind))
		return recv_buf(fd, buf, n, flags, NULL, NULL);
	return NEXT(recv, (fd, buf, n, flags), (errno = ENOSYS, -1));
}

SHIM_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
                             struct sockaddr *addr, socklen_t *len)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (assoc_of(kind))
		return recv_buf(fd, buf, n, flags, addr, len);
	return NEXT(recvfrom, (fd, buf, n, flags, addr, len), (errno = ENOSYS, -1));
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (assoc_of(kind) && msg)
		return udp_recv(fd, msg, flags);
	return NEXT(recvmsg, (fd, msg, flags), (errno = ENOSYS, -1));
}

/*
 * One datagram at a time: the first as the socket and flags say, the rest
 * without waiting when MSG_WAITFORONE asks for that. (The timeout is the
 * kernel's loose one: it is checked only after a datagram arrives, so a
 * caller cannot rely on it; it is not applied here.)
 */
SHIM_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags,
                         struct timespec *timeout)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	bool assoc = assoc_of(kind);
	if (!assoc || !vec) {
		return NEXT(recvmmsg, (fd, vec, n, flags, timeout), (errno = ENOSYS, -1));
	}
	unsigned int done = 0;
	for (; done < n; done++) {
		int f = flags & ~MSG_WAITFORONE;
		if (done > 0 && (flags & MSG_WAITFORONE))
			f |= MSG_DONTWAIT;
		ssize_t got = udp_recv(fd, &vec[done].msg_hdr, f);
		if (got < 0)
			return done > 0 ? (int)done : -1;
		vec[done].msg_len = (unsigned int)got;
	}
	return (int)done;
}

SHIM_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	bool assoc = assoc_of(kind);
	/* read() of 0 bytes returns at once, without touching the queue */
	if (assoc && n > 0) {
		ssize_t rc = recv_buf(fd, buf, n, 0, NULL, NULL);
		if (!stale(fd, rc))
			return rc;
	}
	return NEXT(read, (fd, buf, n), syscall(SYS_read, fd, buf, n));
}

SHIM_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (assoc_of(kind) && iovcnt >= 0) {
		struct msghdr msg = {.msg_iov = (struct iovec *)iov,
		                     .msg_iovlen = (size_t)iovcnt};
		return udp_recv(fd, &msg, 0);
	}
	return NEXT(readv, (fd, iov, iovcnt), syscall(SYS_readv, fd, iov, iovcnt));
}

/* The _FORTIFY_SOURCE entry points: the real ones check n against the
 * buffer's size (and abort); an associated socket's receive is checked by
 * the real function too, with nothing to read (n > buflen aborts first). */
SHIM_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (assoc_of(kind) && n > 0 && n <= buflen) {
		ssize_t rc = recv_buf(fd, buf, n, 0, NULL, NULL);
		if (!stale(fd, rc))
			return rc;
	}
	return NEXT(__read_chk, (fd, buf, n, buflen), (errno = ENOSYS, -1));
}

SHIM_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (assoc_of(kind) && n <= buflen)
		return recv_buf(fd, buf, n, flags, NULL, NULL);
	return NEXT(__recv_chk, (fd, buf, n, buflen, flags), (errno = ENOSYS, -1));
}

SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
                                   struct sockaddr *addr, socklen_t *len)
{
	int kind = io_kind(fd);
	if (held_back(fd, kind))
		return -1;
	if (assoc_of(kind) && n <= buflen)
		return recv_buf(fd, buf, n, flags, addr, len);
	return NEXT(__recvfrom_chk, (fd, buf, n, buflen, flags, addr, len),
	            (errno = ENOSYS, -1));
}

/*
 * The kernel directly, for syscall() before the shim has resolved libc's:
 * that happens inside other libraries' constructors, for instance in
 * jemalloc's, with its lock held, where initialising the shim (dlsym
 * allocates on a missing symbol) would deadlock.
 */
static long raw_syscall(long n, const long a[6])
{
	long ret;
#if defined(__x86_64__)
	register long r10 __asm__("r10") = a[3];
	register long r8 __asm__("r8") = a[4];
	register long r9 __asm__("r9") = a[5];
	__asm__ volatile("syscall"
	                 : "=a"(ret)
	                 : "a"(n), "D"(a[0]), "S"(a[1]), "d"(a[2]), "r"(r10), "r"(r8),
	                   "r"(r9)
	                 : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a[0];
	register long x1 __asm__("x1") = a[1];
	register long x2 __asm__("x2") = a[2];
	register long x3 __asm__("x3") = a[3];
	register long x4 __asm__("x4") = a[4];
	register long x5 __asm__("x5") = a[5];
	__asm__ volatile("svc 0"
	                 : "+r"(x0)
	                 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
	                 : "memory");
	ret = x0;
#else
	/* elsewhere: initialise first (the jemalloc case above can deadlock) */
	shim_init();
	if (real_syscall)
		return real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
	errno = ENOSYS;
	return -1;
#endif
	if (ret < 0 && ret > -4096) {
		errno = (int)-ret;
		return -1;
	}
	return ret;
}

/*
 * The generic entry point: socket calls made through it take the same hooks
 * as their libc functions; every other number goes to libc's syscall() with
 * the six argument registers as they came (which is what it reads too).
 */
SHIM_EXPORT long syscall(long number, ...)
{
	va_list ap;
	long a[6];
	va_start(ap, number);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	switch (number) {
	case SYS_sendmmsg:
		return sendmmsg((int)a[0], (struct mmsghdr *)a[1], (unsigned int)a[2],
		                (int)a[3]);
	case SYS_recvmmsg:
		return recvmmsg((int)a[0], (struct mmsghdr *)a[1], (unsigned int)a[2],
		                (int)a[3], (struct timespec *)a[4]);
	case SYS_sendmsg:
		return sendmsg((int)a[0], (const struct msghdr *)a[1], (int)a[2]);
	case SYS_recvmsg:
		return recvmsg((int)a[0], (struct msghdr *)a[1], (int)a[2]);
	case SYS_sendto:
		return sendto((int)a[0], (const void *)a[1], (size_t)a[2], (int)a[3],
		              (const struct sockaddr *)a[4], (socklen_t)a[5]);
	case SYS_recvfrom:
		return recvfrom((int)a[0], (void *)a[1], (size_t)a[2], (int)a[3],
		                (struct sockaddr *)a[4], (socklen_t *)a[5]);
	case SYS_connect:
		return connect((int)a[0], (const struct sockaddr *)a[1], (socklen_t)a[2]);
	default:
		break;
	}
	/* Before the shim has initialised the fd table is empty and there is
	 * no bookkeeping to do: initialising here could deadlock (jemalloc
	 * closes descriptors with syscall() inside its lock). The initialisation
	 * resolves syscall() last (init.c): the pointer itself says whether it
	 * has run, and reading it resolves nothing. */
	if (!__atomic_load_n(&shim_next_syscall, __ATOMIC_ACQUIRE))
		return raw_syscall(number, a);
	switch (number) {
	/* the descriptor bookkeeping, so the fd table stays right */
	case SYS_close:
		return close((int)a[0]);
#ifdef SYS_close_range
	case SYS_close_range:
		return close_range((unsigned int)a[0], (unsigned int)a[1], (int)a[2]);
#endif
	case SYS_dup:
		return dup((int)a[0]);
#ifdef SYS_dup2
	case SYS_dup2:
		return dup2((int)a[0], (int)a[1]);
#endif
	case SYS_dup3:
		return dup3((int)a[0], (int)a[1], (int)a[2]);
	case SYS_fcntl:
		return fcntl((int)a[0], (int)a[1], a[2]);
	default:
		break;
	}
	return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
