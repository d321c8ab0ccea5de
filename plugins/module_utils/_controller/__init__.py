# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the mesh role computes on the controller, behind its filters (``plugins/filter``):
``mesh`` (the inventory contract, each node's peers, what to skip) and ``status`` (the mesh
status report). Nothing here runs on a node."""
