# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model objects <-> XFRM netlink bytes, on the precompiled layouts of ``xfrm_structs``.

This is the hot path: applying thousands of objects and decoding whole dumps. Everything is
packed straight into bytes with ``struct.Struct.pack`` and read back with ``unpack_from``;
pyroute2's generic encoder (100-200 us per message) is not used here. The unit tests prove
the bytes equal what pyroute2's classes (same layouts) and iproute2 produce.

Encoders return a message *payload* (fixed struct + attributes, without the 16-byte
nlmsghdr); ``frame()`` adds the header, so the socket layer can number messages when it
sends them. Dumps decode to model entries in canonical form (``_xfrm.model``), ready to
be compared with built ones.

What the codec does on the way:

* NEW/UPD messages clear the host bits of selector addresses (the kernel does not, and
  10.1.0.1/16 would be a different policy from 10.1.0.0/16). DEL messages send the
  selector exactly as given, so an object read from a dump is deleted by its exact key.
* An SA selector that matches everything (``XfrmState.selector is None``) is sent as all
  zeros; the kernel stores it with the SA's family, and it decodes as that family's zero
  selector (the canonical form). An all-zero selector of family 0 (flag af-unspec) decodes
  as None.
* A mark of value 0 and mask 0 is "no mark": it is not sent and decodes as None. Output
  marks likewise.
* ESN, or a replay window over 32 packets, is sent as XFRMA_REPLAY_ESN_VAL with
  usersa_info.replay_window 0 (as iproute2 does); smaller windows use the u8 field.
* Auth algorithms are always sent as XFRMA_ALG_AUTH_TRUNC; dumps carry AUTH and
  AUTH_TRUNC and the latter is decoded (AUTH only as a fallback, with bits 0).
* Attributes a dump carries that the collection never sets (UDP encapsulation, a security
  context, offload, non-zero extra flags, TFC padding, a care-of address, compression, an SA
  direction, NAT keepalive, any attribute this codec does not know, ...) are kept on the
  entry's ``unmodelled``, sorted, each with a short text and its payload; a policy's security
  context goes to ``security_context`` (it is part of the policy's kernel identity). What
  the kernel fills in on every entry (lifetime counters, last use, replay state and
  thresholds) is passed over. NEW/UPD messages send ``unmodelled`` payloads back as they
  came (a rollback restores an entry as it was); a policy with a security context cannot be
  encoded, since only its text is kept.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._nl.xfrm_structs import (
    XFRM_POLICY_MAX, XFRM_STATE_ESN, XFRMA_ALG_AEAD, XFRMA_ALG_AUTH, XFRMA_ALG_AUTH_TRUNC, XFRMA_ALG_CRYPT,
    XFRMA_IF_ID, XFRMA_MARK, XFRMA_POLICY_TYPE, XFRMA_REPLAY_ESN_MAX_BITS, XFRMA_REPLAY_ESN_VAL, XFRMA_REPLAY_VAL,
    XFRMA_SET_MARK, XFRMA_SET_MARK_MASK, XFRMA_TMPL,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    AF_INET, AF_INET6, ALGO_AEAD, ALGO_AUTH, ALGO_CRYPT, INFINITE_LIFETIME, Algorithm, Lifetime, Mark, Operation,
    Selector, StateCounters, Template, Unmodelled, Verb, XfrmPolicy, XfrmState, family_of,
)

_ADDRESS_SIZE = 16
_IPV4_SIZE = 4
_IPV4_PADDING = bytes(_ADDRESS_SIZE - _IPV4_SIZE)
_ZERO_ADDRESS = bytes(_ADDRESS_SIZE)
_ZERO_SELECTOR = bytes(S.SELECTOR.size)
_ZERO_CURLFT = bytes(S.LIFETIME_CUR.size)
_ZERO_STATS = bytes(S.STATS.size)
# Decoded entries are built from complete field tuples, without the keyword handling of the
# named tuples' constructors (a dump holds thousands).
_new_state = functools.partial(tuple.__new__, XfrmState)
_REPLAY_SIZE = S.REPLAY_STATE.size
_REPLAY_ESN_SIZE = S.REPLAY_STATE_ESN.size
_NLA_TYPE_MASK = 0x3FFF  # an attribute type without NLA_F_NESTED and NLA_F_NET_BYTEORDER
# nlmsgerr: the error number and the echoed request's header (at least).
_ERROR_UNPACK_FROM = struct.Struct("=iI").unpack_from
_ERROR_FIXED_SIZE = 4 + S.NLMSGHDR.size
_DONE_UNPACK_FROM = struct.Struct("=i").unpack_from
_DONE_ERROR_SIZE = 4
# Kernel errnos are 1..MAX_ERRNO (include/linux/err.h); an NLMSG_ERROR or NLMSG_DONE carries
# one negated, or 0. Anything else is not the kernel's (and os.strerror cannot even take
# 2**31, which the negation of INT_MIN is).
MAX_ERRNO = 4095

# Caches keyed by wire bytes or model values. Dumps repeat the same tunnel endpoints,
# selectors, templates and lifetimes many times, and model objects are immutable, so
# sharing decoded objects is safe. The caches are cleared when they grow past this bound.
_CACHE_LIMIT = 65536

_htons = socket.htons
_htonl = socket.htonl
_ntohs = socket.ntohs
_ntohl = socket.ntohl
_inet_pton = socket.inet_pton

_SELECTOR_PACK = S.SELECTOR.struct.pack
_SELECTOR_UNPACK = S.SELECTOR.struct.unpack
_XFRM_ID_PACK = S.XFRM_ID.struct.pack
_LIFETIME_CFG_PACK = S.LIFETIME_CFG.struct.pack
_LIFETIME_CFG_UNPACK = S.LIFETIME_CFG.struct.unpack
_USERSA_INFO_PACK = S.USERSA_INFO.struct.pack
_USERSA_ID_PACK = S.USERSA_ID.struct.pack
_USERPOLICY_INFO_PACK = S.USERPOLICY_INFO.struct.pack
_USERPOLICY_INFO_UNPACK_FROM = S.USERPOLICY_INFO.struct.unpack_from
_USERPOLICY_ID_PACK = S.USERPOLICY_ID.struct.pack
_USER_TMPL_PACK = S.USER_TMPL.struct.pack
_USER_TMPL_UNPACK_FROM = S.USER_TMPL.struct.unpack_from
_XFRM_ID_UNPACK = S.XFRM_ID.struct.unpack
_NLATTR_PACK = S.NLATTR_STRUCT.pack
_NLATTR_UNPACK_FROM = S.NLATTR_STRUCT.unpack_from
_NLATTR_U32_PACK = S.NLATTR_U32_STRUCT.pack
_NLATTR_MARK_PACK = S.NLATTR_MARK_STRUCT.pack
_NLATTR_POLICY_TYPE_PACK = S.NLATTR_POLICY_TYPE_STRUCT.pack
_NLMSGHDR_PACK = S.NLMSGHDR_STRUCT.pack
_NLMSGHDR_UNPACK_FROM = S.NLMSGHDR_STRUCT.unpack_from
_U32_UNPACK_FROM = S.U32.unpack_from
_MARK_UNPACK_FROM = S.MARK.struct.unpack_from
_ALGO_UNPACK_FROM = S.ALGO.struct.unpack_from
_ALGO_AUTH_UNPACK_FROM = S.ALGO_AUTH.struct.unpack_from
_ALGO_AEAD_UNPACK_FROM = S.ALGO_AEAD.struct.unpack_from
_ALGO_PACK = S.ALGO.struct.pack
_ALGO_AUTH_PACK = S.ALGO_AUTH.struct.pack
_ALGO_AEAD_PACK = S.ALGO_AEAD.struct.pack
_REPLAY_UNPACK_FROM = S.REPLAY_STATE.struct.unpack_from
_REPLAY_ESN_PACK = S.REPLAY_STATE_ESN.struct.pack
_REPLAY_ESN_UNPACK_FROM = S.REPLAY_STATE_ESN.struct.unpack_from

# usersa_info in one unpack for decoding: the xfrm_id, current lifetime and stats members
# flattened (spi still in network order); the selector and lifetime stay bytes, since
# decoded selectors and lifetimes are cached by their wire bytes.
_USERSA_INFO_DECODE = struct.Struct("=%ds16sIB3x16s%dsQQQQIIIIIHBBB7x" % (S.SELECTOR.size, S.LIFETIME_CFG.size))
_USERSA_INFO_DECODE_FROM = _USERSA_INFO_DECODE.unpack_from
if _USERSA_INFO_DECODE.size != S.USERSA_INFO.size:  # pragma: no cover - a layout mistake, caught at import
    raise AssertionError("usersa_info decode layout is %d bytes, struct xfrm_usersa_info %d"
                         % (_USERSA_INFO_DECODE.size, S.USERSA_INFO.size))

# Dump attributes of an SA that the kernel fills in and the model does not hold (lifetime
# counters, last use, the replay notification thresholds it sets from its sysctls, padding),
# passed over without further tests. Any other attribute the model does not hold is
# unmodelled (see the module docstring).
_STATE_ATTRS_IGNORED = frozenset((S.XFRMA_LTIME_VAL, S.XFRMA_LASTUSED, S.XFRMA_REPLAY_THRESH,
                                  S.XFRMA_ETIMER_THRESH, S.XFRMA_SRCADDR, S.XFRMA_PAD))
_POLICY_ATTRS_IGNORED = frozenset((S.XFRMA_PAD, S.XFRMA_LASTUSED))
_SEC_CTX_SIZE = S.USER_SEC_CTX.size
_ENCAP_UNPACK_FROM = S.ENCAP_TMPL.struct.unpack_from
_SEC_CTX_UNPACK_FROM = S.USER_SEC_CTX.struct.unpack_from
_OFFLOAD_UNPACK_FROM = S.USER_OFFLOAD.struct.unpack_from
# Unmodelled u32 attributes, by the word iproute2 uses for them.
_U32_ATTRIBUTE_WORDS = {S.XFRMA_TFCPAD: "tfcpad", S.XFRMA_MTIMER_THRESH: "mapping-maxage",
                        S.XFRMA_NAT_KEEPALIVE_INTERVAL: "nat-keepalive-interval", S.XFRMA_SA_PCPU: "pcpu"}

_NLATTR_SIZE = S.NLATTR.size
_NLMSGHDR_SIZE = S.NLMSGHDR.size
_USERSA_INFO_SIZE = S.USERSA_INFO.size
_USERPOLICY_INFO_SIZE = S.USERPOLICY_INFO.size
_USER_TMPL_SIZE = S.USER_TMPL.size
_MARK_ATTR_SIZE = _NLATTR_SIZE + S.MARK.size
_U32_ATTR_SIZE = _NLATTR_SIZE + S.U32.size
_POLICY_TYPE_ATTR_SIZE = _NLATTR_SIZE + S.USERPOLICY_TYPE.size  # 10; 2 padding bytes follow
_MAX_U8_REPLAY_WINDOW = 32  # larger windows go in XFRMA_REPLAY_ESN_VAL, as iproute2 does


_marks: Dict[Tuple[int, int], Mark] = {}


def _mark(value: int, mask: int) -> Optional[Mark]:
    """A decoded mark; (0, 0) is no mark. Marks repeat, so they are shared."""
    if not (value or mask):
        return None
    key = (value, mask)
    mark = _marks.get(key)
    if mark is None:
        if len(_marks) >= _CACHE_LIMIT:
            _marks.clear()
        mark = _marks[key] = Mark(value, mask)
    return mark


_alg_names: Dict[bytes, str] = {}


class XfrmCodecError(ValueError):
    """An object that cannot be expressed as an XFRM message (never carries key bytes)."""


def _align4(length: int) -> int:
    return (length + 3) & ~3


def _padding(length: int) -> bytes:
    return b"\0" * (_align4(length) - length)


# ---------------------------------------------------------------------------------------
# Addresses

_packed_addresses: Dict[str, bytes] = {}
# Address texts by raw 16-byte address, one cache per family (IPv4 reads the first 4 bytes).
_ipv4_texts: Dict[bytes, str] = {}
_ipv6_texts: Dict[bytes, str] = {}


def pack_address(text: str) -> bytes:
    """16-byte xfrm_address_t for an address in text form (IPv4 zero-padded)."""
    packed = _packed_addresses.get(text)
    if packed is None:
        try:
            if ":" in text:
                packed = _inet_pton(AF_INET6, text)
            else:
                packed = _inet_pton(AF_INET, text) + _IPV4_PADDING
        except (OSError, TypeError):
            raise XfrmCodecError("not an IP address: %r" % (text,))
        if len(_packed_addresses) >= _CACHE_LIMIT:
            _packed_addresses.clear()
        _packed_addresses[text] = packed
    return packed


def unpack_address(family: int, raw: bytes) -> str:
    """Canonical text (as ``ipaddress`` formats it) of a 16-byte xfrm_address_t."""
    text = (_ipv6_texts if family == AF_INET6 else _ipv4_texts).get(raw)
    if text is None:
        text = _address_text(family, raw)
    return text


def _address_text(family: int, raw: bytes) -> str:
    """unpack_address for an address not in the cache yet (cached on the way)."""
    if family == AF_INET6:
        texts = _ipv6_texts
        text = str(ipaddress.IPv6Address(raw))
    else:
        texts = _ipv4_texts
        text = str(ipaddress.IPv4Address(raw[:_IPV4_SIZE]))
    if len(texts) >= _CACHE_LIMIT:
        texts.clear()
    texts[raw] = text
    return text


def _network_address(packed: bytes, family: int, prefixlen: int) -> bytes:
    """The address with its host bits cleared."""
    width = 128 if family == AF_INET6 else 32
    if prefixlen >= width:
        return packed
    size = width // 8
    value = int.from_bytes(packed[:size], "big")
    value &= ((1 << width) - 1) ^ ((1 << (width - prefixlen)) - 1)
    return value.to_bytes(size, "big") + packed[size:]


# ---------------------------------------------------------------------------------------
# Selectors, lifetimes, templates, algorithms, marks


def pack_selector(selector: Optional[Selector], clear_host_bits: bool = True) -> bytes:
    """56-byte xfrm_selector; None is the all-zero selector (match everything)."""
    if selector is None:
        return _ZERO_SELECTOR
    family = selector.family
    if family not in (AF_INET, AF_INET6):
        raise XfrmCodecError("selector family must be AF_INET or AF_INET6, not %r" % (family,))
    if family_of(selector.saddr) != family or family_of(selector.daddr) != family:
        raise XfrmCodecError("selector %s -> %s mixes address families" % (selector.src, selector.dst))
    max_prefix = 128 if family == AF_INET6 else 32
    if not (0 <= selector.prefixlen_s <= max_prefix and 0 <= selector.prefixlen_d <= max_prefix):
        raise XfrmCodecError("selector %s -> %s: prefix length out of range" % (selector.src, selector.dst))
    daddr = pack_address(selector.daddr)
    saddr = pack_address(selector.saddr)
    if clear_host_bits:
        daddr = _network_address(daddr, family, selector.prefixlen_d)
        saddr = _network_address(saddr, family, selector.prefixlen_s)
    try:
        return _SELECTOR_PACK(
            daddr,
            saddr,
            _htons(selector.dport),
            _htons(selector.dport_mask),
            _htons(selector.sport),
            _htons(selector.sport_mask),
            family,
            selector.prefixlen_d,
            selector.prefixlen_s,
            selector.proto,
            selector.ifindex,
            selector.user,
        )
    except (OverflowError, struct.error) as exc:
        raise XfrmCodecError("selector %s -> %s: field out of range (%s)" % (selector.src, selector.dst, exc))


_selectors: Dict[Tuple[bytes, int], Optional[Selector]] = {}


def unpack_selector(raw: bytes, fallback_family: int = AF_INET) -> Optional[Selector]:
    """The Selector in 56 wire bytes; None for the all-zero selector of family 0 (an SA added
    with flag af-unspec). Another selector of family 0 (larval SAs carry one) keeps family 0
    and has its addresses read in ``fallback_family``, the family of the entry holding it."""
    cache_key = (raw, fallback_family)
    selector = _selectors.get(cache_key)
    if selector is None and cache_key not in _selectors:
        if raw == _ZERO_SELECTOR:
            selector = None
        else:
            (daddr, saddr, dport, dport_mask, sport, sport_mask, family, prefixlen_d, prefixlen_s, proto, ifindex,
             user) = _SELECTOR_UNPACK(raw)
            address_family = family if family in (AF_INET, AF_INET6) else fallback_family
            selector = Selector(family, unpack_address(address_family, saddr), prefixlen_s,
                                unpack_address(address_family, daddr), prefixlen_d, proto, _ntohs(sport),
                                _ntohs(sport_mask), _ntohs(dport), _ntohs(dport_mask), ifindex, user)
        if len(_selectors) >= _CACHE_LIMIT:
            _selectors.clear()
        _selectors[cache_key] = selector
    return selector


_packed_lifetimes: Dict[Lifetime, bytes] = {}
_lifetimes: Dict[bytes, Lifetime] = {}


def pack_lifetime(lifetime: Lifetime) -> bytes:
    packed = _packed_lifetimes.get(lifetime)
    if packed is None:
        try:
            packed = _LIFETIME_CFG_PACK(
                lifetime.soft_byte_limit,
                lifetime.hard_byte_limit,
                lifetime.soft_packet_limit,
                lifetime.hard_packet_limit,
                lifetime.soft_add_expires_seconds,
                lifetime.hard_add_expires_seconds,
                lifetime.soft_use_expires_seconds,
                lifetime.hard_use_expires_seconds,
            )
        except (OverflowError, struct.error) as exc:
            raise XfrmCodecError("lifetime out of range (%s)" % (exc,))
        if len(_packed_lifetimes) >= _CACHE_LIMIT:
            _packed_lifetimes.clear()
        _packed_lifetimes[lifetime] = packed
    return packed


def unpack_lifetime(raw: bytes) -> Lifetime:
    lifetime = _lifetimes.get(raw)
    if lifetime is None:
        lifetime = Lifetime(*_LIFETIME_CFG_UNPACK(raw))
        if lifetime == INFINITE_LIFETIME:
            lifetime = INFINITE_LIFETIME
        if len(_lifetimes) >= _CACHE_LIMIT:
            _lifetimes.clear()
        _lifetimes[raw] = lifetime
    return lifetime


_INFINITE_LIFETIME_BYTES = pack_lifetime(INFINITE_LIFETIME)


def pack_template(template: Template) -> bytes:
    family = template.family
    if family_of(template.src) != family:
        raise XfrmCodecError("template %s -> %s mixes address families" % (template.src, template.dst))
    try:
        return _USER_TMPL_PACK(
            _XFRM_ID_PACK(pack_address(template.dst), _htonl(template.spi), template.proto),
            family,
            pack_address(template.src),
            template.reqid,
            template.mode,
            template.share,
            1 if template.optional else 0,
            template.aalgos,
            template.ealgos,
            template.calgos,
        )
    except (OverflowError, struct.error) as exc:
        raise XfrmCodecError("template %s -> %s: field out of range (%s)" % (template.src, template.dst, exc))


_templates: Dict[Tuple[bytes, int], Template] = {}


def unpack_template(raw: bytes, fallback_family: int) -> Template:
    """The Template in 64 wire bytes; a template of family 0 has its addresses read in
    ``fallback_family``, the family of its policy's selector (the kernel fills it in so)."""
    cache_key = (raw, fallback_family)
    template = _templates.get(cache_key)
    if template is None:
        (xfrm_id, family, saddr, reqid, mode, share, optional, aalgos, ealgos, calgos) = _USER_TMPL_UNPACK_FROM(raw)
        daddr, spi, proto = _XFRM_ID_UNPACK(xfrm_id)
        if family == 0:
            family = fallback_family
        if family not in (AF_INET, AF_INET6):
            raise XfrmCodecError("template of unknown address family %d" % family)
        template = Template(unpack_address(family, saddr), unpack_address(family, daddr), reqid, _ntohl(spi), proto,
                            mode, bool(optional), share, aalgos, ealgos, calgos)
        if len(_templates) >= _CACHE_LIMIT:
            _templates.clear()
        _templates[cache_key] = template
    return template


def _alg_name(algorithm: Algorithm) -> bytes:
    try:
        name = algorithm.name.encode("ascii")
    except UnicodeEncodeError:
        raise XfrmCodecError("algorithm name %r is not ASCII" % (algorithm.name,))
    if not name or len(name) >= S.XFRM_ALG_NAME_SIZE or b"\0" in name:
        raise XfrmCodecError("algorithm name %r must be 1-%d characters" % (algorithm.name, S.XFRM_ALG_NAME_SIZE - 1))
    return name


def _algorithm_attr(algorithm: Algorithm, expected_kind: str) -> bytes:
    if algorithm.kind != expected_kind:
        raise XfrmCodecError("algorithm %s is of kind %r, expected %r" % (algorithm.name, algorithm.kind, expected_kind))
    name = _alg_name(algorithm)
    key = bytes(algorithm.key)
    key_bits = len(key) * 8
    try:
        if expected_kind == ALGO_AEAD:
            attr_type = XFRMA_ALG_AEAD
            fixed = _ALGO_AEAD_PACK(name, key_bits, algorithm.bits)
        elif expected_kind == ALGO_AUTH:
            attr_type = XFRMA_ALG_AUTH_TRUNC
            fixed = _ALGO_AUTH_PACK(name, key_bits, algorithm.bits)
        else:
            attr_type = XFRMA_ALG_CRYPT
            fixed = _ALGO_PACK(name, key_bits)
    except (OverflowError, struct.error):
        raise XfrmCodecError("algorithm %s: length out of range" % (algorithm.name,))
    length = _NLATTR_SIZE + len(fixed) + len(key)
    return _NLATTR_PACK(length, attr_type) + fixed + key + _padding(length)


_ALGO_LAYOUTS = {ALGO_CRYPT: (_ALGO_UNPACK_FROM, S.ALGO.size), ALGO_AEAD: (_ALGO_AEAD_UNPACK_FROM, S.ALGO_AEAD.size),
                 ALGO_AUTH: (_ALGO_AUTH_UNPACK_FROM, S.ALGO_AUTH.size)}


def _algorithm_from(kind: str, data: bytes, start: int, end: int) -> Algorithm:
    """The algorithm in an xfrm_algo, xfrm_algo_aead or xfrm_algo_auth attribute payload
    between start and end (XfrmCodecError when the key does not fit in it)."""
    unpack_from, size = _ALGO_LAYOUTS[kind]
    if end - start < size:
        raise XfrmCodecError("%s algorithm attribute of %d bytes, shorter than its %d-byte header"
                             % (kind, end - start, size))
    if kind == ALGO_CRYPT:
        name, key_bits = unpack_from(data, start)
        bits = 0
    else:
        name, key_bits, bits = unpack_from(data, start)
    key_start = start + size
    key_end = key_start + (key_bits + 7) // 8
    if key_end > end:
        raise XfrmCodecError("%s algorithm attribute announces a %d-bit key in %d bytes"
                             % (kind, key_bits, end - key_start))
    text = _alg_names.get(name)
    if text is None:
        text = _alg_names[name] = name.split(b"\0", 1)[0].decode("ascii", "replace")
    return Algorithm(kind, text, bytes(data[key_start:key_end]), bits)


def _mark_attr(mark: Optional[Mark]) -> bytes:
    if mark is None or (mark.value == 0 and mark.mask == 0):
        return b""
    try:
        return _NLATTR_MARK_PACK(_MARK_ATTR_SIZE, XFRMA_MARK, mark.value, mark.mask)
    except (OverflowError, struct.error):
        raise XfrmCodecError("mark 0x%x/0x%x out of range" % (mark.value, mark.mask))


def _u32_attr(attr_type: int, value: int) -> bytes:
    try:
        return _NLATTR_U32_PACK(_U32_ATTR_SIZE, attr_type, value)
    except (OverflowError, struct.error):
        raise XfrmCodecError("attribute %d value %r out of range" % (attr_type, value))


def _unmodelled_attrs(unmodelled: Sequence[Unmodelled]) -> List[bytes]:
    """The attributes an entry read from a dump carried and the model does not hold, as the
    kernel sent them."""
    attrs = []
    for attribute in unmodelled:
        length = _NLATTR_SIZE + len(attribute.payload)
        if length > 0xFFFF:
            raise XfrmCodecError("%s: attribute too long" % attribute.text)
        attrs.append(_NLATTR_PACK(length, attribute.attribute) + attribute.payload + _padding(length))
    return attrs


def _no_security_context(policy: XfrmPolicy) -> None:
    if policy.security_context is not None:
        raise XfrmCodecError("policy %s -> %s carries a security context, which netsec.ipsec cannot send"
                             % (policy.selector.src, policy.selector.dst))


def _policy_type_attr(ptype: int) -> bytes:
    # Absent means main; iproute2 only sends it for other types, and so do we.
    if ptype == 0:
        return b""
    return _NLATTR_POLICY_TYPE_PACK(_POLICY_TYPE_ATTR_SIZE, XFRMA_POLICY_TYPE, ptype, 0, 0)


# ---------------------------------------------------------------------------------------
# Message encoders (payloads)


def frame(msg_type: int, flags: int, seq: int, payload: bytes, port_id: int = 0) -> bytes:
    """A complete netlink message: nlmsghdr + payload."""
    return _NLMSGHDR_PACK(_NLMSGHDR_SIZE + len(payload), msg_type, flags, seq, port_id) + payload


def _usersa_info(state: XfrmState, seq: int = 0) -> Tuple[bytes, List[bytes]]:
    """The usersa_info struct and the attributes that carry the rest of an SA."""
    family = state.family
    if family_of(state.src) != family:
        raise XfrmCodecError("state %s -> %s mixes address families" % (state.src, state.dst))
    attrs: List[bytes] = []
    replay_window = state.replay_window
    flags = state.flags
    if state.esn:
        flags |= XFRM_STATE_ESN
    if state.esn or replay_window > _MAX_U8_REPLAY_WINDOW:
        if replay_window > XFRMA_REPLAY_ESN_MAX_BITS:
            raise XfrmCodecError("replay window %d exceeds %d" % (replay_window, XFRMA_REPLAY_ESN_MAX_BITS))
        bitmap_words = (replay_window + S.REPLAY_BITMAP_WORD_BITS - 1) // S.REPLAY_BITMAP_WORD_BITS
        esn = _REPLAY_ESN_PACK(bitmap_words, 0, 0, 0, 0, replay_window)
        replay_attr = _NLATTR_PACK(_NLATTR_SIZE + len(esn), XFRMA_REPLAY_ESN_VAL) + esn
        replay_window = 0
    else:
        replay_attr = b""
    if state.aead is not None:
        if state.auth is not None or state.crypt is not None:
            raise XfrmCodecError("an AEAD SA cannot also carry auth or crypt algorithms")
        attrs.append(_algorithm_attr(state.aead, ALGO_AEAD))
    if state.auth is not None:
        attrs.append(_algorithm_attr(state.auth, ALGO_AUTH))
    if state.crypt is not None:
        attrs.append(_algorithm_attr(state.crypt, ALGO_CRYPT))
    if replay_attr:
        attrs.append(replay_attr)
    mark = _mark_attr(state.mark)
    if mark:
        attrs.append(mark)
    if state.if_id:
        attrs.append(_u32_attr(XFRMA_IF_ID, state.if_id))
    output_mark = state.output_mark
    if output_mark is not None and (output_mark.value or output_mark.mask):
        attrs.append(_u32_attr(XFRMA_SET_MARK, output_mark.value))
        attrs.append(_u32_attr(XFRMA_SET_MARK_MASK, output_mark.mask))
    if state.unmodelled:
        attrs.extend(_unmodelled_attrs(state.unmodelled))
    try:
        info = _USERSA_INFO_PACK(
            pack_selector(state.selector),
            _XFRM_ID_PACK(pack_address(state.dst), _htonl(state.spi), state.proto),
            pack_address(state.src),
            _INFINITE_LIFETIME_BYTES if state.lifetime is INFINITE_LIFETIME else pack_lifetime(state.lifetime),
            _ZERO_CURLFT,
            _ZERO_STATS,
            seq,
            state.reqid,
            family,
            state.mode,
            replay_window,
            flags,
        )
    except (OverflowError, struct.error) as exc:
        raise XfrmCodecError("state %s -> %s: field out of range (%s)" % (state.src, state.dst, exc))
    return info, attrs


def encode_newsa(state: XfrmState) -> bytes:
    """NEWSA / UPDSA payload: usersa_info + algorithms, replay, marks, if_id."""
    info, attrs = _usersa_info(state)
    attrs.insert(0, info)
    return b"".join(attrs)


def encode_delsa(state: XfrmState) -> bytes:
    """DELSA payload: the SA's kernel key (daddr, spi, family, proto) and its mark."""
    try:
        sa_id = _USERSA_ID_PACK(pack_address(state.dst), _htonl(state.spi), state.family, state.proto)
    except (OverflowError, struct.error) as exc:
        raise XfrmCodecError("state -> %s: field out of range (%s)" % (state.dst, exc))
    return sa_id + _mark_attr(state.mark)


def encode_allocspi(state: XfrmState, spi_min: int, spi_max: int) -> bytes:
    """ALLOCSPI payload (creates a larval SA; used by tests on kernels without ESP)."""
    info = _usersa_info(state)[0]
    return info + struct.pack("=II", spi_min, spi_max) + _mark_attr(state.mark)


def encode_newpolicy(policy: XfrmPolicy) -> bytes:
    """NEWPOLICY / UPDPOLICY payload: userpolicy_info + type, templates, mark, if_id."""
    if len(policy.templates) > S.XFRM_MAX_DEPTH:
        raise XfrmCodecError("a policy carries at most %d templates" % S.XFRM_MAX_DEPTH)
    _no_security_context(policy)
    try:
        info = _USERPOLICY_INFO_PACK(
            pack_selector(policy.selector),
            _INFINITE_LIFETIME_BYTES if policy.lifetime is INFINITE_LIFETIME else pack_lifetime(policy.lifetime),
            _ZERO_CURLFT,
            policy.priority,
            0,  # index: chosen by the kernel
            policy.dir,
            policy.action,
            policy.flags,
            0,
        )
    except (OverflowError, struct.error) as exc:
        raise XfrmCodecError("policy %s -> %s: field out of range (%s)" % (policy.selector.src, policy.selector.dst, exc))
    parts = [info, _policy_type_attr(policy.ptype)]
    if policy.templates:
        packed = b"".join([pack_template(t) for t in policy.templates])
        parts.append(_NLATTR_PACK(_NLATTR_SIZE + len(packed), XFRMA_TMPL))
        parts.append(packed)
    parts.append(_mark_attr(policy.mark))
    if policy.if_id:
        parts.append(_u32_attr(XFRMA_IF_ID, policy.if_id))
    if policy.unmodelled:
        parts.extend(_unmodelled_attrs(policy.unmodelled))
    return b"".join(parts)


def encode_delpolicy(policy: XfrmPolicy) -> bytes:
    """DELPOLICY payload: exact selector + dir (index 0), mark, policy type, if_id (a policy
    with a security context cannot be addressed without it: XfrmCodecError)."""
    _no_security_context(policy)
    try:
        policy_id = _USERPOLICY_ID_PACK(pack_selector(policy.selector, clear_host_bits=False), 0, policy.dir)
    except (OverflowError, struct.error) as exc:
        raise XfrmCodecError("policy %s -> %s: field out of range (%s)" % (policy.selector.src, policy.selector.dst, exc))
    parts = [policy_id, _policy_type_attr(policy.ptype), _mark_attr(policy.mark)]
    if policy.if_id:
        parts.append(_u32_attr(XFRMA_IF_ID, policy.if_id))
    return b"".join(parts)


# ---------------------------------------------------------------------------------------
# Decoders


def iter_messages(data: bytes) -> Iterator[Tuple[int, int, int, int, int]]:
    """(type, flags, seq, payload offset, end offset) of each message in a datagram;
    XfrmCodecError when the datagram is empty or a message overruns it."""
    offset = 0
    size = len(data)
    if not size:
        raise XfrmCodecError("empty netlink datagram")
    while offset + _NLMSGHDR_SIZE <= size:
        length, msg_type, flags, seq, _port_id = _NLMSGHDR_UNPACK_FROM(data, offset)
        if length < _NLMSGHDR_SIZE or offset + length > size:
            raise XfrmCodecError("truncated netlink message at offset %d" % offset)
        yield msg_type, flags, seq, offset + _NLMSGHDR_SIZE, offset + length
        offset += _align4(length)
    if offset < size:
        raise XfrmCodecError("%d stray bytes after the last netlink message" % (size - offset))


def decode_error(data: bytes, start: int, end: int, flags: int) -> Tuple[int, Optional[str]]:
    """(errno, extended-ack message) of an NLMSG_ERROR payload; errno 0 is an ACK."""
    if end - start < _ERROR_FIXED_SIZE:
        raise XfrmCodecError("netlink error message of %d bytes, shorter than %d" % (end - start, _ERROR_FIXED_SIZE))
    error, echo_length = _ERROR_UNPACK_FROM(data, start)
    _check_errno(error, "error")
    message: Optional[str] = None
    if flags & S.NLM_F_ACK_TLVS:
        # The echoed request follows: just its header when capped, else all of it.
        offset = start + 4 + (_NLMSGHDR_SIZE if flags & S.NLM_F_CAPPED else _align4(echo_length))
        for attr_type, payload, attr_end in _attributes(data, offset, end):
            if attr_type == S.NLMSGERR_ATTR_MSG:
                message = bytes(data[payload:attr_end]).split(b"\0", 1)[0].decode("utf-8", "replace")
    return -error, message


def decode_done(data: bytes, start: int, end: int) -> int:
    """The errno an NLMSG_DONE payload reports (0: the dump is complete). The kernel puts the
    dump callback's result there: a negative errno when the dump stopped early."""
    if end - start < _DONE_ERROR_SIZE:
        return 0
    (error,) = _DONE_UNPACK_FROM(data, start)
    _check_errno(error, "done")
    return -error


def _check_errno(error: int, kind: str) -> None:
    if not -MAX_ERRNO <= error <= 0:
        raise XfrmCodecError("netlink %s message carries %d, which is neither 0 nor a negated errno" % (kind, error))


def _attributes(data: bytes, offset: int, end: int) -> Iterator[Tuple[int, int, int]]:
    """(type without the nested/byte-order flags, payload offset, payload end) of each
    netlink attribute from ``offset`` to ``end``; XfrmCodecError when one overruns ``end``."""
    while offset + _NLATTR_SIZE <= end:
        attr_length, attr_type = _NLATTR_UNPACK_FROM(data, offset)
        attr_end = offset + attr_length
        if attr_length < _NLATTR_SIZE or attr_end > end:
            raise XfrmCodecError("netlink attribute %d of %d bytes at offset %d overruns its message (%d bytes left)"
                                 % (attr_type & _NLA_TYPE_MASK, attr_length, offset, end - offset))
        yield attr_type & _NLA_TYPE_MASK, offset + _NLATTR_SIZE, attr_end
        offset += (attr_length + 3) & ~3


def _fixed(what: str, attr_type: int, payload: int, attr_end: int, size: int) -> None:
    """XfrmCodecError unless an attribute's payload holds ``size`` bytes."""
    if attr_end - payload < size:
        raise XfrmCodecError("%s attribute %d of %d bytes, shorter than %d" % (what, attr_type, attr_end - payload,
                                                                               size))


def _mark_from(data: bytes, payload: int, attr_end: int, attr_type: int) -> Optional[Mark]:
    _fixed("mark", attr_type, payload, attr_end, S.MARK.size)
    value, mask = _MARK_UNPACK_FROM(data, payload)
    return _mark(value, mask)


def _u32_from(data: bytes, payload: int, attr_end: int, attr_type: int) -> int:
    _fixed("u32", attr_type, payload, attr_end, S.U32.size)
    return _U32_UNPACK_FROM(data, payload)[0]


# ---------------------------------------------------------------------------------------
# Attributes the collection never sets


def _flag_names(flags: int, names: Dict[int, str]) -> str:
    words = [name for bit, name in sorted(names.items()) if flags & bit]
    rest = flags & ~sum(names)
    if rest:
        words.append("0x%x" % rest)
    return " ".join(words)


def security_context_text(data: bytes, payload: int, attr_end: int) -> str:
    """The context string of an XFRMA_SEC_CTX payload without the NULs that end it (the kernel
    reports ``ip xfrm ... ctx`` strings with two), other bytes that are not printable ASCII as
    backslash escapes, so two contexts never read alike."""
    _fixed("security context", S.XFRMA_SEC_CTX, payload, attr_end, _SEC_CTX_SIZE)
    _length, _exttype, _alg, _doi, ctx_len = _SEC_CTX_UNPACK_FROM(data, payload)
    start = payload + _SEC_CTX_SIZE
    if start + ctx_len > attr_end:
        raise XfrmCodecError("security context of %d bytes in an attribute of %d" % (ctx_len, attr_end - payload))
    raw = bytes(data[start:start + ctx_len]).rstrip(b"\0")
    return "".join(chr(byte) if 0x20 <= byte < 0x7F and byte != 0x5C else "\\x%02x" % byte for byte in raw)


def _unmodelled_text(attr_type: int, data: bytes, payload: int, attr_end: int, family: int) -> str:
    """How a masked line shows an attribute the collection never sets (never key bytes)."""
    size = attr_end - payload
    if attr_type == S.XFRMA_ENCAP:
        _fixed("encapsulation", attr_type, payload, attr_end, S.ENCAP_TMPL.size)
        encap_type, sport, dport, original = _ENCAP_UNPACK_FROM(data, payload)
        return "encap %s %d %d %s" % (S.ENCAP_TYPE_NAMES.get(encap_type, "type %d" % encap_type), _ntohs(sport),
                                      _ntohs(dport), unpack_address(family, original))
    if attr_type == S.XFRMA_SEC_CTX:
        return "ctx %r" % security_context_text(data, payload, attr_end)
    if attr_type == S.XFRMA_SA_EXTRA_FLAGS:
        return "extra-flag %s" % _flag_names(_u32_from(data, payload, attr_end, attr_type), S.SA_EXTRA_FLAG_NAMES)
    if attr_type == S.XFRMA_OFFLOAD_DEV:
        _fixed("offload", attr_type, payload, attr_end, S.USER_OFFLOAD.size)
        ifindex, flags = _OFFLOAD_UNPACK_FROM(data, payload)
        return ("offload ifindex %d %s" % (ifindex, _flag_names(flags, S.OFFLOAD_FLAG_NAMES))).rstrip()
    if attr_type == S.XFRMA_COADDR:
        _fixed("care-of address", attr_type, payload, attr_end, _ADDRESS_SIZE)
        return "coa %s" % unpack_address(family, bytes(data[payload:payload + _ADDRESS_SIZE]))
    if attr_type == S.XFRMA_ALG_COMP:
        return "comp %s" % _algorithm_from(ALGO_CRYPT, data, payload, attr_end).name
    if attr_type == S.XFRMA_SA_DIR:
        _fixed("SA direction", attr_type, payload, attr_end, 1)
        return "dir %s" % S.SA_DIR_NAMES.get(data[payload], str(data[payload]))
    word = _U32_ATTRIBUTE_WORDS.get(attr_type)
    if word is not None:
        return "%s %d" % (word, _u32_from(data, payload, attr_end, attr_type))
    return "attribute %d (%d bytes)" % (attr_type, size)


def _unmodelled(attr_type: int, data: bytes, payload: int, attr_end: int, family: int) -> Unmodelled:
    return Unmodelled(attr_type, _unmodelled_text(attr_type, data, payload, attr_end, family),
                      bytes(data[payload:attr_end]))


def _state_attributes(data: bytes, offset: int, end: int, family: int) -> Tuple[Any, ...]:
    """The attributes of a NEWSA payload from ``offset``: (aead, auth, crypt, mark, output
    mark, if_id, oseq, seq, ESN replay window or None, unmodelled). A mark 0/0 is no mark;
    an auth algorithm reported only as XFRMA_ALG_AUTH (no truncation length) has bits 0."""
    aead = auth = auth_plain = crypt = mark = output_mark = None
    output_mark_value: Optional[int] = None
    output_mark_mask = 0xFFFFFFFF
    if_id = oseq = seq = 0
    esn_window: Optional[int] = None
    unmodelled: List[Unmodelled] = []
    for attr_type, payload, attr_end in _attributes(data, offset, end):
        if attr_type == XFRMA_ALG_AEAD:
            aead = _algorithm_from(ALGO_AEAD, data, payload, attr_end)
        elif attr_type == XFRMA_REPLAY_ESN_VAL:
            _fixed("replay", attr_type, payload, attr_end, _REPLAY_ESN_SIZE)
            _bmp_len, oseq, seq, oseq_hi, seq_hi, esn_window = _REPLAY_ESN_UNPACK_FROM(data, payload)
            oseq |= oseq_hi << 32
            seq |= seq_hi << 32
        elif attr_type in _STATE_ATTRS_IGNORED:
            pass
        elif attr_type == XFRMA_ALG_AUTH_TRUNC:
            auth = _algorithm_from(ALGO_AUTH, data, payload, attr_end)
        elif attr_type == XFRMA_ALG_AUTH:
            auth_plain = _algorithm_from(ALGO_CRYPT, data, payload, attr_end)
        elif attr_type == XFRMA_ALG_CRYPT:
            crypt = _algorithm_from(ALGO_CRYPT, data, payload, attr_end)
        elif attr_type == XFRMA_MARK:
            mark = _mark_from(data, payload, attr_end, attr_type)
        elif attr_type == XFRMA_SET_MARK:
            output_mark_value = _u32_from(data, payload, attr_end, attr_type)
        elif attr_type == XFRMA_SET_MARK_MASK:
            output_mark_mask = _u32_from(data, payload, attr_end, attr_type)
        elif attr_type == XFRMA_IF_ID:
            if_id = _u32_from(data, payload, attr_end, attr_type)
        elif attr_type == XFRMA_REPLAY_VAL:
            _fixed("replay", attr_type, payload, attr_end, _REPLAY_SIZE)
            oseq, seq, _bitmap = _REPLAY_UNPACK_FROM(data, payload)
        elif attr_type != S.XFRMA_SA_EXTRA_FLAGS or _u32_from(data, payload, attr_end, attr_type):
            # Extra flags 0 are no flags (the kernel reports only non-zero ones).
            unmodelled.append(_unmodelled(attr_type, data, payload, attr_end, family))
    if auth is None and auth_plain is not None:
        auth = Algorithm(ALGO_AUTH, auth_plain.name, auth_plain.key, 0)
    if output_mark_value is not None:
        output_mark = _mark(output_mark_value, output_mark_mask)
    return (aead, auth, crypt, mark, output_mark, if_id, oseq, seq, esn_window,
            tuple(sorted(unmodelled)) if unmodelled else ())


def _state_addresses(family: int, saddr: bytes, daddr: bytes) -> Tuple[str, str]:
    if family == AF_INET6:
        texts = _ipv6_texts
    elif family == AF_INET:
        texts = _ipv4_texts
    else:
        raise XfrmCodecError("SA of unknown address family %d" % family)
    return (texts.get(saddr) or _address_text(family, saddr), texts.get(daddr) or _address_text(family, daddr))


def _decode_state(data: bytes, start: int, end: int) -> Tuple[XfrmState, Tuple[int, ...]]:
    """The SA of a NEWSA payload and its counters (bytes, packets, add and use time, replay
    window, replay and integrity failures, output and input sequence numbers)."""
    if end - start < _USERSA_INFO_SIZE:
        raise XfrmCodecError("SA message of %d bytes, shorter than xfrm_usersa_info (%d)"
                             % (end - start, _USERSA_INFO_SIZE))
    (sel_raw, daddr, spi, proto, saddr, lft_raw, curlft_bytes, curlft_packets, add_time, use_time, stats_window,
     stats_replay, stats_integrity, _seq, reqid, family, mode, replay_window,
     flags) = _USERSA_INFO_DECODE_FROM(data, start)
    src, dst = _state_addresses(family, saddr, daddr)
    aead, auth, crypt, mark, output_mark, if_id, oseq, seq, esn_window, unmodelled = _state_attributes(
        data, start + _USERSA_INFO_SIZE, end, family)
    state = _new_state((src, dst, _ntohl(spi), reqid, proto, mode,
                        replay_window if esn_window is None else esn_window, bool(flags & XFRM_STATE_ESN),
                        flags & ~XFRM_STATE_ESN, unpack_selector(sel_raw, family), aead, auth, crypt, mark,
                        output_mark, if_id,
                        INFINITE_LIFETIME if lft_raw == _INFINITE_LIFETIME_BYTES else unpack_lifetime(lft_raw),
                        unmodelled))
    return state, (curlft_bytes, curlft_packets, add_time, use_time, stats_window, stats_replay, stats_integrity,
                   oseq, seq)


def decode_state(data: bytes, start: int, end: int) -> XfrmState:
    """The SA in a NEWSA message payload (a dump reply) between start and end."""
    return _decode_state(data, start, end)[0]


def decode_state_counters(data: bytes, start: int, end: int) -> Tuple[XfrmState, StateCounters]:
    """The SA in a NEWSA message payload and what the kernel counts on it."""
    state, counters = _decode_state(data, start, end)
    return state, StateCounters(*counters)


def _policy_attributes(data: bytes, offset: int, end: int, family: int) -> Tuple[Any, ...]:
    """The attributes of a NEWPOLICY payload from ``offset``: (templates, mark (a mark 0/0
    is no mark), policy type, if_id, security context or None, unmodelled)."""
    templates: Tuple[Template, ...] = ()
    mark = None
    ptype = 0
    if_id = 0
    security_context: Optional[str] = None
    unmodelled: List[Unmodelled] = []
    for attr_type, payload, attr_end in _attributes(data, offset, end):
        if attr_type == XFRMA_TMPL:
            if (attr_end - payload) % _USER_TMPL_SIZE:
                raise XfrmCodecError("template attribute of %d bytes is not a whole number of %d-byte templates"
                                     % (attr_end - payload, _USER_TMPL_SIZE))
            templates = tuple([unpack_template(bytes(data[position:position + _USER_TMPL_SIZE]), family)
                               for position in range(payload, attr_end, _USER_TMPL_SIZE)])
        elif attr_type == XFRMA_MARK:
            mark = _mark_from(data, payload, attr_end, attr_type)
        elif attr_type == XFRMA_POLICY_TYPE:
            _fixed("policy type", attr_type, payload, attr_end, 1)
            ptype = data[payload]
        elif attr_type == XFRMA_IF_ID:
            if_id = _u32_from(data, payload, attr_end, attr_type)
        elif attr_type == S.XFRMA_SEC_CTX:
            security_context = security_context_text(data, payload, attr_end)
        elif attr_type not in _POLICY_ATTRS_IGNORED:
            unmodelled.append(_unmodelled(attr_type, data, payload, attr_end, family))
    return templates, mark, ptype, if_id, security_context, tuple(sorted(unmodelled)) if unmodelled else ()


# A policy's all-zero selector (which the kernel refuses to install) read as family 0.
_ZERO_POLICY_SELECTOR = Selector(0, "0.0.0.0", 0, "0.0.0.0", 0)


def decode_policy(data: bytes, start: int, end: int) -> Optional[XfrmPolicy]:
    """The policy in a NEWPOLICY payload; None for per-socket policies (dir >= 3)."""
    if end - start < _USERPOLICY_INFO_SIZE:
        raise XfrmCodecError("policy message of %d bytes, shorter than xfrm_userpolicy_info (%d)"
                             % (end - start, _USERPOLICY_INFO_SIZE))
    (sel_raw, lft_raw, _curlft, priority, _index, direction, action, flags,
     _share) = _USERPOLICY_INFO_UNPACK_FROM(data, start)
    if direction >= XFRM_POLICY_MAX:
        return None
    selector = unpack_selector(sel_raw) or _ZERO_POLICY_SELECTOR
    templates, mark, ptype, if_id, security_context, unmodelled = _policy_attributes(
        data, start + _USERPOLICY_INFO_SIZE, end, selector.family)
    return XfrmPolicy(selector, direction, action, priority, templates, mark, ptype, if_id, flags,
                      INFINITE_LIFETIME if lft_raw == _INFINITE_LIFETIME_BYTES else unpack_lifetime(lft_raw),
                      security_context, unmodelled)


_MESSAGE_TYPES = {
    (XfrmState, Verb.ADD): S.XFRM_MSG_NEWSA,
    (XfrmState, Verb.UPDATE): S.XFRM_MSG_UPDSA,
    (XfrmState, Verb.DELETE): S.XFRM_MSG_DELSA,
    (XfrmPolicy, Verb.ADD): S.XFRM_MSG_NEWPOLICY,
    (XfrmPolicy, Verb.UPDATE): S.XFRM_MSG_UPDPOLICY,
    (XfrmPolicy, Verb.DELETE): S.XFRM_MSG_DELPOLICY,
}


def encode_operation(operation: Operation) -> Tuple[int, bytes]:
    """(message type, payload) of a kernel operation on an SA or policy."""
    entry = operation.entry
    msg_type = _MESSAGE_TYPES.get((type(entry), operation.verb))
    if msg_type is None:
        raise XfrmCodecError("cannot encode %r of a %s" % (operation.verb, type(entry).__name__))
    if operation.verb is Verb.DELETE:
        return msg_type, encode_delsa(entry) if isinstance(entry, XfrmState) else encode_delpolicy(entry)
    return msg_type, encode_newsa(entry) if isinstance(entry, XfrmState) else encode_newpolicy(entry)


__all__: Sequence[str] = (
    "XfrmCodecError",
    "decode_done",
    "decode_error",
    "decode_policy",
    "decode_state",
    "decode_state_counters",
    "encode_allocspi",
    "encode_delpolicy",
    "encode_delsa",
    "encode_operation",
    "encode_newpolicy",
    "encode_newsa",
    "frame",
    "iter_messages",
    "pack_address",
    "pack_lifetime",
    "pack_selector",
    "pack_template",
    "unpack_address",
    "unpack_selector",
    "unpack_template",
)
