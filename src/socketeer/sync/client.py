"""WebSocket clients on threads: :func:`connect` and :class:`ClientConnection`.

``connect(uri)`` opens a connection in the calling thread (TCP, TLS and the opening
handshake, all within ``open_timeout``) and returns it with its reading thread started;
``with connect(uri) as ws:`` closes it on exit.
"""

from __future__ import annotations

import logging
import socket
import ssl as ssl_module
import time
from collections.abc import Iterable, Mapping, Sequence

from ..exceptions import InvalidMessage
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
from ..uri import parse_uri
from .connection import Connection

__all__ = ["connect", "ClientConnection"]

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
    ssl: ssl_module.SSLContext | None = None,
    unix: str | None = None,
    sock: socket.socket | None = None,
    server_hostname: str | None = None,
    logger: LoggerLike | None = None,
) -> ClientConnection:
    """Open a WebSocket connection; the arguments are those of :func:`socketeer.connect`.

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
        ssl: an :class:`ssl.SSLContext` for ``wss://``; a default, verifying context
            otherwise.
        unix: connect to this Unix socket path instead of the URI's host and port.
        sock: use this connected socket instead (the connection then owns it).
        server_hostname: the host name for TLS (SNI and verification); the URI's by
            default.
        logger: where to log; ``socketeer.client`` by default.

    Raises:
        InvalidURI: if ``uri`` is not a valid WebSocket URI.
        OSError: if the TCP connection fails.
        TimeoutError: if opening takes longer than ``open_timeout``.
        HandshakeError: if the opening handshake fails.
    """
    wsuri = parse_uri(uri)
    extensions = enable_client_permessage_deflate(extensions, compression)
    if ssl is not None and not wsuri.secure:
        raise ValueError("ssl is for wss:// URIs, not ws://")
    logger = logger or logging.getLogger("socketeer.client")
    options = ConnectionOptions(
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        max_queue=max_queue,
        write_limit=WRITE_LIMIT,
    )
    protocol = ClientProtocol(
        wsuri,
        origin=origin,
        extensions=extensions,
        subprotocols=subprotocols,
        max_size=max_size,
        logger=logger,
    )
    deadline = None if open_timeout is None else time.monotonic() + open_timeout

    def remaining() -> float | None:
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out after {open_timeout} s during opening handshake")
        return left

    if sock is None:
        if unix is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(remaining())
                sock.connect(unix)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((wsuri.host, wsuri.port), remaining())
    connection: ClientConnection | None = None
    try:
        sock.settimeout(remaining())
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        if wsuri.secure:
            context = ssl or ssl_module.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=server_hostname or wsuri.host)
        connection = ClientConnection(sock, protocol, options)
        connection.handshake(additional_headers, user_agent_header, remaining())
    except BaseException:
        if connection is not None:
            connection._abort()
        sock.close()
        raise
    logger.info("connection open to %s", wsuri.host)
    return connection
