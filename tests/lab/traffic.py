# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic between lab nodes while a change runs, and what it lost.

- ``Traffic``: safety_traffic.py (UDP, sequence numbers) in every given node, towards every
  other given node; a node rebooted mid-run gets a new generator with ``restart``; ``stop``
  gives per-direction sent / received / lost, incarnation by incarnation, and with a capture the
  ESP and plaintext packets of each direction over the whole window (``capture``).
- ``Pings``: ping from nodes to addresses in the background (ICMP, for the tests that count
  echo replies).
- ``under_traffic``: the block the tests repeat: counters, capture and traffic started, the
  change run (the ``with`` body), traffic and capture stopped, figures collected.

Not a test file: pytest does not collect it.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from harness import PYTHON, Capture, Run, WindowCapture, stat_increase, udp_stats, xfrm_stat

GENERATOR = Path(__file__).resolve().parent / "safety_traffic.py"
KILLED = -signal.SIGKILL          # how lab-reboot ends what runs in a node (cgroup.kill)


class _Generator:
    """One incarnation of safety_traffic.py in one node; a thread reads what it prints."""

    def __init__(self, node: str, me: str, peers: Sequence[str], rate: float, port: int, incarnation: int,
                 joined: bool) -> None:
        self.node = node
        self.incarnation = incarnation
        self.proc = subprocess.Popen(
            ["lab-exec", node, "--", PYTHON, str(GENERATOR), "--me", me, "--peers", ",".join(peers),
             "--rate", str(rate), "--port", str(port), "--incarnation", str(incarnation), *(["--joined"] if joined else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.progress: Optional[Dict[str, Any]] = None
        self.final: Optional[Dict[str, Any]] = None
        self.reader = threading.Thread(target=self._read, name="traffic-%s-%d" % (node, incarnation), daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                self.lines.put(line)
                continue
            report = json.loads(line)
            if report["final"]:
                self.final = report
                self.lines.put("final")
            else:
                self.progress = report
        self.lines.put(None)     # end of output: the generator is gone

    def expect(self, word: str, timeout: float = 60) -> bool:
        """Whether the generator printed ``word`` next (False: it ended first)."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("traffic in %s (incarnation %d) printed nothing for %d s"
                                 % (self.node, self.incarnation, timeout)) from None
        if line is None:
            return False
        assert line == word, "traffic in %s (incarnation %d): %r instead of %r" % (self.node, self.incarnation, line, word)
        return True

    def tell(self, word: Optional[str]) -> None:
        """Writes ``word`` to the generator's stdin (None: closes it); a dead generator hears nothing."""
        try:
            if word is None:
                self.proc.stdin.close()
            else:
                self.proc.stdin.write(word + "\n")
                self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def end(self, timeout: float = 60) -> Dict[str, Any]:
        """Waits for the generator to exit; its final report, or the last progress of a killed one."""
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=timeout)
        err = self.proc.stderr.read()
        if self.final is not None and self.proc.returncode == 0:
            return dict(self.final, ended="stopped")
        assert self.proc.returncode == KILLED, "traffic in %s (incarnation %d) exited %d: %s" % (
            self.node, self.incarnation, self.proc.returncode, err)
        last = self.progress or {"sent": {}, "send_errors": {}, "send_blocked": {}, "received": {}, "max_seq": {}}
        return dict(last, incarnation=self.incarnation, ended="killed")


def pair_figures(addresses: Dict[str, str], reports: Dict[str, List[Dict[str, Any]]]) -> Dict[str, Any]:
    """Per direction and in total, from every incarnation's report of every node.

    A -> B: each incarnation k of A sent sent_k (for a killed one, what its last progress report
    said, or more where B got a higher sequence number of it) and each incarnation j of B received
    received_by[j] of them; lost_k = sent_k - their sum. A killed receiver's count is its last progress
    report's: what it got after that, and what was sent to its node while it was down, is lost.
    The missing sequence numbers and the longest gap are those the final reports list."""
    pairs = {}
    for src, src_addr in addresses.items():
        for dst, dst_addr in addresses.items():
            if src == dst:
                continue
            by_incarnation = []
            for sender in reports[src]:
                inc = str(sender["incarnation"])
                received_by = {str(r["incarnation"]): r["received"].get(src_addr, {}).get(inc, 0) for r in reports[dst]}
                highest = max([r["max_seq"].get(src_addr, {}).get(inc, 0) for r in reports[dst]] + [0])
                sent = sender["sent"].get(dst_addr, 0)
                if sender["ended"] == "killed":
                    sent = max(sent, highest)
                received = sum(received_by.values())
                by_incarnation.append({"incarnation": sender["incarnation"], "ended": sender["ended"], "sent": sent,
                                       "received": received, "lost": sent - received, "received_by": received_by})
            finals = [r for r in reports[dst] if r["ended"] == "stopped"]
            sent = sum(i["sent"] for i in by_incarnation)
            received = sum(i["received"] for i in by_incarnation)
            pairs["%s->%s" % (src, dst)] = {
                "sent": sent, "received": received, "lost": sent - received,
                "send_errors": sum(s["send_errors"].get(dst_addr, 0) for s in reports[src]),
                "longest_gap": max([gap for r in finals for gap in r["longest_gap"].get(src_addr, {}).values()] + [0]),
                "missing": [entry for r in finals for inc in sorted(r["missing"].get(src_addr, {}), key=int)
                            for entry in r["missing"][src_addr][inc]],
                "incarnations": by_incarnation}
    seconds = max([r["seconds"] for node_reports in reports.values() for r in node_reports if r["ended"] == "stopped"]
                  + [0.0])
    return {"pairs": pairs, "sent": sum(p["sent"] for p in pairs.values()),
            "lost": sum(max(p["lost"], 0) for p in pairs.values()), "seconds": seconds,
            "min_rate_per_pair": round(min(p["sent"] for p in pairs.values()) / seconds, 1) if seconds else 0.0}


def _window_capture(capture: Union[bool, Path]) -> Optional[WindowCapture]:
    if not capture:
        return None
    return WindowCapture(None if capture is True else Path(capture))


class Traffic:
    """safety_traffic.py in every given node, to every other given node, ``rate`` datagrams/s per
    direction; with ``capture`` (True, or the pcap file to keep) the data segment is captured from
    before the first datagram to after the last."""

    def __init__(self, addresses: Dict[str, str], rate: float = 50.0, port: int = 47474,
                 capture: Union[bool, Path] = False) -> None:
        self.addresses = addresses
        self.rate = rate
        self.port = port
        self.window = _window_capture(capture)
        self.capture: Optional[Capture] = None
        self.ended: Dict[str, List[Dict[str, Any]]] = {node: [] for node in addresses}
        self.generators: Dict[str, _Generator] = {}
        try:
            for node in addresses:
                self.generators[node] = self._start(node, 1)
            # Every receiver is bound before anyone sends; every sender stops before anyone stops receiving.
            for generator in self.generators.values():
                assert generator.expect("ready"), "traffic in %s did not start: %s" % (
                    generator.node, generator.proc.stderr.read())
        except BaseException:
            self.abort()
            raise
        for generator in self.generators.values():
            generator.tell("go")

    def _start(self, node: str, incarnation: int) -> _Generator:
        peers = [address for other, address in self.addresses.items() if other != node]
        return _Generator(node, self.addresses[node], peers, self.rate, self.port, incarnation, joined=incarnation > 1)

    def restart(self, node: str) -> None:
        """A new generator in ``node`` (after lab-reboot killed the last one, which is killed
        here if it still runs); its datagrams are counted as the node's next incarnation."""
        old = self.generators[node]
        try:
            old.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            old.proc.kill()
        self.ended[node].append(old.end())
        new = self._start(node, old.incarnation + 1)
        assert new.expect("ready"), "traffic in %s did not restart: %s" % (node, new.proc.stderr.read())
        new.tell("go")
        self.generators[node] = new

    def stop(self) -> Dict[str, Any]:
        """Stops every sender, then every receiver; returns ``pair_figures`` (plus each
        direction's "wire" packets with a capture). A generator found dead fails the test (the
        one of a rebooted node is restarted first)."""
        for generator in self.generators.values():
            generator.tell("stop")
        for node, generator in self.generators.items():
            assert generator.expect("stopped"), "traffic in %s (incarnation %d) ended before it was stopped" % (
                node, generator.incarnation)
        time.sleep(0.5)
        for generator in self.generators.values():
            generator.tell(None)
        for node, generator in self.generators.items():
            self.ended[node].append(generator.end())
        figures = pair_figures(self.addresses, self.ended)
        if self.window:
            self.capture = self.window.stop()
            for pair, counts in figures["pairs"].items():
                src, dst = (self.addresses[node] for node in pair.split("->"))
                counts["wire"] = {"esp": self.capture.esp_packets(src=src, dst=dst),
                                  "plaintext": self.capture.plaintext_packets(src=src, dst=dst)}
        return figures

    def abort(self) -> None:
        """Ends every generator and the capture (a test failed while traffic ran)."""
        for generator in self.generators.values():
            if generator.proc.poll() is None:
                generator.proc.kill()
        if self.window:
            self.window.abort()


def losses_in_context(figures: Dict[str, Any], run: Run) -> Dict[str, List[str]]:
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


class Pings:
    """``ping -i INTERVAL`` from each node to each address, in the background (output to files in
    ``work``), until stop(): {(node, address): {"sent", "received", "seqs" (of the replies; not
    with ``quiet``)}}."""

    def __init__(self, pairs: Sequence[Tuple[str, str]], work: Path, interval: float = 0.05, quiet: bool = True,
                 deadline: int = 900) -> None:
        self.procs = {}
        self.logs = {}
        for node, address in pairs:
            self.logs[(node, address)] = log = Path(work) / ("ping-%s-%s.log" % (node, address))
            with open(log, "w", encoding="utf-8") as stream:
                self.procs[(node, address)] = subprocess.Popen(
                    ["lab-exec", node, "ping", "-n", *(["-q"] if quiet else []), "-i", str(interval), "-w", str(deadline),
                     address], stdout=stream, stderr=subprocess.STDOUT)

    def stop(self) -> Dict[Tuple[str, str], Dict[str, Any]]:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)       # ping prints its summary and exits
        found = {}
        for pair, proc in self.procs.items():
            proc.wait(timeout=60)
            text = self.logs[pair].read_text()
            stats = re.search(r"(\d+) packets transmitted, (\d+) received", text)
            assert stats, (pair, text[-2000:])
            found[pair] = {"sent": int(stats.group(1)), "received": int(stats.group(2)),
                           "seqs": {int(s) for s in re.findall(r"icmp_seq=(\d+)", text)}}
        return found

    def abort(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()


class Window:
    """What one stretch of traffic around a change measured (filled in when the ``with`` ends)."""

    def __init__(self) -> None:
        self.traffic: Optional[Traffic] = None         # for restart() in the body
        self.figures: Dict[str, Any] = {}              # Traffic.stop()
        self.pings: Dict[Tuple[str, str], Dict[str, Any]] = {}    # Pings.stop()
        self.capture: Optional[Capture] = None         # the whole window, when asked for
        self.xfrm_stat_increase: Dict[str, Dict[str, int]] = {}
        self.udp_stat_increase: Dict[str, Dict[str, int]] = {}
        self.seconds = 0.0


@contextmanager
def under_traffic(lab_exec, addresses: Optional[Dict[str, str]] = None, pings: Sequence[Tuple[str, str]] = (),
                  work: Optional[Path] = None, ping_interval: float = 0.05, quiet_pings: bool = True,
                  capture: Union[bool, Path] = False, lead: float = 1.5, tail: float = 0.0,
                  udp_counters: bool = False) -> Iterator[Window]:
    """Runs the ``with`` body (the change) under traffic:

    xfrm_stat (and with ``udp_counters`` the Udp counters) of the nodes of ``addresses``; with
    ``capture`` (True, or the pcap file to keep) a capture of the whole window; UDP between
    ``addresses`` ({node: address}; the body restarts the generator of a node it reboots with
    ``window.traffic.restart``) and ``pings`` ((node, address) pairs, logs in ``work``); ``lead``
    seconds of traffic before the body and ``tail`` after it; then everything stopped and
    measured in the Window.
    """
    window = Window()
    nodes = list(addresses or {})
    before = xfrm_stat(lab_exec, nodes)
    udp_before = udp_stats(lab_exec, nodes) if udp_counters else {}
    started = time.monotonic()
    # UDP traffic captures its own window (and counts its directions in it).
    recorder = _window_capture(capture) if capture and not addresses else None
    window.traffic = Traffic(addresses, capture=capture) if addresses else None
    pinging = Pings(pings, work, ping_interval, quiet_pings) if pings else None
    try:
        time.sleep(lead)
        yield window
        time.sleep(tail)
    except BaseException:
        for running in (pinging, window.traffic, recorder):
            if running:
                running.abort()
        raise
    if pinging:
        window.pings = pinging.stop()
    if window.traffic:
        window.figures = window.traffic.stop()
        window.capture = window.traffic.capture
    if recorder:
        window.capture = recorder.stop()
    window.seconds = time.monotonic() - started
    window.xfrm_stat_increase = stat_increase(before, xfrm_stat(lab_exec, nodes))
    if udp_counters:
        window.udp_stat_increase = stat_increase(udp_before, udp_stats(lab_exec, nodes))
