/* SPDX-License-Identifier: MIT */
/*
 * Exported wait hooks: epoll_ctl(), poll(), ppoll(), select(), pselect()
 * (and the _FORTIFY_SOURCE names __poll_chk, __ppoll_chk). They matter only
 * while a background handshake runs (tcp_bg.h): until then every call costs
 * one counter load (poll, select) or one table load (epoll_ctl) and goes
 * straight to libc. epoll_wait() is not interposed: the kernel wakes its
 * callers when a handshake's end puts their registrations back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "cbind.h"
#include "fdtab.h"
#include "shim.h"
#include "tcp_bg.h"

/* Calls the next definition of fn (resolved first if the shim has not
 * initialised yet), or fails with ENOSYS. */
#define NEXT(fn, args)                                                                   \
	((real_##fn || (shim_init(), real_##fn)) ? real_##fn args : (errno = ENOSYS, -1))

static bool handshakes_run(void)
{
	return __atomic_load_n(&tcp_bg_running_count, __ATOMIC_RELAXED) > 0 &&
	       shim_depth == 0 && real_ppoll;
}

SHIM_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	const struct fd_entry *e = fdtab_lookup(fd);
	if (!e || !e->born || e->cls != FD_CLASS_TCP || shim_depth > 0 || !real_epoll_ctl)
		return NEXT(epoll_ctl, (epfd, op, fd, ev));
	return tcp_bg_epoll_ctl(epfd, op, fd, ev);
}

static struct timespec *ms_to_ts(int ms, struct timespec *ts)
{
	if (ms < 0)
		return NULL;
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (long)(ms % 1000) * 1000000;
	return ts;
}

SHIM_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	struct timespec ts;
	cbind_settle_pollfds(fds, n);
	if (!handshakes_run())
		return NEXT(poll, (fds, n, timeout));
	return tcp_bg_poll(fds, n, ms_to_ts(timeout, &ts), NULL);
}

SHIM_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
	if (fdslen / sizeof(*fds) >= n)
		cbind_settle_pollfds(fds, n);
	if (!handshakes_run() || fdslen / sizeof(*fds) < n)
		return NEXT(__poll_chk, (fds, n, timeout, fdslen));
	struct timespec ts;
	return tcp_bg_poll(fds, n, ms_to_ts(timeout, &ts), NULL);
}

SHIM_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                      const sigset_t *mask)
{
	cbind_settle_pollfds(fds, n);
	if (!handshakes_run())
		return NEXT(ppoll, (fds, n, timeout, mask));
	return tcp_bg_poll(fds, n, timeout, mask);
}

SHIM_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                            const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof(*fds) >= n)
		cbind_settle_pollfds(fds, n);
	if (!handshakes_run() || fdslen / sizeof(*fds) < n)
		return NEXT(__ppoll_chk, (fds, n, timeout, mask, fdslen));
	return tcp_bg_poll(fds, n, timeout, mask);
}

/* select() as poll(): the sets become a pollfd array and back, with the
 * kernel's own mapping (readable: in, hang-up, error; writable: out,
 * error; exceptional: priority data). */
static int select_as_poll(int nfds, fd_set *r, fd_set *w, fd_set *x,
                          const struct timespec *timeout, const sigset_t *mask)
{
	struct pollfd *p = calloc(nfds > 0 ? (size_t)nfds : 1, sizeof(*p));
	nfds_t n = 0;
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	for (int fd = 0; fd < nfds; fd++) {
		short ev = (r && FD_ISSET(fd, r) ? POLLIN : 0) |
		           (w && FD_ISSET(fd, w) ? POLLOUT : 0) |
		           (x && FD_ISSET(fd, x) ? POLLPRI : 0);
		if (ev)
			p[n++] = (struct pollfd){.fd = fd, .events = ev};
	}
	int rc = tcp_bg_poll(p, n, timeout, mask);
	for (nfds_t i = 0; rc >= 0 && i < n; i++)
		if (p[i].revents & POLLNVAL) {
			errno = EBADF;
			rc = -1;
		}
	if (rc >= 0) {
		rc = 0;
		for (nfds_t i = 0; i < n; i++) {
			int fd = p[i].fd;
			short re = p[i].revents;
			bool rd = r && FD_ISSET(fd, r) &&
			          (re & (POLLIN | POLLHUP | POLLERR));
			bool wr = w && FD_ISSET(fd, w) && (re & (POLLOUT | POLLERR));
			bool ex = x && FD_ISSET(fd, x) && (re & POLLPRI);
			if (r && !rd)
				FD_CLR(fd, r);
			if (w && !wr)
				FD_CLR(fd, w);
			if (x && !ex)
				FD_CLR(fd, x);
			rc += rd + wr + ex;
		}
	}
	int err = errno;
	free(p);
	errno = err;
	return rc;
}

SHIM_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv)
{
	cbind_settle_fdset(nfds, r);
	if (!handshakes_run() || nfds < 0 || nfds > FD_SETSIZE)
		return NEXT(select, (nfds, r, w, x, tv));
	struct timespec ts, *t = NULL;
	if (tv) {
		ts = (struct timespec){.tv_sec = tv->tv_sec,
		                       .tv_nsec = tv->tv_usec * 1000};
		t = &ts;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = select_as_poll(nfds, r, w, x, t, NULL);
	if (tv) {
		/* as Linux does: the time not slept */
		clock_gettime(CLOCK_MONOTONIC, &t1);
		long long left = (tv->tv_sec * 1000000LL + tv->tv_usec) -
		                 ((t1.tv_sec - t0.tv_sec) * 1000000LL +
		                  (t1.tv_nsec - t0.tv_nsec) / 1000);
		if (left < 0)
			left = 0;
		tv->tv_sec = left / 1000000;
		tv->tv_usec = left % 1000000;
	}
	return rc;
}

SHIM_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *x,
                        const struct timespec *timeout, const sigset_t *mask)
{
	cbind_settle_fdset(nfds, r);
	if (!handshakes_run() || nfds < 0 || nfds > FD_SETSIZE)
		return NEXT(pselect, (nfds, r, w, x, timeout, mask));
	return select_as_poll(nfds, r, w, x, timeout, mask);
}
