# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mesh status report, computed on the controller from every node's ``xfrm_info``.

For each ordered pair (A sends to B) and each address family both have, the verdict is:

- ``plaintext policy missing``: A has no owned OUT policy whose template goes to B's tunnel
  address, so A's traffic to B leaves in plaintext;
- ``rebooted since keyed``: one end's keys were derived for a boot of the other end that is
  over (per-pair keys depend on both boot ids): A keyed B for a boot id B no longer has, or
  B's own record says it rebooted since it was keyed; the pair drops its traffic (never
  plaintext) until the mesh runs over both;
- ``missing SA``: the SA that A's OUT policy pins is not installed on A (A drops), or B has
  no IN SA with that SPI from A (B drops);
- ``key mismatch``: both SAs exist but their key fingerprints differ (B cannot decrypt:
  XfrmInStateProtoError);
- ``sequence restarted``: B's IN SA has accepted a higher sequence number than A's OUT SA has
  ever sent, and it has dropped packets: A's OUT SA was re-added (deleted by hand or by a
  flush) under the same SPI and key and counts from 1 again, so B drops A's traffic until its
  IN SA is renewed. Within B's replay window the old numbers are replays
  (XfrmInStateSeqError); below it, extended sequence numbers make B take them for the next
  2^32 cycle, whose high bits fail the integrity check (XfrmInStateProtoError). Both
  conditions are needed: the nodes are read one after the other, so under traffic B may have
  accepted packets A had not sent yet when A was read, but it then has no drops to show for it;
- ``ok``.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

VERDICT_OK = "ok"
VERDICT_NO_POLICY = "plaintext policy missing"
VERDICT_MISSING_SA = "missing SA"
VERDICT_KEY_MISMATCH = "key mismatch"
VERDICT_REBOOTED = "rebooted since keyed"
VERDICT_SEQUENCE_RESTARTED = "sequence restarted"
VERDICT_NO_DATA = "no data (node not read)"


def _family(address: str) -> int:
    return ipaddress.ip_address(address).version


def pair_verdict(sender_info: Mapping[str, Any], receiver_info: Optional[Mapping[str, Any]],
                 sender_address: str, receiver_address: str, sender: str = "sender",
                 receiver: str = "receiver") -> Tuple[str, Optional[str], str]:
    """The verdict for traffic from ``sender_address`` to ``receiver_address``, the SPI used,
    and why (a sentence naming the nodes; empty when ok)."""
    out_policies = [policy for policy in sender_info.get("policies", [])
                    if policy.get("dir") == "out" and policy.get("tmpl_dst") == receiver_address]
    if not out_policies:
        return VERDICT_NO_POLICY, None, "%s has no OUT policy towards %s: its traffic leaves in plaintext" % (
            sender, receiver_address)
    spi = "0x%08x" % int(out_policies[0].get("tmpl_spi") or 0)
    reboot = _rebooted_since_keyed(sender_info, receiver_info, sender, receiver)
    if reboot:
        return VERDICT_REBOOTED, spi, reboot

    def find(info: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
        return next((sa for sa in info.get("sas", []) if sa.get("src") == sender_address
                     and sa.get("dst") == receiver_address and sa.get("spi") == spi), None)

    sender_sa = find(sender_info)
    if sender_sa is None:
        return VERDICT_MISSING_SA, spi, "%s has no OUT SA %s to %s: it drops that traffic" % (sender, spi, receiver)
    if receiver_info is None:
        return VERDICT_NO_DATA, spi, "%s could not be read" % receiver
    receiver_sa = find(receiver_info)
    if receiver_sa is None:
        return VERDICT_MISSING_SA, spi, "%s has no IN SA %s from %s: it drops that traffic" % (receiver, spi, sender)
    if sender_sa.get("fingerprint") != receiver_sa.get("fingerprint"):
        return VERDICT_KEY_MISMATCH, spi, "the SAs %s of %s and %s carry different keys: %s cannot decrypt" % (
            spi, sender, receiver, receiver)
    sent, seen = sender_sa.get("sequence_sent"), receiver_sa.get("sequence_seen")
    dropped = (receiver_sa.get("replay_errors") or 0) + (receiver_sa.get("integrity_errors") or 0)
    if sent is not None and seen is not None and seen > sent and dropped > 0:
        return VERDICT_SEQUENCE_RESTARTED, spi, (
            "%s's OUT SA %s to %s has sent up to sequence number %d, but %s has accepted up to %d on it and "
            "dropped %d packets (replays or failed integrity checks): the SA was re-added on %s and counts from 1 "
            "again, so %s drops its traffic; renew the IN SA on %s (ip xfrm state delete src %s dst %s proto esp "
            "spi %s, then run the mesh playbook)" % (sender, spi, receiver, sent, receiver, seen, dropped, sender,
                                                     receiver, receiver, sender_address, receiver_address, spi))
    return VERDICT_OK, spi, ""


def _rebooted_since_keyed(sender_info: Mapping[str, Any], receiver_info: Optional[Mapping[str, Any]], sender: str,
                          receiver: str) -> str:
    """Why the pair's keys belong to a boot that is over (see the module docstring), or ""."""
    for node, info in ((sender, sender_info), (receiver, receiver_info)):
        if info and info.get("keyed_boot_id") and info.get("boot_id") and info["keyed_boot_id"] != info["boot_id"]:
            return "%s rebooted since it was keyed (boot id %s..., keyed for %s...)" % (
                node, str(info["boot_id"])[:8], str(info["keyed_boot_id"])[:8])
    for node, info, other, other_info in ((sender, sender_info, receiver, receiver_info),
                                          (receiver, receiver_info, sender, sender_info)):
        keyed_with = (info or {}).get("keyed_peers", {}).get(other)
        if keyed_with and other_info and other_info.get("boot_id") and keyed_with != other_info["boot_id"]:
            return "%s rebooted since %s keyed it (boot id %s..., keyed for %s...)" % (
                other, node, str(other_info["boot_id"])[:8], str(keyed_with)[:8])
    return ""


def mesh_status(nodes: Mapping[str, Mapping[str, Any]], addresses: Mapping[str, Sequence[str]]) -> Dict[str, Any]:
    """The report: per node its SAs, non-zero error counters and a verdict per peer pair.

    ``nodes`` maps a host to its ``xfrm_info`` result (entries read); ``addresses`` maps every
    group member to its tunnel addresses.
    """
    report: Dict[str, Any] = {}
    for host in sorted(nodes):
        info = nodes[host]
        pairs: List[Dict[str, Any]] = []
        for peer in sorted(addresses):
            if peer == host:
                continue
            for local_address in addresses[host]:
                for peer_address in addresses[peer]:
                    if _family(local_address) != _family(peer_address):
                        continue
                    verdict, spi, reason = pair_verdict(info, nodes.get(peer), local_address, peer_address, host,
                                                        peer)
                    pairs.append(dict(peer=peer, src=local_address, dst=peer_address, spi=spi, verdict=verdict,
                                      reason=reason, **_pair_sas(info, local_address, peer_address, spi)))
        report[host] = dict(
            pairs=pairs,
            sas=[_sa_counters(sa, direction=sa.get("direction"), src=sa.get("src"), dst=sa.get("dst"))
                 for sa in info.get("sas", [])],
            errors={name: value for name, value in sorted(info.get("xfrm_stat", {}).items()) if value},
            foreign=dict(sas=info.get("foreign_sas", 0), policies=info.get("foreign_policies", 0)),
        )
    return report


def _sa_counters(sa: Mapping[str, Any], **where: Any) -> Dict[str, Any]:
    return dict(where, spi=sa.get("spi"), key_id=sa.get("key_id"), packets=sa.get("packets", 0),
                bytes=sa.get("bytes", 0))


def _pair_sas(info: Mapping[str, Any], local_address: str, peer_address: str, out_spi: Optional[str]
              ) -> Dict[str, Any]:
    """The node's SAs of one pair with their counters: ``out_sa``, the one its OUT policy pins
    (None when there is none), and ``in_sas``, every SA from the peer's address to the node's
    (one per key while a rotation runs)."""
    out_sa = next((sa for sa in info.get("sas", []) if sa.get("src") == local_address
                   and sa.get("dst") == peer_address and sa.get("spi") == out_spi), None)
    in_sas = [sa for sa in info.get("sas", []) if sa.get("src") == peer_address and sa.get("dst") == local_address]
    return dict(out_sa=_sa_counters(out_sa) if out_sa is not None else None,
                in_sas=[_sa_counters(sa) for sa in sorted(in_sas, key=lambda item: str(item.get("spi")))])


def render_status(report: Mapping[str, Any]) -> List[str]:
    """The report as text lines, one block per node."""
    lines: List[str] = []
    for host, node in report.items():
        lines.append("%s" % host)
        for pair in node["pairs"]:
            columns = (pair["peer"], pair["src"], pair["dst"], pair["spi"] or "-", pair["verdict"])
            lines.append("  -> %-8s %-15s -> %-15s spi %-10s %s" % columns)
        for sa in sorted(node["sas"], key=lambda item: (item["direction"] or "", item["src"], item["dst"])):
            lines.append("  sa %-3s %s -> %s spi %s: %d packets, %d bytes"
                         % (sa["direction"] or "?", sa["src"], sa["dst"], sa["spi"], sa["packets"], sa["bytes"]))
        errors = ", ".join("%s=%d" % item for item in node["errors"].items())
        lines.append("  xfrm errors: %s" % (errors or "none"))
    return lines


def problems(report: Mapping[str, Any]) -> List[str]:
    """One line per pair that is not ok: ``node1 -> node2 (10.0.0.1 -> 10.0.0.2): verdict: why``."""
    return ["%s -> %s (%s -> %s): %s: %s" % (host, pair["peer"], pair["src"], pair["dst"], pair["verdict"],
                                             pair["reason"])
            for host, node in report.items() for pair in node["pairs"] if pair["verdict"] != VERDICT_OK]


def summary(report: Mapping[str, Any]) -> Dict[str, int]:
    """How many pairs have each verdict."""
    counts: Dict[str, int] = {}
    for node in report.values():
        for pair in node["pairs"]:
            counts[pair["verdict"]] = counts.get(pair["verdict"], 0) + 1
    return counts
