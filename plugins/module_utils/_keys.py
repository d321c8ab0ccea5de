# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keys file: its grammar, its model, and everything that may safely be shown about it.

A keys file holds one key per line, in Cilium's format. Two body forms exist::

    SPI[+] AEAD-ALGO HEXKEY ICV-BITS                  e.g. 3+ rfc4106(gcm(aes)) 0x0102...14 128
    SPI[+] AUTH-ALGO HEXKEY ENC-ALGO HEXKEY           e.g. 3+ hmac(sha256) 0x... cbc(aes) 0x...

The last line is the current key; earlier lines are older keys still being retired.

Grammar decisions (what this parser accepts, and where it differs from Cilium's reader):

* Fields are separated by exactly one ASCII space. Tabs, leading or trailing spaces and
  two spaces in a row are errors (Cilium splits on single spaces and then misreads or
  crashes on such lines).
* A single newline at the end of the file is fine. Blank lines anywhere (including a
  second newline at the end) and lines of only spaces are errors, as they are for Cilium.
  ``#`` comments are not part of the grammar and are rejected with a message saying so.
* CRLF line endings are rejected with a message asking for LF. (Cilium's line scanner
  would drop the CR silently; rejecting keeps the file format exact and unambiguous.)
* Only printable ASCII is allowed: NUL, other control characters, a byte-order mark,
  non-ASCII characters and bytes that are not UTF-8 are errors naming the line.
* The key ID (SPI) is decimal 1..15 with an optional ``+`` right after it. Leading zeros
  are accepted (``03`` is 3, as Go's ``Atoi`` reads it); a sign (``+3``, ``-3``) is not.
  ``+`` is kept on the model and rendered back, but means nothing to this collection:
  per-pair keys are chosen by the module option, as Cilium >= 1.17 ignores the marker.
* The 2019 form without a key ID (the line starts with an algorithm name) is accepted with
  SPI 1 and a deprecation warning returned on ``KeysFile.warnings``.
* The 2019 per-IP "scope" field (a trailing 5th field on AEAD lines, 6th on auth+enc
  lines) is rejected: Cilium removed it in 2024 and keys here always apply to all peers.
* Keys are hex with an optional lowercase ``0x`` (``0X`` is an error, as in Cilium); upper
  and lower case digits are both fine; ``""`` (and a bare ``0x``) is the empty key.
* Algorithm names come from ``ALGORITHMS`` below, and the key length must suit the
  algorithm. AEAD names must start with ``rfc``. The ICV must be 96, 128 or 256 (Cilium's
  set); when the kernel would refuse that ICV for the algorithm (``rfc4543(gcm(aes))``
  and ``rfc7539esp(chacha20,poly1305)`` only do 128, ``rfc4106(gcm(aes))`` no 256) the key
  is still accepted and a warning says so: the kernel, not this parser, has the last word.
* HMAC keys may have any length from 1 byte up to 64 bytes (the kernel takes any length;
  64 is the most a per-pair key can be derived to, SHA-512 being the longest hash used).
* Consecutive keys must have different SPIs and the same key length (and the same ICV,
  which with the key length decides the MTU). This is stricter than Cilium, which only
  compares its "authentication overhead" value; see ``check_successor``.
* The whole input is limited to ``MAX_FILE_BYTES`` bytes and ``MAX_LINES`` lines.

Secrecy: no message, warning, ``repr`` or ``str`` produced here contains key material.
Fields that fail to parse are quoted only when they cannot be a key (short, no run of hex
digits); otherwise only their length is given.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

FORM_AEAD = "aead"
FORM_AUTH_ENC = "auth_enc"

ROLE_AEAD = "aead"
ROLE_AUTH = "auth"
ROLE_ENC = "enc"

SPI_MIN = 1
SPI_MAX = 15  # the key ID has 4 bits of the packet mark in Cilium's datapath
SPI_OF_2019_FORM = 1  # a line without a key ID meant key ID 1
ICV_BITS_ACCEPTED = (96, 128, 256)

MAX_FILE_BYTES = 64 * 1024
MAX_LINES = 1000
# Per-pair keys are cut from a SHA-512 digest at most, so no key can be longer than this.
MAX_KEY_BYTES = 64

FIELD_SEPARATOR = " "
PLUS_MARKER = "+"
HEX_PREFIX = "0x"
EMPTY_KEY_TOKEN = '""'
AEAD_NAME_PREFIX = "rfc"

FINGERPRINT_PREFIX = "sha256:"
FINGERPRINT_HEX_CHARS = 12

KEYS_FILE_MODE = "0600"  # what xfrm_keys writes unless told otherwise

DEFAULT_AEAD = "rfc4106(gcm(aes))"
DEFAULT_AEAD_KEY_BYTES = 20
DEFAULT_ICV_BITS = 128


class KeysFileError(ValueError):
    """Any rejected keys file, key list or key rotation.

    ``source`` names where the input came from (a path, ``option content``,
    ``option keys[2].aead_key``...), ``line`` is the 1-based line when there is one, and
    ``reason`` says what is wrong. None of them ever holds key material.
    """

    def __init__(self, source: str, reason: str, line: Optional[int] = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        where = source if line is None else "%s, line %d" % (source, line)
        super().__init__("%s: %s" % (where, reason))


class _Invalid(Exception):
    """A reason without a location; the caller adds the source and line."""


# --------------------------------------------------------------------------------------
# Algorithms: the one table of names and key lengths.


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

_ALGORITHMS_BY_ROLE: Dict[str, Dict[str, AlgorithmSpec]] = {
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
        return _algorithm(name, role)
    except _Invalid as problem:
        raise KeysFileError("algorithm", str(problem)) from None


def _algorithm(name: str, role: str) -> AlgorithmSpec:
    table = _ALGORITHMS_BY_ROLE[role]
    spec = table.get(name)
    if spec is not None:
        return spec
    supported = ", ".join(table)
    title = _ROLE_TITLES[role]
    if role == ROLE_AEAD and not name.startswith(AEAD_NAME_PREFIX):
        hint = _AEAD_NAME_HINTS.get(name)
        advice = " (did you mean %s?)" % hint if hint else ""
        raise _Invalid("invalid AEAD algorithm %s: ESP AEAD names start with %r%s; supported: %s"
                       % (_shown(name), AEAD_NAME_PREFIX, advice, supported))
    if role != ROLE_AEAD and name in _ALGORITHMS_BY_ROLE[ROLE_AEAD]:
        raise _Invalid("%s is an AEAD algorithm, not an %s algorithm; an AEAD line is "
                       "'SPI AEAD-ALGO KEY ICV-BITS'" % (name, title))
    other_role = _OTHER_ROLE_OF_AUTH_ENC.get(role)
    if other_role is not None and name in _ALGORITHMS_BY_ROLE[other_role]:
        raise _Invalid("%s is an %s algorithm, not an %s algorithm (auth+enc lines are "
                       "'SPI AUTH-ALGO KEY ENC-ALGO KEY')"
                       % (name, _ROLE_TITLES[other_role], title))
    kind = "unsupported" if role == ROLE_AEAD else "unknown"
    raise _Invalid("%s %s algorithm %s; supported: %s" % (kind, title, _shown(name), supported))


def _check_key_length(spec: AlgorithmSpec, key_material: bytes) -> None:
    length = len(key_material)
    if spec.key_bytes is None:
        if 1 <= length <= MAX_KEY_BYTES:
            return
        wanted = "1 to %d bytes" % MAX_KEY_BYTES
    else:
        if length in spec.key_bytes:
            return
        wanted = _choices(spec.key_bytes) + " bytes"
        if spec.key_bytes == (0,):
            wanted = 'empty (write "")'
    raise _Invalid("wrong key length for %s: the key must be %s (%s); this one is %s"
                   % (spec.name, wanted, spec.key_layout, _byte_count(length)))


def _choices(numbers: Sequence[int]) -> str:
    """'20, 28 or 36'."""
    texts = [str(number) for number in numbers]
    return texts[0] if len(texts) == 1 else "%s or %s" % (", ".join(texts[:-1]), texts[-1])


def _byte_count(length: int) -> str:
    return "1 byte" if length == 1 else "%d bytes" % length


# --------------------------------------------------------------------------------------
# The model.


@dataclass(frozen=True)
class Key:
    """One key of a keys file. Key bytes are kept out of ``repr`` (and so of ``str``).

    ``line`` is where the key was read: the 1-based line of a file, or the 1-based
    position in a list of dicts; 0 for keys made in code. It does not take part in
    equality, so the same key read from two places compares equal.
    """

    spi: int
    form: str
    plus_marker: bool = True
    aead_name: Optional[str] = None
    aead_key: Optional[bytes] = field(default=None, repr=False)
    icv_bits: Optional[int] = None
    auth_name: Optional[str] = None
    auth_key: Optional[bytes] = field(default=None, repr=False)
    enc_name: Optional[str] = None
    enc_key: Optional[bytes] = field(default=None, repr=False)
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.form == FORM_AEAD:
            complete = (self.aead_name is not None and isinstance(self.aead_key, bytes)
                        and isinstance(self.icv_bits, int))
            mixed = self.auth_name is not None or self.enc_name is not None
        elif self.form == FORM_AUTH_ENC:
            complete = (self.auth_name is not None and isinstance(self.auth_key, bytes)
                        and self.enc_name is not None and isinstance(self.enc_key, bytes))
            mixed = self.aead_name is not None or self.icv_bits is not None
        else:
            raise KeysFileError("Key", "form must be %r or %r" % (FORM_AEAD, FORM_AUTH_ENC))
        if not complete or mixed:
            raise KeysFileError("Key", "a %s key needs exactly the %s fields" % (
                self.form, "aead_name, aead_key, icv_bits" if self.form == FORM_AEAD
                else "auth_name, auth_key, enc_name, enc_key"))

    @property
    def key_material(self) -> Tuple[bytes, ...]:
        """The secret parts: (aead_key,) or (auth_key, enc_key)."""
        if self.form == FORM_AEAD:
            return (self.aead_key or b"",)
        return (self.auth_key or b"", self.enc_key or b"")


@dataclass(frozen=True)
class KeysFile:
    """An ordered, non-empty set of keys; the last one is current.

    ``warnings`` are human-readable notes (deprecated syntax, ICVs the kernel refuses).
    ``written_key_tokens`` keeps each key exactly as the input spelled it (for example
    mixed-case hex), so that ``all_secrets`` can mask that spelling too; it is secret and
    kept out of ``repr`` and equality.
    """

    keys: Tuple[Key, ...]
    source: str = field(default="", compare=False)
    warnings: Tuple[str, ...] = field(default=(), compare=False)
    written_key_tokens: Tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeysFileError(self.source or "KeysFile", "holds no keys")

    @property
    def current(self) -> Key:
        return self.keys[-1]

    @property
    def previous(self) -> Optional[Key]:
        """The key the current one replaced, when the file still lists it."""
        return self.keys[-2] if len(self.keys) > 1 else None


# --------------------------------------------------------------------------------------
# Tokens.

_SPI_TOKEN = re.compile(r"([0-9]+)(\+?)")
_DECIMAL = re.compile(r"[0-9]+")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
# A field is quoted in a message only when it cannot be (a piece of) a key.
_ECHO_SAFE = re.compile(r"[A-Za-z0-9(),_.:+/-]{1,40}")
# 8 hex digits (4 bytes) is below any real key and above any algorithm name ("fc4106").
_HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")


def _shown(token: str) -> str:
    """The token quoted, or only its length when it might be key material."""
    if _ECHO_SAFE.fullmatch(token) and not _HEX_RUN.search(token):
        return repr(token)
    return "(a %d-character value, not shown as it may be key material)" % len(token)


def _small_decimal(digits: str) -> int:
    """Value of a decimal string; absurdly long ones (no int() of 5000 digits) give 10**6."""
    significant = digits.lstrip("0")
    if len(significant) > 6:
        return 10 ** 6
    return int(significant or "0")


def _checked_spi(value: int) -> int:
    if SPI_MIN <= value <= SPI_MAX:
        return value
    if value == 0:
        raise _Invalid("key ID (SPI) 0 is not allowed: 0 means 'no key'; use %d-%d"
                       % (SPI_MIN, SPI_MAX))
    shown = str(value) if -10 ** 6 < value < 10 ** 6 else "a number"
    raise _Invalid("key ID (SPI) %s is out of range: it must be %d-%d (it has 4 bits of the "
                   "packet mark)" % (shown, SPI_MIN, SPI_MAX))


def _spi_value(token: str) -> int:
    """The key ID of a decimal field (leading zeros allowed, as Go's Atoi reads them)."""
    return _checked_spi(_small_decimal(token))


def _spi_from_any(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _Invalid("key ID (SPI) must be a number %d-%d" % (SPI_MIN, SPI_MAX))
    if isinstance(value, int):
        return _checked_spi(value)
    if not _DECIMAL.fullmatch(value):
        raise _Invalid("key ID (SPI) must be a number %d-%d; got %s"
                       % (SPI_MIN, SPI_MAX, _shown(value)))
    return _spi_value(value)


def _icv_value(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _Invalid("ICV length must be a number: one of %s" % _icv_choices())
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise _Invalid("ICV length (bits) must be a number: one of %s; got %s"
                           % (_icv_choices(), _shown(value)))
        value = _small_decimal(value)
    if value not in ICV_BITS_ACCEPTED:
        shown = str(value) if -10 ** 6 < value < 10 ** 6 else "a number"
        raise _Invalid("ICV length must be one of %s bits; got %s (it is the ICV size, not "
                       "the key size)" % (_icv_choices(), shown))
    return value


def _icv_choices() -> str:
    return _choices(ICV_BITS_ACCEPTED)


def _decode_key(token: str) -> bytes:
    """Bytes of a key field: ``""``, or hex with an optional lowercase ``0x``."""
    if token == EMPTY_KEY_TOKEN:
        return b""
    if '"' in token:
        raise _Invalid('quotes are only allowed as the empty key ""')
    if token.startswith("0X"):
        raise _Invalid("key starts with '0X': only a lowercase '0x' prefix is accepted")
    digits = token[len(HEX_PREFIX):] if token.startswith(HEX_PREFIX) else token
    if not _HEX_DIGITS.fullmatch(digits):
        raise _Invalid("key is not hexadecimal: only 0-9, a-f and A-F are allowed after an "
                       "optional '0x'")
    if len(digits) % 2:
        raise _Invalid("key has an odd number of hex digits (%d): two digits per byte"
                       % len(digits))
    return bytes.fromhex(digits)


# --------------------------------------------------------------------------------------
# Building keys (shared by the text parser and keys_from_dicts).


def _aead_key(spi: int, plus_marker: bool, name: str, key_material: bytes, icv_bits: int,
              line: int) -> Tuple[Key, List[str]]:
    spec = _algorithm(name, ROLE_AEAD)
    _check_key_length(spec, key_material)
    notes = []
    if icv_bits not in spec.kernel_icv_bits:
        notes.append("the kernel refuses ICV %d for %s (it implements %s bits); the SA will "
                     "fail to install" % (icv_bits, name, _choices(spec.kernel_icv_bits)))
    key = Key(spi=spi, form=FORM_AEAD, plus_marker=plus_marker, aead_name=name,
              aead_key=key_material, icv_bits=icv_bits, line=line)
    return key, notes


def _check_auth_enc(auth_name: str, auth_key: bytes, enc_name: str, enc_key: bytes) -> None:
    _check_key_length(_algorithm(auth_name, ROLE_AUTH), auth_key)
    _check_key_length(_algorithm(enc_name, ROLE_ENC), enc_key)


def _successor_problem(previous: Key, new: Key, earlier_keys: Sequence[Key] = ()) -> Optional[str]:
    """Why ``new`` cannot follow ``previous`` in a keys file, or None.

    ``earlier_keys`` are the keys before ``previous``. Unlike Cilium, which holds one key at
    a time, every key of the file is installed at once (inbound SAs for each), so a key ID
    may appear only once in a file: two keys with one SPI would claim the same SAs.
    """
    where = " (line %d)" % previous.line if previous.line else ""
    if new.spi == previous.spi:
        return ("key ID (SPI) %d is the same as the key before it%s: a new key needs a new "
                "key ID (next: %d)" % (new.spi, where, next_spi(previous.spi)))
    for earlier in earlier_keys:
        if earlier.spi == new.spi:
            return ("key ID (SPI) %d is already used%s: every key in the file needs its own "
                    "key ID (remove the old line before reusing its ID)"
                    % (new.spi, " on line %d" % earlier.line if earlier.line else " by an earlier key"))
    if new.form != previous.form:
        return ("key form changed from %s to %s after the key before it%s: consecutive keys "
                "must keep the key length" % (_form_title(previous.form),
                                              _form_title(new.form), where))
    old_lengths = tuple(len(part) for part in previous.key_material)
    new_lengths = tuple(len(part) for part in new.key_material)
    if old_lengths != new_lengths:
        return ("key length must not change between consecutive keys: the key before it%s "
                "has %s, this one %s (the MTU is sized for it)"
                % (where, _lengths_text(old_lengths), _lengths_text(new_lengths)))
    if new.icv_bits != previous.icv_bits:
        return ("ICV length must not change between consecutive keys: the key before it%s "
                "has %s bits, this one %s (the MTU is sized for it)"
                % (where, previous.icv_bits, new.icv_bits))
    return None


def _form_title(form: str) -> str:
    return "AEAD" if form == FORM_AEAD else "auth+enc"


def _lengths_text(lengths: Tuple[int, ...]) -> str:
    if len(lengths) == 1:
        return _byte_count(lengths[0])
    return "%d+%d bytes (auth key + encryption key)" % lengths


# --------------------------------------------------------------------------------------
# Text parsing.


def parse_keys_text(text: Union[str, bytes], source: str = "keys file") -> KeysFile:
    """Parse a keys file's content; ``source`` names it in messages."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = _decode_bytes(bytes(text), source)
    elif not isinstance(text, str):
        raise KeysFileError(source, "expected text, got %s" % type(text).__name__)
    if len(text) > MAX_FILE_BYTES:
        raise KeysFileError(source, "is larger than %d bytes: not a keys file" % MAX_FILE_BYTES)
    body = text[:-1] if text.endswith("\n") else text
    if not body:
        raise KeysFileError(source, "holds no keys (it is empty)")
    lines = body.split("\n")
    if len(lines) > MAX_LINES:
        raise KeysFileError(source, "has more than %d lines: not a keys file" % MAX_LINES)

    keys: List[Key] = []
    warnings: List[str] = []
    tokens: List[str] = []
    for number, line_text in enumerate(lines, 1):
        try:
            key, notes, key_tokens = _parse_line(line_text, number)
            problem = _successor_problem(keys[-1], key, keys[:-1]) if keys else None
        except _Invalid as invalid:
            raise KeysFileError(source, str(invalid), number) from None
        if problem:
            raise KeysFileError(source, problem, number)
        keys.append(key)
        warnings.extend("%s, line %d: %s" % (source, number, note) for note in notes)
        tokens.extend(key_tokens)
    return KeysFile(tuple(keys), source, tuple(warnings), tuple(tokens))


def _decode_bytes(data: bytes, source: str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise KeysFileError(source, "is larger than %d bytes: not a keys file" % MAX_FILE_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = data.count(b"\n", 0, bad.start) + 1
        raise KeysFileError(source, "is not text: byte 0x%02x is not valid UTF-8 (a binary "
                            "file?)" % data[bad.start], line) from None


def _check_characters(line_text: str) -> None:
    if "\r" in line_text:
        if line_text.index("\r") == len(line_text) - 1:
            raise _Invalid("CRLF (Windows) line ending: the keys file must use LF line "
                           "endings")
        raise _Invalid("carriage return (CR) inside the line")
    for column, char in enumerate(line_text, 1):
        code = ord(char)
        if char == "\t":
            raise _Invalid("tab at column %d: fields are separated by single spaces" % column)
        if code == 0:
            raise _Invalid("NUL byte at column %d: this is binary data, not a keys file"
                           % column)
        if code == 0xFEFF:
            raise _Invalid("byte-order mark (U+FEFF) at column %d: save the file as plain "
                           "ASCII without a BOM" % column)
        if code < 0x20 or code == 0x7F:
            raise _Invalid("control character U+%04X at column %d" % (code, column))
        if code > 0x7E:
            raise _Invalid("non-ASCII character U+%04X at column %d: a keys file is ASCII"
                           % (code, column))


def _check_layout(line_text: str) -> None:
    if not line_text:
        raise _Invalid("empty line: blank lines are not allowed (only one final newline)")
    if not line_text.strip(FIELD_SEPARATOR):
        raise _Invalid("line holds only spaces")
    if line_text.lstrip(FIELD_SEPARATOR).startswith("#"):
        raise _Invalid("'#' comments are not supported: a keys file holds only key lines")
    if FIELD_SEPARATOR + "#" in line_text:
        raise _Invalid("'#' comments are not supported: a keys file holds only key fields")
    if line_text.startswith(FIELD_SEPARATOR):
        raise _Invalid("leading space: the line must start with the key ID")
    if line_text.endswith(FIELD_SEPARATOR):
        raise _Invalid("trailing space at the end of the line")
    if FIELD_SEPARATOR * 2 in line_text:
        raise _Invalid("two spaces in a row: fields are separated by exactly one space")


def _looks_like_algorithm(token: str) -> bool:
    return (token.startswith(AEAD_NAME_PREFIX) or "(" in token
            or any(token in table for table in _ALGORITHMS_BY_ROLE.values()))


_EXPECTED_FORMS = ("expected 'SPI AEAD-ALGO KEY ICV-BITS' or 'SPI AUTH-ALGO KEY ENC-ALGO KEY'")


def _parse_line(line_text: str, number: int) -> Tuple[Key, List[str], List[str]]:
    """One key line: the key, warnings about it, and its key fields as written."""
    _check_characters(line_text)
    _check_layout(line_text)
    fields = line_text.split(FIELD_SEPARATOR)
    notes: List[str] = []

    spi_match = _SPI_TOKEN.fullmatch(fields[0])
    if spi_match:
        spi = _spi_value(spi_match.group(1))
        plus_marker = bool(spi_match.group(2))
        body = fields[1:]
        first_field = 2
    elif _looks_like_algorithm(fields[0]):
        spi = SPI_OF_2019_FORM
        plus_marker = False
        body = fields
        first_field = 1
        notes.append("no key ID (SPI) at the start of the line, so SPI %d is used; this "
                     "2019 form is deprecated (Cilium 1.17 and later reject it): put the key "
                     "ID first, for example '%d+ %s ...'"
                     % (SPI_OF_2019_FORM, SPI_OF_2019_FORM, fields[0]))
    else:
        raise _Invalid("field 1 must be the key ID (SPI), a number %d-%d optionally followed "
                       "by '+'; got %s" % (SPI_MIN, SPI_MAX, _shown(fields[0])))

    # Cilium picks the form by field count: three fields after the key ID are an AEAD
    # line, so "3 gcm(aes) KEY 128" is reported as a bad AEAD name, not a short line.
    names_aead = bool(body) and body[0].startswith(AEAD_NAME_PREFIX)
    if names_aead or (len(body) == 3 and body[0] not in _ALGORITHMS_BY_ROLE[ROLE_AUTH]):
        return _parse_aead_body(body, spi, plus_marker, number, first_field, notes)
    return _parse_auth_enc_body(body, spi, plus_marker, number, first_field, notes)


def _scope_problem(field_number: int) -> _Invalid:
    return _Invalid("field %d is one field too many: the 2019 per-IP key scope is not "
                    "supported (Cilium removed it in 2024); remove it, a key applies to all "
                    "peers" % field_number)


def _parse_aead_body(body: List[str], spi: int, plus_marker: bool, number: int,
                     first_field: int, notes: List[str]) -> Tuple[Key, List[str], List[str]]:
    if len(body) < 3:
        missing = "the key and the ICV length" if len(body) == 1 else "the ICV length"
        raise _Invalid("too few fields: %s missing after the AEAD algorithm; %s"
                       % (missing, _EXPECTED_FORMS))
    if len(body) == 4:
        raise _scope_problem(first_field + 3)
    if len(body) > 4:
        raise _Invalid("too many fields (%d); %s" % (len(body) + first_field - 1, _EXPECTED_FORMS))
    name, key_token, icv_token = body
    _algorithm(name, ROLE_AEAD)
    key_material = _decode_field(key_token, first_field + 1, "AEAD key")
    icv_bits = _icv_value(icv_token)
    key, kernel_notes = _aead_key(spi, plus_marker, name, key_material, icv_bits, number)
    return key, notes + kernel_notes, [key_token]


def _parse_auth_enc_body(body: List[str], spi: int, plus_marker: bool, number: int,
                         first_field: int, notes: List[str]
                         ) -> Tuple[Key, List[str], List[str]]:
    if len(body) < 4:
        raise _Invalid("too few fields (%d); %s" % (len(body) + first_field - 1, _EXPECTED_FORMS))
    if len(body) == 5:
        raise _scope_problem(first_field + 4)
    if len(body) > 5:
        raise _Invalid("too many fields (%d); %s" % (len(body) + first_field - 1, _EXPECTED_FORMS))
    auth_name, auth_token, enc_name, enc_token = body
    _algorithm(auth_name, ROLE_AUTH)
    auth_key = _decode_field(auth_token, first_field + 1, "authentication key")
    _algorithm(enc_name, ROLE_ENC)
    enc_key = _decode_field(enc_token, first_field + 3, "encryption key")
    _check_auth_enc(auth_name, auth_key, enc_name, enc_key)
    key = Key(spi=spi, form=FORM_AUTH_ENC, plus_marker=plus_marker, auth_name=auth_name,
              auth_key=auth_key, enc_name=enc_name, enc_key=enc_key, line=number)
    return key, notes, [auth_token, enc_token]


def _decode_field(token: str, field_number: int, what: str) -> bytes:
    try:
        return _decode_key(token)
    except _Invalid as invalid:
        raise _Invalid("field %d (%s): %s" % (field_number, what, invalid)) from None


# --------------------------------------------------------------------------------------
# Files and option values.


def load_keys_file(path: Union[str, "os.PathLike[str]"]) -> KeysFile:
    """Read and parse a keys file, reading at most ``MAX_FILE_BYTES`` + 1 bytes."""
    return parse_keys_text(read_keys_bytes(path), os.fspath(path))


MISSING_FILE_REASON = "no such file"


def read_keys_bytes(path: Union[str, "os.PathLike[str]"]) -> bytes:
    """The raw content of a keys file, at most ``MAX_FILE_BYTES`` + 1 bytes of it.

    Errors name the path; a missing file raises ``KeysFileError`` with reason "no such file".
    """
    source = os.fspath(path)
    # O_NONBLOCK: opening a FIFO by mistake must fail below, not hang.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(source, flags)
    except FileNotFoundError:
        raise KeysFileError(source, MISSING_FILE_REASON) from None
    except PermissionError:
        raise KeysFileError(source, "permission denied") from None
    except OSError as failure:
        raise KeysFileError(source, "cannot open: %s" % (failure.strerror or failure)) from None
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise KeysFileError(source, "is a directory, not a keys file")
        if not stat.S_ISREG(status.st_mode):
            raise KeysFileError(source, "is not a regular file")
        if status.st_size > MAX_FILE_BYTES:
            raise KeysFileError(source, "is larger than %d bytes: not a keys file"
                                % MAX_FILE_BYTES)
        with os.fdopen(descriptor, "rb") as stream:
            descriptor = -1
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as failure:
        raise KeysFileError(source, "cannot read: %s" % (failure.strerror or failure)) from None
    finally:
        if descriptor >= 0:
            os.close(descriptor)
    return data


def desired_keys(content: Optional[str], keys: Optional[Sequence[Mapping[str, Any]]]
                 ) -> Optional[Tuple[KeysFile, bytes]]:
    """The keys and the exact bytes a keys file should hold, from option ``content`` (a
    newline is added when missing) or option ``keys`` (rendered canonically); None when
    neither is given. Raises ``KeysFileError`` naming the option and line."""
    if content is not None:
        text = content if content.endswith("\n") else content + "\n"
        return parse_keys_text(text, "option content"), text.encode("ascii")
    if keys is not None:
        keys_file = keys_from_dicts(keys, "option keys")
        return keys_file, render_keys_file(keys_file).encode("ascii")
    return None


_DICT_FIELDS_AEAD = ("aead", "aead_key", "icv_bits")
_DICT_FIELDS_AUTH_ENC = ("auth", "auth_key", "enc", "enc_key")
_DICT_FIELDS = ("spi", "plus") + _DICT_FIELDS_AEAD + _DICT_FIELDS_AUTH_ENC


def keys_from_dicts(items: Sequence[Mapping[str, Any]], source: str = "option keys"
                    ) -> KeysFile:
    """Keys given as a list of dicts (a module option), validated like a keys file.

    Each dict has ``spi`` and either ``aead``, ``aead_key``, ``icv_bits`` or ``auth``,
    ``auth_key``, ``enc``, ``enc_key``; optional ``plus`` (default true) is the ``+``
    marker. A field whose value is None counts as absent (Ansible fills unset suboptions
    with None). Key values are hex strings as in a file; ``""`` is the empty key.
    Messages name ``<source>[i].<field>`` with a 0-based ``i``; ``Key.line`` is ``i + 1``.
    """
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise KeysFileError(source, "must be a list of keys")
    if not items:
        raise KeysFileError(source, "holds no keys (the list is empty)")
    if len(items) > MAX_LINES:
        raise KeysFileError(source, "has more than %d keys" % MAX_LINES)
    keys: List[Key] = []
    warnings: List[str] = []
    tokens: List[str] = []
    for index, item in enumerate(items):
        where = "%s[%d]" % (source, index)
        key, notes, key_tokens = _key_from_dict(item, where, index + 1)
        problem = _successor_problem(keys[-1], key, keys[:-1]) if keys else None
        if problem:
            raise KeysFileError(where, problem)
        keys.append(key)
        warnings.extend("%s: %s" % (where, note) for note in notes)
        tokens.extend(key_tokens)
    return KeysFile(tuple(keys), source, tuple(warnings), tuple(tokens))


def _key_from_dict(item: Any, where: str, position: int) -> Tuple[Key, List[str], List[str]]:
    if not isinstance(item, Mapping):
        raise KeysFileError(where, "must be a dict with spi and either aead, aead_key, "
                            "icv_bits or auth, auth_key, enc, enc_key")
    present = {name: value for name, value in item.items() if value is not None}
    for name in present:
        if name not in _DICT_FIELDS:
            shown = _shown(name) if isinstance(name, str) else "of type %s" % type(name).__name__
            raise KeysFileError(where, "unknown field %s; allowed: %s"
                                % (shown, ", ".join(_DICT_FIELDS)))
    aead_given = [name for name in _DICT_FIELDS_AEAD if name in present]
    auth_enc_given = [name for name in _DICT_FIELDS_AUTH_ENC if name in present]
    if aead_given and auth_enc_given:
        raise KeysFileError(where, "mixes AEAD fields (%s) with auth+enc fields (%s): use one "
                            "form" % (", ".join(aead_given), ", ".join(auth_enc_given)))
    if aead_given:
        wanted, form_text = _DICT_FIELDS_AEAD, "an AEAD key needs aead, aead_key and icv_bits"
    elif auth_enc_given:
        wanted, form_text = (_DICT_FIELDS_AUTH_ENC,
                             "an auth+enc key needs auth, auth_key, enc and enc_key")
    else:
        raise KeysFileError(where, "needs either aead, aead_key, icv_bits or auth, auth_key, "
                            "enc, enc_key")
    for name in ("spi",) + wanted:
        if name not in present:
            raise KeysFileError("%s.%s" % (where, name), "is required (%s)" % (
                "every key needs its key ID" if name == "spi" else form_text))

    def checked(name: str, check: Any) -> Any:
        try:
            return check(present[name])
        except _Invalid as invalid:
            raise KeysFileError("%s.%s" % (where, name), str(invalid)) from None

    spi = checked("spi", _spi_from_any)
    plus_marker = checked("plus", _bool_value) if "plus" in present else True
    if aead_given:
        name = checked("aead", _name_value)
        checked("aead", lambda value: _algorithm(value, ROLE_AEAD))
        key_token = checked("aead_key", _key_token_value)
        key_material = checked("aead_key", _decode_dict_key)
        icv_bits = checked("icv_bits", _icv_value)
        try:
            key, notes = _aead_key(spi, plus_marker, name, key_material, icv_bits, position)
        except _Invalid as invalid:
            raise KeysFileError("%s.aead_key" % where, str(invalid)) from None
        return key, notes, [key_token]
    auth_name = checked("auth", _name_value)
    checked("auth", lambda value: _algorithm(value, ROLE_AUTH))
    auth_token = checked("auth_key", _key_token_value)
    auth_key = checked("auth_key", _decode_dict_key)
    enc_name = checked("enc", _name_value)
    checked("enc", lambda value: _algorithm(value, ROLE_ENC))
    enc_token = checked("enc_key", _key_token_value)
    enc_key = checked("enc_key", _decode_dict_key)
    try:
        _check_key_length(_ALGORITHMS_BY_ROLE[ROLE_AUTH][auth_name], auth_key)
    except _Invalid as invalid:
        raise KeysFileError("%s.auth_key" % where, str(invalid)) from None
    try:
        _check_key_length(_ALGORITHMS_BY_ROLE[ROLE_ENC][enc_name], enc_key)
    except _Invalid as invalid:
        raise KeysFileError("%s.enc_key" % where, str(invalid)) from None
    key = Key(spi=spi, form=FORM_AUTH_ENC, plus_marker=plus_marker, auth_name=auth_name,
              auth_key=auth_key, enc_name=enc_name, enc_key=enc_key, line=position)
    return key, [], [auth_token, enc_token]


def _bool_value(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _name_value(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be an algorithm name (a string)")
    return value


def _key_token_value(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a hex string (optionally 0x-prefixed), or \"\" for no key")
    return value


def _decode_dict_key(value: str) -> bytes:
    # An option has no field separators, so a plain empty string is the empty key too.
    return b"" if value == "" else _decode_key(value)


# --------------------------------------------------------------------------------------
# Rendering and safe descriptions.


def _key_text(key_material: bytes) -> str:
    return HEX_PREFIX + key_material.hex() if key_material else EMPTY_KEY_TOKEN


def _line_with(key: Key, key_text: Callable[[bytes], str]) -> str:
    """A key line (no newline) with each key written by ``key_text``."""
    spi_text = "%d%s" % (key.spi, PLUS_MARKER if key.plus_marker else "")
    if key.form == FORM_AEAD:
        fields = [spi_text, key.aead_name or "", key_text(key.aead_key or b""),
                  str(key.icv_bits)]
    else:
        fields = [spi_text, key.auth_name or "", key_text(key.auth_key or b""),
                  key.enc_name or "", key_text(key.enc_key or b"")]
    return FIELD_SEPARATOR.join(fields)


def render_key_line(key: Key) -> str:
    """One canonical key line (no newline): lowercase ``0x`` hex, ``""`` for no key."""
    return _line_with(key, _key_text)


def render_keys_file(keys_file: KeysFile) -> str:
    """The canonical text of a keys file: one line per key, ``+`` kept as it was.

    Keys read without a key ID (2019 form) come out with their SPI written explicitly.
    The result parses back to an equal ``KeysFile``.
    """
    return "".join(render_key_line(key) + "\n" for key in keys_file.keys)


def fingerprint(key_material: bytes) -> str:
    """``sha256:`` + the first 12 hex digits of SHA-256 of the raw key bytes.

    Whoever holds the key can check it: ``xxd -r -p <<<HEX | sha256sum | cut -c1-12``.
    48 bits of a hash say nothing useful about a key of 128 bits or more.
    """
    return FINGERPRINT_PREFIX + hashlib.sha256(key_material).hexdigest()[:FINGERPRINT_HEX_CHARS]


def file_fingerprint(content: bytes) -> str:
    """Fingerprint of a whole keys file's bytes, in the form of ``fingerprint``: enough to
    tell whether a node holds the file the controller would write, without the file."""
    return fingerprint(content)


def key_fingerprint(key: Key) -> str:
    """Fingerprint of a key's material. For auth+enc keys the hashed bytes are
    ``len(auth_key)`` as 2 bytes big-endian, then the auth key, then the encryption key, so
    that moving bytes from one key to the other changes the fingerprint."""
    if key.form == FORM_AEAD:
        return fingerprint(key.aead_key or b"")
    auth_key, enc_key = key.key_material
    return fingerprint(len(auth_key).to_bytes(2, "big") + auth_key + enc_key)


def _masked_text(key_material: bytes) -> str:
    return fingerprint(key_material) if key_material else EMPTY_KEY_TOKEN


def render_masked_key_line(key: Key) -> str:
    """A key line with each key replaced by its fingerprint (for ``--diff`` and logs)."""
    return _line_with(key, _masked_text)


def render_masked_keys_file(keys_file: KeysFile) -> str:
    """``render_keys_file`` with every key replaced by its fingerprint; safe to show."""
    return "".join(render_masked_key_line(key) + "\n" for key in keys_file.keys)


def overhead(key: Key) -> int:
    """Cilium's "authentication overhead" of a key, in bytes, as its MTU code uses it.

    AEAD: ICV bits / 8. Auth+enc: Cilium returns the number of hex characters of the
    auth key (twice its byte length), a quirk reproduced here so MTUs agree with Cilium.
    """
    if key.form == FORM_AEAD:
        return (key.icv_bits or 0) // 8
    return 2 * len(key.auth_key or b"")


def key_bits(key: Key) -> int:
    """Bits of key material: the AEAD key (salt included), or auth key + encryption key."""
    return 8 * sum(len(part) for part in key.key_material)


def describe(key: Key) -> Dict[str, Any]:
    """What a module may report about a key: names, sizes, fingerprint; never key bytes."""
    summary: Dict[str, Any] = {"spi": key.spi, "form": key.form,
                               "plus_marker": key.plus_marker}
    if key.form == FORM_AEAD:
        summary.update(aead=key.aead_name, icv_bits=key.icv_bits)
    else:
        summary.update(auth=key.auth_name, auth_key_bits=8 * len(key.auth_key or b""),
                       enc=key.enc_name, enc_key_bits=8 * len(key.enc_key or b""))
    summary.update(key_bits=key_bits(key), overhead=overhead(key),
                   fingerprint=key_fingerprint(key))
    if key.line:
        summary["line"] = key.line
    return summary


def key_spellings(key_material: bytes) -> Tuple[str, ...]:
    """The spellings of one non-empty key that might show up in output: lowercase and
    uppercase hex, standard and URL-safe base64 without padding.

    Ansible masks every occurrence of a ``no_log_values`` string inside a longer one, so the
    ``0x`` and padded forms, which contain these, need no entries of their own (each entry is
    one more replace over every string of a result: a 1000-peer result has 4000 lines).
    """
    lower = key_material.hex()
    encoded = base64.b64encode(key_material).decode("ascii").rstrip("=")
    url_safe = base64.urlsafe_b64encode(key_material).decode("ascii").rstrip("=")
    if url_safe == encoded:
        return (lower, lower.upper(), encoded)
    return (lower, lower.upper(), encoded, url_safe)


def all_secrets(keys: Union[KeysFile, Key, Iterable[Key]]) -> List[str]:
    """Every spelling of key material that might show up in output, for ``no_log_values``.

    For each non-empty key its ``key_spellings`` and, for a parsed ``KeysFile``, the key
    fields exactly as the input wrote them. Empty keys are not secrets and add nothing.
    """
    if isinstance(keys, KeysFile):
        key_list: List[Key] = list(keys.keys)
        written: Tuple[str, ...] = keys.written_key_tokens
    elif isinstance(keys, Key):
        key_list, written = [keys], ()
    else:
        key_list, written = list(keys), ()
    secrets: List[str] = []
    for key in key_list:
        for part in key.key_material:
            if not part:
                continue
            for spelling in key_spellings(part):
                if spelling not in secrets:
                    secrets.append(spelling)
    for token in written:
        # Without its prefix: the bare digits also mask the prefixed form (see key_spellings).
        bare = token[len(HEX_PREFIX):] if token[:len(HEX_PREFIX)].lower() == HEX_PREFIX else token
        if bare and bare != EMPTY_KEY_TOKEN and bare not in secrets:
            secrets.append(bare)
    return secrets


# --------------------------------------------------------------------------------------
# Rotation and generation.


def check_successor(old: Union[KeysFile, Key], new: Key) -> None:
    """Raise ``KeysFileError`` unless ``new`` may replace ``old`` (or its current key).

    The new key must have another SPI, the same form, the same key length(s) and the same
    ICV. (Cilium itself only compares its overhead value: ICV/8 or the auth key's hex
    length; requiring equal key lengths as well is stricter and catches the same MTU bug.)
    """
    if isinstance(old, KeysFile):
        problem = _successor_problem(old.current, new, old.keys[:-1])
    else:
        problem = _successor_problem(old, new)
    if problem:
        raise KeysFileError("key rotation", problem)


def next_spi(spi: int) -> int:
    """The key ID after ``spi``: 1..14 count up, 15 wraps to 1."""
    if isinstance(spi, bool) or not isinstance(spi, int) or not SPI_MIN <= spi <= SPI_MAX:
        raise KeysFileError("next_spi", "key ID (SPI) must be a number %d-%d"
                            % (SPI_MIN, SPI_MAX))
    return SPI_MIN if spi == SPI_MAX else spi + 1


def generate_key(spi: int, aead: str = DEFAULT_AEAD, key_bytes: int = DEFAULT_AEAD_KEY_BYTES,
                 icv: int = DEFAULT_ICV_BITS, plus_marker: bool = True) -> Key:
    """A fresh random AEAD key (``os.urandom``). Refuses an ICV the kernel does not do."""
    source = "generate_key"
    try:
        spi_value = _spi_from_any(spi)
        icv_bits = _icv_value(icv)
        spec = _algorithm(aead, ROLE_AEAD)
        if isinstance(key_bytes, bool) or not isinstance(key_bytes, int) \
                or spec.key_bytes is None or key_bytes not in spec.key_bytes:
            raise _Invalid("key_bytes for %s must be %s (%s)" % (
                aead, _choices(spec.key_bytes or (spec.nominal_key_bytes,)), spec.key_layout))
        if icv_bits not in spec.kernel_icv_bits:
            raise _Invalid("the kernel does not implement ICV %d for %s (it does %s)" % (
                icv_bits, aead, _choices(spec.kernel_icv_bits)))
        key, _notes = _aead_key(spi_value, plus_marker, aead, os.urandom(key_bytes), icv_bits,
                                0)
    except _Invalid as invalid:
        raise KeysFileError(source, str(invalid)) from None
    return key


def generate_key_line(spi: int, aead: str = DEFAULT_AEAD, key_bytes: int = DEFAULT_AEAD_KEY_BYTES,
                      icv: int = DEFAULT_ICV_BITS) -> str:
    """A fresh key line such as ``3+ rfc4106(gcm(aes)) 0x<40 hex digits> 128`` (no newline).

    The result is secret: callers must treat it as they treat the keys file.
    """
    return render_key_line(generate_key(spi, aead, key_bytes, icv))
