"""Frames and close payloads: the values of RFC 6455 section 5, and their wire format.

.. code-block:: text

      0                   1                   2                   3
      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
     +-+-+-+-+-------+-+-------------+-------------------------------+
     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
     |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
     |N|V|V|V|       |S|             |   (if payload len==126/127)   |
     | |1|2|3|       |K|             |                               |
     +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
     |     Extended payload length continued, if payload len == 127  |
     + - - - - - - - - - - - - - - - +-------------------------------+
     |                               |Masking-key, if MASK set to 1  |
     +-------------------------------+-------------------------------+
     | Masking-key (continued)       |          Payload Data         |
     +-------------------------------- - - - - - - - - - - - - - - - +

:func:`parse_header` reads the fixed part; :class:`Frame` and :class:`Close` are the values,
each with ``parse`` and ``serialize``. The incremental reading of a stream of frames is
:class:`~socketeer.protocol.base.Protocol`'s job.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import NamedTuple

from ..exceptions import PayloadTooBig, ProtocolError
from ..typedefs import BytesLike
from . import masking
from .masking import SPEEDUPS, apply_mask
from .utf8 import validate_utf8

__all__ = [
    "Opcode",
    "OP_CONT",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "DATA_OPCODES",
    "CTRL_OPCODES",
    "CloseCode",
    "Frame",
    "Close",
    "is_valid_close_code",
    "parse_header",
    "serialize_header",
    "read_frame",
    "read_messages",
    "encode_frame",
    "MAX_CONTROL_PAYLOAD",
]


class Opcode(enum.IntEnum):
    """Opcode values of RFC 6455 section 5.2 (%x3-7 and %xB-F are reserved)."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


OP_CONT = Opcode.CONT
OP_TEXT = Opcode.TEXT
OP_BINARY = Opcode.BINARY
OP_CLOSE = Opcode.CLOSE
OP_PING = Opcode.PING
OP_PONG = Opcode.PONG

DATA_OPCODES = frozenset({OP_CONT, OP_TEXT, OP_BINARY})
CTRL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

# Indexed by the 4-bit opcode; None marks the reserved values.
_OPCODES: tuple[Opcode | None, ...] = tuple(
    Opcode(value) if value in Opcode._value2member_map_ else None for value in range(16)
)

MAX_CONTROL_PAYLOAD = 125
"""RFC 6455 section 5.5: "All control frames MUST have a payload length of 125 bytes or less"."""


class CloseCode(enum.IntEnum):
    """Close codes of RFC 6455 section 7.4.1 and the IANA registry, with their RFC names."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_FRAME_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


_CLOSE_CODE_EXPLANATIONS: dict[int, str] = {
    1000: "OK",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received [internal]",
    1006: "connection closed abnormally [internal]",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "extension is required",
    1011: "unexpected error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure [internal]",
}

# RFC 6455 section 7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close
# control frame by an endpoint"; 1004 is reserved; 0-999 are not used; 1016-2999 are for
# this and future RFCs, none of which defines them yet; 3000-4999 are for libraries,
# frameworks and applications.
_WIRE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)})


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame on the wire."""
    return code in _WIRE_CLOSE_CODES or 3000 <= code < 5000


_pack_BB = struct.Struct("!BB").pack
_pack_BBH = struct.Struct("!BBH").pack
_pack_BBQ = struct.Struct("!BBQ").pack
_unpack_H = struct.Struct("!H").unpack_from
_unpack_Q = struct.Struct("!Q").unpack_from

FIN = 0x80
RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10
MASK = 0x80


def serialize_header(first_byte: int, length: int, mask_key: bytes | None) -> bytes:
    """Build a frame header for a payload of ``length`` bytes.

    Args:
        first_byte: FIN, RSV1-3 and the opcode, as on the wire.
        length: the payload length.
        mask_key: the 4-byte masking key, or ``None`` for an unmasked frame.
    """
    # RFC 6455 section 5.2: "the minimal number of bytes MUST be used to encode the length".
    if mask_key is None:
        if length < 126:
            return _pack_BB(first_byte, length)
        if length < 0x10000:
            return _pack_BBH(first_byte, 126, length)
        return _pack_BBQ(first_byte, 127, length)
    if length < 126:
        return _pack_BB(first_byte, MASK | length) + mask_key
    if length < 0x10000:
        return _pack_BBH(first_byte, MASK | 126, length) + mask_key
    return _pack_BBQ(first_byte, MASK | 127, length) + mask_key


def parse_header(buffer: BytesLike, pos: int = 0) -> tuple[int, int, bytes | None, int] | None:
    """Read a frame header at ``pos`` in ``buffer``.

    Checks what the header alone can tell: the opcode is not reserved, the 64-bit length has
    its most significant bit clear, and control frames are final and short. The caller checks
    masking, RSV bits and sizes, which depend on the connection.

    Returns:
        ``(first_byte, payload_length, mask_key, payload_start)``, where ``mask_key`` is
        ``None`` for an unmasked frame; or ``None`` when ``buffer`` does not hold the whole
        header yet.

    Raises:
        ProtocolError: if the header breaks RFC 6455 section 5.
    """
    available = len(buffer) - pos
    if available < 2:
        return None
    first_byte = buffer[pos]
    second_byte = buffer[pos + 1]
    opcode = first_byte & 0x0F
    # RFC 6455 section 5.2: "If an unknown opcode is received, the receiving endpoint MUST
    # _Fail the WebSocket Connection_."
    if _OPCODES[opcode] is None:
        raise ProtocolError(f"reserved opcode {opcode:#x}")
    length = second_byte & 0x7F
    start = pos + 2
    if opcode >= 8:
        # RFC 6455 section 5.4: "Control frames themselves MUST NOT be fragmented." and
        # section 5.5: "All control frames MUST have a payload length of 125 bytes or less".
        if not first_byte & FIN:
            raise ProtocolError("fragmented control frame")
        if length > MAX_CONTROL_PAYLOAD:
            raise ProtocolError(f"control frame with {length} bytes exceeds 125 bytes")
    elif length == 126:
        if available < 4:
            return None
        (length,) = _unpack_H(buffer, start)
        start += 2
    elif length == 127:
        if available < 10:
            return None
        (length,) = _unpack_Q(buffer, start)
        # RFC 6455 section 5.2: "the most significant bit MUST be 0".
        if length >> 63:
            raise ProtocolError("payload length with its most significant bit set")
        start += 8
    # The minimal-length rule binds the sender; a receiver gains nothing by enforcing it.
    if second_byte & MASK:
        if len(buffer) < start + 4:
            return None
        return first_byte, length, bytes(buffer[start : start + 4]), start + 4
    return first_byte, length, None, start


def _py_read_frame(buffer: BytesLike, pos: int, masked: bool) -> tuple[int, bytes, int] | None:
    """Read a whole frame at ``pos`` in ``buffer``: the common case of parsing, in one call.

    Returns:
        ``(first_byte, payload, end)``, the payload unmasked and ``end`` the position after
        the frame, when ``buffer`` holds the whole frame, its header passes
        :func:`parse_header`, and it is masked if and only if ``masked``; else ``None``,
        and the caller parses the frame the slow way, which tells what is wrong or missing.
    """
    try:
        header = parse_header(buffer, pos)
    except ProtocolError:
        return None
    if header is None:
        return None
    first_byte, length, mask_key, start = header
    end = start + length
    if (mask_key is not None) is not masked or end > len(buffer):
        return None
    with memoryview(buffer) as view:
        payload = (
            bytes(view[start:end]) if mask_key is None else apply_mask(view[start:end], mask_key)
        )
    return first_byte, payload, end


def _py_encode_frame(first_byte: int, data: BytesLike, mask_key: bytes | None) -> bytes:
    """A frame as it goes on the wire: header, masking key unless ``None``, payload masked
    with it."""
    header = serialize_header(first_byte, len(data), mask_key)
    return header + (bytes(data) if mask_key is None else apply_mask(data, mask_key))


class _PyPayloadBuffer:
    """The payload of a large frame, written in place as it arrives, then taken as bytes.

    Receiving reads such a payload straight into it rather than through an intermediate
    buffer. This reference copies once, in :meth:`take`; the C twin fills the ``bytes``
    object itself and hands it over without a copy.

    Raises:
        ValueError: if ``size`` is less than 2.
    """

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError("size must be at least 2")
        self._data: bytearray | None = bytearray(size)

    def view(self) -> memoryview:
        """A writable memoryview of the whole payload."""
        return memoryview(self._buffer())

    def unmask(self, mask: bytes) -> None:
        """XOR the payload in place with a 4-byte mask (RFC 6455 section 5.3)."""
        data = self._buffer()
        data[:] = apply_mask(data, mask)

    def take(self) -> bytes:
        """The payload as bytes; the buffer is unusable afterwards."""
        data = self._buffer()
        self._data = None
        return bytes(data)

    def _buffer(self) -> bytearray:
        if self._data is None:
            raise BufferError("payload was taken")
        return self._data


read_frame = _py_read_frame
encode_frame = _py_encode_frame
PayloadBuffer = _PyPayloadBuffer
if SPEEDUPS:  # pragma: no branch - depends on the build
    from ._speedups import PayloadBuffer as _CPayloadBuffer
    from ._speedups import encode_frame, read_frame

    PayloadBuffer = _CPayloadBuffer  # type: ignore[assignment, misc]


class Frame(NamedTuple):
    """A WebSocket frame (RFC 6455 section 5.2), without its masking.

    Received data frames reach the application after extensions decoded them (e.g. after
    decompression), so their RSV bits are clear.
    """

    opcode: Opcode
    """Opcode of the frame."""
    data: bytes
    """Payload data, unmasked."""
    fin: bool = True
    """Whether this is the final fragment of a message."""
    rsv1: bool = False
    """RSV1 bit (e.g. "Per-Message Compressed" with permessage-deflate)."""
    rsv2: bool = False
    """RSV2 bit."""
    rsv3: bool = False
    """RSV3 bit."""

    def __str__(self) -> str:
        """A short description for logs: opcode, a preview of the payload and its size."""
        data = self.data
        size = len(data)
        if self.opcode is OP_TEXT or (self.opcode is OP_CONT and _looks_like_text(data)):
            preview = repr(bytes(data[:60]).decode(errors="replace"))
        elif self.opcode is OP_CLOSE:
            try:
                preview = str(Close.parse(data))
            except (ProtocolError, UnicodeDecodeError):
                preview = data[:24].hex(" ")
        else:
            preview = data[:24].hex(" ")
        suffix = "" if self.fin else ", continued"
        return f"{self.opcode.name} {preview} [{size} bytes{suffix}]"

    def check(self) -> None:
        """Check the rules of RFC 6455 section 5 that a frame obeys on its own.

        Raises:
            ProtocolError: if an RSV bit is set, or a control frame is fragmented or too long.
        """
        if self.rsv1 or self.rsv2 or self.rsv3:
            raise ProtocolError("reserved bits must be 0")
        if self.opcode in CTRL_OPCODES:
            if len(self.data) > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(f"control frame with {len(self.data)} bytes exceeds 125 bytes")
            if not self.fin:
                raise ProtocolError("fragmented control frame")

    @property
    def first_byte(self) -> int:
        """FIN, RSV1-3 and the opcode, as the first byte on the wire."""
        return (
            (FIN if self.fin else 0)
            | (RSV1 if self.rsv1 else 0)
            | (RSV2 if self.rsv2 else 0)
            | (RSV3 if self.rsv3 else 0)
            | self.opcode
        )

    def serialize(self, *, mask: bool, mask_key: bytes | None = None) -> bytes:
        """The frame's bytes on the wire.

        Args:
            mask: whether to mask the payload (a client MUST, a server MUST NOT).
            mask_key: the 4-byte masking key; a random one by default. Only for tests.
        """
        if not mask:
            return serialize_header(self.first_byte, len(self.data), None) + self.data
        if mask_key is None:
            mask_key = masking.new_mask()
        header = serialize_header(self.first_byte, len(self.data), mask_key)
        return header + masking.apply_mask(self.data, mask_key)

    @classmethod
    def parse(cls, data: BytesLike, *, mask: bool, max_size: int | None = None) -> Frame:
        """Parse exactly one whole frame, as sent on the wire.

        Args:
            data: the frame's bytes, header and payload, and nothing else.
            mask: whether the frame must be masked (as a server expects from a client).
            max_size: the largest payload accepted, in bytes; ``None`` for no limit.

        Raises:
            ProtocolError: if the frame breaks RFC 6455 section 5, or ``data`` holds less or
                more than one frame.
            PayloadTooBig: if the payload exceeds ``max_size``.
        """
        header = parse_header(data)
        if header is None:
            raise ProtocolError("incomplete frame header")
        first_byte, length, mask_key, start = header
        if (mask_key is not None) is not mask:
            raise ProtocolError("incorrect masking")
        if max_size is not None and length > max_size:
            raise PayloadTooBig(length, max_size)
        if len(data) != start + length:
            raise ProtocolError(f"expected {start + length} bytes, got {len(data)}")
        payload = bytes(data[start:])
        if mask_key is not None:
            payload = masking.apply_mask(payload, mask_key)
        return cls.from_first_byte(first_byte, payload)

    @classmethod
    def from_first_byte(cls, first_byte: int, data: bytes) -> Frame:
        """Build a frame from its first byte on the wire and its unmasked payload."""
        opcode = _OPCODES[first_byte & 0x0F]
        if opcode is None:
            raise ProtocolError(f"reserved opcode {first_byte & 0x0F:#x}")
        return cls(
            opcode,
            data,
            bool(first_byte & FIN),
            bool(first_byte & RSV1),
            bool(first_byte & RSV2),
            bool(first_byte & RSV3),
        )


def _looks_like_text(data: bytes) -> bool:
    try:
        bytes(data[:60]).decode()
    except UnicodeDecodeError:
        return False
    return True


_new_frame = tuple.__new__  # builds a Frame without the cost of its Python-level __new__


def _py_read_messages(
    buffer: BytesLike, pos: int, masked: bool, max_size: int, limit: int, events: list[object]
) -> int:
    """Read whole messages of one frame from ``pos``: the common case of parsing, in one call.

    Appends to ``events`` a :class:`Frame` for each whole frame that is a message on its own
    (text or binary, final, no RSV bit), is masked if and only if ``masked``, is no larger
    than ``max_size``, and is valid UTF-8 if text, at most ``limit`` of them (``-1``: no
    limit, for both). Stops before anything else (an incomplete frame, a control frame, a
    fragment, any fault), which the caller parses the slow way.

    Returns:
        The position after the last frame read.
    """
    count = 0
    while count != limit:
        result = _py_read_frame(buffer, pos, masked)
        if result is None:
            break
        first_byte, payload, end = result
        if first_byte != 0x81 and first_byte != 0x82:
            break
        if 0 <= max_size < len(payload):
            break
        if first_byte == 0x81:
            try:
                payload.decode()
            except UnicodeDecodeError:
                break
        events.append(
            _new_frame(
                Frame,
                (OP_TEXT if first_byte == 0x81 else OP_BINARY, payload, True, False, False, False),
            )
        )
        pos = end
        count += 1
    return pos


read_messages = _py_read_messages
if SPEEDUPS:  # pragma: no branch - depends on the build
    from ._speedups import read_messages, set_frame_types

    set_frame_types(Frame, OP_TEXT, OP_BINARY)


@dataclass(frozen=True)
class Close:
    """The payload of a close frame: a status code and a reason (RFC 6455 section 5.5.1).

    A close frame without a payload is ``Close(1005, "")``: 1005 "is designated for use in
    applications expecting a status code to indicate that no status code was actually
    present" and never appears on the wire.
    """

    code: int
    """Close code."""
    reason: str
    """Close reason, possibly empty."""

    def __str__(self) -> str:
        explanation = _CLOSE_CODE_EXPLANATIONS.get(self.code)
        if explanation is None:
            if 3000 <= self.code < 4000:
                explanation = "registered"
            elif 4000 <= self.code < 5000:
                explanation = "private use"
            else:
                explanation = "unknown"
        result = f"{self.code} ({explanation})"
        if self.reason:
            result = f"{result} {self.reason}"
        return result

    @classmethod
    def parse(cls, data: BytesLike) -> Close:
        """Parse the payload of a received close frame.

        Raises:
            ProtocolError: if the payload is one byte long or the code is not valid on the wire.
            UnicodeDecodeError: if the reason is not valid UTF-8.
        """
        size = len(data)
        if size == 0:
            return cls(CloseCode.NO_STATUS_RCVD, "")
        # RFC 6455 section 5.5.1: "If there is a body, the first two bytes of the body MUST be
        # a 2-byte unsigned integer (in network byte order) representing a status code".
        if size == 1:
            raise ProtocolError("close frame with a 1-byte payload")
        (code,) = _unpack_H(data, 0)
        if not is_valid_close_code(code):
            raise ProtocolError(f"invalid close code {code}")
        # RFC 6455 section 5.5.1: "the body [...] MAY contain UTF-8-encoded data" and
        # section 8.1 requires failing the connection when it is not valid UTF-8.
        reason = bytes(data[2:])
        validate_utf8(reason)
        return cls(code, reason.decode())

    def serialize(self) -> bytes:
        """The payload of a close frame carrying this code and reason."""
        if self.code == CloseCode.NO_STATUS_RCVD and not self.reason:
            return b""
        return struct.pack("!H", self.code) + self.reason.encode()

    def check(self) -> None:
        """Check that this close may be sent.

        Raises:
            ValueError: if the code is not valid on the wire, or the payload exceeds 125 bytes.
        """
        if self.code == CloseCode.NO_STATUS_RCVD and not self.reason:
            return
        if not is_valid_close_code(self.code):
            raise ValueError(f"invalid close code {self.code}")
        size = 2 + len(self.reason.encode())
        if size > MAX_CONTROL_PAYLOAD:
            raise ValueError(f"close reason of {size - 2} bytes exceeds 123 bytes")
