"""Fuzz target: the frame parser of the sans-I/O protocol, in OPEN state, without extensions.

Input layout (``_harness.Input``)::

    byte 0   flags: bit 0     receiving side: 0 server (frames must be masked), 1 client
                    bits 1-3  max_size: MAX_SIZES[n]
                    bit 4     receive_eof() after the last byte
                    bit 5     the chunked run sets max_pending = 1 and parses on with
                              receive_data(b"")
                    bit 6     the chunked run reads large payloads with receive_into()
                    bit 7     the chunked run uses the pure-Python twins of the C speedups
                              (when max_size is not None)
    byte 1   bits 0-5 chunking seed (_harness.split); bit 6 the chunked run logs at debug
             level (the slow path for every frame); bit 7 structured mode
    rest     raw mode: the bytes received;
             structured mode: frames to build (see ``build``), each as a descriptor byte
             (bits 0-3 opcode, bit 4 FIN, bit 5 flip RSV1, bit 6 wrong masking, bit 7
             compress the message, with permessage-deflate), a length byte (under 240: that
             many payload bytes follow; 240-255: a payload of (n - 239) * 8 KiB made from
             the 4 bytes that follow, repeated or, when the first has its high bit set, as
             the seed of random bytes), then the payload

Checks, beyond "no exception out of receive_data or receive_eof": the contract of
``_harness.check_frames`` (events are valid frames within max_size; pings answered; a failure
closes with the code of its documented cause; a close is echoed; nothing after the
half-close; nothing received after failing) and ``check_misuse``; the same outcome when the
bytes arrive in random chunks, through the other driver paths and the Python twins; and, in
structured mode, when every frame built follows RFC 6455 and RFC 7692 and fits max_size:
no failure, and exactly those frames received, decompressed.
"""

from __future__ import annotations

import contextlib
import random

from _harness import (
    CHUNKING_LIMIT,
    DEBUG_LOGGER,
    Driver,
    Input,
    check_frames,
    check_misuse,
    main,
    normalize,
    python_twins,
    side_of,
    split,
)

from socketeer.protocol.base import MAX_SIZE, SERVER, Protocol, Side
from socketeer.protocol.extensions.permessage_deflate import PerMessageDeflate
from socketeer.protocol.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Frame,
    Opcode,
    is_valid_close_code,
)

MAX_SIZES = (MAX_SIZE, None, 0, 1, 125, 126, 1000, 65_536)


def new_protocol(
    side: Side, max_size: int | None, deflate: bytes | None, debug: bool = False
) -> Protocol:
    protocol = Protocol(side, max_size=max_size, logger=DEBUG_LOGGER if debug else None)
    if deflate is not None:
        protocol.extensions = [deflate_extension(deflate[0])]
    return protocol


def deflate_extension(config: int) -> PerMessageDeflate:
    """A negotiated permessage-deflate, its agreed parameters read from one byte::

    bit 0 remote_no_context_takeover, bit 1 local_no_context_takeover,
    bits 2-4 remote_max_window_bits - 8, bits 5-7 local_max_window_bits - 8
    """
    return PerMessageDeflate(
        remote_no_context_takeover=bool(config & 1),
        local_no_context_takeover=bool(config & 2),
        remote_max_window_bits=8 + (config >> 2 & 7),
        local_max_window_bits=8 + (config >> 5 & 7),
    )


# What a receiver delivers for a frame: opcode, FIN, payload (decompressed).
Expected = list[tuple[int, bool, bytes]]

MASK_KEY = b"\x37\xfa\x21\x3d"
# Large payloads take 6 bytes of input: stop building past this, to keep runs short.
MAX_BUILT = 2_097_152
DATA = (OP_CONT, OP_TEXT, OP_BINARY)
CONTROL = (OP_CLOSE, OP_PING, OP_PONG)


def read_payload(source: Input) -> bytes:
    length = source.byte()
    if length < 240:
        return bytes(source.byte() for _ in range(length))
    size = (length - 239) * 8192
    pattern = bytes(source.byte() for _ in range(4))
    if pattern[0] & 0x80:
        return random.Random(pattern).randbytes(size)
    return (pattern * (size // 4))[:size]


def build(
    source: Input, side: Side, max_size: int | None, config: bytes | None
) -> tuple[bytes, Expected | None]:
    """The frames the rest of ``source`` describes, as the peer of ``side`` sends them, and,
    if every one is valid, the frames ``side`` must receive (see the module's docstring).

    With permessage-deflate, the peer compresses with the agreed parameters: its window is
    the receiver's remote window, and it resets its compressor if the receiver expects so.
    """
    sender = None
    if config is not None:
        sender = PerMessageDeflate(
            remote_no_context_takeover=False,
            local_no_context_takeover=bool(config[0] & 1),
            remote_max_window_bits=15,
            local_max_window_bits=8 + (config[0] >> 2 & 7),
        )
    masked = side is SERVER
    stream = bytearray()
    expected: Expected | None = []
    message: bytearray | None = None  # the data message in progress
    text = False
    closed = False
    while source.pos < len(source.data) and len(stream) < MAX_BUILT:
        descriptor = source.byte()
        payload = read_payload(source)
        code, fin = descriptor & 0x0F, bool(descriptor & 0x10)
        opcode = Opcode(code) if code in Opcode._value2member_map_ else code
        frame = Frame(opcode, payload, fin)  # type: ignore[arg-type]
        if sender is not None and code in DATA:
            frame = sender.encode(frame, compress=bool(descriptor & 0x80))
        if descriptor & 0x20:
            frame = frame._replace(rsv1=not frame.rsv1)
        stream += frame.serialize(mask=masked ^ bool(descriptor & 0x40), mask_key=MASK_KEY)
        if expected is None or closed:
            continue  # invalid already, or discarded after the close frame
        valid = not descriptor & 0x60 and code in DATA + CONTROL
        if code in CONTROL:
            valid = valid and fin and len(payload) <= 125
            if code == OP_CLOSE:
                valid = valid and valid_close(payload)
                closed = True
        elif code == OP_CONT:
            valid = valid and message is not None
        else:
            valid = valid and message is None
            message, text = bytearray(), code == OP_TEXT
        if valid and code in DATA:
            assert message is not None
            message += payload
            valid = max_size is None or len(message) <= max_size
            if fin:
                valid = valid and (not text or utf8(bytes(message)))
                message = None
        expected = expected + [(code, fin, payload)] if valid else None
    if expected is not None and message is not None and text and not utf8(bytes(message)):
        expected = None  # an unfinished text message must be valid so far (conservatively)
    return bytes(stream), expected


def valid_close(payload: bytes) -> bool:
    if not payload:
        return True
    if len(payload) < 2 or not is_valid_close_code(int.from_bytes(payload[:2], "big")):
        return False
    return utf8(payload[2:])


def utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def check_stream(data: bytes, *, deflate: bool) -> None:
    """Run one input: whole on the default path, then chunked on the path the flags pick."""
    source = Input(data)
    flags = source.byte()
    seed = source.byte()
    config = bytes([source.byte()]) if deflate else None
    side = side_of(flags & 1)
    max_size = MAX_SIZES[flags >> 1 & 7]
    eof = bool(flags & 0x10)
    if seed & 0x80:
        stream, expected = build(source, side, max_size, config)
    else:
        stream, expected = source.rest(), None

    protocol = new_protocol(side, max_size, config)
    whole = Driver(protocol).run([stream], eof)
    check_frames(protocol, whole.events, whole.writes)
    if expected is not None:
        # Valid frames are accepted, and delivered as they were sent.
        assert protocol.parser_exc is None, f"valid frames failed: {protocol.parser_exc!r}"
        received = [(f.opcode, f.fin, f.data) for f in whole.events]  # type: ignore[attr-defined]
        assert received == expected, "valid frames received differently"
    outcome = normalize(protocol, whole)
    check_misuse(protocol, eof)

    if len(stream) > CHUNKING_LIMIT:
        return
    # Without max_size, the Python twin of PayloadBuffer zero-fills up to 64 MiB for a frame
    # header alone, 80 ms a time: that would slow fuzzing down for nothing new.
    use_twins = flags & 0x80 and max_size is not None
    twins = python_twins() if use_twins else contextlib.nullcontext()
    with twins:
        protocol = new_protocol(side, max_size, config, debug=bool(seed & 0x40))
        chunked = Driver(
            protocol, into=bool(flags & 0x40), max_pending=1 if flags & 0x20 else None
        ).run(split(stream, seed & 0x3F), eof)
    check_frames(protocol, chunked.events, chunked.writes)
    assert normalize(protocol, chunked) == outcome, "the outcome depends on the chunking"


def TestOneInput(data: bytes) -> None:
    check_stream(data, deflate=False)


if __name__ == "__main__":
    main(TestOneInput)
