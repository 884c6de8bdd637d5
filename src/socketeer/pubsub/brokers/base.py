"""The interface between rooms and the brokers that carry their publications.

Theory of operation
-------------------

A :class:`Broker` moves opaque publications between the processes (nodes) of one
application. The :class:`~socketeer.pubsub.Rooms` of each node owns one broker, and:

- subscribes to a room while the room has members on this node, and unsubscribes when the
  last one leaves;
- publishes: the broker gives the publication the room's next offset, keeps it in the room's
  history as the :class:`Retention` sent with it allows, and delivers it to every node
  subscribed to the room, this one included, by calling :attr:`Broker.on_publication`;
- asks for the history after a :class:`Position` when a member recovers what it missed;
- records presence: which members are in a room on this node, refreshed by the broker so
  that the entries of a node that dies expire after ``presence_ttl`` seconds.

What must hold, for every broker (the contract suite in ``tests/pubsub`` checks it):

- offsets of a room are consecutive integers from 1, in the order the broker received the
  publications; every subscribed node gets a room's publications in offset order;
- a room's position is ``(epoch, offset)``: the offset of its latest publication (0 before
  any), and an epoch, a string that changes whenever the broker may have forgotten the room
  (a restarted memory broker, an expired or deleted Redis key), so that an old offset is
  never mistaken for a new one;
- :meth:`Broker.history` returns every publication after a position, in order, or says that
  it cannot (``complete=False``: the epoch changed, or the oldest publication wanted fell out
  of the retention window);
- delivery is at most once: a publication made while a node was cut off from the broker
  is not delivered to it later (its members recover it from the history);
- while the broker cannot be reached, :meth:`Broker.publish`, :meth:`Broker.history` and
  :meth:`Broker.presence` raise :exc:`~socketeer.exceptions.BrokerUnavailable` (nothing was
  published); the broker reconnects by itself, with backoff, and restores its subscriptions
  and presence entries.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import NamedTuple

from ...typedefs import JSONValue

__all__ = ["Broker", "Publication", "Position", "History", "Retention", "PresenceEntry"]


class Position(NamedTuple):
    """Where a room's stream of publications stands."""

    epoch: str
    """Changes whenever the broker may have forgotten the room; offsets compare only
    within one epoch."""
    offset: int
    """Offset of the latest publication; 0 before any."""


class Publication(NamedTuple):
    """One message published to a room, as the brokers carry it."""

    room: str
    """The room it was published to."""
    epoch: str
    """The room's epoch when it was published."""
    offset: int
    """Its place in the room: consecutive integers from 1 within an epoch."""
    data: bytes
    """The payload, opaque to the broker (the rooms encode and decode it)."""


class History(NamedTuple):
    """What :meth:`Broker.history` returns."""

    publications: list[Publication]
    """The publications after the position asked for, in order (empty when incomplete)."""
    position: Position
    """The room's position when the history was read."""
    complete: bool
    """Whether ``publications`` holds everything after the position asked for. ``False``
    when the epoch changed or the window no longer reaches back that far: the member must
    start over (resynchronise) from ``position``. ``True`` when no position was asked for."""


@dataclasses.dataclass(frozen=True)
class Retention:
    """How much of a room's history the broker keeps.

    Publications are kept while both limits allow; ``Retention()`` keeps none.

    Raises:
        ValueError: if a limit is negative.
    """

    size: int = 0
    """How many of the latest publications to keep."""
    ttl: float | None = None
    """How long to keep each publication, in seconds; ``None``: as long as ``size`` allows."""

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"size must be >= 0, got {self.size}")
        if self.ttl is not None and self.ttl <= 0:
            raise ValueError(f"ttl must be > 0 or None, got {self.ttl}")


class PresenceEntry(NamedTuple):
    """One member present in a room, on some node."""

    member: str
    """The member's id, unique across nodes (a connection's UUID, by default)."""
    node: str
    """The id of the node it is connected to."""
    info: JSONValue
    """What the application attached when the member joined (e.g. a user name)."""


class Broker(abc.ABC):
    """Carries publications between the nodes of an application; see the module's theory of
    operation.

    A broker is used by one :class:`~socketeer.pubsub.Rooms`, in one event loop.
    :meth:`connect` and :meth:`close` may be called more than once; any other call before
    :meth:`connect` or after :meth:`close` raises :exc:`~socketeer.exceptions.InvalidState`,
    and so does :meth:`connect` after :meth:`close` (make a new broker).
    """

    node: str
    """This node's id, unique across the nodes sharing the broker."""

    on_publication: Callable[[Publication], None] | None = None
    """Called (by the rooms) for each publication in a subscribed room, in offset order per
    room, from the event loop, never from inside :meth:`publish`; it must not block. An
    exception it raises is logged (logger ``socketeer.pubsub``) and delivery goes on."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Connect to the broker, before any other call.

        Raises:
            BrokerUnavailable: if it cannot be reached now (it is not retried).
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Remove this node's presence entries, drop the subscriptions, disconnect."""

    @abc.abstractmethod
    async def subscribe(self, room: str) -> None:
        """Deliver the room's publications to :attr:`on_publication` from now on.

        Does not raise when the broker cannot be reached: the subscription is kept on this
        node and takes effect when the broker is back."""

    @abc.abstractmethod
    async def unsubscribe(self, room: str) -> None:
        """Stop delivering the room's publications, at once (as :meth:`subscribe`, does not
        raise when the broker cannot be reached)."""

    @abc.abstractmethod
    async def publish(self, room: str, data: bytes, retention: Retention) -> Position:
        """Publish ``data`` to ``room``, keep it as ``retention`` allows, return its position.

        Raises:
            BrokerUnavailable: if the broker cannot be reached: nothing was published.
        """

    @abc.abstractmethod
    async def history(self, room: str, since: Position | None) -> History:
        """The room's publications after ``since`` (none when ``since`` is ``None``: the
        position alone).

        Raises:
            BrokerUnavailable: if the broker cannot be reached.
        """

    @abc.abstractmethod
    async def add_presence(self, room: str, member: str, info: JSONValue) -> None:
        """Record that ``member`` of this node is in ``room``, until removed or until this
        node stops refreshing it.

        Does not raise when the broker cannot be reached: the entry is kept on this node and
        written when the broker is back."""

    @abc.abstractmethod
    async def remove_presence(self, room: str, member: str) -> None:
        """Forget that ``member`` of this node is in ``room`` (as :meth:`add_presence`, does
        not raise when the broker cannot be reached)."""

    @abc.abstractmethod
    async def presence(self, room: str) -> list[PresenceEntry]:
        """The members in ``room`` on every node, as far as the broker knows.

        Raises:
            BrokerUnavailable: if the broker cannot be reached.
        """
