#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Raw SOCKS5 test client and tiny TCP target servers for the socksify e2e tests.

Client subcommands (exit 0 on the expected result, else 1 with a one-line reason
on stderr; facts go to stdout as key=value lines; every socket operation has a
timeout, so nothing hangs):

  connect   full RFC 1928/1929 handshake with options for the odd cases
            (byte-by-byte, coalesced with data, half-close, echo checks, ...)
  raw       send arbitrary bytes, print the reply as hex, report whether the
            server closed
  hold      open a connection, optionally send some bytes, then stay silent and
            report when (or whether) the server closes it
  maxconns  the --max-conns scenario: N held relays, one refused client, relays
            still working, a new client served once they are gone

Target servers (run until killed):

  echo-server  echoes everything back
  peer-server  sends "HOST:PORT\\n" (the peer address it saw), then closes
  eof-server   reads until EOF, then sends "N\\n" (bytes read) and --reply-file
"""

import argparse
import codecs
import ipaddress
import os
import select
import socket
import socketserver
import sys
import time

DEFAULT_TIMEOUT = 5.0


class Fail(Exception):
    """The one-line reason a check failed."""


def hostport(text):
    """'1.2.3.4:80', '[::1]:80' or 'name:80' -> (host, port)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host, int(port)


def fmt_hostport(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def unescape(text):
    """Command-line data with C-style escapes (\\r, \\n, \\x00) -> bytes."""
    return codecs.decode(text, "unicode_escape").encode("latin-1")


def hexbytes(text):
    try:
        return bytes.fromhex(text.replace(":", " "))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad hex {text!r}: {e}")


def encode_addr(host, port, atyp=None):
    """SOCKS5 ATYP + DST.ADDR + DST.PORT for a literal address or a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if atyp == "domain" or (atyp is None and ip is None):
        name = host.encode("ascii") if host.isascii() else host.encode("idna")
        if len(name) > 255:
            raise Fail("domain name longer than 255 bytes")
        out = b"\x03" + bytes([len(name)]) + name
    elif ip.version == 4:
        out = b"\x01" + ip.packed
    else:
        out = b"\x04" + ip.packed
    return out + port.to_bytes(2, "big")


class Conn:
    """A client socket with a deadline-based timeout on every operation."""

    def __init__(self, addr, timeout, nodelay=True):
        self.timeout = timeout
        try:
            self.sock = socket.create_connection(addr, timeout=timeout)
        except OSError as e:
            raise Fail(f"cannot connect to {fmt_hostport(*addr)}: {e}")
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.received = bytearray()

    def send(self, data, split=False, what="data"):
        try:
            if split:
                for i in range(len(data)):
                    self.sock.sendall(data[i : i + 1])
                    time.sleep(0.005)
            else:
                self.sock.sendall(data)
        except OSError as e:
            raise Fail(f"sending {what}: {e}")

    def recv_exact(self, n, what):
        """Exactly n bytes; a Fail naming `what` on EOF, reset or timeout."""
        buf = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail(f"timeout waiting for {what} (got {bytes(buf).hex() or 'nothing'})")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                continue
            except OSError as e:
                raise Fail(f"{e.strerror or e} while reading {what} (got {bytes(buf).hex() or 'nothing'})")
            if not chunk:
                raise Fail(f"server closed the connection before {what} (got {bytes(buf).hex() or 'nothing'})")
            buf += chunk
        return bytes(buf)

    def read_until_close(self, seconds, limit=None):
        """Read until EOF/reset or until `seconds` pass (or `limit` bytes).
        Returns (data, state) with state 'eof', 'reset', 'open' or 'limit'."""
        buf = bytearray()
        deadline = time.monotonic() + seconds
        while True:
            if limit is not None and len(buf) >= limit:
                return bytes(buf), "limit"
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(buf), "open"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return bytes(buf), "reset"
            except OSError as e:
                raise Fail(f"reading: {e}")
            if not chunk:
                return bytes(buf), "eof"
            buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def read_reply(conn, what="the request reply"):
    """VER REP RSV ATYP BND.ADDR BND.PORT -> (rep, host, port)."""
    head = conn.recv_exact(4, what)
    if head[0] != 5:
        raise Fail(f"{what}: version {head[0]:#04x}, not 0x05 ({head.hex()})")
    atyp = head[3]
    if atyp == 1:
        addr = conn.recv_exact(4 + 2, what)
        host = str(ipaddress.IPv4Address(addr[:4]))
    elif atyp == 4:
        addr = conn.recv_exact(16 + 2, what)
        host = str(ipaddress.IPv6Address(addr[:16]))
    elif atyp == 3:
        n = conn.recv_exact(1, what)[0]
        addr = conn.recv_exact(n + 2, what)
        host = addr[:n].decode("latin-1")
    else:
        raise Fail(f"{what}: unknown ATYP {atyp:#04x} ({head.hex()})")
    if head[2] != 0:
        raise Fail(f"{what}: RSV is {head[2]:#04x}, not 0")
    return head[1], host, int.from_bytes(addr[-2:], "big")


def expect_close(conn, seconds, after):
    data, state = conn.read_until_close(seconds)
    if state == "open":
        raise Fail(f"server did not close the connection within {seconds}s after {after}")
    if data:
        raise Fail(f"unexpected bytes after {after}: {data.hex()}")


def handshake(conn, args, target, data=b""):
    """Runs greeting (+ auth) + request; returns (rep, host, port), or None when
    an expected refusal (method/auth failure) was seen. Prints facts."""
    user = args.user.encode() if args.user is not None else None
    pw = args.password.encode() if args.password is not None else b""
    if args.methods is not None:
        methods = args.methods
    else:
        methods = b"\x02" if user is not None else b"\x00"
    greeting = b"\x05" + bytes([len(methods)]) + methods
    auth = b""
    if user is not None:
        auth = b"\x01" + bytes([len(user)]) + user + bytes([len(pw)]) + pw
    request = b"\x05" + bytes([args.cmd, args.rsv]) + encode_addr(*target, atyp=args.atyp)
    split = args.split_bytes

    if data:  # everything in one write: greeting, auth, request and data
        conn.send(greeting + auth + request + data, what="coalesced handshake")
    else:
        conn.send(greeting, split, "greeting")

    ver, method = conn.recv_exact(2, "the method reply")
    print(f"method={method:02x}")
    if ver != 5:
        raise Fail(f"method reply version {ver:#04x}, not 0x05")
    if args.expect_method is not None and method != args.expect_method:
        raise Fail(f"expected method {args.expect_method:02x}, got {method:02x}")
    if method == 0xFF:
        if args.expect_method == 0xFF:
            expect_close(conn, conn.timeout, "method 0xff")
            print("closed=yes")
            return None
        raise Fail("server accepted none of the offered methods (05 ff)")
    if method not in methods:
        raise Fail(f"server chose method {method:02x}, which was not offered ({methods.hex()})")
    if method == 2:
        if user is None:
            raise Fail("server chose username/password but no --user was given")
        if not data:
            conn.send(auth, split, "username/password")
        aver, status = conn.recv_exact(2, "the username/password reply")
        print(f"auth={status:02x}")
        if aver != 1:
            raise Fail(f"username/password reply version {aver:#04x}, not 0x01")
        if status != 0:
            if args.expect_auth_fail:
                expect_close(conn, conn.timeout, "a failed authentication")
                print("closed=yes")
                return None
            raise Fail(f"authentication failed (status {status:#04x})")
        if args.expect_auth_fail:
            raise Fail("authentication succeeded, but failure was expected")
    elif args.expect_auth_fail:
        raise Fail(f"server chose method {method:02x} instead of username/password")

    if not data:
        conn.send(request, split, "request")
    rep, host, port = read_reply(conn)
    print(f"rep={rep}")
    print(f"bnd={fmt_hostport(host, port)}")
    return rep, host, port


def cmd_connect(args):
    conn = Conn(args.proxy, args.timeout)
    coalesced = unescape(args.coalesce_data) if args.coalesce_data is not None else b""
    res = handshake(conn, args, args.target, coalesced)
    if res is None:
        return
    rep = res[0]
    if rep != args.expect_rep:
        raise Fail(f"expected reply {args.expect_rep}, got {rep}")
    if rep != 0:
        # RFC 1928: the server must close the connection after a failure reply.
        expect_close(conn, conn.timeout, f"failure reply {rep}")
        print("closed=yes")
        return

    sent = coalesced
    if args.send is not None:
        payload = unescape(args.send)
        conn.send(payload, args.split_bytes)
        sent += payload
    if args.send_file is not None:
        with open(args.send_file, "rb") as f:
            payload = f.read()
        conn.send(payload)
        sent += payload

    for i in range(args.echo_rounds):
        msg = f"echo round {i}\n".encode()
        if i:
            time.sleep(args.interval)
        conn.send(msg)
        back = conn.recv_exact(len(msg), f"echo round {i}")
        if back != msg:
            raise Fail(f"echo round {i}: sent {msg!r}, got {back!r}")
    if args.echo_rounds:
        print(f"echo_rounds={args.echo_rounds}")

    if args.expect_echo:
        back = conn.recv_exact(len(sent), "the echoed data")
        if back != sent:
            raise Fail(f"echo mismatch: sent {len(sent)} bytes, got back different bytes")
        print(f"echoed={len(back)}")

    if args.shut_wr:
        conn.sock.shutdown(socket.SHUT_WR)

    if args.expect_open_for is not None:
        data, state = conn.read_until_close(args.expect_open_for)
        if state != "open":
            raise Fail(f"server closed the connection ({state}) within {args.expect_open_for}s")
        if data:
            raise Fail(f"unexpected bytes while idle: {data[:32].hex()}")
        print("open=yes")

    if args.expect_close_within is not None:
        start = time.monotonic()
        data, state = conn.read_until_close(args.expect_close_within)
        if state == "open":
            raise Fail(f"connection still open after {args.expect_close_within}s")
        print(f"closed_after={time.monotonic() - start:.2f}")
        conn.close()
        return

    if args.expect_echo or args.echo_rounds or args.expect_open_for is not None:
        conn.close()
        return

    # Default: read the whole response until the target closes.
    data, state = conn.read_until_close(args.timeout)
    if state == "open":
        raise Fail(f"response not finished after {args.timeout}s ({len(data)} bytes so far)")
    if state == "reset":
        raise Fail(f"connection reset after {len(data)} bytes")
    print(f"received={len(data)}")
    if args.output:
        with open(args.output, "wb") as f:
            f.write(data)
    if args.print_data or len(data) <= 4096:  # small responses: shown, one line
        text = data.decode("latin-1").rstrip("\r\n")
        print("data=" + text.replace("\r", "\\r").replace("\n", "\\n"))
    head, sep, body = data.partition(b"\r\n\r\n")
    if args.body_output:
        if not sep:
            raise Fail("no HTTP header terminator in the response")
        with open(args.body_output, "wb") as f:
            f.write(body)
    if data.startswith(b"HTTP/"):
        print("http=" + head.split(b"\r\n", 1)[0].decode("latin-1"))
    if args.expect_contains is not None and args.expect_contains.encode() not in data:
        raise Fail(f"response does not contain {args.expect_contains!r}")
    conn.close()


def cmd_raw(args):
    conn = Conn(args.proxy, args.timeout)
    conn.send(args.hex, args.split_bytes, "raw bytes")
    limit = None
    if args.expect is not None and not args.expect_close:
        limit = len(args.expect)
    data, state = conn.read_until_close(args.timeout, limit)
    closed = "yes" if state in ("eof", "reset") else "no"
    print(f"reply={data.hex()}")
    print(f"closed={closed}")
    conn.close()
    if args.expect is not None and not data.startswith(args.expect):
        raise Fail(f"reply {data.hex() or '(nothing)'} does not start with {args.expect.hex()}")
    if args.expect_exact is not None and data != args.expect_exact:
        raise Fail(f"reply {data.hex() or '(nothing)'} is not {args.expect_exact.hex()}")
    if args.expect_close and closed != "yes":
        raise Fail(f"server did not close the connection within {args.timeout}s")


def cmd_hold(args):
    conn = Conn(args.proxy, args.timeout)
    if args.hex:
        conn.send(args.hex, what="raw bytes")
    start = time.monotonic()
    wait = args.expect_close_within if args.expect_close_within is not None else args.seconds
    data, state = conn.read_until_close(wait)
    elapsed = time.monotonic() - start
    conn.close()
    print(f"reply={data.hex()}")
    if state == "open":
        print(f"open_after={elapsed:.2f}")
        if args.expect_close_within is not None:
            raise Fail(f"connection still open after {wait}s")
        return
    print(f"closed_after={elapsed:.2f}")
    if args.expect_close_within is None:
        raise Fail(f"server closed the connection after {elapsed:.2f}s ({state})")
    if elapsed < args.min_seconds:
        raise Fail(f"server closed after {elapsed:.2f}s, before {args.min_seconds}s")


def open_relay(args, i):
    conn = Conn(args.proxy, args.timeout)
    conn.send(b"\x05\x01\x00" + b"\x05\x01\x00" + encode_addr(*args.target))
    if conn.recv_exact(2, f"the method reply on relay {i}") != b"\x05\x00":
        raise Fail(f"relay {i}: method not accepted")
    rep, _, _ = read_reply(conn, f"the reply on relay {i}")
    if rep != 0:
        raise Fail(f"relay {i}: reply {rep}")
    echo(conn, f"relay {i} hello\n".encode(), f"relay {i}")
    return conn


def echo(conn, msg, what):
    conn.send(msg, what=what)
    if conn.recv_exact(len(msg), f"the echo on {what}") != msg:
        raise Fail(f"{what}: echo mismatch")


def refused_client(args):
    """Returns the bytes a client over the limit got; checks it was closed."""
    conn = Conn(args.proxy, args.timeout)
    # A server may refuse right on accept: read that first, so our greeting
    # does not race its close (an RST could drop the refusal).
    ready, _, _ = select.select([conn.sock], [], [], 0.2)
    early = b""
    if ready:
        early, state = conn.read_until_close(args.timeout, limit=2)
    if len(early) < 2:
        try:
            conn.sock.sendall(b"\x05\x01\x00")
        except OSError:
            pass
    data, state = conn.read_until_close(args.timeout)
    conn.close()
    data = early + data
    if state == "open":
        raise Fail(f"client over the limit: not closed within {args.timeout}s (got {data.hex() or 'nothing'})")
    return data


def cmd_maxconns(args):
    held = [open_relay(args, i) for i in range(args.held)]
    print(f"held={len(held)}")
    data = refused_client(args)
    print(f"refused_reply={data.hex()}")
    if data != b"\x05\xff":
        raise Fail(f"client over the limit got {data.hex() or 'nothing'}, not 05ff then close")
    for i, conn in enumerate(held):
        echo(conn, f"relay {i} still works\n".encode(), f"relay {i}")
    print("held_still_work=yes")
    for conn in held:
        conn.close()
    deadline = time.monotonic() + args.timeout
    while True:  # the server may take a moment to notice the closes
        try:
            open_relay(args, "after").close()
            break
        except Fail as e:
            if time.monotonic() > deadline:
                raise Fail(f"no new client served after the held ones closed: {e}")
            time.sleep(0.1)
    print("served_after_close=yes")


# --- target servers -------------------------------------------------------------


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(listen, handler):
    host, port = listen
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    Server.address_family = family
    with Server((host, port), handler) as srv:
        srv.serve_forever()


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(60)
        try:
            while True:
                data = self.request.recv(65536)
                if not data:
                    break
                self.request.sendall(data)
        except OSError:
            pass


class PeerHandler(socketserver.BaseRequestHandler):
    def handle(self):
        host, port = self.client_address[:2]
        try:
            self.request.sendall(f"{fmt_hostport(host, port)}\n".encode())
        except OSError:
            pass


def eof_handler(reply_file):
    with open(reply_file, "rb") if reply_file else open(os.devnull, "rb") as f:
        reply = f.read()

    class EofHandler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(60)
            n = 0
            try:
                while True:
                    data = self.request.recv(65536)
                    if not data:
                        break
                    n += len(data)
                self.request.sendall(f"{n}\n".encode() + reply)
            except OSError:
                pass

    return EofHandler


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd_name", required=True)

    def client(name, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--proxy", type=hostport, required=True)
        s.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
        return s

    c = client("connect", "full handshake and relay")
    c.add_argument("--target", type=hostport, required=True)
    c.add_argument("--user")
    c.add_argument("--pass", dest="password")
    c.add_argument("--methods", type=hexbytes, help="offered methods (hex)")
    c.add_argument("--cmd", type=int, default=1)
    c.add_argument("--rsv", type=int, default=0)
    c.add_argument("--atyp", choices=["domain"], help="send an IP literal as a name")
    c.add_argument("--split-bytes", action="store_true", help="one byte per write")
    c.add_argument("--coalesce-data", help="send greeting+auth+request+DATA at once")
    c.add_argument("--send", help="data to send after the reply (escapes allowed)")
    c.add_argument("--send-file", help="file to send after the reply")
    c.add_argument("--shut-wr", action="store_true", help="shutdown(SHUT_WR) after sending")
    c.add_argument("--expect-method", type=lambda s: int(s, 16))
    c.add_argument("--expect-auth-fail", action="store_true")
    c.add_argument("--expect-rep", type=int, default=0)
    c.add_argument("--expect-echo", action="store_true", help="all data sent comes back")
    c.add_argument("--echo-rounds", type=int, default=0)
    c.add_argument("--interval", type=float, default=0.0)
    c.add_argument("--expect-open-for", type=float)
    c.add_argument("--expect-close-within", type=float)
    c.add_argument("--expect-contains")
    c.add_argument("--output", help="write the whole response here")
    c.add_argument("--body-output", help="write the HTTP body of the response here")
    c.add_argument("--print-data", action="store_true",
                   help="print the response as data=... (done anyway up to 4 KiB)")
    c.set_defaults(func=cmd_connect)

    r = client("raw", "send raw bytes, print the reply")
    r.add_argument("--hex", type=hexbytes, required=True)
    r.add_argument("--split-bytes", action="store_true")
    r.add_argument("--expect", type=hexbytes, help="reply must start with these bytes")
    r.add_argument("--expect-exact", type=hexbytes, help="the whole reply before close")
    r.add_argument("--expect-close", action="store_true")
    r.set_defaults(func=cmd_raw)

    h = client("hold", "connect, send little or nothing, wait")
    h.add_argument("--hex", type=hexbytes, default=b"")
    h.add_argument("--seconds", type=float, default=2.0, help="stay this long (expect open)")
    h.add_argument("--expect-close-within", type=float)
    h.add_argument("--min-seconds", type=float, default=0.0,
                   help="with --expect-close-within: not closed before this")
    h.set_defaults(func=cmd_hold)

    m = client("maxconns", "the --max-conns scenario")
    m.add_argument("--target", type=hostport, required=True, help="an echo server")
    m.add_argument("--held", type=int, default=2)
    m.set_defaults(func=cmd_maxconns)

    for name, help_ in (("echo-server", "echo everything"),
                        ("peer-server", "send the peer address, close"),
                        ("eof-server", "read to EOF, send count + file")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--listen", type=hostport, required=True)
        if name == "eof-server":
            s.add_argument("--reply-file")

    args = p.parse_args()
    if args.cmd_name == "echo-server":
        serve(args.listen, EchoHandler)
    elif args.cmd_name == "peer-server":
        serve(args.listen, PeerHandler)
    elif args.cmd_name == "eof-server":
        serve(args.listen, eof_handler(args.reply_file))
    else:
        try:
            args.func(args)
        except Fail as e:
            sys.stdout.flush()
            print(f"socks5_client: {args.cmd_name}: {e}", file=sys.stderr)
            sys.exit(1)
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
