# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Owned entries carrying attributes the collection never sets are never converged (issue 13).

The decoder used to pass over a security context, UDP encapsulation, offload, extra flags,
TFC padding, a care-of address, compression, NAT keepalive and the like, so an owned SA
or policy carrying one compared equal to the desired entry and stayed. Now the decoder keeps
them on ``unmodelled`` (a policy's security context on ``security_context``), and:

* each attribute, as the kernel sends it, decodes to its own text and payload, and the
  entry is not equal to the same entry without it (built entries never carry any);
* ``reconcile`` replaces such an owned SA (delete, add the desired shape) and updates such an
  owned policy in place, deletes one that is not desired, leaves foreign ones alone, and the
  diff's masked lines show the attribute that goes;
* an owned policy with a security context is refused with a PlanError naming it (its kernel
  identity includes the context, which the collection cannot send);
* an entry re-added by a rollback gets its attributes back (the encoder sends the payloads
  as they came), and attributes the kernel fills in (extra flags 0, last use, lifetime
  counters) are not unmodelled.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    ROLE_IN_POLICY, ROLE_IN_SA, ROLE_OUT_SA, LocalNode, Peer, PlanOptions, build_desired, role_of,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import ChangeKind, reconcile, rollback
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.report import render_plan
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    Operation, Unmodelled, Verb, XfrmState,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import (
    attribute, decoded_policy, decoded_state, dumped_policy, dumped_state,
)

KEY = Key(spi=3, form=FORM_AEAD, aead_name="rfc4106(gcm(aes))", aead_key=bytes(range(1, 21)), icv_bits=128)
LOCAL = LocalNode(name="n1", addresses=("10.0.0.1", "fd00::1"), boot_id="0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa")
PEERS = [Peer(name="n2", addresses=("10.0.0.2", "fd00::2"), boot_id="0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb")]
DESIRED = build_desired(LOCAL, PEERS, [KEY], PlanOptions())


def _encap(encap_type: int, sport: int, dport: int, original: str) -> bytes:
    return (struct.pack("=HHH2x", encap_type, socket.htons(sport), socket.htons(dport))
            + socket.inet_pton(socket.AF_INET, original) + bytes(12))


def _sec_ctx(context: bytes) -> bytes:
    return struct.pack("=HHBBH", S.USER_SEC_CTX.size + len(context), 1, 1, 1, len(context)) + context


# Each attribute an SA can carry that the collection never sets: (type, payload, text).
SA_ATTRIBUTES: List[Tuple[int, bytes, str]] = [
    (S.XFRMA_ENCAP, _encap(2, 4500, 4500, "0.0.0.0"), "encap espinudp 4500 4500 0.0.0.0"),
    (S.XFRMA_ENCAP, _encap(1, 4501, 4502, "192.0.2.9"), "encap espinudp-nonike 4501 4502 192.0.2.9"),
    (S.XFRMA_ENCAP, _encap(7, 4500, 4500, "0.0.0.0"), "encap espintcp 4500 4500 0.0.0.0"),
    # The lab's kernel (6.1) reports iproute2's contexts with two NULs at the end.
    (S.XFRMA_SEC_CTX, _sec_ctx(b"system_u:object_r:ipsec_spd_t:s0\0\0"), "ctx 'system_u:object_r:ipsec_spd_t:s0'"),
    (S.XFRMA_OFFLOAD_DEV, struct.pack("=iB3x", 3, 2 | 4), "offload ifindex 3 in packet"),
    (S.XFRMA_OFFLOAD_DEV, struct.pack("=iB3x", 7, 0), "offload ifindex 7"),
    (S.XFRMA_SA_EXTRA_FLAGS, struct.pack("=I", 1), "extra-flag dont-encap-dscp"),
    (S.XFRMA_SA_EXTRA_FLAGS, struct.pack("=I", 2 | 8), "extra-flag oseq-may-wrap 0x8"),
    (S.XFRMA_TFCPAD, struct.pack("=I", 100), "tfcpad 100"),
    (S.XFRMA_COADDR, socket.inet_pton(socket.AF_INET, "10.0.0.9") + bytes(12), "coa 10.0.0.9"),
    (S.XFRMA_ALG_COMP, S.ALGO.struct.pack(b"deflate", 0), "comp deflate"),
    (S.XFRMA_MTIMER_THRESH, struct.pack("=I", 15), "mapping-maxage 15"),
    (S.XFRMA_SA_DIR, b"\x02", "dir out"),
    (S.XFRMA_NAT_KEEPALIVE_INTERVAL, struct.pack("=I", 20), "nat-keepalive-interval 20"),
    (S.XFRMA_SA_PCPU, struct.pack("=I", 1), "pcpu 1"),
    (45, b"\x01\x02\x03", "attribute 45 (3 bytes)"),
]
POLICY_ATTRIBUTES: List[Tuple[int, bytes, str]] = [
    (S.XFRMA_OFFLOAD_DEV, struct.pack("=iB3x", 3, 4), "offload ifindex 3 packet"),
    (S.XFRMA_ENCAP, _encap(2, 4500, 4500, "0.0.0.0"), "encap espinudp 4500 4500 0.0.0.0"),
    (45, b"\x01\x02\x03\x04\x05", "attribute 45 (5 bytes)"),
]


def with_attribute(message: bytes, attr_type: int, payload: bytes) -> bytes:
    """A dump message with one more attribute, its length fixed."""
    data = bytearray(message) + attribute(attr_type, payload)
    struct.pack_into("=I", data, 0, len(data))
    return bytes(data)


def decoded_with(entry: Any, attr_type: int, payload: bytes) -> Any:
    message = dumped_state(entry) if isinstance(entry, XfrmState) else dumped_policy(entry)
    data = with_attribute(message, attr_type, payload)
    if isinstance(entry, XfrmState):
        return C.decode_state(data, 16, len(data))
    return C.decode_policy(data, 16, len(data))


def _first(role: str) -> Any:
    entries = list(DESIRED.states) + list(DESIRED.policies)
    return next(entry for entry in entries if role_of(entry, DESIRED.local_addresses) == role
                and "." in (entry.dst if isinstance(entry, XfrmState) else entry.templates[0].dst))


OUT_SA, IN_SA, IN_POLICY = _first(ROLE_OUT_SA), _first(ROLE_IN_SA), _first(ROLE_IN_POLICY)


# --- the decoder ------------------------------------------------------------------------


@pytest.mark.parametrize("attr_type,payload,text", SA_ATTRIBUTES, ids=[text for _t, _p, text in SA_ATTRIBUTES])
def test_an_sa_attribute_the_collection_never_sets_is_on_the_entry(attr_type: int, payload: bytes, text: str) -> None:
    decoded = decoded_with(OUT_SA, attr_type, payload)
    assert decoded.unmodelled == (Unmodelled(attr_type, text, payload),)
    assert decoded != OUT_SA and decoded._replace(unmodelled=()) == decoded_state(OUT_SA)
    assert decoded.key() == OUT_SA.key()  # the same SA in the kernel, in another shape
    assert render(decoded) == render(OUT_SA) + " " + text
    assert "payload=<%d bytes>" % len(payload) in repr(decoded.unmodelled[0])


@pytest.mark.parametrize("attr_type,payload,text", POLICY_ATTRIBUTES,
                         ids=[text for _t, _p, text in POLICY_ATTRIBUTES])
def test_a_policy_attribute_the_collection_never_sets_is_on_the_entry(attr_type: int, payload: bytes,
                                                                      text: str) -> None:
    decoded = decoded_with(IN_POLICY, attr_type, payload)
    assert decoded.unmodelled == (Unmodelled(attr_type, text, payload),)
    assert decoded != IN_POLICY and decoded.key() == IN_POLICY.key()
    assert text in render(decoded) and text not in render(IN_POLICY)


def test_a_policy_security_context_is_part_of_its_identity() -> None:
    decoded = decoded_with(IN_POLICY, S.XFRMA_SEC_CTX, _sec_ctx(b"system_u:object_r:ipsec_spd_t:s0"))
    assert decoded.security_context == "system_u:object_r:ipsec_spd_t:s0" and decoded.unmodelled == ()
    assert decoded.key() != IN_POLICY.key() and decoded.key()[:-1] == IN_POLICY.key()[:-1]
    assert "ctx 'system_u:object_r:ipsec_spd_t:s0'" in render(decoded)
    odd = decoded_with(IN_POLICY, S.XFRMA_SEC_CTX, _sec_ctx(b"a\\b\x01\xff\0b\0"))
    assert odd.security_context == "a\\x5cb\\x01\\xff\\x00b" and odd.key() != decoded.key()
    with pytest.raises(C.XfrmCodecError, match="security context"):
        C.encode_delpolicy(decoded)
    with pytest.raises(C.XfrmCodecError, match="security context"):
        C.encode_newpolicy(decoded)


def test_what_the_kernel_fills_in_is_not_unmodelled() -> None:
    # dumped_state adds lifetime counters, last use, extra flags 0 and the plain AUTH.
    assert decoded_state(OUT_SA).unmodelled == ()
    for attr_type, payload in ((S.XFRMA_REPLAY_THRESH, struct.pack("=I", 2)),
                               (S.XFRMA_ETIMER_THRESH, struct.pack("=I", 10)),
                               (S.XFRMA_SA_EXTRA_FLAGS, struct.pack("=I", 0)), (S.XFRMA_PAD, b"")):
        assert decoded_with(OUT_SA, attr_type, payload) == decoded_state(OUT_SA)
    assert decoded_with(IN_POLICY, S.XFRMA_PAD, b"") == decoded_policy(IN_POLICY)


@pytest.mark.parametrize("attr_type,payload", [
    (S.XFRMA_ENCAP, bytes(23)), (S.XFRMA_OFFLOAD_DEV, bytes(7)), (S.XFRMA_SA_EXTRA_FLAGS, bytes(3)),
    (S.XFRMA_COADDR, bytes(15)), (S.XFRMA_SEC_CTX, bytes(7)), (S.XFRMA_SEC_CTX, _sec_ctx(b"abc")[:-1]),
    (S.XFRMA_SA_DIR, b""), (S.XFRMA_TFCPAD, bytes(2)), (S.XFRMA_ALG_COMP, bytes(60)),
])
def test_a_short_attribute_is_a_codec_error(attr_type: int, payload: bytes) -> None:
    with pytest.raises(C.XfrmCodecError):
        decoded_with(OUT_SA, attr_type, payload)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SA_ATTRIBUTES), min_size=1, max_size=4), st.booleans())
def test_unmodelled_attributes_come_back_when_an_entry_is_re_added(chosen: List[Tuple[int, bytes, str]],
                                                                   policy: bool) -> None:
    """A rollback re-adds a deleted entry as it was: NEWSA/NEWPOLICY send the payloads back."""
    entry: Any = IN_POLICY if policy else OUT_SA
    message = dumped_state(entry) if not policy else dumped_policy(entry)
    for attr_type, payload, _text in chosen:
        if not (policy and attr_type == S.XFRMA_SEC_CTX):
            message = with_attribute(message, attr_type, payload)
    decode = C.decode_policy if policy else C.decode_state
    installed = decode(message, 16, len(message))
    assert installed.unmodelled == tuple(sorted(installed.unmodelled))
    again = C.frame(16, 0, 0, (C.encode_newpolicy if policy else C.encode_newsa)(installed))
    assert decode(again, 16, len(again)) == installed


# --- reconcile ----------------------------------------------------------------------------


def _plan_with(entry: Any, attr_type: int, payload: bytes, desired: Any = DESIRED) -> Any:
    installed = decoded_with(entry, attr_type, payload)
    states = [installed if state == entry else decoded_state(state) for state in desired.states]
    policies = [installed if policy == entry else decoded_policy(policy) for policy in desired.policies]
    return installed, reconcile(desired, states, policies)


@pytest.mark.parametrize("attr_type,payload,text", SA_ATTRIBUTES, ids=[text for _t, _p, text in SA_ATTRIBUTES])
@pytest.mark.parametrize("entry", [OUT_SA, IN_SA], ids=["out", "in"])
def test_an_owned_sa_carrying_one_is_replaced_with_the_desired_shape(entry: XfrmState, attr_type: int,
                                                                     payload: bytes, text: str) -> None:
    installed, plan = _plan_with(entry, attr_type, payload)
    (change,) = plan.changes
    assert change.kind is ChangeKind.REPLACE and change.before == installed and change.after == entry
    assert plan.operations == (Operation(Verb.DELETE, installed), Operation(Verb.ADD, entry))
    diff = render_plan(plan)
    assert text in diff["before"] and text not in diff["after"]
    # A rollback after the delete re-adds the SA as it was, attribute included.
    ((_applied, inverse),) = rollback(plan, plan.operations[:1])
    assert inverse == Operation(Verb.ADD, installed)
    assert C.decode_state(C.frame(16, 0, 0, C.encode_newsa(installed)), 16, 16 + len(C.encode_newsa(installed))
                          ).unmodelled == installed.unmodelled
    # Once replaced, the node is converged.
    assert not reconcile(DESIRED, [decoded_state(s) for s in DESIRED.states],
                         [decoded_policy(p) for p in DESIRED.policies]).changes


@pytest.mark.parametrize("attr_type,payload,text", POLICY_ATTRIBUTES,
                         ids=[text for _t, _p, text in POLICY_ATTRIBUTES])
def test_an_owned_policy_carrying_one_is_updated_in_place(attr_type: int, payload: bytes, text: str) -> None:
    installed, plan = _plan_with(IN_POLICY, attr_type, payload)
    (change,) = plan.changes
    assert change.kind is ChangeKind.UPDATE and change.before == installed and change.after == IN_POLICY
    assert plan.operations == (Operation(Verb.UPDATE, IN_POLICY),)
    assert text in render_plan(plan)["before"] and text not in render_plan(plan)["after"]
    ((_applied, inverse),) = rollback(plan, plan.operations)
    assert inverse == Operation(Verb.UPDATE, installed)  # restored with its attribute


def test_an_owned_sa_carrying_one_that_is_not_desired_is_deleted() -> None:
    stray = OUT_SA._replace(spi=OUT_SA.spi ^ 0x01000000)
    installed = decoded_with(stray, S.XFRMA_ENCAP, SA_ATTRIBUTES[0][1])
    plan = reconcile(DESIRED, [decoded_state(s) for s in DESIRED.states] + [installed],
                     [decoded_policy(p) for p in DESIRED.policies])
    assert plan.operations == (Operation(Verb.DELETE, installed),)


def test_foreign_entries_carrying_one_are_left_alone() -> None:
    foreign_sa = decoded_with(OUT_SA._replace(spi=0x99, reqid=4242), S.XFRMA_ENCAP, SA_ATTRIBUTES[0][1])
    foreign_policy = decoded_with(IN_POLICY._replace(templates=(IN_POLICY.templates[0]._replace(reqid=4242),)),
                                  S.XFRMA_SEC_CTX, _sec_ctx(b"system_u:object_r:ipsec_spd_t:s0"))
    plan = reconcile(DESIRED, [decoded_state(s) for s in DESIRED.states] + [foreign_sa],
                     [decoded_policy(p) for p in DESIRED.policies] + [foreign_policy])
    assert not plan.changes and (plan.foreign_states, plan.foreign_policies) == (1, 1)


@pytest.mark.parametrize("state", ["present", "absent"])
def test_an_owned_policy_with_a_security_context_is_refused_by_name(state: str) -> None:
    desired = build_desired(LOCAL, PEERS, [KEY], PlanOptions(state=state))
    installed = decoded_with(IN_POLICY, S.XFRMA_SEC_CTX, _sec_ctx(b"system_u:object_r:ipsec_spd_t:s0"))
    with pytest.raises(PlanError) as caught:
        reconcile(desired, [decoded_state(s) for s in DESIRED.states],
                  [decoded_policy(p) for p in DESIRED.policies] + [installed])
    message = str(caught.value)
    assert message.startswith("cannot manage %s: it carries a security context" % render(installed))
    assert "ctx 'system_u:object_r:ipsec_spd_t:s0'" in message and "ip xfrm policy delete" in message


def test_a_dump_with_a_context_policy_twin_keeps_both_apart() -> None:
    """Next to the desired policy, the same policy with a context is another kernel entry:
    the dump is not read as one entry seen twice (which would hide the desired one)."""
    twin = decoded_with(IN_POLICY, S.XFRMA_SEC_CTX, _sec_ctx(b"user_u:object_r:x:s0"))
    foreign_twin = twin._replace(templates=(twin.templates[0]._replace(reqid=4242),))
    plan = reconcile(DESIRED, [decoded_state(s) for s in DESIRED.states],
                     [decoded_policy(p) for p in DESIRED.policies] + [foreign_twin])
    assert not plan.changes and plan.foreign_policies == 1
