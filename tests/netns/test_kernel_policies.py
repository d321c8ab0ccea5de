# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel adapter against the host kernel, in throwaway network namespaces.

The host kernel has XFRM policies but no ESP: policies are exercised fully; SAs only
through larval SAs (ALLOCSPI) and through the errors a kernel without ESP gives, which
are themselves part of the contract (a missing algorithm or protocol is reported as such).
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time
from typing import List

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import XfrmKernel, XfrmKernelError
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C, xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ACTION_BLOCK, ALGO_AEAD, ALGO_AUTH, ALGO_CRYPT, DIR_FWD, DIR_IN, DIR_OUT, MODE_TRANSPORT, MODE_TUNNEL,
    Algorithm, Lifetime, Mark, Operation, Template, Verb, XfrmPolicy, XfrmState, selector_between,
)
from ansible_collections.netsec.ipsec.tests.netns.conftest import NETNS_PREFIX, ip_xfrm, policy_indexes


def _tunnel(src: str, dst: str, reqid: int = 1, optional: bool = False) -> Template:
    return Template(src=src, dst=dst, reqid=reqid, mode=MODE_TUNNEL, optional=optional)


def _out(dst_net: str, peer: str, **kwargs: object) -> XfrmPolicy:
    return XfrmPolicy(
        selector=selector_between("0.0.0.0/0" if ":" not in dst_net else "::/0", dst_net),
        dir=DIR_OUT,
        priority=kwargs.pop("priority", 1000),  # type: ignore[arg-type]
        templates=(_tunnel("192.0.2.1" if ":" not in peer else "2001:db8::1", peer),),
        **kwargs,  # type: ignore[arg-type]
    )


def _varied_policies() -> List[XfrmPolicy]:
    return [
        _out("10.1.0.0/24", "192.0.2.2"),
        _out("10.2.0.0/24", "192.0.2.3", mark=Mark(0xE00, 0xF00)),
        _out("2001:db8:1::/64", "2001:db8::2", if_id=7),
        XfrmPolicy(  # IN at "use" level, sub policy type
            selector=selector_between("10.3.0.0/16", "0.0.0.0/0"),
            dir=DIR_IN,
            priority=1000,
            ptype=1,
            templates=(_tunnel("192.0.2.4", "192.0.2.1", reqid=9, optional=True),),
        ),
        XfrmPolicy(  # FWD with an IPv6 tunnel carrying IPv4 traffic
            selector=selector_between("10.4.0.0/16", "0.0.0.0/0"),
            dir=DIR_FWD,
            priority=1000,
            templates=(_tunnel("2001:db8::4", "2001:db8::1", reqid=4, optional=True),),
        ),
        XfrmPolicy(  # SSH bypass, both port directions, no template
            selector=selector_between("0.0.0.0/0", "0.0.0.0/0", proto=6, dport=22),
            dir=DIR_OUT,
            priority=10,
        ),
        XfrmPolicy(
            selector=selector_between("::/0", "::/0", proto=6, sport=22),
            dir=DIR_OUT,
            priority=10,
        ),
        XfrmPolicy(  # default drop below the encrypt policy
            selector=selector_between("0.0.0.0/0", "10.1.0.0/24"),
            dir=DIR_OUT,
            priority=2000,
            action=ACTION_BLOCK,
            mark=Mark(1, 1),
        ),
        XfrmPolicy(  # transport mode, two templates, finite lifetime
            selector=selector_between("192.0.2.7/32", "192.0.2.8/32", proto=17),
            dir=DIR_OUT,
            priority=500,
            templates=(
                Template(src="192.0.2.7", dst="192.0.2.8", reqid=5, proto=51, mode=MODE_TRANSPORT),
                Template(src="192.0.2.7", dst="192.0.2.8", reqid=5, mode=MODE_TRANSPORT),
            ),
            lifetime=Lifetime(hard_add_expires_seconds=86400),
        ),
    ]


def _sorted(policies: List[XfrmPolicy]) -> List[XfrmPolicy]:
    return sorted(policies, key=repr)


# ---------------------------------------------------------------------------------------
# Policies


def test_add_then_dump_returns_exactly_the_policies(kernel: XfrmKernel, netns_name: str) -> None:
    wanted = _varied_policies()
    result = kernel.apply([Operation(Verb.ADD, p) for p in wanted])
    assert result.ok and result.error is None and result.failed is None
    assert len(result.applied) == len(wanted)
    dumped = kernel.dump_policies()
    assert _sorted(dumped) == _sorted(wanted)
    indexes = policy_indexes(netns_name)
    assert sorted(indexes, key=repr) == sorted((p.key() for p in wanted), key=repr)
    assert all(indexes.values()), "the kernel assigns every policy an index"


def test_iproute2_reads_what_the_adapter_wrote(kernel: XfrmKernel, netns_name: str) -> None:
    kernel.apply([Operation(Verb.ADD, p) for p in _varied_policies()[:4]])
    text = ip_xfrm(netns_name, "policy")
    assert "dst 10.1.0.0/24" in text and "mark 0xe00/0xf00" in text and "if_id 0x7" in text
    assert "ptype sub" in text and "level use" in text and "reqid 9 mode tunnel" in text


def test_adapter_reads_what_iproute2_wrote(kernel: XfrmKernel, netns_name: str) -> None:
    ip_xfrm(
        netns_name, "policy", "add", "src", "10.9.0.0/16", "dst", "10.8.0.0/16", "proto", "tcp", "dport", "443",
        "dir", "out", "priority", "77", "mark", "0x5", "mask", "0xff", "if_id", "3",
        "tmpl", "src", "192.0.2.1", "dst", "192.0.2.9", "proto", "esp", "reqid", "12", "mode", "tunnel",
    )
    (policy,) = kernel.dump_policies()
    assert policy == XfrmPolicy(
        selector=selector_between("10.9.0.0/16", "10.8.0.0/16", proto=6, dport=443),
        dir=DIR_OUT,
        priority=77,
        mark=Mark(5, 0xFF),
        if_id=3,
        templates=(_tunnel("192.0.2.1", "192.0.2.9", reqid=12),),
    )


def test_update_replaces_in_place_and_inserts_when_missing(kernel: XfrmKernel, netns_name: str) -> None:
    policy = _out("10.1.0.0/24", "192.0.2.2", priority=1000)
    assert kernel.apply([Operation(Verb.ADD, policy)]).ok
    index_before = policy_indexes(netns_name)[policy.key()]
    changed = policy._replace(priority=5, templates=(_tunnel("192.0.2.1", "192.0.2.2", reqid=2),))
    other = _out("10.5.0.0/24", "192.0.2.5")
    result = kernel.apply([Operation(Verb.UPDATE, changed), Operation(Verb.UPDATE, other)])
    assert result.ok
    after = {p.selector.dst: p for p in kernel.dump_policies()}
    assert after["10.1.0.0/24"] == changed and policy_indexes(netns_name)[changed.key()] == index_before
    assert after["10.5.0.0/24"] == other


def test_delete_by_exact_key_leaves_policies_that_differ_in_mark_type_or_if_id(kernel: XfrmKernel) -> None:
    base = _out("10.1.0.0/24", "192.0.2.2")
    variants = [
        base,
        base._replace(mark=Mark(0x200, 0xF00)),
        base._replace(ptype=1),
        base._replace(if_id=11),
    ]
    assert kernel.apply([Operation(Verb.ADD, p) for p in variants]).ok
    for victim in variants:
        assert kernel.apply([Operation(Verb.DELETE, victim)]).ok
        remaining = _sorted(kernel.dump_policies())
        assert victim not in remaining
    assert kernel.dump_policies() == []


def test_delete_works_on_the_object_as_dumped(kernel: XfrmKernel) -> None:
    assert kernel.apply([Operation(Verb.ADD, p) for p in _varied_policies()]).ok
    dumped = kernel.dump_policies()
    result = kernel.apply([Operation(Verb.DELETE, p) for p in dumped])
    assert result.ok, result.error
    assert kernel.dump_policies() == []


def test_existing_policy_gives_eexist_with_a_clear_message(kernel: XfrmKernel) -> None:
    policy = _out("10.1.0.0/24", "192.0.2.2")
    assert kernel.apply([Operation(Verb.ADD, policy)]).ok
    # Priority is not part of the kernel's key: this is the same policy.
    result = kernel.apply([Operation(Verb.ADD, policy._replace(priority=7))])
    error = result.error
    assert error is not None and error.errno == errno.EEXIST and error.index == 0
    assert error.message.startswith("add policy out 0.0.0.0/0 -> 10.1.0.0/24 priority 7 tmpl 192.0.2.1 -> 192.0.2.2")
    assert "already exists" in error.message


def test_missing_policy_gives_enoent(kernel: XfrmKernel) -> None:
    result = kernel.apply([Operation(Verb.DELETE, _out("10.1.0.0/24", "192.0.2.2"))])
    assert result.error is not None and result.error.errno == errno.ENOENT
    assert "no policy with this selector" in result.error.message
    assert result.applied == ()


def test_malformed_policy_gives_einval_with_the_kernel_text(kernel: XfrmKernel) -> None:
    # "level use" (optional) with a tunnel template is refused in OUT policies.
    bad = XfrmPolicy(
        selector=selector_between("0.0.0.0/0", "10.1.0.0/24"),
        dir=DIR_OUT,
        templates=(_tunnel("192.0.2.1", "192.0.2.2", optional=True),),
    )
    result = kernel.apply([Operation(Verb.ADD, bad)])
    error = result.error
    assert error is not None and error.errno == errno.EINVAL
    assert error.extack and "optional template" in error.extack
    assert "rejected it as malformed: " + error.extack in error.message
    not_ipsec = bad._replace(templates=(Template(src="192.0.2.1", dst="192.0.2.2", proto=6),))
    error = kernel.apply([Operation(Verb.ADD, not_ipsec)]).error
    assert error is not None and error.errno == errno.EINVAL, error


def test_apply_stops_at_the_failure_and_later_operations_never_reach_the_kernel(kernel: XfrmKernel) -> None:
    a, b, c = (_out("10.%d.0.0/24" % i, "192.0.2.%d" % i) for i in (1, 2, 3))
    operations = [Operation(Verb.ADD, a), Operation(Verb.ADD, b), Operation(Verb.ADD, a), Operation(Verb.ADD, c),
                  Operation(Verb.DELETE, a)]
    result = kernel.apply(operations)
    assert result.applied == tuple(operations[:2])
    assert result.failed == operations[2]
    assert result.error is not None and result.error.index == 2 and result.error.operation == operations[2]
    assert "(operation 3 of 5)" in result.error.message
    # c was never added and a never deleted: the kernel saw nothing after the failure.
    assert _sorted(kernel.dump_policies()) == _sorted([a, b])


def test_stop_guarantee_holds_deep_into_a_long_run(kernel: XfrmKernel) -> None:
    policies = [_out("10.%d.%d.0/24" % (i // 200, i % 200), "192.0.2.1") for i in range(1500)]
    operations = [Operation(Verb.ADD, p) for p in policies]
    operations.insert(1000, Operation(Verb.DELETE, _out("172.16.0.0/12", "192.0.2.1")))  # ENOENT
    result = kernel.apply(operations)
    assert result.error is not None and result.error.index == 1000 and result.error.errno == errno.ENOENT
    assert len(result.applied) == 1000
    assert len(kernel.dump_policies()) == 1000


def test_an_unencodable_operation_applies_nothing(kernel: XfrmKernel) -> None:
    good = _out("10.1.0.0/24", "192.0.2.2")
    bad = good._replace(templates=(Template(src="::1", dst="192.0.2.2"),))
    result = kernel.apply([Operation(Verb.ADD, good), Operation(Verb.ADD, bad)])
    assert result.applied == () and result.failed == Operation(Verb.ADD, bad)
    assert result.error is not None and result.error.index == 1 and result.error.errno == errno.EINVAL
    assert "cannot be expressed" in result.error.message
    assert kernel.dump_policies() == []


def test_per_socket_policies_are_not_reported(kernel: XfrmKernel, netns_name: str) -> None:
    from pyroute2 import netns as pyroute2_netns

    sock = pyroute2_netns.create_socket(netns_name, socket.AF_INET, socket.SOCK_DGRAM, 0, flags=0)
    try:
        per_socket = XfrmPolicy(selector=selector_between("0.0.0.0/0", "0.0.0.0/0"), dir=DIR_OUT)
        payload = C.encode_newpolicy(per_socket)[: S.USERPOLICY_INFO.size]
        ip_xfrm_policy = 17  # IP_XFRM_POLICY
        sock.setsockopt(socket.IPPROTO_IP, ip_xfrm_policy, payload)
        assert "socket out" in ip_xfrm(netns_name, "policy")  # iproute2 lists it...
        assert kernel.dump_policies() == []  # ...the adapter does not
    finally:
        sock.close()


def test_many_policies_round_trip_quickly(kernel: XfrmKernel) -> None:
    policies = [
        _out("10.%d.%d.0/24" % (i // 250, i % 250), "192.0.%d.%d" % (i // 250, i % 250 + 1))
        for i in range(2000)
    ]
    started = time.perf_counter()
    result = kernel.apply([Operation(Verb.ADD, p) for p in policies])
    applied = time.perf_counter()
    dumped = kernel.dump_policies()
    finished = time.perf_counter()
    assert result.ok and len(dumped) == 2000
    assert _sorted(dumped) == _sorted(policies)
    # Generous bounds (a loaded CI host); the benchmark measures properly.
    assert applied - started < 2.0 and finished - applied < 1.0


# ---------------------------------------------------------------------------------------
# SAs on a kernel without ESP


def _sa(**kwargs: object) -> XfrmState:
    values = dict(src="192.0.2.1", dst="192.0.2.2", spi=0x100, reqid=1, mode=MODE_TUNNEL)
    values.update(kwargs)
    return XfrmState(**values)  # type: ignore[arg-type]


def _esp_available() -> bool:
    with open("/proc/net/protocols") as protocols:
        del protocols
    return os.path.exists("/sys/module/esp4")


@pytest.mark.skipif(_esp_available(), reason="this kernel has ESP: the lab tests cover real SAs")
def test_well_formed_esp_sa_reports_the_missing_protocol(kernel: XfrmKernel) -> None:
    sa = _sa(auth=Algorithm(ALGO_AUTH, "hmac(sha256)", b"a" * 32, 128), crypt=Algorithm(ALGO_CRYPT, "cbc(aes)", b"c" * 16))
    result = kernel.apply([Operation(Verb.ADD, sa)])
    error = result.error
    assert error is not None and error.errno == errno.EPROTONOSUPPORT
    assert "lacks the IPsec protocol" in error.message and "esp4" in error.message
    assert error.extack == "Requested type not found"
    assert "6161" not in error.message and "aaaa" not in error.message


def test_missing_algorithm_is_reported_as_such(kernel: XfrmKernel) -> None:
    if "gcm(aes)" in open("/proc/crypto").read():
        pytest.skip("gcm(aes) is available on this kernel")
    sa = _sa(aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", b"k" * 20, 128))
    error = kernel.apply([Operation(Verb.ADD, sa)]).error
    assert error is not None and error.errno == errno.ENOSYS
    assert "lacks an algorithm" in error.message and "AEAD algorithm not found" in error.message


def test_malformed_sa_gets_einval_and_extack(kernel: XfrmKernel) -> None:
    error = kernel.apply([Operation(Verb.ADD, _sa())]).error  # ESP without any algorithm
    assert error is not None and error.errno == errno.EINVAL
    assert error.extack and "ESP" in error.extack
    assert error.message.startswith("add state 192.0.2.1 -> 192.0.2.2 esp spi 0x00000100")


def test_larval_sas_dump_and_delete(kernel: XfrmKernel) -> None:
    v4 = kernel.allocspi(_sa(spi=0, reqid=5, mark=Mark(0x42, 0xFF)), 0x1000, 0x1FFF)
    v6 = kernel.allocspi(_sa(src="2001:db8::1", dst="2001:db8::2", spi=0, reqid=6), 0x2000, 0x2FFF)
    assert 0x1000 <= v4.spi <= 0x1FFF and 0x2000 <= v6.spi <= 0x2FFF
    dumped = {s.spi: s for s in kernel.dump_states()}
    counters = {s.spi: c for s, c in kernel.dump_state_counters()}
    assert set(dumped) == {v4.spi, v6.spi} == set(counters)
    assert dumped[v4.spi] == v4 and dumped[v4.spi].mark == Mark(0x42, 0xFF) and dumped[v4.spi].reqid == 5
    assert dumped[v6.spi].dst == "2001:db8::2" and dumped[v6.spi].selector is not None
    assert dumped[v6.spi].selector.saddr == "2001:db8::1"
    assert counters[v4.spi].add_time > 0
    result = kernel.apply([Operation(Verb.DELETE, dumped[v4.spi]), Operation(Verb.DELETE, dumped[v6.spi])])
    assert result.ok
    assert kernel.dump_states() == []


def test_missing_sa_gives_esrch_for_delete_and_update(kernel: XfrmKernel) -> None:
    larval = kernel.allocspi(_sa(spi=0, mark=Mark(0x42, 0xFF)), 0x100, 0x1FF)
    # The mark is part of the SA key: without it the SA is not found.
    result = kernel.apply([Operation(Verb.DELETE, larval._replace(mark=None))])
    assert result.error is not None and result.error.errno == errno.ESRCH
    assert "no SA with this destination, SPI, protocol and mark" in result.error.message
    update = kernel.apply([Operation(Verb.UPDATE, _sa(spi=0x4242, crypt=Algorithm(ALGO_CRYPT, "cbc(aes)", b"c" * 16)))])
    assert update.error is not None and update.error.errno in (errno.ESRCH, errno.EPROTONOSUPPORT)
    assert len(kernel.dump_states()) == 1


# ---------------------------------------------------------------------------------------
# Namespaces


def test_namespace_by_proc_path(netns_name: str) -> None:
    holder = subprocess.Popen(["ip", "netns", "exec", netns_name, "sleep", "30"])
    try:
        path = "/proc/%d/ns/net" % holder.pid
        for _attempt in range(100):
            if os.path.exists(path) and os.readlink(path) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.02)
        policy = _out("10.1.0.0/24", "192.0.2.2")
        with XfrmKernel(path) as by_path:
            assert by_path.apply([Operation(Verb.ADD, policy)]).ok
        with XfrmKernel(netns_name) as by_name:
            assert by_name.dump_policies() == [policy]
    finally:
        holder.kill()
        holder.wait()


def test_missing_namespace_is_an_error_and_is_not_created(netns_name: str) -> None:
    missing = NETNS_PREFIX + "missing-" + netns_name[-8:]
    with pytest.raises(XfrmKernelError, match="does not exist"):
        XfrmKernel(missing)
    assert not os.path.exists("/run/netns/" + missing)


def test_closed_adapter_refuses_work(netns_name: str) -> None:
    adapter = XfrmKernel(netns_name)
    adapter.close()
    adapter.close()
    with pytest.raises(XfrmKernelError, match="closed"):
        adapter.dump_policies()


def test_opening_a_namespace_socket_leaves_this_process_where_it_was(netns_name: str) -> None:
    before = os.readlink("/proc/thread-self/ns/net")
    with XfrmKernel(netns_name) as kernel:
        assert os.readlink("/proc/thread-self/ns/net") == before
        assert os.readlink("/proc/self/ns/net") == before
        assert kernel.apply([Operation(Verb.ADD, _out("10.1.0.0/24", "192.0.2.2"))]).ok
    # The policy went to the throwaway namespace, as iproute2 sees it there.
    assert "dst 10.1.0.0/24" in ip_xfrm(netns_name, "policy")
