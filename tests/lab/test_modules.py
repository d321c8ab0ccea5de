# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules alone (no role) on a real kernel with ESP on the wire, in a 3-node UML lab:

    lab/run --nodes 3 -- pytest -q -p no:cacheprovider tests/lab/test_modules.py

One sequence of stages, each a single ansible-playbook run (Ansible starts are expensive in
the lab) whose registered results, kernel dumps and packet captures are kept and asserted by
the tests below:

 1. converge: xfrm_info (boot ids) + xfrm_keys (AEAD, 20 bytes) + xfrm_endpoint on 3 nodes
 2. the same playbook again: nothing changes
 3. --check after changing a peer's subnets and adding a key: kernels byte-identical
 4. rotation (retain_previous, out_spi old then new, drop the old) under continuous ping
 5. purge with node3 removed from the peers, node3 state: absent
 6. state: absent everywhere

(Other key forms, per_pair_keys: false, a key the kernel refuses, IPv6 and dual-stack are in
test_modules_ipv6.py, which needs lab/run --ipv6.)

Foreign entries (reqid 7, template-less policies outside the band) are installed before
stage 1 and must be byte-identical after every stage. Every run is -vvv --diff, and no key
(master or derived, in any text form) may appear in any output or registered result.
"""

from __future__ import annotations

import re
import secrets

import pytest

from harness import (
    FOREIGN_KEYS,
    KEYS_FILE,
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

NODES = ["node1", "node2", "node3"]
ADDR = {node: "10.77.0.%d" % index for index, node in enumerate(NODES, start=1)}
PAIRS = [(a, b) for a in NODES for b in NODES if a != b]

# Master keys, fresh for every run.
K1 = secrets.token_bytes(20)            # spi 1 rfc4106, 20 bytes
K2 = secrets.token_bytes(20)            # spi 2 rfc4106, 20 bytes (rotation)
K6 = secrets.token_bytes(20)            # spi 6 rfc4106, 20 bytes (after the rotation)
MASTER_KEYS = [K1, K2, K6]

LINE1 = "1 rfc4106(gcm(aes)) %s 128" % K1.hex()
LINE6 = "6+ rfc4106(gcm(aes)) 0x%s 128" % K6.hex()
FLOWS = [("10.77.0.1", "10.77.0.2"), ("10.77.0.1", "10.77.0.3"), ("10.77.0.2", "10.77.0.3")]

ENDPOINT = """
- name: Endpoint
  netsec.ipsec.xfrm_endpoint:
    local:
      addresses: "{{ ipsec_addresses }}"
      subnets: "{{ (subnets_of | default({}))[inventory_hostname] | default(omit) }}"
    peers: "{{ peers_of[inventory_hostname] }}"
    per_pair_keys: "{{ per_pair | default(true) }}"
  register: r_endpoint
"""

KEYS_AND_ENDPOINT = """
- name: Keys
  netsec.ipsec.xfrm_keys:
    content: "{{ keys_content }}"
  register: r_keys
""" + ENDPOINT

INFO = """
- name: Boot id and owned entries (read-only)
  netsec.ipsec.xfrm_info:
    entries: true
    addresses: "{{ ipsec_addresses }}"
  register: r_info
"""


@pytest.fixture(scope="module")
def lab(lab_exec, lab_boot_id, inventory_path):
    return start_lab(lab_exec, lab_boot_id, inventory_path, {node: [ADDR[node]] for node in NODES}, "test_modules")


# --------------------------------------------------------------------------- stages

@pytest.fixture(scope="module")
def converged(lab, lab_exec):
    results = lab.play("converge", KEYS_AND_ENDPOINT, extra_vars=dict(keys_content=LINE1 + "\n", peers_of=lab.peers_of()))
    node_dumps = lab.observe(lab_exec)
    capture, failures = ping_all([(a, ADDR[b]) for a, b in PAIRS])
    return dict(results=results, dumps=node_dumps, capture=capture, failures=failures)


@pytest.fixture(scope="module")
def second(converged, lab):
    return dict(results=lab.play("second", KEYS_AND_ENDPOINT + INFO,
                                 extra_vars=dict(keys_content=LINE1 + "\n", peers_of=lab.peers_of())))


@pytest.fixture(scope="module")
def checked(second, lab, lab_exec):
    keys_sum = {node: lab_exec(node, "sha256sum", KEYS_FILE).stdout for node in NODES}
    before = dumps(lab_exec, NODES)
    subnets = {"node3": ["10.77.0.3/32", "10.244.3.0/24"]}
    tasks = """
- name: Add a key (check mode)
  netsec.ipsec.xfrm_keys:
    keys:
      - spi: 2
        aead: rfc4106(gcm(aes))
        aead_key: "{{ key2 }}"
        icv_bits: 128
    retain_previous: true
  register: r_keys
""" + ENDPOINT
    results = lab.play("check", tasks, args=("-vvv", "--diff", "--check"),
                       extra_vars=dict(key2=K2.hex(), peers_of=lab.peers_of(subnets=subnets), subnets_of=subnets))
    after = dumps(lab_exec, NODES)
    keys_sum_after = {node: lab_exec(node, "sha256sum", KEYS_FILE).stdout for node in NODES}
    return dict(results=results, before=before, after=after, keys_sum=keys_sum, keys_sum_after=keys_sum_after)


ROTATE = """
- name: Add the new key, keeping the current one
  netsec.ipsec.xfrm_keys:
    keys:
      - spi: 2
        aead: rfc4106(gcm(aes))
        aead_key: "{{ key2 }}"
        icv_bits: 128
    retain_previous: true
  register: r_keys_add
- name: The new key's SAs everywhere, egress still on the old one
  netsec.ipsec.xfrm_endpoint:
    local: {addresses: "{{ ipsec_addresses }}"}
    peers: "{{ peers_of[inventory_hostname] }}"
    out_spi: 1
  register: r_ep_old
- name: Egress switches to the new key
  netsec.ipsec.xfrm_endpoint:
    local: {addresses: "{{ ipsec_addresses }}"}
    peers: "{{ peers_of[inventory_hostname] }}"
    out_spi: 2
  register: r_ep_new
- name: Grace period
  ansible.builtin.pause:
    seconds: 1
- name: Drop the old key from the file
  netsec.ipsec.xfrm_keys:
    keys:
      - spi: 2
        aead: rfc4106(gcm(aes))
        aead_key: "{{ key2 }}"
        icv_bits: 128
  register: r_keys_drop
- name: Remove the old key's SAs
  netsec.ipsec.xfrm_endpoint:
    local: {addresses: "{{ ipsec_addresses }}"}
    peers: "{{ peers_of[inventory_hostname] }}"
  register: r_ep_drop
"""


@pytest.fixture(scope="module")
def rotated(checked, lab, lab_exec, under_traffic):
    # Continuous pings in every direction while the whole rotation runs, under one capture.
    with under_traffic(pings=[(a, ADDR[b]) for a, b in PAIRS], work=lab.ansible.work, ping_interval=0.1,
                       quiet_pings=False, capture=True, lead=1.0, tail=1.0) as window:
        results = lab.play("rotation", ROTATE, extra_vars=dict(key2=K2.hex(), peers_of=lab.peers_of()))
    pings = {(a, b): (window.pings[(a, ADDR[b])]["sent"], window.pings[(a, ADDR[b])]["received"]) for a, b in PAIRS}
    node_dumps = lab.observe(lab_exec)
    after_capture, failures = ping_all([(a, ADDR[b]) for a, b in PAIRS])
    return dict(results=results, capture=window.capture, pings=pings, dumps=node_dumps,
                after_capture=after_capture, failures=failures)


@pytest.fixture(scope="module")
def purged(rotated, lab, lab_exec):
    tasks = """
- name: Keys
  netsec.ipsec.xfrm_keys:
    content: "{{ keys_content }}"
  register: r_keys
- name: Endpoint, node3 left the mesh
  netsec.ipsec.xfrm_endpoint:
    local: {addresses: "{{ ipsec_addresses }}"}
    peers: "{{ peers_of[inventory_hostname] | default([]) }}"
    purge: true
    state: "{{ 'absent' if inventory_hostname == 'node3' else 'present' }}"
  register: r_endpoint
"""
    results = lab.play("purge", tasks, extra_vars=dict(keys_content=LINE6 + "\n",
                                                       peers_of=lab.peers_of(members=["node1", "node2"])))
    node_dumps = lab.observe(lab_exec)
    capture, failures = ping_all([("node1", ADDR["node2"]), ("node2", ADDR["node1"])])
    return dict(results=results, dumps=node_dumps, capture=capture, failures=failures)


@pytest.fixture(scope="module")
def absent(purged, lab, lab_exec):
    tasks = """
- name: Teardown
  netsec.ipsec.xfrm_endpoint:
    local: {addresses: "{{ ipsec_addresses }}"}
    state: absent
  register: r_endpoint
- name: Remove the keys file
  netsec.ipsec.xfrm_keys:
    state: absent
  register: r_keys
"""
    results = lab.play("absent", tasks)
    return dict(results=results, dumps=lab.observe(lab_exec))


# --------------------------------------------------------------------------- assertions

def test_converge_installs_the_mesh_and_esp_flows_both_ways(converged, lab):
    for node in NODES:
        result = converged["results"][node]
        assert result["keys"]["changed"] is True and result["keys"]["spi"] == 1
        endpoint = result["endpoint"]
        assert endpoint["changed"] is True
        # 2 peers x (OUT + IN) SAs; 2 peers x (OUT + IN) policies + 2 bypass policies (the
        # default tcp/22 server side: IN dport 22, OUT sport 22)
        assert endpoint["sas"] == counts(added=4)
        assert endpoint["policies"] == counts(added=6)
        node_dump = converged["dumps"][node]
        assert len(node_dump.owned_states()) == 4 and len(node_dump.owned_policies()) == 6
    assert_esp_everywhere(converged["capture"], converged["failures"], FLOWS, 1)
    lab.note("converge: pings 6x3, " + esp_summary(converged["capture"]))


def test_foreign_entries_survive_converge(converged, lab):
    lab.assert_foreign_intact(converged["dumps"], "converge")


def test_per_pair_keys_differ_per_direction_and_match_both_ends(converged, lab):
    """Both ends hold exactly the hashlib-derived key of each direction; all six differ."""
    seen = set()
    for a, b in PAIRS:
        expected = derive(K1, ADDR[a], ADDR[b], lab.boot[a], lab.boot[b])
        lab.derived.append(expected)
        spi = wire_spi(1, ADDR[a])
        out_sa = converged["dumps"][a].sa(ADDR[a], ADDR[b], spi)
        in_sa = converged["dumps"][b].sa(ADDR[a], ADDR[b], spi)
        assert len(out_sa) == 1 and len(in_sa) == 1, (a, b)
        for block in out_sa + in_sa:
            algo, key = converged["dumps"][a].sa_keys(block)["aead"]
            assert algo == "rfc4106(gcm(aes))" and key == expected, (a, b)
        seen.add(expected)
    assert len(seen) == len(PAIRS)
    assert K1 not in seen


def test_second_run_changes_nothing(second, lab):
    for node in NODES:
        result = second["results"][node]
        for name in ("keys", "endpoint", "info"):
            assert result[name]["changed"] is False, (node, name, result[name])
        assert result["endpoint"]["sas"] == counts(unchanged=4)
        assert result["endpoint"]["policies"] == counts(unchanged=6)
        assert result["endpoint"]["added"] == result["endpoint"]["updated"] == result["endpoint"]["removed"] == []
        info = result["info"]
        assert info["boot_id"] == lab.boot[node]
        assert len(info["sas"]) == 4 and len(info["policies"]) == 6
        assert info["foreign_sas"] == 2 and info["foreign_policies"] == 4
        assert sorted(sa["direction"] for sa in info["sas"]) == ["in", "in", "out", "out"]
        assert all(sa["packets"] > 0 for sa in info["sas"]), info["sas"]


def test_check_mode_reports_the_delta_and_leaves_kernels_byte_identical(checked):
    for node in NODES:
        assert checked["after"][node].text == checked["before"][node].text, node
        assert checked["keys_sum_after"][node] == checked["keys_sum"][node], node
        keys = checked["results"][node]["keys"]
        assert keys["changed"] is True
        assert [k["spi"] for k in keys["keys_info"]] == [1, 2]
        assert keys["spi"] == 2 and keys["previous_spi"] == 1
        assert "sha256:" in keys["diff"]["after"] and keys["diff"]["after"] != keys["diff"]["before"]
        endpoint = checked["results"][node]["endpoint"]
        assert endpoint["changed"] is True
        assert endpoint["sas"] == counts(unchanged=4)
        assert endpoint["removed"] == [] and endpoint["updated"] == []
    for node in ("node1", "node2"):
        endpoint = checked["results"][node]["endpoint"]
        assert endpoint["policies"] == counts(added=2, unchanged=6)
        assert sorted(line.split(" priority")[0] for line in endpoint["added"]) == [
            "policy in 10.244.3.0/24 -> 0.0.0.0/0", "policy out 0.0.0.0/0 -> 10.244.3.0/24"]
        # The diff of the owned entries, then of the boot restore file that would follow them.
        xfrm_diff, boot_diff = endpoint["diff"]
        assert xfrm_diff["before_header"] == "xfrm (entries owned by netsec.ipsec)", xfrm_diff
        assert "10.244.3.0/24" in xfrm_diff["after"] and "10.244.3.0/24" not in xfrm_diff["before"]
        assert boot_diff["before_header"] == "/var/lib/netsec-ipsec/boot-policies", boot_diff
        assert "10.244.3.0/24" in boot_diff["after"] and "10.244.3.0/24" not in boot_diff["before"]
    # node3 now routes a subnet: FWD policies from both peers
    endpoint = checked["results"]["node3"]["endpoint"]
    assert endpoint["policies"] == counts(added=2, unchanged=6)
    assert sorted(line.split(" priority")[0] for line in endpoint["added"]) == [
        "policy fwd 10.77.0.1/32 -> 0.0.0.0/0", "policy fwd 10.77.0.2/32 -> 0.0.0.0/0"]


def test_rotation_keeps_traffic_flowing_and_encrypted(rotated, lab):
    capture = rotated["capture"]
    assert capture.returncode == 0, capture.stdout[-5000:] + capture.stderr
    assert capture.plaintext == [], capture.plaintext
    for a, b in PAIRS:
        sent, received = rotated["pings"][(a, b)]
        assert sent >= 20 and received >= sent - 1, (a, b, sent, received)
        for key_id in (1, 2):
            spi = "0x%08x" % wire_spi(key_id, ADDR[a])
            assert capture.esp_packets(src=ADDR[a], dst=ADDR[b], spi=spi) > 0, (a, b, key_id, capture.esp)
    for node in NODES:
        result = rotated["results"][node]
        assert [k["spi"] for k in result["keys_add"]["keys_info"]] == [1, 2]
        assert result["ep_old"]["sas"] == counts(added=4, unchanged=4)
        assert result["ep_old"]["policies"] == counts(unchanged=6)
        assert result["ep_new"]["sas"] == counts(unchanged=8)
        assert result["ep_new"]["policies"] == counts(updated=2, unchanged=4)
        assert [k["spi"] for k in result["keys_drop"]["keys_info"]] == [2]
        assert result["ep_drop"]["sas"] == counts(removed=4, unchanged=4)
        assert result["ep_drop"]["policies"] == counts(unchanged=6)
        states = rotated["dumps"][node].owned_states()
        assert len(states) == 4 and all(re.search(r"spi 0x2[0-9a-f]{7} ", block) for block in states), states
    assert_esp_everywhere(rotated["after_capture"], rotated["failures"], FLOWS, 2)
    lab.note("rotation: pings (sent, received) %s; %s; ESP per key id: 1: %d, 2: %d" % (
        sorted(rotated["pings"].values()), esp_summary(capture),
        sum(e["packets"] for e in capture.esp if e["spi"].startswith("0x1")),
        sum(e["packets"] for e in capture.esp if e["spi"].startswith("0x2"))))
    lab.note("after rotation: " + esp_summary(rotated["after_capture"]))


def test_rotation_derives_the_new_keys_and_keeps_foreign_entries(rotated, lab):
    lab.assert_foreign_intact(rotated["dumps"], "rotation")
    for a, b in PAIRS:
        expected = derive(K2, ADDR[a], ADDR[b], lab.boot[a], lab.boot[b])
        lab.derived.append(expected)
        for node in (a, b):
            (block,) = rotated["dumps"][node].sa(ADDR[a], ADDR[b], wire_spi(2, ADDR[a]))
            assert rotated["dumps"][node].sa_keys(block)["aead"] == ("rfc4106(gcm(aes))", expected)


def test_purge_removes_the_departed_peer_and_keeps_the_rest(purged, lab):
    assert_esp_everywhere(purged["capture"], purged["failures"], [FLOWS[0]], 6)
    lab.note("purge: node1<->node2 " + esp_summary(purged["capture"]))
    lab.assert_foreign_intact(purged["dumps"], "purge")
    for node in ("node1", "node2"):
        node_dump = purged["dumps"][node]
        assert len(node_dump.owned_states()) == 2 and len(node_dump.owned_policies()) == 4
        assert "10.77.0.3" not in "\n".join(node_dump.owned_states() + node_dump.owned_policies())
        endpoint = purged["results"][node]["endpoint"]
        assert endpoint["sas"] == counts(added=2, removed=4)
        assert endpoint["policies"] == counts(updated=1, removed=2, unchanged=3)
        assert any("10.77.0.3" in line for line in endpoint["removed"])
    node3 = purged["dumps"]["node3"]
    assert node3.owned_states() == [] and node3.owned_policies() == []
    assert purged["results"]["node3"]["endpoint"]["sas"] == counts(removed=4)
    assert purged["results"]["node3"]["endpoint"]["policies"] == counts(removed=6)


def test_absent_removes_every_owned_entry_and_only_those(absent, lab):
    lab.assert_foreign_intact(absent["dumps"], "absent")
    for node in NODES:
        node_dump = absent["dumps"][node]
        assert node_dump.owned_states() == [] and node_dump.owned_policies() == []
        assert len(node_dump.foreign_states()) == 2 and len(node_dump.foreign_policies()) == 4
        assert absent["results"][node]["keys"]["changed"] is True
    for node in ("node1", "node2"):
        assert absent["results"][node]["endpoint"]["changed"] is True
        assert absent["results"][node]["endpoint"]["sas"] == counts(removed=2)
    assert absent["results"]["node3"]["endpoint"]["changed"] is False


def test_no_key_material_in_any_output(absent, lab):
    text = lab.ansible.text()
    assert len(lab.ansible.runs) == 6
    assert "sha256:" in text           # fingerprints are there, keys are not
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in text    # module arguments are there, masked
    kernel_keys = [key for key in lab.kernel_keys if key not in FOREIGN_KEYS]
    assert set(lab.derived) <= set(kernel_keys) and len(set(lab.derived)) == 12
    assert text_leaks(text, MASTER_KEYS + kernel_keys + lab.derived) == []
    # The check is real: the same grep finds a key when it is there.
    assert text_leaks(text + K1.hex().upper(), [K1]) != []
    lab.note("secrets: %d output chars, %d distinct kernel keys + %d derived + %d master keys, %d forms each: 0 found"
             % (len(text), len(set(kernel_keys)), len(set(lab.derived)), len(MASTER_KEYS), len(secret_forms(K1))))
    lab.note("stage timings: " + ", ".join("%s %.1f s" % item for item in lab.timings.items()))
    print("\n".join(lab.figures))
