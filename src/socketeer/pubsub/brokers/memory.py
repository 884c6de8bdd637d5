"""The embedded broker: one process, no server, the default.

Theory of operation
-------------------

A :class:`MemoryBroker` is one node on its own: two brokers in one process share nothing
(each is its own node). It keeps, per room in use, a :class:`_Room`:

- ``epoch``: ``secrets.token_hex(8)``, drawn when the room's state is created, so that the
  offsets of a restarted process, or of a room that was forgotten, never mix with old ones;
- ``offset``: the latest offset given (0 before any);
- ``history``: the kept publications, a contiguous run of offsets ending at ``offset`` (or
  none), each with its deadline (``time.monotonic()`` + the ``ttl`` of the
  :class:`~.base.Retention` it was published with; infinite without one);
- ``subscribed`` and ``presence``: whether this node wants the room's publications, and the
  members present here with their info.

**Who changes it.** Only the broker's methods, from the event loop, without awaiting in the
middle of a change: each method is atomic with respect to the others. :meth:`publish` gives
the next offset, appends to the history and trims it (by the publication's ``size``, then
by deadline from the oldest end, so that what is kept stays contiguous).
:meth:`history` trims by deadline too: trimming is lazy, never by a timer while the room is
in use.

**Forgetting rooms.** A room that is not subscribed, has no presence and keeps no history is
dropped at once: memory does not grow with the number of rooms ever named. A room that is
idle but still keeps a history with deadlines gets one timer, at the deadline of its newest
publication, that trims it and drops it once empty. A history without ``ttl`` is kept, as
its retention asks, bounded by ``size``. A room that was dropped gets a new epoch when it is
used again, so positions read before never mistake the new offsets for the old ones (their
history requests answer ``complete=False``). :class:`~socketeer.pubsub.Rooms` subscribes
before it reads a history, which keeps the room alive in between.

**Delivery.** A publication to a subscribed room is handed to :attr:`on_publication` with
``loop.call_soon``, not from inside :meth:`publish`: the publisher never runs the
subscribers' code (an exception there cannot turn a successful publish into a failed one),
and delivery comes after :meth:`publish` returns, as with a remote broker, so that code
tested on this broker does not depend on delivery being synchronous. Ordering is kept
because the offset is given and the callback scheduled in the same step, and the event loop
runs callbacks first in, first out. A callback checks, when it runs, that the room is still
subscribed with the same state: :meth:`unsubscribe` stops delivery at once, even of
publications already scheduled.

**Lifetime.** new → connected (:meth:`connect`) → closed (:meth:`close`). Both are
idempotent; any other call before :meth:`connect` or after :meth:`close` is misuse and
raises :exc:`~socketeer.exceptions.InvalidState` (this broker is never unavailable, so
:exc:`~socketeer.exceptions.BrokerUnavailable` would invite a retry that cannot succeed). A
closed broker cannot be connected again.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import math
import secrets
import time
from typing import NamedTuple

from ...exceptions import InvalidState
from ...typedefs import JSONValue
from .base import Broker, History, Position, PresenceEntry, Publication, Retention

__all__ = ["MemoryBroker"]

logger = logging.getLogger("socketeer.pubsub")


class _Entry(NamedTuple):
    offset: int
    data: bytes
    deadline: float  # time.monotonic() after which it is dropped; math.inf: never


class _Room:
    """The state of one room in use; see the module's theory of operation."""

    __slots__ = ("epoch", "offset", "history", "subscribed", "presence", "collector")

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(8)
        self.offset = 0
        self.history: collections.deque[_Entry] = collections.deque()
        self.subscribed = False
        self.presence: dict[str, JSONValue] = {}
        self.collector: asyncio.TimerHandle | None = None

    def trim(self, now: float) -> None:
        """Drop the oldest publications up to the last one whose deadline passed."""
        history = self.history
        while history and history[0].deadline <= now:
            history.popleft()

    def is_idle(self) -> bool:
        """Whether nothing on this node needs the room but (maybe) its history."""
        return not self.subscribed and not self.presence


class MemoryBroker(Broker):
    """The broker of one process: rooms, history and presence in memory.

    Args:
        presence_ttl: how long a node's presence entries outlive the node, in seconds. A
            node here is this process, whose entries go when it goes: the value is only
            checked, for the same signature as the other brokers.
        node: this node's id; a random one by default.

    Raises:
        ValueError: if ``presence_ttl`` is not positive.
    """

    def __init__(self, *, presence_ttl: float = 30.0, node: str | None = None) -> None:
        if not presence_ttl > 0:
            raise ValueError(f"presence_ttl must be > 0, got {presence_ttl}")
        self.presence_ttl = presence_ttl
        """Seconds a dead node's presence entries would last (see above)."""
        self.node = secrets.token_hex(8) if node is None else node
        self._rooms: dict[str, _Room] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._loop else "new"
        return f"<MemoryBroker node={self.node} {state}, {len(self._rooms)} rooms>"

    # Lifetime

    async def connect(self) -> None:
        """Start: bind the broker to the running event loop.

        Raises:
            InvalidState: if the broker was closed.
        """
        if self._closed:
            raise InvalidState("broker is closed: make a new one")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        """Forget every room, stop delivering; nothing is kept across a restart."""
        self._closed = True
        for state in self._rooms.values():
            if state.collector is not None:
                state.collector.cancel()
        self._rooms.clear()

    def _check(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise InvalidState("broker is closed")
        if self._loop is None:
            raise InvalidState("broker is not connected: call connect() first")
        return self._loop

    # Rooms' state

    def _room(self, room: str) -> _Room:
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room()
        return state

    def _forget_if_idle(self, room: str, state: _Room) -> None:
        if not state.is_idle():
            return
        if not state.history:
            del self._rooms[room]
            if state.collector is not None:
                state.collector.cancel()
        elif state.collector is None:
            self._collect_later(room, state)

    def _collect_later(self, room: str, state: _Room) -> None:
        deadline = state.history[-1].deadline
        if deadline < math.inf:
            delay = max(deadline - time.monotonic(), 0.0)
            assert self._loop is not None
            state.collector = self._loop.call_later(delay, self._collect, room, state)

    def _collect(self, room: str, state: _Room) -> None:
        state.collector = None
        if self._rooms.get(room) is not state or not state.is_idle():
            return
        state.trim(time.monotonic())
        self._forget_if_idle(room, state)

    # Publications

    async def subscribe(self, room: str) -> None:
        """Deliver the room's publications to :attr:`on_publication` from now on.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check()
        self._room(room).subscribed = True

    async def unsubscribe(self, room: str) -> None:
        """Stop delivering the room's publications, including those already scheduled.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check()
        state = self._rooms.get(room)
        if state is not None:
            state.subscribed = False
            self._forget_if_idle(room, state)

    async def publish(self, room: str, data: bytes, retention: Retention) -> Position:
        """Publish ``data`` to ``room``; see :meth:`.Broker.publish`.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        loop = self._check()
        data = bytes(data)
        state = self._room(room)
        state.offset += 1
        now = time.monotonic()
        if retention.size:
            deadline = math.inf if retention.ttl is None else now + retention.ttl
            state.history.append(_Entry(state.offset, data, deadline))
            while len(state.history) > retention.size:
                state.history.popleft()
            state.trim(now)
        else:
            state.history.clear()
        if state.subscribed:
            publication = Publication(room, state.epoch, state.offset, data)
            loop.call_soon(self._deliver, state, publication)
        self._forget_if_idle(room, state)
        return Position(state.epoch, state.offset)

    def _deliver(self, state: _Room, publication: Publication) -> None:
        callback = self.on_publication
        if callback is None or not state.subscribed:
            return
        if self._rooms.get(publication.room) is not state:
            return  # forgotten and made again since: another epoch
        try:
            callback(publication)
        except Exception:
            logger.exception("on_publication failed for room %s", publication.room)

    async def history(self, room: str, since: Position | None) -> History:
        """The room's publications after ``since``; see :meth:`.Broker.history`.

        Reading the history of a room not in use starts its epoch (at offset 0); if nothing
        keeps the room (a subscription, presence, a history), it is forgotten again at once.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check()
        state = self._room(room)
        state.trim(time.monotonic())
        position = Position(state.epoch, state.offset)
        publications: list[Publication] = []
        complete = True
        if since is not None:
            missing = state.offset - since.offset
            if since.epoch != state.epoch or not 0 <= missing <= len(state.history):
                complete = False
            elif missing:
                start = len(state.history) - missing
                publications = [
                    Publication(room, state.epoch, entry.offset, entry.data)
                    for entry in itertools.islice(state.history, start, None)
                ]
        self._forget_if_idle(room, state)
        return History(publications, position, complete)

    # Presence

    async def add_presence(self, room: str, member: str, info: JSONValue) -> None:
        """Record that ``member`` of this node is in ``room``, with ``info``.

        ``info`` is copied through JSON, as a remote broker would store it.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
            TypeError: if ``info`` cannot be serialized to JSON.
        """
        self._check()
        copy: JSONValue = json.loads(json.dumps(info))
        self._room(room).presence[member] = copy

    async def remove_presence(self, room: str, member: str) -> None:
        """Forget that ``member`` of this node is in ``room``.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check()
        state = self._rooms.get(room)
        if state is not None:
            state.presence.pop(member, None)
            self._forget_if_idle(room, state)

    async def presence(self, room: str) -> list[PresenceEntry]:
        """The members in ``room``: all on this node.

        Raises:
            InvalidState: before :meth:`connect` or after :meth:`close`.
        """
        self._check()
        state = self._rooms.get(room)
        if state is None:
            return []
        return [PresenceEntry(member, self.node, info) for member, info in state.presence.items()]
