"""Fixtures for tests that run INSIDE a UML lab, e.g.

    lab/run --nodes 3 -- pytest -q tests/lab/test_lab_smoke.py

Outside a lab nothing here is collected (a skipped test would pass for a missing one).
Tests marked ``ipv6`` need ``lab/run --ipv6``; scenarios without it deselect them with
``-m "not ipv6"``. See lab/README.md for the lab itself.
"""

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

LAB_DIR = os.environ.get("LAB_DIR", "")
IN_LAB = bool(LAB_DIR) and os.path.exists(os.path.join(LAB_DIR, "config"))


# Outside a lab, pytest does not even collect these files.
collect_ignore_glob = [] if IN_LAB else ["test_*.py"]


def pytest_configure(config):
    config.addinivalue_line("markers", "ipv6: needs a lab with IPv6 addresses (lab/run --ipv6)")


@dataclass
class Capture:
    """Result of lab_capture: CMD's exit status and output, and the packet summary."""

    returncode: int
    stdout: str             # CMD's stdout, without the JSON summary line
    stderr: str
    esp: list = field(default_factory=list)
    plaintext: list = field(default_factory=list)

    def esp_packets(self, src=None, dst=None, spi=None):
        return sum(e["packets"] for e in self.esp
                   if src in (None, e["src"]) and dst in (None, e["dst"]) and spi in (None, e["spi"]))

    def plaintext_packets(self, proto=None, src=None, dst=None):
        return sum(p["packets"] for p in self.plaintext
                   if proto in (None, p["proto"]) and src in (None, p["src"]) and dst in (None, p["dst"]))


@pytest.fixture(scope="session")
def lab_nodes():
    """Node names: ["node1", ..., "nodeN"]."""
    return [f"node{i}" for i in range(1, int(os.environ.get("LAB_NODES", "0")) + 1)]


@pytest.fixture(scope="session")
def inventory_path():
    """Path of the lab's Ansible inventory (all nodes in group ipsec_mesh)."""
    return Path(os.environ["LAB_INVENTORY"])


@pytest.fixture(scope="session")
def lab_inventory(inventory_path):
    """The inventory as a dict (parsed YAML, no Ansible call)."""
    return yaml.safe_load(inventory_path.read_text())


@pytest.fixture(scope="session")
def lab_addresses(lab_inventory):
    """{node: {"ipv4": addr, "ipv6": addr or None}} from the inventory's ipsec_addresses."""
    hosts = lab_inventory["all"]["children"]["ipsec_mesh"]["hosts"]
    return {
        name: {"ipv4": next((a for a in v["ipsec_addresses"] if ":" not in a), None),
               "ipv6": next((a for a in v["ipsec_addresses"] if ":" in a), None)}
        for name, v in hosts.items()
    }


def _run(cmd, input=None, check=True, timeout=300):
    res = subprocess.run([str(c) for c in cmd], input=input, capture_output=True, text=True,
                         timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd!r} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


@pytest.fixture(scope="session")
def lab_exec():
    """lab_exec(node, *cmd, input=None, check=True, timeout=300) -> CompletedProcess (text).

    Runs cmd inside the node (lab-exec). With check=True a non-zero exit fails the test.
    """
    def run(node, *cmd, input=None, check=True, timeout=300):
        return _run(["lab-exec", node, "--", *cmd], input=input, check=check, timeout=timeout)
    return run


@pytest.fixture(scope="session")
def lab_capture():
    """lab_capture(*cmd, iface="brdata", settle=1, timeout=300) -> Capture.

    Runs cmd (in the control namespace; wrap it in lab-exec to run it in a node) while
    capturing on the data segment, and parses the JSON line lab-capture prints last.
    """
    def run(*cmd, iface="brdata", settle=1, timeout=300):
        res = _run(["lab-capture", "--iface", iface, "--settle", str(settle), "--", *cmd],
                   check=False, timeout=timeout)
        lines = res.stdout.rstrip("\n").split("\n")
        try:
            summary = json.loads(lines[-1])
        except (ValueError, IndexError):
            raise AssertionError(f"lab-capture printed no summary (exit {res.returncode})\n"
                                 f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}") from None
        return Capture(res.returncode, "\n".join(lines[:-1]), res.stderr,
                       summary["esp"], summary["plaintext"])
    return run


@pytest.fixture(scope="session")
def lab_reboot():
    """lab_reboot(*nodes, keep_disk=False) -> CompletedProcess: simulated reboot (new boot id,
    empty XFRM, pristine /etc). keep_disk=True: /etc /root /var are kept and the node's boot
    runs (its net.* sysctl.d, its enabled oneshot units; one stdout line per step); a failure
    fails the test (lab/README.md)."""
    def run(*nodes, keep_disk=False):
        return _run(["lab-reboot", *(["--keep-disk"] if keep_disk else []), *nodes])
    return run


@pytest.fixture(scope="session")
def lab_boot_id(lab_exec):
    """lab_boot_id(node) -> the node's /proc/sys/kernel/random/boot_id."""
    def read(node):
        return lab_exec(node, "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()
    return read
