# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verdicts of the status report from xfrm_info results."""

from __future__ import annotations

import copy

from ansible_collections.netsec.ipsec.plugins.module_utils._controller.status import (
    VERDICT_KEY_MISMATCH,
    VERDICT_MISSING_SA,
    VERDICT_NO_POLICY,
    VERDICT_OK,
    mesh_status,
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
