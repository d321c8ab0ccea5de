# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the pure planner: desired set, ownership, reconcile, order, rendering.

No kernel: a small simulated SAD/SPD (``FakeKernel``) applies plans with the kernel's
identity rules (EEXIST on add of a taken identity, ESRCH/ENOENT on delete of a missing one)
so the property tests can check that every plan applies cleanly and converges.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import ipaddress
import json
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, FORM_AUTH_ENC, Key, KeysFile
from ansible_collections.netsec.ipsec.plugins.module_utils._planner import desired as _desired
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.derive import derive_key
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    AUTH_TRUNCATION_BITS, BypassRule, DesiredSet, LocalNode, Peer, PlanOptions, build_desired, derived_mark_id,
    role_of,
    sender_id, wire_spi,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import (
    DEFAULT_REQID, PRIORITY_BAND_HIGH, PRIORITY_BAND_LOW, PRIORITY_BYPASS, PRIORITY_ENCRYPT, PlanError,
    is_owned_policy, is_owned_state,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import (
    Change, ChangeKind, Plan, reconcile,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.report import (
    changed_lines, render_plan, secrets_of,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ACTION_ALLOW, ACTION_BLOCK, AF_INET, AF_INET6, DIR_FWD, DIR_IN, DIR_OUT, IPPROTO_ESP, MODE_TUNNEL,
    POLICY_TYPE_SUB, SA_FLAG_ESN, Algorithm, Mark, Operation, Selector, Template, Verb, XfrmPolicy, XfrmState,
    canonical_policy, canonical_state, selector_between,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import decoded_policy, decoded_state

BOOT_A = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa"
BOOT_B = "0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb"
BOOT_C = "0c0c0c0c-3333-4333-8333-cccccccccccc"
BOOT_A2 = "0a0a0a0a-1111-4111-8111-a2a2a2a2a2a2"
GCM = "rfc4106(gcm(aes))"


def aead_key(spi: int, material: Optional[bytes] = None) -> Key:
    return Key(spi=spi, form=FORM_AEAD, aead_name=GCM,
               aead_key=material if material is not None else bytes(range(spi, spi + 20)),
               icv_bits=128)


def auth_enc_key(spi: int, auth: str = "hmac(sha256)") -> Key:
    return Key(spi=spi, form=FORM_AUTH_ENC, auth_name=auth, auth_key=bytes(range(32, 64)),
               enc_name="cbc(aes)", enc_key=bytes(range(100, 116)))


KEY1 = aead_key(1)
KEY2 = aead_key(2)
KEY3 = aead_key(3)

A4, B4, C4 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
A6, B6, C6 = "fd00::1", "fd00::2", "fd00::3"


def node_a(**kw) -> LocalNode:
    fields = dict(name="a", addresses=[A4], boot_id=BOOT_A)
    fields.update(kw)
    return LocalNode(**fields)


def peer_b(**kw) -> Peer:
    fields = dict(name="b", addresses=[B4], boot_id=BOOT_B)
    fields.update(kw)
    return Peer(**fields)


def peer_c(**kw) -> Peer:
    fields = dict(name="c", addresses=[C4], boot_id=BOOT_C)
    fields.update(kw)
    return Peer(**fields)


def as_local(peer: Peer) -> LocalNode:
    return LocalNode(name=peer.name, addresses=list(peer.addresses), subnets=list(peer.subnets),
                     boot_id=peer.boot_id)


def as_peer(local: LocalNode, **kw) -> Peer:
    return Peer(name=local.name, addresses=list(local.addresses), subnets=list(local.subnets),
                boot_id=local.boot_id, **kw)


def states_of(desired, src=None, dst=None, spi=None) -> List[XfrmState]:
    return [s for s in desired.states if (src is None or s.src == src) and (dst is None or s.dst == dst)
            and (spi is None or s.spi == spi)]


def policies_of(desired, direction=None, templated=None) -> List[XfrmPolicy]:
    return [p for p in desired.policies if (direction is None or p.dir == direction)
            and (templated is None or bool(p.templates) == templated)]


def zero_selector(family: int) -> Selector:
    anywhere = "0.0.0.0" if family == AF_INET else "::"
    return Selector(family, anywhere, 0, anywhere, 0)


# ======================================================================================
# Desired set: shapes and counts


def test_two_nodes_ipv4_exact_objects():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    out_spi = wire_spi(1, A4)
    in_spi = wire_spi(1, B4)
    expected_out = XfrmState(
        src=A4, dst=B4, spi=out_spi, reqid=DEFAULT_REQID, proto=IPPROTO_ESP, mode=MODE_TUNNEL,
        replay_window=1024, esn=True, selector=zero_selector(AF_INET),
        aead=Algorithm("aead", GCM, derive_key(KEY1.aead_key, A4, B4, BOOT_A, BOOT_B), 128))
    expected_in = XfrmState(
        src=B4, dst=A4, spi=in_spi, reqid=DEFAULT_REQID, proto=IPPROTO_ESP, mode=MODE_TUNNEL,
        replay_window=1024, esn=True, selector=zero_selector(AF_INET),
        aead=Algorithm("aead", GCM, derive_key(KEY1.aead_key, B4, A4, BOOT_B, BOOT_A), 128))
    assert set(desired.states) == {expected_out, expected_in}
    expected_out_policy = XfrmPolicy(
        selector=selector_between("0.0.0.0/0", "10.0.0.2/32"), dir=DIR_OUT, action=ACTION_ALLOW,
        priority=PRIORITY_ENCRYPT,
        templates=(Template(src=A4, dst=B4, reqid=DEFAULT_REQID, spi=out_spi, mode=MODE_TUNNEL,
                            optional=False),))
    expected_in_policy = XfrmPolicy(
        selector=selector_between("10.0.0.2/32", "0.0.0.0/0"), dir=DIR_IN, action=ACTION_ALLOW,
        priority=PRIORITY_ENCRYPT,
        templates=(Template(src=B4, dst=A4, reqid=DEFAULT_REQID, spi=0, mode=MODE_TUNNEL,
                            optional=False),))
    assert expected_out_policy in desired.policies
    assert expected_in_policy in desired.policies
    bypass = policies_of(desired, templated=False)  # this node's SSH server: in to port 22, out from it
    assert {(p.dir, p.selector.proto, p.selector.sport, p.selector.dport) for p in bypass} == {
        (DIR_IN, 6, 0, 22), (DIR_OUT, 6, 22, 0)}
    assert len(desired.policies) == 4
    assert desired.warnings == () and desired.frozen_peers == ()


def test_three_nodes_ipv4_counts():
    desired = build_desired(node_a(), [peer_b(), peer_c()], [KEY1])
    assert len(desired.states) == 4
    assert len(policies_of(desired, DIR_OUT, True)) == 2
    assert len(policies_of(desired, DIR_IN, True)) == 2
    assert len(policies_of(desired, DIR_FWD)) == 0
    assert len(desired.policies) == 6


def test_ipv6_only():
    local = LocalNode("a", [A6], boot_id=BOOT_A)
    desired = build_desired(local, [Peer("b", [B6], boot_id=BOOT_B)], [KEY1])
    assert {s.family for s in desired.states} == {AF_INET6}
    assert all(s.selector == zero_selector(AF_INET6) for s in desired.states)
    out_policy, = policies_of(desired, DIR_OUT, True)
    assert out_policy.selector == selector_between("::/0", "fd00::2/128")
    assert {p.selector.family for p in desired.policies} == {AF_INET6}
    assert len(desired.policies) == 8  # OUT, IN, SSH server bypass x 2, neighbour discovery x 4


def test_dual_stack_pairs_each_family_ipv4_first():
    local = node_a(addresses=[A6, A4])
    desired = build_desired(local, [peer_b(addresses=[B6, B4])], [KEY1])
    assert len(desired.states) == 4
    assert len(policies_of(desired, templated=False)) == 2 * 2 + 4  # bypass x 2 families, IPv6 neighbour discovery
    assert len(policies_of(desired, DIR_OUT, True)) == 2
    assert len(policies_of(desired, DIR_IN, True)) == 2
    # The reconciler orders IPv4 before IPv6 for the same peer.
    ops = reconcile(desired, [], []).operations
    in_sa_adds = [op.entry for op in ops if isinstance(op.entry, XfrmState) and op.entry.dst in (A4, A6)]
    assert [s.family for s in in_sa_adds] == [AF_INET, AF_INET6]


def test_mixed_families_pair_only_common_family():
    local = node_a(addresses=[A4, A6])
    desired = build_desired(local, [peer_b(addresses=[B4])], [KEY1])
    assert {s.family for s in desired.states} == {AF_INET}
    # Bypass exists for every family the local node has.
    assert {p.selector.family for p in policies_of(desired, templated=False)} == {AF_INET, AF_INET6}


def test_subnets_give_one_policy_each_of_matching_family():
    peer = peer_b(addresses=[B4, B6], subnets=["10.2.0.0/16", "10.3.0.7/24", "fd02::/64"])
    desired = build_desired(node_a(addresses=[A4]), [peer], [KEY1])
    outs = policies_of(desired, DIR_OUT, True)
    # The peer's tunnel address is protected whatever its subnets say; its IPv6 ones are not
    # paired with this IPv4-only node.
    assert sorted(p.selector.dst for p in outs) == ["10.0.0.2/32", "10.2.0.0/16", "10.3.0.0/24"]


def test_both_ends_agree():
    a, b, c = node_a(), peer_b(), peer_c()
    keys = [KEY1, KEY2]
    on_a = build_desired(a, [b, c], keys)
    on_b = build_desired(as_local(b), [as_peer(a), c], keys)
    for key in keys:
        a_out = states_of(on_a, A4, B4, wire_spi(key.spi, A4))
        b_in = states_of(on_b, A4, B4, wire_spi(key.spi, A4))
        assert len(a_out) == 1 and a_out == b_in
        b_out = states_of(on_b, B4, A4, wire_spi(key.spi, B4))
        a_in = states_of(on_a, B4, A4, wire_spi(key.spi, B4))
        assert len(b_out) == 1 and b_out == a_in
    # The two directions use different keys.
    assert states_of(on_a, A4, B4)[0].aead.key != states_of(on_a, B4, A4)[0].aead.key


@pytest.mark.parametrize("marks", ["none", "cilium"])
def test_both_ends_agree_ipv6_and_marks(marks):
    a = LocalNode("a", [A6, A4], boot_id=BOOT_A)
    b = Peer("b", [B6], boot_id=BOOT_B, mark_id=9)
    on_a = build_desired(a, [b], [KEY1], PlanOptions(marks=marks))
    on_b = build_desired(as_local(b), [as_peer(a, mark_id=4)], [KEY1], PlanOptions(marks=marks))

    def strip(state: XfrmState) -> XfrmState:
        return state._replace(mark=None, output_mark=None)

    assert [strip(s) for s in states_of(on_a, A6, B6)] == [strip(s) for s in states_of(on_b, A6, B6)]
    assert [strip(s) for s in states_of(on_a, B6, A6)] == [strip(s) for s in states_of(on_b, B6, A6)]
    assert len(on_a.states) == 2


def test_both_ends_agree_auth_enc():
    keys = [auth_enc_key(4)]
    on_a = build_desired(node_a(), [peer_b()], keys)
    on_b = build_desired(as_local(peer_b()), [as_peer(node_a())], keys)
    assert states_of(on_a, A4, B4) == states_of(on_b, A4, B4)
    out, = states_of(on_a, A4, B4)
    assert out.aead is None
    assert out.auth == Algorithm("auth", "hmac(sha256)",
                                 derive_key(keys[0].auth_key, A4, B4, BOOT_A, BOOT_B), 128)
    assert out.crypt == Algorithm("crypt", "cbc(aes)",
                                  derive_key(keys[0].enc_key, A4, B4, BOOT_A, BOOT_B), 0)


@pytest.mark.parametrize("auth,bits", sorted(AUTH_TRUNCATION_BITS.items()))
def test_auth_truncation_table(auth, bits):
    key = Key(spi=1, form=FORM_AUTH_ENC, auth_name=auth,
              auth_key=b"" if auth == "digest_null" else b"\x01" * 16,
              enc_name="cbc(aes)", enc_key=b"\x02" * 16)
    desired = build_desired(node_a(), [peer_b()], [key])
    assert {s.auth.bits for s in desired.states} == {bits}


def test_auth_truncation_known_values():
    assert AUTH_TRUNCATION_BITS["hmac(sha256)"] == 128
    assert AUTH_TRUNCATION_BITS["hmac(sha1)"] == 96
    assert AUTH_TRUNCATION_BITS["hmac(sha384)"] == 192
    assert AUTH_TRUNCATION_BITS["hmac(sha512)"] == 256
    assert AUTH_TRUNCATION_BITS["hmac(md5)"] == 96
    assert AUTH_TRUNCATION_BITS["digest_null"] == 0


def test_per_pair_keys_off_uses_master_key_and_needs_no_boot_ids():
    options = PlanOptions(per_pair_keys=False)
    desired = build_desired(node_a(boot_id=None), [peer_b(boot_id=None)], [KEY1], options)
    assert len(desired.states) == 2
    assert {s.aead.key for s in desired.states} == {KEY1.aead_key}
    assert desired.frozen_peers == ()


def test_per_pair_keys_differ_from_master():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    assert all(s.aead.key != KEY1.aead_key and len(s.aead.key) == 20 for s in desired.states)


def test_sas_for_every_key_and_template_pins_current_key():
    desired = build_desired(node_a(), [peer_b()], [KEY1, KEY2])
    assert sorted(s.spi >> 28 for s in states_of(desired, A4, B4)) == [1, 2]
    assert sorted(s.spi >> 28 for s in states_of(desired, B4, A4)) == [1, 2]
    out_policy, = policies_of(desired, DIR_OUT, True)
    assert out_policy.templates[0].spi == wire_spi(2, A4)
    in_policy, = policies_of(desired, DIR_IN, True)
    assert in_policy.templates[0].spi == 0  # inbound accepts any of the peer's keys


def test_out_spi_pins_template():
    desired = build_desired(node_a(), [peer_b()], [KEY1, KEY2], PlanOptions(out_spi=1))
    out_policy, = policies_of(desired, DIR_OUT, True)
    assert out_policy.templates[0].spi == wire_spi(1, A4)
    assert len(states_of(desired, A4, B4)) == 2


def test_out_spi_must_be_a_key():
    with pytest.raises(PlanError, match="out_spi 5"):
        build_desired(node_a(), [peer_b()], [KEY1, KEY2], PlanOptions(out_spi=5))


def test_outbound_off_builds_only_the_in_side():
    desired = build_desired(node_a(), [peer_b()], [KEY1], PlanOptions(outbound=False))
    assert states_of(desired, src=A4) == []
    assert len(states_of(desired, dst=A4)) == 1
    assert policies_of(desired, DIR_OUT, True) == []
    assert len(policies_of(desired, DIR_IN, True)) == 1
    assert len(policies_of(desired, templated=False)) == 2
    assert desired.keep_outbound


@pytest.mark.parametrize("option,override,optional", [
    ("required", None, False), ("use", None, True),
    ("required", "use", True), ("use", "required", False),
])
def test_inbound_level(option, override, optional):
    local = node_a(subnets=["10.1.0.0/24"])
    desired = build_desired(local, [peer_b(inbound_level=override)], [KEY1],
                            PlanOptions(inbound_level=option))
    inbound = policies_of(desired, DIR_IN, True) + policies_of(desired, DIR_FWD, True)
    assert len(inbound) == 2
    assert {p.templates[0].optional for p in inbound} == {optional}
    # OUT templates are never optional (the kernel refuses "level use" on OUT tunnels).
    assert not policies_of(desired, DIR_OUT, True)[0].templates[0].optional


def test_inbound_level_override_is_per_peer():
    desired = build_desired(node_a(), [peer_b(inbound_level="use"), peer_c()], [KEY1])
    levels = {p.templates[0].src: p.templates[0].optional for p in policies_of(desired, DIR_IN, True)}
    assert levels == {B4: True, C4: False}


@pytest.mark.parametrize("subnets,fwd", [
    ([], False), (["10.0.0.1/32"], False), (["10.0.0.1"], False), (["10.1.0.0/24"], True),
    (["10.0.0.1/32", "10.9.0.0/16"], True), (["10.0.0.0/24"], True),
])
def test_fwd_only_when_local_subnets_are_routed(subnets, fwd):
    desired = build_desired(node_a(subnets=subnets), [peer_b(subnets=["10.2.0.0/16", "10.3.0.0/16"])], [KEY1])
    forwards = policies_of(desired, DIR_FWD)
    if not fwd:
        assert forwards == []
        return
    assert sorted(p.selector.src for p in forwards) == ["10.0.0.2/32", "10.2.0.0/16", "10.3.0.0/16"]
    ins = {p.selector: p.templates for p in policies_of(desired, DIR_IN, True)}
    assert all(ins[p.selector] == p.templates for p in forwards)
    assert all(p.selector.dst == "0.0.0.0/0" for p in forwards)


def test_bypass_shapes_and_priorities():
    desired = build_desired(node_a(addresses=[A4, A6]), [peer_b()], [KEY1],
                            PlanOptions(bypass=[("tcp", 22), {"proto": "udp", "port": 53, "side": "client"}]))
    bypass = [p for p in policies_of(desired, templated=False) if p.selector.proto != 58]
    assert len(bypass) == 2 * 2 * 2
    assert all(p.priority == PRIORITY_BYPASS and p.action == ACTION_ALLOW and p.mark is None
               for p in bypass)
    assert PRIORITY_BYPASS < PRIORITY_ENCRYPT
    assert PRIORITY_BAND_LOW <= PRIORITY_BYPASS <= PRIORITY_BAND_HIGH
    assert PRIORITY_BAND_LOW <= PRIORITY_ENCRYPT <= PRIORITY_BAND_HIGH
    shapes = {(p.selector.family, p.dir, p.selector.proto, p.selector.sport, p.selector.dport)
              for p in bypass}
    for family in (AF_INET, AF_INET6):
        # A server rule: in to the port, out from it; a client rule: out to the port, in from it.
        assert {(family, DIR_IN, 6, 0, 22), (family, DIR_OUT, 6, 22, 0)} <= shapes
        assert {(family, DIR_OUT, 17, 0, 53), (family, DIR_IN, 17, 53, 0)} <= shapes
    # Never a plaintext hole from port 22 into this node, or to port 22 out of it.
    assert not {(family, DIR_IN, 6, 22, 0) for family in (AF_INET, AF_INET6)} & shapes
    assert not {(family, DIR_OUT, 6, 0, 22) for family in (AF_INET, AF_INET6)} & shapes
    sample = next(p for p in bypass if p.selector.sport == 22 and p.selector.family == AF_INET)
    assert sample.selector.sport_mask == 0xFFFF and sample.selector.dport_mask == 0
    assert sample.selector.src == "0.0.0.0/0" and sample.selector.dst == "0.0.0.0/0"
    # Every templated policy is less preferred than every bypass.
    assert all(p.priority > PRIORITY_BYPASS for p in policies_of(desired, templated=True))


def test_bypass_scoped_to_networks_of_each_family():
    rule = {"proto": "tcp", "port": 22, "networks": ["192.0.2.0/24", "2001:db8:1::/48", "198.51.100.7/24"]}
    desired = build_desired(node_a(addresses=[A4, A6]), [peer_b()], [KEY1], PlanOptions(bypass=[rule]))
    bypass = [p for p in policies_of(desired, templated=False) if p.selector.proto == 6]
    assert sorted((p.dir, p.selector.src, p.selector.dst) for p in bypass) == sorted([
        (DIR_IN, "192.0.2.0/24", "0.0.0.0/0"), (DIR_OUT, "0.0.0.0/0", "192.0.2.0/24"),
        (DIR_IN, "198.51.100.0/24", "0.0.0.0/0"), (DIR_OUT, "0.0.0.0/0", "198.51.100.0/24"),
        (DIR_IN, "2001:db8:1::/48", "::/0"), (DIR_OUT, "::/0", "2001:db8:1::/48")])
    # A rule whose networks are all of the other family installs nothing in this one.
    v4_only = build_desired(node_a(), [peer_b()], [KEY1],
                            PlanOptions(bypass=[{"proto": "tcp", "port": 22, "networks": ["2001:db8::/32"]}]))
    assert policies_of(v4_only, templated=False) == []


@pytest.mark.parametrize("rule, message", [
    ({"proto": "icmp", "port": 22}, "bypass[0]: protocol icmp: use one of tcp, udp, sctp"),
    ({"proto": "tcp", "port": 0}, "bypass[0]: port 0 must be 1-65535"),
    ({"proto": "tcp", "port": 22, "side": "both"}, "bypass[0]: side both must be one of server, client"),
    ({"proto": "tcp", "port": 22, "networks": ["10.0.0.0/33"]}, "bypass[0]: networks has 10.0.0.0/33"),
    ({"proto": "tcp", "port": 22, "networks": "10.0.0.0/8"}, "bypass[0]: networks must be a list"),
    ({"proto": "tcp", "port": 22, "ports": 23}, "bypass[0]: unknown fields ports"),
])
def test_bad_bypass_rules_are_named(rule, message):
    with pytest.raises(PlanError, match=message.replace("[", r"\[").replace("]", r"\]")):
        PlanOptions(bypass=[rule])


def test_bypass_empty_and_duplicates():
    assert policies_of(build_desired(node_a(), [peer_b()], [KEY1], PlanOptions(bypass=[])),
                       templated=False) == []
    options = PlanOptions(bypass=[("tcp", 22), ("TCP", 22), (6, 22), {"proto": "tcp", "port": 22},
                                  {"proto": "tcp", "port": 22, "side": "server", "networks": []}])
    assert options.bypass == (BypassRule(6, 22, "server", ()),)


@pytest.mark.parametrize("entry", [("icmp", 22), ("tcp", 0), ("tcp", 70000), ("tcp", "22"), "tcp/22",
                                   (99, 22), (True, 22)])
def test_bypass_invalid(entry):
    with pytest.raises(PlanError):
        PlanOptions(bypass=[entry])


@pytest.mark.parametrize("kw,pattern", [
    (dict(reqid=0), "reqid"), (dict(reqid=1 << 32), "reqid"), (dict(inbound_level="x"), "inbound_level"),
    (dict(marks="bpf"), "marks"), (dict(state="gone"), "state"),
])
def test_invalid_options(kw, pattern):
    with pytest.raises(PlanError, match=pattern):
        PlanOptions(**kw)


def test_skip_self_by_name_and_refuse_another_name_with_a_local_address():
    desired = build_desired(node_a(), [as_peer(node_a()), peer_b()], [KEY1])
    assert {s.src for s in desired.states} | {s.dst for s in desired.states} == {A4, B4}
    assert desired.warnings == ()
    # A clone of the local node that kept its address (or an inventory mistake) is named, not
    # silently dropped with the real peer's entries purged.
    with pytest.raises(PlanError, match=r"peer alias has 10\.0\.0\.1, a tunnel address of the local node a"):
        build_desired(node_a(), [Peer("alias", [A4], boot_id=BOOT_B), peer_b()], [KEY1])
    with pytest.raises(PlanError, match="peer b has fd00::1, a tunnel address of the local node a"):
        build_desired(node_a(addresses=[A4, A6]), [peer_b(addresses=[B4, A6])], [KEY1])


def test_peer_without_boot_id_is_frozen():
    desired = build_desired(node_a(), [peer_b(boot_id=None), peer_c(boot_id="")], [KEY1])
    assert desired.states == ()
    assert policies_of(desired, templated=True) == []
    assert desired.frozen_peers == ("b", "c")
    assert desired.frozen_peer_addresses == frozenset({B4, C4})
    assert len(desired.warnings) == 2 and "peer b" in desired.warnings[0]


def test_local_boot_id_required_with_per_pair_keys():
    with pytest.raises(PlanError, match="local node a has no boot id"):
        build_desired(node_a(boot_id=None), [peer_b()], [KEY1])


def test_bad_boot_id_names_peer():
    with pytest.raises(PlanError, match="peer b"):
        build_desired(node_a(), [peer_b(boot_id="not-a-uuid")], [KEY1])


def test_input_validation():
    with pytest.raises(PlanError, match="unique"):
        build_desired(node_a(), [peer_b(), peer_b()], [KEY1])
    with pytest.raises(PlanError, match="same tunnel address"):
        build_desired(node_a(), [peer_b(), Peer("b2", [B4], boot_id=BOOT_C)], [KEY1])
    with pytest.raises(PlanError, match="same kernel identity"):
        build_desired(node_a(), [peer_b(subnets=["10.9.0.0/16"]), peer_c(subnets=["10.9.0.0/16"])], [KEY1])
    with pytest.raises(PlanError, match="two IPv4"):
        Peer("x", ["10.0.0.5", "10.0.0.6"])
    with pytest.raises(PlanError, match="not an IP address"):
        Peer("x", ["host.example"])
    with pytest.raises(PlanError, match="no tunnel address"):
        LocalNode("x", [])
    with pytest.raises(PlanError, match="key id 1"):
        build_desired(node_a(), [peer_b()], [KEY1, KEY2, aead_key(1)])
    with pytest.raises(PlanError, match="no keys"):
        build_desired(node_a(), [peer_b()], [])


def test_keysfile_accepted_and_addresses_canonicalised():
    desired = build_desired(node_a(addresses=["fd00:0:0::1"]), [Peer("b", ["FD00::2"], boot_id=BOOT_B)],
                            KeysFile(keys=(KEY1,)))
    assert {s.src for s in desired.states} == {"fd00::1", "fd00::2"}


def test_subnet_host_bits_cleared():
    peer = peer_b(subnets=["10.2.3.4/16"])
    assert peer.subnets == ("10.0.0.2/32", "10.2.0.0/16")


def test_state_absent_desires_nothing():
    desired = build_desired(node_a(), [peer_b(boot_id=None)], [], PlanOptions(state="absent"))
    assert desired.states == () and desired.policies == () and desired.frozen_peer_addresses == frozenset()


# ======================================================================================
# Wire SPIs and marks


def test_wire_spi_layout():
    for key_id in (1, 7, 15):
        for address in (A4, B6):
            spi = wire_spi(key_id, address)
            assert spi >> 28 == key_id
            assert spi & 0x0FFFFFFF == sender_id(address)
            assert spi > 255  # never in the reserved range
    digest = hashlib.sha256(_desired.WIRE_SPI_DOMAIN + ipaddress.ip_address(A4).packed).digest()
    assert sender_id(A4) == int.from_bytes(digest[:4], "big") >> 4
    with pytest.raises(PlanError):
        wire_spi(0, A4)
    with pytest.raises(PlanError):
        wire_spi(16, A4)


def test_wire_spis_of_peers_differ_at_the_receiver():
    desired = build_desired(node_a(), [peer_b(), peer_c()], [KEY1])
    inbound = states_of(desired, dst=A4)
    assert len({s.spi for s in inbound}) == 2


def _colliding_ipv4_pair() -> Tuple[str, str]:
    seen: Dict[int, str] = {}
    base = int(ipaddress.ip_address("10.0.0.0"))
    for offset in range(1, 1 << 20):
        address = str(ipaddress.ip_address(base + offset))
        ident = sender_id(address)
        if ident in seen:
            return seen[ident], address
        seen[ident] = address
    raise AssertionError("no collision found")


COLLIDING = _colliding_ipv4_pair()


def test_sender_id_collision_between_peers_raises():
    first, second = COLLIDING
    assert sender_id(first) == sender_id(second)
    with pytest.raises(PlanError, match=r"wire SPI collision: p1 \(%s\) and p2 \(%s\)"
                       % (re.escape(first), re.escape(second))):
        build_desired(LocalNode("l", ["192.0.2.1"], boot_id=BOOT_A),
                      [Peer("p1", [first], boot_id=BOOT_B), Peer("p2", [second], boot_id=BOOT_C)], [KEY1])


def test_sender_id_collision_with_local_node_raises_and_marks_mode_does_not_care():
    first, second = COLLIDING
    with pytest.raises(PlanError, match="local|l \\("):
        build_desired(LocalNode("l", [first], boot_id=BOOT_A), [Peer("p2", [second], boot_id=BOOT_C)], [KEY1])
    desired = build_desired(LocalNode("l", [first], boot_id=BOOT_A), [Peer("p2", [second], boot_id=BOOT_C)],
                            [KEY1], PlanOptions(marks="cilium"))
    assert len(desired.states) == 2


def test_sender_ids_checked_per_family(monkeypatch):
    monkeypatch.setattr(_desired, "sender_id", lambda address: 7)
    # One IPv4 and one IPv6 node with "the same" id never meet at a receiver.
    build_desired(LocalNode("l", ["192.0.2.1", "fd00::9"], boot_id=BOOT_A),
                  [Peer("p1", ["fd00::1"], boot_id=BOOT_B), Peer("p2", ["192.0.2.2", "fd00::2"], boot_id=BOOT_C)],
                  [KEY1], PlanOptions(marks="cilium"))
    with pytest.raises(PlanError, match="collision"):
        build_desired(LocalNode("l", ["192.0.2.1"], boot_id=BOOT_A),
                      [Peer("p1", ["192.0.2.2"], boot_id=BOOT_B)], [KEY1])


def test_cilium_marks_worked_example():
    options = PlanOptions(marks="cilium")
    desired = build_desired(node_a(), [peer_b(mark_id=1)], [aead_key(3)], options)
    out_sa, = states_of(desired, A4, B4)
    in_sa, = states_of(desired, B4, A4)
    assert out_sa.spi == 3 and in_sa.spi == 3
    assert out_sa.mark == Mark(0x00013E00, 0xFFFFFF00)
    assert in_sa.mark == Mark(0x00010D00, 0xFFFF0F00)
    assert out_sa.output_mark == Mark(0xE00, 0xFFFFFF00)
    assert in_sa.output_mark == Mark(0xD00, 0xFFFFFF00)
    out_policy, = policies_of(desired, DIR_OUT, True)
    assert out_policy.mark == Mark(0x00013E00, 0xFFFFFF00)
    assert out_policy.templates[0].spi == 3
    assert policies_of(desired, DIR_IN, True)[0].mark is None
    assert all(p.mark is None for p in policies_of(desired, templated=False))


def test_cilium_marks_out_policy_per_key():
    desired = build_desired(node_a(), [peer_b(mark_id=1)], [KEY1, KEY2], PlanOptions(marks="cilium"))
    outs = policies_of(desired, DIR_OUT, True)
    assert sorted((p.mark.value, p.templates[0].spi) for p in outs) == [(0x11E00, 1), (0x12E00, 2)]
    # IN SAs of two keys differ by SPI; of two peers by the peer id in the mark.
    desired = build_desired(node_a(), [peer_b(mark_id=1), peer_c(mark_id=2)], [KEY1], PlanOptions(marks="cilium"))
    assert sorted(s.mark.value for s in states_of(desired, dst=A4)) == [0x10D00, 0x20D00]


def test_mark_ids_derived_stable_and_collisions_refused():
    assert derived_mark_id("b") == derived_mark_id("b")
    assert all(1 <= derived_mark_id("node-%d" % i) <= 0xFFFF for i in range(2000))
    desired = build_desired(node_a(), [peer_b()], [KEY1], PlanOptions(marks="cilium"))
    out_sa, = states_of(desired, A4, B4)
    assert out_sa.mark.value >> 16 == derived_mark_id("b")
    with pytest.raises(PlanError, match="mark id collision: peers b and c"):
        build_desired(node_a(), [peer_b(mark_id=5), peer_c(mark_id=5)], [KEY1], PlanOptions(marks="cilium"))
    with pytest.raises(PlanError, match="mark_id"):
        peer_b(mark_id=0)


# ======================================================================================
# Ownership


def foreign_sa(src=A4, dst=B4, spi=0xC0FFEE, reqid=1, mark=None) -> XfrmState:
    return XfrmState(src=src, dst=dst, spi=spi, reqid=reqid, selector=zero_selector(AF_INET),
                     aead=Algorithm("aead", GCM, os.urandom(20), 128), mark=mark)


def strongswan_like() -> Tuple[List[XfrmState], List[XfrmPolicy]]:
    states = [foreign_sa(A4, "192.0.2.9", 0xC1000001, 1), foreign_sa("192.0.2.9", A4, 0xC1000002, 1),
              foreign_sa(A4, "192.0.2.10", 0xC1000003, 2)]
    tmpl_out = Template(src=A4, dst="192.0.2.9", reqid=1)
    tmpl_in = Template(src="192.0.2.9", dst=A4, reqid=1)
    policies = [
        XfrmPolicy(selector_between("10.0.0.1/32", "192.0.2.9/32"), DIR_OUT, priority=375423, templates=(tmpl_out,)),
        XfrmPolicy(selector_between("192.0.2.9/32", "10.0.0.1/32"), DIR_IN, priority=375423, templates=(tmpl_in,)),
        XfrmPolicy(selector_between("192.0.2.9/32", "10.0.0.1/32"), DIR_FWD, priority=375423, templates=(tmpl_in,)),
        # per-socket bypass policies of the IKE daemon (dir 3..5), template-less, priority 0
        XfrmPolicy(selector_between("0.0.0.0/0", "0.0.0.0/0"), 3),
        XfrmPolicy(selector_between("0.0.0.0/0", "0.0.0.0/0"), 4),
        XfrmPolicy(selector_between("::/0", "::/0"), 5, priority=PRIORITY_BYPASS),
    ]
    return states, policies


def cilium_like() -> Tuple[List[XfrmState], List[XfrmPolicy]]:
    states = [foreign_sa(A4, "10.182.0.1", 3, 1, Mark(0x13E00, 0xFFFFFF00)),
              foreign_sa("10.182.0.1", A4, 3, 1, Mark(0x10D00, 0xFFFF0F00))]
    policies = [
        XfrmPolicy(selector_between("0.0.0.0/0", "0.0.0.0/0"), DIR_OUT, ACTION_BLOCK, 100, mark=Mark(0xE00, 0xF00)),
        XfrmPolicy(selector_between("0.0.0.0/0", "0.0.0.0/0"), DIR_FWD, priority=2975,
                   templates=(Template("0.0.0.0", "0.0.0.0", reqid=0, optional=True),)),
        XfrmPolicy(selector_between("0.0.0.0/0", "10.182.0.0/16"), DIR_OUT, priority=0,
                   mark=Mark(0x13E00, 0xFFFFFF00), templates=(Template(A4, "10.182.0.1", reqid=1, spi=3),)),
    ]
    return states, policies


def test_ownership_predicates():
    ours = build_desired(node_a(), [peer_b()], [KEY1])
    assert all(is_owned_state(s) for s in ours.states)
    assert all(is_owned_policy(p) for p in ours.policies)
    for states, policies in (strongswan_like(), cilium_like()):
        assert not any(is_owned_state(s) for s in states)
        assert not any(is_owned_policy(p) for p in policies)
    bypass = policies_of(ours, templated=False)[0]
    assert not is_owned_policy(bypass._replace(priority=PRIORITY_BAND_HIGH + 1))
    assert not is_owned_policy(bypass._replace(priority=PRIORITY_BAND_LOW - 1))
    assert is_owned_policy(bypass._replace(priority=PRIORITY_BAND_HIGH))
    for direction in (3, 4, 5):
        assert not is_owned_policy(bypass._replace(dir=direction))
        assert not is_owned_policy(policies_of(ours, DIR_IN, True)[0]._replace(dir=direction))
    assert not is_owned_policy(bypass._replace(ptype=POLICY_TYPE_SUB))
    # A templated policy is owned by reqid, whatever its priority.
    out = policies_of(ours, DIR_OUT, True)[0]
    assert is_owned_policy(out._replace(priority=5))
    assert not is_owned_policy(
        out._replace(templates=(out.templates[0]._replace(reqid=1),)))
    # Another reqid makes a different owner.
    assert not is_owned_state(ours.states[0], reqid=7)


@pytest.mark.parametrize("foreign", [strongswan_like, cilium_like])
def test_foreign_entries_never_touched(foreign):
    states, policies = foreign()
    for options in (PlanOptions(), PlanOptions(state="absent")):
        result = reconcile(build_desired(node_a(), [peer_b(), peer_c()], [KEY1], options), states, policies)
        touched = [op.entry for op in result.operations]
        assert not any(obj in states or obj in policies for obj in touched)
        assert not any(is_owned_state(o) is False for o in touched if isinstance(o, XfrmState))
        assert result.foreign_states == len(states) and result.foreign_policies == len(policies)
        assert all(render(obj) not in render_plan(result)["before"] for obj in states + policies)


def test_foreign_policy_at_same_identity_is_an_error():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    ours = policies_of(desired, DIR_OUT, True)[0]
    theirs = ours._replace(priority=375423, templates=(ours.templates[0]._replace(reqid=1, spi=0),))
    with pytest.raises(PlanError) as error:
        reconcile(desired, [], [theirs])
    message = str(error.value)
    assert "does not own" in message and "0.0.0.0/0 -> 10.0.0.2/32" in message and "priority 375423" in message


def test_foreign_bypass_lookalike_outside_band_is_an_error():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    bypass = policies_of(desired, templated=False)[0]
    with pytest.raises(PlanError, match="does not own"):
        reconcile(desired, [], [bypass._replace(priority=0)])


def test_foreign_sa_at_same_identity_is_an_error_and_masked():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    ours = states_of(desired, A4, B4)[0]
    theirs = ours._replace(reqid=1, aead=Algorithm("aead", GCM, b"\xaa" * 20, 128))
    with pytest.raises(PlanError) as error:
        reconcile(desired, [theirs], [])
    message = str(error.value)
    assert "does not own" in message
    assert ("aa" * 20) not in message.lower() and ours.aead.key.hex() not in message


def test_foreign_sa_colliding_through_mark_lookup_is_an_error():
    # Cilium-era unmarked SA with SPI 3 to our address: matches any mark on lookup.
    options = PlanOptions(marks="cilium")
    desired = build_desired(node_a(), [peer_b(mark_id=1)], [aead_key(3)], options)
    theirs = foreign_sa(B4, A4, 3, reqid=1)
    with pytest.raises(PlanError, match="does not own"):
        reconcile(desired, [theirs], [])
    # With a mark that does not match ours, it is no obstacle.
    unrelated = foreign_sa(B4, A4, 3, reqid=1, mark=Mark(0x20D00, 0xFFFF0F00))
    assert len(reconcile(desired, [unrelated], []).operations) == len(desired.states) + len(desired.policies)


# ======================================================================================
# Reconcile


def verbs(result: Plan) -> List[str]:
    return [op.verb.value for op in result.operations]


def test_fresh_install_adds_everything():
    desired = build_desired(node_a(), [peer_b(), peer_c()], [KEY1])
    result = reconcile(desired, [], [])
    assert set(verbs(result)) == {"add"}
    assert len(result.operations) == len(desired.states) + len(desired.policies)
    assert result.counts() == {"sas": dict(added=4, updated=0, removed=0, unchanged=0, kept=0),
                               "policies": dict(added=6, updated=0, removed=0, unchanged=0, kept=0)}
    assert result.changed


def test_idempotent():
    desired = build_desired(node_a(subnets=["10.1.0.0/24"]), [peer_b(), peer_c()], [KEY1, KEY2])
    result = reconcile(desired, desired.states, desired.policies)
    assert result.operations == () and not result.changed
    assert len(result.unchanged) == len(desired.states) + len(desired.policies)
    assert render_plan(result)["before"] == render_plan(result)["after"]


def kernel_form(obj):
    """What a dump returns for an entry we installed: counters, the family of the SA's
    all-zero selector and the policy index filled in, attributes the model does not hold."""
    if isinstance(obj, XfrmState):
        return decoded_state(obj._replace(selector=None), counters=(99, 3, 1700000000, 5))
    return decoded_policy(obj, index=0x1000 | obj.dir)


def test_idempotent_against_kernel_filled_fields():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    result = reconcile(desired, [kernel_form(s) for s in desired.states],
                       [kernel_form(p) for p in desired.policies])
    assert result.operations == ()


def test_canonical_form_rules():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    state = desired.states[0]
    dumped = state._replace(selector=None, esn=False, flags=SA_FLAG_ESN, mark=Mark(0, 0), output_mark=Mark(0, 0))
    assert canonical_state(dumped) == state
    policy = policies_of(desired, DIR_OUT, True)[0]
    sent = policy._replace(mark=Mark(0, 0), templates=(policy.templates[0]._replace(share=2),))
    assert canonical_policy(sent) == policy
    assert canonical_policy(policy) == policy and canonical_state(state) == state
    assert reconcile(desired, [dumped], [sent] + [p for p in desired.policies if p != policy]).operations[0].entry \
        in desired.states  # only the missing other SA is added
    ipv6 = XfrmState(src=A6, dst=B6, spi=5, reqid=1)
    assert canonical_state(ipv6).selector == zero_selector(AF_INET6)


def test_policy_change_is_an_update_never_delete_add():
    before = build_desired(node_a(), [peer_b()], [KEY1], PlanOptions(inbound_level="use"))
    after = build_desired(node_a(), [peer_b()], [KEY1])
    result = reconcile(after, before.states, before.policies)
    assert verbs(result) == ["update"]
    assert result.operations[0].entry == policies_of(after, DIR_IN, True)[0]
    assert result.changes[0].before == policies_of(before, DIR_IN, True)[0]
    assert result.counts()["policies"]["updated"] == 1


def test_sa_change_is_delete_then_add_adjacent():
    before = build_desired(node_a(), [peer_b()], [KEY1])
    rebooted = build_desired(node_a(), [peer_b(boot_id=BOOT_C)], [KEY1])  # peer rebooted
    result = reconcile(rebooted, before.states, before.policies)
    assert verbs(result) == ["delete", "add", "delete", "add"]
    ops = result.operations
    for i in (0, 2):
        assert ops[i].entry.key() == ops[i + 1].entry.key()
        assert ops[i].entry in before.states and ops[i + 1].entry in rebooted.states
    # IN SA re-created before OUT SA.
    assert ops[1].entry.dst == A4 and ops[3].entry.src == A4
    assert result.counts()["sas"] == dict(added=0, updated=2, removed=0, unchanged=0, kept=0)
    assert changed_lines(result) == {"added": [], "updated": [render(ops[1].entry), render(ops[3].entry)],
                                     "removed": []}


def test_peer_removal_order():
    before = build_desired(node_a(subnets=["10.1.0.0/24"]), [peer_b(), peer_c()], [KEY1])
    after = build_desired(node_a(subnets=["10.1.0.0/24"]), [peer_b()], [KEY1])
    result = reconcile(after, before.states, before.policies)
    assert set(verbs(result)) == {"delete"}
    local = after.local_addresses
    assert [role_of(op.entry, local) for op in result.operations] == [
        "out-policy", "out-sa", "in-policy", "in-policy", "in-sa"]
    assert all(C4 in render(op.entry) for op in result.operations)


def test_purge_off_keeps_extras():
    before = build_desired(node_a(), [peer_b(), peer_c()], [KEY1])
    after = build_desired(node_a(), [peer_b()], [KEY1])
    result = reconcile(dataclasses.replace(after, purge=False), before.states, before.policies)
    assert result.operations == ()
    assert len(result.kept) == 4
    assert result.counts()["sas"]["kept"] == 2
    assert set(result.after) == set(before.states) | set(before.policies)


def test_frozen_peer_entries_kept_while_others_are_purged():
    before = build_desired(node_a(), [peer_b(), peer_c()], [KEY1])
    stale = build_desired(node_a(), [Peer("d", ["10.0.0.4"], boot_id=BOOT_C)], [KEY1])
    after = build_desired(node_a(), [peer_b(), peer_c(boot_id=None)], [KEY1])
    result = reconcile(after, before.states + stale.states, before.policies + stale.policies)
    assert all("10.0.0.4" in render(op.entry) for op in result.operations)
    assert len(result.operations) == 4
    assert set(result.kept) == {o for o in before.states + before.policies if C4 in render(o)}
    assert "peer c" in result.warnings[0]


def test_state_absent_removes_all_owned_and_only_owned():
    installed = build_desired(node_a(subnets=["10.1.0.0/24"]), [peer_b(), peer_c()], [KEY1, KEY2])
    foreign_states, foreign_policies = strongswan_like()
    result = reconcile(build_desired(node_a(), [peer_b(), peer_c(boot_id=None)], [],
                                     PlanOptions(state="absent", purge=False)),
                       list(installed.states) + foreign_states, list(installed.policies) + foreign_policies)
    deleted = [op.entry for op in result.operations]
    assert set(verbs(result)) == {"delete"}
    assert set(deleted) == set(installed.states) | set(installed.policies)
    roles = [role_of(obj, (A4,)) for obj in deleted]
    order = ["out-policy", "out-sa", "in-policy", "in-sa", "bypass"]
    assert [order.index(r) for r in roles] == sorted(order.index(r) for r in roles)
    assert render_plan(result)["after"] == ""
    # reconcile() of a teardown set ignores purge too.
    teardown = build_desired(node_a(), [], [], PlanOptions(state="absent"))
    again = reconcile(dataclasses.replace(teardown, purge=False), installed.states, installed.policies)
    assert len(again.operations) == len(installed.states) + len(installed.policies)


def test_outbound_off_keeps_existing_out_entries():
    installed = build_desired(node_a(), [peer_b()], [KEY1])
    phase1 = build_desired(node_a(), [peer_b(), peer_c()], [KEY1], PlanOptions(outbound=False))
    result = reconcile(phase1, installed.states, installed.policies)
    assert set(verbs(result)) == {"add"}
    assert all(role_of(op.entry, (A4,)) in ("in-sa", "in-policy") for op in result.operations)
    assert {role_of(o, (A4,)) for o in result.kept} == {"out-sa", "out-policy"}


def test_rotation_make_before_break():
    one = build_desired(node_a(), [peer_b()], [KEY1])
    # Phase 1: new key added, egress still on the old one: only SAs are added.
    both_old_out = build_desired(node_a(), [peer_b()], [KEY1, KEY2], PlanOptions(out_spi=1))
    step1 = reconcile(both_old_out, one.states, one.policies)
    assert verbs(step1) == ["add", "add"]
    assert [role_of(op.entry, (A4,)) for op in step1.operations] == ["in-sa", "out-sa"]
    # Phase 2: egress switches: one policy update, in place.
    both_new_out = build_desired(node_a(), [peer_b()], [KEY1, KEY2])
    step2 = reconcile(both_new_out, both_old_out.states, both_old_out.policies)
    assert verbs(step2) == ["update"] and step2.operations[0].entry.templates[0].spi == wire_spi(2, A4)
    # Phase 3: old key gone: its SAs go, OUT before IN.
    two = build_desired(node_a(), [peer_b()], [KEY2])
    step3 = reconcile(two, both_new_out.states, both_new_out.policies)
    assert verbs(step3) == ["delete", "delete"]
    assert [op.entry.spi >> 28 for op in step3.operations] == [1, 1]
    assert [role_of(op.entry, (A4,)) for op in step3.operations] == ["out-sa", "in-sa"]
    # Straight from one key to the next: update of the template after the new OUT SA.
    direct = reconcile(two, one.states, one.policies)
    assert verbs(direct) == ["add", "add", "update", "delete", "delete"]


def test_mark_collision_with_owned_sa_is_replaced_in_place():
    options = PlanOptions(marks="cilium")
    old = build_desired(node_a(), [peer_b(mark_id=1)], [aead_key(3)], options)
    # An owned generic IN SA without mark (from a hand-made earlier state) blocks ours.
    generic = states_of(old, B4, A4)[0]._replace(mark=None, output_mark=None)
    result = reconcile(old, [s for s in old.states if s.dst != A4] + [generic], old.policies)
    assert verbs(result) == ["delete", "add"]
    assert result.operations[0].entry == generic


def test_removals_go_out_before_in_and_bypass_last():
    before = build_desired(node_a(), [peer_b(), peer_c()], [KEY1])
    result = reconcile(DesiredSet(local_addresses=(A4,)), before.states, before.policies)
    roles = [role_of(op.entry, (A4,)) for op in result.operations]
    order = ["out-policy", "out-sa", "in-policy", "in-sa", "bypass"]
    assert [order.index(r) for r in roles] == sorted(order.index(r) for r in roles)


def test_duplicate_desired_identities_refused():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    state = desired.states[0]
    other = state._replace(replay_window=64)
    with pytest.raises(PlanError, match="same kernel identity"):
        reconcile(DesiredSet(states=(state, other), local_addresses=(A4,)), [], [])


def test_operation_and_change_reprs_are_masked():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    op = Operation(Verb.ADD, desired.states[0])
    change = Change(ChangeKind.ADD, "in-sa", after=desired.states[0])
    key = desired.states[0].aead.key
    for text in (repr(op), repr(change), str(change.operations())):
        assert "key=<20 bytes>" in text and key.hex() not in text and repr(key) not in text


# ======================================================================================
# Rendering


def test_render_examples():
    key = bytes(range(20))
    state = XfrmState(src=A4, dst=B4, spi=0x1A2B3C4D, reqid=DEFAULT_REQID, replay_window=1024, esn=True,
                      selector=zero_selector(AF_INET), aead=Algorithm("aead", GCM, key, 128))
    fp = "sha256:" + hashlib.sha256(key).hexdigest()[:12]
    assert render(state) == ("state 10.0.0.1 -> 10.0.0.2 esp spi 0x1a2b3c4d reqid 0x6e736563 tunnel "
                             "aead rfc4106(gcm(aes)) key %s icv 128 esn replay-window 1024" % fp)
    policy = XfrmPolicy(selector_between("0.0.0.0/0", "10.0.0.2/32"), DIR_OUT, priority=28416,
                        templates=(Template(A4, B4, reqid=DEFAULT_REQID, spi=0x1A2B3C4D),))
    assert render(policy) == ("policy out 0.0.0.0/0 -> 10.0.0.2/32 priority 28416 tmpl 10.0.0.1 -> 10.0.0.2 "
                              "esp spi 0x1a2b3c4d reqid 0x6e736563 tunnel required")
    assert PRIORITY_ENCRYPT == 28416


def test_render_optional_fields():
    state = XfrmState(src=A4, dst=B4, spi=3, reqid=1, mark=Mark(0x13E00, 0xFFFFFF00),
                      output_mark=Mark(0xE00, 0xFFFFFF00), if_id=7,
                      selector=selector_between("10.1.0.0/16", "10.2.0.0/16", 6, 0, 443),
                      auth=Algorithm("auth", "hmac(sha256)", b"\x01" * 32, 128),
                      crypt=Algorithm("crypt", "cipher_null", b"", 0))
    text = render(state)
    for part in ("mark 0x13e00/0xffffff00", "output-mark 0xe00/0xffffff00", "if_id 0x7",
                 "sel 10.1.0.0/16 -> 10.2.0.0/16 proto tcp dport 443", "auth-trunc hmac(sha256) key sha256:",
                 "enc cipher_null key none"):
        assert part in text
    policy = XfrmPolicy(selector_between("::/0", "::/0", 6, 22, 0), 4, ACTION_BLOCK, 5, ptype=POLICY_TYPE_SUB)
    assert render(policy) == "policy dir 4 ::/0 -> ::/0 proto tcp sport 22 priority 5 block ptype 1"


def test_render_distinguishes_every_compared_difference():
    desired = build_desired(node_a(), [peer_b()], [KEY1])
    state = desired.states[0]
    variants = [state._replace(replay_window=32), state._replace(esn=False),
                state._replace(mode=0), state._replace(flags=4),
                state._replace(aead=state.aead._replace(bits=96))]
    assert len({render(v) for v in variants + [state]}) == len(variants) + 1


def test_render_plan_diff_and_lines():
    before = build_desired(node_a(), [peer_b(), peer_c()], [KEY1], PlanOptions(inbound_level="use"))
    after = build_desired(node_a(), [peer_b(boot_id=BOOT_A2)], [KEY1])
    foreign_states, foreign_policies = cilium_like()
    result = reconcile(after, list(before.states) + foreign_states, list(before.policies) + foreign_policies)
    diff = render_plan(result)
    lines = changed_lines(result)
    assert diff["before"] == "".join(sorted(render(o) + "\n" for o in before.states + before.policies))
    assert diff["after"] == "".join(sorted(render(o) + "\n" for o in after.states + after.policies))
    assert len(lines["added"]) == 0
    assert len(lines["updated"]) == 3  # 2 SAs re-keyed, 1 IN policy level
    assert len(lines["removed"]) == 4  # peer c
    assert lines == {"added": [], "updated": [render(c.after) for c in result.changes if c.kind is not ChangeKind.DELETE],
                     "removed": [render(c.before) for c in result.changes if c.kind is ChangeKind.DELETE]}
    counts = result.counts()
    assert counts["sas"] == dict(added=0, updated=2, removed=2, unchanged=0, kept=0)
    assert counts["policies"] == dict(added=0, updated=1, removed=2, unchanged=3, kept=0)
    json.dumps([diff, lines, counts])  # plain data for module results


def test_secrets_of_covers_every_derived_key():
    desired = build_desired(node_a(), [peer_b()], [KEY1, auth_enc_key(2)])
    secrets = secrets_of(desired.states)
    for state in desired.states:
        for algorithm in state.algorithms():
            assert algorithm.key.hex() in secrets
            assert algorithm.key.hex().upper() in secrets
            assert base64.b64encode(algorithm.key).decode().rstrip("=") in secrets
            assert base64.urlsafe_b64encode(algorithm.key).decode().rstrip("=") in secrets
    assert "" not in secrets
    master = build_desired(node_a(), [peer_b()], [KEY1], PlanOptions(per_pair_keys=False))
    assert KEY1.aead_key.hex() in secrets_of(master.states)


# ======================================================================================
# Property tests: masking, ordering, convergence


def spellings(key: bytes) -> List[str]:
    encoded = base64.b64encode(key).decode()
    return [key.hex(), key.hex().upper(), encoded.rstrip("="), base64.urlsafe_b64encode(key).decode().rstrip("=")]


key_material = st.binary(min_size=16, max_size=36)


@settings(max_examples=60, deadline=None)
@given(aead=key_material, auth=key_material, enc=st.binary(min_size=16, max_size=16), per_pair=st.booleans())
def test_rendering_never_contains_key_material(aead, auth, enc, per_pair):
    keys = [Key(spi=1, form=FORM_AEAD, aead_name=GCM, aead_key=aead[:20].ljust(20, b"\x00"), icv_bits=128),
            Key(spi=2, form=FORM_AUTH_ENC, auth_name="hmac(sha256)", auth_key=auth, enc_name="cbc(aes)",
                enc_key=enc)]
    options = PlanOptions(per_pair_keys=per_pair)
    desired = build_desired(node_a(), [peer_b()], keys, options)
    old = build_desired(node_a(), [peer_b(), peer_c()], keys, PlanOptions(per_pair_keys=per_pair, out_spi=1))
    result = reconcile(desired, old.states, old.policies)
    texts = [render(o) for o in desired.states + desired.policies]
    texts += [repr(o) for o in desired.states] + [str(o) for o in desired.states]
    texts += [repr(result), str(result), json.dumps([render_plan(result), changed_lines(result), result.counts()]),
              repr(desired)]
    theirs = desired.states[0]._replace(reqid=1)
    try:
        reconcile(desired, [theirs], [])
    except PlanError as error:
        texts += [str(error), repr(error)]
    else:
        raise AssertionError("foreign SA accepted")
    secrets = [a.key for s in desired.states + old.states for a in s.algorithms()]
    secrets += [k for key in keys for k in key.key_material]
    blob = "\n".join(texts)
    for secret in secrets:
        for spelling in spellings(secret):
            assert spelling not in blob


class FakeKernel:
    """A SAD/SPD with the kernel's identity rules, for applying plans."""

    def __init__(self, states: Iterable[XfrmState], policies: Iterable[XfrmPolicy]) -> None:
        self.states: Dict[tuple, XfrmState] = {s.key(): s for s in states}
        self.policies: Dict[tuple, XfrmPolicy] = {p.key(): p for p in policies}

    def apply(self, operations: Sequence[Operation]) -> None:
        for op in operations:
            table = self.states if isinstance(op.entry, XfrmState) else self.policies
            key = op.entry.key()
            if op.verb is Verb.ADD:
                assert key not in table, "EEXIST: %s" % render(op.entry)
                if isinstance(op.entry, XfrmState):
                    from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import sa_add_collides
                    assert not any(sa_add_collides(op.entry, s) for s in table.values()), render(op.entry)
                table[key] = op.entry
            elif op.verb is Verb.UPDATE:
                assert isinstance(op.entry, XfrmPolicy), "UPDSA cannot change an SA"
                assert key in table, "update of a missing policy"
                table[key] = op.entry
            else:
                assert key in table, "ENOENT: %s" % render(op.entry)
                del table[key]


def _mesh_strategy():
    families = st.sampled_from([("v4",), ("v6",), ("v4", "v6")])
    return st.fixed_dictionaries({
        "local_families": families,
        "peers": st.lists(st.tuples(families, st.booleans(), st.sampled_from([None, "use", "required"]),
                                    st.integers(0, 2)), min_size=0, max_size=4),
        "keys": st.lists(st.integers(1, 15), min_size=1, max_size=3, unique=True),
        "out_index": st.integers(0, 2),
        "outbound": st.booleans(),
        "level": st.sampled_from(["use", "required"]),
        "routed": st.booleans(),
        "bypass": st.sampled_from([[], [("tcp", 22)], [("tcp", 22), ("udp", 4500)]]),
        "marks": st.sampled_from(["none", "none", "cilium"]),
        "boot_variant": st.integers(0, 1),
    })


def _build(spec, reqid=DEFAULT_REQID, frozen: Sequence[int] = ()) -> Tuple[LocalNode, List[Peer], List[Key], PlanOptions]:
    def addresses(index: int, families) -> List[str]:
        return [("10.0.0.%d" if f == "v4" else "fd00::%x") % (index + 1) for f in families]

    boots = [BOOT_A, BOOT_B, BOOT_C, BOOT_A2, "0d0d0d0d-4444-4444-8444-dddddddddddd"]
    local_families = spec["local_families"]
    routed = ["10.100.0.0/24" if "v4" in local_families else "fd64::/64"] if spec["routed"] else []
    local = LocalNode("n0", addresses(0, local_families), subnets=routed, boot_id=boots[spec["boot_variant"]])
    peers = []
    for index, (families, has_subnets, level, extra) in enumerate(spec["peers"], 1):
        # A mesh has a family in common between any two members, and a subnet only of a
        # family its member has an address of (otherwise build_desired refuses it).
        if not set(families) & set(local_families):
            families = local_families
        subnets = ["10.%d.%d.0/24" % (index, n) for n in range(extra)] if has_subnets and "v4" in families else []
        if has_subnets and "v6" in families:
            subnets.append("fd%02x::/64" % index)
        boot = None if index in frozen else boots[(index + spec["boot_variant"]) % len(boots)]
        peers.append(Peer("n%d" % index, addresses(index, families), subnets=subnets, boot_id=boot,
                          inbound_level=level))
    keys = [aead_key(spi) for spi in spec["keys"]]
    out_spi = spec["keys"][min(spec["out_index"], len(keys) - 1)]
    options = PlanOptions(out_spi=out_spi, outbound=spec["outbound"], inbound_level=spec["level"],
                          bypass=spec["bypass"], marks=spec["marks"], reqid=reqid)
    return local, peers, keys, options


def _foreign_entries() -> Tuple[List[XfrmState], List[XfrmPolicy]]:
    states, policies = strongswan_like()
    return states, policies


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=_mesh_strategy(), new=_mesh_strategy(), purge=st.booleans(), absent=st.booleans(),
       frozen=st.sets(st.integers(1, 4), max_size=2))
def test_plans_are_safe_apply_cleanly_and_converge(old, new, purge, absent, frozen):
    local_old, peers_old, keys_old, options_old = _build(old)
    local_new, peers_new, keys_new, options_new = _build(new, frozen=tuple(frozen))
    installed = build_desired(local_old, peers_old, keys_old, options_old)
    foreign_states, foreign_policies = _foreign_entries()
    current_states = list(installed.states) + foreign_states
    current_policies = list(installed.policies) + foreign_policies
    if absent:
        options_new = dataclasses.replace(options_new, state="absent")
    options_new = dataclasses.replace(options_new, purge=purge)
    try:
        desired = build_desired(local_new, peers_new, keys_new, options_new)
    except PlanError:
        event("inputs refused")
        return  # e.g. a peer sharing the local address in a way the inputs refuse
    try:
        result = reconcile(desired, current_states, current_policies)
    except PlanError as error:
        # The only legitimate refusal here: a desired entry meets a foreign one.
        assert "does not own" in str(error)
        event("foreign entry in the way")
        return
    ops = result.operations
    event("planned: %s" % ("no change" if not ops else "deletes" if any(o.verb is Verb.DELETE for o in ops)
                           else "adds/updates only"))
    local = desired.local_addresses or local_new.addresses
    roles = [role_of(op.entry, local) for op in ops]

    # Foreign entries are never touched.
    foreign = set(foreign_states) | set(foreign_policies)
    assert not any(op.entry in foreign for op in ops)
    # Policies change by update, never by delete + add of one identity.
    deleted_policies = {op.entry.key() for op in ops if op.verb is Verb.DELETE and isinstance(op.entry, XfrmPolicy)}
    added_policies = {op.entry.key() for op in ops if op.verb in (Verb.ADD, Verb.UPDATE) and isinstance(op.entry, XfrmPolicy)}
    assert not deleted_policies & added_policies
    assert all(isinstance(op.entry, XfrmPolicy) for op in ops if op.verb is Verb.UPDATE)
    # An SA re-created: its delete comes right before its add.
    for i, op in enumerate(ops):
        if op.verb is Verb.DELETE and isinstance(op.entry, XfrmState):
            later_adds = [j for j in range(i + 1, len(ops)) if ops[j].verb is Verb.ADD
                          and isinstance(ops[j].entry, XfrmState) and ops[j].entry.key() == op.entry.key()]
            assert later_adds in ([], [i + 1])
    # Every IN SA add precedes every OUT policy add/update; every OUT SA add too.
    last_in_sa = max([i for i, r in enumerate(roles) if r == "in-sa" and ops[i].verb is Verb.ADD], default=-1)
    last_out_sa = max([i for i, r in enumerate(roles) if r == "out-sa" and ops[i].verb is Verb.ADD], default=-1)
    first_out_policy = min([i for i, r in enumerate(roles) if r == "out-policy" and ops[i].verb is not Verb.DELETE],
                           default=len(ops))
    assert last_in_sa < first_out_policy and last_out_sa < first_out_policy
    # Bypass additions come first of all, bypass removals last of all.
    bypass_adds = [i for i, r in enumerate(roles) if r == "bypass" and ops[i].verb is not Verb.DELETE]
    other_adds = [i for i, r in enumerate(roles) if r != "bypass" and ops[i].verb is not Verb.DELETE]
    assert not bypass_adds or not other_adds or max(bypass_adds) < min(other_adds)
    # Removals: all additions first; then OUT before IN, bypass last.
    pure_deletes = [i for i, op in enumerate(ops) if op.verb is Verb.DELETE
                    and not (i + 1 < len(ops) and ops[i + 1].verb is Verb.ADD and ops[i + 1].entry.key() == op.entry.key()
                             and isinstance(op.entry, XfrmState))]
    rank = {"out-policy": 0, "out-sa": 1, "in-policy": 2, "in-sa": 3, "bypass": 4}
    assert [rank[roles[i]] for i in pure_deletes] == sorted(rank[roles[i]] for i in pure_deletes)
    if pure_deletes and other_adds:
        assert max(other_adds) < min(pure_deletes)

    # Applying works with the kernel's identity rules, reaches the desired set, keeps the rest.
    kernel = FakeKernel(current_states, current_policies)
    kernel.apply(ops)
    final = set(kernel.states.values()) | set(kernel.policies.values())
    assert foreign <= final
    owned_final = {o for o in final if o not in foreign}
    assert owned_final == set(desired.states) | set(desired.policies) | set(result.kept)
    assert owned_final == set(result.after)
    if absent:
        assert owned_final == set()
    # Convergence: planning again changes nothing.
    again = reconcile(desired, list(kernel.states.values()), list(kernel.policies.values()))
    assert again.operations == ()


@settings(max_examples=40, deadline=None)
@given(spec=_mesh_strategy())
def test_plan_of_desired_as_current_is_empty(spec):
    local, peers, keys, options = _build(spec)
    desired = build_desired(local, peers, keys, options)
    assert reconcile(desired, desired.states, desired.policies).operations == ()
    # And the order of the input does not change the plan.
    fresh = reconcile(desired, [], [])
    shuffled = dataclasses.replace(desired, states=desired.states[::-1], policies=desired.policies[::-1])
    assert reconcile(shuffled, [], []).operations == fresh.operations


# --- rollout phases and per-peer trust ------------------------------------------------------


def in_levels(result_or_set, direction=DIR_IN) -> Dict[str, bool]:
    policies = [o for o in getattr(result_or_set, "after", None) or result_or_set.policies
                if isinstance(o, XfrmPolicy) and o.dir == direction and o.templates]
    return {p.templates[0].src: p.templates[0].optional for p in policies}


def test_phase_inbound_adds_only_the_in_side_with_new_policies_at_use_and_never_removes():
    converged = build_desired(node_a(), [peer_b()], [KEY1])
    phase = build_desired(node_a(), [peer_b(), peer_c()], [KEY1], PlanOptions(phase="inbound"))
    result = reconcile(phase, converged.states, converged.policies)
    assert set(verbs(result)) == {"add"}
    assert {role_of(op.entry, (A4,)) for op in result.operations} == {"in-sa", "in-policy"}
    # b is converged (required, kept as installed); c is new (use).
    assert in_levels(result) == {B4: False, C4: True}
    assert {role_of(o, (A4,)) for o in result.kept} == {"out-sa", "out-policy"}


def test_phases_are_no_ops_on_a_converged_node():
    converged = build_desired(node_a(), [peer_b(), peer_c()], [KEY1])
    for phase in ("inbound", "outbound", "all"):
        desired = build_desired(node_a(), [peer_b(), peer_c()], [KEY1], PlanOptions(phase=phase))
        assert reconcile(desired, converged.states, converged.policies).operations == (), phase


def test_phase_outbound_adds_the_out_side_and_removes_nothing():
    stale = build_desired(node_a(), [peer_b(), peer_c()], [KEY1])
    phase = build_desired(node_a(), [peer_b()], [KEY1], PlanOptions(phase="outbound"))
    result = reconcile(phase, [], [])
    roles = {role_of(op.entry, (A4,)) for op in result.operations}
    assert roles == {"bypass", "in-sa", "in-policy", "out-sa", "out-policy"}
    assert in_levels(result) == {B4: True}  # new IN policy: use until phase "all"
    assert "delete" not in verbs(reconcile(phase, stale.states, stale.policies))


def test_full_rollout_sequence_converges_and_ends_required():
    installed_states: List[XfrmState] = []
    installed_policies: List[XfrmPolicy] = []
    for phase in ("inbound", "outbound", "all"):
        desired = build_desired(node_a(), [peer_b(), peer_c()], [KEY1], PlanOptions(phase=phase))
        result = reconcile(desired, installed_states, installed_policies)
        installed_states = [o for o in result.after if isinstance(o, XfrmState)]
        installed_policies = [o for o in result.after if isinstance(o, XfrmPolicy)]
    assert in_levels(result) == {B4: False, C4: False}
    final = build_desired(node_a(), [peer_b(), peer_c()], [KEY1])
    assert reconcile(final, installed_states, installed_policies).operations == ()


def test_peer_outbound_keep_neither_adds_nor_removes_out_entries_towards_it():
    converged = build_desired(node_a(), [peer_b()], [KEY1])
    desired = build_desired(node_a(), [peer_b(outbound="keep"), peer_c(outbound="keep")], [KEY1])
    result = reconcile(desired, converged.states, converged.policies)
    assert all(role_of(op.entry, (A4,)) in ("in-sa", "in-policy") for op in result.operations)
    assert {o.dst for o in result.kept if isinstance(o, XfrmState)} == {B4}
    assert "delete" not in verbs(result)


def test_peer_inbound_level_keep_keeps_the_installed_level():
    at_use = build_desired(node_a(), [peer_b(inbound_level="use")], [KEY1])
    keep = build_desired(node_a(), [peer_b(inbound_level="keep"), peer_c(inbound_level="keep")], [KEY1])
    result = reconcile(keep, at_use.states, at_use.policies)
    assert in_levels(result) == {B4: True, C4: True}
    at_required = build_desired(node_a(), [peer_b()], [KEY1])
    result = reconcile(keep, at_required.states, at_required.policies)
    assert in_levels(result) == {B4: False, C4: True}
    assert "update" not in verbs(result)


@pytest.mark.parametrize("kw, pattern", [
    (dict(outbound="sometimes"), "outbound must be one of enable, keep"),
    (dict(inbound_level="maybe"), "inbound_level must be one of use, required, keep"),
])
def test_peer_trust_values_are_validated(kw, pattern):
    with pytest.raises(PlanError, match=pattern):
        peer_b(**kw)


def test_phase_is_validated():
    with pytest.raises(PlanError, match="phase must be one of inbound, outbound, all"):
        PlanOptions(phase="sideways")


# ======================================================================================
# The edges: tunnel addresses, subnets, identity (issue 12 and 13)


def test_listed_subnets_never_take_the_tunnel_addresses_out_of_the_mesh():
    desired = build_desired(node_a(subnets=["10.244.1.0/24"]), [peer_b(subnets=["10.244.2.0/24"])], [KEY1])
    assert sorted(p.selector.dst for p in policies_of(desired, DIR_OUT, True)) == ["10.0.0.2/32", "10.244.2.0/24"]
    assert sorted(p.selector.src for p in policies_of(desired, DIR_IN, True)) == ["10.0.0.2/32", "10.244.2.0/24"]


@pytest.mark.parametrize("make, message", [
    (lambda: node_a(subnets=["fd00:aa::/64"]),
     "local node a: subnet fd00:aa::/64 cannot be carried: local node a has no IPv6 tunnel address"),
    (lambda: peer_b(subnets=["fd00:bb::/64"]),
     "peer b: subnet fd00:bb::/64 cannot be carried: peer b has no IPv6 tunnel address"),
    (lambda: peer_b(addresses=[B6], subnets=["10.9.0.0/16"]),
     "peer b: subnet 10.9.0.0/16 cannot be carried: peer b has no IPv4 tunnel address"),
])
def test_a_subnet_of_a_family_without_tunnel_address_is_refused(make, message):
    with pytest.raises(PlanError, match=message.replace(".", r"\.")):
        make()


def test_two_members_without_a_common_family_are_refused():
    with pytest.raises(PlanError, match=r"the local node a \(IPv4\) and peer b \(IPv6\) have no address family in common"):
        build_desired(node_a(), [peer_b(addresses=[B6])], [KEY1])
    # A frozen peer (no boot id) is no exception: the inventory is wrong either way.
    with pytest.raises(PlanError, match="no address family in common"):
        build_desired(node_a(), [peer_b(addresses=[B6], boot_id=None)], [KEY1])
    # Teardown needs no pairing: it removes what is there.
    assert build_desired(node_a(), [peer_b(addresses=[B6])], [], PlanOptions(state="absent")).teardown


@pytest.mark.parametrize("address, why", [
    ("::ffff:10.0.0.2", "is an IPv4-mapped IPv6 address: give the IPv4 address 10.0.0.2 instead"),
    ("fe80::1", "is link-local"),
    ("fe80::1%eth0", "has a zone"),
    ("169.254.10.1", "is link-local"),
    ("0.0.0.0", "is unspecified"),
    ("::", "is unspecified"),
    ("224.0.0.5", "is multicast"),
    ("ff02::1", "is multicast"),
    ("127.0.0.1", "is a loopback address"),
    ("::1", "is a loopback address"),
    ("255.255.255.255", "is the broadcast address"),
    ("10.0.0.300", "is not an IP address"),
])
def test_addresses_that_cannot_be_tunnel_endpoints_are_refused(address, why):
    for make, owner in ((lambda: node_a(addresses=[address]), "local node a"),
                        (lambda: peer_b(addresses=[address]), "peer b")):
        with pytest.raises(PlanError) as error:
            make()
        assert str(error.value).startswith("%s: tunnel address %s %s" % (owner, address, why)), str(error.value)


def test_one_node_listed_twice_under_two_spellings_cannot_share_a_key():
    # 10.0.0.2 and ::ffff:10.0.0.2 derive the same key and SPI: the mapped spelling is refused.
    with pytest.raises(PlanError, match="IPv4-mapped"):
        build_desired(node_a(), [peer_b(), Peer("b-again", ["::ffff:10.0.0.2"], boot_id=BOOT_C)], [KEY1])
