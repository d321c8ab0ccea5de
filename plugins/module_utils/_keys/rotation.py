# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key rotation: which key may follow which, the next key ID, and fresh random keys.

A keys file lists keys in rotation order, so the grammar applies ``successor_problem`` to
every pair of consecutive lines, and ``xfrm_keys`` applies ``check_successor`` to the key it
puts after the file's current one and ``overhead_problem`` to any key that replaces it.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.catalogue import (
    ROLE_AEAD, checked_algorithm, esp_overhead,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import (
    FORM_AEAD, SPI_MAX, SPI_MIN, Invalid, Key, KeysFile, KeysFileError, choices,
    icv_value, spi_value,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._keys.secrets import render_key_line

DEFAULT_AEAD = "rfc4106(gcm(aes))"
DEFAULT_AEAD_KEY_BYTES = 20
DEFAULT_ICV_BITS = 128


def check_successor(old: Union[KeysFile, Key], new: Key) -> None:
    """Raise ``KeysFileError`` unless ``new`` may follow ``old`` (or its current key) in a
    keys file (``successor_problem``). Whether a rotation may switch to it is
    ``overhead_problem``'s question."""
    if isinstance(old, KeysFile):
        problem = successor_problem(old.current, new, old.keys[:-1])
    else:
        problem = successor_problem(old, new)
    if problem:
        raise KeysFileError("key rotation", problem)


def successor_problem(previous: Key, new: Key, earlier_keys: Sequence[Key] = ()) -> Optional[str]:
    """Why ``new`` cannot follow ``previous`` in a keys file, or None.

    ``earlier_keys`` are the keys before ``previous``. Unlike Cilium, which holds one key at
    a time, every key of the file is installed at once (inbound SAs for each), so a key ID
    may appear only once in a file: two keys with one SPI would claim the same SAs. Any
    other change of key (algorithms, key length, ICV) is a valid file; whether a rotation
    may make it is ``overhead_problem``'s question.
    """
    where = " (line %d)" % previous.line if previous.line else ""
    if new.spi == previous.spi:
        return ("key ID (SPI) %d is the same as the key before it%s: a new key needs a new "
                "key ID (next: %d)" % (new.spi, where, next_spi(previous.spi)))
    for earlier in earlier_keys:
        if earlier.spi == new.spi:
            return ("key ID (SPI) %d is already used%s: every key in the file needs its own "
                    "key ID (remove the old line before reusing its ID)"
                    % (new.spi, " on line %d" % earlier.line if earlier.line else " by an earlier key"))
    return None


def overhead_problem(current: Key, new: Key) -> Optional[str]:
    """Why a rotation from ``current`` to ``new`` needs the operator's word, or None.

    The MTU of a mesh's links and routes is sized for the bytes ESP adds to a packet
    (``catalogue.esp_overhead``): a new key that adds more would make packets that fit
    today too big, dropped or fragmented, during and after the rotation. The key's length
    does not matter: AES-128-GCM to AES-256-GCM, or auth+enc to AEAD, adds no more. (Cilium
    compares only an "authentication overhead" value; this is the whole of ESP's.)
    """
    before, after = esp_overhead(current), esp_overhead(new)
    if after <= before:
        return None
    return ("key ID %d adds up to %d bytes of ESP overhead to each packet, more than the %d of key ID %d it "
            "replaces: packets sized for the current MTU would no longer fit. Lower the MTU of the mesh's "
            "interfaces or routes by %d bytes first, then allow a larger overhead explicitly (xfrm_keys option "
            "allow_larger_overhead; the rotate playbook's ipsec_rotate_allow_larger_overhead)"
            % (new.spi, after, before, current.spi, after - before))


def next_spi(spi: int) -> int:
    """The key ID after ``spi``: 1..14 count up, 15 wraps to 1."""
    if isinstance(spi, bool) or not isinstance(spi, int) or not SPI_MIN <= spi <= SPI_MAX:
        raise KeysFileError("next_spi", "key ID (SPI) must be a number %d-%d"
                            % (SPI_MIN, SPI_MAX))
    return SPI_MIN if spi == SPI_MAX else spi + 1


def generate_key(spi: int, aead: str = DEFAULT_AEAD, key_bytes: int = DEFAULT_AEAD_KEY_BYTES,
                 icv: int = DEFAULT_ICV_BITS, plus_marker: bool = True) -> Key:
    """A fresh random AEAD key (``os.urandom``). Refuses an ICV the kernel does not do, and
    an algorithm that does not encrypt (GMAC): a generated key is always one that protects."""
    try:
        spi_number = spi_value(spi)
        icv_bits = icv_value(icv)
        spec = checked_algorithm(aead, ROLE_AEAD)
        if spec.insecure:
            raise Invalid("%s; only keys that protect are generated" % spec.insecure)
        if isinstance(key_bytes, bool) or not isinstance(key_bytes, int) \
                or spec.key_bytes is None or key_bytes not in spec.key_bytes:
            raise Invalid("key_bytes for %s must be %s (%s)" % (
                aead, choices(spec.key_bytes or (spec.nominal_key_bytes,)), spec.key_layout))
        if icv_bits not in spec.kernel_icv_bits:
            raise Invalid("the kernel does not implement ICV %d for %s (it does %s)" % (
                icv_bits, aead, choices(spec.kernel_icv_bits)))
    except Invalid as invalid:
        raise KeysFileError("generate_key", str(invalid)) from None
    return Key(spi=spi_number, form=FORM_AEAD, plus_marker=plus_marker, aead_name=spec.name,
               aead_key=os.urandom(key_bytes), icv_bits=icv_bits)


def generate_key_line(spi: int, aead: str = DEFAULT_AEAD, key_bytes: int = DEFAULT_AEAD_KEY_BYTES,
                      icv: int = DEFAULT_ICV_BITS) -> str:
    """A fresh key line such as ``3+ rfc4106(gcm(aes)) 0x<40 hex digits> 128`` (no newline).

    The result is secret: callers must treat it as they treat the keys file.
    """
    return render_key_line(generate_key(spi, aead, key_bytes, icv))
