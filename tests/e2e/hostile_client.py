#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The client of shim_hostile.bats: run under socksify against one behaviour
of hostile_proxy.py, it checks what a program sees, N times over, and that
its descriptors are as many at the end as after the first round (no leak).

  tcp HOST PORT EXPECT N MAXMS
      N rounds of a blocking connect and a non-blocking one (EINPROGRESS,
      poll, SO_ERROR). EXPECT: ok (connected; GET /small.txt brings $SMALL_TEXT),
      data (connected; some bytes come), or an errno name (ECONNRESET ...):
      the connect fails with it. Each attempt ends within MAXMS.
  udp HOST PORT EXPECT N MAXMS
      N rounds of a new socket sending a datagram to HOST:PORT, blocking,
      then one non-blocking (its first send queued while the association
      is made in the background). EXPECT: ok (the echo comes back from HOST:PORT), reassoc
      (an echo, 400 ms, another echo: the proxy ended the association
      between them), timeout (no answer within 1 s), or an errno name that a
      send fails with.

Prints "ok ..." per check, "FAIL ..." per failure; exit status 1 on any.
Standard library only.
"""

import errno
import os
import select
import socket
import sys
import time

failures = 0


def ok(msg):
    print("ok " + msg, flush=True)


def fail(msg):
    global failures
    failures += 1
    print("FAIL " + msg, flush=True)


def fds():
    """{fd: what it is}: the descriptors open now, but for the shim's pool of
    eventfds (at 700 and above, at most 16 kept for the next handshakes'
    poll() waiters: counted apart, see pooled_efds)"""
    out = {}
    for f in os.listdir("/proc/self/fd"):
        try:
            what = os.readlink("/proc/self/fd/" + f)
        except OSError:
            continue  # the listing's own descriptor
        if int(f) >= 700 and what == "anon_inode:[eventfd]":
            pooled_efds.add(int(f))
        else:
            out[int(f)] = what
    return out


pooled_efds = set()


def ename(e):
    if e == errno.ENOTSUP:
        return "EOPNOTSUPP"  # the same number on Linux
    return errno.errorcode.get(e, str(e)) if e else "0"


def timed(what, maxms, t0):
    ms = (time.monotonic() - t0) * 1000
    if ms > maxms:
        fail("%s took %d ms (max %d)" % (what, ms, maxms))
    return ms


def http_check(s, what, expect):
    s.settimeout(5)
    try:
        if expect == "data":
            got = s.recv(4096)
            if got:
                ok("%s: connected, %d bytes came" % (what, len(got)))
            else:
                fail("%s: connected, but end of file at once" % what)
            return
        s.sendall(b"GET /small.txt HTTP/1.0\r\nHost: target\r\n\r\n")
        body = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            body += d
        if os.environ["SMALL_TEXT"].encode() in body:
            ok("%s: connected, GET /small.txt came back" % what)
        else:
            fail("%s: connected, but the answer was %r" % (what, body[:200]))
    except OSError as e:
        fail("%s: connected, then %s" % (what, ename(e.errno)))


def tcp_one(host, port, expect, maxms, blocking):
    what = "blocking" if blocking else "non-blocking"
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t0 = time.monotonic()
    got = 0
    if blocking:
        try:
            s.connect((host, port))
        except OSError as e:
            got = e.errno
    else:
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        if rc not in (0, errno.EINPROGRESS):
            fail("%s connect: %s, expected EINPROGRESS" % (what, ename(rc)))
            s.close()
            return
        p = select.poll()
        p.register(s, select.POLLOUT)
        if not p.poll(maxms + 2000):
            fail("%s connect: not writable within %d ms" % (what, maxms + 2000))
        got = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        s.setblocking(True)
    ms = timed(what + " connect", maxms, t0)
    if expect in ("ok", "data"):
        if got:
            fail("%s connect: %s after %d ms, expected success" % (what, ename(got), ms))
        else:
            http_check(s, what, expect)
    elif ename(got) == expect:
        ok("%s connect: %s after %d ms" % (what, expect, ms))
    else:
        fail("%s connect: %s after %d ms, expected %s" % (what, ename(got), ms, expect))
    s.close()


def udp_echo(s, host, port, payload, what):
    s.settimeout(1)
    try:
        d, src = s.recvfrom(65535)
    except socket.timeout:
        return "timeout"
    finally:
        s.settimeout(None)
    if d == payload and src[:2] == (host, port):
        return "echo"
    fail("%s: got %r from %s, expected %r from %s:%d" % (what, d[:80], src, payload, host, port))
    return "wrong"


def udp_send(s, host, port, payload, blocking):
    """None once sent, else the errno a send failed with. Non-blocking, the
    first send queues while the association is made in the background; the
    same payload is sent again every 100 ms until the echo comes or a send
    reports the association's failure (for at most 1.5 s)."""
    try:
        s.sendto(payload, (host, port))
        if blocking:
            return None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            r, _, _ = select.select([s], [], [], 0.1)
            if r:
                return None
            s.sendto(payload, (host, port))
        return None
    except OSError as e:
        return e.errno


def drain(s):
    s.setblocking(False)
    try:
        while True:
            s.recv(65535)
    except OSError:
        pass
    s.setblocking(True)


def udp_one(host, port, expect, maxms, blocking, i):
    what = "%s #%d" % ("blocking" if blocking else "non-blocking", i)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(blocking)
    t0 = time.monotonic()
    payload = b"hostile %d %s" % (i, what.encode())
    err = udp_send(s, host, port, payload, blocking)
    s.setblocking(True)
    if err is not None:
        ms = timed(what, maxms, t0)
        if ename(err) == expect:
            ok("%s: sendto %s after %d ms" % (what, expect, ms))
        else:
            fail("%s: sendto %s after %d ms, expected %s" % (what, ename(err), ms, expect))
        s.close()
        return
    got = udp_echo(s, host, port, payload, what)
    if expect == "reassoc" and got == "echo":
        time.sleep(0.4)
        drain(s)
        payload += b" again"
        err = udp_send(s, host, port, payload, True)
        got = udp_echo(s, host, port, payload, what) if err is None else ename(err)
        what += " (again, after the association ended)"
        expect = "ok"
    ms = timed(what, maxms, t0)
    want = {"ok": "echo", "timeout": "timeout"}.get(expect, "an error " + expect)
    if got == want:
        ok("%s: %s after %d ms" % (what, got, ms))
    elif got != "wrong":
        fail("%s: %s after %d ms, expected %s" % (what, got, ms, want))
    s.close()


def main():
    mode, host, port, expect, n, maxms = sys.argv[1:7]
    port, n, maxms = int(port), int(n), int(maxms)
    # the first round (one blocking attempt, one non-blocking) may leave the
    # shim's own descriptors (its helper thread's epoll set): counted after it
    before = None
    for i in range(n):
        for blocking in (True, False):
            if mode == "tcp":
                tcp_one(host, port, expect, maxms, blocking)
            else:
                udp_one(host, port, expect, maxms, blocking, i)
        if before is None:
            time.sleep(0.2)  # what the shim's helper thread closes, closed
            before = fds()
    # the shim's helper thread closes its duplicate of a socket whose
    # handshake ended on its own time: a leak is what stays for 2 s
    after = fds()
    t0 = time.monotonic()
    while len(after) > len(before) and time.monotonic() - t0 < 2:
        time.sleep(0.05)
        after = fds()
    if len(pooled_efds) > 16:
        fail("%d eventfds at 700 and above: more than the shim's pool of 16" % len(pooled_efds))
    if n < 2:
        ok("one round only: descriptors not compared")
    elif len(after) <= len(before):
        ok("no descriptor leaked in %d rounds (%d open)" % (n - 1, len(after)))
    else:
        fail("descriptors: %d after the first round, %d after %d more: %s" % (
            len(before), len(after), n - 1,
            sorted(set(after.items()) ^ set(before.items()))))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
