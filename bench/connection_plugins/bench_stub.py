# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark connection (``bench/bench_controller.py``, issue 17): nodes that are never reached.

Everything Ansible does on the controller runs as it does with SSH and pipelining: the play,
the role's templating and argument building, the action plugins (``copy``'s stat, temporary
directory and transfer included), the AnsiballZ payload with the module's arguments in it.
This plugin stands where SSH would ship that payload to a node (``exec_command`` with the
payload as standard input): it reads the module's name and arguments out of the payload,
appends one line to the file named by ``BENCH_STUB_LOG`` (host, module, the bytes of the
arguments' JSON and of the whole payload, the bytes of the result; with ``BENCH_STUB_DUMP``
set, the arguments' JSON itself), and answers what the real module answers.

Each simulated node has a small state file in the directory ``BENCH_STUB_NODES`` (keys file
installed, boot unit installed and enabled, how far the rollout got, the peer table it
stores), which the answers read and, outside check mode, update as the real modules change
the node: a run of ``mesh.yml`` from an empty directory meets fresh nodes, the next run
meets the nodes the first left behind. The node's answers follow the real modules':

* ``xfrm_info``: the node's boot id (stable per host), the keys file's fingerprint and mode
  and current key (masked) as ``BENCH_STUB_FACTS`` gives them for the installed content, the
  boot unit's fingerprint, the keying record's boot id, the stored peer table's fingerprint;
* ``xfrm_keys``: changed when the content differs from the installed one;
* ``xfrm_endpoint``: the phase's counts and, with ``--diff`` or ``-v`` as the real module, its
  ``added`` and ``updated`` lines, one per SA and per policy as the module renders them (their
  size is controller work: the controller reads every result back), ``converged`` where the
  node holds the end state and the call asks; a call
  that refers to a stored peer table the node does not hold fails as the module does;
* ``stat``, ``copy``, ``file``, ``systemd_service``: what the set-up steps of the role see.

Nothing here runs a node's work (no planning, no keys): the figures are the controller's
alone. A module it has no answer for fails the task, naming it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import typing as t
import uuid

from ansible.errors import AnsibleError
from ansible.plugins.connection import ConnectionBase

DOCUMENTATION = r"""
name: bench_stub
short_description: benchmark stand-in for the nodes (answers module runs on the controller)
description:
  - Used by bench/bench_controller.py only. Reads the module and arguments out of each
    pipelined AnsiballZ payload, logs their size, and answers as the real module would.
author: netsec.ipsec contributors
extends_documentation_fragment:
  - connection_pipelining
"""

KEYS_FILE_MODE = "0600"
ROLLOUT_PHASES = {"inbound": 1, "outbound": 2, "all": 3}
_TEMPORARY_DIRECTORY = re.compile(r"(ansible-tmp-[A-Za-z0-9._-]+)")
# The counters /proc/net/xfrm_stat has on a 6.1 kernel (xfrm_info returns them all).
_XFRM_STAT = ("XfrmInError XfrmInBufferError XfrmInHdrError XfrmInNoStates XfrmInStateProtoError XfrmInStateModeError "
              "XfrmInStateSeqError XfrmInStateExpired XfrmInStateMismatch XfrmInStateInvalid XfrmInTmplMismatch "
              "XfrmInNoPols XfrmInPolBlock XfrmInPolError XfrmOutError XfrmOutBundleGenError XfrmOutBundleCheckError "
              "XfrmOutNoStates XfrmOutStateProtoError XfrmOutStateModeError XfrmOutStateSeqError XfrmOutStateExpired "
              "XfrmOutPolBlock XfrmOutPolDead XfrmOutPolError XfrmFwdHdrError XfrmOutStateInvalid XfrmAcquireError").split()


def member_name(index: int) -> str:
    """The name of member ``index`` (1-based) of a simulated fleet."""
    return "m%05d" % index


def member_address(index: int) -> str:
    """The tunnel address of member ``index``: 10.A.B.C, never .0 or .255 in any octet."""
    position = index - 1
    return "10.%d.%d.%d" % (1 + position // 62500, 1 + (position // 250) % 250, 1 + position % 250)


def boot_id_of(host: str) -> str:
    """A stable boot id per simulated node (the same in every run of the benchmark)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, host + ".bench.netsec-ipsec"))


class _Node:
    """One simulated node's state, kept in ``BENCH_STUB_NODES/<host>.json``."""

    def __init__(self, directory: str, host: str) -> None:
        self.path = os.path.join(directory, host + ".json")
        self.host = host
        try:
            with open(self.path) as stream:
                self.state: t.Dict[str, t.Any] = json.load(stream)
        except FileNotFoundError:
            self.state = {"keys": None, "unit": False, "enabled": False, "phase": 0, "peers": 0, "table": None,
                          "table_peers": 0}

    def save(self) -> None:
        temporary = self.path + ".tmp"
        with open(temporary, "w") as stream:
            json.dump(self.state, stream)
        os.replace(temporary, self.path)


class _Answers:
    """What each module returns on ``node``, and what it changes there (not in check mode)."""

    def __init__(self, node: _Node, facts: t.Dict[str, t.Any], check_mode: bool) -> None:
        self.node = node
        self.state = node.state
        self.facts = facts
        self.check_mode = check_mode
        self.dirty = False

    def change(self, **fields: t.Any) -> None:
        if not self.check_mode:
            self.state.update(fields)
            self.dirty = True

    def answer(self, module: str, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        handler = getattr(self, "_" + module.rsplit(".", 1)[-1], None)
        if handler is None:
            return {"failed": True, "msg": "bench_stub has no answer for module %s" % module}
        return handler(args)

    # netsec.ipsec ---------------------------------------------------------------------------

    def _xfrm_info(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        boot_id = boot_id_of(self.node.host)
        result: t.Dict[str, t.Any] = {"changed": False, "boot_id": boot_id, "pyroute2": False,
                                      "keyed_boot_id": boot_id if self.state["phase"] else None,
                                      "xfrm_stat": dict.fromkeys(_XFRM_STAT, 0)}
        if args.get("keys_file"):
            installed = self.state["keys"] is not None
            result.update(current_key=self.facts["current_key"] if installed else None,
                          keys_file_fingerprint=self.state["keys"], keys_file_mode=KEYS_FILE_MODE if installed else None)
        if args.get("boot_unit"):
            result["boot_unit"] = {"fingerprint": self.facts["boot_unit"] if self.state["unit"] else None,
                                   "enabled": self.state["enabled"], "systemd": True}
        if args.get("state_dir"):
            result["stored_peer_table"] = self.state["table"]
        return result

    def _xfrm_keys(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        if args.get("state") == "absent":
            changed = self.state["keys"] is not None
            self.change(keys=None)
        else:
            # The benchmark installs one content, whose file fingerprint the driver computed.
            wanted = self.facts["keys_file_fingerprint"]
            changed = wanted != self.state["keys"]
            self.change(keys=wanted)
        return {"changed": changed, "path": args.get("path"), "spi": 3, "previous_spi": None if changed else 3,
                "overhead": 16, "keys_info": [{"spi": 3, "form": "aead", "plus_marker": True,
                                               "aead": "rfc4106(gcm(aes))", "icv_bits": 128}]}

    def _sysctl_ipv6_forward(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        return {"changed": False, "enabled": args.get("enabled", True)}

    def _mesh_metrics(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        return {"changed": False, "path": args.get("path")}

    def _xfrm_endpoint(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        local = (args.get("local") or {}).get("addresses") or ["10.0.0.1"]
        phase = args.get("phase", "all")
        result: t.Dict[str, t.Any] = {"changed": False, "boot_id": boot_id_of(self.node.host), "frozen_peers": [],
                                      "converged": False, "added": [], "updated": [], "removed": []}
        try:
            peers, table = self._peers(args)
        except ValueError as error:
            return dict(result, failed=True, msg=str(error))
        counts = dict.fromkeys(("added", "updated", "removed", "unchanged", "kept"), 0)
        sas, policies = dict(counts), dict(counts)
        reached = self.state["phase"]
        if args.get("state") == "absent":
            if reached:
                result["removed"] = [_sa_line(peer, local[0]) for peer in peers] + [_sa_line(local[0], peer) for peer in peers]
            self.change(phase=0, table=None)
        elif reached == 3 and self.state["peers"] == len(peers) and (
                args.get("skip_when_converged") or phase == "all"):
            sas["unchanged"], policies["unchanged"] = 2 * len(peers), 2 * len(peers) + 2
            result["converged"] = bool(args.get("skip_when_converged")) and phase != "all"
        elif phase == "inbound":
            result["added"] = _bypass_lines() + [_sa_line(peer, local[0]) for peer in peers] + \
                [_policy_line("in", peer, "0.0.0.0/0", peer, local[0], "use") for peer in peers]
            sas["added"], policies["added"] = len(peers), len(peers) + 2
            self.change(phase=max(reached, 1), peers=len(peers))
        elif phase == "outbound":
            result["added"] = [_sa_line(local[0], peer) for peer in peers] + \
                [_policy_line("out", "0.0.0.0/0", peer, local[0], peer, "required") for peer in peers]
            sas["added"], policies["added"] = len(peers), len(peers)
            sas["unchanged"], policies["unchanged"] = len(peers), len(peers) + 2
            self.change(phase=max(reached, 2), peers=len(peers))
        else:
            result["updated"] = [_policy_line("in", peer, "0.0.0.0/0", peer, local[0], "required") for peer in peers]
            policies["updated"] = len(peers)
            sas["unchanged"], policies["unchanged"] = 2 * len(peers), len(peers) + 2
            self.change(phase=3, peers=len(peers))
        state_files = bool(result["added"] or result["updated"] or result["removed"])
        if table is not None and table != self.state["table"] and args.get("state") != "absent":
            state_files = True
            self.change(table=table, table_peers=len(peers))
        result.update(changed=state_files, state_files_changed=state_files, sas=sas, policies=policies)
        if not (args.get("_ansible_diff") or (args.get("_ansible_verbosity") or 0) >= 1):
            # As the module: the lines only with --diff or -v, the counts always.
            for key in ("added", "updated", "removed"):
                del result[key]
        if isinstance(args.get("peer_table"), dict):
            result["stored_peer_table"] = self.state["table"]
        return result

    def _peers(self, args: t.Dict[str, t.Any]) -> t.Tuple[t.List[str], t.Optional[str]]:
        """The first tunnel address of each peer of the call, and the peer table it gives (its
        fingerprint), as the module reads them: ``peers``, or ``peer_table`` with the table's
        text, or ``peer_table`` with the fingerprint of the table the node stores."""
        table = args.get("peer_table")
        if not isinstance(table, dict):
            return [str(peer["addresses"][0]) for peer in args.get("peers") or []
                    if peer.get("name") != (args.get("local") or {}).get("name")], None
        fingerprint = table.get("fingerprint")
        if table.get("peers") is not None:
            text = table["peers"]
            if "sha256:" + hashlib.sha256(text.encode()).hexdigest() != fingerprint:
                raise ValueError("peer_table.fingerprint does not match peer_table.peers")
            name = (args.get("local") or {}).get("name")
            return [str(peer["addresses"][0]) for peer in json.loads(text) if peer.get("name") != name], fingerprint
        if fingerprint != self.state["table"]:
            raise ValueError("peer_table gives no peers and the node stores table %s, not %s"
                             % (self.state["table"], fingerprint))
        return [member_address(index) for index in range(1, self.state["table_peers"] + 2)
                if member_name(index) != self.node.host][:self.state["table_peers"]], fingerprint

    # ansible.builtin, as the set-up steps of the role use them --------------------------------

    def _stat(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        del args
        return {"changed": False, "stat": {"exists": self.state["unit"]}}

    def _copy(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        changed = not self.state["unit"]
        self.change(unit=True)
        return {"changed": changed, "dest": args.get("dest"), "mode": args.get("mode"), "checksum": args.get("checksum"),
                "owner": "root", "group": "root", "size": 600, "state": "file", "uid": 0, "gid": 0}

    def _file(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        path = args.get("path") or args.get("dest") or ""
        changed = False
        if args.get("state") == "link":
            changed = not self.state["enabled"]
            self.change(enabled=True)
        elif args.get("state") == "absent":
            changed = self.state["unit"] or self.state["enabled"]
            self.change(unit=False, enabled=False)
        return {"changed": changed, "path": path, "state": args.get("state") or "file", "owner": "root",
                "group": "root", "mode": "0755", "uid": 0, "gid": 0}

    def _systemd_service(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        del args
        return {"changed": True, "name": None, "status": {}}

    def _ping(self, args: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
        return {"changed": False, "ping": args.get("data", "pong")}


def _spi(src: str, dst: str) -> int:
    return 0x30000000 | int(hashlib.sha256(("%s>%s" % (src, dst)).encode()).hexdigest()[:7], 16)


def _sa_line(src: str, dst: str) -> str:
    return ("state %s -> %s esp spi 0x%08x reqid 0x6e736563 tunnel aead rfc4106(gcm(aes)) key sha256:%s icv 128 esn "
            "replay-window 1024" % (src, dst, _spi(src, dst), hashlib.sha256((src + dst).encode()).hexdigest()[:12]))


def _policy_line(direction: str, selector_src: str, selector_dst: str, src: str, dst: str, level: str) -> str:
    def prefix(address: str) -> str:
        return address if "/" in address else address + "/32"
    return ("policy %s %s -> %s priority 28416 tmpl %s -> %s esp spi 0x00000000 reqid 0x6e736563 tunnel %s"
            % (direction, prefix(selector_src), prefix(selector_dst), src, dst, level))


def _bypass_lines() -> t.List[str]:
    return ["policy in 0.0.0.0/0 -> 0.0.0.0/0 proto tcp dport 22 priority 28160 allow",
            "policy out 0.0.0.0/0 -> 0.0.0.0/0 proto tcp sport 22 priority 28160 allow"]


def _wrapper_argument(payload: bytes, name: str) -> t.Optional[str]:
    """The ``repr()`` text of the AnsiballZ wrapper's keyword argument ``name`` (ansible-core's
    module_common.py writes its final call with each on a line of its own, ``name=<repr>,``; a
    repr holds no newline), after the module's code."""
    marker = b"\n" + name.encode("ascii") + b"="
    start = payload.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = payload.find(b",\n", start)
    return payload[start:end].decode("utf-8", "surrogateescape") if end >= 0 else None


def read_payload(payload: bytes) -> t.Tuple[str, str, t.Dict[str, t.Any]]:
    """(module name, the arguments' JSON as Ansible encoded it, the arguments) of an AnsiballZ
    payload; raises AnsibleError when the payload is not one (the benchmark stops).

    Two searches for the two lines, not a regular expression over the whole payload: the
    payload is mostly the module's zip (300 KB for xfrm_endpoint), and this stands where SSH
    would only copy it; a scan of it per module run (1.7 to 7 ms) was counted as the
    controller's CPU, twice as much for the collection's modules as for ``ping``."""
    params = _wrapper_argument(payload, "params")
    module_fqn = _wrapper_argument(payload, "module_fqn")
    if params is None or module_fqn is None:
        raise AnsibleError("bench_stub: not an AnsiballZ payload this stub can read (ansible-core changed its wrapper?)")
    encoded = ast.literal_eval(params)
    module = ast.literal_eval(module_fqn)
    return module, encoded, json.loads(encoded)["ANSIBLE_MODULE_ARGS"]


class Connection(ConnectionBase):
    """Answers every module run on the controller (see the module docstring)."""

    transport = "bench_stub"
    has_pipelining = True

    def _connect(self) -> "Connection":
        self._connected = True
        return self

    def exec_command(self, cmd: str, in_data: t.Optional[bytes] = None, sudoable: bool = True) -> t.Tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if in_data:
            return self._run_module(in_data)
        # Shell commands Ansible runs around a step that is not pipelined (copy's transfer):
        # the home directory, the temporary directory's creation, chmod, removal.
        if "echo ~" in cmd:
            return 0, b"/root\n", b""
        directory = _TEMPORARY_DIRECTORY.search(cmd)
        if directory and "mkdir" in cmd:
            name = directory.group(1)
            return 0, ("%s=/root/.ansible/tmp/%s\n" % (name, name)).encode(), b""
        return 0, b"", b""

    def _run_module(self, payload: bytes) -> t.Tuple[int, bytes, bytes]:
        module, encoded, args = read_payload(payload)
        host = str(self._play_context.remote_addr)
        directory = os.environ.get("BENCH_STUB_NODES")
        if not directory:
            raise AnsibleError("bench_stub: BENCH_STUB_NODES (the simulated nodes' directory) is not set")
        node = _Node(directory, host)
        answers = _Answers(node, json.loads(os.environ.get("BENCH_STUB_FACTS", "{}")),
                           bool(args.get("_ansible_check_mode")))
        result = answers.answer(module, args)
        if answers.dirty:
            node.save()
        if args.get("_ansible_inject_invocation"):
            result["invocation"] = {"module_args": {key: value for key, value in args.items()
                                                    if not key.startswith("_ansible_")}}
        answer = json.dumps(result).encode()
        log = os.environ.get("BENCH_STUB_LOG")
        if log:
            user_args = {key: value for key, value in args.items() if not key.startswith("_ansible_")}
            line = json.dumps({"host": host, "module": module, "args_bytes": len(encoded),
                               "user_args_bytes": len(json.dumps(user_args)), "payload_bytes": len(payload),
                               "result_bytes": len(answer), "phase": args.get("phase"),
                               "dump": encoded if os.environ.get("BENCH_STUB_DUMP") else None}) + "\n"
            descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line.encode())
            finally:
                os.close(descriptor)
        return 0, answer, b""

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        raise AnsibleError("bench_stub: fetch_file is not simulated")

    def close(self) -> None:
        self._connected = False
