"""What the asyncio and the threaded connections share: everything that is not I/O.

:class:`ConnectionBase` reads the connection's public attributes from its sans-I/O protocol
and builds the :exc:`~socketeer.exceptions.ConnectionClosed` that both drivers raise; the
drivers subclass it (``socketeer.asyncio.connection`` and ``socketeer.sync.connection``).
"""

from __future__ import annotations

import uuid
from typing import Any

from .exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from .protocol.base import CLOSED, CLOSING, Protocol, State
from .protocol.frames import CloseCode
from .protocol.http11 import Request, Response
from .protocol.keepalive import Pings
from .typedefs import BytesLike, Data, Subprotocol

__all__ = ["ConnectionBase", "OK_CLOSE_CODES", "is_text", "as_bytes"]

OK_CLOSE_CODES = frozenset(
    {CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY, CloseCode.NO_STATUS_RCVD}
)
"""Close codes that make a normal closure when both close frames carry one (RFC 6455 7.4.1)."""


class ConnectionBase:
    """The attributes and the closed-connection error of a connection, from its protocol."""

    protocol: Protocol
    """The sans-I/O protocol the connection drives."""
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

    def _raise_if_closed(self) -> None:
        """Raise :meth:`_closed_exc` if the connection is closing or closed."""
        state = self.protocol.state
        if state is CLOSING or state is CLOSED:
            raise self._closed_exc() from self.protocol.parser_exc


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
