# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A NETLINK_XFRM socket in a chosen network namespace, with dumps and ordered apply.

Standard library only. In the current network namespace the socket is a plain
``socket.socket``. In a named one (tests and benchmarks use them; the modules do not) a
short-lived thread ``setns()``es into the namespace through the C library (``ctypes``; Python
3.9 has no ``os.setns``) and creates the socket there; a missing namespace is an error and
is never created. Messages are framed, numbered and matched here, on the raw descriptor.

Ordered apply (``execute``) and why it sends one message per ``send()``:
the kernel runs every message of a ``sendmsg()`` buffer in order, synchronously inside the
call, and does not stop at a failed one (``netlink_rcv_skb`` acks the error and carries
on). A batched buffer therefore cannot honour "stop at the first failure": operations
after a failed one in the same buffer would already be applied. So each operation goes
in its own ``send()``, without NLM_F_ACK: a success queues nothing, a failure queues an
NLMSG_ERROR before ``send()`` returns, so one non-blocking ``recv()`` after each send tells
whether it failed, before the next operation is sent. That is two system calls per
operation (iproute2's ``ip -batch`` makes three: send, peek, receive), no ACK ever
accumulates in the receive buffer, and nothing after a failure reaches the kernel.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_structs as S

T = TypeVar("T")

# Socket buffers. A dump datagram is at most 32 KiB (the kernel caps dump skbs there); the
# receive buffer only has to hold one error reply during apply and the dump datagrams the
# kernel queues ahead of us, so 4 MiB is generous; the send buffer bounds one message.
DEFAULT_BUFFER_BYTES = 4 * 1024 * 1024
RECV_CHUNK_BYTES = 64 * 1024
NETNS_RUN_DIR = "/run/netns"

_NLMSGHDR_PACK = S.NLMSGHDR_STRUCT.pack
_NLMSGHDR_UNPACK_FROM = S.NLMSGHDR_STRUCT.unpack_from
_NLMSGHDR_SIZE = S.NLMSGHDR.size
_SEQ_MASK = 0xFFFFFFFF
# What a dump's replies are: anything else in a dump is not the kernel's answer.
_DUMP_REPLY_TYPES = {S.XFRM_MSG_GETSA: S.XFRM_MSG_NEWSA, S.XFRM_MSG_GETPOLICY: S.XFRM_MSG_NEWPOLICY}


class XfrmSocketError(Exception):
    """The socket could not be opened or the kernel conversation failed."""

    def __init__(self, message: str, errno_value: int = 0, extack: Optional[str] = None) -> None:
        super().__init__(message)
        self.errno = errno_value
        self.extack = extack


class NetlinkRequestError(XfrmSocketError):
    """The kernel answered a request with an error (errno + extended-ack message)."""


def netns_path(netns: str) -> str:
    """A namespace name under /run/netns, or a path as given (e.g. /proc/PID/ns/net)."""
    return netns if "/" in netns else os.path.join(NETNS_RUN_DIR, netns)


def _netlink_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, S.NETLINK_XFRM)


CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    """``setns(fd, CLONE_NEWNET)`` for the calling thread (OSError with the errno on failure)."""
    if _libc().setns(fd, CLONE_NEWNET) != 0:  # type: ignore[attr-defined]
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def _open_in_thread(path: str) -> socket.socket:
    """Open the socket from a short-lived thread that enters the namespace.

    A network namespace belongs to a thread, not to the process: a thread that
    ``setns()``es and creates the socket leaves it bound to that namespace for its whole
    life, while the rest of the process never moves.
    """
    outcome: List[object] = []

    def enter_and_open() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            outcome.append(_netlink_socket())
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=enter_and_open, name="xfrm-netns-open")
    worker.start()
    worker.join()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result  # type: ignore[return-value]


_LIBC: List[object] = []


def _libc() -> object:
    # The already-loaded C library (ctypes.util.find_library would run ldconfig).
    if not _LIBC:
        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


def _open_netlink(netns: Optional[str]) -> socket.socket:
    if netns is None:
        return _netlink_socket()
    path = netns_path(netns)
    # Checked first, for a clear message; nothing here may ever create a namespace.
    if not os.path.exists(path):
        raise XfrmSocketError("network namespace %r does not exist (%s)" % (netns, path), errno.ENOENT)
    try:
        return _open_in_thread(path)
    except OSError as exc:
        raise XfrmSocketError(
            "cannot open an XFRM socket in network namespace %r: %s" % (netns, exc.strerror or exc),
            exc.errno or 0,
        )


def _set_buffer(sock: socket.socket, force_option: int, option: int, size: int) -> None:
    # The FORCE variants ignore net.core.[rw]mem_max but need CAP_NET_ADMIN; the plain ones
    # are silently capped, which is still enough for a message at a time.
    try:
        sock.setsockopt(socket.SOL_SOCKET, force_option, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, option, size)


class XfrmSocket:
    """One NETLINK_XFRM socket. Not thread-safe; one request at a time."""

    def __init__(self, netns: Optional[str] = None, buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> None:
        self.netns = netns
        self._sock: Optional[socket.socket] = None
        sock = _open_netlink(netns)
        try:
            sock.setsockopt(S.SOL_NETLINK, S.NETLINK_EXT_ACK, 1)
            # Errors echo only the request header: the payload (key material included)
            # never comes back, and each error costs less receive buffer.
            sock.setsockopt(S.SOL_NETLINK, S.NETLINK_CAP_ACK, 1)
            _set_buffer(sock, S.SO_SNDBUFFORCE, socket.SO_SNDBUF, buffer_bytes)
            _set_buffer(sock, S.SO_RCVBUFFORCE, socket.SO_RCVBUF, buffer_bytes)
            sock.bind((0, 0))
        except OSError as exc:
            sock.close()
            raise XfrmSocketError("cannot set up the XFRM socket: %s" % (exc.strerror or exc), exc.errno or 0)
        self._sock = sock
        self._recv_buffer = bytearray(RECV_CHUNK_BYTES)
        # Sequence numbers start from a per-process value so stale replies from another
        # conversation on a reused port id cannot be mistaken for ours.
        self._seq = (os.getpid() << 16) & _SEQ_MASK

    # -- plumbing ---------------------------------------------------------------------

    @property
    def sock(self) -> socket.socket:
        if self._sock is None:
            raise XfrmSocketError("the XFRM socket is closed")
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & _SEQ_MASK
        return self._seq

    def _send(self, msg_type: int, flags: int, seq: int, payload: bytes) -> None:
        header = _NLMSGHDR_PACK(_NLMSGHDR_SIZE + len(payload), msg_type, flags, seq, 0)
        try:
            self.sock.send(header + payload)
        except OSError as exc:
            raise XfrmSocketError("sending to the kernel failed: %s" % (exc.strerror or exc), exc.errno or 0)

    def _recv(self, flags: int = 0) -> bytes:
        """One datagram (raises BlockingIOError when non-blocking and nothing is queued)."""
        buffer = self._recv_buffer
        size = self.sock.recv_into(buffer, len(buffer), flags | socket.MSG_TRUNC)
        if size > len(buffer):
            raise XfrmSocketError("netlink reply of %d bytes exceeds the %d-byte buffer" % (size, len(buffer)))
        return bytes(buffer[:size])

    def _recv_blocking(self) -> bytes:
        try:
            return self._recv()
        except OSError as exc:
            # ENOBUFS: the kernel dropped replies because the receive buffer overflowed.
            raise XfrmSocketError("receiving from the kernel failed: %s" % (exc.strerror or exc), exc.errno or 0)

    # -- requests -----------------------------------------------------------------------

    def dump(self, msg_type: int, decode: Callable[[bytes, int, int], Optional[T]], payload: bytes = b"") -> List[T]:
        """Every object of a GETSA/GETPOLICY dump, decoded; None results are skipped.

        A reply that is not the kernel's (malformed, an acknowledgement, a message of another
        type than the dump's) raises XfrmCodecError; an error the kernel reports, in an
        NLMSG_ERROR or in the NLMSG_DONE of a dump it could not finish, NetlinkRequestError.
        """
        seq = self._next_seq()
        self._send(msg_type, S.NLM_F_REQUEST | S.NLM_F_DUMP, seq, payload)
        reply_expected = _DUMP_REPLY_TYPES.get(msg_type)
        results: List[T] = []
        append = results.append
        while True:
            data = self._recv_blocking()
            for reply_type, flags, reply_seq, start, end in C.iter_messages(data):
                if reply_seq != seq:
                    continue  # a late reply to an earlier conversation
                if reply_type == S.NLMSG_DONE:
                    error = C.decode_done(data, start, end)
                    if error:
                        raise NetlinkRequestError("dump failed part-way: %s" % os.strerror(error), error)
                    return results
                if reply_type == S.NLMSG_ERROR:
                    error, extack = C.decode_error(data, start, end, flags)
                    if not error:
                        raise C.XfrmCodecError("an acknowledgement in the middle of a dump")
                    raise NetlinkRequestError(
                        "dump failed: %s" % (extack or os.strerror(error)), error, extack
                    )
                if reply_expected is not None and reply_type != reply_expected:
                    raise C.XfrmCodecError("a message of type %d in a dump of type %d" % (reply_type, msg_type))
                item = decode(data, start, end)
                if item is not None:
                    append(item)

    def request(self, msg_type: int, payload: bytes) -> List[Tuple[int, bytes, int, int]]:
        """Send one request with NLM_F_ACK; return its replies before the ACK.

        Each reply is (type, datagram, payload start, payload end). An error reply raises
        NetlinkRequestError.
        """
        seq = self._next_seq()
        self._send(msg_type, S.NLM_F_REQUEST | S.NLM_F_ACK, seq, payload)
        replies: List[Tuple[int, bytes, int, int]] = []
        while True:
            data = self._recv_blocking()
            for reply_type, flags, reply_seq, start, end in C.iter_messages(data):
                if reply_seq != seq:
                    continue
                if reply_type == S.NLMSG_ERROR:
                    error, extack = C.decode_error(data, start, end, flags)
                    if error == 0:
                        return replies
                    raise NetlinkRequestError(extack or os.strerror(error), error, extack)
                replies.append((reply_type, data, start, end))

    def execute(self, messages: Sequence[Tuple[int, bytes]]) -> Tuple[int, Optional[Tuple[int, Optional[str]]]]:
        """Apply messages in order, stopping at the first the kernel refuses.

        Returns (number applied, None) or (index of the failed message, (errno, extack)).
        Messages after a failed one are never sent. See the module docstring for why one
        message goes per ``send()``.
        """
        sock = self.sock
        send = sock.send
        recv_into = sock.recv_into
        buffer = self._recv_buffer
        buffer_size = len(buffer)
        pack_header = _NLMSGHDR_PACK
        header_size = _NLMSGHDR_SIZE
        request_flags = S.NLM_F_REQUEST
        no_wait = socket.MSG_DONTWAIT | socket.MSG_TRUNC
        seq = self._seq
        first_seq = (seq + 1) & _SEQ_MASK
        for index, (msg_type, payload) in enumerate(messages):
            seq = (seq + 1) & _SEQ_MASK
            try:
                send(pack_header(header_size + len(payload), msg_type, request_flags, seq, 0) + payload)
            except OSError as exc:
                self._seq = seq
                return index, (exc.errno or errno.EIO, "send failed: %s" % (exc.strerror or exc))
            # Drain whatever is queued (normally nothing): an error for this message, or a
            # stale reply from an earlier conversation that must not hide it.
            while True:
                try:
                    size = recv_into(buffer, buffer_size, no_wait)
                except BlockingIOError:
                    break  # nothing (more) queued: the kernel accepted the message
                except OSError as exc:
                    self._seq = seq
                    return index, (exc.errno or errno.EIO, "receive failed: %s" % (exc.strerror or exc))
                failure = self._failure_in(bytes(buffer[:min(size, buffer_size)]), first_seq, seq)
                if failure is not None:
                    self._seq = seq
                    failed_seq, error = failure
                    return (failed_seq - first_seq) & _SEQ_MASK, error
        self._seq = seq
        return len(messages), None

    @staticmethod
    def _failure_in(data: bytes, first_seq: int, last_seq: int) -> Optional[Tuple[int, Tuple[int, Optional[str]]]]:
        """The first error reply to a message of this apply run, if the datagram has one."""
        for reply_type, flags, reply_seq, start, end in C.iter_messages(data):
            if reply_type != S.NLMSG_ERROR:
                continue
            if ((reply_seq - first_seq) & _SEQ_MASK) > ((last_seq - first_seq) & _SEQ_MASK):
                continue  # not one of ours
            error, extack = C.decode_error(data, start, end, flags)
            if error != 0:
                return reply_seq, (error, extack)
        return None
