# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering, masked renderings, fingerprints, descriptions and the spellings to mask."""

from __future__ import annotations

import base64
import hashlib

import pytest
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AUTH_ENC, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import (
    all_secrets, describe, fingerprint, key_bits, key_fingerprint, overhead, render_keys_file,
    render_masked_keys_file,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.keys_samples import (
    GCM, KEY16, KEY16_B, KEY20, KEY20_B, KEY36, assert_no_key_material,
)


def test_render_is_canonical() -> None:
    text = "03 %s %s 128\n4 hmac(sha256) %s cbc(aes) %s\n" % (GCM, KEY20.upper(), KEY16, KEY16_B)
    assert render_keys_file(parse_keys_text(text, "t")) == "3 %s 0x%s 128\n4 hmac(sha256) 0x%s cbc(aes) 0x%s\n" % (
        GCM, KEY20, KEY16, KEY16_B)
    aead = parse_keys_text("03 %s %s 128" % (GCM, KEY20.upper()), "t")
    assert render_keys_file(aead) == "3 %s 0x%s 128\n" % (GCM, KEY20)
    legacy = parse_keys_text("hmac(sha256) %s cbc(aes) %s" % (KEY16, KEY16_B), "t")
    assert render_keys_file(legacy) == "1 hmac(sha256) 0x%s cbc(aes) 0x%s\n" % (KEY16, KEY16_B)
    null = parse_keys_text('2+ digest_null 0x cipher_null ""', "t", allow_insecure_suites=True)
    assert render_keys_file(null) == '2+ digest_null "" cipher_null ""\n'


def test_masked_rendering_shows_fingerprints_only() -> None:
    keys_file = parse_keys_text("1 %s %s 128\n2+ %s %s 128\n" % (GCM, KEY20, GCM, KEY20_B), "t")
    masked = render_masked_keys_file(keys_file)
    assert masked == "1 %s %s 128\n2+ %s %s 128\n" % (
        GCM, fingerprint(bytes.fromhex(KEY20)), GCM, fingerprint(bytes.fromhex(KEY20_B)))
    assert_no_key_material(masked, KEY20 + " " + KEY20_B)
    legacy = parse_keys_text("1 hmac(sha256) %s cbc(aes) %s" % (KEY16, KEY16_B), "t")
    assert render_masked_keys_file(legacy) == "1 hmac(sha256) %s cbc(aes) %s\n" % (
        fingerprint(bytes.fromhex(KEY16)), fingerprint(bytes.fromhex(KEY16_B)))
    null = parse_keys_text('1 digest_null "" cipher_null ""', "t", allow_insecure_suites=True)
    assert render_masked_keys_file(null) == '1 digest_null "" cipher_null ""\n'


# --- fingerprints, overhead, sizes, description -----------------------------------


def test_fingerprint_is_a_sha256_prefix() -> None:
    assert fingerprint(b"") == "sha256:e3b0c44298fc"
    raw = bytes.fromhex(KEY20)
    assert fingerprint(raw) == "sha256:" + hashlib.sha256(raw).hexdigest()[:12]
    assert fingerprint(raw) == fingerprint(bytes.fromhex(KEY20.upper()))
    assert fingerprint(raw) != fingerprint(bytes.fromhex(KEY20_B))


def test_auth_enc_fingerprint_is_length_prefixed() -> None:
    auth, enc = bytes.fromhex(KEY16), bytes.fromhex(KEY16_B)
    key = Key(spi=1, form=FORM_AUTH_ENC, auth_name="hmac(sha256)", auth_key=auth,
              enc_name="cbc(aes)", enc_key=enc)
    expected = hashlib.sha256(b"\x00\x10" + auth + enc).hexdigest()[:12]
    assert key_fingerprint(key) == "sha256:" + expected
    shifted = Key(spi=1, form=FORM_AUTH_ENC, auth_name="hmac(sha256)", auth_key=auth + enc[:1],
                  enc_name="cbc(aes)", enc_key=enc[1:])
    assert key_fingerprint(shifted) != key_fingerprint(key)


@pytest.mark.parametrize("icv,expected", [(96, 12), (128, 16), (256, 32)])
def test_aead_overhead_is_icv_bytes(icv: int, expected: int) -> None:
    key = parse_keys_text("1 %s %s %d" % (GCM, KEY20, icv), "t").current
    assert overhead(key) == expected


@pytest.mark.parametrize("auth_hex,expected", [
    (KEY16, 32),            # a 32-hex-character key counts 32, not 16 (Cilium's quirk)
    ("0x" + KEY16, 32),     # the 0x prefix is not counted
    ("ab" * 32, 64),
    ('""', 0),
])
def test_auth_enc_overhead_is_the_hex_length_of_the_auth_key(auth_hex: str,
                                                             expected: int) -> None:
    auth = "digest_null" if auth_hex == '""' else "hmac(sha256)"
    key = parse_keys_text("1 %s %s cbc(aes) %s" % (auth, auth_hex, KEY16), "t",
                          allow_insecure_suites=auth == "digest_null").current
    assert overhead(key) == expected


def test_key_bits_and_description() -> None:
    aead = parse_keys_text("4+ %s %s 128" % (GCM, KEY36), "t").current
    assert key_bits(aead) == 288
    assert describe(aead) == {
        "spi": 4, "form": "aead", "plus_marker": True, "aead": GCM, "icv_bits": 128,
        "key_bits": 288, "overhead": 16, "esp_overhead": 37, "fingerprint": fingerprint(bytes.fromhex(KEY36)),
        "line": 1}
    legacy = parse_keys_text("2 hmac(sha1) %s cbc(aes) %s" % (KEY20, KEY16), "t").current
    summary = describe(legacy)
    assert (summary["auth_key_bits"], summary["enc_key_bits"], summary["key_bits"]) == (
        160, 128, 288)
    assert summary["overhead"] == 40
    assert not any(isinstance(value, (bytes, bytearray)) for value in summary.values())


# --- all_secrets ------------------------------------------------------------------


def test_all_secrets_covers_every_spelling() -> None:
    written = KEY20[:10].upper() + KEY20[10:]
    keys_file = parse_keys_text("1 %s 0x%s 128\n" % (GCM, written), "t")
    secrets = all_secrets(keys_file)
    raw = bytes.fromhex(KEY20)
    spellings = (KEY20, KEY20.upper(), "0x" + KEY20, "0x" + KEY20.upper(), base64.b64encode(raw).decode(),
                 base64.urlsafe_b64encode(raw).decode(), "0x" + written, written)
    # Masked as Ansible masks results: every spelling, also inside a longer string.
    masked = remove_values({"alone": list(spellings), "inside": " ".join("[%s]" % text for text in spellings)},
                           set(secrets))
    for spelling in spellings:
        assert spelling not in repr(masked)
        assert spelling.lower().replace("0x", "") not in repr(masked).lower()
    two = parse_keys_text("1 hmac(sha256) %s cbc(aes) %s" % (KEY16, KEY16_B), "t")
    secrets = all_secrets(two)
    for part in (KEY16, KEY16_B):
        assert part in secrets and part.upper() in secrets
        assert base64.b64encode(bytes.fromhex(part)).decode().rstrip("=") in secrets
    assert len(secrets) == len(set(secrets))
    assert set(all_secrets(two.current)) <= set(secrets)
    assert set(all_secrets([two.current])) == set(all_secrets(two.current))
