"""Frames and close payloads, byte for byte (RFC 6455 section 5)."""

from __future__ import annotations

import pytest

from socketeer.exceptions import PayloadTooBig, ProtocolError
from socketeer.protocol.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    CloseCode,
    Frame,
    is_valid_close_code,
    parse_header,
    serialize_header,
)

MASK_KEY = bytes.fromhex("37fa213d")


def assert_frame_data(frame: Frame, data: bytes, *, mask: bool) -> None:
    """Two-way check: the bytes parse to the frame and the frame serializes to the bytes."""
    assert Frame.parse(data, mask=mask) == frame
    assert frame.serialize(mask=mask, mask_key=MASK_KEY if mask else None) == data


class TestSection5_7Examples:
    def test_single_frame_unmasked_text(self) -> None:
        assert_frame_data(Frame(OP_TEXT, b"Hello"), bytes.fromhex("810548656c6c6f"), mask=False)

    def test_single_frame_masked_text(self) -> None:
        data = bytes.fromhex("818537fa213d7f9f4d5158")
        assert_frame_data(Frame(OP_TEXT, b"Hello"), data, mask=True)

    def test_fragmented_unmasked_text(self) -> None:
        assert_frame_data(
            Frame(OP_TEXT, b"Hel", fin=False), bytes.fromhex("010348656c"), mask=False
        )
        assert_frame_data(Frame(OP_CONT, b"lo"), bytes.fromhex("80026c6f"), mask=False)

    def test_unmasked_ping(self) -> None:
        assert_frame_data(Frame(OP_PING, b"Hello"), bytes.fromhex("890548656c6c6f"), mask=False)

    def test_masked_pong(self) -> None:
        data = bytes.fromhex("8a8537fa213d7f9f4d5158")
        assert_frame_data(Frame(OP_PONG, b"Hello"), data, mask=True)

    def test_256_bytes_binary_unmasked(self) -> None:
        payload = bytes(range(256))
        assert_frame_data(Frame(OP_BINARY, payload), b"\x82\x7e\x01\x00" + payload, mask=False)

    def test_64_kib_binary_unmasked(self) -> None:
        payload = b"\xab" * 65536
        header = b"\x82\x7f" + (65536).to_bytes(8, "big")
        assert_frame_data(Frame(OP_BINARY, payload), header + payload, mask=False)


class TestSection5_2Lengths:
    @pytest.mark.parametrize(
        ("length", "header"),
        [
            (0, "8200"),
            (125, "827d"),
            (126, "827e007e"),
            (65535, "827effff"),
            (65536, "827f0000000000010000"),
            (2**32, "827f0000000100000000"),
        ],
    )
    def test_minimal_length_encoding(self, length: int, header: str) -> None:
        assert serialize_header(0x82, length, None) == bytes.fromhex(header)
        assert parse_header(bytes.fromhex(header)) == (0x82, length, None, len(header) // 2)

    def test_masked_header_carries_key(self) -> None:
        header = serialize_header(0x81, 5, MASK_KEY)
        assert header == bytes.fromhex("8185") + MASK_KEY
        assert parse_header(header) == (0x81, 5, MASK_KEY, 6)

    def test_64_bit_length_with_top_bit_set(self) -> None:
        with pytest.raises(ProtocolError, match="most significant bit"):
            parse_header(b"\x82\x7f\x80" + bytes(7))

    def test_largest_64_bit_length(self) -> None:
        header = b"\x82\x7f\x7f" + b"\xff" * 7
        assert parse_header(header) == (0x82, 2**63 - 1, None, 10)

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
    def test_reserved_opcode(self, opcode: int) -> None:
        with pytest.raises(ProtocolError, match="reserved opcode"):
            parse_header(bytes([0x80 | opcode, 0]))

    def test_incomplete_headers(self) -> None:
        full = serialize_header(0x82, 70000, MASK_KEY)
        for size in range(len(full)):
            assert parse_header(full[:size]) is None
        assert parse_header(full) == (0x82, 70000, MASK_KEY, 14)

    def test_header_at_offset_with_trailing_data(self) -> None:
        data = b"xyz" + bytes.fromhex("810548656c6c6f") + b"trailing"
        assert parse_header(data, 3) == (0x81, 5, None, 5)


class TestSection5_5ControlFrames:
    def test_control_frame_too_long(self) -> None:
        with pytest.raises(ProtocolError, match="exceeds 125 bytes"):
            parse_header(b"\x89\x7e\x00\x7e")

    def test_control_frame_125_bytes(self) -> None:
        assert parse_header(b"\x89\x7d") == (0x89, 125, None, 2)

    def test_fragmented_control_frame(self) -> None:
        with pytest.raises(ProtocolError, match="fragmented control frame"):
            parse_header(b"\x09\x00")

    def test_check(self) -> None:
        Frame(OP_PING, b"x" * 125).check()
        with pytest.raises(ProtocolError):
            Frame(OP_PING, b"x" * 126).check()
        with pytest.raises(ProtocolError):
            Frame(OP_PONG, b"", fin=False).check()
        with pytest.raises(ProtocolError):
            Frame(OP_TEXT, b"", rsv2=True).check()
        Frame(OP_TEXT, b"x" * 1000, fin=False).check()


class TestFrameParse:
    def test_masking_must_match(self) -> None:
        with pytest.raises(ProtocolError, match="incorrect masking"):
            Frame.parse(bytes.fromhex("810548656c6c6f"), mask=True)
        with pytest.raises(ProtocolError, match="incorrect masking"):
            Frame.parse(bytes.fromhex("818537fa213d7f9f4d5158"), mask=False)

    def test_max_size(self) -> None:
        with pytest.raises(PayloadTooBig):
            Frame.parse(bytes.fromhex("810548656c6c6f"), mask=False, max_size=4)

    def test_incomplete_and_trailing(self) -> None:
        with pytest.raises(ProtocolError):
            Frame.parse(bytes.fromhex("810548656c6c"), mask=False)
        with pytest.raises(ProtocolError):
            Frame.parse(bytes.fromhex("810548656c6c6f00"), mask=False)
        with pytest.raises(ProtocolError):
            Frame.parse(b"\x81", mask=False)

    def test_rsv_bits_round_trip(self) -> None:
        frame = Frame(OP_TEXT, b"x", rsv1=True, rsv2=True, rsv3=True)
        assert frame.first_byte == 0xF1
        assert Frame.parse(frame.serialize(mask=False), mask=False) == frame

    def test_str(self) -> None:
        assert str(Frame(OP_TEXT, b"Hello")) == "TEXT 'Hello' [5 bytes]"
        assert str(Frame(OP_BINARY, b"\x00\x01", fin=False)) == "BINARY 00 01 [2 bytes, continued]"
        assert str(Frame(OP_CLOSE, b"\x03\xe8bye")) == "CLOSE 1000 (OK) bye [5 bytes]"
        assert str(Frame(OP_CLOSE, b"\x03")) == "CLOSE 03 [1 bytes]"
        assert str(Frame(OP_CONT, b"lo")) == "CONT 'lo' [2 bytes]"
        assert str(Frame(OP_CONT, b"\xff")) == "CONT ff [1 bytes]"


class TestSection7_4CloseCodes:
    @pytest.mark.parametrize(
        "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
    )
    def test_defined_codes_are_valid(self, code: int) -> None:
        assert is_valid_close_code(code)
        assert Close.parse(code.to_bytes(2, "big")) == Close(code, "")

    @pytest.mark.parametrize("code", [3000, 3999, 4000, 4999])
    def test_application_codes_are_valid(self, code: int) -> None:
        assert is_valid_close_code(code)

    @pytest.mark.parametrize(
        "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]
    )
    def test_other_codes_fail(self, code: int) -> None:
        assert not is_valid_close_code(code)
        with pytest.raises(ProtocolError, match="invalid close code"):
            Close.parse(code.to_bytes(2, "big"))
        with pytest.raises(ValueError, match="invalid close code"):
            Close(code, "x").check()
        if code != CloseCode.NO_STATUS_RCVD:  # Close(1005, "") stands for an empty payload
            with pytest.raises(ValueError, match="invalid close code"):
                Close(code, "").check()


class TestSection5_5_1Close:
    def test_empty_payload_is_1005(self) -> None:
        assert Close.parse(b"") == Close(CloseCode.NO_STATUS_RCVD, "")
        assert Close(CloseCode.NO_STATUS_RCVD, "").serialize() == b""

    def test_one_byte_payload(self) -> None:
        with pytest.raises(ProtocolError, match="1-byte"):
            Close.parse(b"\x03")

    def test_code_and_reason(self) -> None:
        close = Close(1001, "gone ☃")
        assert close.serialize() == b"\x03\xe9gone \xe2\x98\x83"
        assert Close.parse(close.serialize()) == close

    def test_invalid_utf8_reason(self) -> None:
        with pytest.raises(UnicodeDecodeError):
            Close.parse(b"\x03\xe8\xff")

    def test_reason_too_long(self) -> None:
        Close(1000, "x" * 123).check()
        with pytest.raises(ValueError, match="exceeds 123 bytes"):
            Close(1000, "x" * 124).check()

    def test_str(self) -> None:
        assert str(Close(1000, "")) == "1000 (OK)"
        assert str(Close(1006, "")) == "1006 (connection closed abnormally [internal])"
        assert str(Close(3000, "x")) == "3000 (registered) x"
        assert str(Close(4000, "")) == "4000 (private use)"
        assert str(Close(2000, "")) == "2000 (unknown)"
