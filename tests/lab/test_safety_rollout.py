# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 6, items 2, 9 and 8: rollout, a new node and a reboot under continuous traffic, in a
5-node lab whose group ipsec_mesh first holds node1-4 (an inventory overlay):

    lab/run --nodes 5 -- pytest -q tests/lab/test_safety_rollout.py

Traffic: every node sends 50 UDP datagrams/s to every other node (safety_traffic.py); lost =
sent - received per direction. The tests run in file order and build on each other:
  1. mesh.yml --check on the fresh nodes changes nothing (and runs to the end);
  2. fresh rollout of node1-4 with traffic running before mesh.yml starts (plaintext at
     first): 0 datagrams lost; once a direction carries ESP it never carries plaintext again
     (pcap in order); after convergence a capture shows ESP only;
  3. node5 joins the group, mesh.yml again: no pair loses a datagram, 0 plaintext after ESP;
  4. node2 reboots (lab-reboot: XFRM tables and keys file gone, new boot id): until mesh.yml
     runs again, nothing leaves the other nodes towards node2 in plaintext (ESP or drops);
     a --check run changes nothing; mesh.yml re-keys node2 (new per-pair keys), the pairs
     without node2 lose nothing meanwhile, and then every pair is ESP again.
"""

from __future__ import annotations

import pytest

from harness import BAD_COUNTERS, assert_check_mode_unchanged, dump, inventory_with_group, key_line, plaintext_after_esp, report
from traffic import losses_in_context

VARS = {"ipsec_keys_content": key_line(1)}


@pytest.fixture(scope="module")
def lab(inventory_path, lab_nodes, lab_ipv4, lab_ansible, lab_work):
    assert len(lab_nodes) >= 5, "needs a lab of 5 nodes"
    nodes = lab_nodes[:5]
    return {"ansible": lab_ansible, "work": lab_work, "nodes": nodes,
            "first": nodes[:4], "inv4": inventory_with_group(inventory_path, nodes[:4], lab_work / "inventory-4.yml"),
            "addresses": {node: lab_ipv4[node] for node in nodes}}


def _esp_everywhere(lab_capture, addresses, seconds=3):
    """Capture ``seconds`` of the running traffic: {"plaintext": n, "esp_pairs": set of (src, dst)}."""
    cap = lab_capture("sleep", str(seconds))
    wanted = set(addresses)
    plaintext = sum(p["packets"] for p in cap.plaintext if p["src"] in wanted and p["dst"] in wanted)
    return plaintext, {(e["src"], e["dst"]) for e in cap.esp}, cap.plaintext


def test_fresh_check_mode_changes_nothing(lab, lab_exec):
    run = assert_check_mode_unchanged(lab["ansible"], lab_exec, lab["nodes"], "playbooks/mesh.yml", extra_vars=VARS,
                                      inventory=lab["inv4"], expect_rc=None)
    failed = sorted({(r["task"], r["result"].get("msg")) for r in run.results if r.get("failed")})
    report("mesh --check on fresh nodes", {"rc": run.returncode, "seconds": round(run.seconds, 1), "failed": failed})
    assert run.returncode == 0, failed


def test_fresh_rollout_under_traffic(lab, lab_capture, under_traffic):
    first = lab["first"]
    addresses = {node: lab["addresses"][node] for node in first}
    with under_traffic(addresses, udp_counters=True) as window:
        run = lab["ansible"].playbook("playbooks/mesh.yml", extra_vars=VARS, inventory=lab["inv4"], capture="rollout.pcap",
                                      expect_rc=None)
        plaintext_after, esp_pairs, leftover = _esp_everywhere(lab_capture, addresses.values())
    figures, increase, udp_increase = window.figures, window.xfrm_stat_increase, window.udp_stat_increase
    late = plaintext_after_esp(lab["work"] / "rollout.pcap", addresses.values())
    report("fresh rollout of 4 nodes", {
        "rc": run.returncode, "seconds": round(run.seconds, 1), "sent": figures["sent"], "lost": figures["lost"],
        "traffic_seconds": figures["seconds"], "min_rate_per_pair": figures["min_rate_per_pair"],
        "plaintext_during_rollout": run.plaintext(addresses.values()), "esp_during_rollout": run.esp(),
        "plaintext_after_first_esp": late, "plaintext_after_convergence": plaintext_after,
        "xfrm_stat_increase": increase, "udp_snmp_increase": {n: {k: v for k, v in c.items() if "Datagrams" not in k}
                                                              for n, c in udp_increase.items()},
        "lost_per_pair": {pair: p["lost"] for pair, p in figures["pairs"].items() if p["lost"]},
        "losses": losses_in_context(figures, run)})
    assert run.returncode == 0, run.log
    assert figures["min_rate_per_pair"] >= 45, figures
    assert figures["lost"] == 0, {pair: p for pair, p in figures["pairs"].items() if p["lost"]}
    assert late == {}, late
    assert plaintext_after == 0, leftover
    assert esp_pairs >= {(a, b) for a in addresses.values() for b in addresses.values() if a != b}, esp_pairs
    bad = {node: {k: v for k, v in c.items() if k in BAD_COUNTERS and k != "XfrmInNoPols"} for node, c in increase.items()}
    assert not any(bad.values()), bad


def test_fifth_node_joins_under_traffic(lab, lab_exec, lab_capture, under_traffic):
    nodes, addresses = lab["nodes"], lab["addresses"]
    with under_traffic(addresses, udp_counters=True) as window:
        run = lab["ansible"].playbook("playbooks/mesh.yml", extra_vars=VARS, capture="join.pcap", expect_rc=None)
        plaintext_after, esp_pairs, leftover = _esp_everywhere(lab_capture, addresses.values())
    figures, increase, udp_increase = window.figures, window.xfrm_stat_increase, window.udp_stat_increase
    late = plaintext_after_esp(lab["work"] / "join.pcap", addresses.values())
    existing = {pair: p for pair, p in figures["pairs"].items() if "node5" not in pair}
    report("node5 joins a 4-node mesh", {
        "rc": run.returncode, "seconds": round(run.seconds, 1), "sent": figures["sent"],
        "lost_existing_pairs": sum(p["lost"] for p in existing.values()),
        "lost_node5_pairs": sum(p["lost"] for pair, p in figures["pairs"].items() if "node5" in pair),
        "min_rate_per_pair": figures["min_rate_per_pair"], "plaintext_during_join": run.plaintext(addresses.values()),
        "plaintext_after_first_esp": late, "plaintext_after_convergence": plaintext_after, "xfrm_stat_increase": increase,
        "udp_snmp_increase": {n: {k: v for k, v in c.items() if "Datagrams" not in k} for n, c in udp_increase.items()},
        "lost_per_pair": {pair: p["lost"] for pair, p in figures["pairs"].items() if p["lost"]},
        "losses": losses_in_context(figures, run)})
    assert run.returncode == 0, run.log
    assert sum(p["lost"] for p in existing.values()) == 0, {pair: p for pair, p in existing.items() if p["lost"]}
    assert figures["lost"] == 0, {pair: p for pair, p in figures["pairs"].items() if p["lost"]}
    assert late == {}, late
    assert plaintext_after == 0, leftover
    assert len(esp_pairs) >= 20, esp_pairs
    check = assert_check_mode_unchanged(lab["ansible"], lab_exec, nodes, "playbooks/mesh.yml", extra_vars=VARS)
    assert [r["task"] for r in check.results if r["result"].get("changed")] == []


def test_rebooted_node_is_rekeyed_and_never_gets_plaintext(lab, lab_exec, lab_capture, lab_reboot, lab_boot_id,
                                                           under_traffic):
    nodes, addresses = lab["nodes"], lab["addresses"]
    others = [node for node in nodes if node != "node2"]
    keys_before = set(dump(lab_exec, "node1").keys())
    boot_before = lab_boot_id("node2")
    lab_reboot("node2")
    assert lab_boot_id("node2") != boot_before
    assert lab_exec("node2", "ip", "xfrm", "state").stdout == ""

    # Until the re-run: every other node pings node2; on the wire ESP (old keys) or nothing.
    script = " & ".join("lab-exec %s ping -q -c 20 -i 0.05 -W 1 %s >/dev/null" % (node, addresses["node2"]) for node in others)
    cap = lab_capture("sh", "-c", script + " & wait")
    towards = sum(p["packets"] for p in cap.plaintext if p["dst"] == addresses["node2"])
    esp_towards = sum(e["packets"] for e in cap.esp if e["dst"] == addresses["node2"])

    check = assert_check_mode_unchanged(lab["ansible"], lab_exec, nodes, "playbooks/mesh.yml", extra_vars=VARS,
                                        expect_rc=None)
    with under_traffic(addresses) as window:
        run = lab["ansible"].playbook("playbooks/mesh.yml", extra_vars=VARS, capture="rekey.pcap", expect_rc=None)
        plaintext_after, esp_pairs, leftover = _esp_everywhere(lab_capture, addresses.values())
    figures, increase = window.figures, window.xfrm_stat_increase
    late = plaintext_after_esp(lab["work"] / "rekey.pcap", [addresses[node] for node in others])
    others_to_node2 = sum(p["packets"] for p in run.capture.plaintext
                          if p["dst"] == addresses["node2"] and p["src"] in [addresses[n] for n in others])
    keys_after = set(dump(lab_exec, "node1").keys())
    untouched = {pair: p for pair, p in figures["pairs"].items() if "node2" not in pair}
    report("reboot of node2", {
        "plaintext_towards_node2_before_rerun": towards, "esp_towards_node2_before_rerun": esp_towards,
        "check_rc": check.returncode, "rerun_rc": run.returncode, "rerun_seconds": round(run.seconds, 1),
        "plaintext_others_to_node2_during_rerun": others_to_node2, "plaintext_after_first_esp_between_others": late,
        "lost_pairs_without_node2": sum(p["lost"] for p in untouched.values()),
        "lost_pairs_with_node2": sum(p["lost"] for pair, p in figures["pairs"].items() if "node2" in pair),
        "plaintext_after_convergence": plaintext_after, "xfrm_stat_increase": increase,
        "node1_keys_changed": len(keys_before - keys_after)})
    assert towards == 0, cap.plaintext
    assert esp_towards > 0, cap.esp
    assert run.returncode == 0, run.log
    assert others_to_node2 == 0, run.capture.plaintext
    assert late == {}, late
    assert sum(p["lost"] for p in untouched.values()) == 0, {pair: p for pair, p in untouched.items() if p["lost"]}
    assert plaintext_after == 0, leftover
    assert len(esp_pairs) >= 20, esp_pairs
    # node1's two SAs with node2 got new per-pair keys (node2's boot id changed); the rest stayed.
    assert len(keys_before - keys_after) == 2, (len(keys_before), len(keys_after))
    assert lab_exec("node2", "stat", "-c", "%a", "/etc/ipsec/keys").stdout.strip() == "600"
