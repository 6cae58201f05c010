/* SPDX-License-Identifier: MIT */
/*
 * The fake-DNS table (see fakedns.h, and fakedns_int.h for the layout):
 * names to entries and their addresses, and addresses back to names, in the
 * pool fakedns_pool.c maps.
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
#include "fakedns_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

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
	const struct pool_view *v = pool_active();

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
	const struct pool_view *v = pool_active();
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
	const struct pool_view *v = pool_active();
	uint64_t off;

	return v && sa && pool_offset(v, sa, &off);
}
