# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of each module, behind its ``main()`` (argument spec and one call): what a test
without Ansible cannot reach stays in the module file, which is documentation."""
