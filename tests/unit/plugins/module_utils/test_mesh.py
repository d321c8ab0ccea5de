# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory contract: peers from the group, trust from the run's progress."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Set

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._controller.mesh import (
    MeshInventoryError,
    boot_ids_from_results,
    contract_problems,
    current_keys_from_results,
    forwarding_needs,
    keys_file_is_current,
    member_variables,
    mesh_peers,
    rebooted_member_problems,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import desired_keys
from ansible_collections.netsec.ipsec.plugins.module_utils._modules.info import keys_file_facts


BOOT = {"node%d" % i: "%08d-0000-4000-8000-000000000000" % i for i in range(1, 5)}
HOSTVARS = {
    "node1": {"ipsec_addresses": ["10.77.0.1"]},
    "node2": {"ipsec_addresses": ["10.77.0.2", "fd77::2"], "ipsec_subnets": ["10.244.2.0/24"]},
    "node3": {"ipsec_addresses": "10.77.0.3"},
    "node4": {"ipsec_addresses": ["10.77.0.4"]},
}
MEMBERS = ["node1", "node2", "node3", "node4"]


def peers_of(local, **kwargs):
    return {peer["name"]: peer for peer in mesh_peers(MEMBERS, HOSTVARS, local, BOOT, **kwargs)}


def test_peers_are_the_whole_group_whatever_the_play():
    peers = peers_of("node1")
    assert sorted(peers) == ["node2", "node3", "node4"]
    assert peers["node2"]["addresses"] == ["10.77.0.2", "fd77::2"]
    assert peers["node2"]["subnets"] == ["10.244.2.0/24"]
    assert peers["node3"]["addresses"] == ["10.77.0.3"]
    assert "subnets" not in peers["node4"]
    assert peers["node4"]["boot_id"] == BOOT["node4"]


def test_trust_follows_the_phases_completed_in_this_run():
    peers = peers_of("node1", inbound_ready_hosts=["node1", "node2"], encrypting_hosts=["node2"])
    assert peers["node2"]["outbound"] == "enable" and peers["node2"]["inbound_level"] == "required"
    # node3 failed or is outside --limit: what exists towards it is kept, nothing is added.
    assert peers["node3"]["outbound"] == "keep" and peers["node3"]["inbound_level"] == "keep"


def test_a_peer_without_a_boot_id_is_passed_without_one():
    peers = mesh_peers(MEMBERS, HOSTVARS, "node1", {"node2": BOOT["node2"]})
    assert [peer.get("boot_id") for peer in peers] == [BOOT["node2"], None, None]


def test_overrides_and_unmanaged_peers():
    peers = {peer["name"]: peer for peer in mesh_peers(
        MEMBERS, HOSTVARS, "node1", BOOT,
        overrides={"node3": {"subnets": ["10.3.0.0/16"], "inbound_level": "use"}},
        unmanaged_peers=[{"name": "edge", "addresses": ["192.0.2.9"], "boot_id": BOOT["node1"]}])}
    assert peers["node3"]["subnets"] == ["10.3.0.0/16"] and peers["node3"]["inbound_level"] == "use"
    assert peers["edge"] == {"name": "edge", "addresses": ["192.0.2.9"], "boot_id": BOOT["node1"]}


@pytest.mark.parametrize("hostvars, message", [
    ({"ipsec_addresses": []}, "host node2: ipsec_addresses must be a non-empty list"),
    ({"ipsec_addresses": ["10.77.0.300"]}, "host node2: ipsec_addresses has '10.77.0.300'"),
    ({"ipsec_addresses": ["10.77.0.2"], "ipsec_subnets": ["10.0.0.0/33"]}, "host node2: ipsec_subnets has '10.0.0.0/33'"),
])
def test_bad_inventory_names_host_and_variable(hostvars, message):
    with pytest.raises(MeshInventoryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mesh_peers(["node1", "node2"], {"node1": HOSTVARS["node1"], "node2": hostvars}, "node1", BOOT)


def test_unknown_override_field_is_refused():
    with pytest.raises(MeshInventoryError, match=r"ipsec_peer_overrides\[node2\] has unknown fields colour"):
        mesh_peers(MEMBERS, HOSTVARS, "node1", BOOT, overrides={"node2": {"colour": "red"}})


def test_boot_ids_from_the_two_reads():
    hostvars = {"node1": {"ipsec_node_info": {"boot_id": BOOT["node1"], "pyroute2": True}},
                "node2": {"ipsec_node_info": {"failed": True, "msg": "boom"}}}
    outside = {"results": [
        {"item": "node3", "boot_id": BOOT["node3"]},
        {"item": "node4", "unreachable": True},
    ]}
    assert boot_ids_from_results(["node1", "node2"], hostvars, "ipsec_node_info", outside) == {
        "node1": BOOT["node1"], "node3": BOOT["node3"]}


def test_current_keys_of_the_other_members():
    line_a = "3+ rfc4106(gcm(aes)) sha256:aaaaaaaaaaaa 128"
    line_b = "3+ rfc4106(gcm(aes)) sha256:bbbbbbbbbbbb 128"
    hostvars = {"node1": {"ipsec_node_info": {"current_key": line_a}},
                "node2": {"ipsec_node_info": {"current_key": line_b}},
                "node3": {"ipsec_node_info": {"failed": True, "current_key": "3+ x sha256:cccccccccccc 128"}},
                "node5": {"ipsec_node_info": {"current_key": None}}}
    outside = {"results": [{"item": "node4", "current_key": line_b}, {"item": "node6", "unreachable": True},
                           {"item": "node7", "skipped": True, "current_key": line_a}]}
    play = ["node1", "node2", "node3", "node5"]
    assert current_keys_from_results(play, hostvars, "ipsec_node_info", outside, "node1") == [line_b]
    assert current_keys_from_results(play, hostvars, "ipsec_node_info", outside, "node2") == [line_a, line_b]
    assert current_keys_from_results(play, hostvars, "ipsec_node_info", None, "node2") == [line_a]


def test_member_variables_give_the_same_peers_as_hostvars():
    members = member_variables(MEMBERS, HOSTVARS)
    assert set(members) == set(MEMBERS)
    assert all(set(variables) == {"ipsec_addresses", "ipsec_subnets"} for variables in members.values())
    for local in MEMBERS:
        assert mesh_peers(MEMBERS, members, local, BOOT, ["node2"], ["node3"]) == \
            mesh_peers(MEMBERS, HOSTVARS, local, BOOT, ["node2"], ["node3"])


def test_forwarding_needs():
    assert forwarding_needs(["10.0.0.1"], []) == {"ipv6": False, "ipv4": False}
    assert forwarding_needs(["10.0.0.1"], ["10.0.0.1/32"]) == {"ipv6": False, "ipv4": False}
    assert forwarding_needs(["10.0.0.1"], ["10.244.1.0/24"]) == {"ipv6": False, "ipv4": True}
    # An IPv6 tunnel address alone does not make the node a router: forwarding would stop it
    # accepting router advertisements (a SLAAC-configured node would lose its default route).
    assert forwarding_needs(["10.0.0.1", "fd00::1"], []) == {"ipv6": False, "ipv4": False}
    assert forwarding_needs(["10.0.0.1", "fd00::1"], ["fd00::1/128"]) == {"ipv6": False, "ipv4": False}
    assert forwarding_needs(["10.0.0.1", "fd00::1"], ["fd00:44::/64"]) == {"ipv6": True, "ipv4": False}


# --- the role's once-per-play checks ---------------------------------------------------

CONTENT = "3+ rfc4106(gcm(aes)) 0x5d1a7c3e9b0f24688ac1e7d3f05b9a2c61e8d4b7 128"
KEYS = [dict(spi=3, plus=True, aead="rfc4106(gcm(aes))", aead_key="5d1a7c3e9b0f24688ac1e7d3f05b9a2c61e8d4b7",
             icv_bits=128)]


def test_contract_problems_name_host_and_variable():
    groups = {"ipsec_mesh": MEMBERS, "all": MEMBERS + ["outsider"]}
    assert contract_problems(MEMBERS, HOSTVARS, groups, "ipsec_mesh") == []
    broken = dict(HOSTVARS, node2={"ipsec_keys_content": CONTENT}, outsider=HOSTVARS["node1"])
    assert contract_problems(MEMBERS + ["outsider"], broken, groups, "ipsec_mesh") == [
        "outsider: not a member of the mesh group ipsec_mesh",
        "node2: ipsec_addresses is not set",
    ]
    assert contract_problems(MEMBERS, HOSTVARS, groups, "mesh2") == [
        "the mesh group mesh2 is not in the inventory (variable ipsec_mesh_group)"]


@pytest.mark.parametrize("changes, message", [
    ({"node3": {"ipsec_addresses": ["10.77.0.1"]}},
     "node1 and node3 both have the tunnel address 10.77.0.1: two members cannot share an address"),
    ({"node3": {"ipsec_addresses": ["fd77::3"]}},
     "node1 (IPv4 only) and node3 (IPv6 only) have no address family in common"),
    ({"node4": {"ipsec_addresses": ["10.77.0.4"], "ipsec_subnets": ["fd00:44::/64"]}},
     "node4: subnet fd00:44::/64 cannot be carried: node4 has no IPv6 tunnel address"),
    ({"node4": {"ipsec_addresses": ["::ffff:10.77.0.4"]}},
     "host node4: ipsec_addresses has ::ffff:10.77.0.4, which is an IPv4-mapped IPv6 address"),
    ({"node4": {"ipsec_addresses": ["fe80::4%eth0"]}}, "host node4: ipsec_addresses has fe80::4%eth0"),
    ({"node4": {"ipsec_addresses": ["10.77.0.4", "10.77.1.4"]}}, "host node4: ipsec_addresses has two IPv4 addresses"),
])
def test_contract_problems_name_what_no_node_could_carry(changes, message):
    groups = {"ipsec_mesh": MEMBERS}
    problems = contract_problems(MEMBERS[:1], dict(HOSTVARS, **changes), groups, "ipsec_mesh")
    assert any(problem.startswith(message) for problem in problems), problems


def test_contract_problems_see_overrides_and_unmanaged_peers():
    groups = {"ipsec_mesh": MEMBERS}
    assert contract_problems(MEMBERS, HOSTVARS, groups, "ipsec_mesh", {"node3": {"addresses": ["fd77::3"]}}) == [
        "node1 (IPv4 only) and node3 (IPv6 only) have no address family in common: nothing between them can be "
        "carried as ESP; give one of them a tunnel address of the other's family"]
    problems = contract_problems(MEMBERS, HOSTVARS, groups, "ipsec_mesh", None,
                                 [{"name": "edge", "addresses": ["10.77.0.2"]}])
    assert problems == ["node2 and edge both have the tunnel address 10.77.0.2: two members cannot share an address "
                        "(is one a copy of the other?)"]


class InfoModule:
    def __init__(self) -> None:
        self.no_log_values: Set[str] = set()
        self.warnings: List[str] = []

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)


def written_by_the_keys_module(path: Path, content: Any = None, keys: Any = None) -> None:
    """The bytes and mode xfrm_keys gives the file for these options."""
    path.write_bytes(desired_keys(content, keys)[1])
    os.chmod(path, 0o600)


@pytest.mark.parametrize("option", ["content", "keys"])
def test_keys_file_is_current_only_for_the_exact_file_and_mode(tmp_path: Path, option: str):
    path = tmp_path / "keys"
    given = dict(content=CONTENT) if option == "content" else dict(keys=KEYS)
    written_by_the_keys_module(path, **given)
    module = InfoModule()
    facts = keys_file_facts(module, str(path))
    assert facts["keys_file_mode"] == "0600" and facts["current_key"].startswith("3+ rfc4106(gcm(aes)) sha256:")
    assert KEYS[0]["aead_key"] not in repr(facts) and KEYS[0]["aead_key"] in module.no_log_values
    assert keys_file_is_current(facts, given.get("content"), given.get("keys"))
    # The other option's rendering differs in bytes (content keeps its spelling): not current.
    other = dict(content=CONTENT.replace("0x5d", "0x5D")) if option == "content" else dict(keys=[dict(KEYS[0], spi=4)])
    assert not keys_file_is_current(facts, other.get("content"), other.get("keys"))
    os.chmod(path, 0o644)
    assert not keys_file_is_current(keys_file_facts(module, str(path)), given.get("content"), given.get("keys"))


def test_keys_file_is_current_is_false_whenever_unsure(tmp_path: Path):
    path = tmp_path / "keys"
    module = InfoModule()
    missing = keys_file_facts(module, str(path))
    assert missing == dict(current_key=None, keys_file_fingerprint=None, keys_file_mode=None)
    assert not keys_file_is_current(missing, CONTENT, None)
    written_by_the_keys_module(path, content=CONTENT)
    facts = keys_file_facts(module, str(path))
    assert not keys_file_is_current(facts, CONTENT, KEYS)          # both options: the module refuses
    assert not keys_file_is_current(facts, None, None)             # neither: the module only reports
    assert not keys_file_is_current(facts, "3+ no-such-alg 0x00 128", None)  # invalid: the module names it
    assert not keys_file_is_current(None, CONTENT, None)           # no read (--tags keys)
    assert not keys_file_is_current(dict(failed=True), CONTENT, None)
    path.write_text("not a keys file\n")
    unparsable = keys_file_facts(module, str(path))
    assert unparsable["current_key"] is None and unparsable["keys_file_fingerprint"].startswith("sha256:")
    assert any("not a valid keys file" in warning for warning in module.warnings)


def test_a_rebooted_member_in_a_limited_run_is_named_with_the_members_outside():
    boot_now, boot_keyed = "33333333-0000-4000-8000-000000000000", BOOT["node2"]
    node_info = {"boot_id": boot_now, "keyed_boot_id": boot_keyed}
    hostvars = dict(HOSTVARS, node2=dict(HOSTVARS["node2"], ipsec_node_info=node_info))
    problems = rebooted_member_problems(["node2"], hostvars, "ipsec_node_info", MEMBERS)
    assert problems == [
        "node2 rebooted since it was keyed (boot id 33333333..., its keys were derived for 00000002...): node1, "
        "node3, node4 are outside this run and still hold keys for its old boot, so its pairs with them would stay "
        "broken (their traffic is dropped, never sent in plaintext). Run mesh.yml over the whole group, or with "
        "--limit node2,node1,node3,node4"]
    # The whole group in the run re-keys every pair: nothing to say. Nor for a node keyed
    # over its current boot, a node never keyed, or a read that failed.
    assert rebooted_member_problems(MEMBERS, hostvars, "ipsec_node_info", MEMBERS) == []
    for info in ({"boot_id": boot_now, "keyed_boot_id": boot_now}, {"boot_id": boot_now, "keyed_boot_id": None},
                 {"failed": True, "boot_id": boot_now, "keyed_boot_id": boot_keyed}):
        quiet = dict(HOSTVARS, node2=dict(HOSTVARS["node2"], ipsec_node_info=info))
        assert rebooted_member_problems(["node2"], quiet, "ipsec_node_info", MEMBERS) == []
