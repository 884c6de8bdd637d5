"""Rooms over RPC: the reserved methods ``$/room/join``, ``$/room/leave``,
``$/room/publish`` and the ``$/room/message`` notifications of ``docs/pubsub.md``, spoken by
raw JSON clients (byte for byte) and by the Python RPC client."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import socketeer
from socketeer.asyncio.server import ServerConnection
from socketeer.exceptions import BrokerUnavailable, RemoteError
from socketeer.pubsub import (
    MESSAGE_METHOD,
    History,
    MemoryBroker,
    Position,
    Retention,
    Rooms,
)
from socketeer.pubsub import rooms as rooms_module
from socketeer.rpc import RPC, SUBPROTOCOL, Method, Peer, Router, current_peer, serialize
from timing import MS

STEP = 5_000 * MS
"""Longest a single step may take; steps take milliseconds. Only catches hangs."""


@contextlib.asynccontextmanager
async def serving(handler: Any, **options: Any) -> AsyncIterator[str]:
    async with socketeer.serve(handler, "127.0.0.1", 0, **options) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


def raw(url: str, **options: Any) -> socketeer.connect:
    """A plain WebSocket client that offers the RPC subprotocol: it sends any JSON."""
    return socketeer.connect(url, subprotocols=[SUBPROTOCOL], **options)


async def send_json(ws: socketeer.ClientConnection, value: Any) -> None:
    await ws.send(json.dumps(value))


async def recv_text(ws: socketeer.ClientConnection) -> str:
    text = await asyncio.wait_for(ws.recv(), STEP)
    assert isinstance(text, str)
    return text


async def recv_json(ws: socketeer.ClientConnection) -> Any:
    return json.loads(await recv_text(ws))


async def call(ws: socketeer.ClientConnection, method: str, params: Any, id: int = 1) -> Any:
    """Send a request (without params if ``None``); return its answer (the next message)."""
    message = {"jsonrpc": "2.0", "method": method, "params": params, "id": id}
    if params is None:
        del message["params"]
    await send_json(ws, message)
    return await recv_json(ws)


async def eventually(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        turns = 0
        while not predicate():
            turns += 1
            await asyncio.sleep(MS if turns % 16 == 0 else 0)

    await asyncio.wait_for(poll(), STEP)


def message_text(room: str, epoch: str, offset: int, data: str, binary: bool = False) -> str:
    """A ``$/room/message`` notification, as the server writes it; ``data`` is JSON text."""
    encoding = ',"encoding":"base64"' if binary else ""
    return (
        '{"jsonrpc":"2.0","method":"$/room/message","params":{'
        f'"room":"{room}","epoch":"{epoch}","offset":{offset},"data":{data}{encoding}'
        "}}"
    )


class DownBroker(MemoryBroker):
    async def publish(self, room: str, data: bytes, retention: Retention) -> Position:
        raise BrokerUnavailable("broker down")

    async def history(self, room: str, since: Position | None) -> History:
        raise BrokerUnavailable("broker down")


class TestJoin:
    async def test_messages(self) -> None:
        async with Rooms() as rooms, serving(RPC(rooms=rooms)) as url, raw(url) as ws:
            answer = await call(ws, "$/room/join", {"room": "lobby"})
            epoch = answer["result"]["epoch"]
            assert answer == {
                "jsonrpc": "2.0",
                "result": {"epoch": epoch, "offset": 0, "recovered": True},
                "id": 1,
            }
            await rooms.publish("lobby", "café")
            await rooms.publish("lobby", b"\x00\xff")
            await rooms.publish("lobby", {"a": [1, None]})
            await rooms.publish("lobby", "")
            assert await recv_text(ws) == message_text("lobby", epoch, 1, '"café"')
            assert await recv_text(ws) == message_text("lobby", epoch, 2, '"AP8="', binary=True)
            assert await recv_text(ws) == message_text("lobby", epoch, 3, '{"a":[1,null]}')
            assert await recv_text(ws) == message_text("lobby", epoch, 4, '""')

    async def test_python_client(self) -> None:
        async with (
            Rooms() as rooms,
            serving(RPC(rooms=rooms)) as url,
            socketeer.rpc.connect(url) as peer,
        ):
            received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
            # The Python client has no public listener for reserved notifications yet.
            peer._listen(MESSAGE_METHOD, lambda **params: received.put_nowait(params))
            result = await peer.call("$/room/join", room="lobby")
            assert result == {"epoch": result["epoch"], "offset": 0, "recovered": True}
            position = await rooms.publish("lobby", [1, "two"])
            params = await asyncio.wait_for(received.get(), STEP)
            assert params == {
                "room": "lobby",
                "epoch": position.epoch,
                "offset": 1,
                "data": [1, "two"],
            }
            assert await peer.call("$/room/leave", room="lobby") is None

    async def test_joined_by_the_application(self) -> None:
        rooms = Rooms()
        rpc = RPC(rooms=rooms)

        @rpc.method
        async def enter(room: str) -> int:
            result = await rooms.join(current_peer(), room, info="from a method")
            return result.position.offset

        async with rooms, serving(rpc) as url, raw(url) as ws:
            await rooms.publish("lobby", "before")
            assert (await call(ws, "enter", ["lobby"]))["result"] == 1
            position = await rooms.publish("lobby", "after")
            assert await recv_text(ws) == message_text("lobby", position.epoch, 2, '"after"')
            (entry,) = await rooms.presence("lobby")
            assert entry.info == "from a method"

    async def test_recovery_before_the_answer(self) -> None:
        async with Rooms() as rooms, serving(RPC(rooms=rooms)) as url, raw(url) as ws:
            await rooms.publish("news", "0")
            answer = await call(ws, "$/room/join", {"room": "news"})
            epoch, offset = answer["result"]["epoch"], answer["result"]["offset"]
            assert offset == 1
            assert (await call(ws, "$/room/leave", {"room": "news"}, id=2))["result"] is None
            for text in ("a", "b", "c"):
                await rooms.publish("news", text)
            since = {"epoch": epoch, "offset": offset}
            await send_json(
                ws,
                {
                    "jsonrpc": "2.0",
                    "method": "$/room/join",
                    "params": {"room": "news", "since": since},
                    "id": 3,
                },
            )
            # The missed publications, in order, then the answer.
            assert await recv_text(ws) == message_text("news", epoch, 2, '"a"')
            assert await recv_text(ws) == message_text("news", epoch, 3, '"b"')
            assert await recv_text(ws) == message_text("news", epoch, 4, '"c"')
            assert await recv_json(ws) == {
                "jsonrpc": "2.0",
                "result": {"epoch": epoch, "offset": 4, "recovered": True},
                "id": 3,
            }
            await rooms.publish("news", "d")
            assert await recv_text(ws) == message_text("news", epoch, 5, '"d"')

    async def test_recovery_incomplete(self) -> None:
        rooms = Rooms(retention=Retention(size=1))
        async with rooms, serving(RPC(rooms=rooms)) as url, raw(url) as ws:
            for text in ("a", "b", "c"):
                position = await rooms.publish("news", text)
            since = {"epoch": position.epoch, "offset": 1}
            answer = await call(ws, "$/room/join", {"room": "news", "since": since})
            assert answer["result"] == {"epoch": position.epoch, "offset": 3, "recovered": False}
            await rooms.publish("news", "d")
            assert await recv_text(ws) == message_text("news", position.epoch, 4, '"d"')

    async def test_join_null_since(self) -> None:
        async with Rooms() as rooms, serving(RPC(rooms=rooms)) as url, raw(url) as ws:
            answer = await call(ws, "$/room/join", {"room": "lobby", "since": None})
            assert answer["result"]["recovered"] is True

    async def test_leaves_on_close(self) -> None:
        async with Rooms() as rooms, serving(RPC(rooms=rooms)) as url:
            async with raw(url) as ws:
                await call(ws, "$/room/join", {"room": "a"})
                await call(ws, "$/room/join", {"room": "b"}, id=2)
                (member,) = rooms.members("a")
                assert isinstance(member, Peer)
                assert rooms.rooms_of(member) == ["a", "b"]
            await member.connection.wait_closed()
            assert rooms.members("a") == rooms.members("b") == []
            await eventually(lambda: rooms.stats.rooms == 0)


class TestLeave:
    async def test_leave(self) -> None:
        async with Rooms() as rooms, serving(RPC(rooms=rooms)) as url, raw(url) as ws:
            await call(ws, "$/room/join", {"room": "lobby"})
            await call(ws, "$/room/join", {"room": "kitchen"}, id=2)
            answer = await call(ws, "$/room/leave", {"room": "lobby"}, id=3)
            assert answer == {"jsonrpc": "2.0", "result": None, "id": 3}
            answer = await call(ws, "$/room/leave", {"room": "attic"}, id=4)  # not in it
            assert answer["result"] is None
            await rooms.publish("lobby", "to the lobby")
            position = await rooms.publish("kitchen", "to the kitchen")
            assert await recv_text(ws) == message_text(
                "kitchen", position.epoch, 1, '"to the kitchen"'
            )


class TestPublish:
    async def test_not_allowed(self) -> None:
        async with Rooms() as rooms, serving(RPC(rooms=rooms)) as url, raw(url) as ws:
            answer = await call(ws, "$/room/publish", {"room": "lobby", "data": "hi"})
            assert answer["error"]["code"] == -32601
            assert answer["error"]["data"] == "$/room/publish"
            assert rooms.stats.published == 0

    async def test_allowed(self) -> None:
        rooms = Rooms()
        rpc = RPC(rooms=rooms, client_publish=True)
        async with rooms, serving(rpc) as url, raw(url) as publisher, raw(url) as reader:
            await call(reader, "$/room/join", {"room": "lobby"})
            answer = await call(publisher, "$/room/publish", {"room": "lobby", "data": {"x": 1}})
            epoch = answer["result"]["epoch"]
            assert answer == {"jsonrpc": "2.0", "result": {"epoch": epoch, "offset": 1}, "id": 1}
            assert await recv_text(reader) == message_text("lobby", epoch, 1, '{"x":1}')
            answer = await call(publisher, "$/room/publish", {"room": "lobby", "data": "text"})
            assert await recv_text(reader) == message_text("lobby", epoch, 2, '"text"')

    async def test_to_plain_connections_too(self) -> None:
        rooms = Rooms()
        rpc = RPC(rooms=rooms, client_publish=True)
        joined = asyncio.Event()

        async def plain(connection: ServerConnection) -> None:
            await rooms.join(connection, "lobby")
            joined.set()
            await connection.wait_closed()

        router = Router({"/rpc": rpc, "/plain": plain})
        async with rooms, serving(router) as url:
            async with raw(url + "rpc") as ws, socketeer.connect(url + "plain") as client:
                await asyncio.wait_for(joined.wait(), STEP)
                await call(ws, "$/room/join", {"room": "lobby"})
                for id, data in enumerate(["text", [1, 2]]):
                    params = {"room": "lobby", "data": data}
                    await send_json(
                        ws,
                        {"jsonrpc": "2.0", "method": "$/room/publish", "params": params, "id": id},
                    )
                # The publisher is a member too: its notifications may come before the answers.
                messages = [await recv_json(ws) for _ in range(4)]
                notifications = [m["params"]["data"] for m in messages if "method" in m]
                assert notifications == ["text", [1, 2]]
                assert sorted(m["result"]["offset"] for m in messages if "id" in m) == [1, 2]
                assert await asyncio.wait_for(client.recv(), STEP) == "text"
                assert await asyncio.wait_for(client.recv(), STEP) == "[1,2]"

    async def test_broker_unavailable(self) -> None:
        rooms = Rooms(DownBroker())
        rpc = RPC(rooms=rooms, client_publish=True)
        async with rooms, serving(rpc) as url, raw(url) as ws:
            for method, params in [
                ("$/room/publish", {"room": "lobby", "data": 1}),
                ("$/room/join", {"room": "lobby"}),
            ]:
                answer = await call(ws, method, params)
                assert answer["error"]["code"] == -32000
                assert answer["error"]["data"]["type"] == "BrokerUnavailable"
                assert answer["error"]["message"] == "broker down"
            assert rooms.members("lobby") == []


class TestInvalid:
    @pytest.mark.parametrize(
        ("method", "params", "detail"),
        [
            ("$/room/join", None, "params must be an object with members room, since"),
            ("$/room/join", ["lobby"], "params must be an object"),
            ("$/room/join", {}, "missing argument 'room'"),
            ("$/room/join", {"room": ""}, "room must be a string of 1 to 200 characters"),
            ("$/room/join", {"room": "x" * 201}, "a string of 201 characters"),
            ("$/room/join", {"room": 5}, "room must be a string of 1 to 200 characters"),
            ("$/room/join", {"room": None}, "got NoneType"),
            ("$/room/join", {"room": "a", "extra": 1}, "unexpected argument 'extra'"),
            ("$/room/join", {"room": "a", "since": 1}, "since must be"),
            ("$/room/join", {"room": "a", "since": {"epoch": "e"}}, "since must be"),
            ("$/room/join", {"room": "a", "since": {"epoch": 1, "offset": 1}}, "since must be"),
            (
                "$/room/join",
                {"room": "a", "since": {"epoch": "e", "offset": -1}},
                "since must be",
            ),
            (
                "$/room/join",
                {"room": "a", "since": {"epoch": "e", "offset": True}},
                "since must be",
            ),
            (
                "$/room/join",
                {"room": "a", "since": {"epoch": "e", "offset": 1.5}},
                "since must be",
            ),
            (
                "$/room/join",
                {"room": "a", "since": {"epoch": "e", "offset": 1, "x": 2}},
                "since must be",
            ),
            ("$/room/leave", {"room": ""}, "room must be"),
            ("$/room/leave", {"room": "a", "since": None}, "unexpected argument 'since'"),
            ("$/room/publish", {"room": "a"}, "missing argument 'data'"),
            ("$/room/publish", {"data": 1}, "missing argument 'room'"),
            ("$/room/publish", {"room": [], "data": 1}, "room must be"),
        ],
    )
    async def test_invalid_params(self, method: str, params: Any, detail: str) -> None:
        rooms = Rooms()
        rpc = RPC(rooms=rooms, client_publish=True)
        async with rooms, serving(rpc) as url, raw(url) as ws:
            message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 7}
            if params is not None:
                message["params"] = params
            await send_json(ws, message)
            answer = await recv_json(ws)
            assert answer["id"] == 7
            assert answer["error"]["code"] == -32602
            assert answer["error"]["message"] == "Invalid params"
            assert detail in answer["error"]["data"]
            assert rooms.stats == (0, 0, 0, 0, 0, 0, 0)

    @pytest.mark.parametrize(
        "method", ["$/room/message", "$/room/other", "$/room/", "$/rooms/join", "$/other"]
    )
    async def test_other_reserved_names_not_found(self, method: str) -> None:
        async with Rooms() as rooms, serving(RPC(rooms=rooms)) as url, raw(url) as ws:
            answer = await call(ws, method, {"room": "lobby"})
            assert answer["error"]["code"] == -32601

    async def test_without_rooms_not_found(self) -> None:
        async with serving(RPC()) as url, raw(url) as ws:
            answer = await call(ws, "$/room/join", {"room": "lobby"})
            assert answer["error"]["code"] == -32601

    async def test_notification_ignored(self) -> None:
        async with Rooms() as rooms, serving(RPC(rooms=rooms)) as url, raw(url) as ws:
            await send_json(
                ws, {"jsonrpc": "2.0", "method": "$/room/join", "params": {"room": "lobby"}}
            )
            assert (await call(ws, "$/ping", None))["result"] == "pong"
            assert rooms.members("lobby") == []

    async def test_not_discovered(self) -> None:
        rooms = Rooms()
        rpc = RPC(rooms=rooms, client_publish=True)

        @rpc.method
        def add(a: int, b: int) -> int:
            return a + b

        async with rooms, serving(rpc) as url, raw(url) as ws:
            answer = await call(ws, "rpc.discover", None)
            assert [method["name"] for method in answer["result"]] == ["add"]

    async def test_plain_and_peer_of_one_connection(self) -> None:
        rooms = Rooms()
        rpc = RPC(rooms=rooms)

        @rpc.method
        async def both() -> None:
            await rooms.join(current_peer(), "a")
            await rooms.join(current_peer().connection, "b")

        async with rooms, serving(rpc) as url, socketeer.rpc.connect(url) as peer:
            with pytest.raises(RemoteError) as raised:
                await peer.call("both")
            assert raised.value.type_name == "ValueError"
            assert "as an RPC peer already" in str(raised.value)


class TestOptions:
    def test_client_publish_needs_rooms(self) -> None:
        with pytest.raises(ValueError, match="client_publish needs rooms"):
            RPC(client_publish=True)

    def test_peer_options_unchanged(self) -> None:
        rpc = RPC(rooms=Rooms(), max_concurrency=3, debug=True)
        assert rpc.options.max_concurrency == 3
        assert rpc.options.debug is True

    async def test_reserved_names_checked(self) -> None:
        async def handler(connection: ServerConnection) -> None:
            await connection.wait_closed()

        def method(name: str) -> Method:
            return Method(name, handler, inspect.signature(handler))

        async with serving(handler) as url, socketeer.connect(url) as ws:
            for reserved in [
                {"add": method("add")},
                {"$/ping": method("$/ping")},
                {"rpc.discover": method("rpc.discover")},
                {"$/room/join": method("$/room/leave")},
            ]:
                with pytest.raises(ValueError):
                    Peer(ws, reserved=reserved)
            Peer(ws, reserved={"$/room/join": method("$/room/join")})


class TestFanOut:
    async def test_notification_encoded_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        serialized: list[object] = []

        def counting(message: Any) -> str:
            serialized.append(message)
            return serialize(message)

        monkeypatch.setattr(rooms_module, "serialize", counting)
        async with Rooms() as rooms, serving(RPC(rooms=rooms), compression=None) as url:
            async with contextlib.AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(raw(url)) for _ in range(10)]
                for ws in clients:
                    await call(ws, "$/room/join", {"room": "lobby"})
                position = await rooms.publish("lobby", b"\x01" * 100)
                expected = message_text(
                    "lobby", position.epoch, 1, '"' + "AQEB" * 33 + 'AQ=="', binary=True
                )
                for ws in clients:
                    assert await recv_text(ws) == expected
                assert len(serialized) == 1
                assert rooms.stats.delivered == 10
