# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the one representation of an entry and of its canonical form (issue 7, P2;
issue 15, item 1).

An SA or policy is a named tuple of exactly the fields the kernel compares, so equality is
tuple equality; ``canonical_state``/``canonical_policy`` say how two spellings of one entry
differ, and ``reconcile`` compares canonical entries. So:

* every single-field change makes two entries unequal, and the kernel identity (``key()``)
  changes exactly when an identity field does;
* what the codec decodes from a dump (the kernel's spelling) is canonical, and equal to the
  canonical form of what was installed;
* canonicalising is idempotent and returns canonical entries as they are;
* on a converged node (foreign entries and kernel spellings included) ``reconcile`` plans no
  change, and any one field that differs, a missing, extra, duplicated or foreign entry is
  found (and fixed, or refused when a foreign entry holds a desired place).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any, List, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, FORM_AUTH_ENC, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C, xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    LocalNode, Peer, PlanOptions, build_desired,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import ChangeKind, Plan, reconcile
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm import model
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    AF_INET, ALGO_AEAD, DIR_IN, DIR_OUT, SA_FLAG_AF_UNSPEC, SA_FLAG_ESN, Algorithm, Lifetime, Mark, Selector,
    Template, Unmodelled, XfrmPolicy, XfrmState, canonical_policy, canonical_state, selector_between,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import (
    decoded_policy,
    decoded_state,
    dumped_policy,
    dumped_state,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.test_xfrm_codec import (
    policies,
    states,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
POLICY_DIR = S.USERPOLICY_INFO.offset_of("dir")


# ---------------------------------------------------------------------------------------
# Entries are equal exactly when every field is


def _other(value: Any) -> Any:
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value - 1 if value else 1  # stays valid (a prefix length of 32 becomes 31)
    if isinstance(value, bytes):
        return bytes([value[0] ^ 1]) + value[1:] if value else b"\x01"
    if isinstance(value, str):
        return value + "x"
    raise AssertionError(value)


def _is_entry_part(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _field_changes(obj: Any) -> List[Tuple[str, Any]]:
    """(path, changed entry) for every field, nested ones included."""
    changes: List[Tuple[str, Any]] = []
    for name in obj._fields:
        value = getattr(obj, name)
        if _is_entry_part(value):
            for path, inner in _field_changes(value):
                changes.append((name + "." + path, obj._replace(**{name: inner})))
        elif isinstance(value, tuple):
            for position, item in enumerate(value):
                for path, inner in _field_changes(item):
                    items = list(value)
                    items[position] = inner
                    changes.append(("%s[%d].%s" % (name, position, path), obj._replace(**{name: tuple(items)})))
        elif value is not None:
            changes.append((name, obj._replace(**{name: _other(value)})))
    return changes


FULL_STATE = XfrmState(
    src="192.0.2.1", dst="192.0.2.2", spi=0x10000001, reqid=7, replay_window=1024, esn=True, flags=4,
    selector=selector_between("10.0.0.0/24", "10.1.0.0/24", proto=6, sport=1, dport=2),
    aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", bytes(range(20)), 128), mark=Mark(1, 2), output_mark=Mark(3, 4),
    if_id=5, lifetime=Lifetime(1, 2, 3, 4, 5, 6, 7, 8),
    unmodelled=(Unmodelled(S.XFRMA_TFCPAD, "tfcpad 100", b"d\0\0\0"),))
FULL_POLICY = XfrmPolicy(
    selector=selector_between("10.0.0.0/24", "10.1.0.0/24", proto=17, sport=53, dport=54), dir=DIR_OUT, action=1,
    priority=100, templates=(Template(src="192.0.2.1", dst="192.0.2.2", reqid=7, spi=3, optional=True, share=1),
                             Template(src="192.0.2.3", dst="192.0.2.4", reqid=8)),
    mark=Mark(1, 2), ptype=1, if_id=5, flags=1, lifetime=Lifetime(1, 2, 3, 4, 5, 6, 7, 8),
    security_context="system_u:object_r:ipsec_spd_t:s0",
    unmodelled=(Unmodelled(S.XFRMA_OFFLOAD_DEV, "offload ifindex 3 packet", b"\3\0\0\0\4\0\0\0"),))


@pytest.mark.parametrize("obj", [FULL_STATE, FULL_POLICY], ids=["state", "policy"])
def test_every_single_field_change_changes_the_entry(obj: Any) -> None:
    changes = _field_changes(obj)
    assert len(changes) > 25
    for path, changed in changes:
        assert changed != obj, path
        assert type(changed) is type(obj), path
    # What the kernel fills in (counters, a policy's index) is not part of an entry.
    assert not {"counters", "index"} & set(type(obj)._fields)


# The fields the kernel identifies each kind of entry by, named independently of ``key()``.
IDENTITY_FIELDS = {XfrmState: ("family", "dst", "spi", "proto", "mark"),
                   XfrmPolicy: ("ptype", "dir", "if_id", "selector", "mark", "security_context")}


def _equal_exactly_when_fields_are(entry: Any, data: Any) -> None:
    other = data.draw(st.sampled_from([entry] + [changed for _path, changed in _field_changes(entry)]))
    assert (entry == other) == all(getattr(entry, name) == getattr(other, name) for name in type(entry)._fields)
    same_identity = all(getattr(entry, name) == getattr(other, name) for name in IDENTITY_FIELDS[type(entry)])
    assert (entry.key() == other.key()) == same_identity


@PROPERTY
@given(states(), st.data())
def test_state_entries_are_equal_exactly_when_their_fields_are(state: XfrmState, data: Any) -> None:
    _equal_exactly_when_fields_are(state, data)


@PROPERTY
@given(policies(), st.data())
def test_policy_entries_are_equal_exactly_when_their_fields_are(policy: XfrmPolicy, data: Any) -> None:
    _equal_exactly_when_fields_are(policy, data)


def test_entries_are_immutable_values_with_defaults() -> None:
    for obj in (FULL_STATE, FULL_POLICY, FULL_POLICY.templates[0], FULL_POLICY.selector, FULL_STATE.aead):
        rebuilt = type(obj)(*obj)
        assert rebuilt == obj and hash(rebuilt) == hash(obj) and repr(rebuilt) == repr(obj)
        with pytest.raises(AttributeError):
            rebuilt.spi = 1  # type: ignore[union-attr]
    assert XfrmState(src="192.0.2.1", dst="192.0.2.2", spi=1) == XfrmState("192.0.2.1", "192.0.2.2", 1)
    assert selector_between("10.0.0.1/24", "0.0.0.0/0", 6, dport=22) == Selector(
        AF_INET, "10.0.0.0", 24, "0.0.0.0", 0, 6, 0, 0, 22, 0xFFFF)


# ---------------------------------------------------------------------------------------
# What the codec decodes from a dump is the canonical form of what was installed


@PROPERTY
@given(states(), st.booleans(), st.integers(0, 3))
def test_decoded_dump_of_a_state_is_its_canonical_form(state: XfrmState, extra: bool, flag_bits: int) -> None:
    state = state._replace(flags=state.flags | (SA_FLAG_AF_UNSPEC if flag_bits & 1 else 0))
    af_unspec = bool(state.flags & SA_FLAG_AF_UNSPEC)
    # The kernel fills the SA's family into an all-zero selector unless flag af-unspec is set.
    decoded = decoded_state(state, fill_family=not af_unspec, extra=extra)
    assert decoded == canonical_state(state)
    assert canonical_state(decoded) is decoded


@PROPERTY
@given(policies(), st.integers(0, 3), st.integers(0, 5))
def test_decoded_dump_of_a_policy_is_its_canonical_form(policy: XfrmPolicy, share: int, direction: int) -> None:
    message = bytearray(dumped_policy(policy._replace(dir=direction % 3), share=share))
    message[16 + POLICY_DIR] = direction  # 3..5: per-socket policies, skipped
    decoded = C.decode_policy(bytes(message), 16, len(message))
    if direction >= 3:
        assert decoded is None
        return
    assert canonical_policy(decoded) == canonical_policy(policy._replace(dir=direction))
    if all(template.share == 0 for template in decoded.templates):
        # The kernel reports share as 0 (it does not store it): its spelling is canonical.
        assert canonical_policy(decoded) is decoded


def test_decoded_golden_dump_like_messages_are_canonical() -> None:
    auth_state = FULL_STATE._replace(aead=None, esn=False, replay_window=32,
                                     auth=Algorithm("auth", "hmac(sha256)", bytes(32), 128),
                                     crypt=Algorithm("crypt", "cbc(aes)", bytes(16)))
    for state in (FULL_STATE, auth_state, FULL_STATE._replace(selector=None, mark=None)):
        message = dumped_state(state)
        decoded = C.decode_state(message, 16, len(message))
        assert decoded == canonical_state(state) and canonical_state(decoded) is decoded


# ---------------------------------------------------------------------------------------
# The canonical form


@st.composite
def spelled_states(draw: Any) -> Tuple[XfrmState, XfrmState]:
    """(a canonical SA, the same SA spelled another way)."""
    state = canonical_state(draw(states())._replace(flags=0))
    changes = {}
    if draw(st.booleans()) and state.mark is None:
        changes["mark"] = Mark(0, 0)
    if draw(st.booleans()) and state.output_mark is None:
        changes["output_mark"] = Mark(0, 0)
    if state.esn and draw(st.booleans()):
        changes["esn"] = False
        changes["flags"] = SA_FLAG_ESN
    if draw(st.booleans()) and state.selector == canonical_state(state._replace(selector=None)).selector:
        changes["selector"] = None
    return state, state._replace(**changes)


@PROPERTY
@given(spelled_states())
def test_every_spelling_of_a_state_has_one_canonical_form(spelled: Tuple[XfrmState, XfrmState]) -> None:
    state, other_spelling = spelled
    assert canonical_state(state) is state  # canonical entries come back as they are
    assert canonical_state(other_spelling) == state
    assert canonical_state(canonical_state(other_spelling)) == state


@PROPERTY
@given(policies(), st.booleans(), st.integers(0, 3))
def test_every_spelling_of_a_policy_has_one_canonical_form(policy: XfrmPolicy, zero_mark: bool, share: int) -> None:
    canonical = canonical_policy(policy)
    assert canonical_policy(canonical) is canonical
    assert all(template.share == 0 for template in canonical.templates) and canonical.mark != Mark(0, 0)
    spelled = canonical._replace(mark=Mark(0, 0) if zero_mark and canonical.mark is None else canonical.mark,
                                 templates=tuple(template._replace(share=share) for template in canonical.templates))
    assert canonical_policy(spelled) == canonical


# ---------------------------------------------------------------------------------------
# reconcile on a dump: no change on a converged node, every difference found

BOOT_A = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa"
BOOTS = ["0b0b0b0b-2222-4222-8222-bbbbbbbbbb%02x" % index for index in range(8)]
GCM = "rfc4106(gcm(aes))"
KEY1 = Key(spi=1, form=FORM_AEAD, aead_name=GCM, aead_key=bytes(range(1, 21)), icv_bits=128)
KEY2 = Key(spi=2, form=FORM_AUTH_ENC, auth_name="hmac(sha256)", auth_key=bytes(range(32, 64)), enc_name="cbc(aes)",
           enc_key=bytes(range(100, 116)))


def mesh(options: PlanOptions = PlanOptions(), dual_stack: bool = False, routed: bool = False,
         keys: Sequence[Key] = (KEY1,)) -> Any:
    local = LocalNode("a", ["10.0.0.1"] + (["fd00::1"] if dual_stack else []), boot_id=BOOT_A,
                      subnets=["10.9.0.0/24"] if routed else [])
    peers = [Peer("p%d" % index, ["10.0.0.%d" % (index + 2)] + (["fd00::%x" % (index + 2)] if dual_stack else []),
                  boot_id=BOOTS[index]) for index in range(4)]
    return build_desired(local, peers, list(keys), options)


def plan_on_dump(desired: Any, states_: Sequence[XfrmState], policies_: Sequence[XfrmPolicy], **dump_kw: Any) -> Any:
    """``reconcile`` of ``desired`` against the entries as the kernel would dump them (the
    PlanError when it refuses)."""
    try:
        return reconcile(desired, [decoded_state(state) for state in states_],
                         [decoded_policy(policy, **dump_kw) for policy in policies_])
    except PlanError as error:
        return error


@pytest.mark.parametrize("case", ["v4", "dual-stack-routed", "cilium-marks", "two-keys-auth-enc", "inbound-phase"])
def test_converged_node_plans_no_change(case: str) -> None:
    desired = {
        "v4": mesh,
        "dual-stack-routed": lambda: mesh(dual_stack=True, routed=True),
        "cilium-marks": lambda: mesh(PlanOptions(marks="cilium"), dual_stack=True, keys=(KEY1, KEY2)),
        "two-keys-auth-enc": lambda: mesh(PlanOptions(out_spi=2), keys=(KEY1, KEY2)),
        "inbound-phase": lambda: mesh(PlanOptions(phase="inbound")),
    }[case]()
    plan = plan_on_dump(desired, desired.states, desired.policies)
    assert isinstance(plan, Plan) and not plan.changes and not plan.operations
    total = len(desired.states) + len(desired.policies)
    assert len(plan.unchanged) == total and plan.kept == ()
    counts = plan.counts()
    assert counts["sas"]["unchanged"] + counts["policies"]["unchanged"] == total


def test_converged_with_foreign_entries_and_kernel_spellings() -> None:
    desired = mesh()
    foreign_state = XfrmState(src="192.0.2.1", dst="192.0.2.2", spi=0x99, reqid=4242,
                              aead=Algorithm(ALGO_AEAD, GCM, b"f" * 20, 128))
    foreign_policy = XfrmPolicy(selector=selector_between("192.0.2.0/24", "0.0.0.0/0"), dir=DIR_IN, priority=5)
    installed_policies = [p._replace(mark=None) for p in desired.policies] + [foreign_policy]
    plan = plan_on_dump(desired, list(desired.states) + [foreign_state], installed_policies, share=2)
    assert isinstance(plan, Plan) and not plan.changes
    assert (plan.foreign_states, plan.foreign_policies) == (1, 1)


def _one_field_changes(obj: Any) -> List[Tuple[str, Any]]:
    """Single-field changes of an installed entry that the kernel can hold and the codec
    carries (the codec's own round trip is tested elsewhere)."""
    changes = []
    for path, changed in _field_changes(obj):
        if path.startswith(("selector.family", "lifetime")) or path in ("src", "dst", "esn", "flags"):
            continue
        if path.startswith("templates") and path.endswith(("src", "dst", "share")):
            continue  # share is not stored; addresses are tested below
        if path.endswith(("name", "kind")) or path == "selector.saddr" or path == "selector.daddr":
            continue
        changes.append((path, changed))
    if isinstance(obj, XfrmState):
        changes += [("src", obj._replace(src="10.0.0.99")),
                    ("esn", obj._replace(esn=not obj.esn)),
                    ("flags", obj._replace(flags=obj.flags | 4)),
                    ("aead.name", obj._replace(aead=obj.aead._replace(name="rfc4543(gcm(aes))"))),
                    ("lifetime", obj._replace(lifetime=Lifetime(soft_byte_limit=5))),
                    ("selector", obj._replace(selector=selector_between("10.0.0.0/8", "0.0.0.0/0")))]
    else:
        template = obj.templates[0] if obj.templates else None
        changes += [("lifetime", obj._replace(lifetime=Lifetime(hard_packet_limit=5))),
                    ("flags", obj._replace(flags=1))]
        if template is not None:
            changes += [("templates[0].src", obj._replace(templates=(template._replace(src="10.0.0.99"),)))]
    return changes


def _sample(desired: Any) -> List[Tuple[str, int, Any]]:
    """(kind, index, changed entry) for every one-field change of one SA and of one encrypt
    policy and one bypass policy of ``desired``."""
    cases: List[Tuple[str, int, Any]] = []
    state_index = 1
    for path, changed in _one_field_changes(desired.states[state_index]):
        cases.append(("state " + path, state_index, changed))
    templated = next(i for i, p in enumerate(desired.policies) if p.templates and p.dir == DIR_IN)
    bypass = next(i for i, p in enumerate(desired.policies) if not p.templates)
    for index in (templated, bypass):
        for path, changed in _one_field_changes(desired.policies[index]):
            cases.append(("policy %d %s" % (index, path), index, changed))
    return cases


@pytest.mark.parametrize("marks", ["none", "cilium"])
def test_any_one_field_difference_is_detected_and_fixed(marks: str) -> None:
    desired = mesh(PlanOptions(marks=marks), keys=(KEY1, KEY2))
    cases = _sample(desired)
    assert len(cases) > 40
    for label, index, changed in cases:
        states_ = list(desired.states)
        policies_ = list(desired.policies)
        if label.startswith("state"):
            states_[index] = changed
        else:
            policies_[index] = changed
        plan = plan_on_dump(desired, states_, policies_)
        if isinstance(plan, PlanError):
            continue  # e.g. a changed entry now held by a foreign entry: refused, never overwritten
        assert plan.operations, label
        applied = {(op.verb.value, op.entry) for op in plan.operations}
        wanted = desired.states[index] if label.startswith("state") else desired.policies[index]
        assert ("add", wanted) in applied or ("update", wanted) in applied, label


def test_missing_extra_duplicate_and_foreign_entries_are_found() -> None:
    desired = mesh(keys=(KEY1, KEY2), options=PlanOptions(out_spi=2))
    old_key_sa = desired.states[0]._replace(spi=desired.states[0].spi ^ 0x70000000)
    scenarios = {
        "missing SA": (desired.states[1:], desired.policies),
        "missing policy": (desired.states, desired.policies[:-1]),
        "extra owned SA": (list(desired.states) + [old_key_sa], desired.policies),
        "SA dumped twice": (list(desired.states) + [desired.states[0]], desired.policies),
        "foreign SA at a desired identity": (
            [desired.states[0]._replace(reqid=4242)] + list(desired.states[1:]), desired.policies),
        "foreign policy at a desired identity": (
            desired.states, [desired.policies[-1]._replace(templates=(), priority=5)] + list(desired.policies[:-1])),
        "empty kernel": ((), ()),
    }
    for label, (states_, policies_) in scenarios.items():
        plan = plan_on_dump(desired, states_, policies_)
        if label.startswith("foreign"):
            assert isinstance(plan, PlanError), label
        else:
            assert plan.changed != (label == "SA dumped twice"), label


def test_desired_sets_that_cannot_be_reached_are_refused() -> None:
    desired = mesh()
    twice = dataclasses.replace(desired, states=desired.states + desired.states[:1])
    same_identity = dataclasses.replace(desired, policies=desired.policies + (
        desired.policies[-1]._replace(priority=desired.policies[-1].priority + 1),))
    for candidate in (twice, same_identity):
        assert isinstance(plan_on_dump(candidate, candidate.states, candidate.policies), PlanError)
    not_owned = dataclasses.replace(desired, states=desired.states + (desired.states[0]._replace(spi=5, reqid=4242),))
    assert isinstance(plan_on_dump(not_owned, not_owned.states, not_owned.policies), PlanError)


def test_teardown_of_a_clean_node_is_a_no_op_and_of_a_meshed_one_is_not() -> None:
    present = mesh()
    absent = mesh(PlanOptions(state="absent"))
    assert not plan_on_dump(absent, (), ()).changes
    plan = plan_on_dump(absent, present.states, present.policies)
    assert plan.changes and {change.kind for change in plan.changes} == {ChangeKind.DELETE}


def test_unchanged_and_before_are_equal_to_the_installed_entries() -> None:
    desired = mesh(dual_stack=True)
    installed_states = [decoded_state(state) for state in desired.states]
    installed_policies = [decoded_policy(policy) for policy in desired.policies]
    plan = reconcile(desired, installed_states, installed_policies)
    installed = installed_states + installed_policies
    assert list(plan.before) == installed  # equal by value, in dump order
    assert sorted(plan.unchanged, key=repr) == sorted(installed, key=repr)
    assert plan.after == tuple(desired.states) + tuple(desired.policies)
    assert plan.kept == () and plan.changes == ()


# ---------------------------------------------------------------------------------------
# Address parsing: the C library's parser stands in for ipaddress's; it must accept exactly
# the same texts and give the same canonical form.

_ADDRESS_ALPHABET = "0123456789abcdefABCDEF:.%x -"


@settings(max_examples=3000, deadline=None)
@given(st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda address: address.exploded.upper()),
    st.ip_addresses(v=4).map(lambda address: "::ffff:" + str(address)),
    st.text(alphabet=_ADDRESS_ALPHABET, max_size=45),
    st.lists(st.integers(0, 300), min_size=3, max_size=5).map(lambda parts: ".".join("%03d" % p for p in parts)),
))
def test_parsed_address_agrees_with_ipaddress(text):
    model._parsed_address.cache_clear()
    try:
        expected = str(ipaddress.ip_address(text))
    except ValueError:
        expected = None
    try:
        found = str(model.parsed_address(text))
    except ValueError:
        found = None
    assert found == expected, text
