# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation: which key may follow which, the next key ID, generated keys."""

from __future__ import annotations

import re
from typing import Any, Dict

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.catalogue import esp_overhead
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import Key, KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.rotation import (
    check_successor, generate_key, generate_key_line, next_spi, overhead_problem,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.keys_samples import GCM, KEY20, KEY20_B, KEY36

HMAC32 = "4a18f285c49b0bc6e17ad1ed8a4d4ac7981d277df814775f81a8fb77dfa39cd1"
CBC16 = "0b0459a00ef7bd52c806608a1d3e7c52"
CTR20 = "5b14a91391a9ef86ff244edf5371f73520cda260"


def test_spi_may_return_once_its_old_line_is_gone() -> None:
    keys_file = parse_keys_text("2+ %s %s 128\n" % (GCM, KEY20_B), "t")
    check_successor(keys_file, parse_keys_text("1+ %s %s 128\n" % (GCM, KEY20), "t").current)


def test_check_successor() -> None:
    keys_file = parse_keys_text("1 %s %s 128\n2 %s %s 128" % (GCM, KEY20, GCM, KEY20_B), "t")
    check_successor(keys_file, parse_keys_text("3+ %s %s 128" % (GCM, KEY20), "t").current)
    with pytest.raises(KeysFileError, match="key rotation: key ID \\(SPI\\) 2 is the same"):
        check_successor(keys_file, parse_keys_text("2 %s %s 128" % (GCM, KEY20), "t").current)
    # Another key length, ICV or form is a valid successor in a file: the overhead rule is the
    # rotation's (overhead_problem), not the file's.
    for line in ("3 %s %s 128" % (GCM, KEY36), "3 %s %s 96" % (GCM, KEY20),
                 "3 hmac(sha256) %s cbc(aes) %s" % (HMAC32, CBC16)):
        check_successor(keys_file, parse_keys_text(line, "t").current)


def _key(line: str) -> Key:
    return parse_keys_text(line, "t").current


@pytest.mark.parametrize("line, overhead", [
    # header 8 + IV + padding (alignment - 1) + trailer 2 + ICV
    ("3 %s %s 128" % (GCM, KEY20), 8 + 8 + 3 + 2 + 16),
    ("3 %s %s 128" % (GCM, KEY36), 8 + 8 + 3 + 2 + 16),
    ("3 %s %s 96" % (GCM, KEY20), 8 + 8 + 3 + 2 + 12),
    ("3 rfc7539esp(chacha20,poly1305) %s 128" % KEY36, 8 + 8 + 3 + 2 + 16),
    ("3 hmac(sha256) %s cbc(aes) %s" % (HMAC32, CBC16), 8 + 16 + 15 + 2 + 16),
    ("3 hmac(sha1) %s cbc(aes) %s" % (HMAC32[:40], CBC16), 8 + 16 + 15 + 2 + 12),
    ("3 hmac(sha512) %s rfc3686(ctr(aes)) %s" % (HMAC32 * 2, CTR20), 8 + 8 + 3 + 2 + 32),
])
def test_esp_overhead_counts_the_algorithms_not_the_key_length(line: str, overhead: int) -> None:
    assert esp_overhead(_key(line)) == overhead


def test_a_rotation_may_not_add_overhead_unless_allowed() -> None:
    gcm128 = _key("1 %s %s 128" % (GCM, KEY20))
    gcm256 = _key("2 %s %s 128" % (GCM, KEY36))
    cbc_sha256 = _key("2 hmac(sha256) %s cbc(aes) %s" % (HMAC32, CBC16))
    gcm96 = _key("2 %s %s 96" % (GCM, KEY20))
    assert overhead_problem(gcm128, gcm256) is None, "AES-128-GCM to AES-256-GCM adds nothing"
    assert overhead_problem(_key("1 hmac(sha256) %s cbc(aes) %s" % (HMAC32, CBC16)), gcm256) is None
    assert overhead_problem(gcm128, gcm96) is None, "a shorter ICV takes bytes away"
    problem = overhead_problem(gcm128, cbc_sha256)
    assert problem is not None
    assert "key ID 2 adds up to 57 bytes" in problem and "the 37 of key ID 1" in problem
    assert "by 20 bytes" in problem and "allow_larger_overhead" in problem
    assert overhead_problem(gcm96, gcm128) is not None, "a longer ICV adds bytes"


@pytest.mark.parametrize("spi,expected", [(1, 2), (7, 8), (14, 15), (15, 1)])
def test_next_spi_wraps_after_15(spi: int, expected: int) -> None:
    assert next_spi(spi) == expected


@pytest.mark.parametrize("spi", [0, 16, -1, True, "3"])
def test_next_spi_rejects_non_spis(spi: Any) -> None:
    with pytest.raises(KeysFileError):
        next_spi(spi)


def test_generate_key_line_is_fresh_and_parses() -> None:
    line = generate_key_line(3)
    assert re.fullmatch(r"3\+ rfc4106\(gcm\(aes\)\) 0x[0-9a-f]{40} 128", line)
    assert generate_key_line(3) != line
    assert parse_keys_text(line, "t").current.spi == 3
    long_line = generate_key_line(15, key_bytes=36, icv=96)
    assert len(parse_keys_text(long_line, "t").current.aead_key or b"") == 36
    chacha = generate_key(2, aead="rfc7539esp(chacha20,poly1305)", key_bytes=36)
    assert chacha.icv_bits == 128 and len(chacha.aead_key or b"") == 36


@pytest.mark.parametrize("arguments,fragment", [
    ({"spi": 0}, "0 is not allowed"),
    ({"spi": 3, "key_bytes": 16}, "key_bytes for rfc4106(gcm(aes)) must be 20, 28 or 36"),
    ({"spi": 3, "icv": 64}, "got 64"),
    ({"spi": 3, "aead": "rfc7539esp(chacha20,poly1305)", "key_bytes": 36, "icv": 96},
     "kernel does not implement ICV 96"),
    ({"spi": 3, "aead": "rfc4543(gcm(aes))"}, "is GMAC, it authenticates but does not encrypt"),
    ({"spi": 3, "aead": "gcm(aes)"}, "did you mean"),
])
def test_generate_key_line_rejects_bad_arguments(arguments: Dict[str, Any],
                                                 fragment: str) -> None:
    with pytest.raises(KeysFileError, match=re.escape(fragment)):
        generate_key_line(**arguments)
