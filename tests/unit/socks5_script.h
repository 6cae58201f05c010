/* SPDX-License-Identifier: MIT */
/*
 * What the SOCKS5 client's tests (test_handshake.c, test_hs.c) share: the
 * messages of their scripted proxies, the credentials they configure, and a
 * loopback listener to play the proxy on.
 */
#ifndef SOCKSIFY_TESTS_SOCKS5_SCRIPT_H
#define SOCKSIFY_TESTS_SOCKS5_SCRIPT_H

#include <stdbool.h>
#include <stdint.h>

#define GREET_NONE     "\x05\x01\x00"
#define GREET_BOTH     "\x05\x02\x00\x02"
#define GREET_USERPASS "\x05\x01\x02"
#define METHOD_NONE    "\x05\x00"
#define METHOD_USER    "\x05\x02"
#define METHOD_REFUSED "\x05\xff"
/* user "user", password "secret", as script_set_auth(true) configures */
#define AUTH                                                                             \
	"\x01\x04"                                                                       \
	"user"                                                                           \
	"\x06"                                                                           \
	"secret"
#define AUTH_OK  "\x01\x00"
#define AUTH_BAD "\x01\x01"
/* CONNECT example.com:443 */
#define REQUEST                                                                          \
	"\x05\x01\x00\x03\x0b"                                                           \
	"example.com"                                                                    \
	"\x01\xbb"
/* succeeded, BND 192.0.2.9:12345 */
#define REPLY_V4 "\x05\x00\x00\x01\xc0\x00\x02\x09\x30\x39"
/* succeeded, BND [2001:db8::9]:1234 */
#define REPLY_V6                                                                         \
	"\x05\x00\x00\x04\x20\x01\x0d\xb8"                                               \
	"\0\0\0\0\0\0\0\0\0\0\0\x09"                                                     \
	"\x04\xd2"
/* succeeded, BND relay.example:1081 */
#define REPLY_DOMAIN                                                                     \
	"\x05\x00\x00\x03\x0d"                                                           \
	"relay.example"                                                                  \
	"\x04\x39"
#define BANNER "SSH-2.0-OpenSSH_9.6\r\n"

/* Gives shim_config.proxy the credentials user:secret (on), or none. */
void script_set_auth(bool on);

/* A TCP listener on 127.0.0.1 at a free port (into *port); aborts on failure. */
int script_listen_loopback(uint16_t *port);

#endif
