/* SPDX-License-Identifier: MIT */
/*
 * Name resolution off the event loop (see resolve.h).
 */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

/* The worker pool, shared by every event loop: the queue of lookups to run. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct resolve_job *todo_head, **todo_tail;
	unsigned queued; /* jobs in todo */
	pthread_once_t started;
	int start_err;
} rs = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .wake = PTHREAD_COND_INITIALIZER,
        .todo_tail = &rs.todo_head,
        .started = PTHREAD_ONCE_INIT,
};

/* One per event loop: its finished lookups and the eventfd that announces them,
 * so that a loop takes no lock another loop takes. */
struct resolve_home {
	pthread_mutex_t lock;
	struct resolve_job *done_head, **done_tail;
	int efd;
	struct loop_watch watch;
};

/* The home of the loop this thread runs (resolve_use). */
static __thread struct resolve_home *home;

static void push(struct resolve_job ***tail, struct resolve_job *job)
{
	job->next = NULL;
	**tail = job;
	*tail = &job->next;
}

/* Runs getaddrinfo() and maps its failures to errno values for the reply code. */
static void lookup(struct resolve_job *job)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char port[8];

	snprintf(port, sizeof(port), "%u", job->port);
	int rc = getaddrinfo(job->name, port, &hints, &res);
	switch (rc) {
	case 0:
		break;
	case EAI_NONAME:
	case EAI_NODATA:
	case EAI_AGAIN:
	case EAI_FAIL:
		job->err = ENOENT;
		return;
	case EAI_SYSTEM:
		job->err = errno ? errno : EIO;
		return;
	default:
		job->err = EIO;
		return;
	}
	for (struct addrinfo *ai = res; ai && job->naddrs < RESOLVE_MAX_ADDRS;
	     ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(job->addrs[0]))
			continue;
		memcpy(&job->addrs[job->naddrs++], ai->ai_addr, ai->ai_addrlen);
	}
	freeaddrinfo(res);
	if (job->naddrs == 0)
		job->err = ENOENT;
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&rs.lock);
		while (!rs.todo_head)
			pthread_cond_wait(&rs.wake, &rs.lock);
		struct resolve_job *job = rs.todo_head;
		rs.todo_head = job->next;
		if (!rs.todo_head)
			rs.todo_tail = &rs.todo_head;
		__atomic_sub_fetch(&rs.queued, 1, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&rs.lock);

		/* A client that is gone does not hold a thread. */
		if (!__atomic_load_n(&job->cancelled, __ATOMIC_RELAXED))
			lookup(job);

		struct resolve_home *h = job->home;
		pthread_mutex_lock(&h->lock);
		bool was_empty = !h->done_head;
		push(&h->done_tail, job);
		pthread_mutex_unlock(&h->lock);
		if (was_empty) {
			uint64_t one = 1;
			ssize_t r = write(h->efd, &one, sizeof(one));
			(void)r;
		}
	}
	return NULL;
}

/* Loop thread: hands every finished job to its owner. */
static void on_done(struct loop_watch *w, uint32_t revents)
{
	struct resolve_home *h = container_of(w, struct resolve_home, watch);
	uint64_t count;
	(void)revents;
	ssize_t r = read(w->fd, &count, sizeof(count));
	(void)r;
	pthread_mutex_lock(&h->lock);
	struct resolve_job *job = h->done_head;
	h->done_head = NULL;
	h->done_tail = &h->done_head;
	pthread_mutex_unlock(&h->lock);
	while (job) {
		struct resolve_job *next = job->next;
		if (job->owner)
			job->done(job->owner, job);
		else
			resolve_free(job);
		job = next;
	}
}

static void start_workers(void)
{
	sigset_t all, old;
	int rc = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < RESOLVE_THREADS && rc == 0; i++) {
		pthread_t t;
		rc = -pthread_create(&t, NULL, worker, NULL);
		if (rc == 0)
			pthread_detach(t);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	rs.start_err = rc;
}

int resolve_init(struct loop *l)
{
	struct resolve_home *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->done_tail = &h->done_head;
	h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->efd < 0)
		return -errno;
	loop_watch_init(&h->watch, h->efd, on_done);
	int rc = loop_watch_set(l, &h->watch, EPOLLIN);
	if (rc < 0)
		return rc;
	l->resolver = h;
	pthread_once(&rs.started, start_workers);
	return rs.start_err;
}

void resolve_use(struct loop *l)
{
	home = l->resolver;
}

struct resolve_job *resolve_start(const char *name, uint16_t port, void *owner,
                                  void (*done)(void *owner, struct resolve_job *job))
{
	if (__atomic_load_n(&rs.queued, __ATOMIC_RELAXED) >= RESOLVE_MAX_QUEUED)
		return NULL;
	struct resolve_job *job = calloc(1, sizeof(*job));
	if (!job)
		return NULL;
	snprintf(job->name, sizeof(job->name), "%s", name);
	job->port = port;
	job->owner = owner;
	job->done = done;
	job->home = home;
	pthread_mutex_lock(&rs.lock);
	push(&rs.todo_tail, job);
	__atomic_add_fetch(&rs.queued, 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&rs.wake);
	pthread_mutex_unlock(&rs.lock);
	return job;
}

void resolve_cancel(struct resolve_job *job)
{
	job->owner = NULL;
	__atomic_store_n(&job->cancelled, true, __ATOMIC_RELAXED);
}

void resolve_free(struct resolve_job *job)
{
	free(job);
}
