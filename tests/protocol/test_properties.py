"""Properties of the sans-I/O core, checked with Hypothesis (STYLE.md section 8).

1. Round trip: any message, fragmented or not, compressed or not, with pings interleaved,
   reaches the peer intact, and every ping comes back as a pong with its payload.
2. Chunking invariance: the same bytes fed whole, byte by byte or in random chunks give the
   same events, the same bytes to send and the same final state.
3. Robustness: any bytes (random, hand-made frames, mutated valid conversations, mangled
   handshakes) never raise out of ``receive_data`` or ``receive_eof``; the connection stays
   open with valid frames only, or closes as the peer asked, or fails with 1002, 1007 or 1009
   (a 400 or 431 response, or a failed handshake, during the opening handshake).
4. UTF-8: valid text split anywhere is accepted; invalid text fails with 1007 once the frame
   that makes it invalid arrives, and no byte before the first invalid one fails it.
5. Masking: the pure-Python and C masks equal a naive reference and are involutions.

Bugs found by these properties are pinned, each with its failing input, by the
``test_regression_*`` tests at the end of this file.
"""

from __future__ import annotations

import importlib
import os
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import pytest
from hypothesis import (
    HealthCheck,
    Phase,
    assume,
    event,
    example,
    given,
    note,
    settings,
)
from hypothesis import strategies as st

from socketeer.exceptions import PayloadTooBig, ProtocolError
from socketeer.protocol import masking
from socketeer.protocol.base import CLIENT, MAX_SIZE, SERVER, Protocol, Side, State
from socketeer.protocol.client import ClientProtocol
from socketeer.protocol.extensions.base import Extension
from socketeer.protocol.frames import (
    CTRL_OPCODES,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    Frame,
    Opcode,
    parse_header,
)
from socketeer.protocol.http11 import MAX_LINE_LENGTH, Request, Response
from socketeer.protocol.server import ServerProtocol
from socketeer.uri import parse_uri

SIDES = [pytest.param(CLIENT, id="client"), pytest.param(SERVER, id="server")]

# Example counts keep this file under 20 s; SOCKETEER_PROPERTY_SCALE=10 searches ten times more.
SCALE = float(os.environ.get("SOCKETEER_PROPERTY_SCALE", "1"))


def examples(count: int) -> int:
    return max(1, round(count * SCALE))


# The close codes a protocol may send when it fails the connection because of the peer.
FAILURE_CODES = {ProtocolError: 1002, UnicodeDecodeError: 1007, PayloadTooBig: 1009}

# Payload lengths where the frame header changes shape (RFC 6455 section 5.2).
LENGTH_BOUNDARIES = (0, 1, 125, 126, 127, 65535, 65536, 65537)

# The example key of RFC 6455 section 1.3 and its answer.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

_DEFLATE_MODULE = "socketeer.protocol.extensions.permessage_deflate"


def deflate() -> ModuleType:
    """The permessage-deflate module; skip the test, loudly, while it does not exist."""
    try:
        return importlib.import_module(_DEFLATE_MODULE)
    except ModuleNotFoundError as exc:  # pragma: no cover - only while it is being written
        if exc.name != _DEFLATE_MODULE:
            raise
        pytest.skip(f"{_DEFLATE_MODULE} does not exist yet")


COMPRESSION = [pytest.param(False, id="plain"), pytest.param(True, id="deflate")]


@dataclass(frozen=True)
class DeflateConfig:
    """The agreed parameters of permessage-deflate, as both sides see them."""

    client_no_context_takeover: bool
    server_no_context_takeover: bool
    client_max_window_bits: int
    server_max_window_bits: int

    def extension(self, side: Side) -> Extension:
        """The extension of ``side``: local values are its own, remote ones the peer's."""
        cls = deflate().PerMessageDeflate
        extension: Extension
        if side is CLIENT:
            extension = cls(
                remote_no_context_takeover=self.server_no_context_takeover,
                local_no_context_takeover=self.client_no_context_takeover,
                remote_max_window_bits=self.server_max_window_bits,
                local_max_window_bits=self.client_max_window_bits,
            )
        else:
            extension = cls(
                remote_no_context_takeover=self.client_no_context_takeover,
                local_no_context_takeover=self.server_no_context_takeover,
                remote_max_window_bits=self.client_max_window_bits,
                local_max_window_bits=self.server_max_window_bits,
            )
        return extension


deflate_configs = st.builds(
    DeflateConfig, st.booleans(), st.booleans(), st.integers(8, 15), st.integers(8, 15)
)


def configs(compression: bool) -> st.SearchStrategy[DeflateConfig | None]:
    if not compression:
        return st.none()
    deflate()  # skip now rather than fail in the middle of drawing
    return deflate_configs


def new_protocol(side: Side, config: DeflateConfig | None, **kwargs: object) -> Protocol:
    protocol = Protocol(side, **kwargs)  # type: ignore[arg-type]
    if config is not None:
        protocol.extensions = [config.extension(side)]
    return protocol


def other(side: Side) -> Side:
    return SERVER if side is CLIENT else CLIENT


# Helpers: feeding, draining, reading what was sent.


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """Cut ``data`` at sorted offsets; repeated offsets give empty chunks."""
    bounds = [0, *sorted(cuts), len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def chunkings(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """Any way to cut ``data`` into chunks, empty ones included."""
    return st.lists(st.integers(0, len(data)), max_size=16).map(lambda cuts: split(data, cuts))


def parse_frames(data: bytes, *, mask: bool) -> list[Frame]:
    """Parse a stream made of whole, valid frames only."""
    frames = []
    pos = 0
    while pos < len(data):
        header = parse_header(data, pos)
        assert header is not None, f"incomplete frame header at {pos}"
        _, length, _, start = header
        assert start + length <= len(data), f"incomplete frame at {pos}"
        frames.append(Frame.parse(data[pos : start + length], mask=mask))
        pos = start + length
    return frames


def parse_writes(writes: Sequence[bytes], *, mask: bool) -> tuple[list[Frame], bool]:
    """The frames in ``writes`` and whether they end with the half-close marker ``b""``."""
    eof = bool(writes) and writes[-1] == b""
    body = list(writes[:-1] if eof else writes)
    assert b"" not in body, "nothing may be written after the half-close"
    return parse_frames(b"".join(body), mask=mask), eof


def is_utf8_prefix(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8 or can become valid with more bytes (per CPython)."""
    try:
        data.decode()
    except UnicodeDecodeError as exc:
        # A truncated but possible sequence at the end is the only error CPython reports
        # as "unexpected end of data"; it checks the second byte's range at once.
        return exc.reason == "unexpected end of data"
    return True


def utf8_error_index(data: bytes) -> int | None:
    """Index of the byte at which ``data`` stops being a prefix of valid UTF-8, if any."""
    try:
        data.decode()
    except UnicodeDecodeError as exc:
        valid = exc.start  # data[:valid] is the maximal valid prefix, and decodes
    else:
        return None
    for end in range(valid + 1, len(data) + 1):
        if not is_utf8_prefix(data[:end]):
            return end - 1
    return None  # an incomplete sequence at the end, which more bytes could complete


def check_received(events: Sequence[object]) -> tuple[list[bytes], Close | None]:
    """Assert that received frames follow RFC 6455 section 5; return pings and the close.

    Text messages must be valid UTF-8 and a message still in progress a valid prefix.
    """
    pings: list[bytes] = []
    close = None
    opcode: Opcode | None = None
    message = bytearray()
    for frame in events:
        assert isinstance(frame, Frame), frame
        assert close is None, "frame received after the close frame"
        assert not (frame.rsv1 or frame.rsv2 or frame.rsv3), frame
        if frame.opcode in CTRL_OPCODES:
            assert frame.fin and len(frame.data) <= 125, frame
            if frame.opcode is OP_PING:
                pings.append(frame.data)
            elif frame.opcode is OP_CLOSE:
                close = Close.parse(frame.data)
            continue
        if frame.opcode is OP_CONT:
            assert opcode is not None, "unexpected continuation frame"
            message += frame.data
        else:
            assert opcode is None, "new message before the end of the previous one"
            opcode = frame.opcode
            message = bytearray(frame.data)
        if frame.fin:
            if opcode is OP_TEXT:
                bytes(message).decode()
            opcode = None
    if opcode is OP_TEXT:
        assert is_utf8_prefix(bytes(message))
    return pings, close


def check_outcome(protocol: Protocol, events: Sequence[object], writes: Sequence[bytes]) -> None:
    """The contract of a protocol object after any input, once frames flow.

    The connection is open and every ping was answered; or the peer's close frame arrived and
    was echoed; or the protocol failed the connection with the close code that matches
    ``parser_exc``. After ``receive_eof`` the connection is closed and the driver was told
    to half-close.
    """
    pings, close_rcvd = check_received(events)
    sent, eof_sent = parse_writes(writes, mask=protocol.side is CLIENT)
    pongs = [frame for frame in sent if frame.opcode is OP_PONG]
    closes = [frame for frame in sent if frame.opcode is OP_CLOSE]
    assert len(pongs) + len(closes) == len(sent), f"unexpected frames sent: {sent}"
    assert [frame.data for frame in pongs] == pings
    assert len(closes) <= 1 and (not closes or sent[-1] is closes[0])
    exc = protocol.parser_exc
    eof_rcvd = protocol.state is State.CLOSED
    if exc is not None and not isinstance(exc, EOFError):
        # The protocol failed the connection (RFC 6455 section 7.1.7).
        assert close_rcvd is None
        expected = FAILURE_CODES[type(exc)]
        assert len(closes) == 1, f"no close frame sent after {exc!r}"
        assert Close.parse(closes[0].data).code == expected, exc
        event(f"outcome: failed with {expected}")
        assert eof_sent or (protocol.side is CLIENT and not eof_rcvd)
    elif close_rcvd is not None:
        # The peer started the closing handshake: its close frame is echoed.
        assert protocol.close_rcvd == close_rcvd
        assert len(closes) == 1 and Close.parse(closes[0].data) == close_rcvd
        event("outcome: closed by the peer")
        assert eof_sent or (protocol.side is CLIENT and not eof_rcvd)
    else:
        assert closes == []
        assert eof_sent is eof_rcvd
        assert protocol.state is (State.CLOSED if eof_rcvd else State.OPEN)
        event(f"outcome: {'abnormal closure' if eof_rcvd else 'open'}")
    if eof_rcvd:
        assert eof_sent
        assert protocol.close_code == (1006 if close_rcvd is None else close_rcvd.code)
    else:
        assert protocol.state is (State.CLOSING if closes else State.OPEN)


def run(
    protocol: Protocol, chunks: Sequence[bytes], *, eof: bool = False
) -> tuple[list[object], list[bytes]]:
    """Feed ``chunks`` to ``protocol`` like a driver; return all its events and writes.

    A server accepts the handshake request as soon as it arrives.
    """
    events: list[object] = []
    writes: list[bytes] = []

    def drain() -> None:
        new = protocol.events_received()
        events.extend(new)
        writes.extend(protocol.data_to_send())
        if isinstance(protocol, ServerProtocol) and any(isinstance(e, Request) for e in new):
            assert protocol.request is not None
            protocol.send_response(protocol.accept(protocol.request))
            events.extend(protocol.events_received())
            writes.extend(protocol.data_to_send())

    for chunk in chunks:
        protocol.receive_data(chunk)
        drain()
    if eof:
        protocol.receive_eof()
        drain()
    return events, writes


# Strategies: payloads.

# Any character that UTF-8 can encode (no lone surrogates), with astral ones favoured.
characters = st.one_of(
    st.characters(codec="utf-8"),
    st.characters(min_codepoint=0x80, max_codepoint=0x7FF),
    st.characters(min_codepoint=0x10000, codec="utf-8"),
)
texts = st.text(characters, max_size=40)

# Sizes from 0 to about 300 KB, favouring small ones and the header boundaries.
sizes = st.one_of(
    st.integers(0, 130),
    st.sampled_from(LENGTH_BOUNDARIES).flatmap(lambda n: st.integers(max(n - 2, 0), n + 2)),
    st.integers(0, 300_000),
)


@st.composite
def binary_payloads(draw: st.DrawFn) -> bytes:
    """Binary data: small and shrinkable, or large, incompressible or repetitive."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    size = draw(sizes)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    if draw(st.booleans()):
        return rng.randbytes(size)  # incompressible
    pieces = [rng.randbytes(rng.randint(1, 64)) for _ in range(8)]
    data = b"".join(rng.choices(pieces, k=size // 8 + 1))
    return data[:size]


@st.composite
def text_payloads(draw: st.DrawFn) -> bytes:
    """UTF-8 text: small and shrinkable, or large, built of random pieces of any script."""
    if draw(st.booleans()):
        return draw(texts).encode()
    size = draw(sizes)
    pieces = draw(st.lists(st.text(characters, min_size=1, max_size=12), min_size=1, max_size=8))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    text = "".join(rng.choices(pieces, k=size // 4 + 1))
    return text.encode()[:size].decode(errors="ignore").encode()  # cut on a character


ping_payloads = st.one_of(st.binary(max_size=125), st.binary(min_size=125, max_size=125))


@dataclass(frozen=True)
class Message:
    """A message to send, how to cut it, whether to compress it, and pings to interleave."""

    opcode: Opcode
    payload: bytes
    cuts: tuple[int, ...]
    compress: bool
    as_str: bool
    pings: tuple[tuple[int, bytes], ...]  # (send before this fragment, payload)

    def fragments(self) -> list[bytes]:
        return split(self.payload, self.cuts)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    opcode = draw(st.sampled_from([OP_TEXT, OP_BINARY]))
    payload = draw(text_payloads() if opcode is OP_TEXT else binary_payloads())
    size = len(payload)
    # Cut anywhere, inside characters too, and where a fragment's length is a boundary.
    cut = st.one_of(
        st.integers(0, size),
        st.sampled_from([n for n in LENGTH_BOUNDARIES if n <= size]),
        st.sampled_from([size - n for n in LENGTH_BOUNDARIES if n <= size]),
    )
    cuts = tuple(sorted(draw(st.lists(cut, max_size=5))))
    pings = draw(st.lists(st.tuples(st.integers(0, len(cuts) + 1), ping_payloads), max_size=3))
    return Message(
        opcode,
        payload,
        cuts,
        compress=draw(st.booleans()),
        as_str=draw(st.booleans()),
        pings=tuple(sorted(pings, key=lambda ping: ping[0])),
    )


def send_message(sender: Protocol, message: Message) -> list[tuple[object, ...]]:
    """Send ``message`` with its pings; return what the peer must see, frame by frame."""
    expected: list[tuple[object, ...]] = []
    fragments = message.fragments()
    last = len(fragments) - 1
    for index, fragment in enumerate([*fragments, None]):
        for _, payload in (ping for ping in message.pings if ping[0] == index):
            sender.send_ping(payload)
            expected.append((OP_PING, payload))
        if fragment is None:
            break
        fin = index == last
        if index > 0:
            sender.send_continuation(fragment, fin=fin)
        elif message.opcode is OP_BINARY:
            sender.send_binary(fragment, fin=fin, compress=message.compress)
        else:
            data = fragment.decode() if fin and message.as_str else fragment
            sender.send_text(data, fin=fin, compress=message.compress)
        expected.append((OP_CONT if index else message.opcode, fin))
    return expected


def shape(frames: Sequence[object]) -> list[tuple[object, ...]]:
    """Frames as send_message describes them: pings with their payload, data frames without."""
    result: list[tuple[object, ...]] = []
    for frame in frames:
        assert isinstance(frame, Frame)
        if frame.opcode is OP_PING:
            result.append((OP_PING, frame.data))
        else:
            result.append((frame.opcode, frame.fin))
    return result


def reassemble(frames: Sequence[object]) -> list[tuple[Opcode, bytes]]:
    """The messages carried by the data frames of ``frames``."""
    result = []
    opcode: Opcode | None = None
    data = b""
    for frame in frames:
        assert isinstance(frame, Frame)
        if frame.opcode in CTRL_OPCODES:
            continue
        if frame.opcode is not OP_CONT:
            opcode, data = frame.opcode, b""
        data += frame.data
        if frame.fin:
            assert opcode is not None
            result.append((opcode, data))
    return result


# 1. Round trip.


@pytest.mark.parametrize("compression", COMPRESSION)
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(compression: bool, data: st.DataObject) -> None:
    """Messages go both ways intact, any fragmentation, any chunking, pings answered."""
    config = data.draw(configs(compression), label="config")
    max_size = data.draw(st.sampled_from([MAX_SIZE, None]), label="max_size")
    client = new_protocol(CLIENT, config, max_size=max_size)
    server = new_protocol(SERVER, config, max_size=max_size)
    for sender, receiver in [(client, server), (server, client)]:
        sent = data.draw(st.lists(messages(), max_size=4), label=f"{sender.side.name} sends")
        tail = data.draw(st.lists(ping_payloads, max_size=2), label="last pings")
        expected: list[tuple[object, ...]] = []
        for message in sent:
            expected += send_message(sender, message)
        for payload in tail:
            sender.send_ping(payload)
            expected.append((OP_PING, payload))
        wire = b"".join(sender.data_to_send())

        # On the wire: RSV1 only on the first frame of a compressed message (RFC 7692
        # section 6), never on a message sent with compress=False.
        on_wire = parse_frames(wire, mask=sender.side is CLIENT)
        event(f"compressed frames: {any(frame.rsv1 for frame in on_wire)}")
        assert shape([f._replace(rsv1=False) for f in on_wire]) == expected
        compressible = iter([m.compress and config is not None for m in sent])
        for frame in on_wire:
            if frame.opcode in (OP_TEXT, OP_BINARY):
                may_compress = next(compressible)
                assert may_compress or not frame.rsv1, frame
            else:
                assert not frame.rsv1, frame

        events, writes = run(receiver, data.draw(chunkings(wire), label="chunks"))
        assert receiver.parser_exc is None and receiver.state is State.OPEN
        assert shape(events) == expected
        assert reassemble(events) == [(m.opcode, m.payload) for m in sent]

        # Every ping is answered with a pong carrying its payload, in order.
        pongs = parse_frames(b"".join(writes), mask=receiver.side is CLIENT)
        pings = [payload for opcode, *rest in expected if opcode is OP_PING for payload in rest]
        assert [(f.opcode, f.data) for f in pongs] == [(OP_PONG, p) for p in pings]
        back, nothing = run(sender, [b"".join(writes)])
        assert shape(back) == [(OP_PONG, True)] * len(pings)
        assert [f.data for f in back if isinstance(f, Frame)] == pings
        assert nothing == [] and sender.state is State.OPEN


@pytest.mark.parametrize("compression", COMPRESSION)
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_max_size(compression: bool, data: st.DataObject) -> None:
    """A message is accepted if and only if it fits in max_size, compressed or not, however
    it is fragmented; a bigger one fails with 1009."""
    config = data.draw(configs(compression), label="config")
    message = data.draw(messages(), label="message")
    size = len(message.payload)
    near = st.sampled_from([size - 1, size, size + 1]).filter(lambda n: n >= 0)
    max_size = data.draw(st.one_of(near, st.integers(0, 2 * size + 10)), label="max_size")
    sender = new_protocol(CLIENT, config)
    receiver = new_protocol(SERVER, config, max_size=max_size)
    send_message(sender, message)
    wire = b"".join(sender.data_to_send())
    events, writes = run(receiver, data.draw(chunkings(wire), label="chunks"))
    sent, _ = parse_writes(writes, mask=False)
    if size <= max_size:
        assert receiver.parser_exc is None
        assert reassemble(events) == [(message.opcode, message.payload)]
    else:
        assert isinstance(receiver.parser_exc, PayloadTooBig)
        assert (sent[-1].opcode, Close.parse(sent[-1].data).code) == (OP_CLOSE, 1009)


# Strategies: byte streams, valid and not.

close_codes = st.sampled_from(
    [0, 999, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1014, 1015, 1016]
    + [2999, 3000, 4999, 5000, 65535]
)
invalid_utf8 = st.sampled_from(
    [b"\xff", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]
)


@st.composite
def small_payloads(draw: st.DrawFn) -> bytes:
    """Short payloads, with now and then one whose length is at a header boundary."""
    if draw(st.integers(0, 9)):
        return draw(st.binary(max_size=40))
    # 64 KiB frames fed byte by byte are slow: one boundary payload in ten is that large.
    size = draw(st.sampled_from([124, 125, 126, 127, 128] * 4 + [65535, 65536]))
    return bytes(range(256)) * (size // 256) + bytes(size % 256)


@st.composite
def conversations(draw: st.DrawFn, sender_side: Side, config: DeflateConfig | None) -> bytes:
    """What a well-behaved peer sends: messages, fragments, pings, pongs, maybe a close."""
    sender = new_protocol(sender_side, config)
    in_message = False
    for _ in range(draw(st.integers(0, 6))):
        if in_message:
            action = draw(st.sampled_from(["cont", "end", "ping", "pong", "close"]))
        else:
            action = draw(st.sampled_from(["text", "binary", "start", "ping", "pong", "close"]))
        compress = draw(st.booleans())
        if action == "text":
            sender.send_text(draw(texts), compress=compress)
        elif action == "binary":
            sender.send_binary(draw(small_payloads()), compress=compress)
        elif action == "start":
            if draw(st.booleans()):
                sender.send_text(draw(texts), fin=False, compress=compress)
            else:
                sender.send_binary(draw(small_payloads()), fin=False, compress=compress)
            in_message = True
        elif action in ("cont", "end"):
            # Continuations of text messages carry whole characters, so stay valid.
            sender.send_continuation(draw(texts).encode(), fin=action == "end")
            in_message = action == "cont"
        elif action in ("ping", "pong"):
            send = sender.send_ping if action == "ping" else sender.send_pong
            send(draw(ping_payloads))
        else:
            code = draw(st.sampled_from([None, 1000, 1001, 1003, 1008, 1011, 3000, 4999]))
            reason = "" if code is None else draw(st.text(max_size=20))
            sender.send_close(code, reason)
            break
    return b"".join(sender.data_to_send())


@st.composite
def raw_frames(draw: st.DrawFn, masked: bool) -> bytes:
    """One hand-made frame, valid or not: any opcode, flags, length encoding, masking."""
    opcode = draw(st.one_of(st.sampled_from([0, 1, 2, 8, 9, 10]), st.integers(0, 15)))
    fin = draw(st.booleans())
    rsv = draw(st.one_of(st.just(0), st.integers(0, 7)))
    if draw(st.integers(0, 9)) == 0:
        masked = not masked  # incorrect masking
    payload = draw(
        st.one_of(
            small_payloads(),
            texts.map(str.encode),
            st.tuples(texts, invalid_utf8, texts).map(
                lambda t: t[0].encode() + t[1] + t[2].encode()
            ),
            st.tuples(close_codes, st.one_of(texts.map(str.encode), invalid_utf8)).map(
                lambda c: struct.pack("!H", c[0]) + c[1]
            ),
            st.binary(min_size=1, max_size=1),
        )
    )
    length = len(payload)
    # The shortest length encoding, or a longer one, which receivers accept.
    form = draw(st.sampled_from([None, 126, 127])) if length < 65536 else 127
    if form is None and length >= 126:
        form = 126 if length < 65536 else 127
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask_bit = 0x80 if masked else 0
    if form is None:
        header = struct.pack("!BB", first, mask_bit | length)
    elif form == 126:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if masked:
        key = draw(st.binary(min_size=4, max_size=4))
        return header + key + masking.apply_mask(payload, key)
    return header + payload


@st.composite
def mutations(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few bits flipped, bytes changed, inserted or deleted, or truncated."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            # Boundaries of the length field and of UTF-8, CR and LF, a Latin-1 "digit".
            data[pos] = draw(st.sampled_from([0x00, 0x7E, 0x7F, 0x80, 0xFF, 0x0D, 0x0A, 0xB2]))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


def frame_streams(receiver_side: Side, config: DeflateConfig | None) -> st.SearchStrategy[bytes]:
    """Bytes a ``receiver_side`` protocol may receive once open, valid or not."""
    sender_side = other(receiver_side)
    valid = conversations(sender_side, config)
    raw = st.lists(raw_frames(masked=sender_side is CLIENT), max_size=6).map(b"".join)
    return st.one_of(
        valid,
        valid.flatmap(mutations),
        raw,
        st.tuples(valid, raw, valid).map(b"".join),
        st.binary(max_size=300),
    )


# Strategies: opening handshakes.

HEADER_NAMES = [
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
    "Origin",
    "Content-Length",
    "Transfer-Encoding",
]
HEADER_VALUES = [
    "",
    "websocket",
    "Upgrade",
    "keep-alive, Upgrade",
    "h2c, websocket/13",
    "13",
    "8",
    KEY,
    ACCEPT,
    "chat",
    "chat, superchat",
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=8; client_max_window_bits=15",
    'permessage-deflate; server_no_context_takeover; client_max_window_bits="10"',
    "permessage-deflate; client_no_context_takeover, permessage-deflate",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; x=1",
    "x-unknown",
    "chunked",
    "0",
    "5",
    "https://example.com",
]
# Numbers: plain, written with every Latin-1 character that str.isdigit() accepts, too long
# for int() (more than 4300 digits), or malformed.
numbers = st.one_of(
    st.integers(0, 2**64).map(str),
    st.text("0123456789\u00b2\u00b3\u00b9", min_size=1, max_size=4),
    st.integers(4290, 6000).map(lambda n: "9" * n),
    st.sampled_from(["", " ", "+5", "-1", "0x10", "5, 5", "1e3", "05"]),
)
# Any Latin-1 text: what the HTTP parser lets through.
latin1 = st.text(st.characters(min_codepoint=0x09, max_codepoint=0xFF), max_size=30)


@st.composite
def extension_headers(draw: st.DrawFn) -> str:
    """Sec-WebSocket-Extensions values: mostly permessage-deflate, with any parameters."""
    names = ["server_no_context_takeover", "client_no_context_takeover"]
    names += ["server_max_window_bits", "client_max_window_bits", "x"]
    values = st.one_of(
        st.none(), st.integers(0, 16).map(str), numbers.filter(lambda v: len(v) < 9)
    )
    offers = []
    for _ in range(draw(st.integers(1, 2))):
        parts = [draw(st.sampled_from(["permessage-deflate", "permessage-deflate", "x-foo"]))]
        for _ in range(draw(st.integers(0, 3))):
            name, value = draw(st.sampled_from(names)), draw(values)
            quote = '"' if value is not None and draw(st.booleans()) else ""
            parts.append(name if value is None else f"{name}={quote}{value}{quote}")
        offers.append("; ".join(parts))
    return ", ".join(offers)


# Header values: plausible ones, numbers, any text; and, for some names, their own grammar.
header_values = st.one_of(st.sampled_from(HEADER_VALUES), numbers, latin1)
_VALUES_BY_NAME = {
    "content-length": numbers,
    "sec-websocket-version": numbers,
    "sec-websocket-extensions": extension_headers(),
}


def values_for(name: str) -> st.SearchStrategy[str]:
    specific = _VALUES_BY_NAME.get(name.lower())
    return header_values if specific is None else st.one_of(specific, header_values)


header_names = st.one_of(
    st.sampled_from(HEADER_NAMES),
    st.from_regex(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}", fullmatch=True),
)


# A header: its name and its value, or a strategy to draw the value from.
HeaderSpec = tuple[str, "str | st.SearchStrategy[str]"]


@st.composite
def http_messages(
    draw: st.DrawFn,
    start_lines: Sequence[str],
    headers: Sequence[HeaderSpec],
    edits: int = 4,
) -> bytes:
    """An HTTP head built from valid parts (or drawn values), then edited up to ``edits``
    times: headers dropped, doubled, changed, added, padded to the line length limit."""
    lines = [(k, v if isinstance(v, str) else draw(v)) for k, v in headers]
    for _ in range(draw(st.integers(0, edits))):
        edit = draw(st.sampled_from(["drop", "double", "change", "add", "pad"]))
        index = draw(st.integers(0, len(lines)))
        if edit == "drop" and index < len(lines):
            del lines[index]
        elif edit == "double" and index < len(lines):
            lines.insert(index, lines[index])
        elif edit == "change" and index < len(lines):
            lines[index] = (lines[index][0], draw(values_for(lines[index][0])))
        elif edit == "add":
            name = draw(header_names)
            lines.insert(index, (name, draw(values_for(name))))
        elif edit == "pad":
            # A line of the limit's length, give or take one byte.
            size = MAX_LINE_LENGTH + draw(st.integers(-1, 1)) - len("X-Pad: ")
            lines.insert(index, ("X-Pad", "a" * size))
    start = draw(st.sampled_from(start_lines))
    head = [start.encode("latin-1")]
    head += [f"{name}: {value}".encode("latin-1") for name, value in lines]
    return b"\r\n".join(head) + b"\r\n\r\n"


REQUEST_LINES = [
    "GET / HTTP/1.1",
    "GET /chat?room=1 HTTP/1.1",
    "POST / HTTP/1.1",
    "GET / HTTP/1.0",
    "GET http://example.com/ HTTP/1.1",
    "GET  / HTTP/1.1",
]
REQUEST_HEADERS: list[HeaderSpec] = [
    ("Host", "example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
]
STATUS_LINES = [
    "HTTP/1.1 101 Switching Protocols",
    "HTTP/1.1 101",
    "HTTP/1.1 200 OK",
    "HTTP/1.1 204 No Content",
    "HTTP/1.1 404 Not Found",
    "HTTP/1.0 101 Switching Protocols",
    "HTTP/1.1 099 Too Low",
    "HTTP/2 101 Switching Protocols",
]
RESPONSE_HEADERS: list[HeaderSpec] = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Accept", ACCEPT),
]
REJECTION_LINES = ["HTTP/1.1 200 OK", "HTTP/1.1 403 Forbidden", "HTTP/1.1 500 Oops"]
REJECTION_HEADERS: list[HeaderSpec] = [("Content-Type", "text/plain"), ("Content-Length", numbers)]


def handshake_streams(receiver_side: Side) -> st.SearchStrategy[bytes]:
    """Bytes a connecting ``receiver_side`` protocol may receive: a handshake, valid or
    not, then frames; or any bytes."""
    if receiver_side is SERVER:
        valid_head = http_messages(REQUEST_LINES[:1], REQUEST_HEADERS, edits=0)
        offers: list[HeaderSpec] = [
            *REQUEST_HEADERS[:-1],
            ("Sec-WebSocket-Extensions", extension_headers()),
        ]
        head = st.one_of(
            http_messages(REQUEST_LINES, REQUEST_HEADERS),
            http_messages(REQUEST_LINES, offers),
        )
    else:
        extensions: list[HeaderSpec] = [
            *RESPONSE_HEADERS,
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ]
        valid_head = st.one_of(
            http_messages(STATUS_LINES[:1], RESPONSE_HEADERS, edits=0),
            http_messages(STATUS_LINES[:1], extensions, edits=0),
        )
        answers: list[HeaderSpec] = [
            *RESPONSE_HEADERS,
            ("Sec-WebSocket-Extensions", extension_headers()),
        ]
        head = st.one_of(
            http_messages(STATUS_LINES, RESPONSE_HEADERS),
            http_messages(STATUS_LINES, answers),
            http_messages(REJECTION_LINES, REJECTION_HEADERS),
        )
    body = st.one_of(st.just(b""), st.binary(max_size=20))
    frames = frame_streams(receiver_side, None)
    valid = st.tuples(valid_head, frames).map(b"".join)
    edited = st.tuples(head, body, frames).map(b"".join)
    return st.one_of(valid, edited, edited.flatmap(mutations), st.binary(max_size=300))


def new_server(compression: bool) -> ServerProtocol:
    extensions = [deflate().ServerPerMessageDeflateFactory()] if compression else []
    return ServerProtocol(extensions=extensions)


def new_client(compression: bool) -> ClientProtocol:
    """A client that sent its request, with the RFC's key so that answers can match it."""
    extensions = [deflate().ClientPerMessageDeflateFactory()] if compression else []
    client = ClientProtocol(parse_uri("ws://example.com/chat"), extensions=extensions)
    client.key = KEY
    client.send_request(client.connect())
    client.data_to_send()
    return client


def new_connecting(side: Side, compression: bool) -> Protocol:
    return new_server(compression) if side is SERVER else new_client(compression)


# 2. Chunking invariance.


def normalize(protocol: Protocol, events: list[object], writes: list[bytes]) -> object:
    """Everything observable after a run, comparable by value.

    HTTP responses lose their ``Date`` header; frames are parsed, since a client masks each
    one with a fresh random key.
    """
    if writes and writes[0] and isinstance(protocol, ServerProtocol) and protocol.response:
        response = Response.parse(writes[0])
        headers = [(k, v) for k, v in response.headers.raw_items() if k != "Date"]
        http: object = (response.status_code, headers, response.body)
        writes = writes[1:]
    else:
        http = None
    frames, eof = parse_writes(writes, mask=protocol.side is CLIENT)
    return (
        events,
        http,
        frames,
        eof,
        protocol.state,
        protocol.close_code,
        protocol.close_reason,
        protocol.close_rcvd,
        protocol.close_sent,
        type(protocol.parser_exc),
        type(protocol.handshake_exc),
    )


def check_chunking_invariance(
    new: Callable[[], Protocol],
    stream: bytes,
    chunks: list[bytes],
    eof: bool,
) -> None:
    """Feed ``stream`` whole, byte by byte and in ``chunks``; expect the same outcome."""
    ways = {
        "whole": [stream],
        "byte by byte": [stream[i : i + 1] for i in range(len(stream))],
        "random chunks": chunks,
    }
    outcomes = {}
    for name, pieces in ways.items():
        protocol = new()
        events, writes = run(protocol, pieces, eof=eof)
        outcomes[name] = normalize(protocol, events, writes)
    assert outcomes["byte by byte"] == outcomes["whole"]
    assert outcomes["random chunks"] == outcomes["whole"]


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize("side", SIDES)
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_chunking_invariance(side: Side, compression: bool, data: st.DataObject) -> None:
    """Frames: the same events and bytes out, however the bytes in are cut."""
    config = data.draw(configs(compression), label="config")
    max_size = data.draw(st.sampled_from([None, 2**20, 100]), label="max_size")
    stream = data.draw(frame_streams(side, config), label="stream")
    chunks = data.draw(chunkings(stream), label="chunks")
    eof = data.draw(st.booleans(), label="eof")
    check_chunking_invariance(
        lambda: new_protocol(side, config, max_size=max_size),
        stream,
        chunks,
        eof,
    )


@pytest.mark.parametrize("side", SIDES)
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_chunking_invariance_handshake(side: Side, data: st.DataObject) -> None:
    """Handshake then frames: the same outcome, however the bytes in are cut."""
    stream = data.draw(handshake_streams(side), label="stream")
    chunks = data.draw(chunkings(stream), label="chunks")
    eof = data.draw(st.booleans(), label="eof")
    check_chunking_invariance(
        lambda: new_connecting(side, False),
        stream,
        chunks,
        eof,
    )


# 3. Robustness.


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize("side", SIDES)
@settings(max_examples=examples(75), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_frames(side: Side, compression: bool, data: st.DataObject) -> None:
    """Any bytes after the handshake: no exception, and an outcome the RFC allows."""
    config = data.draw(configs(compression), label="config")
    max_size = data.draw(st.sampled_from([None, 2**20, 100, 0]), label="max_size")
    stream = data.draw(frame_streams(side, config), label="stream")
    protocol = new_protocol(side, config, max_size=max_size)
    events, writes = run(protocol, data.draw(chunkings(stream), label="chunks"))
    note(f"parser_exc: {protocol.parser_exc!r}")
    check_outcome(protocol, events, writes)
    eof_events, eof_writes = run(protocol, [], eof=True)
    check_outcome(protocol, events + eof_events, writes + eof_writes)


def check_handshake_outcome(protocol: Protocol, events: list[object], writes: list[bytes]) -> None:
    """The contract of a connecting protocol after any input."""
    handshake = [e for e in events if isinstance(e, (Request, Response))]
    assert events[: len(handshake)] == handshake and len(handshake) <= 1
    frames = events[len(handshake) :]
    eof_rcvd = protocol.state is State.CLOSED
    if isinstance(protocol, ServerProtocol):
        assert (protocol.response is not None) is (bool(writes) and writes[0] != b"")
        response = Response.parse(writes[0]) if writes and writes[0] else None
        if handshake:
            # run() answered with accept(): 101, or a rejection that says why.
            assert response is not None
            assert response.status_code in (101, 400, 403, 405, 426)
            assert (response.status_code == 101) is (protocol.handshake_exc is None)
        elif response is not None:
            # The request could not be parsed: the protocol answered by itself.
            assert response.status_code in (400, 414, 431)
            assert protocol.handshake_exc is not None
        else:
            assert (protocol.handshake_exc is not None) is eof_rcvd
    else:
        assert isinstance(protocol, ClientProtocol)
        if handshake and protocol.handshake_exc is None:
            assert isinstance(handshake[0], Response) and handshake[0].status_code == 101
            assert protocol.state in (State.OPEN, State.CLOSING, State.CLOSED)
        elif protocol.handshake_exc is not None:
            assert frames == [] and writes == [b""]
        else:
            assert events == [] and writes == [b""] * eof_rcvd
    status = getattr(protocol.response, "status_code", None)
    event(f"handshake: {status}, {type(protocol.handshake_exc).__name__}")
    if protocol.handshake_exc is None and protocol.response is not None:
        if isinstance(protocol, ServerProtocol):
            writes = writes[1:]
        check_outcome(protocol, frames, writes)
    else:
        assert frames == []
        assert protocol.state is (State.CLOSED if eof_rcvd else State.CONNECTING)


@pytest.mark.parametrize("compression", COMPRESSION)
@pytest.mark.parametrize("side", SIDES)
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_handshake(side: Side, compression: bool, data: st.DataObject) -> None:
    """Any bytes during the handshake: no exception, a documented outcome."""
    if compression:
        deflate()
    stream = data.draw(handshake_streams(side), label="stream")
    protocol = new_connecting(side, compression)
    events, writes = run(protocol, data.draw(chunkings(stream), label="chunks"))
    note(f"handshake_exc: {protocol.handshake_exc!r}, parser_exc: {protocol.parser_exc!r}")
    check_handshake_outcome(protocol, events, writes)
    eof_events, eof_writes = run(protocol, [], eof=True)
    check_handshake_outcome(protocol, events + eof_events, writes + eof_writes)


# 4. UTF-8.


def fragment_frames(payload: bytes, cuts: Sequence[int]) -> list[bytes]:
    """A text message cut at ``cuts``, as a client sends it, one frame per fragment."""
    fragments = split(payload, cuts)
    last = len(fragments) - 1
    return [
        Frame(OP_CONT if i else OP_TEXT, fragment, fin=i == last).serialize(mask=True)
        for i, fragment in enumerate(fragments)
    ]


def cuts_in(payload: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(payload)), max_size=6)


@settings(max_examples=examples(150), deadline=None)
@given(text=texts, data=st.data())
def test_utf8_any_split_accepted(text: str, data: st.DataObject) -> None:
    """Valid UTF-8, cut anywhere, inside characters too, is accepted."""
    payload = text.encode()
    frames = fragment_frames(payload, data.draw(cuts_in(payload), label="cuts"))
    server = Protocol(SERVER)
    events, writes = run(server, frames)
    assert server.parser_exc is None and writes == []
    assert reassemble(events) == [(OP_TEXT, payload)]


@st.composite
def invalid_texts(draw: st.DrawFn) -> bytes:
    """Bytes that are not valid UTF-8: mostly valid text with a bad sequence inside."""
    data = draw(
        st.one_of(
            st.tuples(texts, invalid_utf8, texts).map(
                lambda t: t[0].encode() + t[1] + t[2].encode()
            ),
            st.tuples(texts, st.binary(min_size=1, max_size=6), texts).map(
                lambda t: t[0].encode() + t[1] + t[2].encode()
            ),
            # Valid text cut inside its last character: incomplete, not invalid, until the end.
            st.text(characters, min_size=1, max_size=20)
            .map(str.encode)
            .flatmap(lambda b: st.integers(1, 3).map(lambda n: b[:-n])),
            st.binary(max_size=30),
        )
    )
    try:
        data.decode()
    except UnicodeDecodeError:
        return data
    assume(False)
    raise AssertionError  # pragma: no cover


@settings(max_examples=examples(200), deadline=None)
@given(payload=invalid_texts(), data=st.data())
def test_utf8_invalid_fails_early(payload: bytes, data: st.DataObject) -> None:
    """Invalid UTF-8 fails with 1007 once the frame making it invalid arrives, not sooner.

    A sequence cut at the end of a fragment that could still be completed is not invalid
    yet: it fails only with the final fragment. Fed byte by byte, no byte before the first
    invalid one (or before the end of the message, for an incomplete sequence) may fail.
    """
    cuts = sorted(data.draw(cuts_in(payload), label="cuts"))
    frames = fragment_frames(payload, cuts)
    bounds = [0, *cuts, len(payload)]
    bad = utf8_error_index(payload)
    if bad is None:
        failing = len(frames) - 1
        first_bad = len(frames[failing]) - 1  # the last byte of the last frame
    else:
        failing = next(i for i in range(len(frames)) if bounds[i] <= bad < bounds[i + 1])
        header = len(frames[failing]) - (bounds[failing + 1] - bounds[failing])
        first_bad = header + bad - bounds[failing]
    bytewise = data.draw(st.booleans(), label="byte by byte")
    note(f"invalid byte: {bad}, in fragment {failing} of {len(frames)}, at {first_bad}")
    server = Protocol(SERVER)
    for index, frame in enumerate(frames):
        pieces = [frame[i : i + 1] for i in range(len(frame))] if bytewise else [frame]
        writes: list[bytes] = []
        for offset, piece in enumerate(pieces):
            writes += run(server, [piece])[1]
            if (index, offset if bytewise else len(frame) - 1) < (failing, first_bad):
                assert server.parser_exc is None and writes == [], (index, offset)
        if index == failing:
            assert isinstance(server.parser_exc, UnicodeDecodeError)
            sent, eof = parse_writes(writes, mask=False)
            assert [(f.opcode, Close.parse(f.data).code) for f in sent] == [(OP_CLOSE, 1007)]
            assert eof
            break


@settings(max_examples=examples(200), deadline=None)
@given(payload=st.binary(max_size=12))
def test_utf8_error_index_oracle(payload: bytes) -> None:
    """The oracle of test_utf8_invalid_fails_early agrees with the table of RFC 3629."""
    assert utf8_error_index(payload) == _rfc3629_error_index(payload)


def _rfc3629_error_index(data: bytes) -> int | None:
    """Index of the first byte that no valid UTF-8 sequence allows (RFC 3629 section 4)."""
    i = 0
    while i < len(data):
        lead = data[i]
        if lead < 0x80:
            i += 1
            continue
        if 0xC2 <= lead <= 0xDF:
            ranges = [(0x80, 0xBF)]
        elif lead == 0xE0:
            ranges = [(0xA0, 0xBF), (0x80, 0xBF)]
        elif lead == 0xED:
            ranges = [(0x80, 0x9F), (0x80, 0xBF)]
        elif 0xE1 <= lead <= 0xEF:
            ranges = [(0x80, 0xBF), (0x80, 0xBF)]
        elif lead == 0xF0:
            ranges = [(0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)]
        elif lead == 0xF4:
            ranges = [(0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)]
        elif 0xF1 <= lead <= 0xF3:
            ranges = [(0x80, 0xBF)] * 3
        else:
            return i
        for j, (low, high) in enumerate(ranges, start=1):
            if i + j == len(data):
                return None
            if not low <= data[i + j] <= high:
                return i + j
        i += len(ranges) + 1
    return None


# 5. Masking.


MaskFunction = Callable[[bytes | bytearray | memoryview, bytes], bytes]


def _c_apply_mask() -> MaskFunction:
    try:
        module = importlib.import_module("socketeer.protocol._speedups")
    except ImportError:  # pragma: no cover - depends on the build
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("the C extension is not built")
    return module.apply_mask  # type: ignore[no-any-return]


MASKS = [
    pytest.param(lambda: masking._py_apply_mask, id="python"),
    pytest.param(_c_apply_mask, id="c"),
]


@st.composite
def mask_inputs(draw: st.DrawFn) -> bytes | bytearray | memoryview:
    """Data of any length (8-byte blocks and their tails, above 64 KiB too), in any buffer
    type, unaligned memoryviews included."""
    if draw(st.integers(0, 4)):
        data = draw(st.binary(max_size=100))
    else:
        size = draw(st.sampled_from([65535, 65536, 65537, 65543, 100_003]))
        data = random.Random(draw(st.integers(0, 2**32 - 1))).randbytes(size)
    offset = draw(st.integers(0, 7))
    kind = draw(st.sampled_from(["bytes", "bytearray", "memoryview"]))
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    return memoryview(bytes(offset) + data)[offset:]


@pytest.mark.parametrize("implementation", MASKS)
@settings(max_examples=examples(60), deadline=None)
@given(data=mask_inputs(), key=st.binary(min_size=4, max_size=4))
def test_masking(
    implementation: Callable[[], MaskFunction], data: bytes | bytearray | memoryview, key: bytes
) -> None:
    """The mask equals a naive reference (so C equals Python), and masking twice gives the
    data back."""
    apply_mask = implementation()
    plain = bytes(data)
    masked = apply_mask(data, key)
    assert type(masked) is bytes
    assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(plain))
    assert apply_mask(masked, key) == plain
    assert bytes(data) == plain  # the input is left alone


@pytest.mark.parametrize("implementation", MASKS)
@settings(max_examples=examples(20), deadline=None)
@given(data=st.binary(max_size=20), key=st.binary(max_size=8).filter(lambda k: len(k) != 4))
def test_masking_rejects_bad_keys(
    implementation: Callable[[], MaskFunction], data: bytes, key: bytes
) -> None:
    with pytest.raises(ValueError):
        implementation()(data, key)


# Regressions: bugs these properties found, fixed since; their inputs stay as examples.


@settings(phases=[Phase.explicit], deadline=None)
@example(stream=b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n")
@example(stream=b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 4301 + b"\r\n\r\n")
@given(stream=handshake_streams(CLIENT))
def test_regression_content_length_not_ascii_digits(stream: bytes) -> None:
    """A Content-Length that str.isdigit() accepts but int() does not (a superscript digit,
    more than 4300 digits) raised ValueError out of ClientProtocol.receive_data."""
    protocol = new_client(False)
    events, writes = run(protocol, [stream])
    check_handshake_outcome(protocol, events, writes)
    assert protocol.handshake_exc is not None


_LINE = b"X-Pad: " + b"a" * (MAX_LINE_LENGTH - len("X-Pad: "))
_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: example.com\r\n" + _LINE + b"\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY.encode() + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


@settings(phases=[Phase.explicit], deadline=None)
@example(stream=_REQUEST, cut=_REQUEST.index(_LINE) + len(_LINE) + 1)
@given(stream=handshake_streams(SERVER), cut=st.integers(0))
def test_regression_line_length_limit_and_chunking(stream: bytes, cut: int) -> None:
    """A header line of exactly MAX_LINE_LENGTH bytes was rejected with 431 when a chunk
    ended between its CR and LF, and accepted otherwise."""
    chunks = [stream[:cut], stream[cut:]]
    check_chunking_invariance(lambda: new_connecting(SERVER, False), stream, chunks, False)


def _frames(*frames: Frame, mask: bool) -> bytes:
    return b"".join(frame.serialize(mask=mask, mask_key=b"\x00\x00\x00\x00") for frame in frames)


@settings(phases=[Phase.explicit], deadline=None)
@example(stream=_frames(Frame(OP_TEXT, b"abc\xff"), mask=False), cut=4)
@given(stream=st.binary(), cut=st.integers(0))
def test_regression_close_reason_and_chunking(stream: bytes, cut: int) -> None:
    """The close reason of a UTF-8 failure gave the position of the error in the piece of
    the frame validated so far, so it depended on how the bytes were read."""
    chunks = [stream[:cut], stream[cut:]]
    check_chunking_invariance(lambda: Protocol(CLIENT), stream, chunks, False)


@settings(phases=[Phase.explicit], deadline=None)
@example(text="héllo wörld " * 3, tail="ünïcode " * 5)
@given(text=texts, tail=texts)
def test_regression_compressed_continuation_validated(text: str, tail: str) -> None:
    """With permessage-deflate and max_size=None, an incomplete continuation frame of a
    compressed text message was validated as UTF-8 before decompression: 1007."""
    config = DeflateConfig(False, False, 15, 15)
    sender = new_protocol(SERVER, config)
    sender.send_text(text, fin=False)
    sender.send_continuation(tail, fin=True)
    stream = b"".join(sender.data_to_send())
    cut = 2 + stream[1] + 4  # four bytes into the continuation frame
    client = new_protocol(CLIENT, config, max_size=None)
    events, _ = run(client, [stream[:cut], stream[cut:]])
    assert client.parser_exc is None, client.parser_exc
    assert reassemble(events) == [(OP_TEXT, (text + tail).encode())]


@settings(phases=[Phase.explicit], deadline=None)
@example(
    stream=_frames(Frame(OP_TEXT, b"a", fin=False), Frame(OP_TEXT, b"\xffab"), mask=False),
    cut=6,
)
@given(stream=st.binary(), cut=st.integers(0))
def test_regression_close_code_and_chunking(stream: bytes, cut: int) -> None:
    """A TEXT frame arriving during a fragmented message failed with 1002 when whole, and
    with 1007 when in pieces starting with invalid UTF-8."""
    chunks = [stream[:cut], stream[cut:]]
    check_chunking_invariance(lambda: Protocol(CLIENT), stream, chunks, False)


# Open bugs: each test fails on the input the properties found, until the bug is fixed.


_STALE = _frames(
    Frame(OP_TEXT, b"hello"),
    Frame(OP_BINARY, b"", fin=False),
    Frame(OP_CONT, b"\xff"),
    mask=True,
)


@settings(phases=[Phase.explicit], deadline=None)
@example(stream=_STALE, cut=8)
@given(stream=st.binary(), cut=st.integers(0))
def test_regression_stale_utf8_validator(stream: bytes, cut: int) -> None:
    server = Protocol(SERVER)
    events, _ = run(server, [stream[:cut], stream[cut:]])
    assert server.parser_exc is None, server.parser_exc
    assert reassemble(events) == [(OP_TEXT, b"hello"), (OP_BINARY, b"\xff")]
