/* SPDX-License-Identifier: MIT */
/*
 * The received datagram's layout (see udp_layout.h).
 */
#include "udp_layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One piece of the layout: copies what of [from, end) falls in the piece
 * that starts at offset *pos, advancing *pos, *from and *out. */
static void read_piece(const void *base, size_t n, size_t *pos, size_t *from, size_t end,
                       uint8_t **out)
{
	if (*from < *pos + n && *from < end) {
		size_t skip = *from - *pos, count = *pos + n - *from;
		if (count > end - *from)
			count = end - *from;
		memcpy(*out, (const uint8_t *)base + skip, count);
		*out += count;
		*from += count;
	}
	*pos += n;
}

void udp_layout_read(const struct udp_layout *l, size_t from, uint8_t *out, size_t len)
{
	size_t pos = 0;
	size_t end = from + len;
	if (end > l->have)
		end = l->have;
	read_piece(l->hdr, l->g, &pos, &from, end, &out);
	for (size_t i = 0; i < l->iovlen; i++)
		read_piece(l->iov[i].iov_base, l->iov[i].iov_len, &pos, &from, end, &out);
	read_piece(l->spill, l->spill_len, &pos, &from, end, &out);
}

int udp_layout_shift(const struct udp_layout *l, size_t off, size_t ulen)
{
	size_t n = l->have > off ? l->have - off : 0;
	if (n > ulen)
		n = ulen;
	if (n == 0)
		return 0;
	uint8_t *tmp = malloc(n);
	if (!tmp)
		return -ENOMEM;
	udp_layout_read(l, off, tmp, n);
	size_t done = 0;
	for (size_t i = 0; i < l->iovlen && done < n; i++) {
		size_t c = l->iov[i].iov_len < n - done ? l->iov[i].iov_len : n - done;
		memcpy(l->iov[i].iov_base, tmp + done, c);
		done += c;
	}
	free(tmp);
	return 0;
}
