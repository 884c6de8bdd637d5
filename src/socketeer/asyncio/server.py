"""WebSocket servers on asyncio: :func:`serve`, :class:`Server`, :class:`ServerConnection`.

Each TCP connection gets a :class:`ServerConnection`. When the request of the opening
handshake arrives, a task runs the handshake (``process_request``, then the checks of RFC 6455
section 4.2 or a plain HTTP answer, then ``process_response``) and, once the connection is
open, the application's handler. The connection closes with 1000 when the handler returns,
and with 1011 when it raises (the exception is logged; the peer learns nothing of it).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from ..connection import format_address
from ..exceptions import ConnectionClosed
from ..options import ConnectionOptions, ServerOptions, ServerOptionsDict
from ..protocol.base import CONNECTING, OPEN, Event
from ..protocol.frames import CloseCode
from ..protocol.http11 import Request, Response
from ..protocol.server import ServerProtocol
from ..server import connection_limit, format_client, forwarded_client, overloaded
from ..typedefs import LoggerLike, StatusLike, Subprotocol
from .connection import Connection
from .handler import HandlerClass, connection_handler

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "serve",
    "ServeOptions",
    "Server",
    "ServerConnection",
    "HandlerFunction",
    "ProcessRequest",
    "ProcessResponse",
    "ServerApp",
    "is_server_app",
]

HANDSHAKE_BACKLOG = 65536
"""Bytes a client may send after its handshake request before the server answers it (while
``process_request`` runs): past them, the server stops reading from it until it answered."""

HandlerFunction = Callable[["ServerConnection"], Awaitable[Any]]
"""The application: a coroutine function that runs once per connection."""

ProcessRequest = Callable[
    ["ServerConnection", Request], Response | None | Awaitable[Response | None]
]
"""``process_request(connection, request)``: return a response to answer plain HTTP (a
health check, a page, a refusal), or ``None`` to go on with the WebSocket handshake."""

ProcessResponse = Callable[
    ["ServerConnection", Request, Response],
    Response | None | Awaitable[Response | None],
]
"""``process_response(connection, request, response)``: change the response in place, or
return another one."""


class ServerApp(Protocol):
    """A handler that brings its own ``process_request`` and subprotocols, such as an RPC
    application (:class:`socketeer.rpc.RPC`) or a :class:`socketeer.rpc.Router`.

    :func:`serve` recognizes one by these two attributes (see :func:`is_server_app`), and
    then:

    - selects its :attr:`subprotocols` too, after those given to ``serve`` if any;
    - calls its :meth:`process_request` after the one given to ``serve``, if any, when that
      one returned ``None``.
    """

    @property
    def subprotocols(self) -> Sequence[Subprotocol]:
        """The subprotocols it speaks, in order of preference."""
        ...

    def __call__(self, connection: ServerConnection, /) -> Awaitable[Any]:
        """Handle an open connection, as a handler function does."""
        ...

    def process_request(
        self, connection: ServerConnection, request: Request, /
    ) -> Response | None | Awaitable[Response | None]:
        """Answer plain HTTP, or refuse the handshake; ``None`` to go on with it."""
        ...


def is_server_app(handler: object) -> TypeGuard[ServerApp]:
    """Whether ``handler`` is a :class:`ServerApp`: a callable that is not a class, with a
    ``process_request`` method and a ``subprotocols`` attribute."""
    return (
        not isinstance(handler, type)
        and callable(handler)
        and callable(getattr(handler, "process_request", None))
        and hasattr(handler, "subprotocols")
    )


def _then(first: ProcessRequest | None, second: ProcessRequest) -> ProcessRequest:
    """``first``, then ``second`` if ``first`` returned ``None``."""
    if first is None:
        return second

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        for step in (first, second):
            result = step(connection, request)
            response = await result if inspect.isawaitable(result) else result
            if response is not None:
                return response
        return None

    return process_request


class ServerConnection(Connection):
    """The server side of a WebSocket connection, given to the handler."""

    def __init__(self, server: Server, protocol: ServerProtocol, options: ConnectionOptions):
        super().__init__(protocol, options)
        self.server = server
        """The :class:`Server` this connection belongs to."""
        self.protocol: ServerProtocol = protocol
        self.handler_task: asyncio.Task[None] | None = None
        """The task running the handshake and the handler, once the request arrived."""
        self._open_timer: asyncio.TimerHandle | None = None
        self._client: tuple[str, int] | None = None  # from X-Forwarded-For

    @property
    def remote_address(self) -> Any:
        """The client's address: the socket's peer (e.g. ``(host, port)``); or, once the
        request arrived from one of the server's ``trusted_proxies``, the client it
        forwards, ``(address, 0)`` (``X-Forwarded-For`` tells no port)."""
        return super().remote_address if self._client is None else self._client

    @property
    def proxy_address(self) -> Any:
        """The address of the trusted proxy the connection came through (the socket's
        peer), or ``None`` if :attr:`remote_address` is the socket's peer."""
        return None if self._client is None else super().remote_address

    def respond(
        self,
        status: StatusLike,
        body: str | bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Build a plain HTTP response, for ``process_request``.

        Args:
            status: the status code, e.g. 200 or ``http.HTTPStatus.NOT_FOUND``.
            body: the body; :class:`str` is encoded to UTF-8.
            content_type: the ``Content-Type`` header.
            headers: more headers.
        """
        return self.protocol.respond(status, body, content_type=content_type, headers=headers)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.server.register(self)
        timeout = self.server.options.open_timeout
        if timeout is not None:
            self._open_timer = self.loop.call_later(timeout, self._open_timed_out)

    def _open_timed_out(self) -> None:
        if self.protocol.state is CONNECTING and self.transport is not None:
            if self.debug:
                self.logger.debug("! timed out during opening handshake")
            self.transport.abort()

    def _read_while_connecting(self) -> None:
        # What a client sends after its request waits in the protocol until the handshake is
        # answered: past a limit, stop reading (below it, a client that leaves is still seen).
        if self.protocol.handshake_backlog > HANDSHAKE_BACKLOG:
            self._pause_reading()

    def handshake_event(self, event: Event) -> None:
        assert isinstance(event, Request)
        proxies = self.server.trusted_proxies
        if proxies:  # else the socket's peer is the client: nothing to look up
            self._client = forwarded_client(
                proxies, super().remote_address, event.headers, self.logger
            )
        self.handler_task = self.loop.create_task(self._run(event))

    async def _run(self, request: Request) -> None:
        try:
            response = await self.server.handshake(self, request)
        except Exception:
            self.logger.error("opening handshake failed", exc_info=True)
            response = self.respond(500, "internal server error\n")
        if self.transport is None or self.transport.is_closing():
            return  # the peer left, or the open timeout fired
        self.protocol.send_response(response)
        self._process()
        self._resume_reading()
        if self._open_timer is not None:
            self._open_timer.cancel()
        if self.protocol.state is not OPEN:
            self.transport.close()
            return
        if self.logger.isEnabledFor(logging.INFO):  # spares formatting the address
            self.logger.info(
                "connection open from %s", format_client(self.remote_address, self.proxy_address)
            )
        self.start_keepalive()
        try:
            await self.server.handler(self)
        except asyncio.CancelledError:
            if self.transport is not None:
                self.transport.abort()  # nobody will finish the closing handshake
            raise
        except Exception as exc:
            # This connection closing under the handler is nothing to report; but while it is
            # open, a ConnectionClosed comes from another connection.
            if not isinstance(exc, ConnectionClosed) or self.state is OPEN:
                self.logger.error("connection handler failed", exc_info=True)
            await self.close(CloseCode.INTERNAL_ERROR)
        else:
            await self.close()

    def connection_closed(self, exc: Exception | None) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
        self.server.unregister(self)
        response = self.protocol.response
        if (
            response is not None
            and response.status_code == 101
            and self.logger.isEnabledFor(logging.INFO)
        ):
            self.logger.info(
                "connection closed from %s with code %s",
                format_client(self.remote_address, self.proxy_address),
                self.close_code,
            )


class Server:
    """A WebSocket server: the listening sockets and the open connections.

    Created by :func:`serve`; an async context manager that closes the server on exit.
    """

    def __init__(
        self,
        handler: HandlerFunction,
        *,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        options: ServerOptions | None = None,
    ) -> None:
        self.handler = handler
        self.process_request = process_request
        self.process_response = process_response
        self.options = ServerOptions() if options is None else options
        """The options of :func:`serve`."""
        self.logger: LoggerLike = self.options.get_logger()
        self._connection_options = self.options.connection_options()
        self._limit = connection_limit(self.options.max_connections)
        self.trusted_proxies = self.options.proxies()
        """The reverse proxies whose ``X-Forwarded-For`` the server believes."""
        self.connections: set[ServerConnection] = set()
        """The connections the server holds: in the handshake, open, or closing."""
        self.server: asyncio.Server | None = None
        """The underlying :class:`asyncio.Server`."""
        self._closing: asyncio.Task[None] | None = None
        self._closed: asyncio.Future[None] | None = None

    def new_connection(self) -> ServerConnection:
        """Make the connection for an accepted socket (the protocol factory of asyncio)."""
        protocol = self.options.new_protocol()
        return ServerConnection(self, protocol, self._connection_options)

    def register(self, connection: ServerConnection) -> None:
        self.connections.add(connection)

    def unregister(self, connection: ServerConnection) -> None:
        self.connections.discard(connection)

    async def handshake(self, connection: ServerConnection, request: Request) -> Response:
        """Answer the request: 503 beyond ``max_connections``, or ``process_request``, the
        handshake checks, ``process_response``."""
        response = overloaded(connection.protocol, len(self.connections), self._limit)
        if response is not None:
            return response
        if self.process_request is not None:
            result = self.process_request(connection, request)
            response = await result if inspect.isawaitable(result) else result
        if response is None:
            response = connection.protocol.accept(request)
        if self.process_response is not None:
            result = self.process_response(connection, request, response)
            response = (await result if inspect.isawaitable(result) else result) or response
        return response

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        return () if self.server is None else tuple(self.server.sockets)

    def close(self, close_connections: bool = True) -> asyncio.Task[None]:
        """Stop listening and close every connection with 1001 (going away).

        Returns a task: ``await server.close()`` waits until every handler has finished;
        a plain call only starts closing. Handlers still running ``close_timeout`` after
        their connection closed are cancelled.

        Args:
            close_connections: ``False`` leaves open connections alone.
        """
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(close_connections))
        return self._closing

    async def _close(self, close_connections: bool) -> None:
        if self.server is not None:
            self.server.close()
        # Connections accepted just now register in their connection_made callback.
        await asyncio.sleep(0)
        connections = list(self.connections)
        if close_connections:
            for connection in connections:
                if connection.state is CONNECTING and connection.transport is not None:
                    connection.transport.abort()
            await asyncio.gather(
                *(c.close(CloseCode.GOING_AWAY) for c in connections if c.state is OPEN),
                return_exceptions=True,
            )
        tasks = [c.handler_task for c in connections if c.handler_task is not None]
        if tasks:
            # Handlers get close_timeout to notice that their connection closed; a handler
            # busy with something else then is cancelled, so that shutdown always ends.
            _, pending = await asyncio.wait(tasks, timeout=self.options.close_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until the server is closed and every handler has finished."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        if self._closing is not None and self._closing.done():
            return
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called (or the task is cancelled)."""
        await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class ServeOptions(ServerOptionsDict, total=False):
    """The keyword arguments of :class:`serve`: the fields of
    :class:`~socketeer.options.ServerOptions`, and these, for
    :meth:`asyncio.loop.create_server` (``ssl_shutdown_timeout`` from Python 3.11 on,
    ``keep_alive`` from 3.13 on).
    """

    family: int
    flags: int
    backlog: int
    reuse_address: bool | None
    reuse_port: bool | None
    keep_alive: bool | None
    ssl_handshake_timeout: float | None
    ssl_shutdown_timeout: float | None
    start_serving: bool


class serve:  # noqa: N801 - a function to its users: awaitable and async context manager
    """Start a WebSocket server.

    ``await serve(...)`` returns a :class:`Server`; ``async with serve(...) as server:``
    closes it on exit.

    Args:
        handler: the coroutine function that runs once per connection; or a
            :class:`~socketeer.Handler` subclass, or ``Handler.factory(make)``, whose
            events run with a new instance per connection; or a :class:`ServerApp`, such
            as an RPC application, whose subprotocols and ``process_request`` are used too.
        host: where to listen; all interfaces by default.
        port: the TCP port; 0 picks a free one.
        process_request: answers plain HTTP instead of upgrading; see :data:`ProcessRequest`.
        process_response: changes the response; see :data:`ProcessResponse`.
        options: the fields of :class:`~socketeer.options.ServerOptions`, which documents
            each with its default; and the arguments of :meth:`asyncio.loop.create_server`
            listed in :class:`ServeOptions` (e.g. ``reuse_port``, ``backlog``).

    Raises:
        TypeError: if ``handler`` is a :class:`~socketeer.Handler` instance, or a handler
            of the threaded driver; or if an option is invalid.
        ValueError: if an option is invalid.
    """

    def __init__(
        self,
        handler: HandlerFunction | HandlerClass,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        **options: Unpack[ServeOptions],
    ) -> None:
        if is_server_app(handler):
            process_request = _then(process_request, handler.process_request)
            given = list(options.get("subprotocols") or ())
            options["subprotocols"] = given + [p for p in handler.subprotocols if p not in given]
        server_options, self._kwargs = ServerOptions.split(options)  # kwargs: for the loop
        self.server = Server(
            connection_handler(handler),
            process_request=process_request,
            process_response=process_response,
            options=server_options,
        )
        self._host = host
        self._port = port

    async def _start(self) -> Server:
        loop = asyncio.get_running_loop()
        server = self.server
        unix, sock, ssl = server.options.unix, server.options.sock, server.options.ssl
        if unix is not None:
            server.server = await loop.create_unix_server(
                server.new_connection, unix, ssl=ssl, **self._kwargs
            )
        elif sock is not None:
            server.server = await loop.create_server(
                server.new_connection, sock=sock, ssl=ssl, **self._kwargs
            )
        else:
            server.server = await loop.create_server(
                server.new_connection, self._host, self._port, ssl=ssl, **self._kwargs
            )
        for listening in server.sockets:
            server.logger.info("server listening on %s", format_address(listening.getsockname()))
        return server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.server.close()
