"""lab-reboot with and without --keep-disk, run on the HOST: each module fixture boots one lab that
runs lab_reboot_scenario.py (the steps) and returns what it recorded; the tests check it.

    build/venv/bin/pytest -q tests/labtool/test_lab_reboot.py
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_lab_run import UML, lab_run, out_dir

REPO = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).with_name("lab_reboot_scenario.py")
_spec = importlib.util.spec_from_file_location("lab_reboot_scenario", SCENARIO)
scenario = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scenario)

pytestmark = pytest.mark.skipif(not os.access(UML, os.X_OK), reason=f"needs {UML} (user-mode-linux)")


def run_scenario(tmp_path_factory, name, *lab_args):
    base = tmp_path_factory.mktemp("reboot-" + name)
    res = lab_run(base, *lab_args, "--", "python", str(SCENARIO.relative_to(REPO)), name, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads((Path(out_dir(res.stderr)) / "reboot.json").read_text())


@pytest.fixture(scope="module")
def main(tmp_path_factory):
    return run_scenario(tmp_path_factory, "main", "--nodes", "3")


@pytest.fixture(scope="module")
def with_ssh(tmp_path_factory):
    return run_scenario(tmp_path_factory, "ssh", "--nodes", "2", "--ssh")


def lines(reboot):
    return reboot["stdout"].splitlines()


# --- the unit files are real units -----------------------------------------------------------

def test_test_units_pass_systemd_analyze_verify(tmp_path):
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.fail("systemd-analyze is missing (apt-get install systemd)")
    for name, unit in scenario.UNITS.items():
        text = unit[0]
        (tmp_path / name).write_text(text)
        res = subprocess.run([verify, "verify", "--man=no", str(tmp_path / name)], capture_output=True, text=True,
                             check=False)
        assert res.returncode == 0 and res.stderr == "", (name, res.stderr)


# --- disk, kernel state, /tmp, /run, boot id --------------------------------------------------

def test_keep_disk_keeps_etc_root_var_and_nothing_else(main):
    assert main["node1_before"]["disk"] == scenario.DISK
    assert main["node1_keep"]["rc"] == 0, main["node1_keep"]
    assert main["node1_after_keep"]["disk"] == ["/etc/lab-disk", "/root/lab-disk", "/var/lab-disk"]


def test_plain_reboot_wipes_the_disk(main):
    assert main["node1_plain"] == dict(main["node1_plain"], rc=0, stdout="", stderr="")
    assert main["node1_after_plain"]["disk"] == []


@pytest.mark.parametrize("after", ["node1_after_keep", "node1_after_plain"])
def test_tmp_and_run_start_empty(main, after):
    """/run is a new tmpfs; /tmp's upper layer is new (what shows is the lab's own /tmp, the lower
    layer of every node's /tmp, as for a node never rebooted)."""
    state = main[after]
    assert state["run"] == []
    assert state["tmp_upper"] == []
    assert state["tmp"] == main["fresh"]["tmp"]
    assert "lab-disk" in main["node1_before"]["tmp"] and "lab-disk" in main["node1_before"]["run"]


def test_boot_id_changes(main):
    ids = [main[k]["boot_id"] for k in ("node1_before", "node1_after_keep", "node1_after_plain")]
    assert len(set(ids)) == 3 and all(re.fullmatch(r"[0-9a-f-]{36}", i) for i in ids)


def test_kernel_state_resets_and_the_nodes_sysctl_drop_in_applies(main):
    fresh = main["fresh"]["sysctl"]
    before, after = main["node1_before"], main["node1_after_keep"]
    assert before["xfrm_policies"] and before["sysctl"]["net.ipv4.ip_forward"] == "1" != fresh["net.ipv4.ip_forward"]
    assert after["xfrm_policies"] == []
    assert after["sysctl"] == dict(fresh, **{"net.ipv4.conf.all.arp_ignore": "2",
                                             "net.ipv4.conf.eth1.arp_announce": "2"})
    assert fresh["net.ipv4.conf.all.arp_ignore"] == fresh["net.ipv4.conf.eth1.arp_announce"] == "0"
    assert lines(main["node1_keep"]) == ["node1 systemd-sysctl.service ok (2 settings from 60-lab.conf)"]
    # the host's drop-in (net.ipv4.conf.all.arp_filter = 1) never applies
    assert fresh["net.ipv4.conf.all.arp_filter"] == after["sysctl"]["net.ipv4.conf.all.arp_filter"] == "0"


def test_plain_reboot_applies_nothing(main):
    assert main["node1_after_plain"]["sysctl"] == main["fresh"]["sysctl"]
    assert main["node1_after_plain"]["xfrm_policies"] == []


# --- units -------------------------------------------------------------------------------------

def test_units_run_in_their_order_with_conditions(main):
    reboot, after = main["node2_keep"], main["node2_after_keep"]
    assert reboot["rc"] == 0, reboot
    # lab-restore first (the network waits for it), then by name except where ordered (c, b, a)
    assert lines(reboot) == [
        "node2 lab-restore.service ok",
        "node2 lab-cond-negated.service ok",
        "node2 lab-cond.service skipped (ConditionPathExists=/var/lib/lab-test/absent not met)",
        "node2 lab-ignore.service ok (ExecStart=-/bin/false: exit status 1, ignored)",
        "node2 lab-online.service ok",
        "node2 lab-order-c.service ok",
        "node2 lab-order-b.service ok",
        "node2 lab-order-a.service ok",
    ]
    assert after["order"] == ["lab-restore", "lab-cond-negated", "lab-ignore", "lab-online", "lab-order-c",
                              "lab-order-b", "lab-order-a"]


def test_restore_unit_installs_the_policy_before_the_network_comes_up(main):
    before, after = main["node2_before"], main["node2_after_keep"]
    assert before["xfrm_policies"] == []
    policies = "\n".join(after["xfrm_policies"])
    assert "src 10.77.0.2/32 dst 10.77.0.1/32 proto udp dport 9" in policies and "action block" in policies
    assert after["eth1_at_restore"] == []           # eth1 had no address yet
    assert any("10.77.0.2/24" in line for line in after["eth1_at_online"])
    assert any("10.77.0.2/24" in line for line in after["eth1"])


def test_disabled_and_host_units_never_run(main):
    for state in (main["node2_after_keep"], main["both_after"]["node2"], main["node1_after_keep"]):
        assert "lab-disabled" not in state["marks"] and "lab-host" not in state["marks"]
    for reboot in (main["node1_keep"], main["node2_keep"], main["both_keep"]):
        assert "lab-disabled" not in reboot["stdout"] and "lab-host" not in reboot["stdout"]
        assert "postgresql" not in reboot["stdout"] and "ssh.service" not in reboot["stdout"]


def test_failing_unit_makes_lab_reboot_fail_naming_it(main):
    reboot, after = main["node3_fail"], main["node3_after_fail"]
    assert reboot["rc"] == 2
    assert lines(reboot) == [
        "node3 lab-fail.service failed (ExecStart=/bin/sh -c 'echo boom >&2; exit 3': exit status 3)",
        "node3 lab-after-fail.service ok",
    ]
    assert "lab-reboot: node3: lab-fail.service| boom" in reboot["stderr"]
    assert "lab-reboot: node3: lab-fail.service failed: ExecStart=/bin/sh -c 'echo boom >&2; exit 3'" \
        in reboot["stderr"]
    assert "lab-fail" not in after["marks"] and "lab-after-fail" in after["marks"]


def test_boot_files_the_lab_cannot_emulate_are_refused_and_none_runs(main):
    reboot, after = main["node3_unsupported"], main["node3_after_unsupported"]
    assert reboot["rc"] == 3
    assert reboot["stdout"] == ""
    assert "lab-reboot: node3: not emulated: /etc/systemd/system/lab-simple.service:5: Type=simple is not" \
           " emulated (only Type=oneshot)" in reboot["stderr"]
    assert "lab-reboot: node3: not emulated: /etc/sysctl.d/70-lab-kernel.conf:1: kernel.pid_max: only net.*" \
           " settings are emulated" in reboot["stderr"]
    assert after["marks"] == [] and after["sysctl"]["net.ipv4.conf.all.arp_ignore"] == "0"
    assert any("10.77.0.3/24" in line for line in after["eth1"])        # the node can still be reached


def test_ordering_cycle_is_refused(main):
    reboot = main["node3_cycle"]
    assert reboot["rc"] == 3 and reboot["stdout"] == ""
    assert "not emulated: ordering cycle (each starts before the next): lab-cycle-a.service ->" \
           " lab-cycle-b.service -> lab-cycle-a.service" in reboot["stderr"]


def test_two_nodes_at_once(main):
    reboot, before, after = main["both_keep"], main["both_before"], main["both_after"]
    assert reboot["rc"] == 0, reboot
    assert sorted(lines(reboot)) == sorted(
        ["node1 systemd-sysctl.service ok (2 settings from 60-lab.conf)"] + [
            "node2 " + line.split(" ", 1)[1] for line in lines(main["node2_keep"])])
    for node in ("node1", "node2"):
        assert after[node]["boot_id"] != before[node]["boot_id"]
    assert after["node1"]["disk"] == ["/etc/lab-disk"]
    assert after["node1"]["sysctl"]["net.ipv4.conf.all.arp_ignore"] == "2"
    assert after["node2"]["order"] == main["node2_after_keep"]["order"]


def test_usage_errors(tmp_path):
    res = lab_run(tmp_path, "--nodes", "2", "--", "sh", "-c",
                  "lab-reboot --keep-disk; echo $?; lab-reboot --bogus node1; echo $?;"
                  " lab-reboot node3; echo $?; lab-reboot --keep-disk node1 1; echo $?")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["125"] * 4
    assert "lab-reboot: unknown option: --bogus" in res.stderr
    assert "lab-reboot: no such node: node3" in res.stderr
    assert "lab-reboot: node1 given twice" in res.stderr


def test_with_ssh_sshd_comes_back_after_the_network(with_ssh):
    assert with_ssh["keep"]["rc"] == 0, with_ssh["keep"]
    assert with_ssh["ssh_rc"] == 0
    assert with_ssh["ssh_boot_id"] == with_ssh["state"]["boot_id"] != with_ssh["before"]
    assert "lab-restore" in with_ssh["state"]["marks"]


def test_timing_is_reported(main):
    """Not a limit: the figures for the README (lab-reboot with one unit, and plain)."""
    keep = [r["seconds"] for r in main["timing"]["keep_one_unit"]]
    plain = [r["seconds"] for r in main["timing"]["plain"]]
    assert all(r["rc"] == 0 for r in main["timing"]["keep_one_unit"] + main["timing"]["plain"])
    assert all(line == "node1 lab-one.service ok" or line.startswith("node1 systemd-sysctl.service ok")
               for r in main["timing"]["keep_one_unit"] for line in lines(r))
    print("lab-reboot --keep-disk node1 (one unit): %s s; lab-reboot node1: %s s" % (keep, plain), file=sys.stderr)
