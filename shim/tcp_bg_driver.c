/* SPDX-License-Identifier: MIT */
/*
 * Background handshakes (see tcp_bg.h): the helper thread that drives them.
 *
 * It is one thread of the shim's, started by the first background
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

int tcp_bg_running_count;

static struct {
	pthread_once_t once;
	int err; /* the driver could not start */
	int epfd;
	bool epfd_lost;       /* the program closed it (close_range, closefrom) */
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

void bg_conn_ref(struct bg_conn *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void bg_conn_put(struct bg_conn *c)
{
	if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	tcp_hs_end(&c->hs);
	bg_conn_put(c->lead); /* parked until the end */
	if (c->own >= 0)
		real_close(c->own);
	if (c->efd >= 0 && !c->shared_efd)
		efd_recycle(c->efd);
	else if (c->efd >= 0)
		real_close(c->efd);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->fds_lock);
	free(c);
}

/* A descriptor of the shim's own, moved out of the program's usual range. */
int bg_move_high(int fd)
{
	int high = fd >= 0 ? real_fcntl(fd, F_DUPFD_CLOEXEC, BG_FD_MIN) : -1;
	if (high < 0)
		return fd;
	real_close(fd);
	return high;
}

/* A new epoll set for the helper, marked as the shim's in the fd table
 * (drv.lock held, or before the thread starts). */
static int epfd_token; /* the FD_SHIM_OWNED payload of the helper's set */

static int new_epoll(void)
{
	int fd = bg_move_high(epoll_create1(EPOLL_CLOEXEC));
	if (fd >= 0)
		fdtab_set_payload(fd, FD_SHIM_OWNED, &epfd_token);
	return fd;
}

/* --- the driver's table ------------------------------------------------------------ */

static uint64_t slot_key(unsigned i)
{
	return (uint64_t)drv.gen[i] << 32 | i;
}

/* Takes the connection into the driver (a reference for the table). */
bool bg_driver_add(struct bg_conn *c)
{
	pthread_mutex_lock(&drv.lock);
	unsigned i = 0;
	while (i < BG_SLOTS && drv.slot[i])
		i++;
	if (i == BG_SLOTS) {
		pthread_mutex_unlock(&drv.lock);
		return false;
	}
	if (drv.epfd_lost) {
		drv.epfd = new_epoll();
		drv.epfd_lost = false;
	}
	drv.slot[i] = c;
	drv.gen[i]++;
	__atomic_add_fetch(&drv.used, 1, __ATOMIC_RELAXED);
	c->slot = i;
	bg_conn_ref(c);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
	                         .data.u64 = slot_key(i)};
	bool ok = c->lead || epoll_ctl(drv.epfd, EPOLL_CTL_ADD, c->own, &ev) == 0;
	if (!ok) {
		drv.slot[i] = NULL;
		__atomic_sub_fetch(&drv.used, 1, __ATOMIC_RELAXED);
		c->slot = BG_NO_SLOT;
		__atomic_sub_fetch(&c->refs, 1, __ATOMIC_RELAXED); /* not the last */
	}
	pthread_mutex_unlock(&drv.lock);
	return ok;
}

bool bg_driver_watch(struct bg_conn *c)
{
	pthread_mutex_lock(&drv.lock);
	bool ok = c->slot < BG_NO_SLOT && drv.slot[c->slot] == c;
	if (ok) {
		struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP |
		                                   EPOLLET,
		                         .data.u64 = slot_key(c->slot)};
		ok = epoll_ctl(drv.epfd, EPOLL_CTL_ADD, c->own, &ev) == 0;
	}
	pthread_mutex_unlock(&drv.lock);
	return ok;
}

struct bg_conn *bg_driver_find(bool (*match)(const struct bg_conn *s, const void *arg),
                               const void *arg)
{
	struct bg_conn *found = NULL;
	pthread_mutex_lock(&drv.lock);
	for (unsigned i = 0, seen = 0; i < BG_SLOTS && seen < drv.used && !found; i++) {
		if (!drv.slot[i])
			continue;
		seen++;
		if (match(drv.slot[i], arg)) {
			found = drv.slot[i];
			bg_conn_ref(found);
		}
	}
	pthread_mutex_unlock(&drv.lock);
	return found;
}

/* Lets go of it (no event for it is acted on any more). */
void bg_driver_remove(struct bg_conn *c)
{
	pthread_mutex_lock(&drv.lock);
	bool held = c->slot < BG_NO_SLOT && drv.slot[c->slot] == c;
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
		bg_conn_ref(c);
	}
	pthread_mutex_unlock(&drv.lock);
	return c;
}

int bg_efd(struct bg_conn *c)
{
	bg_wait_lock();
	if (c->efd < 0) {
		c->efd = efd_pool.n
		                 ? efd_pool.fd[--efd_pool.n]
		                 : bg_move_high(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
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

void tcp_log_connect(const struct socks5_addr *target, const char *via, int rc,
                     long long t0_us)
{
	char dst[SOCKS5_ADDR_STRLEN];

	if (!shim_log_enabled(SHIM_LOG_INFO))
		return;
	socks5_addr_format(target, dst, sizeof(dst));
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
	if (running) {
		/* the owner's log line names the proxy from this thread's */
		tcp_hs_via(&c->hs, tcp_last_via, sizeof(tcp_last_via));
		c->done(c->arg, c, rc, &c->hs.bound);
	}
	bg_driver_remove(c);
}

void bg_finish(struct bg_conn *c, int rc)
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
	int fds[sizeof(c->fds) / sizeof(c->fds[0])];
	pthread_mutex_lock(&c->fds_lock);
	unsigned nfds = c->nfds;
	memcpy(fds, c->fds, sizeof(fds));
	pthread_mutex_unlock(&c->fds_lock);
	for (unsigned i = 0; i < nfds; i++)
		bg_regs_restore(fds[i]);
	int efd = c->efd;
	bg_wait_unlock();
	__atomic_sub_fetch(&tcp_bg_running_count, 1, __ATOMIC_RELAXED);
	if (efd >= 0) {
		uint64_t one = 1;
		ssize_t w = write(efd, &one, sizeof(one));
		(void)w;
	}
	char via[TCP_VIA_MAX];
	tcp_hs_via(&c->hs, via, sizeof(via));
	tcp_log_connect(&c->target, via, rc, c->t0_us);
	bg_driver_remove(c);
}

static void drive(struct bg_conn *c)
{
	pthread_mutex_lock(&c->lock);
	int rc = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == BG_RUNNING
	                 ? tcp_hs_step(&c->hs)
	                 : POLLIN;
	pthread_mutex_unlock(&c->lock);
	if (rc <= 0)
		bg_finish(c, rc);
}

/* A handshake past its deadline: the next proxy, with a deadline of its own
 * (failover), or the end. Not inlined: GCC's -Wstringop-overflow, with ASan,
 * takes expire()'s late[] for an empty region here. */
static __attribute__((noinline)) void timed_out(struct bg_conn *c)
{
	pthread_mutex_lock(&c->lock);
	int rc = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == BG_RUNNING
	                 ? tcp_hs_timeout(&c->hs)
	                 : -ETIMEDOUT;
	pthread_mutex_unlock(&c->lock);
	if (rc == 1) { /* expire() reads it under the driver's lock */
		pthread_mutex_lock(&drv.lock);
		c->deadline_ms = tcp_deadline();
		pthread_mutex_unlock(&drv.lock);
	}
	if (rc == 1)
		drive(c);
	else
		bg_finish(c, -ETIMEDOUT);
}

/* Parked connections are looked at this often (ms). */
enum { PARK_POLL_MS = 10 };

/* The nearest deadline, as an epoll_wait timeout; expired ones end, and
 * parked ones whose twin has ended start. */
static int expire(void)
{
	long long now = monotime_ms(), next = -1;
	struct bg_conn *late[BG_BATCH], *go[BG_BATCH];
	unsigned n = 0, ngo = 0;
	pthread_mutex_lock(&drv.lock);
	for (unsigned i = 0, seen = 0; i < BG_SLOTS && seen < drv.used; i++) {
		struct bg_conn *c = drv.slot[i];
		if (!c)
			continue;
		seen++;
		long long d = c->deadline_ms;
		if (__atomic_load_n(&c->lead, __ATOMIC_ACQUIRE)) {
			if (ngo < BG_BATCH && bg_twin_ready(c, now)) {
				bg_conn_ref(c);
				go[ngo++] = c;
			} else if (next < 0 || now + PARK_POLL_MS < next) {
				next = now + PARK_POLL_MS;
			}
		} else if (d <= now && n < BG_BATCH) {
			bg_conn_ref(c);
			late[n++] = c;
		} else if (next < 0 || d < next) {
			next = d;
		}
	}
	pthread_mutex_unlock(&drv.lock);
	for (unsigned i = 0; i < n; i++) {
		timed_out(late[i]);
		bg_conn_put(late[i]);
	}
	for (unsigned i = 0; i < ngo; i++) {
		bg_twin_start(go[i]);
		bg_conn_put(go[i]);
	}
	if (n == BG_BATCH || ngo == BG_BATCH)
		return 0;
	return next < 0 ? -1 : (int)(next - now > 60000 ? 60000 : next - now + 1);
}

/* The program closed the helper's epoll set (close_range, closefrom): every
 * handshake under way ends (its descriptors may be gone too), and a new set
 * is made; the helper never spins on a closed descriptor. */
static void lost_epoll(int epfd)
{
	struct bg_conn *gone[BG_BATCH];
	unsigned n;
	pthread_mutex_lock(&drv.lock);
	bool remade = drv.epfd != epfd; /* by a new handshake: nothing to fail */
	pthread_mutex_unlock(&drv.lock);
	if (remade)
		return;
	shim_log(SHIM_LOG_ERROR,
	         "the program closed the shim's descriptors: handshakes under way "
	         "fail (ECONNABORTED)");
	do {
		n = 0;
		pthread_mutex_lock(&drv.lock);
		for (unsigned i = 0; i < BG_SLOTS && n < BG_BATCH; i++)
			if (drv.slot[i]) {
				bg_conn_ref(drv.slot[i]);
				gone[n++] = drv.slot[i];
			}
		pthread_mutex_unlock(&drv.lock);
		for (unsigned i = 0; i < n; i++) {
			bg_finish(gone[i], -ECONNABORTED);
			bg_conn_put(gone[i]);
		}
	} while (n == BG_BATCH);
	pthread_mutex_lock(&drv.lock);
	if (drv.epfd_lost || drv.epfd < 0) {
		drv.epfd = new_epoll();
		drv.epfd_lost = false;
	}
	pthread_mutex_unlock(&drv.lock);
	usleep(10000);
}

static void *driver_main(void *arg)
{
	struct epoll_event ev[BG_BATCH];
	(void)arg;
	for (;;) {
		int timeout = expire();
		pthread_mutex_lock(&drv.lock);
		int epfd = drv.epfd;
		bool lost = drv.epfd_lost;
		pthread_mutex_unlock(&drv.lock);
		/* at most a second: a set remade meanwhile (closefrom) is waited on soon
		 */
		int n = lost ? -1
		             : epoll_wait(epfd, ev, BG_BATCH,
		                          timeout < 0 || timeout > 1000 ? 1000 : timeout);
		if (n < 0 && (lost || errno != EINTR))
			lost_epoll(epfd);
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

	drv.epfd = new_epoll();
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
	pthread_mutex_init(&c->fds_lock, NULL);
	c->refs = 2; /* the driver's and the caller's */
	c->efd = -1; /* no descriptor of the program's: nothing to settle or wake */
	c->own = fd;
	c->slot = BG_NO_SLOT;
	c->deadline_ms = tcp_deadline();
	c->done = done;
	c->arg = arg;
	int rc = tcp_hs_start(&c->hs, fd, family, cmd, target);
	if (rc == 0)
		rc = tcp_hs_first_wait(&c->hs);
	tcp_hs_edge_triggered(&c->hs); /* after the first wait: see tcp.h */
	c->refs--;                     /* driver_add takes the driver's */
	if (rc < 0 || !bg_driver_add(c)) {
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
	bg_driver_remove(c);
	c->own = -1; /* the owner's descriptor: not the job's to close */
	bg_conn_put(c);
}

int bg_driver_start(void)
{
	pthread_once(&drv.once, start_driver);
	return drv.err;
}

bool bg_driver_full(void)
{
	return __atomic_load_n(&drv.used, __ATOMIC_RELAXED) >= BG_SLOTS;
}

/* In a forked child: no helper thread (the parent's drives what was
 * running), the locks made anew, the parent's eventfds and epoll set let go. */
void bg_driver_atfork_child(void)
{
	pthread_mutex_init(&wait_lock, NULL);
	pthread_mutex_init(&drv.lock, NULL);
	if (drv.epfd >= 0) {
		fdtab_unset(drv.epfd, FD_SHIM_OWNED, &epfd_token);
		real_close(drv.epfd);
	}
	memset(drv.slot, 0, sizeof(drv.slot));
	for (unsigned i = 0; i < efd_pool.n; i++) /* shared with the parent */
		real_close(efd_pool.fd[i]);
	efd_pool.n = 0;
	drv.used = 0;
	drv.epfd = -1;
	drv.err = 0;
	drv.once = (pthread_once_t)PTHREAD_ONCE_INIT;
}

/* The fd table: the program closed the helper's epoll set in a range
 * (close_range, closefrom): the next handshake makes a new one. */
static void epfd_release(int fd, void *p)
{
	(void)fd;
	(void)p;
	pthread_mutex_lock(&drv.lock);
	drv.epfd_lost = true;
	pthread_mutex_unlock(&drv.lock);
}

void bg_driver_init(void)
{
	static const struct fdtab_ops ops = {.release = epfd_release};
	fdtab_register(FD_SHIM_OWNED, &ops);
}
