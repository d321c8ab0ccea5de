#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sysctl_ipv6_forward
short_description: Enable or disable IP forwarding, live and persistently, for IPsec gateways
version_added: 0.1.0
description:
  - Sets the kernel's forwarding switches C(net.ipv6.conf.<interface>.forwarding) (and, with O(ipv4=true),
    C(net.ipv4.conf.<interface>.forwarding)) for the interfaces listed in O(interfaces), so that a node can route the
    subnets behind it through its IPsec tunnels.
  - Where it enables IPv6 forwarding, the module also sets C(net.ipv6.conf.<interface>.accept_ra) from V(1) to V(2) on the
    interfaces concerned, so that they keep accepting router advertisements while they forward
    (O(keep_router_advertisements)).
  - Only these keys are touched. The live values are written one by one under C(/proc/sys); the module never runs
    C(sysctl -p) or C(sysctl --system), which would re-apply every other key of the files read.
  - With O(persist=true) the same keys are written to O(sysctl_file), a drop-in file that this module owns. It holds
    exactly the keys of the last run as stable C(key = value) lines below a header comment starting with
    C(# Managed by netsec.ipsec). Keys of an earlier run that are no longer requested are removed from the file, but
    their live values are left as they are.
  - Everything is read and validated before anything is written. A missing interface, a kernel without IPv6, a
    read-only C(/proc/sys) (as in most containers) or a O(sysctl_file) that this module does not own fails the task
    with a message naming each key and path concerned, and changes nothing.
  - The values are per network namespace. The module sets them in the namespace that it runs in; other namespaces,
    such as containers on the same host, keep their own values.
  - At boot, systemd-sysctl (or C(sysctl --system)) applies the sysctl.d files in the lexical order of their names, so
    a file named later (for example C(99-custom.conf)) that sets the same key overrides this one. The default name uses
    the C(60-) prefix for that reason. The module warns when it finds such a file, or when a file of the same name in a
    directory of higher priority masks O(sysctl_file).
  - Writing the C(all) interface makes the kernel copy the forwarding value to C(default) and to every existing
    interface. After the C(accept_ra) keys, the module writes C(all) first, then C(default), then the other interfaces,
    and uses the same order in the file.
author:
  - netsec.ipsec contributors (@netsec)
extends_documentation_fragment:
  - ansible.builtin.files
  - netsec.ipsec.attributes
  - netsec.ipsec.node_lock
  - netsec.ipsec.attributes.FILES
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the live values before and after (the C(accept_ra) keys, then the forwarding keys, in the
        order they are written), and the text of O(sysctl_file) before and after.
  platform:
    platforms: linux
options:
  enabled:
    description:
      - Whether forwarding is switched on (V(1)) or off (V(0)).
      - With O(enabled=false) the module writes V(0) to the live keys and, with O(persist=true), persists V(0) as
        well, rather than removing the keys from O(sysctl_file). Disabling forwarding on the C(all) interface also
        disables it on every existing interface.
      - With O(enabled=false) no C(accept_ra) value is written or persisted; see O(keep_router_advertisements).
    type: bool
    default: true
  interfaces:
    description:
      - The interfaces whose forwarding switch is set.
      - V(all) sets every existing interface and C(default); V(default) sets the value that interfaces created later
        start with; any other name is an existing network interface, such as V(eth0) or the VLAN interface V(eth0.100).
      - The interface must exist in the network namespace that the module runs in.
      - A name that contains dots is written with slashes in the sysctl key, as C(sysctl) does
        (C(net.ipv6.conf.eth0/100.forwarding)); its C(/proc/sys) path keeps the dots.
    type: list
    elements: str
    default: [all]
  ipv6:
    description:
      - Manage the IPv6 forwarding keys C(net.ipv6.conf.<interface>.forwarding).
      - When the kernel has no IPv6 (no C(/proc/sys/net/ipv6), for example after booting with C(ipv6.disable=1)), the
        task fails unless this is V(false).
      - An interface whose IPv6 is switched off with C(disable_ipv6 = 1) is not an error. Its forwarding value is still
        set, and the module warns that the value takes effect only once IPv6 is enabled there.
    type: bool
    default: true
  ipv4:
    description:
      - Also manage the IPv4 forwarding keys C(net.ipv4.conf.<interface>.forwarding), needed when the node routes IPv4
        subnets (for example container networks) through its tunnels.
      - C(net.ipv4.conf.all.forwarding) is the same setting as C(net.ipv4.ip_forward).
    type: bool
    default: false
  keep_router_advertisements:
    description:
      - When the module enables IPv6 forwarding (O(enabled=true) and O(ipv6=true)), set
        C(net.ipv6.conf.<interface>.accept_ra) to V(2) on each interface whose forwarding it switches on and whose
        C(accept_ra) is V(1), so that the interface keeps accepting router advertisements (RAs) while it forwards.
      - Why. With C(accept_ra = 1), the kernel's default, an interface accepts RAs only while it does not forward. A
        host that got its address and default route from RAs (SLAAC) stops accepting them once it forwards, and the
        kernel deletes the default routes learned from RAs at the moment forwarding is switched on. Without a default
        route the host can no longer reach anything beyond its links. V(2) accepts RAs while forwarding too.
      - Which interfaces. With V(all) in O(interfaces), C(default) (the value that interfaces created later start with)
        and every interface that exists when the module runs. The kernel does not copy C(all.accept_ra) to any
        interface, so that key is left alone and the interfaces are set one by one. Otherwise the interfaces listed
        in O(interfaces), C(default) among them when listed.
      - Which values. V(1) becomes V(2). V(0) (RAs off on purpose, or handled in user space, as systemd-networkd does)
        and any other value are left alone.
      - Order. The C(accept_ra) values are written before the forwarding values, live and in O(sysctl_file), because
        writing V(1) to a forwarding key makes the kernel delete the default routes learned from RAs on every interface
        whose C(accept_ra) is not V(2).
      - Persisted. With O(persist=true), O(sysctl_file) holds a line C(net.ipv6.conf.<interface>.accept_ra = 2) for
        each interface that the module set from V(1) to V(2), in this run or an earlier one, as long as its value is
        still V(2); and for C(default) whenever its value is V(2). A name with dots is written with slashes, as for
        the forwarding keys. At boot, systemd-sysctl applies an interface's keys when the interface appears, so the
        value holds after a reboot.
      - An interface that has V(2) without such a line is not added to the file. It got V(2) from C(default) when it
        was created (the C(default) line does the same at boot), or from someone else. This keeps the file from
        changing each time a container's interface comes or goes. An interface whose value is no longer V(2) (someone
        set V(0)) loses its line and keeps its live value.
      - With O(enabled=false), O(ipv6=false) or O(keep_router_advertisements=false), no C(accept_ra) value is written
        and O(sysctl_file) holds no C(accept_ra) line. Values that an earlier run set stay as they are live (with
        forwarding off, V(2) accepts RAs just as V(1) does) and return to the distribution's default at the next boot.
      - RAs are not authenticated. V(2) leaves an interface exactly as exposed to forged RAs as it was before it
        forwarded, no more; the usual protection is RA Guard on the switch.
      - Set this to V(false) on a router that must ignore RAs while it forwards.
    type: bool
    default: true
  persist:
    description:
      - Write the values to O(sysctl_file) so that they are applied again at boot.
      - With O(persist=false) the file is neither read nor written. Keys that an earlier run persisted stay in the
        file.
    type: bool
    default: true
  state:
    description:
      - V(present) applies and persists the values.
      - V(absent) removes O(sysctl_file), the only thing this module owns, as a teardown does, with its C(accept_ra)
        lines. Live values are left as they are (other software may rely on forwarding; they return to the
        distribution's defaults at the next boot). An interface with C(accept_ra = 2) keeps accepting RAs, whether
        it still forwards or not.
      - A file without this module's header is never removed, nor a symbolic link.
    type: str
    choices: [present, absent]
    default: present
  sysctl_file:
    description:
      - The drop-in file that holds the persisted values. It must be an absolute path.
      - The file belongs to this module. Every run that changes it rewrites it completely, through a temporary file in
        the same directory that is renamed over it. The file gets mode O(mode), and O(owner) and O(group) when given;
        missing parent directories are created with mode V(0755).
      - A symbolic link at this path is never followed. The task fails naming it and changes nothing, also with
        O(state=absent).
      - An existing file that does not start with the C(# Managed by netsec.ipsec) header is never overwritten; the task
        fails instead. This protects shared files such as C(/etc/sysctl.conf).
      - Give each task its own file when several tasks manage different interfaces, otherwise each run undoes the
        other's file.
    type: path
    default: /etc/sysctl.d/60-netsec-ipsec.conf
  mode:
    description:
      - Permissions of O(sysctl_file), as for M(ansible.builtin.file).
    type: raw
    default: '0644'
notes:
  - Run the module as root (for example with C(become=true)). A non-root user cannot write to C(/proc/sys).
  - Writing V(1) to a forwarding key makes the kernel delete the default routes learned from RAs on every interface of
    the network namespace whose C(accept_ra) is not V(2), also on interfaces outside O(interfaces) that do not
    forward. Those interfaces learn them again from the next RA.
  - Unlike M(ansible.posix.sysctl), the module handles several interfaces in one task. It supports diff mode, reports
    the live and the persisted values separately, and leaves every other key of every sysctl file alone.
seealso:
  - module: ansible.posix.sysctl
    description: Sets any single sysctl key, optionally through a shared file.
  - name: sysctl.d(5)
    description: The drop-in directories and the order in which their files are applied.
    link: https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html
"""

EXAMPLES = r"""
- name: Forward IPv6 on every interface, now and after reboots
  netsec.ipsec.sysctl_ipv6_forward:
  become: true

- name: Forward IPv6 and IPv4 between the tunnel interface and a VLAN interface only
  netsec.ipsec.sysctl_ipv6_forward:
    interfaces:
      - eth0
      - eth0.100
    ipv4: true
  become: true

- name: Forward IPv4 only, on a host booted with ipv6.disable=1
  netsec.ipsec.sysctl_ipv6_forward:
    ipv6: false
    ipv4: true
  become: true

- name: Switch forwarding on for this boot only, without touching any file
  netsec.ipsec.sysctl_ipv6_forward:
    persist: false
  become: true

- name: Forward IPv6 on a router that must ignore router advertisements while it forwards
  netsec.ipsec.sysctl_ipv6_forward:
    keep_router_advertisements: false
  become: true

- name: Switch forwarding off again, live and persisted
  netsec.ipsec.sysctl_ipv6_forward:
    enabled: false
  become: true

- name: Remove the drop-in file on teardown (live values stay until the next boot)
  netsec.ipsec.sysctl_ipv6_forward:
    state: absent
  become: true

- name: Keep the persisted values in a file of your own naming scheme
  netsec.ipsec.sysctl_ipv6_forward:
    sysctl_file: /etc/sysctl.d/70-mesh-forwarding.conf
  become: true
  register: forwarding

- name: Show what the kernel reports now
  ansible.builtin.debug:
    msg: "{{ forwarding.live['net.ipv6.conf.all.forwarding'].after }}"
"""

RETURN = r"""
live:
  description:
    - The live value of each managed forwarding key, before and after the run, as the kernel reports it.
    - In check mode, C(after) is the value that the run would set.
    - Keys are sysctl names; dots in interface names appear as slashes.
  returned: success
  type: dict
  sample:
    net.ipv6.conf.all.forwarding:
      before: "0"
      after: "1"
    net.ipv6.conf.eth0/100.forwarding:
      before: "0"
      after: "1"
accept_ra:
  description:
    - The live C(accept_ra) value of each interface that O(keep_router_advertisements) manages in this run, before and
      after the run, as the kernel reports it. These are the keys that O(sysctl_file) holds.
    - V(1) becomes V(2). An interface that stays at V(2) is listed when O(sysctl_file) held its line, and C(default)
      whenever its value is V(2).
    - An empty dictionary when the run writes no C(accept_ra) value (O(enabled=false), O(ipv6=false),
      O(keep_router_advertisements=false), or no interface concerned has V(1)).
    - In check mode, C(after) is the value that the run would set.
  returned: success
  type: dict
  sample:
    net.ipv6.conf.default.accept_ra:
      before: "1"
      after: "2"
    net.ipv6.conf.eth0.accept_ra:
      before: "1"
      after: "2"
    net.ipv6.conf.eth0/100.accept_ra:
      before: "2"
      after: "2"
persisted:
  description:
    - The value of each managed key in O(sysctl_file) (the C(accept_ra) keys, then the forwarding keys), before and
      after the run.
    - V(null) as C(before) means the key was not in the file, or the file did not exist.
    - V(null) as a whole when O(persist=false).
  returned: success
  type: dict
  sample:
    net.ipv6.conf.default.accept_ra:
      before: null
      after: "2"
    net.ipv6.conf.all.forwarding:
      before: null
      after: "1"
sysctl_file:
  description:
    - The path of the drop-in file, as given in O(sysctl_file). It is neither read nor written when O(persist=false).
  returned: success
  type: str
  sample: /etc/sysctl.d/60-netsec-ipsec.conf
diff:
  description:
    - In diff mode, first the live values, then (when O(persist=true)) the text of O(sysctl_file), each before and
      after the run.
  returned: success and diff mode
  type: list
  elements: dict
  contains:
    before_header:
      description: What is compared. For the file, its path, with the word C(absent) in parentheses after it when it did not exist.
      type: str
      sample: live values (/proc/sys, this network namespace)
    after_header:
      description: What is compared, after the run.
      type: str
      sample: live values (/proc/sys, this network namespace)
    before:
      description:
        - The live values as C(key = value) lines (the C(accept_ra) keys, then the forwarding keys), or the text of
          the file (empty when it did not exist).
      type: str
      sample: |-
        net.ipv6.conf.default.accept_ra = 1
        net.ipv6.conf.eth0.accept_ra = 1
        net.ipv6.conf.all.forwarding = 0
    after:
      description: The same after the run, or in check mode, as the run would leave it.
      type: str
      sample: |-
        net.ipv6.conf.default.accept_ra = 2
        net.ipv6.conf.eth0.accept_ra = 2
        net.ipv6.conf.all.forwarding = 1
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.netsec.ipsec.plugins.module_utils._lock import DEFAULT_LOCK_TIMEOUT
from ansible_collections.netsec.ipsec.plugins.module_utils._sysctl import DEFAULT_SYSCTL_FILE, FILE_MODE, INTERFACE_ALL
from ansible_collections.netsec.ipsec.plugins.module_utils._modules.sysctl import run


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "enabled": {"type": "bool", "default": True},
            "interfaces": {"type": "list", "elements": "str", "default": [INTERFACE_ALL]},
            "ipv6": {"type": "bool", "default": True},
            "ipv4": {"type": "bool", "default": False},
            "keep_router_advertisements": {"type": "bool", "default": True},
            "persist": {"type": "bool", "default": True},
            "sysctl_file": {"type": "path", "default": DEFAULT_SYSCTL_FILE},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "mode": {"type": "raw", "default": FILE_MODE},
            "lock_timeout": {"type": "float", "default": DEFAULT_LOCK_TIMEOUT},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run(module)


if __name__ == "__main__":
    main()
