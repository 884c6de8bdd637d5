"""What the asyncio and the threaded servers share: the policies of serving, without I/O.

Both ``socketeer.asyncio.server`` and ``socketeer.sync.server`` refuse a connection beyond
their limit with :func:`overloaded` before anything else looks at its request.
"""

from __future__ import annotations

import http

from .protocol.http11 import Response
from .protocol.server import ServerProtocol

__all__ = ["connection_limit", "overloaded", "FD_SHARE", "RETRY_AFTER"]

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
