/* SPDX-License-Identifier: MIT */
/*
 * Connections not authenticated yet: with users (-u, --users), those that have not sent
 * good RFC 1929 credentials; without, those that have not sent their request (and those
 * draining after a bad greeting or failed authentication). They get their own budget,
 * --max-unauth, split evenly over the loops (each loop keeps its own oldest-first list
 * and sheds from it alone: no lock, exact per loop), and a per-source limit,
 * --max-unauth-per-source, counted in one table shared by the loops under a mutex (taken
 * when a client is accepted and when it leaves the list; never on the relay's path). A
 * source is an IPv4 address or an IPv6 /64 (one host usually has a whole /64 to pick
 * addresses from).
 */
#ifndef SOCKSIFY_SERVER_PREAUTH_H
#define SOCKSIFY_SERVER_PREAUTH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct server;
struct conn;

/* Sizes the shared per-source table for `max_unauth` connections over
 * `nloops` loops. Returns 0 or -ENOMEM. */
int preauth_init(unsigned max_unauth, unsigned nloops);
/* The source a client counts against. */
uint64_t preauth_source(const struct sockaddr_storage *peer);
/* Counts one more connection of `source` unless it has `limit` already. */
bool preauth_source_take(uint64_t source, unsigned limit);
void preauth_source_put(uint64_t source);

/* c (its source taken) joins its loop's list, newest last. */
void preauth_enter(struct conn *c, uint64_t source);
/* c leaves the list and its source's count: it authenticated (or, without
 * -u, sent its request) or it closed. Nothing for a connection not in the list. */
void preauth_leave(struct conn *c);
/* Closes the loop's oldest connection still in its handshake, with a reset;
 * false when it has none. */
bool preauth_shed_oldest(struct server *srv, const char *why);
/* Makes the coming close() of fd a reset (no FIN, no TIME_WAIT here). */
void preauth_reset(int fd);

#endif
