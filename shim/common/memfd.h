/* SPDX-License-Identifier: MIT */
/*
 * The sealed memfds handed down to a program's descendants (the fake-DNS
 * pool, shim/fakedns_pool.c; the proxy credentials, secret.c): made the
 * same way, kept at a high descriptor number across exec. Header only, as
 * monotime.h: each user is in a different library.
 */
#ifndef SOCKSIFY_MEMFD_H
#define SOCKSIFY_MEMFD_H

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* Linux 6.3; required when vm.memfd_noexec = 2 */
#endif

/* A close-on-exec memfd that may be sealed (and not executable where the
 * kernel has MFD_NOEXEC_SEAL, 6.3): the descriptor or -errno. */
static inline int memfd_sealable(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL) /* a kernel before 6.3 */
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? -errno : fd;
}

/* fd sealed with seals and moved to min or above, not close-on-exec: the
 * descriptor, or -errno with fd closed. */
static inline int memfd_seal_high(int fd, int seals, int min)
{
	if (fcntl(fd, F_ADD_SEALS, seals) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	int high = fcntl(fd, F_DUPFD, min);
	if (high >= 0) {
		close(fd);
		return high;
	}
	/* RLIMIT_NOFILE below min: keep the number we have */
	fcntl(fd, F_SETFD, 0);
	return fd;
}

#endif
