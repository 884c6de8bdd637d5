"""Event-style handlers on threads: serve(Handler), run(uri, Handler) (sync/handler.py)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sync_helpers import MS, run_server, uri

import socketeer
import socketeer.sync
from socketeer.client import Backoff
from socketeer.exceptions import ConnectionClosedError, InvalidStatus
from socketeer.protocol.frames import CloseCode
from socketeer.sync import ServerConnection, connect
from socketeer.sync.connection import Connection
from socketeer.sync.handler import connection_handler
from socketeer.typedefs import Data

# Reconnection delays short enough for tests.
BACKOFF = Backoff(initial=10 * MS, maximum=50 * MS)


def bounded(function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call ``function`` in a thread; fail if it does not return within 5 s (a hang), and
    raise what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            function(*args, **kwargs)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(5000 * MS)
    assert not thread.is_alive(), f"{function.__name__} did not return"
    if raised:
        raise raised[0]


class Recorder(socketeer.sync.Handler):
    """Records its events in ``self.events``; each subclass keeps its instances in ``all``
    and sets ``closed`` once one of them got ``on_close``."""

    all: list[Recorder] = []
    closed = threading.Event()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.all = []
        cls.closed = threading.Event()

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.all.append(self)

    def on_open(self, ws: Connection) -> None:
        self.events.append(("open",))

    def on_message(self, ws: Connection, message: Data) -> None:
        self.events.append(("message", message))

    def on_error(self, ws: Connection, exc: Exception) -> None:
        self.events.append(("error", type(exc)))

    def on_close(self, ws: Connection, code: int, reason: str) -> None:
        self.events.append(("close", code, reason))
        self.closed.set()


class EchoServer(Recorder):
    def on_message(self, ws: Connection, message: Data) -> None:
        super().on_message(ws, message)
        ws.send(message)


class HelloClient(Recorder):
    """Says hello, and closes (with 1000) on the answer."""

    def on_open(self, ws: Connection) -> None:
        super().on_open(ws)
        ws.send("hello")

    def on_message(self, ws: Connection, message: Data) -> None:
        super().on_message(ws, message)
        ws.close()


def test_event_order_on_both_sides() -> None:
    class Server(EchoServer):
        pass

    class Client(HelloClient):
        def on_open(self, ws: Connection) -> None:
            Recorder.on_open(self, ws)
            ws.send("hello")
            ws.send(b"\x00\x01")

        def on_message(self, ws: Connection, message: Data) -> None:
            Recorder.on_message(self, ws, message)
            if isinstance(message, bytes):
                ws.close()

    with run_server(Server) as server:
        bounded(socketeer.sync.run, uri(server), Client)
        assert Server.closed.wait(1000 * MS)
    expected = [("open",), ("message", "hello"), ("message", b"\x00\x01"), ("close", 1000, "")]
    assert Client.all[0].events == expected
    assert Server.all[0].events == expected


def test_instance_per_connection() -> None:
    class Server(EchoServer):
        pass

    with run_server(Server) as server:
        for _ in range(3):
            with connect(uri(server)) as ws:
                ws.send("hi")
                assert ws.recv(timeout=1) == "hi"
    assert len({id(instance) for instance in Server.all}) == 3
    for instance in Server.all:
        assert instance.events == [("open",), ("message", "hi"), ("close", 1000, "")]


def test_factory() -> None:
    class Greeter(socketeer.sync.Handler):
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        def on_open(self, ws: Connection) -> None:
            ws.send(self.greeting)

    with run_server(socketeer.sync.Handler.factory(lambda: Greeter("hello"))) as server:
        for _ in range(2):
            with connect(uri(server)) as ws:
                assert ws.recv(timeout=1) == "hello"


def test_on_message_raises_on_server() -> None:
    class Server(Recorder):
        def on_message(self, ws: Connection, message: Data) -> None:
            super().on_message(ws, message)
            raise RuntimeError("boom")

    with run_server(Server) as server, connect(uri(server)) as ws:
        ws.send("hi")
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=1)
        assert ws.close_code == CloseCode.INTERNAL_ERROR
        assert Server.closed.wait(1000 * MS)
    assert Server.all[0].events == [
        ("open",),
        ("message", "hi"),
        ("error", RuntimeError),
        ("close", 1011, ""),
    ]


def test_default_on_error_logs(caplog: pytest.LogCaptureFixture) -> None:
    class Failing(socketeer.sync.Handler):
        def on_open(self, ws: Connection) -> None:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, "socketeer.server"):
        with run_server(Failing) as server, connect(uri(server)) as ws:
            with pytest.raises(ConnectionClosedError):
                ws.recv(timeout=1)
            assert ws.close_code == CloseCode.INTERNAL_ERROR
    (record,) = [r for r in caplog.records if r.name == "socketeer.server"]
    assert record.getMessage() == "connection handler failed"


def test_on_message_raises_on_client() -> None:
    codes: list[int | None] = []

    def greet(ws: ServerConnection) -> None:
        ws.send("hi")
        ws.wait_closed(1)
        codes.append(ws.close_code)

    class Client(Recorder):
        def on_message(self, ws: Connection, message: Data) -> None:
            super().on_message(ws, message)
            raise RuntimeError("boom")

    with run_server(greet) as server:
        bounded(socketeer.sync.run, uri(server), Client)  # returns: on_error had it
    assert codes == [CloseCode.INTERNAL_ERROR]
    assert Client.all[0].events == [
        ("open",),
        ("message", "hi"),
        ("error", RuntimeError),
        ("close", 1011, ""),
    ]


def test_close_code_and_reason() -> None:
    class Server(Recorder):
        def on_open(self, ws: Connection) -> None:
            super().on_open(ws)
            ws.close(4000, "bye")

    class Client(Recorder):
        pass

    with run_server(Server) as server:
        bounded(socketeer.sync.run, uri(server), Client)
        assert Server.closed.wait(1000 * MS)
    assert Client.all[0].events == [("open",), ("close", 4000, "bye")]
    assert Server.all[0].events == [("open",), ("close", 4000, "bye")]


def test_abnormal_closure_on_both_sides() -> None:
    class Server(Recorder):
        def on_open(self, ws: Connection) -> None:
            super().on_open(ws)
            ws.socket.shutdown(socket.SHUT_RDWR)  # the connection is lost

    class Client(Recorder):
        pass

    with run_server(Server) as server:
        bounded(socketeer.sync.run, uri(server), Client)
        assert Server.closed.wait(1000 * MS)
    failed = [("open",), ("error", ConnectionClosedError), ("close", 1006, "")]
    assert Client.all[0].events == failed
    assert Server.all[0].events == failed


def test_refuses_instances_and_other_driver() -> None:
    with pytest.raises(TypeError, match="instance"):
        socketeer.sync.serve(Recorder(), "127.0.0.1", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="socketeer.sync.handler.Handler"):
        socketeer.sync.serve(socketeer.Handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        socketeer.sync.run("ws://127.0.0.1:1/", lambda ws: None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="handler must be callable, got int"):
        socketeer.sync.serve(42, "127.0.0.1", 0)  # type: ignore[arg-type]

    def handler(ws: ServerConnection) -> None:
        pass

    assert connection_handler(handler) is handler


def test_run_refused_without_reconnect() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    with pytest.raises(OSError):
        bounded(socketeer.sync.run, f"ws://127.0.0.1:{port}/", Recorder)


def test_run_reconnects_after_server_drops() -> None:
    count = 0

    def drop_first(ws: ServerConnection) -> None:
        nonlocal count
        count += 1
        if count == 1:
            ws.socket.shutdown(socket.SHUT_RDWR)
            return
        for message in ws:
            ws.send(message)

    class Client(HelloClient):
        pass

    with run_server(drop_first) as server:
        bounded(socketeer.sync.run, uri(server), Client, reconnect=True, backoff=BACKOFF)
    first, second = Client.all
    assert first.events == [("open",), ("error", ConnectionClosedError), ("close", 1006, "")]
    assert second.events == [("open",), ("message", "hello"), ("close", 1000, "")]


def test_run_reconnects_until_closed_with_1000() -> None:
    class Client(Recorder):
        def on_open(self, ws: Connection) -> None:
            super().on_open(ws)
            ws.close(4000 if len(self.all) < 3 else 1000)

    with run_server(EchoServer) as server:
        bounded(socketeer.sync.run, uri(server), Client, reconnect=True, backoff=BACKOFF)
    assert [client.events[-1] for client in Client.all] == [
        ("close", 4000, ""),
        ("close", 4000, ""),
        ("close", 1000, ""),
    ]


def test_run_retries_until_server_starts() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]

    class Client(HelloClient):
        pass

    def run() -> None:
        socketeer.sync.run(
            f"ws://127.0.0.1:{port}/", Client, reconnect=True, backoff=BACKOFF, open_timeout=1
        )

    runner = threading.Thread(target=run)
    runner.start()
    try:
        with run_server(EchoServer, port=port):
            runner.join(5000 * MS)
            assert not runner.is_alive()
    finally:
        runner.join(5000 * MS)
    assert Client.all[0].events == [("open",), ("message", "hello"), ("close", 1000, "")]


def test_run_stops_on_fatal_error() -> None:
    def refuse(ws: ServerConnection, request: Any) -> Any:
        return ws.respond(403, "no\n")

    with run_server(EchoServer, process_request=refuse) as server:
        with pytest.raises(InvalidStatus):
            bounded(socketeer.sync.run, uri(server), Recorder, reconnect=True, backoff=BACKOFF)


def test_run_reconnect_with_sock() -> None:
    with socket.socket() as sock, pytest.raises(ValueError):
        socketeer.sync.run("ws://x/", Recorder, reconnect=True, sock=sock)


def test_asyncio_client() -> None:
    """socketeer.run against socketeer.sync.serve."""
    received: list[Data] = []

    class AsyncClient(socketeer.Handler):
        async def on_open(self, ws: Any) -> None:
            await ws.send("over asyncio")

        async def on_message(self, ws: Any, message: Data) -> None:
            received.append(message)
            await ws.close()

    class Server(EchoServer):
        pass

    with run_server(Server) as server:

        async def main() -> None:
            await asyncio.wait_for(socketeer.run(uri(server), AsyncClient), 5000 * MS)

        asyncio.run(main())
        assert Server.closed.wait(1000 * MS)
    assert received == ["over asyncio"]
    assert Server.all[0].events[-1] == ("close", 1000, "")


def test_run_takes_the_options_of_connect() -> None:
    """run() passes its options on to reconnect(): the keyword arguments of connect() and
    reconnect(), listed once."""
    run_params = inspect.signature(socketeer.sync.run).parameters
    assert list(run_params) == ["uri", "handler", "reconnect", "options"]
    assert run_params["reconnect"].default is False
    assert run_params["options"].kind is inspect.Parameter.VAR_KEYWORD
    for function in (socketeer.sync.connect, socketeer.sync.reconnect):
        options = inspect.signature(function).parameters["options"]
        assert options.annotation == run_params["options"].annotation
    assert run_params["options"].annotation == "Unpack[ClientOptionsDict]"
