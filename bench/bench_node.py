#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmarks of one node (issue 7: P1, P2, growth, P4), run as root on a kernel with ESP.

Workload: the local node 10.99.0.1 with N peers (one IPv4 tunnel address each, per-pair keys,
one AEAD key in a keys file, SSH bypass): 2N SAs, 2N + 4 policies. Every measurement gets a
fresh, empty network namespace (``unshare(CLONE_NEWNET)`` of this process; the namespace
left behind is flushed first, unmeasured, so that its clean-up cannot steal the next run's CPU).
Within one round every method runs once, side by side; medians over the rounds are reported.

  ours      the module's logic in this process: ``_modules.endpoint.reconcile_node`` with a
            stand-in for AnsibleModule (keys file read, build_desired, no_log values, dump,
            reconcile, apply through XfrmKernel, the result's rendered lines) from empty
  noop      the same call again on the converged namespace (P2)
  dump_floor  ip xfrm state + ip xfrm policy on the converged namespace (the floor of a no-op)
  ip_batch  ``ip -batch`` of the same objects, in the planner's order (the same objects: after
            the first round the namespace is dumped and reconciled against the desired set, and
            must give no operation)
  ip_each   one ``ip xfrm ...`` process per object: SAMPLE objects spread over the list are run,
            the time is scaled to all objects (process start dominates; it does not depend on
            the table size)
  P4        ``plugins/modules/xfrm_endpoint.py ARGS.json`` as a process of its own (how Ansible
            runs a module, minus the AnsiballZ zip), in a fresh namespace: wall time and peak
            RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a wrapper that runs only it), fresh
            and no-op
  imports   seconds a fresh interpreter spends importing the endpoint module's logic, and the
            same with ``import pyroute2`` added (the module path does not import it)

Writes JSON (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
sys.path.insert(0, COLLECTIONS)

# pylint: disable=wrong-import-position
from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import XfrmKernel
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import load_keys_file
from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import build_desired
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import DEFAULT_REQID
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.reconcile import reconcile
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    DIR_NAMES, MODE_NAMES, XfrmPolicy, XfrmState,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import FakeModule

LOCAL_ADDRESS = "10.99.0.1"
MODULE = os.path.join(ROOT, "plugins", "modules", "xfrm_endpoint.py")
PROTO_NAMES = {6: "tcp", 17: "udp", 50: "esp", 132: "sctp"}
CLONE_NEWNET = 0x40000000
EACH_ROUNDS = 3  # ip per object: the slowest method, and the steadiest


def peer_address(index: int) -> str:
    return "10.%d.%d.%d" % (100 + index // 62500, (index // 250) % 250, index % 250 + 1)


def module_params(peers: int, keys_file: str) -> Dict[str, Any]:
    """Module arguments after AnsibleModule's validation (defaults filled in)."""
    return dict(
        keys_file=keys_file,
        local=dict(addresses=[LOCAL_ADDRESS], subnets=None),
        peers=[dict(name="peer%d" % index, addresses=[peer_address(index)], subnets=None,
                    boot_id=str(uuid.UUID(int=index + 1, version=4)), inbound_level=None, outbound="enable")
               for index in range(peers)],
        per_pair_keys=True, out_spi=None, outbound=True, phase="all", inbound_level="required",
        bypass=[dict(proto="tcp", port=22)], marks="none", reqid=DEFAULT_REQID, state="present", purge=True,
    )


_IN_OWN_NETNS: List[bool] = []


def without_none(value: Any) -> Any:
    """Module arguments as a playbook passes them (unset options left out)."""
    if isinstance(value, dict):
        return {key: without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_none(item) for item in value]
    return value


def fresh_netns() -> None:
    """Move this process into a new, empty network namespace. A namespace this benchmark
    created before is flushed first; the one it started in is never touched."""
    if _IN_OWN_NETNS:
        subprocess.run(["ip", "xfrm", "policy", "flush"], check=False)
        subprocess.run(["ip", "xfrm", "state", "flush"], check=False)
    os.unshare(CLONE_NEWNET)  # pylint: disable=no-member
    _IN_OWN_NETNS.append(True)


def ip_words(obj: Any) -> List[str]:
    """``ip xfrm ... add`` arguments for a planner object (the forms the planner builds)."""
    if isinstance(obj, XfrmState):
        (aead,) = obj.algorithms()
        words = ["xfrm", "state", "add", "src", obj.src, "dst", obj.dst, "proto", PROTO_NAMES[obj.proto],
                 "spi", "0x%08x" % obj.spi, "reqid", str(obj.reqid), "mode", MODE_NAMES[obj.mode],
                 "replay-window", str(obj.replay_window)]
        if obj.esn:
            words += ["flag", "esn"]
        words += ["aead", aead.name, "0x" + aead.key.hex(), str(aead.bits)]
        return words
    assert isinstance(obj, XfrmPolicy)
    selector = obj.selector
    words = ["xfrm", "policy", "add", "src", selector.src, "dst", selector.dst]
    if selector.proto:
        words += ["proto", PROTO_NAMES[selector.proto]]
    if selector.sport_mask:
        words += ["sport", str(selector.sport)]
    if selector.dport_mask:
        words += ["dport", str(selector.dport)]
    words += ["dir", DIR_NAMES[obj.dir], "priority", str(obj.priority)]
    for template in obj.templates:
        words += ["tmpl", "src", template.src, "dst", template.dst, "proto", PROTO_NAMES[template.proto],
                  "spi", "0x%08x" % template.spi, "reqid", str(template.reqid), "mode", MODE_NAMES[template.mode],
                  "level", "use" if template.optional else "required"]
    return words


def batch_line(words: Sequence[str]) -> str:
    return " ".join("'%s'" % word if "(" in word else word for word in words) + "\n"


class Workload:
    """One peer count: parameters, keys file, the objects in the planner's order."""

    def __init__(self, peers: int, directory: str) -> None:
        self.peers = peers
        self.keys_file = os.path.join(directory, "keys")
        with open(self.keys_file, "w") as keys:
            keys.write("3+ rfc4106(gcm(aes)) 0x%s 128\n" % os.urandom(20).hex())
        self.boot_id = str(uuid.uuid4())
        self.params = module_params(peers, self.keys_file)
        desired = self.desired()
        self.plan = reconcile(desired, [], [])
        self.objects = [operation.entry for operation in self.plan.operations]
        self.states = len(desired.states)
        self.policies = len(desired.policies)
        self.batch = os.path.join(directory, "objects.batch")
        with open(self.batch, "w") as batch:
            batch.writelines(batch_line(ip_words(obj)) for obj in self.objects)
        self.args_file = os.path.join(directory, "args.json")
        with open(self.args_file, "w") as args:
            json.dump({"ANSIBLE_MODULE_ARGS": without_none(self.params)}, args)

    def desired(self) -> Any:
        return build_desired(endpoint.local_node(self.params, self.boot_id), endpoint.peers_of(self.params),
                             load_keys_file(self.keys_file), endpoint.plan_options(self.params))

    def ours(self, changes: bool) -> float:
        module = FakeModule()
        started = time.perf_counter()
        result = endpoint.reconcile_node(module, self.params, self.boot_id)
        elapsed = time.perf_counter() - started
        if result["changed"] != changes:
            raise SystemExit("expected changed=%s, got %r" % (changes, result))
        return elapsed

    def breakdown(self) -> Dict[str, float]:
        """The steps of ``reconcile_node``, timed one by one (informative)."""
        times: Dict[str, float] = {}
        started = time.perf_counter()
        desired = self.desired()
        times["build"] = time.perf_counter() - started
        with XfrmKernel() as kernel:
            mark = time.perf_counter()
            states, policies = kernel.dump_states(), kernel.dump_policies()
            times["dump"] = time.perf_counter() - mark
            mark = time.perf_counter()
            plan = reconcile(desired, states, policies)
            times["reconcile"] = time.perf_counter() - mark
            mark = time.perf_counter()
            outcome = kernel.apply(plan.operations)
            times["apply"] = time.perf_counter() - mark
            assert outcome.ok, outcome.error
        mark = time.perf_counter()
        endpoint._result(FakeModule(), plan, self.boot_id, ())  # pylint: disable=protected-access
        times["result"] = time.perf_counter() - mark
        return times

    def converged(self) -> None:
        """Assert the namespace holds exactly the desired set (no operation left)."""
        with XfrmKernel() as kernel:
            plan = reconcile(self.desired(), kernel.dump_states(), kernel.dump_policies())
        if plan.operations:
            raise SystemExit("not converged: %d operations left, first: %r" % (len(plan.operations), plan.operations[0]))

    def dump_floor(self) -> float:
        """``ip xfrm state`` then ``ip xfrm policy`` on the converged namespace, output
        discarded: what any no-op must at least do, read both tables."""
        started = time.perf_counter()
        for table in ("state", "policy"):
            subprocess.run(["ip", "xfrm", table, "list"], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    def ip_batch(self) -> float:
        started = time.perf_counter()
        subprocess.run(["ip", "-batch", self.batch], check=True)
        return time.perf_counter() - started

    def ip_each(self, sample: int) -> float:
        step = max(1, len(self.objects) // sample)
        chosen = self.objects[::step][:sample]
        started = time.perf_counter()
        for obj in chosen:
            subprocess.run(["ip"] + ip_words(obj), check=True)
        return (time.perf_counter() - started) * len(self.objects) / len(chosen)

    def module_process(self) -> Dict[str, float]:
        """Run the module file as a process: wall seconds and peak RSS (MB)."""
        wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                   "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE); t = time.perf_counter() - t; "
                   "sys.stdout.write('%f %d\\n' % (t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
                   "sys.stderr.buffer.write(r.stdout[-400:] if r.returncode else b''); sys.exit(r.returncode)")
        env = dict(os.environ, PYTHONPATH=COLLECTIONS)
        out = subprocess.run([sys.executable, "-c", wrapper, sys.executable, MODULE, self.args_file],
                             check=True, stdout=subprocess.PIPE, env=env, universal_newlines=True).stdout
        seconds, maxrss_kb = out.split()
        return {"seconds": float(seconds), "rss_mb": int(maxrss_kb) / 1024.0}


IMPORT_CODE = ("import time; started = time.perf_counter(); {extra}"
               "from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint; "
               "import sys; print('%f %d' % (time.perf_counter() - started, 'pyroute2' in sys.modules))")


def module_imports(runs: int) -> Dict[str, Any]:
    """Seconds a module process spends importing the endpoint module's logic (Ansible's
    module_utils included), as it is and with ``import pyroute2`` added (what every module
    execution paid when the socket layer imported it); min of ``runs`` fresh interpreters."""
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    result: Dict[str, Any] = {}
    for name, extra in (("endpoint", ""), ("endpoint_and_pyroute2", "import pyroute2; ")):
        samples = []
        for _index in range(runs):
            out = subprocess.run([sys.executable, "-c", IMPORT_CODE.format(extra=extra)], check=True,
                                 stdout=subprocess.PIPE, env=env, universal_newlines=True).stdout.split()
            samples.append(float(out[0]))
            result[name + "_imports_pyroute2"] = out[1] == "1"
        result[name + "_seconds"] = round(min(samples), 4)
    return result


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rounds(count: int, measure: Callable[[], Dict[str, float]]) -> Dict[str, Dict[str, Any]]:
    samples: Dict[str, List[float]] = {}
    for _index in range(count):
        for key, value in measure().items():
            samples.setdefault(key, []).append(value)
    return {key: {"median": median(values), "runs": [round(v, 5) for v in values]} for key, values in samples.items()}


def bench_size(peers: int, runs: int, sample: int, with_each: bool) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-node-") as directory:
        work = Workload(peers, directory)
        checked: List[bool] = []
        done: List[bool] = []

        def one_round() -> Dict[str, float]:
            times: Dict[str, float] = {}
            fresh_netns()
            times["ours"] = work.ours(True)
            if not checked:
                work.converged()
            times["noop"] = work.ours(False)
            times["dump_floor"] = work.dump_floor()
            fresh_netns()
            times["ip_batch"] = work.ip_batch()
            if not checked:
                work.converged()  # ip -batch installed exactly the planner's objects
                checked.append(True)
            round_index = len(done)
            done.append(True)
            if with_each and 1 <= round_index <= EACH_ROUNDS:  # round 0 is the warm-up
                fresh_netns()
                times["ip_each"] = work.ip_each(sample)
            return times

        one_round()  # warm-up: imports, page cache, kernel slabs
        result: Dict[str, Any] = {"peers": peers, "states": work.states, "policies": work.policies,
                                  "objects": len(work.objects), "seconds": rounds(runs, one_round)}
        fresh_netns()
        result["breakdown"] = {key: round(value, 4) for key, value in work.breakdown().items()}
        return result


def bench_process(peers: int, runs: int) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-proc-") as directory:
        work = Workload(peers, directory)

        def one_round() -> Dict[str, float]:
            fresh_netns()
            fresh = work.module_process()
            noop = work.module_process()
            return {"fresh_seconds": fresh["seconds"], "fresh_rss_mb": fresh["rss_mb"],
                    "noop_seconds": noop["seconds"], "noop_rss_mb": noop["rss_mb"]}

        one_round()
        return {"peers": peers, "seconds": rounds(runs, one_round)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="100,300,1000,3000", help="peer counts (growth series)")
    parser.add_argument("--peers", type=int, default=1000, help="the peer count of P1/P2/P4 (default 1000)")
    parser.add_argument("--runs", type=int, default=5, help="measured rounds at --peers (after a warm-up)")
    parser.add_argument("--growth-runs", type=int, default=3, help="measured rounds at the other sizes")
    parser.add_argument("--sample", type=int, default=200, help="objects run as one ip process each")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, CAP_NET_ADMIN)")

    started = time.time()
    sizes = sorted(set(int(size) for size in args.sizes.split(",")) | {args.peers})
    growth = []
    for peers in sizes:
        at_main = peers == args.peers
        entry = bench_size(peers, args.runs if at_main else args.growth_runs, args.sample, with_each=at_main)
        growth.append(entry)
        secs = entry["seconds"]
        print("peers %5d: %5d objects  ours %.3f s  noop %.3f s (P2 %.3f; ip xfrm dumps %.3f s)  ip -batch %.3f s%s" % (
            peers, entry["objects"], secs["ours"]["median"], secs["noop"]["median"],
            secs["noop"]["median"] / secs["ours"]["median"], secs["dump_floor"]["median"], secs["ip_batch"]["median"],
            "  ip per object %.1f s" % secs["ip_each"]["median"] if "ip_each" in secs else ""), flush=True)
    process = bench_process(args.peers, max(1, args.runs // 2))
    print("module process at %d peers: fresh %.2f s / %.1f MB, no-op %.2f s / %.1f MB" % (
        args.peers, process["seconds"]["fresh_seconds"]["median"], process["seconds"]["fresh_rss_mb"]["median"],
        process["seconds"]["noop_seconds"]["median"], process["seconds"]["noop_rss_mb"]["median"]), flush=True)

    imports = module_imports(max(3, args.runs))
    print("module imports: endpoint logic %.3f s (pyroute2 imported: %s), with import pyroute2 %.3f s" % (
        imports["endpoint_seconds"], imports["endpoint_imports_pyroute2"], imports["endpoint_and_pyroute2_seconds"]),
        flush=True)

    report = {
        "host": {"kernel": platform.release(), "python": platform.python_version(), "machine": platform.machine(),
                 "cpus": os.cpu_count()},
        "peers": args.peers,
        "runs": args.runs,
        "growth_runs": args.growth_runs,
        "ip_each_sample": args.sample,
        "growth": growth,
        "process": process,
        "imports": imports,
        "wall_seconds": round(time.time() - started, 1),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as out:
        json.dump(report, out, indent=1, sort_keys=True)
        out.write("\n")
    print("wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
