/* SPDX-License-Identifier: MIT */
/*
 * Whether to pipeline the SOCKS5 exchange, and the probe that finds out
 * (see pipeline.h).
 *
 * The word: bits 0-1 the state (enum pipeline_cap), bits 2-33 the proxy's
 * key, bits 34-63 the second of the monotonic clock at which the probe
 * started (a probe older than connect_timeout + 2 s is dead: its process
 * exited or was killed, and another may start).
 */
#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "fakedns.h"
#include "log.h"
#include "monotime.h"
#include "policy.h"
#include "shim.h"
#include "tcp.h"

enum { PROBE_FD_MIN = 700 }; /* with the shim's other descriptors */

static _Atomic uint64_t local_word;

static _Atomic uint64_t *word(void)
{
	_Atomic uint64_t *w = fakedns_shared_word();
	return w ? w : &local_word;
}

static uint32_t proxy_key(void)
{
	const struct config_proxy *p = &shim_config.proxy;
	uint32_t h = 2166136261u ^ p->port;

	for (const char *s = p->host; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	for (const char *s = p->has_auth ? p->user : ""; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static uint64_t word_make(enum pipeline_cap cap, uint32_t key, long long stamp_s)
{
	return (uint64_t)(stamp_s & 0x3fffffff) << 34 | (uint64_t)key << 2 | cap;
}

static enum pipeline_cap word_cap(uint64_t w, uint32_t key)
{
	if ((uint32_t)(w >> 2) != key)
		return PIPE_UNKNOWN;
	enum pipeline_cap cap = (enum pipeline_cap)(w & 3);
	long long age = (monotime_ms() / 1000 - (long long)(w >> 34)) & 0x3fffffff;
	if (cap == PIPE_PROBING && age > shim_config.connect_timeout_ms / 1000 + 2)
		return PIPE_UNKNOWN;
	return cap;
}

enum pipeline_cap pipeline_cap(void)
{
	return word_cap(atomic_load(word()), proxy_key());
}

void pipeline_set_for_tests(enum pipeline_cap cap)
{
	atomic_store(word(), word_make(cap, proxy_key(), monotime_ms() / 1000));
}

static void record(enum pipeline_cap cap)
{
	_Atomic uint64_t *w = word();
	uint32_t key = proxy_key();
	uint64_t old = atomic_load(w);

	/* unless a probe of another proxy took the word meanwhile */
	if ((uint32_t)(old >> 2) == key)
		atomic_compare_exchange_strong(
		        w, &old, word_make(cap, key, (long long)(old >> 34)));
}

/* Waits for events on fd until deadline: 0, or -ETIMEDOUT / -errno. */
static int probe_wait(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - monotime_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int n = real_poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* The probe's exchange on fd, to its end: sets *answered once the method
 * reply has come. 0 or -errno (a failure reply is one too). */
static int probe_exchange(struct tcp_hs *h, int fd, int family, bool *answered)
{
	struct socks5_addr target = {.atyp = SOCKS5_ATYP_IPV4}; /* 0.0.0.0:0 */
	long long t0 = monotime_ms();
	long long deadline = t0 + shim_config.connect_timeout_ms;
	int rc = tcp_hs_start_flags(h, fd, family, SOCKS5_CMD_CONNECT, &target,
	                            TCP_HS_PIPELINED | TCP_HS_QUIET);

	while (rc >= 0 && (rc = tcp_hs_step(h)) > 0) {
		if (!*answered && (h->state == TCP_HS_AUTH || h->state == TCP_HS_REPLY)) {
			/* the request's reply is due in the same round trip */
			long long now = monotime_ms();
			long long due = now + (now - t0) + PIPELINE_GRACE_MS;
			*answered = true;
			if (due < deadline)
				deadline = due;
		}
		rc = probe_wait(fd, (short)rc, deadline);
	}
	return rc;
}

enum pipeline_cap pipeline_probe(void)
{
	struct sockaddr_storage pa;
	socklen_t plen;
	int family = policy_proxy_addr(AF_INET, &pa, &plen) == 0 ? AF_INET : AF_INET6;
	int fd = real_socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct tcp_hs h = {0};
	bool answered = false;
	int rc = -EMFILE;

	if (fd >= 0) {
		int high = real_fcntl(fd, F_DUPFD_CLOEXEC, PROBE_FD_MIN);
		if (high >= 0) {
			real_close(fd);
			fd = high;
		}
		rc = probe_exchange(&h, fd, family, &answered);
		tcp_hs_end(&h);
		real_close(fd);
	}
	enum pipeline_cap cap = h.replied                      ? PIPE_YES
	                        : answered && rc == -ETIMEDOUT ? PIPE_NO
	                                                       : PIPE_PROBING;
	if (cap != PIPE_PROBING)
		record(cap);
	shim_log(SHIM_LOG_DEBUG, "proxy %s:%u %s", shim_config.proxy.host,
	         shim_config.proxy.port,
	         cap == PIPE_YES  ? "reads pipelined requests: pipelining"
	         : cap == PIPE_NO ? "drops pipelined requests: not pipelining"
	                          : "did not answer the pipelining probe");
	return cap;
}

static void *probe_main(void *arg)
{
	(void)arg;
	shim_depth++; /* the hooks pass this thread's calls straight through */
	pipeline_probe();
	return NULL;
}

static void probe_start(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;

	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int err = pthread_create(&t, &attr, probe_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (err) /* the word stays "probing" until it is stale */
		shim_log(SHIM_LOG_DEBUG, "no pipelining probe: %s", strerror(err));
}

bool pipeline_wanted(bool may_probe)
{
	if (shim_config.pipeline != CONFIG_PIPELINE_AUTO)
		return shim_config.pipeline == CONFIG_PIPELINE_ON;
	_Atomic uint64_t *w = word();
	uint32_t key = proxy_key();
	uint64_t old = atomic_load(w);
	enum pipeline_cap cap = word_cap(old, key);

	if (cap != PIPE_UNKNOWN || !may_probe)
		return cap == PIPE_YES;
	if (atomic_compare_exchange_strong(
	            w, &old, word_make(PIPE_PROBING, key, monotime_ms() / 1000)))
		probe_start();
	return false;
}
