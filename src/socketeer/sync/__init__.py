"""WebSocket servers and clients on threads, driving the sans-I/O core."""

from __future__ import annotations

from .client import Backoff, ClientConnection, connect, reconnect
from .connection import BroadcastResult, Connection, PongWaiter, broadcast
from .handler import Handler, run
from .server import Server, ServerConnection, serve

__all__ = [
    "Backoff",
    "BroadcastResult",
    "broadcast",
    "ClientConnection",
    "Connection",
    "PongWaiter",
    "Handler",
    "run",
    "Server",
    "ServerConnection",
    "connect",
    "reconnect",
    "serve",
]
