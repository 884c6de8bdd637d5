"""socketeer: WebSockets for Python, from the wire to the browser."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    "Router",
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

if TYPE_CHECKING:
    from .rpc import Router


def __getattr__(name: str) -> Any:
    # The RPC layer is imported on first use: programs that do not use it don't pay for it.
    if name == "Router":
        from .rpc import Router

        return Router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
