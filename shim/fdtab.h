/* SPDX-License-Identifier: MIT */
/*
 * Per-descriptor state of the shim, indexed by fd number so that the check
 * on every interposed call is one load. No allocation: the table is static
 * (untouched pages cost nothing), fork() copies it with the process and
 * exec() starts the new image empty, which is exactly right. Descriptors at
 * or above FDTAB_SIZE are not tracked (their connections are still proxied;
 * only getpeername() and SO_ERROR emulation are lost).
 *
 * Entries are written by the thread that owns the descriptor's operation
 * (connect, close, dup); a program racing close() against connect() on the
 * same fd has a bug of its own.
 */
#ifndef SOCKSIFY_SHIM_FDTAB_H
#define SOCKSIFY_SHIM_FDTAB_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum { FDTAB_SIZE = 1 << 17 };

enum fd_kind {
	FD_NONE = 0,
	FD_TCP_PROXIED, /* connected through the proxy; peer holds the destination */
	FD_TCP_FAILED,  /* a non-blocking proxied connect failed; error is pending */
	FD_UDP,         /* a datagram socket with a UDP association (udp points to it) */
	FD_UDP_CONTROL, /* the shim's own control connection of the association udp */
};

struct udp_assoc;

union fd_peer {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
};

struct fd_entry {
	uint8_t kind;       /* enum fd_kind */
	socklen_t peer_len; /* the program's destination, as it gave it */
	union fd_peer peer;
	int error;  /* FD_TCP_FAILED: what SO_ERROR reports next, 0 once read */
	int failed; /* FD_TCP_FAILED: the error, for a second connect() */
	struct udp_assoc *udp; /* FD_UDP (one reference each), FD_UDP_CONTROL */
};

/* NULL for an untracked fd (negative or too large). */
struct fd_entry *fdtab_get(int fd);
/* The entry for an fd about to be given state (NULL when untracked). */
struct fd_entry *fdtab_claim(int fd);
/* The entry only if it is in use (kind != FD_NONE); the fast-path check. */
struct fd_entry *fdtab_lookup(int fd);
void fdtab_clear(int fd);
void fdtab_clear_range(unsigned first, unsigned last);
/* The program closes a range that holds control connections of the shim
 * (close_range, closefrom): their associations forget them first. */
void fdtab_forget_controls(unsigned first, unsigned last);
/* Calls fn for the association of every FD_UDP entry (once per entry, so
 * an association shared by dups more than once). */
void fdtab_for_each_udp(void (*fn)(struct udp_assoc *a));
/* fd2 takes fd's state (dup2/dup3/F_DUPFD); fd2's old state is dropped.
 * A UDP socket's association gains a reference; a control connection's
 * state is never copied (the copy is the program's, a plain descriptor). */
void fdtab_copy(int fd, int fd2);

#endif
