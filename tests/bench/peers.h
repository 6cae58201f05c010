/* SPDX-License-Identifier: MIT */
/*
 * peers: what a benchmark target saw, by source address, so that the bench
 * can check at the target that a figure's traffic came through the proxy.
 *
 * A target calls peers_count() for every connection or datagram it serves,
 * and peers_serve_stats(PORT) once: a thread then answers every TCP
 * connection to 127.0.0.1:PORT (in the target's own network namespace) with
 * one line per source address seen since the previous answer,
 *   ADDRESS COUNT
 * followed by "end", and starts counting from zero again.
 */
#ifndef SOCKSIFY_BENCH_PEERS_H
#define SOCKSIFY_BENCH_PEERS_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

/* Counts one connection or datagram from ADDR (IPv4; others count as
 * 0.0.0.0). Thread-safe, lock-free once the address has been seen. */
void peers_count(const struct sockaddr *addr);

/* Starts the stats thread on 127.0.0.1:PORT; exits with a message if it
 * cannot listen there. */
void peers_serve_stats(uint16_t port);

/* Parses "IPV4:PORT" into OUT; 0, or -1 with nothing printed. */
int peers_parse_hostport(const char *s, struct sockaddr_in *out);

#endif
