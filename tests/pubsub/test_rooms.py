"""Rooms with plain connections: real servers and clients over loopback, the memory broker
(or one that records, pauses or fails its calls)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import socketeer
from async_runner import run_strictly
from socketeer.asyncio.server import Server, ServerConnection
from socketeer.exceptions import BrokerUnavailable, ConnectionClosedError, InvalidState
from socketeer.protocol.base import Protocol
from socketeer.pubsub import (
    BROKER_ENV,
    MAX_ROOM_NAME,
    History,
    JoinResult,
    MemoryBroker,
    Position,
    PresenceEntry,
    Publication,
    Retention,
    Rooms,
    RoomsStats,
)
from socketeer.pubsub import rooms as rooms_module
from timing import MS

STEP = 5_000 * MS
"""Longest a single step may take; steps take milliseconds. Only catches hangs."""


# Servers, clients, waits


class Served:
    """A server whose connections the test puts in rooms itself."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.accepted: asyncio.Queue[ServerConnection] = asyncio.Queue()
        port = server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/"


@contextlib.asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[Served]:
    served: Served

    async def handler(connection: ServerConnection) -> None:
        await served.accepted.put(connection)
        await connection.wait_closed()

    async with socketeer.serve(handler, "127.0.0.1", 0, **options) as server:
        served = Served(server)
        yield served


@contextlib.asynccontextmanager
async def pair(
    served: Served, **options: Any
) -> AsyncIterator[tuple[socketeer.ClientConnection, ServerConnection]]:
    """A client, and its connection on the server side."""
    async with socketeer.connect(served.url, **options) as client:
        connection = await asyncio.wait_for(served.accepted.get(), STEP)
        yield client, connection


async def recv(client: socketeer.ClientConnection) -> str | bytes:
    return await asyncio.wait_for(client.recv(), STEP)


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds; fail after :data:`STEP`."""

    async def poll() -> None:
        turns = 0
        while not predicate():
            turns += 1
            await asyncio.sleep(MS if turns % 16 == 0 else 0)

    await asyncio.wait_for(poll(), STEP)


def buffered(connection: ServerConnection) -> int:
    assert connection.transport is not None
    return connection.transport.get_write_buffer_size()


# Brokers that record, pause or fail


class SlowHistory(MemoryBroker):
    """A memory broker whose ``history()`` awaits once, as a remote broker's does (Redis)."""

    async def history(self, room: str, since: Position | None) -> History:
        await asyncio.sleep(0)
        return await super().history(room, since)


class SpyBroker(MemoryBroker):
    """The memory broker, recording the calls of the rooms; ``pause`` makes ``history``
    wait twice, before and after reading, for the test to act in between."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, ...]] = []
        self.pause = False
        self.reading = asyncio.Event()  # history() waits before reading
        self.read = asyncio.Event()  # history() read and waits
        self.go_on = asyncio.Event()

    async def connect(self) -> None:
        self.calls.append(("connect",))
        await asyncio.sleep(0)  # concurrent first uses wait here together
        await super().connect()

    async def subscribe(self, room: str) -> None:
        self.calls.append(("subscribe", room))
        await super().subscribe(room)

    async def unsubscribe(self, room: str) -> None:
        self.calls.append(("unsubscribe", room))
        await super().unsubscribe(room)

    async def history(self, room: str, since: Position | None) -> History:
        if self.pause:
            self.reading.set()
            await self.go_on.wait()
            self.go_on.clear()
        history = await super().history(room, since)
        if self.pause:
            self.read.set()
            await self.go_on.wait()
            self.go_on.clear()
        return history

    def subscriptions(self) -> list[tuple[str, ...]]:
        return [call for call in self.calls if call[0] != "connect"]


class DownBroker(MemoryBroker):
    """A broker that cannot be reached (but for presence, which never raises)."""

    async def publish(self, room: str, data: bytes, retention: Retention) -> Position:
        raise BrokerUnavailable("broker down")

    async def history(self, room: str, since: Position | None) -> History:
        raise BrokerUnavailable("broker down")

    async def presence(self, room: str) -> list[PresenceEntry]:
        raise BrokerUnavailable("broker down")


# Creating and closing


class TestLifetime:
    def test_made_without_event_loop(self) -> None:
        rooms = Rooms()  # as at import time: no running loop

        async def use() -> None:
            async with rooms:
                position = await rooms.publish("lobby", "hello")
                assert position.offset == 1

        run_strictly(use)

    def test_broker_from_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert isinstance(Rooms("memory://").broker, MemoryBroker)
        monkeypatch.delenv(BROKER_ENV, raising=False)
        assert isinstance(Rooms().broker, MemoryBroker)
        monkeypatch.setenv(BROKER_ENV, "nowhere://")
        with pytest.raises(ValueError, match="broker URL"):
            Rooms()
        with pytest.raises(ValueError, match="broker URL"):
            Rooms("http://localhost/")

    def test_invalid_arguments(self) -> None:
        with pytest.raises(TypeError):
            Rooms(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="slow"):
            Rooms(slow="wait")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_backlog"):
            Rooms(max_backlog=-1)
        with pytest.raises(TypeError, match="max_backlog"):
            Rooms(max_backlog=1.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="retention"):
            Rooms(retention=100)  # type: ignore[arg-type]

    async def test_connects_once(self) -> None:
        broker = SpyBroker()
        async with Rooms(broker) as rooms:
            assert broker.calls == []  # lazily
            await asyncio.gather(rooms.publish("a", 1), rooms.publish("b", 2), rooms.presence("c"))
            await rooms.publish("a", 3)
            assert broker.calls == [("connect",)]

    async def test_closed(self) -> None:
        async with serving() as served, pair(served) as (_, connection):
            rooms = Rooms()
            await rooms.join(connection, "lobby")
            await rooms.close()
            await rooms.close()  # twice: nothing happens
            assert rooms.members("lobby") == []
            with pytest.raises(InvalidState, match="rooms are closed"):
                await rooms.publish("lobby", "hello")
            with pytest.raises(InvalidState):
                await rooms.join(connection, "lobby")

    async def test_closed_without_use(self) -> None:
        broker = SpyBroker()
        async with Rooms(broker):
            pass
        assert broker.calls == []


# Joining, publishing, leaving


class TestPublish:
    async def test_text_binary_json(self) -> None:
        async with Rooms() as rooms, serving() as served:
            async with pair(served) as (alice, a), pair(served) as (bob, b):
                await rooms.join(a, "lobby")
                await rooms.join(b, "lobby")
                await rooms.publish("lobby", "café")
                await rooms.publish("lobby", b"\x00\xff")
                await rooms.publish("lobby", bytearray(b"ba"))
                await rooms.publish("lobby", memoryview(b"mv"))
                await rooms.publish("lobby", {"text": "é", "list": [1, 2.5, True, None]})
                await rooms.publish("lobby", 42)
                await rooms.publish("lobby", None)
                await rooms.publish("lobby", "")
                for client in (alice, bob):
                    assert await recv(client) == "café"
                    assert await recv(client) == b"\x00\xff"
                    assert await recv(client) == b"ba"
                    assert await recv(client) == b"mv"
                    assert await recv(client) == '{"text":"é","list":[1,2.5,true,null]}'
                    assert await recv(client) == "42"
                    assert await recv(client) == "null"
                    assert await recv(client) == ""

    async def test_positions(self) -> None:
        async with Rooms() as rooms:
            first = await rooms.publish("lobby", "a")
            second = await rooms.publish("lobby", "b")
            other = await rooms.publish("other", "c")
            assert isinstance(first, Position)
            assert (first.offset, second.offset, other.offset) == (1, 2, 1)
            assert first.epoch == second.epoch

    async def test_only_members_of_the_room(self) -> None:
        async with Rooms() as rooms, serving() as served:
            async with pair(served) as (alice, a), pair(served) as (bob, b):
                await rooms.join(a, "lobby")
                await rooms.join(b, "kitchen")
                await rooms.publish("lobby", "to the lobby")
                await rooms.publish("kitchen", "to the kitchen")
                assert await recv(alice) == "to the lobby"
                assert await recv(bob) == "to the kitchen"  # nothing from the lobby first

    async def test_member_of_many_rooms(self) -> None:
        async with Rooms() as rooms, serving() as served, pair(served) as (client, connection):
            for room in ("a", "b", "c"):
                await rooms.join(connection, room)
            for room in ("c", "a", "b"):
                await rooms.publish(room, room)
            assert [await recv(client) for _ in range(3)] == ["c", "a", "b"]

    async def test_not_json(self) -> None:
        async with Rooms() as rooms:
            with pytest.raises(TypeError):
                await rooms.publish("lobby", {1, 2})  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await rooms.publish("lobby", object())  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                await rooms.publish("lobby", float("nan"))
            with pytest.raises(ValueError):
                await rooms.publish("lobby", "\ud800")
            assert rooms.stats.published == 0

    async def test_broker_unavailable(self) -> None:
        async with Rooms(DownBroker()) as rooms, serving() as served:
            with pytest.raises(BrokerUnavailable, match="broker down"):
                await rooms.publish("lobby", "hello")
            with pytest.raises(BrokerUnavailable):
                await rooms.presence("lobby")
            async with pair(served) as (_, connection):
                with pytest.raises(BrokerUnavailable):
                    await rooms.join(connection, "lobby")
                # The member did not join.
                assert rooms.members("lobby") == []
                assert rooms.rooms_of(connection) == []
            assert rooms.stats.published == 0

    async def test_retention_per_room(self) -> None:
        seen: list[str] = []

        def retention(room: str) -> Retention:
            seen.append(room)
            return Retention(size=1) if room == "kept" else Retention()

        async with Rooms(retention=retention) as rooms, serving() as served:
            start = await rooms.publish("kept", "a")
            await rooms.publish("kept", "b")
            await rooms.publish("lost", "c")
            assert seen == ["kept", "kept", "lost"]
            async with pair(served) as (client, connection):
                since = Position(start.epoch, 1)
                assert (await rooms.join(connection, "kept", since=since)).recovered
                assert await recv(client) == "b"
                result = await rooms.join(connection, "lost", since=Position(start.epoch, 0))
                assert not result.recovered


class TestLeave:
    async def test_leave(self) -> None:
        async with Rooms() as rooms, serving() as served, pair(served) as (client, connection):
            await rooms.join(connection, "lobby")
            await rooms.join(connection, "kitchen")
            await rooms.leave(connection, "lobby")
            await rooms.leave(connection, "lobby")  # twice: nothing happens
            await rooms.leave(connection, "attic")  # never joined: nothing happens
            await rooms.publish("lobby", "to the lobby")
            await rooms.publish("kitchen", "to the kitchen")
            assert await recv(client) == "to the kitchen"
            assert rooms.rooms_of(connection) == ["kitchen"]

    async def test_client_closes(self) -> None:
        broker = SpyBroker()
        async with Rooms(broker) as rooms, serving() as served:
            async with pair(served) as (client, connection):
                await rooms.join(connection, "lobby", info="ada")
                await rooms.join(connection, "kitchen", info="ada")
                await client.close()
                await connection.wait_closed()
                # Left at once, when the connection closed...
                assert rooms.members("lobby") == rooms.members("kitchen") == []
                assert rooms.rooms_of(connection) == []
                # ...and the broker is told soon after.
                await eventually(lambda: len(broker.calls) == 5)
                assert await rooms.presence("lobby") == []
                assert await rooms.presence("kitchen") == []
                assert broker.subscriptions() == [
                    ("subscribe", "lobby"),
                    ("subscribe", "kitchen"),
                    ("unsubscribe", "lobby"),
                    ("unsubscribe", "kitchen"),
                ]
                assert rooms.stats == RoomsStats(0, 0, 0, 0, 0, 0, 0)

    async def test_server_closes(self) -> None:
        async with Rooms() as rooms, serving() as served:
            async with pair(served) as (client, connection), pair(served) as (other, o):
                await rooms.join(connection, "lobby")
                await rooms.join(o, "lobby")
                await connection.close()
                assert rooms.members("lobby") == [o]
                await rooms.publish("lobby", "still here")
                assert await recv(other) == "still here"
                await eventually(lambda: len(rooms._tasks) == 0)
                assert [entry.member for entry in await rooms.presence("lobby")] == [str(o.id)]

    async def test_joined_once_closed(self) -> None:
        async with Rooms() as rooms, serving() as served:
            async with pair(served) as (client, connection):
                await client.close()
                await connection.wait_closed()
                await rooms.join(connection, "lobby")
                await eventually(lambda: rooms.members("lobby") == [])
                await eventually(lambda: len(rooms._tasks) == 0)
                assert await rooms.presence("lobby") == []


class TestMembers:
    async def test_members_rooms_of_presence(self) -> None:
        broker = MemoryBroker()
        async with Rooms(broker) as rooms, serving() as served:
            async with pair(served) as (_, a), pair(served) as (_, b):
                assert rooms.members("lobby") == []
                assert rooms.rooms_of(a) == []
                await rooms.join(a, "lobby", info={"name": "ada"})
                await rooms.join(b, "lobby")
                await rooms.join(b, "kitchen", info="bob")
                assert rooms.members("lobby") == [a, b]
                assert rooms.members("kitchen") == [b]
                assert rooms.rooms_of(b) == ["lobby", "kitchen"]
                assert await rooms.presence("lobby") == [
                    PresenceEntry(str(a.id), broker.node, {"name": "ada"}),
                    PresenceEntry(str(b.id), broker.node, None),
                ]
                await rooms.join(a, "lobby", info="again")  # updates the info
                assert (await rooms.presence("lobby"))[0].info == "again"
                await rooms.leave(a, "lobby")
                assert await rooms.presence("lobby") == [
                    PresenceEntry(str(b.id), broker.node, None)
                ]
                assert await rooms.presence("kitchen") == [
                    PresenceEntry(str(b.id), broker.node, "bob")
                ]
                assert rooms.stats.rooms == 2
                assert rooms.stats.members == 2

    async def test_info_not_json(self) -> None:
        async with Rooms() as rooms, serving() as served, pair(served) as (_, connection):
            with pytest.raises(TypeError):
                await rooms.join(connection, "lobby", info={1, 2})  # type: ignore[arg-type]
            assert rooms.members("lobby") == []

    async def test_not_a_member(self) -> None:
        async with Rooms() as rooms:
            with pytest.raises(TypeError, match="Connection or an RPC Peer"):
                await rooms.join("ws", "lobby")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                rooms.rooms_of(object())  # type: ignore[arg-type]

    async def test_stats(self) -> None:
        async with Rooms() as rooms, serving() as served:
            async with pair(served) as (alice, a), pair(served) as (bob, b):
                await rooms.join(a, "lobby")
                await rooms.join(b, "lobby")
                await rooms.publish("lobby", "one")
                await rooms.publish("lobby", "two")
                await rooms.publish("empty", "nobody")
                for client in (alice, bob):
                    assert [await recv(client), await recv(client)] == ["one", "two"]
                assert rooms.stats == RoomsStats(
                    rooms=1, members=2, published=3, received=2, delivered=4, dropped=0, closed=0
                )


class TestRoomNames:
    @pytest.mark.parametrize("room", ["", "x" * (MAX_ROOM_NAME + 1)])
    async def test_invalid(self, room: str) -> None:
        async with Rooms() as rooms, serving() as served, pair(served) as (_, connection):
            with pytest.raises(ValueError, match="room name must have 1 to 200 characters"):
                await rooms.join(connection, room)
            with pytest.raises(ValueError):
                await rooms.leave(connection, room)
            with pytest.raises(ValueError):
                await rooms.publish(room, "hello")
            with pytest.raises(ValueError):
                await rooms.presence(room)
            with pytest.raises(ValueError):
                rooms.members(room)

    async def test_not_a_string(self) -> None:
        async with Rooms() as rooms:
            with pytest.raises(TypeError, match="room name must be a str"):
                await rooms.publish(42, "hello")  # type: ignore[arg-type]

    async def test_longest(self) -> None:
        assert MAX_ROOM_NAME == 200
        room = "é" * MAX_ROOM_NAME
        async with Rooms() as rooms, serving() as served, pair(served) as (client, connection):
            await rooms.join(connection, room)
            await rooms.publish(room, "hello")
            assert await recv(client) == "hello"


class TestSubscriptions:
    async def test_first_join_last_leave(self) -> None:
        broker = SpyBroker()
        async with Rooms(broker) as rooms, serving() as served:
            async with pair(served) as (_, a), pair(served) as (_, b):
                await rooms.join(a, "lobby")
                await rooms.join(b, "lobby")
                await rooms.join(a, "lobby")  # again
                assert broker.subscriptions() == [("subscribe", "lobby")]
                await rooms.leave(a, "lobby")
                assert broker.subscriptions() == [("subscribe", "lobby")]
                await rooms.leave(b, "lobby")
                assert broker.subscriptions() == [
                    ("subscribe", "lobby"),
                    ("unsubscribe", "lobby"),
                ]
                await rooms.join(a, "lobby")
                assert broker.subscriptions()[-1] == ("subscribe", "lobby")

    async def test_concurrent_joins_and_leaves(self) -> None:
        broker = SpyBroker()
        async with Rooms(broker) as rooms, serving() as served:
            async with pair(served) as (_, a), pair(served) as (_, b), pair(served) as (_, c):
                await asyncio.gather(*(rooms.join(m, "lobby") for m in (a, b, c)))
                assert broker.subscriptions() == [("subscribe", "lobby")]
                await asyncio.gather(
                    rooms.leave(a, "lobby"), rooms.leave(b, "lobby"), rooms.join(a, "lobby")
                )
                await rooms.leave(c, "lobby")
                assert rooms.members("lobby") == [a]
                # Whatever the interleaving, the broker ends subscribed: a is in the room.
                assert broker.subscriptions()[-1] == ("subscribe", "lobby")
                await rooms.leave(a, "lobby")
                assert broker.subscriptions()[-1] == ("unsubscribe", "lobby")
                assert rooms.stats.rooms == 0


# Recovery


class TestRecovery:
    async def test_rejoin_since(self) -> None:
        async with Rooms() as rooms, serving() as served, pair(served) as (client, connection):
            joined = await rooms.join(connection, "news")
            assert joined == JoinResult(joined.position, True)
            assert joined.position.offset == 0
            await rooms.publish("news", "1")
            assert await recv(client) == "1"
            seen = Position(joined.position.epoch, 1)
            await rooms.leave(connection, "news")
            for text in ("2", "3", "4"):
                await rooms.publish("news", text)
            rejoined = await rooms.join(connection, "news", since=seen)
            assert rejoined == JoinResult(Position(seen.epoch, 4), True)
            await rooms.publish("news", "5")
            assert [await recv(client) for _ in range(4)] == ["2", "3", "4", "5"]

    async def test_publications_during_the_join(self) -> None:
        # Publications that come while the member catches up are held back, then sent after
        # what it missed: no gap, in order, exactly once.
        broker = SpyBroker()
        async with (
            Rooms(broker) as rooms,
            serving() as served,
            pair(served) as (client, connection),
        ):
            await rooms.publish("news", "0")  # the room has a history from now on
            seen = (await rooms.join(connection, "news")).position
            await rooms.leave(connection, "news")
            for text in ("1", "2", "3"):
                await rooms.publish("news", text)
            broker.pause = True
            joining = asyncio.create_task(rooms.join(connection, "news", since=seen))
            await asyncio.wait_for(broker.reading.wait(), STEP)
            for text in ("4", "5"):  # before the history is read: in it, and held back
                await rooms.publish("news", text)
            await eventually(lambda: rooms.stats.received == 2)
            broker.go_on.set()
            await asyncio.wait_for(broker.read.wait(), STEP)
            for text in ("6", "7"):  # after: only held back
                await rooms.publish("news", text)
            await eventually(lambda: rooms.stats.received == 4)
            broker.go_on.set()
            result = await asyncio.wait_for(joining, STEP)
            assert result == JoinResult(Position(seen.epoch, 6), True)
            await rooms.publish("news", "8")
            assert [await recv(client) for _ in range(8)] == [str(n) for n in range(1, 9)]
            assert rooms.stats.delivered == 8

    async def test_join_without_since_starts_at_position(self) -> None:
        broker = SpyBroker()
        async with (
            Rooms(broker) as rooms,
            serving() as served,
            pair(served) as (client, connection),
        ):
            await rooms.publish("news", "0")
            broker.pause = True
            joining = asyncio.create_task(rooms.join(connection, "news"))
            await asyncio.wait_for(broker.reading.wait(), STEP)
            await rooms.publish("news", "1")  # before the position is read: not sent
            await eventually(lambda: rooms.stats.received == 1)
            broker.go_on.set()
            await asyncio.wait_for(broker.read.wait(), STEP)
            await rooms.publish("news", "2")  # after: sent
            await eventually(lambda: rooms.stats.received == 2)
            broker.go_on.set()
            result = await asyncio.wait_for(joining, STEP)
            assert result.position.offset == 2
            assert result.recovered
            await rooms.publish("news", "3")
            assert [await recv(client) for _ in range(2)] == ["2", "3"]

    async def test_rejoin_while_member_only_recovers(self) -> None:
        async with Rooms() as rooms, serving() as served, pair(served) as (client, connection):
            start = (await rooms.join(connection, "news")).position
            await rooms.publish("news", "1")
            await rooms.publish("news", "2")
            assert [await recv(client), await recv(client)] == ["1", "2"]
            result = await rooms.join(connection, "news", since=Position(start.epoch, 1))
            assert result == JoinResult(Position(start.epoch, 2), True)
            assert await recv(client) == "2"  # asked for again
            assert rooms.members("news") == [connection]
            await rooms.publish("news", "3")
            assert await recv(client) == "3"

    @pytest.mark.parametrize(
        "since", [None, Position("other epoch", 0)], ids=["without since", "recovery failed"]
    )
    async def test_rejoin_while_member_misses_nothing(self, since: Position | None) -> None:
        # Publications that arrive while the history is read are held back for the member;
        # one that was in the room already must get them all, recovered or not.
        async with Rooms(SlowHistory()) as rooms, serving() as served:
            async with pair(served) as (client, connection):
                await rooms.join(connection, "news", info="first")
                await rooms.publish("news", "1")  # delivered from the event loop, soon
                await rooms.join(connection, "news", since=since, info="updated")
                await rooms.publish("news", "2")
                assert [await recv(client), await recv(client)] == ["1", "2"]
                assert rooms.stats.dropped == 0

    async def test_too_far_behind(self) -> None:
        async with Rooms(retention=Retention(size=2)) as rooms, serving() as served:
            async with pair(served) as (client, connection):
                await rooms.publish("news", "0")  # the room has a history from now on
                start = (await rooms.join(connection, "news")).position
                await rooms.leave(connection, "news")
                for text in ("1", "2", "3"):
                    await rooms.publish("news", text)
                result = await rooms.join(connection, "news", since=start)
                assert result == JoinResult(Position(start.epoch, 4), False)
                await rooms.publish("news", "4")
                assert await recv(client) == "4"  # nothing of the history

    async def test_other_epoch(self) -> None:
        async with Rooms() as rooms, serving() as served, pair(served) as (client, connection):
            await rooms.publish("news", "1")
            result = await rooms.join(connection, "news", since=Position("forgotten", 0))
            assert not result.recovered
            assert result.position.offset == 1
            await rooms.publish("news", "2")
            assert await recv(client) == "2"

    async def test_join_fails_while_member(self) -> None:
        # A member whose join fails stays a member, without a gap.
        broker = SpyBroker()
        async with (
            Rooms(broker) as rooms,
            serving() as served,
            pair(served) as (client, connection),
        ):
            await rooms.join(connection, "news")
            broker.pause = True
            joining = asyncio.create_task(rooms.join(connection, "news", since=None))
            await asyncio.wait_for(broker.reading.wait(), STEP)
            await rooms.publish("news", "1")  # held back
            await eventually(lambda: rooms.stats.received == 1)
            joining.cancel()
            with pytest.raises(asyncio.CancelledError):
                await joining
            assert rooms.members("news") == [connection]
            await rooms.publish("news", "2")
            assert [await recv(client), await recv(client)] == ["1", "2"]

    async def test_member_closes_while_joining(self) -> None:
        broker = SpyBroker()
        async with Rooms(broker) as rooms, serving() as served:
            async with pair(served) as (client, connection):
                broker.pause = True
                joining = asyncio.create_task(rooms.join(connection, "news", info="x"))
                await asyncio.wait_for(broker.reading.wait(), STEP)
                await client.close()
                await connection.wait_closed()
                broker.go_on.set()
                await asyncio.wait_for(broker.read.wait(), STEP)
                broker.go_on.set()
                result = await asyncio.wait_for(joining, STEP)
                assert not result.recovered
                assert rooms.members("news") == []
                await eventually(lambda: len(rooms._tasks) == 0)
                assert await rooms.presence("news") == []


# Fan-out and slow members


class TestFanOut:
    async def test_encoded_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        encodes = count_calls(monkeypatch, rooms_module, "_encode")
        dumps = count_calls(monkeypatch, rooms_module, "dump_json")
        frames = count_calls(monkeypatch, Protocol, "send_text")
        async with Rooms() as rooms, serving(compression=None) as served:
            async with contextlib.AsyncExitStack() as stack:
                pairs = [await stack.enter_async_context(pair(served)) for _ in range(10)]
                writes = {connection: record_writes(connection) for _, connection in pairs}
                for _, connection in pairs:
                    await rooms.join(connection, "lobby")
                await rooms.publish("lobby", {"big": "x" * 1000})
                for client, _ in pairs:
                    assert await recv(client) == '{"big":"' + "x" * 1000 + '"}'
                assert len(encodes) == len(dumps) == 1
                assert len(frames) == 1  # the frame was made once...
                written = [w for recorded in writes.values() for w in recorded]
                assert len(written) == 10
                assert all(w is written[0] for w in written)  # ...and written ten times
                assert rooms.stats.delivered == 10

    async def test_slow_member_closed(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.WARNING, "socketeer.pubsub")
        message = bytes(range(256)) * 1024
        async with Rooms(retention=Retention()) as rooms, serving(compression=None) as served:
            async with pair(served, max_queue=1, compression=None) as (slow, connection):
                async with pair(served, compression=None) as (fast, f):
                    await rooms.join(connection, "firehose")
                    await rooms.join(f, "firehose")
                    limit = connection.options.write_limit
                    peak = published = 0
                    # The slow client reads nothing: the TCP buffers fill up, then the write
                    # buffer of its connection, until it passes the limit.
                    while not rooms.stats.closed:
                        assert published < 1_000, "never closed"
                        await rooms.publish("firehose", message)
                        published += 1
                        await asyncio.sleep(0)  # delivered
                        assert await recv(fast) == message
                        peak = max(peak, buffered(connection))
                    assert peak <= limit + len(message) + 16  # one message past the limit
                    # Nothing more is written to it.
                    await asyncio.sleep(0)
                    assert connection.state is socketeer.State.CLOSING
                    size = buffered(connection)
                    for _ in range(5):
                        await rooms.publish("firehose", message)
                        assert await recv(fast) == message
                    assert buffered(connection) <= size
                    # The slow client reads what was written before, then the close frame.
                    received = 0
                    with pytest.raises(ConnectionClosedError) as raised:
                        while True:
                            await recv(slow)
                            received += 1
                    assert raised.value.code == 1013
                    assert raised.value.reason.startswith("too slow: ")
                    assert received < published
                    await connection.wait_closed()
                    assert rooms.members("firehose") == [f]
                    stats = rooms.stats
                    assert (stats.closed, stats.dropped) == (1, 0)
                    assert stats.delivered == published + 5 + received
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "past the limit of" in warnings[0].getMessage()

    async def test_slow_member_dropped(self) -> None:
        message = bytes(range(256)) * 256
        async with (
            Rooms(retention=Retention(), slow="drop", max_backlog=0) as rooms,
            serving(compression=None) as served,
            pair(served, max_queue=1, compression=None) as (slow, connection),
        ):
            await rooms.join(connection, "firehose")
            published = 0
            while not rooms.stats.dropped:
                assert published < 1_000, "never dropped"
                await rooms.publish("firehose", message)
                published += 1
                await asyncio.sleep(0)
                assert buffered(connection) <= len(message) + 16
            for _ in range(10):
                await rooms.publish("firehose", message)
                published += 1
            await asyncio.sleep(0)
            assert buffered(connection) <= len(message) + 16
            assert connection.state is socketeer.State.OPEN
            # Once the client reads again, it gets what was written, then new publications.
            received: list[str | bytes] = []

            async def read() -> None:
                while (data := await slow.recv()) != "marker":
                    received.append(data)

            reading = asyncio.create_task(read())
            await eventually(lambda: buffered(connection) == 0)
            await rooms.publish("firehose", "marker")
            await asyncio.wait_for(reading, STEP)
            stats = rooms.stats
            assert stats.closed == 0
            assert stats.dropped >= 11
            assert len(received) + stats.dropped == published
            assert all(data == message for data in received)


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[object]:
    """Count the calls to a function or method of ``owner``."""
    calls: list[object] = []
    function = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return function(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def record_writes(connection: ServerConnection) -> list[object]:
    """Record the objects written to the connection's transport from now on."""
    transport = connection.transport
    assert transport is not None
    write = transport.write
    writes: list[object] = []

    def recording_write(data: Any) -> None:
        writes.append(data)
        write(data)

    transport.write = recording_write  # type: ignore[method-assign]
    return writes


def test_publication_envelope() -> None:
    # What the broker carries: one byte for the kind, then the payload.
    assert rooms_module._encode("é") == b"t\xc3\xa9"
    assert rooms_module._encode(b"\x00") == b"b\x00"
    assert rooms_module._encode([1, "a"]) == b'j[1,"a"]'
    wire = rooms_module._Wire(Publication("r", "e", 1, b"x??"))
    with pytest.raises(ValueError, match="unknown envelope kind"):
        wire.plain()
    with pytest.raises(ValueError, match="unknown envelope kind"):
        wire.rpc()
