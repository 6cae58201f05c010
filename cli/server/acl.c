/* SPDX-License-Identifier: MIT */
/*
 * Destination rules for socksify-server (see acl.h).
 */
#include "acl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int acl_add_deny(struct acl *acl, const char *cidr)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(cidr, '/');
	size_t hlen = slash ? (size_t)(slash - cidr) : strlen(cidr);
	struct acl_rule r = {0};

	if (acl->ndeny >= ACL_MAX_RULES)
		return -ENOSPC;
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, cidr, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, r.addr) == 1)
		r.family = AF_INET;
	else if (inet_pton(AF_INET6, host, r.addr) == 1)
		r.family = AF_INET6;
	else
		return -EINVAL;
	unsigned max = r.family == AF_INET ? 32 : 128;
	r.prefix = max;
	if (slash) {
		char *end;
		/* digits only: strtoul() would take "/ 8", "/+8" and "/-0" */
		if (slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		errno = 0;
		unsigned long p = strtoul(slash + 1, &end, 10);
		if (*end != '\0' || errno || p > max)
			return -EINVAL;
		r.prefix = (unsigned)p;
	}
	acl->deny[acl->ndeny++] = r;
	return 0;
}

static bool prefix_matches(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

bool acl_denies(const struct acl *acl, const struct sockaddr *sa)
{
	const uint8_t *v4 = NULL, *v6 = NULL;

	static const uint8_t lo4[4] = {127, 0, 0, 1};
	static const uint8_t lo6[16] = {[15] = 1};

	if (sa->sa_family == AF_INET) {
		v4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		v6 = a->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			v4 = a->s6_addr + 12;
		/* Linux connects the unspecified address to this host. */
		if (IN6_IS_ADDR_UNSPECIFIED(a))
			v6 = lo6;
	}
	if (v4 && v4[0] == 0)
		v4 = lo4;
	for (size_t i = 0; i < acl->ndeny; i++) {
		const struct acl_rule *r = &acl->deny[i];
		const uint8_t *a = r->family == AF_INET ? v4 : v6;
		if (a && prefix_matches(a, r->addr, r->prefix))
			return true;
	}
	return false;
}
