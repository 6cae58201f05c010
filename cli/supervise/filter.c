/* SPDX-License-Identifier: MIT */
/*
 * The supervisor's seccomp filter (see sv_int.h). On the native ABI it stops
 * at the supervisor (SECCOMP_RET_USER_NOTIF): connect, sendmsg, sendmmsg,
 * and sendto when it names an address (a send() on a connected socket,
 * sendto with a NULL address, runs at full speed); io_uring_setup fails with
 * ENOSYS, so that programs fall back to ordinary calls the filter sees.
 * On x86-64, the same calls of the i386 and x32 ABIs fail with EPERM: the
 * supervisor does not decode them, and nothing may go around it.
 */
#include "sv_int.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#if defined(__x86_64__)
#define SV_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SV_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "the supervisor's filter knows x86-64 and aarch64"
#endif

#define LD_NR  BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
/* if A == nr, return v (the jump skips it otherwise) */
#define ON(nr, v) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), RET(v)

#define NOTIFY  SECCOMP_RET_USER_NOTIF
#define ALLOW   SECCOMP_RET_ALLOW
#define FAIL(e) (SECCOMP_RET_ERRNO | ((e)&SECCOMP_RET_DATA))

/* The offset of the low (little-endian) and high halves of argument i. */
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + (i)*8)
#define ARG_HI(i) (ARG_LO(i) + 4)

static const struct sock_filter program[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SV_AUDIT_ARCH, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JA, 18, 0, 0), /* to "foreign" (21) */
        LD_NR,
#if defined(__x86_64__)
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x40000000, 30, 0), /* x32: to "x32" (35) */
#else
        BPF_JUMP(BPF_JMP | BPF_JA, 0, 0, 0),
#endif
        ON(__NR_connect, NOTIFY),
        ON(__NR_sendmsg, NOTIFY),
        ON(__NR_sendmmsg, NOTIFY),
        ON(__NR_io_uring_setup, FAIL(ENOSYS)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendto, 1, 0),
        RET(ALLOW),
        /* sendto: stopped only when its address (argument 4) is not NULL */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(4)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 2),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_HI(4)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
        RET(NOTIFY),
        RET(ALLOW),
/* foreign (21): */
#if defined(__x86_64__)
        /* i386: socketcall, connect, sendto, sendmsg, sendmmsg, io_uring_setup */
        LD_NR,
        ON(102, FAIL(EPERM)),
        ON(362, FAIL(EPERM)),
        ON(369, FAIL(EPERM)),
        ON(370, FAIL(EPERM)),
        ON(345, FAIL(EPERM)),
        ON(425, FAIL(ENOSYS)),
        RET(ALLOW),
        /* x32 (35), nr in A: connect, sendto, sendmsg, sendmmsg, io_uring_setup */
        ON(0x40000000 | 42, FAIL(EPERM)),
        ON(0x40000000 | 44, FAIL(EPERM)),
        ON(0x40000000 | 518, FAIL(EPERM)),
        ON(0x40000000 | 538, FAIL(EPERM)),
        ON(0x40000000 | 425, FAIL(ENOSYS)),
        RET(ALLOW),
#else
        /* a compat ABI the supervisor does not decode: nothing runs */
        RET(FAIL(ENOSYS)),
#endif
};

#if defined(__x86_64__)
/* The jumps above count instructions: the labels must stay where they say. */
_Static_assert(sizeof(program) / sizeof(program[0]) == 46, "filter jump offsets");
#endif

static int install(unsigned long flags)
{
	struct sock_fprog prog = {
	        .len = (unsigned short)(sizeof(program) / sizeof(program[0])),
	        .filter = (struct sock_filter *)program,
	};
	long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
	                  flags | SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	return fd < 0 ? -errno : (int)fd;
}

int sv_filter_install(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	/* A task that the supervisor has heard from waits for its answer
	 * through every signal but a fatal one (Linux 5.19): its call is never
	 * run twice. Older kernels: the flag is refused, the call may be
	 * restarted after a signal, and net.c copes. */
	int fd = install(SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
	if (fd == -EINVAL)
		fd = install(0);
	return fd;
}
