/* SPDX-License-Identifier: MIT */
/*
 * Inside the background handshakes (tcp_bg.c: a connection's life and the
 * driver thread; tcp_bg_wait.c: what waiters see).
 */
#ifndef SOCKSIFY_SHIM_TCP_BG_INT_H
#define SOCKSIFY_SHIM_TCP_BG_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "sockaddr.h"
#include "socks5.h"
#include "tcp.h"

enum bg_state { BG_RUNNING, BG_OK, BG_FAILED, BG_CANCELLED };

enum {
	BG_NO_SLOT = 4096, /* slot of a connection not in the driver (BG_SLOTS) */
	BG_SLOTS = 4096,   /* handshakes running at once; beyond, inside connect() */
	BG_FD_MIN = 700,   /* the shim's descriptors go at or above this */
	BG_BATCH = 64,
};

struct bg_conn {
	pthread_mutex_t lock; /* serialises the steps of the exchange */
	int refs;             /* memory: fd entries, the driver, callers (atomic) */
	int fdrefs;           /* fd table entries (atomic); the last one gone cancels */
	int state;            /* enum bg_state; changes under bg_wait_lock */
	int err;              /* BG_FAILED: the errno SO_ERROR reports */
	bool foreign;         /* inherited through fork(): the parent drives it */
	bool shared_efd;      /* a child has the eventfd too: never reused */
	pthread_mutex_t fds_lock; /* fds, nfds; taken last, under any other lock */
	int fds[4];               /* the program's descriptors of it (dup) */
	unsigned nfds;
	int own;       /* the shim's duplicate, which the driver works on */
	int efd;       /* eventfd, readable once ended; -1 until a waiter needs it */
	unsigned slot; /* in the driver's table */
	long long t0_us, deadline_ms;
	union sa_any peer; /* the program's destination (getpeername) */
	socklen_t peer_len;
	struct socks5_addr target;
	int family; /* of the program's destination */
	/* parked (tcp_bg_twin.c): the twin whose handshake goes first (a
	 * reference), and when this one may start once it has ended (0: not
	 * yet known). Only the driver touches them after bg_driver_add. */
	struct bg_conn *lead;
	long long go_ms;
	struct tcp_hs hs;
	/* an exchange of the shim's own (tcp_bg_run): called at its end */
	void (*done)(void *arg, struct bg_conn *c, int rc,
	             const struct socks5_addr *bound);
	void *arg;
};

/* --- tcp_bg_driver.c --- */

/* Starts the helper thread once: 0, or the error that kept it from starting. */
int bg_driver_start(void);
/* Are all the driver's slots taken? */
bool bg_driver_full(void);
/* Takes a connection into the driver (a reference for it), or false; its
 * socket is watched unless it is parked (c->lead set). */
bool bg_driver_add(struct bg_conn *c);
/* Watches the socket of a parked connection that has just started. */
bool bg_driver_watch(struct bg_conn *c);
/* The first connection in the driver that match() accepts (a reference for
 * the caller), or NULL; match runs under the driver's lock. */
struct bg_conn *bg_driver_find(bool (*match)(const struct bg_conn *s, const void *arg),
                               const void *arg);
/* Lets go of it: no event for it is acted on any more. */
void bg_driver_remove(struct bg_conn *c);
/* The handshake is over (rc: 0 or -errno): its owner learns it. */
void bg_finish(struct bg_conn *c, int rc);
void bg_conn_ref(struct bg_conn *c);
/* fd moved at or above BG_FD_MIN (the same fd when it cannot be). */
int bg_move_high(int fd);
void bg_driver_atfork_child(void);
/* Once, at start-up: the helper's epoll set in the fd table. */
void bg_driver_init(void);

/* --- tcp_bg_twin.c --- */

/* Parks c behind a running handshake of its twin, if there is one (then
 * c->lead is set, and the caller adds c to the driver without starting it). */
bool bg_twin_park(struct bg_conn *c);
/* May parked c start now (driver's lock held)? Sets c->go_ms on the way. */
bool bg_twin_ready(struct bg_conn *c, long long now_ms);
/* Starts parked c's handshake (driver thread, no lock held). */
void bg_twin_start(struct bg_conn *c);

/* The handshake's eventfd (readable once it has ended), made on first use. */
int bg_efd(struct bg_conn *c);

/* Drops a reference taken with fdtab_hold. */
void bg_conn_put(struct bg_conn *c);

/* Guards every state change and the followed epoll registrations. */
void bg_wait_lock(void);
void bg_wait_unlock(void);

/* The program's epoll registrations of fd (bg_wait_lock held): taken out of
 * its epoll sets, or put back as the program made them. */
void bg_regs_mask(int fd);
void bg_regs_restore(int fd);
/* Is every registration of fd followed? (bg_wait_lock held) */
bool bg_regs_followed(int fd);
/* fd is closed: what was followed of it goes (bg_wait_lock held). */
void bg_regs_forget(int fd);

#endif
