# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the iproute2 oracle (tests/oracle/iproute2.py): argument builder, output
parser and corpus, on captured ``ip xfrm`` output (tests/unit/data/iproute2, see its README).
No kernel needed."""

from __future__ import annotations

import collections
import os

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ACTION_BLOCK, AF_INET, AF_INET6, ALGO_AEAD, ALGO_AUTH, ALGO_CRYPT, DIR_FWD, DIR_IN, DIR_OUT, INFINITE_LIFETIME,
    MODE_TRANSPORT, MODE_TUNNEL, POLICY_TYPE_SUB, XFRM_INF, Algorithm, Lifetime, Mark, Selector, Template,
    XfrmPolicy, XfrmState, selector_between,
)
from ansible_collections.netsec.ipsec.tests.oracle import iproute2 as oracle

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "iproute2")


def _data(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# captured dumps of the whole corpus


def test_state_dump_parses_back_to_the_corpus():
    got = oracle.parse_states(_data("state_s_d.txt"))
    assert len(got) == len(oracle.corpus_states(0))
    assert oracle.compare(oracle.corpus_states(0), got, "state_s_d.txt") == []


def test_policy_dump_parses_back_to_the_corpus():
    got = oracle.parse_policies(_data("policy_s_d.txt"))
    assert len(got) == len(oracle.corpus_policies(0))
    assert oracle.compare(oracle.corpus_policies(0), got, "policy_s_d.txt") == []


def test_batch_fixture_is_the_corpus():
    assert oracle.batch_text(oracle.corpus(0)) == _data("corpus0.batch")


def test_plain_state_output_lacks_only_lifetimes_and_counters():
    """Without -s, iproute2 prints no lifetimes and no counters (the anti-replay context,
    where ESN windows are, is printed either way): exactly those fields differ."""
    full = {s.spi: (s, counters) for s, counters in oracle.parse_states_with_counters(_data("state_s_d.txt"))}
    plain = oracle.parse_states_with_counters(_data("state_plain.txt"))
    assert len(plain) == len(full)
    for sa, counters in plain:
        ref, ref_counters = full[sa.spi]
        assert sa.lifetime == INFINITE_LIFETIME
        assert sa == ref._replace(lifetime=INFINITE_LIFETIME)
        assert counters.add_time == 0 and ref_counters.add_time > 0


def test_plain_policy_output_lacks_only_lifetimes():
    full = {p.priority: p for p in oracle.parse_policies(_data("policy_s_d.txt"))}
    plain = oracle.parse_policies_with_index(_data("policy_plain.txt"))
    assert len(plain) == len(full)
    for pol, index in plain:
        assert pol == full[pol.priority]._replace(lifetime=INFINITE_LIFETIME)
        assert index == 0  # only printed with -s


# ---------------------------------------------------------------------------------------------
# single objects, written out literally (independent of the corpus code)


def test_parse_esn_state():
    ((sa, counters),) = oracle.parse_states_with_counters(_data("sa_esn.txt"))
    assert sa == XfrmState(
        src="10.0.6.2",
        dst="10.0.6.1",
        spi=0x7EC,
        reqid=58102,
        mode=MODE_TUNNEL,
        replay_window=128,
        esn=True,
        flags=0,
        # "sel src 0.0.0.0/0 dst 0.0.0.0/0 uid 0": the kernel's form of no selector
        selector=Selector(AF_INET, "0.0.0.0", 0, "0.0.0.0", 0),
        aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", bytes.fromhex("846355920de5d687d9421e4be32d150266589e02"), 128),
    )
    assert counters is not None and counters.seq == 0 and counters.oseq == 0


def test_parse_state_with_marks_if_id_and_lifetimes():
    ((sa, counters),) = oracle.parse_states_with_counters(_data("sa_marks_lifetimes.txt"))
    assert sa.mark == Mark(0xD00, 0xF00)
    assert sa.output_mark == Mark(0x3E00, 0xFFFFFF00)
    assert sa.if_id == 7
    assert sa.replay_window == 32 and not sa.esn
    assert sa.lifetime == Lifetime(
        soft_byte_limit=1073741824,
        hard_byte_limit=2147484348,
        soft_packet_limit=1000000,
        hard_packet_limit=XFRM_INF,
        soft_add_expires_seconds=86924,
        hard_add_expires_seconds=172800,
        soft_use_expires_seconds=40000,
        hard_use_expires_seconds=80000,
    )
    assert (counters.bytes, counters.packets) == (84, 1)
    assert counters.use_time > counters.add_time > 0


def test_parse_plain_state_with_auth_enc_and_flags():
    ((sa, counters),) = oracle.parse_states_with_counters(_data("sa_plain_auth_enc.txt"))
    assert sa.mode == MODE_TRANSPORT
    assert sa.flags == 1 | 64 and not sa.esn
    assert sa.auth == Algorithm(ALGO_AUTH, "hmac(sha256)", bytes.fromhex("cf8ba7630350bfead8f9856798f00e85cac372c2b7baf1a13fa34cf25a221b8f"), 128)
    assert sa.crypt == Algorithm(ALGO_CRYPT, "cbc(aes)", bytes.fromhex("6a4323f4dcb34aa6fa2227cb838b5efe"), 0)
    assert sa.aead is None
    assert sa.selector == Selector(AF_INET6, "fd00:a::", 64, "fd00:b::", 64, proto=17, sport=4500, sport_mask=0xFFFF, dport=4500, dport_mask=0xFFFF)
    assert counters is None


def test_state_without_sel_line_has_no_selector():
    text = "src 10.0.0.1 dst 10.0.0.2\n\tproto esp spi 0x00000100 reqid 0 mode tunnel\n\treplay-window 0 flag af-unspec\n" \
           "\taead rfc4106(gcm(aes)) 0x00112233445566778899aabbccddeeff00112233 128\n"
    (sa,) = oracle.parse_states(text)
    assert sa.selector is None and sa.flags == 32


def test_parse_policy_with_two_templates():
    ((pol, index),) = oracle.parse_policies_with_index(_data("policy_two_templates.txt"))
    assert pol == XfrmPolicy(
        selector=Selector(AF_INET6, "fd00:156::", 64, "fd00:157::", 64),
        dir=DIR_IN,
        priority=1901,
        mark=Mark(0xE00, 0xFFFFFF00),
        if_id=0x2C,
        lifetime=Lifetime(soft_packet_limit=12345, hard_packet_limit=1 << 33),
        templates=(
            Template(src="::", dst="::", reqid=21794, proto=51, mode=MODE_TRANSPORT, optional=True),
            Template(src="2001:db8:9c::1", dst="2001:db8:9c::2", reqid=3, spi=0x1234, mode=MODE_TUNNEL),
        ),
    )
    assert index == 264


def test_parse_plain_policies():
    icmp, dev, bypass, sock = oracle.parse_policies(_data("policy_plain_mixed.txt"))
    assert icmp.selector == Selector(AF_INET6, "::", 0, "::", 0, proto=58, sport=128, sport_mask=0xFFFF, dport=0, dport_mask=0xFFFF)
    assert icmp.action == ACTION_BLOCK and icmp.templates == ()
    assert dev.selector.ifindex == 1 and dev.ptype == POLICY_TYPE_SUB and dev.flags == 3 and dev.dir == DIR_FWD
    assert bypass.selector == selector_between("10.0.0.0/24", "10.1.0.0/16", proto=6, sport=22)
    assert bypass.templates == (Template(src="192.0.2.1", dst="192.0.2.2", reqid=1),)
    assert sock.dir == 3 + DIR_OUT  # per-socket policies keep the kernel's numbering


@pytest.mark.parametrize(
    "text",
    [
        "src 10.0.0.0/8 dst 10.0.0.0/8 \n\tdir out priority 0 ptype main \n\tsomething new 1\n",
        "src 10.0.0.0/8 dst 10.0.0.0/8 proto tcp flowlabel 3 \n\tdir out priority 0 ptype main \n",
        "src 10.0.0.0/8 dst 10.0.0.0/8 \n\tdir out priority 0 ptype main wat 2\n",
        "src 10.0.0.0/8 dst 10.0.0.0/8 \n",
        "src 10.0.0.0/8 dst 10.0.0.0/8 \n\tdir out priority 0 ptype main \n\tsecurity context foo \n",
    ],
)
def test_policy_parser_rejects_what_it_does_not_know(text):
    with pytest.raises(oracle.ParseError):
        oracle.parse_policies(text)


@pytest.mark.parametrize(
    "line",
    [
        "\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0",
        "\taead rfc4106(gcm(aes)) 0x0011 (24 bits) 128",
        "\taead rfc4106(gcm(aes)) 0x0011",
        "\tauth hmac(sha256) 0x0011",
    ],
)
def test_state_parser_rejects_what_it_does_not_know(line):
    text = "src 10.0.0.1 dst 10.0.0.2\n\tproto esp spi 0x00000100 reqid 0 mode tunnel\n\treplay-window 0 \n" + line + "\n"
    with pytest.raises(oracle.ParseError):
        oracle.parse_states(text)


# ---------------------------------------------------------------------------------------------
# argument builder

KEY20 = bytes(range(20))


def test_state_args_everything():
    sa = XfrmState(
        src="192.0.2.1",
        dst="192.0.2.2",
        spi=0x100,
        reqid=1,
        mode=MODE_TUNNEL,
        replay_window=128,
        esn=True,
        flags=1,
        selector=selector_between("10.0.0.0/24", "10.1.0.0/24", proto=6, dport=443),
        aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", KEY20, 128),
        mark=Mark(0x42, 0xFF),
        output_mark=Mark(0xD00, 0xF00),
        if_id=5,
        lifetime=Lifetime(hard_add_expires_seconds=3600, soft_packet_limit=100),
    )
    assert oracle.ip_xfrm_args(sa) == (
        "xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x00000100 reqid 1 mode tunnel "
        "replay-window 128 flag noecn esn mark 0x42 mask 0xff output-mark 0xd00 mask 0xf00 if_id 5 "
        "aead rfc4106(gcm(aes)) 0x000102030405060708090a0b0c0d0e0f10111213 128 "
        "sel src 10.0.0.0/24 dst 10.1.0.0/24 proto 6 dport 443 "
        "limit packet-soft 100 limit time-hard 3600"
    ).split()


def test_state_args_auth_enc_transport_update():
    sa = XfrmState(
        src="2001:db8::1",
        dst="2001:db8::2",
        spi=0xDEADBEEF,
        mode=MODE_TRANSPORT,
        auth=Algorithm(ALGO_AUTH, "hmac(sha256)", bytes(32), 128),
        crypt=Algorithm(ALGO_CRYPT, "cbc(aes)", bytes(16)),
    )
    assert oracle.ip_xfrm_args(sa, "update") == (
        "xfrm state update src 2001:db8::1 dst 2001:db8::2 proto esp spi 0xdeadbeef reqid 0 mode transport "
        "auth-trunc hmac(sha256) 0x" + "00" * 32 + " 128 enc cbc(aes) 0x" + "00" * 16
    ).split()


def test_policy_args_everything():
    pol = XfrmPolicy(
        selector=selector_between("0.0.0.0/0", "10.1.0.0/16", proto=6, sport=22),
        dir=DIR_IN,
        action=ACTION_BLOCK,
        priority=100,
        ptype=POLICY_TYPE_SUB,
        flags=1,
        mark=Mark(7, 0xF),
        if_id=9,
        lifetime=Lifetime(soft_byte_limit=10),
        templates=(
            Template(src="192.0.2.1", dst="192.0.2.2", reqid=1, spi=0x1234, optional=True),
            Template(src="2001:db8::1", dst="2001:db8::2", reqid=2, mode=MODE_TRANSPORT),
        ),
    )
    assert oracle.ip_xfrm_args(pol) == (
        "xfrm policy add src 0.0.0.0/0 dst 10.1.0.0/16 proto 6 sport 22 dir in ptype sub action block priority 100 "
        "flag localok mark 0x7 mask 0xf if_id 9 limit byte-soft 10 "
        "tmpl src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x00001234 reqid 1 mode tunnel level use "
        "tmpl src 2001:db8::1 dst 2001:db8::2 proto esp reqid 2 mode transport level required"
    ).split()


def test_policy_args_icmp_and_dev():
    sel = Selector(AF_INET, "0.0.0.0", 0, "0.0.0.0", 0, proto=1, sport=8, sport_mask=0xFFFF, dport=0, dport_mask=0xFFFF, ifindex=1)
    args = oracle.ip_xfrm_args(XfrmPolicy(selector=sel, dir=DIR_OUT))
    assert args[3:15] == "src 0.0.0.0/0 dst 0.0.0.0/0 proto 1 type 8 code 0 dev lo".split()


_SA = XfrmState(src="192.0.2.1", dst="192.0.2.2", spi=1, aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", KEY20, 128))
_POL = XfrmPolicy(selector=selector_between("10.0.0.0/8", "10.0.0.0/8"), dir=DIR_OUT)


@pytest.mark.parametrize(
    "obj",
    [
        _SA._replace(mark=Mark(1, 0)),
        _SA._replace(output_mark=Mark(0, 0xFF)),
        _SA._replace(flags=128),
        _SA._replace(src="2001:db8::1"),
        _SA._replace(selector=Selector(AF_INET, "10.0.0.0", 8, "10.0.0.0", 8, proto=6, sport=0, sport_mask=0xFFFF)),
        _SA._replace(selector=Selector(AF_INET, "10.0.0.0", 8, "10.0.0.0", 8, proto=6, sport=80, sport_mask=0xFF00)),
        _SA._replace(selector=Selector(AF_INET, "10.0.0.0", 8, "10.0.0.0", 8, proto=47, sport=80, sport_mask=0xFFFF)),
        _SA._replace(selector=Selector(AF_INET, "10.0.0.0", 8, "10.0.0.0", 8, user=1000)),
        _SA._replace(selector=Selector(AF_INET, "10.0.0.0", 8, "10.0.0.0", 8, ifindex=7)),
        _SA._replace(crypt=Algorithm(ALGO_CRYPT, "cbc(aes)", b"", 0)),
        _POL._replace(templates=(Template(src="10.0.0.1", dst="10.0.0.2", share=1),)),
        _POL._replace(templates=(Template(src="10.0.0.1", dst="10.0.0.2", aalgos=1),)),
        _POL._replace(dir=4),
        _POL._replace(mark=Mark(0, 0)),
    ],
)
def test_inexpressible(obj):
    with pytest.raises(oracle.Inexpressible):
        oracle.ip_xfrm_args(obj)


# ---------------------------------------------------------------------------------------------
# corpus


def test_corpus_is_deterministic_and_seeded():
    assert oracle.corpus(0) == oracle.corpus(0)
    assert oracle.corpus(0) != oracle.corpus(1)
    # keys are excluded from repr but not from equality: compare them too
    assert [a.key for s in oracle.corpus_states(0) for a in s.algorithms()] == [a.key for s in oracle.corpus_states(0) for a in s.algorithms()]


@pytest.mark.parametrize("seed", [0, 1, 2, 12345])
def test_corpus_size_families_and_keys(seed):
    states, policies = oracle.corpus_states(seed), oracle.corpus_policies(seed)
    assert len(states) >= 30 and len(policies) >= 30
    assert len(states) + len(policies) >= 60
    assert collections.Counter(s.family for s in states) == {AF_INET: len(states) // 2, AF_INET6: len(states) // 2}
    assert collections.Counter(p.selector.family for p in policies) == {AF_INET: len(policies) // 2, AF_INET6: len(policies) // 2}
    # distinct kernel keys: everything fits into one namespace
    assert len({s.key() for s in states}) == len(states)
    assert len({p.key() for p in policies}) == len(policies)
    # identities used to pair intended and dumped objects
    assert len({oracle.identity(o) for o in states + policies}) == len(states) + len(policies)
    # distinct objects, all expressible by iproute2
    assert len(set(states)) == len(states) and len(set(policies)) == len(policies)
    oracle.batch_text(states + policies)
    # selectors are canonical (host bits clear), as the kernel does not canonicalise them
    for obj in states + policies:
        sel = obj.selector
        if sel is not None:
            assert selector_between(sel.src, sel.dst) == sel._replace(proto=0, sport=0, sport_mask=0, dport=0, dport_mask=0, ifindex=0)


def test_corpus_covers_issue_3():
    states, policies = oracle.corpus_states(0), oracle.corpus_policies(0)

    def sa_has(pred):
        return {s.family for s in states if pred(s)} == {AF_INET, AF_INET6}

    def pol_has(pred):
        return {p.selector.family for p in policies if pred(p)} == {AF_INET, AF_INET6}

    sa_features = {
        "tunnel": lambda s: s.mode == MODE_TUNNEL,
        "transport": lambda s: s.mode == MODE_TRANSPORT,
        "reqid": lambda s: s.reqid != 0,
        "no selector": lambda s: s.selector is None,
        "selector with ports": lambda s: s.selector is not None and s.selector.sport and s.selector.dport,
        "selector with proto": lambda s: s.selector is not None and s.selector.proto,
        "selector of the other family": lambda s: s.selector is not None and s.selector.family != s.family,
        "replay window without ESN": lambda s: s.replay_window and not s.esn,
        "replay window > 32 without ESN": lambda s: s.replay_window > 32 and not s.esn,
        "ESN": lambda s: s.esn and s.replay_window,
        "rfc4106 128-bit": lambda s: s.aead and s.aead.name == "rfc4106(gcm(aes))" and len(s.aead.key) == 20,
        "rfc4106 256-bit": lambda s: s.aead and s.aead.name == "rfc4106(gcm(aes))" and len(s.aead.key) == 36,
        "rfc4106 ICV 96": lambda s: s.aead and s.aead.name == "rfc4106(gcm(aes))" and s.aead.bits == 96,
        "rfc4543 ICV 128": lambda s: s.aead and s.aead.name == "rfc4543(gcm(aes))" and s.aead.bits == 128,
        "hmac(sha256)/128 + cbc(aes)": lambda s: s.auth and s.auth.name == "hmac(sha256)" and s.auth.bits == 128 and s.crypt and s.crypt.name == "cbc(aes)",
        "cbc(aes) 256": lambda s: s.crypt and len(s.crypt.key) == 32,
        "mark with mask": lambda s: s.mark and s.mark.mask != 0xFFFFFFFF,
        "mark full mask": lambda s: s.mark and s.mark.mask == 0xFFFFFFFF,
        "output mark with mask": lambda s: s.output_mark and s.output_mark.mask != 0xFFFFFFFF,
        "output mark full mask": lambda s: s.output_mark and s.output_mark.mask == 0xFFFFFFFF,
        "if_id": lambda s: s.if_id,
        "flags": lambda s: s.flags,
        "flag af-unspec": lambda s: s.flags & 32 and s.selector is None,
        "ESN window 4096": lambda s: s.esn and s.replay_window == 4096,
        "mark 0/0xffffffff": lambda s: s.mark == Mark(0, 0xFFFFFFFF),
        "SPI above 0x7fffffff": lambda s: s.spi > 0x7FFFFFFF,
        "reqid above 0x7fffffff": lambda s: s.reqid > 0x7FFFFFFF,
        "lifetime near u64 max": lambda s: s.lifetime.hard_packet_limit == XFRM_INF - 1,
        "time lifetimes": lambda s: s.lifetime.hard_add_expires_seconds and s.lifetime.soft_add_expires_seconds
        and s.lifetime.hard_use_expires_seconds and s.lifetime.soft_use_expires_seconds,
        "byte/packet lifetimes": lambda s: s.lifetime.soft_byte_limit != XFRM_INF and s.lifetime.hard_byte_limit != XFRM_INF
        and s.lifetime.soft_packet_limit != XFRM_INF and s.lifetime.hard_packet_limit != XFRM_INF,
    }
    pol_features = {
        "dir in": lambda p: p.dir == DIR_IN,
        "dir out": lambda p: p.dir == DIR_OUT,
        "dir fwd": lambda p: p.dir == DIR_FWD,
        "action block": lambda p: p.action == ACTION_BLOCK,
        "0 templates": lambda p: not p.templates,
        "1 template": lambda p: len(p.templates) == 1,
        "2 templates": lambda p: len(p.templates) == 2,
        "level use": lambda p: any(t.optional for t in p.templates),
        "level required": lambda p: any(not t.optional for t in p.templates),
        "template spi": lambda p: any(t.spi for t in p.templates),
        "template transport": lambda p: any(t.mode == MODE_TRANSPORT for t in p.templates),
        "template tunnel": lambda p: any(t.mode == MODE_TUNNEL for t in p.templates),
        "template of the other family": lambda p: any(t.family != p.selector.family for t in p.templates),
        "template proto ah": lambda p: any(t.proto == 51 for t in p.templates),
        "ssh bypass out dport 22": lambda p: p.dir == DIR_OUT and p.selector.proto == 6 and p.selector.dport == 22 and not p.templates,
        "ssh bypass in sport 22": lambda p: p.dir == DIR_IN and p.selector.proto == 6 and p.selector.sport == 22 and not p.templates,
        "ssh bypass in dport 22": lambda p: p.dir == DIR_IN and p.selector.proto == 6 and p.selector.dport == 22 and not p.templates,
        "ssh bypass out sport 22": lambda p: p.dir == DIR_OUT and p.selector.proto == 6 and p.selector.sport == 22 and not p.templates,
        "udp ports": lambda p: p.selector.proto == 17 and p.selector.sport and p.selector.dport,
        "icmp type/code": lambda p: p.selector.proto in (1, 58) and p.selector.sport_mask and p.selector.dport_mask,
        "prefix /0": lambda p: p.selector.prefixlen_s == 0,
        "host prefixes": lambda p: p.selector.prefixlen_d == (32 if p.selector.family == AF_INET else 128),
        "subnet prefixes": lambda p: 0 < p.selector.prefixlen_d < (32 if p.selector.family == AF_INET else 128),
        "priority": lambda p: p.priority,
        "mark with mask": lambda p: p.mark and p.mark.mask != 0xFFFFFFFF,
        "mark 0/0xffffffff": lambda p: p.mark == Mark(0, 0xFFFFFFFF),
        "proto without ports": lambda p: p.selector.proto and not p.selector.sport_mask and not p.selector.dport_mask,
        "priority above 0x7fffffff": lambda p: p.priority > 0x7FFFFFFF,
        "ptype sub": lambda p: p.ptype == POLICY_TYPE_SUB,
        "if_id": lambda p: p.if_id,
        "flags": lambda p: p.flags,
        "dev": lambda p: p.selector.ifindex,
        "time lifetimes": lambda p: p.lifetime.hard_add_expires_seconds and p.lifetime.soft_use_expires_seconds,
        "byte/packet lifetimes": lambda p: p.lifetime.soft_byte_limit != XFRM_INF and p.lifetime.hard_packet_limit != XFRM_INF,
    }
    missing = [name for name, pred in sa_features.items() if not sa_has(pred)]
    missing += ["policy " + name for name, pred in pol_features.items() if not pol_has(pred)]
    assert missing == []


def test_bypass_policies_outrank_every_other_policy():
    policies = oracle.corpus_policies(0)
    bypass = [p for p in policies if p.selector.proto == 6 and 22 in (p.selector.sport, p.selector.dport)]
    assert len(bypass) == 8
    assert max(p.priority for p in bypass) < min(p.priority for p in policies if p not in bypass)


def test_no_level_use_tunnel_template_in_out_policies():
    # the kernel refuses them (EINVAL), see reference 1.5
    for pol in oracle.corpus_policies(0):
        if pol.dir == DIR_OUT:
            assert not any(t.optional and t.mode == MODE_TUNNEL for t in pol.templates)


# ---------------------------------------------------------------------------------------------
# kernel_form and compare


def test_kernel_form_of_no_sa_selector_is_the_zero_selector_of_its_family():
    zero4 = Selector(AF_INET, "0.0.0.0", 0, "0.0.0.0", 0)
    zero6 = Selector(AF_INET6, "::", 0, "::", 0)
    sa6 = _SA._replace(src="2001:db8::1", dst="2001:db8::2")
    assert _SA.selector is None and oracle.kernel_form(_SA) == _SA._replace(selector=zero4)
    assert oracle.kernel_form(sa6) == sa6._replace(selector=zero6)
    assert oracle.kernel_form(_SA._replace(selector=zero4)) == _SA._replace(selector=zero4)
    # flag af-unspec: the kernel leaves the selector at family 0 (no selector)
    unspec = _SA._replace(flags=32)
    assert oracle.kernel_form(unspec) is unspec
    # the other family's zero selector, or a zero selector with a protocol, is a real one
    assert oracle.kernel_form(sa6._replace(selector=zero4)).selector == zero4
    with_proto = zero4._replace(proto=6)
    assert oracle.kernel_form(_SA._replace(selector=with_proto)).selector == with_proto
    assert oracle.kernel_form(_POL) is _POL


def test_parser_reads_sa_selectors_as_printed():
    head = "src %s dst %s\n\tproto esp spi 0x00000100 reqid 0 mode tunnel\n\treplay-window 0 \n" \
           "\taead rfc4106(gcm(aes)) 0x00112233445566778899aabbccddeeff00112233 128\n\tsel src %s dst %s uid 0\n"
    (sa,) = oracle.parse_states(head % ("10.0.0.1", "10.0.0.2", "0.0.0.0/0", "0.0.0.0/0"))
    assert sa.selector == Selector(AF_INET, "0.0.0.0", 0, "0.0.0.0", 0)
    (sa,) = oracle.parse_states(head % ("2001:db8::1", "2001:db8::2", "0.0.0.0/0", "0.0.0.0/0"))
    assert sa.selector == Selector(AF_INET, "0.0.0.0", 0, "0.0.0.0", 0)
    (sa,) = oracle.parse_states(head % ("2001:db8::1", "2001:db8::2", "::/0", "::/0"))
    assert sa.selector == Selector(AF_INET6, "::", 0, "::", 0)
    (sa,) = oracle.parse_states(head % ("10.0.0.1", "10.0.0.2", "0.0.0.0/0", "0.0.0.0/0 proto tcp"))
    assert sa.selector == Selector(AF_INET, "0.0.0.0", 0, "0.0.0.0", 0, proto=6)


def test_compare_names_object_and_field_and_never_prints_keys():
    zero4 = Selector(AF_INET, "0.0.0.0", 0, "0.0.0.0", 0)
    want = _SA._replace(mark=Mark(1, 0xFF))
    got = want._replace(selector=zero4, mark=Mark(1, 0xFFFFFFFF),
                        aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", bytes(20), 128))
    problems = oracle.compare([want], [got], "test dump")
    assert problems == [
        "SA 192.0.2.1->192.0.2.2 spi 0x00000001: XfrmState.aead.key: key differs (expected 20 bytes, got 20, first difference at byte 1) (test dump)",
        "SA 192.0.2.1->192.0.2.2 spi 0x00000001: XfrmState.mark.mask: expected 255, got 4294967295 (0xffffffff) (test dump)",
    ]
    assert KEY20.hex() not in "".join(problems)
    # only the intended side is brought into the kernel's form: a dump that reports no
    # selector where the kernel stores the zero one is a mismatch, not silently accepted
    assert oracle.compare([want], [want._replace(selector=zero4)], "d") == []
    assert [p.split(": ", 1)[1].split(",")[0] for p in oracle.compare([want], [want], "d")] == [
        "XfrmState.selector: expected Selector(family=<AddressFamily.AF_INET: 2>"
    ]


def test_compare_missing_unexpected_and_duplicates():
    other = _POL._replace(priority=5)
    problems = oracle.compare([_POL], [other, other], "dump")
    assert any("two objects with identity" in p for p in problems)
    assert any("policy out 10.0.0.0/8->10.0.0.0/8 prio 0: missing from dump" == p for p in problems)
    assert any("unexpected object in dump" in p for p in problems)
