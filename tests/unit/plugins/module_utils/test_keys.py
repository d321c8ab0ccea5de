# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys-file grammar, model, rendering and secrecy (no kernel needed)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from ansible.module_utils.common.parameters import remove_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils._keys import (
    ALGORITHMS,
    FORM_AEAD,
    FORM_AUTH_ENC,
    ICV_BITS_ACCEPTED,
    MAX_FILE_BYTES,
    ROLE_AEAD,
    ROLE_AUTH,
    ROLE_ENC,
    Key,
    KeysFile,
    KeysFileError,
    algorithm,
    all_secrets,
    check_successor,
    describe,
    fingerprint,
    generate_key,
    generate_key_line,
    key_bits,
    key_fingerprint,
    keys_from_dicts,
    load_keys_file,
    next_spi,
    overhead,
    parse_keys_text,
    render_keys_file,
    render_masked_keys_file,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "keys"
GCM = "rfc4106(gcm(aes))"
KEY20 = "5d1a7c3e9b0f24688ac1e7d3f05b9a2c61e8d4b7"
KEY20_B = "a83f0c6e2d9b7140f5c3e18a6b2d4f97c0e1a5b3"
KEY36 = "f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0123456789"
KEY16 = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
KEY16_B = "c0ffee11d00d22beef33cafe44babe55"
HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")


def hex_runs(text: str) -> List[str]:
    """Every run of 8+ hex digits in ``text`` (key material, in a keys file)."""
    return [run.lower() for run in HEX_RUN.findall(text)]


def assert_no_key_material(output: str, source_text: str) -> None:
    lowered = output.lower()
    for run in hex_runs(source_text):
        for start in range(0, len(run) - 7):
            assert run[start:start + 8] not in lowered, "key material leaked: %r" % output


def reason_of(text: Any, source: str = "t") -> KeysFileError:
    with pytest.raises(KeysFileError) as caught:
        parse_keys_text(text, source)
    return caught.value


# --- accepted forms -------------------------------------------------------------------


def test_aead_line_with_plus_and_0x() -> None:
    keys_file = parse_keys_text("3+ %s 0x%s 128\n" % (GCM, KEY20), "t")
    key = keys_file.current
    assert (key.spi, key.plus_marker, key.form) == (3, True, FORM_AEAD)
    assert (key.aead_name, key.aead_key, key.icv_bits) == (GCM, bytes.fromhex(KEY20), 128)
    assert key.line == 1
    assert keys_file.warnings == ()


def test_aead_line_without_plus_or_0x() -> None:
    key = parse_keys_text("1 %s %s 96" % (GCM, KEY20), "t").current
    assert (key.spi, key.plus_marker, key.icv_bits) == (1, False, 96)
    assert key.aead_key == bytes.fromhex(KEY20)


def test_auth_enc_line() -> None:
    key = parse_keys_text("6 hmac(sha256) %s cbc(aes) 0x%s\n" % (KEY16, KEY16_B), "t").current
    assert key.form == FORM_AUTH_ENC
    assert (key.auth_name, key.enc_name) == ("hmac(sha256)", "cbc(aes)")
    assert key.auth_key == bytes.fromhex(KEY16)
    assert key.enc_key == bytes.fromhex(KEY16_B)
    assert key.aead_name is None and key.icv_bits is None


def test_2019_aead_form_without_spi_is_spi_1_with_warning() -> None:
    keys_file = parse_keys_text("%s 0x%s 128\n" % (GCM, KEY20), "my.keys")
    assert keys_file.current.spi == 1
    assert keys_file.current.plus_marker is False
    (warning,) = keys_file.warnings
    assert "my.keys, line 1" in warning and "deprecated" in warning
    assert_no_key_material(warning, KEY20)


def test_2019_auth_enc_form_without_spi_is_spi_1_with_warning() -> None:
    keys_file = parse_keys_text("hmac(sha1) %s cbc(aes) %s" % (KEY20, KEY16), "t")
    assert keys_file.current.spi == 1
    assert keys_file.current.auth_key == bytes.fromhex(KEY20)
    assert len(keys_file.warnings) == 1


@pytest.mark.parametrize("text", [
    '1 digest_null "" cipher_null ""\n',
    '1 digest_null 0x cipher_null ""\n',
    '1+ digest_null "" cipher_null 0x\n',
])
def test_empty_keys(text: str) -> None:
    key = parse_keys_text(text, "t").current
    assert key.auth_key == b"" and key.enc_key == b""
    assert all_secrets(parse_keys_text(text, "t")) == []


def test_uppercase_and_mixed_case_hex() -> None:
    mixed = KEY20[:20].upper() + KEY20[20:]
    key = parse_keys_text("2+ %s 0x%s 128" % (GCM, mixed), "t").current
    assert key.aead_key == bytes.fromhex(KEY20)


def test_multiline_changes_spi_and_last_line_is_current() -> None:
    text = "1 %s 0x%s 128\n2+ %s 0x%s 128\n" % (GCM, KEY20, GCM, KEY20_B)
    keys_file = parse_keys_text(text, "t")
    assert [key.spi for key in keys_file.keys] == [1, 2]
    assert [key.line for key in keys_file.keys] == [1, 2]
    assert keys_file.current.spi == 2
    assert keys_file.current.aead_key == bytes.fromhex(KEY20_B)
    assert keys_file.previous is not None and keys_file.previous.spi == 1


def test_spi_may_not_return_while_its_old_key_is_listed() -> None:
    # Every listed key gets inbound SAs at once: two keys with one SPI would collide.
    text = "1+ %s %s 128\n2+ %s %s 128\n1+ %s %s 128\n" % (GCM, KEY20, GCM, KEY20_B, GCM, KEY20)
    with pytest.raises(KeysFileError, match=r"t, line 3: key ID \(SPI\) 1 is already used on line 1"):
        parse_keys_text(text, "t")


def test_spi_may_return_once_its_old_line_is_gone() -> None:
    keys_file = parse_keys_text("2+ %s %s 128\n" % (GCM, KEY20_B), "t")
    check_successor(keys_file, parse_keys_text("1+ %s %s 128\n" % (GCM, KEY20), "t").current)


def test_bytes_and_str_give_the_same_result() -> None:
    text = "3+ %s 0x%s 128\n" % (GCM, KEY20)
    assert parse_keys_text(text.encode(), "t") == parse_keys_text(text, "t")
    assert parse_keys_text(bytearray(text.encode()), "t") == parse_keys_text(text, "t")


def test_leading_zeros_in_spi_are_read_as_go_atoi_reads_them() -> None:
    assert parse_keys_text("015+ %s %s 128" % (GCM, KEY20), "t").current.spi == 15


@pytest.mark.parametrize("length", [1, 16, 20, 32, 64])
def test_hmac_accepts_any_length_up_to_64_bytes(length: int) -> None:
    text = "1 hmac(sha256) %s cbc(aes) %s" % ("ab" * length, KEY16)
    assert len(parse_keys_text(text, "t").current.auth_key or b"") == length


@pytest.mark.parametrize("name,icv,warns", [
    ("rfc4543(gcm(aes))", 96, True),
    ("rfc4543(gcm(aes))", 256, True),
    ("rfc4543(gcm(aes))", 128, False),
    (GCM, 256, True),
    (GCM, 96, False),
])
def test_icv_the_kernel_refuses_is_accepted_with_a_warning(name: str, icv: int, warns: bool) -> None:
    keys_file = parse_keys_text("1+ %s 0x%s %d\n" % (name, KEY20, icv), "t")
    assert keys_file.current.icv_bits == icv
    assert bool(keys_file.warnings) is warns
    for warning in keys_file.warnings:
        assert "kernel refuses ICV %d" % icv in warning
        assert_no_key_material(warning, KEY20)


@pytest.mark.parametrize("spec", ALGORITHMS, ids=lambda spec: spec.name)
def test_every_algorithm_in_the_table_parses_at_its_nominal_length(spec: Any) -> None:
    material = ("11" * spec.nominal_key_bytes) or '""'
    if spec.role == ROLE_AEAD:
        text = "1+ %s %s 128" % (spec.name, material)
    elif spec.role == ROLE_AUTH:
        text = "1+ %s %s cbc(aes) %s" % (spec.name, material, KEY16)
    else:
        text = "1+ hmac(sha256) %s %s %s" % (KEY16, spec.name, material)
    assert parse_keys_text(text, "t").current.spi == 1
    assert algorithm(spec.name, spec.role) is spec


def test_algorithm_lookup_rejects_unknown_names() -> None:
    with pytest.raises(KeysFileError, match="supported: cbc\\(aes\\)"):
        algorithm("ecb(aes)", ROLE_ENC)


# --- the corpus -----------------------------------------------------------------------

BAD_INDEX: Dict[str, Dict[str, Any]] = json.loads((DATA / "bad" / "index.json").read_text())
GOOD_INDEX: Dict[str, Dict[str, Any]] = json.loads((DATA / "good" / "index.json").read_text())
# Files whose bytes the repository should not hold as they are (CR, NUL, a byte order
# mark, invalid UTF-8) are stored base64-encoded as NAME.b64.
ENCODED_SUFFIX = ".b64"


def corpus_bytes(directory: str, name: str) -> bytes:
    path = DATA / directory / name
    if path.exists():
        return path.read_bytes()
    return base64.decodebytes((DATA / directory / (name + ENCODED_SUFFIX)).read_bytes())


def corpus_file(directory: str, name: str, tmp_path: Path) -> Path:
    """A path holding the corpus entry's exact bytes."""
    path = DATA / directory / name
    if path.exists():
        return path
    decoded = tmp_path / name
    decoded.write_bytes(corpus_bytes(directory, name))
    return decoded


def test_corpus_index_matches_the_files() -> None:
    for directory, index in (("bad", BAD_INDEX), ("good", GOOD_INDEX)):
        on_disk = {path.name[:-len(ENCODED_SUFFIX)] if path.name.endswith(ENCODED_SUFFIX) else path.name
                   for path in (DATA / directory).iterdir() if path.name != "index.json"}
        assert on_disk == set(index)
    assert len(BAD_INDEX) >= 40


@pytest.mark.parametrize("name", sorted(BAD_INDEX))
def test_bad_corpus_file_is_rejected_with_its_reason(name: str, tmp_path: Path) -> None:
    path = corpus_file("bad", name, tmp_path)
    expected = BAD_INDEX[name]
    with pytest.raises(KeysFileError) as caught:
        load_keys_file(path)
    error = caught.value
    message = str(error)
    assert expected["fragment"] in message
    assert error.line == expected["line"]
    if expected["line"] is not None:
        assert "%s, line %d: " % (path, expected["line"]) in message
    assert message.startswith(str(path))
    assert_no_key_material(message, path.read_bytes().decode("latin-1"))


@pytest.mark.parametrize("name", sorted(BAD_INDEX))
def test_bad_corpus_content_names_the_option(name: str) -> None:
    content = corpus_bytes("bad", name)
    with pytest.raises(KeysFileError) as caught:
        parse_keys_text(content, "option content")
    assert str(caught.value).startswith("option content")
    assert BAD_INDEX[name]["fragment"] in str(caught.value)


@pytest.mark.parametrize("name", sorted(GOOD_INDEX))
def test_good_corpus_file_parses(name: str) -> None:
    expected = GOOD_INDEX[name]
    keys_file = load_keys_file(DATA / "good" / name)
    assert [key.spi for key in keys_file.keys] == expected["spis"]
    assert keys_file.current.spi == expected["spis"][-1]
    assert len(keys_file.warnings) == len(expected["warnings"])
    for warning, fragment in zip(keys_file.warnings, expected["warnings"]):
        assert fragment in warning


@pytest.mark.parametrize("name", sorted(GOOD_INDEX))
def test_good_corpus_round_trips_through_render(name: str) -> None:
    keys_file = load_keys_file(DATA / "good" / name)
    rendered = render_keys_file(keys_file)
    again = parse_keys_text(rendered, "rendered")
    assert again == keys_file
    assert again.warnings == tuple(w for w in again.warnings if "kernel" in w)
    assert render_keys_file(again) == rendered


# --- rejections (inline; the corpus covers the rest) ----------------------------------


@pytest.mark.parametrize("text,line,fragment", [
    ("1 hmac(sha256) %s\n" % KEY16, 1, "too few fields (3)"),
    ("1+ %s 0x%s 128\n2 hmac(sha256) %s\n" % (GCM, KEY20, KEY16), 2, "too few fields"),
    ("1+\n", 1, "too few fields (1)"),
    (" 1+ %s %s 128" % (GCM, KEY20), 1, "leading space"),
    ("  \n", 1, "only spaces"),
    ("1 %s %s 128" % (GCM, KEY20[:-1]), 1, "odd number of hex digits (39)"),
    ("1 %s %sxy 128" % (GCM, KEY20[:-2]), 1, "not hexadecimal"),
    ("1 rfc1234(foo) %s 128" % KEY20, 1, "unsupported AEAD algorithm 'rfc1234(foo)'"),
    ("1 %s %s 128" % (GCM, KEY16), 1, "this one is 16 bytes"),
    ("1\t%s\t%s\t128" % (GCM, KEY20), 1, "tab at column 2"),
    ("1 %s %s 128 " % (GCM, KEY20), 1, "trailing space"),
    ("1 %s %s 128\r\n" % (GCM, KEY20), 1, "CRLF"),
    ("", None, "holds no keys"),
    (b"\x00\x01\x02", 1, "NUL byte"),
    (b"1 \xff", 1, "not valid UTF-8"),
    ("\udcff", 1, "non-ASCII character U+DCFF"),
    ("0 %s %s 128" % (GCM, KEY20), 1, "0 is not allowed"),
    ("16 %s %s 128" % (GCM, KEY20), 1, "16 is out of range"),
    ("-3 %s %s 128" % (GCM, KEY20), 1, "field 1 must be the key ID"),
    ("one %s %s 128" % (GCM, KEY20), 1, "field 1 must be the key ID"),
    ("1 %s %s 128\n1 %s %s 128" % (GCM, KEY20, GCM, KEY20_B), 2, "same as the key before it"),
    ("1 %s %s 64" % (GCM, KEY20), 1, "got 64"),
    ("1 gcm(aes) %s 128" % KEY20, 1, "ESP AEAD names start with 'rfc'"),
    ("1 %s %s 128\n2 %s %s 128" % (GCM, KEY20, GCM, KEY36), 2, "key length must not change"),
    ("1 %s %s 128 10.1.2.3" % (GCM, KEY20), 1, "per-IP key scope"),
    ("1 %s %s 128\n# old\n" % (GCM, KEY20), 2, "comments are not supported"),
])
def test_rejections_name_line_and_reason_without_key_material(
        text: Any, line: Optional[int], fragment: str) -> None:
    error = reason_of(text, "option content")
    assert fragment in error.reason
    assert error.line == line
    assert error.source == "option content"
    where = "option content" if line is None else "option content, line %d" % line
    assert str(error).startswith(where + ": ")
    raw = text if isinstance(text, str) else text.decode("latin-1")
    assert_no_key_material(str(error), raw)


def test_error_is_a_value_error_with_one_type() -> None:
    assert issubclass(KeysFileError, ValueError)
    with pytest.raises(ValueError):
        parse_keys_text("junk", "t")


def test_non_text_input_is_rejected() -> None:
    error = reason_of(12345)
    assert "expected text" in str(error)


def test_key_shaped_unknown_field_is_not_echoed() -> None:
    error = reason_of("1 %s %s 128" % (KEY20, KEY20_B))
    assert "not shown as it may be key material" in str(error)
    assert_no_key_material(str(error), KEY20 + " " + KEY20_B)


def test_oversized_text_is_rejected_before_parsing() -> None:
    text = "x" * (MAX_FILE_BYTES + 1)
    assert "larger than %d bytes" % MAX_FILE_BYTES in str(reason_of(text))
    assert "larger than" in str(reason_of(text.encode()))


# --- load_keys_file -------------------------------------------------------------------


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
    path.write_text("1 %s %s 128\n2+ %s %s 96\n" % (GCM, KEY20, GCM, KEY20_B))
    with pytest.raises(KeysFileError) as caught:
        load_keys_file(path)
    assert str(caught.value).startswith("%s, line 2: ICV length must not change" % path)
    path.write_text("1 %s %s 128\n2+ %s %s 128\n" % (GCM, KEY20, GCM, KEY20_B))
    keys_file = load_keys_file(str(path))
    assert keys_file.source == str(path)
    assert keys_file.current.spi == 2


# --- keys_from_dicts ------------------------------------------------------------------


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
    assert keys_from_dicts([item]).current.auth_key == b""


def test_dicts_rfc4543_icv_warning_names_the_item() -> None:
    keys_file = keys_from_dicts([aead_dict(aead="rfc4543(gcm(aes))", icv_bits=96)])
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
    ([aead_dict(), auth_enc_dict(2)], "option keys[1]", "key form changed"),
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


# --- rendering ------------------------------------------------------------------------


def test_render_is_canonical() -> None:
    text = "03 %s %s 128\nhmac(sha256) %s cbc(aes) %s\n" % (GCM, KEY20.upper(), KEY16, KEY16_B)
    with pytest.raises(KeysFileError):
        parse_keys_text(text, "t")  # form change: build the two keys separately instead
    aead = parse_keys_text("03 %s %s 128" % (GCM, KEY20.upper()), "t")
    assert render_keys_file(aead) == "3 %s 0x%s 128\n" % (GCM, KEY20)
    legacy = parse_keys_text("hmac(sha256) %s cbc(aes) %s" % (KEY16, KEY16_B), "t")
    assert render_keys_file(legacy) == "1 hmac(sha256) 0x%s cbc(aes) 0x%s\n" % (KEY16, KEY16_B)
    null = parse_keys_text('2+ digest_null 0x cipher_null ""', "t")
    assert render_keys_file(null) == '2+ digest_null "" cipher_null ""\n'


def test_masked_rendering_shows_fingerprints_only() -> None:
    keys_file = parse_keys_text("1 %s %s 128\n2+ %s %s 128\n" % (GCM, KEY20, GCM, KEY20_B), "t")
    masked = render_masked_keys_file(keys_file)
    assert masked == "1 %s %s 128\n2+ %s %s 128\n" % (
        GCM, fingerprint(bytes.fromhex(KEY20)), GCM, fingerprint(bytes.fromhex(KEY20_B)))
    assert_no_key_material(masked, KEY20 + " " + KEY20_B)
    legacy = parse_keys_text("1 hmac(sha256) %s cbc(aes) %s" % (KEY16, KEY16_B), "t")
    assert render_masked_keys_file(legacy) == "1 hmac(sha256) %s cbc(aes) %s\n" % (
        fingerprint(bytes.fromhex(KEY16)), fingerprint(bytes.fromhex(KEY16_B)))
    null = parse_keys_text('1 digest_null "" cipher_null ""', "t")
    assert render_masked_keys_file(null) == '1 digest_null "" cipher_null ""\n'


def test_no_key_material_in_repr_or_str() -> None:
    keys_file = parse_keys_text("1 hmac(sha256) %s cbc(aes) %s\n" % (KEY16, KEY16_B), "t")
    aead_file = parse_keys_text("1 %s %s 128\n" % (GCM, KEY20), "t")
    for shown in (repr(keys_file), str(keys_file), repr(keys_file.current),
                  str(aead_file), repr(aead_file.current), str(describe(aead_file.current)),
                  str(describe(keys_file.current))):
        assert_no_key_material(shown, KEY16 + " " + KEY16_B + " " + KEY20)
        for secret in all_secrets(keys_file) + all_secrets(aead_file):
            assert secret not in shown


# --- fingerprints, overhead, sizes, description ---------------------------------------


def test_fingerprint_is_a_sha256_prefix() -> None:
    assert fingerprint(b"") == "sha256:e3b0c44298fc"
    raw = bytes.fromhex(KEY20)
    assert fingerprint(raw) == "sha256:" + hashlib.sha256(raw).hexdigest()[:12]
    assert fingerprint(raw) == fingerprint(bytes.fromhex(KEY20.upper()))
    assert fingerprint(raw) != fingerprint(bytes.fromhex(KEY20_B))


def test_auth_enc_fingerprint_is_length_prefixed() -> None:
    auth, enc = bytes.fromhex(KEY16), bytes.fromhex(KEY16_B)
    key = Key(spi=1, form=FORM_AUTH_ENC, auth_name="hmac(sha256)", auth_key=auth,
              enc_name="cbc(aes)", enc_key=enc)
    expected = hashlib.sha256(b"\x00\x10" + auth + enc).hexdigest()[:12]
    assert key_fingerprint(key) == "sha256:" + expected
    shifted = Key(spi=1, form=FORM_AUTH_ENC, auth_name="hmac(sha256)", auth_key=auth + enc[:1],
                  enc_name="cbc(aes)", enc_key=enc[1:])
    assert key_fingerprint(shifted) != key_fingerprint(key)


@pytest.mark.parametrize("icv,expected", [(96, 12), (128, 16), (256, 32)])
def test_aead_overhead_is_icv_bytes(icv: int, expected: int) -> None:
    key = parse_keys_text("1 rfc4543(gcm(aes)) %s %d" % (KEY20, icv), "t").current
    assert overhead(key) == expected


@pytest.mark.parametrize("auth_hex,expected", [
    (KEY16, 32),            # a 32-hex-character key counts 32, not 16 (Cilium's quirk)
    ("0x" + KEY16, 32),     # the 0x prefix is not counted
    ("ab" * 32, 64),
    ('""', 0),
])
def test_auth_enc_overhead_is_the_hex_length_of_the_auth_key(auth_hex: str,
                                                             expected: int) -> None:
    auth = "digest_null" if auth_hex == '""' else "hmac(sha256)"
    key = parse_keys_text("1 %s %s cbc(aes) %s" % (auth, auth_hex, KEY16), "t").current
    assert overhead(key) == expected


def test_key_bits_and_description() -> None:
    aead = parse_keys_text("4+ %s %s 128" % (GCM, KEY36), "t").current
    assert key_bits(aead) == 288
    assert describe(aead) == {
        "spi": 4, "form": "aead", "plus_marker": True, "aead": GCM, "icv_bits": 128,
        "key_bits": 288, "overhead": 16, "fingerprint": fingerprint(bytes.fromhex(KEY36)),
        "line": 1}
    legacy = parse_keys_text("2 hmac(sha1) %s cbc(aes) %s" % (KEY20, KEY16), "t").current
    summary = describe(legacy)
    assert (summary["auth_key_bits"], summary["enc_key_bits"], summary["key_bits"]) == (
        160, 128, 288)
    assert summary["overhead"] == 40
    assert not any(isinstance(value, (bytes, bytearray)) for value in summary.values())


# --- all_secrets ----------------------------------------------------------------------


def test_all_secrets_covers_every_spelling() -> None:
    written = KEY20[:10].upper() + KEY20[10:]
    keys_file = parse_keys_text("1 %s 0x%s 128\n" % (GCM, written), "t")
    secrets = all_secrets(keys_file)
    raw = bytes.fromhex(KEY20)
    spellings = (KEY20, KEY20.upper(), "0x" + KEY20, "0x" + KEY20.upper(), base64.b64encode(raw).decode(),
                 base64.urlsafe_b64encode(raw).decode(), "0x" + written, written)
    # Masked as Ansible masks results: every spelling, also inside a longer string.
    masked = remove_values({"alone": list(spellings), "inside": " ".join("[%s]" % text for text in spellings)},
                           set(secrets))
    for spelling in spellings:
        assert spelling not in repr(masked)
        assert spelling.lower().replace("0x", "") not in repr(masked).lower()
    two = parse_keys_text("1 hmac(sha256) %s cbc(aes) %s" % (KEY16, KEY16_B), "t")
    secrets = all_secrets(two)
    for part in (KEY16, KEY16_B):
        assert part in secrets and part.upper() in secrets
        assert base64.b64encode(bytes.fromhex(part)).decode().rstrip("=") in secrets
    assert len(secrets) == len(set(secrets))
    assert set(all_secrets(two.current)) <= set(secrets)
    assert set(all_secrets([two.current])) == set(all_secrets(two.current))


# --- rotation helpers and generation --------------------------------------------------


def test_check_successor() -> None:
    keys_file = parse_keys_text("1 %s %s 128\n2 %s %s 128" % (GCM, KEY20, GCM, KEY20_B), "t")
    check_successor(keys_file, parse_keys_text("3+ %s %s 128" % (GCM, KEY20), "t").current)
    with pytest.raises(KeysFileError, match="key rotation: key ID \\(SPI\\) 2 is the same"):
        check_successor(keys_file, parse_keys_text("2 %s %s 128" % (GCM, KEY20), "t").current)
    with pytest.raises(KeysFileError,
                       match=r"key length must not change.*\(line 2\) has 20 bytes, this one 36"):
        check_successor(keys_file.current,
                        parse_keys_text("3 %s %s 128" % (GCM, KEY36), "t").current)
    with pytest.raises(KeysFileError, match="ICV length must not change"):
        check_successor(keys_file, parse_keys_text("3 %s %s 96" % (GCM, KEY20), "t").current)


@pytest.mark.parametrize("spi,expected", [(1, 2), (7, 8), (14, 15), (15, 1)])
def test_next_spi_wraps_after_15(spi: int, expected: int) -> None:
    assert next_spi(spi) == expected


@pytest.mark.parametrize("spi", [0, 16, -1, True, "3"])
def test_next_spi_rejects_non_spis(spi: Any) -> None:
    with pytest.raises(KeysFileError):
        next_spi(spi)


def test_generate_key_line_is_fresh_and_parses() -> None:
    line = generate_key_line(3)
    assert re.fullmatch(r"3\+ rfc4106\(gcm\(aes\)\) 0x[0-9a-f]{40} 128", line)
    assert generate_key_line(3) != line
    assert parse_keys_text(line, "t").current.spi == 3
    long_line = generate_key_line(15, key_bytes=36, icv=96)
    assert len(parse_keys_text(long_line, "t").current.aead_key or b"") == 36
    chacha = generate_key(2, aead="rfc7539esp(chacha20,poly1305)", key_bytes=36)
    assert chacha.icv_bits == 128 and len(chacha.aead_key or b"") == 36


@pytest.mark.parametrize("arguments,fragment", [
    ({"spi": 0}, "0 is not allowed"),
    ({"spi": 3, "key_bytes": 16}, "key_bytes for rfc4106(gcm(aes)) must be 20, 28 or 36"),
    ({"spi": 3, "icv": 64}, "got 64"),
    ({"spi": 3, "aead": "rfc4543(gcm(aes))", "icv": 96}, "kernel does not implement ICV 96"),
    ({"spi": 3, "aead": "gcm(aes)"}, "did you mean"),
])
def test_generate_key_line_rejects_bad_arguments(arguments: Dict[str, Any],
                                                 fragment: str) -> None:
    with pytest.raises(KeysFileError, match=re.escape(fragment)):
        generate_key_line(**arguments)


def test_key_model_rejects_inconsistent_fields() -> None:
    with pytest.raises(KeysFileError):
        Key(spi=1, form=FORM_AEAD, aead_name=GCM, aead_key=b"x" * 20)
    with pytest.raises(KeysFileError):
        Key(spi=1, form="other")
    with pytest.raises(KeysFileError):
        KeysFile(keys=())


# --- properties -----------------------------------------------------------------------

_TOKENS = st.sampled_from(
    ["1", "1+", "15", "16", "0", "+", "3++", GCM, "rfc4543(gcm(aes))", "gcm(aes)",
     "hmac(sha256)", "cbc(aes)", "digest_null", "cipher_null", '""', "0x", "0X12", "128",
     "96", "256", "64", KEY20, "0x" + KEY20, KEY16, KEY36, "#", "10.0.0.1", "abc", "x" * 3])
_SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\t", "\n", "\r\n", "", "\x00"])


@st.composite
def token_soup(draw: Any) -> str:
    pieces = draw(st.lists(st.tuples(_TOKENS, _SEPARATORS), max_size=14))
    return "".join(token + separator for token, separator in pieces)


def _parse_or_reject(text: Any) -> None:
    try:
        keys_file = parse_keys_text(text, "fuzz")
    except KeysFileError as error:
        assert str(error).startswith("fuzz")
        return
    assert keys_file.keys
    assert parse_keys_text(render_keys_file(keys_file), "again") == keys_file


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_text_raises_only_keys_file_error(text: str) -> None:
    _parse_or_reject(text)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes_raises_only_keys_file_error(data: bytes) -> None:
    _parse_or_reject(data)


@settings(max_examples=600, deadline=None)
@given(token_soup())
def test_fuzz_token_soup_raises_only_keys_file_error(text: str) -> None:
    _parse_or_reject(text)


_AEAD_SPECS = [spec for spec in ALGORITHMS if spec.role == ROLE_AEAD]
_AUTH_SPECS = [spec for spec in ALGORITHMS if spec.role == ROLE_AUTH]
_ENC_SPECS = [spec for spec in ALGORITHMS if spec.role == ROLE_ENC]


def _lengths(spec: Any) -> Any:
    return st.sampled_from(spec.key_bytes) if spec.key_bytes else st.integers(1, 64)


@st.composite
def valid_keys_files(draw: Any) -> KeysFile:
    count = draw(st.integers(1, 5))
    spis = draw(st.lists(st.integers(1, 15), min_size=count, max_size=count, unique=True))
    if draw(st.booleans()):
        spec = draw(st.sampled_from(_AEAD_SPECS))
        length = draw(_lengths(spec))
        icv = draw(st.sampled_from(ICV_BITS_ACCEPTED))
        keys = [Key(spi=spi, form=FORM_AEAD, plus_marker=draw(st.booleans()),
                    aead_name=spec.name, aead_key=draw(st.binary(min_size=length,
                                                                 max_size=length)),
                    icv_bits=icv, line=number)
                for number, spi in enumerate(spis, 1)]
    else:
        auth = draw(st.sampled_from(_AUTH_SPECS))
        enc = draw(st.sampled_from(_ENC_SPECS))
        auth_length, enc_length = draw(_lengths(auth)), draw(_lengths(enc))
        keys = [Key(spi=spi, form=FORM_AUTH_ENC, plus_marker=draw(st.booleans()),
                    auth_name=auth.name,
                    auth_key=draw(st.binary(min_size=auth_length, max_size=auth_length)),
                    enc_name=enc.name,
                    enc_key=draw(st.binary(min_size=enc_length, max_size=enc_length)),
                    line=number)
                for number, spi in enumerate(spis, 1)]
    return KeysFile(tuple(keys), "generated")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_keys_files())
def test_render_then_parse_is_identity(keys_file: KeysFile) -> None:
    parsed = parse_keys_text(render_keys_file(keys_file), "rendered")
    assert parsed == keys_file
    assert [key.line for key in parsed.keys] == [key.line for key in keys_file.keys]
    assert [key.plus_marker for key in parsed.keys] == [k.plus_marker for k in keys_file.keys]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_keys_files(), st.data())
def test_mutated_files_never_leak_key_material(keys_file: KeysFile, data: Any) -> None:
    text = render_keys_file(keys_file)
    position = data.draw(st.integers(0, len(text)))
    insert = data.draw(st.sampled_from(["", " ", "\t", "g", "\n", "\r", "\x00", "#", "é"]))
    cut = data.draw(st.integers(0, 3))
    mutated = text[:position] + insert + text[position + cut:]
    try:
        result = parse_keys_text(mutated, "m")
    except KeysFileError as error:
        assert_no_key_material(str(error), text)
        return
    for warning in result.warnings:
        assert_no_key_material(warning, text)


def test_load_permission_error_names_the_path(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.keys"
    path.write_text("1 %s %s 128\n" % (GCM, KEY20))

    def refuse(*_args: Any, **_kwargs: Any) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(KeysFileError, match="secret.keys: permission denied"):
        load_keys_file(path)
