/* SPDX-License-Identifier: MIT */
/*
 * Pipelining under pipeline = auto: the greeting, the RFC 1929 message and
 * the request go out in one write once the proxy has shown that it reads
 * them so. microsocks does not (it takes each read() for one message: a
 * pipelined request is lost and the connection hangs), socksify-server and
 * dante's sockd do.
 *
 * The proof is a probe of the shim's own, in a thread of its own, started by
 * the first CONNECT that finds the capability unknown (that exchange and
 * those after it go unpipelined until the answer): a connection to the proxy
 * that sends greeting, RFC 1929 message and CONNECT 0.0.0.0:0 in one write.
 * Every server refuses that request at once, without touching the network; a
 * reply of any kind proves that the server read the pipelined request (yes).
 * When the method reply came and the request's did not within the time the
 * method reply took plus PIPELINE_GRACE_MS, the server dropped it (no). A far
 * proxy answers both in the same round trip, so it is never taken for one
 * that drops the request; anything else (refused, reset, silent) decides
 * nothing, and the probe may run again once connect_timeout has passed.
 *
 * The probe's descriptor is not in the fd table: a program that closes
 * descriptors it does not know (close_range, a loop of close()) while the
 * probe runs ends the probe, which then decides nothing; one that also
 * opens 700 descriptors meanwhile could see its new one closed by the
 * probe's end.
 *
 * What was learnt is one word per process tree: in the fake-DNS pool when
 * one is attached (a memfd the whole tree shares), else in this process. It
 * names the proxy (a hash of its host, port and user), so a program run
 * with another proxy in the same tree learns its own.
 */
#ifndef SOCKSIFY_SHIM_PIPELINE_H
#define SOCKSIFY_SHIM_PIPELINE_H

#include <stdbool.h>

enum pipeline_cap { PIPE_UNKNOWN, PIPE_PROBING, PIPE_YES, PIPE_NO };

enum { PIPELINE_GRACE_MS = 200 };

/* Does the exchange starting now pipeline? pipeline = yes: always; no:
 * never; auto: once the proxy has shown that it can. Under auto, a call with
 * may_probe that finds it unknown starts the probe (once per tree and
 * connect_timeout). */
bool pipeline_wanted(bool may_probe);

/* What is known of the configured proxy now. */
enum pipeline_cap pipeline_cap(void);

/* The probe, run to its end on the calling thread; what it learnt is
 * recorded (PIPE_YES, PIPE_NO) and returned, or PIPE_PROBING when it
 * decided nothing. */
enum pipeline_cap pipeline_probe(void);

/* Tests: set what is known of the configured proxy. */
void pipeline_set_for_tests(enum pipeline_cap cap);

#endif
