# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one file writer (``_files``) with a real AnsibleModule, on temporary directories."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path
from typing import Any, Dict, List

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsec.ipsec.plugins.module_utils._files import FileError, remove_file, write_file
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.module_factory import file_module

SECRET = b"3+ rfc4106(gcm(aes)) 0x5d1a7c3e9b0f24688ac1e7d3f05b9a2c61e8d4b7 128\n"
OTHER = b"4+ rfc4106(gcm(aes)) 0xa83f0c6e2d9b7140f5c3e18a6b2d4f97c0e1a5b3 128\n"
PRIVATE = "0600"
DIRECTORY_MODE = 0o700


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def write(path: Path, content: bytes = SECRET, check_mode: bool = False, **params: Any) -> bool:
    return write_file(file_module(check_mode, **params), str(path), content, PRIVATE, DIRECTORY_MODE)


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> List[Dict[str, Any]]:
    """Every atomic_move call, with the temporary file's directory and mode when it was called
    and the destination's mode right after the real move (before any attribute is set)."""
    calls: List[Dict[str, Any]] = []
    real_move = AnsibleModule.atomic_move

    def recording_move(self: AnsibleModule, source: str, destination: str, *args: Any, **kwargs: Any) -> None:
        call = {"directory": os.path.dirname(source), "source_mode": stat.S_IMODE(os.stat(source).st_mode),
                "content": Path(source).read_bytes()}
        real_move(self, source, destination, *args, **kwargs)
        call["moved_mode"] = stat.S_IMODE(os.stat(destination).st_mode)
        calls.append(call)

    monkeypatch.setattr(AnsibleModule, "atomic_move", recording_move)
    return calls


@pytest.fixture
def failing_move(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """atomic_move fails as its fallbacks do (plain Exception); records the source paths."""
    sources: List[str] = []

    def fail(self: AnsibleModule, source: str, destination: str, *args: Any, **kwargs: Any) -> None:
        sources.append(source)
        raise Exception("Could not replace %r with %r." % (destination, source))  # pylint: disable=broad-exception-raised

    monkeypatch.setattr(AnsibleModule, "atomic_move", fail)
    return sources


# --- never through a link, never anything but a regular file -------------------------------


@pytest.mark.parametrize("target_exists", [True, False], ids=["to-a-file", "dangling"])
def test_a_symlink_is_refused_for_writing_and_nothing_changes(tmp_path: Path, target_exists: bool) -> None:
    target = tmp_path / "target"
    if target_exists:
        target.write_bytes(b"")
        target.chmod(0o644)
    link = tmp_path / "keys"
    link.symlink_to(target)
    for check_mode in (False, True):
        with pytest.raises(FileError) as caught:
            write(link, check_mode=check_mode)
        assert str(caught.value).startswith("%s: it is a symbolic link" % link)
        assert caught.value.path == str(link)
    assert link.is_symlink() and os.readlink(str(link)) == str(target)
    if target_exists:
        assert target.read_bytes() == b"" and mode_of(target) == 0o644
    else:
        assert not target.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["keys"] + (["target"] if target_exists else []))


def test_a_symlink_is_refused_for_removal(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(SECRET)
    link = tmp_path / "keys"
    link.symlink_to(target)
    for check_mode in (False, True):
        with pytest.raises(FileError, match="it is a symbolic link"):
            remove_file(file_module(check_mode), str(link))
    assert link.is_symlink() and target.read_bytes() == SECRET


def test_a_directory_or_a_fifo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    os.mkfifo(str(tmp_path / "fifo"))
    with pytest.raises(FileError, match="it is a directory"):
        write(tmp_path / "dir")
    with pytest.raises(FileError, match="it is not a regular file"):
        write(tmp_path / "fifo")
    with pytest.raises(FileError, match="it is not a regular file"):
        remove_file(file_module(), str(tmp_path / "fifo"))


# --- content first, check mode ---------------------------------------------------------------


def test_equal_content_is_not_written_again(tmp_path: Path, failing_move: List[str]) -> None:
    path = tmp_path / "keys"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    inode = path.stat().st_ino
    assert write(path) is False
    assert failing_move == [] and path.stat().st_ino == inode
    # A longer file that starts with the content is not equal.
    path.write_bytes(SECRET + b"x")
    with pytest.raises(FileError):
        write(path)
    assert len(failing_move) == 1


def test_check_mode_changes_nothing_on_disk(tmp_path: Path, failing_move: List[str]) -> None:
    new = tmp_path / "missing" / "keys"
    assert write(new, check_mode=True) is True
    assert not new.parent.exists()
    existing = tmp_path / "keys"
    existing.write_bytes(OTHER)
    existing.chmod(0o644)
    assert write(existing, check_mode=True) is True
    assert existing.read_bytes() == OTHER and mode_of(existing) == 0o644
    existing.write_bytes(SECRET)
    assert write(existing, check_mode=True) is True  # the mode alone would change
    assert mode_of(existing) == 0o644
    assert failing_move == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keys"]


# --- atomic, private, no leftover ------------------------------------------------------------


def test_a_new_file_is_written_through_a_private_temporary_in_its_directory(tmp_path: Path, moves: List[Dict[str, Any]]) -> None:
    path = tmp_path / "ipsec" / "keys"
    old_umask = os.umask(0o022)
    try:
        assert write(path) is True
    finally:
        os.umask(old_umask)
    (move,) = moves
    assert move["directory"] == str(path.parent) and move["source_mode"] == 0o600 and move["content"] == SECRET
    # atomic_move gives a file it creates 0666 minus the umask: never readable by others here.
    assert move["moved_mode"] == 0o600
    assert path.read_bytes() == SECRET and mode_of(path) == 0o600
    assert mode_of(path.parent) == DIRECTORY_MODE
    assert os.listdir(str(path.parent)) == ["keys"]
    assert write(path) is False


def test_replacing_a_loose_file_never_shows_the_new_content_to_others(tmp_path: Path, moves: List[Dict[str, Any]]) -> None:
    path = tmp_path / "keys"
    path.write_bytes(OTHER)
    path.chmod(0o644)
    assert write(path) is True
    (move,) = moves
    # atomic_move copies the old file's mode to the new one; the old file got 0600 first.
    assert move["moved_mode"] == 0o600
    assert path.read_bytes() == SECRET and mode_of(path) == 0o600


def test_a_failing_move_leaves_the_old_file_and_no_temporary(tmp_path: Path, failing_move: List[str]) -> None:
    path = tmp_path / "keys"
    path.write_bytes(OTHER)
    with pytest.raises(FileError) as caught:
        write(path)
    assert str(caught.value).startswith("%s: Could not replace" % path)
    (source,) = failing_move
    assert os.path.dirname(source) == str(tmp_path)
    assert path.read_bytes() == OTHER
    assert os.listdir(str(tmp_path)) == ["keys"]


def test_a_failing_write_of_the_temporary_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    path = tmp_path / "keys"
    with pytest.raises(FileError, match="%s: No space left on device" % path):
        write(path)
    assert os.listdir(str(tmp_path)) == []


def test_an_unwritable_directory_is_an_error_naming_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    path = tmp_path / "keys"
    with pytest.raises(FileError, match="%s: cannot create a temporary file in %s: Permission denied" % (path, tmp_path)):
        write(path)


# --- attributes through the common file arguments ------------------------------------------


def test_default_mode_and_the_tasks_mode_owner_and_group(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    write(path)
    assert mode_of(path) == 0o600
    user, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
    assert write(path, mode="0640", owner=user, group=group) is True  # the mode alone changes
    assert mode_of(path) == 0o640
    assert (path.stat().st_uid, path.stat().st_gid) == (os.geteuid(), os.getegid())
    assert write(path, mode="u=rw,g=r", owner=user, group=group) is False
    assert write(path) is True and mode_of(path) == 0o600


def test_remove_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_bytes(SECRET)
    assert remove_file(file_module(check_mode=True), str(path)) is True and path.exists()
    assert remove_file(file_module(), str(path)) is True and not path.exists()
    assert remove_file(file_module(), str(path)) is False
