/* SPDX-License-Identifier: MIT */
/*
 * Per-descriptor state of the shim, indexed by fd number so that the check
 * on every interposed call is one load. No allocation: the table is static
 * (untouched pages cost nothing), fork() copies it with the process and
 * exec() starts the new image empty, which is exactly right. Descriptors at
 * or above FDTAB_SIZE are not tracked (their connections are still proxied;
 * only getpeername() and SO_ERROR emulation are lost).
 *
 * Only fdtab.c writes entries; the rest of the shim reads them through
 * fdtab_lookup() and changes them through the functions below. An entry
 * caches what kind of socket the descriptor is (learned once, at socket()
 * or on first use) and what the shim did with it: a proxied or failed TCP
 * connect, or a payload of another module (a UDP association) that the
 * table holds one reference to and gives back through the functions that
 * module registered for its kind.
 *
 * Entries are written by the thread that owns the descriptor's operation
 * (socket, connect, close, dup); a program racing close() against connect()
 * on the same fd has a bug of its own. Payload references are taken and
 * dropped under the table's lock, so an operation holding one survives
 * another thread's close().
 */
#ifndef SOCKSIFY_SHIM_FDTAB_H
#define SOCKSIFY_SHIM_FDTAB_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum { FDTAB_SIZE = 1 << 17 };

/* What the shim did with the descriptor. */
enum fd_kind {
	FD_NONE = 0,    /* nothing (the socket class may still be cached) */
	FD_TCP_PROXIED, /* connected through the proxy; peer holds the destination */
	FD_TCP_FAILED,  /* a proxied connect failed; error is pending */
	FD_UDP,         /* a datagram socket with a UDP association (payload) */
	FD_UDP_CONTROL, /* the shim's own control connection of an association */
	FD_TCP_PENDING, /* a non-blocking proxied connect whose handshake runs in
	                   the background (payload: tcp_bg.c's connection) */
	FD_SHIM_OWNED,  /* a descriptor of the shim's own (the helper thread's
	                   epoll set): close() answers EBADF */
	FD_TCP_BIND,    /* a listener served by a SOCKS BIND (payload: cbind.c's) */
	FD_KINDS
};

/* What the descriptor is, as far as proxying goes (SO_TYPE, SO_DOMAIN,
 * SO_PROTOCOL, asked once). */
enum fd_class {
	FD_CLASS_UNKNOWN = 0, /* not learned yet */
	FD_CLASS_OTHER,       /* not an IPv4/IPv6 socket of a kind we handle */
	FD_CLASS_TCP,         /* an IPv4/IPv6 stream socket */
	FD_CLASS_UDP,         /* an IPv4/IPv6 UDP socket */
	FD_CLASS_DGRAM_OTHER, /* raw, ICMP "ping" or UDP-Lite: cannot be carried */
};

union fd_peer {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
};

struct fd_entry {
	uint8_t kind;       /* enum fd_kind */
	uint8_t cls;        /* enum fd_class */
	uint8_t family;     /* AF_INET or AF_INET6 for the IP classes */
	uint8_t born;       /* the class is known since socket(): every epoll
	                       registration of the descriptor was seen */
	uint8_t bound;      /* the program bind()s it (TCP): getsockname() stays real */
	socklen_t peer_len; /* FD_TCP_PROXIED: the program's destination */
	union fd_peer peer;
	int error;     /* FD_TCP_FAILED: what SO_ERROR reports next, 0 once read */
	int failed;    /* FD_TCP_FAILED: the error, for a second connect() */
	void *payload; /* FD_UDP, FD_UDP_CONTROL: the owning module's object */
	/* FD_TCP_PROXIED: what getsockname() answers (the CONNECT reply's BND,
	 * bind = auto; local_len 0: the real one), and the order the proxied
	 * connections were made in (cbind.c picks the newest) */
	socklen_t local_len;
	union fd_peer local;
	unsigned seq;
};

/* What the table does with a kind's payload. */
struct fdtab_ops {
	/* a reference more for a caller (fdtab_hold) */
	void (*hold)(void *payload);
	/* the payload for one more descriptor, fd (dup); NULL: a copy of the
	 * descriptor is a plain one */
	void (*copy)(int fd, void *payload);
	/* the entry lets go of its payload (close, dup2 over it, a new socket on
	 * its number): drop its reference, or whatever the kind needs */
	void (*release)(int fd, void *payload);
};

/* Registers the payload functions of kind (once, at initialisation). */
void fdtab_register(enum fd_kind kind, const struct fdtab_ops *ops);

/* The entry when the shim knows anything of fd (kind or class), else NULL:
 * the fast-path check. Read-only: change it through the functions below. */
const struct fd_entry *fdtab_lookup(int fd);

/* The entry's kind, read as another thread may be writing it. */
static inline int fdtab_kind(const struct fd_entry *e)
{
	return e ? __atomic_load_n(&e->kind, __ATOMIC_ACQUIRE) : FD_NONE;
}

/* The socket's class, from the cache or asked of the kernel once (and then
 * cached); *family gets AF_INET/AF_INET6 for the IP classes. */
enum fd_class fdtab_class(int fd, int *family);
/* A socket just made by socket()/socketpair()/accept(): whatever the table
 * held for the number is stale and goes; the class is cached when known
 * (domain/type/protocol as given to socket(); domain < 0: ask later). */
void fdtab_new_socket(int fd, int domain, int type, int protocol);

/* A TCP connect through the proxy succeeded (peer: the program's
 * destination) or failed with err (pending: SO_ERROR reports it once). */
void fdtab_set_proxied(int fd, const struct sockaddr *peer, socklen_t len);
void fdtab_set_failed(int fd, int err, bool pending);
/* The program bound fd (a TCP socket) itself. */
void fdtab_set_bound(int fd);
/* The address getsockname() answers for a proxied fd (after set_proxied). */
void fdtab_set_local(int fd, const struct sockaddr *local, socklen_t len);
/* The newest (highest seq) descriptor of kind for which match() is true, or -1. */
int fdtab_newest(enum fd_kind kind,
                 bool (*match)(int fd, const struct fd_entry *e, const void *ctx),
                 const void *ctx);
/* SO_ERROR of a failed proxied connect: the pending error, then 0. */
int fdtab_take_error(int fd);
/* A second connect() on a proxied socket: EISCONN, else the pending or the
 * original error (the pending one is consumed). */
int fdtab_connect_again(int fd);

/* Gives fd the payload of kind (FD_UDP, FD_UDP_CONTROL); the table takes
 * over the caller's reference. False when fd is untracked. */
bool fdtab_set_payload(int fd, enum fd_kind kind, void *payload);
/* The payload of fd if its kind is `kind`, with a reference taken for the
 * caller (ops->hold), or NULL. */
void *fdtab_hold(int fd, enum fd_kind kind);
/* Empties fd's entry without calling release, if it holds payload of kind
 * (the owner ends it itself). */
void fdtab_unset(int fd, enum fd_kind kind, const void *payload);

/* The descriptor goes (close): its entry is emptied, payload released. */
void fdtab_clear(int fd);
void fdtab_clear_range(unsigned first, unsigned last);
/* The same for the entries of one kind only (the shim's control connections
 * in a range the program is about to close). */
void fdtab_clear_range_of(unsigned first, unsigned last, enum fd_kind kind);
/* fd2 takes fd's state (dup2/dup3/F_DUPFD); fd2's old state is dropped.
 * A payload gains a descriptor when its kind can be copied (ops->copy);
 * otherwise the copy keeps only the class. */
void fdtab_copy(int fd, int fd2);
/* Calls fn for every entry of kind (once per entry). */
void fdtab_for_each(enum fd_kind kind, void (*fn)(int fd, void *payload));
/* In a forked child: the table's lock made anew. */
void fdtab_atfork_child(void);

#endif
