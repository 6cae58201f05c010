/* SPDX-License-Identifier: MIT */
/*
 * Logging for socksify-server: one line per message on stderr, prefixed with
 * the program name. -q keeps errors only, -v adds one line per connection.
 */
#ifndef SOCKSIFY_SERVER_LOG_H
#define SOCKSIFY_SERVER_LOG_H

enum log_level {
	LOG_ERROR = 0, /* always shown */
	LOG_INFO = 1,  /* shown unless -q: start-up and shutdown */
	LOG_CONN = 2,  /* -v: one line per connection */
	LOG_DEBUG = 3, /* -vv */
};

void log_set_level(int level);
int log_enabled(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
