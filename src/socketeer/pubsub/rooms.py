"""Rooms: connections and RPC peers join rooms; a publication reaches every member.

Theory of operation
-------------------

:class:`Rooms` is one node's side of publish/subscribe. It keeps, in memory and for this
node only:

- a :class:`_Member` per connection that is in at least one room: the member as given (a
  plain :class:`~socketeer.Connection` or a :class:`~socketeer.rpc.Peer`), its connection,
  its presence id (the connection's UUID), its rooms, and the remover of the close callback
  it holds on its connection (:meth:`~socketeer.Connection.add_close_callback`): no task per
  member;
- a :class:`_Room` per room with local members: its *seats* (every member, in the order
  they joined), the seats that are *live* (the recipients of the fan-out, plain and RPC
  apart), the seats that are *catching up* (joining: they hold back the publications that
  arrive meanwhile), and whether the broker is subscribed to the room.

**Who changes it.** :meth:`Rooms.join`, :meth:`Rooms.leave` and the close callback seat
and unseat members synchronously (no await in the middle of a change); the broker calls
come after, and a room's subscription is brought in step with its seats under the room's
lock (:meth:`Rooms._settle`): subscribed while it has seats, so that the first local member
subscribes and the last one to leave unsubscribes, once each, whatever joins and leaves
interleave. A room without seats nor subscription is forgotten.

**Publishing.** :meth:`Rooms.publish` encodes the data once into an *envelope*, the bytes
the broker carries: a one-byte kind (``t`` text, ``b`` binary, ``j`` JSON) then the UTF-8
text, the bytes, or the JSON text (written by the RPC codec's encoder, with orjson when it
is installed). The broker gives it an offset and calls back :meth:`Rooms._on_publication`
on every subscribed node, in offset order per room.

**Fan-out.** For each publication, at most two wire forms are built, once, and only when
some live member needs them (:class:`_Wire`): the plain message (text as a text message,
bytes as a binary one, JSON as its JSON text) and the RPC notification text
(``$/room/message``; bytes as base64 with ``"encoding": "base64"``). Each is written to
every live member of its kind with :func:`~socketeer.broadcast`, which encodes the frame
once for all the connections that frame it alike and awaits nobody. A member whose write
buffer is past ``max_backlog`` bytes (its ``write_limit`` by default) is skipped by
``broadcast`` and handed to the ``slow`` policy: ``"close"`` schedules closing it with 1013
(logged once per member; the close itself is awaited by a task, never by the fan-out), and
``"drop"`` leaves it without this publication. Memory does not grow either way.

**Joining.** A member is seated first, *catching up*: publications that arrive from then on
are held back for it (:attr:`_Seat.held`). Then the room is subscribed if needed, the
presence entry is added, and the history after ``since`` (or the room's position alone) is
read. The member then gets, with awaited sends (its own flow control), the publications it
missed, up to the history's position, then those held back that come after that position
(the others were among the missed ones), in offset order, until none are held back; then
it turns live, in the same step. So a member gets every publication after the position that
:meth:`Rooms.join` returns, exactly once and in order, and, when the join recovers, every
one after ``since`` too. Held-back publications count toward the member's backlog: past it,
the ``slow`` policy applies to them as to live ones. If the join fails, a new member is
unseated (it never joined), and one that was already in the room turns live again.

**Leaving.** Explicitly, or when the connection closes (the close callback unseats the
member from all its rooms at once, then a task removes its presence entries and settles the
subscriptions). :meth:`Rooms.close` drops every member, waits for these tasks and for the
slow members being closed, then closes the broker.

**The broker** is made from a URL (``memory://`` by default) when the rooms are created,
anywhere, and connected lazily, once, by the first operation that needs it, in the event
loop that runs it; the rooms then belong to that loop.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

from ..asyncio.connection import Connection, broadcast
from ..exceptions import InvalidState, SlowConsumer
from ..protocol.frames import CloseCode
from ..rpc.access import RateLimit
from ..rpc.messages import Notification, dump_json, serialize
from ..rpc.peer import Peer
from ..rpc.routes import Method
from ..typedefs import BytesLike, JSONValue
from .brokers import Broker, broker_from_url
from .brokers.base import History, Position, PresenceEntry, Publication, Retention

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
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
]

logger = logging.getLogger("socketeer.pubsub")

MAX_ROOM_NAME = 200
"""The longest room name, in characters."""

DEFAULT_RETENTION = Retention(size=100, ttl=300.0)
"""What the rooms keep of each room's history by default: the last 100 publications, for
at most 5 minutes each."""

JOIN_METHOD = "$/room/join"
"""RPC request: join a room (and recover what was missed)."""
LEAVE_METHOD = "$/room/leave"
"""RPC request: leave a room."""
PUBLISH_METHOD = "$/room/publish"
"""RPC request: publish to a room, when the application lets clients publish."""
MESSAGE_METHOD = "$/room/message"
"""RPC notification, server to client: a publication in a room the client is in."""

Member: TypeAlias = Connection | Peer
"""A member of rooms: a plain asyncio connection, or an RPC peer."""

SlowPolicy: TypeAlias = Literal["close", "drop"]
"""What happens to a member that is too far behind: closed with 1013, or skipped."""

# Envelope kinds: the first byte of what the broker carries.
_TEXT = ord("t")
_BINARY = ord("b")
_JSON = ord("j")


class JoinResult(NamedTuple):
    """What :meth:`Rooms.join` returns."""

    position: Position
    """The room's position once the member caught up: it gets every publication after it."""
    recovered: bool
    """Whether the member got every publication after the ``since`` it gave (``True``
    without ``since``). ``False``: the history no longer reaches back that far, or the
    epoch changed; the member must resynchronize from :attr:`position`."""


class RoomsStats(NamedTuple):
    """A snapshot of what :class:`Rooms` did on this node (:attr:`Rooms.stats`)."""

    rooms: int
    """Rooms with members on this node."""
    members: int
    """Members on this node, counted once per room they are in."""
    published: int
    """Publications made through these rooms."""
    received: int
    """Publications received from the broker."""
    delivered: int
    """Messages written to members (live and caught up)."""
    dropped: int
    """Messages not written to a live member: it was behind under the ``"drop"`` policy, or
    busy sending a fragmented message of its own."""
    closed: int
    """Members closed for being too slow (``"close"`` policy)."""


# Envelopes and wire forms


def _encode(data: object) -> bytes:
    """The envelope of a publication's data.

    Raises:
        TypeError: if ``data`` has a type that JSON cannot carry.
        ValueError: if it holds a value that JSON cannot carry (NaN, an infinity, a lone
            surrogate, ...).
    """
    if isinstance(data, str):
        return b"t" + data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return b"b" + bytes(data)
    return b"j" + dump_json(data).encode()


class _Wire:
    """A publication and its wire forms, each built once, when first needed.

    Raises (both forms):
        ValueError: if the envelope cannot be decoded (it does not come from rooms).
    """

    __slots__ = ("publication", "_plain", "_rpc")

    def __init__(self, publication: Publication) -> None:
        self.publication = publication
        self._plain: str | bytes | None = None
        self._rpc: str | None = None

    @property
    def size(self) -> int:
        return len(self.publication.data)

    def plain(self) -> str | bytes:
        """The message for plain connections."""
        if self._plain is None:
            data = self.publication.data
            kind = data[0] if data else None
            if kind == _TEXT or kind == _JSON:
                self._plain = data[1:].decode()
            elif kind == _BINARY:
                self._plain = data[1:]
            else:
                raise ValueError(f"unknown envelope kind {data[:1]!r}")
        return self._plain

    def rpc(self) -> str:
        """The ``$/room/message`` notification for RPC peers."""
        if self._rpc is None:
            publication = self.publication
            data = publication.data
            kind = data[0] if data else None
            params: dict[str, JSONValue] = {
                "room": publication.room,
                "epoch": publication.epoch,
                "offset": publication.offset,
            }
            if kind == _TEXT:
                params["data"] = data[1:].decode()
            elif kind == _JSON:
                params["data"] = json.loads(data[1:])
            elif kind == _BINARY:
                params["data"] = base64.b64encode(data[1:]).decode("ascii")
                params["encoding"] = "base64"
            else:
                raise ValueError(f"unknown envelope kind {data[:1]!r}")
            self._rpc = serialize(Notification(MESSAGE_METHOD, params))
        return self._rpc


# Members, seats and rooms


class _Member:
    """A connection in at least one room."""

    __slots__ = ("member", "connection", "rpc", "id", "rooms", "remove_callback")

    def __init__(self, member: Member, connection: Connection, rpc: bool) -> None:
        self.member = member
        self.connection = connection
        self.rpc = rpc
        self.id = str(connection.id)
        self.rooms: dict[str, _Seat] = {}  # in the order joined
        self.remove_callback: Callable[[], None] = _nothing


class _Seat:
    """A member in one room."""

    __slots__ = ("member", "held", "held_bytes")

    def __init__(self, member: _Member) -> None:
        self.member = member
        self.held: list[_Wire] | None = None
        """While catching up: the publications held back; ``None`` once live."""
        self.held_bytes = 0


class _Room:
    """A room with members on this node."""

    __slots__ = ("name", "seats", "plain", "rpc", "catching_up", "subscribed", "lock")

    def __init__(self, name: str) -> None:
        self.name = name
        self.seats: dict[Connection, _Seat] = {}
        self.plain: dict[Connection, None] = {}  # live plain members: the fan-out's recipients
        self.rpc: dict[Connection, None] = {}  # live RPC members
        self.catching_up: dict[Connection, _Seat] = {}
        self.subscribed = False
        self.lock = asyncio.Lock()

    def seated(self, seat: _Seat) -> bool:
        return self.seats.get(seat.member.connection) is seat

    def hold(self, seat: _Seat) -> None:
        """Make a seat catch up: hold back what arrives for it."""
        connection = seat.member.connection
        if seat.held is None:
            seat.held, seat.held_bytes = [], 0
        self.plain.pop(connection, None)
        self.rpc.pop(connection, None)
        self.catching_up[connection] = seat

    def go_live(self, seat: _Seat) -> None:
        """Make a seat live: the fan-out writes to it."""
        seat.held, seat.held_bytes = None, 0
        connection = seat.member.connection
        if self.seats.get(connection) is seat:
            del self.catching_up[connection]
            (self.rpc if seat.member.rpc else self.plain)[connection] = None

    def remove(self, connection: Connection) -> None:
        del self.seats[connection]
        self.plain.pop(connection, None)
        self.rpc.pop(connection, None)
        self.catching_up.pop(connection, None)


def _nothing() -> None:
    pass


def _check_room(room: object) -> None:
    if not isinstance(room, str):
        raise TypeError(f"room name must be a str, got {type(room).__name__}")
    if not 0 < len(room) <= MAX_ROOM_NAME:
        raise ValueError(f"room name must have 1 to {MAX_ROOM_NAME} characters, got {len(room)}")


def _connection_of(member: Member) -> tuple[Connection, bool]:
    """The member's connection, and whether it is an RPC peer."""
    if isinstance(member, Peer):
        return member.connection, True
    if isinstance(member, Connection):
        return member, False
    raise TypeError(f"member must be a Connection or an RPC Peer, got {type(member).__name__}")


class Rooms:
    """Rooms that connections and RPC peers join, and publications to their members; see the
    module's theory of operation and ``docs/pubsub.md``.

    Make them anywhere (at import time too); they connect their broker on first use, in the
    running event loop. ``async with Rooms() as rooms:`` or ``await rooms.close()`` closes
    them.

    Args:
        broker: a :class:`~socketeer.pubsub.Broker`, or its URL (``memory://``,
            ``redis://host:port/db``); ``None`` reads the ``SOCKETEER_BROKER`` environment
            variable, and ``memory://`` when it is unset.
        retention: how much history the broker keeps, for all rooms or, given a function,
            for each room name.
        slow: what happens to a member whose backlog is past ``max_backlog``: ``"close"``
            closes it with 1013 (try again later), so that its client reconnects and
            recovers from the history; ``"drop"`` skips it for this publication.
        max_backlog: bytes waiting to be written to a member past which it is slow; each
            connection's ``write_limit`` if ``None``.

    Raises:
        TypeError, ValueError: if an argument is invalid; ValueError for a broker URL with
            an unknown scheme.
    """

    def __init__(
        self,
        broker: Broker | str | None = None,
        *,
        retention: Retention | Callable[[str], Retention] = DEFAULT_RETENTION,
        slow: SlowPolicy = "close",
        max_backlog: int | None = None,
    ) -> None:
        if slow not in ("close", "drop"):
            raise ValueError(f"slow must be 'close' or 'drop', got {slow!r}")
        if max_backlog is not None:
            if isinstance(max_backlog, bool) or not isinstance(max_backlog, int):
                raise TypeError(f"max_backlog must be an integer or None, got {max_backlog!r}")
            if max_backlog < 0:
                raise ValueError(f"max_backlog must be >= 0, got {max_backlog}")
        if not (isinstance(retention, Retention) or callable(retention)):
            raise TypeError(f"retention must be a Retention or a function, got {retention!r}")
        if broker is None or isinstance(broker, str):
            broker = broker_from_url(broker)
        elif not isinstance(broker, Broker):
            raise TypeError(f"broker must be a Broker or a URL, got {type(broker).__name__}")
        self.broker: Broker = broker
        """The broker that carries the publications between nodes."""
        self.retention = retention
        """How much history the broker keeps (a function: per room name)."""
        self.slow: SlowPolicy = slow
        """The policy for slow members."""
        self.max_backlog = max_backlog
        """Bytes waiting for a member past which it is slow; ``None``: its ``write_limit``."""
        self._members: dict[Connection, _Member] = {}
        self._rooms: dict[str, _Room] = {}
        self._connect_lock = asyncio.Lock()
        self._connected = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing: set[Connection] = set()  # slow members being closed
        self._published = self._received = self._delivered = 0
        self._dropped = self._slow_closed = 0

    def __repr__(self) -> str:
        return f"<Rooms {self.broker!r}: {len(self._rooms)} rooms, {len(self._members)} members>"

    # Lifetime

    async def _ready(self) -> Broker:
        """The broker, connected once, by the first operation that needs it."""
        if not self._connected:
            async with self._connect_lock:
                if self._closed:
                    raise InvalidState("rooms are closed")
                if not self._connected:
                    self.broker.on_publication = self._on_publication
                    await self.broker.connect()
                    self._connected = True
        return self.broker

    async def close(self) -> None:
        """Drop every member, wait for what is underway, close the broker.

        Closing waits for the slow members being closed (each at most its connection's
        ``close_timeout``). Members' connections stay open. Closing twice does nothing.
        """
        if self._closed:
            return
        self._closed = True
        for member in self._members.values():
            member.remove_callback()
        self._members.clear()
        self._rooms.clear()
        while self._tasks:
            await asyncio.wait(list(self._tasks))
        if self._connected:
            self._connected = False
            self.broker.on_publication = None
            await self.broker.close()  # removes this node's presence and subscriptions

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("rooms: background task failed", exc_info=task.exception())

    # Joining and leaving

    async def join(
        self,
        member: Member,
        room: str,
        *,
        since: Position | None = None,
        info: JSONValue = None,
    ) -> JoinResult:
        """Make ``member`` a member of ``room``; with ``since``, send it what it missed.

        The member gets every publication after the returned position, exactly once and in
        order; with ``since``, if the history still holds them all, it gets those after
        ``since`` first (``recovered`` is then ``True``). An RPC peer gets them as
        ``$/room/message`` notifications, a plain connection as messages. Joining a room
        the member is in already is allowed: it only recovers (and updates ``info``). A
        member that leaves, or whose connection closes, before the join is done is not in
        the room; the join then returns with ``recovered`` false.

        Args:
            member: a connection or an RPC peer (in a method: ``current_peer()``).
            room: the room's name.
            since: the position the member saw last, to recover what came after it.
            info: what :meth:`presence` lists for the member (e.g. a user name).

        Raises:
            BrokerUnavailable: if the broker cannot be reached; the member did not join.
            ConnectionClosed: if the member's connection closed while catching up.
            TypeError: if ``member`` is neither a connection nor a peer, or ``info`` is not
                JSON.
            ValueError: if ``room`` is not a valid room name.
            InvalidState: if the rooms are closed.
        """
        _check_room(room)
        connection, rpc = _connection_of(member)
        broker = await self._ready()
        state, seat, new = self._seat(member, connection, rpc, room)
        state.hold(seat)
        try:
            await self._settle(state)
            await broker.add_presence(room, seat.member.id, info)
            history = await broker.history(room, since)
            if not state.seated(seat):  # left or closed meanwhile
                await broker.remove_presence(room, seat.member.id)
                return JoinResult(history.position, False)
            await self._catch_up(state, seat, since, history, new)
        except BaseException:
            self._abandon(state, seat, new)
            raise
        return JoinResult(history.position, since is None or history.complete)

    def _seat(
        self, member: Member, connection: Connection, rpc: bool, room: str
    ) -> tuple[_Room, _Seat, bool]:
        """The member's seat in the room, made if needed; whether it is new."""
        entry = self._members.get(connection)
        if entry is None:
            entry = self._members[connection] = _Member(member, connection, rpc)
            entry.remove_callback = connection.add_close_callback(
                lambda _: self._member_closed(entry)
            )
        elif entry.rpc is not rpc:
            kind = "an RPC peer" if entry.rpc else "a plain connection"
            raise ValueError(f"connection {entry.id} is in rooms as {kind} already")
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room(room)
        seat = state.seats.get(connection)
        if seat is not None:
            return state, seat, False
        seat = state.seats[connection] = entry.rooms[room] = _Seat(entry)
        return state, seat, True

    async def _catch_up(
        self, state: _Room, seat: _Seat, since: Position | None, history: History, new: bool
    ) -> None:
        """Send the missed publications, then those held back after them; go live.

        Held back publications up to the history's position are skipped when they were
        sent from the history, or when the member is new (it joins at that position); a
        member that was in the room already gets every one it was not sent.
        """
        position = history.position
        recovered = since is not None and history.complete
        if recovered:
            for publication in history.publications:
                if publication.offset <= position.offset:
                    await self._send(state, seat, _Wire(publication))
        skip = recovered or new
        while seat.held:
            held, seat.held, seat.held_bytes = seat.held, [], 0
            for wire in held:
                publication = wire.publication
                if (
                    skip
                    and publication.epoch == position.epoch
                    and publication.offset <= position.offset
                ):
                    continue  # sent above, or before the position the member joins at
                await self._send(state, seat, wire)
        state.go_live(seat)

    async def _send(self, state: _Room, seat: _Seat, wire: _Wire) -> None:
        if not state.seated(seat):
            return
        try:
            message = wire.rpc() if seat.member.rpc else wire.plain()
        except ValueError as exc:
            _log_bad(wire.publication, exc)
            return
        await seat.member.connection.send(message)
        self._delivered += 1

    def _abandon(self, state: _Room, seat: _Seat, new: bool) -> None:
        """After a failed join: unseat a new member; put one that was in the room back."""
        if not state.seated(seat):
            return
        if new:
            self._unseat(seat.member, state.name)
            self._spawn(self._vacate([state.name], seat.member.id))
            return
        # Whatever was held back goes the way live publications go: no gap.
        recipient = {seat.member.connection: None}
        for wire in seat.held or ():
            try:
                message = wire.rpc() if seat.member.rpc else wire.plain()
            except ValueError as exc:
                _log_bad(wire.publication, exc)
                continue
            self._write(state, recipient, message)
        state.go_live(seat)

    async def leave(self, member: Member, room: str) -> None:
        """Make ``member`` leave ``room``; nothing happens if it is not in it.

        Raises:
            TypeError: if ``member`` is neither a connection nor a peer.
            ValueError: if ``room`` is not a valid room name.
        """
        _check_room(room)
        connection, _ = _connection_of(member)
        entry = self._members.get(connection)
        if entry is None or room not in entry.rooms:
            return
        self._unseat(entry, room)
        await self._vacate([room], entry.id)

    def _unseat(self, entry: _Member, room: str) -> None:
        del entry.rooms[room]
        state = self._rooms.get(room)
        if state is not None:  # else: the rooms were closed
            state.remove(entry.connection)
        if not entry.rooms:
            entry.remove_callback()
            if self._members.get(entry.connection) is entry:
                del self._members[entry.connection]

    def _member_closed(self, entry: _Member) -> None:
        """The close callback: leave every room at once, tell the broker in a task."""
        if self._members.get(entry.connection) is not entry:
            return
        rooms = list(entry.rooms)
        for room in rooms:
            self._unseat(entry, room)
        self._spawn(self._vacate(rooms, entry.id))

    async def _vacate(self, rooms: Iterable[str], member_id: str) -> None:
        """After a member left rooms: remove its presence, settle the subscriptions."""
        for room in rooms:
            if self._closed:
                return  # closing the broker removes everything
            await self.broker.remove_presence(room, member_id)
            state = self._rooms.get(room)
            if state is not None:
                await self._settle(state)

    async def _settle(self, state: _Room) -> None:
        """Subscribe the broker to the room while it has seats; forget it once it has none."""
        async with state.lock:
            if state.seats and not state.subscribed:
                await self.broker.subscribe(state.name)
                state.subscribed = True
            elif not state.seats and state.subscribed:
                await self.broker.unsubscribe(state.name)
                state.subscribed = False
            if not state.seats and not state.subscribed and self._rooms.get(state.name) is state:
                del self._rooms[state.name]

    # Publishing and delivering

    async def publish(self, room: str, data: JSONValue | BytesLike) -> Position:
        """Publish ``data`` to every member of ``room``, on every node; return its position.

        Plain connections get :class:`str` as a text message, bytes as a binary message, and
        any other JSON value as its JSON text; RPC peers get a ``$/room/message``
        notification. Delivery is at most once, in order, without waiting for any member.

        Args:
            room: the room's name; it needs no members.
            data: :class:`str`, bytes-like, or any value JSON can carry.

        Raises:
            BrokerUnavailable: if the broker cannot be reached: nothing was published.
            TypeError: if ``data`` has a type JSON cannot carry.
            ValueError: if ``room`` is not a valid room name, or ``data`` holds a value JSON
                cannot carry (NaN, an infinity, a lone surrogate).
            InvalidState: if the rooms are closed.
        """
        _check_room(room)
        envelope = _encode(data)
        broker = await self._ready()
        retention = self.retention
        if not isinstance(retention, Retention):
            retention = retention(room)
        position = await broker.publish(room, envelope, retention)
        self._published += 1
        return position

    def _on_publication(self, publication: Publication) -> None:
        """The broker's callback: write a publication to the room's members."""
        self._received += 1
        state = self._rooms.get(publication.room)
        if state is None:
            return
        wire = _Wire(publication)
        try:
            plain = wire.plain() if state.plain else None
            notification = wire.rpc() if state.rpc else None
        except ValueError as exc:
            _log_bad(publication, exc)
            return
        if plain is not None:
            self._write(state, state.plain, plain)
        if notification is not None:
            self._write(state, state.rpc, notification)
        if state.catching_up:
            for seat in list(state.catching_up.values()):
                self._hold_back(state, seat, wire)

    def _write(
        self, state: _Room, connections: Mapping[Connection, None], message: str | bytes
    ) -> None:
        """Write to live members without waiting; apply the slow policy to those skipped."""
        skipped: list[Connection] = []
        sent, _ = broadcast(connections, message, max_backlog=self.max_backlog, skipped=skipped)
        self._delivered += sent
        for connection in skipped:
            self._behind(connection, state.name)

    def _limit(self, connection: Connection) -> int:
        return connection.options.write_limit if self.max_backlog is None else self.max_backlog

    def _behind(self, connection: Connection, room: str) -> None:
        """A live member was skipped: apply the slow policy if it is behind."""
        transport = connection.transport
        buffered = 0 if transport is None else transport.get_write_buffer_size()
        limit = self._limit(connection)
        if self.slow == "close" and buffered > limit:
            self._close_slow(connection, room, buffered, limit)
        else:
            self._dropped += 1

    def _hold_back(self, state: _Room, seat: _Seat, wire: _Wire) -> None:
        """Hold a publication back for a member catching up, within its backlog."""
        held = seat.held
        assert held is not None
        connection = seat.member.connection
        limit = self._limit(connection)
        # As for a write buffer: past the limit before this publication, the member is slow.
        if seat.held_bytes <= limit:
            held.append(wire)
            seat.held_bytes += wire.size
        elif self.slow == "close":
            self._close_slow(connection, state.name, seat.held_bytes, limit)
            held.clear()
            seat.held_bytes = 0
        else:
            self._dropped += 1

    def _close_slow(self, connection: Connection, room: str, buffered: int, limit: int) -> None:
        if connection in self._closing:
            return  # closing already
        self._closing.add(connection)
        self._slow_closed += 1
        logger.warning("closing %r: %s", connection, SlowConsumer(room, buffered, limit))
        self._spawn(self._close(connection, f"too slow: {buffered} bytes waiting"))

    async def _close(self, connection: Connection, reason: str) -> None:
        try:
            await connection.close(CloseCode.TRY_AGAIN_LATER, reason)
        finally:
            self._closing.discard(connection)

    # Looking

    def members(self, room: str) -> list[Member]:
        """The members of ``room`` on this node, in the order they joined.

        Raises:
            ValueError: if ``room`` is not a valid room name.
        """
        _check_room(room)
        state = self._rooms.get(room)
        return [] if state is None else [seat.member.member for seat in state.seats.values()]

    def rooms_of(self, member: Member) -> list[str]:
        """The rooms ``member`` is in, in the order it joined them.

        Raises:
            TypeError: if ``member`` is neither a connection nor a peer.
        """
        connection, _ = _connection_of(member)
        entry = self._members.get(connection)
        return [] if entry is None else list(entry.rooms)

    async def presence(self, room: str) -> list[PresenceEntry]:
        """The members of ``room`` on every node, with the ``info`` they joined with.

        Raises:
            BrokerUnavailable: if the broker cannot be reached.
            ValueError: if ``room`` is not a valid room name.
            InvalidState: if the rooms are closed.
        """
        _check_room(room)
        broker = await self._ready()
        return await broker.presence(room)

    @property
    def stats(self) -> RoomsStats:
        """What the rooms did on this node so far."""
        return RoomsStats(
            rooms=len(self._rooms),
            members=sum(len(state.seats) for state in self._rooms.values()),
            published=self._published,
            received=self._received,
            delivered=self._delivered,
            dropped=self._dropped,
            closed=self._slow_closed,
        )

    # RPC

    def rpc_methods(
        self, *, client_publish: bool = False, publish_limit: RateLimit | None = None
    ) -> dict[str, Method]:
        """The reserved methods that serve these rooms to RPC clients, by name.

        :class:`~socketeer.rpc.RPC` (``RPC(rooms=rooms)``) gives them to the peers of its
        connections; ``docs/pubsub.md`` specifies them. Joining and publishing ask the
        peer's ``authorize`` hook first (:meth:`Peer.check_access
        <socketeer.rpc.Peer.check_access>`).

        Args:
            client_publish: include ``$/room/publish``, so that clients may publish.
            publish_limit: the rate limit of each peer's publications.
        """
        from .rpc import room_methods

        return room_methods(self, client_publish=client_publish, publish_limit=publish_limit)


def _log_bad(publication: Publication, exc: Exception) -> None:
    logger.error(
        "publication %s of room %s dropped: %s", publication.offset, publication.room, exc
    )
