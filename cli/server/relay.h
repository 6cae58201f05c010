/* SPDX-License-Identifier: MIT */
/*
 * The byte relay between a client and its destination, in the style of
 * OpenBSD nc's readwrite(): one buffer and position per direction, read
 * only when there is room, write only when there is data, and EOF on one
 * side becomes shutdown(SHUT_WR) on the other once its buffer is drained.
 */
#ifndef SOCKSIFY_SERVER_RELAY_H
#define SOCKSIFY_SERVER_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { RELAY_BUF = 64 * 1024 };

/* Sides: index of the fd. Direction d moves bytes from fd[d] to fd[!d]. */
enum relay_side { RELAY_CLIENT = 0, RELAY_TARGET = 1 };

struct relay_dir {
	uint8_t *buf;
	size_t head, tail; /* unsent bytes are buf[head..tail) */
	bool eof;          /* read side saw EOF */
	bool shut;         /* write side was shut down */
	uint64_t bytes;    /* bytes written out */
};

struct relay {
	int fd[2];
	struct relay_dir dir[2];
};

/* Allocates the buffers; `early` bytes from the client go to the target first. */
int relay_init(struct relay *r, int client_fd, int target_fd, const uint8_t *early,
               size_t early_len);
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
