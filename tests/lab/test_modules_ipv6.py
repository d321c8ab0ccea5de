# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules alone (no role), IPv6 and dual-stack, and every key form, in a 3-node lab with IPv6:

    lab/run --nodes 3 --ipv6 -- pytest -q -p no:cacheprovider tests/lab/test_modules_ipv6.py

node1 and node2 are dual-stack (10.77.0.I and fd77::I), node3 is IPv6-only (fd77::3), so the
mesh has an IPv4+IPv6 pair and two IPv6-only pairs. Stages, one ansible-playbook run each:

 1. converge with an AEAD key of 20 bytes and per-pair keys: ESP in both families
 2. the same playbook again: nothing changes
 3. an auth+enc key (hmac(sha256) + cbc(aes)), per-pair keys: both keys derived per direction
 4. an AEAD key of 36 bytes with per_pair_keys: false: the master key on every SA
 5. rfc4543(gcm(aes)) with ICV 96, which the kernel refuses: a clear failure, node unchanged
 6. state: absent

Foreign entries must be byte-identical after every stage, and no key may appear in any
output (-vvv --diff) or registered result.
"""

from __future__ import annotations

import re
import secrets

import pytest

from harness import (
    FOREIGN_KEYS,
    assert_esp_everywhere,
    counts,
    derive,
    dumps,
    esp_summary,
    ping_all,
    secret_forms,
    start_lab,
    text_leaks,
    wire_spi,
)

pytestmark = pytest.mark.ipv6

NODES = ["node1", "node2", "node3"]
LOCAL = {"node1": ["10.77.0.1", "fd77::1"], "node2": ["10.77.0.2", "fd77::2"], "node3": ["fd77::3"]}
V6 = {node: "fd77::%d" % index for index, node in enumerate(NODES, start=1)}
PAIRS = [(a, b) for a in NODES for b in NODES if a != b]
# (src, dst) address pairs of every SA direction: IPv4 between node1 and node2, IPv6 between all
DIRECTIONS = [("10.77.0.1", "10.77.0.2"), ("10.77.0.2", "10.77.0.1")] + [(V6[a], V6[b]) for a, b in PAIRS]
FLOWS = [("10.77.0.1", "10.77.0.2"), ("fd77::1", "fd77::2"), ("fd77::1", "fd77::3"), ("fd77::2", "fd77::3")]
PINGS = [("node1", "10.77.0.2"), ("node2", "10.77.0.1")] + [(a, V6[b]) for a, b in PAIRS]
NODE_OF = {address: node for node, addresses in LOCAL.items() for address in addresses}

K1 = secrets.token_bytes(20)            # spi 1 rfc4106, 20 bytes
K3_AUTH = secrets.token_bytes(32)       # spi 3 hmac(sha256)
K3_ENC = secrets.token_bytes(16)        # spi 3 cbc(aes)
K4 = secrets.token_bytes(36)            # spi 4 rfc4106, 36 bytes
K5 = secrets.token_bytes(36)            # spi 5 rfc4106 with ICV 256: the kernel refuses it
MASTER_KEYS = [K1, K3_AUTH, K3_ENC, K4, K5]

LINE1 = "1 rfc4106(gcm(aes)) %s 128" % K1.hex()
LINE3 = "3 hmac(sha256) 0x%s cbc(aes) %s" % (K3_AUTH.hex(), K3_ENC.hex().upper())
LINE4 = "4+ rfc4106(gcm(aes)) 0x%s 128" % K4.hex()
LINE5 = "5 rfc4106(gcm(aes)) %s 256" % K5.hex()

KEYS_AND_ENDPOINT = """
- name: Keys
  netsec.ipsec.xfrm_keys:
    content: "{{ keys_content }}"
    # The stages replace one key form by another (GCM, then auth+enc with 20 more bytes of
    # ESP overhead, ...): this file is about what the kernel carries, not the rotation rules.
    allow_larger_overhead: true
  register: r_keys
- name: Endpoint
  netsec.ipsec.xfrm_endpoint:
    local: {addresses: "{{ local_of[inventory_hostname] }}"}
    peers: "{{ peers_of[inventory_hostname] }}"
    per_pair_keys: "{{ per_pair | default(true) }}"
  register: r_endpoint
  ignore_errors: "{{ may_fail | default(false) }}"
"""

# Per node: SAs (2 per pairing) and policies (OUT + IN per peer subnet, 2 bypass tcp/22 per
# family (the default, server side: IN dport 22, OUT sport 22), 4 for IPv6 neighbour discovery)
EXPECTED_SAS = {"node1": 6, "node2": 6, "node3": 4}
EXPECTED_POLICIES = {"node1": 14, "node2": 14, "node3": 10}


@pytest.fixture(scope="module")
def lab(lab_exec, lab_boot_id, inventory_path, lab_addresses):
    assert lab_addresses["node1"]["ipv6"] == "fd77::1", "needs lab/run --ipv6"
    return start_lab(lab_exec, lab_boot_id, inventory_path, LOCAL, "test_modules_ipv6")


def _vars(lab, line, **extra):
    return dict(keys_content=line + "\n", local_of=LOCAL, peers_of=lab.peers_of(), **extra)


def _stage(lab, lab_exec, name, line, **extra):
    results = lab.play(name, KEYS_AND_ENDPOINT, extra_vars=_vars(lab, line, **extra))
    node_dumps = lab.observe(lab_exec)
    capture, failures = ping_all(PINGS)
    return dict(results=results, dumps=node_dumps, capture=capture, failures=failures)


@pytest.fixture(scope="module")
def converged(lab, lab_exec):
    return _stage(lab, lab_exec, "converge", LINE1)


@pytest.fixture(scope="module")
def second(converged, lab):
    return dict(results=lab.play("second", KEYS_AND_ENDPOINT, extra_vars=_vars(lab, LINE1)))


@pytest.fixture(scope="module")
def auth_enc(second, lab, lab_exec):
    return _stage(lab, lab_exec, "auth_enc", LINE3)


@pytest.fixture(scope="module")
def aead36(auth_enc, lab, lab_exec):
    return _stage(lab, lab_exec, "aead36_global", LINE4, per_pair=False)


@pytest.fixture(scope="module")
def refused(aead36, lab, lab_exec):
    before = dumps(lab_exec, NODES)
    results = lab.play("refused", KEYS_AND_ENDPOINT, hosts="node1", extra_vars=_vars(lab, LINE5, may_fail=True))
    return dict(results=results, before=before, after=dumps(lab_exec, NODES))


@pytest.fixture(scope="module")
def absent(refused, lab, lab_exec):
    tasks = """
- name: Teardown
  netsec.ipsec.xfrm_endpoint:
    local: {addresses: "{{ local_of[inventory_hostname] }}"}
    state: absent
  register: r_endpoint
- name: Remove the keys file
  netsec.ipsec.xfrm_keys:
    state: absent
  register: r_keys
"""
    results = lab.play("absent", tasks, extra_vars=dict(local_of=LOCAL))
    return dict(results=results, dumps=lab.observe(lab_exec))


def _sa(node_dump, src, dst, key_id):
    (block,) = node_dump.sa(src, dst, wire_spi(key_id, src))
    return block


def _assert_mesh(stage, lab, key_id):
    assert_esp_everywhere(stage["capture"], stage["failures"], FLOWS, key_id)
    lab.assert_foreign_intact(stage["dumps"], "key id %d" % key_id)
    for node in NODES:
        assert len(stage["dumps"][node].owned_states()) == EXPECTED_SAS[node], node
        assert len(stage["dumps"][node].owned_policies()) == EXPECTED_POLICIES[node], node


def test_dual_stack_and_ipv6_only_mesh_is_esp_in_both_families(converged, lab):
    _assert_mesh(converged, lab, 1)
    for node in NODES:
        endpoint = converged["results"][node]["endpoint"]
        assert endpoint["sas"] == counts(added=EXPECTED_SAS[node])
        assert endpoint["policies"] == counts(added=EXPECTED_POLICIES[node])
    v6_packets = sum(e["packets"] for e in converged["capture"].esp if ":" in e["src"])
    v4_packets = sum(e["packets"] for e in converged["capture"].esp if ":" not in e["src"])
    assert v6_packets >= 18 and v4_packets >= 6
    lab.note("converge: %s (IPv4 %d, IPv6 %d)" % (esp_summary(converged["capture"]), v4_packets, v6_packets))


def test_per_pair_aead_keys_in_both_families(converged, lab):
    keys = set()
    for src, dst in DIRECTIONS:
        a, b = NODE_OF[src], NODE_OF[dst]
        expected = derive(K1, src, dst, lab.boot[a], lab.boot[b])
        lab.derived.append(expected)
        keys.add(expected)
        for node in (a, b):
            assert converged["dumps"][node].sa_keys(_sa(converged["dumps"][node], src, dst, 1))["aead"] == (
                "rfc4106(gcm(aes))", expected), (src, dst, node)
    assert len(keys) == len(DIRECTIONS) == 8


def test_second_run_changes_nothing(second):
    for node in NODES:
        for name in ("keys", "endpoint"):
            assert second["results"][node][name]["changed"] is False, (node, name, second["results"][node][name])
        assert second["results"][node]["endpoint"]["sas"] == counts(unchanged=EXPECTED_SAS[node])
        assert second["results"][node]["endpoint"]["policies"] == counts(unchanged=EXPECTED_POLICIES[node])


def test_auth_enc_keys_carry_traffic_with_per_pair_keys(auth_enc, lab):
    _assert_mesh(auth_enc, lab, 3)
    for src, dst in DIRECTIONS:
        a, b = NODE_OF[src], NODE_OF[dst]
        expected_auth = derive(K3_AUTH, src, dst, lab.boot[a], lab.boot[b])
        expected_enc = derive(K3_ENC, src, dst, lab.boot[a], lab.boot[b])
        lab.derived.extend([expected_auth, expected_enc])
        for node in (a, b):
            block = _sa(auth_enc["dumps"][node], src, dst, 3)
            keys = auth_enc["dumps"][node].sa_keys(block)
            assert keys["auth-trunc"] == ("hmac(sha256)", expected_auth), (src, dst, node)
            assert keys["enc"] == ("cbc(aes)", expected_enc), (src, dst, node)
            assert re.search(r"auth-trunc hmac\(sha256\) 0x[0-9a-f]{64} 128\n", block), block
    lab.note("auth+enc: " + esp_summary(auth_enc["capture"]))


def test_aead36_with_the_master_key_on_every_sa(aead36, lab):
    _assert_mesh(aead36, lab, 4)
    for node in NODES:
        for block in aead36["dumps"][node].owned_states():
            assert aead36["dumps"][node].sa_keys(block)["aead"] == ("rfc4106(gcm(aes))", K4), (node, block)
    lab.note("aead 36 bytes, per_pair_keys false: " + esp_summary(aead36["capture"]))


def test_a_key_the_kernel_refuses_fails_clearly_and_changes_nothing(refused, lab):
    for node in NODES:
        assert refused["after"][node].text == refused["before"][node].text, node
    result = refused["results"]["node1"]
    keys = result["keys"]
    assert keys["changed"] is True
    assert any("the kernel refuses ICV 256 for rfc4106(gcm(aes))" in warning for warning in keys.get("warnings", [])), keys
    endpoint = result["endpoint"]
    assert endpoint["failed"] is True and endpoint["changed"] is False, endpoint
    failed = endpoint["failed_operation"]
    assert failed.startswith("add state ") and "rfc4106(gcm(aes))" in failed and "icv 256" in failed, failed
    assert re.search(r"spi 0x5[0-9a-f]{7} ", failed), failed
    assert "rfc4106(gcm(aes)) with a 256-bit ICV" in endpoint["msg"], endpoint["msg"]
    assert "rolled back, the node is as it was" in endpoint["msg"], endpoint["msg"]
    assert endpoint["applied"] == []
    lab.note("refused: msg=%r; errno=%r extack=%r" % (endpoint["msg"], endpoint["errno"], endpoint["extack"]))


def test_absent_leaves_only_foreign_entries(absent, lab):
    lab.assert_foreign_intact(absent["dumps"], "absent")
    for node in NODES:
        assert absent["dumps"][node].owned_states() == [] and absent["dumps"][node].owned_policies() == []
        assert absent["results"][node]["endpoint"]["sas"] == counts(removed=EXPECTED_SAS[node])


def test_no_key_material_in_any_output(absent, lab):
    text = lab.ansible.text()
    assert len(lab.ansible.runs) == 6
    assert "sha256:" in text and "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in text
    kernel_keys = [key for key in lab.kernel_keys if key not in FOREIGN_KEYS]
    assert set(lab.derived) <= set(kernel_keys) and len(set(lab.derived)) == 24
    assert K4 in kernel_keys
    assert text_leaks(text, MASTER_KEYS + kernel_keys + lab.derived) == []
    assert text_leaks(text + K5.hex().upper(), [K5]) != []
    lab.note("secrets: %d output chars, %d distinct kernel keys + %d derived + %d master keys, %d forms each: 0 found"
             % (len(text), len(set(kernel_keys)), len(set(lab.derived)), len(MASTER_KEYS), len(secret_forms(K1))))
    lab.note("stage timings: " + ", ".join("%s %.1f s" % item for item in lab.timings.items()))
    print("\n".join(lab.figures))
