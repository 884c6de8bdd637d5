"""WebSocket clients on asyncio: :func:`connect` and :class:`ClientConnection`.

``await connect(uri)`` opens a connection; ``async with connect(uri) as ws:`` closes it on
exit; ``async for ws in connect(uri):`` reconnects after transient failures, with exponential
backoff and jitter, and gives up on errors that will not heal.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import AsyncIterator, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

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
from ..protocol.base import MAX_SIZE, Event
from ..protocol.client import USER_AGENT, ClientProtocol
from ..protocol.extensions.base import ClientExtensionFactory
from ..protocol.extensions.permessage_deflate import enable_client_permessage_deflate
from ..protocol.http11 import Response
from ..typedefs import LoggerLike, Origin, Subprotocol
from ..uri import WebSocketURI, parse_uri
from .connection import Connection

__all__ = ["connect", "ClientConnection", "Backoff", "MAX_REDIRECTS"]

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


class ClientConnection(Connection):
    """The client side of a WebSocket connection, returned by :func:`connect`."""

    def __init__(self, protocol: ClientProtocol, options: ConnectionOptions) -> None:
        super().__init__(protocol, options)
        self.protocol: ClientProtocol = protocol
        self.handshake_done: asyncio.Future[None] = self.loop.create_future()

    def handshake_event(self, event: Event) -> None:
        assert isinstance(event, Response)
        if not self.handshake_done.done():
            self.handshake_done.set_result(None)

    def connection_closed(self, exc: Exception | None) -> None:
        if not self.handshake_done.done():
            self.handshake_done.set_result(None)
        elif self.protocol.handshake_exc is None:
            self.logger.info("connection closed with code %s", self.close_code)


class connect:  # noqa: N801 - a function to its users: awaitable, context manager, iterator
    """Open a WebSocket connection.

    Args:
        uri: the ``ws://`` or ``wss://`` URI to connect to.
        origin: the ``Origin`` header to send.
        subprotocols: the subprotocols to offer, in order of preference.
        compression: ``"deflate"`` (the default) offers permessage-deflate; ``None`` does
            not.
        extensions: more extensions, or your own permessage-deflate settings.
        additional_headers: more headers for the handshake request (cookies, tokens).
        user_agent_header: the ``User-Agent`` header; ``None`` sends none.
        open_timeout: seconds to connect, TLS and handshake included; ``None`` waits
            forever.
        ping_interval: seconds between keepalive pings; ``None`` disables them.
        ping_timeout: seconds to wait for a keepalive pong.
        close_timeout: seconds to wait for the closing handshake.
        max_size: the largest message accepted, in bytes; ``None`` for no limit.
        max_queue: whole messages waiting unread before reading pauses.
        write_limit: bytes buffered for writing above which ``send()`` waits.
        ssl: an :class:`ssl.SSLContext` for ``wss://``; a default, verifying context
            otherwise.
        unix: connect to this Unix socket path instead of the URI's host and port.
        sock: use this connected socket instead.
        server_hostname: the host name for TLS (SNI and verification); the URI's by
            default.
        max_redirects: most HTTP redirects to follow.
        backoff: delays between attempts when iterating with ``async for``.
        logger: where to log; ``socketeer.client`` by default.
        kwargs: passed to :meth:`asyncio.loop.create_connection`.

    Raises:
        InvalidURI: if ``uri`` is not a valid WebSocket URI.
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
        sock: socket.socket | None = None,
        server_hostname: str | None = None,
        max_redirects: int = MAX_REDIRECTS,
        backoff: Backoff | None = None,
        logger: LoggerLike | None = None,
        **kwargs: Any,
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
        self.sock = sock
        self.server_hostname = server_hostname
        self.max_redirects = max_redirects
        self.backoff = backoff or Backoff()
        self.logger: LoggerLike = logger or logging.getLogger("socketeer.client")
        self.kwargs = kwargs
        self.connection: ClientConnection | None = None
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

    async def create_connection(self) -> ClientConnection:
        """Connect, following redirects, all within ``open_timeout``.

        Raises:
            OSError: if the TCP connection fails.
            TimeoutError: if it takes longer than ``open_timeout``.
            HandshakeError: if the opening handshake fails; :exc:`InvalidStatus` carries
                the server's response when it refused.
        """
        try:
            connection = await asyncio.wait_for(self._follow_redirects(), self.open_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"timed out after {self.open_timeout} s during opening handshake"
            ) from None
        self.connection = connection
        return connection

    async def _follow_redirects(self) -> ClientConnection:
        # A Unix socket path or a given socket leads to one server: nowhere else to go.
        enabled = self.unix is None and self.sock is None
        redirects = Redirects(self.uri, self.max_redirects, enabled=enabled)
        while True:
            try:
                return await self._connect(redirects.uri)
            except InvalidStatus as exc:
                location = redirects.follow(exc.response)
                if location is None:
                    raise
                self.logger.info("redirected to %s", location)

    async def _connect(self, uri: WebSocketURI) -> ClientConnection:
        loop = asyncio.get_running_loop()
        protocol = self._new_protocol(uri)
        options = self.options

        def factory() -> ClientConnection:
            return ClientConnection(protocol, options)

        ssl: ssl_module.SSLContext | None = None
        if uri.secure:
            ssl = self.ssl or ssl_module.create_default_context()
        server_hostname = (self.server_hostname or uri.host) if ssl is not None else None
        connection: ClientConnection
        if self.unix is not None:
            _, connection = await loop.create_unix_connection(
                factory, self.unix, ssl=ssl, server_hostname=server_hostname, **self.kwargs
            )
        elif self.sock is not None:
            _, connection = await loop.create_connection(
                factory, sock=self.sock, ssl=ssl, server_hostname=server_hostname, **self.kwargs
            )
        else:
            _, connection = await loop.create_connection(
                factory,
                uri.host,
                uri.port,
                ssl=ssl,
                server_hostname=server_hostname,
                **self.kwargs,
            )
        try:
            request = protocol.connect(
                additional_headers=self.additional_headers, user_agent=self.user_agent_header
            )
            protocol.send_request(request)
            connection._write_pending()
            await connection.handshake_done
        except BaseException:
            if connection.transport is not None:
                connection.transport.abort()
            raise
        if protocol.handshake_exc is not None:
            if connection.transport is not None:
                connection.transport.close()
            raise protocol.handshake_exc
        if protocol.response is None:
            raise InvalidMessage("connection closed during opening handshake")
        self.logger.info("connection open to %s", uri.host)
        connection.start_keepalive()
        return connection

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self.create_connection().__await__()

    async def __aenter__(self) -> ClientConnection:
        return await self.create_connection()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.connection is not None:
            await self.connection.__aexit__(exc_type, exc_value, traceback)

    async def __aiter__(self) -> AsyncIterator[ClientConnection]:
        """Connect again and again: yield each connection, retry after transient failures.

        Leaving the loop with ``break`` closes the last connection only when the iterator is
        finalized; use ``contextlib.aclosing`` (or close the connection) to close it at once.

        Failures that will not heal (an invalid handshake, a 4xx answer other than 429, too
        many redirects, a certificate that fails verification) are raised; others (refused or
        lost TCP connections, timeouts, 5xx and 429 answers) are logged and retried after
        :attr:`backoff`'s delay. The delay starts again from the beginning after a successful
        connection.
        """
        attempt = 0
        while True:
            try:
                connection = await self.create_connection()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                delay = self.backoff.delay(attempt)
                attempt += 1
                self.logger.info("connection failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            try:
                yield connection
            finally:
                await connection.close()
