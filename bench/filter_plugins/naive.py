# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter for the naive baseline playbook (bench/naive_mesh.yml): per peer, the values a
hand-written role needs to type ``ip xfrm`` commands that install exactly what
``netsec.ipsec.mesh`` installs (same SPIs, per-pair keys, reqid, priorities).

This is benchmark scaffolding: a user writing such a role would compute the same values with
a script of their own; only the number of ``ip`` commands matters for the comparison.
"""

from __future__ import annotations

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.derive import derive_key
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import wire_spi


def naive_pairs(members, hostvars, local_host, keys_content, boot_variable="naive_boot"):
    """[{peer, out_spi, in_spi, out_key, in_key}] for ``local_host`` and each other member."""
    key = parse_keys_text(keys_content, "naive keys").keys[-1]
    master = key.key_material[0]
    local = str(hostvars[local_host]["ipsec_addresses"][0])
    local_boot = hostvars[local_host][boot_variable]["stdout"].strip()
    pairs = []
    for member in members:
        if member == local_host:
            continue
        peer = str(hostvars[member]["ipsec_addresses"][0])
        peer_boot = hostvars[member][boot_variable]["stdout"].strip()
        pairs.append({
            "peer": peer,
            "out_spi": "0x%08x" % wire_spi(key.spi, local),
            "in_spi": "0x%08x" % wire_spi(key.spi, peer),
            "out_key": "0x" + derive_key(master, local, peer, local_boot, peer_boot).hex(),
            "in_key": "0x" + derive_key(master, peer, local, peer_boot, local_boot).hex(),
            "aead": key.aead_name,
            "icv": key.icv_bits,
        })
    return pairs


class FilterModule:
    """Benchmark-only filters."""

    def filters(self):
        return {"naive_pairs": naive_pairs}
