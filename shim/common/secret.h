/* SPDX-License-Identifier: MIT */
/*
 * The proxies' credentials kept out of the environment (see docs/design.md,
 * "Credentials"). Whoever finds a password in the proxy URLs it is about to
 * pass on (the launcher, or the shim when a user exported SOCKSIFY_PROXY with
 * one) writes every URL that has a password, one a line, into a sealed memfd
 * (F_SEAL_WRITE, _SHRINK, _GROW and _SEAL: nobody can change it after) at a
 * high descriptor number that survives exec, and sets
 *
 *   SOCKSIFY_PROXY=socks5://user@host:port,...   (the same list, no password)
 *   SOCKSIFY_SECRET_FD=N
 *
 * config_load() (config.h) reads the memfd back: the descriptor must be a
 * memfd with all four seals, owned by this user, holding 1 to
 * CONFIG_MAX_PROXIES lines, each a proxy URL with credentials; anything else
 * is an error (the shim then fails every proxied connection: fail closed,
 * never a bypass). A line's URL replaces a proxy only when that is the same
 * proxy without the password (same scheme, host, port and user), each line
 * for one proxy at most: a program that points its children at another proxy
 * does not hand them this one's password.
 */
#ifndef SOCKSIFY_SHIM_SECRET_H
#define SOCKSIFY_SHIM_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define SECRET_ENV_FD "SOCKSIFY_SECRET_FD"
/* Set by the first process that warned about a configuration file with a
 * password that others may read (config.h, insecure_file): its descendants
 * stay quiet. */
#define SECRET_ENV_WARNED "SOCKSIFY_CONF_WARNED"

enum {
	SECRET_FD_MIN = 950,    /* above the fake-DNS pool's 900 */
	SECRET_TEXT_MAX = 2048, /* a URL with 255-byte user and password, all %XX */
	/* the memfd: CONFIG_MAX_PROXIES such URLs and their newlines */
	SECRET_LIST_MAX = CONFIG_MAX_PROXIES * SECRET_TEXT_MAX,
	/* SOCKSIFY_PROXY without the passwords: a 255-byte %XX user, a 255-byte
	 * host, the rest, for each proxy */
	SECRET_SHOWN_MAX = CONFIG_MAX_PROXIES * 1088,
};

/*
 * The proxy as a URL, socks5[h]://[USER[:PASS]@]HOST:PORT, with the user
 * name and the password percent-encoded (all but RFC 3986's unreserved
 * characters) and an IPv6 host in brackets; config_parse_proxy_url() gives
 * back the same struct. Without with_pass the password is left out. 0, or
 * -1 when it does not fit in cap bytes.
 */
int secret_proxy_url(const struct config_proxy *p, bool with_pass, char *out, size_t cap);

/* The proxy has a password (not just a user name). */
static inline bool secret_has_password(const struct config_proxy *p)
{
	return p->has_auth && p->pass[0] != '\0';
}

/* A list of proxy URLs (SOCKSIFY_PROXY's, config_first_url_len) where one
 * URL has a password. */
bool secret_list_has_password(const char *list);

/* cfg has a proxy with a password that did not come from the memfd. */
bool secret_needs_export(const struct config *cfg);

/*
 * Moves cfg's credentials out of the environment: a sealed memfd with every
 * proxy URL that has a password, SOCKSIFY_PROXY set to cfg's list without the
 * passwords and SOCKSIFY_SECRET_FD to the descriptor, and the previous
 * SOCKSIFY_PROXY string's passwords overwritten in place (so that
 * /proc/PID/environ, which shows the strings the process started with, no
 * longer has them). Returns the descriptor (not close-on-exec) or -errno; on
 * failure the environment is unchanged.
 */
int secret_export(const struct config *cfg);

/* Overwrites the passwords of a proxy URL list text in place with '*'. */
void secret_scrub_url(char *url);

/*
 * The memfd of fd_text (SOCKSIFY_SECRET_FD's value) checked and read, and its
 * proxies put into cfg's where each is one of cfg's proxies without a
 * password (then that proxy's bit in cfg->proxy_secret is set). 0, or -1 with one line in
 * err naming SOCKSIFY_SECRET_FD and what is wrong (never the password). config_load()
 * calls it last.
 */
int secret_apply(struct config *cfg, const char *fd_text, char *err, size_t errlen);

/* The descriptor number fd_text names, or -1 when it is not one. */
int secret_fd_number(const char *fd_text);

/* A configuration file (fd, path) whose proxy has a password: when group or
 * others may read it, the first such path is kept in cfg->insecure_file for
 * the caller's warning. */
void secret_note_readable(struct config *cfg, int fd, const char *path);

#endif
