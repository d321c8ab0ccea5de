# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 6, item 1: key rotation under continuous traffic (and item 8 on it), in a 4-node lab:

    lab/run --nodes 4 -- pytest -q tests/lab/test_safety_rotation.py

The mesh starts with key id 15; rotate.yml then rotates 15 -> 1 (the wrap) and 1 -> 2 while
every node sends 50 UDP datagrams/s to every other node. Key 2 is an upgrade (issue 16):
AES-256-GCM after AES-128-GCM, allowed because its ESP overhead is the same (37 bytes). Per rotation: 0 datagrams lost,
0 plaintext between mesh addresses on the wire, no increase of the XFRM error counters, and
afterwards only the new key's SAs. A --check run of rotate.yml (before the first rotation,
and once more at the end, where it must also succeed) and of mesh.yml (after the last
rotation: nothing to change) leaves the SAD/SPD as they were.
"""

from __future__ import annotations

import re
import secrets
import time

import pytest

from harness import BAD_COUNTERS, assert_check_mode_unchanged, comparable, dumps, key_line, report
from traffic import losses_in_context

GRACE = 3
# Key id 2: 32 bytes of AES-256 key and the 4-byte salt.
AES256_KEY = "0x" + secrets.token_hex(36)


def _line(spi: int) -> str:
    return key_line(spi, AES256_KEY) if spi == 2 else key_line(spi)


@pytest.fixture(scope="module")
def mesh(lab_nodes, lab_ipv4, lab_ansible):
    assert len(lab_nodes) >= 4, "needs a lab of 4 nodes"
    ansible = lab_ansible
    state = {"ansible": ansible, "spi": 15, "nodes": lab_nodes, "addresses": dict(lab_ipv4)}
    started = time.monotonic()
    ansible.playbook("playbooks/mesh.yml", extra_vars={"ipsec_keys_content": key_line(15)})
    state["mesh_seconds"] = round(time.monotonic() - started, 1)
    return state


def _owned_key_ids(state_text):
    return sorted({int(spi, 16) >> 28 for spi in re.findall(r"proto esp spi (0x[0-9a-f]+) reqid 1853056355 ", state_text)})


@pytest.mark.parametrize("new_spi", [1, 2], ids=["wrap-15-to-1", "then-1-to-2"])
def test_rotation_under_traffic(mesh, new_spi, lab_exec, under_traffic):
    ansible, nodes = mesh["ansible"], mesh["nodes"]
    old_spi = mesh["spi"]
    assert old_spi == {1: 15, 2: 1}[new_spi], "the rotations run in order: 15 -> 1 -> 2"
    new_vars = {"ipsec_keys_content": _line(new_spi), "ipsec_rotate_grace": GRACE}

    # Item 8: a --check rotation runs to the end and changes nothing in any node (once: each
    # run costs minutes in a loaded lab).
    check = None
    if new_spi == 1:
        check = assert_check_mode_unchanged(ansible, lab_exec, nodes, "playbooks/rotate.yml",
                                            extra_vars=dict(new_vars, ipsec_rotate_grace=0))
        assert "steps 2 to 4 wait for the new keys file" in check.stdout, check.stdout[-4000:]

    with under_traffic(mesh["addresses"], tail=1.0) as window:
        run = ansible.playbook("playbooks/rotate.yml", extra_vars=new_vars,
                               capture="rotate-%d-to-%d.pcap" % (old_spi, new_spi), expect_rc=None)
    figures, increase = window.figures, window.xfrm_stat_increase
    mesh["spi"] = new_spi if run.returncode == 0 else old_spi
    node_dumps = dumps(lab_exec, nodes)
    plaintext = run.plaintext(mesh["addresses"].values())
    report("rotation %d->%d" % (old_spi, new_spi), {
        "rotate_rc": run.returncode, "check_rc": check.returncode if check else None, "rotate_seconds": round(run.seconds, 1),
        "check_seconds": round(check.seconds, 1) if check else None,
        "mesh_seconds": mesh.get("mesh_seconds"), "sent": figures["sent"], "lost": figures["lost"],
        "traffic_seconds": figures["seconds"], "min_rate_per_pair": figures["min_rate_per_pair"],
        "esp_packets": run.esp(), "plaintext": plaintext, "xfrm_stat_increase": increase,
        "lost_per_pair": {pair: p["lost"] for pair, p in figures["pairs"].items() if p["lost"]},
        "losses": losses_in_context(figures, run),
        "key_ids_after": {node: _owned_key_ids(node_dumps[node].state) for node in nodes}})
    assert run.returncode == 0, "rotate.yml failed, log %s\n%s" % (run.log, run.stdout[-8000:])
    assert figures["min_rate_per_pair"] >= 45, figures
    assert plaintext == 0, run.capture.plaintext
    assert figures["lost"] == 0, {pair: p for pair, p in figures["pairs"].items() if p["lost"]}
    bad = {node: {name: n for name, n in counters.items() if name in BAD_COUNTERS} for node, counters in increase.items()}
    assert not any(bad.values()), bad
    # Both keys carried traffic during the capture; afterwards only the new key's SAs are left.
    wire_key_ids = {int(entry["spi"], 16) >> 28 for entry in run.capture.esp}
    assert {old_spi, new_spi} <= wire_key_ids, run.capture.esp
    for node in nodes:
        assert _owned_key_ids(node_dumps[node].state) == [new_spi], (node, node_dumps[node].state)
        keys_file = lab_exec(node, "cat", "/etc/ipsec/keys").stdout
        assert keys_file.strip().splitlines() == [_line(new_spi)], node
        aead_keys = re.findall(r"aead rfc4106\(gcm\(aes\)\) 0x([0-9a-f]+) 128", node_dumps[node].state)
        assert aead_keys and {len(key) // 2 for key in aead_keys} == {36 if new_spi == 2 else 20}, (node, node_dumps[node].state)

    # After the last rotation mesh.yml with the new key changes nothing (and --check leaves the tables alone).
    if new_spi != 2:
        return
    settled = comparable(node_dumps)
    check_mesh = assert_check_mode_unchanged(ansible, lab_exec, nodes, "playbooks/mesh.yml",
                                             extra_vars={"ipsec_keys_content": _line(new_spi)})
    changed = [(r["host"], r["task"]) for r in check_mesh.results if r["result"].get("changed")]
    assert changed == [], changed
    assert comparable(dumps(lab_exec, nodes)) == settled


def test_rotate_check_mode_succeeds(mesh, lab_exec):
    """rotate.yml --check --diff, the documented way to preview a rotation, runs to the end
    on the rotated mesh (and changes nothing); the keys-file delta is shown masked."""
    new_spi = mesh["spi"] % 15 + 1
    run = assert_check_mode_unchanged(mesh["ansible"], lab_exec, mesh["nodes"], "playbooks/rotate.yml",
                                      extra_vars={"ipsec_keys_content": key_line(new_spi, "0x" + "5b" * 20),
                                                  "ipsec_rotate_grace": 0}, expect_rc=None)
    failed = sorted({(r["task"], r["result"].get("msg")) for r in run.results if r.get("failed")})
    report("rotate --check", {"rc": run.returncode, "seconds": round(run.seconds, 1), "failed": failed})
    assert run.returncode == 0, failed
    changed = sorted({(r["host"], r["task"]) for r in run.results if r["result"].get("changed")})
    assert {task for _host, task in changed} == {"Step 1, the new key joins the current one in every keys file"}, changed
    assert "5b" * 20 not in run.stdout.lower() and "0x" + "5b" * 4 not in run.stdout.lower()
