"""The shared protocol: states, sending, receiving, closing, failing (RFC 6455 sections 5-7)."""

from __future__ import annotations

import logging
import random

import pytest

from socketeer.exceptions import InvalidState, PayloadTooBig, ProtocolError
from socketeer.protocol import base
from socketeer.protocol.base import CLIENT, SERVER, Protocol, Side, State
from socketeer.protocol.extensions.permessage_deflate import PerMessageDeflate
from socketeer.protocol.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    Frame,
    Opcode,
)

MASK_KEY = b"\x00\x00\x00\x00"
SIDES = [pytest.param(CLIENT, id="client"), pytest.param(SERVER, id="server")]


@pytest.fixture(autouse=True)
def fixed_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "new_mask", lambda: MASK_KEY)


def incoming(side: Side, frame: Frame) -> bytes:
    """The bytes of a frame as the peer of ``side`` sends it."""
    return frame.serialize(mask=side is SERVER, mask_key=MASK_KEY)


def outgoing(side: Side, frame: Frame) -> bytes:
    """The bytes of a frame as ``side`` sends it."""
    return frame.serialize(mask=side is CLIENT, mask_key=MASK_KEY)


def close_frame(side: Side, code: int, reason: str = "") -> bytes:
    return outgoing(side, Frame(OP_CLOSE, Close(code, reason).serialize()))


def assert_connection_failing(protocol: Protocol, code: int) -> None:
    writes = protocol.data_to_send()
    assert writes[0][:1] == b"\x88"
    sent = Frame.parse(writes[0], mask=protocol.side is CLIENT)
    assert Close.parse(sent.data).code == code
    assert writes[1:] == ([b""] if protocol.side is SERVER else [])
    assert protocol.state is State.CLOSING
    assert protocol.close_expected()


@pytest.mark.parametrize("side", SIDES)
class TestReceiving:
    def test_frames_whole_and_by_byte(self, side: Side) -> None:
        data = incoming(side, Frame(OP_TEXT, b"hi")) + incoming(side, Frame(OP_BINARY, b"\x01"))
        whole = Protocol(side)
        whole.receive_data(data)
        by_byte = Protocol(side)
        events = []
        for i in range(len(data)):
            by_byte.receive_data(data[i : i + 1])
            events += by_byte.events_received()
        assert (
            whole.events_received() == events == [Frame(OP_TEXT, b"hi"), Frame(OP_BINARY, b"\x01")]
        )

    @pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
    def test_caller_may_reuse_its_buffer(self, side: Side, kind: type) -> None:
        # Drivers read into one buffer and reuse it: the protocol keeps copies, not views.
        first = incoming(side, Frame(OP_TEXT, b"hi"))
        second = incoming(side, Frame(OP_BINARY, b"x" * 300))
        buffer = bytearray(first + second[:100])
        protocol = Protocol(side)
        protocol.receive_data(kind(buffer))
        buffer[:] = b"\xff" * len(buffer)
        protocol.receive_data(kind(bytearray(second[100:])))
        assert protocol.events_received() == [
            Frame(OP_TEXT, b"hi"),
            Frame(OP_BINARY, b"x" * 300),
        ]

    @pytest.mark.parametrize("size", [0, 125, 126, 4095, 4096, 65535, 65536, 300_000])
    def test_payload_sizes(self, side: Side, size: int) -> None:
        protocol = Protocol(side, max_size=None)
        payload = bytes(i % 251 for i in range(size))
        protocol.receive_data(incoming(side, Frame(OP_BINARY, payload)))
        assert protocol.events_received() == [Frame(OP_BINARY, payload)]

    def test_ping_is_answered(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(incoming(side, Frame(OP_PING, b"ping")))
        assert protocol.events_received() == [Frame(OP_PING, b"ping")]
        assert protocol.data_to_send() == [outgoing(side, Frame(OP_PONG, b"ping"))]

    def test_pong_is_an_event_and_needs_no_answer(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(incoming(side, Frame(OP_PONG, b"unsolicited")))
        assert protocol.events_received() == [Frame(OP_PONG, b"unsolicited")]
        assert protocol.data_to_send() == []

    def test_max_size_fails_before_the_payload_arrives(self, side: Side) -> None:
        protocol = Protocol(side, max_size=10)
        data = incoming(side, Frame(OP_BINARY, b"x" * 11))
        protocol.receive_data(data[:6])  # only the header, with a mask key from a client
        assert isinstance(protocol.parser_exc, PayloadTooBig)
        assert_connection_failing(protocol, 1009)

    def test_max_size_counts_fragments(self, side: Side) -> None:
        protocol = Protocol(side, max_size=10)
        protocol.receive_data(incoming(side, Frame(OP_TEXT, b"x" * 6, fin=False)))
        protocol.receive_data(incoming(side, Frame(OP_CONT, b"x" * 4, fin=False)))
        assert protocol.data_to_send() == []
        protocol.receive_data(incoming(side, Frame(OP_CONT, b"x", fin=True)))
        assert str(protocol.parser_exc) == "message of 11 bytes or more exceeds limit of 10 bytes"
        assert_connection_failing(protocol, 1009)

    def test_max_size_resets_between_messages(self, side: Side) -> None:
        protocol = Protocol(side, max_size=10)
        for _ in range(3):
            protocol.receive_data(incoming(side, Frame(OP_TEXT, b"x" * 6, fin=False)))
            protocol.receive_data(incoming(side, Frame(OP_CONT, b"x" * 4)))
        assert len(protocol.events_received()) == 6
        assert protocol.parser_exc is None

    def test_control_frames_do_not_count_for_max_size(self, side: Side) -> None:
        protocol = Protocol(side, max_size=2)
        protocol.receive_data(incoming(side, Frame(OP_PING, b"x" * 125)))
        assert protocol.parser_exc is None

    def test_data_after_eof_is_misuse(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_eof()
        with pytest.raises(InvalidState, match="after end of stream"):
            protocol.receive_data(b"x")
        with pytest.raises(InvalidState, match="twice"):
            protocol.receive_eof()

    def test_eof_in_the_middle_of_a_frame(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(incoming(side, Frame(OP_TEXT, b"hello"))[:3])
        protocol.receive_eof()
        assert isinstance(protocol.parser_exc, EOFError)
        assert protocol.state is State.CLOSED
        assert protocol.close_code == 1006
        assert protocol.close_reason == ""
        assert protocol.data_to_send() == [b""]


@pytest.mark.parametrize("side", SIDES)
class TestSending:
    def test_text_str_and_bytes(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_text("café")
        protocol.send_text(b"caf\xc3\xa9")
        expected = outgoing(side, Frame(OP_TEXT, "café".encode()))
        assert protocol.data_to_send() == [expected, expected]

    def test_binary_from_buffers(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_binary(bytearray(b"ab"))
        protocol.send_binary(memoryview(b"ab"))
        expected = outgoing(side, Frame(OP_BINARY, b"ab"))
        assert protocol.data_to_send() == [expected, expected]

    def test_large_payload_is_written_apart_from_its_header(self, side: Side) -> None:
        # Unmasked, the payload is written as it is, not copied after its header; masked, it
        # is copied anyway, once, into the same buffer as its header.
        protocol = Protocol(side, max_size=None)
        payload = b"x" * 300_000
        protocol.send_binary(payload)
        writes = protocol.data_to_send()
        if side is SERVER:
            assert writes[1] is payload
        assert len(writes) == (2 if side is SERVER else 1)
        assert b"".join(writes) == outgoing(side, Frame(OP_BINARY, payload))

    def test_fragmented_message(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_text("a", fin=False)
        with pytest.raises(InvalidState, match="underway"):
            protocol.send_binary(b"b")
        protocol.send_ping(b"in between")
        protocol.send_continuation("b", fin=False)
        protocol.send_continuation(b"c", fin=True)
        with pytest.raises(InvalidState, match="no fragmented message"):
            protocol.send_continuation(b"d", fin=True)
        assert protocol.data_to_send() == [
            outgoing(side, Frame(OP_TEXT, b"a", fin=False)),
            outgoing(side, Frame(OP_PING, b"in between")),
            outgoing(side, Frame(OP_CONT, b"b", fin=False)),
            outgoing(side, Frame(OP_CONT, b"c")),
        ]

    def test_control_payload_limit(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_pong(b"x" * 125)
        with pytest.raises(ValueError, match="exceeds 125 bytes"):
            protocol.send_ping(b"x" * 126)

    def test_send_frame(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_frame(Frame(OP_TEXT, b"a", fin=False))
        protocol.send_frame(Frame(OP_CONT, b"b"))
        protocol.send_frame(Frame(OP_PING, b"p"))
        protocol.send_frame(Frame(OP_PONG, b"p"))
        assert len(protocol.data_to_send()) == 4
        with pytest.raises(ProtocolError, match="reserved bits"):
            protocol.send_frame(Frame(OP_TEXT, b"a", rsv1=True))
        with pytest.raises(ValueError, match="invalid close code"):
            protocol.send_frame(Frame(OP_CLOSE, b"\x03\xed"))
        protocol.send_frame(Frame(OP_CLOSE, b"\x03\xe8"))
        assert protocol.close_sent == Close(1000, "")
        assert protocol.state is State.CLOSING

    def test_send_frame_empty_close(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_frame(Frame(OP_CLOSE, b""))
        assert protocol.close_sent == Close(1005, "")
        assert protocol.data_to_send() == [outgoing(side, Frame(OP_CLOSE, b""))]

    def test_nothing_but_close_after_close(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_close(1000)
        for send in (
            lambda: protocol.send_text("x"),
            lambda: protocol.send_binary(b"x"),
            lambda: protocol.send_ping(),
            lambda: protocol.send_pong(),
            lambda: protocol.send_close(1000),
        ):
            with pytest.raises(InvalidState, match="CLOSING"):
                send()

    def test_sending_while_connecting_is_misuse(self, side: Side) -> None:
        protocol = Protocol(side, state=State.CONNECTING)
        with pytest.raises(InvalidState, match="CONNECTING"):
            protocol.send_text("x")
        with pytest.raises(InvalidState, match="no handshake"):
            protocol.receive_data(b"x")


@pytest.mark.parametrize("side", SIDES)
class TestClosingHandshake:
    def test_we_close_first(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_close(1000, "done")
        assert protocol.data_to_send() == [close_frame(side, 1000, "done")]
        assert protocol.state is State.CLOSING
        assert protocol.close_expected()
        assert protocol.close_code is None
        protocol.receive_data(incoming(side, Frame(OP_CLOSE, Close(1000, "ok").serialize())))
        assert protocol.close_rcvd == Close(1000, "ok")
        assert protocol.close_rcvd_then_sent is False
        # The server closes the TCP connection first; the client waits for it.
        assert protocol.data_to_send() == ([b""] if side is SERVER else [])
        protocol.receive_eof()
        assert protocol.state is State.CLOSED
        assert (protocol.close_code, protocol.close_reason) == (1000, "ok")
        assert protocol.data_to_send() == ([] if side is SERVER else [b""])
        assert not protocol.close_expected()

    def test_peer_closes_first(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(incoming(side, Frame(OP_CLOSE, Close(1001, "bye").serialize())))
        assert protocol.events_received() == [Frame(OP_CLOSE, b"\x03\xe9bye")]
        expected = [close_frame(side, 1001, "bye")]
        assert protocol.data_to_send() == expected + ([b""] if side is SERVER else [])
        assert protocol.close_sent == Close(1001, "bye")
        assert protocol.close_rcvd_then_sent is True
        assert protocol.close_expected()

    def test_empty_close_is_echoed_empty(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(incoming(side, Frame(OP_CLOSE, b"")))
        assert protocol.data_to_send()[0] == outgoing(side, Frame(OP_CLOSE, b""))
        protocol.receive_eof()
        assert (protocol.close_code, protocol.close_reason) == (1005, "")

    def test_data_after_close_is_discarded(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(
            incoming(side, Frame(OP_CLOSE, b"\x03\xe8")) + incoming(side, Frame(OP_TEXT, b"late"))
        )
        protocol.receive_data(incoming(side, Frame(OP_PING, b"late")))
        assert protocol.events_received() == [Frame(OP_CLOSE, b"\x03\xe8")]
        assert len(protocol.data_to_send()) == (2 if side is SERVER else 1)

    def test_ping_after_our_close_is_not_answered(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_close(1000)
        protocol.data_to_send()
        protocol.receive_data(incoming(side, Frame(OP_PING, b"p")))
        assert protocol.events_received() == [Frame(OP_PING, b"p")]
        assert protocol.data_to_send() == []

    def test_messages_keep_arriving_until_the_peer_closes(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_close(1000)
        protocol.receive_data(incoming(side, Frame(OP_TEXT, b"still")))
        assert protocol.events_received() == [Frame(OP_TEXT, b"still")]

    def test_eof_without_close_is_1006(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_eof()
        assert protocol.state is State.CLOSED
        assert protocol.close_code == 1006
        assert protocol.parser_exc is None
        assert protocol.data_to_send() == [b""]

    def test_close_arguments(self, side: Side) -> None:
        protocol = Protocol(side)
        with pytest.raises(ValueError, match="reason without a code"):
            protocol.send_close(None, "why")
        with pytest.raises(ValueError, match="invalid close code"):
            protocol.send_close(1006)
        with pytest.raises(ValueError, match="exceeds 123 bytes"):
            protocol.send_close(1000, "é" * 62)
        protocol.send_close()
        assert protocol.data_to_send() == [outgoing(side, Frame(OP_CLOSE, b""))]


@pytest.mark.parametrize("side", SIDES)
class TestFailing:
    def test_fail(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.fail(1011, "keepalive ping timeout")
        assert protocol.close_sent == Close(1011, "keepalive ping timeout")
        assert_connection_failing(protocol, 1011)
        protocol.receive_data(incoming(side, Frame(OP_TEXT, b"ignored")))
        assert protocol.events_received() == []

    def test_fail_with_1006_sends_no_close_frame(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.fail(1006)
        # With no closing handshake to wait for, both sides close the TCP connection.
        assert protocol.data_to_send() == [b""]
        assert protocol.close_sent is None

    @pytest.mark.parametrize("code", [999, 1004, 1005, 2999, 5000])
    def test_fail_with_a_code_not_for_the_wire(self, side: Side, code: int) -> None:
        with pytest.raises(ValueError, match="invalid close code"):
            Protocol(side).fail(code)

    def test_fail_with_a_too_long_reason_drops_the_reason(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.fail(1011, "x" * 200)
        assert protocol.close_sent == Close(1011, "")

    def test_fail_after_close_sent(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.send_close(1000)
        protocol.data_to_send()
        protocol.fail(1002)
        assert protocol.data_to_send() == ([b""] if side is SERVER else [])

    def test_peer_fault_keeps_its_cause(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(bytes([0x83, 0x80 if side is SERVER else 0]) + b"\0" * 4)
        assert isinstance(protocol.parser_exc, ProtocolError)
        assert str(protocol.parser_exc) == "reserved opcode 0x3"
        assert_connection_failing(protocol, 1002)


class TestLogging:
    def test_debug_lines(self, caplog: pytest.LogCaptureFixture) -> None:
        logger = logging.getLogger("test.socketeer")
        logger.setLevel(logging.DEBUG)
        with caplog.at_level(logging.DEBUG, logger="test.socketeer"):
            protocol = Protocol(SERVER, logger=logger)
            protocol.receive_data(incoming(SERVER, Frame(OP_TEXT, b"hi")))
            protocol.send_close(1000)
            protocol.fail(1002)
        messages = [record.getMessage() for record in caplog.records]
        assert messages == [
            "< TEXT 'hi' [2 bytes]",
            "> CLOSE 1000 (OK) [2 bytes]",
            "= connection is CLOSING",
            "! failing connection with code 1002",
            "> EOF",
        ]

    def test_default_loggers(self) -> None:
        assert Protocol(CLIENT).logger.name == "socketeer.client"
        assert Protocol(SERVER).logger.name == "socketeer.server"


@pytest.mark.parametrize("side", SIDES)
class TestUtf8FailsFast:
    """RFC 6455 section 8.1: invalid UTF-8 fails the connection as soon as it arrives."""

    def test_inside_an_incomplete_frame(self, side: Side) -> None:
        protocol = Protocol(side)
        data = incoming(side, Frame(OP_TEXT, "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"x" * 200))
        protocol.receive_data(data[:12])
        assert protocol.data_to_send() == []
        protocol.receive_data(data[12:30])  # the invalid bytes are in this chunk
        assert isinstance(protocol.parser_exc, UnicodeDecodeError)
        assert_connection_failing(protocol, 1007)

    def test_inside_an_incomplete_continuation_frame(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(incoming(side, Frame(OP_TEXT, b"ok", fin=False)))
        data = incoming(side, Frame(OP_CONT, b"x" * 100 + b"\xed\xa0\x80" + b"x" * 100))
        protocol.receive_data(data[:90])
        assert protocol.data_to_send() == []
        protocol.receive_data(data[90:120])
        assert_connection_failing(protocol, 1007)

    @pytest.mark.parametrize("step", [1, 3, 7, 64])
    def test_valid_text_in_any_chunks(self, side: Side, step: int) -> None:
        text = "ascii κόσμε 𝄞 " * 40
        data = incoming(side, Frame(OP_TEXT, text[:200].encode(), fin=False))
        data += incoming(side, Frame(OP_PING, b"p"))
        data += incoming(side, Frame(OP_CONT, text[200:].encode()))
        data += incoming(side, Frame(OP_TEXT, text.encode()))
        data += incoming(side, Frame(OP_BINARY, b"\xff" * 300))
        protocol = Protocol(side)
        events = []
        for i in range(0, len(data), step):
            protocol.receive_data(data[i : i + step])
            events += protocol.events_received()
        assert protocol.parser_exc is None
        assert b"".join(e.data for e in events[:3] if e.opcode is not OP_PING) == text.encode()
        assert [e.opcode for e in events] == [OP_TEXT, OP_PING, OP_CONT, OP_TEXT, OP_BINARY]


@pytest.mark.parametrize("side", SIDES)
class TestMaxPending:
    """Drivers bound what one read can queue: parsing stops after max_pending messages."""

    def test_parsing_stops_and_resumes(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.max_pending = 2
        frames = [Frame(OP_TEXT, b"%d" % i) for i in range(5)]
        protocol.receive_data(b"".join(incoming(side, frame) for frame in frames))
        assert protocol.events_received() == frames[:2]
        assert protocol.unparsed
        protocol.receive_data(b"")
        assert protocol.events_received() == frames[2:4]
        protocol.receive_data(b"")
        assert protocol.events_received() == frames[4:]
        assert not protocol.unparsed

    def test_fragments_and_control_frames_do_not_count(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.max_pending = 1
        frames = [
            Frame(OP_BINARY, b"a", fin=False),
            Frame(OP_PING, b"p"),
            Frame(OP_CONT, b"b"),
            Frame(OP_TEXT, b"c"),
        ]
        protocol.receive_data(b"".join(incoming(side, frame) for frame in frames))
        assert protocol.events_received() == frames[:3]
        assert protocol.unparsed

    def test_eof_parses_what_waited(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.max_pending = 1
        frames = [Frame(OP_TEXT, b"%d" % i) for i in range(3)]
        protocol.receive_data(b"".join(incoming(side, frame) for frame in frames))
        protocol.receive_eof()
        assert protocol.events_received() == frames
        assert protocol.parser_exc is None
        assert not protocol.unparsed
        assert protocol.close_code == 1006


@pytest.mark.parametrize("side", SIDES)
class TestPayloadInPlace:
    """A large frame arriving in pieces is read into its payload (``payload_buffer``)."""

    SIZE = base._READ_INTO_ABOVE + 1000

    @staticmethod
    def wire(side: Side, frame: Frame) -> bytes:
        # A mask that changes the bytes, unlike the tests' fixed MASK_KEY.
        return frame.serialize(mask=side is SERVER, mask_key=b"\x37\xfa\x21\x3d")

    def payload(self) -> bytes:
        return bytes(i % 251 for i in range(self.SIZE))

    def test_read_into_the_view(self, side: Side) -> None:
        frame = Frame(OP_BINARY, self.payload())
        data = self.wire(side, frame) + incoming(side, Frame(OP_TEXT, b"next"))
        protocol = Protocol(side)
        protocol.receive_data(data[:1000])
        view = protocol.payload_buffer
        assert view is not None and protocol.events_received() == []
        pos = 1000
        while protocol.payload_buffer is not None:
            view = protocol.payload_buffer
            size = min(len(view), 7000)
            view[:size] = data[pos : pos + size]
            pos += size
            protocol.receive_into(size)
        assert protocol.events_received() == [frame]
        protocol.receive_data(data[pos:])
        assert protocol.events_received() == [Frame(OP_TEXT, b"next")]
        assert protocol.parser_exc is None

    @pytest.mark.parametrize("step", [999, 65536])
    def test_receive_data_fills_it_too(self, side: Side, step: int) -> None:
        frames = [
            Frame(OP_BINARY, self.payload(), fin=False),
            Frame(OP_PING, b"p"),
            Frame(OP_CONT, self.payload()[::-1]),
            Frame(OP_TEXT, b"next"),
        ]
        data = b"".join(self.wire(side, frame) for frame in frames)
        protocol = Protocol(side)
        events = []
        used = False
        for i in range(0, len(data), step):
            protocol.receive_data(data[i : i + step])
            used = used or protocol.payload_buffer is not None
            events += protocol.events_received()
        assert used
        assert events == frames
        assert protocol.payload_buffer is None

    def test_not_for_uncompressed_text(self, side: Side) -> None:
        # Its UTF-8 is checked as it arrives (TestUtf8FailsFast).
        protocol = Protocol(side)
        protocol.receive_data(self.wire(side, Frame(OP_TEXT, b"x" * self.SIZE))[:1000])
        assert protocol.payload_buffer is None

    def test_not_for_small_frames(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(self.wire(side, Frame(OP_BINARY, b"x" * 60_000))[:1000])
        assert protocol.payload_buffer is None

    def test_not_ahead_of_a_huge_payload_without_max_size(self, side: Side) -> None:
        protocol = Protocol(side, max_size=None)
        header = b"\x82" + (b"\xff" if side is SERVER else b"\x7f") + (2**40).to_bytes(8, "big")
        protocol.receive_data(header + (b"\x00" * 4 if side is SERVER else b"") + b"x" * 10)
        assert protocol.payload_buffer is None
        assert protocol.parser_exc is None

    def test_too_big_fails_before_it(self, side: Side) -> None:
        protocol = Protocol(side, max_size=self.SIZE - 1)
        protocol.receive_data(self.wire(side, Frame(OP_BINARY, self.payload()))[:1000])
        assert protocol.payload_buffer is None
        assert isinstance(protocol.parser_exc, PayloadTooBig)
        assert_connection_failing(protocol, 1009)

    def test_eof_in_the_middle(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(self.wire(side, Frame(OP_BINARY, self.payload()))[:1000])
        protocol.receive_eof()
        assert protocol.payload_buffer is None
        assert isinstance(protocol.parser_exc, EOFError)
        assert protocol.close_code == 1006
        with pytest.raises(InvalidState):
            protocol.receive_into(0)

    def test_failing_drops_it(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(self.wire(side, Frame(OP_BINARY, self.payload()))[:1000])
        view = protocol.payload_buffer
        assert view is not None
        protocol.fail(1011)
        assert protocol.payload_buffer is None
        view[:10] = b"x" * 10  # a driver that read meanwhile: harmless
        protocol.receive_into(10)
        assert protocol.events_received() == []

    def test_receive_into_checks_its_argument(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_data(self.wire(side, Frame(OP_BINARY, self.payload()))[:1000])
        view = protocol.payload_buffer
        assert view is not None
        with pytest.raises(ValueError, match="nbytes must be between 0 and"):
            protocol.receive_into(len(view) + 1)
        with pytest.raises(ValueError):
            protocol.receive_into(-1)
        protocol.receive_into(0)
        assert protocol.payload_buffer is view

    def test_receive_into_without_a_payload_does_nothing(self, side: Side) -> None:
        protocol = Protocol(side)
        protocol.receive_into(0)
        assert protocol.events_received() == []

    def test_reserved_bits_still_fail(self, side: Side) -> None:
        data = self.wire(side, Frame(OP_BINARY, self.payload(), rsv2=True))
        protocol = Protocol(side)
        protocol.receive_data(data[:1000])
        assert protocol.payload_buffer is not None
        protocol.receive_data(data[1000:])
        assert isinstance(protocol.parser_exc, ProtocolError)
        assert_connection_failing(protocol, 1002)

    @pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
    def test_compressed(self, side: Side, opcode: Opcode) -> None:
        # Random bytes do not compress: the compressed frame is large too.
        message = random.Random(42).randbytes(self.SIZE)
        if opcode is OP_TEXT:  # hexadecimal compresses by about half
            message = message.hex().encode()
        sender = PerMessageDeflate(False, False, 15, 15)
        compressed = sender.encode(Frame(opcode, message))
        assert len(compressed.data) > base._READ_INTO_ABOVE
        protocol = Protocol(side)
        protocol.extensions = [PerMessageDeflate(False, False, 15, 15)]
        data = self.wire(side, compressed)
        protocol.receive_data(data[:1000])
        assert protocol.payload_buffer is not None
        protocol.receive_data(data[1000:])
        assert protocol.events_received() == [Frame(opcode, message)]
