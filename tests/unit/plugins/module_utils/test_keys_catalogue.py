# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The algorithm catalogue: every entry usable, unknown names refused."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.catalogue import (
    ALGORITHMS, ROLE_AEAD, ROLE_AUTH, ROLE_ENC, algorithm,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KeysFileError
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.keys_samples import KEY16


@pytest.mark.parametrize("spec", ALGORITHMS, ids=lambda spec: spec.name)
def test_every_algorithm_in_the_table_parses_at_its_nominal_length(spec: Any) -> None:
    material = ("11" * spec.nominal_key_bytes) or '""'
    if spec.role == ROLE_AEAD:
        text = "1+ %s %s 128" % (spec.name, material)
    elif spec.role == ROLE_AUTH:
        text = "1+ %s %s cbc(aes) %s" % (spec.name, material, KEY16)
    else:
        text = "1+ hmac(sha256) %s %s %s" % (KEY16, spec.name, material)
    if spec.insecure:
        with pytest.raises(KeysFileError, match="allow_insecure_suites=true"):
            parse_keys_text(text, "t")
    assert parse_keys_text(text, "t", allow_insecure_suites=bool(spec.insecure)).current.spi == 1
    assert algorithm(spec.name, spec.role) is spec


def test_algorithm_lookup_rejects_unknown_names() -> None:
    with pytest.raises(KeysFileError, match="supported: cbc\\(aes\\)"):
        algorithm("ecb(aes)", ROLE_ENC)
