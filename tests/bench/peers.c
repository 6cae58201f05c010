/* SPDX-License-Identifier: MIT */
/* peers: source-address counters of a benchmark target (see peers.h). */
#include "peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SLOTS = 16 };

/* A slot is claimed once (addr set under the lock, then published with a
 * release store of used); counts are atomic. The last slot takes every
 * address that finds the table full, as 255.255.255.255. */
static struct {
	uint32_t addr; /* network order */
	unsigned long count;
} slots[SLOTS];
static int used;
static pthread_mutex_t claim = PTHREAD_MUTEX_INITIALIZER;

static int find(uint32_t addr, int n)
{
	for (int i = 0; i < n; i++)
		if (slots[i].addr == addr)
			return i;
	return -1;
}

void peers_count(const struct sockaddr *sa)
{
	uint32_t addr = 0;
	if (sa->sa_family == AF_INET)
		addr = ((const struct sockaddr_in *)sa)->sin_addr.s_addr;
	int i = find(addr, __atomic_load_n(&used, __ATOMIC_ACQUIRE));
	if (i < 0) {
		pthread_mutex_lock(&claim);
		i = find(addr, used);
		if (i < 0 && used < SLOTS - 1) {
			slots[used].addr = addr;
			i = used;
			__atomic_store_n(&used, used + 1, __ATOMIC_RELEASE);
		} else if (i < 0) {
			slots[SLOTS - 1].addr = 0xffffffffu;
			i = SLOTS - 1;
			__atomic_store_n(&used, SLOTS, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&claim);
	}
	__atomic_add_fetch(&slots[i].count, 1, __ATOMIC_RELAXED);
}

static void answer(int fd)
{
	char line[64], a[INET_ADDRSTRLEN];
	int n = __atomic_load_n(&used, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++) {
		unsigned long c =
		        __atomic_exchange_n(&slots[i].count, 0, __ATOMIC_RELAXED);
		if (c == 0)
			continue;
		inet_ntop(AF_INET, &slots[i].addr, a, sizeof(a));
		int len = snprintf(line, sizeof(line), "%s %lu\n", a, c);
		if (write(fd, line, (size_t)len) != len)
			return;
	}
	if (write(fd, "end\n", 4) != 4)
		return;
}

static void *stats_thread(void *arg)
{
	int lfd = (int)(long)arg;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		answer(fd);
		close(fd);
	}
	return NULL;
}

void peers_serve_stats(uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	pthread_t t;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 16) < 0) {
		fprintf(stderr, "peers: stats on 127.0.0.1:%u: %s\n", port,
		        strerror(errno));
		exit(1);
	}
	pthread_create(&t, NULL, stats_thread, (void *)(long)fd);
}

int peers_parse_hostport(const char *s, struct sockaddr_in *out)
{
	char host[INET_ADDRSTRLEN], *end;
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || errno || port < 0 || port > 65535)
		return -1;
	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	out->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}
