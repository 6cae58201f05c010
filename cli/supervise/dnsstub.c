/* SPDX-License-Identifier: MIT */
/*
 * The supervisor's DNS stub (see sv_int.h), for remote-DNS mode: programs
 * that resolve names themselves (the pure-Go resolver, a static libc) send
 * their queries to the nameservers of /etc/resolv.conf; net.c sends a query
 * for port 53 of one of them here instead, and the stub answers it from the
 * fake-address pool the shim uses (fakedns.c, shared with every preloaded
 * process of the program tree), so that the program's connect() to the
 * answer becomes a CONNECT by name at the proxy. Nothing leaves the machine.
 *   A        -> the name's fake IPv4 address (TTL 60)
 *   AAAA     -> no answer (NOERROR, no data): one family, one connection
 *               attempt, as the shim's getaddrinfo gives
 *   the rest -> REFUSED; a malformed query: FORMERR; a full pool: SERVFAIL
 * The stub listens on 127.0.0.1 and ::1, on ports the kernel picks.
 */
#include "sv_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dnsmsg.h"
#include "fakedns.h"
#include "log.h"

enum { NS_MAX = 8 };

static union sa_any nameservers[NS_MAX];
static size_t n_nameservers;
static int stub_fd[2] = {-1, -1}; /* IPv4, IPv6 */
static union sa_any stub_addr[2];
static socklen_t stub_len[2];

/* The nameserver lines of /etc/resolv.conf (as the resolvers read it). */
static void read_resolv_conf(void)
{
	char line[512], host[256];
	FILE *f = fopen("/etc/resolv.conf", "re");

	if (!f)
		return;
	while (n_nameservers < NS_MAX && fgets(line, sizeof(line), f)) {
		if (sscanf(line, " nameserver %255s", host) != 1)
			continue;
		char *pct = strchr(host, '%');
		if (pct)
			*pct = '\0';
		union sa_any *a = &nameservers[n_nameservers];
		memset(a, 0, sizeof(*a));
		if (inet_pton(AF_INET, host, &a->v4.sin_addr) == 1)
			a->v4.sin_family = AF_INET;
		else if (inet_pton(AF_INET6, host, &a->v6.sin6_addr) == 1)
			a->v6.sin6_family = AF_INET6;
		else
			continue;
		sa_set_port(&a->sa, 53);
		n_nameservers++;
	}
	fclose(f);
}

bool sv_dns_is_nameserver(const struct sockaddr *dst)
{
	for (size_t i = 0; i < n_nameservers; i++)
		if (sa_same(dst, &nameservers[i].sa))
			return true;
	return false;
}

socklen_t sv_dns_stub_addr(int family, union sa_any *out)
{
	int i = family == AF_INET6 ? 1 : 0;
	if (stub_fd[0] < 0 && stub_fd[1] < 0)
		return 0;
	if (family == AF_INET6 && stub_fd[1] < 0)
		/* an IPv6 socket without ::1 here: the IPv4 stub, v4-mapped */
		return sa_to_family(&stub_addr[0].sa, stub_len[0], AF_INET6, out);
	if (stub_fd[i] < 0)
		return 0;
	*out = stub_addr[i];
	return stub_len[i];
}

/* One query in, one answer out (or none for what is not a query). */
static void serve_one(int fd)
{
	uint8_t q[DNSMSG_MAX], a[DNSMSG_MAX];
	union sa_any from;
	socklen_t from_len = sizeof(from);

	ssize_t n = recvfrom(fd, q, sizeof(q), 0, &from.sa, &from_len);
	if (n <= 0)
		return;
	size_t len = dnsmsg_answer(q, (size_t)n, a, sizeof(a));
	if (len > 0)
		sendto(fd, a, len, MSG_NOSIGNAL, &from.sa, from_len);
}

static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = stub_fd[0], .events = POLLIN},
		                      {.fd = stub_fd[1], .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return NULL;
		for (int i = 0; i < 2; i++)
			if (p[i].revents & POLLIN)
				serve_one(stub_fd[i]);
	}
}

static int open_stub(int i, int family)
{
	union sa_any *a = &stub_addr[i];
	memset(a, 0, sizeof(*a));
	a->sa.sa_family = (sa_family_t)family;
	if (family == AF_INET)
		a->v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		a->v6.sin6_addr = in6addr_loopback;
	stub_len[i] = sa_len(&a->sa);
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, &a->sa, stub_len[i]) < 0 ||
	    getsockname(fd, &a->sa, &stub_len[i]) < 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		return -err;
	}
	stub_fd[i] = fd;
	return 0;
}

int sv_dns_start(bool stub)
{
	pthread_t t;

	read_resolv_conf();
	if (!stub)
		return 0;
	int rc4 = open_stub(0, AF_INET);
	open_stub(1, AF_INET6); /* optional: a machine without IPv6 */
	if (rc4 < 0)
		return rc4;
	int err = pthread_create(&t, NULL, serve, NULL);
	if (err != 0)
		return -err;
	pthread_detach(t);
	return 0;
}
