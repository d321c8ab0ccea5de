# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests run modules in-process: their node lock lives in the test's temporary
directory, not in the host's /run (which a non-root user cannot write)."""

from __future__ import annotations

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils import _lock


@pytest.fixture(autouse=True)
def private_node_lock(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path_factory.mktemp("run") / "netsec-ipsec.lock")
    monkeypatch.setattr(_lock, "NODE_LOCK_PATH", path)
    return path
