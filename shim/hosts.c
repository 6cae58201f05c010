/* SPDX-License-Identifier: MIT */
/*
 * /etc/hosts lookups (see hosts.h). The file is read on every call: it is
 * small, lookups are rare next to connections, and a cache would go stale.
 */
#include "hosts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HOSTS_PATH "/etc/hosts"

/* Calls fn(addr text, first name, each name...) per line; stops when fn returns >= 0. */
typedef int (*hosts_fn)(const char *addr, char **names, int nnames, void *arg);

static int hosts_walk(hosts_fn fn, void *arg)
{
	FILE *f = fopen(HOSTS_PATH, "re");
	char line[1024];
	int rc = -ENOENT;
	if (!f)
		return rc;
	while (rc < 0 && fgets(line, sizeof(line), f)) {
		char *names[16], *save = NULL, *tok;
		int n = 0;
		line[strcspn(line, "#\n")] = '\0';
		char *addr = strtok_r(line, " \t", &save);
		if (!addr)
			continue;
		while (n < 16 && (tok = strtok_r(NULL, " \t", &save)))
			names[n++] = tok;
		if (n > 0)
			rc = fn(addr, names, n, arg);
	}
	fclose(f);
	return rc;
}

static int match_name(const char *addr, char **names, int n, void *arg)
{
	(void)addr;
	for (int i = 0; i < n; i++)
		if (strcasecmp(names[i], arg) == 0)
			return 0;
	return -ENOENT;
}

bool hosts_has_name(const char *name)
{
	return hosts_walk(match_name, (void *)name) == 0;
}

struct addr_query {
	int family;
	unsigned char addr[16];
	char *name;
	size_t cap;
};

static int match_addr(const char *addr, char **names, int n, void *arg)
{
	struct addr_query *q = arg;
	unsigned char buf[16];
	size_t alen = q->family == AF_INET ? 4 : 16;
	(void)n;
	if (inet_pton(q->family, addr, buf) != 1 || memcmp(buf, q->addr, alen) != 0)
		return -ENOENT;
	size_t len = strlen(names[0]);
	if (len >= q->cap)
		return -ENOENT;
	memcpy(q->name, names[0], len + 1);
	return (int)len;
}

int hosts_name_for(const struct sockaddr *sa, char *name, size_t cap)
{
	struct addr_query q = {.family = sa->sa_family, .name = name, .cap = cap};
	if (sa->sa_family == AF_INET)
		memcpy(q.addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	else if (sa->sa_family == AF_INET6)
		memcpy(q.addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	else
		return -ENOENT;
	return hosts_walk(match_addr, &q);
}
