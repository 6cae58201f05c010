/* SPDX-License-Identifier: MIT */
/*
 * BIND in socksify-server (see bind.c).
 */
#ifndef SOCKSIFY_SERVER_BIND_H
#define SOCKSIFY_SERVER_BIND_H

#include "conn.h"

/* The request in c->req is a BIND: listen, send the first reply and wait for
 * the peer; then the second reply and the relay. */
void bind_start(struct conn *c);

#endif
