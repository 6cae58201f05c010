/* SPDX-License-Identifier: MIT */
/*
 * Destination rules for socksify-server: a list of denied CIDR ranges.
 * IPv4 rules also match v4-mapped IPv6 addresses.
 */
#ifndef SOCKSIFY_SERVER_ACL_H
#define SOCKSIFY_SERVER_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum { ACL_MAX_RULES = 64 };

struct acl_rule {
	int family;       /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* network byte order, 4 bytes used for AF_INET */
	unsigned prefix;
};

struct acl {
	struct acl_rule deny[ACL_MAX_RULES];
	size_t ndeny;
};

/* Parses "ADDR[/PREFIX]" and appends a deny rule. Returns 0 or -EINVAL/-ENOSPC. */
int acl_add_deny(struct acl *acl, const char *cidr);
/* True when the destination address is denied. */
bool acl_denies(const struct acl *acl, const struct sockaddr *sa);

#endif
