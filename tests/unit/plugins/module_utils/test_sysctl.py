# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The forwarding sysctl logic, run against a directory that stands in for /proc/sys."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Dict, Iterable

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils import _sysctl
from ansible_collections.netsec.ipsec.plugins.module_utils._files import write_file
from ansible_collections.netsec.ipsec.plugins.module_utils._sysctl import ConfKey, SysctlError
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.module_factory import file_module

INTERFACES = ("all", "default", "lo", "eth0", "eth0.100")


def make_proc(
    root: Path, interfaces: Iterable[str] = INTERFACES, families: Iterable[str] = ("ipv6", "ipv4"), value: str = "0", accept_ra: str = "0"
) -> Path:
    """A fake /proc/sys with forwarding (and, for IPv6, disable_ipv6 and accept_ra) files per interface.

    accept_ra is 0 unless asked (RAs off, as systemd-networkd leaves the links it manages), so
    that tests about forwarding alone see forwarding keys alone; the kernel's default is 1.
    """
    for family in families:
        for interface in interfaces:
            directory = root / "net" / family / "conf" / interface
            directory.mkdir(parents=True)
            (directory / "forwarding").write_text(value + "\n")
            if family == "ipv6":
                (directory / "disable_ipv6").write_text("0\n")
                (directory / "accept_ra").write_text(accept_ra + "\n")
    return root


def live(proc: Path, family: str, interface: str) -> str:
    return (proc / "net" / family / "conf" / interface / "forwarding").read_text().strip()


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    return make_proc(tmp_path / "proc" / "sys")


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    return tmp_path / "etc" / "sysctl.d" / "60-netsec-ipsec.conf"


def run(proc: Path, conf: Path, interfaces=("all",), enabled=True, persist=True, ipv6=True, ipv4=False, keep_ra=True) -> _sysctl.Plan:
    """Plan and apply like the module does outside check mode; return the plan."""
    plan = _sysctl.plan_forwarding(
        str(proc), str(conf), list(interfaces), enabled=enabled, persist=persist, ipv6=ipv6, ipv4=ipv4, keep_router_advertisements=keep_ra
    )
    _sysctl.apply_live(str(proc), plan)
    if plan.file is not None:
        write_file(file_module(), plan.file.path, plan.file.after.encode("utf-8"), _sysctl.FILE_MODE, _sysctl.DIRECTORY_MODE)
    return plan


def snapshot(root: Path) -> Dict[str, str]:
    return {str(path): path.read_text() for path in sorted(root.rglob("*")) if path.is_file()}


# --- names and keys -----------------------------------------------------------------------


def test_key_name_uses_slashes_for_dots_and_path_keeps_them() -> None:
    key = ConfKey("ipv6", "eth0.100", "forwarding")
    assert key.name == "net.ipv6.conf.eth0/100.forwarding"
    assert key.path("/proc/sys") == "/proc/sys/net/ipv6/conf/eth0.100/forwarding"


@pytest.mark.parametrize("name", ["eth0", "eth0.100", "a" * 15, "br-lan", "all", "default", "wg_0"])
def test_valid_interface_names(name: str) -> None:
    assert _sysctl.interface_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "a" * 16, ".", "..", "../../etc", "eth0/1", "eth0:1", "eth 0", "eth0\n", "é" * 8])
def test_invalid_interface_names(name: str) -> None:
    assert _sysctl.interface_name_problem(name)


def test_keys_are_ordered_all_default_then_given_order_ipv6_first_and_deduplicated() -> None:
    keys = _sysctl.forwarding_keys(["eth1", "default", "eth0", "all", "eth1"], ipv6=True, ipv4=True)
    assert [(key.family, key.interface) for key in keys] == [
        ("ipv6", "all"), ("ipv6", "default"), ("ipv6", "eth1"), ("ipv6", "eth0"),
        ("ipv4", "all"), ("ipv4", "default"), ("ipv4", "eth1"), ("ipv4", "eth0"),
    ]


def test_keys_reject_bad_names_empty_lists_and_no_family_all_at_once() -> None:
    with pytest.raises(SysctlError) as caught:
        _sysctl.forwarding_keys(["../x", "eth0:1"], ipv6=False, ipv4=False)
    assert len(caught.value.problems) == 3
    with pytest.raises(SysctlError, match="at least one interface"):
        _sysctl.forwarding_keys([], ipv6=True, ipv4=False)


@pytest.mark.parametrize(
    "written, canonical",
    [
        ("net.ipv6.conf.all.forwarding", "net.ipv6.conf.all.forwarding"),
        ("net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"),
        ("net/ipv6/conf/eth0.100/forwarding", "net.ipv6.conf.eth0/100.forwarding"),
        ("net.ipv6.conf.eth0/100.forwarding", "net.ipv6.conf.eth0/100.forwarding"),
        ("  net.ipv4.ip_forward ", "net.ipv4.ip_forward"),
    ],
)
def test_canonical_key(written: str, canonical: str) -> None:
    assert _sysctl.canonical_key(written) == canonical


def test_parse_sysctl_text_skips_comments_and_keeps_the_last_assignment() -> None:
    text = (
        "# comment = 1\n; other = 2\n\n"
        "net.ipv6.conf.all.forwarding=0\n"
        "  net.ipv6.conf.all.forwarding   =   1  \n"
        "-net/ipv6/conf/eth0.100/forwarding = 1\n"
        "not an assignment\n"
        "kernel.domainname = a=b\n"
    )
    assert _sysctl.parse_sysctl_text(text) == {
        "net.ipv6.conf.all.forwarding": "1",
        "net.ipv6.conf.eth0/100.forwarding": "1",
        "kernel.domainname": "a=b",
    }


def test_rendered_file_is_managed_and_parses_back() -> None:
    text = _sysctl.render_sysctl_file([("net.ipv6.conf.all.forwarding", "1"), ("net.ipv6.conf.eth0/100.forwarding", "1")])
    assert text.startswith(_sysctl.MANAGED_MARKER)
    assert text.endswith("net.ipv6.conf.all.forwarding = 1\nnet.ipv6.conf.eth0/100.forwarding = 1\n")
    assert _sysctl.is_managed_file(text)
    assert _sysctl.parse_sysctl_text(text) == {"net.ipv6.conf.all.forwarding": "1", "net.ipv6.conf.eth0/100.forwarding": "1"}


# --- planning and applying ----------------------------------------------------------------


def test_first_run_changes_live_value_and_creates_file(proc: Path, conf: Path) -> None:
    plan = run(proc, conf)
    assert plan.changed
    assert plan.live == {"net.ipv6.conf.all.forwarding": _sysctl.ValueChange("0", "1")}
    assert plan.persisted == {"net.ipv6.conf.all.forwarding": _sysctl.ValueChange(None, "1")}
    assert plan.file is not None and plan.file.before is None
    assert live(proc, "ipv6", "all") == "1"
    assert live(proc, "ipv4", "all") == "0"
    assert conf.read_text() == _sysctl.FILE_HEADER + "net.ipv6.conf.all.forwarding = 1\n"


def test_second_run_changes_nothing(proc: Path, conf: Path) -> None:
    run(proc, conf, interfaces=["all", "eth0.100"], ipv4=True)
    before = snapshot(proc.parent.parent)
    plan = run(proc, conf, interfaces=["all", "eth0.100"], ipv4=True)
    assert not plan.changed
    assert snapshot(proc.parent.parent) == before
    assert all(change.before == change.after == "1" for change in plan.live.values())


def test_planning_writes_nothing(proc: Path, conf: Path) -> None:
    before = snapshot(proc.parent.parent)
    plan = _sysctl.plan_forwarding(str(proc), str(conf), ["all", "eth0"], enabled=True, persist=True, ipv4=True)
    assert plan.changed
    assert snapshot(proc.parent.parent) == before
    assert not conf.parent.exists()


def test_dotted_interface_is_written_under_its_dotted_directory(proc: Path, conf: Path) -> None:
    plan = run(proc, conf, interfaces=["eth0.100"])
    assert list(plan.live) == ["net.ipv6.conf.eth0/100.forwarding"]
    assert live(proc, "ipv6", "eth0.100") == "1"
    assert live(proc, "ipv6", "eth0") == "0"
    assert "net.ipv6.conf.eth0/100.forwarding = 1\n" in conf.read_text()


def test_disabled_writes_and_persists_zero(proc: Path, conf: Path) -> None:
    run(proc, conf, interfaces=["all", "eth0"])
    plan = run(proc, conf, interfaces=["all", "eth0"], enabled=False)
    assert plan.changed
    assert plan.persisted == {
        "net.ipv6.conf.all.forwarding": _sysctl.ValueChange("1", "0"),
        "net.ipv6.conf.eth0.forwarding": _sysctl.ValueChange("1", "0"),
    }
    assert live(proc, "ipv6", "all") == live(proc, "ipv6", "eth0") == "0"
    assert conf.read_text().endswith("net.ipv6.conf.all.forwarding = 0\nnet.ipv6.conf.eth0.forwarding = 0\n")


def test_persist_false_leaves_the_file_alone(proc: Path, conf: Path) -> None:
    run(proc, conf, interfaces=["eth0"])
    text = conf.read_text()
    plan = run(proc, conf, interfaces=["all"], persist=False)
    assert plan.file is None and plan.persisted is None
    assert live(proc, "ipv6", "all") == "1"
    assert conf.read_text() == text


def test_persist_false_does_not_even_read_a_foreign_file(proc: Path, conf: Path) -> None:
    conf.parent.mkdir(parents=True)
    conf.write_text("vm.swappiness = 10\n")
    run(proc, conf, persist=False)
    assert conf.read_text() == "vm.swappiness = 10\n"


def test_file_is_rewritten_to_exactly_this_runs_keys(proc: Path, conf: Path) -> None:
    run(proc, conf, interfaces=["all", "eth0"])
    conf.write_text(conf.read_text() + "vm.swappiness = 10\n")
    plan = run(proc, conf, interfaces=["all"])
    assert plan.file is not None and plan.file.changed
    assert plan.persisted == {"net.ipv6.conf.all.forwarding": _sysctl.ValueChange("1", "1")}
    assert conf.read_text() == _sysctl.FILE_HEADER + "net.ipv6.conf.all.forwarding = 1\n"
    # the dropped key keeps its live value
    assert live(proc, "ipv6", "eth0") == "1"


def test_persisted_before_reads_hand_edited_spellings(proc: Path, conf: Path) -> None:
    conf.parent.mkdir(parents=True)
    conf.write_text(_sysctl.MANAGED_MARKER + "\nnet/ipv6/conf/eth0.100/forwarding=1\n")
    plan = _sysctl.plan_forwarding(str(proc), str(conf), ["eth0.100"], enabled=True, persist=True)
    assert plan.persisted == {"net.ipv6.conf.eth0/100.forwarding": _sysctl.ValueChange("1", "1")}
    assert plan.file is not None and plan.file.changed


def test_file_and_directories_get_fixed_modes_whatever_the_umask(proc: Path, conf: Path) -> None:
    old = os.umask(0o077)
    try:
        run(proc, conf)
    finally:
        os.umask(old)
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644
    assert stat.S_IMODE(conf.parent.stat().st_mode) == 0o755
    assert stat.S_IMODE(conf.parent.parent.stat().st_mode) == 0o755
    assert [path.name for path in conf.parent.iterdir()] == [conf.name]


def test_existing_file_mode_is_reset_to_0644(proc: Path, conf: Path) -> None:
    conf.parent.mkdir(parents=True)
    conf.write_text("")
    conf.chmod(0o600)
    run(proc, conf)
    assert stat.S_IMODE(conf.stat().st_mode) == 0o644


@pytest.mark.parametrize("target_exists", [True, False], ids=["empty-target", "dangling"])
def test_symlinked_file_is_refused_and_nothing_changes(proc: Path, conf: Path, tmp_path: Path, target_exists: bool) -> None:
    # Issue #13: the link's (empty, so "managed") target used to be rewritten and chmodded.
    target = tmp_path / "real.conf"
    if target_exists:
        target.write_text("")
        target.chmod(0o600)
    conf.parent.mkdir(parents=True)
    conf.symlink_to(target)
    with pytest.raises(SysctlError, match="sysctl_file %s: it is a symbolic link" % conf):
        run(proc, conf)
    assert conf.is_symlink() and live(proc, "ipv6", "all") == "0"
    if target_exists:
        assert target.read_text() == "" and stat.S_IMODE(target.stat().st_mode) == 0o600
    else:
        assert not target.exists()
    with pytest.raises(SysctlError, match="it is a symbolic link"):
        _sysctl.read_owned_file(str(conf))  # state=absent asks this before removing


def test_all_is_written_first_and_keys_it_already_set_are_not_written_again(
    proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = []
    real_write = _sysctl.write_value

    def propagating_write(path: str, value: str) -> None:
        # The kernel copies a value written to "all" to every interface and to "default".
        writes.append(path)
        real_write(path, value)
        if path.endswith("/all/forwarding"):
            for other in Path(path).parent.parent.iterdir():
                (other / "forwarding").write_text(value + "\n")

    monkeypatch.setattr(_sysctl, "write_value", propagating_write)
    plan = run(proc, conf, interfaces=["eth0", "all"])
    assert writes == [str(proc / "net/ipv6/conf/all/forwarding")]
    assert plan.live["net.ipv6.conf.eth0.forwarding"] == _sysctl.ValueChange("0", "1")


# --- validation: nothing is written when anything is wrong --------------------------------


def test_missing_interface_fails_naming_key_and_path_and_writes_nothing(proc: Path, conf: Path) -> None:
    before = snapshot(proc.parent.parent)
    with pytest.raises(SysctlError) as caught:
        run(proc, conf, interfaces=["all", "eth9"])
    message = str(caught.value)
    assert "net.ipv6.conf.eth9.forwarding" in message
    assert str(proc / "net/ipv6/conf/eth9") in message
    assert snapshot(proc.parent.parent) == before
    assert not conf.parent.exists()


def test_every_problem_is_reported_at_once(proc: Path, conf: Path) -> None:
    conf.parent.mkdir(parents=True)
    conf.write_text("vm.swappiness = 10\n")
    with pytest.raises(SysctlError) as caught:
        run(proc, conf, interfaces=["eth8", "eth9"], ipv4=True)
    assert len(caught.value.problems) == 5  # two interfaces x two families, plus the foreign file


def test_kernel_without_ipv6_fails_unless_ipv6_is_off(tmp_path: Path, conf: Path) -> None:
    proc = make_proc(tmp_path / "proc", families=["ipv4"])
    with pytest.raises(SysctlError, match=r"IPv6 is disabled in this kernel: .*/net/ipv6 does not exist.*ipv6.disable=1"):
        run(proc, conf)
    assert not conf.parent.exists()
    plan = run(proc, conf, ipv6=False, ipv4=True)
    assert list(plan.live) == ["net.ipv4.conf.all.forwarding"]
    assert live(proc, "ipv4", "all") == "1"


def test_interface_with_ipv6_switched_off_is_set_and_reported(proc: Path, conf: Path) -> None:
    (proc / "net/ipv6/conf/eth0/disable_ipv6").write_text("1\n")
    plan = run(proc, conf, interfaces=["all", "eth0", "lo"])
    assert plan.ipv6_disabled_on == ("eth0",)
    assert live(proc, "ipv6", "eth0") == "1"


def test_missing_forwarding_file_fails(proc: Path, conf: Path) -> None:
    (proc / "net/ipv6/conf/lo/forwarding").unlink()
    with pytest.raises(SysctlError, match=r"cannot read net\.ipv6\.conf\.lo\.forwarding from .*/lo/forwarding"):
        run(proc, conf, interfaces=["lo"])


def fake_unwritable(monkeypatch: pytest.MonkeyPatch, read_only: bool) -> None:
    """Make every path look unwritable, from a read-only mount or for lack of permission.

    The tests run as root, for whom a mode of 0444 changes nothing, so os.access is faked.
    """

    class FakeStatvfs:
        f_flag = os.ST_RDONLY if read_only else 0

    monkeypatch.setattr(_sysctl.os, "access", lambda path, mode: False)
    monkeypatch.setattr(_sysctl.os, "statvfs", lambda path: FakeStatvfs())


def test_read_only_proc_sys_fails_before_writing(proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_unwritable(monkeypatch, read_only=True)
    with pytest.raises(SysctlError) as caught:
        _sysctl.plan_forwarding(str(proc), str(conf), ["all"], enabled=True, persist=False)
    assert str(caught.value) == (
        "cannot write net.ipv6.conf.all.forwarding to %s: read-only file system%s" % (proc / "net/ipv6/conf/all/forwarding", _sysctl.PROC_SYS_READ_ONLY_HINT)
    )


def test_unwritable_for_lack_of_permission(proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf.parent.parent.mkdir(parents=True)  # /etc exists, /etc/sysctl.d would be created
    fake_unwritable(monkeypatch, read_only=False)
    with pytest.raises(SysctlError) as caught:
        _sysctl.plan_forwarding(str(proc), str(conf), ["all"], enabled=True, persist=True)
    assert len(caught.value.problems) == 2
    assert all(problem.endswith(": permission denied (run as root, for example with become: true)") for problem in caught.value.problems)
    assert "sysctl_file %s: directory %s" % (conf, conf.parent.parent) in caught.value.problems[1]


def test_read_only_proc_sys_is_fine_when_nothing_needs_writing(proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(proc, conf)
    fake_unwritable(monkeypatch, read_only=True)
    plan = _sysctl.plan_forwarding(str(proc), str(conf), ["all"], enabled=True, persist=True)
    assert not plan.changed


def test_foreign_file_is_never_overwritten(proc: Path, conf: Path) -> None:
    conf.parent.mkdir(parents=True)
    conf.write_text("# my settings\nnet.ipv6.conf.all.forwarding = 1\n")
    with pytest.raises(SysctlError, match="refusing to overwrite .*does not start with '# Managed by netsec.ipsec'"):
        run(proc, conf)
    assert live(proc, "ipv6", "all") == "0"


def test_empty_file_is_taken_over(proc: Path, conf: Path) -> None:
    conf.parent.mkdir(parents=True)
    conf.write_text("\n")
    plan = run(proc, conf)
    assert plan.file is not None and plan.file.before == "\n"
    assert conf.read_text().startswith(_sysctl.MANAGED_MARKER)


@pytest.mark.parametrize("bad_path, message", [("relative.conf", "must be an absolute path"), ("DIR", "is a directory"), ("FILE/x.conf", "is not a directory")])
def test_unusable_sysctl_file_paths(proc: Path, tmp_path: Path, bad_path: str, message: str) -> None:
    (tmp_path / "FILE").write_text("")
    path = bad_path if bad_path == "relative.conf" else str(tmp_path / bad_path)
    if bad_path == "DIR":
        (tmp_path / "DIR").mkdir()
    with pytest.raises(SysctlError, match=message):
        _sysctl.plan_forwarding(str(proc), path, ["all"], enabled=True, persist=True)
    assert live(proc, "ipv6", "all") == "0"


def test_write_failure_part_way_says_what_was_written(proc: Path, conf: Path) -> None:
    plan = _sysctl.plan_forwarding(str(proc), str(conf), ["all", "eth0"], enabled=True, persist=False)
    forwarding = proc / "net/ipv6/conf/eth0/forwarding"
    forwarding.unlink()
    forwarding.mkdir()  # reads and writes now fail with EISDIR
    with pytest.raises(SysctlError) as caught:
        _sysctl.apply_live(str(proc), plan)
    assert caught.value.written == ["net.ipv6.conf.all.forwarding"]
    assert "cannot write net.ipv6.conf.eth0.forwarding to %s" % forwarding in str(caught.value)
    assert "already written in this run: net.ipv6.conf.all.forwarding" in str(caught.value)


def test_write_value_never_creates_a_key(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _sysctl.write_value(str(tmp_path / "forwarding"), "1")
    assert not (tmp_path / "forwarding").exists()


# --- accept_ra: forwarding interfaces keep accepting router advertisements ------------------


def accept_ra(proc: Path, interface: str) -> str:
    return (proc / "net/ipv6/conf" / interface / "accept_ra").read_text().strip()


def set_accept_ra(proc: Path, interface: str, value: str) -> None:
    (proc / "net/ipv6/conf" / interface / "accept_ra").write_text(value + "\n")


@pytest.fixture
def ra_proc(tmp_path: Path) -> Path:
    """A fake /proc/sys with the kernel's default accept_ra, 1, everywhere."""
    return make_proc(tmp_path / "proc" / "sys", accept_ra="1")


def ra_change(before: str) -> _sysctl.ValueChange:
    return _sysctl.ValueChange(before, "2")


def test_all_sets_accept_ra_2_on_default_and_every_interface_but_not_on_all(ra_proc: Path, conf: Path) -> None:
    plan = run(ra_proc, conf)
    assert plan.changed
    assert plan.accept_ra == {
        "net.ipv6.conf.default.accept_ra": ra_change("1"),
        "net.ipv6.conf.eth0.accept_ra": ra_change("1"),
        "net.ipv6.conf.eth0/100.accept_ra": ra_change("1"),
        "net.ipv6.conf.lo.accept_ra": ra_change("1"),
    }
    assert [accept_ra(ra_proc, name) for name in INTERFACES] == ["1", "2", "2", "2", "2"]  # all.accept_ra is left alone
    assert live(ra_proc, "ipv6", "all") == "1"
    assert conf.read_text() == _sysctl.FILE_HEADER + (
        "net.ipv6.conf.default.accept_ra = 2\n"
        "net.ipv6.conf.eth0.accept_ra = 2\n"
        "net.ipv6.conf.eth0/100.accept_ra = 2\n"
        "net.ipv6.conf.lo.accept_ra = 2\n"
        "net.ipv6.conf.all.forwarding = 1\n"
    )
    assert plan.persisted is not None and plan.persisted["net.ipv6.conf.eth0/100.accept_ra"] == _sysctl.ValueChange(None, "2")


def test_accept_ra_is_written_before_forwarding(ra_proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Writing forwarding = 1 first would make the kernel delete the RA default routes of every
    # interface whose accept_ra is not yet 2.
    writes = []
    real_write = _sysctl.write_value

    def recording_write(path: str, value: str) -> None:
        writes.append((os.path.relpath(path, ra_proc), value))
        real_write(path, value)

    monkeypatch.setattr(_sysctl, "write_value", recording_write)
    run(ra_proc, conf, interfaces=["eth0.100", "eth0"], ipv4=True)
    assert writes == [
        ("net/ipv6/conf/eth0.100/accept_ra", "2"),
        ("net/ipv6/conf/eth0/accept_ra", "2"),
        ("net/ipv6/conf/eth0.100/forwarding", "1"),
        ("net/ipv6/conf/eth0/forwarding", "1"),
        ("net/ipv4/conf/eth0.100/forwarding", "1"),
        ("net/ipv4/conf/eth0/forwarding", "1"),
    ]


def test_named_interfaces_set_only_their_own_accept_ra(ra_proc: Path, conf: Path) -> None:
    plan = run(ra_proc, conf, interfaces=["eth0.100"])
    assert list(plan.accept_ra) == ["net.ipv6.conf.eth0/100.accept_ra"]
    assert accept_ra(ra_proc, "eth0.100") == "2"
    assert accept_ra(ra_proc, "eth0") == accept_ra(ra_proc, "default") == "1"
    assert conf.read_text().endswith("\nnet.ipv6.conf.eth0/100.accept_ra = 2\nnet.ipv6.conf.eth0/100.forwarding = 1\n")


def test_accept_ra_0_and_2_without_a_line_are_left_alone(ra_proc: Path, conf: Path) -> None:
    set_accept_ra(ra_proc, "eth0", "0")  # RAs off on purpose
    set_accept_ra(ra_proc, "lo", "2")  # someone else's 2
    set_accept_ra(ra_proc, "eth0.100", "3")
    plan = run(ra_proc, conf)
    assert list(plan.accept_ra) == ["net.ipv6.conf.default.accept_ra"]
    assert [accept_ra(ra_proc, name) for name in ("eth0", "lo", "eth0.100")] == ["0", "2", "3"]
    assert "eth0.accept_ra" not in conf.read_text() and "lo.accept_ra" not in conf.read_text()


def test_second_run_keeps_the_accept_ra_lines_and_changes_nothing(ra_proc: Path, conf: Path) -> None:
    run(ra_proc, conf, ipv4=True)
    before = snapshot(ra_proc.parent.parent)
    plan = run(ra_proc, conf, ipv4=True)
    assert not plan.changed
    assert snapshot(ra_proc.parent.parent) == before
    assert set(plan.accept_ra) == {"net.ipv6.conf.%s.accept_ra" % name for name in ("default", "eth0", "eth0/100", "lo")}
    assert all(change == _sysctl.ValueChange("2", "2") for change in plan.accept_ra.values())


def test_an_interface_created_later_with_defaults_2_does_not_change_the_file(ra_proc: Path, conf: Path) -> None:
    run(ra_proc, conf)
    text = conf.read_text()
    make_proc(ra_proc, interfaces=["veth7"], families=["ipv6"], value="1", accept_ra=accept_ra(ra_proc, "default"))
    plan = run(ra_proc, conf)
    assert not plan.changed
    assert "net.ipv6.conf.veth7.accept_ra" not in plan.accept_ra
    assert conf.read_text() == text


def test_an_interface_set_to_0_since_loses_its_line_and_keeps_0(ra_proc: Path, conf: Path) -> None:
    run(ra_proc, conf)
    set_accept_ra(ra_proc, "eth0", "0")
    plan = run(ra_proc, conf)
    assert plan.changed and "net.ipv6.conf.eth0.accept_ra" not in plan.accept_ra
    assert accept_ra(ra_proc, "eth0") == "0"
    assert "net.ipv6.conf.eth0.accept_ra" not in conf.read_text()
    assert "net.ipv6.conf.lo.accept_ra = 2\n" in conf.read_text()


def test_an_interface_back_at_1_is_set_again(ra_proc: Path, conf: Path) -> None:
    run(ra_proc, conf)
    text = conf.read_text()
    set_accept_ra(ra_proc, "eth0", "1")
    plan = run(ra_proc, conf)
    assert plan.changed and plan.accept_ra["net.ipv6.conf.eth0.accept_ra"] == ra_change("1")
    assert accept_ra(ra_proc, "eth0") == "2" and conf.read_text() == text


def test_a_lost_file_gets_defaults_line_back_but_not_the_interfaces(ra_proc: Path, conf: Path) -> None:
    run(ra_proc, conf)
    conf.unlink()
    run(ra_proc, conf)
    assert conf.read_text() == _sysctl.FILE_HEADER + "net.ipv6.conf.default.accept_ra = 2\nnet.ipv6.conf.all.forwarding = 1\n"


@pytest.mark.parametrize(
    "options",
    [{"keep_ra": False}, {"enabled": False}, {"ipv6": False, "ipv4": True}],
    ids=["keep_router_advertisements-false", "enabled-false", "ipv4-only"],
)
def test_no_accept_ra_without_ipv6_forwarding_to_enable_or_when_turned_off(ra_proc: Path, conf: Path, options: Dict[str, bool]) -> None:
    run(ra_proc, conf, interfaces=["eth0"])
    assert accept_ra(ra_proc, "eth0") == "2"
    set_accept_ra(ra_proc, "lo", "1")
    plan = run(ra_proc, conf, interfaces=["all"], **options)
    assert plan.accept_ra == {} and plan.accept_ra_keys == ()
    # Nothing is written, nothing undone: eth0 keeps 2 (with forwarding off, 2 behaves as 1).
    assert [accept_ra(ra_proc, name) for name in INTERFACES] == ["1", "1", "1", "2", "1"]
    assert "accept_ra" not in conf.read_text()


def test_persist_false_sets_accept_ra_live_and_reads_no_file(ra_proc: Path, conf: Path) -> None:
    set_accept_ra(ra_proc, "lo", "2")
    set_accept_ra(ra_proc, "default", "2")
    conf.parent.mkdir(parents=True)
    conf.write_text("vm.swappiness = 10\n")
    plan = run(ra_proc, conf, persist=False)
    assert plan.file is None and plan.persisted is None
    assert plan.accept_ra == {
        "net.ipv6.conf.default.accept_ra": _sysctl.ValueChange("2", "2"),
        "net.ipv6.conf.eth0.accept_ra": ra_change("1"),
        "net.ipv6.conf.eth0/100.accept_ra": ra_change("1"),
    }
    assert conf.read_text() == "vm.swappiness = 10\n"


def test_planning_accept_ra_writes_nothing(ra_proc: Path, conf: Path) -> None:
    before = snapshot(ra_proc.parent.parent)
    plan = _sysctl.plan_forwarding(str(ra_proc), str(conf), ["all"], enabled=True, persist=True)
    assert plan.changed and len(plan.accept_ra) == 4
    assert snapshot(ra_proc.parent.parent) == before


def test_unreadable_accept_ra_fails_naming_key_and_path_and_writes_nothing(ra_proc: Path, conf: Path) -> None:
    (ra_proc / "net/ipv6/conf/eth0/accept_ra").unlink()
    before = snapshot(ra_proc.parent.parent)
    with pytest.raises(SysctlError) as caught:
        run(ra_proc, conf)
    assert caught.value.problems == [
        "cannot read net.ipv6.conf.eth0.accept_ra from %s: [Errno 2] No such file or directory: '%s'"
        % ((ra_proc / "net/ipv6/conf/eth0/accept_ra",) * 2)
    ]
    assert snapshot(ra_proc.parent.parent) == before and not conf.parent.exists()


def test_missing_named_interface_is_reported_once(ra_proc: Path, conf: Path) -> None:
    with pytest.raises(SysctlError) as caught:
        run(ra_proc, conf, interfaces=["eth0", "eth9"])
    assert len(caught.value.problems) == 1 and "net.ipv6.conf.eth9.forwarding" in caught.value.problems[0]


def test_an_interface_gone_since_it_was_listed_is_skipped(ra_proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_listdir = os.listdir
    monkeypatch.setattr(_sysctl.os, "listdir", lambda path: real_listdir(path) + ["veth9"])
    plan = run(ra_proc, conf)
    assert "net.ipv6.conf.veth9.accept_ra" not in plan.accept_ra and len(plan.accept_ra) == 4


def test_unlistable_interfaces_fail_naming_the_directory(ra_proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str) -> list:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_sysctl.os, "listdir", refuse)
    with pytest.raises(SysctlError) as caught:
        run(ra_proc, conf)
    assert caught.value.problems == ["cannot list the IPv6 interfaces under %s: [Errno 13] Permission denied" % (ra_proc / "net/ipv6/conf")]
    assert live(ra_proc, "ipv6", "all") == "0" and not conf.parent.exists()


def test_unwritable_accept_ra_fails_before_writing(ra_proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ra_proc / "net/ipv6/conf/all/forwarding").write_text("1\n")  # only accept_ra needs writing
    fake_unwritable(monkeypatch, read_only=True)
    with pytest.raises(SysctlError) as caught:
        _sysctl.plan_forwarding(str(ra_proc), str(conf), ["all"], enabled=True, persist=False)
    assert len(caught.value.problems) == 4
    assert caught.value.problems[0] == "cannot write net.ipv6.conf.default.accept_ra to %s: read-only file system%s" % (
        ra_proc / "net/ipv6/conf/default/accept_ra", _sysctl.PROC_SYS_READ_ONLY_HINT
    )


def test_read_only_proc_sys_is_fine_when_accept_ra_is_already_2(ra_proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run(ra_proc, conf)
    fake_unwritable(monkeypatch, read_only=True)
    assert not _sysctl.plan_forwarding(str(ra_proc), str(conf), ["all"], enabled=True, persist=True).changed


def test_failure_writing_forwarding_names_the_accept_ra_already_written(ra_proc: Path, conf: Path) -> None:
    plan = _sysctl.plan_forwarding(str(ra_proc), str(conf), ["eth0"], enabled=True, persist=False)
    forwarding = ra_proc / "net/ipv6/conf/eth0/forwarding"
    forwarding.unlink()
    forwarding.mkdir()
    with pytest.raises(SysctlError) as caught:
        _sysctl.apply_live(str(ra_proc), plan)
    assert caught.value.written == ["net.ipv6.conf.eth0.accept_ra"]
    assert "already written in this run: net.ipv6.conf.eth0.accept_ra" in str(caught.value)


def test_a_key_gone_before_it_is_read_back_is_an_error_not_a_crash(ra_proc: Path, conf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _sysctl.plan_forwarding(str(ra_proc), str(conf), ["eth0"], enabled=True, persist=False)
    real_write = _sysctl.write_value

    def write_then_vanish(path: str, value: str) -> None:
        real_write(path, value)
        if path.endswith("forwarding"):
            os.unlink(path)

    monkeypatch.setattr(_sysctl, "write_value", write_then_vanish)
    with pytest.raises(SysctlError, match=r"cannot read back net\.ipv6\.conf\.eth0\.forwarding from .*\(written in this run: "
                       r"net\.ipv6\.conf\.eth0\.accept_ra, net\.ipv6\.conf\.eth0\.forwarding\)"):
        _sysctl.apply_live(str(ra_proc), plan)


def test_values_not_kept_names_each_key_with_its_value(ra_proc: Path, conf: Path) -> None:
    plan = _sysctl.plan_forwarding(str(ra_proc), str(conf), ["eth0", "lo"], enabled=True, persist=False)
    after = {key.name: value for key, value in plan.assignments}
    assert _sysctl.values_not_kept(plan, after) is None
    after.update({"net.ipv6.conf.lo.accept_ra": "1", "net.ipv6.conf.eth0.forwarding": "0"})
    assert _sysctl.values_not_kept(plan, after) == (
        "the kernel did not keep the value 2 for: net.ipv6.conf.lo.accept_ra; the value 1 for: net.ipv6.conf.eth0.forwarding"
    )


def test_a_later_file_that_sets_accept_ra_is_reported(sysctl_dirs, tmp_path: Path) -> None:
    etc = sysctl_dirs[0]
    (etc / "99-hardening.conf").write_text("net.ipv6.conf.default.accept_ra = 0\n")
    warnings = overrides(sysctl_dirs, etc / "60-netsec-ipsec.conf", {"net.ipv6.conf.default.accept_ra": "2"}, tmp_path / "none")
    assert warnings == ["%s sets net.ipv6.conf.default.accept_ra = 0 and is applied after %s, so at boot it overrides "
                        "net.ipv6.conf.default.accept_ra = 2" % (etc / "99-hardening.conf", etc / "60-netsec-ipsec.conf")]


# --- sysctl.d order ---------------------------------------------------------------------------


@pytest.fixture
def sysctl_dirs(tmp_path: Path):
    dirs = [tmp_path / "etc/sysctl.d", tmp_path / "run/sysctl.d", tmp_path / "usr/lib/sysctl.d"]
    for directory in dirs:
        directory.mkdir(parents=True)
    return dirs


def overrides(sysctl_dirs, ours: Path, assignments: Dict[str, str], sysctl_conf: Path) -> list:
    return _sysctl.boot_overrides(str(ours), assignments, [str(path) for path in sysctl_dirs], str(sysctl_conf))


def test_later_files_that_set_another_value_are_reported(sysctl_dirs, tmp_path: Path) -> None:
    etc, run_dir, usr = sysctl_dirs
    ours = etc / "60-netsec-ipsec.conf"
    ours.write_text(_sysctl.render_sysctl_file([("net.ipv6.conf.all.forwarding", "1")]))
    (etc / "10-early.conf").write_text("net.ipv6.conf.all.forwarding = 0\n")  # applied before ours
    (usr / "99-late.conf").write_text("net.ipv6.conf.all.forwarding = 0\n")
    (run_dir / "70-same.conf").write_text("net.ipv6.conf.all.forwarding = 1\n")  # agrees
    (etc / "80-masked.conf").write_text("")  # hides the /usr/lib file of the same name
    (usr / "80-masked.conf").write_text("net.ipv6.conf.all.forwarding = 0\n")
    (etc / "99-late.txt").write_text("net.ipv6.conf.all.forwarding = 0\n")  # not a .conf file
    sysctl_conf = tmp_path / "etc/sysctl.conf"
    sysctl_conf.write_text("net.ipv4.ip_forward = 0\n")
    (etc / "99-sysctl.conf").symlink_to(sysctl_conf)
    warnings = overrides(sysctl_dirs, ours, {"net.ipv6.conf.all.forwarding": "1", "net.ipv4.conf.all.forwarding": "1"}, sysctl_conf)
    template = "%s sets %s = 0 and is applied after %s, so at boot it overrides %s = 1"
    assert warnings == [
        template % (usr / "99-late.conf", "net.ipv6.conf.all.forwarding", ours, "net.ipv6.conf.all.forwarding"),
        template % (etc / "99-sysctl.conf", "net.ipv4.conf.all.forwarding", ours, "net.ipv4.conf.all.forwarding"),
    ]


def test_a_file_of_the_same_name_with_higher_priority_masks_ours(sysctl_dirs, tmp_path: Path) -> None:
    etc, usr = sysctl_dirs[0], sysctl_dirs[2]
    ours = usr / "60-netsec-ipsec.conf"
    (etc / "60-netsec-ipsec.conf").write_text("")
    warnings = overrides(sysctl_dirs, ours, {"net.ipv6.conf.all.forwarding": "1"}, tmp_path / "none")
    assert warnings == ["%s masks %s at boot: sysctl.d reads a file name only from its highest-priority directory" % (etc / "60-netsec-ipsec.conf", ours)]


def test_no_advice_for_files_outside_sysctl_d(sysctl_dirs, tmp_path: Path) -> None:
    (sysctl_dirs[0] / "99-late.conf").write_text("net.ipv6.conf.all.forwarding = 0\n")
    assert overrides(sysctl_dirs, tmp_path / "mine.conf", {"net.ipv6.conf.all.forwarding": "1"}, tmp_path / "none") == []
