/* SPDX-License-Identifier: MIT */
/*
 * socksify-server's destination policy (cli/server/acl.c): parsing --allow
 * and --deny rules, first match wins, ports and ranges, v4-mapped
 * addresses, 0.0.0.0 and ::, the built-in list of an exposed server and
 * its own listeners (a wildcard one through a bind test on this host).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "tap.h"

/* "1.2.3.4:80" or "[::1]:80" as a socket address. */
static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss = {0};
	char host[64];
	const char *colon = strrchr(text, ':');
	size_t len = (size_t)(colon - text);
	unsigned port = (unsigned)atoi(colon + 1);

	if (text[0] == '[') {
		memcpy(host, text + 1, len - 2);
		host[len - 2] = '\0';
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			tap_diag("bad test address %s", text);
	} else {
		memcpy(host, text, len);
		host[len] = '\0';
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			tap_diag("bad test address %s", text);
	}
	return ss;
}

static const char *judge(const struct acl *acl, const char *dst, enum acl_proto p)
{
	struct sockaddr_storage ss = addr(dst);
	return acl_check(acl, (const struct sockaddr *)&ss, p);
}

/* dst is denied by the rule whose text starts with `by` (NULL: allowed). */
static void is_verdict(const struct acl *acl, const char *dst, const char *by)
{
	const char *got = judge(acl, dst, ACL_TCP);
	bool ok = by ? got && strncmp(got, by, strlen(by)) == 0 : got == NULL;
	tap_ok(ok, "%s: %s%s", dst, by ? "denied by " : "allowed", by ? by : "");
	if (!ok)
		tap_diag("got: %s", got ? got : "allowed");
}

static void parses(const char *spec, bool want_ok)
{
	struct acl acl = {0};
	int rc = acl_add_rule(&acl, spec, false);
	tap_ok((rc == 0) == want_ok, "\"%s\" %s", spec,
	       want_ok ? "parses" : "is refused");
	if ((rc == 0) != want_ok)
		tap_diag("rc %d", rc);
}

static void test_parsing(void)
{
	static const char *good[] = {
	        "10.0.0.0/8",
	        "10.0.0.1",
	        "10.0.0.0/8:22",
	        "10.0.0.1:1-1024",
	        "0.0.0.0/0",
	        "::1",
	        "fe80::/10",
	        "::/0",
	        "[::1]",
	        "[::1]:80",
	        "[2001:db8::]/32:443",
	        "[2001:db8::/32]:443",
	        "[2001:db8::]/32",
	        "::ffff:127.0.0.0/104",
	        "1.2.3.4:65535",
	        "10.0.0.0/0008",
	        "1.2.3.4:0080",
	        "[1.2.3.4]:80",
	};
	static const char *bad[] = {
	        "",
	        "notacidr",
	        "10.0.0.0/33",
	        "10.0.0.0/",
	        "10.0.0.0/-1",
	        "10.0.0.0/8:",
	        "10.0.0.0/8:0",
	        "1.2.3.4:65536",
	        "1.2.3.4:80-",
	        "1.2.3.4:90-80",
	        "1.2.3.4:-80",
	        "1.2.3.4:+80",
	        "1.2.3.4:8x",
	        "::1/129",
	        "[::1",
	        "[::1]x",
	        "[::1]:",
	        "[::1/64]/64",
	        "[]:80",
	        "/8",
	        "1.2.3.4/8/8",
	        "host.example",
	        "[::1]/",
	        "1.2.3.4:80:90",
	        "10.0.0.0/ 8",
	        "10.0.0.0/+8",
	        "10.0.0.0/-0",
	        "1.2.3.4: 80",
	        "1.2.3.4:80 ",
	        "1.2.3.4:1-2-3",
	        "::1/128:80",
	        "1.2.3.4:80--90",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		parses(good[i], true);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parses(bad[i], false);

	struct acl acl = {0};
	int rc = 0;
	for (int i = 0; i < ACL_MAX_RULES; i++)
		rc |= acl_add_rule(&acl, "10.0.0.0/8", false);
	tap_is(rc, 0, "%d rules fit", ACL_MAX_RULES);
	tap_is(acl_add_rule(&acl, "10.0.0.0/8", false), -ENOSPC, "one more: -ENOSPC");
}

static void test_first_match(void)
{
	struct acl acl = {0};
	acl_add_rule(&acl, "10.1.2.3:443", true);
	acl_add_rule(&acl, "10.0.0.0/8", false);
	acl_add_rule(&acl, "10.9.9.9", true); /* after the deny: never reached */
	is_verdict(&acl, "10.1.2.3:443", NULL);
	is_verdict(&acl, "10.1.2.3:80", "--deny 10.0.0.0/8");
	is_verdict(&acl, "10.9.9.9:80", "--deny 10.0.0.0/8");
	is_verdict(&acl, "11.0.0.1:80", NULL);
	tap_ok(acl_active(&acl), "rules make the policy active");

	struct acl none = {0};
	tap_ok(!acl_active(&none), "no rules, loopback only: inactive");
	is_verdict(&none, "127.0.0.1:80", NULL);
}

static void test_ports(void)
{
	struct acl acl = {0};
	acl_add_rule(&acl, "192.0.2.0/24:1000-2000", false);
	acl_add_rule(&acl, "[2001:db8::]/32:22", false);
	is_verdict(&acl, "192.0.2.7:999", NULL);
	is_verdict(&acl, "192.0.2.7:1000", "--deny 192.0.2.0/24:1000-2000");
	is_verdict(&acl, "192.0.2.7:2000", "--deny 192.0.2.0/24:1000-2000");
	is_verdict(&acl, "192.0.2.7:2001", NULL);
	is_verdict(&acl, "198.51.100.1:1500", NULL);
	is_verdict(&acl, "[2001:db8::5]:22", "--deny [2001:db8::]/32:22");
	is_verdict(&acl, "[2001:db8::5]:23", NULL);
	is_verdict(&acl, "[2001:db9::5]:22", NULL);
}

static void test_mapped(void)
{
	struct acl acl = {0};
	acl_add_rule(&acl, "192.0.2.0/24", false);
	acl_add_rule(&acl, "::ffff:198.51.100.0/120", false); /* an IPv4 rule */
	acl_add_rule(&acl, "2001:db8::/32", false);
	is_verdict(&acl, "[::ffff:192.0.2.9]:80", "--deny 192.0.2.0/24");
	is_verdict(&acl, "198.51.100.9:80", "--deny ::ffff:198.51.100.0/120");
	is_verdict(&acl, "[::ffff:198.51.100.9]:80", "--deny ::ffff:198.51.100.0/120");
	is_verdict(&acl, "[::ffff:203.0.113.1]:80", NULL);
	/* an IPv6 rule outside the mapped range does not match IPv4 */
	struct acl v6 = {0};
	acl_add_rule(&v6, "::/0", false);
	is_verdict(&v6, "[2001:db8::1]:80", "--deny ::/0");
	is_verdict(&v6, "192.0.2.1:80", NULL);
	is_verdict(&v6, "[::ffff:192.0.2.1]:80", NULL);
}

static void test_unspecified(void)
{
	struct acl acl = {0};
	acl_add_rule(&acl, "127.0.0.0/8", false);
	acl_add_rule(&acl, "::1", false);
	is_verdict(&acl, "0.0.0.0:80", "--deny 127.0.0.0/8");
	is_verdict(&acl, "[::ffff:0.0.0.0]:80", "--deny 127.0.0.0/8");
	is_verdict(&acl, "[::]:80", "--deny ::1");
}

static void test_exposed(void)
{
	struct acl acl = {.exposed = true};
	static const char *denied[][2] = {
	        {"127.0.0.1:80", "127.0.0.0/8"},
	        {"127.255.1.2:80", "127.0.0.0/8"},
	        {"0.0.0.0:80", "127.0.0.0/8"},
	        {"0.1.2.3:80", "0.0.0.0/8"},
	        {"169.254.169.254:80", "169.254.0.0/16"},
	        {"[::1]:80", "::1"},
	        {"[::]:80", "::1"},
	        {"[fe80::1]:80", "fe80::/10"},
	        {"[febf::1]:80", "fe80::/10"},
	        {"[::ffff:127.0.0.1]:80", "127.0.0.0/8"},
	        {"[::ffff:169.254.169.254]:80", "169.254.0.0/16"},
	        {"[fd00:ec2::254]:80", "fd00:ec2::254"},
	};
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		is_verdict(&acl, denied[i][0], denied[i][1]);
	is_verdict(&acl, "10.0.0.1:80", NULL);
	is_verdict(&acl, "192.168.1.1:80", NULL);
	is_verdict(&acl, "[fec0::1]:80", NULL);
	is_verdict(&acl, "128.0.0.1:80", NULL);
	tap_ok(acl_active(&acl), "exposed: active");

	acl_add_rule(&acl, "127.0.0.1:8080", true); /* an exception before the list */
	is_verdict(&acl, "127.0.0.1:8080", NULL);
	is_verdict(&acl, "127.0.0.1:8081", "127.0.0.0/8");

	struct acl open = {.exposed = true, .allow_local = true};
	tap_ok(!acl_active(&open), "exposed with --allow-local: inactive");
	is_verdict(&open, "127.0.0.1:80", NULL);
	is_verdict(&open, "169.254.169.254:80", NULL);
}

/* The wildcard listener's port on a non-loopback address of this host, when
 * it has one (the end-to-end suite has one in its namespace). */
static void test_self_wildcard(const struct sockaddr_storage *wildcard)
{
	struct ifaddrs *ifs, *i;
	char text[INET_ADDRSTRLEN + 8];

	if (getifaddrs(&ifs) < 0)
		return;
	for (i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
			continue;
		const uint8_t *a =
		        (const uint8_t *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		if (a[0] != 127 && !(a[0] == 169 && a[1] == 254))
			break;
	}
	if (!i) {
		tap_diag("no non-loopback IPv4 address here: the wildcard case is left "
		         "to the end-to-end suite");
		freeifaddrs(ifs);
		return;
	}
	inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, text,
	          INET_ADDRSTRLEN);
	freeifaddrs(ifs);
	strcat(text, ":1081");
	struct acl acl = {.exposed = true};
	acl_add_self(&acl, (const struct sockaddr *)wildcard);
	is_verdict(&acl, text, "a listener");
	text[strlen(text) - 1] = '2'; /* another port */
	is_verdict(&acl, text, NULL);
}

static void test_self(void)
{
	struct acl acl = {.exposed = true};
	struct sockaddr_storage l1 = addr("192.0.2.10:1080"), l2 = addr("0.0.0.0:1081");
	tap_is(acl_add_self(&acl, (struct sockaddr *)&l1), 0, "a listener recorded");
	acl_add_self(&acl, (struct sockaddr *)&l2);
	is_verdict(&acl, "192.0.2.10:1080", "a listener");
	is_verdict(&acl, "[::ffff:192.0.2.10]:1080", "a listener");
	is_verdict(&acl, "192.0.2.10:1082", NULL);
	is_verdict(&acl, "192.0.2.11:1080", NULL);
	/* the wildcard listener's port on a local address (loopback is local
	 * everywhere; the built-in list would deny it first, so an --allow
	 * exception lets the listener check speak) */
	struct acl wild = {.exposed = true};
	acl_add_rule(&wild, "127.0.0.0/8", true);
	acl_add_self(&wild, (struct sockaddr *)&l2);
	tap_ok(judge(&wild, "127.0.0.1:1081", ACL_TCP) == NULL,
	       "an --allow rule before the listener check wins");
	struct acl wild2 = {.exposed = true};
	acl_add_self(&wild2, (struct sockaddr *)&l2);
	/* 192.0.2.99 (TEST-NET-1) is not an address of this host */
	is_verdict(&wild2, "192.0.2.99:1081", NULL);
	tap_ok(judge(&wild2, "192.0.2.10:1080", ACL_OTHER) == NULL,
	       "UDP and BIND are not judged against the listeners");
	test_self_wildcard(&l2);
	struct acl off = {.exposed = true, .allow_local = true};
	acl_add_self(&off, (struct sockaddr *)&l1);
	is_verdict(&off, "192.0.2.10:1080", NULL);
}

int main(void)
{
	tap_init();
	test_parsing();
	test_first_match();
	test_ports();
	test_mapped();
	test_unspecified();
	test_exposed();
	test_self();
	return tap_done();
}
