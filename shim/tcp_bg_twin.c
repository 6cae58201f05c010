/* SPDX-License-Identifier: MIT */
/*
 * Twins in the background (see tcp_bg.h): a happy-eyeballs client (curl,
 * asyncio) given a name's IPv4 fake and its IPv6 twin connects to the first
 * and, when that has not answered within its delay (curl: 200 ms), to the
 * second as well. Through the proxy both are a CONNECT by the same name: a
 * proxy farther than the delay would see two connections for one. So a
 * non-blocking connect to a fake address whose twin (another fake address
 * of the same name and port) has a handshake running in this process is
 * parked: nothing is sent until that handshake ends. When it fails, the
 * parked one starts at once (the client's fallback); when it succeeds, the
 * parked one starts TWIN_GRACE_MS later, by when a happy-eyeballs client has
 * closed it (it never reaches the proxy). A program that wants both
 * connections gets the second one that much later.
 */
#include <errno.h>
#include <strings.h>

#include "monotime.h"
#include "shim.h"
#include "tcp_bg_int.h"

enum { TWIN_GRACE_MS = 200 };

/* s is a running handshake of the program's for c's name and port, to
 * another address (a twin), not parked itself. Driver's lock held. */
static bool is_twin(const struct bg_conn *s, const void *arg)
{
	const struct bg_conn *c = arg;
	return s != c && !s->done && !__atomic_load_n(&s->lead, __ATOMIC_ACQUIRE) &&
	       !s->foreign &&
	       __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == BG_RUNNING &&
	       s->target.atyp == SOCKS5_ATYP_DOMAIN && s->target.port == c->target.port &&
	       s->target.domain_len == c->target.domain_len &&
	       strncasecmp(s->target.host.domain, c->target.host.domain,
	                   c->target.domain_len) == 0 &&
	       !sa_same(&s->peer.sa, &c->peer.sa);
}

bool bg_twin_park(struct bg_conn *c)
{
	if (c->target.atyp != SOCKS5_ATYP_DOMAIN)
		return false;
	c->lead = bg_driver_find(is_twin, c);
	return c->lead != NULL;
}

bool bg_twin_ready(struct bg_conn *c, long long now_ms)
{
	if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) != BG_RUNNING)
		return true; /* cancelled meanwhile: nothing to start, just let go */
	int lead = __atomic_load_n(&c->lead->state, __ATOMIC_ACQUIRE);
	if (lead == BG_RUNNING)
		return false;
	if (c->go_ms == 0)
		c->go_ms = now_ms + (lead == BG_OK ? TWIN_GRACE_MS : 0);
	return now_ms >= c->go_ms;
}

void bg_twin_start(struct bg_conn *c)
{
	bg_conn_put(__atomic_exchange_n(&c->lead, NULL, __ATOMIC_ACQ_REL));
	pthread_mutex_lock(&c->lock);
	int rc = -ECONNABORTED;
	if (__atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == BG_RUNNING) {
		c->t0_us = monotime_us();
		c->deadline_ms = tcp_deadline();
		rc = tcp_hs_start(&c->hs, c->own, c->family, SOCKS5_CMD_CONNECT,
		                  &c->target);
		if (rc == 0)
			rc = tcp_hs_first_wait(&c->hs);
	}
	pthread_mutex_unlock(&c->lock);
	if (rc == 0 && !bg_driver_watch(c))
		rc = -EAGAIN;
	if (rc < 0)
		bg_finish(c, rc);
}
