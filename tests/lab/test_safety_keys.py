# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 6, item 3: malformed keys files on a real node change nothing (and item 8), in a lab:

    lab/run --nodes 3 -- pytest -q tests/lab/test_safety_keys.py

Every file of the corpus tests/unit/data/keys/bad/ (index.json: the expected message fragment
and line; NAME.b64 files hold bytes the repository should not hold as they are) is given
  - to xfrm_keys as ``content`` (when the bytes are UTF-8 text, the only thing a module
    option can carry),
  - to xfrm_keys as an existing file, report-only (no content),
  - to xfrm_endpoint as ``keys_file``,
each must fail with a message holding the fragment and naming the line, and leave the
kernel's SAD/SPD and every file under /etc as they were. The cases are spread over the
nodes and batched into one playbook (one loop per form, ignore_errors). There is no --check
twin of the run: every call fails before touching anything either way. The property-based
half (hypothesis: random text, bytes and token soups never crash the parser, never leak a
key and always name a line) is tests/unit/plugins/module_utils/test_keys_grammar.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from harness import REPO, REQID, comparable, dumps, key_line, report

CORPUS = REPO / "tests" / "unit" / "data" / "keys" / "bad"
STAGE = "/etc/ipsec-bad"

PLAYBOOK = """
- name: Feed the bad keys corpus to the modules
  hosts: ipsec_mesh
  gather_facts: false
  tasks:
    - name: Bad content to xfrm_keys
      netsec.ipsec.xfrm_keys:
        path: /etc/ipsec/keys
        content: "{{ item.content }}"
      loop: "{{ safety_cases[inventory_hostname] | selectattr('content', 'defined') | list }}"
      loop_control:
        label: "{{ item.name }}"
      ignore_errors: true

    - name: Bad existing file to xfrm_keys, report only
      netsec.ipsec.xfrm_keys:
        path: "%(stage)s/{{ item.name }}"
      loop: "{{ safety_cases[inventory_hostname] }}"
      loop_control:
        label: "{{ item.name }}"
      ignore_errors: true

    - name: Bad keys file to xfrm_endpoint
      netsec.ipsec.xfrm_endpoint:
        keys_file: "%(stage)s/{{ item.name }}"
        local:
          addresses: "{{ ipsec_addresses }}"
        peers:
          - name: far
            addresses: [192.0.2.1]
            boot_id: 0f6a1f2e-2b0c-4a43-9d0e-5a3d7f0c2b11
      loop: "{{ safety_cases[inventory_hostname] }}"
      loop_control:
        label: "{{ item.name }}"
      ignore_errors: true
""" % {"stage": STAGE}

# Entries that a successful xfrm_endpoint run would change: an owned SA and policy towards a
# peer it was not given (purged), and a foreign SA.
KERNEL_BATCH = """xfrm state add src {me} dst 192.0.2.77 proto esp spi 0x10000077 reqid %d mode tunnel aead rfc4106(gcm(aes)) 0x{k1} 128
xfrm policy add src 0.0.0.0/0 dst 192.0.2.77/32 dir out priority 28416 tmpl src {me} dst 192.0.2.77 proto esp spi 0x10000077 reqid %d mode tunnel
xfrm state add src {me} dst 192.0.2.88 proto esp spi 0x00000888 reqid 1 mode tunnel aead rfc4106(gcm(aes)) 0x{k2} 128
""" % (REQID, REQID)

STAGE_SCRIPT = r'''
import base64, json, os, sys
corpus, stage, good = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(stage, exist_ok=True)
os.makedirs("/etc/ipsec", mode=0o700, exist_ok=True)
for name in json.load(open(os.path.join(corpus, "index.json"))):
    path = os.path.join(corpus, name)
    data = open(path, "rb").read() if os.path.exists(path) else base64.decodebytes(open(path + ".b64", "rb").read())
    with open(os.path.join(stage, name), "wb") as stream:
        stream.write(data)
with open("/etc/ipsec/keys", "w") as stream:
    stream.write(good + "\n")
os.chmod("/etc/ipsec/keys", 0o600)
'''

FILES = "find /etc -xdev -type f -printf '%p %m %s %T@\\n' | sort; sha256sum /etc/ipsec/keys " + STAGE + "/*"


def _corpus():
    index = json.loads((CORPUS / "index.json").read_text())
    cases = []
    for name in sorted(index):
        path = CORPUS / name
        data = path.read_bytes() if path.exists() else base64.decodebytes((CORPUS / (name + ".b64")).read_bytes())
        case = {"name": name}
        try:
            case["content"] = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        cases.append((case, index[name]))
    return cases


def _message_ok(entry, expected):
    message = entry["result"].get("msg", "")
    if not entry["failed"] or expected["fragment"] not in message:
        return False
    return expected["line"] is None or ("line %d" % expected["line"]) in message


def test_bad_keys_files_change_nothing(lab_nodes, lab_ipv4, lab_exec, lab_ansible, lab_work):
    work = lab_work
    cases = _corpus()
    assert len(cases) >= 40
    for number, node in enumerate(lab_nodes, start=1):
        lab_exec(node, "python3", "-c", STAGE_SCRIPT, str(CORPUS), STAGE, key_line(1))
        lab_exec(node, "ip", "-batch", "-", input=KERNEL_BATCH.format(me=lab_ipv4[node], k1="%02x" % number * 20,
                                                                      k2="%02x" % (number + 16) * 20))
    per_node = {node: [] for node in lab_nodes}
    for number, (case, _expected) in enumerate(cases):
        per_node[lab_nodes[number % len(lab_nodes)]].append(case)
    playbook = work / "bad-keys.yml"
    playbook.write_text(PLAYBOOK)
    expected = {case["name"]: exp for case, exp in cases}

    files_before = {node: lab_exec(node, "sh", "-c", FILES).stdout for node in lab_nodes}
    dumps_before = dumps(lab_exec, lab_nodes)
    ansible = lab_ansible
    # No --check twin of this run (item 8): every call fails before touching anything either way,
    # and 200 module starts are the cost of this whole scenario.
    run = ansible.playbook(str(playbook), extra_vars={"safety_cases": per_node})
    dumps_after = dumps(lab_exec, lab_nodes)
    files_after = {node: lab_exec(node, "sh", "-c", FILES).stdout for node in lab_nodes}

    outcomes = {"content": [], "file": [], "endpoint": []}
    wrong = []
    for entry in run.results:
        result = entry["result"]
        if "item" not in result:
            continue
        kind = {"Bad content to xfrm_keys": "content", "Bad existing file to xfrm_keys, report only": "file",
                "Bad keys file to xfrm_endpoint": "endpoint"}[entry["task"]]
        name = result["item"]["name"]
        outcomes[kind].append(name)
        if not _message_ok(entry, expected[name]):
            wrong.append((kind, name, expected[name], entry["failed"], result.get("msg")))
    figures = {"cases": len(cases), "content_cases": sum(1 for case, _e in cases if "content" in case),
               "module_calls": sum(len(v) for v in outcomes.values()), "wrong": len(wrong),
               "run_seconds": round(run.seconds, 1)}
    report("bad keys", figures)
    assert not wrong, "\n".join(repr(w) for w in wrong)
    # Every case reached every module form.
    assert sorted(outcomes["file"]) == sorted(outcomes["endpoint"]) == sorted(expected)
    assert len(outcomes["content"]) == figures["content_cases"]
    assert comparable(dumps_after) == comparable(dumps_before)
    assert dumps_after == dumps_before
    assert files_after == files_before
    for node in lab_nodes:
        assert lab_exec(node, "cat", "/etc/ipsec/keys").stdout == key_line(1) + "\n"
        lab_exec(node, "rm", "-rf", STAGE, "/etc/ipsec")
        lab_exec(node, "ip", "-batch", "-", input=(
            "xfrm policy delete src 0.0.0.0/0 dst 192.0.2.77/32 dir out\n"
            "xfrm state delete src %(me)s dst 192.0.2.77 proto esp spi 0x10000077\n"
            "xfrm state delete src %(me)s dst 192.0.2.88 proto esp spi 0x00000888\n") % {"me": lab_ipv4[node]})
    assert Path(playbook).exists()
