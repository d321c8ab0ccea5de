# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of module ``netsec.ipsec.xfrm_keys``; the module file holds docs and arguments.

The file is written and removed by ``_files`` (atomically, never through a symbolic link,
mode 0600 unless the task asks otherwise), so a reader sees the old file or the new one,
never a mix, and the key material never sits in a file with looser permissions.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._files import FileError, remove_file, write_file
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.catalogue import esp_overhead
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import (
    KEYS_FILE_MODE,
    KeysFile,
    KeysFileError,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.rotation import check_successor, overhead_problem
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import (
    all_secrets,
    describe,
    overhead,
    render_key_line,
    render_masked_key_line,
    render_masked_keys_file,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import (
    MISSING_FILE_REASON,
    desired_keys,
    read_keys_bytes,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._lock import NodeLockError, node_lock

KEYS_DIRECTORY_MODE = 0o700

MODULE_NAME = "netsec.ipsec.xfrm_keys"


class _Outcome:
    """What the module reports, gathered while it works."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.changed = False
        self.keys_file: Optional[KeysFile] = None
        self.previous_spi: Optional[int] = None
        self.before_text = ""
        self.after_text = ""

    def result(self, with_diff: bool) -> Dict[str, Any]:
        current = self.keys_file.current if self.keys_file else None
        result: Dict[str, Any] = dict(
            changed=self.changed,
            path=self.path,
            spi=current.spi if current else None,
            previous_spi=self.previous_spi,
            overhead=overhead(current) if current else None,
            esp_overhead=esp_overhead(current) if current else None,
            keys_info=[describe(key) for key in self.keys_file.keys] if self.keys_file else [],
        )
        if with_diff:
            result["diff"] = dict(
                before=self.before_text,
                after=self.after_text,
                before_header=self.path,
                after_header=self.path,
            )
        return result


def run_module(module: Any) -> None:
    """Entry point called by the module's ``main()``."""
    params = module.params
    outcome = _Outcome(params["path"])
    try:
        with node_lock(MODULE_NAME, timeout=params["lock_timeout"], shared=module.check_mode):
            _run(module, params, outcome)
    except (KeysFileError, FileError, NodeLockError) as error:
        module.fail_json(msg=str(error), **outcome.result(False))
    module.exit_json(**outcome.result(module._diff))  # pylint: disable=protected-access


def _run(module: Any, params: Dict[str, Any], outcome: _Outcome) -> None:
    path = params["path"]
    allow_insecure = params["allow_insecure_suites"]
    existing_bytes, existing_file = _read_existing(module, path, allow_insecure)
    outcome.before_text = _masked_text(existing_bytes, existing_file, path)
    outcome.previous_spi = existing_file.current.spi if existing_file else None

    if params["state"] == "absent":
        outcome.after_text = ""
        outcome.changed = remove_file(module, path)
        return

    desired = desired_keys(params["content"], params["keys"], allow_insecure)  # None: only report
    if desired is None:
        # Neither content nor keys: report on the file that is there, change nothing.
        if existing_bytes is None:
            raise KeysFileError(path, MISSING_FILE_REASON)
        if existing_file is None:
            parse_keys_text(existing_bytes, path, allow_insecure)  # raises the error that names the line
        outcome.keys_file = existing_file
        outcome.after_text = outcome.before_text
        _warn_all(module, existing_file)
        return

    desired_file, desired_bytes = desired
    module.no_log_values.update(all_secrets(desired_file))
    if params["retain_previous"] and existing_file is not None:
        desired_file, desired_bytes = _retaining_previous(existing_file, existing_bytes, desired_file, desired_bytes,
                                                          allow_insecure)
    if not params["allow_rotation"] and existing_file is not None and existing_file.current.spi != desired_file.current.spi:
        raise KeysFileError(path, "the new content changes the current key ID from %d to %d, which is a key "
                            "rotation: run the netsec.ipsec.rotate playbook, which switches every node "
                            "without dropping or leaking traffic" % (existing_file.current.spi, desired_file.current.spi))
    if (not params["allow_rotation"] and existing_file is not None and existing_file.current != desired_file.current
            and render_masked_key_line(desired_file.current) not in (params["mesh_current_keys"] or ())):
        # Same key ID, other algorithms or key bytes: peers that still hold the old bytes would
        # drop every packet under this SPI, and an AEAD key must never change under a live SA.
        # Unless the peers already use the new key: then this node is only being repaired.
        raise KeysFileError(path, "the new content changes the algorithms or the key of key ID %d without a new "
                            "key ID: give the new key another key ID and run the netsec.ipsec.rotate playbook, "
                            "which switches every node without dropping or leaking traffic" % existing_file.current.spi)
    if existing_file is not None and existing_file.current.spi != desired_file.current.spi \
            and not params["allow_larger_overhead"]:
        problem = overhead_problem(existing_file.current, desired_file.current)
        if problem:
            raise KeysFileError(path, problem)
    _warn_all(module, desired_file)
    outcome.keys_file = desired_file
    outcome.after_text = render_masked_keys_file(desired_file)

    outcome.changed = write_file(module, path, desired_bytes, KEYS_FILE_MODE, KEYS_DIRECTORY_MODE)


def _read_existing(module: Any, path: str, allow_insecure: bool) -> Tuple[Optional[bytes], Optional[KeysFile]]:
    """The file's bytes and, when they parse, its keys; (None, None) when there is no file."""
    try:
        existing_bytes = read_keys_bytes(path)
    except KeysFileError as error:
        if error.reason == MISSING_FILE_REASON:
            return None, None
        raise
    try:
        existing_file = parse_keys_text(existing_bytes, path, allow_insecure)
    except KeysFileError:
        return existing_bytes, None
    module.no_log_values.update(all_secrets(existing_file))
    return existing_bytes, existing_file


def _masked_text(existing_bytes: Optional[bytes], existing_file: Optional[KeysFile], path: str) -> str:
    if existing_bytes is None:
        return ""
    if existing_file is None:
        # Never show content that did not parse: it may hold a key we cannot recognise.
        return "# %s is not a valid keys file (%d bytes, not shown)\n" % (path, len(existing_bytes))
    return render_masked_keys_file(existing_file)


def _retaining_previous(existing_file: KeysFile, existing_bytes: Optional[bytes], desired_file: KeysFile,
                        desired_bytes: bytes, allow_insecure: bool) -> Tuple[KeysFile, bytes]:
    """The desired keys preceded by the file's current key: the first step of a rotation.

    When the file already ends with the desired keys (the rotation's first step is done, or
    the old key has already been dropped) it stays as it is, so re-runs change nothing.
    """
    desired_count = len(desired_file.keys)
    if existing_file.keys[-desired_count:] == desired_file.keys and existing_bytes is not None:
        return existing_file, existing_bytes
    try:
        check_successor(existing_file, desired_file.keys[0])
    except KeysFileError as error:
        raise KeysFileError("rotation from %s" % existing_file.source, error.reason) from None
    combined_text = render_key_line(existing_file.current) + "\n" + desired_bytes.decode("ascii")
    return (parse_keys_text(combined_text, "option content after the retained key", allow_insecure),
            combined_text.encode("ascii"))


def _warn_all(module: Any, keys_file: KeysFile) -> None:
    for warning in keys_file.warnings:
        module.warn(warning)
