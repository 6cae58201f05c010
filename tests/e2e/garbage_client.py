#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A client that sends a SOCKS5 server garbage for a while, from many
connections at once (tests/e2e/server_garbage.bats): random bytes, and valid
exchanges (greeting, RFC 1929 user/pass, CONNECT, BIND, UDP ASSOCIATE and
datagrams to the relay) with one part mutated (bits flipped, bytes changed,
cut, stretched, lengths and fields set to edge values), sent whole or in
pieces, ended by a close, a half-close or a reset. Everything is drawn from one
seeded random generator per worker, so a seed replays the same inputs (not the
same timing).

  garbage_client.py PROXY_HOST:PORT USER:PASS SECONDS SEED [WORKERS]

The CONNECT and UDP targets are a TCP and a UDP echo server of its own on
127.0.0.1. WORKERS (default 32) sessions run at once. Prints
  seed=SEED
  sessions N random=R handshake=H connect=C bind=B udp=U udp_ended=E datagrams=D
  replies REP:COUNT ...    (the reply codes the server sent to requests)
and exits 0; a server that stops accepting connections is not its business
(the test checks the server), but it prints "refused N" when connects failed.
"""

import asyncio
import socket
import struct
import sys
import time
from collections import Counter
from random import Random

stats = Counter()
replies = Counter()


# --- messages ------------------------------------------------------------------------


def greeting(rng):
    methods = rng.choice([[2], [0, 2], [2, 0], [0], [1, 2, 0x80], [2, 2, 2]])
    return bytes([5, len(methods)] + methods)


def userpass(rng, user, pw):
    if rng.random() < 0.1:
        user = rng.randbytes(rng.randint(0, 255))
    return bytes([1, len(user)]) + user + bytes([len(pw)]) + pw


def address(rng, host, port):
    r = rng.random()
    if r < 0.6:
        a = b"\x01" + socket.inet_aton(host)
    elif r < 0.7:
        a = b"\x04" + socket.inet_pton(socket.AF_INET6, "::1")
    elif r < 0.8:
        a = b"\x01" + rng.randbytes(4)  # nothing is routed but loopback
    else:
        name = rng.choice([b"localhost", b"127.0.0.1", b"nonexistent.invalid",
                           rng.randbytes(rng.randint(0, 40))])
        a = b"\x03" + bytes([len(name)]) + name
    return a + struct.pack("!H", port if rng.random() < 0.9 else rng.randint(0, 65535))


def request(rng, cmd, host, port):
    return bytes([5, cmd, 0]) + address(rng, host, port)


def udp_datagram(rng, host, port):
    payload = rng.randbytes(rng.randint(0, 600))
    frag = 0 if rng.random() < 0.8 else rng.randint(1, 255)
    return b"\0\0" + bytes([frag]) + address(rng, host, port) + payload


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[i % len(b)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[i % len(b)] = rng.choice([0, 1, 2, 3, 4, 5, 0x7F, 0x80, 0xFE, 0xFF])
        elif op == 2:
            del b[i:]
        elif op == 3:
            b[i:i] = rng.randbytes(rng.randint(1, 300))
        elif op == 4 and b:
            j = rng.randrange(len(b))
            b[i:i] = b[j:j + rng.randint(1, 64)]
        elif op == 5 and b:
            del b[i:i + rng.randint(1, 8)]
        else:
            b += b"\0" * rng.randint(1, 16)
    return bytes(b)


# --- sending -----------------------------------------------------------------------


async def send(rng, w, data):
    """All at once, or in pieces with short pauses between."""
    if rng.random() < 0.7 or len(data) < 2:
        w.write(data)
    else:
        i = 0
        while i < len(data):
            n = rng.randint(1, max(1, len(data) - i))
            w.write(data[i:i + n])
            i += n
            await w.drain()
            await asyncio.sleep(rng.choice([0, 0, 0.001, 0.01]))
    await w.drain()


async def recv(r, n, timeout=0.3):
    try:
        return await asyncio.wait_for(r.readexactly(n), timeout)
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
        return None


async def reply(r):
    """A SOCKS5 reply: (REP, (host, port)) or None."""
    head = await recv(r, 4, 0.5)
    if head is None or head[0] != 5:
        return None
    if head[3] == 1:
        rest = await recv(r, 6)
        if rest is None:
            return None
        return head[1], (socket.inet_ntoa(rest[:4]), struct.unpack("!H", rest[4:])[0])
    if head[3] == 4:
        rest = await recv(r, 18)
        if rest is None:
            return None
        return head[1], (socket.inet_ntop(socket.AF_INET6, rest[:16]),
                         struct.unpack("!H", rest[16:])[0])
    return head[1], None


def finish(rng, w):
    """Close, half-close or reset."""
    x = rng.random()
    try:
        if x < 0.3:
            w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                  struct.pack("ii", 1, 0))
            w.transport.abort()
            return
        if x < 0.5 and w.can_write_eof():
            w.write_eof()
    except OSError:
        pass
    w.close()


# --- sessions ----------------------------------------------------------------------


async def s_random(rng, ctx, r, w):
    stats["random"] += 1
    await send(rng, w, rng.randbytes(rng.randint(0, 1024)))
    await recv(r, 1, rng.choice([0, 0.05, 0.2]))


async def s_handshake(rng, ctx, r, w):
    """The valid exchange with one part mutated (or none): the server must
    answer or close, whatever it gets."""
    stats["handshake"] += 1
    cmd = rng.choice([1, 1, 1, 2, 3, rng.randint(0, 255)])
    host, port = ctx["echo"]
    parts = [greeting(rng), userpass(rng, *ctx["cred"]), request(rng, cmd, host, port)]
    bad = rng.randrange(len(parts) + 1)  # == len: none mutated
    if bad < len(parts):
        parts[bad] = mutate(rng, parts[bad])
    if rng.random() < 0.3:  # pipelined: all before any answer
        await send(rng, w, b"".join(parts))
        got = await recv(r, 2)
        if got is None or await recv(r, 2) is None:
            return
    else:
        await send(rng, w, parts[0])
        got = await recv(r, 2)
        if got is None or got[1] not in (0, 2):
            return
        if got[1] == 2:
            await send(rng, w, parts[1])
            if await recv(r, 2) is None:
                return
        await send(rng, w, parts[2])
    rep = await reply(r)
    if rep is None:
        return
    replies[rep[0]] += 1
    if rep[0] == 0:
        await after_success(rng, ctx, cmd, rep[1], r, w)


async def after_success(rng, ctx, cmd, bound, r, w):
    if cmd == 1:
        stats["connect"] += 1
        data = rng.randbytes(rng.randint(1, 4096))
        await send(rng, w, data)
        await recv(r, len(data) if rng.random() < 0.8 else 1)
    elif cmd == 3 and bound is not None:
        stats["udp"] += 1
        await udp_session(rng, ctx, bound, w)
    elif cmd == 2 and bound is not None:
        stats["bind"] += 1
        if rng.random() < 0.5:  # the peer comes: the second reply, then data
            try:
                pr, pw = await asyncio.wait_for(asyncio.open_connection(*bound), 1)
            except (OSError, asyncio.TimeoutError):
                return
            await reply(r)
            pw.write(rng.randbytes(rng.randint(0, 2048)))
            await send(rng, w, rng.randbytes(rng.randint(0, 2048)))
            await recv(r, 1)
            finish(rng, pw)


async def udp_session(rng, ctx, relay, w):
    """Datagrams to the relay; a third of the time the control connection ends
    among them, so that its end and datagrams (and their echoes) reach the
    server at once."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in relay[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.setblocking(False)
    try:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        host, port = ctx["udp_echo"]
        count = rng.randint(1, 20)
        end_at = rng.randrange(count) if rng.random() < 0.3 else -1
        for i in range(count):
            if i == end_at:
                finish(rng, w)
                stats["udp_ended"] += 1
            d = udp_datagram(rng, host, port)
            x = rng.random()
            if x < 0.3:
                d = mutate(rng, d)
            elif x < 0.4:
                d = rng.randbytes(rng.randint(0, 100))
            try:
                s.sendto(d, relay)
                stats["datagrams"] += 1
            except OSError:
                pass
        try:
            await asyncio.wait_for(loop.sock_recv(s, 65535), 0.05)
        except (asyncio.TimeoutError, OSError):
            pass
    finally:
        s.close()


async def session(rng, ctx):
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(*ctx["proxy"]), 2)
    except (OSError, asyncio.TimeoutError):
        stats["refused"] += 1
        await asyncio.sleep(0.05)
        return
    stats["sessions"] += 1
    try:
        kind = s_random if rng.random() < 0.3 else s_handshake
        await asyncio.wait_for(kind(rng, ctx, r, w), 5)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass
    finally:
        finish(rng, w)


async def worker(seed, ctx, end):
    rng = Random(seed)
    while time.monotonic() < end:
        await session(rng, ctx)


# --- echo targets ------------------------------------------------------------------


async def tcp_echo(r, w):
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


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.tr = transport

    def datagram_received(self, data, addr):
        self.tr.sendto(data, addr)


async def main(argv):
    host, _, port = argv[1].rpartition(":")
    user, _, pw = argv[2].partition(":")
    seconds, seed = float(argv[3]), int(argv[4])
    workers = int(argv[5]) if len(argv) > 5 else 32
    print("seed=%d" % seed, flush=True)
    loop = asyncio.get_running_loop()
    srv = await asyncio.start_server(tcp_echo, "127.0.0.1", 0)
    tr, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", 0))
    ctx = {
        "proxy": (host.strip("[]"), int(port)),
        "cred": (user.encode(), pw.encode()),
        "echo": srv.sockets[0].getsockname()[:2],
        "udp_echo": tr.get_extra_info("sockname")[:2],
    }
    end = time.monotonic() + seconds
    await asyncio.gather(*[worker(seed * 1000 + i, ctx, end) for i in range(workers)])
    srv.close()
    tr.close()
    print("sessions %d random=%d handshake=%d connect=%d bind=%d udp=%d udp_ended=%d "
          "datagrams=%d" % (
              stats["sessions"], stats["random"], stats["handshake"], stats["connect"],
              stats["bind"], stats["udp"], stats["udp_ended"], stats["datagrams"]))
    print("replies " + " ".join("%d:%d" % kv for kv in sorted(replies.items())))
    if stats["refused"]:
        print("refused %d" % stats["refused"])
    return 0


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.stderr.write(__doc__)
        sys.exit(2)
    sys.exit(asyncio.run(main(sys.argv)))
