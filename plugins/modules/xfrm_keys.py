#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: xfrm_keys
short_description: Install, validate and report on an IPsec keys file in Cilium's format
version_added: 0.1.0
description:
  - Manages the keys file that M(netsec.ipsec.xfrm_endpoint) reads on the node. The file holds
    one key per line in the grammar of Cilium's IPsec keys file; the last line is the
    B(current) key. Keys never travel back; results and diffs carry a short SHA-256
    fingerprint of each key instead.
  - With O(content) or O(keys), writes the file atomically (a temporary file in the same
    directory, then a rename) with mode O(mode).
  - A symbolic link at O(path) is never followed. When the file would be written or removed,
    the task fails naming the link and changes nothing.
  - With neither O(content) nor O(keys), only validates the existing file and reports on it;
    the file is never changed.
  - Every rejection names the source and the line (or the list item) and what is wrong, and
    changes nothing.
  - 'Accepted line forms: V(N[+] rfcNNNN(...\) HEXKEY ICVBITS) (AEAD) and
    V(N[+] AUTH-ALGO HEXKEY ENC-ALGO HEXKEY), where V(N) is the key id (SPI) 1-15, the V(+)
    suffix is accepted and ignored (keys are always per pair), HEXKEY may start with C(0x)
    and C("") is an empty key. The 2019 form without the leading key id is read as key id 1
    with a deprecation warning.'
  - Every line needs its own key id. A new current key that adds more ESP overhead to each packet than the
    file's current key (see RV(esp_overhead)) is refused, changing nothing, unless O(allow_larger_overhead=true),
    because the mesh's MTU is sized for the current overhead. The key's length does not count, so a rotation from
    AES-128-GCM to AES-256-GCM, or from an auth+enc key to an AEAD key, needs no flag.
  - Keys that protect nothing are refused, naming the line (or the list item and field) and
    why, unless O(allow_insecure_suites=true) - C(digest_null) (no integrity), C(cipher_null)
    (no encryption) and V(rfc4543(gcm(aes\)\)) (GMAC, no encryption) - as are HMAC keys shorter
    than 16 bytes, cipher and AEAD keys of another length than the algorithm's, and keys whose
    bytes (or, for AEAD and V(rfc3686(ctr(aes\)\)), whose bytes before the salt or nonce) are
    all zero. Cilium accepts all of these; its test vectors and the keys its documentation
    generates are valid here too (apart from its C(digest_null)/C(cipher_null) vector).
  - The legacy algorithms V(hmac(md5\)) and V(cbc(des3_ede\)) are accepted with a warning.
author:
  - netsec.ipsec contributors (@netsec)
extends_documentation_fragment:
  - ansible.builtin.files
  - netsec.ipsec.attributes
  - netsec.ipsec.attributes.FILES
  - netsec.ipsec.node_lock
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the file with every key replaced by its fingerprint.
  platform:
    platforms: posix
options:
  path:
    description:
      - Path of the keys file on the node.
    type: path
    default: /etc/ipsec/keys
  content:
    description:
      - The whole file, as lines in the keys-file grammar. Normally from an
        ansible-vault encrypted variable.
      - Mutually exclusive with O(keys).
    type: str
  keys:
    description:
      - The keys as a list, oldest first; the last item is the current key.
      - The key suboptions are masked in Ansible's output; the algorithm names and numbers are not.
      - Mutually exclusive with O(content).
    type: list
    elements: dict
    suboptions:
      spi:
        description: Key id, used as the SPI of the SAs (1-15).
        type: int
        required: true
      aead:
        description:
          - AEAD algorithm, for example V(rfc4106(gcm(aes\)\)). The name must start with C(rfc).
          - Requires O(keys[].aead_key) and O(keys[].icv_bits); excludes O(keys[].auth) and O(keys[].enc).
        type: str
      aead_key:
        description: AEAD key in hex (optionally with C(0x)); for RFC 4106 the AES key plus a 4-byte salt.
        type: str
      icv_bits:
        description: Length of the AEAD integrity check value in bits.
        type: int
        choices: [96, 128, 256]
      auth:
        description: Authentication algorithm, for example V(hmac(sha256\)). Requires O(keys[].enc).
        type: str
      auth_key:
        description: Authentication key in hex.
        type: str
      enc:
        description: Encryption algorithm, for example V(cbc(aes\)).
        type: str
      enc_key:
        description: Encryption key in hex.
        type: str
  retain_previous:
    description:
      - Keep the existing file's current key in front of the given keys, the first step of a
        make-before-break rotation; the new key must have another key id, and an ESP overhead
        no larger than the current key's unless O(allow_larger_overhead=true), or the module
        fails and changes nothing.
      - Once the file ends with the given keys it is left as it is.
    type: bool
    default: false
  allow_rotation:
    description:
      - V(false) refuses, changing nothing, content whose current key differs from the
        existing file's current key, by key id or, under the same key id, by algorithm, ICV
        or key bytes, because switching keys safely needs every node in step (see the
        C(netsec.ipsec.rotate) playbook). A missing or invalid file may always be written,
        and dropping a previous key that precedes the current one is allowed.
    type: bool
    default: true
  allow_insecure_suites:
    description:
      - Accept keys whose algorithms protect nothing - C(digest_null), C(cipher_null) and
        V(rfc4543(gcm(aes\)\)) (GMAC) - with a warning, to validate or write a keys file for a
        test rig that must see the traffic inside ESP.
      - Such a file is usable only here. M(netsec.ipsec.xfrm_endpoint) refuses it (it never
        installs SAs that protect nothing), M(netsec.ipsec.xfrm_info) does not report its current
        key, the mesh role never passes this option, and the P(netsec.ipsec.xfrm_key_line#lookup)
        lookup never makes such a key; each refusal names this option.
      - Short, wrong-length and all-zero keys are refused whatever this option says.
    type: bool
    default: false
  allow_larger_overhead:
    description:
      - Allow a new current key (another key id than the file's current key) that adds more ESP overhead to each
        packet than the current key, for example a switch from an AEAD key to an auth+enc key, or to a longer ICV.
      - Packets sized for the mesh's current MTU would no longer fit and be dropped or fragmented. Lower the MTU of
        the interfaces or routes between members by the difference first (the refusal names it).
    type: bool
    default: false
  mesh_current_keys:
    description:
      - The current key of each other member of the mesh, as M(netsec.ipsec.xfrm_info)
        reports it in RV(netsec.ipsec.xfrm_info#module:current_key) (a masked key line; key
        id, algorithms and fingerprint, never the key). The mesh role passes them.
      - With O(allow_rotation=false), a file whose current key has the new content's key id
        but other algorithms or key bytes is still rewritten when the new current key is one
        of these; the node is brought back to the key its peers already use, which can only
        restore its traffic.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) writes (or only validates) the file; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  mode:
    description:
      - Permissions of the keys file, as for M(ansible.builtin.file).
    type: raw
    default: '0600'
  owner:
    description: Owner of the keys file; unchanged when not given.
    type: str
  group:
    description: Group of the keys file; unchanged when not given.
    type: str
notes:
  - Every key the module reads or writes is added to the values Ansible masks in its output.
  - Use the P(netsec.ipsec.xfrm_key_line#lookup) lookup to make a fresh key line on the controller.
seealso:
  - module: netsec.ipsec.xfrm_endpoint
  - plugin: netsec.ipsec.xfrm_key_line
    plugin_type: lookup
requirements:
  - Python 3.9 or newer on the target.
"""

EXAMPLES = r"""
- name: Install the keys from a vaulted variable
  netsec.ipsec.xfrm_keys:
    content: "{{ vault_ipsec_keys }}"

- name: Install keys given as a list (the last item is the current key)
  netsec.ipsec.xfrm_keys:
    path: /etc/ipsec/keys
    keys:
      - spi: 3
        aead: rfc4106(gcm(aes))
        aead_key: "{{ vault_ipsec_aead_key }}"
        icv_bits: 128

- name: Only validate the keys file that is there, and report on it
  netsec.ipsec.xfrm_keys:
  register: keys_report

- name: Show the current key id and the MTU overhead
  ansible.builtin.debug:
    msg: "SPI {{ keys_report.spi }}, overhead {{ keys_report.overhead }} bytes"

- name: Remove the keys file
  netsec.ipsec.xfrm_keys:
    state: absent
"""

RETURN = r"""
path:
  description: Path of the keys file.
  returned: always
  type: str
  sample: /etc/ipsec/keys
spi:
  description: Key id of the current key (the last line); V(null) when the file is absent.
  returned: always
  type: int
  sample: 3
previous_spi:
  description: Key id of the current key of the file as it was before the module ran; V(null) when there was no valid file.
  returned: always
  type: int
  sample: 2
overhead:
  description:
    - Authentication overhead in bytes of the current key as Cilium computes it for the MTU.
    - ICV bits divided by 8 for AEAD keys; for authentication plus encryption keys, the number
      of hex digits of the authentication key (Cilium's historical quirk, kept for parity).
  returned: always
  type: int
  sample: 16
esp_overhead:
  description:
    - The most bytes ESP adds to each packet under the current key, the outer IP header of tunnel mode aside (20 for
      IPv4, 40 for IPv6), counting the ESP header, the IV, the worst padding, the trailer and the ICV. Size the mesh's MTU with it. It
      depends on the algorithms and the ICV, not on the key's length.
    - V(null) when the file is absent.
  returned: always
  type: int
  sample: 37
keys_info:
  description: One entry per key, oldest first. Never contains key material.
  returned: always
  type: list
  elements: dict
  contains:
    spi:
      description: Key id.
      type: int
      sample: 3
    form:
      description: V(aead) or V(auth_enc).
      type: str
      sample: aead
    plus_marker:
      description: Whether the line carried Cilium's C(+) suffix (accepted and ignored).
      type: bool
      sample: true
    aead:
      description: AEAD algorithm name.
      returned: for AEAD keys
      type: str
      sample: rfc4106(gcm(aes))
    icv_bits:
      description: ICV length in bits.
      returned: for AEAD keys
      type: int
      sample: 128
    auth:
      description: Authentication algorithm name.
      returned: for authentication plus encryption keys
      type: str
      sample: hmac(sha256)
    auth_key_bits:
      description: Authentication key length in bits.
      returned: for authentication plus encryption keys
      type: int
      sample: 256
    enc:
      description: Encryption algorithm name.
      returned: for authentication plus encryption keys
      type: str
      sample: cbc(aes)
    enc_key_bits:
      description: Encryption key length in bits.
      returned: for authentication plus encryption keys
      type: int
      sample: 128
    key_bits:
      description: Total key length in bits (for RFC 4106, including the 32-bit salt).
      type: int
      sample: 160
    overhead:
      description: Authentication overhead of this key in bytes (see RV(overhead)).
      type: int
      sample: 16
    esp_overhead:
      description: The most bytes ESP adds to a packet under this key (see RV(esp_overhead)).
      type: int
      sample: 37
    fingerprint:
      description: Short SHA-256 fingerprint of the key material.
      type: str
      sample: sha256:3f1c9a0b7e2d
    line:
      description: Line number in the file (or item number in O(keys)).
      type: int
      sample: 1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KEYS_FILE_MODE
from ansible_collections.netsec.ipsec.plugins.module_utils._lock import DEFAULT_LOCK_TIMEOUT
from ansible_collections.netsec.ipsec.plugins.module_utils._modules.keys import run_module


def main() -> None:
    key_argument_spec = dict(
        spi=dict(type="int", required=True),
        aead=dict(type="str"),
        aead_key=dict(type="str", no_log=True),
        icv_bits=dict(type="int", choices=[96, 128, 256]),
        auth=dict(type="str"),
        auth_key=dict(type="str", no_log=True),
        enc=dict(type="str"),
        enc_key=dict(type="str", no_log=True),
    )
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/ipsec/keys"),
            content=dict(type="str", no_log=True),
            keys=dict(type="list", elements="dict", options=key_argument_spec, no_log=False),
            retain_previous=dict(type="bool", default=False),
            allow_rotation=dict(type="bool", default=True),
            allow_larger_overhead=dict(type="bool", default=False),
            lock_timeout=dict(type="float", default=DEFAULT_LOCK_TIMEOUT),
            mesh_current_keys=dict(type="list", elements="str", default=[], no_log=False),
            allow_insecure_suites=dict(type="bool", default=False),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            mode=dict(type="raw", default=KEYS_FILE_MODE),
        ),
        mutually_exclusive=[("content", "keys")],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
