# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The desired XFRM object set of one node: pure, no kernel, no Ansible.

Given the local node L, its peers, the keys and the options, ``build_desired`` returns every
SA and policy L must hold (docs/docsite/rst/how_it_works.rst, section The XFRM object model).
Decisions, each one final for this collection:

**Addresses.** A node has at most one tunnel address per family, and only an address that
can be an ESP endpoint between hosts: unicast, not loopback, link-local, unspecified,
multicast, broadcast or IPv4-mapped IPv6 (which would alias an IPv4 node and give both
entries one key and SPI). Anything else is an error naming the node and the address.

**Identity and pairings.** L is known by its name (the inventory host), never by the
kernel's hostname: a peer of L's own name is L listed in its own group and is left out; any
other peer that has one of L's tunnel addresses is an error naming both (a clone that kept
L's address, or an inventory mistake), never a silent skip. For each peer P and each family
both have (IPv4 first), L and P are paired by those addresses. Two nodes without a family in
common are an error: nothing between them could be carried as ESP.

**Subnets.** A node's subnets are its tunnel addresses as host prefixes, always, plus the
subnets it routes: listing subnets never takes a tunnel address out of the mesh. A subnet of
a family its node has no tunnel address for cannot be carried and is an error naming the
node, the subnet and why: it would otherwise leave in plaintext. Between a dual-stack node
and a single-stack one only the common family is paired: a member talks to another in a
family only when both have a tunnel address of it.

**Keys.** IN SAs and OUT SAs are installed for every key of the keys file, so a rotation is
make-before-break: the new key's IN SAs exist everywhere before anybody sends with it.
Egress uses exactly one key, ``out_spi`` (default: the current key, the last one), because
the OUT policy's template pins that key's wire SPI. Without the pin the kernel would pick
the SA it finds for (reqid, src, dst), which is the newest one added, so egress would switch
keys as soon as the new key's OUT SA appeared, before the peers have its IN SA.

**Per-pair keys** (default): the OUT SA L→P gets ``derive_key(K, L, P, bootL, bootP)`` and the
IN SA P→L ``derive_key(K, P, L, bootP, bootL)``, so L's OUT SA to P carries exactly the key
of P's IN SA from L. For auth+enc keys both keys are derived. A peer without a boot id
cannot be keyed: it gets no desired objects and is **frozen** — its owned entries in the
kernel are left exactly as they are (not purged), and a warning names it. With
``per_pair_keys: false`` every SA carries the master key (interop only) and boot ids are
not needed.

**Wire SPIs.** The kernel identifies an inbound SA by (dst, SPI, proto, mark) only, not by
its source; two peers sending to L with the same SPI would need the same slot. So with
``marks: none`` the SPI on the wire is ``key_id << 28 | sender_id(sender address)``, where
``sender_id`` is the first 28 bits of SHA-256(``WIRE_SPI_DOMAIN`` ‖ packed address). Both
ends compute it from public data. Top nibble = key id (1-15), so a wire SPI is never in the
reserved range 0-255. Two nodes of the same family whose sender ids collide are refused
with an error naming both (among n nodes the chance is about n²/2²⁹: 0.2 % for 1000 nodes);
changing one tunnel address resolves it. With ``marks: cilium`` the SPI is the key id, as in
Cilium, and the packet mark (which carries a per-peer id) tells inbound SAs apart.

**Marks** (``marks: cilium``, off by default). Cilium's layout: OUT SA and OUT policy mark
``0xE00 | spi << 12 | peer_id << 16`` / ``0xFFFFFF00``; IN SA mark ``0xD00 | peer_id << 16`` /
``0xFFFF0F00``; output marks ``0xE00`` (OUT SA) and ``0xD00`` (IN SA) / ``0xFFFFFF00``. IN and
FWD policies carry no mark. ``peer_id`` is 1-65535, ``Peer.mark_id`` when given, otherwise
derived from the peer's name (SHA-256 of ``MARK_ID_DOMAIN`` ‖ name, mod 65535, plus 1) so every
node and the datapath compute the same value; collisions among L's peers are an error
naming both (set ``mark_id`` on one). This mode only works with a datapath (BPF,
nftables) that sets these marks on packets: unmarked packets match no OUT policy and leave
in plaintext. Since the datapath, not the planner, picks the key id in the mark, this mode
installs one OUT policy per key (the mark differs by the SPI nibble, so they are distinct
policies, as in Cilium); ``out_spi`` then only has to name a key of the file.

**Policies.** OUT per peer subnet: ``any → subnet``, template L→P, required (no SA means drop,
never plaintext). IN per peer subnet: ``subnet → any``, template P→L with SPI 0 (any of P's
keys), optional when the level is ``use`` (per-peer ``inbound_level`` overrides the option).
FWD as IN, only when L's subnets are routed (any of L's subnets is not one of L's own
addresses as a host prefix). All at ``PRIORITY_ENCRYPT``.
``outbound: false`` builds only the IN side (IN SAs, IN/FWD policies, bypass); see
``reconcile`` for why existing OUT entries are then left alone rather than purged.

**Bypass** (management; default: L's own SSH server, tcp/22): template-less allow policies
at ``PRIORITY_BYPASS`` (numerically lower, so they win over every encrypt policy), per rule
and per family L has. A *server* rule lets in what comes to L's port (in, dport=port) and
lets out L's replies from it (out, sport=port); a *client* rule, only when asked for, lets
out what L sends to that port elsewhere (out, dport=port) and in the replies (in,
sport=port). A rule may name the far end's networks (the management network, say); by
default the far end is anywhere, and a rule whose networks are all of the other family
installs nothing in this one.

Every bypass policy is a hole in ``required``: a packet that matches it passes in plaintext
whatever source it claims. So the default opens exactly what must stay open to keep Ansible
in (a spoofed peer reaches L's sshd, which authenticates on its own) and nothing more: a
spoofed packet *from* port 22 to another port of L matches no bypass and meets the
required IN policy of the peer it claims to be (dropped, XfrmInTmplMismatch). The earlier
rule, source and destination port 22 in and out, any to any, let such a packet reach every
port of L and carried the reply out in plaintext. What the server rule still lets out in
plaintext is traffic from L's port 22, which only a privileged process (sshd) can send. No
FWD bypass: the connection to keep alive is Ansible's own, which ends on this host; a fwd
bypass would send forwarded SSH between peer subnets in plaintext for nothing. An empty list
installs none.

**IPv6 neighbour discovery.** When L has an IPv6 address, four more template-less allow
policies at ``PRIORITY_BYPASS``, whatever ``bypass`` says: ICMPv6 neighbour solicitation and
advertisement (types 135, 136; the kernel matches an ICMP type as the selector's source
port), in and out. Without them a peer's address resolution (a plaintext solicitation from
its tunnel address to a solicited-node multicast address) matches L's required IN policy
for that peer and is dropped (XfrmInTmplMismatch), so no IPv6 packet, ESP or SSH, ever
reaches L; and out, so resolution and unreachability detection keep working while an SA is
missing, which the management bypass relies on. libreswan installs the same exemption.

**No default-drop policy.** An explicit block policy per peer subnet below the OUT policy is
not implemented: without marks it would have the OUT policy's selector and hence its kernel
identity (the kernel refuses a second policy differing only in priority), and it would
protect nothing here, because the OUT policy's template is required (no SA → drop) and
policies are changed in place (UPDPOLICY), never deleted and re-added.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import ipaddress
from typing import Dict, FrozenSet, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.catalogue import ALGORITHMS_BY_ROLE, ROLE_AUTH
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import (
    FORM_AEAD, SPI_MAX, SPI_MIN, Key, KeysFile,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.derive import (
    KeyDerivationError, address_bytes, derive_material,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import (
    DEFAULT_REQID, PRIORITY_BYPASS, PRIORITY_ENCRYPT, PlanError, check_reqid,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ACTION_ALLOW, AF_INET, AF_INET6, ALGO_AEAD, ALGO_AUTH, ALGO_CRYPT, ALL_ALGOS, DIR_FWD, DIR_IN, DIR_OUT,
    INFINITE_LIFETIME, IPPROTO_ESP, MODE_TUNNEL, POLICY_TYPE_MAIN, Algorithm, Mark, Selector, Template, XfrmEntry,
    XfrmPolicy, XfrmState, any_address, canonical_address, family_of, max_prefixlen, parsed_address, selector_between,
    zero_selector,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render

FAMILIES = (AF_INET, AF_INET6)  # pairing order: IPv4 first
FAMILY_NAMES = {AF_INET: "IPv4", AF_INET6: "IPv6"}

LEVEL_USE = "use"
LEVEL_REQUIRED = "required"
LEVELS = (LEVEL_USE, LEVEL_REQUIRED)
# Per peer only: keep the level of the peer's installed IN/FWD policies ("use" for new ones).
LEVEL_KEEP = "keep"
PEER_LEVELS = LEVELS + (LEVEL_KEEP,)

# Per peer: whether the OUT side towards it is installed, or left as it is because the peer
# is not known to accept ESP from this node yet.
OUTBOUND_ENABLE = "enable"
OUTBOUND_KEEP = "keep"
OUTBOUND_CHOICES = (OUTBOUND_ENABLE, OUTBOUND_KEEP)

# Rollout phases (docs/docsite/rst/how_it_works.rst, section Safe orders), each run on every node before the next.
PHASE_INBOUND = "inbound"
PHASE_OUTBOUND = "outbound"
PHASE_ALL = "all"
PHASES = (PHASE_INBOUND, PHASE_OUTBOUND, PHASE_ALL)

MARKS_NONE = "none"
MARKS_CILIUM = "cilium"
MARKS_MODES = (MARKS_NONE, MARKS_CILIUM)

STATE_PRESENT = "present"
STATE_ABSENT = "absent"
STATES = (STATE_PRESENT, STATE_ABSENT)

# ESN with a 1024-packet replay window, as Cilium installs its per-pair SAs. OUT SAs get the
# same shape (the window means nothing for egress) so that every SA has one uniform form.
REPLAY_WINDOW = 1024
USE_ESN = True

# Wire SPI (marks: none): key id in the top nibble, 28 bits of sender id below it.
WIRE_SPI_DOMAIN = b"netsec.ipsec/wire-spi/v1\x00"
SENDER_ID_BITS = 28
KEY_ID_SHIFT = SENDER_ID_BITS

# Cilium's mark layout (reference cilium-ipsec.md §2.1/2.2).
MARK_MAGIC_ENCRYPT = 0x0E00
MARK_MAGIC_DECRYPT = 0x0D00
MARK_SPI_SHIFT = 12
MARK_PEER_ID_SHIFT = 16
MARK_MASK_OUT = 0xFFFFFF00
MARK_MASK_IN = 0xFFFF0F00
OUTPUT_MARK_MASK = 0xFFFFFF00
MARK_ID_DOMAIN = b"netsec.ipsec/mark-id/v1\x00"
MARK_ID_MIN = 1
MARK_ID_MAX = 0xFFFF

# Truncation of the ICV for auth algorithms, sent explicitly as XFRMA_ALG_AUTH_TRUNC: the
# RFC values (RFC 2404 md5/sha1 96, RFC 4868 sha2 = half the digest, RFC 3566 xcbc 96), as
# the keys catalogue holds them. Cilium sends XFRMA_ALG_AUTH and so gets the kernel's legacy
# default of 96 for hmac(sha256); an auth+enc key therefore does not interoperate with
# Cilium's SAs.
AUTH_TRUNCATION_BITS = {name: spec.esp_icv_bits for name, spec in ALGORITHMS_BY_ROLE[ROLE_AUTH].items()}

# Management bypass: protocols by name, the sides of a rule, and the default list.
BYPASS_PROTOCOLS = {"tcp": 6, "udp": 17, "sctp": 132}
BYPASS_SERVER = "server"  # a service of this node: inbound to its port, its replies
BYPASS_CLIENT = "client"  # this node as a client: outbound to the port, the replies
BYPASS_SIDES = (BYPASS_SERVER, BYPASS_CLIENT)
DEFAULT_BYPASS: Tuple[Mapping[str, object], ...] = ({"proto": "tcp", "port": 22, "side": BYPASS_SERVER},)
# ICMPv6 neighbour solicitation and advertisement (RFC 4861), always let through in plaintext.
IPPROTO_ICMPV6 = 58
ND_ICMPV6_TYPES = (135, 136)
PORT_MIN = 1
PORT_MAX = 0xFFFF

# Object roles: what an entry does for the local node, which decides where its operations
# go in the safe order (see ``reconcile``).
ROLE_IN_SA = "in-sa"
ROLE_OUT_SA = "out-sa"
ROLE_IN_POLICY = "in-policy"  # IN and FWD
ROLE_OUT_POLICY = "out-policy"
ROLE_BYPASS = "bypass"  # any template-less policy

BypassEntry = Union[Mapping[str, object], Tuple[Union[str, int], int]]


class BypassRule(NamedTuple):
    """One management bypass rule (see the module docstring): protocol number, port, side,
    and the far end's networks (empty: anywhere)."""

    proto: int
    port: int
    side: str = BYPASS_SERVER
    networks: Tuple[str, ...] = ()


# --------------------------------------------------------------------------------------
# Inputs


def tunnel_address_problem(address: str) -> Optional[str]:
    """Why ``address`` (text) cannot be a tunnel endpoint between hosts, or None when it can.

    The kernel would take several of these, and each would leave the pair unprotected or
    broken: a zone or a link-local address ties the SA to one link; an IPv4-mapped IPv6
    address is the IPv4 address to the key derivation, so a node listed both ways would get
    one key and SPI on two SAs; the others never carry a host-to-host packet.
    """
    if "%" in address:
        return "has a zone (%s): tunnel addresses are global, link-local ones cannot be used" % address
    try:
        parsed = parsed_address(address)
    except ValueError:
        return "is not an IP address"
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return "is an IPv4-mapped IPv6 address: give the IPv4 address %s instead" % parsed.ipv4_mapped
    for reason, test in _NOT_TUNNEL_ENDPOINTS:
        if test(parsed):
            return "is %s, not a unicast address a peer can reach" % reason
    return None


_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_NOT_TUNNEL_ENDPOINTS = (
    ("unspecified", lambda address: address.is_unspecified),
    ("a loopback address", lambda address: address.is_loopback),
    ("link-local", lambda address: address.is_link_local),
    ("multicast", lambda address: address.is_multicast),
    ("the broadcast address", lambda address: address == _LIMITED_BROADCAST),
)


def _canonical_addresses(owner: str, addresses: Iterable[str]) -> Tuple[str, ...]:
    if isinstance(addresses, str):
        addresses = [addresses]
    canonical: List[str] = []
    seen_families: Dict[int, str] = {}
    for address in addresses:
        problem = tunnel_address_problem(str(address))
        if problem:
            raise PlanError("%s: tunnel address %s %s" % (owner, _quoted(address), problem))
        text = canonical_address(str(address))
        family = family_of(text)
        if family in seen_families:
            raise PlanError("%s has two %s tunnel addresses (%s and %s); one per family is "
                            "supported" % (owner, FAMILY_NAMES[family], seen_families[family], text))
        seen_families[family] = text
        canonical.append(text)
    return tuple(canonical)


def _quoted(value: object) -> str:
    return repr(value) if not isinstance(value, str) else value


def _canonical_subnets(owner: str, addresses: Sequence[str], subnets: Iterable[str]) -> Tuple[str, ...]:
    """The node's tunnel addresses as host prefixes, then its other subnets (host bits
    cleared: the kernel does not canonicalise selectors, so 10.1.0.1/16 would be a policy
    distinct from 10.1.0.0/16), each once; a subnet of a family the node has no tunnel
    address for is refused."""
    if isinstance(subnets, str):
        subnets = [subnets]
    canonical: List[str] = [host_prefix(address) for address in addresses]
    families = {family_of(address) for address in addresses}
    for subnet in subnets:
        try:
            text = str(ipaddress.ip_network(str(subnet), strict=False))
        except ValueError:
            raise PlanError("%s: subnet %s is not an IP network" % (owner, _quoted(subnet))) from None
        family = family_of(text)
        if family not in families:
            raise PlanError("%s: subnet %s cannot be carried: %s has no %s tunnel address, so its traffic "
                            "would leave in plaintext" % (owner, text, owner, FAMILY_NAMES[family]))
        if text not in canonical:
            canonical.append(text)
    return tuple(canonical)


def host_prefix(address: str) -> str:
    """An address as a one-host network (``/32`` or ``/128``)."""
    return "%s/%d" % (address, max_prefixlen(family_of(address)))


def _canonicalise_endpoint(endpoint: Union["LocalNode", "Peer"], owner: str) -> None:
    """Canonical addresses and subnets (the addresses as host prefixes, then the rest) of a node."""
    addresses = _canonical_addresses(owner, endpoint.addresses)
    if not addresses:
        raise PlanError("%s has no tunnel address" % owner)
    subnets = _canonical_subnets(owner, addresses, endpoint.subnets)
    object.__setattr__(endpoint, "addresses", addresses)
    object.__setattr__(endpoint, "subnets", subnets)


def _address_of_family(addresses: Sequence[str], family: int) -> Optional[str]:
    for address in addresses:
        if family_of(address) == family:
            return address
    return None


@dataclasses.dataclass(frozen=True)
class LocalNode:
    """The node being planned, known by ``name`` (its inventory host). ``subnets`` are its
    addresses as host prefixes and the subnets it routes."""

    name: str
    addresses: Tuple[str, ...]
    subnets: Tuple[str, ...] = ()
    boot_id: Optional[str] = None

    def __post_init__(self) -> None:
        _canonicalise_endpoint(self, "local node %s" % self.name)

    def address(self, family: int) -> Optional[str]:
        return _address_of_family(self.addresses, family)

    @property
    def routes_subnets(self) -> bool:
        """True when a subnet is more than one of its own addresses (FWD policies needed)."""
        own = {host_prefix(address) for address in self.addresses}
        return any(subnet not in own for subnet in self.subnets)


@dataclasses.dataclass(frozen=True)
class Peer:
    """A peer of the local node.

    ``subnets`` are its addresses as host prefixes and the subnets it routes. ``inbound_level`` overrides the
    option for this peer (``keep``: the installed IN/FWD policies keep their level, new ones
    get ``use``). ``outbound`` is ``keep`` when the peer is not known to have IN SAs for this
    node yet: OUT entries towards it are then neither added nor removed. ``mark_id``
    (``marks: cilium`` only) overrides the derived id.
    """

    name: str
    addresses: Tuple[str, ...]
    subnets: Tuple[str, ...] = ()
    boot_id: Optional[str] = None
    inbound_level: Optional[str] = None
    mark_id: Optional[int] = None
    outbound: str = OUTBOUND_ENABLE

    def __post_init__(self) -> None:
        owner = "peer %s" % self.name
        _canonicalise_endpoint(self, owner)
        if self.inbound_level is not None and self.inbound_level not in PEER_LEVELS:
            raise PlanError("%s: inbound_level must be one of %s" % (owner, ", ".join(PEER_LEVELS)))
        if self.outbound not in OUTBOUND_CHOICES:
            raise PlanError("%s: outbound must be one of %s" % (owner, ", ".join(OUTBOUND_CHOICES)))
        if self.mark_id is not None and (isinstance(self.mark_id, bool) or not isinstance(self.mark_id, int)
                                         or not MARK_ID_MIN <= self.mark_id <= MARK_ID_MAX):
            raise PlanError("%s: mark_id must be %d-%d" % (owner, MARK_ID_MIN, MARK_ID_MAX))

    def address(self, family: int) -> Optional[str]:
        return _address_of_family(self.addresses, family)


def fully_trusted(peers: Sequence[Peer]) -> List[Peer]:
    """The peers as the last rollout phase sees them once every peer given with ``keep``
    accepts ESP (``outbound`` enabled) and sends it (``inbound_level`` required).

    A node that already holds what ``PHASE_ALL`` plans for these peers has nothing to do in
    any phase of the rollout: ``keep`` leaves installed entries as they are, so the same node
    is also what every phase with less trust would leave.
    """
    return [dataclasses.replace(peer,
                                inbound_level=LEVEL_REQUIRED if peer.inbound_level == LEVEL_KEEP else peer.inbound_level,
                                outbound=OUTBOUND_ENABLE if peer.outbound == OUTBOUND_KEEP else peer.outbound)
            for peer in peers]


@dataclasses.dataclass(frozen=True)
class PlanOptions:
    """The options of the planner (module options of the same names)."""

    per_pair_keys: bool = True
    out_spi: Optional[int] = None
    outbound: bool = True
    inbound_level: str = LEVEL_REQUIRED
    bypass: Tuple[BypassEntry, ...] = DEFAULT_BYPASS
    marks: str = MARKS_NONE
    reqid: int = DEFAULT_REQID
    state: str = STATE_PRESENT
    purge: bool = True
    phase: str = PHASE_ALL

    def __post_init__(self) -> None:
        check_reqid(self.reqid)
        if self.phase not in PHASES:
            raise PlanError("phase must be one of %s" % ", ".join(PHASES))
        if self.inbound_level not in LEVELS:
            raise PlanError("inbound_level must be one of %s" % ", ".join(LEVELS))
        if self.marks not in MARKS_MODES:
            raise PlanError("marks must be one of %s" % ", ".join(MARKS_MODES))
        if self.state not in STATES:
            raise PlanError("state must be one of %s" % ", ".join(STATES))
        object.__setattr__(self, "bypass", normalise_bypass(self.bypass))


def normalise_bypass(entries: Iterable[BypassEntry]) -> Tuple[BypassRule, ...]:
    """Bypass rules from their dict form (``proto``, ``port``, optional ``side`` and
    ``networks``, as the module option gives them) or ``(proto, port)`` pairs (a server
    rule), duplicates dropped, order kept."""
    rules: List[BypassRule] = []
    for position, entry in enumerate(entries):
        where = "bypass[%d]" % position
        if isinstance(entry, BypassRule):
            rule = entry
        elif isinstance(entry, Mapping):
            unknown = sorted(set(entry) - {"proto", "port", "side", "networks"})
            if unknown:
                raise PlanError("%s: unknown fields %s; allowed: proto, port, side, networks" % (where, ", ".join(unknown)))
            rule = _bypass_rule(where, entry.get("proto"), entry.get("port"), entry.get("side") or BYPASS_SERVER,
                                entry.get("networks") or ())
        elif not isinstance(entry, str) and isinstance(entry, Sequence) and len(entry) == 2:
            rule = _bypass_rule(where, entry[0], entry[1], BYPASS_SERVER, ())
        else:
            raise PlanError("%s: a bypass rule is a dict with proto, port and optionally side and networks" % where)
        if rule not in rules:
            rules.append(rule)
    return tuple(rules)


def _bypass_rule(where: str, proto: object, port: object, side: object, networks: object) -> BypassRule:
    if isinstance(proto, str) and proto.lower() in BYPASS_PROTOCOLS:
        number = BYPASS_PROTOCOLS[proto.lower()]
    elif isinstance(proto, int) and not isinstance(proto, bool) and proto in BYPASS_PROTOCOLS.values():
        number = proto
    else:
        raise PlanError("%s: protocol %s: use one of %s" % (where, _quoted(proto), ", ".join(BYPASS_PROTOCOLS)))
    if isinstance(port, bool) or not isinstance(port, int) or not PORT_MIN <= port <= PORT_MAX:
        raise PlanError("%s: port %s must be %d-%d" % (where, _quoted(port), PORT_MIN, PORT_MAX))
    if side not in BYPASS_SIDES:
        raise PlanError("%s: side %s must be one of %s" % (where, _quoted(side), ", ".join(BYPASS_SIDES)))
    if isinstance(networks, str) or not isinstance(networks, Sequence):
        raise PlanError("%s: networks must be a list of networks in CIDR form" % where)
    canonical: List[str] = []
    for network in networks:
        try:
            text = str(ipaddress.ip_network(str(network), strict=False))
        except ValueError:
            raise PlanError("%s: networks has %s, which is not a network in CIDR form" % (where, _quoted(network))) from None
        if text not in canonical:
            canonical.append(text)
    return BypassRule(number, port, str(side), tuple(canonical))


# --------------------------------------------------------------------------------------
# Identifiers


def sender_id(address: str) -> int:
    """28-bit id of a sender's tunnel address (the low bits of its wire SPIs)."""
    try:
        return _sender_id(address)
    except TypeError:  # unhashable: address_bytes names the problem
        address_bytes(address)
        raise


@functools.lru_cache(maxsize=1 << 16, typed=True)
def _sender_id(address: str) -> int:
    # Each address's id is needed for its SAs, templates and the collision check: hash once.
    digest = hashlib.sha256(WIRE_SPI_DOMAIN + address_bytes(address)).digest()
    return int.from_bytes(digest[:4], "big") >> (32 - SENDER_ID_BITS)


def wire_spi(key_id: int, sender_address: str, marks: str = MARKS_NONE) -> int:
    """The SPI on the wire of key ``key_id`` for SAs sent by ``sender_address``."""
    if not SPI_MIN <= key_id <= SPI_MAX:
        raise PlanError("key id %r is out of range %d-%d" % (key_id, SPI_MIN, SPI_MAX))
    if marks == MARKS_CILIUM:
        return key_id
    return key_id << KEY_ID_SHIFT | sender_id(sender_address)


def derived_mark_id(peer_name: str) -> int:
    """A stable 16-bit id (1-65535) for a peer, from its name."""
    digest = hashlib.sha256(MARK_ID_DOMAIN + peer_name.encode("utf-8")).digest()
    return MARK_ID_MIN + int.from_bytes(digest[:4], "big") % MARK_ID_MAX


def mark_id_of(peer: Peer) -> int:
    return peer.mark_id if peer.mark_id is not None else derived_mark_id(peer.name)


def out_mark(key_id: int, peer_mark_id: int) -> Mark:
    return Mark(MARK_MAGIC_ENCRYPT | key_id << MARK_SPI_SHIFT | peer_mark_id << MARK_PEER_ID_SHIFT,
                MARK_MASK_OUT)


def in_mark(peer_mark_id: int) -> Mark:
    return Mark(MARK_MAGIC_DECRYPT | peer_mark_id << MARK_PEER_ID_SHIFT, MARK_MASK_IN)


OUT_OUTPUT_MARK = Mark(MARK_MAGIC_ENCRYPT, OUTPUT_MARK_MASK)
IN_OUTPUT_MARK = Mark(MARK_MAGIC_DECRYPT, OUTPUT_MARK_MASK)


def _check_sender_ids(local: LocalNode, peers: Sequence[Peer]) -> None:
    """Refuse two nodes whose sender ids collide (they would share inbound SA slots)."""
    for family in FAMILIES:
        seen: Dict[int, Tuple[str, str]] = {}
        nodes = [(local.name, local.address(family))] + [(p.name, p.address(family)) for p in peers]
        for name, address in nodes:
            if address is None:
                continue
            ident = sender_id(address)
            other = seen.get(ident)
            if other is not None and other[1] != address:
                raise PlanError(
                    "wire SPI collision: %s (%s) and %s (%s) have the same sender id 0x%07x, so "
                    "their SAs would share SPIs at every receiver; change one tunnel address or "
                    "use marks: cilium" % (other[0], other[1], name, address, ident))
            seen.setdefault(ident, (name, address))


def _check_mark_ids(peers: Sequence[Peer]) -> Dict[str, int]:
    ids: Dict[str, int] = {}
    owner_of: Dict[int, str] = {}
    for peer in peers:
        ident = mark_id_of(peer)
        if ident in owner_of:
            raise PlanError("mark id collision: peers %s and %s both have mark id %d; set "
                            "mark_id on one of them" % (owner_of[ident], peer.name, ident))
        owner_of[ident] = peer.name
        ids[peer.name] = ident
    return ids


# --------------------------------------------------------------------------------------
# The desired set


@dataclasses.dataclass(frozen=True)
class DesiredSet:
    """What the local node must hold, and what the reconciler needs to know about it: the
    single input of ``reconcile``.

    ``peer_of_address`` maps every peer tunnel address (frozen peers' too) to the peer's name,
    for ordering and messages. ``frozen_peer_addresses`` are the addresses of peers whose
    entries must be left alone. ``keep_outbound`` is True when ``outbound`` was off (OUT
    entries are left alone). ``keep_outbound_addresses``: peer addresses whose owned OUT
    entries stay as they are (per-peer ``outbound: keep``). ``keep_level_addresses``: peer
    addresses whose installed IN/FWD policies keep their level. ``purge``: owned entries that
    are not desired are removed (off in the ``inbound`` and ``outbound`` phases, which only
    add and update, and with option ``purge`` off). ``teardown`` (``state: absent``): nothing
    is desired and every owned entry goes, frozen peers and ``keep_outbound`` notwithstanding.
    """

    states: Tuple[XfrmState, ...] = ()
    policies: Tuple[XfrmPolicy, ...] = ()
    local_addresses: Tuple[str, ...] = ()
    peer_of_address: Mapping[str, str] = dataclasses.field(default_factory=dict)
    frozen_peers: Tuple[str, ...] = ()
    frozen_peer_addresses: FrozenSet[str] = frozenset()
    keep_outbound: bool = False
    reqid: int = DEFAULT_REQID
    warnings: Tuple[str, ...] = ()
    teardown: bool = False
    keep_outbound_addresses: FrozenSet[str] = frozenset()
    keep_level_addresses: FrozenSet[str] = frozenset()
    purge: bool = True


def _keys_tuple(keys: Union[KeysFile, Sequence[Key]]) -> Tuple[Key, ...]:
    key_list = tuple(keys.keys) if isinstance(keys, KeysFile) else tuple(keys)
    seen: Dict[int, int] = {}
    for position, key in enumerate(key_list, 1):
        if key.spi in seen:
            raise PlanError("keys %d and %d both have key id %d; key ids must be unique"
                            % (seen[key.spi], position, key.spi))
        seen[key.spi] = position
    return key_list


def _algorithms(key: Key, material: Tuple[bytes, ...]
                ) -> Tuple[Optional[Algorithm], Optional[Algorithm], Optional[Algorithm]]:
    """The (aead, auth, crypt) algorithms of an SA carrying ``material`` of ``key``."""
    if key.form == FORM_AEAD:
        return Algorithm(ALGO_AEAD, key.aead_name or "", material[0], key.icv_bits or 0), None, None
    auth_name = key.auth_name or ""
    if auth_name not in AUTH_TRUNCATION_BITS:
        raise PlanError("key id %d: no truncation length known for %s (known: %s)"
                        % (key.spi, auth_name, ", ".join(sorted(AUTH_TRUNCATION_BITS))))
    return (None, Algorithm(ALGO_AUTH, auth_name, material[0], AUTH_TRUNCATION_BITS[auth_name]),
            Algorithm(ALGO_CRYPT, key.enc_name or "", material[1], 0))


class _Builder:
    """Accumulates desired entries, refusing two with one kernel identity."""

    def __init__(self) -> None:
        self.states: Dict[Tuple[object, ...], Tuple[XfrmState, str]] = {}
        self.policies: Dict[Tuple[object, ...], Tuple[XfrmPolicy, str]] = {}

    def add(self, entry: XfrmEntry, owner: str) -> None:
        entries = self.states if isinstance(entry, XfrmState) else self.policies
        identity = entry.key()
        previous = entries.get(identity)
        if previous is not None:
            if previous[0] == entry:
                return
            raise PlanError("two desired entries have the same kernel identity: %s (for %s) and "
                            "%s (for %s); do two peers share a subnet or an address?"
                            % (render(previous[0]), previous[1], render(entry), owner))
        entries[identity] = (entry, owner)  # type: ignore[assignment]


def _bypass_policies(family: int, rules: Sequence[BypassRule]) -> List[XfrmPolicy]:
    """The template-less policies of the bypass rules in one family (see the docstring)."""
    anywhere = "%s/0" % any_address(family)
    policies = []
    for rule in rules:
        far_ends = [network for network in rule.networks if family_of(network) == family] if rule.networks \
            else [anywhere]
        for far_end in far_ends:
            if rule.side == BYPASS_SERVER:
                inbound = selector_between(far_end, anywhere, rule.proto, dport=rule.port)
                outbound = selector_between(anywhere, far_end, rule.proto, sport=rule.port)
            else:
                inbound = selector_between(far_end, anywhere, rule.proto, sport=rule.port)
                outbound = selector_between(anywhere, far_end, rule.proto, dport=rule.port)
            policies += [XfrmPolicy(selector=outbound, dir=DIR_OUT, action=ACTION_ALLOW, priority=PRIORITY_BYPASS),
                         XfrmPolicy(selector=inbound, dir=DIR_IN, action=ACTION_ALLOW, priority=PRIORITY_BYPASS)]
    return policies


def _neighbour_discovery_policies() -> List[XfrmPolicy]:
    """IPv6 neighbour solicitation and advertisement in plaintext, in and out (see the docstring)."""
    anywhere = "%s/0" % any_address(AF_INET6)
    return [XfrmPolicy(selector=selector_between(anywhere, anywhere, IPPROTO_ICMPV6, sport=icmp_type),
                       dir=direction, action=ACTION_ALLOW, priority=PRIORITY_BYPASS)
            for icmp_type in ND_ICMPV6_TYPES for direction in (DIR_OUT, DIR_IN)]


def build_desired(local: LocalNode, peers: Sequence[Peer], keys: Union[KeysFile, Sequence[Key]],
                  options: PlanOptions = PlanOptions()) -> DesiredSet:
    """Every SA and policy ``local`` must hold (see the module docstring for the rules)."""
    reqid = options.reqid
    name_counts = collections.Counter(peer.name for peer in peers)
    duplicates = sorted(name for name, count in name_counts.items() if count > 1)
    if duplicates:
        raise PlanError("peer names must be unique: %s listed more than once" % ", ".join(duplicates))
    # The local node listed in its own peer group is not a peer: it is the one of its name.
    peers = [peer for peer in peers if peer.name != local.name]
    peer_of_address: Dict[str, str] = {}
    for peer in peers:
        for address in peer.addresses:
            if address in peer_of_address:
                raise PlanError("peers %s and %s have the same tunnel address %s"
                                % (peer_of_address[address], peer.name, address))
            peer_of_address[address] = peer.name
    if options.state == STATE_ABSENT:
        # Teardown removes every owned entry; nothing is desired, nobody is frozen.
        return DesiredSet(local_addresses=local.addresses, peer_of_address=peer_of_address, reqid=reqid,
                          purge=True, teardown=True)

    _check_pairings(local, peers)
    key_list = _keys_tuple(keys)
    if not key_list:
        raise PlanError("no keys: the keys file must hold at least one key")
    out_key_id = options.out_spi if options.out_spi is not None else key_list[-1].spi
    if out_key_id not in [key.spi for key in key_list]:
        raise PlanError("out_spi %r is not the key id of any key in the keys file (%s)"
                        % (out_key_id, ", ".join(str(key.spi) for key in key_list)))

    warnings: List[str] = []
    if options.marks == MARKS_NONE:
        _check_sender_ids(local, peers)
        mark_ids: Dict[str, int] = {}
    else:
        mark_ids = _check_mark_ids(peers)

    # The first two rollout phases only add: the IN side with the levels as installed (new
    # policies accept plaintext) and, in the second, the OUT side.
    if options.phase != PHASE_ALL:
        peers = [dataclasses.replace(peer, inbound_level=LEVEL_KEEP) for peer in peers]
    if options.phase == PHASE_INBOUND:
        options = dataclasses.replace(options, outbound=False)
    keep_outbound_addresses = frozenset(address for peer in peers if peer.outbound == OUTBOUND_KEEP
                                        for address in peer.addresses)
    keep_level_addresses = frozenset(address for peer in peers if peer.inbound_level == LEVEL_KEEP
                                     for address in peer.addresses)

    builder = _Builder()
    in_directions = (DIR_IN, DIR_FWD) if local.routes_subnets else (DIR_IN,)
    frozen: List[str] = []
    frozen_addresses: List[str] = []
    for family in FAMILIES:
        if local.address(family) is not None:
            for policy in _bypass_policies(family, options.bypass):
                builder.add(policy, "management bypass")
    if local.address(AF_INET6) is not None:
        for policy in _neighbour_discovery_policies():
            builder.add(policy, "IPv6 neighbour discovery")
    for peer in peers:
        if options.per_pair_keys and not peer.boot_id:
            frozen.append(peer.name)
            frozen_addresses.extend(peer.addresses)
            warnings.append("peer %s has no boot id, so no per-pair keys can be derived for it: "
                            "its SAs and policies are left as they are" % peer.name)
            continue
        for family in FAMILIES:
            local_address = local.address(family)
            peer_address = peer.address(family)
            if local_address is None or peer_address is None:
                continue
            _add_pairing(builder, local, peer, family, local_address, peer_address, key_list,
                         out_key_id, options, mark_ids.get(peer.name, 0), in_directions)
    return DesiredSet(
        states=tuple(entry for entry, _owner in builder.states.values()),
        policies=tuple(entry for entry, _owner in builder.policies.values()),
        local_addresses=local.addresses,
        peer_of_address=peer_of_address,
        frozen_peers=tuple(frozen),
        frozen_peer_addresses=frozenset(frozen_addresses),
        keep_outbound=not options.outbound,
        reqid=reqid,
        warnings=tuple(warnings),
        keep_outbound_addresses=keep_outbound_addresses,
        keep_level_addresses=keep_level_addresses,
        purge=options.purge and options.phase == PHASE_ALL,
    )


def _families(addresses: Iterable[str]) -> str:
    return " and ".join(FAMILY_NAMES[family] for family in FAMILIES if any(family_of(a) == family for a in addresses))


def _check_pairings(local: LocalNode, peers: Sequence[Peer]) -> None:
    """Refuse what could not be carried as ESP between the local node and a peer (see the
    module docstring, "Identity and pairings" and "Subnets")."""
    local_addresses = set(local.addresses)
    local_families = {family_of(address) for address in local.addresses}
    for peer in peers:
        shared = sorted(local_addresses.intersection(peer.addresses))
        if shared:
            raise PlanError("peer %s has %s, a tunnel address of the local node %s: two members cannot share "
                            "an address (is %s a copy of %s, or is an inventory entry wrong?)"
                            % (peer.name, ", ".join(shared), local.name, local.name, peer.name))
        peer_families = {family_of(address) for address in peer.addresses}
        if not local_families & peer_families:
            raise PlanError("the local node %s (%s) and peer %s (%s) have no address family in common: nothing "
                            "between them can be carried as ESP; give one of them a tunnel address of the "
                            "other's family" % (local.name, _families(local.addresses), peer.name,
                                                _families(peer.addresses)))


def _pair_material(key: Key, options: PlanOptions, src: str, dst: str, src_boot: Optional[str],
                   dst_boot: Optional[str], peer: Peer) -> Tuple[bytes, ...]:
    if not options.per_pair_keys:
        return key.key_material
    try:
        return derive_material(key, src, dst, src_boot or "", dst_boot or "")
    except KeyDerivationError as error:
        raise PlanError("cannot derive the keys between the local node and peer %s: %s"
                        % (peer.name, error)) from None


def _sa(src: str, dst: str, spi: int, reqid: int, selector: Selector, mark: Optional[Mark],
        output_mark: Optional[Mark],
        algorithms: Tuple[Optional[Algorithm], Optional[Algorithm], Optional[Algorithm]]) -> XfrmState:
    """A desired SA (tunnel mode ESP, ESN, ``REPLAY_WINDOW``, no lifetime limits)."""
    aead, auth, crypt = algorithms
    return XfrmState(src, dst, spi, reqid, IPPROTO_ESP, MODE_TUNNEL, REPLAY_WINDOW, USE_ESN, 0, selector, aead,
                     auth, crypt, mark, output_mark, 0, INFINITE_LIFETIME)


def _template(src: str, dst: str, reqid: int, spi: int, optional: bool) -> Template:
    """A policy template for a tunnel mode ESP SA between ``src`` and ``dst``."""
    return Template(src, dst, reqid, spi, IPPROTO_ESP, MODE_TUNNEL, optional, 0, ALL_ALGOS, ALL_ALGOS, ALL_ALGOS)


def _encrypt_policy(selector: Selector, direction: int, template: Template, mark: Optional[Mark]) -> XfrmPolicy:
    """An allow policy at ``PRIORITY_ENCRYPT`` that requires ``template``."""
    return XfrmPolicy(selector, direction, ACTION_ALLOW, PRIORITY_ENCRYPT, (template,), mark, POLICY_TYPE_MAIN, 0, 0,
                      INFINITE_LIFETIME)


def _add_pairing(builder: _Builder, local: LocalNode, peer: Peer, family: int, local_address: str,
                 peer_address: str, key_list: Sequence[Key], out_key_id: int,
                 options: PlanOptions, peer_mark_id: int,
                 in_directions: Optional[Tuple[int, ...]] = None) -> None:
    reqid = options.reqid
    marks = options.marks == MARKS_CILIUM
    owner = "peer %s" % peer.name
    if options.per_pair_keys and not local.boot_id:
        raise PlanError("local node %s has no boot id; per-pair keys need it" % local.name)
    selector = zero_selector(family)
    outbound = options.outbound and peer.outbound == OUTBOUND_ENABLE
    add = builder.add
    for key in key_list:
        if outbound:
            out_material = _pair_material(key, options, local_address, peer_address,
                                          local.boot_id, peer.boot_id, peer)
            add(_sa(local_address, peer_address, wire_spi(key.spi, local_address, options.marks), reqid,
                    selector, out_mark(key.spi, peer_mark_id) if marks else None,
                    OUT_OUTPUT_MARK if marks else None, _algorithms(key, out_material)), owner)
        in_material = _pair_material(key, options, peer_address, local_address,
                                     peer.boot_id, local.boot_id, peer)
        add(_sa(peer_address, local_address, wire_spi(key.spi, peer_address, options.marks), reqid,
                selector, in_mark(peer_mark_id) if marks else None,
                IN_OUTPUT_MARK if marks else None, _algorithms(key, in_material)), owner)

    anywhere = "%s/0" % any_address(family)
    level = peer.inbound_level or options.inbound_level
    if level == LEVEL_KEEP:
        level = LEVEL_USE  # for policies not installed yet; installed ones keep theirs
    in_template = _template(peer_address, local_address, reqid, 0, level == LEVEL_USE)
    # With marks the datapath chooses the key id per packet, so every key needs its policy;
    # without marks the one OUT policy pins out_spi's SA.
    out_key_ids = [key.spi for key in key_list] if marks else [out_key_id]
    if in_directions is None:
        in_directions = (DIR_IN, DIR_FWD) if local.routes_subnets else (DIR_IN,)
    for subnet in peer.subnets:
        if family_of(subnet) != family:
            continue
        if outbound:
            for key_id in out_key_ids:
                # The template pins the SPI: the kernel's SA lookup for a template matches
                # (reqid, addresses, mode, proto) and, only when the template names one, the
                # SPI; among several matches it takes the newest SA. Unpinned, egress would
                # jump to a new key's OUT SA the moment it is added, before peers can read it.
                out_template = _template(local_address, peer_address, reqid,
                                         wire_spi(key_id, local_address, options.marks), False)
                builder.add(_encrypt_policy(selector_between(anywhere, subnet), DIR_OUT, out_template,
                                            out_mark(key_id, peer_mark_id) if marks else None), owner)
        for direction in in_directions:
            builder.add(_encrypt_policy(selector_between(subnet, anywhere), direction, in_template, None), owner)


def role_of(obj: XfrmEntry, local_addresses: Iterable[str]) -> str:
    """The ``ROLE_*`` of a desired or installed entry on the node with ``local_addresses``.

    An SA is OUT when it is sent from a local address, IN otherwise. A policy without a
    template is a bypass; otherwise its direction decides (FWD counts as IN).
    """
    if isinstance(obj, XfrmState):
        return ROLE_OUT_SA if obj.src in set(local_addresses) else ROLE_IN_SA
    if not obj.templates:
        return ROLE_BYPASS
    return ROLE_OUT_POLICY if obj.dir == DIR_OUT else ROLE_IN_POLICY


def remote_address(obj: XfrmEntry, local_addresses: Iterable[str]) -> str:
    """The peer end of an entry (the tunnel address that is not local), or "" for a bypass."""
    if isinstance(obj, XfrmState):
        return obj.dst if obj.src in set(local_addresses) else obj.src
    if not obj.templates:
        return ""
    template = obj.templates[0]
    return template.dst if obj.dir == DIR_OUT else template.src
