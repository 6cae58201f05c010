#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Raw SOCKS5 test client and tiny target servers (TCP, UDP) for the socksify e2e tests.

Client subcommands (exit 0 on the expected result, else 1 with a one-line reason
on stderr; facts go to stdout as key=value lines; every socket operation has a
timeout, so nothing hangs):

  connect   full RFC 1928/1929 handshake with options for the odd cases
            (byte-by-byte, coalesced with data, half-close, echo checks, ...)
  raw       send arbitrary bytes, print the reply as hex, report whether the
            server closed
  hold      open a connection, optionally send some bytes, then stay silent and
            report when (or whether) the server closes it
  bulk      random bytes to an echo target and back at the same time (a thread
            each way), then half-close: the whole echo, intact, then EOF
  maxconns  the --max-conns scenario: N held relays, one refused client, relays
            still working, a new client served once they are gone
  udp       UDP ASSOCIATE (RFC 1928 sections 4 and 7), then steps in command-line
            order: echoes of N-byte datagrams, datagrams the server must drop
            (FRAG != 0, malformed, from another address or port), a query of the
            source address the target saw, the end of the association

Target servers (run until killed):

  echo-server  echoes everything back
  peer-server  sends "HOST:PORT\\n" (the peer address it saw), then closes
  eof-server   reads until EOF, then sends "N\\n" (bytes read) and --reply-file
  udp-echo-server  UDP: echoes each datagram; answers "?peer" with
                   "peer=HOST:PORT" (the sender it saw) and "?size=N" with N
                   bytes; logs one line a datagram
"""

import argparse
import codecs
import ipaddress
import os
import select
import signal
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


def cmd_bulk(args):
    """Sends --bytes of random data to an echo target while reading the echo
    (a thread each way), then shuts the write side; the whole echo and then
    EOF must come back."""
    import hashlib
    import threading

    conn = open_relay(args, 0)
    data = os.urandom(args.bytes)
    errors = []

    def sender():
        try:
            for off in range(0, len(data), 1 << 16):
                conn.sock.sendall(data[off : off + (1 << 16)])
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            errors.append(f"sending: {e}")

    t = threading.Thread(target=sender)
    conn.sock.settimeout(args.timeout)
    t.start()
    got = hashlib.sha256()
    n = 0
    try:
        while True:
            chunk = conn.sock.recv(1 << 16)
            if not chunk:
                break
            got.update(chunk)
            n += len(chunk)
    except OSError as e:
        errors.append(f"reading the echo after {n} bytes: {e}")
    t.join()
    if errors:
        raise Fail("; ".join(errors))
    print(f"sent={len(data)} received={n}")
    if got.digest() != hashlib.sha256(data).digest():
        raise Fail(f"the {n} bytes echoed differ from the {len(data)} sent")
    print("intact=yes")


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


# --- UDP ASSOCIATE ----------------------------------------------------------------


def parse_udp_header(data, what):
    """RFC 1928 section 7 header -> (frag, atyp, host, port, payload)."""
    if len(data) < 4:
        raise Fail(f"{what}: {len(data)}-byte datagram, shorter than a header ({data.hex()})")
    rsv, frag, atyp = data[:2], data[2], data[3]
    if rsv != b"\x00\x00":
        raise Fail(f"{what}: RSV is {rsv.hex()}, not 0000")
    if atyp == 1:
        end = 4 + 4
        if len(data) < end + 2:
            raise Fail(f"{what}: truncated IPv4 header ({data[:16].hex()})")
        host = str(ipaddress.IPv4Address(data[4:end]))
    elif atyp == 4:
        end = 4 + 16
        if len(data) < end + 2:
            raise Fail(f"{what}: truncated IPv6 header ({data[:32].hex()})")
        host = str(ipaddress.IPv6Address(data[4:end]))
    elif atyp == 3:
        raise Fail(f"{what}: ATYP 3 (a name) in a reply header, not the replier's address")
    else:
        raise Fail(f"{what}: unknown ATYP {atyp:#04x} ({data[:16].hex()})")
    port = int.from_bytes(data[end : end + 2], "big")
    return frag, atyp, host, port, data[end + 2 :]


def same_ip(a, b):
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def step_target(value, default):
    """'SIZE' or 'SIZE@HOST:PORT' -> (int, (host, port))."""
    size, sep, rest = value.partition("@")
    if not size.isdigit():
        raise Fail(f"bad step value {value!r} (SIZE or SIZE@HOST:PORT)")
    target = default
    if sep:
        try:
            target = hostport(rest)
        except argparse.ArgumentTypeError as e:
            raise Fail(str(e))
    return int(size), target


class Step(argparse.Action):
    """Appends (option name, value) to namespace.steps, in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        steps = list(getattr(namespace, "steps", None) or [])
        steps.append((self.dest, values))
        namespace.steps = steps


class UdpAssoc:
    """One UDP association: the TCP control connection, the client's main UDP
    socket and any extra sockets the steps open."""

    def __init__(self, args):
        self.args = args
        self.conn = Conn(args.proxy, args.timeout)
        self.family = self.conn.sock.family
        self.peer_ip = self.conn.sock.getsockname()[0]  # our TCP source address
        self.main = self.udp_socket(args.bind_src or self.peer_ip, args.src_port)
        local = self.main.getsockname()
        print(f"udp_local={fmt_hostport(local[0], local[1])}")
        self.pending = []  # sockets that must stay silent (dropped datagrams)
        self.extra = []
        self.tcp_closed = False
        self.echoed = 0

    def udp_socket(self, host, port=0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.bind((host, port))
        except OSError as e:
            s.close()
            raise Fail(f"cannot bind a UDP socket to {fmt_hostport(host, port)}: {e}")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        return s

    def request(self):
        """The UDP ASSOCIATE request; returns False when a refusal was expected
        and seen."""
        args = self.args
        if args.req_addr == "self":
            req = self.main.getsockname()[:2]
        elif args.req_addr is not None:
            req = hostport(args.req_addr)
        else:
            req = ("::", 0) if self.family == socket.AF_INET6 else ("0.0.0.0", 0)
        print(f"req={fmt_hostport(*req)}")
        res = handshake(self.conn, args, req)
        if res is None:
            return False
        rep, host, port = res
        if rep != args.expect_rep:
            raise Fail(f"expected reply {args.expect_rep}, got {rep}")
        if rep != 0:
            expect_close(self.conn, self.conn.timeout, f"failure reply {rep}")
            print("closed=yes")
            return False
        ip = ipaddress.ip_address(host)
        if ip.is_unspecified or port == 0:
            raise Fail(f"BND {fmt_hostport(host, port)} is not a usable relay address")
        if (ip.version == 6) != (self.main.family == socket.AF_INET6):
            raise Fail(f"BND {fmt_hostport(host, port)} is not in the UDP socket's family")
        self.bnd = (host, port)
        return True

    def header(self, target, frag=0):
        return b"\x00\x00" + bytes([frag]) + encode_addr(*target)

    def send(self, sock, data, what):
        try:
            sock.sendto(data, self.bnd)
        except OSError as e:
            raise Fail(f"sending {what} to {fmt_hostport(*self.bnd)}: {e}")

    def send_dropped(self, sock, data, what):
        self.send(sock, data, what)
        if sock not in self.pending:
            self.pending.append(sock)
        print(f"sent_dropped={what}")

    def flush_silent(self):
        """Waits --quiet seconds: nothing may arrive on the sockets that sent
        datagrams the server must drop."""
        if not self.pending:
            return
        deadline = time.monotonic() + self.args.quiet
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select(self.pending, [], [], left)
            for s in ready:
                try:
                    data, src = s.recvfrom(70000)
                except ConnectionRefusedError:
                    continue
                except OSError as e:
                    raise Fail(f"reading a dropped datagram's socket: {e}")
                raise Fail(f"a reply arrived for a datagram that should have been dropped: "
                           f"{len(data)} bytes from {fmt_hostport(*src[:2])} to "
                           f"{fmt_hostport(*s.getsockname()[:2])} ({data[:24].hex()})")
        print(f"silent={self.args.quiet:g}s")
        self.pending = []

    def expected_addrs(self, target):
        host, port = target
        try:
            ipaddress.ip_address(host)
            return {(str(ipaddress.ip_address(host)), port)}
        except ValueError:
            pass
        for given in self.args.resolves_to or []:
            name, _, addr = given.partition("=")
            if name == host:
                return {(str(ipaddress.ip_address(addr)), port)}
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as e:
            raise Fail(f"cannot resolve {host}: {e}")
        return {(str(ipaddress.ip_address(i[4][0])), port) for i in infos}

    def recv_reply(self, target, what):
        """The next datagram on the main socket, checked: from BND, a header
        naming the target, FRAG 0. Returns (host, port, payload)."""
        deadline = time.monotonic() + self.args.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail(f"no reply to {what} within {self.args.timeout:g}s")
            self.main.settimeout(left)
            try:
                data, src = self.main.recvfrom(70000)
            except socket.timeout:
                continue
            except OSError as e:
                raise Fail(f"waiting for the reply to {what}: {e}")
            break
        if not (same_ip(src[0], self.bnd[0]) and src[1] == self.bnd[1]):
            raise Fail(f"reply to {what} came from {fmt_hostport(*src[:2])}, not from BND "
                       f"{fmt_hostport(*self.bnd)}")
        frag, atyp, host, port, payload = parse_udp_header(data, f"reply to {what}")
        if frag != 0:
            raise Fail(f"reply to {what}: FRAG {frag}, not 0")
        allowed = self.expected_addrs(target)
        if (host, port) not in allowed:
            names = ", ".join(sorted(fmt_hostport(*a) for a in allowed))
            raise Fail(f"reply to {what}: header says {fmt_hostport(host, port)}, "
                       f"expected {names}")
        return host, port, payload

    def step_echo(self, value):
        size, target = step_target(value, self.args.target)
        self.flush_silent()
        payload = os.urandom(size)
        what = f"a {size}-byte datagram to {fmt_hostport(*target)}"
        self.send(self.main, self.header(target) + payload, what)
        host, port, back = self.recv_reply(target, what)
        if back != payload:
            raise Fail(f"{what}: got back {len(back)} bytes that differ from the "
                       f"{size} sent")
        self.echoed += 1
        print(f"echo={size} from={fmt_hostport(host, port)}")

    def step_burst(self, value):
        """N datagrams (1 to 3000 bytes) sent back to back without waiting,
        then N replies, in any order: each payload must come back once."""
        self.flush_silent()
        target = self.args.target
        sizes = [(1, 100, 1400, 3000)[i % 4] for i in range(value)]
        sent = sorted(bytes([i % 251]) + os.urandom(n - 1) for i, n in enumerate(sizes))
        for p in sent:
            self.send(self.main, self.header(target) + p, f"burst of {value}")
        back = []
        for i in range(value):
            back.append(self.recv_reply(target, f"datagram {i + 1} of a burst of {value}")[2])
        if sorted(back) != sent:
            raise Fail(f"a burst of {value}: the payloads that came back differ from those sent")
        self.echoed += value
        print(f"burst={value}")

    def step_burst_ordered(self, value):
        """N[@HOST:PORT]: N datagrams (100 to 1400 bytes, numbered) sent back to
        back; their N echoes must come back in the order sent."""
        n, target = step_target(value, self.args.target)
        self.flush_silent()
        sent = [i.to_bytes(2, "big") + os.urandom((100, 1400, 500)[i % 3] - 2)
                for i in range(n)]
        for p in sent:
            self.send(self.main, self.header(target) + p, f"ordered burst of {n}")
        for i, p in enumerate(sent):
            back = self.recv_reply(target, f"datagram {i + 1} of an ordered burst of {n}")[2]
            if back != p:
                got = int.from_bytes(back[:2], "big") if len(back) >= 2 else -1
                raise Fail(f"ordered burst of {n}: reply {i + 1} is datagram {got + 1} "
                           f"({len(back)} bytes), not datagram {i + 1}")
        self.echoed += n
        print(f"burst_ordered={n}")

    def step_ask_peer(self, _value):
        self.flush_silent()
        target = self.args.target
        what = f"the ?peer query to {fmt_hostport(*target)}"
        self.send(self.main, self.header(target) + b"?peer", what)
        host, port, back = self.recv_reply(target, what)
        text = back.decode("latin-1")
        if not text.startswith("peer="):
            raise Fail(f"{what}: answer {back[:40]!r}, not peer=HOST:PORT")
        print(f"target_saw={text[5:]}")

    def step_no_reply(self, value):
        size, target = step_target(value, self.args.target)
        self.send_dropped(self.main, self.header(target) + os.urandom(size),
                          f"{size}@{fmt_hostport(*target)}")

    def step_fire(self, value):
        size, target = step_target(value, self.args.target)
        self.send(self.main, self.header(target) + os.urandom(size),
                  f"{size}@{fmt_hostport(*target)}")

    def step_frag(self, value):
        self.send_dropped(self.main, self.header(self.args.target, value) + b"fragment",
                          f"frag={value}")

    def step_raw_hex(self, value):
        self.send_dropped(self.main, value, f"raw={value.hex() or '(empty)'}")

    def step_from_ip(self, value):
        s = self.udp_socket(value)
        self.extra.append(s)
        self.send_dropped(s, self.header(self.args.target) + b"from another address",
                          f"from={fmt_hostport(*s.getsockname()[:2])}")

    def step_from_other_port(self, _value):
        s = self.udp_socket(self.main.getsockname()[0])
        self.extra.append(s)
        self.send_dropped(s, self.header(self.args.target) + b"from another port",
                          f"from={fmt_hostport(*s.getsockname()[:2])}")

    def step_sleep(self, value):
        time.sleep(value)

    def step_tcp_open(self, _value):
        self.flush_silent()
        ready, _, _ = select.select([self.conn.sock], [], [], 0)
        if ready:
            data, state = self.conn.read_until_close(0.05)
            if state != "open":
                raise Fail(f"the control connection was closed by the server ({state})")
            raise Fail(f"unexpected bytes on the control connection: {data[:32].hex()}")
        print("tcp_open=yes")

    def step_expect_tcp_close_within(self, value):
        self.flush_silent()
        start = time.monotonic()
        data, state = self.conn.read_until_close(value)
        elapsed = time.monotonic() - start
        if state == "open":
            raise Fail(f"the control connection is still open after {value:g}s")
        if data:
            raise Fail(f"unexpected bytes on the control connection: {data[:32].hex()}")
        if elapsed < self.args.min_seconds:
            raise Fail(f"the control connection was closed after {elapsed:.2f}s, "
                       f"before {self.args.min_seconds:g}s")
        self.tcp_closed = True
        print(f"tcp_closed_after={elapsed:.2f}")

    def step_expect_gone(self, _value):
        """The relay is gone: a datagram to BND gets nothing back, or (the socket
        being closed) an ICMP port unreachable, seen by a connected socket as
        ECONNREFUSED."""
        self.flush_silent()
        time.sleep(0.2)  # the server closes its relay socket just after the TCP one
        try:
            self.main.connect(self.bnd)
        except OSError as e:
            raise Fail(f"connecting the UDP socket to BND: {e}")
        what = "a datagram after the association ended"
        try:
            self.main.send(self.header(self.args.target) + b"after the end")
        except ConnectionRefusedError:
            print("gone=refused")
            return
        except OSError as e:
            raise Fail(f"sending {what}: {e}")
        deadline = time.monotonic() + self.args.quiet
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                print("gone=timeout")
                return
            self.main.settimeout(left)
            try:
                data = self.main.recv(70000)
            except socket.timeout:
                continue
            except ConnectionRefusedError:
                print("gone=refused")
                return
            except OSError as e:
                raise Fail(f"waiting after {what}: {e}")
            raise Fail(f"{what}: a {len(data)}-byte reply came back ({data[:24].hex()})")

    def step_close_then_send(self, _value):
        self.flush_silent()
        self.conn.close()
        self.tcp_closed = True
        print("tcp_closed=yes")
        time.sleep(0.3)  # let the server notice the close
        self.step_expect_gone(None)

    def step_close_while_stopped(self, pid):
        """With the server (PID) stopped: the control connection's end, then a
        reply to the association's outgoing socket and a datagram to its front
        socket, so that the server wakes with the three in one batch of events,
        the end first (a datagram to a target of our own, relayed while the
        server runs, tells us the outgoing socket's address)."""
        target = self.udp_socket(self.peer_ip)
        self.extra.append(target)
        target.settimeout(self.args.timeout)
        self.send(self.main, self.header(target.getsockname()[:2]) + b"to target",
                  "a datagram to our own target")
        try:
            _, out = target.recvfrom(70000)
        except OSError as e:
            raise Fail(f"the datagram to our own target did not arrive: {e}")
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(0.05)  # a stopped process: the states it shows may lag
            self.conn.close()
            self.tcp_closed = True
            time.sleep(0.02)
            target.sendto(b"a reply while the association ends", out)
            self.main.sendto(self.header(self.args.target) + b"to the front", self.bnd)
            time.sleep(0.02)
        finally:
            os.kill(pid, signal.SIGCONT)
        print("closed_while_stopped=yes")
        self.step_expect_gone(None)

    def close(self):
        for s in [self.main] + self.extra:
            s.close()
        self.conn.close()


def cmd_udp(args):
    assoc = UdpAssoc(args)
    try:
        if not assoc.request():
            return
        for name, value in args.steps or []:
            getattr(assoc, "step_" + name)(value)
        assoc.flush_silent()
        if not assoc.tcp_closed:  # the association must not have ended on its own
            assoc.step_tcp_open(None)
        print(f"echoed={assoc.echoed}")
    finally:
        assoc.close()


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



def serve_udp_echo(hosts, port):
    """Binds every host on one UDP port (0: any free one, the same for all),
    prints port=N, then echoes each datagram to its sender; the payload "?peer"
    is answered with "peer=HOST:PORT" (the sender's address), "?size=N" with N
    bytes "z". Logs one line per datagram: from=HOST:PORT to=HOST:PORT len=N."""
    for attempt in range(50):
        socks = []
        try:
            p = port
            for host in hosts:
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                s = socket.socket(fam, socket.SOCK_DGRAM)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                s.bind((host, p))
                p = s.getsockname()[1]
            break
        except OSError:
            for s in socks:
                s.close()
            if port or attempt == 49:
                raise
    print(f"port={p}", flush=True)
    while True:
        ready, _, _ = select.select(socks, [], [])
        for s in ready:
            try:
                data, src = s.recvfrom(70000)
            except OSError:
                continue
            peer = fmt_hostport(src[0], src[1])
            local = s.getsockname()
            print(f"from={peer} to={fmt_hostport(local[0], local[1])} len={len(data)}",
                  flush=True)
            if data == b"?peer":
                reply = f"peer={peer}".encode()
            elif data.startswith(b"?size=") and data[6:].isdigit():
                reply = b"z" * int(data[6:])
            else:
                reply = data
            try:
                s.sendto(reply, src)
            except OSError as e:
                print(f"sendto {peer}: {e}", flush=True)


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

    b = client("bulk", "random bytes to an echo target and back at once, then EOF")
    b.add_argument("--target", type=hostport, required=True, help="an echo server")
    b.add_argument("--bytes", type=int, default=16 << 20)
    b.set_defaults(func=cmd_bulk)

    m = client("maxconns", "the --max-conns scenario")
    m.add_argument("--target", type=hostport, required=True, help="an echo server")
    m.add_argument("--held", type=int, default=2)
    m.set_defaults(func=cmd_maxconns)

    u = client("udp", "UDP ASSOCIATE, then datagram steps in command-line order")
    u.add_argument("--target", type=hostport, required=True,
                   help="the destination named in the datagram headers")
    u.add_argument("--user")
    u.add_argument("--pass", dest="password")
    u.add_argument("--methods", type=hexbytes, help="offered methods (hex)")
    u.add_argument("--expect-method", type=lambda s: int(s, 16))
    u.add_argument("--expect-auth-fail", action="store_true")
    u.add_argument("--expect-rep", type=int, default=0)
    u.add_argument("--bind-src", metavar="ADDR",
                   help="the UDP socket's address (default: the TCP source address)")
    u.add_argument("--src-port", type=int, default=0, help="the UDP socket's port")
    u.add_argument("--req-addr", metavar="ADDR:PORT|self",
                   help="DST in the request (default 0.0.0.0:0 / [::]:0; "
                        "self: the UDP socket's address)")
    u.add_argument("--resolves-to", action="append", metavar="NAME=ADDR",
                   help="a reply's header for NAME names ADDR (no lookup here)")
    u.add_argument("--quiet", type=float, default=1.0,
                   help="seconds in which no reply may arrive for dropped datagrams")
    u.add_argument("--min-seconds", type=float, default=0.0,
                   help="with --expect-tcp-close-within: not closed before this")
    steps = u.add_argument_group(
        "steps", "run in order; datagrams the server must drop are checked (no reply "
        "within --quiet s) before the next echo, query or check and at the end")
    steps.add_argument("--echo", "--size", dest="echo", action=Step, metavar="N[@HOST:PORT]",
                       help="N random bytes to the target; the same must come back, "
                            "from BND, the header naming the target")
    steps.add_argument("--no-reply", dest="no_reply", action=Step, metavar="N[@HOST:PORT]",
                       help="a good datagram the server must drop (e.g. --deny)")
    steps.add_argument("--fire", dest="fire", action=Step, metavar="N[@HOST:PORT]",
                       help="a good datagram, whatever comes of it (replies are not read)")
    steps.add_argument("--frag", dest="frag", action=Step, type=int, metavar="N",
                       help="a datagram with FRAG=N (dropped)")
    steps.add_argument("--raw-hex", dest="raw_hex", action=Step, type=hexbytes,
                       metavar="HEX", help="these bytes as a datagram (dropped)")
    steps.add_argument("--from-ip", dest="from_ip", action=Step, metavar="ADDR",
                       help="a good datagram from another socket bound to ADDR (dropped)")
    steps.add_argument("--from-other-port", dest="from_other_port", action=Step, nargs=0,
                       help="a good datagram from another port of our address (dropped)")
    steps.add_argument("--burst", dest="burst", action=Step, type=int, metavar="N",
                       help="N datagrams at once to the target, then their N echoes")
    steps.add_argument("--burst-ordered", dest="burst_ordered", action=Step,
                       metavar="N[@HOST:PORT]",
                       help="N numbered datagrams at once; the echoes must come back in order")
    steps.add_argument("--ask-peer", dest="ask_peer", action=Step, nargs=0,
                       help="ask the echo target who sent it; prints target_saw=")
    steps.add_argument("--sleep", dest="sleep", action=Step, type=float, metavar="S")
    steps.add_argument("--tcp-open", dest="tcp_open", action=Step, nargs=0,
                       help="the control connection is still open")
    steps.add_argument("--expect-tcp-close-within", dest="expect_tcp_close_within",
                       action=Step, type=float, metavar="S",
                       help="the server closes the control connection within S s")
    steps.add_argument("--expect-gone", dest="expect_gone", action=Step, nargs=0,
                       help="a datagram to BND gets nothing back (or ECONNREFUSED)")
    steps.add_argument("--close-then-send", dest="close_then_send", action=Step, nargs=0,
                       help="close the control connection, then --expect-gone")
    steps.add_argument("--close-while-stopped", dest="close_while_stopped", action=Step,
                       type=int, metavar="PID",
                       help="with the server PID stopped (SIGSTOP): close the control "
                            "connection, a reply to the outgoing socket, a datagram to "
                            "the front; then SIGCONT and --expect-gone")
    u.set_defaults(func=cmd_udp, steps=None, cmd=3, rsv=0, atyp=None, split_bytes=False)

    e = sub.add_parser("udp-echo-server", help="UDP echo target")
    e.add_argument("--host", action="append", required=True,
                   help="bind here (repeatable; all on the same port)")
    e.add_argument("--port", type=int, default=0)

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
    elif args.cmd_name == "udp-echo-server":
        serve_udp_echo(args.host, args.port)
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
