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
from typing import Any, Dict, FrozenSet, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KEYS_FILE_MODE, KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import file_fingerprint
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import desired_keys
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import tunnel_address_problem
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.peer_table import (
    render_peer_table, table_fingerprint,
)


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
    """A host's ``ipsec_addresses``, validated: a non-empty list of tunnel addresses (each an
    address a peer can reach, ``desired.tunnel_address_problem``), at most one per family."""
    if isinstance(addresses, str):
        addresses = [addresses]
    if not isinstance(addresses, (list, tuple)) or not addresses:
        raise MeshInventoryError("host %s: ipsec_addresses must be a non-empty list of IP addresses, got %r"
                                 % (host, addresses))
    checked: List[str] = []
    for address in addresses:
        try:
            text = str(ipaddress.ip_address(str(address)))
        except ValueError:
            raise MeshInventoryError("host %s: ipsec_addresses has %r, which is not an IP address"
                                     % (host, address)) from None
        problem = tunnel_address_problem(str(address))
        if problem:
            raise MeshInventoryError("host %s: ipsec_addresses has %s, which %s" % (host, address, problem))
        same_family = [other for other in checked if (":" in other) == (":" in text)]
        if same_family:
            raise MeshInventoryError("host %s: ipsec_addresses has two %s addresses (%s and %s); one per family "
                                     "is supported" % (host, "IPv6" if ":" in text else "IPv4", same_family[0], text))
        checked.append(text)
    return checked


def host_subnets(host: str, subnets: Any) -> Optional[List[str]]:
    """A host's ``ipsec_subnets`` in CIDR form (the subnets it routes; its tunnel addresses
    are protected whatever they say), or None when there are none."""
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
        trust = {"inbound_level": LEVEL_REQUIRED if member in encrypting else LEVEL_KEEP,
                 "outbound": OUTBOUND_ENABLE if member in inbound_ready else OUTBOUND_KEEP}
        peers.append(_member_peer(member, hostvars[member], boot_ids, overrides, trust))
    for position, unmanaged in enumerate(unmanaged_peers or ()):
        peers.append(_unmanaged_peer(unmanaged, position))
    return peers


def peer_table(
    members: Sequence[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    boot_ids: Mapping[str, Optional[str]],
    overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
    unmanaged_peers: Optional[Sequence[Mapping[str, Any]]] = None,
) -> Dict[str, Any]:
    """The peer table of the mesh (``_planner.peer_table``), the same for every node: every
    member as ``mesh_peers`` gives it, without the trust a run computes (the endpoint module
    gets that with each call), and the unmanaged peers; ``peers`` is its text,
    ``fingerprint`` names it. Built once per run on the controller: O(members)."""
    overrides = overrides or {}
    entries: List[Dict[str, Any]] = []
    for member in members:
        entries.append(_member_peer(member, hostvars[member], boot_ids, overrides))
    for position, unmanaged in enumerate(unmanaged_peers or ()):
        entries.append(_unmanaged_peer(unmanaged, position))
    text = render_peer_table(entries)
    return {"fingerprint": table_fingerprint(text), "peers": text}


def untrusted_members(members: Sequence[str], trusted: Sequence[str]) -> List[str]:
    """The members not in ``trusted``, in the members' order (the names a phase passes to the
    endpoint module as ``keep_outbound`` or ``keep_inbound_level``)."""
    vouched = set(trusted)
    return [member for member in members if member not in vouched]


def _member_peer(member: str, variables: Mapping[str, Any], boot_ids: Mapping[str, Optional[str]],
                 overrides: Mapping[str, Mapping[str, Any]], trust: Optional[Mapping[str, str]] = None
                 ) -> Dict[str, Any]:
    """Inventory member ``member`` as a peer: its addresses, subnets and boot id from its host
    variables, the ``trust`` fields a run gives it (none in the peer table), then its override."""
    peer: Dict[str, Any] = {"name": member, "addresses": host_addresses(member, variables.get(ADDRESSES_VARIABLE))}
    peer.update(trust or {})
    subnets = host_subnets(member, variables.get(SUBNETS_VARIABLE))
    if subnets:
        peer["subnets"] = subnets
    if boot_ids.get(member):
        peer["boot_id"] = boot_ids[member]
    return _with_override(peer, overrides.get(member), member)


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
    """Which forwarding sysctls a node needs: those of each family whose subnets it routes (a
    subnet that is not one of its own addresses as /32 or /128), and no other. A node whose
    IPv6 traffic only starts and ends on itself must stay a host: a forwarding interface
    stops accepting router advertisements (accept_ra 1), so a node configured by SLAAC would
    lose its default route."""
    own_hosts = {str(ipaddress.ip_network(address)) for address in host_addresses("local", addresses)}
    routed = [ipaddress.ip_network(subnet, strict=False) for subnet in (host_subnets("local", subnets) or [])
              if str(ipaddress.ip_network(subnet, strict=False)) not in own_hosts]
    return {
        "ipv6": any(net.version == 6 for net in routed),
        "ipv4": any(net.version == 4 for net in routed),
    }


def contract_problems(play_hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]],
                      groups: Mapping[str, Sequence[str]], group: str,
                      overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                      unmanaged_peers: Optional[Sequence[Mapping[str, Any]]] = None) -> List[str]:
    """What breaks the role's inventory contract, one message per problem naming the host,
    the variable and why (empty when nothing does), checked once for the whole play on the
    controller, before any node is touched (check mode too).

    Checked: every play host is a member; every member's addresses and subnets (as
    ``ipsec_peer_overrides`` changes them) and every unmanaged peer's are valid tunnel
    addresses and networks; no two of them share an address; every two have an address
    family in common; and every subnet can be carried to every other one (each of them has a
    tunnel address of its family). The key may also be a play or extra variable, which
    ``hostvars`` does not hold, so the role checks it on each node that needs it."""
    if group not in groups:
        return ["the mesh group %s is not in the inventory (variable ipsec_mesh_group)" % group]
    members = list(groups[group])
    problems = ["%s: not a member of the mesh group %s" % (host, group) for host in play_hosts if host not in members]
    nodes: List[Tuple[str, List[str], List[str]]] = []
    for member in members:
        variables = hostvars[member]
        if variables.get(ADDRESSES_VARIABLE) is None:
            problems.append("%s: %s is not set" % (member, ADDRESSES_VARIABLE))
            continue
        try:
            peer = _with_override({"addresses": host_addresses(member, variables.get(ADDRESSES_VARIABLE)),
                                   "subnets": host_subnets(member, variables.get(SUBNETS_VARIABLE)) or []},
                                  (overrides or {}).get(member), member)
        except MeshInventoryError as error:
            problems.append(str(error))
            continue
        nodes.append((member, peer["addresses"], peer.get("subnets") or []))
    for position, unmanaged in enumerate(unmanaged_peers or ()):
        try:
            peer = _unmanaged_peer(unmanaged, position)
        except MeshInventoryError as error:
            problems.append(str(error))
            continue
        nodes.append((peer["name"], peer["addresses"], peer.get("subnets") or []))
    return problems + mesh_layout_problems(nodes)


def rebooted_member_problems(play_hosts: Sequence[str], hostvars: Mapping[str, Mapping[str, Any]], variable: str,
                             members: Sequence[str]) -> List[str]:
    """A play host that rebooted since it was keyed (its ``xfrm_info``, registered as
    ``variable``, reports a ``keyed_boot_id`` other than its ``boot_id``) while members are
    outside the run: they still hold keys for its old boot, so re-keying it alone would
    leave its pairs with them broken (dropped, never plaintext) without a word. One message
    per such host, naming the members and how to finish; empty when there is none."""
    outside = [member for member in members if member not in set(play_hosts)]
    if not outside:
        return []
    problems = []
    for host in play_hosts:
        info = hostvars[host].get(variable)
        if not _usable(info):
            continue
        keyed_boot_id, boot_id = info.get("keyed_boot_id"), info.get("boot_id")
        if keyed_boot_id and boot_id and keyed_boot_id != boot_id:
            problems.append(
                "%s rebooted since it was keyed (boot id %s..., its keys were derived for %s...): %s %s outside this "
                "run and still hold%s keys for its old boot, so its pairs with them would stay broken (their traffic "
                "is dropped, never sent in plaintext). Run mesh.yml over the whole group, or with --limit %s"
                % (host, str(boot_id)[:8], str(keyed_boot_id)[:8], ", ".join(outside),
                   "is" if len(outside) == 1 else "are", "s" if len(outside) == 1 else "",
                   ",".join([host] + outside)))
    return problems


def mesh_layout_problems(nodes: Sequence[Tuple[str, Sequence[str], Sequence[str]]]) -> List[str]:
    """What no mesh of these nodes (name, tunnel addresses, other subnets) could carry as ESP
    (see ``contract_problems``), in time linear in the number of nodes: an address held
    twice, two nodes without a family in common, a subnet of a family its node has no tunnel
    address for."""
    problems: List[str] = []
    owner_of: Dict[str, str] = {}
    families_of: Dict[str, FrozenSet[int]] = {}
    for name, addresses, _subnets in nodes:
        for address in addresses:
            if address in owner_of:
                problems.append("%s and %s both have the tunnel address %s: two members cannot share an address (is "
                                "one a copy of the other?)" % (owner_of[address], name, address))
            owner_of.setdefault(address, name)
        families_of[name] = frozenset(6 if ":" in address else 4 for address in addresses)
    # Nodes with the same families are alike: compare one of each kind.
    example_of: Dict[FrozenSet[int], str] = {}
    for name, families in families_of.items():
        example_of.setdefault(families, name)
    kinds = sorted(example_of.items(), key=lambda item: sorted(item[0]))
    for index, (families, name) in enumerate(kinds):
        for other_families, other in kinds[index + 1:]:
            if not families & other_families:
                problems.append("%s (%s only) and %s (%s only) have no address family in common: nothing between "
                                "them can be carried as ESP; give one of them a tunnel address of the other's family"
                                % (name, _family_names(families), other, _family_names(other_families)))
    for name, _addresses, subnets in nodes:
        for subnet in subnets:
            family = 6 if ":" in subnet else 4
            if family not in families_of[name]:
                problems.append("%s: subnet %s cannot be carried: %s has no IPv%d tunnel address, so its traffic "
                                "would leave in plaintext" % (name, subnet, name, family))
    return problems


def _family_names(families: FrozenSet[int]) -> str:
    return " and ".join("IPv%d" % family for family in sorted(families))


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
