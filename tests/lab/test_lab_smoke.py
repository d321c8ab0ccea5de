"""Smoke test of the lab itself, run inside a 3-node lab:

    lab/run --nodes 3 -- pytest -q tests/lab/test_lab_smoke.py

(add --ipv6 for the IPv6 cases, --ssh to reach the nodes through sshd). Checks
that nodes are separate hosts, that hand-written ESP SAs carry traffic and
lab-capture sees only ESP, that removing the policies shows plaintext, that
Ansible reaches every node and that lab-reboot behaves like a reboot.
"""

import os
import subprocess
import uuid

import pytest

KEY_1TO2 = "0x" + "a1" * 20     # rfc4106(gcm(aes)): 128-bit key + 32-bit salt
KEY_2TO1 = "0x" + "b2" * 20
SPI_1TO2, SPI_2TO1 = 0x1002, 0x2001


def test_nodes_have_their_own_boot_id(lab_nodes, lab_boot_id):
    ids = [lab_boot_id(n) for n in lab_nodes]
    with open("/proc/sys/kernel/random/boot_id") as f:
        root_id = f.read().strip()
    assert len(set(ids)) == len(ids), ids
    assert root_id not in ids
    for boot_id in ids:
        assert str(uuid.UUID(boot_id)) == boot_id


def test_etc_is_private_per_node(lab_exec):
    name = f"/etc/lab-smoke-{uuid.uuid4().hex}"
    lab_exec("node1", "sh", "-c", f"echo node1 > {name}")
    assert lab_exec("node1", "cat", name).stdout == "node1\n"
    assert lab_exec("node2", "test", "-e", name, check=False).returncode == 1
    assert not os.path.exists(name)     # nor in the control namespace


def test_nodes_are_separate_hosts(lab_exec):
    assert lab_exec("node1", "hostname").stdout.strip() == "node1"
    assert lab_exec("node2", "hostname").stdout.strip() == "node2"
    links = lab_exec("node1", "ls", "/sys/class/net").stdout.split()
    assert sorted(links) == ["eth1", "lo"]


def test_inventory(lab_inventory, lab_nodes, lab_addresses):
    hosts = lab_inventory["all"]["children"]["ipsec_mesh"]["hosts"]
    assert sorted(hosts) == sorted(lab_nodes)
    for i, node in enumerate(lab_nodes, start=1):
        assert hosts[node]["ipsec_addresses"][0] == f"10.77.0.{i}"
        if os.environ.get("LAB_IPV6") == "1":
            assert hosts[node]["ipsec_addresses"] == [f"10.77.0.{i}", f"fd77::{i}"]
        else:
            assert hosts[node]["ipsec_addresses"] == [f"10.77.0.{i}"]


def test_ansible_reaches_every_node(inventory_path, lab_nodes):
    res = subprocess.run(["ansible", "-i", str(inventory_path), "ipsec_mesh", "-m", "ansible.builtin.ping"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    for node in lab_nodes:
        assert f"{node} | SUCCESS" in res.stdout, res.stdout


def _xfrm_batch(local, peer, spi_out, spi_in, key_out, key_in, with_policies=True):
    """ip -batch lines for one end (local) of a tunnel-mode pair local <-> peer."""
    a, b = local, peer
    host = "128" if ":" in a else "32"
    lines = [
        f"xfrm state add src {a} dst {b} proto esp spi {spi_out:#x} reqid {spi_out} mode tunnel"
        f" aead rfc4106(gcm(aes)) {key_out} 128",
        f"xfrm state add src {b} dst {a} proto esp spi {spi_in:#x} reqid {spi_in} mode tunnel"
        f" aead rfc4106(gcm(aes)) {key_in} 128",
    ]
    if with_policies:
        lines += [
            f"xfrm policy add src {a}/{host} dst {b}/{host} dir out"
            f" tmpl src {a} dst {b} proto esp reqid {spi_out} mode tunnel",
            f"xfrm policy add src {b}/{host} dst {a}/{host} dir in"
            f" tmpl src {b} dst {a} proto esp reqid {spi_in} mode tunnel",
        ]
    return "\n".join(lines) + "\n"


def _delete_policies(lab_exec, node, local, peer):
    a, b = local, peer
    host = "128" if ":" in a else "32"
    lab_exec(node, "ip", "-batch", "-", input=(
        f"xfrm policy delete src {a}/{host} dst {b}/{host} dir out\n"
        f"xfrm policy delete src {b}/{host} dst {a}/{host} dir in\n"))


@pytest.mark.parametrize("family", ["ipv4", pytest.param("ipv6", marks=pytest.mark.ipv6)])
def test_esp_on_the_wire_then_plaintext(family, lab_exec, lab_capture, lab_addresses):
    a, b = lab_addresses["node1"][family], lab_addresses["node2"][family]
    assert a is not None, "this test needs a lab started with --ipv6 (deselect it with -m 'not ipv6')"
    lab_exec("node1", "ip", "-batch", "-", input=_xfrm_batch(a, b, SPI_1TO2, SPI_2TO1, KEY_1TO2, KEY_2TO1))
    lab_exec("node2", "ip", "-batch", "-", input=_xfrm_batch(b, a, SPI_2TO1, SPI_1TO2, KEY_2TO1, KEY_1TO2))
    try:
        cap = lab_capture("lab-exec", "node1", "ping", "-c", "3", "-i", "0.2", "-W", "2", b)
        assert cap.returncode == 0, cap.stdout + cap.stderr
        assert cap.plaintext == [], cap.plaintext
        # >= : with IPv6, unicast neighbour probes between the two are encrypted too
        assert cap.esp_packets(a, b, f"{SPI_1TO2:#010x}") >= 3, cap.esp
        assert cap.esp_packets(b, a, f"{SPI_2TO1:#010x}") >= 3, cap.esp
        assert {(e["src"], e["dst"]) for e in cap.esp} == {(a, b), (b, a)}
    finally:
        _delete_policies(lab_exec, "node1", a, b)
        _delete_policies(lab_exec, "node2", b, a)

    cap = lab_capture("lab-exec", "node1", "ping", "-c", "2", "-i", "0.2", "-W", "2", b)
    assert cap.returncode == 0, cap.stdout + cap.stderr
    assert cap.esp == []
    proto = "icmp" if family == "ipv4" else "icmp6"
    assert cap.plaintext_packets(proto, a, b) == 2, cap.plaintext
    assert cap.plaintext_packets(proto, b, a) == 2, cap.plaintext


def test_full_mesh_esp(lab_nodes, lab_exec, lab_capture, lab_addresses):
    """Transport-mode SAs + policies between every pair, one ip -batch per node; every
    node pings every peer: all of it is ESP on the wire. Cleaned up afterwards."""
    n = len(lab_nodes)
    assert n >= 2, "needs a lab of 2 nodes or more"
    addr = {i: lab_addresses[f"node{i}"]["ipv4"] for i in range(1, n + 1)}
    key = "0x" + "c3" * 20

    def spi(src, dst):
        return 0x10000 + src * 256 + dst

    add, delete = {}, {}
    for i in addr:
        add[i], delete[i] = [], []
        for j in addr:
            if i == j:
                continue
            a, b = addr[i], addr[j]
            for s, d, x in ((a, b, spi(i, j)), (b, a, spi(j, i))):
                add[i].append(f"xfrm state add src {s} dst {d} proto esp spi {x:#x} reqid {x}"
                              f" mode transport aead rfc4106(gcm(aes)) {key} 128")
                delete[i].append(f"xfrm state delete src {s} dst {d} proto esp spi {x:#x}")
            add[i] += [f"xfrm policy add src {a}/32 dst {b}/32 dir out tmpl src {a} dst {b}"
                       f" proto esp reqid {spi(i, j)} mode transport",
                       f"xfrm policy add src {b}/32 dst {a}/32 dir in tmpl src {b} dst {a}"
                       f" proto esp reqid {spi(j, i)} mode transport"]
            delete[i] = [f"xfrm policy delete src {a}/32 dst {b}/32 dir out",
                         f"xfrm policy delete src {b}/32 dst {a}/32 dir in"] + delete[i]
    for i in addr:
        lab_exec(f"node{i}", "ip", "-batch", "-", input="\n".join(add[i]) + "\n")
    try:
        # one shell per node pings all its peers: few process starts (each costs ~11 ms here)
        script = " ; ".join(
            f"lab-exec node{i} sh -c 'for p in {' '.join(addr[j] for j in addr if j != i)}; do"
            f" ping -c1 -W2 -q $p >/dev/null || echo FAIL node{i} $p; done'" for i in addr)
        cap = lab_capture("sh", "-c", script, timeout=600)
        assert "FAIL" not in cap.stdout, cap.stdout
        assert cap.plaintext == [], cap.plaintext
        assert cap.esp_packets() == 2 * n * (n - 1), cap.esp
        for i in addr:
            for j in addr:
                if i != j:
                    assert cap.esp_packets(addr[i], addr[j], f"{spi(i, j):#010x}") == 2, (i, j)
    finally:
        for i in addr:
            lab_exec(f"node{i}", "ip", "-batch", "-", input="\n".join(delete[i]) + "\n")


def test_reboot_gives_new_boot_id_and_empty_xfrm(lab_exec, lab_reboot, lab_boot_id, lab_addresses):
    a, b = lab_addresses["node2"]["ipv4"], lab_addresses["node1"]["ipv4"]
    lab_exec("node2", "ip", "-batch", "-", input=_xfrm_batch(a, b, 0x3001, 0x3002, KEY_1TO2, KEY_2TO1))
    lab_exec("node2", "sh", "-c", "mkdir -p /etc/ipsec && echo k > /etc/ipsec/keys"
             " && sysctl -qw net.ipv4.ip_forward=1")
    before = lab_boot_id("node2")

    lab_reboot("node2")

    assert lab_boot_id("node2") != before
    assert lab_exec("node2", "ip", "xfrm", "state").stdout == ""
    assert lab_exec("node2", "ip", "xfrm", "policy").stdout == ""
    assert lab_exec("node2", "test", "-e", "/etc/ipsec/keys", check=False).returncode == 1
    assert lab_exec("node2", "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"
    assert lab_exec("node2", "hostname").stdout.strip() == "node2"
    lab_exec("node2", "ping", "-c", "1", "-W", "5", b)    # same address, reachable again
