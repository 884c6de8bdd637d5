"""Pub/sub fan-out for ``benchmarks/rpc.py``: one publication, 1,000 members, many times.

What is compared: socketeer's ``await rooms.publish(room, text)`` (:class:`socketeer.pubsub.Rooms`,
in-memory broker, default options) to a room of 1,000 RPC peers (``$/room/join``; each gets
a ``$/room/message`` notification), the comparable case, and to 1,000 plain connections
(each gets the text as it is), against python-socketio's ``await sio.emit("message", text,
room=room)`` to 1,000 Socket.IO clients in a room (``enter_room`` when they connect;
websocket transport only, on aiohttp). The published text is 256 characters (ASCII).

Method
------

- The server runs in a process of its own (``rpc_fanout.py serve KIND``), pinned to one CPU;
  it publishes when told to on its standard input (a line with a number: publish that many
  times, one after the other), from the server's own code, as an application would; it
  stops when its standard input closes.
- The members are 2 to 4 processes (``rpc_fanout.py members KIND``), pinned to the other
  CPUs (to the one other CPU on a machine with two), each holding its share of the 1,000
  connections, made with picows (callbacks, no per-message coroutine: the cheapest client we
  know, so that the figures are the server's as much as they can be; the same client for
  every server). They join the room as the server's protocol wants (a JSON-RPC
  ``$/room/join`` request; nothing, for plain connections, which the server joins; the
  Engine.IO and Socket.IO handshakes, then Engine.IO pongs), count the publications each
  connection receives without decoding them, and write a line on their standard output once
  every connection of theirs has received publication N.
- This process (the driver) keeps at most :data:`WINDOW` publications in flight: published
  but not yet received by every member. It publishes for ``--duration`` seconds (at most
  :data:`MAX_PUBLICATIONS`), waits for what is in flight, and divides: deliveries per second
  (publications x members / seconds) and publications per second; the CPU time of the server
  per publication and of the member processes per delivery (Linux's ``/proc/PID/schedstat``,
  all threads). Nothing is ever lost or dropped when all goes well: a connection lost, or a
  publication not received within :data:`WAIT_TIMEOUT` seconds, fails that server's figures.
- The servers of an event loop and their members all run at once (3,000 member connections
  in all), and each repetition goes round them, so that a slow spell of a shared machine
  does not hit one of them only. Medians of the repetitions, after a warm-up.
- Compression off everywhere (the members do not offer it), everything else is each
  library's default: socketeer's Rooms keep a history (100 publications, 5 minutes) and
  close members more than ``write_limit`` behind (none is, with the window).

Deliveries per second depend on the members too: on a machine with two CPUs, the member
processes share one CPU while the server has the other, and receiving costs about as much as
sending. The CPU time of the server per publication is the figure that compares the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import selectors
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from echo import Failed, ServerProcess, format_ratio
from echo_clients import OPEN_BATCH, WARMUP, busy_time, run_time
from echo_servers import LOOPS, MAX_LIFETIME, MissingError, Stop, new_event_loop, run, stdin_closed
from rpc_peers import serve_aiohttp

__all__ = [
    "FANOUT_BASE",
    "FANOUT_KINDS",
    "FanoutResults",
    "fanout_header",
    "fanout_notes",
    "fanout_tables",
    "measure_fanout",
]

FANOUT_KINDS = {
    "rooms-rpc": "socketeer Rooms, RPC peers",
    "rooms-plain": "socketeer Rooms, plain connections",
    "socketio": "python-socketio, emit(room=)",
}
"""What is measured, with its title."""
FANOUT_BASE = "socketio"
"""The ratios are to this one."""
COMPARED = "rooms-rpc"
"""The socketeer kind compared with :data:`FANOUT_BASE`."""
ROOM = "bench"
MEMBERS = 1000
MESSAGE_SIZE = 256
WINDOW = 8
"""Publications in flight: published, and not yet received by every member."""
MAX_PUBLICATIONS = 100_000
"""Most publications in one repetition, whatever the time."""
WAIT_TIMEOUT = 30.0
"""Seconds for every member to receive a publication before the figures fail."""
READY_TIMEOUT = 120.0
"""Seconds for the member processes to connect and join."""
STOP_TIMEOUT = 10.0
JOINED = "joined"
"""What the plain server sends a connection once it is in the room."""
JOIN_REQUEST = json.dumps(
    {"jsonrpc": "2.0", "method": "$/room/join", "params": {"room": ROOM}, "id": 1},
    separators=(",", ":"),
).encode()
SUBPROTOCOL = "socketeer.rpc.v1"


def message() -> str:
    """The text published: :data:`MESSAGE_SIZE` ASCII characters, no JSON escapes."""
    return (os.urandom(MESSAGE_SIZE // 2 + 1).hex())[:MESSAGE_SIZE]


def raise_file_limit() -> None:
    """1,000 connections need more file descriptors than a default soft limit of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * MEMBERS if hard == resource.RLIM_INFINITY else min(hard, 4 * MEMBERS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# Servers: publish() once, the port, stop().

Publish = Callable[[], Awaitable[Any]]


async def serve_rooms_rpc() -> tuple[Publish, int, Stop]:
    import socketeer
    import socketeer.rpc
    from socketeer.pubsub import Rooms

    rooms = Rooms()
    rpc = socketeer.rpc.RPC(rooms=rooms)
    server = await socketeer.serve(rpc, "127.0.0.1", 0, compression=None)
    return _rooms_publisher(rooms), server.sockets[0].getsockname()[1], _stopper(server, rooms)


async def serve_rooms_plain() -> tuple[Publish, int, Stop]:
    import socketeer
    from socketeer.pubsub import Rooms

    rooms = Rooms()

    async def handler(ws: Any) -> None:
        await rooms.join(ws, ROOM)
        await ws.send(JOINED)
        async for _ in ws:
            pass

    server = await socketeer.serve(handler, "127.0.0.1", 0, compression=None)
    return _rooms_publisher(rooms), server.sockets[0].getsockname()[1], _stopper(server, rooms)


def _rooms_publisher(rooms: Any) -> Publish:
    text = message()

    async def publish() -> None:
        await rooms.publish(ROOM, text)

    return publish


def _stopper(server: Any, rooms: Any) -> Stop:
    async def stop() -> None:
        await rooms.close()
        await server.close()

    return stop


async def serve_socketio() -> tuple[Publish, int, Stop]:
    try:
        import socketio
        from aiohttp import web
    except ImportError as exc:
        raise MissingError(f"python-socketio is not installed ({exc})") from exc
    sio = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"])

    @sio.event
    async def connect(sid: str, environ: Any) -> None:
        # Socket.IO answers the connection (40) once this returns: in the room by then.
        await sio.enter_room(sid, ROOM)

    app = web.Application()
    sio.attach(app)
    port, stop = await serve_aiohttp(web, app, sio)
    text = message()

    async def publish() -> None:
        await sio.emit("message", text, room=ROOM)

    return publish, port, stop


SERVERS: dict[str, Callable[[], Awaitable[tuple[Publish, int, Stop]]]] = {
    "rooms-rpc": serve_rooms_rpc,
    "rooms-plain": serve_rooms_plain,
    "socketio": serve_socketio,
}


async def serve(kind: str) -> None:
    """Print ``port N``, then publish as told on standard input until it closes."""
    try:
        publish, port, stop = await SERVERS[kind]()
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
        return
    print(f"port {port}", flush=True)
    loop = asyncio.get_running_loop()
    orders: asyncio.Queue[int | None] = asyncio.Queue()
    pending = bytearray()

    def readable() -> None:
        data = os.read(0, 4096)
        if not data:
            loop.remove_reader(0)
            orders.put_nowait(None)
            return
        pending.extend(data)
        *lines, rest = pending.split(b"\n")
        pending[:] = rest
        for line in lines:
            orders.put_nowait(int(line))

    loop.add_reader(0, readable)
    deadline = loop.time() + MAX_LIFETIME
    try:
        while (count := await asyncio.wait_for(orders.get(), deadline - loop.time())) is not None:
            for _ in range(count):
                await publish()
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_reader(0)
        try:
            await asyncio.wait_for(stop(), 5.0)
        except (asyncio.TimeoutError, OSError):
            pass


class FanoutServer(ServerProcess):
    """``echo.ServerProcess`` (start, pin, stop) running this file's servers."""

    published: int = 0
    """Publications asked for since the server started."""

    def command(self) -> list[str]:
        return [sys.executable, __file__, "serve", self.library, "--loop", self.loop]

    def publish(self, count: int) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(b"%d\n" % count)
        self.process.stdin.flush()
        self.published += count


# Members: picows connections that count what they receive.


class Counter:
    """Tells the driver, on standard output, when every connection of this process has
    received publication N (a line ``N``), and when one is lost (``lost``)."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.levels: dict[int, int] = {}
        self.stopping = False

    def delivered(self, count: int) -> None:
        """A connection received its publication number ``count``."""
        reached = self.levels.get(count, 0) + 1
        if reached == self.connections:
            del self.levels[count]
            os.write(1, b"%d\n" % count)
        else:
            self.levels[count] = reached

    def lost(self) -> None:
        if not self.stopping:
            os.write(1, b"lost\n")


def member_url(kind: str, port: int) -> str:
    if kind == "socketio":
        return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    return f"ws://127.0.0.1:{port}/"


def member_factory(kind: str, counter: Counter) -> Callable[[], Any]:
    import picows

    text = picows.WSMsgType.TEXT
    socketio = kind == "socketio"

    class Member(picows.WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.count = 0
            self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_ws_connected(self, transport: Any) -> None:
            self.transport = transport
            if kind == "rooms-rpc":
                transport.send(text, JOIN_REQUEST)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is not text:
                return  # picows answers pings itself
            if not self.joined.done():
                self.join(transport, frame.get_payload_as_bytes())
                return
            if socketio:
                first = frame.get_payload_as_memoryview()[0]
                if first == 0x32:  # Engine.IO ping: pong, or the server disconnects us
                    transport.send(text, b"3")
                    return
                if first != 0x34:  # not an Engine.IO message
                    return
            self.count += 1
            counter.delivered(self.count)

        def join(self, transport: Any, payload: bytes) -> None:
            """The handshake of the room, message by message."""
            if kind == "rooms-rpc":
                if b'"result"' in payload:
                    self.joined.set_result(None)
                else:
                    self.joined.set_exception(RuntimeError(f"join failed: {payload!r:.200}"))
            elif kind == "rooms-plain":
                if payload == JOINED.encode():
                    self.joined.set_result(None)
            elif payload.startswith(b"0{"):  # Engine.IO open: connect to the namespace "/"
                transport.send(text, b"40")
            elif payload.startswith(b"40"):  # Socket.IO connected: in the room
                self.joined.set_result(None)
            elif payload.startswith(b"2"):
                transport.send(text, b"3")

        def on_ws_disconnected(self, transport: Any) -> None:
            if not self.joined.done():
                self.joined.set_exception(ConnectionError("disconnected before joining"))
            counter.lost()

    return Member


async def members(kind: str, port: int, connections: int) -> None:
    """Connect and join, say ``ready``, then count until standard input closes."""
    try:
        import picows
    except ImportError as exc:
        raise MissingError(f"picows is not installed ({exc}), the members use it") from exc
    counter = Counter(connections)
    factory = member_factory(kind, counter)
    url = member_url(kind, port)
    headers = {"Sec-WebSocket-Protocol": SUBPROTOCOL} if kind == "rooms-rpc" else None
    opened: list[tuple[Any, Any]] = []
    try:
        while len(opened) < connections:
            batch = min(OPEN_BATCH, connections - len(opened))
            opened += await asyncio.gather(
                *(picows.ws_connect(factory, url, extra_headers=headers) for _ in range(batch))
            )
        await asyncio.wait_for(
            asyncio.gather(*(listener.joined for _, listener in opened)), READY_TIMEOUT
        )
        os.write(1, b"ready\n")
        await stdin_closed()
    finally:
        counter.stopping = True
        for transport, _ in opened:
            transport.disconnect()


# The driver


class Members:
    """The member processes of one server, and what each has said."""

    def __init__(self, kind: str, loop: str, port: int, cpus: list[int | None]) -> None:
        self.kind = kind
        self.processes: list[subprocess.Popen[bytes]] = []
        self.reached: list[int] = []
        self.buffers: list[bytes] = []
        shares = [MEMBERS // len(cpus) + (i < MEMBERS % len(cpus)) for i in range(len(cpus))]
        self.selector = selectors.DefaultSelector()
        try:
            for share, cpu in zip(shares, cpus, strict=True):
                command = [sys.executable, __file__, "members", kind, "--port", str(port)]
                command += ["--connections", str(share), "--loop", loop]
                if cpu is not None:
                    command += ["--cpu", str(cpu)]
                process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                self.processes.append(process)
                self.reached.append(0)
                self.buffers.append(b"")
        except BaseException:
            self.stop()
            raise
        for index, process in enumerate(self.processes):
            assert process.stdout is not None
            os.set_blocking(process.stdout.fileno(), False)
            self.selector.register(process.stdout, selectors.EVENT_READ, index)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    @property
    def completed(self) -> int:
        """Publications received by every member."""
        return min(self.reached)

    def wait_ready(self) -> None:
        ready = [False] * len(self.processes)
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(ready):
            for index, line in self._lines(deadline - time.monotonic(), "connect and join"):
                if line == "ready":
                    ready[index] = True
                elif line.startswith("missing "):
                    raise Failed(line.removeprefix("missing "))

    def wait_progress(self, timeout: float) -> None:
        """Wait until a member process says something; record it."""
        for index, line in self._lines(timeout, "receive a publication"):
            if line.isdigit():
                self.reached[index] = int(line)

    def _lines(self, timeout: float, what: str) -> list[tuple[int, str]]:
        events = self.selector.select(max(timeout, 0.0)) if timeout > 0 else []
        if not events:
            raise Failed(f"members did not {what} within the time limit")
        lines = []
        for key, _ in events:
            index = key.data
            try:
                data = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                try:
                    code: object = self.processes[index].wait(2.0)
                except subprocess.TimeoutExpired:
                    code = "none yet"
                raise Failed(f"a member process closed its output (exit code {code})")
            *complete, self.buffers[index] = (self.buffers[index] + data).split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace").strip()
                if line == "lost":
                    raise Failed("a member connection was lost")
                lines.append((index, line))
        return lines

    def stop(self) -> None:
        for process in self.processes:
            if process.stdin is not None:
                try:
                    process.stdin.close()
                except OSError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.selector.close()


@dataclass
class Fanout:
    """A running server and its members."""

    server: FanoutServer
    members: Members

    def publish_for(self, duration: float) -> tuple[int, float]:
        """Publish for ``duration`` seconds with :data:`WINDOW` in flight; wait for the
        members. The publications, and the seconds until the last was received."""
        start = time.perf_counter()
        deadline = start + duration
        first = self.server.published
        while True:
            in_flight = self.server.published - self.members.completed
            more = min(WINDOW - in_flight, first + MAX_PUBLICATIONS - self.server.published)
            if more > 0 and time.perf_counter() < deadline:
                self.server.publish(more)
            if self.members.completed >= self.server.published:
                break
            self.members.wait_progress(WAIT_TIMEOUT)
        return self.server.published - first, time.perf_counter() - start

    def stop(self) -> None:
        self.members.stop()
        self.server.stop()


@dataclass
class FanoutResults:
    loops: list[str]
    kinds: list[str]
    members: int = MEMBERS
    processes: int = 0
    """Member processes per server."""
    rates: dict[tuple[str, str], list[float] | str] = field(default_factory=dict)
    """(loop, kind) → deliveries/s of each repetition, or why there are none."""
    publications: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    """(loop, kind) → publications/s of each repetition."""
    cpu: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    """(loop, kind, "server" or "members") → server µs per publication, or members' µs per
    delivery, one per repetition."""
    others: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    placement: str = ""

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            print(f"  note: {text}", file=sys.stderr, flush=True)

    def rate(self, loop: str, kind: str) -> float | None:
        cell = self.rates.get((loop, kind))
        return statistics.median(cell) if isinstance(cell, list) and cell else None

    def value(self, loop: str, kind: str, row: str) -> float | None:
        """The median of a row of :data:`ROWS`."""
        if row == "deliveries":
            return self.rate(loop, kind)
        if row == "publications":
            values = self.publications.get((loop, kind))
        else:
            values = self.cpu.get((loop, kind, row))
        return statistics.median(values) if values else None


ROWS = {
    "deliveries": ("deliveries/s", True),
    "publications": ("publications/s", True),
    "server": ("server CPU µs per publication", False),
    "members": ("members' CPU µs per delivery", False),
}
"""The rows of the table: the title, and whether higher is better."""


def fanout_placement() -> tuple[int | None, list[int | None], str]:
    """The server's CPU, the member processes' CPUs (2 to 4 processes), and a description."""
    if not hasattr(os, "sched_setaffinity"):
        return None, [None, None], "not pinned (no sched_setaffinity here)"
    cpus = sorted(os.sched_getaffinity(0))
    server, rest = cpus[0], cpus[1:] or cpus[:1]
    count = min(4, max(2, len(rest)))
    chosen: list[int | None] = [rest[i % len(rest)] for i in range(count)]
    where = ", ".join(str(cpu) for cpu in sorted(set(rest[:count])))
    return server, chosen, f"server on CPU {server}, {count} member processes on CPU {where}"


def start(
    results: FanoutResults, loop: str, kind: str, server_cpu: int | None, cpus: list[int | None]
) -> Fanout | None:
    """A running server with its members, joined and warmed up; None when that failed."""
    server = FanoutServer(kind, loop)
    group: Members | None = None
    try:
        server.start()
        server.pin(server_cpu)
        group = Members(kind, loop, server.port, cpus)
        group.wait_ready()
        fanout = Fanout(server, group)
        fanout.publish_for(WARMUP)
        return fanout
    except BaseException as exc:
        if group is not None:
            group.stop()
        server.stop()
        if not isinstance(exc, (Failed, OSError)):
            raise
        missing = group is None or "not installed" in str(exc)
        results.rates[loop, kind] = "n/a" if missing else "failed"
        results.note(f"{FANOUT_KINDS[kind]}, {loop}: {results.rates[loop, kind]}, {exc}")
        return None


def measure_once(
    results: FanoutResults, loop: str, kind: str, fanout: Fanout, duration: float
) -> bool:
    """One repetition; False when it failed (the figures of that kind then stop)."""
    pids = [fanout.server.pid, *fanout.members.pids]
    cpus = {cpu for pid in pids if pid is not None for cpu in _affinity(pid)}
    before = [run_time(pid, threads=True) for pid in pids]
    busy, driver = busy_time(cpus), time.process_time()
    try:
        count, elapsed = fanout.publish_for(duration)
    except (Failed, OSError) as exc:
        results.rates[loop, kind] = "failed"
        results.note(f"{FANOUT_KINDS[kind]}, {loop}: failed, {exc}")
        return False
    after = [run_time(pid, threads=True) for pid in pids]
    busy_after, driver = busy_time(cpus), time.process_time() - driver
    if not count:
        return True
    deliveries = count * results.members
    cell = results.rates.setdefault((loop, kind), [])
    if isinstance(cell, list):
        cell.append(deliveries / elapsed)
    results.publications.setdefault((loop, kind), []).append(count / elapsed)
    spent = [None if b is None or a is None else a - b for b, a in zip(before, after, strict=True)]
    if spent[0] is not None:
        results.cpu.setdefault((loop, kind, "server"), []).append(spent[0] / 1000 / count)
    if all(value is not None for value in spent[1:]):
        total = sum(value for value in spent[1:] if value is not None)
        results.cpu.setdefault((loop, kind, "members"), []).append(total / 1000 / deliveries)
    if None not in spent and busy is not None and busy_after is not None and cpus:
        ours = sum(value for value in spent if value is not None) + driver * 1e9
        share = (busy_after - busy - ours) / 1e9 / elapsed / len(cpus)
        results.others.append(min(max(share, 0.0), 1.0))
    return True


def _affinity(pid: int) -> set[int]:
    try:
        return os.sched_getaffinity(pid)
    except OSError:
        return set()


def measure_fanout(results: FanoutResults, repetitions: int, duration: float) -> None:
    """Every kind on every loop; the servers of a loop run at once, the rounds interleaved."""
    server_cpu, member_cpus, results.placement = fanout_placement()
    results.processes = len(member_cpus)
    for loop in results.loops:
        try:
            new_event_loop(loop).close()
        except MissingError as exc:
            results.note(f"{loop}: n/a, {exc}")
            continue
        running: dict[str, Fanout] = {}
        try:
            for kind in results.kinds:
                fanout = start(results, loop, kind, server_cpu, member_cpus)
                if fanout is not None:
                    running[kind] = fanout
            for repetition in range(repetitions):
                started = time.perf_counter()
                for kind, fanout in list(running.items()):
                    if not measure_once(results, loop, kind, fanout, duration):
                        running.pop(kind).stop()
                print(
                    f"  fan-out, {loop} loop, repetition {repetition + 1} of {repetitions}: "
                    f"{time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            for fanout in running.values():
                fanout.stop()


# Reporting


def wire_sizes() -> str:
    """The size of one delivery on the wire, for each kind (WebSocket payloads)."""
    from socketeer.rpc import Notification, serialize

    text = "x" * MESSAGE_SIZE
    params = {"room": ROOM, "epoch": "0" * 16, "offset": 12345, "data": text}
    sizes = {
        "rooms-rpc": len(serialize(Notification("$/room/message", params))),
        "rooms-plain": MESSAGE_SIZE,
        # Engine.IO message (4), Socket.IO event (2), ["message", text]
        "socketio": len("42" + json.dumps(["message", text], separators=(",", ":"))),
    }
    return ", ".join(f"{FANOUT_KINDS[kind]} {size} B" for kind, size in sizes.items())


def fanout_header(results: FanoutResults, repetitions: int, duration: float) -> list[str]:
    return [
        f"- pub/sub fan-out: a {MESSAGE_SIZE}-character text published to a room of "
        f"{results.members:,} members: socketeer's `await rooms.publish(room, text)` "
        "(in-memory broker, default options) to RPC peers (each gets a `$/room/message` "
        "notification) and to plain connections (each gets the text), against "
        'python-socketio\'s `await sio.emit("message", text, room=room)` (aiohttp, websocket '
        "transport); published by the server's own code when the driver says so, at most "
        f"{WINDOW} publications in flight (published, not yet received by every member); "
        f"one delivery on the wire: {wire_sizes()}",
        f"- pub/sub placement: {results.placement or 'not measured'}; the members are picows "
        "connections that count what they receive without decoding it (the same for every "
        f"server); medians of {repetitions} runs of {duration:g} s each after a warm-up, the "
        "runs of all the servers interleaved",
    ]


def fanout_tables(results: FanoutResults) -> list[str]:
    kinds = [kind for kind in FANOUT_KINDS if kind in results.kinds]
    compare = COMPARED in kinds and FANOUT_BASE in kinds
    lines: list[str] = []
    for loop in results.loops:
        title = f"{results.members:,} members, {MESSAGE_SIZE} B"
        header = " | ".join(FANOUT_KINDS[kind] for kind in kinds)
        ratio = f"{FANOUT_KINDS[COMPARED]} vs {FANOUT_KINDS[FANOUT_BASE]}" if compare else ""
        lines += [f"### {loop} loop: pub/sub fan-out", ""]
        lines.append(f"| {title} | {header} |" + (f" {ratio} |" if compare else ""))
        lines.append("|---|" + "---:|" * (len(kinds) + compare))
        for row, (name, higher) in ROWS.items():
            cells = []
            for kind in kinds:
                number = results.value(loop, kind, row)
                if number is None:
                    cell = results.rates.get((loop, kind))
                    cells.append(cell if isinstance(cell, str) else "n/a")
                else:
                    cells.append(f"{number:,.0f}" if number >= 100 else f"{number:,.2f}")
            if compare:
                ours = results.value(loop, COMPARED, row)
                theirs = results.value(loop, FANOUT_BASE, row)
                cells.append(
                    f"{format_ratio(ours, theirs)}×"
                    if higher
                    else f"{format_ratio(theirs, ours)}×"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if compare:
        lines += [
            f"The last column: {FANOUT_KINDS[COMPARED]} ÷ {FANOUT_KINDS[FANOUT_BASE]} for the "
            "rates, and the other way round for the CPU times; higher is better for socketeer.",
            "",
        ]
    return lines


def fanout_notes(results: FanoutResults) -> list[str]:
    notes = list(results.notes)
    if results.others:
        notes.append(
            "pub/sub: other processes took a median "
            f"{statistics.median(results.others):.0%} (at most {max(results.others):.0%}) of "
            "the pinned CPUs during a run"
        )
    return notes


# Entry points


def main_serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="a fan-out server (rpc.py runs it)")
    parser.add_argument("kind", choices=list(SERVERS))
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    args = parser.parse_args(argv)
    raise_file_limit()
    try:
        new_event_loop(args.loop).close()
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
        return 0
    run(serve(args.kind), args.loop)
    return 0


def main_members(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="fan-out members (rpc.py runs them)")
    parser.add_argument("kind", choices=list(SERVERS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--cpu", type=int, help="pin this process to this CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    raise_file_limit()
    try:
        run(members(args.kind, args.port, args.connections), args.loop)
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``serve`` and ``members`` for rpc.py; else the fan-out alone, printed (no file)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return main_serve(argv[1:])
    if argv[:1] == ["members"]:
        return main_members(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short run, one loop")
    parser.add_argument("--repetitions", type=int, help="runs per figure (3; 1 with --quick)")
    parser.add_argument("--duration", type=float, help="seconds per run (1; 0.5 with --quick)")
    parser.add_argument("--loop", choices=LOOPS, help="only this event loop")
    args = parser.parse_args(argv)
    loops = [args.loop] if args.loop else (["asyncio"] if args.quick else list(LOOPS))
    repetitions = args.repetitions or (1 if args.quick else 3)
    duration = args.duration or (0.5 if args.quick else 1.0)
    results = FanoutResults(loops, list(FANOUT_KINDS))
    measure_fanout(results, repetitions, duration)
    lines = ["# Pub/sub fan-out", ""] + fanout_header(results, repetitions, duration) + [""]
    lines += fanout_tables(results)
    notes = fanout_notes(results)
    if notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in notes] + [""]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
