# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The check for policies that would cover Ansible's own SSH connection."""

from __future__ import annotations

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    LocalNode, Peer, PlanOptions, build_desired,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.lockout import (
    covering_policies, parse_ssh_connection,
)

KEY = Key(spi=1, form=FORM_AEAD, aead_name="rfc4106(gcm(aes))", aead_key=bytes(range(20)), icv_bits=128)
BOOT_A = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa"
BOOT_B = "0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb"
# Ansible on node2 (10.77.0.2) reaching node1 (10.77.0.1) over SSH on the mesh addresses.
OVER_THE_MESH = "10.77.0.2 51234 10.77.0.1 22"


def desired_policies(bypass):
    local = LocalNode(name="node1", addresses=("10.77.0.1",), boot_id=BOOT_A)
    peers = [Peer(name="node2", addresses=("10.77.0.2",), boot_id=BOOT_B)]
    return build_desired(local, peers, [KEY], PlanOptions(bypass=tuple(bypass))).policies


def test_parse_ssh_connection():
    assert parse_ssh_connection(OVER_THE_MESH) == ("10.77.0.2", 51234, "10.77.0.1", 22)
    assert parse_ssh_connection("fe80::1%eth0 5 fe80::2%eth0 22") == ("fe80::1", 5, "fe80::2", 22)
    assert parse_ssh_connection(None) is None
    assert parse_ssh_connection("garbage") is None


def test_without_bypass_the_mesh_policies_cover_the_connection():
    covering = covering_policies(desired_policies([]), parse_ssh_connection(OVER_THE_MESH))
    assert sorted(policy.dir for policy in covering) == [0, 1]


def test_the_default_bypass_exempts_the_connection():
    assert covering_policies(desired_policies([("tcp", 22)]), parse_ssh_connection(OVER_THE_MESH)) == []


def test_a_bypass_on_another_port_does_not_help():
    connection = parse_ssh_connection("10.77.0.2 51234 10.77.0.1 2222")
    assert len(covering_policies(desired_policies([("tcp", 22)]), connection)) == 2


def test_a_controller_outside_the_mesh_is_not_covered():
    connection = parse_ssh_connection("192.0.2.10 51234 10.77.0.1 22")
    assert covering_policies(desired_policies([]), connection) == []
