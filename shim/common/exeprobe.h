/* SPDX-License-Identifier: MIT */
/*
 * What an executable file is, as far as LD_PRELOAD is concerned: the launcher
 * and the shim's exec hooks ask it before a program starts, to learn whether
 * the shim can reach the program's network calls at all.
 *
 * The preload cannot reach a program the dynamic loader does not start (a
 * static executable, a static-pie too), one whose loader ignores LD_PRELOAD
 * (set-user-ID or set-group-ID), nor a Go program: Go's runtime makes its
 * system calls itself, without libc, even when it is dynamically linked.
 *
 * The probe reads the file only with pread() on the caller's descriptor, into
 * buffers on the stack: no malloc, no stdio, no locks, so it is safe in an
 * exec hook, even in a vfork() child. Every offset and size read from the
 * file is checked against the file's size before it is used, and every loop
 * has a fixed bound (256 notes, 65536 section headers), so a truncated or
 * hostile file is simply not recognised. An ordinary executable takes a
 * handful of reads. errno is left as it was.
 */
#ifndef SOCKSIFY_EXEPROBE_H
#define SOCKSIFY_EXEPROBE_H

#include <stdbool.h>

struct exe_probe {
	/* The file starts with the ELF magic "\x7fELF". */
	bool elf;
	/*
	 * An ELF executable (ET_EXEC or ET_DYN, 32- or 64-bit, either byte
	 * order) whose program headers, all in the file, have no PT_INTERP: the
	 * kernel starts it without a dynamic loader. A static-pie is one; so is
	 * a shared library without an interpreter, which the kernel would start
	 * the same way.
	 */
	bool is_static;
	/*
	 * Built by the Go toolchain, static or dynamic: a note of owner "Go" and
	 * type 4 (the Go build ID) in a PT_NOTE segment or an SHT_NOTE section, a
	 * section named .go.buildinfo or .note.go.buildid, or the first
	 * writable, non-executable PT_LOAD segment starting with Go's build-info
	 * magic "\xff Go buildinf:" (where Go's own debug/buildinfo looks in a
	 * file without section headers).
	 */
	bool go;
	/*
	 * A regular file whose execution changes credentials: S_ISUID, or
	 * S_ISGID with group execute permission (S_ISGID alone marks mandatory
	 * locking, and the kernel does not change the group for it). A nosuid
	 * mount and file capabilities are not looked at.
	 */
	bool setid;
};

/*
 * Probes the file open on fd (read from offset 0 with pread(); the file
 * offset does not move). Returns 0, or -errno when fstat() or a read fails
 * (-EIO when the file shrinks while it is read); *out is zeroed first, so after an error
 * it says no more than it knows. A file that is not regular (a directory, /dev/null) or
 * not ELF (a script) gives 0 and all false; a malformed ELF file gives 0, elf true and
 * whatever the parts that could be read showed.
 */
int exe_probe_fd(int fd, struct exe_probe *out);

/*
 * Opens path O_RDONLY | O_CLOEXEC, probes it with exe_probe_fd() and closes
 * it. Returns 0 or -errno (-ENOENT, -EACCES from open()). In the shim, close()
 * is the shim's own hook: a caller that must not go through it opens the file
 * itself and calls exe_probe_fd().
 */
int exe_probe_path(const char *path, struct exe_probe *out);

#endif
