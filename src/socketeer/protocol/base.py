"""The sans-I/O WebSocket protocol shared by clients and servers (RFC 6455 sections 5 to 7).

Theory of operation
-------------------

A :class:`Protocol` changes state only in :meth:`~Protocol.receive_data`,
:meth:`~Protocol.receive_eof`, the ``send_*`` methods and :meth:`~Protocol.fail`. After
each call, a driver (asyncio, threads, anything) drains it:

1. :meth:`~Protocol.events_received`: what arrived (handshake messages, then :class:`Frame`
   objects: data frames decoded by the extensions, pings, pongs and the close frame);
2. :meth:`~Protocol.data_to_send`: bytes to write, in order; ``b""`` means "half-close the
   connection" (no more writes after it);
3. :meth:`~Protocol.close_expected`: whether the peer should now close the TCP connection;
   if it returns ``True``, the driver closes it itself after a timeout.

States move one way: ``CONNECTING`` (opening handshake, handled by the client and server
subclasses) → ``OPEN`` → ``CLOSING`` (a close frame was sent; the peer's may have arrived)
→ ``CLOSED`` (the TCP connection ended: :meth:`~Protocol.receive_eof`).

What must hold:

- after a close frame is sent, nothing but bytes already queued is sent, and no data frame
  can be sent (RFC 6455 section 5.5.1);
- a close frame is sent at most once, and a received one is echoed when none was sent;
- after a close frame is received, or after the connection is failed, received bytes are
  discarded (RFC 6455 section 7.1.7);
- a peer's fault never raises out of ``receive_data``: the protocol fails the connection with
  the right close code and keeps the cause in :attr:`~Protocol.parser_exc`;
- the server closes the TCP connection first (RFC 6455 section 7.1.1); the client waits for it.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Hashable

from ..exceptions import InvalidState, PayloadTooBig, ProtocolError
from ..typedefs import BytesLike, LoggerLike
from .extensions.base import Extension
from .extensions.permessage_deflate import PerMessageDeflate, _deflated_budget
from .frames import (
    _OPCODES,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Close,
    CloseCode,
    Frame,
    Opcode,
    PayloadBuffer,
    _new_frame,
    encode_frame,
    is_valid_close_code,
    parse_header,
    read_frame,
    read_messages,
    serialize_header,
)
from .masking import apply_mask, new_mask
from .utf8 import Utf8Validator

__all__ = ["Protocol", "Side", "State", "Event", "SERVER", "CLIENT", "MAX_SIZE"]

MAX_SIZE = 1_048_576
"""Default limit on the size of a received message, in bytes (1 MiB)."""

# Payloads at least this large are written as a separate buffer instead of being copied
# after their header: below it, one copy costs less than a separate write (and TCP segment)
# for the header, as the echo benchmark measured.
_JOIN_BELOW = 262_144

# A frame at least this large that arrives in pieces is read into the bytes object that will
# hold its payload (:attr:`Protocol.payload_buffer`) rather than gathered in the buffer and
# copied out: below it, the copy is cheap and the frame usually arrives in one read.
_READ_INTO_ABOVE = 65_536
# Without max_size, the largest payload allocated ahead of its bytes; bigger ones are gathered
# as they arrive, so that a header alone cannot reserve much memory.
_READ_INTO_MAX = 67_108_864


# What a peer's fault raises while frames are parsed: each fails the connection with its code.
_PEER_FAULTS = (ProtocolError, UnicodeDecodeError, PayloadTooBig)


def _frame(first_byte: int, payload: bytes) -> Frame:
    """The frame of a first byte (FIN, RSV1-3, opcode, checked already) and a payload."""
    return _new_frame(
        Frame,
        (
            _OPCODES[first_byte & 0x0F],
            payload,
            first_byte & 0x80 != 0,
            first_byte & 0x40 != 0,
            first_byte & 0x20 != 0,
            first_byte & 0x10 != 0,
        ),
    )


class Side(enum.IntEnum):
    """Which end of the connection a protocol object plays."""

    SERVER = 0
    CLIENT = 1


SERVER = Side.SERVER
CLIENT = Side.CLIENT


class State(enum.IntEnum):
    """The state of a WebSocket connection (RFC 6455 section 4 to 7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


CONNECTING = State.CONNECTING
OPEN = State.OPEN
CLOSING = State.CLOSING
CLOSED = State.CLOSED

Event = object
"""What :meth:`Protocol.events_received` returns: a :class:`Request` or :class:`Response`
during the handshake, then :class:`Frame` objects."""


class Protocol:
    """The sans-I/O WebSocket protocol; see the module's theory of operation.

    Args:
        side: :data:`CLIENT` or :data:`SERVER`.
        state: the initial state; ``OPEN`` to speak WebSocket frames right away (for tests and
            for drivers that did the handshake themselves).
        max_size: the largest message accepted, in bytes, after decompression; ``None`` for no
            limit. A bigger message fails the connection with 1009 before it is buffered.
        logger: where to log; ``socketeer.client`` or ``socketeer.server`` by default.
    """

    # Slots, not an instance dict: the hot path reads these attributes for every frame, and
    # with this many of them, a dict made each read slower (callgrind: 6% of the
    # instructions of an echo). Subclasses keep a dict for their handshake attributes.
    __slots__ = (
        "_id",
        "logger",
        "debug",
        "side",
        "state",
        "max_size",
        "_extensions",
        "_deflate",
        "close_rcvd",
        "close_sent",
        "close_rcvd_then_sent",
        "handshake_exc",
        "parser_exc",
        "eof_sent",
        "max_pending",
        "unparsed",
        "payload_buffer",
        "_buffer",
        "_events",
        "_writes",
        "_eof_rcvd",
        "_pending",
        "_discard",
        "_mask",
        "_rcv_opcode",
        "_rcv_size",
        "_rcv_utf8",
        "_rcv_compressed",
        "_partial_utf8",
        "_partial_checked",
        "_snd_fragmented",
        "_into",
        "_into_view",
        "_into_pos",
        "_into_first_byte",
        "_into_mask",
    )

    def __init__(
        self,
        side: Side,
        *,
        state: State = OPEN,
        max_size: int | None = MAX_SIZE,
        logger: LoggerLike | None = None,
    ) -> None:
        self._id: uuid.UUID | None = None  # made when first read: most never are
        if logger is None:
            logger = logging.getLogger(f"socketeer.{side.name.lower()}")
        self.logger: LoggerLike = logger
        """Logger for this connection."""
        self.debug = logger.isEnabledFor(logging.DEBUG)
        """Whether debug logging is on; checked before building debug messages."""
        self.side = side
        """:data:`CLIENT` or :data:`SERVER`."""
        self.state = state
        """The connection's state (see the module's theory of operation)."""
        self.max_size = max_size
        """Largest message accepted, in bytes, or ``None``."""
        self._extensions: list[Extension] = []
        # permessage-deflate when it is the only extension: the case of the fast paths for
        # compressed messages (_receive_compressed(), _send_data()).
        self._deflate: PerMessageDeflate | None = None

        self.close_rcvd: Close | None = None
        """The close frame received from the peer, once it arrived."""
        self.close_sent: Close | None = None
        """The close frame sent to the peer, once it was sent."""
        self.close_rcvd_then_sent: bool | None = None
        """Whether the peer started the closing handshake, once both close frames passed."""
        self.handshake_exc: Exception | None = None
        """Why the opening handshake failed, if it did."""
        self.parser_exc: Exception | None = None
        """Why the connection was failed because of the peer, if it was."""
        self.eof_sent = False
        """Whether the driver was told to half-close the connection."""
        self.max_pending: int | None = None
        """Stop parsing once this many whole data messages wait in :meth:`events_received`;
        ``None`` parses everything at once. Drivers set it to bound what a single read can
        queue; see :attr:`unparsed`."""
        self.unparsed = False
        """Whether parsing stopped at :attr:`max_pending` with frames left in the buffer.
        Take the events with :meth:`events_received`, then call ``receive_data(b"")`` to
        parse on, when the application is ready for more."""
        self.payload_buffer: memoryview | None = None
        """While the payload of a large frame arrives: a writable view of the rest of it.
        A driver may read from the network straight into it, then call
        :meth:`receive_into`, which spares copying the payload; see :meth:`receive_data`."""

        self._buffer = bytearray()
        self._events: list[Event] = []
        self._writes: list[bytes] = []
        self._eof_rcvd = False
        self._pending = 0  # whole data messages in self._events
        self._discard = False  # after a close frame was received or the connection failed
        self._mask = side is CLIENT  # RFC 6455 section 5.1: clients mask, servers don't
        # Incoming message: the opcode of the message in progress, its size so far, and the
        # UTF-8 validator of a fragmented text message.
        self._rcv_opcode: Opcode | None = None
        self._rcv_size = 0
        self._rcv_utf8: Utf8Validator | None = None
        self._rcv_compressed = False  # whether the message in progress has RSV1 set
        # An incomplete text frame: its validator and how many payload bytes it checked.
        self._partial_utf8: Utf8Validator | None = None
        self._partial_checked = 0
        # Outgoing message: whether a fragmented message is in progress.
        self._snd_fragmented = False
        # A large frame read in place (payload_buffer): its payload, the whole view of it,
        # the bytes received, its first byte and its masking key.
        self._into: PayloadBuffer | None = None
        self._into_view: memoryview | None = None
        self._into_pos = 0
        self._into_first_byte = 0
        self._into_mask: bytes | None = None

    @property
    def id(self) -> uuid.UUID:
        """Unique identifier of the connection, useful in logs."""
        if self._id is None:
            self._id = uuid.uuid4()
        return self._id

    def _set_state(self, state: State) -> None:
        if self.debug:
            self.logger.debug("= connection is %s", state.name)
        self.state = state

    # Public state

    @property
    def extensions(self) -> list[Extension]:
        """Extensions in use, in the order of negotiation; assign a new list to change them."""
        return self._extensions

    @extensions.setter
    def extensions(self, extensions: list[Extension]) -> None:
        self._extensions = extensions
        only = extensions[0] if len(extensions) == 1 else None
        self._deflate = only if type(only) is PerMessageDeflate else None

    @property
    def close_code(self) -> int | None:
        """RFC 6455 section 7.1.5, "The WebSocket Connection Close Code".

        The code of the close frame received (1005 when it had none), as soon as it arrived;
        1006 once the connection is closed without one; ``None`` before either.
        """
        if self.close_rcvd is not None:
            return self.close_rcvd.code
        if self.state is CLOSED:
            return CloseCode.ABNORMAL_CLOSURE
        return None

    @property
    def close_reason(self) -> str | None:
        """RFC 6455 section 7.1.6, "The WebSocket Connection Close Reason".

        The reason of the close frame received, as soon as it arrived; empty once the
        connection is closed without one; ``None`` before either.
        """
        if self.close_rcvd is not None:
            return self.close_rcvd.reason
        if self.state is CLOSED:
            return ""
        return None

    @property
    def receiving(self) -> bool:
        """Whether frames may still arrive: no close frame came, nothing failed, no EOF."""
        return not self._discard and not self._eof_rcvd

    @property
    def sending(self) -> bool:
        """Whether a message may be sent now: the connection is open and no fragmented
        message is underway."""
        return self.state is OPEN and not self._snd_fragmented

    # Receiving

    def receive_data(self, data: BytesLike) -> None:
        """Feed bytes read from the network.

        Then call :meth:`events_received`, :meth:`data_to_send` and :meth:`close_expected`.
        A fault of the peer does not raise: it fails the connection (a close frame with the
        right code is queued) and is kept in :attr:`parser_exc`.

        While :attr:`payload_buffer` is set, the bytes received go to it first: reading into
        it and calling :meth:`receive_into` does the same without a copy.

        Raises:
            InvalidState: if called after :meth:`receive_eof`.
        """
        if self._eof_rcvd:
            raise InvalidState("data received after end of stream")
        if self._discard:
            return
        if self._into is not None:
            data = self._fill_payload(data)
            if self.payload_buffer is not None or self._discard or not data:
                return
        if self.state is CONNECTING:
            self._buffer += data
            self._receive_handshake()
            if self.state is CONNECTING or self._discard:
                return
            self._receive_frames(self._buffer)
        elif self._buffer:
            self._buffer += data
            self._receive_frames(self._buffer)
        else:
            # Nothing left over from before: parse the caller's bytes where they are, and
            # keep only what is left of them.
            self._receive_frames(data)

    def receive_into(self, nbytes: int) -> None:
        """Tell the protocol that ``nbytes`` were written at the start of
        :attr:`payload_buffer`.

        Then call :meth:`events_received`, :meth:`data_to_send` and :meth:`close_expected`,
        as after :meth:`receive_data`. Nothing happens if the connection failed since the
        view was taken (the bytes are discarded, as any received then).

        Raises:
            InvalidState: if called after :meth:`receive_eof`.
            ValueError: if ``nbytes`` is negative or larger than the view.
        """
        if self._eof_rcvd:
            raise InvalidState("data received after end of stream")
        view = self.payload_buffer
        if view is None or self._discard:
            return
        if not 0 <= nbytes <= len(view):
            raise ValueError(f"nbytes must be between 0 and {len(view)}, got {nbytes}")
        self._into_pos += nbytes
        if nbytes == len(view):
            self._finish_payload()
        elif nbytes:
            assert self._into_view is not None
            self.payload_buffer = self._into_view[self._into_pos :]

    def _fill_payload(self, data: BytesLike) -> memoryview:
        """Copy the start of ``data`` into :attr:`payload_buffer`; return the rest."""
        view = self.payload_buffer
        assert view is not None
        with memoryview(data) as received:
            size = min(len(view), len(received))
            view[:size] = received[:size]
            rest = received[size:]
        self.receive_into(size)
        return rest

    def _read_into(self, buffer: BytesLike, header: tuple[int, int, bytes | None, int]) -> None:
        """Start reading the payload of a large frame in place: see :attr:`payload_buffer`."""
        first_byte, length, mask_key, start = header
        self._into = PayloadBuffer(length)
        self._into_view = self._into.view()
        self._into_first_byte = first_byte
        self._into_mask = mask_key
        self._into_pos = 0
        self.payload_buffer = self._into_view
        with memoryview(buffer) as view:
            self._fill_payload(view[start:])

    def _finish_payload(self) -> None:
        """The payload read in place is complete: process its frame."""
        payload_buffer, into_view = self.payload_buffer, self._into_view
        assert self._into is not None and payload_buffer is not None and into_view is not None
        into, self._into = self._into, None
        self.payload_buffer = self._into_view = None
        try:
            # Views of the payload that the driver may still hold must not see it change
            # hands: release them, so that take() passes the bytes on without a copy.
            payload_buffer.release()
            into_view.release()
        except BufferError:  # pragma: no cover - a driver holds a buffer: take() copies
            pass
        if self._into_mask is not None:
            into.unmask(self._into_mask)
        try:
            self._receive_frame(_frame(self._into_first_byte, into.take()))
        except _PEER_FAULTS as exc:
            self._fail_on_fault(exc)

    def _drop_payload(self) -> None:
        """Forget the payload read in place, if any."""
        self._into = self._into_view = self.payload_buffer = None

    def receive_eof(self) -> None:
        """Tell the protocol that the peer closed the connection (or that it was lost).

        Then call :meth:`events_received` and :meth:`data_to_send`, which ends with ``b""``
        when the driver should close its side too.

        Raises:
            InvalidState: if called twice.
        """
        if self._eof_rcvd:
            raise InvalidState("end of stream received twice")
        self._eof_rcvd = True
        if self.state is CONNECTING:
            self._receive_handshake_eof()
            self._buffer.clear()
        if self.unparsed and not self._discard:
            # Frames waited for the application: nothing else will come, parse them all.
            limit, self.max_pending = self.max_pending, None
            self._receive_frames(self._buffer)
            self.max_pending = limit
        self.unparsed = False
        incomplete = len(self._buffer) + (self._into_pos if self._into is not None else 0)
        if (
            self.state is not CLOSED
            and self.close_rcvd is None
            and self.parser_exc is None
            and (self._buffer or self._into is not None)
        ):
            # The connection ended in the middle of a frame: an abnormal closure (1006).
            self.parser_exc = EOFError(
                f"connection closed with {incomplete} bytes of an incomplete frame"
            )
        self._buffer.clear()
        self._drop_payload()
        if not self.eof_sent:
            self._send_eof()
        self._set_state(CLOSED)

    def events_received(self) -> list[Event]:
        """Return the events received since the last call, and forget them."""
        events, self._events = self._events, []
        self._pending = 0
        return events

    def data_to_send(self) -> list[bytes]:
        """Return the bytes to write since the last call, in order, and forget them.

        ``b""`` stands for the end of the stream: the driver half-closes the connection
        (``write_eof``, or closes it when half-closing is not possible).
        """
        writes, self._writes = self._writes, []
        return writes

    def close_expected(self) -> bool:
        """Whether the peer should close the TCP connection soon.

        Call it after :meth:`receive_data`, :meth:`send_close` or :meth:`fail`. When it returns
        ``True``, close the connection yourself if the peer has not done so within a timeout.
        """
        return self.state is CLOSING or self.handshake_exc is not None

    def _receive_handshake(self) -> None:
        """Parse the opening handshake from the buffer; subclasses implement it."""
        raise InvalidState("connection is CONNECTING but has no handshake to run")

    def _receive_handshake_eof(self) -> None:
        """Handle the end of the stream during the handshake; subclasses implement it."""

    def _receive_frames(self, buffer: BytesLike) -> None:
        """Parse every complete frame in ``buffer`` (RFC 6455 section 5).

        ``buffer`` is :attr:`_buffer`, or bytes just received when it was empty; what is
        left unparsed ends up in :attr:`_buffer`.
        """
        pos = 0
        self.unparsed = False
        masked = not self._mask  # received frames: masked if and only if we are the server
        # Whole messages of one frame without extensions, the common case, go through
        # read_messages() in bulk: it applies the rules that concern them (section 5.4: no
        # message in progress, checked here; the size limit; section 8.1: valid UTF-8) and
        # stops at any other frame, which goes through _receive_frame(). With
        # permessage-deflate alone, uncompressed messages go the same way, since it leaves
        # them as they are, and a compressed one in one frame through _receive_compressed().
        deflate = None if self.debug else self._deflate
        plain = (deflate is not None or not self._extensions) and not self.debug
        max_size = -1 if self.max_size is None else self.max_size
        events = self._events
        try:
            limit = self.max_pending
            while not self._discard:
                if plain and self._rcv_opcode is None and self._partial_utf8 is None:
                    if limit is None:
                        remaining = -1
                    else:  # not max(): a call of a builtin with keywords costs more
                        remaining = limit - self._pending if limit > self._pending else 0
                    if remaining:
                        count = len(events)
                        pos = read_messages(buffer, pos, masked, max_size, remaining, events)
                        self._pending += len(events) - count
                if len(buffer) - pos < 2:
                    break
                if limit is not None and self._pending >= limit:
                    self.unparsed = True
                    break
                # One frame at a time: in one call when it is whole and its header is valid
                # (compiled when the C speedups are built); else, and for every fault, the
                # slow way.
                result = read_frame(buffer, pos, masked) or self._read_frame_slowly(buffer, pos)
                if result is None:
                    break
                first_byte, payload, pos = result
                if (
                    (first_byte == 0xC1 or first_byte == 0xC2)
                    and deflate is not None
                    and self._rcv_opcode is None
                ):
                    self._receive_compressed(deflate, first_byte, payload)
                    continue
                if first_byte & 0x08 == 0:
                    self._check_size(first_byte, len(payload))
                self._receive_frame(_frame(first_byte, payload))
        except _PEER_FAULTS as exc:
            self._fail_on_fault(exc)
        if self._discard:
            self._buffer.clear()
        elif self._into is not None:  # the rest of the buffer went to payload_buffer
            self._buffer.clear()
        elif buffer is self._buffer:
            if pos:
                del self._buffer[:pos]
        elif pos < len(buffer):
            with memoryview(buffer) as view:
                self._buffer += view[pos:]

    def _read_frame_slowly(self, buffer: BytesLike, pos: int) -> tuple[int, bytes, int] | None:
        """Read the frame at ``pos`` when :func:`read_frame` did not: say what is wrong with
        its header, or check what the incomplete frame allows (its size, the UTF-8 that
        arrived) and return ``None``."""
        header = parse_header(buffer, pos)
        if header is None:
            return None
        first_byte, length, mask_key, start = header
        # RFC 6455 section 5.1: "The server MUST close the connection upon receiving a
        # frame that is not masked. [...] A client MUST close a connection if it
        # detects a masked frame."
        if (mask_key is None) is not self._mask:
            raise ProtocolError("incorrect masking")
        opcode = first_byte & 0x0F
        if opcode < 8:
            # A message bigger than max_size fails before its payload is buffered.
            self._check_size(first_byte, length)
        end = start + length
        if end <= len(buffer):  # pragma: no cover - read_frame reads such frames
            with memoryview(buffer) as view:
                payload = view[start:end]
                return (
                    first_byte,
                    apply_mask(payload, mask_key) if mask_key else bytes(payload),
                    end,
                )
        if opcode < 3 and not first_byte & 0x70 and not self._rcv_compressed:
            self._check_partial_text(buffer, opcode, start, mask_key)
        if (
            opcode < 3
            and length > _READ_INTO_ABOVE
            and (self.max_size is not None or length <= _READ_INTO_MAX)
            and self._partial_utf8 is None
            and (opcode == 2 or self._rcv_compressed or opcode == 0 and self._rcv_utf8 is None)
        ):
            # Not uncompressed text, whose UTF-8 is checked as it arrives.
            self._read_into(buffer, header)
        return None

    def _check_size(self, first_byte: int, length: int) -> None:
        """Check a data frame's payload length against what is left of ``max_size``."""
        if first_byte & 0x0F:  # not a continuation: whether the message is compressed
            self._rcv_compressed = bool(first_byte & 0x40 and self._extensions)
        if self.max_size is not None:
            budget = self.max_size - self._rcv_size
            if self._rcv_compressed:
                budget = _deflated_budget(budget)
            if length > budget:
                raise PayloadTooBig(length, self.max_size, self._rcv_size)

    def _check_partial_text(
        self, buffer: BytesLike, opcode: int, start: int, mask_key: bytes | None
    ) -> None:
        """Validate what arrived of an incomplete, uncompressed text frame.

        RFC 6455 section 8.1 asks to fail on invalid UTF-8; failing as soon as it arrives,
        rather than when the frame is complete, spares buffering the rest of a frame that is
        already known to be bad. ``_partial_checked`` counts the payload bytes validated.
        """
        if opcode == 0:
            validator = self._rcv_utf8
            if validator is None:  # a binary message, or no message: nothing to validate
                return
        elif opcode == 1:
            if self._rcv_opcode is not None:  # fails as a whole frame would: section 5.4
                raise ProtocolError("expected a continuation frame")
            validator = self._partial_utf8 or Utf8Validator()
        else:
            return
        checked = self._partial_checked
        available = len(buffer) - start
        if available <= checked:
            return
        chunk = bytes(buffer[start + checked : start + available])
        if mask_key is not None:
            shift = checked & 3
            chunk = apply_mask(chunk, mask_key[shift:] + mask_key[:shift])
        self._partial_utf8 = validator
        self._partial_checked = available
        validator.feed(chunk, False)

    def _receive_compressed(
        self, deflate: PerMessageDeflate, first_byte: int, data: bytes
    ) -> None:
        """Receive a whole compressed message of one frame, when no message is in progress:
        what _check_size(), the extension's decode() and _receive_frame() do for it."""
        max_size = self.max_size
        if max_size is not None and len(data) > _deflated_budget(max_size):
            raise PayloadTooBig(len(data), max_size)
        data = deflate.decode_final(data, max_size)
        if first_byte == 0xC1:
            data.decode()  # section 8.1: validates; raises UnicodeDecodeError
        self._pending += 1
        self._events.append(
            _new_frame(Frame, (_OPCODES[first_byte & 0x0F], data, True, False, False, False))
        )

    def _receive_frame(self, frame: Frame) -> None:
        """Apply RFC 6455 sections 5.4 to 5.6 to one received frame."""
        if self._extensions:
            budget = None if self.max_size is None else self.max_size - self._rcv_size
            try:
                for extension in reversed(self._extensions):
                    frame = extension.decode(frame, max_size=budget)
            except PayloadTooBig as exc:
                if self.max_size is None or exc.size is None:  # pragma: no cover
                    raise
                raise PayloadTooBig(exc.size, self.max_size, self._rcv_size) from None
        # RFC 6455 section 5.2: "If a nonzero value is received and none of the negotiated
        # extensions defines the meaning of such a nonzero value, the receiving endpoint MUST
        # _Fail the WebSocket Connection_."
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            raise ProtocolError("reserved bits must be 0")
        if self.debug:
            self.logger.debug("< %s", frame)
        opcode = frame.opcode
        if opcode is OP_TEXT or opcode is OP_BINARY:
            # RFC 6455 section 5.4: "fragments of one message MUST NOT be interleaved between
            # the fragments of another message".
            if self._rcv_opcode is not None:
                raise ProtocolError("expected a continuation frame")
            if opcode is OP_TEXT:
                if self._partial_utf8 is not None:
                    self._partial_utf8.feed(frame.data[self._partial_checked :], frame.fin)
                    if not frame.fin:
                        self._rcv_utf8 = self._partial_utf8
                elif frame.fin:
                    frame.data.decode()  # validates; raises UnicodeDecodeError
                else:
                    self._rcv_utf8 = Utf8Validator()
                    self._rcv_utf8.feed(frame.data, False)
                self._partial_utf8 = None
                self._partial_checked = 0
            if frame.fin:
                self._pending += 1
            else:
                self._rcv_opcode = opcode
                self._rcv_size = len(frame.data)
            self._events.append(frame)
        elif opcode is OP_CONT:
            # RFC 6455 section 5.4: a fragmented message is "a single frame with the FIN bit
            # clear and an opcode other than 0, followed by zero or more frames with the FIN
            # bit clear and the opcode set to 0".
            if self._rcv_opcode is None:
                raise ProtocolError("unexpected continuation frame")
            if self._rcv_utf8 is not None:
                checked, self._partial_checked = self._partial_checked, 0
                self._partial_utf8 = None
                self._rcv_utf8.feed(frame.data[checked:] if checked else frame.data, frame.fin)
            if frame.fin:
                self._rcv_opcode = None
                self._rcv_size = 0
                self._rcv_utf8 = None
                self._pending += 1
            else:
                self._rcv_size += len(frame.data)
            self._events.append(frame)
        elif opcode is OP_PING:
            # RFC 6455 section 5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
            # Pong frame in response, unless it already received a Close frame." Once this
            # side sent its close frame, it sends nothing more (section 5.5.1).
            if self.close_sent is None:
                self._write_frame(Frame(OP_PONG, frame.data))
            self._events.append(frame)
        elif opcode is OP_PONG:
            # RFC 6455 section 5.5.3: "A response to an unsolicited Pong frame is not
            # expected." Drivers match it with their pings, or ignore it.
            self._events.append(frame)
        else:
            self._receive_close(frame)

    def _receive_close(self, frame: Frame) -> None:
        """RFC 6455 section 5.5.1: the closing handshake, on receiving a close frame."""
        self.close_rcvd = Close.parse(frame.data)
        if self.close_sent is None:
            # "If an endpoint receives a Close frame and did not previously send a Close
            # frame, the endpoint MUST send a Close frame in response. (When sending a Close
            # frame in response, the endpoint typically echos the status code it received.)"
            self.close_sent = self.close_rcvd
            self.close_rcvd_then_sent = True
            self._write_frame(Frame(OP_CLOSE, frame.data))
            self._set_state(CLOSING)
        else:
            self.close_rcvd_then_sent = False
        # "After sending a Close frame, the application MUST NOT send any more data frames."
        # The message in progress, if any, is abandoned; later bytes are discarded.
        self._discard = True
        self._events.append(frame)
        # RFC 6455 section 7.1.1: "the server SHOULD close [the underlying TCP connection]
        # first [...] the client SHOULD wait for the server to close the connection".
        if self.side is SERVER:
            self._send_eof()

    # Sending

    def send_text(self, data: str | BytesLike, fin: bool = True, compress: bool = True) -> None:
        """Send a text frame: a whole message, or the first fragment when ``fin`` is false.

        Args:
            data: the text; ``str`` is encoded to UTF-8, bytes are sent as they are and must
                already be UTF-8.
            fin: whether this is the whole message; send the next fragments with
                :meth:`send_continuation`.
            compress: ``False`` to send this message uncompressed even when permessage-deflate
                is in use.

        Raises:
            InvalidState: if the connection is not open, or a fragmented message is underway.
        """
        payload = data.encode() if isinstance(data, str) else bytes(data)
        self._send_data(OP_TEXT, payload, fin, compress)

    def send_binary(self, data: BytesLike, fin: bool = True, compress: bool = True) -> None:
        """Send a binary frame; see :meth:`send_text` for the arguments.

        Raises:
            InvalidState: if the connection is not open, or a fragmented message is underway.
        """
        # bytes(data) returns bytes as they are, but the call costs more than the test.
        self._send_data(OP_BINARY, data if type(data) is bytes else bytes(data), fin, compress)

    def encoding_key(self) -> Hashable | None:
        """A key equal for connections that put any message on the wire as the same bytes.

        ``None`` when the bytes depend on this connection: a client masks each frame with a
        fresh key, and compression with context takeover depends on what was sent before.
        """
        if self._mask:
            return None
        if not self._extensions:
            return ()
        keys = []
        for extension in self._extensions:
            key = extension.encoding_key()
            if key is None:
                return None
            keys.append(key)
        return tuple(keys)

    def send_shared(self, data: str | BytesLike, cache: dict[Hashable, list[bytes]]) -> None:
        """Send a whole message, reusing its bytes from connections with the same encoding.

        For broadcasts: ``cache`` maps :meth:`encoding_key` values to the bytes already made
        for one connection; the first connection of each key fills it.

        Raises:
            InvalidState: if a message cannot be sent now (see :attr:`sending`).
        """
        key = self.encoding_key()
        writes = None if key is None else cache.get(key)
        if writes is None:
            before = len(self._writes)
            if isinstance(data, str):
                self.send_text(data)
            else:
                self.send_binary(data)
            if key is not None:
                cache[key] = self._writes[before:]
        elif not self.sending:
            raise InvalidState(f"cannot send a message while {self.state.name}")
        else:
            self._writes.extend(writes)

    def send_continuation(self, data: str | BytesLike, fin: bool) -> None:
        """Send the next fragment of a message started with ``fin=False``.

        Raises:
            InvalidState: if no fragmented message is underway, or the connection is closing.
        """
        if not self._snd_fragmented:
            raise InvalidState("no fragmented message to continue")
        self._check_open()
        payload = data.encode() if isinstance(data, str) else bytes(data)
        self._snd_fragmented = not fin
        self._write_frame(Frame(OP_CONT, payload, fin))

    def send_ping(self, data: BytesLike = b"") -> None:
        """Send a ping; the peer answers with a pong carrying the same data.

        Raises:
            InvalidState: if the connection is not open.
            ValueError: if ``data`` is longer than 125 bytes.
        """
        self._send_control(OP_PING, bytes(data))

    def send_pong(self, data: BytesLike = b"") -> None:
        """Send a pong (pings are answered automatically; this is an unsolicited one).

        Raises:
            InvalidState: if the connection is not open.
            ValueError: if ``data`` is longer than 125 bytes.
        """
        self._send_control(OP_PONG, bytes(data))

    def send_close(self, code: int | None = None, reason: str = "") -> None:
        """Start the closing handshake (RFC 6455 section 7.1.2).

        Args:
            code: the close code; ``None`` sends a close frame without a payload.
            reason: the close reason; at most 123 bytes once encoded.

        Raises:
            InvalidState: if the connection is not open.
            ValueError: if the code cannot be sent, or a reason is given without a code.
        """
        if code is None:
            if reason:
                raise ValueError("cannot send a reason without a code")
            close = Close(CloseCode.NO_STATUS_RCVD, "")
        else:
            close = Close(code, reason)
        close.check()
        self._check_open()
        self._send_close_frame(close)

    def send_frame(self, frame: Frame, compress: bool = True) -> None:
        """Send any frame, for tools and proxies; the rules of RFC 6455 still apply.

        Data frames go through the extensions (``compress`` as in :meth:`send_text`) and must
        follow the fragmentation rules; a close frame starts the closing handshake.

        Raises:
            InvalidState: if the frame is not allowed in the current state.
            ProtocolError: if the frame itself breaks RFC 6455 section 5 (e.g. an RSV bit is
                set or a control frame is too long).
            ValueError: if a close frame carries a payload that cannot be sent.
        """
        frame.check()
        opcode = frame.opcode
        if opcode is OP_CONT:
            self.send_continuation(frame.data, frame.fin)
        elif opcode is OP_TEXT or opcode is OP_BINARY:
            self._send_data(opcode, bytes(frame.data), frame.fin, compress)
        elif opcode is OP_CLOSE:
            try:
                close = Close.parse(frame.data)
            except (ProtocolError, UnicodeDecodeError) as exc:
                raise ValueError(f"invalid close frame payload: {exc}") from exc
            close.check()
            self._check_open()
            self._send_close_frame(close)
        else:
            self._send_control(opcode, bytes(frame.data))

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the WebSocket connection (RFC 6455 section 7.1.7).

        Sends a close frame with ``code`` unless one was already sent, the connection is not
        open yet, or ``code`` is 1006 or 1015 (which no close frame may carry); stops
        processing what arrives; and closes the TCP connection on the server side, or on the
        client side when no closing handshake is underway. Drivers call it, e.g. when a
        keepalive ping times out.

        Raises:
            ValueError: if ``code`` is neither valid on the wire nor 1006 or 1015.
        """
        # 1006 and 1015 stand for failures that no close frame reports (section 7.4.1).
        silent = code == CloseCode.ABNORMAL_CLOSURE or code == CloseCode.TLS_HANDSHAKE
        if not silent and not is_valid_close_code(code):
            raise ValueError(f"invalid close code {code}")
        # "If _The WebSocket Connection is Established_ prior to the point where the endpoint
        # is required to _Fail the WebSocket Connection_, the endpoint SHOULD send a Close
        # frame with an appropriate status code".
        if self.state is OPEN and self.close_sent is None:
            if not silent:
                close = Close(code, reason)
                if len(reason.encode()) > 123:
                    close = Close(code, "")
                self._send_close_frame(close)
            self._set_state(CLOSING)
        if self.debug:
            self.logger.debug("! failing connection with code %d", code)
        # "An endpoint MUST NOT continue to attempt to process data (including a responding
        # Close frame) from the remote endpoint after being instructed to _Fail the WebSocket
        # Connection_."
        self._discard = True
        self._buffer.clear()
        self._drop_payload()
        # The server closes the TCP connection at once; so does a client that has no closing
        # handshake to wait for (before the connection opens, or when no close was sent).
        if not self.eof_sent and (self.side is SERVER or self.close_sent is None):
            self._send_eof()

    def _fail_on_fault(self, exc: ProtocolError | UnicodeDecodeError | PayloadTooBig) -> None:
        """Fail the connection because of a fault of the peer, with the close code for it."""
        if isinstance(exc, UnicodeDecodeError):
            reason = f"invalid UTF-8: {exc.reason}"
            self._fail_from_peer(CloseCode.INVALID_FRAME_PAYLOAD_DATA, reason, exc)
        elif isinstance(exc, PayloadTooBig):
            self._fail_from_peer(CloseCode.MESSAGE_TOO_BIG, str(exc), exc)
        else:
            self._fail_from_peer(CloseCode.PROTOCOL_ERROR, str(exc), exc)

    def _fail_from_peer(self, code: int, reason: str, exc: Exception) -> None:
        self.parser_exc = exc
        self.fail(code, reason)

    def _check_open(self) -> None:
        if self.state is not OPEN:
            raise InvalidState(f"connection is {self.state.name}")

    def _send_data(self, opcode: Opcode, data: bytes, fin: bool, compress: bool) -> None:
        if self._snd_fragmented:
            raise InvalidState("a fragmented message is underway; send its continuation")
        if self.state is not OPEN:  # _check_open(), inlined on the hot path
            raise InvalidState(f"connection is {self.state.name}")
        self._snd_fragmented = not fin
        if self._extensions or self.debug:
            deflate = None if self.debug else self._deflate
            if deflate is None:
                self._write_frame(Frame(opcode, data, fin), compress)
                return
            # What _write_frame() does, without a Frame: RSV1 marks a compressed message.
            compressed = deflate.encode_first(opcode, data, fin, compress)
            if compressed is None:
                self._write(opcode | 0x80 if fin else opcode, data)
            else:
                self._write(opcode | 0xC0 if fin else opcode | 0x40, compressed)
        elif len(data) >= _JOIN_BELOW:
            self._write(opcode | 0x80 if fin else opcode, data)
        else:  # _write(), inlined
            self._writes.append(
                encode_frame(
                    opcode | 0x80 if fin else opcode, data, new_mask() if self._mask else None
                )
            )

    def _send_control(self, opcode: Opcode, data: bytes) -> None:
        if len(data) > 125:
            raise ValueError(f"control frame payload of {len(data)} bytes exceeds 125 bytes")
        self._check_open()
        self._write_frame(Frame(opcode, data))

    def _send_close_frame(self, close: Close) -> None:
        self.close_sent = close
        if self.close_rcvd is not None:
            self.close_rcvd_then_sent = True
        self._write_frame(Frame(OP_CLOSE, close.serialize()))
        self._set_state(CLOSING)

    def _write_frame(self, frame: Frame, compress: bool = True) -> None:
        """Encode a frame with the extensions, serialize it and queue its bytes."""
        for extension in self._extensions:
            frame = extension.encode(frame, compress=compress)
        if self.debug:
            self.logger.debug("> %s", frame)
        self._write(frame.first_byte, frame.data)

    def _write(self, first_byte: int, data: bytes) -> None:
        """Serialize a frame, masking it on the client side, and queue its bytes."""
        if self._mask:
            self._writes.append(encode_frame(first_byte, data, new_mask()))
        elif len(data) < _JOIN_BELOW:
            self._writes.append(encode_frame(first_byte, data, None))
        else:
            self._writes.append(serialize_header(first_byte, len(data), None))
            self._writes.append(data)

    def _send_eof(self) -> None:
        if self.debug:
            self.logger.debug("> EOF")
        self.eof_sent = True
        self._writes.append(b"")
