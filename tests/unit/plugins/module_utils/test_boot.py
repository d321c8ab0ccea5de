# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state files a node keeps (issue 12): the boot restore batch and the keying record,
and how xfrm_endpoint keeps them current (check mode, diff, teardown). Whether the kernel
takes the batch is tested on a real kernel (tests/netns/test_boot_restore.py)."""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Dict, List

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint
from ansible_collections.netsec.ipsec.plugins.module_utils._planner import boot
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    LocalNode, Peer, PlanOptions, build_desired,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    DIR_OUT, Selector, XfrmPolicy, selector_between,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.module_factory import file_module
# node is a fixture: pytest finds it by name.
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.test_xfrm_endpoint_noop import (  # noqa: F401 pylint: disable=unused-import
    BOOT_ID, FakeKernel, node,
)

BOOT_A = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa"
BOOT_B = "0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb"
KEY = Key(spi=3, form=FORM_AEAD, aead_name="rfc4106(gcm(aes))", aead_key=bytes(range(20)), icv_bits=128)


def _desired(**options: Any) -> Any:
    local = LocalNode("a", ("10.0.0.1", "fd00::1"), subnets=("10.9.0.0/24",), boot_id=BOOT_A)
    return build_desired(local, [Peer("b", ("10.0.0.2", "fd00::2"), boot_id=BOOT_B)], [KEY], PlanOptions(**options))


def test_every_kind_of_owned_policy_has_its_line():
    desired = _desired(bypass=[{"proto": "tcp", "port": 22, "networks": ["192.0.2.0/24"]}])
    lines = [boot.policy_batch_line(policy) for policy in desired.policies]
    assert "xfrm policy update src 192.0.2.0/24 dst 0.0.0.0/0 proto tcp dport 22 dir in priority 28160" in lines
    assert "xfrm policy update src 0.0.0.0/0 dst 192.0.2.0/24 proto tcp sport 22 dir out priority 28160" in lines
    assert "xfrm policy update src ::/0 dst ::/0 proto ipv6-icmp type 135 dir in priority 28160" in lines
    out = next(line for line in lines if line.startswith("xfrm policy update src 0.0.0.0/0 dst 10.0.0.2/32 dir out"))
    assert out.endswith("tmpl src 10.0.0.1 dst 10.0.0.2 proto esp spi 0x%08x reqid 1853056355 mode tunnel "
                        "level required" % next(p for p in desired.policies if p.dir == DIR_OUT
                                                and p.selector.dst == "10.0.0.2/32").templates[0].spi)
    assert any(" dir fwd " in line for line in lines)  # a router restores its FWD policies too
    assert len(lines) == len(desired.policies)


def test_marks_are_restored_with_their_masks():
    desired = _desired(marks="cilium")
    marked = [boot.policy_batch_line(policy) for policy in desired.policies if policy.mark is not None]
    assert marked and all(" mark 0x" in line and " mask 0xffffff00 " in line for line in marked)


def test_the_file_holds_no_key_and_is_stable():
    desired = _desired()
    text = boot.render_boot_policies(desired.policies)
    assert text.startswith(boot.BATCH_HEADER)
    assert text == boot.render_boot_policies(list(reversed(desired.policies)))
    for state in desired.states:
        for algorithm in state.algorithms():
            assert algorithm.key.hex() not in text
    assert "xfrm state" not in text and "aead" not in text


@pytest.mark.parametrize("policy, what", [
    (XfrmPolicy(selector_between("10.0.0.0/8", "0.0.0.0/0"), DIR_OUT, ptype=1), "main-type"),
    (XfrmPolicy(Selector(2, "0.0.0.0", 0, "0.0.0.0", 0, 6, 22, 0xFF00), DIR_OUT), "partial port mask"),
    (XfrmPolicy(Selector(2, "0.0.0.0", 0, "0.0.0.0", 0, ifindex=3), DIR_OUT), "interface"),
])
def test_a_policy_ip_batch_cannot_express_is_refused(policy, what):
    with pytest.raises(PlanError, match=what):
        boot.policy_batch_line(policy)


def test_keying_record_round_trip_and_what_a_run_keeps():
    previous = boot.Keying("a", "old-boot", True, {"b": "b-boot-1", "c": "c-boot-1", "gone": "x"})
    record = boot.next_keying("a", "new-boot", True, {"b": "b-boot-2", "d": "d-boot"}, ["c"], previous)
    # b re-keyed, c frozen (its SAs were left as they were), d new, gone left the group.
    assert record == boot.Keying("a", "new-boot", True, {"b": "b-boot-2", "c": "c-boot-1", "d": "d-boot"})
    assert boot.parse_keying(boot.render_keying(record)) == record
    assert boot.next_keying("a", "new-boot", False, {"b": "b-boot-2"}, [], previous).peers == {}


@pytest.mark.parametrize("text", ["", "{", "[]", '{"version": 2, "node": "a", "boot_id": "x", "peers": {}}',
                                  '{"version": 1, "node": "a", "boot_id": "x", "peers": {"b": 3}}',
                                  '{"version": 1, "node": 5, "boot_id": "x", "peers": {}}'])
def test_a_record_this_version_did_not_write_is_none(text):
    assert boot.parse_keying(text) is None


# ---------------------------------------------------------------------------------------
# xfrm_endpoint keeps them current


def _run(node_fixture: Dict[str, Any], state_dir: str, check_mode: bool = False, **changes: Any) -> Dict[str, Any]:
    module = file_module(check_mode=check_mode)
    module._diff = True  # pylint: disable=protected-access
    params = dict(node_fixture["params"], state_dir=state_dir, **changes)
    params["local"] = dict(params["local"], name="node1")
    return endpoint.reconcile_node(module, params, BOOT_ID)


def test_a_converged_node_gets_its_files_and_then_changes_nothing(node, tmp_path):  # noqa: F811
    state_dir = str(tmp_path / "state")
    first = _run(node, state_dir)
    assert first["changed"] and first["state_files_changed"] and FakeKernel.applied == []
    policies = (tmp_path / "state" / boot.BOOT_POLICIES).read_text()
    assert policies == boot.render_boot_policies(node["desired"].policies)
    keying = json.loads((tmp_path / "state" / boot.KEYING).read_text())
    assert keying["node"] == "node1" and keying["boot_id"] == BOOT_ID and len(keying["peers"]) == 5
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    for name in (boot.BOOT_POLICIES, boot.KEYING):
        assert stat.S_IMODE(os.stat(tmp_path / "state" / name).st_mode) == 0o600
    headers = [diff["after_header"] for diff in first["diff"][1:]]
    assert headers == [os.path.join(state_dir, boot.BOOT_POLICIES), os.path.join(state_dir, boot.KEYING)]
    second = _run(node, state_dir)
    assert not second["changed"] and not second["state_files_changed"] and len(second["diff"]) == 1


def test_check_mode_writes_no_file_but_says_it_would(node, tmp_path):  # noqa: F811
    result = _run(node, str(tmp_path / "state"), check_mode=True)
    assert result["changed"] and result["state_files_changed"]
    assert not (tmp_path / "state").exists()


def test_the_files_follow_the_kernel_and_go_with_a_teardown(node, tmp_path):  # noqa: F811
    state_dir = str(tmp_path / "state")
    _run(node, state_dir)
    del FakeKernel.policies[-1]  # the node lost a policy: the run re-adds it and the file is unchanged
    again = _run(node, state_dir)
    assert again["changed"] and not again["state_files_changed"]
    torn = _run(node, state_dir, state="absent")
    assert torn["state_files_changed"] and os.listdir(state_dir) == []


def test_no_state_dir_keeps_no_file(node, tmp_path):  # noqa: F811
    result = _run(node, "")
    assert not result["changed"] and not result["state_files_changed"]


# ---------------------------------------------------------------------------------------
# The boot unit


def _unit_settings(content: str) -> Dict[str, List[str]]:
    settings: Dict[str, List[str]] = {}
    section = ""
    for line in content.splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault("%s.%s" % (section, key), []).append(value)
    return settings


def test_the_boot_unit_restores_the_file_before_the_network_and_needs_its_mount():
    unit = boot.render_boot_unit("/srv/mesh-state")
    settings = _unit_settings(unit.content)
    assert settings["Unit.DefaultDependencies"] == ["no"]
    assert "network-pre.target" in settings["Unit.Before"][0].split()
    assert settings["Unit.Wants"] == ["network-pre.target"]
    assert settings["Unit.RequiresMountsFor"] == ["/srv/mesh-state"]
    assert settings["Unit.ConditionPathExists"] == ["/srv/mesh-state/boot-policies"]
    assert settings["Service.ExecStart"] == ["ip -force -batch /srv/mesh-state/boot-policies"]
    assert settings["Service.Type"] == ["oneshot"] and settings["Install.WantedBy"] == ["sysinit.target"]
    assert unit.fingerprint.startswith("sha256:") and unit.fingerprint != boot.render_boot_unit().fingerprint
    assert boot.render_boot_unit("/srv/mesh-state/") == unit


@pytest.mark.parametrize("state_dir", ["relative/dir", "/var/lib/with space", "/var/lib/%n", "/x\nExecStart=/bin/sh",
                                       "/var/lib/../etc", "", None])
def test_a_state_dir_a_unit_cannot_name_plainly_is_refused(state_dir):
    with pytest.raises(PlanError, match="cannot be named in a systemd unit"):
        boot.render_boot_unit(state_dir)


def test_systemd_accepts_the_boot_unit(tmp_path):
    """systemd's own checker (systemd-analyze verify, offline) finds nothing to say."""
    import shutil
    import subprocess
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (Debian package systemd; make deps installs it)"
    unit_path = tmp_path / boot.BOOT_UNIT_NAME
    unit_path.write_text(boot.render_boot_unit().content)
    result = subprocess.run([analyze, "verify", str(unit_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", result


def test_xfrm_info_reports_the_unit_as_the_role_compares_it(tmp_path):
    from ansible_collections.netsec.ipsec.plugins.module_utils._modules import info
    unit = boot.render_boot_unit()
    unit_path = tmp_path / boot.BOOT_UNIT_NAME
    assert info.unit_facts(str(unit_path))["fingerprint"] is None
    unit_path.write_text(unit.content)
    facts = info.unit_facts(str(unit_path))
    assert facts["fingerprint"] == unit.fingerprint and facts["enabled"] is False
    wants = tmp_path / info.BOOT_TARGET_WANTS
    wants.mkdir()
    (wants / boot.BOOT_UNIT_NAME).symlink_to(tmp_path / "elsewhere.service")
    assert info.unit_facts(str(unit_path))["enabled"] is False, "a link to another file does not enable it"
    (wants / boot.BOOT_UNIT_NAME).unlink()
    (wants / boot.BOOT_UNIT_NAME).symlink_to(unit_path)
    assert info.unit_facts(str(unit_path))["enabled"] is True
    assert info.unit_facts(str(unit_path))["systemd"] is os.path.isdir("/run/systemd/system")
