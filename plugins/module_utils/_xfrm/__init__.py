# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The XFRM model every layer shares: ``model`` (SAs, policies, their canonical form, the
operations on them) and ``render`` (their masked one-line text)."""
