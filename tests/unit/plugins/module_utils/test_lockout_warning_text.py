# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wording of xfrm_endpoint's warning about Ansible's own SSH connection (the lab showed
"policy policy in ..."; render() already names the entry kind)."""

from __future__ import annotations

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    LocalNode, Peer, PlanOptions, build_desired,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import FakeModule

KEY = Key(spi=1, form=FORM_AEAD, aead_name="rfc4106(gcm(aes))", aead_key=bytes(range(20)), icv_bits=128)


def test_warning_names_the_policy_once(monkeypatch):
    local = LocalNode(name="node1", addresses=("10.77.0.1",), boot_id="0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa")
    peers = [Peer(name="node3", addresses=("10.77.0.3",), boot_id="0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb")]
    policies = build_desired(local, peers, [KEY], PlanOptions(bypass=())).policies
    monkeypatch.setenv("SSH_CONNECTION", "10.77.0.3 46788 10.77.0.1 22")
    module = FakeModule()
    endpoint._warn_about_own_connection(module, policies)  # pylint: disable=protected-access
    assert len(module.warnings) == 2
    for warning in module.warnings:
        assert warning.startswith("policy in ") or warning.startswith("policy out ")
        assert "policy policy" not in warning
        assert "covers the SSH connection Ansible is using (10.77.0.3:46788 -> 10.77.0.1:22)" in warning
