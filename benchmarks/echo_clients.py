"""Load generators for ``benchmarks/echo.py``: one per library, each run in a process of its own.

``python benchmarks/echo_clients.py LIBRARY --port N --tests TESTS`` connects to the echo
server on 127.0.0.1:N, runs the tests, and prints one JSON object on stdout: the rate of each
repetition of each test (round trips or messages per second), the CPU time per message of
the server (with ``--server-pid``) and of the client, and the share of their CPUs' time that
other processes took; or ``{"missing": REASON}`` when the library or the loop is not
installed.

Tests (comma-separated in ``--tests``):

- ``echo:SIZE``: one connection; send a binary message of SIZE bytes, wait for it to come
  back, repeat. Round trips per second.
- ``pipeline:SIZE:WINDOW``: one connection; keep WINDOW messages in flight, sending one
  more for each that comes back. Messages per second.
- ``concurrent:SIZE:CLIENTS``: CLIENTS connections, each doing ``echo:SIZE``. Messages per
  second, all connections together.

With ``--compression`` (``echo.py --compression``), the client offers permessage-deflate
with its library's default settings (socketeer, websockets and aiohttp only), and the tests
are ``json:SIZE`` (one connection, binary messages of SIZE bytes of JSON-like text, each
message a different one, in turn: see :func:`deflate_payloads`) and ``random:SIZE`` (the
same with random bytes, which deflate cannot shrink). The output also gives the
``Sec-WebSocket-Extensions`` header the server answered. CPU times then count all the
threads of both processes, as for the threaded libraries (aiohttp compresses messages of more
than 16 KiB in a thread of its event loop's default executor).

Each repetition stops after ``--duration`` seconds or :data:`MAX_COUNT` messages, whichever
comes first; a short warm-up runs before the repetitions of each test. Messages in flight
when the time is up are still waited for, and counted.

socketeer, websockets and aiohttp are driven through their ``send``/``recv`` coroutines,
the way applications use them; ``socketeer-handler`` (a :class:`socketeer.Handler` whose
``on_message`` is a plain method, answering with ``send_nowait``), picows and the raw TCP
clients through their callbacks:
``raw-protocol`` reads the :class:`asyncio.Protocol` way, ``raw`` the
:class:`asyncio.BufferedProtocol` way (into a buffer allocated once).

The threaded clients run no event loop and ignore ``--loop``: ``socketeer-sync``
(:func:`socketeer.sync.connect`), ``websockets-sync`` (:func:`websockets.sync.client.connect`)
and ``websocket-client`` (:func:`websocket.create_connection`), driven through their blocking
``send``/``recv`` (``send_binary`` for websocket-client) from the main thread; for
``concurrent:SIZE:CLIENTS``, from CLIENTS threads, one per connection, started once per test.
socketeer and websockets also start a reading thread per connection; websocket-client reads
in the thread that calls ``recv``, and so does socketeer's ``recv`` while no other thread
reads (its reading thread then keeps the deadlines). The CPU time of a threaded process
counts all its threads: the client's own (:data:`time.CLOCK_PROCESS_CPUTIME_ID`), and the
threads alive in the server's (with ``--server-threads``), which hold the connections for the
whole test.

``wsload`` is no Python client: :func:`build_wsload` compiles ``benchmarks/wsload.c`` (a
single-threaded epoll load generator in C, see the comment at its top) into
``benchmarks/.build/`` when the source is newer than the binary, and this process drives it
through its standard input, one command per repetition. It ignores ``--loop``; it inherits
the ``--cpu`` pinning of this process, and the client's CPU time is that of the C process
(its ``/proc/PID/schedstat``). Besides the rates, its output gives the latency of the round
trips of each repetition, p50 and p99 in µs, under ``latency``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from echo_servers import LIBRARIES, LOOPS, MAX_MESSAGE, SYNC_SERVERS, MissingError, run

__all__ = [
    "CLIENTS",
    "DEFLATE_CLIENTS",
    "MAX_COUNT",
    "SYNC_CLIENTS",
    "WARMUP",
    "WSLOAD",
    "build_wsload",
    "deflate_payloads",
]

SYNC_CLIENTS = [*SYNC_SERVERS, "websocket-client"]
"""The threaded clients: no event loop."""
CLIENTS = [*LIBRARIES, "websocket-client"]

MAX_COUNT = 5_000_000
"""Most messages in one repetition, whatever the time."""
WARMUP = 0.2
"""Seconds of warm-up before the repetitions of each test."""
OPEN_BATCH = 50
"""Connections opened at once, for the concurrent test (the listen backlog is 100)."""

WSLOAD = "wsload"
"""The C load generator, ``benchmarks/wsload.c``: not in :data:`CLIENTS`, which are the
libraries compared."""
HERE = Path(__file__).resolve().parent
WSLOAD_SOURCE = HERE / "wsload.c"
WSLOAD_BINARY = HERE / ".build" / "wsload"
COMPILERS = ["cc", "gcc", "clang"]
"""Tried in turn when ``$CC`` is not set."""
WSLOAD_TIMEOUT = 60.0
"""Seconds for the compiler, and for wsload to exit once its standard input is closed."""

perf_counter = time.perf_counter


# Async clients: socketeer, websockets, aiohttp. A connection is (send, recv, close).

AsyncConnection = tuple[
    Callable[[bytes], Awaitable[Any]], Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]
]


class AsyncLibrary:
    """Opens connections of a library with a send/recv coroutine API."""

    def __init__(self, open: Callable[[str], Awaitable[AsyncConnection]]) -> None:
        self.open = open

    async def connect(self, uri: str, count: int) -> list[AsyncConnection]:
        connections: list[AsyncConnection] = []
        while len(connections) < count:
            batch = min(OPEN_BATCH, count - len(connections))
            connections += await asyncio.gather(*(self.open(uri) for _ in range(batch)))
        return connections

    async def check(self, connection: AsyncConnection, size: int) -> None:
        send, recv, _ = connection
        await send(b"x" * size)
        data = await recv()
        if len(data) != size:
            raise RuntimeError(f"sent {size} bytes, got {len(data)} back")

    async def echo(
        self, connections: list[AsyncConnection], payload: bytes, duration: float
    ) -> tuple[int, float]:
        """Round trips, all connections together, and the seconds they took."""
        start = perf_counter()
        deadline = start + duration
        counts = await asyncio.gather(
            *(_echo_loop(send, recv, payload, deadline) for send, recv, _ in connections)
        )
        return sum(counts), perf_counter() - start

    async def pipeline(
        self, connection: AsyncConnection, payload: bytes, window: int, duration: float
    ) -> tuple[int, float]:
        send, recv, _ = connection
        start = perf_counter()
        deadline = start + duration
        count = 0
        for _ in range(window):
            await send(payload)
        in_flight = window
        while in_flight:
            await recv()
            in_flight -= 1
            count += 1
            if count + in_flight < MAX_COUNT and perf_counter() < deadline:
                await send(payload)
                in_flight += 1
        return count, perf_counter() - start

    async def close(self, connections: list[AsyncConnection]) -> None:
        await asyncio.gather(*(close() for _, _, close in connections), return_exceptions=True)


async def _echo_loop(
    send: Callable[[bytes], Awaitable[Any]],
    recv: Callable[[], Awaitable[Any]],
    payload: bytes,
    deadline: float,
) -> int:
    count = 0
    while count < MAX_COUNT:
        await send(payload)
        await recv()
        count += 1
        if perf_counter() >= deadline:
            break
    return count


async def open_socketeer(uri: str) -> AsyncConnection:
    import socketeer

    ws = await socketeer.connect(uri, compression=None, max_size=MAX_MESSAGE)
    return ws.send, ws.recv, ws.close


async def open_websockets(uri: str) -> AsyncConnection:
    try:
        from websockets.asyncio.client import connect
    except ImportError as exc:
        raise MissingError(f"websockets>=13 is not installed ({exc})") from exc
    ws = await connect(uri, compression=None, max_size=MAX_MESSAGE)
    return ws.send, ws.recv, ws.close


class AiohttpOpener:
    """One ClientSession, without a connection limit, for all the connections."""

    def __init__(self) -> None:
        try:
            import aiohttp
        except ImportError as exc:
            raise MissingError(f"aiohttp is not installed ({exc})") from exc
        self.aiohttp = aiohttp
        self.session: Any = None

    async def __call__(self, uri: str) -> AsyncConnection:
        if self.session is None:
            connector = self.aiohttp.TCPConnector(limit=0)
            self.session = self.aiohttp.ClientSession(connector=connector)
        ws = await self.session.ws_connect(uri, compress=0, max_msg_size=MAX_MESSAGE)
        return ws.send_bytes, ws.receive_bytes, ws.close


# Callback clients: socketeer's Handler with a plain on_message, picows and raw TCP. Each
# connection is a CallbackPeer.


class CallbackPeer:
    """Sends messages from the transport's callbacks; subclasses call :meth:`received`."""

    def __init__(self) -> None:
        self.done: asyncio.Future[int] | None = None
        self.size = 0
        self.last_size = 0

    def send(self, payload: bytes) -> None:
        raise NotImplementedError

    def start(self, payload: bytes, window: int, deadline: float) -> asyncio.Future[int]:
        """Put ``window`` messages in flight; the future gives the messages received."""
        self.done = asyncio.get_running_loop().create_future()
        self.payload = payload
        self.size = len(payload)
        self.deadline = deadline
        self.count = 0
        self.in_flight = window
        for _ in range(window):
            self.send(payload)
        return self.done

    def received(self) -> None:
        """One whole message came back."""
        self.in_flight -= 1
        self.count += 1
        if self.count + self.in_flight < MAX_COUNT and perf_counter() < self.deadline:
            self.send(self.payload)
            self.in_flight += 1
        elif not self.in_flight and self.done is not None and not self.done.done():
            self.done.set_result(self.count)

    def lost(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection lost during the test"))


class CallbackLibrary:
    """Opens connections of a library with a callback API, as :class:`CallbackPeer`."""

    def __init__(self, open: Callable[[str], Awaitable[tuple[CallbackPeer, Any]]]) -> None:
        self.open = open
        self.closers: dict[CallbackPeer, Callable[[], Awaitable[None]]] = {}

    async def connect(self, uri: str, count: int) -> list[CallbackPeer]:
        peers: list[CallbackPeer] = []
        while len(peers) < count:
            batch = min(OPEN_BATCH, count - len(peers))
            for peer, closer in await asyncio.gather(*(self.open(uri) for _ in range(batch))):
                peers.append(peer)
                self.closers[peer] = closer
        return peers

    async def check(self, peer: CallbackPeer, size: int) -> None:
        await peer.start(b"x" * size, 1, 0.0)
        if peer.last_size != size:
            raise RuntimeError(f"sent {size} bytes, got {peer.last_size} back")

    async def echo(
        self, peers: list[CallbackPeer], payload: bytes, duration: float
    ) -> tuple[int, float]:
        start = perf_counter()
        deadline = start + duration
        counts = await asyncio.gather(*(peer.start(payload, 1, deadline) for peer in peers))
        return sum(counts), perf_counter() - start

    async def pipeline(
        self, peer: CallbackPeer, payload: bytes, window: int, duration: float
    ) -> tuple[int, float]:
        start = perf_counter()
        count = await peer.start(payload, window, start + duration)
        return count, perf_counter() - start

    async def close(self, peers: list[CallbackPeer]) -> None:
        for peer in peers:
            await self.closers.pop(peer)()


async def open_picows(uri: str) -> tuple[CallbackPeer, Any]:
    try:
        import picows
    except ImportError as exc:
        raise MissingError(f"picows is not installed ({exc})") from exc
    binary, text = picows.WSMsgType.BINARY, picows.WSMsgType.TEXT
    continuation = picows.WSMsgType.CONTINUATION

    class Peer(CallbackPeer, picows.WSListener):
        def __init__(self) -> None:
            CallbackPeer.__init__(self)
            self.partial = 0

        def on_ws_connected(self, transport: Any) -> None:
            self.transport = transport

        def send(self, payload: bytes) -> None:
            self.transport.send(binary, payload)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            msg_type = frame.msg_type
            if msg_type is binary or msg_type is text or msg_type is continuation:
                if frame.fin:
                    self.last_size = self.partial + frame.payload_size
                    self.partial = 0
                    self.received()
                else:
                    self.partial += frame.payload_size

        def on_ws_disconnected(self, transport: Any) -> None:
            self.lost()

    transport, peer = await picows.ws_connect(Peer, uri, max_frame_size=MAX_MESSAGE)
    if not isinstance(peer, CallbackPeer):
        raise ConnectionError("picows could not connect")

    async def close() -> None:
        transport.send_close(picows.WSCloseCode.OK)
        transport.disconnect()
        await transport.wait_disconnected()

    return peer, close


async def open_socketeer_handler(uri: str) -> tuple[CallbackPeer, Any]:
    import socketeer

    opened: asyncio.Future[Peer] = asyncio.get_running_loop().create_future()

    class Peer(CallbackPeer, socketeer.Handler):
        """A Handler whose plain on_message answers with send_nowait, in the event loop."""

        async def on_open(self, ws: socketeer.Connection) -> None:
            self.ws = ws
            opened.set_result(self)

        def on_message(self, ws: socketeer.Connection, message: socketeer.Data) -> None:
            self.last_size = len(message)
            self.received()

        async def on_close(self, ws: socketeer.Connection, code: int, reason: str) -> None:
            self.lost()

        def send(self, payload: bytes) -> None:
            self.ws.send_nowait(payload)

    running = asyncio.ensure_future(
        socketeer.run(uri, Peer, compression=None, max_size=MAX_MESSAGE)
    )
    await asyncio.wait([running, opened], return_when=asyncio.FIRST_COMPLETED)
    if not opened.done():
        running.result()  # the connection failed: raise why
        raise ConnectionError("socketeer.run returned before the connection opened")
    peer = opened.result()

    async def close() -> None:
        await peer.ws.close()
        await running

    return peer, close


class _RawPeer(CallbackPeer, asyncio.BaseProtocol):
    """Raw TCP: a message is back once as many bytes as were sent per message came back."""

    def connection_made(self, transport: Any) -> None:  # uvloop's: no asyncio.Transport
        self.transport = transport
        self.write = transport.write
        self.pending = 0
        self.closed = asyncio.get_running_loop().create_future()

    def send(self, payload: bytes) -> None:
        self.write(payload)

    def bytes_received(self, nbytes: int) -> None:
        self.pending += nbytes
        while self.size and self.pending >= self.size:
            self.pending -= self.size
            self.last_size = self.size
            self.received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost()
        if not self.closed.done():
            self.closed.set_result(None)


class RawProtocolPeer(_RawPeer, asyncio.Protocol):
    """Reads the plain :class:`asyncio.Protocol` way: a new ``bytes`` for every read."""

    def data_received(self, data: bytes) -> None:
        self.bytes_received(len(data))


class RawBufferedPeer(_RawPeer, asyncio.BufferedProtocol):
    """Reads into one buffer allocated once; see ``echo_servers._RawBufferedEcho``."""

    def __init__(self) -> None:
        super().__init__()
        self.view = memoryview(bytearray(262_144))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        self.bytes_received(nbytes)


def raw_opener(factory: Callable[[], _RawPeer]) -> Callable[[str], Awaitable[tuple[Any, Any]]]:
    async def open_raw(uri: str) -> tuple[CallbackPeer, Any]:
        port = int(uri.rsplit(":", 1)[1].rstrip("/"))
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_connection(factory, "127.0.0.1", port)

        async def close() -> None:
            peer.transport.close()
            await peer.closed

        return peer, close

    return open_raw


# Threaded clients: socketeer.sync, websockets.sync, websocket-client. A connection is
# (send, recv, close), blocking functions.

SyncConnection = tuple[Callable[[bytes], Any], Callable[[], Any], Callable[[], Any]]


class SyncLibrary:
    """Opens connections of a library with a blocking send/recv API.

    One connection is driven from the main thread; several (the concurrent test) from a
    thread each, kept from one repetition to the next.
    """

    def __init__(self, open: Callable[[str], SyncConnection]) -> None:
        self.open = open
        self.pool: ThreadPoolExecutor | None = None
        self.threads = 0

    def connect(self, uri: str, count: int) -> list[SyncConnection]:
        return [self.open(uri) for _ in range(count)]

    def check(self, connection: SyncConnection, size: int) -> None:
        send, recv, _ = connection
        send(b"x" * size)
        data = recv()
        if len(data) != size:
            raise RuntimeError(f"sent {size} bytes, got {len(data)} back")

    def echo(
        self, connections: list[SyncConnection], payload: bytes, duration: float
    ) -> tuple[int, float]:
        """Round trips, all connections together, and the seconds they took."""
        if len(connections) == 1:
            send, recv, _ = connections[0]
            start = perf_counter()
            count = _sync_echo_loop(send, recv, payload, start + duration)
            return count, perf_counter() - start
        if self.pool is None or self.threads != len(connections):
            self.shutdown()
            self.pool = ThreadPoolExecutor(len(connections), "client")
            self.threads = len(connections)
        start = perf_counter()
        deadline = start + duration
        futures = [
            self.pool.submit(_sync_echo_loop, send, recv, payload, deadline)
            for send, recv, _ in connections
        ]
        count = sum(future.result() for future in futures)
        return count, perf_counter() - start

    def pipeline(
        self, connection: SyncConnection, payload: bytes, window: int, duration: float
    ) -> tuple[int, float]:
        send, recv, _ = connection
        start = perf_counter()
        deadline = start + duration
        count = 0
        for _ in range(window):
            send(payload)
        in_flight = window
        while in_flight:
            recv()
            in_flight -= 1
            count += 1
            if count + in_flight < MAX_COUNT and perf_counter() < deadline:
                send(payload)
                in_flight += 1
        return count, perf_counter() - start

    def close(self, connections: list[SyncConnection]) -> None:
        for _, _, close in connections:
            try:
                close()
            except Exception:  # the figures are taken: close as well as may be
                pass

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None


def _sync_echo_loop(
    send: Callable[[bytes], Any], recv: Callable[[], Any], payload: bytes, deadline: float
) -> int:
    count = 0
    while count < MAX_COUNT:
        send(payload)
        recv()
        count += 1
        if perf_counter() >= deadline:
            break
    return count


def open_socketeer_sync(uri: str) -> SyncConnection:
    from socketeer.sync import connect

    ws = connect(uri, compression=None, max_size=MAX_MESSAGE)
    return ws.send, ws.recv, ws.close


def open_websockets_sync(uri: str) -> SyncConnection:
    try:
        from websockets.sync.client import connect
    except ImportError as exc:
        raise MissingError(f"websockets>=11 is not installed ({exc})") from exc
    # Entered as a context manager, as websockets 17.1 and later want (else they warn);
    # ws.close() does what leaving it would.
    ws = connect(uri, compression=None, max_size=MAX_MESSAGE).__enter__()
    return ws.send, ws.recv, ws.close


def open_websocket_client(uri: str) -> SyncConnection:
    # websocket-client has neither compression nor a message size limit to set.
    try:
        import websocket
    except ImportError as exc:
        raise MissingError(f"websocket-client is not installed ({exc})") from exc
    ws = websocket.create_connection(uri)
    return ws.send_binary, ws.recv, ws.close


def sync_library(name: str) -> SyncLibrary:
    if name == "socketeer-sync":
        return SyncLibrary(open_socketeer_sync)
    if name == "websockets-sync":
        return SyncLibrary(open_websockets_sync)
    return SyncLibrary(open_websocket_client)


def library(name: str) -> AsyncLibrary | CallbackLibrary:
    if name == "socketeer":
        return AsyncLibrary(open_socketeer)
    if name == "websockets":
        return AsyncLibrary(open_websockets)
    if name == "aiohttp":
        return AsyncLibrary(AiohttpOpener())
    if name == "socketeer-handler":
        return CallbackLibrary(open_socketeer_handler)
    if name == "picows":
        return CallbackLibrary(open_picows)
    if name == "raw-protocol":
        return CallbackLibrary(raw_opener(RawProtocolPeer))
    return CallbackLibrary(raw_opener(RawBufferedPeer))


def parse_test(test: str) -> tuple[str, list[int]]:
    kind, *numbers = test.split(":")
    return kind, [int(n) for n in numbers]


def run_time(pid: int | None, threads: bool = False) -> int | None:
    """Nanoseconds the main thread of process ``pid`` ran on a CPU (Linux), or None.

    Unlike rates, CPU time per message hardly depends on where the processes run or on what
    else runs on the machine. With ``threads``, the time of all the threads: of this
    process, all it ever had (:data:`time.CLOCK_PROCESS_CPUTIME_ID`, the same count); of
    another, those alive now.
    """
    if pid is None:
        return None
    if threads and pid == os.getpid() and hasattr(time, "CLOCK_PROCESS_CPUTIME_ID"):
        return time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID)
    paths = [f"/proc/{pid}/schedstat"]
    if threads:
        try:
            paths = [
                f"/proc/{pid}/task/{task}/schedstat" for task in os.listdir(f"/proc/{pid}/task")
            ]
        except OSError:
            return None
    total = 0
    for path in paths:
        try:
            with open(path) as file:
                total += int(file.read().split()[0])
        except FileNotFoundError:
            if not threads:  # a thread may have ended since the listing
                return None
        except (OSError, ValueError, IndexError):
            return None
    return total


def busy_time(cpus: set[int]) -> int | None:
    """Nanoseconds these CPUs were busy, whoever ran (Linux's ``/proc/stat``), or None."""
    names = {f"cpu{cpu}" for cpu in cpus}
    total = 0
    try:
        with open("/proc/stat") as file:
            for line in file:
                name, *fields = line.split()
                if name in names:
                    ticks = [int(field) for field in fields]
                    total += sum(ticks[:8]) - ticks[3] - ticks[4]  # not idle, not iowait
    except (OSError, ValueError, IndexError):
        return None
    return total * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class Usage:
    """Per repetition: CPU µs per message of the server and of the client, and the share of
    their CPUs' time that other processes took."""

    def __init__(
        self,
        server_pid: int | None,
        server_threads: bool = False,
        client_threads: bool = False,
        client_pid: int | None = None,
    ) -> None:
        """``client_pid``: the process that sends the messages, if not this one (wsload)."""
        self.pids = {"server": server_pid, "client": client_pid or os.getpid()}
        self.threads = {"server": server_threads, "client": client_threads}
        self.cpu: dict[str, list[float | None]] = {"server": [], "client": []}
        self.others: list[float | None] = []
        self.cpus: set[int] = set()
        if server_pid is not None and hasattr(os, "sched_getaffinity"):
            self.cpus = os.sched_getaffinity(0) | os.sched_getaffinity(server_pid)
        self._runs: dict[str, int | None] = {}
        self._busy: int | None = None

    def start(self) -> None:
        self._runs = {side: run_time(pid, self.threads[side]) for side, pid in self.pids.items()}
        self._busy = busy_time(self.cpus)

    def stop(self, count: int, elapsed: float) -> None:
        ours: int | None = 0
        for side, pid in self.pids.items():
            before, after = self._runs[side], run_time(pid, self.threads[side])
            if before is None or after is None or not count:
                self.cpu[side].append(None)
                ours = None
                continue
            self.cpu[side].append((after - before) / 1000 / count)
            if ours is not None:
                ours += after - before
        busy = busy_time(self.cpus)
        if ours is None or self._busy is None or busy is None or not self.cpus:
            self.others.append(None)
            return
        share = (busy - self._busy - ours) / 1e9 / elapsed / len(self.cpus)
        self.others.append(min(max(share, 0.0), 1.0))


class Output:
    """What a load generator prints: per test, the rates, the CPU times per message and the
    others' share of its repetitions, the warm-up left out."""

    def __init__(self) -> None:
        self.results: dict[str, list[float]] = {}
        self.cpu: dict[str, dict[str, list[float | None]]] = {}
        self.others: dict[str, list[float | None]] = {}

    def add(self, test: str, rates: list[float], usage: Usage) -> None:
        """Record a test's repetitions, the first of which was the warm-up."""
        self.results[test] = rates[1:]
        self.cpu[test] = {side: values[1:] for side, values in usage.cpu.items()}
        self.others[test] = usage.others[1:]

    def json(self, **more: Any) -> dict[str, Any]:
        """The object to print, with ``more`` entries."""
        return {"results": self.results, "cpu": self.cpu, "others": self.others, **more}


async def run_tests(
    name: str,
    port: int,
    tests: list[str],
    repetitions: int,
    duration: float,
    server_pid: int | None = None,
    server_threads: bool = False,
) -> dict[str, Any]:
    lib: Any = library(name)
    uri = f"ws://127.0.0.1:{port}/"
    output = Output()
    single = None
    for test in tests:
        kind, numbers = parse_test(test)
        payload = os.urandom(numbers[0])
        if kind == "concurrent":
            connections = await lib.connect(uri, numbers[1])
        else:
            if single is None:
                single = await lib.connect(uri, 1)
            connections = single
        await lib.check(connections[0], len(payload))
        rates = []
        usage = Usage(server_pid, server_threads)
        for seconds in [WARMUP] + [duration] * repetitions:
            usage.start()
            if kind == "pipeline":
                count, elapsed = await lib.pipeline(connections[0], payload, numbers[1], seconds)
            else:
                count, elapsed = await lib.echo(connections, payload, seconds)
            usage.stop(count, elapsed)
            rates.append(count / elapsed)
        output.add(test, rates, usage)
        if kind == "concurrent":
            await lib.close(connections)
    if single is not None:
        await lib.close(single)
    session = getattr(lib.open, "session", None)
    if session is not None:
        await session.close()
    return output.json()


def run_sync_tests(
    name: str,
    port: int,
    tests: list[str],
    repetitions: int,
    duration: float,
    server_pid: int | None = None,
    server_threads: bool = False,
) -> dict[str, Any]:
    """:func:`run_tests` for a threaded client: no event loop."""
    lib = sync_library(name)
    uri = f"ws://127.0.0.1:{port}/"
    output = Output()
    single = None
    try:
        for test in tests:
            kind, numbers = parse_test(test)
            payload = os.urandom(numbers[0])
            if kind == "concurrent":
                connections = lib.connect(uri, numbers[1])
            else:
                if single is None:
                    single = lib.connect(uri, 1)
                connections = single
            lib.check(connections[0], len(payload))
            rates = []
            usage = Usage(server_pid, server_threads, client_threads=True)
            for seconds in [WARMUP] + [duration] * repetitions:
                usage.start()
                if kind == "pipeline":
                    count, elapsed = lib.pipeline(connections[0], payload, numbers[1], seconds)
                else:
                    count, elapsed = lib.echo(connections, payload, seconds)
                usage.stop(count, elapsed)
                rates.append(count / elapsed)
            output.add(test, rates, usage)
            if kind == "concurrent":
                lib.close(connections)
        if single is not None:
            lib.close(single)
    finally:
        lib.shutdown()
    return output.json()


# The C load generator: benchmarks/wsload.c, driven through its standard input.


def build_wsload(binary: Path = WSLOAD_BINARY) -> Path:
    """The wsload binary, compiled first if it is missing or older than its source.

    Raises:
        MissingError: if no C compiler is found, or the compilation fails.
    """
    if binary.exists() and binary.stat().st_mtime >= WSLOAD_SOURCE.stat().st_mtime:
        return binary
    names = [os.environ["CC"]] if os.environ.get("CC") else COMPILERS
    compiler = next((path for path in map(shutil.which, names) if path is not None), None)
    if compiler is None:
        raise MissingError(f"no C compiler to build wsload (tried {', '.join(names)})")
    binary.parent.mkdir(exist_ok=True)
    # Built beside, then renamed: a client started meanwhile never runs half a binary.
    partial = binary.with_name(f"{binary.name}.{os.getpid()}")
    command = [compiler, "-O2", "-std=c99", "-Wall", "-Wextra", "-o", str(partial)]
    try:
        done = subprocess.run(
            [*command, str(WSLOAD_SOURCE)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=WSLOAD_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MissingError(f"{compiler} could not build wsload: {exc}") from exc
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        output = done.stdout.decode(errors="replace").strip()
        raise MissingError(f"{compiler} could not build wsload: {output}")
    os.replace(partial, binary)
    return binary


class WsloadProcess:
    """A running wsload: one command, one line of answer."""

    def __init__(self, port: int) -> None:
        binary = build_wsload()
        self.process = subprocess.Popen(
            [str(binary), str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.connections = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def command(self, line: str) -> list[str]:
        """Send a command; its answer, split into words.

        Raises:
            RuntimeError: if wsload failed (it says why on its standard error, which is ours).
        """
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # wsload is gone: readline() tells
        answer = self.process.stdout.readline()
        if not answer:
            code = self.process.wait(WSLOAD_TIMEOUT)
            raise RuntimeError(f"wsload failed on {line!r} with exit code {code}")
        return answer.split()

    def open(self, count: int) -> None:
        """Have exactly ``count`` connections open."""
        if self.connections == count:
            return
        if self.connections:
            self.command("close")
        self.command(f"connect {count}")
        self.connections = count

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # wsload exits at the end of its input
        try:
            self.process.wait(WSLOAD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_wsload_tests(
    port: int,
    tests: list[str],
    repetitions: int,
    duration: float,
    server_pid: int | None = None,
    server_threads: bool = False,
) -> dict[str, Any]:
    """:func:`run_tests` with wsload: the same tests and output, plus the latencies."""
    wsload = WsloadProcess(port)
    output = Output()
    latency: dict[str, dict[str, list[float]]] = {}
    try:
        for test in tests:
            kind, numbers = parse_test(test)
            wsload.open(numbers[1] if kind == "concurrent" else 1)
            rates: list[float] = []
            percentiles: dict[str, list[float]] = {"p50": [], "p99": []}
            usage = Usage(server_pid, server_threads, client_pid=wsload.pid)
            for seconds in [WARMUP] + [duration] * repetitions:
                if kind == "pipeline":
                    line = f"pipeline {numbers[0]} {numbers[1]} {seconds} {MAX_COUNT}"
                else:
                    line = f"echo {numbers[0]} {seconds} {MAX_COUNT}"
                usage.start()
                count, elapsed, p50, p99 = wsload.command(line)
                usage.stop(int(count), float(elapsed))
                rates.append(int(count) / float(elapsed))
                percentiles["p50"].append(float(p50))
                percentiles["p99"].append(float(p99))
            output.add(test, rates, usage)
            latency[test] = {name: values[1:] for name, values in percentiles.items()}
        if wsload.connections:
            wsload.command("close")
    finally:
        wsload.stop()
    return output.json(latency=latency)


# Compression on (``--compression``, for ``echo.py --compression``). A connection is
# (send, recv, close, the negotiated Sec-WebSocket-Extensions).

DeflateConnection = tuple[
    Callable[[bytes], Awaitable[Any]],
    Callable[[], Awaitable[Any]],
    Callable[[], Awaitable[Any]],
    str,
]

DEFLATE_SEED = 7692
"""Seed of the compression tests' content: the same messages on every run."""
DEFLATE_POOL = 4 * 1048576
"""Bytes of distinct messages per compression test (at most 256 messages, at least 4)."""

_FIRST_NAMES = (
    "alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy rupert "
    "sybil trent victor walter yolanda"
).split()
_DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example"]
_TAGS = "admin beta billing eu us apac mobile web trial premium support api".split()
_WORDS = (
    "the a of to and in for on with order shipped payment received account updated item "
    "price total customer delivery status pending invoice please review request new your "
    "has been was is at by from this that will be refund address changed"
).split()


def _json_record(rng: random.Random, number: int) -> dict[str, Any]:
    """A record as an API would return it: ids, names, e-mails, dates, flags, numbers, text."""
    name = f"{rng.choice(_FIRST_NAMES)}_{rng.randrange(1000)}"
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    hour, minute, second = rng.randrange(24), rng.randrange(60), rng.randrange(60)
    return {
        "id": 100_000 + 7 * number + rng.randrange(7),
        "name": name,
        "email": f"{name}@{rng.choice(_DOMAINS)}",
        "active": rng.random() < 0.8,
        "score": round(rng.uniform(0, 100), 2),
        "created": f"2024-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z",
        "tags": rng.sample(_TAGS, rng.randint(0, 3)),
        "note": " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12))),
    }


def deflate_payloads(test: str) -> list[bytes]:
    """The messages of a compression test, sent one after the other, round and round.

    ``json:SIZE``: consecutive slices of SIZE bytes of one generated JSON document, an array
    of records (:func:`_json_record`), written compact; ``random:SIZE``: random bytes. Both
    come from a fixed seed. The messages are all different, and together longer than a
    deflate window (32 KiB at most), so that context takeover never sees a message twice.
    """
    kind, numbers = parse_test(test)
    size = numbers[0]
    count = max(4, min(256, DEFLATE_POOL // size))
    rng = random.Random(f"{DEFLATE_SEED}:{test}")
    if kind == "random":
        return [rng.randbytes(size) for _ in range(count)]
    chunks: list[str] = []
    length, number = 0, 0
    while length < size * count:
        chunk = json.dumps(_json_record(rng, number), separators=(",", ":"))
        chunks.append(chunk)
        length += len(chunk) + 1
        number += 1
    document = ("[" + ",".join(chunks) + "]").encode()
    return [document[i * size : (i + 1) * size] for i in range(count)]


def _extensions(headers: Any) -> str:
    """The Sec-WebSocket-Extensions header of a handshake response, or "none"."""
    try:
        return str(headers.get("Sec-WebSocket-Extensions") or "none")
    except AttributeError:
        return "unknown"


async def open_socketeer_deflate(uri: str) -> DeflateConnection:
    import socketeer

    ws = await socketeer.connect(uri, compression="deflate", max_size=MAX_MESSAGE)
    return ws.send, ws.recv, ws.close, _extensions(getattr(ws.response, "headers", None))


async def open_websockets_deflate(uri: str) -> DeflateConnection:
    try:
        from websockets.asyncio.client import connect
    except ImportError as exc:
        raise MissingError(f"websockets>=13 is not installed ({exc})") from exc
    ws = await connect(uri, compression="deflate", max_size=MAX_MESSAGE)
    return ws.send, ws.recv, ws.close, _extensions(ws.response.headers)


async def open_aiohttp_deflate(uri: str) -> DeflateConnection:
    try:
        import aiohttp
    except ImportError as exc:
        raise MissingError(f"aiohttp is not installed ({exc})") from exc
    session = aiohttp.ClientSession()
    try:
        # compress=15: offer permessage-deflate (aiohttp's client default is 0, none).
        ws = await session.ws_connect(uri, compress=15, max_msg_size=MAX_MESSAGE)
    except BaseException:
        await session.close()
        raise

    async def close() -> None:
        try:
            await ws.close()
        finally:
            await session.close()

    # aiohttp keeps the handshake response private; the header says what was negotiated.
    headers = getattr(getattr(ws, "_response", None), "headers", None)
    return ws.send_bytes, ws.receive_bytes, close, _extensions(headers)


DEFLATE_OPENERS: dict[str, Callable[[str], Awaitable[DeflateConnection]]] = {
    "socketeer": open_socketeer_deflate,
    "websockets": open_websockets_deflate,
    "aiohttp": open_aiohttp_deflate,
}
DEFLATE_CLIENTS = list(DEFLATE_OPENERS)


async def _echo_cycle(
    send: Callable[[bytes], Awaitable[Any]],
    recv: Callable[[], Awaitable[Any]],
    payloads: list[bytes],
    duration: float,
) -> tuple[int, float]:
    """Round trips sending ``payloads`` in turn, and the seconds they took."""
    start = perf_counter()
    deadline = start + duration
    count, number = 0, len(payloads)
    while count < MAX_COUNT:
        await send(payloads[count % number])
        await recv()
        count += 1
        if perf_counter() >= deadline:
            break
    return count, perf_counter() - start


async def run_deflate_tests(
    name: str,
    port: int,
    tests: list[str],
    repetitions: int,
    duration: float,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """:func:`run_tests` with compression on: one connection, ``json:`` and ``random:`` tests."""
    if name not in DEFLATE_OPENERS:
        raise MissingError(f"{name}: no permessage-deflate to measure")
    send, recv, close, extensions = await DEFLATE_OPENERS[name](f"ws://127.0.0.1:{port}/")
    output = Output()
    try:
        for test in tests:
            payloads = deflate_payloads(test)
            await send(payloads[0])
            data = await recv()
            if data != payloads[0]:
                raise RuntimeError(
                    f"sent {len(payloads[0])} bytes, got {len(data)} other bytes back"
                )
            rates = []
            # All the threads: aiohttp compresses big messages in its loop's executor.
            usage = Usage(server_pid, server_threads=True, client_threads=True)
            for seconds in [WARMUP] + [duration] * repetitions:
                usage.start()
                count, elapsed = await _echo_cycle(send, recv, payloads, seconds)
                usage.stop(count, elapsed)
                rates.append(count / elapsed)
            output.add(test, rates, usage)
    finally:
        await close()
    return output.json(extensions=extensions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=[*CLIENTS, WSLOAD])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="asyncio",
        help="ignored by the threaded clients and wsload",
    )
    parser.add_argument("--tests", required=True, help="e.g. echo:16,pipeline:16:64")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per repetition")
    parser.add_argument("--cpu", type=int, help="pin this process to this CPU")
    parser.add_argument("--server-pid", type=int, help="also measure the server's CPU time")
    parser.add_argument(
        "--server-threads",
        action="store_true",
        help="the server is threaded: count the CPU time of all its threads",
    )
    parser.add_argument(
        "--compression",
        action="store_true",
        help="offer permessage-deflate; tests json:SIZE and random:SIZE",
    )
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # before any thread: they all inherit it
    try:
        if args.library == WSLOAD and args.compression:
            raise MissingError("wsload does not offer permessage-deflate")
        if args.library == WSLOAD:
            output = run_wsload_tests(
                args.port,
                args.tests.split(","),
                args.repetitions,
                args.duration,
                args.server_pid,
                args.server_threads,
            )
        elif args.compression:
            output = run(
                run_deflate_tests(
                    args.library,
                    args.port,
                    args.tests.split(","),
                    args.repetitions,
                    args.duration,
                    args.server_pid,
                ),
                args.loop,
            )
        elif args.library in SYNC_CLIENTS:
            output = run_sync_tests(
                args.library,
                args.port,
                args.tests.split(","),
                args.repetitions,
                args.duration,
                args.server_pid,
                args.server_threads,
            )
        else:
            output = run(
                run_tests(
                    args.library,
                    args.port,
                    args.tests.split(","),
                    args.repetitions,
                    args.duration,
                    args.server_pid,
                    args.server_threads,
                ),
                args.loop,
            )
    except MissingError as exc:
        output = {"missing": str(exc)}
    print(json.dumps(output), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
