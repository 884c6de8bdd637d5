"""Rooms across processes: ``socketeer serve --workers 2 --broker redis://...`` against a
real ``redis-server`` (the ``redis_server`` fixture: skipped without it, failed under
``CI=true``).

The clients find their way to both workers (``SO_REUSEPORT`` spreads the connections; each
application tells its pid), then check that publications, presence and recovery span the
workers, that a dead worker's presence expires, and that an outage of Redis is reported
and then repaired.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable

import pytest
from cli_helpers import (
    ServeProcess,
    connect_until,
    eventually,
    plain_clients,
    recv,
)

from redis_server import RedisServer
from timing import MS

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")

ServeApp = Callable[..., ServeProcess]

PLAIN_APP = """
import os

from socketeer.pubsub import Rooms

rooms = Rooms()  # SOCKETEER_BROKER, which --broker sets


async def handler(ws):
    await rooms.join(ws, "lobby")
    await ws.send(f"pid {os.getpid()}")  # a member now: it gets what is published next
    async for message in ws:
        await rooms.publish("lobby", message)
"""
"""A plain application: every connection joins the lobby and publishes what it sends."""

RPC_APP = """
import os

from socketeer.client import Backoff
from socketeer.pubsub import BROKER_ENV, Rooms
from socketeer.pubsub.brokers.redis import RedisBroker
from socketeer.rpc import RPC, current_peer

# The URL comes from --broker; the presence ttl and the backoff, short for the tests, can
# only be given to RedisBroker as arguments.
broker = RedisBroker(
    os.environ[BROKER_ENV],
    presence_ttl=float(os.environ["TEST_PRESENCE_TTL"]),
    backoff=Backoff(initial=float(os.environ["TEST_BACKOFF"]), maximum=0.2),
    timeout=float(os.environ["TEST_REDIS_TIMEOUT"]),
)
rooms = Rooms(broker)
rpc = RPC(rooms=rooms, client_publish=True)


@rpc.method
def pid() -> int:
    return os.getpid()


@rpc.method
async def enter(room: str) -> None:
    await rooms.join(current_peer(), room, info=os.getpid())


@rpc.method
async def presence(room: str) -> list[int]:
    return sorted(entry.info for entry in await rooms.presence(room))
"""
"""An RPC application: clients join and publish with the rooms' reserved methods, or enter
a room with their worker's pid as presence info."""

RPC_ENV = {
    "TEST_PRESENCE_TTL": str(1_000 * MS),
    "TEST_BACKOFF": str(20 * MS),
    "TEST_REDIS_TIMEOUT": str(2_000 * MS),
}


@pytest.fixture
def plain_workers(redis_url: str, serve_app: ServeApp) -> ServeProcess:
    """:data:`PLAIN_APP` served by two workers, with Redis as the broker."""
    server = serve_app(
        PLAIN_APP, "app:handler", "--port", "0", "--workers", "2", "--broker", redis_url
    )
    server.url()
    return server


@pytest.fixture
def rpc_workers(redis_url: str, serve_app: ServeApp) -> ServeProcess:
    """:data:`RPC_APP` served by two workers, with Redis as the broker."""
    server = serve_app(
        RPC_APP,
        "app:rpc",
        "--port",
        "0",
        "--workers",
        "2",
        "--broker",
        redis_url,
        env=RPC_ENV,
    )
    server.url()
    return server


async def test_publication_reaches_the_other_worker(
    plain_workers: ServeProcess, redis_url: str
) -> None:
    clients = await plain_clients(plain_workers.url(), 2)
    (a, b) = clients.values()
    await a.send("from a")
    assert await recv(b) == "from a"
    assert await recv(a) == "from a"
    await b.send("from b")
    assert await recv(a) == "from b"
    assert await recv(b) == "from b"

    # Stopping closes the rooms: their presence entries go at once, they do not expire.
    plain_workers.send_signal(signal.SIGTERM)
    for ws in (a, b):
        await ws.wait_closed()
        assert ws.close_code == 1001
    assert await plain_workers.exited() == 0
    assert await presence_keys(redis_url) == []


async def presence_keys(url: str) -> list[bytes | str]:
    """The presence keys in Redis."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        return await client.keys("socketeer:presence*")
    finally:
        await client.aclose()


async def test_presence_spans_workers_and_expires_with_a_dead_one(
    rpc_workers: ServeProcess,
) -> None:
    clients = await connect_until(rpc_workers.url(), 2)
    (pid_a, a), (pid_b, b) = clients.items()
    await a.call("enter", room="lobby")
    await b.call("enter", room="lobby")
    assert await a.call("presence", room="lobby") == sorted([pid_a, pid_b])
    assert await b.call("presence", room="lobby") == sorted([pid_a, pid_b])

    os.kill(pid_b, signal.SIGKILL)  # no chance to remove its presence entries

    async def expired() -> bool:
        return bool(await a.call("presence", room="lobby") == [pid_a])

    await eventually(expired)  # within the presence ttl: polled, not timed

    async def restarted() -> bool:
        return f"(pid {pid_b}) was killed by SIGKILL; restarting it" in rpc_workers.stderr

    await eventually(restarted)
    for client in clients.values():
        await client.close()


async def test_redis_outage(rpc_workers: ServeProcess, redis_server: RedisServer) -> None:
    clients = await connect_until(rpc_workers.url(), 2)
    (a, b) = clients.values()
    for client in (a, b):
        await client.call("$/room/join", room="lobby")
    await a.call("$/room/publish", room="lobby", data="before")
    assert (await b.message())["data"] == "before"
    assert (await a.message())["data"] == "before"

    await asyncio.to_thread(redis_server.kill)
    answer = await a.request("$/room/publish", room="lobby", data="lost")
    assert answer["error"]["data"]["type"] == "BrokerUnavailable", answer

    await asyncio.to_thread(redis_server.restart)

    async def published(client: object, data: str) -> bool:
        """Whether publishing through ``client`` worked (its worker reached Redis)."""
        assert isinstance(client, type(a))
        answer = await client.request("$/room/publish", room="lobby", data=data)
        if "error" in answer:
            assert answer["error"]["data"]["type"] == "BrokerUnavailable", answer
            return False
        return True

    async def reaches_b() -> bool:
        # Until b's worker subscribed again, what a publishes does not reach it (at most once).
        if not await published(a, "after"):
            return False
        try:
            message = await b.message(timeout=100 * MS)
        except TimeoutError:
            return False
        return bool(message["data"] == "after")

    await eventually(reaches_b)

    async def back() -> bool:
        return await published(b, "back")

    await eventually(back)
    while (await a.message())["data"] != "back":  # skip the "after" publications
        pass
    for client in clients.values():
        await client.close()


async def test_recovery_on_another_worker(rpc_workers: ServeProcess) -> None:
    url = rpc_workers.url()
    clients = await connect_until(url, 2)
    (pid_publisher, publisher), (pid_member, member) = clients.items()
    await member.call("$/room/join", room="news")
    await publisher.call("$/room/publish", room="news", data="seen")
    seen = await member.message()
    assert seen["data"] == "seen"
    epoch, offset = seen["epoch"], seen["offset"]

    await member.close()  # disconnected: misses what follows
    for data in ("one", "two", "three"):
        await publisher.call("$/room/publish", room="news", data=data)

    # Back, on the worker that did not publish, with the position seen last.
    (member,) = (await connect_until(url, {pid_member})).values()
    since = {"epoch": epoch, "offset": offset}
    answer = await member.call("$/room/join", room="news", since=since)
    assert answer == {"epoch": epoch, "offset": offset + 3, "recovered": True}
    await publisher.call("$/room/publish", room="news", data="live")
    received = [await member.message() for _ in range(4)]
    assert [(m["epoch"], m["offset"], m["data"]) for m in received] == [
        (epoch, offset + 1, "one"),
        (epoch, offset + 2, "two"),
        (epoch, offset + 3, "three"),
        (epoch, offset + 4, "live"),
    ]
    assert member.messages.empty()
    for client in (publisher, member):
        await client.close()
