/* SPDX-License-Identifier: MIT */
/*
 * Private to shim/fakedns*.c: the layout of the fake-DNS pool (see
 * fakedns.h), a shared mapping that holds a header, an append-only array of
 * names and an open-addressing hash index from names to entries.
 *
 *   header   magic, layout version and ABI, ranges, capacity, the robust
 *            process-shared mutex, the count of published entries, and
 *            one word the whole tree shares for shim/pipeline.c, and
 *            the proxies' failover words for shim/proxies.c
 *   entries  capacity x {hash, length, name[256]}; entry i is address i + 1
 *   index    slots (a power of two, at least 2 x capacity) x uint32_t:
 *            0 is empty, otherwise an entry number + 1
 *
 * fakedns_pool.c gives the mapping its life (plans the layout, creates and
 * seals the memfd or adopts an inherited one, maps it, publishes this
 * process's view); fakedns.c works the table in it (names to entries and
 * addresses, and back). Nothing outside those files includes this header:
 * the public interface is fakedns.h.
 */
#ifndef SOCKSIFY_SHIM_FAKEDNS_INT_H
#define SOCKSIFY_SHIM_FAKEDNS_INT_H

#include "fakedns.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define POOL_MAGIC "socksify-fakedns"

enum { POOL_VERSION = 3 };

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
	_Atomic uint32_t count;       /* published entries; only grows */
	_Atomic uint64_t shared_word; /* the tree's pipelining word (shim/pipeline.c) */
	/* shim/proxies.c: per proxy, the monotonic ms until which it is
	 * skipped (failover), then the round-robin counter */
	_Atomic uint64_t proxy_words[FAKEDNS_PROXY_WORDS];
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

/* The attached pool's view, or NULL: published once by fakedns_attach(). */
extern _Atomic(const struct pool_view *) fakedns_active;

static inline const struct pool_view *pool_active(void)
{
	return atomic_load_explicit(&fakedns_active, memory_order_acquire);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
