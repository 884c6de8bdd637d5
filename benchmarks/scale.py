"""Scale over loopback: broadcast to many clients, connection setup, memory per idle connection.

socketeer against websockets, picows and aiohttp, as servers, on the default event loop and
on uvloop.

Run with ``make bench`` (after ``benchmarks/echo.py``) or ``python benchmarks/scale.py``;
``--quick`` runs a smaller version of every test in under a minute (the default loop, one
repetition, fewer connections) and writes no results file unless ``--output`` says where.
The full run writes ``benchmarks/SCALE_RESULTS.md``.

Method
------

- Every server runs in a process of its own (``scale_servers.py``), and so does every load
  generator (``scale_clients.py``); they listen and connect on 127.0.0.1 only, on a free port
  the server picks and reports. The servers are driven by commands on their standard input
  and answer on their standard output; this script measures their CPU time from Linux's
  ``/proc/PID/schedstat`` (all their threads), and their memory from ``/proc/PID/status``.
- Placement: on a machine with at least two CPUs, each server is pinned to the first CPU
  and every load generator to the last one (``os.sched_setaffinity``), so that the clients'
  work does not count in the server's time, nor slow it down directly.
- **Broadcast**: :data:`CLIENTS` connections (in :data:`LOAD_PROCESSES` load generators of the
  fixed client, picows, or socketeer when picows is not installed) to each server, compression
  off. Each repetition does a *burst*: :data:`BURST` broadcasts of a :data:`MESSAGE_SIZE`-byte
  binary message one after the other (the server yields to its event loop between two), timed
  from just before the first call, on the server's clock, until every load generator counted
  all of its messages (``time.monotonic``, one clock for every process on Linux): broadcasts/s
  = :data:`BURST` ÷ that time; and :data:`SINGLES` broadcasts one at a time, each timed from
  the call until the last client got it (ms). The server's CPU time per broadcast is taken
  over the burst, which is nothing but broadcasting. The load generators do the same work
  whatever the server, and share one CPU: when they are the bottleneck, the rates of the
  fastest servers come together, and the CPU time per broadcast tells them apart.
- What "broadcast" means for each library: see :data:`BROADCAST_HOW`; socketeer and
  websockets have a broadcast function, picows and aiohttp a send per connection in a loop.
  The broadcast tables have one more column, ``writes`` ("one write each (limit)"), no
  library: socketeer's server with a frame built once and written to each connection's
  transport with no check at all, what one write per recipient costs on the event loop.
- **Connection setup**: the fixed client opens a connection (opening handshake) and closes it
  (closing handshake, the server closes the TCP connection), :data:`CONCURRENCIES` at a time,
  for ``--duration`` seconds (at most :data:`MAX_HANDSHAKES`) after a short warm-up:
  handshakes/s, and the server's CPU time per handshake (open + close). Compression off (the
  picows client offers none). The servers all run at once, and each repetition goes round
  every library, so that a slow spell of a shared machine does not hit one library only.
- **Memory per idle connection**: a new server per figure; a few connections opened and
  closed first (imports and caches of the first connection are not what a connection
  costs), then garbage collected and measured after a short settle; then
  :data:`CONNECTIONS` connections opened by :data:`MEMORY_PROCESSES` load generators with
  socketeer's client (which offers permessage-deflate when compression is on, and nothing
  when it is off), collected, settled and measured again. The figure is the growth of the
  server's resident set (VmRSS) divided by the connections; kernel socket buffers are not in
  it (nor is PSS used: it drops when the load generators start, as they share the
  interpreter's pages). Unless ``--quick`` or ``--no-tracemalloc``, a separate run per setting
  traces the server's Python allocations (zlib's included). With compression on,
  the servers' own objects are also asked how many zlib compressors and decompressors the
  idle connections hold (socketeer, websockets; aiohttp as far as it shows them).
- Each figure is the median of ``--repetitions`` runs; nothing is asserted. A library or a
  loop that is not installed is reported as n/a.
- The file-descriptor limit is raised to the hard limit (``RLIMIT_NOFILE``), inherited by
  every process; the script stops at once, saying so, if that is too low for the connections.
- Every server and load generator stops when this script ends, whatever way it ends: it
  closes their standard input, then kills what is left; they stop by themselves after
  ``scale_servers.MAX_LIFETIME`` too.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echo import (
    Failed,
    cpu_model,
    format_ratio,
    installed,
    load_average,
    run_load_generator,
    version,
)
from echo_clients import run_time
from scale_servers import BACKLOG, LIBRARIES, LOOPS, fd_limit

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "scale_servers.py"
LOADS = HERE / "scale_clients.py"
RESULTS = HERE / "SCALE_RESULTS.md"

BASE = "websockets"
"""The ratios are to this one."""
BENCHMARKS = ["broadcast", "handshakes", "memory"]
TITLES = {
    "socketeer": "socketeer",
    "websockets": "websockets",
    "picows": "picows",
    "aiohttp": "aiohttp",
    "writes": "one write each (limit)",
}
BROADCAST_ONLY = {"writes"}
"""Columns of the broadcast tables only: not libraries, limits."""
BROADCAST_HOW = {
    "socketeer": "`socketeer.broadcast(connections, message)`: the frame is encoded once and "
    "written to each connection's transport; a connection whose write buffer is past its "
    "`write_limit` is skipped (counted)",
    "websockets": "`websockets.asyncio.server.broadcast(connections, message)`: each "
    "connection's protocol serializes the frame, written to its transport; no backpressure",
    "picows": "no broadcast function: `transport.send(BINARY, message)` on each connection in "
    "a loop (a frame built per connection, in C)",
    "aiohttp": "no broadcast function: `await ws.send_bytes(message)` on each connection, one "
    "after the other (each returns without suspending unless that connection's buffer is full)",
    "writes": "no library: socketeer's server, but the frame is built once and written with "
    "`transport.write(frame)` to each connection, with no check at all: what one write per "
    "recipient costs on the event loop, the limit of every library here",
}

CLIENTS = 1000
"""Broadcast: connections to the server."""
LOAD_PROCESSES = 2
"""Broadcast: load generators sharing the connections."""
MESSAGE_SIZE = 256
BURST = 100
"""Broadcasts per burst: 100 × 260 bytes stay below every library's write buffer limit and
the kernel's socket buffers, so that no broadcast skips a slow client."""
SINGLES = 10
"""Broadcasts timed one at a time, per repetition."""
CONCURRENCIES = [1, 50]
MAX_HANDSHAKES = 20_000
"""Most handshakes in one run, whatever the time (each leaves a TCP port in TIME_WAIT)."""
CONNECTIONS = 2000
"""Memory: idle connections."""
MEMORY_PROCESSES = 4
WARM_CONNECTIONS = 10
"""Memory: connections opened and closed before the first measurement."""
SETTLE = 0.5
"""Memory: seconds between collecting garbage and measuring."""

QUICK_CLIENTS = 500
QUICK_BURST = 50
QUICK_SINGLES = 5
QUICK_CONNECTIONS = 500
QUICK_MEMORY_PROCESSES = 2
QUICK_SETTLE = 0.3
QUICK_DURATION = 0.5

START_TIMEOUT = 30.0
"""Seconds for a server to report its port."""
COMMAND_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


# Processes


class Missing(Failed):
    """A library, a loop or a feature is not there: the figure is n/a."""


RUNNING: list[Child] = []
"""Every process started and not yet stopped: stopped at the end, whatever happens."""


class Child:
    """A server or load-generator process: commands on its stdin, JSON lines on its stdout."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.buffer = b""
        self.ready: dict[str, Any] = {}
        """A load generator's first report, once its connections are open."""

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        RUNNING.append(self)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def pin(self, cpu: int | None) -> None:
        if cpu is not None and self.process is not None:
            os.sched_setaffinity(self.process.pid, {cpu})

    def read(self, timeout: float) -> str:
        """The next line of output.

        Raises:
            Failed: if none comes in ``timeout`` seconds, or the process ended.
        """
        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed(f"{self.name}: no answer in {timeout:.0f} s")
            if select.select([fd], [], [], left)[0]:
                data = os.read(fd, 65536)
                if not data:
                    code = self.process.poll()
                    raise Failed(f"{self.name} ended (exit code {code})")
                self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode().strip()

    def read_json(self, timeout: float) -> dict[str, Any]:
        """The next line, as JSON.

        Raises:
            Missing: if the process says something is missing.
            Failed: if it reports an error, or says nothing in time.
        """
        line = self.read(timeout)
        try:
            value: dict[str, Any] = json.loads(line)
        except ValueError:
            raise Failed(f"{self.name}: unexpected output {line!r:.100}") from None
        if "missing" in value:
            raise Missing(value["missing"])
        if "error" in value:
            raise Failed(f"{self.name}: {value['error']}")
        return value

    def ask(self, command: str, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        try:
            self.process.stdin.write(command.encode() + b"\n")
        except BrokenPipeError:
            raise Failed(f"{self.name} is gone") from None
        return self.read_json(timeout)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close its stdin (its signal to stop), then kill it if it does not."""
        process = self.process
        if process is None:
            return
        self.process = None
        if self in RUNNING:
            RUNNING.remove(self)
        self.ask_to_stop(process)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def ask_to_stop(self, process: subprocess.Popen[bytes]) -> None:
        """Tell the process to stop: close its stdin."""
        try:
            if process.stdin is not None:
                process.stdin.close()
        except OSError:
            pass


def stop_all() -> None:
    while RUNNING:
        RUNNING[-1].stop(2.0)


def start_server(
    library: str, loop: str, connections: int, *, compression: bool = False, traced: bool = False
) -> tuple[Child, int]:
    """A running server and its port.

    Raises:
        Missing: if the library, the loop or compression is not there.
        Failed: if the server does not start.
    """
    command = [sys.executable, str(SERVERS), library, "--loop", loop]
    command += ["--connections", str(connections)]
    if compression:
        command.append("--compression")
    if traced:
        command.append("--tracemalloc")
    server = Child(f"{library} server", command)
    server.start()
    try:
        line = server.read(START_TIMEOUT)
        word, _, rest = line.partition(" ")
        if word == "missing":
            raise Missing(rest)
        if word != "port":
            raise Failed(f"{library} server failed to start: {line or 'no output'}")
        return server, int(rest)
    except BaseException:
        server.stop()
        raise


def start_loads(
    client: str,
    port: int,
    loop: str,
    connections: int,
    processes: int,
    cpu: int | None,
    *,
    compression: bool = False,
) -> list[Child]:
    """Load generators holding ``connections`` connections in all, once they are all open.

    Raises:
        Missing, Failed: as :meth:`Child.read_json`; none is left running then.
    """
    loads = []
    try:
        for share in split(connections, processes):
            command = [sys.executable, str(LOADS), "hold", client, "--port", str(port)]
            command += ["--loop", loop, "--connections", str(share)]
            if cpu is not None:
                command += ["--cpu", str(cpu)]
            if compression:
                command.append("--compression")
            load = Child(f"{client} load generator", command)
            load.start()
            loads.append(load)
        for load in loads:
            load.ready = load.read_json(30 + connections * 0.05)
    except BaseException:
        for load in loads:
            load.stop()
        raise
    return loads


def split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (i < total % parts) for i in range(parts)]


def wait_open(server: Child, count: int, timeout: float = COMMAND_TIMEOUT) -> int:
    """Wait until the server's handlers hold ``count`` connections; how many they hold."""
    deadline = time.monotonic() + timeout
    while True:
        held: int = server.ask("count")["open"]
        if held == count or time.monotonic() > deadline:
            return held
        time.sleep(0.05)


# Placement


@dataclass
class Where:
    server: int | None
    clients: int | None
    description: str


def placement() -> Where:
    if not hasattr(os, "sched_setaffinity"):
        return Where(None, None, "not pinned (no sched_setaffinity here)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return Where(cpus[0], cpus[0], f"everything on CPU {cpus[0]}")
    return Where(
        cpus[0],
        cpus[-1],
        f"each server pinned to CPU {cpus[0]}, every load generator to CPU {cpus[-1]}",
    )


# Settings and results


@dataclass
class Settings:
    loops: list[str]
    libraries: list[str]
    benchmarks: list[str]
    repetitions: int
    duration: float
    clients: int
    burst: int
    singles: int
    connections: int
    memory_processes: int
    settle: float
    tracemalloc: bool
    quick: bool
    fixed: str
    """The client of the broadcast and handshake tests."""


Key = tuple[str, ...]


@dataclass
class Results:
    settings: Settings
    figures: dict[Key, list[float]] = field(default_factory=dict)
    """(measure, loop, library, ...) → one value per run."""
    missing: dict[Key, str] = field(default_factory=dict)
    """(measure, loop, library, ...) → why there is no figure ("n/a", "failed")."""
    facts: dict[Key, Any] = field(default_factory=dict)
    """(fact, loop, library, compression) → what was seen: extensions, zlib objects."""
    notes: list[str] = field(default_factory=list)

    def add(self, key: Key, value: float | None) -> None:
        if value is not None:
            self.figures.setdefault(key, []).append(value)

    def fail(self, keys: Sequence[Key], why: str, note: str) -> None:
        for key in keys:
            self.missing.setdefault(key, why)
        self.note(note)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            print(f"  note: {text}", file=sys.stderr, flush=True)

    def median(self, key: Key) -> float | None:
        values = self.figures.get(key)
        return statistics.median(values) if values else None

    def cell(self, key: Key, scale: float = 1.0, digits: int = 0) -> str:
        value = self.median(key)
        if value is None:
            return self.missing.get(key, "n/a")
        return f"{value * scale:,.{digits}f}"


def failure(exc: Exception) -> str:
    return "n/a" if isinstance(exc, Missing) else "failed"


# Broadcast


@dataclass
class Fleet:
    """A server and the load generators that hold its connections."""

    library: str
    server: Child
    loads: list[Child]

    def stop(self) -> None:
        for load in self.loads:
            load.stop()
        self.server.stop()


def open_fleet(library: str, loop: str, settings: Settings, where: Where) -> Fleet:
    server, port = start_server(library, loop, settings.clients)
    try:
        server.pin(where.server)
        loads = start_loads(
            settings.fixed, port, loop, settings.clients, LOAD_PROCESSES, where.clients
        )
    except BaseException:
        server.stop()
        raise
    fleet = Fleet(library, server, loads)
    held = wait_open(server, settings.clients)
    if held != settings.clients:
        fleet.stop()
        raise Failed(f"{library} server holds {held} of {settings.clients} connections")
    return fleet


def burst(fleet: Fleet, count: int, clients: int) -> tuple[float, float | None, int | None]:
    """``count`` broadcasts: the seconds from the first call until every client has them
    all, the server's CPU µs per broadcast, and the connections it said it skipped."""
    timeout = 10 + count * 0.2
    for load in fleet.loads:
        load.ask(f"expect {count} {timeout}")
    server = fleet.server
    before = run_time(server.pid, threads=True)
    sent = server.ask(f"broadcast {count} {MESSAGE_SIZE}", timeout)
    done = [load.read_json(timeout + 5) for load in fleet.loads]
    after = run_time(server.pid, threads=True)
    if sent["connections"] != clients:
        raise Failed(f"{fleet.library} server held {sent['connections']} of {clients} clients")
    if any(report["time"] is None for report in done):
        received = sum(report["received"] for report in done)
        raise Failed(
            f"{fleet.library}: {received} of {count * clients} messages arrived in "
            f"{timeout:.0f} s (connections skipped: {sent['skipped']})"
        )
    elapsed = max(report["time"] for report in done) - sent["start"]
    cpu = None if before is None or after is None else (after - before) / 1000 / count
    return elapsed, cpu, sent["skipped"]


def measure_broadcast(results: Results, loop: str, where: Where) -> None:
    settings = results.settings
    fleets: list[Fleet] = []
    measures = ["broadcast-rate", "broadcast-latency", "broadcast-cpu"]
    try:
        for library in settings.libraries:
            keys = [(measure, loop, library) for measure in measures]
            try:
                fleets.append(open_fleet(library, loop, settings, where))
                burst(fleets[-1], max(1, settings.burst // 5), settings.clients)  # warm-up
            except (Failed, OSError) as exc:
                if fleets and fleets[-1].library == library:
                    fleets.pop().stop()
                results.fail(keys, failure(exc), f"broadcast, {library}, {loop}: {exc}")
        for repetition in range(settings.repetitions):
            started = time.perf_counter()
            for fleet in list(fleets):
                try:
                    measure_fleet(results, loop, fleet)
                except (Failed, OSError) as exc:
                    keys = [(measure, loop, fleet.library) for measure in measures]
                    results.fail(keys, "failed", f"broadcast, {fleet.library}, {loop}: {exc}")
                    fleets.remove(fleet)
                    fleet.stop()
            progress(f"broadcast, {loop} loop", repetition, settings.repetitions, started)
    finally:
        for fleet in fleets:
            fleet.stop()


def measure_fleet(results: Results, loop: str, fleet: Fleet) -> None:
    settings = results.settings
    library = fleet.library
    elapsed, cpu, skipped = burst(fleet, settings.burst, settings.clients)
    results.add(("broadcast-rate", loop, library), settings.burst / elapsed)
    results.add(("broadcast-cpu", loop, library), cpu)
    if skipped:
        results.note(f"broadcast, {library}, {loop}: {skipped} connections skipped in a burst")
    for _ in range(settings.singles):
        elapsed, _, _ = burst(fleet, 1, settings.clients)
        results.add(("broadcast-latency", loop, library), elapsed)


# Connection setup


def run_handshakes(
    settings: Settings, library: str, server: Child, port: int, loop: str, k: int, where: Where
) -> dict[str, Any]:
    command = [sys.executable, str(LOADS), "handshakes", settings.fixed, "--port", str(port)]
    command += ["--loop", loop, "--concurrency", str(k), "--duration", str(settings.duration)]
    command += ["--max-count", str(MAX_HANDSHAKES), "--server-pid", str(server.pid)]
    if where.clients is not None:
        command += ["--cpu", str(where.clients)]
    timeout = 60 + settings.duration * 4
    output = run_load_generator(command, timeout, f"{library}: the handshake client")
    if "missing" in output:
        raise Missing(output["missing"])
    return output


def measure_handshakes(results: Results, loop: str, where: Where) -> None:
    settings = results.settings
    servers: list[tuple[str, Child, int]] = []
    try:
        for library in libraries_of(settings.libraries):
            keys = [
                (m, loop, library, str(k))
                for m in ("setup-rate", "setup-cpu")
                for k in CONCURRENCIES
            ]
            try:
                server, port = start_server(library, loop, max(CONCURRENCIES))
            except (Failed, OSError) as exc:
                results.fail(keys, failure(exc), f"handshakes, {library}, {loop}: {exc}")
                continue
            server.pin(where.server)
            servers.append((library, server, port))
        for repetition in range(settings.repetitions):
            started = time.perf_counter()
            for library, server, port in servers:
                for k in CONCURRENCIES:
                    keys = [(m, loop, library, str(k)) for m in ("setup-rate", "setup-cpu")]
                    try:
                        output = run_handshakes(settings, library, server, port, loop, k, where)
                    except (Failed, OSError, ValueError) as exc:
                        results.fail(keys, failure(exc), f"handshakes, {library}, {loop}: {exc}")
                        continue
                    if output["errors"]:
                        results.note(
                            f"handshakes, {library}, {loop}, {k} in flight: {output['errors']} "
                            f"failed (last: {output['last_error']})"
                        )
                    if output["count"]:
                        results.add(keys[0], output["count"] / output["elapsed"])
                        results.add(keys[1], output["cpu"]["server"])
            progress(f"handshakes, {loop} loop", repetition, settings.repetitions, started)
    finally:
        for _, server, _ in servers:
            server.stop()


# Memory


def measure_memory_once(
    results: Results, loop: str, library: str, compression: bool, traced: bool, where: Where
) -> None:
    settings = results.settings
    setting = "on" if compression else "off"
    n = settings.connections
    server, port = start_server(library, loop, n, compression=compression, traced=traced)
    loads: list[Child] = []
    try:
        server.pin(where.server)
        warm = start_loads(
            "socketeer", port, loop, WARM_CONNECTIONS, 1, where.clients, compression=compression
        )
        warm[0].stop()
        wait_open(server, 0)
        before = server.ask(f"memory {settings.settle}")
        loads = start_loads(
            "socketeer",
            port,
            loop,
            n,
            settings.memory_processes,
            where.clients,
            compression=compression,
        )
        held = wait_open(server, n)
        if held != n:
            raise Failed(f"{library} server holds {held} of {n} connections")
        after = server.ask(f"memory {settings.settle}")
    finally:
        for load in loads:
            load.stop()
        server.stop()
    if traced:
        if before["traced"] is not None and after["traced"] is not None:
            results.add(
                ("traced", loop, library, setting), (after["traced"] - before["traced"]) / n
            )
        return
    if before["rss"] is not None and after["rss"] is not None:
        results.add(("rss", loop, library, setting), (after["rss"] - before["rss"]) / n)
    results.facts["zlib", loop, library, setting] = after["zlib"]
    results.facts["extensions", loop, library, setting] = loads[0].ready.get("extensions")


def measure_memory(results: Results, loop: str, where: Where) -> None:
    settings = results.settings
    configs = [(lib, comp) for comp in (False, True) for lib in libraries_of(settings.libraries)]
    runs = [(False, r) for r in range(settings.repetitions)]
    if settings.tracemalloc:
        runs.append((True, 0))
    broken: set[tuple[str, bool]] = set()
    for traced, repetition in runs:
        started = time.perf_counter()
        for library, compression in configs:
            if (library, compression) in broken:
                continue
            setting = "on" if compression else "off"
            measures = ["traced"] if traced else ["rss"]
            keys = [(m, loop, library, setting) for m in measures]
            try:
                measure_memory_once(results, loop, library, compression, traced, where)
            except (Failed, OSError) as exc:
                broken.add((library, compression))
                keys += [(m, loop, library, setting) for m in ("rss", "traced")]
                results.fail(
                    keys, failure(exc), f"memory, {library}, compression {setting}, {loop}: {exc}"
                )
        if traced:
            progress(f"memory, {loop} loop, tracemalloc", 0, 1, started)
        else:
            progress(f"memory, {loop} loop", repetition, settings.repetitions, started)


def progress(what: str, repetition: int, repetitions: int, started: float) -> None:
    print(
        f"  {what}, repetition {repetition + 1} of {repetitions}: "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )


# Reporting


def libraries_of(names: list[str]) -> list[str]:
    """The libraries among ``names``: the columns of every table but broadcast's."""
    return [name for name in names if name not in BROADCAST_ONLY]


def columns(results: Results, key: Key) -> list[str]:
    """The columns of a table of ``key``'s measure: the libraries, and for broadcast the
    limits too."""
    names = results.settings.libraries
    return names if key[0].startswith("broadcast") else libraries_of(names)


def ratio_row(results: Results, title: str, key: Key, inverse: bool = False) -> str:
    """A row of ratios to websockets: library ÷ websockets, or websockets ÷ library."""
    measure, loop, *rest = key
    base = results.median((measure, loop, BASE, *rest))
    cells = []
    for library in columns(results, key):
        value = results.median((measure, loop, library, *rest))
        cells.append(format_ratio(base, value) if inverse else format_ratio(value, base))
    return f"| {title} | " + " | ".join(cells) + " |"


def header(results: Results, first: str, broadcast: bool = False) -> list[str]:
    libraries = results.settings.libraries
    if not broadcast:
        libraries = libraries_of(libraries)
    return [
        f"| {first} | " + " | ".join(TITLES[name] for name in libraries) + " |",
        "|---|" + "---:|" * len(libraries),
    ]


def row(results: Results, title: str, key: Key, scale: float = 1.0, digits: int = 0) -> str:
    measure, loop, *rest = key
    cells = [
        results.cell((measure, loop, library, *rest), scale, digits)
        for library in columns(results, key)
    ]
    return f"| {title} | " + " | ".join(cells) + " |"


def broadcast_tables(results: Results, loop: str) -> list[str]:
    s = results.settings
    lines = [f"### {loop} loop", ""]
    lines += header(results, f"{s.clients:,} clients, {MESSAGE_SIZE} B", broadcast=True)
    lines.append(row(results, f"broadcasts/s, bursts of {s.burst}", ("broadcast-rate", loop)))
    lines.append(
        row(results, "ms per broadcast, one at a time", ("broadcast-latency", loop), 1000, 1)
    )
    lines.append(row(results, "server CPU µs per broadcast", ("broadcast-cpu", loop)))
    lines.append(
        row(results, "server CPU µs per message", ("broadcast-cpu", loop), 1 / s.clients, 2)
    )
    lines += ["", "Ratios to websockets; higher is better.", ""]
    lines += header(results, "÷ websockets", broadcast=True)
    lines.append(ratio_row(results, "broadcasts/s (bursts)", ("broadcast-rate", loop)))
    lines.append(
        ratio_row(results, "one at a time (its ms ÷ yours)", ("broadcast-latency", loop), True)
    )
    lines.append(ratio_row(results, "server CPU (its µs ÷ yours)", ("broadcast-cpu", loop), True))
    return lines + [""]


def handshake_tables(results: Results, loop: str) -> list[str]:
    lines = [f"### {loop} loop", ""]
    lines += header(results, "handshakes/s")
    for k in CONCURRENCIES:
        lines.append(row(results, f"{k} in flight", ("setup-rate", loop, str(k))))
    lines += ["", "Server CPU time per handshake (open + close), in µs; lower is better.", ""]
    lines += header(results, "µs/handshake")
    for k in CONCURRENCIES:
        lines.append(row(results, f"{k} in flight", ("setup-cpu", loop, str(k))))
    lines += ["", "Ratios to websockets; higher is better.", ""]
    lines += header(results, "÷ websockets")
    for k in CONCURRENCIES:
        lines.append(
            ratio_row(results, f"handshakes/s, {k} in flight", ("setup-rate", loop, str(k)))
        )
    for k in CONCURRENCIES:
        lines.append(
            ratio_row(
                results,
                f"server CPU, {k} in flight (its ÷ yours)",
                ("setup-cpu", loop, str(k)),
                True,
            )
        )
    return lines + [""]


def memory_tables(results: Results, loop: str) -> list[str]:
    s = results.settings
    lines = [f"### {loop} loop", ""]
    lines += header(results, f"KiB per connection, {s.connections:,} idle")
    for setting in ("off", "on"):
        title = f"compression {setting}: RSS"
        lines.append(row(results, title, ("rss", loop, setting), 1 / 1024, 1))
    if s.tracemalloc:
        for setting in ("off", "on"):
            title = f"compression {setting}: Python heap (tracemalloc)"
            lines.append(row(results, title, ("traced", loop, setting), 1 / 1024, 1))
    lines += ["", "Ratios to websockets (RSS), yours ÷ its; lower is better (target ≤ 0.50).", ""]
    lines += header(results, "÷ websockets")
    for setting in ("off", "on"):
        lines.append(ratio_row(results, f"compression {setting}", ("rss", loop, setting)))
    lines += ["", "With compression on, what the idle connections hold:", ""]
    lines += header(results, "compression on")
    extensions, held = [], []
    for library in libraries_of(s.libraries):
        header_value = results.facts.get(("extensions", loop, library, "on"))
        extensions.append(f"`{header_value}`" if header_value else "none")
        zlib = results.facts.get(("zlib", loop, library, "on"))
        held.append(zlib_cell(zlib))
    lines.append("| negotiated (response header) | " + " | ".join(extensions) + " |")
    lines.append("| zlib objects held: compressors / decompressors | " + " | ".join(held) + " |")
    return lines + [""]


def zlib_cell(zlib: dict[str, int | None] | None) -> str:
    if not zlib or zlib.get("negotiated") is None:
        return "n/a"
    parts = [
        "?" if zlib.get(name) is None else f"{zlib[name]:,}"
        for name in ("compressors", "decompressors")
    ]
    return f"{parts[0]} / {parts[1]} (of {zlib['negotiated']:,})"


def eager_zlib_note(results: Results) -> list[str]:
    """What the zlib probe says about socketeer, in words."""
    notes = []
    for loop in results.settings.loops:
        zlib = results.facts.get(("zlib", loop, "socketeer", "on"))
        if not zlib or not zlib.get("negotiated"):
            continue
        held = (zlib.get("compressors") or 0) + (zlib.get("decompressors") or 0)
        if held:
            notes.append(
                f"socketeer, {loop}: idle connections with permessage-deflate hold {held:,} zlib "
                f"objects for {zlib['negotiated']:,} connections: they are allocated eagerly"
            )
        else:
            notes.append(
                f"socketeer, {loop}: idle connections with permessage-deflate hold no zlib "
                "object (created on first use)"
            )
    return notes


def report(
    results: Results, where: Where, seconds: float, load: tuple[float | None, float | None]
) -> str:
    s = results.settings
    now = datetime.datetime.now().astimezone()
    versions = ", ".join(
        f"{name} {version(name)}"
        for name in ["socketeer", "websockets", "picows", "aiofastnet", "aiohttp", "uvloop"]
    )
    title = "# Scale benchmark"
    if s.quick:
        title += ": `--quick` smoke run"
    lines = [title, ""]
    if s.quick:
        lines += [
            "**A `--quick` smoke run: one short repetition, fewer connections, on a shared "
            "machine. It shows that the benchmark works, not what the libraries do: run "
            "`python benchmarks/scale.py` for figures.**",
            "",
        ]
    lines += [
        f"- date: {now:%Y-%m-%d %H:%M %Z}; the run took {seconds:.0f} s",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}",
        f"- placement: {where.description}",
        f"- method: servers and load generators in processes of their own over 127.0.0.1; "
        f"medians of {s.repetitions} run(s); CPU time from `/proc/PID/schedstat` (all threads); "
        f"memory from `/proc/PID/status` (VmRSS; not PSS, which drops when the load generators "
        f"start, sharing the interpreter's pages); listen backlog "
        f"{BACKLOG}; everything else is each library's default. The module docstring of "
        "`benchmarks/scale.py` has the details",
        "",
    ]
    if "broadcast" in s.benchmarks:
        lines += [
            f"## Broadcast: {MESSAGE_SIZE} B to {s.clients:,} clients",
            "",
            f"{s.clients:,} connections held by {LOAD_PROCESSES} {s.fixed} load generators; "
            f"compression off. Bursts: {s.burst} broadcasts one after the other (the server "
            "yields to its event loop between two), timed from the first call to the moment "
            f"every client has received all {s.burst}; one at a time: {s.singles} broadcasts "
            "per repetition, each timed from the call to the last client's receipt (clocks: "
            "`time.monotonic`, shared by all processes). Server CPU per broadcast: over the "
            "bursts. The load generators do the same work for every server and share one "
            "CPU: when they are the bottleneck, the rates come together, and the server's CPU "
            "time tells the libraries apart.",
            "",
            "What each library does:",
            "",
        ]
        lines += [f"- {TITLES[lib]}: {BROADCAST_HOW[lib]}" for lib in s.libraries]
        lines.append("")
        for loop in s.loops:
            lines += broadcast_tables(results, loop)
    if "handshakes" in s.benchmarks:
        lines += [
            "## Connection setup",
            "",
            f"The {s.fixed} client opens a connection and closes it (closing handshake; the "
            "server closes TCP), with 1 or 50 such sequences in flight, for "
            f"{s.duration:g} s (at most {MAX_HANDSHAKES:,}) after a warm-up; compression off. "
            "Handshakes/s count open + close.",
            "",
        ]
        for loop in s.loops:
            lines += handshake_tables(results, loop)
    if "memory" in s.benchmarks:
        lines += [
            f"## Memory per idle connection: {s.connections:,} connections",
            "",
            "Growth of the server's memory from before to after opening the connections "
            f"(garbage collected, then {s.settle:g} s of settling, before each measurement; "
            f"{WARM_CONNECTIONS} connections opened and closed before the first), divided by "
            f"the connections; the clients: socketeer's, {s.memory_processes} load generators, "
            'offering permessage-deflate (`compression="deflate"`, its default offer) when '
            "compression is on and nothing when it is off. Servers with compression on: "
            "each library's default permessage-deflate settings (picows has none). Kernel "
            "socket buffers are not in these figures."
            + (
                " The Python heap rows are tracemalloc's growth in a separate run; zlib's "
                "buffers count there too (CPython allocates them through PyMem), whole, "
                "whereas RSS only counts the pages written to: a zlib window allocated and "
                "not used yet counts in the first, hardly in the second."
                if s.tracemalloc
                else ""
            ),
            "",
        ]
        for loop in s.loops:
            lines += memory_tables(results, loop)
    notes = []
    before, after = load
    if before is not None and after is not None:
        busy = " (the machine was busy: figures are lower and noisier)"
        notes.append(
            f"load average (1 min) before the run: {before:.2f}, after: {after:.2f}"
            + (busy if before > (os.cpu_count() or 1) / 2 else "")
        )
    if "memory" in s.benchmarks:
        notes += eager_zlib_note(results)
    notes += results.notes
    if notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


# Entry point


def parse_libraries(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in LIBRARIES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {', '.join(unknown)} (libraries: {','.join(LIBRARIES)})"
        )
    return [name for name in LIBRARIES if name in names]  # in the tables' order


def parse_benchmarks(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {', '.join(unknown)} (benchmarks: {','.join(BENCHMARKS)})"
        )
    return [name for name in BENCHMARKS if name in names]


def settings_from(args: argparse.Namespace) -> Settings:
    quick = args.quick
    loops = [args.loop] if args.loop else (["asyncio"] if quick else list(LOOPS))
    return Settings(
        loops=loops,
        libraries=args.only or list(LIBRARIES),
        benchmarks=args.benchmarks or list(BENCHMARKS),
        repetitions=args.repetitions or (1 if quick else 3),
        duration=args.duration or (QUICK_DURATION if quick else 1.0),
        clients=args.clients or (QUICK_CLIENTS if quick else CLIENTS),
        burst=QUICK_BURST if quick else BURST,
        singles=QUICK_SINGLES if quick else SINGLES,
        connections=args.connections or (QUICK_CONNECTIONS if quick else CONNECTIONS),
        memory_processes=QUICK_MEMORY_PROCESSES if quick else MEMORY_PROCESSES,
        settle=QUICK_SETTLE if quick else SETTLE,
        tracemalloc=args.tracemalloc if args.tracemalloc is not None else not quick,
        quick=quick,
        fixed="picows" if installed("picows") else "socketeer",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument(
        "--loop", choices=LOOPS, help="only this event loop (both; asyncio with --quick)"
    )
    parser.add_argument(
        "--only",
        type=parse_libraries,
        metavar="LIBRARIES",
        help=f"only these servers, e.g. socketeer,websockets (of {','.join(LIBRARIES)})",
    )
    parser.add_argument(
        "--benchmarks",
        type=parse_benchmarks,
        help=f"only these benchmarks (of {','.join(BENCHMARKS)})",
    )
    parser.add_argument("--repetitions", type=int, help="runs per figure (3; 1 with --quick)")
    parser.add_argument(
        "--duration", type=float, help="seconds per handshake run (1; 0.5 with --quick)"
    )
    parser.add_argument(
        "--clients",
        type=int,
        help=f"broadcast: clients ({CLIENTS}; {QUICK_CLIENTS} with --quick)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        help=f"memory: idle connections ({CONNECTIONS}; {QUICK_CONNECTIONS} with --quick)",
    )
    parser.add_argument(
        "--tracemalloc",
        action=argparse.BooleanOptionalAction,
        help="memory: also trace the servers' Python heap, in a separate run (default: on, "
        "off with --quick)",
    )
    parser.add_argument(
        "--output", type=Path, help=f"write the results as markdown (default: {RESULTS.name})"
    )
    args = parser.parse_args(argv)
    settings = settings_from(args)
    too_few = fd_limit(max(settings.clients, settings.connections))
    if too_few is not None:
        parser.exit(2, f"{parser.prog}: {too_few}\n")
    output = args.output or (None if settings.quick else RESULTS)
    results = Results(settings)
    if settings.fixed != "picows":
        results.note("picows is not installed: the fixed client is socketeer instead")
    where = placement()
    # A SIGTERM ends the run like a Ctrl-C: through the finally below, which stops every process.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    print(f"Scale benchmark ({where.description})", file=sys.stderr, flush=True)
    before = load_average()
    started = time.perf_counter()
    try:
        for loop in list(settings.loops):
            if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
                results.note("uvloop: n/a, not installed (pip install -e '.[bench]')")
                continue
            if "broadcast" in settings.benchmarks:
                measure_broadcast(results, loop, where)
            if "handshakes" in settings.benchmarks:
                measure_handshakes(results, loop, where)
            if "memory" in settings.benchmarks:
                measure_memory(results, loop, where)
    except KeyboardInterrupt:
        print("interrupted: every server and load generator stopped", file=sys.stderr)
        return 130
    finally:
        stop_all()
    seconds = time.perf_counter() - started
    text = report(results, where, seconds, (before, load_average()))
    print(text)
    if output is not None:
        output.write_text(text)
        print(f"(written to {output})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
