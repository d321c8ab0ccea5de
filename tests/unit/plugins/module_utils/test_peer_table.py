# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The peer table (issue 17): its text, its checks, the trust a call gives, and that it
plans exactly what the ``peers`` the role used to send planned, in every phase."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from typing import Any, Dict, List, Sequence

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._controller.mesh import (
    MeshInventoryError, mesh_peers, peer_table, untrusted_members,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    PHASE_ALL, PHASES, LocalNode, PlanOptions, build_desired, fully_trusted,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import reconcile
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.peer_table import (
    PEER_TABLE, parse_peer_table, render_peer_table, table_fingerprint, table_peers, table_text,
)

BOOT = {"node%d" % i: "%08d-0000-4000-8000-000000000000" % i for i in range(1, 6)}
HOSTVARS = {
    "node1": {"ipsec_addresses": ["10.77.0.1"]},
    "node2": {"ipsec_addresses": ["10.77.0.2", "fd77::2"], "ipsec_subnets": ["10.244.2.0/24"]},
    "node3": {"ipsec_addresses": "10.77.0.3"},
    "node4": {"ipsec_addresses": ["10.77.0.4"], "ipsec_subnets": []},
    "node5": {"ipsec_addresses": ["10.77.0.5", "fd77::5"]},
}
MEMBERS = ["node1", "node2", "node3", "node4", "node5"]
KEY = Key(spi=3, form=FORM_AEAD, aead_name="rfc4106(gcm(aes))", aead_key=bytes(range(20)), icv_bits=128)
FINGERPRINT = "sha256:" + "0" * 64


def test_the_text_has_one_peer_per_line_in_name_order_and_one_fingerprint():
    peers = [{"name": "b", "addresses": ["10.0.0.2"], "subnets": [], "boot_id": None},
             {"name": "a", "addresses": ["10.0.0.1"], "outbound": "keep"}]
    text = render_peer_table(peers)
    assert text.splitlines() == ["[", '{"addresses":["10.0.0.1"],"name":"a","outbound":"keep"},',
                                 '{"addresses":["10.0.0.2"],"name":"b"}', "]"]
    assert render_peer_table(reversed(peers)) == text
    assert parse_peer_table(text) == [{"addresses": ["10.0.0.1"], "name": "a", "outbound": "keep"},
                                      {"addresses": ["10.0.0.2"], "name": "b"}]
    fingerprint = table_fingerprint(text)
    assert fingerprint.startswith("sha256:") and len(fingerprint) == 7 + 64
    assert table_fingerprint(text.replace("10.0.0.2", "10.0.0.3")) != fingerprint
    assert parse_peer_table(render_peer_table([])) == []


@pytest.mark.parametrize("text, message", [
    ("[", r"peer_table.peers is not JSON"),
    ('{"name": "a"}', r"must be a JSON list of peers, got dict"),
    ('["a"]', r"peer_table.peers\[0\] must be a peer \(a JSON object\), got 'a'"),
    ('[{"addresses": ["10.0.0.1"]}]', r"peer_table.peers\[0\]: name must be a non-empty string, got None"),
    ('[{"name": "a", "addresses": ["10.0.0.1"], "key": "x"}]', r"peer_table.peers\[0\] \(a\) has unknown fields key"),
    ('[{"name": "a", "addresses": []}]', r"\(a\): addresses must be a non-empty list of strings, got \[\]"),
    ('[{"name": "a", "addresses": "10.0.0.1"}]', r"\(a\): addresses must be a non-empty list of strings, got '10.0.0.1'"),
    ('[{"name": "a", "addresses": ["10.0.0.1"], "subnets": [24]}]', r"\(a\): subnets must be a list of strings, got \[24\]"),
    ('[{"name": "a", "addresses": ["10.0.0.1"], "boot_id": 7}]', r"\(a\): boot_id must be a string, got 7"),
    ('[{"name": "a", "addresses": ["10.0.0.1"], "inbound_level": "off"}]',
     r"\(a\): inbound_level must be one of use, required, keep, got 'off'"),
    ('[{"name": "a", "addresses": ["10.0.0.1"], "outbound": "yes"}]', r"\(a\): outbound must be one of enable, keep, got 'yes'"),
    ('[{"name": "a", "addresses": ["10.0.0.1"]}, {"name": "a", "addresses": ["10.0.0.2"]}]',
     r"peer_table.peers\[0\] and \[1\] are both named a"),
])
def test_a_bad_table_names_the_entry_the_field_and_the_value(text, message):
    with pytest.raises(PlanError, match=message):
        parse_peer_table(text)


def test_the_table_a_call_uses_must_have_its_fingerprint():
    text = render_peer_table([{"name": "a", "addresses": ["10.0.0.1"]}])
    fingerprint = table_fingerprint(text)
    assert table_text(fingerprint, text, None, "/state/" + PEER_TABLE) == text
    assert table_text(fingerprint, None, text, "/state/" + PEER_TABLE) == text
    with pytest.raises(PlanError, match=r"peer_table.peers hashes to sha256:\w+, not to peer_table.fingerprint %s"
                       % FINGERPRINT):
        table_text(FINGERPRINT, text, None, "/state/" + PEER_TABLE)
    with pytest.raises(PlanError, match=r"gives no peers and /state/peer-table.json holds no peer table: give "
                       r"peer_table.peers"):
        table_text(fingerprint, None, None, "/state/" + PEER_TABLE)
    # A stored table that was changed on the node, or another controller's, is never used.
    with pytest.raises(PlanError, match=r"the table in /state/peer-table.json is sha256:\w+, not %s" % fingerprint):
        table_text(fingerprint, None, text.replace("10.0.0.1", "10.0.0.9"), "/state/" + PEER_TABLE)
    for bad in ("sha256:abc", fingerprint.upper(), None, fingerprint[7:]):
        with pytest.raises(PlanError, match=r"peer_table.fingerprint must be sha256: and 64 lowercase hex digits, got"):
            table_text(bad, text, None, "/state/" + PEER_TABLE)


def test_the_call_gives_the_trust_and_the_table_fixes_what_it_says():
    entries = parse_peer_table(render_peer_table([
        {"name": "a", "addresses": ["10.0.0.1"]},
        {"name": "b", "addresses": ["10.0.0.2"], "boot_id": "x"},
        {"name": "c", "addresses": ["10.0.0.3"], "inbound_level": "use", "outbound": "enable"},
    ]))
    peers = {peer["name"]: peer for peer in table_peers(entries, ["b", "c"], ["a", "c"])}
    assert peers["a"] == {"name": "a", "addresses": ["10.0.0.1"], "subnets": None, "boot_id": None,
                          "inbound_level": "keep", "outbound": "enable"}
    assert (peers["b"]["inbound_level"], peers["b"]["outbound"], peers["b"]["boot_id"]) == (None, "keep", "x")
    assert (peers["c"]["inbound_level"], peers["c"]["outbound"]) == ("use", "enable")
    with pytest.raises(PlanError, match=r"peer_table.keep_outbound names d, which the peer table does not hold"):
        table_peers(entries, ["d"], [])
    with pytest.raises(PlanError, match=r"peer_table.keep_inbound_level names e, z, which the peer table"):
        table_peers(entries, [], ["z", "e"])


def test_the_mesh_table_is_the_members_without_the_trust_of_the_run():
    table = peer_table(MEMBERS, HOSTVARS, {"node2": BOOT["node2"]}, {"node3": {"outbound": "keep"}},
                       [{"name": "far", "addresses": ["192.0.2.1"], "inbound_level": "use"}])
    entries = {entry["name"]: entry for entry in parse_peer_table(table["peers"])}
    assert table["fingerprint"] == table_fingerprint(table["peers"])
    assert sorted(entries) == ["far", "node1", "node2", "node3", "node4", "node5"]
    assert entries["node2"] == {"name": "node2", "addresses": ["10.77.0.2", "fd77::2"], "subnets": ["10.244.2.0/24"],
                                "boot_id": BOOT["node2"]}
    assert entries["node3"] == {"name": "node3", "addresses": ["10.77.0.3"], "outbound": "keep"}
    assert entries["node4"] == {"name": "node4", "addresses": ["10.77.0.4"]}
    assert entries["far"] == {"name": "far", "addresses": ["192.0.2.1"], "inbound_level": "use"}
    # The group's order does not matter: one inventory, one table.
    assert peer_table(list(reversed(MEMBERS)), HOSTVARS, {"node2": BOOT["node2"]}, {"node3": {"outbound": "keep"}},
                      [{"name": "far", "addresses": ["192.0.2.1"], "inbound_level": "use"}]) == table
    with pytest.raises(MeshInventoryError, match=r"host node1: ipsec_addresses has 'x', which is not an IP address"):
        peer_table(MEMBERS, dict(HOSTVARS, node1={"ipsec_addresses": ["x"]}), BOOT)
    assert untrusted_members(MEMBERS, ["node4", "node1", "node3"]) == ["node2", "node5"]
    assert untrusted_members(MEMBERS, MEMBERS) == []


def _plan(local_host: str, peers: Sequence[Dict[str, Any]], phase: str, final_check: bool) -> Dict[str, Any]:
    """What the endpoint module plans from the peers of a call: ``build_desired`` for the
    phase, or the final check's desired set (every peer trusted, phase all), every field,
    in an order that does not depend on the peers' (the table lists them by name, the group
    in its own order; the reconcile sorts what it applies)."""
    variables = HOSTVARS[local_host]
    addresses = variables["ipsec_addresses"]
    addresses = [addresses] if isinstance(addresses, str) else addresses
    local = LocalNode(local_host, tuple(str(address) for address in addresses),
                      tuple(variables.get("ipsec_subnets") or ()), BOOT[local_host])
    params = {"peers": peers}
    objects = endpoint.peers_of(params)
    options = PlanOptions(phase=phase)
    if final_check:
        desired = build_desired(local, fully_trusted(objects), [KEY], dataclasses.replace(options, phase=PHASE_ALL))
    else:
        desired = build_desired(local, objects, [KEY], options)
    fields = dataclasses.asdict(desired)
    for field, value in fields.items():
        if isinstance(value, (tuple, frozenset)):
            fields[field] = sorted(value, key=repr)
        elif isinstance(value, dict):
            fields[field] = sorted(value.items())
    if desired.keep_outbound:
        # Every OUT entry is kept (the inbound phase): which peers' are kept says nothing more.
        fields["keep_outbound_addresses"] = "every peer's"
    # And what it does to a node in each state a rollout meets.
    fields["plans"] = [sorted(repr(operation) for operation in reconcile(desired, states, policies).operations)
                       for states, policies in _node_states(local)]
    return fields


@functools.lru_cache(maxsize=None)
def _node_states(local: LocalNode) -> List[Any]:
    """A fresh node, one after the inbound phase, and one holding the end of the rollout."""
    peers = endpoint.peers_of({"peers": mesh_peers(MEMBERS, HOSTVARS, local.name, BOOT, MEMBERS, MEMBERS)})
    inbound = build_desired(local, peers, [KEY], PlanOptions(phase="inbound"))
    final = build_desired(local, peers, [KEY], PlanOptions())
    return [((), ()), (inbound.states, inbound.policies), (final.states, final.policies)]


def _table_call(table: Dict[str, Any], ready: Sequence[str], encrypting: Sequence[str]) -> List[Dict[str, Any]]:
    """The peers a table call gives the module, as the role makes it."""
    return table_peers(parse_peer_table(table["peers"]), untrusted_members(MEMBERS, ready),
                       untrusted_members(MEMBERS, encrypting))


OVERRIDES = [None, {"node3": {"outbound": "keep"}}, {"node5": {"inbound_level": "use", "outbound": "enable"}},
             {"node2": {"subnets": [], "boot_id": "ffffffff-0000-4000-8000-000000000000"}}]
UNMANAGED = [None, [{"name": "far", "addresses": ["192.0.2.7"], "boot_id": "eeeeeeee-0000-4000-8000-000000000000"}],
             [{"name": "far", "addresses": ["192.0.2.7"], "inbound_level": "use", "outbound": "keep"}]]
SUBSETS = [MEMBERS, ["node1", "node2", "node4"], ["node1"], []]


@pytest.mark.parametrize("overrides, unmanaged", list(itertools.product(OVERRIDES, UNMANAGED)))
def test_the_table_plans_what_the_peers_planned_in_every_phase(overrides, unmanaged):
    """For every node, phase and combination of vouched-for hosts (a run over the whole
    group, a --limit, a failed host), the desired set from the table call equals the one
    from the peers the role sent before; the final check's too."""
    boot_ids = {name: boot for name, boot in BOOT.items() if name != "node4"}  # node4 not read this run
    table = peer_table(MEMBERS, HOSTVARS, boot_ids, overrides, unmanaged)
    for local_host, phase, ready, encrypting in itertools.product(MEMBERS, PHASES, SUBSETS, SUBSETS):
        before = mesh_peers(MEMBERS, HOSTVARS, local_host, boot_ids, ready, encrypting, overrides, unmanaged)
        after = _table_call(table, ready, encrypting)
        for final_check in (False, True):
            assert _plan(local_host, after, phase, final_check) == _plan(local_host, before, phase, final_check), (
                local_host, phase, ready, encrypting, final_check)


@pytest.mark.parametrize("play_hosts", SUBSETS[:3])
def test_phase_one_vouching_for_the_play_plans_what_it_did_vouching_for_nobody(play_hosts):
    """main.yml used to pass no ready or encrypting hosts to phase 1 and now passes the
    play's hosts (so that a run over the whole group names none): the inbound phase and its
    final check plan the same either way."""
    table = peer_table(MEMBERS, HOSTVARS, BOOT, OVERRIDES[2], UNMANAGED[1])
    for local_host in play_hosts:
        before = mesh_peers(MEMBERS, HOSTVARS, local_host, BOOT, [], [], OVERRIDES[2], UNMANAGED[1])
        after = _table_call(table, play_hosts, play_hosts)
        for final_check in (False, True):
            assert _plan(local_host, after, "inbound", final_check) == _plan(local_host, before, "inbound", final_check)


def test_a_run_over_the_whole_group_names_nobody():
    table = peer_table(MEMBERS, HOSTVARS, BOOT)
    call = {"fingerprint": table["fingerprint"], "keep_outbound": untrusted_members(MEMBERS, MEMBERS),
            "keep_inbound_level": untrusted_members(MEMBERS, MEMBERS)}
    assert call["keep_outbound"] == [] and call["keep_inbound_level"] == []
    # What a later phase sends: the fingerprint and two empty lists, whatever the size.
    assert len(json.dumps(call)) < 150


@pytest.mark.parametrize("phase", [phase for phase in PHASES if phase != PHASE_ALL])
@pytest.mark.parametrize("ready", SUBSETS[:3])
def test_phases_before_all_name_nobody_in_keep_inbound_level_and_plan_the_same(phase, ready):
    """reconcile.yml passes an empty keep_inbound_level in the phases before "all" (they keep
    every IN level whatever the call says), where it used to name every member outside
    ipsec_encrypting_now, which phase 2 does not set: both plan the same, so phase 2's
    arguments do not grow with the group."""
    table = peer_table(MEMBERS, HOSTVARS, BOOT, OVERRIDES[2], UNMANAGED[2])
    for local_host in MEMBERS:
        before = mesh_peers(MEMBERS, HOSTVARS, local_host, BOOT, ready, [], OVERRIDES[2], UNMANAGED[2])
        after = table_peers(parse_peer_table(table["peers"]), untrusted_members(MEMBERS, ready), [])
        for final_check in (False, True):
            assert _plan(local_host, after, phase, final_check) == _plan(local_host, before, phase, final_check)
