"""WebSocket servers and clients on threads, driving the sans-I/O core."""

from __future__ import annotations

from .client import ClientConnection, connect
from .connection import Connection, PongWaiter
from .server import Server, ServerConnection, serve

__all__ = [
    "ClientConnection",
    "Connection",
    "PongWaiter",
    "Server",
    "ServerConnection",
    "connect",
    "serve",
]
