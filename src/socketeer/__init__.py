"""socketeer: WebSockets for Python, from the wire to the browser."""

from __future__ import annotations

from .asyncio import (
    Backoff,
    BroadcastResult,
    ClientConnection,
    Connection,
    Handler,
    Server,
    ServerConnection,
    broadcast,
    connect,
    run,
    serve,
)
from .exceptions import *  # noqa: F403
from .exceptions import __all__ as _exceptions_all
from .options import ClientOptions, ServerOptions
from .protocol import Close, CloseCode, Frame, Headers, Opcode, Request, Response, State
from .version import __version__ as __version__

__all__ = [
    "Backoff",
    "BroadcastResult",
    "broadcast",
    "ClientConnection",
    "Connection",
    "Handler",
    "run",
    "Server",
    "ServerConnection",
    "connect",
    "serve",
    "ClientOptions",
    "ServerOptions",
    "Close",
    "CloseCode",
    "Frame",
    "Headers",
    "Opcode",
    "Request",
    "Response",
    "State",
    *_exceptions_all,
]
