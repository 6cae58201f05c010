/* SPDX-License-Identifier: MIT */
/*
 * The shim's fd table (shim/fdtab.c), without the shim: socket classes
 * (from socket()'s arguments, or asked of the kernel once), TCP outcomes,
 * payload references through registered functions, copies and sweeps.
 * Runs as an ordinary user: the only sockets are unbound ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdtab.h"
#include "shim.h"
#include "tap.h"

/* fdtab.c asks the kernel through real_getsockopt: counted here (the
 * pointer is set, so it is never resolved). */
static int getsockopt_calls;
static int counting_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	getsockopt_calls++;
	return getsockopt(fd, level, name, val, len);
}
int (*shim_next_getsockopt)(int, int, int, void *, socklen_t *) = counting_getsockopt;

void *shim_resolve(void **slot, const char *name, void *self)
{
	(void)slot, (void)name, (void)self;
	return NULL;
}

/* A payload kind that counts what the table does with it. */
struct obj {
	int refs;
	int copies, last_copy;
	int released;
	int last_fd;
};

static void obj_ref(void *p)
{
	((struct obj *)p)->refs++;
}

static void obj_copy(int fd, void *p)
{
	((struct obj *)p)->copies++;
	((struct obj *)p)->last_copy = fd;
	obj_ref(p);
}

static void obj_release(int fd, void *p)
{
	struct obj *o = p;
	o->refs--;
	o->released++;
	o->last_fd = fd;
}

static const struct fdtab_ops counted = {
        .hold = obj_ref, .copy = obj_copy, .release = obj_release};
static const struct fdtab_ops uncopied = {
        .hold = obj_ref, .copy = NULL, .release = obj_release};

static void test_untracked(void)
{
	tap_ok(fdtab_lookup(-1) == NULL, "a negative fd is untracked");
	tap_ok(fdtab_lookup(FDTAB_SIZE) == NULL, "an fd beyond the table is untracked");
	tap_ok(fdtab_lookup(100) == NULL, "an fd the shim knows nothing of has no entry");
	tap_ok(!fdtab_set_payload(FDTAB_SIZE, FD_UDP, NULL),
	       "no payload for an fd beyond the table");
	fdtab_set_proxied(FDTAB_SIZE + 5, NULL, 0); /* must not crash */
	tap_ok(fdtab_hold(-3, FD_UDP) == NULL, "hold of a negative fd: NULL");
}

static void class_is(int domain, int type, int protocol, enum fd_class want,
                     int want_family, const char *what)
{
	int fd = 200, family = -1;
	fdtab_new_socket(fd, domain, type, protocol);
	getsockopt_calls = 0;
	tap_is(fdtab_class(fd, &family), want, "class of %s", what);
	tap_is(family, want_family, "family of %s", what);
	tap_is(getsockopt_calls, 0, "%s: known from socket()'s arguments", what);
	fdtab_clear(fd);
}

static void test_classes_from_socket(void)
{
	class_is(AF_INET, SOCK_STREAM, 0, FD_CLASS_TCP, AF_INET, "an IPv4 stream socket");
	class_is(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP,
	         FD_CLASS_TCP, AF_INET6,
	         "a non-blocking close-on-exec IPv6 stream socket");
	class_is(AF_INET, SOCK_DGRAM, 0, FD_CLASS_UDP, AF_INET,
	         "an IPv4 datagram socket");
	class_is(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, IPPROTO_UDP, FD_CLASS_UDP,
	         AF_INET6, "an IPv6 UDP socket");
	class_is(AF_INET, SOCK_DGRAM, IPPROTO_ICMP, FD_CLASS_DGRAM_OTHER, AF_INET,
	         "an ICMP ping socket");
	class_is(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE, FD_CLASS_DGRAM_OTHER, AF_INET,
	         "a UDP-Lite socket");
	class_is(AF_INET6, SOCK_RAW, IPPROTO_RAW, FD_CLASS_DGRAM_OTHER, AF_INET6,
	         "a raw socket");
	class_is(AF_UNIX, SOCK_STREAM, 0, FD_CLASS_OTHER, 0, "a Unix socket");
	class_is(AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP, FD_CLASS_OTHER, 0,
	         "an SCTP seqpacket socket");
}

static void test_classes_asked(void)
{
	int family = -1;
	int u = socket(AF_INET6, SOCK_DGRAM, 0);
	getsockopt_calls = 0;
	tap_is(fdtab_class(u, &family), FD_CLASS_UDP,
	       "an unseen UDP socket is asked: UDP");
	tap_is(family, AF_INET6, "its family");
	int asked = getsockopt_calls;
	tap_ok(asked >= 2 && asked <= 3, "asked with at most three getsockopt calls (%d)",
	       asked);
	tap_is(fdtab_class(u, &family), FD_CLASS_UDP, "asked again: UDP");
	tap_is(getsockopt_calls, asked, "the second time comes from the cache");
	tap_ok(fdtab_lookup(u) != NULL && fdtab_lookup(u)->kind == FD_NONE,
	       "a cached class makes an entry with no state");
	fdtab_clear(u);
	close(u);

	int t = socket(AF_INET, SOCK_STREAM, 0);
	tap_is(fdtab_class(t, &family), FD_CLASS_TCP, "an unseen TCP socket: TCP");
	fdtab_clear(t);
	close(t);

	int sv[2];
	socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
	tap_is(fdtab_class(sv[0], &family), FD_CLASS_OTHER,
	       "an unseen Unix socket: OTHER");
	fdtab_clear(sv[0]);
	close(sv[0]);
	close(sv[1]);

	int fd = 300;
	close(fd);
	tap_is(fdtab_class(fd, &family), FD_CLASS_UNKNOWN,
	       "a closed descriptor: UNKNOWN");
	tap_ok(fdtab_lookup(fd) == NULL, "which is not cached");
	int file = open("/dev/null", O_RDONLY);
	tap_is(fdtab_class(file, &family), FD_CLASS_UNKNOWN,
	       "a file: UNKNOWN (not a socket: asked again each time, never cached)");
	fdtab_clear(file);
	close(file);
}

static void test_tcp(void)
{
	struct sockaddr_in6 dst = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
	dst.sin6_addr.s6_addr[15] = 9;
	int fd = 40;
	fdtab_new_socket(fd, AF_INET6, SOCK_STREAM, 0);
	fdtab_set_proxied(fd, (struct sockaddr *)&dst, sizeof(dst));
	const struct fd_entry *e = fdtab_lookup(fd);
	tap_ok(e && e->kind == FD_TCP_PROXIED, "a proxied connect is recorded");
	tap_ok(e && e->peer_len == sizeof(dst) &&
	               memcmp(&e->peer, &dst, sizeof(dst)) == 0,
	       "with the program's destination");
	tap_ok(e && e->cls == FD_CLASS_TCP, "the class stays");
	tap_is(fdtab_connect_again(fd), EISCONN, "a second connect: EISCONN");
	tap_is(fdtab_take_error(fd), 0, "SO_ERROR of a proxied socket: 0");

	uint8_t big[200] = {0};
	fdtab_set_proxied(fd, (struct sockaddr *)big, sizeof(big));
	tap_is(fdtab_lookup(fd)->peer_len, sizeof(union fd_peer),
	       "an over-long destination is clipped to the entry");

	fdtab_set_failed(fd, ECONNREFUSED, true);
	tap_is(fdtab_lookup(fd)->kind, FD_TCP_FAILED, "a failed connect is recorded");
	tap_is(fdtab_take_error(fd), ECONNREFUSED, "SO_ERROR reports the error once");
	tap_is(fdtab_take_error(fd), 0, "then 0");
	tap_is(fdtab_connect_again(fd), ECONNREFUSED, "a second connect gets the error");

	fdtab_set_failed(fd, ETIMEDOUT, true);
	tap_is(fdtab_connect_again(fd), ETIMEDOUT,
	       "a second connect consumes a pending error");
	tap_is(fdtab_take_error(fd), 0, "so SO_ERROR is 0 after it");
	fdtab_set_failed(fd, EHOSTUNREACH, false);
	tap_is(fdtab_take_error(fd), 0, "a blocking failure leaves nothing pending");
	fdtab_clear(fd);
	tap_ok(fdtab_lookup(fd) == NULL, "close empties the entry");
}

static void test_payloads(void)
{
	struct obj o = {.refs = 1}; /* the table's reference */
	int fd = 50, fd2 = 51;
	fdtab_register(FD_UDP, &counted);
	fdtab_new_socket(fd, AF_INET, SOCK_DGRAM, 0);
	tap_ok(fdtab_set_payload(fd, FD_UDP, &o), "a payload is set");
	tap_ok(fdtab_lookup(fd)->cls == FD_CLASS_UDP, "and the class kept");
	tap_ok(fdtab_hold(fd, FD_UDP_CONTROL) == NULL, "hold of another kind: NULL");
	tap_ok(fdtab_hold(fd, FD_UDP) == &o, "hold gives the payload");
	tap_is(o.refs, 2, "with a reference for the caller");
	o.refs--;

	fdtab_copy(fd, fd2);
	tap_ok(fdtab_lookup(fd2) && fdtab_lookup(fd2)->payload == &o,
	       "dup shares the payload");
	tap_is(o.refs, 2, "with a reference more");
	tap_is(o.copies, 1, "through copy, not hold");
	tap_is(o.last_copy, fd2, "naming the new descriptor");
	fdtab_copy(fd, fd);
	tap_is(o.refs, 2, "dup onto itself changes nothing");

	fdtab_clear(fd);
	tap_is(o.released, 1, "close of one gives its reference back");
	tap_is(o.last_fd, fd, "naming the descriptor");
	tap_is(o.refs, 1, "the dup's reference stays");
	fdtab_new_socket(fd2, AF_INET, SOCK_STREAM, 0);
	tap_is(o.released, 2, "a new socket on the number releases a stale entry");
	tap_is(o.refs, 0, "the last reference is gone");
	tap_is(fdtab_lookup(fd2)->kind, FD_NONE, "the new socket has no state");
	tap_is(fdtab_lookup(fd2)->cls, FD_CLASS_TCP, "only its class");
	fdtab_clear(fd2);
}

static void test_uncopied(void)
{
	struct obj c = {0};
	int fd = 60, fd2 = 61;
	fdtab_register(FD_UDP_CONTROL, &uncopied);
	fdtab_new_socket(fd, AF_INET, SOCK_STREAM, 0);
	fdtab_set_payload(fd, FD_UDP_CONTROL, &c);
	fdtab_copy(fd, fd2);
	tap_ok(fdtab_lookup(fd2) && fdtab_lookup(fd2)->kind == FD_NONE,
	       "a kind without copy: the copy is a plain descriptor");
	tap_is(fdtab_lookup(fd2)->cls, FD_CLASS_TCP, "with the class");
	fdtab_unset(fd, FD_UDP_CONTROL, &c + 1);
	tap_is(fdtab_lookup(fd)->kind, FD_UDP_CONTROL,
	       "unset of another payload: no change");
	fdtab_unset(fd, FD_UDP_CONTROL, &c);
	tap_is(fdtab_lookup(fd)->kind, FD_NONE, "unset empties the state");
	tap_is(c.released, 0, "without calling release");
	fdtab_clear(fd);
	fdtab_clear(fd2);
}

static void count_fd(int fd, void *payload)
{
	(void)fd;
	((struct obj *)payload)->refs += 100;
}

static void test_sweeps(void)
{
	struct obj a = {0}, c = {0};
	fdtab_register(FD_UDP, &uncopied);
	fdtab_register(FD_UDP_CONTROL, &uncopied);
	fdtab_set_payload(70, FD_UDP, &a);
	fdtab_set_payload(71, FD_UDP_CONTROL, &c);
	fdtab_set_payload(72, FD_UDP_CONTROL, &c);
	fdtab_new_socket(73, AF_INET, SOCK_DGRAM, 0);
	fdtab_for_each(FD_UDP_CONTROL, count_fd);
	tap_is(c.refs, 200, "for_each visits every entry of the kind");
	fdtab_clear_range_of(0, 71, FD_UDP_CONTROL);
	tap_is(c.released, 1, "clear_range_of releases the kind's entries in the range");
	tap_is(a.released, 0, "and no other kind");
	tap_ok(fdtab_lookup(72) != NULL, "nor beyond the range");
	fdtab_clear_range(72, ~0u);
	tap_is(c.released, 2, "clear_range to the end releases the rest");
	tap_ok(fdtab_lookup(73) == NULL, "and forgets cached classes");
	tap_ok(fdtab_lookup(70) != NULL, "below the range stays");
	fdtab_clear_range(FDTAB_SIZE + 1u, ~0u);
	fdtab_clear_range(0, ~0u);
	tap_is(a.released, 1, "a sweep of everything");
	tap_ok(fdtab_lookup(70) == NULL, "leaves nothing");
}

int main(void)
{
	tap_init();
	test_untracked();
	test_classes_from_socket();
	test_classes_asked();
	test_tcp();
	test_payloads();
	test_uncopied();
	test_sweeps();
	return tap_done();
}
