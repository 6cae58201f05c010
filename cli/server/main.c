/* SPDX-License-Identifier: MIT */
/*
 * socksify-server: a small RFC 1928 SOCKS5 server for verifying socksify on
 * one machine. This file reads the command line and runs the event loops
 * (loops.c) until SIGTERM or SIGINT; server.c accepts the connections and
 * the phases (handshake.c, bind.c, udp.c, conn.c) serve them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "build_config.h"
#include "log.h"
#include "loops.h"
#include "runas.h"
#include "server.h"
#include "sockaddr.h"
#include "socks5.h"

enum exit_status { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

enum long_only {
	OPT_ALLOW_OPEN = 256,
	OPT_HANDSHAKE_TIMEOUT,
	OPT_CONNECT_TIMEOUT,
	OPT_IDLE_TIMEOUT,
	OPT_MAX_CONNS,
	OPT_DENY,
	OPT_ALLOW,
	OPT_ALLOW_LOCAL,
	OPT_LOOPS,
	OPT_USERS,
	OPT_RUN_AS,
	OPT_GROUP,
	OPT_MAX_UNAUTH,
	OPT_MAX_UNAUTH_SOURCE,
};

static const char usage[] =
        "usage: socksify-server [-l ADDR:PORT]... [-b ADDR]... [--users FILE]...\n"
        "                       [-u USER:PASS]... [--user NAME [--group GROUP]]\n"
        "                       [--allow-open] [--handshake-timeout SEC] "
        "[--connect-timeout SEC]\n"
        "                       [--idle-timeout SEC] [--max-conns N]\n"
        "                       [--allow RULE]... [--deny RULE]... [--allow-local]\n"
        "                       [--max-unauth N] [--max-unauth-per-source N]\n"
        "                       [-j N] [-v|-q] [--help] [--version]\n"
        "\n"
        "A SOCKS5 server (RFC 1928, RFC 1929) for testing socksify on one machine.\n"
        "\n"
        "  -l ADDR:PORT           listen there (repeatable; IPv6 as [::1]:1080);\n"
        "                         default 127.0.0.1:1080\n"
        "  -b ADDR                source address of outgoing connections and BIND\n"
        "                         listeners (one per family)\n"
        "  --users FILE           require RFC 1929 username/password: one user:password\n"
        "                         per line, # comments; a file only its owner may read\n"
        "                         (repeatable; read once, before --user)\n"
        "  -u, --auth USER:PASS   add one such user (repeatable); prefer --users: a\n"
        "                         command line is visible to other users (ps)\n"
        "  --user NAME            when started as root: become NAME (a system user)\n"
        "                         once the listeners are open\n"
        "  --group GROUP          with --user: this group instead of NAME's own\n"
        "  --allow-open           allow a non-loopback listener without users\n"
        "  --handshake-timeout S  close clients that do not finish the handshake (10)\n"
        "  --connect-timeout S    give up resolving and connecting a destination (10)\n"
        "  --idle-timeout S       close relayed connections idle this long (0: never)\n"
        "  --max-conns N          serve at most N connections at once (1024); more are\n"
        "                         refused with \"no acceptable method\"\n"
        "  --max-unauth N         at most N of them still in their handshake (default:\n"
        "                         max-conns/4, at least 64); a new client closes the\n"
        "                         oldest of those instead of being refused\n"
        "  --max-unauth-per-source N  at most N in their handshake from one IPv4\n"
        "                         address or IPv6 /64 (max-unauth/2); more are reset\n"
        "  --allow RULE, --deny RULE\n"
        "                         allow or refuse (reply 2) destinations that match\n"
        "                         RULE: ADDR[/PREFIX][:PORT[-PORT]], IPv6 in brackets\n"
        "                         before a port ([2001:db8::]/32:443); repeatable,\n"
        "                         the first rule that matches decides\n"
        "  --allow-local          allow this host and its link as destinations: a\n"
        "                         server with a listener beyond loopback refuses,\n"
        "                         after the rules, 127.0.0.0/8, 0.0.0.0/8, ::1,\n"
        "                         169.254.0.0/16, fe80::/10, fd00:ec2::254 and its\n"
        "                         own listeners (a loopback-only server does not)\n"
        "  -j, --loops N          N event loops, one thread each, sharing the listening\n"
        "                         ports (SO_REUSEPORT); --max-conns counts them all\n"
        "                         (default: the CPUs, at most 8; 1 to 64)\n"
        "  -v                     log one line per connection (-vv: more)\n"
        "  -q                     log errors only\n";

static struct server_config cfg;
static unsigned nloops;          /* -j; 0: loops_default() */
static struct user_list users;   /* -u, --users */
static const char *run_as_name;  /* --user */
static const char *run_as_group; /* --group */

static void die_usage(const char *fmt, ...)
        __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "socksify-server: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see --help)\n");
	exit(EXIT_USAGE);
}

/* "1.2.3.4", "::1" or "[::1]", with an optional port. Returns 0 or -EINVAL. */
static int parse_host(const char *s, size_t len, uint16_t port,
                      struct sockaddr_storage *out)
{
	char host[INET6_ADDRSTRLEN + 2];

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
		s++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, len);
	host[len] = '\0';
	memset(out, 0, sizeof(*out));
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(port);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(port);
		/* ::ffff:a.b.c.d is the IPv4 address (our IPv6 sockets are V6ONLY). */
		if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
			struct in_addr a;
			memcpy(&a, &v6->sin6_addr.s6_addr[12], sizeof(a));
			memset(out, 0, sizeof(*out));
			v4->sin_family = AF_INET;
			v4->sin_addr = a;
			v4->sin_port = htons(port);
		}
	} else {
		return -EINVAL;
	}
	return 0;
}

static void parse_listen(const char *arg)
{
	const char *colon = strrchr(arg, ':');
	char *end;

	if (cfg.nlisten >= SERVER_MAX_LISTEN)
		die_usage("-l %s: too many listeners", arg);
	if (!colon || colon[1] == '\0')
		die_usage("-l %s: expected ADDR:PORT (IPv6 as [ADDR]:PORT)", arg);
	errno = 0;
	unsigned long port = strtoul(colon + 1, &end, 10);
	/* A bare IPv6 address has colons too: require brackets around it. */
	bool v6_unbracketed = memchr(arg, ':', (size_t)(colon - arg)) && arg[0] != '[';
	if (*end || errno || port > 65535 || v6_unbracketed ||
	    parse_host(arg, (size_t)(colon - arg), (uint16_t)port,
	               &cfg.listen[cfg.nlisten]) < 0)
		die_usage("-l %s: expected ADDR:PORT with a numeric address (IPv6 as "
		          "[ADDR]:PORT)",
		          arg);
	cfg.nlisten++;
}

static void parse_bind(const char *arg)
{
	struct sockaddr_storage ss;

	if (parse_host(arg, strlen(arg), 0, &ss) < 0)
		die_usage("-b %s: expected a numeric IPv4 or IPv6 address", arg);
	if (ss.ss_family == AF_INET) {
		cfg.bind4 = ss;
		cfg.have_bind4 = true;
	} else {
		cfg.bind6 = ss;
		cfg.have_bind6 = true;
	}
}

/* Copies USER:PASS and wipes the argument, so ps(1) does not show the password. */
static void parse_user(char *arg)
{
	char *colon = strchr(arg, ':');
	size_t alen = strlen(arg);

	if (!colon || colon == arg || (size_t)(colon - arg) > USERS_FIELD_MAX ||
	    alen - (size_t)(colon - arg) - 1 > USERS_FIELD_MAX)
		die_usage("-u %s",
		          "expects USER:PASS (user 1-255 bytes, password up to 255)");
	int rc = users_add(&users, arg, (size_t)(colon - arg), colon + 1,
	                   alen - (size_t)(colon - arg) - 1, "-u");
	explicit_bzero(arg, alen);
	if (rc < 0)
		exit(EXIT_USAGE);
}

static unsigned parse_seconds(const char *opt, const char *arg, bool zero_ok)
{
	char *end;
	errno = 0;
	double sec = strtod(arg, &end);
	if (*end || end == arg || errno || !(sec >= 0) || sec > 86400 ||
	    (!zero_ok && sec == 0)) {
		fprintf(stderr,
		        "socksify-server: %s %s: expected seconds (%s up to 86400)\n",
		        opt, arg, zero_ok ? "0" : "above 0");
		exit(EXIT_USAGE);
	}
	return (unsigned)(sec * 1000 + 0.5);
}

static unsigned parse_count(const char *opt, const char *arg)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(arg, &end, 10);
	if (*end || end == arg || errno || n == 0 || n > 1000000 || arg[0] == '-') {
		fprintf(stderr,
		        "socksify-server: %s %s: expected a number from 1 to 1000000\n",
		        opt, arg);
		exit(EXIT_USAGE);
	}
	return (unsigned)n;
}

static unsigned parse_loops(const char *arg)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(arg, &end, 10);
	if (*end || end == arg || errno || n == 0 || n > LOOPS_MAX || arg[0] == '-') {
		fprintf(stderr,
		        "socksify-server: -j %s: expected a number of event loops from 1 "
		        "to %d\n",
		        arg, LOOPS_MAX);
		exit(EXIT_USAGE);
	}
	return (unsigned)n;
}

/* --allow or --deny RULE */
static void parse_rule(bool allow, const char *arg)
{
	const char *opt = allow ? "--allow" : "--deny";
	int rc = acl_add_rule(&cfg.acl, arg, allow);
	if (rc == -ENOSPC)
		die_usage("%s %s: more than %d --allow and --deny rules", opt, arg,
		          ACL_MAX_RULES);
	if (rc < 0)
		die_usage("%s %s: expected ADDR[/PREFIX][:PORT[-PORT]] with a numeric "
		          "address (IPv6 as [ADDR]/PREFIX:PORT)",
		          opt, arg);
}

/* One option from getopt_long(); -v and -q adjust *level. */
/* size: getopt switch */
static void parse_option(int opt, char **argv, int *level)
{
	switch (opt) {
	case 'l':
		parse_listen(optarg);
		break;
	case 'b':
		parse_bind(optarg);
		break;
	case 'u':
		parse_user(optarg);
		break;
	case OPT_USERS:
		if (users_load(&users, optarg) < 0)
			exit(EXIT_USAGE);
		break;
	case OPT_RUN_AS:
		run_as_name = optarg;
		break;
	case OPT_GROUP:
		run_as_group = optarg;
		break;
	case OPT_ALLOW_OPEN:
		cfg.allow_open = true;
		break;
	case OPT_HANDSHAKE_TIMEOUT:
		cfg.handshake_timeout_ms =
		        parse_seconds("--handshake-timeout", optarg, false);
		break;
	case OPT_CONNECT_TIMEOUT:
		cfg.connect_timeout_ms =
		        parse_seconds("--connect-timeout", optarg, false);
		break;
	case OPT_IDLE_TIMEOUT:
		cfg.idle_timeout_ms = parse_seconds("--idle-timeout", optarg, true);
		break;
	case OPT_MAX_CONNS:
		cfg.max_conns = parse_count("--max-conns", optarg);
		break;
	case OPT_MAX_UNAUTH:
		cfg.max_unauth = parse_count("--max-unauth", optarg);
		break;
	case OPT_MAX_UNAUTH_SOURCE:
		cfg.max_unauth_per_source =
		        parse_count("--max-unauth-per-source", optarg);
		break;
	case OPT_DENY:
	case OPT_ALLOW:
		parse_rule(opt == OPT_ALLOW, optarg);
		break;
	case OPT_ALLOW_LOCAL:
		cfg.acl.allow_local = true;
		break;
	case 'j':
	case OPT_LOOPS:
		nloops = parse_loops(optarg);
		break;
	case 'v':
		*level = *level < LOG_CONN ? LOG_CONN : *level + 1;
		break;
	case 'q':
		*level = LOG_ERROR;
		break;
	case 'h':
		fputs(usage, stdout);
		exit(EXIT_OK);
	case 'V':
		printf("socksify-server %s\n", SOCKSIFY_VERSION);
		exit(EXIT_OK);
	case ':':
		die_usage("%s needs an argument", argv[optind - 1]);
		break;
	default:
		die_usage("unknown option %s", argv[optind - 1]);
	}
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"listen", required_argument, NULL, 'l'},
	        {"bind", required_argument, NULL, 'b'},
	        {"auth", required_argument, NULL, 'u'},
	        {"users", required_argument, NULL, OPT_USERS},
	        {"user", required_argument, NULL, OPT_RUN_AS},
	        {"group", required_argument, NULL, OPT_GROUP},
	        {"allow-open", no_argument, NULL, OPT_ALLOW_OPEN},
	        {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
	        {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	        {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	        {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
	        {"deny", required_argument, NULL, OPT_DENY},
	        {"allow", required_argument, NULL, OPT_ALLOW},
	        {"allow-local", no_argument, NULL, OPT_ALLOW_LOCAL},
	        {"max-unauth", required_argument, NULL, OPT_MAX_UNAUTH},
	        {"max-unauth-per-source", required_argument, NULL, OPT_MAX_UNAUTH_SOURCE},
	        {"loops", required_argument, NULL, OPT_LOOPS},
	        {"verbose", no_argument, NULL, 'v'},
	        {"quiet", no_argument, NULL, 'q'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},
	        {0},
	};
	int level = LOG_INFO, opt;

	cfg.handshake_timeout_ms = 10000;
	cfg.connect_timeout_ms = 10000;
	cfg.max_conns = 1024;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":l:b:u:j:vqhV", opts, NULL)) != -1)
		parse_option(opt, argv, &level);
	if (optind < argc)
		die_usage("unexpected argument %s", argv[optind]);
	log_set_level(level);
	if (cfg.nlisten == 0)
		parse_listen("127.0.0.1:1080");
	cfg.users = users.v;
	cfg.nusers = users.n;
	if (run_as_group && !run_as_name)
		die_usage("--group %s: only with --user", run_as_group);
}

/* Refuses an open proxy before any listener is opened; notes whether the
 * server is exposed (acl.h). */
static void check_listeners(void)
{
	for (size_t i = 0; i < cfg.nlisten; i++) {
		const struct sockaddr_storage *ss = &cfg.listen[i];
		char name[SOCKS5_ADDR_STRLEN];
		if (!sa_loopback((const struct sockaddr *)ss))
			cfg.acl.exposed = true; /* the built-in destination rules apply */
		if (sa_loopback((const struct sockaddr *)ss) || cfg.nusers > 0 ||
		    cfg.allow_open)
			continue;
		sa_format((const struct sockaddr *)ss, name, sizeof(name));
		fprintf(stderr,
		        "socksify-server: refusing to listen on %s without "
		        "authentication: give --users FILE or -u USER:PASS, or "
		        "--allow-open to run an open proxy\n",
		        name);
		exit(EXIT_USAGE);
	}
}

/* Two descriptors per connection, plus some for listeners and the loop. */
static void fit_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	rlim_t fit = rl.rlim_cur > 128 ? (rl.rlim_cur - 128) / 2 : 1;
	if (cfg.max_conns > fit) {
		log_msg(LOG_INFO,
		        "--max-conns lowered to %lu to fit the descriptor limit",
		        (unsigned long)fit);
		cfg.max_conns = (unsigned)fit;
	}
	if (cfg.max_unauth == 0) /* not given */
		cfg.max_unauth = cfg.max_conns / 4 > 64 ? cfg.max_conns / 4 : 64;
	if (cfg.max_unauth_per_source == 0) /* not given: a burst of one client fits */
		cfg.max_unauth_per_source = cfg.max_unauth / 2;
}

static void on_signal(struct loop_watch *w, uint32_t revents)
{
	struct signalfd_siginfo si;
	(void)revents;
	if (read(w->fd, &si, sizeof(si)) != sizeof(si))
		return;
	/* Nothing to reload: a server that gave up root (--user) could not read
	 * a root-only users file again, so the file is read once, at start. */
	if (si.ssi_signo == SIGHUP) {
		log_msg(LOG_INFO, "SIGHUP ignored: the users are read once, at start; "
		                  "restart to change them");
		return;
	}
	log_msg(LOG_INFO, "%s: shutting down", strsignal((int)si.ssi_signo));
	loops_stop();
}

int main(int argc, char **argv)
{
	struct loop_watch sigwatch;
	sigset_t sigs;

	struct run_as ra = {0};
	parse_args(argc, argv);
	check_listeners();
	if (run_as_name && run_as_prepare(&ra, run_as_name, run_as_group) < 0)
		return EXIT_USAGE;
	signal(SIGPIPE, SIG_IGN);
	/* Blocked before any thread starts, so every thread inherits the mask and
	 * the signals wait for the signalfd that loop 0 watches. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	fit_fd_limit();
	if (nloops == 0)
		nloops = loops_default();
	struct server *srvs = calloc(nloops, sizeof(*srvs));
	int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (!srvs || sfd < 0 || loops_init(srvs, nloops, &cfg) < 0) {
		perror("socksify-server: start-up");
		return EXIT_RUNTIME;
	}
	loop_watch_init(&sigwatch, sfd, on_signal);
	loop_watch_set(&srvs[0].loop, &sigwatch, EPOLLIN);
	loops_listen(srvs, nloops);
	if (run_as_apply(&ra) < 0)
		return EXIT_RUNTIME;
	return loops_run(srvs, nloops) == 0 ? EXIT_OK : EXIT_RUNTIME;
}
