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
reaches node2 (the tcp/22 bypass) and fixes it with the right key. Then with ``ipsec_bypass:
[]`` xfrm_endpoint warns "covers the SSH connection Ansible is using" before applying, in
--check (nothing changes) and for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from safety_lab import (REPO, RESULTS_CALLBACK, inventory_with_group, key_line, out_dir, report, xfrm_dumps,
                        xfrm_stat)

WARNING = "covers the SSH connection Ansible is using"
OTHER_KEY = "0x" + "a7c3" * 10


class NodeAnsible:
    """ansible-playbook run inside a node (the controller is a mesh member)."""

    def __init__(self, node, inventory, work):
        self.node = node
        self.inventory = inventory
        self.work = work
        self.runs = []

    def playbook(self, playbook, extra_vars=None, args=(), expect_rc=0, inventory=None):
        name = "run%02d-%s" % (len(self.runs) + 1, os.path.basename(playbook).split(".")[0])
        callbacks = self.work / "callback_plugins"
        callbacks.mkdir(exist_ok=True)
        (callbacks / "safety_results.py").write_text(RESULTS_CALLBACK)
        results_file = self.work / (name + ".results.json")
        cmd = ["lab-exec", self.node, "env", "ANSIBLE_NOCOLOR=1", "ANSIBLE_HOST_KEY_CHECKING=0",
               "ANSIBLE_CALLBACK_PLUGINS=%s" % callbacks, "ANSIBLE_CALLBACKS_ENABLED=safety_results",
               "SAFETY_RESULTS_FILE=%s" % results_file,
               "ANSIBLE_COLLECTIONS_PATH=%s" % os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(REPO / "build" / "collections")),
               "ansible-playbook", "-i", str(inventory or self.inventory), str(REPO / playbook), *args]
        if extra_vars:
            vars_file = self.work / (name + ".vars.json")
            vars_file.write_text(json.dumps(extra_vars))
            cmd += ["-e", "@%s" % vars_file]
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, cwd=str(REPO))
        proc.seconds = time.monotonic() - started
        (self.work / (name + ".log")).write_text(proc.stdout + "\n--- stderr\n" + proc.stderr)
        proc.results = self._results(results_file)
        proc.returncode_ok = expect_rc is None or proc.returncode == expect_rc
        self.runs.append(proc)
        assert proc.returncode_ok, "%s exited %d\n%s\n%s" % (playbook, proc.returncode, proc.stdout[-10000:], proc.stderr[-3000:])
        return proc

    def _results(self, results_file):
        """The results Ansible wrote inside the node, read through the node: a checkout under
        /tmp is the node's own copy-on-write /tmp there, so the file is not visible outside."""
        shown = subprocess.run(["lab-exec", self.node, "cat", str(results_file)], capture_output=True, text=True,
                               timeout=60, check=False)
        return json.loads(shown.stdout) if shown.returncode == 0 and shown.stdout.strip() else []


@pytest.fixture(scope="module")
def lab(inventory_path, lab_nodes, lab_addresses):
    if os.environ.get("LAB_SSH") != "1":
        pytest.fail("needs a lab started with --ssh")
    work = out_dir("lockout")
    nodes = lab_nodes[:3]
    return {"nodes": nodes, "work": work, "addresses": {n: lab_addresses[n]["ipv4"] for n in nodes},
            "ansible": NodeAnsible("node3", inventory_path, work)}


def _ping(lab_exec, src, address):
    return lab_exec(src, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-q", address, check=False).returncode == 0


def test_mismatched_key_does_not_lock_ansible_out(lab, inventory_path, lab_exec, lab_capture):
    nodes, addresses, ansible = lab["nodes"], lab["addresses"], lab["ansible"]
    mismatched = inventory_with_group(inventory_path, nodes, lab["work"] / "inventory-mismatch.yml",
                                      group_vars={"ipsec_keys_content": key_line(1)},
                                      host_vars={"node2": {"ipsec_keys_content": key_line(1, OTHER_KEY)}})
    first = ansible.playbook("playbooks/mesh.yml", inventory=mismatched, expect_rc=None)
    stat_before = xfrm_stat(lab_exec, ["node2"])
    broken = {"3->2": _ping(lab_exec, "node3", addresses["node2"]), "3->1": _ping(lab_exec, "node3", addresses["node1"])}
    stat_after = xfrm_stat(lab_exec, ["node2"])
    proto_errors = stat_after["node2"]["XfrmInStateProtoError"] - stat_before["node2"]["XfrmInStateProtoError"]
    # Ansible (in node3, over SSH) still reaches node2 and fixes it.
    reach = subprocess.run(["lab-exec", "node3", "ansible", "-i", str(mismatched), "node2", "-m", "ansible.builtin.ping"],
                           capture_output=True, text=True, timeout=300, check=False)
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
    no_bypass = {"ipsec_keys_content": key_line(1), "ipsec_bypass": []}
    before = xfrm_dumps(lab_exec, nodes)
    check = ansible.playbook("playbooks/mesh.yml", extra_vars=no_bypass, args=("--check", "--diff"), expect_rc=None)
    unchanged = xfrm_dumps(lab_exec, nodes)
    real = ansible.playbook("playbooks/mesh.yml", extra_vars=no_bypass, expect_rc=None)
    after = xfrm_dumps(lab_exec, nodes)
    warned_check = _warned(check, nodes)
    warned_real = _warned(real, nodes)
    report("lock-out: no bypass", {"check_rc": check.returncode, "real_rc": real.returncode, "warned_check": warned_check,
                                   "warned_real": warned_real, "in_output": WARNING in check.stdout + check.stderr, "check_unchanged": before == unchanged,
                                   "bypass_policies_left": {n: after[n][1].count("dport 22") for n in nodes}})
    assert check.returncode == 0 and real.returncode == 0
    assert before == unchanged
    # node3 is the controller: its connection to itself stays local; node1 and node2 are reached over the mesh.
    assert warned_check == {"node1": True, "node2": True, "node3": False}, check.stdout[-6000:]
    assert warned_real == warned_check
    assert all(after[n][1].count("dport 22") == 0 for n in nodes)


def _warned(run, nodes):
    """{node: whether one of its task results carries the own-connection warning}."""
    return {node: any(WARNING in warning for r in run.results if r["host"] == node
                      for warning in r["result"].get("warnings", [])) for node in nodes}
