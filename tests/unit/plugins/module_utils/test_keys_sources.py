# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where keys come from: files on disk (limits, fstat) and the list-of-dicts option."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import FORM_AUTH_ENC, KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import keys_from_dicts, load_keys_file
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.keys_samples import (
    GCM, KEY16, KEY16_B, KEY20, KEY20_B, assert_no_key_material,
)

# --- load_keys_file ---------------------------------------------------------------


def test_load_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.keys"
    with pytest.raises(KeysFileError, match="absent.keys: no such file"):
        load_keys_file(path)


def test_load_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(KeysFileError, match="is a directory"):
        load_keys_file(tmp_path)


def test_load_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "keys.fifo"
    os.mkfifo(str(fifo))
    with pytest.raises(KeysFileError, match="not a regular file"):
        load_keys_file(fifo)


def test_load_unreadable_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "secret.keys"
    path.write_text("1 %s %s 128\n" % (GCM, KEY20))
    path.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(KeysFileError, match="secret.keys: permission denied"):
            load_keys_file(path)
        return
    # Root reads any file: check from a child that drops to an unprivileged user.
    tmp_path.chmod(0o755)
    child = os.fork()
    if child == 0:
        status = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            load_keys_file(path)
        except KeysFileError as error:
            status = 0 if "secret.keys: permission denied" in str(error) else 2
        except BaseException:  # pylint: disable=broad-except
            status = 3
        os._exit(status)  # pylint: disable=protected-access
    wait_status = os.waitpid(child, 0)[1]
    assert os.WEXITSTATUS(wait_status) == 0


def test_load_large_file_is_refused_from_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.keys"
    with open(str(path), "wb") as stream:
        stream.truncate(10 * 1024 * 1024)  # sparse: only its size is large
    with pytest.raises(KeysFileError, match="larger than"):
        load_keys_file(path)


def test_load_reads_a_good_file_with_its_path_as_source(tmp_path: Path) -> None:
    path = tmp_path / "ipsec.keys"
    path.write_text("1 %s %s 128\n1+ %s %s 96\n" % (GCM, KEY20, GCM, KEY20_B))
    with pytest.raises(KeysFileError) as caught:
        load_keys_file(path)
    assert str(caught.value).startswith("%s, line 2: key ID (SPI) 1 is the same as the key before it" % path)
    path.write_text("1 %s %s 128\n2+ %s %s 128\n" % (GCM, KEY20, GCM, KEY20_B))
    keys_file = load_keys_file(str(path))
    assert keys_file.source == str(path)
    assert keys_file.current.spi == 2


# --- keys_from_dicts --------------------------------------------------------------


def aead_dict(spi: Any = 1, key: str = KEY20, **extra: Any) -> Dict[str, Any]:
    item = {"spi": spi, "aead": GCM, "aead_key": key, "icv_bits": 128}
    item.update(extra)
    return item


def auth_enc_dict(spi: Any = 1, **extra: Any) -> Dict[str, Any]:
    item = {"spi": spi, "auth": "hmac(sha256)", "auth_key": KEY16, "enc": "cbc(aes)",
            "enc_key": "0x" + KEY16_B}
    item.update(extra)
    return item


def test_dicts_equal_the_parsed_file() -> None:
    from_dicts = keys_from_dicts([aead_dict(1, plus=False), aead_dict("2", KEY20_B)])
    from_text = parse_keys_text("1 %s %s 128\n2+ %s %s 128\n" % (GCM, KEY20, GCM, KEY20_B),
                                "t")
    assert from_dicts == from_text
    assert [key.line for key in from_dicts.keys] == [1, 2]
    assert from_dicts.source == "option keys"


def test_dicts_auth_enc_and_ansible_none_suboptions() -> None:
    item = auth_enc_dict(4, aead=None, aead_key=None, icv_bits=None, plus=None)
    key = keys_from_dicts([item]).current
    assert (key.form, key.spi, key.plus_marker) == (FORM_AUTH_ENC, 4, True)
    assert key.enc_key == bytes.fromhex(KEY16_B)


def test_dicts_null_keys_may_be_empty_strings() -> None:
    item = {"spi": 1, "auth": "digest_null", "auth_key": "", "enc": "cipher_null",
            "enc_key": '""'}
    assert keys_from_dicts([item], allow_insecure_suites=True).current.auth_key == b""


def test_dicts_kernel_icv_warning_names_the_item() -> None:
    keys_file = keys_from_dicts([aead_dict(icv_bits=256)])
    assert keys_file.warnings and keys_file.warnings[0].startswith("option keys[0]: ")


@pytest.mark.parametrize("items,where,fragment", [
    ([{"aead": GCM, "aead_key": KEY20, "icv_bits": 128}], "option keys[0].spi", "is required"),
    ([aead_dict(), {"spi": 2}], "option keys[1]", "needs either"),
    ([aead_dict(colour="blue")], "option keys[0]", "unknown field 'colour'"),
    ([aead_dict(auth="hmac(sha1)")], "option keys[0]", "mixes AEAD fields"),
    ([aead_dict(aead_key=None)], "option keys[0].aead_key", "is required"),
    ([aead_dict(), aead_dict(2, KEY20[:-1])], "option keys[1].aead_key", "odd number"),
    ([aead_dict(key=KEY16)], "option keys[0].aead_key", "wrong key length"),
    ([aead_dict(key=12)], "option keys[0].aead_key", "must be a hex string"),
    ([aead_dict(icv_bits=64)], "option keys[0].icv_bits", "got 64"),
    ([aead_dict(icv_bits="many")], "option keys[0].icv_bits", "must be a number"),
    ([aead_dict(aead="gcm(aes)")], "option keys[0].aead", "did you mean"),
    ([aead_dict(spi=0)], "option keys[0].spi", "0 is not allowed"),
    ([aead_dict(spi=16)], "option keys[0].spi", "16 is out of range"),
    ([aead_dict(spi=-1)], "option keys[0].spi", "-1 is out of range"),
    ([aead_dict(spi=True)], "option keys[0].spi", "must be a number"),
    ([aead_dict(spi="3+")], "option keys[0].spi", "must be a number"),
    ([aead_dict(plus="yes")], "option keys[0].plus", "true or false"),
    ([aead_dict(), aead_dict()], "option keys[1]", "same as the key before it"),
    ([aead_dict(), auth_enc_dict(2), aead_dict()], "option keys[2]", "already used"),
    ([auth_enc_dict(auth="cbc(aes)")], "option keys[0].auth", "not an authentication"),
    ([auth_enc_dict(enc_key=KEY20)], "option keys[0].enc_key", "wrong key length for cbc"),
    ([auth_enc_dict(auth_key="0X" + KEY16)], "option keys[0].auth_key", "'0X'"),
    ([auth_enc_dict(enc=None)], "option keys[0].enc", "is required"),
    ([auth_enc_dict(enc=5)], "option keys[0].enc", "algorithm name"),
    (["1 %s %s 128" % (GCM, KEY20)], "option keys[0]", "must be a dict"),
    ([], "option keys", "holds no keys"),
    ("1 %s %s 128" % (GCM, KEY20), "option keys", "must be a list"),
])
def test_dict_errors_name_the_item_and_field(items: Any, where: str, fragment: str) -> None:
    with pytest.raises(KeysFileError) as caught:
        keys_from_dicts(items)
    message = str(caught.value)
    assert message.startswith(where + ": ")
    assert fragment in message
    assert_no_key_material(message, KEY20 + KEY16 + KEY16_B)


def test_dict_errors_use_the_given_source() -> None:
    with pytest.raises(KeysFileError, match=r"^option rotate_to\[0\]\.spi: "):
        keys_from_dicts([aead_dict(spi=0)], source="option rotate_to")


def test_load_permission_error_names_the_path(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.keys"
    path.write_text("1 %s %s 128\n" % (GCM, KEY20))

    def refuse(*_args: Any, **_kwargs: Any) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(KeysFileError, match="secret.keys: permission denied"):
        load_keys_file(path)


@pytest.mark.parametrize("overrides,field_name", [
    ({"spi": "0"}, "spi"),
    ({"spi": "16"}, "spi"),
    ({"aead": "gcm(aes)"}, "aead"),
    ({"aead": "rfc1234(foo)"}, "aead"),
    ({"aead_key": KEY20[:-1]}, "aead_key"),
    ({"aead_key": "0X" + KEY20}, "aead_key"),
    ({"aead_key": KEY16}, "aead_key"),
    ({"icv_bits": "64"}, "icv_bits"),
    ({"auth": "cbc(aes)"}, "auth"),
    ({"auth": "digest_null"}, "auth_key"),
    ({"auth_key": "zz" + KEY16}, "auth_key"),
    ({"enc": "hmac(sha1)"}, "enc"),
    ({"enc_key": KEY20}, "enc_key"),
])
def test_a_dict_and_a_line_get_the_same_reason(overrides: Dict[str, Any], field_name: str) -> None:
    """Both input forms go through one validation: only the place a message names differs
    (``option keys[0].<field>``, or the line with the field's number and title)."""
    auth_enc = any(name in overrides for name in ("auth", "auth_key", "enc", "enc_key"))
    item = dict(auth_enc_dict("1") if auth_enc else aead_dict("1", icv_bits="128"), **overrides)
    order = ("auth", "auth_key", "enc", "enc_key") if auth_enc else ("aead", "aead_key", "icv_bits")
    line = " ".join([item["spi"]] + [item[name] for name in order])
    with pytest.raises(KeysFileError) as from_dict:
        keys_from_dicts([item])
    with pytest.raises(KeysFileError) as from_line:
        parse_keys_text(line, "t")
    assert from_dict.value.source == "option keys[0].%s" % field_name
    assert from_line.value.line == 1
    assert from_line.value.reason.endswith(from_dict.value.reason)
