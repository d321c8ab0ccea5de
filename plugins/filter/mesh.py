# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the mesh role uses to turn the inventory into module arguments.

Each filter's documentation is plugins/filter/<name>.yml beside this file (what ansible-doc
reads); tests/unit/plugins/filter/test_filter_docs.py fails when a filter or an argument has
none, and runs the examples.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.netsec.ipsec.plugins.module_utils._planner.boot import render_boot_unit
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError
from ansible_collections.netsec.ipsec.plugins.module_utils._controller.status import (
    mesh_status, problems, render_status, summary,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._controller.mesh import (
    MeshInventoryError,
    boot_ids_from_results,
    contract_problems,
    current_keys_from_results,
    forwarding_needs,
    keys_file_is_current,
    member_variables,
    mesh_peers,
    peer_table,
    rebooted_member_problems,
    untrusted_members,
)


def _mesh_peers(members, hostvars, local_host, boot_ids, inbound_ready_hosts=(), encrypting_hosts=(),
                overrides=None, unmanaged_peers=None):
    try:
        return mesh_peers(members, hostvars, local_host, boot_ids, inbound_ready_hosts, encrypting_hosts,
                          overrides, unmanaged_peers)
    except MeshInventoryError as error:
        raise AnsibleFilterError(str(error)) from None


def _mesh_peer_table(members, hostvars, boot_ids, overrides=None, unmanaged_peers=None):
    try:
        return peer_table(members, hostvars, boot_ids, overrides, unmanaged_peers)
    except MeshInventoryError as error:
        raise AnsibleFilterError(str(error)) from None


def _mesh_untrusted(members, trusted):
    return untrusted_members(members, trusted)


def _mesh_boot_ids(play_hosts, hostvars, variable, outside_results=None):
    return boot_ids_from_results(play_hosts, hostvars, variable, outside_results)


def _mesh_current_keys(play_hosts, hostvars, variable, outside_results, local_host=None):
    return current_keys_from_results(play_hosts, hostvars, variable, outside_results, local_host)


def _mesh_members(members, hostvars):
    return member_variables(members, hostvars)


def _mesh_forwarding(addresses, subnets=()):
    try:
        return forwarding_needs(addresses, subnets or [])
    except MeshInventoryError as error:
        raise AnsibleFilterError(str(error)) from None


def _mesh_contract_problems(play_hosts, hostvars, groups, group, overrides=None, unmanaged_peers=None):
    return contract_problems(play_hosts, hostvars, groups, group, overrides, unmanaged_peers)


def _mesh_rebooted_members(play_hosts, hostvars, variable, members):
    return rebooted_member_problems(play_hosts, hostvars, variable, members)


def _mesh_boot_unit(state_dir):
    try:
        unit = render_boot_unit(state_dir)
    except PlanError as error:
        raise AnsibleFilterError(str(error)) from None
    return {"content": unit.content, "fingerprint": unit.fingerprint}


def _keys_file_is_current(node_info, content=None, keys=None):
    return keys_file_is_current(node_info, content, keys)


def _mesh_status(hosts, hostvars, variable, members):
    nodes = {}
    for host in hosts:
        result = hostvars[host].get(variable)
        if isinstance(result, dict) and not result.get("failed") and not result.get("unreachable"):
            nodes[host] = result
    addresses = {member: list(hostvars[member].get("ipsec_addresses") or []) for member in members}
    report = mesh_status(nodes, addresses)
    return {"nodes": report, "lines": render_status(report), "summary": summary(report), "problems": problems(report)}


class FilterModule:
    """netsec.ipsec filters."""

    def filters(self):
        return {
            "mesh_peers": _mesh_peers,
            "mesh_peer_table": _mesh_peer_table,
            "mesh_untrusted": _mesh_untrusted,
            "mesh_boot_ids": _mesh_boot_ids,
            "mesh_current_keys": _mesh_current_keys,
            "mesh_members": _mesh_members,
            "mesh_forwarding": _mesh_forwarding,
            "mesh_status": _mesh_status,
            "mesh_contract_problems": _mesh_contract_problems,
            "mesh_rebooted_members": _mesh_rebooted_members,
            "mesh_boot_unit": _mesh_boot_unit,
            "keys_file_is_current": _keys_file_is_current,
        }
