"""The brokers' contract (``socketeer.pubsub.brokers.base``), one suite run against every
broker: ``memory`` and ``redis`` (see ``conftest.py``).

Tests that need several nodes are Redis-only (two :class:`MemoryBroker` share nothing: each
is a node on its own) and say so with ``@pytest.mark.parametrize("backend", ["redis"])``.

"Not delivered" is checked with a marker: the test subscribes to another room, publishes
there, and waits for that publication; both brokers deliver in the order they published
(the memory broker through the event loop's FIFO, Redis through one pub/sub connection), so
anything that would have been delivered came before it. Waits are bounded and counted in
:data:`MS`; no test checks a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from redis_server import missing
from socketeer.exceptions import InvalidState
from socketeer.pubsub.brokers import (
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
from timing import MS

STEP = 2_000 * MS
"""Longest wait for any one thing to happen."""

KEEP = Retention(size=100)
"""A retention that keeps everything these tests publish."""


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds, at most :data:`STEP`."""

    async def poll() -> None:
        turns = 0
        while not predicate():
            turns += 1
            await asyncio.sleep(MS if turns % 8 == 0 else 0)

    await asyncio.wait_for(poll(), STEP)


@contextlib.asynccontextmanager
async def connected(*brokers: Broker) -> AsyncIterator[None]:
    """Connect the brokers for the duration of the block, then close them."""
    try:
        for broker in brokers:
            await broker.connect()
        yield
    finally:
        for broker in brokers:
            await broker.close()


class Received:
    """What a broker delivered to :attr:`~Broker.on_publication`."""

    def __init__(self, broker: Broker) -> None:
        self.publications: list[Publication] = []
        broker.on_publication = self.publications.append

    def of(self, room: str) -> list[Publication]:
        return [publication for publication in self.publications if publication.room == room]

    def data(self, room: str) -> list[bytes]:
        return [publication.data for publication in self.of(room)]

    async def until(self, room: str, count: int) -> list[Publication]:
        """Wait until ``count`` publications of ``room`` arrived; return them."""
        await eventually(lambda: len(self.of(room)) >= count)
        return self.of(room)


async def marker(broker: Broker, received: Received) -> None:
    """Publish to a room of its own and wait for it: what else was going to be delivered
    from before was delivered."""
    await broker.subscribe("marker")
    await broker.publish("marker", b"mark", Retention())
    await received.until("marker", 1)


# Offsets and positions


async def test_offsets_are_consecutive_from_1(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        positions = [await broker.publish("room", b"%d" % n, KEEP) for n in range(5)]
        assert [position.offset for position in positions] == [1, 2, 3, 4, 5]
        assert len({position.epoch for position in positions}) == 1
        assert all(isinstance(position, Position) for position in positions)


async def test_rooms_have_offsets_and_epochs_of_their_own(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("a")
        await broker.subscribe("b")
        await broker.publish("a", b"1", KEEP)
        await broker.publish("a", b"2", KEEP)
        position = await broker.publish("b", b"1", KEEP)
        assert position.offset == 1
        assert position.epoch != (await broker.history("a", None)).position.epoch


async def test_position_before_any_publication(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        history = await broker.history("room", None)
        assert history.position.offset == 0
        assert history.position.epoch
        position = await broker.publish("room", b"first", KEEP)
        assert position == Position(history.position.epoch, 1)


async def test_concurrent_publications_get_distinct_offsets(broker: Broker) -> None:
    async with connected(broker):
        received = Received(broker)
        await broker.subscribe("room")
        positions = await asyncio.gather(
            *(broker.publish("room", b"%d" % n, KEEP) for n in range(50))
        )
        assert sorted(position.offset for position in positions) == list(range(1, 51))
        publications = await received.until("room", 50)
        assert [publication.offset for publication in publications] == list(range(1, 51))
        by_offset = {position.offset: b"%d" % n for n, position in enumerate(positions)}
        assert [publication.data for publication in publications] == [
            by_offset[offset] for offset in range(1, 51)
        ]


# Delivery


async def test_subscribed_room_delivered_in_order(broker: Broker) -> None:
    async with connected(broker):
        received = Received(broker)
        await broker.subscribe("room")
        positions = [await broker.publish("room", b"%d" % n, KEEP) for n in range(20)]
        publications = await received.until("room", 20)
        assert publications == [
            Publication("room", position.epoch, position.offset, b"%d" % n)
            for n, position in enumerate(positions)
        ]


async def test_only_subscribed_rooms_delivered(broker: Broker) -> None:
    async with connected(broker):
        received = Received(broker)
        await broker.subscribe("mine")
        for n in range(3):
            await broker.publish("mine", b"%d" % n, KEEP)
            await broker.publish("other", b"%d" % n, KEEP)
        await received.until("mine", 3)
        await marker(broker, received)
        assert received.of("other") == []
        assert received.data("mine") == [b"0", b"1", b"2"]


async def test_unsubscribe_stops_delivery(broker: Broker) -> None:
    async with connected(broker):
        received = Received(broker)
        await broker.subscribe("room")
        await broker.publish("room", b"before", KEEP)
        await received.until("room", 1)
        await broker.unsubscribe("room")
        await broker.publish("room", b"after", KEEP)
        await marker(broker, received)
        assert received.data("room") == [b"before"]


async def test_unsubscribe_drops_publications_on_their_way(broker: Broker) -> None:
    async with connected(broker):
        received = Received(broker)
        await broker.subscribe("room")
        await broker.publish("room", b"published", KEEP)
        await broker.unsubscribe("room")  # before the publication could be delivered
        await marker(broker, received)
        assert received.of("room") == []


async def test_publication_before_subscribe_not_delivered(broker: Broker) -> None:
    async with connected(broker):
        received = Received(broker)
        await broker.publish("room", b"early", KEEP)
        await broker.subscribe("room")
        await broker.publish("room", b"late", KEEP)
        await received.until("room", 1)
        await marker(broker, received)
        assert received.data("room") == [b"late"]


async def test_subscribe_twice_delivers_once(broker: Broker) -> None:
    async with connected(broker):
        received = Received(broker)
        await broker.subscribe("room")
        await broker.subscribe("room")
        await broker.publish("room", b"once", KEEP)
        await marker(broker, received)
        assert received.data("room") == [b"once"]


async def test_subscribe_again_after_unsubscribe(broker: Broker) -> None:
    async with connected(broker):
        received = Received(broker)
        await broker.subscribe("room")
        await broker.unsubscribe("room")
        await broker.unsubscribe("room")  # not subscribed: nothing happens
        await broker.subscribe("room")
        await broker.publish("room", b"back", KEEP)
        await received.until("room", 1)
        assert received.data("room") == [b"back"]


@pytest.mark.parametrize(
    "data",
    [b"", b"plain", b"0:1:two:colons", b"\x00\xff\r\n" * 64, bytes(range(256)) * 400],
    ids=["empty", "plain", "colons", "binary", "100kB"],
)
async def test_data_is_carried_as_is(broker: Broker, data: bytes) -> None:
    async with connected(broker):
        received = Received(broker)
        await broker.subscribe("room")
        position = await broker.publish("room", data, KEEP)
        assert (await received.until("room", 1))[0].data == data
        history = await broker.history("room", Position(position.epoch, 0))
        assert [publication.data for publication in history.publications] == [data]


async def test_room_names_are_opaque(broker: Broker) -> None:
    rooms = ["a:b", "history:x", "{tag}", "é € 𝄞", "a" * 200]
    async with connected(broker):
        received = Received(broker)
        for room in rooms:
            await broker.subscribe(room)
            await broker.publish(room, room.encode(), KEEP)
        await eventually(lambda: len(received.publications) == len(rooms))
        for room in rooms:
            assert received.data(room) == [room.encode()]
            assert (await broker.history(room, None)).position.offset == 1


async def test_failing_callback_is_logged_and_delivery_goes_on(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    delivered: list[bytes] = []

    def callback(publication: Publication) -> None:
        delivered.append(publication.data)
        if publication.data == b"bad":
            raise RuntimeError("callback failed")

    async with connected(broker):
        broker.on_publication = callback
        await broker.subscribe("room")
        await broker.publish("room", b"bad", KEEP)
        await broker.publish("room", b"good", KEEP)
        await eventually(lambda: len(delivered) == 2)
    assert delivered == [b"bad", b"good"]
    [record] = [record for record in caplog.records if record.name == "socketeer.pubsub"]
    assert record.levelno == logging.ERROR
    assert "on_publication failed for room room" in record.getMessage()


async def test_no_callback_is_fine(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        await broker.publish("room", b"nobody listens", KEEP)
        await broker.history("room", None)


# History


async def test_history_after_a_position(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        positions = [await broker.publish("room", b"%d" % n, KEEP) for n in range(5)]
        history = await broker.history("room", positions[1])
        assert history == History(
            [Publication("room", positions[0].epoch, n + 1, b"%d" % n) for n in range(2, 5)],
            positions[-1],
            True,
        )
        everything = await broker.history("room", Position(positions[0].epoch, 0))
        assert [publication.offset for publication in everything.publications] == [1, 2, 3, 4, 5]
        assert everything.complete


async def test_history_at_the_latest_position(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        position = await broker.publish("room", b"x", KEEP)
        assert await broker.history("room", position) == History([], position, True)


async def test_history_since_none_is_the_position(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        await broker.publish("room", b"1", KEEP)
        position = await broker.publish("room", b"2", KEEP)
        assert await broker.history("room", None) == History([], position, True)


async def test_history_of_a_room_never_published_to(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        history = await broker.history("room", None)
        assert history.position.offset == 0
        assert await broker.history("room", history.position) == History(
            [], history.position, True
        )


async def test_history_trimmed_by_size(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        for n in range(5):
            position = await broker.publish("room", b"%d" % n, Retention(size=3))
        epoch = position.epoch
        assert await broker.history("room", Position(epoch, 1)) == History([], position, False)
        assert await broker.history("room", Position(epoch, 0)) == History([], position, False)
        history = await broker.history("room", Position(epoch, 2))
        assert history.complete
        assert [publication.data for publication in history.publications] == [b"2", b"3", b"4"]


async def test_history_trimmed_by_ttl(broker: Broker) -> None:
    retention = Retention(size=10, ttl=50 * MS)
    async with connected(broker):
        await broker.subscribe("room")
        for n in range(3):
            position = await broker.publish("room", b"%d" % n, retention)
        since = Position(position.epoch, 0)
        history = await broker.history("room", since)
        # Unless the machine is very slow, everything is still there; wait until it is not.
        histories = [history]

        async def expired() -> None:
            while histories[-1].complete:
                await asyncio.sleep(5 * MS)
                histories.append(await broker.history("room", since))

        await asyncio.wait_for(expired(), STEP)
        assert histories[-1] == History([], position, False)
        # What is still wanted is still there: nothing after the latest position.
        assert await broker.history("room", position) == History([], position, True)
        # A new publication is kept, after the expired ones.
        newer = await broker.publish("room", b"3", retention)
        history = await broker.history("room", position)
        if history.complete:  # a very slow machine may have expired it already
            assert [publication.data for publication in history.publications] == [b"3"]
        assert history.position == newer


async def test_publications_without_ttl_outlive_expired_ones(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        first = await broker.publish("room", b"short", Retention(size=10, ttl=10 * MS))
        second = await broker.publish("room", b"long", Retention(size=10))
        since = Position(first.epoch, 0)

        async def first_expired() -> None:
            while (await broker.history("room", since)).complete:
                await asyncio.sleep(5 * MS)

        await asyncio.wait_for(first_expired(), STEP)
        assert await broker.history("room", first) == History(
            [Publication("room", first.epoch, 2, b"long")], second, True
        )


async def test_retention_size_zero_keeps_nothing(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        first = await broker.publish("room", b"1", KEEP)
        second = await broker.publish("room", b"2", Retention())
        assert second == Position(first.epoch, 2)
        assert await broker.history("room", first) == History([], second, False)
        assert await broker.history("room", second) == History([], second, True)


async def test_history_of_another_epoch_is_incomplete(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        position = await broker.publish("room", b"1", KEEP)
        for since in [Position("another epoch", 0), Position("", 1), Position("x", 1)]:
            assert await broker.history("room", since) == History([], position, False)


async def test_history_ahead_of_the_room_is_incomplete(broker: Broker) -> None:
    async with connected(broker):
        await broker.subscribe("room")
        position = await broker.publish("room", b"1", KEEP)
        since = Position(position.epoch, 99)
        assert await broker.history("room", since) == History([], position, False)


# Presence


async def test_presence_add_list_remove(broker: Broker) -> None:
    async with connected(broker):
        assert await broker.presence("room") == []
        await broker.add_presence("room", "alice", {"name": "Alice", "tags": [1, 2.5, None]})
        await broker.add_presence("room", "bob", "Bob")
        await broker.add_presence("elsewhere", "carol", None)
        assert sorted(await broker.presence("room")) == [
            PresenceEntry("alice", broker.node, {"name": "Alice", "tags": [1, 2.5, None]}),
            PresenceEntry("bob", broker.node, "Bob"),
        ]
        await broker.remove_presence("room", "alice")
        await broker.remove_presence("room", "nobody")  # not there: nothing happens
        await broker.remove_presence("nowhere", "alice")
        assert await broker.presence("room") == [PresenceEntry("bob", broker.node, "Bob")]
        await broker.remove_presence("room", "bob")
        assert await broker.presence("room") == []
        assert await broker.presence("elsewhere") == [PresenceEntry("carol", broker.node, None)]


async def test_presence_added_again_replaces_info(broker: Broker) -> None:
    async with connected(broker):
        await broker.add_presence("room", "alice", 1)
        await broker.add_presence("room", "alice", 2)
        assert await broker.presence("room") == [PresenceEntry("alice", broker.node, 2)]


async def test_presence_info_is_a_copy(broker: Broker) -> None:
    info: dict[str, object] = {"name": "Alice"}
    async with connected(broker):
        await broker.add_presence("room", "alice", info)  # type: ignore[arg-type]
        info["name"] = "changed"
        assert await broker.presence("room") == [
            PresenceEntry("alice", broker.node, {"name": "Alice"})
        ]


async def test_presence_info_must_be_json(broker: Broker) -> None:
    async with connected(broker):
        with pytest.raises(TypeError):
            await broker.add_presence("room", "alice", {"bad": object()})  # type: ignore[dict-item]


async def test_node_ids(new_broker: Callable[..., Broker]) -> None:
    assert new_broker(node="node-1").node == "node-1"
    assert new_broker().node != new_broker().node


# Lifetime


async def test_connect_and_close_are_idempotent(broker: Broker) -> None:
    await broker.connect()
    await broker.connect()
    await broker.subscribe("room")
    await broker.close()
    await broker.close()


async def test_calls_before_connect_are_refused(broker: Broker) -> None:
    with pytest.raises(InvalidState, match="not connected"):
        await broker.publish("room", b"x", KEEP)
    with pytest.raises(InvalidState, match="not connected"):
        await broker.subscribe("room")
    await broker.close()


async def test_calls_after_close_are_refused(broker: Broker) -> None:
    await broker.connect()
    await broker.close()
    calls = [
        broker.subscribe("room"),
        broker.unsubscribe("room"),
        broker.publish("room", b"x", KEEP),
        broker.history("room", None),
        broker.add_presence("room", "alice", None),
        broker.remove_presence("room", "alice"),
        broker.presence("room"),
        broker.connect(),
    ]
    for call in calls:
        with pytest.raises(InvalidState, match="closed"):
            await call


async def test_close_before_connect(broker: Broker) -> None:
    await broker.close()
    with pytest.raises(InvalidState, match="closed"):
        await broker.connect()


# Across nodes (Redis only: a MemoryBroker is a node on its own)


@pytest.mark.parametrize("backend", ["redis"])
async def test_nodes_see_each_others_publications(new_broker: Callable[..., Broker]) -> None:
    one, two = new_broker(), new_broker()
    async with connected(one, two):
        received_one, received_two = Received(one), Received(two)
        await one.subscribe("room")
        await two.subscribe("room")
        await one.publish("room", b"from one", KEEP)
        await two.publish("room", b"from two", KEEP)
        for received in (received_one, received_two):
            publications = await received.until("room", 2)
            assert [(p.offset, p.data) for p in publications] == [
                (1, b"from one"),
                (2, b"from two"),
            ]


@pytest.mark.parametrize("backend", ["redis"])
async def test_nodes_agree_on_order(new_broker: Callable[..., Broker]) -> None:
    one, two = new_broker(), new_broker()
    async with connected(one, two):
        received_one, received_two = Received(one), Received(two)
        await one.subscribe("room")
        await two.subscribe("room")
        await asyncio.gather(
            *(node.publish("room", b"%d" % n, KEEP) for n in range(20) for node in (one, two))
        )
        first = await received_one.until("room", 40)
        second = await received_two.until("room", 40)
        assert first == second
        assert [publication.offset for publication in first] == list(range(1, 41))


@pytest.mark.parametrize("backend", ["redis"])
async def test_nodes_share_history_and_presence(new_broker: Callable[..., Broker]) -> None:
    one, two = new_broker(node="one"), new_broker(node="two")
    async with connected(one, two):
        position = await one.publish("room", b"kept", KEEP)
        history = await two.history("room", Position(position.epoch, 0))
        assert history == History(
            [Publication("room", position.epoch, 1, b"kept")], position, True
        )
        await one.add_presence("room", "alice", "A")
        await two.add_presence("room", "bob", "B")
        expected = [PresenceEntry("alice", "one", "A"), PresenceEntry("bob", "two", "B")]
        assert sorted(await one.presence("room")) == expected
        assert sorted(await two.presence("room")) == expected
    async with connected(three := new_broker(node="three")):
        assert await three.presence("room") == []  # closing removed the entries


@pytest.mark.parametrize("backend", ["redis"])
async def test_node_unsubscribed_gets_nothing(new_broker: Callable[..., Broker]) -> None:
    one, two = new_broker(), new_broker()
    async with connected(one, two):
        received_one, received_two = Received(one), Received(two)
        await one.subscribe("room")
        await two.subscribe("room")
        await two.unsubscribe("room")
        await one.publish("room", b"x", KEEP)
        await received_one.until("room", 1)
        await marker(two, received_two)
        assert received_two.of("room") == []


# Retention


def test_retention_defaults_keep_nothing() -> None:
    assert Retention() == Retention(size=0, ttl=None)


@pytest.mark.parametrize(
    ("size", "ttl", "message"),
    [
        (-1, None, "size must be >= 0, got -1"),
        (1, 0, "ttl must be > 0 or None, got 0"),
        (1, -0.5, "ttl must be > 0 or None, got -0.5"),
    ],
)
def test_retention_limits_are_checked(size: int, ttl: float | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Retention(size=size, ttl=ttl)


def test_presence_ttl_is_checked(new_broker: Callable[..., Broker]) -> None:
    with pytest.raises(ValueError, match="presence_ttl must be > 0, got 0"):
        new_broker(presence_ttl=0)


# broker_from_url


def test_broker_from_url_memory() -> None:
    assert isinstance(broker_from_url("memory://"), MemoryBroker)


def test_broker_from_url_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BROKER_ENV, raising=False)
    assert isinstance(broker_from_url(), MemoryBroker)
    monkeypatch.setenv(BROKER_ENV, "memory://")
    assert isinstance(broker_from_url(), MemoryBroker)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1/0", "rediss://example.invalid", "unix:///tmp/redis.sock"]
)
def test_broker_from_url_redis(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        from socketeer.pubsub.brokers.redis import RedisBroker
    except ImportError:
        missing("Python package 'redis'", "pip install redis")

    assert isinstance(broker_from_url(url), RedisBroker)
    monkeypatch.setenv(BROKER_ENV, url)
    assert isinstance(broker_from_url(), RedisBroker)


def test_broker_from_url_redis_options() -> None:
    try:
        from socketeer.pubsub.brokers.redis import RedisBroker
    except ImportError:
        missing("Python package 'redis'", "pip install redis")

    broker = broker_from_url(
        "redis://127.0.0.1:1/0?presence_ttl=2.5&timeout=1&idle_expiry=none&prefix=app:"
    )
    assert isinstance(broker, RedisBroker)
    assert (broker.presence_ttl, broker.timeout, broker.idle_expiry, broker.prefix) == (
        2.5,
        1.0,
        None,
        "app:",
    )
    assert broker_from_url("redis://127.0.0.1:1/0?idle_expiry=60").idle_expiry == 60.0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h/0?presence_ttl=soon", "presence_ttl must be a number of seconds"),
        ("redis://h/0?timeout=1&timeout=2", "broker URL gives timeout twice"),
        ("redis://h/0?presence_ttl=0", "presence_ttl must be > 0"),
    ],
)
def test_broker_from_url_bad_redis_options(url: str, message: str) -> None:
    try:
        import socketeer.pubsub.brokers.redis  # noqa: F401
    except ImportError:
        missing("Python package 'redis'", "pip install redis")

    with pytest.raises(ValueError, match=message):
        broker_from_url(url)


@pytest.mark.parametrize("url", ["http://localhost", "localhost:6379", "Memory"])
def test_broker_from_url_refuses_other_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="broker URL must start with memory:// or redis://"):
        broker_from_url(url)


# The memory broker's own behaviour


async def test_memory_brokers_share_nothing() -> None:
    one, two = MemoryBroker(), MemoryBroker()
    async with connected(one, two):
        received = Received(two)
        await two.subscribe("room")
        await one.publish("room", b"x", KEEP)
        await marker(two, received)
        assert received.of("room") == []
        assert await two.presence("room") == []


async def test_memory_delivers_after_publish_returns() -> None:
    broker = MemoryBroker()
    async with connected(broker):
        received = Received(broker)
        await broker.subscribe("room")
        await broker.publish("room", b"x", KEEP)
        assert received.of("room") == []  # not from inside publish()
        await received.until("room", 1)


async def test_memory_close_drops_scheduled_deliveries() -> None:
    broker = MemoryBroker()
    received = Received(broker)
    async with connected(broker):
        await broker.subscribe("room")
        await broker.publish("room", b"x", KEEP)
    await asyncio.sleep(0)
    assert received.of("room") == []


async def test_memory_forgets_idle_rooms() -> None:
    broker = MemoryBroker()
    async with connected(broker):
        await broker.subscribe("room")
        first = await broker.publish("room", b"x", Retention())
        await broker.unsubscribe("room")
        assert broker._rooms == {}
        # A forgotten room gets a new epoch: old positions are never mistaken.
        second = await broker.publish("room", b"y", Retention())
        assert second.offset == 1
        assert second.epoch != first.epoch
        assert broker._rooms == {}
        # Presence keeps a room, and so does history.
        await broker.add_presence("room", "alice", None)
        await broker.remove_presence("room", "alice")
        assert broker._rooms == {}
        await broker.publish("room", b"z", Retention(size=1))
        assert list(broker._rooms) == ["room"]


async def test_memory_collects_idle_rooms_whose_history_expired() -> None:
    broker = MemoryBroker()
    async with connected(broker):
        await broker.publish("room", b"x", Retention(size=10, ttl=10 * MS))
        assert list(broker._rooms) == ["room"]
        await eventually(lambda: broker._rooms == {})


async def test_memory_keeps_rooms_in_use_whose_history_expired() -> None:
    broker = MemoryBroker()
    async with connected(broker):
        await broker.publish("room", b"x", Retention(size=10, ttl=10 * MS))
        await broker.subscribe("room")
        epoch = (await broker.history("room", None)).position.epoch
        await asyncio.sleep(20 * MS)
        assert (await broker.history("room", None)).position == Position(epoch, 1)
