/* SPDX-License-Identifier: MIT */
/*
 * The executable probe (see exeprobe.h): the ELF header, then the program
 * headers (PT_INTERP, PT_NOTE, the first data segment), then, for a Go
 * program not recognised by then, the section headers and their names.
 *
 * Fields are read at their offsets in the System V gABI layout of the file's
 * class, in the file's byte order, never by overlaying <elf.h> structs, so
 * one code path serves ELF32 and ELF64 alike. Everything read from the file
 * is untrusted: read_at() refuses any range that is not wholly inside the
 * file, sizes are compared with what is left instead of added to offsets,
 * and every walk has a fixed bound.
 */
#include "exeprobe.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The Go build-ID note's type (cmd/link: ELF_NOTE_GOBUILDID_TAG). */
#define NT_GO_BUILDID 4
/* What Go's linker puts at the start of .go.buildinfo (debug/buildinfo). */
static const char go_buildinfo_magic[14] = "\xff Go buildinf:";

/* Notes looked at in one file, over all its PT_NOTE segments and SHT_NOTE
 * sections (which may all describe the same bytes). */
#define MAX_NOTES 256
/* Section headers looked at; more than that (a hostile count) are ignored. */
#define MAX_SECTIONS 65536
/* Bytes of section headers read at once, and of the section-name table kept. */
#define CHUNK  2048
#define STRTAB 1024

/* Where the fields this file reads lie, for one ELF class (System V gABI). */
struct layout {
	uint8_t word; /* bytes of an address, offset or size: 4 or 8 */
	uint8_t ehsize, e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum,
	        e_shstrndx;
	uint8_t phentsize, p_flags, p_offset, p_filesz, p_align;
	uint8_t shentsize, sh_type, sh_offset, sh_size, sh_link, sh_addralign;
};

static const struct layout elf32 = {
        .word = 4,
        .ehsize = 52,
        .e_phoff = 28,
        .e_shoff = 32,
        .e_phentsize = 42,
        .e_phnum = 44,
        .e_shentsize = 46,
        .e_shnum = 48,
        .e_shstrndx = 50,
        .phentsize = 32,
        .p_flags = 24,
        .p_offset = 4,
        .p_filesz = 16,
        .p_align = 28,
        .shentsize = 40,
        .sh_type = 4,
        .sh_offset = 16,
        .sh_size = 20,
        .sh_link = 24,
        .sh_addralign = 32,
};

static const struct layout elf64 = {
        .word = 8,
        .ehsize = 64,
        .e_phoff = 32,
        .e_shoff = 40,
        .e_phentsize = 54,
        .e_phnum = 56,
        .e_shentsize = 58,
        .e_shnum = 60,
        .e_shstrndx = 62,
        .phentsize = 56,
        .p_flags = 4,
        .p_offset = 8,
        .p_filesz = 32,
        .p_align = 48,
        .shentsize = 64,
        .sh_type = 4,
        .sh_offset = 24,
        .sh_size = 32,
        .sh_link = 40,
        .sh_addralign = 48,
};

/* The file being probed, and what its ELF header says. */
struct elf {
	int fd;
	uint64_t size; /* no read goes past it */
	bool big;      /* ELFDATA2MSB */
	const struct layout *l;
	uint64_t phoff, shoff;
	uint32_t phnum, shnum, shstrndx;
	bool shentsize_ok;
	unsigned notes_left;                                 /* of MAX_NOTES */
	uint64_t notes_off[4], notes_end[4], notes_align[4]; /* notes looked at */
	unsigned notes_seen;
	struct block *cache;
};

/* One block of the file as read last: the ELF header, the program headers and
 * their notes lie in the first; a block read near the end starts BLOCK bytes
 * before it, so that the section headers and their name table, which the
 * linkers put last, come in one read too. */
#define BLOCK 4096
struct block {
	uint64_t off;
	size_t len;
	uint8_t bytes[BLOCK];
};

/* pread() of exactly len bytes at off: 1, -errno, -EIO at an early end. */
static int pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += (size_t)n;
	}
	return 1;
}

/*
 * Reads exactly len bytes at off. 1 when they were read, 0 when the range is
 * not wholly inside the file, -errno when a read fails; -EIO when the file
 * turns out shorter than fstat() said (it shrank while we read it).
 */
static int read_at(const struct elf *e, void *buf, size_t len, uint64_t off)
{
	struct block *b = e->cache;

	if (off > e->size || len > e->size - off)
		return 0;
	if (len > BLOCK)
		return pread_exact(e->fd, buf, len, off);
	if (off < b->off || off + len > b->off + b->len) {
		uint64_t start =
		        e->size - off < BLOCK && e->size > BLOCK ? e->size - BLOCK : off;
		size_t n = e->size - start < BLOCK ? (size_t)(e->size - start) : BLOCK;
		b->len = 0;
		int r = pread_exact(e->fd, b->bytes, n, start);
		if (r <= 0)
			return r;
		b->off = start;
		b->len = n;
	}
	memcpy(buf, b->bytes + (off - b->off), len);
	return 1;
}

/* An unsigned field of width bytes at p, in the file's byte order. */
static uint64_t get(const struct elf *e, const uint8_t *p, unsigned width)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < width; i++)
		v |= (uint64_t)p[e->big ? width - 1 - i : i] << (8 * i);
	return v;
}

/* An address, offset or size: 4 or 8 bytes by the class. */
static uint64_t word(const struct elf *e, const uint8_t *p)
{
	return get(e, p, e->l->word);
}

/* x rounded up to align (4 or 8); x is at most 2^33, so this cannot wrap. */
static uint64_t round_up(uint64_t x, uint64_t align)
{
	return (x + align - 1) & ~(align - 1);
}

/* --- notes ------------------------------------------------------------------------- */

/*
 * Is a Go build-ID note among the notes in [off, off + len)? Notes are padded
 * to 4 bytes, or to 8 where the segment or section is aligned to 8 (as GNU
 * property notes are). 1, 0 (also once the file's MAX_NOTES are spent), or
 * -errno.
 */
static int notes_have_go(struct elf *e, uint64_t off, uint64_t len, uint64_t align)
{
	uint8_t h[16];

	align = align == 8 ? 8 : 4;
	if (off > e->size)
		return 0;
	if (len > e->size - off)
		len = e->size - off;
	/* a note section is usually (part of) what a PT_NOTE segment showed
	 * already: the same notes read the same way, found without Go's */
	for (unsigned i = 0; i < e->notes_seen; i++)
		if (off >= e->notes_off[i] && off + len <= e->notes_end[i] &&
		    align == e->notes_align[i])
			return 0;
	if (e->notes_seen < sizeof(e->notes_off) / sizeof(e->notes_off[0])) {
		e->notes_off[e->notes_seen] = off;
		e->notes_align[e->notes_seen] = align;
		e->notes_end[e->notes_seen++] = off + len;
	}
	while (len >= 16 && e->notes_left > 0) {
		e->notes_left--;
		int r = read_at(e, h, sizeof(h), off);
		if (r <= 0)
			return r;
		uint64_t namesz = get(e, h, 4), descsz = get(e, h + 4, 4);
		if (namesz == 4 && get(e, h + 8, 4) == NT_GO_BUILDID &&
		    memcmp(h + 12, "Go\0\0", 4) == 0)
			return 1;
		uint64_t desc = round_up(12 + namesz, align);
		uint64_t next = round_up(desc + descsz, align);
		if (next >= len)
			return 0;
		off += next;
		len -= next;
	}
	return 0;
}

/* --- the ELF header ---------------------------------------------------------------- */

/*
 * Reads the ELF header into *e and sets out->elf. 1 when the file is an ELF
 * executable whose program headers are worth reading (the kernel's own
 * checks: the entry size of the class, 1 to 64 KiB / entsize of them, all in
 * the file), 0 when not, -errno.
 */
static int header_read(struct elf *e, struct exe_probe *out)
{
	uint8_t h[64];
	size_t n = e->size < sizeof(h) ? (size_t)e->size : sizeof(h);
	int r = read_at(e, h, n, 0);

	if (r <= 0 || n < SELFMAG || memcmp(h, ELFMAG, SELFMAG) != 0)
		return r < 0 ? r : 0;
	out->elf = true;
	if (n <= EI_DATA || (h[EI_CLASS] != ELFCLASS32 && h[EI_CLASS] != ELFCLASS64) ||
	    (h[EI_DATA] != ELFDATA2LSB && h[EI_DATA] != ELFDATA2MSB))
		return 0;
	e->l = h[EI_CLASS] == ELFCLASS64 ? &elf64 : &elf32;
	e->big = h[EI_DATA] == ELFDATA2MSB;
	const struct layout *l = e->l;
	if (n < l->ehsize)
		return 0;
	uint64_t type = get(e, h + 16, 2);
	e->phoff = word(e, h + l->e_phoff);
	e->phnum = (uint32_t)get(e, h + l->e_phnum, 2);
	e->shoff = word(e, h + l->e_shoff);
	e->shnum = (uint32_t)get(e, h + l->e_shnum, 2);
	e->shstrndx = (uint32_t)get(e, h + l->e_shstrndx, 2);
	e->shentsize_ok = get(e, h + l->e_shentsize, 2) == l->shentsize;
	if ((type != ET_EXEC && type != ET_DYN) ||
	    get(e, h + l->e_phentsize, 2) != l->phentsize || e->phnum == 0 ||
	    e->phnum > 65536 / l->phentsize)
		return 0;
	if (e->phoff > e->size || (uint64_t)e->phnum * l->phentsize > e->size - e->phoff)
		return 0;
	return 1;
}

/* --- tables of headers ------------------------------------------------------------- */

/*
 * Calls visit on each of the n entries (entsize bytes each) of the table at
 * off, which the caller has checked lies in the file, reading CHUNK bytes at a
 * time. Stops at the first non-zero answer of visit and returns it; 0 at the
 * end; -errno.
 */
static int table_walk(struct elf *e, uint64_t off, uint32_t n, unsigned entsize,
                      int (*visit)(struct elf *e, const uint8_t *ent, void *ctx),
                      void *ctx)
{
	uint8_t buf[CHUNK];
	uint32_t per = CHUNK / entsize;

	for (uint32_t i = 0; i < n; i += per) {
		uint32_t count = n - i < per ? n - i : per;
		int r = read_at(e, buf, (size_t)count * entsize,
		                off + (uint64_t)i * entsize);
		if (r <= 0)
			return r < 0 ? r : 0;
		for (uint32_t k = 0; k < count; k++) {
			r = visit(e, buf + (size_t)k * entsize, ctx);
			if (r != 0)
				return r;
		}
	}
	return 0;
}

/* What the program headers showed. */
struct phdr_scan {
	bool interp, go, data_seen;
	uint64_t data_off, data_len; /* the first writable, non-executable PT_LOAD */
};

static int phdr_visit(struct elf *e, const uint8_t *p, void *ctx)
{
	struct phdr_scan *s = ctx;
	const struct layout *l = e->l;
	uint64_t type = get(e, p, 4), flags = get(e, p + l->p_flags, 4);
	uint64_t off = word(e, p + l->p_offset), filesz = word(e, p + l->p_filesz);

	if (type == PT_INTERP) {
		s->interp = true;
	} else if (type == PT_NOTE && !s->go) {
		int r = notes_have_go(e, off, filesz, word(e, p + l->p_align));
		if (r < 0)
			return r;
		s->go = r == 1;
	} else if (type == PT_LOAD && !s->data_seen && (flags & (PF_X | PF_W)) == PF_W) {
		s->data_seen = true;
		s->data_off = off;
		s->data_len = filesz;
	}
	return 0;
}

/* Does the data segment start with Go's build-info magic? 1, 0, -errno. */
static int data_has_go(const struct elf *e, const struct phdr_scan *s)
{
	char magic[sizeof(go_buildinfo_magic)];

	if (!s->data_seen || s->data_len < sizeof(magic))
		return 0;
	int r = read_at(e, magic, sizeof(magic), s->data_off);
	if (r <= 0)
		return r;
	return memcmp(magic, go_buildinfo_magic, sizeof(magic)) == 0;
}

/* --- sections ---------------------------------------------------------------------- */

/* The section-name table: where it lies, and its first STRTAB bytes. */
struct strtab {
	uint64_t off, size;
	size_t cached;
	char buf[STRTAB];
};

/* Is the name at offset name in the table one of Go's sections? 1, 0, -errno. */
static int name_is_go(const struct elf *e, const struct strtab *t, uint64_t name)
{
	static const char *const names[] = {".go.buildinfo", ".note.go.buildid"};
	char buf[sizeof(".note.go.buildid")];

	if (name >= t->size)
		return 0;
	size_t n = t->size - name < sizeof(buf) ? (size_t)(t->size - name) : sizeof(buf);
	if (name + n <= t->cached) {
		memcpy(buf, t->buf + name, n);
	} else {
		int r = read_at(e, buf, n, t->off + name);
		if (r <= 0)
			return r;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t len = strlen(names[i]) + 1;
		if (n >= len && memcmp(buf, names[i], len) == 0)
			return 1;
	}
	return 0;
}

static int shdr_visit(struct elf *e, const uint8_t *p, void *ctx)
{
	const struct strtab *t = ctx;
	const struct layout *l = e->l;
	uint64_t type = get(e, p + l->sh_type, 4);
	int r = 0;

	if (type == SHT_NOTE)
		r = notes_have_go(e, word(e, p + l->sh_offset), word(e, p + l->sh_size),
		                  word(e, p + l->sh_addralign));
	if (r == 0 && t->size > 0)
		r = name_is_go(e, t, get(e, p, 4));
	return r;
}

/*
 * Reads section header i (of the table checked by sections_have_go) into
 * sh, which has room for one of the class's size. 1, 0, -errno.
 */
static int shdr_read(const struct elf *e, uint32_t i, uint8_t *sh)
{
	return read_at(e, sh, e->l->shentsize, e->shoff + (uint64_t)i * e->l->shentsize);
}

/*
 * The sections: an SHT_NOTE section with the Go note, or one of Go's section
 * names. Handles the extended numbering of files with 0xff00 sections or
 * more (the count in section 0's sh_size, the name table's index in its
 * sh_link). 1, 0, -errno.
 */
static int sections_have_go(struct elf *e)
{
	const struct layout *l = e->l;
	struct strtab t = {0};
	uint8_t sh[64];
	uint64_t n = e->shnum;
	int r;

	if (e->shoff == 0 || !e->shentsize_ok)
		return 0;
	if (n == 0 || e->shstrndx == SHN_XINDEX) {
		if ((r = read_at(e, sh, l->shentsize, e->shoff)) <= 0)
			return r;
		n = n ? n : word(e, sh + l->sh_size);
		if (e->shstrndx == SHN_XINDEX)
			e->shstrndx = (uint32_t)get(e, sh + l->sh_link, 4);
	}
	if (n > MAX_SECTIONS)
		n = MAX_SECTIONS;
	if (e->shoff > e->size || n * l->shentsize > e->size - e->shoff)
		return 0;
	e->shnum = (uint32_t)n;
	if (e->shstrndx < e->shnum && (r = shdr_read(e, e->shstrndx, sh)) != 0) {
		if (r < 0)
			return r;
		t.off = word(e, sh + l->sh_offset);
		t.size = word(e, sh + l->sh_size);
		if (t.off > e->size || t.size > e->size - t.off)
			t.size = 0;
		t.cached = t.size < STRTAB ? (size_t)t.size : STRTAB;
		if ((r = read_at(e, t.buf, t.cached, t.off)) < 0)
			return r;
	}
	return table_walk(e, e->shoff, e->shnum, l->shentsize, shdr_visit, &t);
}

/* --- the probe --------------------------------------------------------------------- */

static int elf_probe(struct elf *e, struct exe_probe *out)
{
	struct phdr_scan s = {0};
	int r = header_read(e, out);

	if (r <= 0)
		return r;
	r = table_walk(e, e->phoff, e->phnum, e->l->phentsize, phdr_visit, &s);
	if (r < 0)
		return r;
	out->is_static = !s.interp;
	out->go = s.go;
	if (!out->go && (r = data_has_go(e, &s)) != 0)
		out->go = r == 1;
	if (!out->go && r >= 0 && (r = sections_have_go(e)) != 0)
		out->go = r == 1;
	return r < 0 ? r : 0;
}

int exe_probe_fd(int fd, struct exe_probe *out)
{
	int saved = errno, r = 0;
	struct stat st;

	memset(out, 0, sizeof(*out));
	if (fstat(fd, &st) < 0) {
		r = -errno;
	} else if (S_ISREG(st.st_mode)) {
		out->setid = (st.st_mode & S_ISUID) ||
		             (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP);
		struct block cache;
		struct elf e = {.fd = fd,
		                .size = (uint64_t)st.st_size,
		                .notes_left = MAX_NOTES,
		                .cache = &cache};
		cache.off = 0;
		cache.len = 0;
		r = elf_probe(&e, out);
	}
	errno = saved;
	return r;
}

int exe_probe_path(const char *path, struct exe_probe *out)
{
	int saved = errno;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int r = -errno;
		memset(out, 0, sizeof(*out));
		errno = saved;
		return r;
	}
	int r = exe_probe_fd(fd, out);
	close(fd);
	errno = saved;
	return r;
}
