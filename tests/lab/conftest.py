"""Fixtures for tests that run INSIDE a UML lab, e.g.

    lab/run --nodes 3 -- pytest -q tests/lab/test_lab_smoke.py

Outside a lab nothing here is collected (a skipped test would pass for a missing one).
Tests marked ``ipv6`` need ``lab/run --ipv6``; scenarios without it deselect them with
``-m "not ipv6"``. See lab/README.md for the lab itself; the helpers behind these fixtures
are tests/lab/harness.py and tests/lab/traffic.py.
"""

import functools
import os
from pathlib import Path

import pytest
import yaml

from harness import Ansible, captured, out_dir, run_local
from traffic import under_traffic as _under_traffic

LAB_DIR = os.environ.get("LAB_DIR", "")
IN_LAB = bool(LAB_DIR) and os.path.exists(os.path.join(LAB_DIR, "config"))


# Outside a lab, pytest does not even collect these files.
collect_ignore_glob = [] if IN_LAB else ["test_*.py"]


def pytest_configure(config):
    config.addinivalue_line("markers", "ipv6: needs a lab with IPv6 addresses (lab/run --ipv6)")


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


@pytest.fixture(scope="session")
def lab_ipv4(lab_addresses):
    """{node: its IPv4 address}."""
    return {node: addresses["ipv4"] for node, addresses in lab_addresses.items()}


@pytest.fixture(scope="session")
def lab_exec():
    """lab_exec(node, *cmd, input=None, check=True, timeout=300) -> CompletedProcess (text).

    Runs cmd inside the node (lab-exec). With check=True a non-zero exit fails the test.
    """
    def run(node, *cmd, input=None, check=True, timeout=300):  # pylint: disable=redefined-builtin
        return run_local("lab-exec", node, "--", *cmd, input=input, check=check, timeout=timeout)
    return run


@pytest.fixture(scope="session")
def lab_capture():
    """lab_capture(*cmd, iface="brdata", settle=1, timeout=300, pcap=None) -> harness.Capture.

    Runs cmd (in the control namespace; wrap it in lab-exec to run it in a node) while
    capturing on the data segment, and parses the JSON line lab-capture prints last.
    """
    return captured


@pytest.fixture(scope="session")
def lab_reboot():
    """lab_reboot(*nodes, keep_disk=False) -> CompletedProcess: simulated reboot (new boot id,
    empty XFRM, pristine /etc). keep_disk=True: /etc /root /var are kept and the node's boot
    runs (its net.* sysctl.d, its enabled oneshot units; one stdout line per step); a failure
    fails the test (lab/README.md)."""
    def run(*nodes, keep_disk=False):
        return run_local("lab-reboot", *(["--keep-disk"] if keep_disk else []), *nodes, timeout=600)
    return run


@pytest.fixture(scope="session")
def lab_boot_id(lab_exec):
    """lab_boot_id(node) -> the node's /proc/sys/kernel/random/boot_id."""
    def read(node):
        return lab_exec(node, "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()
    return read


@pytest.fixture(scope="module")
def lab_work(request):
    """$LAB_OUT/<test file name>: where a test file keeps its runs, pcaps and logs."""
    return out_dir(Path(request.module.__file__).stem, fresh=True)


@pytest.fixture(scope="module")
def lab_ansible(inventory_path, lab_work):
    """The playbook runner of a test file (harness.Ansible on the lab inventory, runs in lab_work)."""
    return Ansible(inventory_path, lab_work)


@pytest.fixture(scope="session")
def under_traffic(lab_exec):
    """``with under_traffic(addresses, ...) as window:`` the change runs under traffic
    (traffic.under_traffic: UDP and/or pings, counters, a capture of the whole window)."""
    return functools.partial(_under_traffic, lab_exec)
