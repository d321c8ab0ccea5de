# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""From the kernel's SAD/SPD to the desired set: the delta on owned entries, safely ordered.

**Comparison.** Entries are paired by kernel identity (``XfrmState.key()``: family, dst, SPI,
proto, mark; ``XfrmPolicy.key()``: type, dir, if_id, selector, mark), then compared by content
after ``normalise_state``/``normalise_policy`` (the one place that lists how a dumped
object may differ from a built one). Kernel-filled fields (counters, policy index) are not
part of equality.

**Decisions per entry.**

* desired, not in the kernel → ``add``.
* desired, in the kernel, owned, equal → unchanged (no operation).
* desired, in the kernel, owned, different: a policy → ``update`` (UPDPOLICY replaces it in
  place, keeping traffic covered; a policy is never deleted and re-added); an SA →
  ``delete`` then ``add``, adjacent, because UPDSA cannot change keys, algorithms, reqid or
  mode. The gap between the two is drop-only: OUT templates are required (no SA → drop)
  and an inbound packet without its SA is dropped too.
* desired, and its identity is held by a **foreign** entry → ``PlanError`` naming both
  (masked): never overwrite someone else's entry.
* an SA whose kernel lookup would collide with an installed SA of another mark (the kernel
  matches ``(new.v & new.m & old.m) == old.v`` when adding) is treated like an identity
  match: foreign → ``PlanError``, owned → the old one is deleted right before the add.
* owned, in the kernel, not desired → ``delete`` when ``purge`` is on, except entries that
  are **kept**: those of frozen peers (an SA whose src or dst, or a policy whose template src
  or dst, is an address of a peer without boot id), and, when ``outbound`` is off, OUT SAs
  and OUT policies (that mode is the first phase of a rollout: re-running it on a node that
  already encrypts must not strip its encryption, since deleting an OUT policy sends
  plaintext). With ``purge`` off, every such entry is kept.
* ``state: absent`` (``_desired`` returns an empty ``teardown`` set with nobody frozen):
  every owned entry is deleted, ``purge``, frozen peers and ``outbound`` notwithstanding:
  teardown means teardown.
* foreign entries are never touched, whatever their content.

**Safe order** (DESIGN §4), one flat list in phases; within a phase, sorted by peer name,
then address family, peer address, SPI, then the masked line (deterministic):

1. bypass policies (add/update) — first of all, so that no encrypt policy added later in
   the run (an IN policy at level required, an OUT policy) can ever cover the management
   connection that carries this very run, even if the run stops half-way;
2. IN SAs (add, re-create) — a peer may start sending as soon as its OUT side exists;
3. IN/FWD policies (add/update);
4. OUT SAs (add, re-create) — before anything refers to them;
5. OUT policies (add/update) — egress switches only once its SA exists;
6. removals: OUT policies, OUT SAs, IN/FWD policies, IN SAs, bypass policies last (so the
   management connection stays exempt until every encrypt policy is gone). OUT before IN:
   nothing is sent that the other side can no longer read.
"""

from __future__ import annotations

import dataclasses
from itertools import repeat
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._desired import (
    ROLE_BYPASS,
    ROLE_IN_POLICY,
    ROLE_IN_SA,
    ROLE_OUT_POLICY,
    ROLE_OUT_SA,
    DesiredSet,
    remote_address,
    role_of,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._ownership import (
    DEFAULT_REQID,
    PlanError,
    is_owned_policy,
    is_owned_state,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._render import render
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm_model import (
    DIR_OUT,
    KIND_POLICY,
    KIND_STATE,
    PR_MARK,
    PR_TEMPLATES,
    SA_FLAG_ESN,
    SR_DST,
    SR_ESN,
    SR_FLAGS,
    SR_MARK,
    SR_OUTPUT_MARK,
    SR_SELECTOR,
    Mark,
    Selector,
    XfrmPolicy,
    XfrmState,
    any_address,
    family_of,
    kernel_identity,
    policy_record,
    record_identity,
    selector_record,
    state_record,
)

XfrmObject = Union[XfrmState, XfrmPolicy]

VERB_ADD = "add"
VERB_UPDATE = "update"
VERB_DELETE = "delete"

CHANGE_ADD = "add"
CHANGE_UPDATE = "update"  # a policy replaced in place
CHANGE_REPLACE = "replace"  # an SA deleted and re-added
CHANGE_DELETE = "delete"

# The kernel's flag meaning "this SA's selector is deliberately family 0": without it an
# all-zero selector gets the SA's family copied in (XFRM_STATE_AF_UNSPEC).
SA_FLAG_AF_UNSPEC = 32

# Phases of the safe order.
_ADD_PHASES = {ROLE_BYPASS: 0, ROLE_IN_SA: 1, ROLE_IN_POLICY: 2, ROLE_OUT_SA: 3, ROLE_OUT_POLICY: 4}
_DELETE_PHASES = {ROLE_OUT_POLICY: 5, ROLE_OUT_SA: 6, ROLE_IN_POLICY: 7, ROLE_IN_SA: 8, ROLE_BYPASS: 9}
_OUT_ROLES = (ROLE_OUT_SA, ROLE_OUT_POLICY)


@dataclasses.dataclass(frozen=True)
class PlannedOperation:
    """One kernel operation; the module converts it to the adapter's ``Operation``."""

    verb: str
    obj: XfrmObject

    def __repr__(self) -> str:  # masked: the default repr would be long, this one is readable
        return "PlannedOperation(%s %s)" % (self.verb, render(self.obj))


@dataclasses.dataclass(frozen=True)
class Change:
    """One entry's change, for reporting: ``before``/``after`` are None for add/delete."""

    kind: str
    role: str
    before: Optional[XfrmObject] = None
    after: Optional[XfrmObject] = None

    @property
    def is_state(self) -> bool:
        return isinstance(self.after if self.after is not None else self.before, XfrmState)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The ordered operations, and what the module reports about them.

    ``before``: owned entries in the kernel now; ``after``: owned entries once the plan is
    applied; ``unchanged``: desired entries already in place; ``kept``: owned entries that
    are not desired but stay (frozen peers, ``purge`` off, ``outbound`` off).
    ``foreign_states``/``foreign_policies`` count entries that were left alone as foreign.
    """

    operations: Tuple[PlannedOperation, ...] = ()
    changes: Tuple[Change, ...] = ()
    before: Tuple[XfrmObject, ...] = ()
    after: Tuple[XfrmObject, ...] = ()
    unchanged: Tuple[XfrmObject, ...] = ()
    kept: Tuple[XfrmObject, ...] = ()
    foreign_states: int = 0
    foreign_policies: int = 0
    warnings: Tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.operations)

    def counts(self) -> Dict[str, Dict[str, int]]:
        """``{"sas"|"policies": {"added", "updated", "removed", "unchanged", "kept"}}``.
        An SA re-created (delete + add) counts as updated."""
        counts = {kind: {"added": 0, "updated": 0, "removed": 0, "unchanged": 0, "kept": 0}
                  for kind in ("sas", "policies")}
        names = {CHANGE_ADD: "added", CHANGE_UPDATE: "updated", CHANGE_REPLACE: "updated",
                 CHANGE_DELETE: "removed"}
        for change in self.changes:
            counts["sas" if change.is_state else "policies"][names[change.kind]] += 1
        for obj in self.unchanged:
            counts["sas" if isinstance(obj, XfrmState) else "policies"]["unchanged"] += 1
        for obj in self.kept:
            counts["sas" if isinstance(obj, XfrmState) else "policies"]["kept"] += 1
        return counts


# --------------------------------------------------------------------------------------
# Normalisation: how a dumped entry can differ from a built one while meaning the same.


def _no_empty_mark(mark: Optional[Mark]) -> Optional[Mark]:
    # The kernel only reports XFRMA_MARK / XFRMA_SET_MARK when value or mask is non-zero, and
    # a mark 0/0 matches every packet exactly like no mark.
    if mark is not None and mark.value == 0 and mark.mask == 0:
        return None
    return mark


def normalise_state(state: XfrmState) -> XfrmState:
    """The canonical form of an SA. Rules (every one of them):

    * selector None (all-zero, family 0, as sent) → the zero selector of the SA's family, as
      the kernel stores it (it copies the SA family in unless flag af-unspec is set);
    * mark / output mark 0/0 → None (not reported by the kernel, means the same);
    * the ESN bit in ``flags`` → the ``esn`` field (the model keeps ESN out of ``flags``);
    * counters → None (kernel-filled; already outside equality, dropped so that reported
      objects are stable).

    An SA already in canonical form is returned as it is (values are immutable).
    """
    fields = state.__dict__
    selector = fields["selector"]
    flags = fields["flags"]
    mark = fields["mark"]
    output_mark = fields["output_mark"]
    if ((selector is not None or flags & SA_FLAG_AF_UNSPEC) and not flags & SA_FLAG_ESN and fields["counters"] is None
            and (mark is None or mark.value != 0 or mark.mask != 0)
            and (output_mark is None or output_mark.value != 0 or output_mark.mask != 0)):
        return state
    if selector is None and not flags & SA_FLAG_AF_UNSPEC:
        selector = _zero_selector(family_of(fields["dst"]))
    copy = _new_instance(XfrmState)
    values = dict(fields)
    values.update(selector=selector, mark=_no_empty_mark(mark), output_mark=_no_empty_mark(output_mark),
                  esn=fields["esn"] or bool(flags & SA_FLAG_ESN), flags=flags & ~SA_FLAG_ESN, counters=None)
    _set_attribute(copy, "__dict__", values)
    return copy


def normalise_policy(policy: XfrmPolicy) -> XfrmPolicy:
    """The canonical form of a policy. Rules (every one of them):

    * mark 0/0 → None (as for SAs);
    * template ``share`` → 0 (validated by the kernel but not stored; dumps report 0).

    Template family needs no rule (the model derives it from the template addresses), and
    the index is outside equality and kept, since the adapter may delete by it. A policy
    already in canonical form is returned as it is (values are immutable).
    """
    mark = policy.mark
    templates = policy.templates
    empty_mark = mark is not None and mark.value == 0 and mark.mask == 0
    shared = False
    for template in templates:
        if template.share:
            shared = True
            break
    if not (empty_mark or shared):
        return policy
    if shared:
        templates = tuple(_replace(t, share=0) if t.share else t for t in templates)
    return _replace(policy, mark=None if empty_mark else mark, templates=templates)


_new_instance = object.__new__
_set_attribute = object.__setattr__


def _replace(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` for the model's frozen value classes, several times faster.

    Valid because ``XfrmState``, ``XfrmPolicy`` and ``Template`` have no ``__post_init__``,
    no ``InitVar`` and no ``init=False`` field: the copy is exactly what ``replace`` builds.
    A plan normalises every dumped entry, most of them by a copy.
    """
    copy = _new_instance(type(obj))
    values = dict(obj.__dict__)
    values.update(changes)
    _set_attribute(copy, "__dict__", values)
    return copy


_zero_selectors: Dict[int, Selector] = {}


def _zero_selector(family: int) -> Selector:
    """The selector the kernel stores for an SA sent without one (shared: immutable)."""
    selector = _zero_selectors.get(family)
    if selector is None:
        anywhere = any_address(family)
        selector = _zero_selectors[family] = Selector(family, anywhere, 0, anywhere, 0)
    return selector


_NO_MARK = (0, 0)
_TEMPLATE_SHARE = 7  # position of ``share`` in a template record


def canonical_state_record(record: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """``state_record(normalise_state(s))`` for ``record == state_record(s)``: the rules of
    ``normalise_state`` applied to a record (the same tuple back when none applies)."""
    selector = record[SR_SELECTOR]
    flags = record[SR_FLAGS]
    mark = record[SR_MARK]
    output_mark = record[SR_OUTPUT_MARK]
    if ((selector is not None or flags & SA_FLAG_AF_UNSPEC) and not flags & SA_FLAG_ESN and mark != _NO_MARK
            and output_mark != _NO_MARK):
        return record
    values = list(record)
    if selector is None and not flags & SA_FLAG_AF_UNSPEC:
        values[SR_SELECTOR] = _zero_selector_record(family_of(record[SR_DST]))
    if mark == _NO_MARK:
        values[SR_MARK] = None
    if output_mark == _NO_MARK:
        values[SR_OUTPUT_MARK] = None
    values[SR_ESN] = record[SR_ESN] or bool(flags & SA_FLAG_ESN)
    values[SR_FLAGS] = flags & ~SA_FLAG_ESN
    return tuple(values)


def canonical_policy_record(record: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """``policy_record(normalise_policy(p))`` for ``record == policy_record(p)``."""
    mark = record[PR_MARK]
    templates = record[PR_TEMPLATES]
    shared = False
    for template in templates:
        if template[_TEMPLATE_SHARE]:
            shared = True
            break
    if mark != _NO_MARK and not shared:
        return record
    values = list(record)
    if mark == _NO_MARK:
        values[PR_MARK] = None
    if shared:
        values[PR_TEMPLATES] = tuple(
            template[:_TEMPLATE_SHARE] + (0,) + template[_TEMPLATE_SHARE + 1:] if template[_TEMPLATE_SHARE]
            else template for template in templates)
    return tuple(values)


def _as_dumped_state_record(record: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """A canonical state record with a match-all selector of its own family written as None
    (as the codec reads it, flag af-unspec off): ``canonical_state_record`` maps it back."""
    selector = record[SR_SELECTOR]
    if (selector is None or record[SR_FLAGS] & SA_FLAG_AF_UNSPEC
            or selector != _zero_selector_record(family_of(record[SR_DST]))):
        return record
    return record[:SR_SELECTOR] + (None,) + record[SR_SELECTOR + 1:]


_zero_selector_records: Dict[int, Tuple[Any, ...]] = {}


def _zero_selector_record(family: int) -> Tuple[Any, ...]:
    record = _zero_selector_records.get(family)
    if record is None:
        record = _zero_selector_records[family] = selector_record(_zero_selector(family))
    return record


def normalise(obj: XfrmObject) -> XfrmObject:
    return normalise_state(obj) if isinstance(obj, XfrmState) else normalise_policy(obj)


# --------------------------------------------------------------------------------------
# Helpers


# The kernel identity of an entry: ``(type name,) + key()`` as a flat tuple of plain values.
_identity = kernel_identity


def _mark_pair(mark: Optional[Mark]) -> Tuple[int, int]:
    return (0, 0) if mark is None else (mark.value, mark.mask)


def _sa_slot(state: XfrmState) -> Tuple[object, ...]:
    """What the kernel's SA lookup matches exactly; the mark is matched under masks."""
    return (state.family, state.dst, state.spi, state.proto)


def sa_add_collides(new: XfrmState, installed: XfrmState) -> bool:
    """True when the kernel would refuse ``new`` with EEXIST because of ``installed``.

    The NEWSA duplicate check looks up (family, dst, SPI, proto) with the new SA's mark
    reduced to ``value & mask`` and finds an SA when ``(that & its mask) == its value``.
    """
    if _sa_slot(new) != _sa_slot(installed):
        return False
    new_value, new_mask = _mark_pair(new.mark)
    old_value, old_mask = _mark_pair(installed.mark)
    return (new_value & new_mask & old_mask) == old_value


def belongs_to(obj: XfrmObject, addresses: FrozenSet[str]) -> bool:
    """True when an SA's src/dst or a policy's template src/dst is one of ``addresses``."""
    if isinstance(obj, XfrmState):
        return obj.src in addresses or obj.dst in addresses
    return any(t.src in addresses or t.dst in addresses for t in obj.templates)


def _infer_local_addresses(policies: Iterable[XfrmPolicy], reqid: int) -> Tuple[str, ...]:
    found: Set[str] = set()
    for policy in policies:
        for template in policy.templates:
            if template.reqid == reqid:
                found.add(template.src if policy.dir == DIR_OUT else template.dst)
    return tuple(sorted(found))


def _unique(objects: Iterable[XfrmObject], installed: Dict[Tuple[object, ...], XfrmObject]) -> List[XfrmObject]:
    """The first of each kernel identity among ``objects``, also entered in ``installed``."""
    unique: List[XfrmObject] = []
    for obj in objects:
        identity = _identity(obj)
        if identity not in installed:
            installed[identity] = obj
            unique.append(obj)
    return unique


def _refuse_duplicates(wanted: Sequence[XfrmObject], identities: Sequence[Tuple[object, ...]]) -> None:
    seen: Dict[Tuple[object, ...], int] = {}
    for index, identity in enumerate(identities):
        previous = seen.setdefault(identity, index)
        if previous != index:
            raise PlanError("two desired entries have the same kernel identity: %s and %s"
                            % (render(wanted[previous]), render(wanted[index])))


def _refuse_foreign(desired: XfrmObject, current: XfrmObject, owned_ids: Set[int]) -> None:
    if id(current) not in owned_ids:
        raise PlanError("cannot install %s: its place in the kernel is taken by an entry that "
                        "netsec.ipsec does not own: %s. Remove that entry or change the "
                        "addresses, subnets or reqid." % (render(desired), render(current)))


class _RenderedLater:
    """The masked line of an object as the last sort key, rendered only when the keys before
    it tie (a few entries per peer): same order as sorting by ``render(obj)``, without
    rendering every entry of a large plan."""

    __slots__ = ("obj", "_text")

    def __init__(self, obj: XfrmObject) -> None:
        self.obj = obj
        self._text: Optional[str] = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = render(self.obj)
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _RenderedLater) and self.text == other.text

    def __lt__(self, other: "_RenderedLater") -> bool:
        return self.text < other.text

    __hash__ = None  # type: ignore[assignment]


class _Orderer:
    """Places operations into phases and sorts each phase deterministically."""

    def __init__(self, local_addresses: Sequence[str], peer_of_address: Mapping[str, str]) -> None:
        self.local_addresses = tuple(local_addresses)
        self.peer_of_address = peer_of_address
        self.phases: Dict[int, List[Tuple[Tuple[object, ...], List[PlannedOperation], Change]]] = {}

    def role(self, obj: XfrmObject) -> str:
        return role_of(obj, self.local_addresses)

    def sort_key(self, obj: XfrmObject) -> Tuple[object, ...]:
        remote = remote_address(obj, self.local_addresses)
        peer = self.peer_of_address.get(remote, "") if remote else ""
        family = family_of(remote) if remote else (obj.selector.family if isinstance(obj, XfrmPolicy) else 0)
        if isinstance(obj, XfrmState):
            spi = obj.spi
        else:
            spi = obj.templates[0].spi if obj.templates else 0
        return (peer, family, remote, spi, _RenderedLater(obj))

    def put(self, phase: int, obj: XfrmObject, operations: List[PlannedOperation], change: Change) -> None:
        self.phases.setdefault(phase, []).append((self.sort_key(obj), operations, change))

    def result(self) -> Tuple[Tuple[PlannedOperation, ...], Tuple[Change, ...]]:
        operations: List[PlannedOperation] = []
        changes: List[Change] = []
        for phase in sorted(self.phases):
            for _sort_key, phase_operations, change in sorted(self.phases[phase], key=lambda item: item[0]):
                operations.extend(phase_operations)
                changes.append(change)
        return tuple(operations), tuple(changes)


# --------------------------------------------------------------------------------------
# The planner


def plan(current_states: Iterable[XfrmState], current_policies: Iterable[XfrmPolicy],
         desired_states: Iterable[XfrmState], desired_policies: Iterable[XfrmPolicy],
         frozen_peer_addresses: Iterable[str] = (), purge: bool = True, *,
         reqid: int = DEFAULT_REQID, local_addresses: Optional[Sequence[str]] = None,
         peer_of_address: Optional[Mapping[str, str]] = None, keep_outbound: bool = False,
         warnings: Sequence[str] = (), keep_outbound_addresses: Iterable[str] = (),
         keep_level_addresses: Iterable[str] = ()) -> Plan:
    """The ordered operations that take the kernel's owned entries to the desired set.

    ``local_addresses`` (the node's tunnel addresses) tell OUT SAs from IN SAs for ordering;
    when not given they are inferred from the templates of owned and desired policies.
    ``peer_of_address`` names peers for sorting. ``keep_outbound``: leave owned OUT entries
    that are not desired alone (``outbound: false``); ``keep_outbound_addresses`` does the
    same for the OUT entries towards those peer addresses. IN/FWD policies of peers in
    ``keep_level_addresses`` take the level (template ``optional`` flag) of the installed
    owned policy of the same identity. Raises ``PlanError`` when a desired entry would
    replace a foreign one.
    """
    frozen = frozenset(frozen_peer_addresses)
    outbound_kept = frozenset(keep_outbound_addresses)
    level_kept = frozenset(keep_level_addresses)
    # One entry per kernel identity (the kernel holds no two; a dump read twice might).
    installed: Dict[Tuple[object, ...], XfrmObject] = {}
    states = _unique([normalise_state(s) for s in current_states], installed)
    policies = _unique([normalise_policy(p) for p in current_policies], installed)
    wanted: List[XfrmObject] = [normalise_state(s) for s in desired_states]
    wanted += [normalise_policy(p) for p in desired_policies]
    wanted_identities = [_identity(obj) for obj in wanted]
    _refuse_duplicates(wanted, wanted_identities)
    owned_states = [s for s in states if is_owned_state(s, reqid)]
    owned_policies = [p for p in policies if is_owned_policy(p, reqid)]
    if local_addresses is None:
        local_addresses = _infer_local_addresses(
            owned_policies + [p for p in wanted if isinstance(p, XfrmPolicy)], reqid)
    orderer = _Orderer(local_addresses, peer_of_address or {})

    owned_ids = {id(obj) for obj in owned_states}
    owned_ids.update(id(obj) for obj in owned_policies)
    consumed: Set[int] = set()  # ids of installed owned entries already accounted for
    unchanged: List[XfrmObject] = []

    # Exact identity matches first, so that a kernel-lookup collision (second pass) can
    # only claim an entry that no desired entry matches exactly.
    matches: List[Optional[XfrmObject]] = []
    unmatched_states = False
    for desired, identity in zip(wanted, wanted_identities):
        current = installed.get(identity)
        if current is not None:
            if id(current) not in owned_ids:
                _refuse_foreign(desired, current, owned_ids)
            consumed.add(id(current))
        elif not unmatched_states and isinstance(desired, XfrmState):
            unmatched_states = True
        matches.append(current)
    if unmatched_states and states:
        states_by_slot: Dict[Tuple[object, ...], List[XfrmState]] = {}
        for state in states:
            states_by_slot.setdefault(_sa_slot(state), []).append(state)
        for index, desired in enumerate(wanted):
            if matches[index] is not None or not isinstance(desired, XfrmState):
                continue
            colliding = next((s for s in states_by_slot.get(_sa_slot(desired), ())
                              if sa_add_collides(desired, s)), None)
            if colliding is None:
                continue
            _refuse_foreign(desired, colliding, owned_ids)
            if id(colliding) in consumed:
                raise PlanError("cannot install %s: the kernel would take it for %s, which is also "
                                "desired" % (render(desired), render(colliding)))
            consumed.add(id(colliding))
            matches[index] = colliding

    if level_kept:
        wanted = [_with_installed_level(desired, current, owned_ids, level_kept)
                  for desired, current in zip(wanted, matches)]

    after: List[XfrmObject] = list(wanted)
    for desired, current in zip(wanted, matches):
        if current is not None and current == desired:
            unchanged.append(current)
            continue
        role = orderer.role(desired)
        if current is None:
            orderer.put(_ADD_PHASES[role], desired, [PlannedOperation(VERB_ADD, desired)],
                        Change(CHANGE_ADD, role, after=desired))
        elif isinstance(desired, XfrmPolicy):
            orderer.put(_ADD_PHASES[role], desired, [PlannedOperation(VERB_UPDATE, desired)],
                        Change(CHANGE_UPDATE, role, before=current, after=desired))
        else:
            orderer.put(_ADD_PHASES[role], desired,
                        [PlannedOperation(VERB_DELETE, current), PlannedOperation(VERB_ADD, desired)],
                        Change(CHANGE_REPLACE, role, before=current, after=desired))

    kept: List[XfrmObject] = []
    for obj in owned_states + owned_policies:
        if id(obj) in consumed:
            continue
        role = orderer.role(obj)
        if (not purge or belongs_to(obj, frozen) or (keep_outbound and role in _OUT_ROLES)
                or (role in _OUT_ROLES and remote_address(obj, orderer.local_addresses) in outbound_kept)):
            kept.append(obj)
            after.append(obj)
            continue
        orderer.put(_DELETE_PHASES[role], obj, [PlannedOperation(VERB_DELETE, obj)],
                    Change(CHANGE_DELETE, role, before=obj))

    operations, changes = orderer.result()
    return Plan(
        operations=operations,
        changes=changes,
        before=tuple(owned_states + owned_policies),
        after=tuple(after),
        unchanged=tuple(unchanged),
        kept=tuple(kept),
        foreign_states=len(states) - len(owned_states),
        foreign_policies=len(policies) - len(owned_policies),
        warnings=tuple(warnings),
    )


def converged_plan(desired: DesiredSet, state_records: Sequence[Tuple[Any, ...]],
                   policy_records: Sequence[Tuple[Any, ...]], state_at: Callable[[int], XfrmState],
                   policy_at: Callable[[int], XfrmPolicy]) -> Optional[Tuple[Plan, List[XfrmState]]]:
    """The plan of ``reconcile`` when the kernel already holds the desired set, found by
    comparing records (``_xfrm_model.state_record``/``policy_record``, read from the dump by
    ``xfrm_codec.decode_*_record``) instead of model objects; None whenever that is not
    certain, and the caller then runs ``reconcile`` on the decoded entries.

    ``state_records``/``policy_records`` are the records of the dumped entries, in dump order;
    ``state_at(i)``/``policy_at(i)`` decode entry ``i`` (only those that match no desired
    entry are decoded). Returns the plan and those decoded SAs (foreign ones: their keys are
    secrets too).

    The plan is returned only when ``reconcile`` would give the same one: every desired entry
    (normalised, owned) has exactly one installed entry whose canonical record equals its
    record, so ``reconcile`` would pair them by identity, find them equal and leave no owned
    entry unconsumed; no two desired entries are the same; every other installed entry is
    foreign and unique, and holds no desired identity. Nothing is then applied, and
    ``unchanged``/``before`` hold the desired objects, which are equal to the installed ones
    (a policy's kernel ``index`` is outside equality and not reported).
    """
    if len(state_records) < len(desired.states) or len(policy_records) < len(desired.policies):
        return None  # something is missing (a fresh node): no need to look further
    reqid = desired.reqid
    wanted_states = list(map(normalise_state, desired.states))
    wanted_policies = list(map(normalise_policy, desired.policies))
    if not (all(map(is_owned_state, wanted_states, repeat(reqid)))
            and all(map(is_owned_policy, wanted_policies, repeat(reqid)))):
        return None  # a desired entry this collection would not own: reconcile decides
    desired_state_records = list(map(state_record, wanted_states))
    desired_policy_records = list(map(policy_record, wanted_policies))
    # Looked up as the codec reads an installed SA: a selector of the SA's own family that
    # matches everything is read as None (normalisation turns it back). A record that misses
    # is looked up again in canonical form (the lookup is only a shortcut: equal canonical
    # records are what counts).
    states_by_record = dict(zip(map(_as_dumped_state_record, desired_state_records), wanted_states))
    policies_by_record = dict(zip(desired_policy_records, wanted_policies))
    desired_identities = set(map(kernel_identity, wanted_states))
    if len(desired_identities) != len(wanted_states):
        return None  # two desired entries with one kernel identity: reconcile refuses them
    desired_identities.update(map(kernel_identity, wanted_policies))
    if len(desired_identities) != len(wanted_states) + len(wanted_policies):
        return None

    other_identities: Set[Tuple[Any, ...]] = set()
    foreign_states: List[XfrmState] = []
    foreign_policies = 0
    matched_states: List[XfrmState] = []
    matched_policies: List[XfrmPolicy] = []
    for kind, records, by_record, desired_records, wanted, matched, decode in (
            (KIND_STATE, state_records, states_by_record, desired_state_records, wanted_states, matched_states,
             state_at),
            (KIND_POLICY, policy_records, policies_by_record, desired_policy_records, wanted_policies,
             matched_policies, policy_at)):
        canonical = canonical_state_record if kind == KIND_STATE else canonical_policy_record
        matched.extend(map(by_record.get, records))
        if not any(twin is None for twin in matched):
            continue
        by_canonical_record = dict(zip(desired_records, wanted))
        for index, twin in enumerate(matched):
            if twin is not None:
                continue
            record = canonical(records[index])
            twin = matched[index] = by_canonical_record.get(record)
            if twin is not None:
                continue
            identity = record_identity(kind, record)
            if identity in desired_identities or identity in other_identities:
                return None
            other_identities.add(identity)
            if kind == KIND_STATE:
                state = decode(index)
                if is_owned_state(normalise_state(state), reqid):  # type: ignore[arg-type]
                    return None
                foreign_states.append(state)  # type: ignore[arg-type]
            else:
                if is_owned_policy(normalise_policy(decode(index)), reqid):  # type: ignore[arg-type]
                    return None
                foreign_policies += 1
        matched[:] = [twin for twin in matched if twin is not None]
    # Each desired entry matched once: no desired entry missing, none installed twice.
    if (len(matched_states) != len(wanted_states) or len(matched_policies) != len(wanted_policies)
            or len({id(obj) for obj in matched_states}) != len(matched_states)
            or len({id(obj) for obj in matched_policies}) != len(matched_policies)):
        return None
    wanted: Tuple[XfrmObject, ...] = tuple(wanted_states) + tuple(wanted_policies)
    return Plan(
        before=tuple(matched_states) + tuple(matched_policies),
        after=wanted,
        unchanged=wanted,
        foreign_states=len(foreign_states),
        foreign_policies=foreign_policies,
        warnings=tuple(desired.warnings),
    ), foreign_states


def reconcile(desired: DesiredSet, current_states: Iterable[XfrmState],
              current_policies: Iterable[XfrmPolicy], purge: bool = True) -> Plan:
    """``plan`` for a ``DesiredSet`` from ``_desired.build_desired`` (a teardown set purges
    every owned entry, whatever ``purge`` says)."""
    return plan(current_states, current_policies, desired.states, desired.policies,
                desired.frozen_peer_addresses, (purge and desired.purge) or desired.teardown,
                reqid=desired.reqid, local_addresses=desired.local_addresses,
                peer_of_address=desired.peer_of_address, keep_outbound=desired.keep_outbound,
                warnings=desired.warnings, keep_outbound_addresses=desired.keep_outbound_addresses,
                keep_level_addresses=desired.keep_level_addresses)


def _with_installed_level(desired: XfrmObject, current: Optional[XfrmObject], owned_ids: Set[int],
                          level_kept: FrozenSet[str]) -> XfrmObject:
    """``desired`` with the template levels of ``current`` when its peer keeps its level."""
    if (not isinstance(desired, XfrmPolicy) or desired.dir == DIR_OUT or not desired.templates
            or desired.templates[0].src not in level_kept or not isinstance(current, XfrmPolicy)
            or id(current) not in owned_ids or len(current.templates) != len(desired.templates)):
        return desired
    templates = tuple(dataclasses.replace(template, optional=installed.optional)
                      for template, installed in zip(desired.templates, current.templates))
    return dataclasses.replace(desired, templates=templates)
