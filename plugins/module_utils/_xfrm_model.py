# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model types for XFRM security associations (SAs) and policies.

These are plain, immutable values shared by every layer: the wire codec turns them into
netlink messages and back, the kernel adapter returns them from dumps, and the planner
compares them. Nothing here opens a socket or knows about peers, keys files or Ansible.

Addresses are kept as canonical text (``ipaddress`` formatting), so two objects that mean
the same thing compare equal whatever the input spelling was. Key material is held as bytes
on ``Algorithm.key``, which is excluded from ``repr`` so that no exception or log line can
ever print a key.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import operator
import socket
from typing import Any, Dict, Optional, Tuple

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

# usersa_info.flags
SA_FLAG_ESN = 128

# Algorithm kinds map one to one onto netlink attributes: AEAD (XFRMA_ALG_AEAD), AUTH_TRUNC
# (XFRMA_ALG_AUTH_TRUNC, carries an explicit truncation length) and CRYPT (XFRMA_ALG_CRYPT).
ALGO_AEAD = "aead"
ALGO_AUTH = "auth"
ALGO_CRYPT = "crypt"


def family_of(address: str) -> int:
    """Return AF_INET or AF_INET6 for an address or network in text form."""
    return AF_INET6 if ":" in address else AF_INET


def canonical_address(address: str) -> str:
    """Canonical text of an IP address (``ValueError`` if it is not one)."""
    try:
        return _canonical_address(address)
    except TypeError:  # unhashable: let ipaddress say what is wrong with it
        return str(ipaddress.ip_address(address))


# Parsing with ipaddress dominates planning a large mesh, and every address and subnet
# recurs (per key, per direction, per policy): each text is parsed once per process.
PARSE_CACHE_SIZE = 1 << 16


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE, typed=True)
def _canonical_address(address: str) -> str:
    return str(ipaddress.ip_address(address))


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE, typed=True)
def _network_fields(network: str) -> Tuple[int, str, int]:
    """(IP version, network address text, prefix length) of a network, host bits cleared."""
    parsed = ipaddress.ip_network(network, strict=False)
    return parsed.version, str(parsed.network_address), parsed.prefixlen


def network_fields(network: str) -> Tuple[int, str, int]:
    try:
        return _network_fields(network)
    except TypeError:  # unhashable: let ipaddress say what is wrong with it
        parsed = ipaddress.ip_network(network, strict=False)
        return parsed.version, str(parsed.network_address), parsed.prefixlen


def any_address(family: int) -> str:
    return "::" if family == AF_INET6 else "0.0.0.0"


def max_prefixlen(family: int) -> int:
    return 128 if family == AF_INET6 else 32


@dataclasses.dataclass(frozen=True)
class Mark:
    """A packet mark and mask (XFRMA_MARK, or XFRMA_SET_MARK/_MASK for output marks)."""

    value: int
    mask: int = 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class Selector:
    """xfrm_selector: which packets an SA or policy applies to.

    ``saddr``/``daddr`` are network addresses with their host bits cleared: the kernel does
    not canonicalise selectors, so 10.1.0.1/16 and 10.1.0.0/16 would be two policies.
    Ports are host-order integers; a port with mask 0 matches any port.
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

    @classmethod
    def between(cls, src: str, dst: str, proto: int = 0, sport: int = 0, dport: int = 0) -> "Selector":
        """Selector from two networks in CIDR text (``10.0.0.0/24``, ``::/0``, ``10.0.0.1``).

        Host bits are cleared; a non-zero port gets the full mask.
        """
        src_version, saddr, prefixlen_s = network_fields(src)
        dst_version, daddr, prefixlen_d = network_fields(dst)
        if src_version != dst_version:
            raise ValueError("selector mixes address families: %s -> %s" % (src, dst))
        values = {
            "family": AF_INET6 if dst_version == 6 else AF_INET,
            "saddr": saddr,
            "prefixlen_s": prefixlen_s,
            "daddr": daddr,
            "prefixlen_d": prefixlen_d,
            "proto": proto,
            "sport": sport,
            "sport_mask": 0xFFFF if sport else 0,
            "dport": dport,
            "dport_mask": 0xFFFF if dport else 0,
            "ifindex": 0,
            "user": 0,
        }
        if cls is Selector:
            return from_fields(Selector, values)
        return cls(**values)

    @property
    def src(self) -> str:
        return "%s/%d" % (self.saddr, self.prefixlen_s)

    @property
    def dst(self) -> str:
        return "%s/%d" % (self.daddr, self.prefixlen_d)


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """One algorithm of an SA.

    ``bits`` is the ICV length for AEAD and the truncation length for AUTH; 0 for CRYPT.
    ``key`` is secret: it never appears in repr, and renderers print a fingerprint instead.
    """

    kind: str
    name: str
    key: bytes = dataclasses.field(repr=False)
    bits: int = 0


@dataclasses.dataclass(frozen=True)
class Lifetime:
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


@dataclasses.dataclass(frozen=True)
class StateCounters:
    """What the kernel counts on an SA; reported, never compared."""

    bytes: int = 0
    packets: int = 0
    add_time: int = 0
    use_time: int = 0
    replay_window: int = 0
    replay: int = 0
    integrity_failed: int = 0
    oseq: int = 0
    seq: int = 0


@dataclasses.dataclass(frozen=True)
class XfrmState:
    """An SA (xfrm_usersa_info and its attributes).

    Identity in the kernel is ``key()``: (family, dst, spi, proto, mark). ``counters`` is
    filled from dumps and ignored by equality.
    """

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
    counters: Optional[StateCounters] = dataclasses.field(default=None, compare=False)

    @property
    def family(self) -> int:
        return family_of(self.dst)

    def key(self) -> Tuple[object, ...]:
        return (self.family, self.dst, self.spi, self.proto, self.mark)

    def algorithms(self) -> Tuple[Algorithm, ...]:
        return tuple(a for a in (self.aead, self.auth, self.crypt) if a is not None)


@dataclasses.dataclass(frozen=True)
class Template:
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


@dataclasses.dataclass(frozen=True)
class XfrmPolicy:
    """A policy (xfrm_userpolicy_info and its attributes).

    Identity in the kernel is ``key()``: (type, dir, if_id, selector, mark); priority is not
    part of it, so a priority change is an update, not a new policy. ``index`` is chosen by
    the kernel and ignored by equality.
    """

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
    index: int = dataclasses.field(default=0, compare=False)

    def key(self) -> Tuple[object, ...]:
        return (self.ptype, self.dir, self.if_id, self.selector, self.mark)


# --------------------------------------------------------------------------------------
# Fast construction and kernel identity, for code that handles thousands of entries


_new_instance = object.__new__
_set_attribute = object.__setattr__


def from_fields(cls: type, values: Dict[str, Any]) -> Any:
    """``cls(**values)`` for a model class, given a dict that names EVERY field (it becomes
    the instance's dict, so the caller must not keep using it).

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, several
    times the cost of the dict itself. The model classes have no ``__slots__``, no
    ``__post_init__`` and no ``InitVar``, so the result is the same object; unit tests check
    that instances built here equal, hash and compare like constructed ones.
    """
    instance = _new_instance(cls)
    _set_attribute(instance, "__dict__", values)
    return instance


def with_defaults(cls: type, **values: Any) -> Any:
    """``cls(**values)`` by ``from_fields``, the defaults filled in (all-keyword only)."""
    fields = dict(_DEFAULTS[cls])
    fields.update(values)
    return from_fields(cls, fields)


def _defaults_of(cls: type) -> Dict[str, Any]:
    defaults: Dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:  # pragma: no cover - none in the model
            raise TypeError("%s.%s has a default factory" % (cls.__name__, field.name))
    return defaults


_DEFAULTS: Dict[type, Dict[str, Any]] = {
    cls: _defaults_of(cls) for cls in (Mark, Selector, Algorithm, Lifetime, StateCounters, XfrmState, Template,
                                       XfrmPolicy)
}

KIND_STATE = "XfrmState"
KIND_POLICY = "XfrmPolicy"


def kernel_identity(obj: Any) -> Tuple[Any, ...]:
    """The kernel identity of an SA or policy (its ``key()``, tagged with its kind) as a flat
    tuple of plain values.

    Two entries have equal identities exactly when ``(type name,) + key()`` are equal (a mark
    compared as value/mask, a selector field by field), but the tuple hashes and compares
    without calls into the model classes: planning looks identities up several times per
    entry.
    """
    mark = obj.mark
    mark_pair = None if mark is None else (mark.value, mark.mask)
    if isinstance(obj, XfrmState):
        dst = obj.dst
        return (KIND_STATE, AF_INET6 if ":" in dst else AF_INET, dst, obj.spi, obj.proto, mark_pair)
    selector = obj.selector
    return (KIND_POLICY, obj.ptype, obj.dir, obj.if_id, selector.family, selector.saddr, selector.prefixlen_s,
            selector.daddr, selector.prefixlen_d, selector.proto, selector.sport, selector.sport_mask,
            selector.dport, selector.dport_mask, selector.ifindex, selector.user, mark_pair)


# --------------------------------------------------------------------------------------
# Records: an entry's compared content as one flat tuple of plain values
#
# ``state_record(s) == state_record(t)`` exactly when ``s == t`` (likewise for policies):
# the record lists every field that takes part in equality, in field order, with each
# nested value (selector, algorithm, mark, lifetime, template) flattened to the tuple of its
# own fields, or None. Records compare and hash without a call into the model classes, and
# the wire codec reads them straight from dump messages (``xfrm_codec.decode_*_record``)
# without building model objects: a reconcile that finds everything in place compares
# records only.

SELECTOR_FIELDS = tuple(field.name for field in dataclasses.fields(Selector))
TEMPLATE_FIELDS = tuple(field.name for field in dataclasses.fields(Template))
LIFETIME_FIELDS = tuple(field.name for field in dataclasses.fields(Lifetime))

selector_record = operator.attrgetter(*SELECTOR_FIELDS)
template_record = operator.attrgetter(*TEMPLATE_FIELDS)
_lifetime_values = operator.attrgetter(*LIFETIME_FIELDS)
INFINITE_LIFETIME_RECORD = _lifetime_values(INFINITE_LIFETIME)

# Positions in a state record (``XfrmState`` fields without ``counters``).
STATE_RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(XfrmState) if field.compare)
(SR_SRC, SR_DST, SR_SPI, SR_REQID, SR_PROTO, SR_MODE, SR_REPLAY_WINDOW, SR_ESN, SR_FLAGS, SR_SELECTOR, SR_AEAD,
 SR_AUTH, SR_CRYPT, SR_MARK, SR_OUTPUT_MARK, SR_IF_ID, SR_LIFETIME) = range(len(STATE_RECORD_FIELDS))
# Positions in a policy record (``XfrmPolicy`` fields without ``index``).
POLICY_RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(XfrmPolicy) if field.compare)
(PR_SELECTOR, PR_DIR, PR_ACTION, PR_PRIORITY, PR_TEMPLATES, PR_MARK, PR_PTYPE, PR_IF_ID, PR_FLAGS,
 PR_LIFETIME) = range(len(POLICY_RECORD_FIELDS))


def lifetime_record(lifetime: Lifetime) -> Tuple[int, ...]:
    return INFINITE_LIFETIME_RECORD if lifetime is INFINITE_LIFETIME else _lifetime_values(lifetime)


def algorithm_record(algorithm: Optional[Algorithm]) -> Optional[Tuple[Any, ...]]:
    if algorithm is None:
        return None
    return (algorithm.kind, algorithm.name, algorithm.key, algorithm.bits)


def mark_record(mark: Optional[Mark]) -> Optional[Tuple[int, int]]:
    return None if mark is None else (mark.value, mark.mask)


def state_record(state: XfrmState) -> Tuple[Any, ...]:
    """The compared content of an SA as a flat tuple (see above)."""
    selector = state.selector
    aead = state.aead
    auth = state.auth
    crypt = state.crypt
    mark = state.mark
    output_mark = state.output_mark
    lifetime = state.lifetime
    return (state.src, state.dst, state.spi, state.reqid, state.proto, state.mode, state.replay_window,
            state.esn, state.flags, None if selector is None else selector_record(selector),
            None if aead is None else (aead.kind, aead.name, aead.key, aead.bits),
            None if auth is None else (auth.kind, auth.name, auth.key, auth.bits),
            None if crypt is None else (crypt.kind, crypt.name, crypt.key, crypt.bits),
            None if mark is None else (mark.value, mark.mask),
            None if output_mark is None else (output_mark.value, output_mark.mask),
            state.if_id, INFINITE_LIFETIME_RECORD if lifetime is INFINITE_LIFETIME else _lifetime_values(lifetime))


def policy_record(policy: XfrmPolicy) -> Tuple[Any, ...]:
    """The compared content of a policy as a flat tuple (see above; ``index`` is not in it)."""
    mark = policy.mark
    lifetime = policy.lifetime
    return (selector_record(policy.selector), policy.dir, policy.action, policy.priority,
            tuple(map(template_record, policy.templates)),
            None if mark is None else (mark.value, mark.mask), policy.ptype, policy.if_id, policy.flags,
            INFINITE_LIFETIME_RECORD if lifetime is INFINITE_LIFETIME else _lifetime_values(lifetime))


def record_identity(kind: str, record: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """``kernel_identity`` of the entry a state (KIND_STATE) or policy record describes."""
    if kind == KIND_STATE:
        dst = record[SR_DST]
        return (KIND_STATE, AF_INET6 if ":" in dst else AF_INET, dst, record[SR_SPI], record[SR_PROTO],
                record[SR_MARK])
    return (KIND_POLICY, record[PR_PTYPE], record[PR_DIR], record[PR_IF_ID]) + record[PR_SELECTOR] + (
        record[PR_MARK],)
