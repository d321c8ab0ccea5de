# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Continuous UDP traffic from one lab node to its peers, with sequence numbers.

    python safety_traffic.py --me 10.77.0.1 --peers 10.77.0.2,10.77.0.3 [--rate 50] [--port 47474]
                             [--incarnation 1] [--joined] [--progress 0.1]

Run in a node (lab-exec) by tests/lab/traffic.py. Binds its socket and prints "ready"; on the
stdin line "go" sends ``rate`` datagrams per second to every peer (payload: its incarnation and a
sequence number from 1, 4 bytes each) while receiving the peers' datagrams on the same port; on
"stop" stops sending and prints "stopped"; at end of file on stdin keeps receiving for ``--drain``
seconds and prints its final report.

The incarnation tells the generators a node ran one after the other apart: a node rebooted
mid-run (lab-reboot kills its generator) gets a new one whose sequence numbers start again at 1,
and its receivers count each incarnation of a peer on its own. What a killed generator counted
is in its last progress report (one every ``--progress`` seconds).

Reports, one JSON object a line: {"final": false|true, "incarnation": n, "t": monotonic time,
"sent": {peer: n}, "send_errors": {peer: n}, "send_blocked": {peer: n}, "received": {peer:
{incarnation: n distinct}}, "max_seq": {peer: {incarnation: n}}}, and in the final one also
"longest_gap": {peer: {incarnation: n}}, "missing": {peer: {incarnation: [[seq, monotonic time of
the datagram received before it], ...up to 20]}} and "seconds" (of sending). Gaps are counted
from sequence number 1, or with --joined (a generator started while its peers were already
sending) from the first number received. Loss from A to B is A's sent[B] minus what B received
from A, incarnation by incarnation (tests/lab/traffic.py).
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
PAYLOAD = struct.Struct("!II")      # incarnation, sequence number
MISSING_KEPT = 20


def _report(final, args, sent, errors, blocked, seen):
    return {"final": final, "incarnation": args.incarnation, "t": round(time.monotonic(), 3),
            "sent": sent, "send_errors": errors, "send_blocked": blocked,
            "received": {peer: {inc: len(numbers) for inc, numbers in by_inc.items()} for peer, by_inc in seen.items()},
            "max_seq": {peer: {inc: max(numbers) for inc, numbers in by_inc.items()} for peer, by_inc in seen.items()}}


def _gaps(numbers, joined):
    """(longest run of missing numbers, [[number, time of the one received before it], ...])."""
    longest = run = 0
    last_time = 0.0
    missing = []
    for number in range(min(numbers) if joined else 1, max(numbers) + 1):
        if number in numbers:
            run = 0
            last_time = numbers[number]
            continue
        run += 1
        longest = max(longest, run)
        if len(missing) < MISSING_KEPT:
            missing.append([number, round(last_time, 3)])
    return longest, missing


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--me", required=True)
    parser.add_argument("--peers", required=True)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--port", type=int, default=47474)
    parser.add_argument("--drain", type=float, default=0.5)
    parser.add_argument("--incarnation", type=int, default=1)
    parser.add_argument("--joined", action="store_true")
    parser.add_argument("--progress", type=float, default=0.1)
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
    seen = {peer: {} for peer in peers}      # {peer: {incarnation (text): {seq: time received}}}
    interval = 1.0 / args.rate
    print("ready", flush=True)
    stdin = sys.stdin.fileno()
    pending = b""
    sending = False
    start = next_send = next_progress = time.monotonic()
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
                    sock.sendto(PAYLOAD.pack(args.incarnation, sent[peer] + 1), (peer, args.port))
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
        if args.progress and now >= next_progress:
            print(json.dumps(_report(False, args, sent, errors, blocked, seen)), flush=True)
            next_progress = now + args.progress
        if stopping_at is not None and now >= stopping_at:
            break
        if stopping_at is not None:
            wait = stopping_at - now
        elif sending:
            wait = next_send - now
        else:
            wait = 1.0
        if args.progress:
            wait = min(wait, next_progress - now)
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
                if source[0] in seen and len(data) == PAYLOAD.size:
                    incarnation, number = PAYLOAD.unpack(data)
                    seen[source[0]].setdefault(str(incarnation), {})[number] = time.monotonic()
    final = _report(True, args, sent, errors, blocked, seen)
    final["longest_gap"], final["missing"] = {}, {}
    for peer, by_inc in seen.items():
        gaps = {inc: _gaps(numbers, args.joined) for inc, numbers in by_inc.items()}
        final["longest_gap"][peer] = {inc: gap[0] for inc, gap in gaps.items()}
        final["missing"][peer] = {inc: gap[1] for inc, gap in gaps.items()}
    final["seconds"] = round(send_seconds or time.monotonic() - start, 2)
    print(json.dumps(final), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
