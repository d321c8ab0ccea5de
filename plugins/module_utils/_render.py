# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Masked, one-line text of XFRM objects and plans, for ``--diff``, results and messages.

Lines read like ``ip xfrm`` output squeezed onto one line::

    state 10.0.0.1 -> 10.0.0.2 esp spi 0x1a2b3c4d reqid 0x6e736563 tunnel aead rfc4106(gcm(aes)) key sha256:1a2b3c4d5e6f icv 128 esn replay-window 1024
    policy out 0.0.0.0/0 -> 10.0.0.2/32 priority 28416 tmpl 10.0.0.1 -> 10.0.0.2 esp spi 0x1a2b3c4d reqid 0x6e736563 tunnel required

Rules:

* Key material never appears: a key is shown as its ``_keys.fingerprint`` (``sha256:`` and
  12 hex digits of SHA-256 of the key), an empty key as ``key none``.
* Every compared field that differs from its default is shown, so two objects that differ
  (for the planner) never render the same; fields at their defaults are left out.
* Counters and the policy index (kernel-filled, not compared) are never shown, so a line is
  stable from one run to the next.
* ``render_plan`` turns a plan into Ansible's diff (``before``/``after`` texts of the owned
  entries), ``render_lines`` into ``+``/``-``/``~`` change lines; ``plan_report`` bundles
  both with the per-kind counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._keys import (
    fingerprint,
    key_spellings,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm_model import (
    ACTION_NAMES,
    ALL_ALGOS,
    DIR_NAMES,
    INFINITE_LIFETIME,
    MODE_NAMES,
    POLICY_TYPE_MAIN,
    Algorithm,
    Lifetime,
    Mark,
    Selector,
    Template,
    XfrmPolicy,
    XfrmState,
    any_address,
)

if TYPE_CHECKING:  # pragma: no cover - import for annotations only (no import cycle at run time)
    from ansible_collections.netsec.ipsec.plugins.module_utils._reconcile import Plan

XfrmObject = Union[XfrmState, XfrmPolicy]

# Protocol names as ``ip xfrm`` prints them; anything else is printed as a number.
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 50: "esp", 51: "ah", 58: "ipv6-icmp",
               108: "comp", 132: "sctp"}
EMPTY_KEY_TEXT = "none"
DIFF_HEADER = "xfrm (entries owned by netsec.ipsec)"

# Prefixes of the change lines (``lines`` of ``render_plan``).
LINE_ADD = "+ "
LINE_DELETE = "- "
LINE_CHANGE = "~ "


def _proto(proto: int) -> str:
    return PROTO_NAMES.get(proto, "proto %d" % proto)


def _mark(word: str, mark: Optional[Mark]) -> List[str]:
    if mark is None:
        return []
    return ["%s 0x%x/0x%x" % (word, mark.value, mark.mask)]


def _port(word: str, port: int, mask: int) -> List[str]:
    if not mask and not port:
        return []
    if mask == 0xFFFF:
        return ["%s %d" % (word, port)]
    return ["%s %d/0x%x" % (word, port, mask)]


def render_selector(selector: Selector) -> str:
    parts = ["%s -> %s" % (selector.src, selector.dst)]
    if selector.proto:
        parts.append("proto %s" % PROTO_NAMES.get(selector.proto, str(selector.proto)))
    parts += _port("sport", selector.sport, selector.sport_mask)
    parts += _port("dport", selector.dport, selector.dport_mask)
    if selector.ifindex:
        parts.append("ifindex %d" % selector.ifindex)
    if selector.user:
        parts.append("user %d" % selector.user)
    return " ".join(parts)


def _is_zero_selector(selector: Selector, family: int) -> bool:
    anywhere = any_address(family)
    return selector == Selector(family, anywhere, 0, anywhere, 0)


def _lifetime(lifetime: Lifetime) -> List[str]:
    if lifetime == INFINITE_LIFETIME:
        return []
    parts = []
    for name, value in sorted(vars(lifetime).items()):
        if value != getattr(INFINITE_LIFETIME, name):
            parts.append("%s %d" % (name.replace("_", "-"), value))
    return ["lifetime " + " ".join(parts)]


def render_key(key_material: bytes) -> str:
    """``key sha256:…`` (or ``key none``): the only way a key is ever shown."""
    return "key " + (fingerprint(key_material) if key_material else EMPTY_KEY_TEXT)


def render_algorithm(algorithm: Algorithm) -> str:
    if algorithm.kind == "aead":
        return "aead %s %s icv %d" % (algorithm.name, render_key(algorithm.key), algorithm.bits)
    if algorithm.kind == "auth":
        return "auth-trunc %s %s %d" % (algorithm.name, render_key(algorithm.key), algorithm.bits)
    if algorithm.kind == "crypt" and not algorithm.bits:
        return "enc %s %s" % (algorithm.name, render_key(algorithm.key))
    return "%s %s %s %d" % (algorithm.kind, algorithm.name, render_key(algorithm.key),
                            algorithm.bits)


def render_state(state: XfrmState) -> str:
    parts = ["state %s -> %s %s spi 0x%08x reqid 0x%x %s" % (
        state.src, state.dst, _proto(state.proto), state.spi, state.reqid,
        MODE_NAMES.get(state.mode, "mode %d" % state.mode))]
    parts += [render_algorithm(algorithm) for algorithm in state.algorithms()]
    if state.esn:
        parts.append("esn")
    if state.replay_window or state.esn:
        parts.append("replay-window %d" % state.replay_window)
    if state.flags:
        parts.append("flag 0x%x" % state.flags)
    if state.selector is not None and not _is_zero_selector(state.selector, state.family):
        parts.append("sel " + render_selector(state.selector))
    parts += _mark("mark", state.mark)
    parts += _mark("output-mark", state.output_mark)
    if state.if_id:
        parts.append("if_id 0x%x" % state.if_id)
    parts += _lifetime(state.lifetime)
    return " ".join(parts)


def render_template(template: Template) -> str:
    parts = ["tmpl %s -> %s %s spi 0x%08x reqid 0x%x %s %s" % (
        template.src, template.dst, _proto(template.proto), template.spi, template.reqid,
        MODE_NAMES.get(template.mode, "mode %d" % template.mode),
        "use" if template.optional else "required")]
    if template.share:
        parts.append("share %d" % template.share)
    for word, value in (("aalgos", template.aalgos), ("ealgos", template.ealgos),
                        ("calgos", template.calgos)):
        if value != ALL_ALGOS:
            parts.append("%s 0x%x" % (word, value))
    return " ".join(parts)


def render_policy(policy: XfrmPolicy) -> str:
    direction = DIR_NAMES.get(policy.dir, "dir %d" % policy.dir)
    parts = ["policy %s %s priority %d" % (direction, render_selector(policy.selector),
                                           policy.priority)]
    if policy.action != 0 or not policy.templates:
        parts.append(ACTION_NAMES.get(policy.action, "action %d" % policy.action))
    parts += _mark("mark", policy.mark)
    if policy.ptype != POLICY_TYPE_MAIN:
        parts.append("ptype %d" % policy.ptype)
    if policy.if_id:
        parts.append("if_id 0x%x" % policy.if_id)
    if policy.flags:
        parts.append("flag 0x%x" % policy.flags)
    parts += _lifetime(policy.lifetime)
    parts += [render_template(template) for template in policy.templates]
    return " ".join(parts)


def render(obj: XfrmObject) -> str:
    """One masked line for an SA or a policy."""
    if isinstance(obj, XfrmState):
        return render_state(obj)
    if isinstance(obj, XfrmPolicy):
        return render_policy(obj)
    raise TypeError("not an XFRM object: %s" % type(obj).__name__)


def _text(lines: Sequence[str]) -> str:
    return "".join(line + "\n" for line in lines)


def render_plan(plan: "Plan") -> Dict[str, str]:
    """Ansible's ``diff`` for a plan: sorted masked lines of the owned entries in the kernel
    now (``before``) and once the plan is applied (``after``), with headers."""
    return {
        "before": _text(sorted(render(obj) for obj in plan.before)),
        "after": _text(sorted(render(obj) for obj in plan.after)),
        "before_header": DIFF_HEADER,
        "after_header": DIFF_HEADER,
    }


def render_lines(plan: "Plan") -> List[str]:
    """One line per change in the order applied: ``+ `` added, ``- `` removed, ``~ `` updated
    in place (policies) or re-created (SAs), shown with the new content."""
    lines = []
    for change in plan.changes:
        if change.kind == "add":
            lines.append(LINE_ADD + render(change.after))
        elif change.kind == "delete":
            lines.append(LINE_DELETE + render(change.before))
        else:
            lines.append(LINE_CHANGE + render(change.after))
    return lines


def plan_report(plan: "Plan") -> Dict[str, object]:
    """Everything a module returns about a plan, as plain data: ``diff`` (``render_plan``),
    ``lines`` (``render_lines``), ``counts`` (``Plan.counts``) and ``warnings``."""
    return {"diff": render_plan(plan), "lines": render_lines(plan), "counts": plan.counts(),
            "warnings": list(plan.warnings)}


def secrets_of(states: Iterable[XfrmState]) -> List[str]:
    """Every spelling of every SA key (derived or not), for the module's ``no_log_values``.

    The spellings are ``_keys.key_spellings``, as for keys-file keys, so keys-file keys and
    derived keys are masked alike. Empty keys are not secrets.
    """
    secrets: Dict[str, None] = {}  # insertion-ordered set: large meshes have many keys
    for state in states:
        for algorithm in state.algorithms():
            if algorithm.key:
                secrets.update(dict.fromkeys(key_spellings(bytes(algorithm.key))))
    return list(secrets)
