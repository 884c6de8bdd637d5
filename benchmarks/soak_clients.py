"""Load generator of ``benchmarks/soak.py``: echo clients that count everything that happens.

``python benchmarks/soak_clients.py --port N --connections C --rate R --duration D
--window W --grace G [--compression] [--loop uvloop] [--cpu K]`` opens C connections to
``ws://127.0.0.1:N/`` with socketeer's client (:data:`OPEN_BATCH` at a time; offering
permessage-deflate with ``--compression``, nothing without), prints
``{"ready": OPENED, "extensions": HEADER, "errors": {...}}``, and waits for commands on its
standard input, one per line (answers are JSON lines on stdout):

- ``go T0``: every connection starts echoing at ``T0`` (:func:`time.monotonic`, the clock of
  every process on Linux): it sends a message, waits for it to come back (at most
  :data:`ECHO_TIMEOUT`), checks that it is the same (type and content), and sends the next
  one ``1 / R`` seconds after the previous, or at once if it is late (counted as ``late``);
  its first message goes at a random moment of its first interval, to spread them. It goes on
  until the server closes the connection, or ``T0 + D + G`` (then it closes it itself: the
  server failed to), and at most :data:`MAX_MESSAGES` times the messages that fit.
  Round trips (from ``send()`` to ``recv()`` returning) of messages sent before ``T0 + D``
  count in the latency histogram of the window of ``W`` seconds in which they ended; each
  window but the last is printed when it is over, ``{"window": K, "histogram": {...},
  ...}``; then, once every connection ended, ``{"final": {...}}``: the last window, the
  totals, this process's CPU time during the soak, every error (soak phase: anything but
  a round trip that went well), and how each connection ended (the exception that ended
  its loop, with the close frames it carried) with the time it closed (its close
  callback; the parent compares it with the moment it asked the server to shut down).

Messages: slices of generated JSON (``echo_clients.deflate_payloads``) of 64 B, 256 B, 1 KiB
and 4 KiB (40, 30, 20 and 10 % of them), sent as text and binary in turn; keepalive pings
are the library's defaults on both sides. If standard input closes, every loop stops and the
connections close. Log records at WARNING and above are counted (and reported), not printed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import math
import os
import random
import signal
import sys
import time
from typing import Any

from echo_clients import OPEN_BATCH, deflate_payloads
from echo_servers import run
from scale_servers import LOOPS, Commands, fd_limit, reply

__all__ = ["ECHO_TIMEOUT", "Histogram", "MAX_MESSAGES", "OPEN_TIMEOUT", "SIZES"]

OPEN_TIMEOUT = 10.0
"""Seconds for one connection's opening handshake."""
ECHO_TIMEOUT = 30.0
"""Seconds for a message to come back; past that, an error, and the connection is closed."""
CLOSE_WAIT = 30.0
"""Seconds for the TCP connection to end once the closing handshake started."""
MAX_MESSAGES = 2.0
"""Each connection sends at most this many times the messages its rate fits in its time."""
MAX_ERRORS_KEPT = 200
"""Errors listed in full (with their time) per process; the counts include them all."""
SIZES = [(64, 40), (256, 30), (1024, 20), (4096, 10)]
"""Message sizes in bytes, and the share of each in percent."""


LOGS: collections.Counter[str] = collections.Counter()
"""Log records at WARNING and above (socketeer's, asyncio's...), by level, logger and message."""


class CountRecords(logging.Handler):
    """Counts the records in :data:`LOGS`, instead of printing them."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().splitlines()[0] if record.msg else ""
        LOGS[f"{record.levelname} {record.name}: {message}"[:200]] += 1


class Histogram:
    """Round-trip times in logarithmic buckets (:data:`RESOLUTION` per factor of e, about
    2.5 % wide), with the exact count, sum and maximum; mergeable."""

    RESOLUTION = 40

    def __init__(self) -> None:
        self.buckets: collections.Counter[int] = collections.Counter()
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.buckets[int(math.log(max(seconds, 1e-7) * 1e6) * self.RESOLUTION)] += 1
        self.count += 1
        self.total += seconds
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def percentile(self, share: float) -> float | None:
        """The round trip below which ``share`` (0 to 1) of them are, in seconds (the middle
        of its bucket; never more than the maximum)."""
        if not self.count:
            return None
        rank = share * self.count
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(self.max, math.exp((bucket + 0.5) / self.RESOLUTION) / 1e6)
        return self.max

    def export(self) -> dict[str, Any]:
        return {
            "buckets": {str(k): v for k, v in self.buckets.items()},
            "count": self.count,
            "total": self.total,
            "max": self.max,
        }

    @classmethod
    def load(cls, value: dict[str, Any]) -> Histogram:
        histogram = cls()
        histogram.buckets.update({int(k): v for k, v in value["buckets"].items()})
        histogram.count = value["count"]
        histogram.total = value["total"]
        histogram.max = value["max"]
        return histogram


class Tally:
    """What the connections of this process did."""

    def __init__(self, windows: int) -> None:
        self.windows = [Histogram() for _ in range(windows)]
        self.sent = 0
        self.echoed = 0
        self.late = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.error_list: list[tuple[float, str]] = []
        self.endings: list[tuple[float, str]] = []
        """How each connection ended, and when."""

    def error(self, text: str) -> None:
        self.errors[text] += 1
        if len(self.error_list) < MAX_ERRORS_KEPT:
            self.error_list.append((time.monotonic(), text))


class Messages:
    """The messages to send: JSON-like text, in sizes drawn from :data:`SIZES`."""

    def __init__(self) -> None:
        self.pools = [deflate_payloads(f"json:{size}") for size, _ in SIZES]
        self.weights = [share for _, share in SIZES]

    def pick(self, rng: random.Random, text: bool) -> str | bytes:
        pool = rng.choices(self.pools, self.weights)[0]
        message = pool[rng.randrange(len(pool))]
        return message.decode() if text else message


def _close_frames(exc: Any) -> str:
    rcvd = "none" if exc.rcvd is None else exc.rcvd.code
    sent = "none" if exc.sent is None else exc.sent.code
    return f"received {rcvd}, sent {sent}"


class Client:
    """One connection's echo loop."""

    def __init__(self, ws: Any, tally: Tally, messages: Messages, seed: int) -> None:
        self.ws = ws
        self.tally = tally
        self.messages = messages
        self.rng = random.Random(seed)
        self.closed_at: float | None = None
        """When the connection closed (its close callback), to time the shutdown."""
        ws.add_close_callback(self._closed)

    def _closed(self, ws: Any) -> None:
        self.closed_at = time.monotonic()

    async def run(
        self, t0: float, interval: float, window: float, soak_end: float, hard_end: float
    ) -> None:
        from socketeer import ConnectionClosed

        tally, ws = self.tally, self.ws
        most = int(MAX_MESSAGES * (hard_end - t0) / interval) + 10
        next_send = t0 + self.rng.random() * interval
        try:
            for count in range(most):
                now = time.monotonic()
                if now >= hard_end:
                    break
                if next_send > now:
                    await asyncio.sleep(min(next_send, hard_end) - now)
                    if time.monotonic() >= hard_end:
                        break
                message = self.messages.pick(self.rng, count % 2 == 0)
                sent_at = time.monotonic()
                await ws.send(message)
                tally.sent += 1
                echo = await asyncio.wait_for(ws.recv(), ECHO_TIMEOUT)
                done = time.monotonic()
                if echo != message:
                    tally.error(f"echo differs: sent {len(message)}, got {len(echo)}")
                else:
                    tally.echoed += 1
                if sent_at < soak_end:
                    index = min(int((done - t0) / window), len(tally.windows) - 1)
                    tally.windows[index].add(done - sent_at)
                next_send += interval
                if next_send < done:
                    tally.late += 1
                    next_send = done
        except ConnectionClosed as exc:
            await self.wait_closed()
            when = time.monotonic() if self.closed_at is None else self.closed_at
            tally.endings.append((when, f"{type(exc).__name__}: {_close_frames(exc)}"))
            return
        except asyncio.TimeoutError:
            tally.error(f"no echo in {ECHO_TIMEOUT:.0f} s")
        except Exception as exc:
            tally.error(f"{type(exc).__name__}: {exc}")
        else:
            tally.endings.append((time.monotonic(), "still open at the end: closed by the client"))
        await self.close()

    async def wait_closed(self) -> None:
        try:
            await asyncio.wait_for(self.ws.wait_closed(), CLOSE_WAIT)
        except asyncio.TimeoutError:
            self.tally.error(f"TCP connection still open {CLOSE_WAIT:.0f} s after the close")

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), CLOSE_WAIT)
        except Exception as exc:
            self.tally.error(f"close: {type(exc).__name__}: {exc}")


async def open_all(uri: str, count: int, compression: bool) -> tuple[list[Any], Tally]:
    import socketeer

    tally = Tally(1)
    opened: list[Any] = []
    for start in range(0, count, OPEN_BATCH):
        batch = min(OPEN_BATCH, count - start)
        results = await asyncio.gather(
            *(
                socketeer.connect(
                    uri,
                    compression="deflate" if compression else None,
                    open_timeout=OPEN_TIMEOUT,
                )
                for _ in range(batch)
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                tally.error(f"open: {type(result).__name__}: {result}")
            else:
                opened.append(result)
    return opened, tally


async def report_windows(tally: Tally, t0: float, window: float) -> None:
    """Print each window but the last once it is over."""
    for index in range(len(tally.windows) - 1):
        await asyncio.sleep(max(0.0, t0 + (index + 1) * window + 0.2 - time.monotonic()))
        reply(
            {
                "window": index,
                "histogram": tally.windows[index].export(),
                "errors": sum(tally.errors.values()),
            }
        )


async def cpu_seconds(start: float, end: float) -> float:
    """This process's CPU time, in seconds, from ``start`` to ``end``."""
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    before = time.process_time()
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    return time.process_time() - before


async def soak(args: argparse.Namespace) -> None:
    uri = f"ws://127.0.0.1:{args.port}/"
    messages = Messages()
    opened, open_tally = await open_all(uri, args.connections, args.compression)
    response = opened[0].response if opened else None
    extensions = None if response is None else response.headers.get("Sec-WebSocket-Extensions")
    reply({"ready": len(opened), "extensions": extensions, "errors": dict(open_tally.errors)})
    commands = Commands()
    line = await commands.next()
    if line is None or not line.startswith("go "):
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
        return
    t0 = float(line.split()[1])
    windows = max(1, math.ceil(args.duration / args.window - 1e-9))
    tally = Tally(windows)
    soak_end = t0 + args.duration
    hard_end = soak_end + args.grace
    seed = args.seed * 100_000
    clients = [Client(ws, tally, messages, seed + i) for i, ws in enumerate(opened)]
    loops = asyncio.gather(
        *(client.run(t0, 1 / args.rate, args.window, soak_end, hard_end) for client in clients)
    )
    reporter = asyncio.ensure_future(report_windows(tally, t0, args.window))
    cpu = asyncio.ensure_future(cpu_seconds(t0, soak_end))
    stdin_closed = asyncio.ensure_future(commands.next())
    await asyncio.wait([loops, stdin_closed], return_when=asyncio.FIRST_COMPLETED)
    if not loops.done():  # the parent went away
        loops.cancel()
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
        return
    reporter.cancel()
    stdin_closed.cancel()
    cpu.cancel()
    tally.errors.update(open_tally.errors)
    reply(
        {
            "final": {
                "window": windows - 1,
                "histogram": tally.windows[-1].export(),
                "windows": [h.export() for h in tally.windows],
                "connections": len(opened),
                "sent": tally.sent,
                "echoed": tally.echoed,
                "late": tally.late,
                "errors": dict(tally.errors),
                "error_list": tally.error_list,
                "endings": tally.endings,
                "logs": dict(LOGS),
                "cpu": cpu.result() if cpu.done() and not cpu.cancelled() else None,
            }
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--rate", type=float, default=1.0, help="messages/s per connection")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of soak")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per window")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds after the soak")
    parser.add_argument("--compression", action="store_true", help="offer permessage-deflate")
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--cpu", type=int, help="pin this process to this CPU")
    parser.add_argument("--seed", type=int, default=0, help="of the messages and the pacing")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    logging.getLogger().addHandler(CountRecords(logging.WARNING))
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    too_few = fd_limit(args.connections)
    if too_few is not None:
        reply({"missing": too_few})
        return 0
    run(soak(args), args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
