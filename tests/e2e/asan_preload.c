/* SPDX-License-Identifier: MIT */
/*
 * libsxasanpreload.so: preloaded next to libasan in the sanitizer pass of the
 * shim suite (scripts/test: SOCKSIFY_TEST_PRELOAD), only to work around a
 * deadlock of GCC 12's libasan when it is preloaded into a program that is
 * not instrumented (curl, wget).
 *
 * A preloaded libasan initialises after the program's own dependencies
 * (glibc runs their constructors first). libp11-kit's constructor calls
 * newlocale(), which mallocs while it holds glibc's locale lock; that first
 * malloc initialises ASan, whose symbolizer set-up looks up "swift_demangle"
 * with dlsym() and, not finding it, calls dlerror(), which translates the
 * message with gettext and takes the same lock again: the lock is left
 * corrupted and curl's setlocale() in main() waits forever. With this
 * definition the lookup succeeds and no dlerror() happens. ASan would call it
 * only for Swift symbols; it answers "cannot demangle".
 */
#include <stddef.h>

char *swift_demangle(const char *mangled, size_t len, char *out, size_t *out_len,
                     unsigned flags);

char *swift_demangle(const char *mangled, size_t len, char *out, size_t *out_len,
                     unsigned flags)
{
	(void)mangled;
	(void)len;
	(void)out;
	(void)out_len;
	(void)flags;
	return NULL;
}
