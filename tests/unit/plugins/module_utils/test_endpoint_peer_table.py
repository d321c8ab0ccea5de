# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""xfrm_endpoint with a peer table (issue 17): stored by the call that gives its text, used by
the calls that name it, never written in check mode, removed with the rest; and the module's
argument spec keeps ``peers`` and ``peer_table`` apart."""

from __future__ import annotations

import json
import os
import stat
from typing import Any, Dict

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint
from ansible_collections.netsec.ipsec.plugins.module_utils._modules.info import stored_peer_table
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.peer_table import (
    PEER_TABLE, render_peer_table, table_fingerprint,
)
from ansible_collections.netsec.ipsec.plugins.modules import xfrm_endpoint
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.module_factory import file_module
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import FakeKernel
# node is a fixture: pytest finds it by name.
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.test_xfrm_endpoint_noop import (  # noqa: F401 pylint: disable=unused-import
    BOOT_ID, node,
)


def _table(node_fixture: Dict[str, Any]) -> Dict[str, str]:
    """The fixture's peers as a table (the node itself listed too, as the role's table has it)."""
    peers = [dict(name="node1", addresses=["10.99.0.1"])] + [
        {key: value for key, value in peer.items() if key in ("name", "addresses", "boot_id")}
        for peer in node_fixture["params"]["peers"]]
    text = render_peer_table(peers)
    return {"fingerprint": table_fingerprint(text), "peers": text}


def _run(node_fixture: Dict[str, Any], state_dir: str, table: Dict[str, Any], check_mode: bool = False,
         diff: bool = True, verbosity: int = 0, **changes: Any) -> Dict[str, Any]:
    module = file_module(check_mode=check_mode)
    module._diff = diff  # pylint: disable=protected-access
    module._verbosity = verbosity  # pylint: disable=protected-access
    params = dict(node_fixture["params"], state_dir=state_dir, peers=[],
                  peer_table=dict(dict(keep_outbound=[], keep_inbound_level=[]), **table), **changes)
    params["local"] = dict(params["local"], name="node1")
    return endpoint.reconcile_node(module, params, BOOT_ID)


def test_the_table_plans_what_the_peers_plan_and_is_stored_once(node, tmp_path):  # noqa: F811
    state_dir = str(tmp_path / "state")
    table = _table(node)
    first = _run(node, state_dir, table)
    # The fixture's node holds what its peers want: the table plans the same, nothing to apply.
    assert FakeKernel.applied == [] and first["sas"]["unchanged"] == 10 and first["policies"]["unchanged"] == 12
    path = tmp_path / "state" / PEER_TABLE
    assert path.read_text() == table["peers"] and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first["stored_peer_table"] == table["fingerprint"] == stored_peer_table(state_dir)
    assert [diff["after_header"] for diff in first["diff"][1:]][-1] == str(path)
    # A later call names it: same plan, nothing written.
    second = _run(node, state_dir, {"fingerprint": table["fingerprint"]})
    assert not second["changed"] and not second["state_files_changed"] and FakeKernel.applied == []
    assert second["sas"] == first["sas"] and second["policies"] == first["policies"]
    assert second["stored_peer_table"] == table["fingerprint"]


def test_a_later_call_gives_the_trust_of_its_phase(node, tmp_path):  # noqa: F811
    state_dir = str(tmp_path / "state")
    table = _table(node)
    _run(node, state_dir, table)
    # peer2 is not known to send ESP: its IN policy keeps its installed level (required here).
    kept = _run(node, state_dir, {"fingerprint": table["fingerprint"], "keep_inbound_level": ["peer2"]})
    assert not kept["changed"]
    # peer3 (10.98.0.5) is not known to accept ESP: on a node that lost its SAs, every SA
    # comes back but the OUT SA towards it, which is neither added nor removed.
    del FakeKernel.states[:]
    kept = _run(node, state_dir, {"fingerprint": table["fingerprint"], "keep_outbound": ["peer3"]})
    assert kept["sas"]["added"] == 9 and len(FakeKernel.applied) == 9
    assert [line for line in kept["added"] if line.startswith("state 10.99.0.1 -> ")] and not [
        line for line in kept["added"] if line.startswith("state 10.99.0.1 -> 10.98.0.5 ")]
    with pytest.raises(PlanError, match=r"peer_table.keep_outbound names nobody, which the peer table does not hold"):
        _run(node, state_dir, {"fingerprint": table["fingerprint"], "keep_outbound": ["nobody"]})


def test_check_mode_stores_nothing_so_a_later_check_call_sends_the_text_again(node, tmp_path):  # noqa: F811
    state_dir = str(tmp_path / "state")
    table = _table(node)
    checked = _run(node, state_dir, table, check_mode=True)
    assert checked["state_files_changed"] and checked["stored_peer_table"] is None
    assert not (tmp_path / "state").exists()
    # What the role does next in check mode: the node does not hold the table, so the text again.
    with pytest.raises(PlanError, match=r"peer_table gives no peers and %s holds no peer table"
                       % os.path.join(state_dir, PEER_TABLE)):
        _run(node, state_dir, {"fingerprint": table["fingerprint"]}, check_mode=True)
    assert _run(node, state_dir, table, check_mode=True)["stored_peer_table"] is None
    # With a table stored by an earlier run, check mode reports that one, not the one it was given.
    _run(node, state_dir, table)
    other = dict(node)
    other["params"] = dict(node["params"], peers=node["params"]["peers"][:3])
    smaller = _table(other)
    assert _run(node, state_dir, smaller, check_mode=True)["stored_peer_table"] == table["fingerprint"]
    assert stored_peer_table(state_dir) == table["fingerprint"]


def test_a_stored_table_that_is_not_the_named_one_is_refused_and_nothing_changes(node, tmp_path):  # noqa: F811
    state_dir = str(tmp_path / "state")
    table = _table(node)
    _run(node, state_dir, table)
    path = tmp_path / "state" / PEER_TABLE
    path.write_text(table["peers"].replace("10.98.0.2", "10.98.0.99"))
    del FakeKernel.states[0]
    with pytest.raises(PlanError, match=r"the table in %s is sha256:\w+, not %s" % (path, table["fingerprint"])):
        _run(node, state_dir, {"fingerprint": table["fingerprint"]})
    assert FakeKernel.applied == []
    with pytest.raises(PlanError, match=r"state_dir is empty, so no table is stored: give peer_table.peers"):
        _run(node, "", {"fingerprint": table["fingerprint"]})


def test_a_teardown_removes_the_table_with_the_other_files(node, tmp_path):  # noqa: F811
    state_dir = str(tmp_path / "state")
    table = _table(node)
    _run(node, state_dir, table)
    torn = _run(node, state_dir, table, state="absent")
    assert torn["state_files_changed"] and torn["stored_peer_table"] is None and os.listdir(state_dir) == []


def _module_result(capsys: Any, args: Dict[str, Any]) -> Dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        xfrm_endpoint.main()
    return json.loads(capsys.readouterr().out)


def test_peers_and_peer_table_are_mutually_exclusive(capsys):
    result = _module_result(capsys, {"local": {"addresses": ["10.0.0.1"]},
                                     "peers": [{"name": "b", "addresses": ["10.0.0.2"]}],
                                     "peer_table": {"fingerprint": "sha256:" + "0" * 64}})
    assert result["failed"] and "mutually exclusive: peers|peer_table" in result["msg"]
    result = _module_result(capsys, {"local": {"addresses": ["10.0.0.1"]}, "peer_table": {"peers": "[]"}})
    assert result["failed"] and "missing required arguments: fingerprint found in peer_table" in result["msg"]


def test_the_lines_of_each_change_come_with_diff_or_verbosity_the_counts_always(node, tmp_path):  # noqa: F811
    """Outside --diff and -v the result has the counts, not a line per entry (issue 17: the
    controller reads and registers every result, and the lines grow with the peers)."""
    del FakeKernel.states[:]
    table = _table(node)
    quiet = _run(node, str(tmp_path / "quiet"), table, check_mode=True, diff=False)
    verbose = _run(node, str(tmp_path / "verbose"), table, check_mode=True, diff=False, verbosity=1)
    with_diff = _run(node, str(tmp_path / "diff"), table, check_mode=True)
    assert quiet["changed"] and quiet["sas"]["added"] == 10 and quiet["sas"] == verbose["sas"] == with_diff["sas"]
    assert quiet["policies"] == verbose["policies"] == with_diff["policies"]
    assert not {"added", "updated", "removed", "diff"} & set(quiet)
    assert "diff" not in verbose and "diff" in with_diff
    assert len(verbose["added"]) == 10 + quiet["policies"]["added"] and verbose["added"] == with_diff["added"]
    assert verbose["updated"] == verbose["removed"] == []
