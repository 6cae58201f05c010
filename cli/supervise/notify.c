/* SPDX-License-Identifier: MIT */
/*
 * The supervisor's loop (see sv_int.h): the main thread polls a signalfd
 * (and the listener for its hang-up); receiver threads wait for the
 * notifications and decide each on the spot (net.c), a proxied connect's
 * handshake included (proxied.c): a receiver is always kept waiting while
 * the others are busy, so that a slow proxy never holds up the program's
 * other calls. Children are reaped
 * here (the supervisor is their subreaper: orphans of the program tree come
 * back to it), signals sent to the launcher by another process are passed to
 * the program, and a stop of the program stops the launcher, so that job
 * control in the shell works as without it. Once the program is over, the
 * launcher waits for its background children, until SIGTERM, SIGINT,
 * SIGHUP or SIGQUIT tells it to stop waiting.
 */
#include "sv_int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

#include "log.h"

static void respond(int listener, struct seccomp_notif_resp *r)
{
	/* ENOENT: the task is gone or its call was interrupted; nothing to do */
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, r) < 0 && errno != ENOENT)
		shim_log(SHIM_LOG_DEBUG, "supervisor: cannot answer a call: %m");
}

void sv_continue(int listener, uint64_t id)
{
	struct seccomp_notif_resp r = {.id = id,
	                               .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
	respond(listener, &r);
}

void sv_fail(int listener, uint64_t id, int err)
{
	struct seccomp_notif_resp r = {.id = id, .error = -err};
	respond(listener, &r);
}

void sv_return(int listener, uint64_t id, long long val)
{
	struct seccomp_notif_resp r = {.id = id, .val = val};
	respond(listener, &r);
}

bool sv_id_valid(int listener, uint64_t id)
{
	return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* The program's life as the loop sees it. */
struct life {
	pid_t child;
	bool exited;  /* the program itself is over */
	int status;   /* its wait status */
	bool orphans; /* waitpid still has children to report */
	bool abandon; /* told to end while only those are left */
};

/* Reaps every child that is done; the program's own status is kept, its
 * stop stops the launcher too (and a SIGCONT to the launcher goes on). */
static void reap(struct life *l)
{
	int st;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG | WUNTRACED)) > 0) {
		if (p != l->child)
			continue;
		if (WIFSTOPPED(st)) {
			raise(SIGSTOP);
			kill(l->child, SIGCONT);
		} else {
			l->exited = true;
			l->status = st;
		}
	}
	l->orphans = !(p < 0 && errno == ECHILD);
}

/* A signal from another process (kill, timeout, a service manager) goes on
 * to the program; one from the terminal reached its process group already. */
static void on_signal(int sigfd, struct life *l)
{
	struct signalfd_siginfo si;

	while (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			reap(l);
			continue;
		}
		bool ending = si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT ||
		              si.ssi_signo == SIGHUP || si.ssi_signo == SIGQUIT;
		if (l->exited && ending) {
			/* the program is over, its background children are
			 * not: the launcher stops waiting for them (their
			 * network calls fail from now on, ENOSYS) */
			l->orphans = false;
			l->abandon = true;
		} else if (!l->exited &&
		           (si.ssi_code == SI_USER || si.ssi_code == SI_QUEUE ||
		            si.ssi_code == SI_TKILL)) {
			kill(l->child, (int)si.ssi_signo);
		}
	}
}

/* --- the receivers --------------------------------------------------------------------
 * Threads that each wait in NOTIF_RECV and handle what they receive to the
 * end, a proxied connect's handshake included; one of them is kept idle
 * (waiting) while the others are busy, up to RECEIVERS_MAX. */
enum { RECEIVERS_MAX = 256 };

static pthread_mutex_t recv_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned receivers, waiting;

static void *receiver(void *arg);

/* Starts one more receiver (recv_lock held). */
static void add_receiver(int listener)
{
	pthread_attr_t attr;
	pthread_t t;

	if (receivers >= RECEIVERS_MAX)
		return;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	if (pthread_create(&t, &attr, receiver, (void *)(intptr_t)listener) == 0)
		receivers++;
	pthread_attr_destroy(&attr);
}

static void *receiver(void *arg)
{
	int listener = (int)(intptr_t)arg;
	struct seccomp_notif n;

	for (;;) {
		pthread_mutex_lock(&recv_lock);
		waiting++;
		pthread_mutex_unlock(&recv_lock);
		memset(&n, 0, sizeof(n));
		int rc = ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &n);
		int err = errno;
		pthread_mutex_lock(&recv_lock);
		if (--waiting == 0)
			add_receiver(listener);
		pthread_mutex_unlock(&recv_lock);
		if (rc == 0)
			sv_handle(listener, &n);
		else if (err != ENOENT && err != EINTR)
			return NULL; /* the listener is gone */
	}
}

int sv_serve(int listener, int sigfd, pid_t child)
{
	struct life l = {.child = child, .orphans = true};
	bool listening = listener >= 0;

	if (listening) {
		pthread_mutex_lock(&recv_lock);
		add_receiver(listener);
		pthread_mutex_unlock(&recv_lock);
	}
	while (!l.exited || l.orphans) {
		/* the listener for its POLLHUP alone: the receivers take its calls */
		struct pollfd p[2] = {{.fd = sigfd, .events = POLLIN},
		                      {.fd = listening ? listener : -1, .events = 0}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			on_signal(sigfd, &l);
		if (p[1].revents & (POLLHUP | POLLERR))
			listening = false; /* no process uses the filter any more */
		if (l.exited && (!listening || l.abandon))
			break;
	}
	return l.status;
}
