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

void secret_scrub_url(char *url)
{
	char *sep = strstr(url, "://");
	char *auth = sep ? sep + 3 : url;
	char *at = strrchr(auth, '@');
	char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;

	if (colon)
		memset(colon + 1, '*', (size_t)(at - colon - 1));
}

/* --- the memfd --------------------------------------------------------------------- */

/* A sealed memfd holding text[0..len), at SECRET_FD_MIN or above and not
 * close-on-exec: the descriptor or -errno. */
static int secret_memfd(const char *text, size_t len)
{
	int fd = memfd_create("socksify-secret",
	                      MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
	if (fd < 0 && errno == EINVAL) /* a kernel before 6.3 */
		fd = memfd_create("socksify-secret", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;
			close(fd);
			return -err;
		}
		done += (size_t)n;
	}
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

int secret_export(const struct config_proxy *p)
{
	char url[SECRET_TEXT_MAX], shown[SECRET_TEXT_MAX], num[16];

	if (secret_proxy_url(p, true, url, sizeof(url)) < 0 ||
	    secret_proxy_url(p, false, shown, sizeof(shown)) < 0)
		return -ENAMETOOLONG;
	int fd = secret_memfd(url, strlen(url));
	explicit_bzero(url, sizeof(url));
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
	 * any more but /proc/PID/environ, which must not show the password */
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

/* fd checked (a memfd with every seal, ours, a sane size) and read into buf,
 * NUL-terminated: 0, or -1 with why. */
static int secret_read(int fd, char *buf, size_t cap, char *why, size_t whylen)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0 && errno == EBADF)
		return config_why(why, whylen, "descriptor %d is not open", fd);
	if (seals < 0)
		return config_why(why, whylen, "descriptor %d is not a memfd", fd);
	if ((seals & SECRET_SEALS) != SECRET_SEALS)
		return config_why(why, whylen,
		                  "the memfd on descriptor %d is not sealed "
		                  "(write, shrink, grow and seal)",
		                  fd);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return config_why(why, whylen, "descriptor %d is not a memfd", fd);
	if (st.st_uid != geteuid())
		return config_why(why, whylen,
		                  "the memfd on descriptor %d belongs to another user",
		                  fd);
	if (st.st_size <= 0 || (size_t)st.st_size >= cap)
		return config_why(why, whylen,
		                  "the memfd on descriptor %d has %lld bytes", fd,
		                  (long long)st.st_size);
	size_t len = (size_t)st.st_size;
	ssize_t n;
	do
		n = pread(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len)
		return config_why(why, whylen, "cannot read descriptor %d", fd);
	buf[len] = '\0';
	if (strlen(buf) != len)
		return config_why(why, whylen, "NUL byte in the memfd on descriptor %d",
		                  fd);
	return 0;
}

/* b is a, the password left out. */
static bool same_but_password(const struct config_proxy *a, const struct config_proxy *b)
{
	return a->has_auth && b->has_auth && a->pass[0] == '\0' &&
	       a->remote_dns == b->remote_dns && a->port == b->port &&
	       strcmp(a->host, b->host) == 0 && strcmp(a->user, b->user) == 0;
}

int secret_apply(struct config *cfg, const char *fd_text, char *err, size_t errlen)
{
	struct where w = {SECRET_ENV_FD, 0, err, errlen};
	char text[SECRET_TEXT_MAX], why[WHY_LEN], buf[SHOW_MAX + 4];
	struct config_proxy p;
	int fd = secret_fd_number(fd_text);

	if (fd < 0)
		return config_fail(&w, "'%s' is not a descriptor number",
		                   config_show(buf, fd_text, strlen(fd_text)));
	if (secret_read(fd, text, sizeof(text), why, sizeof(why)) < 0)
		return config_fail(&w, "%s", why);
	int rc = config_url_parse(&p, text, why, sizeof(why));
	explicit_bzero(text, sizeof(text));
	if (rc < 0 || !secret_has_password(&p)) {
		explicit_bzero(&p, sizeof(p));
		return config_fail(&w,
		                   "the memfd on descriptor %d holds no proxy URL "
		                   "with a password",
		                   fd);
	}
	if (same_but_password(&cfg->proxy, &p)) {
		cfg->proxy = p;
		cfg->proxy_secret = true;
	}
	explicit_bzero(&p, sizeof(p));
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
