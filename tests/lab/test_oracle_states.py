# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Differential tests of the SA (and policy) codec against iproute2 (issue 3), on a kernel
with ESP: run inside the lab, e.g.

    lab/run --nodes 1 -- pytest -q tests/lab/test_oracle_states.py

Each test creates a network namespace of its own in the guest (``ip netns add``), so it needs
no lab node and never touches any node's or the guest root's XFRM tables. Process spawns
are few (each costs ~11 ms in UML): one ``ip -batch`` to install, one ``ip -s -d ... list`` to
read back.

Directions, for the SA corpus and the policy corpus together, on the corpus of two seeds:
  0. oracle self-check: iproute2 installs, iproute2's dump is parsed back to the corpus;
  1. ``XfrmKernel.apply`` installs, ``ip -s -d xfrm state|policy list`` reads back;
  2. ``ip -batch`` installs, ``XfrmKernel.dump_states|dump_policies`` reads back;
  plus updates (UPDSA / UPDPOLICY) and deletes (of what the adapter dumped) by the adapter,
  checked with iproute2.
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

try:
    from ansible_collections.netsec.ipsec.tests.oracle import iproute2 as oracle
except ImportError:  # run without PYTHONPATH: use the checkout's build/collections
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "collections"))
    from ansible_collections.netsec.ipsec.tests.oracle import iproute2 as oracle

SEEDS = (0, 1)


def _has_esp() -> bool:
    return all(os.path.exists("/sys/module/%s" % m) for m in ("esp4", "esp6"))


def test_the_lab_kernel_can_run_these_tests() -> None:
    assert os.geteuid() == 0, "needs root for network namespaces"
    assert shutil.which("ip") is not None, "needs iproute2"
    assert _has_esp(), "needs a kernel with esp4/esp6 loaded: run inside lab/run"


@pytest.fixture
def netns():
    with oracle.throwaway_netns("oracle-sa") as name:
        yield name


@pytest.fixture(params=SEEDS, ids=["seed%d" % s for s in SEEDS])
def seed(request):
    return request.param


@pytest.fixture
def states(seed):
    return oracle.corpus_states(seed)


@pytest.fixture
def policies(seed):
    return oracle.corpus_policies(seed)


def _report(problems, *dumps):
    if not problems:
        return
    msg = "%d mismatches:\n  %s" % (len(problems), "\n  ".join(problems))
    for text in dumps:
        if text:
            msg += "\n--- iproute2 dump ---\n" + text
    pytest.fail(msg, pytrace=False)


def test_corpus_shape(states):
    assert len(states) >= 30
    v6 = sum(1 for s in states if s.family == oracle.AF_INET6)
    assert 2 * v6 == len(states)
    assert len({s.key() for s in states}) == len(states), "kernel keys must be distinct"


def test_oracle_roundtrip(netns, states, policies):
    """iproute2 installs SAs and policies in one ``ip -batch``; its dumps parse back to the
    corpus (proves the oracle itself)."""
    oracle.ip_batch(netns, list(states) + list(policies))
    got_sa, sa_text = oracle.dump_states(netns)
    got_pol, pol_text = oracle.dump_policies(netns)
    problems = oracle.compare(states, got_sa, "ip -s -d xfrm state list")
    problems += oracle.compare(policies, got_pol, "ip -s -d xfrm policy list")
    _report(problems, sa_text, pol_text)


def test_adapter_apply_then_iproute2_reads(netns, states, policies):
    """Direction 1: XfrmKernel.apply installs, iproute2 reads back."""
    problems = oracle.apply_with_adapter(netns, list(states) + list(policies))
    got_sa, sa_text = oracle.dump_states(netns)
    got_pol, pol_text = oracle.dump_policies(netns)
    problems += oracle.compare(states, got_sa, "ip -s -d xfrm state list after XfrmKernel.apply")
    problems += oracle.compare(policies, got_pol, "ip -s -d xfrm policy list after XfrmKernel.apply")
    _report(problems, sa_text, pol_text)


def test_iproute2_installs_then_adapter_dumps(netns, states, policies):
    """Direction 2: ``ip -batch`` installs, XfrmKernel dumps read back."""
    oracle.ip_batch(netns, list(states) + list(policies))
    with oracle.open_kernel(netns) as kernel:
        got_sa = kernel.dump_states()
        got_pol = kernel.dump_policies()
    problems = oracle.compare(states, got_sa, "XfrmKernel.dump_states after ip -batch")
    problems += oracle.compare(policies, got_pol, "XfrmKernel.dump_policies after ip -batch")
    _report(problems)


def test_adapter_update_then_iproute2_reads(netns, states, policies):
    """UPDSA / UPDPOLICY by the adapter on iproute2-installed objects; iproute2 reads back
    what the kernel took over (see oracle.update_variant)."""
    oracle.ip_batch(netns, list(states) + list(policies))
    new_states = [oracle.update_variant(s) for s in states]
    new_policies = [oracle.update_variant(p) for p in policies]
    problems = oracle.apply_with_adapter(netns, new_states + new_policies, "update")
    got_sa, sa_text = oracle.dump_states(netns)
    got_pol, pol_text = oracle.dump_policies(netns)
    problems += oracle.compare(new_states, got_sa, "ip -s -d xfrm state list after XfrmKernel.apply(update)")
    problems += oracle.compare(new_policies, got_pol, "ip -s -d xfrm policy list after XfrmKernel.apply(update)")
    _report(problems, sa_text, pol_text)


def test_adapter_deletes_what_it_dumped(netns, states, policies):
    """Delete keys built from the adapter's own dumps remove every SA and policy, as
    iproute2 then reports (marks are part of both keys)."""
    oracle.ip_batch(netns, list(states) + list(policies))
    with oracle.open_kernel(netns) as kernel:
        dumped = list(kernel.dump_policies()) + list(kernel.dump_states())
    problems = oracle.apply_with_adapter(netns, dumped, "delete")
    left_sa, sa_text = oracle.dump_states(netns)
    left_pol, pol_text = oracle.dump_policies(netns)
    problems += ["%s: still there after XfrmKernel.apply(delete)" % oracle.describe(o) for o in left_sa + left_pol]
    _report(problems, sa_text, pol_text)
