#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: programming XFRM with the kernel adapter versus iproute2.

Workload: COUNT tunnel-mode ESP SAs (AEAD rfc4106(gcm(aes)), 20-byte key, ICV 128) and
COUNT OUT policies (one tunnel template each), one per peer, every peer with its own
address, installed into an empty network namespace. Methods, each run in a fresh
namespace (``ip netns add``), one warm-up run then RUNS measured runs, medians reported:

  adapter        XfrmKernel(netns).apply(operations), in process: socket open + encode +
                 send; the operations are built beforehand (the planner's job)
  adapter_proc   the same in a new Python process, including interpreter start-up and
                 imports (what an Ansible module run pays on top)
  ip_batch       ``ip -n NS -batch FILE`` with the same objects
  ip_each        one ``ip -n NS xfrm ...`` process per object: SAMPLE objects are run and the
                 time is extrapolated linearly to all objects (process start dominates and
                 does not depend on the table size)
  dump           XfrmKernel.dump_states() + dump_policies() of the populated namespace,
                 decoded into model objects

On a kernel without ESP (the development host) NEWSA fails, so only policies are measured
(``"sas": false`` in the JSON). Results: a table on stdout, JSON to --out.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import XfrmKernel
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ALGO_AEAD, DIR_OUT, MODE_TUNNEL, Algorithm, Operation, Template, Verb, XfrmPolicy, XfrmState, selector_between,
)

LOCAL = "192.168.0.1"
REQID = 1
SPI_BASE = 0x100
AEAD_NAME = "rfc4106(gcm(aes))"
AEAD_ICV_BITS = 128
NETNS_PREFIX = "nsec-bench-"
DUMP_TARGET_SECONDS = 0.1
RATIO_TARGET = 1.5


def peer_address(index: int) -> str:
    return "10.%d.%d.%d" % (index // 62500 + 1, (index // 250) % 250, index % 250 + 1)


def aead_key(index: int) -> bytes:
    # Deterministic, distinct per SA; a benchmark needs no secrecy.
    return (index.to_bytes(4, "big") * 5)[:20]


def build_objects(count: int, with_sas: bool) -> List[Operation]:
    operations: List[Operation] = []
    for index in range(count):
        peer = peer_address(index)
        if with_sas:
            operations.append(
                Operation(
                    Verb.ADD,
                    XfrmState(
                        src=LOCAL,
                        dst=peer,
                        spi=SPI_BASE + index,
                        reqid=REQID,
                        mode=MODE_TUNNEL,
                        aead=Algorithm(ALGO_AEAD, AEAD_NAME, aead_key(index), AEAD_ICV_BITS),
                    ),
                )
            )
        operations.append(
            Operation(
                Verb.ADD,
                XfrmPolicy(
                    selector=selector_between("0.0.0.0/0", peer + "/32"),
                    dir=DIR_OUT,
                    priority=1000,
                    templates=(Template(src=LOCAL, dst=peer, reqid=REQID, mode=MODE_TUNNEL),),
                ),
            )
        )
    return operations


def ip_command(operation: Operation) -> List[str]:
    """The iproute2 arguments (after ``ip``) installing the same object."""
    obj = operation.entry
    if isinstance(obj, XfrmState):
        aead = obj.aead
        assert aead is not None
        return [
            "xfrm", "state", "add", "src", obj.src, "dst", obj.dst, "proto", "esp", "spi", "0x%x" % obj.spi,
            "reqid", str(obj.reqid), "mode", "tunnel", "aead", aead.name, "0x" + aead.key.hex(), str(aead.bits),
        ]
    assert isinstance(obj, XfrmPolicy)
    template = obj.templates[0]
    return [
        "xfrm", "policy", "add", "src", obj.selector.src, "dst", obj.selector.dst, "dir", "out",
        "priority", str(obj.priority), "tmpl", "src", template.src, "dst", template.dst, "proto", "esp",
        "reqid", str(template.reqid), "mode", "tunnel",
    ]


def batch_line(operation: Operation) -> str:
    return " ".join("'%s'" % word if "(" in word else word for word in ip_command(operation)) + "\n"


class Netns:
    """A fresh network namespace, deleted on exit."""

    def __init__(self) -> None:
        self.name = NETNS_PREFIX + secrets.token_hex(4)

    def __enter__(self) -> str:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        return self.name

    def __exit__(self, *exc_info: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def kernel_has_esp() -> bool:
    probe = build_objects(1, with_sas=True)[:1]
    with Netns() as netns, XfrmKernel(netns) as kernel:
        result = kernel.apply(probe)
    if result.error is None:
        return True
    if result.error.errno in (errno.EPROTONOSUPPORT, errno.ENOSYS):
        return False
    raise SystemExit("probe SA failed unexpectedly: %s" % result.error.message)


def time_adapter(operations: Sequence[Operation]) -> Dict[str, float]:
    with Netns() as netns:
        started = time.perf_counter()
        with XfrmKernel(netns) as kernel:
            opened = time.perf_counter()
            result = kernel.apply(operations)
            applied = time.perf_counter()
            if not result.ok:
                raise SystemExit("adapter apply failed: %s" % result.error)
            states = kernel.dump_states()
            policies = kernel.dump_policies()
            dumped = time.perf_counter()
        expected = len(operations)
        if len(states) + len(policies) != expected:
            raise SystemExit("dump returned %d objects, expected %d" % (len(states) + len(policies), expected))
    return {"adapter": applied - started, "adapter_open": opened - started, "dump": dumped - applied}


CHILD_CODE = """
import sys, time
started = time.perf_counter()
sys.path.insert(0, {collections!r})
sys.path.insert(0, {bench_dir!r})
import bench_netlink as b
operations = b.build_objects({count}, {with_sas})
with b.XfrmKernel({netns!r}) as kernel:
    result = kernel.apply(operations)
assert result.ok, result.error
"""


def time_adapter_process(count: int, with_sas: bool) -> float:
    with Netns() as netns:
        code = CHILD_CODE.format(
            collections=os.path.join(ROOT, "build", "collections"),
            bench_dir=os.path.dirname(os.path.abspath(__file__)),
            count=count,
            with_sas=with_sas,
            netns=netns,
        )
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started


def time_ip_batch(operations: Sequence[Operation]) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as batch:
        batch.writelines(batch_line(op) for op in operations)
    try:
        with Netns() as netns:
            started = time.perf_counter()
            subprocess.run(["ip", "-n", netns, "-batch", batch.name], check=True)
            return time.perf_counter() - started
    finally:
        os.unlink(batch.name)


def time_ip_each(operations: Sequence[Operation], sample: int) -> Dict[str, float]:
    step = max(1, len(operations) // sample)
    chosen = list(operations[::step])[:sample]
    with Netns() as netns:
        started = time.perf_counter()
        for operation in chosen:
            subprocess.run(["ip", "-n", netns] + ip_command(operation), check=True)
        elapsed = time.perf_counter() - started
    return {"ip_each": elapsed * len(operations) / len(chosen), "ip_each_sampled": float(len(chosen))}


def median_of(runs: int, measure: Callable[[], Dict[str, float]]) -> Dict[str, object]:
    measure()  # warm-up: page cache, module loading, pyroute2 helper paths
    samples: Dict[str, List[float]] = {}
    for _run in range(runs):
        for key, value in measure().items():
            samples.setdefault(key, []).append(value)
    return {key: {"median": statistics.median(values), "runs": values} for key, values in samples.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--count", type=int, default=2000, help="SAs and policies each (default 2000)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs after one warm-up (default 5)")
    parser.add_argument("--sample", type=int, default=200, help="objects run as one ip process each (default 200)")
    parser.add_argument("--policies-only", action="store_true", help="skip SAs even if the kernel has ESP")
    parser.add_argument("--skip-process", action="store_true", help="skip the adapter_proc measurement")
    parser.add_argument("--out", default=os.path.join(ROOT, "build", "bench", "netlink.json"))
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, CAP_NET_ADMIN)")
    with_sas = not args.policies_only and kernel_has_esp()
    operations = build_objects(args.count, with_sas)

    results: Dict[str, object] = {}
    results.update(median_of(args.runs, lambda: time_adapter(operations)))
    if not args.skip_process:
        results.update(median_of(args.runs, lambda: {"adapter_proc": time_adapter_process(args.count, with_sas)}))
    results.update(median_of(args.runs, lambda: {"ip_batch": time_ip_batch(operations)}))
    results.update(median_of(max(1, args.runs // 2), lambda: time_ip_each(operations, args.sample)))

    def med(key: str) -> float:
        return float(results[key]["median"])  # type: ignore[index]

    ratios = {
        "adapter_vs_ip_batch": med("adapter") / med("ip_batch"),
        "adapter_vs_ip_each": med("adapter") / med("ip_each"),
    }
    if "adapter_proc" in results:
        ratios["adapter_proc_vs_ip_batch"] = med("adapter_proc") / med("ip_batch")
    report = {
        "workload": {
            "sas": with_sas,
            "states": args.count if with_sas else 0,
            "policies": args.count,
            "objects": len(operations),
            "aead": AEAD_NAME,
            "key_bytes": 20,
            "mode": "tunnel",
            "runs": args.runs,
            "ip_each_sample": args.sample,
        },
        "host": {"kernel": platform.release(), "python": platform.python_version(), "machine": platform.machine()},
        "seconds": results,
        "ratios": ratios,
        "targets": {
            "adapter_vs_ip_batch_max": RATIO_TARGET,
            "dump_seconds_max": DUMP_TARGET_SECONDS,
            "adapter_vs_ip_batch_met": ratios["adapter_vs_ip_batch"] <= RATIO_TARGET,
            "dump_met": med("dump") <= DUMP_TARGET_SECONDS,
        },
    }

    print("XFRM apply benchmark: %d objects (%s), medians of %d runs, kernel %s" % (
        len(operations), "SAs + policies" if with_sas else "policies only: no ESP in this kernel",
        args.runs, platform.release()))
    print("%-14s %10s %10s" % ("method", "seconds", "vs ip -batch"))
    for key in ("adapter", "adapter_proc", "ip_batch", "ip_each", "dump", "adapter_open"):
        if key in results:
            print("%-14s %10.4f %10.2fx" % (key, med(key), med(key) / med("ip_batch")))
    print("adapter / ip -batch = %.2f (target <= %.1f); dump+decode of %d objects = %.4f s (target <= %.1f s)" % (
        ratios["adapter_vs_ip_batch"], RATIO_TARGET, len(operations), med("dump"), DUMP_TARGET_SECONDS))
    destinations = [args.out]
    lab_out = os.environ.get("LAB_OUT")
    if lab_out:
        # Inside the lab the repository is copy-on-write: only LAB_OUT reaches the host.
        destinations.append(os.path.join(lab_out, "netlink.json"))
    for destination in destinations:
        os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
        with open(destination, "w") as out:
            json.dump(report, out, indent=2, sort_keys=True)
            out.write("\n")
        print("wrote %s" % destination)
    return 0


if __name__ == "__main__":
    sys.exit(main())
