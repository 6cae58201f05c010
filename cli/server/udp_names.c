/* SPDX-License-Identifier: MIT */
/*
 * Datagrams to names in a UDP association (see udp.c). A name is looked up
 * off the loop (resolve.c) once and remembered (UDP_NAMES per association,
 * the oldest slot reused). While its lookup runs, the datagrams to it are
 * held in arrival order, at most UDP_HELD_MAX datagrams and UDP_HELD_BYTES
 * bytes per association across names; when the lookup ends they are sent in
 * that order, or dropped when it failed. A datagram over the bound is
 * dropped. Drops are counted in the association's log line, and logged at -v
 * once per lookup.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "resolve.h"
#include "sockaddr.h"
#include "udp_int.h"

static void log_drop(const struct udp_assoc *u, const char *name, const char *why,
                     unsigned n)
{
	if (!log_enabled(LOG_CONN))
		return;
	char peer[SA_STRLEN];
	sa_format((const struct sockaddr *)&u->conn->peer, peer, sizeof(peer));
	log_msg(LOG_CONN, "%s UDP ASSOCIATE: %s: %s, %u datagram%s dropped", peer, name,
	        why, n, n == 1 ? "" : "s");
}

/* A datagram to a resolved name: to its first address the policy allows for
 * the port (each one denied is logged once, see udp_permitted). */
static bool send_name(struct udp_assoc *u, const struct udp_name *n, uint16_t port,
                      const uint8_t *data, size_t len, bool queue)
{
	char named[SOCKS5_ADDR_STRLEN];
	sa_format_hostport(n->name, port, named, sizeof(named));
	for (size_t i = 0; i < n->naddrs; i++) {
		struct sockaddr_storage dst = n->addrs[i];
		sa_set_port((struct sockaddr *)&dst, port);
		if (udp_permitted(u, &dst, named))
			return udp_send_out(u, &dst, data, len, queue);
	}
	return false;
}

/* Sends (or drops) a name's held datagrams in order and frees them. */
static void release_held(struct udp_assoc *u, struct udp_name *n, bool send)
{
	struct udp_held *h = n->head;
	while (h) {
		struct udp_held *next = h->next;
		bool sent = false;
		if (send)
			sent = send_name(u, n, h->port, h->data, h->len, false);
		u->dropped += !sent;
		u->held--;
		u->held_bytes -= h->len;
		free(h);
		h = next;
	}
	n->head = NULL;
	n->tail = &n->head;
}

static void on_resolved(void *owner, struct resolve_job *job)
{
	struct udp_assoc *u = owner;
	for (int i = 0; i < UDP_NAMES; i++) {
		struct udp_name *n = &u->names[i];
		if (n->job != job)
			continue;
		n->job = NULL;
		n->ok = job->err == 0 && job->naddrs > 0;
		n->naddrs = n->ok ? job->naddrs : 0;
		if (n->naddrs > UDP_NAME_ADDRS)
			n->naddrs = UDP_NAME_ADDRS;
		memcpy(n->addrs, job->addrs, n->naddrs * sizeof(n->addrs[0]));
		unsigned count = 0;
		for (struct udp_held *h = n->head; h; h = h->next)
			count++;
		if (!n->ok && count)
			log_drop(u, n->name, strerror(job->err ? job->err : ENOENT),
			         count);
		release_held(u, n, n->ok);
	}
	resolve_free(job);
}

/* Holds a copy of the datagram behind the name's others; false (logged once
 * per lookup) when the association's bound is reached. */
static bool hold(struct udp_assoc *u, struct udp_name *n, const struct socks5_addr *a,
                 const uint8_t *data, size_t len)
{
	struct udp_held *h = NULL;
	if (u->held < UDP_HELD_MAX && u->held_bytes + len <= UDP_HELD_BYTES)
		h = malloc(sizeof(*h) + len);
	if (!h) {
		if (!n->overflowed)
			log_drop(u, n->name, "too many datagrams wait for lookups", 1);
		n->overflowed = true;
		return false;
	}
	h->next = NULL;
	h->len = len;
	h->port = a->port;
	memcpy(h->data, data, len);
	*n->tail = h;
	n->tail = &h->next;
	u->held++;
	u->held_bytes += len;
	return true;
}

bool udp_send_to_name(struct udp_assoc *u, const struct socks5_addr *a,
                      const uint8_t *data, size_t len)
{
	struct udp_name *n = NULL;
	for (int i = 0; i < UDP_NAMES && !n; i++)
		if ((u->names[i].ok || u->names[i].job) &&
		    strcasecmp(u->names[i].name, a->host.domain) == 0)
			n = &u->names[i];
	if (n && n->ok)
		return send_name(u, n, a->port, data, len, true);
	if (!n) {
		n = &u->names[u->next_name++ % UDP_NAMES];
		if (n->job)
			return false; /* every slot is resolving: drop */
		memset(n, 0, sizeof(*n));
		n->tail = &n->head;
		snprintf(n->name, sizeof(n->name), "%s", a->host.domain);
		n->job = resolve_start(n->name, 0, u, on_resolved);
		if (!n->job)
			return false;
	}
	return hold(u, n, a, data, len);
}

void udp_names_release(struct udp_assoc *u)
{
	for (int i = 0; i < UDP_NAMES; i++) {
		struct udp_name *n = &u->names[i];
		if (n->job)
			resolve_cancel(n->job);
		n->job = NULL;
		if (n->tail)
			release_held(u, n, false);
	}
}
