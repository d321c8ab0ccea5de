#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: xfrm_endpoint
short_description: Reconcile one node's IPsec SAs and policies towards its peers with the kernel
version_added: 0.1.0
description:
  - Builds the XFRM security associations (SAs) and policies that encrypt every packet between
    this node and each peer with ESP in tunnel mode, reads the kernel's SAD and SPD, computes
    the exact delta B(restricted to the entries this collection owns), and applies it in an
    order that never sends plaintext and never cuts the management connection.
  - Per peer and per address family both ends have, and per key in the keys file, it
    installs an OUT SA and an IN SA; per peer subnet an OUT policy (its template requires an
    SA, so a missing SA drops and never leaks), an IN policy and, when this node routes
    subnets, a FWD policy; and bypass policies for management traffic (SSH by default) that
    take precedence over every encrypt policy.
  - IN SAs are installed for every key in the keys file while egress uses only O(out_spi);
    this is what makes make-before-break key rotation possible.
  - 'Ownership: an SA is owned when its reqid is O(reqid); a policy when one of its templates
    has that reqid, or when it has no template and a priority inside the collection''s
    reserved band. Every other entry is foreign and is never changed, purged or flushed.'
  - The keys are read on the node from O(keys_file), so secrets never travel through module
    arguments; every key read or derived is added to the values Ansible masks.
author:
  - netsec.ipsec contributors (@netsec)
extends_documentation_fragment:
  - netsec.ipsec.attributes
  - netsec.ipsec.node_lock
attributes:
  check_mode:
    support: full
    details:
      - Reports the same delta as a real run and leaves the kernel untouched.
  diff_mode:
    support: full
    details:
      - Shows the owned SAD/SPD entries before and after as C(ip xfrm)-like lines, keys
        replaced by fingerprints.
  platform:
    platforms: linux
options:
  keys_file:
    description:
      - Keys file on the node, as installed by M(netsec.ipsec.xfrm_keys).
    type: path
    default: /etc/ipsec/keys
  local:
    description: "This node: its name, its tunnel endpoints and the subnets it terminates."
    type: dict
    required: true
    suboptions:
      name:
        description:
          - The node's name among its peers (the mesh role gives its inventory host name). A
            peer of this name is this node listed in its own group and is left out.
          - The kernel's hostname is never used, since a machine cloned from a peer keeps that
            peer's hostname.
        type: str
      addresses:
        description:
          - Tunnel addresses (outer ESP endpoints), at most one IPv4 and one IPv6.
          - Each must be a unicast address a peer can reach; loopback, link-local (with or
            without a zone), unspecified, multicast, broadcast and IPv4-mapped IPv6 addresses
            are refused, naming the address.
        type: list
        elements: str
        required: true
      subnets:
        description:
          - Subnets behind this node, in CIDR form, in addition to its tunnel addresses, which
            are always protected as /32 or /128.
          - Subnets that are not one of this node's own addresses make the node a router for
            them, and FWD policies are installed.
          - A subnet of a family this node, or a peer, has no tunnel address for cannot be
            carried and is an error naming the subnet.
        type: list
        elements: str
  peers:
    description:
      - The peers of this node. A peer named like O(local.name) is this node and is left out;
        any other peer with one of this node's tunnel addresses is an error naming both, and
        so is a peer with no address family in common with this node.
      - Mutually exclusive with O(peer_table), which gives the same peers without sending
        them in every call.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the peer, used in messages and results.
        type: str
        required: true
      addresses:
        description: The peer's tunnel addresses.
        type: list
        elements: str
        required: true
      subnets:
        description: Subnets behind the peer, in addition to its tunnel addresses (always protected).
        type: list
        elements: str
      boot_id:
        description:
          - The peer's C(/proc/sys/kernel/random/boot_id). Needed when O(per_pair_keys=true).
          - Without it the peer's existing entries are left as they are and a warning names
            the peer.
        type: str
      inbound_level:
        description:
          - Overrides O(inbound_level) for this peer.
          - V(keep) keeps the level of the peer's existing IN and FWD policies, and uses V(use)
            for new ones. The mesh role gives it to peers it cannot vouch for (outside
            C(--limit), or failed during the run).
        type: str
        choices: [use, required, keep]
      outbound:
        description:
          - V(enable) installs the OUT side towards this peer (when O(outbound=true)).
          - V(keep) leaves owned OUT entries towards this peer as they are and adds none, as the
            peer is not known to have IN SAs for this node yet (it is outside C(--limit), or
            failed earlier in the run), so encrypting towards it could only drop traffic.
        type: str
        choices: [enable, keep]
        default: enable
  peer_table:
    description:
      - The peers as a table that the node keeps in O(state_dir) (file C(peer-table.json),
        mode 0600; addresses, subnets and boot ids, nothing secret), so that the calls after
        the first send only its fingerprint. This is how the mesh role sends the peers, once
        per node when they change instead of in each rollout phase.
      - The same table serves every node of a mesh; as with O(peers), the peer named like
        O(local.name) is left out.
      - In check mode the table is not written; a later call in check mode therefore finds the
        table the node held before (RV(stored_peer_table) says which) and must be given the
        text again.
      - Mutually exclusive with O(peers).
    type: dict
    suboptions:
      fingerprint:
        description:
          - C(sha256:) and the 64 hex digits of the SHA-256 of the table's text, as filter
            P(netsec.ipsec.mesh_peer_table#filter) computes it.
          - The call is refused, changing nothing, unless the table it uses (O(peer_table.peers),
            or without it the one stored in O(state_dir)) has exactly this fingerprint; the
            message names both.
        type: str
        required: true
      peers:
        description:
          - The table's text, a JSON list of peers, each an object with the fields of a peer of
            O(peers) (V(name) and V(addresses) required; V(subnets), V(boot_id),
            V(inbound_level), V(outbound) optional), as filter
            P(netsec.ipsec.mesh_peer_table#filter) renders it. An unknown field, a missing or
            malformed one, or two peers of one name is an error naming the entry and the field.
          - Stored in O(state_dir), where it replaces the table stored before, when the call
            changes nothing else or anything else (not in check mode).
          - Omit it to use the stored table of O(peer_table.fingerprint); there must be one.
        type: str
      keep_outbound:
        description:
          - Peers of the table whose OUT side is left as it is, as with C(outbound=keep) in
            O(peers) (not known to accept ESP from this node yet), unless the table gives
            their C(outbound). Every other peer of the table gets C(outbound=enable) unless the
            table says otherwise.
          - A name that is not in the table is an error.
        type: list
        elements: str
        default: []
      keep_inbound_level:
        description:
          - Peers of the table whose IN and FWD policies keep their level, as with
            C(inbound_level=keep) in O(peers) (not known to send ESP yet), unless the table gives
            their C(inbound_level). Every other peer of the table gets O(inbound_level) unless
            the table says otherwise.
          - A name that is not in the table is an error.
        type: list
        elements: str
        default: []
  per_pair_keys:
    description:
      - Derive a distinct key per direction of each pair from the master key, both tunnel
        addresses and both boot ids (Cilium's construction, so both ends agree). Prevents GCM
        nonce reuse when SAs are re-created.
      - V(false) uses the master key for every SA, for interoperability only.
    type: bool
    default: true
  out_spi:
    description:
      - Key id used for egress. Defaults to the current key (the last line of the keys file).
      - Must be a key id present in the keys file.
    type: int
  outbound:
    description:
      - Install the OUT side (OUT SAs and policies). V(false) installs only the IN side; owned
        OUT entries are then removed when O(purge=true).
    type: bool
    default: true
  phase:
    description:
      - The rollout phases of a mesh, so that a fleet converges without cutting traffic;
        run each phase on every node before the next.
      - V(inbound) adds and updates only the IN side (IN SAs for every key, IN and FWD policies;
        new IN and FWD policies get level V(use), existing ones keep theirs) and removes nothing.
      - V(outbound) does what V(inbound) does and adds and updates the OUT side; it removes
        nothing.
      - V(all) reconciles the whole desired set, with O(inbound_level) and O(purge).
    type: str
    choices: [inbound, outbound, all]
    default: all
  skip_when_converged:
    description:
      - With O(phase=inbound) or O(phase=outbound), first compare the node with what
        O(phase=all) would leave on it if every peer given with C(inbound_level=keep) were
        V(required) and every peer given with C(outbound=keep) were V(enable). When the node
        already holds exactly that, nothing is changed and RV(converged) is V(true); the later
        phases have nothing to do on this node either (V(keep) leaves entries as they are), so
        the mesh role skips them. Otherwise the phase runs as usual.
    type: bool
    default: false
  inbound_level:
    description:
      - Level of the IN and FWD policy templates. V(use) accepts plaintext from the peer while
        a rollout is in progress; V(required) refuses it once the peer encrypts.
    type: str
    choices: [use, required]
    default: required
  bypass:
    description:
      - Management traffic that stays in plaintext with precedence over every encrypt policy,
        so a broken SA never locks Ansible out.
      - Each rule is a hole in the encryption that anybody on the network can use, a peer's
        address spoofed included, so it opens no more than it must. The default lets in
        connections to this node's SSH server (tcp/22) and lets out its replies; nothing
        else, in particular no plaintext from a source port 22 to another port of this node.
      - An empty list installs no bypass.
      - Independently of this option, a node with an IPv6 address always lets IPv6 neighbour
        solicitations and advertisements (ICMPv6 types 135 and 136) through in plaintext, in
        both directions; without them a peer's address resolution would be dropped by the IN
        policy for that peer.
    type: list
    elements: dict
    default: [{proto: tcp, port: 22, side: server}]
    suboptions:
      proto:
        description: Protocol.
        type: str
        choices: [tcp, udp, sctp]
        required: true
      port:
        description: Port of the service.
        type: int
        required: true
      side:
        description:
          - V(server) for a service of this node (inbound to O(bypass[].port), its replies from
            that port); V(client) for this node connecting to the port elsewhere (outbound to
            the port, the replies from it), only when it must, for example a node from which
            Ansible or an operator reaches the others over SSH.
        type: str
        choices: [server, client]
        default: server
      networks:
        description:
          - The networks of the far end (the clients of a server rule, the servers of a client
            rule), in CIDR form, for example the management network. Empty means anywhere.
          - A rule applies in each address family of its networks only.
        type: list
        elements: str
        default: []
  marks:
    description:
      - V(none) selects traffic by address only and gives each sender its own SPIs.
      - V(cilium) adds packet marks in Cilium's layout on SAs and policies, for a datapath
        that sets those marks itself.
    type: str
    choices: [none, cilium]
    default: none
  reqid:
    description:
      - Request id on every owned SA and template; it is how the collection recognises what
        it owns. The default is unlikely to collide with IKE daemons (strongSwan and
        libreswan allocate small or 16384-based reqids).
    type: int
    default: 1853056355
  state:
    description:
      - V(present) reconciles to the desired set; V(absent) removes every owned entry, OUT
        before IN.
    type: str
    choices: [present, absent]
    default: present
  purge:
    description:
      - Remove owned entries that are not in the desired set (for example a peer that left
        the inventory group).
    type: bool
    default: true
  state_dir:
    description:
      - Directory of the files this module keeps current on the node, after every run that
        changes them (mode 0600, in a 0700 directory; no key is ever in them).
      - C(boot-policies), the owned policies (management bypass included, never SAs or keys)
        as C(ip -batch) input. The boot unit the mesh role installs restores them before the
        network comes up, so that after a reboot traffic to the peers is dropped, never sent
        in plaintext, until the mesh re-keys the node.
      - C(keying.json), the boot id this node's SAs were derived with and, per peer, the
        peer's boot id it keyed with; M(netsec.ipsec.xfrm_info) reports them, so the mesh can
        tell a member that rebooted since it was keyed.
      - C(peer-table.json), the table of O(peer_table) when a call gives its text.
      - With O(state=absent) the three files are removed. An empty value keeps no files (and
        O(peer_table) must then give its text in every call).
    type: path
    default: /var/lib/netsec-ipsec
notes:
  - Requires C(CAP_NET_ADMIN) in the node's network namespace.
  - The module never flushes the SAD or SPD.
requirements:
  - Python 3.9 or later on the target; no third-party package (the collection speaks XFRM
    netlink with its own codec).
seealso:
  - module: netsec.ipsec.xfrm_keys
"""

EXAMPLES = r"""
- name: Encrypt everything between this node and two peers
  netsec.ipsec.xfrm_endpoint:
    local:
      name: node1
      addresses: [10.77.0.1]
    peers:
      - name: node2
        addresses: [10.77.0.2]
        boot_id: "{{ hostvars['node2'].ipsec_boot_id }}"
      - name: node3
        addresses: [10.77.0.3]
        subnets: [10.244.3.0/24]
        boot_id: "{{ hostvars['node3'].ipsec_boot_id }}"

- name: First rollout phase on every node, inbound only (new IN policies accept plaintext)
  netsec.ipsec.xfrm_endpoint:
    local:
      addresses: [10.77.0.1, "fd77::1"]
    peers: "{{ ipsec_peers }}"
    phase: inbound

- name: First phase with a peer table (the text once; the filter renders it and its fingerprint)
  netsec.ipsec.xfrm_endpoint:
    local:
      name: node1
      addresses: [10.77.0.1]
    peer_table:
      fingerprint: "{{ ipsec_table.fingerprint }}"
      peers: "{{ ipsec_table.peers }}"
    phase: inbound
  vars:
    ipsec_table: "{{ ipsec_peers | netsec.ipsec.mesh_peer_table }}"

- name: A later phase names the table the node stored; node3 is not known to accept ESP yet
  netsec.ipsec.xfrm_endpoint:
    local:
      name: node1
      addresses: [10.77.0.1]
    peer_table:
      fingerprint: "{{ ipsec_table.fingerprint }}"
      keep_outbound: [node3]
    phase: outbound
  vars:
    ipsec_table: "{{ ipsec_peers | netsec.ipsec.mesh_peer_table }}"

- name: Remove everything this collection installed on the node
  netsec.ipsec.xfrm_endpoint:
    local:
      addresses: [10.77.0.1]
    state: absent
"""

RETURN = r"""
boot_id:
  description: This node's boot id.
  returned: always
  type: str
  sample: 5b1e9c3e-8f1e-4c1a-9a51-0d2f3c4b5a69
sas:
  description: Number of owned SAs by what the run does with them.
  returned: always
  type: dict
  sample: {added: 4, updated: 0, removed: 0, unchanged: 0, kept: 0}
  contains:
    added:
      description: SAs added.
      type: int
    updated:
      description: SAs replaced by their new form (an SA is deleted and added again).
      type: int
    removed:
      description: SAs removed.
      type: int
    unchanged:
      description: Desired SAs already in place.
      type: int
    kept:
      description:
        - Owned SAs that are not desired but stay as they are. These are the entries of a peer whose boot id is
          unknown (RV(frozen_peers)); every such entry with O(purge=false) and in the phases V(inbound) and
          V(outbound) of O(phase), which remove nothing; the OUT entries with O(outbound=false); and the OUT
          entries towards a peer given with C(outbound=keep).
        - Always V(0) with O(state=absent), which removes every owned entry.
      type: int
policies:
  description: Number of owned policies by what the run does with them.
  returned: always
  type: dict
  sample: {added: 10, updated: 0, removed: 0, unchanged: 0, kept: 0}
  contains:
    added:
      description: Policies added.
      type: int
    updated:
      description: Policies replaced by their new form (a policy is updated in place).
      type: int
    removed:
      description: Policies removed.
      type: int
    unchanged:
      description: Desired policies already in place.
      type: int
    kept:
      description: Owned policies that are not desired but stay as they are, in the cases RV(sas.kept) lists for SAs.
      type: int
added:
  description:
    - Entries added, as C(ip xfrm)-like lines with keys replaced by fingerprints.
    - Only with C(--diff) or C(-v) (any verbosity), like RV(updated) and RV(removed). A line per
      SA and policy grows with the peers, and the controller reads and keeps every result;
      without them RV(sas) and RV(policies) give the counts.
  returned: with C(--diff) or C(-v)
  type: list
  elements: str
  sample: ["state 10.77.0.1 -> 10.77.0.2 esp spi 0x1a2b3c4d reqid 0x6e736563 tunnel aead rfc4106(gcm(aes)) key sha256:3f1c9a0b7e2d icv 128"]
updated:
  description: Entries replaced in place, as lines in their new form.
  returned: with C(--diff) or C(-v)
  type: list
  elements: str
  sample: []
removed:
  description: Entries removed, as lines.
  returned: with C(--diff) or C(-v)
  type: list
  elements: str
  sample: []
frozen_peers:
  description: Peers whose entries were left as they are because their boot id is unknown.
  returned: always
  type: list
  elements: str
  sample: []
converged:
  description:
    - V(true) when O(skip_when_converged) found the node already holding the final state of
      the rollout (nothing was changed in the kernel).
  returned: always
  type: bool
  sample: false
stored_peer_table:
  description:
    - The fingerprint of the peer table that O(state_dir) holds after the call (in check mode,
      the one it held before), V(null) when it holds none or the call failed. A later call
      can name it in O(peer_table.fingerprint) without sending the table.
  returned: always
  type: str
  sample: "sha256:8d2f1c0b9e7a6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c"
state_files_changed:
  description:
    - Whether a file in O(state_dir) was written or removed (or would be, in check mode). The
      diff shows each one after the SAD/SPD delta.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsec.ipsec.plugins.module_utils._lock import DEFAULT_LOCK_TIMEOUT
from ansible_collections.netsec.ipsec.plugins.module_utils._modules.endpoint import run_module
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import DEFAULT_REQID


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            keys_file=dict(type="path", default="/etc/ipsec/keys"),
            local=dict(
                type="dict",
                required=True,
                options=dict(
                    name=dict(type="str"),
                    addresses=dict(type="list", elements="str", required=True),
                    subnets=dict(type="list", elements="str"),
                ),
            ),
            peers=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    addresses=dict(type="list", elements="str", required=True),
                    subnets=dict(type="list", elements="str"),
                    boot_id=dict(type="str"),
                    inbound_level=dict(type="str", choices=["use", "required", "keep"]),
                    outbound=dict(type="str", choices=["enable", "keep"], default="enable"),
                ),
            ),
            peer_table=dict(
                type="dict",
                options=dict(
                    fingerprint=dict(type="str", required=True),
                    peers=dict(type="str"),
                    keep_outbound=dict(type="list", elements="str", default=[]),
                    keep_inbound_level=dict(type="list", elements="str", default=[]),
                ),
            ),
            per_pair_keys=dict(type="bool", default=True),
            out_spi=dict(type="int"),
            outbound=dict(type="bool", default=True),
            phase=dict(type="str", choices=["inbound", "outbound", "all"], default="all"),
            skip_when_converged=dict(type="bool", default=False),
            inbound_level=dict(type="str", choices=["use", "required"], default="required"),
            bypass=dict(
                type="list",
                elements="dict",
                no_log=False,
                default=[dict(proto="tcp", port=22, side="server")],
                options=dict(
                    proto=dict(type="str", choices=["tcp", "udp", "sctp"], required=True),
                    port=dict(type="int", required=True),
                    side=dict(type="str", choices=["server", "client"], default="server"),
                    networks=dict(type="list", elements="str", default=[]),
                ),
            ),
            marks=dict(type="str", choices=["none", "cilium"], default="none"),
            reqid=dict(type="int", default=DEFAULT_REQID),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            purge=dict(type="bool", default=True),
            state_dir=dict(type="path", default="/var/lib/netsec-ipsec"),
            lock_timeout=dict(type="float", default=DEFAULT_LOCK_TIMEOUT),
        ),
        mutually_exclusive=[("peers", "peer_table")],
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
