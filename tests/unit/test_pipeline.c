/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for pipelining under pipeline = auto (shim/pipeline.c), printed
 * as TAP; no root. A thread plays the proxy on 127.0.0.1 and answers the
 * probe as the servers do: one that reads the pipelined request refuses
 * CONNECT 0.0.0.0:0 at once (socksify-server, dante's sockd), one that takes
 * each read() for one message answers the greeting and nothing more
 * (microsocks), a far one answers late, a silent one never. Then what the
 * probe learnt: exchanges pipeline after a yes, not after a no, never when
 * the configuration says no, always when it says yes; another proxy is
 * unknown; and the first exchange under auto starts the probe in a thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pipeline.h"
#include "policy.h"
#include "shim_support.h"
#include "socks5_script.h"
#include "tap.h"
#include "tcp.h"

/* the probe's request, CONNECT 0.0.0.0:0, and a refusal of it */
#define PROBE_REQUEST "\x05\x01\x00\x01\0\0\0\0\0\0"
#define PROBE_REFUSED "\x05\x05\x00\x01\0\0\0\0\0\0"

/* One connection: expect, then after delay1 send1, after delay2 send2
 * (NULL: nothing), then read on to the client's end of file. */
struct peer {
	int listen_fd;
	const char *expect, *send1, *send2;
	size_t expect_len, send1_len, send2_len;
	int delay1_ms, delay2_ms;
	int read_once; /* read whatever the first read() gives (microsocks) */
	char why[128]; /* empty when the client sent what was expected */
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *peer_run(void *arg)
{
	struct peer *p = arg;
	char got[512];
	size_t len = 0;
	ssize_t n;
	int fd = accept(p->listen_fd, NULL, NULL);

	if (fd < 0)
		return NULL;
	while (len < (p->read_once ? 1 : p->expect_len) &&
	       (n = recv(fd, got + len, sizeof(got) - len, 0)) > 0)
		len += (size_t)n;
	if (len != p->expect_len || memcmp(got, p->expect, len) != 0)
		snprintf(p->why, sizeof(p->why), "got %zu bytes, not the %zu expected",
		         len, p->expect_len);
	sleep_ms(p->delay1_ms);
	if (p->send1 && send(fd, p->send1, p->send1_len, MSG_NOSIGNAL) < 0)
		snprintf(p->why, sizeof(p->why), "send: %s", strerror(errno));
	sleep_ms(p->delay2_ms);
	if (p->send2 && send(fd, p->send2, p->send2_len, MSG_NOSIGNAL) < 0)
		snprintf(p->why, sizeof(p->why), "send: %s", strerror(errno));
	while (recv(fd, got, sizeof(got), 0) > 0)
		;
	close(fd);
	return NULL;
}

#define EXPECTS(s) .expect = s, .expect_len = sizeof(s) - 1
#define SEND1(s)   .send1 = s, .send1_len = sizeof(s) - 1
#define SEND2(s)   .send2 = s, .send2_len = sizeof(s) - 1

/* Runs the probe against p (on a new listener: a new proxy port, so the
 * probe starts from "unknown"); its result, and how long it took in *ms. */
static enum pipeline_cap probe_against(struct peer *p, long long *ms)
{
	pthread_t t;

	p->listen_fd = script_listen_loopback(&shim_config.proxy.port);
	policy_forget_proxy_for_tests();
	pipeline_set_for_tests(PIPE_PROBING);
	if (pthread_create(&t, NULL, peer_run, p) != 0)
		abort();
	long long t0 = now_ms();
	enum pipeline_cap cap = pipeline_probe();
	*ms = now_ms() - t0;
	pthread_join(t, NULL);
	close(p->listen_fd);
	tap_ok(!p->why[0], "the probe sends greeting and request in one write%s%s",
	       p->why[0] ? ": " : "", p->why);
	return cap;
}

static void test_probe(void)
{
	long long ms;
	struct peer capable = {EXPECTS(GREET_NONE PROBE_REQUEST),
	                       SEND1(METHOD_NONE PROBE_REFUSED)};
	tap_is(probe_against(&capable, &ms), PIPE_YES,
	       "a proxy that refuses the pipelined request: yes");
	tap_is(pipeline_cap(), PIPE_YES, "yes is recorded");

	struct peer drops = {EXPECTS(GREET_NONE PROBE_REQUEST), .read_once = 1,
	                     SEND1(METHOD_NONE)};
	tap_is(probe_against(&drops, &ms), PIPE_NO,
	       "a proxy that answers the greeting only (microsocks): no");
	tap_ok(ms < PIPELINE_GRACE_MS + 1000,
	       "no is known %lld ms after the method reply, not at connect_timeout", ms);
	tap_is(pipeline_cap(), PIPE_NO, "no is recorded");

	/* far: both answers 400 ms late, the second 150 ms after the first */
	struct peer far = {EXPECTS(GREET_NONE PROBE_REQUEST), .delay1_ms = 400,
	                   SEND1(METHOD_NONE), .delay2_ms = 150, SEND2(PROBE_REFUSED)};
	tap_is(probe_against(&far, &ms), PIPE_YES,
	       "a far proxy is not taken for one that drops the request");

	struct peer silent = {EXPECTS(GREET_NONE PROBE_REQUEST)};
	unsigned saved = shim_config.connect_timeout_ms;
	shim_config.connect_timeout_ms = 300;
	tap_is(probe_against(&silent, &ms), PIPE_PROBING,
	       "a silent proxy decides nothing");
	tap_ok(ms >= 299 && ms < 2000, "... after connect_timeout (%lld ms)", ms);
	shim_config.connect_timeout_ms = saved;

	script_set_auth(true);
	struct peer auth = {EXPECTS(GREET_USERPASS AUTH PROBE_REQUEST),
	                    SEND1(METHOD_USER AUTH_OK PROBE_REFUSED)};
	tap_is(probe_against(&auth, &ms), PIPE_YES,
	       "with RFC 1929: greeting, credentials and request in one write: yes");
	script_set_auth(false);
}

/* What an exchange sends first, under the configuration and the word. */
static bool pipelines(enum config_pipeline conf, enum pipeline_cap cap)
{
	shim_config.pipeline = conf;
	pipeline_set_for_tests(cap);
	return pipeline_wanted(true);
}

static void test_wanted(void)
{
	tap_ok(pipelines(CONFIG_PIPELINE_AUTO, PIPE_YES), "auto after yes: pipelined");
	tap_ok(!pipelines(CONFIG_PIPELINE_AUTO, PIPE_NO), "auto after no: not");
	tap_ok(!pipelines(CONFIG_PIPELINE_AUTO, PIPE_PROBING), "auto while probing: not");
	tap_ok(!pipelines(CONFIG_PIPELINE_OFF, PIPE_YES), "pipeline = no: never");
	tap_ok(pipelines(CONFIG_PIPELINE_ON, PIPE_NO), "pipeline = yes: always");
	pipeline_set_for_tests(PIPE_YES);
	shim_config.proxy.port++;
	tap_is(pipeline_cap(), PIPE_UNKNOWN, "another proxy is unknown");
	shim_config.proxy.port--;
}

/* The first exchange under auto finds the capability unknown: it goes
 * unpipelined and starts the probe in a thread, which records yes. */
static void test_first_exchange(void)
{
	/* answering 300 ms late: the probe is still running at the second call */
	struct peer capable = {EXPECTS(GREET_NONE PROBE_REQUEST), .delay1_ms = 300,
	                       SEND1(METHOD_NONE PROBE_REFUSED)};
	pthread_t t;

	capable.listen_fd = script_listen_loopback(&shim_config.proxy.port);
	policy_forget_proxy_for_tests();
	shim_config.pipeline = CONFIG_PIPELINE_AUTO;
	if (pthread_create(&t, NULL, peer_run, &capable) != 0)
		abort();
	tap_is(pipeline_cap(), PIPE_UNKNOWN, "a new proxy is unknown");
	tap_ok(!pipeline_wanted(false), "a UDP ASSOCIATE does not start the probe");
	tap_is(pipeline_cap(), PIPE_UNKNOWN, "... the proxy is still unknown");
	tap_ok(!pipeline_wanted(true), "the first CONNECT is not pipelined");
	tap_ok(!pipeline_wanted(true), "nor one while the probe runs");
	long long t0 = now_ms();
	while (pipeline_cap() != PIPE_YES && now_ms() - t0 < 3000)
		sleep_ms(5);
	tap_is(pipeline_cap(), PIPE_YES, "the probe thread has recorded yes");
	tap_ok(pipeline_wanted(false),
	       "the next exchange is pipelined, UDP ASSOCIATE too");
	pthread_join(t, NULL);
	tap_ok(!capable.why[0], "the probe thread sent greeting and request at once");
	close(capable.listen_fd);
}

int main(void)
{
	tap_init();
	shim_support_init();
	strcpy(shim_config.proxy.host, "127.0.0.1");
	shim_config.connect_timeout_ms = 5000;
	test_probe();
	test_wanted();
	test_first_exchange();
	return tap_done();
}
