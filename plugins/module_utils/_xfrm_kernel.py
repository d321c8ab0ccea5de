# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel adapter: the SAD/SPD of one network namespace as model objects.

``XfrmKernel`` dumps SAs and policies into ``XfrmState`` / ``XfrmPolicy`` values and applies
an ordered list of ``Operation`` s, stopping at the first failure. It decides nothing about
what should exist, and it exposes no flush: every change names one exact object.

Verbs and the messages they become:

* ``add``: NEWSA / NEWPOLICY (``EEXIST`` when the key exists).
* ``update``: UPDPOLICY replaces the policy with the same key (selector, dir, mark, type,
  if_id) or inserts it. UPDSA fails with ``ESRCH`` unless the SA exists, and then changes
  only lifetimes, the output mark and if_id (and a larval SA wholesale): keys, algorithms,
  reqid, mode and replay settings are kept. Changing those means a new SPI: add the new
  SA, then delete the old one.
* ``delete``: DELSA by (dst, spi, proto, family, mark); DELPOLICY by exact selector + dir
  + mark + policy type + if_id (never by index).

Errors name the operation (rendered without key material), its index in the list, the
errno and the kernel's extended-ack text, with a distinct message for a missing algorithm
or protocol, a malformed object, an existing and a missing object.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._nl.xfrm_socket import (
    XfrmSocket,
    XfrmSocketError,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._nl.xfrm_structs import (
    HAS_PYROUTE2,
    PYROUTE2_IMPORT_ERROR,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm_model import (
    ACTION_NAMES,
    DIR_NAMES,
    MODE_NAMES,
    XfrmPolicy,
    XfrmState,
)

XfrmObject = Union[XfrmState, XfrmPolicy]

VERB_ADD = "add"
VERB_UPDATE = "update"
VERB_DELETE = "delete"
VERBS = (VERB_ADD, VERB_UPDATE, VERB_DELETE)

_PROTO_NAMES = {50: "esp", 51: "ah", 108: "comp"}
_POLICY_TYPE_NAMES = {0: "main", 1: "sub"}
# ESRCH is what DELSA/UPDSA/GETSA return for a missing SA; policies use ENOENT.
_NOT_FOUND = (errno.ENOENT, errno.ESRCH)
# The SA's algorithm (ENOSYS "Requested ... algorithm not found") or its IPsec protocol
# (EPROTONOSUPPORT "Requested type not found": esp4/esp6 not built or loaded).
_MISSING_SUPPORT = (errno.ENOSYS, errno.EPROTONOSUPPORT)

__all__ = [
    "ApplyResult",
    "DumpedEntries",
    "HAS_PYROUTE2",
    "Operation",
    "PYROUTE2_IMPORT_ERROR",
    "VERBS",
    "XfrmKernel",
    "XfrmKernelError",
    "describe",
]


# ---------------------------------------------------------------------------------------
# Masked one-line descriptions (for error messages; never any key bytes)


def _mark_text(label: str, mark: object) -> str:
    if mark is None:
        return ""
    return " %s 0x%x/0x%x" % (label, mark.value, mark.mask)  # type: ignore[attr-defined]


def _describe_state(state: XfrmState) -> str:
    text = "state %s->%s spi 0x%x (%s) reqid %d mode %s" % (
        state.src,
        state.dst,
        state.spi,
        _PROTO_NAMES.get(state.proto, "proto %d" % state.proto),
        state.reqid,
        MODE_NAMES.get(state.mode, str(state.mode)),
    )
    text += _mark_text("mark", state.mark) + _mark_text("output-mark", state.output_mark)
    if state.if_id:
        text += " if_id %d" % state.if_id
    for algorithm in state.algorithms():
        # The name and the key length are public; the key is not.
        text += " %s %s (%d-bit key)" % (algorithm.kind, algorithm.name, len(algorithm.key) * 8)
    return text


def _describe_policy(policy: XfrmPolicy) -> str:
    selector = policy.selector
    text = "policy %s %s->%s" % (DIR_NAMES.get(policy.dir, "dir %d" % policy.dir), selector.src, selector.dst)
    if selector.proto:
        text += " proto %d" % selector.proto
    if selector.sport_mask:
        text += " sport %d" % selector.sport
    if selector.dport_mask:
        text += " dport %d" % selector.dport
    text += " priority %d %s" % (policy.priority, ACTION_NAMES.get(policy.action, "action %d" % policy.action))
    if policy.ptype:
        text += " ptype %s" % _POLICY_TYPE_NAMES.get(policy.ptype, str(policy.ptype))
    text += _mark_text("mark", policy.mark)
    if policy.if_id:
        text += " if_id %d" % policy.if_id
    for template in policy.templates:
        text += " tmpl %s->%s %s reqid %d %s%s" % (
            template.src,
            template.dst,
            _PROTO_NAMES.get(template.proto, "proto %d" % template.proto),
            template.reqid,
            MODE_NAMES.get(template.mode, str(template.mode)),
            " level use" if template.optional else "",
        )
    return text


def describe(obj: object) -> str:
    """One line in the spirit of ``ip xfrm``, without key material."""
    if isinstance(obj, XfrmState):
        return _describe_state(obj)
    if isinstance(obj, XfrmPolicy):
        return _describe_policy(obj)
    return type(obj).__name__


# ---------------------------------------------------------------------------------------
# Operations, results, errors


@dataclasses.dataclass(frozen=True)
class Operation:
    """One change: ``verb`` (add / update / delete) applied to an SA or policy."""

    verb: str
    obj: XfrmObject

    def __post_init__(self) -> None:
        if self.verb not in VERBS:
            raise ValueError("operation verb must be one of %s, not %r" % (", ".join(VERBS), self.verb))
        if not isinstance(self.obj, (XfrmState, XfrmPolicy)):
            raise TypeError("operation object must be an XfrmState or XfrmPolicy, not %s" % type(self.obj).__name__)

    def describe(self) -> str:
        return "%s %s" % (self.verb, describe(self.obj))


class XfrmKernelError(Exception):
    """A kernel conversation failed. ``message`` is complete and safe to show."""

    def __init__(
        self,
        message: str,
        errno_value: int = 0,
        extack: Optional[str] = None,
        operation: Optional[Operation] = None,
        index: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno_value
        self.extack = extack
        self.operation = operation
        self.index = index

    def __str__(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did: the operations the kernel applied, in order, and the failure.

    On failure ``applied`` is every operation before ``failed`` (nothing after it was
    sent), except when an operation could not even be encoded: then nothing was sent and
    ``applied`` is empty.
    """

    applied: Tuple[Operation, ...]
    failed: Optional[Operation] = None
    error: Optional[XfrmKernelError] = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _reason(operation: Operation, error_number: int, extack: Optional[str]) -> str:
    """Why the kernel refused an operation, in words that point at the fix."""
    kernel_text = extack or os.strerror(error_number)
    is_state = isinstance(operation.obj, XfrmState)
    if error_number == errno.EEXIST:
        if is_state:
            return "an SA with this destination, SPI, protocol and mark already exists"
        return "a policy with this selector, direction, mark, type and if_id already exists"
    if error_number in _NOT_FOUND and is_state and operation.verb == VERB_ADD:
        # An add refers to nothing that exists: ENOENT comes from setting up the SA's crypto
        # (a transform that cannot be instantiated, e.g. its module cannot be loaded).
        return ("the kernel could not set up this SA's cryptography (%s): a crypto module it needs is missing "
                "or cannot be loaded" % kernel_text)
    if error_number in _NOT_FOUND:
        if is_state:
            return "no SA with this destination, SPI, protocol and mark exists"
        return "no policy with this selector, direction, mark, type and if_id exists"
    if error_number == errno.ENOSYS:
        aead = operation.obj.aead if is_state else None
        if aead is not None:
            # The kernel looks AEAD algorithms up by name AND ICV length: rfc4543(gcm(aes)) with
            # a 96-bit ICV is "not found" although rfc4543(gcm(aes)) itself is there.
            return ("the kernel lacks an algorithm this SA uses: %s with a %d-bit ICV (%s); use an ICV the "
                    "kernel implements for it or load its crypto module" % (aead.name, aead.bits, kernel_text))
        return "the kernel lacks an algorithm this SA uses (%s); load the crypto module or pick another" % kernel_text
    if error_number == errno.EPROTONOSUPPORT:
        return "the kernel lacks the IPsec protocol of this SA (%s); load esp4/esp6 (or ah4/ah6)" % kernel_text
    if error_number == errno.EINVAL:
        return "the kernel rejected it as malformed: %s" % kernel_text
    if error_number == errno.EPERM:
        return "permission denied: XFRM changes need CAP_NET_ADMIN in the target network namespace"
    return "%s (errno %d)" % (kernel_text, error_number)


def _operation_error(
    operations: Sequence[Operation], index: int, error_number: int, extack: Optional[str], reason: str
) -> XfrmKernelError:
    operation = operations[index]
    message = "%s failed (operation %d of %d): %s" % (operation.describe(), index + 1, len(operations), reason)
    return XfrmKernelError(message, error_number, extack, operation, index)


class DumpedEntries:
    """The SAs or the policies of one dump as records (for comparing), in dump order, and
    the same entries as model objects, decoded on request (``at``) or all at once
    (``objects``): ``objects()`` equals what ``dump_states``/``dump_policies`` return.

    Records hold key bytes: they are for comparing, never for showing.
    """

    def __init__(self, entries: Sequence[Tuple[Tuple[object, ...], bytes, int, int]],
                 decode: Callable[[bytes, int, int], object], what: str = "entries") -> None:
        self._entries = entries
        self._decode = decode
        self._what = what
        self.records: List[Tuple[object, ...]] = [entry[0] for entry in entries]

    def __len__(self) -> int:
        return len(self._entries)

    def at(self, index: int) -> Any:
        _record, data, start, end = self._entries[index]
        try:
            return self._decode(data, start, end)
        except C.XfrmCodecError as exc:
            raise XfrmKernelError("dumping %s failed: %s" % (self._what, exc), errno.EIO)

    def objects(self) -> List[Any]:
        decode = self._decode
        try:
            return [decode(data, start, end) for _record, data, start, end in self._entries]
        except C.XfrmCodecError as exc:
            raise XfrmKernelError("dumping %s failed: %s" % (self._what, exc), errno.EIO)


# ---------------------------------------------------------------------------------------
# The adapter


class XfrmKernel:
    """The XFRM tables of a network namespace (a name under /run/netns, a path such as
    /proc/PID/ns/net, or None for the current one).

    Use as a context manager, or call ``close()``.
    """

    def __init__(self, netns: Optional[str] = None) -> None:
        self.netns = netns
        where = "network namespace %r" % netns if netns else "the current network namespace"
        try:
            self._socket: Optional[XfrmSocket] = XfrmSocket(netns)
        except XfrmSocketError as exc:
            raise XfrmKernelError("cannot open XFRM netlink in %s: %s" % (where, exc), exc.errno, exc.extack)

    def __enter__(self) -> "XfrmKernel":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    @property
    def _sock(self) -> XfrmSocket:
        if self._socket is None:
            raise XfrmKernelError("the XFRM kernel adapter is closed")
        return self._socket

    def _dump(self, msg_type: int, decode: object, what: str) -> list:
        try:
            return self._sock.dump(msg_type, decode)  # type: ignore[arg-type]
        except (XfrmSocketError, C.XfrmCodecError) as exc:
            error_number = getattr(exc, "errno", 0) or errno.EIO
            raise XfrmKernelError("dumping %s failed: %s" % (what, exc), error_number, getattr(exc, "extack", None))

    def dump_states(self) -> List[XfrmState]:
        """Every SA of the namespace (larval ones included), with counters."""
        # The GETSA dump request carries no fixed header: the kernel reads attributes
        # (optional filters) straight after the nlmsghdr.
        return self._dump(S.XFRM_MSG_GETSA, C.decode_state, "SAs")

    def dump_policies(self) -> List[XfrmPolicy]:
        """Every policy of the namespace, all types, without per-socket policies."""
        return self._dump(S.XFRM_MSG_GETPOLICY, C.decode_policy, "policies")

    def dump_state_records(self) -> "DumpedEntries":
        """Every SA as a record (``_xfrm_model.state_record`` of what ``dump_states`` would
        return), each decoded to a model object only on request."""
        return self._dump_records(S.XFRM_MSG_GETSA, C.decode_state_record, C.decode_state, "SAs")

    def dump_policy_records(self) -> "DumpedEntries":
        """Every policy as a record (``policy_record`` of what ``dump_policies`` would return)."""
        return self._dump_records(S.XFRM_MSG_GETPOLICY, C.decode_policy_record, C.decode_policy, "policies")

    def _dump_records(self, msg_type: int, read_record: Callable[[bytes, int, int], Optional[Tuple[object, ...]]],
                      decode: Callable[[bytes, int, int], object], what: str) -> "DumpedEntries":
        def entry(data: bytes, start: int, end: int) -> Optional[Tuple[Tuple[object, ...], bytes, int, int]]:
            record = read_record(data, start, end)
            return None if record is None else (record, data, start, end)

        return DumpedEntries(self._dump(msg_type, entry, what), decode, what)

    def apply(self, operations: Sequence[Operation]) -> ApplyResult:
        """Apply operations in order; stop at the first failure (see ApplyResult)."""
        operations = tuple(operations)
        messages: List[Tuple[int, bytes]] = []
        for index, operation in enumerate(operations):
            try:
                messages.append(C.encode_for(operation.verb, operation.obj))
            except C.XfrmCodecError as exc:
                error = _operation_error(
                    operations, index, errno.EINVAL, None, "cannot be expressed as an XFRM message: %s" % exc
                )
                return ApplyResult(applied=(), failed=operation, error=error)
        count, failure = self._sock.execute(messages)
        if failure is None:
            return ApplyResult(applied=operations)
        error_number, extack = failure
        reason = _reason(operations[count], error_number, extack)
        if error_number in (errno.ENOBUFS, errno.EIO) and extack and extack.startswith("receive failed"):
            reason = "the kernel's answer was lost (%s); this operation may or may not be applied" % extack
        error = _operation_error(operations, count, error_number, extack, reason)
        return ApplyResult(applied=operations[:count], failed=operations[count], error=error)

    def allocspi(self, state: XfrmState, spi_min: int, spi_max: int) -> XfrmState:
        """Create a larval SA with an SPI from [spi_min, spi_max] and return it.

        For tests on kernels without ESP (ALLOCSPI works without it; NEWSA does not).
        Larval SAs expire after net.core.xfrm_acq_expires seconds (30 by default).
        """
        try:
            replies = self._sock.request(S.XFRM_MSG_ALLOCSPI, C.encode_allocspi(state, spi_min, spi_max))
        except (XfrmSocketError, C.XfrmCodecError) as exc:
            raise XfrmKernelError(
                "allocating an SPI for %s failed: %s" % (describe(state), exc),
                getattr(exc, "errno", 0) or errno.EINVAL,
                getattr(exc, "extack", None),
            )
        for reply_type, data, start, end in replies:
            if reply_type == S.XFRM_MSG_NEWSA:
                return C.decode_state(data, start, end)
        raise XfrmKernelError("ALLOCSPI returned no SA", errno.EIO)
