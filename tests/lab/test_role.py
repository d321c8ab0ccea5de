# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mesh role and its playbooks on a 4-node lab, as an operator drives them:

    lab/run --nodes 4 -- pytest -q tests/lab/test_role.py

The tests share one mesh and run in file order, each starting from the state the previous
one left (converged, then node1 routes an extra subnet, ...). The kernel is read with
``ip xfrm`` (independent of the collection's code), packets with lab-capture.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Dict, List, Tuple

import pytest
import yaml

from harness import (
    KEYS_FILE, REPO, REQID, SA_HEAD, Ansible, Dump, Run, dump, entry_blocks, inventory_overlay, is_owned, textfile_samples,
)

EXTRA_SUBNET = "10.99.1.0/24"       # node1 starts routing it in test_limit_changes_only_that_node
LONG_HEX = re.compile(r"[0-9a-fA-F]{32,}")
FINAL_PHASE = "netsec.ipsec.mesh : Reconcile SAs and policies with the kernel - all"
KEYS_TASK = "netsec.ipsec.mesh : Install the keys file on the node"
NO_KEY_TASK = "netsec.ipsec.mesh : Stop where the node has no key"
FORWARDING_TASK = "netsec.ipsec.mesh : Enable the forwarding the node needs"
# What set_up.yml runs on a node that needs any of it (a node that needs none ends it, meta end_role).
SET_UP_TASKS = (NO_KEY_TASK, KEYS_TASK, FORWARDING_TASK,
                "netsec.ipsec.mesh : Install the boot unit that restores the node's policies before the network comes up",
                "netsec.ipsec.mesh : Enable the boot unit (a link in sysinit.target.wants)",
                "netsec.ipsec.mesh : Make systemd read the changed boot unit")
# The role's meta end_role steps: printed once per host, with a result only where they skip.
END_ROLE_TASKS = ("netsec.ipsec.mesh : End the set-up where the node needs none",
                  "netsec.ipsec.mesh : End the role where phase 1 found the final state")


def playbook(ansible: Ansible, name: str, *args: str, overlays=()) -> Run:
    """playbooks/NAME on the lab inventory (and ``overlays``), as an operator runs it; the
    tests judge the exit status."""
    return ansible.playbook("playbooks/" + name, args=args, overlays=overlays, expect_rc=None)


def work_tasks(run: Run) -> List[str]:
    """The run's task headings without the role's ``meta: end_role`` steps (shown where they skip)."""
    return [task for task in run.tasks() if task not in END_ROLE_TASKS]


def node_state(lab_exec, node: str) -> Tuple[Dump, str]:
    """What a refused run must leave as it was on ``node``: its XFRM tables and keys file."""
    return dump(lab_exec, node), lab_exec(node, "cat", KEYS_FILE).stdout


def node_states(lab_exec, nodes: List[str]) -> Dict[str, Tuple[Dump, str]]:
    return {node: node_state(lab_exec, node) for node in nodes}


def owned_sas(lab_exec, node: str) -> List[Dict[str, str]]:
    """The node's owned SAs: src, dst, spi and the key (hex), from ip xfrm state."""
    sas = []
    for block in entry_blocks(lab_exec(node, "ip", "xfrm", "state").stdout):
        head = SA_HEAD.match(block)
        aead = Dump.sa_keys(block).get("aead")
        if head and is_owned(block):
            sas.append(dict(src=head.group(1), dst=head.group(2), spi=head.group(3),
                            key="0x" + aead[1].hex() if aead else ""))
    return sas


def sa_pairs(lab_exec, node: str) -> set:
    return {(sa["src"], sa["dst"]) for sa in owned_sas(lab_exec, node)}


def address(node: str) -> str:
    return "10.77.0.%s" % node[len("node"):]


def full_mesh_pairs(node: str, nodes) -> set:
    pairs = set()
    for peer in nodes:
        if peer != node:
            pairs |= {(address(node), address(peer)), (address(peer), address(node))}
    return pairs


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """A vars file with a fresh random key (generated here; never printed)."""
    directory = tmp_path_factory.mktemp("role")
    line = "3+ rfc4106(gcm(aes)) 0x%s 128" % os.urandom(20).hex()
    path = directory / "keys.yml"
    path.write_text(yaml.safe_dump({"ipsec_keys_content": line}))
    return dict(path=path, line=line, hex=line.split()[2][2:], dir=directory)


@pytest.fixture(scope="module")
def subnet_overlay(keys):
    """An inventory overlay: node1 also routes EXTRA_SUBNET."""
    return inventory_overlay(keys["dir"] / "subnets.yml",
                             host_vars={"node1": {"ipsec_subnets": ["10.77.0.1/32", EXTRA_SUBNET]}})


@pytest.fixture(scope="module")
def converged(lab_nodes, keys, lab_exec, lab_ansible, lab_work, under_traffic):
    """node1-3 meshed first (group trio), then node4 joins while node1-3 ping each other."""
    assert lab_nodes == ["node1", "node2", "node3", "node4"]
    trio = inventory_overlay(keys["dir"] / "trio.yml", groups={"trio": ["node1", "node2", "node3"]})
    first = playbook(lab_ansible, "mesh.yml", "-e", "@%s" % keys["path"], "-e", "ipsec_mesh_group=trio", overlays=[trio])
    assert first.returncode == 0, first.explain()
    assert set(first.recap()) == {"node1", "node2", "node3"}
    # node4 joins; the three converged nodes keep pinging each other over ESP meanwhile.
    trio_pairs = [(a, b) for a in lab_nodes[:3] for b in lab_nodes[:3] if a != b]
    with under_traffic(pings=[(src, address(dst)) for src, dst in trio_pairs], work=lab_work, capture=True,
                       lead=1.0, tail=1.0) as window:
        second = playbook(lab_ansible, "mesh.yml", "-e", "@%s" % keys["path"])
    capture, seconds = window.capture, window.seconds
    assert second.returncode == 0, second.explain()
    losses = {"%s>%s" % (src, dst): (window.pings[(src, address(dst))]["sent"], window.pings[(src, address(dst))]["received"])
              for src, dst in trio_pairs}
    print("node4 joins:", json.dumps(dict(seconds=round(seconds), esp=capture.esp_packets(),
                                          plaintext=capture.plaintext, pings=losses)))
    assert capture.plaintext == [], capture.plaintext
    # At most the ping in flight when they were stopped is unanswered.
    assert all(sent - received <= 1 and received > 0 for sent, received in losses.values()), losses
    for node in lab_nodes:
        assert sa_pairs(lab_exec, node) == full_mesh_pairs(node, lab_nodes), node
    return dict(first=first, second=second)


def test_task_count_does_not_depend_on_peer_count(converged):
    first, second = converged["first"], converged["second"]
    # Same task list with 2 peers per node (trio) and 3 peers per node (the four nodes): meta
    # tasks print one heading per host, so they are compared by their results below...
    assert work_tasks(first) == work_tasks(second)
    # ...and the same number of task results on a fresh node: node2 and node3 with 2 peers,
    # node4 (joining) with 3 (node1 also reports the run_once tasks).
    totals = [{host: counts["ok"] + counts["skipped"] for host, counts in run.recap().items()}
              for run in (first, second)]
    print("tasks per play:", len(work_tasks(first)), "results per host (2 peers, 3 peers):", totals)
    assert totals[0]["node2"] == totals[0]["node3"] == totals[1]["node4"], totals
    # node1-3, set up in the first run, skip the set-up as a whole in the second (meta
    # end_role, no result) and run everything else as before.
    for host in ("node1", "node2", "node3"):
        assert totals[0][host] - totals[1][host] == len(SET_UP_TASKS), totals
    for task in SET_UP_TASKS:
        assert set(first.statuses(task)) == {"node1", "node2", "node3"}, (task, first.statuses(task))
        assert set(second.statuses(task)) == {"node4"}, (task, second.statuses(task))


def test_check_diff_on_converged_fleet_changes_nothing(converged, keys, lab_nodes, lab_ansible):
    run = playbook(lab_ansible, "mesh.yml", "--check", "--diff", "-e", "@%s" % keys["path"])
    assert run.returncode == 0, run.explain()
    assert {host: counts["changed"] for host, counts in run.recap().items()} == dict.fromkeys(lab_nodes, 0)
    assert not any(run.diffs(FINAL_PHASE).values()), run.diffs(FINAL_PHASE)


def test_limit_changes_only_that_node(converged, keys, subnet_overlay, lab_exec, lab_nodes, lab_ansible):
    before = {node: dump(lab_exec, node) for node in lab_nodes}
    run = playbook(lab_ansible, "mesh.yml", "--limit", "node1", "-e", "@%s" % keys["path"], overlays=[subnet_overlay])
    assert run.returncode == 0, run.explain()
    assert set(run.recap()) == {"node1"} and run.recap()["node1"]["changed"] > 0, run.explain()
    for node in lab_nodes[1:]:
        assert dump(lab_exec, node) == before[node], "%s changed although outside --limit" % node
    # node1 now forwards for its subnet and still holds every pair.
    policies = lab_exec("node1", "ip", "xfrm", "policy", "list").stdout
    assert "dir fwd" in policies and EXTRA_SUBNET not in before["node1"].text
    for node in lab_nodes:
        assert sa_pairs(lab_exec, node) == full_mesh_pairs(node, lab_nodes), node
    assert lab_exec("node1", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"


def test_check_diff_shows_exactly_the_delta(converged, keys, subnet_overlay, lab_exec, lab_nodes, lab_ansible):
    before = {node: dump(lab_exec, node) for node in lab_nodes}
    run = playbook(lab_ansible, "mesh.yml", "--check", "--diff", "-e", "@%s" % keys["path"], overlays=[subnet_overlay])
    assert run.returncode == 0, run.explain()
    changed = {host: counts["changed"] for host, counts in run.recap().items()}
    assert all(changed[node] > 0 for node in lab_nodes[1:]), changed
    diffs = run.diffs(FINAL_PHASE)
    print("delta:", json.dumps(diffs, indent=1))
    # Each node's diff has three parts: its owned entries ("policy ..." / "state ..."), the
    # boot restore file (ip commands, "xfrm policy ...") and the peer table the endpoint reads
    # (peer-table.json, a JSON line per member).
    entries = {node: [line for line in lines if line[1:].startswith(("policy ", "state "))]
               for node, lines in diffs.items()}
    restore = {node: [line for line in lines if line[1:].startswith("xfrm ")] for node, lines in diffs.items()}
    tables = {node: [line for line in lines if not line[1:].startswith(("policy ", "state ", "xfrm "))]
              for node, lines in diffs.items()}
    # node1 (converged alone under --limit, when its peers could not vouch for each other)
    # only raises its new FWD policies from "use" to "required".
    assert all(re.search(r"^[+-]policy fwd ", line) for line in entries.get("node1", [])), entries.get("node1")
    for node in lab_nodes[1:]:
        # The peers learn node1's new subnet: an OUT policy to it and an IN policy from it...
        lines = entries[node]
        assert lines and all(line.startswith("+") and EXTRA_SUBNET in line for line in lines), lines
        assert len(lines) == 2 and {"out", "in"} == {re.search(r"^\+policy (\w+) ", line).group(1) for line in lines}, lines
        # ...and so does the policy set they would restore at boot...
        assert restore[node] and all(line.startswith("+") and EXTRA_SUBNET in line for line in restore[node]), restore[node]
        # ...and the peer table they are given: node1's entry, now with the subnet.
        added = [line for line in tables[node] if line.startswith("+")]
        removed = [line for line in tables[node] if line.startswith("-")]
        assert len(added) == len(removed) == 1 and '"name":"node1"' in added[0] and EXTRA_SUBNET in added[0] \
            and EXTRA_SUBNET not in removed[0], tables[node]
    for node in lab_nodes:
        assert dump(lab_exec, node) == before[node], "check mode changed %s" % node


def test_node_failing_mid_run_keeps_every_pair(converged, keys, subnet_overlay, lab_exec, lab_ansible, under_traffic,
                                               lab_nodes, tmp_path):
    """node3's connection dies when the outbound phase starts (it completed the inbound one):
    the others finish, nobody loses a pair, and traffic keeps flowing in ESP only."""
    wrapper = tmp_path / "ssh-dies-at-outbound"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# Like lab-ssh, but the connection is lost at the first xfrm_endpoint call of the outbound phase.\n"
        "for last; do :; done\n"
        "case $last in *python*) ;; *) exec lab-ssh \"$@\" ;; esac\n"
        "payload=$(mktemp) && cat >\"$payload\"\n"
        "if grep -q '\"phase\": \"outbound\"' \"$payload\"; then\n"
        "    echo 'ssh: connect to host node3: Connection reset by peer' >&2; exit 255\n"
        "fi\n"
        "exec lab-ssh \"$@\" <\"$payload\"\n")
    wrapper.chmod(0o755)
    overlay = inventory_overlay(tmp_path / "node3-dies.yml", host_vars={"node3": {"ansible_ssh_executable": str(wrapper)}})
    pairs = [(a, b) for a in lab_nodes for b in lab_nodes if a != b]
    with under_traffic(pings=[(src, address(dst)) for src, dst in pairs], work=tmp_path, quiet_pings=False, capture=True,
                       lead=1.0, tail=1.0) as window:
        run = playbook(lab_ansible, "mesh.yml", "-e", "@%s" % keys["path"], overlays=[subnet_overlay, overlay])
    capture = window.capture
    recap = run.recap()
    print("recap:", recap)
    assert run.returncode != 0 and recap["node3"]["unreachable"] == 1, run.explain()
    assert "Reconcile SAs and policies with the kernel - inbound" in run.stdout
    for node in ("node1", "node2", "node4"):
        assert recap[node]["failed"] == 0 and recap[node]["unreachable"] == 0, run.explain()
    # Every node, node3 included, still holds its SAs for every other node.
    for node in lab_nodes:
        assert sa_pairs(lab_exec, node) == full_mesh_pairs(node, lab_nodes), node
    # node2 and node4 completed: they reach node1's new subnet; node3 did not get that far.
    for node in ("node2", "node4"):
        assert EXTRA_SUBNET in lab_exec(node, "ip", "xfrm", "policy", "list").stdout, node
    figures = {}
    for src, dst in pairs:
        seqs, sent = window.pings[(src, address(dst))]["seqs"], window.pings[(src, address(dst))]["sent"]
        lost = [s for s in range(1, max(seqs) + 1) if s not in seqs]
        figures["%s>%s" % (src, dst)] = dict(sent=sent, answered=len(seqs), lost=len(lost))
        assert seqs and not lost and sent - max(seqs) <= 1, (src, dst, sent, lost[:20])
    print("pings while node3 died mid-run:", json.dumps(figures))
    print("wire:", json.dumps(dict(esp=capture.esp_packets(), plaintext=capture.plaintext)))
    assert capture.plaintext == [], capture.plaintext


def test_tags_run_only_their_concern(converged, keys, subnet_overlay, lab_exec, lab_nodes, lab_ansible):
    common = ["-e", "@%s" % keys["path"]]
    # xfrm: node3 catches up on what it missed, nothing else runs.
    xfrm = playbook(lab_ansible, "mesh.yml", "--tags", "xfrm", *common, overlays=[subnet_overlay])
    assert xfrm.returncode == 0, xfrm.explain()
    xfrm_tasks = set(xfrm.tasks())
    assert not xfrm_tasks & {KEYS_TASK, FORWARDING_TASK}, xfrm_tasks
    assert {"netsec.ipsec.mesh : Reconcile SAs and policies with the kernel - %s" % phase
            for phase in ("inbound", "outbound", "all")} <= xfrm_tasks, xfrm_tasks
    changed = {host: counts["changed"] for host, counts in xfrm.recap().items()}
    assert changed["node3"] > 0 and changed["node2"] == changed["node4"] == 0, changed
    assert EXTRA_SUBNET in lab_exec("node3", "ip", "xfrm", "policy", "list").stdout

    # Besides the task of the tag, only the always-tagged checks run: the argument spec
    # validation that ansible-core inserts for roles with meta/argument_specs.yml, and ours.
    always = ["netsec.ipsec.mesh : Validating arguments against arg spec 'main' - "
              "Mesh an inventory group with IPsec ESP by programming XFRM directly",
              "netsec.ipsec.mesh : Refuse a play that runs the mesh in batches (serial)",
              "netsec.ipsec.mesh : Check the inventory contract of every host in the play, once"]
    keys_run = playbook(lab_ansible, "mesh.yml", "--tags", "keys", *common, overlays=[subnet_overlay])
    assert keys_run.returncode == 0, keys_run.explain()
    assert work_tasks(keys_run) == always + [NO_KEY_TASK, KEYS_TASK], keys_run.tasks()

    sysctl_run = playbook(lab_ansible, "mesh.yml", "--tags", "sysctl", *common, overlays=[subnet_overlay])
    assert sysctl_run.returncode == 0, sysctl_run.explain()
    assert work_tasks(sysctl_run) == always + [FORWARDING_TASK], sysctl_run.tasks()
    # node1 routes a subnet: its forwarding is managed (and already on); the others need none.
    assert "ok: [node1]" in sysctl_run.stdout and "skipping: [node2]" in sysctl_run.stdout
    for run in (keys_run, sysctl_run):
        assert all(counts["changed"] == 0 for counts in run.recap().values()), run.explain()


PROM_FILE = "/tmp/netsec_ipsec.prom"      # on each node (its own /tmp)


def _prometheus(lab_exec, node: str) -> Dict[str, List[Tuple[Dict[str, str], float]]]:
    """The node's textfile, parsed: sample name -> [(labels, value)]."""
    return textfile_samples(lab_exec(node, "cat", PROM_FILE).stdout)


def test_status_reports_ok_then_the_breakage(converged, lab_exec, lab_nodes, lab_ansible, tmp_path):
    pairs = len(lab_nodes) * (len(lab_nodes) - 1)
    outputs = ["-e", "ipsec_status_json=%s" % (tmp_path / "status.json"), "-e", "ipsec_status_textfile=%s" % PROM_FILE]
    good = playbook(lab_ansible, "status.yml", *outputs)
    assert good.returncode == 0, good.explain()
    verdicts = json.loads(re.search(r"verdicts: (\{.*?\})", good.stdout).group(1).replace('\\"', '"'))
    print("status, converged:", verdicts)
    assert verdicts == {"ok": pairs}, good.explain()
    report_json = json.loads((tmp_path / "status.json").read_text())
    assert report_json["summary"] == verdicts and report_json["problems"] == [], report_json
    for node in lab_nodes:
        metrics = _prometheus(lab_exec, node)
        assert sorted(labels["peer"] for labels, value in metrics["netsec_ipsec_pair_ok"] if value == 1) == \
            sorted(peer for peer in lab_nodes if peer != node), (node, metrics["netsec_ipsec_pair_ok"])
        assert all(value > 0 for _labels, value in metrics["netsec_ipsec_sa_packets_total"]), metrics

    # Break two pairs: node2 loses its IN SA from node1; node3's IN SA from node1 gets another key.
    in_2 = next(sa for sa in owned_sas(lab_exec, "node2") if sa["src"] == address("node1"))
    lab_exec("node2", "ip", "xfrm", "state", "delete", "src", in_2["src"], "dst", in_2["dst"],
             "proto", "esp", "spi", in_2["spi"])
    in_3 = next(sa for sa in owned_sas(lab_exec, "node3") if sa["src"] == address("node1"))
    lab_exec("node3", "ip", "xfrm", "state", "delete", "src", in_3["src"], "dst", in_3["dst"],
             "proto", "esp", "spi", in_3["spi"])
    lab_exec("node3", "ip", "xfrm", "state", "add", "src", in_3["src"], "dst", in_3["dst"], "proto", "esp",
             "spi", in_3["spi"], "reqid", str(REQID), "mode", "tunnel",
             "aead", "rfc4106(gcm(aes))", "0x" + "77" * 20, "128")
    # A pair that is not ok fails the run (after the report), for a pipeline to act on...
    bad = playbook(lab_ansible, "status.yml", *outputs)
    assert bad.returncode != 0 and set(bad.failures()) == {"node1"}, bad.explain()
    verdicts = json.loads(re.search(r"verdicts: (\{.*?\})", bad.stdout).group(1).replace('\\"', '"'))
    print("status, broken:", verdicts)
    assert verdicts == {"ok": pairs - 2, "missing SA": 1, "key mismatch": 1}
    lines = bad.stdout
    assert re.search(r"-> node2 +10\.77\.0\.1 +-> 10\.77\.0\.2 +spi \S+ +missing SA", lines), lines
    assert re.search(r"-> node3 +10\.77\.0\.1 +-> 10\.77\.0\.3 +spi \S+ +key mismatch", lines), lines
    report_json = json.loads((tmp_path / "status.json").read_text())
    assert report_json["summary"] == verdicts and len(report_json["problems"]) == 2, report_json
    # A pair is the sender's: node1's traffic to node2 and to node3 is not protected as wanted.
    metrics = _prometheus(lab_exec, "node1")
    assert sorted(labels["peer"] for labels, value in metrics["netsec_ipsec_pair_ok"] if value == 0) == ["node2", "node3"], \
        metrics["netsec_ipsec_pair_ok"]
    # ...and only reports with ipsec_status_fail_on_problems=false.
    reported = playbook(lab_ansible, "status.yml", "-e", "ipsec_status_fail_on_problems=false")
    assert reported.returncode == 0, reported.explain()
    assert "missing SA" in reported.stdout and "key mismatch" in reported.stdout


def test_check_diff_masks_keys(converged, keys, subnet_overlay, lab_exec, lab_nodes, lab_ansible):
    """The broken SAs of the previous test: --check --diff shows them re-created, keys masked."""
    secrets = {sa["key"][2:] for node in lab_nodes for sa in owned_sas(lab_exec, node)} | {keys["hex"]}
    run = playbook(lab_ansible, "mesh.yml", "--check", "--diff", "-e", "@%s" % keys["path"], overlays=[subnet_overlay])
    assert run.returncode == 0, run.explain()
    changed = {host: counts["changed"] for host, counts in run.recap().items()}
    assert changed["node2"] > 0 and changed["node3"] > 0 and changed["node1"] == changed["node4"] == 0, changed
    diffs = run.diffs(FINAL_PHASE)
    print("delta:", json.dumps(diffs, indent=1))
    # node2: the missing IN SA from node1 comes back; node3: the wrong one is replaced.
    assert [line for line in diffs["node2"] if line.startswith("+")] and \
        all(address("node1") in line and "sha256:" in line for line in diffs["node2"]), diffs["node2"]
    assert sorted(line[0] for line in diffs["node3"]) == ["+", "-"], diffs["node3"]
    output = run.stdout + run.stderr
    for secret in secrets:
        assert secret.lower() not in output.lower()
    assert not LONG_HEX.search(output), LONG_HEX.search(output).group(0)[:8]


@pytest.mark.parametrize("key_id", [4, 3], ids=["new-key-id", "new-bytes-same-key-id"])
def test_mesh_refuses_a_key_change(converged, keys, lab_exec, lab_nodes, lab_ansible, tmp_path, key_id):
    """A new key id, or new key bytes under the current key id (which would make every peer
    still holding the old bytes drop the traffic), is refused before anything changes."""
    new_key = tmp_path / "new-key.yml"
    new_key.write_text(yaml.safe_dump({"ipsec_keys_content": "%d+ rfc4106(gcm(aes)) 0x%s 128" % (key_id, os.urandom(20).hex())}))
    before = node_states(lab_exec, lab_nodes)
    run = playbook(lab_ansible, "mesh.yml", "-e", "@%s" % new_key)
    assert run.returncode != 0, run.explain()
    assert "netsec.ipsec.rotate playbook" in run.stdout + run.stderr, run.explain()
    assert all(counts["changed"] == 0 for counts in run.recap().values()), run.explain()
    reconciled = {host: statuses for host, statuses in run.statuses("Reconcile SAs").items()
                  if set(statuses) != {"skipping"}}
    assert not reconciled, reconciled
    for node in lab_nodes:
        assert node_state(lab_exec, node) == before[node], node


def test_bad_inventory_is_named_and_changes_nothing(converged, keys, lab_exec, lab_nodes, lab_ansible, tmp_path):
    """A member without addresses stops the play before any node is read (checked once, by
    the run_once assert); a run without a key stops every node that would need one."""
    before = node_states(lab_exec, lab_nodes)
    no_addresses = inventory_overlay(tmp_path / "no-addresses.yml", host_vars={"node2": {"ipsec_addresses": None}})
    run = playbook(lab_ansible, "mesh.yml", "-e", "@%s" % keys["path"], overlays=[no_addresses])
    assert run.returncode != 0 and "node2: ipsec_addresses is not set" in run.stdout + run.stderr, run.explain()
    assert NO_KEY_TASK not in run.tasks() and not run.statuses("Inspect each node"), run.explain()
    no_key = playbook(lab_ansible, "mesh.yml")
    assert no_key.returncode != 0, no_key.explain()
    for node in lab_nodes:
        assert "%s: the mesh needs ipsec_keys_content or ipsec_keys" % node in no_key.stdout + no_key.stderr, \
            no_key.explain()
    assert no_key.statuses(NO_KEY_TASK) == {node: ["fatal"] for node in lab_nodes}, no_key.explain()
    for bad in (run, no_key):
        assert all(counts["changed"] == 0 for counts in bad.recap().values()), bad.explain()
    for node in lab_nodes:
        assert node_state(lab_exec, node) == before[node], node


def test_a_play_in_batches_is_refused_and_changes_nothing(converged, keys, lab_exec, lab_nodes, lab_ansible, tmp_path):
    """serial runs the three phases once per batch, while each phase vouches for every host of
    the play: the role refuses such a play before any node is read, and nothing changes."""
    before = node_states(lab_exec, lab_nodes)
    batched = tmp_path / "mesh-in-batches.yml"
    batched.write_text(yaml.safe_dump([{"name": "Mesh in batches of two", "hosts": "ipsec_mesh", "serial": 2,
                                        "gather_facts": False, "become": True, "roles": ["netsec.ipsec.mesh"]}]))
    run = lab_ansible.playbook(str(batched), args=("-e", "@%s" % keys["path"]), expect_rc=None)
    output = run.stdout + run.stderr
    assert run.returncode != 0 and "this play runs them in batches (serial), 2 of %d now" % len(lab_nodes) in output, \
        run.explain()
    # The first batch failed as a whole, so Ansible ran no other batch; no node was read.
    assert not run.statuses("Inspect each node"), run.explain()
    assert all(counts["changed"] == 0 for counts in run.recap().values()), run.explain()
    for node in lab_nodes:
        assert node_state(lab_exec, node) == before[node], node


def test_role_documentation_renders():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"), ANSIBLE_NOCOLOR="1")
    res = subprocess.run(["ansible-doc", "-t", "role", "netsec.ipsec.mesh"], capture_output=True, text=True,
                         env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    for option in ("ipsec_mesh_group", "ipsec_addresses", "ipsec_keys_content", "ipsec_allow_key_change", "ipsec_phase"):
        assert option in res.stdout
    # Every entry point a playbook uses (tasks_from of rotate.yml and teardown.yml) is declared.
    for entry_point in ("main", "read_members", "reconcile"):
        assert "ENTRY POINT: *%s*" % entry_point in res.stdout, res.stdout[:2000]
