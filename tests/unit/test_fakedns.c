/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the fake-DNS pool (shim/fakedns*.c), printed as TAP.
 *
 * They prove that names get stable fake addresses in both families and map
 * back, that invalid names and foreign addresses are refused, that a full
 * pool says so instead of recycling, and that the pool really is shared:
 * with fork()ed children both ways, with an exec()ed image through the
 * inherited descriptor (the test runs itself again with --exec-child), by
 * many threads in several processes at once, and after a process died
 * holding the pool's lock. An inherited descriptor that is not a pool must
 * give a fresh pool and be left open.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fakedns.h"
#include "tap.h"

#define EXEC_CHILD_FLAG "--exec-child"

static const char *self_path;

/* --- helpers ---------------------------------------------------------------------- */

union sa_any {
	struct sockaddr sa;
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	struct sockaddr_un un;
};

/* A sockaddr for a numeric IPv4 or IPv6 address; aborts on a typo. */
static union sa_any sa_of(const char *text)
{
	union sa_any u;

	memset(&u, 0, sizeof(u));
	if (inet_pton(AF_INET, text, &u.v4.sin_addr) == 1) {
		u.v4.sin_family = AF_INET;
		u.v4.sin_port = htons(80);
	} else if (inet_pton(AF_INET6, text, &u.v6.sin6_addr) == 1) {
		u.v6.sin6_family = AF_INET6;
		u.v6.sin6_port = htons(443);
	} else {
		abort();
	}
	return u;
}

/* A sockaddr for raw address bytes of a family. */
static union sa_any sa_raw(int family, const void *addr)
{
	union sa_any u;

	memset(&u, 0, sizeof(u));
	if (family == AF_INET) {
		u.v4.sin_family = AF_INET;
		memcpy(&u.v4.sin_addr, addr, 4);
	} else {
		u.v6.sin6_family = AF_INET6;
		memcpy(&u.v6.sin6_addr, addr, 16);
	}
	return u;
}

static const char *addr_text(int family, const void *addr, char *buf)
{
	return inet_ntop(family, addr, buf, INET6_ADDRSTRLEN) ? buf : "?";
}

/* Checks that name's address of family is `want` (text). */
static void check_addr(const char *name, int family, const char *want)
{
	uint8_t got[16], expect[16];
	char text[INET6_ADDRSTRLEN];
	int r = fakedns_addr_for(name, family, got);

	inet_pton(family, want, expect);
	if (!tap_ok(r == 0 && memcmp(got, expect, family == AF_INET ? 4 : 16) == 0,
	            "%.40s (%s) is %s", name, family == AF_INET ? "v4" : "v6", want))
		tap_diag("returned %d, address %s", r,
		         r == 0 ? addr_text(family, got, text) : "-");
}

/* Checks that the address (text) maps back to want_name. */
static void check_name(const char *addr, const char *want_name)
{
	union sa_any sa = sa_of(addr);
	char name[FAKEDNS_NAME_MAX + 1];
	int r = fakedns_name_for(&sa.sa, name, sizeof(name));

	if (!tap_ok(r == (int)strlen(want_name) && strcmp(name, want_name) == 0,
	            "%s maps back to %.40s", addr, want_name))
		tap_diag("returned %d, name \"%s\"", r, r > 0 ? name : "");
}

/* The entry number behind a fake IPv4 address of the default pool. */
static long v4_entry(const uint8_t *a)
{
	uint32_t x =
	        (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
	return (long)(x - 0xf0000000u) - 1;
}

static long v6_entry(const uint8_t *a)
{
	return ((long)a[13] << 16 | (long)a[14] << 8 | a[15]) - 1;
}

static int attach_default(const char *inherited)
{
	struct fakedns_params p = {.inherited_fd = inherited};
	return fakedns_attach(&p);
}

static void fresh_default_pool(void)
{
	fakedns_detach_for_tests();
	if (attach_default(NULL) != 0) {
		tap_diag("cannot create a pool: %s", strerror(errno));
		exit(2);
	}
}

/* Waits for pid; returns its exit status, or 128 + signal. */
static int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* --- parameters and the unattached state
 * ------------------------------------------------
 */

static void test_params(void)
{
	static const uint8_t v4_host_bits[4] = {10, 0, 0, 1}, v4[4] = {10, 0, 0, 0};
	static const uint8_t v6_host_bits[16] = {0xfd, [15] = 1};
	struct fakedns_params p;
	uint8_t a[16];
	union sa_any sa = sa_of("240.0.0.1");
	char name[16];

	fakedns_detach_for_tests();
	tap_is(fakedns_attach(NULL), -EINVAL, "attach(NULL) is -EINVAL");
	p = (struct fakedns_params){.v4 = v4, .v4_prefix = 0};
	tap_is(fakedns_attach(&p), -EINVAL, "IPv4 prefix 0 is -EINVAL");
	p.v4_prefix = 31;
	tap_is(fakedns_attach(&p), -EINVAL, "IPv4 prefix 31 (no room) is -EINVAL");
	p = (struct fakedns_params){.v4 = v4_host_bits, .v4_prefix = 24};
	tap_is(fakedns_attach(&p), -EINVAL, "IPv4 base with host bits is -EINVAL");
	p = (struct fakedns_params){.v6 = v6_host_bits, .v6_prefix = 64};
	tap_is(fakedns_attach(&p), -EINVAL, "IPv6 base with host bits is -EINVAL");
	p.v6_prefix = 127;
	tap_is(fakedns_attach(&p), -EINVAL, "IPv6 prefix 127 is -EINVAL");

	tap_is(fakedns_fd(), -1, "not attached: no descriptor");
	tap_is(fakedns_addr_for("example.com", AF_INET, a), -ENXIO,
	       "not attached: addr_for is -ENXIO");
	tap_ok(!fakedns_in_pool(&sa.sa), "not attached: nothing is in a pool");
	tap_is(fakedns_name_for(&sa.sa, name, sizeof(name)), -EINVAL,
	       "not attached: name_for is -EINVAL");
}

/* --- allocation and lookups
 * -------------------------------------------------------------
 */

static void test_descriptor(void)
{
	fresh_default_pool();
	int fd = fakedns_fd();
	tap_ok(fd >= FAKEDNS_FD_MIN, "the pool's descriptor is high (%d)", fd);
	tap_is(fcntl(fd, F_GETFD), 0, "the pool's descriptor is not close-on-exec");
	tap_is(fcntl(fd, F_GET_SEALS) & (F_SEAL_SHRINK | F_SEAL_GROW),
	       F_SEAL_SHRINK | F_SEAL_GROW, "the memfd cannot shrink or grow");
	tap_ok(ftruncate(fd, 4096) < 0 && errno == EPERM, "ftruncate of the pool fails");
	tap_is(attach_default(NULL), 0, "attach again: 0");
	tap_is(fakedns_fd(), fd, "attach again: same descriptor");
}

static void test_lookups(void)
{
	fresh_default_pool();
	check_addr("example.com", AF_INET, "240.0.0.1");
	check_addr("example.com", AF_INET6, "100::1");
	check_addr("second.example", AF_INET6, "100::2");
	check_addr("second.example", AF_INET, "240.0.0.2");
	check_addr("example.com", AF_INET, "240.0.0.1");
	check_addr("EXAMPLE.Com", AF_INET, "240.0.0.1");
	check_addr("Example.COM", AF_INET6, "100::1");
	check_addr("example.com.", AF_INET, "240.0.0.3");
	check_name("240.0.0.1", "example.com");
	check_name("100::1", "example.com");
	check_name("240.0.0.2", "second.example");
	check_name("100::2", "second.example");
	check_name("::ffff:240.0.0.2", "second.example");
	check_name("240.0.0.3", "example.com.");

	check_addr("MiXeD.example", AF_INET, "240.0.0.4");
	check_name("240.0.0.4", "MiXeD.example");
	check_addr("mixed.EXAMPLE", AF_INET, "240.0.0.4");
	check_name("240.0.0.4", "MiXeD.example");

	/* a name that is not plain ASCII compares byte for byte above 0x7f */
	check_addr("\xc3\x89t\xc3\xa9.example", AF_INET, "240.0.0.5");
	check_addr("\xc3\xa9t\xc3\xa9.example", AF_INET, "240.0.0.6");

	char name[256];
	memset(name, 'n', 255);
	name[255] = '\0';
	check_addr(name, AF_INET, "240.0.0.7");
	check_name("240.0.0.7", name);

	union sa_any sa = sa_of("240.0.0.1");
	char small[12];
	tap_is(fakedns_name_for(&sa.sa, small, sizeof(small)), 11,
	       "name_for: a buffer of length + 1 is enough");
	tap_is(fakedns_name_for(&sa.sa, small, 11), -ERANGE,
	       "name_for: a buffer of exactly the length is -ERANGE");
}

/* The IPv6 twin (issue 13): whichever family a name is looked up in first,
 * its IPv4 fake and its IPv6 twin sit at the same offset of their pools and
 * both map back to the name. */
static void test_twins(void)
{
	fresh_default_pool();
	long bad = 0;
	for (int i = 0; i < 300; i++) {
		char name[32], back4[FAKEDNS_NAME_MAX + 1], back6[FAKEDNS_NAME_MAX + 1];
		uint8_t a4[4], a6[16];
		snprintf(name, sizeof(name), "twin%d.example", i);
		int first = i % 3 == 0 ? AF_INET6 : AF_INET;
		if (fakedns_addr_for(name, first, first == AF_INET ? (void *)a4 : a6) !=
		            0 ||
		    fakedns_addr_for(name, first == AF_INET ? AF_INET6 : AF_INET,
		                     first == AF_INET ? (void *)a6 : a4) != 0) {
			bad++;
			continue;
		}
		uint32_t off4 = ((uint32_t)a4[0] << 24 | (uint32_t)a4[1] << 16 |
		                 (uint32_t)a4[2] << 8 | a4[3]) -
		                0xf0000000u;
		uint64_t off6 = 0;
		for (int k = 8; k < 16; k++)
			off6 = off6 << 8 | a6[k];
		static const uint8_t prefix[8] = {0x01, 0, 0, 0, 0, 0, 0, 0};
		union sa_any s4 = sa_raw(AF_INET, a4), s6 = sa_raw(AF_INET6, a6);
		if (off4 != (uint32_t)i + 1 || off6 != off4 ||
		    memcmp(a6, prefix, 8) != 0 ||
		    fakedns_name_for(&s4.sa, back4, sizeof(back4)) < 0 ||
		    fakedns_name_for(&s6.sa, back6, sizeof(back6)) < 0 ||
		    strcmp(back4, name) != 0 || strcmp(back6, name) != 0)
			bad++;
	}
	tap_is(bad, 0,
	       "300 names: the IPv4 fake and its IPv6 twin share the offset "
	       "and map back to the name, whichever family came first");
}

static void test_invalid_names(void)
{
	static const char *const numeric[] = {
	        "1.2.3.4", "10.1",         "0x7f.1", "1",           "017.0.0.1",
	        "::1",     "fe80::1%eth0", "::",     "2001:db8::1", "::ffff:1.2.3.4",
	};
	char name[FAKEDNS_NAME_MAX + 2];
	uint8_t a[16];

	fresh_default_pool();
	tap_is(fakedns_addr_for(NULL, AF_INET, a), -EINVAL, "NULL name is -EINVAL");
	tap_is(fakedns_addr_for("", AF_INET, a), -EINVAL, "empty name is -EINVAL");
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	tap_is(fakedns_addr_for(name, AF_INET6, a), -EINVAL, "256-byte name is -EINVAL");
	for (size_t i = 0; i < sizeof(numeric) / sizeof(numeric[0]); i++)
		tap_is(fakedns_addr_for(numeric[i], AF_INET, a), -EINVAL,
		       "numeric \"%s\" is -EINVAL", numeric[i]);
	tap_is(fakedns_addr_for("example.com", AF_UNIX, a), -EAFNOSUPPORT,
	       "AF_UNIX is -EAFNOSUPPORT");
	tap_is(fakedns_addr_for("example.com", AF_UNSPEC, a), -EAFNOSUPPORT,
	       "AF_UNSPEC is -EAFNOSUPPORT");
	/* names that merely look numeric are names */
	check_addr("1.2.3.4.example", AF_INET, "240.0.0.1");
	check_addr("1.2.3.4 junk", AF_INET, "240.0.0.2");
	check_addr("0x", AF_INET, "240.0.0.3");
	check_addr("1.2.3.4.5", AF_INET, "240.0.0.4");
	check_addr("localhost", AF_INET, "240.0.0.5");
}

static void check_unmapped(const char *addr, bool in_pool, int want)
{
	union sa_any sa = sa_of(addr);
	char name[FAKEDNS_NAME_MAX + 1];

	tap_ok(fakedns_in_pool(&sa.sa) == in_pool, "%s is %sin the pool", addr,
	       in_pool ? "" : "not ");
	tap_is(fakedns_name_for(&sa.sa, name, sizeof(name)), want, "name_for(%s) is %s",
	       addr, strerror(-want));
}

static void test_foreign_addresses(void)
{
	fresh_default_pool();
	check_addr("one.example", AF_INET, "240.0.0.1");
	check_unmapped("240.0.0.0", true, -ENOENT);
	check_unmapped("240.0.0.2", true, -ENOENT);
	check_unmapped("240.1.0.0", true, -ENOENT);
	check_unmapped("255.255.255.255", true, -ENOENT);
	check_unmapped("239.255.255.255", false, -EINVAL);
	check_unmapped("10.0.0.1", false, -EINVAL);
	check_unmapped("127.0.0.1", false, -EINVAL);
	check_unmapped("100::", true, -ENOENT);
	check_unmapped("100::2", true, -ENOENT);
	check_unmapped("100::ffff:ffff:ffff:ffff", true, -ENOENT);
	check_unmapped("100:0:0:1::1", false, -EINVAL);
	check_unmapped("::1", false, -EINVAL);
	check_unmapped("::ffff:240.0.0.2", true, -ENOENT);
	check_unmapped("::ffff:10.0.0.1", false, -EINVAL);
	check_unmapped("::240.0.0.1", false, -EINVAL);

	union sa_any un = {.un = {.sun_family = AF_UNIX}};
	char name[16];
	tap_ok(!fakedns_in_pool(&un.sa), "AF_UNIX is not in the pool");
	tap_is(fakedns_name_for(&un.sa, name, sizeof(name)), -EAFNOSUPPORT,
	       "name_for(AF_UNIX) is -EAFNOSUPPORT");
	tap_is(fakedns_name_for(NULL, name, sizeof(name)), -EINVAL,
	       "name_for(NULL) is -EINVAL");
	tap_ok(!fakedns_in_pool(NULL), "NULL is not in the pool");
}

/* A /24 and a /120 pool hold 254 entries; the 255th name is -ENOSPC. */
static void test_full(void)
{
	static const uint8_t v4[4] = {198, 18, 5, 0};
	static const uint8_t v6[16] = {0xfd, 0x00, 0x5f, [14] = 0x01};
	struct fakedns_params p = {.v4 = v4, .v4_prefix = 24, .v6 = v6, .v6_prefix = 120};
	char name[32];
	uint8_t a[16];
	int bad = 0;

	fakedns_detach_for_tests();
	tap_is(fakedns_attach(&p), 0, "attach a /24 + /120 pool");
	for (unsigned i = 0; i < 254; i++) {
		snprintf(name, sizeof(name), "host%u.example", i);
		if (fakedns_addr_for(name, AF_INET, a) != 0 || a[3] != i + 1)
			bad++;
	}
	tap_is(bad, 0, "254 names get 198.18.5.1 to .254");
	tap_is(fakedns_addr_for("one-more.example", AF_INET, a), -ENOSPC,
	       "the 255th name is -ENOSPC");
	tap_is(fakedns_addr_for("one-more.example", AF_INET6, a), -ENOSPC,
	       "the 255th name is -ENOSPC in IPv6 too");
	check_addr("host0.example", AF_INET, "198.18.5.1");
	check_addr("HOST253.example", AF_INET, "198.18.5.254");
	check_addr("host253.example", AF_INET6, "fd00:5f00::1fe");
	check_name("198.18.5.254", "host253.example");
	check_name("fd00:5f00::1fe", "host253.example");
	check_unmapped("198.18.5.255", true, -ENOENT);
	check_unmapped("fd00:5f00::1ff", true, -ENOENT);
	check_unmapped("198.18.6.1", false, -EINVAL);
	check_unmapped("240.0.0.1", false, -EINVAL);

	/* the smallest pool, a /30: two entries */
	p.v4_prefix = 30;
	fakedns_detach_for_tests();
	tap_is(fakedns_attach(&p), 0, "attach a /30 pool");
	check_addr("a.example", AF_INET, "198.18.5.1");
	check_addr("b.example", AF_INET6, "fd00:5f00::102");
	tap_is(fakedns_addr_for("c.example", AF_INET, a), -ENOSPC,
	       "a /30 holds two names");
	check_unmapped("198.18.5.3", true, -ENOENT);
}

/* --- sharing
 * ---------------------------------------------------------------------------- */

static void test_fork(void)
{
	uint8_t a[4];

	fresh_default_pool();
	check_addr("parent-first.example", AF_INET, "240.0.0.1");
	pid_t pid = fork();
	if (pid == 0) {
		int fail = 0;
		/* the parent's name, then one of our own */
		if (fakedns_addr_for("parent-first.example", AF_INET, a) != 0 ||
		    v4_entry(a) != 0)
			fail |= 1;
		if (fakedns_addr_for("child.example", AF_INET, a) != 0 ||
		    v4_entry(a) != 1)
			fail |= 2;
		if (attach_default(NULL) != 0)
			fail |= 4;
		_exit(fail);
	}
	tap_is(wait_child(pid), 0,
	       "fork: the child sees the parent's name and allocates");
	check_name("240.0.0.2", "child.example");
	check_addr("child.example", AF_INET, "240.0.0.2");
	check_addr("parent-later.example", AF_INET, "240.0.0.3");

	/* the parent allocates while the child waits, then the child looks */
	int go[2];
	if (pipe(go) < 0)
		abort();
	pid = fork();
	if (pid == 0) {
		char c;
		union sa_any sa = sa_of("240.0.0.4");
		char name[64];
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(9);
		if (fakedns_name_for(&sa.sa, name, sizeof(name)) < 0 ||
		    strcmp(name, "after-fork.example") != 0)
			_exit(1);
		if (fakedns_addr_for("AFTER-fork.example", AF_INET, a) != 0 ||
		    v4_entry(a) != 3)
			_exit(2);
		_exit(0);
	}
	close(go[0]);
	check_addr("after-fork.example", AF_INET, "240.0.0.4");
	if (write(go[1], "x", 1) != 1)
		abort();
	close(go[1]);
	tap_is(wait_child(pid), 0, "fork: the child sees a name the parent added later");
}

/* Bits of the exec child's exit status: which of its checks failed. */
enum exec_fail {
	EXEC_ATTACH = 1,
	EXEC_SAME_FD = 2,
	EXEC_PARENT_NAME = 4,
	EXEC_PARENT_ADDR = 8,
	EXEC_OWN_NAME = 16,
	EXEC_CLOEXEC = 32,
};

/* The re-executed test: argv[2] is an address the parent gave "parent.example". */
static int exec_child(int argc, char **argv)
{
	const char *inherited = getenv(FAKEDNS_ENV_FD);
	char name[FAKEDNS_NAME_MAX + 1];
	uint8_t a[4];
	int fail = 0;

	if (argc < 3 || !inherited)
		return 64;
	if (attach_default(inherited) != 0)
		return EXEC_ATTACH;
	if (fakedns_fd() != atoi(inherited))
		fail |= EXEC_SAME_FD;
	union sa_any sa = sa_of(argv[2]);
	if (fakedns_name_for(&sa.sa, name, sizeof(name)) < 0 ||
	    strcmp(name, "parent.example") != 0)
		fail |= EXEC_PARENT_NAME;
	if (fakedns_addr_for("Parent.Example", AF_INET, a) != 0 ||
	    memcmp(a, &sa.v4.sin_addr, 4) != 0)
		fail |= EXEC_PARENT_ADDR;
	if (fakedns_addr_for("exec-child.example", AF_INET, a) != 0)
		fail |= EXEC_OWN_NAME;
	if (fcntl(fakedns_fd(), F_GETFD) != 0)
		fail |= EXEC_CLOEXEC;
	return fail;
}

static void test_exec(void)
{
	char fd_text[16], env[64];
	uint8_t a[4];

	fresh_default_pool();
	check_addr("parent.example", AF_INET, "240.0.0.1");
	snprintf(fd_text, sizeof(fd_text), "%d", fakedns_fd());
	snprintf(env, sizeof(env), "%s=%s", FAKEDNS_ENV_FD, fd_text);
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = {(char *)self_path, EXEC_CHILD_FLAG, "240.0.0.1", NULL};
		char *envp[] = {env, NULL};
		execve(self_path, argv, envp);
		_exit(127);
	}
	int st = wait_child(pid);
	if (st >= 64)
		tap_diag("the exec child exited with %d", st);
	tap_ok(st >= 0 && st < 64 && !(st & EXEC_ATTACH), "exec: the child attaches");
	tap_ok(st >= 0 && st < 64 && !(st & EXEC_SAME_FD),
	       "exec: the child adopts the inherited descriptor %s", fd_text);
	tap_ok(st >= 0 && st < 64 && !(st & EXEC_PARENT_NAME),
	       "exec: the parent's address maps back to its name in the child");
	tap_ok(st >= 0 && st < 64 && !(st & EXEC_PARENT_ADDR),
	       "exec: the parent's name has the same address in the child");
	tap_ok(st >= 0 && st < 64 && !(st & EXEC_OWN_NAME),
	       "exec: the child allocates a name");
	tap_ok(st >= 0 && st < 64 && !(st & EXEC_CLOEXEC),
	       "exec: the child keeps the descriptor open across its own exec");
	check_name("240.0.0.2", "exec-child.example");
	tap_ok(fakedns_addr_for("exec-child.example", AF_INET, a) == 0 &&
	               v4_entry(a) == 1,
	       "exec: the parent finds the child's name");
}

/* Attaches with an inherited descriptor that is no pool: expects a fresh one. */
static void check_fresh(const char *inherited, const char *what)
{
	uint8_t a[4];

	fakedns_detach_for_tests();
	tap_is(attach_default(inherited), 0, "inherited %s: attach gives 0", what);
	tap_ok(fakedns_fd() >= 0 && (!inherited || fakedns_fd() != atoi(inherited)),
	       "inherited %s: a new descriptor", what);
	tap_ok(fakedns_addr_for("fresh.example", AF_INET, a) == 0 && v4_entry(a) == 0,
	       "inherited %s: the pool is empty", what);
}

static void test_inherited(void)
{
	static const uint8_t v4[4] = {198, 18, 0, 0};
	char text[16];
	uint8_t a[4];
	struct stat st;

	/* a descriptor of a real pool, kept open across detach: adopted */
	fresh_default_pool();
	check_addr("kept.example", AF_INET, "240.0.0.1");
	int kept = dup(fakedns_fd());
	if (kept < 0 || fstat(kept, &st) < 0)
		abort();
	snprintf(text, sizeof(text), "%d", kept);
	fakedns_detach_for_tests();
	tap_is(attach_default(text), 0, "inherited pool: attach gives 0");
	tap_is(fakedns_fd(), kept, "inherited pool: adopted at its own number");
	check_name("240.0.0.1", "kept.example");

	/* the same pool, other ranges: a fresh pool, the descriptor left open */
	kept = dup(fakedns_fd());
	snprintf(text, sizeof(text), "%d", kept);
	fakedns_detach_for_tests();
	struct fakedns_params p = {.v4 = v4, .v4_prefix = 15, .inherited_fd = text};
	tap_is(fakedns_attach(&p), 0, "inherited pool, other ranges: attach gives 0");
	tap_ok(fakedns_fd() != kept, "inherited pool, other ranges: a new descriptor");
	tap_ok(fakedns_addr_for("kept.example", AF_INET, a) == 0 && a[0] == 198 &&
	               a[3] == 1,
	       "inherited pool, other ranges: the pool is empty");
	tap_is(fcntl(kept, F_GETFD) >= 0, 1, "inherited pool, other ranges: left open");
	close(kept);

	check_fresh(NULL, "nothing");
	check_fresh("", "\"\"");
	check_fresh("abc", "\"abc\"");
	check_fresh("-1", "\"-1\"");
	check_fresh("12x", "\"12x\"");
	check_fresh("99999999999999999999", "a huge number");
	close(999);
	check_fresh("999", "a closed descriptor");

	int fds[2];
	if (pipe(fds) < 0)
		abort();
	snprintf(text, sizeof(text), "%d", fds[0]);
	check_fresh(text, "a pipe");
	tap_ok(fcntl(fds[0], F_GETFD) >= 0, "inherited pipe: left open");
	close(fds[0]);
	close(fds[1]);

	/* a memfd of the right size with the right seals, but no pool inside */
	int fake = memfd_create("not-a-pool", MFD_ALLOW_SEALING);
	if (fake < 0 || ftruncate(fake, st.st_size) < 0 ||
	    fcntl(fake, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		abort();
	snprintf(text, sizeof(text), "%d", fake);
	check_fresh(text, "a sealed memfd without a header");
	tap_ok(fcntl(fake, F_GETFD) >= 0, "inherited memfd: left open");
	close(fake);

	/* a byte-for-byte copy of a real pool, but not sealed */
	fresh_default_pool();
	void *src =
	        mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fakedns_fd(), 0);
	fake = memfd_create("unsealed-copy", 0);
	if (src == MAP_FAILED || fake < 0 || write(fake, src, 4096) != 4096 ||
	    ftruncate(fake, st.st_size) < 0)
		abort();
	munmap(src, (size_t)st.st_size);
	snprintf(text, sizeof(text), "%d", fake);
	check_fresh(text, "an unsealed copy of a pool");
	close(fake);
}

/* Runs fn in a child with RLIMIT_NOFILE set to limit; returns its exit status. */
static int with_fd_limit(rlim_t limit, int (*fn)(void))
{
	pid_t pid = fork();

	if (pid == 0) {
		struct rlimit rl;
		fakedns_detach_for_tests();
		if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(100);
		rl.rlim_cur = limit;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(101);
		_exit(fn());
	}
	return wait_child(pid);
}

/* Below FAKEDNS_FD_MIN the memfd keeps its low number, still inherited. */
static int low_limit_child(void)
{
	uint8_t a[4];

	if (attach_default(NULL) != 0)
		return 1;
	int fd = fakedns_fd();
	if (fd < 0 || fd >= 64 || fcntl(fd, F_GETFD) != 0)
		return 2;
	if (fakedns_addr_for("low.example", AF_INET, a) != 0 || v4_entry(a) != 0)
		return 3;
	return 0;
}

/* No descriptor left: an anonymous shared mapping, still shared with children. */
static int no_fd_child(void)
{
	uint8_t a[4];

	if (attach_default(NULL) != 0)
		return 1;
	if (fakedns_fd() != -1)
		return 2;
	pid_t pid = fork();
	if (pid == 0)
		_exit(fakedns_addr_for("grandchild.example", AF_INET, a) == 0 ? 0 : 1);
	if (wait_child(pid) != 0)
		return 3;
	if (fakedns_addr_for("Grandchild.example", AF_INET, a) != 0 || v4_entry(a) != 0)
		return 4;
	return 0;
}

static void test_fallbacks(void)
{
	int lowest = dup(0);

	if (lowest < 0)
		abort();
	close(lowest);
	tap_is(with_fd_limit(64, low_limit_child), 0,
	       "RLIMIT_NOFILE 64: the pool keeps a low descriptor, not close-on-exec");
	tap_is(with_fd_limit((rlim_t)lowest, no_fd_child), 0,
	       "no descriptor left: an anonymous pool, shared with fork()ed children");
}

/* --- concurrency
 * -------------------------------------------------------------------------
 */

enum { THREADS = 8, NAMES = 2000, SHARED = 2000 };

struct worker {
	pthread_t tid;
	unsigned id;
	long own[NAMES];     /* entry of "t<id>-<i>.example" */
	long shared[SHARED]; /* entry of "shared-<i>.example" */
	unsigned errors;
};

/* Looks name up in family, checks it maps back; returns its entry or -1. */
static long resolve_and_check(const char *name, int family)
{
	uint8_t a[16];
	char back[FAKEDNS_NAME_MAX + 1];

	if (fakedns_addr_for(name, family, a) != 0)
		return -1;
	union sa_any sa = sa_raw(family, a);
	if (fakedns_name_for(&sa.sa, back, sizeof(back)) <= 0 || strcasecmp(back, name))
		return -1;
	return family == AF_INET ? v4_entry(a) : v6_entry(a);
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	char name[64];

	for (unsigned i = 0; i < NAMES; i++) {
		int family = i % 2 ? AF_INET6 : AF_INET;
		snprintf(name, sizeof(name), "t%u-%u.example", w->id, i);
		w->own[i] = resolve_and_check(name, family);
		/* every thread walks the shared names in the same order, so that
		 * they race to allocate each one, in its own case */
		unsigned s = i % SHARED;
		snprintf(name, sizeof(name),
		         w->id % 2 ? "SHARED-%u.example" : "shared-%u.EXAMPLE", s);
		w->shared[s] = resolve_and_check(name, family);
		if (w->own[i] < 0 || w->shared[s] < 0)
			w->errors++;
	}
	return NULL;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static void test_threads(void)
{
	static struct worker w[THREADS];
	static long all[THREADS * NAMES + SHARED];
	unsigned errors = 0, mismatched = 0, dups = 0;
	size_t n = 0;
	uint8_t a[4];

	fresh_default_pool();
	for (unsigned t = 0; t < THREADS; t++) {
		w[t].id = t;
		if (pthread_create(&w[t].tid, NULL, worker_run, &w[t]) != 0)
			abort();
	}
	for (unsigned t = 0; t < THREADS; t++) {
		pthread_join(w[t].tid, NULL);
		errors += w[t].errors;
	}
	tap_is(errors, 0, "threads: %u x %u names map to addresses and back", THREADS,
	       NAMES + SHARED);
	for (unsigned s = 0; s < SHARED; s++)
		for (unsigned t = 1; t < THREADS; t++)
			if (w[t].shared[s] != w[0].shared[s])
				mismatched++;
	tap_is(mismatched, 0, "threads: a shared name has one entry in every thread");
	for (unsigned t = 0; t < THREADS; t++)
		for (unsigned i = 0; i < NAMES; i++)
			all[n++] = w[t].own[i];
	for (unsigned s = 0; s < SHARED; s++)
		all[n++] = w[0].shared[s];
	qsort(all, n, sizeof(all[0]), cmp_long);
	for (size_t i = 1; i < n; i++)
		if (all[i] == all[i - 1])
			dups++;
	tap_is(dups, 0, "threads: no two names share an entry");
	tap_ok(fakedns_addr_for("last.example", AF_INET, a) == 0 &&
	               v4_entry(a) == THREADS * NAMES + SHARED,
	       "threads: exactly %u entries were allocated", THREADS * NAMES + SHARED);
}

enum { MP_PROCS = 2, MP_THREADS = 4, MP_NAMES = 3000 };

static void *mp_run(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg, bad = 0;
	char name[64];

	for (unsigned i = 0; i < MP_NAMES; i++) {
		snprintf(name, sizeof(name), "mp-%u.example",
		         (i * 13 + id * 577) % MP_NAMES);
		if (resolve_and_check(name, id % 2 ? AF_INET6 : AF_INET) < 0)
			bad++;
	}
	return (void *)(uintptr_t)bad;
}

/* Threads of several processes resolve the same names at once. */
static void test_processes(void)
{
	pid_t pids[MP_PROCS];
	int failed = 0;
	uint8_t a[4];

	fresh_default_pool();
	for (unsigned p = 0; p < MP_PROCS; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			pthread_t tids[MP_THREADS];
			uintptr_t bad = 0;
			for (unsigned t = 0; t < MP_THREADS; t++)
				pthread_create(&tids[t], NULL, mp_run,
				               (void *)(uintptr_t)(p * MP_THREADS + t));
			for (unsigned t = 0; t < MP_THREADS; t++) {
				void *r;
				pthread_join(tids[t], &r);
				bad += (uintptr_t)r;
			}
			_exit(bad ? 1 : 0);
		}
	}
	for (unsigned p = 0; p < MP_PROCS; p++)
		if (wait_child(pids[p]) != 0)
			failed++;
	tap_is(failed, 0, "processes: %u x %u threads resolve the same names", MP_PROCS,
	       MP_THREADS);
	tap_ok(fakedns_addr_for("last.example", AF_INET, a) == 0 &&
	               v4_entry(a) == MP_NAMES,
	       "processes: %u names took exactly %u entries", MP_NAMES, MP_NAMES);
}

static void die_holding_the_lock(void)
{
	raise(SIGKILL);
}

/* A process killed inside the locked section: the next locker recovers. */
static void test_owner_died(void)
{
	uint8_t a[4];

	fresh_default_pool();
	check_addr("before.example", AF_INET, "240.0.0.1");
	pid_t pid = fork();
	if (pid == 0) {
		fakedns_locked_hook_for_tests = die_holding_the_lock;
		fakedns_addr_for("dead.example", AF_INET, a);
		_exit(0);
	}
	tap_is(wait_child(pid), 128 + SIGKILL, "a child died holding the pool's lock");
	check_addr("after.example", AF_INET, "240.0.0.3");
	check_name("240.0.0.2", "dead.example");
	check_addr("DEAD.example", AF_INET, "240.0.0.2");
	check_addr("after.example", AF_INET, "240.0.0.3");
	check_addr("before.example", AF_INET, "240.0.0.1");
	/* and once more, with the lock recovered: still usable from a child */
	pid = fork();
	if (pid == 0)
		_exit(fakedns_addr_for("child-after.example", AF_INET, a) == 0 &&
		                      v4_entry(a) == 3
		              ? 0
		              : 1);
	tap_is(wait_child(pid), 0, "after recovery a child allocates");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], EXEC_CHILD_FLAG) == 0)
		return exec_child(argc, argv);
	self_path = strchr(argv[0], '/') ? argv[0] : "/proc/self/exe";
	tap_init();
	alarm(300); /* a deadlock fails the test instead of hanging it */
	test_params();
	test_descriptor();
	test_lookups();
	test_twins();
	test_invalid_names();
	test_foreign_addresses();
	test_full();
	test_fork();
	test_exec();
	test_inherited();
	test_fallbacks();
	test_threads();
	test_processes();
	test_owner_died();
	fakedns_detach_for_tests();
	return tap_done();
}
