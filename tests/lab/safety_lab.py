# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the safety-under-change lab tests (tests/lab/test_safety_*.py).

Not a test file: pytest does not collect it. Independent of the collection's code: the
kernel is read with ``ip xfrm`` and /proc/net/xfrm_stat, traffic is counted by
safety_traffic.py in the nodes, packets by lab-capture on the data bridge.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

REPO = Path(__file__).resolve().parents[2]
TRAFFIC = Path(__file__).resolve().parent / "safety_traffic.py"
OUT = Path(os.environ.get("LAB_OUT", "/tmp")) / "safety"
REQID = 1853056355
KEYS_FILE = "/etc/ipsec/keys"
PYTHON = os.environ.get("LAB_PYTHON", sys.executable)

# AES-128-GCM master keys (16-byte key + 4-byte salt), one per key id used by the tests.
MASTER = {
    1: "0x" + "3c5a1f0e" * 5,
    2: "0x" + "9d41b7c2" * 5,
    15: "0x" + "e6207a93" * 5,
}


def key_line(spi: int, key: Optional[str] = None) -> str:
    return "%d+ rfc4106(gcm(aes)) %s 128" % (spi, key or MASTER[spi])


def out_dir(name: str) -> Path:
    path = OUT / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def report(name: str, figures: Dict[str, Any]) -> None:
    """Record the figures of one test (printed, and appended to $LAB_OUT/safety/figures.jsonl)."""
    OUT.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"test": name, **figures}, sort_keys=True, default=str)
    with open(OUT / "figures.jsonl", "a", encoding="utf-8") as stream:
        stream.write(line + "\n")
    print("FIGURES", line)


# --------------------------------------------------------------------------- inventory

def inventory_with_group(inventory_path: Path, members: Sequence[str], target: Path,
                         host_vars: Optional[Dict[str, Dict[str, Any]]] = None,
                         group_vars: Optional[Dict[str, Any]] = None) -> Path:
    """A copy of the lab inventory whose group ipsec_mesh holds only ``members``; the other
    nodes stay reachable in group lab_spare. ``host_vars`` are merged into hosts, ``group_vars``
    become the group's vars (host variables override them; extra vars would override both)."""
    data = yaml.safe_load(Path(inventory_path).read_text())
    data = copy.deepcopy(data)
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


# --------------------------------------------------------------------------- Ansible

RESULTS_CALLBACK = '''
import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Every task result, as Ansible holds it, to $SAFETY_RESULTS_FILE."""
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "safety_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.results = []

    def _keep(self, result, failed=False):
        self.results.append({"host": result._host.get_name(), "task": result._task.get_name(),
                             "failed": failed, "t": time.monotonic(), "result": result._result})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.results.append({"host": None, "task": task.get_name(), "failed": False, "t": time.monotonic(),
                             "result": {"task_start": True}})

    def v2_runner_on_ok(self, result, *args, **kwargs):
        self._keep(result)

    def v2_runner_on_skipped(self, result, *args, **kwargs):
        self._keep(result)

    def v2_runner_item_on_ok(self, result, *args, **kwargs):
        self._keep(result)

    def v2_runner_on_failed(self, result, *args, **kwargs):
        self._keep(result, True)

    def v2_runner_on_unreachable(self, result, *args, **kwargs):
        self._keep(result, True)

    def v2_runner_item_on_failed(self, result, *args, **kwargs):
        self._keep(result, True)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["SAFETY_RESULTS_FILE"], "w") as stream:
            json.dump(self.results, stream, default=str)
'''


class Run:
    """One ansible-playbook run: exit status, output, results, time, lab-capture summary."""

    def __init__(self, returncode: int, stdout: str, stderr: str, seconds: float, results: list,
                 capture: Optional[Dict[str, Any]], log: Path) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        self.results = results
        self.capture = capture
        self.log = log

    def plaintext(self, addresses: Iterable[str]) -> int:
        wanted = set(addresses)
        return sum(p["packets"] for p in (self.capture or {}).get("plaintext", [])
                   if p["src"] in wanted and p["dst"] in wanted)

    def esp(self) -> int:
        return sum(e["packets"] for e in (self.capture or {}).get("esp", []))

    def text(self) -> str:
        return self.stdout + "\n" + self.stderr + "\n" + json.dumps(self.results, default=str)


_RUN_NUMBERS = itertools.count(1)


class Ansible:
    """Runs playbooks from the repository against the lab (or an overlay inventory)."""

    def __init__(self, inventory: Path, work: Path) -> None:
        self.inventory = Path(inventory)
        self.work = work
        self.runs: List[Run] = []
        callbacks = work / "callback_plugins"
        callbacks.mkdir(parents=True, exist_ok=True)
        (callbacks / "safety_results.py").write_text(RESULTS_CALLBACK)
        self.env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                        ANSIBLE_CALLBACK_PLUGINS=str(callbacks), ANSIBLE_CALLBACKS_ENABLED="safety_results",
                        ANSIBLE_RETRY_FILES_ENABLED="0")
        self.env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(REPO / "build" / "collections"))

    def playbook(self, playbook: str, extra_vars: Optional[Dict[str, Any]] = None, args: Sequence[str] = (),
                 inventory: Optional[Path] = None, capture: Optional[str] = None, expect_rc: Optional[int] = 0,
                 timeout: int = 900) -> Run:
        """``playbook``: a path relative to the repository or absolute. ``capture``: a pcap file
        name; the run is then wrapped in lab-capture. ``expect_rc=None`` accepts any status."""
        name = "run%02d-%s" % (next(_RUN_NUMBERS), Path(playbook).stem)
        results_file = self.work / (name + ".results.json")
        cmd = ["ansible-playbook", "-i", str(inventory or self.inventory), str(REPO / playbook), *args]
        if extra_vars:
            vars_file = self.work / (name + ".vars.json")
            vars_file.write_text(json.dumps(extra_vars))
            cmd += ["-e", "@%s" % vars_file]
        if capture:
            cmd = ["lab-capture", "--pcap", str(self.work / capture), "--", *cmd]
        env = dict(self.env, SAFETY_RESULTS_FILE=str(results_file))
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout,
                              check=False)
        seconds = time.monotonic() - started
        stdout = proc.stdout
        summary = None
        if capture:
            lines = stdout.rstrip("\n").split("\n")
            summary = json.loads(lines[-1])
            stdout = "\n".join(lines[:-1])
        log = self.work / (name + ".log")
        log.write_text("$ %s\n%s\n--- stderr\n%s" % (" ".join(cmd), stdout, proc.stderr))
        results = json.loads(results_file.read_text()) if results_file.exists() else []
        run = Run(proc.returncode, stdout, proc.stderr, seconds, results, summary, log)
        self.runs.append(run)
        if expect_rc is not None:
            assert proc.returncode == expect_rc, "%s exited %d (log %s)\n%s\n%s" % (
                playbook, proc.returncode, log, stdout[-15000:], proc.stderr[-3000:])
        return run


# --------------------------------------------------------------------------- kernel state

def failures(run: "Run") -> Dict[str, str]:
    """{host: message} of the failed task results of a run (items included)."""
    return {r["host"]: r["result"].get("msg", "") for r in run.results if r.get("failed")}


def losses_in_context(figures: Dict[str, Any], run: "Run") -> Dict[str, List[str]]:
    """{pair: ["seq N lost after t (during task X)"]}: when each lost datagram was due, against the
    task the playbook was running then (both clocks are the lab kernel's CLOCK_MONOTONIC)."""
    starts = [(r["t"], r["task"]) for r in run.results if r["result"].get("task_start")]
    found = {}
    for pair, counts in figures["pairs"].items():
        notes = []
        for seq, after in counts.get("missing", []):
            task = [name for started, name in starts if started <= after]
            notes.append("seq %d after %.3f (task: %s)" % (seq, after, task[-1] if task else "before the playbook"))
        if notes:
            found[pair] = notes
    return found


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


def xfrm_dump(lab_exec, node: str) -> Tuple[str, str]:
    return lab_exec(node, "ip", "xfrm", "state").stdout, lab_exec(node, "ip", "xfrm", "policy").stdout


def xfrm_dumps(lab_exec, nodes: Iterable[str]) -> Dict[str, Tuple[str, str]]:
    return {node: xfrm_dump(lab_exec, node) for node in nodes}


def comparable(dumps: Dict[str, Tuple[str, str]]) -> Dict[str, Tuple[str, str]]:
    return {node: (strip_counters(state), policy) for node, (state, policy) in dumps.items()}


def owned_sa_count(state_text: str) -> int:
    return sum(1 for block in entry_blocks(state_text) if "reqid %d " % REQID in block)


def sa_keys(state_text: str) -> List[bytes]:
    """Every key `ip xfrm state` prints (aead, auth, enc)."""
    return [bytes.fromhex(k) for k in re.findall(r"^\s*(?:aead|auth-trunc|auth|enc) \S+ 0x([0-9a-f]+)", state_text, re.M)]


def xfrm_stat(lab_exec, nodes: Iterable[str]) -> Dict[str, Dict[str, int]]:
    stats = {}
    for node in nodes:
        text = lab_exec(node, "cat", "/proc/net/xfrm_stat").stdout
        stats[node] = {name: int(value) for name, value in (line.split() for line in text.splitlines() if line.strip())}
    return stats


def stat_increase(before: Dict[str, Dict[str, int]], after: Dict[str, Dict[str, int]]) -> Dict[str, Dict[str, int]]:
    """{node: {counter: increase}} for the counters that went up."""
    return {node: {name: after[node][name] - value for name, value in counters.items() if after[node][name] > value}
            for node, counters in before.items() if any(after[node][name] > value for name, value in counters.items())}


def udp_stats(lab_exec, nodes: Iterable[str]) -> Dict[str, Dict[str, int]]:
    """The Udp counters of /proc/net/snmp per node (NoPorts, InErrors, RcvbufErrors, ...)."""
    stats = {}
    for node in nodes:
        lines = [line.split() for line in lab_exec(node, "cat", "/proc/net/snmp").stdout.splitlines() if line.startswith("Udp:")]
        stats[node] = {name: int(value) for name, value in zip(lines[0][1:], lines[1][1:])}
    return stats


BAD_COUNTERS = ("XfrmInNoStates", "XfrmOutNoStates", "XfrmOutPolBlock", "XfrmInStateProtoError", "XfrmInNoPols",
                "XfrmInTmplMismatch", "XfrmInPolBlock")


def assert_check_mode_unchanged(ansible: Ansible, lab_exec, nodes: Sequence[str], playbook: str, **kwargs: Any) -> Run:
    """Item 8: a --check run leaves every node's SAD/SPD dump byte-identical (replay counters aside)."""
    before = comparable(xfrm_dumps(lab_exec, nodes))
    kwargs["args"] = ("--check", "--diff", *kwargs.get("args", ()))
    run = ansible.playbook(playbook, **kwargs)
    after = comparable(xfrm_dumps(lab_exec, nodes))
    for node in nodes:
        assert after[node] == before[node], "%s --check changed the XFRM tables of %s" % (playbook, node)
    return run


# --------------------------------------------------------------------------- traffic

class Traffic:
    """safety_traffic.py in every given node, to every other given node, ``rate`` datagrams/s per pair."""

    def __init__(self, addresses: Dict[str, str], rate: float = 50.0, port: int = 47474) -> None:
        self.addresses = addresses
        self.procs: Dict[str, subprocess.Popen] = {}
        for node, me in addresses.items():
            peers = ",".join(addr for other, addr in addresses.items() if other != node)
            self.procs[node] = subprocess.Popen(
                ["lab-exec", node, "--", PYTHON, str(TRAFFIC), "--me", me, "--peers", peers,
                 "--rate", str(rate), "--port", str(port)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        # Every receiver is bound before anyone sends; every sender stops before anyone stops receiving.
        for node, proc in self.procs.items():
            line = proc.stdout.readline()
            assert line.strip() == "ready", "traffic in %s did not start: %r %s" % (node, line, proc.stderr.read())
        for proc in self.procs.values():
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def stop(self) -> Dict[str, Any]:
        """Stop every sender, collect the counts; returns {"pairs": {"a->b": {...}}, "sent", "lost", ...}."""
        for proc in self.procs.values():
            proc.stdin.write("stop\n")
            proc.stdin.flush()
        for node, proc in self.procs.items():
            line = proc.stdout.readline()
            assert line.strip() == "stopped", "traffic in %s: %r" % (node, line)
        time.sleep(0.5)
        for proc in self.procs.values():
            proc.stdin.close()
        reports = {}
        for node, proc in self.procs.items():
            out = proc.stdout.read()
            err = proc.stderr.read()
            proc.wait(timeout=60)
            assert proc.returncode == 0, "traffic in %s failed: %s" % (node, err)
            reports[node] = json.loads(out.strip().splitlines()[-1])
        pairs = {}
        for src, src_addr in self.addresses.items():
            for dst, dst_addr in self.addresses.items():
                if src == dst:
                    continue
                sent = reports[src]["sent"][dst_addr]
                received = reports[dst]["received"][src_addr]
                pairs["%s->%s" % (src, dst)] = {
                    "sent": sent, "received": received, "lost": sent - received,
                    "send_errors": reports[src]["send_errors"][dst_addr],
                    "longest_gap": reports[dst]["longest_gap"][src_addr],
                    "missing": reports[dst]["missing"][src_addr]}
        seconds = max(report["seconds"] for report in reports.values())
        return {"pairs": pairs, "sent": sum(p["sent"] for p in pairs.values()),
                "lost": sum(max(p["lost"], 0) for p in pairs.values()), "seconds": seconds,
                "min_rate_per_pair": round(min(p["sent"] for p in pairs.values()) / seconds, 1)}


# --------------------------------------------------------------------------- pcap order

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


# --------------------------------------------------------------------------- secrets on disk

SCAN_SCRIPT = r'''
import base64, os, sys
keys = [bytes.fromhex(line) for line in sys.stdin.read().split() if line]
forms = []
for key in keys:
    hexed = key.hex()
    forms += [hexed.encode(), hexed.upper().encode(), base64.b64encode(key), key]
    forms += [base64.b64encode(key).rstrip(b"=")]
skip = set(sys.argv[1].split(",")) if sys.argv[1] else set()
newer_than = float(sys.argv[2])
roots = sys.argv[3:]
hits = []
scanned = 0
for root in roots:
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
            for index, form in enumerate(forms):
                if form and form in data:
                    hits.append("%s: key %d form %d" % (path, index // 5, index % 5))
print(scanned)
for hit in hits:
    print(hit)
'''


def scan_for_keys(run_in, keys: Iterable[bytes], roots: Sequence[str], skip: Sequence[str] = (),
                  newer_than: float = 0.0) -> Tuple[int, List[str]]:
    """Search files under ``roots`` (modified since ``newer_than``, a time stamp, when given) for any form
    of ``keys``; ``run_in(*cmd, input=...)`` runs the scanner where the files are. Returns (files scanned, hits)."""
    material = "\n".join(sorted({key.hex() for key in keys if key}))
    res = run_in(PYTHON, "-c", SCAN_SCRIPT, ",".join(skip), str(newer_than), *roots, input=material)
    lines = res.stdout.strip().splitlines()
    return int(lines[0]), lines[1:]


def text_leaks(text: str, keys: Iterable[bytes]) -> List[str]:
    """Forms of ``keys`` found in ``text`` (only their first 6 characters are given)."""
    import base64  # pylint: disable=import-outside-toplevel
    found = []
    for key in keys:
        if not key:
            continue
        hexed = key.hex()
        for form in (hexed, hexed.upper(), base64.b64encode(key).decode(), key.decode("latin-1")):
            if form in text:
                found.append(form[:6] + "...")
    return found


def wait_until(predicate, timeout: float = 10.0, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
