"""RPC calls over loopback: socketeer.rpc beside a plain socketeer echo of the same size,
and beside the other Python RPC libraries; and pub/sub fan-out against python-socketio.

How much the RPC layer costs: calls per second of ``socketeer.rpc`` (``peer.call("echo",
text)`` answered by ``@rpc.method async def echo(text): return text``), next to a plain
socketeer WebSocket echo of a text message as long as the call's JSON request, over the same
setup; their ratio is the RPC layer's share.

Run with ``make bench`` (after ``benchmarks/echo.py``) or ``python benchmarks/rpc.py``;
``--quick`` runs every test on the default loop only, one short repetition, in well under a
minute, and writes no results file. The full run writes ``benchmarks/RPC_RESULTS.md``.

Method (that of ``echo.py``, whose helpers this reuses)
------------------------------------------------------

- Every server runs in a process of its own (``rpc.py serve KIND``), and so does every load
  generator (``rpc.py load KIND``); both on 127.0.0.1 only, on a free port the server picks
  and reports. The servers of an event loop run at once, and each repetition goes round
  them all, so that a slow spell of a shared machine does not hit one of them only.
- Tests: one connection with one call in flight (calls/s are round trips/s), and 100
  connections each with one call in flight (calls/s, all connections together); with a
  64-character and a 1024-character string argument, echoed back.
- Placement as in ``echo.py``: on a machine with at least two CPUs, the server and the load
  generator of a single-connection test share one CPU; for 100 connections they get one
  CPU each.
- Each figure is the median of ``--repetitions`` runs of ``--duration`` seconds (and at most
  ``echo_clients.MAX_COUNT`` calls), after a short warm-up; nothing is asserted. The CPU time
  per call of the server and of the load generator (Linux's ``/proc/PID/schedstat``) compares
  the two even when other processes compete for the CPUs.
- Both ends use compression off and a 16 MiB message size limit, as in ``echo.py``;
  everything else is the default (for RPC: orjson when installed, the default call and
  execution timeouts, the default concurrency). The plain echo sends text messages (UTF-8
  validated, as RPC's are), as long as the RPC request; the RPC response is a little shorter.
- The default event loop, and uvloop when installed (``--loop`` picks one).

Other RPC libraries (``rpc_peers.py``): **wsrpc-aiohttp** (``await client.call("echo",
text=text)`` answered by a route ``async def echo(socket, *, text): return text``) and
**python-socketio** (``await client.call("echo", text)``, an event answered with an
acknowledgement by a handler that returns its argument; websocket transport only), both
served on aiohttp, run the same tests the same way, interleaved with socketeer's, with the
same string argument (their requests are a little longer or shorter: the report says how
long). Their tables put socketeer.rpc beside them: calls/s, and the CPU time per call of the
server. A library that is not installed, or does not run here, is n/a, with the reason.

Pub/sub fan-out (``rpc_fanout.py``, whose docstring is the method): socketeer's
``Rooms.publish`` of a 256-character text to a room of 1,000 members (RPC peers, the
comparable case, and plain connections) against python-socketio's ``emit(..., room=...)``
to 1,000 Socket.IO clients in a room; deliveries per second, and the CPU time of the server
per publication. ``--sections calls`` or ``--sections pubsub`` runs one part only, and
``--only rpc,wsrpc`` some of the RPC kinds only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echo import (
    TUNED_MALLOC,
    Failed,
    Placement,
    ServerProcess,
    cpu_model,
    format_ratio,
    format_size,
    load_average,
    placement,
    run_load_generator,
    version,
)
from echo_clients import MAX_COUNT, OPEN_BATCH, WARMUP, Usage, parse_test
from echo_servers import (
    LOOPS,
    MAX_MESSAGE,
    MissingError,
    Stop,
    new_event_loop,
    run,
    serve_socketeer,
    stdin_closed,
)
from rpc_fanout import (
    FANOUT_KINDS,
    FanoutResults,
    fanout_header,
    fanout_notes,
    fanout_tables,
    measure_fanout,
)
from rpc_peers import PACKAGES, PEER_KINDS, PEER_OPENERS, PEER_SERVERS
from rpc_peers import request_size as peer_request_size

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RPC_RESULTS.md"

KINDS = {"rpc": "socketeer.rpc", "plain": "plain echo"}
"""What is measured: the RPC layer, and the plain socketeer echo it is compared with; the
other RPC libraries are in :data:`rpc_peers.PEER_KINDS`, with tables of their own."""
BASE = "plain"
"""The ratios are to this one."""
TITLES = {**KINDS, **PEER_KINDS}
"""Every kind measured: socketeer's two, then the other RPC libraries (``rpc_peers.py``)."""
SECTIONS = ["calls", "pubsub"]
CONNECTIONS = 100
SIZES = [64, 1024]
TESTS = [f"call:{size}" for size in SIZES] + [f"concurrent:{size}:{CONNECTIONS}" for size in SIZES]
METHOD = "echo"


def request_size(size: int) -> int:
    """Characters of the JSON request of a call with a string argument of ``size``.

    Counted with a five-digit id; the id grows with the calls of a connection, so a request
    is a few characters shorter or longer than that.
    """
    from socketeer.rpc import Request, serialize

    return len(serialize(Request(METHOD, ("x" * size,), 10000)))


def response_size(size: int) -> int:
    from socketeer.rpc import Response, serialize

    return len(serialize(Response(10000, "x" * size)))


def test_title(test: str) -> str:
    kind, numbers = parse_test(test)
    where = "1 connection" if kind == "call" else f"{numbers[1]} connections"
    size = numbers[0]
    return f"{where}, {format_size(size)} string ({request_size(size)} B request)"


# Servers: one process per kind, ``rpc.py serve KIND --loop LOOP``.


async def serve_rpc() -> tuple[int, Stop]:
    import socketeer
    import socketeer.rpc

    rpc = socketeer.rpc.RPC()

    @rpc.method
    async def echo(text: str) -> str:
        return text

    server = await socketeer.serve(rpc, "127.0.0.1", 0, compression=None, max_size=MAX_MESSAGE)
    return server.sockets[0].getsockname()[1], server.close


SERVERS: dict[str, Callable[[], Awaitable[tuple[int, Stop]]]] = {
    "rpc": serve_rpc,
    "plain": serve_socketeer,  # echo.py's socketeer server: text comes back as text
    **PEER_SERVERS,
}


async def serve(kind: str) -> None:
    """Print ``port N``, then serve until standard input closes (``echo_servers``' way)."""
    try:
        port, stop = await SERVERS[kind]()
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
        return
    print(f"port {port}", flush=True)
    await stdin_closed()
    try:
        await asyncio.wait_for(stop(), 2.0)
    except (asyncio.TimeoutError, OSError):
        pass


class KindServer(ServerProcess):
    """``echo.ServerProcess`` (start, pin, stop) running this file's servers."""

    def command(self) -> list[str]:
        return [sys.executable, __file__, "serve", self.library, "--loop", self.loop]


# Load generators: ``rpc.py load KIND --port N --tests ...``; one JSON line on stdout, as
# ``echo_clients.py`` prints.

Call = Callable[[str], Awaitable[Any]]
"""One round trip: send the text (or call with it) and return what came back."""
Connection = tuple[Call, Callable[[], Awaitable[Any]]]


async def open_rpc(uri: str) -> Connection:
    import socketeer.rpc

    peer = await socketeer.rpc.connect(uri, compression=None, max_size=MAX_MESSAGE)

    async def call(text: str) -> Any:
        return await peer.call(METHOD, text)

    return call, peer.close


async def open_plain(uri: str) -> Connection:
    import socketeer

    ws = await socketeer.connect(uri, compression=None, max_size=MAX_MESSAGE)

    async def call(text: str) -> Any:
        await ws.send(text)
        return await ws.recv()

    return call, ws.close


OPENERS: dict[str, Callable[[str], Awaitable[Connection]]] = {
    "rpc": open_rpc,
    "plain": open_plain,
    **PEER_OPENERS,
}


def argument(kind: str, size: int) -> str:
    """What a call sends: a string of ``size`` for RPC (every library), text as long as
    socketeer.rpc's request for the plain echo."""
    length = request_size(size) if kind == BASE else size
    return (os.urandom(length // 2 + 1).hex())[:length]  # no JSON escapes


async def open_connections(kind: str, uri: str, count: int) -> list[Connection]:
    connections: list[Connection] = []
    while len(connections) < count:
        batch = min(OPEN_BATCH, count - len(connections))
        connections += await asyncio.gather(*(OPENERS[kind](uri) for _ in range(batch)))
    return connections


async def call_loop(call: Call, text: str, deadline: float) -> int:
    count = 0
    while count < MAX_COUNT:
        await call(text)
        count += 1
        if time.perf_counter() >= deadline:
            break
    return count


async def calls(connections: list[Connection], text: str, duration: float) -> tuple[int, float]:
    """Calls, all connections together, each with one in flight, and the seconds they took."""
    start = time.perf_counter()
    deadline = start + duration
    counts = await asyncio.gather(*(call_loop(call, text, deadline) for call, _ in connections))
    return sum(counts), time.perf_counter() - start


async def load(
    kind: str,
    port: int,
    tests: list[str],
    repetitions: int,
    duration: float,
    server_pid: int | None,
) -> dict[str, Any]:
    uri = f"ws://127.0.0.1:{port}/"
    results: dict[str, list[float]] = {}
    cpu: dict[str, dict[str, list[float | None]]] = {}
    others: dict[str, list[float | None]] = {}
    single: list[Connection] | None = None
    for test in tests:
        name, numbers = parse_test(test)
        if name == "concurrent":
            connections = await open_connections(kind, uri, numbers[1])
        else:
            if single is None:
                single = await open_connections(kind, uri, 1)
            connections = single
        text = argument(kind, numbers[0])
        answer = await connections[0][0](text)
        if answer != text:
            raise RuntimeError(f"{kind}: sent {len(text)} characters, got {answer!r:.60} back")
        rates = []
        usage = Usage(server_pid)
        for seconds in [WARMUP] + [duration] * repetitions:
            usage.start()
            count, elapsed = await calls(connections, text, seconds)
            usage.stop(count, elapsed)
            rates.append(count / elapsed)
        results[test] = rates[1:]  # not the warm-up
        cpu[test] = {side: values[1:] for side, values in usage.cpu.items()}
        others[test] = usage.others[1:]
        if name == "concurrent":
            await asyncio.gather(*(close() for _, close in connections), return_exceptions=True)
    if single is not None:
        await single[0][1]()
    return {"results": results, "cpu": cpu, "others": others}


def run_load(
    kind: str,
    port: int,
    loop: str,
    tests: list[str],
    duration: float,
    cpu: int | None,
    server_pid: int | None,
) -> dict[str, Any]:
    """Run a load-generator process for one repetition of ``tests``; its JSON output."""
    command = [sys.executable, __file__, "load", kind, "--port", str(port), "--loop", loop]
    command += ["--tests", ",".join(tests), "--duration", str(duration)]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    if server_pid is not None:
        command += ["--server-pid", str(server_pid)]
    timeout = 60 + len(tests) * (duration + 1) * 4  # each test is bounded: this catches a hang
    output = run_load_generator(command, timeout, f"{kind} load generator")
    if "missing" in output:
        raise Failed(output["missing"])
    return output


# Measuring


@dataclass
class Results:
    loops: list[str]
    tests: list[str]
    kinds: list[str] = field(default_factory=lambda: list(TITLES))
    """The kinds measured (``--only``)."""
    rates: dict[tuple[str, str, str], list[float] | str] = field(default_factory=dict)
    """(loop, kind, test) → calls/s of each repetition, or why there are none."""
    cpu: dict[tuple[str, str, str, str], list[float | None]] = field(default_factory=dict)
    """(loop, kind, test, "server" or "client") → CPU µs per call, one per repetition."""
    others: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            print(f"  note: {text}", file=sys.stderr, flush=True)

    def rate(self, loop: str, kind: str, test: str) -> float | None:
        cell = self.rates.get((loop, kind, test))
        return statistics.median(cell) if isinstance(cell, list) and cell else None

    def cpu_time(self, loop: str, kind: str, test: str, side: str) -> float | None:
        known = [v for v in self.cpu.get((loop, kind, test, side), []) if v is not None]
        return statistics.median(known) if known else None


def measure_round(
    results: Results, loop: str, server: KindServer, duration: float, where: Placement
) -> None:
    """One repetition of every test against one running server."""
    kind = server.library
    single = [t for t in results.tests if not t.startswith("concurrent")]
    concurrent = [t for t in results.tests if t.startswith("concurrent")]
    for tests, (server_cpu, client_cpu) in (
        (single, where.single),
        (concurrent, where.concurrent),
    ):
        if not tests:
            continue
        try:
            server.pin(server_cpu)
            output = run_load(kind, server.port, loop, tests, duration, client_cpu, server.pid)
        except (Failed, OSError) as exc:
            for test in tests:
                results.rates.setdefault((loop, kind, test), "failed")
            results.note(f"{TITLES[kind]}, {loop}: {', '.join(tests)} failed: {exc}")
            continue
        for test in tests:
            cell = results.rates.setdefault((loop, kind, test), [])
            if isinstance(cell, list):
                cell += output["results"][test]
            for side, values in output["cpu"][test].items():
                results.cpu.setdefault((loop, kind, test, side), []).extend(values)
            results.others += [v for v in output["others"][test] if v is not None]


def measure_all(results: Results, repetitions: int, duration: float, where: Placement) -> None:
    for loop in results.loops:
        if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            results.note("uvloop: n/a, not installed (pip install -e '.[bench]')")
            continue
        running: list[KindServer] = []
        try:
            for kind in results.kinds:
                server = KindServer(kind, loop)
                try:
                    server.start()
                except (Failed, OSError) as exc:
                    results.rates.update({(loop, kind, test): "n/a" for test in results.tests})
                    results.note(f"{TITLES[kind]} server, {loop}: n/a, {exc}")
                    continue
                running.append(server)
            for repetition in range(repetitions):
                started = time.perf_counter()
                for server in running:
                    measure_round(results, loop, server, duration, where)
                print(
                    f"  {loop} loop, repetition {repetition + 1} of {repetitions}: "
                    f"{time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            for server in running:
                server.stop()


# Reporting


def format_rate(value: float | None, cell: object) -> str:
    if value is not None:
        return f"{value:,.0f}"
    return cell if isinstance(cell, str) else "n/a"


def format_cpu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def tables(results: Results) -> list[str]:
    lines: list[str] = []
    kinds = list(KINDS)
    others = [kind for kind in kinds if kind != BASE]
    for loop in results.loops:
        lines += [f"### {loop} loop", ""]
        header = " | ".join(KINDS[k] for k in kinds)
        ratios = " | ".join(f"{KINDS[k]} ÷ {KINDS[BASE]}" for k in others)
        lines.append(f"| calls/s | {header} | {ratios} |")
        lines.append("|---|" + "---:|" * (len(kinds) + len(others)))
        for test in results.tests:
            rates = {k: results.rate(loop, k, test) for k in kinds}
            cells = [format_rate(rates[k], results.rates.get((loop, k, test))) for k in kinds]
            cells += [format_ratio(rates[k], rates[BASE]) for k in others]
            lines.append(f"| {test_title(test)} | " + " | ".join(cells) + " |")
        lines += ["", "CPU time per call, in µs (server / load generator); lower is better.", ""]
        lines.append(f"| µs/call | {header} | {ratios} (server) |")
        lines.append("|---|" + "---:|" * (len(kinds) + len(others)))
        for test in results.tests:
            server = {k: results.cpu_time(loop, k, test, "server") for k in kinds}
            client = {k: results.cpu_time(loop, k, test, "client") for k in kinds}
            cells = [f"{format_cpu(server[k])} / {format_cpu(client[k])}" for k in kinds]
            cells += [format_ratio(server[k], server[BASE]) for k in others]
            lines.append(f"| {test_title(test)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += peer_tables(results)
    return lines


def peer_tables(results: Results) -> list[str]:
    """socketeer.rpc beside the other RPC libraries, with the ratios."""
    peers = [kind for kind in PEER_KINDS if kind in results.kinds]
    if not peers:
        return ["### Other RPC libraries", "", "Not measured in this run (`--only`).", ""]
    ours = "rpc"
    kinds = [ours, *peers]
    lines: list[str] = []
    for loop in results.loops:
        lines += [f"### {loop} loop: other RPC libraries", ""]
        header = " | ".join(TITLES[k] for k in kinds)
        ratios = " | ".join(f"{TITLES[ours]} ÷ {TITLES[k]}" for k in peers)
        lines.append(f"| calls/s | {header} | {ratios} |")
        lines.append("|---|" + "---:|" * (len(kinds) + len(peers)))
        for test in results.tests:
            rates = {k: results.rate(loop, k, test) for k in kinds}
            cells = [format_rate(rates[k], results.rates.get((loop, k, test))) for k in kinds]
            cells += [format_ratio(rates[ours], rates[k]) for k in peers]
            lines.append(f"| {test_title(test)} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "CPU time per call, in µs (server / load generator); the ratios are the server's, "
            f"each library's ÷ {TITLES[ours]}'s; lower µs, higher ratios are better for "
            "socketeer.",
            "",
        ]
        ratios = " | ".join(f"{TITLES[k]} ÷ {TITLES[ours]} (server)" for k in peers)
        lines.append(f"| µs/call | {header} | {ratios} |")
        lines.append("|---|" + "---:|" * (len(kinds) + len(peers)))
        for test in results.tests:
            server = {k: results.cpu_time(loop, k, test, "server") for k in kinds}
            client = {k: results.cpu_time(loop, k, test, "client") for k in kinds}
            cells = [f"{format_cpu(server[k])} / {format_cpu(client[k])}" for k in kinds]
            cells += [format_ratio(server[k], server[ours]) for k in peers]
            lines.append(f"| {test_title(test)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def spread_note(results: Results) -> str | None:
    worst: tuple[float, str] | None = None
    for (loop, kind, test), cell in results.rates.items():
        if isinstance(cell, list) and len(cell) > 1 and min(cell) > 0:
            spread = max(cell) / min(cell) - 1
            if worst is None or spread > worst[0]:
                worst = (spread, f"{test_title(test)}, {TITLES[kind]}, {loop}")
    if worst is None:
        return None
    return f"largest spread between repetitions: {worst[0]:.0%} ({worst[1]})"


def report(
    results: Results,
    where: Placement,
    repetitions: int,
    duration: float,
    seconds: float,
    load: tuple[float | None, float | None],
    fanout: FanoutResults | None = None,
) -> str:
    """The markdown report: the calls (unless ``results.kinds`` is empty), then the pub/sub
    fan-out when measured."""
    now = datetime.datetime.now().astimezone()
    names = ["socketeer", "orjson", "uvloop", "aiohttp", *PACKAGES.values(), "python-engineio"]
    if fanout is not None:
        names.append("picows")
    versions = ", ".join(f"{name} {version(name)}" for name in names)
    sizes = "; ".join(
        f"{size}-character string: request {request_size(size)} B, response "
        f"{response_size(size)} B"
        for size in SIZES
    )
    lines = [
        "# RPC benchmark",
        "",
        f"- date: {now:%Y-%m-%d %H:%M %Z}; the run took {seconds:.0f} s",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}",
    ]
    if results.kinds:
        lines += calls_header(results, where, repetitions, duration, sizes)
    if fanout is not None:
        lines += fanout_header(fanout, repetitions, duration)
    lines.append("")
    if results.kinds:
        lines += tables(results)
    if fanout is not None:
        lines += fanout_tables(fanout)
    notes = []
    before, after = load
    if before is not None and after is not None:
        busy = " (the machine was busy: figures are lower and noisier)"
        notes.append(
            f"load average (1 min) before the run: {before:.2f}, after: {after:.2f}"
            + (busy if before > (os.cpu_count() or 1) / 2 else "")
        )
    notes += results.notes
    if results.others:
        notes.append(
            "other processes on the machine took a median "
            f"{statistics.median(results.others):.0%} (at most {max(results.others):.0%}) "
            "of the benchmark's CPUs during a run; when that is high, the rates are low and "
            "noisy, and the CPU time per call is the better comparison"
        )
    spread = spread_note(results)
    if spread is not None:
        notes.append(spread)
    if fanout is not None:
        notes += fanout_notes(fanout)
    if notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def calls_header(
    results: Results, where: Placement, repetitions: int, duration: float, sizes: str
) -> list[str]:
    peers = [kind for kind in PEER_KINDS if kind in results.kinds]
    lines = [
        f'- compared: `socketeer.rpc` calls (`await peer.call("{METHOD}", text)`, answered by '
        f"an `async def {METHOD}(text): return text` method) and a plain socketeer echo "
        "(`await ws.send(text); await ws.recv()`) of a text message as long as the call's "
        f"JSON request ({sizes}); the ratio is the RPC layer's share",
    ]
    if peers:
        lines.append(
            f"- other RPC libraries, with the same string argument: {peer_summary(peers)}"
        )
    servers = "all the servers" if len(results.kinds) > 2 else "both servers"
    lines += [
        f"- placement: {describe(where)}",
        f"- method: a server process and a load-generator process over 127.0.0.1; medians of "
        f"{repetitions} runs of {duration:g} s each after a warm-up, the runs of {servers} "
        "interleaved; each connection has one call in flight (calls/s: all connections "
        "together); compression off; message size limit 16 MiB; everything else is the "
        "default",
    ]
    return lines


def peer_summary(peers: list[str]) -> str:
    """What the other RPC libraries do, and how long their requests are."""
    calls = {
        "wsrpc": '`await client.call("echo", text=text)` (`WSRPCClient`), answered by a route '
        "`async def echo(socket, *, text): return text` (`WebSocketAsync` on aiohttp)",
        "socketio": '`await client.call("echo", text)` (`socketio.AsyncClient`, websocket '
        "transport), answered by the acknowledgement of an `echo` event handler that returns "
        "its argument (`socketio.AsyncServer` on aiohttp, websocket transport); message size "
        "limits: their defaults",
    }
    parts = []
    for kind in peers:
        sizes = [peer_request_size(kind, size) for size in SIZES]
        known = ", ".join(
            f"{size}-character string: {'n/a' if length is None else f'{length} B'}"
            for size, length in zip(SIZES, sizes, strict=True)
        )
        parts.append(f"{TITLES[kind]}, {calls[kind]} (requests: {known})")
    return "; ".join(parts)


def describe(where: Placement) -> str:
    """``Placement.description`` speaks of echo.py's 200 clients: the same, for 100."""
    (server, client), (busy_server, load_generator) = where.single, where.concurrent
    if server is None:
        return "not pinned"
    if server == client == busy_server == load_generator:
        return f"everything on CPU {server}"
    return (
        f"1 connection: server and load generator both on CPU {server}; {CONNECTIONS} "
        f"connections: server on CPU {busy_server}, load generator on CPU {load_generator}"
    )


# Entry points


def main_serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="an RPC benchmark server (rpc.py runs it)")
    parser.add_argument("kind", choices=list(SERVERS))
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    args = parser.parse_args(argv)
    try:
        new_event_loop(args.loop).close()
    except MissingError as exc:
        print(f"missing {exc}", flush=True)
        return 0
    run(serve(args.kind), args.loop)
    return 0


def main_load(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="an RPC load generator (rpc.py runs it)")
    parser.add_argument("kind", choices=list(OPENERS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--tests", required=True, help="e.g. call:64,concurrent:64:100")
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per repetition")
    parser.add_argument("--cpu", type=int, help="pin this process to this CPU")
    parser.add_argument("--server-pid", type=int, help="also measure the server's CPU time")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    tests = args.tests.split(",")
    try:
        output = run(
            load(args.kind, args.port, tests, args.repetitions, args.duration, args.server_pid),
            args.loop,
        )
    except MissingError as exc:
        output = {"missing": str(exc)}
    print(json.dumps(output), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return main_serve(argv[1:])
    if argv[:1] == ["load"]:
        return main_load(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every test, briefly, one loop")
    parser.add_argument("--repetitions", type=int, help="runs per figure (3; 1 with --quick)")
    parser.add_argument("--duration", type=float, help="seconds per run (1; 0.5 with --quick)")
    parser.add_argument("--loop", choices=LOOPS, help="only this event loop")
    parser.add_argument(
        "--output", type=Path, help=f"write the results as markdown (default: {RESULTS.name})"
    )
    parser.add_argument(
        "--tuned-malloc",
        action="store_true",
        help="glibc's mmap and trim thresholds at 1 GiB, as echo.py's option",
    )
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        help=f"only these RPC kinds, e.g. rpc,wsrpc (of {','.join(TITLES)})",
    )
    parser.add_argument(
        "--sections",
        type=lambda text: text.split(","),
        default=SECTIONS,
        help="calls (RPC), pubsub (fan-out), or both (the default): calls,pubsub",
    )
    args = parser.parse_args(argv)
    unknown = [kind for kind in args.only or [] if kind not in TITLES]
    unknown += [section for section in args.sections if section not in SECTIONS]
    if unknown:
        parser.error(
            f"unknown {', '.join(unknown)} (kinds: {', '.join(TITLES)}; sections: "
            f"{', '.join(SECTIONS)})"
        )
    if args.tuned_malloc:
        os.environ.update(TUNED_MALLOC)  # inherited by every server and load generator
    loops = [args.loop] if args.loop else (["asyncio"] if args.quick else list(LOOPS))
    repetitions = args.repetitions or (1 if args.quick else 3)
    duration = args.duration or (0.5 if args.quick else 1.0)
    output = args.output or (None if args.quick else RESULTS)
    where = placement("same")
    kinds = [kind for kind in TITLES if kind in (args.only or TITLES)]
    results = Results(loops, list(TESTS), kinds if "calls" in args.sections else [])
    fanout = FanoutResults(loops, list(FANOUT_KINDS)) if "pubsub" in args.sections else None
    print(f"RPC benchmark ({describe(where)})", file=sys.stderr, flush=True)
    before = load_average()
    started = time.perf_counter()
    if results.kinds:
        measure_all(results, repetitions, duration, where)
    if fanout is not None:
        measure_fanout(fanout, repetitions, duration)
    seconds = time.perf_counter() - started
    load = (before, load_average())
    text = report(results, where, repetitions, duration, seconds, load, fanout)
    print(text)
    if output is not None:
        output.write_text(text)
        print(f"(written to {output})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
