"""The counter demo: one shared number, ``-`` and ``+`` buttons, every browser tab in sync.

Protocol, JSON text messages:

- the client sends ``{"action": "minus"}`` or ``{"action": "plus"}``; anything else is
  ignored (and logged at debug level);
- the server sends ``{"type": "value", "value": N}`` to a client when it connects and to all
  of them when the value changes, and ``{"type": "users", "count": N}`` to all of them when
  someone connects or leaves.
"""

from __future__ import annotations

import json

from ..asyncio.connection import broadcast
from ..asyncio.server import ServerConnection
from ..typedefs import Data, JSONValue
from .app import logger

__all__ = ["ACTIONS", "Counter", "parse_action"]

ACTIONS = {"minus": -1, "plus": 1}
"""The actions a client may send, and what each adds to the value."""


def parse_action(message: Data) -> int | None:
    """What a client's message adds to the value, or ``None`` if it is not a valid action."""
    if not isinstance(message, str):
        return None
    try:
        data = json.loads(message)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays
        return None
    action = data.get("action") if isinstance(data, dict) else None
    return ACTIONS.get(action) if isinstance(action, str) else None


def _encode(message: dict[str, JSONValue]) -> str:
    return json.dumps(message, separators=(",", ":"))


class Counter:
    """The shared value and the connections that watch it; :meth:`handler` serves each one."""

    def __init__(self) -> None:
        self.value = 0
        """The counter's value."""
        self.connections: set[ServerConnection] = set()
        """The open connections, which see every change."""

    async def handler(self, connection: ServerConnection) -> None:
        """Serve one client until it leaves."""
        self.connections.add(connection)
        try:
            await connection.send(_encode({"type": "value", "value": self.value}))
            self._broadcast_users()
            async for message in connection:
                self._receive(message)
        finally:
            self.connections.discard(connection)
            self._broadcast_users()

    def _receive(self, message: Data) -> None:
        change = parse_action(message)
        if change is None:
            logger.debug("! ignored invalid message: %.80r", message)
            return
        self.value += change
        broadcast(self.connections, _encode({"type": "value", "value": self.value}))

    def _broadcast_users(self) -> None:
        broadcast(self.connections, _encode({"type": "users", "count": len(self.connections)}))
