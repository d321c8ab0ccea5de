# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-pair keys: one key per direction of each pair of nodes, derived from the master key.

One key shared by every SA, with sequence numbers restarting at 0 whenever an SA is
re-created, reuses GCM nonces. Deriving a key per direction from both tunnel addresses and
both boot ids gives every SA its own key, and a new one whenever either node reboots.

The construction is Cilium's per-tunnel key, byte for byte, so that a node keyed by this
collection and a node keyed by Cilium agree::

    key(src, dst) = H(master || ip(src) || ip(dst) || boot(src) || boot(dst))[:len(master)]

* H is SHA-256 when the master key has at most 32 bytes, SHA-512 otherwise (so keys of up
  to 64 bytes can be derived; longer ones are refused).
* ip() is 4 bytes for IPv4 (an IPv4-mapped IPv6 address counts as IPv4) and 16 for IPv6.
* boot() is the ASCII text of ``/proc/sys/kernel/random/boot_id``: a 36-character
  lowercase UUID. One trailing newline is dropped. Cilium cuts the text to 36 characters;
  here anything but a well-formed 36-character UUID is an error naming the node, since a
  wrong boot id silently gives each side a different key.
* The OUT SA from A to B on node A and the IN SA from A to B on node B both use
  ``key(A, B)``; the reverse direction uses ``key(B, A)``.
* For an auth+enc key, the auth key and the encryption key are each derived the same way.
  An empty key (``digest_null`` / ``cipher_null``) stays empty.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from typing import Optional, Tuple, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._keys.model import MAX_KEY_BYTES, Key

BOOT_ID_CHARS = 36
# Keys up to this length are derived with SHA-256, longer ones with SHA-512.
SHA256_MAX_KEY_BYTES = 32
# Parsed addresses and checked boot ids kept per process (a few per peer).
CACHE_SIZE = 1 << 16
_BOOT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

Address = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]


class KeyDerivationError(ValueError):
    """Inputs from which no per-pair key can be derived. Never holds key material."""


def address_bytes(address: Address, role: str = "address") -> bytes:
    """The bytes of a tunnel address as the derivation hashes them (4 or 16 bytes)."""
    try:
        packed = _address_bytes(address)
    except TypeError:  # unhashable, so not an address either
        packed = None
    if packed is None:
        raise KeyDerivationError("%s %r is not an IP address" % (role, address))
    return packed


@functools.lru_cache(maxsize=CACHE_SIZE, typed=True)
def _address_bytes(address: Address) -> Optional[bytes]:
    # A mesh plan hashes each address once per pair and direction: parse it once.
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped.packed
    return parsed.packed


def boot_id_bytes(boot_id: str, node: str) -> bytes:
    """The boot id text as hashed; ``node`` names its owner in errors."""
    if not isinstance(boot_id, str):
        raise KeyDerivationError("boot id of %s must be text, not %s"
                                 % (node, type(boot_id).__name__))
    text = boot_id[:-1] if boot_id.endswith("\n") else boot_id
    if _is_boot_id(text):
        return text.encode("ascii")
    if len(text) < BOOT_ID_CHARS:
        raise KeyDerivationError(
            "boot id of %s has %d characters, expected a %d-character UUID as in "
            "/proc/sys/kernel/random/boot_id%s" % (
                node, len(text), BOOT_ID_CHARS,
                " (empty: was it gathered from that node?)" if not text else ""))
    if len(text) > BOOT_ID_CHARS or not _BOOT_ID.fullmatch(text):
        raise KeyDerivationError(
            "boot id of %s is not a lowercase %d-character UUID "
            "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx) as /proc/sys/kernel/random/boot_id "
            "holds it" % (node, BOOT_ID_CHARS))
    return text.encode("ascii")


@functools.lru_cache(maxsize=CACHE_SIZE)
def _is_boot_id(text: str) -> bool:
    # Each boot id is checked once per pair and direction: match it once.
    return len(text) == BOOT_ID_CHARS and _BOOT_ID.fullmatch(text) is not None


@functools.lru_cache(maxsize=CACHE_SIZE)
def _valid_boot_id_bytes(boot_id: str) -> Optional[bytes]:
    # What boot_id_bytes returns for a valid boot id text, or None (it then says what is wrong).
    text = boot_id[:-1] if boot_id.endswith("\n") else boot_id
    return text.encode("ascii") if _is_boot_id(text) else None


def derive_key(master: bytes, src: Address, dst: Address, src_boot: str, dst_boot: str
               ) -> bytes:
    """The key for traffic from ``src`` to ``dst`` (tunnel addresses), given both boot ids."""
    # A mesh plan derives two keys per peer: inputs the checks below would accept take this
    # path, with each address and boot id parsed once per process; anything else (including
    # every error) goes through the checks.
    if isinstance(master, bytes) and 0 < len(master) <= MAX_KEY_BYTES and isinstance(src_boot, str) \
            and isinstance(dst_boot, str):
        try:
            src_bytes = _address_bytes(src)
            dst_bytes = _address_bytes(dst)
        except TypeError:  # unhashable: the checks below name it
            src_bytes = dst_bytes = None
        src_boot_bytes = _valid_boot_id_bytes(src_boot)
        dst_boot_bytes = _valid_boot_id_bytes(dst_boot)
        if src_bytes is not None and dst_bytes is not None and src_boot_bytes is not None \
                and dst_boot_bytes is not None:
            hash_function = hashlib.sha256 if len(master) <= SHA256_MAX_KEY_BYTES else hashlib.sha512
            return hash_function(master + src_bytes + dst_bytes + src_boot_bytes + dst_boot_bytes
                                 ).digest()[:len(master)]
    src_bytes = address_bytes(src, "source address")
    dst_bytes = address_bytes(dst, "destination address")
    src_boot_bytes = boot_id_bytes(src_boot, "source %s" % src)
    dst_boot_bytes = boot_id_bytes(dst_boot, "destination %s" % dst)
    if not isinstance(master, (bytes, bytearray)):
        raise KeyDerivationError("the master key must be bytes")
    if not master:
        return b""
    if len(master) > MAX_KEY_BYTES:
        raise KeyDerivationError("a %d-byte key is too long to derive per-pair keys from "
                                 "(at most %d bytes)" % (len(master), MAX_KEY_BYTES))
    hash_function = hashlib.sha256 if len(master) <= SHA256_MAX_KEY_BYTES else hashlib.sha512
    digest = hash_function(bytes(master) + src_bytes + dst_bytes + src_boot_bytes
                           + dst_boot_bytes).digest()
    return digest[:len(master)]


def derive_material(key: Key, src: Address, dst: Address, src_boot: str, dst_boot: str) -> Tuple[bytes, ...]:
    """The key material of ``key`` for traffic from ``src`` to ``dst``: (AEAD key,) or (auth
    key, encryption key), each derived with ``derive_key``."""
    return tuple([derive_key(part, src, dst, src_boot, dst_boot) for part in key.key_material])
