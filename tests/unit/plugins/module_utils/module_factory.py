# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real AnsibleModule for tests of code that writes files (no module file needed)."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args


def file_module(check_mode: bool = False, **params: Any) -> AnsibleModule:
    """A module with Ansible's common file arguments (mode, owner, group...) set to ``params``."""
    with patch_module_args(dict(params, _ansible_check_mode=check_mode)):
        return AnsibleModule(argument_spec={}, add_file_common_args=True, supports_check_mode=True)
