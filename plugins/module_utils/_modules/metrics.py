# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of module ``netsec.ipsec.mesh_metrics``: one node's status as a Prometheus
node_exporter textfile.

The status playbook computes the report on the controller (``_controller.status``: a verdict
per pair needs both ends) and hands each node its own part; this renders it in Prometheus'
text exposition format and writes it with the collection's one file writer, so the file is
replaced atomically (node_exporter's textfile collector reads ``*.prom`` files only, and the
writer's temporary file ends in ``.tmp``) and a scrape never sees half of it.

Metric names follow Prometheus' conventions: the ``netsec_ipsec_`` prefix, ``_total`` for
counters, base units, labels for the peer, the addresses and the direction. Series per SA
carry its SPI and key id: a rotation or a re-key makes new series, and the counters of the
old SA end with it (``rate()`` and ``increase()`` handle that like a counter reset).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._files import FileError, destination_problem, write_file

TEXTFILE_SUFFIX = ".prom"
TEXTFILE_MODE = "0644"
DIRECTORY_MODE = 0o755
VERDICT_OK = "ok"

Labels = Tuple[Tuple[str, str], ...]
Sample = Tuple[Labels, int]


class MetricsInputError(Exception):
    """The report handed to the module is not what the status filter produces."""


# name, type, help: each family once, in the order the file lists them.
FAMILIES: Tuple[Tuple[str, str, str], ...] = (
    ("netsec_ipsec_pair_ok", "gauge",
     "1 when this node's traffic to the peer address is protected as the mesh wants, 0 when not "
     "(netsec_ipsec_pair_verdict says why)."),
    ("netsec_ipsec_pair_verdict", "gauge",
     "The status verdict of each pair, as a label; the value is always 1."),
    ("netsec_ipsec_key_id", "gauge",
     "The key id (the keys file's SPI column) of the SA this node sends to the peer address with."),
    ("netsec_ipsec_sa_packets_total", "counter",
     "Packets through one of this node's SAs (direction out: sent to the peer, in: received from it)."),
    ("netsec_ipsec_sa_bytes_total", "counter",
     "Bytes through one of this node's SAs (direction out: sent to the peer, in: received from it)."),
    ("netsec_ipsec_xfrm_errors_total", "counter",
     "The node's XFRM error counters (/proc/net/xfrm_stat), by counter name."),
    ("netsec_ipsec_foreign_entries", "gauge",
     "XFRM entries on this node that the collection does not own, by kind (sa, policy)."),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample_line(name: str, labels: Labels, value: int) -> str:
    if not labels:
        return "%s %d" % (name, value)
    return "%s{%s} %d" % (name, ",".join('%s="%s"' % (key, _escape(text)) for key, text in labels), value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MetricsInputError("%s: expected a count (a non-negative integer), got %r" % (where, value))
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise MetricsInputError("%s: expected a non-empty string, got %r" % (where, value))
    return value


def _sa_samples(pair_labels: Labels, direction: str, sa: Mapping[str, Any], where: str
                ) -> Tuple[Sample, Sample]:
    labels = tuple(sorted(pair_labels + (("direction", direction), ("spi", _text(sa.get("spi"), where + ".spi")),
                                         ("key_id", str(_count(sa.get("key_id"), where + ".key_id"))))))
    return (labels, _count(sa.get("packets", 0), where + ".packets")), \
        (labels, _count(sa.get("bytes", 0), where + ".bytes"))


def textfile_samples(report: Mapping[str, Any], xfrm_stat: Mapping[str, Any]) -> Dict[str, List[Sample]]:
    """Every sample of the textfile, by metric name, from one node's part of the status
    report (``mesh_status``'s ``nodes[host]``) and its ``xfrm_info`` counters."""
    if not isinstance(report, Mapping) or not isinstance(report.get("pairs"), list):
        raise MetricsInputError("report: expected one node of the netsec.ipsec.mesh_status report (a dict with pairs)")
    samples: Dict[str, List[Sample]] = {name: [] for name, _type, _help in FAMILIES}
    for index, pair in enumerate(report["pairs"]):
        where = "report.pairs[%d]" % index
        if not isinstance(pair, Mapping):
            raise MetricsInputError("%s: expected a dict, got %r" % (where, pair))
        pair_labels: Labels = (("dst", _text(pair.get("dst"), where + ".dst")),
                               ("peer", _text(pair.get("peer"), where + ".peer")),
                               ("src", _text(pair.get("src"), where + ".src")))
        verdict = _text(pair.get("verdict"), where + ".verdict")
        samples["netsec_ipsec_pair_ok"].append((pair_labels, int(verdict == VERDICT_OK)))
        samples["netsec_ipsec_pair_verdict"].append((pair_labels + (("verdict", verdict),), 1))
        out_sa = pair.get("out_sa")
        sas: List[Tuple[str, Mapping[str, Any], str]] = []
        if out_sa is not None:
            if not isinstance(out_sa, Mapping):
                raise MetricsInputError("%s.out_sa: expected a dict or null, got %r" % (where, out_sa))
            samples["netsec_ipsec_key_id"].append((pair_labels, _count(out_sa.get("key_id"), where + ".out_sa.key_id")))
            sas.append(("out", out_sa, where + ".out_sa"))
        in_sas = pair.get("in_sas") or []
        if not isinstance(in_sas, list):
            raise MetricsInputError("%s.in_sas: expected a list, got %r" % (where, in_sas))
        sas.extend(("in", sa, "%s.in_sas[%d]" % (where, number)) for number, sa in enumerate(in_sas))
        for direction, sa, sa_where in sas:
            if not isinstance(sa, Mapping):
                raise MetricsInputError("%s: expected a dict, got %r" % (sa_where, sa))
            packets, octets = _sa_samples(pair_labels, direction, sa, sa_where)
            samples["netsec_ipsec_sa_packets_total"].append(packets)
            samples["netsec_ipsec_sa_bytes_total"].append(octets)
    if not isinstance(xfrm_stat, Mapping):
        raise MetricsInputError("xfrm_stat: expected a dict of counters, got %r" % (xfrm_stat,))
    for name in sorted(xfrm_stat):
        samples["netsec_ipsec_xfrm_errors_total"].append(
            ((("counter", _text(name, "xfrm_stat")),), _count(xfrm_stat[name], "xfrm_stat.%s" % name)))
    foreign = report.get("foreign") or {}
    for kind, key in (("policy", "policies"), ("sa", "sas")):
        samples["netsec_ipsec_foreign_entries"].append(
            ((("kind", kind),), _count(foreign.get(key, 0), "report.foreign.%s" % key)))
    return samples


def render_textfile(report: Mapping[str, Any], xfrm_stat: Mapping[str, Any]) -> str:
    """The textfile: each family's HELP and TYPE, then its samples in a stable order (an
    unchanged report rewrites nothing)."""
    samples = textfile_samples(report, xfrm_stat)
    lines: List[str] = []
    for name, kind, text in FAMILIES:
        lines.append("# HELP %s %s" % (name, text))
        lines.append("# TYPE %s %s" % (name, kind))
        lines.extend(_sample_line(name, labels, value) for labels, value in sorted(samples[name]))
    return "\n".join(lines) + "\n"


def _current_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def run_module(module: Any) -> None:
    """Entry point called by the module's ``main()``."""
    params = module.params
    path = params["path"]
    if not os.path.isabs(path) or not path.endswith(TEXTFILE_SUFFIX):
        module.fail_json(msg="option path: %r must be an absolute path ending in %s (node_exporter's textfile "
                             "collector reads only those)" % (path, TEXTFILE_SUFFIX))
    try:
        content = render_textfile(params["report"], params["xfrm_stat"])
    except MetricsInputError as error:
        module.fail_json(msg="option %s" % error)
    problem = destination_problem(path)
    if problem:
        module.fail_json(msg="%s: %s" % (path, problem))
    before = _current_text(path)
    try:
        changed = write_file(module, path, content.encode("utf-8"), TEXTFILE_MODE, DIRECTORY_MODE)
    except FileError as error:
        module.fail_json(msg=str(error))
    result: Dict[str, Any] = dict(changed=changed, path=path,
                                  samples=sum(1 for line in content.splitlines() if not line.startswith("#")))
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = dict(before_header=path if before is not None else "%s (absent)" % path, after_header=path,
                              before=before or "", after=content)
    module.exit_json(**result)
