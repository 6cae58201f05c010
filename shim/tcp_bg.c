/* SPDX-License-Identifier: MIT */
/*
 * Background handshakes (see tcp_bg.h): a connection's start, what the
 * program sees of it, the fd table and fork. The helper thread that drives
 * it is tcp_bg_driver.c.
 */
#include "tcp_bg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbind.h"
#include "fdtab.h"
#include "monotime.h"
#include "shim.h"
#include "tcp_bg_int.h"

/* --- starting --------------------------------------------------------------------------
 */

bool tcp_bg_eligible(int fd)
{
	const struct fd_entry *e = fdtab_lookup(fd);
	if (!e || !e->born)
		return false; /* registrations made before the shim knew the socket */
	if (bg_driver_start() || bg_driver_full())
		return false;
	bg_wait_lock();
	bool ok = bg_regs_followed(fd);
	bg_wait_unlock();
	return ok;
}

static struct bg_conn *conn_new(int fd, const struct sockaddr *addr, socklen_t len,
                                const struct policy *pol)
{
	struct bg_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->fds_lock, NULL);
	c->refs = 1;
	c->fds[0] = fd;
	c->nfds = 1;
	c->slot = BG_NO_SLOT;
	c->own = real_fcntl(fd, F_DUPFD_CLOEXEC, BG_FD_MIN);
	if (c->own < 0)
		c->own = real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
	c->efd = -1; /* made when a poll()/select() waiter needs one (bg_efd) */
	c->t0_us = monotime_us();
	c->deadline_ms = tcp_deadline();
	c->peer_len = len < sizeof(c->peer) ? len : sizeof(c->peer);
	memcpy(&c->peer, addr, c->peer_len);
	c->target = pol->target;
	c->family = addr->sa_family;
	if (c->own < 0) {
		bg_conn_put(c);
		return NULL;
	}
	return c;
}

int tcp_bg_connect(int fd, const struct sockaddr *addr, socklen_t len,
                   const struct policy *pol)
{
	struct bg_conn *c = conn_new(fd, addr, len, pol);
	if (!c)
		return -ENOMEM;
	c->fdrefs = 1;
	bg_conn_ref(c); /* the fd table's */
	if (!fdtab_set_payload(fd, FD_TCP_PENDING, c)) {
		bg_conn_put(c);
		bg_conn_put(c);
		return -EMFILE;
	}
	/* hidden from the program's waiters before the proxy can answer */
	bg_wait_lock();
	bg_regs_mask(fd);
	bg_wait_unlock();
	__atomic_add_fetch(&tcp_bg_running_count, 1, __ATOMIC_RELAXED);
	/* behind a twin's handshake: started by the driver (tcp_bg_twin.c) */
	if (bg_twin_park(c)) {
		if (bg_driver_add(c)) {
			bg_conn_put(c);
			return 0;
		}
		bg_conn_put(c->lead);
		c->lead = NULL;
	}
	int rc = tcp_hs_start(&c->hs, c->own, addr->sa_family, SOCKS5_CMD_CONNECT,
	                      &pol->target);
	/* the machine's first answer is what to wait for (the connect, or the
	 * greeting's answer when it went out at once): the driver's
	 * edge-triggered registration reports that wait's end; the driver's
	 * own steps read an answer before they wait for it */
	if (rc == 0)
		rc = tcp_hs_first_wait(&c->hs);
	tcp_hs_edge_triggered(&c->hs);
	if (rc == 0 && !bg_driver_add(c))
		rc = -EAGAIN;
	if (rc < 0)
		bg_finish(c, rc);
	bg_conn_put(c);
	return 0;
}

/* --- what the program sees ------------------------------------------------------------
 */

/* The latest the parent can still be at it: failover gives each further
 * proxy a connect_timeout of its own, which this copy cannot see. */
static long long foreign_deadline(const struct bg_conn *c)
{
	long long d = c->deadline_ms;
	if (shim_config.nproxies > 1 && shim_config.chain != CONFIG_CHAIN_STRICT)
		d += (long long)(shim_config.nproxies - 1) *
		     shim_config.connect_timeout_ms;
	return d;
}

/* A handshake the parent process drives (fork): over once its eventfd is
 * readable; failed when the parent shut the socket down. */
static void settle_foreign(struct bg_conn *c)
{
	struct pollfd p[2] = {{.fd = bg_efd(c), .events = POLLIN},
	                      {.fd = c->own, .events = POLLRDHUP}};
	bool over = real_poll(p, 1, 0) == 1;
	if (!over && monotime_ms() < foreign_deadline(c))
		return;
	bool hup = real_poll(&p[1], 1, 0) == 1 && (p[1].revents & (POLLHUP | POLLRDHUP));
	bg_wait_lock();
	if (c->state == BG_RUNNING) {
		c->err = !over ? ETIMEDOUT : ECONNABORTED;
		__atomic_store_n(&c->state, over && !hup ? BG_OK : BG_FAILED,
		                 __ATOMIC_RELEASE);
		__atomic_sub_fetch(&tcp_bg_running_count, 1, __ATOMIC_RELAXED);
	}
	bg_wait_unlock();
}

bool tcp_bg_running(int fd)
{
	struct bg_conn *c = fdtab_hold(fd, FD_TCP_PENDING);
	if (!c)
		return false;
	if (c->foreign)
		settle_foreign(c);
	int state = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
	if (state == BG_OK) {
		fdtab_set_proxied(fd, &c->peer.sa, c->peer_len);
		cbind_note_connected(fd, &c->hs.bound);
	} else if (state != BG_RUNNING)
		fdtab_set_failed(fd, c->err ? c->err : ECONNABORTED, true);
	bg_conn_put(c);
	return state == BG_RUNNING;
}

int tcp_bg_gate(int fd)
{
	while (tcp_bg_running(fd)) {
		int fl = real_fcntl(fd, F_GETFL);
		if (fl < 0 || (fl & O_NONBLOCK)) {
			errno = EAGAIN;
			return -1;
		}
		struct bg_conn *c = fdtab_hold(fd, FD_TCP_PENDING);
		if (!c)
			break;
		struct pollfd p = {.fd = bg_efd(c), .events = POLLIN};
		int n = real_poll(&p, 1, 1000);
		bg_conn_put(c);
		if (n < 0 && errno == EINTR)
			return -1;
	}
	return 0;
}

/* --- the fd table and fork
 * -------------------------------------------------------------- */

static void entry_hold(void *p)
{
	bg_conn_ref(p);
}

/* dup: one more descriptor, whose registrations go back at the end too */
static void entry_copy(int fd, void *p)
{
	struct bg_conn *c = p;
	__atomic_add_fetch(&c->fdrefs, 1, __ATOMIC_RELAXED);
	bg_conn_ref(c);
	/* under the fd table's lock: only fds_lock, never bg_wait_lock */
	pthread_mutex_lock(&c->fds_lock);
	if (c->nfds < sizeof(c->fds) / sizeof(c->fds[0]))
		c->fds[c->nfds++] = fd;
	pthread_mutex_unlock(&c->fds_lock);
}

/* fd no longer names the socket (bg_wait_lock held). */
static void forget_fd(struct bg_conn *c, int fd)
{
	bool found = false;
	pthread_mutex_lock(&c->fds_lock);
	for (unsigned i = 0; i < c->nfds && !found; i++)
		if (c->fds[i] == fd) {
			c->fds[i] = c->fds[--c->nfds];
			found = true;
		}
	pthread_mutex_unlock(&c->fds_lock);
	if (found)
		bg_regs_forget(fd);
}

/* The last descriptor of a running handshake is closed: it is cancelled. */
static void entry_release(int fd, void *p)
{
	struct bg_conn *c = p;
	bg_wait_lock();
	forget_fd(c, fd);
	bg_wait_unlock();
	if (__atomic_sub_fetch(&c->fdrefs, 1, __ATOMIC_ACQ_REL) == 0) {
		bg_wait_lock();
		bool running = c->state == BG_RUNNING;
		if (running)
			__atomic_store_n(&c->state, BG_CANCELLED, __ATOMIC_RELEASE);
		bg_wait_unlock();
		if (running)
			__atomic_sub_fetch(&tcp_bg_running_count, 1, __ATOMIC_RELAXED);
		bg_driver_remove(c);
	}
	bg_conn_put(c);
}

static void give_efd(int fd, void *p)
{
	struct bg_conn *c = p;
	(void)fd;
	bg_efd(c);
	c->shared_efd = true;
}

/* Before fork(): every running handshake gets its eventfd, so that the
 * child shares it and learns the end from the parent's helper thread. */
static void atfork_prepare(void)
{
	if (__atomic_load_n(&tcp_bg_running_count, __ATOMIC_RELAXED) > 0)
		fdtab_for_each(FD_TCP_PENDING, give_efd);
}

static void mark_foreign(int fd, void *p)
{
	struct bg_conn *c = p;
	(void)fd;
	c->foreign = true;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->fds_lock, NULL);
}

/* In a forked child: no driver (the parent's drives what was running), and
 * the locks made anew. */
static void atfork_child(void)
{
	bg_driver_atfork_child();
	fdtab_for_each(FD_TCP_PENDING, mark_foreign);
}

void tcp_bg_init(void)
{
	static const struct fdtab_ops ops = {
	        .hold = entry_hold, .copy = entry_copy, .release = entry_release};
	fdtab_register(FD_TCP_PENDING, &ops);
	bg_driver_init();
	pthread_atfork(atfork_prepare, NULL, atfork_child);
}
