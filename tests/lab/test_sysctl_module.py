# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""netsec.ipsec.sysctl_ipv6_forward on real kernels and real Ansible, inside the UML lab:

    lab/run --nodes 2 -- pytest -q tests/lab/test_sysctl_module.py

Each lab node is its own network namespace with a private /etc, so node2 is the witness
that a run against node1 touches only node1's live values and node1's sysctl.d file.

Ansible starts cost seconds in the lab, so one playbook runs every case against node1 as
tasks, reads the state between them, and hands all registered results back as one JSON
file that the tests below assert on.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator

import pytest

from harness import REPO, Ansible

SYSCTL_FILE = "/etc/sysctl.d/60-netsec-ipsec.conf"
ALL6 = "/proc/sys/net/ipv6/conf/all/forwarding"
# A name with a dot: its key is net.ipv6.conf.eth1/7.forwarding, its path keeps the dot.
DOTTED = "eth1.7"
DOTTED_PATH = "/proc/sys/net/ipv6/conf/%s/forwarding" % DOTTED
DOTTED_KEY = "net.ipv6.conf.eth1/7.forwarding"
DOTTED_RA = "/proc/sys/net/ipv6/conf/%s/accept_ra" % DOTTED
DOTTED_RA_KEY = "net.ipv6.conf.eth1/7.accept_ra"

PLAYBOOK = """
- hosts: node1
  gather_facts: false
  vars:
    read_state: >-
      cat {all6} {dotted}; if [ -e {file} ]; then cat {file}; else echo NO-FILE; fi
  tasks:
    - name: Predict in check mode
      netsec.ipsec.sysctl_ipv6_forward:
        interfaces: [all, "{dotted_name}"]
        keep_router_advertisements: false
      check_mode: true
      diff: true
      register: checked

    - name: State after check mode
      ansible.builtin.shell: "{{{{ read_state }}}}"
      changed_when: false
      register: after_check

    - name: Enable
      netsec.ipsec.sysctl_ipv6_forward:
        interfaces: [all, "{dotted_name}"]
        keep_router_advertisements: false
      diff: true
      register: enabled

    - name: Enable again
      netsec.ipsec.sysctl_ipv6_forward:
        interfaces: [all, "{dotted_name}"]
        keep_router_advertisements: false
      register: again

    - name: State after enabling
      ansible.builtin.shell: "{{{{ read_state }}}}"
      changed_when: false
      register: after_enable

    - name: A missing interface
      netsec.ipsec.sysctl_ipv6_forward:
        interfaces: [all, nosuch0]
        enabled: false
      register: missing
      ignore_errors: true

    - name: State after the failure
      ansible.builtin.shell: "{{{{ read_state }}}}"
      changed_when: false
      register: after_missing

    - name: An interface that accepts router advertisements (accept_ra 1), forwarding off
      ansible.builtin.shell: "echo 1 > {ra}; echo 0 > {dotted}"
      changed_when: true

    - name: Enable forwarding there, router advertisements kept (the default)
      netsec.ipsec.sysctl_ipv6_forward:
        interfaces: ["{dotted_name}"]
      register: kept_ra

    - name: State after keeping router advertisements
      ansible.builtin.shell: "cat {ra} {dotted} {file}"
      changed_when: false
      register: after_kept_ra

    - name: Hand the results to the test
      ansible.builtin.copy:
        content: "{{{{ dict(checked=checked, after_check=after_check.stdout, enabled=enabled, again=again,
                   after_enable=after_enable.stdout, missing=missing, after_missing=after_missing.stdout,
                   kept_ra=kept_ra, after_kept_ra=after_kept_ra.stdout) | to_json }}}}"
        dest: "{out}"
        mode: "0644"
      delegate_to: localhost
"""


def _reset(lab_exec, node: str) -> None:
    lab_exec(node, "sh", "-c", "echo 0 > %s && rm -f %s" % (ALL6, SYSCTL_FILE))


@pytest.fixture(scope="module")
def results(lab_exec, inventory_path, tmp_path_factory) -> Iterator[Dict[str, Any]]:
    """Run the playbook once against node1 (node2 left alone) and return its registered results."""
    for node in ("node1", "node2"):
        _reset(lab_exec, node)
    lab_exec("node1", "ip", "link", "add", DOTTED, "type", "veth", "peer", "name", "peer7")
    work = tmp_path_factory.mktemp("sysctl")
    out = work / "results.json"
    playbook = work / "playbook.yml"
    playbook.write_text(
        PLAYBOOK.format(all6=ALL6, dotted=DOTTED_PATH, ra=DOTTED_RA, file=SYSCTL_FILE, dotted_name=DOTTED, out=out)
    )
    Ansible(inventory_path, work).playbook(str(playbook), timeout=600)
    yield json.loads(out.read_text())
    lab_exec("node1", "ip", "link", "del", DOTTED, check=False)
    for node in ("node1", "node2"):
        _reset(lab_exec, node)


def test_check_mode_predicts_and_changes_nothing(results) -> None:
    checked = results["checked"]
    assert checked["changed"] is True
    assert checked["live"] == {
        "net.ipv6.conf.all.forwarding": {"before": "0", "after": "1"},
        DOTTED_KEY: {"before": "0", "after": "1"},
    }
    assert results["after_check"].split("\n") == ["0", "0", "NO-FILE"]


def test_diff_shows_live_values_and_file(results) -> None:
    live_diff, file_diff = results["checked"]["diff"]
    assert live_diff["before"] == "net.ipv6.conf.all.forwarding = 0\n%s = 0\n" % DOTTED_KEY
    assert live_diff["after"] == "net.ipv6.conf.all.forwarding = 1\n%s = 1\n" % DOTTED_KEY
    assert file_diff["before_header"] == SYSCTL_FILE + " (absent)"
    assert file_diff["after"].startswith("# Managed by netsec.ipsec")
    assert results["enabled"]["diff"] == results["checked"]["diff"]


def test_enabling_changes_node1_live_value_and_file(results) -> None:
    enabled = results["enabled"]
    assert enabled["changed"] is True
    assert enabled["live"] == results["checked"]["live"]
    assert enabled["persisted"] == {
        "net.ipv6.conf.all.forwarding": {"before": None, "after": "1"},
        DOTTED_KEY: {"before": None, "after": "1"},
    }
    lines = results["after_enable"].split("\n")
    assert lines[:2] == ["1", "1"]
    assert lines[-2:] == ["net.ipv6.conf.all.forwarding = 1", DOTTED_KEY + " = 1"]


def test_second_run_is_not_changed(results) -> None:
    again = results["again"]
    assert again["changed"] is False
    assert all(value == {"before": "1", "after": "1"} for value in again["live"].values())


def test_missing_interface_fails_clearly_and_changes_nothing(results) -> None:
    missing = results["missing"]
    assert missing["failed"] is True
    assert missing["changed"] is False
    assert "net.ipv6.conf.nosuch0.forwarding" in missing["msg"]
    assert "/proc/sys/net/ipv6/conf/nosuch0" in missing["msg"]
    # enabled: false was not applied to "all" either
    assert results["after_missing"] == results["after_enable"]


def test_enabling_forwarding_keeps_router_advertisements(results) -> None:
    """accept_ra 1 becomes 2 before forwarding goes on, live and in the file (the kernel drops
    the routes learned from RAs when forwarding goes on where accept_ra is not 2)."""
    kept_ra = results["kept_ra"]
    assert kept_ra["changed"] is True
    assert kept_ra["accept_ra"] == {DOTTED_RA_KEY: {"before": "1", "after": "2"}}
    assert kept_ra["live"] == {DOTTED_KEY: {"before": "0", "after": "1"}}
    lines = results["after_kept_ra"].split("\n")
    assert lines[:2] == ["2", "1"]
    assert lines[-2:] == [DOTTED_RA_KEY + " = 2", DOTTED_KEY + " = 1"]


def test_node2_is_untouched(results, lab_exec) -> None:
    state = lab_exec("node2", "sh", "-c", "cat %s; ls %s 2>&1 || true" % (ALL6, SYSCTL_FILE)).stdout.split("\n")
    assert state[0] == "0"
    assert "No such file" in state[1]


def test_file_mode(results, lab_exec) -> None:
    assert lab_exec("node1", "stat", "-c", "%a", SYSCTL_FILE).stdout.strip() == "644"


def test_read_only_proc_sys_fails_and_writes_nothing(lab_exec) -> None:
    """As in a container: /proc/sys mounted read-only (in a private mount namespace of node2).

    The module runs directly from the checkout here, not through Ansible, because only a
    process inside that private mount namespace sees the read-only mount.
    """
    _reset(lab_exec, "node2")
    args = json.dumps({"ANSIBLE_MODULE_ARGS": {}})
    script = (
        "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys"
        " && printf '%%s' '%s' >/tmp/sysctl-args.json"
        " && PYTHONPATH=%s %s %s /tmp/sysctl-args.json"
    ) % (args, REPO / "build" / "collections", REPO / "build" / "venv" / "bin" / "python", REPO / "plugins" / "modules" / "sysctl_ipv6_forward.py")
    run = lab_exec("node2", "unshare", "--mount", "--propagation", "private", "sh", "-c", script, check=False)
    assert run.returncode == 1, run.stderr
    result = json.loads(run.stdout)
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("cannot write net.ipv6.conf.all.forwarding to %s: read-only file system" % ALL6)
    state = lab_exec("node2", "sh", "-c", "cat %s; ls %s 2>&1 || true" % (ALL6, SYSCTL_FILE)).stdout.split("\n")
    assert state[0] == "0"
    assert "No such file" in state[1]
