#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mesh_metrics
short_description: Write one node's IPsec mesh status as a Prometheus node_exporter textfile
version_added: 0.1.0
description:
  - Renders the node's part of the report of the P(netsec.ipsec.mesh_status#filter) filter (which the
    C(netsec.ipsec.status) playbook computes on the controller, since a pair's verdict needs both ends) and the
    node's XFRM error counters in Prometheus' text exposition format, and writes it to O(path), where the textfile
    collector of node_exporter picks it up, so dashboards and alerts see the mesh.
  - The file is replaced atomically (a temporary file in the same directory, ending in C(.tmp), then a rename), so
    a scrape never reads half of it. It is rewritten only when its content changes.
  - 'Series: C(netsec_ipsec_pair_ok) (1 or 0) and C(netsec_ipsec_pair_verdict) (the verdict as a label) per peer
    address; C(netsec_ipsec_key_id) (the key id of the SA the node sends with) per peer address;
    C(netsec_ipsec_sa_packets_total) and C(netsec_ipsec_sa_bytes_total) per SA, with labels C(peer), C(src),
    C(dst), C(direction) (V(out) sent, V(in) received), C(spi) and C(key_id); C(netsec_ipsec_xfrm_errors_total)
    per C(/proc/net/xfrm_stat) counter (label C(counter)); C(netsec_ipsec_foreign_entries) by C(kind).'
  - node_exporter's own C(node_textfile_mtime_seconds) tells when the file was last written.
author:
  - netsec.ipsec contributors (@netsec)
extends_documentation_fragment:
  - ansible.builtin.files
  - netsec.ipsec.attributes
  - netsec.ipsec.attributes.FILES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the textfile before and after.
  platform:
    platforms: posix
options:
  path:
    description:
      - The textfile, in the directory node_exporter reads with C(--collector.textfile.directory). It must be an
        absolute path ending in C(.prom); a symbolic link there is refused. Missing directories are created with
        mode V(0755).
    type: path
    required: true
  report:
    description:
      - This node's part of the P(netsec.ipsec.mesh_status#filter) report, C(nodes[inventory_hostname]).
      - A value of another shape is an error naming the item and field, and nothing is written.
    type: dict
    required: true
  xfrm_stat:
    description: The node's XFRM error counters as M(netsec.ipsec.xfrm_info) returns them (RV(netsec.ipsec.xfrm_info#module:xfrm_stat)).
    type: dict
    default: {}
  mode:
    description: Permissions of the textfile, as for M(ansible.builtin.file).
    type: raw
    default: '0644'
seealso:
  - module: netsec.ipsec.xfrm_info
  - plugin: netsec.ipsec.mesh_status
    plugin_type: filter
  - name: node_exporter textfile collector
    description: How node_exporter reads C(*.prom) files.
    link: https://github.com/prometheus/node_exporter#textfile-collector
requirements:
  - Python 3.9 or later on the target; no third-party package.
"""

EXAMPLES = r"""
# The netsec.ipsec.status playbook does this with -e ipsec_status_textfile=PATH, after reading
# every node with netsec.ipsec.xfrm_info (entries: true) into ipsec_status_info and building
# the report with the netsec.ipsec.mesh_status filter into ipsec_status.
- name: Write the node's textfile for node_exporter
  netsec.ipsec.mesh_metrics:
    path: /var/lib/prometheus/node-exporter/netsec_ipsec.prom
    report: "{{ ipsec_status.nodes[inventory_hostname] }}"
    xfrm_stat: "{{ ipsec_status_info.xfrm_stat }}"
"""

RETURN = r"""
path:
  description: The textfile.
  returned: success
  type: str
  sample: /var/lib/prometheus/node-exporter/netsec_ipsec.prom
samples:
  description: How many samples (series) the textfile holds.
  returned: success
  type: int
  sample: 42
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsec.ipsec.plugins.module_utils._modules.metrics import TEXTFILE_MODE, run_module


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            report=dict(type="dict", required=True),
            xfrm_stat=dict(type="dict", default={}),
            mode=dict(type="raw", default=TEXTFILE_MODE),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
