"""Publish/subscribe: rooms that connections and RPC peers join (``docs/pubsub.md``).

::

    rooms = socketeer.pubsub.Rooms()           # memory://; Rooms("redis://host/0") to scale out

    async def chat(ws):                        # plain connections
        await rooms.join(ws, "lobby")          # left automatically when ws closes
        async for message in ws:
            await rooms.publish("lobby", message)

    rpc = socketeer.rpc.RPC(rooms=rooms)       # RPC clients: $/room/join, $/room/leave

    @rpc.method
    async def enter(room: str) -> None:        # or the server joins them itself
        await rooms.join(socketeer.rpc.current_peer(), room)

Modules: :mod:`~socketeer.pubsub.rooms`, the rooms; :mod:`~socketeer.pubsub.brokers`, what
carries publications between processes (:class:`MemoryBroker`, the default, for one
process; :class:`RedisBroker`, imported on first use, for many).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import BrokerError, BrokerUnavailable, SlowConsumer
from .brokers import (
    BROKER_ENV,
    Broker,
    History,
    MemoryBroker,
    Position,
    PresenceEntry,
    Publication,
    Retention,
    broker_from_url,
)
from .rooms import (
    DEFAULT_RETENTION,
    JOIN_METHOD,
    LEAVE_METHOD,
    MAX_ROOM_NAME,
    MESSAGE_METHOD,
    PUBLISH_METHOD,
    JoinResult,
    Member,
    Rooms,
    RoomsStats,
    SlowPolicy,
)

if TYPE_CHECKING:
    from .brokers import RedisBroker

__all__ = [
    # Rooms
    "Rooms",
    "Member",
    "JoinResult",
    "RoomsStats",
    "SlowPolicy",
    "MAX_ROOM_NAME",
    "DEFAULT_RETENTION",
    "JOIN_METHOD",
    "LEAVE_METHOD",
    "PUBLISH_METHOD",
    "MESSAGE_METHOD",
    # Brokers
    "Broker",
    "MemoryBroker",
    "RedisBroker",
    "broker_from_url",
    "BROKER_ENV",
    "Position",
    "Publication",
    "History",
    "Retention",
    "PresenceEntry",
    # Exceptions
    "BrokerError",
    "BrokerUnavailable",
    "SlowConsumer",
]


def __getattr__(name: str) -> Any:
    # redis is an optional dependency: import it only when asked for.
    if name == "RedisBroker":
        from .brokers import RedisBroker

        return RedisBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
