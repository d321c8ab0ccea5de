# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node lock (issue 16): real flock()s on a file in a temporary directory, held by other
processes, so what is tested is what the kernel does, not a stand-in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._lock import NodeLockError, node_lock, read_holder

# A process that takes the lock as a module would and holds it until it is killed.
HOLDER = (
    "import sys, time\n"
    "from ansible_collections.netsec.ipsec.plugins.module_utils._lock import node_lock\n"
    "with node_lock('netsec.ipsec.holder', timeout=0, shared=sys.argv[2] == 'shared', path=sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


@pytest.fixture
def lock_path(tmp_path: Path) -> str:
    return str(tmp_path / "netsec-ipsec.lock")


@pytest.fixture
def holders() -> Iterator[List["subprocess.Popen[str]"]]:
    started: List["subprocess.Popen[str]"] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def _hold(holders: List["subprocess.Popen[str]"], path: str, mode: str = "exclusive") -> "subprocess.Popen[str]":
    process = subprocess.Popen([sys.executable, "-c", HOLDER, path, mode], stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ))
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    holders.append(process)
    return process


def test_a_free_lock_is_taken_and_names_its_holder(lock_path: str) -> None:
    with node_lock("netsec.ipsec.xfrm_endpoint", timeout=0, path=lock_path):
        record = read_holder(lock_path)
    assert record.startswith("pid=%d module=netsec.ipsec.xfrm_endpoint since=" % os.getpid())
    assert oct(os.stat(lock_path).st_mode & 0o777) == "0o644"


def test_a_held_lock_fails_after_the_bounded_wait_naming_the_holder(lock_path: str, holders: list) -> None:
    holder = _hold(holders, lock_path)
    started = time.monotonic()
    with pytest.raises(NodeLockError) as failure:
        with node_lock("netsec.ipsec.xfrm_keys", timeout=0.3, path=lock_path):
            pytest.fail("the body ran while another process held the lock")
    waited = time.monotonic() - started
    message = str(failure.value)
    assert lock_path in message and "pid=%d" % holder.pid in message
    assert "module=netsec.ipsec.holder" in message and "0.3 s" in message and "nothing was changed" in message
    assert 0.3 <= waited < 2.0
    # The failed attempt left the holder's record as it was.
    assert read_holder(lock_path).startswith("pid=%d " % holder.pid)


def test_the_kernel_releases_the_lock_of_a_killed_holder(lock_path: str, holders: list) -> None:
    holder = _hold(holders, lock_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with node_lock("netsec.ipsec.xfrm_endpoint", timeout=0, path=lock_path):
        assert read_holder(lock_path).startswith("pid=%d " % os.getpid())


def test_a_waiting_run_gets_the_lock_once_the_holder_is_done(lock_path: str, holders: list) -> None:
    holder = _hold(holders, lock_path)
    waits: List[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            holder.kill()
            holder.wait()
        time.sleep(seconds)

    with node_lock("netsec.ipsec.xfrm_endpoint", timeout=30, path=lock_path, sleep=sleep):
        pass
    assert len(waits) >= 3 and waits[0] < waits[1] < waits[2]


def test_check_mode_without_a_lock_file_creates_nothing(lock_path: str) -> None:
    with node_lock("netsec.ipsec.xfrm_endpoint", timeout=0, shared=True, path=lock_path):
        pass
    assert not os.path.exists(lock_path)


def test_check_mode_waits_for_a_writer_but_not_for_another_check(lock_path: str, holders: list) -> None:
    writer = _hold(holders, lock_path)
    with pytest.raises(NodeLockError, match="pid=%d" % writer.pid):
        with node_lock("netsec.ipsec.xfrm_endpoint", timeout=0.1, shared=True, path=lock_path):
            pass
    writer.kill()
    writer.wait()
    record = read_holder(lock_path)
    _hold(holders, lock_path, "shared")
    with node_lock("netsec.ipsec.xfrm_endpoint", timeout=0, shared=True, path=lock_path):
        pass
    assert read_holder(lock_path) == record, "a check wrote the lock file"
    with pytest.raises(NodeLockError):
        with node_lock("netsec.ipsec.xfrm_endpoint", timeout=0, path=lock_path):
            pass


def test_a_symbolic_link_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    link = tmp_path / "netsec-ipsec.lock"
    link.symlink_to(target)
    for shared in (False, True):
        with pytest.raises(NodeLockError, match="symbolic link"):
            with node_lock("netsec.ipsec.xfrm_endpoint", timeout=0, shared=shared, path=str(link)):
                pass
    assert target.read_text() == "precious\n"


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / "no-such-dir" / "netsec-ipsec.lock")
    with pytest.raises(NodeLockError, match="directory does not exist"):
        with node_lock("netsec.ipsec.xfrm_endpoint", timeout=0, path=path):
            pass
