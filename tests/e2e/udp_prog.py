#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""UDP test program for the socksify end-to-end tests (shim_udp.bats).

Talks to a UDP echo server (the target namespace's, port 7) in the ways real
programs do. Prints one "ok ..." line per check; on the first failed check it
prints one "FAIL ..." line (on stderr) and exits with status 1. Every receive
waits at most 3 s. Standard library only.

  sizes HOST PORT SIZE...  one unconnected socket: sendto/recvfrom per size
  connected HOST PORT      connect, send/recv, getpeername, os.write/os.read,
                           sendmsg/recvmsg, recv_into
  asyncio HOST PORT N      create_datagram_endpoint: remote_addr (N datagrams),
                           then local_addr (wildcard) with sendto(data, addr)
  byname NAME PORT         getaddrinfo(NAME), sendto that address; the reply
                           comes from it (a fake address under remote DNS)
  nonblock HOST PORT       non-blocking: EAGAIN first, select(), recvfrom
"""

import asyncio
import ipaddress
import os
import select
import socket
import sys

TIMEOUT = 3.0


class Fail(Exception):
    pass


def ok(msg):
    print("ok " + msg, flush=True)


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def family_of(host):
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def same_addr(got, host, port):
    """got: a socket address (2- or 4-tuple); compares IP and port only."""
    try:
        return ipaddress.ip_address(got[0]) == ipaddress.ip_address(host) and got[1] == port
    except (ValueError, IndexError, TypeError):
        return False


def fmt(addr):
    return "%s %s" % (addr[0], addr[1]) if addr else repr(addr)


def udp_socket(host):
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    return s


def recv_checked(what, fn):
    try:
        return fn()
    except socket.timeout:
        raise Fail("%s: no reply within %g s" % (what, TIMEOUT))


def cmd_sizes(host, port, *sizes):
    check(sizes, "sizes: no SIZE given")
    s = udp_socket(host)
    for size in map(int, sizes):
        data = os.urandom(size)
        n = s.sendto(data, (host, port))
        check(n == size, "sizes %d: sendto sent %d bytes" % (size, n))
        got, addr = recv_checked("sizes %d" % size, lambda: s.recvfrom(65535))
        check(got == data, "sizes %d: the echo differs (%d bytes back)" % (size, len(got)))
        check(same_addr(addr, host, port),
              "sizes %d: the reply came from %s, not %s %d" % (size, fmt(addr), host, port))
        ok("size %d from %s %d" % (size, ipaddress.ip_address(addr[0]), addr[1]))
    s.close()


def cmd_connected(host, port):
    s = udp_socket(host)
    fd = s.fileno()
    s.connect((host, port))
    peer = s.getpeername()
    check(same_addr(peer, host, port), "connected: getpeername is %s" % fmt(peer))
    ok("getpeername %s %d" % (ipaddress.ip_address(peer[0]), peer[1]))

    data = os.urandom(100)
    s.send(data)
    got = recv_checked("send/recv", lambda: s.recv(65535))
    check(got == data, "send/recv: the echo differs (%d bytes back)" % len(got))
    ok("send/recv")

    data = os.urandom(200)
    n = os.write(fd, data)
    check(n == len(data), "os.write wrote %d bytes" % n)
    r, _, _ = select.select([fd], [], [], TIMEOUT)
    check(r, "os.write/os.read: no reply within %g s" % TIMEOUT)
    got = os.read(fd, 65535)
    check(got == data, "os.write/os.read: the echo differs (%d bytes back)" % len(got))
    ok("os.write/os.read")

    data = os.urandom(300)
    n = s.sendmsg([data[:100], data[100:]])
    check(n == len(data), "sendmsg sent %d bytes" % n)
    got, _anc, flags, addr = recv_checked("sendmsg/recvmsg", lambda: s.recvmsg(65535))
    check(got == data, "sendmsg/recvmsg: the echo differs (%d bytes back)" % len(got))
    check(not flags & socket.MSG_TRUNC, "sendmsg/recvmsg: MSG_TRUNC")
    check(same_addr(addr, host, port),
          "recvmsg reports the reply came from %s, not %s %d" % (fmt(addr), host, port))
    ok("sendmsg/recvmsg from %s %d" % (ipaddress.ip_address(addr[0]), addr[1]))

    data = os.urandom(400)
    s.send(data)
    buf = bytearray(65535)
    n = recv_checked("recv_into", lambda: s.recv_into(buf))
    check(bytes(buf[:n]) == data, "recv_into: the echo differs (%d bytes back)" % n)
    ok("recv_into")

    peer = s.getpeername()
    check(same_addr(peer, host, port), "connected: getpeername is %s at the end" % fmt(peer))
    s.close()


class Collect(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()
        self.error = None

    def datagram_received(self, data, addr):
        self.queue.put_nowait((data, addr))

    def error_received(self, exc):
        self.error = exc
        self.queue.put_nowait((None, exc))


async def next_datagram(proto, what):
    try:
        data, addr = await asyncio.wait_for(proto.queue.get(), TIMEOUT)
    except asyncio.TimeoutError:
        raise Fail("%s: no reply within %g s" % (what, TIMEOUT))
    if data is None:
        raise Fail("%s: error_received %r" % (what, addr))
    return data, addr


async def asyncio_main(host, port, n):
    loop = asyncio.get_running_loop()

    # connected: remote_addr
    transport, proto = await loop.create_datagram_endpoint(Collect, remote_addr=(host, port))
    try:
        sent = set()
        for i in range(n):
            data = b"%d:" % i + os.urandom(64)
            sent.add(data)
            transport.sendto(data)
        got = set()
        for i in range(n):
            data, addr = await next_datagram(proto, "asyncio remote_addr, echo %d of %d" % (i + 1, n))
            check(data in sent, "asyncio remote_addr: an echo that was never sent (%d bytes)" % len(data))
            check(same_addr(addr, host, port),
                  "asyncio remote_addr: an echo from %s, not %s %d" % (fmt(addr), host, port))
            got.add(data)
        check(got == sent, "asyncio remote_addr: %d distinct echoes of %d" % (len(got), n))
        peer = transport.get_extra_info("peername")
        check(same_addr(peer, host, port), "asyncio remote_addr: peername is %s" % fmt(peer))
        ok("asyncio remote_addr %d of %d" % (len(got), n))
    finally:
        transport.close()

    # unconnected: local_addr on the wildcard, sendto(data, addr)
    wildcard = "::" if family_of(host) == socket.AF_INET6 else "0.0.0.0"
    transport, proto = await loop.create_datagram_endpoint(Collect, local_addr=(wildcard, 0))
    try:
        for i in range(3):
            data = os.urandom(100 + i)
            transport.sendto(data, (host, port))
            got, addr = await next_datagram(proto, "asyncio local_addr sendto %d" % i)
            check(got == data, "asyncio local_addr sendto %d: the echo differs" % i)
            check(same_addr(addr, host, port),
                  "asyncio local_addr: datagram_received from %s, not %s %d" % (fmt(addr), host, port))
        ok("asyncio local_addr sendto from %s %d" % (ipaddress.ip_address(addr[0]), addr[1]))
    finally:
        transport.close()


def cmd_asyncio(host, port, n):
    asyncio.run(asyncio_main(host, port, int(n)))


def cmd_byname(name, port):
    family, _type, _proto, _canon, sa = socket.getaddrinfo(name, port, type=socket.SOCK_DGRAM)[0]
    ok("resolved %s to %s %d" % (name, sa[0], sa[1]))
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    data = os.urandom(500)
    s.sendto(data, sa)
    got, addr = recv_checked("byname", lambda: s.recvfrom(65535))
    check(got == data, "byname: the echo differs (%d bytes back)" % len(got))
    check(same_addr(addr, sa[0], sa[1]),
          "byname: the reply came from %s, not from %s %d that getaddrinfo gave" % (fmt(addr), sa[0], sa[1]))
    ok("reply from %s %d" % (addr[0], addr[1]))
    s.close()


def cmd_nonblock(host, port):
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.setblocking(False)
    try:
        s.recvfrom(65535)
        raise Fail("nonblock: recvfrom before any send returned data")
    except BlockingIOError:
        ok("recvfrom before send: EAGAIN")
    data = os.urandom(256)
    s.sendto(data, (host, port))
    r, _, _ = select.select([s], [], [], TIMEOUT)
    check(r, "nonblock: not readable within %g s" % TIMEOUT)
    ok("select readable")
    got, addr = s.recvfrom(65535)
    check(got == data, "nonblock: the echo differs (%d bytes back)" % len(got))
    check(same_addr(addr, host, port),
          "nonblock: the reply came from %s, not %s %d" % (fmt(addr), host, port))
    ok("recvfrom from %s %d" % (ipaddress.ip_address(addr[0]), addr[1]))
    try:
        s.recvfrom(65535)
        raise Fail("nonblock: a second recvfrom returned data")
    except BlockingIOError:
        ok("recvfrom after the echo: EAGAIN")
    s.close()


COMMANDS = {
    "sizes": (cmd_sizes, 3),
    "connected": (cmd_connected, 2),
    "asyncio": (cmd_asyncio, 3),
    "byname": (cmd_byname, 2),
    "nonblock": (cmd_nonblock, 2),
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        sys.stderr.write(__doc__)
        return 2
    fn, nargs = COMMANDS[argv[1]]
    args = argv[2:]
    if len(args) < nargs or (fn is not cmd_sizes and len(args) != nargs):
        sys.stderr.write(__doc__)
        return 2
    if len(args) >= 2:
        args[1] = int(args[1])  # PORT
    try:
        fn(*args)
    except Fail as e:
        print("FAIL %s" % e, file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # noqa: BLE001 - one line, whatever it was
        print("FAIL %s: %s: %s" % (argv[1], type(e).__name__, e), file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
