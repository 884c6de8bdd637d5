"""The C speedups of frames.py and their pure-Python references agree on every input."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from socketeer.protocol import frames, masking
from socketeer.protocol.frames import Frame, Opcode

ReadFrame = Callable[[bytes | bytearray, int, bool], "tuple[int, bytes, int] | None"]
ReadMessages = Callable[[bytes | bytearray, int, bool, int, int, "list[object]"], int]
EncodeFrame = Callable[[int, bytes, "bytes | None"], bytes]

READERS = [pytest.param(frames._py_read_frame, id="python")]
MESSAGE_READERS = [pytest.param(frames._py_read_messages, id="python")]
ENCODERS = [pytest.param(frames._py_encode_frame, id="python")]
PAYLOAD_BUFFERS: list[object] = [pytest.param(frames._PyPayloadBuffer, id="python")]
try:
    from socketeer.protocol import _speedups
except ImportError:  # pragma: no cover - depends on the build
    if os.environ.get("CI") == "true":
        raise
    c_read_frame = c_encode_frame = c_read_messages = None
else:
    c_read_frame, c_encode_frame = _speedups.read_frame, _speedups.encode_frame
    c_read_messages = _speedups.read_messages
    # frames.py does this on import, unless SOCKETEER_NO_SPEEDUPS=1 (make test's second pass).
    _speedups.set_frame_types(Frame, Opcode.TEXT, Opcode.BINARY)
    READERS.append(pytest.param(c_read_frame, id="c"))
    MESSAGE_READERS.append(pytest.param(c_read_messages, id="c"))
    ENCODERS.append(pytest.param(c_encode_frame, id="c"))
    PAYLOAD_BUFFERS.append(pytest.param(_speedups.PayloadBuffer, id="c"))

MASK_KEY = b"\x37\xfa\x21\x3d"


@pytest.mark.parametrize("read_frame", READERS)
class TestReadFrame:
    @pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
    @pytest.mark.parametrize("masked", [False, True])
    def test_whole_frame(self, read_frame: ReadFrame, size: int, masked: bool) -> None:
        payload = bytes(i % 251 for i in range(size))
        wire = Frame(Opcode.BINARY, payload).serialize(mask=masked, mask_key=MASK_KEY)
        buffer = bytearray(b"junk" + wire + b"\x81")
        assert read_frame(buffer, 4, masked) == (0x82, payload, 4 + len(wire))

    @pytest.mark.parametrize("masked", [False, True])
    def test_incomplete_frame(self, read_frame: ReadFrame, masked: bool) -> None:
        wire = Frame(Opcode.TEXT, b"x" * 300).serialize(mask=masked, mask_key=MASK_KEY)
        for cut in range(len(wire)):
            assert read_frame(bytearray(wire[:cut]), 0, masked) is None

    @pytest.mark.parametrize(
        "wire",
        [
            pytest.param(b"\x83\x00", id="reserved opcode"),
            pytest.param(b"\x8b\x00", id="reserved control opcode"),
            pytest.param(b"\x09\x00", id="fragmented ping"),
            pytest.param(b"\x89\x7e\x00\x7e" + b"x" * 126, id="long ping"),
            pytest.param(b"\x82\x7f\x80" + b"\x00" * 7, id="64-bit length top bit"),
        ],
    )
    def test_header_to_reject(self, read_frame: ReadFrame, wire: bytes) -> None:
        assert read_frame(bytearray(wire), 0, False) is None

    def test_incorrect_masking(self, read_frame: ReadFrame) -> None:
        unmasked = Frame(Opcode.TEXT, b"hi").serialize(mask=False)
        masked = Frame(Opcode.TEXT, b"hi").serialize(mask=True, mask_key=MASK_KEY)
        assert read_frame(bytearray(unmasked), 0, True) is None
        assert read_frame(bytearray(masked), 0, False) is None

    def test_position_out_of_range(self, read_frame: ReadFrame) -> None:
        assert read_frame(bytearray(b"\x81\x00"), 2, False) is None


def wire(*frames_: Frame, masked: bool = True) -> bytearray:
    return bytearray(b"".join(f.serialize(mask=masked, mask_key=MASK_KEY) for f in frames_))


@pytest.mark.parametrize("read_messages", MESSAGE_READERS)
class TestReadMessages:
    @pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
    @pytest.mark.parametrize("masked", [False, True])
    def test_whole_messages(self, read_messages: ReadMessages, size: int, masked: bool) -> None:
        text = Frame(Opcode.TEXT, "é".encode() * (size // 2))
        binary = Frame(Opcode.BINARY, bytes(i % 251 for i in range(size)))
        buffer = b"junk" + wire(text, binary, masked=masked)
        events: list[object] = ["before"]
        assert read_messages(buffer, 4, masked, -1, -1, events) == len(buffer)
        assert events == ["before", text, binary]
        assert all(type(e) is Frame for e in events[1:])

    @pytest.mark.parametrize(
        "stop",
        [
            pytest.param(Frame(Opcode.PING, b"x"), id="control frame"),
            pytest.param(Frame(Opcode.TEXT, b"x", fin=False), id="first fragment"),
            pytest.param(Frame(Opcode.CONT, b"x"), id="continuation"),
            pytest.param(Frame(Opcode.BINARY, b"x", rsv1=True), id="RSV1"),
            pytest.param(Frame(Opcode.TEXT, b"\xff"), id="invalid UTF-8"),
            pytest.param(Frame(Opcode.TEXT, b"\xe2\x82"), id="truncated UTF-8"),
            pytest.param(Frame(Opcode.BINARY, b"x" * 11), id="larger than max_size"),
        ],
    )
    def test_stops_before_anything_else(self, read_messages: ReadMessages, stop: Frame) -> None:
        first = Frame(Opcode.BINARY, b"0123456789")
        buffer = wire(first, stop, Frame(Opcode.BINARY, b"after"))
        events: list[object] = []
        assert read_messages(buffer, 0, True, 10, -1, events) == len(wire(first))
        assert events == [first]

    def test_stops_at_incorrect_masking(self, read_messages: ReadMessages) -> None:
        buffer = wire(Frame(Opcode.BINARY, b"x"), masked=False)
        events: list[object] = []
        assert read_messages(buffer, 0, True, -1, -1, events) == 0
        assert events == []

    def test_stops_at_limit(self, read_messages: ReadMessages) -> None:
        buffer = wire(*[Frame(Opcode.BINARY, bytes([i])) for i in range(5)])
        events: list[object] = []
        assert read_messages(buffer, 0, True, -1, 3, events) == 3 * 7
        assert [e.data for e in events] == [b"\x00", b"\x01", b"\x02"]  # type: ignore[attr-defined]

    def test_stops_at_incomplete_frame(self, read_messages: ReadMessages) -> None:
        whole = wire(Frame(Opcode.TEXT, b"a"), Frame(Opcode.BINARY, b"x" * 300))
        for cut in range(len(whole)):
            events: list[object] = []
            end = read_messages(whole[:cut], 0, True, -1, -1, events)
            assert (end, len(events)) == ((7, 1) if cut >= 7 else (0, 0))

    def test_position_out_of_range(self, read_messages: ReadMessages) -> None:
        if read_messages is frames._py_read_messages:
            assert read_messages(bytearray(b"\x81\x00"), 2, True, -1, -1, []) == 2
        else:
            with pytest.raises(ValueError, match="pos out of range"):
                read_messages(bytearray(b"\x81\x00"), 3, True, -1, -1, [])


@pytest.mark.parametrize("encode_frame", ENCODERS)
class TestEncodeFrame:
    @pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
    @pytest.mark.parametrize("mask_key", [None, MASK_KEY])
    def test_matches_frame_serialize(
        self, encode_frame: EncodeFrame, size: int, mask_key: bytes | None
    ) -> None:
        payload = bytes(i % 251 for i in range(size))
        expected = Frame(Opcode.TEXT, payload, fin=False).serialize(
            mask=mask_key is not None, mask_key=mask_key
        )
        assert encode_frame(0x01, payload, mask_key) == expected

    def test_bad_mask_key(self, encode_frame: EncodeFrame) -> None:
        with pytest.raises(ValueError, match="4 bytes"):
            encode_frame(0x81, b"hi", b"abc")


@pytest.mark.parametrize("payload_buffer", PAYLOAD_BUFFERS)
class TestPayloadBuffer:
    def test_fill_then_take(self, payload_buffer: type[frames._PyPayloadBuffer]) -> None:
        buffer = payload_buffer(5)
        with buffer.view() as view:
            view[:] = b"hello"
        taken = buffer.take()
        assert taken == b"hello" and type(taken) is bytes

    def test_unmask(self, payload_buffer: type[frames._PyPayloadBuffer]) -> None:
        payload = bytes(range(70))
        buffer = payload_buffer(70)
        with buffer.view() as view:
            view[:] = masking.apply_mask(payload, MASK_KEY)
        buffer.unmask(MASK_KEY)
        assert buffer.take() == payload

    def test_bad_mask(self, payload_buffer: type[frames._PyPayloadBuffer]) -> None:
        with pytest.raises(ValueError, match="4 bytes"):
            payload_buffer(8).unmask(b"abc")

    def test_taken_twice(self, payload_buffer: type[frames._PyPayloadBuffer]) -> None:
        buffer = payload_buffer(2)
        buffer.take()
        with pytest.raises(BufferError, match="payload was taken"):
            buffer.take()
        with pytest.raises(BufferError):
            buffer.view()

    def test_taken_while_viewed_is_a_copy(
        self, payload_buffer: type[frames._PyPayloadBuffer]
    ) -> None:
        buffer = payload_buffer(2)
        view = buffer.view()
        view[:] = b"ab"
        taken = buffer.take()
        view[:] = b"xy"  # too late to change what was taken
        assert taken == b"ab"

    @pytest.mark.parametrize("size", [-1, 0, 1])
    def test_too_small(self, payload_buffer: type[frames._PyPayloadBuffer], size: int) -> None:
        # Bytes objects of 0 or 1 byte may be shared singletons: never written in place.
        with pytest.raises(ValueError, match="at least 2"):
            payload_buffer(size)


@pytest.mark.skipif(c_read_frame is None, reason="the C speedups are not built")
class TestTwins:
    @given(st.binary(max_size=300), st.integers(0, 20), st.booleans())
    def test_read_frame(self, data: bytes, pos: int, masked: bool) -> None:
        pos = min(pos, len(data))
        assert c_read_frame is not None
        assert c_read_frame(bytearray(data), pos, masked) == frames._py_read_frame(
            bytearray(data), pos, masked
        )

    @given(
        st.integers(0, 255), st.binary(max_size=300), st.none() | st.binary(min_size=4, max_size=4)
    )
    def test_encode_frame(self, first_byte: int, data: bytes, mask_key: bytes | None) -> None:
        assert c_encode_frame is not None
        assert c_encode_frame(first_byte, data, mask_key) == frames._py_encode_frame(
            first_byte, data, mask_key
        )

    @given(
        st.lists(
            st.tuples(
                st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA]),
                st.binary(max_size=140) | st.text(max_size=40).map(str.encode),
                st.booleans(),
                st.booleans(),
            ),
            max_size=6,
        ),
        st.booleans(),
        st.integers(0, 10),
        st.integers(-1, 150),
        st.integers(-1, 6),
    )
    def test_read_messages(
        self,
        specs: list[tuple[int, bytes, bool, bool]],
        masked: bool,
        cut: int,
        max_size: int,
        limit: int,
    ) -> None:
        assert c_read_messages is not None
        data = bytearray()
        for opcode, payload, fin, rsv1 in specs:
            first_byte = opcode | (0x80 if fin else 0) | (0x40 if rsv1 else 0)
            data += frames._py_encode_frame(first_byte, payload, MASK_KEY if masked else None)
        data = data[: max(len(data) - cut, 0)]
        c_events: list[object] = []
        py_events: list[object] = []
        c_end = c_read_messages(data, 0, masked, max_size, limit, c_events)
        py_end = frames._py_read_messages(data, 0, masked, max_size, limit, py_events)
        assert (c_end, c_events) == (py_end, py_events)
