# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of module ``netsec.ipsec.xfrm_info``: read-only facts about one node.

The boot id, the state files and the keys file's fingerprint need nothing but files, so the
mesh role can ask for them before it changes anything. The SAs and policies are read only when asked, and only
the entries this collection owns are reported, with key fingerprints, never keys.
"""

from __future__ import annotations

import importlib.util
import os
import stat
from typing import Any, Dict, List, Optional, Set, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import XfrmKernel, XfrmKernelError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import (
    all_secrets, file_fingerprint, fingerprint, render_masked_key_line,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import MISSING_FILE_REASON, read_keys_bytes
from ansible_collections.netsec.ipsec.plugins.module_utils._planner import boot
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.peer_table import PEER_TABLE, table_fingerprint
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import is_owned_policy, is_owned_state
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.report import secrets_of
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    DIR_NAMES, DIR_OUT, StateCounters, XfrmPolicy, XfrmState, canonical_address,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
XFRM_STAT_PATH = "/proc/net/xfrm_stat"
# The boot unit is enabled by a link in this directory next to it (as systemctl enable makes it).
BOOT_TARGET_WANTS = "sysinit.target.wants"
# What sd_booted() tests: systemd is the running init (it needs a daemon-reload after a unit changes).
SYSTEMD_RUNNING_DIR = "/run/systemd/system"


def run_module(module: Any) -> None:
    """Entry point called by the module's ``main()``."""
    params = module.params
    result: Dict[str, Any] = dict(changed=False, pyroute2=pyroute2_importable())
    try:
        result["boot_id"] = _read_text(BOOT_ID_PATH)
        result["xfrm_stat"] = read_xfrm_stat(XFRM_STAT_PATH)
    except OSError as error:
        module.fail_json(msg="%s: %s" % (error.filename, error.strerror), **result)
    if params["keys_file"]:
        result.update(keys_file_facts(module, params["keys_file"]))
    keying = read_keying(params.get("state_dir"))
    result["keyed_boot_id"] = keying.boot_id if keying is not None else None
    result["stored_peer_table"] = stored_peer_table(params.get("state_dir"))
    if params.get("boot_unit"):
        result["boot_unit"] = unit_facts(params["boot_unit"])
    if params["entries"]:
        try:
            with XfrmKernel() as kernel:
                counted_states = kernel.dump_state_counters()
                policies = kernel.dump_policies()
        except XfrmKernelError as error:
            module.fail_json(msg=str(error), **result)
        module.no_log_values.update(secrets_of(state for state, _counters in counted_states))
        result.update(describe_entries(counted_states, policies, params["reqid"], params["addresses"]))
        result["keyed_peers"] = dict(keying.peers) if keying is not None else {}
    module.exit_json(**result)


def pyroute2_importable() -> bool:
    """The deprecated ``pyroute2`` result: the collection's own codec talks to the kernel, so
    nothing needs pyroute2 any more. Kept for playbooks that read it until 1.0.0; found by
    spec, not imported, so it costs nothing and loads nothing."""
    return importlib.util.find_spec("pyroute2") is not None


def keys_file_facts(module: Any, path: str) -> Dict[str, Any]:
    """What the node's keys file holds, without a key: its current key as a masked line
    (key id, algorithms, fingerprint; None when the file is missing or does not parse, the
    keys task reports why), the fingerprint of its bytes and its permission bits (None when
    it is missing), so the mesh role can tell whether the keys task has anything to do."""
    facts: Dict[str, Any] = dict(current_key=None, keys_file_fingerprint=None, keys_file_mode=None)
    try:
        content = read_keys_bytes(path)
    except KeysFileError as error:
        if error.reason != MISSING_FILE_REASON:
            module.warn("%s cannot be read (%s), its current key is not reported" % (path, error.reason))
        return facts
    facts["keys_file_fingerprint"] = file_fingerprint(content)
    try:
        facts["keys_file_mode"] = "%04o" % stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        pass
    try:
        keys_file = parse_keys_text(content, path)
    except KeysFileError:
        module.warn("%s is not a valid keys file, its current key is not reported" % path)
        return facts
    module.no_log_values.update(all_secrets(keys_file))
    facts["current_key"] = render_masked_key_line(keys_file.current)
    return facts


def read_keying(state_dir: Optional[str]) -> Optional[boot.Keying]:
    """The keying record the endpoint module keeps in ``state_dir``, or None."""
    if not state_dir:
        return None
    try:
        with open(os.path.join(state_dir, boot.KEYING), "rb") as stream:
            text = stream.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return boot.parse_keying(text)


def stored_peer_table(state_dir: Optional[str]) -> Optional[str]:
    """The fingerprint of the peer table the endpoint module stores in ``state_dir``, or None
    (the mesh role sends the table to a node whose stored one is not this run's)."""
    if not state_dir:
        return None
    try:
        with open(os.path.join(state_dir, PEER_TABLE), "rb") as stream:
            return table_fingerprint(stream.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def unit_facts(path: str) -> Dict[str, Any]:
    """The fingerprint of a unit file (None without one), whether the link that enables it at
    boot is there (``sysinit.target.wants`` next to it), and whether systemd runs the node."""
    try:
        with open(path, "rb") as stream:
            found: Optional[str] = file_fingerprint(stream.read())
    except OSError:
        found = None
    link = os.path.join(os.path.dirname(path), BOOT_TARGET_WANTS, os.path.basename(path))
    return dict(fingerprint=found, enabled=os.path.islink(link) and os.path.realpath(link) == os.path.realpath(path),
                systemd=os.path.isdir(SYSTEMD_RUNNING_DIR))


def _read_text(path: str) -> str:
    with open(path, encoding="ascii") as stream:
        return stream.read().strip()


def read_xfrm_stat(path: str) -> Dict[str, int]:
    """The kernel's XFRM error counters (``/proc/net/xfrm_stat``), or {} without XFRM stats."""
    try:
        with open(path, encoding="ascii") as stream:
            lines = stream.read().splitlines()
    except FileNotFoundError:
        return {}
    counters: Dict[str, int] = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            counters[fields[0]] = int(fields[1])
    return counters


def describe_entries(counted_states: List[Tuple[XfrmState, StateCounters]], policies: List[XfrmPolicy], reqid: int,
                     addresses: Optional[List[str]] = None) -> Dict[str, Any]:
    """Owned SAs (with their counters and key fingerprints) and policies, and how many are
    foreign.

    An SA's direction is "out" when it is sent from one of the node's ``addresses``; without
    them the sources of the owned OUT policies' templates stand in.
    """
    owned_states = [(state, counters) for state, counters in counted_states if is_owned_state(state, reqid)]
    owned_policies = [policy for policy in policies if is_owned_policy(policy, reqid)]
    if addresses:
        local_addresses = {canonical_address(address) for address in addresses}
    else:
        local_addresses = {template.src for policy in owned_policies if policy.dir == DIR_OUT
                           for template in policy.templates}
    return dict(
        sas=[_describe_state(state, counters, local_addresses) for state, counters in owned_states],
        policies=[dict(dir=DIR_NAMES.get(policy.dir, str(policy.dir)), line=render(policy),
                       src=policy.selector.src, dst=policy.selector.dst,
                       tmpl_src=policy.templates[0].src if policy.templates else None,
                       tmpl_dst=policy.templates[0].dst if policy.templates else None,
                       tmpl_spi=policy.templates[0].spi if policy.templates else None,
                       level=("use" if policy.templates[0].optional else "required") if policy.templates else None)
                  for policy in owned_policies],
        foreign_sas=len(counted_states) - len(owned_states),
        foreign_policies=len(policies) - len(owned_policies),
    )


def _describe_state(state: XfrmState, counters: StateCounters, local_addresses: Set[str]) -> Dict[str, Any]:
    material = b"".join(algorithm.key for algorithm in state.algorithms())
    if local_addresses:
        direction = "out" if state.src in local_addresses else "in"
    else:
        direction = None
    return dict(
        src=state.src,
        dst=state.dst,
        spi="0x%08x" % state.spi,
        key_id=state.spi >> 28 if state.spi >= 1 << 28 else state.spi,
        direction=direction,
        algorithms=[algorithm.name for algorithm in state.algorithms()],
        fingerprint=fingerprint(material) if material else None,
        packets=counters.packets,
        bytes=counters.bytes,
        replay_errors=counters.replay,
        integrity_errors=counters.integrity_failed,
        sequence_sent=counters.oseq,
        sequence_seen=counters.seq,
        line=render(state),
    )
