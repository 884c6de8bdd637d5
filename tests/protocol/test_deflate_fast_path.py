"""The fast paths for permessage-deflate agree with the general path on every input.

With permessage-deflate as the only extension and debug logging off, :class:`Protocol`
receives a whole compressed message of one frame without building a frame for the extension
(``_receive_compressed()``), hands uncompressed messages to ``read_messages()``, and compresses
data frames without building a :class:`Frame` (``_send_data()``). Debug logging turns these
off, so a protocol with debug logging is the reference: fed the same bytes, or asked to send
the same messages, both must give the same events, bytes and failures.
"""

from __future__ import annotations

import logging
import random
import zlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from socketeer.protocol.base import CLIENT, OPEN, SERVER, Protocol, Side
from socketeer.protocol.extensions.permessage_deflate import PerMessageDeflate
from socketeer.protocol.frames import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, Frame, read_frame

MASK_KEY = b"\x12\x34\x56\x78"

# A binary message large enough for the extension to probe whether it compresses: random
# bytes do not, so it goes uncompressed.
INCOMPRESSIBLE = random.Random(6455).randbytes(20_000)


def _logger(debug: bool) -> logging.Logger:
    logger = logging.getLogger(f"tests.deflate_fast_path.{'debug' if debug else 'quiet'}")
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def _protocol(
    side: Side, debug: bool, takeover: tuple[bool, bool], max_size: int | None
) -> Protocol:
    protocol = Protocol(side, state=OPEN, max_size=max_size, logger=_logger(debug))
    protocol.extensions = [PerMessageDeflate(takeover[0], takeover[1], 15, 15)]
    assert protocol.debug is debug
    return protocol


class _Peer:
    """Builds the frames a peer sends: compressed as RFC 7692 says, or deliberately not."""

    def __init__(self, masked: bool, no_context_takeover: bool) -> None:
        self.masked = masked
        self.no_context_takeover = no_context_takeover
        self.compressor = zlib.compressobj(wbits=-15)

    def frame(self, opcode: int, data: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
        return Frame(opcode, data, fin, rsv1).serialize(mask=self.masked, mask_key=MASK_KEY)  # type: ignore[arg-type]

    def compress(self, data: bytes, fin: bool) -> bytes:
        data = self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            data = data[:-4]
            if self.no_context_takeover:
                self.compressor = zlib.compressobj(wbits=-15)
        return data


TEXTS = st.sampled_from(["", "a", "café ☕", "x" * 300, '{"id": 1, "ok": true}' * 20])
DATA = st.one_of(
    st.binary(max_size=200),
    TEXTS.map(str.encode),
    # Inflates past the limits below; does not shrink, so is past them when compressed.
    st.sampled_from([b"\x00" * 5000, INCOMPRESSIBLE[:3000]]),
)

# What a peer may send: one item makes one or a few frames. Faults are among them: invalid
# UTF-8, corrupt DEFLATE data, RSV1 on a continuation, a continuation without a message, a
# new message before the previous one ended.
ITEMS = st.one_of(
    st.tuples(st.just("compressed"), st.sampled_from([OP_TEXT, OP_BINARY]), DATA),
    st.tuples(st.just("plain"), st.sampled_from([OP_TEXT, OP_BINARY]), DATA),
    st.tuples(st.just("fragmented"), st.booleans(), DATA),
    st.tuples(st.just("ping"), st.just(0), st.binary(max_size=20)),
    st.tuples(st.just("bad utf-8"), st.booleans(), st.just(b"ok \xff\xfe")),
    st.tuples(
        st.just("corrupt"),
        st.sampled_from([OP_TEXT, OP_BINARY]),
        st.binary(min_size=1, max_size=30),
    ),
    st.tuples(st.just("unfinished"), st.booleans(), DATA),
    st.tuples(st.just("continuation"), st.booleans(), DATA),
)


def _wire(peer: _Peer, items: list[tuple[str, object, bytes]]) -> bytes:
    wire = []
    for kind, arg, data in items:
        if kind == "compressed":
            assert isinstance(arg, int)
            wire.append(peer.frame(arg, peer.compress(data, True), rsv1=True))
        elif kind == "plain":
            assert isinstance(arg, int)
            wire.append(peer.frame(arg, data))
        elif kind == "fragmented":  # compressed or not, in three frames
            half = len(data) // 2
            if arg:
                first, rest = peer.compress(data[:half], False), peer.compress(data[half:], True)
            else:
                first, rest = data[:half], data[half:]
            wire.append(peer.frame(OP_BINARY, first, fin=False, rsv1=bool(arg)))
            wire.append(peer.frame(OP_PING, b"between"))
            wire.append(peer.frame(OP_CONT, rest))
        elif kind == "ping":
            wire.append(peer.frame(OP_PING, data))
        elif kind == "bad utf-8":
            payload = peer.compress(data, True) if arg else data
            wire.append(peer.frame(OP_TEXT, payload, rsv1=bool(arg)))
        elif kind == "corrupt":
            assert isinstance(arg, int)
            wire.append(peer.frame(arg, b"\xff" + data, rsv1=True))
        elif kind == "unfinished":  # a message left open: what follows must continue it
            wire.append(peer.frame(OP_TEXT, data, fin=False, rsv1=bool(arg)))
        else:  # a continuation, with RSV1 if arg, where none may be
            wire.append(peer.frame(OP_CONT, data, rsv1=bool(arg)))
    return b"".join(wire)


def _unmasked(protocol: Protocol) -> list[tuple[int, bytes] | bytes]:
    """What the protocol wrote, frame by frame, masks removed: a client masks with random
    keys."""
    written: list[tuple[int, bytes] | bytes] = []
    for data in protocol.data_to_send():
        pos = 0
        while pos < len(data):
            result = read_frame(data, pos, protocol.side is CLIENT)
            assert result is not None
            first_byte, payload, pos = result
            written.append((first_byte, payload))
        if not data:
            written.append(b"")  # the end of the stream
    return written


def _outcome(protocol: Protocol) -> tuple[object, ...]:
    events = [
        (e.opcode, e.data, e.fin, e.rsv1) if isinstance(e, Frame) else e
        for e in protocol.events_received()
    ]
    exc = protocol.parser_exc
    return (
        events,
        _unmasked(protocol),
        protocol.state,
        protocol.close_code,
        None if exc is None else (type(exc), str(exc)),
    )


def _example(*items: tuple[str, object, bytes], max_size: int | None = 1000) -> object:
    """A case that must always run: each fault of a compressed message, on its own."""
    return example(
        side=SERVER,
        takeover=(False, False),
        max_size=max_size,
        max_pending=None,
        items=list(items),
        cuts=[],
    )


@_example(("compressed", OP_BINARY, INCOMPRESSIBLE[:3000]))  # too big before inflating
@_example(("compressed", OP_BINARY, b"\x00" * 5000))  # inflates past the limit
@_example(("compressed", OP_TEXT, b"\x00" * 5000), max_size=None)
@_example(("bad utf-8", True, b"ok \xff\xfe"))
@_example(("corrupt", OP_TEXT, b"\x00"))
@_example(("unfinished", False, b"a"), ("compressed", OP_TEXT, b"b"))
@settings(max_examples=300, deadline=None)
@given(
    side=st.sampled_from([SERVER, CLIENT]),
    takeover=st.tuples(st.booleans(), st.booleans()),
    max_size=st.sampled_from([None, 1000, 6000]),
    max_pending=st.sampled_from([None, 1, 3]),
    items=st.lists(ITEMS, max_size=12),
    cuts=st.lists(st.integers(0, 20_000), max_size=4),
)
def test_receiving(
    side: Side,
    takeover: tuple[bool, bool],
    max_size: int | None,
    max_pending: int | None,
    items: list[tuple[str, object, bytes]],
    cuts: list[int],
) -> None:
    """Same events, answers (pongs, close frames) and failures, fed whole or in pieces."""
    wire = _wire(_Peer(side is SERVER, takeover[0]), items)
    bounds = [0, *sorted(c for c in cuts if c < len(wire)), len(wire)]
    outcomes = []
    for debug in (False, True):
        protocol = _protocol(side, debug, takeover, max_size)
        protocol.max_pending = max_pending
        events = []
        for start, end in zip(bounds, bounds[1:], strict=False):
            protocol.receive_data(wire[start:end])
            while True:  # a driver takes the events, then lets parsing go on
                events.append(_outcome(protocol))
                if not protocol.unparsed:
                    break
                protocol.receive_data(b"")
        outcomes.append(events)
    assert outcomes[0] == outcomes[1]


SENDS = st.one_of(
    st.tuples(st.sampled_from(["text", "binary"]), DATA, st.booleans()),
    st.tuples(st.just("fragments"), DATA, st.booleans()),
    st.tuples(st.just("ping"), st.binary(max_size=20), st.just(True)),
    st.tuples(st.just("binary"), st.just(INCOMPRESSIBLE), st.just(True)),
)


@settings(max_examples=200, deadline=None)
@given(takeover=st.tuples(st.booleans(), st.booleans()), sends=st.lists(SENDS, max_size=10))
def test_sending(takeover: tuple[bool, bool], sends: list[tuple[str, bytes, bool]]) -> None:
    """Same bytes on the wire (a server's, which are not masked), and a client's decode the
    same on the other side."""
    outputs = []
    for debug in (False, True):
        protocol = _protocol(SERVER, debug, takeover, None)
        for kind, data, compress in sends:
            if kind == "text":
                protocol.send_text(data, compress=compress)
            elif kind == "binary":
                protocol.send_binary(data, compress=compress)
            elif kind == "fragments":
                protocol.send_binary(data[:3], fin=False, compress=compress)
                protocol.send_continuation(data[3:], fin=True)
            else:
                protocol.send_ping(data)
        outputs.append(protocol.data_to_send())
    assert outputs[0] == outputs[1]


@given(
    sends=st.lists(
        st.one_of(
            st.tuples(st.just("text"), TEXTS.map(str.encode)), st.tuples(st.just("binary"), DATA)
        ),
        max_size=10,
    )
)
def test_client_round_trip(sends: list[tuple[str, bytes]]) -> None:
    """A client's compressed messages decode, on a server, to what it sent."""
    client = _protocol(CLIENT, False, (False, False), None)
    server = _protocol(SERVER, False, (False, False), None)
    for kind, data in sends:
        if kind == "text":
            client.send_text(data)
        else:
            client.send_binary(data)
    server.receive_data(b"".join(client.data_to_send()))
    received = [(e.opcode, e.data) for e in server.events_received() if isinstance(e, Frame)]
    assert received == [(OP_TEXT if k == "text" else OP_BINARY, d) for k, d in sends]
    assert server.parser_exc is None
