# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module mesh_metrics end to end (AnsibleModule, temporary files): the textfile is read back
with Prometheus' own text-format parser (prometheus_client), not with a parser of ours."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from ansible.module_utils.testing import patch_module_args
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.netsec.ipsec.plugins.module_utils._controller.status import mesh_status
from ansible_collections.netsec.ipsec.plugins.module_utils._modules.metrics import (
    FAMILIES, MetricsInputError, render_textfile,
)
from ansible_collections.netsec.ipsec.plugins.modules import mesh_metrics

A4, B4, C4 = "10.77.0.1", "10.77.0.2", "10.77.0.3"
A6, B6 = "fd77::1", "fd77::2"


def _sa(src: str, dst: str, spi: int, direction: str, fingerprint: str, packets: int, octets: int) -> Dict[str, Any]:
    return dict(src=src, dst=dst, spi="0x%08x" % spi, key_id=spi >> 28, direction=direction, fingerprint=fingerprint,
                packets=packets, bytes=octets)


def _out_policy(local: str, peer: str, spi: int) -> Dict[str, Any]:
    return dict(dir="out", tmpl_src=local, tmpl_dst=peer, tmpl_spi=spi)


def _reads() -> Dict[str, Dict[str, Any]]:
    """node1 mid-rotation with node2 (IN SAs of key 3 and key 4, sending with key 4), over both
    families; node3 lost its OUT SA to node1."""
    node1 = dict(
        policies=[_out_policy(A4, B4, 0x41000001), _out_policy(A6, B6, 0x41000002), _out_policy(A4, C4, 0x31000003)],
        sas=[_sa(A4, B4, 0x41000001, "out", "sha256:4ab", 120, 14400),
             _sa(B4, A4, 0x31000011, "in", "sha256:3ba", 7, 840),
             _sa(B4, A4, 0x41000011, "in", "sha256:4ba", 90, 10800),
             _sa(A6, B6, 0x41000002, "out", "sha256:4ab6", 5, 700),
             _sa(B6, A6, 0x41000012, "in", "sha256:4ba6", 6, 720),
             _sa(A4, C4, 0x31000003, "out", "sha256:3ac", 1, 100),
             _sa(C4, A4, 0x31000013, "in", "sha256:3ca", 2, 200)],
        xfrm_stat={"XfrmInNoStates": 4, "XfrmOutPolBlock": 0, "XfrmInTmplMismatch": 0},
        foreign_sas=1, foreign_policies=2)
    node2 = dict(policies=[_out_policy(B4, A4, 0x41000011), _out_policy(B6, A6, 0x41000012)],
                 sas=[_sa(B4, A4, 0x41000011, "out", "sha256:4ba", 1, 1), _sa(A4, B4, 0x41000001, "in", "sha256:4ab", 1, 1),
                      _sa(B6, A6, 0x41000012, "out", "sha256:4ba6", 1, 1), _sa(A6, B6, 0x41000002, "in", "sha256:4ab6", 1, 1)],
                 xfrm_stat={})
    node3 = dict(policies=[_out_policy(C4, A4, 0x31000013)], sas=[_sa(A4, C4, 0x31000003, "in", "sha256:3ac", 1, 1)],
                 xfrm_stat={})
    return dict(node1=node1, node2=node2, node3=node3)


ADDRESSES = dict(node1=[A4, A6], node2=[B4, B6], node3=[C4])


def _families(text: str) -> Dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _values(family: Any, suffix: str = "") -> Dict[Tuple[Tuple[str, str], ...], float]:
    return {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples
            if sample.name == family.name + suffix}


def test_prometheus_reads_every_series_of_a_node():
    reads = _reads()
    report = mesh_status(reads, ADDRESSES)
    text = render_textfile(report["node1"], reads["node1"]["xfrm_stat"])
    families = _families(text)
    # The parser names a counter family without its _total suffix.
    assert set(families) == {name[:-len("_total")] if name.endswith("_total") else name for name, _t, _h in FAMILIES}
    assert families["netsec_ipsec_sa_packets"].type == "counter" and families["netsec_ipsec_pair_ok"].type == "gauge"
    pair = (("dst", B4), ("peer", "node2"), ("src", A4))
    assert _values(families["netsec_ipsec_pair_ok"]) == {
        pair: 1.0, (("dst", B6), ("peer", "node2"), ("src", A6)): 1.0, (("dst", C4), ("peer", "node3"), ("src", A4)): 1.0}
    assert _values(families["netsec_ipsec_key_id"])[pair] == 4.0
    packets = _values(families["netsec_ipsec_sa_packets"], "_total")
    octets = _values(families["netsec_ipsec_sa_bytes"], "_total")
    sent = tuple(sorted(pair + (("direction", "out"), ("key_id", "4"), ("spi", "0x41000001"))))
    received_old = tuple(sorted(pair + (("direction", "in"), ("key_id", "3"), ("spi", "0x31000011"))))
    received_new = tuple(sorted(pair + (("direction", "in"), ("key_id", "4"), ("spi", "0x41000011"))))
    assert (packets[sent], octets[sent]) == (120.0, 14400.0)
    assert (packets[received_old], packets[received_new]) == (7.0, 90.0)
    assert len(packets) == 7, "every SA of node1 once"
    errors = _values(families["netsec_ipsec_xfrm_errors"], "_total")
    assert errors == {(("counter", "XfrmInNoStates"),): 4.0, (("counter", "XfrmOutPolBlock"),): 0.0,
                      (("counter", "XfrmInTmplMismatch"),): 0.0}, "zeros too, so increase() sees the first error"
    assert _values(families["netsec_ipsec_foreign_entries"]) == {(("kind", "policy"),): 2.0, (("kind", "sa"),): 1.0}


def test_a_broken_pair_is_zero_with_its_verdict():
    reads = _reads()
    report = mesh_status(reads, ADDRESSES)
    families = _families(render_textfile(report["node3"], {}))
    pair = (("dst", A4), ("peer", "node1"), ("src", C4))
    unprotected = (("dst", B4), ("peer", "node2"), ("src", C4))
    assert _values(families["netsec_ipsec_pair_ok"]) == {pair: 0.0, unprotected: 0.0}
    assert _values(families["netsec_ipsec_pair_verdict"]) == {
        tuple(sorted(pair + (("verdict", "missing SA"),))): 1.0,
        tuple(sorted(unprotected + (("verdict", "plaintext policy missing"),))): 1.0}
    assert _values(families["netsec_ipsec_key_id"]) == {}, "no OUT SA, no key in use"


def test_label_values_are_escaped_as_the_format_requires():
    report = dict(pairs=[dict(peer='we"ird\\name\nx', src=A4, dst=B4, verdict="ok", out_sa=None, in_sas=[])])
    families = _families(render_textfile(report, {}))
    (sample,) = families["netsec_ipsec_pair_ok"].samples
    assert sample.labels["peer"] == 'we"ird\\name\nx'


@pytest.mark.parametrize("report, xfrm_stat, where", [
    ({}, {}, "report: expected one node"),
    (dict(pairs=["node2"]), {}, "report.pairs[0]: expected a dict"),
    (dict(pairs=[dict(peer="n", src=A4, dst=B4, verdict="ok", out_sa=dict(spi="0x1", key_id=-1))]), {},
     "report.pairs[0].out_sa.key_id"),
    (dict(pairs=[dict(peer="n", src=A4, dst=B4, verdict="ok", out_sa=None,
                      in_sas=[dict(spi="0x1", key_id=1, packets="many")])]), {}, "report.pairs[0].in_sas[0].packets"),
    (dict(pairs=[]), {"XfrmInNoStates": True}, "xfrm_stat.XfrmInNoStates"),
])
def test_a_report_of_another_shape_names_the_field(report, xfrm_stat, where):
    with pytest.raises(MetricsInputError, match=__import__("re").escape(where)):
        render_textfile(report, xfrm_stat)


def run(capsys: pytest.CaptureFixture, check: bool = False, **args: Any) -> Dict[str, Any]:
    with patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=True)):
        with pytest.raises(SystemExit):
            mesh_metrics.main()
    return json.loads(capsys.readouterr().out)


def test_the_module_writes_atomically_then_changes_nothing(tmp_path: Path, capsys):
    reads = _reads()
    report = mesh_status(reads, ADDRESSES)["node1"]
    path = tmp_path / "textfile" / "netsec_ipsec.prom"
    checked = run(capsys, check=True, path=str(path), report=report, xfrm_stat=reads["node1"]["xfrm_stat"])
    assert checked["changed"] is True and not path.parent.exists()
    assert checked["diff"]["before"] == "" and "netsec_ipsec_pair_ok" in checked["diff"]["after"]
    written = run(capsys, path=str(path), report=report, xfrm_stat=reads["node1"]["xfrm_stat"])
    assert written["changed"] is True and written["samples"] == len(
        [line for line in path.read_text().splitlines() if not line.startswith("#")])
    assert path.read_text() == checked["diff"]["after"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and os.listdir(path.parent) == ["netsec_ipsec.prom"]
    again = run(capsys, path=str(path), report=report, xfrm_stat=reads["node1"]["xfrm_stat"])
    assert again["changed"] is False


@pytest.mark.parametrize("name", ["relative.prom", "/var/lib/node-exporter/netsec_ipsec.txt"])
def test_a_path_node_exporter_would_not_read_is_refused(capsys, name):
    result = run(capsys, path=name, report=dict(pairs=[]))
    assert result["failed"] is True and "option path" in result["msg"] and ".prom" in result["msg"]


def test_bad_input_or_a_link_changes_nothing(tmp_path: Path, capsys):
    path = tmp_path / "netsec_ipsec.prom"
    result = run(capsys, path=str(path), report=dict(pairs=[dict(peer="node2")]))
    assert result["failed"] is True and "report.pairs[0].dst" in result["msg"] and not path.exists()
    target = tmp_path / "elsewhere"
    target.write_text("kept\n")
    path.symlink_to(target)
    result = run(capsys, path=str(path), report=dict(pairs=[]))
    assert result["failed"] is True and "link" in result["msg"] and target.read_text() == "kept\n"
    listing: List[str] = sorted(os.listdir(tmp_path))
    assert listing == ["elsewhere", "netsec_ipsec.prom"]
