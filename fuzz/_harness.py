"""What the fuzz targets share: reading structure from raw bytes, driving a protocol object like
an I/O layer would, and the contract of :class:`~socketeer.protocol.base.Protocol` once frames
flow (see ``docs/fuzzing.md``).

Every check raises :exc:`AssertionError` with a message that says which rule broke: under
atheris that is a crash, saved as a file that ``python fuzz/fuzz_X.py FILE`` replays; in the
smoke test it is a test failure.
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import logging
import os
import pathlib
import random
import sys
import types
from collections.abc import Callable, Iterator, Sequence

from socketeer.exceptions import InvalidState, PayloadTooBig, ProtocolError
from socketeer.protocol import base, frames, masking
from socketeer.protocol.base import CLIENT, SERVER, Protocol, Side, State
from socketeer.protocol.frames import (
    CTRL_OPCODES,
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
from socketeer.protocol.http11 import Response

__all__ = [
    "Input",
    "split",
    "Driver",
    "python_twins",
    "DEBUG_LOGGER",
    "check_frames",
    "check_misuse",
    "normalize",
    "side_of",
    "known_bug",
    "FAILURE_CODES",
    "main",
]

# RFC 6455 section 7.4.1 and base.Protocol._fail_on_fault: the close code sent for each
# documented peer fault.
FAILURE_CODES: dict[type[Exception], int] = {
    ProtocolError: 1002,
    UnicodeDecodeError: 1007,
    PayloadTooBig: 1009,
}

# base.py: "Without max_size, the largest payload allocated ahead of its bytes".
READ_INTO_MAX = 67_108_864

# Known bugs (docs/fuzzing.md, "Findings") are stepped over so that fuzzing goes on past
# them; SOCKETEER_FUZZ_STRICT=1 turns them back into failures, to replay fuzz/findings/.
STRICT = os.environ.get("SOCKETEER_FUZZ_STRICT") == "1"


def known_bug(condition: bool) -> bool:
    """Whether to step over an input that hits a known bug (never in strict mode)."""
    return condition and not STRICT


# A chunked run costs about what a whole run does (split() makes a few hundred chunks at
# most); only inputs larger than this, which structured frames can build, are run whole only.
CHUNKING_LIMIT = 1_048_576


class Input:
    """Structure read from the fuzzer's bytes: a few configuration bytes, then the payload.

    A pure-Python stand-in for ``atheris.FuzzedDataProvider`` with a fixed, documented layout
    (each target's docstring), so that a seed or a crash file means the same thing with and
    without atheris, and the smoke test runs where atheris does not install. Reading past the
    end gives zeros: every input, even empty, is a valid one.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        """The next byte, or 0 past the end."""
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def rest(self) -> bytes:
        """Every byte not read yet."""
        rest = self.data[self.pos :]
        self.pos = len(self.data)
        return rest


# Largest chunk for each chunking seed modulo 8: byte by byte up to whole reads.
_LARGEST_CHUNK = (1, 2, 3, 7, 16, 100, 1000, 5000)


def split(data: bytes, seed: int) -> list[bytes]:
    """Cut ``data`` in chunks, empty ones included, as the chunking ``seed`` says.

    Large inputs get larger chunks, a few hundred at most, to keep each run short.
    """
    rng = random.Random(seed)
    largest = max(_LARGEST_CHUNK[seed & 7], len(data) >> 8)
    chunks = []
    pos = 0
    while pos < len(data):
        size = rng.randint(0, largest)
        chunks.append(data[pos : pos + size])
        pos += size
    return chunks


class _Formatting(logging.Handler):
    """Formats every record and drops it: runs the debug logging code, prints nothing."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


DEBUG_LOGGER = logging.Logger("socketeer.fuzz", logging.DEBUG)
"""A logger with debug enabled: a protocol given it takes its slow, logging path for every
frame instead of the fast path for whole messages (``Protocol._receive_frames``)."""
DEBUG_LOGGER.addHandler(_Formatting())


@contextlib.contextmanager
def python_twins() -> Iterator[None]:
    """Run the protocol on the pure-Python twins of the C speedups (frames.py, masking.py).

    Both must behave the same: comparing a run on each is a differential test of
    ``_speedups.c``, whose own code atheris cannot see.
    """
    twins = {
        "read_frame": frames._py_read_frame,
        "read_messages": frames._py_read_messages,
        "PayloadBuffer": frames._PyPayloadBuffer,
        "apply_mask": masking._py_apply_mask,
        "encode_frame": frames._py_encode_frame,
    }
    saved = {name: getattr(base, name) for name in twins}
    for name, twin in twins.items():
        setattr(base, name, twin)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(base, name, value)


class Driver:
    """Feeds a protocol as an I/O layer does (feed, take the events, write) and records all.

    Checks the rules that hold between calls: nothing is written after the half-close
    marker ``b""``; nothing is received once the connection failed, the peer's close frame
    arrived, or the handshake failed; :attr:`~Protocol.payload_buffer` stays within the
    limit.

    Args:
        protocol: the protocol to drive.
        into: read the payload of large frames with ``receive_into`` when offered.
        max_pending: bound the whole messages parsed per read, as drivers do, and parse on
            with ``receive_data(b"")`` after taking the events; except after the last read
            when the stream ends: ``receive_eof`` then finds messages unparsed, as when the
            end of the stream comes while the application is busy.
        on_handshake: called with each Request or Response event (a server answers it).
    """

    def __init__(
        self,
        protocol: Protocol,
        *,
        into: bool = False,
        max_pending: int | None = None,
        on_handshake: Callable[[object], None] | None = None,
    ) -> None:
        self.protocol = protocol
        self.into = into
        self.on_handshake = on_handshake
        protocol.max_pending = max_pending
        self.events: list[object] = []
        self.writes: list[bytes] = []
        self.frozen_at: int | None = None  # len(events) once nothing more may arrive
        self.fed = 0

    def feed(self, chunk: bytes, *, parse_on: bool = True) -> None:
        protocol = self.protocol
        self.fed += len(chunk)
        view = memoryview(chunk)
        while True:
            payload_buffer = protocol.payload_buffer
            if not (self.into and payload_buffer is not None):
                del payload_buffer
                protocol.receive_data(bytes(view))
                break
            # What a driver does: read from the network straight into the payload.
            size = min(len(payload_buffer), len(view))
            payload_buffer[:size] = view[:size]
            del payload_buffer  # hold no view of it: the protocol releases it when full
            view = view[size:]
            protocol.receive_into(size)
            if not view:
                break
        self._drain()
        # Parse on what max_pending held back, as a driver does once the application took
        # the messages; each round parses at least one message, or clears unparsed.
        rounds = 0
        while parse_on and protocol.unparsed:
            rounds += 1
            assert rounds <= self.fed, "unparsed stays set without progress"
            protocol.receive_data(b"")
            self._drain()

    def eof(self) -> None:
        self.protocol.receive_eof()
        self._drain()

    def run(self, chunks: Sequence[bytes], eof: bool) -> Driver:
        for index, chunk in enumerate(chunks):
            self.feed(chunk, parse_on=not eof or index < len(chunks) - 1)
        if eof:
            self.eof()
        return self

    def _drain(self) -> None:
        protocol = self.protocol
        new = protocol.events_received()
        index = 0
        while index < len(new):
            event = new[index]
            index += 1
            if not isinstance(event, Frame) and self.on_handshake is not None:
                # Answering the request may parse frames that followed it.
                self.on_handshake(event)
                new += protocol.events_received()
        writes = protocol.data_to_send()
        if self.frozen_at is not None:
            assert not new, f"events received after the connection failed or closed: {new}"
        self.events += new
        if writes:
            assert b"" not in self.writes, f"writes after the half-close: {writes}"
            assert b"" not in writes[:-1], f"writes after the half-close: {writes}"
        self.writes += writes
        payload_buffer = protocol.payload_buffer
        if payload_buffer is not None:
            size = len(payload_buffer)
            del payload_buffer
            max_size = protocol.max_size
            if max_size is None:
                limit = READ_INTO_MAX
            else:
                # Compressed payloads get a little slack (base.Protocol._check_size).
                limit = max_size + (max_size >> 8) + 64
            assert size <= limit, f"payload buffer of {size} bytes exceeds {limit}"
        if (
            protocol.parser_exc is not None
            or protocol.close_rcvd is not None
            or protocol.handshake_exc is not None
            or (protocol.state is State.CONNECTING and protocol.eof_sent)
        ):
            self.frozen_at = len(self.events)


def parse_frames(data: bytes, *, mask: bool) -> list[Frame]:
    """Parse bytes that must be whole, valid frames, masked if and only if ``mask``."""
    result = []
    pos = 0
    while pos < len(data):
        header = parse_header(data, pos)
        assert header is not None, f"incomplete frame header written at {pos}"
        _, length, _, start = header
        assert start + length <= len(data), f"incomplete frame written at {pos}"
        result.append(Frame.parse(data[pos : start + length], mask=mask))
        pos = start + length
    return result


def split_writes(writes: Sequence[bytes], *, mask: bool) -> tuple[list[Frame], bool]:
    """The frames in ``writes`` and whether they end with the half-close marker."""
    eof = bool(writes) and writes[-1] == b""
    body = writes[:-1] if eof else writes
    assert b"" not in body, "writes after the half-close"
    return parse_frames(b"".join(body), mask=mask), eof


def check_received(
    events: Sequence[object], max_size: int | None
) -> tuple[list[bytes], Close | None]:
    """Received frames follow RFC 6455 section 5 and ``max_size``; return the pings' payloads
    and the close frame's, if one arrived (it is the last event)."""
    pings: list[bytes] = []
    closed: Close | None = None
    opcode: Opcode | None = None
    size = 0
    utf8 = codecs.getincrementaldecoder("utf-8")()
    for frame in events:
        assert type(frame) is Frame, f"event {frame!r} is not a Frame"
        assert closed is None, f"{frame} received after the close frame"
        assert type(frame.data) is bytes, f"payload of type {type(frame.data).__name__}"
        assert not (frame.rsv1 or frame.rsv2 or frame.rsv3), f"RSV bit set on {frame}"
        if frame.opcode in CTRL_OPCODES:
            assert frame.fin and len(frame.data) <= 125, f"invalid control frame {frame}"
            if frame.opcode is OP_PING:
                pings.append(frame.data)
            elif frame.opcode is OP_CLOSE:
                closed = Close.parse(frame.data)  # a close frame received is a valid one
            continue
        if frame.opcode is OP_CONT:
            assert opcode is not None, f"continuation {frame} without a message"
        else:
            assert opcode is None, f"{frame} interleaved with a message in progress"
            opcode = frame.opcode
            size = 0
            utf8.reset()
        size += len(frame.data)
        if max_size is not None:
            assert size <= max_size, f"message of {size} bytes received, max_size {max_size}"
        if opcode is OP_TEXT:
            utf8.decode(frame.data, frame.fin)  # raises on invalid UTF-8
        if frame.fin:
            opcode = None
    return pings, closed


def check_frames(protocol: Protocol, events: Sequence[object], writes: Sequence[bytes]) -> None:
    """The contract of an open protocol after any input (base.py's theory of operation).

    Either the connection is open (or closed abnormally after EOF) and every ping was
    answered; or the peer's close frame arrived and was echoed; or the protocol failed the
    connection because of the peer, ``parser_exc`` holds a documented exception, and the
    close frame sent carries its code (1002, 1007 or 1009).
    """
    mask = protocol.side is CLIENT
    pings, closed = check_received(events, protocol.max_size)
    sent, eof_sent = split_writes(writes, mask=mask)
    assert eof_sent is protocol.eof_sent, "eof_sent disagrees with the writes"
    for frame in sent:
        assert frame.opcode in (OP_PONG, OP_CLOSE), f"unexpected frame sent: {frame}"
        assert not (frame.rsv1 or frame.rsv2 or frame.rsv3), f"RSV bit set on sent {frame}"
    closes = [frame for frame in sent if frame.opcode is OP_CLOSE]
    assert len(closes) <= 1, f"{len(closes)} close frames sent"
    assert not closes or sent[-1] is closes[0], "frames sent after the close frame"
    pongs = [frame.data for frame in sent if frame.opcode is OP_PONG]
    assert pongs == pings, f"pings {pings} answered with pongs {pongs}"
    exc = protocol.parser_exc
    if exc is not None and not isinstance(exc, EOFError):
        # RFC 6455 section 7.1.7: failed because of the peer, with the matching code.
        assert closed is None and protocol.close_rcvd is None, f"failed after close: {exc!r}"
        code = next((c for t, c in FAILURE_CODES.items() if isinstance(exc, t)), None)
        assert code is not None, f"undocumented parser_exc {exc!r}"
        assert len(closes) == 1, f"no close frame sent after {exc!r}"
        sent_close = Close.parse(closes[0].data)
        assert sent_close.code == code, f"close code {sent_close.code} for {exc!r}"
        assert protocol.close_sent == sent_close
        assert eof_sent or protocol.side is CLIENT, "a failing server closes the connection"
    elif closed is not None:
        # RFC 6455 section 5.5.1: the peer's close frame is echoed.
        assert protocol.close_rcvd == closed
        assert len(closes) == 1 and Close.parse(closes[0].data) == closed
        assert protocol.close_rcvd_then_sent is True
        assert eof_sent or protocol.side is CLIENT, "a server closes the TCP connection first"
    else:
        assert closes == [], f"close frame sent without a reason: {closes}"
        if isinstance(exc, EOFError):
            assert protocol.state is State.CLOSED, "EOFError before the end of the stream"
    if protocol.state is State.CLOSED:
        assert eof_sent, "closed without telling the driver to close"
        expected = 1006 if closed is None else closed.code
        assert protocol.close_code == expected, f"close_code {protocol.close_code}"
        assert not protocol.receiving
    else:
        assert protocol.state is (State.CLOSING if closes else State.OPEN), protocol.state
        assert protocol.close_expected() is bool(closes)
        assert protocol.receiving is (closed is None and exc is None)


def check_misuse(protocol: Protocol, eof_rcvd: bool) -> None:
    """Local misuse raises the documented exception, and sends nothing.

    After receive_eof, receiving raises InvalidState; once a close frame was sent, so do
    the send methods (RFC 6455 section 5.5.1: nothing may follow the close frame).
    """
    if eof_rcvd:
        calls: list[Callable[[], None]] = [
            lambda: protocol.receive_data(b"\x81\x00"),
            protocol.receive_eof,
        ]
        for call in calls:
            try:
                call()
            except InvalidState:
                pass
            else:
                raise AssertionError("receiving after receive_eof did not raise InvalidState")
    if protocol.state is not State.OPEN:
        sends: list[Callable[[], None]] = [
            lambda: protocol.send_text("x"),
            lambda: protocol.send_binary(b"x"),
            lambda: protocol.send_ping(b"x"),
            lambda: protocol.send_close(1000),
        ]
        for send in sends:
            try:
                send()
            except InvalidState:
                pass
            else:
                raise AssertionError(f"sending while {protocol.state.name} did not raise")
        assert protocol.data_to_send() == [], "bytes written by a refused send"
        assert protocol.events_received() == [], "events made by a refused send"


def normalize(protocol: Protocol, driver: Driver, *, http: bool = False) -> object:
    """What a run observably did, comparable by value across runs of the same input.

    A server's HTTP response loses its ``Date`` header; frames written are parsed, since a
    client masks each with a fresh random key.
    """
    writes = driver.writes
    response: object = None
    if http and writes and writes[0]:
        parsed = Response.parse(writes[0])
        headers = [(k, v) for k, v in parsed.headers.raw_items() if k != "Date"]
        response = (parsed.status_code, parsed.reason_phrase, headers, parsed.body)
        writes = writes[1:]
    sent, eof = split_writes(writes, mask=protocol.side is CLIENT)
    exc = protocol.parser_exc
    # The close frame sent carries the reason, which must not depend on the chunking; the
    # message of a UnicodeDecodeError gives a position in the piece validated, which does.
    detail = None if isinstance(exc, UnicodeDecodeError) else str(exc)
    return (
        driver.events,
        response,
        sent,
        eof,
        protocol.state,
        protocol.close_code,
        protocol.close_reason,
        protocol.close_rcvd,
        protocol.close_sent,
        type(exc),
        detail,
        type(protocol.handshake_exc),
        str(protocol.handshake_exc),
    )


def side_of(flag: int) -> Side:
    return CLIENT if flag else SERVER


# The parts of socketeer that the targets exercise; the rest (asyncio, sync, cli, ...) is
# imported but never runs here.
SOCKETEER_CODE = ("protocol", "uri.py", "rpc/messages.py", "exceptions.py")


def instrument(stdlib: Sequence[str] = ()) -> int:
    """Instrument the functions of SOCKETEER_CODE, of the fuzz harness, and of the ``stdlib``
    modules that the code under test relies on (their branches are coverage too).

    ``atheris.instrument_all()`` instruments all loaded code, which takes minutes here;
    this takes a second or two and leaves out what cannot matter (asyncio, logging, ...).
    """
    import atheris

    import socketeer

    package = pathlib.Path(socketeer.__file__).parent
    roots = [str(package / name) for name in SOCKETEER_CODE]
    roots.append(str(pathlib.Path(__file__).parent))
    for name in stdlib:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            roots.append(str(module.__file__))
    prefixes = tuple(roots)
    functions = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, types.FunctionType) and obj.__code__.co_filename.startswith(prefixes)
    ]
    for function in functions:
        atheris.instrument_func(function)
    return len(functions)


def main(test_one_input: Callable[[bytes], None], stdlib: Sequence[str] = ()) -> None:
    """Fuzz ``test_one_input`` with atheris (the smoke test calls targets directly)."""
    import atheris

    count = instrument(stdlib)
    print(f"INFO: instrumented {count} functions", file=sys.stderr)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
