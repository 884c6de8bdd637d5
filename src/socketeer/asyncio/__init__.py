"""WebSocket servers and clients on asyncio, driving the sans-I/O core."""

from __future__ import annotations

from .client import Backoff, ClientConnection, connect
from .connection import BroadcastResult, Connection, broadcast
from .handler import Handler, run
from .server import Server, ServerConnection, serve

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
]
