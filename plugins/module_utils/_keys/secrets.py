# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys written back out, and what of a key may be shown.

The canonical rendering holds key material and is written only to the keys file. Everything
else a module may report (masked lines, fingerprints, ``describe``) holds none, and
``all_secrets`` lists every spelling of a key that output must mask.
"""

from __future__ import annotations

import binascii
import hashlib
from typing import Any, Callable, Dict, Iterable, List, Tuple, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.catalogue import esp_overhead
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import (
    EMPTY_KEY_TOKEN, FIELD_SEPARATOR, FORM_AEAD, HEX_PREFIX, PLUS_MARKER, Key, KeysFile,
)

FINGERPRINT_PREFIX = "sha256:"
FINGERPRINT_HEX_CHARS = 12


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
    summary.update(key_bits=key_bits(key), overhead=overhead(key), esp_overhead=esp_overhead(key),
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
    encoded = binascii.b2a_base64(key_material, newline=False).decode("ascii").rstrip("=")
    # The URL-safe alphabet differs from the standard one only in these two characters, so
    # a key spells the same in both unless its standard spelling holds one of them (a
    # 1000-peer plan spells 2000 keys: one encoding and a search instead of two encodings).
    if "+" not in encoded and "/" not in encoded:
        return (lower, lower.upper(), encoded)
    # RFC 4648, section 5: "-" for "+" and "_" for "/" (two replaces beat str.translate).
    return (lower, lower.upper(), encoded, encoded.replace("+", "-").replace("/", "_"))


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
