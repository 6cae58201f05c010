/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 handshake in socksify-server (see handshake.c).
 */
#ifndef SOCKSIFY_SERVER_HANDSHAKE_H
#define SOCKSIFY_SERVER_HANDSHAKE_H

#include "conn.h"

/* A client was accepted: wait for its greeting, within --handshake-timeout. */
void handshake_start(struct conn *c);

#endif
