"""Load generators for ``benchmarks/scale.py``: each run in a process of its own.

Two modes:

``python benchmarks/scale_clients.py hold LIBRARY --port N --connections C [--compression]``
opens C connections to ``ws://127.0.0.1:N/`` (50 at a time), prints
``{"ready": C, "extensions": HEADER}`` (the ``Sec-WebSocket-Extensions`` of the first
connection's handshake response, socketeer only) and holds them, counting the messages they
receive, until its standard input closes. Commands, one per line on standard input:

- ``expect COUNT TIMEOUT``: count from zero; answer ``{"armed": true}`` at once, then
  ``{"received": N, "time": T}`` once every connection received COUNT messages in all
  (COUNT × C; T on the clock of :func:`time.monotonic`, which the server reads too), or
  ``{"received": N, "time": null}`` after TIMEOUT seconds.

``python benchmarks/scale_clients.py handshakes LIBRARY --port N --concurrency K --duration D``
opens and closes connections, K at a time (K tasks, each doing open → close → open ...),
for a short warm-up and then D seconds or ``--max-count`` handshakes, whichever comes first;
a handshake under way when the time is up is waited for, and counted. It prints
``{"count": N, "elapsed": S, "errors": E, "cpu": {"server": µs, "client": µs}, "others": F}``:
the CPU time per handshake of the server (with ``--server-pid``) and of this process, and the
share of their CPUs' time that other processes took (``echo_clients.Usage``).

Libraries: ``picows`` (callbacks; it has no compression) and ``socketeer`` (its asyncio
client; ``--compression`` offers permessage-deflate, its default, and else it offers nothing).
A picows connection closes by sending a close frame and dropping the TCP connection when the
server's close frame comes back (or after :data:`CLOSE_TIMEOUT`); socketeer's with
``await ws.close()``. picows answers pings by itself; socketeer while it reads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from echo_clients import OPEN_BATCH, Usage
from echo_servers import MissingError, run
from scale_servers import LOOPS, Commands, fd_limit, reply

__all__ = ["CLIENTS", "CLOSE_TIMEOUT", "OPEN_TIMEOUT"]

CLIENTS = ["picows", "socketeer"]
OPEN_TIMEOUT = 10.0
"""Seconds for one connection's opening handshake."""
CLOSE_TIMEOUT = 5.0
"""Seconds for one connection's closing handshake."""
WARMUP = 0.2
"""Seconds of handshakes before the measured ones."""
MAX_ERRORS = 100
"""Failed handshakes after which a run stops."""


class Counter:
    """Messages received by all the connections of this process, against a target."""

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.time: float | None = None
        self.done: asyncio.Future[None] | None = None

    def expect(self, target: int) -> asyncio.Future[None]:
        self.count, self.target, self.time = 0, target, None
        self.done = asyncio.get_running_loop().create_future()
        return self.done

    def received(self) -> None:
        self.count += 1
        if self.count == self.target and self.done is not None and not self.done.done():
            self.time = time.monotonic()
            self.done.set_result(None)


# Holding connections: a connection is (close coroutine function, extensions header).

Opener = Callable[[str, Counter, bool], Awaitable[tuple[Callable[[], Awaitable[None]], Any]]]


async def hold_picows(
    uri: str, counter: Counter, compression: bool
) -> tuple[Callable[[], Awaitable[None]], Any]:
    try:
        import picows
    except ImportError as exc:
        raise MissingError(f"picows is not installed ({exc})") from exc
    if compression:
        raise MissingError("picows has no permessage-deflate")
    binary, text, close = picows.WSMsgType.BINARY, picows.WSMsgType.TEXT, picows.WSMsgType.CLOSE

    class Receiver(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            msg_type = frame.msg_type
            if (msg_type is binary or msg_type is text) and frame.fin:
                counter.received()
            elif msg_type is close:
                transport.disconnect()

    transport, _ = await picows.ws_connect(Receiver, uri, websocket_handshake_timeout=OPEN_TIMEOUT)

    async def closer() -> None:
        transport.send_close(picows.WSCloseCode.OK)
        try:
            await asyncio.wait_for(transport.wait_disconnected(), CLOSE_TIMEOUT)
        finally:
            transport.disconnect()

    return closer, None


async def hold_socketeer(
    uri: str, counter: Counter, compression: bool
) -> tuple[Callable[[], Awaitable[None]], Any]:
    import socketeer

    ws = await socketeer.connect(
        uri, compression="deflate" if compression else None, open_timeout=OPEN_TIMEOUT
    )

    async def count() -> None:
        try:
            async for _ in ws:
                counter.received()
        except Exception:  # closed with an error: the count says what arrived
            pass

    reader = asyncio.get_running_loop().create_task(count())

    async def closer() -> None:
        await ws.close()
        await reader

    response = ws.protocol.response
    extensions = None if response is None else response.headers.get("Sec-WebSocket-Extensions")
    return closer, extensions


HOLDERS: dict[str, Opener] = {"picows": hold_picows, "socketeer": hold_socketeer}


async def hold(library: str, port: int, connections: int, compression: bool) -> None:
    uri = f"ws://127.0.0.1:{port}/"
    counter = Counter()
    opened: list[tuple[Callable[[], Awaitable[None]], Any]] = []
    try:
        while len(opened) < connections:
            batch = min(OPEN_BATCH, connections - len(opened))
            opened += await asyncio.gather(
                *(HOLDERS[library](uri, counter, compression) for _ in range(batch))
            )
    except MissingError as exc:
        reply({"missing": str(exc)})
        return
    except Exception as exc:
        reply({"error": f"opened {len(opened)} of {connections}: {type(exc).__name__}: {exc}"})
        await close_all(opened)
        return
    reply({"ready": len(opened), "extensions": opened[0][1] if opened else None})
    commands = Commands()
    waiting: asyncio.Task[None] | None = None
    while (line := await commands.next()) is not None:
        word, *args = line.split() or [""]
        if word == "expect":
            if waiting is not None:
                waiting.cancel()
            done = counter.expect(int(args[0]) * len(opened))
            reply({"armed": True})
            waiting = asyncio.get_running_loop().create_task(report(counter, done, float(args[1])))
        else:
            reply({"error": f"unknown command: {line!r}"})
    if waiting is not None:
        waiting.cancel()
    await close_all(opened)


async def report(counter: Counter, done: asyncio.Future[None], timeout: float) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout)
    except asyncio.TimeoutError:
        pass
    reply({"received": counter.count, "time": counter.time})


async def close_all(opened: list[tuple[Callable[[], Awaitable[None]], Any]]) -> None:
    try:
        await asyncio.wait_for(
            asyncio.gather(*(close() for close, _ in opened), return_exceptions=True),
            CLOSE_TIMEOUT * 2,
        )
    except asyncio.TimeoutError:
        pass  # the parent kills what is left


# Handshakes: open, then close, as fast as the server allows.


async def handshake_picows(uri: str) -> None:
    import picows

    close = picows.WSMsgType.CLOSE

    class Closer(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is close:
                transport.disconnect()

    transport, _ = await picows.ws_connect(Closer, uri, websocket_handshake_timeout=OPEN_TIMEOUT)
    transport.send_close(picows.WSCloseCode.OK)
    try:
        await asyncio.wait_for(transport.wait_disconnected(), CLOSE_TIMEOUT)
    finally:
        transport.disconnect()


async def handshake_socketeer(uri: str) -> None:
    import socketeer

    ws = await socketeer.connect(uri, compression=None, open_timeout=OPEN_TIMEOUT)
    await ws.close()


HANDSHAKES: dict[str, Callable[[str], Awaitable[None]]] = {
    "picows": handshake_picows,
    "socketeer": handshake_socketeer,
}


class Tally:
    def __init__(self, max_count: int) -> None:
        self.count = 0
        self.errors = 0
        self.last_error = ""
        self.max_count = max_count


async def handshake_loop(
    handshake: Callable[[], Awaitable[None]], tally: Tally, deadline: float
) -> None:
    while tally.count < tally.max_count and tally.errors < MAX_ERRORS:
        try:
            await handshake()
        except Exception as exc:
            tally.errors += 1
            tally.last_error = f"{type(exc).__name__}: {exc}"
        else:
            tally.count += 1
        if time.perf_counter() >= deadline:
            break


async def handshakes(
    library: str,
    port: int,
    concurrency: int,
    duration: float,
    max_count: int,
    server_pid: int | None,
) -> dict[str, Any]:
    if library == "picows":
        try:
            import picows  # noqa: F401
        except ImportError as exc:
            return {"missing": f"picows is not installed ({exc})"}
    uri = f"ws://127.0.0.1:{port}/"
    handshake = HANDSHAKES[library]

    def once() -> Awaitable[None]:
        return handshake(uri)

    usage = Usage(server_pid)
    for seconds in (WARMUP, duration):
        tally = Tally(max_count)
        usage.start()
        start = time.perf_counter()
        deadline = start + seconds
        await asyncio.gather(*(handshake_loop(once, tally, deadline) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        usage.stop(tally.count, elapsed)
    return {
        "count": tally.count,
        "elapsed": elapsed,
        "errors": tally.errors,
        "last_error": tally.last_error,
        "cpu": {side: values[-1] for side, values in usage.cpu.items()},
        "others": usage.others[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["hold", "handshakes"])
    parser.add_argument("library", choices=CLIENTS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--cpu", type=int, help="pin this process to this CPU")
    parser.add_argument("--connections", type=int, default=1, help="hold: connections to open")
    parser.add_argument("--compression", action="store_true", help="hold: offer deflate")
    parser.add_argument("--concurrency", type=int, default=1, help="handshakes: in flight")
    parser.add_argument("--duration", type=float, default=1.0, help="handshakes: seconds")
    parser.add_argument("--max-count", type=int, default=20_000, help="handshakes: at most")
    parser.add_argument("--server-pid", type=int, help="handshakes: the server's CPU time too")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    too_few = fd_limit(args.connections if args.mode == "hold" else args.concurrency)
    if too_few is not None:
        reply({"missing": too_few})
        return 0
    try:
        if args.mode == "hold":
            run(hold(args.library, args.port, args.connections, args.compression), args.loop)
        else:
            output = run(
                handshakes(
                    args.library,
                    args.port,
                    args.concurrency,
                    args.duration,
                    args.max_count,
                    args.server_pid,
                ),
                args.loop,
            )
            reply(output)
    except MissingError as exc:
        reply({"missing": str(exc)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
