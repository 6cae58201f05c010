/* SPDX-License-Identifier: MIT */
/*
 * socksify-server's event loops (see loops.h): the listening sockets of
 * every loop, the threads, and stopping them all.
 */
#include "loops.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "preauth.h"
#include "resolve.h"
#include "sockaddr.h"
#include "socks5.h"

enum {
	DEFER_S = 1,     /* TCP_DEFER_ACCEPT, seconds (see defer_accept) */
	TFO_QLEN = 1024, /* TCP_FASTOPEN: pending Fast Open requests */
	LISTEN_BACKLOG = 4096,
};

static struct server *group;
static unsigned ngroup;
static int stopping;        /* atomic */
static atomic_uint serving; /* connections served by all loops */

unsigned loops_default(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	unsigned n = (unsigned)CPU_COUNT(&set);
	return n < 1 ? 1 : n > LOOPS_DEFAULT_MAX ? LOOPS_DEFAULT_MAX : n;
}

static void on_wake(struct loop_watch *w, uint32_t revents)
{
	uint64_t count;
	ssize_t r = read(w->fd, &count, sizeof(count));
	(void)r;
	(void)revents;
}

int loops_init(struct server *srvs, unsigned n, const struct server_config *cfg)
{
	group = srvs;
	ngroup = n;
	if (preauth_init(cfg->max_unauth, n) < 0)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		struct server *srv = &srvs[i];
		srv->cfg = *cfg;
		srv->serving = &serving; /* --max-conns counts every loop's clients */
		srv->id = i;
		/* Each loop sheds its own oldest: its part of the budget. */
		srv->unauth_share = (cfg->max_unauth + n - 1) / n;
		srv->defer_ms = DEFER_S * 1000; /* until a listener refuses it */
		int rc = loop_init(&srv->loop);
		if (rc < 0 || (rc = resolve_init(&srv->loop)) < 0)
			return rc;
		int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (efd < 0)
			return -errno;
		loop_watch_init(&srv->wake, efd, on_wake);
		if ((rc = loop_watch_set(&srv->loop, &srv->wake, EPOLLIN)) < 0)
			return rc;
	}
	return 0;
}

/* A listening socket on *ss; with `shared`, in a SO_REUSEPORT group. */
static int open_listener(const struct sockaddr_storage *ss, bool shared)
{
	int one = 1;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* Accepted sockets inherit it: no setsockopt per client. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* TCP Fast Open: a client that has a cookie sends its greeting in the SYN.
	 * The kernel serves it only with bit 2 of net.ipv4.tcp_fastopen set;
	 * where it refuses the option, nothing changes. */
	int qlen = TFO_QLEN;
	setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &qlen, sizeof(qlen));
	/* The kernel's cap (net.core.somaxconn, 4096 by default): when a flood of
	 * connections overflows the accept queue, a new client's SYN is dropped
	 * and it waits a second for its retransmission. */
	if ((shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)ss, sa_len((const struct sockaddr *)ss)) <
	            0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

/*
 * SO_REUSEPORT would let a second server of the same user join our group
 * and take half of our clients: a plain bind first gets EADDRINUSE from a
 * port already taken, as with a single loop.
 */
static int probe_free(const struct sockaddr_storage *ss)
{
	int one = 1, rc = 0;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	/* Bound, never listening: no client can be queued on it. */
	if (bind(fd, (const struct sockaddr *)ss, sa_len((const struct sockaddr *)ss)) <
	    0)
		rc = -errno;
	close(fd);
	return rc;
}

static void die_listen(const struct sockaddr_storage *ss, int err)
{
	char name[SOCKS5_ADDR_STRLEN];
	sa_format((const struct sockaddr *)ss, name, sizeof(name));
	fprintf(stderr, "socksify-server: cannot listen on %s: %s\n", name,
	        strerror(-err));
	exit(1);
}

/*
 * TCP_DEFER_ACCEPT: the kernel hands us a client once its first bytes (the
 * greeting) arrived, so the accept and the first read are one wake-up. A
 * client that stays silent is handed over after about DEFER_S seconds
 * anyway, and that time counts towards its --handshake-timeout
 * (handshake_start); under DEFER_S of handshake timeout there is no
 * deferring.
 */
static void defer_accept(struct server *srv, int fd)
{
	int s = DEFER_S;
	if (srv->cfg.handshake_timeout_ms < DEFER_S * 1000 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &s, sizeof(s)) < 0)
		srv->defer_ms = 0;
}

static void add_listener(struct server *srv, int fd)
{
	defer_accept(srv, fd);
	struct listener *li = &srv->listeners[srv->nlisteners++];
	li->srv = srv;
	loop_watch_init(&li->watch, fd, server_accept);
	if (loop_watch_set(&srv->loop, &li->watch, EPOLLIN) < 0) {
		perror("socksify-server: epoll");
		exit(1);
	}
}

/* Opens address `a` on every loop; port 0 becomes the port the first got. */
static void listen_everywhere(struct server *srvs, unsigned n, size_t a)
{
	struct sockaddr_storage ss = srvs[0].cfg.listen[a];
	socklen_t len = sizeof(ss);
	int fd = n > 1 && sa_port((struct sockaddr *)&ss) != 0 ? probe_free(&ss) : 0;

	if (fd == 0)
		fd = open_listener(&ss, n > 1);
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		die_listen(&ss, fd < 0 ? fd : -errno);
	add_listener(&srvs[0], fd);
	/* A connection to the listener itself would be a loop (acl.h). */
	for (unsigned i = 0; i < n; i++)
		acl_add_self(&srvs[i].cfg.acl, (const struct sockaddr *)&ss);
	for (unsigned i = 1; i < n; i++) {
		fd = open_listener(&ss, true);
		if (fd < 0)
			die_listen(&ss, fd);
		add_listener(&srvs[i], fd);
	}
	char name[SOCKS5_ADDR_STRLEN];
	sa_format((const struct sockaddr *)&ss, name, sizeof(name));
	log_msg(LOG_INFO, "listening on %s", name);
}

void loops_listen(struct server *srvs, unsigned n)
{
	for (size_t a = 0; a < srvs[0].cfg.nlisten; a++)
		listen_everywhere(srvs, n, a);
}

void loops_stop(void)
{
	if (__atomic_exchange_n(&stopping, 1, __ATOMIC_SEQ_CST))
		return;
	for (unsigned i = 0; i < ngroup; i++) {
		uint64_t one = 1;
		ssize_t r = write(group[i].wake.fd, &one, sizeof(one));
		(void)r;
	}
}

/* One loop until loops_stop(); NULL, or (void *)1 when epoll failed. */
static void *run(void *arg)
{
	struct server *srv = arg;
	void *ret = NULL;

	resolve_use(&srv->loop);
	while (!__atomic_load_n(&stopping, __ATOMIC_SEQ_CST)) {
		int rc = loop_run_once(&srv->loop, server_poll_timeout(srv));
		if (rc < 0) {
			log_msg(LOG_ERROR, "epoll_wait: %s", strerror(-rc));
			ret = (void *)1;
			loops_stop();
			break;
		}
		server_sweep(srv);
		server_reap(srv);
	}
	for (size_t i = 0; i < srv->nlisteners; i++)
		loop_watch_close(&srv->loop, &srv->listeners[i].watch);
	if (ngroup > 1)
		log_msg(LOG_CONN, "loop %u: %lu clients accepted", srv->id, srv->served);
	return ret;
}

int loops_run(struct server *srvs, unsigned n)
{
	pthread_t threads[LOOPS_MAX];
	unsigned started = 1;
	int status = 0;

	for (; started < n; started++) {
		int rc = pthread_create(&threads[started], NULL, run, &srvs[started]);
		if (rc != 0) {
			log_msg(LOG_ERROR, "cannot start loop %u: %s", started,
			        strerror(rc));
			loops_stop();
			status = -1;
			break;
		}
	}
	if (run(&srvs[0]) != NULL)
		status = -1;
	loops_stop();
	for (unsigned i = 1; i < started; i++) {
		void *ret;
		pthread_join(threads[i], &ret);
		if (ret != NULL)
			status = -1;
	}
	return status;
}
