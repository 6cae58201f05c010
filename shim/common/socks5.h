/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 wire codec: pure, allocation-free encoders and decoders for every
 * message of RFC 1928 (SOCKS protocol version 5) and RFC 1929 (username/password
 * authentication), plus conversions between wire addresses and sockaddrs.
 *
 * Nothing here does I/O, touches a global or allocates. Decoders are
 * incremental in the picohttpparser sense: the caller accumulates bytes and
 * calls again with the whole buffer; a decoder returns the number of bytes the
 * message took (> 0), SOCKS5_PARTIAL when the buffer holds a valid prefix of a
 * message, or one of the SOCKS5_BAD* codes when no continuation could make the
 * bytes valid. Encoders return the number of bytes written, or 0 when the
 * output buffer is too small or an argument cannot be encoded.
 *
 * The codec is shared by the shim (client side) and socksify-server.
 */
#ifndef SOCKSIFY_PROTO_SOCKS5_H
#define SOCKSIFY_PROTO_SOCKS5_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Protocol constants, named after the RFC values. */
enum socks5_version {
	SOCKS5_VERSION = 0x05,          /* RFC 1928 */
	SOCKS5_USERPASS_VERSION = 0x01, /* RFC 1929 sub-negotiation */
};

enum socks5_method {
	SOCKS5_METHOD_NONE = 0x00,
	SOCKS5_METHOD_GSSAPI = 0x01,
	SOCKS5_METHOD_USERPASS = 0x02,
	SOCKS5_METHOD_UNACCEPTABLE = 0xff,
};

enum socks5_cmd {
	SOCKS5_CMD_CONNECT = 0x01,
	SOCKS5_CMD_BIND = 0x02,
	SOCKS5_CMD_UDP_ASSOCIATE = 0x03,
};

enum socks5_atyp {
	SOCKS5_ATYP_IPV4 = 0x01,
	SOCKS5_ATYP_DOMAIN = 0x03,
	SOCKS5_ATYP_IPV6 = 0x04,
};

enum socks5_rep {
	SOCKS5_REP_SUCCEEDED = 0x00,
	SOCKS5_REP_GENERAL_FAILURE = 0x01,
	SOCKS5_REP_NOT_ALLOWED = 0x02,
	SOCKS5_REP_NET_UNREACHABLE = 0x03,
	SOCKS5_REP_HOST_UNREACHABLE = 0x04,
	SOCKS5_REP_CONN_REFUSED = 0x05,
	SOCKS5_REP_TTL_EXPIRED = 0x06,
	SOCKS5_REP_CMD_NOT_SUPPORTED = 0x07,
	SOCKS5_REP_ATYP_NOT_SUPPORTED = 0x08,
};

/* RFC 1929 status: 0 is success, anything else is failure. */
enum socks5_auth_status {
	SOCKS5_AUTH_SUCCESS = 0x00,
	SOCKS5_AUTH_FAILURE = 0x01,
};

/* Decoder results other than a byte count. */
enum socks5_status {
	SOCKS5_PARTIAL = -1,     /* a valid prefix: call again with more bytes */
	SOCKS5_BAD = -2,         /* malformed: wrong version, bad length, ... */
	SOCKS5_BAD_COMMAND = -3, /* a request with an unknown CMD (reply 0x07) */
	SOCKS5_BAD_ATYP = -4,    /* an unknown address type (reply 0x08) */
};

/* Largest sizes of each message on the wire. */
enum socks5_sizes {
	SOCKS5_DOMAIN_MAX = 255,
	SOCKS5_GREETING_MAX = 2 + 255,
	SOCKS5_METHOD_REPLY_LEN = 2,
	SOCKS5_USERPASS_MAX = 3 + 255 + 255,
	SOCKS5_AUTH_REPLY_LEN = 2,
	SOCKS5_ADDR_MAX = 1 + 1 + 255 + 2, /* ATYP, LEN, domain, port */
	SOCKS5_REQUEST_MAX = 3 + SOCKS5_ADDR_MAX,
	SOCKS5_REPLY_MAX = 3 + SOCKS5_ADDR_MAX,
	SOCKS5_UDP_HEADER_MAX = 3 + SOCKS5_ADDR_MAX,
	SOCKS5_ADDR_STRLEN = 255 + 2 + 1 + 5 + 1, /* "[v6]:port" or "name:port" */
};

/*
 * A SOCKS5 address: ATYP, host and port. `port` is in host byte order. A
 * domain is stored NUL-terminated with its length in `domain_len` (1..255);
 * a domain that contains a NUL byte is rejected by the decoders.
 */
struct socks5_addr {
	uint8_t atyp;
	uint8_t domain_len;
	uint16_t port;
	union {
		uint8_t ipv4[4];
		uint8_t ipv6[16];
		char domain[SOCKS5_DOMAIN_MAX + 1];
	} host;
};

/* Client greeting: VER NMETHODS METHODS... (NMETHODS 1..255). */
struct socks5_greeting {
	uint8_t nmethods;
	uint8_t methods[255];
};

/* RFC 1929 request. Lengths may be 0 (curl sends an empty password). */
struct socks5_userpass {
	uint8_t ulen;
	uint8_t plen;
	char user[256]; /* NUL-terminated */
	char pass[256]; /* NUL-terminated */
};

/* A request (cmd) or a reply (cmd holds REP): VER CMD/REP RSV ADDR. */
struct socks5_request {
	uint8_t cmd;
	struct socks5_addr addr;
};

/* RFC 1928 section 7: RSV RSV FRAG ADDR DATA. */
struct socks5_udp_header {
	uint8_t frag;
	struct socks5_addr addr;
};

/* Greeting (client → server). */
ssize_t socks5_greeting_parse(const uint8_t *buf, size_t len,
                              struct socks5_greeting *out);
size_t socks5_greeting_encode(uint8_t *buf, size_t cap, const uint8_t *methods,
                              size_t nmethods);
/* Returns 1 when the greeting offers `method`. */
int socks5_greeting_offers(const struct socks5_greeting *g, uint8_t method);

/* Method selection (server → client): VER METHOD. */
ssize_t socks5_method_reply_parse(const uint8_t *buf, size_t len, uint8_t *method);
size_t socks5_method_reply_encode(uint8_t *buf, size_t cap, uint8_t method);

/* RFC 1929 username/password request (client → server). */
ssize_t socks5_userpass_parse(const uint8_t *buf, size_t len,
                              struct socks5_userpass *out);
size_t socks5_userpass_encode(uint8_t *buf, size_t cap, const char *user, size_t ulen,
                              const char *pass, size_t plen);

/* RFC 1929 reply (server → client): VER STATUS. */
ssize_t socks5_auth_reply_parse(const uint8_t *buf, size_t len, uint8_t *status);
size_t socks5_auth_reply_encode(uint8_t *buf, size_t cap, uint8_t status);

/*
 * Request (client → server). The decoder returns SOCKS5_BAD_COMMAND for a
 * CMD other than CONNECT, BIND and UDP ASSOCIATE (as soon as the CMD byte is
 * seen) and SOCKS5_BAD_ATYP for an unknown ATYP, so that a server can answer
 * with the matching reply code; out->cmd is set in both cases.
 */
ssize_t socks5_request_parse(const uint8_t *buf, size_t len, struct socks5_request *out);
size_t socks5_request_encode(uint8_t *buf, size_t cap, uint8_t cmd,
                             const struct socks5_addr *addr);

/* Reply (server → client). out->cmd holds the REP code. Any REP is accepted. */
ssize_t socks5_reply_parse(const uint8_t *buf, size_t len, struct socks5_request *out);
size_t socks5_reply_encode(uint8_t *buf, size_t cap, uint8_t rep,
                           const struct socks5_addr *addr);

/* UDP datagram header; the payload follows the returned header length. */
ssize_t socks5_udp_header_parse(const uint8_t *buf, size_t len,
                                struct socks5_udp_header *out);
size_t socks5_udp_header_encode(uint8_t *buf, size_t cap, uint8_t frag,
                                const struct socks5_addr *addr);

/* An address alone (ATYP ADDR PORT), as used inside the messages above. */
ssize_t socks5_addr_parse(const uint8_t *buf, size_t len, struct socks5_addr *out);
size_t socks5_addr_encode(uint8_t *buf, size_t cap, const struct socks5_addr *addr);
/* Bytes the address takes on the wire, or 0 for an invalid address. */
size_t socks5_addr_wire_len(const struct socks5_addr *addr);

/*
 * Conversions. socks5_addr_from_sockaddr() accepts AF_INET and AF_INET6 (a
 * v4-mapped IPv6 address stays IPv6) and returns 0 or -EAFNOSUPPORT /
 * -EINVAL. socks5_addr_to_sockaddr() returns the sockaddr length, or 0 for a
 * domain address. socks5_addr_set_domain() returns 0, or -EINVAL when the
 * name is empty, longer than 255 bytes or holds a NUL.
 */
int socks5_addr_from_sockaddr(struct socks5_addr *out, const struct sockaddr *sa,
                              socklen_t salen);
socklen_t socks5_addr_to_sockaddr(const struct socks5_addr *addr,
                                  struct sockaddr_storage *ss);
int socks5_addr_set_domain(struct socks5_addr *out, const char *name, size_t len,
                           uint16_t port);

/*
 * Writes "1.2.3.4:80", "[2001:db8::1]:80" or "name:80" into buf (at least
 * SOCKS5_ADDR_STRLEN bytes are always enough) and returns buf.
 */
char *socks5_addr_format(const struct socks5_addr *addr, char *buf, size_t cap);

/* Names for log messages: "connection refused", "command not supported", ... */
const char *socks5_rep_name(uint8_t rep);
const char *socks5_cmd_name(uint8_t cmd);
/* The reply code that best describes a connect()/getaddrinfo() errno. */
uint8_t socks5_rep_from_errno(int err);
/* The errno a client should see for a failure reply code. */
int socks5_rep_to_errno(uint8_t rep);

#endif
