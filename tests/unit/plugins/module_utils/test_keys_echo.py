# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A key in the wrong field is never echoed (issue 13).

Ansible masks the whole ``content`` option, not a token of it, and a keys file read on the
node is no option at all: a message may quote a token only when it is a known algorithm name
or a short word that cannot be a key; otherwise it names the field and the token's length.
The tests put real keys, in every spelling (hex both cases, ``0x``, base64 standard and
URL-safe, padded or not), into every field that is not a key, in a line and in the option's
list of dicts, and look for any 8 characters of them in the message.
"""

from __future__ import annotations

import base64
from typing import Any, Dict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.catalogue import KNOWN_NAMES
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KeysFileError, shown
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import keys_from_dicts
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.keys_samples import GCM, KEY16, KEY16_B, KEY20
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import key_spellings


def assert_not_echoed(message: str, token: str) -> None:
    for start in range(len(token) - 7):
        assert token[start:start + 8] not in message, "token echoed: %r" % message


# The issue's reproduction: a 32-character base64 key in the AEAD algorithm field.
ISSUE_TOKEN = base64.b64encode(bytes.fromhex("8f3a6d1c14b7e9022c5f0d3e91a84b76c2e05f1a9d3b7c48")).decode()


def test_the_issue_reproduction_names_the_field_and_the_length() -> None:
    assert len(ISSUE_TOKEN) == 32 and "+" in ISSUE_TOKEN
    with pytest.raises(KeysFileError) as caught:
        parse_keys_text("3+ %s %s 128\n" % (ISSUE_TOKEN, KEY20), "option content")
    message = str(caught.value)
    assert message.startswith("option content, line 1: field 2 (AEAD algorithm): invalid AEAD algorithm "
                              "(a 32-character value, not shown as it may be key material)")
    assert_not_echoed(message, ISSUE_TOKEN)
    with pytest.raises(KeysFileError) as from_dict:
        keys_from_dicts([{"spi": 3, "aead": ISSUE_TOKEN, "aead_key": KEY20, "icv_bits": 128}])
    assert str(from_dict.value).startswith("option keys[0].aead: invalid AEAD algorithm (a 32-character value")
    assert_not_echoed(str(from_dict.value), ISSUE_TOKEN)


@pytest.mark.parametrize("token", [
    "rfc9999(foo(aes))", "hmac(sha3)", "ecb(aes)", "gcm(aes)", "gmac(aes)", "test", "3++", "100", "-3", "10.0.0.1",
    "fd00::1",
])
def test_short_words_are_quoted(token: str) -> None:
    assert shown(token) == repr(token)


@pytest.mark.parametrize("token", sorted(KNOWN_NAMES))
def test_known_names_are_quoted_whatever_their_length(token: str) -> None:
    assert shown(token, KNOWN_NAMES) == repr(token)


@pytest.mark.parametrize("token", [
    "deadbeef", "0xdeadbeef", "DEADBEEF00", "abcdefghijklmnopqrstu", "GCM(AES)", "aGVsbG8=", "a/b", "Zm9vYmFy",
    "dgcalgcaadba", "abc_def", "abc-def", "ab12cd",
] + key_spellings(bytes(range(1, 17))) + key_spellings(bytes(range(200, 212))))
def test_anything_that_may_be_a_key_is_not_quoted(token: str) -> None:
    assert shown(token) == "(a %d-character value, not shown as it may be key material)" % len(token)
    assert shown(token, KNOWN_NAMES) == shown(token)


# Every field that is not a key, in both forms: (line template, dict, field named by the dict).
_AEAD_LINE = {"spi": "{token} %s %s 128" % (GCM, KEY20),
              "aead": "1 {token} %s 128" % KEY20,
              "icv_bits": "1 %s %s {token}" % (GCM, KEY20)}
_AUTH_ENC_LINE = {"auth": "1 {token} %s cbc(aes) %s" % (KEY16, KEY16_B),
                  "enc": "1 hmac(sha256) %s {token} %s" % (KEY16, KEY16_B)}
_DICTS: Dict[str, Dict[str, Any]] = {
    "spi": {"spi": "{token}", "aead": GCM, "aead_key": KEY20, "icv_bits": 128},
    "aead": {"spi": 1, "aead": "{token}", "aead_key": KEY20, "icv_bits": 128},
    "icv_bits": {"spi": 1, "aead": GCM, "aead_key": KEY20, "icv_bits": "{token}"},
    "auth": {"spi": 1, "auth": "{token}", "auth_key": KEY16, "enc": "cbc(aes)", "enc_key": KEY16_B},
    "enc": {"spi": 1, "auth": "hmac(sha256)", "auth_key": KEY16, "enc": "{token}", "enc_key": KEY16_B},
    "plus": {"spi": 1, "plus": "{token}", "aead": GCM, "aead_key": KEY20, "icv_bits": 128},
}


def _filled(item: Dict[str, Any], token: str) -> Dict[str, Any]:
    return {name: token if value == "{token}" else value for name, value in item.items()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=8, max_size=64).filter(any), st.data())
def test_a_key_in_any_other_field_is_never_echoed(key_material: bytes, data: Any) -> None:
    token = data.draw(st.sampled_from(key_spellings(key_material)))
    for field_name, template in sorted(dict(_AEAD_LINE, **_AUTH_ENC_LINE).items()):
        for text in (template.format(token=token), template.format(token=token) + "\n" + template.format(token=token)):
            with pytest.raises(KeysFileError) as caught:
                parse_keys_text(text, "/etc/ipsec/keys")
            assert_not_echoed(str(caught.value), token)
    for field_name, item in sorted(_DICTS.items()):
        with pytest.raises(KeysFileError) as caught:
            keys_from_dicts([_filled(item, token)])
        message = str(caught.value)
        assert message.startswith("option keys[0].%s: " % field_name) or message.startswith("option keys[0]: ")
        assert_not_echoed(message, token)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=8, max_size=64).filter(any), st.data())
def test_a_key_as_an_unknown_dict_field_name_is_never_echoed(key_material: bytes, data: Any) -> None:
    token = data.draw(st.sampled_from(key_spellings(key_material)))
    item = {"spi": 1, "aead": GCM, "aead_key": KEY20, "icv_bits": 128, token: "x"}
    with pytest.raises(KeysFileError) as caught:
        keys_from_dicts([item])
    assert "unknown field (a %d-character value" % len(token) in str(caught.value)
    assert_not_echoed(str(caught.value), token)
