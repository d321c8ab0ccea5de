# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Differential tests of the policy codec against iproute2 (issue 3), on the host kernel.

Every test works in a throwaway network namespace of its own and only ever runs
``ip -n NS ...`` / ``XfrmKernel(netns=NS)``: the root namespace's XFRM tables are never read
or written. Needs root (CAP_NET_ADMIN) and a kernel with XFRM policies (no ESP needed).

Directions, each on the corpus of several seeds:
  0. oracle self-check: ``ip -batch`` installs the corpus, ``ip -s -d xfrm policy list`` is
     parsed and compared with the intended objects (proves the oracle, not the codec);
  1. ``XfrmKernel.apply`` installs, iproute2 reads back;
  2. iproute2 installs, ``XfrmKernel.dump_policies`` reads back;
  plus updates (UPDPOLICY) and deletes (DELPOLICY of what the adapter dumped) by the
  adapter, checked with iproute2.
"""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.netsec.ipsec.tests.oracle import iproute2 as oracle

SEEDS = (0, 1, 2)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]


@pytest.fixture
def netns():
    with oracle.throwaway_netns("oracle-pol") as name:
        yield name


@pytest.fixture(params=SEEDS, ids=["seed%d" % s for s in SEEDS])
def policies(request):
    return oracle.corpus_policies(request.param)


def _report(problems, dump_text=""):
    if not problems:
        return
    msg = "%d mismatches:\n  %s" % (len(problems), "\n  ".join(problems))
    if dump_text:
        msg += "\n--- iproute2 dump ---\n" + dump_text
    pytest.fail(msg, pytrace=False)


def test_corpus_shape(policies):
    assert len(policies) >= 30
    v6 = sum(1 for p in policies if p.selector.family == oracle.AF_INET6)
    assert 2 * v6 == len(policies)
    assert len({p.key() for p in policies}) == len(policies), "kernel keys must be distinct"


def test_oracle_roundtrip(netns, policies):
    """iproute2 installs, iproute2 dumps, the parser reads back exactly the corpus."""
    oracle.ip_batch(netns, policies)
    got, text = oracle.dump_policies(netns)
    _report(oracle.compare(policies, got, "ip -s -d xfrm policy list"), text)


def test_adapter_apply_then_iproute2_reads(netns, policies):
    """Direction 1: XfrmKernel.apply installs, ``ip -s -d xfrm policy list`` reads back."""
    problems = oracle.apply_with_adapter(netns, policies)
    got, text = oracle.dump_policies(netns)
    problems += oracle.compare(policies, got, "ip -s -d xfrm policy list after XfrmKernel.apply")
    _report(problems, text)


def test_iproute2_installs_then_adapter_dumps(netns, policies):
    """Direction 2: ``ip -batch`` installs, XfrmKernel.dump_policies reads back."""
    oracle.ip_batch(netns, policies)
    with oracle.open_kernel(netns) as kernel:
        got = kernel.dump_policies()
    _report(oracle.compare(policies, got, "XfrmKernel.dump_policies after ip -batch"))


def test_adapter_dump_equals_iproute2_dump(netns, policies):
    """Both readers on one table: every policy the adapter dumps equals the parsed
    iproute2 dump of the same namespace (paired by kernel identity, unique in a table)."""
    oracle.ip_batch(netns, policies)
    parsed, text = oracle.dump_policies(netns)
    with oracle.open_kernel(netns) as kernel:
        dumped = kernel.dump_policies()
    by_identity = {p.key(): p for p in parsed}
    problems = []
    for pol in dumped:
        twin = by_identity.pop(pol.key(), None)
        if twin is None:
            problems.append("%s: not in the iproute2 dump" % oracle.describe(pol))
            continue
        problems += ["%s: %s" % (oracle.describe(twin), d) for d in oracle.field_differences(twin, pol)]
    problems += ["%s: missing from XfrmKernel.dump_policies" % oracle.describe(p) for p in by_identity.values()]
    _report(problems, text)


def test_adapter_update_then_iproute2_reads(netns, policies):
    """UPDPOLICY by the adapter replaces each iproute2-installed policy in place (same
    index), as iproute2 then reports."""
    oracle.ip_batch(netns, policies)
    indexes = oracle.dump_policy_indexes(netns)
    before = {p.priority: indexes[oracle.kernel_form(p).key()] for p in policies}
    variants = [oracle.update_variant(p) for p in policies]
    problems = oracle.apply_with_adapter(netns, variants, "update")
    got, text = oracle.dump_policies(netns)
    problems += oracle.compare(variants, got, "ip -s -d xfrm policy list after XfrmKernel.apply(update)")
    indexes = oracle.dump_policy_indexes(netns)
    after = {p.priority: indexes[p.key()] for p in got}
    problems += [
        "%s: index changed %d -> %s by update" % (oracle.describe(p), before[p.priority], after.get(v.priority))
        for p, v in zip(policies, variants)
        if after.get(v.priority) != before[p.priority]
    ]
    _report(problems, text)


def test_adapter_deletes_what_it_dumped(netns, policies):
    """DELPOLICY keys built from the adapter's own dump remove every policy (marks, if_id,
    sub type and interface selectors included), as iproute2 then reports."""
    oracle.ip_batch(netns, policies)
    with oracle.open_kernel(netns) as kernel:
        dumped = kernel.dump_policies()
    problems = oracle.apply_with_adapter(netns, dumped, "delete")
    left, text = oracle.dump_policies(netns)
    problems += ["%s: still there after XfrmKernel.apply(delete)" % oracle.describe(p) for p in left]
    _report(problems, text)
