"""The demo server: its pages, its counter over WebSocket, and its command line."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import socketeer
import socketeer.rpc
from raw_http import http_get
from socketeer.__main__ import main as socketeer_main
from socketeer.demo import MAX_SIZE, demo_server, run
from socketeer.demo.counter import parse_action
from socketeer.demo.rooms import (
    ANONYMOUS,
    BURST_PERIOD,
    CHAT_ROOM,
    HISTORY,
    MAX_BURST,
    MAX_NAME,
    MAX_TEXT,
    PEOPLE,
    Chat,
    RateLimit,
    chat_rooms,
    clean_text,
    rooms_app,
)
from socketeer.typedefs import Origin

TIMEOUT = 5.0
"""Seconds any single step may take; steps take milliseconds."""


@asynccontextmanager
async def running_demo() -> AsyncIterator[int]:
    """Run the demo server on a free loopback port; yield the port."""
    async with demo_server("127.0.0.1", 0) as server:
        yield server.sockets[0].getsockname()[1]


async def recv_json(ws: socketeer.ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def value(n: int) -> dict[str, Any]:
    return {"type": "value", "value": n}


def users(n: int) -> dict[str, Any]:
    return {"type": "users", "count": n}


# The counter over WebSocket


def test_clients_see_each_others_updates() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            uri = f"ws://127.0.0.1:{port}/ws/counter"
            async with socketeer.connect(uri) as alice:
                assert await recv_json(alice) == value(0)
                assert await recv_json(alice) == users(1)
                async with socketeer.connect(uri) as bob:
                    assert await recv_json(bob) == value(0)
                    assert await recv_json(bob) == users(2)
                    assert await recv_json(alice) == users(2)

                    await alice.send('{"action": "plus"}')
                    assert await recv_json(alice) == value(1)
                    assert await recv_json(bob) == value(1)

                    await bob.send('{"action": "minus"}')
                    await bob.send('{"action": "minus"}')
                    for ws in (alice, bob):
                        assert await recv_json(ws) == value(0)
                        assert await recv_json(ws) == value(-1)
                assert await recv_json(alice) == users(1)

    asyncio.run(scenario())


INVALID_MESSAGES: dict[str, str | bytes] = {
    "not-json": "not json",
    "unknown-action": '{"action": "jump"}',
    "unhashable-action": '{"action": ["plus"]}',
    "no-action": '{"value": 5}',
    "not-an-object": '["plus"]',
    "binary": b'{"action": "plus"}',
}


@pytest.mark.parametrize(
    "message",
    [*INVALID_MESSAGES.values(), "[" * 10_000 + "]" * 10_000],
    ids=[*INVALID_MESSAGES, "deeply-nested"],
)
def test_invalid_message_is_parsed_as_none(message: str | bytes) -> None:
    assert parse_action(message) is None


@pytest.mark.parametrize("message, change", [('{"action":"plus"}', 1), ('{"action":"minus"}', -1)])
def test_valid_message_is_parsed(message: str, change: int) -> None:
    assert parse_action(message) == change


def test_invalid_messages_are_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="socketeer.demo")

    async def scenario() -> None:
        async with running_demo() as port:
            async with socketeer.connect(f"ws://127.0.0.1:{port}/ws/counter") as ws:
                assert await recv_json(ws) == value(0)
                assert await recv_json(ws) == users(1)
                for message in INVALID_MESSAGES.values():
                    await ws.send(message)
                await ws.send('{"action": "plus"}')
                # The connection survived, and the first value it gets is the valid one's.
                assert await recv_json(ws) == value(1)

    asyncio.run(scenario())
    ignored = [r for r in caplog.records if r.name == "socketeer.demo"]
    assert len(ignored) == len(INVALID_MESSAGES)
    assert all(r.levelno == logging.DEBUG for r in ignored)
    assert "ignored invalid message: 'not json'" in caplog.text


def test_message_over_size_limit_closes_with_1009() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            async with socketeer.connect(f"ws://127.0.0.1:{port}/ws/counter") as ws:
                await ws.send("x" * (MAX_SIZE + 1))
                with pytest.raises(socketeer.ConnectionClosedError):
                    while True:
                        await asyncio.wait_for(ws.recv(), TIMEOUT)
                assert ws.close_code == socketeer.CloseCode.MESSAGE_TOO_BIG

    asyncio.run(scenario())


def test_cross_origin_websocket_is_refused() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            uri = f"ws://127.0.0.1:{port}/ws/counter"
            with pytest.raises(socketeer.InvalidStatus) as raised:
                await socketeer.connect(uri, origin=Origin("http://evil.test"))
            assert raised.value.response.status_code == 403
            same_origin = Origin(f"http://127.0.0.1:{port}")
            async with socketeer.connect(uri, origin=same_origin) as ws:
                assert await recv_json(ws) == value(0)

    asyncio.run(scenario())


# The RPC demos


def test_rpc_counter_counts_per_tab_and_pushes_the_total() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            uri = f"ws://127.0.0.1:{port}/rpc"
            alice_totals: asyncio.Queue[list[int]] = asyncio.Queue()
            bob_totals: asyncio.Queue[list[int]] = asyncio.Queue()

            async def total(totals: asyncio.Queue[list[int]]) -> list[int]:
                return await asyncio.wait_for(totals.get(), TIMEOUT)

            async with socketeer.rpc.connect(uri) as alice:
                alice.on("total", lambda *params: alice_totals.put_nowait([*params]))
                assert await alice.call("counter.join") == 0
                assert await total(alice_totals) == [0, 1]  # the total, the number of tabs
                async with socketeer.rpc.connect(uri) as bob:
                    bob.on("total", lambda *params: bob_totals.put_nowait([*params]))
                    assert await bob.proxy.counter.join() == 0
                    assert await total(alice_totals) == [0, 2]
                    assert await total(bob_totals) == [0, 2]

                    assert await alice.proxy.counter.increment() == 1
                    assert await alice.proxy.counter.increment() == 2
                    assert await bob.proxy.counter.decrement() == -1  # a counter of its own
                    for totals in (alice_totals, bob_totals):
                        assert [await total(totals) for _ in range(3)] == [
                            [1, 2],
                            [2, 2],
                            [1, 2],
                        ]
                # Bob's tab closed: its count leaves the total.
                assert await total(alice_totals) == [2, 1]

    asyncio.run(scenario())


def test_server_calls_the_page_back() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            async with socketeer.rpc.connect(f"ws://127.0.0.1:{port}/rpc") as page:
                flashed: list[str] = []
                page.register("ui.ask", lambda question: f"Ann, asked {question!r}")
                page.register("ui.flash", flashed.append)
                name = await page.call("greet")
                assert name == 'Ann, asked "What\'s your name?"'
                assert flashed == [f"Hello, {name}! (said the server)"]

    asyncio.run(scenario())


def test_rpc_endpoint_refuses_clients_without_the_subprotocol() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            with pytest.raises(socketeer.InvalidStatus) as raised:
                await socketeer.connect(f"ws://127.0.0.1:{port}/rpc")
            assert raised.value.response.status_code == 400
            origin = Origin("http://evil.test")
            with pytest.raises(socketeer.InvalidStatus) as raised:
                await socketeer.rpc.connect(f"ws://127.0.0.1:{port}/rpc", origin=origin)
            assert raised.value.response.status_code == 403

    asyncio.run(scenario())


# Plain HTTP


def test_page_is_served_at_root() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            status, headers, body = await http_get(port, "/")
            assert status == 200
            assert headers["content-type"] == "text/html; charset=utf-8"
            assert int(headers["content-length"]) == len(body)
            assert b"<title>socketeer \xc2\xb7 counter</title>" in body
            assert b'src="counter.js"' in body

            status, headers, body = await http_get(port, "/counter.js")
            assert status == 200
            assert headers["content-type"] == "text/javascript; charset=utf-8"
            assert b'"/ws/counter"' in body

            status, _, _ = await http_get(port, "/?from=bookmark")
            assert status == 200

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "path, content_type, snippet",
    [
        ("/", "text/html", b'href="/rpc-counter"'),
        ("/", "text/html", b'href="/server-calls"'),
        ("/rpc-counter", "text/html", b'import { RPC } from "/socketeer.js"'),
        ("/server-calls", "text/html", b'rpc.register("ui.ask"'),
        ("/demo.css", "text/css", b"--accent"),
        ("/socketeer.js", "text/javascript", b"export class RPC "),
        ("/", "text/html", b'href="/rooms"'),
        ("/rooms", "text/html", b'src="rooms.js"'),
        ("/rooms.js", "text/javascript", b"rpc.subscribe(\n  ROOM,"),
    ],
)
def test_rpc_pages_are_served(path: str, content_type: str, snippet: bytes) -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            status, headers, body = await http_get(port, path)
            assert status == 200
            assert headers["content-type"] == f"{content_type}; charset=utf-8"
            assert snippet in body

    asyncio.run(scenario())


def test_healthz_returns_ok() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            status, headers, body = await http_get(port, "/healthz")
            assert (status, body) == (200, b"ok\n")
            assert headers["content-type"] == "text/plain; charset=utf-8"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/nowhere", 404),
        ("GET", "/static/counter.html", 404),
        ("POST", "/", 405),
        ("GET", "/ws/counter", 426),  # a WebSocket endpoint, asked without upgrading
    ],
)
def test_other_requests_are_refused(method: str, path: str, status: int) -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            assert (await http_get(port, path, method=method))[0] == status

    asyncio.run(scenario())


# The command line


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_ctrl_c_closes_connections_and_exits_cleanly() -> None:
    async def scenario() -> None:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "socketeer", "demo", "--port", "0"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            banner = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
            assert banner.startswith("socketeer demo: http://127.0.0.1:")
            url = banner.removeprefix("socketeer demo: ").strip()
            assert url.endswith("/") and not url.endswith(":0/")
            async with socketeer.connect(url.replace("http:", "ws:") + "ws/counter") as ws:
                assert await recv_json(ws) == value(0)
                process.send_signal(signal.SIGINT)
                with pytest.raises(socketeer.ConnectionClosedOK) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), TIMEOUT)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == socketeer.CloseCode.GOING_AWAY
            stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
        finally:
            if process.returncode is None:
                process.kill()
                await process.communicate()
        assert process.returncode == 0
        assert (stdout, stderr) == (b"", b"")

    asyncio.run(scenario())


def test_port_in_use_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert run(["--host", "127.0.0.1", "--port", str(port)]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith("socketeer demo: ")
    assert stderr.count("\n") == 1


@pytest.mark.parametrize("argv", [[], ["demo", "--port", "65536"], ["demo", "--port", "x"]])
def test_bad_command_line_exits_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        socketeer_main(argv)
    assert raised.value.code == 2
    assert "usage: python -m socketeer" in capsys.readouterr().err


# The rooms demo


def test_chat_cleans_checks_and_publishes_messages() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            uri = f"ws://127.0.0.1:{port}/rpc/rooms"
            async with socketeer.rpc.connect(uri) as page:
                joined = await page.call("$/room/join", room=CHAT_ROOM)
                epoch = joined["epoch"]
                assert await page.call("chat.recent") == []

                said = await page.call("chat.say", " Ann\u202e\x00 ", "  hi\n\tthere\x07 ")
                assert said == {"epoch": epoch, "offset": 1}
                assert await page.call("chat.say", "", "é" * MAX_TEXT) == {
                    "epoch": epoch,
                    "offset": 2,
                }
                recent = await page.call("chat.recent")
                assert [(m["epoch"], m["offset"]) for m in recent] == [(epoch, 1), (epoch, 2)]
                assert [m["data"]["name"] for m in recent] == ["Ann", ANONYMOUS]
                assert [m["data"]["text"] for m in recent] == ["hi there", "é" * MAX_TEXT]
                assert all(isinstance(m["data"]["time"], int) for m in recent)

                refused: dict[str, tuple[list[object], str]] = {
                    "too-long": (["Ann", "x" * (MAX_TEXT + 1)], "ValueError"),
                    "empty": (["Ann", " \x00\u202e\n "], "ValueError"),
                    "not-a-string": (["Ann", 42], "TypeError"),
                    "name-too-long": (["x" * (MAX_NAME + 1), "hi"], "ValueError"),
                    "name-not-a-string": ([None, "hi"], "TypeError"),
                }
                for args, type_name in refused.values():
                    with pytest.raises(socketeer.RemoteError) as raised:
                        await page.call("chat.say", *args)
                    assert raised.value.type_name == type_name
                assert str(raised.value) == "TypeError: name must be a string, got NoneType"
                assert len(await page.call("chat.recent")) == 2  # refused: not published

            # Clients may join rooms, but not publish to them.
            async with socketeer.rpc.connect(uri) as page:
                with pytest.raises(socketeer.RemoteError) as raised:
                    await page.call("$/room/publish", room=CHAT_ROOM, data="hi")
                assert raised.value.code == -32601

            # A browser may send lone surrogates (JSON escapes): they are removed too.
            subprotocols = [socketeer.rpc.SUBPROTOCOL]
            async with socketeer.connect(uri, subprotocols=subprotocols) as ws:
                params = '["\\ud800Ann", "\\udfffhi \\ud83d"]'
                await ws.send(f'{{"jsonrpc":"2.0","id":1,"method":"chat.say","params":{params}}}')
                answer = await recv_json(ws)
                assert answer["result"] == {"epoch": epoch, "offset": 3}
                await ws.send('{"jsonrpc":"2.0","id":2,"method":"chat.recent"}')
                data = (await recv_json(ws))["result"][-1]["data"]
                assert (data["name"], data["text"]) == ("Ann", "hi")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "text, cleaned",
    [
        ("hello", "hello"),
        ("  two\n\nlines\r\n", "two lines"),
        ("tab\there\u00a0and\u2028there", "tab here and there"),
        ("bell\x07 del\x7f c1\x85 nul\x00", "bell del c1 nul"),
        ("\u202eevil\u202c \u2067isolate\u2069", "evil isolate"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("emoji 👩\u200d💻 and 𝄞", "emoji 👩\u200d💻 and 𝄞"),  # a joiner is no control
        (" \x00 ", ""),
    ],
)
def test_chat_text_is_cleaned(text: str, cleaned: str) -> None:
    assert clean_text(text, limit=100) == cleaned


def test_chat_text_limit_counts_characters_once_cleaned() -> None:
    assert clean_text("𝄞" * 5 + "\x00" * 10, limit=5) == "𝄞" * 5
    with pytest.raises(ValueError, match="^name of 6 characters exceeds limit of 5 characters$"):
        clean_text("𝄞" * 6, limit=5, what="name")
    with pytest.raises(TypeError, match="^message must be a string, got bytes$"):
        clean_text(b"hi", limit=5)


def test_rate_limit_is_a_sliding_window() -> None:
    now = 100.0
    rate = RateLimit(2, 10.0, clock=lambda: now)
    rate.check()
    now += 5
    rate.check()
    with pytest.raises(ValueError, match="^more than 2 messages in 10 seconds$"):
        rate.check()
    now += 5  # the first one left the window
    rate.check()
    with pytest.raises(ValueError):
        rate.check()  # the second one is still in it


def test_chat_limits_each_tab_s_rate_of_valid_messages() -> None:
    async def scenario() -> None:
        now = 0.0
        async with (
            chat_rooms() as rooms,
            socketeer.serve(rooms_app(rooms, clock=lambda: now), "127.0.0.1", 0) as server,
        ):
            uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
            async with socketeer.rpc.connect(uri) as page, socketeer.rpc.connect(uri) as other:
                for n in range(MAX_BURST):
                    with pytest.raises(socketeer.RemoteError):
                        await page.call("chat.say", "Ann", "")  # refused ones don't count
                    await page.call("chat.say", "Ann", f"message {n}")
                with pytest.raises(socketeer.RemoteError) as raised:
                    await page.call("chat.say", "Ann", "once too often")
                assert str(raised.value) == "ValueError: more than 5 messages in 10 seconds"
                await other.call("chat.say", "Bob", "a tab of my own")  # its own limit
                now += BURST_PERIOD
                await page.call("chat.say", "Ann", "later")
                texts = [m["data"]["text"] for m in await page.call("chat.recent")]
                assert texts[-2:] == ["a tab of my own", "later"]
                assert len(texts) == MAX_BURST + 2

    asyncio.run(scenario())


def test_chat_keeps_recent_messages_within_the_history_window() -> None:
    async def scenario() -> None:
        now = 0.0
        async with chat_rooms() as rooms:
            chat = Chat(rooms, clock=lambda: now, wall_clock=lambda: 1.5)
            for n in range(HISTORY.size + 2):
                await chat.say(chat.message("Ann", f"message {n}"))
                now += 1
            recent = chat.recent()
            assert len(recent) == HISTORY.size
            epoch = recent[0]["epoch"]
            assert recent[0] == {
                "epoch": epoch,
                "offset": 3,
                "data": {"name": "Ann", "text": "message 2", "time": 1500},
            }
            assert HISTORY.ttl is not None
            now += HISTORY.ttl - HISTORY.size  # the oldest one is 10 minutes old
            recent = chat.recent()
            assert [m["offset"] for m in recent] == [*range(4, HISTORY.size + 3)]
            assert {m["epoch"] for m in recent} == {epoch}
            now += HISTORY.size
            assert chat.recent() == []

    asyncio.run(scenario())


def test_chat_counts_people_and_tells_them() -> None:
    async def scenario() -> None:
        async with running_demo() as port:
            uri = f"ws://127.0.0.1:{port}/rpc/rooms"
            counts: asyncio.Queue[int] = asyncio.Queue()

            async def told() -> int:
                return await asyncio.wait_for(counts.get(), TIMEOUT)

            async with socketeer.rpc.connect(uri) as alice:
                alice.on(PEOPLE, counts.put_nowait)
                await alice.call("$/room/join", room=CHAT_ROOM)
                assert await alice.call("chat.enter") == 1
                assert await told() == 1
                async with socketeer.rpc.connect(uri) as bob:
                    await bob.call("$/room/join", room=CHAT_ROOM)
                    assert await bob.call("chat.enter") == 2
                    assert await told() == 2
                assert await told() == 1  # Bob left

    asyncio.run(scenario())


def test_demo_server_closes_the_rooms_on_exit() -> None:
    async def scenario() -> None:
        rooms = chat_rooms()
        async with demo_server("127.0.0.1", 0, rooms=rooms) as server:
            port = server.sockets[0].getsockname()[1]
            async with socketeer.rpc.connect(f"ws://127.0.0.1:{port}/rpc/rooms") as page:
                await page.call("$/room/join", room=CHAT_ROOM)
                assert len(rooms.members(CHAT_ROOM)) == 1
        with pytest.raises(socketeer.InvalidState):
            await rooms.publish(CHAT_ROOM, "too late")

    asyncio.run(scenario())
