/* SPDX-License-Identifier: MIT */
/*
 * conntime: how long the caller is held inside connect() on a non-blocking
 * socket. An event loop calls connect() and expects it back at once with
 * EINPROGRESS; whatever time is spent inside the call is time the loop is
 * frozen.
 *
 *   conntime [-n COUNT] HOST:PORT      (an IPv4 address; default 20)
 *
 * COUNT times, one after the other: a SOCK_NONBLOCK socket, connect() timed
 * on its own, then poll() for POLLOUT (at most 30 s) and SO_ERROR, then
 * close. Run it directly and under socksify (scripts/bench: through a far
 * proxy). Prints one line:
 *
 *   connect() median 401.2 ms, min 400.8, max 402.0 (20 non-blocking connects,
 *   20 EINPROGRESS, 0 at once)
 *
 * and exits 1 when a connection failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "monotime.h"

enum { MAX_COUNT = 1000, WAIT_MS = 30000 };

struct outcome {
	int in_progress; /* connect() said EINPROGRESS */
	int at_once;     /* connect() said 0 */
};

static int parse_target(const char *arg, struct sockaddr_in *sin)
{
	char host[64];
	const char *colon = strrchr(arg, ':');
	if (!colon || (size_t)(colon - arg) >= sizeof(host))
		return -1;
	memcpy(host, arg, (size_t)(colon - arg));
	host[colon - arg] = '\0';
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

/* Waits for a connect in progress to finish: 0, or -1 (said on stderr). */
static int wait_connected(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof(err);

	int ready = poll(&p, 1, WAIT_MS);
	if (ready == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
	    err == 0)
		return 0;
	fprintf(stderr, "conntime: the connection did not complete: %s\n",
	        ready == 0 ? "timed out" : strerror(err ? err : errno));
	return -1;
}

/* One connect: the microseconds spent inside connect(), or -1 on failure. */
static long long one_connect(const struct sockaddr_in *to, struct outcome *o)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("conntime: socket");
		return -1;
	}
	long long t0 = monotime_us();
	int rc = connect(fd, (const struct sockaddr *)to, sizeof(*to));
	int err = errno;
	long long spent = monotime_us() - t0;
	if (rc == 0) {
		o->at_once++;
	} else if (err == EINPROGRESS) {
		o->in_progress++;
		if (wait_connected(fd) < 0)
			spent = -1;
	} else {
		fprintf(stderr, "conntime: connect: %s\n", strerror(err));
		spent = -1;
	}
	close(fd);
	return spent;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static long long us[MAX_COUNT];
	struct sockaddr_in to;
	struct outcome o = {0};
	int n = 20, opt;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt != 'n' || (n = atoi(optarg)) < 1 || n > MAX_COUNT) {
			fprintf(stderr, "usage: conntime [-n COUNT] HOST:PORT\n");
			return 2;
		}
	}
	if (optind != argc - 1 || parse_target(argv[optind], &to) < 0) {
		fprintf(stderr,
		        "usage: conntime [-n COUNT] HOST:PORT (an IPv4 address)\n");
		return 2;
	}
	for (int i = 0; i < n; i++) {
		if ((us[i] = one_connect(&to, &o)) < 0)
			return 1;
	}
	qsort(us, (size_t)n, sizeof(us[0]), cmp_ll);
	double median = n % 2 ? (double)us[n / 2] : (us[n / 2 - 1] + us[n / 2]) / 2.0;
	printf("connect() median %.3f ms, min %.3f, max %.3f (%d non-blocking connects, "
	       "%d EINPROGRESS, %d at once)\n",
	       median / 1000.0, (double)us[0] / 1000.0, (double)us[n - 1] / 1000.0, n,
	       o.in_progress, o.at_once);
	return 0;
}
