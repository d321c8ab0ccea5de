# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""iproute2 as an oracle for the XFRM codec (issue 3).

Three tools, none of which uses the collection's netlink code:

* :func:`ip_xfrm_args` turns a model object into the ``ip xfrm state|policy add ...`` argument
  list that makes iproute2 install exactly that object (or raises ``Inexpressible``).
* :func:`parse_states` / :func:`parse_policies` turn ``ip -s -d xfrm state|policy list``
  output (iproute2 6.1; plain ``ip xfrm`` output is accepted too, without lifetimes) back
  into model objects, field by field.
* :func:`corpus` generates a deterministic set of SAs and policies covering every field of
  issue 3, with distinct kernel keys so that all of them fit into one namespace.

Plus :func:`kernel_form` (what the kernel is expected to store for an object, in model terms)
and :func:`compare` (field-by-field differences, naming the object and the field).

Everything that runs ``ip`` takes a netns name and always passes ``-n NAME``: the root
namespace's XFRM tables are never read or written from here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import re
import secrets
import socket
import subprocess
import time
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ACTION_ALLOW, ACTION_BLOCK, AF_INET, AF_INET6, ALGO_AEAD, ALGO_AUTH, ALGO_CRYPT, ALL_ALGOS, DIR_FWD, DIR_IN,
    DIR_NAMES, DIR_OUT, INFINITE_LIFETIME, IPPROTO_ESP, MODE_NAMES, MODE_TRANSPORT, MODE_TUNNEL, POLICY_TYPE_MAIN,
    POLICY_TYPE_SUB, SA_FLAG_AF_UNSPEC, SA_FLAG_ESN, XFRM_INF, Algorithm, Lifetime, Mark, Operation, Selector,
    StateCounters, Template, Verb, XfrmPolicy, XfrmState, any_address, family_of, selector_between,
)

XfrmObject = Union[XfrmState, XfrmPolicy]

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_DCCP = 33
IPPROTO_GRE = 47
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132
IPPROTO_MH = 135
IPPROTO_COMP = 108

# iproute2 only knows these names for the XFRM protocol of an SA or template (ipxfrm.c).
XFRM_PROTO_NAMES = {IPPROTO_ESP: "esp", IPPROTO_AH: "ah", IPPROTO_COMP: "comp", 43: "route2", 60: "hao", 255: "ipsec-any"}
XFRM_PROTO_BY_NAME = {v: k for k, v in XFRM_PROTO_NAMES.items()}
MODE_BY_NAME = {"transport": MODE_TRANSPORT, "tunnel": MODE_TUNNEL, "ro": 2, "in_trigger": 3, "beet": 4}
MODE_TEXT = {**MODE_NAMES, 2: "ro", 3: "in_trigger", 4: "beet"}
DIR_BY_NAME = {v: k for k, v in DIR_NAMES.items()}

# usersa_info.flags names in iproute2's order; ESN is the model's ``esn`` field, not ``flags``.
STATE_FLAG_NAMES = (
    (1, "noecn"),
    (2, "decap-dscp"),
    (4, "nopmtudisc"),
    (8, "wildrecv"),
    (16, "icmp"),
    (32, "af-unspec"),
    (64, "align4"),
    (SA_FLAG_ESN, "esn"),
)
POLICY_FLAG_NAMES = ((1, "localok"), (2, "icmp"))

# Selector protocols whose ports iproute2 reads and prints as sport/dport, and those whose
# sport/dport hold an ICMP type/code (ip/ipxfrm.c, xfrm_selector_upspec_parse and _print).
PORT_PROTOS = (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_DCCP)
TYPE_CODE_PROTOS = (IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_MH)

# Lifetime fields in the order of iproute2's "limit" keywords.
LIMIT_KEYWORDS = (
    ("soft_byte_limit", "byte-soft"),
    ("hard_byte_limit", "byte-hard"),
    ("soft_packet_limit", "packet-soft"),
    ("hard_packet_limit", "packet-hard"),
    ("soft_add_expires_seconds", "time-soft"),
    ("hard_add_expires_seconds", "time-hard"),
    ("soft_use_expires_seconds", "time-use-soft"),
    ("hard_use_expires_seconds", "time-use-hard"),
)

# Interface names the builder and the parser agree on for selector ifindex ("dev NAME").
# A fresh network namespace always has lo as ifindex 1.
DEFAULT_IFNAMES = {1: "lo"}


class Inexpressible(ValueError):
    """The object has a field value that ``ip xfrm ... add`` cannot produce."""


class ParseError(ValueError):
    """``ip xfrm`` output that the parser does not understand (never silently skipped)."""


# ---------------------------------------------------------------------------------------------
# model object -> ip xfrm arguments


def _hex(value: int) -> str:
    return "0x%x" % value


def _proto_text(proto: int) -> str:
    # Numbers are accepted by iproute2 (getprotobyname fails, get_u8 succeeds) and do not
    # depend on /etc/protocols.
    return str(proto)


def _selector_args(sel: Selector, ifnames: Mapping[int, str]) -> List[str]:
    if sel.family not in (AF_INET, AF_INET6):
        raise Inexpressible("selector family %r: iproute2 derives it from the addresses" % sel.family)
    if family_of(sel.saddr) != sel.family or family_of(sel.daddr) != sel.family:
        raise Inexpressible("selector family %d does not match its addresses %s, %s" % (sel.family, sel.saddr, sel.daddr))
    if sel.user:
        raise Inexpressible("selector user (uid) %d: iproute2 cannot set it" % sel.user)
    args = ["src", "%s/%d" % (sel.saddr, sel.prefixlen_s), "dst", "%s/%d" % (sel.daddr, sel.prefixlen_d)]
    if sel.proto:
        args += ["proto", _proto_text(sel.proto)]
    if sel.proto in TYPE_CODE_PROTOS:
        for value, mask, word in ((sel.sport, sel.sport_mask, "type"), (sel.dport, sel.dport_mask, "code")):
            if mask == 0xFFFF and value <= 0xFF:
                args += [word, str(value)]
            elif mask or value:
                raise Inexpressible("selector %s %d/%#x" % (word, value, mask))
    else:
        for value, mask, word in ((sel.sport, sel.sport_mask, "sport"), (sel.dport, sel.dport_mask, "dport")):
            if value and mask == 0xFFFF:
                if sel.proto not in PORT_PROTOS:
                    raise Inexpressible("selector %s with protocol %d" % (word, sel.proto))
                args += [word, str(value)]
            elif value or mask:
                raise Inexpressible("selector %s %d/%#x (iproute2 only sets a full mask on a non-zero port)" % (word, value, mask))
    if sel.ifindex:
        if sel.ifindex not in ifnames:
            raise Inexpressible("selector ifindex %d has no known interface name" % sel.ifindex)
        args += ["dev", ifnames[sel.ifindex]]
    return args


def _mark_args(word: str, mark: Optional[Mark]) -> List[str]:
    if mark is None:
        return []
    if mark.mask == 0:
        raise Inexpressible("%s with mask 0: iproute2 does not send the attribute" % word)
    if word == "output-mark" and mark.value == 0:
        raise Inexpressible("output-mark value 0: iproute2 does not send the attribute")
    return [word, _hex(mark.value), "mask", _hex(mark.mask)]


def _lifetime_args(lft: Lifetime) -> List[str]:
    args = []
    for field, word in LIMIT_KEYWORDS:
        value = getattr(lft, field)
        if value != getattr(INFINITE_LIFETIME, field):
            # iproute2 starts from INF byte/packet limits and 0 (no limit) times
            args += ["limit", word, str(value)]
    return args


def _flag_names(flags: int, table: Sequence[Tuple[int, str]], what: str) -> List[str]:
    names = []
    rest = flags
    for bit, name in table:
        if rest & bit:
            names.append(name)
            rest &= ~bit
    if rest:
        raise Inexpressible("%s flags %#x have no iproute2 name" % (what, rest))
    return names


def _algo_args(algo: Algorithm) -> List[str]:
    key = "0x" + algo.key.hex() if algo.key else "0x"
    if not algo.key:
        raise Inexpressible("algorithm %s with an empty key" % algo.name)
    if algo.kind == ALGO_AEAD:
        return ["aead", algo.name, key, str(algo.bits)]
    if algo.kind == ALGO_AUTH:
        return ["auth-trunc", algo.name, key, str(algo.bits)]
    if algo.kind == ALGO_CRYPT:
        if algo.bits:
            raise Inexpressible("crypt algorithm %s with bits %d" % (algo.name, algo.bits))
        return ["enc", algo.name, key]
    raise Inexpressible("algorithm kind %r" % algo.kind)


def _state_args(sa: XfrmState, command: str, ifnames: Mapping[int, str]) -> List[str]:
    if family_of(sa.src) != family_of(sa.dst):
        raise Inexpressible("SA src %s and dst %s differ in family" % (sa.src, sa.dst))
    if sa.proto not in XFRM_PROTO_NAMES:
        raise Inexpressible("SA proto %d" % sa.proto)
    if sa.mode not in MODE_TEXT:
        raise Inexpressible("SA mode %d" % sa.mode)
    if sa.flags & SA_FLAG_ESN:
        raise Inexpressible("ESN is the model's esn field, not a bit of flags")
    args = ["xfrm", "state", command, "src", sa.src, "dst", sa.dst, "proto", XFRM_PROTO_NAMES[sa.proto]]
    args += ["spi", "0x%08x" % sa.spi, "reqid", str(sa.reqid), "mode", MODE_TEXT[sa.mode]]
    if sa.replay_window or sa.esn:
        args += ["replay-window", str(sa.replay_window)]
    flags = _flag_names(sa.flags | (SA_FLAG_ESN if sa.esn else 0), STATE_FLAG_NAMES, "SA")
    if flags:
        args += ["flag"] + flags
    args += _mark_args("mark", sa.mark)
    args += _mark_args("output-mark", sa.output_mark)
    if sa.if_id:
        args += ["if_id", str(sa.if_id)]
    for algo in sa.algorithms():
        args += _algo_args(algo)
    if sa.selector is not None:
        args += ["sel"] + _selector_args(sa.selector, ifnames)
    args += _lifetime_args(sa.lifetime)
    return args


def _template_args(tmpl: Template) -> List[str]:
    if family_of(tmpl.src) != family_of(tmpl.dst):
        raise Inexpressible("template src %s and dst %s differ in family" % (tmpl.src, tmpl.dst))
    if tmpl.share:
        raise Inexpressible("template share %d: iproute2 cannot set it" % tmpl.share)
    if (tmpl.aalgos, tmpl.ealgos, tmpl.calgos) != (ALL_ALGOS, ALL_ALGOS, ALL_ALGOS):
        raise Inexpressible("template algorithm masks: iproute2 always sends 0xffffffff")
    if tmpl.proto not in XFRM_PROTO_NAMES or tmpl.mode not in MODE_TEXT:
        raise Inexpressible("template proto %d / mode %d" % (tmpl.proto, tmpl.mode))
    args = ["tmpl", "src", tmpl.src, "dst", tmpl.dst, "proto", XFRM_PROTO_NAMES[tmpl.proto]]
    if tmpl.spi:
        args += ["spi", "0x%08x" % tmpl.spi]
    args += ["reqid", str(tmpl.reqid), "mode", MODE_TEXT[tmpl.mode], "level", "use" if tmpl.optional else "required"]
    return args


def _policy_args(pol: XfrmPolicy, command: str, ifnames: Mapping[int, str]) -> List[str]:
    if pol.dir not in DIR_NAMES:
        raise Inexpressible("policy dir %d" % pol.dir)
    if pol.action not in (ACTION_ALLOW, ACTION_BLOCK):
        raise Inexpressible("policy action %d" % pol.action)
    if pol.ptype not in (POLICY_TYPE_MAIN, POLICY_TYPE_SUB):
        raise Inexpressible("policy type %d" % pol.ptype)
    args = ["xfrm", "policy", command] + _selector_args(pol.selector, ifnames)
    args += ["dir", DIR_NAMES[pol.dir], "ptype", "sub" if pol.ptype == POLICY_TYPE_SUB else "main"]
    args += ["action", "block" if pol.action == ACTION_BLOCK else "allow", "priority", str(pol.priority)]
    flags = _flag_names(pol.flags, POLICY_FLAG_NAMES, "policy")
    if flags:
        args += ["flag"] + flags
    args += _mark_args("mark", pol.mark)
    if pol.if_id:
        args += ["if_id", str(pol.if_id)]
    args += _lifetime_args(pol.lifetime)
    for tmpl in pol.templates:
        args += _template_args(tmpl)
    return args


def ip_xfrm_args(obj: XfrmObject, command: str = "add", ifnames: Optional[Mapping[int, str]] = None) -> List[str]:
    """The ``ip`` arguments (``["xfrm", "state", "add", ...]``) that install exactly ``obj``.

    ``command`` may be ``add`` or ``update``. Keys are given as 0x-hex. Raises
    :class:`Inexpressible` for values iproute2 cannot produce (e.g. a mark mask of 0).
    """
    if command not in ("add", "update"):
        raise ValueError("command must be add or update, not %r" % command)
    if isinstance(obj, XfrmState):
        return _state_args(obj, command, _ifnames(ifnames))
    if isinstance(obj, XfrmPolicy):
        return _policy_args(obj, command, _ifnames(ifnames))
    raise TypeError("not an XFRM model object: %r" % (obj,))


def batch_text(objs: Iterable[XfrmObject], command: str = "add", ifnames: Optional[Mapping[int, str]] = None) -> str:
    """An ``ip -batch`` file installing ``objs`` in order, one line each."""
    lines = []
    for obj in objs:
        args = ip_xfrm_args(obj, command, ifnames)
        for arg in args:
            if not arg or any(c.isspace() or c in "\"'\\#" for c in arg):
                raise Inexpressible("argument %r cannot go into an ip -batch line" % arg)
        lines.append(" ".join(args))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# ip xfrm output -> model objects

_BITS_RE = re.compile(r"^\((\d+) bits\)$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _proto_number(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return socket.getprotobyname(text)
    except OSError:
        raise ParseError("unknown protocol name %r" % text) from None


def _split_prefix(text: str) -> Tuple[str, int]:
    addr, dummy, plen = text.partition("/")
    return str(ipaddress.ip_address(addr)), int(plen)


def _mark_value(text: str) -> Mark:
    value, dummy, mask = text.partition("/")
    if not mask:
        raise ParseError("mark without mask: %r" % text)
    return Mark(int(value, 0), int(mask, 0))


def _number(text: str) -> int:
    """A u32/u64 as iproute2 prints it: 5, 0x5, 7(0x00000007), 0x00001234(4660)."""
    head = text.split("(", 1)[0]
    return int(head, 0)


def _parse_selector(tokens: List[str], ifindexes: Mapping[str, int]) -> Selector:
    if len(tokens) < 4 or tokens[0] != "src" or tokens[2] != "dst":
        raise ParseError("selector: %r" % " ".join(tokens))
    saddr, plen_s = _split_prefix(tokens[1])
    daddr, plen_d = _split_prefix(tokens[3])
    if family_of(saddr) != family_of(daddr):
        raise ParseError("selector mixes families: %r" % " ".join(tokens))
    fields: Dict[str, int] = {}
    i = 4
    while i < len(tokens):
        word = tokens[i]
        if i + 1 >= len(tokens):
            raise ParseError("selector: %r has no value" % word)
        value = tokens[i + 1]
        if word == "proto":
            fields["proto"] = _proto_number(value)
        elif word in ("sport", "type"):
            fields["sport"], fields["sport_mask"] = int(value), 0xFFFF
        elif word in ("dport", "code"):
            fields["dport"], fields["dport_mask"] = int(value), 0xFFFF
        elif word == "dev":
            if value not in ifindexes:
                raise ParseError("selector dev %r: unknown interface" % value)
            fields["ifindex"] = ifindexes[value]
        elif word == "uid":
            fields["user"] = int(value)
        else:
            raise ParseError("selector: unknown word %r in %r" % (word, " ".join(tokens)))
        i += 2
    return Selector(family=family_of(daddr), saddr=saddr, prefixlen_s=plen_s, daddr=daddr, prefixlen_d=plen_d, **fields)


def _limit(text: str) -> int:
    # "(INF)(bytes)" / "1000(bytes)" / "(INF)(packets)," / "30(sec),"
    text = text.rstrip(",")
    if text.startswith("(INF)"):
        return XFRM_INF
    return int(text.split("(", 1)[0])


def _parse_lifetime_config(lines: List[List[str]]) -> Lifetime:
    """The four lines after "lifetime config:"."""
    try:
        (l1, l2, l3, l4) = lines
        assert l1[:2] == ["limit:", "soft"] and l1[3] == "hard"
        assert l2[:2] == ["limit:", "soft"] and l2[3] == "hard"
        assert l3[:3] == ["expire", "add:", "soft"] and l3[4] == "hard"
        assert l4[:3] == ["expire", "use:", "soft"] and l4[4] == "hard"
    except (ValueError, AssertionError, IndexError):
        raise ParseError("lifetime config: %r" % lines)
    return Lifetime(
        soft_byte_limit=_limit(l1[2]),
        hard_byte_limit=_limit(l1[4]),
        soft_packet_limit=_limit(l2[2]),
        hard_packet_limit=_limit(l2[4]),
        soft_add_expires_seconds=_limit(l3[3]),
        hard_add_expires_seconds=_limit(l3[5]),
        soft_use_expires_seconds=_limit(l4[3]),
        hard_use_expires_seconds=_limit(l4[5]),
    )


def _parse_time(tokens: List[str]) -> Tuple[int, List[str]]:
    """"2026-11-30 02:30:57" (local time) or "-" at the start of tokens -> (epoch, rest)."""
    if tokens and tokens[0] == "-":
        return 0, tokens[1:]
    if len(tokens) >= 2 and _TIME_RE.match(tokens[0]):
        stamp = time.strptime(tokens[0] + " " + tokens[1], "%Y-%m-%d %H:%M:%S")
        return int(time.mktime(stamp)), tokens[2:]
    raise ParseError("time: %r" % tokens)


def _parse_lifetime_current(lines: List[List[str]]) -> Dict[str, int]:
    try:
        (l1, l2) = lines
        out = {"bytes": _limit(l1[0]), "packets": _limit(l1[1])}
        assert l2[0] == "add"
        out["add_time"], rest = _parse_time(l2[1:])
        assert rest[0] == "use"
        out["use_time"], rest = _parse_time(rest[1:])
        assert not rest
    except (ValueError, AssertionError, IndexError):
        raise ParseError("lifetime current: %r" % lines)
    return out


def _parse_flags(tokens: List[str], table: Sequence[Tuple[int, str]], what: str) -> int:
    """``flag noecn esn (0x10000001)`` or ``flag (0x00000000)`` or ``flag noecn``."""
    by_name = {name: bit for bit, name in table}
    value = 0
    binary = None
    for tok in tokens:
        if tok.startswith("(0x") and tok.endswith(")"):
            binary = int(tok[3:-1], 2)
        elif tok in by_name:
            value |= by_name[tok]
        elif re.fullmatch(r"[0-9a-f]+", tok):
            value |= int(tok, 16)  # iproute2 prints unnamed leftover bits in hex
        else:
            raise ParseError("%s flag %r" % (what, tok))
    if binary is not None and binary != value and value:
        raise ParseError("%s flags %r disagree with their bit string" % (what, tokens))
    return binary if binary is not None else value


class _Block:
    """One object of an ``ip xfrm`` dump: its head line and its indented lines, tokenised."""

    def __init__(self, head: str):
        self.head = head.split()
        self.lines: List[Tuple[int, List[str]]] = []  # (indent in tabs, tokens)

    def __repr__(self) -> str:
        return "<block %s>" % " ".join(self.head)


def _indent(line: str) -> int:
    """Width of the leading whitespace, a tab counting 8: template rows ("\t\t") and
    lifetime/stats rows ("\t  ") are deeper than the object's own lines ("\t")."""
    width = 0
    for ch in line:
        if ch == "\t":
            width += 8
        elif ch == " ":
            width += 1
        else:
            break
    return width


def _blocks(text: str) -> List[_Block]:
    blocks: List[_Block] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if not raw[0].isspace():
            blocks.append(_Block(raw))
            continue
        if not blocks:
            raise ParseError("indented line before any object: %r" % raw)
        blocks[-1].lines.append((_indent(raw), raw.split()))
    return blocks


def _take(tokens: List[str], i: int, word: str) -> str:
    if i + 1 >= len(tokens) or tokens[i] != word:
        raise ParseError("expected %r at %d in %r" % (word, i, " ".join(tokens)))
    return tokens[i + 1]


def _parse_id_line(tokens: List[str], what: str) -> Dict[str, object]:
    """``proto esp spi 0x00001234(4660) reqid 7(0x00000007) mode tunnel`` (spi optional)."""
    out: Dict[str, object] = {"spi": 0}
    i = 0
    while i < len(tokens):
        word = tokens[i]
        if i + 1 >= len(tokens):
            raise ParseError("%s: %r has no value" % (what, word))
        value = tokens[i + 1]
        if word == "proto":
            if value not in XFRM_PROTO_BY_NAME and not value.isdigit():
                raise ParseError("%s proto %r" % (what, value))
            out["proto"] = XFRM_PROTO_BY_NAME.get(value) if value in XFRM_PROTO_BY_NAME else int(value)
        elif word == "spi":
            out["spi"] = _number(value)
        elif word == "reqid":
            out["reqid"] = _number(value)
        elif word == "mode":
            if value not in MODE_BY_NAME and not value.isdigit():
                raise ParseError("%s mode %r" % (what, value))
            out["mode"] = MODE_BY_NAME[value] if value in MODE_BY_NAME else int(value)
        else:
            raise ParseError("%s: unknown word %r in %r" % (what, word, " ".join(tokens)))
        i += 2
    for need in ("proto", "reqid", "mode"):
        if need not in out:
            raise ParseError("%s: no %s in %r" % (what, need, " ".join(tokens)))
    return out


def _parse_template(head: List[str], lines: List[List[str]]) -> Template:
    src, dst = _take(head, 1, "src"), _take(head, 3, "dst")
    fields: Dict[str, object] = {"src": str(ipaddress.ip_address(src)), "dst": str(ipaddress.ip_address(dst))}
    if not lines or lines[0][0] != "proto":
        raise ParseError("template without proto line: %r" % head)
    fields.update(_parse_id_line(lines[0], "tmpl"))
    for tokens in lines[1:]:
        if tokens[0] == "level":
            i = 0
            while i < len(tokens):
                if tokens[i] == "level":
                    level = tokens[i + 1]
                    if level not in ("use", "required"):
                        raise ParseError("template level %r" % level)
                    fields["optional"] = level == "use"
                elif tokens[i] == "share":
                    shares = {"any": 0, "session": 1, "user": 2, "unique": 3}
                    fields["share"] = shares[tokens[i + 1]] if tokens[i + 1] in shares else int(tokens[i + 1])
                else:
                    raise ParseError("template level line: %r" % tokens)
                i += 2
        elif tokens[0] == "enc-mask":
            masks = dict(zip(tokens[0::2], tokens[1::2]))
            fields["ealgos"] = int(masks["enc-mask"], 16)
            fields["aalgos"] = int(masks["auth-mask"], 16)
            fields["calgos"] = int(masks["comp-mask"], 16)
        else:
            raise ParseError("template line: %r" % tokens)
    return Template(**fields)  # type: ignore[arg-type]


def _group(block: _Block) -> List[Tuple[List[str], List[List[str]]]]:
    """Split a block's lines into (line, sub-lines): sub-lines are the deeper-indented lines
    that follow a line (template details, lifetime rows, anti-replay rows)."""
    groups: List[Tuple[List[str], List[List[str]]]] = []
    base = None
    for indent, tokens in block.lines:
        if base is None:
            base = indent
        if indent > base and groups:
            groups[-1][1].append(tokens)
        elif indent < base:
            raise ParseError("line less indented than the first: %r" % " ".join(tokens))
        else:
            groups.append((tokens, []))
    return groups


def _ifnames(ifnames: Optional[Mapping[int, str]]) -> Mapping[int, str]:
    return DEFAULT_IFNAMES if ifnames is None else ifnames


def _ifindexes(ifnames: Optional[Mapping[int, str]]) -> Dict[str, int]:
    return {name: index for index, name in _ifnames(ifnames).items()}


def _parse_policy_block(block: _Block, ifindexes: Mapping[str, int]) -> Tuple[XfrmPolicy, int]:
    fields: Dict[str, object] = {"selector": _parse_selector(block.head, ifindexes)}
    index = 0
    templates: List[Template] = []
    seen_dir = False
    for tokens, sub in _group(block):
        word = tokens[0]
        if word in ("dir", "socket"):
            seen_dir = True
            i = 0
            while i < len(tokens):
                w = tokens[i]
                if w in ("dir", "socket"):
                    d = tokens[i + 1]
                    d = DIR_BY_NAME[d] if d in DIR_BY_NAME else int(d)
                    fields["dir"] = d + 3 if w == "socket" else d
                    i += 2
                elif w == "action":
                    a = tokens[i + 1]
                    fields["action"] = {"allow": ACTION_ALLOW, "block": ACTION_BLOCK}[a] if a in ("allow", "block") else int(a)
                    i += 2
                elif w == "index":
                    index = int(tokens[i + 1])
                    i += 2
                elif w == "priority":
                    fields["priority"] = int(tokens[i + 1])
                    i += 2
                elif w == "ptype":
                    p = tokens[i + 1]
                    fields["ptype"] = {"main": POLICY_TYPE_MAIN, "sub": POLICY_TYPE_SUB}[p] if p in ("main", "sub") else int(p)
                    i += 2
                elif w == "share":
                    i += 2  # validated by the kernel but never stored: always "any"
                elif w == "flag":
                    fields["flags"] = _parse_flags(tokens[i + 1:], POLICY_FLAG_NAMES, "policy")
                    i = len(tokens)
                else:
                    raise ParseError("policy line: unknown word %r in %r" % (w, " ".join(tokens)))
        elif word == "lifetime" and tokens[1:] == ["config:"]:
            fields["lifetime"] = _parse_lifetime_config(sub)
        elif word == "lifetime" and tokens[1:] == ["current:"]:
            _parse_lifetime_current(sub)  # validated; policies carry no counters in the model
        elif word == "mark":
            fields["mark"] = _mark_value(tokens[1])
        elif word == "if_id":
            fields["if_id"] = int(tokens[1], 0)
        elif word == "tmpl":
            templates.append(_parse_template(tokens, sub))
        elif word == "security":
            raise ParseError("policy with a security context (not in the model): %r" % tokens)
        else:
            raise ParseError("policy: unknown line %r" % " ".join(tokens))
    if not seen_dir:
        raise ParseError("policy without a dir line: %r" % block)
    fields["templates"] = tuple(templates)
    return XfrmPolicy(**fields), index  # type: ignore[arg-type]


def _parse_algo(tokens: List[str]) -> Algorithm:
    """``aead rfc4106(gcm(aes)) 0x... (160 bits) 128`` / ``auth-trunc NAME 0x.. 128`` / ``enc NAME 0x..``."""
    kind_word, name, key_text = tokens[0], tokens[1], tokens[2]
    rest = tokens[3:]
    key_bits = None
    if len(rest) >= 2 and rest[1] == "bits)":  # -s adds "(160 bits)"
        match = _BITS_RE.match(rest[0] + " " + rest[1])
        if not match:
            raise ParseError("algorithm key length: %r" % tokens)
        key_bits = int(match.group(1))
        rest = rest[2:]
    if not key_text.startswith("0x"):
        raise ParseError("algorithm key %r is not hex" % key_text)
    key = bytes.fromhex(key_text[2:])
    if key_bits is not None and key_bits != len(key) * 8:
        raise ParseError("algorithm %s: key of %d bytes but %d bits" % (name, len(key), key_bits))
    if kind_word in ("aead", "auth-trunc"):
        if len(rest) != 1:
            raise ParseError("%s: %r" % (kind_word, tokens))
        kind = ALGO_AEAD if kind_word == "aead" else ALGO_AUTH
        return Algorithm(kind=kind, name=name, key=key, bits=int(rest[0]))
    if rest:
        raise ParseError("%s: %r" % (kind_word, tokens))
    if kind_word == "enc":
        return Algorithm(kind=ALGO_CRYPT, name=name, key=key)
    if kind_word == "auth":
        # Only printed when the kernel did not report AUTH_TRUNC (it always does).
        raise ParseError("auth without truncation length: %r" % tokens)
    raise ParseError("algorithm kind %r" % kind_word)


def _kv_comma(tokens: List[str]) -> Dict[str, str]:
    """``seq-hi 0x0, seq 0x0, oseq-hi 0x0, oseq 0x0`` -> dict."""
    out = {}
    toks = [t.rstrip(",") for t in tokens]
    for key, value in zip(toks[0::2], toks[1::2]):
        out[key] = value
    return out


def _parse_state_block(block: _Block, ifindexes: Mapping[str, int]) -> Tuple[XfrmState, Optional[StateCounters]]:
    head = block.head
    if head[0] in ("Deleted", "Updated", "Expired"):
        raise ParseError("not a dump line: %r" % head)
    src = str(ipaddress.ip_address(_take(head, 0, "src")))
    dst = str(ipaddress.ip_address(_take(head, 2, "dst")))
    if len(head) != 4:
        raise ParseError("state head: %r" % head)
    groups = _group(block)
    if not groups or groups[0][0][0] != "proto":
        raise ParseError("state without id line: %r" % block)
    fields: Dict[str, object] = {"src": src, "dst": dst}
    fields.update(_parse_id_line(groups[0][0], "state"))
    counters: Dict[str, int] = {}
    flags = 0
    esn_window = None
    for tokens, sub in groups[1:]:
        word = tokens[0]
        if word == "replay-window":
            fields["replay_window"] = int(tokens[1])
            i = 2
            while i < len(tokens):
                if tokens[i] == "seq":
                    counters["seq_info"] = int(tokens[i + 1], 0)
                    i += 2
                elif tokens[i] == "flag":
                    flags = _parse_flags(tokens[i + 1:], STATE_FLAG_NAMES, "SA")
                    i = len(tokens)
                else:
                    raise ParseError("replay-window line: %r" % tokens)
        elif word in ("aead", "auth-trunc", "enc", "auth"):
            algo = _parse_algo(tokens)
            slot = {ALGO_AEAD: "aead", ALGO_AUTH: "auth", ALGO_CRYPT: "crypt"}[algo.kind]
            if slot in fields:
                raise ParseError("two %s algorithms" % slot)
            fields[slot] = algo
        elif word in ("mark", "output-mark"):
            # "mark 0xd00/0xf00 output-mark 0x3e00/0xffffff00" (either may be alone)
            if len(tokens) % 2:
                raise ParseError("mark line: %r" % tokens)
            for w, v in zip(tokens[0::2], tokens[1::2]):
                if w not in ("mark", "output-mark"):
                    raise ParseError("mark line: %r" % tokens)
                fields["mark" if w == "mark" else "output_mark"] = _mark_value(v)
        elif word == "if_id":
            fields["if_id"] = int(tokens[1], 0)
        elif word == "sel":
            fields["selector"] = _parse_selector(tokens[1:], ifindexes)
        elif word == "lifetime" and tokens[1:] == ["config:"]:
            fields["lifetime"] = _parse_lifetime_config(sub)
        elif word == "lifetime" and tokens[1:] == ["current:"]:
            counters.update(_parse_lifetime_current(sub))
        elif word == "stats:":
            row = sub[0] if sub else []
            kv = dict(zip(row[0::2], row[1::2]))
            try:
                counters["stats_replay_window"] = int(kv["replay-window"])
                counters["replay"] = int(kv["replay"])
                counters["integrity_failed"] = int(kv["failed"])
            except (KeyError, ValueError):
                raise ParseError("stats: %r" % sub)
        elif word == "anti-replay" and tokens[1:] == ["context:"]:
            raise ParseError("anti-replay context on its own line: %r" % tokens)
        elif word == "anti-replay" and tokens[1] == "context:":
            kv = _kv_comma(tokens[2:])
            counters["seq"] = int(kv["seq"], 0)
            counters["oseq"] = int(kv["oseq"], 0)
        elif word == "anti-replay" and tokens[1:3] == ["esn", "context:"]:
            kv: Dict[str, str] = {}
            for row in sub:
                if row[0] in ("seq-hi", "replay_window"):
                    kv.update(_kv_comma(row))
            # later rows are the bitmap words; not part of the model
            try:
                esn_window = int(kv["replay_window"])
                counters["seq"] = int(kv["seq"], 0) | (int(kv["seq-hi"], 0) << 32)
                counters["oseq"] = int(kv["oseq"], 0) | (int(kv["oseq-hi"], 0) << 32)
            except (KeyError, ValueError):
                raise ParseError("anti-replay esn context: %r" % sub)
        elif word == "lastused":
            pass
        else:
            raise ParseError("state: unknown line %r" % " ".join(tokens))
    esn = bool(flags & SA_FLAG_ESN)
    fields["esn"] = esn
    fields["flags"] = flags & ~SA_FLAG_ESN
    if esn_window is not None:
        # The replay state travels in XFRMA_REPLAY_ESN_VAL (ESN, or a window > 32 bits); the
        # window of usersa_info is then what was sent there (iproute2 sends 0): the model's
        # replay_window is the effective window.
        fields["replay_window"] = esn_window
    found_counters = None
    if counters:
        found_counters = StateCounters(
            bytes=counters.get("bytes", 0),
            packets=counters.get("packets", 0),
            add_time=counters.get("add_time", 0),
            use_time=counters.get("use_time", 0),
            replay_window=counters.get("stats_replay_window", 0),
            replay=counters.get("replay", 0),
            integrity_failed=counters.get("integrity_failed", 0),
            oseq=counters.get("oseq", 0),
            seq=counters.get("seq", 0),
        )
    return XfrmState(**fields), found_counters  # type: ignore[arg-type]


def parse_policies_with_index(text: str, ifnames: Optional[Mapping[int, str]] = None
                              ) -> List[Tuple[XfrmPolicy, int]]:
    """(policy, kernel index) from ``ip [-s] [-d] xfrm policy list`` output, in dump order.

    Only ``-s`` output carries lifetimes and the index: without it they come back as the
    defaults (INF/0 and 0). ``-d`` changes nothing for xfrm in iproute2 6.1. Anything the
    parser does not know raises :class:`ParseError`; per-socket policies come back with
    ``dir`` 3..5 (the kernel's numbering)."""
    ifindexes = _ifindexes(ifnames)
    return [_parse_policy_block(b, ifindexes) for b in _blocks(text)]


def parse_policies(text: str, ifnames: Optional[Mapping[int, str]] = None) -> List[XfrmPolicy]:
    """The policies of ``parse_policies_with_index``."""
    return [policy for policy, _index in parse_policies_with_index(text, ifnames)]


def parse_states_with_counters(text: str, ifnames: Optional[Mapping[int, str]] = None
                               ) -> List[Tuple[XfrmState, Optional[StateCounters]]]:
    """(SA, counters or None) from ``ip [-s] [-d] xfrm state list`` output, in dump order.

    Only ``-s`` output carries lifetimes and the lifetime/stats counters: without it the
    lifetime comes back as the default. ``replay_window`` is the effective window: the one
    in the "anti-replay esn context" when the kernel keeps the replay state there (ESN, or
    a window over 32 packets sent as XFRMA_REPLAY_ESN_VAL), else usersa_info's. A selector
    comes back as printed: the all-zero one of the SA's family is what the kernel stores for
    an SA added without one (see ``kernel_form``)."""
    ifindexes = _ifindexes(ifnames)
    return [_parse_state_block(b, ifindexes) for b in _blocks(text)]


def parse_states(text: str, ifnames: Optional[Mapping[int, str]] = None) -> List[XfrmState]:
    """The SAs of ``parse_states_with_counters``."""
    return [state for state, _counters in parse_states_with_counters(text, ifnames)]


# ---------------------------------------------------------------------------------------------
# what the kernel stores, in model terms


def zero_selector(family: int) -> Selector:
    any_addr = any_address(family)
    return Selector(family=family, saddr=any_addr, prefixlen_s=0, daddr=any_addr, prefixlen_d=0)


def kernel_form(obj: XfrmObject) -> XfrmObject:
    """The object as a dump is expected to report it after installing ``obj``.

    The one normalisation: the kernel stores an SA sent without a selector (``None``) with
    the SA's family copied into the all-zero selector (reference 1.5; left at family 0 with
    flag af-unspec), byte for byte what an explicit ``sel src 0.0.0.0/0 dst 0.0.0.0/0`` of
    the SA's family gives: both read back as the zero selector of the SA's family. A zero
    selector of the *other* family is a real selector and stays.

    Template families are not a model field (they derive from the template's addresses),
    so "the kernel fills template family" needs no normalisation: the corpus always gives
    template addresses. Everything else must come back exactly as sent.
    """
    if isinstance(obj, XfrmState) and obj.selector is None and not obj.flags & SA_FLAG_AF_UNSPEC:
        return obj._replace(selector=zero_selector(obj.family))
    return obj


# ---------------------------------------------------------------------------------------------
# comparison


def describe(obj: XfrmObject) -> str:
    """A short, key-free description naming an object in messages."""
    if isinstance(obj, XfrmState):
        return "SA %s->%s spi 0x%08x" % (obj.src, obj.dst, obj.spi)
    if isinstance(obj, XfrmPolicy):
        return "policy %s %s->%s prio %d" % (DIR_NAMES.get(obj.dir, obj.dir), obj.selector.src, obj.selector.dst, obj.priority)
    return repr(obj)


def _diff_value(path: str, want: object, got: object, out: List[str]) -> None:
    if want == got:
        return
    if hasattr(want, "_fields") and type(want) is type(got):
        for name in want._fields:  # type: ignore[union-attr]
            _diff_value("%s.%s" % (path, name), getattr(want, name), getattr(got, name), out)
        return
    if isinstance(want, tuple) and isinstance(got, tuple):
        if len(want) != len(got):
            out.append("%s: expected %d items, got %d: %r vs %r" % (path, len(want), len(got), want, got))
            return
        for i, (w, g) in enumerate(zip(want, got)):
            _diff_value("%s[%d]" % (path, i), w, g, out)
        return
    if isinstance(want, bytes) and isinstance(got, bytes):
        # key material: lengths and a position, never the bytes themselves
        pos = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
        out.append("%s: key differs (expected %d bytes, got %d, first difference at byte %d)" % (path, len(want), len(got), pos))
        return
    out.append("%s: expected %s, got %s" % (path, _show(want), _show(got)))


def _show(value: object) -> str:
    """repr, with hex next to larger integers (marks, masks, SPIs read better in hex)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 255:
        return "%d (%#x)" % (value, value)
    return repr(value)


def field_differences(want: XfrmObject, got: XfrmObject) -> List[str]:
    """Every compared field that differs, as ``field.path: expected X, got Y``."""
    out: List[str] = []
    _diff_value(type(want).__name__, want, got, out)
    return out


def identity(obj: XfrmObject) -> Tuple[object, ...]:
    """How the tests pair intended and dumped objects: corpus SAs have unique SPIs and corpus
    policies unique priorities, so a codec bug in any other field still pairs them up and is
    reported as a field difference rather than as a missing object."""
    if isinstance(obj, XfrmState):
        return ("state", obj.spi)
    return ("policy", obj.priority)


def compare(intended: Sequence[XfrmObject], dumped: Sequence[XfrmObject], source: str) -> List[str]:
    """Mismatch messages between the kernel form of ``intended`` and ``dumped``.

    Each message names the object and the field. ``source`` names where ``dumped`` came
    from (e.g. ``ip -s -d xfrm policy list``) for the messages.
    """
    problems: List[str] = []
    by_id: Dict[Tuple[object, ...], XfrmObject] = {}
    for obj in dumped:
        key = identity(obj)
        if key in by_id:
            problems.append("%s: two objects with identity %r: %s and %s" % (source, key, describe(by_id[key]), describe(obj)))
        by_id[key] = obj
    for obj in intended:
        want = kernel_form(obj)
        got = by_id.pop(identity(obj), None)
        if got is None:
            problems.append("%s: missing from %s" % (describe(obj), source))
            continue
        for diff in field_differences(want, got):
            problems.append("%s: %s (%s)" % (describe(obj), diff, source))
    for obj in by_id.values():
        problems.append("%s: unexpected object in %s: %r" % (describe(obj), source, obj))
    return problems


# ---------------------------------------------------------------------------------------------
# running ip in a named network namespace


def run_ip(netns: str, args: Sequence[str], stdin: Optional[str] = None, timeout: float = 60) -> str:
    """``ip -n NETNS ARGS``; returns stdout, raises ``RuntimeError`` with stderr on failure."""
    if not netns:
        raise ValueError("a network namespace name is required (never the root namespace)")
    cmd = ["ip", "-n", netns] + list(args)
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd[:6]), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def ip_batch(netns: str, objs: Sequence[XfrmObject], command: str = "add", ifnames: Optional[Mapping[int, str]] = None) -> None:
    """Install ``objs`` with one ``ip -n NETNS -batch -`` process (the file on stdin)."""
    run_ip(netns, ["-batch", "-"], stdin=batch_text(objs, command, ifnames))


def dump_states(netns: str, ifnames: Optional[Mapping[int, str]] = None) -> Tuple[List[XfrmState], str]:
    """(parsed SAs, raw text) of ``ip -n NETNS -s -d xfrm state list``."""
    text = run_ip(netns, ["-s", "-d", "xfrm", "state", "list"])
    return parse_states(text, ifnames), text


def dump_policies(netns: str, ifnames: Optional[Mapping[int, str]] = None) -> Tuple[List[XfrmPolicy], str]:
    """(parsed policies, raw text) of ``ip -n NETNS -s -d xfrm policy list``."""
    text = run_ip(netns, ["-s", "-d", "xfrm", "policy", "list"])
    return parse_policies(text, ifnames), text


def dump_policy_indexes(netns: str, ifnames: Optional[Mapping[int, str]] = None) -> Dict[Tuple[object, ...], int]:
    """The kernel's index of every policy of the namespace, by kernel identity (``key()``),
    as ``ip -s xfrm policy list`` prints it."""
    text = run_ip(netns, ["-s", "-d", "xfrm", "policy", "list"])
    return {policy.key(): index for policy, index in parse_policies_with_index(text, ifnames)}


# ---------------------------------------------------------------------------------------------
# the corpus

AEAD_GCM = "rfc4106(gcm(aes))"
AEAD_GMAC = "rfc4543(gcm(aes))"
AUTH_SHA256 = "hmac(sha256)"
CRYPT_CBC_AES = "cbc(aes)"


class _Addr:
    """Deterministic, non-overlapping documentation addresses for family 4 or 6."""

    def __init__(self, family: int):
        self.family = family

    def host(self, net: int, host: int) -> str:
        """Address ``host`` of tunnel network ``net``: 10.N.N.H or 2001:db8:N::H."""
        if self.family == AF_INET:
            return "10.%d.%d.%d" % (net // 256, net % 256, host)
        return str(ipaddress.ip_address("2001:db8:%x::%x" % (net, host)))

    def subnet(self, net: int, v4len: int = 24, v6len: int = 64) -> str:
        """Subnet ``net`` behind a node: 172.16+N.N.0/24 or fd00:N::/64 (a host in it for
        longer prefixes; Selector.between clears host bits)."""
        if self.family == AF_INET:
            return "172.%d.%d.7/%d" % (16 + net // 256, net % 256, v4len)
        return "fd00:%x::7/%d" % (net, v6len)

    @property
    def any(self) -> str:
        return "0.0.0.0/0" if self.family == AF_INET else "::/0"

    @property
    def icmp(self) -> int:
        return IPPROTO_ICMP if self.family == AF_INET else IPPROTO_ICMPV6


def _key(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for dummy in range(n))


def _mark(rng: random.Random, mask: int) -> Mark:
    return Mark(rng.getrandbits(32) & mask, mask)


def _sa_recipes() -> List[Callable[..., Dict[str, object]]]:
    """Each recipe returns XfrmState fields (besides src/dst/spi/reqid) for one SA."""

    def gcm128(r):
        return {"aead": Algorithm(ALGO_AEAD, AEAD_GCM, _key(r, 20), 128)}

    def gcm256(r):
        return {"aead": Algorithm(ALGO_AEAD, AEAD_GCM, _key(r, 36), 128)}

    def gcm_icv(r, icv):
        return {"aead": Algorithm(ALGO_AEAD, AEAD_GCM, _key(r, 20), icv)}

    def gmac(r):
        return {"aead": Algorithm(ALGO_AEAD, AEAD_GMAC, _key(r, 20), 128)}

    def cbc(r, enc_len=16):
        return {"auth": Algorithm(ALGO_AUTH, AUTH_SHA256, _key(r, 32), 128), "crypt": Algorithm(ALGO_CRYPT, CRYPT_CBC_AES, _key(r, enc_len))}

    def sel(a, r, proto=0, sport=0, dport=0, v4len=24, v6len=64):
        n = r.randrange(1, 200)
        return selector_between(a.subnet(n, v4len, v6len), a.subnet(n + 1, v4len, v6len), proto=proto, sport=sport, dport=dport)

    return [
        # 0 tunnel, AES-GCM-128 (20-byte key incl. salt), no selector: the seed's SA
        lambda a, r: dict(mode=MODE_TUNNEL, **gcm128(r)),
        # 1 tunnel, AES-GCM-256 (36 bytes), mark/mask and output mark/mask (Cilium layout)
        lambda a, r: dict(mode=MODE_TUNNEL, mark=_mark(r, 0xFFFFFF00), output_mark=Mark(0xE00, 0xFFFFFF00), **gcm256(r)),
        # 2 transport, GCM-128 with a 96-bit ICV, host selector
        lambda a, r: dict(mode=MODE_TRANSPORT, selector=sel(a, r, v4len=32, v6len=128), **gcm_icv(r, 96)),
        # 3 tunnel, RFC 4543 GMAC (ICV 128), if_id
        lambda a, r: dict(mode=MODE_TUNNEL, if_id=r.randrange(1, 1 << 31), **gmac(r)),
        # 4 tunnel, hmac(sha256)/128 + cbc(aes)-128
        lambda a, r: dict(mode=MODE_TUNNEL, **cbc(r)),
        # 5 transport, hmac(sha256)/128 + cbc(aes)-256, selector with protocol and ports
        lambda a, r: dict(mode=MODE_TRANSPORT, selector=sel(a, r, IPPROTO_TCP, r.randrange(1024, 65536), 443), **cbc(r, 32)),
        # 6 tunnel, ESN with a 128-packet replay window
        lambda a, r: dict(mode=MODE_TUNNEL, esn=True, replay_window=128, **gcm128(r)),
        # 7 tunnel, classic 32-packet replay window without ESN
        lambda a, r: dict(mode=MODE_TUNNEL, replay_window=32, **gcm256(r)),
        # 8 time lifetimes (hard limits far beyond any test run)
        lambda a, r: dict(mode=MODE_TUNNEL, lifetime=Lifetime(
            soft_add_expires_seconds=86400 + r.randrange(1000), hard_add_expires_seconds=2 * 86400,
            soft_use_expires_seconds=40000, hard_use_expires_seconds=80000), **gcm128(r)),
        # 9 byte and packet lifetimes
        lambda a, r: dict(mode=MODE_TUNNEL, lifetime=Lifetime(
            soft_byte_limit=1 << 30, hard_byte_limit=(1 << 31) + r.randrange(1000),
            soft_packet_limit=1000000, hard_packet_limit=XFRM_INF - 1), **cbc(r)),
        # 10 tunnel with a subnet selector (no ports)
        lambda a, r: dict(mode=MODE_TUNNEL, selector=sel(a, r), replay_window=16, **gcm128(r)),
        # 11 mark with the default full mask
        lambda a, r: dict(mode=MODE_TUNNEL, mark=Mark(r.randrange(1, 1 << 32)), **gcm256(r)),
        # 12 output mark with the default full mask, if_id
        lambda a, r: dict(mode=MODE_TRANSPORT, output_mark=Mark(r.randrange(1, 1 << 32)), if_id=r.randrange(1, 100), **gmac(r)),
        # 13 SA flags that change nothing in a test namespace
        lambda a, r: dict(mode=MODE_TUNNEL, flags=1 | 2 | 4, **gcm128(r)),
        # 14 ESN + auth/enc + selector with udp ports + flags
        lambda a, r: dict(mode=MODE_TUNNEL, esn=True, replay_window=64, flags=64, selector=sel(a, r, IPPROTO_UDP, 4500, 4500), **cbc(r)),
        # 15 replay window 64 without ESN (iproute2 sends it as XFRMA_REPLAY_ESN_VAL)
        lambda a, r: dict(mode=MODE_TUNNEL, replay_window=64, **gcm128(r)),
        # 16 Cilium-like: explicit any selector, marks, if_id, everything at once
        lambda a, r: dict(mode=MODE_TUNNEL, selector=selector_between(a.any, a.any), mark=Mark(0xD00, 0xF00), output_mark=Mark(0xE00 | (3 << 12), 0xFFFFFF00),
                          if_id=7, replay_window=32, **gcm128(r)),
        # 17 tunnel carrying the other family (selector family != SA family), icmp selector
        lambda a, r: dict(mode=MODE_TUNNEL, selector=Selector(
            family=AF_INET6 if a.family == AF_INET else AF_INET,
            saddr="fd00:77::" if a.family == AF_INET else "172.31.77.0", prefixlen_s=64 if a.family == AF_INET else 24,
            daddr="fd00:78::" if a.family == AF_INET else "172.31.78.0", prefixlen_d=64 if a.family == AF_INET else 24,
            proto=IPPROTO_ICMPV6 if a.family == AF_INET else IPPROTO_ICMP, sport=128, sport_mask=0xFFFF), **gcm128(r)),
        # 18 flag af-unspec: the kernel keeps the selector at family 0 (no family copy)
        lambda a, r: dict(mode=MODE_TUNNEL, flags=8 | 16 | 32, **gcm256(r)),
        # 19 the largest ESN window (4096 packets: a 128-word bitmap in every dump) and the
        # mark that matches only unmarked packets (value 0, full mask: a mark, not "no mark")
        lambda a, r: dict(mode=MODE_TUNNEL, esn=True, replay_window=4096, mark=Mark(0, 0xFFFFFFFF), **cbc(r, 32)),
    ]


def corpus_states(seed: int = 0) -> List[XfrmState]:
    rng = random.Random("states-%d" % seed)
    out = []
    spis = set()
    for family in (AF_INET, AF_INET6):
        addr = _Addr(family)
        for i, recipe in enumerate(_sa_recipes()):
            # SPIs and reqids over the whole u32 range (byte order and sign bugs show up
            # above 0x7fffffff); SPIs below 0x100 are reserved
            spi = rng.randrange(0x100, 1 << 32)
            while spi in spis:
                spi = rng.randrange(0x100, 1 << 32)
            spis.add(spi)
            reqid = rng.randrange(0, 1 << 32) if i % 2 else rng.randrange(0, 1 << 16)
            fields = recipe(addr, rng)
            local, peer = addr.host(i, 1), addr.host(i, 2)
            src, dst = (local, peer) if rng.random() < 0.5 else (peer, local)
            out.append(XfrmState(src=src, dst=dst, spi=spi, reqid=reqid, **fields))  # type: ignore[arg-type]
    return out


def _policy_recipes() -> List[Callable[..., Dict[str, object]]]:
    """Each recipe returns XfrmPolicy fields (besides priority) for one policy."""

    def tun(a, r, n, optional=False, spi=0):
        return Template(src=a.host(n, 1), dst=a.host(n, 2), reqid=r.randrange(1, 1 << 16), spi=spi, mode=MODE_TUNNEL, optional=optional)

    def sel(a, n, **kw):
        return selector_between(a.subnet(2 * n), a.subnet(2 * n + 1), **kw)

    other = {AF_INET: _Addr(AF_INET6), AF_INET6: _Addr(AF_INET)}

    return [
        # 0 OUT, one required tunnel template: the mesh's OUT policy
        lambda a, r, n: dict(selector=selector_between(a.any, a.subnet(n)), dir=DIR_OUT, templates=(tun(a, r, n),)),
        # 1 IN at "use" level (rollout)
        lambda a, r, n: dict(selector=selector_between(a.subnet(n), a.any), dir=DIR_IN, templates=(tun(a, r, n, optional=True),)),
        # 2 FWD, "use" level, template with an SPI
        lambda a, r, n: dict(selector=selector_between(a.subnet(n), a.any), dir=DIR_FWD, templates=(tun(a, r, n, True, r.randrange(0x100, 1 << 32)),)),
        # 3-6 SSH bypass in both directions, client and server side
        lambda a, r, n: dict(selector=selector_between(a.any, a.any, IPPROTO_TCP, dport=22), dir=DIR_OUT),
        lambda a, r, n: dict(selector=selector_between(a.any, a.any, IPPROTO_TCP, sport=22), dir=DIR_IN),
        lambda a, r, n: dict(selector=selector_between(a.any, a.any, IPPROTO_TCP, dport=22), dir=DIR_IN),
        lambda a, r, n: dict(selector=selector_between(a.any, a.any, IPPROTO_TCP, sport=22), dir=DIR_OUT),
        # 7 default drop below an OUT policy
        lambda a, r, n: dict(selector=selector_between(a.any, a.subnet(n)), dir=DIR_OUT, action=ACTION_BLOCK),
        # 8 sub policy type with a template
        lambda a, r, n: dict(selector=sel(a, n), dir=DIR_IN, ptype=POLICY_TYPE_SUB, templates=(tun(a, r, n),)),
        # 9 if_id and mark/mask (Cilium's encrypt mark layout)
        lambda a, r, n: dict(selector=sel(a, n), dir=DIR_OUT, if_id=r.randrange(1, 1 << 31), mark=Mark(0xE00 | (r.randrange(1, 16) << 12), 0xFFFFFF00),
                             templates=(tun(a, r, n),)),
        # 10 two templates: tunnel then transport in the tunnel's family
        lambda a, r, n: dict(selector=sel(a, n), dir=DIR_OUT, templates=(
            tun(a, r, n), Template(src=a.host(n, 3), dst=a.host(n, 4), reqid=r.randrange(1, 1 << 16), mode=MODE_TRANSPORT))),
        # 11 two templates: AH transport (any addresses) then ESP tunnel, IN, mixed levels
        lambda a, r, n: dict(selector=sel(a, n), dir=DIR_IN, templates=(
            Template(src=any_address(a.family), dst=any_address(a.family), reqid=r.randrange(1, 1 << 16), proto=IPPROTO_AH, mode=MODE_TRANSPORT, optional=True),
            tun(a, r, n))),
        # 12 policy flags and time lifetimes
        lambda a, r, n: dict(selector=sel(a, n), dir=DIR_FWD, flags=1 | 2, lifetime=Lifetime(
            soft_add_expires_seconds=86400, hard_add_expires_seconds=172800, soft_use_expires_seconds=3600 + r.randrange(100), hard_use_expires_seconds=7200)),
        # 13 udp selector with both ports, transport template
        lambda a, r, n: dict(selector=sel(a, n, proto=IPPROTO_UDP, sport=r.randrange(1, 65536), dport=4500), dir=DIR_OUT, templates=(
            Template(src=a.host(n, 1), dst=a.host(n, 2), reqid=r.randrange(1, 1 << 16), mode=MODE_TRANSPORT),)),
        # 14 icmp type/code selector (code 0 has a full mask), block
        lambda a, r, n: dict(selector=Selector(family=a.family, saddr=any_address(a.family), prefixlen_s=0, daddr=any_address(a.family), prefixlen_d=0,
                                               proto=a.icmp, sport=8 if a.family == AF_INET else 128, sport_mask=0xFFFF, dport=0, dport_mask=0xFFFF),
                             dir=DIR_IN, action=ACTION_BLOCK),
        # 15 selector bound to an interface (dev lo)
        lambda a, r, n: dict(selector=sel(a, n)._replace(ifindex=1), dir=DIR_OUT, templates=(tun(a, r, n),)),
        # 16 tunnel template of the other family (4-in-6 / 6-in-4)
        lambda a, r, n: dict(selector=sel(a, n), dir=DIR_OUT, templates=(
            Template(src=other[a.family].host(n, 1), dst=other[a.family].host(n, 2), reqid=r.randrange(1, 1 << 16), mode=MODE_TUNNEL),)),
        # 17 sub type, block, mark with a narrow mask
        lambda a, r, n: dict(selector=sel(a, n), dir=DIR_FWD, ptype=POLICY_TYPE_SUB, action=ACTION_BLOCK, mark=_mark(r, 0xF0)),
        # 18 host-to-host selectors (hashed by the kernel), required tunnel template, if_id
        lambda a, r, n: dict(selector=selector_between(a.host(n, 1), a.host(n, 2)), dir=DIR_OUT, if_id=r.randrange(1, 50), templates=(tun(a, r, n),)),
        # 19 byte/packet lifetimes, no template
        lambda a, r, n: dict(selector=sel(a, n), dir=DIR_IN, lifetime=Lifetime(
            soft_byte_limit=r.randrange(1 << 20, 1 << 40), hard_byte_limit=1 << 41, soft_packet_limit=12345, hard_packet_limit=1 << 33)),
        # 20 mark value 0 with a full mask (matches only unmarked packets; not "no mark"),
        # proto without ports
        lambda a, r, n: dict(selector=sel(a, n, proto=IPPROTO_UDP), dir=DIR_OUT, mark=Mark(0, 0xFFFFFFFF), templates=(tun(a, r, n),)),
    ]


def corpus_policies(seed: int = 0) -> List[XfrmPolicy]:
    rng = random.Random("policies-%d" % seed)
    out = []
    prio = rng.randrange(1000, 2000)
    for family in (AF_INET, AF_INET6):
        addr = _Addr(family)
        for i, recipe in enumerate(_policy_recipes()):
            net = 10 + i + (0 if family == AF_INET else 100) + rng.randrange(2) * 50
            fields = recipe(addr, rng, net)
            # unique priorities (identity() pairs objects by it); bypass policies stay in a
            # band above (numerically below) every other policy
            if 3 <= i <= 6:
                priority = 10 + i + (0 if family == AF_INET else 10)
            elif i == 18:
                priority = 0xFFFE0000 + net  # near the top of the u32 range
            else:
                prio += 1 + rng.randrange(5)
                priority = prio
            out.append(XfrmPolicy(priority=priority, **fields))  # type: ignore[arg-type]
    return out


def corpus(seed: int = 0) -> List[XfrmObject]:
    """Deterministic SAs then policies covering every field of issue 3 (>= 30 of each, half
    IPv4, half IPv6), with distinct kernel keys, unique SPIs and unique policy priorities."""
    return list(corpus_states(seed)) + list(corpus_policies(seed))


def update_variant(obj: XfrmObject) -> XfrmObject:
    """What the corpus object should become after an update (UPDSA / UPDPOLICY) that the
    kernel honours in full.

    Policies: UPDPOLICY replaces the policy with the same key entirely, so priority (kept
    unique), flags, action, lifetime and templates all change. SAs: UPDSA on a valid SA only
    takes over lifetimes, the output mark (when one is sent) and if_id (when non-zero);
    algorithms, keys, reqid, mode and replay state stay (kernel ``xfrm_state_update``), so
    only those fields change here.
    """
    if isinstance(obj, XfrmPolicy):
        templates = obj.templates
        if obj.dir != DIR_OUT:
            templates = tuple(t._replace(optional=not t.optional) for t in templates)
        return obj._replace(
            priority=obj.priority + 100000,
            flags=obj.flags ^ 1,
            action=ACTION_BLOCK if obj.action == ACTION_ALLOW and not obj.templates else obj.action,
            lifetime=Lifetime(soft_byte_limit=obj.priority + 1, hard_add_expires_seconds=3 * 86400),
            templates=templates,
        )
    lifetime = Lifetime(soft_packet_limit=obj.spi + 1, hard_byte_limit=1 << 40, soft_add_expires_seconds=50000, hard_add_expires_seconds=90000 + obj.spi)
    changes: Dict[str, object] = {"lifetime": lifetime}
    if obj.if_id:
        changes["if_id"] = obj.if_id + 1
    if obj.output_mark is not None:
        changes["output_mark"] = Mark(obj.output_mark.value ^ 0x100 or 0x100, obj.output_mark.mask | 0x100)
    return obj._replace(**changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# helpers shared by the netns (host) and lab tests


@contextlib.contextmanager
def throwaway_netns(prefix: str = "oracle") -> Iterator[str]:
    """A fresh named network namespace (``ip netns add``), deleted afterwards."""
    name = "%s-%d-%s" % (prefix, os.getpid(), secrets.token_hex(3))
    proc = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("ip netns add %s failed: %s" % (name, proc.stderr.strip()))
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _adapter():
    # Imported when used: parsing iproute2's output needs no adapter.
    from ansible_collections.netsec.ipsec.plugins.module_utils._kernel import xfrm

    return xfrm


@contextlib.contextmanager
def open_kernel(netns: str) -> Iterator[object]:
    """``XfrmKernel(netns=...)`` for a named netns (closed afterwards if it can be)."""
    if not netns:
        raise ValueError("a network namespace name is required (never the root namespace)")
    kernel = _adapter().XfrmKernel(netns=netns)
    try:
        yield kernel
    finally:
        close = getattr(kernel, "close", None)
        if callable(close):
            close()


def apply_with_adapter(netns: str, objs: Sequence[XfrmObject], verb: str = "add") -> List[str]:
    """``XfrmKernel.apply`` of one ``verb`` operation per object, in one call; returns
    problem messages (empty when everything was applied)."""
    with open_kernel(netns) as kernel:
        result = kernel.apply([Operation(Verb(verb), obj) for obj in objs])
    problems = []
    if getattr(result, "error", None) or getattr(result, "failed", None):
        failed = result.failed
        what = describe(failed.entry) if hasattr(failed, "entry") else repr(failed)
        problems.append("XfrmKernel.apply failed at %s: %s" % (what, result.error))
    applied = getattr(result, "applied", None)
    count = applied if isinstance(applied, int) else len(applied) if applied is not None else None
    if not problems and count is not None and count != len(objs):
        problems.append("XfrmKernel.apply reports %d of %d operations applied" % (count, len(objs)))
    return problems
