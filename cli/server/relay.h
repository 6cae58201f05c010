/* SPDX-License-Identifier: MIT */
/*
 * The byte relay between a client and its destination, in the style of
 * OpenBSD nc's readwrite(): one channel and position per direction, read
 * only when there is room, write only when there is data, and EOF on one
 * side becomes shutdown(SHUT_WR) on the other once its channel is drained
 * (the last such FIN is sent by closing both sockets, which follows at once).
 *
 * A direction's channel is a 64 KiB buffer, taken from a per-thread pool
 * when bytes arrive and given back as soon as they are all sent (a held,
 * quiet connection owns no buffer), or, once the direction has carried
 * RELAY_SPLICE_AFTER bytes, a pipe that splice(2) moves the bytes through
 * without copying them to user space. Where splice cannot be used (EINVAL)
 * or no pipe can be made, the direction stays on buffers.
 */
#ifndef SOCKSIFY_SERVER_RELAY_H
#define SOCKSIFY_SERVER_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	RELAY_BUF = 64 * 1024,
	RELAY_SPLICE_AFTER = 256 * 1024, /* bytes before a direction splices */
	RELAY_PIPE_SIZE = 1024 * 1024,   /* asked for with F_SETPIPE_SZ */
	RELAY_POOL_MAX = 16,             /* idle buffers kept per thread */
};

/* Sides: index of the fd. Direction d moves bytes from fd[d] to fd[!d]. */
enum relay_side { RELAY_CLIENT = 0, RELAY_TARGET = 1 };

struct relay_dir {
	uint8_t *buf;           /* NULL while empty (back in the pool) */
	size_t head, tail;      /* unsent bytes are buf[head..tail) */
	int pipe[2];            /* splice's pipe, -1 until made */
	size_t piped, pipe_cap; /* bytes in the pipe; its size */
	bool pipe_full;         /* the last splice in found no room: wait for a drain */
	bool no_splice;         /* splice failed: buffers only */
	bool eof;               /* read side saw EOF */
	bool shut;              /* write side was shut down */
	uint64_t bytes;         /* bytes written out */
};

struct relay {
	int fd[2];
	struct relay_dir dir[2];
};

/* Starts a relay; `early` bytes from the client go to the target first.
 * Returns 0 or -ENOMEM. */
int relay_init(struct relay *r, int client_fd, int target_fd, const uint8_t *early,
               size_t early_len);
/* Gives back the buffers and closes the pipes (not the sockets). */
void relay_free(struct relay *r);

/*
 * Moves what can move without blocking after `revents` on side `side`.
 * Returns 1 while the relay lives, 0 when both directions are finished,
 * -errno on an error. relay_events() then gives each side's epoll interest.
 */
int relay_pump(struct relay *r, int side, uint32_t revents);
uint32_t relay_events(const struct relay *r, int side);
/* True when both directions are finished (EOF read, drained, shut down). */
bool relay_done(const struct relay *r);

#endif
