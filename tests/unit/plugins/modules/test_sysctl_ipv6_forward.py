# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real sysctl_ipv6_forward module, driven with module arguments against a fake /proc/sys.

The module has no option for another /proc/sys root; the tests redirect the module_utils
constants it reads at run time (the /proc/sys root and the sysctl.d search path) instead.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
from pathlib import Path
from typing import Any, Dict, Iterable, List

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netsec.ipsec.plugins.module_utils import _sysctl
from ansible_collections.netsec.ipsec.plugins.modules import sysctl_ipv6_forward

ALL6 = "net.ipv6.conf.all.forwarding"


class Host:
    """A fake target: /proc/sys and /etc under a temporary directory."""

    def __init__(self, root: Path, interfaces: Iterable[str] = ("all", "default", "lo", "eth0", "eth0.100"), accept_ra: str = "0") -> None:
        """accept_ra is 0 (RAs off) unless asked, so that forwarding tests see forwarding keys alone."""
        self.proc = root / "proc/sys"
        self.etc = root / "etc"
        self.conf = self.etc / "sysctl.d/60-netsec-ipsec.conf"
        for family in ("ipv6", "ipv4"):
            for interface in interfaces:
                directory = self.proc / "net" / family / "conf" / interface
                directory.mkdir(parents=True)
                (directory / "forwarding").write_text("0\n")
                if family == "ipv6":
                    (directory / "disable_ipv6").write_text("0\n")
                    (directory / "accept_ra").write_text(accept_ra + "\n")

    def live(self, interface: str = "all", family: str = "ipv6") -> str:
        return (self.proc / "net" / family / "conf" / interface / "forwarding").read_text().strip()

    def files(self) -> Dict[str, str]:
        return {str(path): path.read_text() for path in sorted(self.proc.parent.parent.rglob("*")) if path.is_file()}

    def run(self, capsys: pytest.CaptureFixture, check: bool = False, diff: bool = False, **params: Any) -> Dict[str, Any]:
        params.setdefault("sysctl_file", str(self.conf))
        args = dict(params, _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(args), pytest.raises(SystemExit):
            sysctl_ipv6_forward.main()
        return json.loads(capsys.readouterr().out)


def warnings(result: Dict[str, Any]) -> List[str]:
    """Warning texts; ansible-core 2.19+ sends each warning as a structured event."""
    return [warning["event"]["msg"] if isinstance(warning, dict) else warning for warning in result.get("warnings", [])]


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    fake = Host(tmp_path)
    monkeypatch.setattr(_sysctl, "PROC_SYS_ROOT", str(fake.proc))
    monkeypatch.setattr(_sysctl, "SYSCTL_D_DIRS", (str(fake.etc / "sysctl.d"), str(tmp_path / "usr/lib/sysctl.d")))
    monkeypatch.setattr(_sysctl, "SYSCTL_CONF", str(fake.etc / "sysctl.conf"))
    return fake


def test_defaults_enable_ipv6_forwarding_on_all_and_persist(host: Host, capsys: pytest.CaptureFixture) -> None:
    result = host.run(capsys)
    assert result["changed"] is True
    assert result["live"] == {ALL6: {"before": "0", "after": "1"}}
    assert result["persisted"] == {ALL6: {"before": None, "after": "1"}}
    assert result["sysctl_file"] == str(host.conf)
    assert "diff" not in result
    assert host.live("all") == "1"
    assert host.live("all", "ipv4") == "0"
    assert host.conf.read_text() == _sysctl.FILE_HEADER + ALL6 + " = 1\n"


def test_second_run_is_not_changed(host: Host, capsys: pytest.CaptureFixture) -> None:
    params = {"interfaces": ["all", "eth0.100"], "ipv4": True}
    host.run(capsys, **params)
    files = host.files()
    result = host.run(capsys, **params)
    assert result["changed"] is False
    assert all(value == {"before": "1", "after": "1"} for value in result["live"].values())
    assert all(value == {"before": "1", "after": "1"} for value in result["persisted"].values())
    assert host.files() == files


def test_check_mode_predicts_and_writes_nothing(host: Host, capsys: pytest.CaptureFixture) -> None:
    files = host.files()
    result = host.run(capsys, check=True, diff=True, interfaces=["all", "eth0"])
    assert result["changed"] is True
    assert result["live"] == {ALL6: {"before": "0", "after": "1"}, "net.ipv6.conf.eth0.forwarding": {"before": "0", "after": "1"}}
    assert result["diff"][1]["after"].endswith("net.ipv6.conf.eth0.forwarding = 1\n")
    assert host.files() == files
    assert not host.conf.parent.exists()


def test_diff_shows_live_values_and_file(host: Host, capsys: pytest.CaptureFixture) -> None:
    result = host.run(capsys, diff=True, interfaces=["eth0.100"])
    live_diff, file_diff = result["diff"]
    assert live_diff == {
        "before_header": "live values (/proc/sys, this network namespace)",
        "after_header": "live values (/proc/sys, this network namespace)",
        "before": "net.ipv6.conf.eth0/100.forwarding = 0\n",
        "after": "net.ipv6.conf.eth0/100.forwarding = 1\n",
    }
    assert file_diff == {
        "before_header": "%s (absent)" % host.conf,
        "after_header": str(host.conf),
        "before": "",
        "after": _sysctl.FILE_HEADER + "net.ipv6.conf.eth0/100.forwarding = 1\n",
    }
    again = host.run(capsys, diff=True, interfaces=["eth0.100"], enabled=False)
    assert again["diff"][1]["before_header"] == str(host.conf)
    assert again["diff"][1]["before"] == file_diff["after"]
    assert again["diff"][1]["after"].endswith("net.ipv6.conf.eth0/100.forwarding = 0\n")


def test_dotted_interface_uses_its_proc_directory(host: Host, capsys: pytest.CaptureFixture) -> None:
    result = host.run(capsys, interfaces=["eth0.100"], ipv4=True)
    assert sorted(result["live"]) == ["net.ipv4.conf.eth0/100.forwarding", "net.ipv6.conf.eth0/100.forwarding"]
    assert host.live("eth0.100") == host.live("eth0.100", "ipv4") == "1"
    assert host.live("eth0") == "0"


def test_persist_false_touches_no_file(host: Host, capsys: pytest.CaptureFixture) -> None:
    result = host.run(capsys, diff=True, persist=False)
    assert result["changed"] is True
    assert result["persisted"] is None
    assert len(result["diff"]) == 1
    assert host.live("all") == "1"
    assert not host.conf.parent.exists()


def test_disabled_writes_and_persists_zero(host: Host, capsys: pytest.CaptureFixture) -> None:
    host.run(capsys)
    result = host.run(capsys, enabled=False)
    assert result["changed"] is True
    assert result["live"] == {ALL6: {"before": "1", "after": "0"}}
    assert result["persisted"] == {ALL6: {"before": "1", "after": "0"}}
    assert host.conf.read_text().endswith(ALL6 + " = 0\n")


def test_missing_interface_fails_and_changes_nothing(host: Host, capsys: pytest.CaptureFixture) -> None:
    files = host.files()
    result = host.run(capsys, interfaces=["all", "eth9"])
    assert result["failed"] is True
    assert result["changed"] is False
    assert "net.ipv6.conf.eth9.forwarding" in result["msg"]
    assert str(host.proc / "net/ipv6/conf/eth9") in result["msg"]
    assert result["problems"] == [result["msg"]]
    assert host.files() == files
    assert not host.conf.parent.exists()


def test_bad_interface_name_fails(host: Host, capsys: pytest.CaptureFixture) -> None:
    result = host.run(capsys, interfaces=["../../../etc"])
    assert result["failed"] is True
    assert "contains '/'" in result["msg"]


def test_kernel_without_ipv6(tmp_path: Path, host: Host, capsys: pytest.CaptureFixture) -> None:
    for path in sorted((host.proc / "net/ipv6").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (host.proc / "net/ipv6").rmdir()
    result = host.run(capsys)
    assert result["failed"] is True
    assert "IPv6 is disabled in this kernel" in result["msg"]
    result = host.run(capsys, ipv6=False, ipv4=True)
    assert result["live"] == {"net.ipv4.conf.all.forwarding": {"before": "0", "after": "1"}}


def test_ipv6_switched_off_on_an_interface_warns(host: Host, capsys: pytest.CaptureFixture) -> None:
    (host.proc / "net/ipv6/conf/eth0/disable_ipv6").write_text("1\n")
    result = host.run(capsys, interfaces=["eth0"])
    assert result["changed"] is True
    assert host.live("eth0") == "1"
    assert [warning for warning in warnings(result) if "disable_ipv6 = 1" in warning and "'eth0'" in warning]


def test_a_later_sysctl_d_file_is_reported(host: Host, capsys: pytest.CaptureFixture) -> None:
    host.conf.parent.mkdir(parents=True)
    (host.conf.parent / "99-hardening.conf").write_text("net.ipv6.conf.all.forwarding = 0\n")
    result = host.run(capsys)
    assert result["changed"] is True
    assert any("99-hardening.conf sets net.ipv6.conf.all.forwarding = 0" in warning for warning in warnings(result))


def test_foreign_file_is_refused(host: Host, capsys: pytest.CaptureFixture) -> None:
    host.conf.parent.mkdir(parents=True)
    host.conf.write_text("vm.swappiness = 10\n")
    result = host.run(capsys)
    assert result["failed"] is True
    assert "refusing to overwrite" in result["msg"]
    assert host.live("all") == "0"
    assert host.conf.read_text() == "vm.swappiness = 10\n"


def test_file_write_failure_after_live_change_is_reported(host: Host, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_move(self: AnsibleModule, source: str, destination: str, unsafe_writes: bool = False, keep_dest_attrs: bool = True) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AnsibleModule, "atomic_move", failing_move)
    result = host.run(capsys)
    assert result["failed"] is True
    assert result["changed"] is True
    assert result["msg"] == "cannot write sysctl_file %s: No space left on device (live values already applied)" % host.conf
    assert result["live"] == {ALL6: {"before": "0", "after": "1"}}
    assert os.listdir(host.conf.parent) == []  # no temporary file left behind


def test_symlink_at_sysctl_file_is_refused_for_writing_and_removal(host: Host, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.conf"
    target.write_text("")
    target.chmod(0o600)
    host.conf.parent.mkdir(parents=True)
    host.conf.symlink_to(target)
    files = host.files()
    for params in ({}, {"state": "absent"}, {"check": True}):
        result = host.run(capsys, **params)
        assert result["failed"] is True and result["changed"] is False, params
        assert "sysctl_file %s: it is a symbolic link" % host.conf in result["msg"]
    assert host.conf.is_symlink() and host.files() == files and host.live() == "0"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_mode_owner_and_group_are_the_common_file_options(host: Host, capsys: pytest.CaptureFixture) -> None:
    host.run(capsys)
    assert stat.S_IMODE(host.conf.stat().st_mode) == 0o644
    host.conf.chmod(0o600)
    check = host.run(capsys, check=True)
    assert check["changed"] is True and stat.S_IMODE(host.conf.stat().st_mode) == 0o600
    assert host.run(capsys)["changed"] is True  # the mode alone was wrong
    assert stat.S_IMODE(host.conf.stat().st_mode) == 0o644
    user, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
    result = host.run(capsys, mode="0640", owner=user, group=group)
    assert result["changed"] is True and stat.S_IMODE(host.conf.stat().st_mode) == 0o640
    assert host.run(capsys, mode="0640", owner=user, group=group)["changed"] is False


def test_kernel_refusing_the_value_is_an_error(host: Host, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sysctl, "write_value", lambda path, value: None)
    result = host.run(capsys, persist=False)
    assert result["failed"] is True
    assert result["msg"] == "the kernel did not keep the value 1 for: " + ALL6


def test_state_absent_removes_only_an_owned_file(host: Host, capsys: pytest.CaptureFixture) -> None:
    host.run(capsys)
    assert host.conf.exists()
    result = host.run(capsys, check=True, diff=True, state="absent")
    assert result["changed"] is True and host.conf.exists()
    assert result["diff"][0]["after"] == ""
    result = host.run(capsys, state="absent")
    assert result["changed"] is True and not host.conf.exists()
    assert host.live() == "1"  # live values stay
    assert host.run(capsys, state="absent")["changed"] is False
    foreign = host.etc / "sysctl.d" / "99-mine.conf"
    foreign.write_text("net.ipv6.conf.all.forwarding = 1\n")
    result = host.run(capsys, state="absent", sysctl_file=str(foreign))
    assert result["failed"] is True and "not this module's file" in result["msg"] and foreign.exists()


# --- accept_ra: forwarding interfaces keep accepting router advertisements ------------------

RA_DEFAULT = "net.ipv6.conf.default.accept_ra"
RA_ETH0 = "net.ipv6.conf.eth0.accept_ra"
RA_VLAN = "net.ipv6.conf.eth0/100.accept_ra"
RA_LO = "net.ipv6.conf.lo.accept_ra"
RA_LINES = (RA_DEFAULT + " = 2\n" + RA_ETH0 + " = 2\n" + RA_VLAN + " = 2\n" + RA_LO + " = 2\n")


@pytest.fixture
def ra_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    """A fake target with the kernel's default accept_ra, 1, everywhere."""
    fake = Host(tmp_path, accept_ra="1")
    monkeypatch.setattr(_sysctl, "PROC_SYS_ROOT", str(fake.proc))
    monkeypatch.setattr(_sysctl, "SYSCTL_D_DIRS", (str(fake.etc / "sysctl.d"),))
    monkeypatch.setattr(_sysctl, "SYSCTL_CONF", str(fake.etc / "sysctl.conf"))
    return fake


def accept_ra(host: Host, interface: str) -> str:
    return (host.proc / "net/ipv6/conf" / interface / "accept_ra").read_text().strip()


def test_defaults_keep_router_advertisements_on_every_interface(ra_host: Host, capsys: pytest.CaptureFixture) -> None:
    result = ra_host.run(capsys)
    assert result["changed"] is True
    changed = {"before": "1", "after": "2"}
    assert result["accept_ra"] == {RA_DEFAULT: changed, RA_ETH0: changed, RA_VLAN: changed, RA_LO: changed}
    assert result["live"] == {ALL6: {"before": "0", "after": "1"}}
    assert list(result["persisted"]) == [RA_DEFAULT, RA_ETH0, RA_VLAN, RA_LO, ALL6]
    assert result["persisted"][RA_VLAN] == {"before": None, "after": "2"}
    assert [accept_ra(ra_host, name) for name in ("all", "default", "lo", "eth0", "eth0.100")] == ["1", "2", "2", "2", "2"]
    assert ra_host.conf.read_text() == _sysctl.FILE_HEADER + RA_LINES + ALL6 + " = 1\n"


def test_check_mode_reports_accept_ra_and_diff_shows_it_before_forwarding(ra_host: Host, capsys: pytest.CaptureFixture) -> None:
    files = ra_host.files()
    result = ra_host.run(capsys, check=True, diff=True, interfaces=["all", "eth0"])
    assert result["changed"] is True
    assert result["accept_ra"][RA_ETH0] == {"before": "1", "after": "2"}
    assert ra_host.files() == files and not ra_host.conf.parent.exists()
    live_diff, file_diff = result["diff"]
    assert live_diff["before"] == (
        RA_DEFAULT + " = 1\n" + RA_ETH0 + " = 1\n" + RA_VLAN + " = 1\n" + RA_LO + " = 1\n"
        + ALL6 + " = 0\nnet.ipv6.conf.eth0.forwarding = 0\n"
    )
    assert live_diff["after"] == RA_LINES + ALL6 + " = 1\nnet.ipv6.conf.eth0.forwarding = 1\n"
    assert file_diff["after"] == _sysctl.FILE_HEADER + RA_LINES + ALL6 + " = 1\nnet.ipv6.conf.eth0.forwarding = 1\n"
    applied = ra_host.run(capsys, diff=True, interfaces=["all", "eth0"])
    assert applied["diff"] == result["diff"] and applied["accept_ra"] == result["accept_ra"]


def test_second_run_with_accept_ra_changes_nothing(ra_host: Host, capsys: pytest.CaptureFixture) -> None:
    ra_host.run(capsys, ipv4=True)
    files = ra_host.files()
    result = ra_host.run(capsys, diff=True, ipv4=True)
    assert result["changed"] is False
    assert result["accept_ra"] == {name: {"before": "2", "after": "2"} for name in (RA_DEFAULT, RA_ETH0, RA_VLAN, RA_LO)}
    assert result["diff"][0]["before"] == result["diff"][0]["after"]
    assert result["diff"][1]["before"] == result["diff"][1]["after"]
    assert ra_host.files() == files


def test_keep_router_advertisements_false_leaves_accept_ra_alone(ra_host: Host, capsys: pytest.CaptureFixture) -> None:
    result = ra_host.run(capsys, keep_router_advertisements=False)
    assert result["changed"] is True and result["accept_ra"] == {}
    assert accept_ra(ra_host, "eth0") == accept_ra(ra_host, "default") == "1"
    assert ra_host.conf.read_text() == _sysctl.FILE_HEADER + ALL6 + " = 1\n"


def test_disabling_drops_the_accept_ra_lines_and_leaves_the_live_values(ra_host: Host, capsys: pytest.CaptureFixture) -> None:
    ra_host.run(capsys)
    result = ra_host.run(capsys, enabled=False)
    assert result["changed"] is True and result["accept_ra"] == {}
    assert result["live"] == {ALL6: {"before": "1", "after": "0"}}
    assert ra_host.conf.read_text() == _sysctl.FILE_HEADER + ALL6 + " = 0\n"
    assert accept_ra(ra_host, "eth0") == "2"  # with forwarding off, 2 accepts RAs as 1 does


def test_state_absent_removes_the_accept_ra_lines_with_the_file(ra_host: Host, capsys: pytest.CaptureFixture) -> None:
    ra_host.run(capsys)
    result = ra_host.run(capsys, diff=True, state="absent")
    assert result["changed"] is True and result["accept_ra"] is None
    assert RA_ETH0 + " = 2\n" in result["diff"][0]["before"] and not ra_host.conf.exists()
    assert accept_ra(ra_host, "eth0") == "2" and ra_host.live() == "1"


def test_kernel_refusing_accept_ra_is_an_error_naming_it(ra_host: Host, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = _sysctl.write_value
    monkeypatch.setattr(_sysctl, "write_value", lambda path, value: None if path.endswith("/eth0/accept_ra") else real_write(path, value))
    result = ra_host.run(capsys, persist=False)
    assert result["failed"] is True and result["changed"] is True
    assert result["msg"] == "the kernel did not keep the value 2 for: " + RA_ETH0
    assert result["accept_ra"][RA_ETH0] == {"before": "1", "after": "1"}


def test_unreadable_accept_ra_fails_and_changes_nothing(ra_host: Host, capsys: pytest.CaptureFixture) -> None:
    (ra_host.proc / "net/ipv6/conf/lo/accept_ra").unlink()
    files = ra_host.files()
    result = ra_host.run(capsys)
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("cannot read %s from %s" % (RA_LO, ra_host.proc / "net/ipv6/conf/lo/accept_ra"))
    assert ra_host.files() == files and not ra_host.conf.parent.exists()


def test_a_later_file_turning_ras_off_is_reported(ra_host: Host, capsys: pytest.CaptureFixture) -> None:
    ra_host.conf.parent.mkdir(parents=True)
    (ra_host.conf.parent / "99-hardening.conf").write_text("net.ipv6.conf.default.accept_ra = 0\n")
    result = ra_host.run(capsys)
    assert "%s sets %s = 0 and is applied after %s, so at boot it overrides %s = 2" % (
        ra_host.conf.parent / "99-hardening.conf", RA_DEFAULT, ra_host.conf, RA_DEFAULT
    ) in warnings(result)


def test_keep_router_advertisements_must_be_a_boolean(ra_host: Host, capsys: pytest.CaptureFixture) -> None:
    files = ra_host.files()
    result = ra_host.run(capsys, keep_router_advertisements="sometimes")
    assert result["failed"] is True and "keep_router_advertisements" in result["msg"]
    assert ra_host.files() == files


def test_a_node_locked_by_another_run_is_left_alone(private_node_lock: str, host: Host,
                                                    capsys: pytest.CaptureFixture) -> None:
    """Issue 16: while another run holds the node lock, the task fails after its bounded wait
    naming that run, and no sysctl and no file changed."""
    import fcntl
    files = host.files()
    with open(private_node_lock, "w") as holder:
        holder.write("pid=4242 module=netsec.ipsec.xfrm_endpoint since=2026-12-06T07:00:00Z\n")
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_EX)
        result = host.run(capsys, lock_timeout=0.2)
    assert result["failed"] is True and result["changed"] is False
    assert "pid=4242" in result["msg"] and "module=netsec.ipsec.xfrm_endpoint" in result["msg"]
    assert host.files() == files and not host.conf.exists()
    assert host.run(capsys)["changed"] is True, "the lock is free again"
