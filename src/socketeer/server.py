"""What the asyncio and the threaded servers share: the policies of serving, without I/O.

Both ``socketeer.asyncio.server`` and ``socketeer.sync.server`` refuse a connection beyond
their limit with :func:`overloaded` before anything else looks at its request.

Behind reverse proxies, both take the client's address from ``X-Forwarded-For`` when the
request comes from one of their ``trusted_proxies`` (:class:`TrustedProxies`), as soon as the
request arrives: before ``process_request``, so that it sees the client's address too.
"""

from __future__ import annotations

import http
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from .connection import format_address
from .protocol.http11 import Headers, Response
from .protocol.server import ServerProtocol
from .typedefs import LoggerLike

__all__ = [
    "connection_limit",
    "overloaded",
    "TrustedProxies",
    "forwarded_client",
    "format_client",
    "FD_SHARE",
    "RETRY_AFTER",
    "UNIX",
]

FD_SHARE = 0.9
"""The share of the process's file-descriptor limit that connections may take when
``max_connections`` is not given: the rest is left for the listening sockets, logs, files
and whatever else the application opens, so that the server refuses connections politely
before ``accept()`` fails."""

RETRY_AFTER = 1
"""Seconds after which a refused client may try again (the ``Retry-After`` header)."""


def connection_limit(max_connections: int | None) -> int | None:
    """The most connections a server holds at once: ``max_connections``, or, when it is
    ``None``, :data:`FD_SHARE` of the soft ``RLIMIT_NOFILE`` now (``None``, no limit, where
    the platform has no such limit)."""
    if max_connections is not None:
        return max_connections
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:  # pragma: no cover - depends on the system
        return None
    return max(1, int(soft * FD_SHARE))


def overloaded(protocol: ServerProtocol, count: int, limit: int | None) -> Response | None:
    """``503 Service Unavailable`` if the server holds more than ``limit`` connections,
    ``count`` of them counting this one; else ``None``."""
    if limit is None or count <= limit:
        return None
    return protocol.respond(
        http.HTTPStatus.SERVICE_UNAVAILABLE,
        f"server at its limit of {limit} connections; try again later\n",
        headers=[("Retry-After", str(RETRY_AFTER))],
    )


# Reverse proxies

UNIX = "unix"
"""The entry of ``trusted_proxies`` that trusts every peer of a Unix socket."""

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_PORT = re.compile(r":[0-9]{1,5}")


class TrustedProxies:
    """The reverse proxies a server trusts to say, in ``X-Forwarded-For``, which client they
    forward: the ``trusted_proxies`` option.

    Args:
        entries: IP addresses (``"127.0.0.1"``, ``"::1"``), networks in CIDR notation
            (``"10.0.0.0/8"``, ``"fd00::/8"``), and ``"unix"``, which trusts every peer of a
            Unix socket (whoever may open the socket file).

    Raises:
        TypeError: if ``entries`` is a :class:`str`, or holds something else than strings.
        ValueError: naming the first entry that is neither an address, a network nor
            ``"unix"``; a network with host bits set (``"10.0.0.1/8"``) is refused too,
            as the typo it may be.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        if isinstance(entries, str):
            raise TypeError(
                f"trusted_proxies must be a sequence of addresses, not a str: {entries!r}"
            )
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.unix = False
        """Whether the peers of Unix sockets are trusted."""
        for entry in entries:
            if not isinstance(entry, str):
                raise TypeError(f"trusted_proxies entries must be strings, got {entry!r}")
            if entry == UNIX:
                self.unix = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry))
            except ValueError as exc:
                raise ValueError(
                    f"trusted_proxies entry {entry!r} is not an IP address, a network or "
                    f'"{UNIX}": {exc}'
                ) from None
        self.networks = tuple(networks)
        """The trusted addresses and networks."""

    def __bool__(self) -> bool:
        """Whether any proxy is trusted."""
        return self.unix or bool(self.networks)

    def trusts(self, peer: Any) -> bool:
        """Whether ``peer``, a socket's peer address, is a trusted proxy: ``(host, port, ...)``
        for TCP, a :class:`str` or :class:`bytes` path (often empty) for a Unix socket."""
        if isinstance(peer, (str, bytes)):
            return self.unix
        if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
            return False
        try:
            address = _unmapped(ipaddress.ip_address(peer[0]))
        except ValueError:
            return False
        return self._trusts(address)

    def _trusts(self, address: _IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def client_address(self, peer: Any, headers: Headers) -> tuple[str, int] | None:
        """The client that ``peer`` forwards, if it is a trusted proxy that says so.

        The ``X-Forwarded-For`` lines, joined in order, list the client, then each proxy
        the request went through but the last, whose address is ``peer``. Every proxy
        appends the address of the one it got the request from; the client may put
        anything before. So the list is read from the right, past the trusted proxies,
        and the first address that is not one of them is the client: any address it made
        up is further left. When every address is trusted, the client is the leftmost.

        Returns:
            ``(address, 0)``, the address normalized (IPv4-mapped IPv6 addresses as IPv4)
            and the port unknown; or ``None`` if ``peer`` is not trusted, or sends no
            ``X-Forwarded-For`` (or only empty ones).

        Raises:
            ValueError: if an entry read (the client's, or a trusted proxy's on its right)
                is not an IP address, optionally with a port (``203.0.113.7:4711``,
                ``[2001:db8::7]:4711``): a proxy broke the format, and nothing in the
                header can be believed. Entries left of the client's are never read.
        """
        if not self.trusts(peer):
            return None
        entries = [
            entry.strip(" \t")
            for line in headers.get_all("X-Forwarded-For")
            for entry in line.split(",")
        ]
        client: _IPAddress | None = None
        for entry in reversed(entries):
            if not entry:
                continue  # an empty element of the list, which HTTP allows
            client = _parse_entry(entry)
            if not self._trusts(client):
                break
        return None if client is None else (str(client), 0)


def _parse_entry(entry: str) -> _IPAddress:
    """An address of ``X-Forwarded-For``: ``address``, ``ipv4:port``, ``[ipv6]`` or
    ``[ipv6]:port``."""
    host = entry
    if entry.startswith("["):
        host, bracket, port = entry[1:].partition("]")
        if not bracket or (port and not _PORT.fullmatch(port)) or ":" not in host:
            raise ValueError(f"invalid address in X-Forwarded-For: {entry!r}")
    elif entry.count(":") == 1:
        host, port = entry.split(":")
        if not _PORT.fullmatch(":" + port):
            raise ValueError(f"invalid address in X-Forwarded-For: {entry!r}")
    try:
        return _unmapped(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"invalid address in X-Forwarded-For: {entry!r}") from None


def _unmapped(address: _IPAddress) -> _IPAddress:
    """``::ffff:192.0.2.1`` as ``192.0.2.1``: the same peer, for a dual-stack socket."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_client(
    proxies: TrustedProxies, peer: Any, headers: Headers, logger: LoggerLike
) -> tuple[str, int] | None:
    """:meth:`TrustedProxies.client_address`, for the drivers: ``None``, with a warning,
    when a trusted proxy sends an ``X-Forwarded-For`` header that cannot be read, so that
    the connection keeps the proxy's address rather than one that could be forged."""
    if not proxies:
        return None
    try:
        return proxies.client_address(peer, headers)
    except ValueError as exc:
        logger.warning("ignored X-Forwarded-For from %s: %s", format_address(peer), exc)
        return None


def format_client(client: Any, proxy: Any) -> str:
    """A connection's client for logs: its address, and the proxy it came through if any
    (``203.0.113.7 via 127.0.0.1:41234``)."""
    if proxy is None:
        return format_address(client)
    return f"{client[0]} via {format_address(proxy)}"
