/* SPDX-License-Identifier: MIT */
/*
 * BIND in socksify-server (see bind.c).
 */
#ifndef SOCKSIFY_SERVER_BIND_H
#define SOCKSIFY_SERVER_BIND_H

#include "conn.h"

/* The request in c->req is a BIND: listen and send the first reply. */
void bind_start(struct conn *c);
/* The listener is readable: accept the expected peer, reply again, relay. */
void bind_on_accept(struct conn *c);

#endif
