/* SPDX-License-Identifier: MIT */
/*
 * The shim's log (see log.h). Each message is formatted on the stack and
 * written with one write(2), so lines from several threads or processes do
 * not interleave. errno is preserved: hooks log on their way out.
 */
#include "log.h"
#include "logline.h"
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

enum { LOG_FD_MIN = 700 }; /* out of the way of the program's own descriptors */

static int log_fd = STDERR_FILENO;
static int log_level = SHIM_LOG_ERROR;

void shim_log_init(const struct config *cfg)
{
	log_level = cfg->log_level;
	if (cfg->log_file[0] == '\0')
		return;
	int fd = open(cfg->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		shim_log(SHIM_LOG_ERROR, "cannot open log file %s: %m; logging to stderr",
		         cfg->log_file);
		return;
	}
	int high = fcntl(fd, F_DUPFD_CLOEXEC, LOG_FD_MIN);
	if (high >= 0) {
		close(fd);
		fd = high;
	}
	log_fd = fd;
}

int shim_log_enabled(int level)
{
	return level <= log_level;
}

void shim_log(int level, const char *fmt, ...)
{
	char prefix[32];

	if (!shim_log_enabled(level))
		return;
	snprintf(prefix, sizeof(prefix), "socksify[%d]: ", (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	logline_write(log_fd, real_write, prefix, fmt, ap);
	va_end(ap);
}
