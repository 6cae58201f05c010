/* SPDX-License-Identifier: MIT */
/*
 * socksify: runs a program with libsocksify.so preloaded, so that its TCP
 * connections, UDP datagrams and name lookups go through a SOCKS5 proxy.
 *
 *   socksify [-p URL] [-c FILE] [-v] [--] PROGRAM [ARGS...]
 *   eval "$(socksify [-p URL] [-c FILE] [-v] --env)"
 *
 * It finds the shim next to itself in the build tree or in the install tree
 * (relative to its own path, else at the install path), checks the
 * configuration (a bad one stops here, exit status 2), prepends the shim to
 * LD_PRELOAD, passes its options on as SOCKSIFY_* variables and execs the
 * program. Exit statuses follow env(1): 127 when the program is not found,
 * 126 when it cannot be run.
 *
 * It exports its own path as SOCKSIFY_LAUNCHER: the shim's exec hooks run
 * it again, with the hidden options --exec-supervised and --exec-fd, to
 * supervise a static or Go program that a preloaded process execs
 * (shim/common/handoff.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"
#include "check.h"
#include "config.h"
#include "exeprobe.h"
#include "handoff.h"
#include "secret.h"
#include "supervise.h"

enum { EXIT_USAGE = 2, EXIT_CANNOT_RUN = 126, EXIT_NOT_FOUND = 127 };

static const char usage[] =
        "usage: socksify [-p URL] [-c FILE] [-v] [--] PROGRAM [ARGS...]\n"
        "       socksify [-p URL] [-c FILE] [-v] --env\n"
        "       socksify [-p URL] [-c FILE] --check [HOST:PORT | PROGRAM [ARGS...]]\n"
        "\n"
        "Runs PROGRAM with its TCP connections, UDP datagrams and DNS lookups sent\n"
        "through a SOCKS5 proxy.\n"
        "\n"
        "  -p, --proxy URL   socks5://[user:pass@]host:port (names resolved here) or\n"
        "                    socks5h://... (names resolved by the proxy); default\n"
        "                    socks5h://127.0.0.1:1080, or what the configuration says;\n"
        "                    a password reaches PROGRAM in a sealed memfd, not in\n"
        "                    its environment; repeated or comma-separated: several\n"
        "                    proxies, used as the configuration's chain says\n"
        "                    (failover by default)\n"
        "  -c, --config FILE read this configuration file (see socksify.conf)\n"
        "  -v, --verbose     log one line per proxied connection and UDP association\n"
        "                    (to stderr, or the configuration's log_file)\n"
        "  --supervise       serve PROGRAM's network calls with seccomp user\n"
        "                    notification as well (supervise = always): even raw\n"
        "                    system calls go through the proxy\n"
        "  --no-supervise    the preload only (supervise = never); a static or Go\n"
        "                    program is then refused, as the preload cannot reach it\n"
        "  --allow-direct    run such a program unproxied instead of refusing it\n"
        "  --env             print the export lines that socksify a whole shell:\n"
        "                    eval \"$(socksify --env)\"\n"
        "  --check           the doctor: where each setting came from, the proxy\n"
        "                    reached, its method and the credentials; with\n"
        "                    HOST:PORT also a CONNECT to it and a UDP ASSOCIATE;\n"
        "                    with PROGRAM how it would run (preload, supervised,\n"
        "                    cannot be proxied) and why. One line per step; exit\n"
        "                    status 0 only when every step works, else 1\n"

        "  -h, --help        this help;  -V, --version  the version\n"
        "\n"
        "Without -p, SOCKSIFY_PROXY or a proxy line in the configuration, a\n"
        "socks5:// or socks5h:// URL in ALL_PROXY (all_proxy) is the proxy, and\n"
        "NO_PROXY (no_proxy) lists destinations that go direct, as for curl.\n";

static void die(int status, const char *fmt, ...)
        __attribute__((format(printf, 2, 3), noreturn));

static void die(int status, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "socksify: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* Our own path as the kernel has it (canonical: no symlink, no ".."), read
 * once; empty without /proc. */
static char self_exe[PATH_MAX];

static void read_self(void)
{
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	self_exe[n > 0 ? n : 0] = '\0';
}

/* The shim: next to us in the build tree (cli/ -> shim/), else where the
 * install puts it relative to our own directory (SOCKSIFY_SHIM_RELPATH,
 * bindir -> libdir/socksify/: an install tree moved elsewhere, or a
 * DESTDIR tree, finds its own shim), else the absolute install path. No
 * realpath(): our path is canonical already, and the loader takes any path
 * to the file. */
static bool shim_at(char *out, size_t cap, const char *end, const char *rel)
{
	/* "../" taken off the directory itself (canonical: no symlink to
	 * follow), so LD_PRELOAD reads /usr/lib/..., not /usr/bin/../lib/... */
	while (strncmp(rel, "../", 3) == 0 && end > self_exe) {
		const char *up = memrchr(self_exe, '/', (size_t)(end - self_exe));
		if (!up)
			break;
		end = up;
		rel += 3;
	}
	int len = snprintf(out, cap, "%.*s/%s", (int)(end - self_exe), self_exe, rel);
	return len > 0 && (size_t)len < cap && access(out, R_OK) == 0;
}

static void find_shim(char *out, size_t cap)
{
	const char *slash = strrchr(self_exe, '/');
	const char *up =
	        slash ? memrchr(self_exe, '/', (size_t)(slash - self_exe)) : NULL;
	if (up && shim_at(out, cap, up, "shim/libsocksify.so"))
		return;
	if (slash && shim_at(out, cap, slash, SOCKSIFY_SHIM_RELPATH))
		return;
	snprintf(out, cap, "%s", SOCKSIFY_SHIM_PATH);
	if (access(out, R_OK) != 0)
		die(EXIT_CANNOT_RUN,
		    "cannot find libsocksify.so (looked in the build tree, "
		    "%s relative to %s and %s)",
		    SOCKSIFY_SHIM_RELPATH, self_exe, SOCKSIFY_SHIM_PATH);
}

/* Finds PROGRAM as execvp() would: a path as it is, a name in $PATH (with a
 * default path of our own when $PATH is unset or empty); false when nothing
 * matches. */
static bool find_program(const char *prog, char *out, size_t cap)
{
	if (strchr(prog, '/')) {
		snprintf(out, cap, "%s", prog);
		return access(out, F_OK) == 0;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		int len = (int)(end - p);
		snprintf(out, cap, "%.*s%s%s", len, p, len ? "/" : "", prog);
		if (access(out, X_OK) == 0)
			return true;
		if (*end == '\0')
			return false;
		p = end;
	}
}

/* --allow-direct */
static bool allow_direct;
/* --check, and what the options set (for the doctor's "from") */
static bool check_mode;
static struct check_opts check_opts = {.sysconf = SOCKSIFY_SYSCONF_PATH};
/* --exec-supervised ARGV0 (the shim's hand-off), --exec-fd N */
static const char *exec_argv0;
static int exec_fd = -1;

/* How the program runs: with the preload alone, or supervised as well. */
enum run_how { RUN_PRELOAD, RUN_SUPERVISED };

/* Decides by the supervise setting and what the program is (a Go program or
 * a static one: LD_PRELOAD cannot reach it); exits with one line for a
 * program that neither way can proxy, unless --allow-direct. */
static enum run_how run_how(const char *path, const char *name,
                            enum config_supervise mode)
{
	struct exe_probe e = {0};
	const char *what;
	exe_probe_path(path, &e);
	enum run_mode m = run_mode_decide(&e, mode, allow_direct, &what);

	if (m == RUN_MODE_REFUSED && e.setid)
		die(EXIT_CANNOT_RUN,
		    "%s is setuid/setgid: the supervisor would drop its privileges "
		    "and the loader ignores LD_PRELOAD; refused (--allow-direct "
		    "runs it unproxied)",
		    name);
	if (m == RUN_MODE_REFUSED)
		die(EXIT_CANNOT_RUN,
		    "%s is %s: LD_PRELOAD cannot reach it and supervise = never; "
		    "refused (--allow-direct runs it unproxied)",
		    name, what);
	if (m == RUN_MODE_UNPROXIED && e.setid)
		fprintf(stderr,
		        "socksify: warning: %s is setuid/setgid: the loader ignores "
		        "LD_PRELOAD, its connections will not be proxied\n",
		        name);
	else if (m == RUN_MODE_UNPROXIED)
		fprintf(stderr,
		        "socksify: warning: %s is %s: --allow-direct: its connections "
		        "will not be proxied\n",
		        name, what);
	return m == RUN_MODE_SUPERVISED ? RUN_SUPERVISED : RUN_PRELOAD;
}

/* Inside a supervised tree (a supervised program ran socksify) the outer
 * supervisor serves whatever runs already: the kernel takes one listener per
 * chain of filters, a second supervisor would fail with EBUSY. */
static bool inside_supervisor(void)
{
	return handoff_supervised(getenv(SUPERVISE_ENV_ACTIVE));
}

/* Prints NAME='VALUE' with single quotes escaped for sh. */
static void print_export(const char *name, const char *value)
{
	printf("export %s='", name);
	for (const char *p = value; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*p);
	}
	puts("'");
}

/* -p URL: the first replaces SOCKSIFY_PROXY, later ones append to the list. */
static void add_proxy(const char *url)
{
	static bool seen;
	const char *old = getenv("SOCKSIFY_PROXY");

	if (!seen || !old) {
		setenv("SOCKSIFY_PROXY", url, 1);
	} else {
		size_t n = strlen(old) + 1 + strlen(url) + 1;
		char *list = malloc(n);
		if (!list)
			die(1, "out of memory");
		snprintf(list, n, "%s,%s", old, url);
		setenv("SOCKSIFY_PROXY", list, 1);
		free(list);
	}
	seen = true;
}

/* The options: they become SOCKSIFY_* variables for the shim. Returns true
 * for --env; exits for --help, --version and bad usage. */
/* size: getopt switch */
static bool parse_options(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"proxy", required_argument, NULL, 'p'},
	        {"config", required_argument, NULL, 'c'},
	        {"verbose", no_argument, NULL, 'v'},
	        {"env", no_argument, NULL, 'E'},
	        {"supervise", no_argument, NULL, 'S'},
	        {"no-supervise", no_argument, NULL, 'N'},
	        {"allow-direct", no_argument, NULL, 'D'},
	        {"check", no_argument, NULL, 'K'},
	        /* the hand-off's options (shim/common/handoff.h), without "--" */
	        {&HANDOFF_OPT_EXEC[2], required_argument, NULL, 'X'},
	        {&HANDOFF_OPT_FD[2], required_argument, NULL, 'F'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {0},
	};
	bool env_only = false;
	int opt;

	while ((opt = getopt_long(argc, argv, "+p:c:vhV", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			add_proxy(optarg);
			check_opts.opt_proxy = true;
			/* our command line stays visible (ps) while we supervise */
			secret_scrub_url(optarg);
			break;
		case 'c':
			setenv("SOCKSIFY_CONF", optarg, 1);
			check_opts.opt_config = true;
			break;
		case 'v':
			setenv("SOCKSIFY_LOG_LEVEL", "info", 1);
			check_opts.opt_verbose = true;
			break;
		case 'E':
			env_only = true;
			break;
		case 'S':
		case 'N':
			setenv("SOCKSIFY_SUPERVISE", opt == 'S' ? "always" : "never", 1);
			check_opts.opt_supervise = true;
			break;
		case 'D':
			allow_direct = check_opts.allow_direct = true;
			break;
		case 'K':
			check_mode = true;
			break;
		case 'X':
			exec_argv0 = optarg;
			break;
		case 'F':
			exec_fd = atoi(optarg);
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		case 'V':
			printf("socksify %s\n", SOCKSIFY_VERSION);
			exit(0);
		default:
			fprintf(stderr, "socksify: see --help\n");
			exit(EXIT_USAGE);
		}
	}
	return env_only;
}

/* LD_PRELOAD with the shim first, whatever was preloaded after it. */
static void preload_value(char *preload, size_t cap)
{
	char shim[PATH_MAX];
	find_shim(shim, sizeof(shim));
	const char *old = getenv("LD_PRELOAD");
	snprintf(preload, cap, "%s%s%s", shim, old && *old ? ":" : "", old ? old : "");
}

/* --env: the export lines for a shell. */
static int print_env(const char *preload)
{
	static const char *const vars[] = {"SOCKSIFY_PROXY",     "SOCKSIFY_CONF",
	                                   "SOCKSIFY_LOG_LEVEL", "SOCKSIFY_SUPERVISE",
	                                   HANDOFF_ENV_LAUNCHER, SECRET_ENV_FD};
	const char *url = getenv("SOCKSIFY_PROXY");
	if (url && secret_list_has_password(url))
		fprintf(stderr, "socksify: warning: --env puts the proxy password into "
		                "the shell's environment (a configuration file that only "
		                "you can read keeps it out)\n");
	print_export("LD_PRELOAD", preload);
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		if (getenv(vars[i]))
			print_export(vars[i], getenv(vars[i]));
	return 0;
}

/* SOCKSIFY_LAUNCHER: where the shim's exec hooks find us. */
static void export_launcher(void)
{
	if (self_exe[0])
		setenv(HANDOFF_ENV_LAUNCHER, self_exe, 1);
}

/* A configuration file with the proxy password that others may read: one
 * warning for the whole program tree (the shim stays quiet after us). */
static void warn_readable(const struct config *cfg)
{
	if (!cfg->insecure_file[0] || getenv(SECRET_ENV_WARNED))
		return;
	fprintf(stderr,
	        "socksify: warning: %s holds the proxy password and other users may "
	        "read it (chmod go-rwx it)\n",
	        cfg->insecure_file);
	setenv(SECRET_ENV_WARNED, "1", 1);
}

/* The proxies' passwords go to the program tree in a sealed memfd, never in
 * the environment (secret.h); the supervisor has them in cfg. */
static void export_secret(const struct config *cfg)
{
	if (!secret_needs_export(cfg))
		return;
	int fd = secret_export(cfg);
	if (fd < 0)
		die(EXIT_CANNOT_RUN,
		    "cannot keep the proxy password out of the environment: %s",
		    strerror(-fd));
}

/* --exec-supervised: the shim's hand-off (shim/common/handoff.h). args is
 * PATH ARGS...; PATH runs supervised, with the caller's environment. */
static int exec_supervised(char **args, const struct config *cfg)
{
	const char *preload = getenv(HANDOFF_ENV_PRELOAD);
	if (preload) {
		setenv("LD_PRELOAD", preload, 1);
		unsetenv(HANDOFF_ENV_PRELOAD);
	}
	if (exec_fd >= 0)
		fcntl(exec_fd, F_SETFD, FD_CLOEXEC);
	const char *path = args[0];
	args[0] = (char *)exec_argv0;
	/* no auto decision: the shim made it; a setuid program is refused */
	if (inside_supervisor() ||
	    run_how(path, path, CONFIG_SUPERVISE_ALWAYS) == RUN_PRELOAD) {
		execv(path, args);
		die(errno == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN, "%s: %s", path,
		    strerror(errno));
	}
	struct supervise_opts o = {
	        .path = path, .argv = args, .allow_direct = allow_direct};
	return supervise_run(&o, cfg);
}

/* -v: where the proxy came from when another tool's variable set it, or
 * why such a variable was left alone. */
static void note_env_proxy(const struct config *cfg)
{
	const char *var = config_all_proxy_var(getenv);
	int proxy = config_option_index("proxy");
	int exclude = config_option_index("exclude");

	if (cfg->log_level < CONFIG_LOG_INFO || !var)
		return;
	if (cfg->origin[proxy] == CONFIG_FROM_ALL_PROXY)
		fprintf(stderr, "socksify: the proxy %s:%u comes from %s%s%s%s\n",
		        cfg->proxy.host, cfg->proxy.port, var,
		        cfg->origin[exclude] == CONFIG_FROM_ALL_PROXY
		                ? "; exclusions from "
		                : "",
		        cfg->origin[exclude] == CONFIG_FROM_ALL_PROXY
		                ? config_no_proxy_var(getenv)
		                : "",
		        " (as curl reads them)");
	else if (cfg->origin[proxy] == CONFIG_FROM_DEFAULT)
		fprintf(stderr,
		        "socksify: %s ignored: not a socks5:// or socks5h:// URL "
		        "(it is for other tools)\n",
		        var);
	else
		fprintf(stderr,
		        "socksify: %s ignored: socksify's own configuration names "
		        "the proxy\n",
		        var);
}

/* --check [HOST:PORT | PROGRAM [ARGS...]] (check.h). */
static int doctor(char **args, const struct config *cfg, bool loaded, const char *err)
{
	char host[256], path[PATH_MAX];
	uint16_t port;
	bool target =
	        args[0] && check_parse_target(args[0], host, sizeof(host), &port) == 0;

	if (target && args[1])
		die(EXIT_USAGE, "--check takes one HOST:PORT (see --help)");
	if (!loaded)
		return check_line(false, "config: %s", err), 1;
	if (!args[0] || target)
		return check_main(cfg, args[0], NULL, NULL, &check_opts);
	bool found = find_program(args[0], path, sizeof(path));
	if (!found && strchr(args[0], ':') && !strchr(args[0], '/'))
		die(EXIT_USAGE,
		    "--check: '%s' is neither HOST:PORT (a port 1-65535, IPv6 in "
		    "brackets) nor a program",
		    args[0]);
	return check_main(cfg, NULL, found ? path : NULL, args[0], &check_opts);
}

int main(int argc, char **argv)
{
	bool env_only = parse_options(argc, argv);
	if (env_only && check_mode)
		die(EXIT_USAGE, "%s",
		    "--env and --check do not go together (see --help)");
	if (!env_only && !check_mode && optind >= argc)
		die(EXIT_USAGE, "%s", "no program to run (see --help)");

	struct config cfg;
	char err[CONFIG_ERR_LEN];
	int loaded = config_load(&cfg, SOCKSIFY_SYSCONF_PATH, getenv, err, sizeof(err));
	if (check_mode)
		return doctor(argv + optind, &cfg, loaded == 0, err);
	if (loaded < 0)
		die(EXIT_USAGE, "%s", err);
	note_env_proxy(&cfg);

	warn_readable(&cfg);
	if (exec_argv0) {
		export_secret(&cfg);
		return exec_supervised(argv + optind, &cfg);
	}
	read_self();
	export_launcher();
	char preload[PATH_MAX * 2];
	preload_value(preload, sizeof(preload));
	if (env_only)
		return print_env(preload);
	setenv("LD_PRELOAD", preload, 1);
	export_secret(&cfg);

	char path[PATH_MAX];
	if (!find_program(argv[optind], path, sizeof(path)))
		die(EXIT_NOT_FOUND, "%s: command not found", argv[optind]);
	if (!inside_supervisor() &&
	    run_how(path, argv[optind], cfg.supervise) == RUN_SUPERVISED) {
		struct supervise_opts o = {.path = path,
		                           .argv = argv + optind,
		                           .allow_direct = allow_direct};
		return supervise_run(&o, &cfg);
	}
	execv(path, argv + optind);
	int e = errno;
	fprintf(stderr, "socksify: %s: %s\n", argv[optind], strerror(e));
	return e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}
