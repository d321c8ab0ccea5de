# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node keeps on disk about its mesh state, so that a reboot fails closed and the
mesh can tell who keyed whom. Pure: ``xfrm_endpoint`` writes these files after every run
that changes them (``_files``), the boot unit and ``xfrm_info`` read them.

**The boot restore file** (``BOOT_POLICIES``): after a reboot the XFRM tables are empty, so a
node would send its traffic to every peer in plaintext until the mesh runs again. The boot
unit the mesh role installs runs ``ip -force -batch`` of this file before the network comes
up; it holds one ``xfrm policy update`` line per policy the collection owns on the node
(management bypass and neighbour discovery exemptions included) and never a key or an SA.
Restored OUT policies require an SA that no longer exists, so traffic to peers is dropped
(never sent in plaintext) until the node is re-keyed; restored IN policies refuse plaintext
from peers as they did; the bypass keeps SSH reachable. ``update`` (UPDPOLICY) adds a
policy or replaces one of the same identity, so running the file twice changes nothing.

**The keying record** (``KEYING``): per-pair keys are derived from both ends' boot ids, so a
node records the boot id its own SAs were derived with and, per peer, the peer's boot id it
keyed with. A node whose recorded boot id is not its current one rebooted since it was
keyed: every peer still holds keys for its old boot. A peer whose recorded boot id is not
that peer's current one rebooted since this node keyed it. No secret is in either file.

**The boot unit** (``render_boot_unit``): the systemd service the mesh role installs to run
the restore file. It is ordered as a firewall is (Debian's nftables.service): no default
dependencies, so it runs early; before ``network-pre.target``, which every network manager
waits for, so no interface has an address before the policies are back; it needs the state
directory's file system mounted (``RequiresMountsFor``: a /var of its own would otherwise
be mounted after it, and the file would seem absent, which fails open); it does nothing
where there is no restore file (never keyed, or torn down).
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import file_fingerprint
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ACTION_ALLOW, ACTION_NAMES, DIR_NAMES, MODE_NAMES, POLICY_TYPE_MAIN, Mark, Selector, Template, XfrmPolicy,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import PROTO_NAMES

DEFAULT_STATE_DIR = "/var/lib/netsec-ipsec"
BOOT_POLICIES = "boot-policies"
KEYING = "keying.json"
KEYING_VERSION = 1
# Readable by root only: not secret, but nobody else needs the node's mesh layout.
STATE_FILE_MODE = "0600"
STATE_DIR_MODE = 0o700

BATCH_HEADER = (
    "# netsec.ipsec: the XFRM policies this node holds for the mesh, restored at boot before the\n"
    "# network comes up (ip -force -batch FILE), so that nothing reaches a peer in plaintext until\n"
    "# the mesh re-keys the node. Written by netsec.ipsec.xfrm_endpoint; no key is ever in it.\n"
)

BOOT_UNIT_NAME = "netsec-ipsec-restore.service"
DEFAULT_BOOT_UNIT_PATH = "/etc/systemd/system/" + BOOT_UNIT_NAME
# A unit file reads its values verbatim apart from specifiers (%) and quoting, and a line
# break would start a new setting: the state directory must be a plain absolute path.
_PLAIN_ABSOLUTE_PATH = re.compile(r"/[A-Za-z0-9._/-]*\Z")

_FULL_PORT_MASK = 0xFFFF
# Protocols whose selector "ports" iproute2 writes as ICMP type and code.
_ICMP_PROTOCOLS = (1, 58)


def _words_of_port(word: str, value: int, mask: int, policy: XfrmPolicy) -> List[str]:
    if not mask:
        return []
    if mask != _FULL_PORT_MASK:
        raise PlanError("policy with a partial port mask cannot be written for ip -batch: %r" % (policy.selector,))
    return [word, str(value)]


def _selector_words(selector: Selector, policy: XfrmPolicy) -> List[str]:
    if selector.ifindex or selector.user:
        raise PlanError("policy bound to an interface or user cannot be written for ip -batch: %r" % (selector,))
    words = ["src", selector.src, "dst", selector.dst]
    if selector.proto:
        words += ["proto", PROTO_NAMES.get(selector.proto, str(selector.proto))]
        icmp = selector.proto in _ICMP_PROTOCOLS
        words += _words_of_port("type" if icmp else "sport", selector.sport, selector.sport_mask, policy)
        words += _words_of_port("code" if icmp else "dport", selector.dport, selector.dport_mask, policy)
    return words


def _mark_words(mark: Optional[Mark]) -> List[str]:
    return [] if mark is None else ["mark", "0x%x" % mark.value, "mask", "0x%x" % mark.mask]


def _template_words(template: Template) -> List[str]:
    return ["tmpl", "src", template.src, "dst", template.dst, "proto", PROTO_NAMES.get(template.proto, str(template.proto)),
            "spi", "0x%08x" % template.spi, "reqid", str(template.reqid), "mode", MODE_NAMES[template.mode],
            "level", "use" if template.optional else "required"]


def policy_batch_line(policy: XfrmPolicy) -> str:
    """One ``ip -batch`` line (``xfrm policy update ...``) that installs ``policy`` exactly."""
    if policy.ptype != POLICY_TYPE_MAIN or policy.flags or policy.if_id or policy.dir not in DIR_NAMES:
        raise PlanError("only main-type policies without flags or if_id are restored at boot: %r" % (policy,))
    words = ["xfrm", "policy", "update"] + _selector_words(policy.selector, policy)
    words += ["dir", DIR_NAMES[policy.dir]] + _mark_words(policy.mark)
    words += ["priority", str(policy.priority)]
    if policy.action != ACTION_ALLOW:
        words += ["action", ACTION_NAMES[policy.action]]
    for template in policy.templates:
        words += _template_words(template)
    return " ".join(words)


def render_boot_policies(policies: Sequence[XfrmPolicy]) -> str:
    """The boot restore file for ``policies``: the header, then one line per policy in a
    stable order (so an unchanged set rewrites nothing)."""
    return BATCH_HEADER + "".join(line + "\n" for line in sorted(policy_batch_line(policy) for policy in policies))


class Keying(NamedTuple):
    """The keying record: the node, the boot id its SAs were derived with, and per peer the
    boot id it keyed that peer with (empty without per-pair keys: then no boot id matters)."""

    node: str
    boot_id: str
    per_pair_keys: bool
    peers: Mapping[str, str]


def render_keying(keying: Keying) -> str:
    return json.dumps({"version": KEYING_VERSION, "node": keying.node, "boot_id": keying.boot_id,
                       "per_pair_keys": keying.per_pair_keys, "peers": dict(sorted(keying.peers.items()))},
                      indent=1, sort_keys=True) + "\n"


def parse_keying(text: str) -> Optional[Keying]:
    """The keying record in ``text``, or None when it is not one this version wrote (a node
    without a record is treated as never keyed)."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("version") != KEYING_VERSION:
        return None
    peers = data.get("peers")
    if not (isinstance(data.get("node"), str) and isinstance(data.get("boot_id"), str) and isinstance(peers, dict)
            and all(isinstance(name, str) and isinstance(boot, str) for name, boot in peers.items())):
        return None
    return Keying(data["node"], data["boot_id"], bool(data.get("per_pair_keys", True)), dict(peers))


def next_keying(node: str, boot_id: str, per_pair_keys: bool, keyed: Mapping[str, Optional[str]],
                frozen: Sequence[str], previous: Optional[Keying]) -> Keying:
    """The record after a run that keyed the peers in ``keyed`` (peer name: the boot id its
    SAs are now derived with) and left the ``frozen`` ones as they were (their entry from
    ``previous`` stays). Peers in neither are no longer peers and leave the record."""
    peers: Dict[str, str] = {}
    if per_pair_keys:
        if previous is not None and previous.per_pair_keys:
            peers.update((name, previous.peers[name]) for name in frozen if name in previous.peers)
        peers.update((name, boot) for name, boot in keyed.items() if boot)
    return Keying(node, boot_id, per_pair_keys, peers)


class BootUnit(NamedTuple):
    """The boot unit's text and its fingerprint (as ``xfrm_info`` reports a unit file's)."""

    content: str
    fingerprint: str


def render_boot_unit(state_dir: str = DEFAULT_STATE_DIR) -> BootUnit:
    """The systemd service that restores ``state_dir``'s boot restore file (see above)."""
    if not isinstance(state_dir, str) or not _PLAIN_ABSOLUTE_PATH.match(state_dir) or "/../" in state_dir + "/":
        raise PlanError("state directory %r cannot be named in a systemd unit: it must be an absolute path of letters, "
                        "digits and . _ - / only" % (state_dir,))
    state_dir = state_dir.rstrip("/") or "/"
    restore_file = "%s/%s" % (state_dir.rstrip("/"), BOOT_POLICIES)
    content = (
        "# Managed by netsec.ipsec (the mesh role); changes are overwritten.\n"
        "# Restores the XFRM policies the IPsec mesh had on this node before the network comes up:\n"
        "# until the mesh re-keys the node, its traffic to peers is dropped, never sent in plaintext.\n"
        "[Unit]\n"
        "Description=Restore the netsec.ipsec mesh policies (fail closed until re-keyed)\n"
        "DefaultDependencies=no\n"
        "Wants=network-pre.target\n"
        "Before=network-pre.target shutdown.target\n"
        "Conflicts=shutdown.target\n"
        "RequiresMountsFor=%s\n"
        "ConditionPathExists=%s\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        "ExecStart=ip -force -batch %s\n"
        "\n"
        "[Install]\n"
        "WantedBy=sysinit.target\n"
    ) % (state_dir, restore_file, restore_file)
    return BootUnit(content, file_fingerprint(content.encode("ascii")))
