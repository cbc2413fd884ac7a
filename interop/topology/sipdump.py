#!/usr/bin/env python3
"""interop/topology.sh: the SIP messages in a pcap (tcpdump -w; Ethernet,
Linux cooked or raw IP link types), IPv4 UDP only.

    sipdump.py FILE.pcap OUT.txt OUT.ladder

OUT.txt: per datagram a line "=== SRC:PORT > DST:PORT" and its payload as
sent (CR LF ends every SIP line). OUT.ladder: one line per datagram, fields
separated by TABs: src, dst, start line, CSeq, Call-ID, top Via, Vias (how
many), Route values (joined by " , "), Record-Route values, Contact,
From, To. Compact header names are read as their long forms."""
import socket
import struct
import sys

LONG = {"v": "via", "i": "call-id", "m": "contact", "f": "from", "t": "to", "l": "content-length"}


def datagrams(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        sys.exit(f"{path}: not a pcap file")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    skip = {1: 14, 113: 16, 101: 0, 12: 0}.get(linktype)
    if skip is None:
        sys.exit(f"{path}: link type {linktype} not handled")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if incl < orig or len(pkt) < incl:
            sys.exit(f"{path}: a packet of {orig} bytes was captured cut to {len(pkt)}")
        ip = pkt[skip:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        udp = ip[ihl:total]
        sport, dport = struct.unpack(">HH", udp[:4])
        src = f"{socket.inet_ntoa(ip[12:16])}:{sport}"
        dst = f"{socket.inet_ntoa(ip[16:20])}:{dport}"
        yield src, dst, udp[8:]


def ladder_line(src, dst, payload):
    text = payload.decode("latin-1")
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    # unfold continuation lines
    hdrs = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and hdrs:
            hdrs[-1] = (hdrs[-1][0], hdrs[-1][1] + " " + line.strip())
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            hdrs.append((LONG.get(name, name), value.strip()))

    def all_of(name):
        return [v for n, v in hdrs if n == name]

    def first(name):
        v = all_of(name)
        return v[0] if v else ""

    vias = [x.strip() for v in all_of("via") for x in v.split(",")]
    fields = [src, dst, lines[0], first("cseq"), first("call-id"), vias[0] if vias else "",
              str(len(vias)), " , ".join(all_of("route")), " , ".join(all_of("record-route")),
              first("contact"), first("from"), first("to")]
    return "\t".join(f.replace("\t", " ") for f in fields)


def main():
    pcap, out_txt, out_ladder = sys.argv[1:4]
    with open(out_txt, "wb") as t, open(out_ladder, "w") as ld:
        for src, dst, payload in datagrams(pcap):
            if not payload.strip():
                continue  # keep-alives
            t.write(f"=== {src} > {dst}\n".encode() + payload + b"\n")
            ld.write(ladder_line(src, dst, payload) + "\n")


if __name__ == "__main__":
    main()
