# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sample keys and the secrecy check that the tests of the keys package share."""

from __future__ import annotations

import re
from typing import List

GCM = "rfc4106(gcm(aes))"
KEY20 = "5d1a7c3e9b0f24688ac1e7d3f05b9a2c61e8d4b7"
KEY20_B = "a83f0c6e2d9b7140f5c3e18a6b2d4f97c0e1a5b3"
KEY36 = "f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0123456789"
KEY16 = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
KEY16_B = "c0ffee11d00d22beef33cafe44babe55"
HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")


def hex_runs(text: str) -> List[str]:
    """Every run of 8+ hex digits in ``text`` (key material, in a keys file)."""
    return [run.lower() for run in HEX_RUN.findall(text)]


def assert_no_key_material(output: str, source_text: str) -> None:
    lowered = output.lower()
    for run in hex_runs(source_text):
        for start in range(0, len(run) - 7):
            assert run[start:start + 8] not in lowered, "key material leaked: %r" % output
