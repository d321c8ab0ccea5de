# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run at a time per node: the lock around every read-plan-apply that writes.

Two playbook runs that reach the same node (two ``mesh.yml``, or ``mesh.yml`` during
``rotate.yml``) would otherwise both read the same dump, both plan against it and both
apply, each undoing or repeating the other's half. The writing modules hold this lock from
their first read to their last write, so their runs on a node are serialised.

* It is an ``flock()`` on a file under /run: the kernel releases it when the holding process
  exits in any way (a killed module, a lost SSH connection), so there is no stale lock to
  clean up, and /run is emptied at boot. The file itself is left in place; it is never
  followed if it is a symbolic link.
* The holder writes its pid, its module and the time it took the lock into the file, so a run
  that waits in vain can say which process holds the node.
* The wait is bounded: a run that cannot get the lock within ``timeout`` seconds fails with
  that message and has changed nothing.
* Check mode takes a shared lock on an existing file and writes nothing: a check waits for a
  run that is applying (so it never reads a half-applied node) but changes nothing, not even
  /run, and two checks do not wait for each other.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from typing import Callable, Iterator, Optional

NODE_LOCK_PATH = "/run/netsec-ipsec.lock"
DEFAULT_LOCK_TIMEOUT = 120.0
LOCK_FILE_MODE = 0o644
# The first retries come quickly (a converged run holds the lock for milliseconds), later
# ones back off to this interval.
MAX_POLL_INTERVAL = 0.5
FIRST_POLL_INTERVAL = 0.02


class NodeLockError(Exception):
    """The lock could not be taken; the message names the file and, when known, the holder."""


def _open_lock_file(path: str, shared: bool) -> Optional[int]:
    """The lock file's descriptor; None in check mode (``shared``) when there is no file."""
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        if shared:
            return os.open(path, flags | os.O_RDONLY)
        return os.open(path, flags | os.O_RDWR | os.O_CREAT, LOCK_FILE_MODE)
    except FileNotFoundError:
        if shared:
            return None
        raise NodeLockError("%s: its directory does not exist, so no run can lock this node" % path) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NodeLockError("%s: is a symbolic link; the node lock is never followed" % path) from None
        raise NodeLockError("%s: cannot open the node lock: %s" % (path, error.strerror)) from None


def read_holder(path: str) -> str:
    """What the lock file says about its holder, or '' when it says nothing readable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read(512).strip()
    except OSError:
        return ""


def _holder_description(path: str) -> str:
    holder = read_holder(path)
    if not holder:
        return "another run holds this node"
    fields = dict(part.split("=", 1) for part in holder.split() if "=" in part)
    pid = fields.get("pid", "")
    alive = pid.isdigit() and os.path.exists("/proc/%s" % pid)
    return "another run holds this node: %s%s" % (
        " ".join("%s=%s" % item for item in sorted(fields.items())),
        "" if alive or not pid else " (that process has exited; its successor has not written yet)",
    )


@contextlib.contextmanager
def node_lock(holder: str, timeout: float = DEFAULT_LOCK_TIMEOUT, shared: bool = False,
              path: Optional[str] = None, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    """Hold the node lock (``path``, by default ``NODE_LOCK_PATH`` as it is at the call) for
    the body; ``holder`` names the module in the lock file.

    Raises NodeLockError, having changed nothing, when the lock is not free within
    ``timeout`` seconds (0: one attempt).
    """
    path = path or NODE_LOCK_PATH
    fd = _open_lock_file(path, shared)
    if fd is None:
        yield
        return
    try:
        deadline = clock() + max(timeout, 0.0)
        interval = FIRST_POLL_INTERVAL
        operation = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        while True:
            try:
                fcntl.flock(fd, operation)
                break
            except BlockingIOError:
                remaining = deadline - clock()
                if remaining <= 0:
                    raise NodeLockError("%s: %s; gave up after waiting %g s (option lock_timeout), nothing was changed"
                                        % (path, _holder_description(path), timeout)) from None
                sleep(min(interval, remaining))
                interval = min(interval * 2, MAX_POLL_INTERVAL)
        if not shared:
            record = "pid=%d module=%s since=%s\n" % (
                os.getpid(), holder, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            os.ftruncate(fd, 0)
            os.pwrite(fd, record.encode("ascii", "replace"), 0)
        yield
    finally:
        os.close(fd)  # releases the flock
