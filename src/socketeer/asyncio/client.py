"""WebSocket clients on asyncio: :func:`connect` and :class:`ClientConnection`.

``await connect(uri)`` opens a connection; ``async with connect(uri) as ws:`` closes it on
exit; ``async for ws in connect(uri):`` reconnects after transient failures, with exponential
backoff and jitter, and gives up on errors that will not heal.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import AsyncIterator, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..client import MAX_REDIRECTS, Backoff, Redirects, is_transient
from ..exceptions import InvalidMessage, InvalidStatus
from ..options import ClientOptions, ClientOptionsDict, ConnectionOptions
from ..protocol.base import Event
from ..protocol.client import ClientProtocol
from ..protocol.http11 import Response
from ..typedefs import LoggerLike
from ..uri import WebSocketURI, parse_uri
from .connection import Connection

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["connect", "ConnectOptions", "ClientConnection", "Backoff", "MAX_REDIRECTS"]


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


class ConnectOptions(ClientOptionsDict, total=False):
    """The keyword arguments of :class:`connect`: the fields of
    :class:`~socketeer.options.ClientOptions`, and these, for
    :meth:`asyncio.loop.create_connection` (``ssl_shutdown_timeout`` from Python 3.11 on).
    """

    family: int
    proto: int
    flags: int
    local_addr: tuple[str, int] | None
    ssl_handshake_timeout: float | None
    ssl_shutdown_timeout: float | None
    happy_eyeballs_delay: float | None
    interleave: int | None


class connect:  # noqa: N801 - a function to its users: awaitable, context manager, iterator
    """Open a WebSocket connection.

    Args:
        uri: the ``ws://`` or ``wss://`` URI to connect to.
        options: the fields of :class:`~socketeer.options.ClientOptions`, which documents
            each with its default; and the arguments of
            :meth:`asyncio.loop.create_connection` listed in :class:`ConnectOptions`.

    Raises:
        InvalidURI: if ``uri`` is not a valid WebSocket URI.
        TypeError, ValueError: if an option is invalid.
    """

    def __init__(self, uri: str, **options: Unpack[ConnectOptions]) -> None:
        self.uri = parse_uri(uri)
        self.options, self.kwargs = ClientOptions.split(options)  # kwargs: for the loop
        self.options.check_uri(self.uri)
        self.backoff = self.options.get_backoff()
        """Delays between attempts when iterating with ``async for``."""
        self.logger: LoggerLike = self.options.get_logger()
        self.connection: ClientConnection | None = None

    async def create_connection(self) -> ClientConnection:
        """Connect, following redirects, all within ``open_timeout``.

        Raises:
            OSError: if the TCP connection fails.
            TimeoutError: if it takes longer than ``open_timeout``.
            HandshakeError: if the opening handshake fails; :exc:`InvalidStatus` carries
                the server's response when it refused.
        """
        options = self.options
        try:
            connection = await asyncio.wait_for(self._follow_redirects(), options.open_timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"timed out after {options.open_timeout} s during opening handshake"
            ) from None
        self.connection = connection
        return connection

    async def _follow_redirects(self) -> ClientConnection:
        # A Unix socket path or a given socket leads to one server: nowhere else to go.
        options = self.options
        enabled = options.unix is None and options.sock is None
        redirects = Redirects(self.uri, options.max_redirects, enabled=enabled)
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
        options = self.options
        protocol = options.new_protocol(uri)
        connection_options = options.connection_options()

        def factory() -> ClientConnection:
            return ClientConnection(protocol, connection_options)

        ssl: ssl_module.SSLContext | None = None
        if uri.secure:
            ssl = options.ssl or ssl_module.create_default_context()
        server_hostname = (options.server_hostname or uri.host) if ssl is not None else None
        connection: ClientConnection
        if options.unix is not None:
            _, connection = await loop.create_unix_connection(
                factory, options.unix, ssl=ssl, server_hostname=server_hostname, **self.kwargs
            )
        elif options.sock is not None:
            _, connection = await loop.create_connection(
                factory, sock=options.sock, ssl=ssl, server_hostname=server_hostname, **self.kwargs
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
                additional_headers=options.additional_headers, user_agent=options.user_agent_header
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

        Raises:
            ValueError: if the options give a socket, which can serve a single connection.
        """
        if self.options.sock is not None:
            raise ValueError("cannot reconnect with a given socket")
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
