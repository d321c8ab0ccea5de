# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How kernel refusals are worded (no kernel needed: the wording is pure)."""

from __future__ import annotations

import errno

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import _reason
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ALGO_AEAD, ALGO_AUTH, ALGO_CRYPT, Algorithm, Operation, Verb, XfrmState,
)


def test_missing_aead_names_the_algorithm_and_its_icv():
    """The kernel looks AEAD algorithms up by name and ICV: rfc4543 with ICV 96 is 'not found'
    (seen in the lab), so the message must name the ICV, not only claim a missing module."""
    key = bytes(range(36))
    sa = XfrmState(src="10.77.0.2", dst="10.77.0.1", spi=0x51BC5CA4, reqid=1,
                   aead=Algorithm(ALGO_AEAD, "rfc4543(gcm(aes))", key, 96))
    reason = _reason(Operation(Verb.ADD, sa), errno.ENOSYS, "Requested AEAD algorithm not found")
    assert "rfc4543(gcm(aes)) with a 96-bit ICV" in reason
    assert "Requested AEAD algorithm not found" in reason and "lacks an algorithm" in reason
    assert key.hex() not in reason


def test_missing_auth_or_crypt_keeps_the_generic_wording():
    sa = XfrmState(src="10.77.0.2", dst="10.77.0.1", spi=0x100, reqid=1,
                   auth=Algorithm(ALGO_AUTH, "hmac(sha256)", b"a" * 32, 128),
                   crypt=Algorithm(ALGO_CRYPT, "cbc(aes)", b"c" * 16))
    reason = _reason(Operation(Verb.ADD, sa), errno.ENOSYS, "Requested CRYPT algorithm not found")
    assert reason == ("the kernel lacks an algorithm this SA uses (Requested CRYPT algorithm not found); "
                      "load the crypto module or pick another")
