/* SPDX-License-Identifier: MIT */
/*
 * The supervisor's parts (see supervise.h): the filter (filter.c), the
 * notification loop (notify.c), the network calls (net.c), the proxied
 * connects and blocking direct calls (proxied.c), the DNS stub (dnsstub.c) and the
 * program's life (run.c).
 */
#ifndef SOCKSIFY_CLI_SV_INT_H
#define SOCKSIFY_CLI_SV_INT_H

#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "sockaddr.h"
#include "socks5.h"

/* --- filter.c --- */

/* In the child: no_new_privs and the filter. Returns the listener, or
 * -errno (-ENOSYS, -EINVAL: the kernel lacks user notification). */
int sv_filter_install(void);

/* --- notify.c: answering --- */

/* Each answer sends one response; a notification whose task went away
 * (interrupted, killed) is forgotten quietly. */
void sv_continue(int listener, uint64_t id);
void sv_fail(int listener, uint64_t id, int err); /* err > 0 */
void sv_return(int listener, uint64_t id, long long val);
/* True while the notification is still waiting for its answer. */
bool sv_id_valid(int listener, uint64_t id);

/* The supervisor's main loop: serves the listener; sigfd reports SIGCHLD
 * and the signals to forward; returns the exit status (see supervise.h). */
int sv_serve(int listener, int sigfd, pid_t child);

/* --- net.c: one network call --- */

/* A notification's call, read from the program. */
struct sv_call {
	int listener;
	struct seccomp_notif n;
	int fd; /* the program's socket, taken with pidfd_getfd: ours to close */
	int domain, type, protocol;
	union sa_any dst; /* the destination the call names */
	socklen_t dst_len;
};

void sv_handle(int listener, const struct seccomp_notif *n);

/* Reads len bytes at addr of task pid: 0 or -EFAULT. */
int sv_read_mem(pid_t pid, uint64_t addr, void *buf, size_t len);

/* --- proxied.c: calls carried out for the program --- */

/* The ancillary data a direct send may carry. */
enum { SV_CONTROL_MAX = 1024 };

/* A send carried out for the program: copies of its data and control. */
struct sv_send {
	uint8_t *data; /* malloc'd; the callee owns it */
	size_t len;
	uint8_t ctl[SV_CONTROL_MAX];
	size_t ctl_len;
	int flags;
};

/* A call to a direct destination carried out on the call's socket with the
 * checked address (call->dst): connect() when send is NULL, else the send,
 * as the program asked it (blocking or not), on the receiving thread.
 * Returns as net.c's handlers: 0 when answered, or the errno. Frees
 * send->data; call->fd stays the caller's. */
int sv_direct(struct sv_call *call, struct sv_send *send);

/* Connects the call's socket through the proxy to target (blocking, on the
 * receiving thread) and answers (0 or the errno); a payload (TCP Fast Open's
 * data, freed here) is then sent and its count answered. call->fd stays the
 * caller's. */
void sv_proxy_connect(struct sv_call *call, const struct socks5_addr *target,
                      uint8_t *payload, size_t len, int send_flags);

/* --- dnsstub.c --- */

/* Reads the nameservers of /etc/resolv.conf and, when stub (remote DNS),
 * starts the stub: a UDP socket on 127.0.0.1 and one on ::1 answered by a
 * thread. 0 or -errno. */
int sv_dns_start(bool stub);
/* True when dst is port 53 of a nameserver of /etc/resolv.conf. */
bool sv_dns_is_nameserver(const struct sockaddr *dst);
/* The stub's address for a socket of `family` into out: its length, or 0. */
socklen_t sv_dns_stub_addr(int family, union sa_any *out);

#endif
