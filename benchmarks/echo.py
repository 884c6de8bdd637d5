"""Echo over loopback: socketeer against websockets, picows, aiohttp and raw TCP, side by side.

socketeer's threaded server and client (``socketeer.sync``) have a section of their own,
beside websockets' (``websockets.sync``) and, for clients, websocket-client.

Run with ``make bench`` (after ``benchmarks/protocol.py``) or ``python benchmarks/echo.py``;
``--quick`` runs a subset in under a minute (16 B and 1 KiB echo, the default loop, one
repetition) and writes no results file. The full run writes ``benchmarks/RESULTS.md``.

Method
------

- Every server runs in a process of its own (``echo_servers.py``), and so does every load
  generator (``echo_clients.py``); both listen and connect on 127.0.0.1 only, on a free
  port the server picks and reports.
- A library *as server* is measured with one fixed client, and *as client* against one
  fixed server. The fixed server is picows (the fastest we know), or socketeer when picows
  is not installed. The fixed client is ``wsload``, a load generator in C
  (``benchmarks/wsload.c``: one thread, epoll, about 10 µs of CPU per message, most of it
  in the kernel), compiled with ``cc -O2`` into ``benchmarks/.build/`` when its source is
  newer than the binary; without a C compiler, it is the fixed server's library as client,
  as the fixed peers were before: a Python client costs about as much CPU per message as the
  servers it measures, which makes it the bottleneck of the 200-client test and squeezes
  the servers' ratios. ``--client picows`` asks for that anyway. wsload also measures the
  latency of each round trip: the server tables give p50 and p99 of the 200-client test.
  The raw TCP figures are raw client against raw server, without WebSocket: ``raw`` reads
  into a buffer allocated once (``asyncio.BufferedProtocol``, as socketeer does), the limit
  of the event loop; ``raw-protocol`` is plain ``asyncio.Protocol``, which allocates a
  256 KiB ``bytes`` per read on the default loop (as websockets and aiohttp do). For big
  messages the limit's one extra copy can make it slower than ``raw-protocol``.
- Placement: on a machine with at least two CPUs, the server and the client of a
  single-connection test are pinned to the same CPU (``os.sched_setaffinity``): a round
  trip between processes on different CPUs costs several times more on some machines,
  which would swamp the differences between libraries. For the 200-client test, the
  server and the load generator get one CPU each.
- Each figure is the median of ``--repetitions`` runs of ``--duration`` seconds (and at
  most ``echo_clients.MAX_COUNT`` messages), after a short warm-up; nothing is asserted.
  The servers of one event loop all run at once, and each repetition goes round every
  pair of libraries, so that a slow spell of a shared machine does not hit one library.
- Besides the rates, each process's CPU time per message (Linux's ``/proc/PID/schedstat``)
  is reported: it compares the libraries even when other processes compete for the CPUs.
- socketeer has two columns: ``socketeer`` is the handler coroutine of the README
  (``async for message in ws: await ws.send(message)``, one task per connection), and
  ``socketeer Handler`` a :class:`socketeer.Handler` whose ``on_message`` is a plain method
  answering with ``ws.send_nowait(message)``: called from the event loop as each message
  arrives, with no task switch, as picows' ``on_ws_frame``.
- Messages are binary (no UTF-8 validation); compression is off everywhere (picows has
  none); the message size limit is raised to 16 MiB; all else is each library's default.
- The threaded (sync) servers and clients: ``socketeer-sync``, ``websockets-sync`` and
  ``websocket-client`` (a client only) run no event loop, so they are measured once, in the
  rounds of the first event loop measured, against the same fixed peer on that loop, and
  shown in a "threads" section with ratios to websockets' sync counterpart. A sync
  process is pinned whole (all its threads), and its CPU time counts all its threads. With
  a sync client, the 200-client test runs 200 threads, one per connection, each bounded by
  the same duration.

Compression on: ``--compression`` runs another benchmark instead, with permessage-deflate
(RFC 7692) negotiated on every connection, written to ``benchmarks/COMPRESSION_RESULTS.md``
(``make bench`` runs it after the default one); the default run is unchanged without it.

- Libraries: socketeer, websockets and aiohttp, each with its default deflate settings
  (picows has no compression). As server, each answers websockets' client
  (``websockets.asyncio.client.connect``, which offers deflate by default); as client, each
  talks to websockets' server: websockets is the fixed peer, the reference of the ratios.
  The negotiated ``Sec-WebSocket-Extensions`` header of each pair is reported.
- Tests: one connection, one message in flight (round trips/s, CPU per round trip),
  binary messages of JSON-like text, 16 B, 1 KiB and 64 KiB: slices of one generated
  document (fixed seed), all different and sent in turn, so that context takeover does not
  see a message twice; and 64 KiB of random bytes, which deflate cannot shrink. The report
  says how much deflate shrinks each.
- Everything else as above: processes, placement, medians of interleaved repetitions;
  but the CPU time of a process counts all its threads (aiohttp compresses messages of more
  than 16 KiB in a thread of its event loop's default executor). ``--quick`` runs the same
  tests briefly, on the default loop only.

Also: ``--tuned-malloc`` keeps glibc from returning freed memory to the system (big-message
figures are otherwise bimodal, by allocation history); ``--only socketeer,websockets`` and
``--loop asyncio`` measure a subset (``--only socketeer-sync,websockets-sync`` the threads
section alone); ``--profile socketeer [--profile-test echo:16]`` prints the top functions of
a server under cProfile instead (``--profile socketeer-sync`` too, on Python 3.11 and
earlier: the profiles of the connections' threads, merged).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import pstats
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echo_clients import SYNC_CLIENTS, WSLOAD, build_wsload, deflate_payloads
from echo_servers import DEFLATE_LIBRARIES, SYNC_SERVERS, MissingError, profile_refused

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "echo_servers.py"
CLIENTS = HERE / "echo_clients.py"
RESULTS = HERE / "RESULTS.md"
COMPRESSION_RESULTS = HERE / "COMPRESSION_RESULTS.md"

WS_LIBRARIES = ["socketeer", "socketeer-handler", "websockets", "picows", "aiohttp"]
RAW = "raw"
RAW_PROTOCOL = "raw-protocol"
ASYNC_COLUMNS = [*WS_LIBRARIES, RAW_PROTOCOL, RAW]
SYNC_BASE = "websockets-sync"
"""The threads section's ratios are to this one."""
COLUMNS = [*ASYNC_COLUMNS, *SYNC_CLIENTS]
TITLES = {
    "socketeer": "socketeer",
    "socketeer-handler": "socketeer Handler",
    "websockets": "websockets",
    "picows": "picows",
    "aiohttp": "aiohttp",
    RAW_PROTOCOL: "raw TCP, Protocol",
    RAW: "raw TCP (limit)",
    "socketeer-sync": "socketeer sync",
    "websockets-sync": "websockets sync",
    "websocket-client": "websocket-client",
    WSLOAD: "wsload (C)",
}
PACKAGES = {
    "websockets": "websockets",
    "picows": "picows",
    "aiohttp": "aiohttp",
    "websockets-sync": "websockets",
    "websocket-client": "websocket",
}

SINGLE_TESTS = ["echo:16", "echo:1024", "echo:65536", "echo:1048576", "pipeline:16:64"]
CONCURRENT_TESTS = ["concurrent:256:200"]
QUICK_TESTS = ["echo:16", "echo:1024"]
DEFLATE_TESTS = ["json:16", "json:1024", "json:65536", "random:65536"]
"""The tests of ``--compression`` (``--quick`` too: they are short)."""
DEFLATE_FIXED = "websockets"
"""The fixed peer of ``--compression``: the reference, with compression by default."""
DEFLATE_CONNECT = {
    "websockets": "websockets.asyncio.client.connect",
    "socketeer": "socketeer.connect",
}
"""The fixed client of ``--compression``, by library (socketeer when websockets is missing)."""
LOOPS = ["asyncio", "uvloop"]

INSTALL_HINT = "pip install -e '.[bench]', as make bench does"
INSTALL_HINTS = {"websocket-client": "pip install -e '.[test]'; make bench installs it"}
# glibc returns freed memory of 128 KiB and more to the system at once, so a process that
# allocates a big buffer per read or per message takes page faults on every one; how often
# depends on its allocation history, which makes big-message figures bimodal. These settings
# keep the memory (glibc only; other allocators ignore them).
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
START_TIMEOUT = 30.0
"""Seconds for a server to report its port."""
STOP_TIMEOUT = 10.0


def test_title(test: str) -> str:
    kind, *numbers = test.split(":")
    size = format_size(int(numbers[0]))
    if kind == "echo":
        return f"echo {size}"
    if kind == "pipeline":
        return f"pipelined {size}, {numbers[1]} in flight"
    if kind == "json":
        return f"JSON-like {size}"
    if kind == "random":
        return f"random {size}"
    return f"{numbers[1]} clients, {size}"


def format_size(size: int) -> str:
    if size >= 1048576:
        return f"{size // 1048576} MiB"
    if size >= 1024:
        return f"{size // 1024} KiB"
    return f"{size} B"


def installed(name: str) -> bool:
    if name.startswith(("socketeer", RAW)) or name == WSLOAD:
        return True
    return importlib.util.find_spec(PACKAGES.get(name, name)) is not None


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# Placement


@dataclass
class Placement:
    """CPUs for the server and the client of each kind of test."""

    single: tuple[int | None, int | None]
    concurrent: tuple[int | None, int | None]
    description: str


def placement(mode: str) -> Placement:
    if not hasattr(os, "sched_setaffinity"):
        return Placement((None, None), (None, None), "not pinned (no sched_setaffinity here)")
    cpus = sorted(os.sched_getaffinity(0))
    first, last = cpus[0], cpus[-1]
    if len(cpus) < 2:
        return Placement((first, first), (first, first), f"everything on CPU {first}")
    if mode == "same":
        single: tuple[int | None, int | None] = (last, last)
        text = f"single-connection tests: server and client both pinned to CPU {last}"
    elif mode == "split":
        single = (first, last)
        text = f"single-connection tests: server on CPU {first}, client on CPU {last}"
    else:
        single = (None, None)
        text = "single-connection tests: not pinned"
    return Placement(
        single,
        (first, last),
        f"{text}; 200-client test: server on CPU {first}, load generator on CPU {last}",
    )


# Running the processes


class Failed(Exception):
    """A server or client process failed; the message says how."""


@dataclass
class ServerProcess:
    library: str
    loop: str
    profile: str | None = None
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    compression: bool = False
    """Serve with permessage-deflate (``--compression``)."""

    def command(self) -> list[str]:
        """The server's command line (``benchmarks/rpc.py`` runs servers of its own)."""
        command = [sys.executable, str(SERVERS), self.library, "--loop", self.loop]
        if self.profile is not None:
            command += ["--profile", self.profile]
        if self.compression:
            command += ["--compression"]
        return command

    def start(self) -> None:
        command = self.command()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(START_TIMEOUT):
                self.stop()
                raise Failed(f"{self.library} server did not start in {START_TIMEOUT:.0f} s")
        line = self.process.stdout.readline().decode().strip()
        word, _, rest = line.partition(" ")
        if word == "port":
            self.port = int(rest)
        elif word == "missing":
            self.stop()
            raise Failed(rest)
        else:
            self.stop()
            raise Failed(f"{self.library} server failed to start: {line or 'no output'}")

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def threaded(self) -> bool:
        return self.library in SYNC_SERVERS

    def pin(self, cpu: int | None) -> None:
        if cpu is None or self.process is None:
            return
        if not self.threaded:
            os.sched_setaffinity(self.process.pid, {cpu})
            return
        # sched_setaffinity() pins one thread: pin them all (threads started later inherit
        # the CPUs of the thread that starts them: here, the accepting thread).
        try:
            tasks = os.listdir(f"/proc/{self.process.pid}/task")
        except FileNotFoundError:
            raise ProcessLookupError(f"{self.library} server is gone") from None
        for task in tasks:
            try:
                os.sched_setaffinity(int(task), {cpu})
            except (ProcessLookupError, FileNotFoundError):
                pass  # that thread ended

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the server's signal to stop
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.process = None


def run_client(
    library: str,
    port: int,
    loop: str,
    tests: list[str],
    repetitions: int,
    duration: float,
    cpu: int | None,
    server_pid: int | None = None,
    server_threads: bool = False,
    compression: bool = False,
) -> dict[str, Any]:
    """Run the client process; its output: ``results`` (rates) and ``cpu`` (µs/message).

    ``server_threads``: the server is threaded, and its CPU time is that of all its threads.
    ``compression``: offer permessage-deflate (the tests are then ``json:`` and ``random:``).
    """
    command = [
        sys.executable,
        str(CLIENTS),
        library,
        "--port",
        str(port),
        "--loop",
        loop,
        "--tests",
        ",".join(tests),
        "--repetitions",
        str(repetitions),
        "--duration",
        str(duration),
    ]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    if server_pid is not None:
        command += ["--server-pid", str(server_pid)]
    if server_threads:
        command += ["--server-threads"]
    if compression:
        command += ["--compression"]
    # Generous: each test is bounded in time; this only catches a hang.
    timeout = 60 + len(tests) * (repetitions * duration + 1) * 4
    output = run_load_generator(command, timeout, f"{library} client")
    if "missing" in output:
        raise Failed(output["missing"])
    return output


def run_load_generator(command: list[str], timeout: float, what: str) -> dict[str, Any]:
    """Run a load generator to its end; return the JSON object of its last line of output.

    Raises:
        Failed: if it hangs past ``timeout`` seconds (it is killed), fails, or prints nothing.
    """
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"{what} hung (killed after {timeout:.0f} s)") from None
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        raise Failed(f"{what} failed with exit code {done.returncode}")
    output: dict[str, Any] = json.loads(lines[-1])
    return output


# Measuring


Cell = list[float] | str  # the rates of the repetitions, or why there are none


@dataclass
class Results:
    loops: list[str]
    tests: list[str]
    fixed: str
    """The fixed server of the client tables, and the fixed client unless :attr:`client`."""
    columns: list[str] = field(default_factory=lambda: list(COLUMNS))
    """The columns asked for (``--only``)."""
    client: str = ""
    """The fixed client of the server tables (:data:`WSLOAD`, or :attr:`fixed` by default)."""
    sync_loop: str | None = None
    """The event loop of the fixed peer of the threads section, once measured."""
    cells: dict[tuple[str, str, str, str], Cell] = field(default_factory=dict)
    """(loop, server library, client library, test) → rates, or a note."""
    cpu: dict[tuple[str, str, str, str, str], list[float | None]] = field(default_factory=dict)
    """(loop, server library, client library, test, "server" or "client") → CPU µs per
    message of that side, one per repetition."""
    others: list[float] = field(default_factory=list)
    """Shares of the pinned CPUs' time that other processes took, one per repetition."""
    notes: list[str] = field(default_factory=list)
    compression: bool = False
    """Permessage-deflate on every connection (``--compression``)."""
    extensions: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(loop, server library, client library) → the negotiated Sec-WebSocket-Extensions."""
    latency: dict[tuple[str, str, str, str, str], list[float]] = field(default_factory=dict)
    """(loop, server library, client library, test, "p50" or "p99") → µs, one per repetition
    (wsload only)."""

    def __post_init__(self) -> None:
        self.client = self.client or self.fixed

    def pair(self, side: str, column: str) -> tuple[str, str]:
        """(server, client) libraries measured for ``column`` on that side."""
        if column in (RAW, RAW_PROTOCOL):
            return column, column
        return (column, self.client) if side == "server" else (self.fixed, column)

    def cell(self, loop: str, side: str, column: str, test: str) -> Cell:
        return self.cells.get((loop, *self.pair(side, column), test), "n/a")

    def cpu_cell(
        self, loop: str, side: str, column: str, test: str, role: str | None = None
    ) -> float | None:
        """CPU µs per message of ``role`` (by default, the side measured)."""
        values = self.cpu.get((loop, *self.pair(side, column), test, role or side), [])
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    def latency_cell(
        self, loop: str, side: str, column: str, test: str, name: str
    ) -> float | None:
        values = self.latency.get((loop, *self.pair(side, column), test, name), [])
        return statistics.median(values) if values else None


def measure_round(
    results: Results,
    loop: str,
    process: ServerProcess,
    client: str,
    duration: float,
    where: Placement,
) -> None:
    """One repetition of every test between one running server and one client library."""
    server = process.library
    label = f"{server} server, {client} client, {loop}"
    single = [t for t in results.tests if not t.startswith("concurrent")]
    concurrent = [t for t in results.tests if t.startswith("concurrent")]
    for tests, (server_cpu, client_cpu) in (
        (single, where.single),
        (concurrent, where.concurrent),
    ):
        if not tests:
            continue
        process.pin(server_cpu)
        try:
            output = run_client(
                client,
                process.port,
                loop,
                tests,
                1,
                duration,
                client_cpu,
                process.pid,
                process.threaded,
                compression=results.compression,
            )
        except (Failed, OSError) as exc:
            for test in tests:
                results.cells.setdefault((loop, server, client, test), "failed")
            add_note(results, f"{label}: {', '.join(tests)} failed: {exc}")
            continue
        for test in tests:
            cell = results.cells.setdefault((loop, server, client, test), [])
            if isinstance(cell, list):
                cell += output["results"][test]
            for role, values in output.get("cpu", {}).get(test, {}).items():
                results.cpu.setdefault((loop, server, client, test, role), []).extend(values)
            others = output.get("others", {}).get(test, [])
            results.others += [v for v in others if v is not None]
            for name, values in output.get("latency", {}).get(test, {}).items():
                results.latency.setdefault((loop, server, client, test, name), []).extend(values)
        if "extensions" in output:
            results.extensions[loop, server, client] = output["extensions"]


def start_servers(
    results: Results, loop: str, pairs: list[tuple[str, str]]
) -> list[tuple[ServerProcess, str]]:
    """A running server for every pair whose libraries are installed and start."""
    running = []
    for server, client in pairs:
        missing = [name for name in (server, client) if not installed(name)]
        if missing:
            for test in results.tests:
                results.cells[loop, server, client, test] = "n/a"
            hint = INSTALL_HINTS.get(missing[0], INSTALL_HINT)
            add_note(results, f"{missing[0]}: n/a, not installed ({hint})")
            continue
        process = ServerProcess(server, loop, compression=results.compression)
        try:
            process.start()
        except (Failed, OSError) as exc:
            for test in results.tests:
                results.cells[loop, server, client, test] = "n/a"
            add_note(results, f"{server} server, {loop}: n/a, {exc}")
            continue
        running.append((process, client))
    return running


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def load_note(results: Results, before: float | None, after: float | None) -> None:
    """Say how busy the machine was: other processes make every figure lower and noisier."""
    if before is None or after is None:
        return
    note = f"load average (1 min) before the run: {before:.2f}, after: {after:.2f}"
    busy = (os.cpu_count() or 1) / 2
    if before > busy:
        note += " (the machine was busy before the run: figures are lower and noisier)"
    results.notes.insert(0, note)


def add_note(results: Results, note: str) -> None:
    if note not in results.notes:
        results.notes.append(note)
        print(f"  note: {note}", file=sys.stderr, flush=True)


def measure_all(
    results: Results,
    repetitions: int,
    duration: float,
    where: Placement,
    columns: list[str] = COLUMNS,
) -> None:
    pairs: list[tuple[str, str]] = []
    for library in WS_LIBRARIES:
        if library in columns:
            pairs.append((library, results.client))  # the library as server
            pairs.append((results.fixed, library))  # the library as client
    pairs += [(raw, raw) for raw in (RAW_PROTOCOL, RAW) if raw in columns]
    pairs = list(dict.fromkeys(pairs))  # fixed against fixed only once
    # The threaded libraries use no event loop: measured once, with the first loop's.
    sync_pairs = [(library, results.client) for library in SYNC_SERVERS if library in columns]
    sync_pairs += [(results.fixed, library) for library in SYNC_CLIENTS if library in columns]
    for loop in results.loops:
        if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            add_note(results, f"uvloop: n/a, not installed ({INSTALL_HINT})")
            continue
        loop_pairs = pairs
        if results.sync_loop is None:
            results.sync_loop = loop
            loop_pairs = pairs + sync_pairs
        # Every server runs for the whole loop, and each repetition goes round all the pairs:
        # a slow spell of the machine then spreads over the libraries instead of hitting one.
        running = start_servers(results, loop, loop_pairs)
        try:
            for repetition in range(repetitions):
                started = time.perf_counter()
                for process, client in running:
                    measure_round(results, loop, process, client, duration, where)
                print(
                    f"  {loop} loop, repetition {repetition + 1} of {repetitions}: "
                    f"{time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            for process, _ in running:
                process.stop()


# Reporting


def median(cell: Cell) -> float | None:
    return statistics.median(cell) if isinstance(cell, list) and cell else None


def format_rate(cell: Cell) -> str:
    value = median(cell)
    return f"{value:,.0f}" if value is not None else str(cell)


def format_ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or not denominator:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def tables(results: Results) -> list[str]:
    lines: list[str] = []
    if any(column in results.columns for column in ASYNC_COLUMNS):
        for loop in results.loops:
            for side in ("server", "client"):
                if side == "server":
                    peer = f"each library as server, with the {TITLES[results.client]} client"
                else:
                    peer = f"each library as client, against the {results.fixed} server"
                lines += [f"### {loop} loop: {peer}", ""]
                lines += rate_table(results, loop, side, ASYNC_COLUMNS)
                lines += ["", "Ratios: ÷ websockets / ÷ raw TCP (limit); higher is better.", ""]
                lines.append("| ratios | " + " | ".join(TITLES[c] for c in WS_LIBRARIES) + " |")
                lines.append("|---|" + "---:|" * len(WS_LIBRARIES))
                for test in results.tests:
                    base = median(results.cell(loop, side, "websockets", test))
                    limit = median(results.cell(loop, side, RAW, test))
                    cells = []
                    for column in WS_LIBRARIES:
                        value = median(results.cell(loop, side, column, test))
                        cells.append(f"{format_ratio(value, base)} / {format_ratio(value, limit)}")
                    lines.append(f"| {test_title(test)} | " + " | ".join(cells) + " |")
                lines += ["", f"CPU time of the {side} per message, in µs; lower is better.", ""]
                lines += cpu_table(results, loop, side, ASYNC_COLUMNS)
                lines.append("")
                if side == "server":
                    lines += latency_table(results, loop, WS_LIBRARIES)
    if any(column in results.columns for column in SYNC_CLIENTS):
        lines += sync_tables(results)
    return lines


def sync_tables(results: Results) -> list[str]:
    """The threads section: the sync servers, then the sync clients, with the fixed peer."""
    loop = results.sync_loop
    if loop is None:
        return ["### threads: not measured (no event loop to run the fixed peer on)", ""]
    lines: list[str] = []
    for side, columns in (("server", SYNC_SERVERS), ("client", SYNC_CLIENTS)):
        if side == "server":
            client = TITLES[results.client]
            peer = f"each library's sync server, with the {client} client"
            if results.client != WSLOAD:
                peer += f" on {loop}"
        else:
            peer = f"each library's sync client, against the {results.fixed} server on {loop}"
        lines += [f"### threads, no event loop: {peer}", ""]
        lines += rate_table(results, loop, side, columns)
        lines += ["", f"Ratios: ÷ {TITLES[SYNC_BASE]}; higher is better.", ""]
        lines.append("| ratios | " + " | ".join(TITLES[c] for c in columns) + " |")
        lines.append("|---|" + "---:|" * len(columns))
        for test in results.tests:
            base = median(results.cell(loop, side, SYNC_BASE, test))
            cells = [
                format_ratio(median(results.cell(loop, side, column, test)), base)
                for column in columns
            ]
            lines.append(f"| {test_title(test)} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"CPU time of the {side} per message, all its threads, in µs; lower is better.",
            "",
        ]
        lines += cpu_table(results, loop, side, columns)
        lines.append("")
        if side == "server":
            lines += latency_table(results, loop, columns)
    return lines


def latency_table(results: Results, loop: str, columns: list[str]) -> list[str]:
    """p50 / p99 of the round trips of the concurrent tests, with the servers of ``columns``;
    nothing if no client measured them (only wsload does)."""
    tests = [test for test in results.tests if test.startswith("concurrent")]
    cells = {
        (test, column): [
            results.latency_cell(loop, "server", column, test, name) for name in ("p50", "p99")
        ]
        for test in tests
        for column in columns
    }
    if not any(value is not None for pair in cells.values() for value in pair):
        return []
    lines = [
        "Latency of a round trip (send to echo received), p50 / p99 of all the connections' "
        "round trips, in µs; lower is better.",
        "",
        "| latency | " + " | ".join(TITLES[c] for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for test in tests:
        row = []
        for column in columns:
            p50, p99 = cells[test, column]
            row.append("n/a" if p50 is None or p99 is None else f"{p50:,.0f} / {p99:,.0f}")
        lines.append(f"| {test_title(test)} | " + " | ".join(row) + " |")
    return [*lines, ""]


def client_note(results: Results) -> str | None:
    """What wsload itself cost, against the servers it measured."""
    if results.client != WSLOAD:
        return None
    parts = []
    for test in results.tests:
        own: list[float] = []
        servers: list[float] = []
        for loop in results.loops:
            for column in [*WS_LIBRARIES, *SYNC_SERVERS]:
                if column in results.columns:
                    client = results.cpu_cell(loop, "server", column, test, "client")
                    server = results.cpu_cell(loop, "server", column, test)
                    own += [] if client is None else [client]
                    servers += [] if server is None else [server]
        if own and servers:
            parts.append(
                f"{test_title(test)}: {statistics.median(own):,.1f} µs "
                f"(servers {min(servers):,.1f} to {max(servers):,.1f} µs)"
            )
    if not parts:
        return None
    return (
        "wsload's own CPU time per message, median over the servers measured (most of it is "
        "the kernel's, sending over loopback): " + "; ".join(parts)
    )


def rate_table(results: Results, loop: str, side: str, columns: list[str]) -> list[str]:
    lines = ["| messages/s | " + " | ".join(TITLES[c] for c in columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    for test in results.tests:
        cells = [format_rate(results.cell(loop, side, c, test)) for c in columns]
        lines.append(f"| {test_title(test)} | " + " | ".join(cells) + " |")
    return lines


def cpu_table(results: Results, loop: str, side: str, columns: list[str]) -> list[str]:
    lines = ["| µs/message | " + " | ".join(TITLES[c] for c in columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    for test in results.tests:
        cpu = [results.cpu_cell(loop, side, c, test) for c in columns]
        cells = ["n/a" if value is None else f"{value:,.1f}" for value in cpu]
        lines.append(f"| {test_title(test)} | " + " | ".join(cells) + " |")
    return lines


def sync_notes(results: Results, loop: str) -> list[str]:
    """What the threads section's figures are: printed under the tables."""
    notes = [
        f"threads section: the sync servers and clients run no event loop, so they were "
        f"measured once, in the same rounds as the {loop} loop's libraries and with the same "
        f"fixed peers ({TITLES[results.client]} client, {results.fixed} server on that loop): "
        f"their figures compare with the {loop} tables "
        "too (e.g. socketeer sync with socketeer). A sync process is pinned whole, all its "
        "threads, like the others; its CPU time per message counts all its threads (for the "
        "server, the threads alive during the run, which hold the connections throughout)",
        "threads section, threads per connection: socketeer sync and websockets sync start a "
        "reading thread for each connection, and their servers a handler thread too; "
        "websocket-client starts none, reading in the thread that calls `recv`, as "
        "socketeer sync's `recv` also does while nobody else reads (its reading thread then "
        "only keeps the deadlines)",
    ]
    if any(test.startswith("concurrent") for test in results.tests):
        notes.append(
            "threads section, 200 clients: a sync server runs two threads per connection "
            "(400 for 200 clients); a sync client drives each connection from a thread of its "
            "own (200 threads, plus socketeer's and websockets' 200 reading threads), each "
            "stopping at the same deadline as the other tests"
        )
    if "websocket-client" in results.columns:
        notes.append(
            "websocket-client is a client only; it has no compression and no message size "
            "limit to set, and sends binary messages with `send_binary`"
        )
    return notes


def spread_note(results: Results) -> str | None:
    worst: tuple[float, str] | None = None
    for (loop, server, client, test), cell in results.cells.items():
        if isinstance(cell, list) and len(cell) > 1 and min(cell) > 0:
            spread = max(cell) / min(cell) - 1
            if worst is None or spread > worst[0]:
                worst = (spread, f"{test_title(test)}, {server} server, {client} client, {loop}")
    if worst is None:
        return None
    return f"largest spread between repetitions: {worst[0]:.0%} ({worst[1]})"


def report(
    results: Results, where: Placement, repetitions: int, duration: float, seconds: float
) -> str:
    now = datetime.datetime.now().astimezone()
    versions = ", ".join(
        f"{name} {version(name)}"
        for name in [
            "socketeer",
            "websockets",
            "picows",
            "aiofastnet",
            "aiohttp",
            "uvloop",
            "websocket-client",
        ]
    )
    lines = [
        "# Echo benchmark",
        "",
        f"- date: {now:%Y-%m-%d %H:%M %Z}; the run took {seconds:.0f} s",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}",
        f"- peers: as server, each library answers the {TITLES[results.client]} client"
        + (
            " (`benchmarks/wsload.c`: one thread, epoll, compiled with `cc -O2`; its "
            "latencies are per round trip, CLOCK_MONOTONIC)"
            if results.client == WSLOAD
            else ""
        )
        + f"; as client, each talks to the {results.fixed} server; the raw TCP columns are "
        "a raw client (Python, on the event loop) "
        "against a raw server, no WebSocket at all: `raw TCP, Protocol` echoes with "
        "`asyncio.Protocol.data_received`, `raw TCP (limit)` with `asyncio.BufferedProtocol` "
        "reading into a buffer allocated once"
        + (
            "; the threaded (sync) servers and clients, which use no event loop, have a "
            "section of their own (threads), with the same fixed peers"
            if any(column in results.columns for column in SYNC_CLIENTS)
            else ""
        ),
        f"- placement: {where.description}",
        "- memory allocator: "
        + (
            "glibc with mmap and trim thresholds at 1 GiB (`--tuned-malloc`)"
            if all(os.environ.get(k) == v for k, v in TUNED_MALLOC.items())
            else "the default (`--tuned-malloc` keeps freed memory, for steadier big messages)"
        ),
        f"- method: a server process and a load-generator process over 127.0.0.1; medians of "
        f"{repetitions} runs of {duration:g} s each after a warm-up, the runs of all the "
        "libraries interleaved; binary messages; "
        "compression off; message size limit 16 MiB; everything else is each library's "
        "default. Echo is one connection, one message in flight (round trips/s); pipelined "
        "keeps that many in flight on one connection; N clients is N connections each "
        "doing request/response (messages/s in total)",
    ]
    if version("aiofastnet") != "not installed":
        lines.append(
            "- picows sends and receives through aiofastnet's transports (its default when "
            "aiofastnet is installed), not the event loop's"
        )
    lines.append("")
    lines += tables(results)
    notes = list(results.notes)
    if results.sync_loop is not None and any(c in results.columns for c in SYNC_CLIENTS):
        notes += sync_notes(results, results.sync_loop)
    own = client_note(results)
    if own is not None:
        notes.append(own)
    if results.client == WSLOAD and RAW in results.columns:
        notes.append(
            "the raw TCP columns are a Python client against a Python server, in both tables: "
            'the servers\' "÷ raw TCP (limit)" ratios compare WebSocket servers driven by '
            "wsload with raw TCP driven from Python, so they may exceed 1"
        )
    if results.others:
        notes.append(
            "other processes on the machine took a median "
            f"{statistics.median(results.others):.0%} (at most {max(results.others):.0%}) "
            "of the benchmark's CPUs during a run; when that is high, the rates are low and "
            "noisy, and the CPU time per message is the better comparison"
        )
    spread = spread_note(results)
    if spread is not None:
        notes.append(spread)
    if notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


# Compression on (--compression)


def deflated_size(test: str, level: int = -1, wbits: int = 15, mem_level: int = 8) -> float:
    """Mean bytes of a message of ``test`` after deflate, as sent with context takeover
    (by default zlib's default level, a 15-bit window and memLevel; RFC 7692's empty tail
    removed)."""
    import zlib

    payloads = deflate_payloads(test)
    compressor = zlib.compressobj(level, zlib.DEFLATED, -wbits, mem_level)
    total = 0
    for payload in payloads:
        total += len(compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)) - 4
    return total / len(payloads)


def compression_tables(results: Results) -> list[str]:
    columns = [column for column in DEFLATE_LIBRARIES if column in results.columns]
    base = results.fixed
    lines: list[str] = []
    for loop in results.loops:
        for side in ("server", "client"):
            if side == "server":
                peer = f"each library as server, with the {results.fixed} client"
            else:
                peer = f"each library as client, against the {results.fixed} server"
            lines += [f"### {loop} loop, compression on: {peer}", ""]
            lines += rate_table(results, loop, side, columns)
            lines += [
                "",
                f"Ratios to {TITLES[base]}: round trips/s, this library's ÷ {TITLES[base]}'; "
                f"CPU time of the {side}, {TITLES[base]}' ÷ this library's; higher is better.",
                "",
            ]
            lines.append("| ratios | " + " | ".join(TITLES[c] for c in columns) + " |")
            lines.append("|---|" + "---:|" * len(columns))
            for test in results.tests:
                rate = median(results.cell(loop, side, base, test))
                cpu = results.cpu_cell(loop, side, base, test)
                cells = []
                for column in columns:
                    value = median(results.cell(loop, side, column, test))
                    own = results.cpu_cell(loop, side, column, test)
                    cells.append(f"{format_ratio(value, rate)} / {format_ratio(cpu, own)}")
                lines.append(f"| {test_title(test)} | " + " | ".join(cells) + " |")
            lines += [
                "",
                f"CPU time of the {side} per round trip, all its threads, in µs; lower is better.",
                "",
            ]
            lines += cpu_table(results, loop, side, columns)
            lines.append("")
    return lines


def compression_report(
    results: Results, where: Placement, repetitions: int, duration: float, seconds: float
) -> str:
    now = datetime.datetime.now().astimezone()
    versions = ", ".join(
        f"{name} {version(name)}" for name in ["socketeer", "websockets", "aiohttp", "uvloop"]
    )
    content = "; ".join(
        f"{test_title(test)}: {deflated_size(test):,.0f} B" for test in results.tests
    )
    # What the default levels cost on the wire, with the window and memLevel that socketeer
    # and websockets negotiate and use by default (see the negotiated headers).
    levels = "; ".join(
        f"{test_title(test)}: {deflated_size(test, 6, 12, 5):,.0f} B at level 6, "
        f"{deflated_size(test, 1, 12, 5):,.0f} B at level 1"
        for test in results.tests
        if test.startswith("json")
    )
    negotiated = sorted(
        {(server, client, header) for (_, server, client), header in results.extensions.items()}
    )
    lines = [
        "# Echo benchmark, compression on",
        "",
        f"- date: {now:%Y-%m-%d %H:%M %Z}; the run took {seconds:.0f} s",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}",
        f"- peers: as server, each library answers the {results.fixed} client "
        f'(`{DEFLATE_CONNECT.get(results.fixed, "connect")}(compression="deflate")`); as '
        f"client, each offers deflate to the {results.fixed} server; picows has no "
        "compression",
        "- compression: permessage-deflate on every connection, each library's default "
        "settings (window bits, memory level, context takeover), as negotiated below",
        "- content: binary messages, JSON-like text (slices of one generated JSON document, "
        "fixed seed, all different, sent in turn) and random bytes; after deflate (zlib "
        f"level 6, 15-bit window, context takeover) a message takes on average {content}",
        f"- placement: {where.description.split(';')[0]}",
        f"- method: a server process and a load-generator process over 127.0.0.1; medians of "
        f"{repetitions} runs of {duration:g} s each after a warm-up, the runs of all the "
        "libraries interleaved; one connection, one message in flight (round trips/s); "
        "message size limit 16 MiB; everything else is each library's default",
        "- CPU time: all the threads of each process (aiohttp compresses messages of more than "
        "16 KiB in a thread of its event loop's default executor; the others use none)",
        "- zlib level: websockets compresses at zlib's default (6), socketeer and aiohttp at 1 "
        "(the fastest); with a 12-bit window and memLevel 5 a message takes on average "
        f"{levels}",
    ]
    if negotiated:
        lines.append("- negotiated (the server's Sec-WebSocket-Extensions):")
        lines += [
            f"  - {TITLES[server]} server, {TITLES[client]} client: `{header}`"
            for server, client, header in negotiated
        ]
    lines.append("")
    lines += compression_tables(results)
    notes = list(results.notes)
    if results.others:
        notes.append(
            "other processes on the machine took a median "
            f"{statistics.median(results.others):.0%} (at most {max(results.others):.0%}) "
            "of the benchmark's CPUs during a run; when that is high, the rates are low and "
            "noisy, and the CPU time per round trip is the better comparison"
        )
    spread = spread_note(results)
    if spread is not None:
        notes.append(spread)
    if notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def main_compression(args: argparse.Namespace, where: Placement, loops: list[str]) -> int:
    """``--compression``: the echo benchmark with permessage-deflate, its own results file."""
    repetitions = args.repetitions or (1 if args.quick else 3)
    duration = args.duration or (0.5 if args.quick else 1.0)
    output = args.output or (None if args.quick else COMPRESSION_RESULTS)
    fixed = DEFLATE_FIXED if installed(DEFLATE_FIXED) else "socketeer"
    wanted = set(args.only or DEFLATE_LIBRARIES) | {fixed}  # the ratios need the fixed peer
    columns = [library for library in DEFLATE_LIBRARIES if library in wanted]
    results = Results(loops, list(DEFLATE_TESTS), fixed, columns, compression=True)
    if fixed != DEFLATE_FIXED:
        add_note(results, f"{DEFLATE_FIXED} is not installed: the fixed peer is {fixed} instead")
    title = f"Echo benchmark, compression on ({where.description})"
    return run_and_report(results, repetitions, duration, where, title, compression_report, output)


# Profiling


def profile(library: str, loop: str, test: str, duration: float, where: Placement) -> str:
    """cProfile the server of ``library`` under one test; the top 15 functions by tottime.

    A threaded server profiles each of its connections' threads, and merges them.
    """
    client, _ = fixed_client(None)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "server.prof")
        process = ServerProcess(library, loop, profile=path)
        try:
            process.start()
            process.pin(where.single[0])
            output = run_client(client, process.port, loop, [test], 1, duration, where.single[1])
        finally:
            process.stop()
        stream = io.StringIO()
        stats = pstats.Stats(path, stream=stream)
        stats.strip_dirs().sort_stats("tottime").print_stats(15)
    rate = output["results"][test][0]
    if library in SYNC_SERVERS:
        what = (
            f"{library} server (threads: the profiles of the connections' threads, merged; "
            "time spent waiting in a thread counts as that function's time)"
        )
        peer = f"the {TITLES[client]} client" + (
            "" if client == WSLOAD else f" on the {loop} loop"
        )
    else:
        what = f"{library} server"
        peer = f"the {TITLES[client]} client" + ("" if client == WSLOAD else f", {loop} loop")
    return (
        f"{what} under {test_title(test)} with {peer}, "
        f"{where.description}: {rate:,.0f} messages/s while profiled\n{stream.getvalue()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset in under a minute")
    parser.add_argument("--repetitions", type=int, help="runs per figure (3; 1 with --quick)")
    parser.add_argument("--duration", type=float, help="seconds per run (1; 0.5 with --quick)")
    parser.add_argument(
        "--placement",
        choices=["same", "split", "none"],
        help="CPUs of server and client in single-connection tests: the same CPU (default), "
        "one each (default with --profile, so that the server's time in send() does not "
        "include the client's work), or not pinned",
    )
    parser.add_argument(
        "--output", type=Path, help=f"write the results as markdown (default: {RESULTS.name})"
    )
    parser.add_argument(
        "--profile",
        metavar="LIBRARY",
        choices=[*WS_LIBRARIES, RAW_PROTOCOL, RAW, *SYNC_SERVERS],
        help="instead: cProfile this library's server under --profile-test",
    )
    parser.add_argument("--profile-test", default="echo:16", help="e.g. echo:16, pipeline:16:64")
    parser.add_argument("--loop", choices=LOOPS, help="only this event loop")
    parser.add_argument(
        "--client",
        choices=[WSLOAD, "picows"],
        help="the fixed client of the server tables: wsload, the C load generator (default, "
        "when a C compiler builds it), or picows (the fixed server's library; socketeer "
        "without picows)",
    )
    parser.add_argument(
        "--tuned-malloc",
        action="store_true",
        help="run servers and clients with glibc's mmap and trim thresholds at 1 GiB: no page "
        "faults for memory allocated and freed per read or per message",
    )
    parser.add_argument(
        "--only",
        type=lambda text: text.split(","),
        help=f"only these columns, e.g. socketeer,websockets,raw (of {','.join(COLUMNS)})",
    )
    parser.add_argument(
        "--compression",
        action="store_true",
        help="instead: echo with permessage-deflate on, socketeer against websockets and "
        f"aiohttp, written to {COMPRESSION_RESULTS.name} (no file with --quick)",
    )
    args = parser.parse_args(argv)
    unknown = [column for column in args.only or [] if column not in COLUMNS]
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)} (columns: {','.join(COLUMNS)})")
    if args.compression:
        unknown = [column for column in args.only or [] if column not in DEFLATE_LIBRARIES]
        if unknown:
            parser.error(f"--only with --compression: {', '.join(unknown)} has no compression")
        if args.profile is not None:
            parser.error("--profile does not go with --compression")
    if args.profile is not None:
        refused = profile_refused(args.profile)
        if refused is not None:
            parser.error(refused)
    if args.tuned_malloc:
        os.environ.update(TUNED_MALLOC)  # inherited by every server and client
    where = placement(args.placement or ("split" if args.profile else "same"))
    loops = [args.loop] if args.loop else (["asyncio"] if args.quick else LOOPS)
    if args.compression:
        return main_compression(args, where, loops)
    if args.profile is not None:
        print(profile(args.profile, loops[0], args.profile_test, args.duration or 3.0, where))
        return 0
    repetitions = args.repetitions or (1 if args.quick else 3)
    duration = args.duration or (0.5 if args.quick else 1.0)
    tests = QUICK_TESTS if args.quick else SINGLE_TESTS + CONCURRENT_TESTS
    output = args.output or (None if args.quick else RESULTS)
    fixed = "picows" if installed("picows") else "socketeer"
    client, why = fixed_client(args.client)
    if args.client == WSLOAD and client != WSLOAD:
        parser.error(f"--client wsload: {why}")
    results = Results(loops, tests, fixed, args.only or list(COLUMNS), client=client)
    if fixed != "picows":
        add_note(results, "picows is not installed: the fixed peer is socketeer instead")
    if why is not None:
        add_note(results, why)
    title = f"Echo benchmark ({where.description}; {TITLES[client]} client for the servers)"
    return run_and_report(results, repetitions, duration, where, title, report, output)


def fixed_client(asked: str | None) -> tuple[str, str | None]:
    """The fixed client of the server tables, and a note when it is not wsload."""
    python = "picows" if installed("picows") else "socketeer"
    if asked is not None and asked != WSLOAD:
        return python, (
            f"the servers were measured with the {python} client (`--client`), not wsload, "
            "whose CPU time per message is a fraction of theirs: the Python client is the "
            "bottleneck of the 200-client test, and the servers' ratios are closer to 1"
        )
    try:
        build_wsload()
    except MissingError as exc:
        return python, (
            f"wsload, the C load generator, was not built ({exc}): the servers were measured "
            f"with the {python} client instead, which costs about as much CPU per message as "
            "they do, so the 200-client test's ratios are closer to 1, and no latency is given"
        )
    return WSLOAD, None


def run_and_report(
    results: Results,
    repetitions: int,
    duration: float,
    where: Placement,
    title: str,
    make_report: Callable[[Results, Placement, int, float, float], str],
    output: Path | None,
) -> int:
    """Measure every figure of ``results``, print the report, write it to ``output``."""
    print(title, file=sys.stderr, flush=True)
    load_before = load_average()
    started = time.perf_counter()
    measure_all(results, repetitions, duration, where, results.columns)
    load_note(results, load_before, load_average())
    text = make_report(results, where, repetitions, duration, time.perf_counter() - started)
    print(text)
    if output is not None:
        output.write_text(text)
        print(f"(written to {output})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
