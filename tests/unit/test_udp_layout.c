/* SPDX-License-Identifier: MIT */
/*
 * Where a received SOCKS UDP datagram's bytes lie (shim/udp_layout.c):
 * a datagram of every header length from 4 to 262 bytes, read by recvmsg()
 * into [guess][the program's iovecs][spill] for several guesses and iovec
 * shapes (one buffer, many small ones, empty ones, exactly the payload's
 * size, too small), must come out byte for byte as a plain model says:
 * udp_layout_read() returns any range of the datagram, udp_layout_shift()
 * leaves exactly the payload's first bytes in the program's buffers.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "udp_layout.h"

enum { SPILL = 262, MAXBUF = 4096 };

/* Scatters the datagram dg (n bytes) as recvmsg() would into l's pieces;
 * sets l->have. */
static void scatter(struct udp_layout *l, uint8_t *hdr, uint8_t *spill, const uint8_t *dg,
                    size_t n)
{
	size_t pos = 0, c;
	c = n < l->g ? n : l->g;
	memcpy(hdr, dg, c);
	pos += c;
	for (size_t i = 0; i < l->iovlen; i++) {
		c = n - pos < l->iov[i].iov_len ? n - pos : l->iov[i].iov_len;
		memcpy(l->iov[i].iov_base, dg + pos, c);
		pos += c;
	}
	c = n - pos < l->spill_len ? n - pos : l->spill_len;
	memcpy(spill, dg + pos, c);
	pos += c;
	l->have = pos;
}

/* Splits ulen bytes of buf into iovecs by shape: 0 one, 1 sevens, 2 with
 * empty ones between, 3 ones. */
static size_t shape_iov(struct iovec *iov, uint8_t *buf, size_t ulen, int shape)
{
	size_t n = 0, pos = 0;
	while (pos < ulen || (n == 0 && ulen == 0)) {
		size_t piece = shape == 0 ? ulen : shape == 1 ? 7 : shape == 2 ? 5 : 1;
		if (piece > ulen - pos)
			piece = ulen - pos;
		if (shape == 2)
			iov[n++] = (struct iovec){.iov_base = buf + pos, .iov_len = 0};
		iov[n++] = (struct iovec){.iov_base = buf + pos, .iov_len = piece};
		pos += piece;
		if (ulen == 0)
			break;
	}
	return n;
}

static unsigned checks, failures;

static void one_case(size_t h, size_t payload, size_t g, size_t ulen, int shape)
{
	static uint8_t dg[MAXBUF], buf[MAXBUF], hdr[SPILL], spill[SPILL], out[MAXBUF];
	static struct iovec iov[2 * MAXBUF];
	size_t n = h + payload;
	for (size_t i = 0; i < n; i++)
		dg[i] = (uint8_t)(i * 7 + h + 1);
	memset(buf, 0xee, sizeof(buf));
	struct udp_layout l = {hdr, g, iov, 0, spill, SPILL, 0};
	l.iovlen = shape_iov(iov, buf, ulen, shape);
	scatter(&l, hdr, spill, dg, n);

	/* every range of what was received reads back as the datagram */
	bool ok = true;
	for (size_t from = 0; from <= l.have && ok; from += 3) {
		size_t len = l.have - from;
		memset(out, 0, len + 1);
		udp_layout_read(&l, from, out, len + 10);
		ok = memcmp(out, dg + from, len) == 0;
	}
	/* the payload lands in the program's buffers, and nothing past them */
	if (udp_layout_shift(&l, h, ulen) < 0)
		ok = false;
	size_t want = payload < ulen ? payload : ulen;
	if (want > l.have - (h < l.have ? h : l.have))
		want = l.have > h ? l.have - h : 0;
	ok = ok && memcmp(buf, dg + h, want) == 0;
	for (size_t i = ulen; i < ulen + 8 && ok; i++)
		ok = buf[i] == 0xee;
	checks++;
	if (!ok) {
		failures++;
		if (failures <= 10)
			tap_diag("header %zu, payload %zu, guess %zu, buffers %zu, shape "
			         "%d",
			         h, payload, g, ulen, shape);
	}
}

int main(void)
{
	static const size_t headers[] = {4, 10, 22, 7 + 1 + 4, 7 + 200, 262};
	static const size_t guesses[] = {0, 4, 10, 22, 262};
	static const size_t payloads[] = {0, 1, 6, 9, 64, 300, 1000};

	tap_init();
	for (size_t hi = 0; hi < sizeof(headers) / sizeof(*headers); hi++) {
		checks = failures = 0;
		size_t h = headers[hi];
		for (size_t gi = 0; gi < sizeof(guesses) / sizeof(*guesses); gi++)
			for (size_t pi = 0; pi < sizeof(payloads) / sizeof(*payloads);
			     pi++)
				for (int shape = 0; shape < 4; shape++) {
					size_t p = payloads[pi];
					size_t sizes[] = {p, p ? p - 1 : 0, p + 1, p / 2,
					                  512};
					for (size_t si = 0; si < 5; si++)
						one_case(h, p, guesses[gi], sizes[si],
						         shape);
				}
		tap_ok(failures == 0,
		       "header of %zu bytes: %u layouts read and shifted exactly", h,
		       checks);
	}

	/* a datagram exactly the size of the buffers with a header longer than
	 * the guess: the spill holds the tail, nothing is lost */
	checks = failures = 0;
	one_case(262, 100, 10, 100, 0);
	one_case(22, 1000, 10, 1000, 1);
	tap_ok(failures == 0, "an exact-size buffer with a longer header loses no byte");

	/* a shorter header than guessed: the payload moves back */
	checks = failures = 0;
	one_case(10, 50, 22, 50, 3);
	tap_ok(failures == 0,
	       "a shorter header than guessed: the payload moves into place");
	return tap_done();
}
