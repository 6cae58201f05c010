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

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct resolve_job *todo_head, **todo_tail;
	struct resolve_job *done_head, **done_tail;
	unsigned queued; /* jobs in todo */
	int efd;
	struct loop_watch watch;
} rs = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .wake = PTHREAD_COND_INITIALIZER,
        .efd = -1,
};

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

		pthread_mutex_lock(&rs.lock);
		bool was_empty = !rs.done_head;
		push(&rs.done_tail, job);
		pthread_mutex_unlock(&rs.lock);
		if (was_empty) {
			uint64_t one = 1;
			ssize_t r = write(rs.efd, &one, sizeof(one));
			(void)r;
		}
	}
	return NULL;
}

/* Loop thread: hands every finished job to its owner. */
static void on_done(struct loop_watch *w, uint32_t revents)
{
	uint64_t count;
	(void)revents;
	ssize_t r = read(w->fd, &count, sizeof(count));
	(void)r;
	pthread_mutex_lock(&rs.lock);
	struct resolve_job *job = rs.done_head;
	rs.done_head = NULL;
	rs.done_tail = &rs.done_head;
	pthread_mutex_unlock(&rs.lock);
	while (job) {
		struct resolve_job *next = job->next;
		if (job->owner)
			job->done(job->owner, job);
		else
			resolve_free(job);
		job = next;
	}
}

int resolve_init(struct loop *l)
{
	sigset_t all, old;
	int rc = 0;

	rs.todo_tail = &rs.todo_head;
	rs.done_tail = &rs.done_head;
	rs.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (rs.efd < 0)
		return -errno;
	loop_watch_init(&rs.watch, rs.efd, on_done);
	rc = loop_watch_set(l, &rs.watch, EPOLLIN);
	if (rc < 0)
		return rc;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < RESOLVE_THREADS && rc == 0; i++) {
		pthread_t t;
		rc = -pthread_create(&t, NULL, worker, NULL);
		if (rc == 0)
			pthread_detach(t);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
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
