# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The XFRM model: security associations (SAs), policies, and the operations on them.

Every layer shares these values: the wire codec turns them into netlink messages and back,
the kernel adapter returns them from dumps and applies operations on them, the planner builds
and compares them. Nothing here opens a socket or knows about peers, keys files or Ansible.

**One representation.** Each entry is an immutable named tuple of exactly the fields the
kernel compares and reports for it (what the kernel counts on an SA, and a policy's index,
are not part of the entry). Two entries are equal exactly when their tuples are: the
comparison and the hash run in C, so a converged node of thousands of entries is checked by
plain tuple comparison, without a second representation to keep in step.

**Canonical form** (``canonical_state``/``canonical_policy``, the one place that says how
two spellings of one entry differ): an SA selector given as None (match everything) is the
all-zero selector of the SA's family, as the kernel stores it; a mark 0/0 (it matches every
packet, and the kernel does not report it) is None; the ESN bit of an SA's flags is its
``esn`` field; a template's ``share`` is 0 (validated by the kernel but never stored). What
the wire codec decodes from a dump is the kernel's spelling, canonical for everything the
kernel stores; the planner canonicalises both what it builds and what it is given, so equal
canonical entries are the same entry in the kernel.

**What the collection never sets.** An entry read from the kernel may carry attributes the
collection never puts on one (UDP encapsulation, a security context, offload, extra flags,
TFC padding, a care-of address, ...). The wire codec lists them in ``unmodelled`` (and a
policy's security context, which is part of its kernel identity, in ``security_context``);
built entries have none, so an owned entry that carries one is never equal to a desired one.

**Secrets.** ``Algorithm.key`` holds key bytes; ``Algorithm.__repr__`` leaves them out, so no
repr of an entry (an exception, a log line, a test failure) can print a key. An unmodelled
attribute's bytes are left out of its repr too.

Addresses are canonical text (``ipaddress`` formatting), so entries that mean the same thing
compare equal whatever the input spelling was.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import socket
from typing import NamedTuple, Optional, Tuple, Union

AF_INET = socket.AF_INET  # 2
AF_INET6 = socket.AF_INET6  # 10

IPPROTO_ESP = 50

XFRM_INF = (1 << 64) - 1
ALL_ALGOS = 0xFFFFFFFF

# Policy directions as the kernel numbers them; dumps also carry per-socket policies with
# dir >= 3, which are never ours and cannot be deleted with DELPOLICY.
DIR_IN = 0
DIR_OUT = 1
DIR_FWD = 2
DIR_NAMES = {DIR_IN: "in", DIR_OUT: "out", DIR_FWD: "fwd"}

ACTION_ALLOW = 0
ACTION_BLOCK = 1
ACTION_NAMES = {ACTION_ALLOW: "allow", ACTION_BLOCK: "block"}

MODE_TRANSPORT = 0
MODE_TUNNEL = 1
MODE_NAMES = {MODE_TRANSPORT: "transport", MODE_TUNNEL: "tunnel"}

POLICY_TYPE_MAIN = 0
POLICY_TYPE_SUB = 1

# usersa_info.flags: ESN (held as the ``esn`` field) and AF_UNSPEC (the selector is
# deliberately family 0; without it the kernel copies the SA's family into an all-zero one).
SA_FLAG_AF_UNSPEC = 32
SA_FLAG_ESN = 128

# Algorithm kinds map one to one onto netlink attributes: AEAD (XFRMA_ALG_AEAD), AUTH_TRUNC
# (XFRMA_ALG_AUTH_TRUNC, carries an explicit truncation length) and CRYPT (XFRMA_ALG_CRYPT).
ALGO_AEAD = "aead"
ALGO_AUTH = "auth"
ALGO_CRYPT = "crypt"

# Parsing with ipaddress dominates planning a large mesh, and every address and subnet
# recurs (per key, per direction, per policy): each text is parsed once per process.
PARSE_CACHE_SIZE = 1 << 16


def family_of(address: str) -> int:
    """AF_INET or AF_INET6 for an address or network in text form."""
    return AF_INET6 if ":" in address else AF_INET


IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def parsed_address(address: str) -> IPAddress:
    """An IP address in text form, parsed (``ValueError`` if it is not one)."""
    try:
        return _parsed_address(address)
    except TypeError:  # unhashable: let ipaddress say what is wrong with it
        return ipaddress.ip_address(address)


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE, typed=True)
def _parsed_address(address: str) -> IPAddress:
    # The C library's parser first: ipaddress's pure-Python one was a third of a no-op
    # run's planning at 1000 peers. Both accept the same texts (a property test holds them
    # to it); anything the C library refuses goes to ipaddress, for its error message.
    for family, address_class in _ADDRESS_CLASSES:
        try:
            return address_class(socket.inet_pton(family, address))
        except (OSError, ValueError):
            continue
    return ipaddress.ip_address(address)


_ADDRESS_CLASSES = ((socket.AF_INET, ipaddress.IPv4Address), (socket.AF_INET6, ipaddress.IPv6Address))


def canonical_address(address: str) -> str:
    """Canonical text of an IP address (``ValueError`` if it is not one)."""
    return str(parsed_address(address))


def network_fields(network: str) -> Tuple[int, str, int]:
    """(IP version, network address text, prefix length) of a network, host bits cleared."""
    try:
        return _network_fields(network)
    except TypeError:  # unhashable: let ipaddress say what is wrong with it
        parsed = ipaddress.ip_network(network, strict=False)
        return parsed.version, str(parsed.network_address), parsed.prefixlen


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE, typed=True)
def _network_fields(network: str) -> Tuple[int, str, int]:
    parsed = ipaddress.ip_network(network, strict=False)
    return parsed.version, str(parsed.network_address), parsed.prefixlen


def any_address(family: int) -> str:
    return "::" if family == AF_INET6 else "0.0.0.0"


def max_prefixlen(family: int) -> int:
    return 128 if family == AF_INET6 else 32


# --------------------------------------------------------------------------------------
# Entries


class Mark(NamedTuple):
    """A packet mark and mask (XFRMA_MARK, or XFRMA_SET_MARK/_MASK for output marks)."""

    value: int
    mask: int = 0xFFFFFFFF


class Selector(NamedTuple):
    """xfrm_selector: which packets an SA or policy applies to.

    ``saddr``/``daddr`` are network addresses with their host bits cleared: the kernel does
    not canonicalise selectors, so 10.1.0.1/16 and 10.1.0.0/16 would be two policies.
    Ports are host-order integers; a port with mask 0 matches any port (an ICMP selector
    holds the ICMP type in ``sport`` and the code in ``dport``, as the kernel does).
    """

    family: int
    saddr: str
    prefixlen_s: int
    daddr: str
    prefixlen_d: int
    proto: int = 0
    sport: int = 0
    sport_mask: int = 0
    dport: int = 0
    dport_mask: int = 0
    ifindex: int = 0
    user: int = 0

    @property
    def src(self) -> str:
        return "%s/%d" % (self.saddr, self.prefixlen_s)

    @property
    def dst(self) -> str:
        return "%s/%d" % (self.daddr, self.prefixlen_d)


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def selector_between(src: str, dst: str, proto: int = 0, sport: int = 0, dport: int = 0) -> Selector:
    """The selector from one network to another in CIDR text (``10.0.0.0/24``, ``::/0``,
    ``10.0.0.1``): host bits cleared, a non-zero port with the full mask. ``ValueError`` when
    a network does not parse or the two are of different families."""
    src_version, saddr, prefixlen_s = network_fields(src)
    dst_version, daddr, prefixlen_d = network_fields(dst)
    if src_version != dst_version:
        raise ValueError("selector mixes address families: %s -> %s" % (src, dst))
    return Selector(AF_INET6 if dst_version == 6 else AF_INET, saddr, prefixlen_s, daddr, prefixlen_d, proto,
                    sport, 0xFFFF if sport else 0, dport, 0xFFFF if dport else 0)


def zero_selector(family: int) -> Selector:
    """The selector that matches everything, as the kernel stores it for an SA of ``family``."""
    return _ZERO_SELECTORS[family]


class Algorithm(NamedTuple):
    """One algorithm of an SA.

    ``bits`` is the ICV length for AEAD and the truncation length for AUTH; 0 for CRYPT.
    ``key`` is secret: it never appears in repr, and renderers print a fingerprint instead.
    """

    kind: str
    name: str
    key: bytes
    bits: int = 0

    def __repr__(self) -> str:
        return "Algorithm(kind=%r, name=%r, key=<%d bytes>, bits=%r)" % (self.kind, self.name, len(self.key),
                                                                         self.bits)


class Unmodelled(NamedTuple):
    """An attribute the kernel reports on an entry and the collection never sets.

    ``attribute`` is its netlink attribute number (XFRMA_*), ``text`` how a masked line shows
    it (``encap espinudp 4500 4500 0.0.0.0``; made by the wire codec from the payload, never
    key material), ``payload`` its bytes as the kernel sent them, so that an entry deleted
    and then restored (a rollback) comes back with it.
    """

    attribute: int
    text: str
    payload: bytes = b""

    def __repr__(self) -> str:
        return "Unmodelled(attribute=%d, text=%r, payload=<%d bytes>)" % (self.attribute, self.text,
                                                                          len(self.payload))


class Lifetime(NamedTuple):
    """xfrm_lifetime_cfg. The defaults are "no limit", as iproute2 sends them."""

    soft_byte_limit: int = XFRM_INF
    hard_byte_limit: int = XFRM_INF
    soft_packet_limit: int = XFRM_INF
    hard_packet_limit: int = XFRM_INF
    soft_add_expires_seconds: int = 0
    hard_add_expires_seconds: int = 0
    soft_use_expires_seconds: int = 0
    hard_use_expires_seconds: int = 0


INFINITE_LIFETIME = Lifetime()


class StateCounters(NamedTuple):
    """What the kernel counts on an SA (reported by ``xfrm_info``; not part of the SA)."""

    bytes: int = 0
    packets: int = 0
    add_time: int = 0
    use_time: int = 0
    replay_window: int = 0
    replay: int = 0
    integrity_failed: int = 0
    oseq: int = 0
    seq: int = 0


class XfrmState(NamedTuple):
    """An SA (xfrm_usersa_info and its attributes). Its kernel identity is ``key()``;
    ``unmodelled`` lists, sorted, the attributes the collection never sets (module docstring)."""

    src: str
    dst: str
    spi: int
    reqid: int = 0
    proto: int = IPPROTO_ESP
    mode: int = MODE_TUNNEL
    replay_window: int = 0
    esn: bool = False
    flags: int = 0
    selector: Optional[Selector] = None
    aead: Optional[Algorithm] = None
    auth: Optional[Algorithm] = None
    crypt: Optional[Algorithm] = None
    mark: Optional[Mark] = None
    output_mark: Optional[Mark] = None
    if_id: int = 0
    lifetime: Lifetime = INFINITE_LIFETIME
    unmodelled: Tuple[Unmodelled, ...] = ()

    @property
    def family(self) -> int:
        return AF_INET6 if ":" in self.dst else AF_INET

    def key(self) -> Tuple[object, ...]:
        """What the kernel identifies an SA by: (family, dst, SPI, protocol, mark)."""
        dst = self.dst
        return (AF_INET6 if ":" in dst else AF_INET, dst, self.spi, self.proto, self.mark)

    def algorithms(self) -> Tuple[Algorithm, ...]:
        aead = self.aead
        if aead is not None and self.auth is None and self.crypt is None:
            return (aead,)      # the common case, without building a filtered tuple
        return tuple([algorithm for algorithm in (aead, self.auth, self.crypt) if algorithm is not None])


class Template(NamedTuple):
    """xfrm_user_tmpl: the SA a policy requires. ``optional`` is iproute2's "level use"."""

    src: str
    dst: str
    reqid: int = 0
    spi: int = 0
    proto: int = IPPROTO_ESP
    mode: int = MODE_TUNNEL
    optional: bool = False
    share: int = 0
    aalgos: int = ALL_ALGOS
    ealgos: int = ALL_ALGOS
    calgos: int = ALL_ALGOS

    @property
    def family(self) -> int:
        return family_of(self.dst)


class XfrmPolicy(NamedTuple):
    """A policy (xfrm_userpolicy_info and its attributes). Its kernel identity is ``key()``:
    priority is not part of it, so a priority change is an update, not a new policy; its
    security context is (the kernel finds a policy by selector *and* context), so a policy
    with one is another policy than the same one without. ``security_context`` is the context
    as text (None: none); ``unmodelled`` lists, sorted, the other attributes the collection
    never sets (module docstring)."""

    selector: Selector
    dir: int
    action: int = ACTION_ALLOW
    priority: int = 0
    templates: Tuple[Template, ...] = ()
    mark: Optional[Mark] = None
    ptype: int = POLICY_TYPE_MAIN
    if_id: int = 0
    flags: int = 0
    lifetime: Lifetime = INFINITE_LIFETIME
    security_context: Optional[str] = None
    unmodelled: Tuple[Unmodelled, ...] = ()

    def key(self) -> Tuple[object, ...]:
        """What the kernel identifies a policy by: (type, direction, if_id, selector, mark,
        security context)."""
        return (self.ptype, self.dir, self.if_id, self.selector, self.mark, self.security_context)


XfrmEntry = Union[XfrmState, XfrmPolicy]

_ZERO_SELECTORS = {family: Selector(family, any_address(family), 0, any_address(family), 0)
                   for family in (AF_INET, AF_INET6)}


# --------------------------------------------------------------------------------------
# The canonical form


def canonical_state(state: XfrmState) -> XfrmState:
    """The canonical form of an SA (rules in the module docstring); the SA itself when it
    is canonical already."""
    selector = state.selector
    flags = state.flags
    mark = state.mark
    output_mark = state.output_mark
    if ((selector is not None or flags & SA_FLAG_AF_UNSPEC) and not flags & SA_FLAG_ESN
            and (mark is None or mark.value or mark.mask)
            and (output_mark is None or output_mark.value or output_mark.mask)):
        return state
    return state._replace(
        selector=_ZERO_SELECTORS.get(state.family) if selector is None and not flags & SA_FLAG_AF_UNSPEC else selector,
        mark=None if mark is not None and not (mark.value or mark.mask) else mark,
        output_mark=None if output_mark is not None and not (output_mark.value or output_mark.mask) else output_mark,
        esn=state.esn or bool(flags & SA_FLAG_ESN),
        flags=flags & ~SA_FLAG_ESN)


def canonical_policy(policy: XfrmPolicy) -> XfrmPolicy:
    """The canonical form of a policy (rules in the module docstring); the policy itself
    when it is canonical already."""
    mark = policy.mark
    empty_mark = mark is not None and not (mark.value or mark.mask)
    for template in policy.templates:
        if template.share:
            break
    else:
        if not empty_mark:
            return policy
    return policy._replace(
        mark=None if empty_mark else mark,
        templates=tuple(template._replace(share=0) if template.share else template for template in policy.templates))


def canonical(entry: XfrmEntry) -> XfrmEntry:
    return canonical_state(entry) if isinstance(entry, XfrmState) else canonical_policy(entry)


# --------------------------------------------------------------------------------------
# Operations


class Verb(enum.Enum):
    """What an operation does to one entry, and the message it becomes:

    * ``ADD``: NEWSA / NEWPOLICY (``EEXIST`` when the identity is taken);
    * ``UPDATE``: UPDPOLICY replaces the policy of the same identity in place. (UPDSA would
      only change lifetimes, the output mark and if_id, never keys or algorithms, so an SA
      is changed by ``DELETE`` then ``ADD``, and the planner never updates one.)
    * ``DELETE``: DELSA by (dst, SPI, protocol, family, mark); DELPOLICY by exact selector,
      direction, mark, type and if_id (never by index).
    """

    ADD = "add"
    UPDATE = "update"
    DELETE = "delete"


class _OperationFields(NamedTuple):
    verb: Verb
    entry: XfrmEntry


class Operation(_OperationFields):
    """One kernel operation: ``verb`` applied to one SA or policy."""

    __slots__ = ()

    def __new__(cls, verb: Verb, entry: XfrmEntry) -> "Operation":
        if not isinstance(verb, Verb):
            raise TypeError("an operation's verb is a Verb, not %r" % (verb,))
        if not isinstance(entry, (XfrmState, XfrmPolicy)):
            raise TypeError("an operation applies to an XfrmState or XfrmPolicy, not %s" % type(entry).__name__)
        return super().__new__(cls, verb, entry)

    def inverse(self, replaced: Optional[XfrmEntry] = None) -> Optional["Operation"]:
        """The operation that undoes this one once applied: an add is deleted, a delete
        re-added, an update restored to ``replaced`` (None when it is not known)."""
        if self.verb is Verb.ADD:
            return Operation(Verb.DELETE, self.entry)
        if self.verb is Verb.DELETE:
            return Operation(Verb.ADD, self.entry)
        return Operation(Verb.UPDATE, replaced) if replaced is not None else None
