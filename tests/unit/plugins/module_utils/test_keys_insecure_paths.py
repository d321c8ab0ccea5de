# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every other path that reads keys refuses a suite that protects nothing (issue 13).

Only ``xfrm_keys`` with ``allow_insecure_suites=true`` accepts such a key (a test rig's keys
file). The endpoint module refuses the file before it opens the kernel, ``xfrm_info`` does
not report its current key, the role's ``keys_file_is_current`` filter never calls the keys
task idle on it (so the task runs and refuses it, naming the option), and the lookup never
makes such a key.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from ansible_collections.netsec.ipsec.plugins.module_utils._controller.mesh import keys_file_is_current
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import KEYS_FILE_MODE, KeysFileError
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import file_fingerprint
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.sources import load_keys_file
from ansible_collections.netsec.ipsec.plugins.module_utils._modules import endpoint, info
from ansible_collections.netsec.ipsec.plugins.module_utils._planner.ownership import DEFAULT_REQID
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.keys_samples import GCM, KEY16, KEY20
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import FakeModule

BOOT_ID = "0a0a0a0a-1111-4111-8111-aaaaaaaaaaaa"
INSECURE_FILES = {
    "null": '3 digest_null "" cipher_null ""\n',
    "gmac": "3+ rfc4543(gcm(aes)) 0x%s 128\n" % KEY20,
    "no integrity": '3+ digest_null "" cbc(aes) 0x%s\n' % KEY16,
}


@pytest.fixture(params=sorted(INSECURE_FILES))
def insecure_file(request: Any, tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.write_text(INSECURE_FILES[request.param])
    path.chmod(0o600)
    # What xfrm_keys with the option would have written: it is well formed.
    assert load_keys_file(path, allow_insecure_suites=True).current.spi == 3
    return path


class KernelMustNotOpen:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the kernel was opened for a keys file that protects nothing")


def test_xfrm_endpoint_refuses_the_file_before_touching_the_kernel(insecure_file: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(endpoint, "XfrmKernel", KernelMustNotOpen)
    params: Dict[str, Any] = dict(
        keys_file=str(insecure_file), local=dict(addresses=["10.99.0.1"], subnets=None),
        peers=[dict(name="peer", addresses=["10.98.0.2"], subnets=None, boot_id=BOOT_ID.replace("a", "b"),
                    inbound_level=None, outbound="enable")],
        per_pair_keys=True, out_spi=None, outbound=True, phase="all", inbound_level="required",
        bypass=[], marks="none", reqid=DEFAULT_REQID, state="present", purge=True,
    )
    with pytest.raises(KeysFileError) as caught:
        endpoint.reconcile_node(FakeModule(), params, BOOT_ID)
    message = str(caught.value)
    assert message.startswith("%s, line 1: field 2 " % insecure_file)
    assert "allow_insecure_suites=true" in message
    assert KEY20 not in message and KEY16 not in message


def test_xfrm_info_does_not_report_the_current_key(insecure_file: Path) -> None:
    module = FakeModule()
    facts = info.keys_file_facts(module, str(insecure_file))
    assert facts["current_key"] is None
    assert facts["keys_file_fingerprint"] == file_fingerprint(insecure_file.read_bytes())
    assert module.warnings == ["%s is not a valid keys file, its current key is not reported" % insecure_file]


def test_the_role_filter_never_calls_the_keys_task_idle_on_it(insecure_file: Path) -> None:
    content = insecure_file.read_text()
    node_info = {"keys_file_fingerprint": file_fingerprint(content.encode()), "keys_file_mode": KEYS_FILE_MODE}
    assert keys_file_is_current(node_info, content, None) is False
    # The same check on a file that protects is true: the refusal above is the suite's.
    good = "3+ %s 0x%s 128\n" % (GCM, KEY20)
    good_info = {"keys_file_fingerprint": file_fingerprint(good.encode()), "keys_file_mode": KEYS_FILE_MODE}
    assert keys_file_is_current(good_info, good, None) is True


_LOOKUP_RUN = """
import sys
from ansible.plugins.loader import init_plugin_loader, lookup_loader
init_plugin_loader()  # before anything imports from ansible_collections
lookup = lookup_loader.get("netsec.ipsec.xfrm_key_line")
print(lookup.run([2])[0][:23])
try:
    lookup.run([2], aead="rfc4543(gcm(aes))")
except Exception as error:
    print(type(error).__name__, error)
"""


def test_the_lookup_never_makes_a_gmac_key() -> None:
    # A fresh interpreter: the plugin loader must set up the collection finder before any
    # import from ansible_collections, which this test process has long done.
    run = subprocess.run([sys.executable, "-c", _LOOKUP_RUN], capture_output=True, text=True, check=False,
                         env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    made, refused = run.stdout.splitlines()
    assert made == "2+ rfc4106(gcm(aes)) 0x"
    assert refused.startswith("AnsibleError xfrm_key_line: generate_key: rfc4543(gcm(aes)) is GMAC, it "
                              "authenticates but does not encrypt")
