# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Continuous UDP traffic from one lab node to its peers, with sequence numbers.

    python safety_traffic.py --me 10.77.0.1 --peers 10.77.0.2,10.77.0.3 [--rate 50] [--port 47474]

Run in a node (lab-exec) by tests/lab/safety_lab.py. Binds its socket and prints "ready";
on the stdin line "go" sends ``rate`` datagrams per second to every peer (payload: a 4-byte
sequence number) while receiving the peers' datagrams on the same port; on "stop" stops
sending and prints "stopped"; at end of file on stdin keeps receiving for ``--drain``
seconds and prints one JSON object: {"sent": {peer: n}, "send_errors": {peer: n},
"received": {peer: n distinct}, "longest_gap": {peer: n}, "missing": {peer: [[seq, monotonic
time of the datagram received before it], ...up to 20]}, "seconds": s}. Loss from A to B is
A's sent[B] minus B's received[A].
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33


def sent_by_peer_max(numbers) -> int:
    """The highest sequence number received (the peer's last ones may all be lost: see sent)."""
    return max(numbers) if numbers else 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--me", required=True)
    parser.add_argument("--peers", required=True)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--port", type=int, default=47474)
    parser.add_argument("--drain", type=float, default=0.5)
    args = parser.parse_args()
    peers = [peer for peer in args.peers.split(",") if peer]
    family = socket.AF_INET6 if ":" in args.me else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    # Big buffers (forced: root may exceed net.core.[rw]mem_max), so that the generator's own
    # socket is not where datagrams are lost when UML schedules it late.
    for forced, option in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced, 4 << 20)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)
    sock.bind((args.me, args.port))
    sock.setblocking(False)
    sent = {peer: 0 for peer in peers}
    errors = {peer: 0 for peer in peers}
    blocked = {peer: 0 for peer in peers}
    seen = {peer: {} for peer in peers}
    interval = 1.0 / args.rate
    print("ready", flush=True)
    stdin = sys.stdin.fileno()
    pending = b""
    sending = False
    start = next_send = time.monotonic()
    stopping_at = None
    send_seconds = 0.0
    while True:
        now = time.monotonic()
        # A process that was not scheduled in time catches up (at most one second's worth).
        rounds = 0
        while sending and now >= next_send and rounds < args.rate:
            rounds += 1
            for peer in peers:
                try:
                    sock.sendto(struct.pack("!I", sent[peer] + 1), (peer, args.port))
                except BlockingIOError:
                    # The socket's own buffer is full: the datagram never left; it goes next round.
                    blocked[peer] += 1
                    continue
                except OSError:
                    errors[peer] += 1   # refused on the way out (e.g. by XFRM): sent and lost
                sent[peer] += 1
            next_send += interval
        if sending and now - next_send > 1.0:
            next_send = now
        if stopping_at is not None and now >= stopping_at:
            break
        if stopping_at is not None:
            wait = stopping_at - now
        elif sending:
            wait = next_send - now
        else:
            wait = 1.0
        watched = [sock] if stopping_at is not None else [sock, stdin]
        readable = select.select(watched, [], [], max(0.0, wait))[0]
        if stdin in readable:
            chunk = os.read(stdin, 4096)
            if not chunk:
                stopping_at = time.monotonic() + args.drain
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip() == b"go" and not sending:
                    sending, start, next_send = True, time.monotonic(), time.monotonic()
                elif line.strip() == b"stop" and sending:
                    sending = False
                    send_seconds = time.monotonic() - start
                    print("stopped", flush=True)
        if sock in readable:
            while True:
                try:
                    data, source = sock.recvfrom(64)
                except BlockingIOError:
                    break
                if source[0] in seen and len(data) == 4:
                    seen[source[0]][struct.unpack("!I", data)[0]] = time.monotonic()
    seconds = send_seconds or time.monotonic() - start
    longest = {}
    missing = {}
    for peer, numbers in seen.items():
        best = run = 0
        last_time = 0.0
        missing[peer] = []
        for number in range(1, sent_by_peer_max(numbers) + 1):
            if number in numbers:
                run = 0
                last_time = numbers[number]
                continue
            run += 1
            best = max(best, run)
            if len(missing[peer]) < 20:
                missing[peer].append([number, round(last_time, 3)])
        longest[peer] = best
    print(json.dumps({"sent": sent, "send_errors": errors, "send_blocked": blocked, "received": {peer: len(numbers) for peer, numbers in seen.items()},
                      "longest_gap": longest, "missing": missing, "seconds": round(seconds, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
