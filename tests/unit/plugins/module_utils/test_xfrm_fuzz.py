# -*- coding: utf-8 -*-
# Copyright: (c) 2026, netsec.ipsec contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Malformed kernel replies: the decoder and the socket layer fail cleanly (issue 13).

Every reply that is not what the kernel sends must become the codec's own error
(``XfrmCodecError``) and, through the adapter, an ``XfrmKernelError``: the module then fails
with a message, never a traceback. Any other exception is a crash, and so is a hang.

* **Decoder**: dump messages of SAs and policies as the kernel sends them (``stand_ins``:
  counters, attributes the model does not hold, AUTH next to AUTH_TRUNC; entries carrying
  the attributes the collection never sets, ``test_unmodelled``), error and done messages,
  mutated by truncation, the message length, attribute lengths and types, the
  algorithms' key lengths and names, random bytes, the fixed structs' fields, splices of two
  messages, and random datagrams. What decodes must then render, canonicalise, hash and
  encode again (a DELSA of a decoded entry) raising at most ``XfrmCodecError``.
* **Socket layer and adapter**: the same datagrams served to ``XfrmSocket.dump`` and
  ``execute`` through a fake socket, driven through ``XfrmKernel``: dumps raise at most
  ``XfrmKernelError``, ``apply`` returns an ``ApplyResult`` whatever the reply.

Hypothesis draws each example's seed message, its first mutations and a PRNG seed; from that
seed every example runs a batch of further mutated cases, so the decoder sees
``DECODER_EXAMPLES * (1 + BATCH)`` >= 100,000 cases per run (at about 25 us a case: a few
seconds of CPU). A watchdog interrupts a case that runs longer than ``HANG_SECONDS``.
"""

from __future__ import annotations

import random
import signal
import socket
import struct
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.netsec.ipsec.plugins.module_utils._kernel.xfrm import ApplyResult, XfrmKernel, XfrmKernelError
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_codec as C
from ansible_collections.netsec.ipsec.plugins.module_utils._nl import xfrm_structs as S
from ansible_collections.netsec.ipsec.plugins.module_utils._nl.xfrm_socket import XfrmSocket
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.model import (
    ALGO_AEAD, ALGO_AUTH, ALGO_CRYPT, DIR_IN, DIR_OUT, MODE_TRANSPORT, Algorithm, Lifetime, Mark, Operation,
    Template, Verb, XfrmPolicy, XfrmState, canonical, selector_between,
)
from ansible_collections.netsec.ipsec.plugins.module_utils._xfrm.render import render
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.stand_ins import (
    attribute, dumped_policy, dumped_state,
)
from ansible_collections.netsec.ipsec.tests.unit.plugins.module_utils.test_unmodelled import (
    POLICY_ATTRIBUTES, SA_ATTRIBUTES,
)

DECODER_EXAMPLES = 1000
BATCH = 99
MIN_CASES = 100_000
SOCKET_EXAMPLES = 300
SOCKET_BATCH = 19
HANG_SECONDS = 10.0
REQID = 0x6E736563

# --------------------------------------------------------------------------------------
# Seeds: what the kernel sends


def _seed_entries() -> Tuple[List[XfrmState], List[XfrmPolicy]]:
    aead = Algorithm(ALGO_AEAD, "rfc4106(gcm(aes))", bytes(range(1, 21)), 128)
    states = [
        XfrmState("10.0.0.1", "10.0.0.2", 0x3, reqid=REQID, esn=True, replay_window=1024, aead=aead,
                  mark=Mark(0x13E00, 0xFFFFFF00), output_mark=Mark(0xE00, 0xFFFFFF00)),
        XfrmState("fd00::1", "fd00::2", 0x2000, reqid=7, replay_window=32,
                  auth=Algorithm(ALGO_AUTH, "hmac(sha256)", bytes(range(32)), 128),
                  crypt=Algorithm(ALGO_CRYPT, "cbc(aes)", bytes(range(16))),
                  selector=selector_between("10.1.0.0/16", "10.2.0.0/16", 6, 22, 0), if_id=5),
        XfrmState("192.0.2.1", "192.0.2.2", 0xDEADBEEF, reqid=REQID, mode=MODE_TRANSPORT,
                  aead=aead._replace(name="rfc7539esp(chacha20,poly1305)", key=bytes(range(36))),
                  lifetime=Lifetime(1, 2, 3, 4, 5, 6, 7, 8)),
    ]
    policies = [
        XfrmPolicy(selector_between("0.0.0.0/0", "10.0.0.2/32"), DIR_OUT, priority=0x6F00, mark=Mark(1, 2),
                   templates=(Template("10.0.0.1", "10.0.0.2", reqid=REQID, spi=3),)),
        XfrmPolicy(selector_between("fd00::/64", "::/0", 17, 0, 53), DIR_IN, priority=5, ptype=1, if_id=9,
                   templates=(Template("fd00::1", "fd00::2", optional=True), Template("fd00::3", "fd00::4"))),
        XfrmPolicy(selector_between("0.0.0.0/0", "0.0.0.0/0", 6, 22), DIR_OUT, action=1, priority=0x6E00),
    ]
    return states, policies


SEED_STATES, SEED_POLICIES = _seed_entries()


def _error_message(seq: int, error: int, with_extack: bool) -> bytes:
    extack = b"Invalid prefix length\0"
    payload = struct.pack("=i", error) + S.NLMSGHDR.struct.pack(200, S.XFRM_MSG_NEWSA, 5, seq, 0)
    flags = 0
    if with_extack:
        flags = S.NLM_F_CAPPED | S.NLM_F_ACK_TLVS
        payload += attribute(S.NLMSGERR_ATTR_MSG, extack)
    return C.frame(S.NLMSG_ERROR, flags, seq, payload)


def _done_message(seq: int, error: Optional[int] = 0) -> bytes:
    return C.frame(S.NLMSG_DONE, S.NLM_F_MULTI, seq, b"" if error is None else struct.pack("=i", error))


def _with_unmodelled(message: bytes, attributes: Sequence[Tuple[int, bytes, str]]) -> bytes:
    data = bytearray(message)
    for attr_type, payload, _text in attributes:
        data += attribute(attr_type, payload)
    struct.pack_into("=I", data, 0, len(data))
    return bytes(data)


SEEDS: List[bytes] = ([dumped_state(state) for state in SEED_STATES]
                      + [dumped_state(state, extra=False) for state in SEED_STATES]
                      + [dumped_policy(policy, share=1) for policy in SEED_POLICIES]
                      # Entries carrying the attributes the collection never sets.
                      + [_with_unmodelled(dumped_state(SEED_STATES[0]), SA_ATTRIBUTES[:8]),
                         _with_unmodelled(dumped_state(SEED_STATES[1]), SA_ATTRIBUTES[8:]),
                         _with_unmodelled(dumped_policy(SEED_POLICIES[0]), POLICY_ATTRIBUTES + [
                             (S.XFRMA_SEC_CTX, SA_ATTRIBUTES[3][1], "")])]
                      + [_error_message(7, -22, True), _error_message(7, -17, False), _done_message(7)])

_FIXED_SIZES = {S.XFRM_MSG_NEWSA: S.USERSA_INFO.size, S.XFRM_MSG_NEWPOLICY: S.USERPOLICY_INFO.size}
_ALGORITHM_TYPES = (S.XFRMA_ALG_AEAD, S.XFRMA_ALG_AUTH, S.XFRMA_ALG_AUTH_TRUNC, S.XFRMA_ALG_CRYPT)
_KNOWN_TYPES = _ALGORITHM_TYPES + (S.XFRMA_MARK, S.XFRMA_TMPL, S.XFRMA_REPLAY_VAL, S.XFRMA_REPLAY_ESN_VAL,
                                   S.XFRMA_SET_MARK, S.XFRMA_SET_MARK_MASK, S.XFRMA_IF_ID, S.XFRMA_POLICY_TYPE,
                                   S.XFRMA_LTIME_VAL, S.XFRMA_LASTUSED, S.XFRMA_SA_EXTRA_FLAGS, S.XFRMA_ALG_COMP,
                                   S.XFRMA_ENCAP, S.XFRMA_SEC_CTX, S.XFRMA_COADDR, S.XFRMA_OFFLOAD_DEV,
                                   S.XFRMA_SA_DIR, S.XFRMA_TFCPAD, S.XFRMA_NAT_KEEPALIVE_INTERVAL)
_PAYLOAD_SIZES = (0, 1, 2, 3, 4, 7, 8, 12, 16, 24, 63, 64, 68, 72, 76, 80, 100, 128)


# --------------------------------------------------------------------------------------
# Mutations


def _attribute_offsets(data: bytes) -> List[int]:
    """Where the attributes of the message at the start of ``data`` begin, while they parse."""
    if len(data) < 16:
        return []
    fixed = _FIXED_SIZES.get(struct.unpack_from("=H", data, 4)[0], 0)
    offsets, offset = [], 16 + fixed
    while offset + 4 <= len(data):
        length = struct.unpack_from("=H", data, offset)[0]
        if length < 4:
            break
        offsets.append(offset)
        offset += (length + 3) & ~3
    return offsets


def _set_length(data: bytearray) -> None:
    if len(data) >= 4:
        struct.pack_into("=I", data, 0, len(data))


def _truncate(rng: random.Random, data: bytearray) -> bytearray:
    data = data[:rng.randrange(len(data) + 1)]
    if rng.random() < 0.7:
        _set_length(data)
    return data


def _message_length(rng: random.Random, data: bytearray) -> bytearray:
    if len(data) >= 4:
        lengths = [0, 1, 15, 16, 17, len(data) - 1, len(data) + 1, len(data) + 4, rng.randrange(1 << 32)]
        struct.pack_into("=I", data, 0, rng.choice(lengths))
    return data


def _attribute_length(rng: random.Random, data: bytearray) -> bytearray:
    offsets = _attribute_offsets(bytes(data))
    if offsets:
        struct.pack_into("=H", data, rng.choice(offsets), rng.choice([0, 1, 3, 4, 5, 7, 8, rng.randrange(1 << 16)]))
    return data


def _attribute_type(rng: random.Random, data: bytearray) -> bytearray:
    offsets = _attribute_offsets(bytes(data))
    if offsets:
        struct.pack_into("=H", data, rng.choice(offsets) + 2, rng.choice([rng.randrange(48), rng.randrange(1 << 16),
                                                                          rng.choice(_KNOWN_TYPES)]))
    return data


def _random_bytes(rng: random.Random, data: bytearray) -> bytearray:
    for _round in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    return data


def _fixed_field(rng: random.Random, data: bytearray) -> bytearray:
    """A byte of the fixed struct (families, prefix lengths, modes, directions...)."""
    if len(data) > 16:
        fixed = _FIXED_SIZES.get(struct.unpack_from("=H", data, 4)[0], 0) or 16
        data[rng.randrange(16, min(len(data), 16 + fixed))] = rng.choice([0, 1, 2, 3, 10, 128, 129, 255,
                                                                          rng.randrange(256)])
    return data


def _known_attribute(rng: random.Random, data: bytearray) -> bytearray:
    size = rng.choice(_PAYLOAD_SIZES)
    data += attribute(rng.choice(_KNOWN_TYPES), bytes(rng.randrange(256) for _round in range(size)))
    _set_length(data)
    return data


def _algorithm_field(rng: random.Random, data: bytearray) -> bytearray:
    """An algorithm attribute's key length or a byte of its name."""
    offsets = [offset for offset in _attribute_offsets(bytes(data))
               if struct.unpack_from("=H", data, offset + 2)[0] in _ALGORITHM_TYPES]
    if offsets:
        offset = rng.choice(offsets) + 4
        if rng.random() < 0.5 and offset + 68 <= len(data):
            struct.pack_into("=I", data, offset + 64, rng.choice([0, 1, 7, 8, 9, 159, 160, 161, 1 << 31,
                                                                  rng.randrange(1 << 32)]))
        elif offset + 64 <= len(data):
            data[offset + rng.randrange(64)] = rng.randrange(256)
    return data


def _splice(rng: random.Random, data: bytearray) -> bytearray:
    other = rng.choice(SEEDS)
    return data[:rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]


def _repeat(rng: random.Random, data: bytearray) -> bytearray:
    """Several messages in one datagram, or a message and stray bytes."""
    return data + (rng.choice(SEEDS) if rng.random() < 0.7 else bytes(rng.randrange(256) for _round in range(7)))


MUTATIONS: Tuple[Callable[[random.Random, bytearray], bytearray], ...] = (
    _truncate, _message_length, _attribute_length, _attribute_type, _random_bytes, _fixed_field,
    _known_attribute, _algorithm_field, _splice, _repeat,
)


def mutated(rng: random.Random, seed: bytes, count: int) -> bytes:
    data = bytearray(seed)
    for _round in range(count):
        data = rng.choice(MUTATIONS)(rng, data)
    return bytes(data)


def random_case(rng: random.Random) -> bytes:
    """One case of a batch: mostly a mutated seed, sometimes random bytes."""
    if rng.random() < 0.05:
        return bytes(rng.randrange(256) for _round in range(rng.randrange(300)))
    return mutated(rng, rng.choice(SEEDS), rng.randint(1, 3))


# --------------------------------------------------------------------------------------
# The oracle


class Hang(Exception):
    """A case ran longer than HANG_SECONDS."""


class Watchdog:
    """SIGALRM after ``seconds``: a loop that never ends fails the test instead of stalling it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __enter__(self) -> "Watchdog":
        def expired(_signum: int, _frame: Any) -> None:
            raise Hang("a case ran longer than %.0f s" % self.seconds)

        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)


def check_entry(entry: Any) -> None:
    """What the module does with a decoded entry must work or raise XfrmCodecError."""
    assert isinstance(entry, (XfrmState, XfrmPolicy))
    assert isinstance(render(entry), str)
    same = canonical(entry)
    assert type(same) is type(entry)
    hash(entry)
    hash(entry.key())
    for verb in (Verb.DELETE, Verb.ADD):
        try:
            C.encode_operation(Operation(verb, entry))
        except C.XfrmCodecError:
            pass


def decode_datagram(data: bytes) -> int:
    """Decode a datagram as the socket layer would, with every decoder on every message; the
    number of entries decoded. Raises only XfrmCodecError."""
    decoded = 0
    for msg_type, flags, _seq, start, end in C.iter_messages(data):
        if msg_type == S.NLMSG_ERROR:
            C.decode_error(data, start, end, flags)
            continue
        if msg_type == S.NLMSG_DONE:
            C.decode_done(data, start, end)
            continue
        for decode in (C.decode_state_counters, C.decode_policy, C.decode_state):
            try:
                result = decode(data, start, end)
            except C.XfrmCodecError:
                continue
            if result is None:
                continue
            check_entry(result[0] if decode is C.decode_state_counters else result)
            decoded += 1
    return decoded


def one_case(data: bytes, tally: Dict[str, int]) -> None:
    tally["cases"] += 1
    try:
        tally["entries"] += decode_datagram(data)
    except C.XfrmCodecError:
        tally["codec_errors"] += 1


# --------------------------------------------------------------------------------------
# The decoder


@st.composite
def first_cases(draw: Any) -> bytes:
    """A seed with up to 3 mutations chosen by Hypothesis (so failures shrink)."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=3)):
        data = mutation(random.Random(draw(st.integers(0, 1 << 32))), data)
    return bytes(data)


def _decoder_fuzz(tally: Dict[str, int]) -> Callable[[], None]:
    @settings(max_examples=DECODER_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(first_cases(), st.integers(0, (1 << 64) - 1))
    def fuzz(first: bytes, batch_seed: int) -> None:
        rng = random.Random(batch_seed)
        with Watchdog(HANG_SECONDS):
            one_case(first, tally)
            for _round in range(BATCH):
                one_case(random_case(rng), tally)

    return fuzz


def test_the_decoder_survives_100k_mutated_dump_messages() -> None:
    tally = {"cases": 0, "entries": 0, "codec_errors": 0}
    started = time.process_time()
    _decoder_fuzz(tally)()
    cpu = time.process_time() - started
    assert tally["cases"] >= MIN_CASES, tally
    # The mutations reach both outcomes: entries still decode, and most damage is refused.
    assert tally["entries"] > MIN_CASES // 20 and tally["codec_errors"] > MIN_CASES // 5, tally
    print("decoder fuzz: %(cases)d cases, %(entries)d entries decoded, %(codec_errors)d refused" % tally,
          "in %.1f s of CPU" % cpu)


@pytest.mark.parametrize("data", [b"", b"\0" * 15, C.frame(S.NLMSG_DONE, 0, 1, b"")[:-1] + b"", b"\xff" * 16])
def test_short_or_empty_datagrams_are_codec_errors(data: bytes) -> None:
    with pytest.raises(C.XfrmCodecError):
        decode_datagram(data)


@pytest.mark.parametrize("error", [1, 22, -4096, -(1 << 31), (1 << 31) - 1])
def test_an_error_or_done_message_with_an_impossible_errno_is_a_codec_error(error: int) -> None:
    # Found by the socket-layer fuzz: -INT_MIN is 2**31, which os.strerror cannot take.
    for data in (_error_message(7, error, True), _error_message(7, error, False), _done_message(7, error)):
        ((msg_type, flags, _seq, start, end),) = list(C.iter_messages(data))
        decode = C.decode_done if msg_type == S.NLMSG_DONE else (lambda d, s, e: C.decode_error(d, s, e, flags))
        with pytest.raises(C.XfrmCodecError, match="neither 0 nor a negated errno"):
            decode(data, start, end)


def test_errno_extremes_the_kernel_does_send_decode() -> None:
    for error in (0, -1, -4095):
        data = _error_message(7, error, True)
        ((_type, flags, _seq, start, end),) = list(C.iter_messages(data))
        assert C.decode_error(data, start, end, flags) == (-error, "Invalid prefix length")
        done = _done_message(7, error)
        assert C.decode_done(done, 16, len(done)) == -error
    assert C.decode_done(_done_message(7, None), 16, 16) == 0


# --------------------------------------------------------------------------------------
# The socket layer and the adapter


class NoMoreDatagrams(Exception):
    """The fake kernel has nothing more to send: a real dump would wait for more."""


class FakeNetlinkSocket:
    """Serves queued datagrams to recv_into, as the kernel's socket would."""

    def __init__(self, datagrams: Sequence[bytes]) -> None:
        self.datagrams = list(datagrams)

    def send(self, data: bytes) -> int:
        return len(data)

    def recv_into(self, buffer: bytearray, size: int, flags: int = 0) -> int:
        if not self.datagrams:
            if flags & socket.MSG_DONTWAIT:
                raise BlockingIOError()
            raise NoMoreDatagrams()
        datagram = self.datagrams.pop(0)
        count = min(len(datagram), size)
        buffer[:count] = datagram[:count]
        return len(datagram) if flags & socket.MSG_TRUNC else count

    def close(self) -> None:
        pass


FIRST_SEQ = 1000


def fake_kernel(datagrams: Sequence[bytes]) -> XfrmKernel:
    """An adapter whose socket serves ``datagrams``; its next request has seq FIRST_SEQ + 1."""
    nl_socket = XfrmSocket.__new__(XfrmSocket)
    nl_socket.netns = None
    nl_socket._sock = FakeNetlinkSocket(datagrams)  # pylint: disable=protected-access
    nl_socket._recv_buffer = bytearray(1 << 16)  # pylint: disable=protected-access
    nl_socket._seq = FIRST_SEQ  # pylint: disable=protected-access
    kernel = XfrmKernel.__new__(XfrmKernel)
    kernel.netns = None
    kernel._socket = nl_socket  # pylint: disable=protected-access
    return kernel


def _with_seq(message: bytes, seq: int) -> bytes:
    data = bytearray(message)
    if len(data) >= 12:
        struct.pack_into("=I", data, 8, seq)
    return bytes(data)


def reply_datagrams(rng: random.Random, dump_type: int) -> List[bytes]:
    """A dump's replies to request FIRST_SEQ + 1, the first datagram mutated."""
    seq = FIRST_SEQ + 1
    seeds = ([dumped_state(state) for state in SEED_STATES] if dump_type == S.XFRM_MSG_NEWSA
             else [dumped_policy(policy) for policy in SEED_POLICIES])
    body = b"".join(_with_seq(rng.choice(seeds), seq) for _round in range(rng.randint(0, 3)))
    end = rng.choice([_done_message(seq), _done_message(seq, rng.choice([0, -5, 5, -(1 << 31)])),
                      _error_message(seq, rng.choice([0, -1, -22, 1, -(1 << 31), (1 << 31) - 1]), rng.random() < 0.5),
                      b""])
    first = body + end
    if first and rng.random() < 0.8:
        first = mutated(rng, first, rng.randint(1, 2))
        if len(first) >= 12 and rng.random() < 0.8:
            first = _with_seq(first, seq)
    datagrams = [first]
    if rng.random() < 0.5:
        datagrams.append(_done_message(seq))
    return datagrams


APPLY_OPERATIONS = (Operation(Verb.ADD, SEED_STATES[0]), Operation(Verb.DELETE, SEED_POLICIES[0]),
                    Operation(Verb.UPDATE, SEED_POLICIES[1]))


def socket_case(rng: random.Random, tally: Dict[str, int]) -> None:
    tally["cases"] += 1
    action = rng.randrange(4)
    if action == 3:
        # apply: the reply to one of the operations, mutated.
        seq = FIRST_SEQ + 1 + rng.randrange(len(APPLY_OPERATIONS))
        reply = _error_message(seq, rng.choice([-22, -17, 0, -(1 << 31), 3]), rng.random() < 0.5)
        if rng.random() < 0.8:
            reply = mutated(rng, reply, rng.randint(1, 2))
        outcome = fake_kernel([reply]).apply(APPLY_OPERATIONS)
        assert isinstance(outcome, ApplyResult)
        if outcome.error is not None:
            assert isinstance(str(outcome.error), str)
            tally["refused"] += 1
        return
    dump_type = S.XFRM_MSG_NEWSA if action < 2 else S.XFRM_MSG_NEWPOLICY
    kernel = fake_kernel(reply_datagrams(rng, dump_type))
    dump = (kernel.dump_states, kernel.dump_state_counters, kernel.dump_policies)[action]
    try:
        dump()
    except XfrmKernelError as error:
        assert str(error).startswith("dumping ")
        tally["refused"] += 1
    except NoMoreDatagrams:
        tally["waiting"] += 1  # no NLMSG_DONE yet: the kernel would send more


def _socket_fuzz(tally: Dict[str, int]) -> Callable[[], None]:
    @settings(max_examples=SOCKET_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(0, (1 << 64) - 1))
    def fuzz(batch_seed: int) -> None:
        rng = random.Random(batch_seed)
        with Watchdog(HANG_SECONDS):
            for _round in range(1 + SOCKET_BATCH):
                socket_case(rng, tally)

    return fuzz


def test_the_socket_layer_turns_every_malformed_reply_into_a_clean_error() -> None:
    tally = {"cases": 0, "refused": 0, "waiting": 0}
    started = time.process_time()
    _socket_fuzz(tally)()
    cpu = time.process_time() - started
    assert tally["cases"] == SOCKET_EXAMPLES * (1 + SOCKET_BATCH)
    assert tally["refused"] > tally["cases"] // 4, tally
    print("socket fuzz: %(cases)d cases, %(refused)d refused cleanly, %(waiting)d waiting for more" % tally,
          "in %.1f s of CPU" % cpu)


@pytest.mark.parametrize("reply,fragment", [
    (_error_message(FIRST_SEQ + 1, -(1 << 31), True), "neither 0 nor a negated errno"),
    (_error_message(FIRST_SEQ + 1, 0, False), "an acknowledgement in the middle of a dump"),
    (_done_message(FIRST_SEQ + 1, -(1 << 31)), "neither 0 nor a negated errno"),
    (dumped_policy(SEED_POLICIES[0], seq=FIRST_SEQ + 1), "a message of type 19 in a dump of type 18"),
    (b"", "empty netlink datagram"),
])
def test_malformed_dump_replies_are_read_errors(reply: bytes, fragment: str) -> None:
    with pytest.raises(XfrmKernelError) as caught:
        fake_kernel([reply, _done_message(FIRST_SEQ + 1)]).dump_states()
    assert str(caught.value).startswith("dumping SAs failed: the kernel's answer could not be read (")
    assert fragment in str(caught.value)


def test_a_dump_the_kernel_could_not_finish_is_an_error_not_a_short_list() -> None:
    replies = [dumped_state(SEED_STATES[0], seq=FIRST_SEQ + 1) + _done_message(FIRST_SEQ + 1, -105)]
    with pytest.raises(XfrmKernelError, match=r"dumping SAs failed: dump failed part-way: No buffer space available"):
        fake_kernel(replies).dump_states()
    complete = [dumped_state(SEED_STATES[0], seq=FIRST_SEQ + 1) + _done_message(FIRST_SEQ + 1, 0)]
    assert len(fake_kernel(complete).dump_states()) == 1


def test_an_apply_reply_with_an_impossible_errno_is_uncertain_not_a_crash() -> None:
    outcome = fake_kernel([_error_message(FIRST_SEQ + 1, -(1 << 31), False)]).apply(APPLY_OPERATIONS)
    assert outcome.uncertain and outcome.applied == () and outcome.error is not None
    assert "the kernel's answer could not be read" in str(outcome.error)
