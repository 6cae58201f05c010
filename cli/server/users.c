/* SPDX-License-Identifier: MIT */
/*
 * socksify-server's RFC 1929 users (see users.h): the list that -u and
 * --users fill, and the users file's reader. Every buffer that held a
 * password (the line, stdio's buffer) is wiped before it is given back.
 */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { USERS_FILE_MAX = 4 << 20 /* bytes: 1024 users fit many times over */ };

static void error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void error(const char *fmt, ...)
{
	va_list ap;
	fputs("socksify-server: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static bool known(const struct user_list *l, const char *user, size_t ulen)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].ulen == ulen && memcmp(l->v[i].user, user, ulen) == 0)
			return true;
	return false;
}

int users_add(struct user_list *l, const char *user, size_t ulen, const char *pass,
              size_t plen, const char *where)
{
	if (known(l, user, ulen)) {
		error("%s: this user is given twice", where);
		return -1;
	}
	if (l->n >= USERS_MAX) {
		error("%s: too many users (at most %d)", where, USERS_MAX);
		return -1;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct server_user *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			error("%s: %s", where, strerror(errno));
			return -1;
		}
		l->v = v;
		l->cap = cap;
	}
	char *copy = malloc(ulen + plen + 2);
	if (!copy) {
		error("%s: %s", where, strerror(errno));
		return -1;
	}
	struct server_user *u = &l->v[l->n++];
	memcpy(copy, user, ulen);
	copy[ulen] = '\0';
	memcpy(copy + ulen + 1, pass, plen);
	copy[ulen + 1 + plen] = '\0';
	*u = (struct server_user){copy, ulen, copy + ulen + 1, plen};
	return 0;
}

/* Opens `path` for reading if it is a regular file only its owner may use. */
static FILE *open_private(const char *path)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO must not block the start-up before it is refused. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		error("--users %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	const char *why = !S_ISREG(st.st_mode)          ? "not a regular file"
	                  : st.st_size > USERS_FILE_MAX ? "larger than 4 MiB"
	                                                : NULL;
	if (why)
		error("--users %s: %s", path, why);
	else if (st.st_mode & 077)
		error("--users %s: group or others have permissions on it (mode %04o); "
		      "chmod 600 it",
		      path, (unsigned)(st.st_mode & 07777));
	FILE *f = why || (st.st_mode & 077) ? NULL : fdopen(fd, "r");
	if (!f)
		close(fd);
	return f;
}

/* A line that is empty, blanks only, or a comment ('#' after any blanks). */
static bool skipped(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i == len || s[i] == '#';
}

/* One line without its '\n': 0, or -1 after the error naming path:lineno. */
static int add_line(struct user_list *l, const char *s, size_t len, const char *path,
                    unsigned long lineno)
{
	char where[4096 + 32];
	snprintf(where, sizeof(where), "%s:%lu", path, lineno);
	if (skipped(s, len))
		return 0;
	const char *colon = memchr(s, ':', len);
	size_t ulen = colon ? (size_t)(colon - s) : 0;
	size_t plen = colon ? len - ulen - 1 : 0;
	if (memchr(s, '\0', len)) {
		error("%s: a NUL byte in the line", where);
		return -1;
	}
	if (len > 0 && s[len - 1] == '\r') {
		error("%s: the line ends in a carriage return (DOS line endings?)",
		      where);
		return -1;
	}
	if (!colon || ulen < 1 || ulen > USERS_FIELD_MAX || plen < 1 ||
	    plen > USERS_FIELD_MAX) {
		error("%s: expected user:password (each 1 to %d bytes)", where,
		      USERS_FIELD_MAX);
		return -1;
	}
	return users_add(l, s, ulen, colon + 1, plen, where);
}

int users_load(struct user_list *l, const char *path)
{
	char iobuf[BUFSIZ];
	FILE *f = open_private(path);
	if (!f)
		return -1;
	/* Our own buffer for stdio, so that it can be wiped. */
	setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
	char *line = NULL;
	size_t cap = 0, before = l->n;
	unsigned long lineno = 0;
	ssize_t len;
	int rc = 0;
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		rc = add_line(l, line, (size_t)len, path, lineno);
	}
	if (rc == 0 && ferror(f)) {
		error("--users %s: %s", path, strerror(errno));
		rc = -1;
	}
	fclose(f);
	if (line)
		explicit_bzero(line, cap);
	free(line);
	explicit_bzero(iobuf, sizeof(iobuf));
	if (rc == 0 && l->n == before) {
		error("--users %s: no user:password line in it", path);
		rc = -1;
	}
	return rc;
}
