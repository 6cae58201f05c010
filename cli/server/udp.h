/* SPDX-License-Identifier: MIT */
/*
 * UDP ASSOCIATE in socksify-server (see udp.c).
 */
#ifndef SOCKSIFY_SERVER_UDP_H
#define SOCKSIFY_SERVER_UDP_H

#include "conn.h"

/* The request in c->req is a UDP ASSOCIATE: open the relay and reply; the
 * association lasts as long as the control connection. */
void udp_start(struct conn *c);

#endif
