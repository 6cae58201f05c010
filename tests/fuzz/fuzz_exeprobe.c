/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the executable probe (shim/common/exeprobe.c).
 *
 * LLVMFuzzerTestOneInput() writes the input into a memfd, which then holds
 * exactly those bytes, and probes it with exe_probe_fd(). The probe reads only
 * through pread(), so a read past the input ends at the end of the file rather
 * than in memory; what is checked is that it never fails on a readable file,
 * says nothing but "not ELF" of a file without the magic, says the same twice,
 * and (with the sanitizers) never touches memory it should not.
 * Any inconsistency abort()s.
 *
 * Linked with replay_main.c it gets a main() for any compiler, which replays
 * corpus files and directories and runs deterministic random mutations of
 * them (see there; tests/fuzz/meson.build builds it so). With clang, build it
 * without replay_main.c as a real libFuzzer target instead:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ishim/common \
 *       tests/fuzz/fuzz_exeprobe.c shim/common/exeprobe.c -o fuzz_exeprobe
 *   ./fuzz_exeprobe tests/fuzz/corpus/exeprobe
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exeprobe.h"
#include "guard.h"
#include "replay.h"

const char fuzz_target_name[] = "fuzz_exeprobe";

static int memfd = -1;

int fuzz_last_good;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct exe_probe p, again;

	if (memfd < 0)
		memfd = memfd_create("fuzz_exeprobe", MFD_CLOEXEC);
	CHECK(memfd >= 0);
	CHECK(ftruncate(memfd, 0) == 0);
	CHECK(size == 0 || pwrite(memfd, data, size, 0) == (ssize_t)size);
	CHECK(exe_probe_fd(memfd, &p) == 0);
	CHECK(p.elf == (size >= 4 && memcmp(data,
	                                    "\x7f"
	                                    "ELF",
	                                    4) == 0));
	CHECK(p.elf || (!p.is_static && !p.go));
	CHECK(!p.setid);
	CHECK(exe_probe_fd(memfd, &again) == 0 && memcmp(&p, &again, sizeof(p)) == 0);
	fuzz_last_good = p.elf + p.is_static + p.go;
	return 0;
}

/* --- how replay_main.c mutates inputs ---------------------------------------------- */

static const uint8_t interesting[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x07, 0x08,
                                      0x10, 0x38, 0x40, 0x7f, 0x80, 0xfe, 0xff};

/* What random bytes rarely spell: the magics and Go's names. */
static const char *const tokens[] = {
        "\x7f"
        "ELF\x02\x01\x01",
        "\x7f"
        "ELF\x01\x02\x01",
        "Go",
        "GNU",
        ".go.buildinfo",
        ".note.go.buildid",
        "\xff Go buildinf:",
        "\xff\xff",
        "\xff\xff\xff\xff",
};

/* Each as likely; the first three also apply to an empty input. */
static const enum fuzz_edit edits[] = {
        FUZZ_INSERT_BYTE,  FUZZ_APPEND_ENTRY, FUZZ_INSERT_TOKEN,
        FUZZ_FLIP_BIT,     FUZZ_SET_BYTE,     FUZZ_SET_BYTE,
        FUZZ_DELETE_CHUNK, FUZZ_TRUNCATE,     FUZZ_DUPLICATE_CHUNK,
};

const struct fuzz_mutator fuzz_mutator = {
        .max_len = 4096,
        .edits = edits,
        .nedits = sizeof(edits) / sizeof(edits[0]),
        .nedits_empty = 3,
        .interesting = interesting,
        .ninteresting = sizeof(interesting),
        .tokens = tokens,
        .ntokens = sizeof(tokens) / sizeof(tokens[0]),
        .report_kept = true,
};
