# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 6, items 4 and 5 (and 8): one full life cycle of a 3-node mesh, in a lab:

    lab/run --nodes 3 -- pytest -q tests/lab/test_safety_foreign_secrets.py

Every node first gets a strongSwan-like set of foreign XFRM entries (reqids 1 and 2,
priorities 375423 and 383615, template policies ``tmpl ... reqid 1 mode tunnel`` in, out and
fwd, a template-less allow pair, and a foreign SA between two mesh nodes). Then, all with
``-vvv --diff``: mesh.yml; mesh.yml --check; a purge (node3 leaves the group); rotate.yml
(key id 1 -> 2, node3 back in the group); status.yml; teardown.yml --check; teardown.yml.

Item 5: after every step the foreign entries' lines in ``ip xfrm state`` / ``ip xfrm policy``
are byte-identical to the baseline. Item 4: no key material (the master keys and every
per-pair key read from the kernel's SAs; hex lower and upper case, base64, raw bytes) is in
any output or task result, in the Ansible temp dirs, or in any file under the nodes'
/etc /root /var /tmp (the keys file aside) or the controller's ~/.ansible and run logs; the keys file is 0600.
Item 8: every --check run leaves every node's SAD/SPD as it was.
"""

from __future__ import annotations

import os
import time

from harness import (MASTER, assert_check_mode_unchanged, dumps, inventory_with_group, key_line, report, run_local, scan_for_keys,
                     text_leaks)

LAB_DIR = os.environ.get("LAB_DIR", "/lab")

FOREIGN = """xfrm state add src {me} dst 192.0.2.10 proto esp spi 0xc0000001 reqid 1 mode tunnel aead rfc4106(gcm(aes)) 0x{k1} 128
xfrm state add src 192.0.2.10 dst {me} proto esp spi 0xc0000002 reqid 1 mode tunnel aead rfc4106(gcm(aes)) 0x{k1} 128
xfrm state add src {me} dst 192.0.2.20 proto esp spi 0xc0000003 reqid 2 mode tunnel enc cbc(aes) 0x{k2} auth-trunc hmac(sha256) 0x{k3} 128
xfrm state add src 192.0.2.20 dst {me} proto esp spi 0xc0000004 reqid 2 mode tunnel enc cbc(aes) 0x{k2} auth-trunc hmac(sha256) 0x{k3} 128
xfrm state add src {me} dst {next} proto esp spi 0x00004242 reqid 2 mode tunnel aead rfc4106(gcm(aes)) 0x{k1} 128
xfrm policy add src {me}/32 dst 198.51.100.0/24 dir out priority 375423 tmpl src {me} dst 192.0.2.10 proto esp reqid 1 mode tunnel
xfrm policy add src 198.51.100.0/24 dst {me}/32 dir in priority 375423 tmpl src 192.0.2.10 dst {me} proto esp reqid 1 mode tunnel
xfrm policy add src 198.51.100.0/24 dst {me}/32 dir fwd priority 375423 tmpl src 192.0.2.10 dst {me} proto esp reqid 1 mode tunnel
xfrm policy add src {me}/32 dst 203.0.113.0/24 dir out priority 383615 tmpl src {me} dst 192.0.2.20 proto esp reqid 2 mode tunnel
xfrm policy add src 203.0.113.0/24 dst {me}/32 dir in priority 383615 tmpl src 192.0.2.20 dst {me} proto esp reqid 2 mode tunnel
xfrm policy add src 192.168.0.0/16 dst 192.168.0.0/16 dir out priority 2500 action allow
xfrm policy add src 192.168.0.0/16 dst 192.168.0.0/16 dir in priority 2500 action allow
"""
FOREIGN_KEYS = ("5e" * 20, "6f" * 16, "7a" * 32)


def foreign_lines(node_dumps):
    return {node: (node_dump.foreign_states(), node_dump.foreign_policies()) for node, node_dump in node_dumps.items()}


def owned_counts(node_dumps):
    return {node: (len(node_dump.owned_states()), len(node_dump.owned_policies())) for node, node_dump in node_dumps.items()}


def test_foreign_entries_and_secrets_through_a_life_cycle(inventory_path, lab_nodes, lab_ipv4, lab_exec, lab_ansible, lab_work):
    nodes = lab_nodes[:3]
    assert len(nodes) == 3, "needs a lab of 3 nodes"
    work = lab_work
    started = time.time()
    addresses = {node: lab_ipv4[node] for node in nodes}
    for index, node in enumerate(nodes):
        lab_exec(node, "ip", "-batch", "-", input=FOREIGN.format(
            me=addresses[node], next=addresses[nodes[(index + 1) % 3]],
            k1=FOREIGN_KEYS[0], k2=FOREIGN_KEYS[1], k3=FOREIGN_KEYS[2]))
    baseline = foreign_lines(dumps(lab_exec, nodes))
    for node in nodes:
        assert len(baseline[node][0]) == 5 and len(baseline[node][1]) == 7, baseline[node]

    ansible = lab_ansible
    verbose = ("-vvv", "--diff")
    derived = set()
    steps = {}

    def after(step, expect_owned=None):
        node_dumps = dumps(lab_exec, nodes)
        for node_dump in node_dumps.values():
            derived.update(node_dump.keys(owned_only=True))
        assert foreign_lines(node_dumps) == baseline, "foreign entries changed by: %s" % step
        counts = owned_counts(node_dumps)
        steps[step] = {"owned_sas_policies": counts, "seconds": round(ansible.runs[-1].seconds, 1)}
        if expect_owned is not None:
            assert counts == expect_owned, (step, counts)
        return node_dumps

    v1 = {"ipsec_keys_content": key_line(1)}
    ansible.playbook("playbooks/mesh.yml", extra_vars=v1, args=verbose)
    # 2 peers: 2 OUT + 2 IN SAs; OUT + IN policy per peer + 2 bypass policies (tcp/22, server side).
    after("mesh", {node: (4, 6) for node in nodes})
    assert_check_mode_unchanged(ansible, lab_exec, nodes, "playbooks/mesh.yml", extra_vars=v1, args=("-vvv",))
    after("mesh --check")

    two = inventory_with_group(inventory_path, nodes[:2], work / "inventory-2.yml")
    ansible.playbook("playbooks/mesh.yml", extra_vars=v1, args=verbose, inventory=two)
    purged = after("purge node3")
    for node in nodes[:2]:
        assert addresses[nodes[2]] not in "".join(purged[node].owned_states()), node

    ansible.playbook("playbooks/rotate.yml", extra_vars={"ipsec_keys_content": key_line(2), "ipsec_rotate_grace": 1},
                     args=verbose)
    after("rotate 1->2", {node: (4, 6) for node in nodes})
    status = ansible.playbook("playbooks/status.yml", extra_vars={"ipsec_keys_content": key_line(2)}, args=verbose)
    after("status")
    modes = {node: lab_exec(node, "stat", "-c", "%a %U", "/etc/ipsec/keys").stdout.strip() for node in nodes}
    assert_check_mode_unchanged(ansible, lab_exec, nodes, "playbooks/teardown.yml", args=("-vvv",))
    after("teardown --check")
    ansible.playbook("playbooks/teardown.yml", args=verbose)
    after("teardown", {node: (0, 0) for node in nodes})

    # Item 4: the secrets.
    secrets = {bytes.fromhex(MASTER[1][2:]), bytes.fromhex(MASTER[2][2:])} | derived
    output_leaks = {index: text_leaks(run.text(), secrets) for index, run in enumerate(ansible.runs, start=1)}
    # What each node wrote is in the upper layers of its overlays (/etc /root /var /tmp); the
    # controller's home is the host's (gigabytes of caches): the files changed under ~/.ansible
    # since the test began, and the logs and results of the runs (the extra-vars files, which
    # hold the master keys as a vault would, aside).
    node_scans = {}
    for node in nodes:
        upper = "%s/nodes/%s" % (LAB_DIR, node)
        node_scans[node] = scan_for_keys(run_local, secrets, [upper + "/etc.u", upper + "/root.u", upper + "/var.u",
                                                              upper + "/tmp.u"], skip=[upper + "/etc.u/ipsec/keys"])
        node_scans[node + " ansible tmp"] = run_local("sh", "-c", "find %s/root.u/.ansible/tmp -type f 2>/dev/null | wc -l"
                                                      % upper).stdout.strip()
    skip = [str(path) for path in work.glob("*.vars.json")]
    controller = scan_for_keys(run_local, secrets, ["/root/.ansible", str(work)], skip=skip, newer_than=started)
    controller_tmp = run_local("sh", "-c", "find /root/.ansible/tmp -type f -newermt @%d 2>/dev/null" % started
                               ).stdout.split()
    report("foreign entries + secrets", {
        "steps": steps, "derived_keys": len(derived), "secrets_searched": len(secrets),
        "runs": len(ansible.runs), "output_chars": sum(len(run.text()) for run in ansible.runs),
        "output_leaks": {k: v for k, v in output_leaks.items() if v}, "node_scans": node_scans,
        "controller_scan": controller, "controller_ansible_tmp_files": controller_tmp, "keys_file_modes": modes,
        "status_verdicts": [line for line in status.stdout.splitlines() if "verdicts" in line][:1]})
    assert len(derived) >= 12     # 6 per-pair keys per key id, two key ids (plus the rotation's overlap)
    assert not any(output_leaks.values()), output_leaks
    for node in nodes:
        assert node_scans[node][0] > 0 and node_scans[node][1] == [], node_scans[node]
        assert node_scans[node + " ansible tmp"] == "0"
    assert controller[0] > 0 and controller[1] == [], controller
    assert controller_tmp == [], controller_tmp
    assert set(modes.values()) == {"600 root"}, modes
