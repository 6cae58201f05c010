/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the proxy's credentials out of the environment
 * (shim/common/secret.c, and config_load()'s part in it), printed as TAP: the
 * URL written back as it parses, the password overwritten in place, the
 * sealed memfd made and read back through SOCKSIFY_SECRET_FD, every way a
 * descriptor can be wrong (each an exact error that never shows the
 * password), the memfd applied only to its own proxy, lists of proxies (each
 * gets back its own password), and the
 * configuration file with a password that others may read.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "secret.h"
#include "tap.h"

static char err[CONFIG_ERR_LEN];
static struct config cfg;

/* --- URLs -------------------------------------------------------------------------- */

/* u parses, is written back (with and without its password) and parses to
 * the same proxy (the second without the password). */
static void round_trip(const char *u)
{
	struct config_proxy a, b, c;
	char out[SECRET_TEXT_MAX], bare[SECRET_TEXT_MAX];

	if (!tap_ok(config_parse_proxy_url(&a, u, NULL, err, sizeof(err)) == 0,
	            "parses: %s", u)) {
		tap_diag("%s", err);
		return;
	}
	int r1 = secret_proxy_url(&a, true, out, sizeof(out));
	int r2 = secret_proxy_url(&a, false, bare, sizeof(bare));
	bool same = r1 == 0 && config_parse_proxy_url(&b, out, NULL, NULL, 0) == 0 &&
	            memcmp(&a, &b, sizeof(a)) == 0;
	if (!tap_ok(same, "written back with the password, the same proxy"))
		tap_diag("%d '%s'", r1, out);
	memset(a.pass, 0, sizeof(a.pass));
	same = r2 == 0 && config_parse_proxy_url(&c, bare, NULL, NULL, 0) == 0 &&
	       memcmp(&a, &c, sizeof(a)) == 0;
	if (!tap_ok(same, "written back without it: %s", bare))
		tap_diag("%d", r2);
}

static void test_urls(void)
{
	struct config_proxy p;
	char out[SECRET_TEXT_MAX], big[SECRET_TEXT_MAX];

	round_trip("socks5://user:secretpw@127.0.0.1:1080");
	round_trip("socks5h://al%40ice:p%3Aw%25d%20%2F%23@[2001:db8::1]:1");
	round_trip("socks5://u@proxy.example:65535");
	round_trip("socks5h://u:@proxy.example:9");
	round_trip("socks5://proxy.example:1080");
	round_trip("socks5h://%C3%A9:%FF%01~._-@h:2");

	/* 255 bytes each, every one encoded: 3 * 510 bytes and the rest */
	size_t n = (size_t)snprintf(big, sizeof(big), "socks5://");
	for (int i = 0; i < 255; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%%2F");
	n += (size_t)snprintf(big + n, sizeof(big) - n, ":");
	for (int i = 0; i < 255; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%%40");
	snprintf(big + n, sizeof(big) - n, "@h:1");
	config_parse_proxy_url(&p, big, NULL, NULL, 0);
	tap_ok(secret_proxy_url(&p, true, out, sizeof(out)) == 0 && strcmp(out, big) == 0,
	       "the longest credentials fit in SECRET_TEXT_MAX");
	tap_ok(secret_proxy_url(&p, true, out, 100) == -1, "too small a buffer: -1");

	char s1[] = "socks5://user:secretpw@h:1", s2[] = "socks5h://u@h:1",
	     s3[] = "socks5://u:p@w@h:1", s4[] = "u:pw@h:1";
	secret_scrub_url(s1);
	secret_scrub_url(s2);
	secret_scrub_url(s3);
	secret_scrub_url(s4);
	tap_ok(strcmp(s1, "socks5://user:********@h:1") == 0, "scrub: %s", s1);
	tap_ok(strcmp(s2, "socks5h://u@h:1") == 0, "scrub without a password: %s", s2);
	tap_ok(strcmp(s3, "socks5://u:***@h:1") == 0, "scrub up to the last '@': %s", s3);
	tap_ok(strcmp(s4, "u:**@h:1") == 0, "scrub without a scheme: %s", s4);
}

/* --- the memfd through config_load() ----------------------------------------------- */

/* A memfd holding text with these seals. */
static int memfd_with(const char *text, unsigned seals)
{
	int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
		perror("memfd");
		exit(2);
	}
	return fd;
}

/* config_load() with no files and the process's environment. */
static int load(void)
{
	err[0] = '\0';
	return config_load(&cfg, NULL, getenv, err, sizeof(err));
}

/* SOCKSIFY_SECRET_FD=fd_text fails with exactly "SOCKSIFY_SECRET_FD: want". */
static void load_fails(const char *fd_text, const char *want, const char *what)
{
	char full[CONFIG_ERR_LEN];

	setenv(SECRET_ENV_FD, fd_text, 1);
	snprintf(full, sizeof(full), "SOCKSIFY_SECRET_FD: %s", want);
	int r = load();
	if (!tap_ok(r == -1 && strcmp(err, full) == 0, "%s: %s", what, want))
		tap_diag("got %d '%s'", r, err);
	tap_ok(!strstr(err, "secretpw"), "the message has no password");
}

static void test_export(void)
{
	setenv(CONFIG_ENV_PROXY, "socks5://user:secretpw@127.0.0.1:1080", 1);
	unsetenv(SECRET_ENV_FD);
	tap_ok(load() == 0 && strcmp(cfg.proxy.pass, "secretpw") == 0 &&
	               !cfg.proxy_secret,
	       "SOCKSIFY_PROXY with a password: used as it is");
	char *old = getenv(CONFIG_ENV_PROXY);
	int fd = secret_export(&cfg);
	tap_ok(fd >= SECRET_FD_MIN, "secret_export: descriptor %d, not below %d", fd,
	       SECRET_FD_MIN);
	tap_ok(strcmp(getenv(CONFIG_ENV_PROXY), "socks5://user@127.0.0.1:1080") == 0,
	       "SOCKSIFY_PROXY without the password: %s", getenv(CONFIG_ENV_PROXY));
	tap_ok(strcmp(old, "socks5://user:********@127.0.0.1:1080") == 0,
	       "the old string overwritten: %s", old);
	tap_ok(atoi(getenv(SECRET_ENV_FD)) == fd, "SOCKSIFY_SECRET_FD names it");
	tap_is(fcntl(fd, F_GETFD), 0, "not close-on-exec");
	tap_is(fcntl(fd, F_GET_SEALS) & 15,
	       F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
	       "sealed: write, shrink, grow, seal (and exec where the kernel has it)");
	tap_ok(pwrite(fd, "x", 1, 0) == -1 && errno == EPERM, "a write fails: EPERM");

	tap_ok(load() == 0 && strcmp(cfg.proxy.pass, "secretpw") == 0 &&
	               strcmp(cfg.proxy.user, "user") == 0 && cfg.proxy_secret &&
	               cfg.proxy.port == 1080,
	       "config_load takes the password from the memfd");

	setenv(CONFIG_ENV_PROXY, "socks5://user@127.0.0.1:1081", 1);
	tap_ok(load() == 0 && cfg.proxy.pass[0] == '\0' && !cfg.proxy_secret,
	       "another port: not this proxy's password");
	setenv(CONFIG_ENV_PROXY, "socks5://bob@127.0.0.1:1080", 1);
	tap_ok(load() == 0 && cfg.proxy.pass[0] == '\0' && !cfg.proxy_secret,
	       "another user: not his password");
	setenv(CONFIG_ENV_PROXY, "socks5h://user@127.0.0.1:1080", 1);
	tap_ok(load() == 0 && cfg.proxy.pass[0] == '\0' && !cfg.proxy_secret,
	       "another scheme: not applied");
	setenv(CONFIG_ENV_PROXY, "socks5://user:other@127.0.0.1:1080", 1);
	tap_ok(load() == 0 && strcmp(cfg.proxy.pass, "other") == 0 && !cfg.proxy_secret,
	       "a password of its own: kept");
	setenv(CONFIG_ENV_PROXY, "socks5://user@127.0.0.1:1080", 1);

	int pipefd[2];
	if (pipe(pipefd) < 0)
		exit(2);
	char num[16], want[160];
	snprintf(num, sizeof(num), "%d", pipefd[0]);
	snprintf(want, sizeof(want), "descriptor %d is not a memfd", pipefd[0]);
	load_fails(num, want, "a pipe");
	close(pipefd[0]);
	close(pipefd[1]);
	snprintf(want, sizeof(want), "descriptor %d is not open", pipefd[0]);
	load_fails(num, want, "a closed descriptor");
	load_fails("9x", "'9x' is not a descriptor number", "not a number");
	load_fails("-1", "'-1' is not a descriptor number", "negative");

	static const struct {
		const char *text;
		unsigned seals;
		const char *problem, *what;
	} bad[] = {
	        {"socks5://user:secretpw@127.0.0.1:1080", 0,
	         "is not sealed (write, shrink, grow and seal)", "unsealed"},
	        {"socks5://user:secretpw@127.0.0.1:1080",
	         F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
	         "is not sealed (write, shrink, grow and seal)", "writable"},
	        {"", F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
	         "has 0 bytes", "empty"},
	        {"secretpw", F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
	         "holds no proxy URL with a password", "not a URL"},
	        {"socks5://user@127.0.0.1:1080",
	         F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
	         "holds no proxy URL with a password", "no password"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int m = memfd_with(bad[i].text, bad[i].seals);
		snprintf(num, sizeof(num), "%d", m);
		snprintf(want, sizeof(want), "the memfd on descriptor %d %s", m,
		         bad[i].problem);
		load_fails(num, want, bad[i].what);
		close(m);
	}
	close(fd);
	unsetenv(SECRET_ENV_FD);
	unsetenv(CONFIG_ENV_PROXY);
}

/* --- several proxies --------------------------------------------------------------- */

/* The memfd's text (at most cap - 1 bytes). */
static const char *memfd_text(int fd, char *buf, size_t cap)
{
	ssize_t n = pread(fd, buf, cap - 1, 0);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

/* SOCKSIFY_PROXY=list exported: the memfd holds want_fd, SOCKSIFY_PROXY is
 * want_env and the old string want_old; the descriptor. */
static int export_list(const char *list, const char *want_fd, const char *want_env,
                       const char *want_old, const char *what)
{
	char buf[SECRET_LIST_MAX];

	setenv(CONFIG_ENV_PROXY, list, 1);
	unsetenv(SECRET_ENV_FD);
	if (!tap_ok(load() == 0 && secret_needs_export(&cfg), "%s: loads, to export",
	            what))
		tap_diag("%s", err);
	char *old = getenv(CONFIG_ENV_PROXY);
	int fd = secret_export(&cfg);
	tap_ok(fd >= 0 && strcmp(memfd_text(fd, buf, sizeof(buf)), want_fd) == 0,
	       "%s: the memfd has each URL with a password", what);
	if (fd >= 0 && strcmp(buf, want_fd) != 0)
		tap_diag("'%s'", buf);
	tap_ok(strcmp(getenv(CONFIG_ENV_PROXY), want_env) == 0, "%s: SOCKSIFY_PROXY=%s",
	       what, getenv(CONFIG_ENV_PROXY));
	tap_ok(strcmp(old, want_old) == 0, "%s: the old string: %s", what, old);
	return fd;
}

static void test_list_export(void)
{
	int fd = export_list(
	        "socks5://alice:pw1@127.0.0.1:1080, socks5h://bob:pw2@[::1]:1081",
	        "socks5://alice:pw1@127.0.0.1:1080\n"
	        "socks5h://bob:pw2@[::1]:1081\n",
	        "socks5://alice@127.0.0.1:1080,socks5h://bob@[::1]:1081",
	        "socks5://alice:***@127.0.0.1:1080, socks5h://bob:***@[::1]:1081",
	        "two passwords");
	tap_ok(load() == 0 && cfg.nproxies == 2 &&
	               strcmp(cfg.proxies[0].pass, "pw1") == 0 &&
	               strcmp(cfg.proxies[1].pass, "pw2") == 0 && cfg.proxy_secret == 3 &&
	               !secret_needs_export(&cfg),
	       "two passwords: each proxy its own from the memfd");
	setenv(CONFIG_ENV_PROXY, "socks5h://bob@[::1]:1081,socks5://alice@127.0.0.1:1080",
	       1);
	tap_ok(load() == 0 && strcmp(cfg.proxies[0].pass, "pw2") == 0 &&
	               strcmp(cfg.proxies[1].pass, "pw1") == 0 && cfg.proxy_secret == 3,
	       "the list the other way round: still each its own");
	setenv(CONFIG_ENV_PROXY, "socks5://alice@127.0.0.1:1081,socks5h://bob@[::1]:1081",
	       1);
	tap_ok(load() == 0 && cfg.proxies[0].pass[0] == '\0' &&
	               strcmp(cfg.proxies[1].pass, "pw2") == 0 && cfg.proxy_secret == 2,
	       "another port for alice: no password for her, bob's for bob");
	setenv(CONFIG_ENV_PROXY, "socks5://bob@127.0.0.1:1080", 1);
	tap_ok(load() == 0 && cfg.proxy.pass[0] == '\0' && cfg.proxy_secret == 0,
	       "bob on alice's proxy: not her password");
	close(fd);

	fd = export_list("socks5://alice:pw1@h1:1,socks5://carol@h2:2,socks5h://h3:3",
	                 "socks5://alice:pw1@h1:1\n",
	                 "socks5://alice@h1:1,socks5://carol@h2:2,socks5h://h3:3",
	                 "socks5://alice:***@h1:1,socks5://carol@h2:2,socks5h://h3:3",
	                 "one with a password, two without");
	tap_ok(load() == 0 && cfg.nproxies == 3 &&
	               strcmp(cfg.proxies[0].pass, "pw1") == 0 &&
	               cfg.proxies[1].has_auth && cfg.proxies[1].pass[0] == '\0' &&
	               !cfg.proxies[2].has_auth && cfg.proxy_secret == 1,
	       "one with, two without: only the first has one");
	close(fd);

	/* the splitter cuts at a comma followed by a scheme and "://" only */
	fd = export_list("socks5://alice:a,b@h:1,socks5://alice:c%2Cd@h:2",
	                 "socks5://alice:a%2Cb@h:1\nsocks5://alice:c%2Cd@h:2\n",
	                 "socks5://alice@h:1,socks5://alice@h:2",
	                 "socks5://alice:***@h:1,socks5://alice:*****@h:2",
	                 "commas in the passwords");
	tap_ok(load() == 0 && cfg.nproxies == 2 &&
	               strcmp(cfg.proxies[0].pass, "a,b") == 0 &&
	               strcmp(cfg.proxies[1].pass, "c,d") == 0,
	       "commas in the passwords: each its own");
	close(fd);

	fd = export_list("socks5://u:first@h:1,socks5://u:second@h:1",
	                 "socks5://u:first@h:1\nsocks5://u:second@h:1\n",
	                 "socks5://u@h:1,socks5://u@h:1",
	                 "socks5://u:*****@h:1,socks5://u:******@h:1",
	                 "the same proxy twice");
	tap_ok(load() == 0 && strcmp(cfg.proxies[0].pass, "first") == 0 &&
	               strcmp(cfg.proxies[1].pass, "second") == 0,
	       "the same proxy twice: each line taken once, in order");
	close(fd);
	unsetenv(SECRET_ENV_FD);
}

static void test_list_checks(void)
{
	char s1[] = "socks5://a:p1@h:1,socks5h://b:p,2@h:2, socks5://c@h:3";
	secret_scrub_url(s1);
	tap_ok(strcmp(s1, "socks5://a:**@h:1,socks5h://b:***@h:2, socks5://c@h:3") == 0,
	       "scrub a list: %s", s1);
	tap_ok(secret_list_has_password("socks5://h:1, socks5://a:p@h:2"),
	       "a list with a password in its second URL");
	tap_ok(!secret_list_has_password("socks5://a@h:1,socks5://a:@h:2,socks5://h:3"),
	       "a list with user names only");
	tap_ok(secret_list_has_password("socks5://a:p@h:1"), "one URL with a password");

	char num[16], want[160];
	unsigned all = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	setenv(CONFIG_ENV_PROXY, "socks5://a@h:1,socks5://b@h:2", 1);
	int m = memfd_with("socks5://a:secretpw@h:1\nsocks5://b@h:2\n", all);
	snprintf(num, sizeof(num), "%d", m);
	snprintf(want, sizeof(want),
	         "the memfd on descriptor %d holds no proxy URL with a password", m);
	load_fails(num, want, "a second line without a password");
	close(m);
	m = memfd_with("socks5://a:secretpw@h:1\n\nsocks5://b:secretpw@h:2\n", all);
	snprintf(num, sizeof(num), "%d", m);
	snprintf(want, sizeof(want),
	         "the memfd on descriptor %d holds no proxy URL with a password", m);
	load_fails(num, want, "an empty line");
	close(m);
	char nine[SECRET_LIST_MAX] = "";
	for (int i = 0; i < CONFIG_MAX_PROXIES + 1; i++)
		snprintf(nine + strlen(nine), sizeof(nine) - strlen(nine),
		         "socks5://a:secretpw@h:%d\n", i + 1);
	m = memfd_with(nine, all);
	snprintf(num, sizeof(num), "%d", m);
	snprintf(want, sizeof(want), "the memfd on descriptor %d holds more than %d URLs",
	         m, CONFIG_MAX_PROXIES);
	load_fails(num, want, "too many lines");
	close(m);
	m = memfd_with("socks5://a:secretpw@h:1\nsocks5://b:pw@h:2", all);
	snprintf(num, sizeof(num), "%d", m);
	setenv(SECRET_ENV_FD, num, 1);
	tap_ok(load() == 0 && strcmp(cfg.proxies[1].pass, "pw") == 0 &&
	               cfg.proxy_secret == 3,
	       "no newline after the last line: read as well");
	close(m);
	unsetenv(SECRET_ENV_FD);
	unsetenv(CONFIG_ENV_PROXY);
}

/* --- a configuration file that others may read ------------------------------------- */

static void file_case(const char *path, const char *text, mode_t mode, bool warned,
                      const char *what)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0 || chmod(path, mode) < 0) {
		perror(path);
		exit(2);
	}
	setenv(CONFIG_ENV_CONF, path, 1);
	int r = load();
	bool ok = r == 0 && (warned ? strcmp(cfg.insecure_file, path) == 0
	                            : cfg.insecure_file[0] == '\0');
	if (!tap_ok(ok, "%s: %s", what, warned ? "insecure_file" : "no warning"))
		tap_diag("%d '%s' '%s'", r, err, cfg.insecure_file);
}

static void test_readable_file(void)
{
	char dir[] = "/tmp/test_secret.XXXXXX", path[64];
	if (!mkdtemp(dir))
		exit(2);
	snprintf(path, sizeof(path), "%s/s.conf", dir);
	const char *with = "proxy = socks5://user:secretpw@127.0.0.1:1080\n";
	file_case(path, with, 0644, true, "0644 with a password");
	file_case(path, with, 0640, true, "0640 with a password");
	file_case(path, with, 0604, true, "0604 with a password");
	file_case(path, with, 0600, false, "0600 with a password");
	file_case(path, "proxy = socks5://user@127.0.0.1:1080\n", 0644, false,
	          "0644 with a user name only");
	file_case(path, "log_level = info\n", 0644, false, "0644 without a proxy");
	file_case(path,
	          "proxy = socks5://127.0.0.1:1080\n"
	          "proxy = socks5://user:secretpw@127.0.0.1:1081\n",
	          0644, true, "0644, the second of two proxy lines with a password");
	file_case(path,
	          "proxy = socks5://user@127.0.0.1:1080, socks5://u@127.0.0.1:1081\n",
	          0644, false, "0644, two proxies with user names only");
	unsetenv(CONFIG_ENV_CONF);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	tap_init();
	unsetenv(CONFIG_ENV_CONF);
	unsetenv(CONFIG_ENV_PROXY);
	unsetenv(SECRET_ENV_FD);
	test_urls();
	test_export();
	test_list_export();
	test_list_checks();
	test_readable_file();
	return tap_done();
}
