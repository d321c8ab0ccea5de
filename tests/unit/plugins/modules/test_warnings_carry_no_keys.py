# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No module warning carries key material (issue 13).

ansible-core 2.21 sends each ``module.warn()`` as a structured warning summary, and
``remove_values`` (which applies ``no_log_values`` to a result) does not reach into it: a
warning's text is never masked. So every warning path of every module is driven here, through
the real module entry point, with real keys in every place the module can see them (the
options, the keys file on the node, the SAs in the kernel), and each warning's text is
searched for every spelling of every key: hex in both cases, with and without ``0x``, base64
standard and URL-safe, with and without padding, and any 12 characters of those.

Warning paths (``module.warn`` and the warnings the modules pass on):

* xfrm_keys: the keys' notes (2019 form without key ID, an ICV the kernel refuses, a legacy
  algorithm, a suite that protects nothing accepted for a test rig), for option ``content``,
  option ``keys``, the file on the node (report only) and ``retain_previous``;
* xfrm_info: a keys file that cannot be read, or is not a valid keys file;
* xfrm_endpoint: the plan's warnings (a peer without boot id, a peer with the local address)
  and an encrypt policy covering Ansible's own SSH connection;
* sysctl_ipv6_forward: IPv6 disabled on an interface, a drop-in masked or overridden at boot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator, Sequence

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.netsec.ipsec.plugins.module_utils import _sysctl
from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint as endpoint_logic
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import ALGO_AEAD, Algorithm, XfrmState
from ansible_collections.netsec.ipsec.plugins.modules import xfrm_endpoint, xfrm_info, xfrm_keys
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import (
    FakeKernel, key_spellings, warning_texts,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.modules.test_sysctl_ipv6_forward import Host

GCM = "rfc4106(gcm(aes))"


def key_bytes(label: str, length: int) -> bytes:
    """A key that looks random and is the same on every run (a failure can be replayed)."""
    return hashlib.sha512(b"netsec.ipsec warnings test " + label.encode()).digest()[:length]


AEAD_1 = key_bytes("aead 1", 20)
AEAD_2 = key_bytes("aead 2", 20)
AEAD_3 = key_bytes("aead 3", 20)
CHACHA = key_bytes("chacha", 36)
HMAC_MD5 = key_bytes("hmac md5", 16)
DES3 = key_bytes("des3", 24)
CBC = key_bytes("cbc", 16)
FOREIGN = key_bytes("foreign sa", 20)
ALL_KEYS = (AEAD_1, AEAD_2, AEAD_3, CHACHA, HMAC_MD5, DES3, CBC, FOREIGN)


def pieces(key_material: bytes, size: int = 12) -> Iterator[str]:
    """Every spelling of a key and every ``size`` characters of one."""
    for text in key_spellings(key_material):
        yield text
        for start in range(len(text) - size + 1):
            yield text[start:start + size]


def assert_no_key_in_warnings(result: Dict[str, Any], expected: Sequence[str]) -> None:
    """The warnings containing each of ``expected`` are there, and none holds a key."""
    texts = warning_texts(result)
    for fragment in expected:
        assert any(fragment in text for text in texts), (fragment, texts)
    for text in texts:
        for key_material in ALL_KEYS:
            for piece in pieces(key_material):
                assert piece not in text, "key material in a warning: %r" % text


def run_module(main: Any, capsys: pytest.CaptureFixture, **args: Any) -> Dict[str, Any]:
    with patch_module_args(dict(args, _ansible_check_mode=args.pop("check", False), _ansible_diff=True)):
        with pytest.raises(SystemExit):
            main()
    return json.loads(capsys.readouterr().out)


def hex_key(key_material: bytes, spelling: int = 0) -> str:
    """The key written the ways a keys file may write it."""
    return [key_material.hex(), "0x" + key_material.hex(), key_material.hex().upper(),
            "0x" + key_material.hex().upper()][spelling]


# --- xfrm_keys ----------------------------------------------------------------------------

NOTED_CONTENT = {
    "2019 form": ("%s %s 128\n" % (GCM, hex_key(AEAD_1, 2)), ["no key ID (SPI) at the start of the line"]),
    "kernel ICV": ("3+ %s %s 256\n4+ %s %s 256\n" % (GCM, hex_key(AEAD_1, 1), GCM, hex_key(AEAD_2, 3)),
                   ["line 1: the kernel refuses ICV 256", "line 2: the kernel refuses ICV 256"]),
    "chacha ICV": ("5 rfc7539esp(chacha20,poly1305) %s 96\n" % hex_key(CHACHA), ["the kernel refuses ICV 96"]),
    "legacy": ("1 hmac(md5) %s cbc(des3_ede) %s\n" % (hex_key(HMAC_MD5, 3), hex_key(DES3, 1)),
               ["hmac(md5) is a legacy algorithm", "cbc(des3_ede) is a legacy algorithm"]),
    "gmac allowed": ("6+ rfc4543(gcm(aes)) %s 128\n" % hex_key(AEAD_3, 1), ["rfc4543(gcm(aes)) is GMAC"]),
    "no integrity allowed": ('7 digest_null "" cbc(aes) %s\n' % hex_key(CBC, 2), ["digest_null authenticates nothing"]),
}


@pytest.mark.parametrize("name", sorted(NOTED_CONTENT))
def test_xfrm_keys_content_warnings(name: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    content, expected = NOTED_CONTENT[name]
    path = tmp_path / "keys"
    result = run_module(xfrm_keys.main, capsys, path=str(path), content=content, allow_insecure_suites=True)
    assert result["changed"] is True
    assert_no_key_in_warnings(result, expected)
    # The same file read back on the node (report only): the same notes, the file's path.
    again = run_module(xfrm_keys.main, capsys, path=str(path), allow_insecure_suites=True)
    assert_no_key_in_warnings(again, ["%s, line 1: " % path] + expected)


def test_xfrm_keys_list_warnings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    keys = [dict(spi=1, aead=GCM, aead_key=hex_key(AEAD_1, 3), icv_bits=256),
            dict(spi=2, aead=GCM, aead_key=hex_key(AEAD_2, 1), icv_bits=256)]
    result = run_module(xfrm_keys.main, capsys, path=str(tmp_path / "keys"), keys=keys)
    assert_no_key_in_warnings(result, ["option keys[0]: the kernel refuses ICV 256",
                                       "option keys[1]: the kernel refuses ICV 256"])
    legacy = [dict(spi=1, auth="hmac(md5)", auth_key=hex_key(HMAC_MD5), enc="cbc(des3_ede)", enc_key=hex_key(DES3))]
    result = run_module(xfrm_keys.main, capsys, path=str(tmp_path / "legacy"), keys=legacy)
    assert_no_key_in_warnings(result, ["option keys[0]: hmac(md5) is a legacy algorithm"])


def test_xfrm_keys_retain_previous_warnings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "keys"
    run_module(xfrm_keys.main, capsys, path=str(path), content="%s %s 256\n" % (GCM, hex_key(AEAD_1, 2)))
    result = run_module(xfrm_keys.main, capsys, path=str(path), content="2+ %s %s 256\n" % (GCM, hex_key(AEAD_2)),
                        retain_previous=True)
    assert [info["spi"] for info in result["keys_info"]] == [1, 2]
    assert_no_key_in_warnings(result, ["option content after the retained key, line 1: the kernel refuses ICV 256",
                                       "option content after the retained key, line 2: the kernel refuses ICV 256"])


# --- xfrm_info ----------------------------------------------------------------------------


def test_xfrm_info_keys_file_warnings(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    invalid = tmp_path / "invalid"
    invalid.write_text("1+ %s %s 128\n1+ %s %s 128\n" % (GCM, hex_key(AEAD_1), GCM, hex_key(AEAD_2, 3)))
    insecure = tmp_path / "insecure"
    insecure.write_text('1 digest_null "" cbc(aes) %s\n' % hex_key(CBC, 1))
    broken_key = tmp_path / "broken"
    broken_key.write_text("1 %s %s 128\n" % (GCM, base64.b64encode(AEAD_3).decode()))
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    large = tmp_path / "large"
    large.write_text(("1 %s %s 128\n" % (GCM, hex_key(AEAD_1))) * 2000)
    for path, fragment in ((invalid, "is not a valid keys file"), (insecure, "is not a valid keys file"),
                           (broken_key, "is not a valid keys file"), (fifo, "is not a regular file"),
                           (tmp_path, "is a directory"), (large, "is larger than")):
        result = run_module(xfrm_info.main, capsys, keys_file=str(path), entries=False)
        assert result["current_key"] is None
        assert_no_key_in_warnings(result, ["%s " % path, fragment])


# --- xfrm_endpoint ------------------------------------------------------------------------


@pytest.mark.parametrize("check", [True, False])
def test_xfrm_endpoint_warnings(check: bool, tmp_path: Path, capsys: pytest.CaptureFixture,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("1+ %s %s 128\n2+ %s %s 128\n" % (GCM, hex_key(AEAD_1, 2), GCM, hex_key(AEAD_2, 1)))
    monkeypatch.setattr(endpoint_logic, "XfrmKernel", FakeKernel)
    # An installed foreign SA: its key is in the kernel too, and may never reach a warning.
    monkeypatch.setattr(FakeKernel, "states", [XfrmState(src="192.0.2.1", dst="192.0.2.2", spi=0x99, reqid=4242,
                                                         aead=Algorithm(ALGO_AEAD, GCM, FOREIGN, 128))])
    monkeypatch.setattr(FakeKernel, "policies", [])
    monkeypatch.setattr(FakeKernel, "applied", [])
    monkeypatch.setattr(endpoint_logic, "BOOT_ID_PATH", str(tmp_path / "boot_id"))
    (tmp_path / "boot_id").write_text("0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa\n")
    monkeypatch.setenv("SSH_CONNECTION", "10.77.0.3 46788 10.77.0.1 22")
    peers = [
        dict(name="node3", addresses=["10.77.0.3"], boot_id="0b0b0b0b-2222-4222-8222-bbbbbbbbbbbb"),
        dict(name="sleeper", addresses=["10.77.0.4"]),
    ]
    result = run_module(xfrm_endpoint.main, capsys, check=check, keys_file=str(keys_file),
                        local=dict(addresses=["10.77.0.1"]), peers=peers, bypass=[])
    assert result.get("failed") is not True, result.get("msg")
    assert_no_key_in_warnings(result, [
        "peer sleeper has no boot id",
        "covers the SSH connection Ansible is using (10.77.0.3:46788 -> 10.77.0.1:22)",
    ])


# --- sysctl_ipv6_forward ------------------------------------------------------------------


def test_sysctl_warnings(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    host = Host(tmp_path)
    monkeypatch.setattr(_sysctl, "PROC_SYS_ROOT", str(host.proc))
    monkeypatch.setattr(_sysctl, "SYSCTL_D_DIRS", (str(host.etc / "sysctl.d"), str(tmp_path / "usr/lib/sysctl.d")))
    monkeypatch.setattr(_sysctl, "SYSCTL_CONF", str(host.etc / "sysctl.conf"))
    # The node's keys file sits next to the sysctl files; the module never reads it.
    (host.etc / "ipsec").mkdir(parents=True)
    (host.etc / "ipsec" / "keys").write_text("1+ %s %s 128\n" % (GCM, hex_key(AEAD_1)))
    (host.proc / "net/ipv6/conf/eth0/disable_ipv6").write_text("1\n")
    (host.etc / "sysctl.d").mkdir(parents=True, exist_ok=True)
    (host.etc / "sysctl.d" / "99-hardening.conf").write_text("net.ipv6.conf.all.forwarding = 0\n")
    (tmp_path / "usr/lib/sysctl.d").mkdir(parents=True)
    result = host.run(capsys, interfaces=["all", "eth0"])
    assert_no_key_in_warnings(result, ["IPv6 is disabled on 'eth0'", "99-hardening.conf sets net.ipv6.conf.all.forwarding = 0"])
