/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 client for TCP: connects the program's own socket to the proxy
 * and runs the handshake (greeting, RFC 1929 username/password when the
 * proxy URL has credentials, CONNECT) on it, within the configured timeout.
 * The program's socket keeps its options, flags, prior bind() and epoll
 * registrations: nothing is swapped in over its descriptor.
 *
 * The exchange itself is a state machine that never blocks (tcp_hs_*, in
 * tcp_hs.c); the functions before it are its blocking driver, which polls
 * for what each step asks against one deadline.
 */
#ifndef SOCKSIFY_SHIM_TCP_H
#define SOCKSIFY_SHIM_TCP_H

#include <stdbool.h>
#include <stdint.h>

#include "proxies.h"
#include "socks5.h"

/* 0 once the proxy reports success, or -errno (a failure reply is mapped
 * with socks5_rep_to_errno; an unreachable or silent proxy gives the
 * connect error or ETIMEDOUT); the reply's BND into bound when not NULL. The caller
 * restores nothing: the socket's file status flags are as they were. flags: the socket's
 * file status flags when the caller has them (one F_GETFL for both), else -1. */
int tcp_connect_via_proxy(int fd, int family, const struct socks5_addr *target, int flags,
                          struct socks5_addr *bound);

/* The proxy (or chain) the calling thread's last tcp_connect_via_proxy or
 * tcp_proxy_request went through, for its log line (tcp_hs_via). */
enum { TCP_VIA_MAX = 600 };
extern __thread char tcp_last_via[TCP_VIA_MAX];

/* The same for any command on a stream socket `fd` of `family` (the UDP
 * control connection sends UDP ASSOCIATE); the reply's BND address goes
 * into bound when it is not NULL. */
int tcp_proxy_request(int fd, int family, uint8_t cmd, const struct socks5_addr *target,
                      struct socks5_addr *bound);

/* The deadline of an exchange that starts now: connect_timeout_ms ahead, in
 * milliseconds of the monotonic clock. */
long long tcp_deadline(void);

/*
 * The SOCKS5 exchange alone on fd already connected to the proxy (the
 * machine from tcp_hs_start_connected, driven to its end): greeting, RFC 1929
 * when the proxy URL has credentials, request cmd for target and its reply
 * (BND into bound when not NULL), pipelined when pipeline_wanted() says so,
 * all before deadline (from tcp_deadline). fd must be connected and
 * non-blocking; its flags are left alone. Returns as tcp_proxy_request; no
 * byte past the reply is read.
 */
int tcp_handshake(int fd, uint8_t cmd, const struct socks5_addr *target,
                  struct socks5_addr *bound, long long deadline);

/* --- the exchange as a state machine that never blocks ---------------------------- */

enum tcp_hs_state {
	TCP_HS_SEND,   /* out[sent, end) goes out, then the state `next` */
	TCP_HS_METHOD, /* reading the method selection */
	TCP_HS_AUTH,   /* reading the RFC 1929 status */
	TCP_HS_REPLY,  /* reading the reply to the request */
	TCP_HS_DONE,   /* over: `result` says how */
};

enum {
	/* greeting (two methods at most), RFC 1929 message, request */
	TCP_HS_OUT_MAX = 2 + 2 + SOCKS5_USERPASS_MAX + SOCKS5_REQUEST_MAX,
};

/*
 * One exchange in progress; the caller owns the memory (it may be embedded
 * anywhere) and reads only `state`, `result` and `bound`. The messages are
 * encoded at the start into out; the credentials in it are wiped once sent
 * and by tcp_hs_end.
 */
struct tcp_hs {
	int fd;
	uint8_t state; /* enum tcp_hs_state */
	uint8_t next;  /* the state after TCP_HS_SEND */
	bool pipeline; /* the messages go out in one write */
	bool quiet;    /* no log line of its own (pipeline.c's probe) */
	bool replied;  /* a well-formed reply to the request came, success or not */
	bool edge;     /* driven by edge-triggered waits: tcp_hs_edge_triggered */
	short wait;    /* POLLIN / POLLOUT to ask for before the next I/O, or 0 */
	int result;    /* TCP_HS_DONE: 0 or -errno */
	uint16_t greet_len, auth_len, req_len;
	uint16_t sent, end; /* TCP_HS_SEND: out[sent, end) is still to go */
	uint16_t in_len;    /* bytes of the current answer in in[] */
	uint8_t out[TCP_HS_OUT_MAX];
	uint8_t in[SOCKS5_REPLY_MAX];
	struct socks5_addr bound; /* the success reply's BND */
	/* several proxies (proxies.h): the plan, the hop of a chain under way or
	 * the alternative being tried, and what the machine needs to start the
	 * next one */
	struct proxy_plan plan;
	uint8_t hop, attempt;
	uint8_t cmd;
	unsigned flags;
	int family; /* 0: started connected (no alternative to move to) */
	struct socks5_addr target;
};

/* Starts the exchange on fd (an AF_INET/AF_INET6 stream socket of `family`,
 * already non-blocking): connects it to the proxy (non-blocking connect). 0 on
 * success so far, or -errno (and the machine is over with it: tcp_hs_step
 * says the same). */
int tcp_hs_start(struct tcp_hs *h, int fd, int family, uint8_t cmd,
                 const struct socks5_addr *target);

enum {
	TCP_HS_PIPELINED = 1, /* greeting, RFC 1929 message and request in one write */
	TCP_HS_QUIET = 2,     /* the machine logs nothing itself */
};

/* tcp_hs_start with flags of its own instead of the configuration's
 * (tcp_hs_start pipelines when pipeline_wanted() says so). */
int tcp_hs_start_flags(struct tcp_hs *h, int fd, int family, uint8_t cmd,
                       const struct socks5_addr *target, unsigned flags);

/* The same on a stream socket fd already connected to the proxy (and
 * non-blocking): the first step sends the greeting. */
int tcp_hs_start_connected(struct tcp_hs *h, int fd, uint8_t cmd,
                           const struct socks5_addr *target);

/*
 * Advances as far as the socket allows without blocking. Returns 0 once the
 * proxy's success reply has been read to its last byte (h->bound holds BND), a
 * negative -errno on failure (a failure reply mapped with socks5_rep_to_errno,
 * -EPROTO for a malformed answer, -EACCES when no method is acceptable or the
 * credentials are refused, the connect error, -ECONNRESET when the proxy
 * hangs up), or POLLIN / POLLOUT: what to wait for before calling again. Two
 * waits are asked for without a look at the socket: POLLOUT on the first step
 * of a connect under way, and POLLIN once a message has gone out (its answer
 * is seldom there yet; not under tcp_hs_edge_triggered). Once over, every
 * call returns the same result.
 */
int tcp_hs_step(struct tcp_hs *h);

/* For a driver whose waits are edge-triggered (the helper thread's epoll
 * set), after the start: once a message has gone out, its answer is read at
 * once instead of waited for. An answer can be there already (a proxy that
 * sent the reply with the method reply, or hung up right after it), and its
 * edge, seen with the earlier answer, would never come again: the exchange
 * sat until connect_timeout. A level-triggered poll() has no such hole.
 * Called after tcp_hs_first_wait, whose step must end in a wait (the
 * registration made after it sees what is there already). */
static inline void tcp_hs_edge_triggered(struct tcp_hs *h)
{
	h->edge = true;
}

/* The first step after a start, for a caller that waits in the background:
 * 0 when it waits for the socket (the greeting may have gone out already), the
 * step's -errno (the connect's own error, such as -ECONNREFUSED, when the
 * greeting could not go), -EPROTO if it finished at once (no proxy answers
 * before it is asked). */
int tcp_hs_first_wait(struct tcp_hs *h);

/*
 * The driver's deadline passed (connect_timeout, for this proxy): with
 * another alternative left (failover, round-robin), the proxy under way is
 * marked dead, the socket disconnected and connected to the next, and the
 * result is 1 (the driver restarts its deadline and steps on); otherwise
 * the machine ends with -ETIMEDOUT, which is returned.
 */
int tcp_hs_timeout(struct tcp_hs *h);

/* The proxy (or the chain of them) the machine used or is trying, for the
 * log: "host:port" or "a:1 -> b:2". */
void tcp_hs_via(const struct tcp_hs *h, char *buf, size_t cap);

/* Wipes the credentials still in the machine's buffers (call once done or
 * abandoned). The socket is the caller's: it is neither closed nor changed. */
void tcp_hs_end(struct tcp_hs *h);

#endif
