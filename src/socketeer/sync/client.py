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

import logging
import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from ..client import MAX_REDIRECTS, Backoff, Redirects, is_transient
from ..exceptions import InvalidMessage, InvalidStatus
from ..options import (
    CLOSE_TIMEOUT,
    MAX_QUEUE,
    OPEN_TIMEOUT,
    PING_INTERVAL,
    PING_TIMEOUT,
    WRITE_LIMIT,
    ConnectionOptions,
)
from ..protocol.base import MAX_SIZE
from ..protocol.client import USER_AGENT, ClientProtocol
from ..protocol.extensions.base import ClientExtensionFactory
from ..protocol.extensions.permessage_deflate import enable_client_permessage_deflate
from ..typedefs import LoggerLike, Origin, Subprotocol
from ..uri import WebSocketURI, parse_uri
from .connection import Connection

__all__ = ["connect", "reconnect", "ClientConnection", "Backoff", "MAX_REDIRECTS"]

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


class ClientConnection(Connection):
    """The client side of a WebSocket connection, returned by :func:`connect`."""

    def __init__(
        self, sock: socket.socket, protocol: ClientProtocol, options: ConnectionOptions
    ) -> None:
        super().__init__(sock, protocol, options)
        self.protocol: ClientProtocol = protocol

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


def connect(
    uri: str,
    *,
    origin: Origin | None = None,
    subprotocols: Sequence[Subprotocol] | None = None,
    compression: str | None = "deflate",
    extensions: Sequence[ClientExtensionFactory] | None = None,
    additional_headers: HeadersLike | None = None,
    user_agent_header: str | None = USER_AGENT,
    open_timeout: float | None = OPEN_TIMEOUT,
    ping_interval: float | None = PING_INTERVAL,
    ping_timeout: float | None = PING_TIMEOUT,
    close_timeout: float | None = CLOSE_TIMEOUT,
    max_size: int | None = MAX_SIZE,
    max_queue: int | None = MAX_QUEUE,
    write_limit: int = WRITE_LIMIT,
    ssl: ssl_module.SSLContext | None = None,
    unix: str | None = None,
    sock: socket.socket | None = None,
    server_hostname: str | None = None,
    max_redirects: int = MAX_REDIRECTS,
    logger: LoggerLike | None = None,
) -> ClientConnection:
    """Open a WebSocket connection; the arguments are those of :func:`socketeer.connect`.

    To reconnect whenever the connection ends, use :class:`reconnect` instead.

    Args:
        uri: the ``ws://`` or ``wss://`` URI to connect to.
        origin: the ``Origin`` header to send.
        subprotocols: the subprotocols to offer, in order of preference.
        compression: ``"deflate"`` (the default) offers permessage-deflate; ``None`` does
            not.
        extensions: more extensions, or your own permessage-deflate settings.
        additional_headers: more headers for the handshake request (cookies, tokens).
        user_agent_header: the ``User-Agent`` header; ``None`` sends none.
        open_timeout: seconds to connect, TLS, handshake and redirects included; ``None``
            waits forever.
        ping_interval: seconds between keepalive pings; ``None`` disables them.
        ping_timeout: seconds to wait for a keepalive pong.
        close_timeout: seconds to wait for the closing handshake.
        max_size: the largest message accepted, in bytes; ``None`` for no limit.
        max_queue: whole messages waiting unread before reading pauses.
        write_limit: bytes waiting to be written above which ``send()`` waits, and
            :func:`~socketeer.sync.broadcast` skips the connection.
        ssl: an :class:`ssl.SSLContext` for ``wss://``; a default, verifying context
            otherwise.
        unix: connect to this Unix socket path instead of the URI's host and port.
        sock: use this connected socket instead (the connection then owns it).
        server_hostname: the host name for TLS (SNI and verification); the URI's by
            default.
        max_redirects: most HTTP redirects to follow (none over ``unix`` or ``sock``).
        logger: where to log; ``socketeer.client`` by default.

    Raises:
        InvalidURI: if ``uri`` is not a valid WebSocket URI.
        OSError: if the TCP connection fails.
        TimeoutError: if opening takes longer than ``open_timeout``.
        HandshakeError: if the opening handshake fails; :exc:`InvalidStatus` carries the
            server's response when it refused.
        SecurityError: after more than ``max_redirects`` redirects, or one from ``wss://``
            to ``ws://``.
    """
    opener = reconnect(
        uri,
        origin=origin,
        subprotocols=subprotocols,
        compression=compression,
        extensions=extensions,
        additional_headers=additional_headers,
        user_agent_header=user_agent_header,
        open_timeout=open_timeout,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        max_size=max_size,
        max_queue=max_queue,
        write_limit=write_limit,
        ssl=ssl,
        unix=unix,
        server_hostname=server_hostname,
        max_redirects=max_redirects,
        logger=logger,
    )
    return opener.create_connection(sock)


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

    The arguments are those of :func:`connect`, with ``backoff`` and without ``sock`` (a
    socket can serve a single connection).

    Args:
        backoff: delays between attempts; see :class:`~socketeer.Backoff`.

    Raises:
        InvalidURI: if ``uri`` is not a valid WebSocket URI.
        ValueError: if another argument is invalid.
    """

    def __init__(
        self,
        uri: str,
        *,
        origin: Origin | None = None,
        subprotocols: Sequence[Subprotocol] | None = None,
        compression: str | None = "deflate",
        extensions: Sequence[ClientExtensionFactory] | None = None,
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
        open_timeout: float | None = OPEN_TIMEOUT,
        ping_interval: float | None = PING_INTERVAL,
        ping_timeout: float | None = PING_TIMEOUT,
        close_timeout: float | None = CLOSE_TIMEOUT,
        max_size: int | None = MAX_SIZE,
        max_queue: int | None = MAX_QUEUE,
        write_limit: int = WRITE_LIMIT,
        ssl: ssl_module.SSLContext | None = None,
        unix: str | None = None,
        server_hostname: str | None = None,
        max_redirects: int = MAX_REDIRECTS,
        backoff: Backoff | None = None,
        logger: LoggerLike | None = None,
    ) -> None:
        self.uri = parse_uri(uri)
        extensions = enable_client_permessage_deflate(extensions, compression)
        if ssl is not None and not self.uri.secure:
            raise ValueError("ssl is for wss:// URIs, not ws://")
        self.origin = origin
        self.subprotocols = subprotocols
        self.extensions = extensions
        self.additional_headers = additional_headers
        self.user_agent_header = user_agent_header
        self.open_timeout = open_timeout
        self.options = ConnectionOptions(
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            write_limit=write_limit,
        )
        self.max_size = max_size
        self.ssl = ssl
        self.unix = unix
        self.server_hostname = server_hostname
        self.max_redirects = max_redirects
        self.backoff = backoff or Backoff()
        """Delays between attempts."""
        self.logger: LoggerLike = logger or logging.getLogger("socketeer.client")
        # Fail now, not when connecting, on invalid arguments (e.g. subprotocols).
        self._new_protocol(self.uri)

    def _new_protocol(self, uri: WebSocketURI) -> ClientProtocol:
        return ClientProtocol(
            uri,
            origin=self.origin,
            extensions=self.extensions,
            subprotocols=self.subprotocols,
            max_size=self.max_size,
            logger=self.logger,
        )

    def create_connection(self, sock: socket.socket | None = None) -> ClientConnection:
        """Open one connection, following redirects, all within ``open_timeout``.

        Args:
            sock: a connected socket to use instead of connecting (it then belongs to the
                connection, and no redirect is followed).

        Raises:
            OSError: if the TCP connection fails.
            TimeoutError: if it takes longer than ``open_timeout``.
            HandshakeError: if the opening handshake fails.
        """
        open_timeout = self.open_timeout
        deadline = None if open_timeout is None else time.monotonic() + open_timeout

        def remaining() -> float | None:
            if deadline is None:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out after {open_timeout} s during opening handshake")
            return left

        # A Unix socket path or a given socket leads to one server: nowhere else to go.
        enabled = self.unix is None and sock is None
        redirects = Redirects(self.uri, self.max_redirects, enabled=enabled)
        while True:
            try:
                return self._connect(redirects.uri, sock, remaining)
            except InvalidStatus as exc:
                location = redirects.follow(exc.response)
                if location is None:
                    raise
                self.logger.info("redirected to %s", location)

    def _connect(
        self,
        uri: WebSocketURI,
        sock: socket.socket | None,
        remaining: Callable[[], float | None],
    ) -> ClientConnection:
        if sock is None:
            if self.unix is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(remaining())
                    sock.connect(self.unix)
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
                context = self.ssl or ssl_module.create_default_context()
                server_hostname = self.server_hostname or uri.host
                sock = context.wrap_socket(sock, server_hostname=server_hostname)
            connection = ClientConnection(sock, self._new_protocol(uri), self.options)
            connection.handshake(self.additional_headers, self.user_agent_header, remaining())
        except BaseException:
            if connection is not None:
                connection._abort()
            sock.close()
            raise
        self.logger.info("connection open to %s", uri.host)
        return connection

    def __iter__(self) -> Iterator[ClientConnection]:
        """Yield an open connection, then a new one each time the loop comes round."""
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
