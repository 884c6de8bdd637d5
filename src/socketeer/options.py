"""The options of clients, servers and connections, with their defaults, for both drivers.

:class:`ClientOptions` holds the options of ``connect()`` and :class:`ServerOptions` those of
``serve()``, for the asyncio and the threaded driver alike. Each option is declared,
documented and checked here, once; the dataclasses then build what a driver needs: the
sans-I/O protocol of each connection (``new_protocol()``), its extension factories, and the
:class:`ConnectionOptions` of the connection once open.

The drivers take the options as keyword arguments, ``connect(uri, **options)``, typed with
:class:`ClientOptionsDict` and :class:`ServerOptionsDict` (``Unpack``, PEP 692): their twins
with the same names and types, so that type checkers and editors know every option. A test
checks that each twin matches its dataclass.

Every size, count and wait has a limit with a safe default; ``None`` turns a limit off.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import socket
import ssl as ssl_module
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

from .client import MAX_REDIRECTS, Backoff
from .protocol.base import MAX_SIZE
from .protocol.client import USER_AGENT, ClientProtocol, HeadersLike
from .protocol.extensions.base import ClientExtensionFactory, ServerExtensionFactory
from .protocol.extensions.permessage_deflate import (
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from .protocol.headers import validate_subprotocols
from .protocol.server import SERVER_HEADER, SelectSubprotocol, ServerProtocol
from .server import TrustedProxies
from .typedefs import LoggerLike, Origin, Subprotocol
from .uri import WebSocketURI

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "ClientOptions",
    "ServerOptions",
    "ClientOptionsDict",
    "ServerOptionsDict",
    "ConnectionOptions",
    "OPEN_TIMEOUT",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "CLOSE_TIMEOUT",
    "MAX_QUEUE",
    "WRITE_LIMIT",
]

OPEN_TIMEOUT = 10.0
"""Seconds for the opening handshake, TCP and TLS included."""
PING_INTERVAL = 20.0
"""Seconds between keepalive pings."""
PING_TIMEOUT = 20.0
"""Seconds to wait for the pong of a keepalive ping before failing with 1011."""
CLOSE_TIMEOUT = 10.0
"""Seconds to wait for the closing handshake and the end of the TCP connection."""
MAX_QUEUE = 16
"""Whole messages waiting unread before reading from the network pauses."""
WRITE_LIMIT = 32768
"""Bytes in the write buffer above which ``send()`` waits for it to drain."""


def _check_seconds(name: str, value: object) -> None:
    """Check a wait: a number of seconds, 0 or more, or ``None`` for no limit."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if not value >= 0:  # NaN too
        raise ValueError(f"{name} must be positive or None, got {value}")


def _check_count(name: str, value: object, minimum: int, *, optional: bool) -> None:
    """Check a size or a count: an integer, ``minimum`` or more; or ``None`` if optional."""
    if value is None and optional:
        return
    or_none = " or None" if optional else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer{or_none}, got {value!r}")
    if value < minimum:
        at_least = "positive" if minimum == 0 else f"at least {minimum}"
        raise ValueError(f"{name} must be {at_least}{or_none}, got {value}")


@dataclasses.dataclass(frozen=True)
class ConnectionOptions:
    """How a connection behaves once it is open, on either side and with either driver.

    Attributes:
        ping_interval: seconds between keepalive pings; ``None`` sends none.
        ping_timeout: seconds to wait for a keepalive pong; ``None`` waits forever.
        close_timeout: seconds to wait for the closing handshake; ``None`` waits forever.
        max_queue: whole messages waiting unread before reading pauses; ``None`` for no
            limit.
        write_limit: bytes buffered for writing above which sending waits.
    """

    ping_interval: float | None = PING_INTERVAL
    ping_timeout: float | None = PING_TIMEOUT
    close_timeout: float | None = CLOSE_TIMEOUT
    max_queue: int | None = MAX_QUEUE
    write_limit: int = WRITE_LIMIT

    def __post_init__(self) -> None:
        for name in ("ping_interval", "ping_timeout", "close_timeout"):
            _check_seconds(name, getattr(self, name))
        _check_count("max_queue", self.max_queue, 1, optional=True)
        _check_count("write_limit", self.write_limit, 0, optional=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Options:
    """The options of clients and servers alike; see :class:`ClientOptions`."""

    _default_logger: ClassVar[str]

    subprotocols: Sequence[Subprotocol] | None = None
    """The subprotocols a client offers, or a server supports, in order of preference."""
    compression: str | None = "deflate"
    """``"deflate"`` enables permessage-deflate: a client offers it, a server accepts it;
    ``None`` disables it."""
    open_timeout: float | None = OPEN_TIMEOUT
    """Seconds for the opening handshake: for a client, to connect (TCP, TLS, handshake and
    redirects); for a server, what a client gets to complete it. ``None`` waits forever."""
    ping_interval: float | None = PING_INTERVAL
    """Seconds between keepalive pings; ``None`` sends none."""
    ping_timeout: float | None = PING_TIMEOUT
    """Seconds to wait for a keepalive pong before failing with 1011; ``None`` waits
    forever."""
    close_timeout: float | None = CLOSE_TIMEOUT
    """Seconds to wait for the closing handshake; ``None`` waits forever. A server also gives
    its handlers that long to return when it shuts down."""
    max_size: int | None = MAX_SIZE
    """The largest message accepted, in bytes after decompression; ``None`` for no limit."""
    max_queue: int | None = MAX_QUEUE
    """Whole messages waiting unread before reading from the network pauses; ``None`` for no
    limit."""
    write_limit: int = WRITE_LIMIT
    """Bytes waiting to be written above which ``send()`` waits, and ``broadcast()`` skips
    the connection."""
    ssl: ssl_module.SSLContext | None = None
    """A client's context for ``wss://`` (a default, verifying one if ``None``), or a
    server's, to serve ``wss://``."""
    unix: str | None = None
    """The Unix socket path to connect to, or to listen on, instead of TCP."""
    sock: socket.socket | None = None
    """A socket to use instead: a client's connected socket, which then belongs to the
    connection (and cannot serve for reconnecting), or a server's listening socket."""
    logger: LoggerLike | None = None
    """Where to log; ``None`` for the ``socketeer.client`` or ``socketeer.server`` logger."""

    def __post_init__(self) -> None:
        if self.subprotocols is not None:
            validate_subprotocols(self.subprotocols)
        _check_seconds("open_timeout", self.open_timeout)
        _check_count("max_size", self.max_size, 0, optional=True)
        self.connection_options()  # checks the other limits
        if self.ssl is not None and not isinstance(self.ssl, ssl_module.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext or None, got {self.ssl!r}")
        if self.unix is not None and self.sock is not None:
            raise ValueError("unix and sock cannot be used together")

    @classmethod
    def split(cls, kwargs: Mapping[str, Any]) -> tuple[Self, dict[str, Any]]:
        """Make the options from those in ``kwargs``; return them and the other arguments.

        The asyncio driver passes the other arguments on to its event loop.

        Raises:
            TypeError, ValueError: if an option is invalid.
        """
        names = {field.name for field in dataclasses.fields(cls)}
        options = {name: value for name, value in kwargs.items() if name in names}
        others = {name: value for name, value in kwargs.items() if name not in names}
        return cls(**options), others

    def connection_options(self) -> ConnectionOptions:
        """The options of each connection once open."""
        return ConnectionOptions(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            max_queue=self.max_queue,
            write_limit=self.write_limit,
        )

    def get_logger(self) -> LoggerLike:
        """:attr:`logger`, or the default logger if it is ``None``."""
        return logging.getLogger(self._default_logger) if self.logger is None else self.logger


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClientOptions(_Options):
    """The options of a client: of ``connect()``, ``run()`` and the threaded ``reconnect()``.

    With either driver, ``connect(uri, **options)`` makes ``ClientOptions(**options)``; the
    fields are its keyword arguments. Those that clients and servers share come first.

    Raises:
        TypeError: if an option has the wrong type (e.g. a number given as a string).
        ValueError: if it has a wrong value (e.g. a negative timeout, ``max_queue`` below 1,
            an unknown ``compression``, an invalid subprotocol, both ``unix`` and ``sock``).
    """

    _default_logger = "socketeer.client"

    origin: Origin | None = None
    """The ``Origin`` header to send; ``None`` sends none."""
    extensions: Sequence[ClientExtensionFactory] | None = None
    """More extensions to offer, or your own permessage-deflate settings."""
    additional_headers: HeadersLike | None = None
    """More headers for the handshake request (cookies, tokens)."""
    user_agent_header: str | None = USER_AGENT
    """The ``User-Agent`` header; ``None`` sends none."""
    server_hostname: str | None = None
    """The host name for TLS (SNI and verification); the URI's if ``None``."""
    max_redirects: int = MAX_REDIRECTS
    """Most HTTP redirects to follow (none over ``unix`` or ``sock``)."""
    backoff: Backoff | None = None
    """Delays between attempts when reconnecting (``async for ws in connect(uri)``,
    ``reconnect(uri)``, ``run(uri, handler, reconnect=True)``); ``Backoff()`` if ``None``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_count("max_redirects", self.max_redirects, 0, optional=False)
        self.extension_factories()  # checks compression

    def check_uri(self, uri: WebSocketURI) -> None:
        """Check that the options suit ``uri``.

        Raises:
            ValueError: if :attr:`ssl` is given for a ``ws://`` URI.
        """
        if self.ssl is not None and not uri.secure:
            raise ValueError("ssl is for wss:// URIs, not ws://")

    def extension_factories(self) -> list[ClientExtensionFactory]:
        """The extensions to offer: :attr:`extensions`, and permessage-deflate if
        :attr:`compression` asks for it."""
        return enable_client_permessage_deflate(self.extensions, self.compression)

    def new_protocol(self, uri: WebSocketURI) -> ClientProtocol:
        """A new sans-I/O protocol to connect to ``uri``: one per connection attempt."""
        return ClientProtocol(
            uri,
            origin=self.origin,
            extensions=self.extension_factories(),
            subprotocols=self.subprotocols,
            max_size=self.max_size,
            logger=self.get_logger(),
        )

    def get_backoff(self) -> Backoff:
        """:attr:`backoff`, or the default one if it is ``None``."""
        return Backoff() if self.backoff is None else self.backoff


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServerOptions(_Options):
    """The options of a server: those of ``serve()`` besides its handler, host, port and
    ``process_request`` and ``process_response`` callbacks (whose types differ by driver).

    With either driver, ``serve(handler, host, port, **options)`` makes
    ``ServerOptions(**options)``; the fields are its keyword arguments. Those that clients and
    servers share come first.

    Raises:
        TypeError: if an option has the wrong type (e.g. a single origin, not a list).
        ValueError: if it has a wrong value (e.g. a negative timeout, ``max_queue`` below 1,
            an unknown ``compression``, an invalid subprotocol, both ``unix`` and ``sock``,
            an entry of ``trusted_proxies`` that is no IP address or network).
    """

    _default_logger = "socketeer.server"

    origins: Sequence[Origin | None] | None = None
    """The acceptable ``Origin`` values (``None`` in the list accepts requests without one);
    ``None`` accepts any."""
    select_subprotocol: SelectSubprotocol | None = None
    """Picks the subprotocol from the client's offer; the first of :attr:`subprotocols` that
    the client offers if ``None``."""
    extensions: Sequence[ServerExtensionFactory] | None = None
    """More extensions to accept, or your own permessage-deflate settings."""
    server_header: str | None = SERVER_HEADER
    """The ``Server`` header; ``None`` sends none."""
    max_connections: int | None = None
    """The most connections the server holds at once (in the handshake, open or closing);
    beyond, it answers ``503 Service Unavailable`` (with ``Retry-After``) and closes.
    ``None``: 90% of the process's file-descriptor limit (``RLIMIT_NOFILE``) when the server
    starts, so that it refuses politely before ``accept()`` fails; no limit where the
    platform has none."""
    trusted_proxies: Sequence[str] = ()
    """The reverse proxies whose ``X-Forwarded-For`` header the server believes: IP
    addresses (``"127.0.0.1"``, ``"::1"``), networks (``"10.0.0.0/8"``), and ``"unix"`` for
    every peer of a Unix socket. When a connection comes from one, its ``remote_address`` is
    that of the client the proxy forwards, ``(address, 0)``, and its ``proxy_address`` the
    proxy's; see ``docs/deployment.md``. Empty: nobody is believed."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_count("max_connections", self.max_connections, 1, optional=True)
        if isinstance(self.origins, str):
            raise TypeError(f"origins must be a sequence of origins, not a str: {self.origins!r}")
        self.extension_factories()  # checks compression
        self.proxies()  # checks trusted_proxies

    def extension_factories(self) -> list[ServerExtensionFactory]:
        """The extensions to accept: :attr:`extensions`, and permessage-deflate if
        :attr:`compression` asks for it."""
        return enable_server_permessage_deflate(self.extensions, self.compression)

    def proxies(self) -> TrustedProxies:
        """:attr:`trusted_proxies`, parsed."""
        return TrustedProxies(self.trusted_proxies)

    def new_protocol(self) -> ServerProtocol:
        """A new sans-I/O protocol for an accepted connection."""
        return ServerProtocol(
            origins=self.origins,
            extensions=self._extension_factories,
            subprotocols=self.subprotocols,
            select_subprotocol=self.select_subprotocol,
            server_header=self.server_header,
            max_size=self.max_size,
            logger=self._logger,
        )

    @functools.cached_property
    def _extension_factories(self) -> list[ServerExtensionFactory]:
        # The factories hold settings only: every connection can share them, and the options
        # are frozen. ServerProtocol copies the list.
        return self.extension_factories()

    @functools.cached_property
    def _logger(self) -> LoggerLike:
        return self.get_logger()  # logging.getLogger() returns the same logger for a name


# The keyword arguments of connect() and serve(), typed: the fields of the dataclasses above,
# in the same order, with the same types. Each is documented, with its default, above.


class _OptionsDict(TypedDict, total=False):
    subprotocols: Sequence[Subprotocol] | None
    compression: str | None
    open_timeout: float | None
    ping_interval: float | None
    ping_timeout: float | None
    close_timeout: float | None
    max_size: int | None
    max_queue: int | None
    write_limit: int
    ssl: ssl_module.SSLContext | None
    unix: str | None
    sock: socket.socket | None
    logger: LoggerLike | None


class ClientOptionsDict(_OptionsDict, total=False):
    """The keyword arguments of ``connect()``: the fields of :class:`ClientOptions`."""

    origin: Origin | None
    extensions: Sequence[ClientExtensionFactory] | None
    additional_headers: HeadersLike | None
    user_agent_header: str | None
    server_hostname: str | None
    max_redirects: int
    backoff: Backoff | None


class ServerOptionsDict(_OptionsDict, total=False):
    """The keyword arguments of ``serve()``: the fields of :class:`ServerOptions`."""

    origins: Sequence[Origin | None] | None
    select_subprotocol: SelectSubprotocol | None
    extensions: Sequence[ServerExtensionFactory] | None
    server_header: str | None
    max_connections: int | None
    trusted_proxies: Sequence[str]
