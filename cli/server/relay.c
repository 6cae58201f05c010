/* SPDX-License-Identifier: MIT */
/*
 * The byte relay (see relay.h).
 */
#include "relay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int relay_init(struct relay *r, int client_fd, int target_fd, const uint8_t *early,
               size_t early_len)
{
	uint8_t *mem = malloc(2 * RELAY_BUF);
	if (!mem)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	r->fd[RELAY_CLIENT] = client_fd;
	r->fd[RELAY_TARGET] = target_fd;
	r->dir[RELAY_CLIENT].buf = mem;
	r->dir[RELAY_TARGET].buf = mem + RELAY_BUF;
	if (early_len > RELAY_BUF)
		early_len = RELAY_BUF;
	memcpy(mem, early, early_len);
	r->dir[RELAY_CLIENT].tail = early_len;
	return 0;
}

void relay_free(struct relay *r)
{
	free(r->dir[RELAY_CLIENT].buf);
	r->dir[RELAY_CLIENT].buf = NULL;
	r->dir[RELAY_TARGET].buf = NULL;
}

/* Writes direction d's pending bytes; shuts the write side down after EOF. */
static int drain(struct relay *r, int d)
{
	struct relay_dir *dir = &r->dir[d];
	int out = r->fd[!d];

	while (dir->head < dir->tail) {
		ssize_t n = send(out, dir->buf + dir->head, dir->tail - dir->head,
		                 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		dir->head += (size_t)n;
		dir->bytes += (uint64_t)n;
	}
	dir->head = dir->tail = 0;
	if (dir->eof && !dir->shut) {
		dir->shut = true;
		if (shutdown(out, SHUT_WR) < 0 && errno != ENOTCONN)
			return -errno;
	}
	return 0;
}

/* Reads into direction d's buffer while there is room. */
static int fill(struct relay *r, int d)
{
	struct relay_dir *dir = &r->dir[d];

	if (dir->eof || dir->tail == RELAY_BUF)
		return 0;
	ssize_t n;
	do
		n = recv(r->fd[d], dir->buf + dir->tail, RELAY_BUF - dir->tail, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	if (n == 0)
		dir->eof = true;
	dir->tail += (size_t)n;
	return 0;
}

/* The pending socket error of fd, or ECONNRESET when none is recorded. */
static int socket_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	return err ? err : ECONNRESET;
}

int relay_pump(struct relay *r, int side, uint32_t revents)
{
	struct relay_dir *in = &r->dir[side];
	int rc = 0;

	/*
	 * On an error, bytes that arrived before it (a response followed by a
	 * reset) are still readable: pass them on, and let recv() report the
	 * error. Only when nothing more can be read is the error final.
	 */
	if ((revents & EPOLLERR) && (in->eof || in->tail == RELAY_BUF))
		return -socket_error(r->fd[side]);
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		rc = fill(r, side);
		if (rc == 0)
			rc = drain(r, side);
	}
	if (rc == 0 && (revents & (EPOLLOUT | EPOLLHUP)))
		rc = drain(r, !side);
	if (rc < 0)
		return rc;
	return relay_done(r) ? 0 : 1;
}

bool relay_done(const struct relay *r)
{
	return r->dir[0].shut && r->dir[1].shut;
}

uint32_t relay_events(const struct relay *r, int side)
{
	const struct relay_dir *in = &r->dir[side], *out = &r->dir[!side];
	uint32_t ev = 0;

	if (!in->eof && in->tail < RELAY_BUF)
		ev |= EPOLLIN;
	if (out->head < out->tail)
		ev |= EPOLLOUT;
	return ev;
}
