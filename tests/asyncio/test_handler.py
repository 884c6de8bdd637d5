"""Event-style handlers: serve(Handler), run(uri, Handler), reconnection (asyncio/handler.py,
and the policies of handler.py that both drivers share)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

import socketeer
import socketeer.sync
from socketeer.asyncio.connection import Connection
from socketeer.asyncio.handler import connection_handler
from socketeer.asyncio.server import Server, ServerConnection, serve
from socketeer.client import Backoff
from socketeer.connection import ConnectionBase
from socketeer.exceptions import ConnectionClosedError
from socketeer.handler import ReconnectPolicy
from socketeer.protocol.frames import Close, CloseCode
from socketeer.typedefs import Data
from timing import MS

# Reconnection delays short enough for tests.
BACKOFF = Backoff(initial=10 * MS, maximum=50 * MS)


def uri_of(server: Server) -> str:
    return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def until(condition: Callable[[], object]) -> None:
    """Wait until ``condition()`` is true; the test's timeout catches a hang."""
    while not condition():
        await asyncio.sleep(MS)


class Recorder(socketeer.Handler):
    """Records its events, as ``(event, args...)`` tuples, in ``self.events`` and in a list
    shared by every instance."""

    all: list[Recorder] = []

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.all = []  # each subclass keeps its own instances

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.all.append(self)

    async def on_open(self, ws: Connection) -> None:
        self.events.append(("open",))

    async def on_message(self, ws: Connection, message: Data) -> None:
        self.events.append(("message", message))

    async def on_error(self, ws: Connection, exc: Exception) -> None:
        self.events.append(("error", type(exc)))

    async def on_close(self, ws: Connection, code: int, reason: str) -> None:
        self.events.append(("close", code, reason))

    @property
    def messages(self) -> list[Data]:
        return [event[1] for event in self.events if event[0] == "message"]

    @property
    def closed(self) -> bool:
        return bool(self.events) and self.events[-1][0] == "close"


def recorder(
    on_open: Callable[[Connection], Any] | None = None,
    on_message: Callable[[Connection, Data], Any] | None = None,
) -> type[Recorder]:
    """A fresh :class:`Recorder` subclass (with its own list of instances) that also runs
    ``on_open`` and ``on_message`` coroutine functions after recording."""

    class Custom(Recorder):
        async def on_open(self, ws: Connection) -> None:
            await super().on_open(ws)
            if on_open is not None:
                await on_open(ws)

        async def on_message(self, ws: Connection, message: Data) -> None:
            await super().on_message(ws, message)
            if on_message is not None:
                await on_message(ws, message)

    return Custom


async def echo(ws: Connection, message: Data) -> None:
    await ws.send(message)


async def send_hello(ws: Connection) -> None:
    await ws.send("hello")
    await ws.send(b"\x00\x01")


async def say_hello(ws: Connection) -> None:
    await ws.send("hello")


async def close_after_binary(ws: Connection, message: Data) -> None:
    if isinstance(message, bytes):
        await ws.close()


async def fail(ws: Connection, message: Data | None = None) -> None:
    raise RuntimeError("boom")


class TestEvents:
    async def test_order_on_both_sides(self) -> None:
        Server_ = recorder(on_message=echo)
        Client = recorder(on_open=send_hello, on_message=close_after_binary)
        async with serve(Server_, "127.0.0.1", 0) as server:
            await socketeer.run(uri_of(server), Client)
            await until(lambda: Server_.all and Server_.all[0].closed)
        (client,) = Client.all
        assert client.events == [
            ("open",),
            ("message", "hello"),
            ("message", b"\x00\x01"),
            ("close", 1000, ""),
        ]
        (server_side,) = Server_.all
        assert server_side.events == [
            ("open",),
            ("message", "hello"),
            ("message", b"\x00\x01"),
            ("close", 1000, ""),
        ]

    async def test_instance_per_connection(self) -> None:
        Server_ = recorder(on_message=echo)
        async with serve(Server_, "127.0.0.1", 0) as server:
            for _ in range(3):
                async with socketeer.connect(uri_of(server)) as ws:
                    await ws.send("hi")
                    assert await ws.recv() == "hi"
            await until(lambda: len(Server_.all) == 3 and all(r.closed for r in Server_.all))
        assert len({id(r) for r in Server_.all}) == 3
        for instance in Server_.all:
            assert instance.events == [("open",), ("message", "hi"), ("close", 1000, "")]

    async def test_factory(self) -> None:
        class Greeter(socketeer.Handler):
            def __init__(self, greeting: str) -> None:
                self.greeting = greeting

            async def on_open(self, ws: Connection) -> None:
                await ws.send(self.greeting)

        made: list[Greeter] = []

        def make() -> Greeter:
            made.append(Greeter(f"hello #{len(made) + 1}"))
            return made[-1]

        async with serve(socketeer.Handler.factory(make), "127.0.0.1", 0) as server:
            for number in (1, 2):
                async with socketeer.connect(uri_of(server)) as ws:
                    assert await ws.recv() == f"hello #{number}"
        assert len(made) == 2

    async def test_messages_one_at_a_time_in_order(self) -> None:
        running = 0
        most = 0
        received: list[Data] = []

        class Slow(socketeer.Handler):
            async def on_message(self, ws: Connection, message: Data) -> None:
                nonlocal running, most
                running += 1
                most = max(most, running)
                await asyncio.sleep(0)  # let the next message arrive meanwhile
                received.append(message)
                running -= 1
                if message == "99":
                    await ws.close()

        async with serve(Slow, "127.0.0.1", 0, max_queue=4) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                for number in range(100):
                    await ws.send(str(number))
                await ws.wait_closed()
        assert received == [str(number) for number in range(100)]
        assert most == 1


class TestErrors:
    async def test_on_message_raises_on_server(self) -> None:
        Server_ = recorder(on_message=fail)
        async with serve(Server_, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.send("hi")
                await ws.wait_closed()
            await until(lambda: Server_.all and Server_.all[0].closed)
        assert ws.close_code == CloseCode.INTERNAL_ERROR
        assert Server_.all[0].events == [
            ("open",),
            ("message", "hi"),
            ("error", RuntimeError),
            ("close", 1011, ""),
        ]

    async def test_on_open_raises_on_server(self) -> None:
        Server_ = recorder(on_open=fail)
        async with serve(Server_, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.wait_closed()
            await until(lambda: Server_.all and Server_.all[0].closed)
        assert ws.close_code == CloseCode.INTERNAL_ERROR
        assert Server_.all[0].events == [("open",), ("error", RuntimeError), ("close", 1011, "")]

    async def test_default_on_error_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        class Failing(socketeer.Handler):
            async def on_message(self, ws: Connection, message: Data) -> None:
                raise RuntimeError("boom")

        caplog.set_level(logging.ERROR, logger="socketeer.server")
        async with serve(Failing, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.send("hi")
                await ws.wait_closed()
        assert ws.close_code == CloseCode.INTERNAL_ERROR
        (record,) = [r for r in caplog.records if r.name == "socketeer.server"]
        assert record.getMessage() == "connection handler failed"
        assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)

    async def test_on_message_raises_on_client(self) -> None:
        closes: list[int | None] = []

        async def record_close(ws: ServerConnection) -> None:
            await ws.send("hi")
            await ws.wait_closed()
            closes.append(ws.close_code)

        Client = recorder(on_message=fail)
        async with serve(record_close, "127.0.0.1", 0) as server:
            await socketeer.run(uri_of(server), Client)  # returns: on_error had the exception
            await until(lambda: closes)
        assert closes == [CloseCode.INTERNAL_ERROR]
        assert Client.all[0].events == [
            ("open",),
            ("message", "hi"),
            ("error", RuntimeError),
            ("close", 1011, ""),
        ]

    async def test_on_close_raises(self, caplog: pytest.LogCaptureFixture) -> None:
        class BadClose(socketeer.Handler):
            async def on_close(self, ws: Connection, code: int, reason: str) -> None:
                raise RuntimeError("boom in on_close")

        caplog.set_level(logging.ERROR, logger="socketeer.server")
        async with serve(BadClose, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)):
                pass
            await until(lambda: "connection handler failed" in caplog.text)

            class Quitter(BadClose):
                async def on_open(self, ws: Connection) -> None:
                    await ws.close()

            with pytest.raises(RuntimeError, match="boom in on_close"):
                await socketeer.run(uri_of(server), Quitter)

    async def test_send_after_peer_closed_is_no_error(self) -> None:
        done = asyncio.Event()

        class Late(Recorder):
            async def on_message(self, ws: Connection, message: Data) -> None:
                await super().on_message(ws, message)
                await ws.wait_closed()
                await ws.send("too late")  # raises ConnectionClosedOK

            async def on_close(self, ws: Connection, code: int, reason: str) -> None:
                await super().on_close(ws, code, reason)
                done.set()

        async with serve(Late, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.send("hi")
            await asyncio.wait_for(done.wait(), 1000 * MS)
        assert Late.all[-1].events == [("open",), ("message", "hi"), ("close", 1000, "")]


class TestCloseCodes:
    async def test_code_and_reason_from_server(self) -> None:
        async def close_4000(ws: Connection) -> None:
            await ws.close(4000, "bye")

        Server_ = recorder(on_open=close_4000)
        Client = recorder()
        async with serve(Server_, "127.0.0.1", 0) as server:
            await socketeer.run(uri_of(server), Client)
            await until(lambda: Server_.all and Server_.all[0].closed)
        # A closing handshake is no error, whatever its code.
        assert Client.all[0].events == [("open",), ("close", 4000, "bye")]
        assert Server_.all[0].events == [("open",), ("close", 4000, "bye")]

    async def test_reason_from_client(self) -> None:
        Server_ = recorder()
        async with serve(Server_, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.close(1000, "done")
            await until(lambda: Server_.all and Server_.all[0].closed)
        assert Server_.all[0].events == [("open",), ("close", 1000, "done")]

    async def test_server_drops_client(self) -> None:
        async def drop(ws: ServerConnection) -> None:
            assert ws.transport is not None
            ws.transport.abort()

        Client = recorder()
        async with serve(drop, "127.0.0.1", 0) as server:
            await socketeer.run(uri_of(server), Client)
        assert Client.all[0].events == [
            ("open",),
            ("error", ConnectionClosedError),
            ("close", 1006, ""),
        ]

    async def test_client_drops_server(self, raw_client: Any) -> None:
        Server_ = recorder()
        async with serve(Server_, "127.0.0.1", 0) as server:
            async with raw_client(server.sockets[0].getsockname()[1]):
                await until(lambda: Server_.all)
            await until(lambda: Server_.all[0].closed)
        assert Server_.all[0].events == [
            ("open",),
            ("error", ConnectionClosedError),
            ("close", 1006, ""),
        ]

    async def test_on_close_when_shutdown_cancels(self) -> None:
        Busy = recorder(on_message=lambda ws, message: asyncio.Event().wait())
        async with serve(Busy, "127.0.0.1", 0, close_timeout=10 * MS) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.send("hi")
                await until(lambda: Busy.all and len(Busy.all[0].events) == 2)
                await server.close()  # cancels the handler still busy after close_timeout
        assert Busy.all[0].events[-1][0] == "close"
        assert [event[0] for event in Busy.all[0].events] == ["open", "message", "close"]


class TestAdapter:
    async def test_plain_function_unchanged(self) -> None:
        async def handler(ws: ServerConnection) -> None:
            pass

        assert connection_handler(handler) is handler

    async def test_refuses_instance(self) -> None:
        with pytest.raises(TypeError, match="instance"):
            serve(Recorder(), "127.0.0.1", 0)  # type: ignore[arg-type]

    async def test_refuses_what_is_not_callable(self) -> None:
        with pytest.raises(TypeError, match="handler must be callable, got int"):
            serve(42, "127.0.0.1", 0)  # type: ignore[arg-type]

    async def test_refuses_other_driver(self) -> None:
        with pytest.raises(TypeError, match="socketeer.asyncio.handler.Handler"):
            serve(socketeer.sync.Handler, "127.0.0.1", 0)  # type: ignore[arg-type]
        factory = socketeer.sync.Handler.factory(socketeer.sync.Handler)
        with pytest.raises(TypeError):
            serve(factory, "127.0.0.1", 0)  # type: ignore[arg-type]

    async def test_run_refuses_function(self) -> None:
        async def handler(ws: Connection) -> None:
            pass

        with pytest.raises(TypeError):
            await socketeer.run("ws://127.0.0.1:1/", handler)  # type: ignore[arg-type]

    async def test_factory_returning_something_else(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        not_a_handler: Any = lambda: "not a handler"  # noqa: E731
        factory = socketeer.Handler.factory(not_a_handler)
        caplog.set_level(logging.ERROR, logger="socketeer.server")
        async with serve(factory, "127.0.0.1", 0) as server:
            async with socketeer.connect(uri_of(server)) as ws:
                await ws.wait_closed()
        assert ws.close_code == CloseCode.INTERNAL_ERROR
        assert "connection handler failed" in caplog.text


class TestRun:
    async def test_refused_without_reconnect(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
        with pytest.raises(OSError):
            await socketeer.run(f"ws://127.0.0.1:{port}/", Recorder)

    async def test_reconnect_with_sock(self) -> None:
        with socket.socket() as sock, pytest.raises(ValueError):
            await socketeer.run("ws://x/", Recorder, reconnect=True, sock=sock)

    async def test_reconnects_after_server_drops(self) -> None:
        count = 0

        async def drop_first(ws: ServerConnection) -> None:
            nonlocal count
            count += 1
            if count == 1:
                assert ws.transport is not None
                ws.transport.abort()
                return
            async for message in ws:
                await ws.send(message)

        async def stop(ws: Connection, message: Data) -> None:
            await ws.close()

        Client = recorder(on_open=say_hello, on_message=stop)
        async with serve(drop_first, "127.0.0.1", 0) as server:
            await socketeer.run(uri_of(server), Client, reconnect=True, backoff=BACKOFF)
        first, second = Client.all
        assert first.events == [("open",), ("error", ConnectionClosedError), ("close", 1006, "")]
        assert second.events == [("open",), ("message", "hello"), ("close", 1000, "")]

    async def test_reconnects_until_closed_with_1000(self) -> None:
        count = 0

        async def close_with(ws: Connection) -> None:
            nonlocal count
            count += 1
            await ws.close(4000 if count < 3 else 1000)

        Server_ = recorder(on_message=echo)
        Client = recorder(on_open=close_with)
        async with serve(Server_, "127.0.0.1", 0) as server:
            await socketeer.run(uri_of(server), Client, reconnect=True, backoff=BACKOFF)
        assert [client.events[-1] for client in Client.all] == [
            ("close", 4000, ""),
            ("close", 4000, ""),
            ("close", 1000, ""),
        ]

    async def test_reconnects_after_server_closes(self) -> None:
        count = 0

        async def close_twice(ws: ServerConnection) -> None:
            nonlocal count
            count += 1
            if count <= 2:
                return  # closes with 1000
            async for message in ws:
                await ws.send(message)

        async def stop(ws: Connection, message: Data) -> None:
            await ws.close()

        Client = recorder(on_open=say_hello, on_message=stop)
        async with serve(close_twice, "127.0.0.1", 0) as server:
            await socketeer.run(uri_of(server), Client, reconnect=True, backoff=BACKOFF)
        assert len(Client.all) == 3
        assert Client.all[0].events[-1] == ("close", 1000, "")
        assert Client.all[2].events[1:] == [("message", "hello"), ("close", 1000, "")]

    async def test_reconnect_stops_on_fatal_error(self) -> None:
        def refuse(ws: ServerConnection, request: Any) -> Any:
            return ws.respond(403, "no\n")

        async with serve(Recorder, "127.0.0.1", 0, process_request=refuse) as server:
            with pytest.raises(socketeer.InvalidStatus):
                await socketeer.run(uri_of(server), Recorder, reconnect=True, backoff=BACKOFF)

    async def test_cancel(self) -> None:
        Client = recorder()
        async with serve(Recorder, "127.0.0.1", 0) as server:
            task = asyncio.create_task(
                socketeer.run(uri_of(server), Client, reconnect=True, backoff=BACKOFF)
            )
            await until(lambda: Client.all and Client.all[0].events)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert [event[0] for event in Client.all[0].events] == ["open", "close"]

    async def test_sync_client(self) -> None:
        """socketeer.sync.run against socketeer.serve."""
        received: list[Data] = []

        class SyncClient(socketeer.sync.Handler):
            def on_open(self, ws: Any) -> None:
                ws.send("over threads")

            def on_message(self, ws: Any, message: Data) -> None:
                received.append(message)
                ws.close()

        Server_ = recorder(on_message=echo)
        async with serve(Server_, "127.0.0.1", 0) as server:
            await asyncio.to_thread(socketeer.sync.run, uri_of(server), SyncClient)
            await until(lambda: Server_.all and Server_.all[0].closed)
        assert received == ["over threads"]
        assert Server_.all[0].events[-1] == ("close", 1000, "")


class TestReconnectPolicy:
    """The decisions of a reconnecting run once a connection closed (socketeer/handler.py),
    without sockets."""

    class Closed(ConnectionBase):
        def __init__(self, sent: int | None, rcvd: int | None, rcvd_then_sent: bool | None):
            self.protocol = cast(
                Any,
                SimpleNamespace(
                    close_sent=None if sent is None else Close(sent, ""),
                    close_rcvd=None if rcvd is None else Close(rcvd, ""),
                    close_rcvd_then_sent=rcvd_then_sent,
                ),
            )

    def test_stops_when_this_side_closed_with_1000(self) -> None:
        policy = ReconnectPolicy(Backoff())
        assert policy.after_close(self.Closed(1000, 1000, False)) is None
        assert policy.after_close(self.Closed(1000, None, None)) is None  # no answer

    def test_reconnects_at_once_after_normal_closure(self) -> None:
        policy = ReconnectPolicy(Backoff())
        assert policy.after_close(self.Closed(1000, 1000, True)) == 0.0
        assert policy.after_close(self.Closed(1001, 1001, True)) == 0.0

    def test_backs_off_after_failures_in_a_row(self) -> None:
        policy = ReconnectPolicy(Backoff(initial=1.0, factor=2.0, maximum=10.0))
        failures = [
            self.Closed(1011, 1011, True),  # the server failed
            self.Closed(None, None, None),  # the connection was lost
            self.Closed(4000, 4000, False),  # this side closed with another code
        ]
        for number, closed in enumerate(failures):
            delay = policy.after_close(closed)
            assert delay is not None and 0 <= delay <= 2.0**number
            assert policy.failures == number + 1
        assert policy.after_close(self.Closed(1000, 1000, True)) == 0.0
        assert policy.failures == 0


def test_run_takes_the_options_of_connect() -> None:
    """run() passes its options on to connect(): the same keyword arguments, listed once."""
    run_params = inspect.signature(socketeer.run).parameters
    connect_params = inspect.signature(socketeer.connect).parameters
    assert list(run_params) == ["uri", "handler", "reconnect", "options"]
    assert run_params["reconnect"].default is False
    assert run_params["options"].kind is inspect.Parameter.VAR_KEYWORD
    assert run_params["options"].annotation == connect_params["options"].annotation
    assert run_params["options"].annotation == "Unpack[ConnectOptions]"
