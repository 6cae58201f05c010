/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 wire codec (RFC 1928, RFC 1929): incremental decoders and
 * encoders for every message, address conversions and names for log lines.
 *
 * Everything here is pure: no I/O, no allocation, no globals but constant
 * tables. Every read from a wire buffer is preceded by an explicit length
 * check, multi-byte fields are assembled byte by byte in network order and no
 * struct is ever overlaid on the wire. A decoder checks each byte as soon as it
 * is available, so that it answers SOCKS5_PARTIAL only for a valid prefix.
 */
#include "socks5.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Bytes before the address in requests, replies and UDP headers. */
#define SOCKS5_PREFIX_LEN 3

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)(v & 0xff);
}

static int cmd_valid(uint8_t cmd)
{
	return cmd == SOCKS5_CMD_CONNECT || cmd == SOCKS5_CMD_BIND ||
	       cmd == SOCKS5_CMD_UDP_ASSOCIATE;
}

/* VER and one byte: the start of every client and server message but the
 * UDP header. */
static ssize_t pair_parse(const uint8_t *buf, size_t len, uint8_t ver, uint8_t *value)
{
	if (len < 1)
		return SOCKS5_PARTIAL;
	if (buf[0] != ver)
		return SOCKS5_BAD;
	if (len < 2)
		return SOCKS5_PARTIAL;
	*value = buf[1];
	return 2;
}

/* --- greeting ----------------------------------------------------------------- */

ssize_t socks5_greeting_parse(const uint8_t *buf, size_t len, struct socks5_greeting *out)
{
	uint8_t n;
	ssize_t rc = pair_parse(buf, len, SOCKS5_VERSION, &n);
	if (rc < 0)
		return rc;
	if (n == 0)
		return SOCKS5_BAD;
	size_t need = 2 + (size_t)buf[1];
	if (len < need)
		return SOCKS5_PARTIAL;
	out->nmethods = buf[1];
	memcpy(out->methods, buf + 2, out->nmethods);
	return (ssize_t)need;
}

size_t socks5_greeting_encode(uint8_t *buf, size_t cap, const uint8_t *methods,
                              size_t nmethods)
{
	if (nmethods == 0 || nmethods > 255 || !methods || cap < 2 + nmethods)
		return 0;
	buf[0] = SOCKS5_VERSION;
	buf[1] = (uint8_t)nmethods;
	memcpy(buf + 2, methods, nmethods);
	return 2 + nmethods;
}

int socks5_greeting_offers(const struct socks5_greeting *g, uint8_t method)
{
	for (size_t i = 0; i < g->nmethods; i++)
		if (g->methods[i] == method)
			return 1;
	return 0;
}

/* --- two-byte messages: method selection and RFC 1929 reply ----------------------- */

static size_t pair_encode(uint8_t *buf, size_t cap, uint8_t ver, uint8_t value)
{
	if (cap < 2)
		return 0;
	buf[0] = ver;
	buf[1] = value;
	return 2;
}

ssize_t socks5_method_reply_parse(const uint8_t *buf, size_t len, uint8_t *method)
{
	return pair_parse(buf, len, SOCKS5_VERSION, method);
}

size_t socks5_method_reply_encode(uint8_t *buf, size_t cap, uint8_t method)
{
	return pair_encode(buf, cap, SOCKS5_VERSION, method);
}

ssize_t socks5_auth_reply_parse(const uint8_t *buf, size_t len, uint8_t *status)
{
	return pair_parse(buf, len, SOCKS5_USERPASS_VERSION, status);
}

size_t socks5_auth_reply_encode(uint8_t *buf, size_t cap, uint8_t status)
{
	return pair_encode(buf, cap, SOCKS5_USERPASS_VERSION, status);
}

/* --- RFC 1929 request ----------------------------------------------------------- */

/*
 * Decodes one length-prefixed string at buf[*off] into dst (NUL-terminated)
 * and advances *off past it. Returns 0, SOCKS5_PARTIAL or SOCKS5_BAD (NUL).
 */
static int lstring_parse(const uint8_t *buf, size_t len, size_t *off, char *dst,
                         uint8_t *dst_len)
{
	if (len < *off + 1)
		return SOCKS5_PARTIAL;
	size_t n = buf[*off];
	size_t start = *off + 1;
	size_t have = len - start < n ? len - start : n;
	if (memchr(buf + start, 0, have))
		return SOCKS5_BAD;
	if (have < n)
		return SOCKS5_PARTIAL;
	memcpy(dst, buf + start, n);
	dst[n] = '\0';
	*dst_len = (uint8_t)n;
	*off = start + n;
	return 0;
}

ssize_t socks5_userpass_parse(const uint8_t *buf, size_t len, struct socks5_userpass *out)
{
	size_t off = 1;
	int r;

	if (len < 1)
		return SOCKS5_PARTIAL;
	if (buf[0] != SOCKS5_USERPASS_VERSION)
		return SOCKS5_BAD;
	r = lstring_parse(buf, len, &off, out->user, &out->ulen);
	if (r < 0)
		return r;
	r = lstring_parse(buf, len, &off, out->pass, &out->plen);
	if (r < 0)
		return r;
	return (ssize_t)off;
}

size_t socks5_userpass_encode(uint8_t *buf, size_t cap, const char *user, size_t ulen,
                              const char *pass, size_t plen)
{
	if (ulen > 255 || plen > 255 || (ulen && !user) || (plen && !pass))
		return 0;
	if ((ulen && memchr(user, 0, ulen)) || (plen && memchr(pass, 0, plen)))
		return 0;
	size_t need = 3 + ulen + plen;
	if (cap < need)
		return 0;
	buf[0] = SOCKS5_USERPASS_VERSION;
	buf[1] = (uint8_t)ulen;
	if (ulen)
		memcpy(buf + 2, user, ulen);
	buf[2 + ulen] = (uint8_t)plen;
	if (plen)
		memcpy(buf + 3 + ulen, pass, plen);
	return need;
}

/* --- addresses ------------------------------------------------------------------ */

/* Decodes the host of a domain address: buf[0] is ATYP, buf[1] is LEN. */
static ssize_t domain_parse(const uint8_t *buf, size_t len, struct socks5_addr *out)
{
	if (len < 2)
		return SOCKS5_PARTIAL;
	size_t n = buf[1];
	if (n == 0)
		return SOCKS5_BAD;
	size_t have = len - 2 < n ? len - 2 : n;
	if (memchr(buf + 2, 0, have))
		return SOCKS5_BAD;
	if (have < n)
		return SOCKS5_PARTIAL;
	memcpy(out->host.domain, buf + 2, n);
	out->host.domain[n] = '\0';
	out->domain_len = (uint8_t)n;
	return (ssize_t)(2 + n);
}

/* Decodes the host of an IP address: buf[0] is ATYP, `n` bytes follow. */
static ssize_t ip_parse(const uint8_t *buf, size_t len, uint8_t *dst, size_t n)
{
	if (len < 1 + n)
		return SOCKS5_PARTIAL;
	memcpy(dst, buf + 1, n);
	return (ssize_t)(1 + n);
}

ssize_t socks5_addr_parse(const uint8_t *buf, size_t len, struct socks5_addr *out)
{
	ssize_t host;

	if (len < 1)
		return SOCKS5_PARTIAL;
	out->atyp = buf[0];
	out->domain_len = 0;
	switch (buf[0]) {
	case SOCKS5_ATYP_IPV4:
		host = ip_parse(buf, len, out->host.ipv4, sizeof(out->host.ipv4));
		break;
	case SOCKS5_ATYP_IPV6:
		host = ip_parse(buf, len, out->host.ipv6, sizeof(out->host.ipv6));
		break;
	case SOCKS5_ATYP_DOMAIN:
		host = domain_parse(buf, len, out);
		break;
	default:
		return SOCKS5_BAD_ATYP;
	}
	if (host < 0)
		return host;
	if (len < (size_t)host + 2)
		return SOCKS5_PARTIAL;
	out->port = get_be16(buf + host);
	return host + 2;
}

size_t socks5_addr_wire_len(const struct socks5_addr *addr)
{
	switch (addr->atyp) {
	case SOCKS5_ATYP_IPV4:
		return 1 + 4 + 2;
	case SOCKS5_ATYP_IPV6:
		return 1 + 16 + 2;
	case SOCKS5_ATYP_DOMAIN:
		if (addr->domain_len == 0 ||
		    memchr(addr->host.domain, 0, addr->domain_len))
			return 0;
		return 1 + 1 + (size_t)addr->domain_len + 2;
	default:
		return 0;
	}
}

size_t socks5_addr_encode(uint8_t *buf, size_t cap, const struct socks5_addr *addr)
{
	size_t need = socks5_addr_wire_len(addr);
	size_t off = 1;

	if (need == 0 || cap < need)
		return 0;
	buf[0] = addr->atyp;
	switch (addr->atyp) {
	case SOCKS5_ATYP_IPV4:
		memcpy(buf + off, addr->host.ipv4, 4);
		off += 4;
		break;
	case SOCKS5_ATYP_IPV6:
		memcpy(buf + off, addr->host.ipv6, 16);
		off += 16;
		break;
	default: /* SOCKS5_ATYP_DOMAIN: socks5_addr_wire_len() rejected the rest */
		buf[off++] = addr->domain_len;
		memcpy(buf + off, addr->host.domain, addr->domain_len);
		off += addr->domain_len;
		break;
	}
	put_be16(buf + off, addr->port);
	return off + 2;
}

/* --- requests, replies and UDP headers -------------------------------------------- */

/* Decodes the address after a 3-byte prefix and returns the whole length. */
static ssize_t addr_after_prefix(const uint8_t *buf, size_t len, struct socks5_addr *out)
{
	if (len <= SOCKS5_PREFIX_LEN)
		return SOCKS5_PARTIAL;
	ssize_t n =
	        socks5_addr_parse(buf + SOCKS5_PREFIX_LEN, len - SOCKS5_PREFIX_LEN, out);
	return n < 0 ? n : n + SOCKS5_PREFIX_LEN;
}

/* Writes a 3-byte prefix then the address; 0 when either does not fit. */
static size_t prefix_encode(uint8_t *buf, size_t cap, uint8_t b0, uint8_t b1, uint8_t b2,
                            const struct socks5_addr *addr)
{
	size_t need = socks5_addr_wire_len(addr);

	if (need == 0 || cap < SOCKS5_PREFIX_LEN + need)
		return 0;
	buf[0] = b0;
	buf[1] = b1;
	buf[2] = b2;
	return SOCKS5_PREFIX_LEN +
	       socks5_addr_encode(buf + SOCKS5_PREFIX_LEN, cap - SOCKS5_PREFIX_LEN, addr);
}

/* VER, CMD (or REP), RSV = 0 and an address: the shape of a request and of
 * a reply. A request's CMD is judged as soon as it arrives. */
static ssize_t prefixed_parse(const uint8_t *buf, size_t len, struct socks5_request *out,
                              bool request)
{
	ssize_t rc = pair_parse(buf, len, SOCKS5_VERSION, &out->cmd);
	if (rc < 0)
		return rc;
	if (request && !cmd_valid(buf[1]))
		return SOCKS5_BAD_COMMAND;
	if (len < 3)
		return SOCKS5_PARTIAL;
	if (buf[2] != 0)
		return SOCKS5_BAD;
	return addr_after_prefix(buf, len, &out->addr);
}

ssize_t socks5_request_parse(const uint8_t *buf, size_t len, struct socks5_request *out)
{
	return prefixed_parse(buf, len, out, true);
}

size_t socks5_request_encode(uint8_t *buf, size_t cap, uint8_t cmd,
                             const struct socks5_addr *addr)
{
	if (!cmd_valid(cmd))
		return 0;
	return prefix_encode(buf, cap, SOCKS5_VERSION, cmd, 0, addr);
}

ssize_t socks5_reply_parse(const uint8_t *buf, size_t len, struct socks5_request *out)
{
	return prefixed_parse(buf, len, out, false);
}

size_t socks5_reply_encode(uint8_t *buf, size_t cap, uint8_t rep,
                           const struct socks5_addr *addr)
{
	return prefix_encode(buf, cap, SOCKS5_VERSION, rep, 0, addr);
}

ssize_t socks5_udp_header_parse(const uint8_t *buf, size_t len,
                                struct socks5_udp_header *out)
{
	for (size_t i = 0; i < 2; i++) {
		if (len < i + 1)
			return SOCKS5_PARTIAL;
		if (buf[i] != 0)
			return SOCKS5_BAD;
	}
	if (len < 3)
		return SOCKS5_PARTIAL;
	out->frag = buf[2];
	return addr_after_prefix(buf, len, &out->addr);
}

size_t socks5_udp_header_encode(uint8_t *buf, size_t cap, uint8_t frag,
                                const struct socks5_addr *addr)
{
	return prefix_encode(buf, cap, 0, 0, frag, addr);
}

/* --- conversions ---------------------------------------------------------------- */

/* Where an IPv4 and an IPv6 socket address hold what a SOCKS address does. */
static const struct ip_layout {
	uint8_t atyp;
	sa_family_t family;
	socklen_t salen;
	size_t addr_off, addr_len, port_off;
} ip_layouts[] = {
        {SOCKS5_ATYP_IPV4, AF_INET, sizeof(struct sockaddr_in),
         offsetof(struct sockaddr_in, sin_addr), 4,
         offsetof(struct sockaddr_in, sin_port)},
        {SOCKS5_ATYP_IPV6, AF_INET6, sizeof(struct sockaddr_in6),
         offsetof(struct sockaddr_in6, sin6_addr), 16,
         offsetof(struct sockaddr_in6, sin6_port)},
};

static const struct ip_layout *layout_of(int family, int atyp)
{
	for (size_t i = 0; i < sizeof(ip_layouts) / sizeof(ip_layouts[0]); i++)
		if (ip_layouts[i].family == family || ip_layouts[i].atyp == atyp)
			return &ip_layouts[i];
	return NULL;
}

int socks5_addr_from_sockaddr(struct socks5_addr *out, const struct sockaddr *sa,
                              socklen_t salen)
{
	sa_family_t family;
	uint16_t port;

	if (!sa || salen < sizeof(family))
		return -EINVAL;
	memcpy(&family, (const uint8_t *)sa + offsetof(struct sockaddr, sa_family),
	       sizeof(family));
	memset(out, 0, sizeof(*out));
	const struct ip_layout *l = layout_of(family, -1);
	if (!l)
		return -EAFNOSUPPORT;
	if (salen < l->salen)
		return -EINVAL;
	out->atyp = l->atyp;
	memcpy(&out->host, (const uint8_t *)sa + l->addr_off, l->addr_len);
	memcpy(&port, (const uint8_t *)sa + l->port_off, sizeof(port));
	out->port = ntohs(port);
	return 0;
}

socklen_t socks5_addr_to_sockaddr(const struct socks5_addr *addr,
                                  struct sockaddr_storage *ss)
{
	const struct ip_layout *l = layout_of(-1, addr->atyp);
	uint16_t port = htons(addr->port);

	memset(ss, 0, sizeof(*ss));
	ss->ss_family = AF_UNSPEC;
	if (!l)
		return 0;
	ss->ss_family = l->family;
	memcpy((uint8_t *)ss + l->addr_off, &addr->host, l->addr_len);
	memcpy((uint8_t *)ss + l->port_off, &port, sizeof(port));
	return l->salen;
}

int socks5_addr_set_domain(struct socks5_addr *out, const char *name, size_t len,
                           uint16_t port)
{
	if (!name || len == 0 || len > SOCKS5_DOMAIN_MAX || memchr(name, 0, len))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->atyp = SOCKS5_ATYP_DOMAIN;
	out->domain_len = (uint8_t)len;
	memcpy(out->host.domain, name, len);
	out->host.domain[len] = '\0';
	out->port = port;
	return 0;
}

/*
 * Copies a wire domain name for a log line; bytes other than printable ASCII
 * (a peer chooses them: control characters could forge log lines) become '?'.
 */
static void domain_printable(const struct socks5_addr *addr, char *dst)
{
	for (size_t i = 0; i < addr->domain_len; i++) {
		unsigned char c = (unsigned char)addr->host.domain[i];
		dst[i] = c > 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[addr->domain_len] = '\0';
}

char *socks5_addr_format(const struct socks5_addr *addr, char *buf, size_t cap)
{
	char host[SOCKS5_DOMAIN_MAX + 1];

	if (cap == 0)
		return buf;
	switch (addr->atyp) {
	case SOCKS5_ATYP_IPV4:
		if (!inet_ntop(AF_INET, addr->host.ipv4, host, sizeof(host)))
			break;
		snprintf(buf, cap, "%s:%u", host, (unsigned)addr->port);
		return buf;
	case SOCKS5_ATYP_IPV6:
		if (!inet_ntop(AF_INET6, addr->host.ipv6, host, sizeof(host)))
			break;
		snprintf(buf, cap, "[%s]:%u", host, (unsigned)addr->port);
		return buf;
	case SOCKS5_ATYP_DOMAIN:
		domain_printable(addr, host);
		snprintf(buf, cap, "%s:%u", host, (unsigned)addr->port);
		return buf;
	default:
		break;
	}
	snprintf(buf, cap, "?:%u", (unsigned)addr->port);
	return buf;
}

/* --- names and errno mapping -------------------------------------------------------- */

static const char *const rep_names[] = {
        [SOCKS5_REP_SUCCEEDED] = "succeeded",
        [SOCKS5_REP_GENERAL_FAILURE] = "general SOCKS server failure",
        [SOCKS5_REP_NOT_ALLOWED] = "connection not allowed by ruleset",
        [SOCKS5_REP_NET_UNREACHABLE] = "network unreachable",
        [SOCKS5_REP_HOST_UNREACHABLE] = "host unreachable",
        [SOCKS5_REP_CONN_REFUSED] = "connection refused",
        [SOCKS5_REP_TTL_EXPIRED] = "TTL expired",
        [SOCKS5_REP_CMD_NOT_SUPPORTED] = "command not supported",
        [SOCKS5_REP_ATYP_NOT_SUPPORTED] = "address type not supported",
};

const char *socks5_rep_name(uint8_t rep)
{
	if (rep < sizeof(rep_names) / sizeof(rep_names[0]))
		return rep_names[rep];
	return "unassigned reply code";
}

const char *socks5_cmd_name(uint8_t cmd)
{
	switch (cmd) {
	case SOCKS5_CMD_CONNECT:
		return "CONNECT";
	case SOCKS5_CMD_BIND:
		return "BIND";
	case SOCKS5_CMD_UDP_ASSOCIATE:
		return "UDP ASSOCIATE";
	default:
		return "unknown";
	}
}

uint8_t socks5_rep_from_errno(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:
		return SOCKS5_REP_SUCCEEDED;
	case ECONNREFUSED:
		return SOCKS5_REP_CONN_REFUSED;
	case ENETUNREACH:
	case ENETDOWN:
		return SOCKS5_REP_NET_UNREACHABLE;
	case EHOSTUNREACH:
	case EHOSTDOWN:
	case ETIMEDOUT:
	case ENOENT: /* stands for EAI_NONAME: no such name */
		return SOCKS5_REP_HOST_UNREACHABLE;
	case EACCES:
	case EPERM:
		return SOCKS5_REP_NOT_ALLOWED;
	case EAFNOSUPPORT:
		return SOCKS5_REP_ATYP_NOT_SUPPORTED;
	default:
		return SOCKS5_REP_GENERAL_FAILURE;
	}
}

int socks5_rep_to_errno(uint8_t rep)
{
	static const int errnos[] = {
	        [SOCKS5_REP_SUCCEEDED] = 0,
	        [SOCKS5_REP_GENERAL_FAILURE] = ECONNABORTED,
	        [SOCKS5_REP_NOT_ALLOWED] = EACCES,
	        [SOCKS5_REP_NET_UNREACHABLE] = ENETUNREACH,
	        [SOCKS5_REP_HOST_UNREACHABLE] = EHOSTUNREACH,
	        [SOCKS5_REP_CONN_REFUSED] = ECONNREFUSED,
	        [SOCKS5_REP_TTL_EXPIRED] = ETIMEDOUT,
	        [SOCKS5_REP_CMD_NOT_SUPPORTED] = EOPNOTSUPP,
	        [SOCKS5_REP_ATYP_NOT_SUPPORTED] = EAFNOSUPPORT,
	};

	if (rep < sizeof(errnos) / sizeof(errnos[0]))
		return errnos[rep];
	return EPROTO;
}
