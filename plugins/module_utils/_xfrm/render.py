# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Masked, one-line text of SAs and policies, for ``--diff``, results and error messages.

Lines read like ``ip xfrm`` output squeezed onto one line::

    state 10.0.0.1 -> 10.0.0.2 esp spi 0x1a2b3c4d reqid 0x6e736563 tunnel aead rfc4106(gcm(aes)) key sha256:1a2b3c4d5e6f icv 128 esn replay-window 1024
    policy out 0.0.0.0/0 -> 10.0.0.2/32 priority 28416 tmpl 10.0.0.1 -> 10.0.0.2 esp spi 0x1a2b3c4d reqid 0x6e736563 tunnel required

Rules:

* Key material never appears: a key is shown as its fingerprint (``sha256:`` and 12 hex
  digits of SHA-256 of the key), an empty key as ``key none``.
* Every field that differs from its default is shown, so two entries that differ never
  render the same; fields at their defaults are left out (a line is stable from run to run).
* Attributes the collection never sets (``unmodelled``, a policy's security context) are
  shown as the wire codec described them, after the fields the collection sets, so a diff
  shows why an owned entry carrying one is replaced::

    state 10.0.0.1 -> 10.0.0.2 esp spi 0x00000003 reqid 0x6e736563 tunnel aead ... encap espinudp 4500 4500 0.0.0.0
"""

from __future__ import annotations

from typing import List, Optional

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import fingerprint
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ACTION_NAMES, ALL_ALGOS, DIR_NAMES, INFINITE_LIFETIME, MODE_NAMES, POLICY_TYPE_MAIN, Algorithm, Lifetime, Mark,
    Selector, Template, XfrmEntry, XfrmPolicy, XfrmState, zero_selector,
)

# Protocol names as ``ip xfrm`` prints them; anything else is printed as a number.
PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 50: "esp", 51: "ah", 58: "ipv6-icmp",
               108: "comp", 132: "sctp"}
EMPTY_KEY_TEXT = "none"


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


def _lifetime(lifetime: Lifetime) -> List[str]:
    if lifetime == INFINITE_LIFETIME:
        return []
    parts = ["%s %d" % (name.replace("_", "-"), value)
             for name, value, default in sorted(zip(Lifetime._fields, lifetime, INFINITE_LIFETIME))
             if value != default]
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
    return "%s %s %s %d" % (algorithm.kind, algorithm.name, render_key(algorithm.key), algorithm.bits)


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
    if state.selector is not None and state.selector != zero_selector(state.family):
        parts.append("sel " + render_selector(state.selector))
    parts += _mark("mark", state.mark)
    parts += _mark("output-mark", state.output_mark)
    if state.if_id:
        parts.append("if_id 0x%x" % state.if_id)
    parts += _lifetime(state.lifetime)
    parts += [attribute.text for attribute in state.unmodelled]
    return " ".join(parts)


def render_template(template: Template) -> str:
    parts = ["tmpl %s -> %s %s spi 0x%08x reqid 0x%x %s %s" % (
        template.src, template.dst, _proto(template.proto), template.spi, template.reqid,
        MODE_NAMES.get(template.mode, "mode %d" % template.mode),
        "use" if template.optional else "required")]
    if template.share:
        parts.append("share %d" % template.share)
    for word, value in (("aalgos", template.aalgos), ("ealgos", template.ealgos), ("calgos", template.calgos)):
        if value != ALL_ALGOS:
            parts.append("%s 0x%x" % (word, value))
    return " ".join(parts)


def render_policy(policy: XfrmPolicy) -> str:
    direction = DIR_NAMES.get(policy.dir, "dir %d" % policy.dir)
    parts = ["policy %s %s priority %d" % (direction, render_selector(policy.selector), policy.priority)]
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
    if policy.security_context is not None:
        parts.append("ctx %r" % policy.security_context)
    parts += [attribute.text for attribute in policy.unmodelled]
    parts += [render_template(template) for template in policy.templates]
    return " ".join(parts)


def render(entry: XfrmEntry) -> str:
    """One masked line for an SA or a policy."""
    if isinstance(entry, XfrmState):
        return render_state(entry)
    if isinstance(entry, XfrmPolicy):
        return render_policy(entry)
    raise TypeError("not an XFRM entry: %s" % type(entry).__name__)
