/* SPDX-License-Identifier: MIT */
/*
 * Exported descriptor-bookkeeping hooks: close, dup, dup2, dup3,
 * fcntl(F_DUPFD*), close_range and closefrom keep the fd table right, so
 * a reused descriptor number never inherits the state of a closed one.
 * State is dropped before the real close: once the number is free, another
 * thread may get it and give it state of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <unistd.h>

#include "cbind.h"
#include "fdtab.h"
#include "shim.h"
#include "tcp_bg.h"
#include "udp.h"

SHIM_EXPORT int close(int fd)
{
	shim_init();
	const struct fd_entry *e = fdtab_lookup(fd);
	if (((e && (fdtab_kind(e) == FD_UDP_CONTROL || fdtab_kind(e) == FD_SHIM_OWNED)) ||
	     (fd >= 0 && fd == shim_secret_fd)) &&
	    shim_depth == 0) {
		/* the shim's own descriptor: not open, as far as the program knows */
		errno = EBADF;
		return -1;
	}
	fdtab_clear(fd);
	return real_close ? real_close(fd) : (errno = ENOSYS, -1);
}

SHIM_EXPORT int dup(int fd)
{
	shim_init();
	int fd2 = real_dup ? real_dup(fd) : (errno = ENOSYS, -1);
	if (fd2 >= 0)
		fdtab_copy(fd, fd2);
	return fd2;
}

/* dup2/dup3 (flags < 0: dup2): a control connection of the shim's on fd2
 * is moved out of the way first. */
static int dup_onto(int fd, int fd2, int flags)
{
	shim_init();
	bool moved = fd != fd2 && udp_control_evacuate(fd2);
	int rc = flags < 0   ? (real_dup2 ? real_dup2(fd, fd2) : (errno = ENOSYS, -1))
	         : real_dup3 ? real_dup3(fd, fd2, flags)
	                     : (errno = ENOSYS, -1);
	if (rc < 0 && moved) {
		/* fd2 was the control connection's old number, a copy now */
		int err = errno;
		real_close(fd2);
		errno = err;
	}
	if (rc >= 0)
		fdtab_copy(fd, rc);
	return rc;
}

SHIM_EXPORT int dup2(int fd, int fd2)
{
	return dup_onto(fd, fd2, -1);
}

SHIM_EXPORT int dup3(int fd, int fd2, int flags)
{
	return dup_onto(fd, fd2, flags);
}

/* Every fcntl command takes at most one argument, an int or a pointer. */
static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, void *arg)
{
	shim_init();
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	int rc = real(fd, cmd, arg);
	if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		fdtab_copy(fd, rc);
	return rc;
}

SHIM_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(real_fcntl, fd, cmd, arg);
}

SHIM_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(real_fcntl64 ? real_fcntl64 : real_fcntl, fd, cmd, arg);
}

/* close_range() of everything but the memfd with the proxy's credentials,
 * which the programs this one executes need (a program that closes or marks
 * close-on-exec every descriptor before exec: Python's subprocess). */
static int close_range_keep(unsigned first, unsigned last, int flags)
{
	int keep = shim_secret_fd;
	int rc = 0;

	if (!real_close_range) {
		errno = ENOSYS;
		return -1;
	}
	if (keep < 0 || (unsigned)keep < first || (unsigned)keep > last)
		return real_close_range(first, last, flags);
	if ((unsigned)keep > first)
		rc = real_close_range(first, (unsigned)keep - 1, flags);
	if (rc == 0 && (unsigned)keep < last)
		rc = real_close_range((unsigned)keep + 1, last, flags);
	return rc;
}

SHIM_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	shim_init();
	if (!(flags & CLOSE_RANGE_CLOEXEC))
		fdtab_clear_range_of(first, last, FD_UDP_CONTROL);
	int rc = close_range_keep(first, last, flags);
	/* CLOSE_RANGE_CLOEXEC only marks the descriptors; they stay open. */
	if (rc == 0 && !(flags & CLOSE_RANGE_CLOEXEC))
		fdtab_clear_range(first, last);
	return rc;
}

SHIM_EXPORT void closefrom(int lowfd)
{
	shim_init();
	if (lowfd >= 0)
		fdtab_clear_range_of((unsigned)lowfd, UINT_MAX, FD_UDP_CONTROL);
	int keep = shim_secret_fd;
	if (keep >= lowfd && lowfd >= 0 && real_close_range) {
		if (keep > lowfd)
			real_close_range((unsigned)lowfd, (unsigned)keep - 1, 0);
		real_close_range((unsigned)keep + 1, ~0U, 0);
	} else if (real_closefrom) {
		real_closefrom(lowfd);
	}
	if (lowfd >= 0)
		fdtab_clear_range((unsigned)lowfd, UINT_MAX);
}

/* A new descriptor: whatever the table held for its number is stale (closed
 * in a way the shim did not see: fclose(fdopen()), a raw system call), and
 * the socket's class is known from the arguments (domain < 0: asked of the
 * kernel when it matters). */
static int fresh(int fd, int domain, int type, int protocol)
{
	if (fd >= 0) {
		fdtab_new_socket(fd, domain, type, protocol);
		tcp_bg_forget(fd);
	}
	return fd;
}

SHIM_EXPORT int socket(int domain, int type, int protocol)
{
	shim_init();
	return fresh(real_socket ? real_socket(domain, type, protocol)
	                         : (errno = ENOSYS, -1),
	             domain, type, protocol);
}

SHIM_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
	shim_init();
	int rc = real_socketpair ? real_socketpair(domain, type, protocol, sv)
	                         : (errno = ENOSYS, -1);
	if (rc == 0) {
		fresh(sv[0], domain, type, protocol);
		fresh(sv[1], domain, type, protocol);
	}
	return rc;
}

SHIM_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	shim_init();
	int rc = shim_depth == 0 ? cbind_accept(fd, addr, len, 0) : -2;
	if (rc != -2)
		return rc;
	return fresh(real_accept ? real_accept(fd, addr, len) : (errno = ENOSYS, -1), -1,
	             0, 0);
}

SHIM_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	shim_init();
	int rc = shim_depth == 0 ? cbind_accept(fd, addr, len, flags) : -2;
	if (rc != -2)
		return rc;
	return fresh(real_accept4 ? real_accept4(fd, addr, len, flags)
	                          : (errno = ENOSYS, -1),
	             -1, 0, 0);
}
