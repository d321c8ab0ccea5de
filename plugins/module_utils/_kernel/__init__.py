# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel adapter: ``xfrm`` reads a network namespace's SAD/SPD into model entries and
applies operations on them, over the wire codec of ``_nl``. It decides nothing."""
