/* SPDX-License-Identifier: MIT */
/*
 * --user NAME [--group GROUP]: socksify-server started as root gives up
 * root once its listeners are open (the users file was read before).
 */
#ifndef SOCKSIFY_SERVER_RUNAS_H
#define SOCKSIFY_SERVER_RUNAS_H

#include <stdbool.h>
#include <sys/types.h>

struct run_as {
	bool set;
	char name[256];
	uid_t uid;
	gid_t gid;
};

/*
 * Looks up NAME (and GROUP, else NAME's primary group) and checks that the
 * switch can be made: started as root, or already running as exactly that
 * user and group (then nothing is to be done). 0, or -1 after a one-line
 * error (unknown user or group, not root, NAME is root).
 */
int run_as_prepare(struct run_as *ra, const char *name, const char *group);

/*
 * Switches to the user and group (supplementary groups: the user's), then
 * checks that root cannot be regained, and sets no_new_privs. 0, or -1
 * after a one-line error; on -1 the process must exit.
 */
int run_as_apply(const struct run_as *ra);

#endif
