# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: xfrm_key_line
short_description: Make a fresh random key line for an IPsec keys file
version_added: 0.1.0
description:
  - Returns one new line in the keys-file grammar that M(netsec.ipsec.xfrm_keys) installs,
    with a key from the controller's C(os.urandom).
  - Runs on the controller. Store the result encrypted (for example with
    C(ansible-vault encrypt_string)); never print it.
author:
  - netsec.ipsec contributors (@netsec)
options:
  _terms:
    description: The key id (SPI) of the new line, 1-15. Use the current key id plus one for a rotation (15 wraps to 1).
    type: int
    required: true
  aead:
    description:
      - AEAD algorithm of the line.
      - V(rfc4543(gcm(aes\)\)) (GMAC) is refused, as M(netsec.ipsec.xfrm_keys) refuses it by
        default, because it authenticates but does not encrypt. The lookup only makes keys that protect.
    type: str
    default: rfc4106(gcm(aes))
  key_bytes:
    description: Key length in bytes; for RFC 4106, the AES key plus the 4-byte salt (20, 28 or 36).
    type: int
    default: 20
  icv_bits:
    description: ICV length in bits.
    type: int
    choices: [96, 128, 256]
    default: 128
seealso:
  - module: netsec.ipsec.xfrm_keys
"""

EXAMPLES = r"""
- name: Print a vaulted variable holding a fresh keys file with key id 1 (run once, save the output)
  ansible.builtin.command:
    cmd: ansible-vault encrypt_string --name ipsec_keys_content --stdin-name ipsec_keys_content
    stdin: "{{ lookup('netsec.ipsec.xfrm_key_line', 1) }}"
  delegate_to: localhost
  run_once: true
  no_log: true
  changed_when: false
"""

RETURN = r"""
_raw:
  description: One key line, for example V(1+ rfc4106(gcm(aes\)\) 0x... 128), without a newline.
  type: list
  elements: str
"""

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.rotation import generate_key_line


class LookupModule(LookupBase):
    """Generate a key line per requested key id."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        lines = []
        for term in terms:
            try:
                lines.append(generate_key_line(
                    int(term),
                    aead=self.get_option("aead"),
                    key_bytes=self.get_option("key_bytes"),
                    icv=self.get_option("icv_bits"),
                ))
            except (KeysFileError, ValueError) as error:
                raise AnsibleError("xfrm_key_line: %s" % error) from None
        return lines
