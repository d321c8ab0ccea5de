# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys-file grammar: accepted forms, the corpus, rejections, and properties (no kernel needed)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.catalogue import (
    ALGORITHMS, KNOWN_NAMES, MIN_HMAC_KEY_BYTES, ROLE_AEAD, ROLE_AUTH, ROLE_ENC, check_key_material,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.grammar import parse_keys_text
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import (
    FORM_AEAD, FORM_AUTH_ENC, ICV_BITS_ACCEPTED, MAX_FILE_BYTES, Invalid, Key, KeysFile, KeysFileError,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import all_secrets, render_keys_file
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import load_keys_file
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.keys_samples import (
    GCM, HEX_RUN, KEY16, KEY16_B, KEY20, KEY20_B, KEY36, assert_no_key_material,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "keys"


def reason_of(text: Any, source: str = "t") -> KeysFileError:
    with pytest.raises(KeysFileError) as caught:
        parse_keys_text(text, source)
    return caught.value


# --- accepted forms ---------------------------------------------------------------


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
    """The null suites' empty keys, spelled every way (only a test rig's file holds them)."""
    key = parse_keys_text(text, "t", allow_insecure_suites=True).current
    assert key.auth_key == b"" and key.enc_key == b""
    assert all_secrets(parse_keys_text(text, "t", allow_insecure_suites=True)) == []


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


def test_bytes_and_str_give_the_same_result() -> None:
    text = "3+ %s 0x%s 128\n" % (GCM, KEY20)
    assert parse_keys_text(text.encode(), "t") == parse_keys_text(text, "t")
    assert parse_keys_text(bytearray(text.encode()), "t") == parse_keys_text(text, "t")


def test_leading_zeros_in_spi_are_read_as_go_atoi_reads_them() -> None:
    assert parse_keys_text("015+ %s %s 128" % (GCM, KEY20), "t").current.spi == 15


@pytest.mark.parametrize("length", [16, 20, 32, 64])
def test_hmac_accepts_any_length_from_16_up_to_64_bytes(length: int) -> None:
    text = "1 hmac(sha256) %s cbc(aes) %s" % ("ab" * length, KEY16)
    assert len(parse_keys_text(text, "t").current.auth_key or b"") == length


@pytest.mark.parametrize("name,key,icv,warns", [
    ("rfc7539esp(chacha20,poly1305)", KEY36, 96, True),
    ("rfc7539esp(chacha20,poly1305)", KEY36, 256, True),
    ("rfc7539esp(chacha20,poly1305)", KEY36, 128, False),
    (GCM, KEY20, 256, True),
    (GCM, KEY20, 96, False),
])
def test_icv_the_kernel_refuses_is_accepted_with_a_warning(name: str, key: str, icv: int, warns: bool) -> None:
    keys_file = parse_keys_text("1+ %s 0x%s %d\n" % (name, key, icv), "t")
    assert keys_file.current.icv_bits == icv
    assert bool(keys_file.warnings) is warns
    for warning in keys_file.warnings:
        assert "kernel refuses ICV %d" % icv in warning
        assert_no_key_material(warning, key)


# --- the corpus -------------------------------------------------------------------

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


def key_like_tokens(text: str) -> List[str]:
    """The tokens of a corpus file that may be keys in any spelling: 16 characters or more,
    not an algorithm name, with a run of 8 hex digits or a character of base64 but not of
    hex and algorithm names (an uppercase letter beyond A-F, '/', '=') or longer than 20."""
    return [token for token in re.split(r"[ \n]", text)
            if len(token) >= 16 and token not in KNOWN_NAMES
            and (HEX_RUN.search(token) or re.search(r"[G-Z/=]", token) or len(token) > 20)]


def assert_no_token_of(message: str, text: str) -> None:
    """No key-like token of ``text``, nor any 8 characters of one, is in ``message``."""
    for token in key_like_tokens(text):
        for start in range(len(token) - 7):
            assert token[start:start + 8] not in message, "key-like token echoed: %r" % message


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
    raw = path.read_bytes().decode("latin-1")
    assert_no_key_material(message, raw)
    assert_no_token_of(message, raw)


INSECURE_BUT_WELL_FORMED = sorted(name for name, entry in BAD_INDEX.items() if "allowed_with_insecure_suites" in entry)


def test_the_bad_corpus_holds_every_kind_of_key_that_protects_nothing() -> None:
    texts = [corpus_bytes("bad", name).decode() for name in INSECURE_BUT_WELL_FORMED]
    for name in ("digest_null", "cipher_null", "rfc4543(gcm(aes))"):
        assert any(name in text for text in texts), name


@pytest.mark.parametrize("name", INSECURE_BUT_WELL_FORMED)
def test_keys_that_protect_nothing_parse_only_for_a_test_rig(name: str) -> None:
    """Moved from the good corpus (or added): well-formed, so ``xfrm_keys`` with
    ``allow_insecure_suites`` takes them, with a warning saying why they protect nothing."""
    keys_file = load_keys_file(DATA / "bad" / name, allow_insecure_suites=True)
    assert [key.spi for key in keys_file.keys] == BAD_INDEX[name]["allowed_with_insecure_suites"]
    insecure = [warning for warning in keys_file.warnings if "accepted because allow_insecure_suites is true" in warning]
    assert len(insecure) == len(keys_file.keys)
    assert all(BAD_INDEX[name]["fragment"].split(": ")[-1].split(";")[0] in warning for warning in insecure)


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
    # Rendering writes the key ID: only the 2019 form's warning goes away.
    assert len(again.warnings) == len([w for w in keys_file.warnings if "2019 form" not in w])
    assert not [w for w in again.warnings if "2019 form" in w]
    assert render_keys_file(again) == rendered


# --- rejections (inline; the corpus covers the rest) ------------------------------


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


# --- properties -------------------------------------------------------------------


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
    return st.sampled_from(spec.key_bytes) if spec.key_bytes else st.integers(MIN_HMAC_KEY_BYTES, 64)


def _is_secret(spec: Any, material: bytes) -> bool:
    try:
        check_key_material(spec, material)
    except Invalid:
        return False
    return True


def _key_material(spec: Any, length: int) -> Any:
    return st.binary(min_size=length, max_size=length).filter(lambda material: _is_secret(spec, material))


@st.composite
def valid_keys_files(draw: Any) -> KeysFile:
    """Keys files of every algorithm, those that protect nothing included (they parse with
    ``allow_insecure_suites``)."""
    count = draw(st.integers(1, 5))
    spis = draw(st.lists(st.integers(1, 15), min_size=count, max_size=count, unique=True))
    if draw(st.booleans()):
        spec = draw(st.sampled_from(_AEAD_SPECS))
        length = draw(_lengths(spec))
        icv = draw(st.sampled_from(ICV_BITS_ACCEPTED))
        keys = [Key(spi=spi, form=FORM_AEAD, plus_marker=draw(st.booleans()),
                    aead_name=spec.name, aead_key=draw(_key_material(spec, length)),
                    icv_bits=icv, line=number)
                for number, spi in enumerate(spis, 1)]
    else:
        auth = draw(st.sampled_from(_AUTH_SPECS))
        enc = draw(st.sampled_from(_ENC_SPECS))
        auth_length, enc_length = draw(_lengths(auth)), draw(_lengths(enc))
        keys = [Key(spi=spi, form=FORM_AUTH_ENC, plus_marker=draw(st.booleans()),
                    auth_name=auth.name,
                    auth_key=draw(_key_material(auth, auth_length)),
                    enc_name=enc.name,
                    enc_key=draw(_key_material(enc, enc_length)),
                    line=number)
                for number, spi in enumerate(spis, 1)]
    return KeysFile(tuple(keys), "generated")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_keys_files())
def test_render_then_parse_is_identity(keys_file: KeysFile) -> None:
    parsed = parse_keys_text(render_keys_file(keys_file), "rendered", allow_insecure_suites=True)
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
    for allow_insecure_suites in (False, True):
        try:
            result = parse_keys_text(mutated, "m", allow_insecure_suites)
        except KeysFileError as error:
            assert_no_key_material(str(error), text)
            continue
        for warning in result.warnings:
            assert_no_key_material(warning, text)
