# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""From the kernel's SAD/SPD to the desired set: the changes on owned entries, safely ordered.

``reconcile(desired, states, policies)`` takes the ``DesiredSet`` of ``desired.build_desired``
and the kernel's entries as dumped, and returns a ``Plan``: one ``Change`` per entry that
changes, in the safe order, each with the kernel ``Operation`` s that make it.

**Comparison.** Both sides are taken in canonical form (``_xfrm.model.canonical_state`` /
``canonical_policy``, the one place that says how two spellings of an entry differ), paired
by kernel identity (``key()``), then compared as whole entries.

**Decisions per entry.**

* desired, not in the kernel → ``add``.
* desired, in the kernel, owned, equal → unchanged (no operation).
* desired, in the kernel, owned, different: a policy → ``update`` (UPDPOLICY replaces it in
  place, keeping traffic covered; a policy is never deleted and re-added); an SA →
  ``replace``: delete then add, adjacent, because UPDSA cannot change keys, algorithms,
  reqid or mode. The gap between the two is drop-only: OUT templates are required (no SA →
  drop) and an inbound packet without its SA is dropped too.
* an owned entry carrying attributes the collection never sets (``unmodelled``: UDP
  encapsulation, offload, extra flags, TFC padding, ...) is never equal to a desired one, so
  it is replaced with the desired shape like any other difference (an SA deleted and added,
  a policy updated in place; the masked lines show the attributes that go), or deleted when
  it is not desired. An owned **policy with a security context** is refused with a
  ``PlanError`` naming it: the kernel identifies a policy by its context too, which the
  collection never sends, so an update would add a second policy next to it and a delete
  would not find it.
* desired, and its identity is held by a **foreign** entry → ``PlanError`` naming both
  (masked): never overwrite someone else's entry.
* an SA whose kernel lookup would collide with an installed SA of another mark (the kernel
  matches ``(new.v & new.m & old.m) == old.v`` when adding) is treated like an identity
  match: foreign → ``PlanError``, owned → the old one is deleted right before the add.
* owned, in the kernel, not desired → ``delete`` when ``desired.purge`` is on, except
  entries that are **kept**: those of frozen peers (an SA whose src or dst, or a policy whose
  template src or dst, is an address of a peer without boot id), and, when ``keep_outbound``
  is on, OUT SAs and OUT policies (that mode is the first phase of a rollout: re-running it
  on a node that already encrypts must not strip its encryption, since deleting an OUT
  policy sends plaintext), and the OUT entries towards ``keep_outbound_addresses``.
  Without ``purge``, every such entry is kept.
* a teardown set (``state: absent``): every owned entry is deleted, frozen peers and
  ``keep_outbound`` notwithstanding: teardown means teardown.
* foreign entries are never touched, whatever their content.

**Safe order** (docs/docsite/rst/how_it_works.rst, section Safe orders), one flat list in phases; within a phase, sorted by peer name,
then address family, peer address, SPI, then the masked line (deterministic):

1. bypass policies (add/update) — first of all, so that no encrypt policy added later in
   the run (an IN policy at level required, an OUT policy) can ever cover the management
   connection that carries this very run, even if the run stops half-way;
2. IN SAs (add, replace) — a peer may start sending as soon as its OUT side exists;
3. IN/FWD policies (add/update);
4. OUT SAs (add, replace) — before anything refers to them;
5. OUT policies (add/update) — egress switches only once its SA exists;
6. removals: OUT policies, OUT SAs, IN/FWD policies, IN SAs, bypass policies last (so the
   management connection stays exempt until every encrypt policy is gone). OUT before IN:
   nothing is sent that the other side can no longer read.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Dict, FrozenSet, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Set, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    ROLE_BYPASS, ROLE_IN_POLICY, ROLE_IN_SA, ROLE_OUT_POLICY, ROLE_OUT_SA, DesiredSet, remote_address, role_of,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import (
    PlanError, is_owned_policy, is_owned_state,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    DIR_OUT, Mark, Operation, Verb, XfrmEntry, XfrmPolicy, XfrmState, canonical_policy, canonical_state, family_of,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render


class ChangeKind(enum.Enum):
    """What happens to one entry; ``REPLACE`` is an SA deleted and added again."""

    ADD = "add"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


class Change(NamedTuple):
    """One entry's change: ``before``/``after`` are None for an add/a delete."""

    kind: ChangeKind
    role: str
    before: Optional[XfrmEntry] = None
    after: Optional[XfrmEntry] = None

    @property
    def is_state(self) -> bool:
        return isinstance(self.after if self.after is not None else self.before, XfrmState)

    def operations(self) -> Tuple[Operation, ...]:
        """The kernel operations that make this change, in order."""
        if self.kind is ChangeKind.ADD:
            return (Operation(Verb.ADD, self.after),)  # type: ignore[arg-type]
        if self.kind is ChangeKind.UPDATE:
            return (Operation(Verb.UPDATE, self.after),)  # type: ignore[arg-type]
        if self.kind is ChangeKind.REPLACE:
            return (Operation(Verb.DELETE, self.before), Operation(Verb.ADD, self.after))  # type: ignore[arg-type]
        return (Operation(Verb.DELETE, self.before),)  # type: ignore[arg-type]


COUNT_NAMES = {ChangeKind.ADD: "added", ChangeKind.UPDATE: "updated", ChangeKind.REPLACE: "updated",
               ChangeKind.DELETE: "removed"}


@dataclasses.dataclass(frozen=True)
class Plan:
    """The ordered changes, and what the module reports about them.

    ``before``: owned entries in the kernel now; ``after``: owned entries once the plan is
    applied; ``unchanged``: desired entries already in place; ``kept``: owned entries that
    are not desired but stay (frozen peers, ``purge`` off, ``keep_outbound``).
    ``foreign_states``/``foreign_policies`` count entries that were left alone as foreign.
    """

    changes: Tuple[Change, ...] = ()
    before: Tuple[XfrmEntry, ...] = ()
    after: Tuple[XfrmEntry, ...] = ()
    unchanged: Tuple[XfrmEntry, ...] = ()
    kept: Tuple[XfrmEntry, ...] = ()
    foreign_states: int = 0
    foreign_policies: int = 0
    warnings: Tuple[str, ...] = ()

    @property
    def operations(self) -> Tuple[Operation, ...]:
        return tuple(operation for change in self.changes for operation in change.operations())

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def counts(self) -> Dict[str, Dict[str, int]]:
        """``{"sas"|"policies": {"added", "updated", "removed", "unchanged", "kept"}}``.
        An SA replaced (delete + add) counts as updated."""
        counts = {kind: {"added": 0, "updated": 0, "removed": 0, "unchanged": 0, "kept": 0}
                  for kind in ("sas", "policies")}
        for change in self.changes:
            counts["sas" if change.is_state else "policies"][COUNT_NAMES[change.kind]] += 1
        for entry in self.unchanged:
            counts["sas" if isinstance(entry, XfrmState) else "policies"]["unchanged"] += 1
        for entry in self.kept:
            counts["sas" if isinstance(entry, XfrmState) else "policies"]["kept"] += 1
        return counts


def rollback(plan: Plan, applied: Sequence[Operation]) -> List[Tuple[Operation, Optional[Operation]]]:
    """How to undo operations of ``plan`` that the kernel applied: each applied operation,
    newest first, with the operation that undoes it (None when there is none). An add is
    deleted, a delete re-added, an update of a policy restored to the policy it replaced."""
    replaced: Dict[Operation, XfrmEntry] = {}
    for change in plan.changes:
        if change.kind is ChangeKind.UPDATE and change.before is not None:
            replaced[change.operations()[0]] = change.before
    return [(operation, operation.inverse(replaced.get(operation))) for operation in reversed(applied)]


# --------------------------------------------------------------------------------------
# The reconcile


def reconcile(desired: DesiredSet, current_states: Iterable[XfrmState],
              current_policies: Iterable[XfrmPolicy]) -> Plan:
    """The changes that take the kernel's owned entries to ``desired`` (see the module
    docstring). Raises ``PlanError`` when a desired entry would replace a foreign one."""
    reqid = desired.reqid
    # One entry per kernel identity (the kernel holds no two; a dump read twice might).
    installed_states = _by_identity(map(canonical_state, current_states))
    installed_policies = _by_identity(map(canonical_policy, current_policies))
    owned_ids = {id(state) for state in installed_states.values() if is_owned_state(state, reqid)}
    owned_state_count = len(owned_ids)  # the installed entries are distinct objects: one id each
    owned_ids.update(id(policy) for policy in installed_policies.values() if is_owned_policy(policy, reqid))
    owned_policy_count = len(owned_ids) - owned_state_count
    for policy in installed_policies.values():
        if policy.security_context is not None and id(policy) in owned_ids:
            _refuse_security_context(policy)  # type: ignore[arg-type]

    wanted_states: List[XfrmEntry] = list(map(canonical_state, desired.states))
    wanted_policies: List[XfrmEntry] = list(map(canonical_policy, desired.policies))
    state_matches = _match(wanted_states, installed_states, owned_ids)
    if installed_states and None in state_matches:
        _match_colliding_states(wanted_states, state_matches, installed_states, owned_ids)
    wanted = wanted_states + wanted_policies
    matches = state_matches + _match(wanted_policies, installed_policies, owned_ids)
    if desired.keep_level_addresses:
        wanted = [_with_installed_level(entry, current, owned_ids, desired.keep_level_addresses)
                  for entry, current in zip(wanted, matches)]

    orderer = _Orderer(desired.local_addresses, desired.peer_of_address)
    unchanged: List[XfrmEntry] = []
    consumed: Set[int] = set()
    for entry, current in zip(wanted, matches):
        if current is not None:
            consumed.add(id(current))
            if current == entry:
                unchanged.append(current)
                continue
        role = orderer.role(entry)
        if current is None:
            change = Change(ChangeKind.ADD, role, after=entry)
        elif isinstance(entry, XfrmPolicy):
            change = Change(ChangeKind.UPDATE, role, before=current, after=entry)
        else:
            change = Change(ChangeKind.REPLACE, role, before=current, after=entry)
        orderer.put(_ADD_PHASES[role], entry, change)

    owned = [entry for entry in _entries(installed_states, installed_policies) if id(entry) in owned_ids]
    after: List[XfrmEntry] = list(wanted)
    kept: List[XfrmEntry] = []
    for entry in owned:
        if id(entry) in consumed:
            continue
        role = orderer.role(entry)
        if not desired.teardown and _kept(entry, role, desired, orderer.local_addresses):
            kept.append(entry)
            after.append(entry)
            continue
        orderer.put(_DELETE_PHASES[role], entry, Change(ChangeKind.DELETE, role, before=entry))

    return Plan(
        changes=orderer.result(),
        before=tuple(owned),
        after=tuple(after),
        unchanged=tuple(unchanged),
        kept=tuple(kept),
        foreign_states=len(installed_states) - owned_state_count,
        foreign_policies=len(installed_policies) - owned_policy_count,
        warnings=tuple(desired.warnings),
    )


# Phases of the safe order.
_ADD_PHASES = {ROLE_BYPASS: 0, ROLE_IN_SA: 1, ROLE_IN_POLICY: 2, ROLE_OUT_SA: 3, ROLE_OUT_POLICY: 4}
_DELETE_PHASES = {ROLE_OUT_POLICY: 5, ROLE_OUT_SA: 6, ROLE_IN_POLICY: 7, ROLE_IN_SA: 8, ROLE_BYPASS: 9}
_OUT_ROLES = (ROLE_OUT_SA, ROLE_OUT_POLICY)


def _by_identity(entries: Iterable[XfrmEntry]) -> Dict[Tuple[object, ...], XfrmEntry]:
    """The first entry of each kernel identity, by identity."""
    found: Dict[Tuple[object, ...], XfrmEntry] = {}
    for entry in entries:
        found.setdefault(entry.key(), entry)
    return found


def _entries(states: Mapping[Tuple[object, ...], XfrmEntry],
             policies: Mapping[Tuple[object, ...], XfrmEntry]) -> List[XfrmEntry]:
    return list(states.values()) + list(policies.values())


def _match(wanted: Sequence[XfrmEntry], installed: Mapping[Tuple[object, ...], XfrmEntry], owned_ids: Set[int]
           ) -> List[Optional[XfrmEntry]]:
    """The installed entry (of one kind) each desired one takes the place of, None for a new
    one. Refuses two desired entries of one identity and a foreign entry in a desired one's
    place."""
    seen: Dict[Tuple[object, ...], int] = {}
    matches: List[Optional[XfrmEntry]] = []
    for index, entry in enumerate(wanted):
        identity = entry.key()
        twin = seen.setdefault(identity, index)
        if twin != index:
            raise PlanError("two desired entries have the same kernel identity: %s and %s"
                            % (render(wanted[twin]), render(entry)))
        current = installed.get(identity)
        if current is not None and id(current) not in owned_ids:
            _refuse_foreign(entry, current)
        matches.append(current)
    return matches


def _match_colliding_states(wanted: Sequence[XfrmEntry], matches: List[Optional[XfrmEntry]],
                            installed_states: Mapping[Tuple[object, ...], XfrmEntry], owned_ids: Set[int]) -> None:
    """Second pass over the desired SAs, after exact identity matches (so that a collision
    can only claim an entry no desired entry matches exactly): a new SA the kernel would
    refuse because of an installed SA of another mark takes that SA's place."""
    claimed = {id(current) for current in matches if current is not None}
    by_slot: Dict[Tuple[object, ...], List[XfrmState]] = {}
    for state in installed_states.values():
        by_slot.setdefault(_sa_slot(state), []).append(state)  # type: ignore[arg-type]
    for index, entry in enumerate(wanted):
        if matches[index] is not None:
            continue
        colliding = next((state for state in by_slot.get(_sa_slot(entry), ()) if sa_add_collides(entry, state)),
                         None)
        if colliding is None:
            continue
        if id(colliding) not in owned_ids:
            _refuse_foreign(entry, colliding)
        if id(colliding) in claimed:
            raise PlanError("cannot install %s: the kernel would take it for %s, which is also desired"
                            % (render(entry), render(colliding)))
        claimed.add(id(colliding))
        matches[index] = colliding


def _kept(entry: XfrmEntry, role: str, desired: DesiredSet, local_addresses: Sequence[str]) -> bool:
    """Whether an owned entry that is not desired stays (see the module docstring)."""
    if not desired.purge or belongs_to(entry, desired.frozen_peer_addresses):
        return True
    if role not in _OUT_ROLES:
        return False
    return desired.keep_outbound or remote_address(entry, local_addresses) in desired.keep_outbound_addresses


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


def belongs_to(entry: XfrmEntry, addresses: FrozenSet[str]) -> bool:
    """True when an SA's src/dst or a policy's template src/dst is one of ``addresses``."""
    if isinstance(entry, XfrmState):
        return entry.src in addresses or entry.dst in addresses
    return any(t.src in addresses or t.dst in addresses for t in entry.templates)


def _refuse_foreign(desired: XfrmEntry, current: XfrmEntry) -> None:
    raise PlanError("cannot install %s: its place in the kernel is taken by an entry that "
                    "netsec.ipsec does not own: %s. Remove that entry or change the "
                    "addresses, subnets or reqid." % (render(desired), render(current)))


def _refuse_security_context(policy: XfrmPolicy) -> None:
    raise PlanError("cannot manage %s: it carries a security context, which netsec.ipsec never sets, and the "
                    "kernel identifies a policy by its context too, so netsec.ipsec can neither replace it (an "
                    "update would add a second policy next to it) nor remove it (a delete without the context "
                    "does not find it). Remove it by hand (ip xfrm policy delete with its selector, dir, mark and "
                    "ctx) and run again." % render(policy))


def _with_installed_level(desired: XfrmEntry, current: Optional[XfrmEntry], owned_ids: Set[int],
                          level_kept: FrozenSet[str]) -> XfrmEntry:
    """``desired`` with the template levels of ``current`` when its peer keeps its level."""
    if (not isinstance(desired, XfrmPolicy) or desired.dir == DIR_OUT or not desired.templates
            or desired.templates[0].src not in level_kept or not isinstance(current, XfrmPolicy)
            or id(current) not in owned_ids or len(current.templates) != len(desired.templates)):
        return desired
    templates = tuple(template._replace(optional=installed.optional)
                      for template, installed in zip(desired.templates, current.templates))
    return desired._replace(templates=templates)


class _RenderedLater:
    """The masked line of an entry as the last sort key, rendered only when the keys before
    it tie (a few entries per peer): same order as sorting by ``render(entry)``, without
    rendering every entry of a large plan."""

    __slots__ = ("entry", "_text")

    def __init__(self, entry: XfrmEntry) -> None:
        self.entry = entry
        self._text: Optional[str] = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = render(self.entry)
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _RenderedLater) and self.text == other.text

    def __lt__(self, other: "_RenderedLater") -> bool:
        return self.text < other.text

    __hash__ = None  # type: ignore[assignment]


class _Orderer:
    """Places changes into phases and sorts each phase deterministically."""

    def __init__(self, local_addresses: Sequence[str], peer_of_address: Mapping[str, str]) -> None:
        self.local_addresses = tuple(local_addresses)
        self.peer_of_address = peer_of_address
        self.phases: Dict[int, List[Tuple[Tuple[object, ...], Change]]] = {}

    def role(self, entry: XfrmEntry) -> str:
        return role_of(entry, self.local_addresses)

    def sort_key(self, entry: XfrmEntry) -> Tuple[object, ...]:
        remote = remote_address(entry, self.local_addresses)
        peer = self.peer_of_address.get(remote, "") if remote else ""
        family = family_of(remote) if remote else (entry.selector.family if isinstance(entry, XfrmPolicy) else 0)
        if isinstance(entry, XfrmState):
            spi = entry.spi
        else:
            spi = entry.templates[0].spi if entry.templates else 0
        return (peer, family, remote, spi, _RenderedLater(entry))

    def put(self, phase: int, entry: XfrmEntry, change: Change) -> None:
        self.phases.setdefault(phase, []).append((self.sort_key(entry), change))

    def result(self) -> Tuple[Change, ...]:
        return tuple(change for phase in sorted(self.phases)
                     for _sort_key, change in sorted(self.phases[phase], key=lambda item: item[0]))
