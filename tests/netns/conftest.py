# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for tests on the host kernel: a throwaway network namespace per test.

Nothing here (or in the tests) ever opens an XFRM socket in the root namespace: every
adapter and every ``ip`` command is pointed at the throwaway namespace.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from typing import Dict, Iterator, List, Tuple

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import XfrmKernel
from ansible_collections.netsec.ipsec.tests.oracle import iproute2 as oracle

NETNS_PREFIX = "nsec-test-"


def _skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root (CAP_NET_ADMIN) for network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2"
    return ""


@pytest.fixture
def netns_name() -> Iterator[str]:
    """A fresh, empty network namespace, deleted afterwards."""
    reason = _skip_reason()
    if reason:
        pytest.fail("kernel tests cannot run here: " + reason)
    name = NETNS_PREFIX + secrets.token_hex(4)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def kernel(netns_name: str) -> Iterator[XfrmKernel]:
    with XfrmKernel(netns_name) as adapter:
        yield adapter


def ip_xfrm(netns: str, *args: str) -> str:
    """``ip -n NETNS xfrm ARGS...`` output (an independent view of the namespace)."""
    command: List[str] = ["ip", "-n", netns, "xfrm"] + list(args)
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def policy_indexes(netns: str) -> Dict[Tuple[object, ...], int]:
    """The kernel's index of each policy in ``netns``, by kernel identity, as iproute2 reports
    it (the model leaves the index out: it is the kernel's, not part of a policy)."""
    return oracle.dump_policy_indexes(netns)
