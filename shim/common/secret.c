/* SPDX-License-Identifier: MIT */
/*
 * The proxy's credentials in a sealed memfd instead of the environment (see
 * secret.h): the URL written out, the memfd made and sealed, and one read
 * back and checked. No malloc, no stdio: it runs in the shim's start-up.
 */
#include "secret.h"

#include "config_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U /* Linux 6.3; required when vm.memfd_noexec = 2 */
#endif

/* --- the URL ----------------------------------------------------------------------- */

struct out {
	char *buf;
	size_t cap, len;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || o->len + n >= o->cap) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

/* s percent-encoded: RFC 3986's unreserved characters as they are. */
static void put_encoded(struct out *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		char c = *s;
		if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			put(o, &c, 1);
		} else {
			unsigned char u = (unsigned char)c;
			char e[3] = {'%', hex[u >> 4], hex[u & 15]};
			put(o, e, 3);
		}
	}
}

int secret_proxy_url(const struct config_proxy *p, bool with_pass, char *out, size_t cap)
{
	struct out o = {out, cap, 0, cap == 0};
	char port[8];

	if (cap > 0)
		out[0] = '\0';
	put(&o, p->remote_dns ? "socks5h://" : "socks5://",
	    p->remote_dns ? sizeof("socks5h://") - 1 : sizeof("socks5://") - 1);
	if (p->has_auth) {
		put_encoded(&o, p->user);
		if (with_pass && p->pass[0]) {
			put(&o, ":", 1);
			put_encoded(&o, p->pass);
		}
		put(&o, "@", 1);
	}
	bool v6 = strchr(p->host, ':') != NULL;
	if (v6)
		put(&o, "[", 1);
	put(&o, p->host, strlen(p->host));
	if (v6)
		put(&o, "]", 1);
	int n = snprintf(port, sizeof(port), ":%u", (unsigned)p->port);
	put(&o, port, (size_t)n);
	return o.full ? -1 : 0;
}

/* One URL of n bytes: its password overwritten. */
static void scrub_one(char *url, size_t n)
{
	char *end = url + n;
	char *auth = url;

	for (char *c = url; c + 3 <= end; c++)
		if (memcmp(c, "://", 3) == 0) {
			auth = c + 3;
			break;
		}
	char *at = NULL;
	for (char *c = auth; c < end; c++)
		if (*c == '@')
			at = c;
	char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon)
		memset(colon + 1, '*', (size_t)(at - colon - 1));
}

void secret_scrub_url(char *url)
{
	for (;;) {
		size_t n = config_first_url_len(url);
		scrub_one(url, n);
		if (url[n] == '\0')
			return;
		url += n + 1;
	}
}

/* The i-th URL of a list (config_first_url_len), blanks around it left out,
 * copied into out[cap]: its length, or -1 when there is none or it does not
 * fit. */
static int list_item(const char *list, unsigned i, char *out, size_t cap)
{
	size_t n = config_first_url_len(list);

	for (; i > 0; i--) {
		if (list[n] == '\0')
			return -1;
		list += n + 1;
		n = config_first_url_len(list);
	}
	while (n > 0 && (*list == ' ' || *list == '\t')) {
		list++;
		n--;
	}
	while (n > 0 && (list[n - 1] == ' ' || list[n - 1] == '\t'))
		n--;
	if (n >= cap)
		return -1;
	memcpy(out, list, n);
	out[n] = '\0';
	return (int)n;
}

bool secret_list_has_password(const char *list)
{
	char url[SECRET_TEXT_MAX];
	struct config_proxy p;
	bool found = false;

	for (unsigned i = 0; !found && list_item(list, i, url, sizeof(url)) >= 0; i++)
		found = config_url_parse(&p, url, NULL, 0) == 0 &&
		        secret_has_password(&p);
	explicit_bzero(url, sizeof(url));
	explicit_bzero(&p, sizeof(p));
	return found;
}

bool secret_needs_export(const struct config *cfg)
{
	for (unsigned i = 0; i < cfg->nproxies; i++)
		if (secret_has_password(&cfg->proxies[i]) &&
		    !(cfg->proxy_secret & (1U << i)))
			return true;
	return false;
}

/* --- the memfd --------------------------------------------------------------------- */

/* A memfd to write the URLs into: the descriptor or -errno. */
static int secret_memfd_open(void)
{
	int fd = memfd_create("socksify-secret",
	                      MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL) /* a kernel before 6.3 */
		fd = memfd_create("socksify-secret", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? -errno : fd;
}

/* text[0..len) written to fd: 0 or -errno. */
static int write_all(int fd, const char *text, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* fd sealed and moved to SECRET_FD_MIN or above, not close-on-exec: the
 * descriptor or -errno (fd closed). */
static int secret_memfd_seal(int fd)
{
	if (fcntl(fd, F_ADD_SEALS, SECRET_SEALS) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	int high = fcntl(fd, F_DUPFD, SECRET_FD_MIN);
	if (high >= 0) {
		close(fd);
		return high;
	}
	/* RLIMIT_NOFILE below SECRET_FD_MIN: keep the number we have */
	fcntl(fd, F_SETFD, 0);
	return fd;
}

/* Every proxy of cfg with a password, as a URL, one a line, into a sealed
 * memfd: the descriptor or -errno. */
static int secret_memfd(const struct config *cfg)
{
	char url[SECRET_TEXT_MAX];
	int fd = secret_memfd_open();

	for (unsigned i = 0; fd >= 0 && i < cfg->nproxies; i++) {
		if (!secret_has_password(&cfg->proxies[i]))
			continue;
		int rc = secret_proxy_url(&cfg->proxies[i], true, url, sizeof(url)) < 0
		                 ? -ENAMETOOLONG
		                 : write_all(fd, url, strlen(url));
		if (rc == 0)
			rc = write_all(fd, "\n", 1);
		if (rc < 0) {
			close(fd);
			fd = rc;
		}
	}
	explicit_bzero(url, sizeof(url));
	return fd < 0 ? fd : secret_memfd_seal(fd);
}

/* cfg's proxies without their passwords, separated by commas: 0 or -1. */
static int shown_list(const struct config *cfg, char *out, size_t cap)
{
	size_t len = 0;

	for (unsigned i = 0; i < cfg->nproxies; i++) {
		if (i > 0 && len + 1 < cap)
			out[len++] = ',';
		if (secret_proxy_url(&cfg->proxies[i], false, out + len, cap - len) < 0)
			return -1;
		len += strlen(out + len);
	}
	return 0;
}

int secret_export(const struct config *cfg)
{
	char shown[SECRET_SHOWN_MAX], num[16];

	if (shown_list(cfg, shown, sizeof(shown)) < 0)
		return -ENAMETOOLONG;
	int fd = secret_memfd(cfg);
	if (fd < 0)
		return fd;
	char *old = getenv(CONFIG_ENV_PROXY);
	snprintf(num, sizeof(num), "%d", fd);
	if (setenv(SECRET_ENV_FD, num, 1) < 0 || setenv(CONFIG_ENV_PROXY, shown, 1) < 0) {
		int err = errno;
		unsetenv(SECRET_ENV_FD);
		close(fd);
		return -err;
	}
	/* setenv() leaves the old string where it was: nothing points to it
	 * any more but /proc/PID/environ, which must not show the passwords */
	if (old)
		secret_scrub_url(old);
	return fd;
}

int secret_fd_number(const char *s)
{
	long n = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (!is_digit(*s) || n > 1 << 24)
			return -1;
		n = n * 10 + (*s - '0');
	}
	return (int)n;
}

/* fd checked (a memfd with every seal, ours, a sane size, no NUL) and
 * mapped: the text and its length in *len, or NULL with why. */
static const char *secret_map(int fd, size_t *len, char *why, size_t whylen)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0 && errno == EBADF)
		return config_why(why, whylen, "descriptor %d is not open", fd), NULL;
	if (seals < 0)
		return config_why(why, whylen, "descriptor %d is not a memfd", fd), NULL;
	if ((seals & SECRET_SEALS) != SECRET_SEALS)
		return config_why(why, whylen,
		                  "the memfd on descriptor %d is not sealed "
		                  "(write, shrink, grow and seal)",
		                  fd),
		       NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return config_why(why, whylen, "descriptor %d is not a memfd", fd), NULL;
	if (st.st_uid != geteuid())
		return config_why(why, whylen,
		                  "the memfd on descriptor %d belongs to another user",
		                  fd),
		       NULL;
	if (st.st_size <= 0 || st.st_size > SECRET_LIST_MAX)
		return config_why(why, whylen,
		                  "the memfd on descriptor %d has %lld bytes", fd,
		                  (long long)st.st_size),
		       NULL;
	*len = (size_t)st.st_size;
	void *map = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return config_why(why, whylen, "cannot read descriptor %d", fd), NULL;
	if (memchr(map, '\0', *len)) {
		munmap(map, *len);
		return config_why(why, whylen, "NUL byte in the memfd on descriptor %d",
		                  fd),
		       NULL;
	}
	return map;
}

/* The i-th line of text[0..len) (one URL) parsed into *p: 0, or -1 when
 * there is none; 1 when it is not a URL with a password. */
static int secret_line(const char *text, size_t len, unsigned i, struct config_proxy *p)
{
	char url[SECRET_TEXT_MAX];
	const char *end = text + len;

	for (; i > 0 && text < end; i--) {
		const char *nl = memchr(text, '\n', (size_t)(end - text));
		text = nl ? nl + 1 : end;
	}
	if (text >= end)
		return -1;
	const char *nl = memchr(text, '\n', (size_t)(end - text));
	size_t n = (size_t)((nl ? nl : end) - text);
	if (n >= sizeof(url))
		return 1;
	memcpy(url, text, n);
	url[n] = '\0';
	int rc = config_url_parse(p, url, NULL, 0);
	explicit_bzero(url, sizeof(url));
	return rc == 0 && secret_has_password(p) ? 0 : 1;
}

/* b is a, the password left out. */
static bool same_but_password(const struct config_proxy *a, const struct config_proxy *b)
{
	return a->has_auth && b->has_auth && a->pass[0] == '\0' &&
	       a->remote_dns == b->remote_dns && a->port == b->port &&
	       strcmp(a->host, b->host) == 0 && strcmp(a->user, b->user) == 0;
}

/* Each proxy of cfg without a password takes the first line of the memfd
 * that is the same proxy and that no other proxy took. */
static void secret_match(struct config *cfg, const char *text, size_t len)
{
	struct config_proxy p;
	unsigned taken = 0;

	for (unsigned i = 0; i < cfg->nproxies; i++)
		for (unsigned j = 0; secret_line(text, len, j, &p) == 0; j++)
			if (!(taken & (1U << j)) &&
			    same_but_password(&cfg->proxies[i], &p)) {
				cfg->proxies[i] = p;
				cfg->proxy_secret |= 1U << i;
				taken |= 1U << j;
				break;
			}
	explicit_bzero(&p, sizeof(p));
}

int secret_apply(struct config *cfg, const char *fd_text, char *err, size_t errlen)
{
	struct where w = {SECRET_ENV_FD, 0, err, errlen};
	char why[WHY_LEN], buf[SHOW_MAX + 4];
	struct config_proxy p;
	size_t len;
	int fd = secret_fd_number(fd_text);

	if (fd < 0)
		return config_fail(&w, "'%s' is not a descriptor number",
		                   config_show(buf, fd_text, strlen(fd_text)));
	const char *text = secret_map(fd, &len, why, sizeof(why));
	if (!text)
		return config_fail(&w, "%s", why);
	int rc = 0;
	unsigned n = 0;
	while (rc == 0 && (rc = secret_line(text, len, n, &p)) == 0)
		n++;
	explicit_bzero(&p, sizeof(p));
	if (n > CONFIG_MAX_PROXIES) {
		munmap((void *)text, len);
		return config_fail(&w,
		                   "the memfd on descriptor %d holds more than %d URLs",
		                   fd, CONFIG_MAX_PROXIES);
	}
	if (rc > 0 || n == 0) {
		munmap((void *)text, len);
		return config_fail(&w,
		                   "the memfd on descriptor %d holds no proxy URL "
		                   "with a password",
		                   fd);
	}
	secret_match(cfg, text, len);
	munmap((void *)text, len);
	return 0;
}

/* A file with a proxy password that group or others may read: the first
 * one is kept for the caller's warning. */
void secret_note_readable(struct config *cfg, int fd, const char *path)
{
	struct stat st;

	if (cfg->insecure_file[0] == '\0' && fstat(fd, &st) == 0 &&
	    (st.st_mode & (S_IRGRP | S_IROTH)))
		snprintf(cfg->insecure_file, sizeof(cfg->insecure_file), "%s", path);
}
