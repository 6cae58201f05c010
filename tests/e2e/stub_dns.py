#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stub name server for the tests whose server resolves names that exist
nowhere (tests/e2e/helpers.bash, stubdns_setup): it runs in a network namespace
that has nothing but loopback, and that namespace's resolv.conf names it, so
every lookup the server makes ends here and none can leave the machine.

    stub_dns.py ADDR PORT LOG [nxdomain|silent]

Listens on ADDR:PORT, UDP and TCP (DNS over TCP: a 2-byte length before each
message). Appends one line per query to LOG, before answering:
    udp|tcp QNAME QTYPE
nxdomain (the default) answers each query NXDOMAIN (RCODE 3: the name does not
exist, so getaddrinfo() says EAI_NONAME at once); silent never answers (a
lookup that hangs until the resolver's timeout). Prints "ready" once both
sockets listen."""
import selectors
import socket
import struct
import sys
import threading


def qname(msg):
    try:
        i, labels = 12, []
        while msg[i]:
            n = msg[i]
            labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        return ".".join(labels) or ".", struct.unpack("!H", msg[i + 1:i + 3])[0]
    except (IndexError, struct.error):
        return "?", 0


def answer(msg):
    """The query back as an NXDOMAIN response: QR, opcode and RD kept, RA set."""
    if len(msg) < 12:
        return b""
    flags = struct.unpack("!H", msg[2:4])[0]
    flags = 0x8000 | (flags & 0x7900) | 0x0080 | 3
    return msg[:2] + struct.pack("!H", flags) + msg[4:6] + b"\0\0\0\0\0\0" + msg[12:]


def main():
    addr, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    mode = sys.argv[4] if len(sys.argv) > 4 else "nxdomain"
    if mode not in ("nxdomain", "silent"):
        sys.exit("stub_dns.py: MODE is nxdomain or silent, not %r" % mode)
    lock = threading.Lock()

    def record(proto, msg):
        name, qtype = qname(msg)
        with lock, open(log, "a") as f:
            f.write("%s %s %d\n" % (proto, name, qtype))
        return answer(msg) if mode == "nxdomain" else b""

    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    u = socket.socket(family, socket.SOCK_DGRAM)
    u.bind((addr, port))
    t = socket.socket(family, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, port))
    t.listen(64)

    def tcp_client(c):
        c.settimeout(10)
        try:
            while True:
                hdr = c.recv(2, socket.MSG_WAITALL)
                if len(hdr) < 2:
                    break
                r = record("tcp", c.recv(struct.unpack("!H", hdr)[0], socket.MSG_WAITALL))
                if r:
                    c.sendall(struct.pack("!H", len(r)) + r)
        except OSError:
            pass
        c.close()

    sel = selectors.DefaultSelector()
    sel.register(u, selectors.EVENT_READ)
    sel.register(t, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.fileobj is u:
                msg, src = u.recvfrom(65535)
                r = record("udp", msg)
                if r:
                    u.sendto(r, src)
            else:
                c, _ = t.accept()
                threading.Thread(target=tcp_client, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
