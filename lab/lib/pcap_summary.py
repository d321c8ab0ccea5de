"""Summarise a pcap from the lab's data segment as one JSON line.

    python pcap_summary.py CAPTURE.pcap ADDRESSES_FILE [DROPPED]

Counts only IPv4/IPv6 packets whose source and destination are both node data
addresses (one address per line in ADDRESSES_FILE): ESP per (src, dst, spi),
everything else per (src, dst, proto). Neighbour discovery and router
messages are ignored. Non-first IPv4 fragments are not counted separately.
Reads classic pcap (any byte order, micro- or nanosecond) and pcapng, with
Ethernet, Linux cooked (SLL, SLL2) or raw IP link types. DROPPED, what the
capturing tcpdump said the kernel dropped, is passed on as "dropped" (null when
not a number).
"""

import ipaddress
import json
import struct
import sys
from collections import Counter

PROTO_NAMES = {1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre",
               50: "esp", 51: "ah", 58: "icmp6", 103: "pim", 132: "sctp"}
IPV6_EXT_HEADERS = {0, 43, 60}      # hop-by-hop, routing, destination options
ICMP6_IGNORED = {133, 134, 135, 136, 137}   # RS, RA, NS, NA, redirect
ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x86DD, 0x8100, 0x88A8


def read_packets(data):
    """Yield (linktype, frame bytes) for every packet of a pcap or pcapng file."""
    if len(data) < 4:
        return
    magic = data[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        yield from _read_pcapng(data)
        return
    for endian in "<>":
        (m,) = struct.unpack(endian + "I", magic)
        if m in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise ValueError("not a pcap file")
    if len(data) < 24:
        return
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        off += 16
        yield linktype, data[off:off + incl]
        off += incl


def _read_pcapng(data):
    endian, linktypes, off = "<", [], 0
    while off + 12 <= len(data):
        btype = struct.unpack(endian + "I", data[off:off + 4])[0]
        if btype == 0x0A0D0D0A:         # section header: byte order may change
            endian = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes = []
        blen = struct.unpack(endian + "I", data[off + 4:off + 8])[0]
        if blen < 12:
            break
        body = data[off + 8:off + blen - 4]
        if btype == 1:                  # interface description
            linktypes.append(struct.unpack(endian + "H", body[:2])[0])
        elif btype == 6:                # enhanced packet
            fields = struct.unpack(endian + "IIII", body[:16])   # ifid, ts high, ts low, caplen
            ifid, caplen = fields[0], fields[3]
            if ifid < len(linktypes):
                yield linktypes[ifid], body[20:20 + caplen]
        elif btype == 3 and linktypes:  # simple packet
            yield linktypes[0], body[4:]
        off += blen


def l3_payload(linktype, frame):
    """Return (ethertype, bytes from the IP header on) or None."""
    if linktype == 1:                   # Ethernet
        if len(frame) < 14:
            return None
        etype, off = struct.unpack("!H", frame[12:14])[0], 14
        while etype in (ETH_P_8021Q, ETH_P_8021AD) and len(frame) >= off + 4:
            etype, off = struct.unpack("!H", frame[off + 2:off + 4])[0], off + 4
        return etype, frame[off:]
    if linktype == 113 and len(frame) >= 16:    # Linux cooked v1
        return struct.unpack("!H", frame[14:16])[0], frame[16:]
    if linktype == 276 and len(frame) >= 20:    # Linux cooked v2
        return struct.unpack("!H", frame[0:2])[0], frame[20:]
    if linktype in (101, 12, 14) and frame:     # raw IP
        return (ETH_P_IP if frame[0] >> 4 == 4 else ETH_P_IPV6), frame
    return None


def classify(etype, pkt):
    """Return (src, dst, proto number, l4 bytes) or None for non-IP / unparsable packets."""
    if etype == ETH_P_IP and len(pkt) >= 20 and pkt[0] >> 4 == 4:
        ihl = (pkt[0] & 0x0F) * 4
        frag_off = struct.unpack("!H", pkt[6:8])[0] & 0x1FFF
        if frag_off:
            return None
        return (ipaddress.IPv4Address(pkt[12:16]), ipaddress.IPv4Address(pkt[16:20]),
                pkt[9], pkt[ihl:])
    if etype == ETH_P_IPV6 and len(pkt) >= 40 and pkt[0] >> 4 == 6:
        nxt, off = pkt[6], 40
        while True:
            if nxt in IPV6_EXT_HEADERS and len(pkt) >= off + 2:
                nxt, off = pkt[off], off + (pkt[off + 1] + 1) * 8
            elif nxt == 44 and len(pkt) >= off + 8:     # fragment header
                if struct.unpack("!H", pkt[off + 2:off + 4])[0] & 0xFFF8:
                    return None
                nxt, off = pkt[off], off + 8
            else:
                break
        return (ipaddress.IPv6Address(pkt[8:24]), ipaddress.IPv6Address(pkt[24:40]),
                nxt, pkt[off:])
    return None


def summarise(data, nodes):
    esp, plain = Counter(), Counter()
    for linktype, frame in read_packets(data):
        l3 = l3_payload(linktype, frame)
        if l3 is None:
            continue
        parsed = classify(*l3)
        if parsed is None:
            continue
        src, dst, proto, l4 = parsed
        if src not in nodes or dst not in nodes:
            continue
        if proto == 50:
            spi = "0x%08x" % struct.unpack("!I", l4[:4])[0] if len(l4) >= 4 else "unknown"
            esp[(str(src), str(dst), spi)] += 1
        elif proto == 58 and l4 and l4[0] in ICMP6_IGNORED:
            continue
        else:
            plain[(str(src), str(dst), PROTO_NAMES.get(proto, "proto-%d" % proto))] += 1
    return {
        "esp": [{"src": s, "dst": d, "spi": spi, "packets": n}
                for (s, d, spi), n in sorted(esp.items())],
        "plaintext": [{"src": s, "dst": d, "proto": p, "packets": n}
                      for (s, d, p), n in sorted(plain.items())],
    }


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit("usage: pcap_summary.py CAPTURE ADDRESSES_FILE [DROPPED]")
    with open(argv[2]) as f:
        nodes = {ipaddress.ip_address(line.strip()) for line in f if line.strip()}
    with open(argv[1], "rb") as f:
        data = f.read()
    summary = summarise(data, nodes)
    summary["dropped"] = int(argv[3]) if len(argv) == 4 and argv[3].isdigit() else None
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv)
