/* SPDX-License-Identifier: MIT */
/*
 * The byte relay (see relay.h).
 */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/* Idle buffers, per thread: each event loop runs on one thread, so no lock.
 * A thread that ends frees its pool (a key destructor). */
static __thread uint8_t *pool[RELAY_POOL_MAX];
static __thread size_t npool;
static __thread bool pool_armed;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_free(void *unused)
{
	(void)unused;
	while (npool)
		free(pool[--npool]);
}

static void pool_key_create(void)
{
	pthread_key_create(&pool_key, pool_free);
}

static uint8_t *buf_get(void)
{
	return npool ? pool[--npool] : malloc(RELAY_BUF);
}

static void buf_put(uint8_t *buf)
{
	if (!pool_armed) {
		pthread_once(&pool_once, pool_key_create);
		pthread_setspecific(pool_key, pool); /* non-NULL: the destructor runs */
		pool_armed = true;
	}
	if (npool < RELAY_POOL_MAX)
		pool[npool++] = buf;
	else
		free(buf);
}

int relay_init(struct relay *r, int client_fd, int target_fd, const uint8_t *early,
               size_t early_len)
{
	memset(r, 0, sizeof(*r));
	r->fd[RELAY_CLIENT] = client_fd;
	r->fd[RELAY_TARGET] = target_fd;
	for (int d = 0; d < 2; d++)
		r->dir[d].pipe[0] = r->dir[d].pipe[1] = -1;
	if (early_len == 0)
		return 0;
	struct relay_dir *up = &r->dir[RELAY_CLIENT];
	up->buf = buf_get();
	if (!up->buf)
		return -ENOMEM;
	if (early_len > RELAY_BUF)
		early_len = RELAY_BUF;
	memcpy(up->buf, early, early_len);
	up->tail = early_len;
	return 0;
}

static void close_pipe(struct relay_dir *dir)
{
	if (dir->pipe[0] < 0)
		return;
	close(dir->pipe[0]);
	close(dir->pipe[1]);
	dir->pipe[0] = dir->pipe[1] = -1;
}

void relay_free(struct relay *r)
{
	for (int d = 0; d < 2; d++) {
		if (r->dir[d].buf)
			buf_put(r->dir[d].buf);
		r->dir[d].buf = NULL;
		close_pipe(&r->dir[d]);
	}
}

/* A direction that has carried enough to be bulk gets a pipe for splice();
 * without one (out of descriptors, say) it stays on buffers. */
static void maybe_splice(struct relay_dir *dir, int in, int out)
{
	if (dir->no_splice || dir->pipe[0] >= 0 || dir->bytes < RELAY_SPLICE_AFTER)
		return;
	if (pipe2(dir->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		log_msg(LOG_DEBUG, "relay fd %d -> fd %d: no pipe (%s), buffers only", in,
		        out, strerror(errno));
		dir->pipe[0] = dir->pipe[1] = -1;
		dir->no_splice = true;
		return;
	}
	fcntl(dir->pipe[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE); /* as large as allowed */
	int cap = fcntl(dir->pipe[1], F_GETPIPE_SZ);
	dir->pipe_cap = cap > 0 ? (size_t)cap : 4096;
	log_msg(LOG_DEBUG,
	        "relay fd %d -> fd %d: splicing after %llu bytes (%zu-byte pipe)", in,
	        out, (unsigned long long)dir->bytes, dir->pipe_cap);
}

static bool in_full(const struct relay_dir *dir)
{
	if (dir->pipe[0] >= 0)
		return dir->pipe_full || dir->piped >= dir->pipe_cap;
	return dir->tail == RELAY_BUF;
}

static bool pending(const struct relay_dir *dir)
{
	return dir->piped > 0 || dir->head < dir->tail;
}

/* Sends the buffer's bytes; gives the buffer back once they are all out. */
static int drain_buf(struct relay_dir *dir, int in, int out)
{
	while (dir->head < dir->tail) {
		ssize_t n = send(out, dir->buf + dir->head, dir->tail - dir->head,
		                 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		}
		dir->head += (size_t)n;
		dir->bytes += (uint64_t)n;
	}
	dir->head = dir->tail = 0;
	if (dir->buf)
		buf_put(dir->buf);
	dir->buf = NULL;
	maybe_splice(dir, in, out);
	return 0;
}

/* Splices the pipe's bytes out. */
static int drain_pipe(struct relay_dir *dir, int out)
{
	while (dir->piped > 0) {
		ssize_t n = splice(dir->pipe[0], NULL, out, NULL, dir->piped,
		                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		}
		if (n == 0)
			return -EIO; /* cannot happen with bytes in the pipe */
		dir->piped -= (size_t)n;
		dir->bytes += (uint64_t)n;
		dir->pipe_full = false;
	}
	return 0;
}

/* Writes direction d's pending bytes; shuts the write side down after EOF. */
static int drain(struct relay *r, int d)
{
	struct relay_dir *dir = &r->dir[d];
	int out = r->fd[!d];
	int rc = dir->piped ? drain_pipe(dir, out) : drain_buf(dir, r->fd[d], out);

	if (rc < 0 || pending(dir))
		return rc;
	if (dir->eof && !dir->shut) {
		dir->shut = true;
		/* The last direction to finish: the relay is done and the server
		 * closes both sockets now, which sends the FIN (nothing is left
		 * unread that would make it a reset). */
		if (r->dir[!d].shut)
			return 0;
		if (shutdown(out, SHUT_WR) < 0 && errno != ENOTCONN)
			return -errno;
	}
	return 0;
}

/* Splices from the socket into the pipe. 1: splice cannot be used here. */
static int fill_pipe(struct relay_dir *dir, int in)
{
	ssize_t n;
	do
		n = splice(in, NULL, dir->pipe[1], NULL, dir->pipe_cap - dir->piped,
		           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EINVAL && dir->piped == 0) {
		log_msg(LOG_DEBUG, "relay fd %d: splice: %s, buffers only", in,
		        strerror(errno));
		close_pipe(dir);
		dir->no_splice = true;
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		/* The socket is empty, or the pipe has no free slot left (a slot
		 * may hold less than a page): wait for the pipe to drain. */
		dir->pipe_full = dir->piped > 0;
		return 0;
	}
	if (n < 0)
		return -errno;
	if (n == 0)
		dir->eof = true;
	dir->piped += (size_t)n;
	return 0;
}

/* Reads into direction d's channel while there is room. */
static int fill(struct relay *r, int d)
{
	struct relay_dir *dir = &r->dir[d];

	if (dir->eof || in_full(dir))
		return 0;
	if (dir->pipe[0] >= 0) {
		int rc = fill_pipe(dir, r->fd[d]);
		if (rc <= 0)
			return rc;
	}
	if (!dir->buf && !(dir->buf = buf_get()))
		return -ENOMEM;
	ssize_t n;
	do
		n = recv(r->fd[d], dir->buf + dir->tail, RELAY_BUF - dir->tail, 0);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		dir->tail += (size_t)n;
		return 0;
	}
	int err = n < 0 ? errno : 0;
	if (dir->tail == 0) { /* nothing to hold on to */
		buf_put(dir->buf);
		dir->buf = NULL;
	}
	if (n < 0)
		return err == EAGAIN || err == EWOULDBLOCK ? 0 : -err;
	dir->eof = true;
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
	if ((revents & EPOLLERR) && (in->eof || in_full(in)))
		return -socket_error(r->fd[side]);
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		rc = fill(r, side);
		if (rc == 0)
			rc = drain(r, side);
		/* The peer's FIN (or reset) is queued behind the data (EPOLLRDHUP):
		 * once the data is passed on, read the EOF now rather than in
		 * another wake-up. */
		if (rc == 0 && (revents & EPOLLRDHUP) && !in->eof && !pending(in)) {
			rc = fill(r, side);
			if (rc == 0)
				rc = drain(r, side);
		}
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

	if (!in->eof && !in_full(in))
		ev |= EPOLLIN;
	if (pending(out))
		ev |= EPOLLOUT;
	return ev;
}
