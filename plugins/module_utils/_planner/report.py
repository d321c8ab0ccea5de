# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A plan as a module reports it: Ansible's ``diff``, one line per change, counts, and the
secrets a module must mask.

* ``render_plan`` turns a plan into Ansible's diff (``before``/``after`` texts of the owned
  entries, one masked line each: ``_xfrm.render``), ``changed_lines`` into the lines of what
  is added, updated and removed; ``Plan.counts`` gives the counts.
* ``secrets_of`` spells every SA key for ``no_log_values``.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Sequence

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import key_spellings
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import ChangeKind, Plan
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import XfrmState
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render

DIFF_HEADER = "xfrm (entries owned by netsec.ipsec)"


def _text(lines: Sequence[str]) -> str:
    return "".join(line + "\n" for line in lines)


def render_plan(plan: Plan) -> Dict[str, str]:
    """Ansible's ``diff`` for a plan: sorted masked lines of the owned entries in the kernel
    now (``before``) and once the plan is applied (``after``), with headers."""
    return {
        "before": _text(sorted(render(entry) for entry in plan.before)),
        "after": _text(sorted(render(entry) for entry in plan.after)),
        "before_header": DIFF_HEADER,
        "after_header": DIFF_HEADER,
    }


def changed_lines(plan: Plan) -> Dict[str, List[str]]:
    """The masked lines of what a plan adds, updates (policies in place, SAs re-created,
    shown with their new content) and removes, in the order applied."""
    lines: Dict[str, List[str]] = {"added": [], "updated": [], "removed": []}
    for change in plan.changes:
        if change.kind is ChangeKind.ADD:
            lines["added"].append(render(change.after))  # type: ignore[arg-type]
        elif change.kind is ChangeKind.DELETE:
            lines["removed"].append(render(change.before))  # type: ignore[arg-type]
        else:
            lines["updated"].append(render(change.after))  # type: ignore[arg-type]
    return lines


def secrets_of(states: Iterable[XfrmState]) -> List[str]:
    """Every spelling of every SA key (derived or not), for the module's ``no_log_values``.

    The spellings are ``_keys.key_spellings``, as for keys-file keys, so keys-file keys and
    derived keys are masked alike. Empty keys are not secrets.
    """
    secrets: Dict[str, None] = {}  # insertion-ordered set: large meshes have many keys
    for state in states:
        for algorithm in state.algorithms():
            if algorithm.key:
                for spelling in key_spellings(bytes(algorithm.key)):
                    secrets[spelling] = None  # no throwaway dict per key (2000 keys at 1000 peers)
    return list(secrets)
