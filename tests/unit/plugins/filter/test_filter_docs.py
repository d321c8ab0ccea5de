# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every filter has its documentation next to plugins/filter/mesh.py, in step with the code.

ansible-doc (and so galaxy-importer and antsibull-docs) reads a filter's documentation from
``plugins/filter/<name>.yml`` (DOCUMENTATION, EXAMPLES, RETURN). A new filter, a renamed or
added argument, or an example whose stated result no longer holds fails here.

Each example in EXAMPLES is a task whose ``msg`` applies the filter, followed by a comment
``# => <result as JSON>`` (continued on lines ``#     ...``; a line ending in ``\\`` continues
a string); all of them are run in one
ansible-playbook on localhost and their messages compared with those results.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import yaml

import ansible_collections.netsec.ipsec.plugins as plugins_package

FILTER_DIR = Path(plugins_package.__path__[0]) / "filter"
# .../<root>/ansible_collections/netsec/ipsec/plugins/filter: the root Ansible searches.
COLLECTIONS_ROOT = FILTER_DIR.parents[4]
RESULT_MARK = "# => "
# A result line ending in a backslash continues a JSON string on the next line (the lines
# are joined without the backslash and the next line's indent), to keep lines short.
STRING_CONTINUES = "\\"


def filter_signatures(source: str) -> Dict[str, List[Tuple[str, bool]]]:
    """Each filter name that ``FilterModule.filters`` returns, with the (name, required) of the
    arguments of its function. Read from the source, not imported: importing controller code
    (ansible.errors) would make every later module test in this process send its warnings to
    the controller's display instead of its result."""
    tree = ast.parse(source)
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    (module_class,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "FilterModule"]
    (method,) = [node for node in module_class.body if isinstance(node, ast.FunctionDef) and node.name == "filters"]
    (returned,) = [node for node in ast.walk(method) if isinstance(node, ast.Return)]
    assert isinstance(returned.value, ast.Dict)
    signatures = {}
    for key, value in zip(returned.value.keys, returned.value.values):
        assert isinstance(key, ast.Constant) and isinstance(value, ast.Name)
        arguments = functions[value.id].args
        names = [argument.arg for argument in arguments.args]
        first_default = len(names) - len(arguments.defaults)
        signatures[key.value] = [(name, index < first_default) for index, name in enumerate(names)]
    return signatures


FILTERS = filter_signatures((FILTER_DIR / "mesh.py").read_text(encoding="utf-8"))


def sidecar(name: str) -> Dict[str, Any]:
    return yaml.safe_load((FILTER_DIR / ("%s.yml" % name)).read_text(encoding="utf-8"))


def test_every_sidecar_documents_a_filter():
    assert sorted(path.stem for path in FILTER_DIR.glob("*.yml")) == sorted(FILTERS)


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_documentation_matches_the_function(name):
    docs = sidecar(name)
    assert set(docs) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    documentation = docs["DOCUMENTATION"]
    assert documentation["name"] == name
    assert documentation["short_description"] and documentation["description"]
    arguments = FILTERS[name]
    # The value before the | is the first argument; the others are named as in Python, so
    # that keyword arguments work as documented.
    names = ["_input"] + [argument for argument, _required in arguments[1:]]
    assert [item.strip() for item in documentation["positional"].split(",")] == names
    assert list(documentation["options"]) == names
    for option, (_argument, required) in zip(names, arguments):
        assert bool(documentation["options"][option].get("required")) == required, option
    assert list(docs["RETURN"]) == ["_value"]
    assert "netsec.ipsec.%s" % name in docs["EXAMPLES"]


def examples(name: str) -> List[Dict[str, Any]]:
    """The example tasks of a filter, each with the result its comment states."""
    text = sidecar(name)["EXAMPLES"]
    tasks = yaml.safe_load(text)
    results: List[str] = []
    in_result = False
    for line in text.splitlines():
        if line.startswith(RESULT_MARK):
            results.append(line[len(RESULT_MARK):])
            in_result = True
        elif in_result and line.startswith("#    ") and results[-1].endswith(STRING_CONTINUES):
            results[-1] = results[-1][:-len(STRING_CONTINUES)] + line[1:].lstrip()
        elif in_result and line.startswith("#    "):
            results[-1] += line[1:]
        else:
            in_result = False
    assert len(results) == len(tasks), "%s: each example task is followed by %r and its result" % (name, RESULT_MARK)
    found = []
    for task, result in zip(tasks, results):
        assert set(task) <= {"name", "ansible.builtin.debug", "vars"}, task
        found.append(dict(task=task, expected=json.loads(result), where="%s: %s" % (name, task["name"])))
    return found


def test_examples_give_the_stated_results(tmp_path):
    cases = [case for name in sorted(FILTERS) for case in examples(name)]
    assert len({case["where"] for case in cases}) == len(cases)
    tasks = [dict(case["task"], register="example_%d" % index) for index, case in enumerate(cases)]
    messages = "[%s]" % ", ".join("example_%d.msg" % index for index in range(len(cases)))
    tasks.append({"name": "Save the messages", "ansible.builtin.copy": {
        "dest": str(tmp_path / "messages.json"), "content": "{{ %s | to_json }}" % messages, "mode": "0600"}})
    playbook = tmp_path / "examples.yml"
    playbook.write_text(yaml.safe_dump([dict(hosts="localhost", gather_facts=False, tasks=tasks)]), encoding="utf-8")
    environment = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_LOCAL_TEMP=str(tmp_path),
                       ANSIBLE_NOCOLOR="1")
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter=%s" % sys.executable, str(playbook)],
        env=environment, capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    messages_got = json.loads((tmp_path / "messages.json").read_text(encoding="utf-8"))
    for case, got in zip(cases, messages_got):
        assert got == case["expected"], case["where"]


def test_filter_signatures_read_from_the_source():
    source = '''
def _one(value, table, name=None):
    return value


class FilterModule:
    def filters(self):
        return {"one": _one}
'''
    assert filter_signatures(source) == {"one": [("value", True), ("table", True), ("name", False)]}
