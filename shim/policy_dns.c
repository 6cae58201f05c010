/* SPDX-License-Identifier: MIT */
/*
 * The nameserver setting's part of the classifier (see policy.h): the
 * program's own DNS queries to a nameserver of /etc/resolv.conf (port 53,
 * UDP or TCP: host, dig without @, a resolver of its own) go to the
 * configured nameserver instead, through the proxy, in remote-DNS mode;
 * without that setting, those to a loopback nameserver (a local resolver,
 * which would send the name out itself) are refused with ECONNREFUSED.
 * resolv.conf is read once, at the first datagram or connect that asks.
 */
#include "policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "sockaddr.h"

enum { RESOLV_MAX = 3, RESOLV_BYTES = 8192 };

static struct {
	pthread_once_t once;
	unsigned n;
	int family[RESOLV_MAX];
	uint8_t addr[RESOLV_MAX][16];
} resolv = {.once = PTHREAD_ONCE_INIT};

/* One "nameserver ADDR" line (s, NUL-terminated, without its newline). */
static void resolv_line(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (strncmp(s, "nameserver", 10) != 0 || (s[10] != ' ' && s[10] != '\t') ||
	    resolv.n == RESOLV_MAX)
		return;
	s += 10;
	s += strspn(s, " \t");
	s[strcspn(s, " \t\r%#;")] = '\0';
	unsigned i = resolv.n;
	if (inet_pton(AF_INET, s, resolv.addr[i]) == 1)
		resolv.family[resolv.n++] = AF_INET;
	else if (inet_pton(AF_INET6, s, resolv.addr[i]) == 1)
		resolv.family[resolv.n++] = AF_INET6;
}

static void resolv_read(void)
{
	static char buf[RESOLV_BYTES + 1];
	int fd = open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n, got = 0;
	while (got < RESOLV_BYTES &&
	       (n = read(fd, buf + got, RESOLV_BYTES - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = '\0';
	for (char *line = buf, *end; line && *line; line = end ? end + 1 : NULL) {
		end = strchr(line, '\n');
		if (end)
			*end = '\0';
		resolv_line(line);
	}
}

/* Whether dst is port 53 of a nameserver of resolv.conf (v4-mapped counts). */
static bool is_resolv_nameserver(const struct sockaddr *dst)
{
	if (sa_port(dst) != 53)
		return false;
	pthread_once(&resolv.once, resolv_read);
	const uint8_t *v4 = sa_ipv4(dst);
	for (unsigned i = 0; i < resolv.n; i++) {
		if (resolv.family[i] == AF_INET && v4 &&
		    memcmp(v4, resolv.addr[i], 4) == 0)
			return true;
		if (resolv.family[i] == AF_INET6 && dst->sa_family == AF_INET6 &&
		    memcmp(&((const struct sockaddr_in6 *)dst)->sin6_addr, resolv.addr[i],
		           16) == 0)
			return true;
	}
	return false;
}

bool policy_dns_redirect(const struct sockaddr *dst, struct policy *out)
{
	const struct config *c = &shim_config;
	if (!config_remote_dns(c) || shim_config_broken || out->verdict == POLICY_DENY ||
	    !is_resolv_nameserver(dst))
		return false;
	if (c->nameserver_family == 0) {
		/* a local resolver would send the name out around the proxy; one
		 * that is not local is reached through the proxy as it is */
		if (out->verdict == POLICY_PASS && sa_loopback(dst)) {
			out->verdict = POLICY_DENY;
			out->err = ECONNREFUSED;
			out->reason = "a DNS query to a loopback nameserver of "
			              "/etc/resolv.conf would go around the proxy (set "
			              "nameserver = ADDR to send it through the proxy)";
		}
		return false;
	}
	memset(&out->target, 0, sizeof(out->target));
	if (c->nameserver_family == AF_INET) {
		out->target.atyp = SOCKS5_ATYP_IPV4;
		memcpy(out->target.host.ipv4, c->nameserver, 4);
	} else {
		out->target.atyp = SOCKS5_ATYP_IPV6;
		memcpy(out->target.host.ipv6, c->nameserver, 16);
	}
	out->target.port = c->nameserver_port;
	out->verdict = POLICY_PROXY;
	out->dns_redirect = true;
	return true;
}
