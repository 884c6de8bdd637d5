"""What the asyncio and the threaded connections share: everything that is not I/O.

:class:`ConnectionBase` reads the connection's public attributes from its sans-I/O protocol
and builds the :exc:`~socketeer.exceptions.ConnectionClosed` that both drivers raise; the
drivers subclass it (``socketeer.asyncio.connection`` and ``socketeer.sync.connection``).
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple
from typing import Protocol as TypingProtocol

from .exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from .protocol.base import CLOSED, CLOSING, Protocol, State
from .protocol.frames import CloseCode
from .protocol.http11 import Request, Response
from .protocol.keepalive import Pings
from .typedefs import BytesLike, Data, Subprotocol

__all__ = [
    "ConnectionBase",
    "BroadcastResult",
    "broadcast_message",
    "OK_CLOSE_CODES",
    "is_text",
    "as_bytes",
    "format_address",
]

OK_CLOSE_CODES = frozenset(
    {CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD}
)
"""Close codes that make a normal closure when both close frames carry one (RFC 6455 7.4.1)."""


class _Queue(TypingProtocol):
    """What this module needs of a driver's Assembler."""

    closed: bool
    pausing: bool

    def close(self) -> None: ...

    def stop_pausing(self) -> None: ...


class ConnectionBase:
    """The attributes and the closed-connection error of a connection, from its protocol."""

    protocol: Protocol
    """The sans-I/O protocol the connection drives."""
    recv_messages: _Queue
    _pings: Pings[Any]

    @property
    def id(self) -> uuid.UUID:
        """Unique identifier of the connection, useful in logs."""
        return self.protocol.id

    @property
    def state(self) -> State:
        """The connection's state: ``CONNECTING``, ``OPEN``, ``CLOSING`` or ``CLOSED``."""
        return self.protocol.state

    @property
    def request(self) -> Request | None:
        """The opening handshake request."""
        return getattr(self.protocol, "request", None)

    @property
    def response(self) -> Response | None:
        """The opening handshake response."""
        return getattr(self.protocol, "response", None)

    @property
    def subprotocol(self) -> Subprotocol | None:
        """The subprotocol negotiated in the opening handshake, if any."""
        return getattr(self.protocol, "subprotocol", None)

    @property
    def close_code(self) -> int | None:
        """The close code received (1005 if none), 1006 once closed abnormally, else None."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason received, empty once closed abnormally, else None."""
        return self.protocol.close_reason

    @property
    def latency(self) -> float:
        """Round-trip time of the last ping answered, in seconds; 0 until one is."""
        return self._pings.latency

    def _closed_exc(self) -> ConnectionClosed:
        """The exception for using this connection once it is closing or closed."""
        protocol = self.protocol
        rcvd, sent = protocol.close_rcvd, protocol.close_sent
        ok = (
            rcvd is not None
            and sent is not None
            and rcvd.code in OK_CLOSE_CODES
            and sent.code in OK_CLOSE_CODES
        )
        exc_type = ConnectionClosedOK if ok else ConnectionClosedError
        return exc_type(rcvd, sent, protocol.close_rcvd_then_sent)

    def _closing_queue(self) -> None:
        """Once the connection is no longer OPEN, keep the queue of received frames in step.

        No frame comes after the peer's close frame or a failure: the queue ends. Once this
        side sent its close frame, reading never pauses any more, since the peer's close frame
        may wait behind messages that nobody will read.
        """
        if not self.protocol.receiving and not self.recv_messages.closed:
            self.recv_messages.close()
        elif self.protocol.close_sent is not None and self.recv_messages.pausing:
            self.recv_messages.stop_pausing()

    def _raise_if_closed(self) -> None:
        """Raise :meth:`_closed_exc` if the connection is closing or closed."""
        state = self.protocol.state
        if state is CLOSING or state is CLOSED:
            raise self._closed_exc() from self.protocol.parser_exc


class BroadcastResult(NamedTuple):
    """What a ``broadcast()`` did."""

    sent: int
    """Connections the message was written to, or queued for."""
    skipped: int
    """Open connections skipped: their write buffer was past ``write_limit``, a fragmented
    message was underway, or (threads only) another thread was writing to the socket."""


def broadcast_message(message: object) -> str | bytes:
    """Check the message of a ``broadcast()``; bytes-like messages become :class:`bytes`.

    Raises:
        TypeError: if ``message`` is neither :class:`str` nor bytes-like.
    """
    if isinstance(message, (str, bytes)):
        return message
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    raise TypeError(f"message must be str or bytes-like, not {type(message).__name__}")


def is_text(fragment: object) -> bool:
    """Whether a fragment is text (str) rather than bytes-like.

    Raises:
        TypeError: if it is neither.
    """
    if isinstance(fragment, str):
        return True
    if isinstance(fragment, (bytes, bytearray, memoryview)):
        return False
    raise TypeError(f"fragment must be str or bytes-like, not {type(fragment).__name__}")


def as_bytes(data: Data | BytesLike) -> bytes:
    """``data`` as bytes: UTF-8 for text."""
    return data.encode() if isinstance(data, str) else bytes(data)


def format_address(address: Any) -> str:
    """A socket address for logs: ``host:port``, ``[v6]:port``, or a Unix socket path."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) or "unix socket"
