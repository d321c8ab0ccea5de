# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The peer table: a node's peers as one document, sent when it changes and kept on the node.

A mesh of N members gives each node N - 1 peers, and a rollout calls ``xfrm_endpoint`` once
per phase on every node. Given as the ``peers`` option, the peers travel with every call:
O(N) arguments per call, O(N²) per phase for the controller, which builds and sends them.
The table is what every node of one run would be given, rendered once on the controller:

* the same document for every node (each member, by name; the module leaves out the peer
  named like the node itself), one peer per line in name order, keys sorted, compact
  (``render_peer_table``), named by the SHA-256 of its text (``table_fingerprint``);
* peers as in the ``peers`` option (name, addresses, subnets, boot id) and the trust fields
  the inventory fixes (``inbound_level``, ``outbound``), never the trust a run computes;
* the module stores the text it is given in its state directory (``PEER_TABLE``, mode 0600,
  nothing secret in it: addresses, subnets, boot ids) and a later call names the stored
  table by its fingerprint instead of sending it again. A stored table is used only when its
  bytes hash to the fingerprint the call gives: a file changed on the node, or a table another
  controller sent, is refused, never used (``table_text``).

What a run vouches for travels with each call, as two lists of names (``table_peers``): the
peers whose OUT side is left as it is (``keep_outbound``: not known to accept ESP from this
node, outside ``--limit`` or failed) and those whose IN and FWD policies keep their level
(``keep_inbound_level``: not known to send ESP). Every other peer gets what the ``peers``
option gives a peer by default (``outbound: enable``, the module's ``inbound_level``), unless
the table fixes the field; the phase decides what of it applies, as with ``peers``. In a run
over the whole group both lists are empty, so a later phase sends a few hundred bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    LEVEL_KEEP, OUTBOUND_CHOICES, OUTBOUND_ENABLE, OUTBOUND_KEEP, PEER_LEVELS,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError

# The file in the module's state directory.
PEER_TABLE = "peer-table.json"
FINGERPRINT_PREFIX = "sha256:"
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}\Z")
# The fields of a peer, as in the ``peers`` option.
TABLE_FIELDS = ("name", "addresses", "subnets", "boot_id", "inbound_level", "outbound")
# The option the module reads the table from, for messages.
OPTION = "peer_table"


def render_peer_table(peers: Iterable[Mapping[str, Any]]) -> str:
    """The table's text: one peer per line (so that a diff of two tables shows the peers that
    changed), in name order, fields sorted, without fields that are None or empty."""
    entries = [{field: value for field, value in peer.items() if value is not None and value != []}
               for peer in peers]
    entries.sort(key=lambda entry: str(entry.get("name")))
    return "[\n" + ",\n".join(json.dumps(entry, sort_keys=True, separators=(",", ":")) for entry in entries) + "\n]\n"


def table_fingerprint(text: str) -> str:
    """``sha256:`` and the 64 hex digits of the SHA-256 of the table's text."""
    return FINGERPRINT_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_fingerprint(fingerprint: Any) -> str:
    if not isinstance(fingerprint, str) or not _FINGERPRINT.match(fingerprint):
        raise PlanError("%s.fingerprint must be sha256: and 64 lowercase hex digits, got %r" % (OPTION, fingerprint))
    return fingerprint


def table_text(fingerprint: str, given: Optional[str], stored: Optional[str], stored_path: str) -> str:
    """The text of the table a call refers to: ``given`` (the call's ``peer_table.peers``)
    when there is one, else ``stored`` (what ``stored_path`` holds, None without a file);
    either must hash to ``fingerprint``, or the call is refused with a message naming both."""
    check_fingerprint(fingerprint)
    if given is not None:
        actual = table_fingerprint(given)
        if actual != fingerprint:
            raise PlanError("%s.peers hashes to %s, not to %s.fingerprint %s: the table is not the one the "
                            "fingerprint names" % (OPTION, actual, OPTION, fingerprint))
        return given
    if stored is None:
        raise PlanError("%s gives no peers and %s holds no peer table: give %s.peers (the mesh role sends the "
                        "table to a node that does not hold it)" % (OPTION, stored_path, OPTION))
    actual = table_fingerprint(stored)
    if actual != fingerprint:
        raise PlanError("%s gives no peers and the table in %s is %s, not %s (%s.fingerprint): give %s.peers"
                        % (OPTION, stored_path, actual, fingerprint, OPTION, OPTION))
    return stored


def parse_peer_table(text: str) -> List[Dict[str, Any]]:
    """The peers of a table's text, each checked as the ``peers`` option checks a peer; a
    message names the entry (its position and name), the field and the value."""
    try:
        data: Any = json.loads(text)
    except ValueError as error:
        raise PlanError("%s.peers is not JSON: %s" % (OPTION, error)) from None
    if not isinstance(data, list):
        raise PlanError("%s.peers must be a JSON list of peers, got %s" % (OPTION, type(data).__name__))
    entries = [_checked_entry(entry, position) for position, entry in enumerate(data)]
    seen: Dict[str, int] = {}
    for position, entry in enumerate(entries):
        if entry["name"] in seen:
            raise PlanError("%s.peers[%d] and [%d] are both named %s"
                            % (OPTION, seen[entry["name"]], position, entry["name"]))
        seen[entry["name"]] = position
    return entries


def _checked_entry(entry: Any, position: int) -> Dict[str, Any]:
    where = "%s.peers[%d]" % (OPTION, position)
    if not isinstance(entry, dict):
        raise PlanError("%s must be a peer (a JSON object), got %r" % (where, entry))
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise PlanError("%s: name must be a non-empty string, got %r" % (where, name))
    where = "%s (%s)" % (where, name)
    unknown = sorted(set(entry) - set(TABLE_FIELDS))
    if unknown:
        raise PlanError("%s has unknown fields %s; a peer has %s" % (where, ", ".join(unknown), ", ".join(TABLE_FIELDS)))
    addresses = entry.get("addresses")
    if not _strings(addresses) or not addresses:
        raise PlanError("%s: addresses must be a non-empty list of strings, got %r" % (where, addresses))
    if "subnets" in entry and not _strings(entry["subnets"]):
        raise PlanError("%s: subnets must be a list of strings, got %r" % (where, entry["subnets"]))
    if entry.get("boot_id") is not None and not isinstance(entry["boot_id"], str):
        raise PlanError("%s: boot_id must be a string, got %r" % (where, entry["boot_id"]))
    for field, choices in (("inbound_level", PEER_LEVELS), ("outbound", OUTBOUND_CHOICES)):
        if entry.get(field) is not None and entry[field] not in choices:
            raise PlanError("%s: %s must be one of %s, got %r" % (where, field, ", ".join(choices), entry[field]))
    return dict(entry)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def table_peers(entries: Sequence[Mapping[str, Any]], keep_outbound: Iterable[str],
                keep_inbound_level: Iterable[str]) -> List[Dict[str, Any]]:
    """The table's peers in the form of the ``peers`` option, with the run's trust: the
    peers named in ``keep_outbound`` get ``outbound: keep`` and those in
    ``keep_inbound_level`` get ``inbound_level: keep``, unless the table fixes the field;
    every other peer gets what ``peers`` gives by default (``enable``, no level of its own).
    A name the table does not hold is an error: trust given to nobody is a mistake."""
    names = {entry["name"] for entry in entries}
    kept = {}
    for option, given in (("keep_outbound", keep_outbound), ("keep_inbound_level", keep_inbound_level)):
        kept[option] = set(given)
        unknown = sorted(kept[option] - names)
        if unknown:
            raise PlanError("%s.%s names %s, which the peer table does not hold" % (OPTION, option, ", ".join(unknown)))
    peers = []
    for entry in entries:
        outbound = entry.get("outbound") or (OUTBOUND_KEEP if entry["name"] in kept["keep_outbound"]
                                             else OUTBOUND_ENABLE)
        level = entry.get("inbound_level") or (LEVEL_KEEP if entry["name"] in kept["keep_inbound_level"] else None)
        peers.append({"name": entry["name"], "addresses": list(entry["addresses"]),
                      "subnets": list(entry.get("subnets") or []) or None, "boot_id": entry.get("boot_id") or None,
                      "inbound_level": level, "outbound": outbound})
    return peers
