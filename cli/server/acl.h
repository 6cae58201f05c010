/* SPDX-License-Identifier: MIT */
/*
 * Destination policy for socksify-server: which addresses CONNECT, UDP
 * ASSOCIATE and BIND may reach. A destination is judged by
 *   1. the --allow and --deny rules, in the order given: the first that
 *      matches decides;
 *   2. when the server is exposed (a listener is not on loopback) and
 *      --allow-local is not given, the built-in list: this host and its
 *      link (127.0.0.0/8, 0.0.0.0/8, ::1, 169.254.0.0/16, fe80::/10, the
 *      cloud metadata address fd00:ec2::254) and, for TCP, the listeners
 *      themselves (a wildcard listener: any local address with its port);
 *   3. otherwise it is allowed.
 * A v4-mapped IPv6 address is its IPv4 address throughout (IPv4 rules match
 * it; an IPv6 rule inside ::ffff:0:0/96 is an IPv4 rule), and 0.0.0.0 and
 * :: are judged as 127.0.0.1 and ::1, the host Linux connects them to.
 */
#ifndef SOCKSIFY_SERVER_ACL_H
#define SOCKSIFY_SERVER_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum { ACL_MAX_RULES = 64, ACL_MAX_SELF = 16, ACL_TEXT = 96 };

struct acl_rule {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order, 4 bytes used for AF_INET */
	unsigned prefix;
	uint16_t port_lo, port_hi; /* 0, 0: any port */
	bool allow;
	char text[ACL_TEXT]; /* "--deny 10.0.0.0/8:22", for the log */
};

struct acl {
	struct acl_rule rules[ACL_MAX_RULES];
	size_t nrules;
	bool exposed;                               /* a listener is not on loopback */
	bool allow_local;                           /* --allow-local: no built-in list */
	struct sockaddr_storage self[ACL_MAX_SELF]; /* the listeners, as bound */
	size_t nself;
};

/* What is judged: CONNECT is TCP and also refuses the listeners; UDP
 * datagrams and BIND peers are judged by the address rules only. */
enum acl_proto { ACL_TCP, ACL_OTHER };

/*
 * Parses "ADDR[/PREFIX][:PORT[-PORT]]" (IPv6 in brackets when a port follows:
 * "[2001:db8::]/32:443"; a bare IPv6 "fe80::/10" has no port) and appends an
 * allow or deny rule. Returns 0, -EINVAL (malformed) or -ENOSPC (too many).
 */
int acl_add_rule(struct acl *acl, const char *spec, bool allow);
/* Records a listening socket's address (port 0 already replaced by the real
 * one). Returns 0 or -ENOSPC. */
int acl_add_self(struct acl *acl, const struct sockaddr *sa);
/* NULL when the destination is allowed, else what denies it, for the log:
 * "--deny 10.0.0.0/8", "the built-in rule 127.0.0.0/8 ..." */
const char *acl_check(const struct acl *acl, const struct sockaddr *sa,
                      enum acl_proto proto);
/* True when some destination could be denied (rules, or exposed). */
bool acl_active(const struct acl *acl);

#endif
