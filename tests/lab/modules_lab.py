# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the module-level lab tests (test_modules.py, test_modules_ipv6.py).

Not a test file: pytest does not collect it; the test files import it.

Everything here is independent of the collection's code on purpose: per-pair keys and wire
SPIs are recomputed with hashlib from the construction described in
docs/docsite/rst/how_it_works.rst (section The XFRM object model) and the docstrings of
``_planner/derive.py`` and ``_planner/desired.py``, and the kernel is read with ``ip xfrm``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from safety_lab import entry_blocks

REPO = Path(__file__).resolve().parents[2]
REQID = 0x6E736563
BAND = (0x6E00, 0x6FFF)
WIRE_SPI_DOMAIN = b"netsec.ipsec/wire-spi/v1\x00"
KEYS_FILE = "/etc/ipsec/keys"


# --------------------------------------------------------------------------- derivation

def _addr(address: str) -> bytes:
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped.packed
    return parsed.packed


def derive(master: bytes, src: str, dst: str, src_boot: str, dst_boot: str) -> bytes:
    """Cilium's per-tunnel key: H(master || ip(src) || ip(dst) || boot(src) || boot(dst))[:len]."""
    if not master:
        return b""
    hash_function = hashlib.sha256 if len(master) <= 32 else hashlib.sha512
    data = master + _addr(src) + _addr(dst) + src_boot.encode("ascii") + dst_boot.encode("ascii")
    return hash_function(data).digest()[:len(master)]


def wire_spi(key_id: int, sender: str) -> int:
    digest = hashlib.sha256(WIRE_SPI_DOMAIN + _addr(sender)).digest()
    return key_id << 28 | int.from_bytes(digest[:4], "big") >> 4


def secret_forms(material: bytes) -> List[str]:
    """Every text form of a key that must never show up in output."""
    hexed = material.hex()
    return [hexed, hexed.upper(), base64.b64encode(material).decode("ascii")]


# --------------------------------------------------------------------------- kernel dumps

def _owned_policy(block: str) -> bool:
    if "reqid %d " % REQID in block + " ":
        return True
    if "tmpl " in block:
        return False
    match = re.search(r"priority (\d+)", block)
    return bool(match) and BAND[0] <= int(match.group(1)) <= BAND[1]


class Dump:
    """`ip xfrm state` and `ip xfrm policy` of one node (no counters)."""

    def __init__(self, state: str, policy: str) -> None:
        self.state = state
        self.policy = policy

    @property
    def text(self) -> str:
        return self.state + "\n---\n" + self.policy

    @property
    def states(self) -> List[str]:
        return entry_blocks(self.state)

    @property
    def policies(self) -> List[str]:
        return entry_blocks(self.policy)

    def owned_states(self) -> List[str]:
        return [b for b in self.states if "reqid %d " % REQID in b + " "]

    def foreign_states(self) -> List[str]:
        return [b for b in self.states if "reqid %d " % REQID not in b + " "]

    def owned_policies(self) -> List[str]:
        return [b for b in self.policies if _owned_policy(b)]

    def foreign_policies(self) -> List[str]:
        return [b for b in self.policies if not _owned_policy(b)]

    def foreign(self) -> str:
        return "\n".join(sorted(self.foreign_states())) + "\n---\n" + "\n".join(sorted(self.foreign_policies()))

    def keys(self) -> List[bytes]:
        """Every key the kernel prints for an SA (aead, auth-trunc/auth, enc)."""
        found = re.findall(r"^\s*(?:aead|auth-trunc|auth|enc) \S+ 0x([0-9a-f]+)", self.state, re.M)
        return [bytes.fromhex(k) for k in found]

    def sa(self, src: str, dst: str, spi: Optional[int] = None) -> List[str]:
        return [b for b in self.owned_states()
                if b.startswith("src %s dst %s\n" % (src, dst)) and (spi is None or "spi 0x%08x " % spi in b)]

    @staticmethod
    def sa_keys(block: str) -> Dict[str, Tuple[str, bytes]]:
        """{'aead'|'auth-trunc'|'enc': (algorithm, key)} of one SA block."""
        return {kind: (algo, bytes.fromhex(key)) for kind, algo, key in
                re.findall(r"^\s*(aead|auth-trunc|auth|enc) (\S+) 0x([0-9a-f]+)", block, re.M)}


def dump(lab_exec, node: str) -> Dump:
    return Dump(lab_exec(node, "ip", "xfrm", "state").stdout, lab_exec(node, "ip", "xfrm", "policy").stdout)


def dumps(lab_exec, nodes: Iterable[str]) -> Dict[str, Dump]:
    return {node: dump(lab_exec, node) for node in nodes}


# --------------------------------------------------------------------------- foreign entries

def foreign_batch(index: int) -> str:
    """An SA and policies another tool would own (reqid 7, a priority outside the band)."""
    local = "10.77.0.%d" % index
    return "\n".join([
        "xfrm state add src %s dst 192.0.2.99 proto esp spi 0x00000777 reqid 7 mode tunnel"
        " aead rfc4106(gcm(aes)) 0x%s 128" % (local, "77" * 20),
        "xfrm state add src 192.0.2.99 dst %s proto esp spi 0x00000778 reqid 7 mode tunnel"
        " aead rfc4106(gcm(aes)) 0x%s 128" % (local, "78" * 20),
        "xfrm policy add src 198.51.100.0/24 dst 192.0.2.0/24 dir out"
        " tmpl src %s dst 192.0.2.99 proto esp reqid 7 mode tunnel" % local,
        # Template-less, just outside the band on both sides, and at ip's default 0.
        "xfrm policy add src 203.0.113.0/24 dst 203.0.113.0/24 dir in priority %d" % (BAND[0] - 1),
        "xfrm policy add src 203.0.113.0/24 dst 203.0.113.0/24 dir out priority %d" % (BAND[1] + 1),
        "xfrm policy add src 203.0.113.7/32 dst 0.0.0.0/0 dir fwd",
        "",
    ])


FOREIGN_KEYS = [bytes.fromhex("77" * 20), bytes.fromhex("78" * 20)]


def install_foreign(lab_exec, nodes: Sequence[str]) -> None:
    for node in nodes:
        lab_exec(node, "ip", "-batch", "-", input=foreign_batch(int(node[4:])))


# --------------------------------------------------------------------------- Ansible

class Ansible:
    """Runs playbooks against the lab inventory; keeps every output and result for the secret grep."""

    def __init__(self, inventory: Path, work: Path) -> None:
        self.inventory = inventory
        self.work = work
        self.outputs: List[str] = []
        self.results: List[Any] = []
        self.runs = 0

    def play(self, tasks: str, hosts: str = "ipsec_mesh", extra_vars: Optional[Dict[str, Any]] = None,
             args: Sequence[str] = ("-vvv", "--diff"), expect_rc: int = 0,
             wrap=None, holder: Optional[Dict[str, Any]] = None) -> Dict[str, Dict[str, Any]]:
        """Run one play of ``tasks``; every task registering ``r_NAME`` is returned per host.

        Returns {host: {NAME: result}}. ``wrap(cmd)`` gives the command line to run instead
        of ``cmd`` (a lab-capture around it); its summary goes to ``holder["capture"]``.
        """
        self.runs += 1
        run_dir = self.work / ("run%02d" % self.runs)
        run_dir.mkdir()
        playbook = "- hosts: %s\n  gather_facts: false\n  tasks:\n%s\n" % (hosts, _indent(tasks, 4))
        (run_dir / "playbook.yml").write_text(playbook)
        cmd = ["ansible-playbook", "-i", str(self.inventory), str(run_dir / "playbook.yml"), *args]
        if extra_vars:
            (run_dir / "vars.json").write_text(json.dumps(extra_vars))
            cmd += ["-e", "@%s" % (run_dir / "vars.json")]
        callback_dir = self.work / "callback_plugins"
        if not callback_dir.exists():
            callback_dir.mkdir()
            (callback_dir / "netsec_results.py").write_text(RESULTS_CALLBACK)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   # module arguments (masked where no_log) in every result and in -vvv output
                   ANSIBLE_INJECT_INVOCATION="1", ANSIBLE_CALLBACK_PLUGINS=str(callback_dir),
                   ANSIBLE_CALLBACKS_ENABLED="netsec_results", NETSEC_RESULTS_FILE=str(run_dir / "results.json"))
        run = subprocess.run(wrap(cmd) if wrap else cmd, env=env, capture_output=True, text=True, timeout=600,
                             check=False)
        if wrap:
            lines = run.stdout.rstrip("\n").split("\n")
            summary = json.loads(lines[-1])
            assert holder is not None
            holder["capture"] = CaptureSummary(run.returncode, "\n".join(lines[:-1]), run.stderr,
                                               summary["esp"], summary["plaintext"])
        (run_dir / "output.txt").write_text(run.stdout + "\n--- stderr\n" + run.stderr)
        self.outputs.append(run.stdout + run.stderr)
        assert run.returncode == expect_rc, "ansible-playbook %s exited %d\nstdout:\n%s\nstderr:\n%s" % (
            run_dir, run.returncode, run.stdout[-20000:], run.stderr[-5000:])
        results = json.loads((run_dir / "results.json").read_text())
        self.results.append(results)
        return results


# An aggregate callback that writes every result of a task registering ``r_NAME`` to
# $NETSEC_RESULTS_FILE as {host: {NAME: result}}: what the registered variable holds, without
# a copy task per host (each module start costs seconds in the lab).
RESULTS_CALLBACK = '''
import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "netsec_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.results = {}

    def _keep(self, result, failed=False):
        register = result._task.register or {}
        # ansible-core 2.19+ keeps register as {name: projection}, older ones as a name.
        for name in (register if isinstance(register, dict) else [register]):
            if name.startswith("r_"):
                self.results.setdefault(result._host.get_name(), {})[name[2:]] = dict(result._result, failed=failed)

    v2_runner_on_ok = _keep
    v2_runner_on_skipped = _keep

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._keep(result, failed=True)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["NETSEC_RESULTS_FILE"], "w") as stream:
            json.dump(self.results, stream, default=str)
'''


class CaptureSummary:
    """What lab-capture reports (as tests/lab/conftest.py's Capture)."""

    def __init__(self, returncode: int, stdout: str, stderr: str, esp: list, plaintext: list) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.esp = esp
        self.plaintext = plaintext

    def esp_packets(self, src=None, dst=None, spi=None) -> int:
        return sum(e["packets"] for e in self.esp
                   if src in (None, e["src"]) and dst in (None, e["dst"]) and spi in (None, e["spi"]))


def _indent(text: str, spaces: int) -> str:
    text = text.strip("\n")
    lines = text.splitlines()
    base = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join((" " * spaces + line[base:]) if line.strip() else "" for line in lines)


def inventory_hosts(inventory_path: Path) -> Dict[str, Dict[str, Any]]:
    return yaml.safe_load(inventory_path.read_text())["all"]["children"]["ipsec_mesh"]["hosts"]


def all_text(ansible: Ansible) -> str:
    return "\n".join(ansible.outputs) + "\n" + json.dumps(ansible.results)


def leaked(text: str, keys: Iterable[bytes]) -> List[str]:
    """The forms of ``keys`` found in ``text`` (masked: only the first 8 characters)."""
    found = []
    for material in keys:
        if not material:
            continue
        for form in secret_forms(material):
            if form in text:
                found.append(form[:8] + "...")
    return found


# --------------------------------------------------------------------------- traffic

# --------------------------------------------------------------------------- the shared sequence

class Lab:
    """What the stages of one test file share: the Ansible runner, boot ids, the foreign
    entries' baseline, and every key seen, for the final secret grep."""

    def __init__(self, ansible: Ansible, addresses: Dict[str, List[str]], boot: Dict[str, str],
                 foreign: Dict[str, str]) -> None:
        self.ansible = ansible
        self.addresses = addresses
        self.nodes = sorted(addresses)
        self.boot = boot
        self.foreign = foreign
        self.kernel_keys: List[bytes] = []
        self.derived: List[bytes] = []
        self.timings: Dict[str, float] = {}
        self.figures: List[str] = []

    def note(self, text: str) -> None:
        """A figure for the record: printed by the last test and kept in figures.txt."""
        self.figures.append(text)
        with open(self.ansible.work / "figures.txt", "a") as stream:
            stream.write(text + "\n")

    def peers_of(self, members: Optional[Sequence[str]] = None,
                 subnets: Optional[Dict[str, List[str]]] = None) -> Dict[str, list]:
        """{node: [peer dicts]} for xfrm_endpoint's ``peers`` (each node sees the others)."""
        members = members or self.nodes
        subnets = subnets or {}
        return {node: [dict(name=peer, addresses=self.addresses[peer], boot_id=self.boot[peer],
                            **({"subnets": subnets[peer]} if peer in subnets else {}))
                       for peer in members if peer != node]
                for node in members}

    def play(self, stage: str, tasks: str, **kwargs) -> Dict[str, Dict[str, Any]]:
        start = time.monotonic()
        try:
            return self.ansible.play(tasks, **kwargs)
        finally:
            self.timings[stage] = time.monotonic() - start

    def observe(self, lab_exec) -> Dict[str, Dump]:
        """Dump every node and remember the keys the kernel holds."""
        node_dumps = dumps(lab_exec, self.nodes)
        for node_dump in node_dumps.values():
            self.kernel_keys.extend(node_dump.keys())
        return node_dumps

    def assert_foreign_intact(self, node_dumps: Dict[str, Dump], stage: str) -> None:
        for node, node_dump in node_dumps.items():
            assert node_dump.foreign() == self.foreign[node], "%s: foreign entries of %s changed" % (stage, node)


def start_lab(lab_exec, lab_boot_id, inventory_path: Path, addresses: Dict[str, List[str]], name: str) -> Lab:
    """Remove keys files, install foreign entries and read boot ids; the Lab to run stages on."""
    assert sorted(inventory_hosts(inventory_path)) == sorted(addresses), "needs lab/run --nodes %d" % len(addresses)
    for node in addresses:
        lab_exec(node, "rm", "-f", KEYS_FILE)
    install_foreign(lab_exec, sorted(addresses))
    baseline = dumps(lab_exec, sorted(addresses))
    for node_dump in baseline.values():
        assert len(node_dump.foreign_states()) == 2 and len(node_dump.foreign_policies()) == 4, node_dump.text
        assert not node_dump.owned_states() and not node_dump.owned_policies(), node_dump.text
    work = Path(os.environ["LAB_OUT"]) / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return Lab(Ansible(inventory_path, work), addresses, {node: lab_boot_id(node) for node in addresses},
               {node: node_dump.foreign() for node, node_dump in baseline.items()})


def counts(added: int = 0, updated: int = 0, removed: int = 0, unchanged: int = 0, kept: int = 0) -> Dict[str, int]:
    return dict(added=added, updated=updated, removed=removed, unchanged=unchanged, kept=kept)


def assert_esp_everywhere(capture, failures: Sequence[str], flows: Sequence[Tuple[str, str]], key_id: Optional[int],
                          minimum: int = 3) -> None:
    """Every ping answered, 0 plaintext between node addresses, ESP in both directions of each flow."""
    assert failures == [], failures
    assert capture.plaintext == [], capture.plaintext
    for src, dst in flows:
        for one, other in ((src, dst), (dst, src)):
            spi = "0x%08x" % wire_spi(key_id, one) if key_id else None
            assert capture.esp_packets(src=one, dst=other, spi=spi) >= minimum, (one, other, spi, capture.esp)


def esp_summary(capture) -> str:
    return "ESP %d packets in %d (src, dst, spi) flows, plaintext %d" % (
        sum(e["packets"] for e in capture.esp), len(capture.esp), sum(p["packets"] for p in capture.plaintext))


def ping_all(lab_capture, pairs: Sequence[Tuple[str, str]], count: int = 3):
    """Ping dst (an address) from each node, all under one capture. Returns (capture, failures)."""
    script = "; ".join("lab-exec %s ping -n -q -c %d -i 0.2 -W 2 %s >/dev/null 2>&1 || echo FAIL %s %s"
                       % (node, count, address, node, address) for node, address in pairs)
    capture = lab_capture("sh", "-c", script)
    failures = [line for line in capture.stdout.splitlines() if line.startswith("FAIL")]
    return capture, failures
