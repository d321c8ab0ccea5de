# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The algorithms a key may name: the one table of names, key lengths and strengths, and its lookups.

An unknown name gets a message that helps: the supported names of its role, the ESP name of
a bare AEAD (``gcm(aes)`` is ``rfc4106(gcm(aes))``), or the role the name belongs to when an
auth+enc line has its two algorithms swapped.

What a key protects is decided here too, once for every input form:

* **Suites that protect nothing** (``insecure``): ``digest_null`` (no integrity: anyone on the
  path alters or forges packets), ``cipher_null`` (no encryption: packets travel readable) and
  ``rfc4543(gcm(aes))`` (GMAC: integrity only, packets travel readable). Keys naming one are
  refused unless the caller allows them for a test rig (``xfrm_keys`` option
  ``allow_insecure_suites``).
* **Weak key material**: an HMAC key shorter than ``MIN_HMAC_KEY_BYTES`` (a guessable key
  defeats the hash whatever its strength; 16 bytes is the size of the shortest digest in the
  table, MD5's), a cipher key that is not exactly the algorithm's size, and a key whose bytes
  (or whose cipher part, the salt or nonce left out) are all zero.
* **Legacy algorithms** (``legacy``): ``hmac(md5)`` and ``cbc(des3_ede)`` still work, with a
  warning that says why to move on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import (
    FORM_AEAD, MAX_KEY_BYTES, Invalid, Key, KeysFileError, byte_count, choices, shown,
)

# The xfrm_keys option that lets a test rig's keys file name a suite that protects nothing.
ALLOW_INSECURE_OPTION = "allow_insecure_suites"

# The shortest HMAC key accepted: the output size of MD5, the shortest digest in the table
# (RFC 2104 advises keys no shorter than the digest), and Cilium's own test key's length.
MIN_HMAC_KEY_BYTES = 16

ROLE_AEAD = "aead"
ROLE_AUTH = "auth"
ROLE_ENC = "enc"

AEAD_NAME_PREFIX = "rfc"


@dataclass(frozen=True)
class AlgorithmSpec:
    """What this collection knows about one XFRM algorithm name.

    ``key_bytes`` lists the accepted key lengths; ``None`` means any length from
    ``MIN_HMAC_KEY_BYTES`` to ``MAX_KEY_BYTES`` (HMAC). ``nominal_key_bytes`` is the length to
    generate. ``kernel_icv_bits`` (AEAD) are the ICV lengths the kernel implements;
    ``kernel_default_trunc_bits`` (auth) is the truncation the kernel applies when an SA
    is added with XFRMA_ALG_AUTH (no explicit length), which is how Cilium adds them.
    ``salt_bytes`` is the tail of the key that is a salt (or, ``salt_name``, a nonce), not
    cipher key.
    ``insecure`` says why a key of this algorithm protects nothing (empty: it protects);
    ``legacy`` why the algorithm is still accepted but should be replaced (empty: it is not
    legacy).
    What the algorithm adds to each ESP packet (``esp_overhead``): ``esp_iv_bytes``, the IV
    sent in each packet (AEAD and encryption); ``esp_block_bytes``, the block the payload is
    padded to (1 for stream modes; ESP itself aligns to 4); ``esp_icv_bits`` (auth), the
    integrity check value as this collection installs it (XFRMA_ALG_AUTH_TRUNC; an AEAD key's
    ICV is on its line).
    """

    name: str
    role: str
    key_bytes: Optional[Tuple[int, ...]]
    nominal_key_bytes: int
    key_layout: str
    kernel_icv_bits: Tuple[int, ...] = ()
    kernel_default_trunc_bits: int = 0
    salt_bytes: int = 0
    salt_name: str = "salt"
    insecure: str = ""
    legacy: str = ""
    esp_iv_bytes: int = 0
    esp_block_bytes: int = 1
    esp_icv_bits: int = 0


_READABLE = "packets travel readable to anyone on the path"
_FORGEABLE = "anyone on the path can alter or forge packets"
_LEGACY_ADVICE = "rotate to rfc4106(gcm(aes))"

ALGORITHMS: Tuple[AlgorithmSpec, ...] = (
    AlgorithmSpec("rfc4106(gcm(aes))", ROLE_AEAD, (20, 28, 36), 20,
                  "AES-128/192/256 key + 4-byte salt", kernel_icv_bits=(64, 96, 128), salt_bytes=4,
                  esp_iv_bytes=8),
    AlgorithmSpec("rfc4543(gcm(aes))", ROLE_AEAD, (20, 28, 36), 20,
                  "AES-128/192/256 key + 4-byte salt", kernel_icv_bits=(128,), salt_bytes=4, esp_iv_bytes=8,
                  insecure="rfc4543(gcm(aes)) is GMAC, it authenticates but does not encrypt (%s)" % _READABLE),
    AlgorithmSpec("rfc4309(ccm(aes))", ROLE_AEAD, (19, 27, 35), 19,
                  "AES-128/192/256 key + 3-byte salt", kernel_icv_bits=(64, 96, 128), salt_bytes=3,
                  esp_iv_bytes=8),
    AlgorithmSpec("rfc7539esp(chacha20,poly1305)", ROLE_AEAD, (36,), 36,
                  "ChaCha20 key + 4-byte salt", kernel_icv_bits=(128,), salt_bytes=4, esp_iv_bytes=8),
    AlgorithmSpec("hmac(md5)", ROLE_AUTH, None, 16, "HMAC key", kernel_default_trunc_bits=96, esp_icv_bits=96,
                  legacy="hmac(md5) is a legacy algorithm: MD5 is broken as a hash and HMAC-MD5 keeps no "
                  "safety margin; " + _LEGACY_ADVICE),
    AlgorithmSpec("hmac(sha1)", ROLE_AUTH, None, 20, "HMAC key", kernel_default_trunc_bits=96, esp_icv_bits=96),
    # RFC 4868: HMAC-SHA-256 in ESP is truncated to 128 bits (the kernel's 96 is a Linux default).
    AlgorithmSpec("hmac(sha256)", ROLE_AUTH, None, 32, "HMAC key", kernel_default_trunc_bits=96, esp_icv_bits=128),
    AlgorithmSpec("hmac(sha384)", ROLE_AUTH, None, 48, "HMAC key", kernel_default_trunc_bits=192, esp_icv_bits=192),
    AlgorithmSpec("hmac(sha512)", ROLE_AUTH, None, 64, "HMAC key", kernel_default_trunc_bits=256, esp_icv_bits=256),
    AlgorithmSpec("xcbc(aes)", ROLE_AUTH, (16,), 16, "AES-128 key", kernel_default_trunc_bits=96, esp_icv_bits=96),
    AlgorithmSpec("digest_null", ROLE_AUTH, (0,), 0, 'no key: write ""',
                  insecure="digest_null authenticates nothing (%s)" % _FORGEABLE),
    AlgorithmSpec("cbc(aes)", ROLE_ENC, (16, 24, 32), 16, "AES-128/192/256 key", esp_iv_bytes=16,
                  esp_block_bytes=16),
    AlgorithmSpec("rfc3686(ctr(aes))", ROLE_ENC, (20, 28, 36), 20,
                  "AES-128/192/256 key + 4-byte nonce", salt_bytes=4, salt_name="nonce", esp_iv_bytes=8),
    AlgorithmSpec("cbc(des3_ede)", ROLE_ENC, (24,), 24, "three DES keys", esp_iv_bytes=8, esp_block_bytes=8,
                  legacy="cbc(des3_ede) is a legacy algorithm: its 64-bit blocks collide after a few "
                  "gigabytes under one key (Sweet32); " + _LEGACY_ADVICE),
    AlgorithmSpec("cipher_null", ROLE_ENC, (0,), 0, 'no key: write ""',
                  insecure="cipher_null encrypts nothing (%s)" % _READABLE),
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
    "chacha20poly1305": "rfc7539esp(chacha20,poly1305)",
    "rfc7539(chacha20,poly1305)": "rfc7539esp(chacha20,poly1305)",
}
# Names a message may always quote: the supported ones and the hints' mistaken ones.
KNOWN_NAMES = frozenset([spec.name for spec in ALGORITHMS] + list(_AEAD_NAME_HINTS) + ["gmac(aes)"])


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
    supported = ", ".join(name for name, spec in table.items() if not spec.insecure)
    title = _ROLE_TITLES[role]
    if role == ROLE_AEAD and not name.startswith(AEAD_NAME_PREFIX):
        hint = _AEAD_NAME_HINTS.get(name)
        advice = " (did you mean %s?)" % hint if hint else ""
        raise Invalid("invalid AEAD algorithm %s: ESP AEAD names start with %r%s; supported: %s"
                      % (shown(name, KNOWN_NAMES), AEAD_NAME_PREFIX, advice, supported))
    if role != ROLE_AEAD and name in ALGORITHMS_BY_ROLE[ROLE_AEAD]:
        raise Invalid("%s is an AEAD algorithm, not an %s algorithm; an AEAD line is "
                      "'SPI AEAD-ALGO KEY ICV-BITS'" % (name, title))
    other_role = _OTHER_ROLE_OF_AUTH_ENC.get(role)
    if other_role is not None and name in ALGORITHMS_BY_ROLE[other_role]:
        raise Invalid("%s is an %s algorithm, not an %s algorithm (auth+enc lines are "
                      "'SPI AUTH-ALGO KEY ENC-ALGO KEY')"
                      % (name, _ROLE_TITLES[other_role], title))
    kind = "unsupported" if role == ROLE_AEAD else "unknown"
    raise Invalid("%s %s algorithm %s; supported: %s" % (kind, title, shown(name, KNOWN_NAMES), supported))


def is_algorithm_name(token: str) -> bool:
    """Whether ``token`` is a supported name of any role."""
    return any(token in table for table in ALGORITHMS_BY_ROLE.values())


def check_key_length(spec: AlgorithmSpec, key_material: bytes) -> None:
    """``Invalid`` unless the key has a length ``spec`` accepts."""
    length = len(key_material)
    if spec.key_bytes is None:
        if MIN_HMAC_KEY_BYTES <= length <= MAX_KEY_BYTES:
            return
        wanted = "%d to %d bytes" % (MIN_HMAC_KEY_BYTES, MAX_KEY_BYTES)
        if length < MIN_HMAC_KEY_BYTES:
            raise Invalid("key too short for %s: the key must be %s (%s), a shorter one can be guessed "
                          "whatever the hash; this one is %s" % (spec.name, wanted, spec.key_layout,
                                                                 byte_count(length)))
    else:
        if length in spec.key_bytes:
            return
        wanted = choices(spec.key_bytes) + " bytes"
        if spec.key_bytes == (0,):
            wanted = 'empty (write "")'
    raise Invalid("wrong key length for %s: the key must be %s (%s); this one is %s"
                  % (spec.name, wanted, spec.key_layout, byte_count(length)))


def check_key_material(spec: AlgorithmSpec, key_material: bytes) -> None:
    """``Invalid`` when a key of the right length is no secret: all its bytes, or all the
    bytes of its cipher part (the salt or nonce left out), are zero."""
    if not key_material:
        return
    if not any(key_material):
        raise Invalid("the key for %s is all zero bytes: that is no secret; use random bytes" % spec.name)
    cipher_part = key_material[:len(key_material) - spec.salt_bytes]
    if spec.salt_bytes and not any(cipher_part):
        raise Invalid("the key for %s is zero bytes except its %d-byte %s: the cipher key is no secret; use "
                      "random bytes" % (spec.name, spec.salt_bytes, spec.salt_name))


def insecurity_of(specs: Sequence[AlgorithmSpec]) -> str:
    """Why a key naming ``specs`` protects nothing ("" when it protects)."""
    return " and ".join(spec.insecure for spec in specs if spec.insecure)


def insecure_refusal(why: str) -> str:
    """The reason a key that protects nothing is refused."""
    return ("%s; refused: such a key is for test rigs only, netsec.ipsec.xfrm_keys accepts it with %s=true "
            "and no other part of netsec.ipsec uses it" % (why, ALLOW_INSECURE_OPTION))


def insecure_allowed(why: str) -> str:
    """The warning for a key that protects nothing, accepted on a test rig's request."""
    return ("%s; accepted because %s is true: use this key on a test rig only (xfrm_endpoint refuses it)"
            % (why, ALLOW_INSECURE_OPTION))


# ESP's own bytes in every packet (RFC 4303): SPI and sequence number before the IV; pad
# length and next header after the padding. The payload and those two bytes are padded to
# the cipher's block, and to at least 4 bytes.
ESP_HEADER_BYTES = 8
ESP_TRAILER_BYTES = 2
ESP_MIN_ALIGNMENT = 4


def esp_overhead(key: Key) -> int:
    """The most bytes ESP adds to a packet protected with ``key`` (the outer IP header of
    tunnel mode aside, which is the same for every key): header, IV, the worst padding,
    trailer and ICV. It depends on the algorithms and the ICV, not on the key's length:
    AES-128-GCM and AES-256-GCM with a 128-bit ICV both add 37 bytes."""
    if key.form == FORM_AEAD:
        cipher = ALGORITHMS_BY_ROLE[ROLE_AEAD][key.aead_name or ""]
        icv_bits = key.icv_bits or 0
    else:
        cipher = ALGORITHMS_BY_ROLE[ROLE_ENC][key.enc_name or ""]
        icv_bits = ALGORITHMS_BY_ROLE[ROLE_AUTH][key.auth_name or ""].esp_icv_bits
    alignment = max(cipher.esp_block_bytes, ESP_MIN_ALIGNMENT)
    return ESP_HEADER_BYTES + cipher.esp_iv_bytes + alignment - 1 + ESP_TRAILER_BYTES + icv_bits // 8
