# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The endpoint module after a failed apply (issue 13, kernel replies): it rolls back, then
reads the node back and reports what it really holds, never what it assumes.

The simulated kernel keeps its tables: every operation sent changes them. It can lose its
answer to one operation after applying it (the reply never reaches the module, as with
ENOBUFS on the receive side), and it can refuse the rollback's operations.
"""

from __future__ import annotations

import errno
from typing import Any, Dict, List, Optional, Sequence

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import ApplyResult, XfrmKernelError
from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    Operation, Verb, XfrmState, canonical_policy, canonical_state,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import (
    ENDPOINT_BOOT_ID, ENDPOINT_KEY_LINE, FakeKernel, FakeModule, ModuleFailed, endpoint_params,
)

BOOT_ID = ENDPOINT_BOOT_ID


class StatefulKernel(FakeKernel):
    """Applies what it is sent to ``states``/``policies``. ``lose_reply_at``: the index (in
    the first apply) of the operation whose answer is lost after it was applied;
    ``refuse_rollback``: every later apply fails at its first operation, applying nothing."""

    lose_reply_at: Optional[int] = None
    refuse_rollback = False
    calls = 0

    def apply(self, operations: Sequence[Operation]) -> ApplyResult:
        StatefulKernel.calls += 1
        if StatefulKernel.calls > 1 and StatefulKernel.refuse_rollback:
            error = XfrmKernelError("undo refused (simulated)", errno.EPERM, None, operations[0], 0)
            return ApplyResult(applied=(), failed=operations[0], error=error)
        for index, operation in enumerate(operations):
            self._change(operation)
            FakeKernel.applied.append(operation)
            if StatefulKernel.calls == 1 and index == StatefulKernel.lose_reply_at:
                error = XfrmKernelError("the kernel's answer was lost (simulated)", errno.ENOBUFS,
                                        "receive failed", operation, index)
                return ApplyResult(applied=tuple(operations[:index]), failed=operation, error=error, uncertain=True)
        return ApplyResult(applied=tuple(operations))

    @staticmethod
    def _change(operation: Operation) -> None:
        entry = operation.entry
        table: List[Any] = FakeKernel.states if isinstance(entry, XfrmState) else FakeKernel.policies
        kept = [other for other in table if other.key() != entry.key()]
        if operation.verb is not Verb.DELETE:
            kept.append(entry)
        table[:] = kept


@pytest.fixture
def node(tmp_path: Any, monkeypatch: Any) -> Dict[str, Any]:
    keys_file = tmp_path / "keys"
    keys_file.write_text(ENDPOINT_KEY_LINE)
    params = endpoint_params(str(keys_file), peer_count=2)
    monkeypatch.setattr(endpoint, "XfrmKernel", StatefulKernel)
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    FakeKernel.states, FakeKernel.policies, FakeKernel.applied = [], [], []
    StatefulKernel.lose_reply_at, StatefulKernel.refuse_rollback, StatefulKernel.calls = None, False, 0
    return params


def _tables() -> Any:
    return (sorted(map(repr, map(canonical_state, FakeKernel.states))),
            sorted(map(repr, map(canonical_policy, FakeKernel.policies))))


def test_a_lost_answer_is_undone_and_the_node_read_back_as_it_was(node: Dict[str, Any]) -> None:
    StatefulKernel.lose_reply_at = 2          # the third operation went through, its answer did not come
    with pytest.raises(ModuleFailed) as failed:
        endpoint.reconcile_node(FakeModule(), node, BOOT_ID)
    result = failed.value.result
    assert _tables() == ([], []), "the rollback must undo the operation whose answer was lost too"
    assert "answer was lost" in result["msg"]
    assert "rolled back, the node is as it was (read back from the kernel)" in result["msg"], result["msg"]
    assert result["changed"] is False and result["applied"] == []
    assert result["errno"] == errno.ENOBUFS


def test_a_failed_rollback_reports_what_the_node_really_holds(node: Dict[str, Any]) -> None:
    StatefulKernel.lose_reply_at = 2
    StatefulKernel.refuse_rollback = True
    with pytest.raises(ModuleFailed) as failed:
        endpoint.reconcile_node(FakeModule(), node, BOOT_ID)
    result = failed.value.result
    held = len(FakeKernel.states) + len(FakeKernel.policies)
    assert held == 3, _tables()
    assert "rolling back did not restore the node" in result["msg"], result["msg"]
    assert "it lacks 0 and has 3 owned entries it did not have before" in result["msg"], result["msg"]
    assert "undo refused (simulated)" in result["msg"]
    assert result["changed"] is True
    assert len(result["applied"]) == 3 and all(line.startswith(endpoint.LINE_EXTRA) for line in result["applied"])


def test_after_a_failed_rollback_a_re_run_converges(node: Dict[str, Any]) -> None:
    StatefulKernel.lose_reply_at = 2
    StatefulKernel.refuse_rollback = True
    with pytest.raises(ModuleFailed):
        endpoint.reconcile_node(FakeModule(), node, BOOT_ID)
    StatefulKernel.lose_reply_at, StatefulKernel.refuse_rollback, StatefulKernel.calls = None, False, 0
    first = endpoint.reconcile_node(FakeModule(), node, BOOT_ID)
    assert first["changed"] is True
    again = endpoint.reconcile_node(FakeModule(), node, BOOT_ID)
    assert again["changed"] is False
