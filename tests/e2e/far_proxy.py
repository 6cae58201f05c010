#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A far proxy: a TCP relay in front of a SOCKS5 server that delays every
chunk going towards the client, so that a proxy on the same machine (or in the
next network namespace) behaves like one DELAY_MS away.

  far_proxy.py [-d DELAY_MS] [--plain] LISTEN_ADDR:PORT UPSTREAM_ADDR:PORT

It accepts a client's connection, connects to the real proxy and forwards both
ways: client -> proxy at once, proxy -> client each chunk DELAY_MS after it
arrived, in order (a queue of pending chunks per connection, one timer for its
head). An end of stream or a reset from the proxy is delayed the same way; one
from the client is passed on at once.

UDP ASSOCIATE (unless --plain): the relay follows the SOCKS5 handshake as it
goes by, holding each message only until it is whole. A UDP ASSOCIATE request
goes on with DST.PORT 0 (the proxy then takes the port of the first datagram,
which will come from this relay, on the control connection's host, which is
this relay's). When the proxy grants it, the relay opens two UDP sockets: one
on the address the client reached, which replaces BND.ADDR:BND.PORT in the
reply the client gets, and one towards the proxy's relay. Datagrams from the
client go to the proxy's relay at once; those from the proxy's relay reach the
client DELAY_MS later. The sockets close with the control connection. Other
commands (CONNECT, BIND) and authentication pass unchanged.

One line per accepted connection ("tcp CLIENT"), per association
("udp CLIENT_CTL relay LOCAL -> PROXY_RELAY") and per error on stderr; the
first line says where it listens. SIGTERM ends it.
"""

import argparse
import asyncio
import collections
import signal
import socket
import sys

HIGH = 1 << 20  # bytes queued towards the client before the proxy side pauses
LOW = 1 << 18


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def fmt(addr):
    host, port = addr[0], addr[1]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def addr_len(buf, off):
    """Length of a SOCKS5 ATYP + address + port at buf[off:], None when more
    bytes are needed, -1 when malformed."""
    if len(buf) < off + 1:
        return None
    atyp = buf[off]
    if atyp == 1:
        return 1 + 4 + 2
    if atyp == 4:
        return 1 + 16 + 2
    if atyp == 3:
        if len(buf) < off + 2:
            return None
        return 1 + 1 + buf[off + 1] + 2
    return -1


def parse_addr(buf, off):
    """(host, port) of a complete SOCKS5 address at buf[off:]."""
    atyp = buf[off]
    if atyp == 1:
        host = socket.inet_ntop(socket.AF_INET, bytes(buf[off + 1 : off + 5]))
        p = off + 5
    elif atyp == 4:
        host = socket.inet_ntop(socket.AF_INET6, bytes(buf[off + 1 : off + 17]))
        p = off + 17
    else:
        n = buf[off + 1]
        host = bytes(buf[off + 2 : off + 2 + n]).decode("ascii", "replace")
        p = off + 2 + n
    return host, int.from_bytes(buf[p : p + 2], "big")


def encode_addr(addr):
    host, port = addr[0], addr[1]
    if ":" in host:
        return b"\x04" + socket.inet_pton(socket.AF_INET6, host) + port.to_bytes(2, "big")
    return b"\x01" + socket.inet_pton(socket.AF_INET, host) + port.to_bytes(2, "big")


class UdpRelay:
    """The two UDP sockets of one association (see the top)."""

    def __init__(self, pipe, front_host, back_host, proxy_relay):
        self.pipe = pipe
        self.loop = pipe.loop
        self.proxy_relay = proxy_relay
        self.client = None
        fam = socket.AF_INET6 if ":" in front_host else socket.AF_INET
        self.front = socket.socket(fam, socket.SOCK_DGRAM)
        self.back = None
        try:
            self.front.setblocking(False)
            self.front.bind((front_host, 0))
            bfam = socket.AF_INET6 if ":" in back_host else socket.AF_INET
            self.back = socket.socket(bfam, socket.SOCK_DGRAM)
            self.back.setblocking(False)
            self.back.bind((back_host, 0))
        except OSError:
            self.close()
            raise
        self.loop.add_reader(self.front.fileno(), self.from_client)
        self.loop.add_reader(self.back.fileno(), self.from_proxy)

    def address(self):
        return self.front.getsockname()[:2]

    def from_client(self):
        while True:
            try:
                data, src = self.front.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log("udp: from the client: %s" % e)
                return
            self.client = src
            try:
                self.back.sendto(data, self.proxy_relay)
            except OSError as e:
                log("udp: to %s: %s" % (fmt(self.proxy_relay), e))

    def from_proxy(self):
        while True:
            try:
                data, _ = self.back.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log("udp: from the proxy: %s" % e)
                return
            if self.client is not None:
                self.loop.call_later(self.pipe.delay, self.to_client, data, self.client)

    def to_client(self, data, dst):
        if self.front is None:
            return
        try:
            self.front.sendto(data, dst)
        except OSError as e:
            log("udp: to %s: %s" % (fmt(dst), e))

    def close(self):
        for s in (self.front, self.back):
            if s is None:
                continue
            try:
                self.loop.remove_reader(s.fileno())
            except (ValueError, OSError):
                pass
            s.close()
        self.front = self.back = None


class Handshake:
    """Follows the SOCKS5 handshake of one connection. The client's bytes are
    held only until each message is whole (a UDP ASSOCIATE request gets
    DST.PORT 0, so that the proxy takes the port of this relay's first
    datagram); the proxy's replies likewise (so that the UDP ASSOCIATE reply
    can name this relay's socket). Anything unexpected ends the following:
    from then on bytes pass as they are."""

    def __init__(self):
        self.cbuf = bytearray()  # client bytes not yet passed on
        self.sbuf = bytearray()  # proxy bytes not yet passed on
        self.cstate = "greeting"  # greeting, method?, auth, request, done
        self.sstate = "method"  # method, auth, reply, done
        self.method = None
        self.cmd = None

    def done(self):
        return self.cstate == "done" and self.sstate == "done"

    def client_bytes(self, data):
        """Takes bytes from the client; returns what may go to the proxy now."""
        self.cbuf += data
        out = bytearray()
        while self.cstate != "done":
            b, need = self.cbuf, None
            if self.cstate == "greeting":
                if len(b) >= 2:
                    need = 2 + b[1] if b[0] == 5 else -1
            elif self.cstate == "method?":
                if self.method is None:
                    break
                self.cstate = "auth" if self.method == 2 else "request"
                continue
            elif self.cstate == "auth":
                if len(b) >= 2:
                    ulen = b[1]
                    if len(b) >= 3 + ulen:
                        need = 3 + ulen + b[2 + ulen] if b[0] == 1 else -1
            elif len(b) >= 4:  # request: VER CMD RSV ATYP ADDR PORT
                n = addr_len(b, 3) if b[0] == 5 else -1
                need = n if n is None or n < 0 else 3 + n
            if need is None or len(b) < need:
                break
            if need < 0:
                self.cstate = "done"
                break
            msg = bytes(b[:need])
            del b[:need]
            if self.cstate == "request":
                self.cmd = msg[1]
                if self.cmd == 3:  # UDP ASSOCIATE: the port is this relay's
                    msg = msg[:-2] + b"\0\0"
            self.cstate = {"greeting": "method?", "auth": "request"}.get(self.cstate, "done")
            out += msg
        if self.cstate == "done":
            out += self.cbuf
            self.cbuf = bytearray()
        return bytes(out)

    def server_bytes(self, data, pipe):
        """Takes bytes from the proxy; returns what may go to the client now."""
        self.sbuf += data
        out = bytearray()
        while self.sstate != "done":
            b = self.sbuf
            if self.sstate in ("method", "auth"):
                if len(b) < 2:
                    break
                if self.sstate == "method":
                    if b[0] != 5 or b[1] == 0xFF:
                        self.sstate = "done"
                        break
                    self.method = b[1]
                    self.sstate = "auth" if self.method == 2 else "reply"
                    pipe.pass_client_bytes(b"")  # it may wait for the method
                else:
                    self.sstate = "reply" if b[1] == 0 else "done"
                out += b[:2]
                del b[:2]
                continue
            # the request's reply: VER REP RSV ATYP ADDR PORT
            n = addr_len(b, 3) if len(b) >= 4 else None
            if n is None:
                break
            if n < 0:
                self.sstate = "done"
                break
            if len(b) < 3 + n:
                break
            reply = bytes(b[: 3 + n])
            del b[: 3 + n]
            self.sstate = "done"
            if self.cmd == 3 and reply[1] == 0:
                reply = pipe.start_udp(reply)
            out += reply
        if self.sstate == "done":
            out += self.sbuf
            self.sbuf = bytearray()
        return bytes(out)


class Pipe:
    """One client connection and its connection to the proxy."""

    def __init__(self, server, client_tr):
        self.loop = server.loop
        self.delay = server.delay
        self.server = server
        self.client = client_tr
        self.up = None
        self.pending_up = []  # client bytes before the proxy connection is up
        self.client_eof = False  # the client's end of stream (passed on)
        self.queue = collections.deque()  # (due, bytes | "eof" | "close")
        self.queued = 0
        self.timer = None
        self.client_paused = False  # the client's transport asked us to stop
        self.up_reading_paused = False
        self.delivered_eof = False
        self.closed = False
        self.udp = None
        self.hs = None if server.plain else Handshake()

    # --- client -> proxy (at once)
    def from_client(self, data):
        if self.hs is not None and self.hs.cstate != "done":
            self.pass_client_bytes(data)
        else:
            self.to_up(data)

    def pass_client_bytes(self, data):
        data = self.hs.client_bytes(data)
        if data:
            self.to_up(data)

    def to_up(self, data):
        if self.up is None:
            self.pending_up.append(data)
        else:
            self.up.write(data)

    def client_eof_received(self):
        self.client_eof = True
        if self.up is not None and self.up.can_write_eof():
            self.up.write_eof()
        self.maybe_finish()

    def up_connected(self, tr):
        self.up = tr
        for d in self.pending_up:
            tr.write(d)
        self.pending_up = []
        if self.client_eof and tr.can_write_eof():
            tr.write_eof()

    # --- proxy -> client (delayed)
    def from_up(self, data):
        if self.hs is not None and self.hs.sstate != "done":
            data = self.hs.server_bytes(data, self)
            if not data:
                return
        self.push(data, len(data))

    def push(self, item, size):
        due = self.loop.time() + self.delay
        self.queue.append((due, item))
        self.queued += size
        if self.timer is None:
            self.timer = self.loop.call_at(due, self.flush)
        self.flow()

    def flush(self):
        self.timer = None
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now + 0.0005:
            _, item = self.queue.popleft()
            if self.closed:
                continue
            if item == "eof":
                self.delivered_eof = True
                if self.client.can_write_eof():
                    self.client.write_eof()
                self.maybe_finish()
            elif item == "close":
                self.close()
            else:
                self.queued -= len(item)
                self.client.write(item)
        if self.queue and not self.closed:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)
        self.flow()

    def flow(self):
        """Pauses reading from the proxy while too much waits for the client."""
        if self.up is None or self.closed:
            return
        want_pause = self.client_paused or self.queued > HIGH
        if want_pause and not self.up_reading_paused:
            self.up.pause_reading()
            self.up_reading_paused = True
        elif not want_pause and self.up_reading_paused and self.queued < LOW:
            self.up.resume_reading()
            self.up_reading_paused = False

    def up_eof_received(self):
        self.push("eof", 0)

    def up_lost(self):
        if not self.closed:
            self.push("close", 0)

    def maybe_finish(self):
        if self.client_eof and self.delivered_eof:
            self.close()

    def start_udp(self, reply):
        """A granted UDP ASSOCIATE: the relay's sockets, and the reply naming
        the front one."""
        host, port = parse_addr(reply, 3)
        if host in ("0.0.0.0", "::") or not host:
            host = self.up.get_extra_info("peername")[0]
        front_host = self.client.get_extra_info("sockname")[0]
        back_host = self.up.get_extra_info("sockname")[0]
        try:
            self.udp = UdpRelay(self, front_host, back_host, (host, port))
        except OSError as e:
            log("udp: cannot relay the association: %s" % e)
            return b"\x05\x01\x00" + reply[3:]
        peer = self.client.get_extra_info("peername")
        log(
            "udp %s relay %s -> %s"
            % (fmt(peer), fmt(self.udp.address()), fmt((host, port)))
        )
        return reply[:3] + encode_addr(self.udp.address())

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        if self.udp is not None:
            self.udp.close()
        self.client.close()
        if self.up is not None:
            self.up.close()
        self.server.conns.discard(self)

    def abort(self):
        """The client is gone: nothing more to deliver."""
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        self.queue.clear()
        if self.udp is not None:
            self.udp.close()
        if self.up is not None:
            self.up.abort()
        self.server.conns.discard(self)


class UpProto(asyncio.Protocol):
    def __init__(self, pipe):
        self.pipe = pipe

    def connection_made(self, tr):
        self.pipe.up_connected(tr)

    def data_received(self, data):
        self.pipe.from_up(data)

    def eof_received(self):
        self.pipe.up_eof_received()
        return True

    def connection_lost(self, exc):
        self.pipe.up_lost()

    def pause_writing(self):
        self.pipe.client.pause_reading()

    def resume_writing(self):
        if not self.pipe.closed:
            self.pipe.client.resume_reading()


class ClientProto(asyncio.Protocol):
    def __init__(self, server):
        self.server = server
        self.pipe = None

    def connection_made(self, tr):
        self.pipe = Pipe(self.server, tr)
        self.server.conns.add(self.pipe)
        log("tcp %s" % fmt(tr.get_extra_info("peername")))
        self.server.loop.create_task(self.connect())

    async def connect(self):
        p = self.pipe
        try:
            await self.server.loop.create_connection(
                lambda: UpProto(p), self.server.up_host, self.server.up_port
            )
        except OSError as e:
            log("connect to %s: %s" % (fmt((self.server.up_host, self.server.up_port)), e))
            p.abort()
            p.client.abort()

    def data_received(self, data):
        self.pipe.from_client(data)

    def eof_received(self):
        self.pipe.client_eof_received()
        return True

    def connection_lost(self, exc):
        self.pipe.abort()

    def pause_writing(self):
        self.pipe.client_paused = True
        self.pipe.flow()

    def resume_writing(self):
        self.pipe.client_paused = False
        self.pipe.flow()


class Server:
    def __init__(self, loop, args):
        self.loop = loop
        self.delay = args.delay / 1000.0
        self.plain = args.plain
        self.up_host, self.up_port = hostport(args.upstream)
        self.conns = set()


async def main():
    ap = argparse.ArgumentParser(description="a delaying TCP relay in front of a SOCKS5 proxy")
    ap.add_argument("-d", "--delay", type=float, default=200, help="milliseconds (default 200)")
    ap.add_argument("--plain", action="store_true", help="bytes only: no UDP ASSOCIATE relay")
    ap.add_argument("listen", help="ADDR:PORT")
    ap.add_argument("upstream", help="ADDR:PORT of the SOCKS5 proxy")
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    server = Server(loop, args)
    host, port = hostport(args.listen)
    srv = await loop.create_server(
        lambda: ClientProto(server), host, port, backlog=1024, reuse_address=True
    )
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    log(
        "far_proxy: listening on %s -> %s, %g ms towards the client%s"
        % (args.listen, args.upstream, args.delay, " (plain)" if args.plain else "")
    )
    await stop
    srv.close()
    for p in list(server.conns):
        p.abort()
        p.client.abort()


if __name__ == "__main__":
    asyncio.run(main())
