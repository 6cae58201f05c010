/* SPDX-License-Identifier: MIT */
/*
 * The pre-authentication budget and the per-source limit (see preauth.h);
 * the per-source counts are srctab.c's.
 */
#include "preauth.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "srctab.h"

int preauth_init(unsigned max_unauth, unsigned nloops)
{
	/* A key per connection in the lists at most: the loops' parts of the
	 * budget (rounded up) and one per loop being admitted. */
	return srctab_init(max_unauth + 2 * nloops);
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

bool preauth_source_take(uint64_t source, unsigned limit)
{
	return srctab_take(source, limit);
}

void preauth_source_put(uint64_t source)
{
	srctab_put(source);
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
	conn_close(c, why);
	return true;
}
