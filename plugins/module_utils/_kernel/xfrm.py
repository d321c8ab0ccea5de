# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel adapter: the SAD/SPD of one network namespace as model entries.

``XfrmKernel`` dumps SAs and policies into ``XfrmState`` / ``XfrmPolicy`` values and applies
an ordered list of ``Operation`` s (``_xfrm.model.Verb`` says which message each verb is),
stopping at the first failure. It decides nothing about what should exist, and it exposes no
flush: every change names one exact entry.

Errors name the operation (masked: ``_xfrm.render``), its index in the list, the errno and
the kernel's extended-ack text, with a distinct message for a missing algorithm or protocol,
a malformed entry, an existing and a missing one. A reply that cannot be parsed is an error
of its own ("the kernel's answer could not be read"), never a traceback.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from typing import List, Optional, Sequence, Tuple

from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C, xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._nl.xfrm_socket import XfrmSocket, XfrmSocketError
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    Operation, StateCounters, Verb, XfrmPolicy, XfrmState,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render

# ESRCH is what DELSA/UPDSA/GETSA return for a missing SA; policies use ENOENT.
_NOT_FOUND = (errno.ENOENT, errno.ESRCH)

__all__ = [
    "ApplyResult",
    "XfrmKernel",
    "XfrmKernelError",
    "describe_operation",
]


def describe_operation(operation: Operation) -> str:
    """An operation in one masked line: ``add state 10.0.0.1 -> ...``."""
    return "%s %s" % (operation.verb.value, render(operation.entry))


# ---------------------------------------------------------------------------------------
# Operations, results, errors


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
    ``applied`` is empty. ``uncertain`` is True when the kernel's answer was lost or could
    not be read: whether ``failed`` (or, for an unreadable answer, any operation) was applied
    is then not known, and only a new dump tells.
    """

    applied: Tuple[Operation, ...]
    failed: Optional[Operation] = None
    error: Optional[XfrmKernelError] = None
    uncertain: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def _reason(operation: Operation, error_number: int, extack: Optional[str]) -> str:
    """Why the kernel refused an operation, in words that point at the fix."""
    kernel_text = extack or os.strerror(error_number)
    is_state = isinstance(operation.entry, XfrmState)
    if error_number == errno.EEXIST:
        if is_state:
            return "an SA with this destination, SPI, protocol and mark already exists"
        return "a policy with this selector, direction, mark, type and if_id already exists"
    if error_number in _NOT_FOUND and is_state and operation.verb is Verb.ADD:
        # An add refers to nothing that exists: ENOENT comes from setting up the SA's crypto
        # (a transform that cannot be instantiated, e.g. its module cannot be loaded).
        return ("the kernel could not set up this SA's cryptography (%s): a crypto module it needs is missing "
                "or cannot be loaded" % kernel_text)
    if error_number in _NOT_FOUND:
        if is_state:
            return "no SA with this destination, SPI, protocol and mark exists"
        return "no policy with this selector, direction, mark, type and if_id exists"
    if error_number == errno.ENOSYS:
        aead = operation.entry.aead if is_state else None  # type: ignore[union-attr]
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
    message = "%s failed (operation %d of %d): %s" % (
        describe_operation(operation), index + 1, len(operations), reason)
    return XfrmKernelError(message, error_number, extack, operation, index)


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
        except C.XfrmCodecError as exc:
            raise XfrmKernelError("dumping %s failed: the kernel's answer could not be read (%s)" % (what, exc),
                                  errno.EIO)
        except XfrmSocketError as exc:
            raise XfrmKernelError("dumping %s failed: %s" % (what, exc), exc.errno or errno.EIO, exc.extack)

    def dump_states(self) -> List[XfrmState]:
        """Every SA of the namespace (larval ones included)."""
        # The GETSA dump request carries no fixed header: the kernel reads attributes
        # (optional filters) straight after the nlmsghdr.
        return self._dump(S.XFRM_MSG_GETSA, C.decode_state, "SAs")

    def dump_state_counters(self) -> List[Tuple[XfrmState, StateCounters]]:
        """Every SA of the namespace with what the kernel counts on it."""
        return self._dump(S.XFRM_MSG_GETSA, C.decode_state_counters, "SAs")

    def dump_policies(self) -> List[XfrmPolicy]:
        """Every policy of the namespace, all types, without per-socket policies."""
        return self._dump(S.XFRM_MSG_GETPOLICY, C.decode_policy, "policies")

    def apply(self, operations: Sequence[Operation]) -> ApplyResult:
        """Apply operations in order; stop at the first failure (see ApplyResult)."""
        operations = tuple(operations)
        messages: List[Tuple[int, bytes]] = []
        for index, operation in enumerate(operations):
            try:
                messages.append(C.encode_operation(operation))
            except C.XfrmCodecError as exc:
                error = _operation_error(
                    operations, index, errno.EINVAL, None, "cannot be expressed as an XFRM message: %s" % exc
                )
                return ApplyResult(applied=(), failed=operation, error=error)
        try:
            count, failure = self._sock.execute(messages)
        except C.XfrmCodecError as exc:
            # A reply that does not parse: which operations went through is not known.
            error = XfrmKernelError("applying %d operation(s) failed: the kernel's answer could not be read (%s); "
                                    "what was applied is not known" % (len(operations), exc), errno.EIO)
            return ApplyResult(applied=(), failed=None, error=error, uncertain=True)
        if failure is None:
            return ApplyResult(applied=operations)
        error_number, extack = failure
        reason = _reason(operations[count], error_number, extack)
        uncertain = error_number in (errno.ENOBUFS, errno.EIO) and bool(extack) and extack.startswith("receive failed")
        if uncertain:
            reason = "the kernel's answer was lost (%s); this operation may or may not be applied" % extack
        error = _operation_error(operations, count, error_number, extack, reason)
        return ApplyResult(applied=operations[:count], failed=operations[count], error=error, uncertain=uncertain)

    def allocspi(self, state: XfrmState, spi_min: int, spi_max: int) -> XfrmState:
        """Create a larval SA with an SPI from [spi_min, spi_max] and return it.

        For tests on kernels without ESP (ALLOCSPI works without it; NEWSA does not).
        Larval SAs expire after net.core.xfrm_acq_expires seconds (30 by default).
        """
        try:
            replies = self._sock.request(S.XFRM_MSG_ALLOCSPI, C.encode_allocspi(state, spi_min, spi_max))
        except (XfrmSocketError, C.XfrmCodecError) as exc:
            raise XfrmKernelError(
                "allocating an SPI for %s failed: %s" % (render(state), exc),
                getattr(exc, "errno", 0) or errno.EINVAL,
                getattr(exc, "extack", None),
            )
        for reply_type, data, start, end in replies:
            if reply_type == S.XFRM_MSG_NEWSA:
                return C.decode_state(data, start, end)
        raise XfrmKernelError("ALLOCSPI returned no SA", errno.EIO)
