#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A slow name server for tests: answers every A query for NAME with ADDR and
every other query with no data (NOERROR), each one DELAY_MS after it came.
Prints "ready" once bound, then one line per query: "query QTYPE QNAME".
argv: LISTEN_ADDR NAME ADDR DELAY_MS"""
import socket
import struct
import sys
import threading


def answer(query, name, addr):
    qid, _flags, qd = struct.unpack("!HHH", query[:6])
    i, labels = 12, []
    while query[i]:
        labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
        i += 1 + query[i]
    qtype = struct.unpack("!H", query[i + 1:i + 3])[0]
    question = query[12:i + 5]
    qname = ".".join(labels)
    an = b""
    if qtype == 1 and qname.lower() == name:
        an = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(addr)
    head = struct.pack("!HHHHHH", qid, 0x8180, 1, 1 if an else 0, 0, 0)
    return qtype, qname, head + question + an


def main():
    listen, name, addr, delay = sys.argv[1], sys.argv[2].lower(), sys.argv[3], int(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((listen, 53))
    print("ready", flush=True)
    while True:
        query, src = s.recvfrom(4096)
        try:
            qtype, qname, reply = answer(query, name, addr)
        except (IndexError, struct.error):
            continue
        print(f"query {qtype} {qname}", flush=True)
        threading.Timer(delay / 1000.0, s.sendto, (reply, src)).start()


if __name__ == "__main__":
    main()
