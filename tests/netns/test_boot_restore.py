# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot restore file on the host kernel (issue 12): what the boot unit runs, ``ip
-force -batch FILE``, installs exactly the owned policies xfrm_endpoint planned, bypasses,
neighbour discovery, FWD and marks included, and running it again changes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import XfrmKernel
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._planner import boot
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    LocalNode, Peer, PlanOptions, build_desired,
)

KEY = Key(spi=3, form=FORM_AEAD, aead_name="rfc4106(gcm(aes))", aead_key=bytes(range(20)), icv_bits=128)
BOOT = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa"


def _restore(netns: str, path: Path) -> None:
    # As the boot unit runs it, but in the test's namespace.
    subprocess.run(["ip", "-n", netns, "-force", "-batch", str(path)], check=True, capture_output=True)


@pytest.mark.parametrize("options", [
    PlanOptions(),
    PlanOptions(marks="cilium", bypass=[{"proto": "tcp", "port": 22, "networks": ["192.0.2.0/24", "2001:db8::/32"]},
                                        {"proto": "udp", "port": 4500, "side": "client"}]),
    PlanOptions(phase="inbound"),
])
def test_ip_batch_of_the_file_restores_exactly_the_policies(netns_name: str, kernel: XfrmKernel, tmp_path: Path,
                                                            options: PlanOptions) -> None:
    local = LocalNode("a", ("10.0.0.1", "fd00::1"), subnets=("10.9.0.0/24", "fd00:9::/64"), boot_id=BOOT)
    peers = [Peer("p%d" % index, ("10.0.0.%d" % index, "fd00::%d" % index), subnets=("10.%d.0.0/16" % index,),
                  boot_id=BOOT.replace("a", str(index))) for index in range(2, 6)]
    desired = build_desired(local, peers, [KEY], options)
    path = tmp_path / boot.BOOT_POLICIES
    path.write_text(boot.render_boot_policies(desired.policies))
    _restore(netns_name, path)
    dumped = kernel.dump_policies()
    assert sorted(dumped, key=repr) == sorted(desired.policies, key=repr)
    _restore(netns_name, path)
    assert sorted(kernel.dump_policies(), key=repr) == sorted(dumped, key=repr)
    assert kernel.dump_states() == []  # never an SA: keys are derived again after a reboot
