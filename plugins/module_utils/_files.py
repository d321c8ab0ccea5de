# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way the collection writes and removes a file on a node.

Every file a module writes (the keys file of ``xfrm_keys``, the sysctl drop-in of
``sysctl_ipv6_forward``) goes through ``write_file``, every removal through ``remove_file``:

* The destination is never followed: a symbolic link there is refused, naming the path,
  before anything changes; so is anything but a regular file. A module that must refuse
  before other changes (live sysctls) asks ``destination_problem`` while it plans.
* The content is compared first; equal content is not rewritten. Check mode changes nothing
  on disk and reports what would change.
* A new content is written to a temporary file that ``mkstemp`` creates with mode 0600 in
  the destination directory (never in /tmp: the content may be key material), flushed to
  disk, and moved over the destination with Ansible's ``atomic_move``, which keeps the
  destination's SELinux context and falls back as ``unsafe_writes`` allows. Readers see the
  old file or the new one. The temporary file is removed on any failure.
* Mode, owner, group, SELinux context and attributes come from Ansible's common file
  arguments (``add_file_common_args=True``; ``default_mode`` when the task gives no mode)
  and are applied with ``set_fs_attributes_if_different``.

What ``atomic_move`` does to attributes, and why the order below: on an existing
destination it copies the destination's owner and mode to the new file before the rename,
so the wanted attributes are applied to the existing file first (as community.crypto does)
and the new content never has others. On a new destination it sets mode 0666 minus the
umask after the rename, so the move runs under umask 077: until the wanted mode is set, a
new file is 0600, never readable by others.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Union

if TYPE_CHECKING:  # only for the annotations: planning code (_sysctl) imports this file too
    from ansible.module_utils.basic import AnsibleModule

# Mode of a file atomic_move creates, until its wanted mode is applied: 0666 & ~077 = 0600.
PRIVATE_UMASK = 0o077
TEMPORARY_SUFFIX = ".tmp"

Mode = Union[str, int]


class FileError(Exception):
    """A file the collection refuses, or fails, to write or remove.

    ``str()`` names the path and says why; ``reason`` is the why alone, for a caller that
    names the path its own way.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__("%s: %s" % (path, reason))
        self.path = path
        self.reason = reason


def destination_problem(path: str) -> Optional[str]:
    """Why ``path`` may not be written or removed, or None (a regular file, or nothing).

    A symbolic link is refused, never followed: writing through it would replace or chmod
    whatever it points to, and removing it would leave its target.
    """
    try:
        status = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # nothing there; missing directories are created on write
    except OSError as error:
        return "cannot inspect it: %s" % (error.strerror or error)
    if stat.S_ISLNK(status.st_mode):
        return ("it is a symbolic link, and netsec.ipsec never writes or removes a file through "
                "a link: replace the link with the file, or give the file's own path")
    if stat.S_ISDIR(status.st_mode):
        return "it is a directory"
    if not stat.S_ISREG(status.st_mode):
        return "it is not a regular file"
    return None


def write_file(module: AnsibleModule, path: str, content: bytes, default_mode: Mode,
               directory_mode: int) -> bool:
    """Make ``path`` hold exactly ``content`` with the task's file attributes.

    Returns whether anything changed (or would, in check mode): the content, or an
    attribute alone. Missing parent directories are created with ``directory_mode``.
    Raises ``FileError`` when the destination is refused or cannot be written; nothing
    has changed then, except, rarely, attributes of the old file when the move failed.
    """
    _refuse_bad_destination(path)
    file_arguments = _file_arguments(module, path, default_mode)
    changed = _current_content(path, len(content)) != content
    if changed and not module.check_mode:
        _replace(module, path, content, file_arguments, directory_mode)
    if os.path.lexists(path):
        changed = module.set_fs_attributes_if_different(file_arguments, changed)
    return changed


def remove_file(module: AnsibleModule, path: str) -> bool:
    """Remove ``path``; returns whether there was a file (in check mode, whether there is).

    Raises ``FileError`` for a symbolic link or anything but a regular file at ``path``, or
    when the removal fails.
    """
    _refuse_bad_destination(path)
    if not os.path.lexists(path):
        return False
    if not module.check_mode:
        try:
            os.unlink(path)
        except OSError as error:
            raise FileError(path, error.strerror or str(error)) from None
    return True


def _refuse_bad_destination(path: str) -> None:
    problem = destination_problem(path)
    if problem:
        raise FileError(path, problem)


def _file_arguments(module: AnsibleModule, path: str, default_mode: Mode) -> Dict[str, Any]:
    arguments = module.load_file_common_arguments(module.params, path=path)
    if arguments.get("mode") is None:
        arguments["mode"] = default_mode
    return arguments


def _current_content(path: str, size: int) -> Optional[bytes]:
    """What ``path`` holds, read up to ``size`` + 1 bytes (enough to tell it from a content
    of ``size`` bytes); None when there is no file."""
    # O_NOFOLLOW: a link put there since the check fails here instead of being read.
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise FileError(path, "cannot read it: %s" % (error.strerror or error)) from None
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise FileError(path, "it is not a regular file")
        return stream.read(size + 1)


def _replace(module: AnsibleModule, path: str, content: bytes, file_arguments: Dict[str, Any],
             directory_mode: int) -> None:
    directory = os.path.dirname(path) or "."
    _make_directories(path, directory, directory_mode)
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path),
                                                 suffix=TEMPORARY_SUFFIX, dir=directory)
    except OSError as error:
        raise FileError(path, "cannot create a temporary file in %s: %s"
                        % (directory, error.strerror or error)) from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        if os.path.lexists(path):
            module.set_fs_attributes_if_different(file_arguments, False)
        with _umask(PRIVATE_UMASK):
            module.atomic_move(temporary, path, unsafe_writes=bool(module.params.get("unsafe_writes")))
    except OSError as error:
        raise FileError(path, error.strerror or str(error)) from None
    # atomic_move raises plain Exception when its fallbacks fail, not only OSError.
    except Exception as error:
        raise FileError(path, str(error)) from None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
    _sync_directory(path, directory)


def _make_directories(path: str, directory: str, mode: int) -> None:
    """Create ``directory`` and its missing parents, each with ``mode`` whatever the umask."""
    missing = []
    while not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    try:
        for created in reversed(missing):
            os.mkdir(created, mode)
            os.chmod(created, mode)
    except OSError as error:
        raise FileError(path, "cannot create directory %s: %s"
                        % (error.filename or directory, error.strerror or error)) from None


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _sync_directory(path: str, directory: str) -> None:
    """Make the rename durable: the directory entry, not only the file, must reach the disk."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise FileError(path, "written, but directory %s cannot be synced: %s"
                        % (directory, error.strerror or error)) from None
