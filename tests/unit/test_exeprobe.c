/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the executable probe (shim/common/exeprobe.c), printed as TAP.
 *
 * Real files: this test itself (a dynamic C program), a static C program and,
 * where go is installed, one Go program built static (CGO_ENABLED=0) and
 * dynamic (CGO_ENABLED=1, its resolver links libc); meson passes their paths
 * in $EXEPROBE_STATIC_C, $EXEPROBE_GO_STATIC and $EXEPROBE_GO_DYNAMIC (empty
 * when there is none, and the check is skipped, saying why). Then scripts,
 * empty and special files, set-ID bits, and small ELF files made here, 32- and
 * 64-bit in both byte orders, one for each way the probe recognises a static
 * or a Go program.
 *
 * Every pread() of the probe goes through this file's pread()/pread64(),
 * which count the reads that reach outside the file: there must be none, on
 * the files above, on every truncation of them and on thousands of corrupted
 * copies (each byte set to edge values, each field to edge numbers, random
 * flips), none of which may crash or fail either.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exeprobe.h"
#include "tap.h"

/* --- every read of the probe ------------------------------------------------------- */

static unsigned long reads, bad_reads, max_reads;

/* A read of [off, off + n) must lie inside the file. */
static ssize_t checked_pread(const char *name, int fd, void *buf, size_t n, uint64_t off)
{
	static ssize_t (*next)(int, void *, size_t, off_t);
	struct stat st;

	if (!next)
		*(void **)&next = dlsym(RTLD_NEXT, name);
	reads++;
	if (fstat(fd, &st) == 0 &&
	    (off > (uint64_t)st.st_size || n > (uint64_t)st.st_size - off)) {
		if (bad_reads++ == 0)
			tap_diag("first read outside the file: %zu bytes at %llu of %lld",
			         n, (unsigned long long)off, (long long)st.st_size);
	}
	return next(fd, buf, n, (off_t)off);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return checked_pread("pread", fd, buf, n, (uint64_t)off);
}

ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	return checked_pread("pread64", fd, buf, n, (uint64_t)off);
}

/* --- probing ----------------------------------------------------------------------- */

static char tmpdir[64];
static int memfd = -1;

/* Probes fd; counts its reads. */
static int probe(int fd, struct exe_probe *p)
{
	unsigned long before = reads;
	int r = exe_probe_fd(fd, p);

	if (reads - before > max_reads)
		max_reads = reads - before;
	return r;
}

static bool same(const struct exe_probe *p, bool elf, bool is_static, bool go, bool setid)
{
	return p->elf == elf && p->is_static == is_static && p->go == go &&
	       p->setid == setid;
}

static void show(const struct exe_probe *p, int r)
{
	tap_diag("got %d: elf %d, static %d, go %d, setid %d", r, p->elf, p->is_static,
	         p->go, p->setid);
}

/* path probes to exactly the four answers. */
static void expect_path(const char *what, const char *path, bool elf, bool is_static,
                        bool go, bool setid)
{
	struct exe_probe p;
	unsigned long bad = bad_reads;
	int r = exe_probe_path(path, &p);

	if (!tap_ok(r == 0 && same(&p, elf, is_static, go, setid) && bad_reads == bad,
	            "%s: elf %d, static %d, go %d, setid %d", what, elf, is_static, go,
	            setid))
		show(&p, r);
}

/* The contents of path, in a malloc'd buffer (NULL when unreadable). */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t *buf = NULL;

	if (fd >= 0 && fstat(fd, &st) == 0 && (buf = malloc((size_t)st.st_size + 1))) {
		*len = (size_t)st.st_size;
		for (size_t got = 0; got < *len;) {
			ssize_t n = read(fd, buf + got, *len - got);
			if (n <= 0) {
				free(buf);
				buf = NULL;
				break;
			}
			got += (size_t)n;
		}
	}
	if (fd >= 0)
		close(fd);
	return buf;
}

/* The memfd holds exactly data[0..len). */
static void memfd_fill(const uint8_t *data, size_t len)
{
	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, len, 0) != (ssize_t)len)
		abort();
}

static const char *tmp_path(const char *name)
{
	static char path[128];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static const char *tmp_file(const char *name, const char *text, mode_t mode)
{
	const char *path = tmp_path(name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fchmod(fd, mode) < 0)
		abort();
	close(fd);
	return path;
}

/* --- small ELF files made here ----------------------------------------------------- */

enum {
	PH_AT = 64,
	INTERP_AT = 480,
	NOTE_AT = 512,
	DATA_AT = 640,
	STR_AT = 704,
	SH_AT = 832,
	IMG_MAX = 2048
};

static const char strtab[] =
        "\0.shstrtab\0.data\0.go.buildinfo\0.note.x\0.note.go.buildid";

struct img {
	uint8_t b[IMG_MAX];
	size_t len;
	bool is64, big;
};

/* What one made-up file has. */
struct synth {
	const char *what;
	unsigned type;         /* ET_EXEC, ET_DYN or ET_REL */
	bool interp;           /* a PT_INTERP segment */
	bool pt_note;          /* a PT_NOTE segment over the notes */
	bool go_note;          /* the notes end with the Go build-ID note */
	unsigned go_type;      /* that note's type: 4, or a near miss */
	bool align8;           /* a first note whose padding differs at 8 */
	bool data_magic;       /* the data segment starts with Go's build-info magic */
	bool sections;         /* a section header table */
	bool extended;         /* its count and name index in section 0 */
	const char *data_name; /* the data section: .data or .go.buildinfo */
	const char *note_name; /* the note section: .note.x or .note.go.buildid */
	bool want_static, want_go;
};

static void put(struct img *m, size_t at, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		m->b[at + (m->big ? width - 1 - i : i)] = (uint8_t)(v >> (8 * i));
}

static void put_word(struct img *m, size_t at, uint64_t v)
{
	put(m, at, m->is64 ? 8 : 4, v);
}

static uint32_t name_at(const char *name)
{
	for (uint32_t i = 1; i < sizeof(strtab); i += (uint32_t)strlen(strtab + i) + 1)
		if (strcmp(strtab + i, name) == 0)
			return i;
	abort();
}

static void phdr(struct img *m, unsigned i, uint32_t type, uint32_t flags, uint64_t off,
                 uint64_t len, uint64_t align)
{
	size_t at = PH_AT + i * (m->is64 ? 56 : 32);

	put(m, at, 4, type);
	put(m, at + (m->is64 ? 4 : 24), 4, flags);
	put_word(m, at + (m->is64 ? 8 : 4), off);
	put_word(m, at + (m->is64 ? 16 : 8), 0x400000 + off);
	put_word(m, at + (m->is64 ? 32 : 16), len);
	put_word(m, at + (m->is64 ? 40 : 20), len);
	put_word(m, at + (m->is64 ? 48 : 28), align);
}

static void shdr(struct img *m, unsigned i, uint32_t name, uint32_t type, uint64_t off,
                 uint64_t len, uint32_t link, uint64_t align)
{
	size_t at = SH_AT + i * (m->is64 ? 64 : 40);

	put(m, at, 4, name);
	put(m, at + 4, 4, type);
	put_word(m, at + (m->is64 ? 24 : 16), off);
	put_word(m, at + (m->is64 ? 32 : 20), len);
	put(m, at + (m->is64 ? 40 : 24), 4, link);
	put_word(m, at + (m->is64 ? 48 : 32), align);
}

/* One note at at: owner "GNU" or "Go", descsz bytes of 0xaa; returns its end. */
static size_t note(struct img *m, size_t at, const char *owner, uint32_t type,
                   uint32_t descsz, size_t align)
{
	put(m, at, 4, 4);
	put(m, at + 4, 4, descsz);
	put(m, at + 8, 4, type);
	memcpy(m->b + at + 12, owner, strlen(owner) + 1);
	size_t desc = (12 + 4 + align - 1) / align * align;
	memset(m->b + at + desc, 0xaa, descsz);
	return at + (desc + descsz + align - 1) / align * align;
}

/* The notes: optionally a first note of 12 bytes of description, then the Go
 * note or a GNU build ID. Returns their length. */
static size_t notes(struct img *m, const struct synth *o)
{
	size_t align = o->align8 ? 8 : 4, at = NOTE_AT;

	if (o->align8)
		at = note(m, at, "GNU", NT_GNU_PROPERTY_TYPE_0, 12, 8);
	if (o->go_note)
		at = note(m, at, "Go", o->go_type ? o->go_type : 4, 8, align);
	else
		at = note(m, at, "GNU", NT_GNU_BUILD_ID, 8, align);
	return at - NOTE_AT;
}

static void sections(struct img *m, const struct synth *o, size_t notes_len)
{
	unsigned shent = m->is64 ? 64 : 40;
	size_t shnum_at = m->is64 ? 60 : 48;

	put_word(m, m->is64 ? 40 : 32, SH_AT);
	put(m, m->is64 ? 58 : 46, 2, shent);
	put(m, shnum_at, 2, o->extended ? 0 : 4);
	put(m, shnum_at + 2, 2, o->extended ? SHN_XINDEX : 1);
	shdr(m, 0, 0, SHT_NULL, 0, o->extended ? 4 : 0, o->extended ? 1 : 0, 0);
	shdr(m, 1, name_at(".shstrtab"), SHT_STRTAB, STR_AT, sizeof(strtab), 0, 1);
	shdr(m, 2, name_at(o->data_name ? o->data_name : ".data"), SHT_PROGBITS, DATA_AT,
	     32, 0, 16);
	shdr(m, 3, name_at(o->note_name ? o->note_name : ".note.x"), SHT_NOTE, NOTE_AT,
	     notes_len, 0, o->align8 ? 8 : 4);
	memcpy(m->b + STR_AT, strtab, sizeof(strtab));
}

static void synth_build(struct img *m, const struct synth *o, bool is64, bool big)
{
	unsigned nph = 0;

	memset(m, 0, sizeof(*m));
	m->is64 = is64;
	m->big = big;
	memcpy(m->b, ELFMAG, SELFMAG);
	m->b[EI_CLASS] = is64 ? ELFCLASS64 : ELFCLASS32;
	m->b[EI_DATA] = big ? ELFDATA2MSB : ELFDATA2LSB;
	m->b[EI_VERSION] = EV_CURRENT;
	put(m, 16, 2, o->type);
	put(m, 18, 2, is64 ? EM_X86_64 : EM_386);
	put(m, 20, 4, EV_CURRENT);
	put(m, is64 ? 52 : 40, 2, is64 ? 64 : 52);
	size_t notes_len = notes(m, o);
	phdr(m, nph++, PT_LOAD, PF_R | PF_X, 0, 512, 0x1000);
	if (o->interp)
		phdr(m, nph++, PT_INTERP, PF_R, INTERP_AT, 11, 1);
	memcpy(m->b + INTERP_AT, "/lib/ld.so", 11);
	if (o->pt_note)
		phdr(m, nph++, PT_NOTE, PF_R, NOTE_AT, notes_len, o->align8 ? 8 : 4);
	phdr(m, nph++, PT_LOAD, PF_R | PF_W, DATA_AT, 32, 0x1000);
	memcpy(m->b + DATA_AT,
	       o->data_magic ? "\xff Go buildinf:\x08" : "plain data .....", 16);
	put_word(m, is64 ? 32 : 28, PH_AT);
	put(m, is64 ? 54 : 42, 2, is64 ? 56 : 32);
	put(m, is64 ? 56 : 44, 2, nph);
	if (o->sections)
		sections(m, o, notes_len);
	m->len = SH_AT + 4 * (is64 ? 64 : 40);
}

static const struct synth cases[] = {
        {"static, no Go", ET_EXEC, .pt_note = true, .sections = true,
         .want_static = true},
        {"dynamic (PT_INTERP)", ET_EXEC, .interp = true, .pt_note = true,
         .sections = true},
        {"static-pie (ET_DYN, no PT_INTERP)", ET_DYN, .sections = true,
         .want_static = true},
        {"a relocatable object", ET_REL, .pt_note = true, .sections = true},
        {"Go note in PT_NOTE, no sections", ET_EXEC, .pt_note = true, .go_note = true,
         .want_static = true, .want_go = true},
        {"Go note after a note padded to 8", ET_EXEC, .pt_note = true, .go_note = true,
         .align8 = true, .want_static = true, .want_go = true},
        {"Go note in an SHT_NOTE section only", ET_EXEC, .go_note = true,
         .sections = true, .want_static = true, .want_go = true},
        {"Go note in an SHT_NOTE section padded to 8", ET_EXEC, .go_note = true,
         .align8 = true, .sections = true, .want_static = true, .want_go = true},
        {"a .go.buildinfo section only", ET_EXEC, .sections = true,
         .data_name = ".go.buildinfo", .want_static = true, .want_go = true},
        {"a .note.go.buildid section name only", ET_EXEC, .sections = true,
         .note_name = ".note.go.buildid", .want_static = true, .want_go = true},
        {"build-info magic at the data segment only", ET_EXEC, .data_magic = true,
         .want_static = true, .want_go = true},
        {"extended section numbering, .go.buildinfo", ET_EXEC, .sections = true,
         .extended = true, .data_name = ".go.buildinfo", .want_static = true,
         .want_go = true},
        {"dynamic Go (PT_INTERP and the Go note)", ET_EXEC, .interp = true,
         .pt_note = true, .go_note = true, .want_go = true},
        {"a Go-owned note of type 3 is not Go", ET_EXEC, .pt_note = true, .go_note = true,
         .go_type = 3, .sections = true, .want_static = true},
        {"no notes, no sections", ET_EXEC, .want_static = true},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

static const char *const layouts[] = {"ELF64 LSB", "ELF64 MSB", "ELF32 LSB", "ELF32 MSB"};

static void test_synth(void)
{
	static struct img m;
	struct exe_probe p;

	for (unsigned k = 0; k < 4; k++) {
		for (size_t i = 0; i < NCASES; i++) {
			const struct synth *o = &cases[i];
			synth_build(&m, o, k < 2, k % 2 == 1);
			memfd_fill(m.b, m.len);
			unsigned long bad = bad_reads;
			int r = probe(memfd, &p);
			if (!tap_ok(r == 0 &&
			                    same(&p, true, o->want_static, o->want_go,
			                         false) &&
			                    bad_reads == bad,
			            "%s %s: static %d, go %d", layouts[k], o->what,
			            o->want_static, o->want_go))
				show(&p, r);
		}
	}
}

/* A PT_NOTE segment and an SHT_NOTE section over the same 1000 empty notes:
 * the probe looks at 256 notes in all, not 2000. */
static void test_note_budget(void)
{
	static const uint8_t zeros[12000];
	static struct img m;
	struct exe_probe p;

	synth_build(&m, &cases[0], true, false);
	phdr(&m, 1, PT_NOTE, PF_R, m.len, sizeof(zeros), 4);
	shdr(&m, 3, name_at(".note.x"), SHT_NOTE, m.len, sizeof(zeros), 0, 4);
	memfd_fill(m.b, m.len);
	if (pwrite(memfd, zeros, sizeof(zeros), (off_t)m.len) != sizeof(zeros))
		abort();
	unsigned long before = reads;
	int r = probe(memfd, &p);
	tap_ok(r == 0 && same(&p, true, true, false, false) && reads - before < 256 + 16,
	       "1000 empty notes twice: %lu reads", reads - before);
}

/* --- truncated and corrupted copies ------------------------------------------------ */

/* How a sweep went: the first failure is shown, the rest counted. */
struct sweep {
	unsigned long probes, failures, bad_before;
};

static void sweep_probe(struct sweep *s, const char *what, size_t at)
{
	struct exe_probe p;
	int r = probe(memfd, &p);

	s->probes++;
	if (r != 0 || (!p.elf && (p.is_static || p.go))) {
		if (s->failures++ == 0)
			tap_diag("%s at %zu: %d, elf %d, static %d, go %d", what, at, r,
			         p.elf, p.is_static, p.go);
	}
}

static void sweep_done(const struct sweep *s, const char *what)
{
	tap_ok(s->failures == 0 && bad_reads == s->bad_before,
	       "%s: %lu probes, no error, no read outside the file", what, s->probes);
}

/* Every byte of the image set to edge values, one at a time. */
static void sweep_bytes(struct img *m, const char *what)
{
	static const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff};
	struct sweep s = {.bad_before = bad_reads};

	memfd_fill(m->b, m->len);
	for (size_t at = 0; at < m->len; at++) {
		uint8_t orig = m->b[at];
		for (size_t v = 0; v <= sizeof(values); v++) {
			uint8_t b = v < sizeof(values) ? values[v] : orig ^ 0x04;
			if (pwrite(memfd, &b, 1, (off_t)at) != 1)
				abort();
			sweep_probe(&s, what, at);
		}
		if (pwrite(memfd, &orig, 1, (off_t)at) != 1)
			abort();
	}
	sweep_done(&s, what);
}

/* Every aligned 2-, 4- and 8-byte field of the headers set to edge numbers. */
static void sweep_fields(struct img *m, const char *what)
{
	const uint64_t size = m->len;
	const uint64_t values[] = {0,          1,          4,
	                           size - 1,   size,       size + 1,
	                           0x7fffffff, 0xffffffff, UINT64_MAX / 2,
	                           UINT64_MAX, 0xff00,     0xffff};
	struct sweep s = {.bad_before = bad_reads};
	static struct img copy;

	for (unsigned width = 2; width <= 8; width *= 2) {
		for (size_t at = 16; at + width <= m->len; at += width) {
			for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
				copy = *m;
				put(&copy, at, width, values[v]);
				if (pwrite(memfd, copy.b + at, width, (off_t)at) != width)
					abort();
				sweep_probe(&s, what, at);
			}
			if (pwrite(memfd, m->b + at, width, (off_t)at) != width)
				abort();
		}
	}
	sweep_done(&s, what);
}

/* The image cut at every length. */
static void sweep_lengths(struct img *m, const char *what)
{
	struct sweep s = {.bad_before = bad_reads};

	memfd_fill(m->b, m->len);
	for (size_t len = m->len + 1; len-- > 0;) {
		if (ftruncate(memfd, (off_t)len) < 0)
			abort();
		sweep_probe(&s, what, len);
	}
	sweep_done(&s, what);
}

static void test_corrupt(void)
{
	static struct img m;
	/* every path runs before the answer: a note padded to 8, no Go note in
	 * it, no magic, and only the last section's name says Go */
	static const struct synth rich = {"rich",
	                                  ET_EXEC,
	                                  .interp = true,
	                                  .pt_note = true,
	                                  .align8 = true,
	                                  .sections = true,
	                                  .note_name = ".note.go.buildid"};
	char what[96];

	for (unsigned k = 0; k < 4; k++) {
		synth_build(&m, &rich, k < 2, k % 2 == 1);
		snprintf(what, sizeof(what), "%s, each length", layouts[k]);
		sweep_lengths(&m, what);
		snprintf(what, sizeof(what), "%s, each byte at 7 values", layouts[k]);
		sweep_bytes(&m, what);
		snprintf(what, sizeof(what), "%s, each field at 12 numbers", layouts[k]);
		sweep_fields(&m, what);
	}
}

/* --- real programs ----------------------------------------------------------------- */

/* Where the program headers end, by the ELF64 LSB header of data (0 if not). */
static uint64_t phdrs_end(const uint8_t *data, size_t len)
{
	uint64_t phoff = 0;
	uint16_t phnum = 0, phentsize = 0;

	if (len < 64 || data[EI_CLASS] != ELFCLASS64 || data[EI_DATA] != ELFDATA2LSB)
		return 0;
	memcpy(&phoff, data + 32, 8);
	memcpy(&phentsize, data + 54, 2);
	memcpy(&phnum, data + 56, 2);
	return phoff + (uint64_t)phnum * phentsize;
}

/*
 * A real program cut at many lengths: every byte of the first 4 KiB and of the
 * last 4 KiB (where the section headers are), and 2000 lengths between. A
 * dynamic program never probes static; a static one does once its program
 * headers are whole.
 */
static void truncate_real(const char *what, const uint8_t *data, size_t len,
                          bool is_static)
{
	struct sweep s = {.bad_before = bad_reads};
	uint64_t whole = phdrs_end(data, len);
	size_t stride = len / 2000 + 1;
	char name[160];

	memfd_fill(data, len);
	for (size_t n = len + 1; n-- > 0;) {
		if (n > 4096 && n + 4096 < len && n % stride != 0)
			continue;
		if (ftruncate(memfd, (off_t)n) < 0)
			abort();
		struct exe_probe p;
		int r = probe(memfd, &p);
		s.probes++;
		bool want_static = is_static && whole > 0 && n >= whole;
		if (r != 0 || p.elf != (n >= 4) ||
		    (whole && p.is_static != want_static)) {
			if (s.failures++ == 0)
				show(&p, r);
		}
	}
	snprintf(name, sizeof(name), "%s, cut at many lengths", what);
	sweep_done(&s, name);
}

/* A real program with random bytes of its headers changed, 3000 times. */
static void mutate_real(const char *what, const uint8_t *data, size_t len)
{
	struct sweep s = {.bad_before = bad_reads};
	uint64_t x = 88172645463325252ull; /* xorshift64 */
	char name[160];

	memfd_fill(data, len);
	for (int i = 0; i < 3000; i++) {
		size_t at[4];
		int n = 1 + i % 4;
		for (int k = 0; k < n; k++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* the first 4 KiB or the last 4 KiB */
			size_t off = (size_t)(x >> 8) % (len < 4096 ? len : 4096);
			at[k] = x & 1 ? off : len - 1 - off;
			uint8_t b = (uint8_t)(x >> 56);
			if (pwrite(memfd, &b, 1, (off_t)at[k]) != 1)
				abort();
		}
		sweep_probe(&s, what, at[0]);
		for (int k = n; k-- > 0;)
			if (pwrite(memfd, data + at[k], 1, (off_t)at[k]) != 1)
				abort();
	}
	snprintf(name, sizeof(name), "%s, 3000 random corruptions", what);
	sweep_done(&s, name);
}

static void test_real(const char *what, const char *path, bool is_static, bool go,
                      const char *skip)
{
	size_t len = 0;
	uint8_t *data;

	if (!path || !*path) {
		/* skip NULL: the program is a CI dependency (scripts/deps), its
		 * absence a failure */
		if (skip)
			tap_ok(1, "%s # skip %s", what, skip);
		else
			tap_ok(0,
			       "%s: not built (go was not found when meson configured "
			       "the "
			       "build; scripts/deps installs golang-go)",
			       what);
		return;
	}
	expect_path(what, path, true, is_static, go, false);
	if (!tap_ok((data = slurp(path, &len)) != NULL, "%s: read %s", what, path))
		return;
	truncate_real(what, data, len, is_static);
	mutate_real(what, data, len);
	free(data);
}

/* --- scripts, special files, set-ID bits, errors ----------------------------------- */

static void test_files(void)
{
	const char *script = tmp_file("script", "#!/bin/sh\necho hi\n", 0755);
	struct exe_probe p;

	expect_path("a shell script", script, false, false, false, false);
	expect_path("an empty file", tmp_file("empty", "", 0755), false, false, false,
	            false);
	expect_path("3 bytes of the magic",
	            tmp_file("short",
	                     "\x7f"
	                     "EL",
	                     0755),
	            false, false, false, false);
	expect_path("the magic alone",
	            tmp_file("magic",
	                     "\x7f"
	                     "ELF",
	                     0755),
	            true, false, false, false);
	expect_path("a bad class",
	            tmp_file("class",
	                     "\x7f"
	                     "ELF\x03\x01\x01",
	                     0755),
	            true, false, false, false);
	expect_path("/dev/null", "/dev/null", false, false, false, false);
	expect_path("a directory", tmpdir, false, false, false, false);
	expect_path("a set-user-ID script", tmp_file("suid", "#!/bin/sh\n", 04755), false,
	            false, false, true);
	expect_path("a set-group-ID script", tmp_file("sgid", "#!/bin/sh\n", 02755),
	            false, false, false, true);
	expect_path("S_ISGID without group execute (mandatory locking)",
	            tmp_file("lock", "#!/bin/sh\n", 02745), false, false, false, false);

	errno = 1234;
	memset(&p, 0x5a, sizeof(p));
	int r = exe_probe_path(tmp_path("missing"), &p);
	tap_ok(r == -ENOENT && errno == 1234 && same(&p, false, false, false, false),
	       "a missing file: -ENOENT, *out zeroed, errno kept");
	errno = 4321;
	tap_ok(exe_probe_fd(-1, &p) == -EBADF && errno == 4321,
	       "a bad descriptor: -EBADF, errno kept");

	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	tap_ok(fd >= 0 && lseek(fd, 5, SEEK_SET) == 5 && exe_probe_fd(fd, &p) == 0 &&
	               lseek(fd, 0, SEEK_CUR) == 5 && errno == 4321,
	       "probing leaves the file offset and errno as they were");
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	tap_init();
	snprintf(tmpdir, sizeof(tmpdir), "%s", "/tmp/test_exeprobe.XXXXXX");
	memfd = memfd_create("exeprobe", MFD_CLOEXEC);
	if (!mkdtemp(tmpdir) || memfd < 0) {
		perror("test_exeprobe");
		return 2;
	}
	test_files();
	test_real("this test (dynamic C)", "/proc/self/exe", false, false, NULL);
	test_real("static C", getenv("EXEPROBE_STATIC_C"), true, false,
	          "no static C program (a sanitizer build, or no static libc)");
	test_real("Go, CGO_ENABLED=0", getenv("EXEPROBE_GO_STATIC"), true, true, NULL);
	test_real("Go with net, CGO_ENABLED=1", getenv("EXEPROBE_GO_DYNAMIC"), false,
	          true, NULL);
	test_synth();
	test_note_budget();
	test_corrupt();
	tap_ok(bad_reads == 0, "%lu reads in all, none outside the file", reads);
	tap_diag("at most %lu reads in one probe", max_reads);

	static const char *const names[] = {"script", "empty", "short", "magic",
	                                    "class",  "suid",  "sgid",  "lock"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(tmp_path(names[i]));
	rmdir(tmpdir);
	close(memfd);
	return tap_done();
}
