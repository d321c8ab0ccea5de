# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the lab tests (tests/lab/test_*.py) share: commands, inventory overlays, the one
playbook runner and its results callback, the one capture type, kernel state, key
recomputation and secret scanning. Traffic is tests/lab/traffic.py; fixtures are in
tests/lab/conftest.py.

Not a test file: pytest does not collect it. Independent of the collection's code on purpose:
the kernel is read with ``ip xfrm`` and /proc, per-pair keys and wire SPIs are recomputed with
hashlib from the construction described in docs/docsite/rst/how_it_works.rst and the
``_planner/derive.py``/``_planner/desired.py``
docstrings, packets are counted by lab-capture on the data bridge.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import yaml

REPO = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("LAB_PYTHON", sys.executable)
OUT = Path(os.environ.get("LAB_OUT", "/tmp"))
KEYS_FILE = "/etc/ipsec/keys"
# What marks the collection's entries in the kernel: the reqid of its SAs and policies, and the
# priority band of its template-less policies (the bypass policies).
REQID = 0x6E736563
BAND = (0x6E00, 0x6FFF)
WIRE_SPI_DOMAIN = b"netsec.ipsec/wire-spi/v1\x00"

# AES-128-GCM master keys (16-byte key + 4-byte salt), one per key id, for the tests that
# write them into inventories and extra vars (the module tests draw fresh ones).
MASTER = {
    1: "0x" + "3c5a1f0e" * 5,
    2: "0x" + "9d41b7c2" * 5,
    15: "0x" + "e6207a93" * 5,
}


def key_line(spi: int, key: Optional[str] = None) -> str:
    """A keys-file line: key id ``spi`` with MASTER[spi] or ``key``, per-pair keys on."""
    return "%d+ rfc4106(gcm(aes)) %s 128" % (spi, key or MASTER[spi])


# --------------------------------------------------------------------------- commands, output

def run_local(*cmd: Any, input: Optional[str] = None, check: bool = True,  # pylint: disable=redefined-builtin
              timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs ``cmd`` in the control namespace (text); with ``check`` a non-zero exit fails the test."""
    res = subprocess.run([str(c) for c in cmd], input=input, capture_output=True, text=True, timeout=timeout,
                         check=False)
    if check and res.returncode != 0:
        raise AssertionError("%r exited %d\nstdout:\n%s\nstderr:\n%s" % (list(cmd), res.returncode, res.stdout, res.stderr))
    return res


def out_dir(name: str, fresh: bool = False) -> Path:
    """$LAB_OUT/NAME (host-visible after the lab), emptied first when ``fresh``."""
    path = OUT / name
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def report(name: str, figures: Dict[str, Any]) -> None:
    """Record the figures of one test (printed, and appended to $LAB_OUT/figures.jsonl)."""
    OUT.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"test": name, **figures}, sort_keys=True, default=str)
    with open(OUT / "figures.jsonl", "a", encoding="utf-8") as stream:
        stream.write(line + "\n")
    print("FIGURES", line)


def wait_until(predicate, timeout: float = 10.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# --------------------------------------------------------------------------- inventory overlays

def inventory_hosts(inventory_path: Path) -> Dict[str, Dict[str, Any]]:
    return yaml.safe_load(Path(inventory_path).read_text())["all"]["children"]["ipsec_mesh"]["hosts"]


def inventory_with_group(inventory_path: Path, members: Sequence[str], target: Path,
                         host_vars: Optional[Dict[str, Dict[str, Any]]] = None,
                         group_vars: Optional[Dict[str, Any]] = None) -> Path:
    """A copy of the lab inventory whose group ipsec_mesh holds only ``members``; the other
    nodes stay reachable in group lab_spare. ``host_vars`` are merged into hosts, ``group_vars``
    become the group's vars (host variables override them; extra vars would override both)."""
    data = copy.deepcopy(yaml.safe_load(Path(inventory_path).read_text()))
    children = data["all"]["children"]
    hosts = children["ipsec_mesh"]["hosts"]
    for name, extra in (host_vars or {}).items():
        hosts[name].update(extra)
    children["ipsec_mesh"]["hosts"] = {name: hosts[name] for name in hosts if name in members}
    if group_vars:
        children["ipsec_mesh"]["vars"] = dict(group_vars)
    spare = {name: hosts[name] for name in hosts if name not in members}
    if spare:
        children["lab_spare"] = {"hosts": spare}
    target.write_text(yaml.safe_dump(data))
    return target


def inventory_overlay(target: Path, host_vars: Optional[Dict[str, Dict[str, Any]]] = None,
                      groups: Optional[Dict[str, Sequence[str]]] = None) -> Path:
    """An inventory to give after the lab's (``overlays=``): variables for some hosts, or extra groups."""
    data: Dict[str, Any] = {}
    if host_vars:
        data["hosts"] = host_vars
    if groups:
        data["children"] = {group: {"hosts": dict.fromkeys(members)} for group, members in groups.items()}
    target.write_text(yaml.safe_dump({"all": data}))
    return target


# --------------------------------------------------------------------------- captures

@dataclass
class Capture:
    """What lab-capture reports: the exit status and output of the command it ran, and the
    packets between node data addresses on the data segment (ESP per spi, others per proto)."""

    returncode: int
    stdout: str             # the command's stdout, without the JSON summary line
    stderr: str
    esp: list = field(default_factory=list)
    plaintext: list = field(default_factory=list)
    pcap: Optional[Path] = None

    def esp_packets(self, src=None, dst=None, spi=None) -> int:
        return sum(e["packets"] for e in self.esp
                   if src in (None, e["src"]) and dst in (None, e["dst"]) and spi in (None, e["spi"]))

    def plaintext_packets(self, proto=None, src=None, dst=None) -> int:
        return sum(p["packets"] for p in self.plaintext
                   if proto in (None, p["proto"]) and src in (None, p["src"]) and dst in (None, p["dst"]))

    def plaintext_between(self, addresses: Iterable[str]) -> int:
        """Plaintext packets whose source and destination are both in ``addresses``."""
        wanted = set(addresses)
        return sum(p["packets"] for p in self.plaintext if p["src"] in wanted and p["dst"] in wanted)


def _parse_capture(returncode: int, stdout: str, stderr: str, pcap: Optional[Path]) -> Capture:
    lines = stdout.rstrip("\n").split("\n")
    try:
        summary = json.loads(lines[-1])
    except (ValueError, IndexError):
        raise AssertionError("lab-capture printed no summary (exit %d)\nstdout:\n%s\nstderr:\n%s"
                             % (returncode, stdout, stderr)) from None
    # Every count of a capture is a claim about all that crossed the segment ("0 plaintext"):
    # a capture that missed packets cannot make it.
    if summary.get("dropped") != 0:
        raise AssertionError("the capture on the data segment is incomplete: tcpdump reports %s packets dropped by "
                             "the kernel\nstderr:\n%s" % (summary.get("dropped", "unknown"), stderr))
    return Capture(returncode, "\n".join(lines[:-1]), stderr, summary["esp"], summary["plaintext"], pcap)


def _capture_command(iface: str, settle: float, pcap: Optional[Path]) -> List[str]:
    return ["lab-capture", "--iface", iface, "--settle", str(settle), *(["--pcap", str(pcap)] if pcap else []), "--"]


def captured(*cmd: Any, iface: str = "brdata", settle: float = 1, timeout: int = 300,
             pcap: Optional[Path] = None) -> Capture:
    """Runs ``cmd`` (in the control namespace; wrap it in lab-exec to run it in a node) while
    capturing on the data segment."""
    res = run_local(*_capture_command(iface, settle, pcap), *cmd, check=False, timeout=timeout)
    return _parse_capture(res.returncode, res.stdout, res.stderr, pcap)


class WindowCapture:
    """lab-capture over a stretch of time: capturing when the constructor returns, until stop()."""

    def __init__(self, pcap: Optional[Path] = None, iface: str = "brdata", settle: float = 1) -> None:
        self.pcap = pcap
        self.proc = subprocess.Popen(_capture_command(iface, settle, pcap) + ["sh", "-c", "echo capturing; read _"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "capturing":
            self.proc.kill()
            raise AssertionError("lab-capture did not start: %r %s" % (line, self.proc.stderr.read()))

    def stop(self, timeout: int = 120) -> Capture:
        out, err = self.proc.communicate(input="\n", timeout=timeout)
        return _parse_capture(self.proc.returncode, "capturing\n" + out, err, self.pcap)

    def abort(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def plaintext_after_esp(pcap: Path, addresses: Iterable[str]) -> Dict[str, int]:
    """{"a->b": n}: plaintext packets from a to b captured after the first ESP packet from a to b."""
    sys.path.insert(0, str(REPO / "lab" / "lib"))
    try:
        import pcap_summary  # pylint: disable=import-error,import-outside-toplevel
    finally:
        sys.path.pop(0)
    wanted = set(addresses)
    esp_seen = set()
    late: Dict[str, int] = {}
    for linktype, frame in pcap_summary.read_packets(Path(pcap).read_bytes()):
        l3 = pcap_summary.l3_payload(linktype, frame)
        parsed = pcap_summary.classify(*l3) if l3 else None
        if parsed is None:
            continue
        src, dst, proto = str(parsed[0]), str(parsed[1]), parsed[2]
        if src not in wanted or dst not in wanted:
            continue
        if proto == 50:
            esp_seen.add((src, dst))
        elif (src, dst) in esp_seen and proto not in (58,):
            key = "%s->%s" % (src, dst)
            late[key] = late.get(key, 0) + 1
    return late


def assert_esp_everywhere(packets: Capture, failures: Sequence[str], flows: Sequence[Tuple[str, str]],
                          key_id: Optional[int], minimum: int = 3) -> None:
    """Every ping answered, 0 plaintext between node addresses, ESP in both directions of each flow."""
    assert failures == [], failures
    assert packets.plaintext == [], packets.plaintext
    for src, dst in flows:
        for one, other in ((src, dst), (dst, src)):
            spi = "0x%08x" % wire_spi(key_id, one) if key_id else None
            assert packets.esp_packets(src=one, dst=other, spi=spi) >= minimum, (one, other, spi, packets.esp)


def esp_summary(packets: Capture) -> str:
    return "ESP %d packets in %d (src, dst, spi) flows, plaintext %d" % (
        sum(e["packets"] for e in packets.esp), len(packets.esp), sum(p["packets"] for p in packets.plaintext))


def ping_all(pairs: Sequence[Tuple[str, str]], count: int = 3) -> Tuple[Capture, List[str]]:
    """Ping an address from each node, all under one capture. Returns (capture, failures)."""
    script = "; ".join("lab-exec %s ping -n -q -c %d -i 0.2 -W 2 %s >/dev/null 2>&1 || echo FAIL %s %s"
                       % (node, count, address, node, address) for node, address in pairs)
    result = captured("sh", "-c", script)
    return result, [line for line in result.stdout.splitlines() if line.startswith("FAIL")]


# --------------------------------------------------------------------------- Ansible

# An aggregate callback that writes every task result, as Ansible holds it, to
# $LAB_RESULTS_FILE: what the registered variables hold and which task was running when
# (CLOCK_MONOTONIC, the nodes' clock too), without a copy task per host (each module start
# costs seconds in the lab).
RESULTS_CALLBACK = '''
import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lab_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.results = []

    def _keep(self, result, status, item=False):
        register = result._task.register or {}
        # ansible-core 2.19+ keeps register as {name: projection}, older ones as a name.
        names = list(register) if isinstance(register, dict) else [register]
        self.results.append({"host": result._host.get_name(), "task": result._task.get_name(), "status": status,
                             "failed": status in ("failed", "unreachable"), "item": item, "register": names,
                             "t": time.monotonic(), "result": result._result})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.results.append({"host": None, "task": task.get_name(), "status": "started", "failed": False,
                             "item": False, "register": [], "t": time.monotonic(), "result": {"task_start": True}})

    def v2_runner_on_ok(self, result, *args, **kwargs):
        self._keep(result, "ok")

    def v2_runner_on_skipped(self, result, *args, **kwargs):
        self._keep(result, "skipped")

    def v2_runner_on_failed(self, result, *args, **kwargs):
        self._keep(result, "failed")

    def v2_runner_on_unreachable(self, result, *args, **kwargs):
        self._keep(result, "unreachable")

    def v2_runner_item_on_ok(self, result, *args, **kwargs):
        self._keep(result, "ok", item=True)

    def v2_runner_item_on_failed(self, result, *args, **kwargs):
        self._keep(result, "failed", item=True)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["LAB_RESULTS_FILE"], "w") as stream:
            json.dump(self.results, stream, default=str)
'''

RESULT_LINE = re.compile(r"^(ok|changed|skipping|fatal|failed|unreachable): \[(node\d+)[\]\s-]")
RECAP_LINE = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+"
                        r"skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)")
TASK_HEADING = re.compile(r"^TASK \[(.+?)\] \*+$")


@dataclass
class Run:
    """One ansible-playbook run: exit status, output, every task result, time, packets."""

    args: List[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    results: List[Dict[str, Any]]
    capture: Optional[Capture]
    log: Path

    def text(self) -> str:
        """Everything the run showed: output and task results (for the secret grep)."""
        return self.stdout + "\n" + self.stderr + "\n" + json.dumps(self.results, default=str)

    def plaintext(self, addresses: Iterable[str]) -> int:
        return self.capture.plaintext_between(addresses) if self.capture else 0

    def esp(self) -> int:
        return self.capture.esp_packets() if self.capture else 0

    def failures(self) -> Dict[str, str]:
        """{host: message} of the failed task results (items included)."""
        return {r["host"]: r["result"].get("msg", "") for r in self.results if r.get("failed")}

    def registered(self, prefix: str = "r_") -> Dict[str, Dict[str, Any]]:
        """{host: {NAME: result}} of the tasks registering ``r_NAME``: what the variable holds."""
        found: Dict[str, Dict[str, Any]] = {}
        for entry in self.results:
            if entry["item"] or entry["status"] not in ("ok", "skipped", "failed"):
                continue
            for name in entry["register"]:
                if name.startswith(prefix):
                    found.setdefault(entry["host"], {})[name[len(prefix):]] = dict(entry["result"], failed=entry["failed"])
        return found

    def recap(self) -> Dict[str, Dict[str, int]]:
        keys = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
        return {m.group(1): dict(zip(keys, map(int, m.groups()[1:])))
                for m in map(RECAP_LINE.match, self.stdout.splitlines()) if m}

    def tasks(self) -> List[str]:
        return [heading.group(1) for heading in map(TASK_HEADING.match, self.stdout.splitlines()) if heading]

    def statuses(self, task_part: str) -> Dict[str, List[str]]:
        """Per host, the statuses (ok, changed, skipping, ...) of the tasks whose name holds
        ``task_part``: a task's heading is printed even where every host skips it."""
        found: Dict[str, List[str]] = {}
        current = ""
        for line in self.stdout.splitlines():
            heading = TASK_HEADING.match(line)
            match = RESULT_LINE.match(line)
            if heading:
                current = heading.group(1)
            elif match and task_part in current:
                found.setdefault(match.group(2), []).append(match.group(1))
        return found

    def diffs(self, task: str) -> Dict[str, List[str]]:
        """Per host, the +/- lines of the diff it printed for ``task``."""
        found: Dict[str, List[str]] = {}
        pending: List[str] = []
        current = None
        for line in self.stdout.splitlines():
            match = RESULT_LINE.match(line)
            heading = TASK_HEADING.match(line)
            if heading:
                current, pending = heading.group(1), []
            elif match:
                if current == task:
                    found.setdefault(match.group(2), []).extend(pending)
                pending = []
            elif line.startswith("PLAY "):
                current, pending = None, []
            elif re.match(r"^[+-](?![+-]{2}) ?\S", line):
                pending.append(line)
        return found

    def explain(self) -> str:
        return "%s -> %d after %.0f s (log %s)\n%s\n%s" % (
            " ".join(self.args), self.returncode, self.seconds, self.log, self.stdout[-6000:], self.stderr[-3000:])


def _indent(text: str, spaces: int) -> str:
    text = text.strip("\n")
    lines = text.splitlines()
    base = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join((" " * spaces + line[base:]) if line.strip() else "" for line in lines)


class Ansible:
    """Runs playbooks from the repository (or plays written by a test) against the lab; keeps
    every run. ``node``: ansible-playbook runs inside that node (lab-exec), so that its
    connections are mesh traffic. ``invocation``: module arguments (masked where no_log) in
    every result and in -vvv output."""

    def __init__(self, inventory: Path, work: Path, node: Optional[str] = None, invocation: bool = False) -> None:
        self.inventory = Path(inventory)
        self.work = Path(work)
        self.node = node
        self.runs: List[Run] = []
        callbacks = self.work / "callback_plugins"
        callbacks.mkdir(parents=True, exist_ok=True)
        (callbacks / "lab_results.py").write_text(RESULTS_CALLBACK)
        self.env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_HOST_KEY_CHECKING="0",
                        ANSIBLE_CALLBACK_PLUGINS=str(callbacks), ANSIBLE_CALLBACKS_ENABLED="lab_results",
                        ANSIBLE_RETRY_FILES_ENABLED="0")
        self.env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(REPO / "build" / "collections"))
        if invocation:
            self.env["ANSIBLE_INJECT_INVOCATION"] = "1"

    def playbook(self, playbook: str, extra_vars: Optional[Dict[str, Any]] = None, args: Sequence[str] = (),
                 inventory: Optional[Path] = None, overlays: Sequence[Path] = (), capture: Optional[str] = None,
                 expect_rc: Optional[int] = 0, timeout: int = 900) -> Run:
        """``playbook``: a path relative to the repository, or absolute. ``overlays``: inventories
        read after ``inventory`` (the lab's by default). ``capture``: a pcap file name; the run is
        then wrapped in lab-capture. ``expect_rc=None`` accepts any exit status."""
        name = "run%02d-%s" % (len(self.runs) + 1, Path(playbook).stem)
        results_file = self.work / (name + ".results.json")
        cmd = ["ansible-playbook", "-i", str(inventory or self.inventory)]
        for overlay in overlays:
            cmd += ["-i", str(overlay)]
        cmd += [str(REPO / playbook), *args]
        if extra_vars:
            vars_file = self.work / (name + ".vars.json")
            vars_file.write_text(json.dumps(extra_vars))
            cmd += ["-e", "@%s" % vars_file]
        if self.node:
            cmd = ["lab-exec", self.node, *cmd]
        pcap = self.work / capture if capture else None
        if pcap:
            cmd = _capture_command("brdata", 1, pcap) + cmd
        env = dict(self.env, LAB_RESULTS_FILE=str(results_file))
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout, check=False)
        seconds = time.monotonic() - started
        stdout, packets = proc.stdout, None
        if pcap:
            packets = _parse_capture(proc.returncode, proc.stdout, proc.stderr, pcap)
            stdout = packets.stdout
        log = self.work / (name + ".log")
        log.write_text("$ %s\n%s\n--- stderr\n%s" % (" ".join(cmd), stdout, proc.stderr))
        run = Run(cmd, proc.returncode, stdout, proc.stderr, seconds, self._results(results_file), packets, log)
        self.runs.append(run)
        print("%s: exit %d after %.0f s, recap %s" % (Path(playbook).name, run.returncode, run.seconds, run.recap()))
        if expect_rc is not None:
            assert run.returncode == expect_rc, "%s exited %d (log %s)\n%s\n%s" % (
                playbook, run.returncode, log, stdout[-15000:], proc.stderr[-3000:])
        return run

    def play(self, tasks: str, hosts: str = "ipsec_mesh", **kwargs: Any) -> Run:
        """One play of ``tasks`` (YAML text) on ``hosts``, without fact gathering."""
        path = self.work / ("play%02d.yml" % (len(self.runs) + 1))
        path.write_text("- hosts: %s\n  gather_facts: false\n  tasks:\n%s\n" % (hosts, _indent(tasks, 4)))
        return self.playbook(str(path), **kwargs)

    def text(self) -> str:
        """Everything every run showed."""
        return "\n".join(run.text() for run in self.runs)

    def _results(self, results_file: Path) -> List[Dict[str, Any]]:
        if not self.node:
            return json.loads(results_file.read_text()) if results_file.exists() else []
        # Written inside the node: read it through the node (a work folder under /tmp is the
        # node's own copy-on-write /tmp there, invisible outside).
        shown = run_local("lab-exec", self.node, "cat", results_file, check=False, timeout=60)
        return json.loads(shown.stdout) if shown.returncode == 0 and shown.stdout.strip() else []


# --------------------------------------------------------------------------- kernel state

def entry_blocks(text: str) -> List[str]:
    """`ip xfrm` output split into one text block per entry."""
    blocks: List[str] = []
    for line in text.splitlines():
        if line and not line[0].isspace():
            blocks.append(line)
        elif blocks:
            blocks[-1] += "\n" + line
    return blocks


def strip_counters(state_text: str) -> str:
    """`ip xfrm state` without the anti-replay context (sequence numbers move with traffic)."""
    kept: List[str] = []
    skipping = False
    for line in state_text.splitlines():
        if line and not line[0].isspace():
            skipping = False
        elif line.strip().startswith("anti-replay"):
            skipping = True
            continue
        elif skipping and line.strip().startswith("sel "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


def is_owned(block: str) -> bool:
    """An SA or policy of the collection: its reqid, or a template-less policy in its band."""
    if "reqid %d " % REQID in block + " ":
        return True
    if "tmpl " in block:
        return False
    match = re.search(r"priority (\d+)", block)
    return bool(match) and BAND[0] <= int(match.group(1)) <= BAND[1]


KEY_LINE = re.compile(r"^\s*(aead|auth-trunc|auth|enc) (\S+) 0x([0-9a-f]+)", re.M)
SA_HEAD = re.compile(r"src (\S+) dst (\S+)\s+proto esp spi (0x[0-9a-f]+)")


@dataclass(frozen=True)
class Dump:
    """`ip xfrm state` and `ip xfrm policy` of one node, as printed (keys included, no counters
    unless the kernel prints them: compare ``without_counters()`` across traffic)."""

    state: str
    policy: str

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
        return [b for b in self.states if is_owned(b)]

    def foreign_states(self) -> List[str]:
        return [b for b in self.states if not is_owned(b)]

    def owned_policies(self) -> List[str]:
        return [b for b in self.policies if is_owned(b)]

    def foreign_policies(self) -> List[str]:
        return [b for b in self.policies if not is_owned(b)]

    def foreign(self) -> str:
        return "\n".join(sorted(self.foreign_states())) + "\n---\n" + "\n".join(sorted(self.foreign_policies()))

    def keys(self, owned_only: bool = False) -> List[bytes]:
        """Every key the kernel prints for an SA (aead, auth-trunc/auth, enc)."""
        text = "\n".join(self.owned_states()) if owned_only else self.state
        return [bytes.fromhex(key) for _kind, _algo, key in KEY_LINE.findall(text)]

    def sa(self, src: str, dst: str, spi: Optional[int] = None) -> List[str]:
        return [b for b in self.owned_states()
                if b.startswith("src %s dst %s\n" % (src, dst)) and (spi is None or "spi 0x%08x " % spi in b)]

    @staticmethod
    def sa_keys(block: str) -> Dict[str, Tuple[str, bytes]]:
        """{'aead'|'auth-trunc'|'enc': (algorithm, key)} of one SA block."""
        return {kind: (algo, bytes.fromhex(key)) for kind, algo, key in KEY_LINE.findall(block)}

    def without_counters(self) -> "Dump":
        return replace(self, state=strip_counters(self.state))


class PortBypasses(NamedTuple):
    """The template-less TCP policies of one port, by side and direction (policy blocks as printed)."""

    server_in: List[str]        # dir in, dport PORT: connections to this node's server
    server_out: List[str]       # dir out, sport PORT: its replies
    client_out: List[str]       # dir out, dport PORT: this node's connections to a server elsewhere
    client_in: List[str]        # dir in, sport PORT: the replies to those

    def count(self) -> int:
        return sum(len(policies) for policies in self)


def port_bypasses(policies: Iterable[str], port: int = 22) -> PortBypasses:
    """The bypass policies of TCP ``port`` among printed policy blocks (``Dump.policies`` or
    ``Dump.owned_policies()``)."""
    def matching(direction: str, port_word: str) -> List[str]:
        return [p for p in policies if "dir %s " % direction in p + " " and "proto tcp" in p
                and "%s %d " % (port_word, port) in p + " " and "tmpl" not in p]
    policies = list(policies)
    return PortBypasses(matching("in", "dport"), matching("out", "sport"), matching("out", "dport"),
                        matching("in", "sport"))


def textfile_samples(text: str) -> Dict[str, List[Tuple[Dict[str, str], float]]]:
    """A Prometheus textfile parsed by prometheus_client (a real parser of the format):
    sample name -> [(labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families  # pylint: disable=import-outside-toplevel
    samples: Dict[str, List[Tuple[Dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def dump(lab_exec, node: str) -> Dump:
    return Dump(lab_exec(node, "ip", "xfrm", "state").stdout, lab_exec(node, "ip", "xfrm", "policy").stdout)


def dumps(lab_exec, nodes: Iterable[str]) -> Dict[str, Dump]:
    return {node: dump(lab_exec, node) for node in nodes}


def comparable(node_dumps: Dict[str, Dump]) -> Dict[str, Dump]:
    return {node: node_dump.without_counters() for node, node_dump in node_dumps.items()}


def xfrm_stat(lab_exec, nodes: Iterable[str]) -> Dict[str, Dict[str, int]]:
    stats = {}
    for node in nodes:
        text = lab_exec(node, "cat", "/proc/net/xfrm_stat").stdout
        stats[node] = {name: int(value) for name, value in (line.split() for line in text.splitlines() if line.strip())}
    return stats


def udp_stats(lab_exec, nodes: Iterable[str]) -> Dict[str, Dict[str, int]]:
    """The Udp counters of /proc/net/snmp per node (NoPorts, InErrors, RcvbufErrors, ...)."""
    stats = {}
    for node in nodes:
        lines = [line.split() for line in lab_exec(node, "cat", "/proc/net/snmp").stdout.splitlines() if line.startswith("Udp:")]
        stats[node] = {name: int(value) for name, value in zip(lines[0][1:], lines[1][1:])}
    return stats


def stat_increase(before: Dict[str, Dict[str, int]], after: Dict[str, Dict[str, int]]) -> Dict[str, Dict[str, int]]:
    """{node: {counter: increase}} for the counters that went up."""
    return {node: {name: after[node][name] - value for name, value in counters.items() if after[node][name] > value}
            for node, counters in before.items() if any(after[node][name] > value for name, value in counters.items())}


BAD_COUNTERS = ("XfrmInNoStates", "XfrmOutNoStates", "XfrmOutPolBlock", "XfrmInStateProtoError", "XfrmInNoPols",
                "XfrmInTmplMismatch", "XfrmInPolBlock")


def assert_check_mode_unchanged(ansible: Ansible, lab_exec, nodes: Sequence[str], playbook: str, **kwargs: Any) -> Run:
    """A --check run leaves every node's SAD/SPD dump as it was (replay counters aside)."""
    before = comparable(dumps(lab_exec, nodes))
    kwargs["args"] = ("--check", "--diff", *kwargs.get("args", ()))
    run = ansible.playbook(playbook, **kwargs)
    after = comparable(dumps(lab_exec, nodes))
    for node in nodes:
        assert after[node] == before[node], "%s --check changed the XFRM tables of %s" % (playbook, node)
    return run


# --------------------------------------------------------------------------- keys and secrets

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


def secret_forms(key: bytes) -> List[bytes]:
    """Every form of a key that must never show up: hex in both cases, base64 (with and
    without padding) and the raw bytes."""
    hexed = key.hex()
    encoded = base64.b64encode(key)
    return [hexed.encode(), hexed.upper().encode(), encoded, encoded.rstrip(b"="), key]


def text_leaks(text: str, keys: Iterable[bytes]) -> List[str]:
    """Forms of ``keys`` found in ``text`` (only their first 6 characters are given)."""
    found = []
    for key in keys:
        if not key:
            continue
        for form in secret_forms(key):
            shown = form.decode("latin-1")
            if shown in text:
                found.append(shown[:6] + "...")
    return found


SCAN_SCRIPT = r'''
import os, sys
forms = [bytes.fromhex(line) for line in sys.stdin.read().split() if line]
skip = set(sys.argv[1].split(",")) if sys.argv[1] else set()
newer_than = float(sys.argv[2])
hits = []
scanned = 0
for root in sys.argv[3:]:
    for folder, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if path in skip or os.path.islink(path) or not os.path.isfile(path):
                continue
            if newer_than and os.stat(path).st_mtime < newer_than:
                continue
            try:
                with open(path, "rb") as stream:
                    data = stream.read(50 * 1024 * 1024)
            except OSError:
                continue
            scanned += 1
            hits += ["%s: form %d" % (path, index) for index, form in enumerate(forms) if form in data]
print(scanned)
for hit in hits:
    print(hit)
'''


def scan_for_keys(run_in, keys: Iterable[bytes], roots: Sequence[str], skip: Sequence[str] = (),
                  newer_than: float = 0.0) -> Tuple[int, List[str]]:
    """Search files under ``roots`` (modified since ``newer_than``, a time stamp, when given) for
    any form of ``keys``; ``run_in(*cmd, input=...)`` runs the scanner where the files are.
    Returns (files scanned, hits: "PATH: form N", the Nth of every key's secret_forms)."""
    forms = [form for key in sorted({key for key in keys if key}) for form in secret_forms(key)]
    res = run_in(PYTHON, "-c", SCAN_SCRIPT, ",".join(skip), str(newer_than), *roots,
                 input="\n".join(form.hex() for form in forms))
    lines = res.stdout.strip().splitlines()
    return int(lines[0]), lines[1:]


# --------------------------------------------------------------------------- staged module tests

def foreign_batch(index: int) -> str:
    """An SA and policies another tool would own (reqid 7, priorities outside the band)."""
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


def counts(added: int = 0, updated: int = 0, removed: int = 0, unchanged: int = 0, kept: int = 0) -> Dict[str, int]:
    """xfrm_endpoint's per-kind counts (``sas``, ``policies``)."""
    return dict(added=added, updated=updated, removed=removed, unchanged=unchanged, kept=kept)


class Lab:
    """What the stages of one module test file share: the runner, boot ids, the foreign
    entries' baseline, every key seen (for the final secret grep), stage timings, figures."""

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
        with open(self.ansible.work / "figures.txt", "a", encoding="utf-8") as stream:
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

    def play(self, stage: str, tasks: str, args: Sequence[str] = ("-vvv", "--diff"),
             **kwargs: Any) -> Dict[str, Dict[str, Any]]:
        """One stage: a play of ``tasks``, -vvv --diff; returns {host: {NAME: result of r_NAME}}."""
        start = time.monotonic()
        try:
            return self.ansible.play(tasks, args=args, **kwargs).registered()
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
        lab_exec(node, "ip", "-batch", "-", input=foreign_batch(int(node[len("node"):])))
    baseline = dumps(lab_exec, sorted(addresses))
    for node_dump in baseline.values():
        assert len(node_dump.foreign_states()) == 2 and len(node_dump.foreign_policies()) == 4, node_dump.text
        assert not node_dump.owned_states() and not node_dump.owned_policies(), node_dump.text
    ansible = Ansible(inventory_path, out_dir(name, fresh=True), invocation=True)
    return Lab(ansible, addresses, {node: lab_boot_id(node) for node in addresses},
               {node: node_dump.foreign() for node, node_dump in baseline.items()})
