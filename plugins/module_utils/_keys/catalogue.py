# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The algorithms a key may name: the one table of names and key lengths, and its lookups.

An unknown name gets a message that helps: the supported names of its role, the ESP name of
a bare AEAD (``gcm(aes)`` is ``rfc4106(gcm(aes))``), or the role the name belongs to when an
auth+enc line has its two algorithms swapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import (
    MAX_KEY_BYTES, Invalid, KeysFileError, byte_count, choices, shown,
)

ROLE_AEAD = "aead"
ROLE_AUTH = "auth"
ROLE_ENC = "enc"

AEAD_NAME_PREFIX = "rfc"


@dataclass(frozen=True)
class AlgorithmSpec:
    """What this collection knows about one XFRM algorithm name.

    ``key_bytes`` lists the accepted key lengths; ``None`` means any length from 1 to
    ``MAX_KEY_BYTES`` (HMAC). ``nominal_key_bytes`` is the length to generate.
    ``kernel_icv_bits`` (AEAD) are the ICV lengths the kernel implements;
    ``kernel_default_trunc_bits`` (auth) is the truncation the kernel applies when an SA
    is added with XFRMA_ALG_AUTH (no explicit length), which is how Cilium adds them.
    """

    name: str
    role: str
    key_bytes: Optional[Tuple[int, ...]]
    nominal_key_bytes: int
    key_layout: str
    kernel_icv_bits: Tuple[int, ...] = ()
    kernel_default_trunc_bits: int = 0


ALGORITHMS: Tuple[AlgorithmSpec, ...] = (
    AlgorithmSpec("rfc4106(gcm(aes))", ROLE_AEAD, (20, 28, 36), 20,
                  "AES-128/192/256 key + 4-byte salt", kernel_icv_bits=(64, 96, 128)),
    AlgorithmSpec("rfc4543(gcm(aes))", ROLE_AEAD, (20, 28, 36), 20,
                  "AES-128/192/256 key + 4-byte salt", kernel_icv_bits=(128,)),
    AlgorithmSpec("rfc4309(ccm(aes))", ROLE_AEAD, (19, 27, 35), 19,
                  "AES-128/192/256 key + 3-byte salt", kernel_icv_bits=(64, 96, 128)),
    AlgorithmSpec("rfc7539esp(chacha20,poly1305)", ROLE_AEAD, (36,), 36,
                  "ChaCha20 key + 4-byte salt", kernel_icv_bits=(128,)),
    AlgorithmSpec("hmac(md5)", ROLE_AUTH, None, 16, "HMAC key", kernel_default_trunc_bits=96),
    AlgorithmSpec("hmac(sha1)", ROLE_AUTH, None, 20, "HMAC key", kernel_default_trunc_bits=96),
    AlgorithmSpec("hmac(sha256)", ROLE_AUTH, None, 32, "HMAC key", kernel_default_trunc_bits=96),
    AlgorithmSpec("hmac(sha384)", ROLE_AUTH, None, 48, "HMAC key", kernel_default_trunc_bits=192),
    AlgorithmSpec("hmac(sha512)", ROLE_AUTH, None, 64, "HMAC key", kernel_default_trunc_bits=256),
    AlgorithmSpec("xcbc(aes)", ROLE_AUTH, (16,), 16, "AES-128 key", kernel_default_trunc_bits=96),
    AlgorithmSpec("digest_null", ROLE_AUTH, (0,), 0, 'no key: write ""'),
    AlgorithmSpec("cbc(aes)", ROLE_ENC, (16, 24, 32), 16, "AES-128/192/256 key"),
    AlgorithmSpec("rfc3686(ctr(aes))", ROLE_ENC, (20, 28, 36), 20,
                  "AES-128/192/256 key + 4-byte nonce"),
    AlgorithmSpec("cbc(des3_ede)", ROLE_ENC, (24,), 24, "three DES keys"),
    AlgorithmSpec("cipher_null", ROLE_ENC, (0,), 0, 'no key: write ""'),
)

ALGORITHMS_BY_ROLE: Dict[str, Dict[str, AlgorithmSpec]] = {
    role: {spec.name: spec for spec in ALGORITHMS if spec.role == role}
    for role in (ROLE_AEAD, ROLE_AUTH, ROLE_ENC)
}
_ROLE_TITLES = {ROLE_AEAD: "AEAD", ROLE_AUTH: "authentication", ROLE_ENC: "encryption"}
# An auth+enc line's two algorithms are often swapped; say so rather than "unknown".
_OTHER_ROLE_OF_AUTH_ENC = {ROLE_AUTH: ROLE_ENC, ROLE_ENC: ROLE_AUTH}
# Names people write when they mean an ESP AEAD (issue cilium#28318).
_AEAD_NAME_HINTS = {
    "gcm(aes)": "rfc4106(gcm(aes))",
    "ccm(aes)": "rfc4309(ccm(aes))",
    "gmac(aes)": "rfc4543(gcm(aes))",
    "chacha20poly1305": "rfc7539esp(chacha20,poly1305)",
    "rfc7539(chacha20,poly1305)": "rfc7539esp(chacha20,poly1305)",
}


def algorithm(name: str, role: str) -> AlgorithmSpec:
    """The spec of a supported algorithm, or ``KeysFileError`` naming the supported ones."""
    try:
        return checked_algorithm(name, role)
    except Invalid as problem:
        raise KeysFileError("algorithm", str(problem)) from None


def checked_algorithm(name: str, role: str) -> AlgorithmSpec:
    """The spec of a supported algorithm, or ``Invalid`` saying why the name is not one."""
    table = ALGORITHMS_BY_ROLE[role]
    spec = table.get(name)
    if spec is not None:
        return spec
    supported = ", ".join(table)
    title = _ROLE_TITLES[role]
    if role == ROLE_AEAD and not name.startswith(AEAD_NAME_PREFIX):
        hint = _AEAD_NAME_HINTS.get(name)
        advice = " (did you mean %s?)" % hint if hint else ""
        raise Invalid("invalid AEAD algorithm %s: ESP AEAD names start with %r%s; supported: %s"
                      % (shown(name), AEAD_NAME_PREFIX, advice, supported))
    if role != ROLE_AEAD and name in ALGORITHMS_BY_ROLE[ROLE_AEAD]:
        raise Invalid("%s is an AEAD algorithm, not an %s algorithm; an AEAD line is "
                      "'SPI AEAD-ALGO KEY ICV-BITS'" % (name, title))
    other_role = _OTHER_ROLE_OF_AUTH_ENC.get(role)
    if other_role is not None and name in ALGORITHMS_BY_ROLE[other_role]:
        raise Invalid("%s is an %s algorithm, not an %s algorithm (auth+enc lines are "
                      "'SPI AUTH-ALGO KEY ENC-ALGO KEY')"
                      % (name, _ROLE_TITLES[other_role], title))
    kind = "unsupported" if role == ROLE_AEAD else "unknown"
    raise Invalid("%s %s algorithm %s; supported: %s" % (kind, title, shown(name), supported))


def is_algorithm_name(token: str) -> bool:
    """Whether ``token`` is a supported name of any role."""
    return any(token in table for table in ALGORITHMS_BY_ROLE.values())


def check_key_length(spec: AlgorithmSpec, key_material: bytes) -> None:
    """``Invalid`` unless the key has a length ``spec`` accepts."""
    length = len(key_material)
    if spec.key_bytes is None:
        if 1 <= length <= MAX_KEY_BYTES:
            return
        wanted = "1 to %d bytes" % MAX_KEY_BYTES
    else:
        if length in spec.key_bytes:
            return
        wanted = choices(spec.key_bytes) + " bytes"
        if spec.key_bytes == (0,):
            wanted = 'empty (write "")'
    raise Invalid("wrong key length for %s: the key must be %s (%s); this one is %s"
                  % (spec.name, wanted, spec.key_layout, byte_count(length)))
