/* SPDX-License-Identifier: MIT */
/*
 * The life of a UDP association, inside the UDP module (udp_*.c): the
 * object, its references, its control connection and the UDP ASSOCIATE
 * handshake. The datagram I/O (udp_send.c, udp_recv.c) works on an
 * association it holds a reference to.
 *
 * Locking: the fd table's lock guards the payload pointers of entries and
 * the taking of references (fdtab_hold); references are atomic counts.
 * Each association's own lock guards its state, and is held through a
 * (re-)association handshake, so a second thread sending on the same socket
 * waits for it instead of associating twice. Nothing is held across a
 * program's blocking receive.
 */
#ifndef SOCKSIFY_SHIM_UDP_ASSOC_H
#define SOCKSIFY_SHIM_UDP_ASSOC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "sockaddr.h"
#include "socks5.h"

enum {
	/* Names sent to (fake-pool destinations) remembered per socket, to
	 * report replies as coming from the fake address the program used. */
	UDP_NAMES_MAX = 8,
};

struct udp_name {
	bool used, learned;
	uint16_t port;     /* host order */
	union sa_any fake; /* the fake address the program sent to */
	socklen_t fake_len;
	struct socks5_addr real; /* where its replies turned out to come from */
};

/* A datagram waiting for a background association: SOCKS header + payload. */
struct udp_dgram {
	struct udp_dgram *next;
	size_t len;
	uint8_t data[];
};

enum {
	UDP_QUEUE_MAX = 64,           /* datagrams held for a background association */
	UDP_QUEUE_BYTES = 256 * 1024, /* and their bytes at most; beyond: EAGAIN */
};

struct bg_conn;

struct udp_assoc {
	pthread_mutex_t lock;
	int refs;           /* fd table entries + operations in progress (atomic) */
	int fdrefs;         /* fd table entries (atomic): the last one cancels a job */
	int family;         /* the socket's: AF_INET or AF_INET6 */
	int ctl;            /* control connection, -1 when there is none */
	int ctl_family;     /* its family: the socket's, or AF_INET6 (udp_assoc.c) */
	union sa_any relay; /* the relay, in the socket's family; when ctl >= 0 */
	socklen_t relay_len;
	uint16_t local_port; /* the socket's (host order), announced in the request */
	int hdr_guess;       /* length of the last header received */
	bool connected;      /* connect()ed to a proxied destination */
	bool handshaking;    /* udp_assoc_ensure runs, lock held (for fork) */
	long long alive_ms;  /* ctl was last seen alive then (monotonic clock) */
	union sa_any peer;   /* that destination, in the socket's family */
	socklen_t peer_len;
	struct socks5_addr target; /* and as the proxy is asked for it */
	unsigned names_next;
	struct udp_name names[UDP_NAMES_MAX];
	/* UDP ASSOCIATE in the background (a non-blocking socket's first datagram) */
	struct bg_conn *job;      /* running, or NULL */
	int flush_fd;             /* the socket, for the helper thread's flush */
	int pending_err;          /* it failed: the next send reports this */
	union sa_any proxy_addr;  /* the proxy it went to (a relay of 0.0.0.0) */
	long long bg_t0;          /* when it started (the log line) */
	struct udp_dgram *q_head; /* datagrams sent meanwhile, in order */
	struct udp_dgram **q_tail;
	unsigned q_n;
	size_t q_bytes;
};

/* The association of fd with a reference for the caller, or NULL. */
struct udp_assoc *udp_assoc_hold(int fd);
/* The same, created for a socket that has none (family: the socket's);
 * NULL when fd is beyond the table or out of memory. */
struct udp_assoc *udp_assoc_adopt(int fd, int family);
void udp_assoc_put(struct udp_assoc *a);

/* Makes sure the association of socket fd is live (a->lock held): checks
 * the control connection and associates (again) when there is none.
 * 0, or -errno. Cancellation is off meanwhile. With may_defer, a
 * non-blocking socket (or MSG_DONTWAIT in msg_flags) associates in the
 * background instead: 1 while that runs (the datagram is to be queued). */
int udp_assoc_ensure(int fd, struct udp_assoc *a, bool may_defer, int msg_flags);
/* Queues a datagram (header hdr, then msg's payload) for the background
 * association (a->lock held): the payload's length, or -EAGAIN when the
 * queue is full. */
ssize_t udp_assoc_queue(struct udp_assoc *a, const uint8_t *hdr, size_t hlen,
                        const struct msghdr *msg);
/* Ends the association's control connection (a->lock held). */
void udp_assoc_drop_control(struct udp_assoc *a);

#endif
