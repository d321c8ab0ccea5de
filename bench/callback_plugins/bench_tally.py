# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark callback: per host, how many tasks ran and how many module executions they took
(a loop item is one execution), how many were skipped, and the meta tasks apart (the strategy
evaluates them without a worker); per task, its wall time; and the strategy process's own
share of the run: a callback runs in that process (ansible-playbook itself), so its
``getrusage(RUSAGE_SELF)`` at the end is the CPU, largest RSS and page faults of the strategy
alone, and the forks it counts are the workers it started (one per host and task). Written as
JSON to the file named by ``BENCH_TALLY_OUT`` when the playbook ends. Enabled only by the
benchmark (``ANSIBLE_CALLBACKS_ENABLED=bench_tally``)."""

from __future__ import annotations

import json
import os
import resource
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_tally
type: aggregate
short_description: count tasks and module executions per host, time each task (benchmarks)
description: Writes JSON to the file named by BENCH_TALLY_OUT at the end of the run.
requirements: []
"""


META_ACTIONS = ("meta", "ansible.builtin.meta", "ansible.legacy.meta")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_tally"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = time.time()
        self.hosts = {}
        self.tasks = []
        self.current = None
        self.forks = 0
        self.pid = os.getpid()
        os.register_at_fork(before=self._count_fork)

    def _count_fork(self):
        if os.getpid() == self.pid:
            self.forks += 1

    def _host(self, result):
        name = result._host.get_name()  # pylint: disable=protected-access
        return self.hosts.setdefault(name, {"tasks": 0, "executions": 0, "skipped": 0, "meta": 0, "changed": 0,
                                            "failed": 0})

    def _close_task(self):
        if self.current is not None:
            self.current["seconds"] = round(time.time() - self.current.pop("t0"), 3)
            self.tasks.append(self.current)
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close_task()
        self.current = {"name": task.get_name(), "t0": time.time(), "hosts": 0, "changed": 0}

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _done(self, result, failed=False, skipped=False):
        host = self._host(result)
        # A meta task is evaluated by the strategy, without a worker: counted apart.
        if result._task.action in META_ACTIONS:  # pylint: disable=protected-access
            host["meta"] += 1
            return
        if skipped and not result._result.get("results"):  # pylint: disable=protected-access
            host["skipped"] += 1
            return
        host["tasks"] += 1
        if self.current is not None:
            self.current["hosts"] += 1
            self.current["changed"] += 1 if result._result.get("changed") else 0  # pylint: disable=protected-access
        items = result._result.get("results")  # pylint: disable=protected-access
        if isinstance(items, list):
            host["executions"] += sum(1 for item in items if not item.get("skipped"))
        else:
            host["executions"] += 1
        if result._result.get("changed"):  # pylint: disable=protected-access
            host["changed"] += 1
        if failed:
            host["failed"] += 1

    def v2_runner_on_ok(self, result):
        self._done(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, failed=not ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._done(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._done(result, failed=True)

    def v2_playbook_on_stats(self, stats):
        self._close_task()
        path = os.environ.get("BENCH_TALLY_OUT")
        if not path:
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        strategy = {"user": round(usage.ru_utime, 3), "sys": round(usage.ru_stime, 3),
                    "max_rss_mb": round(usage.ru_maxrss / 1024.0, 1), "minor_faults": usage.ru_minflt,
                    "forks": self.forks}
        with open(path, "w") as out:
            json.dump({"seconds": round(time.time() - self.started, 3), "hosts": self.hosts, "tasks": self.tasks,
                       "strategy": strategy}, out, indent=1, sort_keys=True)
