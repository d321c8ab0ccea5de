# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 6, item 7 (and 8): no lock-out of Ansible's SSH connection, in a 3-node lab with sshd:

    lab/run --nodes 3 --ssh -- pytest -q tests/lab/test_safety_lockout.py

Ansible must run from a mesh member for its SSH connections to be mesh traffic (the lab's
control namespace, 10.77.0.254, is no peer of anyone, so no policy covers it): every playbook
here runs IN node3 (lab-exec node3 ansible-playbook), over real SSH to the nodes' mesh
addresses. node2 first gets a different key than the others (same key id, other bytes: a
host variable); the mesh installs, node3 <-> node2 ESP cannot be decrypted, and Ansible still
reaches node2 (the tcp/22 bypass: server side on every node, the default, and client side on
node3, the documented addition where Ansible runs from a member) and fixes it with the right key. Then with ``ipsec_bypass:
[]`` xfrm_endpoint warns "covers the SSH connection Ansible is using" before applying, in
--check (nothing changes) and for real.

The real run that removes the bypasses keeps the members' IN policies at level ``use``: removing
a bypass that SSH between members runs through is a hazard of its own, even with matching keys
(guides, "The management bypass"). The run removes it node by node; while node3 already
requires ESP from node1 and node1 still answers SSH in plaintext through the bypass it has not
removed yet, node3 drops the answers, and the connection that carries node1's module stalls. On
a loaded machine that run hung until the 900 s timeout; at level ``use`` plaintext from members
is accepted until the bypasses are gone everywhere.
"""

from __future__ import annotations

import os

import pytest

from harness import Ansible, dumps, inventory_with_group, key_line, port_bypasses, report, run_local, xfrm_stat

WARNING = "covers the SSH connection Ansible is using"
OTHER_KEY = "0x" + "a7c3" * 10
# node3 runs Ansible: its SSH connections out to the other members need the client side too.
CONTROLLER_BYPASS = [{"proto": "tcp", "port": 22, "side": "server"}, {"proto": "tcp", "port": 22, "side": "client"}]


@pytest.fixture(scope="module")
def lab(inventory_path, lab_nodes, lab_ipv4, lab_work):
    if os.environ.get("LAB_SSH") != "1":
        pytest.fail("needs a lab started with --ssh")
    nodes = lab_nodes[:3]
    return {"nodes": nodes, "work": lab_work, "addresses": {n: lab_ipv4[n] for n in nodes},
            "ansible": Ansible(inventory_path, lab_work, node="node3")}


def _ping(lab_exec, src, address):
    return lab_exec(src, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-q", address, check=False).returncode == 0


def test_mismatched_key_does_not_lock_ansible_out(lab, inventory_path, lab_exec, lab_capture):
    nodes, addresses, ansible = lab["nodes"], lab["addresses"], lab["ansible"]
    mismatched = inventory_with_group(inventory_path, nodes, lab["work"] / "inventory-mismatch.yml",
                                      group_vars={"ipsec_keys_content": key_line(1)},
                                      host_vars={"node2": {"ipsec_keys_content": key_line(1, OTHER_KEY)},
                                                 "node3": {"ipsec_bypass": CONTROLLER_BYPASS}})
    first = ansible.playbook("playbooks/mesh.yml", inventory=mismatched, expect_rc=None)
    stat_before = xfrm_stat(lab_exec, ["node2"])
    broken = {"3->2": _ping(lab_exec, "node3", addresses["node2"]), "3->1": _ping(lab_exec, "node3", addresses["node1"])}
    stat_after = xfrm_stat(lab_exec, ["node2"])
    proto_errors = stat_after["node2"]["XfrmInStateProtoError"] - stat_before["node2"]["XfrmInStateProtoError"]
    # Ansible (in node3, over SSH) still reaches node2 and fixes it.
    reach = run_local("lab-exec", "node3", "ansible", "-i", mismatched, "node2", "-m", "ansible.builtin.ping", check=False)
    fixed = ansible.playbook("playbooks/mesh.yml", inventory=mismatched, expect_rc=None,
                             extra_vars={"ipsec_keys_content": key_line(1)})
    cap = lab_capture("sh", "-c", "; ".join("lab-exec %s ping -c 2 -i 0.2 -W 2 -q %s >/dev/null || echo FAIL %s %s"
                                            % (a, addresses[b], a, b) for a in nodes for b in nodes if a != b))
    report("lock-out: mismatched key on node2", {
        "first_rc": first.returncode, "first_seconds": round(first.seconds, 1), "pings_while_mismatched": broken,
        "node2_InStateProtoError_increase": proto_errors, "ansible_ping_node2_rc": reach.returncode,
        "fix_rc": fixed.returncode, "fix_seconds": round(fixed.seconds, 1), "ping_failures_after_fix": cap.stdout.count("FAIL"),
        "plaintext_after_fix": cap.plaintext})
    assert first.returncode == 0, first.stdout[-5000:]
    assert broken == {"3->2": False, "3->1": True}
    assert proto_errors > 0
    assert reach.returncode == 0 and "SUCCESS" in reach.stdout, reach.stdout + reach.stderr
    assert fixed.returncode == 0, fixed.stdout[-8000:]
    assert cap.stdout.count("FAIL") == 0 and cap.plaintext == [], (cap.stdout, cap.plaintext)


def test_no_bypass_warns_about_the_own_connection(lab, lab_exec):
    nodes, ansible = lab["nodes"], lab["ansible"]
    no_bypass = {"ipsec_keys_content": key_line(1), "ipsec_bypass": [],
                 "ipsec_peer_overrides": {node: {"inbound_level": "use"} for node in nodes}}
    before = dumps(lab_exec, nodes)
    check = ansible.playbook("playbooks/mesh.yml", extra_vars=no_bypass, args=("--check", "--diff"), expect_rc=None)
    unchanged = dumps(lab_exec, nodes)
    real = ansible.playbook("playbooks/mesh.yml", extra_vars=no_bypass, expect_rc=None)
    after = dumps(lab_exec, nodes)
    warned_check = _warned(check, nodes)
    warned_real = _warned(real, nodes)
    report("lock-out: no bypass", {"check_rc": check.returncode, "real_rc": real.returncode, "warned_check": warned_check,
                                   "warned_real": warned_real, "in_output": WARNING in check.stdout + check.stderr, "check_unchanged": before == unchanged,
                                   "bypass_policies_left": {n: _bypass_policies(after[n]) for n in nodes}})
    assert check.returncode == 0 and real.returncode == 0
    assert before == unchanged
    # node3 is the controller: its connection to itself stays local; node1 and node2 are reached over the mesh.
    assert warned_check == {"node1": True, "node2": True, "node3": False}, check.stdout[-6000:]
    assert warned_real == warned_check
    assert all(_bypass_policies(after[n]) == 0 for n in nodes)
    assert all(_bypass_policies(before[n]) > 0 for n in nodes)


def _bypass_policies(node_dump):
    return port_bypasses(node_dump.policies).count()


def _warned(run, nodes):
    """{node: whether one of its task results carries the own-connection warning}."""
    return {node: any(WARNING in warning for r in run.results if r["host"] == node
                      for warning in r["result"].get("warnings", [])) for node in nodes}
