# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cilium's keys-file grammar: a key line, and a whole keys file, read into keys.

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
* Algorithm names come from ``catalogue.ALGORITHMS``, and the key length must suit the
  algorithm. AEAD names must start with ``rfc``. The ICV must be 96, 128 or 256 (Cilium's
  set); when the kernel would refuse that ICV for the algorithm (``rfc4543(gcm(aes))``
  and ``rfc7539esp(chacha20,poly1305)`` only do 128, ``rfc4106(gcm(aes))`` no 256) the key
  is still accepted and a warning says so: the kernel, not this parser, has the last word.
* HMAC keys may have any length from 16 bytes up to 64 bytes (the kernel takes any length;
  a shorter key is guessable, and 64 is the most a per-pair key can be derived to, SHA-512
  being the longest hash used). No key may be all zero bytes, nor the cipher part of one
  with a salt (``catalogue.check_key_material``).
* Suites that protect nothing (``digest_null``, ``cipher_null``, ``rfc4543(gcm(aes))``) are
  refused unless the caller passes ``allow_insecure_suites`` (only ``xfrm_keys`` does, on
  its option of that name); legacy ones (``hmac(md5)``, ``cbc(des3_ede)``) are accepted with
  a warning. Cilium accepts all of them.
* Every key of a file needs its own SPI (every key is installed at once). Consecutive keys
  may differ in anything else: whether a rotation may switch to a key that adds more ESP
  overhead is ``rotation.check_successor``'s question, asked where a rotation happens.
* The whole input is limited to ``MAX_FILE_BYTES`` bytes and ``MAX_LINES`` lines.

One validation for both input forms: a line's fields after the key ID are named as the
module option ``keys`` names them (``aead``, ``aead_key``, ``icv_bits`` or ``auth``,
``auth_key``, ``enc``, ``enc_key``) and go through ``key_from_fields``, as each dict of that
option does; ``KeyList`` then checks each key against the keys before it. Only where a
message points differs: ``line 2: field 3 (AEAD key): ...`` or ``option keys[1].aead_key: ...``.

Secrecy: a field that fails to parse is quoted only when it is a known algorithm name or a
short word that cannot be a key (``model.shown``); otherwise the message names the field
and gives the token's length. A keys file read on the node is no module option, so Ansible
masks nothing of it: its messages must hold no key material of their own accord.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Tuple, TypeVar, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.catalogue import (
    AEAD_NAME_PREFIX, ALGORITHMS_BY_ROLE, ROLE_AEAD, ROLE_AUTH, ROLE_ENC, AlgorithmSpec,
    check_key_length, check_key_material, checked_algorithm, insecure_allowed, insecure_refusal,
    insecurity_of, is_algorithm_name,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import (
    EMPTY_KEY_TOKEN, FIELD_SEPARATOR, FORM_AEAD, FORM_AUTH_ENC, HEX_PREFIX, MAX_FILE_BYTES,
    MAX_LINES, SPI_MAX, SPI_MIN, Invalid, Key, KeysFile, KeysFileError, choices, icv_value, shown,
    spi_value,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.rotation import successor_problem

SPI_OF_2019_FORM = 1  # a line without a key ID meant key ID 1

# A key's fields after its key ID, in line order, named as the module option names them.
AEAD_FIELDS = ("aead", "aead_key", "icv_bits")
AUTH_ENC_FIELDS = ("auth", "auth_key", "enc", "enc_key")
# Where each field stands in a line, counted from the first field after the key ID, and
# what a message about a line calls it.
_FIELD_PLACES = {"spi": (-1, "key ID"), "aead": (0, "AEAD algorithm"), "aead_key": (1, "AEAD key"),
                 "icv_bits": (2, "ICV length"), "auth": (0, "authentication algorithm"),
                 "auth_key": (1, "authentication key"), "enc": (2, "encryption algorithm"),
                 "enc_key": (3, "encryption key")}

_SPI_TOKEN = re.compile(r"([0-9]+)(\+?)")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")

_EXPECTED_FORMS = ("expected 'SPI AEAD-ALGO KEY ICV-BITS' or 'SPI AUTH-ALGO KEY ENC-ALGO KEY'")

_Value = TypeVar("_Value")


class FieldInvalid(Invalid):
    """A problem of one field of a key, named as the option names it (``aead_key``...); a
    message about a line names the field by its number and title (``_FIELD_PLACES``)."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field_name = field_name
        self.reason = reason


@dataclass(frozen=True)
class ParsedKey:
    """A key as read, with the notes about it and its key fields exactly as written."""

    key: Key
    notes: List[str] = field(default_factory=list)
    written_tokens: List[str] = field(default_factory=list)


class KeyList:
    """Keys in file order, each checked against the keys before it; builds the ``KeysFile``."""

    def __init__(self) -> None:
        self.keys: List[Key] = []
        self.warnings: List[str] = []
        self.written_tokens: List[str] = []

    def append(self, parsed: ParsedKey, where: str) -> None:
        """Add the next key, read at ``where``; ``Invalid`` when it cannot follow the last."""
        if self.keys:
            problem = successor_problem(self.keys[-1], parsed.key, self.keys[:-1])
            if problem:
                raise Invalid(problem)
        self.keys.append(parsed.key)
        self.warnings.extend("%s: %s" % (where, note) for note in parsed.notes)
        self.written_tokens.extend(parsed.written_tokens)

    def keys_file(self, source: str) -> KeysFile:
        return KeysFile(tuple(self.keys), source, tuple(self.warnings), tuple(self.written_tokens))


# --------------------------------------------------------------------------------------
# One key's fields, from a line or from the option.


def key_from_fields(form: str, fields: Mapping[str, Any], line: int,
                    allow_insecure_suites: bool = False) -> ParsedKey:
    """The one validation of a key's fields, whether a line or the option ``keys`` gave them.

    ``fields`` holds ``spi``, optionally ``plus`` (true when absent), and the fields of
    ``form`` (``AEAD_FIELDS`` or ``AUTH_ENC_FIELDS``), as text or, from the option, as any
    value. Problems raise ``FieldInvalid`` naming the field; ``line`` goes on the key.

    After the fields' own checks (names, hex, lengths, all-zero keys), a key whose suite
    protects nothing (``catalogue.insecurity_of``) is refused, naming its first such field,
    unless ``allow_insecure_suites``: then it is accepted with a note. Legacy algorithms get
    a note.
    """
    spi = field_value(fields, "spi", spi_value)
    plus_marker = field_value(fields, "plus", _bool_value) if "plus" in fields else True
    if form == FORM_AEAD:
        spec = _algorithm_field(fields, "aead", ROLE_AEAD)
        key_token, key_material = _key_field(fields, "aead_key")
        icv_bits = field_value(fields, "icv_bits", icv_value)
        _check_key("aead_key", spec, key_material)
        notes = _suite_notes((("aead", spec),), allow_insecure_suites)
        if icv_bits not in spec.kernel_icv_bits:
            notes.append("the kernel refuses ICV %d for %s (it implements %s bits); the SA "
                         "will fail to install" % (icv_bits, spec.name,
                                                   choices(spec.kernel_icv_bits)))
        key = Key(spi=spi, form=FORM_AEAD, plus_marker=plus_marker, aead_name=spec.name,
                  aead_key=key_material, icv_bits=icv_bits, line=line)
        return ParsedKey(key, notes, [key_token])
    auth_spec = _algorithm_field(fields, "auth", ROLE_AUTH)
    auth_token, auth_key = _key_field(fields, "auth_key")
    enc_spec = _algorithm_field(fields, "enc", ROLE_ENC)
    enc_token, enc_key = _key_field(fields, "enc_key")
    _check_key("auth_key", auth_spec, auth_key)
    _check_key("enc_key", enc_spec, enc_key)
    notes = _suite_notes((("auth", auth_spec), ("enc", enc_spec)), allow_insecure_suites)
    key = Key(spi=spi, form=FORM_AUTH_ENC, plus_marker=plus_marker, auth_name=auth_spec.name,
              auth_key=auth_key, enc_name=enc_spec.name, enc_key=enc_key, line=line)
    return ParsedKey(key, notes, [auth_token, enc_token])


def _suite_notes(named_specs: Tuple[Tuple[str, AlgorithmSpec], ...], allow_insecure_suites: bool) -> List[str]:
    """The notes on a key's algorithms (named by their fields); ``FieldInvalid`` naming the
    first field whose algorithm protects nothing, unless ``allow_insecure_suites``."""
    why = insecurity_of([spec for _name, spec in named_specs])
    notes = [spec.legacy for _name, spec in named_specs if spec.legacy]
    if why:
        if not allow_insecure_suites:
            first = next(name for name, spec in named_specs if spec.insecure)
            raise FieldInvalid(first, insecure_refusal(why))
        notes.insert(0, insecure_allowed(why))
    return notes


def field_value(fields: Mapping[str, Any], name: str, check: Callable[[Any], _Value]) -> _Value:
    """``check`` of field ``name``; its ``Invalid`` becomes a ``FieldInvalid`` naming the field."""
    try:
        return check(fields[name])
    except FieldInvalid:
        raise
    except Invalid as invalid:
        raise FieldInvalid(name, str(invalid)) from None


def _bool_value(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def _algorithm_field(fields: Mapping[str, Any], name: str, role: str) -> AlgorithmSpec:
    value = fields[name]
    if not isinstance(value, str):
        raise FieldInvalid(name, "must be an algorithm name (a string)")
    try:
        return checked_algorithm(value, role)
    except Invalid as invalid:
        raise FieldInvalid(name, str(invalid)) from None


def _key_field(fields: Mapping[str, Any], name: str) -> Tuple[str, bytes]:
    """The key field as written and its bytes."""
    token = fields[name]
    if not isinstance(token, str):
        raise FieldInvalid(name, 'must be a hex string (optionally 0x-prefixed), or "" for no '
                           'key')
    try:
        return token, _decode_key(token)
    except Invalid as invalid:
        raise FieldInvalid(name, str(invalid)) from None


def _check_key(name: str, spec: AlgorithmSpec, key_material: bytes) -> None:
    """The key of field ``name`` suits ``spec``: its length, and it is not all zero."""
    try:
        check_key_length(spec, key_material)
        check_key_material(spec, key_material)
    except Invalid as invalid:
        raise FieldInvalid(name, str(invalid)) from None


def _decode_key(token: str) -> bytes:
    """Bytes of a key field: ``""`` (or, from the option, an empty string), or hex with an
    optional lowercase ``0x``."""
    if token == EMPTY_KEY_TOKEN:
        return b""
    if '"' in token:
        raise Invalid('quotes are only allowed as the empty key ""')
    if token.startswith("0X"):
        raise Invalid("key starts with '0X': only a lowercase '0x' prefix is accepted")
    digits = token[len(HEX_PREFIX):] if token.startswith(HEX_PREFIX) else token
    if not _HEX_DIGITS.fullmatch(digits):
        raise Invalid("key is not hexadecimal: only 0-9, a-f and A-F are allowed after an "
                      "optional '0x'")
    if len(digits) % 2:
        raise Invalid("key has an odd number of hex digits (%d): two digits per byte"
                      % len(digits))
    return bytes.fromhex(digits)


# --------------------------------------------------------------------------------------
# Text.


def parse_keys_text(text: Union[str, bytes], source: str = "keys file",
                    allow_insecure_suites: bool = False) -> KeysFile:
    """Parse a keys file's content; ``source`` names it in messages. Keys that protect
    nothing are refused unless ``allow_insecure_suites`` (see ``key_from_fields``)."""
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

    key_list = KeyList()
    for number, line_text in enumerate(lines, 1):
        try:
            key_list.append(parse_key_line(line_text, number, allow_insecure_suites),
                            "%s, line %d" % (source, number))
        except Invalid as invalid:
            raise KeysFileError(source, str(invalid), number) from None
    return key_list.keys_file(source)


def _decode_bytes(data: bytes, source: str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise KeysFileError(source, "is larger than %d bytes: not a keys file" % MAX_FILE_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = data.count(b"\n", 0, bad.start) + 1
        raise KeysFileError(source, "is not text: byte 0x%02x is not valid UTF-8 (a binary "
                            "file?)" % data[bad.start], line) from None


def parse_key_line(line_text: str, number: int, allow_insecure_suites: bool = False) -> ParsedKey:
    """One key line (without its newline), line ``number`` of a file; ``Invalid`` says why not."""
    _check_characters(line_text)
    _check_layout(line_text)
    tokens = line_text.split(FIELD_SEPARATOR)
    notes: List[str] = []

    spi_match = _SPI_TOKEN.fullmatch(tokens[0])
    if spi_match:
        spi = spi_value(spi_match.group(1))
        plus_marker = bool(spi_match.group(2))
        body = tokens[1:]
        first_field = 2
    elif _looks_like_algorithm(tokens[0]):
        spi = SPI_OF_2019_FORM
        plus_marker = False
        body = tokens
        first_field = 1
        notes.append("no key ID (SPI) at the start of the line, so SPI %d is used; this "
                     "2019 form is deprecated (Cilium 1.17 and later reject it): put the key "
                     "ID first, for example '%d+ %s ...'"
                     % (SPI_OF_2019_FORM, SPI_OF_2019_FORM, tokens[0]))
    else:
        raise Invalid("field 1 must be the key ID (SPI), a number %d-%d optionally followed "
                      "by '+'; got %s" % (SPI_MIN, SPI_MAX, shown(tokens[0])))

    # Cilium picks the form by field count: three fields after the key ID are an AEAD
    # line, so "3 gcm(aes) KEY 128" is reported as a bad AEAD name, not a short line.
    names_aead = bool(body) and body[0].startswith(AEAD_NAME_PREFIX)
    if names_aead or (len(body) == 3 and body[0] not in ALGORITHMS_BY_ROLE[ROLE_AUTH]):
        _check_aead_count(body, first_field)
        form, names = FORM_AEAD, AEAD_FIELDS
    else:
        _check_auth_enc_count(body, first_field)
        form, names = FORM_AUTH_ENC, AUTH_ENC_FIELDS
    fields: Dict[str, Any] = dict(zip(names, body), spi=spi, plus=plus_marker)
    try:
        parsed = key_from_fields(form, fields, number, allow_insecure_suites)
    except FieldInvalid as problem:
        offset, title = _FIELD_PLACES[problem.field_name]
        raise Invalid("field %d (%s): %s" % (first_field + offset, title, problem.reason)) from None
    return ParsedKey(parsed.key, notes + parsed.notes, parsed.written_tokens)


def _check_characters(line_text: str) -> None:
    if "\r" in line_text:
        if line_text.index("\r") == len(line_text) - 1:
            raise Invalid("CRLF (Windows) line ending: the keys file must use LF line "
                          "endings")
        raise Invalid("carriage return (CR) inside the line")
    for column, char in enumerate(line_text, 1):
        code = ord(char)
        if char == "\t":
            raise Invalid("tab at column %d: fields are separated by single spaces" % column)
        if code == 0:
            raise Invalid("NUL byte at column %d: this is binary data, not a keys file"
                          % column)
        if code == 0xFEFF:
            raise Invalid("byte-order mark (U+FEFF) at column %d: save the file as plain "
                          "ASCII without a BOM" % column)
        if code < 0x20 or code == 0x7F:
            raise Invalid("control character U+%04X at column %d" % (code, column))
        if code > 0x7E:
            raise Invalid("non-ASCII character U+%04X at column %d: a keys file is ASCII"
                          % (code, column))


def _check_layout(line_text: str) -> None:
    if not line_text:
        raise Invalid("empty line: blank lines are not allowed (only one final newline)")
    if not line_text.strip(FIELD_SEPARATOR):
        raise Invalid("line holds only spaces")
    if line_text.lstrip(FIELD_SEPARATOR).startswith("#"):
        raise Invalid("'#' comments are not supported: a keys file holds only key lines")
    if FIELD_SEPARATOR + "#" in line_text:
        raise Invalid("'#' comments are not supported: a keys file holds only key fields")
    if line_text.startswith(FIELD_SEPARATOR):
        raise Invalid("leading space: the line must start with the key ID")
    if line_text.endswith(FIELD_SEPARATOR):
        raise Invalid("trailing space at the end of the line")
    if FIELD_SEPARATOR * 2 in line_text:
        raise Invalid("two spaces in a row: fields are separated by exactly one space")


def _looks_like_algorithm(token: str) -> bool:
    return token.startswith(AEAD_NAME_PREFIX) or "(" in token or is_algorithm_name(token)


def _scope_problem(field_number: int) -> Invalid:
    return Invalid("field %d is one field too many: the 2019 per-IP key scope is not "
                   "supported (Cilium removed it in 2024); remove it, a key applies to all "
                   "peers" % field_number)


def _check_aead_count(body: List[str], first_field: int) -> None:
    if len(body) < 3:
        missing = "the key and the ICV length" if len(body) == 1 else "the ICV length"
        raise Invalid("too few fields: %s missing after the AEAD algorithm; %s"
                      % (missing, _EXPECTED_FORMS))
    if len(body) == 4:
        raise _scope_problem(first_field + 3)
    if len(body) > 4:
        raise Invalid("too many fields (%d); %s" % (len(body) + first_field - 1, _EXPECTED_FORMS))


def _check_auth_enc_count(body: List[str], first_field: int) -> None:
    if len(body) < 4:
        raise Invalid("too few fields (%d); %s" % (len(body) + first_field - 1, _EXPECTED_FORMS))
    if len(body) == 5:
        raise _scope_problem(first_field + 4)
    if len(body) > 5:
        raise Invalid("too many fields (%d); %s" % (len(body) + first_field - 1, _EXPECTED_FORMS))
