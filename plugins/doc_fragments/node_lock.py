# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The node lock every writing module of the collection takes."""

    DOCUMENTATION = r"""
options:
  lock_timeout:
    description:
      - How many seconds to wait for the node lock, C(/run/netsec-ipsec.lock), which every writing module of this
        collection holds from its first read of the node to its last change, so that two playbook runs reaching the
        same node (two C(mesh.yml), or C(mesh.yml) during C(rotate.yml)) reconcile it one at a time.
      - When the lock is still held after this long, the task fails, changing nothing, with a message naming the
        process that holds it, its module and since when. V(0) tries once.
      - The kernel releases the lock when its holder exits in any way, so there is never a stale lock to remove.
      - In check mode the module waits the same way for a run that is changing the node, but takes a shared lock and
        writes nothing, not even the lock file.
    type: float
    default: 120
notes:
  - Writing modules of this collection on one node run one at a time (see O(lock_timeout)).
"""
