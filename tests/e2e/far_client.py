#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Many non-blocking connections started at once from one asyncio event loop:
the program that shows whether connect() (or a first sendto()) stalls the
caller. Used by tests/e2e/shim_far.bats and scripts/bench.

  far_client.py tcp HOST PORT PREFIX N [TIMEOUT]
      N asyncio.open_connection at once, each "GET PREFIX/I HTTP/1.0"; an
      answer is good when it is a 200 whose body (stripped) is PREFIX/I.
  far_client.py udp HOST PORT N [TIMEOUT]
  far_client.py udpc HOST PORT N [TIMEOUT]   (connected sockets: connect, then send)
      N UDP sockets (asyncio datagram endpoints, non-blocking), each sends one
      query at once to an echo server; a reply is good when it is the query.

Prints "FAIL ..." per bad one, then "ok K of N" and "elapsed S" (seconds from
the first connect or send to the last answer); exits 0 when all N were good.
TIMEOUT (seconds, default 60) bounds each one.
"""

import asyncio
import os
import sys
import time


async def tcp_one(host, port, path, timeout):
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        w.write(("GET %s HTTP/1.0\r\nHost: far\r\n\r\n" % path).encode())
        data = await asyncio.wait_for(r.read(), timeout)
    finally:
        w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError("%s: bad answer %r" % (path, data[:80]))
    if body.strip() != path.encode():
        raise RuntimeError("%s: body %r" % (path, body[:80]))


class Echo(asyncio.DatagramProtocol):
    def __init__(self, fut):
        self.fut = fut

    def datagram_received(self, data, addr):
        if not self.fut.done():
            self.fut.set_result(data)

    def error_received(self, exc):
        if not self.fut.done():
            self.fut.set_exception(exc)


async def udp_one(host, port, i, timeout, connected=False):
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    local = ("::", 0) if ":" in host else ("0.0.0.0", 0)
    if connected:  # connect() first, then send() without an address
        tr, _ = await loop.create_datagram_endpoint(lambda: Echo(fut), remote_addr=(host, port))
    else:
        tr, _ = await loop.create_datagram_endpoint(lambda: Echo(fut), local_addr=local)
    try:
        query = b"far query %d %s" % (i, os.urandom(6).hex().encode())
        tr.sendto(query, None if connected else (host, port))
        got = await asyncio.wait_for(fut, timeout)
    finally:
        tr.close()
    if got != query:
        raise RuntimeError("socket %d: reply %r to %r" % (i, got[:60], query))


async def main(argv):
    kind = argv[1]
    host, port = argv[2], int(argv[3])
    if kind == "tcp":
        prefix, n = argv[4], int(argv[5])
        timeout = float(argv[6]) if len(argv) > 6 else 60.0
        jobs = [tcp_one(host, port, "%s/%d" % (prefix, i), timeout) for i in range(n)]
    else:
        n = int(argv[4])
        timeout = float(argv[5]) if len(argv) > 5 else 60.0
        jobs = [udp_one(host, port, i, timeout, kind == "udpc") for i in range(n)]
    t0 = time.monotonic()
    res = await asyncio.gather(*jobs, return_exceptions=True)
    elapsed = time.monotonic() - t0
    bad = [r for r in res if isinstance(r, BaseException)]
    for b in bad:
        print("FAIL", repr(b))
    print("ok", n - len(bad), "of", n)
    print("elapsed %.2f" % elapsed)
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[1] not in ("tcp", "udp", "udpc"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(asyncio.run(main(sys.argv)))
