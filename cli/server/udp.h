/* SPDX-License-Identifier: MIT */
/*
 * UDP ASSOCIATE in socksify-server (see udp.c).
 */
#ifndef SOCKSIFY_SERVER_UDP_H
#define SOCKSIFY_SERVER_UDP_H

#include <stddef.h>

#include "conn.h"

/* The request in c->req is a UDP ASSOCIATE: open the relay and reply. */
void udp_start(struct conn *c);
/* Ends the association (the control connection is closing). */
void udp_free(struct conn *c);
/* "up N datagrams (B bytes), down ..., dropped D" for the log line. */
void udp_describe(const struct conn *c, char *buf, size_t cap);

#endif
