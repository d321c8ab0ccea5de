# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inventory contract of the mesh role: who a node's peers are, computed on the controller.

Peers come from the inventory group, never from the play's hosts: ``--limit`` narrows what
is changed, not who is a peer, and a host that failed earlier in the run stays everyone's
peer. What depends on the run is how far each peer is trusted:

- the OUT side towards a peer is added only when the peer is known to have IN SAs for this
  node, that is, it completed the inbound phase in this run; otherwise existing OUT entries
  are kept as they are ("keep");
- the IN side requires encryption from a peer only when the peer completed the outbound
  phase in this run; otherwise its policies keep their level ("keep", new ones accept
  plaintext),

so a partial run (``--limit``, a failed host) never breaks or downgrades a converged pair.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KEYS_FILE_MODE, KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import file_fingerprint
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import desired_keys


class MeshInventoryError(ValueError):
    """An inventory variable that the mesh cannot use; the message names host and variable."""


PEER_OVERRIDE_FIELDS = ("addresses", "subnets", "inbound_level", "outbound", "boot_id")
ADDRESSES_VARIABLE = "ipsec_addresses"
SUBNETS_VARIABLE = "ipsec_subnets"
# What mesh_peers reads of each member's host variables.
MEMBER_VARIABLES = (ADDRESSES_VARIABLE, SUBNETS_VARIABLE)
LEVEL_REQUIRED = "required"
LEVEL_KEEP = "keep"
OUTBOUND_ENABLE = "enable"
OUTBOUND_KEEP = "keep"


def host_addresses(host: str, addresses: Any) -> List[str]:
    """A host's ``ipsec_addresses``, validated: a non-empty list of IP addresses."""
    if isinstance(addresses, str):
        addresses = [addresses]
    if not isinstance(addresses, (list, tuple)) or not addresses:
        raise MeshInventoryError("host %s: ipsec_addresses must be a non-empty list of IP addresses, got %r"
                                 % (host, addresses))
    checked = []
    for address in addresses:
        try:
            checked.append(str(ipaddress.ip_address(str(address))))
        except ValueError:
            raise MeshInventoryError("host %s: ipsec_addresses has %r, which is not an IP address"
                                     % (host, address)) from None
    return checked


def host_subnets(host: str, subnets: Any) -> Optional[List[str]]:
    """A host's ``ipsec_subnets`` in CIDR form, or None for the module's default."""
    if subnets is None or subnets == []:
        return None
    if isinstance(subnets, str):
        subnets = [subnets]
    checked = []
    for subnet in subnets:
        try:
            checked.append(str(ipaddress.ip_network(str(subnet), strict=False)))
        except ValueError:
            raise MeshInventoryError("host %s: ipsec_subnets has %r, which is not a network in CIDR form"
                                     % (host, subnet)) from None
    return checked


def mesh_peers(
    members: Sequence[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    local_host: str,
    boot_ids: Mapping[str, Optional[str]],
    inbound_ready_hosts: Iterable[str] = (),
    encrypting_hosts: Iterable[str] = (),
    overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
    unmanaged_peers: Optional[Sequence[Mapping[str, Any]]] = None,
) -> List[Dict[str, Any]]:
    """The ``peers`` option of ``xfrm_endpoint`` for ``local_host``.

    ``members`` is the inventory group. ``inbound_ready_hosts`` are the hosts that completed
    the inbound phase in this run (they accept ESP from their peers); ``encrypting_hosts``
    those that completed the outbound phase (they send ESP to their peers). ``overrides``
    maps a peer name to fields that replace what its host variables say;
    ``unmanaged_peers`` are peers outside the inventory, given whole.
    """
    overrides = overrides or {}
    inbound_ready = set(inbound_ready_hosts)
    encrypting = set(encrypting_hosts)
    peers: List[Dict[str, Any]] = []
    for member in members:
        if member == local_host:
            continue
        variables = hostvars[member]
        peer: Dict[str, Any] = {
            "name": member,
            "addresses": host_addresses(member, variables.get(ADDRESSES_VARIABLE)),
            "inbound_level": LEVEL_REQUIRED if member in encrypting else LEVEL_KEEP,
            "outbound": OUTBOUND_ENABLE if member in inbound_ready else OUTBOUND_KEEP,
        }
        subnets = host_subnets(member, variables.get(SUBNETS_VARIABLE))
        if subnets:
            peer["subnets"] = subnets
        if boot_ids.get(member):
            peer["boot_id"] = boot_ids[member]
        peers.append(_with_override(peer, overrides.get(member), member))
    for position, unmanaged in enumerate(unmanaged_peers or ()):
        peers.append(_unmanaged_peer(unmanaged, position))
    return peers


def _with_override(peer: Dict[str, Any], override: Optional[Mapping[str, Any]], name: str) -> Dict[str, Any]:
    if not override:
        return peer
    unknown = sorted(set(override) - set(PEER_OVERRIDE_FIELDS))
    if unknown:
        raise MeshInventoryError("ipsec_peer_overrides[%s] has unknown fields %s; allowed: %s"
                                 % (name, ", ".join(unknown), ", ".join(PEER_OVERRIDE_FIELDS)))
    merged = dict(peer)
    if "addresses" in override:
        merged["addresses"] = host_addresses(name, override["addresses"])
    if "subnets" in override:
        subnets = host_subnets(name, override["subnets"])
        merged.pop("subnets", None)
        if subnets:
            merged["subnets"] = subnets
    for field in ("inbound_level", "outbound", "boot_id"):
        if override.get(field):
            merged[field] = override[field]
    return merged


def _unmanaged_peer(unmanaged: Mapping[str, Any], position: int) -> Dict[str, Any]:
    where = "ipsec_unmanaged_peers[%d]" % position
    if not isinstance(unmanaged, Mapping) or not unmanaged.get("name"):
        raise MeshInventoryError("%s must be a dict with at least name and addresses" % where)
    # Nothing in the run vouches for a peer outside the inventory: its entry says it all.
    peer: Dict[str, Any] = {
        "name": str(unmanaged["name"]),
        "addresses": host_addresses(where, unmanaged.get("addresses")),
    }
    for field in ("inbound_level", "outbound"):
        if unmanaged.get(field):
            peer[field] = unmanaged[field]
    subnets = host_subnets(where, unmanaged.get("subnets"))
    if subnets:
        peer["subnets"] = subnets
    if unmanaged.get("boot_id"):
        peer["boot_id"] = str(unmanaged["boot_id"])
    return peer


def boot_ids_from_results(play_hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]],
                          variable: str, outside_results: Any) -> Dict[str, str]:
    """Boot ids by host name from the role's two read-only ``xfrm_info`` steps.

    ``variable`` names the result each play host registered; ``outside_results`` is the
    registered loop over group members outside the play. Unreachable or failed reads are
    left out: such a peer keeps its existing SAs everywhere (the module names it).
    """
    boot_ids: Dict[str, str] = {}
    for host, result in _member_reads(play_hosts, hostvars, variable, outside_results):
        boot_id = str(result.get("boot_id") or "").strip()
        if boot_id and host:
            boot_ids[str(host)] = boot_id
    return boot_ids


def current_keys_from_results(play_hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]],
                              variable: str, outside_results: Any, local_host: Optional[str] = None) -> List[str]:
    """The current keys (masked key lines, as ``xfrm_info`` reports them) that the members
    (other than ``local_host``, when given) hold, read by the same two steps as the boot ids,
    sorted and without repeats: what ``xfrm_keys`` may repair a node's key to. A node's own
    key in the list changes nothing: it is never the new key when the node's key changes."""
    found = {str(result["current_key"]) for host, result in _member_reads(play_hosts, hostvars, variable, outside_results)
             if host != local_host and result.get("current_key")}
    return sorted(found)


def member_variables(members: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """The host variables ``mesh_peers`` reads, per member: computed once per run, so that
    building each node's peers does not look up every member's ``hostvars`` again (each lookup
    assembles all of that host's variables, which grows as members squared)."""
    found: Dict[str, Dict[str, Any]] = {}
    for member in members:
        variables = hostvars[member]
        found[member] = {name: variables.get(name) for name in MEMBER_VARIABLES}
    return found


def _member_reads(play_hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]], variable: str,
                  outside_results: Any) -> Iterator[Tuple[Any, Mapping[str, Any]]]:
    """(host, result) of every successful ``xfrm_info`` read: what each play host registered
    as ``variable``, then the items of the delegated loop over members outside the play (the
    host there is the loop item, None when missing). Failed, unreachable and skipped reads are
    left out."""
    for host in play_hosts:
        if _usable(hostvars[host].get(variable)):
            yield host, hostvars[host][variable]
    for result in (outside_results or {}).get("results", []) if isinstance(outside_results, Mapping) else []:
        if _usable(result):
            yield result.get("item"), result


def _usable(result: Any) -> bool:
    return isinstance(result, Mapping) and not (result.get("failed") or result.get("unreachable") or result.get("skipped"))


def forwarding_needs(addresses: Sequence[str], subnets: Sequence[str]) -> Dict[str, bool]:
    """Which forwarding sysctls a node needs: IPv6 for IPv6 tunnels (as Cilium's seed did),
    and each family whose subnets the node routes (a subnet that is not one of its own
    addresses as /32 or /128)."""
    own_hosts = {str(ipaddress.ip_network(address)) for address in host_addresses("local", addresses)}
    routed = [ipaddress.ip_network(subnet, strict=False) for subnet in (host_subnets("local", subnets) or [])
              if str(ipaddress.ip_network(subnet, strict=False)) not in own_hosts]
    has_ipv6_tunnel = any(":" in address for address in addresses)
    return {
        "ipv6": has_ipv6_tunnel or any(net.version == 6 for net in routed),
        "ipv4": any(net.version == 4 for net in routed),
    }


def contract_problems(play_hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]],
                      groups: Mapping[str, Sequence[str]], group: str) -> List[str]:
    """What breaks the role's inventory contract, one message per host and variable (empty
    when nothing does): checked once for the whole play, not as one task per host.

    Only what must be a host variable is checked here (``mesh_peers`` reads every member's
    addresses from ``hostvars``); the key may also be a play or extra variable, which
    ``hostvars`` does not hold, so the role checks it on each node that needs it."""
    if group not in groups:
        return ["the mesh group %s is not in the inventory (variable ipsec_mesh_group)" % group]
    members = set(groups[group])
    problems: List[str] = []
    for host in play_hosts:
        if host not in members:
            problems.append("%s: not a member of the mesh group %s" % (host, group))
        if hostvars[host].get(ADDRESSES_VARIABLE) is None:
            problems.append("%s: %s is not set" % (host, ADDRESSES_VARIABLE))
    return problems


def keys_file_is_current(node_info: Any, content: Optional[str], keys: Optional[Sequence[Mapping[str, Any]]]) -> bool:
    """Whether the node's keys file, as ``xfrm_info`` read it, is already the file
    ``xfrm_keys`` would write from ``content`` or ``keys`` with its default mode, so that the
    keys task has nothing to do. False whenever that is not certain: no read, both or neither
    option given, content that does not parse (the keys task then names the problem)."""
    if not isinstance(node_info, Mapping) or not node_info.get("keys_file_fingerprint"):
        return False
    if (content is None) == (keys is None):
        return False
    try:
        desired = desired_keys(None if content is None else str(content), keys)
    except (KeysFileError, UnicodeError, TypeError, AttributeError):
        return False
    # Exactly one option is given, so desired_keys returns keys and bytes, never None.
    return (node_info.get("keys_file_mode") == KEYS_FILE_MODE
            and node_info["keys_file_fingerprint"] == file_fingerprint(desired[1]))
