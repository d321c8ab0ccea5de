#!/usr/bin/env python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Merge the benchmark outputs (node.json, fleet-*.json, netlink.json, controller.json in DIR)
into DIR/results.json and print the table of ratios against the targets of issues 7 and 17."""

from __future__ import annotations

import glob
import json
import os
import sys

TARGETS = {
    "p1_vs_ip_batch": ("<=", 1.5),
    "p1_vs_ip_per_object": ("<=", 1 / 30.0),
    "p2_vs_p1": ("<=", 0.25),
    "p3_fresh_vs_ping_round": ("<=", 8.0),
    "p3_noop_vs_ping_round": ("<=", 3.0),
    "p4_peak_rss_mb": ("<=", 100.0),
    # Issue 17 (bench_controller.py): per run, the controller's CPU per task per host within
    # twice a trivial task's, and the endpoint arguments not multiplied by the phases.
    "p5_controller_cpu_vs_baseline_1000": ("<=", 2.0),
    "p5_endpoint_args_phases_vs_one_1000": ("<=", 1.5),
}


def med(entry, key):
    return entry["seconds"][key]["median"]


def main(directory):
    results = {"targets": {key: {"op": op, "value": value} for key, (op, value) in TARGETS.items()}}
    node_path = os.path.join(directory, "node.json")
    if os.path.exists(node_path):
        with open(node_path) as stream:
            node = json.load(stream)
        main_entry = next(entry for entry in node["growth"] if entry["peers"] == node["peers"])
        ours, noop, batch = med(main_entry, "ours"), med(main_entry, "noop"), med(main_entry, "ip_batch")
        each = med(main_entry, "ip_each")
        process = node["process"]["seconds"]
        results.update({
            "p1_vs_ip_batch": ours / batch,
            "p1_vs_ip_per_object": ours / each,
            "p2_vs_p1": noop / ours,
            "p4_peak_rss_mb": max(process["fresh_rss_mb"]["median"], process["noop_rss_mb"]["median"]),
            "p1_peers": node["peers"], "p1_objects": main_entry["objects"],
            "p1_seconds": {"ours": ours, "noop": noop, "ip_batch": batch, "ip_per_object": each},
            "p1_breakdown": main_entry["breakdown"],
            "p4_module_process": {key: value["median"] for key, value in process.items()},
            "growth": [{"peers": entry["peers"], "objects": entry["objects"], "ours": med(entry, "ours"),
                        "noop": med(entry, "noop"), "ip_batch": med(entry, "ip_batch")} for entry in node["growth"]],
            "node_host": node["host"],
        })
    fleet = []
    for path in sorted(glob.glob(os.path.join(directory, "fleet-*.json"))):
        with open(path) as stream:
            fleet += json.load(stream)["fleet"]
    fleet.sort(key=lambda entry: entry["nodes"])
    if fleet:
        largest = fleet[-1]
        results["p3_nodes"] = largest["nodes"]
        results["p3_fresh_vs_ping_round"] = largest["fresh_vs_ping_round"]
        results["p3_noop_vs_ping_round"] = largest["noop_vs_ping_round"]
        results["fleet"] = [{
            "nodes": entry["nodes"], "ping_round": entry["ping"]["median"],
            "mesh_fresh": entry["mesh_fresh"]["seconds"], "mesh_noop": entry["mesh_noop"]["seconds"],
            "fresh_vs_ping_round": entry["fresh_vs_ping_round"], "noop_vs_ping_round": entry["noop_vs_ping_round"],
            "mesh_tasks_per_host": entry["mesh_fresh"].get("tasks_per_host"),
            "mesh_executions_per_host": entry["mesh_fresh"].get("executions_per_host"),
            "naive_fresh": entry.get("naive_fresh", {}).get("seconds"),
            "naive_fresh_vs_ping_round": entry.get("naive_fresh_vs_ping_round"),
            "naive_noop": entry.get("naive_noop", {}).get("seconds"),
            "naive_noop_vs_ping_round": entry.get("naive_noop_vs_ping_round"),
            "naive_tasks_per_host": entry.get("naive_fresh", {}).get("tasks_per_host"),
            "naive_executions_per_host": entry.get("naive_fresh", {}).get("executions_per_host"),
            "naive_equals_mesh": entry.get("naive_equals_mesh"),
        } for entry in fleet]
        results["fleet_raw"] = fleet
    controller_path = os.path.join(directory, "controller.json")
    if os.path.exists(controller_path):
        with open(controller_path) as stream:
            results.update(controller_figures(json.load(stream)))
    netlink_path = os.path.join(directory, "netlink.json")
    if os.path.exists(netlink_path):
        with open(netlink_path) as stream:
            results["netlink"] = json.load(stream)
    with open(os.path.join(directory, "results.json"), "w") as out:
        json.dump(results, out, indent=1, sort_keys=True)
        out.write("\n")
    print_table(results)
    print("wrote %s" % os.path.join(directory, "results.json"))
    return 0


def controller_figures(controller):
    """The P5 figures of each size: per run (fresh and no-op, the worse of the two), the
    controller's CPU over the trivial baseline of the same number of tasks per host
    (``..._vs_baseline_N``, see bench_controller.py), over the same with each module execution
    as a trivial module run (``..._vs_module_baseline_N``) and over one trivial task per host
    (``..._vs_one_task_N``), the module-argument bytes per host of the larger run, and how the
    endpoint's arguments add up over the phases of a fresh run (their sum over the largest
    phase's: 3 when each phase sends everything, near 1 when the later phases send only what
    changed)."""
    figures = {"controller": controller}
    for entry in controller["controller"]:
        members = entry["members"]
        fresh, noop = entry["fresh"], entry["noop"]
        phases = fresh.get("endpoint_args_bytes_by_phase") or {}
        figures.update({
            "p5_controller_cpu_vs_baseline_%d" % members: max(entry["fresh_cpu_vs_baseline"],
                                                              entry["noop_cpu_vs_baseline"]),
            "p5_controller_cpu_vs_one_task_%d" % members: max(entry["fresh_cpu_vs_one_task"],
                                                              entry["noop_cpu_vs_one_task"]),
            "p5_args_bytes_per_host_%d" % members: max(fresh["args_bytes_per_host"], noop["args_bytes_per_host"]),
        })
        if "noop_cpu_vs_module_baseline" in entry:
            figures["p5_controller_cpu_vs_module_baseline_%d" % members] = max(entry["fresh_cpu_vs_module_baseline"],
                                                                               entry["noop_cpu_vs_module_baseline"])
        if phases:
            figures["p5_endpoint_args_phases_vs_one_%d" % members] = sum(phases.values()) / max(phases.values())
        if fresh.get("extrapolated") or noop.get("extrapolated"):
            figures["p5_extrapolated_%d" % members] = [label for label, run in (("fresh", fresh), ("noop", noop))
                                                       if run.get("extrapolated")]
    return figures


def fmt(value, digits=2):
    return "-" if value is None else ("%.*f" % (digits, value))


def print_table(results):
    print("\n%-26s %10s %10s  %s" % ("figure", "measured", "target", "met"))
    for key, (op, target) in TARGETS.items():
        if key not in results:
            continue
        value = results[key]
        met = value <= target
        shown = "1/%.0f" % (1 / value) if key == "p1_vs_ip_per_object" else fmt(value)
        target_shown = "1/30" if key == "p1_vs_ip_per_object" else fmt(target)
        print("%-26s %10s %10s  %s" % (key, shown, op + target_shown, "yes" if met else "NO"))
    if "growth" in results:
        print("\n%7s %8s %9s %9s %9s %8s %8s" % ("peers", "objects", "ours s", "no-op s", "ip -b s", "ours/ipb", "noop/p1"))
        for entry in results["growth"]:
            print("%7d %8d %9.3f %9.3f %9.3f %8.2f %8.2f" % (
                entry["peers"], entry["objects"], entry["ours"], entry["noop"], entry["ip_batch"],
                entry["ours"] / entry["ip_batch"], entry["noop"] / entry["ours"]))
    if "controller" in results:
        print_controller(results["controller"])
    if "fleet" in results:
        print("\n%5s %7s %8s %8s %7s %7s %11s %9s %9s %11s" % (
            "nodes", "ping s", "fresh s", "no-op s", "fresh/p", "noop/p", "tasks/host", "naive s", "naive/p",
            "naive ex/h"))
        for entry in results["fleet"]:
            print("%5d %7.1f %8.1f %8.1f %7.2f %7.2f %11s %9s %9s %11s" % (
                entry["nodes"], entry["ping_round"], entry["mesh_fresh"], entry["mesh_noop"],
                entry["fresh_vs_ping_round"], entry["noop_vs_ping_round"],
                "%s (%s ex)" % (entry["mesh_tasks_per_host"], entry["mesh_executions_per_host"]),
                fmt(entry["naive_fresh"], 1), fmt(entry["naive_fresh_vs_ping_round"]),
                entry["naive_executions_per_host"] if entry["naive_executions_per_host"] is not None else "-"))


def print_controller(controller):
    print("\ncontroller (forks %s, %s CPUs): CPU and wall in s; base = the trivial baseline of the same tasks per host"
          % (controller["forks"], controller["cpus"]))
    print("%7s %-9s %9s %8s %6s %9s %9s %9s %9s %12s %18s %15s  %s" % (
        "members", "run", "cpu", "wall", "tasks", "base cpu", "cpu/base", "cpu/mbase", "cpu/1task", "args B/host",
        "endpoint B/phase", "strat+worker ms", ""))
    for entry in controller["controller"]:
        base = entry["baseline"]
        print("%7d %-9s %9.1f %8.1f %6s" % (entry["members"], "baseline", base["cpu"], base["wall"], 1))
        if "module" in base:
            print("%7d %-9s %9.1f %8.1f %6s" % (entry["members"], "module", base["module"]["cpu"],
                                                base["module"]["wall"], 1))
        for label in ("fresh", "noop"):
            run = entry[label]
            phases = run.get("endpoint_args_bytes_by_phase") or {}
            per_fork = "%.1f+%.1f" % (run["strategy_ms_per_fork"], run["worker_ms_per_fork"]) \
                if run.get("strategy_ms_per_fork") is not None else "-"
            print("%7d %-9s %9.1f %8.1f %6s %9.1f %9.2f %9s %9.2f %12.0f %18s %15s  %s" % (
                entry["members"], label, run["cpu"], run["wall"], run.get("tasks_per_host"),
                entry["%s_baseline" % label]["cpu"], entry["%s_cpu_vs_baseline" % label],
                fmt(entry.get("%s_cpu_vs_module_baseline" % label)),
                entry["%s_cpu_vs_one_task" % label], run["args_bytes_per_host"],
                "/".join("%.0f" % phases[phase] for phase in ("inbound", "outbound", "all") if phase in phases),
                per_fork,
                "extrapolated from %s" % run["extrapolated"]["from_members"] if run.get("extrapolated") else ""))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/bench"))
