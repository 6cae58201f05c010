/* SPDX-License-Identifier: MIT */
/*
 * Non-blocking name resolution for the event loops: a small pool of threads,
 * shared by every loop, runs getaddrinfo(); finished jobs are queued back to
 * the loop that started them (its own queue and lock) and announced through
 * that loop's eventfd. Only the loop thread touches job->owner, so
 * an owner that goes away while its job runs just clears it (resolve_cancel)
 * and the job is freed when it comes back.
 */
#ifndef SOCKSIFY_SERVER_RESOLVE_H
#define SOCKSIFY_SERVER_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"

enum {
	RESOLVE_MAX_ADDRS = 16,
	RESOLVE_THREADS = 8,
	RESOLVE_MAX_QUEUED = 256, /* lookups waiting for a thread; more fail at once */
};

struct resolve_home;

struct resolve_job {
	struct resolve_job *next;
	struct resolve_home *home; /* the loop that started it */
	void *owner;               /* loop thread only; NULL once cancelled */
	bool cancelled; /* atomic: set with owner = NULL, read by the workers */
	void (*done)(void *owner, struct resolve_job *job);
	char name[256];
	uint16_t port;
	int err; /* 0, or a positive errno (ENOENT: no such name) */
	size_t naddrs;
	struct sockaddr_storage addrs[RESOLVE_MAX_ADDRS];
};

/* Gives loop l its queue of finished lookups and watches its eventfd; the
 * first call starts the threads (with all signals blocked). */
int resolve_init(struct loop *l);
/* Lookups started on this thread from now on come back to loop l (the loop
 * this thread runs; l was given to resolve_init). */
void resolve_use(struct loop *l);
/* Queues a lookup of name:port; done(owner, job) runs later on the loop thread
 * and owns the job (free it with resolve_free). Returns NULL when out of
 * memory or when RESOLVE_MAX_QUEUED lookups already wait. */
struct resolve_job *resolve_start(const char *name, uint16_t port, void *owner,
                                  void (*done)(void *owner, struct resolve_job *job));
void resolve_cancel(struct resolve_job *job);
void resolve_free(struct resolve_job *job);

#endif
