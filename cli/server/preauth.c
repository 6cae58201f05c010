/* SPDX-License-Identifier: MIT */
/*
 * The pre-authentication budget and the per-source limit (see preauth.h).
 * The per-source counts are an open-addressing table (linear probing,
 * deletion by shifting back), never fuller than half: it holds one entry
 * per source with a connection in its handshake, and there are at most
 * --max-unauth of those (plus one per loop being admitted).
 */
#include "preauth.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"

struct source_count {
	uint64_t source;
	uint32_t count; /* 0: a free slot */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct source_count *table;
static size_t mask; /* table size - 1, a power of two */

int preauth_init(unsigned max_unauth, unsigned nloops)
{
	size_t want = 2 * ((size_t)max_unauth + nloops), size = 16;
	while (size < want)
		size *= 2;
	table = calloc(size, sizeof(*table));
	if (!table)
		return -ENOMEM;
	mask = size - 1;
	return 0;
}

uint64_t preauth_source(const struct sockaddr_storage *peer)
{
	uint64_t key = 0;
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)peer;
		/* Tagged apart from every IPv6 /64 a TCP client can have (ff00::/8
		 * is multicast). */
		key = 0xff00000000000000ULL | ntohl(v4->sin_addr.s_addr);
	} else if (peer->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)peer;
		memcpy(&key, v6->sin6_addr.s6_addr, sizeof(key)); /* the /64 */
	}
	return key;
}

static size_t slot_of(uint64_t source)
{
	source ^= source >> 33; /* murmur3's finalizer */
	source *= 0xff51afd7ed558ccdULL;
	source ^= source >> 33;
	return (size_t)source & mask;
}

/* The slot holding `source`, or the free slot where it would go. */
static size_t find(uint64_t source)
{
	size_t i = slot_of(source);
	while (table[i].count && table[i].source != source)
		i = (i + 1) & mask;
	return i;
}

bool preauth_source_take(uint64_t source, unsigned limit)
{
	bool ok;
	pthread_mutex_lock(&lock);
	size_t i = find(source);
	ok = table[i].count < limit;
	if (ok) {
		table[i].source = source;
		table[i].count++;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

/* Empties slot i, moving back the entries after it that probed past it. */
static void remove_slot(size_t i)
{
	for (size_t j = i;;) {
		j = (j + 1) & mask;
		if (!table[j].count)
			break;
		size_t home = slot_of(table[j].source);
		/* Entry j stays when its home lies cyclically in (i, j]. */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		table[i] = table[j];
		i = j;
	}
	table[i].count = 0;
}

void preauth_source_put(uint64_t source)
{
	pthread_mutex_lock(&lock);
	size_t i = find(source);
	if (table[i].count && --table[i].count == 0)
		remove_slot(i);
	pthread_mutex_unlock(&lock);
}

void preauth_enter(struct conn *c, uint64_t source)
{
	struct server *srv = c->srv;
	c->unauth = true;
	c->source = source;
	c->unext = NULL;
	c->uprev = srv->unauth_tail;
	if (srv->unauth_tail)
		srv->unauth_tail->unext = c;
	else
		srv->unauth_head = c;
	srv->unauth_tail = c;
	srv->nunauth++;
}

void preauth_leave(struct conn *c)
{
	struct server *srv = c->srv;
	if (!c->unauth)
		return;
	if (c->uprev)
		c->uprev->unext = c->unext;
	else
		srv->unauth_head = c->unext;
	if (c->unext)
		c->unext->uprev = c->uprev;
	else
		srv->unauth_tail = c->uprev;
	c->uprev = c->unext = NULL;
	c->unauth = false;
	srv->nunauth--;
	preauth_source_put(c->source);
}

void preauth_reset(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

bool preauth_shed_oldest(struct server *srv, const char *why)
{
	struct conn *c = srv->unauth_head;
	if (!c)
		return false;
	if (c->client.fd >= 0)
		preauth_reset(c->client.fd);
	srv->shed++;
	conn_close(c, why);
	return true;
}
