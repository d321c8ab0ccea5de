# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-ins for what the modules' logic talks to, shared by the unit tests and ``bench/``
(not a test file):

* ``FakeModule``: what the logic uses of ``AnsibleModule``;
* ``FakeKernel``: the kernel adapter's dump and apply, on entries a test sets;
* ``key_spellings`` and ``warning_texts``: for tests that look for key material in output;
* ``dumped_state``/``dumped_policy``: an SA or policy as the kernel's dump reply carries it
  (built with the codec, then given what the kernel adds: counters, the family of an SA's
  all-zero selector, a policy index, attributes the model does not hold), for tests that
  feed the decoder the kernel's spelling of an entry.
"""

from __future__ import annotations

import base64
import struct
import uuid
from typing import Any, Dict, List, Sequence, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import ApplyResult

from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import DEFAULT_REQID
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import Operation, XfrmPolicy, XfrmState


class ModuleFailed(Exception):
    """``fail_json`` of a ``FakeModule``: ``result`` is what the module would have returned."""

    def __init__(self, result: Dict[str, Any]) -> None:
        super().__init__(result.get("msg"))
        self.result = result


class FakeModule:
    """What the modules' logic uses of AnsibleModule: parameters, check and diff mode, the
    values Ansible masks, warnings, and ``fail_json`` (raises ``ModuleFailed``)."""

    def __init__(self, params: Any = None, check_mode: bool = False, diff: bool = False, verbosity: int = 0) -> None:
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self._verbosity = verbosity
        self.no_log_values: set = set()
        self.warnings: List[str] = []

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)

    def fail_json(self, **result: Any) -> None:
        raise ModuleFailed(result)


class FakeKernel:
    """The adapter's dump and apply (``XfrmKernel``), for a test that patches it in: the
    entries in ``states`` and ``policies`` are dumped as the kernel would send them (encoded,
    then decoded), every operation applied is encoded (so the codec accepts it) and recorded
    in ``applied``. Class attributes: the logic creates its own instance; a test sets them."""

    states: List[XfrmState] = []
    policies: List[XfrmPolicy] = []
    applied: List[Operation] = []

    def __init__(self, netns: Any = None) -> None:
        pass

    def __enter__(self) -> "FakeKernel":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        pass

    def dump_states(self) -> List[XfrmState]:
        return [decoded_state(state) for state in self.states]

    def dump_policies(self) -> List[XfrmPolicy]:
        return [decoded_policy(policy) for policy in self.policies]

    def apply(self, operations: Sequence[Operation]) -> ApplyResult:
        for operation in operations:
            C.encode_operation(operation)
        FakeKernel.applied.extend(operations)
        return ApplyResult(applied=tuple(operations))


# A node of xfrm_endpoint's logic tests: its boot id, its keys file line, its parameters.
ENDPOINT_BOOT_ID = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa"
ENDPOINT_KEY_LINE = "3+ rfc4106(gcm(aes)) 0x%s 128\n" % bytes(range(40, 60)).hex()


def endpoint_params(keys_file: str, peer_count: int) -> Dict[str, Any]:
    """xfrm_endpoint's parameters for node 10.99.0.1 with peers peer0.. at 10.98.0.2.., every
    phase at once, purge on, the default bypass, the keys file at ``keys_file``."""
    return dict(
        keys_file=keys_file, local=dict(addresses=["10.99.0.1"], subnets=None),
        peers=[dict(name="peer%d" % index, addresses=["10.98.0.%d" % (index + 2)], subnets=None,
                    boot_id=str(uuid.UUID(int=index + 1, version=4)), inbound_level=None, outbound="enable")
               for index in range(peer_count)],
        per_pair_keys=True, out_spi=None, outbound=True, phase="all", inbound_level="required",
        bypass=[dict(proto="tcp", port=22)], marks="none", reqid=DEFAULT_REQID, state="present", purge=True,
    )


def key_spellings(key_material: bytes) -> List[str]:
    """Every way key material may be written by mistake: hex in both cases, with and without
    0x, standard and URL-safe base64, padded or not."""
    lower = key_material.hex()
    texts = [lower, lower.upper(), "0x" + lower, "0x" + lower.upper()]
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        padded = encode(key_material).decode("ascii")
        texts += [padded, padded.rstrip("=")]
    return list(dict.fromkeys(texts))


def warning_texts(result: Dict[str, Any]) -> List[str]:
    """The text of each warning of a module result: ansible-core 2.19+ returns warnings as
    ``{"event": {"msg": ...}}`` summaries, older ones as strings."""
    texts = []
    for warning in result.get("warnings", []):
        while isinstance(warning, dict):
            warning = warning.get("event", warning.get("msg"))
        texts.append(str(warning))
    return texts


# ---------------------------------------------------------------------------------------
# Dump-like messages

USERSA_INFO = S.USERSA_INFO.size
CURLFT = S.USERSA_INFO.offset_of("curlft")
STATS = S.USERSA_INFO.offset_of("stats")
SEQ = S.USERSA_INFO.offset_of("seq")
SEL_FAMILY = S.SELECTOR.offset_of("family")
POLICY_INDEX = S.USERPOLICY_INFO.offset_of("index")
TEMPLATE_SHARE = S.USER_TMPL.offset_of("share")


def attribute(attr_type: int, payload: bytes) -> bytes:
    """One netlink attribute, padded."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, attr_type) + payload + b"\0" * (-length % 4)


def dumped_state(state: XfrmState, fill_family: bool = True, counters: Tuple[int, ...] = (7, 3, 1700000000, 5),
                 extra: bool = True, seq: int = 99) -> bytes:
    """A NEWSA as a dump carries ``state``: selector family filled in, counters, and
    attributes the model does not hold (lifetime counters, last use, extra flags)."""
    payload = bytearray(C.encode_newsa(state))
    if state.selector is None and fill_family:
        struct.pack_into("=H", payload, SEL_FAMILY, state.family)
    struct.pack_into("=QQQQ", payload, CURLFT, *counters)
    struct.pack_into("=III", payload, STATS, 1, 2, 3)
    struct.pack_into("=I", payload, SEQ, 17)
    tail = b""
    if extra:
        tail = (attribute(S.XFRMA_LTIME_VAL, struct.pack("=QQQQ", *counters))
                + attribute(S.XFRMA_LASTUSED, struct.pack("=Q", 9))
                + attribute(S.XFRMA_SA_EXTRA_FLAGS, struct.pack("=I", 0)))
        if state.auth is not None:  # the kernel reports the plain AUTH next to AUTH_TRUNC
            auth = state.auth
            tail += attribute(S.XFRMA_ALG_AUTH, S.ALGO.struct.pack(auth.name.encode(), len(auth.key) * 8) + auth.key)
    # As the kernel orders them: extra flags, last use and the like before the algorithms.
    return C.frame(S.XFRM_MSG_NEWSA, S.NLM_F_MULTI, seq, bytes(payload[:USERSA_INFO]) + tail
                   + bytes(payload[USERSA_INFO:]))


def dumped_policy(policy: XfrmPolicy, index: int = 0x1234, share: int = 0, seq: int = 99) -> bytes:
    """A NEWPOLICY as a dump carries ``policy``: a kernel-chosen index, and ``share`` in its
    templates when given."""
    payload = bytearray(C.encode_newpolicy(policy))
    struct.pack_into("=I", payload, POLICY_INDEX, index)
    if share and policy.templates:
        offset = payload.find(struct.pack("=HH", 4 + 64 * len(policy.templates), S.XFRMA_TMPL)) + 4
        for position in range(len(policy.templates)):
            payload[offset + 64 * position + TEMPLATE_SHARE] = share
    return C.frame(S.XFRM_MSG_NEWPOLICY, S.NLM_F_MULTI, seq, bytes(payload))


def decoded_state(state: XfrmState, **kwargs: Any) -> XfrmState:
    """``state`` as the adapter returns it from a dump (``dumped_state``, decoded)."""
    message = dumped_state(state, **kwargs)
    return C.decode_state(message, 16, len(message))


def decoded_policy(policy: XfrmPolicy, **kwargs: Any) -> XfrmPolicy:
    """``policy`` as the adapter returns it from a dump (``dumped_policy``, decoded)."""
    message = dumped_policy(policy, **kwargs)
    decoded = C.decode_policy(message, 16, len(message))
    assert decoded is not None
    return decoded
