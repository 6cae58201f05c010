/* SPDX-License-Identifier: MIT */
/*
 * Several proxies: the plan of one connection, and the dead marks (see
 * proxies.h). Word i of fakedns_proxy_words is when proxy i may be tried
 * again (ms of the monotonic clock, which every process shares); word
 * CONFIG_MAX_PROXIES is the round-robin counter.
 */
#include "proxies.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "fakedns.h"
#include "log.h"
#include "monotime.h"
#include "shim.h"
#include "sockaddr.h"

_Static_assert(CONFIG_MAX_PROXIES + 1 <= FAKEDNS_PROXY_WORDS, "proxy words");

static _Atomic uint64_t local_words[FAKEDNS_PROXY_WORDS];

static _Atomic uint64_t *words(void)
{
	_Atomic uint64_t *w = fakedns_proxy_words();
	return w ? w : local_words;
}

static unsigned nproxies(void)
{
	unsigned n = shim_config.nproxies;
	return n == 0 ? 1 : n > CONFIG_MAX_PROXIES ? CONFIG_MAX_PROXIES : n;
}

bool proxies_dead(unsigned i)
{
	return i < CONFIG_MAX_PROXIES &&
	       atomic_load(&words()[i]) > (uint64_t)monotime_ms();
}

void proxies_mark_dead(unsigned i, int err)
{
	char p[300];

	if (i >= CONFIG_MAX_PROXIES || nproxies() < 2)
		return;
	const struct config_proxy *px = &shim_config.proxies[i];
	atomic_store(&words()[i],
	             (uint64_t)monotime_ms() + shim_config.failover_retry_ms);
	sa_format_hostport(px->host, px->port, p, sizeof(p));
	shim_log(SHIM_LOG_INFO, "proxy %s failed (%s): skipped for %u ms", p,
	         strerror(-err), shim_config.failover_retry_ms);
}

void proxies_plan(struct proxy_plan *pl, bool udp)
{
	unsigned n = nproxies(), start = 0;

	memset(pl, 0, sizeof(*pl));
	if (shim_config.chain == CONFIG_CHAIN_STRICT && !udp && n > 1) {
		pl->chain = true;
		for (unsigned i = 0; i < n; i++)
			pl->idx[pl->n++] = (uint8_t)i;
		return;
	}
	if (shim_config.chain == CONFIG_CHAIN_ROUND_ROBIN && n > 1)
		start = (unsigned)(atomic_fetch_add(&words()[CONFIG_MAX_PROXIES], 1) % n);
	for (unsigned k = 0; k < n; k++)
		if (!proxies_dead((start + k) % n))
			pl->idx[pl->n++] = (uint8_t)((start + k) % n);
	if (pl->n == 0) /* all dead: all of them, rather than none */
		for (unsigned k = 0; k < n; k++)
			pl->idx[pl->n++] = (uint8_t)((start + k) % n);
}

void proxies_format(const struct proxy_plan *pl, int one, char *buf, size_t cap)
{
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned k = 0; k < pl->n && len + 1 < cap; k++) {
		if (!pl->chain && (int)k != one)
			continue;
		const struct config_proxy *px = &shim_config.proxies[pl->idx[k]];
		char p[300];
		sa_format_hostport(px->host, px->port, p, sizeof(p));
		int w = snprintf(buf + len, cap - len, "%s%s", len ? " -> " : "", p);
		if (w < 0)
			break;
		len += (size_t)w;
	}
	if (len >= cap)
		buf[cap - 1] = '\0';
}

void proxies_reset_for_tests(void)
{
	for (size_t i = 0; i < FAKEDNS_PROXY_WORDS; i++)
		atomic_store(&words()[i], 0);
}
