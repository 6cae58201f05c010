/* SPDX-License-Identifier: MIT */
/*
 * The fake-DNS pool (see fakedns.h): a shared mapping that holds a header,
 * an append-only array of names and an open-addressing hash index from
 * names to entries.
 *
 *   header   magic, layout version and ABI, ranges, capacity, the robust
 *            process-shared mutex, the count of published entries
 *   entries  capacity x {hash, length, name[256]}; entry i is address i + 1
 *   index    slots (a power of two, at least 2 x capacity) x uint32_t:
 *            0 is empty, otherwise an entry number + 1
 *
 * Writers hold the mutex. A new entry is written, then published by
 * bumping the count (release), then indexed (a release store into an empty
 * slot). Readers take no lock: an address lookup reads the count (acquire)
 * and then the immutable entry; a name lookup follows index slots (acquire),
 * each of which points at a published entry. A name lookup that misses
 * takes the mutex and looks again before allocating. A writer that dies
 * holding the mutex leaves at most one entry published but not indexed
 * (or one half-written entry past the count, which the next writer simply
 * overwrites); the next locker gets EOWNERDEAD and indexes what is missing.
 *
 * Nothing read from the shared mapping is trusted for bounds: the ranges,
 * capacity and index size are this process's own copies, checked against
 * the header once at attach time.
 */
#include "fakedns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define POOL_MAGIC "socksify-fakedns"
#define POOL_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* Linux 6.3; required when vm.memfd_noexec = 2 */
#endif

enum { POOL_VERSION = 1 };

struct pool_entry {
	uint32_t hash;
	uint16_t len;
	char name[FAKEDNS_NAME_MAX + 1]; /* NUL-terminated, as first looked up */
};

struct pool_header {
	char magic[16]; /* POOL_MAGIC without its NUL; written last */
	uint32_t version;
	uint32_t abi; /* sizes of this build's structures: a 32-bit child differs */
	uint32_t capacity;
	uint32_t slots;
	uint64_t size;
	uint8_t v4[4];
	uint32_t v4_prefix;
	uint8_t v6[16];
	uint32_t v6_prefix;
	pthread_mutex_t lock;
	_Atomic uint32_t count; /* published entries; only grows */
};

/* This process's view of the pool; written once per attach, then read-only. */
struct pool_view {
	struct pool_header *h;
	struct pool_entry *entries;
	_Atomic uint32_t *index;
	uint32_t capacity;
	uint32_t slot_mask;
	size_t entries_off, index_off, size;
	uint32_t v4; /* base, host order */
	uint32_t v4_mask;
	unsigned v4_prefix;
	uint8_t v6[16];
	unsigned v6_prefix;
	int fd;
};

static const uint8_t default_v4[4] = {240, 0, 0, 0};
static const uint8_t default_v6[16] = {0x01, 0x00};

static struct pool_view view;
static _Atomic(const struct pool_view *) active;
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;

void (*fakedns_locked_hook_for_tests)(void);

/* --- names ------------------------------------------------------------------------ */

static unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* FNV-1a over the lower-cased name: equal for names that compare equal. */
static uint32_t name_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= ascii_lower((unsigned char)name[i]);
		h *= 16777619u;
	}
	return h;
}

static bool name_equal(const char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
			return false;
	return true;
}

/*
 * True for what getaddrinfo() would take as a numeric host rather than a
 * name: inet_aton forms ("10.1", "0x7f.1", "1") and IPv6 literals with an
 * optional scope ("fe80::1%eth0"). inet_aton also accepts "1.2.3.4 junk",
 * which getaddrinfo does not, hence the check for white space.
 */
static bool name_is_numeric(const char *name, size_t len)
{
	struct in_addr a4;
	struct in6_addr a6;
	char buf[INET6_ADDRSTRLEN];

	if (inet_aton(name, &a4) && !strpbrk(name, " \t\n\v\f\r"))
		return true;
	const char *scope = memchr(name, '%', len);
	size_t n = scope ? (size_t)(scope - name) : len;
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, name, n);
	buf[n] = '\0';
	return inet_pton(AF_INET6, buf, &a6) == 1;
}

/* The length of a valid name, or -EINVAL. */
static long name_check(const char *name)
{
	if (!name)
		return -EINVAL;
	size_t len = strnlen(name, FAKEDNS_NAME_MAX + 1);
	if (len == 0 || len > FAKEDNS_NAME_MAX || name_is_numeric(name, len))
		return -EINVAL;
	return (long)len;
}

/* --- the index ---------------------------------------------------------------------- */

/* The entry holding name, or -1. Lock-free; also used under the lock. */
static long index_find(const struct pool_view *v, const char *name, size_t len,
                       uint32_t hash)
{
	uint32_t slot = hash & v->slot_mask;

	for (uint32_t probes = 0; probes <= v->slot_mask; probes++) {
		uint32_t s = atomic_load_explicit(&v->index[slot], memory_order_acquire);
		if (s == 0)
			return -1;
		/* a slot past the capacity can only come from a corrupt pool */
		if (s <= v->capacity) {
			const struct pool_entry *e = &v->entries[s - 1];
			if (e->hash == hash && e->len == len &&
			    name_equal(e->name, name, len))
				return (long)(s - 1);
		}
		slot = (slot + 1) & v->slot_mask;
	}
	return -1;
}

/* Indexes entry idx; the index is never more than half full. Lock held. */
static void index_insert(const struct pool_view *v, uint32_t hash, uint32_t idx)
{
	uint32_t slot = hash & v->slot_mask;

	for (uint32_t probes = 0; probes <= v->slot_mask; probes++) {
		if (atomic_load_explicit(&v->index[slot], memory_order_relaxed) == 0) {
			atomic_store_explicit(&v->index[slot], idx + 1,
			                      memory_order_release);
			return;
		}
		slot = (slot + 1) & v->slot_mask;
	}
}

/* After a writer died holding the lock: index every published entry that is
 * not. Lock held. Returns 0, or -EIO for a corrupt pool. */
static int index_repair(const struct pool_view *v)
{
	uint32_t count = atomic_load_explicit(&v->h->count, memory_order_relaxed);

	if (count > v->capacity)
		return -EIO;
	for (uint32_t i = 0; i < count; i++) {
		const struct pool_entry *e = &v->entries[i];
		if (e->len == 0 || e->len > FAKEDNS_NAME_MAX)
			return -EIO;
		if (index_find(v, e->name, e->len, e->hash) < 0)
			index_insert(v, e->hash, i);
	}
	return 0;
}

static int pool_lock(const struct pool_view *v)
{
	int r = pthread_mutex_lock(&v->h->lock);

	if (r == EOWNERDEAD) {
		int bad = index_repair(v);
		r = pthread_mutex_consistent(&v->h->lock);
		if (r == 0 && bad == 0)
			return 0;
		pthread_mutex_unlock(&v->h->lock);
		return -EIO;
	}
	return r == 0 ? 0 : -EIO;
}

/* Finds or allocates the entry of name under the lock: its number, or -errno. */
static long entry_allocate(const struct pool_view *v, const char *name, size_t len,
                           uint32_t hash)
{
	long idx;
	int r = pool_lock(v);

	if (r < 0)
		return r;
	idx = index_find(v, name, len, hash);
	if (idx < 0) {
		uint32_t n = atomic_load_explicit(&v->h->count, memory_order_relaxed);
		if (n >= v->capacity) {
			idx = n == v->capacity ? -ENOSPC : -EIO;
		} else {
			struct pool_entry *e = &v->entries[n];
			e->hash = hash;
			e->len = (uint16_t)len;
			memcpy(e->name, name, len);
			e->name[len] = '\0';
			atomic_store_explicit(&v->h->count, n + 1, memory_order_release);
			if (fakedns_locked_hook_for_tests)
				fakedns_locked_hook_for_tests();
			index_insert(v, hash, n);
			idx = n;
		}
	}
	pthread_mutex_unlock(&v->h->lock);
	return idx;
}

/* --- addresses ---------------------------------------------------------------------- */

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Writes the address of entry idx: base + idx + 1. */
static void entry_address(const struct pool_view *v, uint32_t idx, int family, void *out)
{
	if (family == AF_INET) {
		put_be32(out, v->v4 + idx + 1);
		return;
	}
	uint8_t *a = out;
	uint32_t carry = idx + 1;
	memcpy(a, v->v6, 16);
	for (int i = 15; i >= 0 && carry; i--) {
		carry += a[i];
		a[i] = (uint8_t)carry;
		carry >>= 8;
	}
}

/* Whether a (16 bytes) is in the IPv6 pool; *off gets its offset from the base,
 * or UINT64_MAX when the offset does not fit in 64 bits. */
static bool v6_offset(const struct pool_view *v, const uint8_t *a, uint64_t *off)
{
	unsigned full = v->v6_prefix / 8, rest = v->v6_prefix % 8;

	if (memcmp(a, v->v6, full) != 0)
		return false;
	if (rest && ((a[full] ^ v->v6[full]) & (uint8_t)(0xff << (8 - rest))))
		return false;
	uint8_t host[16];
	for (unsigned i = 0; i < 16; i++)
		host[i] = (uint8_t)(a[i] ^ v->v6[i]);
	*off = 0;
	for (unsigned i = 0; i < 8; i++)
		if (host[i]) {
			*off = UINT64_MAX;
			return true;
		}
	for (unsigned i = 8; i < 16; i++)
		*off = *off << 8 | host[i];
	return true;
}

/* Whether sa is in a pool; *off gets the offset of its address from the base. */
static bool pool_offset(const struct pool_view *v, const struct sockaddr *sa,
                        uint64_t *off)
{
	const uint8_t *a4;

	if (sa->sa_family == AF_INET) {
		a4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(a6))
			return v6_offset(v, a6->s6_addr, off);
		a4 = a6->s6_addr + 12;
	} else {
		return false;
	}
	uint32_t a = get_be32(a4);
	if ((a & v->v4_mask) != v->v4)
		return false;
	*off = a - v->v4;
	return true;
}

/* --- the public interface ----------------------------------------------------------- */

int fakedns_addr_for(const char *name, int family, void *addr_out)
{
	const struct pool_view *v = atomic_load_explicit(&active, memory_order_acquire);

	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	long len = name_check(name);
	if (len < 0)
		return (int)len;
	if (!v)
		return -ENXIO;
	uint32_t hash = name_hash(name, (size_t)len);
	long idx = index_find(v, name, (size_t)len, hash);
	if (idx < 0)
		idx = entry_allocate(v, name, (size_t)len, hash);
	if (idx < 0)
		return (int)idx;
	entry_address(v, (uint32_t)idx, family, addr_out);
	return 0;
}

int fakedns_name_for(const struct sockaddr *sa, char *name, size_t cap)
{
	const struct pool_view *v = atomic_load_explicit(&active, memory_order_acquire);
	uint64_t off;

	if (!sa)
		return -EINVAL;
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return -EAFNOSUPPORT;
	if (!v || !pool_offset(v, sa, &off))
		return -EINVAL;
	uint32_t count = atomic_load_explicit(&v->h->count, memory_order_acquire);
	if (count > v->capacity)
		count = v->capacity;
	if (off == 0 || off > count)
		return -ENOENT;
	const struct pool_entry *e = &v->entries[off - 1];
	size_t len =
	        strnlen(e->name, e->len < FAKEDNS_NAME_MAX ? e->len : FAKEDNS_NAME_MAX);
	if (len == 0)
		return -ENOENT;
	if (!name || cap <= len)
		return -ERANGE;
	memcpy(name, e->name, len);
	name[len] = '\0';
	return (int)len;
}

bool fakedns_in_pool(const struct sockaddr *sa)
{
	const struct pool_view *v = atomic_load_explicit(&active, memory_order_acquire);
	uint64_t off;

	return v && sa && pool_offset(v, sa, &off);
}

int fakedns_fd(void)
{
	const struct pool_view *v = atomic_load_explicit(&active, memory_order_acquire);

	return v ? v->fd : -1;
}

/* --- attaching ---------------------------------------------------------------------- */

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

	if (atomic_load_explicit(&active, memory_order_acquire))
		return 0;
	if (!p)
		return -EINVAL;
	pthread_mutex_lock(&attach_lock);
	if (atomic_load_explicit(&active, memory_order_acquire)) {
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
		atomic_store_explicit(&active, &view, memory_order_release);
	}
unlock:
	pthread_mutex_unlock(&attach_lock);
	return r;
}

void fakedns_detach_for_tests(void)
{
	if (!atomic_load_explicit(&active, memory_order_acquire))
		return;
	atomic_store_explicit(&active, NULL, memory_order_release);
	munmap(view.h, view.size);
	if (view.fd >= 0)
		close(view.fd);
	memset(&view, 0, sizeof(view));
	view.fd = -1;
}
