#!/usr/bin/env python3
"""A UDP request flood from one address at a steady rate (interop/attack.sh,
check 4): what sipsak -F does, but paced, so that the rate holds for the
whole run instead of one burst that mostly dies in the kernel's socket
buffers.

    flood.py --src 127.0.5.5 --dst 127.0.5.1:5060 --rate 25000 --seconds 8

Sends OPTIONS sip:HOST (each its own Call-ID, branch and From tag) from one
socket bound to --src, --rate per second for --seconds, and prints one line:

    flood: sent N in T s = R/s (errors E)

Bounded: at most rate * seconds datagrams, and it stops after seconds + 5
whatever it has sent. Replies are never read (siphon answers the first
ones, then drops the source)."""

import argparse
import socket
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True, help="HOST:PORT")
    p.add_argument("--rate", type=int, default=25000)
    p.add_argument("--seconds", type=float, default=8.0)
    a = p.parse_args()
    host, port = a.dst.rsplit(":", 1)
    dst = (host, int(port))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.src, 0))
    sport = s.getsockname()[1]
    head = (
        f"OPTIONS sip:{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {a.src}:{sport};rport;branch=z9hG4bKflood"
    ).encode()
    mid = f"\r\nFrom: <sip:flood@{a.src}>;tag=f".encode()
    tail = (
        f"\r\nTo: <sip:{host}>\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        f"User-Agent: flood.py\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    total = int(a.rate * a.seconds)
    sent = errors = 0
    t0 = time.monotonic()
    deadline = t0 + a.seconds + 5
    while sent < total:
        now = time.monotonic()
        if now > deadline:
            break
        due = min(total, int((now - t0) * a.rate) + 1)
        while sent < due:
            n = b"%x" % sent
            msg = head + n + mid + n + b"\r\nCall-ID: flood" + n + tail
            try:
                s.sendto(msg, dst)
            except OSError:
                errors += 1
            sent += 1
        time.sleep(0.0005)
    el = time.monotonic() - t0
    print(f"flood: sent {sent} in {el:.2f} s = {sent / el:.0f}/s (errors {errors})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
