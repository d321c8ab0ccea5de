# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ENOENT on adding an SA is a crypto set-up failure, not a missing SA (seen in the lab)."""

from __future__ import annotations

import errno

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import _reason
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ALGO_AEAD, Algorithm, Operation, Verb, XfrmState,
)


def _sa():
    return XfrmState(src="10.77.0.2", dst="10.77.0.1", spi=0x11BC5CA4, reqid=1,
                     aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", bytes(range(20)), 128))


def test_enoent_on_add_names_the_crypto_set_up():
    # The kernel's answer when the module loader cannot bring in a cipher the SA needs
    # (test_safety_faults.py points kernel.modprobe at /bin/false).
    reason = _reason(Operation(Verb.ADD, _sa()), errno.ENOENT, "Kernel was unable to initialize cryptographic operations")
    assert "could not set up this SA's cryptography" in reason
    assert "Kernel was unable to initialize cryptographic operations" in reason
    assert "no SA with this destination" not in reason
    assert bytes(range(20)).hex() not in reason


def test_enoent_on_delete_still_means_no_such_sa():
    reason = _reason(Operation(Verb.DELETE, _sa()), errno.ENOENT, None)
    assert reason == "no SA with this destination, SPI, protocol and mark exists"
