# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The endpoint module's logic on a simulated kernel (issue 7, P2), and what it imports.

``reconcile_node`` runs against a fake adapter that serves dump messages built with the codec
(as the kernel sends them) and records what is applied:

* on a converged node nothing is applied, and the values Ansible masks are the keys file's,
  the desired keys and the installed ones;
* one installed SA or policy that differs in one field is found and replaced.
(That no module imports pyroute2 is proven in test_xfrm_codec.py.)
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AEAD, Key
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import all_secrets
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import load_keys_file
from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint
from ansible_collections.netsec.ipsec.plugins.module_utils._planner import derive as _derive
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.desired import build_desired
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import PlanError
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.report import secrets_of
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ALGO_AEAD, DIR_IN, Algorithm, XfrmState,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import (
    ENDPOINT_BOOT_ID, ENDPOINT_KEY_LINE, FakeKernel, FakeModule, endpoint_params,
)

BOOT_ID = ENDPOINT_BOOT_ID


@pytest.fixture
def node(tmp_path: Any, monkeypatch: Any) -> Dict[str, Any]:
    keys_file = tmp_path / "keys"
    keys_file.write_text(ENDPOINT_KEY_LINE)
    params = endpoint_params(str(keys_file), peer_count=5)
    desired = build_desired(endpoint.local_node(params, BOOT_ID), endpoint.peers_of(params),
                            load_keys_file(str(keys_file)), endpoint.plan_options(params))
    monkeypatch.setattr(endpoint, "XfrmKernel", FakeKernel)
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    FakeKernel.states = list(desired.states)
    FakeKernel.policies = list(desired.policies)
    FakeKernel.applied = []
    return dict(params=params, desired=desired, keys_file=str(keys_file))


def expected_secrets(node: Dict[str, Any]) -> set:
    """What the module masked before the fast path: keys file, desired keys, installed keys."""
    return (set(all_secrets(load_keys_file(node["keys_file"]))) | set(secrets_of(node["desired"].states))
            | set(secrets_of(FakeKernel.states)))


def test_converged_node_applies_nothing_and_masks_the_same(node: Dict[str, Any]) -> None:
    module = FakeModule()
    result = endpoint.reconcile_node(module, node["params"], BOOT_ID)
    assert not result["changed"] and FakeKernel.applied == []
    assert result["sas"]["unchanged"] == 10 and result["policies"]["unchanged"] == 12
    assert module.no_log_values == expected_secrets(node)


def test_foreign_sa_keys_are_masked_on_a_converged_node(node: Dict[str, Any]) -> None:
    foreign = XfrmState(src="192.0.2.1", dst="192.0.2.2", spi=0x99, reqid=4242,
                        aead=Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", bytes(range(100, 120)), 128))
    FakeKernel.states.append(foreign)
    module = FakeModule()
    result = endpoint.reconcile_node(module, node["params"], BOOT_ID)
    assert not result["changed"] and FakeKernel.applied == []
    assert module.no_log_values == expected_secrets(node)
    assert bytes(range(100, 120)).hex() in module.no_log_values


@pytest.mark.parametrize("field", ["key", "spi", "replay_window", "esn"])
def test_one_field_of_one_installed_sa_differs(node: Dict[str, Any], field: str) -> None:
    index = 3
    wanted = FakeKernel.states[index]
    aead = wanted.aead
    assert aead is not None
    stale = {
        "key": lambda: wanted._replace(aead=aead._replace(key=bytes(20))),
        "spi": lambda: wanted._replace(spi=wanted.spi + 1),
        "replay_window": lambda: wanted._replace(replay_window=512),
        "esn": lambda: wanted._replace(esn=False),
    }[field]()
    FakeKernel.states[index] = stale
    module = FakeModule()
    result = endpoint.reconcile_node(module, node["params"], BOOT_ID)
    assert result["changed"]
    operations = [(op.verb.value, op.entry) for op in FakeKernel.applied]
    assert ("add", wanted) in operations
    if field == "spi":  # another identity: the stale SA is purged, the wanted one added
        assert sorted(verb for verb, _obj in operations) == ["add", "delete"] and ("delete", stale) in operations
    else:
        assert operations == [("delete", stale), ("add", wanted)]
    assert module.no_log_values == expected_secrets(node)


def test_an_installed_sa_of_another_reqid_where_a_desired_one_belongs_is_refused(node: Dict[str, Any]) -> None:
    wanted = FakeKernel.states[3]
    FakeKernel.states[3] = wanted._replace(reqid=wanted.reqid + 1)
    with pytest.raises(PlanError, match="does not own"):
        endpoint.reconcile_node(FakeModule(), node["params"], BOOT_ID)
    assert FakeKernel.applied == []


@pytest.mark.parametrize("field", ["level", "priority", "template_spi", "missing"])
def test_one_field_of_one_installed_policy_differs(node: Dict[str, Any], field: str) -> None:
    index = next(i for i, p in enumerate(FakeKernel.policies) if p.dir == DIR_IN and p.templates)
    wanted = FakeKernel.policies[index]
    template = wanted.templates[0]
    if field == "missing":
        del FakeKernel.policies[index]
    else:
        FakeKernel.policies[index] = {
            "level": lambda: wanted._replace(templates=(template._replace(optional=True),)),
            "priority": lambda: wanted._replace(priority=wanted.priority + 1),
            "template_spi": lambda: wanted._replace(templates=(template._replace(spi=7),)),
        }[field]()
    result = endpoint.reconcile_node(FakeModule(), node["params"], BOOT_ID)
    assert result["changed"]
    assert [(op.verb.value, op.entry) for op in FakeKernel.applied] == [
        ("add" if field == "missing" else "update", wanted)]


# ---------------------------------------------------------------------------------------
# Secrets and key derivation on their fast paths


def test_secrets_of_spells_every_key_as_all_secrets_does(node: Dict[str, Any]) -> None:
    states = list(node["desired"].states) + [
        XfrmState(src="192.0.2.1", dst="192.0.2.2", spi=1, auth=Algorithm("auth", "hmac(sha1)", b"a" * 20, 96),
                  crypt=Algorithm("crypt", "cbc(aes)", b"c" * 16)),
        XfrmState(src="192.0.2.1", dst="192.0.2.3", spi=2, aead=Algorithm(ALGO_AEAD, "x", b"", 128))]
    expected = set()
    for state in states:
        for algorithm in state.algorithms():
            if algorithm.key:
                holder = Key(spi=1, form=FORM_AEAD, aead_name="k", aead_key=bytes(algorithm.key), icv_bits=0)
                expected |= set(all_secrets(holder))
    assert set(secrets_of(states)) == expected
    assert endpoint._with_other_keys(states, node["desired"].states) == states[-2:]


def _reference_derive_key(master: Any, src: Any, dst: Any, src_boot: Any, dst_boot: Any) -> bytes:
    """derive_key as it was before its fast path (every input checked each time)."""
    src_bytes = _derive.address_bytes(src, "source address")
    dst_bytes = _derive.address_bytes(dst, "destination address")
    src_boot_bytes = _derive.boot_id_bytes(src_boot, "source %s" % src)
    dst_boot_bytes = _derive.boot_id_bytes(dst_boot, "destination %s" % dst)
    if not isinstance(master, (bytes, bytearray)):
        raise _derive.KeyDerivationError("the master key must be bytes")
    if not master:
        return b""
    if len(master) > _derive.MAX_KEY_BYTES:
        raise _derive.KeyDerivationError("a %d-byte key is too long to derive per-pair keys from "
                                         "(at most %d bytes)" % (len(master), _derive.MAX_KEY_BYTES))
    function = hashlib.sha256 if len(master) <= _derive.SHA256_MAX_KEY_BYTES else hashlib.sha512
    return function(bytes(master) + src_bytes + dst_bytes + src_boot_bytes + dst_boot_bytes).digest()[:len(master)]


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except (_derive.KeyDerivationError, TypeError) as error:
        return type(error), str(error)


ADDRESSES = st.sampled_from(["10.0.0.1", "10.0.0.2", "fd00::1", "::ffff:10.0.0.3", "10.0.0.999", "", "x"])
BOOT_IDS = st.one_of(st.sampled_from([BOOT_ID, BOOT_ID + "\n", BOOT_ID.upper(), BOOT_ID[:-1], "", BOOT_ID + "0"]),
                     st.uuids().map(str), st.none(), st.integers())
MASTERS = st.one_of(st.binary(max_size=80), st.binary(min_size=1, max_size=40).map(bytearray), st.none(),
                    st.text(max_size=4))


@settings(max_examples=400, deadline=None)
@given(MASTERS, ADDRESSES, ADDRESSES, BOOT_IDS, BOOT_IDS)
def test_derive_key_fast_path_gives_the_same_keys_and_errors(master: Any, src: str, dst: str, src_boot: Any,
                                                             dst_boot: Any) -> None:
    assert _outcome(_derive.derive_key, master, src, dst, src_boot, dst_boot) == _outcome(
        _reference_derive_key, master, src, dst, src_boot, dst_boot)


# ---------------------------------------------------------------------------------------
# skip_when_converged: the first rollout phase recognises a node that holds the end state

def _first_phase(params: Dict[str, Any], **changes: Any) -> Dict[str, Any]:
    """The role's phase 1 arguments: every peer not yet vouched for (keep), the final check on."""
    peers = [dict(peer, inbound_level="keep", outbound="keep") for peer in params["peers"]]
    return dict(params, **dict(dict(peers=peers, phase="inbound", skip_when_converged=True), **changes))


def test_first_phase_on_a_node_holding_the_end_state_is_converged(node: Dict[str, Any]) -> None:
    module = FakeModule()
    result = endpoint.reconcile_node(module, _first_phase(node["params"]), BOOT_ID)
    assert result["converged"] is True and not result["changed"] and FakeKernel.applied == []
    assert module.no_log_values == expected_secrets(node)


def test_first_phase_without_the_check_is_not_converged(node: Dict[str, Any]) -> None:
    result = endpoint.reconcile_node(FakeModule(), _first_phase(node["params"], skip_when_converged=False), BOOT_ID)
    assert result["converged"] is False and not result["changed"]


@pytest.mark.parametrize("difference", ["missing-out-sa", "in-policy-level-use", "stale-key", "extra-owned-sa"])
def test_first_phase_on_a_node_that_differs_runs_the_phase(node: Dict[str, Any], difference: str) -> None:
    out_index = next(i for i, s in enumerate(FakeKernel.states) if s.src == "10.99.0.1")
    in_policy = next(i for i, p in enumerate(FakeKernel.policies) if p.dir == DIR_IN and p.templates)
    if difference == "missing-out-sa":
        del FakeKernel.states[out_index]
    elif difference == "in-policy-level-use":
        policy = FakeKernel.policies[in_policy]
        FakeKernel.policies[in_policy] = \
            policy._replace(templates=tuple(t._replace(optional=True) for t in policy.templates))
    elif difference == "stale-key":
        state = FakeKernel.states[out_index]
        FakeKernel.states[out_index] = state._replace(aead=state.aead._replace(key=bytes(20)))
    else:
        extra = FakeKernel.states[out_index]._replace(dst="10.98.0.99", spi=0x30000099)
        FakeKernel.states.append(extra)
    result = endpoint.reconcile_node(FakeModule(), _first_phase(node["params"]), BOOT_ID)
    assert result["converged"] is False
    # The inbound phase only adds and updates the IN side: it never touches the OUT SA.
    for operation in FakeKernel.applied:
        assert not (isinstance(operation.entry, XfrmState) and operation.entry.src == "10.99.0.1"), operation


def test_an_explicit_level_is_kept_in_the_final_check(node: Dict[str, Any]) -> None:
    """A peer given inbound_level use (an override, not keep) stays use in the end state, so a
    node holding required for it is not converged."""
    params = _first_phase(node["params"])
    params["peers"][0] = dict(params["peers"][0], inbound_level="use")
    result = endpoint.reconcile_node(FakeModule(), params, BOOT_ID)
    assert result["converged"] is False
