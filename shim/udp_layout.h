/* SPDX-License-Identifier: MIT */
/*
 * Where a received SOCKS UDP datagram lies: one recvmsg() reads it into
 *   [header guess (g bytes)][the program's iovecs][spill]
 * so that the payload lands in the program's buffers without a copy when
 * the header is as long as guessed. When it is not, the payload is moved
 * into place from wherever it lies (the spill holds what the shift pulls in
 * from past the program's buffers, so a datagram exactly the size of those
 * buffers loses nothing). Pure arithmetic on memory: no I/O, no globals.
 */
#ifndef SOCKSIFY_SHIM_UDP_LAYOUT_H
#define SOCKSIFY_SHIM_UDP_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct udp_layout {
	const uint8_t *hdr; /* the header guess's buffer */
	size_t g;           /* its length */
	const struct iovec *iov;
	size_t iovlen;
	const uint8_t *spill;
	size_t spill_len;
	size_t have; /* bytes of the datagram in all of them */
};

/* Copies len bytes of the datagram from offset `from` into out (fewer when
 * the datagram ends first). */
void udp_layout_read(const struct udp_layout *l, size_t from, uint8_t *out, size_t len);

/* Moves the datagram's bytes from offset off into the program's iovecs, at
 * most ulen (their total length). 0, or -ENOMEM. */
int udp_layout_shift(const struct udp_layout *l, size_t off, size_t ulen);

#endif
