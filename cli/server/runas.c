/* SPDX-License-Identifier: MIT */
/*
 * Dropping root (see runas.h). The order matters: supplementary groups and
 * the group while still root, the user last; every id (real, effective,
 * saved) changes, so nothing can switch back, which is then checked.
 * glibc applies each change to every thread of the process.
 */
#include "runas.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"

static bool already(const struct run_as *ra)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;
	return getresuid(&r, &e, &s) == 0 && getresgid(&rg, &eg, &sg) == 0 &&
	       r == ra->uid && e == ra->uid && s == ra->uid && rg == ra->gid &&
	       eg == ra->gid && sg == ra->gid;
}

int run_as_prepare(struct run_as *ra, const char *name, const char *group)
{
	errno = 0;
	struct passwd *pw = strchr(name, ':') ? NULL : getpwnam(name);
	if (!pw) {
		fprintf(stderr,
		        "socksify-server: --user %s: %s (--user names the system user to "
		        "run as; RFC 1929 users are -u USER:PASS or --users FILE)\n",
		        name, errno ? strerror(errno) : "no such user");
		return -1;
	}
	snprintf(ra->name, sizeof(ra->name), "%s", pw->pw_name);
	ra->uid = pw->pw_uid;
	ra->gid = pw->pw_gid;
	if (group) {
		errno = 0;
		struct group *gr = getgrnam(group);
		if (!gr) {
			fprintf(stderr, "socksify-server: --group %s: %s\n", group,
			        errno ? strerror(errno) : "no such group");
			return -1;
		}
		ra->gid = gr->gr_gid;
	}
	if (ra->uid == 0 || ra->gid == 0) {
		fprintf(stderr,
		        "socksify-server: --user %s: refusing to run as root's "
		        "user or group: name an unprivileged user\n",
		        name);
		return -1;
	}
	if (geteuid() != 0 && !already(ra)) {
		fprintf(stderr,
		        "socksify-server: --user %s: only root can switch users (running "
		        "as uid %u)\n",
		        name, (unsigned)geteuid());
		return -1;
	}
	ra->set = true;
	return 0;
}

/* Whether any way back to root (user or group) still works. */
static bool can_regain_root(void)
{
	return setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 || setegid(0) == 0;
}

int run_as_apply(const struct run_as *ra)
{
	if (!ra->set)
		return 0;
	bool switched = !already(ra);
	if (switched && (initgroups(ra->name, ra->gid) < 0 ||
	                 setresgid(ra->gid, ra->gid, ra->gid) < 0 ||
	                 setresuid(ra->uid, ra->uid, ra->uid) < 0)) {
		fprintf(stderr, "socksify-server: --user %s: %s\n", ra->name,
		        strerror(errno));
		return -1;
	}
	if (switched && (can_regain_root() || !already(ra))) {
		fprintf(stderr,
		        "socksify-server: --user %s: root could be regained after "
		        "the switch; stopping\n",
		        ra->name);
		return -1;
	}
	/* No exec'd program may gain privileges again either (none is run); and
	 * the other processes of NAME (nobody's are many) may not ptrace us nor
	 * read our memory, with the passwords in it, whatever fs.suid_dumpable
	 * says: the kernel applies it on the switch. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    (switched && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)) {
		fprintf(stderr, "socksify-server: --user %s: prctl: %s\n", ra->name,
		        strerror(errno));
		return -1;
	}
	log_msg(LOG_INFO, "running as user %s (uid %u, gid %u)", ra->name,
	        (unsigned)ra->uid, (unsigned)ra->gid);
	return 0;
}
