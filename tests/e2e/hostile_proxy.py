#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A hostile SOCKS5 proxy for the shim's end-to-end tests (shim_hostile.bats).

  hostile_proxy.py --list
      prints the behaviour table, one line each: "tcp|udp NAME AUTH EXPECT"
      (AUTH: 1 when the client must offer user:pass; EXPECT: what the client
      under the shim must see, see hostile_client.py)
  hostile_proxy.py ADDR BASE NAME...
      listens on ADDR:BASE+i (TCP) for the i-th NAME and misbehaves as the
      table says; prints "listening" once every port is open, and one line
      per event: "NAME accept", "NAME associate", "NAME datagram" (a
      datagram the relay got from the client), "NAME spoofed" ...

TCP steps, in the order of the exchange: accept (nothing read yet), greet (the
greeting read), method (the method reply sent), auth (the RFC 1929 reply
sent), request (the request read), partial (five bytes of the reply sent).
At a step the proxy may close (FIN), reset (SO_LINGER 0: RST), half-close
(shutdown SHUT_WR, then read on) or fall silent (holds the connection until
the client goes). A behaviour that succeeds connects to the request's
destination and relays both ways. UDP behaviours answer UDP ASSOCIATE and run
a relay of their own that echoes each datagram back (the destination in its
header, the same payload), after what the behaviour sends first (malformed or
spoofed datagrams). Standard library only.
"""

import os
import socket
import struct
import sys
import threading
import time

ADDR = None
SPOOF_ADDR = os.environ.get("HOSTILE_SPOOF_ADDR", "")
FLOOD = 4 << 20  # bytes of a flood

GREET_AUTH = b"\x05\x02"
METHOD_NONE = b"\x05\x00"
METHOD_USER = b"\x05\x02"
AUTH_OK = b"\x01\x00"
REPLY_V4 = b"\x05\x00\x00\x01\xc6\x12\x01\x01\x30\x39"  # 198.18.1.1:12345
REPLY_V6 = b"\x05\x00\x00\x04" + socket.inet_pton(socket.AF_INET6, "2001:db8::9") + b"\x04\xd2"
REPLY_NAME255 = b"\x05\x00\x00\x03\xff" + b"r" * 251 + b".tst" + b"\x04\x38"


def rep(code):
    return b"\x05" + bytes([code]) + b"\x00\x01\x00\x00\x00\x00\x00\x00"


# --- the TCP behaviours ---------------------------------------------------------------
# Each is (auth, expect, script): the script a list of actions; "hs" is the
# whole exchange up to and including the reply.
#   ("greet",) ("auth",) ("request",)   read that message from the client
#   ("send", b) ("dribble", b)          write (a byte every 20 ms)
#   ("flood", prefix, byte)             prefix, then FLOOD bytes of byte
#   ("close",) ("rst",) ("half",) ("silent",)
#   ("relay",)                          connect to the request's DST, relay
TCP = {}


def tcp(name, auth, expect, *script):
    TCP[name] = (auth, expect, list(script))


# each step with each way of ending there
_STEPS = {
    "accept": (0, []),
    "greet": (0, [("greet",)]),
    "method": (0, [("greet",), ("send", METHOD_NONE)]),
    "auth": (1, [("greet",), ("send", METHOD_USER), ("auth",), ("send", AUTH_OK)]),
    "request": (0, [("greet",), ("send", METHOD_NONE), ("request",)]),
    "partial": (0, [("greet",), ("send", METHOD_NONE), ("request",), ("send", REPLY_V4[:5])]),
}
for _step, (_auth, _pre) in _STEPS.items():
    tcp("close-" + _step, _auth, "ECONNRESET", *_pre, ("close",))
    tcp("rst-" + _step, _auth, "ECONNRESET", *_pre, ("rst",))
    tcp("half-" + _step, _auth, "ECONNRESET", *_pre, ("half",))
    tcp("silent-" + _step, _auth, "ETIMEDOUT", *_pre, ("silent",))

_REQ = [("greet",), ("send", METHOD_NONE), ("request",)]
# the method reply
tcp("method-version4", 0, "EPROTO", ("greet",), ("send", b"\x04\x00"), ("silent",))
tcp("method-ff", 0, "EACCES", ("greet",), ("send", b"\x05\xff"), ("silent",))
tcp("method-gssapi", 0, "EACCES", ("greet",), ("send", b"\x05\x01"), ("silent",))
tcp("method-unknown", 0, "EACCES", ("greet",), ("send", b"\x05\x7f"), ("silent",))
tcp("method-user-unasked", 0, "EACCES", ("greet",), ("send", METHOD_USER), ("silent",))
tcp("method-none-with-creds", 1, "ok", ("greet",), ("send", METHOD_NONE), ("request",),
    ("send", REPLY_V4), ("relay",))
# RFC 1929
tcp("auth-fail", 1, "EACCES", ("greet",), ("send", METHOD_USER), ("auth",), ("send", b"\x01\x01"),
    ("silent",))
tcp("auth-version5", 1, "EPROTO", ("greet",), ("send", METHOD_USER), ("auth",),
    ("send", b"\x05\x00"), ("silent",))
# the reply
tcp("reply-version4", 0, "EPROTO", *_REQ, ("send", b"\x04" + REPLY_V4[1:]), ("silent",))
tcp("reply-version0-first-byte", 0, "EPROTO", *_REQ, ("send", b"\x00"), ("silent",))
tcp("reply-rsv1", 0, "EPROTO", *_REQ, ("send", b"\x05\x00\x01\x01\0\0\0\0\0\0"), ("silent",))
tcp("reply-atyp2", 0, "EPROTO", *_REQ, ("send", b"\x05\x00\x00\x02\0\0\0\0\0\0"), ("silent",))
tcp("reply-atyp7-then-silent", 0, "EPROTO", *_REQ, ("send", b"\x05\x00\x00\x07"), ("silent",))
tcp("reply-name-len0", 0, "EPROTO", *_REQ, ("send", b"\x05\x00\x00\x03\x00\x00\x50"), ("silent",))
_ERRNO = {1: "ECONNABORTED", 2: "EACCES", 3: "ENETUNREACH", 4: "EHOSTUNREACH",
          5: "ECONNREFUSED", 6: "ETIMEDOUT", 7: "EOPNOTSUPP", 8: "EAFNOSUPPORT",
          9: "EPROTO", 0x80: "EPROTO", 0xff: "EPROTO"}
for _code, _err in _ERRNO.items():
    tcp("rep-%d" % _code, 0, _err, *_REQ, ("send", rep(_code)), ("silent",))
# truncations: the connection closed after some bytes of a message
tcp("trunc-method-1", 0, "ECONNRESET", ("greet",), ("send", b"\x05"), ("close",))
tcp("trunc-auth-1", 1, "ECONNRESET", ("greet",), ("send", METHOD_USER), ("auth",),
    ("send", b"\x01"), ("close",))
for _n in (1, 2, 3, 4, 9):
    tcp("trunc-reply-%d" % _n, 0, "ECONNRESET", *_REQ, ("send", REPLY_V4[:_n]), ("close",))
tcp("trunc-reply-v6-12", 0, "ECONNRESET", *_REQ, ("send", REPLY_V6[:12]), ("close",))
tcp("trunc-reply-name-100", 0, "ECONNRESET", *_REQ, ("send", REPLY_NAME255[:100]), ("close",))
tcp("trunc-reply-5-silent", 0, "ETIMEDOUT", *_REQ, ("send", REPLY_V4[:5]), ("silent",))
tcp("rst-mid-name", 0, "ECONNRESET", *_REQ, ("send", REPLY_NAME255[:50]), ("rst",))
# floods: megabytes where a message should be
tcp("flood-at-accept-zeros", 0, "EPROTO", ("flood", b"", 0), ("silent",))
tcp("flood-at-accept-05", 0, "EACCES", ("flood", b"", 5), ("silent",))
tcp("flood-after-greet", 0, "EPROTO", ("greet",), ("flood", b"", 0x41), ("silent",))
tcp("flood-after-method", 0, "EPROTO", ("greet",), ("send", METHOD_NONE), ("flood", b"", 0xee),
    ("silent",))
tcp("flood-after-request", 0, "EPROTO", *_REQ, ("flood", b"\x05\x00", 0x05), ("silent",))
tcp("flood-after-reply", 0, "data", *_REQ, ("flood", REPLY_V4, 0x5a), ("close",))
# valid but odd: must work
tcp("plain", 0, "ok", *_REQ, ("send", REPLY_V4), ("relay",))
tcp("plain-auth", 1, "ok", ("greet",), ("send", METHOD_USER), ("auth",), ("send", AUTH_OK),
    ("request",), ("send", REPLY_V4), ("relay",))
tcp("dribble", 0, "ok", ("greet",), ("dribble", METHOD_NONE), ("request",),
    ("dribble", REPLY_V4), ("relay",))
tcp("dribble-auth", 1, "ok", ("greet",), ("dribble", METHOD_USER), ("auth",),
    ("dribble", AUTH_OK), ("request",), ("dribble", REPLY_V6), ("relay",))
tcp("bnd-v6", 0, "ok", *_REQ, ("send", REPLY_V6), ("relay",))
tcp("bnd-name255", 0, "ok", *_REQ, ("send", REPLY_NAME255), ("relay",))
tcp("bnd-name255-dribble", 0, "ok", ("greet",), ("send", METHOD_NONE), ("request",),
    ("dribble", REPLY_NAME255[:12]), ("send", REPLY_NAME255[12:]), ("relay",))
tcp("method-and-reply-in-one-write", 0, "ok", ("greet",), ("send", METHOD_NONE + REPLY_V4),
    ("request",), ("relay",))

# --- the UDP behaviours ---------------------------------------------------------------
# (expect, reply, first): the UDP ASSOCIATE reply ("relay" = this proxy's
# relay socket, "relay0" = the same named 0.0.0.0, "ctl-close"/"ctl-rst": a
# working relay whose control connection ends after its first echo), and what
# the relay sends to the client before each echo.
UDP = {}


def udp(name, expect, reply, first=()):
    UDP[name] = (expect, reply, list(first))


def _hdr(atyp_addr, port=7):
    return b"\0\0\0" + atyp_addr + struct.pack("!H", port)


udp("udp-plain", "ok", "relay")
udp("udp-relay-0.0.0.0", "ok", "relay0")
udp("udp-relay-ipv6", "EPROTO", b"\x05\x00\x00\x04" + b"\xfd" + b"\0" * 14 + b"\x09\x9c\x40")
udp("udp-relay-name", "EPROTO", b"\x05\x00\x00\x03\x05relay\x9c\x40")
udp("udp-relay-port0", "EPROTO", "relay-port0")
# 198.18.6.1: an unreachable route in the client's namespace (a datagram
# sent around the proxy to 198.18.2.2 would fail with ENETUNREACH instead)
udp("udp-relay-unreachable", "EHOSTUNREACH", b"\x05\x00\x00\x01\xc6\x12\x06\x01\x9c\x40")
udp("udp-relay-closed-port", "timeout", "relay-closed")
udp("udp-rep-1", "ECONNABORTED", rep(1))
udp("udp-rep-7", "EOPNOTSUPP", rep(7))
udp("udp-reply-version4", "EPROTO", b"\x04" + rep(0)[1:])
udp("udp-reply-silent", "ETIMEDOUT", "silent")
udp("udp-reply-close", "ECONNRESET", "close")
_V4T = b"\x01" + socket.inet_aton("198.18.2.2")
udp("udp-dgram-empty", "ok", "relay", [("relay", b"")])
udp("udp-dgram-short", "ok", "relay", [("relay", b"\0\0\0")])
udp("udp-dgram-frag1", "ok", "relay", [("relay", b"\0\0\x01" + _V4T + b"\0\x07frag")])
udp("udp-dgram-atyp2", "ok", "relay", [("relay", b"\0\0\0\x02" + b"\0" * 6 + b"bad")])
udp("udp-dgram-v4-truncated", "ok", "relay", [("relay", b"\0\0\0\x01\xc6\x12\x02")])
udp("udp-dgram-v6-truncated", "ok", "relay", [("relay", b"\0\0\0\x04" + b"\xfd" * 12)])
udp("udp-dgram-name-truncated", "ok", "relay", [("relay", b"\0\0\0\x03\x40short")])
udp("udp-spoof-port", "ok", "relay", [("spoof-port", _hdr(_V4T) + b"spoofed")])
udp("udp-spoof-addr", "ok", "relay", [("spoof-addr", _hdr(_V4T) + b"spoofed")])
udp("udp-spoof-raw", "ok", "relay", [("spoof-addr", b"raw spoofed payload")])
udp("udp-ctl-close", "reassoc", "ctl-close")
udp("udp-ctl-rst", "reassoc", "ctl-rst")


def say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


# --- helpers --------------------------------------------------------------------------

def read_exact(c, n):
    buf = b""
    while len(buf) < n:
        b = c.recv(n - len(buf))
        if not b:
            raise EOFError
        buf += b
    return buf


def read_greet(c):
    _, n = read_exact(c, 2)
    return read_exact(c, n)


def read_auth(c):
    _, ulen = read_exact(c, 2)
    read_exact(c, ulen)
    (plen,) = read_exact(c, 1)
    read_exact(c, plen)


def read_request(c):
    _, cmd, _, atyp = read_exact(c, 4)
    if atyp == 1:
        host = socket.inet_ntop(socket.AF_INET, read_exact(c, 4))
    elif atyp == 4:
        host = socket.inet_ntop(socket.AF_INET6, read_exact(c, 16))
    else:
        host = read_exact(c, read_exact(c, 1)[0]).decode()
    (port,) = struct.unpack("!H", read_exact(c, 2))
    return cmd, host, port


def hold(c):
    """Reads until the client goes (silence, or after a half-close)."""
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass


def pump(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(c, host, port):
    try:
        up = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        say("relay to %s:%d: %s" % (host, port, e))
        return
    up.settimeout(None)
    t = threading.Thread(target=pump, args=(up, c), daemon=True)
    t.start()
    pump(c, up)
    t.join()
    up.close()


# --- TCP ------------------------------------------------------------------------------

def run_tcp(name, c):
    _, _, script = TCP[name]
    dst = None
    for act in script:
        op = act[0]
        if op == "greet":
            read_greet(c)
        elif op == "auth":
            read_auth(c)
        elif op == "request":
            dst = read_request(c)[1:]
        elif op == "send":
            c.sendall(act[1])
        elif op == "dribble":
            for i in range(len(act[1])):
                c.sendall(act[1][i:i + 1])
                time.sleep(0.02)
        elif op == "flood":
            c.sendall(act[1] + bytes([act[2]]) * FLOOD)
        elif op == "close":
            c.close()
            return
        elif op == "rst":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            return
        elif op == "half":
            c.shutdown(socket.SHUT_WR)
            hold(c)
        elif op == "silent":
            hold(c)
        elif op == "relay":
            relay(c, *dst)


# --- UDP ------------------------------------------------------------------------------

def parse_udp(d):
    """(header length, ATYP+ADDR+PORT bytes) of a client datagram, or None."""
    if len(d) < 4 or d[2] != 0:
        return None
    atyp = d[3]
    alen = {1: 4, 4: 16}.get(atyp)
    if atyp == 3 and len(d) > 4:
        alen = 1 + d[4]
    if alen is None or len(d) < 4 + alen + 2:
        return None
    return 4 + alen + 2, d[3:4 + alen + 2]


def udp_relay(name, c, r, first, end_ctl):
    """Echoes the datagrams r gets while the control connection c lasts."""
    c.settimeout(0.05)
    r.settimeout(0.05)
    spoof = None
    while True:
        try:
            if c.recv(1) == b"":
                break
        except socket.timeout:
            pass
        except OSError:
            break
        try:
            d, src = r.recvfrom(65535)
        except socket.timeout:
            continue
        p = parse_udp(d)
        say("%s datagram %d bytes" % (name, len(d)))
        if p is None:
            continue
        for kind, payload in first:
            if kind == "relay":
                r.sendto(payload, src)
            else:
                if spoof is None:
                    spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    spoof.bind((SPOOF_ADDR if kind == "spoof-addr" else ADDR, 0))
                spoof.sendto(payload, src)
                say("%s spoofed from %s:%d" % ((name,) + spoof.getsockname()))
        time.sleep(0.02)  # the bad ones first, whatever the scheduler does
        r.sendto(b"\0\0\0" + p[1] + d[p[0]:], src)
        if end_ctl:
            if end_ctl == "rst":
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            say("%s control closed" % name)
            break
    r.close()
    if spoof:
        spoof.close()


def run_udp(name, c):
    _, reply, first = UDP[name]
    read_greet(c)
    c.sendall(METHOD_NONE)
    cmd = read_request(c)[0]
    say("%s associate cmd %d" % (name, cmd))
    if isinstance(reply, bytes):
        c.sendall(reply)
        hold(c)
        return
    if reply == "silent":
        hold(c)
        return
    if reply == "close":
        c.close()
        return
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind((ADDR, 0))
    port = r.getsockname()[1]
    if reply == "relay-closed":
        r.close()  # nothing listens at the port named
    addr = b"\0\0\0\0" if reply == "relay0" else socket.inet_aton(ADDR)
    if reply == "relay-port0":
        port = 0
    c.sendall(b"\x05\x00\x00\x01" + addr + struct.pack("!H", port))
    if reply in ("relay-closed", "relay-port0"):
        hold(c)
        r.close()
        return
    end = {"ctl-close": "close", "ctl-rst": "rst"}.get(reply)
    udp_relay(name, c, r, first, end)


def serve(name, c):
    try:
        if name in TCP:
            run_tcp(name, c)
        else:
            run_udp(name, c)
    except (OSError, EOFError) as e:
        say("%s: %s" % (name, e.__class__.__name__))
    finally:
        try:
            c.close()
        except OSError:
            pass


def listen(name, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ADDR, port))
    s.listen(64)

    def loop():
        while True:
            c, _ = s.accept()
            say("%s accept" % name)
            threading.Thread(target=serve, args=(name, c), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def main():
    global ADDR
    if sys.argv[1:] == ["--list"]:
        for name, (auth, expect, _) in TCP.items():
            print("tcp %s %d %s" % (name, auth, expect))
        for name, (expect, _, _) in UDP.items():
            print("udp %s 0 %s" % (name, expect))
        return
    ADDR, base = sys.argv[1], int(sys.argv[2])
    for i, name in enumerate(sys.argv[3:]):
        if name not in TCP and name not in UDP:
            sys.exit("hostile_proxy: unknown behaviour %s" % name)
        listen(name, base + i)
    say("listening")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
