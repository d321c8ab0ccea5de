#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: xfrm_info
short_description: Read a node's boot id, XFRM counters and the IPsec entries this collection owns
version_added: 0.1.0
description:
  - Read-only. Returns the node's boot id (the input of per-pair key derivation) and the
    non-zero XFRM error counters of C(/proc/net/xfrm_stat).
  - Needs nothing on the node but Python's standard library; the collection speaks XFRM
    netlink with its own codec.
  - With O(entries=true), also the SAs and policies this collection owns, with traffic
    counters and key fingerprints (never keys), and how many foreign entries there are.
author:
  - netsec.ipsec contributors (@netsec)
extends_documentation_fragment:
  - netsec.ipsec.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module never changes anything.
  diff_mode:
    support: N/A
    details:
      - The module never changes anything.
  platform:
    platforms: linux
options:
  entries:
    description: Also read the owned SAs and policies (needs C(CAP_NET_ADMIN)).
    type: bool
    default: false
  addresses:
    description:
      - The node's tunnel addresses, to tell OUT SAs from IN SAs. Without them the sources
        of the owned OUT policies are used.
    type: list
    elements: str
  reqid:
    description: The reqid that marks owned entries, as given to M(netsec.ipsec.xfrm_endpoint).
    type: int
    default: 1853056355
  keys_file:
    description:
      - A keys file (see M(netsec.ipsec.xfrm_keys)) whose current key to report, masked, in
        RV(current_key), with the fingerprint and mode of the whole file in RV(keys_file_fingerprint) and
        RV(keys_file_mode). The mesh role uses them to tell a node that is only being repaired to its peers' key
        from a change of the mesh key, and to skip the keys task where the file is already as it would write it.
    type: path
  state_dir:
    description:
      - The directory where M(netsec.ipsec.xfrm_endpoint) keeps its state files (its option
        O(netsec.ipsec.xfrm_endpoint#module:state_dir)). The keying record there gives
        RV(keyed_boot_id) and, with O(entries=true), RV(keyed_peers); the peer table there gives
        RV(stored_peer_table).
    type: path
    default: /var/lib/netsec-ipsec
  boot_unit:
    description:
      - A systemd unit file whose fingerprint (RV(boot_unit.fingerprint)) and enablement
        (RV(boot_unit.enabled), a link in C(sysinit.target.wants)) to report. The mesh role
        uses them to install its boot unit only where it is missing or differs.
    type: path
requirements:
  - Python 3.9 or later on the target; no third-party package.
seealso:
  - module: netsec.ipsec.xfrm_endpoint
"""

EXAMPLES = r"""
- name: Read the boot id before keying the node
  netsec.ipsec.xfrm_info:
  register: node_info

- name: Read the owned SAs with their counters
  netsec.ipsec.xfrm_info:
    entries: true
    addresses: "{{ ipsec_addresses }}"
  register: node_entries
"""

RETURN = r"""
boot_id:
  description: The node's C(/proc/sys/kernel/random/boot_id).
  returned: always
  type: str
  sample: 5b1e9c3e-8f1e-4c1a-9a51-0d2f3c4b5a69
pyroute2:
  description:
    - Whether pyroute2 can be imported by the Python that runs the module (found, not imported).
    - Deprecated; nothing in the collection needs pyroute2 any more. This result will be
      removed in 1.0.0.
  returned: always
  type: bool
  sample: true
current_key:
  description:
    - The current (last) key of O(keys_file) as a masked key line, the key replaced by its
      fingerprint; V(null) when the file is missing or not valid. Never the key.
  returned: when O(keys_file) is given
  type: str
  sample: "3+ rfc4106(gcm(aes)) sha256:5d41402abc4b 128"
keys_file_fingerprint:
  description:
    - C(sha256:) and the first 12 hex digits of the SHA-256 of O(keys_file)'s bytes; V(null) when the file is
      missing or cannot be read. The mesh role compares it with the same fingerprint of the content it would
      install, and skips the keys task on a node that already holds that file.
  returned: when O(keys_file) is given
  type: str
  sample: "sha256:0c4e7d6a1f92"
keys_file_mode:
  description: The permission bits of O(keys_file) in octal; V(null) when the file is missing.
  returned: when O(keys_file) is given
  type: str
  sample: "0600"
keyed_boot_id:
  description:
    - The boot id this node's SAs were derived with, from its keying record; V(null) when it
      has none (never keyed, or O(state_dir) is not where the endpoint module keeps it).
    - A value other than RV(boot_id) means the node rebooted since it was keyed, so every
      peer still holds keys for its previous boot.
  returned: always
  type: str
  sample: 5b1e9c3e-8f1e-4c1a-9a51-0d2f3c4b5a69
keyed_peers:
  description:
    - Per peer, the peer's boot id this node keyed its SAs with (empty without per-pair
      keys). A value other than that peer's current boot id means the peer rebooted since
      this node keyed it.
  returned: when O(entries=true)
  type: dict
  sample: {node2: 0b9e3c1d-5a6f-4e7d-8c9b-1a2b3c4d5e6f}
stored_peer_table:
  description:
    - The fingerprint of the peer table that M(netsec.ipsec.xfrm_endpoint) stores in O(state_dir)
      (O(netsec.ipsec.xfrm_endpoint#module:peer_table)), computed from the file's bytes; V(null)
      when there is none. The mesh role sends the table's text only to a node whose stored
      table is not the run's.
  returned: always
  type: str
  sample: "sha256:8d2f1c0b9e7a6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c"
boot_unit:
  description: The boot unit file of O(boot_unit), when it is given.
  returned: when O(boot_unit) is given
  type: dict
  contains:
    fingerprint:
      description: C(sha256:) and 12 hex digits of its bytes; V(null) when there is no file.
      type: str
      sample: "sha256:0c4e7d6a1f92"
    enabled:
      description: Whether a link to it is in C(sysinit.target.wants) next to it.
      type: bool
      sample: true
    systemd:
      description: Whether systemd is the node's running init (C(/run/systemd/system) exists), so a changed unit needs a C(daemon-reload).
      type: bool
      sample: true
xfrm_stat:
  description: All counters of C(/proc/net/xfrm_stat) (empty when the kernel has no XFRM statistics).
  returned: always
  type: dict
  sample: {XfrmInNoStates: 0, XfrmOutPolBlock: 0}
sas:
  description: Owned SAs.
  returned: when O(entries=true)
  type: list
  elements: dict
  contains:
    src:
      description: Outer source address.
      type: str
      sample: 10.77.0.1
    dst:
      description: Outer destination address.
      type: str
      sample: 10.77.0.2
    spi:
      description: SPI on the wire, in hex.
      type: str
      sample: "0x3916badd"
    key_id:
      description: Key id (the top 4 bits of the SPI, or the SPI with Cilium marks).
      type: int
      sample: 3
    direction:
      description: V(out), V(in), or V(null) when it cannot be told.
      type: str
      sample: out
    algorithms:
      description: Algorithm names.
      type: list
      elements: str
      sample: ["rfc4106(gcm(aes))"]
    fingerprint:
      description: Short SHA-256 fingerprint of the SA's key material.
      type: str
      sample: sha256:1f50799c41b1
    packets:
      description: Packets through the SA.
      type: int
      sample: 12
    bytes:
      description: Bytes through the SA.
      type: int
      sample: 1008
    replay_errors:
      description: Packets dropped by the replay check.
      type: int
      sample: 0
    integrity_errors:
      description: Packets that failed the integrity check.
      type: int
      sample: 0
    sequence_sent:
      description:
        - The highest ESP sequence number the SA has sent (0 for an SA that only receives).
        - An SA re-added under the same SPI and key starts again from 1.
      type: int
      sample: 1042
    sequence_seen:
      description:
        - The highest ESP sequence number the SA has accepted (the top of its replay window; 0
          for an SA that only sends).
      type: int
      sample: 977
    line:
      description: The SA as an C(ip xfrm)-like line, key as fingerprint.
      type: str
      sample: state 10.77.0.1 -> 10.77.0.2 esp spi 0x3916badd reqid 0x6e736563 tunnel aead rfc4106(gcm(aes)) key sha256:1f50799c41b1 icv 128
policies:
  description: Owned policies.
  returned: when O(entries=true)
  type: list
  elements: dict
  contains:
    dir:
      description: V(in), V(out) or V(fwd).
      type: str
      sample: out
    src:
      description: Selector source.
      type: str
      sample: 0.0.0.0/0
    dst:
      description: Selector destination.
      type: str
      sample: 10.77.0.2/32
    tmpl_src:
      description: Template source (V(null) for a bypass policy).
      type: str
      sample: 10.77.0.1
    tmpl_dst:
      description: Template destination.
      type: str
      sample: 10.77.0.2
    tmpl_spi:
      description: SPI the template pins (0 for any).
      type: int
      sample: 957790941
    level:
      description: V(required) or V(use) (V(null) for a bypass policy).
      type: str
      sample: required
    line:
      description: The policy as an C(ip xfrm)-like line.
      type: str
      sample: policy out 0.0.0.0/0 -> 10.77.0.2/32 priority 28416 tmpl 10.77.0.1 -> 10.77.0.2 esp spi 0x3916badd reqid 0x6e736563 tunnel required
foreign_sas:
  description: Number of SAs not owned by this collection (left alone).
  returned: when O(entries=true)
  type: int
  sample: 0
foreign_policies:
  description: Number of policies not owned by this collection (left alone).
  returned: when O(entries=true)
  type: int
  sample: 0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsec.ipsec.plugins.module_utils._modules.info import run_module


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            entries=dict(type="bool", default=False),
            keys_file=dict(type="path", no_log=False),
            addresses=dict(type="list", elements="str"),
            reqid=dict(type="int", default=1853056355),
            state_dir=dict(type="path", default="/var/lib/netsec-ipsec"),
            boot_unit=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
