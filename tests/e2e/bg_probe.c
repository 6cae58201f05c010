/* SPDX-License-Identifier: MIT */
/*
 * bg_probe: non-blocking connects under socksify whose handshake runs in the
 * background, checked from the program's side through a far proxy (one that
 * answers late): connect() returns at once, the socket looks in progress
 * until the proxy's reply, then every kind of waiter sees it complete.
 *
 *   bg_probe window HOST PORT PATH EXPECT     connect() time, the pending window
 *   bg_probe epoll HOST PORT PATH EXPECT      LT/ET/ONESHOT before/after, two sets
 *   bg_probe pollselect HOST PORT PATH EXPECT poll() and select() waiters
 *   bg_probe error HOST PORT ERRNAME          a failure comes back through SO_ERROR
 *   bg_probe lifecycle HOST PORT PATH EXPECT  close, dup2, fork and threads in the window
 *   bg_probe sleeper HOST PORT PATH EXPECT    a program that never waits, one that
 *                                             turns the socket blocking
 *
 * Every check prints "ok ..." or "FAIL ..."; the exit status is 0 when every
 * check passed, 1 otherwise, 2 for bad usage. The far proxy must delay its
 * answers by at least 100 ms (MIN_LATE_MS).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MIN_LATE_MS = 100, WAIT_MS = 10000 };
/* connect()'s time limit: 50 ms (a quarter of one far round trip: a
 * loaded machine or a sanitizer can take 10), or BG_PROBE_FAST_MS */
static double fast_ms = 50;

static int failures;

__attribute__((format(printf, 2, 3))) static void check(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("%s ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	fflush(stdout);
	failures += !ok;
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static struct sockaddr_storage target;
static socklen_t target_len;

static void resolve(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
	struct addrinfo *ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		fprintf(stderr, "bg_probe: bad address %s %s\n", host, port);
		exit(2);
	}
	memcpy(&target, ai->ai_addr, ai->ai_addrlen);
	target_len = ai->ai_addrlen;
	freeaddrinfo(ai);
}

/* A non-blocking socket whose connect() has just returned; its time in *ms. */
static int start(double *ms)
{
	int fd = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	double t0 = now_ms();
	int rc = connect(fd, (struct sockaddr *)&target, target_len);
	int err = errno;
	if (ms)
		*ms = now_ms() - t0;
	if (rc != -1 || err != EINPROGRESS)
		check(false, "connect: %d %s (want -1 EINPROGRESS)", rc, strerror(err));
	return fd;
}

static int so_error(int fd)
{
	int err = -1;
	socklen_t len = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	return err;
}

static bool connected(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	return getpeername(fd, (struct sockaddr *)&ss, &len) == 0;
}

/* GET path on fd (made blocking), the answer must hold expect. */
static bool fetch(int fd, const char *path, const char *expect)
{
	char req[512], buf[8192];
	size_t have = 0;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: t\r\n\r\n", path);
	if (write(fd, req, (size_t)n) != n)
		return false;
	for (ssize_t r; have < sizeof(buf) - 1 &&
	                (r = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0;)
		have += (size_t)r;
	buf[have] = '\0';
	return strstr(buf, expect) != NULL;
}

/* --- window ------------------------------------------------------------------------ */

static int cmd_window(const char *path, const char *expect)
{
	double ms, t0 = now_ms();
	int fd = start(&ms);
	check(ms < fast_ms, "connect() returned EINPROGRESS in %.3f ms (< %.0f)", ms,
	      fast_ms);
	check(so_error(fd) == 0, "pending: SO_ERROR is 0");
	errno = 0;
	check(connect(fd, (struct sockaddr *)&target, target_len) == -1 &&
	              errno == EALREADY,
	      "pending: a second connect() answers EALREADY (%s)", strerror(errno));
	char c;
	errno = 0;
	check(send(fd, "x", 1, MSG_NOSIGNAL) == -1 && errno == EAGAIN,
	      "pending: send EAGAIN (%s)", strerror(errno));
	errno = 0;
	check(write(fd, "x", 1) == -1 && errno == EAGAIN, "pending: write EAGAIN");
	errno = 0;
	check(recv(fd, &c, 1, 0) == -1 && errno == EAGAIN, "pending: recv EAGAIN (%s)",
	      strerror(errno));
	errno = 0;
	check(read(fd, &c, 1) == -1 && errno == EAGAIN, "pending: read EAGAIN");
	errno = 0;
	check(!connected(fd) && errno == ENOTCONN, "pending: getpeername ENOTCONN");
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	check(poll(&p, 1, 0) == 0, "pending: poll() does not report it writable");
	int n = poll(&p, 1, WAIT_MS);
	double late = now_ms() - t0;
	check(n == 1 && (p.revents & POLLOUT) && !(p.revents & (POLLERR | POLLHUP)),
	      "writable once the reply came (revents %#x)", (unsigned)p.revents);
	check(late >= MIN_LATE_MS, "not before the far proxy answered (%.0f ms)", late);
	check(so_error(fd) == 0 && connected(fd),
	      "then SO_ERROR 0 and getpeername works");
	errno = 0;
	check(connect(fd, (struct sockaddr *)&target, target_len) == -1 &&
	              errno == EISCONN,
	      "then a second connect() answers EISCONN");
	check(fetch(fd, path, expect), "data flows");
	close(fd);
	return failures != 0;
}

/* --- epoll ---------------------------------------------------------------------------
 */

enum { EP_SOCKS = 6 };

static const struct {
	const char *name;
	uint32_t events;
	bool before;
} ep_cases[EP_SOCKS] = {
        {"level-triggered, registered before connect", EPOLLOUT, true},
        {"level-triggered, registered after", EPOLLOUT, false},
        {"edge-triggered, registered before", EPOLLOUT | EPOLLET, true},
        {"edge-triggered, registered after", EPOLLOUT | EPOLLET, false},
        {"one-shot, registered before", EPOLLOUT | EPOLLONESHOT, true},
        {"one-shot, registered after (and in a second set)", EPOLLOUT | EPOLLONESHOT,
         false},
};

static int cmd_epoll(const char *path, const char *expect)
{
	int ep = epoll_create1(0), ep2 = epoll_create1(0), fd[EP_SOCKS];
	double t0 = now_ms(), seen[EP_SOCKS] = {0};
	for (int i = 0; i < EP_SOCKS; i++) {
		struct epoll_event ev = {.events = ep_cases[i].events,
		                         .data.u32 = (uint32_t)i};
		fd[i] = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (ep_cases[i].before)
			epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev);
		connect(fd[i], (struct sockaddr *)&target, target_len);
		if (!ep_cases[i].before)
			epoll_ctl(ep, EPOLL_CTL_ADD, fd[i], &ev);
	}
	struct epoll_event ev2 = {.events = EPOLLOUT, .data.u32 = 99};
	epoll_ctl(ep2, EPOLL_CTL_ADD, fd[EP_SOCKS - 1], &ev2);
	int left = EP_SOCKS;
	while (left > 0 && now_ms() - t0 < WAIT_MS) {
		struct epoll_event evs[8];
		int n = epoll_wait(ep, evs, 8, 100);
		for (int k = 0; k < n; k++) {
			int i = (int)evs[k].data.u32;
			if (seen[i])
				continue;
			seen[i] = now_ms() - t0;
			left--;
			check((evs[k].events & EPOLLOUT) && connected(fd[i]) &&
			              so_error(fd[i]) == 0 && seen[i] >= MIN_LATE_MS,
			      "epoll %s: EPOLLOUT once connected, after %.0f ms",
			      ep_cases[i].name, seen[i]);
		}
	}
	for (int i = 0; i < EP_SOCKS; i++)
		check(seen[i] > 0, "epoll %s: reported", ep_cases[i].name);
	struct epoll_event e2;
	check(epoll_wait(ep2, &e2, 1, 1000) == 1 && e2.data.u32 == 99 &&
	              (e2.events & EPOLLOUT),
	      "the second epoll set reports it too");
	for (int i = 0; i < EP_SOCKS; i++) {
		check(fetch(fd[i], path, expect), "epoll %s: data flows",
		      ep_cases[i].name);
		close(fd[i]);
	}
	close(ep);
	close(ep2);
	return failures != 0;
}

/* --- poll and select --------------------------------------------------------------- */

static int cmd_pollselect(const char *path, const char *expect)
{
	double t0 = now_ms();
	int a = start(NULL), b = start(NULL);
	struct pollfd p = {.fd = a, .events = POLLOUT};
	int n = poll(&p, 1, WAIT_MS);
	double ta = now_ms() - t0;
	check(n == 1 && (p.revents & POLLOUT) && connected(a) && ta >= MIN_LATE_MS,
	      "poll(): writable once connected, after %.0f ms", ta);
	fd_set w;
	FD_ZERO(&w);
	FD_SET(b, &w);
	struct timeval tv = {.tv_sec = WAIT_MS / 1000};
	n = select(b + 1, NULL, &w, NULL, &tv);
	check(n == 1 && FD_ISSET(b, &w) && connected(b),
	      "select(): writable once connected");
	int c = start(NULL);
	FD_ZERO(&w);
	FD_SET(c, &w);
	tv = (struct timeval){.tv_usec = 1000};
	check(select(c + 1, NULL, &w, NULL, &tv) == 0,
	      "select(): not writable while pending");
	struct timespec ts = {.tv_sec = WAIT_MS / 1000};
	sigset_t none;
	sigemptyset(&none);
	p = (struct pollfd){.fd = c, .events = POLLOUT};
	n = ppoll(&p, 1, &ts, &none);
	check(n == 1 && (p.revents & POLLOUT) && connected(c),
	      "ppoll(): writable once connected");
	int d = start(NULL);
	FD_ZERO(&w);
	FD_SET(d, &w);
	n = pselect(d + 1, NULL, &w, NULL, &ts, &none);
	check(n == 1 && FD_ISSET(d, &w) && connected(d),
	      "pselect(): writable once connected");
	close(d);
	check(fetch(a, path, expect) && fetch(b, path, expect), "data flows on both");
	close(a);
	close(b);
	close(c);
	return failures != 0;
}

/* --- failures --------------------------------------------------------------------------
 */

static int errno_of(const char *name)
{
	static const struct {
		const char *name;
		int value;
	} names[] = {{"ECONNREFUSED", ECONNREFUSED},
	             {"EHOSTUNREACH", EHOSTUNREACH},
	             {"ENETUNREACH", ENETUNREACH},
	             {"EACCES", EACCES},
	             {"ETIMEDOUT", ETIMEDOUT}};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i].name, name) == 0)
			return names[i].value;
	fprintf(stderr, "bg_probe: unknown errno name %s\n", name);
	exit(2);
}

static int cmd_error(const char *name)
{
	int want = errno_of(name), ep = epoll_create1(0);
	double ms;
	int fd = start(&ms);
	check(ms < fast_ms, "connect() returned EINPROGRESS in %.3f ms", ms);
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLET};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	int n = epoll_wait(ep, &ev, 1, WAIT_MS);
	check(n == 1 && (ev.events & EPOLLOUT) && (ev.events & EPOLLIN) &&
	              (ev.events & EPOLLHUP),
	      "epoll reports readable, writable and hang-up (%#x)", (unsigned)ev.events);
	int got = so_error(fd);
	check(got == want, "SO_ERROR %s (%s)", name, strerror(got));
	check(so_error(fd) == 0, "once");
	close(fd);
	close(ep);
	return failures != 0;
}

/* --- close, dup2, fork and threads in the window ---------------------------------------
 */

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void *closer(void *arg)
{
	usleep(30000);
	close(*(int *)arg);
	return NULL;
}

static void lifecycle_close(const char *path, const char *expect)
{
	/* one handshake first: the shim's helper thread and its epoll set stay */
	int warm = start(NULL);
	struct pollfd wp = {.fd = warm, .events = POLLOUT};
	poll(&wp, 1, WAIT_MS);
	close(warm);
	usleep(200000); /* the helper thread lets go of the warm-up's own descriptors */
	int before = count_fds();
	int fd = start(NULL);
	close(fd);
	usleep(50000); /* well before the far proxy could have answered */
	check(count_fds() == before,
	      "close in the window cancels the handshake at once (%d descriptors, %d "
	      "before)",
	      count_fds(), before);
	int again = start(NULL);
	struct pollfd p = {.fd = again, .events = POLLOUT};
	check(poll(&p, 1, WAIT_MS) == 1 && connected(again) && fetch(again, path, expect),
	      "close in the window, then a new connect on the number works");
	close(again);
	int t = start(NULL);
	pthread_t th;
	pthread_create(&th, NULL, closer, &t);
	p = (struct pollfd){.fd = t, .events = POLLOUT};
	double t0 = now_ms();
	int n = poll(&p, 1, 1500);
	pthread_join(th, NULL);
	check(n >= 0 && now_ms() - t0 < 2000,
	      "a thread closes the socket another waits on: no hang");
	usleep(600000); /* every cancelled handshake's resources go */
	check(count_fds() == before, "no descriptor left behind (%d, %d before)",
	      count_fds(), before);
}

static void lifecycle_dup2(const char *path, const char *expect)
{
	int fd = start(NULL), other = socket(AF_INET, SOCK_STREAM, 0);
	int ep = epoll_create1(0);
	check(dup2(fd, other) == other, "dup2 in the window");
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLET};
	check(epoll_ctl(ep, EPOLL_CTL_ADD, other, &ev) == 0,
	      "the copy registered in epoll");
	close(fd);
	check(epoll_wait(ep, &ev, 1, 0) == 0, "not reported while pending");
	check(epoll_wait(ep, &ev, 1, WAIT_MS) == 1 && (ev.events & EPOLLOUT) &&
	              connected(other) && fetch(other, path, expect),
	      "the copy completes (epoll reports it) and carries data after the original "
	      "is closed");
	close(other);
	close(ep);
}

static void lifecycle_fork(const char *path, const char *expect)
{
	int fd = start(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int n = poll(&p, 1, WAIT_MS);
		_exit(n == 1 && (p.revents & POLLOUT) && connected(fd) ? 0 : 1);
	}
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	check(poll(&p, 1, WAIT_MS) == 1 && fetch(fd, path, expect),
	      "fork in the window: the parent's connection completes and carries data");
	int status = -1;
	waitpid(pid, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child sees the socket complete too");
	close(fd);
}

struct waiter {
	int ep;
	int got;
};

static void *epoll_waiter(void *arg)
{
	struct waiter *w = arg;
	struct epoll_event ev;
	w->got = epoll_wait(w->ep, &ev, 1, -1) == 1 && (ev.events & EPOLLOUT);
	return NULL;
}

/* A thread waits in epoll_wait(-1) on a set that is empty yet; another
 * connects a socket and registers it there: the waiter wakes when the
 * handshake ends, not before. */
static void lifecycle_threads(const char *path, const char *expect)
{
	struct waiter w = {.ep = epoll_create1(0)};
	pthread_t th;
	pthread_create(&th, NULL, epoll_waiter, &w);
	usleep(20000);
	double t0 = now_ms();
	int fd = start(NULL);
	struct epoll_event ev = {.events = EPOLLOUT | EPOLLET};
	epoll_ctl(w.ep, EPOLL_CTL_ADD, fd, &ev);
	pthread_join(th, NULL);
	double late = now_ms() - t0;
	check(w.got && connected(fd) && late >= MIN_LATE_MS && fetch(fd, path, expect),
	      "a thread in epoll_wait(-1) wakes when another thread's handshake ends "
	      "(%.0f ms)",
	      late);
	close(fd);
	close(w.ep);
}

static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* closefrom(3) in the window closes the socket and the shim's own
 * descriptors: the shim recovers (no spin), and the next connect works. */
static void lifecycle_closefrom(const char *path, const char *expect)
{
	start(NULL);
	closefrom(3);
	double c0 = cpu_ms();
	usleep(300000);
	double spent = cpu_ms() - c0;
	check(spent < 100,
	      "closefrom(3) in the window: no busy helper thread (%.0f ms of CPU in 300)",
	      spent);
	int fd = start(NULL);
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	check(poll(&p, 1, WAIT_MS) == 1 && connected(fd) && fetch(fd, path, expect),
	      "then a new connect completes and carries data");
	close(fd);
}

static int cmd_lifecycle(const char *path, const char *expect)
{
	lifecycle_close(path, expect);
	lifecycle_dup2(path, expect);
	lifecycle_fork(path, expect);
	lifecycle_threads(path, expect);
	lifecycle_closefrom(path, expect);
	return failures != 0;
}

/* --- programs that do not wait
 * ----------------------------------------------------------- */

static int cmd_sleeper(const char *path, const char *expect)
{
	int fd = start(NULL);
	usleep(1500 * 1000); /* no wait call at all: the handshake goes on anyway */
	check(connected(fd) && so_error(fd) == 0,
	      "after a sleep the socket is connected");
	check(fetch(fd, path, expect), "and carries data");
	close(fd);
	fd = start(NULL);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	double t0 = now_ms();
	check(fetch(fd, path, expect),
	      "made blocking in the window: write waits for the end");
	check(now_ms() - t0 >= MIN_LATE_MS / 2, "(it did wait: %.0f ms)", now_ms() - t0);
	close(fd);
	return failures != 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fputs("usage: bg_probe window|epoll|pollselect|lifecycle|sleeper HOST "
		      "PORT PATH "
		      "EXPECT\n       bg_probe error HOST PORT ERRNAME\n",
		      stderr);
		return 2;
	}
	resolve(argv[2], argv[3]);
	if (getenv("BG_PROBE_FAST_MS"))
		fast_ms = atof(getenv("BG_PROBE_FAST_MS"));
	const char *cmd = argv[1];
	if (strcmp(cmd, "error") == 0)
		return cmd_error(argv[4]);
	if (argc < 6)
		return 2;
	if (strcmp(cmd, "window") == 0)
		return cmd_window(argv[4], argv[5]);
	if (strcmp(cmd, "epoll") == 0)
		return cmd_epoll(argv[4], argv[5]);
	if (strcmp(cmd, "pollselect") == 0)
		return cmd_pollselect(argv[4], argv[5]);
	if (strcmp(cmd, "lifecycle") == 0)
		return cmd_lifecycle(argv[4], argv[5]);
	if (strcmp(cmd, "sleeper") == 0)
		return cmd_sleeper(argv[4], argv[5]);
	fprintf(stderr, "bg_probe: unknown command %s\n", cmd);
	return 2;
}
