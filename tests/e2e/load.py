#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Load through socksify and socksify-server (tests/e2e/shim_load.bats): one
asyncio program with many connections or UDP sockets at once, every byte
checked, and its descriptors counted before and after.

  load.py echo-server ADDR PORT LOG
      TCP and UDP echo on ADDR:PORT. LOG gets "tcp SRC_IP" per connection
      (at accept) and "udp SRC_IP:SRC_PORT" per new UDP source; prints "ready"
      once both listen.
  load.py tcp HOST PORT N SIZE [TIMEOUT]
      opens N connections at once and holds them until all are open, then each
      sends SIZE random bytes of its own and reads them back (compared), then
      all close.
  load.py udp HOST PORT N SECONDS [TIMEOUT]
      N UDP sockets, each sending a datagram of its own (random bytes, 16 to
      1400 of them) and waiting for the same datagram back, again and again
      for SECONDS; a reply that differs, or none within TIMEOUT, fails.

tcp and udp first make one connection (send one datagram) that comes and goes
(the warm-up: under socksify, the shim's helper thread and its epoll
descriptor start with the first and stay), then print "FAIL ..." per failure
(the first 20), then
  open N | datagrams D                   (what was done)
  ok K of N
  fds BEFORE AFTER                       (this process's descriptors after the
                                          warm-up, and after the last socket
                                          closed; AFTER lists what is left when
                                          they differ)
  elapsed S
and exit 0 when all N were good and the descriptors are back where they were.
TIMEOUT (seconds, default 20) bounds each step.
"""

import asyncio
import os
import random
import socket
import sys
import time


def fds():
    return sorted(int(f) for f in os.listdir("/proc/self/fd"))


async def fds_settled():
    """fds() once two looks 100 ms apart agree (at most 2 s): what the shim
    closes after a socket it relayed went (an association's control
    connection) is gone by then."""
    last = fds()
    for _ in range(20):
        await asyncio.sleep(0.1)  # the loop runs: asyncio closes sockets soon after close()
        now = fds()
        if now == last:
            break
        last = now
    return last


def fd_report(before):
    """'fds B A' once the count is back to B (up to 2 s), else what is extra."""
    deadline = time.monotonic() + 2
    while True:
        after = fds()
        if len(after) <= len(before) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    extra = []
    for f in set(after) - set(before):
        try:
            extra.append("%d->%s" % (f, os.readlink("/proc/self/fd/%d" % f)))
        except OSError:
            pass
    line = "fds %d %d" % (len(before), len(after))
    if extra:
        line += " extra: " + " ".join(sorted(extra))
    return line, len(after) == len(before)


async def tcp_open(host, port, timeout):
    return await asyncio.wait_for(asyncio.open_connection(host, port), timeout)


async def tcp_exchange(rw, data, timeout):
    r, w = rw
    try:
        w.write(data)
        got = await asyncio.wait_for(r.readexactly(len(data)), timeout)
        if got != data:
            raise RuntimeError("echo differs from what was sent (%d bytes)" % len(data))
    finally:
        w.close()
        try:
            await w.wait_closed()
        except OSError:
            pass


async def tcp_main(host, port, n, size, timeout):
    opened = await asyncio.gather(*[tcp_open(host, port, timeout) for _ in range(n)],
                                  return_exceptions=True)
    good = [c for c in opened if not isinstance(c, BaseException)]
    fails = [c for c in opened if isinstance(c, BaseException)]
    print("open %d" % len(good), flush=True)
    res = await asyncio.gather(*[tcp_exchange(c, os.urandom(size), timeout) for c in good],
                               return_exceptions=True)
    fails += [r for r in res if isinstance(r, BaseException)]
    return n - len(fails), fails


class Echo(asyncio.DatagramProtocol):
    def __init__(self):
        self.fut = None

    def datagram_received(self, data, addr):
        if self.fut is not None and not self.fut.done():
            self.fut.set_result(data)

    def error_received(self, exc):
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(exc)


async def udp_one(host, port, i, end, timeout, rng):
    loop = asyncio.get_running_loop()
    proto = Echo()
    tr, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=("0.0.0.0", 0))
    count = 0
    try:
        while count == 0 or time.monotonic() < end:
            data = b"%d %d " % (i, count) + rng.randbytes(rng.randint(16, 1400))
            proto.fut = loop.create_future()
            tr.sendto(data, (host, port))
            got = await asyncio.wait_for(proto.fut, timeout)
            if got != data:
                raise RuntimeError("socket %d datagram %d: the echo differs" % (i, count))
            count += 1
    finally:
        tr.close()
    return count


async def udp_main(host, port, n, seconds, timeout):
    end = time.monotonic() + seconds
    rng = random.Random(os.urandom(8))
    res = await asyncio.gather(*[udp_one(host, port, i, end, timeout, rng) for i in range(n)],
                               return_exceptions=True)
    fails = [r for r in res if isinstance(r, BaseException)]
    print("datagrams %d" % sum(r for r in res if not isinstance(r, BaseException)))
    return n - len(fails), fails


async def client(argv):
    kind, host, port, n = argv[1], argv[2], int(argv[3]), int(argv[4])
    timeout = float(argv[6]) if len(argv) > 6 else 20.0
    if kind == "tcp":
        await tcp_exchange(await tcp_open(host, port, timeout), b"warm-up", timeout)
    else:
        await udp_one(host, port, -1, 0, timeout, random.Random(1))
    before = await fds_settled()
    t0 = time.monotonic()
    if kind == "tcp":
        ok, fails = await tcp_main(host, port, n, int(argv[5]), timeout)
    else:
        ok, fails = await udp_main(host, port, n, float(argv[5]), timeout)
    elapsed = time.monotonic() - t0
    for f in fails[:20]:
        print("FAIL", repr(f))
    print("ok %d of %d" % (ok, n))
    await asyncio.sleep(0.1)  # the last closes happen in the loop
    line, same = fd_report(before)
    print(line)
    print("elapsed %.2f" % elapsed)
    return 0 if ok == n and same else 1


async def echo_server(addr, port, log):
    loop = asyncio.get_running_loop()
    out = open(log, "a", buffering=1)

    async def tcp(r, w):
        out.write("tcp %s\n" % w.get_extra_info("peername")[0])
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                w.write(data)
                await w.drain()
        except OSError:
            pass
        w.close()

    class Udp(asyncio.DatagramProtocol):
        seen = set()

        def connection_made(self, transport):
            self.tr = transport

        def datagram_received(self, data, src):
            if src not in self.seen:
                self.seen.add(src)
                out.write("udp %s:%d\n" % src)
            self.tr.sendto(data, src)

    srv = await asyncio.start_server(tcp, addr, port, backlog=2048)
    tr, _ = await loop.create_datagram_endpoint(Udp, local_addr=(addr, port))
    # a datagram from each of the many senders may wait here at once: room
    # for them all (the default 208 KiB is not; SO_RCVBUFFORCE needs root)
    sock = tr.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    print("ready", flush=True)
    async with srv:
        await srv.serve_forever()


def main():
    argv = sys.argv
    if len(argv) == 5 and argv[1] == "echo-server":
        asyncio.run(echo_server(argv[2], int(argv[3]), argv[4]))
    elif len(argv) in (6, 7) and argv[1] in ("tcp", "udp"):
        sys.exit(asyncio.run(client(argv)))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
