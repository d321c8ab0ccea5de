# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where keys come from: a keys file on disk, module option ``content``, module option ``keys``.

A file is read with limits (its size from ``fstat`` before any byte, at most
``MAX_FILE_BYTES`` + 1 bytes, no FIFO or device) and parsed by the grammar. Option ``keys``,
a list of dicts, is checked for its shape here and then goes through the grammar's
``key_from_fields``, the same validation as a line; its messages name ``option keys[i].field``.
"""

from __future__ import annotations

import os
import stat
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import (
    AEAD_FIELDS, AUTH_ENC_FIELDS, FieldInvalid, KeyList, ParsedKey, key_from_fields,
    parse_keys_text,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import (
    FORM_AEAD, FORM_AUTH_ENC, MAX_FILE_BYTES, MAX_LINES, Invalid, KeysFile, KeysFileError, shown,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import render_keys_file

MISSING_FILE_REASON = "no such file"

_DICT_FIELDS = ("spi", "plus") + AEAD_FIELDS + AUTH_ENC_FIELDS


# --------------------------------------------------------------------------------------
# Files.


def load_keys_file(path: Union[str, "os.PathLike[str]"], allow_insecure_suites: bool = False) -> KeysFile:
    """Read and parse a keys file, reading at most ``MAX_FILE_BYTES`` + 1 bytes. Keys that
    protect nothing are refused unless ``allow_insecure_suites`` (``grammar.key_from_fields``)."""
    return parse_keys_text(read_keys_bytes(path), os.fspath(path), allow_insecure_suites)


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


# --------------------------------------------------------------------------------------
# Module options.


def desired_keys(content: Optional[str], keys: Optional[Sequence[Mapping[str, Any]]],
                 allow_insecure_suites: bool = False) -> Optional[Tuple[KeysFile, bytes]]:
    """The keys and the exact bytes a keys file should hold, from option ``content`` (a
    newline is added when missing) or option ``keys`` (rendered canonically); None when
    neither is given. Raises ``KeysFileError`` naming the option and line; keys that protect
    nothing are refused unless ``allow_insecure_suites``."""
    if content is not None:
        text = content if content.endswith("\n") else content + "\n"
        return parse_keys_text(text, "option content", allow_insecure_suites), text.encode("ascii")
    if keys is not None:
        keys_file = keys_from_dicts(keys, "option keys", allow_insecure_suites)
        return keys_file, render_keys_file(keys_file).encode("ascii")
    return None


def keys_from_dicts(items: Sequence[Mapping[str, Any]], source: str = "option keys",
                    allow_insecure_suites: bool = False) -> KeysFile:
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
    key_list = KeyList()
    for index, item in enumerate(items):
        where = "%s[%d]" % (source, index)
        parsed = _key_from_dict(item, where, index + 1, allow_insecure_suites)
        try:
            key_list.append(parsed, where)
        except Invalid as invalid:
            raise KeysFileError(where, str(invalid)) from None
    return key_list.keys_file(source)


def _key_from_dict(item: Any, where: str, position: int, allow_insecure_suites: bool) -> ParsedKey:
    """One dict of option ``keys``: its shape is checked here, its fields by the grammar."""
    if not isinstance(item, Mapping):
        raise KeysFileError(where, "must be a dict with spi and either aead, aead_key, "
                            "icv_bits or auth, auth_key, enc, enc_key")
    present = {name: value for name, value in item.items() if value is not None}
    for name in present:
        if name not in _DICT_FIELDS:
            text = shown(name) if isinstance(name, str) else "of type %s" % type(name).__name__
            raise KeysFileError(where, "unknown field %s; allowed: %s"
                                % (text, ", ".join(_DICT_FIELDS)))
    aead_given = [name for name in AEAD_FIELDS if name in present]
    auth_enc_given = [name for name in AUTH_ENC_FIELDS if name in present]
    if aead_given and auth_enc_given:
        raise KeysFileError(where, "mixes AEAD fields (%s) with auth+enc fields (%s): use one "
                            "form" % (", ".join(aead_given), ", ".join(auth_enc_given)))
    if aead_given:
        form, wanted = FORM_AEAD, AEAD_FIELDS
        form_text = "an AEAD key needs aead, aead_key and icv_bits"
    elif auth_enc_given:
        form, wanted = FORM_AUTH_ENC, AUTH_ENC_FIELDS
        form_text = "an auth+enc key needs auth, auth_key, enc and enc_key"
    else:
        raise KeysFileError(where, "needs either aead, aead_key, icv_bits or auth, auth_key, "
                            "enc, enc_key")
    for name in ("spi",) + wanted:
        if name not in present:
            raise KeysFileError("%s.%s" % (where, name), "is required (%s)" % (
                "every key needs its key ID" if name == "spi" else form_text))
    try:
        return key_from_fields(form, present, position, allow_insecure_suites)
    except FieldInvalid as problem:
        raise KeysFileError("%s.%s" % (where, problem.field_name), problem.reason) from None
