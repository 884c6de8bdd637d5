"""Load and soak over loopback: 10,000 idle connections, a long echo soak, shutdown under load.

Not part of ``make bench`` nor ``make test``: run it with ``make soak`` or
``python benchmarks/soak.py`` (about 20 minutes: the soak alone lasts ``--duration``, 600 s
by default); ``--duration 30`` gives a short run while developing, ``--parts memory`` or
``--parts soak`` one half. The report is printed, and written to
``benchmarks/SOAK_RESULTS.md`` by a full run (both parts, the soak at least 600 s long), or
wherever ``--output`` says.

Method
------

**Memory per idle connection** (``memory``): ``benchmarks/scale.py``'s measurement, at
:data:`CONNECTIONS` connections, reused as it is (``scale.measure_memory_once``, tried
again once if it fails): for socketeer and websockets, compression off then on, a new
server process per figure (``scale_servers.py``, each library's defaults but
``compression``), a few connections opened and closed first, then :data:`CONNECTIONS`
connections held by :data:`MEMORY_PROCESSES` load generators (``scale_clients.py``,
socketeer's client, which offers permessage-deflate when compression is on); the figure is
the growth of the server's resident set (VmRSS), garbage collected and settled, divided by
the connections; the median of ``--repetitions`` runs; then a separate run per setting with
tracemalloc on in the server (its Python heap, zlib's buffers included). With compression
on, the servers' own objects say how many zlib compressors and decompressors the idle
connections hold. Both libraries are measured in the same run, one after the other, with
the same settings.

**Soak** (``soak``): a socketeer server started the way users start one,
``python -m socketeer serve soak_app:handler --host 127.0.0.1 --port 0`` (the
application, ``soak_app.py``, is ``socketeer echo``'s handler plus counters, a sampler
thread and tracemalloc; uvloop through its event loop policy when ``--loop uvloop``), and
``--clients`` connections from :data:`CLIENT_PROCESSES` load generators
(``soak_clients.py``, socketeer's client, on the same loop), each connection echoing
messages of 64 B to 4 KiB of JSON-like text (text and binary in turn) at ``--rate``
messages per second, for ``--duration`` seconds. Every round trip is timed (``send()`` to
``recv()``), checked, and counted in a histogram per window of ``--window`` seconds;
every exception, close and log record of WARNING and above is counted on both sides. The
server samples its resident set and the Python heap (tracemalloc) every ``--interval``
seconds; the slope after ``--warmup`` seconds (least squares) says whether memory grows.
With ``--snapshots``, a tracemalloc snapshot taken at the end of the warm-up is compared
with one at the end of the soak: the lines whose allocations grew most are listed (a
snapshot holds the server's event loop for seconds: the latencies of that window show it).

**Graceful shutdown under load**: at the end of the soak, with every client still echoing,
the server process gets SIGTERM, as a process manager would send; it must close every
connection with 1001 (going away), wait for its handlers (at most its close timeout,
``socketeer.options.CLOSE_TIMEOUT``) and exit with 0. Counted: how each client connection
ended (its close frames both ways, or the exception), how each handler ended and the
handlers still running when the process exits (``atexit`` in the application), its exit
status and how long it took.

Placement: as ``scale.py``, the server on the first CPU and the load generators on the
last. Every load loop is bounded in count and in time; every process started stops when
this script ends, whatever way it ends.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import scale
from echo import Failed, cpu_model, load_average, version
from echo_clients import run_time
from scale import RUNNING, Child, Where, eager_zlib_note, memory_tables, placement, stop_all
from scale_servers import fd_limit
from soak_clients import SIZES, Histogram

from socketeer.options import CLOSE_TIMEOUT

HERE = Path(__file__).resolve().parent
LOADS = HERE / "soak_clients.py"
RESULTS = HERE / "SOAK_RESULTS.md"

PARTS = ["memory", "soak"]
LIBRARIES = ["socketeer", "websockets"]
CONNECTIONS = 10_000
"""Memory: idle connections on one server."""
MEMORY_PROCESSES = 2
"""Memory: load generators holding them (each its own file-descriptor limit), each opening
``OPEN_BATCH`` (50) at a time."""
ATTEMPTS = 2
"""Memory: tries per figure."""
REPETITIONS = 3
"""Memory: runs per figure (the median)."""
CLIENTS = 1000
"""Soak: connections echoing."""
CLIENT_PROCESSES = 2
RATE = 1.0
"""Soak: messages per second per connection."""
DURATION = 600.0
"""Soak: seconds."""
GRACE = 90.0
"""Soak: seconds after the soak for the last snapshot and the shutdown; past them the
clients close their connections themselves (counted: the server did not)."""
SERVER_START = 30.0
"""Seconds for the server to print its URL."""
SNAPSHOT_TIMEOUT = 60.0
EXIT_MARGIN = 10.0
"""Seconds the server process gets to exit after SIGTERM, past twice its close timeout
(``Server.close()`` waits at most that long for the closing handshakes, then as long for the
handlers): then it is killed."""
LIFETIME = 1800.0
"""Seconds past the soak after which the server shuts itself down, should this script
disappear without stopping it (it also does when its parent process changes)."""


# Settings


@dataclass
class Settings:
    parts: list[str]
    loop: str
    connections: int
    repetitions: int
    tracemalloc: bool
    clients: int
    rate: float
    duration: float
    window: float
    warmup: float
    interval: float
    compression: bool
    snapshots: bool


def settings_from(args: argparse.Namespace) -> Settings:
    duration = args.duration
    loop = args.loop or ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    return Settings(
        parts=args.parts or list(PARTS),
        loop=loop,
        connections=args.connections,
        repetitions=args.repetitions,
        tracemalloc=args.tracemalloc,
        clients=args.clients,
        rate=args.rate,
        duration=duration,
        window=args.window or (60.0 if duration >= 300 else max(1.0, duration / 5)),
        warmup=args.warmup if args.warmup is not None else min(60.0, duration / 5),
        interval=args.interval or max(1.0, min(10.0, duration / 30)),
        compression=args.compression,
        snapshots=args.snapshots and args.tracemalloc,
    )


# Memory per idle connection: scale.py's measurement


def measure_memory(settings: Settings, where: Where) -> scale.Results:
    memory = scale.Settings(
        loops=[settings.loop],
        libraries=list(LIBRARIES),
        benchmarks=["memory"],
        repetitions=settings.repetitions,
        duration=0.0,
        clients=0,
        burst=0,
        singles=0,
        connections=settings.connections,
        memory_processes=MEMORY_PROCESSES,
        settle=scale.SETTLE,
        tracemalloc=settings.tracemalloc,
        quick=False,
        fixed="socketeer",
    )
    results = scale.Results(memory)
    runs = [False] * settings.repetitions + ([True] if settings.tracemalloc else [])
    for number, traced in enumerate(runs):
        started = time.perf_counter()
        for compression in (False, True):
            for library in LIBRARIES:
                measure_memory_once(results, settings, library, compression, traced, where)
        what = "tracemalloc" if traced else f"repetition {number + 1} of {settings.repetitions}"
        print(
            f"  memory, {settings.connections:,} connections, {what}: "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return results


def measure_memory_once(
    results: scale.Results,
    settings: Settings,
    library: str,
    compression: bool,
    traced: bool,
    where: Where,
) -> None:
    """``scale.measure_memory_once``, tried again if it fails (a handshake timing out on a
    busy machine); a figure that fails every time is reported as such."""
    setting = "on" if compression else "off"
    what = f"memory, {library}, compression {setting}" + (", tracemalloc" if traced else "")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            scale.measure_memory_once(results, settings.loop, library, compression, traced, where)
            return
        except (Failed, OSError) as exc:
            if attempt < ATTEMPTS:
                results.note(f"{what}: attempt {attempt} failed, tried again: {exc}")
            else:
                keys = [("traced" if traced else "rss", settings.loop, library, setting)]
                results.fail(keys, scale.failure(exc), f"{what}: {exc}")


# Soak: the processes


class ServeProcess(Child):
    """``python -m socketeer serve soak_app:handler``: stopped by SIGTERM, not by stdin."""

    def __init__(self, command: list[str], env: dict[str, str], stderr: Path) -> None:
        super().__init__("socketeer serve", command)
        self.env = env
        self.stderr = stderr

    def start(self) -> None:
        with open(self.stderr, "wb") as stderr:
            self.process = subprocess.Popen(
                self.command,
                cwd=HERE,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                bufsize=0,
            )
        RUNNING.append(self)

    def ask_to_stop(self, process: subprocess.Popen[bytes]) -> None:
        """Tell the server to stop: SIGTERM, as a process manager would."""
        if process.poll() is None:
            process.terminate()


def start_server(settings: Settings, samples: Path, where: Where) -> tuple[ServeProcess, int]:
    command = [sys.executable, "-m", "socketeer", "serve", "soak_app:handler"]
    command += ["--host", "127.0.0.1", "--port", "0", "--log-level", "warning"]
    env = dict(os.environ)
    env.update(
        SOAK_SAMPLES=str(samples),
        SOAK_INTERVAL=str(settings.interval),
        SOAK_LOOP=settings.loop,
        SOAK_TRACEMALLOC="1" if settings.tracemalloc else "0",
        SOAK_PARENT=str(os.getpid()),
        SOAK_LIFETIME=str(settings.duration + LIFETIME),
    )
    server = ServeProcess(command, env, samples.with_suffix(".stderr"))
    server.start()
    line = server.read(SERVER_START)
    found = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
    if found is None:
        server.stop()
        raise Failed(f"socketeer serve did not start: {line!r}")
    server.pin(where.server)
    return server, int(found.group(1))


def start_clients(settings: Settings, port: int, where: Where) -> list[Child]:
    clients = []
    for number, share in enumerate(scale.split(settings.clients, CLIENT_PROCESSES)):
        command = [sys.executable, str(LOADS), "--port", str(port)]
        command += ["--connections", str(share), "--rate", str(settings.rate)]
        command += ["--duration", str(settings.duration), "--window", str(settings.window)]
        command += ["--grace", str(GRACE), "--loop", settings.loop, "--seed", str(number)]
        if settings.compression:
            command.append("--compression")
        if where.clients is not None:
            command += ["--cpu", str(where.clients)]
        client = Child(f"load generator {number}", command)
        client.start()
        clients.append(client)
    for client in clients:
        client.ready = client.read_json(60 + settings.clients * 0.05)
    return clients


def tell(child: Child, line: str) -> None:
    assert child.process is not None and child.process.stdin is not None
    child.process.stdin.write(line.encode() + b"\n")


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The records the server wrote so far (a line it is writing now is left out)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


def wait_snapshot(path: Path, number: int, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in read_samples(path):
            snapshot = record.get("snapshot")
            if snapshot and snapshot.get("number") == number:
                return dict(snapshot)
        time.sleep(0.2)
    return None


# Soak: the run


@dataclass
class Soak:
    """What the soak and the shutdown saw."""

    settings: Settings
    t0: float = 0.0
    term: float | None = None
    """When SIGTERM was sent."""
    exit_code: int | None = None
    exit_seconds: float | None = None
    cpu: float | None = None
    """The server's CPU time during the soak, as a share of one CPU."""
    extensions: str | None = None
    opened: int = 0
    windows: dict[int, list[Histogram]] = field(default_factory=dict)
    loads: dict[int, float] = field(default_factory=dict)
    """The load average (1 min) when each window was over."""
    finals: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    """The server's counts at exit."""
    stderr: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def window(self, index: int) -> Histogram:
        merged = Histogram()
        for histogram in self.windows.get(index, []):
            merged.merge(histogram)
        return merged


def run_soak(settings: Settings, where: Where) -> Soak:
    soak = Soak(settings)
    with tempfile.TemporaryDirectory(prefix="soak-") as directory:
        samples = Path(directory) / "samples.jsonl"
        server, port = start_server(settings, samples, where)
        try:
            clients = start_clients(settings, port, where)
            drive(soak, server, clients, samples)
        finally:
            stop_all()
            soak.samples = [r["sample"] for r in read_samples(samples) if "sample" in r]
            soak.snapshots = [r["snapshot"] for r in read_samples(samples) if "snapshot" in r]
            finals = [r["final"] for r in read_samples(samples) if "final" in r]
            soak.final = finals[-1] if finals else None
            try:
                soak.stderr = samples.with_suffix(".stderr").read_text().splitlines()
            except OSError:
                pass
    return soak


def drive(soak: Soak, server: ServeProcess, clients: list[Child], samples: Path) -> None:
    settings = soak.settings
    soak.opened = sum(client.ready["ready"] for client in clients)
    soak.extensions = clients[0].ready.get("extensions")
    for client in clients:
        if client.ready["errors"]:
            soak.notes.append(f"{client.name}: failed to open: {client.ready['errors']}")
    soak.t0 = t0 = time.monotonic() + 1.0
    for client in clients:
        tell(client, f"go {t0}")
    print(
        f"soak: {soak.opened:,} connections, messages at {settings.rate:g}/s each, "
        f"{settings.duration:g} s",
        file=sys.stderr,
        flush=True,
    )
    cpu_before = run_time(server.pid, threads=True)
    snapshot_at = t0 + settings.warmup if settings.snapshots else math.inf
    soak_end = t0 + settings.duration
    while time.monotonic() < soak_end:
        if time.monotonic() >= snapshot_at:
            snapshot_at = math.inf
            os.kill(server.pid or 0, signal.SIGUSR1)
        timeout = min(soak_end, snapshot_at) - time.monotonic()
        for client, message in receive(clients, max(0.0, timeout)):
            add_window(soak, client, message)
    cpu_after = run_time(server.pid, threads=True)
    if cpu_before is not None and cpu_after is not None:
        soak.cpu = (cpu_after - cpu_before) / 1e9 / settings.duration
    if settings.snapshots:
        os.kill(server.pid or 0, signal.SIGUSR1)
        if wait_snapshot(samples, 2, SNAPSHOT_TIMEOUT) is None:
            soak.notes.append(f"no second tracemalloc snapshot in {SNAPSHOT_TIMEOUT:.0f} s")
    shut_down(soak, server)
    for client in clients:
        while True:
            message = client.read_json(GRACE + 60)
            if "final" in message:
                soak.finals.append(message["final"])
                add_window(soak, client, message["final"])
                break
            add_window(soak, client, message)


def receive(clients: list[Child], timeout: float) -> list[tuple[Child, dict[str, Any]]]:
    """The lines of output that came from the load generators within ``timeout``."""
    got = []
    for client in clients:
        while b"\n" in client.buffer:
            got.append((client, client.read_json(1.0)))
    if got:
        return got
    fds = {}
    for client in clients:
        assert client.process is not None and client.process.stdout is not None
        fds[client.process.stdout.fileno()] = client
    readable, _, _ = select.select(list(fds), [], [], timeout)
    for fd in readable:
        got.append((fds[fd], fds[fd].read_json(10.0)))
    return got


def add_window(soak: Soak, client: Child, message: dict[str, Any]) -> None:
    if "window" not in message:
        raise Failed(f"{client.name}: unexpected {message!r:.100}")
    index = message["window"]
    soak.windows.setdefault(index, []).append(Histogram.load(message["histogram"]))
    if len(soak.windows[index]) == CLIENT_PROCESSES:
        average = load_average()
        if average is not None:
            soak.loads[index] = average
        merged = soak.window(index)
        p50, p99 = merged.percentile(0.5), merged.percentile(0.99)
        if p50 is not None and p99 is not None:
            print(
                f"  window {index + 1}: {merged.count:,} round trips, p50 {p50 * 1e3:.2f} ms, "
                f"p99 {p99 * 1e3:.2f} ms, max {merged.max * 1e3:.1f} ms",
                file=sys.stderr,
                flush=True,
            )


def shut_down(soak: Soak, server: ServeProcess) -> None:
    process = server.process
    assert process is not None
    soak.term = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        soak.exit_code = process.wait(2 * CLOSE_TIMEOUT + EXIT_MARGIN)
        soak.exit_seconds = time.monotonic() - soak.term
    except subprocess.TimeoutExpired:
        soak.notes.append(
            f"the server did not exit {2 * CLOSE_TIMEOUT + EXIT_MARGIN:.0f} s after SIGTERM: "
            "killed"
        )
    print(
        f"shutdown: exit status {soak.exit_code} after {soak.exit_seconds or 0:.2f} s",
        file=sys.stderr,
        flush=True,
    )


# Soak: the figures


def slope(samples: list[dict[str, Any]], key: str, start: float, end: float) -> float | None:
    """Bytes per minute, least squares over the samples between ``start`` and ``end``."""
    points = [(s["time"], s[key]) for s in samples if start <= s["time"] <= end and s[key]]
    if len(points) < 3:
        return None
    times = [when for when, _ in points]
    values = [value for _, value in points]
    return float(statistics.linear_regression(times, values).slope * 60)


def sample_at(samples: list[dict[str, Any]], when: float) -> dict[str, Any] | None:
    before = [s for s in samples if s["time"] <= when]
    return before[-1] if before else None


def ms(seconds: float | None, digits: int = 2) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:,.{digits}f}"


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 1048576:,.1f}"


def kib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1024:+,.1f}"


def client_errors(soak: Soak) -> Counter[str]:
    errors: Counter[str] = Counter()
    for final in soak.finals:
        errors.update(final["errors"])
    return errors


def client_endings(soak: Soak) -> tuple[Counter[str], Counter[str]]:
    """How the client connections ended: before SIGTERM (errors), and after."""
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    term = math.inf if soak.term is None else soak.term
    for final in soak.finals:
        for when, ending in final["endings"]:
            (before if when < term else after)[ending] += 1
    return before, after


def logs(soak: Soak) -> Counter[str]:
    counted: Counter[str] = Counter()
    for final in soak.finals:
        counted.update({f"client: {k}": v for k, v in final.get("logs", {}).items()})
    if soak.final is not None:
        counted.update({f"server: {k}": v for k, v in soak.final["logs"].items()})
    return counted


def soak_checks(soak: Soak) -> list[tuple[str, bool]]:
    """The conditions of the issue, and whether they held."""
    settings = soak.settings
    before, after = client_endings(soak)
    errors = client_errors(soak)
    final = soak.final or {}
    ok_close = "ConnectionClosedOK: received 1001, sent 1001"
    server_endings = final.get("endings", {})
    failed = [k for k in server_endings if not k.startswith(("closed:", "ConnectionClosed"))]
    return [
        (f"{settings.clients:,} connections opened", soak.opened == settings.clients),
        ("no error on the clients' side (exceptions, echoes, timeouts)", not errors),
        ("no connection closed before SIGTERM", not before),
        ("no log record at WARNING or above, either side", not logs(soak)),
        (f"every client saw 1001 ({after.get(ok_close, 0):,})", after[ok_close] == soak.opened),
        (
            "every server connection closed with 1001 both ways",
            final.get("closes", {}).get("received 1001, sent 1001") == soak.opened,
        ),
        ("every handler ended on the close, none cancelled or failed", not failed),
        ("no handler running at exit", final.get("running") == 0),
        ("no connection left in the server at exit", final.get("connections") == 0),
        (
            f"the server exited with 0 within its close timeout ({CLOSE_TIMEOUT:g} s)",
            soak.exit_code == 0 and (soak.exit_seconds or math.inf) <= CLOSE_TIMEOUT,
        ),
    ]


def soak_section(soak: Soak) -> list[str]:
    s = soak.settings
    soak_end = soak.t0 + s.duration
    warm = soak.t0 + s.warmup
    windows = max(soak.windows) + 1 if soak.windows else 0
    sizes = ", ".join(f"{size} B ({share} %)" for size, share in SIZES)
    lines = [
        f"## Soak: {s.clients:,} clients echoing for {s.duration:g} s",
        "",
        f"`python -m socketeer serve soak_app:handler` on the {s.loop} loop; {s.clients:,} "
        f"connections from {CLIENT_PROCESSES} load generators (socketeer's client, "
        f"{s.loop}), each sending messages at {s.rate:g}/s ({s.clients * s.rate:,.0f}/s in "
        f"all), one at a time, of JSON-like text, {sizes}, text and binary in turn; compression "
        + (
            f"on (negotiated: `{soak.extensions}`)"
            if s.compression
            else "off (the clients offer none)"
        )
        + f"; keepalive pings every 20 s both ways (the defaults). Server memory sampled "
        f"every {s.interval:g} s; tracemalloc "
        + ("on in the server (one frame)" if s.tracemalloc else "off")
        + f". Warm-up: the first {s.warmup:g} s.",
        "",
    ]
    client_cpu = [f["cpu"] for f in soak.finals if f.get("cpu") is not None]
    if soak.cpu is not None and client_cpu:
        shares = ", ".join(f"{cpu / s.duration:.0%}" for cpu in client_cpu)
        lines += [
            f"CPU during the soak, as a share of one CPU: server {soak.cpu:.0%}; load "
            f"generators {shares}.",
            "",
        ]
    lines += [
        "Round trips (from `send()` to `recv()` returning), per window, in ms:",
        "",
        "| window | round trips/s | p50 | p90 | p99 | max | server RSS MiB | Python heap MiB "
        "| load average |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total = Histogram()
    for index in range(windows):
        merged = soak.window(index)
        total.merge(merged)
        start, end = index * s.window, min(s.duration, (index + 1) * s.window)
        at = sample_at(soak.samples, soak.t0 + end)
        average = soak.loads.get(index)
        lines.append(
            f"| {start:g}–{end:g} s | {merged.count / (end - start):,.0f} | "
            f"{ms(merged.percentile(0.5))} | {ms(merged.percentile(0.9))} | "
            f"{ms(merged.percentile(0.99))} | {ms(merged.max, 1)} | {mib(at and at['rss'])} | "
            f"{mib(at and at['traced'])} | {'' if average is None else f'{average:.1f}'} |"
        )
    lines.append(
        f"| **all** | {total.count / s.duration:,.0f} | {ms(total.percentile(0.5))} | "
        f"{ms(total.percentile(0.9))} | {ms(total.percentile(0.99))} | {ms(total.max, 1)} "
        "| | | |"
    )
    lines += ["", *memory_growth(soak, warm, soak_end), ""]
    lines += snapshot_lines(soak)
    lines += error_lines(soak)
    return lines


def memory_growth(soak: Soak, warm: float, soak_end: float) -> list[str]:
    half = (warm + soak_end) / 2
    first, last = sample_at(soak.samples, warm), sample_at(soak.samples, soak_end)
    idle = soak.samples[0] if soak.samples else None
    lines = [
        "Server memory after the warm-up (least-squares slope of the samples, KiB per minute; "
        "growth from the first sample after the warm-up to the last before SIGTERM):",
        "",
        "| | at start (no connection) | after warm-up | end of soak | growth | slope, "
        "KiB/min | slope, second half |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, title in (("rss", "resident set (VmRSS), MiB"), ("traced", "Python heap, MiB")):
        growth = None
        if first and last and first[key] is not None and last[key] is not None:
            growth = last[key] - first[key]
        lines.append(
            f"| {title} | {mib(idle and idle[key])} | {mib(first and first[key])} | "
            f"{mib(last and last[key])} | {kib(growth)} KiB | "
            f"{kib(slope(soak.samples, key, warm, soak_end))} | "
            f"{kib(slope(soak.samples, key, half, soak_end))} |"
        )
    return lines


def snapshot_lines(soak: Soak) -> list[str]:
    compared = [s for s in soak.snapshots if "top" in s]
    if not compared:
        return []
    first = soak.snapshots[0]
    lines = [
        "tracemalloc, end of soak against end of warm-up: the lines whose allocations grew "
        f"most (each snapshot held the event loop for {first['seconds']:.2f} s and "
        f"{compared[0]['seconds']:.2f} s):",
        "",
        "| where | growth | blocks | total now |",
        "|---|---:|---:|---:|",
    ]
    for stat in compared[0]["top"][:10]:
        where = stat["where"].replace(str(Path(sys.prefix).parent), "…")
        lines.append(
            f"| `{where}` | {kib(stat['size_diff'])} KiB | {stat['count_diff']:+,} | "
            f"{stat['size'] / 1024:,.1f} KiB |"
        )
    return lines + [""]


def error_lines(soak: Soak) -> list[str]:
    errors = client_errors(soak)
    before, _ = client_endings(soak)
    final = soak.final or {}
    sent = sum(final_["sent"] for final_ in soak.finals)
    echoed = sum(final_["echoed"] for final_ in soak.finals)
    late = sum(final_["late"] for final_ in soak.finals)
    lines = [
        f"Messages: {sent:,} sent, {echoed:,} echoed and checked (the soak and the shutdown); "
        f"{late:,} sent late (the previous round trip outlasted the interval); the server "
        f"echoed {final.get('messages', 0):,}.",
        "",
        f"Errors during the soak: clients {sum(errors.values()):,}, connections closed before "
        f"SIGTERM {sum(before.values()):,}, log records {sum(logs(soak).values()):,}.",
        "",
    ]
    details = [f"client error: {k}: {v:,}" for k, v in errors.items()]
    details += [f"closed before SIGTERM: {k}: {v:,}" for k, v in before.items()]
    details += [f"log, {k}: {v:,}" for k, v in logs(soak).items()]
    if details:
        lines += [f"- {line}" for line in details[:30]] + [""]
    return lines


def shutdown_section(soak: Soak) -> list[str]:
    _, after = client_endings(soak)
    final = soak.final or {}
    lines = [
        f"## Graceful shutdown under load: SIGTERM with {soak.opened:,} clients echoing",
        "",
        f"- the server process exited with status {soak.exit_code} "
        + (
            f"{soak.exit_seconds:.2f} s after SIGTERM"
            if soak.exit_seconds is not None
            else "(did not exit: killed)"
        )
        + f" (its close timeout: {CLOSE_TIMEOUT:g} s)",
        f"- handlers running at exit: {final.get('running', 'n/a')}; connections left in the "
        f"server: {final.get('connections', 'n/a')}; handlers started: "
        f"{final.get('started', 'n/a'):,}",
        "- how the client connections ended after SIGTERM (the close frames received and sent):",
    ]
    lines += [f"  - {k}: {v:,}" for k, v in sorted(after.items(), key=lambda kv: -kv[1])]
    lines += close_times(soak)
    lines.append("- how the server's connections closed (close callback: the frames both ways):")
    closes = final.get("closes", {})
    lines += [f"  - {k}: {v:,}" for k, v in sorted(closes.items(), key=lambda kv: -kv[1])]
    lines.append(
        "- how the server's handlers ended (`closed`: the iteration ended; else the exception "
        "`send()` raised, with the close frames it carried):"
    )
    endings = final.get("endings", {})
    lines += [f"  - {k}: {v:,}" for k, v in sorted(endings.items(), key=lambda kv: -kv[1])]
    early = sum(v for k, v in endings.items() if k.startswith("ConnectionClosedError in send"))
    if early:
        lines.append(
            f'- {early:,} handlers got `ConnectionClosedError` from `send()` ("sent 1001; no '
            'close frame received") although their connection then closed with 1001 both '
            "ways: `send()` raises as soon as the server's close frame is out, before the "
            "client's answer arrives (websockets' `send()` waits for the end of the closing "
            "handshake, then raises `ConnectionClosedOK`)"
        )
    if soak.stderr:
        lines.append(f"- the server's standard error: {len(soak.stderr)} lines, the first:")
        lines += [f"  - `{line[:160]}`" for line in soak.stderr[:5]]
    else:
        lines.append("- the server's standard error: empty")
    return lines + [""]


def close_times(soak: Soak) -> list[str]:
    """When the clients saw their close, and what the server held, after SIGTERM."""
    if soak.term is None:
        return []
    term = soak.term
    times = sorted(
        when - term for final in soak.finals for when, _ in final["endings"] if when >= term
    )
    lines = []
    if times:
        lines.append(
            f"- the clients saw their close {times[0]:.2f} s to {times[-1]:.2f} s after "
            f"SIGTERM (median {statistics.median(times):.2f} s)"
        )
    timeline = [
        f"{s['time'] - term:.1f} s: {s['connections']:,} / {s['running']:,}"
        for s in soak.samples
        if s["time"] >= term and s["connections"] is not None
    ]
    if timeline:
        lines.append(
            "- the server's connections / handlers running, after SIGTERM: "
            + "; ".join(timeline[:12])
        )
    return lines


def checks_section(soak: Soak) -> list[str]:
    lines = ["## Checks", ""]
    lines += [f"- {'yes' if held else '**NO**'}: {what}" for what, held in soak_checks(soak)]
    return lines + [""]


# The report


def memory_section(results: scale.Results, settings: Settings) -> list[str]:
    lines = [
        f"## Memory per idle connection: {settings.connections:,} connections, one server",
        "",
        "`benchmarks/scale.py`'s measurement (see its docstring), at "
        f"{settings.connections:,} connections held by {MEMORY_PROCESSES} load generators "
        "(socketeer's client, offering permessage-deflate when compression is on); each "
        "library's defaults otherwise, socketeer and websockets one after the other in the "
        f"same run; median of {settings.repetitions} run(s)"
        + (", the Python heap in a separate run with tracemalloc" if settings.tracemalloc else "")
        + ". Kernel socket buffers are not in these figures.",
        "",
    ]
    lines += memory_tables(results, settings.loop)
    lines += ["What an idle connection holds for permessage-deflate:", ""]
    lines += [f"- {note}" for note in eager_zlib_note(results)]
    for library in LIBRARIES:
        costs = []
        for measure, what in (("rss", "resident set"), ("traced", "Python heap")):
            on = results.median((measure, settings.loop, library, "on"))
            off = results.median((measure, settings.loop, library, "off"))
            if on is not None and off is not None:
                costs.append(f"{(on - off) / 1024:+.1f} KiB ({what})")
        if costs:
            lines.append(
                f"- {library}: compression on costs {' and '.join(costs)} per idle connection "
                "over compression off"
            )
    websockets = results.facts.get(("zlib", settings.loop, "websockets", "on"))
    if websockets and websockets.get("negotiated"):
        held = (websockets.get("compressors") or 0) + (websockets.get("decompressors") or 0)
        lines.append(
            f"- websockets, {settings.loop}: {held:,} zlib objects for "
            f"{websockets['negotiated']:,} connections: a compressor and a decompressor are "
            "created in the handshake, and kept (context takeover)"
        )
    if results.notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in results.notes]
    return lines + [""]


def report(
    settings: Settings,
    memory: scale.Results | None,
    soak: Soak | None,
    where: Where,
    seconds: float,
    load: tuple[float | None, float | None],
) -> str:
    now = datetime.datetime.now().astimezone()
    versions = ", ".join(
        f"{name} {version(name)}" for name in ["socketeer", "websockets", "uvloop"]
    )
    lines = ["# Load and soak", ""]
    if settings.duration < DURATION and "soak" in settings.parts:
        lines += [f"**A short run: the soak lasted {settings.duration:g} s.**", ""]
    lines += [
        f"- date: {now:%Y-%m-%d %H:%M %Z}; the run took {seconds:.0f} s",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}",
        f"- event loop: {settings.loop}; placement: {where.description}; over 127.0.0.1",
        "- method: the module docstring of `benchmarks/soak.py`",
    ]
    before, after = load
    if before is not None and after is not None:
        lines.append(
            f"- load average (1 min) before the run: {before:.2f}, after: {after:.2f}. The "
            "machine is shared: latencies and CPU figures are noisy; memory, errors and close "
            "codes are not"
        )
    lines.append("")
    if memory is not None:
        lines += memory_section(memory, settings)
    if soak is not None:
        lines += soak_section(soak) + shutdown_section(soak) + checks_section(soak)
        if soak.notes:
            lines += ["Notes:", ""] + [f"- {note}" for note in soak.notes] + [""]
    return "\n".join(lines)


# Entry point


def parse_parts(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PARTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)} (of {','.join(PARTS)})")
    return [name for name in PARTS if name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=parse_parts, help=f"only these (of {','.join(PARTS)})")
    parser.add_argument("--loop", choices=scale.LOOPS, help="(default: uvloop if installed)")
    parser.add_argument(
        "--connections", type=int, default=CONNECTIONS, help="memory: idle connections"
    )
    parser.add_argument(
        "--repetitions", type=int, default=REPETITIONS, help="memory: runs per figure"
    )
    parser.add_argument(
        "--tracemalloc",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trace the servers' Python heap (memory: in a separate run; soak: all along)",
    )
    parser.add_argument("--clients", type=int, default=CLIENTS, help="soak: connections")
    parser.add_argument("--rate", type=float, default=RATE, help="soak: messages/s each")
    parser.add_argument("--duration", type=float, default=DURATION, help="soak: seconds")
    parser.add_argument("--window", type=float, help="soak: seconds per latency window")
    parser.add_argument("--warmup", type=float, help="soak: seconds before the slope")
    parser.add_argument("--interval", type=float, help="soak: seconds between samples")
    parser.add_argument(
        "--compression",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="soak: the clients offer permessage-deflate (the server accepts it)",
    )
    parser.add_argument(
        "--snapshots",
        action="store_true",
        help="soak: compare tracemalloc snapshots of the server from the end of the warm-up "
        "to the end (each holds its event loop for seconds)",
    )
    parser.add_argument("--output", type=Path, help=f"where to write (default: {RESULTS.name})")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    too_few = fd_limit(max(settings.connections, settings.clients))
    if too_few is not None:
        parser.exit(2, f"{parser.prog}: {too_few}\n")
    full = settings.parts == PARTS and settings.duration >= DURATION
    output = args.output or (RESULTS if full else None)
    where = placement()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    print(f"Load and soak ({where.description})", file=sys.stderr, flush=True)
    before = load_average()
    started = time.perf_counter()
    memory = soak = None
    try:
        if "memory" in settings.parts:
            memory = measure_memory(settings, where)
        if "soak" in settings.parts:
            soak = run_soak(settings, where)
    except (Failed, OSError) as exc:
        print(f"the soak failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: every process stopped", file=sys.stderr)
        return 130
    finally:
        stop_all()
    seconds = time.perf_counter() - started
    text = report(settings, memory, soak, where, seconds, (before, load_average()))
    print(text)
    if output is not None:
        output.write_text(text)
        print(f"(written to {output})", file=sys.stderr)
    if soak is not None and not all(held for _, held in soak_checks(soak)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
