# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure planner: one import for modules, one call per node.

The work is split by concern; each module's docstring holds its decisions:

* ``_ownership``: which entries are ours (reqid ``DEFAULT_REQID``, priority band), ``PlanError``;
* ``_desired``: inputs (``LocalNode``, ``Peer``, ``PlanOptions``), wire SPIs, marks, and the
  desired object set (``build_desired`` → ``DesiredSet``);
* ``_reconcile``: normalisation, the diff restricted to owned entries and its safe order
  (``plan``/``reconcile`` → ``Plan`` of ``PlannedOperation``);
* ``_render``: masked one-line text, ``render_plan`` (``--diff``), ``render_lines``,
  ``plan_report``, ``secrets_of``.

Nothing here imports Ansible or opens a socket. A module does::

    desired = build_desired(local, peers, keys_file, options)
    result_plan = reconcile(desired, adapter.states(), adapter.policies(), options.purge)
    module.no_log_values.update(secrets_of(desired.states))
    report = plan_report(result_plan)      # diff (render_plan), lines, counts, warnings
    adapter.apply([Operation(op.verb, op.obj) for op in result_plan.operations])

or ``plan_node(...)`` for the first two steps at once.
"""

from __future__ import annotations

from typing import Iterable, Sequence, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._desired import (
    AUTH_TRUNCATION_BITS,
    DEFAULT_BYPASS,
    LEVEL_KEEP,
    LEVEL_REQUIRED,
    LEVEL_USE,
    MARKS_CILIUM,
    MARKS_NONE,
    OUTBOUND_ENABLE,
    OUTBOUND_KEEP,
    PHASE_ALL,
    PHASE_INBOUND,
    PHASE_OUTBOUND,
    REPLAY_WINDOW,
    STATE_ABSENT,
    STATE_PRESENT,
    DesiredSet,
    LocalNode,
    Peer,
    PlanOptions,
    build_desired,
    derived_mark_id,
    fully_trusted,
    in_mark,
    out_mark,
    role_of,
    sender_id,
    wire_spi,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys import Key, KeysFile
from ansible_collections.netsec.ipsec.plugins.module_utils._ownership import (
    DEFAULT_REQID,
    PRIORITY_BAND_HIGH,
    PRIORITY_BAND_LOW,
    PRIORITY_BYPASS,
    PRIORITY_ENCRYPT,
    PlanError,
    is_owned,
    is_owned_policy,
    is_owned_state,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._reconcile import (
    VERB_ADD,
    VERB_DELETE,
    VERB_UPDATE,
    Change,
    Plan,
    PlannedOperation,
    normalise_policy,
    normalise_state,
    plan,
    reconcile,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._render import (
    plan_report,
    render,
    render_lines,
    render_plan,
    secrets_of,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm_model import XfrmPolicy, XfrmState


__all__ = [
    "AUTH_TRUNCATION_BITS",
    "Change",
    "DEFAULT_BYPASS",
    "DEFAULT_REQID",
    "DesiredSet",
    "LEVEL_REQUIRED",
    "LEVEL_USE",
    "LocalNode",
    "MARKS_CILIUM",
    "MARKS_NONE",
    "PRIORITY_BAND_HIGH",
    "PRIORITY_BAND_LOW",
    "PRIORITY_BYPASS",
    "PRIORITY_ENCRYPT",
    "Peer",
    "Plan",
    "PlanError",
    "PlanOptions",
    "PlannedOperation",
    "LEVEL_KEEP",
    "OUTBOUND_ENABLE",
    "OUTBOUND_KEEP",
    "PHASE_ALL",
    "PHASE_INBOUND",
    "PHASE_OUTBOUND",
    "REPLAY_WINDOW",
    "STATE_ABSENT",
    "STATE_PRESENT",
    "VERB_ADD",
    "VERB_DELETE",
    "VERB_UPDATE",
    "build_desired",
    "fully_trusted",
    "derived_mark_id",
    "in_mark",
    "is_owned",
    "is_owned_policy",
    "is_owned_state",
    "normalise_policy",
    "normalise_state",
    "out_mark",
    "plan",
    "plan_node",
    "plan_report",
    "reconcile",
    "render",
    "render_lines",
    "render_plan",
    "role_of",
    "secrets_of",
    "sender_id",
    "wire_spi",
]


def plan_node(local: LocalNode, peers: Sequence[Peer], keys: Union[KeysFile, Sequence[Key]],
              options: PlanOptions, current_states: Iterable[XfrmState],
              current_policies: Iterable[XfrmPolicy]) -> Plan:
    """The plan for ``local`` given the kernel's current entries (``state``/``purge`` from
    ``options``; with ``state: absent`` every owned entry is removed)."""
    return reconcile(build_desired(local, peers, keys, options), current_states, current_policies,
                     options.purge)
