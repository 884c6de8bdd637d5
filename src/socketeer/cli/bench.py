"""``socketeer bench URL``: a load generator for echo servers (``socketeer echo``, or any).

Theory of operation
-------------------

N connections open first (at most :data:`CONNECTING_AT_ONCE` handshakes at a time); those
that fail are reported and counted, and if none opens the command fails. Then each open
connection runs a worker that repeats a round trip: take a *ticket* from the
:class:`Schedule`, send a message, wait for its echo (at most ``--timeout``), check it.

Tickets are numbered from 0 and shared by the connections, so that a free connection takes
the next one. The schedule stops issuing them at ``--messages`` tickets, at the end of
``--duration``, or on the first SIGINT or SIGTERM:

- closed loop (without ``--rate``): a ticket is due at once, and the latency of a round
  trip runs from its send;
- open loop (``--rate R``): ticket ``k`` is due at ``start + k / R``, and the latency of a
  late message runs from that *scheduled* time, not from its actual send: when the server
  falls behind and every connection is busy, the tickets that wait count their wait.
  Measuring from the send instead would leave out of the figures the very delays a slow
  server causes ("coordinated omission"). A message may leave up to :data:`TIMER_SLACK`
  before it is due (event loop timers are coarse); its latency then runs from its send.
  With a duration, tickets are only issued for times within it, so at most
  ``R * duration`` (rounded up) messages are sent.

Each message starts with its ticket's number (hexadecimal, 16 digits), padded with ``x`` to
``--size`` bytes (a message shorter than 16 bytes keeps the last digits), so that an echo of
another message is caught. An echo that differs (content or type) counts as a
``mismatch``; no echo within ``--timeout`` as a ``timeout``, and the worker aborts its
connection and stops; a connection that closes or fails as ``closed``, and the worker
stops. The run ends when every worker has stopped; the connections then close.

Latencies are kept in a :class:`Latencies`: exact count and maximum, and percentiles by
nearest rank from the recorded values, all of them up to :data:`MAX_SAMPLES`, a uniform
random sample of that many beyond (reservoir sampling): bounded memory.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import json
import math
import signal
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from random import Random
from typing import Any, TextIO

from ..asyncio.client import ClientConnection, connect
from ..exceptions import ConnectionClosed
from ..protocol.base import MAX_SIZE
from ..uri import parse_uri
from . import CommandError, one_line
from ._serving import add_loop_argument, event_loop
from ._units import format_size, size_type

__all__ = [
    "HELP",
    "DESCRIPTION",
    "DEFAULT_CONNECTIONS",
    "DEFAULT_SIZE",
    "DEFAULT_DURATION",
    "DEFAULT_TIMEOUT",
    "MAX_CONNECTIONS",
    "MAX_MESSAGE_SIZE",
    "MAX_SAMPLES",
    "CONNECTING_AT_ONCE",
    "ERROR_KINDS",
    "add_arguments",
    "run",
    "Latencies",
    "Schedule",
    "Report",
]

HELP = "load an echo server: round trips per second, their latency"
"""The command's line in the list of commands."""

DESCRIPTION = (
    "Open N connections to the echo server at URL (such as socketeer echo) and make each "
    "send messages and check their echo, one round trip at a time, for --duration seconds "
    "or --messages messages, as fast as possible or at --rate messages per second in all. "
    "Prints messages per second and the latency's percentiles; exits with 1 if anything "
    "failed."
)
"""What ``--help`` says of the command."""

DEFAULT_CONNECTIONS = 10
"""Connections without ``--connections``."""
DEFAULT_SIZE = 16
"""Bytes per message without ``--size``."""
DEFAULT_DURATION = 10.0
"""Seconds without ``--duration`` or ``--messages``."""
DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for an echo, and for a connection to open, without ``--timeout``."""
MAX_CONNECTIONS = 10_000
"""The most connections ``--connections`` accepts."""
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
"""The largest ``--size``: each connection holds a message and its echo."""
MAX_SAMPLES = 1_000_000
"""Latencies kept for the percentiles (8 MB); beyond, a uniform sample of that many."""
CONNECTING_AT_ONCE = 100
"""Opening handshakes in progress at a time (a server's accept queue is often 100)."""
ERROR_KINDS = ("connect", "closed", "timeout", "mismatch")
"""What can go wrong, as counted in the summary: a connection that does not open; one
that closes or fails during the run; an echo that does not come within ``--timeout``; an
echo that differs from the message."""

PERCENTILES: Sequence[tuple[str, float]] = (("p50", 50), ("p90", 90), ("p99", 99))
"""The percentiles of the latency reported, and their names."""
TIMER_SLACK = 0.001
"""Seconds before its due time a message may be sent: event loop timers are about that
coarse (uvloop's count milliseconds), and sending late would count their lateness in the
latency."""
PROGRESS_INTERVAL = 1.0
"""Seconds between two updates of the progress line."""
_HEADER = 16  # hexadecimal digits of the ticket number at the start of each message


# The command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bench`` to a command line parser."""
    parser.add_argument("url", metavar="URL", type=_url, help="the echo server, ws:// or wss://")
    parser.add_argument(
        "--unix", metavar="PATH", help="connect to this Unix socket (URL gives the Host header)"
    )
    load = parser.add_argument_group("load")
    load.add_argument(
        "--connections",
        metavar="N",
        type=_count("connections", 1, MAX_CONNECTIONS),
        default=DEFAULT_CONNECTIONS,
        help=f"connections, 1 to {MAX_CONNECTIONS} (default: %(default)s)",
    )
    load.add_argument(
        "--size",
        metavar="BYTES",
        type=size_type(0, MAX_MESSAGE_SIZE),
        default=DEFAULT_SIZE,
        help=f"bytes per message, e.g. 16, 1KiB, 1MiB (default: {DEFAULT_SIZE})",
    )
    until = load.add_mutually_exclusive_group()
    until.add_argument(
        "--duration",
        metavar="SECONDS",
        type=_seconds("duration"),
        help=f"send for this long (default: {DEFAULT_DURATION:g})",
    )
    until.add_argument(
        "--messages",
        metavar="N",
        type=_count("messages", 1, None),
        help="send this many messages in all, instead",
    )
    load.add_argument(
        "--rate",
        metavar="MSG_PER_S",
        type=_rate,
        help="send this many messages per second in all, on a schedule (default: as fast "
        "as each connection can); latency then counts from the scheduled time",
    )
    kind = load.add_mutually_exclusive_group()
    kind.add_argument("--binary", action="store_true", help="binary messages (the default)")
    kind.add_argument("--text", action="store_true", help="text messages")
    compression = load.add_mutually_exclusive_group()
    compression.add_argument(
        "--compression",
        choices=["deflate"],
        help="offer permessage-deflate (the messages are very compressible)",
    )
    compression.add_argument(
        "--no-compression", action="store_true", help="offer no compression (the default)"
    )
    load.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds("timeout"),
        default=DEFAULT_TIMEOUT,
        help="longest wait for a connection to open, or for an echo (default: %(default)g)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--json",
        action="store_true",
        help="print the results as one JSON object, instead of a table",
    )
    add_loop_argument(output)


def _url(value: str) -> str:
    try:
        parse_uri(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _count(name: str, minimum: int, maximum: int | None) -> Callable[[str], int]:
    def count(value: str) -> int:
        number = int(value) if value.isdecimal() else -1
        if number < minimum or (maximum is not None and number > maximum):
            limits = f"from {minimum} to {maximum}" if maximum else f"of {minimum} or more"
            raise argparse.ArgumentTypeError(
                f"expected a number of {name} {limits}, got {value!r}"
            )
        return number

    return count


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 < number < math.inf:
        raise ValueError(value)
    return number


def _seconds(name: str) -> Callable[[str], float]:
    def seconds(value: str) -> float:
        try:
            return _positive(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a {name} in seconds, more than 0, got {value!r}"
            ) from None

    return seconds


def _rate(value: str) -> float:
    try:
        return _positive(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected messages per second, more than 0, got {value!r}"
        ) from None


# Running


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the results; return the exit status: 0 if nothing failed.

    Raises:
        CommandError: if no connection opens, uvloop is asked for but missing, or a second
            signal interrupts.
    """
    loop_name, runner = event_loop(args.loop)
    if args.duration is None and args.messages is None:
        args.duration = DEFAULT_DURATION
    try:
        report = runner(_bench(args, loop_name, sys.stderr))
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise CommandError("interrupted") from None
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(report.format(), end="")
    return 1 if report.error_count else 0


async def _bench(args: argparse.Namespace, loop_name: str, stderr: TextIO) -> Report:
    """Connect, run the workers, close; return what happened."""
    errors: collections.Counter[str] = collections.Counter()
    connections = await _connect_all(args, errors, stderr)
    latencies = Latencies()
    schedule = Schedule(args.duration, args.messages, args.rate)
    _handle_signals(schedule)
    progress = asyncio.create_task(_progress(schedule, latencies, errors, stderr))
    try:
        await asyncio.gather(
            *(_worker(args, ws, schedule, latencies, errors) for ws in connections)
        )
    except asyncio.CancelledError:  # a second signal: stop now
        for ws in connections:
            if ws.transport is not None:
                ws.transport.abort()
        raise
    finally:
        elapsed = time.perf_counter() - schedule.start
        progress.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await progress
    await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
    return Report(
        url=args.url,
        loop=loop_name,
        connections=args.connections,
        connected=len(connections),
        size=args.size,
        text=args.text,
        compression=args.compression,
        rate=args.rate,
        elapsed=elapsed,
        latencies=latencies,
        errors=errors,
    )


async def _connect_all(
    args: argparse.Namespace, errors: collections.Counter[str], stderr: TextIO
) -> list[ClientConnection]:
    """Open the connections; report failures, counted as ``connect`` errors.

    Raises:
        CommandError: if none opens.
    """
    limit = asyncio.Semaphore(CONNECTING_AT_ONCE)
    options: dict[str, Any] = {
        "compression": args.compression,
        "open_timeout": args.timeout,
        "close_timeout": args.timeout,
        "ping_interval": None,  # the echo's timeout detects a dead server
        "max_size": max(args.size, MAX_SIZE),
    }
    if args.unix is not None:
        options["unix"] = args.unix

    async def open_one() -> ClientConnection:
        async with limit:
            return await connect(args.url, **options)

    results = await asyncio.gather(
        *(open_one() for _ in range(args.connections)), return_exceptions=True
    )
    connections: list[ClientConnection] = []
    failures: collections.Counter[str] = collections.Counter()
    for result in results:
        if isinstance(result, ClientConnection):
            connections.append(result)
        elif isinstance(result, Exception):  # refused, timed out, refused handshake...
            failures[_describe(result)] += 1
        else:
            raise result
    errors["connect"] = sum(failures.values())
    if not connections:
        (first, _), *others = failures.most_common()
        more = f" (and {len(others)} other errors)" if others else ""
        raise CommandError(f"cannot connect to {args.url}: {first}{more}")
    for message, count in failures.most_common():
        print(
            f"socketeer bench: {count} of {args.connections} connections failed: {message}",
            file=stderr,
        )
    return connections


def _describe(exc: BaseException) -> str:
    """An exception in one line, for people."""
    return one_line(exc) or type(exc).__name__


def _handle_signals(schedule: Schedule) -> None:
    """The first SIGINT or SIGTERM stops the schedule (the results are printed), the second
    cancels the main task."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None

    def stop(signum: signal.Signals) -> None:
        if schedule.stopped:
            main.cancel()
        else:
            schedule.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        # Windows has no add_signal_handler; a thread other than the main one cannot set it.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop, signum)


async def _worker(
    args: argparse.Namespace,
    ws: ClientConnection,
    schedule: Schedule,
    latencies: Latencies,
    errors: collections.Counter[str],
) -> None:
    """Make round trips on ``ws`` until the schedule ends or the connection fails."""
    filler = "x" * max(args.size - _HEADER, 0)
    while (ticket := schedule.take()) is not None:
        number, due = ticket
        await schedule.wait(due)
        if schedule.stopped:
            return
        text = _message(number, args.size, filler)
        message: str | bytes = text if args.text else text.encode()
        # From when it was due, if it is late; see the module's theory of operation.
        sent = min(due, time.perf_counter())
        try:
            await ws.send(message)
            echo = await asyncio.wait_for(ws.recv(), args.timeout)
        except asyncio.TimeoutError:
            errors["timeout"] += 1
            if ws.transport is not None:
                ws.transport.abort()  # the echo may still come: the connection is unusable
            return
        except (ConnectionClosed, OSError):
            errors["closed"] += 1
            return
        if echo != message:
            errors["mismatch"] += 1
        else:
            latencies.add(time.perf_counter() - sent)


def _message(number: int, size: int, filler: str) -> str:
    """Message ``number``, of ``size`` bytes: the number in hexadecimal, then ``filler``."""
    header = f"{number:0{_HEADER}x}"
    return header[_HEADER - size :] if size < _HEADER else header + filler


async def _progress(
    schedule: Schedule,
    latencies: Latencies,
    errors: collections.Counter[str],
    stderr: TextIO,
) -> None:
    """Show how it goes on one line of ``stderr``, every second, if it is a terminal."""
    if not stderr.isatty():
        return
    start = time.perf_counter()
    width = 0
    try:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            elapsed = time.perf_counter() - start
            line = (
                f"{elapsed:.0f} s: {latencies.count:,} messages, "
                f"{latencies.count / elapsed:,.0f} msg/s, {sum(errors.values())} errors"
            )
            if schedule.stopped:
                line += ", stopping"
            stderr.write("\r" + line.ljust(width))
            stderr.flush()
            width = len(line)
    finally:
        if width:
            stderr.write("\r" + " " * width + "\r")
            stderr.flush()


# The schedule and the figures


class Schedule:
    """The tickets of the round trips: see the module's theory of operation.

    Times are :func:`time.perf_counter` values; the schedule starts when it is made.

    Args:
        duration: seconds after which no ticket is issued, or ``None``.
        messages: tickets to issue in all, or ``None``.
        rate: tickets due per second, or ``None`` for each due when taken.
    """

    def __init__(self, duration: float | None, messages: int | None, rate: float | None):
        self.start = time.perf_counter()
        """When the schedule started."""
        self.deadline = math.inf if duration is None else self.start + duration
        """When it ends, if it does not run out of tickets before."""
        self.messages = messages
        self.rate = rate
        self.issued = 0
        """Tickets taken so far."""
        self.stopped = False
        """Whether :meth:`stop` was called."""
        self._sleepers: set[asyncio.Future[None]] = set()

    def take(self) -> tuple[int, float] | None:
        """The next ticket: its number and when it is due; ``None`` once the schedule
        ends."""
        number = self.issued
        if self.stopped or (self.messages is not None and number >= self.messages):
            return None
        if self.rate is None:
            due = time.perf_counter()
            if due >= self.deadline:
                return None
        else:
            due = self.start + number / self.rate
            if due >= self.deadline:
                return None
        self.issued += 1
        return number, due

    async def wait(self, due: float) -> None:
        """Wait until ``due`` (or up to :data:`TIMER_SLACK` before), or until :meth:`stop`."""
        delay = due - TIMER_SLACK - time.perf_counter()
        if delay <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(delay, _wake, waiter)
        self._sleepers.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._sleepers.discard(waiter)

    def stop(self) -> None:
        """Issue no more tickets, and wake those waiting for theirs."""
        self.stopped = True
        for waiter in self._sleepers:
            _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Latencies:
    """Latencies, in seconds: an exact count and maximum, and percentiles from the values
    recorded: every one up to ``capacity``, a uniform random sample of ``capacity`` of them
    beyond (reservoir sampling, Vitter's algorithm R), so that memory is bounded.

    Args:
        capacity: values kept for the percentiles.
        rng: the source of randomness of the sample.
    """

    def __init__(self, capacity: int = MAX_SAMPLES, rng: Random | None = None):
        self.capacity = capacity
        self.count = 0
        """Values added."""
        self.max = 0.0
        """The largest value added."""
        self.samples: array[float] = array("d")
        """The values kept (all of them while :attr:`count` <= :attr:`capacity`)."""
        self._random = rng or Random()
        self._sorted: list[float] | None = None

    def add(self, latency: float) -> None:
        """Record a value."""
        self.count += 1
        self.max = max(self.max, latency)
        self._sorted = None
        if len(self.samples) < self.capacity:
            self.samples.append(latency)
        else:
            slot = self._random.randrange(self.count)
            if slot < self.capacity:
                self.samples[slot] = latency

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0 < ``p`` <= 100) by nearest rank: the smallest
        value kept such that ``p`` % of those kept are at most it; ``None`` without any."""
        if not self.samples:
            return None
        if self._sorted is None:
            self._sorted = sorted(self.samples)
        rank = max(math.ceil(p / 100 * len(self._sorted)), 1)
        return self._sorted[rank - 1]


@dataclasses.dataclass(frozen=True)
class Report:
    """The results of a run; :meth:`format` for people, :meth:`to_json` for programs."""

    url: str
    loop: str
    connections: int
    connected: int
    size: int
    text: bool
    compression: str | None
    rate: float | None
    elapsed: float
    latencies: Latencies
    errors: collections.Counter[str]

    @property
    def messages(self) -> int:
        """Round trips whose echo matched."""
        return self.latencies.count

    @property
    def error_count(self) -> int:
        """Errors of every kind."""
        return sum(self.errors.values())

    @property
    def rate_achieved(self) -> float:
        """Messages per second, over the whole run."""
        return self.messages / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def latency_ms(self) -> dict[str, float | None]:
        """The percentiles and the maximum, in milliseconds (``None`` without messages)."""
        figures = {name: self.latencies.percentile(p) for name, p in PERCENTILES}
        figures["max"] = self.latencies.max if self.messages else None
        return {k: None if v is None else round(v * 1000, 3) for k, v in figures.items()}

    def to_json(self) -> dict[str, Any]:
        """The results as ``docs/cli.md`` documents them for ``--json``."""
        return {
            "url": self.url,
            "loop": self.loop,
            "connections": self.connections,
            "connected": self.connected,
            "type": "text" if self.text else "binary",
            "size": self.size,
            "compression": self.compression,
            "rate": self.rate,
            "duration": round(self.elapsed, 6),
            "messages": self.messages,
            "messages_per_second": round(self.rate_achieved, 1),
            "latency_ms": self.latency_ms,
            "latency_samples": len(self.latencies.samples),
            "errors": self.error_count,
            "errors_by_kind": {kind: self.errors[kind] for kind in ERROR_KINDS},
        }

    def format(self) -> str:
        """The results as a table, for people."""
        kind = "text" if self.text else "binary"
        compression = "deflate" if self.compression else "no compression"
        paced = "as fast as possible" if self.rate is None else f"at {self.rate:g} msg/s"
        latency = "  ".join(
            f"{name} {'-' if value is None else f'{value:.3f}'}"
            for name, value in self.latency_ms.items()
        )
        errors = self.error_count
        detail = ", ".join(
            f"{kind} {self.errors[kind]}" for kind in ERROR_KINDS if self.errors[kind]
        )
        rows = [
            ("url", self.url),
            ("connections", f"{self.connected} open of {self.connections}"),
            ("payload", f"{format_size(self.size)}, {kind}, {compression}, {paced}"),
            ("loop", self.loop),
            ("duration", f"{self.elapsed:.3f} s"),
            ("messages", f"{self.messages:,}: {self.rate_achieved:,.1f} msg/s"),
            ("latency ms", latency),
            ("errors", f"{errors}: {detail}" if errors else "0"),
        ]
        return "".join(f"{name:<13}{value}\n" for name, value in rows)
