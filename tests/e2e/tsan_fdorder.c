/* SPDX-License-Identifier: MIT */
/*
 * Preloaded after libsocksify.so in the ThreadSanitizer pass (shim_tsan.bats,
 * which the launcher turns into LD_PRELOAD=libsocksify.so:libsxtsanfd.so): it
 * tells ThreadSanitizer how the kernel orders descriptor numbers.
 *
 * The kernel hands a number out again only after the close() that freed it:
 * whatever one thread did with the shim's fd table entry for N before it closed
 * N happens before what another thread does with the entry after socket(),
 * accept() or dup() gave it N again. ThreadSanitizer cannot see that ordering
 * (it happens in the kernel), so without this every reuse of a number by
 * another thread shows up as a data race on the table entry. Here each call
 * that frees a number releases that number's key and each call that returns a
 * number acquires it, which adds exactly the kernel's ordering and nothing
 * more: two threads working on the same descriptor at the same time are
 * still checked.
 *
 * The shim's real_* pointers (dlsym(RTLD_NEXT)) find these wrappers, which
 * call on to ThreadSanitizer's interceptors. Only the calls that make or free
 * socket numbers are wrapped (the fd table tracks sockets only); open() and
 * pipe() are not.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

void __tsan_acquire(void *addr);
void __tsan_release(void *addr);

/* One key per descriptor number the shim's table can track (FDTAB_SIZE). */
enum { KEYS = 1 << 17 };
static char keys[KEYS];
/* The highest number acquired so far: bounds close_range() and closefrom(). */
static int high;

/* next: the next definition of name (ThreadSanitizer's interceptor), looked
 * up once; atomically, as two threads may get here first at once. */
#define NEXT(name, ret, ...)                                                             \
	typedef ret (*next_fn)(__VA_ARGS__);                                             \
	static next_fn next_cached;                                                      \
	next_fn next = __atomic_load_n(&next_cached, __ATOMIC_ACQUIRE);                  \
	if (!next) {                                                                     \
		next = (next_fn)dlsym(RTLD_NEXT, name);                                  \
		__atomic_store_n(&next_cached, next, __ATOMIC_RELEASE);                  \
	}

static int got(int fd)
{
	if (fd >= 0 && fd < KEYS) {
		__tsan_acquire(&keys[fd]);
		int seen = __atomic_load_n(&high, __ATOMIC_RELAXED);
		while (fd > seen &&
		       !__atomic_compare_exchange_n(&high, &seen, fd, true,
		                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
	return fd;
}

static void freeing(unsigned first, unsigned last)
{
	unsigned top = (unsigned)__atomic_load_n(&high, __ATOMIC_RELAXED);
	if (last > top)
		last = top;
	for (unsigned fd = first; fd <= last && fd < KEYS; fd++)
		__tsan_release(&keys[fd]);
}

int close(int fd)
{
	NEXT("close", int, int)
	if (fd >= 0)
		freeing((unsigned)fd, (unsigned)fd);
	return next(fd);
}

int close_range(unsigned first, unsigned last, int flags)
{
	NEXT("close_range", int, unsigned, unsigned, int)
	if (!(flags & CLOSE_RANGE_CLOEXEC))
		freeing(first, last);
	return next(first, last, flags);
}

void closefrom(int low)
{
	NEXT("closefrom", void, int)
	freeing(low < 0 ? 0 : (unsigned)low, ~0U);
	next(low);
}

int dup(int fd)
{
	NEXT("dup", int, int)
	return got(next(fd));
}

int dup2(int fd, int fd2)
{
	NEXT("dup2", int, int, int)
	if (fd2 >= 0 && fd2 != fd)
		freeing((unsigned)fd2, (unsigned)fd2);
	return got(next(fd, fd2));
}

int dup3(int fd, int fd2, int flags)
{
	NEXT("dup3", int, int, int, int)
	if (fd2 >= 0 && fd2 != fd)
		freeing((unsigned)fd2, (unsigned)fd2);
	return got(next(fd, fd2, flags));
}

static int fcntl_common(int (*fn)(int, int, ...), int fd, int cmd, void *arg)
{
	int rc = fn(fd, cmd, arg);
	return cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC ? got(rc) : rc;
}

int fcntl(int fd, int cmd, ...)
{
	NEXT("fcntl", int, int, int, ...)
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(next, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
	NEXT("fcntl64", int, int, int, ...)
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(next, fd, cmd, arg);
}

int socket(int domain, int type, int protocol)
{
	NEXT("socket", int, int, int, int)
	return got(next(domain, type, protocol));
}

int socketpair(int domain, int type, int protocol, int sv[2])
{
	NEXT("socketpair", int, int, int, int, int *)
	int rc = next(domain, type, protocol, sv);
	if (rc == 0) {
		got(sv[0]);
		got(sv[1]);
	}
	return rc;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	NEXT("accept", int, int, struct sockaddr *, socklen_t *)
	return got(next(fd, addr, len));
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	NEXT("accept4", int, int, struct sockaddr *, socklen_t *, int)
	return got(next(fd, addr, len, flags));
}
