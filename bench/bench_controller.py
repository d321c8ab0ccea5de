#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller benchmark (issue 17, P5): the mesh role at 250, 1 000 and 5 000 members, no lab.

The nodes are simulated where Ansible would reach them: the connection plugin
``bench/connection_plugins/bench_stub.py`` receives each module's pipelined AnsiballZ payload,
reads the module and its arguments out of it, logs their size and answers what the real
module answers on a fresh node or on a converged one. Everything the controller does runs for
real: inventory, the role's argument validation, templating, filters, the arguments' JSON and
the payload, the action plugins (``copy`` with its stat, temporary directory and transfer),
reading every result back, the callbacks. Nothing runs on a node, so what is measured is the
controller alone.

For each size N, an inventory of N members (one IPv4 tunnel address each, as the lab's) and
one key, then in this order:

  baseline  ``bench/controller_baseline.yml``: one trivial ``set_fact`` per host
  baseline2 the same play with that task twice
  module    ``bench/controller_module_baseline.yml``: one trivial module run per host (ping)
  fresh     ``playbooks/mesh.yml`` on fresh nodes (keys, boot unit, the three phases)
  noop      ``playbooks/mesh.yml`` on converged nodes (must change nothing)
  baseline  again; the one-task figure is the mean of the two

The trivial baseline of a run is what Ansible costs for the same play with the same number of
tasks per host (K: tasks that ran or were skipped on the median host; meta tasks, which the
strategy evaluates without a worker, and run-once tasks are the role's own cost), each
trivial: linear in K through the one-task and the two-task runs, ``one + (K - 1) * (two -
one)``, so that the play's fixed cost (start-up, inventory) is counted once. The ratio of a
run is its CPU over that (``*_cpu_vs_baseline``); its CPU over one trivial task per host is
reported too (``*_cpu_vs_one_task``). A module run costs the controller more than a
``set_fact`` (templating its arguments, the AnsiballZ payload, the connection, the result):
the module baseline of a run counts each of its module executions per host (M) as a trivial
module run instead, ``trivial + M * (module - one)``, and the run's CPU over it is reported as
``*_cpu_vs_module_baseline``: what the role costs beyond the Ansible work its tasks and module
runs cannot avoid.

Per run: wall time, controller CPU (user + system of ansible-playbook and all its children,
``getrusage(RUSAGE_CHILDREN)`` of this process around the run), the largest RSS, the strategy
process's share (its own CPU, largest RSS and minor page faults, and the workers it forked, as
the ``bench_tally`` callback reads them in that process; per fork: the strategy's CPU and the
workers' CPU divided by the forks), and from
the stub's log, per host: module executions, the bytes of the module arguments' JSON as
Ansible sends it (all of a host's calls in the run added up; the mean and the largest host
are reported), the whole payloads' bytes and the results' bytes. The ``bench_tally``
callback counts tasks per host and changes.

A run whose projected time (from the two sizes below, as a power of N between 1 and 2; see
``extrapolate``) exceeds ``--budget`` seconds is not run at that size: its figures are extrapolated from
the two smaller sizes and marked ``"extrapolated"`` with how; a size where both mesh runs are
extrapolated runs nothing: its baselines are projected the same way.

Writes JSON (``--out``) and prints a table; ``bench/report.py`` merges it into results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
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
BASELINE = os.path.join(HERE, "controller_baseline.yml")
MODULE_BASELINE = os.path.join(HERE, "controller_module_baseline.yml")
sys.path.insert(0, os.path.join(HERE, "connection_plugins"))
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

# pylint: disable=wrong-import-position
from bench_stub import member_address, member_name  # noqa: E402
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import (  # noqa: E402
    file_fingerprint, render_masked_key_line,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import desired_keys  # noqa: E402
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.boot import render_boot_unit  # noqa: E402

KEYS_LINE = "3+ rfc4106(gcm(aes)) 0x%s 128" % ("5a" * 20)
RUNS = ("baseline", "fresh", "noop")


def write_fleet(size: int, directory: str) -> Dict[str, str]:
    hosts = {member_name(index): {"ipsec_addresses": [member_address(index)]} for index in range(1, size + 1)}
    inventory = {"all": {"vars": {"ansible_connection": "bench_stub", "ansible_python_interpreter": "/usr/bin/python3"},
                         "children": {"ipsec_mesh": {"hosts": hosts}}}}
    paths = {"inventory": os.path.join(directory, "inventory-%d.yml" % size),
             "extra": os.path.join(directory, "extra.yml")}
    with open(paths["inventory"], "w") as stream:
        yaml.safe_dump(inventory, stream)
    with open(paths["extra"], "w") as stream:
        yaml.safe_dump({"ipsec_keys_content": KEYS_LINE}, stream)
    return paths


def node_facts() -> Dict[str, str]:
    """What ``xfrm_info`` reports on a node that holds the benchmark's keys file and the boot
    unit (computed here, once, so that the stub does no work of its own)."""
    keys_file, content = desired_keys(KEYS_LINE, None)
    return {"keys_file_fingerprint": file_fingerprint(content), "current_key": render_masked_key_line(keys_file.current),
            "boot_unit": render_boot_unit().fingerprint}


def run_playbook(label: str, size: int, playbook: str, nodes: str, paths: Dict[str, str], directory: str,
                 log_dir: str) -> Dict[str, Any]:
    stub_log = os.path.join(directory, "stub-%s-%d.jsonl" % (label, size))
    tally = os.path.join(directory, "tally-%s-%d.json" % (label, size))
    for path in (stub_log, tally):
        if os.path.exists(path):
            os.unlink(path)
    env = dict(os.environ,
               ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "build", "collections"),
               ANSIBLE_CONNECTION_PLUGINS=os.path.join(HERE, "connection_plugins"),
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="bench_tally", ANSIBLE_PIPELINING="True",
               ANSIBLE_RETRY_FILES_ENABLED="False", ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_FORKS=os.environ.get("ANSIBLE_FORKS", "20"),
               BENCH_STUB_NODES=nodes, BENCH_STUB_FACTS=json.dumps(node_facts()), BENCH_STUB_LOG=stub_log,
               BENCH_TALLY_OUT=tally)
    argv = ["ansible-playbook", "-i", paths["inventory"], "-e", "@" + paths["extra"], playbook]
    log = os.path.join(log_dir, "%s-%d.log" % (label, size))
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        # The rusage of a reaped process includes every descendant it reaped: the workers.
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    cpu = usage.ru_utime + usage.ru_stime
    code = process.returncode
    if code != 0:
        with open(log) as stream:
            tail = stream.read()[-3000:]
        raise SystemExit("%s at %d members failed (exit %d), log %s:\n%s" % (label, size, code, log, tail))
    result: Dict[str, Any] = {"wall": round(wall, 2), "cpu": round(cpu, 2), "user": round(usage.ru_utime, 2),
                              "sys": round(usage.ru_stime, 2), "max_rss_mb": round(usage.ru_maxrss / 1024.0, 1)}
    result.update(stub_figures(stub_log, size))
    if os.path.exists(tally):
        with open(tally) as stream:
            tally_figures = json.load(stream)
        hosts = tally_figures["hosts"]
        strategy = tally_figures.get("strategy")
        if strategy:
            # The strategy process (ansible-playbook itself) and the workers it forked, apart:
            # every worker is a fork of the strategy process, and what a fork costs both of
            # them grows with that process's memory.
            strategy_cpu = strategy["user"] + strategy["sys"]
            result.update(strategy_cpu=round(strategy_cpu, 2), strategy_max_rss_mb=strategy["max_rss_mb"],
                          strategy_minor_faults=strategy["minor_faults"], forks=strategy["forks"])
            if strategy["forks"]:
                result["strategy_ms_per_fork"] = round(strategy_cpu * 1000 / strategy["forks"], 2)
                result["worker_ms_per_fork"] = round((cpu - strategy_cpu) * 1000 / strategy["forks"], 2)
        # A task costs a worker per host whether it runs or is skipped; run_once tasks
        # count on one host only, so the median host has the per-host tasks.
        result["tasks_per_host"] = statistics.median(entry["tasks"] + entry["skipped"] for entry in hosts.values())
        result["changed_per_host"] = max(entry["changed"] for entry in hosts.values())
        shutil.copy(tally, os.path.join(log_dir, os.path.basename(tally)))
    counts = ""
    if result.get("executions_per_host"):
        counts = ", args %.0f B/host, %s executions/host" % (result["args_bytes_per_host"],
                                                             result["executions_per_host"])
    if result.get("forks"):
        counts += ", strategy %.1f s cpu / %.0f MB, %d forks: %.1f + %.1f ms each" % (
            result["strategy_cpu"], result["strategy_max_rss_mb"], result["forks"], result["strategy_ms_per_fork"],
            result["worker_ms_per_fork"])
    print("  %-9s %5d members: wall %7.1f s, cpu %7.1f s%s" % (label, size, wall, cpu, counts), flush=True)
    return result


def stub_figures(path: str, size: int) -> Dict[str, Any]:
    """Per host sums over a run of what the stub logged, as mean and largest over the hosts."""
    if not os.path.exists(path):
        return {"executions_per_host": 0}
    per_host: Dict[str, Dict[str, int]] = {}
    modules: Dict[str, int] = {}
    phases: Dict[str, List[int]] = {}
    with open(path) as stream:
        for line in stream:
            entry = json.loads(line)
            host = per_host.setdefault(entry["host"], {"executions": 0, "args": 0, "payload": 0, "result": 0})
            host["executions"] += 1
            host["args"] += entry["args_bytes"]
            host["payload"] += entry["payload_bytes"]
            host["result"] += entry["result_bytes"]
            modules[entry["module"]] = modules.get(entry["module"], 0) + 1
            if entry["module"].endswith(".xfrm_endpoint"):
                phases.setdefault(entry.get("phase") or "?", []).append(entry["args_bytes"])
    if len(per_host) != size:
        raise SystemExit("the stub saw %d hosts in %s, expected %d" % (len(per_host), path, size))

    def mean(key: str) -> float:
        return statistics.mean(host[key] for host in per_host.values())

    return {
        "executions_per_host": max(host["executions"] for host in per_host.values()),
        "args_bytes_per_host": round(mean("args"), 1),
        "args_bytes_per_host_max": max(host["args"] for host in per_host.values()),
        "payload_bytes_per_host": round(mean("payload"), 1),
        "result_bytes_per_host": round(mean("result"), 1),
        "args_bytes_total": sum(host["args"] for host in per_host.values()),
        "module_executions": modules,
        "endpoint_args_bytes_by_phase": {phase: round(statistics.mean(values), 1) for phase, values in phases.items()},
    }


def bench_size(size: int, directory: str, log_dir: str, budget: float,
               measured: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Baseline (one task, then two), fresh, no-op, baseline at ``size`` members; a mesh run whose projection
    (from the two largest sizes measured before) exceeds ``budget`` seconds of wall time is
    extrapolated instead (see ``extrapolate``)."""
    paths = write_fleet(size, directory)
    nodes = os.path.join(directory, "nodes-%d" % size)
    os.makedirs(nodes)
    projections = {label: extrapolate(label, size, measured) for label in ("fresh", "noop")}
    over = [label for label, projected in projections.items()
            if projected is not None and projected["wall"] > budget]
    if len(over) == len(projections):
        # Nothing of the role runs at this size: its baselines are projected too, rather than
        # spending the budget on the trivial plays alone (at 5000 members they take minutes).
        first, two, module, second = (projected_baseline(key, size, measured)
                                      for key in ("first", "two", "module", "second"))
    else:
        first = run_playbook("baseline", size, BASELINE, nodes, paths, directory, log_dir)
        two = run_playbook("baseline2", size, two_task_baseline(directory), nodes, paths, directory, log_dir)
        module = run_playbook("module", size, MODULE_BASELINE, nodes, paths, directory, log_dir)
    runs: Dict[str, Dict[str, Any]] = {}
    for label in ("fresh", "noop"):
        projected = projections[label]
        if label in over:
            print("  %-9s %5d members: projected %.0f s of wall time, over the budget of %.0f s: extrapolated"
                  % (label, size, projected["wall"], budget), flush=True)
            runs[label] = projected
            continue
        if label == "noop" and runs["fresh"].get("extrapolated"):
            raise SystemExit("the no-op run at %d members needs the fresh run before it (raise --budget)" % size)
        runs[label] = run_playbook(label, size, MESH, nodes, paths, directory, log_dir)
    if len(over) != len(projections):
        second = run_playbook("baseline", size, BASELINE, nodes, paths, directory, log_dir)
    if runs["noop"].get("changed_per_host"):
        raise SystemExit("the no-op run changed something at %d members" % size)
    unit = {"cpu": (first["cpu"] + second["cpu"]) / 2, "wall": (first["wall"] + second["wall"]) / 2}
    per_task = {key: max(0.0, two[key] - unit[key]) for key in ("cpu", "wall")}
    module_extra = max(0.0, module["cpu"] - unit["cpu"])
    entry: Dict[str, Any] = {"members": size, "baseline": {"runs": [first, second], "two_tasks": two,
                                                           "module": module, "module_cpu_extra": module_extra,
                                                           "cpu": unit["cpu"], "wall": unit["wall"],
                                                           "cpu_per_task": per_task["cpu"],
                                                           "wall_per_task": per_task["wall"]}}
    for label, run in runs.items():
        entry[label] = run
        tasks = run["tasks_per_host"]
        floor = {key: unit[key] + (tasks - 1) * per_task[key] for key in ("cpu", "wall")}
        entry["%s_baseline" % label] = {"tasks_per_host": tasks, "cpu": round(floor["cpu"], 2),
                                        "wall": round(floor["wall"], 2)}
        entry["%s_cpu_vs_baseline" % label] = run["cpu"] / floor["cpu"]
        entry["%s_wall_vs_baseline" % label] = run["wall"] / floor["wall"]
        entry["%s_cpu_vs_one_task" % label] = run["cpu"] / unit["cpu"]
        module_floor = floor["cpu"] + run.get("executions_per_host", 0) * module_extra
        entry["%s_module_baseline" % label] = {"executions_per_host": run.get("executions_per_host", 0),
                                               "cpu": round(module_floor, 2)}
        entry["%s_cpu_vs_module_baseline" % label] = run["cpu"] / module_floor
    return entry


def two_task_baseline(directory: str) -> str:
    """The baseline play with its task twice (a playbook written into ``directory``)."""
    with open(BASELINE) as stream:
        plays = yaml.safe_load(stream)
    for play in plays:
        play["tasks"] = [dict(task, name="%s (%d)" % (task["name"], copy)) for copy in (1, 2)
                         for task in play["tasks"]]
    path = os.path.join(directory, "baseline-two-tasks.yml")
    with open(path, "w") as stream:
        yaml.safe_dump(plays, stream, sort_keys=False)
    return path


def extrapolate(label: str, size: int, measured: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The figures of run ``label`` at ``size`` members projected from the two largest sizes
    measured before (None with fewer): CPU and wall as a power of the size through both
    (exponent between 1 and 2: the role's work per host is at most linear in the members),
    bytes per host as a straight line through both; per-host counts as at the largest."""
    points = [entry for entry in measured if not entry[label].get("extrapolated")][-2:]
    if len(points) < 2:
        return None
    (small, large) = points
    ratio = size / float(large["members"])
    spread = large["members"] / float(small["members"])
    projected: Dict[str, Any] = {key: large[label][key] for key in ("executions_per_host", "tasks_per_host",
                                                                    "changed_per_host", "module_executions")
                                 if key in large[label]}
    exponents = {}
    for key in ("cpu", "wall"):
        exponent = math.log(large[label][key] / small[label][key]) / math.log(spread)
        exponents[key] = round(min(2.0, max(1.0, exponent)), 3)
        projected[key] = round(large[label][key] * ratio ** exponents[key], 1)
    for key in ("args_bytes_per_host", "payload_bytes_per_host", "result_bytes_per_host"):
        slope = (large[label][key] - small[label][key]) / float(large["members"] - small["members"])
        projected[key] = round(large[label][key] + slope * (size - large["members"]), 1)
    projected["extrapolated"] = {"from_members": [small["members"], large["members"]], "exponents": exponents,
                                 "method": "cpu, wall: power of the members through the two sizes; bytes: linear"}
    return projected


def projected_baseline(which: str, size: int, measured: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """A baseline run (``first``, ``two``, ``module`` or ``second``) at ``size`` members projected as in
    ``extrapolate`` from the two largest sizes measured before, exponent between 1 and 2."""
    (small, large) = [entry["baseline"] for entry in measured][-2:]
    sizes = [entry["members"] for entry in measured][-2:]
    pick = {"first": lambda base: base["runs"][0], "two": lambda base: base["two_tasks"],
            "module": lambda base: base["module"], "second": lambda base: base["runs"][1]}[which]
    projected: Dict[str, Any] = {}
    exponents = {}
    for key in ("cpu", "wall"):
        exponent = math.log(pick(large)[key] / pick(small)[key]) / math.log(sizes[1] / float(sizes[0]))
        exponents[key] = round(min(2.0, max(1.0, exponent)), 3)
        projected[key] = round(pick(large)[key] * (size / float(sizes[1])) ** exponents[key], 1)
    projected["extrapolated"] = {"from_members": sizes, "exponents": exponents,
                                 "method": "power of the members through the two sizes"}
    return projected


def write_report(path: str, results: List[Dict[str, Any]], started: float) -> None:
    report = {"controller": results, "forks": os.environ.get("ANSIBLE_FORKS", "20"), "cpus": os.cpu_count(),
              "wall_seconds": round(time.time() - started, 1)}
    temporary = path + ".tmp"
    with open(temporary, "w") as out:
        json.dump(report, out, indent=1, sort_keys=True)
        out.write("\n")
    os.replace(temporary, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="250,1000,5000")
    parser.add_argument("--out", required=True)
    parser.add_argument("--log-dir", default=None, help="playbook logs (default: controller-logs next to --out)")
    parser.add_argument("--work-dir", default=None,
                        help="keep the inventories, simulated nodes and stub logs here (default: a temporary directory)")
    parser.add_argument("--budget", type=float, default=float(os.environ.get("BENCH_CONTROLLER_BUDGET", "600")),
                        help="seconds of wall time a mesh run may take; one projected to take longer is extrapolated")
    args = parser.parse_args(argv)
    args.log_dir = args.log_dir or os.path.join(os.path.dirname(os.path.abspath(args.out)), "controller-logs")
    os.makedirs(args.log_dir, exist_ok=True)
    started = time.time()
    results: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-controller-") as temporary:
        directory = args.work_dir or temporary
        os.makedirs(directory, exist_ok=True)
        for size in [int(size) for size in args.sizes.split(",")]:
            results.append(bench_size(size, directory, args.log_dir, args.budget, results))
            # Written after each size, so that an interrupted run keeps the sizes it measured.
            write_report(args.out, results, started)
    print("wrote %s" % args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
