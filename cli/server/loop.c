/* SPDX-License-Identifier: MIT */
/*
 * The epoll loop behind socksify-server (see loop.h for the contract).
 */
#include "loop.h"
#include "monotime.h"

#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

enum { LOOP_BATCH = 128 };

uint64_t loop_clock_ms(void)
{
	return (uint64_t)monotime_ms();
}

int loop_init(struct loop *l)
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	l->now_ms = loop_clock_ms();
	return 0;
}

void loop_fini(struct loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

void loop_watch_init(struct loop_watch *w, int fd, loop_cb cb)
{
	w->fd = fd;
	w->events = 0;
	w->cb = cb;
}

int loop_watch_set(struct loop *l, struct loop_watch *w, uint32_t events)
{
	/* EPOLLRDHUP with every EPOLLIN (it changes no interest set of its own):
	 * it tells the relay that the peer's FIN came with the data it wakes
	 * for, so the EOF is read in the same turn (relay.c). */
	if (events & EPOLLIN)
		events |= EPOLLRDHUP;
	if (w->fd < 0 || events == w->events)
		return 0;
	struct epoll_event ev = {.events = events, .data.ptr = w};
	int op = events == 0      ? EPOLL_CTL_DEL
	         : w->events == 0 ? EPOLL_CTL_ADD
	                          : EPOLL_CTL_MOD;
	if (epoll_ctl(l->epfd, op, w->fd, &ev) < 0)
		return -errno;
	w->events = events;
	return 0;
}

void loop_watch_close(struct loop *l, struct loop_watch *w)
{
	(void)l;
	if (w->fd < 0)
		return;
	/* close() drops the registration: the server never duplicates a watched
	 * descriptor (an EPOLL_CTL_DEL would be one more syscall per socket). */
	close(w->fd);
	w->fd = -1;
	w->events = 0;
}

int loop_run_once(struct loop *l, int timeout_ms)
{
	struct epoll_event evs[LOOP_BATCH];
	int n = epoll_wait(l->epfd, evs, LOOP_BATCH, timeout_ms);
	int saved = errno;
	l->now_ms = loop_clock_ms();
	if (n < 0)
		return saved == EINTR ? 0 : -saved;
	for (int i = 0; i < n; i++) {
		struct loop_watch *w = evs[i].data.ptr;
		/* A callback earlier in this batch may have closed this watch. */
		if (w->fd >= 0)
			w->cb(w, evs[i].events);
	}
	return n;
}
