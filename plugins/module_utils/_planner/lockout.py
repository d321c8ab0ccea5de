# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Would a policy about to be installed cover the SSH connection Ansible is using?

sshd puts ``SSH_CONNECTION`` ("client-ip client-port server-ip server-port") into the
environment of the commands it runs, and the module inherits it. A template policy whose
selector matches that connection's packets (client to server on the inbound side, server to
client on the outbound side) and that no template-less bypass policy overrides would make
the connection depend on the SAs: with a key mismatch or a missing SA on either end, Ansible
would lose the node. That is worth a warning before applying.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable, List, Optional, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import DIR_IN, DIR_OUT, Selector, XfrmPolicy

IPPROTO_TCP = 6
SSH_CONNECTION_FIELDS = 4


def parse_ssh_connection(value: Optional[str]) -> Optional[Tuple[str, int, str, int]]:
    """(client ip, client port, server ip, server port), or None when not over SSH."""
    fields = (value or "").split()
    if len(fields) != SSH_CONNECTION_FIELDS:
        return None
    try:
        client = str(ipaddress.ip_address(fields[0].split("%")[0]))
        server = str(ipaddress.ip_address(fields[2].split("%")[0]))
        return client, int(fields[1]), server, int(fields[3])
    except ValueError:
        return None


def _in_network(address: str, network: str) -> bool:
    parsed = ipaddress.ip_address(address)
    net = ipaddress.ip_network(network, strict=False)
    return parsed.version == net.version and parsed in net


def _port_matches(port: int, selector_port: int, mask: int) -> bool:
    return (port & mask) == (selector_port & mask)


def selector_matches(selector: Selector, src: str, sport: int, dst: str, dport: int, proto: int) -> bool:
    """Whether a packet src:sport -> dst:dport of ``proto`` matches ``selector``."""
    if not (_in_network(src, selector.src) and _in_network(dst, selector.dst)):
        return False
    if selector.proto and selector.proto != proto:
        return False
    return _port_matches(sport, selector.sport, selector.sport_mask) and _port_matches(dport, selector.dport, selector.dport_mask)


def covering_policies(policies: Iterable[XfrmPolicy], connection: Tuple[str, int, str, int]) -> List[XfrmPolicy]:
    """The template policies that would take the connection's packets, unless a template-less
    (bypass) policy of higher precedence (lower priority) for the same direction takes them first."""
    client, client_port, server, server_port = connection
    packets = {
        DIR_IN: (client, client_port, server, server_port),
        DIR_OUT: (server, server_port, client, client_port),
    }
    policies = list(policies)
    covering: List[XfrmPolicy] = []
    for direction, (src, sport, dst, dport) in packets.items():
        matching = [policy for policy in policies if policy.dir == direction
                    and selector_matches(policy.selector, src, sport, dst, dport, IPPROTO_TCP)]
        if not matching:
            continue
        winner = min(matching, key=lambda policy: policy.priority)
        if winner.templates:
            covering.append(winner)
    return covering
