#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Active-mode FTP through a SOCKS5 proxy: Python's ftplib, its control
connection made with CONNECT and each data connection with BIND (the proxy
listens; EPRT gives the FTP server the first reply's address).

  ftp_bind_client.py PROXY_HOST PROXY_PORT FTP_HOST FTP_PORT LIST_DIR RETR_PATH OUT

PROXY_HOST may be IPv6 (the control and BIND connections to the proxy are
then IPv6, whatever FTP_HOST's family). Prints one line per BIND ("bind
bnd=ADDR:PORT peer=ADDR:PORT"), the listing, and "retr bytes=N"; exits 0
when both transfers completed, 1 with a one-line reason.
"""
import ftplib
import socket
import struct
import sys

TIMEOUT = 10


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            fail(f"proxy closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def encode_addr(host, port):
    for fam, atyp in ((socket.AF_INET, 1), (socket.AF_INET6, 4)):
        try:
            return bytes([atyp]) + socket.inet_pton(fam, host) + struct.pack(">H", port)
        except OSError:
            pass
    return b"\x03" + bytes([len(host)]) + host.encode() + struct.pack(">H", port)


def read_reply(s, what):
    head = recv_exact(s, 4)
    if head[0] != 5 or head[3] not in (1, 4):
        fail(f"{what}: unexpected reply head {head.hex()}")
    fam = socket.AF_INET if head[3] == 1 else socket.AF_INET6
    rest = recv_exact(s, 6 if fam == socket.AF_INET else 18)
    if head[1] != 0:
        fail(f"{what}: reply {head[1]}")
    return socket.inet_ntop(fam, rest[:-2]), struct.unpack(">H", rest[-2:])[0]


def socks(proxy, cmd, host, port):
    """A connection to the proxy with the request sent and the (first) reply read."""
    s = socket.create_connection(proxy, timeout=TIMEOUT)
    s.sendall(b"\x05\x01\x00")
    if recv_exact(s, 2) != b"\x05\x00":
        fail("method refused")
    s.sendall(bytes([5, cmd, 0]) + encode_addr(host, port))
    return s, read_reply(s, "CONNECT" if cmd == 1 else "BIND first")


class BoundPort:
    """What ftplib's makeport() returns: accept() waits for BIND's second reply."""

    def __init__(self, s, bnd):
        self.s, self.bnd = s, bnd

    def accept(self):
        peer = read_reply(self.s, "BIND second")
        print(f"bind bnd={self.bnd[0]}:{self.bnd[1]} peer={peer[0]}:{peer[1]}")
        return self.s, peer

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class SocksFTP(ftplib.FTP):
    def __init__(self, proxy):
        super().__init__(timeout=TIMEOUT)
        self.proxy = proxy

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        self.host, self.port = host, port
        self.sock, _ = socks(self.proxy, 1, host, port)
        self.af = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def makeport(self):
        s, (addr, port) = socks(self.proxy, 2, self.host, 0)
        self.voidcmd(f"EPRT |{2 if ':' in addr else 1}|{addr}|{port}|")
        return BoundPort(s, (addr, port))


def main():
    if len(sys.argv) != 8:
        fail("usage: ftp_bind_client.py PROXY_HOST PROXY_PORT FTP_HOST FTP_PORT LIST_DIR RETR_PATH OUT")
    phost, pport, fhost, fport, ldir, rpath, out = sys.argv[1:]
    ftp = SocksFTP((phost, int(pport)))
    try:
        ftp.connect(fhost, int(fport))
        ftp.login()
        ftp.set_pasv(False)
        ftp.retrlines("LIST " + ldir)
        with open(out, "wb") as f:
            ftp.retrbinary("RETR " + rpath, f.write)
            print(f"retr bytes={f.tell()}")
        ftp.quit()
    except (ftplib.Error, OSError) as e:
        fail(f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
