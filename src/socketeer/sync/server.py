"""WebSocket servers on threads: :func:`serve`, :class:`Server`, :class:`ServerConnection`.

:meth:`Server.serve_forever` accepts connections and starts a thread per connection, which
runs the TLS handshake and the opening handshake (``process_request``, then the checks of
RFC 6455 section 4.2 or a plain HTTP answer, then ``process_response``) within
``open_timeout``, then the application's handler. The connection closes with 1000 when the
handler returns, and with 1011 when it raises (the exception is logged; the peer learns
nothing of it). :meth:`Server.shutdown` stops accepting, closes every connection with 1001
and joins the threads.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..connection import format_address
from ..exceptions import ConnectionClosed
from ..options import ConnectionOptions, ServerOptions, ServerOptionsDict
from ..protocol.base import OPEN
from ..protocol.frames import CloseCode
from ..protocol.http11 import Request, Response
from ..protocol.server import ServerProtocol
from ..server import connection_limit, format_client, forwarded_client, overloaded
from ..typedefs import LoggerLike, StatusLike
from .connection import Connection
from .handler import HandlerClass, connection_handler

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "serve",
    "Server",
    "ServerConnection",
    "HandlerFunction",
    "ProcessRequest",
    "ProcessResponse",
]

HandlerFunction = Callable[["ServerConnection"], Any]
"""The application: a function that runs once per connection, in a thread of its own."""

ProcessRequest = Callable[["ServerConnection", Request], Response | None]
"""``process_request(connection, request)``: return a response to answer plain HTTP (a
health check, a page, a refusal), or ``None`` to go on with the WebSocket handshake."""

ProcessResponse = Callable[["ServerConnection", Request, Response], Response | None]
"""``process_response(connection, request, response)``: change the response in place, or
return another one."""


class ServerConnection(Connection):
    """The server side of a WebSocket connection, given to the handler."""

    def __init__(
        self,
        server: Server,
        sock: socket.socket,
        protocol: ServerProtocol,
        options: ConnectionOptions,
    ) -> None:
        super().__init__(sock, protocol, options)
        self.server = server
        """The :class:`Server` this connection belongs to."""
        self.protocol: ServerProtocol = protocol
        self._client: tuple[str, int] | None = None  # from X-Forwarded-For

    @property
    def remote_address(self) -> Any:
        """The client's address: the socket's peer (e.g. ``(host, port)``); or, once the
        request arrived from one of the server's ``trusted_proxies``, the client it
        forwards, ``(address, 0)``; see the asyncio twin."""
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
        """Build a plain HTTP response, for ``process_request``; see the asyncio twin."""
        return self.protocol.respond(status, body, content_type=content_type, headers=headers)

    def run(self, deadline: float | None) -> None:
        """Run the opening handshake, then the handler, in the connection's thread."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            request = self.receive_handshake(timeout)
        except OSError as exc:  # TimeoutError included
            if self.debug:
                self.logger.debug("! opening handshake failed: %s", exc)
            request = None
        if not isinstance(request, Request):
            self._close_socket()
            return
        self._client = forwarded_client(
            self.server.trusted_proxies, super().remote_address, request.headers, self.logger
        )
        try:
            response = self.server.handshake(self, request)
        except Exception:
            self.logger.error("opening handshake failed", exc_info=True)
            response = self.respond(500, "internal server error\n")
        self.protocol.send_response(response)
        self._process()
        if self.protocol.state is not OPEN:
            self._close_socket()
            return
        self.start()
        self.logger.info(
            "connection open from %s", format_client(self.remote_address, self.proxy_address)
        )
        try:
            self.server.handler(self)
        except Exception as exc:
            # This connection closing under the handler is nothing to report; but while it is
            # open, a ConnectionClosed comes from another connection.
            if not isinstance(exc, ConnectionClosed) or self.state is OPEN:
                self.logger.error("connection handler failed", exc_info=True)
            self.close(CloseCode.INTERNAL_ERROR)
        else:
            self.close()
        self.logger.info(
            "connection closed from %s with code %s",
            format_client(self.remote_address, self.proxy_address),
            self.close_code,
        )


class Server:
    """A WebSocket server: the listening socket and the open connections.

    Created by :func:`serve`; a context manager that shuts the server down on exit.
    """

    def __init__(
        self,
        sock: socket.socket,
        handler: HandlerFunction,
        *,
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        options: ServerOptions | None = None,
    ) -> None:
        self.socket = sock
        """The listening socket."""
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
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()  # guards connections and _threads
        self._shutdown = threading.Event()
        self._serving = threading.Lock()  # held by serve_forever
        self._wake_r, self._wake_w = socket.socketpair()
        self._unix_socket: tuple[str, int] | None = None  # path and inode, made by serve()
        sock.setblocking(False)

    def handshake(self, connection: ServerConnection, request: Request) -> Response:
        """Answer the request: 503 beyond ``max_connections``, or ``process_request``, the
        handshake checks, ``process_response``."""
        with self._lock:
            count = len(self.connections)
        response = overloaded(connection.protocol, count, self._limit)
        if response is not None:
            return response
        if self.process_request is not None:
            response = self.process_request(connection, request)
        if response is None:
            response = connection.protocol.accept(request)
        if self.process_response is not None:
            response = self.process_response(connection, request, response) or response
        return response

    def fileno(self) -> int:
        """The listening socket's file descriptor."""
        return self.socket.fileno()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown` is called, a thread for each."""
        with self._serving, selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._shutdown.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self.socket and not self._shutdown.is_set():
                        self._accept()

    def _accept(self) -> None:
        try:
            sock, _ = self.socket.accept()
        except OSError:  # e.g. the client left before accept(): nothing to do
            return
        thread = threading.Thread(target=self._handle, args=(sock,), daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _handle(self, sock: socket.socket) -> None:
        options = self.options
        open_timeout = options.open_timeout
        deadline = None if open_timeout is None else time.monotonic() + open_timeout
        try:
            try:
                sock.settimeout(open_timeout)
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
                if options.ssl is not None:
                    sock = options.ssl.wrap_socket(sock, server_side=True)
            except OSError as exc:
                self.logger.debug("! TLS handshake failed: %s", exc)
                sock.close()
                return
            protocol = options.new_protocol()
            connection = ServerConnection(self, sock, protocol, self._connection_options)
            with self._lock:
                if self._shutdown.is_set():
                    sock.close()
                    return
                self.connections.add(connection)
            try:
                connection.run(deadline)
            except Exception:  # the one catch-all of the server: a bug, not the peer
                self.logger.error("connection failed", exc_info=True)
                connection._abort()
                connection._close_socket()
            finally:
                with self._lock:
                    self.connections.discard(connection)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def shutdown(self) -> None:
        """Stop accepting, close every connection with 1001 (going away), join the threads.

        Handlers get ``close_timeout`` to notice that their connection closed and return;
        then the TCP connections still open are ended, which wakes up the handlers blocked on
        a peer that does not read, and they get ``close_timeout`` again. The threads of
        those that still do not return are left running, with a warning.
        """
        self._shutdown.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        with self._serving:  # wait for serve_forever to return
            pass
        with self._lock:
            connections = list(self.connections)
            threads = list(self._threads)
        timeout = self.options.close_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        # A thread blocked writing to a peer that does not read (a handler in send(), or
        # the close frame below) holds its connection until the peer reads: at the
        # deadline, end the TCP connections that are still open, which wakes them all up.
        watchdog = None
        if timeout is not None:
            watchdog = threading.Timer(timeout, _abort_all, (connections,))
            watchdog.daemon = True
            watchdog.start()
        for connection in connections:
            with connection.protocol_mutex:
                if connection.state is OPEN and connection.protocol.sending:
                    connection.protocol.send_close(CloseCode.GOING_AWAY)
                    connection._process()
        for connection in connections:
            connection._join_reader(_remaining(deadline))
        for thread in threads:
            thread.join(_remaining(deadline))
        alive = [thread for thread in threads if thread.is_alive()]
        if alive and watchdog is not None:
            # The watchdog ended their connections at the deadline: the handlers it woke up
            # get close_timeout again to return.
            watchdog.join()
            grace = time.monotonic() + (timeout or 0.0)
            for thread in alive:
                thread.join(_remaining(grace))
        if watchdog is not None:
            watchdog.cancel()
        for thread in threads:
            if thread.is_alive():
                self.logger.warning("connection handler still running after shutdown")
        self.socket.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._unix_socket is not None:
            # The socket file serve() made, unless another took its place, as asyncio does
            # from Python 3.13 on.
            path, inode = self._unix_socket
            self._unix_socket = None
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:
                    os.remove(path)

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()


def _abort_all(connections: list[ServerConnection]) -> None:
    for connection in connections:
        connection._abort()


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def serve(
    handler: HandlerFunction | HandlerClass,
    host: str | None = None,
    port: int | None = None,
    *,
    process_request: ProcessRequest | None = None,
    process_response: ProcessResponse | None = None,
    **options: Unpack[ServerOptionsDict],
) -> Server:
    """Start a WebSocket server: listen, and return the :class:`Server`.

    ``with serve(handler, host, port) as server: server.serve_forever()``. The arguments
    are those of :func:`socketeer.serve`, and ``handler`` is a plain function run in a
    thread per connection, or a :class:`~socketeer.sync.Handler` subclass, or
    ``Handler.factory(make)``, whose events run with a new instance per connection.

    Args:
        options: the fields of :class:`~socketeer.options.ServerOptions`, which documents
            each with its default.

    Raises:
        TypeError: if ``handler`` is a :class:`~socketeer.sync.Handler` instance, or a
            handler of the asyncio driver; or if an option is invalid.
        ValueError: if an option is invalid.
        OSError: if the socket cannot listen.
    """
    handle = connection_handler(handler)  # before listening: these may raise
    server_options = ServerOptions(**options)
    sock = server_options.sock
    if sock is None:
        sock = _listen(host, port, server_options.unix)
    server = Server(
        sock,
        handle,
        process_request=process_request,
        process_response=process_response,
        options=server_options,
    )
    unix = server_options.unix
    if unix is not None:  # serve() made the socket file: shutdown() removes it
        with contextlib.suppress(OSError):
            server._unix_socket = (unix, os.stat(unix).st_ino)
    server.logger.info("server listening on %s", format_address(sock.getsockname()))
    return server


def _listen(host: str | None, port: int | None, unix: str | None) -> socket.socket:
    """A listening socket: on the Unix socket path ``unix``, or on ``host`` and ``port``."""
    if unix is None:
        return socket.create_server((host or "", port or 0))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(unix)
        sock.listen()
    except BaseException:
        sock.close()
        raise
    return sock
