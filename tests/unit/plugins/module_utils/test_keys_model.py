# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The key model: its error type, its invariants, and no key material in repr or str."""

from __future__ import annotations

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, Key, KeysFile, KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import all_secrets, describe
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.keys_samples import (
    GCM, KEY16, KEY16_B, KEY20, assert_no_key_material,
)


def test_error_is_a_value_error_with_one_type() -> None:
    assert issubclass(KeysFileError, ValueError)
    with pytest.raises(ValueError):
        parse_keys_text("junk", "t")


def test_no_key_material_in_repr_or_str() -> None:
    keys_file = parse_keys_text("1 hmac(sha256) %s cbc(aes) %s\n" % (KEY16, KEY16_B), "t")
    aead_file = parse_keys_text("1 %s %s 128\n" % (GCM, KEY20), "t")
    for shown in (repr(keys_file), str(keys_file), repr(keys_file.current),
                  str(aead_file), repr(aead_file.current), str(describe(aead_file.current)),
                  str(describe(keys_file.current))):
        assert_no_key_material(shown, KEY16 + " " + KEY16_B + " " + KEY20)
        for secret in all_secrets(keys_file) + all_secrets(aead_file):
            assert secret not in shown


def test_key_model_rejects_inconsistent_fields() -> None:
    with pytest.raises(KeysFileError):
        Key(spi=1, form=FORM_AEAD, aead_name=GCM, aead_key=b"x" * 20)
    with pytest.raises(KeysFileError):
        Key(spi=1, form="other")
    with pytest.raises(KeysFileError):
        KeysFile(keys=())
