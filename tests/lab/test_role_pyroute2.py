# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The mesh role ensures pyroute2 on nodes that lack it (issue 5), with no network in the lab:

* node1's interpreter is a virtualenv over Debian's /usr/bin/python3 that sees the system's
  packages, and its apt cache holds python3-pyroute2 (downloaded on the host by
  ``make lab-assets``): the role installs the distribution package, which serves it;
* node2's interpreter is a bare virtualenv, which no distribution package can serve, and the
  node reaches no index: the role's pip fallback installs the pinned wheel from a local folder
  (``ipsec_pyroute2_pip_extra_args: --no-index --find-links ...``);
* node3 already has pyroute2 (the lab's venv): nothing is installed there.

Then the mesh carries only ESP with both installed versions, a re-run changes nothing, and with
the pip fallback off a node that still lacks pyroute2 stops with a message and is left as it was.

    lab/run --nodes 3 -- pytest -q tests/lab/test_role_pyroute2.py
"""

from __future__ import annotations

from harness import REPO, dump, inventory_with_group, key_line, report

ASSETS = REPO / "build" / "lab-assets"
NODE_PYTHON_ENV = "/tmp/ipsec-python"            # each node's /tmp is its own
NODE_PYTHON = NODE_PYTHON_ENV + "/bin/python"
SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGE_TASK = "netsec.ipsec.mesh : Install pyroute2 from the distribution"
PIP_TASK = "netsec.ipsec.mesh : Install pyroute2 with pip, the documented fallback"
STOP_TASK = "netsec.ipsec.mesh : Stop where pyroute2 is still missing"
WHERE_PYROUTE2 = "import pyroute2, sys; print(getattr(pyroute2, '__version__', '?'), pyroute2.__file__)"


def _task_results(run, task):
    return {r["host"]: r for r in run.results if r["task"] == task and r["host"]}


def _changed(run, task):
    return sorted(host for host, r in _task_results(run, task).items() if r["result"].get("changed"))


def _ran(run, task):
    return sorted(host for host, r in _task_results(run, task).items()
                  if not (r["result"].get("skipped") or "skip_reason" in r["result"]))


def _pyroute2_of(lab_exec, node):
    res = lab_exec(node, NODE_PYTHON, "-c", WHERE_PYROUTE2, check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def _prepare_nodes(lab_exec, lab_reboot, nodes):
    lab_reboot(*nodes)
    assert lab_exec(nodes[0], SYSTEM_PYTHON, "-c", "import pyroute2", check=False).returncode != 0, \
        "the system Python already has pyroute2: the distribution path would prove nothing"
    lab_exec(nodes[0], SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", NODE_PYTHON_ENV)
    lab_exec(nodes[0], "sh", "-c", "cp %s/debs/*.deb /var/cache/apt/archives/" % ASSETS)
    lab_exec(nodes[1], SYSTEM_PYTHON, "-m", "venv", NODE_PYTHON_ENV)
    for node in nodes[:2]:
        assert _pyroute2_of(lab_exec, node) is None, node


def test_role_installs_pyroute2_where_missing(lab_nodes, inventory_path, lab_exec, lab_reboot, lab_capture, lab_ansible,
                                              tmp_path):
    debs = sorted(path.name for path in (ASSETS / "debs").glob("*.deb"))
    wheels = sorted((ASSETS / "wheels").glob("pyroute2-*.whl"))
    assert any(name.startswith("python3-pyroute2_") for name in debs) and wheels, \
        "%s lacks the package or the wheel: run make lab-assets on the host first" % ASSETS
    nodes = lab_nodes[:3]
    _prepare_nodes(lab_exec, lab_reboot, nodes)
    try:
        ansible = lab_ansible
        inventory = inventory_with_group(
            inventory_path, nodes, tmp_path / "inventory.yml",
            host_vars={node: {"ansible_python_interpreter": NODE_PYTHON} for node in nodes[:2]},
            group_vars={"ipsec_pyroute2_pip_extra_args": "--no-index --find-links %s" % wheels[0].parent})
        extra_vars = {"ipsec_keys_content": key_line(15)}

        first = ansible.playbook("playbooks/mesh.yml", extra_vars=extra_vars, inventory=inventory)
        assert _ran(first, PACKAGE_TASK) == nodes[:2], _ran(first, PACKAGE_TASK)
        assert _changed(first, PACKAGE_TASK) == [nodes[0]]
        assert _changed(first, PIP_TASK) == [nodes[1]], _task_results(first, PIP_TASK)
        installed = {node: _pyroute2_of(lab_exec, node) for node in nodes[:2]}
        assert installed[nodes[0]] and "/usr/lib/python3/dist-packages/" in installed[nodes[0]], installed
        assert installed[nodes[1]] and installed[nodes[1]].split()[0] in wheels[0].name and \
            NODE_PYTHON_ENV in installed[nodes[1]], installed

        addresses = {node: "10.77.0.%s" % node[len("node"):] for node in nodes}
        pings = " && ".join("lab-exec %s ping -n -q -c 3 -i 0.2 -W 2 %s" % (src, addresses[dst])
                            for src in nodes for dst in nodes if src != dst)
        capture = lab_capture("bash", "-c", pings)
        assert capture.returncode == 0, capture.stdout + capture.stderr
        esp_pairs = {(entry["src"], entry["dst"]) for entry in capture.esp}
        wanted_pairs = {(addresses[a], addresses[b]) for a in nodes for b in nodes if a != b}
        assert esp_pairs == wanted_pairs, capture.esp
        assert capture.plaintext == [], capture.plaintext

        second = ansible.playbook("playbooks/mesh.yml", extra_vars=extra_vars, inventory=inventory)
        changed = sorted({(r["host"], r["task"]) for r in second.results if r["result"].get("changed")})
        assert changed == [], changed
        assert _ran(second, PACKAGE_TASK) == [] and _ran(second, PIP_TASK) == []

        # Fallback off: node2 "reboots" (a fresh, bare virtualenv again) and must stop cleanly.
        lab_reboot(nodes[1])
        lab_exec(nodes[1], SYSTEM_PYTHON, "-m", "venv", NODE_PYTHON_ENV)
        before = dump(lab_exec, nodes[1])
        refused = ansible.playbook("playbooks/mesh.yml", extra_vars=dict(extra_vars, ipsec_pyroute2_pip_fallback=False),
                                   inventory=inventory, args=("--limit", nodes[1]), expect_rc=None)
        assert refused.returncode != 0
        message = refused.failures().get(nodes[1], "")
        assert "pyroute2 cannot be imported" in message and NODE_PYTHON in message, refused.failures()
        assert _ran(refused, PIP_TASK) == []
        assert dump(lab_exec, nodes[1]) == before
        assert lab_exec(nodes[1], "test", "-e", "/etc/ipsec/keys", check=False).returncode != 0
        report("pyroute2", {"debs": debs, "wheel": wheels[0].name, "installed": installed,
                            "first_seconds": round(first.seconds, 1), "second_seconds": round(second.seconds, 1),
                            "esp_pairs": len(esp_pairs), "esp_packets": sum(e["packets"] for e in capture.esp),
                            "plaintext": capture.plaintext, "refused": message})
    finally:
        lab_reboot(*nodes)
