"""The application ``benchmarks/soak.py`` serves: ``socketeer serve soak_app:handler``.

An echo handler, as ``socketeer echo``'s, that counts what happens to its connections, in a
server started the way users start one: ``python -m socketeer serve soak_app:handler``
(from this directory), which closes every connection with 1001 on SIGTERM and exits.

Configured by environment variables, so that the command line stays the CLI's:

- ``SOAK_SAMPLES``: the file where it writes JSON lines (nothing without it):
  ``{"sample": ...}`` every ``SOAK_INTERVAL`` seconds (default 10), from a thread of its own:
  the time (:func:`time.monotonic`, the clock of every process), the resident set
  (``VmRSS``), the bytes tracemalloc traces, the handlers running, the server's
  connections, the messages echoed, how the handlers ended (the exception, or the close
  frames when the iteration ended), how the connections closed (their close frames, once
  closed: a close callback), and the log records at WARNING
  and above (socketeer's, asyncio's...); ``{"snapshot": ...}`` on each SIGUSR1 (below); and
  ``{"final": ...}`` at exit (:mod:`atexit`, once ``socketeer serve`` has closed its
  server), with the same counts.
- ``SOAK_LOOP``: ``uvloop`` installs uvloop's event loop policy at import, before the CLI
  creates its loop (``socketeer serve`` has no option for it); else asyncio's loop.
- ``SOAK_TRACEMALLOC=1``: trace Python allocations (one frame) from import on.
- ``SOAK_PARENT`` and ``SOAK_LIFETIME``: the sampler sends this process SIGTERM (the CLI
  then shuts down as usual) once its parent is no longer the process ``SOAK_PARENT``, or
  ``SOAK_LIFETIME`` seconds after import, whichever comes first.

SIGUSR1 takes a tracemalloc snapshot: the first is dumped to ``SOAK_SAMPLES + ".snapshot"``
(so that holding it does not count in the traced memory), each later one is compared with
it, and the 15 lines whose allocations grew most are written, with the seconds the
snapshot took (it holds the GIL: the event loop waits meanwhile).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import json
import logging
import os
import signal
import threading
import time
import tracemalloc
from typing import Any

from socketeer import ConnectionClosed

__all__ = ["handler"]

SAMPLES = os.environ.get("SOAK_SAMPLES")
INTERVAL = float(os.environ.get("SOAK_INTERVAL", "10"))
TOP = 15
"""Lines of a snapshot comparison."""
STARTED = time.monotonic()


class Counts:
    """What the handlers did; changed by the event loop only, read by the sampler."""

    def __init__(self) -> None:
        self.started = 0
        self.running = 0
        self.messages = 0
        self.endings: collections.Counter[str] = collections.Counter()
        """How handlers ended: the close frames both ways, or the exception."""
        self.closes: collections.Counter[str] = collections.Counter()
        """How connections closed, once closed: the close frames both ways."""
        self.logs: collections.Counter[str] = collections.Counter()
        """Log records at WARNING and above: level, logger and message."""
        self.server: Any = None
        self.loop = ""

    def state(self) -> dict[str, Any]:
        connections = None if self.server is None else len(self.server.connections)
        return {
            "time": time.monotonic(),
            "rss": _rss(),
            "traced": tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None,
            "started": self.started,
            "running": self.running,
            "connections": connections,
            "messages": self.messages,
            "endings": _copy(self.endings),
            "closes": _copy(self.closes),
            "logs": _copy(self.logs),
            "loop": self.loop,
        }


COUNTS = Counts()


def _rss() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _copy(counter: collections.Counter[str]) -> dict[str, int]:
    """A copy made from another thread, while the event loop may add a key."""
    for _ in range(10):
        try:
            return dict(counter)
        except RuntimeError:  # changed size during iteration
            time.sleep(0.001)
    return {"(could not copy)": 1}


def _frames(close: Any) -> str:
    return "none" if close is None else str(close.code)


async def handler(ws: Any) -> None:
    """Echo every message, as ``socketeer echo`` does; count how it ends."""
    counts = COUNTS
    counts.started += 1
    counts.running += 1
    if counts.server is None:
        counts.server = ws.server
        counts.loop = type(asyncio.get_running_loop()).__module__
    ws.add_close_callback(_closed)
    ending = "returned"
    try:
        async for message in ws:
            await ws.send(message)
            counts.messages += 1
        protocol = ws.protocol
        ending = (
            f"closed: received {_frames(protocol.close_rcvd)}, sent {_frames(protocol.close_sent)}"
        )
    except ConnectionClosed as exc:
        # send() raced the close: the handler ends as the plain echo handler would.
        ending = (
            f"{type(exc).__name__} in send: received {_frames(exc.rcvd)}, sent {_frames(exc.sent)}"
        )
        raise
    except asyncio.CancelledError:
        ending = "cancelled"
        raise
    except Exception as exc:
        ending = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        counts.running -= 1
        counts.endings[ending] += 1


def _closed(ws: Any) -> None:
    protocol = ws.protocol
    COUNTS.closes[
        f"received {_frames(protocol.close_rcvd)}, sent {_frames(protocol.close_sent)}"
    ] += 1


class _CountRecords(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().splitlines()[0] if record.msg else ""
        COUNTS.logs[f"{record.levelname} {record.name}: {message}"[:200]] += 1


class Sampler:
    """Writes the samples, the snapshots and the final counts to :data:`SAMPLES`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.snapshots = 0
        self.pending = 0
        with open(path, "w"):
            pass
        self.thread = threading.Thread(target=self.run, name="soak-sampler", daemon=True)

    def write(self, kind: str, value: Any) -> None:
        with self.lock, open(self.path, "a") as file:
            file.write(json.dumps({kind: value}) + "\n")

    def run(self) -> None:
        while True:
            _stop_if_orphaned()
            self.wake.wait(INTERVAL)
            self.wake.clear()
            while self.pending:
                self.pending -= 1
                self.snapshot()
            self.write("sample", COUNTS.state())

    def ask_snapshot(self, signum: int, frame: Any) -> None:
        self.pending += 1
        self.wake.set()

    def snapshot(self) -> None:
        if not tracemalloc.is_tracing():
            self.write("snapshot", {"error": "tracemalloc is off"})
            return
        started = time.perf_counter()
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        seconds = time.perf_counter() - started
        first = self.path + ".snapshot"
        self.snapshots += 1
        value: dict[str, Any] = {
            "number": self.snapshots,
            "seconds": seconds,
            "time": time.monotonic(),
        }
        if self.snapshots == 1:
            snapshot.dump(first)
        else:
            before = tracemalloc.Snapshot.load(first)
            value["top"] = [
                {
                    "where": str(stat.traceback[0]),
                    "size_diff": stat.size_diff,
                    "count_diff": stat.count_diff,
                    "size": stat.size,
                }
                for stat in snapshot.compare_to(before, "lineno")[:TOP]
            ]
            del before
        del snapshot
        self.write("snapshot", value)

    def final(self) -> None:
        self.write("final", COUNTS.state())


def _stop_if_orphaned() -> None:
    """Shut down (SIGTERM) if the parent that started this server is gone, or after
    ``SOAK_LIFETIME`` seconds: a server left behind would hold its port and memory."""
    parent = os.environ.get("SOAK_PARENT")
    lifetime = float(os.environ.get("SOAK_LIFETIME", "inf"))
    orphaned = parent is not None and os.getppid() != int(parent)
    if orphaned or time.monotonic() - STARTED > lifetime:
        os.kill(os.getpid(), signal.SIGTERM)


def _install() -> None:
    if os.environ.get("SOAK_LOOP") == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if os.environ.get("SOAK_TRACEMALLOC") == "1" and not tracemalloc.is_tracing():
        tracemalloc.start(1)
    # The root logger's: asyncio's records too ("Task exception was never retrieved"...).
    logging.getLogger().addHandler(_CountRecords(logging.WARNING))
    if SAMPLES:
        sampler = Sampler(SAMPLES)
        signal.signal(signal.SIGUSR1, sampler.ask_snapshot)
        atexit.register(sampler.final)
        sampler.write("sample", COUNTS.state())
        sampler.thread.start()


_install()
