#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet benchmark (issue 7, P3), run inside a lab (``lab/run --nodes N``).

For each mesh size S (the first S lab nodes as group ``ipsec_mesh``), on empty nodes:

  ping      ``ansible ipsec_mesh -m ping``: one module round over the same hosts (the unit)
  fresh     ``ansible-playbook playbooks/mesh.yml`` from empty (IPv4, per-pair keys, one key)
  noop      the same playbook again (nothing to change)
  naive     ``bench/naive_mesh.yml``: the same SAs and policies, one ``ip xfrm`` command per
            object (fresh, and re-run), on the nodes rebooted (``lab-reboot``: empty tables,
            new boot ids)
  check     at one size, the naive result is checked to equal the mesh's: ``mesh.yml --check``
            must plan no change in any endpoint task

The ping round is run before and after the mesh runs; its median is the unit. Every playbook
run counts, per host, the tasks that ran and the module executions they took (a loop item
is one) with the callback ``bench_tally``. Same Ansible settings for every run (the
inventory's pipelining; ``ANSIBLE_FORKS`` as set by the caller).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MESH = os.path.join(ROOT, "playbooks", "mesh.yml")
NAIVE = os.path.join(HERE, "naive_mesh.yml")


def keys_line() -> str:
    return "3+ rfc4106(gcm(aes)) 0x%s 128" % os.urandom(20).hex()


class Fleet:
    def __init__(self, size: int, directory: str, log_dir: str, keys: str) -> None:
        self.size = size
        self.nodes = ["node%d" % index for index in range(1, size + 1)]
        self.directory = directory
        self.log_dir = log_dir
        self.keys = keys
        with open(os.environ["LAB_INVENTORY"]) as stream:
            inventory = yaml.safe_load(stream)
        hosts = inventory["all"]["children"]["ipsec_mesh"]["hosts"]
        inventory["all"]["children"]["ipsec_mesh"]["hosts"] = {name: hosts[name] for name in self.nodes}
        self.inventory = os.path.join(directory, "inventory-%d.yml" % size)
        with open(self.inventory, "w") as stream:
            yaml.safe_dump(inventory, stream)
        self.extra = os.path.join(directory, "extra.yml")
        with open(self.extra, "w") as stream:
            yaml.safe_dump({"ipsec_keys_content": keys, "naive_keys_content": keys}, stream)
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
                        ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
                        ANSIBLE_CALLBACKS_ENABLED="bench_tally", ANSIBLE_HOST_KEY_CHECKING="False",
                        ANSIBLE_RETRY_FILES_ENABLED="False", ANSIBLE_NOCOLOR="1")

    def run(self, label: str, argv: List[str]) -> Dict[str, Any]:
        tally = os.path.join(self.directory, "tally-%s-%d.json" % (label, self.size))
        if os.path.exists(tally):
            os.unlink(tally)
        log = os.path.join(self.log_dir, "%s-%d.log" % (label, self.size))
        started = time.perf_counter()
        with open(log, "w") as out:
            code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=dict(self.env, BENCH_TALLY_OUT=tally),
                                  cwd=ROOT, check=False).returncode
        seconds = time.perf_counter() - started
        if code != 0:
            with open(log) as stream:
                tail = stream.read()[-3000:]
            raise SystemExit("%s at %d nodes failed (exit %d), log %s:\n%s" % (label, self.size, code, log, tail))
        result: Dict[str, Any] = {"seconds": round(seconds, 3)}
        if os.path.exists(tally):
            with open(tally) as stream:
                data = json.load(stream)
            hosts = data["hosts"]
            result["tasks_per_host"] = max(entry["tasks"] for entry in hosts.values())
            result["executions_per_host"] = max(entry["executions"] for entry in hosts.values())
            result["changed_per_host"] = max(entry["changed"] for entry in hosts.values())
            result["tasks"] = [{"name": task["name"], "seconds": task["seconds"], "changed": task["changed"]}
                               for task in data["tasks"]]
        print("  %-12s %3d nodes %8.1f s%s" % (label, self.size, seconds, "  tasks/host %d, executions/host %d" % (
            result["tasks_per_host"], result["executions_per_host"]) if "tasks_per_host" in result else ""), flush=True)
        return result

    def ping(self) -> Dict[str, Any]:
        return self.run("ping", ["ansible", "-i", self.inventory, "ipsec_mesh", "-m", "ansible.builtin.ping"])

    def playbook(self, label: str, playbook: str, *extra: str) -> Dict[str, Any]:
        return self.run(label, ["ansible-playbook", "-i", self.inventory, "-e", "@" + self.extra, playbook] + list(extra))

    def reboot(self) -> None:
        subprocess.run(["lab-reboot"] + self.nodes, check=True, stdout=subprocess.DEVNULL)


def bench_size(size: int, args: argparse.Namespace, directory: str) -> Dict[str, Any]:
    fleet = Fleet(size, directory, args.log_dir, keys_line())
    fleet.reboot()
    pings = [fleet.ping(), fleet.ping()]
    fresh = fleet.playbook("mesh-fresh", MESH)
    noop = fleet.playbook("mesh-noop", MESH)
    if noop.get("changed_per_host"):
        print("WARNING: the second mesh.yml run changed something at %d nodes" % size, flush=True)
    pings.append(fleet.ping())
    unit = statistics.median(entry["seconds"] for entry in pings)
    result: Dict[str, Any] = {
        "nodes": size, "ping": {"median": unit, "runs": [entry["seconds"] for entry in pings]},
        "mesh_fresh": fresh, "mesh_noop": noop,
        "fresh_vs_ping_round": fresh["seconds"] / unit, "noop_vs_ping_round": noop["seconds"] / unit,
    }
    if size <= args.naive_max:
        fleet.reboot()
        naive = fleet.playbook("naive-fresh", NAIVE)
        result["naive_fresh"] = naive
        result["naive_fresh_vs_ping_round"] = naive["seconds"] / unit
        if size <= args.naive_noop_max:
            naive_noop = fleet.playbook("naive-noop", NAIVE)
            result["naive_noop"] = naive_noop
            result["naive_noop_vs_ping_round"] = naive_noop["seconds"] / unit
        if size == args.check_at:
            fleet.run("keys", ["ansible", "-i", fleet.inventory, "ipsec_mesh", "-m", "netsec.ipsec.xfrm_keys",
                               "-a", "path=/etc/ipsec/keys content='%s'" % fleet.keys])
            try:
                check = fleet.playbook("check-naive", MESH, "--check")
            except SystemExit as error:
                print("WARNING: %s" % error, flush=True)
                check = {"tasks": [{"name": "Reconcile (check failed)", "changed": 1}]}
            changed = [task for task in check.get("tasks", []) if "Reconcile" in task["name"] and task["changed"]]
            if changed:
                print("WARNING: naive_mesh.yml built other objects than mesh.yml: %r" % changed, flush=True)
            result["naive_equals_mesh"] = not changed
    fleet.reboot()
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="4,8,16", help="mesh sizes (each <= the lab's nodes)")
    parser.add_argument("--naive-max", type=int, default=8, help="run the naive playbook up to this size")
    parser.add_argument("--naive-noop-max", type=int, default=4, help="re-run the naive playbook up to this size")
    parser.add_argument("--check-at", type=int, default=4, help="size at which naive == mesh is checked")
    parser.add_argument("--out", required=True)
    parser.add_argument("--log-dir", default=None, help="playbook logs (default: next to --out)")
    args = parser.parse_args(argv)
    args.log_dir = args.log_dir or os.path.join(os.path.dirname(os.path.abspath(args.out)), "fleet-logs")
    os.makedirs(args.log_dir, exist_ok=True)
    sizes = [int(size) for size in args.sizes.split(",")]
    if max(sizes) > int(os.environ.get("LAB_NODES", "0")):
        raise SystemExit("needs a lab with at least %d nodes (LAB_NODES=%s)" % (max(sizes), os.environ.get("LAB_NODES")))
    started = time.time()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as directory:
        for size in sizes:
            entry = bench_size(size, args, directory)
            results.append(entry)
            print("%d nodes: ping round %.1f s, mesh fresh %.2fx, no-op %.2fx%s" % (
                size, entry["ping"]["median"], entry["fresh_vs_ping_round"], entry["noop_vs_ping_round"],
                ", naive fresh %.2fx" % entry["naive_fresh_vs_ping_round"] if "naive_fresh" in entry else ""), flush=True)
    report = {"fleet": results, "forks": os.environ.get("ANSIBLE_FORKS", "5 (default)"),
              "wall_seconds": round(time.time() - started, 1)}
    with open(args.out, "w") as out:
        json.dump(report, out, indent=1, sort_keys=True)
        out.write("\n")
    print("wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
