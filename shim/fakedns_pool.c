/* SPDX-License-Identifier: MIT */
/*
 * The life of the fake-DNS pool's shared mapping (see fakedns.h, and
 * fakedns_int.h for the layout): its geometry planned from the ranges, a new
 * memfd sized and sealed (or an anonymous shared mapping without one), an
 * inherited one checked and adopted, the header written, and this process's
 * view published once for the lock-free readers in fakedns.c.
 */
#include "fakedns_int.h"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define POOL_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* Linux 6.3; required when vm.memfd_noexec = 2 */
#endif

static const uint8_t default_v4[4] = {240, 0, 0, 0};
static const uint8_t default_v6[16] = {0x01, 0x00};

static struct pool_view view;
_Atomic(const struct pool_view *) fakedns_active;
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t pool_abi(void)
{
	return (uint32_t)(sizeof(struct pool_header) << 16 |
	                  sizeof(struct pool_entry) << 4 | sizeof(void *));
}

/* Fills the ranges and the geometry of v from p: 0 or -EINVAL. */
static int view_plan(struct pool_view *v, const struct fakedns_params *p)
{
	const uint8_t *v6 = p->v6 ? p->v6 : default_v6;
	unsigned p4 = p->v4 ? p->v4_prefix : 4, p6 = p->v6 ? p->v6_prefix : 64;

	if (p4 < 1 || p4 > 30 || p6 < 1 || p6 > 126)
		return -EINVAL;
	memset(v, 0, sizeof(*v));
	v->fd = -1;
	v->v4 = get_be32(p->v4 ? p->v4 : default_v4);
	v->v4_mask = ~(uint32_t)0 << (32 - p4);
	v->v4_prefix = p4;
	if (v->v4 & ~v->v4_mask)
		return -EINVAL;
	memcpy(v->v6, v6, 16);
	v->v6_prefix = p6;
	for (unsigned bit = p6; bit < 128; bit++)
		if (v6[bit / 8] & (0x80 >> (bit % 8)))
			return -EINVAL;

	uint64_t cap = FAKEDNS_CAPACITY_MAX;
	if (32 - p4 < 17 && ((uint64_t)1 << (32 - p4)) - 2 < cap)
		cap = ((uint64_t)1 << (32 - p4)) - 2;
	if (128 - p6 < 17 && ((uint64_t)1 << (128 - p6)) - 2 < cap)
		cap = ((uint64_t)1 << (128 - p6)) - 2;
	v->capacity = (uint32_t)cap;
	uint32_t slots = 1;
	while (slots < 2 * v->capacity)
		slots <<= 1;
	v->slot_mask = slots - 1;
	v->entries_off = (sizeof(struct pool_header) + 63) & ~(size_t)63;
	v->index_off =
	        (v->entries_off + cap * sizeof(struct pool_entry) + 63) & ~(size_t)63;
	v->size = v->index_off + (size_t)slots * sizeof(uint32_t);
	return 0;
}

static bool header_matches(const struct pool_header *h, const struct pool_view *v)
{
	uint8_t v4[4];

	put_be32(v4, v->v4);
	return memcmp(h->magic, POOL_MAGIC, sizeof(h->magic)) == 0 &&
	       h->version == POOL_VERSION && h->abi == pool_abi() &&
	       h->capacity == v->capacity && h->slots == v->slot_mask + 1 &&
	       h->size == v->size && memcmp(h->v4, v4, 4) == 0 &&
	       h->v4_prefix == v->v4_prefix && memcmp(h->v6, v->v6, 16) == 0 &&
	       h->v6_prefix == v->v6_prefix;
}

static void view_map(struct pool_view *v, void *map, int fd)
{
	v->h = map;
	v->entries = (struct pool_entry *)((char *)map + v->entries_off);
	v->index = (_Atomic uint32_t *)((char *)map + v->index_off);
	v->fd = fd;
}

/* A descriptor number written in decimal, or -1. */
static int parse_fd(const char *s)
{
	long n = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || n > 1 << 24)
			return -1;
		n = n * 10 + (*s - '0');
	}
	return (int)n;
}

/* Maps the inherited pool in fd_text into v: 0, or -errno (then nothing
 * changed, and the descriptor, which may be the program's, stays open). */
static int pool_adopt(struct pool_view *v, const char *fd_text)
{
	int fd = parse_fd(fd_text);
	struct stat st;

	if (fd < 0)
		return -EBADF;
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return -errno;
	if ((seals & POOL_SEALS) != POOL_SEALS || fstat(fd, &st) < 0 ||
	    !S_ISREG(st.st_mode) || (uint64_t)st.st_size != v->size)
		return -EINVAL;
	void *map = mmap(NULL, v->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	if (!header_matches(map, v)) {
		munmap(map, v->size);
		return -EINVAL;
	}
	/* a grandchild must inherit it too */
	fcntl(fd, F_SETFD, 0);
	view_map(v, map, fd);
	return 0;
}

/*
 * A new memfd, moved to FAKEDNS_FD_MIN or above and not close-on-exec, sized
 * and sealed so that no process can shrink it under another's mapping
 * (SIGBUS). Returns the descriptor or -errno.
 */
static int pool_memfd(size_t size)
{
	int fd = memfd_create("socksify-fakedns",
	                      MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);

	if (fd < 0 && errno == EINVAL) /* a kernel before 6.3 */
		fd = memfd_create("socksify-fakedns", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, POOL_SEALS) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	int high = fcntl(fd, F_DUPFD, FAKEDNS_FD_MIN);
	if (high >= 0) {
		close(fd);
		return high;
	}
	/* RLIMIT_NOFILE below FAKEDNS_FD_MIN: keep the number we have */
	fcntl(fd, F_SETFD, 0);
	return fd;
}

/* Creates and maps a new pool into v: 0 or -errno. Without memfd_create
 * (seccomp, EMFILE) the pool is an anonymous shared mapping: still shared
 * with fork()ed children, not across exec(). */
static int pool_create(struct pool_view *v)
{
	void *map = MAP_FAILED;
	int fd = pool_memfd(v->size);

	if (fd >= 0) {
		map = mmap(NULL, v->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			close(fd);
			fd = -1;
		}
	}
	if (map == MAP_FAILED)
		map = mmap(NULL, v->size, PROT_READ | PROT_WRITE,
		           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return -errno;

	struct pool_header *h = map;
	pthread_mutexattr_t attr;
	int r = pthread_mutexattr_init(&attr);
	if (r == 0) {
		pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
		pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
		r = pthread_mutex_init(&h->lock, &attr);
		pthread_mutexattr_destroy(&attr);
	}
	if (r != 0) {
		munmap(map, v->size);
		if (fd >= 0)
			close(fd);
		return -r;
	}
	h->version = POOL_VERSION;
	h->abi = pool_abi();
	h->capacity = v->capacity;
	h->slots = v->slot_mask + 1;
	h->size = v->size;
	put_be32(h->v4, v->v4);
	h->v4_prefix = v->v4_prefix;
	memcpy(h->v6, v->v6, 16);
	h->v6_prefix = v->v6_prefix;
	atomic_init(&h->count, 0);
	atomic_init(&h->shared_word, 0);
	for (size_t i = 0; i < FAKEDNS_PROXY_WORDS; i++)
		atomic_init(&h->proxy_words[i], 0);
	/* No other process can see the pool before the caller exports the
	 * descriptor and forks or execs, both of which order these stores. */
	memcpy(h->magic, POOL_MAGIC, sizeof(h->magic));
	view_map(v, map, fd >= 0 ? fd : -1);
	return 0;
}

int fakedns_attach(const struct fakedns_params *p)
{
	struct pool_view v;
	int r;

	if (pool_active())
		return 0;
	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&attach_lock);
	if (pool_active()) {
		r = 0;
		goto unlock;
	}
	r = view_plan(&v, p);
	if (r < 0)
		goto unlock;
	if (!p->inherited_fd || pool_adopt(&v, p->inherited_fd) < 0)
		r = pool_create(&v);
	if (r == 0) {
		view = v;
		atomic_store_explicit(&fakedns_active, &view, memory_order_release);
	}
unlock:
	pthread_mutex_unlock(&attach_lock);
	return r;
}

int fakedns_fd(void)
{
	const struct pool_view *v = pool_active();

	return v ? v->fd : -1;
}

_Atomic uint64_t *fakedns_shared_word(void)
{
	const struct pool_view *v = pool_active();

	return v ? &v->h->shared_word : NULL;
}

_Atomic uint64_t *fakedns_proxy_words(void)
{
	const struct pool_view *v = pool_active();

	return v ? v->h->proxy_words : NULL;
}

void fakedns_detach_for_tests(void)
{
	if (!pool_active())
		return;
	atomic_store_explicit(&fakedns_active, NULL, memory_order_release);
	munmap(view.h, view.size);
	if (view.fd >= 0)
		close(view.fd);
	memset(&view, 0, sizeof(view));
	view.fd = -1;
}

int fakedns_attach_config(const struct config *c, const char *inherited_fd)
{
	struct fakedns_params p = {
	        .v4 = c->fake_v4,
	        .v4_prefix = c->fake_v4_prefix,
	        .v6 = c->fake_v6,
	        .v6_prefix = c->fake_v6_prefix,
	        .inherited_fd = inherited_fd,
	};
	char fd[16];

	int rc = fakedns_attach(&p);
	if (rc == 0 && fakedns_fd() >= 0) {
		snprintf(fd, sizeof(fd), "%d", fakedns_fd());
		/* an exec'd process that adopted the pool has it already:
		 * setenv() would start malloc for nothing */
		if (!inherited_fd || strcmp(inherited_fd, fd) != 0)
			setenv(FAKEDNS_ENV_FD, fd, 1);
	}
	return rc;
}
