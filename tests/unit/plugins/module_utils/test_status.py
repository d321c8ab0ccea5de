# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verdicts of the status report from xfrm_info results."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._controller.status import (
    VERDICT_KEY_MISMATCH,
    VERDICT_MISSING_SA,
    VERDICT_NO_POLICY,
    VERDICT_OK,
    VERDICT_REBOOTED,
    VERDICT_SEQUENCE_RESTARTED,
    mesh_status,
    problems,
    render_status,
    summary,
)

A, B = "10.77.0.1", "10.77.0.2"
SPI_AB, SPI_BA = 0x3916BADD, 0x31BC5CA4


def node(local, peer, out_spi, in_spi, out_fp, in_fp):
    return {
        "policies": [{"dir": "out", "dst": peer + "/32", "tmpl_src": local, "tmpl_dst": peer, "tmpl_spi": out_spi},
                     {"dir": "in", "src": peer + "/32", "tmpl_src": peer, "tmpl_dst": local, "tmpl_spi": 0}],
        "sas": [{"src": local, "dst": peer, "spi": "0x%08x" % out_spi, "direction": "out", "fingerprint": out_fp,
                 "packets": 3, "bytes": 300},
                {"src": peer, "dst": local, "spi": "0x%08x" % in_spi, "direction": "in", "fingerprint": in_fp,
                 "packets": 3, "bytes": 300}],
        "xfrm_stat": {"XfrmInNoStates": 0, "XfrmOutPolBlock": 2},
    }


def converged():
    return {"node1": node(A, B, SPI_AB, SPI_BA, "sha256:ab", "sha256:ba"),
            "node2": node(B, A, SPI_BA, SPI_AB, "sha256:ba", "sha256:ab")}


ADDRESSES = {"node1": [A], "node2": [B]}


def verdicts(nodes):
    report = mesh_status(nodes, ADDRESSES)
    return {host: [pair["verdict"] for pair in report[host]["pairs"]] for host in report}


def test_converged_pair_is_ok_and_errors_are_the_non_zero_ones():
    report = mesh_status(converged(), ADDRESSES)
    assert verdicts(converged()) == {"node1": [VERDICT_OK], "node2": [VERDICT_OK]}
    assert report["node1"]["errors"] == {"XfrmOutPolBlock": 2}
    assert summary(report) == {VERDICT_OK: 2}
    assert any("spi 0x3916badd" in line and "ok" in line for line in render_status(report))


def test_missing_out_policy_is_plaintext():
    nodes = converged()
    nodes["node1"]["policies"] = [p for p in nodes["node1"]["policies"] if p["dir"] != "out"]
    assert verdicts(nodes)["node1"] == [VERDICT_NO_POLICY]


def test_missing_sa_on_either_side():
    nodes = converged()
    nodes["node2"]["sas"] = [sa for sa in nodes["node2"]["sas"] if sa["direction"] != "in"]
    assert verdicts(nodes) == {"node1": [VERDICT_MISSING_SA], "node2": [VERDICT_OK]}
    nodes = converged()
    nodes["node1"]["sas"] = [sa for sa in nodes["node1"]["sas"] if sa["direction"] != "out"]
    assert verdicts(nodes)["node1"] == [VERDICT_MISSING_SA]


def test_key_mismatch():
    nodes = copy.deepcopy(converged())
    nodes["node2"]["sas"][1]["fingerprint"] = "sha256:other"
    assert verdicts(nodes) == {"node1": [VERDICT_KEY_MISMATCH], "node2": [VERDICT_OK]}


BOOT_1, BOOT_2, OLD_2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", \
    "0ld00000-2222-4222-8222-222222222222"


def keyed(nodes):
    """Both nodes keyed with each other's current boot ids."""
    nodes["node1"].update(boot_id=BOOT_1, keyed_boot_id=BOOT_1, keyed_peers={"node2": BOOT_2})
    nodes["node2"].update(boot_id=BOOT_2, keyed_boot_id=BOOT_2, keyed_peers={"node1": BOOT_1})
    return nodes


def test_a_member_rebooted_since_its_peers_keyed_it_is_named():
    nodes = keyed(converged())
    assert verdicts(nodes) == {"node1": [VERDICT_OK], "node2": [VERDICT_OK]}
    # node2 rebooted: its boot id changed, its own record and node1's name the old one.
    nodes["node2"].update(boot_id=BOOT_2.replace("2", "3"))
    report = mesh_status(nodes, ADDRESSES)
    assert verdicts(nodes) == {"node1": [VERDICT_REBOOTED], "node2": [VERDICT_REBOOTED]}
    assert [pair["reason"] for pair in report["node1"]["pairs"]] == [
        "node2 rebooted since it was keyed (boot id 33333333..., keyed for 22222222...)"]
    # node2 was keyed again over its new boot, node1 was not (outside a --limit run):
    nodes["node2"].update(keyed_boot_id=nodes["node2"]["boot_id"])
    reasons = [pair["reason"] for pair in mesh_status(nodes, ADDRESSES)["node1"]["pairs"]]
    assert reasons == ["node2 rebooted since node1 keyed it (boot id 33333333..., keyed for 22222222...)"]


def test_problems_name_every_pair_that_is_not_ok_and_why():
    nodes = converged()
    nodes["node2"]["sas"] = [sa for sa in nodes["node2"]["sas"] if sa["direction"] != "in"]
    assert problems(mesh_status(nodes, ADDRESSES)) == [
        "node1 -> node2 (10.77.0.1 -> 10.77.0.2): missing SA: node2 has no IN SA 0x3916badd from node1: it drops "
        "that traffic"]
    assert problems(mesh_status(converged(), ADDRESSES)) == []


def _sequences(nodes, sent, seen, replay_errors, integrity_errors=0):
    """node1's OUT SA has sent up to ``sent``; node2's IN SA from node1 has accepted up to
    ``seen`` and dropped ``replay_errors`` packets as replays, ``integrity_errors`` others."""
    nodes["node1"]["sas"][0].update(sequence_sent=sent, sequence_seen=0)
    nodes["node2"]["sas"][1].update(sequence_sent=0, sequence_seen=seen, replay_errors=replay_errors,
                                    integrity_errors=integrity_errors)
    return nodes


@pytest.mark.parametrize("replay_errors, integrity_errors", [(12, 0), (0, 12), (5, 7)])
def test_an_out_sa_re_added_under_the_peers_window_is_named(replay_errors, integrity_errors):
    # Within the window the restarted numbers are replays; below it (ESN) the receiver takes
    # them for the next cycle and their integrity check fails.
    nodes = _sequences(converged(), sent=12, seen=48213, replay_errors=replay_errors,
                       integrity_errors=integrity_errors)
    report = mesh_status(nodes, ADDRESSES)
    assert verdicts(nodes) == {"node1": [VERDICT_SEQUENCE_RESTARTED], "node2": [VERDICT_OK]}
    (line,) = problems(report)
    assert line.startswith("node1 -> node2 (%s -> %s): sequence restarted: " % (A, B))
    assert "up to sequence number 12" in line and "accepted up to 48213" in line and "dropped 12 packets" in line
    assert "ip xfrm state delete src %s dst %s proto esp spi 0x%08x" % (A, B, SPI_AB) in line


def test_a_receiver_ahead_of_the_senders_read_without_replay_drops_is_ok():
    # Read one after the other under traffic: node2 accepted what node1 sent after it was read.
    assert verdicts(_sequences(converged(), sent=1000, seen=1040, replay_errors=0))["node1"] == [VERDICT_OK]
    # Drops alone (reordering, a replayed or forged packet) with the sender ahead: ok.
    assert verdicts(_sequences(converged(), sent=5000, seen=4990, replay_errors=3,
                               integrity_errors=2))["node1"] == [VERDICT_OK]
    # Counters of an xfrm_info without the sequence fields (an older collection on the node): ok.
    assert verdicts(converged())["node1"] == [VERDICT_OK]
