# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drive module xfrm_keys end to end (AnsibleModule, no kernel needed) on temporary files."""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import stat
from pathlib import Path
from typing import Any, Dict

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netsec.ipsec.plugins.modules import xfrm_keys
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import warning_texts

GCM = "rfc4106(gcm(aes))"
KEY_A = "3db536c1f0e7a9b2c4d5e6f708192a3b4c5d6e7f"
KEY_B = "0cd31990a1b2c3d4e5f60718293a4b5c6d7e8f90"
HMAC_KEY = "4a18f285c49b0bc6e17ad1ed8a4d4ac7981d277df814775f81a8fb77dfa39cd1"
CBC_KEY = "0b0459a00ef7bd52c806608a1d3e7c52"


def run(capsys: pytest.CaptureFixture, check: bool = False, diff: bool = True, **args: Any) -> Dict[str, Any]:
    module_args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(module_args):
        with pytest.raises(SystemExit):
            xfrm_keys.main()
    output = capsys.readouterr().out
    return json.loads(output)


def secret_spellings(hex_key: str):
    raw = bytes.fromhex(hex_key)
    return [hex_key, hex_key.upper(), base64.b64encode(raw).decode()]


def assert_no_secret(result: Dict[str, Any], *hex_keys: str) -> None:
    text = json.dumps(result)
    for hex_key in hex_keys:
        for spelling in secret_spellings(hex_key):
            assert spelling not in text


def test_writes_the_file_atomically_with_mode_0600(tmp_path: Path, capsys) -> None:
    path = tmp_path / "ipsec" / "keys"
    result = run(capsys, path=str(path), content="3+ %s 0x%s 128" % (GCM, KEY_A))
    assert result["changed"] is True
    assert path.read_text() == "3+ %s 0x%s 128\n" % (GCM, KEY_A)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["keys"]  # no temporary file left
    assert result["spi"] == 3 and result["overhead"] == 16
    assert result["keys_info"][0]["fingerprint"].startswith("sha256:")
    assert result["diff"]["before"] == ""
    assert result["diff"]["after"] == "3+ %s %s 128\n" % (GCM, result["keys_info"][0]["fingerprint"])
    assert_no_secret(result, KEY_A)


def test_second_run_reports_no_change(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    content = "3+ %s 0x%s 128\n" % (GCM, KEY_A)
    run(capsys, path=str(path), content=content)
    result = run(capsys, path=str(path), content=content)
    assert result["changed"] is False


def test_check_mode_changes_nothing_and_shows_the_masked_delta(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A))
    path.chmod(0o600)
    before = path.read_bytes()
    new = "3+ %s 0x%s 128\n4+ %s 0x%s 128\n" % (GCM, KEY_A, GCM, KEY_B)
    result = run(capsys, check=True, path=str(path), content=new)
    assert result["changed"] is True
    assert path.read_bytes() == before
    assert result["diff"]["before"].count("\n") == 1 and result["diff"]["after"].count("\n") == 2
    assert result["spi"] == 4
    assert_no_secret(result, KEY_A, KEY_B)


def test_a_rejected_content_changes_nothing_and_names_the_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A))
    before = path.read_bytes()
    result = run(capsys, path=str(path), content="3+ %s 0x%s 128\n3+ %s 0x%s 128\n" % (GCM, KEY_A, GCM, KEY_B))
    assert result["failed"] is True
    assert "option content, line 2" in result["msg"] and "key ID (SPI) 3" in result["msg"]
    assert path.read_bytes() == before
    assert_no_secret(result, KEY_A, KEY_B)


def test_keys_list_is_rendered_canonically(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    keys = [dict(spi=1, aead=GCM, aead_key=KEY_A, icv_bits=128),
            dict(spi=2, auth=None, aead=GCM, aead_key="0x" + KEY_B, icv_bits=128)]
    result = run(capsys, path=str(path), keys=keys)
    assert result["changed"] is True and result["spi"] == 2
    assert path.read_text() == "1+ %s 0x%s 128\n2+ %s 0x%s 128\n" % (GCM, KEY_A, GCM, KEY_B)
    assert_no_secret(result, KEY_A, KEY_B)


def test_bad_keys_item_names_the_item(tmp_path: Path, capsys) -> None:
    result = run(capsys, path=str(tmp_path / "keys"), keys=[dict(spi=1, aead="gcm(aes)", aead_key=KEY_A, icv_bits=128)])
    assert result["failed"] is True and "keys[0]" in result["msg"]
    assert not (tmp_path / "keys").exists()


def test_report_only_never_changes_the_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    path.write_text("7 %s 0x%s 96\n" % (GCM, KEY_A))
    path.chmod(0o644)
    result = run(capsys, path=str(path))
    assert result["changed"] is False
    assert result["spi"] == 7 and result["overhead"] == 12
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert_no_secret(result, KEY_A)


def test_report_only_on_a_missing_file_fails_clearly(tmp_path: Path, capsys) -> None:
    result = run(capsys, path=str(tmp_path / "nope"))
    assert result["failed"] is True and "nope: no such file" in result["msg"]


def test_report_only_on_a_bad_file_names_the_file_and_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n\n" % (GCM, KEY_A))
    result = run(capsys, path=str(path))
    assert result["failed"] is True and "%s, line 2" % path in result["msg"]
    assert_no_secret(result, KEY_A)


def test_replacing_an_invalid_file_does_not_show_its_content(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    path.write_text("garbage %s\n" % KEY_B)
    result = run(capsys, path=str(path), content="1+ %s 0x%s 128\n" % (GCM, KEY_A))
    assert result["changed"] is True
    assert "not a valid keys file" in result["diff"]["before"]
    assert_no_secret(result, KEY_A, KEY_B)


def test_mode_change_alone_is_a_change(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    content = "3+ %s 0x%s 128\n" % (GCM, KEY_A)
    path.write_text(content)
    path.chmod(0o644)
    result = run(capsys, path=str(path), content=content)
    assert result["changed"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_absent_removes_and_check_mode_keeps(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A))
    result = run(capsys, check=True, path=str(path), state="absent")
    assert result["changed"] is True and path.exists()
    assert_no_secret(result, KEY_A)
    result = run(capsys, path=str(path), state="absent")
    assert result["changed"] is True and not path.exists()
    assert run(capsys, path=str(path), state="absent")["changed"] is False


def test_retain_previous_keeps_the_current_key_then_settles(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A))
    new_line = "4+ %s 0x%s 128\n" % (GCM, KEY_B)
    result = run(capsys, path=str(path), content=new_line, retain_previous=True)
    assert result["changed"] is True and result["previous_spi"] == 3 and result["spi"] == 4
    assert path.read_text() == "3+ %s 0x%s 128\n" % (GCM, KEY_A) + new_line
    assert_no_secret(result, KEY_A, KEY_B)
    assert run(capsys, path=str(path), content=new_line, retain_previous=True)["changed"] is False
    # The rotation's last step drops the old line; re-running the first step then keeps it so.
    assert run(capsys, path=str(path), content=new_line)["changed"] is True
    assert run(capsys, path=str(path), content=new_line, retain_previous=True)["changed"] is False
    assert path.read_text() == new_line


def test_retain_previous_refuses_a_reused_spi_or_a_larger_overhead(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A))
    before = path.read_bytes()
    result = run(capsys, path=str(path), content="3+ %s 0x%s 128\n" % (GCM, KEY_B), retain_previous=True)
    assert result["failed"] is True and "key ID (SPI) 3" in result["msg"]
    cbc_line = "4+ hmac(sha256) 0x%s cbc(aes) 0x%s\n" % (HMAC_KEY, CBC_KEY)
    for retain in (True, False):
        result = run(capsys, path=str(path), content=cbc_line, retain_previous=retain)
        assert result["failed"] is True and "adds up to 57 bytes of ESP overhead" in result["msg"], result
        assert "more than the 37 of key ID 3" in result["msg"] and "allow_larger_overhead" in result["msg"]
        assert path.read_bytes() == before
        assert_no_secret(result, KEY_A, KEY_B, HMAC_KEY, CBC_KEY)


def test_a_rotation_to_a_longer_key_of_the_same_overhead_needs_no_flag(tmp_path: Path, capsys) -> None:
    """AES-128-GCM to AES-256-GCM (issue 16): the first step keeps the old key, the last drops it."""
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A))
    path.chmod(0o600)
    new_line = "4+ %s 0x%s 128\n" % (GCM, KEY_B + "00112233" * 4)
    first = run(capsys, path=str(path), content=new_line, retain_previous=True)
    assert first["changed"] is True and [key["spi"] for key in first["keys_info"]] == [3, 4]
    assert first["esp_overhead"] == 37 and first["keys_info"][1]["key_bits"] == 288
    last = run(capsys, path=str(path), content=new_line)
    assert last["changed"] is True and last["spi"] == 4 and path.read_text() == new_line
    assert run(capsys, path=str(path), content=new_line)["changed"] is False


def test_a_larger_overhead_is_allowed_when_the_operator_says_so(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A))
    path.chmod(0o600)
    cbc_line = "4+ hmac(sha256) 0x%s cbc(aes) 0x%s\n" % (HMAC_KEY, CBC_KEY)
    result = run(capsys, path=str(path), content=cbc_line, retain_previous=True, allow_larger_overhead=True)
    assert result["changed"] is True and result["esp_overhead"] == 57
    assert [key["esp_overhead"] for key in result["keys_info"]] == [37, 57]


def test_allow_rotation_false_refuses_a_new_current_key(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    old_line = "3+ %s 0x%s 128\n" % (GCM, KEY_A)
    path.write_text(old_line)
    path.chmod(0o600)
    result = run(capsys, path=str(path), content="4+ %s 0x%s 128\n" % (GCM, KEY_B), allow_rotation=False)
    assert result["failed"] is True and "netsec.ipsec.rotate" in result["msg"] and "from 3 to 4" in result["msg"]
    assert path.read_text() == old_line
    assert run(capsys, path=str(path), content=old_line, allow_rotation=False)["changed"] is False
    assert run(capsys, path=str(tmp_path / "fresh"), content=old_line, allow_rotation=False)["changed"] is True


@pytest.mark.parametrize("new_line", [
    "3+ %s 0x%s 128\n" % (GCM, KEY_B),                      # other key bytes
    "3+ %s 0x%s 96\n" % (GCM, KEY_A),                       # other ICV
    "3 %s 0x%s 128\n" % (GCM, KEY_A),                       # no "+": other key derivation
], ids=["key-bytes", "icv", "plus-marker"])
def test_allow_rotation_false_refuses_a_changed_key_under_the_same_id(tmp_path: Path, capsys, new_line: str) -> None:
    path = tmp_path / "keys"
    old_line = "3+ %s 0x%s 128\n" % (GCM, KEY_A)
    path.write_text(old_line)
    path.chmod(0o600)
    result = run(capsys, path=str(path), content=new_line, allow_rotation=False)
    assert result["failed"] is True, result
    assert "key ID 3 without a new key ID" in result["msg"] and "netsec.ipsec.rotate" in result["msg"]
    assert path.read_text() == old_line
    assert_no_secret(result, KEY_A, KEY_B)
    # Allowed when the caller asked for it (the module alone, outside the role).
    assert run(capsys, path=str(path), content=new_line, allow_rotation=True)["changed"] is True


def test_allow_rotation_false_accepts_dropping_the_previous_key(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    new_line = "4+ %s 0x%s 128\n" % (GCM, KEY_B)
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A) + new_line)
    path.chmod(0o600)
    result = run(capsys, path=str(path), content=new_line, allow_rotation=False)
    assert result["changed"] is True and path.read_text() == new_line


def test_allow_rotation_false_repairs_a_node_to_the_key_its_peers_use(tmp_path: Path, capsys) -> None:
    """A node whose key id 3 has other bytes than the mesh's is rewritten when the peers'
    current key (as xfrm_info reports it, masked) is the new content's; otherwise refused."""
    from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
    from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import render_masked_key_line

    path = tmp_path / "keys"
    stray_line = "3+ %s 0x%s 128\n" % (GCM, KEY_A)
    mesh_line = "3+ %s 0x%s 128\n" % (GCM, KEY_B)
    mesh_key = render_masked_key_line(parse_keys_text(mesh_line).current)
    stray_key = render_masked_key_line(parse_keys_text(stray_line).current)
    assert KEY_B not in mesh_key
    path.write_text(stray_line)
    path.chmod(0o600)
    refused = run(capsys, path=str(path), content=mesh_line, allow_rotation=False, mesh_current_keys=[stray_key])
    assert refused["failed"] is True and path.read_text() == stray_line
    repaired = run(capsys, path=str(path), content=mesh_line, allow_rotation=False, mesh_current_keys=[stray_key, mesh_key])
    assert repaired["changed"] is True and path.read_text() == mesh_line
    assert_no_secret(repaired, KEY_A, KEY_B)
    # A new key id is still a rotation, whatever the peers hold.
    new_id_line = "4+ %s 0x%s 128\n" % (GCM, KEY_A)
    new_id_key = render_masked_key_line(parse_keys_text(new_id_line).current)
    rotation = run(capsys, path=str(path), content=new_id_line, allow_rotation=False, mesh_current_keys=[new_id_key])
    assert rotation["failed"] is True and "from 3 to 4" in rotation["msg"] and path.read_text() == mesh_line


@pytest.mark.parametrize("args", [
    dict(content="3+ %s 0x%s 128\n" % (GCM, KEY_B)),     # another content
    dict(content="3+ %s 0x%s 128\n" % (GCM, KEY_A)),     # the content the target holds
    dict(state="absent"),
    dict(state="absent", check=True),
], ids=["write", "same-content", "absent", "absent-check"])
def test_a_symlink_at_path_is_refused_and_nothing_changes(tmp_path: Path, capsys, args: Dict[str, Any]) -> None:
    target = tmp_path / "real-keys"
    target.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A))
    target.chmod(0o644)
    link = tmp_path / "keys"
    link.symlink_to(target)
    result = run(capsys, path=str(link), **args)
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("%s: it is a symbolic link" % link)
    assert link.is_symlink() and target.read_text() == "3+ %s 0x%s 128\n" % (GCM, KEY_A)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["keys", "real-keys"]
    assert_no_secret(result, KEY_A, KEY_B)


def test_owner_group_and_the_other_common_file_options(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    content = "3+ %s 0x%s 128\n" % (GCM, KEY_A)
    user, group = pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
    result = run(capsys, path=str(path), content=content, owner=user, group=group, mode="0640", unsafe_writes=True)
    assert result["changed"] is True and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert (result["owner"], result["group"], result["mode"]) == (user, group, "0640")
    assert run(capsys, path=str(path), content=content, owner=user, group=group, mode="0640")["changed"] is False
    assert run(capsys, path=str(path), content=content)["changed"] is True  # back to the default 0600
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- keys that protect nothing, weak keys, legacy algorithms (issue 13) --------------

NULL_LINE = '3 digest_null "" cipher_null ""\n'  # Cilium's own null test vector
GMAC_LINE = "3+ rfc4543(gcm(aes)) 0x%s 128\n" % KEY_A
HMAC_KEY = "5e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100ff"
CBC_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.mark.parametrize("content,fragment", [
    (NULL_LINE, "field 2 (authentication algorithm): digest_null authenticates nothing"),
    (GMAC_LINE, "field 2 (AEAD algorithm): rfc4543(gcm(aes)) is GMAC"),
    ('3 hmac(sha256) %s cipher_null ""\n' % HMAC_KEY, "field 4 (encryption algorithm): cipher_null encrypts nothing"),
])
def test_a_suite_that_protects_nothing_is_refused_naming_line_and_option(
        tmp_path: Path, capsys, content: str, fragment: str) -> None:
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_B))
    before = path.read_bytes()
    result = run(capsys, path=str(path), content=content)
    assert result["failed"] is True
    assert result["msg"].startswith("option content, line 1: " + fragment)
    assert "allow_insecure_suites=true" in result["msg"]
    assert path.read_bytes() == before
    assert_no_secret(result, KEY_A, KEY_B, HMAC_KEY)


def test_the_list_form_names_the_item_and_field(tmp_path: Path, capsys) -> None:
    keys = [dict(spi=1, aead="rfc4543(gcm(aes))", aead_key=KEY_A, icv_bits=128)]
    result = run(capsys, path=str(tmp_path / "keys"), keys=keys)
    assert result["failed"] is True
    assert result["msg"].startswith("option keys[0].aead: rfc4543(gcm(aes)) is GMAC")
    keys = [dict(spi=1, auth="hmac(sha256)", auth_key=HMAC_KEY, enc="cipher_null", enc_key="")]
    result = run(capsys, path=str(tmp_path / "keys"), keys=keys)
    assert result["msg"].startswith("option keys[0].enc: cipher_null encrypts nothing")
    assert not (tmp_path / "keys").exists()


def test_a_test_rig_may_write_and_report_such_a_file_with_the_option(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    result = run(capsys, path=str(path), content=NULL_LINE, allow_insecure_suites=True)
    assert result["changed"] is True and path.read_text() == NULL_LINE
    assert any("accepted because allow_insecure_suites is true" in warning for warning in warning_texts(result))
    # Re-validating it (no content) needs the option as well; without it the file is refused.
    again = run(capsys, path=str(path), allow_insecure_suites=True)
    assert again["changed"] is False and again["spi"] == 3
    refused = run(capsys, path=str(path))
    assert refused["failed"] is True and "%s, line 1: " % path in refused["msg"]
    assert "allow_insecure_suites=true" in refused["msg"]
    # A rotation away from it onto a key that protects is fine without the option.
    rotated = run(capsys, path=str(path), content="4+ %s 0x%s 128\n" % (GCM, KEY_A))
    assert rotated["changed"] is True and rotated["spi"] == 4


def test_gmac_rotation_with_retain_previous_keeps_the_option_in_force(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys"
    run(capsys, path=str(path), content=GMAC_LINE, allow_insecure_suites=True)
    new = "4+ rfc4543(gcm(aes)) 0x%s 128\n" % KEY_B
    refused = run(capsys, path=str(path), content=new, retain_previous=True)
    assert refused["failed"] is True and "allow_insecure_suites" in refused["msg"]
    result = run(capsys, path=str(path), content=new, retain_previous=True, allow_insecure_suites=True)
    assert result["changed"] is True and [info["spi"] for info in result["keys_info"]] == [3, 4]
    assert_no_secret(result, KEY_A, KEY_B)


@pytest.mark.parametrize("content,fragment", [
    ("1 hmac(sha256) 01 cbc(aes) %s\n" % CBC_KEY, "key too short for hmac(sha256)"),
    ("1 hmac(sha256) %s cbc(aes) %s\n" % (HMAC_KEY[:30], CBC_KEY), "this one is 15 bytes"),
    ("1 %s 0x%s 128\n" % (GCM, "00" * 20), "all zero bytes"),
    ("1 %s 0x%s 128\n" % (GCM, "00" * 16 + "1a2b3c4d"), "zero bytes except its 4-byte salt"),
    ("1 hmac(sha256) %s cbc(aes) %s\n" % ("00" * 32, CBC_KEY), "all zero bytes"),
])
def test_weak_keys_are_refused_whatever_the_option(tmp_path: Path, capsys, content: str, fragment: str) -> None:
    for allow in (False, True):
        result = run(capsys, path=str(tmp_path / "keys"), content=content, allow_insecure_suites=allow)
        assert result["failed"] is True and result["msg"].startswith("option content, line 1: field ")
        assert fragment in result["msg"]
        assert not (tmp_path / "keys").exists()


def test_legacy_algorithms_are_written_with_a_warning(tmp_path: Path, capsys) -> None:
    content = "1 hmac(md5) %s cbc(des3_ede) %s\n" % (CBC_KEY, HMAC_KEY[:48])
    result = run(capsys, path=str(tmp_path / "keys"), content=content)
    assert result["changed"] is True
    warnings = warning_texts(result)
    assert any("option content, line 1: hmac(md5) is a legacy algorithm" in warning for warning in warnings)
    assert any("cbc(des3_ede) is a legacy algorithm" in warning for warning in warnings)
    assert_no_secret(result, CBC_KEY, HMAC_KEY[:48])


def test_a_node_locked_by_another_run_is_left_alone(private_node_lock: str, tmp_path: Path, capsys) -> None:
    """Issue 16: while another run holds the node lock, the task fails after its bounded wait
    naming that run, and the keys file is as it was."""
    import fcntl
    path = tmp_path / "keys"
    path.write_text("3+ %s 0x%s 128\n" % (GCM, KEY_A))
    before = path.read_bytes()
    with open(private_node_lock, "w") as holder:
        holder.write("pid=4242 module=netsec.ipsec.xfrm_endpoint since=2026-12-06T07:00:00Z\n")
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_EX)
        result = run(capsys, path=str(path), content="4+ %s 0x%s 128\n" % (GCM, KEY_B), retain_previous=True,
                     lock_timeout=0.2)
    assert result["failed"] is True and "pid=4242" in result["msg"] and "nothing was changed" in result["msg"]
    assert path.read_bytes() == before
    assert_no_secret(result, KEY_A, KEY_B)
