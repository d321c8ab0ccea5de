# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of records and of the no-op fast path (issue 7, P2).

A record is an entry's compared content as a flat tuple (``_xfrm_model.state_record`` /
``policy_record``); the codec reads records straight from dump messages, and
``_reconcile.converged_plan`` recognises a converged node by comparing records. The fast
path is only allowed to answer when ``reconcile`` would give the same plan, so:

* records equal exactly when objects are equal, and every single-field change shows;
* the codec's records equal the records of the objects it decodes, for any message;
* canonical records are the records of normalised objects;
* ``converged_plan`` equals ``reconcile`` on a converged node (with foreign entries too),
  and declines (None) whenever any entry differs in any one field, is missing, extra,
  duplicated or foreign where a desired entry belongs; ``reconcile`` then fixes it.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any, Callable, List, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils import _reconcile as R
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, FORM_AUTH_ENC, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._planner import (
    LocalNode,
    Peer,
    PlanError,
    PlanOptions,
    build_desired,
    normalise_policy,
    normalise_state,
    reconcile,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm_model import (
    AF_INET,
    AF_INET6,
    ALGO_AEAD,
    DIR_IN,
    DIR_OUT,
    INFINITE_LIFETIME,
    KIND_POLICY,
    KIND_STATE,
    Algorithm,
    Lifetime,
    Mark,
    Selector,
    StateCounters,
    Template,
    XfrmPolicy,
    XfrmState,
    from_fields,
    kernel_identity,
    policy_record,
    record_identity,
    state_record,
    with_defaults,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.test_xfrm_codec import (
    policies,
    states,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SA_FLAG_AF_UNSPEC = 32
SA_FLAG_ESN = 128
USERSA_INFO = S.USERSA_INFO.size
CURLFT = S.USERSA_INFO.offset_of("curlft")
STATS = S.USERSA_INFO.offset_of("stats")
SEQ = S.USERSA_INFO.offset_of("seq")
SEL_FAMILY = S.SELECTOR.offset_of("family")
POLICY_INDEX = S.USERPOLICY_INFO.offset_of("index")
POLICY_DIR = S.USERPOLICY_INFO.offset_of("dir")
TEMPLATE_SHARE = S.USER_TMPL.offset_of("share")


# ---------------------------------------------------------------------------------------
# Dump-like messages (what the kernel sends back), built with the codec and patched


def _attr(attr_type: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, attr_type) + payload + b"\0" * (-length % 4)


def dumped_state(state: XfrmState, fill_family: bool = True, counters: Tuple[int, ...] = (7, 3, 1700000000, 5),
                 extra: bool = True, seq: int = 99) -> bytes:
    """A NEWSA as a dump carries ``state``: selector family filled in, counters, and
    attributes the model does not hold (lifetime counters, last use, extra flags)."""
    payload = bytearray(C.encode_newsa(state))
    if state.selector is None and fill_family:
        struct.pack_into("=H", payload, SEL_FAMILY, state.family)
    struct.pack_into("=QQQQ", payload, CURLFT, *counters)
    struct.pack_into("=III", payload, STATS, 1, 2, 3)
    struct.pack_into("=I", payload, SEQ, 17)
    tail = b""
    if extra:
        tail = (_attr(S.XFRMA_LTIME_VAL, struct.pack("=QQQQ", *counters)) + _attr(S.XFRMA_LASTUSED, struct.pack("=Q", 9))
                + _attr(S.XFRMA_SA_EXTRA_FLAGS, struct.pack("=I", 0)))
        if state.auth is not None:  # the kernel reports the plain AUTH next to AUTH_TRUNC
            auth = state.auth
            tail += _attr(S.XFRMA_ALG_AUTH, S.ALGO.struct.pack(auth.name.encode(), len(auth.key) * 8) + auth.key)
    # As the kernel orders them: extra flags, last use and the like before the algorithms.
    return C.frame(S.XFRM_MSG_NEWSA, S.NLM_F_MULTI, seq, bytes(payload[:USERSA_INFO]) + tail
                   + bytes(payload[USERSA_INFO:]))


def dumped_policy(policy: XfrmPolicy, index: int = 0x1234, share: int = 0, seq: int = 99) -> bytes:
    payload = bytearray(C.encode_newpolicy(policy))
    struct.pack_into("=I", payload, POLICY_INDEX, index)
    if share and policy.templates:
        offset = payload.find(struct.pack("=HH", 4 + 64 * len(policy.templates), S.XFRMA_TMPL)) + 4
        for position in range(len(policy.templates)):
            payload[offset + 64 * position + TEMPLATE_SHARE] = share
    return C.frame(S.XFRM_MSG_NEWPOLICY, S.NLM_F_MULTI, seq, bytes(payload))


class Dump:
    """Dumped entries as the kernel adapter hands them over: records, and decoding on request."""

    def __init__(self, messages: Sequence[bytes], read_record: Callable[..., Any], decode: Callable[..., Any]) -> None:
        self.messages = [m for m in messages if read_record(m, 16, len(m)) is not None]
        self.records = [read_record(m, 16, len(m)) for m in self.messages]
        self._decode = decode
        self.decoded: List[int] = []

    def at(self, index: int) -> Any:
        self.decoded.append(index)
        message = self.messages[index]
        return self._decode(message, 16, len(message))

    def objects(self) -> List[Any]:
        return [self._decode(m, 16, len(m)) for m in self.messages]


def state_dump(states_: Sequence[XfrmState], **kw: Any) -> Dump:
    return Dump([dumped_state(s, **kw) for s in states_], C.decode_state_record, C.decode_state)


def policy_dump(policies_: Sequence[XfrmPolicy], **kw: Any) -> Dump:
    return Dump([dumped_policy(p, **kw) for p in policies_], C.decode_policy_record, C.decode_policy)


# ---------------------------------------------------------------------------------------
# Records equal exactly when objects are equal


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


def _field_changes(obj: Any) -> List[Tuple[str, Any]]:
    """(path, changed object) for every compared field, nested ones included."""
    changes: List[Tuple[str, Any]] = []
    for field in dataclasses.fields(obj):
        if not field.compare:
            continue
        value = getattr(obj, field.name)
        if dataclasses.is_dataclass(value):
            for path, inner in _field_changes(value):
                changes.append((field.name + "." + path, dataclasses.replace(obj, **{field.name: inner})))
        elif isinstance(value, tuple):
            for position, item in enumerate(value):
                for path, inner in _field_changes(item):
                    items = list(value)
                    items[position] = inner
                    changes.append(("%s[%d].%s" % (field.name, position, path),
                                    dataclasses.replace(obj, **{field.name: tuple(items)})))
        elif value is not None:
            changes.append((field.name, dataclasses.replace(obj, **{field.name: _other(value)})))
    return changes


FULL_STATE = XfrmState(
    src="192.0.2.1", dst="192.0.2.2", spi=0x10000001, reqid=7, replay_window=1024, esn=True, flags=4,
    selector=Selector.between("10.0.0.0/24", "10.1.0.0/24", proto=6, sport=1, dport=2),
    aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", bytes(range(20)), 128), mark=Mark(1, 2), output_mark=Mark(3, 4),
    if_id=5, lifetime=Lifetime(1, 2, 3, 4, 5, 6, 7, 8),
    counters=StateCounters(1, 2, 3, 4, 5, 6, 7, 8, 9))
FULL_POLICY = XfrmPolicy(
    selector=Selector.between("10.0.0.0/24", "10.1.0.0/24", proto=17, sport=53, dport=54), dir=DIR_OUT, action=1,
    priority=100, templates=(Template(src="192.0.2.1", dst="192.0.2.2", reqid=7, spi=3, optional=True, share=1),
                             Template(src="192.0.2.3", dst="192.0.2.4", reqid=8)),
    mark=Mark(1, 2), ptype=1, if_id=5, flags=1, lifetime=Lifetime(1, 2, 3, 4, 5, 6, 7, 8), index=77)


@pytest.mark.parametrize("obj, record", [(FULL_STATE, state_record), (FULL_POLICY, policy_record)],
                         ids=["state", "policy"])
def test_every_single_field_change_changes_the_record(obj: Any, record: Callable[[Any], Any]) -> None:
    changes = _field_changes(obj)
    assert len(changes) > 25
    for path, changed in changes:
        assert changed != obj, path
        assert record(changed) != record(obj), path
    # Fields outside equality are outside the record.
    assert record(dataclasses.replace(obj, **({"counters": None} if isinstance(obj, XfrmState) else {"index": 0}))) \
        == record(obj)


@PROPERTY
@given(states(), st.data())
def test_state_records_equal_exactly_when_states_are_equal(state: XfrmState, data: Any) -> None:
    changes = _field_changes(state)
    other = data.draw(st.sampled_from([state] + [changed for _path, changed in changes]))
    assert (state_record(state) == state_record(other)) == (state == other)
    assert record_identity(KIND_STATE, state_record(state)) == kernel_identity(state)
    assert (kernel_identity(state) == kernel_identity(other)) == (state.key() == other.key())


@PROPERTY
@given(policies(), st.data())
def test_policy_records_equal_exactly_when_policies_are_equal(policy: XfrmPolicy, data: Any) -> None:
    changes = _field_changes(policy)
    other = data.draw(st.sampled_from([policy] + [changed for _path, changed in changes]))
    assert (policy_record(policy) == policy_record(other)) == (policy == other)
    assert record_identity(KIND_POLICY, policy_record(policy)) == kernel_identity(policy)
    assert (kernel_identity(policy) == kernel_identity(other)) == (policy.key() == other.key())


def test_fast_constructors_build_the_same_objects() -> None:
    for obj in (FULL_STATE, FULL_POLICY, FULL_POLICY.templates[0], FULL_POLICY.selector, FULL_STATE.aead):
        values = {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}
        built = from_fields(type(obj), dict(values))
        assert built == obj and hash(built) == hash(obj) and repr(built) == repr(obj)
        with pytest.raises(dataclasses.FrozenInstanceError):
            built.spi = 1  # type: ignore[union-attr]
    assert with_defaults(XfrmState, src="192.0.2.1", dst="192.0.2.2", spi=1) == XfrmState("192.0.2.1", "192.0.2.2", 1)
    assert Selector.between("10.0.0.1/24", "::/0".replace("::", "0.0.0.0"), 6, dport=22) == Selector(
        AF_INET, "10.0.0.0", 24, "0.0.0.0", 0, 6, 0, 0, 22, 0xFFFF)


# ---------------------------------------------------------------------------------------
# The codec's records are the records of the objects it decodes


@PROPERTY
@given(states(), st.booleans(), st.booleans(), st.integers(0, 3))
def test_decoded_state_record_is_the_record_of_the_decoded_state(state: XfrmState, fill: bool, extra: bool,
                                                                 flag_bits: int) -> None:
    state = dataclasses.replace(state, flags=state.flags | (SA_FLAG_AF_UNSPEC if flag_bits & 1 else 0))
    message = dumped_state(state, fill_family=fill, extra=extra)
    decoded = C.decode_state(message, 16, len(message))
    assert C.decode_state_record(message, 16, len(message)) == state_record(decoded)


@PROPERTY
@given(policies(), st.integers(0, 3), st.integers(0, 5))
def test_decoded_policy_record_is_the_record_of_the_decoded_policy(policy: XfrmPolicy, share: int,
                                                                   direction: int) -> None:
    message = bytearray(dumped_policy(policy, share=share))
    message[16 + POLICY_DIR] = direction  # 3..5: per-socket policies, skipped by both
    message = bytes(message)
    decoded = C.decode_policy(message, 16, len(message))
    record = C.decode_policy_record(message, 16, len(message))
    assert record == (None if decoded is None else policy_record(decoded))


def test_decoded_records_of_golden_dump_like_messages() -> None:
    auth_state = dataclasses.replace(FULL_STATE, aead=None, esn=False, replay_window=32,
                                     auth=Algorithm("auth", "hmac(sha256)", bytes(32), 128),
                                     crypt=Algorithm("crypt", "cbc(aes)", bytes(16)))
    for state in (FULL_STATE, auth_state, dataclasses.replace(FULL_STATE, selector=None, mark=None)):
        message = dumped_state(state)
        assert C.decode_state_record(message, 16, len(message)) == state_record(C.decode_state(message, 16,
                                                                                               len(message)))


# ---------------------------------------------------------------------------------------
# Canonical records are the records of normalised objects


@st.composite
def unnormalised_states(draw: Any) -> XfrmState:
    state = draw(states())
    changes = {}
    if draw(st.booleans()):
        changes["mark"] = Mark(0, 0)
    if draw(st.booleans()):
        changes["output_mark"] = Mark(0, 0)
    changes["flags"] = state.flags | draw(st.sampled_from([0, SA_FLAG_ESN, SA_FLAG_AF_UNSPEC,
                                                           SA_FLAG_ESN | SA_FLAG_AF_UNSPEC]))
    if draw(st.booleans()):
        changes["counters"] = StateCounters(1, 2)
    if draw(st.booleans()):
        anywhere = "::" if ":" in state.dst else "0.0.0.0"
        changes["selector"] = Selector(state.family, anywhere, 0, anywhere, 0)
    return dataclasses.replace(state, **changes)


@PROPERTY
@given(unnormalised_states())
def test_canonical_state_record_is_the_record_of_the_normalised_state(state: XfrmState) -> None:
    normal = normalise_state(state)
    assert R.canonical_state_record(state_record(state)) == state_record(normal)
    assert normalise_state(normal) is normal  # canonical objects come back as they are
    dumped_form = R._as_dumped_state_record(state_record(normal))
    assert R.canonical_state_record(dumped_form) == state_record(normal)


@PROPERTY
@given(policies(), st.booleans())
def test_canonical_policy_record_is_the_record_of_the_normalised_policy(policy: XfrmPolicy, zero_mark: bool) -> None:
    if zero_mark:
        policy = dataclasses.replace(policy, mark=Mark(0, 0))
    normal = normalise_policy(policy)
    assert R.canonical_policy_record(policy_record(policy)) == policy_record(normal)
    assert normalise_policy(normal) is normal


# ---------------------------------------------------------------------------------------
# converged_plan: the plan of reconcile on a converged node, None otherwise

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


def both_plans(desired: Any, states_: Sequence[XfrmState], policies_: Sequence[XfrmPolicy],
               **dump_kw: Any) -> Tuple[Optional[Any], Any, Dump, Dump]:
    """(converged_plan's answer, reconcile's plan or PlanError) for the same dump."""
    state_entries = state_dump(states_)
    policy_entries = policy_dump(policies_, **dump_kw)
    fast = R.converged_plan(desired, state_entries.records, policy_entries.records, state_entries.at,
                            policy_entries.at)
    try:
        full = reconcile(desired, state_entries.objects(), policy_entries.objects())
    except PlanError as error:
        full = error
    return fast, full, state_entries, policy_entries


@pytest.mark.parametrize("case", ["v4", "dual-stack-routed", "cilium-marks", "two-keys-auth-enc", "inbound-phase"])
def test_converged_node_gives_reconciles_plan_without_decoding(case: str) -> None:
    desired = {
        "v4": mesh,
        "dual-stack-routed": lambda: mesh(dual_stack=True, routed=True),
        "cilium-marks": lambda: mesh(PlanOptions(marks="cilium"), dual_stack=True, keys=(KEY1, KEY2)),
        "two-keys-auth-enc": lambda: mesh(PlanOptions(out_spi=2), keys=(KEY1, KEY2)),
        "inbound-phase": lambda: mesh(PlanOptions(phase="inbound")),
    }[case]()
    fast, full, state_entries, policy_entries = both_plans(desired, desired.states, desired.policies)
    assert fast is not None
    plan, other_states = fast
    assert plan == full and not plan.operations and other_states == []
    assert state_entries.decoded == [] and policy_entries.decoded == []
    assert plan.counts() == full.counts()


def test_converged_with_foreign_entries_and_kernel_spellings() -> None:
    desired = mesh()
    foreign_state = XfrmState(src="192.0.2.1", dst="192.0.2.2", spi=0x99, reqid=4242,
                              aead=Algorithm(ALGO_AEAD, GCM, b"f" * 20, 128))
    foreign_policy = XfrmPolicy(selector=Selector.between("192.0.2.0/24", "0.0.0.0/0"), dir=DIR_IN, priority=5)
    installed_policies = [dataclasses.replace(p, mark=None) for p in desired.policies] + [foreign_policy]
    fast, full, state_entries, _policy_entries = both_plans(desired, list(desired.states) + [foreign_state],
                                                            installed_policies, share=2)
    assert fast is not None
    plan, other_states = fast
    assert plan == full and (plan.foreign_states, plan.foreign_policies) == (1, 1)
    assert other_states == [foreign_state] and state_entries.decoded == [len(desired.states)]


def _one_field_changes(obj: Any) -> List[Tuple[str, Any]]:
    """Single-field changes of an installed entry that the kernel can hold and the codec
    carries (the codec's own round trip is tested elsewhere)."""
    changes = []
    for path, changed in _field_changes(obj):
        if path.startswith(("counters", "selector.family", "lifetime")) or path in ("src", "dst", "esn", "flags"):
            continue
        if path.startswith("templates") and path.endswith(("src", "dst", "share")):
            continue  # share is not stored; addresses are tested below
        if path.endswith(("name", "kind")) or path == "selector.saddr" or path == "selector.daddr":
            continue
        changes.append((path, changed))
    if isinstance(obj, XfrmState):
        changes += [("src", dataclasses.replace(obj, src="10.0.0.99")),
                    ("esn", dataclasses.replace(obj, esn=not obj.esn)),
                    ("flags", dataclasses.replace(obj, flags=obj.flags | 4)),
                    ("aead.name", dataclasses.replace(obj, aead=dataclasses.replace(obj.aead, name="rfc4543(gcm(aes))"))),
                    ("lifetime", dataclasses.replace(obj, lifetime=Lifetime(soft_byte_limit=5))),
                    ("selector", dataclasses.replace(obj, selector=Selector.between("10.0.0.0/8", "0.0.0.0/0")))]
    else:
        template = obj.templates[0] if obj.templates else None
        changes += [("lifetime", dataclasses.replace(obj, lifetime=Lifetime(hard_packet_limit=5))),
                    ("flags", dataclasses.replace(obj, flags=1))]
        if template is not None:
            changes += [("templates[0].src", dataclasses.replace(obj, templates=(
                dataclasses.replace(template, src="10.0.0.99"),)))]
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
        fast, full, _states, _policies = both_plans(desired, states_, policies_)
        assert fast is None, label
        if isinstance(full, PlanError):
            continue  # e.g. a changed entry now held by a foreign entry: refused, never overwritten
        assert full.operations, label
        applied = {(op.verb, op.obj) for op in full.operations}
        wanted = desired.states[index] if label.startswith("state") else desired.policies[index]
        assert ("add", wanted) in applied or ("update", wanted) in applied, label


def test_missing_extra_duplicate_and_foreign_entries_are_left_to_reconcile() -> None:
    desired = mesh(keys=(KEY1, KEY2), options=PlanOptions(out_spi=2))
    old_key_sa = dataclasses.replace(desired.states[0], spi=desired.states[0].spi ^ 0x70000000)
    scenarios = {
        "missing SA": (desired.states[1:], desired.policies),
        "missing policy": (desired.states, desired.policies[:-1]),
        "extra owned SA": (list(desired.states) + [old_key_sa], desired.policies),
        "SA dumped twice": (list(desired.states) + [desired.states[0]], desired.policies),
        "foreign SA at a desired identity": (
            [dataclasses.replace(desired.states[0], reqid=4242)] + list(desired.states[1:]), desired.policies),
        "foreign policy at a desired identity": (
            desired.states, [dataclasses.replace(desired.policies[-1], templates=(), priority=5)]
            + list(desired.policies[:-1])),
        "empty kernel": ((), ()),
    }
    for label, (states_, policies_) in scenarios.items():
        fast, full, _states, _policies = both_plans(desired, states_, policies_)
        assert fast is None, label
        if label.startswith("foreign"):
            assert isinstance(full, PlanError), label
        else:
            assert full.changed or label == "SA dumped twice", label


def test_desired_sets_that_reconcile_refuses_are_left_to_it() -> None:
    desired = mesh()
    twice = dataclasses.replace(desired, states=desired.states + desired.states[:1])
    same_identity = dataclasses.replace(desired, policies=desired.policies + (
        dataclasses.replace(desired.policies[-1], priority=desired.policies[-1].priority + 1),))
    for candidate in (twice, same_identity):
        fast, full, _states, _policies = both_plans(candidate, candidate.states, candidate.policies)
        assert fast is None and isinstance(full, PlanError)
    not_owned = dataclasses.replace(desired, states=desired.states + (dataclasses.replace(
        desired.states[0], spi=5, reqid=4242),))
    fast, full, _states, _policies = both_plans(not_owned, not_owned.states, not_owned.policies)
    assert fast is None and isinstance(full, PlanError)


def test_teardown_of_a_clean_node_is_a_no_op_and_of_a_meshed_one_is_not() -> None:
    present = mesh()
    absent = mesh(PlanOptions(state="absent"))
    fast, full, _states, _policies = both_plans(absent, (), ())
    assert fast is not None and fast[0] == full and not full.operations
    fast, full, _states, _policies = both_plans(absent, present.states, present.policies)
    assert fast is None and full.operations


def test_unchanged_and_before_are_equal_to_the_installed_entries() -> None:
    desired = mesh(dual_stack=True)
    state_entries = state_dump(desired.states)
    policy_entries = policy_dump(desired.policies)
    plan, _other = R.converged_plan(desired, state_entries.records, policy_entries.records, state_entries.at,
                                    policy_entries.at)
    installed = [normalise_state(s) for s in state_entries.objects()] + [
        normalise_policy(p) for p in policy_entries.objects()]
    assert list(plan.before) == installed  # equal by value, in dump order

    def record(obj: Any) -> Any:
        return state_record(obj) if isinstance(obj, XfrmState) else policy_record(obj)

    assert sorted(map(record, plan.unchanged), key=repr) == sorted(map(record, installed), key=repr)
    assert plan.after == plan.unchanged and plan.kept == () and plan.changes == ()
    assert all(p.lifetime is INFINITE_LIFETIME for p in plan.after if isinstance(p, XfrmPolicy))
    assert {s.family for s in plan.before if isinstance(s, XfrmState)} == {AF_INET, AF_INET6}
