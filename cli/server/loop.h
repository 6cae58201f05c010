/* SPDX-License-Identifier: MIT */
/*
 * A small typed epoll loop. A watch is embedded in its owner (a connection,
 * a listener); epoll's data.ptr points at the watch and the callback finds
 * its owner with container_of. Interest changes are made only when they
 * differ from what epoll already has, and a watch whose interest is empty is
 * removed from epoll, so a level-triggered HUP cannot spin the loop.
 *
 * Owners that are torn down inside a callback must stay allocated until the
 * current batch of events is dispatched (the server frees them afterwards);
 * a closed watch has fd -1 and its pending events are skipped.
 */
#ifndef SOCKSIFY_SERVER_LOOP_H
#define SOCKSIFY_SERVER_LOOP_H

#include <stddef.h>
#include <stdint.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct loop;
struct resolve_home;
struct loop_watch;
typedef void (*loop_cb)(struct loop_watch *w, uint32_t revents);

struct loop_watch {
	int fd;          /* -1 when closed */
	uint32_t events; /* what epoll has for this fd; 0 when not registered */
	loop_cb cb;
};

struct loop {
	int epfd;
	uint64_t now_ms;               /* CLOCK_MONOTONIC, refreshed after every wait */
	struct resolve_home *resolver; /* this loop's finished lookups (resolve.c) */
};

int loop_init(struct loop *l);
void loop_fini(struct loop *l);
uint64_t loop_clock_ms(void);

/* Prepares a watch for fd; nothing is registered until loop_watch_set(). */
void loop_watch_init(struct loop_watch *w, int fd, loop_cb cb);
/* Sets the interest set (EPOLLIN/EPOLLOUT...); 0 removes it. Returns 0 or -errno. */
int loop_watch_set(struct loop *l, struct loop_watch *w, uint32_t events);
/* Closes the watch's fd, which removes it from epoll: the fd must have no
 * duplicate (dup, fork) that would keep it registered. */
void loop_watch_close(struct loop *l, struct loop_watch *w);

/* Waits up to timeout_ms (-1: forever) and dispatches one batch of events. */
int loop_run_once(struct loop *l, int timeout_ms);

#endif
