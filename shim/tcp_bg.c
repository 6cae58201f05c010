/* SPDX-License-Identifier: MIT */
/*
 * Background handshakes (see tcp_bg.h): a connection's life and the driver
 * thread.
 *
 * The driver is one thread of the shim's, started by the first background
 * handshake, with every signal blocked. It has its own epoll set, in which
 * each running handshake's duplicate of the program's socket is registered
 * edge-triggered for input and output; the machine (tcp_hs_step) reads and
 * writes until the socket would block, so every later edge means progress.
 * Working on a duplicate keeps the driver away from the program's
 * descriptor numbers, which the program may close or reuse meanwhile. The
 * epoll data is a slot number with a generation, never a pointer, so an
 * event for a connection that has gone is recognised and ignored.
 */
#include "tcp_bg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fdtab.h"
#include "log.h"
#include "monotime.h"
#include "shim.h"
#include "tcp_bg_int.h"

enum {
	BG_SLOTS = 4096, /* handshakes running at once; beyond, inside connect() */
	BG_FD_MIN = 700, /* the shim's descriptors go at or above this */
	BG_BATCH = 64,
};

int tcp_bg_running_count;

static struct {
	pthread_once_t once;
	int err; /* the driver could not start */
	int epfd;
	pthread_mutex_t lock; /* the slots */
	struct bg_conn *slot[BG_SLOTS];
	unsigned gen[BG_SLOTS];
	unsigned used; /* slots in use */
} drv = {.once = PTHREAD_ONCE_INIT, .epfd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_mutex_t wait_lock = PTHREAD_MUTEX_INITIALIZER;

void bg_wait_lock(void)
{
	pthread_mutex_lock(&wait_lock);
}

void bg_wait_unlock(void)
{
	pthread_mutex_unlock(&wait_lock);
}

/* Eventfds of ended handshakes, their counters read back to 0, for the next
 * ones (bg_wait_lock): a poll() loop that connects one socket after the
 * other makes none after the first. */
static struct {
	int fd[16];
	unsigned n;
} efd_pool;

/* An eventfd back to the pool (or closed). */
static void efd_recycle(int efd)
{
	uint64_t v;
	ssize_t r = read(efd, &v, sizeof(v));
	(void)r;
	bg_wait_lock();
	bool kept = efd_pool.n < sizeof(efd_pool.fd) / sizeof(efd_pool.fd[0]);
	if (kept)
		efd_pool.fd[efd_pool.n++] = efd;
	bg_wait_unlock();
	if (!kept)
		real_close(efd);
}

/* --- references ------------------------------------------------------------------- */

static void conn_ref(struct bg_conn *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void bg_conn_put(struct bg_conn *c)
{
	if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	tcp_hs_end(&c->hs);
	if (c->own >= 0)
		real_close(c->own);
	if (c->efd >= 0 && !c->shared_efd)
		efd_recycle(c->efd);
	else if (c->efd >= 0)
		real_close(c->efd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* A descriptor of the shim's own, moved out of the program's usual range. */
static int move_high(int fd)
{
	int high = fd >= 0 ? real_fcntl(fd, F_DUPFD_CLOEXEC, BG_FD_MIN) : -1;
	if (high < 0)
		return fd;
	real_close(fd);
	return high;
}

/* --- the driver's table ------------------------------------------------------------ */

static uint64_t slot_key(unsigned i)
{
	return (uint64_t)drv.gen[i] << 32 | i;
}

/* Takes the connection into the driver (a reference for the table). */
static bool driver_add(struct bg_conn *c)
{
	pthread_mutex_lock(&drv.lock);
	unsigned i = 0;
	while (i < BG_SLOTS && drv.slot[i])
		i++;
	if (i == BG_SLOTS) {
		pthread_mutex_unlock(&drv.lock);
		return false;
	}
	drv.slot[i] = c;
	drv.gen[i]++;
	__atomic_add_fetch(&drv.used, 1, __ATOMIC_RELAXED);
	c->slot = i;
	conn_ref(c);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
	                         .data.u64 = slot_key(i)};
	bool ok = epoll_ctl(drv.epfd, EPOLL_CTL_ADD, c->own, &ev) == 0;
	if (!ok) {
		drv.slot[i] = NULL;
		__atomic_sub_fetch(&drv.used, 1, __ATOMIC_RELAXED);
		c->slot = BG_SLOTS;
		__atomic_sub_fetch(&c->refs, 1, __ATOMIC_RELAXED); /* not the last */
	}
	pthread_mutex_unlock(&drv.lock);
	return ok;
}

/* Lets go of it (no event for it is acted on any more). */
static void driver_remove(struct bg_conn *c)
{
	pthread_mutex_lock(&drv.lock);
	bool held = c->slot < BG_SLOTS && drv.slot[c->slot] == c;
	if (held) {
		epoll_ctl(drv.epfd, EPOLL_CTL_DEL, c->own, NULL);
		drv.slot[c->slot] = NULL;
		drv.gen[c->slot]++;
		__atomic_sub_fetch(&drv.used, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&drv.lock);
	if (held)
		bg_conn_put(c);
}

/* The connection of an event (a reference for the caller), or NULL. */
static struct bg_conn *driver_get(uint64_t key)
{
	unsigned i = (unsigned)(key & 0xffffffffu);
	struct bg_conn *c = NULL;
	pthread_mutex_lock(&drv.lock);
	if (i < BG_SLOTS && drv.slot[i] && slot_key(i) == key) {
		c = drv.slot[i];
		conn_ref(c);
	}
	pthread_mutex_unlock(&drv.lock);
	return c;
}

int bg_efd(struct bg_conn *c)
{
	bg_wait_lock();
	if (c->efd < 0) {
		c->efd = efd_pool.n ? efd_pool.fd[--efd_pool.n]
		                    : move_high(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
		if (c->efd >= 0 && c->state != BG_RUNNING) {
			uint64_t one = 1;
			ssize_t w = write(c->efd, &one, sizeof(one));
			(void)w;
		}
	}
	int efd = c->efd;
	bg_wait_unlock();
	return efd;
}

/* --- the end of a handshake ----------------------------------------------------------
 */

void tcp_log_connect(const struct socks5_addr *target, int rc, long long t0_us)
{
	char dst[SOCKS5_ADDR_STRLEN], via[300];
	const struct config_proxy *p = &shim_config.proxy;

	if (!shim_log_enabled(SHIM_LOG_INFO))
		return;
	socks5_addr_format(target, dst, sizeof(dst));
	sa_format_hostport(p->host, p->port, via, sizeof(via));
	shim_log(rc == 0 ? SHIM_LOG_INFO : SHIM_LOG_ERROR,
	         "connect %s via %s: %s, %lld us", dst, via,
	         rc == 0 ? "ok" : strerror(-rc), monotime_us() - t0_us);
}

/* The handshake is over (rc: 0 or -errno): the program's registrations are
 * put back (which wakes its epoll waiters), the eventfd wakes the others. */
/* The end of an exchange of the shim's own: its owner is told. */
static void finish_job(struct bg_conn *c, int rc)
{
	bg_wait_lock();
	bool running = c->state == BG_RUNNING;
	if (running)
		__atomic_store_n(&c->state, rc == 0 ? BG_OK : BG_FAILED,
		                 __ATOMIC_RELEASE);
	bg_wait_unlock();
	if (running)
		c->done(c->arg, c, rc, &c->hs.bound);
	driver_remove(c);
}

static void finish(struct bg_conn *c, int rc)
{
	if (c->done) {
		finish_job(c, rc);
		return;
	}
	bg_wait_lock();
	if (c->state != BG_RUNNING) {
		bg_wait_unlock();
		return;
	}
	if (rc < 0) {
		/* as after a failed connect: no half-open connection to the proxy,
		 * and the socket polls readable and writable */
		shutdown(c->own, SHUT_RDWR);
		c->err = -rc;
	}
	__atomic_store_n(&c->state, rc == 0 ? BG_OK : BG_FAILED, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < c->nfds; i++)
		bg_regs_restore(c->fds[i]);
	int efd = c->efd;
	bg_wait_unlock();
	__atomic_sub_fetch(&tcp_bg_running_count, 1, __ATOMIC_RELAXED);
	if (efd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(efd, &one, sizeof(one));
		(void)w;
	}
	tcp_log_connect(&c->target, rc, c->t0_us);
	driver_remove(c);
}

static void drive(struct bg_conn *c)
{
	pthread_mutex_lock(&c->lock);
	int rc = c->state == BG_RUNNING ? tcp_hs_step(&c->hs) : POLLIN;
	pthread_mutex_unlock(&c->lock);
	if (rc <= 0)
		finish(c, rc);
}

/* The nearest deadline, as an epoll_wait timeout; expired ones end. */
static int expire(void)
{
	long long now = monotime_ms(), next = -1;
	struct bg_conn *late[BG_BATCH];
	unsigned n = 0;
	pthread_mutex_lock(&drv.lock);
	for (unsigned i = 0, seen = 0; i < BG_SLOTS && seen < drv.used; i++) {
		struct bg_conn *c = drv.slot[i];
		if (!c)
			continue;
		seen++;
		if (c->deadline_ms <= now && n < BG_BATCH) {
			conn_ref(c);
			late[n++] = c;
		} else if (next < 0 || c->deadline_ms < next) {
			next = c->deadline_ms;
		}
	}
	pthread_mutex_unlock(&drv.lock);
	for (unsigned i = 0; i < n; i++) {
		finish(late[i], -ETIMEDOUT);
		bg_conn_put(late[i]);
	}
	if (n == BG_BATCH)
		return 0;
	return next < 0 ? -1 : (int)(next - now > 60000 ? 60000 : next - now + 1);
}

static void *driver_main(void *arg)
{
	struct epoll_event ev[BG_BATCH];
	(void)arg;
	for (;;) {
		int n = epoll_wait(drv.epfd, ev, BG_BATCH, expire());
		for (int i = 0; i < n; i++) {
			struct bg_conn *c = driver_get(ev[i].data.u64);
			if (c) {
				drive(c);
				bg_conn_put(c);
			}
		}
	}
	return NULL;
}

/* Starts the driver; no signal is ever delivered to it. */
static void start_driver(void)
{
	sigset_t all, old;
	pthread_t t;
	pthread_attr_t attr;

	drv.epfd = move_high(epoll_create1(EPOLL_CLOEXEC));
	if (drv.epfd < 0) {
		drv.err = errno;
		return;
	}
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	drv.err = pthread_create(&t, &attr, driver_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (drv.err)
		shim_log(SHIM_LOG_ERROR, "no background handshakes: %s",
		         strerror(drv.err));
}

/* --- starting --------------------------------------------------------------------------
 */

bool tcp_bg_eligible(int fd)
{
	const struct fd_entry *e = fdtab_lookup(fd);
	if (!e || !e->born)
		return false; /* registrations made before the shim knew the socket */
	pthread_once(&drv.once, start_driver);
	if (drv.err || __atomic_load_n(&drv.used, __ATOMIC_RELAXED) >= BG_SLOTS)
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
	c->refs = 1;
	c->fd = fd;
	c->fds[0] = fd;
	c->nfds = 1;
	c->slot = BG_SLOTS;
	c->own = real_fcntl(fd, F_DUPFD_CLOEXEC, BG_FD_MIN);
	if (c->own < 0)
		c->own = real_fcntl(fd, F_DUPFD_CLOEXEC, 0);
	c->efd = -1; /* made when a poll()/select() waiter needs one (bg_efd) */
	c->t0_us = monotime_us();
	c->deadline_ms = tcp_deadline();
	c->peer_len = len < sizeof(c->peer) ? len : sizeof(c->peer);
	memcpy(&c->peer, addr, c->peer_len);
	c->target = pol->target;
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
	conn_ref(c); /* the fd table's */
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
	int rc = tcp_hs_start(&c->hs, c->own, addr->sa_family, SOCKS5_CMD_CONNECT,
	                      &pol->target);
	/* the machine's first answer is what to wait for (the connect): the
	 * driver's edge-triggered registration reports that wait's end */
	if (rc == 0)
		rc = tcp_hs_step(&c->hs) > 0 ? 0 : -EPROTO;
	if (rc == 0 && !driver_add(c))
		rc = -EAGAIN;
	if (rc < 0)
		finish(c, rc);
	bg_conn_put(c);
	return 0;
}

struct bg_conn *tcp_bg_run(int fd, int family, uint8_t cmd,
                           const struct socks5_addr *target,
                           void (*done)(void *arg, struct bg_conn *job, int rc,
                                        const struct socks5_addr *bound),
                           void *arg)
{
	pthread_once(&drv.once, start_driver);
	struct bg_conn *c = drv.err ? NULL : calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->refs = 2; /* the driver's and the caller's */
	c->fd = c->efd = -1;
	c->own = fd;
	c->slot = BG_SLOTS;
	c->deadline_ms = tcp_deadline();
	c->done = done;
	c->arg = arg;
	int rc = tcp_hs_start(&c->hs, fd, family, cmd, target);
	if (rc == 0)
		rc = tcp_hs_step(&c->hs) > 0 ? 0 : -EPROTO;
	c->refs--; /* driver_add takes the driver's */
	if (rc < 0 || !driver_add(c)) {
		c->own = -1; /* the caller's */
		bg_conn_put(c);
		return NULL;
	}
	return c;
}

void tcp_bg_cancel(struct bg_conn *c)
{
	if (!c)
		return;
	/* c->lock: a step under way on the owner's descriptor ends first */
	pthread_mutex_lock(&c->lock);
	bg_wait_lock();
	if (c->state == BG_RUNNING)
		__atomic_store_n(&c->state, BG_CANCELLED, __ATOMIC_RELEASE);
	bg_wait_unlock();
	pthread_mutex_unlock(&c->lock);
	driver_remove(c);
	c->own = -1; /* the owner's descriptor: not the job's to close */
	bg_conn_put(c);
}

/* --- what the program sees ------------------------------------------------------------
 */

/* A handshake the parent process drives (fork): over once its eventfd is
 * readable; failed when the parent shut the socket down. */
static void settle_foreign(struct bg_conn *c)
{
	struct pollfd p[2] = {{.fd = bg_efd(c), .events = POLLIN},
	                      {.fd = c->own, .events = POLLRDHUP}};
	bool over = real_poll(p, 1, 0) == 1;
	if (!over && monotime_ms() < c->deadline_ms)
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
	if (state == BG_OK)
		fdtab_set_proxied(fd, &c->peer.sa, c->peer_len);
	else if (state != BG_RUNNING)
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
	conn_ref(p);
}

/* dup: one more descriptor, whose registrations go back at the end too */
static void entry_copy(int fd, void *p)
{
	struct bg_conn *c = p;
	__atomic_add_fetch(&c->fdrefs, 1, __ATOMIC_RELAXED);
	conn_ref(c);
	bg_wait_lock();
	if (c->nfds < sizeof(c->fds) / sizeof(c->fds[0]))
		c->fds[c->nfds++] = fd;
	bg_wait_unlock();
}

/* fd no longer names the socket (bg_wait_lock held). */
static void forget_fd(struct bg_conn *c, int fd)
{
	for (unsigned i = 0; i < c->nfds; i++)
		if (c->fds[i] == fd) {
			c->fds[i] = c->fds[--c->nfds];
			bg_regs_forget(fd);
			break;
		}
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
		driver_remove(c);
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
}

/* In a forked child: no driver (the parent's drives what was running), and
 * the locks made anew. */
static void atfork_child(void)
{
	pthread_mutex_init(&wait_lock, NULL);
	pthread_mutex_init(&drv.lock, NULL);
	if (drv.epfd >= 0)
		real_close(drv.epfd);
	memset(drv.slot, 0, sizeof(drv.slot));
	for (unsigned i = 0; i < efd_pool.n; i++) /* shared with the parent */
		real_close(efd_pool.fd[i]);
	efd_pool.n = 0;
	drv.used = 0;
	drv.epfd = -1;
	drv.err = 0;
	drv.once = (pthread_once_t)PTHREAD_ONCE_INIT;
	fdtab_for_each(FD_TCP_PENDING, mark_foreign);
}

void tcp_bg_init(void)
{
	static const struct fdtab_ops ops = {
	        .hold = entry_hold, .copy = entry_copy, .release = entry_release};
	fdtab_register(FD_TCP_PENDING, &ops);
	pthread_atfork(atfork_prepare, NULL, atfork_child);
}
