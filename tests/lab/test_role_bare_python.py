# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mesh role on targets whose Python has nothing but its standard library (issue 14):

* node1 and node2 run the modules with a bare virtualenv over Debian's /usr/bin/python3
  (no site packages: not even what the distribution installed), node3 with /usr/bin/python3
  itself; none of them can import pyroute2, and nothing installs anything;
* the mesh converges, carries only ESP between every pair, and a second run changes nothing.

    lab/run --nodes 3 -- pytest -q tests/lab/test_role_bare_python.py
"""

from __future__ import annotations

from harness import inventory_with_group, key_line, report

NODE_PYTHON_ENV = "/tmp/ipsec-python"            # each node's /tmp is its own
BARE_PYTHON = NODE_PYTHON_ENV + "/bin/python"
SYSTEM_PYTHON = "/usr/bin/python3"
THIRD_PARTY = "import importlib.util as u, sys; print(sorted(m for m in ('pyroute2', 'yaml', 'jinja2') if u.find_spec(m)))"


def test_role_converges_with_the_standard_library_alone(lab_nodes, inventory_path, lab_exec, lab_reboot, lab_capture,
                                                        lab_ansible, tmp_path):
    nodes = lab_nodes[:3]
    lab_reboot(*nodes)
    for node in nodes[:2]:
        lab_exec(node, SYSTEM_PYTHON, "-m", "venv", "--without-pip", NODE_PYTHON_ENV)
    interpreters = {nodes[0]: BARE_PYTHON, nodes[1]: BARE_PYTHON, nodes[2]: SYSTEM_PYTHON}
    found = {node: lab_exec(node, python, "-c", THIRD_PARTY).stdout.strip() for node, python in interpreters.items()}
    assert found[nodes[0]] == found[nodes[1]] == "[]", found
    assert "pyroute2" not in found[nodes[2]], found
    try:
        inventory = inventory_with_group(
            inventory_path, nodes, tmp_path / "inventory.yml",
            host_vars={node: {"ansible_python_interpreter": python} for node, python in interpreters.items()})
        extra_vars = {"ipsec_keys_content": key_line(15)}

        first = lab_ansible.playbook("playbooks/mesh.yml", extra_vars=extra_vars, inventory=inventory)
        addresses = {node: "10.77.0.%s" % node[len("node"):] for node in nodes}
        pings = " && ".join("lab-exec %s ping -n -q -c 3 -i 0.2 -W 2 %s" % (src, addresses[dst])
                            for src in nodes for dst in nodes if src != dst)
        capture = lab_capture("bash", "-c", pings)
        assert capture.returncode == 0, capture.stdout + capture.stderr
        esp_pairs = {(entry["src"], entry["dst"]) for entry in capture.esp}
        wanted_pairs = {(addresses[a], addresses[b]) for a in nodes for b in nodes if a != b}
        assert esp_pairs == wanted_pairs, capture.esp
        assert capture.plaintext == [], capture.plaintext

        second = lab_ansible.playbook("playbooks/mesh.yml", extra_vars=extra_vars, inventory=inventory)
        changed = sorted({(r["host"], r["task"]) for r in second.results if r["result"].get("changed")})
        assert changed == [], changed
        still = {node: lab_exec(node, python, "-c", THIRD_PARTY).stdout.strip() for node, python in interpreters.items()}
        assert still == found, still
        report("bare python targets", {"interpreters": interpreters, "third_party_found": found,
                                       "first_seconds": round(first.seconds, 1), "second_seconds": round(second.seconds, 1),
                                       "esp_pairs": len(esp_pairs), "esp_packets": sum(e["packets"] for e in capture.esp),
                                       "plaintext": capture.plaintext})
    finally:
        lab_reboot(*nodes)
