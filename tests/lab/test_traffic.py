# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The traffic helper itself (tests/lab/traffic.py, safety_traffic.py), in a 3-node lab:

    lab/run --nodes 3 -- pytest -q tests/lab/test_traffic.py

The accounting of restarted generators on made-up reports; then plain UDP (no XFRM) between
three nodes while node2 is rebooted (lab-reboot kills its generator) and given a new one:
the pairs without node2 lose nothing, node2's second incarnation loses nothing, the reboot
shows as loss towards node2, and the whole window's capture agrees with the generators' counts.
"""

from __future__ import annotations

import time

from harness import report
from traffic import pair_figures

A, B = "10.0.0.1", "10.0.0.2"


def _report(incarnation, ended, sent, received, max_seq, missing=None, seconds=None):
    found = {"incarnation": incarnation, "ended": ended, "sent": sent, "send_errors": {peer: 0 for peer in sent},
             "received": received, "max_seq": max_seq}
    if ended == "stopped":
        found.update(missing={peer: {inc: [] for inc in by_inc} for peer, by_inc in received.items()},
                     longest_gap={peer: {inc: 0 for inc in by_inc} for peer, by_inc in received.items()},
                     seconds=seconds)
        for peer, by_inc in (missing or {}).items():
            for inc, numbers in by_inc.items():
                found["missing"][peer][inc] = [[number, 1.5] for number in numbers]
                found["longest_gap"][peer][inc] = len(numbers)
    return found


def test_each_incarnation_is_counted_on_its_own():
    """a was killed after its last progress report (sent 40, b got up to 42 of them) and
    restarted; b ran throughout and got 42 + 99 of a's datagrams, a 35 + 90 of b's 150."""
    reports = {
        "a": [_report(1, "killed", {B: 40}, {B: {"1": 35}}, {B: {"1": 35}}),
              _report(2, "stopped", {B: 100}, {B: {"1": 90}}, {B: {"1": 150}}, seconds=2.0)],
        "b": [_report(1, "stopped", {A: 150}, {A: {"1": 42, "2": 99}}, {A: {"1": 42, "2": 100}},
                      missing={A: {"2": [57]}}, seconds=3.0)],
    }
    figures = pair_figures({"a": A, "b": B}, reports)
    a_to_b, b_to_a = figures["pairs"]["a->b"], figures["pairs"]["b->a"]
    assert [(i["incarnation"], i["ended"], i["sent"], i["received"], i["lost"]) for i in a_to_b["incarnations"]] == [
        (1, "killed", 42, 42, 0), (2, "stopped", 100, 99, 1)]
    assert a_to_b["incarnations"][1]["received_by"] == {"1": 99}
    assert (a_to_b["sent"], a_to_b["received"], a_to_b["lost"]) == (142, 141, 1)
    assert a_to_b["missing"] == [[57, 1.5]] and a_to_b["longest_gap"] == 1
    assert (b_to_a["sent"], b_to_a["received"], b_to_a["lost"]) == (150, 125, 25)
    assert b_to_a["incarnations"][0]["received_by"] == {"1": 35, "2": 90}
    # The killed receiver's missing numbers died with it: only the final reports list any.
    assert b_to_a["missing"] == [] and b_to_a["longest_gap"] == 0
    assert (figures["sent"], figures["lost"], figures["seconds"], figures["min_rate_per_pair"]) == (292, 26, 3.0, 47.3)


def test_a_node_rebooted_mid_run(lab_nodes, lab_ipv4, lab_reboot, lab_exec, under_traffic):
    nodes = lab_nodes[:3]
    lab_reboot(*nodes)      # no XFRM entries left by other tests: every datagram is plaintext
    addresses = {node: lab_ipv4[node] for node in nodes}
    with under_traffic(addresses, capture=True, lead=1.5) as window:
        boot_id = lab_exec("node2", "cat", "/proc/sys/kernel/random/boot_id").stdout
        lab_reboot("node2")
        assert lab_exec("node2", "cat", "/proc/sys/kernel/random/boot_id").stdout != boot_id
        window.traffic.restart("node2")
        time.sleep(2.0)
    figures, capture = window.figures, window.capture
    pairs = figures["pairs"]
    report("traffic across a reboot", {
        "pairs": {pair: {k: v for k, v in p.items() if k != "missing"} for pair, p in pairs.items()},
        "seconds": figures["seconds"], "window_seconds": round(window.seconds, 1)})
    assert [r["ended"] for r in window.traffic.ended["node2"]] == ["killed", "stopped"]
    assert capture.esp == [], capture.esp
    for pair, counts in pairs.items():
        src, dst = (addresses[node] for node in pair.split("->"))
        assert counts["sent"] == sum(i["sent"] for i in counts["incarnations"]), (pair, counts)
        assert counts["lost"] == counts["sent"] - counts["received"] == sum(i["lost"] for i in counts["incarnations"])
        # The helper counts every plaintext packet from src to dst: the generators' UDP, and
        # nothing else but ICMP errors (port unreachable from a rebooted node whose receiver
        # has not started yet).
        udp = capture.plaintext_packets("udp", src, dst)
        assert counts["wire"]["plaintext"] - udp == capture.plaintext_packets("icmp", src, dst), (pair, capture.plaintext)
        # Every datagram received crossed the data segment; none was sent twice.
        assert counts["received"] <= udp, (pair, counts)
        if "node2" not in pair:
            # Exactly what the generators sent was on the wire, and all of it arrived.
            assert counts["sent"] >= 100 and counts["lost"] == 0, (pair, counts)
            assert counts["wire"]["plaintext"] == counts["sent"], (pair, counts)
            assert [i["ended"] for i in counts["incarnations"]] == ["stopped"]
        elif pair.startswith("node2->"):
            # Two incarnations of the sender: the killed one's datagrams arrived up to its end,
            # the new one's all arrived.
            first, second = counts["incarnations"]
            assert (first["ended"], second["ended"]) == ("killed", "stopped"), counts
            assert first["received"] > 0, counts
            assert second["received"] > 0 and second["lost"] == 0, counts
        else:
            # One sender, two receiving incarnations: what was sent while node2 was down is lost.
            (only,) = counts["incarnations"]
            assert set(only["received_by"]) == {"1", "2"} and min(only["received_by"].values()) > 0, counts
            assert counts["lost"] > 0, counts
            assert counts["wire"]["plaintext"] <= counts["sent"], counts
