# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test oracles: independent tools used to check the collection's own netlink code.

``iproute2`` turns model objects into ``ip xfrm`` command lines, parses ``ip xfrm`` dumps back
into model objects and generates the differential-test corpus.
"""
