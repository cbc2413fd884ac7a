#!/usr/bin/env python3
"""A TCP client that sends SIP messages a byte at a time (TCP_NODELAY, one
send per byte): what a slow or hostile stream costs the proxy per read.

    dribble.py HOST PORT SECONDS [CONNS] [PAD]

Each of CONNS connections sends OPTIONS to the proxy itself (answered
locally) with a PAD-byte header, one byte per send, for SECONDS; prints
"bytes=N messages=M answers=A". Loopback only; bounded by SECONDS.
"""
import select
import socket
import sys
import time


def message(i, pad):
    head = (
        f"OPTIONS sip:{HOST}:{PORT} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKdribble{i}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:d@example.com>;tag={i}\r\n"
        f"To: <sip:{HOST}>\r\nCall-ID: dribble-{i}\r\nCSeq: 1 OPTIONS\r\n"
        f"X-Pad: {'x' * pad}\r\nContent-Length: 0\r\n\r\n"
    )
    return head.encode()


HOST, PORT, SECONDS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
CONNS = int(sys.argv[4]) if len(sys.argv) > 4 else 4
PAD = int(sys.argv[5]) if len(sys.argv) > 5 else 1500

socks = []
for _ in range(CONNS):
    s = socket.create_connection((HOST, PORT), timeout=2)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    socks.append(s)
state = [[message(k, PAD), 0] for k in range(CONNS)]
sent = msgs = answers = 0
end = time.monotonic() + SECONDS
n = CONNS
while time.monotonic() < end:
    for k, s in enumerate(socks):
        data, at = state[k]
        try:
            s.send(data[at:at + 1])
        except BlockingIOError:
            continue
        sent += 1
        at += 1
        if at == len(data):
            msgs += 1
            n += 1
            state[k] = [message(n, PAD), 0]
        else:
            state[k][1] = at
    r, _, _ = select.select(socks, [], [], 0)
    for s in r:
        try:
            answers += s.recv(65536).count(b"SIP/2.0 200")
        except BlockingIOError:
            pass
for s in socks:
    s.close()
print(f"bytes={sent} messages={msgs} answers={answers}")
