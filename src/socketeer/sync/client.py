"""WebSocket clients on threads: :func:`connect`, :class:`reconnect`, :class:`ClientConnection`.

``connect(uri)`` opens a connection in the calling thread (TCP, TLS and the opening
handshake, following redirects, all within ``open_timeout``) and returns it with its reading
thread started; ``with connect(uri) as ws:`` closes it on exit.

``for ws in reconnect(uri):`` is the threaded twin of the asyncio client's
``async for ws in connect(uri):``: it yields a new connection after each one ends, retrying
transient failures with exponential backoff and jitter, and gives up on errors that will not
heal. It has a name of its own because ``connect(uri)`` returns an open connection, and a
connection already iterates over its messages: ``for message in connect(uri)``.
"""

from __future__ import annotations

import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..client import MAX_REDIRECTS, Backoff, Redirects, is_transient
from ..exceptions import InvalidMessage, InvalidStatus
from ..options import ClientOptions, ClientOptionsDict, ConnectionOptions
from ..protocol.client import USER_AGENT, ClientProtocol, HeadersLike
from ..typedefs import LoggerLike
from ..uri import WebSocketURI, parse_uri
from .connection import Connection

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["connect", "reconnect", "ClientConnection", "Backoff", "MAX_REDIRECTS"]


class ClientConnection(Connection):
    """The client side of a WebSocket connection, returned by :func:`connect`."""

    def __init__(
        self, sock: socket.socket, protocol: ClientProtocol, options: ConnectionOptions
    ) -> None:
        super().__init__(sock, protocol, options)
        self.protocol: ClientProtocol = protocol

    def connection_closed(self) -> None:
        # The reading thread runs, and so this is called, only once the connection opened.
        self.logger.info("connection closed with code %s", self.close_code)

    def handshake(
        self,
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
        timeout: float | None = None,
    ) -> None:
        """Send the request, read the response; start the reading thread if it opened.

        Raises:
            TimeoutError: if the response did not come within ``timeout``.
            HandshakeError: if the handshake failed.
        """
        protocol = self.protocol
        request = protocol.connect(
            additional_headers=additional_headers, user_agent=user_agent_header
        )
        protocol.send_request(request)
        self._write_pending()
        self.receive_handshake(timeout)
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        if protocol.response is None:
            raise InvalidMessage("connection closed during opening handshake")
        self.start()


def connect(uri: str, **options: Unpack[ClientOptionsDict]) -> ClientConnection:
    """Open a WebSocket connection; the arguments are those of :func:`socketeer.connect`.

    To reconnect whenever the connection ends, use :class:`reconnect` instead.

    Args:
        uri: the ``ws://`` or ``wss://`` URI to connect to.
        options: the fields of :class:`~socketeer.options.ClientOptions`, which documents
            each with its default (``backoff`` is for :class:`reconnect`).

    Raises:
        InvalidURI: if ``uri`` is not a valid WebSocket URI.
        TypeError, ValueError: if an option is invalid.
        OSError: if the TCP connection fails.
        TimeoutError: if opening takes longer than ``open_timeout``.
        HandshakeError: if the opening handshake fails; :exc:`InvalidStatus` carries the
            server's response when it refused.
        SecurityError: after more than ``max_redirects`` redirects, or one from ``wss://``
            to ``ws://``.
    """
    return reconnect(uri, **options).create_connection()


class reconnect:  # noqa: N801 - a function to its users: for ws in reconnect(uri)
    """Connect again and again: ``for ws in reconnect(uri): ...``.

    The threaded twin of ``async for ws in socketeer.connect(uri)``. Each turn of the loop
    gets a new, open connection; when the body of the loop is done with it (typically once
    it closed: :exc:`~socketeer.exceptions.ConnectionClosed` from ``recv()``, or the end of
    ``for message in ws``), the next turn closes it and connects again. Failures that will
    not heal (an invalid URI or handshake, a 4xx answer other than 429, too many
    redirects, a certificate that fails verification) are raised; others (refused or lost
    TCP connections, timeouts, 5xx and 429 answers) are logged and retried after
    :attr:`backoff`'s delay, which starts again from the beginning after each successful
    connection. As with ``async for``, an exception raised in the body leaves the loop::

        for ws in reconnect("ws://example.com/feed"):
            try:
                for message in ws:
                    handle(message)
            except ConnectionClosed:
                continue

    Leaving the loop (``break``, an exception) closes the last connection once the iterator
    is finalized, which CPython does at once.

    Why not ``for ws in connect(uri)``, as with asyncio? There, ``await connect(uri)`` and
    ``async for ws in connect(uri)`` tell a single connection from a series of them. Here,
    ``connect(uri)`` returns an open connection, which iterates over its *messages*: the
    same expression cannot also iterate over connections.

    The arguments are those of :func:`connect`; ``backoff`` sets the delays between
    attempts, and ``sock`` cannot serve (a socket can serve a single connection).

    Raises:
        InvalidURI: if ``uri`` is not a valid WebSocket URI.
        TypeError, ValueError: if an option is invalid; ValueError, when the loop starts,
            if it is ``sock``.
    """

    def __init__(self, uri: str, **options: Unpack[ClientOptionsDict]) -> None:
        self.uri = parse_uri(uri)
        self.options = ClientOptions(**options)
        self.options.check_uri(self.uri)
        self.backoff = self.options.get_backoff()
        """Delays between attempts."""
        self.logger: LoggerLike = self.options.get_logger()

    def create_connection(self) -> ClientConnection:
        """Open one connection, following redirects, all within ``open_timeout``.

        Raises:
            OSError: if the TCP connection fails.
            TimeoutError: if it takes longer than ``open_timeout``.
            HandshakeError: if the opening handshake fails.
        """
        options = self.options
        open_timeout = options.open_timeout
        deadline = None if open_timeout is None else time.monotonic() + open_timeout

        def remaining() -> float | None:
            if deadline is None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {open_timeout} s during opening handshake")
            return left

        # A Unix socket path or a given socket leads to one server: nowhere else to go.
        enabled = options.unix is None and options.sock is None
        redirects = Redirects(self.uri, options.max_redirects, enabled=enabled)
        while True:
            try:
                return self._connect(redirects.uri, remaining)
            except InvalidStatus as exc:
                location = redirects.follow(exc.response)
                if location is None:
                    raise
                self.logger.info("redirected to %s", location)

    def _connect(
        self, uri: WebSocketURI, remaining: Callable[[], float | None]
    ) -> ClientConnection:
        options = self.options
        sock = options.sock
        if sock is None:
            if options.unix is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(remaining())
                    sock.connect(options.unix)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((uri.host, uri.port), remaining())
        connection: ClientConnection | None = None
        try:
            sock.settimeout(remaining())
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            if uri.secure:
                context = options.ssl or ssl_module.create_default_context()
                server_hostname = options.server_hostname or uri.host
                sock = context.wrap_socket(sock, server_hostname=server_hostname)
            protocol = options.new_protocol(uri)
            connection = ClientConnection(sock, protocol, options.connection_options())
            connection.handshake(
                options.additional_headers, options.user_agent_header, remaining()
            )
        except BaseException:
            if connection is not None:
                connection._abort()
            sock.close()
            raise
        self.logger.info("connection open to %s", uri.host)
        return connection

    def __iter__(self) -> Iterator[ClientConnection]:
        """Yield an open connection, then a new one each time the loop comes round.

        Raises:
            ValueError: if the options give a socket, which can serve a single connection.
        """
        if self.options.sock is not None:
            raise ValueError("cannot reconnect with a given socket")
        attempt = 0
        while True:
            try:
                connection = self.create_connection()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = self.backoff.delay(attempt)
                attempt += 1
                self.logger.info("connection failed (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                continue
            attempt = 0
            try:
                yield connection
            finally:
                connection.close()
