# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module xfrm_endpoint on the host kernel, in a throwaway namespace.

The host kernel has XFRM policies but no ESP, so a real run fails at the first SA: that is
how these tests prove the rollback (the node is left exactly as it was) and that check mode
and teardown only touch owned entries. SAs and traffic are proven in the lab.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

from conftest import ip_xfrm

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "plugins" / "modules" / "xfrm_endpoint.py"
BOOT_B = "0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb"
MASTER_KEY = "3db536c1f0e7a9b2c4d5e6f708192a3b4c5d6e7f"


def run_module(netns: str, tmp_path: Path, **args: Any) -> Dict[str, Any]:
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    environment = dict(os.environ, PYTHONPATH=str(ROOT / "build" / "collections"))
    completed = subprocess.run(["ip", "netns", "exec", netns, sys.executable, str(MODULE), str(args_file)],
                               capture_output=True, text=True, env=environment, check=False)
    return json.loads(completed.stdout)


def keys_file(tmp_path: Path) -> str:
    path = tmp_path / "keys"
    path.write_text("3+ rfc4106(gcm(aes)) 0x%s 128\n" % MASTER_KEY)
    return str(path)


def endpoint_args(tmp_path: Path, **extra: Any) -> Dict[str, Any]:
    args: Dict[str, Any] = dict(keys_file=keys_file(tmp_path), local={"addresses": ["10.77.0.1"]},
                                peers=[{"name": "node2", "addresses": ["10.77.0.2"], "boot_id": BOOT_B}],
                                state_dir=str(tmp_path / "state"), _ansible_diff=True)
    args.update(extra)
    return args


def dump(netns: str) -> str:
    return ip_xfrm(netns, "state") + ip_xfrm(netns, "policy")


def assert_no_key_material(result: Dict[str, Any]) -> None:
    text = json.dumps(result)
    raw = bytes.fromhex(MASTER_KEY)
    for spelling in (MASTER_KEY, MASTER_KEY.upper(), base64.b64encode(raw).decode()):
        assert spelling not in text


def test_check_mode_reports_the_delta_and_changes_nothing(netns_name: str, tmp_path: Path) -> None:
    before = dump(netns_name)
    result = run_module(netns_name, tmp_path, _ansible_check_mode=True, **endpoint_args(tmp_path))
    assert result["changed"] is True
    assert result["sas"]["added"] == 2 and result["policies"]["added"] == 4
    assert any(line.startswith("state 10.77.0.1 -> 10.77.0.2 esp spi 0x3") and "key sha256:" in line
               for line in result["added"])
    assert "policy out 0.0.0.0/0 -> 10.77.0.2/32" in result["diff"][0]["after"]
    # The boot restore file and the keying record would be written: shown, not written.
    assert result["state_files_changed"] is True and "xfrm policy update" in result["diff"][1]["after"]
    assert not (tmp_path / "state").exists()
    assert dump(netns_name) == before
    assert_no_key_material(result)


def test_the_lines_come_with_verbosity_or_diff_the_counts_always(netns_name: str, tmp_path: Path) -> None:
    """The module run as Ansible runs it: without --diff and -v its result counts the entries
    and lists none (issue 17); -v (verbosity 1) lists them."""
    args = endpoint_args(tmp_path)
    args["_ansible_diff"] = False
    quiet = run_module(netns_name, tmp_path, _ansible_check_mode=True, **args)
    verbose = run_module(netns_name, tmp_path, _ansible_check_mode=True, _ansible_verbosity=1, **args)
    assert quiet["sas"] == verbose["sas"] and quiet["sas"]["added"] == 2 and quiet["policies"]["added"] == 4
    assert not {"added", "updated", "removed", "diff"} & set(quiet)
    assert len(verbose["added"]) == 6 and verbose["updated"] == verbose["removed"] == [] and "diff" not in verbose


def test_a_node_locked_by_another_run_is_left_alone(netns_name: str, tmp_path: Path) -> None:
    """Another run holds the node lock (issue 16): after the bounded wait the task fails naming
    that process, and neither the kernel nor the state files changed."""
    holder_code = (
        "import sys, time\n"
        "from ansible_collections.netsec.ipsec.plugins.module_utils._lock import node_lock\n"
        "with node_lock('netsec.ipsec.rotate-test', timeout=30):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    environment = dict(os.environ, PYTHONPATH=str(ROOT / "build" / "collections"))
    holder = subprocess.Popen([sys.executable, "-c", holder_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=environment)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = dump(netns_name)
        result = run_module(netns_name, tmp_path, lock_timeout=0.5, **endpoint_args(tmp_path))
        assert result["failed"] is True and result.get("changed", False) is False
        assert "/run/netsec-ipsec.lock" in result["msg"] and "pid=%d" % holder.pid in result["msg"]
        assert "module=netsec.ipsec.rotate-test" in result["msg"] and "nothing was changed" in result["msg"]
        assert dump(netns_name) == before and not (tmp_path / "state").exists()
    finally:
        holder.communicate("")
    # Released: the same task now gets the lock (checked: this kernel has no ESP to apply).
    released = run_module(netns_name, tmp_path, lock_timeout=0.5, _ansible_check_mode=True, **endpoint_args(tmp_path))
    assert released["changed"] is True, released.get("msg")


def test_a_refused_sa_rolls_back_and_leaves_the_node_as_it_was(netns_name: str, tmp_path: Path) -> None:
    ip_xfrm(netns_name, "policy", "add", "src", "192.0.2.0/24", "dst", "198.51.100.0/24", "dir", "out",
            "priority", "5")
    before = dump(netns_name)
    result = run_module(netns_name, tmp_path, **endpoint_args(tmp_path))
    assert result["failed"] is True
    assert "add state 10.77.0.2 -> 10.77.0.1 esp spi" in result["msg"]
    assert "rolled back, the node is as it was" in result["msg"]
    assert result["applied"] == [] and result["changed"] is False
    assert dump(netns_name) == before
    assert_no_key_material(result)


def test_absent_removes_only_owned_entries(netns_name: str, tmp_path: Path) -> None:
    ip_xfrm(netns_name, "policy", "add", "src", "192.0.2.0/24", "dst", "198.51.100.0/24", "dir", "out",
            "priority", "5")
    foreign = dump(netns_name)
    # An owned policy, as the module would install it (reqid 0x6e736563 in its template).
    ip_xfrm(netns_name, "policy", "add", "src", "0.0.0.0/0", "dst", "10.77.0.2/32", "dir", "out",
            "priority", "28416", "tmpl", "src", "10.77.0.1", "dst", "10.77.0.2", "proto", "esp",
            "reqid", str(0x6E736563), "mode", "tunnel")
    result = run_module(netns_name, tmp_path, state="absent", **endpoint_args(tmp_path))
    assert result["changed"] is True and result["policies"]["removed"] == 1
    assert dump(netns_name) == foreign
    again = run_module(netns_name, tmp_path, state="absent", **endpoint_args(tmp_path))
    assert again["changed"] is False


def test_missing_keys_file_is_a_clear_error(netns_name: str, tmp_path: Path) -> None:
    result = run_module(netns_name, tmp_path, **endpoint_args(tmp_path, keys_file=str(tmp_path / "nope")))
    assert result["failed"] is True and result["msg"] == "%s: no such file" % (tmp_path / "nope")


def test_a_policy_covering_the_ssh_connection_is_warned_about(netns_name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "10.77.0.2 51234 10.77.0.1 22")
    result = run_module(netns_name, tmp_path, _ansible_check_mode=True, **endpoint_args(tmp_path, bypass=[]))
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
    assert any("covers the SSH connection Ansible is using" in w for w in warnings), warnings
    result = run_module(netns_name, tmp_path, _ansible_check_mode=True, **endpoint_args(tmp_path))
    assert not any("SSH connection" in str(w) for w in result.get("warnings", []))
