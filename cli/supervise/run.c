/* SPDX-License-Identifier: MIT */
/*
 * The program's life under the supervisor (see supervise.h): the fake-DNS
 * pool and the DNS stub first, then the fork; the child installs the filter,
 * hands the listener to the parent over a socket pair and execs the
 * program; the parent serves until the program tree is gone (notify.c) and
 * exits as the program did.
 */
#include "supervise.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakedns.h"
#include "sv_glue.h"
#include "sv_int.h"

enum { EXIT_CANNOT_RUN = 126, EXIT_NOT_FOUND = 127 };

/* Signals the launcher takes through its signalfd: SIGCHLD, and those it
 * passes on to the program when another process sends them. */
static const int caught[] = {SIGCHLD, SIGHUP,  SIGINT,   SIGQUIT, SIGTERM,
                             SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM,
                             SIGTSTP, SIGTTIN, SIGTTOU};

/* Remote DNS: the pool (inherited when the launcher runs under a preloaded
 * process) for the program tree, and the stub that answers from it. */
static int setup_dns(const struct config *c)
{
	if (!config_remote_dns(c) && c->nproxies < 2)
		return sv_dns_start(false);
	if (!config_remote_dns(c)) { /* several proxies: their shared words */
		int rc = fakedns_attach_config(c, getenv(FAKEDNS_ENV_FD));
		return rc < 0 ? rc : sv_dns_start(false);
	}
	int rc = fakedns_attach_config(c, getenv(FAKEDNS_ENV_FD));
	return rc < 0 ? rc : sv_dns_start(true);
}

/*
 * The listener changes hands without SCM_RIGHTS (sendmsg is a call the
 * filter stops, and nobody would answer it yet): the child writes its
 * descriptor's number (or -errno) on the socket pair, the parent takes it
 * with pidfd_getfd and answers one byte, and only then the child closes its
 * own copy, so that the program never holds the listener.
 */
static void send_listener(int sock, int listener)
{
	char ack;

	if (write(sock, &listener, sizeof(listener)) != (ssize_t)sizeof(listener) ||
	    listener < 0)
		return; /* no listener: no answer comes */
	while (read(sock, &ack, 1) < 0 && errno == EINTR)
		;
}

/* The listener from the child: >= 0, or -errno (its filter failed, or it
 * died before saying). */
static int recv_listener(int sock, pid_t pid)
{
	int theirs = 0, fd = -EPIPE;

	ssize_t n;
	while ((n = read(sock, &theirs, sizeof(theirs))) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(theirs))
		return -EPIPE;
	if (theirs < 0)
		return theirs;
	long pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd >= 0) {
		long own = syscall(SYS_pidfd_getfd, (int)pidfd, theirs, 0);
		fd = own < 0 ? -errno : (int)own;
		close((int)pidfd);
	} else {
		fd = -errno;
	}
	if (write(sock, "", 1) < 0)
		fd = fd >= 0 ? fd : -EPIPE;
	return fd;
}

static void __attribute__((noreturn))
child(const struct supervise_opts *o, int sock, const sigset_t *old)
{
	sigprocmask(SIG_SETMASK, old, NULL);
	int listener = sv_filter_install();
	send_listener(sock, listener);
	if (listener >= 0)
		close(listener);
	else if (!o->allow_direct)
		_exit(EXIT_CANNOT_RUN);
	close(sock);
	execv(o->path, o->argv);
	int e = errno;
	fprintf(stderr, "socksify: %s: %s\n", o->argv[0], strerror(e));
	_exit(e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN);
}

/* The launcher's exit status for the program's wait status: a signal is
 * raised on the launcher itself, so that its parent sees the same death. */
static int exit_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (!WIFSIGNALED(st))
		return EXIT_CANNOT_RUN;
	int sig = WTERMSIG(st);
	struct rlimit no_core = {0, 0};
	sigset_t one;
	setrlimit(RLIMIT_CORE, &no_core);
	signal(sig, SIG_DFL);
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	raise(sig);
	return 128 + sig;
}

/* The kernel could not give a listener: one line; 0 to go on unsupervised
 * (--allow-direct), else the exit status. */
static int no_listener(const struct supervise_opts *o, int err, pid_t pid)
{
	if (err == EBUSY)
		fprintf(stderr,
		        "socksify: cannot supervise %s: another supervisor's filter is "
		        "already installed (one listener per process tree)%s\n",
		        o->argv[0],
		        o->allow_direct ? "; --allow-direct: it runs unproxied" : "");
	else
		fprintf(stderr,
		        "socksify: cannot supervise %s: seccomp user notification is not "
		        "available (%s; Linux 5.9 or later is needed)%s\n",
		        o->argv[0], strerror(err),
		        o->allow_direct ? "; --allow-direct: it runs unproxied" : "");
	if (o->allow_direct)
		return 0;
	waitpid(pid, NULL, 0);
	return EXIT_CANNOT_RUN;
}

int supervise_run(const struct supervise_opts *o, const struct config *cfg)
{
	sigset_t set, old;
	int sp[2];

	sv_glue_init(cfg);
	/* blocked before any thread starts: every thread inherits the mask, so
	 * that these signals reach the signalfd and nothing else */
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(caught) / sizeof(caught[0]); i++)
		sigaddset(&set, caught[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	int rc = setup_dns(cfg);
	if (rc < 0) {
		fprintf(stderr, "socksify: cannot start the DNS stub: %s\n",
		        strerror(-rc));
		return EXIT_CANNOT_RUN;
	}
	setenv(SUPERVISE_ENV_ACTIVE, "1", 1);
	int sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	if (sigfd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		fprintf(stderr, "socksify: cannot supervise: %s\n", strerror(errno));
		return EXIT_CANNOT_RUN;
	}
	pid_t pid = fork();
	if (pid == 0)
		child(o, sp[1], &old);
	close(sp[1]);
	if (pid < 0) {
		fprintf(stderr, "socksify: cannot fork: %s\n", strerror(errno));
		return EXIT_CANNOT_RUN;
	}
	int listener = recv_listener(sp[0], pid);
	close(sp[0]);
	if (listener < 0 && (rc = no_listener(o, -listener, pid)) != 0)
		return rc;
	return exit_status(sv_serve(listener, sigfd, pid));
}
