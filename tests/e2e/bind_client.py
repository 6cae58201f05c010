#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A SOCKS5 BIND test client and peer for tests/e2e/server_bind.bats.

  bind_client.py PROXY_HOST PORT [--expect ADDR|NAME] [--peer-from ADDR]... [--no-peer]
                 [--connect-to ADDR]
                 [--user U --password P]

Sends BIND (DST = --expect, default 0.0.0.0:0: an IPv4 or IPv6 address, else a
name), over IPv6 when PROXY_HOST is an IPv6 address; checks the first reply, then
connects a peer to the announced address from each --peer-from source address
in turn (an unexpected one must be closed without a second reply; with
--connect-to, to that address and the announced port), checks the second
reply names the accepted peer, and exchanges data both ways. With
--no-peer it waits for the failure reply instead. Prints what it saw, one
fact per line; exits 0 when everything matched, 1 with a one-line reason.
"""
import argparse
import socket
import struct
import sys


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            fail(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_reply(s):
    head = recv_exact(s, 4)
    if head[0] != 5 or head[3] not in (1, 4):
        fail(f"unexpected reply head {head.hex()}")
    fam = socket.AF_INET if head[3] == 1 else socket.AF_INET6
    rest = recv_exact(s, 6 if fam == socket.AF_INET else 18)
    return head[1], socket.inet_ntop(fam, rest[:-2]), struct.unpack(">H", rest[-2:])[0]


def encode_addr(host):
    """SOCKS5 ATYP and address for an IPv4 or IPv6 address or a name."""
    for fam, atyp in ((socket.AF_INET, 1), (socket.AF_INET6, 4)):
        try:
            return bytes([atyp]) + socket.inet_pton(fam, host)
        except OSError:
            pass
    return b"\x03" + bytes([len(host)]) + host.encode()


def hostport(addr, port):
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--expect", default="0.0.0.0")
    ap.add_argument("--peer-from", action="append", default=[])
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--connect-to", help="the peer connects here, not to the reply's address")
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--user")
    ap.add_argument("--password")
    a = ap.parse_args()

    c = socket.create_connection((a.host, a.port), timeout=a.timeout)
    print("control " + hostport(*c.getsockname()[:2]))
    method = b"\x02" if a.user else b"\x00"
    c.sendall(b"\x05\x01" + method)
    if recv_exact(c, 2) != b"\x05" + method:
        fail("method refused")
    if a.user:
        u, p = a.user.encode(), a.password.encode()
        c.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
        if recv_exact(c, 2) != b"\x01\x00":
            fail("authentication refused")
    c.sendall(b"\x05\x02\x00" + encode_addr(a.expect) + b"\x00\x00")
    rep, addr, port = read_reply(c)
    print(f"first rep={rep} bnd={hostport(addr, port)}")
    if rep != 0:
        fail(f"first reply {rep}")
    if addr in ("0.0.0.0", "::") or port == 0:
        fail("first reply does not name a real address")
    if a.no_peer:
        rep, _, _ = read_reply(c)
        print(f"second rep={rep}")
        sys.exit(0 if rep != 0 else 1)
    peer = None
    to = a.connect_to or addr
    for src in a.peer_from or ["::1" if ":" in to else "127.0.0.1"]:
        p = socket.socket(socket.AF_INET6 if ":" in to else socket.AF_INET)
        p.settimeout(a.timeout)
        p.bind((src, 0))
        p.connect((to, port))
        c.settimeout(0.5)
        try:
            rep, paddr, pport = read_reply(c)
        except socket.timeout:
            print(f"peer {src}: no second reply")
            p.settimeout(1)
            if p.recv(1) != b"":
                fail(f"peer {src} was not closed")
            print(f"peer {src}: closed")
            p.close()
            continue
        print(f"second rep={rep} peer={hostport(paddr, pport)}")
        if (paddr, pport) != p.getsockname()[:2]:
            fail(f"second reply names {paddr}:{pport}, the peer is {p.getsockname()}")
        peer = p
        break
    if not peer:
        fail("no peer was accepted")
    c.settimeout(a.timeout)
    peer.sendall(b"from-peer")
    if recv_exact(c, 9) != b"from-peer":
        fail("peer -> client data lost")
    c.sendall(b"from-client")
    if recv_exact(peer, 11) != b"from-client":
        fail("client -> peer data lost")
    print("relayed both ways")


if __name__ == "__main__":
    main()
