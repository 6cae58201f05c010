/* SPDX-License-Identifier: MIT */
/*
 * socksify's configuration, shared by the shim (libsocksify.so) and the
 * launcher: the settings, their defaults, the parsers for socksify.conf, proxy
 * URLs and the SOCKSIFY_* environment, and the matching helpers the shim's
 * policy asks on every connection.
 *
 * The code runs inside arbitrary programs, so it never prints, never exits and
 * keeps no state of its own: the caller owns every struct config, the parsers
 * work in fixed-size buffers without malloc and are safe to call from any
 * thread. Every function that can fail returns 0 or -1 and then writes ONE
 * line into the caller's err buffer that names the source, the line where
 * there is one, and the problem:
 *   /etc/socksify.conf:7: unknown option 'prox'
 *   SOCKSIFY_PROXY: bad proxy URL 'socks5://host': missing port
 * A password never appears in a message (it is shown as ***), and bytes that
 * are not printable ASCII show as '?'. After a failure the struct holds
 * whatever the parser had applied so far: treat it as unusable.
 *
 * The file syntax and every option are documented in the sample socksify.conf
 * at the top of the source tree.
 */
#ifndef SOCKSIFY_SHIM_CONFIG_H
#define SOCKSIFY_SHIM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The environment config_load() reads (the launcher sets some of it). */
#define CONFIG_ENV_CONF           "SOCKSIFY_CONF"
#define CONFIG_ENV_PROXY          "SOCKSIFY_PROXY"
#define CONFIG_ENV_DNS            "SOCKSIFY_DNS"
#define CONFIG_ENV_LOG_LEVEL      "SOCKSIFY_LOG_LEVEL"
#define CONFIG_ENV_LOG_FILE       "SOCKSIFY_LOG_FILE"
#define CONFIG_ENV_PROXY_LOOPBACK "SOCKSIFY_PROXY_LOOPBACK"
#define CONFIG_ENV_EXCLUDE        "SOCKSIFY_EXCLUDE"
#define CONFIG_ENV_SUPERVISE      "SOCKSIFY_SUPERVISE"
#define CONFIG_ENV_CHAIN          "SOCKSIFY_CHAIN"
#define CONFIG_ENV_NAMESERVER     "SOCKSIFY_NAMESERVER"
#define CONFIG_ENV_BIND           "SOCKSIFY_BIND"

enum config_dns_mode { CONFIG_DNS_REMOTE, CONFIG_DNS_LOCAL };
enum config_pipeline { CONFIG_PIPELINE_AUTO, CONFIG_PIPELINE_ON, CONFIG_PIPELINE_OFF };
/* Client-side BIND (shim/cbind.c): auto serves an FTP-style listener with a
 * SOCKS BIND; never listens locally and reports the real local addresses. */
enum config_bind { CONFIG_BIND_AUTO, CONFIG_BIND_NEVER };
/*
 * Which programs the launcher also supervises with seccomp user notification:
 * auto, the static and Go executables LD_PRELOAD cannot reach; always, every
 * program, on top of the preload; never, none (the preload only).
 */
enum config_supervise {
	CONFIG_SUPERVISE_AUTO,
	CONFIG_SUPERVISE_ALWAYS,
	CONFIG_SUPERVISE_NEVER
};
enum {
	CONFIG_MAX_RULES = 64,
	CONFIG_ERR_LEN = 512,
	CONFIG_MAX_PROXIES = 8,
	CONFIG_MAX_OPTIONS = 16
};
/*
 * How several proxies are used (one proxy: all the same). failover: the
 * first that answers, a dead one skipped for failover_retry; round-robin:
 * the same, each connection starting one further along the list; strict: a
 * chain, TCP through each in turn, the last one reaching the destination.
 */
enum config_chain {
	CONFIG_CHAIN_FAILOVER,
	CONFIG_CHAIN_STRICT,
	CONFIG_CHAIN_ROUND_ROBIN
};
/*
 * Where a setting came from (struct config.origin, one per option of the file
 * syntax, indexed as config_option_name()): the doctor (socksify --check)
 * shows it.
 */
enum config_origin {
	CONFIG_FROM_DEFAULT,   /* never set */
	CONFIG_FROM_TEXT,      /* config_parse_text() or config_parse_file() */
	CONFIG_FROM_SYSCONF,   /* config_load()'s sysconf_path */
	CONFIG_FROM_CONF,      /* the file $SOCKSIFY_CONF names */
	CONFIG_FROM_ENV,       /* its SOCKSIFY_* variable */
	CONFIG_FROM_ALL_PROXY, /* ALL_PROXY / all_proxy (proxy), NO_PROXY (exclude) */
};
/* Environment variables of other tools (curl's): config_load() takes the
 * proxy from them when nothing of socksify's own names one. */
#define CONFIG_ENV_ALL_PROXY "ALL_PROXY"
#define CONFIG_ENV_NO_PROXY  "NO_PROXY"
/* Values of struct config.log_level. */
enum { CONFIG_LOG_ERROR = 0, CONFIG_LOG_INFO = 1, CONFIG_LOG_DEBUG = 2 };
/* The longest line of a configuration text, without its newline. */
enum { CONFIG_LINE_MAX = 1023 };

/* One proxy, from socks5://[user[:pass]@]host:port or socks5h://... */
struct config_proxy {
	bool remote_dns; /* socks5h:// */
	char host[256];  /* numeric address (IPv6 without brackets) or a name, which
	                    the shim resolves locally */
	uint16_t port;   /* required in the URL: 1..65535 */
	bool has_auth;   /* the URL had user[:pass]@ */
	char user[256], pass[256]; /* percent-decoded, never empty user, no NUL */
};

/* An exclusion: destinations that go direct instead of through the proxy. */
enum config_rule_kind { CONFIG_RULE_CIDR, CONFIG_RULE_SUFFIX };
struct config_rule {
	enum config_rule_kind kind;
	int family;       /* AF_INET / AF_INET6 for CIDR */
	uint8_t addr[16]; /* network address, host bits cleared */
	unsigned prefix;  /* 0..32 or 0..128 */
	uint16_t port;    /* port 0: any */
	/*
	 * A host-name suffix, stored lower-case without a leading "." or "*."
	 * and without a trailing dot. Like curl's NO_PROXY, "example.com",
	 * ".example.com" and "*.example.com" all match example.com itself and
	 * every name under it, but never badexample.com.
	 */
	char suffix[256];
};

struct config {
	/*
	 * The proxies, nproxies (1..CONFIG_MAX_PROXIES) of them; `proxy` is the
	 * first. A source's first proxy line replaces an earlier source's list,
	 * its later lines (or a comma-separated value) append.
	 */
	union {
		struct config_proxy proxy;
		struct config_proxy proxies[CONFIG_MAX_PROXIES];
	};
	unsigned nproxies;
	enum config_chain chain;    /* default CONFIG_CHAIN_FAILOVER */
	unsigned failover_retry_ms; /* default 30000: a dead proxy is skipped so long */
	/* without dns_set, dns follows the proxy: remote for socks5h */
	enum config_dns_mode dns;
	bool dns_set;
	struct config_rule rules[CONFIG_MAX_RULES];
	size_t nrules;
	bool proxy_loopback;           /* default false: loopback goes direct */
	unsigned connect_timeout_ms;   /* default 10000: connect + proxy handshake */
	int log_level;                 /* CONFIG_LOG_ERROR (default), _INFO, _DEBUG */
	char log_file[256];            /* "" = stderr */
	enum config_pipeline pipeline; /* default CONFIG_PIPELINE_AUTO */
	uint8_t fake_v4[4];            /* default 240.0.0.0/4 */
	unsigned fake_v4_prefix;
	uint8_t fake_v6[16]; /* default 100::/64 (RFC 6666 discard prefix) */
	unsigned fake_v6_prefix;
	enum config_supervise supervise; /* default CONFIG_SUPERVISE_AUTO */
	/* bit i: proxies[i]'s password came from SOCKSIFY_SECRET_FD (secret.h) */
	unsigned proxy_secret;
	/* a file that config_load() read which holds a proxy password and which
	 * group or others may read (the first such; "" when none): the shim and
	 * the launcher warn about it */
	char insecure_file[256];
	/*
	 * The DNS server that the program's own queries (res_query and friends)
	 * go to through the proxy in remote-DNS mode, over TCP: a numeric
	 * address, port 53 unless given. nameserver_family 0: none (default),
	 * and those queries fail.
	 */
	int nameserver_family;
	uint8_t nameserver[16];
	uint16_t nameserver_port;
	/* where each option's value came from (enum config_origin), indexed as
	 * config_option_name() */
	uint8_t origin[CONFIG_MAX_OPTIONS];
	enum config_bind bind; /* default CONFIG_BIND_AUTO */
};

/*
 * Fills cfg with the defaults: the proxy socks5h://127.0.0.1:1080 (one), chain
 * failover with failover_retry 30 s, dns remote
 * (not set explicitly), no exclusions, loopback direct, 10 s connect timeout,
 * log level error to stderr, pipeline auto, fake pools 240.0.0.0/4 and
 * 100::/64, supervise auto, bind auto. The struct is zeroed first, so two defaulted
 * structs compare equal with memcmp.
 */
void config_defaults(struct config *cfg);

/*
 * Parses one proxy URL into *out (which is overwritten). source names where
 * the URL came from in the error message ("SOCKSIFY_PROXY"); NULL for none.
 */
int config_parse_proxy_url(struct config_proxy *out, const char *url, const char *source,
                           char *err, size_t errlen);

/*
 * Applies the settings of one configuration text (len bytes, need not be
 * NUL-terminated) on top of cfg. The text is one source: its first `proxy`
 * line replaces the proxies set so far, later ones append (a value may also
 * be a comma-separated list of URLs); its first `exclude` line replaces the exclusions
 * set so far and later ones append. source names the text in messages
 * ("/etc/socksify.conf").
 */
int config_parse_text(struct config *cfg, const char *text, size_t len,
                      const char *source, char *err, size_t errlen);

/*
 * Like config_parse_text() on the contents of a file. A file that cannot be
 * opened or read gives -1 with "PATH: cannot read: REASON" and errno set to
 * the cause; whether a missing file matters is the caller's business.
 */
int config_parse_file(struct config *cfg, const char *path, char *err, size_t errlen);

/*
 * Builds the configuration from every source, in order, later wins:
 *   - the defaults;
 *   - sysconf_path (NULL for none; skipped silently if it does not exist);
 *   - when getenv_fn != NULL: the file named by $SOCKSIFY_CONF (missing is an
 *     error), $SOCKSIFY_PROXY (URLs separated by commas, replace the
 *     proxies), $SOCKSIFY_CHAIN,
 *     $SOCKSIFY_DNS (remote|local), $SOCKSIFY_LOG_LEVEL, $SOCKSIFY_LOG_FILE,
 *     $SOCKSIFY_PROXY_LOOPBACK (0/1, yes/no, true/false),
 *     $SOCKSIFY_EXCLUDE (comma-separated rules, replaces the exclusions),
 *     $SOCKSIFY_SUPERVISE (auto|always|never), $SOCKSIFY_NAMESERVER
 *     (ADDR, ADDR:PORT, [V6]:PORT);
 *   - when no source above named a proxy: $all_proxy, else $ALL_PROXY, as
 *     curl takes them, when it is a socks5:// or socks5h:// URL (another
 *     scheme is left to the tools it is for); then $no_proxy, else
 *     $NO_PROXY, adds exclusions: comma- or space-separated host names
 *     (a name and every name under it; a leading "." or "*." is allowed),
 *     addresses and CIDRs ("[v6]" too), "*" for every destination;
 *   - last, $SOCKSIFY_SECRET_FD (the proxy's credentials, see secret.h: a
 *     bad descriptor is an error).
 * An empty variable counts as unset. The shim passes secure_getenv, so that
 * setuid programs ignore the environment.
 */
int config_load(struct config *cfg, const char *sysconf_path,
                char *(*getenv_fn)(const char *), char *err, size_t errlen);

/*
 * Matching helpers for the shim's policy. A NULL or non-IP sockaddr never
 * matches.
 *   config_excluded_addr: a CIDR rule covers the address (and its port, for a
 *     rule with a port); a v4-mapped IPv6 address also matches IPv4 rules.
 *   config_excluded_name: a suffix rule covers the name, ASCII
 *     case-insensitive; a trailing dot on the name is ignored.
 *   config_is_fake_addr: the address lies in a fake pool (v4-mapped counts as
 *     IPv4); the IPv4 broadcast address 255.255.255.255 never does.
 */
bool config_excluded_addr(const struct config *cfg, const struct sockaddr *sa);
bool config_excluded_name(const struct config *cfg, const char *name);
bool config_is_fake_addr(const struct config *cfg, const struct sockaddr *sa);

/* Names go to the proxy: dns = remote, or, without a dns setting, a
 * socks5h:// proxy. */
bool config_remote_dns(const struct config *cfg);

/* The i-th option name of the file syntax, or NULL past the last one. */
const char *config_option_name(size_t i);

/* The index of an option name for config_option_name() and origin[], or -1. */
int config_option_index(const char *name);

/*
 * The variable config_load() took the proxy from when cfg->origin of
 * "proxy" is CONFIG_FROM_ALL_PROXY ("all_proxy" or "ALL_PROXY"), and the one
 * it would take (set but not a SOCKS5 URL, or a proxy was named otherwise)
 * in any case; NULL when neither is set.
 */
const char *config_all_proxy_var(char *(*getenv_fn)(const char *));
const char *config_no_proxy_var(char *(*getenv_fn)(const char *));

/* NO_PROXY's value as exclusion rules appended to cfg (source names the
 * variable in messages). */
int config_no_proxy_apply(struct config *cfg, const char *value, const char *source,
                          char *err, size_t errlen);

#endif
