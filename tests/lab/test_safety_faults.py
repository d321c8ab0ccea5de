# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 6, item 6 (and 8): faults during a change, in a 3-node lab:

    lab/run --nodes 3 -- pytest -q tests/lab/test_safety_faults.py

(a) A node whose kernel refuses an SA. The nodes share one kernel, so the fault is an
    algorithm only node3 uses, which the kernel cannot load: node3's keys (a host variable)
    are ``rfc7539esp(chacha20,poly1305)``, valid for the keys-file grammar, and the kernel's
    module loader is pointed at /bin/false while chacha20poly1305 is not loaded, so NEWSA
    fails in the kernel (the lab's modules are otherwise loaded on demand; what the mesh key
    needs is loaded first by adding and deleting one AES-GCM SA). mesh.yml must
    fail on node3 with a clear error, leave node3 as it was, converge node1 and node2 (ESP
    between them, node3 still reachable), and after the fault is removed (the loader back,
    node3 given the mesh key) a re-run converges everything.
(b) A module killed mid-apply: node1's Python is a wrapper whose sitecustomize SIGKILLs the
    process just before its Nth XFRM write message (NEWSA/DELSA/NEWPOLICY/DELPOLICY/UPDPOLICY/
    UPDSA) to the kernel. The change: 30 unmanaged peers for node1 (120 entries to add) on a
    converged mesh carrying traffic. The run fails on node1 part-way; meanwhile no datagram
    between the mesh nodes is lost and nothing is plaintext; a re-run converges and a
    --check run afterwards changes nothing.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

from harness import PYTHON, assert_check_mode_unchanged, dump, dumps, inventory_with_group, key_line, report

VARS = {"ipsec_keys_content": key_line(1)}
CHACHA = "1+ rfc7539esp(chacha20,poly1305) 0x%s 128" % ("4d" * 36)
MODPROBE = "/proc/sys/kernel/modprobe"
KILL_DIR = Path(os.environ.get("LAB_DIR", "/lab")) / "safety-kill"
KILL_AT = 25

SITECUSTOMIZE = '''
import os
import signal
import socket
import struct

WRITES = {0x10, 0x11, 0x13, 0x14, 0x19, 0x1a}
KILL_AT = int(os.environ.get("SAFETY_KILL_AT", "0"))
LOG = os.environ.get("SAFETY_KILL_LOG")


class _KillingSocket(socket.socket):
    _xfrm_writes = 0

    def send(self, data, *args):
        if KILL_AT and self.family == getattr(socket, "AF_NETLINK", -1) and self.proto == 6 and len(data) >= 6:
            if struct.unpack_from("=H", data, 4)[0] in WRITES:
                _KillingSocket._xfrm_writes += 1
                if _KillingSocket._xfrm_writes >= KILL_AT:
                    if LOG:
                        with open(LOG, "a") as stream:
                            stream.write("killed pid %d before XFRM write %d\\n" % (os.getpid(), KILL_AT))
                    os.kill(os.getpid(), signal.SIGKILL)
        return super().send(data, *args)


socket.socket = _KillingSocket
'''


def _ping_ok(lab_exec, node, address):
    return lab_exec(node, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-q", address, check=False).returncode == 0


def _owned_sas(node_dump):
    return len(node_dump.owned_states())


def test_kernel_refusing_an_sa_on_one_node(inventory_path, lab_nodes, lab_ipv4, lab_exec, lab_capture, lab_ansible, lab_work):
    nodes = lab_nodes[:3]
    work, ansible = lab_work, lab_ansible
    addresses = {node: lab_ipv4[node] for node in nodes}
    faulty = inventory_with_group(inventory_path, nodes, work / "inventory-chacha.yml",
                                  host_vars={"node3": {"ipsec_keys_content": CHACHA}}, group_vars=VARS)
    loaded = "chacha20poly1305" in open("/proc/crypto", encoding="ascii").read()
    assert not loaded, "chacha20poly1305 is loaded already: the fault would not happen"
    with open(MODPROBE, encoding="ascii") as stream:
        modprobe = stream.read().strip()
    before3 = dump(lab_exec, "node3")
    # Whatever the mesh key needs (aes, gcm, ...) is loaded before the loader goes: one SA, added and deleted.
    lab_exec("node1", "ip", "-batch", "-", input=(
        "xfrm state add src 10.77.0.1 dst 192.0.2.200 proto esp spi 0x999 reqid 999 mode tunnel flag esn replay-window 1024"
        " aead rfc4106(gcm(aes)) 0x%s 128\nxfrm state delete src 10.77.0.1 dst 192.0.2.200 proto esp spi 0x999\n" % ("11" * 20)))
    try:
        with open(MODPROBE, "w", encoding="ascii") as stream:
            stream.write("/bin/false\n")
        run = ansible.playbook("playbooks/mesh.yml", inventory=faulty, expect_rc=None)
    finally:
        with open(MODPROBE, "w", encoding="ascii") as stream:
            stream.write(modprobe + "\n")
    failed = run.failures()
    node_dumps = dumps(lab_exec, nodes)
    cap = lab_capture("sh", "-c", "lab-exec node1 ping -c 3 -i 0.2 -W 2 -q %s >/dev/null; echo rc=$?; "
                      "lab-exec node2 ping -c 3 -i 0.2 -W 2 -q %s >/dev/null; echo rc=$?; "
                      "lab-exec node1 ping -c 3 -i 0.2 -W 2 -q %s >/dev/null; echo rc=$?"
                      % (addresses["node2"], addresses["node1"], addresses["node3"]))
    fault = {"rc": run.returncode, "seconds": round(run.seconds, 1), "failed": failed,
             "node3_unchanged": node_dumps["node3"] == before3, "owned_sas": {n: _owned_sas(d) for n, d in node_dumps.items()},
             "ping_rcs": re.findall(r"rc=(\d+)", cap.stdout),
             "esp_1_2": cap.esp_packets(addresses["node1"], addresses["node2"]),
             "plaintext_1_2": cap.plaintext_packets(None, addresses["node1"], addresses["node2"])}

    fixed = ansible.playbook("playbooks/mesh.yml", extra_vars=VARS, expect_rc=None)
    dumps_fixed = dumps(lab_exec, nodes)
    script = "; ".join("lab-exec %s ping -c 2 -i 0.2 -W 2 -q %s >/dev/null || echo FAIL %s %s" % (a, addresses[b], a, b)
                       for a in nodes for b in nodes if a != b)
    cap_fixed = lab_capture("sh", "-c", script)
    report("fault (a): kernel refuses an SA on node3", dict(fault, fixed_rc=fixed.returncode,
                                                            fixed_seconds=round(fixed.seconds, 1),
                                                            fixed_owned_sas={n: _owned_sas(d) for n, d in dumps_fixed.items()},
                                                            fixed_ping_failures=cap_fixed.stdout.count("FAIL"),
                                                            fixed_plaintext=len(cap_fixed.plaintext)))
    assert run.returncode != 0
    assert list(failed) == ["node3"], failed
    assert "rfc7539esp(chacha20,poly1305)" in failed["node3"] or "chacha" in failed["node3"], failed
    assert "rolled back" in failed["node3"], failed
    assert node_dumps["node3"] == before3
    assert fault["owned_sas"]["node1"] >= 2 and fault["owned_sas"]["node2"] >= 2
    assert fault["ping_rcs"] == ["0", "0", "0"], cap.stdout
    assert fault["esp_1_2"] >= 3 and fault["plaintext_1_2"] == 0, (cap.esp, cap.plaintext)
    assert fixed.returncode == 0, fixed.log
    assert cap_fixed.stdout.count("FAIL") == 0 and cap_fixed.plaintext == [], (cap_fixed.stdout, cap_fixed.plaintext)
    assert all(_owned_sas(d) == 4 for d in dumps_fixed.values())


def test_module_killed_midway(inventory_path, lab_nodes, lab_ipv4, lab_exec, lab_ansible, lab_work, under_traffic):
    nodes = lab_nodes[:3]
    work, ansible = lab_work, lab_ansible
    addresses = {node: lab_ipv4[node] for node in nodes}
    ansible.playbook("playbooks/mesh.yml", extra_vars=VARS)     # converged (after test (a), a no-op)
    KILL_DIR.mkdir(parents=True, exist_ok=True)
    (KILL_DIR / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = KILL_DIR / "kills.log"
    wrapper = KILL_DIR / "python"
    wrapper.write_text("#!/bin/sh\nexport PYTHONPATH=%s${PYTHONPATH:+:$PYTHONPATH} SAFETY_KILL_AT=%d SAFETY_KILL_LOG=%s\n"
                       "exec %s \"$@\"\n" % (KILL_DIR, KILL_AT, log, PYTHON))
    wrapper.chmod(0o755)
    lab_exec("node1", "test", "-x", str(wrapper))
    unmanaged = [{"name": "far%02d" % i, "addresses": ["192.0.2.%d" % (10 + i)], "boot_id": str(uuid.UUID(int=i + 1))}
                 for i in range(30)]
    node1_vars = {"ipsec_unmanaged_peers": unmanaged}
    killing = inventory_with_group(inventory_path, nodes, work / "inventory-kill.yml", group_vars=VARS,
                                   host_vars={"node1": dict(node1_vars, ansible_python_interpreter=str(wrapper))})
    normal = inventory_with_group(inventory_path, nodes, work / "inventory-unmanaged.yml", group_vars=VARS,
                                  host_vars={"node1": node1_vars})

    with under_traffic(addresses) as window:
        run = ansible.playbook("playbooks/mesh.yml", inventory=killing, capture="kill.pcap", expect_rc=None)
        time.sleep(0.5)
        partial = dump(lab_exec, "node1")
    figures = window.figures
    killed = log.read_text() if log.exists() else ""
    far_sas = len(re.findall(r"192\.0\.2\.\d+", "\n".join(partial.owned_states())))

    check = assert_check_mode_unchanged(ansible, lab_exec, nodes, "playbooks/mesh.yml", inventory=normal, expect_rc=None)
    with under_traffic(addresses, lead=1.0, tail=0.5) as window:
        rerun = ansible.playbook("playbooks/mesh.yml", inventory=normal, capture="rerun.pcap", expect_rc=None)
    figures_rerun = window.figures
    final = dump(lab_exec, "node1")
    after = assert_check_mode_unchanged(ansible, lab_exec, nodes, "playbooks/mesh.yml", inventory=normal)
    changed_after = [(r["host"], r["task"]) for r in after.results if r["result"].get("changed")]
    report("fault (b): module killed mid-apply", {
        "kill_log": killed.strip(), "rc": run.returncode, "failed": run.failures(), "seconds": round(run.seconds, 1),
        "sent": figures["sent"], "lost": figures["lost"], "plaintext": run.plaintext(addresses.values()),
        "node1_owned_sas_partial": _owned_sas(partial), "far_addresses_in_partial_sas": far_sas,
        "check_rc": check.returncode, "rerun_rc": rerun.returncode, "rerun_seconds": round(rerun.seconds, 1),
        "rerun_sent": figures_rerun["sent"], "rerun_lost": figures_rerun["lost"],
        "rerun_plaintext": rerun.plaintext(addresses.values()), "node1_owned_sas_final": _owned_sas(final),
        "changed_after": changed_after})
    assert "killed pid" in killed, run.log
    assert run.returncode != 0 and list(run.failures()) == ["node1"], run.failures()
    assert 0 < _owned_sas(partial) < 4 + 60, partial.state
    assert figures["lost"] == 0 and run.plaintext(addresses.values()) == 0
    assert rerun.returncode == 0, rerun.log
    assert figures_rerun["lost"] == 0 and rerun.plaintext(addresses.values()) == 0
    # 2 mesh peers x (IN + OUT) + an IN SA per unmanaged peer (+ an OUT SA if they get egress).
    assert _owned_sas(final) in (4 + 30, 4 + 60), final.state
    assert changed_after == []
    ansible.playbook("playbooks/teardown.yml", inventory=normal, extra_vars={"ipsec_teardown_keys": True})
