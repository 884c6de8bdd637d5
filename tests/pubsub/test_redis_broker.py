"""What only the Redis broker does: its keys in Redis, forgetting rooms, presence of nodes
that die, and outages (a ``redis-server`` killed with SIGKILL, then restarted on its port).

The contract shared with the memory broker is in ``test_brokers.py``. Every wait is bounded
and counted in :data:`MS`; no test checks a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from redis_server import RedisServer, missing
from socketeer.client import Backoff
from socketeer.exceptions import BrokerError, BrokerUnavailable
from socketeer.pubsub.brokers import Position, PresenceEntry, Publication, Retention
from timing import MS

try:
    import redis
except ImportError:
    missing("Python package 'redis'", "pip install redis")

from socketeer.pubsub.brokers.redis import RedisBroker  # noqa: E402

T = TypeVar("T")

STEP = 5_000 * MS
"""Longest wait for any one thing to happen (a reconnection included)."""

FAST = {"backoff": Backoff(initial=10 * MS, factor=2.0, maximum=50 * MS), "timeout": 1_000 * MS}
"""Reconnect quickly."""


def node(url: str, **kwargs: Any) -> RedisBroker:
    return RedisBroker(url, **{**FAST, **kwargs})


@contextlib.asynccontextmanager
async def connected(*brokers: RedisBroker) -> AsyncIterator[None]:
    try:
        for broker in brokers:
            await broker.connect()
        yield
    finally:
        for broker in brokers:
            await broker.close()


@contextlib.asynccontextmanager
async def raw_client(url: str) -> AsyncIterator[Any]:
    """A plain redis-py client, to look at (and meddle with) what the brokers store."""
    client = redis.asyncio.Redis.from_url(url, protocol=2)
    try:
        yield client
    finally:
        await client.aclose()


async def eventually(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(MS)

    await asyncio.wait_for(poll(), STEP)


async def until_succeeds(call: Callable[[], Awaitable[T]]) -> T:
    """Call until it does not raise :exc:`BrokerUnavailable`; return what it returned."""

    async def retry() -> T:
        while True:
            try:
                return await call()
            except BrokerUnavailable:
                await asyncio.sleep(5 * MS)

    return await asyncio.wait_for(retry(), STEP)


async def until_unavailable(call: Callable[[], Awaitable[Any]]) -> BrokerUnavailable:
    """Call until it raises :exc:`BrokerUnavailable`; return the exception."""

    async def retry() -> BrokerUnavailable:
        while True:
            try:
                await call()
            except BrokerUnavailable as exc:
                return exc
            await asyncio.sleep(MS)

    return await asyncio.wait_for(retry(), STEP)


# Installation


def test_import_without_redis_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "redis" or name.startswith("redis."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "socketeer.pubsub.brokers.redis")
    with pytest.raises(ImportError, match=r"pip install socketeer\[redis\]"):
        importlib.import_module("socketeer.pubsub.brokers.redis")


def test_resp3_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="RedisBroker speaks RESP2"):
        RedisBroker("redis://127.0.0.1:6379/0?protocol=3")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"idle_expiry": 0}, "idle_expiry must be > 0 or None, got 0"),
        ({"timeout": -1}, "timeout must be > 0, got -1"),
        ({"presence_ttl": -1}, "presence_ttl must be > 0, got -1"),
    ],
)
def test_options_are_checked(option: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisBroker("redis://127.0.0.1:6379/0", **option)


# What Redis holds


async def test_keys_of_a_room(redis_url: str) -> None:
    broker = node(redis_url, prefix="app:")
    async with connected(broker), raw_client(redis_url) as client:
        position = await broker.publish("lobby", b"hello", Retention(size=10))
        await broker.add_presence("lobby", "alice", {"name": "Alice"})
        assert sorted(await client.keys("*")) == [
            b"app:history:lobby",
            b"app:presence-info:lobby",
            b"app:presence:lobby",
            b"app:room:lobby",
        ]
        assert await client.hgetall(b"app:room:lobby") == {
            b"epoch": position.epoch.encode(),
            b"offset": b"1",
        }
        [(entry_id, fields)] = await client.xrange(b"app:history:lobby")
        assert entry_id == b"0-1"
        assert fields[b"data"] == b"hello"
        assert int(fields[b"time"]) > 0
        assert fields[b"expires"] == b"0"
        # A history without ttl is kept, and so is its room.
        assert await client.pttl(b"app:room:lobby") == -1
        assert await client.pttl(b"app:history:lobby") == -1
        assert await client.zscore(b"app:presence:lobby", b"alice") > 0
        assert await client.hget(b"app:presence-info:lobby", b"alice") == (
            b'["%s",{"name":"Alice"}]' % broker.node.encode()
        )
        assert await client.pttl(b"app:presence:lobby") > 0


async def test_keys_expire_with_the_history(redis_url: str) -> None:
    broker = node(redis_url, idle_expiry=60.0)
    async with connected(broker), raw_client(redis_url) as client:
        await broker.publish("room", b"x", Retention(size=10, ttl=3600.0))
        assert 3_000_000 < await client.pttl(b"socketeer:room:room") <= 3_600_000
        assert 3_000_000 < await client.pttl(b"socketeer:history:room") <= 3_600_000
        await broker.publish("room", b"y", Retention())
        assert 0 < await client.pttl(b"socketeer:room:room") <= 60_000
        assert not await client.exists(b"socketeer:history:room")


async def test_idle_expiry_none_keeps_rooms(redis_url: str) -> None:
    broker = node(redis_url, idle_expiry=None)
    async with connected(broker), raw_client(redis_url) as client:
        await broker.publish("room", b"x", Retention(size=10, ttl=1.0))
        assert await client.pttl(b"socketeer:room:room") == -1


async def test_forgotten_room_gets_a_new_epoch(redis_url: str) -> None:
    broker = node(redis_url, idle_expiry=20 * MS)
    async with connected(broker), raw_client(redis_url) as client:
        first = await broker.publish("room", b"x", Retention(size=10, ttl=10 * MS))

        async def forgotten() -> None:
            while await client.exists(b"socketeer:room:room"):
                await asyncio.sleep(5 * MS)

        await asyncio.wait_for(forgotten(), STEP)
        second = await broker.publish("room", b"y", Retention(size=10))
        assert second.offset == 1
        assert second.epoch != first.epoch
        history = await broker.history("room", first)
        assert history.position == second
        assert not history.complete


async def test_history_of_a_forgotten_epoch_is_not_mixed(redis_url: str) -> None:
    broker = node(redis_url)
    async with connected(broker), raw_client(redis_url) as client:
        for n in range(3):
            first = await broker.publish("room", b"old %d" % n, Retention(size=10))
        await client.delete(b"socketeer:room:room")  # lost, as by a flush of that key
        second = await broker.publish("room", b"new", Retention(size=10))
        assert second.offset == 1
        assert second.epoch != first.epoch
        history = await broker.history("room", Position(second.epoch, 0))
        assert history.publications == [Publication("room", second.epoch, 1, b"new")]
        assert history.complete


async def test_reading_a_history_starts_the_epoch(redis_url: str) -> None:
    broker = node(redis_url)
    async with connected(broker):
        empty = await broker.history("room", None)
        assert empty.position.offset == 0
        position = await broker.publish("room", b"x", Retention(size=1))
        assert position == Position(empty.position.epoch, 1)
        history = await broker.history("room", empty.position)
        assert history.publications == [Publication("room", position.epoch, 1, b"x")]


async def test_prefixes_keep_applications_apart(redis_url: str) -> None:
    one, two = node(redis_url, prefix="one:"), node(redis_url, prefix="two:")
    async with connected(one, two):
        received: list[Publication] = []
        two.on_publication = received.append
        await two.subscribe("room")
        await one.publish("room", b"one's", Retention(size=1))
        assert (await two.publish("room", b"two's", Retention(size=1))).offset == 1
        await eventually(lambda: len(received) == 1)
        assert received[0].data == b"two's"


async def test_malformed_publications_are_ignored(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = node(redis_url)
    async with connected(broker), raw_client(redis_url) as client:
        received: list[Publication] = []
        broker.on_publication = received.append
        await broker.subscribe("room")
        await client.publish(b"socketeer:room:room", b"no offset here")
        await broker.publish("room", b"fine", Retention())
        await eventually(lambda: len(received) == 1)
        assert received[0].data == b"fine"
    assert "ignored a malformed publication in room room" in caplog.text


async def test_errors_of_redis_become_broker_errors(redis_url: str) -> None:
    broker = node(redis_url)
    async with connected(broker), raw_client(redis_url) as client:
        await client.set(b"socketeer:history:room", b"not a stream")
        await client.hset(b"socketeer:room:room", mapping={b"epoch": b"e", b"offset": b"1"})
        with pytest.raises(BrokerError, match="failed to publish") as raised:
            await broker.publish("room", b"x", Retention(size=1))
        assert not isinstance(raised.value, BrokerUnavailable)
        assert isinstance(raised.value.__cause__, redis.ResponseError)


# Presence of nodes that die


KILLED_NODE = """
import asyncio, sys
from socketeer.pubsub.brokers.redis import RedisBroker

async def main():
    broker = RedisBroker(sys.argv[1], presence_ttl=float(sys.argv[2]), node="doomed")
    await broker.connect()
    await broker.add_presence("room", "ghost", {"from": "doomed"})
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_presence_of_a_killed_node_expires(redis_url: str) -> None:
    ttl = 1_000 * MS
    survivor = node(redis_url, presence_ttl=ttl, node="survivor")
    async with connected(survivor):
        await survivor.add_presence("room", "alice", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", KILLED_NODE, redis_url, str(ttl), stdout=asyncio.subprocess.PIPE
        )
        try:
            assert process.stdout is not None
            assert await asyncio.wait_for(process.stdout.readline(), STEP) == b"ready\n"
            assert sorted(await survivor.presence("room")) == [
                PresenceEntry("alice", "survivor", None),
                PresenceEntry("ghost", "doomed", {"from": "doomed"}),
            ]
        finally:
            process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(process.communicate(), STEP)

        async def ghost_gone() -> None:
            while len(await survivor.presence("room")) > 1:
                await asyncio.sleep(10 * MS)

        await asyncio.wait_for(ghost_gone(), STEP)
        # The survivor's own entry, refreshed, outlived the ghost's, which had the same ttl.
        assert await survivor.presence("room") == [PresenceEntry("alice", "survivor", None)]


async def test_presence_removed_on_close(redis_url: str) -> None:
    one, two = node(redis_url, node="one"), node(redis_url, node="two")
    async with connected(two), raw_client(redis_url) as client:
        async with connected(one):
            await one.add_presence("a", "alice", None)
            await one.add_presence("b", "bob", None)
            await two.add_presence("a", "carol", None)
        assert await two.presence("a") == [PresenceEntry("carol", "two", None)]
        assert await two.presence("b") == []
        assert not await client.exists(b"socketeer:presence:b", b"socketeer:presence-info:b")


# Outages


async def test_connect_to_unreachable_redis(redis_server: RedisServer) -> None:
    redis_server.kill()
    broker = node(redis_server.url)
    with pytest.raises(BrokerUnavailable, match="unreachable") as raised:
        await broker.connect()
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    await broker.close()


async def test_outage_and_recovery(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="socketeer.pubsub")
    url = redis_server.url
    one, two = node(url, node="one"), node(url, node="two")
    async with connected(one, two):
        received: list[Publication] = []
        one.on_publication = received.append
        await one.subscribe("room")
        await one.add_presence("room", "alice", "A")
        await two.publish("room", b"before", Retention(size=10))
        await eventually(lambda: len(received) == 1)

        redis_server.kill()
        for broker in (one, two):
            await until_unavailable(functools.partial(broker.publish, "room", b"x", Retention()))
        # While down: nothing is read, nothing is queued.
        with pytest.raises(BrokerUnavailable):
            await one.history("room", None)
        with pytest.raises(BrokerUnavailable):
            await one.presence("room")
        # ...but subscriptions and presence are recorded, for when Redis is back.
        await one.subscribe("later")
        await one.add_presence("later", "bob", "B")
        await one.add_presence("room", "gone", None)
        await one.remove_presence("room", "gone")
        assert "unreachable" in repr(await until_unavailable(lambda: one.presence("room")))

        redis_server.restart()  # empty: nothing was saved

        # Subscriptions are restored: publications from the other node arrive again.
        async def delivered_again() -> None:
            while not any(publication.data == b"after" for publication in received):
                await until_succeeds(lambda: two.publish("room", b"after", Retention()))
                await asyncio.sleep(5 * MS)

        await asyncio.wait_for(delivered_again(), STEP)
        position = await two.publish("later", b"later", Retention())
        await eventually(lambda: received[-1].room == "later")
        assert received[0] == Publication("room", received[0].epoch, 1, b"before")
        assert received[-1] == Publication("later", position.epoch, 1, b"later")
        assert b"lost" not in [publication.data for publication in received]
        # Presence is written again, without what was removed meanwhile.
        assert await two.presence("room") == [PresenceEntry("alice", "one", "A")]
        assert await two.presence("later") == [PresenceEntry("bob", "one", "B")]

    records = [record for record in caplog.records if record.name == "socketeer.pubsub"]
    warnings = [record for record in records if record.levelno == logging.WARNING]
    infos = [record for record in records if record.levelno == logging.INFO]
    assert len(warnings) == 2  # once per node
    assert all(
        f"redis at 127.0.0.1:{redis_server.port}/0 is unreachable" in record.getMessage()
        for record in warnings
    )
    assert len([record for record in infos if "reachable again" in record.getMessage()]) == 2
    assert not [record for record in records if record.levelno >= logging.ERROR]


async def test_close_while_redis_is_down(redis_server: RedisServer) -> None:
    broker = node(redis_server.url)
    await broker.connect()
    await broker.subscribe("room")
    await broker.add_presence("room", "alice", None)
    redis_server.kill()
    await until_unavailable(lambda: broker.history("room", None))
    await broker.close()  # bounded: no reconnection, no presence to remove


async def test_silent_redis_is_detected(redis_server: RedisServer) -> None:
    assert redis_server.process is not None
    pid = redis_server.process.pid
    broker = node(redis_server.url, presence_ttl=300 * MS, timeout=200 * MS)
    async with connected(broker):
        await broker.subscribe("room")
        os.kill(pid, signal.SIGSTOP)  # connections stay open, nothing is answered
        try:
            await until_unavailable(lambda: broker.presence("room"))
        finally:
            os.kill(pid, signal.SIGCONT)
        received: list[Publication] = []
        broker.on_publication = received.append

        async def delivered() -> None:
            while not received:
                await until_succeeds(lambda: broker.publish("room", b"back", Retention()))
                await asyncio.sleep(5 * MS)

        await asyncio.wait_for(delivered(), STEP)
