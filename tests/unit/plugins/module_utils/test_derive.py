# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-pair key derivation. Expected values are computed here by hand with hashlib."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.derive import (
    KeyDerivationError, derive_key, derive_material,
)

MASTER20 = bytes.fromhex("5d1a7c3e9b0f24688ac1e7d3f05b9a2c61e8d4b7")
MASTER32 = bytes(range(32))
MASTER33 = bytes(range(33))
MASTER36 = bytes(range(100, 136))
BOOT_A = "3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
BOOT_B = "b7e8d9c0-1a2b-4c3d-9e4f-5a6b7c8d9e0f"
BOOT_C = "00000000-1111-4222-8333-444444444444"


def test_ipv4_vector_uses_sha256_and_4_byte_addresses() -> None:
    expected = hashlib.sha256(
        MASTER20
        + bytes([10, 0, 0, 1])
        + bytes([10, 0, 0, 2])
        + b"3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
        + b"b7e8d9c0-1a2b-4c3d-9e4f-5a6b7c8d9e0f"
    ).digest()[:20]
    assert derive_key(MASTER20, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B) == expected


def test_ipv6_vector_uses_16_byte_addresses() -> None:
    src = bytes.fromhex("fd000000000000000000000000000001")
    dst = bytes.fromhex("fd000000000000000000000000000002")
    expected = hashlib.sha256(MASTER20 + src + dst + BOOT_A.encode() + BOOT_B.encode()
                              ).digest()[:20]
    assert derive_key(MASTER20, "fd00::1", "fd00::2", BOOT_A, BOOT_B) == expected


def test_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    plain = derive_key(MASTER20, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B)
    assert derive_key(MASTER20, "::ffff:10.0.0.1", "::ffff:a00:2", BOOT_A, BOOT_B) == plain
    assert derive_key(MASTER20, ipaddress.ip_address("10.0.0.1"), "10.0.0.2",
                      BOOT_A, BOOT_B) == plain


def test_32_byte_key_uses_sha256() -> None:
    expected = hashlib.sha256(MASTER32 + b"\xc0\xa8\x01\x01" + b"\xc0\xa8\x01\x02"
                              + BOOT_A.encode() + BOOT_B.encode()).digest()
    assert derive_key(MASTER32, "192.168.1.1", "192.168.1.2", BOOT_A, BOOT_B) == expected


@pytest.mark.parametrize("master", [MASTER33, MASTER36])
def test_longer_keys_use_sha512_cut_to_the_key_length(master: bytes) -> None:
    expected = hashlib.sha512(master + b"\xc0\xa8\x01\x01" + b"\xc0\xa8\x01\x02"
                              + BOOT_A.encode() + BOOT_B.encode()).digest()[:len(master)]
    derived = derive_key(master, "192.168.1.1", "192.168.1.2", BOOT_A, BOOT_B)
    assert derived == expected
    assert len(derived) == len(master)


def test_64_byte_key_is_the_longest() -> None:
    assert len(derive_key(bytes(64), "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B)) == 64
    with pytest.raises(KeyDerivationError, match="65-byte key is too long"):
        derive_key(bytes(65), "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B)


def test_directions_differ_and_the_two_ends_agree() -> None:
    a_to_b = derive_key(MASTER20, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B)
    b_to_a = derive_key(MASTER20, "10.0.0.2", "10.0.0.1", BOOT_B, BOOT_A)
    assert a_to_b != b_to_a
    key = parse_keys_text("3+ rfc4106(gcm(aes)) 0x%s 128" % MASTER20.hex(), "t").current
    # On A: OUT A->B and IN B->A; on B: OUT B->A and IN A->B.
    (a_out,), (a_in,) = (derive_material(key, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B),
                         derive_material(key, "10.0.0.2", "10.0.0.1", BOOT_B, BOOT_A))
    (b_out,), (b_in,) = (derive_material(key, "10.0.0.2", "10.0.0.1", BOOT_B, BOOT_A),
                         derive_material(key, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B))
    assert a_out == a_to_b == b_in
    assert b_out == b_to_a == a_in


def test_a_reboot_changes_the_keys() -> None:
    before = derive_key(MASTER20, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B)
    assert derive_key(MASTER20, "10.0.0.1", "10.0.0.2", BOOT_C, BOOT_B) != before
    assert derive_key(MASTER20, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_C) != before


def test_trailing_newline_of_boot_id_is_ignored() -> None:
    assert (derive_key(MASTER20, "10.0.0.1", "10.0.0.2", BOOT_A + "\n", BOOT_B + "\n")
            == derive_key(MASTER20, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B))


@pytest.mark.parametrize("src_boot,dst_boot,fragment", [
    (BOOT_A[:20], BOOT_B, "boot id of source 10.0.0.1 has 20 characters"),
    (BOOT_A, "", "boot id of destination 10.0.0.2 has 0 characters"),
    (BOOT_A, "\n", "empty: was it gathered"),
    (BOOT_A.upper(), BOOT_B, "boot id of source 10.0.0.1 is not a lowercase"),
    (BOOT_A + "0", BOOT_B, "not a lowercase 36-character UUID"),
    (BOOT_A + "\n\n", BOOT_B, "not a lowercase 36-character UUID"),
    (BOOT_A.replace("-", "x"), BOOT_B, "not a lowercase"),
    (BOOT_A.replace("3f", "zz"), BOOT_B, "not a lowercase"),
    (None, BOOT_B, "must be text"),
])
def test_bad_boot_ids_name_the_node(src_boot: Any, dst_boot: Any, fragment: str) -> None:
    with pytest.raises(KeyDerivationError, match=fragment.replace("(", r"\(")):
        derive_key(MASTER20, "10.0.0.1", "10.0.0.2", src_boot, dst_boot)


def test_bad_address_is_named() -> None:
    with pytest.raises(KeyDerivationError, match="destination address 'node-b'"):
        derive_key(MASTER20, "10.0.0.1", "node-b", BOOT_A, BOOT_B)


def test_empty_master_derives_to_empty_but_still_checks_inputs() -> None:
    assert derive_key(b"", "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B) == b""
    with pytest.raises(KeyDerivationError):
        derive_key(b"", "10.0.0.1", "10.0.0.2", "", BOOT_B)


def test_auth_enc_derives_both_keys_separately() -> None:
    auth = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    enc = bytes.fromhex("c0ffee11d00d22beef33cafe44babe5500112233445566778899aabbccddeeff")
    key = parse_keys_text("4+ hmac(sha256) %s cbc(aes) %s" % (auth.hex(), enc.hex()), "t"
                          ).current
    derived_auth, derived_enc = derive_material(key, "fd00::1", "10.0.0.2", BOOT_A, BOOT_B)
    src = bytes.fromhex("fd000000000000000000000000000001")
    dst = bytes([10, 0, 0, 2])
    tail = src + dst + BOOT_A.encode() + BOOT_B.encode()
    assert derived_auth == hashlib.sha256(auth + tail).digest()[:16]
    assert derived_enc == hashlib.sha256(enc + tail).digest()[:32]
    assert (derived_auth, derived_enc) != key.key_material


def test_null_keys_stay_empty_and_aead_keeps_its_parameters() -> None:
    # Suites that protect nothing only reach the planner from a test rig's keys file.
    null = parse_keys_text('1 digest_null "" cipher_null ""', "t", allow_insecure_suites=True).current
    assert derive_material(null, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B) == (b"", b"")
    aead = parse_keys_text("2+ rfc4543(gcm(aes)) %s 128" % MASTER20.hex(), "t", allow_insecure_suites=True).current
    (derived,) = derive_material(aead, "10.0.0.1", "10.0.0.2", BOOT_A, BOOT_B)
    assert len(derived) == 20 and derived != MASTER20
