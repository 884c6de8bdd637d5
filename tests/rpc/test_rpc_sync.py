"""The blocking RPC client, ``socketeer.rpc.sync``, against real asyncio servers that run in
a thread of their own (these tests are plain functions: they block)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from rpc_helpers import MS, STEP, serving

import socketeer
import socketeer.rpc.sync
from socketeer.exceptions import CallTimeout, ConnectionLost, RemoteError
from socketeer.rpc import RPC, SUBPROTOCOL, Route, current_peer


class State:
    """What the server's methods saw, for the tests to check."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.arrived = 0
        self.all_arrived: asyncio.Event | None = None


def app(state: State) -> RPC:
    rpc = RPC()

    @rpc.method
    def add(a: int, b: int) -> int:
        return a + b

    @rpc.method
    def describe(*args: Any, **kwargs: Any) -> Any:
        return {"args": list(args), "kwargs": kwargs}

    @rpc.method
    def fail(message: str) -> None:
        raise ValueError(message)

    @rpc.method
    async def slow(seconds: float) -> str:
        state.started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            state.cancelled.set()
            raise
        return "done"

    @rpc.method
    async def rendezvous(n: int) -> int:
        """Return once ``n`` calls wait here at once: proof that they run together."""
        if state.all_arrived is None:
            state.all_arrived = asyncio.Event()
        state.arrived += 1
        if state.arrived == n:
            state.all_arrived.set()
        await asyncio.wait_for(state.all_arrived.wait(), STEP)
        return n

    @rpc.method
    async def ask(name: str, *args: Any) -> Any:
        """Call the client back; return its result, or its error."""
        try:
            return await current_peer().call(name, *args)
        except RemoteError as exc:
            return {"code": exc.code, "type": exc.type_name, "message": exc.message}

    @rpc.method
    async def ask_with(name: str, params: Any) -> Any:
        return await current_peer().call_with(name, params)

    @rpc.method
    async def ask_then_tell(name: str, event: str) -> Any:
        """Call the client back and, while that call runs, send a notification."""
        call = asyncio.ensure_future(current_peer().call(name))
        await asyncio.sleep(0)
        await current_peer().notify(event)
        return await call

    @rpc.method
    async def tell(event: str, params: Any) -> None:
        if isinstance(params, dict):
            await current_peer().notify(event, **params)
        else:
            await current_peer().notify(event, *params)

    @rpc.method
    async def discover_client() -> Any:
        return await current_peer().call("rpc.discover")

    @rpc.route("counter")
    class Counter(Route):
        value = 0

        def increment(self, by: int = 1) -> int:
            self.value += by
            return self.value

    return rpc


class ServerThread:
    """An asyncio server in a thread of its own, until :meth:`stop`."""

    def __init__(self, handler: Any, **options: Any) -> None:
        self.handler = handler
        self.options = options
        self.url = ""
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.main(),))
        self.thread.start()
        assert self.ready.wait(STEP)

    async def main(self) -> None:
        self.done: asyncio.Future[None] = self.loop.create_future()
        async with serving(self.handler, **self.options) as url:
            self.url = url
            self.ready.set()
            await self.done
        await self.loop.shutdown_default_executor()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(lambda: self.done.done() or self.done.set_result(None))
            self.thread.join(STEP)
            assert not self.thread.is_alive()
        if not self.loop.is_closed():
            self.loop.close()


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
def server(state: State) -> Iterator[ServerThread]:
    server = ServerThread(app(state))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def url(server: ServerThread) -> str:
    return server.url


def in_thread(function: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=function, args=args, daemon=True)
    thread.start()
    return thread


# Calls


def test_call_positional_named_and_proxy(url: str) -> None:
    with socketeer.rpc.sync.connect(url) as peer:
        assert isinstance(peer, socketeer.rpc.sync.Peer)
        assert peer.peer.connection.subprotocol == SUBPROTOCOL
        assert peer.call("add", 1, 2) == 3
        assert peer.call("add", a=2, b=5) == 7
        assert peer.call("describe") == {"args": [], "kwargs": {}}
        assert peer.call_with("describe", [1, "x"]) == {"args": [1, "x"], "kwargs": {}}
        assert peer.call_with("describe", {"k": None}) == {"args": [], "kwargs": {"k": None}}
        assert peer.proxy.counter.increment(by=2) == 2
        assert peer.proxy.counter.increment() == 3
        assert repr(peer.proxy.counter.increment) == "<Proxy counter.increment>"
        with pytest.raises(AttributeError):
            peer.proxy._private  # noqa: B018
        with pytest.raises(TypeError, match="not a method"):
            peer.proxy()
        with pytest.raises(TypeError, match="positional or named"):
            peer.call("add", 1, b=2)
        with pytest.raises(ValueError, match="invalid method name"):
            peer.call("not a name")
        peer.notify("add", 1, 2)  # nobody answers; the connection works on
        assert peer.call("add", 3, 4) == 7


def test_remote_errors(url: str) -> None:
    with socketeer.rpc.sync.connect(url) as peer:
        with pytest.raises(RemoteError) as caught:
            peer.call("fail", "bad input")
        error = caught.value
        assert (error.code, error.message, error.type_name) == (-32000, "bad input", "ValueError")
        assert isinstance(error.data, dict) and error.data["type"] == "ValueError"
        with pytest.raises(RemoteError) as caught:
            peer.call("missing")
        assert caught.value.code == -32601
        with pytest.raises(RemoteError) as caught:
            peer.call("add", 1)
        assert caught.value.code == -32602
        assert peer.call("add", 1, 1) == 2


# Timeouts


def test_call_timeout_cancels_the_server_task(url: str, state: State) -> None:
    with socketeer.rpc.sync.connect(url) as peer:
        started = time.monotonic()
        with pytest.raises(CallTimeout) as caught:
            peer.call_with("slow", [10], timeout=50 * MS)
        assert caught.value.method == "slow" and caught.value.timeout == 50 * MS
        assert time.monotonic() - started < STEP
        assert state.cancelled.wait(STEP)  # $/cancel reached the server
        assert peer.call("add", 1, 2) == 3


def test_default_call_timeout_is_an_option(url: str, state: State) -> None:
    with socketeer.rpc.sync.connect(url, call_timeout=50 * MS) as peer:
        assert peer.options.call_timeout == 50 * MS
        with pytest.raises(CallTimeout):
            peer.call("slow", 10)
        assert state.cancelled.wait(STEP)
        assert peer.call_with("slow", [0], timeout=None) == "done"


# The server calls the client


def test_register(url: str) -> None:
    with socketeer.rpc.sync.connect(url) as peer:
        threads: list[str] = []

        def double(x: int) -> int:
            """Double it."""
            threads.append(threading.current_thread().name)
            return 2 * x

        def callback_calls_back(x: int) -> Any:
            return peer.call("add", x, 1)  # from a thread of the pool

        def broken() -> None:
            raise KeyError("nope")

        unregister = peer.register("client.double", double)
        peer.register("client.nested", callback_calls_back)
        peer.register("client.broken", broken)
        assert peer.call("ask", "client.double", 21) == 42
        assert threads[0].startswith("socketeer-rpc-call")
        assert peer.call("ask_with", "client.double", {"x": 5}) == 10
        assert peer.call("ask", "client.nested", 41) == 42
        # The signature is kept: arguments are checked, rpc.discover describes it.
        assert peer.call("ask", "client.double")["code"] == -32602
        discovered = peer.call("discover_client")
        assert discovered[0] == {
            "name": "client.double",
            "params": [{"name": "x", "kind": "positional_or_keyword"}],
            "doc": "Double it.",
        }
        assert peer.call("ask", "client.broken") == {
            "code": -32000,
            "type": "KeyError",
            "message": "'nope'",
        }
        with pytest.raises(ValueError, match="registered already"):
            peer.register("client.double", double)
        unregister()
        assert peer.call("ask", "client.double", 1)["code"] == -32601


def test_registered_functions_do_not_block_reading(url: str) -> None:
    with socketeer.rpc.sync.connect(url) as peer:
        go = threading.Event()

        def wait_for_go() -> bool:
            return go.wait(STEP)  # set by the listener, which needs the loop to read on

        peer.register("client.wait", wait_for_go)
        peer.on("go", lambda: go.set())
        assert peer.call("ask_then_tell", "client.wait", "go") is True


def test_on(url: str) -> None:
    with socketeer.rpc.sync.connect(url) as peer:
        received: list[Any] = []
        done = threading.Event()

        def listener(*args: Any, **kwargs: Any) -> None:
            received.append((args, kwargs, threading.current_thread().name))
            done.set()

        remove = peer.on("news", listener)
        peer.call("tell", "news", [1, "two"])
        assert done.wait(STEP)
        done.clear()
        peer.call("tell", "news", {"headline": "hi"})
        assert done.wait(STEP)
        assert [(args, kwargs) for args, kwargs, _ in received] == [
            ((1, "two"), {}),
            ((), {"headline": "hi"}),
        ]
        assert received[0][2].startswith("socketeer-rpc-call")
        remove()
        remove()  # again: nothing happens
        peer.call("tell", "news", [3])
        peer.call("add", 1, 2)  # after the notification: it was read, and ignored
        assert len(received) == 2
        with pytest.raises(ValueError):
            peer.on("$/reserved", listener)
        with pytest.raises(TypeError):
            peer.on("news", "not callable")  # type: ignore[arg-type]


def test_async_functions_run_in_the_loop(url: str) -> None:
    with socketeer.rpc.sync.connect(url) as peer:

        async def deadlock() -> str:
            try:
                peer.call("add", 1, 2)
            except RuntimeError as exc:
                return str(exc)
            return "called"  # pragma: no cover

        peer.register("client.deadlock", deadlock)
        assert "own event loop" in peer.call("ask", "client.deadlock")


# Threads


def test_concurrent_calls_from_threads(url: str) -> None:
    with socketeer.rpc.sync.connect(url) as peer:
        results: dict[int, list[Any]] = {}

        def work(n: int) -> None:
            results[n] = [peer.call("add", n, i) for i in range(20)]

        threads = [in_thread(work, n) for n in range(8)]
        for thread in threads:
            thread.join(STEP)
        assert results == {n: [n + i for i in range(20)] for n in range(8)}

        # Calls from several threads are in flight at once.
        waiting: list[Any] = []
        threads = [in_thread(lambda: waiting.append(peer.call("rendezvous", 4))) for _ in range(4)]
        for thread in threads:
            thread.join(STEP)
        assert waiting == [4, 4, 4, 4]


def test_close_stops_every_thread(url: str) -> None:
    before = set(threading.enumerate())
    peer = socketeer.rpc.sync.connect(url)
    peer.register("client.echo", lambda x: x)
    assert peer.call("ask", "client.echo", "hi") == "hi"
    assert not peer.closed
    assert set(threading.enumerate()) > before  # the loop's thread, the pool's
    peer.close()
    assert peer.closed
    assert peer.peer.connection.close_code == 1000
    assert set(threading.enumerate()) == before
    peer.close()  # again: nothing happens
    with pytest.raises(ConnectionLost) as caught:
        peer.call("add", 1, 2)
    assert caught.value.code == 1000
    with pytest.raises(ConnectionLost):
        peer.notify("add", 1, 2)
    assert "closed" in repr(peer)


def test_close_fails_calls_in_flight_and_waits_for_functions(url: str, state: State) -> None:
    before = set(threading.enumerate())
    peer = socketeer.rpc.sync.connect(url)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            peer.call("slow", 10)
        except BaseException as exc:
            errors.append(exc)

    thread = in_thread(call)
    assert state.started.wait(STEP)
    peer.close()
    thread.join(STEP)
    assert len(errors) == 1 and isinstance(errors[0], ConnectionLost)
    assert set(threading.enumerate()) == before


def test_close_from_a_registered_function(url: str) -> None:
    before = set(threading.enumerate())
    peer = socketeer.rpc.sync.connect(url)
    closed = threading.Event()

    def close() -> None:
        peer.close()
        closed.set()

    peer.register("client.close", close)
    with pytest.raises(ConnectionLost):
        peer.call("ask", "client.close")
    assert closed.wait(STEP)
    assert peer.closed
    deadline = time.monotonic() + STEP
    while set(threading.enumerate()) != before and time.monotonic() < deadline:
        time.sleep(MS)
    assert set(threading.enumerate()) == before


def test_server_going_away(server: ServerThread, state: State) -> None:
    before = set(threading.enumerate())
    with socketeer.rpc.sync.connect(server.url) as peer:
        errors: list[BaseException] = []

        def call() -> None:
            try:
                peer.call("slow", 10)
            except BaseException as exc:
                errors.append(exc)

        thread = in_thread(call)
        assert state.started.wait(STEP)
        server.stop()
        thread.join(STEP)
        assert len(errors) == 1 and isinstance(errors[0], ConnectionLost)
        assert errors[0].code == 1001
        assert peer.closed
        with pytest.raises(ConnectionLost):
            peer.call("add", 1, 2)
    assert set(threading.enumerate()) == before - {server.thread}


def test_connection_refused_leaves_no_thread(url: str, server: ServerThread) -> None:
    server.stop()
    before = set(threading.enumerate())
    with pytest.raises(OSError):
        socketeer.rpc.sync.connect(url, open_timeout=STEP)
    assert set(threading.enumerate()) == before


# Ctrl-C


@contextlib.contextmanager
def interrupt_when(event: threading.Event) -> Iterator[None]:
    """Raise KeyboardInterrupt in the main thread once ``event`` is set, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    assert main is not None

    def interrupt() -> None:
        if event.wait(STEP):
            signal.pthread_kill(main, signal.SIGINT)

    thread = in_thread(interrupt)
    try:
        yield
    finally:
        thread.join(STEP)
        signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX only")
def test_ctrl_c_cancels_the_call(url: str, state: State) -> None:
    with socketeer.rpc.sync.connect(url) as peer:
        with interrupt_when(state.started), pytest.raises(KeyboardInterrupt):
            peer.call("slow", 10)
        assert state.cancelled.wait(STEP)  # by $/cancel: the connection is open
        assert not peer.closed
        assert peer.call("add", 1, 2) == 3


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX only")
def test_ctrl_c_sends_cancel_before_closing() -> None:
    """Interrupted, then closed at once by the ``with`` block: ``$/cancel`` goes first."""
    received: list[Any] = []
    started = threading.Event()

    async def handler(ws: socketeer.ServerConnection) -> None:
        async for message in ws:
            received.append(json.loads(message))
            started.set()

    server = ServerThread(handler, subprotocols=[SUBPROTOCOL])
    try:
        before = set(threading.enumerate())
        with interrupt_when(started), pytest.raises(KeyboardInterrupt):
            with socketeer.rpc.sync.connect(server.url) as peer:
                peer.call("slow", 10)
        assert set(threading.enumerate()) == before
        assert peer.closed and peer.peer.connection.close_code == 1000
    finally:
        server.stop()
    request_id = received[0]["id"]
    assert received == [
        {"jsonrpc": "2.0", "method": "slow", "params": [10], "id": request_id},
        {"jsonrpc": "2.0", "method": "$/cancel", "params": {"id": request_id}},
    ]
