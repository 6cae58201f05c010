/* SPDX-License-Identifier: MIT */
/*
 * The per-descriptor table (see fdtab.h).
 */
#include "fdtab.h"

#include <string.h>

#include "udp.h"

static struct fd_entry table[FDTAB_SIZE];
/* Above this no entry was ever used: bounds the close_range() sweep. */
static int high_water = -1;

/* Marks an entry as about to be used. */
static void note_used(int fd)
{
	int seen = __atomic_load_n(&high_water, __ATOMIC_RELAXED);
	while (fd > seen &&
	       !__atomic_compare_exchange_n(&high_water, &seen, fd, true,
	                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

struct fd_entry *fdtab_claim(int fd)
{
	struct fd_entry *e = fdtab_get(fd);
	if (e)
		note_used(fd);
	return e;
}

struct fd_entry *fdtab_get(int fd)
{
	return fd >= 0 && fd < FDTAB_SIZE ? &table[fd] : NULL;
}

struct fd_entry *fdtab_lookup(int fd)
{
	if (fd < 0 || fd >= FDTAB_SIZE ||
	    __atomic_load_n(&table[fd].kind, __ATOMIC_RELAXED) == FD_NONE)
		return NULL;
	return &table[fd];
}

/* Empties an entry, dropping its reference to a UDP association. */
static void drop(struct fd_entry *e)
{
	if (e->kind == FD_UDP) {
		udp_entry_drop(e);
		return;
	}
	__atomic_store_n(&e->kind, FD_NONE, __ATOMIC_RELEASE);
	memset(e, 0, sizeof(*e));
}

void fdtab_clear(int fd)
{
	struct fd_entry *e = fdtab_lookup(fd);
	if (e)
		drop(e);
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
		if (table[fd].kind != FD_NONE)
			drop(&table[fd]);
}

void fdtab_copy(int fd, int fd2)
{
	struct fd_entry *dst = fdtab_get(fd2);
	if (!dst || fd == fd2)
		return;
	struct fd_entry *src = fdtab_lookup(fd);
	if (dst->kind != FD_NONE)
		drop(dst);
	if (src && src->kind != FD_UDP_CONTROL) {
		note_used(fd2);
		if (src->kind == FD_UDP)
			udp_entry_copy(src, dst);
		else
			*dst = *src;
	}
}

void fdtab_forget_controls(unsigned first, unsigned last)
{
	if (!clip(first, &last))
		return;
	for (unsigned fd = first; fd <= last; fd++)
		if (table[fd].kind == FD_UDP_CONTROL)
			udp_control_lost((int)fd);
}

void fdtab_for_each_udp(void (*fn)(struct udp_assoc *a))
{
	int high = __atomic_load_n(&high_water, __ATOMIC_RELAXED);
	for (int fd = 0; fd <= high; fd++)
		if (table[fd].kind == FD_UDP)
			fn(table[fd].udp);
}
