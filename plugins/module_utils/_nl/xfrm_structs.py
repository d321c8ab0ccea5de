# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""XFRM netlink wire layouts (uapi ``linux/xfrm.h``, x86_64 / LP64 sizes).

Every C struct is declared exactly once, as a :class:`Layout`: an ordered list of
``(name, format)`` fields where a format is a ``struct`` code (``'I'``, ``'>H'`` for
network-order members, ``'16s'`` for addresses, ``'3x'`` for padding) or another
``Layout`` (a nested struct). Two things are compiled from each declaration:

* ``Layout.flat_fields``: the field list flattened, nested structs spelled out and every
  padding byte named, for an encoder that packs each field on its own with no C alignment
  (the tests build pyroute2's message classes from it, as an independent reference);
* ``Layout.struct``: one precompiled native-order ``struct.Struct`` for the fast codec, in
  which a nested struct is an opaque ``'<size>s'`` member (packed by its own layout) and a
  network-order member is packed from a byte-swapped value (``struct`` cannot mix byte
  orders in one format; ``Layout.swapped`` names those members).

Both are checked against the C ``sizeof`` when the module is imported. Standard library
only: targets need nothing else.
"""

from __future__ import annotations

import struct
from typing import Dict, FrozenSet, List, Sequence, Tuple, Union


# ---------------------------------------------------------------------------------------
# Netlink constants (linux/netlink.h)

NETLINK_XFRM = 6
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # error replies echo only the request header, not its payload
NETLINK_EXT_ACK = 11  # error replies carry the kernel's extended-ack message
SO_SNDBUFFORCE = 32  # like SO_SNDBUF but not capped by net.core.wmem_max (needs root)
SO_RCVBUFFORCE = 33

NLM_F_REQUEST = 0x01
NLM_F_MULTI = 0x02
NLM_F_ACK = 0x04
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: the echoed request was cut to its header
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR: extended-ack attributes follow

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4

NLMSGERR_ATTR_MSG = 1
NLMSGERR_ATTR_OFFS = 2

NLMSG_ALIGNTO = 4
NLA_ALIGNTO = 4

# ---------------------------------------------------------------------------------------
# XFRM message types (enum in linux/xfrm.h)

XFRM_MSG_NEWSA = 0x10
XFRM_MSG_DELSA = 0x11
XFRM_MSG_GETSA = 0x12
XFRM_MSG_NEWPOLICY = 0x13
XFRM_MSG_DELPOLICY = 0x14
XFRM_MSG_GETPOLICY = 0x15
XFRM_MSG_ALLOCSPI = 0x16
XFRM_MSG_UPDPOLICY = 0x19
XFRM_MSG_UPDSA = 0x1A

XFRM_MSG_NAMES: Dict[int, str] = {
    XFRM_MSG_NEWSA: "NEWSA",
    XFRM_MSG_DELSA: "DELSA",
    XFRM_MSG_GETSA: "GETSA",
    XFRM_MSG_NEWPOLICY: "NEWPOLICY",
    XFRM_MSG_DELPOLICY: "DELPOLICY",
    XFRM_MSG_GETPOLICY: "GETPOLICY",
    XFRM_MSG_ALLOCSPI: "ALLOCSPI",
    XFRM_MSG_UPDPOLICY: "UPDPOLICY",
    XFRM_MSG_UPDSA: "UPDSA",
}

# XFRM attribute ids (enum xfrm_attr_type_t)
XFRMA_ALG_AUTH = 1
XFRMA_ALG_CRYPT = 2
XFRMA_ALG_COMP = 3
XFRMA_ENCAP = 4
XFRMA_TMPL = 5
XFRMA_SA = 6
XFRMA_POLICY = 7
XFRMA_SEC_CTX = 8
XFRMA_LTIME_VAL = 9
XFRMA_REPLAY_VAL = 10
XFRMA_REPLAY_THRESH = 11
XFRMA_ETIMER_THRESH = 12
XFRMA_SRCADDR = 13
XFRMA_COADDR = 14
XFRMA_LASTUSED = 15
XFRMA_POLICY_TYPE = 16
XFRMA_MIGRATE = 17
XFRMA_ALG_AEAD = 18
XFRMA_KMADDRESS = 19
XFRMA_ALG_AUTH_TRUNC = 20
XFRMA_MARK = 21
XFRMA_TFCPAD = 22
XFRMA_REPLAY_ESN_VAL = 23
XFRMA_SA_EXTRA_FLAGS = 24
XFRMA_PROTO = 25
XFRMA_ADDRESS_FILTER = 26
XFRMA_PAD = 27
XFRMA_OFFLOAD_DEV = 28
XFRMA_SET_MARK = 29
XFRMA_SET_MARK_MASK = 30
XFRMA_IF_ID = 31
XFRMA_MTIMER_THRESH = 32
XFRMA_SA_DIR = 33
XFRMA_NAT_KEEPALIVE_INTERVAL = 34
XFRMA_SA_PCPU = 35

# Policies in dumps with dir >= XFRM_POLICY_MAX are per-socket policies (3 + real dir);
# DELPOLICY cannot reach them, so reconciliation never considers them.
XFRM_POLICY_MAX = 3

XFRM_STATE_ESN = 128  # usersa_info.flags
XFRM_ALG_NAME_SIZE = 64  # char alg_name[64], NUL-terminated
XFRM_MAX_DEPTH = 6  # most templates a policy may carry
XFRMA_REPLAY_ESN_MAX_BITS = 4096  # largest replay window (bits) with ESN / bitmap state
REPLAY_BITMAP_WORD_BITS = 32

# ---------------------------------------------------------------------------------------
# Layouts

FieldFormat = Union[str, "Layout"]


class Layout:
    """One C struct declared once, compiled to a flat field list and for the fast codec."""

    def __init__(self, c_name: str, size: int, fields: Sequence[Tuple[str, FieldFormat]]) -> None:
        self.c_name = c_name
        self.size = size
        self.fields: Tuple[Tuple[str, FieldFormat], ...] = tuple(fields)
        self.flat_fields: Tuple[Tuple[str, str], ...] = tuple(self._flatten(""))
        fast_codes: List[str] = []
        member_names: List[str] = []
        swapped: List[str] = []
        for name, fmt in self.fields:
            if isinstance(fmt, Layout):
                fast_codes.append("%ds" % fmt.size)
                member_names.append(name)
            elif fmt.endswith("x"):
                fast_codes.append(fmt)
            else:
                if fmt.startswith(">"):
                    swapped.append(name)
                fast_codes.append(fmt.lstrip(">"))
                member_names.append(name)
        # '=': native byte order, standard sizes and no implicit alignment; the padding is
        # all declared, so the compiled size must equal the C sizeof.
        self.struct = struct.Struct("=" + "".join(fast_codes))
        self.member_names: Tuple[str, ...] = tuple(member_names)
        self.swapped: FrozenSet[str] = frozenset(swapped)
        flat_size = struct.calcsize("=" + "".join(fmt.lstrip(">") for _name, fmt in self.flat_fields))
        if self.struct.size != size or flat_size != size:
            raise AssertionError(
                "layout %s: compiled %d/%d bytes, C sizeof is %d" % (c_name, self.struct.size, flat_size, size)
            )

    def _flatten(self, prefix: str) -> List[Tuple[str, str]]:
        flat: List[Tuple[str, str]] = []
        offset = 0
        for name, fmt in self.fields:
            if isinstance(fmt, Layout):
                flat.extend(fmt._flatten(prefix + name + "_"))
                offset += fmt.size
                continue
            if fmt.endswith("x"):
                # Every field gets its own name (an encoder keeping fields in a dict, as
                # pyroute2 does, needs unique padding names).
                flat.append(("__pad_%s%d" % (prefix, offset), fmt))
            else:
                flat.append((prefix + name, fmt))
            offset += struct.calcsize("=" + fmt.lstrip(">"))
        return flat

    def offset_of(self, name: str) -> int:
        """Byte offset of a top-level member (used by tests and error reporting)."""
        offset = 0
        for member, fmt in self.fields:
            if member == name:
                return offset
            offset += fmt.size if isinstance(fmt, Layout) else struct.calcsize("=" + fmt.lstrip(">"))
        raise KeyError(name)

    def __repr__(self) -> str:
        return "Layout(%s, %d bytes)" % (self.c_name, self.size)


XFRM_ADDRESS = "16s"  # xfrm_address_t: IPv4 in the first 4 bytes, the rest zero

NLMSGHDR = Layout(
    "nlmsghdr",
    16,
    (("length", "I"), ("type", "H"), ("flags", "H"), ("sequence_number", "I"), ("pid", "I")),
)
NLATTR = Layout("nlattr", 4, (("length", "H"), ("type", "H")))
NLMSGERR = Layout("nlmsgerr", 20, (("error", "i"), ("msg", NLMSGHDR)))

SELECTOR = Layout(
    "xfrm_selector",
    56,
    (
        ("daddr", XFRM_ADDRESS),
        ("saddr", XFRM_ADDRESS),
        ("dport", ">H"),
        ("dport_mask", ">H"),
        ("sport", ">H"),
        ("sport_mask", ">H"),
        ("family", "H"),
        ("prefixlen_d", "B"),
        ("prefixlen_s", "B"),
        ("proto", "B"),
        ("pad", "3x"),
        ("ifindex", "i"),
        ("user", "I"),
    ),
)

XFRM_ID = Layout(
    "xfrm_id",
    24,
    (("daddr", XFRM_ADDRESS), ("spi", ">I"), ("proto", "B"), ("pad", "3x")),
)

LIFETIME_CFG = Layout(
    "xfrm_lifetime_cfg",
    64,
    (
        ("soft_byte_limit", "Q"),
        ("hard_byte_limit", "Q"),
        ("soft_packet_limit", "Q"),
        ("hard_packet_limit", "Q"),
        ("soft_add_expires_seconds", "Q"),
        ("hard_add_expires_seconds", "Q"),
        ("soft_use_expires_seconds", "Q"),
        ("hard_use_expires_seconds", "Q"),
    ),
)

LIFETIME_CUR = Layout(
    "xfrm_lifetime_cur",
    32,
    (("bytes", "Q"), ("packets", "Q"), ("add_time", "Q"), ("use_time", "Q")),
)

STATS = Layout(
    "xfrm_stats",
    12,
    (("replay_window", "I"), ("replay", "I"), ("integrity_failed", "I")),
)

USERSA_INFO = Layout(
    "xfrm_usersa_info",
    224,
    (
        ("sel", SELECTOR),
        ("id", XFRM_ID),
        ("saddr", XFRM_ADDRESS),
        ("lft", LIFETIME_CFG),
        ("curlft", LIFETIME_CUR),
        ("stats", STATS),
        ("seq", "I"),
        ("reqid", "I"),
        ("family", "H"),
        ("mode", "B"),
        ("replay_window", "B"),
        ("flags", "B"),
        ("pad", "7x"),  # struct alignment 8 (u64 lifetimes)
    ),
)

USERSA_ID = Layout(
    "xfrm_usersa_id",
    24,
    (("daddr", XFRM_ADDRESS), ("spi", ">I"), ("family", "H"), ("proto", "B"), ("pad", "x")),
)

USERSPI_INFO = Layout(
    "xfrm_userspi_info",
    232,
    (("info", USERSA_INFO), ("min", "I"), ("max", "I")),
)

USERPOLICY_INFO = Layout(
    "xfrm_userpolicy_info",
    168,
    (
        ("sel", SELECTOR),
        ("lft", LIFETIME_CFG),
        ("curlft", LIFETIME_CUR),
        ("priority", "I"),
        ("index", "I"),
        ("dir", "B"),
        ("action", "B"),
        ("flags", "B"),
        ("share", "B"),
        ("pad", "4x"),  # struct alignment 8
    ),
)

USERPOLICY_ID = Layout(
    "xfrm_userpolicy_id",
    64,
    (("sel", SELECTOR), ("index", "I"), ("dir", "B"), ("pad", "3x")),
)

USER_TMPL = Layout(
    "xfrm_user_tmpl",
    64,
    (
        ("id", XFRM_ID),
        ("family", "H"),
        ("pad1", "2x"),
        ("saddr", XFRM_ADDRESS),
        ("reqid", "I"),
        ("mode", "B"),
        ("share", "B"),
        ("optional", "B"),
        ("pad2", "x"),
        ("aalgos", "I"),
        ("ealgos", "I"),
        ("calgos", "I"),
    ),
)

# xfrm_algo / xfrm_algo_auth / xfrm_algo_aead: fixed part, then ceil(alg_key_len / 8) key
# bytes. alg_key_len, alg_trunc_len and alg_icv_len are in bits.
ALGO = Layout("xfrm_algo", 68, (("alg_name", "64s"), ("alg_key_len", "I")))
ALGO_AUTH = Layout(
    "xfrm_algo_auth", 72, (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_trunc_len", "I"))
)
ALGO_AEAD = Layout(
    "xfrm_algo_aead", 72, (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_icv_len", "I"))
)

# Members are v/m as in C (a member named "value" would also clash with pyroute2's getvalue()).
MARK = Layout("xfrm_mark", 8, (("v", "I"), ("m", "I")))

# Attributes the collection never sets, read only to show them (XFRMA_ENCAP, XFRMA_SEC_CTX
# followed by ctx_len bytes of context, XFRMA_OFFLOAD_DEV).
ENCAP_TMPL = Layout(
    "xfrm_encap_tmpl",
    24,
    (("encap_type", "H"), ("encap_sport", ">H"), ("encap_dport", ">H"), ("pad", "2x"), ("encap_oa", XFRM_ADDRESS)),
)
USER_SEC_CTX = Layout(
    "xfrm_user_sec_ctx",
    8,
    (("len", "H"), ("exttype", "H"), ("ctx_alg", "B"), ("ctx_doi", "B"), ("ctx_len", "H")),
)
USER_OFFLOAD = Layout("xfrm_user_offload", 8, (("ifindex", "i"), ("flags", "B"), ("pad", "3x")))
ENCAP_TYPE_NAMES = {1: "espinudp-nonike", 2: "espinudp", 7: "espintcp"}
SA_EXTRA_FLAG_NAMES = {1: "dont-encap-dscp", 2: "oseq-may-wrap"}
OFFLOAD_FLAG_NAMES = {1: "ipv6", 2: "in", 4: "packet"}
SA_DIR_NAMES = {1: "in", 2: "out"}

USERPOLICY_TYPE = Layout(
    "xfrm_userpolicy_type",
    6,
    (("type", "B"), ("pad1", "x"), ("reserved1", "H"), ("reserved2", "B"), ("pad2", "x")),
)

REPLAY_STATE = Layout("xfrm_replay_state", 12, (("oseq", "I"), ("seq", "I"), ("bitmap", "I")))

# Followed by bmp_len u32 bitmap words; the kernel accepts the 24-byte form without them.
REPLAY_STATE_ESN = Layout(
    "xfrm_replay_state_esn",
    24,
    (
        ("bmp_len", "I"),
        ("oseq", "I"),
        ("seq", "I"),
        ("oseq_hi", "I"),
        ("seq_hi", "I"),
        ("replay_window", "I"),
    ),
)

U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")

# Fast-path compositions: a header together with the payload that always follows it.
NLMSGHDR_STRUCT = NLMSGHDR.struct
NLATTR_STRUCT = NLATTR.struct
NLATTR_U32_STRUCT = struct.Struct("=HHI")  # an attribute header and a u32 payload
NLATTR_MARK_STRUCT = struct.Struct("=HH" + MARK.struct.format[1:])
NLATTR_POLICY_TYPE_STRUCT = struct.Struct("=HH" + USERPOLICY_TYPE.struct.format[1:] + "2x")
