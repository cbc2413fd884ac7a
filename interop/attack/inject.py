#!/usr/bin/env python3
"""An off-path response injector beside a ringing call (interop/attack.sh,
check 5). Two sockets in one process:

- the callee (--uas IP:PORT, registered there beforehand): takes the
  INVITE siphon forwards, answers 180 Ringing, keeps ringing for --ring
  seconds, then answers 200 OK (resent every 0.5 s until the ACK comes),
  takes the ACK and answers the BYE;
- the forger (--forger IP, a third address): while the call rings it sends
  forged "200 OK" responses to siphon (--proxy) for the INVITE siphon
  forwarded, each with a guessed top Via branch, a To tag starting with
  "forged" and an SDP and Contact naming the forger.

The forger is given everything a sender that does not see siphon's traffic
could hope to learn or guess (the Call-ID, CSeq, From, To and the caller's
Via are copied from the INVITE as the callee received it: the worst case,
say a Call-ID leaked elsewhere); only siphon's branch must be guessed. A
stateful branch is z9hG4bKsf<loop:16 hex>.<shard>.<slot>.<gen>.<leg>.<tag:16
hex>; the guesses:

  random  random loop part, shard 0-1, slot 0-3, generation 0-2, leg 0,
          random tag (24)
  loop    the same with the real loop part copied (it is not keyed, so an
          attacker can compute it) (24)
  exact   the real branch with only the tag replaced by a random one
          (--exact, default 16)

It prints the real branch, what it sent and what the callee saw, as
"key=value" lines, and exits 0 if the call went through (ACK and BYE
received). Every wait is bounded (--timeout in all)."""

import argparse
import os
import random
import re
import socket
import sys
import time


def parse(data):
    text = data.decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers, body


def values(headers, *names):
    names = {n.lower() for n in names}
    return [v for n, v in headers if n.lower() in names]


def response(status, headers, to_tag, contact, body=""):
    out = [f"SIP/2.0 {status}"]
    for v in values(headers, "Via", "v"):
        out.append(f"Via: {v}")
    for v in values(headers, "Record-Route"):
        out.append(f"Record-Route: {v}")
    out.append(f"From: {values(headers, 'From', 'f')[0]}")
    to = values(headers, "To", "t")[0]
    if to_tag and ";tag=" not in to:
        to += f";tag={to_tag}"
    out.append(f"To: {to}")
    out.append(f"Call-ID: {values(headers, 'Call-ID', 'i')[0]}")
    out.append(f"CSeq: {values(headers, 'CSeq')[0]}")
    if contact:
        out.append(f"Contact: <{contact}>")
    if body:
        out.append("Content-Type: application/sdp")
    out.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(out) + "\r\n\r\n" + body).encode()


def sdp(ip):
    return (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )


def hex16():
    return "%016x" % random.getrandbits(64)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--uas", required=True, help="IP:PORT")
    p.add_argument("--forger", required=True, help="IP")
    p.add_argument("--proxy", required=True, help="IP:PORT")
    p.add_argument("--ring", type=float, default=1.0)
    p.add_argument("--exact", type=int, default=16)
    p.add_argument("--timeout", type=float, default=15.0)
    a = p.parse_args()
    random.seed(os.urandom(16))
    uip, uport = a.uas.rsplit(":", 1)
    pip, pport = a.proxy.rsplit(":", 1)
    proxy = (pip, int(pport))
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind((uip, int(uport)))
    forger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    forger.bind((a.forger, 0))
    print("ready", flush=True)
    end = time.monotonic() + a.timeout
    my_tag = "uas" + hex16()[:8]
    contact = f"sip:carol@{a.uas}"

    def recv(until):
        while True:
            left = min(until, end) - time.monotonic()
            if left <= 0:
                return None
            uas.settimeout(left)
            try:
                data, src = uas.recvfrom(65535)
            except socket.timeout:
                return None
            return parse(data) + (src,)

    # 1. The INVITE.
    invite = None
    while invite is None:
        m = recv(end)
        if m is None:
            print("error=no INVITE reached the callee", flush=True)
            return 1
        if m[0].startswith("INVITE "):
            invite = m
    start, headers, _, src = invite
    vias = values(headers, "Via", "v")
    top = vias[0]
    branch = re.search(r";branch=([^;,\s]+)", top).group(1)
    print(f"branch={branch}", flush=True)
    uas.sendto(response("180 Ringing", headers, my_tag, contact), src)

    # 2. The forgeries, while it rings. Same message as the callee's 200 but
    # for the top Via's branch, the To tag and the forger's Contact and SDP.
    time.sleep(0.2)
    mt = re.match(r"z9hG4bKsf([0-9a-f]{16})\.([0-9a-f]+)\.([0-9a-f]+)\.([0-9a-f]+)\.([0-9a-f]+)\.([0-9a-f]{16})$", branch)
    guesses = []
    for kind in ("random", "loop"):
        for shard in range(2):
            for slot in range(4):
                for gen in range(3):
                    loop = hex16() if kind == "random" or not mt else mt.group(1)
                    guesses.append((kind, f"z9hG4bKsf{loop}.{shard:x}.{slot:x}.{gen:x}.0.{hex16()}"))
    if mt:
        prefix = branch[: -16]
        for _ in range(a.exact):
            guesses.append(("exact", prefix + hex16()))
    sent = {"random": 0, "loop": 0, "exact": 0}
    for kind, guess in guesses:
        fh = [(n, v) for n, v in headers]
        first = True
        for i, (n, v) in enumerate(fh):
            if n.lower() in ("via", "v") and first:
                fh[i] = (n, v.replace(branch, guess))
                first = False
        forged = response(
            "200 OK", fh, "forged" + hex16()[:8], f"sip:forger@{a.forger}:5060", sdp(a.forger)
        )
        forger.sendto(forged, proxy)
        sent[kind] += 1
    print(f"forged={sum(sent.values())} forged_random={sent['random']} forged_loop={sent['loop']} forged_exact={sent['exact']}", flush=True)

    # 3. Keep ringing (an INVITE retransmission gets the 180 again), then
    # the real 200 until the ACK.
    ring_end = time.monotonic() + a.ring
    while time.monotonic() < ring_end:
        m = recv(ring_end)
        if m and m[0].startswith("INVITE "):
            uas.sendto(response("180 Ringing", headers, my_tag, contact), src)
    ok = response("200 OK", headers, my_tag, contact, sdp(uip))
    acked = False
    for _ in range(8):
        uas.sendto(ok, src)
        t = time.monotonic() + 0.5
        while True:
            m = recv(t)
            if m is None:
                break
            if m[0].startswith("ACK "):
                acked = True
                break
        if acked or time.monotonic() > end:
            break
    print(f"ack={int(acked)}", flush=True)

    # 4. The BYE.
    bye = False
    while not bye:
        m = recv(end)
        if m is None:
            break
        if m[0].startswith("BYE "):
            uas.sendto(response("200 OK", m[1], None, None), m[3])
            bye = True
    print(f"bye={int(bye)}", flush=True)
    return 0 if acked and bye else 1


if __name__ == "__main__":
    sys.exit(main())
