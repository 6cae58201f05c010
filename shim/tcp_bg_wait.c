/* SPDX-License-Identifier: MIT */
/*
 * What waiters see of a background handshake (see tcp_bg.h): the program's
 * epoll registrations, followed from epoll_ctl() and rewritten while the
 * handshake runs, and poll()/select() emulated over the handshakes'
 * eventfds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fdtab.h"
#include "monotime.h"
#include "shim.h"
#include "tcp_bg.h"
#include "tcp_bg_int.h"

enum { REGS_MAX = 4 }; /* epoll sets one socket is followed in */

struct reg {
	int epfd; /* -1: unused */
	struct epoll_event ev;
};

/* Per descriptor number: its registrations as the program made them;
 * `lost` when there were more than REGS_MAX (then it is not hidden). */
static struct {
	struct reg r[REGS_MAX];
	uint8_t n;
	bool lost;
} regs[FDTAB_SIZE];

/* While the handshake runs the program's registrations are out of the
 * kernel's sets altogether (not even a hang-up is reported), and go back in
 * when it ends: the kernel then reports the socket as it is, in one event. */
static void apply(int fd, bool hide)
{
	for (unsigned i = 0; i < regs[fd].n; i++) {
		struct reg *r = &regs[fd].r[i];
		if (hide)
			real_epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
		else if (real_epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &r->ev) < 0 &&
		         errno == EEXIST)
			real_epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &r->ev);
	}
}

void bg_regs_mask(int fd)
{
	if (fd >= 0 && fd < FDTAB_SIZE)
		apply(fd, true);
}

void bg_regs_restore(int fd)
{
	if (fd >= 0 && fd < FDTAB_SIZE)
		apply(fd, false);
}

bool bg_regs_followed(int fd)
{
	return fd >= 0 && fd < FDTAB_SIZE && !regs[fd].lost;
}

void bg_regs_forget(int fd)
{
	if (fd >= 0 && fd < FDTAB_SIZE) {
		regs[fd].n = 0;
		regs[fd].lost = false;
	}
}

void tcp_bg_forget(int fd)
{
	/* unlocked look first: most sockets were never in an epoll set */
	if (fd < 0 || fd >= FDTAB_SIZE ||
	    (__atomic_load_n(&regs[fd].n, __ATOMIC_RELAXED) == 0 && !regs[fd].lost))
		return;
	bg_wait_lock();
	regs[fd].n = 0;
	regs[fd].lost = false;
	bg_wait_unlock();
}

/* The index of fd's registration in epfd, or regs[fd].n. */
static unsigned find(int epfd, int fd)
{
	unsigned i = 0;
	while (i < regs[fd].n && regs[fd].r[i].epfd != epfd)
		i++;
	return i;
}

/* Notes a registration the kernel took (bg_wait_lock held); false when
 * there is no room for it. */
static bool note(int epfd, int op, int fd, const struct epoll_event *ev)
{
	unsigned i = find(epfd, fd);
	if (op == EPOLL_CTL_DEL) {
		if (i < regs[fd].n)
			regs[fd].r[i] = regs[fd].r[--regs[fd].n];
		return true;
	}
	if (i == regs[fd].n) {
		if (i == REGS_MAX)
			return false;
		regs[fd].n++;
	}
	regs[fd].r[i] = (struct reg){.epfd = epfd, .ev = *ev};
	return true;
}

/* epoll_ctl() of a socket whose handshake runs (bg_wait_lock held): its
 * registrations are out of the kernel's sets, so the call changes what goes
 * back in at the end, with the errors the kernel would give. */
static int while_hidden(int epfd, int op, int fd, struct epoll_event *ev)
{
	unsigned i = find(epfd, fd);
	bool known = i < regs[fd].n;
	if ((op == EPOLL_CTL_ADD && known) || (op != EPOLL_CTL_ADD && !known)) {
		errno = known ? EEXIST : ENOENT;
		return -1;
	}
	if (note(epfd, op, fd, ev))
		return 0;
	/* no room to keep it out: in the kernel's set, waiting for nothing */
	regs[fd].lost = true;
	struct epoll_event m = *ev;
	m.events &= EPOLLET | EPOLLONESHOT | EPOLLWAKEUP;
	return real_epoll_ctl(epfd, op, fd, &m);
}

/* Is fd's handshake running (bg_wait_lock held: states change under it)? */
static bool hidden_now(int fd)
{
	if (fdtab_kind(fdtab_lookup(fd)) != FD_TCP_PENDING)
		return false; /* the usual case, without the table's lock */
	struct bg_conn *c = fdtab_hold(fd, FD_TCP_PENDING);
	bool r = c && c->state == BG_RUNNING;
	bg_conn_put(c);
	return r;
}

int tcp_bg_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (fd < 0 || fd >= FDTAB_SIZE || (op != EPOLL_CTL_DEL && !ev))
		return real_epoll_ctl(epfd, op, fd, ev);
	bg_wait_lock();
	int rc;
	if (hidden_now(fd)) {
		rc = while_hidden(epfd, op, fd, ev);
	} else {
		rc = real_epoll_ctl(epfd, op, fd, ev);
		if (rc == 0 && !note(epfd, op, fd, ev))
			regs[fd].lost = true;
	}
	int err = errno;
	bg_wait_unlock();
	errno = err;
	return rc;
}

/* --- poll and select while handshakes run
 * ------------------------------------------------ */

/* The eventfd standing in for fd while its handshake runs, else -1. */
static int stand_in(int fd)
{
	const struct fd_entry *e = fdtab_lookup(fd);
	if (!e || fdtab_kind(e) != FD_TCP_PENDING || !tcp_bg_running(fd))
		return -1;
	struct bg_conn *c = fdtab_hold(fd, FD_TCP_PENDING);
	int efd = c ? bg_efd(c) : -1;
	bg_conn_put(c);
	return efd;
}

/* The program's view of w (the set as polled): an ended handshake's socket
 * is polled again for what the program asked. The number ready. */
static int translate(struct pollfd *fds, const struct pollfd *w, nfds_t n)
{
	int ready = 0;
	for (nfds_t i = 0; i < n; i++) {
		fds[i].revents = w[i].revents;
		if (w[i].fd != fds[i].fd) {
			struct pollfd p = {.fd = fds[i].fd, .events = fds[i].events};
			fds[i].revents = 0;
			if ((w[i].revents & POLLIN) && !tcp_bg_running(fds[i].fd) &&
			    real_poll(&p, 1, 0) == 1)
				fds[i].revents = p.revents;
		}
		ready += fds[i].revents != 0;
	}
	return ready;
}

static long long deadline_of(const struct timespec *t)
{
	return t ? monotime_us() + t->tv_sec * 1000000LL + t->tv_nsec / 1000 : -1;
}

static struct timespec *left_of(long long deadline, struct timespec *ts)
{
	if (deadline < 0)
		return NULL;
	long long left = deadline - monotime_us();
	if (left < 0)
		left = 0;
	ts->tv_sec = left / 1000000;
	ts->tv_nsec = left % 1000000 * 1000;
	return ts;
}

int tcp_bg_poll(struct pollfd *fds, nfds_t n, const struct timespec *timeout,
                const sigset_t *mask)
{
	struct pollfd stack[64], *w = n <= 64 ? stack : malloc(n * sizeof(*w));
	long long deadline = deadline_of(timeout);
	int rc;
	if (!w) {
		errno = ENOMEM;
		return -1;
	}
	do {
		for (nfds_t i = 0; i < n; i++) {
			int efd = fds[i].fd >= 0 ? stand_in(fds[i].fd) : -1;
			w[i] = fds[i];
			if (efd >= 0)
				w[i] = (struct pollfd){.fd = efd, .events = POLLIN};
		}
		struct timespec ts;
		rc = real_ppoll(w, n, left_of(deadline, &ts), mask);
		if (rc > 0)
			rc = translate(fds, w, n);
		/* an ended handshake whose socket has nothing the program asked
		 * for yet: wait on, for the time left */
	} while (rc == 0 && (deadline < 0 || monotime_us() < deadline));
	if (rc == 0)
		for (nfds_t i = 0; i < n; i++)
			fds[i].revents = 0;
	if (w != stack)
		free(w);
	return rc;
}
