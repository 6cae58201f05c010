/* SPDX-License-Identifier: MIT */
/*
 * The RFC 1929 users of socksify-server: -u USER:PASS and --users FILE
 * (one user:password per line) add to one list, read before any listener
 * opens and before --user drops privileges; the loops share it read-only.
 */
#ifndef SOCKSIFY_SERVER_USERS_H
#define SOCKSIFY_SERVER_USERS_H

#include <stddef.h>

enum { USERS_MAX = 1024, USERS_FIELD_MAX = 255 /* RFC 1929: 1 octet lengths */ };

struct server_user {
	char *user; /* NUL-terminated; user and pass share one allocation */
	size_t ulen;
	char *pass;
	size_t plen;
};

struct user_list {
	struct server_user *v;
	size_t n, cap;
};

/*
 * Adds a copy of user:pass. `where` names the source for errors ("-u",
 * "FILE:LINE"). 0, or -1 after printing a one-line error (duplicate user,
 * too many users, out of memory).
 */
int users_add(struct user_list *l, const char *user, size_t ulen, const char *pass,
              size_t plen, const char *where);

/*
 * Reads `path`: one user:password per line (the password is the rest of
 * the line after the first colon, 1 to 255 bytes; the user 1 to 255 bytes),
 * lines whose first non-blank is "#" and blank lines skipped. Refuses a file that is
 * not a regular file or on which group or others have any permission
 * (mode & 077). 0, or -1
 * after printing a one-line error naming the file (and line).
 */
int users_load(struct user_list *l, const char *path);

#endif
