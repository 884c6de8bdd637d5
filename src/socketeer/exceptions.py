"""Every exception socketeer raises, in one tree.

.. code-block:: text

    SocketeerError
    ├── ConnectionClosed                 the connection is closed (carries both Close frames)
    │   ├── ConnectionClosedOK           ... with 1000 or 1001 both ways
    │   └── ConnectionClosedError        ... any other way; the cause is chained
    ├── InvalidURI (+ValueError)         not a ws:// or wss:// URI
    ├── InvalidState                     local misuse: an operation the state does not allow
    ├── ConcurrencyError (+RuntimeError) two coroutines or threads reading at once
    ├── MultipleValuesError (+LookupError) a header given several times, read as one
    ├── HandshakeError                   the opening handshake failed
    │   ├── InvalidMessage               an HTTP message that cannot be parsed
    │   ├── InvalidHeader                a missing or malformed header
    │   │   ├── InvalidHeaderFormat      ... that breaks its grammar
    │   │   ├── InvalidHeaderValue       ... with a value that is not allowed
    │   │   ├── InvalidOrigin            ... an Origin outside the allow-list
    │   │   └── InvalidUpgrade           ... Upgrade or Connection without "websocket"/"upgrade"
    │   ├── InvalidStatus                the server answered something other than 101
    │   ├── NegotiationError             no agreement on an extension or subprotocol
    │   │   └── InvalidParameter…        (DuplicateParameter, InvalidParameterName/Value)
    │   └── SecurityError                a limit was exceeded (line length, header count, ...)
    ├── ProtocolError                    the peer broke RFC 6455 or RFC 7692
    ├── PayloadTooBig                    a message exceeds max_size (a limit, not a fault)
    ├── RPCError                         the RPC layer (socketeer.rpc)
    │   ├── RemoteError                  the remote end answered a call with an error
    │   ├── CallTimeout (+TimeoutError)  a call got no answer within its timeout
    │   └── ConnectionLost               the connection closed before a call got its answer
    └── BrokerError                      the pub/sub layer (socketeer.pubsub)
        ├── BrokerUnavailable (+ConnectionError) the broker cannot be reached right now
        └── SlowConsumer                 a member could not keep up with its rooms

Local faults (misuse of the API) raise at once. Peer faults never escape
:meth:`~socketeer.protocol.Protocol.receive_data`: the protocol fails the connection with the
right close code and keeps the cause, which drivers chain to the
:exc:`ConnectionClosedError` they raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol.frames import Close
    from .protocol.http11 import Response
    from .typedefs import JSONValue

__all__ = [
    "SocketeerError",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "InvalidURI",
    "InvalidState",
    "ConcurrencyError",
    "MultipleValuesError",
    "HandshakeError",
    "InvalidMessage",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidOrigin",
    "InvalidUpgrade",
    "InvalidStatus",
    "NegotiationError",
    "DuplicateParameter",
    "InvalidParameterName",
    "InvalidParameterValue",
    "SecurityError",
    "ProtocolError",
    "PayloadTooBig",
    "RPCError",
    "RemoteError",
    "CallTimeout",
    "ConnectionLost",
    "BrokerError",
    "BrokerUnavailable",
    "SlowConsumer",
]


class SocketeerError(Exception):
    """Base class for every exception socketeer raises."""


# Closed connections


class ConnectionClosed(SocketeerError):
    """Raised when using a connection that is closed.

    Args:
        rcvd: the close frame received from the peer, if any.
        sent: the close frame sent to the peer, if any.
        rcvd_then_sent: whether the received close came before the sent one; ``None`` when
            only one of them, or neither, happened.
    """

    def __init__(
        self, rcvd: Close | None, sent: Close | None, rcvd_then_sent: bool | None = None
    ) -> None:
        self.rcvd = rcvd
        """Close frame received from the peer, or ``None``."""
        self.sent = sent
        """Close frame sent to the peer, or ``None``."""
        self.rcvd_then_sent = rcvd_then_sent
        """Whether the peer started the closing handshake; ``None`` when it did not complete."""
        super().__init__(rcvd, sent, rcvd_then_sent)

    def __str__(self) -> str:
        if self.rcvd is None:
            if self.sent is None:
                return "no close frame received or sent"
            return f"sent {self.sent}; no close frame received"
        if self.sent is None:
            return f"received {self.rcvd}; no close frame sent"
        if self.rcvd_then_sent:
            return f"received {self.rcvd}; then sent {self.sent}"
        return f"sent {self.sent}; then received {self.rcvd}"

    @property
    def code(self) -> int:
        """The close code the application sees: the peer's, else 1006 (abnormal closure)."""
        return 1006 if self.rcvd is None else self.rcvd.code

    @property
    def reason(self) -> str:
        """The close reason the application sees: the peer's, else empty."""
        return "" if self.rcvd is None else self.rcvd.reason


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally: 1000 (normal) or 1001 (going away) both ways."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed abnormally; the cause, when known, is in ``__cause__``."""


# Local misuse


class InvalidURI(SocketeerError, ValueError):
    """A string that is not a valid ws:// or wss:// URI."""

    def __init__(self, uri: str, msg: str) -> None:
        self.uri = uri
        self.msg = msg
        super().__init__(uri, msg)

    def __str__(self) -> str:
        return f"{self.uri!r} isn't a valid WebSocket URI: {self.msg}"


class InvalidState(SocketeerError):
    """An operation that the connection's current state does not allow.

    For example sending a message once the closing handshake has started.
    """


class ConcurrencyError(SocketeerError, RuntimeError):
    """Two coroutines or threads tried to read (or write a fragmented message) at once."""


class MultipleValuesError(SocketeerError, LookupError):
    """A header read as a single value appears several times."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"multiple values for header {self.name}"


# Opening handshake


class HandshakeError(SocketeerError):
    """The opening handshake failed."""


class InvalidMessage(HandshakeError):
    """An HTTP message that cannot be parsed (or that ended too early)."""


class InvalidHeader(HandshakeError):
    """An HTTP header that is missing or that has an unacceptable value."""

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name = name
        self.value = value
        super().__init__(name, value)

    def __str__(self) -> str:
        if self.value is None:
            return f"missing {self.name} header"
        if self.value == "":
            return f"empty {self.name} header"
        return f"invalid {self.name} header: {self.value}"


class InvalidHeaderFormat(InvalidHeader):
    """A header value that does not follow its grammar."""

    def __init__(self, name: str, error: str, header: str, pos: int) -> None:
        super().__init__(name, f"{error} at {pos} in {header}")


class InvalidHeaderValue(InvalidHeader):
    """A header value that is well-formed but not acceptable."""


class InvalidOrigin(InvalidHeader):
    """An Origin header that is missing or outside the allow-list."""

    def __init__(self, origin: str | None) -> None:
        super().__init__("Origin", origin)


class InvalidUpgrade(InvalidHeader):
    """An Upgrade or Connection header without the WebSocket upgrade in it."""


class InvalidStatus(HandshakeError):
    """The server answered the upgrade with another status than 101."""

    def __init__(self, response: Response) -> None:
        self.response = response
        """The server's HTTP response."""
        super().__init__(response)

    def __str__(self) -> str:
        return f"server rejected WebSocket connection: HTTP {self.response.status_code:d}"


class NegotiationError(HandshakeError):
    """No agreement on an extension or a subprotocol."""


class DuplicateParameter(NegotiationError):
    """An extension parameter given twice."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"duplicate parameter: {self.name}"


class InvalidParameterName(NegotiationError):
    """An extension parameter that the extension does not know."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"invalid parameter name: {self.name}"


class InvalidParameterValue(NegotiationError):
    """An extension parameter with a value that the extension does not allow."""

    def __init__(self, name: str, value: str | None) -> None:
        self.name = name
        self.value = value
        super().__init__(name, value)

    def __str__(self) -> str:
        if self.value is None:
            return f"missing value for parameter {self.name}"
        return f"invalid value for parameter {self.name}: {self.value}"


class SecurityError(HandshakeError):
    """A limit was exceeded during the handshake (line length, header count, body size)."""


# Peer faults after the handshake


class ProtocolError(SocketeerError):
    """The peer broke RFC 6455 or RFC 7692."""


class PayloadTooBig(SocketeerError):
    """A message larger than ``max_size``.

    Args:
        size: the size seen so far, in bytes, when it is known.
        max_size: the limit, in bytes.
        current_size: what was already received of the message, in bytes.
    """

    def __init__(self, size: int | None, max_size: int, current_size: int = 0) -> None:
        self.size = size
        self.max_size = max_size
        self.current_size = current_size
        super().__init__(size, max_size, current_size)

    def __str__(self) -> str:
        if self.size is None:
            return f"message exceeds limit of {self.max_size} bytes"
        if self.current_size:
            return (
                f"message of {self.current_size + self.size} bytes or more "
                f"exceeds limit of {self.max_size} bytes"
            )
        return f"frame with {self.size} bytes exceeds limit of {self.max_size} bytes"


# Upper layers


class RPCError(SocketeerError):
    """Base class for the errors of the RPC layer."""


class RemoteError(RPCError):
    """The remote end answered a call with an error response.

    Args:
        code: the error code: -32000 when the remote method raised an exception; see
            :class:`~socketeer.rpc.ErrorCode` for the others.
        message: the error's short description.
        data: the error's details, or ``None`` when it had none.
    """

    def __init__(self, code: int, message: str, data: JSONValue = None) -> None:
        self.code = code
        """Error code."""
        self.message = message
        """Short description: ``str(exc)`` of the remote exception for -32000."""
        self.data = data
        """Details: a string for the codes of JSON-RPC 2.0, ``{"type": ..., "message": ...,
        "traceback": ...}`` for -32000."""
        details = data if isinstance(data, dict) else {}
        type_name = details.get("type")
        self.type_name = type_name if isinstance(type_name, str) else None
        """Class name of the remote exception (a JavaScript error's ``name``), if known."""
        remote_traceback = details.get("traceback")
        self.traceback = remote_traceback if isinstance(remote_traceback, str) else None
        """Traceback of the remote exception, when the remote end runs in debug mode."""
        super().__init__(code, message, data)

    def __str__(self) -> str:
        if self.type_name is not None:
            if self.message in ("", self.type_name):
                return self.type_name
            return f"{self.type_name}: {self.message}"
        if isinstance(self.data, str) and self.data:
            return f"{self.message}: {self.data} (code {self.code})"
        return f"{self.message} (code {self.code})"


class CallTimeout(RPCError, TimeoutError):
    """A call got no answer within its timeout, on the caller's side.

    The caller also sent ``$/cancel``, so that the callee stops working on it; a late answer
    is ignored. (A call that runs past the callee's own execution timeout is answered with a
    :class:`RemoteError` whose code is -32001 instead.)

    Args:
        method: the method called.
        timeout: the timeout, in seconds.
    """

    def __init__(self, method: str, timeout: float) -> None:
        self.method = method
        """Method called."""
        self.timeout = timeout
        """Timeout, in seconds."""
        super().__init__(method, timeout)
        # OSError reads two arguments as errno and strerror: these are not.
        self.errno = self.strerror = None

    def __str__(self) -> str:
        return f"call {self.method} timed out after {self.timeout:g} s"


class ConnectionLost(RPCError):
    """The connection closed before a call got its answer.

    Delivery is at most once: a call that was sent may or may not have run, and it is not
    sent again. Calls made once the connection is closed raise it too, without sending
    anything.

    Args:
        method: the method called.
        code: the close code received, 1006 (abnormal closure) if none.
        reason: the close reason received, or ``""``.
    """

    def __init__(self, method: str, code: int, reason: str = "") -> None:
        self.method = method
        """Method called."""
        self.code = code
        """Close code received; 1006 (abnormal closure) if none."""
        self.reason = reason
        """Close reason received."""
        super().__init__(method, code, reason)

    def __str__(self) -> str:
        why = f"code {self.code}, {self.reason}" if self.reason else f"code {self.code}"
        return f"connection closed ({why}) before call {self.method} was answered"


class BrokerError(SocketeerError):
    """Base class for the errors of the pub/sub brokers."""


class BrokerUnavailable(BrokerError, ConnectionError):
    """The broker cannot be reached right now: nothing was published (or read).

    The broker reconnects by itself; the same operation may succeed later.
    """


class SlowConsumer(BrokerError):
    """A member of a room could not keep up: its write buffer passed its limit.

    Attributes:
        room: the room whose publication found the member behind.
        buffered: bytes waiting in the member's write buffer then.
        limit: the limit it passed.
    """

    def __init__(self, room: str, buffered: int, limit: int) -> None:
        self.room = room
        """The room whose publication found the member behind."""
        self.buffered = buffered
        """Bytes waiting in the member's write buffer then."""
        self.limit = limit
        """The limit it passed."""
        super().__init__(room, buffered, limit)

    def __str__(self) -> str:
        return (
            f"member of room {self.room} has {self.buffered} bytes waiting to be written, "
            f"past the limit of {self.limit} bytes"
        )
