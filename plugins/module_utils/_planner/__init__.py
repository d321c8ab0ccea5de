# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure planner: what one node must hold, and the safe way there from what it holds.

No module here imports Ansible or opens a socket. In the order they build on each other:

* ``ownership``: which entries are ours (reqid, priority band), ``PlanError``;
* ``derive``: per-pair keys from the master key, both tunnel addresses and both boot ids;
* ``desired``: the inputs (``LocalNode``, ``Peer``, ``PlanOptions``), wire SPIs and marks,
  and ``build_desired`` → ``DesiredSet``, everything the node must hold;
* ``reconcile``: ``reconcile(desired, states, policies)`` → ``Plan``: the changes on owned
  entries in their safe order, each with its kernel operations;
* ``report``: a plan as Ansible reports it (``--diff``, change lines, counts) and the
  secrets a module must mask;
* ``lockout``: whether a policy about to be installed would carry Ansible's own SSH
  connection.
"""
