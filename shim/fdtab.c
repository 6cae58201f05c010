/* SPDX-License-Identifier: MIT */
/*
 * The per-descriptor table (see fdtab.h).
 */
#include "fdtab.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#include "shim.h"

static struct fd_entry table[FDTAB_SIZE];
/* Above this no entry was ever used: bounds the close_range() sweep. */
static int high_water = -1;
/* Guards payload pointers against a concurrent hold: an entry's payload is
 * read and referenced, or cleared, under it. */
static pthread_mutex_t payload_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct fdtab_ops *kind_ops[FD_KINDS];
/* The order of proxied connections (fd_entry.seq). */
static unsigned proxied_seq;

void fdtab_register(enum fd_kind kind, const struct fdtab_ops *ops)
{
	kind_ops[kind] = ops;
}

/* The entry of fd, about to be used (NULL when untracked). */
static struct fd_entry *claim(int fd)
{
	if (fd < 0 || fd >= FDTAB_SIZE)
		return NULL;
	int seen = __atomic_load_n(&high_water, __ATOMIC_RELAXED);
	while (fd > seen &&
	       !__atomic_compare_exchange_n(&high_water, &seen, fd, true,
	                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return &table[fd];
}

static bool in_use(const struct fd_entry *e)
{
	return __atomic_load_n(&e->kind, __ATOMIC_RELAXED) != FD_NONE ||
	       __atomic_load_n(&e->cls, __ATOMIC_RELAXED) != FD_CLASS_UNKNOWN;
}

const struct fd_entry *fdtab_lookup(int fd)
{
	if (fd < 0 || fd >= FDTAB_SIZE || !in_use(&table[fd]))
		return NULL;
	return &table[fd];
}

/* Empties an entry, giving its payload back to the kind's owner. */
static void drop(int fd, struct fd_entry *e)
{
	pthread_mutex_lock(&payload_lock);
	uint8_t kind = e->kind;
	void *payload = e->payload;
	__atomic_store_n(&e->kind, FD_NONE, __ATOMIC_RELEASE);
	memset(e, 0, sizeof(*e));
	pthread_mutex_unlock(&payload_lock);
	if (payload && kind_ops[kind] && kind_ops[kind]->release)
		kind_ops[kind]->release(fd, payload);
}

/* Empties the state of an entry but keeps the socket's class. */
static void reset_state(int fd, struct fd_entry *e)
{
	uint8_t cls = e->cls, family = e->family, born = e->born, bound = e->bound;
	drop(fd, e);
	e->family = family;
	e->born = born;
	e->bound = bound;
	__atomic_store_n(&e->cls, cls, __ATOMIC_RELEASE);
}

/* The class of a socket with this domain, type and protocol. */
static enum fd_class class_of(int domain, int type, int protocol)
{
	if (domain != AF_INET && domain != AF_INET6)
		return FD_CLASS_OTHER;
	if (type == SOCK_STREAM)
		return FD_CLASS_TCP;
	if (type == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP))
		return FD_CLASS_UDP;
	if (type == SOCK_DGRAM || type == SOCK_RAW)
		return FD_CLASS_DGRAM_OTHER;
	return FD_CLASS_OTHER;
}

static int sockopt_int(int fd, int name)
{
	int v = 0;
	socklen_t len = sizeof(v);
	return real_getsockopt(fd, SOL_SOCKET, name, &v, &len) < 0 ? -1 : v;
}

/* The class the kernel reports; UNKNOWN when it cannot tell (not a socket,
 * or a closed descriptor: nothing to cache). */
static enum fd_class ask_class(int fd, int *family)
{
	int type = sockopt_int(fd, SO_TYPE);
	if (type < 0)
		return FD_CLASS_UNKNOWN;
	if (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_RAW)
		return FD_CLASS_OTHER;
	*family = sockopt_int(fd, SO_DOMAIN);
	if (*family != AF_INET && *family != AF_INET6)
		return FD_CLASS_OTHER;
	int protocol = type == SOCK_DGRAM ? sockopt_int(fd, SO_PROTOCOL) : 0;
	return class_of(*family, type, protocol);
}

enum fd_class fdtab_class(int fd, int *family)
{
	struct fd_entry *e = fd >= 0 && fd < FDTAB_SIZE ? &table[fd] : NULL;
	uint8_t cls = e ? __atomic_load_n(&e->cls, __ATOMIC_ACQUIRE) : 0;
	if (cls != FD_CLASS_UNKNOWN) {
		*family = e->family;
		return (enum fd_class)cls;
	}
	int fam = 0;
	enum fd_class c = ask_class(fd, &fam);
	*family = fam;
	if (c != FD_CLASS_UNKNOWN && (e = claim(fd))) {
		e->family = (uint8_t)fam;
		__atomic_store_n(&e->cls, (uint8_t)c, __ATOMIC_RELEASE);
	}
	return c;
}

void fdtab_new_socket(int fd, int domain, int type, int protocol)
{
	struct fd_entry *e = fd >= 0 && fd < FDTAB_SIZE ? &table[fd] : NULL;
	if (!e)
		return;
	if (in_use(e))
		drop(fd, e);
	if (domain < 0 || !claim(fd))
		return;
	enum fd_class c =
	        class_of(domain, type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC), protocol);
	e->family = c == FD_CLASS_OTHER ? 0 : (uint8_t)domain;
	e->born = 1;
	__atomic_store_n(&e->cls, (uint8_t)c, __ATOMIC_RELEASE);
}

/* The entry of fd for new TCP state: a payload it held (a background
 * handshake's) is given back first. */
static struct fd_entry *claim_tcp(int fd)
{
	struct fd_entry *e = claim(fd);
	if (e && e->payload)
		reset_state(fd, e);
	return e;
}

void fdtab_set_proxied(int fd, const struct sockaddr *peer, socklen_t len)
{
	struct fd_entry *e = claim_tcp(fd);
	if (!e)
		return;
	e->peer_len = len < sizeof(e->peer) ? len : sizeof(e->peer);
	memcpy(&e->peer, peer, e->peer_len);
	e->seq = __atomic_add_fetch(&proxied_seq, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&e->kind, FD_TCP_PROXIED, __ATOMIC_RELEASE);
}

void fdtab_set_bound(int fd)
{
	struct fd_entry *e = claim(fd);
	if (e)
		e->bound = 1;
}

void fdtab_set_local(int fd, const struct sockaddr *local, socklen_t len)
{
	struct fd_entry *e = fd >= 0 && fd < FDTAB_SIZE ? &table[fd] : NULL;
	if (!e || e->kind != FD_TCP_PROXIED || len > sizeof(e->local))
		return;
	memcpy(&e->local, local, len);
	e->local_len = len;
}

int fdtab_newest(enum fd_kind kind,
                 bool (*match)(int fd, const struct fd_entry *e, const void *ctx),
                 const void *ctx)
{
	int high = __atomic_load_n(&high_water, __ATOMIC_RELAXED), best = -1;
	unsigned best_seq = 0;
	for (int fd = 0; fd <= high; fd++) {
		const struct fd_entry *e = &table[fd];
		if (fdtab_kind(e) == (int)kind && (best < 0 || e->seq > best_seq) &&
		    match(fd, e, ctx)) {
			best = fd;
			best_seq = e->seq;
		}
	}
	return best;
}

void fdtab_set_failed(int fd, int err, bool pending)
{
	struct fd_entry *e = claim_tcp(fd);
	if (!e)
		return;
	e->failed = err;
	e->error = pending ? err : 0;
	__atomic_store_n(&e->kind, FD_TCP_FAILED, __ATOMIC_RELEASE);
}

int fdtab_take_error(int fd)
{
	struct fd_entry *e = (struct fd_entry *)fdtab_lookup(fd);
	if (!e || e->kind != FD_TCP_FAILED)
		return 0;
	int err = e->error;
	e->error = 0;
	return err;
}

int fdtab_connect_again(int fd)
{
	struct fd_entry *e = (struct fd_entry *)fdtab_lookup(fd);
	if (!e || e->kind == FD_TCP_PROXIED)
		return EISCONN;
	int err = e->error ? e->error : e->failed;
	e->error = 0;
	return err;
}

bool fdtab_set_payload(int fd, enum fd_kind kind, void *payload)
{
	struct fd_entry *e = claim(fd);
	if (!e)
		return false;
	if (e->kind != FD_NONE)
		reset_state(fd, e);
	pthread_mutex_lock(&payload_lock);
	e->payload = payload;
	__atomic_store_n(&e->kind, (uint8_t)kind, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&payload_lock);
	return true;
}

void *fdtab_hold(int fd, enum fd_kind kind)
{
	if (fd < 0 || fd >= FDTAB_SIZE)
		return NULL;
	void *p = NULL;
	pthread_mutex_lock(&payload_lock);
	if (table[fd].kind == kind && table[fd].payload) {
		p = table[fd].payload;
		kind_ops[kind]->hold(p);
	}
	pthread_mutex_unlock(&payload_lock);
	return p;
}

void fdtab_unset(int fd, enum fd_kind kind, const void *payload)
{
	if (fd < 0 || fd >= FDTAB_SIZE)
		return;
	struct fd_entry *e = &table[fd];
	pthread_mutex_lock(&payload_lock);
	if (e->kind == kind && e->payload == payload) {
		e->payload = NULL;
		__atomic_store_n(&e->kind, FD_NONE, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&payload_lock);
}

void fdtab_clear(int fd)
{
	struct fd_entry *e = (struct fd_entry *)fdtab_lookup(fd);
	if (e)
		drop(fd, e);
}

/* Clips [first, last] to the entries ever used; false when none is left. */
static bool clip(unsigned first, unsigned *last)
{
	int high = __atomic_load_n(&high_water, __ATOMIC_RELAXED);
	if (high < 0 || first > (unsigned)high)
		return false;
	if (*last > (unsigned)high)
		*last = (unsigned)high;
	return true;
}

void fdtab_clear_range(unsigned first, unsigned last)
{
	if (!clip(first, &last))
		return;
	for (unsigned fd = first; fd <= last; fd++)
		if (in_use(&table[fd]))
			drop((int)fd, &table[fd]);
}

void fdtab_clear_range_of(unsigned first, unsigned last, enum fd_kind kind)
{
	if (!clip(first, &last))
		return;
	for (unsigned fd = first; fd <= last; fd++)
		if (table[fd].kind == kind)
			drop((int)fd, &table[fd]);
}

void fdtab_copy(int fd, int fd2)
{
	if (fd == fd2 || fd2 < 0 || fd2 >= FDTAB_SIZE)
		return;
	struct fd_entry *dst = &table[fd2];
	const struct fd_entry *src = fdtab_lookup(fd);
	if (in_use(dst))
		drop(fd2, dst);
	if (!src || !claim(fd2))
		return;
	pthread_mutex_lock(&payload_lock);
	const struct fdtab_ops *ops = kind_ops[src->kind];
	if (!src->payload || (ops && ops->copy)) {
		if (src->payload)
			ops->copy(fd2, src->payload);
		*dst = *src;
	} else {
		/* a payload that is not copied: the copy is a plain descriptor */
		dst->family = src->family;
		dst->born = src->born;
		__atomic_store_n(&dst->cls, src->cls, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&payload_lock);
}

void fdtab_for_each(enum fd_kind kind, void (*fn)(int fd, void *payload))
{
	int high = __atomic_load_n(&high_water, __ATOMIC_RELAXED);
	for (int fd = 0; fd <= high; fd++)
		if (table[fd].kind == kind)
			fn(fd, table[fd].payload);
}

void fdtab_atfork_child(void)
{
	pthread_mutex_init(&payload_lock, NULL);
}
