# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the XFRM wire layouts and the fast codec (no kernel needed).

* layouts: sizes and offsets equal the C structs (reference netlink-xfrm.md, section 1.2);
* golden bytes: messages iproute2 6.1 sent for known commands (captured with strace
  ``-e write=all`` in a throwaway netns) equal what the codec encodes for the same objects;
* the fast encoder's bytes equal pyroute2's generic encoder's for the same message, and
  the fast decoder agrees with pyroute2's decoder (property tests over random objects);
* encode/decode round trips of SAs and policies, IPv4 and IPv6, every field;
* normalisations, error handling, and that no key byte reaches a repr or a message.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import (
    ApplyResult, XfrmKernelError, describe_operation,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C, xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    AF_INET, AF_INET6, ALGO_AEAD, ALGO_AUTH, ALGO_CRYPT, DIR_IN, DIR_OUT, INFINITE_LIFETIME, MODE_TRANSPORT,
    MODE_TUNNEL, Algorithm, Lifetime, Mark, Operation, Selector, StateCounters, Template, Verb, XfrmPolicy,
    XfrmState, canonical_state, selector_between, zero_selector,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render

from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils import pyroute2_reference as R

REQUEST_ACK = S.NLM_F_REQUEST | S.NLM_F_ACK


def _hex(*chunks: str) -> bytes:
    return bytes.fromhex("".join(chunks))


# ---------------------------------------------------------------------------------------
# Golden messages: iproute2 6.1 on this project's dev host, `strace -e write=all`.
# All were sent with NLM_F_REQUEST|NLM_F_ACK and sequence number 0x6b0ce0f5.
GOLDEN_SEQ = 0x6B0CE0F5

# ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x100 reqid 1 mode tunnel
#   mark 0x42 mask 0xff output-mark 0xd00 mask 0xf00 if_id 5
#   aead 'rfc4106(gcm(aes))' 0x0102030405060708090a0b0c0d0e0f1011121314 128
# ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x101 reqid 1 mode tunnel
#   auth-trunc 'hmac(sha256)' 0x000102..1f 128 enc 'cbc(aes)' 0xa0a1..af
#   sel src 10.0.0.0/24 dst 10.1.0.0/24 flag esn replay-window 128
# ip xfrm state add src 2001:db8::1 dst 2001:db8::2 proto esp spi 0xabcdef01 reqid 7
#   mode transport replay-window 32 aead 'rfc4543(gcm(aes))' 0x0102..24 128
# ip xfrm policy add src 10.0.0.0/24 dst 10.1.0.0/24 dir out priority 100 mark 7 mask 0xf
#   tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 1 mode tunnel
# ip xfrm policy add src 2001:db8::/64 dst 2001:db8:1::/64 proto tcp dport 22 dir in
#   priority 5 ptype sub if_id 9 tmpl src 2001:db8::1 dst 2001:db8::2 proto esp reqid 3
#   mode tunnel level use
# ip xfrm policy delete src 10.0.0.0/24 dst 10.1.0.0/24 dir out mark 7 mask 0xf
# ip xfrm policy delete src 2001:db8::/64 dst 2001:db8:1::/64 proto tcp dport 22 dir in
#   ptype sub if_id 9
# ip xfrm state delete dst 192.0.2.2 proto esp spi 0x100 mark 0x42 mask 0xff
# ip xfrm policy add src 0.0.0.0/0 dst 0.0.0.0/0 proto tcp sport 22 dir out priority 10
#   action block
GOLDEN_NEWSA_AEAD = _hex(
    "7401000010000500f5e00c6b000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000c00002020000000000000000000000000000010032000000"
    "c0000201000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000001000000020001000000000000000000"
    "60001200726663343130362867636d286165732929000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000a0000000800000000102030405060708090a0b0c0d0e0f1011121314"
    "0c00150042000000ff00000008001f000500000008001d00000d000008001e00000f0000"
)
GOLDEN_NEWSA_ESN = _hex(
    "d001000010000500f5e00c6b000000000a0100000000000000000000000000000a000000000000000000000000000000"
    "000000000000000002001818000000000000000000000000c00002020000000000000000000000000000010132000000"
    "c0000201000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000001000000020001008000000000000000"
    "6c001400686d616328736861323536290000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000001000080000000000102030405060708090a0b0c0d0e0f10111213"
    "1415161718191a1b1c1d1e1f580002006362632861657329000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000080000000a0a1a2a3a4a5a6a7a8a9aaab"
    "acadaeaf1c001700040000000000000000000000000000000000000080000000"
)
GOLDEN_NEWSA_V6 = _hex(
    "6001000010000500f5e00c6b000000000000000000000000000000000000000000000000000000000000000000000000"
    "00000000000000000000000000000000000000000000000020010db8000000000000000000000002abcdef0132000000"
    "20010db8000000000000000000000001ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000070000000a0000200000000000000000"
    "70001200726663343534332867636d286165732929000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000020010000800000000102030405060708090a0b0c0d0e0f1011121314"
    "15161718191a1b1c1d1e1f2021222324"
)
GOLDEN_NEWPOLICY_V4 = _hex(
    "0801000013000500f5e00c6b000000000a0100000000000000000000000000000a000000000000000000000000000000"
    "000000000000000002001818000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffff"
    "ffffffffffffffff00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000006400000000000000010000000000000044000500c0000202"
    "000000000000000000000000000000003200000002000000c00002010000000000000000000000000100000001000000"
    "ffffffffffffffffffffffff0c001500070000000f000000"
)
GOLDEN_NEWPOLICY_V6 = _hex(
    "1001000013000500f5e00c6b0000000020010db800010000000000000000000020010db8000000000000000000000000"
    "0016ffff000000000a004040060000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffff"
    "ffffffffffffffff00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000050000000000000000000000000000000a00100001000000"
    "000000004400050020010db800000000000000000000000200000000320000000a00000020010db80000000000000000"
    "000000010300000001000100ffffffffffffffffffffffff08001f0009000000"
)
GOLDEN_DELPOLICY_V4 = _hex(
    "5c00000014000500f5e00c6b000000000a0100000000000000000000000000000a000000000000000000000000000000"
    "00000000000000000200181800000000000000000000000000000000010000000c001500070000000f000000"
)
GOLDEN_DELPOLICY_V6 = _hex(
    "6400000014000500f5e00c6b0000000020010db800010000000000000000000020010db8000000000000000000000000"
    "0016ffff000000000a00404006000000000000000000000000000000000000000a001000010000000000000008001f00"
    "09000000"
)
GOLDEN_DELSA = _hex(
    "4800000011000500f5e00c6b00000000c0000202000000000000000000000000000001000200320014000d0000000000"
    "0000000000000000000000000c00150042000000ff000000"
)
GOLDEN_NEWPOLICY_BLOCK = _hex(
    "b800000013000500f5e00c6b000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000016ffff02000000060000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffff"
    "ffffffffffffffff00000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000a000000000000000101000000000000"
)


# ---------------------------------------------------------------------------------------
# Layouts


@pytest.mark.parametrize(
    "layout, size",
    [
        (S.SELECTOR, 56),
        (S.XFRM_ID, 24),
        (S.LIFETIME_CFG, 64),
        (S.LIFETIME_CUR, 32),
        (S.STATS, 12),
        (S.USERSA_INFO, 224),
        (S.USERSA_ID, 24),
        (S.USERSPI_INFO, 232),
        (S.USERPOLICY_INFO, 168),
        (S.USERPOLICY_ID, 64),
        (S.USER_TMPL, 64),
        (S.ALGO, 68),
        (S.ALGO_AUTH, 72),
        (S.ALGO_AEAD, 72),
        (S.MARK, 8),
        (S.USERPOLICY_TYPE, 6),
        (S.REPLAY_STATE, 12),
        (S.REPLAY_STATE_ESN, 24),
    ],
)
def test_layout_sizes_equal_c_sizeof(layout: S.Layout, size: int) -> None:
    assert layout.struct.size == size
    assert struct.calcsize("=" + "".join(f.lstrip(">") for _name, f in layout.flat_fields)) == size


@pytest.mark.parametrize(
    "layout, member, offset",
    [
        (S.SELECTOR, "dport", 32),
        (S.SELECTOR, "family", 40),
        (S.SELECTOR, "proto", 44),
        (S.SELECTOR, "ifindex", 48),
        (S.USERSA_INFO, "id", 56),
        (S.USERSA_INFO, "saddr", 80),
        (S.USERSA_INFO, "lft", 96),
        (S.USERSA_INFO, "curlft", 160),
        (S.USERSA_INFO, "stats", 192),
        (S.USERSA_INFO, "reqid", 208),
        (S.USERSA_INFO, "family", 212),
        (S.USERSA_INFO, "flags", 216),
        (S.USERPOLICY_INFO, "priority", 152),
        (S.USERPOLICY_INFO, "dir", 160),
        (S.USERPOLICY_INFO, "share", 163),
        (S.USERPOLICY_ID, "dir", 60),
        (S.USERSA_ID, "family", 20),
        (S.USERSA_ID, "proto", 22),
        (S.USER_TMPL, "family", 24),
        (S.USER_TMPL, "saddr", 28),
        (S.USER_TMPL, "optional", 50),
        (S.USER_TMPL, "aalgos", 52),
        (S.USERSPI_INFO, "min", 224),
    ],
)
def test_layout_offsets(layout: S.Layout, member: str, offset: int) -> None:
    assert layout.offset_of(member) == offset


def test_flat_fields_declare_every_padding_byte() -> None:
    names = [name for name, _fmt in S.USERSA_INFO.flat_fields]
    assert len(names) == len(set(names)), "pyroute2 keeps fields in a dict: names must be unique"
    assert ("__pad_216", "7x") in list(S.USERSA_INFO.flat_fields) or any(
        f == "7x" for _name, f in S.USERSA_INFO.flat_fields
    )
    assert S.USERSA_INFO.struct.format == "=56s24s16s64s32s12sIIHBBB7x"
    assert S.SELECTOR.swapped == frozenset({"dport", "dport_mask", "sport", "sport_mask"})


# ---------------------------------------------------------------------------------------
# Golden bytes

AEAD_KEY_20 = bytes(range(1, 21))
AUTH_KEY_32 = bytes(range(32))
CRYPT_KEY_16 = bytes(range(0xA0, 0xB0))
AEAD_KEY_36 = bytes(range(1, 37))


def _golden_state_aead() -> XfrmState:
    return XfrmState(
        src="192.0.2.1",
        dst="192.0.2.2",
        spi=0x100,
        reqid=1,
        mode=MODE_TUNNEL,
        mark=Mark(0x42, 0xFF),
        output_mark=Mark(0xD00, 0xF00),
        if_id=5,
        aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", AEAD_KEY_20, 128),
    )


def _golden_state_esn() -> XfrmState:
    return XfrmState(
        src="192.0.2.1",
        dst="192.0.2.2",
        spi=0x101,
        reqid=1,
        mode=MODE_TUNNEL,
        selector=selector_between("10.0.0.0/24", "10.1.0.0/24"),
        esn=True,
        replay_window=128,
        auth=Algorithm(ALGO_AUTH, "hmac(sha256)", AUTH_KEY_32, 128),
        crypt=Algorithm(ALGO_CRYPT, "cbc(aes)", CRYPT_KEY_16),
    )


def _golden_state_v6() -> XfrmState:
    return XfrmState(
        src="2001:db8::1",
        dst="2001:db8::2",
        spi=0xABCDEF01,
        reqid=7,
        mode=MODE_TRANSPORT,
        replay_window=32,
        aead=Algorithm(ALGO_AEAD, "rfc4543(gcm(aes))", AEAD_KEY_36, 128),
    )


def _golden_policy_v4() -> XfrmPolicy:
    return XfrmPolicy(
        selector=selector_between("10.0.0.0/24", "10.1.0.0/24"),
        dir=DIR_OUT,
        priority=100,
        mark=Mark(7, 0xF),
        templates=(Template(src="192.0.2.1", dst="192.0.2.2", reqid=1, mode=MODE_TUNNEL),),
    )


def _golden_policy_v6() -> XfrmPolicy:
    return XfrmPolicy(
        selector=selector_between("2001:db8::/64", "2001:db8:1::/64", proto=6, dport=22),
        dir=DIR_IN,
        priority=5,
        ptype=1,
        if_id=9,
        templates=(Template(src="2001:db8::1", dst="2001:db8::2", reqid=3, mode=MODE_TUNNEL, optional=True),),
    )


def _golden_policy_block() -> XfrmPolicy:
    return XfrmPolicy(
        selector=selector_between("0.0.0.0/0", "0.0.0.0/0", proto=6, sport=22),
        dir=DIR_OUT,
        priority=10,
        action=1,
    )


@pytest.mark.parametrize(
    "golden, msg_type, encode, make",
    [
        (GOLDEN_NEWSA_AEAD, S.XFRM_MSG_NEWSA, C.encode_newsa, _golden_state_aead),
        (GOLDEN_NEWSA_ESN, S.XFRM_MSG_NEWSA, C.encode_newsa, _golden_state_esn),
        (GOLDEN_NEWSA_V6, S.XFRM_MSG_NEWSA, C.encode_newsa, _golden_state_v6),
        (GOLDEN_NEWPOLICY_V4, S.XFRM_MSG_NEWPOLICY, C.encode_newpolicy, _golden_policy_v4),
        (GOLDEN_NEWPOLICY_V6, S.XFRM_MSG_NEWPOLICY, C.encode_newpolicy, _golden_policy_v6),
        (GOLDEN_NEWPOLICY_BLOCK, S.XFRM_MSG_NEWPOLICY, C.encode_newpolicy, _golden_policy_block),
        (GOLDEN_DELPOLICY_V4, S.XFRM_MSG_DELPOLICY, C.encode_delpolicy, _golden_policy_v4),
        (GOLDEN_DELPOLICY_V6, S.XFRM_MSG_DELPOLICY, C.encode_delpolicy, _golden_policy_v6),
    ],
    ids=["newsa-aead", "newsa-esn", "newsa-v6", "newpolicy-v4", "newpolicy-v6", "newpolicy-block", "delpolicy-v4",
         "delpolicy-v6"],
)
def test_golden_iproute2_bytes(golden: bytes, msg_type: int, encode: Any, make: Any) -> None:
    encoded = C.frame(msg_type, REQUEST_ACK, GOLDEN_SEQ, encode(make()))
    assert encoded.hex() == golden.hex()


def test_golden_delsa_equals_iproute2_without_its_srcaddr() -> None:
    # iproute2 always adds XFRMA_SRCADDR (zero here); the kernel reads it only for
    # non-IPsec protocols, so the codec does not send it. Everything else is identical.
    srcaddr_attr = struct.pack("=HH", 20, S.XFRMA_SRCADDR) + bytes(16)
    payload = GOLDEN_DELSA[16:]
    assert payload[24:44] == srcaddr_attr
    expected_payload = payload[:24] + payload[44:]
    state = _golden_state_aead()._replace(src="192.0.2.1")
    assert C.encode_delsa(state).hex() == expected_payload.hex()


def test_golden_messages_decode_back_to_the_objects() -> None:
    for golden, make in (
        (GOLDEN_NEWSA_AEAD, _golden_state_aead),
        (GOLDEN_NEWSA_ESN, _golden_state_esn),
        (GOLDEN_NEWSA_V6, _golden_state_v6),
    ):
        assert C.decode_state(golden, 16, len(golden)) == make()
    for golden, make in (
        (GOLDEN_NEWPOLICY_V4, _golden_policy_v4),
        (GOLDEN_NEWPOLICY_V6, _golden_policy_v6),
        (GOLDEN_NEWPOLICY_BLOCK, _golden_policy_block),
    ):
        assert C.decode_policy(golden, 16, len(golden)) == make()


# ---------------------------------------------------------------------------------------
# An independent model -> pyroute2 mapping (written against the reference, not the codec)


def _addr(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return ip.packed + bytes(16 - len(ip.packed))


def _net_addr(text: str, prefixlen: int) -> bytes:
    return _addr(str(ipaddress.ip_network("%s/%d" % (text, prefixlen), strict=False).network_address))


def _selector_fields(prefix: str, sel: Optional[Selector]) -> Dict[str, Any]:
    if sel is None:
        return {prefix + "daddr": bytes(16), prefix + "saddr": bytes(16), prefix + "family": 0}
    return {
        prefix + "daddr": _net_addr(sel.daddr, sel.prefixlen_d),
        prefix + "saddr": _net_addr(sel.saddr, sel.prefixlen_s),
        prefix + "dport": sel.dport,
        prefix + "dport_mask": sel.dport_mask,
        prefix + "sport": sel.sport,
        prefix + "sport_mask": sel.sport_mask,
        prefix + "family": int(sel.family),
        prefix + "prefixlen_d": sel.prefixlen_d,
        prefix + "prefixlen_s": sel.prefixlen_s,
        prefix + "proto": sel.proto,
        prefix + "ifindex": sel.ifindex,
        prefix + "user": sel.user,
    }


def _lifetime_fields(prefix: str, lifetime: Lifetime) -> Dict[str, Any]:
    return {prefix + name: getattr(lifetime, name) for name in Lifetime._fields}


def _mark_attrs(mark: Optional[Mark]) -> List[Any]:
    if mark is None or (mark.value == 0 and mark.mask == 0):
        return []
    return [("XFRMA_MARK", {"v": mark.value, "m": mark.mask})]


def _pyroute2_encode(msg: Any, msg_type: int, seq: int) -> bytes:
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = REQUEST_ACK
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


def pyroute2_newsa(state: XfrmState, seq: int) -> bytes:
    msg = R.xfrm_usersa_info_msg()
    msg.update(_selector_fields("sel_", state.selector))
    msg.update(_lifetime_fields("lft_", state.lifetime))
    family = AF_INET6 if ":" in state.dst else AF_INET
    window = state.replay_window
    use_esn_attr = state.esn or window > 32
    msg.update(
        {
            "id_daddr": _addr(state.dst),
            "id_spi": state.spi,
            "id_proto": state.proto,
            "saddr": _addr(state.src),
            "reqid": state.reqid,
            "family": family,
            "mode": state.mode,
            "replay_window": 0 if use_esn_attr else window,
            "flags": state.flags | (128 if state.esn else 0),
        }
    )
    attrs: List[Any] = []
    for attr_name, alg in (
        ("XFRMA_ALG_AEAD", state.aead),
        ("XFRMA_ALG_AUTH_TRUNC", state.auth),
        ("XFRMA_ALG_CRYPT", state.crypt),
    ):
        if alg is None:
            continue
        value = {"alg_name": alg.name.encode(), "alg_key_len": len(alg.key) * 8, "alg_key": alg.key}
        if attr_name == "XFRMA_ALG_AEAD":
            value["alg_icv_len"] = alg.bits
        elif attr_name == "XFRMA_ALG_AUTH_TRUNC":
            value["alg_trunc_len"] = alg.bits
        attrs.append((attr_name, value))
    if use_esn_attr:
        attrs.append(("XFRMA_REPLAY_ESN_VAL", {"bmp_len": (window + 31) // 32, "replay_window": window}))
    attrs += _mark_attrs(state.mark)
    if state.if_id:
        attrs.append(("XFRMA_IF_ID", state.if_id))
    if state.output_mark is not None and (state.output_mark.value or state.output_mark.mask):
        attrs.append(("XFRMA_SET_MARK", state.output_mark.value))
        attrs.append(("XFRMA_SET_MARK_MASK", state.output_mark.mask))
    msg["attrs"] = attrs
    return _pyroute2_encode(msg, S.XFRM_MSG_NEWSA, seq)


def pyroute2_delsa(state: XfrmState, seq: int) -> bytes:
    msg = R.xfrm_usersa_id_msg()
    msg.update(
        {
            "daddr": _addr(state.dst),
            "spi": state.spi,
            "family": AF_INET6 if ":" in state.dst else AF_INET,
            "proto": state.proto,
        }
    )
    msg["attrs"] = _mark_attrs(state.mark)
    return _pyroute2_encode(msg, S.XFRM_MSG_DELSA, seq)


def _tmpl_dict(t: Template) -> Dict[str, Any]:
    return {
        "id_daddr": _addr(t.dst),
        "id_spi": t.spi,
        "id_proto": t.proto,
        "family": AF_INET6 if ":" in t.dst else AF_INET,
        "saddr": _addr(t.src),
        "reqid": t.reqid,
        "mode": t.mode,
        "share": t.share,
        "optional": int(t.optional),
        "aalgos": t.aalgos,
        "ealgos": t.ealgos,
        "calgos": t.calgos,
    }


def pyroute2_newpolicy(policy: XfrmPolicy, seq: int) -> bytes:
    msg = R.xfrm_userpolicy_info_msg()
    msg.update(_selector_fields("sel_", policy.selector))
    msg.update(_lifetime_fields("lft_", policy.lifetime))
    msg.update(
        {
            "priority": policy.priority,
            "index": 0,
            "dir": policy.dir,
            "action": policy.action,
            "flags": policy.flags,
        }
    )
    attrs: List[Any] = []
    if policy.ptype:
        attrs.append(("XFRMA_POLICY_TYPE", {"type": policy.ptype}))
    if policy.templates:
        attrs.append(("XFRMA_TMPL", [_tmpl_dict(t) for t in policy.templates]))
    attrs += _mark_attrs(policy.mark)
    if policy.if_id:
        attrs.append(("XFRMA_IF_ID", policy.if_id))
    msg["attrs"] = attrs
    return _pyroute2_encode(msg, S.XFRM_MSG_NEWPOLICY, seq)


def pyroute2_delpolicy(policy: XfrmPolicy, seq: int) -> bytes:
    msg = R.xfrm_userpolicy_id_msg()
    fields = _selector_fields("sel_", policy.selector)
    fields["sel_daddr"] = _addr(policy.selector.daddr)  # DEL sends the selector exactly
    fields["sel_saddr"] = _addr(policy.selector.saddr)
    msg.update(fields)
    msg.update({"index": 0, "dir": policy.dir})
    attrs: List[Any] = []
    if policy.ptype:
        attrs.append(("XFRMA_POLICY_TYPE", {"type": policy.ptype}))
    attrs += _mark_attrs(policy.mark)
    if policy.if_id:
        attrs.append(("XFRMA_IF_ID", policy.if_id))
    msg["attrs"] = attrs
    return _pyroute2_encode(msg, S.XFRM_MSG_DELPOLICY, seq)


def _text(family: int, raw: bytes) -> str:
    return str(ipaddress.ip_address(raw if family == AF_INET6 else raw[:4]))


def _selector_from(msg: Dict[str, Any], prefix: str, fallback: int) -> Selector:
    family = msg[prefix + "family"]
    af = family if family in (AF_INET, AF_INET6) else fallback
    return Selector(
        family=family,
        saddr=_text(af, msg[prefix + "saddr"]),
        prefixlen_s=msg[prefix + "prefixlen_s"],
        daddr=_text(af, msg[prefix + "daddr"]),
        prefixlen_d=msg[prefix + "prefixlen_d"],
        proto=msg[prefix + "proto"],
        sport=msg[prefix + "sport"],
        sport_mask=msg[prefix + "sport_mask"],
        dport=msg[prefix + "dport"],
        dport_mask=msg[prefix + "dport_mask"],
        ifindex=msg[prefix + "ifindex"],
        user=msg[prefix + "user"],
    )


def _lifetime_from(msg: Dict[str, Any], prefix: str) -> Lifetime:
    return Lifetime(**{name: msg[prefix + name] for name in Lifetime._fields})


def _pyroute2_decode(data: bytes) -> Any:
    (msg,) = list(R.MarshalXfrm().parse(data))
    return msg


def state_from_pyroute2(data: bytes) -> Tuple[XfrmState, StateCounters]:
    """The SA and its counters as an independent reading of pyroute2's decode gives them."""
    msg = _pyroute2_decode(data)
    family = msg["family"]
    algs: Dict[str, Algorithm] = {}
    for attr, kind in (("XFRMA_ALG_AEAD", ALGO_AEAD), ("XFRMA_ALG_AUTH_TRUNC", ALGO_AUTH), ("XFRMA_ALG_CRYPT", ALGO_CRYPT)):
        value = msg.get_attr(attr)
        if value is not None:
            bits = value.get("alg_icv_len", value.get("alg_trunc_len", 0))
            algs[kind] = Algorithm(kind, value["alg_name"].decode(), value["alg_key"], bits)
    if ALGO_AUTH not in algs and msg.get_attr("XFRMA_ALG_AUTH") is not None:
        value = msg.get_attr("XFRMA_ALG_AUTH")
        algs[ALGO_AUTH] = Algorithm(ALGO_AUTH, value["alg_name"].decode(), value["alg_key"], 0)
    esn = msg.get_attr("XFRMA_REPLAY_ESN_VAL")
    replay = msg.get_attr("XFRMA_REPLAY_VAL")
    mark = msg.get_attr("XFRMA_MARK")
    set_mark = msg.get_attr("XFRMA_SET_MARK")
    set_mask = msg.get_attr("XFRMA_SET_MARK_MASK")
    output_mark = None
    if set_mark is not None:
        mask = 0xFFFFFFFF if set_mask is None else set_mask
        if set_mark or mask:
            output_mark = Mark(set_mark, mask)
    sel = _selector_from(msg, "sel_", family)
    # An all-zero selector of family 0 is "no selector" (flag af-unspec); one of the SA's
    # family is what the kernel stores for an SA added without one.
    no_selector = (
        sel.prefixlen_s == 0 and sel.prefixlen_d == 0 and msg["sel_saddr"] == bytes(16) and msg["sel_daddr"] == bytes(16)
        and not (sel.proto or sel.sport or sel.dport or sel.sport_mask or sel.dport_mask or sel.ifindex or sel.user)
        and sel.family == 0
    )
    oseq = seq = 0
    if esn is not None:
        oseq = esn["oseq"] | esn["oseq_hi"] << 32
        seq = esn["seq"] | esn["seq_hi"] << 32
    elif replay is not None:
        oseq, seq = replay["oseq"], replay["seq"]
    return XfrmState(
        src=_text(family, msg["saddr"]),
        dst=_text(family, msg["id_daddr"]),
        spi=msg["id_spi"],
        reqid=msg["reqid"],
        proto=msg["id_proto"],
        mode=msg["mode"],
        replay_window=esn["replay_window"] if esn is not None else msg["replay_window"],
        esn=bool(msg["flags"] & 128),
        flags=msg["flags"] & ~128,
        selector=None if no_selector else sel,
        aead=algs.get(ALGO_AEAD),
        auth=algs.get(ALGO_AUTH),
        crypt=algs.get(ALGO_CRYPT),
        mark=Mark(mark["v"], mark["m"]) if mark is not None and (mark["v"] or mark["m"]) else None,
        output_mark=output_mark,
        if_id=msg.get_attr("XFRMA_IF_ID") or 0,
        lifetime=_lifetime_from(msg, "lft_"),
    ), StateCounters(
        bytes=msg["curlft_bytes"],
        packets=msg["curlft_packets"],
        add_time=msg["curlft_add_time"],
        use_time=msg["curlft_use_time"],
        replay_window=msg["stats_replay_window"],
        replay=msg["stats_replay"],
        integrity_failed=msg["stats_integrity_failed"],
        oseq=oseq,
        seq=seq,
    )


def policy_from_pyroute2(data: bytes) -> XfrmPolicy:
    msg = _pyroute2_decode(data)
    sel = _selector_from(msg, "sel_", AF_INET)
    templates = []
    for t in msg.get_attr("XFRMA_TMPL") or []:
        fam = t["family"] if t["family"] in (AF_INET, AF_INET6) else sel.family
        templates.append(
            Template(
                src=_text(fam, t["saddr"]),
                dst=_text(fam, t["id_daddr"]),
                reqid=t["reqid"],
                spi=t["id_spi"],
                proto=t["id_proto"],
                mode=t["mode"],
                optional=bool(t["optional"]),
                share=t["share"],
                aalgos=t["aalgos"],
                ealgos=t["ealgos"],
                calgos=t["calgos"],
            )
        )
    mark = msg.get_attr("XFRMA_MARK")
    ptype = msg.get_attr("XFRMA_POLICY_TYPE")
    return XfrmPolicy(
        selector=sel,
        dir=msg["dir"],
        action=msg["action"],
        priority=msg["priority"],
        templates=tuple(templates),
        mark=Mark(mark["v"], mark["m"]) if mark is not None and (mark["v"] or mark["m"]) else None,
        ptype=ptype["type"] if ptype is not None else 0,
        if_id=msg.get_attr("XFRMA_IF_ID") or 0,
        flags=msg["flags"],
        lifetime=_lifetime_from(msg, "lft_"),
    )


# ---------------------------------------------------------------------------------------
# Strategies

U32 = st.integers(0, 0xFFFFFFFF)
U64 = st.integers(0, (1 << 64) - 1)
KEY = st.binary(min_size=0, max_size=64)
ALG_NAMES = st.sampled_from(
    ["rfc4106(gcm(aes))", "rfc4543(gcm(aes))", "hmac(sha256)", "cbc(aes)", "hmac(sha1)", "x" * 63]
)


@st.composite
def addresses(draw: Any, family: Optional[int] = None) -> str:
    fam = draw(st.sampled_from([AF_INET, AF_INET6])) if family is None else family
    return str(draw(st.ip_addresses(v=6 if fam == AF_INET6 else 4)))


@st.composite
def selectors(draw: Any, family: Optional[int] = None) -> Selector:
    fam = draw(st.sampled_from([AF_INET, AF_INET6])) if family is None else family
    width = 128 if fam == AF_INET6 else 32
    src = ipaddress.ip_network("%s/%d" % (draw(addresses(fam)), draw(st.integers(0, width))), strict=False)
    dst = ipaddress.ip_network("%s/%d" % (draw(addresses(fam)), draw(st.integers(0, width))), strict=False)
    ports = draw(st.booleans())
    return Selector(
        family=fam,
        saddr=str(src.network_address),
        prefixlen_s=src.prefixlen,
        daddr=str(dst.network_address),
        prefixlen_d=dst.prefixlen,
        proto=draw(st.sampled_from([0, 6, 17, 50, 255])),
        sport=draw(st.integers(0, 0xFFFF)) if ports else 0,
        sport_mask=draw(st.sampled_from([0, 0xFFFF, 0xFF00])) if ports else 0,
        dport=draw(st.integers(0, 0xFFFF)) if ports else 0,
        dport_mask=draw(st.sampled_from([0, 0xFFFF, 0x00FF])) if ports else 0,
        ifindex=draw(st.integers(-(1 << 31), (1 << 31) - 1)),
        user=draw(U32),
    )


marks = st.one_of(st.none(), st.tuples(U32, U32).filter(lambda vm: vm != (0, 0)).map(lambda vm: Mark(*vm)))
lifetimes = st.one_of(st.just(INFINITE_LIFETIME), st.builds(Lifetime, U64, U64, U64, U64, U64, U64, U64, U64))


def _is_match_all(selector: Selector, family: int) -> bool:
    zero = "::" if selector.family == AF_INET6 else "0.0.0.0"
    return (
        selector.family == family
        and selector.saddr == zero
        and selector.daddr == zero
        and selector.prefixlen_s == 0
        and selector.prefixlen_d == 0
        and not (selector.proto or selector.sport or selector.sport_mask or selector.dport or selector.dport_mask)
        and not (selector.ifindex or selector.user)
    )


@st.composite
def states(draw: Any) -> XfrmState:
    family = draw(st.sampled_from([AF_INET, AF_INET6]))
    selector = draw(st.one_of(st.none(), selectors()))
    if selector is not None and _is_match_all(selector, family):
        selector = None  # that selector is how the kernel stores "no selector"
    suite = draw(st.sampled_from(["aead", "auth+crypt", "auth", "crypt", "none"]))
    aead = auth = crypt = None
    if suite == "aead":
        aead = Algorithm(ALGO_AEAD, draw(ALG_NAMES), draw(KEY), draw(st.sampled_from([64, 96, 128])))
    if "auth" in suite:
        auth = Algorithm(ALGO_AUTH, draw(ALG_NAMES), draw(KEY), draw(st.sampled_from([0, 96, 128, 256])))
    if "crypt" in suite:
        crypt = Algorithm(ALGO_CRYPT, draw(ALG_NAMES), draw(KEY))
    esn = draw(st.booleans())
    window = draw(st.integers(0, 4096)) if esn or draw(st.booleans()) else draw(st.integers(0, 32))
    return XfrmState(
        src=draw(addresses(family)),
        dst=draw(addresses(family)),
        spi=draw(U32),
        reqid=draw(U32),
        proto=draw(st.sampled_from([50, 51, 108])),
        mode=draw(st.sampled_from([MODE_TRANSPORT, MODE_TUNNEL, 4])),
        replay_window=window,
        esn=esn,
        flags=draw(st.integers(0, 127)),
        selector=selector,
        aead=aead,
        auth=auth,
        crypt=crypt,
        mark=draw(marks),
        output_mark=draw(marks),
        if_id=draw(U32),
        lifetime=draw(lifetimes),
    )


@st.composite
def templates(draw: Any) -> Template:
    family = draw(st.sampled_from([AF_INET, AF_INET6]))
    return Template(
        src=draw(addresses(family)),
        dst=draw(addresses(family)),
        reqid=draw(U32),
        spi=draw(U32),
        proto=draw(st.sampled_from([50, 51, 108])),
        mode=draw(st.sampled_from([MODE_TRANSPORT, MODE_TUNNEL])),
        optional=draw(st.booleans()),
        share=draw(st.integers(0, 3)),
        aalgos=draw(st.sampled_from([0xFFFFFFFF, 0, 0x1234])),
        ealgos=draw(st.sampled_from([0xFFFFFFFF, 0])),
        calgos=draw(st.sampled_from([0xFFFFFFFF, 0])),
    )


@st.composite
def policies(draw: Any) -> XfrmPolicy:
    return XfrmPolicy(
        selector=draw(selectors()),
        dir=draw(st.sampled_from([0, 1, 2])),
        action=draw(st.sampled_from([0, 1])),
        priority=draw(U32),
        templates=tuple(draw(st.lists(templates(), max_size=6))),
        mark=draw(marks),
        ptype=draw(st.sampled_from([0, 1])),
        if_id=draw(U32),
        flags=draw(st.integers(0, 255)),
        lifetime=draw(lifetimes),
    )


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------
# Fast encoder == pyroute2 encoder; fast decoder agrees with pyroute2's decoder


@PROPERTY
@given(states(), U32)
def test_newsa_fast_bytes_equal_pyroute2(state: XfrmState, seq: int) -> None:
    fast = C.frame(S.XFRM_MSG_NEWSA, REQUEST_ACK, seq, C.encode_newsa(state))
    assert fast.hex() == pyroute2_newsa(state, seq).hex()


@PROPERTY
@given(states(), U32)
def test_delsa_fast_bytes_equal_pyroute2(state: XfrmState, seq: int) -> None:
    fast = C.frame(S.XFRM_MSG_DELSA, REQUEST_ACK, seq, C.encode_delsa(state))
    assert fast.hex() == pyroute2_delsa(state, seq).hex()


@PROPERTY
@given(policies(), U32)
def test_newpolicy_fast_bytes_equal_pyroute2(policy: XfrmPolicy, seq: int) -> None:
    fast = C.frame(S.XFRM_MSG_NEWPOLICY, REQUEST_ACK, seq, C.encode_newpolicy(policy))
    assert fast.hex() == pyroute2_newpolicy(policy, seq).hex()


@PROPERTY
@given(policies(), U32)
def test_delpolicy_fast_bytes_equal_pyroute2(policy: XfrmPolicy, seq: int) -> None:
    fast = C.frame(S.XFRM_MSG_DELPOLICY, REQUEST_ACK, seq, C.encode_delpolicy(policy))
    assert fast.hex() == pyroute2_delpolicy(policy, seq).hex()


@PROPERTY
@given(states())
def test_state_round_trip_and_pyroute2_decoder_agrees(state: XfrmState) -> None:
    data = C.frame(S.XFRM_MSG_NEWSA, 0, 1, C.encode_newsa(state))
    fast, fast_counters = C.decode_state_counters(data, 16, len(data))
    assert fast == state == C.decode_state(data, 16, len(data))
    slow, slow_counters = state_from_pyroute2(data)
    assert fast == slow
    assert fast_counters == slow_counters


@PROPERTY
@given(policies())
def test_policy_round_trip_and_pyroute2_decoder_agrees(policy: XfrmPolicy) -> None:
    data = C.frame(S.XFRM_MSG_NEWPOLICY, 0, 1, C.encode_newpolicy(policy))
    fast = C.decode_policy(data, 16, len(data))
    assert fast == policy
    assert fast == policy_from_pyroute2(data)


def _dump_like_newsa(state: XfrmState, counters: StateCounters, with_esn: bool) -> bytes:
    """A NEWSA as the kernel dumps it: counters filled, AUTH next to AUTH_TRUNC, lifetime
    and replay attributes, and attributes the codec ignores."""
    msg = R.xfrm_usersa_info_msg()
    msg.update(_selector_fields("sel_", state.selector))
    msg.update(_lifetime_fields("lft_", state.lifetime))
    msg.update(
        {
            "sel_family": AF_INET,
            "id_daddr": _addr(state.dst),
            "id_spi": state.spi,
            "id_proto": 50,
            "saddr": _addr(state.src),
            "curlft_bytes": counters.bytes,
            "curlft_packets": counters.packets,
            "curlft_add_time": counters.add_time,
            "curlft_use_time": counters.use_time,
            "stats_replay_window": counters.replay_window,
            "stats_replay": counters.replay,
            "stats_integrity_failed": counters.integrity_failed,
            "reqid": state.reqid,
            "family": AF_INET,
            "mode": state.mode,
            "replay_window": 0 if with_esn else state.replay_window,
            "flags": 128 if with_esn else 0,
        }
    )
    auth = state.auth
    assert auth is not None
    attrs: List[Any] = [
        ("XFRMA_ALG_AUTH", {"alg_name": auth.name.encode(), "alg_key_len": len(auth.key) * 8, "alg_key": auth.key}),
        (
            "XFRMA_ALG_AUTH_TRUNC",
            {"alg_name": auth.name.encode(), "alg_key_len": len(auth.key) * 8, "alg_trunc_len": auth.bits,
             "alg_key": auth.key},
        ),
        ("XFRMA_LTIME_VAL", {"bytes": counters.bytes, "packets": counters.packets}),
    ]
    if with_esn:
        attrs.append(
            (
                "XFRMA_REPLAY_ESN_VAL",
                {"bmp_len": 4, "oseq": counters.oseq & 0xFFFFFFFF, "seq": counters.seq & 0xFFFFFFFF,
                 "oseq_hi": counters.oseq >> 32, "seq_hi": counters.seq >> 32, "replay_window": state.replay_window},
            )
        )
    else:
        attrs.append(("XFRMA_REPLAY_VAL", {"oseq": counters.oseq, "seq": counters.seq, "bitmap": 0xF0F0}))
    # Extra flags 0 are no flags (the kernel reports only non-zero ones; see the unmodelled tests).
    attrs += [("XFRMA_SA_EXTRA_FLAGS", 0), ("XFRMA_LASTUSED", 1234567)]
    msg["attrs"] = attrs
    return _pyroute2_encode(msg, S.XFRM_MSG_NEWSA, 99)


@pytest.mark.parametrize("with_esn", [False, True])
def test_dump_like_state_decodes_with_counters_and_auth_trunc(with_esn: bool) -> None:
    window = 128 if with_esn else 32
    state = XfrmState(
        src="198.51.100.1",
        dst="198.51.100.2",
        spi=0xDEADBEEF,
        reqid=4242,
        replay_window=window,
        esn=with_esn,
        selector=None,
        auth=Algorithm(ALGO_AUTH, "hmac(sha256)", AUTH_KEY_32, 128),
    )
    counters = StateCounters(
        bytes=10_000_000_000,
        packets=7_000_000,
        add_time=1_700_000_000,
        use_time=1_700_000_100,
        replay_window=3,
        replay=5,
        integrity_failed=7,
        oseq=(5 << 32 | 11) if with_esn else 11,
        seq=(6 << 32 | 13) if with_esn else 13,
    )
    data = _dump_like_newsa(state, counters, with_esn)
    fast, fast_counters = C.decode_state_counters(data, 16, len(data))
    # The kernel stores the selector of an SA added without one with the SA's family: the
    # canonical form of the SA.
    assert fast == canonical_state(state) and fast.selector == zero_selector(AF_INET)
    assert fast_counters == counters
    assert fast.auth is not None and fast.auth.bits == 128  # from AUTH_TRUNC, not AUTH
    slow, slow_counters = state_from_pyroute2(data)
    assert fast == slow and fast_counters == slow_counters


def test_auth_without_auth_trunc_falls_back_with_default_bits() -> None:
    state = XfrmState(src="192.0.2.1", dst="192.0.2.2", spi=1, auth=Algorithm(ALGO_AUTH, "hmac(sha1)", b"k" * 20, 96))
    msg = R.xfrm_usersa_info_msg()
    msg.update(_selector_fields("sel_", None))
    msg.update(_lifetime_fields("lft_", INFINITE_LIFETIME))
    msg.update({"id_daddr": _addr("192.0.2.2"), "id_spi": 1, "id_proto": 50, "saddr": _addr("192.0.2.1"),
                "family": AF_INET, "mode": 1})
    msg["attrs"] = [("XFRMA_ALG_AUTH", {"alg_name": b"hmac(sha1)", "alg_key_len": 160, "alg_key": b"k" * 20})]
    data = _pyroute2_encode(msg, S.XFRM_MSG_NEWSA, 1)
    decoded = C.decode_state(data, 16, len(data))
    assert decoded == state._replace(auth=Algorithm(ALGO_AUTH, "hmac(sha1)", b"k" * 20, 0))


def test_per_socket_policies_are_skipped() -> None:
    policy = _golden_policy_v4()._replace(dir=DIR_OUT)
    data = bytearray(C.frame(S.XFRM_MSG_NEWPOLICY, 0, 1, C.encode_newpolicy(policy)))
    data[16 + S.USERPOLICY_INFO.offset_of("dir")] = 3 + DIR_OUT  # XFRM_POLICY_MAX + dir
    assert C.decode_policy(bytes(data), 16, len(data)) is None


def test_larval_selector_of_family_zero_reads_addresses_in_the_state_family() -> None:
    raw = bytearray(C.pack_selector(selector_between("2001:db8::1/128", "2001:db8::2/128")))
    raw[40:42] = b"\0\0"
    selector = C.unpack_selector(bytes(raw), AF_INET6)
    assert selector is not None
    assert (selector.family, selector.saddr, selector.daddr) == (0, "2001:db8::1", "2001:db8::2")
    assert C.unpack_selector(bytes(56), AF_INET6) is None  # all zero, family 0: flag af-unspec


# ---------------------------------------------------------------------------------------
# Normalisations and validation


def test_new_messages_clear_host_bits_but_delete_sends_the_exact_selector() -> None:
    loose = Selector(family=AF_INET, saddr="10.1.2.3", prefixlen_s=16, daddr="2.2.2.2", prefixlen_d=24)
    policy = XfrmPolicy(selector=loose, dir=DIR_OUT)
    new = C.encode_newpolicy(policy)
    assert new[16:20] == socket.inet_aton("10.1.0.0") and new[0:4] == socket.inet_aton("2.2.2.0")
    delete = C.encode_delpolicy(policy)
    assert delete[16:20] == socket.inet_aton("10.1.2.3") and delete[0:4] == socket.inet_aton("2.2.2.2")
    v6 = Selector(family=AF_INET6, saddr="2001:db8::ffff", prefixlen_s=65, daddr="::1", prefixlen_d=0)
    packed = C.pack_selector(v6)
    assert packed[16:32] == ipaddress.ip_address("2001:db8::").packed and packed[0:16] == bytes(16)


def test_bypass_ports_are_big_endian() -> None:
    packed = C.pack_selector(selector_between("0.0.0.0/0", "0.0.0.0/0", proto=6, dport=22))
    assert packed[32:36] == b"\x00\x16\xff\xff" and packed[36:40] == b"\0\0\0\0"


def test_zero_marks_are_not_sent_and_esn_windows_size_the_bitmap() -> None:
    state = _golden_state_aead()._replace(mark=Mark(0, 0), output_mark=Mark(0, 0), if_id=0)
    payload = C.encode_newsa(state)
    assert len(payload) == 224 + 96  # usersa_info + the AEAD attribute only
    decoded = C.decode_state(C.frame(16, 0, 0, payload), 16, 16 + len(payload))
    assert decoded.mark is None and decoded.output_mark is None
    esn = _golden_state_esn()._replace(replay_window=33)
    payload = C.encode_newsa(esn)
    offset = payload.find(struct.pack("=HH", 28, S.XFRMA_REPLAY_ESN_VAL))
    assert struct.unpack_from("=6I", payload, offset + 4) == (2, 0, 0, 0, 0, 33)
    assert payload[S.USERSA_INFO.offset_of("replay_window")] == 0


@pytest.mark.parametrize(
    "obj, text",
    [
        (XfrmState(src="10.0.0.1", dst="fe80::1", spi=1), "mixes address families"),
        (_golden_state_aead()._replace(crypt=Algorithm(ALGO_CRYPT, "cbc(aes)", b"k" * 16)), "AEAD SA"),
        (_golden_state_v6()._replace(replay_window=5000), "replay window"),
        (_golden_state_v6()._replace(aead=Algorithm(ALGO_AEAD, "y" * 64, b"", 128)), "1-63 characters"),
        (_golden_state_v6()._replace(aead=Algorithm(ALGO_CRYPT, "cbc(aes)", b"", 0)), "expected 'aead'"),
        (_golden_state_v6()._replace(spi=1 << 32), "out of range"),
        (XfrmPolicy(selector=Selector(family=0, saddr="0.0.0.0", prefixlen_s=0, daddr="0.0.0.0", prefixlen_d=0),
                    dir=1), "AF_INET or AF_INET6"),
        (XfrmPolicy(selector=Selector(family=AF_INET, saddr="1.1.1.1", prefixlen_s=33, daddr="0.0.0.0",
                                      prefixlen_d=0), dir=1), "prefix length"),
        (_golden_policy_v4()._replace(templates=_golden_policy_v4().templates * 7), "at most 6"),
        (_golden_policy_v4()._replace(templates=(Template(src="::", dst="1.1.1.1"),)), "mixes"),
        (_golden_policy_v4()._replace(priority=-1), "out of range"),
    ],
)
def test_unencodable_objects_raise_codec_errors(obj: Any, text: str) -> None:
    with pytest.raises(C.XfrmCodecError, match=text.replace("(", r"\(").replace(")", r"\)")):
        C.encode_operation(Operation(Verb.ADD, obj))


def test_decode_error_reads_errno_and_extack() -> None:
    extack = b"Invalid prefix length\0"
    attr = struct.pack("=HH", 4 + len(extack), S.NLMSGERR_ATTR_MSG) + extack + b"\0" * (-len(extack) % 4)
    payload = struct.pack("=i", -22) + S.NLMSGHDR.struct.pack(200, 19, 5, 7, 0) + attr
    data = C.frame(S.NLMSG_ERROR, S.NLM_F_CAPPED | S.NLM_F_ACK_TLVS, 7, payload)
    ((msg_type, flags, seq, start, end),) = list(C.iter_messages(data))
    assert (msg_type, seq) == (S.NLMSG_ERROR, 7)
    assert C.decode_error(data, start, end, flags) == (22, "Invalid prefix length")


# ---------------------------------------------------------------------------------------
# No key material anywhere a human or a log could see it


def test_reprs_descriptions_and_errors_never_contain_key_bytes() -> None:
    key = bytes.fromhex("5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e7aaaa")
    state = _golden_state_aead()._replace(aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", key, 128))
    operation = Operation(Verb.ADD, state)
    error = XfrmKernelError("x", 22, None, operation, 0)
    result = ApplyResult(applied=(), failed=operation, error=error)
    texts = [repr(state), repr(operation), describe_operation(operation), render(state), repr(result), str(error),
             str(state), repr((state,)), repr({state.key(): state})]
    for text in texts:
        assert key.hex() not in text and repr(key) not in text and key.hex()[:8] not in text
    assert "rfc4106(gcm(aes)) key sha256:" in render(state)
    assert "key=<20 bytes>" in repr(state)


def test_operation_validates_verb_and_object() -> None:
    with pytest.raises(TypeError):
        Operation("flush", _golden_policy_v4())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Operation("add", _golden_policy_v4())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Operation(Verb.ADD, "policy")  # type: ignore[arg-type]


def test_the_collection_never_imports_pyroute2() -> None:
    """Targets need only Python's standard library: every module and module_utils file
    imports, and a state and a policy go through the codec both ways, with pyroute2 made
    unimportable."""
    code = (
        "import importlib, pkgutil, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyroute2' or name.startswith('pyroute2.'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import ansible_collections.netsec.ipsec.plugins.module_utils as mu\n"
        "import ansible_collections.netsec.ipsec.plugins.modules as mods\n"
        "names = [info.name for package in (mu, mods)\n"
        "         for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as c, xfrm_structs as s\n"
        "assert not any(n.split('.')[0] == 'pyroute2' for n in sys.modules)\n"
        "assert not hasattr(s, 'HAS_PYROUTE2') and not hasattr(s, 'MarshalXfrm')\n"
        "print(len(names))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 30


def test_decoded_objects_are_complete_model_instances() -> None:
    """Decoded entries are the model's own types, all the way down, and hash and compare like
    normally constructed ones."""
    state = _golden_state_esn()
    data = C.frame(S.XFRM_MSG_NEWSA, 0, 1, C.encode_newsa(state._replace(mark=Mark(1, 1))))
    decoded, counters = C.decode_state_counters(data, 16, len(data))
    policy_data = C.frame(S.XFRM_MSG_NEWPOLICY, 0, 1, C.encode_newpolicy(_golden_policy_v6()))
    decoded_policy = C.decode_policy(policy_data, 16, len(policy_data))
    assert decoded_policy is not None
    for obj, cls in ((decoded, XfrmState), (counters, StateCounters), (decoded.auth, Algorithm),
                     (decoded.crypt, Algorithm), (decoded.selector, Selector), (decoded.mark, Mark),
                     (decoded.lifetime, Lifetime), (decoded_policy, XfrmPolicy),
                     (decoded_policy.templates[0], Template), (decoded_policy.selector, Selector)):
        assert obj.__class__ is cls, obj.__class__.__name__
    assert decoded == C.decode_state(data, 16, len(data))
    assert hash(decoded) == hash(state._replace(mark=Mark(1, 1)))
    assert hash(decoded_policy) == hash(_golden_policy_v6())
    with pytest.raises(AttributeError):
        decoded.spi = 5  # type: ignore[misc]
