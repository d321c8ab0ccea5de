# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of module ``netsec.ipsec.xfrm_endpoint``; the module file holds docs and arguments.

Read the keys file and the boot id on the node, build the desired set, dump the kernel,
plan the delta on owned entries, and apply it in the planner's safe order. Every key read
or derived goes into ``no_log_values`` before anything could print it.

A failed apply is rolled back: the operations that went through are undone in reverse
order (an add is deleted, a delete re-added from the dump, an update restored), so a node
whose kernel refuses an SA is left exactly as it was, and the error names the refused
entry. Only if the rollback itself fails is the node left part-way; the result then says
which operations stayed applied, and a re-run converges from there.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import (
    XfrmKernel, XfrmKernelError, describe_operation,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import all_secrets
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import load_keys_file
from ansible_collections.netsec.ipsec.plugins.module_utils._lock import NodeLockError, node_lock
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.derive import KeyDerivationError
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    PHASE_ALL, STATE_ABSENT, DesiredSet, LocalNode, Peer, PlanOptions, build_desired, fully_trusted,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.lockout import (
    covering_policies, parse_ssh_connection,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import (
    PlanError, is_owned_policy, is_owned_state,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._files import FileError, remove_file, write_file
from ansible_collections.netsec.ipsec.plugins.module_utils._planner import boot
from ansible_collections.netsec.ipsec.plugins.module_utils._planner import peer_table
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import Plan, reconcile, rollback
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.report import (
    changed_lines, render_plan, secrets_of,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    XfrmEntry, XfrmPolicy, XfrmState, canonical_policy, canonical_state,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
MODULE_NAME = "netsec.ipsec.xfrm_endpoint"
# The local node's name in messages when the task gives none (the mesh role always does).
UNNAMED_LOCAL_NODE = "the local node"


def run_module(module: Any) -> None:
    """Entry point called by the module's ``main()``."""
    params = module.params
    try:
        boot_id = read_boot_id(BOOT_ID_PATH)
        with node_lock(MODULE_NAME, timeout=params["lock_timeout"], shared=module.check_mode):
            result = reconcile_node(module, params, boot_id)
    except (KeysFileError, PlanError, KeyDerivationError, XfrmKernelError, FileError, NodeLockError,
            OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


def read_boot_id(path: str) -> str:
    with open(path, encoding="ascii") as stream:
        return stream.read().strip()


def local_node(params: Dict[str, Any], boot_id: str) -> LocalNode:
    # The node is who the inventory says it is (option local.name), never the kernel's
    # hostname: a machine cloned from a peer keeps that peer's hostname.
    local = params["local"]
    return LocalNode(name=local.get("name") or UNNAMED_LOCAL_NODE, addresses=tuple(local["addresses"]),
                     subnets=tuple(local.get("subnets") or ()), boot_id=boot_id)


def peers_of(params: Dict[str, Any], table: Optional[str] = None) -> List[Peer]:
    """The call's peers: option ``peers``, or the peer table's (``table``, its text) with
    the trust that ``peer_table`` gives."""
    given = params["peers"]
    if table is not None:
        option = params["peer_table"]
        given = peer_table.table_peers(peer_table.parse_peer_table(table), option.get("keep_outbound") or (),
                                       option.get("keep_inbound_level") or ())
    return [Peer(name=peer["name"], addresses=tuple(peer["addresses"]),
                 subnets=tuple(peer.get("subnets") or ()), boot_id=peer.get("boot_id") or None,
                 inbound_level=peer.get("inbound_level"), outbound=peer.get("outbound") or "enable")
            for peer in given]


def peer_table_text(params: Dict[str, Any]) -> Optional[str]:
    """The text of the peer table the call uses (``peer_table``: given, or stored in
    ``state_dir`` under the fingerprint the call names); None when it gives ``peers``."""
    option = params.get("peer_table")
    if not option:
        return None
    state_dir = params.get("state_dir")
    given = option.get("peers")
    if given is None and not state_dir:
        raise PlanError("peer_table gives no peers and state_dir is empty, so no table is stored: give peer_table.peers")
    path = os.path.join(state_dir or "", peer_table.PEER_TABLE)
    return peer_table.table_text(option.get("fingerprint"), given, None if given is not None else _read_text(path),
                                 path)


def plan_options(params: Dict[str, Any]) -> PlanOptions:
    return PlanOptions(
        per_pair_keys=params["per_pair_keys"],
        out_spi=params["out_spi"],
        outbound=params["outbound"],
        inbound_level=params["inbound_level"],
        bypass=tuple({name: value for name, value in entry.items() if value is not None}
                     for entry in params["bypass"]),
        marks=params["marks"],
        reqid=params["reqid"],
        state=params["state"],
        purge=params["purge"],
        phase=params["phase"],
    )


def reconcile_node(module: Any, params: Dict[str, Any], boot_id: str) -> Dict[str, Any]:
    # The run builds tens of thousands of small objects and no reference cycles; the cyclic
    # garbage collector would walk them all repeatedly for nothing (measurably slower).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _reconcile_node(module, params, boot_id)
    finally:
        if collecting:
            gc.enable()


def _reconcile_node(module: Any, params: Dict[str, Any], boot_id: str) -> Dict[str, Any]:
    options = plan_options(params)
    keys: Sequence[Any] = ()
    if options.state != STATE_ABSENT:
        keys_file = load_keys_file(params["keys_file"])
        module.no_log_values.update(all_secrets(keys_file))
        keys = keys_file
    table = peer_table_text(params)
    local, peers = local_node(params, boot_id), peers_of(params, table)
    desired = build_desired(local, peers, keys, options)
    module.no_log_values.update(secrets_of(desired.states))

    with XfrmKernel() as kernel:
        current_states = kernel.dump_states()
        current_policies = kernel.dump_policies()
        # Installed SAs carry keys too (a delete may be rolled back by re-adding one).
        module.no_log_values.update(secrets_of(_with_other_keys(current_states, desired.states)))
        if params.get("skip_when_converged") and options.phase != PHASE_ALL and options.state != STATE_ABSENT:
            final_desired = build_desired(local, fully_trusted(peers), keys,
                                          dataclasses.replace(options, phase=PHASE_ALL))
            final_plan = reconcile(final_desired, current_states, current_policies)
            if not final_plan.changes:
                # The node already holds the end state of the rollout: no phase changes it.
                _warn_about_own_connection(module, final_desired.policies)
                files = _keep_state_files(module, params, final_plan, final_desired, local, peers, options, table)
                return _result(module, final_plan, boot_id, final_desired.frozen_peers, files, converged=True)
        plan = reconcile(desired, current_states, current_policies)
        for warning in plan.warnings:
            module.warn(warning)
        _warn_about_own_connection(module, desired.policies)
        if plan.changes and not module.check_mode:
            _apply_or_roll_back(module, kernel, plan, boot_id, desired.frozen_peers, desired.reqid)

    files = _keep_state_files(module, params, plan, desired, local, peers, options, table)
    return _result(module, plan, boot_id, desired.frozen_peers, files)


class _StateFiles(NamedTuple):
    """What ``_keep_state_files`` did: whether a file changed, Ansible diffs of them, and the
    fingerprint of the peer table the state directory holds afterwards (None: none)."""

    changed: bool
    diffs: List[Dict[str, str]]
    stored_peer_table: Optional[str] = None


def _keep_state_files(module: Any, params: Dict[str, Any], plan: Plan, desired: DesiredSet, local: LocalNode,
                      peers: Sequence[Peer], options: PlanOptions, table: Optional[str] = None) -> _StateFiles:
    """Bring the node's state files (``_planner.boot``) in line with what it holds once
    ``plan`` is applied: its owned policies for the boot unit, the boot ids it keyed with,
    and the peer table the call used (``table``, its text; ``_planner.peer_table``), which a
    later call may name by its fingerprint. Without a ``state_dir`` there are none; with
    ``state: absent`` they are removed. In check mode nothing is written: the stored table
    is still the one the node held before, as a later call in check mode finds it."""
    state_dir = params.get("state_dir")
    if not state_dir:
        return _StateFiles(False, [])
    policies_path = os.path.join(state_dir, boot.BOOT_POLICIES)
    keying_path = os.path.join(state_dir, boot.KEYING)
    table_path = os.path.join(state_dir, peer_table.PEER_TABLE)
    if options.state == STATE_ABSENT:
        changed = False
        diffs = []
        for path in (policies_path, keying_path, table_path):
            before = _read_text(path)
            if remove_file(module, path):
                changed = True
                diffs.append(_file_diff(path, before, None))
        return _StateFiles(changed, diffs, _fingerprint_of(table_path) if module.check_mode else None)
    previous = boot.parse_keying(_read_text(keying_path) or "")
    keyed = {peer.name: peer.boot_id for peer in peers
             if peer.name != local.name and peer.name not in desired.frozen_peers}
    keying = boot.next_keying(local.name, local.boot_id or "", options.per_pair_keys, keyed, desired.frozen_peers,
                              previous)
    contents = [(policies_path, boot.render_boot_policies([entry for entry in plan.after
                                                           if isinstance(entry, XfrmPolicy)])),
                (keying_path, boot.render_keying(keying))]
    if table is not None:
        contents.append((table_path, table))
    changed = False
    diffs = []
    for path, content in contents:
        before = _read_text(path)
        if write_file(module, path, content.encode("utf-8"), boot.STATE_FILE_MODE, boot.STATE_DIR_MODE):
            changed = True
            diffs.append(_file_diff(path, before, content))
    if table is not None and not module.check_mode:
        stored: Optional[str] = peer_table.table_fingerprint(table)
    else:
        stored = _fingerprint_of(table_path)
    return _StateFiles(changed, diffs, stored)


def _fingerprint_of(path: str) -> Optional[str]:
    """The fingerprint of the peer table in ``path``, None when there is none."""
    text = _read_text(path)
    return None if text is None else peer_table.table_fingerprint(text)


def _read_text(path: str) -> Optional[str]:
    """A state file's text, None when there is none (or it is not text: it is rewritten)."""
    try:
        with open(path, "rb") as stream:
            return stream.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _file_diff(path: str, before: Optional[str], after: Optional[str]) -> Dict[str, str]:
    return {"before": before or "", "after": after or "", "before_header": path if before is not None else "(absent)",
            "after_header": path if after is not None else "(absent)"}


def _with_other_keys(states: Sequence[XfrmState], known: Sequence[XfrmState]) -> List[XfrmState]:
    """The ``states`` that carry a key no state of ``known`` carries.

    ``secrets_of`` spells each key from its bytes alone, so the secrets of the others are
    already among those of ``known``: on a converged node that is every installed SA.
    """
    if not states:
        return []
    known_keys = {algorithm.key for state in known for algorithm in state.algorithms()}
    return [state for state in states if any(algorithm.key not in known_keys for algorithm in state.algorithms())]


def _warn_about_own_connection(module: Any, desired_policies: Sequence[XfrmPolicy]) -> None:
    """Warn, before applying, when an encrypt policy would carry Ansible's own SSH connection."""
    connection = parse_ssh_connection(os.environ.get("SSH_CONNECTION"))
    if connection is None:
        return
    for policy in covering_policies(desired_policies, connection):
        module.warn("%s covers the SSH connection Ansible is using (%s:%d -> %s:%d) and no bypass exempts "
                    "it: if the SAs on either end do not match, Ansible loses this node; add {proto: tcp, port: %d} "
                    "(side server, this node's SSH server) to bypass"
                    % (render(policy), connection[0], connection[1], connection[2], connection[3], connection[3]))


def _apply_or_roll_back(module: Any, kernel: XfrmKernel, plan: Plan, boot_id: str,
                        frozen_peers: Sequence[str], reqid: int) -> None:
    """Apply the plan; on a failure, undo what went through and tell what the node holds,
    as read back from the kernel (never assumed), then fail the module."""
    outcome = kernel.apply(plan.operations)
    if outcome.ok:
        return
    error = outcome.error
    message = error.message if error is not None else "the kernel refused an operation"
    applied = list(outcome.applied)
    if outcome.uncertain:
        # The kernel's answer was lost or unreadable: the failed operation, or (when not even
        # that is known) any of them, may have gone through. Undoing one that did not fails
        # harmlessly (nothing to delete, already there); the read-back below has the last word.
        applied = list(plan.operations) if outcome.failed is None else applied + [outcome.failed]
    rollback_problems = []
    for operation, inverse in rollback(plan, applied):
        undone = kernel.apply([inverse]) if inverse is not None else None
        if undone is None or not undone.ok:
            rollback_problems.append(undone.error.message if undone is not None and undone.error is not None
                                     else "%s cannot be undone" % describe_operation(operation))
    details: Dict[str, Any] = dict(_result(module, plan, boot_id, frozen_peers, changed=False))
    details["failed_operation"] = describe_operation(outcome.failed) if outcome.failed else None
    details["errno"] = error.errno if error is not None else None
    details["extack"] = error.extack if error is not None else None
    try:
        missing, extra = _owned_difference(plan.before, kernel.dump_states(), kernel.dump_policies(), reqid)
    except XfrmKernelError as read_error:
        details["changed"] = True
        module.fail_json(msg="%s; after rolling back, the node could not be read back (%s): what it holds is not "
                         "known, a re-run converges from here" % (message, read_error), **details)
    details["applied"] = ([LINE_MISSING + render(entry) for entry in missing]
                          + [LINE_EXTRA + render(entry) for entry in extra])
    if not missing and not extra:
        module.fail_json(msg="%s; the %d operation(s) before it were rolled back, the node is as it was (read "
                         "back from the kernel)" % (message, len(outcome.applied)), **details)
    details["changed"] = True
    module.fail_json(msg="%s; rolling back did not restore the node%s: read back, it lacks %d and has %d owned "
                     "entries it did not have before (listed in applied); a re-run converges from here"
                     % (message, " (%s)" % "; ".join(rollback_problems) if rollback_problems else "", len(missing),
                        len(extra)), **details)


# Prefixes of the ``applied`` lines after a failed rollback: what the node lacks, and has anew.
LINE_MISSING = "missing: "
LINE_EXTRA = "extra: "


def _owned_difference(before: Sequence[XfrmEntry], states: Sequence[XfrmState], policies: Sequence[XfrmPolicy],
                      reqid: int) -> Tuple[List[XfrmEntry], List[XfrmEntry]]:
    """(owned entries of ``before`` the kernel no longer holds, owned entries it holds that
    were not in ``before``), both canonical."""
    now = [canonical_state(state) for state in states if is_owned_state(state, reqid)]
    now += [canonical_policy(policy) for policy in policies if is_owned_policy(policy, reqid)]
    now_set = set(now)
    before_set = set(before)
    return [entry for entry in before if entry not in now_set], [entry for entry in now if entry not in before_set]


def reports_lines(module: Any) -> bool:
    """Whether the result lists each changed entry (``added``, ``updated``, ``removed``): with
    ``--diff`` or ``-v`` only. A line per SA and policy grows with the peers, and the controller
    reads, queues and registers every result (at a thousand members, about 240 KB per node per
    phase of a fresh mesh); the counts in ``sas`` and ``policies`` are always there."""
    # pylint: disable-next=protected-access
    return bool(module._diff) or getattr(module, "_verbosity", 0) >= 1


def _result(module: Any, plan: Plan, boot_id: str, frozen_peers: Sequence[str],
            files: Optional[_StateFiles] = None, changed: Optional[bool] = None,
            converged: bool = False) -> Dict[str, Any]:
    counts = plan.counts()
    files = files or _StateFiles(False, [])
    result: Dict[str, Any] = dict(
        changed=(plan.changed or files.changed) if changed is None else changed,
        boot_id=boot_id,
        sas=counts["sas"],
        policies=counts["policies"],
        frozen_peers=list(frozen_peers),
        converged=converged,
    )
    if reports_lines(module):
        result.update(changed_lines(plan))
    result["state_files_changed"] = files.changed
    result["stored_peer_table"] = files.stored_peer_table
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = [render_plan(plan)] + files.diffs
    return result
