# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a key is, whatever it was read from: the model, its limits and the rules of its messages.

``Key`` and ``KeysFile`` are the model every other part of the collection uses. The rules
here hold for a key from any source (a keys file, the module option, a generated key): a key
ID is 1..15, an ICV is one of Cilium's three lengths. The spellings of a key's parts in the
file (separator, ``+`` marker, ``0x``, ``""``) are named here because reading (``grammar``)
and writing (``secrets``) must agree on them.

Secrecy: no message, ``repr`` or ``str`` made here contains key material; ``shown`` is the
one rule for quoting a token in a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Collection, Optional, Sequence, Tuple

FORM_AEAD = "aead"
FORM_AUTH_ENC = "auth_enc"

SPI_MIN = 1
SPI_MAX = 15  # the key ID has 4 bits of the packet mark in Cilium's datapath
ICV_BITS_ACCEPTED = (96, 128, 256)

MAX_FILE_BYTES = 64 * 1024
MAX_LINES = 1000
# Per-pair keys are cut from a SHA-512 digest at most, so no key can be longer than this.
MAX_KEY_BYTES = 64

FIELD_SEPARATOR = " "
PLUS_MARKER = "+"
HEX_PREFIX = "0x"
EMPTY_KEY_TOKEN = '""'

KEYS_FILE_MODE = "0600"  # what xfrm_keys writes unless told otherwise


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


class Invalid(Exception):
    """A reason without a location; the caller adds the source and line."""


# --------------------------------------------------------------------------------------
# What a message may say.

# A token is quoted in a message only when it cannot be (a piece of) a key: a name the
# caller knows (an algorithm), or a token of a shape no key spelling has. Keys are written in
# hex or, by mistake, in base64 (standard or URL-safe: letters of both cases, digits, + / - _
# and =); parentheses, dots and colons occur in neither, and a short run of letters or digits
# holds too little to matter. So: a small number (a key ID, an ICV length, "3++", "0x3"), a name
# with parentheses (an unknown algorithm), an address, or a word of at most 8 lowercase
# letters; never a run of 8 hex digits (4 bytes; no algorithm name has one).
_QUOTABLE_SHAPES = re.compile(r"[+-]?(?:0x[0-9a-fA-F]{1,6}|[0-9]{1,6})\+*"  # a number
                              r"|[a-z][a-z0-9_,.-]*\([a-z0-9_,.()-]*\)"  # a name with parentheses
                              r"|[0-9a-f.:]*[.:][0-9a-f.:]*"              # an address
                              r"|[a-z]{1,8}")                             # a short word
_MAX_QUOTED = 40
_HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")


def shown(token: str, known_words: Collection[str] = ()) -> str:
    """The token quoted when it is one of ``known_words`` or of a shape no key has;
    otherwise only its length."""
    if token in known_words or (len(token) <= _MAX_QUOTED and _QUOTABLE_SHAPES.fullmatch(token)
                                and not _HEX_RUN.search(token)):
        return repr(token)
    return "(a %d-character value, not shown as it may be key material)" % len(token)


def choices(numbers: Sequence[int]) -> str:
    """'20, 28 or 36'."""
    texts = [str(number) for number in numbers]
    return texts[0] if len(texts) == 1 else "%s or %s" % (", ".join(texts[:-1]), texts[-1])


def byte_count(length: int) -> str:
    return "1 byte" if length == 1 else "%d bytes" % length


# --------------------------------------------------------------------------------------
# Key IDs and ICV lengths, as numbers or as decimal text.

_DECIMAL = re.compile(r"[0-9]+")


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
        raise Invalid("key ID (SPI) 0 is not allowed: 0 means 'no key'; use %d-%d"
                      % (SPI_MIN, SPI_MAX))
    number = str(value) if -10 ** 6 < value < 10 ** 6 else "a number"
    raise Invalid("key ID (SPI) %s is out of range: it must be %d-%d (it has 4 bits of the "
                  "packet mark)" % (number, SPI_MIN, SPI_MAX))


def spi_value(value: Any) -> int:
    """The key ID of a number or of decimal text (leading zeros allowed, as Go's Atoi reads
    them); ``Invalid`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Invalid("key ID (SPI) must be a number %d-%d" % (SPI_MIN, SPI_MAX))
    if isinstance(value, int):
        return _checked_spi(value)
    if not _DECIMAL.fullmatch(value):
        raise Invalid("key ID (SPI) must be a number %d-%d; got %s"
                      % (SPI_MIN, SPI_MAX, shown(value)))
    return _checked_spi(_small_decimal(value))


def icv_value(value: Any) -> int:
    """The ICV length (bits) of a number or of decimal text; ``Invalid`` unless Cilium's."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise Invalid("ICV length must be a number: one of %s" % _icv_choices())
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise Invalid("ICV length (bits) must be a number: one of %s; got %s"
                          % (_icv_choices(), shown(value)))
        value = _small_decimal(value)
    if value not in ICV_BITS_ACCEPTED:
        number = str(value) if -10 ** 6 < value < 10 ** 6 else "a number"
        raise Invalid("ICV length must be one of %s bits; got %s (it is the ICV size, not "
                      "the key size)" % (_icv_choices(), number))
    return value


def _icv_choices() -> str:
    return choices(ICV_BITS_ACCEPTED)


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
