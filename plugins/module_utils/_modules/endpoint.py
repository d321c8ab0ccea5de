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
import socket
from typing import Any, Dict, List, Optional, Sequence

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import (
    XfrmKernel, XfrmKernelError, describe_operation,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import all_secrets
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import load_keys_file
from ansible_collections.netsec.ipsec.plugins.module_utils._nl.xfrm_structs import HAS_PYROUTE2, PYROUTE2_IMPORT_ERROR
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.derive import KeyDerivationError
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import (
    PHASE_ALL, STATE_ABSENT, LocalNode, Peer, PlanOptions, build_desired, fully_trusted,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.lockout import (
    covering_policies, parse_ssh_connection,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import Plan, reconcile, rollback
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.report import (
    changed_lines, render_plan, secrets_of,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import XfrmPolicy, XfrmState
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def run_module(module: Any) -> None:
    """Entry point called by the module's ``main()``."""
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=PYROUTE2_IMPORT_ERROR)
    params = module.params
    try:
        boot_id = read_boot_id(BOOT_ID_PATH)
        result = reconcile_node(module, params, boot_id)
    except (KeysFileError, PlanError, KeyDerivationError, XfrmKernelError, OSError) as error:
        module.fail_json(msg=str(error))
    module.exit_json(**result)


def read_boot_id(path: str) -> str:
    with open(path, encoding="ascii") as stream:
        return stream.read().strip()


def local_node(params: Dict[str, Any], boot_id: str) -> LocalNode:
    local = params["local"]
    return LocalNode(name=socket.gethostname() or "local", addresses=tuple(local["addresses"]),
                     subnets=tuple(local.get("subnets") or ()), boot_id=boot_id)


def peers_of(params: Dict[str, Any]) -> List[Peer]:
    return [Peer(name=peer["name"], addresses=tuple(peer["addresses"]),
                 subnets=tuple(peer.get("subnets") or ()), boot_id=peer.get("boot_id") or None,
                 inbound_level=peer.get("inbound_level"), outbound=peer.get("outbound") or "enable")
            for peer in params["peers"]]


def plan_options(params: Dict[str, Any]) -> PlanOptions:
    return PlanOptions(
        per_pair_keys=params["per_pair_keys"],
        out_spi=params["out_spi"],
        outbound=params["outbound"],
        inbound_level=params["inbound_level"],
        bypass=tuple((entry["proto"], entry["port"]) for entry in params["bypass"]),
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
    local, peers = local_node(params, boot_id), peers_of(params)
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
                return _result(module, final_plan, boot_id, final_desired.frozen_peers, converged=True)
        plan = reconcile(desired, current_states, current_policies)
        for warning in plan.warnings:
            module.warn(warning)
        _warn_about_own_connection(module, desired.policies)
        if plan.changes and not module.check_mode:
            _apply_or_roll_back(module, kernel, plan, boot_id, desired.frozen_peers)

    return _result(module, plan, boot_id, desired.frozen_peers)


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
                    "it: if the SAs on either end do not match, Ansible loses this node; add tcp/%d to bypass"
                    % (render(policy), connection[0], connection[1], connection[2], connection[3], connection[3]))


def _apply_or_roll_back(module: Any, kernel: XfrmKernel, plan: Plan, boot_id: str,
                        frozen_peers: Sequence[str]) -> None:
    outcome = kernel.apply(plan.operations)
    if outcome.ok:
        return
    pairs = rollback(plan, outcome.applied)
    undo = [inverse for _operation, inverse in pairs if inverse is not None]
    undone = kernel.apply(undo) if undo else None
    error = outcome.error
    message = error.message if error is not None else "the kernel refused an operation"
    details: Dict[str, Any] = dict(_result(module, plan, boot_id, frozen_peers, changed=False))
    details["failed_operation"] = describe_operation(outcome.failed) if outcome.failed else None
    details["errno"] = error.errno if error is not None else None
    details["extack"] = error.extack if error is not None else None
    if (undone is None or undone.ok) and len(undo) == len(pairs):
        details["applied"] = []
        module.fail_json(msg="%s; the %d operation(s) before it were rolled back, the node is as it was"
                         % (message, len(outcome.applied)), **details)
    # The rollback failed part-way: report what stayed applied so the caller knows.
    undone_ids = {id(inverse) for inverse in undone.applied} if undone is not None else set()
    still_applied = [operation for operation, inverse in pairs if inverse is None or id(inverse) not in undone_ids]
    details["applied"] = [describe_operation(operation) for operation in still_applied]
    details["changed"] = bool(still_applied)
    rollback_error = undone.error.message if undone is not None and undone.error else "not undoable"
    module.fail_json(msg="%s; rolling back then failed too (%s): %d operation(s) stay applied, "
                     "a re-run converges from here" % (message, rollback_error, len(still_applied)), **details)


def _result(module: Any, plan: Plan, boot_id: str, frozen_peers: Sequence[str],
            changed: Optional[bool] = None, converged: bool = False) -> Dict[str, Any]:
    counts = plan.counts()
    result: Dict[str, Any] = dict(
        changed=plan.changed if changed is None else changed,
        boot_id=boot_id,
        sas=counts["sas"],
        policies=counts["policies"],
        frozen_peers=list(frozen_peers),
        converged=converged,
    )
    result.update(changed_lines(plan))
    if module._diff:  # pylint: disable=protected-access
        result["diff"] = render_plan(plan)
    return result
