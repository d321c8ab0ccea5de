# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ansible glue for the sysctl_ipv6_forward module: parameters in, result (and diff) out.

The logic lives in ``_sysctl``; this file only maps the module's parameters onto it and
its plan onto the module result, honouring check mode and diff mode.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsec.ipsec.plugins.module_utils import _sysctl
from ansible_collections.netsec.ipsec.plugins.module_utils._files import FileError, remove_file, write_file
from ansible_collections.netsec.ipsec.plugins.module_utils._lock import NodeLockError, node_lock

MODULE_NAME = "netsec.ipsec.sysctl_ipv6_forward"
LIVE_DIFF_HEADER = "live values (/proc/sys, this network namespace)"


def _values_result(changes: Optional[Dict[str, _sysctl.ValueChange]]) -> Optional[Dict[str, Dict[str, Optional[str]]]]:
    if changes is None:
        return None
    return {key: {"before": change.before, "after": change.after} for key, change in changes.items()}


def _diff(plan: _sysctl.Plan, values: Dict[str, _sysctl.ValueChange]) -> List[Dict[str, str]]:
    """The live values (accept_ra and forwarding, in the order they are written), then the file."""
    diff = [
        {
            "before_header": LIVE_DIFF_HEADER,
            "after_header": LIVE_DIFF_HEADER,
            "before": _sysctl.render_live_values({key: change.before for key, change in values.items()}),
            "after": _sysctl.render_live_values({key: change.after for key, change in values.items()}),
        }
    ]
    if plan.file is not None:
        diff.append(
            {
                "before_header": plan.file.path if plan.file.before is not None else "%s (absent)" % plan.file.path,
                "after_header": plan.file.path,
                "before": plan.file.before or "",
                "after": plan.file.after,
            }
        )
    return diff


def remove_owned_file(module: AnsibleModule) -> None:
    """``state: absent``: remove the drop-in file when it is ours; live values stay."""
    path = module.params["sysctl_file"]
    try:
        text = _sysctl.read_owned_file(path)
    except _sysctl.SysctlError as exc:
        module.fail_json(msg=str(exc), problems=exc.problems, changed=False)
    try:
        changed = remove_file(module, path)
    except FileError as exc:
        module.fail_json(msg="cannot remove sysctl_file %s: %s" % (path, exc.reason), changed=False)
    result: Dict[str, Any] = {"changed": changed, "live": None, "accept_ra": None, "persisted": None, "sysctl_file": path}
    if module._diff:
        result["diff"] = [{"before": text or "", "after": "", "before_header": path, "after_header": path}]
    module.exit_json(**result)


def run(module: AnsibleModule) -> None:
    """Under the node lock: plan, apply unless in check mode, and exit the module with the result."""
    try:
        with node_lock(MODULE_NAME, timeout=module.params["lock_timeout"], shared=module.check_mode):
            _plan_and_apply(module)
    except NodeLockError as error:
        module.fail_json(msg=str(error), changed=False)


def _plan_and_apply(module: AnsibleModule) -> None:
    params = module.params
    if params["state"] == "absent":
        remove_owned_file(module)
    # Read at call time so that tests can point the module at a fake /proc/sys and sysctl.d.
    proc_root = _sysctl.PROC_SYS_ROOT
    try:
        plan = _sysctl.plan_forwarding(
            proc_root,
            params["sysctl_file"],
            params["interfaces"],
            enabled=params["enabled"],
            persist=params["persist"],
            ipv6=params["ipv6"],
            ipv4=params["ipv4"],
            keep_router_advertisements=params["keep_router_advertisements"],
        )
    except _sysctl.SysctlError as exc:
        module.fail_json(msg=str(exc), problems=exc.problems, changed=False)

    for interface in plan.ipv6_disabled_on:
        module.warn(
            "IPv6 is disabled on %r (disable_ipv6 = 1): its forwarding value is set, but takes effect only once IPv6 is enabled there" % interface
        )
    if plan.file is not None:
        for warning in _sysctl.boot_overrides(
            plan.file.path, {key.name: value for key, value in plan.assignments}, _sysctl.SYSCTL_D_DIRS, _sysctl.SYSCTL_CONF
        ):
            module.warn(warning)

    # Every managed key in write order (accept_ra first), as planned; after applying, as read back.
    values = {**plan.accept_ra, **plan.live}
    changed = plan.changed
    after: Optional[Dict[str, str]] = None
    if not module.check_mode:
        try:
            after = _sysctl.apply_live(proc_root, plan)
        except _sysctl.SysctlError as exc:
            module.fail_json(msg=str(exc), problems=exc.problems, changed=bool(exc.written))
        values = {name: _sysctl.ValueChange(change.before, after[name]) for name, change in values.items()}
    live = {name: values[name] for name in plan.live}
    accept_ra = {name: values[name] for name in plan.accept_ra}
    if plan.file is not None:
        # Also in check mode, where it writes nothing but tells whether the mode or owner would change.
        try:
            file_changed = write_file(module, plan.file.path, plan.file.after.encode("utf-8"), _sysctl.FILE_MODE, _sysctl.DIRECTORY_MODE)
        except FileError as exc:
            applied = "" if module.check_mode else " (live values already applied)"
            module.fail_json(
                msg="cannot write sysctl_file %s: %s%s" % (plan.file.path, exc.reason, applied),
                changed=not module.check_mode,
                live=_values_result(live),
                accept_ra=_values_result(accept_ra),
            )
        changed = changed or file_changed
    if after is not None:
        not_kept = _sysctl.values_not_kept(plan, after)
        if not_kept:
            module.fail_json(msg=not_kept, changed=True, live=_values_result(live), accept_ra=_values_result(accept_ra))

    result: Dict[str, Any] = {
        "changed": changed,
        "live": _values_result(live),
        "accept_ra": _values_result(accept_ra),
        "persisted": _values_result(plan.persisted),
        "sysctl_file": params["sysctl_file"],
    }
    if module._diff:
        result["diff"] = _diff(plan, values)
    module.exit_json(**result)
