/* SPDX-License-Identifier: MIT */
/*
 * What udp.c, udp_front.c and udp_names.c share: the association.
 */
#ifndef SOCKSIFY_SERVER_UDP_INT_H
#define SOCKSIFY_SERVER_UDP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "loop.h"
#include "sockaddr.h"

enum {
	UDP_NAMES = 8,               /* names an association resolves or remembers */
	UDP_HELD_MAX = 64,           /* datagrams held for lookups, per association */
	UDP_HELD_BYTES = 256 * 1024, /* and their bytes */
	UDP_NAME_ADDRS = 4,          /* addresses kept per name, tried in order */
	UDP_DENIED_SEEN = 8,         /* denied destinations remembered, logged once */
	UDP_DENIED_LINES = 16,       /* denial lines per association, at most */
};

/* A datagram waiting for its name's lookup. */
struct udp_held {
	struct udp_held *next;
	size_t len;
	uint16_t port; /* host order */
	uint8_t data[];
};

struct udp_name {
	char name[256];
	struct resolve_job *job; /* in flight */
	bool ok;                 /* addrs are valid */
	bool overflowed;         /* a datagram was dropped for the bound (logged once) */
	size_t naddrs;
	struct sockaddr_storage addrs[UDP_NAME_ADDRS];
	struct udp_held *head, **tail; /* in arrival order */
};

struct udp_assoc {
	struct conn *conn;
	struct loop_watch front, out4, out6;
	struct sockaddr_storage source; /* the only host datagrams come from */
	bool source_open;               /* not known yet: the first one (udp_front.c) */
	struct sockaddr_storage client; /* where replies go, once known */
	bool client_known;
	struct udp_name names[UDP_NAMES];
	unsigned next_name; /* the slot to reuse next */
	unsigned held;      /* datagrams held across names */
	size_t held_bytes;
	uint64_t up, up_bytes, down, down_bytes, dropped, denied;
	/* Destinations denied lately: each is logged once (udp_permitted). */
	union sa_any denied_seen[UDP_DENIED_SEEN];
	unsigned denied_next, denied_lines;
};

/* udp_front.c: the source the association accepts (u->source, and u->client
 * when the request names the port), from the request. */
void udp_front_pin(struct udp_assoc *u);
/* Whether a datagram from src is the client's (the first one pins an open
 * source). */
bool udp_front_accepts(struct udp_assoc *u, const struct sockaddr_storage *src);
/* The front socket (non-blocking), bound; its address in *bound. fd or -errno. */
int udp_front_socket(struct udp_assoc *u, struct sockaddr_storage *bound,
                     socklen_t *blen);

/* udp.c: the policy's verdict on a datagram's destination (name: the request's
 * "name:port" for the log, or NULL); a denial is counted and logged, once per
 * destination among the last UDP_DENIED_SEEN. */
bool udp_permitted(struct udp_assoc *u, const struct sockaddr_storage *dst,
                   const char *name);
/* udp.c: passes a payload to a resolved destination the policy allows: queued
 * in the current burst when `queue`, else sent at once. False when it was
 * dropped. */
bool udp_send_out(struct udp_assoc *u, struct sockaddr_storage *dst, const uint8_t *data,
                  size_t len, bool queue);

/* udp_names.c: a datagram to a name: sent when the name is known, else held
 * (in order) until its lookup ends. False when it was dropped. */
bool udp_send_to_name(struct udp_assoc *u, const struct socks5_addr *a,
                      const uint8_t *data, size_t len);
/* Cancels the lookups and frees the held datagrams. */
void udp_names_release(struct udp_assoc *u);

#endif
